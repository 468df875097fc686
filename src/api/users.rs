//! Platform API users (server-api.md §12): the user resource (`GET`, and `PATCH` of its block
//! list and suspension), badges, ending sessions, and the app's session TTL (`PATCH /apps/:app`).
//! Also the path extractors and id parsing the other `/users/...` handlers share.

use std::collections::HashMap;

use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value};

use super::blocks::BlocksChange;
use super::user_patch::{operation_name, LayerPatch, OpKind, Operation};
use crate::error::{ApiError, ApiResult};
use crate::http::auth::AppCaller;
use crate::http::extract::LayerJson;
use crate::http::{json_response, AppState};
use crate::service::checked_user_id;
use crate::store::Timestamp;
use crate::version::ApiVersion;

/// The documented range of `session_ttl_in_seconds`: 30 seconds to a year.
const SESSION_TTL_RANGE: std::ops::RangeInclusive<i64> = 30..=31_536_000;

/// The `{user_id}` of a `/users/{user_id}/...` path: percent-decoded (`%2F` inside the segment
/// included) and checked like identity user ids.
pub struct UserId(pub String);

/// The `{user_id}` and `{other_id}` of `/users/{user_id}/.../{other_id}` (a blocked user), both
/// checked.
pub struct UserPair(pub String, pub String);

/// The `{other_id}` of a path naming another user (a followed user, an identity), checked; the
/// acting user comes from the `Actor`.
pub struct OtherId(pub String);

/// The named parameters of the path, or 422 when one does not decode (e.g. `%FF`).
async fn path_params<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
) -> ApiResult<HashMap<String, String>> {
    Path::<HashMap<String, String>>::from_request_parts(parts, state)
        .await
        .map(|Path(params)| params)
        .map_err(|rejection| match rejection {
            PathRejection::FailedToDeserializePathParams(err) => {
                ApiError::invalid_property("user_id", err.body_text())
            }
            other => ApiError::internal(other),
        })
}

fn path_user(params: &mut HashMap<String, String>, name: &str) -> ApiResult<String> {
    let user = params
        .remove(name)
        .ok_or_else(|| ApiError::internal(format!("route without a {{{name}}} parameter")))?;
    checked_user_id(&user)
}

impl<S: Send + Sync> FromRequestParts<S> for UserId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> ApiResult<Self> {
        let mut params = path_params(parts, state).await?;
        Ok(UserId(path_user(&mut params, "user_id")?))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for OtherId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> ApiResult<Self> {
        let mut params = path_params(parts, state).await?;
        Ok(OtherId(path_user(&mut params, "other_id")?))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for UserPair {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> ApiResult<Self> {
        let mut params = path_params(parts, state).await?;
        let user = path_user(&mut params, "user_id")?;
        Ok(UserPair(user, path_user(&mut params, "other_id")?))
    }
}

pub use crate::service::user_ref;

/// `user_ref` of a JSON value, which must be a string.
pub fn user_ref_value(property: &str, value: &Value) -> ApiResult<String> {
    user_ref(property, value.as_str().unwrap_or_default())
}

/// 422 for an operation the resource does not support, naming the operation and property.
pub fn unsupported(op: &Operation) -> ApiError {
    ApiError::invalid_property(
        &op.property,
        format!(
            "The {} operation on {} is not supported here.",
            operation_name(op.kind),
            op.property
        ),
    )
}

/// Whether `op` addresses exactly the top-level property `name`.
fn targets(op: &Operation, name: &str) -> bool {
    op.path.len() == 1 && op.path[0] == name
}

/// The value of a `set` of `property` (no `id`, no `index`), else 422.
fn set_value<'a>(op: &'a Operation, property: &str) -> ApiResult<&'a Value> {
    match (&op.kind, &op.value, &op.id, &op.index) {
        (OpKind::Set, Some(value), None, None) if targets(op, property) => Ok(value),
        _ => Err(unsupported(op)),
    }
}

/// What a PATCH of a user changes, fully validated before anything is written.
#[derive(Default)]
struct UserChange {
    blocks: Option<BlocksChange>,
    suspended: Option<bool>,
}

impl UserChange {
    fn from_operations(ops: &[Operation]) -> ApiResult<Self> {
        let mut change = UserChange::default();
        for op in ops {
            if targets(op, "blocks") {
                change
                    .blocks
                    .get_or_insert_with(Default::default)
                    .apply(op)?;
            } else if targets(op, "suspended") {
                let value = set_value(op, "suspended")?;
                let suspended = value.as_bool().ok_or_else(|| {
                    ApiError::invalid_property("suspended", "suspended must be true or false.")
                })?;
                change.suspended = Some(suspended);
            } else {
                return Err(unsupported(op));
            }
        }
        Ok(change)
    }
}

