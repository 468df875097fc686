//! Payloads (webhooks.md §5.2, §6): an outbox snapshot rendered for the webhook's version with
//! the Platform API's system view (`render::View`), so objects look as the Server API returns
//! them. 1.0: `event.actor` inside `event`, user ids; 2.0+: a top-level `actor` BasicIdentity.
//! The webhook's `config` is copied into every payload when it has one.

use serde_json::{json, Map, Value};

use crate::http::Urls;
use crate::render::{conversation_uri, message_uri, Perspective, View};
use crate::store::webhooks::{Delivery, Subject};
use crate::store::{DynStore, StoreResult};
use crate::version::ApiVersion;

/// The body of a delivery, or `None` when there is nothing left to send.
pub async fn render(
    store: &DynStore,
    urls: &Urls,
    delivery: &Delivery,
) -> StoreResult<Option<Value>> {
    let hook = &delivery.webhook;
    let Some(subject) = &delivery.subject else {
        return Ok(None);
    };
    let Some(version) = ApiVersion::parse(&hook.version) else {
        return Ok(None);
    };
    let app_id = hook.app_id;
    let v1 = !version.has_identities();

    // A 1.0 receipt renders its message as it is now (1.0 had per-message receipt events).
    let receipt_message = match subject {
        Subject::Receipt {
            message: Some(id), ..
        } if v1 => match store.message(app_id, *id).await? {
            Some(message) => Some(message),
            None => return Ok(None),
        },
        _ => None,
    };

    let mut users: Vec<String> = Vec::new();
    match subject {
        Subject::Message { message, actor } => {
            users.extend(message.sender_user.clone());
            users.extend(message.recipient_status.iter().map(|(u, _)| u.clone()));
            users.extend(actor.clone());
        }
        Subject::Conversation {
            conversation,
            changes,
        } => {
            users.extend(conversation.participants.iter().cloned());
            users.extend(changes.iter().cloned());
        }
        Subject::Receipt { user, .. } => users.push(user.clone()),
        Subject::Part { .. } => {}
    }
    let mut view = View::new(version, urls, app_id, Perspective::System);
    if version.has_identities() && !users.is_empty() {
        users.sort();
        users.dedup();
        view = view.with_identities(store.identities_of(app_id, &users).await?);
    }

    let mut event = Map::new();
    event.insert("id".into(), delivery.event_id.to_string().into());
    event.insert("type".into(), delivery.event_type.clone().into());
    event.insert("created_at".into(), delivery.created_at.to_iso().into());
    let mut body = Map::new();
    let mut actor_user: Option<String> = None;
    let mut actor_name: Option<String> = None;
    match subject {
        Subject::Message { message, actor } => {
            actor_user = actor.clone();
            // A 1.0 system sender is `{"name": …}`; deletions name no actor.
            if v1 && actor.is_none() && delivery.event_type == "message.sent" {
                actor_name = message.sender_name.clone();
            }
            body.insert(
                "message".into(),
                webhook_message(&view, &message.to_message(app_id)),
            );
        }
        Subject::Conversation {
            conversation,
            changes,
        } => {
            body.insert(
                "conversation".into(),
                view.conversation(&conversation.to_conversation(app_id)),
            );
            if delivery.event_type.starts_with("Participation.") {
                let changes: Vec<Value> = changes.iter().map(|u| view.user_ref(u)).collect();
                body.insert("changes".into(), changes.into());
            }
        }
        Subject::Receipt {
            conversation,
            user,
            status,
            from,
            to,
            ..
        } => {
            actor_user = Some(user.clone());
            match receipt_message {
                Some(message) => {
                    body.insert("message".into(), webhook_message(&view, &message));
                }
                None => {
                    let kind = if status == "read" { "Read" } else { "Delivery" };
                    body.insert(
                        "conversation".into(),
                        json!({
                            "id": conversation_uri(*conversation),
                            "url": view.conversation_url(*conversation),
                        }),
                    );
                    body.insert(
                        "receipt".into(),
                        json!({"type": kind, "positions": {"from": from, "to": to}}),
                    );
                }
            }
        }
        Subject::Part {
            message,
            conversation,
            part,
        } => {
            let message_url = view.message_url(*conversation, *message);
            body.insert(
                "message".into(),
                json!({
                    "id": message_uri(*message),
                    "url": message_url,
                    "conversation": {
                        "id": conversation_uri(*conversation),
                        "url": view.conversation_url(*conversation),
                    },
                }),
            );
            let rendered = if delivery.event_type == "MessagePart.deleted" {
                json!({
                    "id": format!("layer:///messages/{message}/parts/{}", part.id),
                    "url": format!("{message_url}/parts/{}", part.id),
                    "message_url": message_url,
                })
            } else {
                view.part(*message, &message_url, 0, &part.to_part())
            };
            body.insert("message_part".into(), rendered);
        }
    }
    if v1 {
        match (actor_user, actor_name) {
            (Some(user), _) => {
                event.insert("actor".into(), json!({ "user_id": user }));
            }
            (None, Some(name)) => {
                event.insert("actor".into(), json!({ "name": name }));
            }
            (None, None) => {}
        }
    } else if let Some(user) = actor_user {
        body.insert("actor".into(), view.basic_identity(&user));
    }
    body.insert("event".into(), Value::Object(event));
    if let Some(config) = hook.config.as_ref().filter(|c| !c.is_empty()) {
        body.insert("config".into(), Value::Object(config.clone()));
    }
    Ok(Some(Value::Object(body)))
}

/// The webhook Message object (webhooks.md §6.2): the Server API's message without the fields
/// that only make sense to a reader (`receipts_url`, `received_at`, `is_unread`) or were never in
/// payloads (`notification`, `reply_to`).
fn webhook_message(view: &View<'_>, message: &crate::store::Message) -> Value {
    let mut value = view.message(message);
    if let Some(map) = value.as_object_mut() {
        for key in [
            "receipts_url",
            "received_at",
            "is_unread",
            "notification",
            "reply_to",
        ] {
            map.remove(key);
        }
    }
    value
}
