//! Conversations, for all three callers (server-api.md §5, client-api.md §3.2): the app
//! (`/apps/:app/conversations`), a user (`/conversations`) and the app acting as a user
//! (`/apps/:app/users/:user_id/conversations`). One handler each; the `Actor` says who.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{listing_response, view_for};
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::http::auth::Actor;
use crate::http::extract::{LayerJson, PathIds};
use crate::http::{json_response, AppState};
use crate::service::conversations::{
    self as svc, CreateConflict, CreateInput, Created, DeleteMode,
};
use crate::store::{Conversation, ConversationSort, UserConversation};
use crate::version::ApiVersion;

#[derive(Debug, Deserialize)]
pub(crate) struct CreateBody {
    id: Option<String>,
    participants: Option<Vec<String>>,
    distinct: Option<bool>,
    metadata: Option<Map<String, Value>>,
}

/// Users a conversation mentions (for BasicIdentity rendering).
fn users_of(conversation: &Conversation) -> Vec<String> {
    conversation.participants.clone()
}

pub(crate) fn users_of_view(view: &UserConversation) -> Vec<String> {
    let mut users = users_of(&view.conversation);
    if let Some(message) = &view.last_message {
        users.extend(super::messages::users_of(message));
    }
    users
}

/// Renders a conversation for the actor: the system view, or the user's.
async fn render_for(
    state: &AppState,
    actor: &Actor,
    version: ApiVersion,
    conversation: &Conversation,
) -> ApiResult<Value> {
    match actor.user_id() {
        None => {
            let view = view_for(state, actor, version, users_of(conversation)).await?;
            Ok(view.conversation(conversation))
        }
        Some(user) => {
            let user_view =
                svc::user_conversation(&state.store, actor.app_id, user, conversation.id).await?;
            let view = view_for(state, actor, version, users_of_view(&user_view)).await?;
            Ok(view.user_conversation(&user_view))
        }
    }
}

/// What a create returned, rendered for the actor.
pub(crate) enum CreateResult {
    New(Value),
    /// The existing distinct conversation, and its `Location`.
    Existing(Value, String),
}

impl CreateResult {
    pub(crate) fn into_body(self) -> Value {
        match self {
            CreateResult::New(body) | CreateResult::Existing(body, _) => body,
        }
    }
}

/// Creates a conversation (REST `POST /conversations` and the WebSocket's
/// `Conversation.create`): a distinct one found is a success, one with other metadata a
/// `conflict` error carrying it, a taken id `id_in_use` carrying it.
pub(crate) async fn create_conversation(
    state: &AppState,
    actor: &Actor,
    version: ApiVersion,
    body: CreateBody,
) -> ApiResult<CreateResult> {
    let participants = body
        .participants
        .ok_or_else(|| ApiError::missing_property("participants"))?
        .iter()
        .map(|p| crate::service::user_ref("participants", p))
        .collect::<ApiResult<Vec<_>>>()?;
    let id = body
        .id
        .as_deref()
        .map(|id| crate::service::object_id("id", "conversations", id))
        .transpose()?;
    let input = CreateInput {
        id,
        participants,
        // SDKs and docs: conversations are distinct unless asked otherwise.
        distinct: body.distinct.unwrap_or(true),
        metadata: body.metadata,
    };
    let limits = &state.settings.limits;
    let outcome = svc::create(&state.store, limits, actor.app_id, actor.user_id(), input).await?;
    match outcome {
        Ok(Created::New(c)) => Ok(CreateResult::New(
            render_for(state, actor, version, &c).await?,
        )),
        Ok(Created::Existing(c)) => {
            let body = render_for(state, actor, version, &c).await?;
            let location = super::bare_view(state, actor, version).conversation_location(c.id);
            Ok(CreateResult::Existing(body, location))
        }
        Err(CreateConflict::Metadata(c)) => {
            let existing = render_for(state, actor, version, &c).await?;
            Err(ApiError::conflict(
                ErrorKind::CONFLICT,
                "The requested Distinct Conversation was found but had metadata that did not match your request.",
                existing,
            )
            .with_url("https://developer.layer.com/api.md#creating-a-conversation"))
        }
        Err(CreateConflict::IdInUse(c)) => {
            let existing = if c.deleted_at.is_none() {
                render_for(state, actor, version, &c)
                    .await
                    .unwrap_or(Value::Null)
            } else {
                Value::Null
            };
            Err(ApiError::conflict(
                ErrorKind::ID_IN_USE,
                "The requested Conversation already exists.",
                existing,
            ))
        }
    }
}

pub async fn create(
    State(state): State<AppState>,
    actor: Actor,
    version: ApiVersion,
    LayerJson(body): LayerJson<CreateBody>,
) -> ApiResult<Response> {
    Ok(
        match create_conversation(&state, &actor, version, body).await? {
            CreateResult::New(body) => json_response(StatusCode::CREATED, &body),
            CreateResult::Existing(body, location) => {
                let mut response = json_response(StatusCode::OK, &body);
                if let Ok(value) = HeaderValue::from_str(&location) {
                    response.headers_mut().insert(header::LOCATION, value);
                }
                response
            }
        },
    )
}

