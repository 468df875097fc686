//! Persistence: the `Store` trait the services call, its records, and `open` which picks the
//! backend from the database URL (`postgres://` or `sqlite:`). The store does no HTTP.

pub(crate) mod changes;
mod changes_sql;
mod channels;
mod channels_sql;
mod content;
mod content_sql;
mod delivery;
pub(crate) mod delivery_sql;
mod messaging;
mod messaging_sql;
mod postgres;
mod sql;
mod sqlite;
mod timestamp;
mod users;
mod users_sql;
pub mod webhooks;
mod webhooks_sql;
pub(crate) mod write_tx;

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use uuid::Uuid;

pub use changes::{
    Appended, Change, ChangeFeed, ChangeLogStore, Committed, ConversationOp, Event, SentMessage,
};
pub use channels::*;
pub use content::{Content, ContentStore};
pub use delivery::{DeliveryStore, DeliveryView, OwnReceipt, SeenMessage};
pub use messaging::*;
pub use timestamp::Timestamp;
pub use users::{Badge, PushToken, UserState, UserStore};
pub use webhooks::WebhookStore;

use crate::config::Settings;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint (named) rejected the write.
    #[error("conflict on {0}")]
    Conflict(String),
    /// A part references a content that no longer exists: it was collected (never sent within
    /// `unreferenced_ttl_secs`) between the check of the reference and the write.
    #[error("a referenced content no longer exists")]
    ContentGone,
    /// The database could not be reached or no connection was free in time.
    #[error("database unavailable: {0}")]
    Unavailable(sqlx::Error),
    #[error("database error: {0}")]
    Database(sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL {0:?}: use postgres://... or sqlite://...")]
    UnsupportedUrl(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(db.constraint().unwrap_or("unique").to_owned())
            }
            // Protocol: the peer broke off mid-handshake or mid-query (e.g. a proxy in front of a
            // database that is down) — as retryable as a refused connection.
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Protocol(_)
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(err),
            _ => StoreError::Database(err),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct App {
    pub id: Uuid,
    pub name: String,
    /// The identity provider (`iss` of identity tokens) keys default to.
    pub provider_id: Uuid,
    pub created_at: Timestamp,
    /// Suspended by the operator: logins, sessions and Bearer tokens are refused.
    pub suspended: bool,
}

/// Where a token or key came from: the CLI, configuration, or the development bootstrap.
pub const SOURCE_CLI: &str = "cli";
pub const SOURCE_CONFIG: &str = "config";
pub const SOURCE_DEV: &str = "dev";

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BearerToken {
    pub id: Uuid,
    pub app_id: Uuid,
    /// Hex SHA-256 of the secret; the secret itself is never stored.
    pub token_hash: String,
    pub label: Option<String>,
    pub source: String,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// A Bearer token being used, with the state of its app.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ActiveToken {
    #[sqlx(flatten)]
    pub token: BearerToken,
    pub app_suspended: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ProviderKey {
    /// The `kid` of identity tokens signed with this key.
    pub id: Uuid,
    pub app_id: Uuid,
    /// The `iss` identity tokens signed with this key must carry.
    pub provider_id: Uuid,
    pub public_key_pem: String,
    pub source: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Session {
    pub app_id: Uuid,
    pub user_id: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Identity {
    pub app_id: Uuid,
    pub user_id: String,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone_number: Option<String>,
    pub email_address: Option<String>,
    pub identity_type: String,
    pub public_key: Option<String>,
    pub metadata: Json<serde_json::Map<String, serde_json::Value>>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Identity {
    /// The rendered properties that differ between two versions of an identity (`identity_type`
    /// is also rendered as `type` to users).
    pub fn changed_fields(&self, new: &Identity) -> Vec<String> {
        let mut fields = Vec::new();
        let mut compare = |name: &str, differs: bool| {
            if differs {
                fields.push(name.to_owned());
            }
        };
        compare("display_name", self.display_name != new.display_name);
        compare("avatar_url", self.avatar_url != new.avatar_url);
        compare("first_name", self.first_name != new.first_name);
        compare("last_name", self.last_name != new.last_name);
        compare("phone_number", self.phone_number != new.phone_number);
        compare("email_address", self.email_address != new.email_address);
        compare("public_key", self.public_key != new.public_key);
        compare("metadata", self.metadata.0 != new.metadata.0);
        if self.identity_type != new.identity_type {
            fields.push("identity_type".to_owned());
            fields.push("type".to_owned());
        }
        fields
    }

    /// An identity with no profile and no metadata (a user nobody described yet).
    pub fn blank(app_id: Uuid, user_id: &str, now: Timestamp) -> Self {
        Identity {
            app_id,
            user_id: user_id.to_owned(),
            display_name: None,
            avatar_url: None,
            first_name: None,
            last_name: None,
            phone_number: None,
            email_address: None,
            identity_type: "user".to_owned(),
            public_key: None,
            metadata: Json(serde_json::Map::new()),
            created_at: now,
            updated_at: now,
        }
    }
}

/// Who repeats a create: an If-None-Match tag is scoped to app + caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedupKey {
    pub app_id: Uuid,
    pub caller: String,
    pub tag: Uuid,
}

/// A response kept to be replayed for repeats of its request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DedupClaim {
    /// This caller owns the tag now: execute, then `complete_dedup` or `release_dedup`.
    Acquired,
    /// Another request with the tag is executing (since `claimed_at`).
    Pending { claimed_at: Timestamp },
    /// The tag's request already ran.
    Done {
        request_hash: String,
        response: StoredResponse,
    },
}

/// What `prune` removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub nonces: u64,
    pub sessions: u64,
    pub dedup_entries: u64,
}

/// Everything the services persist. The foundation's methods are here; conversations, messages,
/// channels and per-user state live in the supertraits (one file each).
#[async_trait]
pub trait Store:
    MessagingStore
    + ChannelStore
    + ContentStore
    + UserStore
    + ChangeLogStore
    + WebhookStore
    + DeliveryStore
    + Send
    + Sync
    + 'static
{
    fn backend(&self) -> Backend;
    /// A round trip to the database (readiness).
    async fn ping(&self) -> StoreResult<()>;
    async fn close(&self);

    // Apps.
    /// Conflict when the id is taken.
    async fn create_app(&self, app: &App) -> StoreResult<()>;
    /// Creates or renames (configuration-declared apps); keeps an existing provider id unless
    /// `provider_id` is given.
    async fn upsert_app(&self, id: Uuid, name: &str, provider_id: Option<Uuid>)
        -> StoreResult<App>;
    async fn app(&self, id: Uuid) -> StoreResult<Option<App>>;
    async fn apps(&self) -> StoreResult<Vec<App>>;
    /// Suspends or reinstates an app; false when there is no such app.
    async fn set_app_suspended(&self, id: Uuid, suspended: bool) -> StoreResult<bool>;

    // Bearer tokens.
    /// False when a token with that hash exists already (declared tokens are re-added every start).
    async fn add_token(&self, token: &BearerToken) -> StoreResult<bool>;
    async fn tokens(&self, app_id: Option<Uuid>) -> StoreResult<Vec<BearerToken>>;
    /// False when no active token has that id.
    async fn revoke_token(&self, id: Uuid, at: Timestamp) -> StoreResult<bool>;
    /// The active (unrevoked) token with this hash, and whether its app is suspended (one
    /// round trip per Platform API request).
    async fn active_token(&self, token_hash: &str) -> StoreResult<Option<ActiveToken>>;

    // Identity-provider keys.
    /// Conflict when the key id is taken.
    async fn add_key(&self, key: &ProviderKey) -> StoreResult<()>;
    /// Creates or replaces a configuration-declared key.
    async fn upsert_key(&self, key: &ProviderKey) -> StoreResult<()>;
    async fn keys(&self, app_id: Option<Uuid>) -> StoreResult<Vec<ProviderKey>>;
    async fn remove_key(&self, id: Uuid) -> StoreResult<bool>;
    async fn key(&self, app_id: Uuid, id: Uuid) -> StoreResult<Option<ProviderKey>>;

    // Nonces and sessions (secrets are stored as SHA-256 hex).
    async fn create_nonce(&self, nonce_hash: &str, expires_at: Timestamp) -> StoreResult<()>;
    /// Burns the nonce; true only for the first use of an unexpired nonce.
    async fn consume_nonce(&self, nonce_hash: &str, now: Timestamp) -> StoreResult<bool>;
    async fn create_session(&self, token_hash: &str, session: &Session) -> StoreResult<()>;
    async fn session(&self, token_hash: &str, now: Timestamp) -> StoreResult<Option<Session>>;
    /// Ends one session (logout); false when no session had that hash.
    async fn delete_session(&self, token_hash: &str) -> StoreResult<bool>;

    // Identities.
    /// False when the user already has an identity.
    async fn insert_identity(&self, identity: &Identity) -> StoreResult<bool>;
    /// Creates or replaces; true when created.
    async fn put_identity(&self, identity: &Identity) -> StoreResult<bool>;
    async fn identity(&self, app_id: Uuid, user_id: &str) -> StoreResult<Option<Identity>>;
    /// False when the user had no identity.
    async fn delete_identity(&self, app_id: Uuid, user_id: &str) -> StoreResult<bool>;

    // If-None-Match de-duplication.
    async fn claim_dedup(
        &self,
        key: &DedupKey,
        request_hash: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> StoreResult<DedupClaim>;
    async fn complete_dedup(&self, key: &DedupKey, response: &StoredResponse) -> StoreResult<()>;
    async fn release_dedup(&self, key: &DedupKey) -> StoreResult<()>;

    /// Deletes expired nonces, sessions and dedup entries.
    async fn prune(&self, now: Timestamp) -> StoreResult<Pruned>;
}

pub type DynStore = Arc<dyn Store>;

/// Connects (creating a SQLite file and its directory if needed) and applies the migrations.
pub async fn open(settings: &Settings) -> StoreResult<DynStore> {
    let url = settings.database_url();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(
            postgres::PgStore::connect(&url, &settings.database).await?,
        ))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(
            sqlite::SqliteStore::connect(&url, &settings.database).await?,
        ))
    } else {
        Err(StoreError::UnsupportedUrl(redact_url(&url)))
    }
}

/// A database URL fit for logs: the password replaced.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}
