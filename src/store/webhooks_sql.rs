//! The SQL of `WebhookStore`, one body for both backends (see `sql.rs`), and `enqueue_webhook`,
//! which mutations call inside their transaction. Claims differ by one clause: Postgres adds
//! `for update skip locked` so that nodes claiming at once take different rows (SQLite has one
//! writer, so its `update … where seq in (select …)` is atomic already).

use uuid::Uuid;

use super::webhooks::{DeliveryState, Webhook};
use super::Timestamp;

/// A `webhooks` row with its backlog, in `WEBHOOK_COLUMNS` order.
#[derive(sqlx::FromRow)]
pub(crate) struct WebhookRow {
    id: Uuid,
    app_id: Uuid,
    version: String,
    target_url: String,
    events: String,
    secret: String,
    config: Option<String>,
    status: String,
    status_reason: Option<String>,
    created_at: Timestamp,
    last_attempt_at: Option<Timestamp>,
    last_success_at: Option<Timestamp>,
    last_failure_at: Option<Timestamp>,
    last_error: Option<String>,
    delivered_count: i64,
    failed_attempts: i64,
    backlog: i64,
}

pub(crate) const WEBHOOK_COLUMNS: &str = "w.id, w.app_id, w.version, w.target_url, w.events, \
    w.secret, w.config, w.status, w.status_reason, w.created_at, w.last_attempt_at, \
    w.last_success_at, w.last_failure_at, w.last_error, w.delivered_count, w.failed_attempts, \
    (select count(*) from webhook_outbox o where o.webhook_id = w.id) as backlog";

impl From<WebhookRow> for Webhook {
    fn from(row: WebhookRow) -> Self {
        Webhook {
            app_id: row.app_id,
            id: row.id,
            version: row.version,
            target_url: row.target_url,
            events: serde_json::from_str(&row.events).unwrap_or_default(),
            secret: row.secret.into(),
            config: row.config.and_then(|c| serde_json::from_str(&c).ok()),
            status: row.status,
            status_reason: row.status_reason,
            created_at: row.created_at,
            state: DeliveryState {
                last_attempt_at: row.last_attempt_at,
                last_success_at: row.last_success_at,
                last_failure_at: row.last_failure_at,
                last_error: row.last_error,
                delivered: row.delivered_count,
                failed_attempts: row.failed_attempts,
                backlog: row.backlog,
            },
        }
    }
}

/// The webhook events of a participants/metadata change: 1.0 names participant and metadata
/// changes separately, 2.0+ has one `Conversation.updated` plus `Participation.created` /
/// `Participation.deleted` naming the users.
pub(crate) fn conversation_update_events(
    added: &[String],
    removed: &[String],
    ops: &[super::ConversationOp],
) -> Vec<(super::webhooks::EventNames, Vec<String>)> {
    use super::webhooks::names;
    use super::ConversationOp;
    let participants = !added.is_empty() || !removed.is_empty();
    let metadata = ops.iter().any(|op| {
        matches!(
            op,
            ConversationOp::MetadataSet { .. } | ConversationOp::MetadataDeleted { .. }
        )
    });
    let mut events = Vec::new();
    if participants {
        let mut changed = added.to_vec();
        changed.extend_from_slice(removed);
        events.push((names::PARTICIPANTS_UPDATED, changed));
    }
    if metadata {
        let names = if participants {
            names::METADATA_UPDATED_V1
        } else {
            names::METADATA_UPDATED
        };
        events.push((names, Vec::new()));
    }
    if !added.is_empty() {
        events.push((names::PARTICIPATION_CREATED, added.to_vec()));
    }
    if !removed.is_empty() {
        events.push((names::PARTICIPATION_DELETED, removed.to_vec()));
    }
    events
}

/// Outbox columns of a claimed row.
pub(crate) type DeliveryRow = (i64, Uuid, Uuid, String, String, Timestamp, i32);

/// Error texts kept for operators are cut to this many characters.
pub(crate) const MAX_ERROR_CHARS: usize = 500;

