//! Announcements (server-api.md §9, client-api.md §3.7): the app sends them to a list of users;
//! each recipient reads, acknowledges and deletes their own copy.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;

use super::messages::{platform_sender, SenderBody};
use super::{listing_response, view_for};
use crate::error::{ApiError, ApiResult};
use crate::http::auth::Actor;
use crate::http::extract::{LayerJson, PathIds};
use crate::http::{json_response, AppState};
use crate::service::messages::{self as svc, AnnouncementInput, PartInput};
use crate::store::{Announcement, Sender};
use crate::version::ApiVersion;

#[derive(Debug, Deserialize)]
pub struct AnnounceBody {
    recipients: Option<Vec<String>>,
    sender_id: Option<String>,
    sender: Option<SenderBody>,
    parts: Option<Vec<PartInput>>,
    notification: Option<Value>,
}

pub(crate) fn users_of(announcement: &Announcement) -> Vec<String> {
    match &announcement.sender {
        Sender::User(user) => vec![user.clone()],
        Sender::Name(_) => Vec::new(),
    }
}

/// `POST /apps/:app/announcements` → 202 with the announcement.
pub async fn announce(
    State(state): State<AppState>,
    actor: Actor,
    version: ApiVersion,
    LayerJson(body): LayerJson<AnnounceBody>,
) -> ApiResult<Response> {
    let recipients = body
        .recipients
        .as_deref()
        .ok_or_else(|| ApiError::missing_property("recipients"))?
        .iter()
        .map(|r| crate::service::user_ref("recipients", r))
        .collect::<ApiResult<Vec<_>>>()?;
    let sender = platform_sender(body.sender_id.as_deref(), body.sender.as_ref())?;
    let id_hint = uuid::Uuid::new_v4();
    let parts = svc::parts(body.parts, id_hint, &state.settings.limits, None)?;
    let notification = body.notification.filter(Value::is_object);
    let announcement = svc::announce(
        &state.store,
        actor.app_id,
        AnnouncementInput {
            sender,
            recipients,
            parts,
            notification,
        },
    )
    .await?;
    let view = view_for(&state, &actor, version, users_of(&announcement)).await?;
    Ok(json_response(
        StatusCode::ACCEPTED,
        &view.announcement(&announcement),
    ))
}

fn not_found() -> ApiError {
    ApiError::not_found("The announcement could not be found.")
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    page_size: Option<String>,
    from_id: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    actor: Actor,
    version: ApiVersion,
    Query(query): Query<ListQuery>,
) -> ApiResult<Response> {
    let user = actor.require_user()?;
    let page = crate::service::page(
        query.page_size.as_deref(),
        query.from_id.as_deref(),
        "announcements",
        state.settings.limits.max_page_size,
    )?;
    let listing = state
        .store
        .user_announcements(actor.app_id, user, page)
        .await?;
    let users = listing
        .items
        .iter()
        .flat_map(|a| users_of(&a.announcement))
        .collect();
    let view = view_for(&state, &actor, version, users).await?;
    let items: Vec<Value> = listing
        .items
        .iter()
        .map(|a| view.user_announcement(a))
        .collect();
    Ok(listing_response(&items, listing.total))
}

pub async fn get(
    State(state): State<AppState>,
    actor: Actor,
    version: ApiVersion,
    ids: PathIds,
) -> ApiResult<Response> {
    let user = actor.require_user()?;
    let id = ids.uuid("announcement_id", "announcement")?;
    let item = state
        .store
        .user_announcement(actor.app_id, user, id)
        .await?
        .ok_or_else(not_found)?;
    let view = view_for(&state, &actor, version, users_of(&item.announcement)).await?;
    Ok(json_response(
        StatusCode::OK,
        &view.user_announcement(&item),
    ))
}

pub async fn delete(
    State(state): State<AppState>,
    actor: Actor,
    ids: PathIds,
) -> ApiResult<StatusCode> {
    let user = actor.require_user()?;
    let id = ids.uuid("announcement_id", "announcement")?;
    if state
        .store
        .hide_announcement(actor.app_id, user, id)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found())
    }
}

#[derive(Debug, Deserialize)]
pub struct ReceiptBody {
    #[serde(rename = "type")]
    kind: Option<String>,
}

pub async fn receipt(
    State(state): State<AppState>,
    actor: Actor,
    ids: PathIds,
    LayerJson(body): LayerJson<ReceiptBody>,
) -> ApiResult<StatusCode> {
    let user = actor.require_user()?;
    let id = ids.uuid("announcement_id", "announcement")?;
    let status = svc::receipt_status(body.kind.as_deref())?;
    if state
        .store
        .set_announcement_receipt(actor.app_id, user, id, status)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found())
    }
}

#[derive(Debug, Deserialize)]
pub struct NotifyBody {
    recipients: Option<Vec<String>>,
    notification: Option<Value>,
}

/// `POST /apps/:app/notifications` (server-api.md §10.1): a push notification without a
/// message. Validated and accepted (202); this server has no push provider yet, so nothing is
/// delivered (README, compatibility table).
pub async fn notify(
    _actor: Actor,
    LayerJson(body): LayerJson<NotifyBody>,
) -> ApiResult<StatusCode> {
    let recipients = body
        .recipients
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ApiError::missing_property("recipients"))?;
    for recipient in &recipients {
        crate::service::user_ref("recipients", recipient)?;
    }
    match body.notification {
        Some(Value::Object(_)) => Ok(StatusCode::ACCEPTED),
        Some(_) => Err(ApiError::invalid_property(
            "notification",
            "notification must be an object.",
        )),
        None => Err(ApiError::missing_property("notification")),
    }
}