/// `GET /users/:user_id` → `{"id", "identity", "suspended"}`; users never seen are not suspended.
pub async fn get_user(
    State(state): State<AppState>,
    caller: AppCaller,
    version: ApiVersion,
    UserId(user_id): UserId,
) -> ApiResult<Response> {
    let identity = state.store.identity(caller.app_id, &user_id).await?;
    let user_state = state.store.user_state(caller.app_id, &user_id).await?;
    Ok(json_response(
        StatusCode::OK,
        &crate::render::user(
            &state.urls,
            version,
            &user_id,
            identity.as_ref(),
            user_state.suspended,
        ),
    ))
}

/// `PATCH /users/:user_id`: `blocks` (add/remove/set) and `suspended` (set). All operations are
/// validated before any is written; applied at once, though Layer only promised 202 Accepted.
pub async fn patch_user(
    State(state): State<AppState>,
    caller: AppCaller,
    UserId(user_id): UserId,
    LayerPatch(ops): LayerPatch,
) -> ApiResult<StatusCode> {
    let change = UserChange::from_operations(&ops)?;
    let now = Timestamp::now();
    if let Some(blocks) = change.blocks {
        blocks
            .save(&*state.store, caller.app_id, &user_id, now)
            .await?;
    }
    if let Some(suspended) = change.suspended {
        state
            .store
            .set_suspended(caller.app_id, &user_id, suspended, now)
            .await?;
    }
    Ok(StatusCode::ACCEPTED)
}

/// `GET /users/:user_id/badge`.
pub async fn get_badge(
    State(state): State<AppState>,
    caller: AppCaller,
    UserId(user_id): UserId,
) -> ApiResult<Response> {
    let badge = state.store.badge(caller.app_id, &user_id).await?;
    Ok(json_response(StatusCode::OK, &crate::render::badge(&badge)))
}

/// `PUT /users/:user_id/badge` `{"external_unread_count": n}` (n ≥ 0) → 204.
pub async fn put_badge(
    State(state): State<AppState>,
    caller: AppCaller,
    UserId(user_id): UserId,
    LayerJson(body): LayerJson<Map<String, Value>>,
) -> ApiResult<StatusCode> {
    const PROPERTY: &str = "external_unread_count";
    let count = body
        .get(PROPERTY)
        .ok_or_else(|| ApiError::missing_property(PROPERTY))?
        .as_i64()
        .filter(|n| *n >= 0)
        .ok_or_else(|| {
            ApiError::invalid_property(PROPERTY, "external_unread_count must be an integer ≥ 0.")
        })?;
    state
        .store
        .set_external_unread_count(caller.app_id, &user_id, count, Timestamp::now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /users/:user_id/sessions` → 204, also when the user had none (Layer answered 404 for
/// users it never saw; here users need not exist anywhere, so there is nothing to tell apart).
pub async fn delete_sessions(
    State(state): State<AppState>,
    caller: AppCaller,
    UserId(user_id): UserId,
) -> ApiResult<StatusCode> {
    state.store.delete_sessions(caller.app_id, &user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PATCH /apps/:app_uuid`: `set session_ttl_in_seconds` to 30 … 31536000 (or `null`: back to
/// the configured default) → 202.
pub async fn patch_app(
    State(state): State<AppState>,
    caller: AppCaller,
    LayerPatch(ops): LayerPatch,
) -> ApiResult<StatusCode> {
    const PROPERTY: &str = "session_ttl_in_seconds";
    let mut ttl = None;
    for op in &ops {
        let value = set_value(op, PROPERTY)?;
        ttl = Some(session_ttl(value).ok_or_else(|| {
            ApiError::invalid_property(
                PROPERTY,
                format!(
                    "{PROPERTY} must be an integer from {} to {} (or null).",
                    SESSION_TTL_RANGE.start(),
                    SESSION_TTL_RANGE.end()
                ),
            )
        })?);
    }
    if let Some(ttl) = ttl {
        state.store.set_session_ttl(caller.app_id, ttl).await?;
    }
    Ok(StatusCode::ACCEPTED)
}

/// A valid TTL value: `Some(None)` for null (the default), `None` when invalid.
fn session_ttl(value: &Value) -> Option<Option<i64>> {
    if value.is_null() {
        return Some(None);
    }
    value
        .as_i64()
        .filter(|secs| SESSION_TTL_RANGE.contains(secs))
        .map(Some)
}
