//! The SQLite store: the zero-configuration default, one file, one node.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::ConnectOptions;

use super::changes_sql::impl_change_log;
use super::channels_sql::impl_channel_store;
use super::content_sql::impl_content_store;
use super::delivery_sql::impl_delivery_store;
use super::messaging_sql::impl_messaging_store;
use super::sql::impl_sql_store;
use super::users_sql::impl_user_store;
use super::webhooks_sql::{impl_webhook_events, impl_webhook_store};
use super::write_tx::{self, WriteTx, Writer, WriterSlot};
use super::{Backend, StoreResult};
use crate::config::DatabaseSettings;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteStore {
    /// Reads (and the few writes outside `begin`).
    pool: SqlitePool,
    /// The one connection of this process's write transactions (see `WriteTx`).
    writer: WriterSlot<sqlx::Sqlite>,
    feed: std::sync::Arc<super::ChangeFeed>,
    /// Wakes this process's webhook worker after commits that enqueued deliveries.
    hooks: std::sync::Arc<tokio::sync::Notify>,
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
            // The database is in this process: nothing to test, and a test is a round trip to
            // the connection's thread on every acquire.
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(settings.acquire_timeout_secs))
            .connect_with(options.clone())
            .await?;
        MIGRATOR.run(&pool).await?;
        // One connection for every write transaction (see `WriteTx`).
        let writer = options.connect().await?;
        Ok(SqliteStore {
            pool,
            writer: Writer::slot(writer),
            feed: super::ChangeFeed::new(),
            hooks: Default::default(),
        })
    }

    async fn close_pools(&self) {
        write_tx::close(&self.writer).await;
        self.pool.close().await;
    }

    /// SQLite has no data-modifying CTEs (its round trips are in-process and cheap).
    const WRITABLE_CTES: bool = false;

    /// A transaction for a write: `BEGIN IMMEDIATE` takes SQLite's write lock up front (waiting
    /// up to `sqlite_busy_timeout_ms` for it when another process holds it). A deferred `BEGIN`
    /// that reads before it writes holds a WAL snapshot, and its first write fails at once with
    /// `SQLITE_BUSY` (no busy wait) when another connection committed in between; taking the
    /// lock first serialises the writers instead of failing one of them.
    ///
    /// Writers of this process first queue for its write connection (see `WriteTx`).
    async fn begin(&self) -> Result<WriteTx<sqlx::Sqlite>, sqlx::Error> {
        WriteTx::owned(&self.writer, execute, false).await
    }

    /// `begin`, with the `BEGIN` sent with the first statement (see `WriteTx::opening`).
    async fn begin_lazy(&self) -> Result<WriteTx<sqlx::Sqlite>, sqlx::Error> {
        WriteTx::owned(&self.writer, execute, true).await
    }
}

/// `write_tx::Exec` of SQLite.
fn execute<'c>(
    conn: &'c mut sqlx::SqliteConnection,
    sql: &'static str,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), sqlx::Error>> + Send + 'c>> {
    Box::pin(async move { sqlx::Executor::execute(conn, sql).await.map(drop) })
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> SqliteStore {
        let settings = DatabaseSettings {
            url: String::new().into(),
            max_connections: 2,
            acquire_timeout_secs: 5,
            sqlite_busy_timeout_ms: 1000,
        };
        SqliteStore::connect("sqlite::memory:", &settings)
            .await
            .unwrap()
    }

    /// Inserts app `name` in `tx` as one statement, with `prefix` and `suffix` around it.
    async fn insert_app(tx: &mut WriteTx<sqlx::Sqlite>, prefix: &str, name: &str, suffix: &str) {
        let sql = format!(
            "{prefix}insert into apps (id, name, provider_id, created_at) values ($1, '{name}', $2, $3){suffix}"
        );
        sqlx::query(&sql)
            .bind(uuid::Uuid::new_v4())
            .bind(uuid::Uuid::new_v4())
            .bind(crate::store::Timestamp::now())
            .execute(&mut **tx)
            .await
            .unwrap();
    }

    async fn apps_named(store: &SqliteStore, name: &str) -> i64 {
        sqlx::query_scalar("select count(*) from apps where name = $1")
            .bind(name)
            .fetch_one(&store.pool)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_lazy_write_begins_and_commits_with_its_statements() {
        let store = store().await;
        let mut tx = store.begin_lazy().await.unwrap();
        let (opening, closing) = (tx.opening(), tx.closing());
        assert_eq!((opening, closing), ("BEGIN IMMEDIATE; ", "; COMMIT"));
        // Asked again, nothing more to send.
        assert_eq!(tx.opening(), "");
        insert_app(&mut tx, opening, "lazy", closing).await;
        tx.commit().await.unwrap();
        assert_eq!(apps_named(&store, "lazy").await, 1);
        // An eager write after it begins on a connection with no transaction left open.
        let mut tx = store.begin().await.unwrap();
        assert_eq!(tx.opening(), "");
        insert_app(&mut tx, "", "eager", "").await;
        tx.commit().await.unwrap();
        assert_eq!(apps_named(&store, "eager").await, 1);
    }

    #[tokio::test]
    async fn a_dropped_write_is_rolled_back_before_the_next_one() {
        let store = store().await;
        let mut tx = store.begin_lazy().await.unwrap();
        let opening = tx.opening();
        insert_app(&mut tx, opening, "dropped", "").await;
        drop(tx);
        let mut tx = store.begin().await.unwrap();
        insert_app(&mut tx, "", "next", "").await;
        tx.commit().await.unwrap();
        assert_eq!(apps_named(&store, "dropped").await, 0);
        assert_eq!(apps_named(&store, "next").await, 1);

        // Dropped where no runtime can roll it back: the next writer does.
        let mut tx = store.begin().await.unwrap();
        insert_app(&mut tx, "", "orphaned", "").await;
        std::thread::spawn(move || drop(tx)).join().unwrap();
        let tx = store.begin().await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(apps_named(&store, "orphaned").await, 0);
    }

    #[tokio::test]
    async fn writes_after_close_fail() {
        let store = store().await;
        store.close_pools().await;
        assert!(matches!(store.begin().await, Err(sqlx::Error::PoolClosed)));
    }
}
