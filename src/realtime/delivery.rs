//! The delivery task of one socket: it owns the socket's cursor in its user's change log (the
//! last seq it queued) and queues everything after it, rendered for this socket, stamped with
//! each change's own time. Live delivery and `Event.replay` both go through it, so they never
//! interleave out of order and nothing is skipped.
//!
//! A wake-up from the Hub comes with the changes this node appended to the user's log (handed
//! over after their commit): they are queued without reading the log while they follow the
//! cursor. It reads the log when they leave a gap, on a wake-up for another node's changes
//! (`Notice::Changed`), on a periodic re-check (so a lost notification delays a change but
//! never loses it), and when asked to replay. Reads are bounded
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
use crate::store::{Change, Timestamp};

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
            _ = delivery.socket.wake.notified() => { let _ = delivery.woken().await; }
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

/// The changes handed over that follow `cursor` without a gap, in seq order (commits can reach
/// the feed in another order than their seqs); `None` when one is missing: the log is read.
fn following(cursor: i64, mut changes: Vec<Change>) -> Option<Vec<Change>> {
    changes.retain(|c| c.seq > cursor);
    changes.sort_unstable_by_key(|c| c.seq);
    let gapless = (cursor + 1..).zip(&changes).all(|(seq, c)| c.seq == seq);
    gapless.then_some(changes)
}

impl Delivery {
    /// After a wake-up: queues the changes handed over while they follow the cursor, and reads
    /// the log when they leave a gap or the wake-up handed nothing over (another node's change,
    /// a lost notification, a backlog too long to keep).
    async fn woken(&mut self) -> ApiResult<()> {
        let handed = self.socket.take_handed();
        if !handed.read_log {
            if let Some(changes) = following(self.cursor, handed.changes) {
                let read = super::changes::Read {
                    at: std::time::Instant::now(),
                    replay: false,
                };
                for change in &changes {
                    if !self.queue(change, read).await? {
                        return Ok(());
                    }
                }
                self.caught_up();
                return Ok(());
            }
        }
        self.catch_up(None).await
    }

    /// Nothing is left to queue.
    fn caught_up(&self) {
        self.socket
            .undelivered_since
            .store(i64::MAX, Ordering::Relaxed);
    }

    /// Renders a change for this socket and queues it (waiting while the queue is nearly full),
    /// then moves the cursor past it. False when the socket is gone.
    async fn queue(&mut self, change: &Change, read: super::changes::Read) -> ApiResult<bool> {
        // Until it is queued, nothing else is stamped after it.
        self.socket
            .undelivered_since
            .store(change.at.millis(), Ordering::Relaxed);
        if let Some(event) = &change.event {
            let rendered =
                super::changes::render(&self.state, &self.actor, self.socket.version, event, read)
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
                    return Ok(false);
                }
            }
        }
        self.cursor = self.cursor.max(change.seq);
        Ok(true)
    }

    /// Queues the changes after the cursor (after `from` when it is earlier: a replay), read
    /// from the log. Store errors leave the cursor where delivery stopped; the next wake-up
    /// retries.
    async fn catch_up(&mut self, from: Option<i64>) -> ApiResult<()> {
        let (app_id, user) = (self.socket.app_id, self.socket.user_id.clone());
        let mut after = from.map_or(self.cursor, |f| f.min(self.cursor));
        loop {
            let batch = match self
                .state
                .store
                .changes_after(app_id, &user, after, BATCH)
                .await
            {
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
            for change in &batch {
                if !self.queue(change, read).await? {
                    return Ok(());
                }
                after = change.seq;
            }
            if !full {
                self.caught_up();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(seqs: &[i64]) -> Vec<Change> {
        seqs.iter()
            .map(|&seq| Change {
                seq,
                at: Timestamp::from_millis(seq),
                event: None,
            })
            .collect()
    }

    fn seqs(changes: Option<Vec<Change>>) -> Option<Vec<i64>> {
        changes.map(|c| c.into_iter().map(|c| c.seq).collect())
    }

    #[test]
    fn handed_changes_are_queued_in_seq_order_when_they_follow_the_cursor() {
        assert_eq!(seqs(following(4, changes(&[5, 6, 7]))), Some(vec![5, 6, 7]));
        assert_eq!(seqs(following(4, changes(&[7, 5, 6]))), Some(vec![5, 6, 7]));
        assert_eq!(seqs(following(4, changes(&[]))), Some(vec![]));
    }

    #[test]
    fn handed_changes_already_queued_are_dropped() {
        // Read from the log since they were handed over.
        assert_eq!(seqs(following(6, changes(&[5, 6, 7]))), Some(vec![7]));
        assert_eq!(seqs(following(9, changes(&[5, 6, 7]))), Some(vec![]));
    }

    #[test]
    fn a_gap_means_the_log_is_read() {
        // 5 committed on another node, or its feed call comes later.
        assert_eq!(seqs(following(4, changes(&[6, 7]))), None);
        assert_eq!(seqs(following(4, changes(&[5, 7]))), None);
    }
}
