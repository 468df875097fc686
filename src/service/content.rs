//! Rich content (client-api.md §3.6, server-api.md §8): upload requests, signed transfers, the
//! references parts make, who may refresh a download URL, and garbage collection of content no
//! message ever referenced. Content never crosses apps, and a user references only their own.

use axum::http::StatusCode;
use bytes::Bytes;
use futures_util::Stream;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::content::{Purpose, PutError, Storage, Timeouts, UrlSigner};
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::store::{Content, DynStore, Part, Timestamp};

const MAX_CONTENT_TYPE_CHARS: usize = 1024;
/// References examined when deciding whether a user may refresh (a content is rarely in more).
const MAX_REFERENCES_CHECKED: i64 = 100;
/// Contents collected per garbage-collection round.
const GC_BATCH: i64 = 500;

/// Who asks for an upload or sends a part: a user, or the app itself (Platform API).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uploader<'a> {
    User(&'a str),
    App,
}

pub fn not_found() -> ApiError {
    ApiError::not_found("The content could not be found.")
}

fn not_uploaded() -> ApiError {
    ApiError::not_found("The content has not been uploaded yet.")
}

/// `Upload-Content-Type` and `Upload-Content-Length` of `POST /content`.
pub fn upload_request(
    content_type: Option<&str>,
    length: Option<&str>,
    max_bytes: u64,
) -> ApiResult<(String, u64)> {
    let header_error = |name: &str, message: String| {
        ApiError::invalid_request(message).with_data(json!({ "header": name }))
    };
    let content_type = content_type
        .map(str::trim)
        .filter(|t| valid_content_type(t))
        .ok_or_else(|| {
            header_error(
                "Upload-Content-Type",
                "Upload-Content-Type must be a MIME type such as image/png.".into(),
            )
        })?;
    let length: u64 = length.and_then(|l| l.trim().parse().ok()).ok_or_else(|| {
        header_error(
            "Upload-Content-Length",
            "Upload-Content-Length must be the size in bytes.".into(),
        )
    })?;
    if length > max_bytes {
        return Err(header_error(
            "Upload-Content-Length",
            format!("Content may have at most {max_bytes} bytes."),
        )
        .with_status(StatusCode::PAYLOAD_TOO_LARGE));
    }
    Ok((content_type.to_owned(), length))
}

fn valid_content_type(value: &str) -> bool {
    let essence = essence(value);
    value.chars().count() <= MAX_CONTENT_TYPE_CHARS
        && !value.chars().any(char::is_control)
        && essence
            .split_once('/')
            .is_some_and(|(t, s)| !t.is_empty() && !s.is_empty() && !s.contains('/'))
}

