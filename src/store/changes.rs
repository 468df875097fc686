//! The per-user change log: version-neutral events written in the same transaction as the
//! mutation that causes them, one ordered stream per (app, user). The WebSocket renders them at
//! delivery (per socket version and user) and replays them (`Event.replay`).
//!
//! `ChangeFeed` is how committed changes leave the store: each write hands over the changes it
//! appended after its commit; the server drains the feed (coalescing bursts), gives them to this
//! node's sockets and names their users to the other nodes (`realtime::Fanout`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Notify;
use uuid::Uuid;

use super::{StoreResult, Timestamp};

/// Something a user must hear about. Stored as JSON; rendering happens at delivery, so an event
/// names objects rather than carrying their rendering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    ConversationCreated {
        conversation: Uuid,
    },
    ConversationUpdated {
        conversation: Uuid,
        ops: Vec<ConversationOp>,
    },
    /// `mode`: `all_participants` or `my_devices`.
    ConversationDeleted {
        conversation: Uuid,
        mode: String,
        from_position: Option<i64>,
    },
    MessageCreated {
        message: Uuid,
    },
    /// `user`'s receipt for the message rose to `status` (`delivered`, `read`).
    MessageReceipt {
        message: Uuid,
        user: String,
        status: String,
    },
    MessageDeleted {
        message: Uuid,
        mode: String,
        /// Its conversation (absent in events written before it was recorded): the user's
        /// `last_message` and counts are refreshed at delivery.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<Uuid>,
    },
    /// Parts of a message were added, changed or removed (3.0 part endpoints). Rendered for
    /// 3.0 sockets only: API 2.0 messages are immutable to their clients.
    MessagePartsChanged {
        message: Uuid,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        added: Vec<Uuid>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        updated: Vec<Uuid>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        removed: Vec<Uuid>,
    },
    AnnouncementCreated {
        announcement: Uuid,
    },
    /// The receiving user's own receipt for the announcement rose to `status`.
    AnnouncementReceipt {
        announcement: Uuid,
        status: String,
    },
    /// The receiving user deleted the announcement.
    AnnouncementDeleted {
        announcement: Uuid,
    },
    /// `user`'s identity changed in these rendered properties (Identity update, 2.0+; the
    /// values are read at delivery).
    IdentityUpdated {
        user: String,
        fields: Vec<String>,
    },
    /// `user`'s identity was deleted (Identity delete, 2.0+).
    IdentityDeleted {
        user: String,
    },
    /// The receiving user now follows `user` (Identity create, 2.0+).
    IdentityFollowed {
        user: String,
    },
    /// The receiving user no longer follows `user` (Identity delete, 2.0+).
    IdentityUnfollowed {
        user: String,
    },
    /// A channel was created with the receiving user as a member (Channel create, 2.0+).
    ChannelCreated {
        channel: Uuid,
    },
    /// A channel's metadata changed (Channel update; only the metadata variants of
    /// `ConversationOp` occur).
    ChannelUpdated {
        channel: Uuid,
        ops: Vec<ConversationOp>,
    },
    /// A channel was deleted for everyone (Channel delete).
    ChannelDeleted {
        channel: Uuid,
    },
    /// `user` joined or was added (Membership create; for `user`, Channel create first).
    ChannelMemberAdded {
        channel: Uuid,
        user: String,
    },
    /// `user` left or was removed (Membership delete; for `user`, Channel delete first).
    ChannelMemberRemoved {
        channel: Uuid,
        user: String,
    },
    /// A message was sent to a channel (Message create carrying `channel`).
    ChannelMessageCreated {
        message: Uuid,
    },
    /// A channel message was deleted (Message delete).
    ChannelMessageDeleted {
        message: Uuid,
        channel: Uuid,
    },
    /// The operation packet `Conversation.mark_all_read`.
    MarkAllRead {
        conversation: Uuid,
        position: i64,
        user: String,
    },
}

/// One change of a conversation, as its participants see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ConversationOp {
    ParticipantAdded {
        user: String,
    },
    ParticipantRemoved {
        user: String,
    },
    /// A top-level metadata key was set (to `value`) …
    MetadataSet {
        key: String,
        value: Value,
    },
    /// … or deleted.
    MetadataDeleted {
        key: String,
    },
    /// The receiving user's unread count changed (rendered with its value at delivery).
    UnreadMessageCount,
}

