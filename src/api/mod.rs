//! The Layer API routers: the Client API at the root and the Platform API under
//! `/apps/:app_uuid`. Handlers are thin: parse, call the store/services, render for the version.

mod blocks;
mod following;
mod identities;
mod root;
mod user_patch;
mod users;

use axum::middleware::from_fn_with_state;
use axum::routing::{delete, get, patch};
use axum::Router;

use crate::http::{auth, dedup, AppState};

/// Client API routes (session-token auth).
pub fn client_routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(root::root))
        .route("/ping", get(root::ping))
        .route("/nonces", axum::routing::post(root::create_nonce))
        .route_layer(from_fn_with_state(state.clone(), dedup::if_none_match))
        .route_layer(from_fn_with_state(state, auth::resolve_session))
}

/// Platform API routes, nested under `/apps/{app_uuid}` (Bearer auth).
pub fn platform_routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route(
            "/users/{user_id}/identity",
            get(identities::get_identity)
                .post(identities::create_identity)
                .put(identities::replace_identity),
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
        .merge(following::routes())
        .route_layer(from_fn_with_state(state.clone(), dedup::if_none_match))
        .route_layer(from_fn_with_state(state, auth::require_bearer))
}
