//! What a fan-out reads once per node instead of once per recipient socket.
//!
//! A new message reaches every socket of every participant at about the same time; each
//! socket's delivery task renders it for its user. What it needs is loaded once here and shared
//! for a short while; concurrent misses for the same key wait for one load (single flight):
//! - `MessageCache`: the message with its parts and receipts, and the identities its rendering
//!   mentions. The node that sent a message puts it here as the send returned it (`prime`), so
//!   a single node never reads it back.
//! - `ViewCache`: the conversation as each of its members sees it just after the message
//!   (`DeliveryStore::delivery_views`, one statement for all members): whether they see the
//!   message, their own receipt, their counts and their last message.
//!
//! An entry is a snapshot: a later change of the message (a receipt, a part edit, a delete)
//! reaches each user's log after the create and is delivered as a patch setting absolute
//! values, so a create rendered from a snapshot taken after the message was sent ends in the
//! same state. A user's log is written in commit order (its head row serializes the writers), so
//! whatever a socket delivered before a create was committed before the create, and any snapshot
//! taken after the create was read includes it. Whoever needs a snapshot that includes every
//! change the socket has already delivered in some other order (the last message of a
//! Conversation update after a delete, which may be an older message) asks for one loaded after
//! it read the change (`fresh_after`). Entries expire after `TTL`; at most `CAPACITY` are kept.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quick_cache::sync::{Cache, DefaultLifecycle, EntryAction, EntryResult};
use quick_cache::{DefaultHashBuilder, OptionsBuilder, UnitWeighter};
use uuid::Uuid;

use crate::store::{DeliveryView, DynStore, Identity, Message, StoreResult};

/// Entries kept: at 1,000 messages/s, an entry stays for 4 s (twice the TTL).
const CAPACITY: usize = 4096;
/// Long enough for every socket of a fan-out, short enough that nothing else relies on it.
const TTL: Duration = Duration::from_secs(2);

/// Snapshots by key, each stamped with when its load began.
struct Snapshots<K, V> {
    entries: Cache<K, (Instant, Arc<V>)>,
}

impl<K: Eq + Hash + Clone, V> Default for Snapshots<K, V> {
    /// First in, first out: an entry is wanted for a short while after it is put, never again.
    /// (quick_cache's default keeps 97% of its room for entries read more than once; a new one
    /// lives in the remaining 3% and, while a fan-out lags, was evicted before its sockets came
    /// for it: every miss then read the message again, and the lag grew.)
    fn default() -> Self {
        let options = OptionsBuilder::new()
            .estimated_items_capacity(CAPACITY)
            .weight_capacity(CAPACITY as u64)
            .hot_allocation(0.0)
            .build()
            .expect("valid cache options");
        Snapshots {
            entries: Cache::with_options(
                options,
                UnitWeighter,
                DefaultHashBuilder::default(),
                DefaultLifecycle::default(),
            ),
        }
    }
}

impl<K: Eq + Hash + Clone, V> Snapshots<K, V> {
    /// The snapshot of `key` (`None` when there is nothing), from a load begun at or after
    /// `fresh_after` when given and within the TTL; loads it otherwise, once for all callers
    /// waiting for it. Failed and empty loads are not kept.
    async fn get<F, Fut>(
        &self,
        key: K,
        fresh_after: Option<Instant>,
        load: F,
    ) -> StoreResult<Option<Arc<V>>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = StoreResult<Option<V>>>,
    {
        let asked_at = Instant::now();
        let usable = |loaded_at: Instant| {
            asked_at.saturating_duration_since(loaded_at) < TTL
                && fresh_after.is_none_or(|after| loaded_at >= after)
        };
        let guard = match self
            .entries
            .entry_async(&key, |_, (loaded_at, value)| {
                if usable(*loaded_at) {
                    EntryAction::Retain(value.clone())
                } else {
                    EntryAction::ReplaceWithGuard
                }
            })
            .await
        {
            EntryResult::Retained(value) => return Ok(Some(value)),
            EntryResult::Vacant(guard) | EntryResult::Replaced(guard, _) => Some(guard),
            // Neither is asked for (no `Remove`, no timeout): load without keeping it.
            EntryResult::Removed(..) | EntryResult::Timeout => None,
        };
        let loaded_at = Instant::now();
        let value = load().await?.map(Arc::new);
        if let (Some(guard), Some(value)) = (guard, &value) {
            let _ = guard.insert((loaded_at, value.clone()));
        }
        Ok(value)
    }

