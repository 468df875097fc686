//! The transaction of a store write. On SQLite it also holds this process's write permit.

use std::ops::{Deref, DerefMut};

use tokio::sync::OwnedSemaphorePermit;

/// A write transaction: derefs to the connection, like `sqlx::Transaction`, and ends with
/// `commit` (or a rollback when dropped).
///
/// SQLite has one writer at a time. Left to SQLite, writers that find the lock taken poll for
/// it in its busy handler, which sleeps 1, 2, 5, 10 … 100 ms between tries: the lock sits
/// idle while they sleep, and a burst of sends waited up to a second. Queueing writers for a
/// permit before `BEGIN IMMEDIATE` hands the lock over as soon as it is free, in order; and
/// waiting writers hold no pooled connection. (Other processes on the same file still meet
/// the busy handler.)
pub(crate) struct WriteTx<DB: sqlx::Database> {
    tx: sqlx::Transaction<'static, DB>,
    /// Dropped after the transaction ended (fields drop in order).
    _permit: Option<OwnedSemaphorePermit>,
}

impl<DB: sqlx::Database> WriteTx<DB> {
    pub(crate) fn new(
        tx: sqlx::Transaction<'static, DB>,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Self {
        WriteTx {
            tx,
            _permit: permit,
        }
    }

    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

impl<DB: sqlx::Database> Deref for WriteTx<DB> {
    type Target = DB::Connection;

    fn deref(&self) -> &DB::Connection {
        &self.tx
    }
}

impl<DB: sqlx::Database> DerefMut for WriteTx<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        &mut self.tx
    }
}
