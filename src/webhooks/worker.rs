//! The delivery worker every node runs: claims verifications and due deliveries (leased, so a
//! call in flight when the node dies is made again elsewhere after the lease), makes the calls
//! with at most `max_in_flight` at once, and writes each outcome back. Dropping the worker's
//! handle (the server task ending or being aborted) aborts its calls; their leases expire and
//! another node or the restarted one takes them over.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::WebhookSettings;
use crate::http::Urls;
use crate::store::webhooks::{Delivery, Outcome, Webhook};
use crate::store::{DynStore, Timestamp};

/// The status reason of a webhook whose deliveries kept failing.
pub const DELIVERY_FAILED: &str = "Deactivated after repeated delivery failures";
/// The status reason of a webhook whose verification failed.
pub const VERIFICATION_FAILED: &str = "Verification failed";

/// Longest verification answer read (the challenge is far shorter).
const MAX_CHALLENGE_ANSWER: usize = 4096;

/// How often the backlog gauge is refreshed.
const GAUGE_EVERY: Duration = Duration::from_secs(5);

struct Worker {
    store: DynStore,
    urls: Arc<Urls>,
    settings: WebhookSettings,
    client: reqwest::Client,
}

/// The running worker: `stop` lets in-flight calls finish (bounded); dropping it aborts them.
pub struct WorkerHandle {
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl WorkerHandle {
    /// Stops claiming and waits up to `within` for the calls in flight.
    pub async fn stop(mut self, within: Duration) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(within, task).await.is_err() {
                abort.abort();
            }
        }
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Starts the worker of this node.
pub fn spawn(
    store: DynStore,
    urls: Arc<Urls>,
    settings: WebhookSettings,
) -> anyhow::Result<WorkerHandle> {
    let mut client = reqwest::Client::builder()
        .timeout(Duration::from_millis(settings.timeout_ms))
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(60));
    if !settings.allow_private_targets {
        client = client.dns_resolver(Arc::new(super::target::PublicResolver));
    }
    let worker = Worker {
        store,
        urls,
        settings,
        client: client.build()?,
    };
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(Arc::new(worker).run(stopped));
    Ok(WorkerHandle {
        stop,
        task: Some(task),
    })
}

impl Worker {
    async fn run(self: Arc<Self>, mut stopped: watch::Receiver<bool>) {
        let wake = self.store.webhook_wakeup();
        let poll = Duration::from_millis(self.settings.poll_interval_ms);
        let lease = self.settings.lease_ms;
        let mut in_flight: JoinSet<()> = JoinSet::new();
        let mut gauge_at = Instant::now();
        loop {
            if *stopped.borrow() {
                break;
            }
            if let Err(err) = self.claim(&mut in_flight, lease).await {
                tracing::warn!(error = %err, "claiming webhook deliveries failed");
            }
            if gauge_at.elapsed() >= GAUGE_EVERY {
                gauge_at = Instant::now();
                if let Ok(backlog) = self.store.webhook_backlog().await {
                    metrics::gauge!("layer_webhook_backlog").set(backlog as f64);
                }
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
                _ = stopped.changed() => {}
            }
        }
        // Shutting down: the calls in flight finish (the caller bounds the wait).
        while in_flight.join_next().await.is_some() {}
    }

    /// Fills the free call slots with due verifications, then due deliveries.
    async fn claim(
        self: &Arc<Self>,
        in_flight: &mut JoinSet<()>,
        lease_ms: u64,
    ) -> anyhow::Result<()> {
        let free = self.settings.max_in_flight.saturating_sub(in_flight.len());
        if free == 0 {
            return Ok(());
        }
        let now = Timestamp::now();
        let lease_until = Timestamp::from_millis(now.millis().saturating_add(lease_ms as i64));
        let limit = u32::try_from(free).unwrap_or(u32::MAX);
        let verifications = self
            .store
            .claim_verifications(now, lease_until, limit)
            .await?;
        let free = free - verifications.len();
        for (hook, lease) in verifications {
            let worker = self.clone();
            in_flight.spawn(async move { worker.verify(hook, lease).await });
        }
        if free == 0 {
            return Ok(());
        }
        let limit = u32::try_from(free).unwrap_or(u32::MAX);
        for delivery in self.store.claim_deliveries(now, lease_until, limit).await? {
            let worker = self.clone();
            in_flight.spawn(async move { worker.deliver(delivery).await });
        }
        Ok(())
    }

    /// `GET target_url?verification_challenge=<random>`: active when the body echoes it.
    async fn verify(self: Arc<Self>, hook: Webhook, lease: Timestamp) {
        let challenge = crate::secrets::generate_nonce();
        let result = self.challenge(&hook, &challenge).await;
        let verified = result.is_ok();
        if let Err(err) = &result {
            tracing::info!(webhook = %hook.id, error = %err, "webhook verification failed");
        }
        let outcome = if verified { "verified" } else { "failed" };
        metrics::counter!("layer_webhook_verifications_total", "outcome" => outcome).increment(1);
        let reason = match &result {
            Ok(()) => String::new(),
            Err(err) => format!("{VERIFICATION_FAILED}: {err}"),
        };
        if let Err(err) = self
            .store
            .finish_verification(hook.id, lease, verified, &clip(&reason))
            .await
        {
            tracing::warn!(webhook = %hook.id, error = %err, "recording a verification failed");
        }
    }

