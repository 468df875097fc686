//! The Layer API routers: the Client API at the root and the Platform API under
//! `/apps/:app_uuid`. Handlers are thin: parse, call the services, render for the version.
//!
//! The routes that act as a user (`user_routes`) are mounted twice: at the root for Client API
//! sessions, and under `/apps/:app_uuid/users/:user_id` for the Platform API proxy. The same
//! handlers serve the Platform API's own conversation and message routes; the `Actor` tells
//! them who is asking.

pub(crate) mod announcements;
mod blocks;
pub(crate) mod channels;
pub(crate) mod content;
pub(crate) mod conversations;
mod following;
mod identities;
pub(crate) mod messages;
mod push_tokens;
mod root;
mod sessions;
mod user_patch;
mod users;
pub(crate) mod webhooks;

use axum::extract::{OriginalUri, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use axum::Router;
use serde_json::Value;

use crate::error::ApiResult;
use crate::http::auth::Actor;
use crate::http::{auth, dedup, json_response, AppState};
use crate::render::View;
use crate::version::ApiVersion;

/// A renderer for the actor, without identities (for objects that mention no users).
pub(crate) fn bare_view<'a>(state: &'a AppState, actor: &Actor, version: ApiVersion) -> View<'a> {
    View::new(
        version,
        &state.urls,
        actor.app_id,
        actor.perspective.clone(),
    )
}

/// A renderer for the actor, with the identities of `users` loaded (2.0+ renders them).
pub(crate) async fn view_for<'a>(
    state: &'a AppState,
    actor: &Actor,
    version: ApiVersion,
    mut users: Vec<String>,
) -> ApiResult<View<'a>> {
    let view = bare_view(state, actor, version);
    if !version.has_identities() || users.is_empty() {
        return Ok(view);
    }
    users.sort();
    users.dedup();
    let identities = state.store.identities_of(actor.app_id, &users).await?;
    Ok(view.with_identities(identities))
}

const LAYER_COUNT: HeaderName = HeaderName::from_static("layer-count");

/// A page of a list: the JSON array, and the total of the whole list in `Layer-Count`.
pub(crate) fn listing_response(items: &[Value], total: i64) -> Response {
    let mut response = json_response(StatusCode::OK, &items);
    response
        .headers_mut()
        .insert(LAYER_COUNT, HeaderValue::from(total));
    response
}

/// Route layer of the routes that exist from API 2.0 on: answers 1.x requests as an unknown route
/// would (404 `invalid_endpoint`).
pub(crate) async fn since_v2(version: ApiVersion, req: Request, next: Next) -> Response {
    if version.has_identities() {
        return next.run(req).await;
    }
    let uri = req
        .extensions()
        .get::<OriginalUri>()
        .map_or_else(|| req.uri().clone(), |original| original.0.clone());
    crate::http::compat::invalid_endpoint(req.method().clone(), uri)
        .await
        .into_response()
}

/// What a user does: the Client API's REST surface, also reachable through the proxy.
fn user_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/conversations",
            get(conversations::list).post(conversations::create),
        )
        .route(
            "/conversations/{conversation_id}",
            get(conversations::get)
                .patch(conversations::patch)
                .delete(conversations::delete),
        )
        .route(
            "/conversations/{conversation_id}/mark_all_read",
            post(conversations::mark_all_read),
        )
        .route(
            "/conversations/{conversation_id}/messages",
            get(messages::list).post(messages::send),
        )
        .route(
            "/messages/{message_id}",
            get(messages::get).delete(messages::delete),
        )
        .route("/messages/{message_id}/receipts", post(messages::receipt))
        .route(
            "/messages/{message_id}/parts",
            get(messages::list_parts)
                .post(messages::add_part)
                .put(messages::replace_parts),
        )
        .route(
            "/messages/{message_id}/parts/{part_id}",
            get(messages::get_part)
                .put(messages::update_part)
                .delete(messages::delete_part),
        )
        .route("/content", post(content::create))
        .route("/content/{content_id}", get(content::refresh))
        .route("/announcements", get(announcements::list))
        .route(
            "/announcements/{announcement_id}",
            get(announcements::get).delete(announcements::delete),
        )
        .route(
            "/announcements/{announcement_id}/receipts",
            post(announcements::receipt),
        )
}

/// Client API routes (session-token auth).
pub fn client_routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(root::root))
        .route("/push_tokens", post(push_tokens::register))
        .route("/push_tokens/{device_id}", delete(push_tokens::unregister))
        .merge(following::client_routes())
        .merge(user_routes())
        // Session users only: Layer's Platform API had no channels.
        .merge(channels::routes())
        .route_layer(from_fn_with_state(state.clone(), dedup::if_none_match))
        .route_layer(from_fn_with_state(state, auth::resolve_session))
        // Added after the session layer: these never need a session, and a stale token sent
        // along must not turn them into 401s.
        .route("/ping", get(root::ping))
        .route("/nonces", post(root::create_nonce))
        .route("/sessions", post(sessions::create))
        .route("/sessions/{session_token}", delete(sessions::delete))
}

/// Platform API routes, nested under `/apps/{app_uuid}` (Bearer auth).
pub fn platform_routes(state: AppState) -> Router<AppState> {
    const MESSAGE: &str = "/conversations/{conversation_id}/messages/{message_id}";
    Router::new()
        .route("/conversations", post(conversations::create))
        .route(
            "/conversations/{conversation_id}",
            get(conversations::get)
                .patch(conversations::patch)
                .delete(conversations::delete),
        )
        .route(
            "/conversations/{conversation_id}/messages",
            get(messages::list).post(messages::send),
        )
        .route(MESSAGE, get(messages::get).delete(messages::delete))
        .route(
            &format!("{MESSAGE}/parts"),
            get(messages::list_parts)
                .post(messages::add_part)
                .put(messages::replace_parts),
        )
        .route(
            &format!("{MESSAGE}/parts/{{part_id}}"),
            get(messages::get_part)
                .put(messages::update_part)
                .delete(messages::delete_part),
        )
        .route(
            "/conversations/{conversation_id}/content",
            post(content::platform_create),
        )
        .route(
            "/conversations/{conversation_id}/content/{content_id}",
            get(content::platform_refresh),
        )
        .route("/content/{content_id}", get(content::platform_refresh_any))
        .route("/announcements", post(announcements::announce))
        .route("/notifications", post(announcements::notify))
        .route(
            "/users/{user_id}/identity",
            get(identities::get_identity)
                .post(identities::create_identity)
                .put(identities::replace_identity)
                .patch(identities::patch_identity)
                .delete(identities::delete_identity),
        )
        // The app itself: inside the nest, "/" is exactly `/apps/{app_uuid}` (no trailing slash).
        .route("/", patch(users::patch_app))
        .route(
            "/users/{user_id}",
            get(users::get_user).patch(users::patch_user),
        )
        .route(
            "/users/{user_id}/badge",
            get(users::get_badge).put(users::put_badge),
        )
        .route("/users/{user_id}/sessions", delete(users::delete_sessions))
        .route(
            "/users/{user_id}/blocks",
            get(blocks::list_blocks).post(blocks::block),
        )
        .route(
            "/users/{user_id}/blocks/{other_id}",
            delete(blocks::unblock),
        )
        .merge(following::platform_routes())
        .nest("/users/{user_id}", user_routes())
        .route_layer(from_fn_with_state(state.clone(), dedup::if_none_match))
        .route_layer(from_fn_with_state(state, auth::require_bearer))
}
