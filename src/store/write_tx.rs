//! The transaction of a store write: a pooled transaction on Postgres; on SQLite, one held on
//! the process's write connection.

use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::{Mutex, OwnedMappedMutexGuard, OwnedMutexGuard};

/// Runs one fixed statement (`BEGIN IMMEDIATE`, `COMMIT`, `ROLLBACK`) on a connection; given by
/// the backend that owns its connection, so that this module needs no `Executor` bounds.
pub(crate) type Exec<DB> =
    for<'c> fn(
        &'c mut <DB as sqlx::Database>::Connection,
        &'static str,
    ) -> Pin<Box<dyn Future<Output = Result<(), sqlx::Error>> + Send + 'c>>;

/// The one connection of a process's write transactions (SQLite): `None` once closed.
pub(crate) type WriterSlot<DB> = Arc<Mutex<Option<Writer<DB>>>>;

pub(crate) struct Writer<DB: sqlx::Database> {
    conn: DB::Connection,
    /// A transaction is open on `conn` (from `BEGIN` until its `COMMIT` or `ROLLBACK` ran).
    open: bool,
}

impl<DB: sqlx::Database> Writer<DB> {
    pub(crate) fn slot(conn: DB::Connection) -> WriterSlot<DB> {
        Arc::new(Mutex::new(Some(Writer { conn, open: false })))
    }
}

/// A write transaction: derefs to the connection, like `sqlx::Transaction`, and ends with
/// `commit` (or a rollback when dropped).
///
/// SQLite has one writer at a time, so a process gives its write transactions one connection,
/// which they lock in turn. Left to SQLite, writers that find its lock taken poll for it in its
/// busy handler, which sleeps 1, 2, 5, 10 … 100 ms between tries: the lock sits idle while they
/// sleep, and a burst of sends waited up to a second. Queueing writers on the (fair) mutex of
/// the connection hands the lock over as soon as it is free, in order; waiting writers hold no
/// pooled connection; and the connection keeps the write statements prepared. (Other processes
/// on the same file still meet the busy handler.)
///
/// Each statement is a round trip to the connection's thread, which costs more CPU than the
/// statement itself on SQLite. A transaction begun with `SqliteStore::begin_lazy` sends its
/// `BEGIN` with its first statement (`opening`) and may send its `COMMIT` with its last
/// (`closing`): a send is two round trips, not four (five with a pool's release check).
pub(crate) struct WriteTx<DB: sqlx::Database> {
    inner: Inner<DB>,
}

enum Inner<DB: sqlx::Database> {
    /// `None` only while `commit` consumes it.
    Pooled(Option<sqlx::Transaction<'static, DB>>),
    Owned(Owned<DB>),
}

struct Owned<DB: sqlx::Database> {
    /// `None` only once handed to the rollback of `drop`.
    writer: Option<OwnedMappedMutexGuard<Option<Writer<DB>>, Writer<DB>>>,
    exec: Exec<DB>,
    /// The last statement sent ends with `COMMIT` (see `closing`).
    commit_sent: bool,
}

impl<DB: sqlx::Database> WriteTx<DB> {
    pub(crate) fn pooled(tx: sqlx::Transaction<'static, DB>) -> Self {
        WriteTx {
            inner: Inner::Pooled(Some(tx)),
        }
    }

    /// Locks the write connection of `slot` (waiting for the writers before), and sends
    /// `BEGIN IMMEDIATE` unless `lazy` (then the first statement must start with `opening()`).
    pub(crate) async fn owned(
        slot: &WriterSlot<DB>,
        exec: Exec<DB>,
        lazy: bool,
    ) -> Result<Self, sqlx::Error> {
        let guard: OwnedMutexGuard<Option<Writer<DB>>> = slot.clone().lock_owned().await;
        let mut writer =
            OwnedMutexGuard::try_map(guard, Option::as_mut).map_err(|_| sqlx::Error::PoolClosed)?;
        if writer.open {
            // Left open by a transaction dropped where no runtime could roll it back.
            exec(&mut writer.conn, "ROLLBACK").await?;
            writer.open = false;
        }
        if !lazy {
            exec(&mut writer.conn, "BEGIN IMMEDIATE").await?;
            writer.open = true;
        }
        Ok(WriteTx {
            inner: Inner::Owned(Owned {
                writer: Some(writer),
                exec,
                commit_sent: false,
            }),
        })
    }

