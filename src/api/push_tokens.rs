//! Push tokens (client-api.md §3.9, every version): a device registers its APNs or GCM token for
//! the session user. They are kept per app and user for push delivery, which is not built yet.
//! Session users only: the Platform API proxy has no devices to register.

use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::http::auth::UserCaller;
use crate::http::extract::{LayerJson, PathIds};
use crate::http::AppState;
use crate::store::{PushToken, Timestamp};

/// Tokens kept per user; a newer registration evicts the least recently registered one.
const MAX_TOKENS_PER_USER: u32 = 25;

/// Longest `token` (APNs tokens are 64 to 200 hex digits, GCM/FCM tokens about 160 characters).
const MAX_TOKEN_CHARS: usize = 1024;
/// Longest `device_id`, `apns_bundle_id` and `gcm_sender_id`.
const MAX_ID_CHARS: usize = 255;
/// Longest `ios_version` (`"9.0"`, `"17.4.1"`).
const MAX_VERSION_CHARS: usize = 32;

const TOKEN_TYPES: &[&str] = &["apns", "gcm"];

/// `POST /push_tokens` `{token, type, device_id, apns_bundle_id?, gcm_sender_id?, ios_version?}`
/// → 202, empty body. Registering a device again replaces its token.
pub async fn register(
    State(state): State<AppState>,
    me: UserCaller,
    LayerJson(body): LayerJson<Map<String, Value>>,
) -> ApiResult<StatusCode> {
    let body = Body(&body);
    let token_type = body.required("type", MAX_ID_CHARS)?;
    if !TOKEN_TYPES.contains(&token_type.as_str()) {
        return Err(ApiError::invalid_property(
            "type",
            "type must be \"apns\" or \"gcm\".",
        ));
    }
    let token = PushToken {
        app_id: me.app_id,
        user_id: me.user_id,
        device_id: body.required("device_id", MAX_ID_CHARS)?,
        token: body.required("token", MAX_TOKEN_CHARS)?,
        token_type,
        apns_bundle_id: body.optional("apns_bundle_id", MAX_ID_CHARS)?,
        gcm_sender_id: body.optional("gcm_sender_id", MAX_ID_CHARS)?,
        ios_version: body.optional("ios_version", MAX_VERSION_CHARS)?,
        registered_at: Timestamp::now(),
    };
    state
        .store
        .register_push_token(&token, MAX_TOKENS_PER_USER)
        .await?;
    Ok(StatusCode::ACCEPTED)
}

/// `DELETE /push_tokens/:device_id` → 202, also when the device had no token.
pub async fn unregister(
    State(state): State<AppState>,
    me: UserCaller,
    path: PathIds,
) -> ApiResult<StatusCode> {
    let device_id = checked(
        "device_id",
        path.get("device_id").unwrap_or_default(),
        MAX_ID_CHARS,
    )?;
    state
        .store
        .unregister_push_token(me.app_id, &me.user_id, &device_id)
        .await?;
    Ok(StatusCode::ACCEPTED)
}

/// The string properties of a registration, each checked as it is read.
struct Body<'a>(&'a Map<String, Value>);

impl Body<'_> {
    /// A string of 1 to `max` characters.
    fn required(&self, property: &str, max: usize) -> ApiResult<String> {
        let text = self
            .text(property)?
            .ok_or_else(|| ApiError::missing_property(property))?;
        checked(property, &text, max)
    }

    /// Like `required`, but absent, null and `""` are none.
    fn optional(&self, property: &str, max: usize) -> ApiResult<Option<String>> {
        match self.text(property)? {
            Some(text) if !text.is_empty() => checked(property, &text, max).map(Some),
            _ => Ok(None),
        }
    }

    /// The property's text: numbers are taken as theirs (`"ios_version": 9.0`).
    fn text(&self, property: &str) -> ApiResult<Option<String>> {
        match self.0.get(property) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(Value::Number(number)) => Ok(Some(number.to_string())),
            Some(_) => Err(ApiError::invalid_property(
                property,
                format!("{property} must be a string."),
            )),
        }
    }
}

/// `value` when it is 1 to `max` characters long.
fn checked(property: &str, value: &str, max: usize) -> ApiResult<String> {
    if value.is_empty() || value.chars().count() > max {
        return Err(ApiError::invalid_property(
            property,
            format!("{property} must be 1 to {max} characters long."),
        ));
    }
    Ok(value.to_owned())
}