    async fn challenge(&self, hook: &Webhook, challenge: &str) -> Result<(), String> {
        let mut url = super::target::check(&hook.target_url, &self.settings)?;
        url.query_pairs_mut()
            .append_pair("verification_challenge", challenge);
        let mut response = self
            .client
            .get(url)
            .header("user-agent", format!("layer-webhooks/{}", hook.version))
            .header("layer-webhook-id", webhook_uri(hook))
            .send()
            .await
            .map_err(describe)?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(format!("answered HTTP {}", response.status().as_u16()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(describe)? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_CHALLENGE_ANSWER {
                return Err("the answer is not the challenge".into());
            }
        }
        // The raw body is the challenge; surrounding whitespace (a trailing newline) is forgiven.
        if String::from_utf8_lossy(&body).trim() == challenge {
            Ok(())
        } else {
            Err("the answer is not the challenge".into())
        }
    }

    async fn deliver(self: Arc<Self>, delivery: Delivery) {
        let started = Instant::now();
        let outcome = match self.call(&delivery).await {
            Ok(true) => Outcome::Delivered,
            Ok(false) => Outcome::Discard,
            Err(error) => {
                let schedule = &self.settings.retry_schedule_ms;
                match usize::try_from(delivery.attempts)
                    .ok()
                    .and_then(|n| schedule.get(n))
                {
                    Some(delay) => Outcome::Retry {
                        at: Timestamp::from_millis(
                            Timestamp::now().millis().saturating_add(*delay as i64),
                        ),
                        error,
                    },
                    None => Outcome::GiveUp {
                        error,
                        reason: DELIVERY_FAILED.to_owned(),
                    },
                }
            }
        };
        let label = match &outcome {
            Outcome::Delivered => "delivered",
            Outcome::Retry { .. } => "failed",
            Outcome::GiveUp { .. } => "gave_up",
            Outcome::Discard => "discarded",
        };
        metrics::counter!("layer_webhook_deliveries_total", "outcome" => label).increment(1);
        metrics::histogram!("layer_webhook_delivery_seconds")
            .record(started.elapsed().as_secs_f64());
        if let Outcome::GiveUp { error, .. } = &outcome {
            tracing::warn!(webhook = %delivery.webhook.id, %error, "webhook deactivated after its last retry failed");
        }
        if let Err(err) = self
            .store
            .finish_delivery(&delivery, &outcome, Timestamp::now())
            .await
        {
            // The lease expires and the delivery is made again: at least once.
            tracing::warn!(webhook = %delivery.webhook.id, error = %err, "recording a delivery failed");
        }
    }

    /// One POST: `Ok(true)` on a 2xx, `Ok(false)` when there is nothing to send.
    async fn call(&self, delivery: &Delivery) -> Result<bool, String> {
        let hook = &delivery.webhook;
        let url = super::target::check(&hook.target_url, &self.settings)?;
        let body = match super::payload::render(&self.store, &self.urls, delivery).await {
            Ok(Some(body)) => body,
            Ok(None) => return Ok(false),
            Err(err) => return Err(format!("rendering failed: {err}")),
        };
        // Signed over exactly the bytes sent.
        let body = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
        let signature = super::sign(secrecy::ExposeSecret::expose_secret(&hook.secret), &body);
        let response = self
            .client
            .post(url)
            .header(
                "content-type",
                format!(
                    "application/vnd.layer.webhooks+json; version={}",
                    hook.version
                ),
            )
            .header("user-agent", format!("layer-webhooks/{}", hook.version))
            .header("layer-webhook-event-type", &delivery.event_type)
            .header("layer-webhook-signature", signature)
            .header("layer-webhook-request-id", delivery.event_id.to_string())
            .header("layer-webhook-id", webhook_uri(hook))
            .body(body)
            .send()
            .await
            .map_err(describe)?;
        if response.status().is_success() {
            Ok(true)
        } else {
            Err(format!("answered HTTP {}", response.status().as_u16()))
        }
    }
}

/// Error texts kept for operators are cut to this many characters.
fn clip(text: &str) -> String {
    text.chars().take(500).collect()
}

/// `layer:///apps/<app>/webhooks/<uuid>`, as captured requests carried it.
pub fn webhook_uri(hook: &Webhook) -> String {
    format!("layer:///apps/{}/webhooks/{}", hook.app_id, hook.id)
}

/// An operator-readable cause of a failed call (no URL: it may carry secrets in its query).
fn describe(err: reqwest::Error) -> String {
    let err = err.without_url();
    if err.is_timeout() {
        "timed out".into()
    } else if err.is_connect() {
        format!("connection failed: {err}")
    } else {
        err.to_string()
    }
}
