//! Messages, receipts and (3.0) message parts, for the app, a user and the app acting as a
//! user (server-api.md §6-7, client-api.md §3.3-3.5). `GET`/`DELETE /messages/:id` also serve
//! channel messages to session users (`api/channels.rs`).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::{listing_response, view_for};
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::http::auth::Actor;
use crate::http::extract::{LayerJson, PathIds};
use crate::http::{json_response, AppState};
use crate::service::conversations as conversations_svc;
use crate::service::messages::{self as svc, PartInput, SendInput};
use crate::store::{Message, Sender, Timestamp};
use crate::version::ApiVersion;

/// Users a message mentions (sender and recipients).
pub fn users_of(message: &Message) -> Vec<String> {
    let mut users: Vec<String> = message
        .recipient_status
        .iter()
        .map(|(u, _)| u.clone())
        .collect();
    if let Sender::User(user) = &message.sender {
        users.push(user.clone());
    }
    users
}

pub(crate) async fn render(
    state: &AppState,
    actor: &Actor,
    version: ApiVersion,
    message: &Message,
) -> ApiResult<Value> {
    let view = view_for(state, actor, version, users_of(message)).await?;
    Ok(view.message(message))
}

/// The 1.x `sender` object of messages and announcements.
#[derive(Debug, Default, Deserialize)]
pub(super) struct SenderBody {
    user_id: Option<String>,
    name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct SendBody {
    id: Option<String>,
    sender_id: Option<String>,
    sender: Option<SenderBody>,
    parts: Option<Vec<PartInput>>,
    notification: Option<Value>,
    /// Delayed sending (server-api.md §6.1): accepted, but the message is sent at once.
    #[allow(dead_code)]
    schedule: Option<Value>,
}

/// The sender of a Platform API message or announcement: exactly one of `sender_id` (2.0+),
/// `sender.user_id` or `sender.name` (1.x).
pub(super) fn platform_sender(
    sender_id: Option<&str>,
    sender: Option<&SenderBody>,
) -> ApiResult<Sender> {
    let user = sender.and_then(|s| s.user_id.as_deref());
    let name = sender.and_then(|s| s.name.as_deref());
    match (sender_id, user, name) {
        (Some(id), None, None) => Ok(Sender::User(crate::service::user_ref("sender_id", id)?)),
        (None, Some(user), None) => Ok(Sender::User(crate::service::user_ref(
            "sender.user_id",
            user,
        )?)),
        (None, None, Some(name)) if !name.trim().is_empty() && name.chars().count() <= 128 => {
            Ok(Sender::Name(name.to_owned()))
        }
        (None, None, Some(_)) => Err(ApiError::invalid_property(
            "sender.name",
            "sender.name must be 1 to 128 characters long.",
        )),
        (None, None, None) => Err(ApiError::missing_property("sender")),
        _ => Err(ApiError::invalid_property(
            "sender",
            "Give exactly one of sender_id, sender.user_id and sender.name.",
        )),
    }
}

fn send_input(state: &AppState, actor: &Actor, body: SendBody) -> ApiResult<SendInput> {
    let sender = match actor.user_id() {
        Some(user) => Sender::User(user.to_owned()),
        None => platform_sender(body.sender_id.as_deref(), body.sender.as_ref())?,
    };
    let id = body
        .id
        .as_deref()
        .map(|id| crate::service::object_id("id", "messages", id))
        .transpose()?;
    let message_id = id.unwrap_or_else(Uuid::new_v4);
    let parts = svc::parts(body.parts, message_id, &state.settings.limits, None)?;
    let notification = match body.notification {
        None | Some(Value::Null) => None,
        Some(n @ Value::Object(_)) => Some(n),
        Some(_) => {
            return Err(ApiError::invalid_property(
                "notification",
                "notification must be an object.",
            ))
        }
    };
    Ok(SendInput {
        id: Some(message_id),
        sender,
        parts,
        notification,
    })
}

fn parse_body(value: Value) -> ApiResult<SendBody> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        ApiError::invalid_request(format!("Invalid message at {}: {}", e.path(), e.inner()))
    })
}

/// A message body as sent (REST or `Message.create`'s `data`), validated.
pub(crate) fn message_input(state: &AppState, actor: &Actor, body: Value) -> ApiResult<SendInput> {
    parse_body(body).and_then(|b| send_input(state, actor, b))
}

