//! Rich content (client-api.md §3.6, server-api.md §8, client-wire-protocol.md §6.4):
//! `POST /content` and `GET /content/:id` for users (also through the proxy), their Platform API
//! twins under a conversation, and the signed transfer URLs the SDKs call without credentials
//! (`PUT /content-uploads/:id`, `GET /content-downloads/:id`), mounted outside the API's
//! negotiation, authentication, body limit and timeout.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::content::Purpose;
use crate::error::{ApiError, ApiResult};
use crate::http::auth::Actor;
use crate::http::extract::PathIds;
use crate::http::{json_response, AppState};
use crate::service::content::{self as svc, Uploader};
use crate::store::{Content, Timestamp};

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The Content object (client-api.md §5.4): with `upload_url` right after creation, with a
/// fresh `download_url` once uploaded.
fn content_json(state: &AppState, content: &Content, refresh_url: String, upload: bool) -> Value {
    let id = content.id;
    let upload_url = upload.then(|| {
        let expires = Timestamp::now().plus_secs(state.settings.content.upload_url_ttl_secs);
        state
            .urls
            .content_transfer(Purpose::Upload, content.app_id, id, expires)
    });
    let download = content
        .is_uploaded()
        .then(|| state.urls.content_download(content.app_id, id));
    json!({
        "id": format!("layer:///content/{id}"),
        "upload_url": upload_url,
        "download_url": download.as_ref().map(|(url, _)| url),
        "expiration": download.as_ref().map(|(_, expires)| expires.to_iso()),
        "refresh_url": download.as_ref().map(|_| refresh_url),
        "size": content.size.unwrap_or(content.declared_size),
    })
}

