//! Channels, their members and messages (Client API 2.0+): version-neutral records and the
//! transactional operations the channel service builds on. Channels live in their own tables;
//! the only thing they share with conversations is the message id space.

use async_trait::async_trait;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{Deleted, Listing, Page, Part, StoreResult, Timestamp, Updated};

/// A channel as the system sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    pub app_id: Uuid,
    pub id: Uuid,
    pub name: String,
    pub metadata: Map<String, Value>,
    /// The user who created it (the one who may delete it and remove other members).
    pub created_by: String,
    pub created_at: Timestamp,
    pub revision: i64,
    pub deleted_at: Option<Timestamp>,
}

/// One member of a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelMember {
    pub channel_id: Uuid,
    pub user_id: String,
    pub joined_at: Timestamp,
}

/// A channel as one user sees it: with their membership, if they are a member.
#[derive(Debug, Clone, PartialEq)]
pub struct UserChannel {
    pub channel: Channel,
    pub membership: Option<ChannelMember>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewChannel {
    pub app_id: Uuid,
    pub id: Uuid,
    pub name: String,
    pub metadata: Map<String, Value>,
    pub created_by: String,
    pub created_at: Timestamp,
    /// Deduplicated, the creator included.
    pub members: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CreateChannel {
    Created(Channel),
    /// The requested id is taken (by a live or a deleted channel).
    IdInUse(Channel),
    /// A live channel of the app has that name.
    NameTaken(Channel),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joined {
    Added,
    AlreadyMember,
    /// The channel has the largest number of members allowed.
    Full,
    /// No such live channel.
    NotFound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Left {
    Removed,
    NotMember,
    /// No such live channel.
    NotFound,
}

/// A message of a channel: one shared view, so no receipts and no per-user state.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelMessage {
    pub app_id: Uuid,
    pub id: Uuid,
    pub channel_id: Uuid,
    pub position: i64,
    pub sender: String,
    pub sent_at: Timestamp,
    pub parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewChannelMessage {
    pub app_id: Uuid,
    pub id: Uuid,
    pub channel_id: Uuid,
    pub sender: String,
    pub sent_at: Timestamp,
    pub parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SendChannelMessage {
    Sent(ChannelMessage),
    /// A channel message has this id already.
    IdInUse(ChannelMessage),
    /// A conversation message has this id.
    IdInUseByConversationMessage,
    /// No such live channel.
    ChannelNotFound,
}

#[async_trait]
pub trait ChannelStore: Send + Sync {
    /// Creates the channel with its members, unless the id or (among live channels) the name
    /// is taken.
    async fn create_channel(&self, new: &NewChannel) -> StoreResult<CreateChannel>;
    /// Any channel of the app, deleted ones included.
    async fn channel(&self, app_id: Uuid, id: Uuid) -> StoreResult<Option<Channel>>;
    async fn channel_member(
        &self,
        app_id: Uuid,
        channel_id: Uuid,
        user_id: &str,
    ) -> StoreResult<Option<ChannelMember>>;
    /// The live channels the user is a member of, newest first.
    async fn user_channels(
        &self,
        app_id: Uuid,
        user_id: &str,
        page: Page,
    ) -> StoreResult<Listing<UserChannel>>;
    /// Members in user id order, those after `after` (a user id).
    async fn channel_members(
        &self,
        app_id: Uuid,
        channel_id: Uuid,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Listing<ChannelMember>>;
    /// Writes new metadata if the channel is still at `revision`.
    async fn update_channel_metadata(
        &self,
        app_id: Uuid,
        id: Uuid,
        revision: i64,
        metadata: &Map<String, Value>,
    ) -> StoreResult<Updated>;
    /// Deletes for everyone: members and messages go, the id stays taken, the name is free.
    async fn delete_channel(&self, app_id: Uuid, id: Uuid, at: Timestamp) -> StoreResult<Deleted>;
    /// Adds a member unless the channel already has `max_members`.
    async fn add_channel_member(
        &self,
        app_id: Uuid,
        channel_id: Uuid,
        user_id: &str,
        at: Timestamp,
        max_members: usize,
    ) -> StoreResult<Joined>;
    async fn remove_channel_member(
        &self,
        app_id: Uuid,
        channel_id: Uuid,
        user_id: &str,
    ) -> StoreResult<Left>;

    /// Appends the message at the channel's next position.
    async fn send_channel_message(
        &self,
        message: &NewChannelMessage,
    ) -> StoreResult<SendChannelMessage>;
    async fn channel_message(&self, app_id: Uuid, id: Uuid) -> StoreResult<Option<ChannelMessage>>;
    /// A channel's messages, newest first.
    async fn channel_messages(
        &self,
        app_id: Uuid,
        channel_id: Uuid,
        page: Page,
    ) -> StoreResult<Listing<ChannelMessage>>;
    /// False when there is no such message.
    async fn delete_channel_message(&self, app_id: Uuid, id: Uuid) -> StoreResult<bool>;
}
