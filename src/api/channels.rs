//! Channels and memberships for session users (client-api.md §3.10, client-wire-protocol.md §6.6),
//! from API 2.0 on (1.x: 404 `invalid_endpoint`, as any unknown route). Layer created channels
//! and sent their messages over the WebSocket (`Channel.create`, `Message.create`);
//! `POST /channels` and `POST /channels/:id/messages` are our extensions taking the same `data`,
//! and `create_channel` / `send_message` are what those WebSocket requests call.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::middleware::from_fn;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::{listing_response, view_for};
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::http::auth::Actor;
use crate::http::extract::{LayerJson, PathIds};
use crate::http::{json_response, AppState};
use crate::service::channels::{self as svc, CreateConflict, CreateInput, SendInput};
use crate::store::{ChannelMessage, UserChannel};
use crate::version::ApiVersion;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/channels", get(list).post(create))
        .route(
            "/channels/{channel_id}",
            get(get_channel).patch(patch).delete(delete),
        )
        .route(
            "/channels/{channel_id}/messages",
            get(list_messages).post(send),
        )
        .route("/channels/{channel_id}/members", get(list_members))
        .route(
            "/channels/{channel_id}/members/{member_id}",
            get(get_member).put(add_member).delete(remove_member),
        )
        .route_layer(from_fn(super::since_v2))
}

#[derive(Debug, Deserialize)]
pub struct PageQuery {
    page_size: Option<String>,
    from_id: Option<String>,
}

fn channel_id(ids: &PathIds) -> ApiResult<Uuid> {
    svc::channel_id(ids.get("channel_id"))
}

pub(crate) async fn render_channel(
    state: &AppState,
    actor: &Actor,
    version: ApiVersion,
    channel: &UserChannel,
) -> ApiResult<Value> {
    let users = channel
        .membership
        .iter()
        .map(|m| m.user_id.clone())
        .collect();
    let view = view_for(state, actor, version, users).await?;
    Ok(view.channel(channel))
}

async fn render_messages(
    state: &AppState,
    actor: &Actor,
    version: ApiVersion,
    messages: &[ChannelMessage],
) -> ApiResult<Vec<Value>> {
    let senders = messages.iter().map(|m| m.sender.clone()).collect();
    let view = view_for(state, actor, version, senders).await?;
    Ok(messages.iter().map(|m| view.channel_message(m)).collect())
}

pub(crate) async fn render_message(
    state: &AppState,
    actor: &Actor,
    version: ApiVersion,
    message: &ChannelMessage,
) -> ApiResult<Value> {
    let mut rendered =
        render_messages(state, actor, version, std::slice::from_ref(message)).await?;
    Ok(rendered.pop().unwrap_or(Value::Null))
}

/// `Channel.create` (and `POST /channels`): the new channel as its creator sees it. A taken name
/// is a 409 `conflict` carrying the existing channel, which clients adopt; a taken id a 409
/// `id_in_use`, carrying the channel only if the caller is a member.
pub(crate) async fn create_channel(
    state: &AppState,
    actor: &Actor,
    version: ApiVersion,
    data: Value,
) -> ApiResult<Value> {
    let user = actor.require_user()?;
    let input = CreateInput::from_data(data)?;
    let limits = &state.settings.limits;
    match svc::create(&state.store, limits, actor.app_id, user, input).await? {
        Ok(channel) => render_channel(state, actor, version, &channel).await,
        Err(CreateConflict::NameTaken(existing)) => Err(ApiError::conflict(
            ErrorKind::CONFLICT,
            "A channel with this name already exists.",
            render_channel(state, actor, version, &existing).await?,
        )),
        Err(CreateConflict::IdInUse(existing)) => {
            let existing = match existing {
                Some(channel) => render_channel(state, actor, version, &channel).await?,
                None => Value::Null,
            };
            Err(ApiError::conflict(
                ErrorKind::ID_IN_USE,
                "The requested Channel already exists.",
                existing,
            ))
        }
    }
}