/// The 201 of an upload request: the Content with its `upload_url`, `Location` = `path`.
fn created(state: &AppState, content: &Content, path: String) -> Response {
    let body = content_json(state, content, format!("{}{path}", state.urls.base()), true);
    let mut response = json_response(StatusCode::CREATED, &body);
    if let Ok(value) = HeaderValue::from_str(&path) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

async fn create_content(
    state: &AppState,
    actor: &Actor,
    headers: &HeaderMap,
    uploader: Uploader<'_>,
    conversation_id: Option<Uuid>,
) -> ApiResult<Content> {
    let (content_type, size) = svc::upload_request(
        header(headers, "upload-content-type"),
        header(headers, "upload-content-length"),
        state.settings.content.max_bytes,
    )?;
    svc::create(
        &state.store,
        actor.app_id,
        uploader,
        conversation_id,
        content_type,
        size,
    )
    .await
}

/// The user's own content URL (`/content/:id`, or under the proxy prefix).
fn user_content_path(actor: &Actor, id: Uuid) -> String {
    match &actor.perspective {
        crate::render::Perspective::Proxy { user_id } => format!(
            "/apps/{}/users/{}/content/{id}",
            actor.app_id,
            crate::ids::encode_component(user_id)
        ),
        _ => format!("/content/{id}"),
    }
}

/// `POST /content`: a user asks to upload.
pub async fn create(
    State(state): State<AppState>,
    actor: Actor,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let user = actor.require_user()?.to_owned();
    let content = create_content(&state, &actor, &headers, Uploader::User(&user), None).await?;
    let path = user_content_path(&actor, content.id);
    Ok(created(&state, &content, path))
}

/// `GET /content/:content_id` (the `refresh_url`): a fresh download URL.
pub async fn refresh(
    State(state): State<AppState>,
    actor: Actor,
    ids: PathIds,
) -> ApiResult<Response> {
    let user = actor.require_user()?;
    let id = ids.uuid("content_id", "content")?;
    let content = svc::user_content(&state.store, actor.app_id, user, id).await?;
    Ok(refreshed(&state, &content, user_content_path(&actor, id)))
}

/// The 200 of a refresh: the Content with a fresh `download_url`; `path` is its `refresh_url`.
fn refreshed(state: &AppState, content: &Content, path: String) -> Response {
    let refresh_url = format!("{}{path}", state.urls.base());
    json_response(
        StatusCode::OK,
        &content_json(state, content, refresh_url, false),
    )
}

fn conversation_content_path(app_id: Uuid, conversation_id: Uuid, id: Uuid) -> String {
    format!("/apps/{app_id}/conversations/{conversation_id}/content/{id}")
}

/// `POST /apps/:app/conversations/:conversation/content`: the app asks to upload.
pub async fn platform_create(
    State(state): State<AppState>,
    actor: Actor,
    ids: PathIds,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let conversation_id = ids.uuid("conversation_id", "conversation")?;
    crate::service::conversations::system_conversation(&state.store, actor.app_id, conversation_id)
        .await?;
    let content = create_content(
        &state,
        &actor,
        &headers,
        Uploader::App,
        Some(conversation_id),
    )
    .await?;
    let path = conversation_content_path(actor.app_id, conversation_id, content.id);
    Ok(created(&state, &content, path))
}

/// `GET /apps/:app/conversations/:conversation/content/:content_id`.
pub async fn platform_refresh(
    State(state): State<AppState>,
    actor: Actor,
    ids: PathIds,
) -> ApiResult<Response> {
    let conversation_id = ids.uuid("conversation_id", "conversation")?;
    let id = ids.uuid("content_id", "content")?;
    let content =
        svc::conversation_content(&state.store, actor.app_id, conversation_id, id).await?;
    let path = conversation_content_path(actor.app_id, conversation_id, id);
    Ok(refreshed(&state, &content, path))
}

/// `GET /apps/:app/content/:content_id`: the `refresh_url` the Platform API renders where no
/// conversation frames the content (announcements); any uploaded content of the app.
pub async fn platform_refresh_any(
    State(state): State<AppState>,
    actor: Actor,
    ids: PathIds,
) -> ApiResult<Response> {
    let id = ids.uuid("content_id", "content")?;
    let content = svc::app_content(&state.store, actor.app_id, id).await?;
    let path = format!("/apps/{}/content/{id}", actor.app_id);
    Ok(refreshed(&state, &content, path))
}

#[derive(Debug, Deserialize)]
pub struct Signed {
    expires: Option<String>,
    signature: Option<String>,
}

/// The transfer routes: no Accept, no credentials (the signature is the authorisation), no body
/// limit beyond `content.max_bytes`, not the API's request timeout (large files take long) but
/// the `content.transfer_*timeout_secs`: an idle pause and a total time per transfer.
fn transfer_timeouts(state: &AppState) -> crate::content::Timeouts {
    let content = &state.settings.content;
    crate::content::Timeouts {
        idle: std::time::Duration::from_secs(content.transfer_idle_timeout_secs),
        total: std::time::Duration::from_secs(content.transfer_timeout_secs),
    }
}

/// The routes of the signed transfer URLs.
pub fn transfer_routes() -> Router<AppState> {
    Router::new()
        .route(
            &format!("/{}/{{content_id}}", Purpose::Upload.route()),
            axum::routing::put(upload),
        )
        .route(
            &format!("/{}/{{content_id}}", Purpose::Download.route()),
            get(download),
        )
}

/// `PUT <upload_url>`: the raw bytes, streamed to the store.
async fn upload(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(signed): Query<Signed>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let content = svc::signed_content(
        &state.store,
        state.urls.signer(),
        Purpose::Upload,
        &id,
        signed.expires.as_deref(),
        signed.signature.as_deref(),
    )
    .await?;
    // Either header may name the type (the SDKs send Upload-Content-Type on the PUT).
    let content_type =
        header(&headers, "upload-content-type").or_else(|| header(&headers, "content-type"));
    let max_bytes = state.settings.content.max_bytes;
    if let Some(length) = header(&headers, "content-length").and_then(|l| l.parse::<u64>().ok()) {
        if length > max_bytes {
            return Err(ApiError::invalid_request(format!(
                "Content may have at most {max_bytes} bytes."
            ))
            .with_status(StatusCode::PAYLOAD_TOO_LARGE));
        }
    }
    svc::upload(
        &state.store,
        &state.content,
        &content,
        content_type,
        body.into_data_stream(),
        max_bytes,
        transfer_timeouts(&state),
    )
    .await?;
    Ok(StatusCode::OK.into_response())
}

/// `GET <download_url>`: the bytes, streamed from the store with the declared type.
async fn download(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(signed): Query<Signed>,
) -> ApiResult<Response> {
    let content = svc::signed_content(
        &state.store,
        state.urls.signer(),
        Purpose::Download,
        &id,
        signed.expires.as_deref(),
        signed.signature.as_deref(),
    )
    .await?;
    if !content.is_uploaded() {
        return Err(svc::not_found());
    }
    let object = state
        .content
        .get(&content.object_key())
        .await
        .map_err(svc::storage_unavailable)?
        .ok_or_else(|| {
            tracing::error!(
                key = content.object_key(),
                "content data missing from the store"
            );
            ApiError::not_found("The content's data is missing from the content store.")
        })?;
    // A stalled store read or a download past the total time ends the response early (the
    // client sees a truncated body, shorter than Content-Length).
    let stream = transfer_timeouts(&state).limit(object.stream);
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&content.content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(object.size));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    Ok(response)
}
