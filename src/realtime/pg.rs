//! Several nodes on one Postgres database: notices travel with `NOTIFY layer_changes` and a
//! `LISTEN` task on every node hands them to its own Hub. A node applies its own notices at once
//! and skips their echo (each payload names the node it came from).
//!
//! Notifications are not durable: while a listener reconnects some may be lost. That is why a
//! change notice only says "these users have new changes" (the changes themselves are in the
//! log), every socket re-reads its log periodically anyway, and after a reconnect every socket
//! of the node is woken at once. Typing signals lost that way are simply lost (they are
//! ephemeral); a lost session-ended notice leaves a socket open until its next request fails.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgListener, PgPool};
use uuid::Uuid;

use super::hub::{Fanout, Hub, Notice};

const CHANNEL: &str = "layer_changes";
/// Postgres refuses payloads of 8000 bytes or more; stay clearly below.
const MAX_PAYLOAD: usize = 7800;
/// Wait before reconnecting a listener that failed to connect.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

#[derive(Serialize, Deserialize)]
struct Envelope {
    node: Uuid,
    notice: Notice,
}

pub struct PgFanout {
    node: Uuid,
    hub: Arc<Hub>,
    pool: PgPool,
}

impl PgFanout {
    /// A fanout sending NOTIFY through the store's pool, and the listener task of this node
    /// (one dedicated connection to `url`).
    pub fn start(
        pool: PgPool,
        url: String,
        hub: Arc<Hub>,
    ) -> (Arc<Self>, tokio::task::JoinHandle<()>) {
        let node = hub.node;
        let listener = tokio::spawn(listen(url, node, hub.clone()));
        (Arc::new(PgFanout { node, hub, pool }), listener)
    }
}

#[async_trait::async_trait]
impl Fanout for PgFanout {
    async fn publish(&self, notice: Notice) {
        self.hub.apply(&notice);
        self.publish_elsewhere(notice).await;
    }

    async fn publish_elsewhere(&self, notice: Notice) {
        for payload in payloads(self.node, notice) {
            let sent = sqlx::query("select pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(&payload)
                .execute(&self.pool)
                .await;
            if let Err(err) = sent {
                // Other nodes' sockets pick changes up at their next periodic re-check.
                tracing::warn!(error = %err, "NOTIFY failed");
            }
        }
    }
}

/// The notice as NOTIFY payloads under the size limit: user lists are split; a change notice
/// that cannot be split further becomes an app-wide re-check; anything else too large is
/// dropped with a warning.
fn payloads(node: Uuid, notice: Notice) -> Vec<String> {
    let encode = |notice: Notice| serde_json::to_string(&Envelope { node, notice }).ok();
    let Some(text) = encode(notice.clone()) else {
        return Vec::new();
    };
    if text.len() <= MAX_PAYLOAD {
        return vec![text];
    }
    match notice {
        Notice::Changed { app_id, users } if users.len() > 1 => {
            let (a, b) = users.split_at(users.len() / 2);
            let mut out = payloads(
                node,
                Notice::Changed {
                    app_id,
                    users: a.to_vec(),
                },
            );
            out.extend(payloads(
                node,
                Notice::Changed {
                    app_id,
                    users: b.to_vec(),
                },
            ));
            out
        }
        Notice::Changed { app_id, .. } => encode(Notice::Recheck {
            app_id: Some(app_id),
        })
        .into_iter()
        .collect(),
        Notice::Deliver {
            app_id,
            users,
            kind,
            bodies,
        } if users.len() > 1 => {
            let (a, b) = users.split_at(users.len() / 2);
            let half = |users: &[String]| Notice::Deliver {
                app_id,
                users: users.to_vec(),
                kind,
                bodies: bodies.clone(),
            };
            let mut out = payloads(node, half(a));
            out.extend(payloads(node, half(b)));
            out
        }
        Notice::Presence(report) if report.followers.len() > 1 => {
            let (a, b) = report.followers.split_at(report.followers.len() / 2);
            let half = |followers: &[String]| {
                Notice::Presence(super::hub::PresenceReport {
                    followers: followers.to_vec(),
                    ..report.clone()
                })
            };
            let mut out = payloads(node, half(a));
            out.extend(payloads(node, half(b)));
            out
        }
        _ => {
            tracing::warn!(
                bytes = text.len(),
                "a notice too large for NOTIFY was not sent to other nodes"
            );
            Vec::new()
        }
    }
}

/// LISTENs for the life of the server: applies other nodes' notices; after every (re)connect
/// wakes every local socket, since notifications may have been missed meanwhile.
async fn listen(url: String, node: Uuid, hub: Arc<Hub>) {
    loop {
        let mut listener = match PgListener::connect(&url).await {
            Ok(listener) => listener,
            Err(err) => {
                tracing::warn!(error = %err, "LISTEN connection failed; retrying");
                tokio::time::sleep(RECONNECT_AFTER).await;
                continue;
            }
        };
        if let Err(err) = listener.listen(CHANNEL).await {
            tracing::warn!(error = %err, "LISTEN failed; retrying");
            tokio::time::sleep(RECONNECT_AFTER).await;
            continue;
        }
        hub.wake_all(None);
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => {
                    match serde_json::from_str::<Envelope>(notification.payload()) {
                        Ok(envelope) if envelope.node != node => hub.apply(&envelope.notice),
                        Ok(_) => {}
                        Err(err) => tracing::debug!(error = %err, "ignored a foreign notification"),
                    }
                }
                // The connection was lost: reconnect explicitly, then wake everyone.
                Ok(None) => break,
                Err(err) => {
                    tracing::warn!(error = %err, "LISTEN connection lost");
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_notices_are_split_under_the_notify_limit() {
        let app_id = Uuid::new_v4();
        let users: Vec<String> = (0..2000).map(|i| format!("user-number-{i}")).collect();
        let out = payloads(Uuid::new_v4(), Notice::Changed { app_id, users });
        assert!(out.len() > 1);
        assert!(out.iter().all(|p| p.len() <= MAX_PAYLOAD));
        let named: usize = out
            .iter()
            .map(
                |p| match serde_json::from_str::<Envelope>(p).unwrap().notice {
                    Notice::Changed { users, .. } => users.len(),
                    _ => 0,
                },
            )
            .sum();
        assert_eq!(named, 2000);
        // One user id too long for a payload: an app-wide re-check.
        let out = payloads(
            Uuid::new_v4(),
            Notice::Changed {
                app_id,
                users: vec!["x".repeat(9000)],
            },
        );
        assert!(matches!(
            serde_json::from_str::<Envelope>(&out[0]).unwrap().notice,
            Notice::Recheck { app_id: Some(a) } if a == app_id
        ));
    }
}
