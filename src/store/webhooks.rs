//! Webhooks: registrations, and the outbox their events wait in until delivered.
//!
//! Outbox rows are written by the mutations themselves, in their transaction (`enqueue` in
//! `webhooks_sql.rs`), with one `insert … select … from webhooks` per event: it writes a row per
//! active webhook of the app that subscribed to the event's name for its version, and nothing
//! (an indexed lookup of the app's active webhooks) when there is none. The row carries a
//! version-neutral snapshot of the event (`Subject`): the object as it was when the event
//! happened (a deleted message is still there to render), rendered for the webhook's version
//! when delivered, so URLs and rich-content download links are fresh at each attempt.

use async_trait::async_trait;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{Conversation, Message, Part, ReceiptStatus, Sender, StoreResult, Timestamp};

/// `unverified` (registered or re-activated; receives nothing until verified), `active`,
/// `inactive` (deactivated by the user, a failed verification or failed deliveries).
pub const UNVERIFIED: &str = "unverified";
pub const ACTIVE: &str = "active";
pub const INACTIVE: &str = "inactive";

#[derive(Clone, Debug)]
pub struct Webhook {
    pub app_id: Uuid,
    pub id: Uuid,
    /// `1.0`, `2.0` or `3.0`: decides event names and payload shapes.
    pub version: String,
    pub target_url: String,
    pub events: Vec<String>,
    /// The HMAC key of deliveries (never rendered, `Debug` shows no secret).
    pub secret: SecretString,
    pub config: Option<Map<String, Value>>,
    pub status: String,
    pub status_reason: Option<String>,
    pub created_at: Timestamp,
    pub state: DeliveryState,
}

/// What operators see of a webhook's deliveries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeliveryState {
    pub last_attempt_at: Option<Timestamp>,
    pub last_success_at: Option<Timestamp>,
    pub last_failure_at: Option<Timestamp>,
    pub last_error: Option<String>,
    /// Events delivered (2xx) so far.
    pub delivered: i64,
    /// Failed attempts so far (timeouts, errors, non-2xx answers).
    pub failed_attempts: i64,
    /// Events waiting (due, backing off or in flight).
    pub backlog: i64,
}

/// One event waiting for one webhook, as a worker claimed it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub seq: i64,
    /// The webhook as it was when claimed.
    pub webhook: Webhook,
    pub event_id: Uuid,
    pub event_type: String,
    pub subject: Option<Subject>,
    pub created_at: Timestamp,
    /// Attempts made before this one.
    pub attempts: i32,
    /// The lease this claim holds (results are written only while it is held).
    pub lease_until: Timestamp,
}

/// The event names one change has in each webhook version (`None`: no such event there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventNames {
    pub v1: Option<&'static str>,
    pub v2: Option<&'static str>,
    pub v3: Option<&'static str>,
}

impl EventNames {
    /// The same name in 2.0 and 3.0, and a 1.0 name.
    pub const fn new(v1: Option<&'static str>, v2_v3: &'static str) -> Self {
        EventNames {
            v1,
            v2: Some(v2_v3),
            v3: Some(v2_v3),
        }
    }
}

/// One event to enqueue: its id (stable across retries and shared by every webhook that
/// receives it), its names, and its snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEvent {
    pub id: Uuid,
    pub names: EventNames,
    pub subject: Subject,
}

impl WebhookEvent {
    pub fn new(names: EventNames, subject: Subject) -> Self {
        WebhookEvent {
            id: Uuid::new_v4(),
            names,
            subject,
        }
    }

    /// `Message.created` / `message.sent`, the sender as actor.
    pub fn message_created(message: &Message) -> Self {
        let actor = message.sender.user_id().map(str::to_owned);
        WebhookEvent::new(
            names::MESSAGE_CREATED,
            Subject::Message {
                message: message.into(),
                actor,
            },
        )
    }

