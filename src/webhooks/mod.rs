//! Webhooks (webhooks.md): signing, target URL policy, payload rendering and the delivery worker.
//! Registrations are managed through `api/webhooks.rs`; events are written to the outbox by the
//! store, in the transaction of the change (`store/webhooks.rs` says how and why).
//!
//! Delivery is at least once: every node runs a worker that claims due outbox rows with a lease
//! (`for update skip locked` on Postgres, so nodes take different rows), POSTs them, and deletes
//! a row only after a 2xx. A node that dies mid-call leaves its rows leased; they are claimed
//! again once the lease expires, with the same event id and request id. Layer retried each failed
//! call on its own schedule while other calls kept flowing (§5.3), so there is no per-webhook
//! ordering: events are claimed oldest first, but a call backing off does not hold back later
//! ones. After the last retry fails the webhook turns `inactive` and its backlog is dropped.

mod payload;
pub mod target;
mod worker;

use hmac::{Hmac, Mac};
use sha1::Sha1;

pub use worker::{spawn, WorkerHandle};

/// `layer-webhook-signature`: lowercase hex HMAC-SHA1 of the exact body bytes, keyed with the
/// webhook's secret (§7.1).
pub fn sign(secret: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::sign;

    /// The vectors of webhooks.md §7.3.
    #[test]
    fn signs_the_spec_vectors() {
        let tv1 = include_str!("tv1.json").trim_end_matches('\n');
        assert_eq!(tv1.len(), 1754);
        assert_eq!(
            sign("test", tv1.as_bytes()),
            "5fb734a8458a0cb338fd77e34db4a6a3d0a7ed34"
        );
        let tv2 = r#"{"event":{"created_at":"2015-09-17T20:46:47.561Z","type":"conversation.created","id":"c12f340d-3b62-4cf1-9b93-ef4d754cfe69"},"conversation":{"id":"layer:///conversations/f3cc7b32-3c92-11e4-baad-164230d1df67"},"config":{"key1":"value1"}}"#;
        assert_eq!(
            sign("1697f925ec7b1697f925ec7b", tv2.as_bytes()),
            "c070c840d17da85d2f352b8373dee173293e4d21"
        );
        let tv3 = r#"{"event":{"type":"Message.created","id":"x"},"message":{"parts":[{"body":"héllo ☃","mime_type":"text/plain"}]}}"#;
        assert_eq!(tv3.len(), 114);
        assert_eq!(
            sign("test", tv3.as_bytes()),
            "ebff8b6fa810484a146e22c02b83a8b2312b982c"
        );
    }
}
