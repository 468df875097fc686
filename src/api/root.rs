//! `GET /` (service discovery, and the SDKs' pre-WebSocket session probe) and `HEAD /ping`.

use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde::Deserialize;

use crate::error::ApiResult;
use crate::http::auth::Caller;
use crate::http::AppState;

#[derive(Deserialize)]
pub struct RootQuery {
    action: Option<String>,
}

/// `GET /` answers 200 with a `Link` header naming the service URLs (client-api.md §3.1).
/// `GET /?action=validateConnectionForWebsocket` is the SDKs' check before every WebSocket
/// reconnect: 200 for a live session, 401 with a fresh nonce otherwise.
pub async fn root(
    State(state): State<AppState>,
    Query(query): Query<RootQuery>,
    caller: Option<Extension<Caller>>,
) -> ApiResult<Response> {
    if query.action.as_deref() == Some("validateConnectionForWebsocket")
        && !matches!(caller.as_deref(), Some(Caller::User { .. }))
    {
        return Err(crate::http::auth::challenge(&state, "Authentication is required.").await);
    }
    let link = service_links(
        &state,
        &[
            "nonces",
            "sessions",
            "conversations",
            "content",
            "websocket",
        ],
    );
    let mut response = StatusCode::OK.into_response();
    if let Ok(value) = HeaderValue::from_str(&link) {
        response.headers_mut().insert(header::LINK, value);
    }
    Ok(response)
}

/// A `Link` header value naming the given services (`rel`s) under the public base URL.
pub fn service_links(state: &AppState, rels: &[&str]) -> String {
    let base = state.urls.base();
    rels.iter()
        .map(|rel| match *rel {
            "websocket" => format!(
                "<{}/websocket>; rel=websocket",
                base.replacen("http", "ws", 1)
            ),
            rel => format!("<{base}/{rel}>; rel={rel}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `HEAD /ping` (and GET): the SDKs' connectivity check.
pub async fn ping() -> StatusCode {
    StatusCode::NO_CONTENT
}

/// `POST /nonces`: a single-use nonce for an identity token, valid `auth.nonce_ttl_secs`.
pub async fn create_nonce(State(state): State<AppState>) -> ApiResult<Response> {
    let nonce = crate::secrets::generate_nonce();
    let expires = crate::store::Timestamp::now().plus_secs(state.settings.auth.nonce_ttl_secs);
    state
        .store
        .create_nonce(&crate::secrets::sha256_hex(&nonce), expires)
        .await?;
    Ok(crate::http::json_response(
        StatusCode::CREATED,
        &serde_json::json!({ "nonce": nonce }),
    ))
}
