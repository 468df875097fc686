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

/// The path parameters of a route, by name (percent-decoded). One handler serves the same
/// resource under several prefixes (Client API, Platform API, the Platform proxy), whose
/// parameter lists differ; handlers ask for the ones they need.
pub struct PathIds(std::collections::HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for PathIds {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> ApiResult<Self> {
        let raw = axum::extract::RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::invalid_request("The URL path is not valid UTF-8."))?;
        Ok(PathIds(
            raw.iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        ))
    }
}

impl PathIds {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A UUID path segment (bare or as a Layer URI); unparseable ids name nothing: 404.
    pub fn uuid(&self, name: &str, what: &str) -> ApiResult<uuid::Uuid> {
        self.get(name)
            .and_then(|v| {
                let bare = v.rsplit('/').next().unwrap_or(v);
                uuid::Uuid::try_parse(bare).ok()
            })
            .ok_or_else(|| ApiError::not_found(format!("The {what} could not be found.")))
    }
}

/// A Layer Patch body, parsed (the content type was checked by `compat::negotiate`). A
/// malformed document is 400 `invalid_request`; an operation the patch module rejects, 422.
pub struct LayerPatch(pub Vec<crate::patch::Operation>);

impl<S: Send + Sync> FromRequest<S> for LayerPatch {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> ApiResult<Self> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            ApiError::for_status(rejection.status())
                .unwrap_or_else(|| ApiError::invalid_request(rejection.body_text()))
        })?;
        crate::patch::Patch::from_slice(&bytes)
            .map(|patch| LayerPatch(patch.0))
            .map_err(patch_error)
    }
}

/// A Layer Patch error in Layer's envelope, naming the operation that failed.
pub fn patch_error(err: crate::patch::PatchError) -> ApiError {
    if err.is_structural() {
        ApiError::invalid_request(err.to_string())
    } else {
        ApiError::invalid_property(err.property.as_deref().unwrap_or(""), err.to_string())
    }
}
