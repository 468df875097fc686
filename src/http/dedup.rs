//! `If-None-Match` de-duplication of creating requests (server-api.md §1.4): the first request
//! with a tag runs and its response (status, the headers that matter, body) is stored in the
//! database under (app, caller, tag); every repeat gets that response replayed and is never
//! executed. Concurrent repeats wait for the first one. State lives in the database, so this holds
//! across nodes.

use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, Response, StatusCode};
use axum::middleware::Next;
use axum::response::IntoResponse;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::auth::Caller;
use super::AppState;
use crate::error::{ApiError, ErrorKind};
use crate::store::{DedupClaim, DedupKey, StoredResponse, Timestamp};

/// Response headers worth replaying.
const KEPT_HEADERS: [HeaderName; 4] = [
    header::CONTENT_TYPE,
    header::LOCATION,
    header::LINK,
    HeaderName::from_static("layer-count"),
];

/// Largest response kept for replay; creates answer with one object, far below this.
const MAX_STORED_BODY: usize = 4 * 1024 * 1024;

/// Parses `"<uuid>"`, `<uuid>` or `W/"<uuid>"`.
pub fn parse_tag(value: &str) -> Option<Uuid> {
    let value = value.trim();
    let value = value.strip_prefix("W/").unwrap_or(value);
    Uuid::try_parse(value.trim_matches('"')).ok()
}

pub async fn if_none_match(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response<Body> {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let Some(raw) = req.headers().get(header::IF_NONE_MATCH) else {
        return next.run(req).await;
    };
    let Some(tag) = raw.to_str().ok().and_then(parse_tag) else {
        return ApiError::new(
            ErrorKind::INVALID_REQUEST_ID,
            "The If-None-Match header must carry a UUID, e.g. \"f47ac10b-58cc-4372-a567-0e02b2c3d479\".",
        )
        .with_data(serde_json::json!({ "header": "If-None-Match" }))
        .into_response();
    };
    let Some(caller) = req.extensions().get::<Caller>().cloned() else {
        return next.run(req).await;
    };
    let key = DedupKey {
        app_id: caller.app_id(),
        caller: caller.dedup_scope(),
        tag,
    };

    // The body is part of what identifies the request, so read it (the body limit bounds it).
    let (parts, body) = req.into_parts();
    let body = match to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(_) => return StatusCode::PAYLOAD_TOO_LARGE.into_response(),
    };
    let request_hash = {
        let mut hasher = Sha256::new();
        hasher.update(parts.method.as_str());
        hasher.update([0]);
        hasher.update(parts.uri.path());
        hasher.update([0]);
        hasher.update(&body);
        hex::encode(hasher.finalize())
    };

    let wait_limit = Duration::from_secs(state.settings.http.request_timeout_secs);
    let started = tokio::time::Instant::now();
    let mut backoff = Duration::from_millis(5);
    loop {
        let now = Timestamp::now();
        let expires = now.plus_secs(state.settings.dedup.ttl_secs);
        let claim = match state
            .store
            .claim_dedup(&key, &request_hash, now, expires)
            .await
        {
            Ok(claim) => claim,
            Err(err) => return ApiError::from(err).into_response(),
        };
        match claim {
            DedupClaim::Acquired => {
                let req = Request::from_parts(parts, Body::from(body));
                return execute_and_store(&state, &key, next, req).await;
            }
            DedupClaim::Done {
                request_hash: first,
                response,
            } => {
                if first != request_hash {
                    return ApiError::new(
                        ErrorKind::INVALID_REQUEST_ID,
                        "This If-None-Match tag was already used for a different request.",
                    )
                    .with_data(serde_json::json!({ "header": "If-None-Match" }))
                    .into_response();
                }
                return replay(response);
            }
            DedupClaim::Pending { claimed_at } => {
                // A claim older than any request may run belongs to a request that died with its
                // node: release it and run this one.
                let stale = Timestamp::now().minus(wait_limit * 2) > claimed_at;
                if stale {
                    if let Err(err) = state.store.release_dedup(&key).await {
                        return ApiError::from(err).into_response();
                    }
                    continue;
                }
                if started.elapsed() > wait_limit {
                    return StatusCode::REQUEST_TIMEOUT.into_response();
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(100));
            }
        }
    }
}

async fn execute_and_store(
    state: &AppState,
    key: &DedupKey,
    next: Next,
    req: Request,
) -> Response<Body> {
    let response = next.run(req).await;
    let status = response.status();
    // A server error changed nothing (its transaction rolled back): let a retry run again.
    if status.is_server_error() {
        if let Err(err) = state.store.release_dedup(key).await {
            tracing::warn!(error = %err, "could not release an If-None-Match claim");
        }
        return response;
    }
    let (parts, body) = response.into_parts();
    let body = match to_bytes(body, MAX_STORED_BODY).await {
        Ok(bytes) => bytes,
        Err(err) => {
            let _ = state.store.release_dedup(key).await;
            return ApiError::internal(format!("response too large to keep for dedup: {err}"))
                .into_response();
        }
    };
    let stored = StoredResponse {
        status: status.as_u16(),
        headers: KEPT_HEADERS
            .iter()
            .filter_map(|name| {
                let value = parts.headers.get(name)?.to_str().ok()?;
                Some((name.as_str().to_owned(), value.to_owned()))
            })
            .collect(),
        body: body.to_vec(),
    };
    if let Err(err) = state.store.complete_dedup(key, &stored).await {
        // The request did run; a repeat will now wait until the claim goes stale and run again.
        tracing::error!(error = %err, "could not store an If-None-Match response");
    }
    Response::from_parts(parts, Body::from(body))
}

fn replay(stored: StoredResponse) -> Response<Body> {
    let mut response = Response::new(Body::from(stored.body));
    *response.status_mut() = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    for (name, value) in stored.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::parse_tag;

    #[test]
    fn tags_in_quoted_bare_and_weak_forms() {
        let u = "f47ac10b-58cc-4372-a567-0e02b2c3d479";
        for form in [
            format!("\"{u}\""),
            u.to_string(),
            format!("W/\"{u}\""),
            format!(" \"{u}\" "),
        ] {
            assert_eq!(
                parse_tag(&form).map(|t| t.to_string()).as_deref(),
                Some(u),
                "{form}"
            );
        }
        assert_eq!(parse_tag("\"nope\""), None);
        assert_eq!(parse_tag("*"), None);
    }
}
