//! The two ways of driving sends. Open loop: send `i` is due at `start + i / rate` whatever
//! happened to earlier ones, and its latency counts from that due time (so a stalled server
//! is charged for the sends it delayed: no coordinated omission). Closed loop: `n` workers
//! each send, wait for the answer, send again (saturation).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::stats::{Latencies, Outcome};

/// One send; `i` numbers the sends of a run from 0.
pub trait Send: Fn(u64) -> Self::Fut + std::marker::Send + Sync + 'static {
    type Fut: Future<Output = anyhow::Result<()>> + std::marker::Send + 'static;
}

impl<F, Fut> Send for F
where
    F: Fn(u64) -> Fut + std::marker::Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + std::marker::Send + 'static,
{
    type Fut = Fut;
}

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
    latencies: Latencies,
}

impl Tally {
    fn done(&self, result: anyhow::Result<()>, latency: Duration) {
        match result {
            Ok(()) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
                self.latencies.record(latency);
            }
            Err(err) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
                first.get_or_insert_with(|| format!("{err:#}"));
            }
        }
    }

    fn outcome(&self, name: &str, load: String, elapsed: Duration) -> Outcome {
        Outcome {
            name: name.to_owned(),
            load,
            ok: self.ok.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            elapsed,
            latency: self.latencies.summary(),
            first_error: self
                .first_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            ..Outcome::default()
        }
    }
}

/// When send `i` is due, relative to the start, at `rate` per second.
pub fn due(i: u64, rate: f64) -> Duration {
    Duration::from_secs_f64(i as f64 / rate)
}

/// Offers `rate` sends per second for `duration`, numbering them from `first`; waits for the
/// last answer. At most `max_in_flight` outstanding: a send due while that many are pending
/// is shed (counted, never sent).
pub async fn open_loop<F: Send>(
    name: &str,
    rate: f64,
    duration: Duration,
    max_in_flight: usize,
    first: u64,
    send: F,
) -> Outcome {
    let send = Arc::new(send);
    let tally = Arc::new(Tally::default());
    let slots = Arc::new(Semaphore::new(max_in_flight));
    let mut shed = 0;
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut i = 0u64;
    loop {
        let offset = due(i, rate);
        if offset >= duration {
            break;
        }
        let due_at = start + offset;
        tokio::time::sleep_until(due_at).await;
        match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                let (send, tally) = (send.clone(), tally.clone());
                tasks.spawn(async move {
                    let result = send(first + i).await;
                    tally.done(result, due_at.elapsed());
                    drop(slot);
                });
            }
            Err(_) => shed += 1,
        }
        i += 1;
        // Reap finished tasks as we go so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = start.elapsed().max(duration);
    let mut outcome = tally.outcome(name, format!("open {rate}/s"), elapsed);
    outcome.offered_per_sec = Some(rate);
    outcome.shed = shed;
    outcome
}

/// `workers` concurrent senders for `duration`; worker `w` sends `first + w`, `first + w +
/// workers`, ... Latency counts from each send's start.
pub async fn closed_loop<F: Send>(
    name: &str,
    workers: usize,
    duration: Duration,
    first: u64,
    send: F,
) -> Outcome {
    let send = Arc::new(send);
    let tally = Arc::new(Tally::default());
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..workers as u64 {
        let (send, tally) = (send.clone(), tally.clone());
        tasks.spawn(async move {
            let mut i = first + w;
            while Instant::now() < deadline {
                let began = Instant::now();
                let result = send(i).await;
                tally.done(result, began.elapsed());
                i += workers as u64;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    tally.outcome(name, format!("closed {workers} in flight"), start.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_are_due_evenly() {
        assert_eq!(due(0, 1000.0), Duration::ZERO);
        assert_eq!(due(1, 1000.0), Duration::from_millis(1));
        assert_eq!(due(1500, 1000.0), Duration::from_millis(1500));
        assert_eq!(due(3, 2.0), Duration::from_millis(1500));
    }

    // Real time (no paused clock: that needs tokio's test-util in every build of the
    // workspace); the assertions are bounds that hold however slow the machine is.

    #[tokio::test]
    async fn open_loop_offers_the_rate_and_charges_latency_from_the_due_time() {
        // 1000/s for 50 ms is 50 sends, each taking at least 20 ms.
        let outcome = open_loop("t", 1000.0, Duration::from_millis(50), 1000, 0, |_| async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(())
        })
        .await;
        assert_eq!((outcome.ok, outcome.errors, outcome.shed), (50, 0, 0));
        assert!(outcome.latency.p50 >= 20.0, "{:?}", outcome.latency);
        assert_eq!(outcome.offered_per_sec, Some(1000.0));
    }

    #[tokio::test]
    async fn open_loop_sheds_beyond_max_in_flight_and_counts_errors() {
        // Sends take longer than the whole schedule: only `max_in_flight` start.
        let outcome = open_loop(
            "t",
            1000.0,
            Duration::from_millis(20),
            4,
            0,
            |i| async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                anyhow::ensure!(i % 2 == 0, "odd send {i}");
                Ok(())
            },
        )
        .await;
        // The first 4 always start (no slot frees before 300 ms); the rest start only if the
        // machine stalled that long, so the exact split is not asserted.
        assert_eq!(outcome.ok + outcome.errors + outcome.shed, 20);
        assert!(outcome.ok >= 2 && outcome.errors >= 2, "{outcome:?}");
        assert!(outcome.first_error.unwrap().starts_with("odd send"));
        assert!(outcome.latency.p50 >= 300.0, "{:?}", outcome.latency);
    }

    #[tokio::test]
    async fn closed_loop_keeps_n_in_flight() {
        let outcome = closed_loop("t", 4, Duration::from_millis(100), 0, |_| async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            Ok(())
        })
        .await;
        // 4 workers of 10 ms sends for 100 ms: at most 4 × 11 (the last starts before the end).
        assert!(outcome.ok >= 4 && outcome.ok <= 44, "{}", outcome.ok);
        assert!(outcome.latency.p50 >= 10.0);
    }
}
