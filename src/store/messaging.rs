//! Conversations, messages, parts, receipts and announcements: version-neutral records and the
//! transactional operations the services build on. Every multi-row change is one transaction.

use async_trait::async_trait;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{StoreResult, Timestamp};

/// A conversation as the system sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    pub app_id: Uuid,
    pub id: Uuid,
    pub created_at: Timestamp,
    /// Digest of the participant set while the conversation is distinct.
    pub distinct_key: Option<String>,
    pub metadata: Map<String, Value>,
    /// Current participants' user ids, in the order they joined.
    pub participants: Vec<String>,
    pub last_position: i64,
    pub revision: i64,
    pub deleted_at: Option<Timestamp>,
}

impl Conversation {
    pub fn is_distinct(&self) -> bool {
        self.distinct_key.is_some()
    }
}

/// One user's relation to a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub is_participant: bool,
    /// Set when the user left or was removed: the last position they may see.
    pub left_position: Option<i64>,
    /// Set by a `my_devices` delete: positions up to here are gone for the user.
    pub hidden_position: Option<i64>,
}

impl Membership {
    /// Whether the message at `position` is visible to this member.
    pub fn sees(&self, position: i64) -> bool {
        self.hidden_position.is_none_or(|h| position > h)
            && self.left_position.is_none_or(|l| position <= l)
    }
}

/// A conversation as one user sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct UserConversation {
    pub conversation: Conversation,
    pub membership: Membership,
    pub unread_message_count: i64,
    pub total_message_count: i64,
    pub last_message: Option<Message>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewConversation {
    pub app_id: Uuid,
    pub id: Uuid,
    pub created_at: Timestamp,
    pub participants: Vec<String>,
    pub distinct_key: Option<String>,
    pub metadata: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CreateConversation {
    Created(Conversation),
    /// A live distinct conversation with the same participants exists.
    DistinctExists(Conversation),
    /// The requested id is taken (by this or another conversation).
    IdInUse(Conversation),
}

/// The new state of a conversation after a PATCH (computed by the service from the old one).
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationChange {
    pub participants: Vec<String>,
    pub metadata: Map<String, Value>,
    pub distinct_key: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Updated {
    Done,
    /// Someone else changed the conversation since it was read: read again and retry.
    Stale,
    NotFound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    Done,
    AlreadyDeleted,
    NotFound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ReceiptStatus {
    Sent = 0,
    Delivered = 1,
    Read = 2,
}

impl ReceiptStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
        }
    }

    pub fn from_i16(value: i16) -> Self {
        match value {
            2 => Self::Read,
            1 => Self::Delivered,
            _ => Self::Sent,
        }
    }
}

/// Who sent a message: a user, or (Platform API 1.x) a named system sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    User(String),
    Name(String),
}

impl Sender {
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Sender::User(id) => Some(id),
            Sender::Name(_) => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub id: Uuid,
    pub mime_type: String,
    pub body: Option<String>,
    pub encoding: Option<String>,
    pub content: Option<Value>,
    pub updated_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub app_id: Uuid,
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub position: i64,
    pub sender: Sender,
    pub sent_at: Timestamp,
    pub updated_at: Option<Timestamp>,
    pub notification: Option<Value>,
    /// In the order they were sent.
    pub parts: Vec<Part>,
    /// Every recipient's status (the sender's own is `Read`), in participant order.
    pub recipient_status: Vec<(String, ReceiptStatus)>,
}

