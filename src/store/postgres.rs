//! The Postgres store: production and multi-node deployments.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

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

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub struct PgStore {
    pool: PgPool,
    feed: std::sync::Arc<super::ChangeFeed>,
    /// Wakes this process's webhook worker after commits that enqueued deliveries.
    hooks: std::sync::Arc<tokio::sync::Notify>,
}

/// How long a pooled connection sits unused before it is tested on acquire.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(5);

impl PgStore {
    async fn close_pools(&self) {
        self.pool.close().await;
    }

    pub async fn connect(url: &str, settings: &DatabaseSettings) -> StoreResult<Self> {
        let options: PgConnectOptions = url.parse()?;
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            // sqlx pings a connection on every acquire by default: a round trip to Postgres
            // before each use. Only one idle for a while (a restart of Postgres may have cut
            // it) is tested; a busy one was in use a moment ago, and one that broke since
            // fails its query and is dropped.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= IDLE_BEFORE_PING {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .acquire_timeout(Duration::from_secs(settings.acquire_timeout_secs))
            .connect_with(options.application_name("layer-server"))
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(PgStore {
            pool,
            feed: super::ChangeFeed::new(),
            hooks: Default::default(),
        })
    }

    /// Postgres runs data-modifying CTEs: a send is a few statements.
    const WRITABLE_CTES: bool = true;

    /// A transaction for a write (Postgres: a plain `BEGIN`; see `SqliteStore::begin`).
    async fn begin(&self) -> Result<super::write_tx::WriteTx<sqlx::Postgres>, sqlx::Error> {
        Ok(super::write_tx::WriteTx::pooled(self.pool.begin().await?))
    }

    /// `begin` (Postgres sends its `BEGIN` with the first statement anyway).
    async fn begin_lazy(&self) -> Result<super::write_tx::WriteTx<sqlx::Postgres>, sqlx::Error> {
        self.begin().await
    }
}

impl_sql_store!(PgStore, Backend::Postgres);
impl_delivery_store!(PgStore);
impl_messaging_store!(PgStore, sqlx::Postgres);
impl_change_log!(PgStore, sqlx::Postgres);
impl_channel_store!(PgStore, sqlx::Postgres);
impl_user_store!(PgStore);
impl_content_store!(PgStore, sqlx::Postgres);
impl_webhook_store!(
    PgStore,
    sqlx::Postgres,
    " for update skip locked",
    " for update of o skip locked"
);
impl_webhook_events!(PgStore, sqlx::Postgres);