pub async fn get(
    State(state): State<AppState>,
    actor: Actor,
    version: ApiVersion,
    ids: PathIds,
) -> ApiResult<Response> {
    let id = ids.uuid("conversation_id", "conversation")?;
    let body = match actor.user_id() {
        None => {
            let c = svc::system_conversation(&state.store, actor.app_id, id).await?;
            render_for(&state, &actor, version, &c).await?
        }
        Some(user) => {
            let user_view = svc::user_conversation(&state.store, actor.app_id, user, id).await?;
            let view = view_for(&state, &actor, version, users_of_view(&user_view)).await?;
            view.user_conversation(&user_view)
        }
    };
    Ok(json_response(StatusCode::OK, &body))
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    page_size: Option<String>,
    from_id: Option<String>,
    sort_by: Option<String>,
}

/// A user's conversations (Client API, and the Platform API's per-user list).
pub async fn list(
    State(state): State<AppState>,
    actor: Actor,
    version: ApiVersion,
    Query(query): Query<ListQuery>,
) -> ApiResult<Response> {
    let user = actor.require_user()?.to_owned();
    let sort = match query.sort_by.as_deref() {
        None | Some("" | "created_at") => ConversationSort::CreatedAt,
        Some("last_message") => ConversationSort::LastMessage,
        Some(_) => {
            return Err(ApiError::invalid_property(
                "sort_by",
                "sort_by is created_at or last_message.",
            ))
        }
    };
    let page = crate::service::page(
        query.page_size.as_deref(),
        query.from_id.as_deref(),
        "conversations",
        state.settings.limits.max_page_size,
    )?;
    let listing = state
        .store
        .user_conversations(actor.app_id, &user, sort, page)
        .await?;
    let users = listing.items.iter().flat_map(users_of_view).collect();
    let view = view_for(&state, &actor, version, users).await?;
    let items: Vec<Value> = listing
        .items
        .iter()
        .map(|c| view.user_conversation(c))
        .collect();
    Ok(listing_response(&items, listing.total))
}

pub async fn patch(
    State(state): State<AppState>,
    actor: Actor,
    ids: PathIds,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let id = ids.uuid("conversation_id", "conversation")?;
    svc::patch(
        &state.store,
        &state.settings.limits,
        actor.app_id,
        actor.user_id(),
        id,
        &body,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
pub struct DeleteQuery {
    mode: Option<String>,
    leave: Option<String>,
    destroy: Option<String>,
}

fn flag(value: Option<&str>) -> bool {
    matches!(value, Some("true" | "1"))
}

pub async fn delete(
    State(state): State<AppState>,
    actor: Actor,
    ids: PathIds,
    Query(query): Query<DeleteQuery>,
) -> ApiResult<StatusCode> {
    let id = ids.uuid("conversation_id", "conversation")?;
    let mode = match (query.mode.as_deref(), actor.user_id()) {
        (Some("all_participants"), _) => DeleteMode::AllParticipants,
        // The system has no devices: per-user deletion goes through the proxy.
        (Some("my_devices"), None) => {
            return Err(ApiError::invalid_property(
                "mode",
                "mode=my_devices deletes for one user: use /apps/:app_uuid/users/:user_id/conversations/:id.",
            ))
        }
        (Some("my_devices"), _) => DeleteMode::MyDevices {
            leave: flag(query.leave.as_deref()),
        },
        (Some(_), _) => {
            return Err(ApiError::invalid_property(
                "mode",
                "mode is all_participants or my_devices.",
            ))
        }
        // The Platform API deletes for everyone; `destroy=true` is the pre-2016 spelling.
        (None, None) => DeleteMode::AllParticipants,
        (None, Some(_)) if flag(query.destroy.as_deref()) => DeleteMode::AllParticipants,
        (None, Some(_)) => {
            return Err(ApiError::missing_property("mode"));
        }
    };
    svc::delete(&state.store, actor.app_id, actor.user_id(), id, mode).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize)]
pub struct MarkAllReadBody {
    position: Option<i64>,
}

/// `POST .../conversations/:id/mark_all_read {"position": n|null}` → 202 `{"position": n}`.
pub async fn mark_all_read(
    State(state): State<AppState>,
    actor: Actor,
    ids: PathIds,
    body: Bytes,
) -> ApiResult<Response> {
    let id = ids.uuid("conversation_id", "conversation")?;
    let user = actor.require_user()?;
    let body: MarkAllReadBody = if body.iter().all(u8::is_ascii_whitespace) {
        MarkAllReadBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid_request(format!("Invalid JSON body: {e}")))?
    };
    let position = svc::mark_all_read(&state.store, actor.app_id, user, id, body.position).await?;
    Ok((
        StatusCode::ACCEPTED,
        json_response(
            StatusCode::ACCEPTED,
            &serde_json::json!({ "position": position }),
        ),
    )
        .into_response())
}