/// `type/subtype` without parameters, lower case.
fn essence(value: &str) -> String {
    value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Records a pending upload.
pub async fn create(
    store: &DynStore,
    app_id: Uuid,
    uploader: Uploader<'_>,
    conversation_id: Option<Uuid>,
    content_type: String,
    declared_size: u64,
) -> ApiResult<Content> {
    let content = Content {
        app_id,
        id: Uuid::new_v4(),
        owner_user_id: match uploader {
            Uploader::User(user) => Some(user.to_owned()),
            Uploader::App => None,
        },
        conversation_id,
        content_type,
        declared_size: i64::try_from(declared_size).unwrap_or(i64::MAX),
        size: None,
        sha256: None,
        created_at: Timestamp::now(),
        uploaded_at: None,
    };
    store.create_content(&content).await?;
    Ok(content)
}

/// The 403 of a transfer URL that is forged, altered or expired.
fn bad_signature() -> ApiError {
    ApiError::new(
        ErrorKind::ACCESS_DENIED,
        "The content URL is invalid or has expired; refresh it.",
    )
}

/// The content a signed transfer URL names, if its signature holds and it has not expired.
pub async fn signed_content(
    store: &DynStore,
    signer: &UrlSigner,
    purpose: Purpose,
    id: &str,
    expires: Option<&str>,
    signature: Option<&str>,
) -> ApiResult<Content> {
    let id = Uuid::try_parse(id).map_err(|_| bad_signature())?;
    let expires: i64 = expires
        .and_then(|e| e.parse().ok())
        .ok_or_else(bad_signature)?;
    let signature = signature.ok_or_else(bad_signature)?;
    if expires < Timestamp::now().unix_seconds() {
        return Err(bad_signature());
    }
    let content = store.content_by_id(id).await?.ok_or_else(bad_signature)?;
    if !signer.verify(purpose, content.app_id, id, expires, signature) {
        return Err(bad_signature());
    }
    Ok(content)
}

/// How many bytes an upload may carry. SDKs declare a string part's size in characters, so
/// textual content may take up to 4 bytes (UTF-8) per declared unit.
fn upload_limit(content: &Content, max_bytes: u64) -> u64 {
    let declared = u64::try_from(content.declared_size).unwrap_or(0);
    let essence = essence(&content.content_type);
    let textual =
        essence.starts_with("text/") || essence.ends_with("json") || essence.ends_with("xml");
    let limit = if textual {
        declared.saturating_mul(4)
    } else {
        declared
    };
    limit.min(max_bytes)
}

/// Streams an upload into the store, replacing an earlier one (uploads can be restarted until
/// a message references the content). `content_type` is the PUT's, checked against the declared.
pub async fn upload<S, E>(
    store: &DynStore,
    storage: &Storage,
    content: &Content,
    content_type: Option<&str>,
    body: S,
    max_bytes: u64,
    timeouts: Timeouts,
) -> ApiResult<()>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    if let Some(given) = content_type.filter(|t| !t.trim().is_empty()) {
        if essence(given) != essence(&content.content_type) {
            return Err(ApiError::invalid_request(format!(
                "The upload is {given:?}, but {:?} was requested.",
                content.content_type
            ))
            .with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE));
        }
    }
    if store.content_referenced(content.app_id, content.id).await? {
        return Err(already_sent());
    }
    let limit = upload_limit(content, max_bytes);
    let stored = match storage
        .put(&content.object_key(), body, limit, timeouts)
        .await
    {
        Ok(stored) => stored,
        Err(PutError::TooLarge { limit }) => {
            return Err(ApiError::invalid_request(format!(
                "The upload is larger than the declared Upload-Content-Length ({limit} bytes \
                 at most); nothing was stored."
            ))
            .with_status(StatusCode::PAYLOAD_TOO_LARGE))
        }
        Err(PutError::Body(err)) => {
            return Err(ApiError::invalid_request(format!(
                "The upload broke off ({err}); nothing was stored."
            )))
        }
        Err(PutError::TimedOut(timeout)) => {
            return Err(ApiError::invalid_request(format!(
                "The upload timed out ({timeout}); nothing was stored."
            ))
            .with_status(StatusCode::REQUEST_TIMEOUT))
        }
        Err(PutError::Store(err)) => return Err(storage_unavailable(err)),
    };
    let size = i64::try_from(stored.size).unwrap_or(i64::MAX);
    let recorded = store
        .set_content_uploaded(
            content.app_id,
            content.id,
            size,
            &stored.sha256,
            Timestamp::now(),
        )
        .await?;
    if !recorded {
        return Err(already_sent());
    }
    Ok(())
}

fn already_sent() -> ApiError {
    ApiError::new(
        ErrorKind::CONFLICT,
        "The content is referenced by a message; its data can no longer change.",
    )
}

pub fn storage_unavailable(err: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %err, "content store failed");
    ApiError::service_unavailable("The content store is unavailable; try again later.")
}

/// Checks the `content` references of parts: each must name an uploaded content of this app
/// that the sender may use (their own; the app's own for the Platform API). Rewrites each
/// reference to `{id, size}` with the stored size. The store marks the contents referenced in
/// the transaction that writes the parts (`store::content::referenced_ids`), so garbage
/// collection never sees sent content unreferenced; a content collected between this check and
/// that commit fails the write on its foreign key.
pub async fn check_references(
    store: &DynStore,
    app_id: Uuid,
    sender: Uploader<'_>,
    app_content_allowed: bool,
    parts: &mut [Part],
) -> ApiResult<()> {
    for (index, part) in parts.iter_mut().enumerate() {
        let property = format!("parts[{index}].content");
        check_reference(store, app_id, sender, app_content_allowed, part, &property).await?;
    }
    Ok(())
}

