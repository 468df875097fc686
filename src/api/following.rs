//! Following (client-api.md §3.8, server-api.md §12.5; 2.0+): one implementation for the
//! Client API (`/following...`, `/identities`, acting as the session user) and the Platform API
//! (`/users/:user_id/following...`, `/users/:user_id/identities`, acting as that user). In 1.x
//! these routes do not exist (404 `invalid_endpoint`). Implicit follows (users sharing a
//! conversation) are rows the messaging code writes; an explicit unfollow keeps a row that stops
//! them.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::middleware::from_fn;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::Value;

use super::identities::{self, seen_identity};
use super::users::{user_ref, user_ref_value, OtherId};
use super::{bare_view, listing_response};
use crate::error::{ApiError, ApiResult};
use crate::http::auth::Actor;
use crate::http::extract::LayerJson;
use crate::http::AppState;
use crate::store::{Identity, Timestamp};
use crate::version::ApiVersion;

/// Following lists: default and largest page (the 2.0 draft's default; no maximum was documented).
const PAGE_SIZE: u32 = 500;

/// The Client API's following and identity routes, acting as the session user.
pub fn client_routes() -> Router<AppState> {
    Router::new()
        .route("/following", get(list_following))
        .route("/following/users", post(follow_many))
        .route(
            "/following/users/{other_id}",
            get(check_following).put(follow).delete(unfollow),
        )
        .route("/identities", get(followed_identities))
        .route(
            "/identities/{other_id}",
            get(identities::get_seen_identity).patch(identities::patch_own_identity),
        )
        .route_layer(from_fn(super::since_v2))
}

/// The Platform API's, acting as the user in the path (the proxy's identity route included).
pub fn platform_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/users/{user_id}/following",
            get(list_following).post(follow_many),
        )
        .route(
            "/users/{user_id}/following/{other_id}",
            get(check_following).put(follow).delete(unfollow),
        )
        .route("/users/{user_id}/identities", get(followed_identities))
        .route(
            "/users/{user_id}/identities/{other_id}",
            get(identities::get_seen_identity),
        )
        .route_layer(from_fn(super::since_v2))
}

/// `page_size` and `from_id` of a following list.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    page_size: Option<String>,
    from_id: Option<String>,
}

/// A validated page: `page_size` 1 … 500 (larger values are capped), `from_id` a user.
struct Page {
    size: u32,
    after: Option<String>,
}

impl PageQuery {
    fn page(&self) -> ApiResult<Page> {
        let size = match &self.page_size {
            None => PAGE_SIZE,
            Some(raw) => raw
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .map(|n| n.min(u64::from(PAGE_SIZE)) as u32)
                .ok_or_else(|| {
                    ApiError::invalid_property("page_size", "page_size must be a positive integer.")
                })?,
        };
        let after = self
            .from_id
            .as_deref()
            .map(|id| user_ref("from_id", id))
            .transpose()?;
        Ok(Page { size, after })
    }
}

/// Most users one `POST` of the following list may add.
const MAX_FOLLOW_BATCH: usize = 1000;

/// `GET /following` → the Identity ids of the followed users, in order of following, and
/// `Layer-Count`.
pub async fn list_following(
    State(state): State<AppState>,
    actor: Actor,
    Query(query): Query<PageQuery>,
) -> ApiResult<Response> {
    let me = actor.require_user()?;
    let page = query.page()?;
    let followed = state
        .store
        .followed(actor.app_id, me, page.after.as_deref(), page.size)
        .await?;
    let total = state.store.followed_count(actor.app_id, me).await?;
    let ids: Vec<Value> = followed
        .iter()
        .map(|u| crate::ids::identity_uri(u).into())
        .collect();
    Ok(listing_response(&ids, total))
}

/// `POST /following(/users)` `["layer:///identities/a", "b", ...]` → 202, empty body.
pub async fn follow_many(
    State(state): State<AppState>,
    actor: Actor,
    LayerJson(body): LayerJson<Vec<Value>>,
) -> ApiResult<StatusCode> {
    let me = actor.require_user()?;
    if body.len() > MAX_FOLLOW_BATCH {
        return Err(ApiError::invalid_property(
            "following",
            format!("At most {MAX_FOLLOW_BATCH} users may be followed at once."),
        ));
    }
    let followed = body
        .iter()
        .map(|item| user_ref_value("following", item))
        .collect::<ApiResult<Vec<String>>>()?;
    state
        .store
        .follow(actor.app_id, me, &followed, Timestamp::now())
        .await?;
    Ok(StatusCode::ACCEPTED)
}

/// `GET /following(/users)/:user_id` → 204 when followed, 404 `not_found` otherwise.
pub async fn check_following(
    State(state): State<AppState>,
    actor: Actor,
    OtherId(other): OtherId,
) -> ApiResult<StatusCode> {
    let me = actor.require_user()?;
    if state.store.is_following(actor.app_id, me, &other).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(
            "A user identity with the specified identifier could not be found.",
        ))
    }
}

/// `PUT /following(/users)/:user_id` → 204.
pub async fn follow(
    State(state): State<AppState>,
    actor: Actor,
    OtherId(other): OtherId,
) -> ApiResult<StatusCode> {
    let me = actor.require_user()?;
    state
        .store
        .follow(actor.app_id, me, &[other], Timestamp::now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /following(/users)/:user_id` → 204 (also when not followed).
pub async fn unfollow(
    State(state): State<AppState>,
    actor: Actor,
    OtherId(other): OtherId,
) -> ApiResult<StatusCode> {
    let me = actor.require_user()?;
    state
        .store
        .unfollow(actor.app_id, me, &other, Timestamp::now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /identities` → the full Identities of the followed users (blank for those without
/// one, as `GET /identities/:user_id` shows them), paged like the following list, and
/// `Layer-Count`.
pub async fn followed_identities(
    State(state): State<AppState>,
    actor: Actor,
    version: ApiVersion,
    Query(query): Query<PageQuery>,
) -> ApiResult<Response> {
    let me = actor.require_user()?;
    let page = query.page()?;
    let followed = state
        .store
        .followed(actor.app_id, me, page.after.as_deref(), page.size)
        .await?;
    let total = state.store.followed_count(actor.app_id, me).await?;
    let mut stored: HashMap<String, Identity> = state
        .store
        .identities_of(actor.app_id, &followed)
        .await?
        .into_iter()
        .map(|identity| (identity.user_id.clone(), identity))
        .collect();
    let view = bare_view(&state, &actor, version);
    let rendered: Vec<Value> = followed
        .iter()
        .map(|user| view.identity(&seen_identity(actor.app_id, user, stored.remove(user))))
        .collect();
    Ok(listing_response(&rendered, total))
}