    fn writer(&mut self) -> Option<&mut Writer<DB>> {
        match &mut self.inner {
            Inner::Owned(Owned {
                writer: Some(writer),
                ..
            }) => Some(writer),
            _ => None,
        }
    }

    /// What the transaction's first statement must start with: `BEGIN IMMEDIATE; ` for a lazy
    /// transaction not yet begun, else nothing.
    pub(crate) fn opening(&mut self) -> &'static str {
        match self.writer() {
            Some(writer) if !writer.open => {
                // Open from here on: if the statement fails after its BEGIN ran, the drop rolls
                // back (a ROLLBACK with none open fails harmlessly).
                writer.open = true;
                "BEGIN IMMEDIATE; "
            }
            _ => "",
        }
    }

    /// What the transaction's last statement may end with to commit in the same round trip
    /// (`; COMMIT` on SQLite's write connection, else nothing); `commit` must still be called
    /// once the statement succeeded.
    pub(crate) fn closing(&mut self) -> &'static str {
        match &mut self.inner {
            Inner::Owned(owned) if owned.writer.as_ref().is_some_and(|w| w.open) => {
                owned.commit_sent = true;
                "; COMMIT"
            }
            _ => "",
        }
    }

    pub(crate) async fn commit(mut self) -> Result<(), sqlx::Error> {
        match &mut self.inner {
            Inner::Pooled(tx) => match tx.take() {
                Some(tx) => tx.commit().await,
                None => Ok(()),
            },
            Inner::Owned(owned) => {
                let (exec, commit_sent) = (owned.exec, owned.commit_sent);
                let Some(writer) = owned.writer.as_mut() else {
                    return Ok(());
                };
                if writer.open && !commit_sent {
                    exec(&mut writer.conn, "COMMIT").await?;
                }
                writer.open = false;
                Ok(())
            }
        }
    }
}

impl<DB: sqlx::Database> Drop for WriteTx<DB> {
    fn drop(&mut self) {
        let Inner::Owned(owned) = &mut self.inner else {
            // sqlx rolls a dropped transaction back.
            return;
        };
        if !owned.writer.as_ref().is_some_and(|w| w.open) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // The next writer rolls it back first.
            return;
        };
        let (exec, writer) = (owned.exec, owned.writer.take());
        // The connection stays locked until the rollback ran.
        runtime.spawn(async move {
            if let Some(mut writer) = writer {
                if let Err(err) = exec(&mut writer.conn, "ROLLBACK").await {
                    tracing::debug!(error = %err, "rollback of a dropped write transaction");
                }
                writer.open = false;
            }
        });
    }
}

impl<DB: sqlx::Database> Deref for WriteTx<DB> {
    type Target = DB::Connection;

    fn deref(&self) -> &DB::Connection {
        match &self.inner {
            Inner::Pooled(Some(tx)) => tx,
            Inner::Owned(Owned {
                writer: Some(writer),
                ..
            }) => &writer.conn,
            // Both are `None` only inside `commit` and `drop`, which consume the transaction.
            _ => unreachable!("a write transaction used after it ended"),
        }
    }
}

impl<DB: sqlx::Database> DerefMut for WriteTx<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        match &mut self.inner {
            Inner::Pooled(Some(tx)) => tx,
            Inner::Owned(Owned {
                writer: Some(writer),
                ..
            }) => &mut writer.conn,
            _ => unreachable!("a write transaction used after it ended"),
        }
    }
}

/// Closes the write connection of `slot` once its current writer is done; later writes fail
/// with `PoolClosed`.
pub(crate) async fn close<DB: sqlx::Database>(slot: &WriterSlot<DB>) {
    use sqlx::Connection;
    if let Some(writer) = slot.lock().await.take() {
        let _ = writer.conn.close().await;
    }
}
