//! Messages being fanned out, loaded once per node instead of once per recipient socket.
//!
//! A new message reaches every socket of every participant at about the same time; each
//! socket's delivery task renders it for its user. What does not depend on the user (the
//! message with its parts and receipts, and the identities its rendering mentions) is loaded
//! once here and shared for a short while: concurrent misses for the same message wait for one
//! load (single flight). What does depend on the user (whether they see it, their own receipt,
//! their counts) is read per socket (`DeliveryStore::delivery_view`), never taken from here.
//!
//! An entry is a snapshot: a later change of the message (a receipt, a part edit, a delete)
//! reaches each user's log after the create and is delivered as a patch setting absolute
//! values, so a create rendered from a snapshot taken after the message was sent ends in the
//! same state. Whoever needs a snapshot that includes every change the socket has already
//! delivered (the last message of a Conversation update after a delete, which may be an older
//! message) asks for one loaded after it read the change (`fresh_after`). Entries expire after
//! `TTL`; at most `CAPACITY` are kept.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quick_cache::sync::{Cache, EntryAction, EntryResult};
use uuid::Uuid;

use crate::store::{DynStore, Identity, Message, StoreResult};

/// A fan-out at the benchmark's 500 messages/s touches ~1,000 messages per TTL.
const CAPACITY: usize = 4096;
/// Long enough for every socket of a fan-out, short enough that nothing else relies on it.
const TTL: Duration = Duration::from_secs(2);

/// A message as loaded for delivery.
pub struct Loaded {
    pub message: Message,
    /// Identities of the users the message mentions (its sender and recipients).
    pub identities: HashMap<String, Identity>,
    loaded_at: Instant,
}

pub struct MessageCache {
    entries: Cache<(Uuid, Uuid), Arc<Loaded>>,
}

impl Default for MessageCache {
    fn default() -> Self {
        MessageCache {
            entries: Cache::new(CAPACITY),
        }
    }
}

impl MessageCache {
    /// The message (`None` when it does not exist), from a load begun at or after
    /// `fresh_after` when given and within the TTL; loads it otherwise, once for all callers
    /// waiting for it. Failed and empty loads are not kept.
    pub async fn get(
        &self,
        store: &DynStore,
        app_id: Uuid,
        id: Uuid,
        fresh_after: Option<Instant>,
    ) -> StoreResult<Option<Arc<Loaded>>> {
        let asked_at = Instant::now();
        let usable = |loaded: &Loaded| {
            asked_at.saturating_duration_since(loaded.loaded_at) < TTL
                && fresh_after.is_none_or(|after| loaded.loaded_at >= after)
        };
        let guard = match self
            .entries
            .entry_async(&(app_id, id), |_, loaded| {
                if usable(loaded) {
                    EntryAction::Retain(loaded.clone())
                } else {
                    EntryAction::ReplaceWithGuard
                }
            })
            .await
        {
            EntryResult::Retained(loaded) => return Ok(Some(loaded)),
            EntryResult::Vacant(guard) | EntryResult::Replaced(guard, _) => Some(guard),
            // Neither is asked for (no `Remove`, no timeout): load without keeping it.
            EntryResult::Removed(..) | EntryResult::Timeout => None,
        };
        let loaded = load(store, app_id, id).await?;
        if let (Some(guard), Some(loaded)) = (guard, &loaded) {
            let _ = guard.insert(loaded.clone());
        }
        Ok(loaded)
    }
}

async fn load(store: &DynStore, app_id: Uuid, id: Uuid) -> StoreResult<Option<Arc<Loaded>>> {
    let loaded_at = Instant::now();
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
    Ok(Some(Arc::new(Loaded {
        message,
        identities,
        loaded_at,
    })))
}