pub(crate) fn clip(error: &str) -> String {
    error.chars().take(MAX_ERROR_CHARS).collect()
}

macro_rules! impl_webhook_store {
    ($store:ty, $db:ty, $lock:literal, $lock_outbox:literal) => {
        impl $store {
            /// Writes the event into the outbox of every active webhook of the app subscribed
            /// to its name for the webhook's version, in the caller's transaction: one
            /// statement, which finds no webhook (and writes nothing) for most apps. Returns
            /// the rows written (wake the worker after commit when there are any).
            async fn enqueue_webhook(
                conn: &mut <$db as sqlx::Database>::Connection,
                app_id: uuid::Uuid,
                event: &$crate::store::webhooks::WebhookEvent,
                now: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<u64> {
                let mut query = sqlx::QueryBuilder::<$db>::new("");
                Self::push_webhook_insert(&mut query, app_id, event, now);
                Ok(query.build().execute(&mut *conn).await?.rows_affected())
            }

            /// The statement of `enqueue_webhook`, for callers that run it with others.
            fn push_webhook_insert(
                query: &mut sqlx::QueryBuilder<'_, $db>,
                app_id: uuid::Uuid,
                event: &$crate::store::webhooks::WebhookEvent,
                now: $crate::store::Timestamp,
            ) {
                // Snapshots of plain records always serialise.
                let payload = serde_json::to_string(&event.subject).unwrap_or_default();
                query
                    .push(
                        "insert into webhook_outbox
                            (webhook_id, event_id, event_type, payload, created_at, attempts, next_attempt_at)
                         select t.id, ",
                    )
                    .push_bind(event.id)
                    .push(", t.name, ")
                    .push_bind(payload)
                    .push(", ")
                    .push_bind(now)
                    .push(", 0, ")
                    .push_bind(now)
                    .push(" from (select id, events, case version when '1.0' then ")
                    .push_bind(event.names.v1)
                    .push(" when '2.0' then ")
                    .push_bind(event.names.v2)
                    .push(" else ")
                    .push_bind(event.names.v3)
                    .push(" end as name from webhooks where app_id = ")
                    .push_bind(app_id)
                    .push(
                        " and status = 'active') t
                         where t.name is not null and t.events like '%\"' || t.name || '\"%'",
                    );
            }

            /// `enqueue_webhook` as the data-modifying CTE `webhook_rows` of a larger statement
            /// (Postgres), yielding one row per outbox row written.
            fn push_webhook_cte(
                query: &mut sqlx::QueryBuilder<'_, $db>,
                app_id: uuid::Uuid,
                event: &$crate::store::webhooks::WebhookEvent,
                now: $crate::store::Timestamp,
            ) {
                query.push("webhook_rows as (");
                Self::push_webhook_insert(query, app_id, event, now);
                query.push(" returning 1)");
            }

            /// `enqueue_webhook` for several events.
            async fn enqueue_webhooks(
                conn: &mut <$db as sqlx::Database>::Connection,
                app_id: uuid::Uuid,
                events: &[$crate::store::webhooks::WebhookEvent],
                now: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<u64> {
                let mut written = 0;
                for event in events {
                    written += Self::enqueue_webhook(conn, app_id, event, now).await?;
                }
                Ok(written)
            }

            /// After a commit that enqueued `written` rows: wake this process's worker.
            fn webhooks_enqueued(&self, written: u64) {
                if written > 0 {
                    self.hooks.notify_one();
                }
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::webhooks::WebhookStore for $store {
            fn webhook_wakeup(&self) -> std::sync::Arc<tokio::sync::Notify> {
                self.hooks.clone()
            }

            async fn create_webhook(
                &self,
                new: &$crate::store::webhooks::NewWebhook,
                max: u32,
            ) -> $crate::store::StoreResult<bool> {
                let mut tx = self.begin().await?;
                // Taking the app row's lock first serializes registrations of one app, so the
                // limit holds under concurrent requests.
                sqlx::query("update apps set name = name where id = $1")
                    .bind(new.app_id)
                    .execute(&mut *tx)
                    .await?;
                let count: i64 = sqlx::query_scalar("select count(*) from webhooks where app_id = $1")
                    .bind(new.app_id)
                    .fetch_one(&mut *tx)
                    .await?;
                if count >= i64::from(max) {
                    return Ok(false);
                }
                sqlx::query(
                    "insert into webhooks (id, app_id, version, target_url, events, secret, config,
                        status, created_at, verify_due_at)
                     values ($1, $2, $3, $4, $5, $6, $7, 'unverified', $8, $8)",
                )
                .bind(new.id)
                .bind(new.app_id)
                .bind(&new.version)
                .bind(&new.target_url)
                .bind(serde_json::to_string(&new.events).unwrap_or_else(|_| "[]".into()))
                .bind(secrecy::ExposeSecret::expose_secret(&new.secret))
                .bind(new.config.as_ref().and_then(|c| serde_json::to_string(c).ok()))
                .bind(new.created_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                self.hooks.notify_one();
                Ok(true)
            }

            async fn webhooks(
                &self,
                app_id: uuid::Uuid,
            ) -> $crate::store::StoreResult<Vec<$crate::store::webhooks::Webhook>> {
                let rows: Vec<$crate::store::webhooks_sql::WebhookRow> = sqlx::query_as(&format!(
                    "select {} from webhooks w where w.app_id = $1 order by w.created_at, w.id",
                    $crate::store::webhooks_sql::WEBHOOK_COLUMNS
                ))
                .bind(app_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn webhook(
                &self,
                app_id: uuid::Uuid,
                id: uuid::Uuid,
            ) -> $crate::store::StoreResult<Option<$crate::store::webhooks::Webhook>> {
                let row: Option<$crate::store::webhooks_sql::WebhookRow> = sqlx::query_as(&format!(
                    "select {} from webhooks w where w.app_id = $1 and w.id = $2",
                    $crate::store::webhooks_sql::WEBHOOK_COLUMNS
                ))
                .bind(app_id)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(Into::into))
            }

            async fn request_verification(
                &self,
                app_id: uuid::Uuid,
                id: uuid::Uuid,
                now: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<bool> {
                let updated = sqlx::query(
                    "update webhooks set status = 'unverified', status_reason = null,
                        verify_due_at = $3, verify_lease_until = null
                     where app_id = $1 and id = $2",
                )
                .bind(app_id)
                .bind(id)
                .bind(now)
                .execute(&self.pool)
                .await?
                .rows_affected();
                self.hooks.notify_one();
                Ok(updated == 1)
            }

            async fn deactivate_webhook(
                &self,
                app_id: uuid::Uuid,
                id: uuid::Uuid,
                reason: &str,
            ) -> $crate::store::StoreResult<bool> {
                let mut tx = self.begin().await?;
                let updated = sqlx::query(
                    "update webhooks set status = 'inactive', status_reason = $3,
                        verify_due_at = null, verify_lease_until = null
                     where app_id = $1 and id = $2",
                )
                .bind(app_id)
                .bind(id)
                .bind(reason)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                sqlx::query("delete from webhook_outbox where webhook_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(updated == 1)
            }

            async fn delete_webhook(
                &self,
                app_id: uuid::Uuid,
                id: uuid::Uuid,
            ) -> $crate::store::StoreResult<bool> {
                let mut tx = self.begin().await?;
                sqlx::query(
                    "delete from webhook_outbox where webhook_id in
                        (select id from webhooks where app_id = $1 and id = $2)",
                )
                .bind(app_id)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                let deleted = sqlx::query("delete from webhooks where app_id = $1 and id = $2")
                    .bind(app_id)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                Ok(deleted == 1)
            }

            async fn claim_verifications(
                &self,
                now: $crate::store::Timestamp,
                lease_until: $crate::store::Timestamp,
                limit: u32,
            ) -> $crate::store::StoreResult<Vec<($crate::store::webhooks::Webhook, $crate::store::Timestamp)>> {
                let ids: Vec<uuid::Uuid> = sqlx::query_scalar(concat!(
                    "update webhooks set verify_lease_until = $2
                     where id in (
                         select id from webhooks
                         where status = 'unverified' and verify_due_at <= $1
                           and (verify_lease_until is null or verify_lease_until <= $1)
                         order by verify_due_at limit $3", $lock, "
                     ) returning id"
                ))
                .bind(now)
                .bind(lease_until)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                let mut claimed = Vec::with_capacity(ids.len());
                for id in ids {
                    let row: Option<$crate::store::webhooks_sql::WebhookRow> = sqlx::query_as(&format!(
                        "select {} from webhooks w where w.id = $1",
                        $crate::store::webhooks_sql::WEBHOOK_COLUMNS
                    ))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                    if let Some(row) = row {
                        claimed.push((row.into(), lease_until));
                    }
                }
                Ok(claimed)
            }

            async fn finish_verification(
                &self,
                id: uuid::Uuid,
                lease_until: $crate::store::Timestamp,
                verified: bool,
                reason: &str,
            ) -> $crate::store::StoreResult<()> {
                let (status, reason) = if verified { ("active", None) } else { ("inactive", Some(reason)) };
                let mut tx = self.begin().await?;
                let updated = sqlx::query(
                    "update webhooks set status = $3, status_reason = $4,
                        verify_due_at = null, verify_lease_until = null
                     where id = $1 and status = 'unverified' and verify_lease_until = $2",
                )
                .bind(id)
                .bind(lease_until)
                .bind(status)
                .bind(reason)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if updated == 1 && !verified {
                    // Inactive: events still waiting from before a re-activation are dropped.
                    sqlx::query("delete from webhook_outbox where webhook_id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn claim_deliveries(
                &self,
                now: $crate::store::Timestamp,
                lease_until: $crate::store::Timestamp,
                limit: u32,
            ) -> $crate::store::StoreResult<Vec<$crate::store::webhooks::Delivery>> {
                let rows: Vec<$crate::store::webhooks_sql::DeliveryRow> = sqlx::query_as(concat!(
                    "update webhook_outbox set lease_until = $2
                     where seq in (
                         select o.seq from webhook_outbox o
                         join webhooks w on w.id = o.webhook_id
                         where w.status = 'active' and o.next_attempt_at <= $1
                           and (o.lease_until is null or o.lease_until <= $1)
                         order by o.seq limit $3", $lock_outbox, "
                     ) returning seq, webhook_id, event_id, event_type, payload, created_at, attempts"
                ))
                .bind(now)
                .bind(lease_until)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                let mut hooks: std::collections::HashMap<uuid::Uuid, $crate::store::webhooks::Webhook> =
                    std::collections::HashMap::new();
                for (_, webhook_id, ..) in &rows {
                    if hooks.contains_key(webhook_id) {
                        continue;
                    }
                    let row: Option<$crate::store::webhooks_sql::WebhookRow> = sqlx::query_as(&format!(
                        "select {} from webhooks w where w.id = $1",
                        $crate::store::webhooks_sql::WEBHOOK_COLUMNS
                    ))
                    .bind(*webhook_id)
                    .fetch_optional(&self.pool)
                    .await?;
                    if let Some(row) = row {
                        hooks.insert(*webhook_id, row.into());
                    }
                }
                let mut deliveries: Vec<$crate::store::webhooks::Delivery> = rows
                    .into_iter()
                    .filter_map(|(seq, webhook_id, event_id, event_type, payload, created_at, attempts)| {
                        // A webhook deleted since the claim: its rows went with it.
                        let webhook = hooks.get(&webhook_id)?.clone();
                        Some($crate::store::webhooks::Delivery {
                            seq,
                            webhook,
                            event_id,
                            event_type,
                            subject: serde_json::from_str(&payload).ok(),
                            created_at,
                            attempts,
                            lease_until,
                        })
                    })
                    .collect();
                deliveries.sort_by_key(|d| d.seq);
                Ok(deliveries)
            }

            async fn finish_delivery(
                &self,
                delivery: &$crate::store::webhooks::Delivery,
                outcome: &$crate::store::webhooks::Outcome,
                now: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<()> {
                use $crate::store::webhooks::Outcome;
                use $crate::store::webhooks_sql::clip;
                let mut tx = self.begin().await?;
                // Only while this claim's lease is held: a node that lost it (too slow) must not
                // undo what the new holder did.
                let held = match outcome {
                    Outcome::Delivered => sqlx::query(
                        "delete from webhook_outbox where seq = $1 and lease_until = $2",
                    )
                    .bind(delivery.seq)
                    .bind(delivery.lease_until)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected(),
                    Outcome::Retry { at, error } => sqlx::query(
                        "update webhook_outbox set attempts = attempts + 1, next_attempt_at = $3,
                            lease_until = null, last_error = $4
                         where seq = $1 and lease_until = $2",
                    )
                    .bind(delivery.seq)
                    .bind(delivery.lease_until)
                    .bind(*at)
                    .bind(clip(error))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected(),
                    Outcome::GiveUp { .. } | Outcome::Discard => sqlx::query(
                        "delete from webhook_outbox where seq = $1 and lease_until = $2",
                    )
                    .bind(delivery.seq)
                    .bind(delivery.lease_until)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected(),
                };
                if held == 0 {
                    return Ok(());
                }
                match outcome {
                    Outcome::Discard => {}
                    Outcome::Delivered => {
                        sqlx::query(
                            "update webhooks set last_attempt_at = $2, last_success_at = $2,
                                delivered_count = delivered_count + 1
                             where id = $1",
                        )
                        .bind(delivery.webhook.id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    }
                    Outcome::Retry { error, .. } => {
                        sqlx::query(
                            "update webhooks set last_attempt_at = $2, last_failure_at = $2,
                                last_error = $3, failed_attempts = failed_attempts + 1
                             where id = $1",
                        )
                        .bind(delivery.webhook.id)
                        .bind(now)
                        .bind(clip(error))
                        .execute(&mut *tx)
                        .await?;
                    }
                    Outcome::GiveUp { error, reason } => {
                        // Layer dropped the failed call together with every other call of the
                        // webhook and deactivated it (webhooks.md §5.3).
                        sqlx::query(
                            "update webhooks set last_attempt_at = $2, last_failure_at = $2,
                                last_error = $3, failed_attempts = failed_attempts + 1,
                                status = 'inactive', status_reason = $4
                             where id = $1",
                        )
                        .bind(delivery.webhook.id)
                        .bind(now)
                        .bind(clip(error))
                        .bind(reason)
                        .execute(&mut *tx)
                        .await?;
                        sqlx::query("delete from webhook_outbox where webhook_id = $1")
                            .bind(delivery.webhook.id)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                tx.commit().await?;
                Ok(())
            }

            async fn webhook_backlog(&self) -> $crate::store::StoreResult<i64> {
                Ok(sqlx::query_scalar(
                    "select count(*) from webhook_outbox o join webhooks w on w.id = o.webhook_id
                     where w.status = 'active'",
                )
                .fetch_one(&self.pool)
                .await?)
            }
        }
    };
}

pub(crate) use impl_webhook_store;

/// Enqueuing helpers for the mutations whose events need a snapshot loaded first: they test
/// for an active webhook of the app before loading anything.
macro_rules! impl_webhook_events {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Whether the app has any active webhook.
            async fn has_active_webhook(
                conn: &mut <$db as sqlx::Database>::Connection,
                app_id: uuid::Uuid,
            ) -> $crate::store::StoreResult<bool> {
                let found: Option<i32> = sqlx::query_scalar(
                    "select 1 from webhooks where app_id = $1 and status = 'active' limit 1",
                )
                .bind(app_id)
                .fetch_optional(&mut *conn)
                .await?;
                Ok(found.is_some())
            }

            /// Conversation events, each with the conversation as it is now in this
            /// transaction and the users it names (`changes`).
            async fn hook_conversation(
                conn: &mut <$db as sqlx::Database>::Connection,
                app_id: uuid::Uuid,
                id: uuid::Uuid,
                events: &[($crate::store::webhooks::EventNames, Vec<String>)],
                now: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<u64> {
                use $crate::store::webhooks::{Subject, WebhookEvent};
                if events.is_empty() || !Self::has_active_webhook(conn, app_id).await? {
                    return Ok(0);
                }
                let Some(conversation) = Self::load_conversation(conn, app_id, id).await? else {
                    return Ok(0);
                };
                let snapshot = $crate::store::webhooks::ConversationSnapshot::from(&conversation);
                let events: Vec<WebhookEvent> = events
                    .iter()
                    .map(|(names, changes)| {
                        WebhookEvent::new(
                            *names,
                            Subject::Conversation { conversation: snapshot.clone(), changes: changes.clone() },
                        )
                    })
                    .collect();
                Self::enqueue_webhooks(conn, app_id, &events, now).await
            }

            /// A message event with the message as it is now in this transaction (to be called
            /// first in it: it takes the message row's write lock).
            async fn hook_message(
                conn: &mut <$db as sqlx::Database>::Connection,
                app_id: uuid::Uuid,
                id: uuid::Uuid,
                names: $crate::store::webhooks::EventNames,
                now: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<u64> {
                use $crate::store::webhooks::{MessageSnapshot, Subject, WebhookEvent};
                // Called before the mutation's own first write: a no-op write takes the lock
                // first, as every writer that reads does (SQLite would otherwise fail the later
                // write on a stale snapshot).
                sqlx::query("update messages set position = position where app_id = $1 and id = $2")
                    .bind(app_id)
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
                if !Self::has_active_webhook(conn, app_id).await? {
                    return Ok(0);
                }
                let Some(message) = Self::load_messages(conn, app_id, &[id]).await?.pop() else {
                    return Ok(0);
                };
                let subject = Subject::Message { message: MessageSnapshot::from(&message), actor: None };
                Self::enqueue_webhook(conn, app_id, &WebhookEvent::new(names, subject), now).await
            }

            /// Part events of a message (3.0); `removed_all`: every current part is about to
            /// be replaced (their ids are read first, as deletions).
            async fn hook_parts(
                conn: &mut <$db as sqlx::Database>::Connection,
                app_id: uuid::Uuid,
                message_id: uuid::Uuid,
                removed_all: bool,
                parts: &[($crate::store::webhooks::EventNames, $crate::store::webhooks::PartSnapshot)],
                now: $crate::store::Timestamp,
            ) -> $crate::store::StoreResult<u64> {
                use $crate::store::webhooks::{names, PartSnapshot, Subject, WebhookEvent};
                if !Self::has_active_webhook(conn, app_id).await? {
                    return Ok(0);
                }
                let conversation: Option<uuid::Uuid> =
                    sqlx::query_scalar("select conversation_id from messages where app_id = $1 and id = $2")
                        .bind(app_id)
                        .bind(message_id)
                        .fetch_optional(&mut *conn)
                        .await?;
                let Some(conversation) = conversation else {
                    return Ok(0);
                };
                let mut all: Vec<($crate::store::webhooks::EventNames, PartSnapshot)> = Vec::new();
                if removed_all {
                    let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
                        "select id from message_parts where app_id = $1 and message_id = $2 order by seq",
                    )
                    .bind(app_id)
                    .bind(message_id)
                    .fetch_all(&mut *conn)
                    .await?;
                    all.extend(ids.into_iter().map(|id| (names::PART_DELETED, PartSnapshot::removed(id))));
                }
                all.extend(parts.iter().cloned());
                let events: Vec<WebhookEvent> = all
                    .into_iter()
                    .map(|(names, part)| {
                        WebhookEvent::new(names, Subject::Part { message: message_id, conversation, part })
                    })
                    .collect();
                Self::enqueue_webhooks(conn, app_id, &events, now).await
            }
        }
    };
}

pub(crate) use impl_webhook_events;
