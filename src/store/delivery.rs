//! What WebSocket delivery reads per recipient: one statement per user and message change,
//! instead of the full conversation view (see `realtime::changes`).

use std::collections::HashMap;

use async_trait::async_trait;
use uuid::Uuid;

use super::{Membership, ReceiptStatus, StoreResult};

/// One user's receipt row of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnReceipt {
    pub status: ReceiptStatus,
    /// Deleted for the user (`mode=my_devices`), or sent by someone they blocked.
    pub hidden: bool,
}

/// A conversation as one user sees it, without the conversation itself: what the Conversation
/// update after a message create or delete carries, and what decides whether the user sees a
/// message. Counts and the last message follow exactly the rules of
/// `MessagingStore::user_conversation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryView {
    pub membership: Membership,
    /// The conversation's `last_position`.
    pub last_position: i64,
    pub unread_message_count: i64,
    pub total_message_count: i64,
    /// The user's last visible message, and their receipt of it.
    pub last_message: Option<(Uuid, Option<ReceiptStatus>)>,
    /// The message asked about; `None` when it no longer exists.
    pub message: Option<SeenMessage>,
}

/// The message a `DeliveryView` was asked about, as the database holds it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeenMessage {
    pub position: i64,
    /// The user's receipt row; `None` when they have none (e.g. they joined after it was sent).
    pub receipt: Option<OwnReceipt>,
}

impl DeliveryView {
    /// Whether the user sees the conversation now (`user_conversation` is `Some`).
    pub fn sees_conversation(&self) -> bool {
        !super::messaging_sql::hidden_for(&self.membership, self.last_position)
    }

    /// Whether the user sees the message asked about (`user_message` succeeds): it exists, the
    /// user sees the conversation and its position, and it is not hidden for them.
    pub fn sees_message(&self) -> bool {
        self.sees_conversation()
            && self.message.is_some_and(|m| {
                self.membership.sees(m.position) && !m.receipt.is_some_and(|r| r.hidden)
            })
    }
}

#[async_trait]
pub trait DeliveryStore: Send + Sync {
    /// In one statement, for every member of the (live) conversation, or only `user`: their
    /// membership, their unread and total counts and last visible message, and, with `message`,
    /// whether it still exists and their receipt row of it. Empty when the conversation is gone
    /// (or deleted); users who never were members are absent.
    async fn delivery_views(
        &self,
        app_id: Uuid,
        conversation_id: Uuid,
        message: Option<Uuid>,
        user: Option<&str>,
    ) -> StoreResult<HashMap<String, DeliveryView>>;

    /// `delivery_views` of one user: `None` when the conversation is gone (or deleted) or the
    /// user never was a member.
    async fn delivery_view(
        &self,
        app_id: Uuid,
        user_id: &str,
        conversation_id: Uuid,
        message: Option<Uuid>,
    ) -> StoreResult<Option<DeliveryView>> {
        let mut views = self
            .delivery_views(app_id, conversation_id, message, Some(user_id))
            .await?;
        Ok(views.remove(user_id))
    }
}
