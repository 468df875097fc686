//! The HTTP surface: shared state and the whole middleware stack, assembled in `router` in the
//! order a request passes through it.

pub mod auth;
pub mod compat;
pub mod dedup;
pub mod extract;
pub mod ops;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderName, HeaderValue, Method, Response, StatusCode};
use axum::middleware::{from_fn, map_request};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tower::Layer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use uuid::Uuid;

use crate::config::Settings;
use crate::content::{Purpose, UrlSigner};
use crate::store::DynStore;
use crate::store::Timestamp;

#[derive(Clone)]
pub struct AppState {
    pub store: DynStore,
    pub settings: Arc<Settings>,
    pub urls: Arc<Urls>,
    pub metrics: PrometheusHandle,
    /// Live WebSockets and what reaches them.
    pub realtime: crate::realtime::Realtime,
    /// Where rich content bytes are kept.
    pub content: crate::content::Storage,
}

/// Absolute URLs of rendered objects, all under the configured public base URL.
#[derive(Debug, Clone)]
pub struct Urls {
    base: String,
    /// Signs the rich content transfer URLs.
    signer: UrlSigner,
    /// Lifetime of rendered download URLs.
    download_ttl_secs: u64,
}

impl Urls {
    pub fn new(base: impl Into<String>, signer: UrlSigner, download_ttl_secs: u64) -> Self {
        Urls {
            base: base.into(),
            signer,
            download_ttl_secs,
        }
    }

    pub fn signer(&self) -> &UrlSigner {
        &self.signer
    }

    /// A signed transfer URL of a content, valid until `expires`.
    pub fn content_transfer(
        &self,
        purpose: Purpose,
        app_id: Uuid,
        id: Uuid,
        expires: Timestamp,
    ) -> String {
        let query = self
            .signer
            .query(purpose, app_id, id, expires.unix_seconds());
        format!("{}/{}/{id}?{query}", self.base, purpose.route())
    }

    /// A fresh download URL of a content and its expiry.
    pub fn content_download(&self, app_id: Uuid, id: Uuid) -> (String, Timestamp) {
        let expires = Timestamp::now().plus_secs(self.download_ttl_secs);
        let url = self.content_transfer(Purpose::Download, app_id, id, expires);
        (url, expires)
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Platform API URL of a user's identity.
    pub fn platform_identity(&self, app_id: Uuid, user_id: &str) -> String {
        format!(
            "{}/apps/{app_id}/users/{}/identity",
            self.base,
            crate::ids::encode_component(user_id)
        )
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A JSON body with the content type Layer clients require (they parse only `application/json`).
pub fn json_body(bytes: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(Body::from(bytes));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

pub fn router(state: AppState) -> Router {
    let settings = state.settings.clone();

    // The Layer APIs: version negotiation applies to every route and to the 404 fallback.
    let api = crate::api::client_routes(state.clone())
        .nest(
            "/apps/{app_uuid}",
            crate::api::platform_routes(state.clone()),
        )
        .fallback(compat::invalid_endpoint)
        .layer(from_fn(compat::negotiate));
    // Webhook management negotiates its own media type (application/vnd.layer.webhooks+json).
    let api = crate::api::webhooks::routes(state.clone()).merge(api);

    // Each `layer` call wraps the previous ones, so the list reads innermost first: a request
    // meets the request id first and the metrics last, right before its handler.
    let routes = ops::routes()
        .merge(crate::realtime::routes())
        .merge(api)
        .layer(from_fn(ops::track_metrics))
        .layer(DefaultBodyLimit::max(settings.http.body_limit_bytes))
        .layer(RequestBodyLimitLayer::new(settings.http.body_limit_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(settings.http.request_timeout_secs),
        ))
        // Rich content transfers: streamed, bounded by `content.max_bytes`, not by the JSON
        // body limit or the request timeout.
        .merge(crate::api::content::transfer_routes().layer(from_fn(ops::track_metrics)))
        .layer(CatchPanicLayer::new())
        .layer(from_fn(compat::envelope_errors))
        .layer(CompressionLayer::new())
        .layer(cors(&settings))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http().make_span_with(ops::request_span))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
        ]))
        .with_state(state);

    // Method override must happen before routing, so it wraps the router itself.
    Router::new().fallback_service(map_request(compat::method_override).layer(routes))
}

/// CORS for the Web SDKs in browsers: they send credentials and Layer's own headers and read
/// `Layer-Count` / `Link` / `Location` from responses (client-wire-protocol.md §1.4).
fn cors(settings: &Settings) -> CorsLayer {
    let origins = &settings.http.cors_allowed_origins;
    let allow_origin = if origins.is_empty() {
        AllowOrigin::mirror_request()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    let names = |list: &[&'static str]| {
        list.iter()
            .map(|h| HeaderName::from_static(h))
            .collect::<Vec<_>>()
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_credentials(true)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::HEAD,
        ])
        .allow_headers(names(&[
            "accept",
            "authorization",
            "content-type",
            "client-id",
            "layer-xdk-version",
            "if-none-match",
            "x-http-method-override",
            "upload-content-type",
            "upload-content-length",
            "upload-origin",
        ]))
        .expose_headers(names(&["layer-count", "location", "link", "x-request-id"]))
        .max_age(Duration::from_secs(3600))
}

/// A JSON response with the given status.
pub fn json_response(
    status: axum::http::StatusCode,
    value: &impl serde::Serialize,
) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(bytes) => {
            let mut response = json_body(bytes);
            *response.status_mut() = status;
            response
        }
        Err(err) => {
            axum::response::IntoResponse::into_response(crate::error::ApiError::internal(err))
        }
    }
}
