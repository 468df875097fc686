//! The SQLite store: the zero-configuration default, one file, one node.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::changes_sql::impl_change_log;
use super::channels_sql::impl_channel_store;
use super::content_sql::impl_content_store;
use super::delivery_sql::impl_delivery_store;
use super::messaging_sql::impl_messaging_store;
use super::sql::impl_sql_store;
use super::users_sql::impl_user_store;
use super::webhooks_sql::{impl_webhook_events, impl_webhook_store};
use super::{Backend, StoreResult};
use crate::config::DatabaseSettings;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteStore {
    pool: SqlitePool,
    feed: std::sync::Arc<super::ChangeFeed>,
    /// Wakes this process's webhook worker after commits that enqueued deliveries.
    hooks: std::sync::Arc<tokio::sync::Notify>,
    /// The write permit of this process (one writer at a time; see `WriteTx`).
    writer: std::sync::Arc<tokio::sync::Semaphore>,
}

impl SqliteStore {
    pub async fn connect(url: &str, settings: &DatabaseSettings) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // With WAL, NORMAL loses no committed transaction on a process crash (only, possibly,
            // the last ones on a power loss) and avoids an fsync per commit.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_millis(settings.sqlite_busy_timeout_ms))
            .foreign_keys(true);
        if let Some(dir) = options.get_filename().parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(sqlx::Error::Io)?;
            }
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(Duration::from_secs(settings.acquire_timeout_secs))
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(SqliteStore {
            pool,
            feed: super::ChangeFeed::new(),
            hooks: Default::default(),
            writer: std::sync::Arc::new(tokio::sync::Semaphore::new(1)),
        })
    }

    /// SQLite has no data-modifying CTEs (its round trips are in-process and cheap).
    const WRITABLE_CTES: bool = false;

    /// A transaction for a write: `BEGIN IMMEDIATE` takes SQLite's write lock up front (waiting
    /// up to `sqlite_busy_timeout_ms` for it). A deferred `BEGIN` that reads before it writes
    /// holds a WAL snapshot, and its first write fails at once with `SQLITE_BUSY` (no busy wait)
    /// when another connection committed in between; taking the lock first serialises the
    /// writers instead of failing one of them.
    ///
    /// Writers of this process first queue for its one write permit (see `WriteTx`).
    async fn begin(&self) -> Result<super::write_tx::WriteTx<sqlx::Sqlite>, sqlx::Error> {
        // The semaphore is never closed.
        let permit = self.writer.clone().acquire_owned().await.ok();
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        Ok(super::write_tx::WriteTx::new(tx, permit))
    }
}

impl_sql_store!(SqliteStore, Backend::Sqlite);
impl_delivery_store!(SqliteStore);
impl_messaging_store!(SqliteStore, sqlx::Sqlite);
impl_change_log!(SqliteStore, sqlx::Sqlite);
impl_channel_store!(SqliteStore, sqlx::Sqlite);
impl_user_store!(SqliteStore);
impl_content_store!(SqliteStore, sqlx::Sqlite);
impl_webhook_store!(SqliteStore, sqlx::Sqlite, "", "");
impl_webhook_events!(SqliteStore, sqlx::Sqlite);