    /// A user's receipt for one message.
    pub fn receipt(
        conversation: Uuid,
        user: &str,
        status: ReceiptStatus,
        position: i64,
        message: Uuid,
    ) -> Self {
        let names = if status == ReceiptStatus::Read {
            names::MESSAGE_READ
        } else {
            names::MESSAGE_DELIVERED
        };
        WebhookEvent::new(
            names,
            Subject::Receipt {
                conversation,
                user: user.to_owned(),
                status: status.as_str().to_owned(),
                from: position,
                to: position,
                message: Some(message),
            },
        )
    }
}

/// What happened, version-neutral (stored as JSON in the outbox row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Subject {
    /// Message created or deleted; the actor is the sender (created) or nobody (deleted).
    Message {
        message: MessageSnapshot,
        #[serde(default)]
        actor: Option<String>,
    },
    /// Conversation created, updated, deleted; participants added or removed (`changes`).
    Conversation {
        conversation: ConversationSnapshot,
        #[serde(default)]
        changes: Vec<String>,
    },
    /// A user's receipts rose to `status` over the messages at `from..=to`; `message` is the
    /// single message of a per-message receipt (1.0 renders it, read at delivery).
    Receipt {
        conversation: Uuid,
        user: String,
        status: String,
        from: i64,
        to: i64,
        #[serde(default)]
        message: Option<Uuid>,
    },
    /// A part added, changed or removed (3.0).
    Part {
        message: Uuid,
        conversation: Uuid,
        part: PartSnapshot,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageSnapshot {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub position: i64,
    pub sender_user: Option<String>,
    pub sender_name: Option<String>,
    pub sent_at: i64,
    pub updated_at: Option<i64>,
    pub parts: Vec<PartSnapshot>,
    pub recipient_status: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartSnapshot {
    pub id: Uuid,
    pub mime_type: String,
    pub body: Option<String>,
    pub encoding: Option<String>,
    pub content: Option<Value>,
    pub updated_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationSnapshot {
    pub id: Uuid,
    pub created_at: i64,
    pub distinct: bool,
    pub metadata: Map<String, Value>,
    pub participants: Vec<String>,
}

impl From<&Part> for PartSnapshot {
    fn from(part: &Part) -> Self {
        PartSnapshot {
            id: part.id,
            mime_type: part.mime_type.clone(),
            body: part.body.clone(),
            encoding: part.encoding.clone(),
            content: part.content.clone(),
            updated_at: part.updated_at.map(Timestamp::millis),
        }
    }
}

impl PartSnapshot {
    /// A removed part, known by its id only.
    pub fn removed(id: Uuid) -> Self {
        PartSnapshot {
            id,
            mime_type: String::new(),
            body: None,
            encoding: None,
            content: None,
            updated_at: None,
        }
    }

    pub fn to_part(&self) -> Part {
        Part {
            id: self.id,
            mime_type: self.mime_type.clone(),
            body: self.body.clone(),
            encoding: self.encoding.clone(),
            content: self.content.clone(),
            updated_at: self.updated_at.map(Timestamp::from_millis),
        }
    }
}

impl From<&Message> for MessageSnapshot {
    fn from(m: &Message) -> Self {
        let (sender_user, sender_name) = match &m.sender {
            Sender::User(user) => (Some(user.clone()), None),
            Sender::Name(name) => (None, Some(name.clone())),
        };
        MessageSnapshot {
            id: m.id,
            conversation_id: m.conversation_id,
            position: m.position,
            sender_user,
            sender_name,
            sent_at: m.sent_at.millis(),
            updated_at: m.updated_at.map(Timestamp::millis),
            parts: m.parts.iter().map(PartSnapshot::from).collect(),
            recipient_status: m
                .recipient_status
                .iter()
                .map(|(u, s)| (u.clone(), s.as_str().to_owned()))
                .collect(),
        }
    }
}

impl MessageSnapshot {
    pub fn to_message(&self, app_id: Uuid) -> Message {
        let sender = match (&self.sender_user, &self.sender_name) {
            (Some(user), _) => Sender::User(user.clone()),
            (None, name) => Sender::Name(name.clone().unwrap_or_default()),
        };
        let status = |s: &str| match s {
            "read" => ReceiptStatus::Read,
            "delivered" => ReceiptStatus::Delivered,
            _ => ReceiptStatus::Sent,
        };
        Message {
            app_id,
            id: self.id,
            conversation_id: self.conversation_id,
            position: self.position,
            sender,
            sent_at: Timestamp::from_millis(self.sent_at),
            updated_at: self.updated_at.map(Timestamp::from_millis),
            notification: None,
            parts: self.parts.iter().map(PartSnapshot::to_part).collect(),
            recipient_status: self
                .recipient_status
                .iter()
                .map(|(u, s)| (u.clone(), status(s)))
                .collect(),
        }
    }
}

impl From<&Conversation> for ConversationSnapshot {
    fn from(c: &Conversation) -> Self {
        ConversationSnapshot {
            id: c.id,
            created_at: c.created_at.millis(),
            distinct: c.is_distinct(),
            metadata: c.metadata.clone(),
            participants: c.participants.clone(),
        }
    }
}

impl ConversationSnapshot {
    pub fn to_conversation(&self, app_id: Uuid) -> Conversation {
        Conversation {
            app_id,
            id: self.id,
            created_at: Timestamp::from_millis(self.created_at),
            // Only whether it is set matters for rendering.
            distinct_key: self.distinct.then(String::new),
            metadata: self.metadata.clone(),
            participants: self.participants.clone(),
            last_position: 0,
            revision: 0,
            deleted_at: None,
        }
    }
}

/// The events each kind of change produces.
pub mod names {
    use super::EventNames;

    pub const MESSAGE_CREATED: EventNames =
        EventNames::new(Some("message.sent"), "Message.created");
    pub const MESSAGE_DELETED: EventNames =
        EventNames::new(Some("message.deleted"), "Message.deleted");
    pub const CONVERSATION_CREATED: EventNames =
        EventNames::new(Some("conversation.created"), "Conversation.created");
    pub const CONVERSATION_DELETED: EventNames =
        EventNames::new(Some("conversation.deleted"), "Conversation.deleted");
    /// Participants changed: 1.0's `conversation.updated.participants`, 2.0+'s
    /// `Conversation.updated`.
    pub const PARTICIPANTS_UPDATED: EventNames = EventNames::new(
        Some("conversation.updated.participants"),
        "Conversation.updated",
    );
    /// Metadata changed (without participant changes, which already name the update).
    pub const METADATA_UPDATED: EventNames = EventNames::new(
        Some("conversation.updated.metadata"),
        "Conversation.updated",
    );
    /// 1.0 sends metadata changes separately from participant changes.
    pub const METADATA_UPDATED_V1: EventNames = EventNames {
        v1: Some("conversation.updated.metadata"),
        v2: None,
        v3: None,
    };
    pub const PARTICIPATION_CREATED: EventNames = EventNames {
        v1: None,
        v2: Some("Participation.created"),
        v3: Some("Participation.created"),
    };
    pub const PARTICIPATION_DELETED: EventNames = EventNames {
        v1: None,
        v2: Some("Participation.deleted"),
        v3: Some("Participation.deleted"),
    };
    pub const MESSAGE_READ: EventNames = EventNames::new(Some("message.read"), "Receipt.created");
    pub const MESSAGE_DELIVERED: EventNames =
        EventNames::new(Some("message.delivered"), "Receipt.created");
    /// `mark_all_read`: a position range; 1.0 had per-message events only.
    pub const RANGE_READ: EventNames = EventNames {
        v1: None,
        v2: Some("Receipt.created"),
        v3: Some("Receipt.created"),
    };
    pub const PART_CREATED: EventNames = EventNames {
        v1: None,
        v2: None,
        v3: Some("MessagePart.created"),
    };
    pub const PART_UPDATED: EventNames = EventNames {
        v1: None,
        v2: None,
        v3: Some("MessagePart.updated"),
    };
    pub const PART_DELETED: EventNames = EventNames {
        v1: None,
        v2: None,
        v3: Some("MessagePart.deleted"),
    };
}

/// Everything a webhook version may subscribe to.
pub fn catalogue(version: &str) -> &'static [&'static str] {
    match version {
        "1.0" => &[
            "message.sent",
            "message.delivered",
            "message.read",
            "message.deleted",
            "conversation.created",
            "conversation.updated.participants",
            "conversation.updated.metadata",
            "conversation.deleted",
        ],
        "2.0" => &[
            "Message.created",
            "Message.deleted",
            "Receipt.created",
            "Conversation.created",
            "Conversation.updated",
            "Conversation.deleted",
            "Participation.created",
            "Participation.deleted",
        ],
        "3.0" => &[
            "Message.created",
            "Message.deleted",
            "Receipt.created",
            "Conversation.created",
            "Conversation.updated",
            "Conversation.deleted",
            "Participation.created",
            "Participation.deleted",
            "MessagePart.created",
            "MessagePart.updated",
            "MessagePart.deleted",
        ],
        _ => &[],
    }
}

/// A registration, as validated by the API (its `Debug` shows no secret).
#[derive(Clone, Debug)]
pub struct NewWebhook {
    pub app_id: Uuid,
    pub id: Uuid,
    pub version: String,
    pub target_url: String,
    pub events: Vec<String>,
    pub secret: SecretString,
    pub config: Option<Map<String, Value>>,
    pub created_at: Timestamp,
}

/// How a delivery attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Delivered,
    /// Failed; try again at this time.
    Retry {
        at: Timestamp,
        error: String,
    },
    /// Failed for the last time: the webhook is deactivated and its backlog dropped.
    GiveUp {
        error: String,
        reason: String,
    },
    /// Nothing to deliver (a snapshot this build cannot read, or a 1.0 receipt whose message
    /// is gone): the row is removed.
    Discard,
}

#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Wakes the delivery worker of this process when events were enqueued here.
    fn webhook_wakeup(&self) -> std::sync::Arc<tokio::sync::Notify>;

    /// Registers an `unverified` webhook whose verification is due now; false when the app has
    /// `max` webhooks already.
    async fn create_webhook(&self, new: &NewWebhook, max: u32) -> StoreResult<bool>;
    async fn webhooks(&self, app_id: Uuid) -> StoreResult<Vec<Webhook>>;
    async fn webhook(&self, app_id: Uuid, id: Uuid) -> StoreResult<Option<Webhook>>;
    /// `activate`: back to `unverified`, verification due now. False when there is none.
    async fn request_verification(
        &self,
        app_id: Uuid,
        id: Uuid,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// `inactive` with this reason; the backlog is dropped. False when there is none.
    async fn deactivate_webhook(&self, app_id: Uuid, id: Uuid, reason: &str) -> StoreResult<bool>;
    async fn delete_webhook(&self, app_id: Uuid, id: Uuid) -> StoreResult<bool>;

    /// Up to `limit` unverified webhooks whose verification is due and not leased, leased
    /// until `lease_until` (across nodes, each is claimed once).
    async fn claim_verifications(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<(Webhook, Timestamp)>>;
    /// The verification's result, if the webhook is still unverified under this lease.
    async fn finish_verification(
        &self,
        id: Uuid,
        lease_until: Timestamp,
        verified: bool,
        reason: &str,
    ) -> StoreResult<()>;

    /// Up to `limit` due deliveries of active webhooks, oldest first, leased until
    /// `lease_until` (skipping rows other nodes hold).
    async fn claim_deliveries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<Delivery>>;
    /// Records an attempt's outcome (if the lease is still held).
    async fn finish_delivery(
        &self,
        delivery: &Delivery,
        outcome: &Outcome,
        now: Timestamp,
    ) -> StoreResult<()>;
    /// Events waiting for active webhooks, all apps (the backlog gauge).
    async fn webhook_backlog(&self) -> StoreResult<i64>;
}