/// Sends one validated message and renders it for the actor. A taken id is `id_in_use`
/// carrying the existing message, if the actor may see it.
pub(crate) async fn send_one(
    state: &AppState,
    actor: &Actor,
    version: ApiVersion,
    conversation_id: Uuid,
    input: SendInput,
) -> ApiResult<Value> {
    let as_participant = actor.user_id().is_some();
    match svc::send(
        &state.store,
        actor.app_id,
        conversation_id,
        as_participant,
        input,
    )
    .await?
    {
        Ok((message, identities)) => {
            // The send read its participants' identities; a sender outside them (Platform
            // API) is looked up.
            let sender_outside = matches!(&message.sender, Sender::User(user)
                if !message.recipient_status.iter().any(|(u, _)| u == user));
            if sender_outside {
                return render(state, actor, version, &message).await;
            }
            let view = super::bare_view(state, actor, version);
            let view = if version.has_identities() {
                view.with_identities(identities)
            } else {
                view
            };
            Ok(view.message(&message))
        }
        Err(existing) => {
            // The id may be taken by a message the user cannot see (another conversation):
            // then the 409 carries no object, so guessing ids reveals nothing.
            let visible = match actor.user_id() {
                Some(user) => svc::user_message(&state.store, actor.app_id, user, existing.id)
                    .await
                    .is_ok(),
                None => true,
            };
            let existing = if visible {
                render(state, actor, version, &existing).await?
            } else {
                Value::Null
            };
            Err(ApiError::conflict(
                ErrorKind::ID_IN_USE,
                "The requested Message already exists.",
                existing,
            ))
        }
    }
}

/// `POST .../conversations/:id/messages`: 201 with the message; a JSON array of messages
/// (Platform API batch) is 202 with the array of messages.
pub async fn send(
    State(state): State<AppState>,
    actor: Actor,
    version: ApiVersion,
    ids: PathIds,
    LayerJson(body): LayerJson<Value>,
) -> ApiResult<Response> {
    let conversation_id = ids.uuid("conversation_id", "conversation")?;
    let (batch, bodies) = match body {
        Value::Array(items) if actor.user_id().is_none() => (true, items),
        other => (false, vec![other]),
    };
    // Validate everything before sending anything.
    let inputs = bodies
        .into_iter()
        .map(|b| message_input(&state, &actor, b))
        .collect::<ApiResult<Vec<_>>>()?;
    let mut sent = Vec::with_capacity(inputs.len());
    for input in inputs {
        sent.push(send_one(&state, &actor, version, conversation_id, input).await?);
    }
    Ok(if batch {
        json_response(StatusCode::ACCEPTED, &sent)
    } else {
        json_response(StatusCode::CREATED, &sent[0])
    })
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    page_size: Option<String>,
    from_id: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    actor: Actor,
    version: ApiVersion,
    ids: PathIds,
    Query(query): Query<ListQuery>,
) -> ApiResult<Response> {
    let conversation_id = ids.uuid("conversation_id", "conversation")?;
    let page = crate::service::page(
        query.page_size.as_deref(),
        query.from_id.as_deref(),
        "messages",
        state.settings.limits.max_page_size,
    )?;
    let listing = match actor.user_id() {
        None => {
            conversations_svc::system_conversation(&state.store, actor.app_id, conversation_id)
                .await?;
            state
                .store
                .messages(actor.app_id, conversation_id, None, page)
                .await?
        }
        Some(user) => {
            let view = conversations_svc::user_conversation(
                &state.store,
                actor.app_id,
                user,
                conversation_id,
            )
            .await?;
            state
                .store
                .messages(
                    actor.app_id,
                    conversation_id,
                    Some((user, &view.membership)),
                    page,
                )
                .await?
        }
    };
    let users = listing.items.iter().flat_map(users_of).collect();
    let view = view_for(&state, &actor, version, users).await?;
    let items: Vec<Value> = listing.items.iter().map(|m| view.message(m)).collect();
    Ok(listing_response(&items, listing.total))
}

/// The message a path names, as the actor may see it.
async fn load(state: &AppState, actor: &Actor, ids: &PathIds) -> ApiResult<Message> {
    let id = svc::message_id(ids.get("message_id"))?;
    match (actor.user_id(), ids.get("conversation_id")) {
        (None, Some(_)) => {
            let conversation_id = ids.uuid("conversation_id", "conversation")?;
            svc::conversation_message(&state.store, actor.app_id, conversation_id, id).await
        }
        (None, None) => state
            .store
            .message(actor.app_id, id)
            .await?
            .ok_or_else(svc::message_not_found),
        (Some(user), _) => Ok(svc::user_message(&state.store, actor.app_id, user, id)
            .await?
            .0),
    }
}

