//! The webhook management API (webhooks.md §3): `/apps/:app_uuid/webhooks…` with Bearer auth and
//! its own media type, `Accept: application/vnd.layer.webhooks+json; version=x.y` (anything else
//! is a 406). Registration validates everything the worker relies on; verification and
//! delivery happen in `crate::webhooks`.
//!
//! The webhook object is the documented one plus `delivery`, an extension for operators (last
//! attempt, last success and failure, the last error, counts, and the backlog). The secret is
//! never rendered (the spec documents no such field; Layer's own client re-attached it).

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::http::auth::{self, AppCaller};
use crate::http::extract::{LayerJson, PathIds};
use crate::http::{json_response, AppState};
use crate::store::webhooks::{catalogue, NewWebhook, Webhook};
use crate::store::Timestamp;

const MEDIA_TYPE: &str = "application/vnd.layer.webhooks+json";
const VERSIONS: [&str; 3] = ["1.0", "2.0", "3.0"];
const DOCS: &str = "https://developer.layer.com/docs/webhooks";

/// Bounds of a registration.
const MAX_EVENTS: usize = 32;
const MAX_SECRET_CHARS: usize = 256;
const MAX_CONFIG_KEYS: usize = 32;
const MAX_CONFIG_KEY_CHARS: usize = 128;
const MAX_CONFIG_VALUE_CHARS: usize = 1024;

/// The reason a user's deactivation leaves (webhooks.md §3.2).
const DEACTIVATED_BY_USER: &str = "Deactivated by User";

/// The version an `Accept` header asks for, if it is the webhooks media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WebhooksVersion(&'static str);

fn from_accept(accept: &str) -> Option<WebhooksVersion> {
    accept.split(',').find_map(|range| {
        let mut parts = range.split(';').map(str::trim);
        if !parts.next()?.eq_ignore_ascii_case(MEDIA_TYPE) {
            return None;
        }
        parts.find_map(|param| {
            let (name, value) = param.split_once('=')?;
            if !name.trim().eq_ignore_ascii_case("version") {
                return None;
            }
            let value = value.trim().trim_matches('"');
            VERSIONS
                .into_iter()
                .find(|v| *v == value)
                .map(WebhooksVersion)
        })
    })
}

async fn negotiate(mut req: Request, next: Next) -> Response {
    let version = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .and_then(from_accept);
    let Some(version) = version else {
        return ApiError::invalid_header(
            "Accept",
            format!("Invalid Accept header; must be of form {MEDIA_TYPE}; version=x.y"),
        )
        .with_url(DOCS)
        .into_response();
    };
    req.extensions_mut().insert(version);
    next.run(req).await
}

pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/apps/{app_uuid}/webhooks", get(list).post(register))
        .route(
            "/apps/{app_uuid}/webhooks/{webhook_id}",
            get(get_one).delete(delete),
        )
        .route(
            "/apps/{app_uuid}/webhooks/{webhook_id}/activate",
            post(activate),
        )
        .route(
            "/apps/{app_uuid}/webhooks/{webhook_id}/deactivate",
            post(deactivate),
        )
        // Anything else below a webhook is an unknown route, answered in this media type.
        .route(
            "/apps/{app_uuid}/webhooks/{webhook_id}/{*rest}",
            axum::routing::any(crate::http::compat::invalid_endpoint),
        )
        .route_layer(from_fn_with_state(state, auth::require_bearer))
        .route_layer(from_fn(negotiate))
}

fn render(state: &AppState, hook: &Webhook) -> Value {
    let iso = |t: Option<Timestamp>| t.map(Timestamp::to_iso);
    let s = &hook.state;
    json!({
        "id": format!("layer:///apps/{}/webhooks/{}", hook.app_id, hook.id),
        "url": format!("{}/apps/{}/webhooks/{}", state.urls.base(), hook.app_id, hook.id),
        "version": hook.version,
        "target_url": hook.target_url,
        "events": hook.events,
        "status": hook.status,
        "status_reason": hook.status_reason,
        "created_at": hook.created_at.to_iso(),
        "config": hook.config,
        "delivery": {
            "last_attempt_at": iso(s.last_attempt_at),
            "last_success_at": iso(s.last_success_at),
            "last_failure_at": iso(s.last_failure_at),
            "last_error": s.last_error,
            "delivered": s.delivered,
            "failed_attempts": s.failed_attempts,
            "backlog": s.backlog,
        },
    })
}

