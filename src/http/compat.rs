//! The Layer compatibility layer: `Accept` version negotiation, `X-HTTP-Method-Override`, the
//! PATCH content type, and the error envelope on every error response, whoever produced it.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::version::ApiVersion;

pub const PATCH_CONTENT_TYPE: &str = "application/vnd.layer-patch+json";

/// Requires `Accept: application/vnd.layer+json; version=x.y` and makes the version available to
/// handlers as an `ApiVersion` extension; PATCH bodies must be Layer Patch documents.
pub async fn negotiate(mut req: Request, next: Next) -> Response {
    let platform = req.uri().path().starts_with("/apps/");
    let version = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .and_then(ApiVersion::from_accept);
    let Some(version) = version else {
        return ApiError::invalid_accept(platform).into_response();
    };
    if req.method() == Method::PATCH && !is_patch_content_type(&req) {
        return ApiError::invalid_header(
            "Content-Type",
            format!(
                "Invalid Content-Type header; PATCH requests must be sent as {PATCH_CONTENT_TYPE}"
            ),
        )
        .into_response();
    }
    req.extensions_mut().insert(version);
    next.run(req).await
}

fn is_patch_content_type(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case(PATCH_CONTENT_TYPE))
}

/// `POST` with `X-HTTP-Method-Override: PATCH` is a PATCH (for clients that cannot send one).
pub async fn method_override(mut req: Request) -> Request {
    let overridden = req.method() == Method::POST
        && req
            .headers()
            .get("x-http-method-override")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("PATCH"));
    if overridden {
        *req.method_mut() = Method::PATCH;
    }
    req
}

/// Unknown routes: `invalid_endpoint`, naming the endpoint as Layer did.
pub async fn invalid_endpoint(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        crate::error::ErrorKind::INVALID_ENDPOINT,
        format!("The endpoint '{method} {}' does not exist", uri.path()),
    )
}

/// Gives every error response Layer's envelope: statuses produced by the framework and by tower
/// layers (404, 405, 408, 413, panics) arrive without one. Headers such as `Allow` are kept.
/// 429 stays empty, as Layer sent it.
pub async fn envelope_errors(req: Request, next: Next) -> Response {
    let head_request = req.method() == Method::HEAD;
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error())
        || status == StatusCode::TOO_MANY_REQUESTS
        || has_json_body(&response)
    {
        return response;
    }
    let Some(error) = ApiError::for_status(status) else {
        return response;
    };
    let (mut parts, _) = response.into_parts();
    let body = if head_request {
        Vec::new()
    } else {
        error.body()
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    Response::from_parts(parts, Body::from(body))
}

fn has_json_body(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}
