//! Extractors whose failures speak Layer's error envelope instead of axum's plain-text rejections.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ApiResult};
use crate::version::ApiVersion;

impl<S: Send + Sync> FromRequestParts<S> for ApiVersion {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> ApiResult<Self> {
        // Set by `compat::negotiate`; a route outside it asking for a version is a wiring bug.
        parts
            .extensions
            .get::<ApiVersion>()
            .copied()
            .ok_or_else(|| ApiError::internal("route without version negotiation"))
    }
}

/// A JSON body. Parsed whatever the declared content type (Layer clients send `application/json`,
/// hand-written curl calls often forget it); a bad body is 400 `invalid_request` saying what is
/// wrong and where.
pub struct LayerJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for LayerJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> ApiResult<Self> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            ApiError::for_status(rejection.status())
                .unwrap_or_else(|| ApiError::invalid_request(rejection.body_text()))
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::invalid_request(
                "A JSON request body is required.",
            ));
        }
        let deserializer = &mut serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize(deserializer)
            .map(LayerJson)
            .map_err(|err| {
                let path = err.path().to_string();
                let inner = err.into_inner();
                let message = if path == "." {
                    format!("Invalid JSON body: {inner}")
                } else {
                    format!("Invalid JSON body at {path}: {inner}")
                };
                ApiError::invalid_request(message)
            })
    }
}