fn not_found() -> ApiError {
    ApiError::not_found("No webhook with this id exists for this app.")
}

/// The webhook id of the path: a bare UUID or `layer:///apps/<app>/webhooks/<uuid>`.
fn webhook_id(ids: &PathIds) -> ApiResult<Uuid> {
    let raw = ids.get("webhook_id").unwrap_or_default();
    let raw = raw.rsplit('/').next().unwrap_or(raw);
    Uuid::try_parse(raw).map_err(|_| not_found())
}

async fn load(state: &AppState, app_id: Uuid, id: Uuid) -> ApiResult<Webhook> {
    state.store.webhook(app_id, id).await?.ok_or_else(not_found)
}

async fn list(State(state): State<AppState>, caller: AppCaller) -> ApiResult<Response> {
    let hooks = state.store.webhooks(caller.app_id).await?;
    let items: Vec<Value> = hooks.iter().map(|h| render(&state, h)).collect();
    Ok(json_response(StatusCode::OK, &items))
}

async fn get_one(
    State(state): State<AppState>,
    caller: AppCaller,
    ids: PathIds,
) -> ApiResult<Response> {
    let hook = load(&state, caller.app_id, webhook_id(&ids)?).await?;
    Ok(json_response(StatusCode::OK, &render(&state, &hook)))
}

async fn register(
    State(state): State<AppState>,
    caller: AppCaller,
    axum::Extension(accepted): axum::Extension<WebhooksVersion>,
    LayerJson(body): LayerJson<Map<String, Value>>,
) -> ApiResult<Response> {
    let new = registration(&state, caller.app_id, accepted, body)?;
    if !state
        .store
        .create_webhook(&new, state.settings.webhooks.max_per_app)
        .await?
    {
        return Err(ApiError::new(
            ErrorKind::INVALID_OPERATION,
            format!(
                "An app can have at most {} webhooks.",
                state.settings.webhooks.max_per_app
            ),
        ));
    }
    let hook = unverified(load(&state, caller.app_id, new.id).await?);
    Ok(json_response(StatusCode::CREATED, &render(&state, &hook)))
}

/// The webhook as a registration or an activation left it: awaiting verification. A worker (of
/// any node) may already have verified it by the time it is read back for the answer.
fn unverified(mut hook: Webhook) -> Webhook {
    hook.status = crate::store::webhooks::UNVERIFIED.to_owned();
    hook.status_reason = None;
    hook
}

async fn activate(
    State(state): State<AppState>,
    caller: AppCaller,
    ids: PathIds,
) -> ApiResult<Response> {
    let id = webhook_id(&ids)?;
    if !state
        .store
        .request_verification(caller.app_id, id, Timestamp::now())
        .await?
    {
        return Err(not_found());
    }
    let hook = unverified(load(&state, caller.app_id, id).await?);
    Ok(json_response(StatusCode::OK, &render(&state, &hook)))
}

async fn deactivate(
    State(state): State<AppState>,
    caller: AppCaller,
    ids: PathIds,
) -> ApiResult<Response> {
    let id = webhook_id(&ids)?;
    if !state
        .store
        .deactivate_webhook(caller.app_id, id, DEACTIVATED_BY_USER)
        .await?
    {
        return Err(not_found());
    }
    let hook = load(&state, caller.app_id, id).await?;
    Ok(json_response(StatusCode::OK, &render(&state, &hook)))
}

async fn delete(
    State(state): State<AppState>,
    caller: AppCaller,
    ids: PathIds,
) -> ApiResult<StatusCode> {
    if state
        .store
        .delete_webhook(caller.app_id, webhook_id(&ids)?)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found())
    }
}

fn missing(property: &str) -> ApiError {
    ApiError::new(
        ErrorKind::MISSING_PROPERTY,
        format!("The {property} property cannot be omitted."),
    )
    .with_data(json!({ "property": property }))
    .with_url(DOCS)
}

fn invalid(property: &str, message: impl Into<String>) -> ApiError {
    ApiError::invalid_property(property, message.into()).with_url(DOCS)
}

