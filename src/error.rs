//! The one error type of the HTTP surface: Layer's envelope `{id, code, message, url, data}` with
//! the catalogue shared by the Client and Platform APIs (client-api.md §6.1, server-api.md §15).

use std::borrow::Cow;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

use crate::store::StoreError;

/// One entry of Layer's error catalogue: string id, numeric code and HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorKind {
    pub id: &'static str,
    pub code: u16,
    pub status: StatusCode,
}

macro_rules! catalogue {
    ($($name:ident = ($id:literal, $code:literal, $status:ident);)*) => {
        impl ErrorKind {
            $(pub const $name: ErrorKind = ErrorKind { id: $id, code: $code, status: StatusCode::$status };)*
            /// Every kind, for documentation and tests.
            pub const ALL: &'static [ErrorKind] = &[$(ErrorKind::$name),*];
        }
    };
}

catalogue! {
    SERVICE_UNAVAILABLE = ("service_unavailable", 1, SERVICE_UNAVAILABLE);
    INVALID_APP_ID = ("invalid_app_id", 2, FORBIDDEN);
    INVALID_REQUEST_ID = ("invalid_request_id", 3, BAD_REQUEST);
    AUTHENTICATION_REQUIRED = ("authentication_required", 4, UNAUTHORIZED);
    APP_SUSPENDED = ("app_suspended", 5, FORBIDDEN);
    USER_SUSPENDED = ("user_suspended", 6, FORBIDDEN);
    RATE_LIMIT_EXCEEDED = ("rate_limit_exceeded", 7, TOO_MANY_REQUESTS);
    REQUEST_TIMEOUT = ("request_timeout", 8, REQUEST_TIMEOUT);
    INVALID_OPERATION = ("invalid_operation", 9, UNPROCESSABLE_ENTITY);
    INVALID_REQUEST = ("invalid_request", 10, BAD_REQUEST);
    INTERNAL_SERVER_ERROR = ("internal_server_error", 100, INTERNAL_SERVER_ERROR);
    ACCESS_DENIED = ("access_denied", 101, FORBIDDEN);
    NOT_FOUND = ("not_found", 102, NOT_FOUND);
    MISSING_PROPERTY = ("missing_property", 104, UNPROCESSABLE_ENTITY);
    INVALID_PROPERTY = ("invalid_property", 105, UNPROCESSABLE_ENTITY);
    INVALID_ENDPOINT = ("invalid_endpoint", 106, NOT_FOUND);
    INVALID_HEADER = ("invalid_header", 107, NOT_ACCEPTABLE);
    CONFLICT = ("conflict", 108, CONFLICT);
    METHOD_NOT_ALLOWED = ("method_not_allowed", 109, METHOD_NOT_ALLOWED);
    PARTICIPANT_BLOCKED = ("participant_blocked", 110, UNPROCESSABLE_ENTITY);
    ID_IN_USE = ("id_in_use", 111, CONFLICT);
}

/// Where Layer's documentation for an error lived; clients only log it, but every error carries one.
const DOCS: &str = "https://docs.layer.com/reference/client_api/errors";

/// The message of the 406 for a bad `Accept` header, byte for byte as Layer sent it.
pub const ACCEPT_MESSAGE: &str =
    "Invalid Accept header; must be of form application/vnd.layer+json; version=x.y";

/// Boxed so that `Result<T, ApiError>` stays small on the happy path.
#[derive(Debug, thiserror::Error)]
#[error("{}: {}", .0.kind.id, .0.message)]
pub struct ApiError(Box<Details>);

