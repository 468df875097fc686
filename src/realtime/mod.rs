//! The WebSocket API (`/websocket`, client-api.md §4, client-wire-protocol.md §4): the upgrade,
//! one task per socket, the request/response protocol and typing-indicator relay (with
//! server-side expiry: `paused`, then `finished`, when a typist's updates stop or their socket
//! closes; run by the node holding the typist's socket).
//!
//! Layout: `packet` (envelope and client packets), `connection` (the socket task: the single
//! writer that stamps counters, keepalive, bounded queues, close frames), `requests` (one
//! sequential worker per socket answering every request with exactly one response), `hub` (the
//! registry of live sockets per app and user, and in-memory presence).
//!
//! The seam for what comes next is `hub::Fanout`: everything that must reach sockets other than
//! the requester's (typing signals, closing the sockets of ended sessions) is published as a
//! serialisable `hub::Notice`. Today `hub::Local` applies notices to this node's Hub. The change
//! log slice writes each change (per user, in the same transaction as the change) and publishes
//! a notice naming it; a Postgres implementation of `Fanout` sends notices with NOTIFY and a
//! LISTEN task on every node calls `Hub::apply`, so fan-out reaches every device on every node.
//! `Event.replay` then reads that log; until it exists the request answers `success: false`
//! (`service_unavailable`), so no client mistakes it for a completed replay.
//!
//! Versions: the subprotocol `layer-1.0` / `layer-2.0` / `layer-3.0` is echoed and selects the
//! rendering version, as `Accept` does for REST. A request without one of them is refused with
//! the 406 a REST request without a Layer `Accept` gets: the subprotocol is mandatory, and a
//! browser would fail the handshake anyway if the server chose one it did not offer.

pub mod changes;
mod connection;
mod delivery;
pub mod hub;
mod message_cache;
pub mod packet;
mod pg;
mod requests;

use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::http::{header, HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::error::ApiError;
use crate::http::AppState;
use crate::store::Timestamp;
use crate::version::ApiVersion;

pub use hub::{Fanout, Hub, Notice};

/// Read and write buffer of each socket.
const SOCKET_BUFFER_BYTES: usize = 8 * 1024;

/// The WebSocket side of the application state.
#[derive(Clone)]
pub struct Realtime {
    pub hub: Arc<Hub>,
    pub fanout: Arc<dyn Fanout>,
    /// Messages being delivered, loaded once for all of this node's sockets.
    messages: Arc<message_cache::MessageCache>,
    /// Members' views of conversations with a message being delivered, read once per node.
    views: Arc<message_cache::ViewCache>,
}

impl Realtime {
    /// A message this node just sent, as the send returned it with its participants'
    /// identities: its fan-out renders it from here instead of reading it back.
    pub fn sent(&self, message: &crate::store::Message, identities: &[crate::store::Identity]) {
        self.messages.prime(message, identities);
    }

    /// A single node: notices go straight to the local Hub.
    pub fn local() -> Self {
        let hub = Hub::new();
        Realtime {
            fanout: Arc::new(hub::Local(hub.clone())),
            hub,
            messages: Default::default(),
            views: Default::default(),
        }
    }

    /// Several nodes on one Postgres database: notices travel by NOTIFY; the returned task is
    /// this node's LISTEN loop.
    pub fn postgres(pool: sqlx::PgPool, url: String) -> (Self, tokio::task::JoinHandle<()>) {
        let hub = Hub::new();
        let (fanout, listener) = pg::PgFanout::start(pool, url, hub.clone());
        (
            Realtime {
                hub,
                fanout,
                messages: Default::default(),
                views: Default::default(),
            },
            listener,
        )
    }

    /// A session was deleted: its sockets close.
    pub async fn session_ended(&self, session_hash: String) {
        self.fanout
            .publish(Notice::SessionEnded {
                session: session_hash,
            })
            .await;
    }

    /// Every session of the user ended (or the user was suspended): their sockets close.
    pub async fn user_logged_out(&self, app_id: uuid::Uuid, user_id: &str) {
        self.fanout
            .publish(Notice::UserLoggedOut {
                app_id,
                user_id: user_id.to_owned(),
            })
            .await;
    }
}

/// Tells every node (and through them the user's followers) what this node now knows of the
/// user's presence: after their first socket here opened, their last one here closed, or they
/// announced a status. Ephemeral: nothing is stored.
pub(crate) async fn presence_changed(state: &AppState, app_id: uuid::Uuid, user_id: &str) {
    let followers = match state.store.followers(app_id, user_id).await {
        Ok(followers) => followers,
        Err(err) => {
            tracing::warn!(error = %err, "reading followers for presence failed");
            Vec::new()
        }
    };
    let hub = &state.realtime.hub;
    let view = crate::render::View::new(
        ApiVersion::V3_0,
        &state.urls,
        app_id,
        crate::render::Perspective::Client {
            user_id: user_id.to_owned(),
        },
    );
    let report = hub::PresenceReport {
        app_id,
        user: user_id.to_owned(),
        identity_url: view.identity_url(user_id),
        node: hub.node,
        state: hub.node_presence(app_id, user_id),
        followers,
    };
    state
        .realtime
        .fanout
        .publish(Notice::Presence(report))
        .await;
}

/// `/websocket` and `/websocket/` (the SDKs append the slash, client-wire-protocol.md §0.3).
/// Outside version negotiation: the upgrade carries no `Accept` header.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/websocket", get(upgrade))
        .route("/websocket/", get(upgrade))
}