pub async fn get(
    State(state): State<AppState>,
    actor: Actor,
    version: ApiVersion,
    ids: PathIds,
) -> ApiResult<Response> {
    let message = match load(&state, &actor, &ids).await {
        Err(err) if err.kind() == ErrorKind::NOT_FOUND => {
            let id = svc::message_id(ids.get("message_id"))?;
            return match super::channels::get_message(&state, &actor, version, id).await? {
                Some(message) => Ok(json_response(StatusCode::OK, &message)),
                None => Err(err),
            };
        }
        other => other?,
    };
    Ok(json_response(
        StatusCode::OK,
        &render(&state, &actor, version, &message).await?,
    ))
}

#[derive(Debug, Deserialize)]
pub struct DeleteQuery {
    mode: Option<String>,
}

pub async fn delete(
    State(state): State<AppState>,
    actor: Actor,
    version: ApiVersion,
    ids: PathIds,
    Query(query): Query<DeleteQuery>,
) -> ApiResult<StatusCode> {
    let message = match load(&state, &actor, &ids).await {
        Err(err) if err.kind() == ErrorKind::NOT_FOUND => {
            let id = svc::message_id(ids.get("message_id"))?;
            let mode = query.mode.as_deref();
            let deleted =
                super::channels::delete_message(&state, &actor, version, id, mode).await?;
            return if deleted {
                Ok(StatusCode::NO_CONTENT)
            } else {
                Err(err)
            };
        }
        other => other?,
    };
    let for_everyone = match (actor.user_id(), query.mode.as_deref()) {
        (None, _) | (Some(_), None | Some("all_participants")) => true,
        (Some(_), Some("my_devices")) => false,
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid_property(
                "mode",
                "mode is all_participants or my_devices.",
            ))
        }
    };
    if let (Some(user), true) = (actor.user_id(), for_everyone) {
        let view = conversations_svc::user_conversation(
            &state.store,
            actor.app_id,
            user,
            message.conversation_id,
        )
        .await?;
        if !view.membership.is_participant {
            return Err(crate::service::access_denied(
                "You are no longer a participant in the specified Conversation.",
            ));
        }
    }
    match actor.user_id() {
        Some(user) if !for_everyone => {
            state
                .store
                .hide_message(actor.app_id, message.id, user, Timestamp::now())
                .await?
        }
        _ => {
            if !state.store.delete_message(actor.app_id, message.id).await? {
                return Err(svc::message_not_found());
            }
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
pub struct ReceiptBody {
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// `POST /messages/:id/receipts {"type": "read"|"delivery"}` → 204.
pub async fn receipt(
    State(state): State<AppState>,
    actor: Actor,
    ids: PathIds,
    LayerJson(body): LayerJson<ReceiptBody>,
) -> ApiResult<StatusCode> {
    let user = actor.require_user()?;
    let id = svc::message_id(ids.get("message_id"))?;
    let status = svc::receipt_status(body.kind.as_deref())?;
    svc::receipt(&state.store, actor.app_id, user, id, status).await?;
    Ok(StatusCode::NO_CONTENT)
}

// Message parts (3.0).

fn require_v3(version: ApiVersion) -> ApiResult<()> {
    if version >= ApiVersion::V3_0 {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorKind::INVALID_ENDPOINT,
            "Message parts are addressable from API version 3.0 on.",
        ))
    }
}

/// Part edits are for the app and for the message's sender.
async fn editable(
    state: &AppState,
    actor: &Actor,
    version: ApiVersion,
    ids: &PathIds,
) -> ApiResult<Message> {
    require_v3(version)?;
    let message = load(state, actor, ids).await?;
    if let Some(user) = actor.user_id() {
        if message.sender.user_id() != Some(user) {
            return Err(crate::service::access_denied(
                "Only the sender may change the parts of a message.",
            ));
        }
    }
    Ok(message)
}

fn part_json(
    state: &AppState,
    actor: &Actor,
    version: ApiVersion,
    message: &Message,
    part_id: Uuid,
) -> ApiResult<Value> {
    let view = super::bare_view(state, actor, version);
    let url = view.message_url(message.conversation_id, message.id);
    message
        .parts
        .iter()
        .enumerate()
        .find(|(_, p)| p.id == part_id)
        .map(|(i, p)| view.part(message.id, &url, i, p))
        .ok_or_else(|| ApiError::not_found("The message part could not be found."))
}

fn part_path_id(ids: &PathIds, message_id: Uuid) -> ApiResult<Uuid> {
    let value = ids.get("part_id").unwrap_or("");
    crate::service::object_id("part_id", &format!("messages/{message_id}/parts"), value)
        .map_err(|_| ApiError::not_found("The message part could not be found."))
}

pub async fn list_parts(
    State(state): State<AppState>,
    actor: Actor,
    version: ApiVersion,
    ids: PathIds,
) -> ApiResult<Response> {
    require_v3(version)?;
    let message = load(&state, &actor, &ids).await?;
    let view = super::bare_view(&state, &actor, version);
    Ok(json_response(StatusCode::OK, &view.parts(&message)))
}

pub async fn get_part(
    State(state): State<AppState>,
    actor: Actor,
    version: ApiVersion,
    ids: PathIds,
) -> ApiResult<Response> {
    require_v3(version)?;
    let message = load(&state, &actor, &ids).await?;
    let part_id = part_path_id(&ids, message.id)?;
    Ok(json_response(
        StatusCode::OK,
        &part_json(&state, &actor, version, &message, part_id)?,
    ))
}

/// Checks the content the new or changed `parts` of `message` reference (the app may also use
/// its own content when it edits); the store marks it referenced with the change.
async fn part_references(
    state: &AppState,
    actor: &Actor,
    message: &Message,
    parts: &mut [crate::store::Part],
    single: bool,
) -> ApiResult<()> {
    let by_app = actor.user_id().is_none();
    svc::check_part_references(&state.store, actor.app_id, message, by_app, parts, single).await
}

/// Adds `part` to `message` (or, with `update`, replaces the part of its id) once its content
/// reference is checked.
async fn change_one_part(
    state: &AppState,
    actor: &Actor,
    message: &Message,
    part: &mut crate::store::Part,
    update: bool,
) -> ApiResult<()> {
    part_references(state, actor, message, std::slice::from_mut(part), true).await?;
    let change = if update {
        state
            .store
            .update_part(actor.app_id, message.id, part)
            .await?
    } else {
        state.store.add_part(actor.app_id, message.id, part).await?
    };
    svc::part_change(change)
}

pub async fn add_part(
    State(state): State<AppState>,
    actor: Actor,
    version: ApiVersion,
    ids: PathIds,
    LayerJson(body): LayerJson<PartInput>,
) -> ApiResult<Response> {
    let message = editable(&state, &actor, version, &ids).await?;
    let mut part = svc::part(
        body,
        message.id,
        0,
        &state.settings.limits,
        Some(Timestamp::now()),
    )?;
    change_one_part(&state, &actor, &message, &mut part, false).await?;
    let message = load(&state, &actor, &ids).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &part_json(&state, &actor, version, &message, part.id)?,
    ))
}

