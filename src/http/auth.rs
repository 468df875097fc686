//! Authentication: `Authorization: Bearer <token>` resolves the app for the Platform API,
//! `Authorization: Layer session-token="<token>"` (or `?session_token=`) the app and user for the
//! Client API. Middleware puts the resolved `Caller` into the request; extractors require it.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use super::AppState;
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::secrets;
use crate::store::Timestamp;

/// Who is calling, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    App { app_id: Uuid },
    User { app_id: Uuid, user_id: String },
}

impl Caller {
    pub fn app_id(&self) -> Uuid {
        match self {
            Caller::App { app_id } | Caller::User { app_id, .. } => *app_id,
        }
    }

    /// The scope of If-None-Match tags: the app's backend, or one user of the app.
    pub fn dedup_scope(&self) -> String {
        match self {
            Caller::App { .. } => "app".to_owned(),
            Caller::User { user_id, .. } => format!("user:{user_id}"),
        }
    }
}

fn bearer_error(message: &'static str) -> ApiError {
    ApiError::new(ErrorKind::AUTHENTICATION_REQUIRED, message)
        .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
}

/// Platform API: every route under `/apps/:app_uuid` needs a live Bearer token of that app.
pub async fn require_bearer(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // Nesting strips `/apps/:app_uuid` from the URI; the original keeps it.
    let path = req
        .extensions()
        .get::<axum::extract::OriginalUri>()
        .map_or_else(|| req.uri().path().to_owned(), |uri| uri.path().to_owned());
    let path_app = path
        .strip_prefix("/apps/")
        .and_then(|rest| rest.split('/').next())
        .and_then(crate::ids::parse_app_id);
    match bearer_app(&state, authorization.as_deref(), path_app).await {
        Ok(app_id) => {
            req.extensions_mut().insert(Caller::App { app_id });
            next.run(req).await
        }
        Err(err) => err.into_response(),
    }
}

async fn bearer_app(
    state: &AppState,
    authorization: Option<&str>,
    path_app: Option<Uuid>,
) -> ApiResult<Uuid> {
    let token = authorization
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bearer_error("An Authorization header with a Bearer token is required."))?;
    let hash = secrets::sha256_hex(token);
    let record = state
        .store
        .active_token(&hash)
        .await?
        .filter(|record| secrets::digests_match(&record.token.token_hash, &hash))
        .ok_or_else(|| bearer_error("The Bearer token is invalid or has been revoked."))?;
    let app_id = record.token.app_id;
    // A token only opens its own app; another app's UUID in the path is answered exactly like a
    // bad token, so that app ids cannot be probed.
    if path_app != Some(app_id) {
        return Err(bearer_error(
            "The Bearer token is invalid or has been revoked.",
        ));
    }
    if record.app_suspended {
        return Err(crate::service::sessions::app_suspended());
    }
    Ok(app_id)
}

/// The session token of a Client API request: `Authorization: Layer session-token="…"` (double
/// or single quotes) or the `session_token` query parameter (WebSocket upgrades).
fn session_token(req: &Request) -> Option<String> {
    session_token_of(req.headers(), req.uri())
}

/// As `session_token`, from the parts of a request (the WebSocket upgrade).
pub fn session_token_of(headers: &axum::http::HeaderMap, uri: &axum::http::Uri) -> Option<String> {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, params) = v.trim().split_once(' ')?;
            if !scheme.eq_ignore_ascii_case("layer") {
                return None;
            }
            let (name, value) = params.trim().split_once('=')?;
            (name.trim() == "session-token")
                .then(|| value.trim().trim_matches(['"', '\'']).to_owned())
        });
    from_header
        .or_else(|| {
            url::form_urlencoded::parse(uri.query()?.as_bytes())
                .find(|(k, _)| k == "session_token")
                .map(|(_, v)| v.into_owned())
        })
        .filter(|t| !t.is_empty())
}