/// The first Layer subprotocol the client offers.
fn subprotocol(headers: &HeaderMap) -> Option<(&'static str, ApiVersion)> {
    const OFFERED: [(&str, ApiVersion); 3] = [
        ("layer-3.0", ApiVersion::V3_0),
        ("layer-2.0", ApiVersion::V2_0),
        ("layer-1.0", ApiVersion::V1_0),
    ];
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| OFFERED.into_iter().find(|(name, _)| *name == p.trim()))
}

async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let Some(token) = crate::http::auth::session_token_of(&headers, &uri) else {
        return crate::http::auth::challenge(&state, "A session token is required.")
            .await
            .into_response();
    };
    let session_hash = crate::secrets::sha256_hex(&token);
    let session = match state.store.session(&session_hash, Timestamp::now()).await {
        Ok(Some(session)) => session,
        Ok(None) => {
            return crate::http::auth::challenge(&state, "The session token is no longer valid.")
                .await
                .into_response()
        }
        Err(err) => return ApiError::from(err).into_response(),
    };
    let Some((protocol, version)) = subprotocol(&headers) else {
        return ApiError::invalid_header(
            "Sec-WebSocket-Protocol",
            "The WebSocket subprotocol must be layer-3.0, layer-2.0 or layer-1.0.",
        )
        .into_response();
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    // Delivery starts after what the user's log holds now: connecting does not resend history.
    let cursor = match state
        .store
        .stream_head(session.app_id, &session.user_id)
        .await
    {
        Ok(cursor) => cursor,
        Err(err) => return ApiError::from(err).into_response(),
    };
    let limits = &state.settings.websocket;
    ws.protocols([protocol])
        // tungstenite's defaults (128 KiB each) end up resident over a socket's life: 1,000
        // sockets held 168 MiB with them, 48 MiB with these. Packets are small; larger ones
        // still fit (the buffers grow up to max_message_bytes).
        .read_buffer_size(SOCKET_BUFFER_BYTES)
        .write_buffer_size(SOCKET_BUFFER_BYTES)
        .max_message_size(limits.max_message_bytes)
        .max_frame_size(limits.max_message_bytes)
        .on_upgrade(move |socket| {
            connection::run(
                socket,
                state,
                connection::Opened {
                    app_id: session.app_id,
                    user_id: session.user_id,
                    session_hash,
                    version,
                    cursor,
                },
            )
        })
}