/// `Message.create` into a channel (and `POST /channels/:id/messages`): the message sent; a taken
/// id is a 409 `id_in_use`, carrying the message when the caller may see it.
pub(crate) async fn send_message(
    state: &AppState,
    actor: &Actor,
    version: ApiVersion,
    channel_id: Uuid,
    data: Value,
) -> ApiResult<Value> {
    let user = actor.require_user()?;
    let input = SendInput::from_data(data, &state.settings.limits)?;
    match svc::send(&state.store, actor.app_id, user, channel_id, input).await? {
        Ok(message) => render_message(state, actor, version, &message).await,
        Err(existing) => Err(ApiError::conflict(
            ErrorKind::ID_IN_USE,
            "The requested Message already exists.",
            render_message(state, actor, version, &existing).await?,
        )),
    }
}

/// `POST /channels` (our extension) → 201 with the channel.
pub async fn create(
    State(state): State<AppState>,
    actor: Actor,
    version: ApiVersion,
    LayerJson(data): LayerJson<Value>,
) -> ApiResult<Response> {
    let channel = create_channel(&state, &actor, version, data).await?;
    Ok(json_response(StatusCode::CREATED, &channel))
}

/// `GET /channels?page_size&from_id` → the user's channels, newest first.
pub async fn list(
    State(state): State<AppState>,
    actor: Actor,
    version: ApiVersion,
    Query(query): Query<PageQuery>,
) -> ApiResult<Response> {
    let user = actor.require_user()?;
    let page = crate::service::page(
        query.page_size.as_deref(),
        query.from_id.as_deref(),
        "channels",
        state.settings.limits.max_page_size,
    )?;
    let listing = svc::list(&state.store, actor.app_id, user, page).await?;
    let view = view_for(&state, &actor, version, vec![user.to_owned()]).await?;
    let items: Vec<Value> = listing.items.iter().map(|c| view.channel(c)).collect();
    Ok(listing_response(&items, listing.total))
}

pub async fn get_channel(
    State(state): State<AppState>,
    actor: Actor,
    version: ApiVersion,
    ids: PathIds,
) -> ApiResult<Response> {
    let user = actor.require_user()?;
    let channel = svc::user_channel(&state.store, actor.app_id, user, channel_id(&ids)?).await?;
    let body = render_channel(&state, &actor, version, &channel).await?;
    Ok(json_response(StatusCode::OK, &body))
}

