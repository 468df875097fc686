//! Per-user state (server-api.md §12, client-api.md §3.8/§3.9): suspension, the external badge
//! count, block lists, follows and push tokens, plus the app's session TTL and ending a user's
//! sessions.

use async_trait::async_trait;
use uuid::Uuid;

use super::{Identity, StoreResult, Timestamp};

/// Suspension and badge settings of one user; users nobody configured have the default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserState {
    /// Suspended users have no sessions and get none.
    pub suspended: bool,
    /// Set with `PUT /users/:user_id/badge`; `None` until then.
    pub external_unread_count: Option<i64>,
}

/// `GET /users/:user_id/badge`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Badge {
    /// The app's own count (0 until set).
    pub external_unread_count: i64,
    /// Conversations with at least one unread message.
    pub unread_conversation_count: i64,
    /// Unread messages over all conversations.
    pub unread_message_count: i64,
}

/// A device's push token (Client API `POST /push_tokens`), kept for push delivery.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PushToken {
    pub app_id: Uuid,
    pub user_id: String,
    /// Stable per device: a device has one token, and belongs to one user of the app at a time.
    pub device_id: String,
    pub token: String,
    /// `apns` or `gcm`.
    pub token_type: String,
    pub apns_bundle_id: Option<String>,
    pub gcm_sender_id: Option<String>,
    pub ios_version: Option<String>,
    pub registered_at: Timestamp,
}

/// The store of per-user state; implemented once for both backends in `users_sql.rs`.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// The user's state; the default for users never configured.
    async fn user_state(&self, app_id: Uuid, user_id: &str) -> StoreResult<UserState>;
    /// Suspends (also ending every session of the user) or reinstates.
    async fn set_suspended(
        &self,
        app_id: Uuid,
        user_id: &str,
        suspended: bool,
        at: Timestamp,
    ) -> StoreResult<()>;
    /// Sets the app's own badge count of the user.
    async fn set_external_unread_count(
        &self,
        app_id: Uuid,
        user_id: &str,
        count: i64,
        at: Timestamp,
    ) -> StoreResult<()>;
    /// Unread counts over the conversations the user can see, plus the external count.
    async fn badge(&self, app_id: Uuid, user_id: &str) -> StoreResult<Badge>;

    /// The app's session TTL (`None`: the configured default).
    async fn set_session_ttl(&self, app_id: Uuid, secs: Option<i64>) -> StoreResult<()>;
    /// The app's session TTL, when set.
    async fn session_ttl(&self, app_id: Uuid) -> StoreResult<Option<i64>>;
    /// Ends every session of the user; how many there were.
    async fn delete_sessions(&self, app_id: Uuid, user_id: &str) -> StoreResult<u64>;

    /// The users `owner` blocked, oldest block first (blocks of the same instant by user id).
    async fn blocks(&self, app_id: Uuid, owner: &str) -> StoreResult<Vec<String>>;
    /// Replaces the whole block list of `owner` (blocks kept keep their original time).
    async fn replace_blocks(
        &self,
        app_id: Uuid,
        owner: &str,
        blocked: &[String],
        at: Timestamp,
    ) -> StoreResult<()>;
    /// The identities of the users `owner` blocked (those without one are skipped), in no
    /// particular order.
    async fn blocked_identities(&self, app_id: Uuid, owner: &str) -> StoreResult<Vec<Identity>>;
    /// Blocks each of `add` and unblocks each of `remove` (one transaction; the two lists are
    /// disjoint). Row by row, so concurrent changes to one list never lose each other's updates
    /// (which a read-modify-write through `replace_blocks` would).
    async fn change_blocks(
        &self,
        app_id: Uuid,
        owner: &str,
        add: &[String],
        remove: &[String],
        at: Timestamp,
    ) -> StoreResult<()>;
    /// Those of `owners` who blocked `user`, in the order of `owners`.
    async fn blockers_among(
        &self,
        app_id: Uuid,
        owners: &[String],
        user: &str,
    ) -> StoreResult<Vec<String>>;

    /// `follower` explicitly follows each of `followed` (undoing earlier unfollows).
    async fn follow(
        &self,
        app_id: Uuid,
        follower: &str,
        followed: &[String],
        at: Timestamp,
    ) -> StoreResult<()>;
    /// Records that `follower` unfollowed `followed`; sharing a conversation later does not
    /// re-follow implicitly.
    async fn unfollow(
        &self,
        app_id: Uuid,
        follower: &str,
        followed: &str,
        at: Timestamp,
    ) -> StoreResult<()>;
    /// Whether `follower` follows `followed` now.
    async fn is_following(&self, app_id: Uuid, follower: &str, followed: &str)
        -> StoreResult<bool>;
    /// The users `follower` follows, in order of following, at most `limit` after `after` (none
    /// when `follower` never followed `after`).
    async fn followed(
        &self,
        app_id: Uuid,
        follower: &str,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<String>>;
    /// How many users `follower` follows.
    async fn followed_count(&self, app_id: Uuid, follower: &str) -> StoreResult<i64>;

    /// Whether the app has heard of the user: an identity, a session, a conversation (ever), an
    /// announcement, a follow either way, or per-user settings.
    async fn user_is_known(&self, app_id: Uuid, user_id: &str) -> StoreResult<bool>;

    /// Registers the token of a device for `token.user_id`: replaces what the device had (under
    /// any user of the app) and other devices' registrations of the same token, then keeps only
    /// the user's `keep` latest registrations.
    async fn register_push_token(&self, token: &PushToken, keep: u32) -> StoreResult<()>;
    /// Removes the user's token of the device; false when the user had none there.
    async fn unregister_push_token(
        &self,
        app_id: Uuid,
        user_id: &str,
        device_id: &str,
    ) -> StoreResult<bool>;
    /// The user's push tokens, latest registration first.
    async fn push_tokens(&self, app_id: Uuid, user_id: &str) -> StoreResult<Vec<PushToken>>;
}
