//! Signed, expiring transfer URLs: the SDKs PUT and GET rich content with no credentials
//! (client-wire-protocol.md §6.4), so the URL itself carries the authorisation: an HMAC-SHA256
//! over purpose, app, content id and expiry, with a secret every node shares.

use std::path::Path;

use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use uuid::Uuid;

const KEY_FILE: &str = "content-signing.key";

/// What a signed URL allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Upload,
    Download,
}

impl Purpose {
    fn label(self) -> &'static str {
        match self {
            Purpose::Upload => "upload",
            Purpose::Download => "download",
        }
    }

    /// The path segment of the transfer routes.
    pub fn route(self) -> &'static str {
        match self {
            Purpose::Upload => "content-uploads",
            Purpose::Download => "content-downloads",
        }
    }
}

#[derive(Clone)]
pub struct UrlSigner {
    key: Vec<u8>,
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UrlSigner(***)")
    }
}

impl UrlSigner {
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        UrlSigner { key: key.into() }
    }

    /// A signer with a random key (URLs valid for this process only).
    pub fn ephemeral() -> Self {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Self::new(key.to_vec())
    }

    /// The configured secret, or the one kept in `data_dir` (generated on first use).
    pub fn load(configured: &SecretString, data_dir: &Path) -> std::io::Result<Self> {
        let configured = configured.expose_secret();
        if !configured.is_empty() {
            return Ok(Self::new(configured.as_bytes().to_vec()));
        }
        let path = data_dir.join(KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(secret) => Ok(Self::new(secret.trim().as_bytes().to_vec())),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(data_dir)?;
                let secret = crate::secrets::generate_token();
                match crate::keys::write_private(&path, &secret) {
                    Ok(()) => Ok(Self::new(secret.into_bytes())),
                    // Another process created it first: use theirs.
                    Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                        Self::load(&SecretString::from(String::new()), data_dir)
                    }
                    Err(err) => Err(err),
                }
            }
            Err(err) => Err(err),
        }
    }

    fn mac(&self, purpose: Purpose, app_id: Uuid, id: Uuid, expires: i64) -> Hmac<Sha256> {
        // HMAC accepts keys of any length.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(format!("{}\n{app_id}\n{id}\n{expires}", purpose.label()).as_bytes());
        mac
    }

    /// `expires=<unix seconds>&signature=<hex>`.
    pub fn query(&self, purpose: Purpose, app_id: Uuid, id: Uuid, expires: i64) -> String {
        let signature = hex::encode(
            self.mac(purpose, app_id, id, expires)
                .finalize()
                .into_bytes(),
        );
        format!("expires={expires}&signature={signature}")
    }

    /// Whether `signature` is the one for these values (compared in constant time); expiry is
    /// the caller's to check.
    pub fn verify(
        &self,
        purpose: Purpose,
        app_id: Uuid,
        id: Uuid,
        expires: i64,
        signature: &str,
    ) -> bool {
        match hex::decode(signature) {
            Ok(bytes) => self
                .mac(purpose, app_id, id, expires)
                .verify_slice(&bytes)
                .is_ok(),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_bind_every_value() {
        let signer = UrlSigner::new(b"k".to_vec());
        let (app, id) = (Uuid::new_v4(), Uuid::new_v4());
        let query = signer.query(Purpose::Upload, app, id, 100);
        let signature = query.split("signature=").nth(1).unwrap();
        assert!(signer.verify(Purpose::Upload, app, id, 100, signature));
        assert!(!signer.verify(Purpose::Download, app, id, 100, signature));
        assert!(!signer.verify(Purpose::Upload, id, app, 100, signature));
        assert!(!signer.verify(Purpose::Upload, app, id, 101, signature));
        assert!(!signer.verify(Purpose::Upload, app, id, 100, "zz"));
        assert!(!UrlSigner::new(b"other".to_vec()).verify(
            Purpose::Upload,
            app,
            id,
            100,
            signature
        ));
    }

    #[test]
    fn generated_secret_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let none = SecretString::from(String::new());
        let a = UrlSigner::load(&none, dir.path()).unwrap();
        let b = UrlSigner::load(&none, dir.path()).unwrap();
        assert_eq!(a.key, b.key);
        assert_eq!(a.key.len(), 43);
    }
}