/// `PATCH /channels/:id` (Layer Patch of `metadata`) → 204.
pub async fn patch(
    State(state): State<AppState>,
    actor: Actor,
    ids: PathIds,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let user = actor.require_user()?;
    svc::patch(&state.store, actor.app_id, user, channel_id(&ids)?, &body).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /channels/:id` (no mode: channels are deleted for everyone) → 204.
pub async fn delete(
    State(state): State<AppState>,
    actor: Actor,
    ids: PathIds,
) -> ApiResult<StatusCode> {
    let user = actor.require_user()?;
    svc::delete(&state.store, actor.app_id, user, channel_id(&ids)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /channels/:id/messages?page_size&from_id` → newest first.
pub async fn list_messages(
    State(state): State<AppState>,
    actor: Actor,
    version: ApiVersion,
    ids: PathIds,
    Query(query): Query<PageQuery>,
) -> ApiResult<Response> {
    let user = actor.require_user()?;
    let id = channel_id(&ids)?;
    let page = crate::service::page(
        query.page_size.as_deref(),
        query.from_id.as_deref(),
        "messages",
        state.settings.limits.max_page_size,
    )?;
    let listing = svc::messages(&state.store, actor.app_id, user, id, page).await?;
    let items = render_messages(&state, &actor, version, &listing.items).await?;
    Ok(listing_response(&items, listing.total))
}

/// `POST /channels/:id/messages` (our extension) → 201 with the message.
pub async fn send(
    State(state): State<AppState>,
    actor: Actor,
    version: ApiVersion,
    ids: PathIds,
    LayerJson(data): LayerJson<Value>,
) -> ApiResult<Response> {
    let id = channel_id(&ids)?;
    let message = send_message(&state, &actor, version, id, data).await?;
    Ok(json_response(StatusCode::CREATED, &message))
}

/// `GET /channels/:id/members?page_size&from_id` → members in user id order; `from_id` is the
/// last membership id (or user or Identity id) of the previous page.
pub async fn list_members(
    State(state): State<AppState>,
    actor: Actor,
    version: ApiVersion,
    ids: PathIds,
    Query(query): Query<PageQuery>,
) -> ApiResult<Response> {
    let user = actor.require_user()?;
    let id = channel_id(&ids)?;
    let limit = crate::service::page_size_of(query.page_size.as_deref(), svc::MEMBER_PAGE_SIZE)?;
    let after = match query.from_id.as_deref().filter(|s| !s.is_empty()) {
        Some(from) => Some(svc::member_ref("from_id", id, from)?),
        None => None,
    };
    let listing = svc::members(
        &state.store,
        actor.app_id,
        user,
        id,
        after.as_deref(),
        limit,
    )
    .await?;
    let users = listing.items.iter().map(|m| m.user_id.clone()).collect();
    let view = view_for(&state, &actor, version, users).await?;
    let items: Vec<Value> = listing
        .items
        .iter()
        .map(|m| view.channel_member(m))
        .collect();
    Ok(listing_response(&items, listing.total))
}

/// The channel and member a membership path names.
fn member_path(ids: &PathIds) -> ApiResult<(Uuid, String)> {
    let id = channel_id(ids)?;
    let member = svc::member_ref("user_id", id, ids.get("member_id").unwrap_or(""))?;
    Ok((id, member))
}

/// `GET /channels/:id/members/:user_id` → the membership; 404 `not_found` for non-members.
pub async fn get_member(
    State(state): State<AppState>,
    actor: Actor,
    version: ApiVersion,
    ids: PathIds,
) -> ApiResult<Response> {
    let user = actor.require_user()?;
    let (id, member) = member_path(&ids)?;
    let membership = svc::member(&state.store, actor.app_id, user, id, &member).await?;
    let view = view_for(&state, &actor, version, vec![member]).await?;
    Ok(json_response(
        StatusCode::OK,
        &view.channel_member(&membership),
    ))
}

/// `PUT /channels/:id/members/:user_id` (join, or add someone) → 204.
pub async fn add_member(
    State(state): State<AppState>,
    actor: Actor,
    ids: PathIds,
) -> ApiResult<StatusCode> {
    let user = actor.require_user()?;
    let (id, member) = member_path(&ids)?;
    let limits = &state.settings.limits;
    svc::add_member(&state.store, limits, actor.app_id, user, id, &member).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /channels/:id/members/:user_id` (leave, or remove someone) → 204.
pub async fn remove_member(
    State(state): State<AppState>,
    actor: Actor,
    ids: PathIds,
) -> ApiResult<StatusCode> {
    let user = actor.require_user()?;
    let (id, member) = member_path(&ids)?;
    svc::remove_member(&state.store, actor.app_id, user, id, &member).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /messages/:id` for a channel message the session user may see (`None` otherwise).
pub(crate) async fn get_message(
    state: &AppState,
    actor: &Actor,
    version: ApiVersion,
    message_id: Uuid,
) -> ApiResult<Option<Value>> {
    match session_message(state, actor, version, message_id).await? {
        Some(message) => Ok(Some(render_message(state, actor, version, &message).await?)),
        None => Ok(None),
    }
}

/// `DELETE /messages/:id` for a channel message the session user may see: for everyone (the
/// only mode channels have). `Ok(false)` when there is no such message for the user.
pub(crate) async fn delete_message(
    state: &AppState,
    actor: &Actor,
    version: ApiVersion,
    message_id: Uuid,
    mode: Option<&str>,
) -> ApiResult<bool> {
    let Some(message) = session_message(state, actor, version, message_id).await? else {
        return Ok(false);
    };
    if !matches!(mode, None | Some("" | "all_participants")) {
        return Err(ApiError::invalid_property(
            "mode",
            "Channel messages are deleted for everyone: send no mode.",
        ));
    }
    let user = actor.require_user()?;
    svc::delete_message(&state.store, actor.app_id, user, &message).await?;
    Ok(true)
}

/// The channel message, when the actor is a session user (channels are a Client API 2.0+
/// feature) who is a member of its channel.
async fn session_message(
    state: &AppState,
    actor: &Actor,
    version: ApiVersion,
    message_id: Uuid,
) -> ApiResult<Option<ChannelMessage>> {
    match (&actor.perspective, version.has_identities()) {
        (crate::render::Perspective::Client { user_id }, true) => {
            svc::user_message(&state.store, actor.app_id, user_id, message_id).await
        }
        _ => Ok(None),
    }
}