pub async fn update_part(
    State(state): State<AppState>,
    actor: Actor,
    version: ApiVersion,
    ids: PathIds,
    LayerJson(body): LayerJson<PartInput>,
) -> ApiResult<Response> {
    let message = editable(&state, &actor, version, &ids).await?;
    let part_id = part_path_id(&ids, message.id)?;
    let mut part = svc::part(
        PartInput { id: None, ..body },
        message.id,
        0,
        &state.settings.limits,
        Some(Timestamp::now()),
    )?;
    part.id = part_id;
    change_one_part(&state, &actor, &message, &mut part, true).await?;
    let message = load(&state, &actor, &ids).await?;
    Ok(json_response(
        StatusCode::OK,
        &part_json(&state, &actor, version, &message, part_id)?,
    ))
}

pub async fn replace_parts(
    State(state): State<AppState>,
    actor: Actor,
    version: ApiVersion,
    ids: PathIds,
    LayerJson(body): LayerJson<Vec<PartInput>>,
) -> ApiResult<Response> {
    let message = editable(&state, &actor, version, &ids).await?;
    let now = Timestamp::now();
    // Every part is new: fresh ids unless the caller chose them.
    let mut parts = svc::parts(Some(body), message.id, &state.settings.limits, Some(now))?;
    part_references(&state, &actor, &message, &mut parts, false).await?;
    svc::part_change(
        state
            .store
            .replace_parts(actor.app_id, message.id, &parts, now)
            .await?,
    )?;
    let message = load(&state, &actor, &ids).await?;
    let view = super::bare_view(&state, &actor, version);
    Ok(json_response(StatusCode::OK, &view.parts(&message)))
}

pub async fn delete_part(
    State(state): State<AppState>,
    actor: Actor,
    version: ApiVersion,
    ids: PathIds,
) -> ApiResult<StatusCode> {
    let message = editable(&state, &actor, version, &ids).await?;
    let part_id = part_path_id(&ids, message.id)?;
    svc::part_change(
        state
            .store
            .delete_part(actor.app_id, message.id, part_id, Timestamp::now())
            .await?,
    )?;
    Ok(StatusCode::NO_CONTENT)
}
