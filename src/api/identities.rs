//! Identities: the Platform API resource (server-api.md §11, `/apps/:app_uuid/users/:user_id/
//! identity`), and what users read and change of them (client-api.md §3.8, `/identities/:user_id`,
//! also through the proxy). Layer created an identity for every user it heard of; here only what
//! was set is stored, and users see a blank identity for a known user without one.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value};
use sqlx::types::Json;
use uuid::Uuid;

use super::users::OtherId;
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::http::auth::{Actor, AppCaller, UserCaller};
use crate::http::extract::LayerJson;
use crate::http::{json_response, AppState};
use crate::store::{Identity, Timestamp};
use crate::version::ApiVersion;

const MAX_METADATA_KEYS: usize = 16;

/// The writable fields of an Identity; unknown fields (`id`, `url`, ...) are ignored.
#[derive(Debug, Default, Deserialize)]
pub struct IdentityBody {
    user_id: Option<String>,
    display_name: Option<String>,
    avatar_url: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    phone_number: Option<String>,
    email_address: Option<String>,
    identity_type: Option<String>,
    /// The 2.0 draft's name for `identity_type` (values `User` / `Bot`).
    #[serde(rename = "type")]
    draft_type: Option<String>,
    public_key: Option<String>,
    metadata: Option<Map<String, Value>>,
}

fn check_len(property: &str, value: &Option<String>, max: usize) -> ApiResult<()> {
    match value {
        Some(v) if v.chars().count() > max => Err(ApiError::invalid_property(
            property,
            format!("The {property} property may be at most {max} characters long."),
        )),
        _ => Ok(()),
    }
}

impl IdentityBody {
    /// Validates a full identity (POST and PUT: `display_name` required).
    fn into_identity(self, app_id: Uuid, user_id: &str, now: Timestamp) -> ApiResult<Identity> {
        if self.display_name.is_none() {
            return Err(ApiError::missing_property("display_name"));
        }
        self.validated(app_id, user_id, now)
    }

    /// Validates every field but the presence of `display_name`.
    fn validated(self, app_id: Uuid, user_id: &str, now: Timestamp) -> ApiResult<Identity> {
        crate::service::checked_user_id(user_id)?;
        if let Some(body_user) = &self.user_id {
            if body_user != user_id {
                return Err(ApiError::invalid_property(
                    "user_id",
                    "The user_id in the body differs from the one in the URL.",
                ));
            }
        }
        check_len("display_name", &self.display_name, 128)?;
        check_len("avatar_url", &self.avatar_url, 1024)?;
        check_len("first_name", &self.first_name, 128)?;
        check_len("last_name", &self.last_name, 128)?;
        check_len("phone_number", &self.phone_number, 32)?;
        check_len("email_address", &self.email_address, 255)?;
        check_len("public_key", &self.public_key, 8192)?;
        let identity_type = match self.identity_type.as_deref().or(self.draft_type.as_deref()) {
            None => "user".to_owned(),
            Some(t) if t.eq_ignore_ascii_case("user") || t.eq_ignore_ascii_case("bot") => {
                t.to_ascii_lowercase()
            }
            Some(_) => {
                return Err(ApiError::invalid_property(
                    "identity_type",
                    "identity_type must be \"user\" or \"bot\".",
                ))
            }
        };
        let metadata = self.metadata.unwrap_or_default();
        if metadata.len() > MAX_METADATA_KEYS || metadata.values().any(|v| !v.is_string()) {
            return Err(ApiError::invalid_property(
                "metadata",
                format!(
                    "metadata must be a flat object of at most {MAX_METADATA_KEYS} string values."
                ),
            ));
        }
        Ok(Identity {
            app_id,
            user_id: user_id.to_owned(),
            display_name: self.display_name,
            avatar_url: self.avatar_url,
            first_name: self.first_name,
            last_name: self.last_name,
            phone_number: self.phone_number,
            email_address: self.email_address,
            identity_type,
            public_key: self.public_key,
            metadata: Json(metadata),
            created_at: now,
            updated_at: now,
        })
    }
}

/// POST: 201 with an empty body; 409 when the user already has an identity.
pub async fn create_identity(
    State(state): State<AppState>,
    caller: AppCaller,
    Path((_, user_id)): Path<(String, String)>,
    LayerJson(body): LayerJson<IdentityBody>,
) -> ApiResult<Response> {
    let identity = body.into_identity(caller.app_id, &user_id, Timestamp::now())?;
    if !state.store.insert_identity(&identity).await? {
        return Err(ApiError::new(
            ErrorKind::CONFLICT,
            "An identity for the specified user already exists.",
        ));
    }
    Ok(StatusCode::CREATED.into_response())
}