    /// Keeps `value` as the snapshot of `key` taken now.
    fn put(&self, key: K, value: V) {
        self.entries.insert(key, (Instant::now(), Arc::new(value)));
    }
}

/// A message as loaded for delivery.
pub struct Loaded {
    pub message: Message,
    /// Identities of the users the message mentions (its sender and recipients).
    pub identities: HashMap<String, Identity>,
}

#[derive(Default)]
pub struct MessageCache {
    entries: Snapshots<(Uuid, Uuid), Loaded>,
}

impl MessageCache {
    /// The message (`None` when it does not exist), loaded at or after `fresh_after` when given.
    pub async fn get(
        &self,
        store: &DynStore,
        app_id: Uuid,
        id: Uuid,
        fresh_after: Option<Instant>,
    ) -> StoreResult<Option<Arc<Loaded>>> {
        self.entries
            .get((app_id, id), fresh_after, || load(store, app_id, id))
            .await
    }

    /// A message just sent, as the send returned it, with the identities of its participants:
    /// all the users it mentions, unless its sender is not one of them (a Platform API sender
    /// outside the participants), whose message is left to be loaded.
    pub fn prime(&self, message: &Message, identities: &[Identity]) {
        if let crate::store::Sender::User(sender) = &message.sender {
            if message.status_of(sender).is_none() {
                return;
            }
        }
        let loaded = Loaded {
            message: message.clone(),
            identities: identities
                .iter()
                .map(|i| (i.user_id.clone(), i.clone()))
                .collect(),
        };
        self.entries.put((message.app_id, message.id), loaded);
    }
}

async fn load(store: &DynStore, app_id: Uuid, id: Uuid) -> StoreResult<Option<Loaded>> {
    let Some(message) = store.message(app_id, id).await? else {
        return Ok(None);
    };
    let mut users = crate::api::messages::users_of(&message);
    users.sort();
    users.dedup();
    let identities = store
        .identities_of(app_id, &users)
        .await?
        .into_iter()
        .map(|i| (i.user_id.clone(), i))
        .collect();
    Ok(Some(Loaded {
        message,
        identities,
    }))
}

/// The members' views of a conversation, by user, as of just after a message.
#[derive(Default)]
pub struct ViewCache {
    entries: Snapshots<(Uuid, Uuid, Uuid), HashMap<String, DeliveryView>>,
}

impl ViewCache {
    /// `user`'s view of `conversation` with `message` (`DeliveryStore::delivery_view`), read
    /// once for all members of the conversation, at or after `fresh_after` when given.
    pub async fn get(
        &self,
        store: &DynStore,
        app_id: Uuid,
        conversation: Uuid,
        message: Uuid,
        user: &str,
        fresh_after: Option<Instant>,
    ) -> StoreResult<Option<DeliveryView>> {
        let key = (app_id, conversation, message);
        let views = self
            .entries
            .get(key, fresh_after, || async move {
                let views = store
                    .delivery_views(app_id, conversation, Some(message), None)
                    .await?;
                Ok(Some(views))
            })
            .await?;
        Ok(views.and_then(|views| views.get(user).cloned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fan-out that lags reads its entries a while after they were put, when many more were
    /// put since: they must still be there, however many entries were read before.
    #[tokio::test]
    async fn entries_put_last_stay_until_read_late() {
        let snapshots: Snapshots<u32, u32> = Snapshots::default();
        let loads = &AtomicUsize::new(0);
        let get = |key: u32| {
            snapshots.get(key, None, move || async move {
                loads.fetch_add(1, Ordering::SeqCst);
                Ok(Some(key))
            })
        };
        // Read at once, as when delivery keeps up.
        let read_at_once = 2 * CAPACITY as u32;
        for key in 0..read_at_once {
            snapshots.put(key, key);
            assert_eq!(get(key).await.unwrap().as_deref(), Some(&key));
        }
        // Read late: a quarter of the room put before the first of them is read.
        let late = read_at_once..read_at_once + CAPACITY as u32 / 4;
        for key in late.clone() {
            snapshots.put(key, key);
        }
        for key in late {
            assert_eq!(get(key).await.unwrap().as_deref(), Some(&key));
        }
        assert_eq!(loads.load(Ordering::SeqCst), 0);
    }
}
