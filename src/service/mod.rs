//! Version-neutral domain logic shared by the Client API, the Platform API and (later) the
//! WebSocket: validation against Layer's rules and limits, then one store call per change.
//! Handlers parse the wire format into these inputs and render what comes back.

pub mod channels;
pub mod content;
pub mod conversations;
pub mod messages;
pub mod sessions;

use uuid::Uuid;

use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::ids;

/// Longest user id Layer accepted (server-api.md §3.2).
pub const MAX_USER_ID_CHARS: usize = 128;

/// A user id from a path or body: 1 to 128 characters.
pub fn checked_user_id(user_id: &str) -> ApiResult<String> {
    if user_id.is_empty() || user_id.chars().count() > MAX_USER_ID_CHARS {
        return Err(ApiError::invalid_property(
            "user_id",
            "A user id must be 1 to 128 characters long.",
        ));
    }
    Ok(user_id.to_owned())
}

/// A user reference in a request: a user id or an Identity id (`layer:///identities/<id>`).
/// Every version accepts both: v3 servers took bare user ids, v1 ids never start with `layer:`.
pub fn user_ref(property: &str, value: &str) -> ApiResult<String> {
    let user = ids::parse_user_id(value).ok_or_else(|| {
        ApiError::invalid_property(property, format!("{value:?} is not a user or identity id."))
    })?;
    checked_user_id(&user).map_err(|_| {
        ApiError::invalid_property(property, "A user id must be 1 to 128 characters long.")
    })
}

/// A client-chosen object id: a bare UUID or `layer:///<kind>/<uuid>`.
pub fn object_id(property: &str, kind: &str, value: &str) -> ApiResult<Uuid> {
    let bare = match value.strip_prefix("layer:///") {
        Some(rest) => rest
            .strip_prefix(kind)
            .and_then(|r| r.strip_prefix('/'))
            .unwrap_or(""),
        None => value,
    };
    Uuid::try_parse(bare).map_err(|_| {
        ApiError::new(
            ErrorKind::INVALID_REQUEST_ID,
            format!("{property} must be a UUID or a layer:///{kind}/<uuid> id."),
        )
        .with_data(serde_json::json!({ "property": property }))
    })
}

/// Layer's `access_denied`: the caller may see the object but not do this to it.
pub fn access_denied(message: &'static str) -> ApiError {
    ApiError::new(ErrorKind::ACCESS_DENIED, message)
}

/// Which page of a list endpoint: `page_size` (default and maximum from the limits) and
/// `from_id` (a bare UUID or a Layer id of the list's kind).
pub fn page(
    page_size: Option<&str>,
    from_id: Option<&str>,
    kind: &str,
    max: u32,
) -> ApiResult<crate::store::Page> {
    let limit = page_size_of(page_size, max)?;
    let after = match from_id.filter(|s| !s.is_empty()) {
        None => None,
        Some(id) => Some(object_id("from_id", kind, id)?),
    };
    Ok(crate::store::Page { limit, after })
}

/// A `page_size`: absent or empty means `max`, larger values are capped to it.
pub fn page_size_of(page_size: Option<&str>, max: u32) -> ApiResult<u32> {
    match page_size.filter(|s| !s.is_empty()) {
        None => Ok(max),
        Some(s) => s
            .parse::<u32>()
            .ok()
            .filter(|n| *n >= 1)
            .map(|n| n.min(max))
            .ok_or_else(|| {
                ApiError::invalid_property("page_size", "page_size must be a positive integer.")
            }),
    }
}