/// One entry of a user's stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub seq: i64,
    pub at: Timestamp,
    /// `None` when the stored JSON is not an event this build knows (skipped at delivery).
    pub event: Option<Arc<Event>>,
}

/// A change as its writer appended it to a user's log, kept after the commit so that this
/// node's sockets of the user can queue it without reading back what was just written.
#[derive(Debug, Clone)]
pub struct Appended {
    pub user: String,
    pub seq: i64,
    pub at: Timestamp,
    pub event: Arc<Event>,
}

/// What a node committed since its feed was last drained: the changes appended, per app, and
/// the messages it sent.
#[derive(Default)]
pub struct Committed {
    pub appended: Vec<(Uuid, Vec<Appended>)>,
    pub sent: Vec<SentMessage>,
}

/// A message as its send returned it, with the identities of its participants.
pub struct SentMessage {
    pub message: super::Message,
    pub identities: Vec<super::Identity>,
}

#[derive(Default)]
struct Pending {
    appended: HashMap<Uuid, Vec<Appended>>,
    sent: Vec<SentMessage>,
}

/// Where committed writes are announced, coalesced until the announcer takes them.
#[derive(Default)]
pub struct ChangeFeed {
    pending: Mutex<Pending>,
    ready: Notify,
}

impl ChangeFeed {
    pub fn new() -> Arc<Self> {
        Arc::new(ChangeFeed::default())
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// After a commit: these changes were appended.
    pub fn touched(&self, app_id: Uuid, appended: Vec<Appended>) {
        if appended.is_empty() {
            return;
        }
        self.pending()
            .appended
            .entry(app_id)
            .or_default()
            .extend(appended);
        self.ready.notify_one();
    }

    /// After the commit of a send: these changes were appended, among them this message's
    /// create. It is taken with them, so whoever renders them can have it before they look.
    pub fn sent(&self, appended: Vec<Appended>, sent: SentMessage) {
        let app_id = sent.message.app_id;
        let mut pending = self.pending();
        pending.sent.push(sent);
        pending.appended.entry(app_id).or_default().extend(appended);
        drop(pending);
        self.ready.notify_one();
    }

    /// Waits for something committed and takes all of it.
    pub async fn next(&self) -> Committed {
        loop {
            let taken = std::mem::take(&mut *self.pending());
            if !taken.appended.is_empty() || !taken.sent.is_empty() {
                return Committed {
                    appended: taken.appended.into_iter().collect(),
                    sent: taken.sent,
                };
            }
            self.ready.notified().await;
        }
    }
}

#[async_trait]
pub trait ChangeLogStore: Send + Sync {
    /// Where committed writes announce the users they touched.
    fn change_feed(&self) -> Arc<ChangeFeed>;
    /// The Postgres pool (NOTIFY goes through it); `None` on SQLite.
    fn postgres_pool(&self) -> Option<sqlx::PgPool>;
    /// The user's last sequence number (0 before their first change).
    async fn stream_head(&self, app_id: Uuid, user_id: &str) -> StoreResult<i64>;
    /// Up to `limit` changes with `seq > after`, in order.
    async fn changes_after(
        &self,
        app_id: Uuid,
        user_id: &str,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<Change>>;
    /// The sequence number just before the user's first change at or after `at` (the head when
    /// there is none).
    async fn seq_before(&self, app_id: Uuid, user_id: &str, at: Timestamp) -> StoreResult<i64>;
    /// Who follows the user (the audience of their presence).
    async fn followers(&self, app_id: Uuid, user_id: &str) -> StoreResult<Vec<String>>;
    /// Deletes changes older than `before`.
    async fn prune_changes(&self, before: Timestamp) -> StoreResult<u64>;
}

/// The pool of a backend, as far as NOTIFY is concerned.
pub trait NotifyPool {
    fn postgres(&self) -> Option<sqlx::PgPool>;
}

impl NotifyPool for sqlx::PgPool {
    fn postgres(&self) -> Option<sqlx::PgPool> {
        Some(self.clone())
    }
}

impl NotifyPool for sqlx::SqlitePool {
    fn postgres(&self) -> Option<sqlx::PgPool> {
        None
    }
}
