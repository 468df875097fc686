//! Latency recording and the summary of one scenario.

use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// Latencies in microseconds, 1 µs to 10 min, 3 significant digits.
pub struct Latencies(Mutex<Histogram<u64>>);

impl Default for Latencies {
    fn default() -> Self {
        Latencies(Mutex::new(
            Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds"),
        ))
    }
}

impl Latencies {
    pub fn record(&self, latency: Duration) {
        let micros = (latency.as_micros() as u64).clamp(1, 600_000_000);
        let mut histogram = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // Clamped into the bounds above, so this cannot fail.
        let _ = histogram.record(micros);
    }

    pub fn summary(&self) -> Percentiles {
        let histogram = self.0.lock().unwrap_or_else(|p| p.into_inner());
        Percentiles::of(&histogram)
    }
}

/// Milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Percentiles::default();
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        Percentiles {
            count: histogram.len(),
            p50: ms(histogram.value_at_quantile(0.50)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p999: ms(histogram.value_at_quantile(0.999)),
            max: ms(histogram.max()),
        }
    }

    pub fn to_json(self) -> Value {
        json!({ "count": self.count, "p50_ms": self.p50, "p99_ms": self.p99,
                "p999_ms": self.p999, "max_ms": self.max })
    }
}

/// What one scenario measured.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub name: String,
    /// How sends were driven: `open 1000/s` or `closed 32 in flight`.
    pub load: String,
    /// Offered rate (open loop only).
    pub offered_per_sec: Option<f64>,
    pub ok: u64,
    pub errors: u64,
    /// Open loop: sends not started because `max_in_flight` were outstanding.
    pub shed: u64,
    pub elapsed: Duration,
    pub latency: Percentiles,
    /// Fan-out: send-to-receive over all recipients.
    pub delivery: Option<Delivery>,
    pub first_error: Option<String>,
    /// CPU seconds the process doing the sends' work used while measured: the server, or for
    /// the baseline the load tool itself (it runs the store).
    pub cpu_secs: Option<f64>,
    /// Context switches of that process's threads while measured.
    pub context_switches: Option<u64>,
}

#[derive(Debug, Clone, Default)]
pub struct Delivery {
    pub latency: Percentiles,
    pub expected: u64,
    pub received: u64,
    pub sockets_open: usize,
    pub server_rss_mb: Option<f64>,
}

impl Outcome {
    /// CPU milliseconds per successful send (see `cpu_secs`).
    pub fn cpu_ms_per_msg(&self) -> Option<f64> {
        self.cpu_secs
            .filter(|_| self.ok > 0)
            .map(|s| s * 1000.0 / self.ok as f64)
    }

    /// Context switches per successful send (see `context_switches`).
    pub fn switches_per_msg(&self) -> Option<f64> {
        self.context_switches
            .filter(|_| self.ok > 0)
            .map(|n| n as f64 / self.ok as f64)
    }

    pub fn per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.ok as f64 / secs
        } else {
            0.0
        }
    }

    pub fn to_json(&self, baseline_per_sec: Option<f64>) -> Value {
        let mut value = json!({
            "name": self.name,
            "load": self.load,
            "offered_per_sec": self.offered_per_sec,
            "ok": self.ok,
            "errors": self.errors,
            "shed": self.shed,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "messages_per_sec": self.per_sec(),
            "latency": self.latency.to_json(),
            "first_error": self.first_error,
            "cpu_ms_per_msg": self.cpu_ms_per_msg(),
            "context_switches_per_msg": self.switches_per_msg(),
        });
        if let Some(base) = baseline_per_sec.filter(|b| *b > 0.0) {
            value["vs_baseline"] = json!(self.per_sec() / base);
        }
        if let Some(d) = &self.delivery {
            value["delivery"] = json!({
                "latency": d.latency.to_json(),
                "expected": d.expected,
                "received": d.received,
                "sockets_open": d.sockets_open,
                "server_rss_mb": d.server_rss_mb,
            });
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_in_milliseconds() {
        let latencies = Latencies::default();
        for ms in 1..=1000u64 {
            latencies.record(Duration::from_millis(ms));
        }
        let p = latencies.summary();
        assert_eq!(p.count, 1000);
        // 3 significant digits: within 0.1 %.
        assert!((p.p50 - 500.0).abs() <= 0.5, "{p:?}");
        assert!((p.p99 - 990.0).abs() <= 1.0, "{p:?}");
        assert!((p.max - 1000.0).abs() <= 1.0, "{p:?}");
    }

    #[test]
    fn empty_and_out_of_range_samples() {
        let latencies = Latencies::default();
        assert_eq!(latencies.summary(), Percentiles::default());
        latencies.record(Duration::ZERO);
        latencies.record(Duration::from_secs(3600));
        let p = latencies.summary();
        assert_eq!(p.count, 2);
        assert!(p.max >= 599_000.0);
    }

    #[test]
    fn rate_and_baseline_ratio() {
        let outcome = Outcome {
            ok: 3000,
            elapsed: Duration::from_secs(2),
            ..Outcome::default()
        };
        assert_eq!(outcome.per_sec(), 1500.0);
        let json = outcome.to_json(Some(2000.0));
        assert_eq!(json["vs_baseline"], 0.75);
        assert!(outcome.to_json(None).get("vs_baseline").is_none());
        assert_eq!(outcome.cpu_ms_per_msg(), None);
        let measured = Outcome {
            cpu_secs: Some(1.5),
            ..outcome
        };
        assert_eq!(measured.cpu_ms_per_msg(), Some(0.5));
        assert_eq!(measured.to_json(None)["cpu_ms_per_msg"], 0.5);
    }
}
