//! The delivery task of one socket: it owns the socket's cursor in its user's change log (the
//! last seq it queued) and queues everything after it, rendered for this socket, stamped with
//! each change's own time. Live delivery and `Event.replay` both go through it, so they never
//! interleave out of order and nothing is skipped.
//!
//! It reads on a wake-up from the Hub (a `Notice::Changed`), on a periodic re-check (so a lost
//! notification delays a change but never loses it), and when asked to replay. Reads are bounded
//! batches; queueing waits while the outbound queue is nearly full instead of overflowing it.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::{interval_at, Instant, MissedTickBehavior};

use super::hub::Socket;
use super::packet::Outbound;
use crate::error::ApiResult;
use crate::http::auth::Actor;
use crate::http::AppState;
use crate::render::Perspective;
use crate::store::Timestamp;

/// Changes read per query.
const BATCH: u32 = 100;

/// What the request worker asks of the delivery task.
pub enum Command {
    /// Re-send every change at or after `from` (then continue live), and report when all of
    /// them are queued.
    Replay {
        from: Timestamp,
        done: oneshot::Sender<ApiResult<()>>,
    },
}

struct Delivery {
    state: AppState,
    socket: Arc<Socket>,
    actor: Actor,
    /// Queue slots kept free for responses and signals.
    headroom: usize,
    /// The last seq queued.
    cursor: i64,
}

/// Runs until the socket's worker drops the command channel (the connection ended).
pub async fn run(
    state: AppState,
    socket: Arc<Socket>,
    cursor: i64,
    mut commands: mpsc::Receiver<Command>,
) {
    let limits = &state.settings.websocket;
    let period = Duration::from_secs(limits.ping_interval_secs);
    let headroom = (limits.outbound_queue / 4).max(1);
    let mut recheck = interval_at(Instant::now() + period, period);
    recheck.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let actor = Actor {
        app_id: socket.app_id,
        perspective: Perspective::Client {
            user_id: socket.user_id.clone(),
        },
    };
    let mut delivery = Delivery {
        state,
        socket,
        actor,
        headroom,
        cursor,
    };
    // Whatever was committed between the upgrade and now.
    let _ = delivery.catch_up(None).await;
    loop {
        tokio::select! {
            _ = delivery.socket.wake.notified() => { let _ = delivery.catch_up(None).await; }
            _ = recheck.tick() => { let _ = delivery.catch_up(None).await; }
            command = commands.recv() => match command {
                None => return,
                Some(Command::Replay { from, done }) => {
                    let result = delivery.replay(from).await;
                    let _ = done.send(result);
                }
            },
        }
    }
}

impl Delivery {
    /// Queues the changes after the cursor (after `from` when it is earlier: a replay).
    /// Store errors leave the cursor where delivery stopped; the next wake-up retries.
    async fn catch_up(&mut self, from: Option<i64>) -> ApiResult<()> {
        let store = &self.state.store;
        let (app_id, user) = (self.socket.app_id, self.socket.user_id.clone());
        let mut after = from.map_or(self.cursor, |f| f.min(self.cursor));
        loop {
            let batch = match store.changes_after(app_id, &user, after, BATCH).await {
                Ok(batch) => batch,
                Err(err) => {
                    tracing::warn!(error = %err, "reading the change log failed");
                    return Err(err.into());
                }
            };
            // Whatever the batch holds was committed before now (see `message_cache`).
            let read = super::changes::Read {
                at: std::time::Instant::now(),
                replay: from.is_some(),
            };
            let full = batch.len() == BATCH as usize;
            for change in batch {
                // Until it is queued, nothing else is stamped after it.
                self.socket
                    .undelivered_since
                    .store(change.at.millis(), Ordering::Relaxed);
                if let Some(event) = &change.event {
                    let rendered = super::changes::render(
                        &self.state,
                        &self.actor,
                        self.socket.version,
                        event,
                        read,
                    )
                    .await;
                    let packets = match rendered {
                        Ok(packets) => packets,
                        Err(err) => {
                            tracing::warn!(error = %err, "rendering a change failed");
                            return Err(err);
                        }
                    };
                    for (kind, body) in packets {
                        let packet = Outbound::Stamped {
                            kind,
                            body,
                            at: change.at,
                        };
                        if !self.socket.push_paced(packet, self.headroom).await {
                            return Ok(());
                        }
                    }
                }
                after = change.seq;
                self.cursor = self.cursor.max(after);
            }
            if !full {
                self.socket
                    .undelivered_since
                    .store(i64::MAX, Ordering::Relaxed);
                return Ok(());
            }
        }
    }

    /// `Event.replay`: every change at or after `from`, in order, then whatever is new.
    async fn replay(&mut self, from: Timestamp) -> ApiResult<()> {
        // Everything from `from` on is undelivered again until it is queued.
        self.socket
            .undelivered_since
            .store(from.millis(), Ordering::Relaxed);
        let start = self
            .state
            .store
            .seq_before(self.socket.app_id, &self.socket.user_id, from)
            .await?;
        self.catch_up(Some(start)).await
    }
}