/// A property by its name or its pre-1.0 alias (`event_types`, `target_config`); null is absent.
fn take(body: &mut Map<String, Value>, name: &str, alias: Option<&str>) -> Option<Value> {
    let value = body
        .remove(name)
        .or_else(|| alias.and_then(|a| body.remove(a)));
    value.filter(|v| !v.is_null())
}

/// Validates a registration body (webhooks.md §3.3).
fn registration(
    state: &AppState,
    app_id: Uuid,
    accepted: WebhooksVersion,
    mut body: Map<String, Value>,
) -> ApiResult<NewWebhook> {
    let version = match take(&mut body, "version", None) {
        None => accepted.0,
        Some(Value::String(v)) => VERSIONS
            .into_iter()
            .find(|known| *known == v)
            .ok_or_else(|| invalid("version", "The version must be one of 1.0, 2.0 or 3.0."))?,
        Some(_) => return Err(invalid("version", "The version must be a string.")),
    };
    let target_url = match take(&mut body, "target_url", None) {
        None => return Err(missing("target_url")),
        Some(Value::String(url)) => url,
        Some(_) => return Err(invalid("target_url", "The target_url must be a string.")),
    };
    crate::webhooks::target::check(&target_url, &state.settings.webhooks)
        .map_err(|message| invalid("target_url", message))?;
    let events = match take(&mut body, "events", Some("event_types")) {
        None => return Err(missing("events")),
        Some(Value::Array(events)) => events,
        Some(_) => {
            return Err(invalid(
                "events",
                "The events must be an array of event names.",
            ))
        }
    };
    if events.is_empty() || events.len() > MAX_EVENTS {
        return Err(invalid(
            "events",
            format!("Between 1 and {MAX_EVENTS} events must be given."),
        ));
    }
    let known = catalogue(version);
    let mut names: Vec<String> = Vec::with_capacity(events.len());
    for event in &events {
        let Some(name) = event.as_str() else {
            return Err(invalid(
                "events",
                "The events must be an array of event names.",
            ));
        };
        let Some(name) = known.iter().find(|k| **k == name) else {
            return Err(invalid(
                "events",
                format!(
                    "Unknown event type {name:?} for webhooks version {version}; known: {}.",
                    known.join(", ")
                ),
            ));
        };
        if !names.iter().any(|n| n == name) {
            names.push((*name).to_owned());
        }
    }
    let secret = match take(&mut body, "secret", None) {
        None => return Err(missing("secret")),
        Some(Value::String(secret))
            if !secret.is_empty() && secret.chars().count() <= MAX_SECRET_CHARS =>
        {
            secret
        }
        Some(_) => {
            return Err(invalid(
                "secret",
                format!("The secret must be a string of 1 to {MAX_SECRET_CHARS} characters."),
            ))
        }
    };
    let config = match take(&mut body, "config", Some("target_config")) {
        None => None,
        Some(Value::Object(config)) => {
            let flat = config.len() <= MAX_CONFIG_KEYS
                && config.iter().all(|(k, v)| {
                    k.chars().count() <= MAX_CONFIG_KEY_CHARS
                        && v.as_str()
                            .is_some_and(|v| v.chars().count() <= MAX_CONFIG_VALUE_CHARS)
                });
            if !flat {
                return Err(invalid(
                    "config",
                    format!(
                        "The config must be an object of at most {MAX_CONFIG_KEYS} string values."
                    ),
                ));
            }
            Some(config)
        }
        Some(_) => return Err(invalid("config", "The config must be an object.")),
    };
    Ok(NewWebhook {
        app_id,
        id: Uuid::new_v4(),
        version: version.to_owned(),
        target_url,
        events: names,
        secret: secret.into(),
        config,
        created_at: Timestamp::now(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_webhooks_accept_header() {
        for v in VERSIONS {
            let accept = format!("application/vnd.layer.webhooks+json; version={v}");
            assert_eq!(from_accept(&accept), Some(WebhooksVersion(v)));
        }
        assert_eq!(
            from_accept("text/html, application/vnd.layer.webhooks+json;version=\"3.0\""),
            Some(WebhooksVersion("3.0"))
        );
        assert_eq!(from_accept("application/vnd.layer+json; version=3.0"), None);
        assert_eq!(
            from_accept("application/vnd.layer.webhooks+json; version=1.1"),
            None
        );
        assert_eq!(from_accept("application/vnd.layer.webhooks+json"), None);
        assert_eq!(from_accept("application/json"), None);
    }
}