/// Client API: resolves a session token when one is sent; a dead one is refused at once with a
/// challenge. Routes that need a user require `UserCaller`.
pub async fn resolve_session(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(token) = session_token(&req) else {
        return next.run(req).await;
    };
    let hash = secrets::sha256_hex(&token);
    match state.store.session(&hash, Timestamp::now()).await {
        Ok(Some(session)) => {
            req.extensions_mut().insert(Caller::User {
                app_id: session.app_id,
                user_id: session.user_id,
            });
            next.run(req).await
        }
        Ok(None) => challenge(&state, "The session token is no longer valid.")
            .await
            .into_response(),
        Err(err) => ApiError::from(err).into_response(),
    }
}

/// A 401 `authentication_required` carrying a fresh nonce in `data.nonce`: the only signal on
/// which the SDKs re-authenticate (client-wire-protocol.md §0.8).
pub async fn challenge(state: &AppState, message: &'static str) -> ApiError {
    let nonce = secrets::generate_nonce();
    let expires = Timestamp::now().plus_secs(state.settings.auth.nonce_ttl_secs);
    if let Err(err) = state
        .store
        .create_nonce(&secrets::sha256_hex(&nonce), expires)
        .await
    {
        return err.into();
    }
    ApiError::new(ErrorKind::AUTHENTICATION_REQUIRED, message)
        .with_data(serde_json::json!({ "nonce": nonce }))
}

/// An authenticated Client API user.
#[derive(Debug, Clone)]
pub struct UserCaller {
    pub app_id: Uuid,
    pub user_id: String,
}

impl FromRequestParts<AppState> for UserCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        match parts.extensions.get::<Caller>() {
            Some(Caller::User { app_id, user_id }) => Ok(UserCaller {
                app_id: *app_id,
                user_id: user_id.clone(),
            }),
            _ => Err(challenge(state, "Authentication is required.").await),
        }
    }
}

/// An authenticated Platform API app (the one in the path).
#[derive(Debug, Clone, Copy)]
pub struct AppCaller {
    pub app_id: Uuid,
}

impl<S: Send + Sync> FromRequestParts<S> for AppCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> ApiResult<Self> {
        match parts.extensions.get::<Caller>() {
            Some(Caller::App { app_id }) => Ok(AppCaller { app_id: *app_id }),
            _ => Err(bearer_error(
                "An Authorization header with a Bearer token is required.",
            )),
        }
    }
}

/// Who acts on conversations, messages and announcements, and from which perspective: the app
/// itself (Platform API), a user (Client API session), or the app acting as a user through the
/// Platform API proxy (`/apps/:app_uuid/users/:user_id/...`). One handler serves all three.
#[derive(Debug, Clone)]
pub struct Actor {
    pub app_id: Uuid,
    pub perspective: crate::render::Perspective,
}

impl Actor {
    /// The acting user, unless the system acts.
    pub fn user_id(&self) -> Option<&str> {
        self.perspective.user_id()
    }

    /// The acting user, for routes that only exist for users: the system gets the 404 of an
    /// unknown route.
    pub fn require_user(&self) -> ApiResult<&str> {
        self.user_id().ok_or_else(|| {
            ApiError::new(ErrorKind::INVALID_ENDPOINT, "The endpoint does not exist.")
        })
    }
}

impl FromRequestParts<AppState> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        use crate::render::Perspective;
        match parts.extensions.get::<Caller>().cloned() {
            Some(Caller::User { app_id, user_id }) => Ok(Actor {
                app_id,
                perspective: Perspective::Client { user_id },
            }),
            Some(Caller::App { app_id }) => {
                let ids = super::extract::PathIds::from_request_parts(parts, state).await?;
                let perspective = match ids.get("user_id") {
                    Some(user_id) => Perspective::Proxy {
                        user_id: crate::service::checked_user_id(user_id)?,
                    },
                    None => Perspective::System,
                };
                Ok(Actor {
                    app_id,
                    perspective,
                })
            }
            None => Err(challenge(state, "Authentication is required.").await),
        }
    }
}