/// `check_references` for one part (added or updated on its own); errors name `property`.
pub async fn check_reference(
    store: &DynStore,
    app_id: Uuid,
    sender: Uploader<'_>,
    app_content_allowed: bool,
    part: &mut Part,
    property: &str,
) -> ApiResult<()> {
    let Some(reference) = part.content.as_ref() else {
        return Ok(());
    };
    let id = reference
        .get("id")
        .and_then(Value::as_str)
        .and_then(|id| id.strip_prefix("layer:///content/"))
        .and_then(|id| Uuid::try_parse(id).ok())
        .ok_or_else(|| {
            ApiError::invalid_property(property, "content.id must be layer:///content/<uuid>.")
        })?;
    let content = store.content(app_id, id).await?;
    let usable = content.filter(|c| match (&c.owner_user_id, sender) {
        (Some(owner), Uploader::User(user)) => owner == user,
        (Some(_), Uploader::App) => false,
        (None, _) => app_content_allowed,
    });
    let Some(content) = usable else {
        return Err(ApiError::invalid_property(
            property,
            format!("{property}: no such content."),
        ));
    };
    let Some(size) = content.size else {
        return Err(ApiError::invalid_property(
            property,
            format!("{property}: the content has not been uploaded yet."),
        ));
    };
    part.content = Some(json!({
        "id": format!("layer:///content/{id}"),
        "size": size,
    }));
    Ok(())
}

/// The content, if `user` may download it: they uploaded it, or they see a message (of a
/// conversation or a channel) or an announcement that references it. 404 otherwise, as for unknown content.
pub async fn user_content(
    store: &DynStore,
    app_id: Uuid,
    user: &str,
    id: Uuid,
) -> ApiResult<Content> {
    let content = store.content(app_id, id).await?.ok_or_else(not_found)?;
    let mut visible = content.owner_user_id.as_deref() == Some(user);
    if !visible {
        for message_id in store
            .content_references(app_id, id, MAX_REFERENCES_CHECKED)
            .await?
        {
            let in_conversation =
                super::messages::user_message(store, app_id, user, message_id).await;
            if in_conversation.is_ok()
                || super::channels::user_message(store, app_id, user, message_id)
                    .await?
                    .is_some()
                || store
                    .user_announcement(app_id, user, message_id)
                    .await?
                    .is_some()
            {
                visible = true;
                break;
            }
        }
    }
    if !visible {
        return Err(not_found());
    }
    uploaded(content)
}

/// The content for the Platform API under a conversation: requested for it, or referenced by
/// one of its messages.
pub async fn conversation_content(
    store: &DynStore,
    app_id: Uuid,
    conversation_id: Uuid,
    id: Uuid,
) -> ApiResult<Content> {
    super::conversations::system_conversation(store, app_id, conversation_id).await?;
    let content = store.content(app_id, id).await?.ok_or_else(not_found)?;
    let mut visible = content.conversation_id == Some(conversation_id);
    if !visible {
        for message_id in store
            .content_references(app_id, id, MAX_REFERENCES_CHECKED)
            .await?
        {
            if let Some(message) = store.message(app_id, message_id).await? {
                if message.conversation_id == conversation_id {
                    visible = true;
                    break;
                }
            }
        }
    }
    if !visible {
        return Err(not_found());
    }
    uploaded(content)
}

/// Any uploaded content of the app (the Platform API sees all of an app's data).
pub async fn app_content(store: &DynStore, app_id: Uuid, id: Uuid) -> ApiResult<Content> {
    uploaded(store.content(app_id, id).await?.ok_or_else(not_found)?)
}

fn uploaded(content: Content) -> ApiResult<Content> {
    if content.is_uploaded() {
        Ok(content)
    } else {
        Err(not_uploaded())
    }
}

/// Deletes content that no message referenced within `ttl_secs` of its creation: the record
/// first (so nothing points at missing bytes), then the bytes. Returns how many were deleted.
pub async fn collect_garbage(
    store: &DynStore,
    storage: &Storage,
    now: Timestamp,
    ttl_secs: u64,
) -> anyhow::Result<u64> {
    let cutoff = Timestamp::from_millis(
        now.millis()
            .saturating_sub(i64::try_from(ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX)),
    );
    let mut deleted = 0;
    for content in store.unreferenced_contents(cutoff, GC_BATCH).await? {
        if store
            .delete_unreferenced_content(content.app_id, content.id)
            .await?
        {
            deleted += 1;
            if let Err(err) = storage.delete(&content.object_key()).await {
                tracing::warn!(error = %err, key = content.object_key(), "deleting unreferenced content data failed");
            }
        }
    }
    Ok(deleted)
}
