//! `POST /sessions` (log in with an identity token) and `DELETE /sessions/:session_token`
//! (log out), client-api.md §2.4 and §2.7. Neither needs a session: they sit outside the
//! session middleware, so a stale `Authorization` header cannot turn a login into a 401.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::http::extract::LayerJson;
use crate::http::{json_response, AppState};
use crate::secrets;
use crate::service::sessions;

/// A string property of the login body: 422 `missing_property` or `invalid_property` otherwise.
fn string_property<'a>(body: &'a Value, name: &str) -> ApiResult<&'a str> {
    match body.get(name) {
        None | Some(Value::Null) => Err(ApiError::missing_property(name)),
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(_) => Err(ApiError::invalid_property(
            name,
            format!("{name} must be a non-empty string."),
        )),
    }
}

/// 201 `{"session_token"}` with the `Link` header the docs show.
pub async fn create(
    State(state): State<AppState>,
    LayerJson(body): LayerJson<Value>,
) -> ApiResult<Response> {
    let identity_token = string_property(&body, "identity_token")?;
    let app_id = string_property(&body, "app_id")?;
    let token = sessions::login(&state.store, &state.settings.auth, app_id, identity_token).await?;
    let mut response = json_response(StatusCode::CREATED, &json!({ "session_token": token }));
    let links = super::root::service_links(&state, &["conversations", "content", "websocket"]);
    if let Ok(value) = HeaderValue::from_str(&links) {
        response.headers_mut().insert(header::LINK, value);
    }
    Ok(response)
}

/// 204 whether or not the session was still alive: logging out twice is not an error, and an
/// unknown token reveals nothing.
pub async fn delete(
    State(state): State<AppState>,
    Path(session_token): Path<String>,
) -> ApiResult<StatusCode> {
    let hash = secrets::sha256_hex(&session_token);
    state.store.delete_session(&hash).await?;
    state.realtime.session_ended(hash).await;
    Ok(StatusCode::NO_CONTENT)
}