impl Message {
    pub fn status_of(&self, user_id: &str) -> Option<ReceiptStatus> {
        self.recipient_status
            .iter()
            .find(|(u, _)| u == user_id)
            .map(|(_, s)| *s)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    pub app_id: Uuid,
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub sender: Sender,
    pub sent_at: Timestamp,
    pub notification: Option<Value>,
    pub parts: Vec<Part>,
    /// The sender (a user) must be a participant of the conversation and see it (Client API).
    /// Checked, like the sender's suspension, inside the send's transaction.
    pub as_participant: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SendMessage {
    /// Sent. `identities`: those of its participants that have one, read in the send's
    /// transaction (what 2.0+ renders), so rendering the answer needs no further query.
    Sent {
        message: Message,
        identities: Vec<super::Identity>,
    },
    IdInUse(Message),
    /// A channel message has this id.
    IdInUseByChannelMessage,
    ConversationNotFound,
    ConversationDeleted,
    /// The sending user is suspended.
    SenderSuspended,
    /// `as_participant`: the sender does not see the conversation.
    NotVisible,
    /// `as_participant`: the sender sees the conversation but is no longer a participant.
    NotParticipant,
}

/// Which page of a list: at most `limit` items after the item `after` (in list order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: u32,
    pub after: Option<Uuid>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConversationSort {
    CreatedAt,
    LastMessage,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Listing<T> {
    pub items: Vec<T>,
    /// All items of the list, not only this page (`Layer-Count`).
    pub total: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartChange {
    Done,
    MessageNotFound,
    PartNotFound,
    /// A part with the requested id exists already.
    IdInUse,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Announcement {
    pub app_id: Uuid,
    pub id: Uuid,
    pub sender: Sender,
    pub sent_at: Timestamp,
    pub notification: Option<Value>,
    pub parts: Vec<Part>,
    /// In the order given.
    pub recipients: Vec<String>,
}

/// An announcement as one recipient sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct UserAnnouncement {
    pub announcement: Announcement,
    pub status: ReceiptStatus,
}

#[async_trait]
pub trait MessagingStore: Send + Sync {
    /// Creates the conversation with its members, unless a live distinct conversation with the
    /// same `distinct_key` exists or the id is taken.
    async fn create_conversation(&self, new: &NewConversation) -> StoreResult<CreateConversation>;
    /// Any conversation of the app, deleted ones included.
    async fn conversation(&self, app_id: Uuid, id: Uuid) -> StoreResult<Option<Conversation>>;
    /// Writes a PATCH result if the conversation is still at `revision`.
    async fn update_conversation(
        &self,
        app_id: Uuid,
        id: Uuid,
        revision: i64,
        change: &ConversationChange,
        at: Timestamp,
    ) -> StoreResult<Updated>;
    /// Deletes for everyone: the messages go, the conversation answers 410 from now on.
    async fn delete_conversation(
        &self,
        app_id: Uuid,
        id: Uuid,
        at: Timestamp,
    ) -> StoreResult<Deleted>;

    /// The user's view of one conversation: `None` unless they are or were a member.
    async fn user_conversation(
        &self,
        app_id: Uuid,
        user_id: &str,
        id: Uuid,
    ) -> StoreResult<Option<UserConversation>>;
    /// The user's membership of a conversation they see: `Some` exactly when `user_conversation`
    /// is, in one query (sends and message reads need no counts or last message).
    async fn visible_membership(
        &self,
        app_id: Uuid,
        user_id: &str,
        id: Uuid,
    ) -> StoreResult<Option<Membership>>;
    /// The conversations a user is or was a member of (minus those deleted for them), newest first.
    async fn user_conversations(
        &self,
        app_id: Uuid,
        user_id: &str,
        sort: ConversationSort,
        page: Page,
    ) -> StoreResult<Listing<UserConversation>>;
    /// `mode=my_devices`: history up to now disappears for the user; with `leave` they also stop
    /// being a participant. False when they are not a member.
    async fn hide_conversation(
        &self,
        app_id: Uuid,
        user_id: &str,
        id: Uuid,
        leave: bool,
        at: Timestamp,
    ) -> StoreResult<bool>;
    /// Marks the user's messages up to `position` (all when `None`) read; the position used, or
    /// `None` when the user is not a member.
    async fn mark_all_read(
        &self,
        app_id: Uuid,
        user_id: &str,
        conversation_id: Uuid,
        position: Option<i64>,
        at: Timestamp,
    ) -> StoreResult<Option<i64>>;

    /// Appends the message: next position, parts, a recipient row per participant (the sender's
    /// `Read`; hidden for participants who blocked the sender); the contents its parts reference
    /// are marked referenced in the same transaction.
    async fn send_message(&self, new: &NewMessage) -> StoreResult<SendMessage>;
    async fn message(&self, app_id: Uuid, id: Uuid) -> StoreResult<Option<Message>>;
    /// A conversation's messages, newest first; with `viewer`, only those the viewer sees.
    async fn messages(
        &self,
        app_id: Uuid,
        conversation_id: Uuid,
        viewer: Option<(&str, &Membership)>,
        page: Page,
    ) -> StoreResult<Listing<Message>>;
    /// Whether `user_id` deleted the message for themselves (`mode=my_devices`).
    async fn message_hidden_for(&self, app_id: Uuid, id: Uuid, user_id: &str) -> StoreResult<bool>;
    /// Deletes for everyone; false when there is no such message.
    async fn delete_message(&self, app_id: Uuid, id: Uuid) -> StoreResult<bool>;
    /// Deletes for one user (`mode=my_devices`).
    async fn hide_message(
        &self,
        app_id: Uuid,
        id: Uuid,
        user_id: &str,
        at: Timestamp,
    ) -> StoreResult<()>;
    /// Raises the user's status (never lowers it); false when the user is not a recipient.
    async fn set_receipt(
        &self,
        app_id: Uuid,
        message_id: Uuid,
        user_id: &str,
        status: ReceiptStatus,
        at: Timestamp,
    ) -> StoreResult<bool>;

    /// Adds a part (v3 part editing); stamps the message's `updated_at`. This and the other part
    /// edits mark the contents the new parts reference as referenced by the message, in their
    /// transaction (as `send_message`, `create_announcement` and `send_channel_message` do).
    async fn add_part(
        &self,
        app_id: Uuid,
        message_id: Uuid,
        part: &Part,
    ) -> StoreResult<PartChange>;
    async fn update_part(
        &self,
        app_id: Uuid,
        message_id: Uuid,
        part: &Part,
    ) -> StoreResult<PartChange>;
    async fn replace_parts(
        &self,
        app_id: Uuid,
        message_id: Uuid,
        parts: &[Part],
        at: Timestamp,
    ) -> StoreResult<PartChange>;
    async fn delete_part(
        &self,
        app_id: Uuid,
        message_id: Uuid,
        part_id: Uuid,
        at: Timestamp,
    ) -> StoreResult<PartChange>;

    /// False when the id is taken.
    async fn create_announcement(&self, announcement: &Announcement) -> StoreResult<bool>;
    async fn announcement(&self, app_id: Uuid, id: Uuid) -> StoreResult<Option<Announcement>>;
    async fn user_announcement(
        &self,
        app_id: Uuid,
        user_id: &str,
        id: Uuid,
    ) -> StoreResult<Option<UserAnnouncement>>;
    /// Newest first, without those the user deleted.
    async fn user_announcements(
        &self,
        app_id: Uuid,
        user_id: &str,
        page: Page,
    ) -> StoreResult<Listing<UserAnnouncement>>;
    /// False when the user is not a recipient.
    async fn set_announcement_receipt(
        &self,
        app_id: Uuid,
        user_id: &str,
        id: Uuid,
        status: ReceiptStatus,
    ) -> StoreResult<bool>;
    async fn hide_announcement(&self, app_id: Uuid, user_id: &str, id: Uuid) -> StoreResult<bool>;

    /// Identities of these users (those that have one), for rendering.
    async fn identities_of(
        &self,
        app_id: Uuid,
        user_ids: &[String],
    ) -> StoreResult<Vec<super::Identity>>;
}