#[derive(Debug)]
pub struct Details {
    pub kind: ErrorKind,
    pub message: Cow<'static, str>,
    pub url: Cow<'static, str>,
    pub data: Option<Value>,
    /// Overrides the catalogue status where Layer used another one for the same id (e.g. 410, 413).
    pub status: Option<StatusCode>,
    /// Extra response headers (e.g. `Allow` on 405, `WWW-Authenticate` on 401).
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

#[derive(Serialize)]
struct Envelope<'a> {
    id: &'a str,
    code: u16,
    message: &'a str,
    url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a Value>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        ApiError(Box::new(Details {
            kind,
            message: message.into(),
            url: Cow::Owned(format!("{DOCS}#{}", kind.id)),
            data: None,
            status: None,
            headers: Vec::new(),
        }))
    }

    pub fn with_data(mut self, data: Value) -> Self {
        self.0.data = Some(data);
        self
    }

    pub fn with_url(mut self, url: impl Into<Cow<'static, str>>) -> Self {
        self.0.url = url.into();
        self
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.0.status = Some(status);
        self
    }

    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.0.headers.push((name, value));
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    pub fn status(&self) -> StatusCode {
        self.0.status.unwrap_or(self.0.kind.status)
    }

    /// The canonical body: the envelope serialised with Layer's key order.
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&Envelope {
            id: self.0.kind.id,
            code: self.0.kind.code,
            message: &self.0.message,
            url: &self.0.url,
            data: self.0.data.as_ref(),
        })
        .expect("an error envelope always serialises")
    }

    // Constructors for the errors handlers raise most often.

    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::NOT_FOUND, message)
    }

    pub fn invalid_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::INVALID_REQUEST, message)
    }

    pub fn missing_property(property: &str) -> Self {
        Self::new(
            ErrorKind::MISSING_PROPERTY,
            format!("The {property} property is required."),
        )
        .with_data(serde_json::json!({ "property": property }))
    }

    pub fn invalid_property(property: &str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::INVALID_PROPERTY, message)
            .with_data(serde_json::json!({ "property": property }))
    }

    pub fn invalid_header(header_name: &str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::INVALID_HEADER, message)
            .with_data(serde_json::json!({ "header": header_name }))
    }

    /// The 406 for a missing, malformed or unknown `Accept` version (server-api.md §1.2). The
    /// documentation anchor differs between the two APIs, as it did on Layer.
    pub fn invalid_accept(platform: bool) -> Self {
        let url = if platform {
            "http://docs.layer.com/reference/server_api#versioning"
        } else {
            "http://docs.layer.com/reference/client_api#versioning"
        };
        Self::invalid_header("Accept", ACCEPT_MESSAGE).with_url(url)
    }

    pub fn conflict(
        kind: ErrorKind,
        message: impl Into<Cow<'static, str>>,
        existing: Value,
    ) -> Self {
        Self::new(kind, message).with_data(existing)
    }

    pub fn service_unavailable(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::SERVICE_UNAVAILABLE, message)
    }

    /// An unexpected failure: the cause is logged (with the request's span, so its request id)
    /// and never shown to the caller.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            ErrorKind::INTERNAL_SERVER_ERROR,
            "An unexpected error occurred; it has been logged.",
        )
    }

    /// The canonical error for a bare status produced outside the handlers (timeouts, body limit,
    /// routing): what the compat layer puts into an empty error response.
    pub fn for_status(status: StatusCode) -> Option<Self> {
        let err = match status {
            StatusCode::BAD_REQUEST => Self::invalid_request("The request is malformed."),
            StatusCode::NOT_FOUND => {
                Self::new(ErrorKind::INVALID_ENDPOINT, "The endpoint does not exist.")
            }
            StatusCode::METHOD_NOT_ALLOWED => Self::new(
                ErrorKind::METHOD_NOT_ALLOWED,
                "The method is not allowed on this resource; see the Allow header.",
            ),
            StatusCode::REQUEST_TIMEOUT => Self::new(
                ErrorKind::REQUEST_TIMEOUT,
                "The request took too long and was abandoned.",
            ),
            StatusCode::PAYLOAD_TOO_LARGE => {
                Self::invalid_request("The request body is too large.")
                    .with_status(StatusCode::PAYLOAD_TOO_LARGE)
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::invalid_header(
                "Content-Type",
                "Unsupported Content-Type; send application/json.",
            )
            .with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE),
            StatusCode::SERVICE_UNAVAILABLE => {
                Self::service_unavailable("The service is temporarily unavailable.")
            }
            s if s.is_server_error() => Self::new(
                ErrorKind::INTERNAL_SERVER_ERROR,
                "An unexpected error occurred; it has been logged.",
            )
            .with_status(s),
            _ => return None,
        };
        Some(err)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // Layer answered rate limiting with an empty body (client-api.md §1.3).
        if self.0.kind == ErrorKind::RATE_LIMIT_EXCEEDED {
            return self.status().into_response();
        }
        let mut response = (self.status(), crate::http::json_body(self.body())).into_response();
        for (name, value) in self.0.headers {
            response.headers_mut().append(name, value);
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(cause) => {
                tracing::error!(error = %cause, "database unavailable");
                ApiError::service_unavailable("The database is unavailable; retry later.")
            }
            StoreError::ContentGone => ApiError::invalid_property(
                "parts",
                "A referenced content no longer exists: it was not sent in time and has been \
                 removed; upload it again.",
            ),
            other => ApiError::internal(other),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_error_is_byte_exact() {
        let body = String::from_utf8(ApiError::invalid_accept(true).body()).unwrap();
        assert_eq!(
            body,
            r#"{"id":"invalid_header","code":107,"message":"Invalid Accept header; must be of form application/vnd.layer+json; version=x.y","url":"http://docs.layer.com/reference/server_api#versioning","data":{"header":"Accept"}}"#
        );
    }

    #[test]
    fn catalogue_codes_are_unique() {
        let mut codes: Vec<u16> = ErrorKind::ALL.iter().map(|k| k.code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), ErrorKind::ALL.len());
    }
}