/// GET: the full identity.
pub async fn get_identity(
    State(state): State<AppState>,
    caller: AppCaller,
    version: ApiVersion,
    Path((_, user_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let identity = state
        .store
        .identity(caller.app_id, &user_id)
        .await?
        .ok_or_else(no_identity)?;
    Ok(json_response(
        StatusCode::OK,
        &crate::render::identity(&state.urls, version, &identity),
    ))
}

/// PUT: replaces every field (those not sent are cleared); creates the identity of an unknown
/// user. 204 either way.
pub async fn replace_identity(
    State(state): State<AppState>,
    caller: AppCaller,
    Path((_, user_id)): Path<(String, String)>,
    LayerJson(body): LayerJson<IdentityBody>,
) -> ApiResult<StatusCode> {
    let identity = body.into_identity(caller.app_id, &user_id, Timestamp::now())?;
    state.store.put_identity(&identity).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The profile fields of an identity: what a PATCH may `set` (with `metadata`).
const PROFILE: &[&str] = &[
    "display_name",
    "avatar_url",
    "first_name",
    "last_name",
    "phone_number",
    "email_address",
];

/// Fields only the app may PATCH: users may not make themselves bots (`identity_type`) nor
/// choose the key others encrypt for them with (`public_key`).
const APP_ONLY: &[&str] = &["identity_type", "public_key"];

/// Who patches an identity, which decides the fields it may set.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Patcher {
    App,
    User,
}

impl Patcher {
    fn may_set(self, field: &str) -> bool {
        PROFILE.contains(&field)
            || field == "metadata"
            || (self == Patcher::App && APP_ONLY.contains(&field))
    }

    fn settable(self) -> String {
        let app_only = if self == Patcher::App { APP_ONLY } else { &[] };
        [PROFILE, app_only, &["metadata"]].concat().join(", ")
    }
}

fn no_identity() -> ApiError {
    ApiError::not_found("No identity exists for the specified user.")
}

/// PATCH (Layer Patch): `set` on profile fields, `set`/`delete` on `metadata.<key>`; atomic.
pub async fn patch_identity(
    State(state): State<AppState>,
    caller: AppCaller,
    Path((_, user_id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    let patch = identity_patch(&body, Patcher::App)?;
    let current = state
        .store
        .identity(caller.app_id, &user_id)
        .await?
        .ok_or_else(no_identity)?;
    save_patched(&state, current, &patch).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Client API `PATCH /identities/:user_id`: users change their own profile (a blank identity
/// becomes a stored one); another user's identity is 403 `access_denied`.
pub async fn patch_own_identity(
    State(state): State<AppState>,
    me: UserCaller,
    OtherId(user_id): OtherId,
    body: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    if user_id != me.user_id {
        return Err(crate::service::access_denied(
            "Users may only change their own identity.",
        ));
    }
    let patch = identity_patch(&body, Patcher::User)?;
    let current = state.store.identity(me.app_id, &user_id).await?;
    let current = seen_identity(me.app_id, &user_id, current);
    save_patched(&state, current, &patch).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A Layer Patch of an identity whose operations only `set` fields `patcher` may set and
/// `set`/`delete` `metadata.<key>`.
fn identity_patch(body: &[u8], patcher: Patcher) -> ApiResult<crate::patch::Patch> {
    use crate::patch::{OpKind, Patch};
    let patch = Patch::from_slice(body).map_err(crate::http::extract::patch_error)?;
    for (index, op) in patch.0.iter().enumerate() {
        let allowed = match (op.kind, op.root(), op.path.len()) {
            (OpKind::Set, root, 1) => patcher.may_set(root),
            (OpKind::Set | OpKind::Delete, "metadata", 2) => true,
            _ => false,
        };
        if !allowed {
            return Err(ApiError::invalid_property(
                &op.property,
                format!(
                    "operation {index} ({} {:?}): identities accept set on {} and set/delete on \
                     metadata.<key> only.",
                    op.kind.as_str(),
                    op.property,
                    patcher.settable(),
                ),
            ));
        }
    }
    Ok(patch)
}

/// Applies `patch` to `current` and stores the result, validated like a PUT; `display_name`
/// may not be removed once set.
async fn save_patched(
    state: &AppState,
    current: Identity,
    patch: &crate::patch::Patch,
) -> ApiResult<()> {
    let mut doc = crate::render::identity(&state.urls, ApiVersion::V1_0, &current);
    if let Some(map) = doc.as_object_mut() {
        map.insert("identity_type".into(), current.identity_type.clone().into());
    }
    patch.apply(&mut doc, &|_| None).map_err(|err| {
        ApiError::invalid_property(err.property.as_deref().unwrap_or(""), err.to_string())
    })?;
    let body: IdentityBody = serde_json::from_value(doc).map_err(|err| {
        ApiError::invalid_property(
            "identity",
            format!("Invalid identity after the patch: {err}"),
        )
    })?;
    if body.display_name.is_none() && current.display_name.is_some() {
        return Err(ApiError::missing_property("display_name"));
    }
    let mut identity = body.validated(current.app_id, &current.user_id, Timestamp::now())?;
    identity.created_at = current.created_at;
    state.store.put_identity(&identity).await?;
    Ok(())
}

/// The identity users see of `user_id`: the stored one, or a blank one (no profile, no metadata).
pub(crate) fn seen_identity(app_id: Uuid, user_id: &str, stored: Option<Identity>) -> Identity {
    stored.unwrap_or_else(|| Identity::blank(app_id, user_id, Timestamp::now()))
}

/// Client API `GET /identities/:user_id` (and the proxy's `.../identities/:user_id`): the full
/// identity of any user of the app the server has heard of, the caller included; 404 for
/// strangers. Users may follow anyone and then read the identity, so nothing is gained by
/// restricting this to followed users.
pub async fn get_seen_identity(
    State(state): State<AppState>,
    actor: Actor,
    version: ApiVersion,
    OtherId(user_id): OtherId,
) -> ApiResult<Response> {
    let me = actor.require_user()?;
    let stored = state.store.identity(actor.app_id, &user_id).await?;
    if stored.is_none()
        && user_id != me
        && !state.store.user_is_known(actor.app_id, &user_id).await?
    {
        return Err(ApiError::not_found(
            "A user identity with the specified identifier could not be found.",
        ));
    }
    let identity = seen_identity(actor.app_id, &user_id, stored);
    let view = super::bare_view(&state, &actor, version);
    Ok(json_response(StatusCode::OK, &view.identity(&identity)))
}

/// DELETE: 204; 404 for a user without an identity.
pub async fn delete_identity(
    State(state): State<AppState>,
    caller: AppCaller,
    Path((_, user_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    if state.store.delete_identity(caller.app_id, &user_id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_identity())
    }
}
