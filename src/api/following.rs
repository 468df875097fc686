//! Following (server-api.md §12.5, Platform API 2.0+): `/users/:user_id/following[/:other_id]`
//! and `/users/:user_id/identities`. In 1.x these routes do not exist (404 `invalid_endpoint`).
//! Implicit follows (users sharing a conversation) are rows the messaging code writes; an
//! explicit unfollow keeps a row that stops them.

use axum::extract::{OriginalUri, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{from_fn, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::Value;

use super::users::{user_ref, user_ref_value, UserId, UserPair};
use crate::error::{ApiError, ApiResult};
use crate::http::auth::AppCaller;
use crate::http::extract::LayerJson;
use crate::http::{json_response, AppState};
use crate::store::Timestamp;
use crate::version::ApiVersion;

/// Following lists: default and largest page (the 2.0 draft's default; no maximum was documented).
const PAGE_SIZE: u32 = 500;

/// The following routes, answering only from version 2.0 on.
pub fn routes() -> Router<AppState> {
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
        .route_layer(from_fn(since_v2))
}

/// Answers 1.x requests as an unknown route would.
async fn since_v2(version: ApiVersion, req: Request, next: Next) -> Response {
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

/// `GET /users/:user_id/following` → the Identity ids of the followed users, in order of
/// following.
pub async fn list_following(
    State(state): State<AppState>,
    caller: AppCaller,
    UserId(user_id): UserId,
    Query(query): Query<PageQuery>,
) -> ApiResult<Response> {
    let page = query.page()?;
    let followed = state
        .store
        .followed(caller.app_id, &user_id, page.after.as_deref(), page.size)
        .await?;
    let ids: Vec<String> = followed
        .iter()
        .map(|u| crate::ids::identity_uri(u))
        .collect();
    Ok(json_response(StatusCode::OK, &ids))
}

/// `POST /users/:user_id/following` `["layer:///identities/a", "b", ...]` → 202, empty body.
pub async fn follow_many(
    State(state): State<AppState>,
    caller: AppCaller,
    UserId(user_id): UserId,
    LayerJson(body): LayerJson<Vec<Value>>,
) -> ApiResult<StatusCode> {
    let followed = body
        .iter()
        .map(|item| user_ref_value("following", item))
        .collect::<ApiResult<Vec<String>>>()?;
    state
        .store
        .follow(caller.app_id, &user_id, &followed, Timestamp::now())
        .await?;
    Ok(StatusCode::ACCEPTED)
}

/// `GET /users/:user_id/following/:other_id` → 204 when followed, 404 otherwise.
pub async fn check_following(
    State(state): State<AppState>,
    caller: AppCaller,
    UserPair(user_id, other): UserPair,
) -> ApiResult<StatusCode> {
    if state
        .store
        .is_following(caller.app_id, &user_id, &other)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("The user does not follow that user."))
    }
}

/// `PUT /users/:user_id/following/:other_id` → 204.
pub async fn follow(
    State(state): State<AppState>,
    caller: AppCaller,
    UserPair(user_id, other): UserPair,
) -> ApiResult<StatusCode> {
    state
        .store
        .follow(caller.app_id, &user_id, &[other], Timestamp::now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /users/:user_id/following/:other_id` → 204 (also when not followed).
pub async fn unfollow(
    State(state): State<AppState>,
    caller: AppCaller,
    UserPair(user_id, other): UserPair,
) -> ApiResult<StatusCode> {
    state
        .store
        .unfollow(caller.app_id, &user_id, &other, Timestamp::now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /users/:user_id/identities` → the full Identities of the followed users that have one,
/// paged like the following list.
pub async fn followed_identities(
    State(state): State<AppState>,
    caller: AppCaller,
    version: ApiVersion,
    UserId(user_id): UserId,
    Query(query): Query<PageQuery>,
) -> ApiResult<Response> {
    let page = query.page()?;
    let identities = state
        .store
        .followed_identities(caller.app_id, &user_id, page.after.as_deref(), page.size)
        .await?;
    let rendered: Vec<Value> = identities
        .iter()
        .map(|identity| crate::render::identity(&state.urls, version, identity))
        .collect();
    Ok(json_response(StatusCode::OK, &rendered))
}
