//! The Client API as real clients use it: log in (nonce → identity token → session), create
//! conversations, send messages over REST, and hold WebSockets (`layer-3.0`) that send
//! `Message.create` requests and receive change packets.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use futures_util::{SinkExt, StreamExt};
use layer_server::keys::{DevKey, IdentityClaims};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as Frame;
use uuid::Uuid;

use crate::stats::Latencies;

pub const ACCEPT: &str = "application/vnd.layer+json; version=3.0";
const SUBPROTOCOL: &str = "layer-3.0";
/// The prefix of every message body the tool sends: `layer-bench <unix µs> <sender>`.
const BODY_PREFIX: &str = "layer-bench ";

/// Microseconds since the Unix epoch.
pub fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The text part of a benchmark message: when it was due and who sent it.
pub fn message_body(due_micros: u64, sender: &str) -> String {
    format!("{BODY_PREFIX}{due_micros} {sender}")
}

/// `(due µs, sender)` of a benchmark message body.
pub fn parse_body(body: &str) -> Option<(u64, &str)> {
    let (micros, sender) = body.strip_prefix(BODY_PREFIX)?.split_once(' ')?;
    Some((micros.parse().ok()?, sender))
}

/// The JSON of a one-part text message with a client-chosen id.
pub fn message_json(id: Uuid, body: &str) -> Value {
    json!({
        "id": format!("layer:///messages/{id}"),
        "parts": [{ "mime_type": "text/plain", "body": body }],
    })
}

/// What logging in needs: the app, and the key registered for it that signs identity tokens.
pub struct Credentials {
    pub app_id: Uuid,
    pub key_id: Uuid,
    pub provider_id: Uuid,
    pub key: DevKey,
}

pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
}

impl Api {
    pub fn new(base: &str, max_connections: usize) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(max_connections)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(60))
            .build()?;
        Ok(Api {
            http,
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.base))
            .header("accept", ACCEPT)
    }

    /// `POST path` with a JSON body; the JSON answer of a 201.
    async fn created(&self, request: reqwest::RequestBuilder, what: &str) -> anyhow::Result<Value> {
        let response = request.send().await.with_context(|| what.to_owned())?;
        let status = response.status();
        if status != reqwest::StatusCode::CREATED {
            let body = response.text().await.unwrap_or_default();
            bail!("{what}: HTTP {status}: {body}");
        }
        Ok(response.json().await?)
    }

    /// The whole documented login: `POST /nonces`, an identity token signed for that nonce,
    /// `POST /sessions`. Returns the session token.
    pub async fn login(&self, credentials: &Credentials, user_id: &str) -> anyhow::Result<String> {
        let nonce = self.created(self.post("/nonces"), "POST /nonces").await?;
        let nonce = nonce["nonce"].as_str().context("no nonce")?;
        let token = credentials.key.mint(&IdentityClaims {
            key_id: credentials.key_id,
            provider_id: credentials.provider_id,
            user_id,
            nonce,
            issued_at: (unix_micros() / 1_000_000) as i64,
            ttl_secs: 600,
            profile: None,
        })?;
        let body = json!({ "app_id": credentials.app_id.to_string(), "identity_token": token });
        let session = self
            .created(self.post("/sessions").json(&body), "POST /sessions")
            .await?;
        Ok(session["session_token"]
            .as_str()
            .context("no session_token")?
            .to_owned())
    }

    fn as_session(
        &self,
        request: reqwest::RequestBuilder,
        session: &str,
    ) -> reqwest::RequestBuilder {
        request.header(
            "authorization",
            format!("Layer session-token=\"{session}\""),
        )
    }

    /// `POST /conversations` (Client API, as its first participant); the conversation's UUID.
    pub async fn create_conversation(
        &self,
        session: &str,
        participants: &[String],
    ) -> anyhow::Result<Uuid> {
        let ids: Vec<String> = participants
            .iter()
            .map(|u| format!("layer:///identities/{u}"))
            .collect();
        let body = json!({ "participants": ids, "distinct": false, "metadata": {} });
        let request = self
            .as_session(self.post("/conversations"), session)
            .json(&body);
        let created = self.created(request, "POST /conversations").await?;
        let id = created["id"].as_str().context("conversation without id")?;
        Ok(Uuid::parse_str(id.rsplit('/').next().unwrap_or(id))?)
    }

    /// `POST /conversations/:id/messages`; succeeds on 201.
    pub async fn send(
        &self,
        session: &str,
        conversation: Uuid,
        message: &Value,
    ) -> anyhow::Result<()> {
        let request = self
            .as_session(
                self.post(&format!("/conversations/{conversation}/messages")),
                session,
            )
            .json(message);
        let response = request.send().await?;
        let status = response.status();
        if status != reqwest::StatusCode::CREATED {
            let body = response.text().await.unwrap_or_default();
            bail!("POST messages: HTTP {status}: {body}");
        }
        // Read the body: the send is done when the client has the answer.
        response.bytes().await?;
        Ok(())
    }
}

/// Send-to-receive accounting shared by every socket.
pub struct Receipts {
    /// Message creates received by participants other than the sender.
    pub received: AtomicU64,
    pub latencies: Latencies,
    /// Sockets currently open.
    pub open: AtomicUsize,
    /// Only messages due at or after this (µs since the epoch) count; `u64::MAX`: none.
    pub since: AtomicU64,
    pub changed: tokio::sync::Notify,
}

impl Default for Receipts {
    fn default() -> Self {
        Receipts {
            received: AtomicU64::new(0),
            latencies: Latencies::default(),
            open: AtomicUsize::new(0),
            since: AtomicU64::new(u64::MAX),
            changed: tokio::sync::Notify::new(),
        }
    }
}

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Result<(), String>>>>>;

/// One open WebSocket of one user.
pub struct Socket {
    outbound: mpsc::UnboundedSender<String>,
    pending: Pending,
    next_request: AtomicU64,
}

impl Socket {
    /// Opens `/websocket?session_token=` with subprotocol `layer-3.0`.
    pub async fn open(
        base: &str,
        user: String,
        session: &str,
        receipts: Arc<Receipts>,
    ) -> anyhow::Result<Self> {
        let ws_base = base
            .replacen("http://", "ws://", 1)
            .replacen("https://", "wss://", 1);
        let mut request =
            format!("{ws_base}/websocket?session_token={session}").into_client_request()?;
        request
            .headers_mut()
            .insert("sec-websocket-protocol", SUBPROTOCOL.parse()?);
        let (stream, response) = tokio_tungstenite::connect_async(request)
            .await
            .context("WebSocket upgrade")?;
        let protocol = response.headers().get("sec-websocket-protocol");
        if protocol.is_none_or(|p| p != SUBPROTOCOL) {
            bail!("the server did not select {SUBPROTOCOL}");
        }
        let (mut sink, mut stream) = stream.split();
        let (outbound, mut queue) = mpsc::unbounded_channel::<String>();
        let pending: Pending = Arc::default();
        receipts.open.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            while let Some(text) = queue.recv().await {
                if sink.send(Frame::text(text)).await.is_err() {
                    break;
                }
            }
        });
        let reader_pending = pending.clone();
        tokio::spawn(async move {
            while let Some(Ok(frame)) = stream.next().await {
                if let Frame::Text(text) = frame {
                    handle_packet(text.as_str(), &user, &reader_pending, &receipts);
                }
            }
            receipts.open.fetch_sub(1, Ordering::Relaxed);
            // Whoever still waits for an answer gets an error (the sender is dropped).
            reader_pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
        });
        Ok(Socket {
            outbound,
            pending,
            next_request: AtomicU64::new(1),
        })
    }

    /// `Message.create` into `conversation`; resolves with the server's response.
    pub async fn send(&self, conversation: Uuid, message: Value) -> anyhow::Result<()> {
        let request_id = format!("r{}", self.next_request.fetch_add(1, Ordering::Relaxed));
        let (done, answer) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(request_id.clone(), done);
        let packet = json!({ "type": "request", "body": {
            "method": "Message.create",
            "request_id": request_id,
            "object_id": format!("layer:///conversations/{conversation}"),
            "data": message,
        }});
        self.outbound
            .send(packet.to_string())
            .map_err(|_| anyhow::anyhow!("socket closed"))?;
        match answer.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => bail!("Message.create failed: {error}"),
            Err(_) => bail!("socket closed before the response"),
        }
    }
}

/// A response completes its request; a Message create for someone other than its sender is a
/// receipt (send-to-receive latency from the due time in its body).
fn handle_packet(text: &str, user: &str, pending: &Pending, receipts: &Receipts) {
    let Ok(packet) = serde_json::from_str::<Value>(text) else {
        return;
    };
    let body = &packet["body"];
    match packet["type"].as_str() {
        Some("response") => {
            let Some(request_id) = body["request_id"].as_str() else {
                return;
            };
            let waiter = pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(request_id);
            if let Some(waiter) = waiter {
                let result = if body["success"] == true {
                    Ok(())
                } else {
                    Err(body["data"].to_string())
                };
                let _ = waiter.send(result);
            }
        }
        Some("change") if body["operation"] == "create" && body["object"]["type"] == "Message" => {
            let text = body["data"]["parts"][0]["body"].as_str().unwrap_or("");
            let Some((due, sender)) = parse_body(text) else {
                return;
            };
            if sender == user || due < receipts.since.load(Ordering::Relaxed) {
                return;
            }
            let latency = Duration::from_micros(unix_micros().saturating_sub(due));
            receipts.latencies.record(latency);
            receipts.received.fetch_add(1, Ordering::Relaxed);
            receipts.changed.notify_waiters();
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_carry_the_due_time_and_the_sender() {
        let body = message_body(1_700_000_000_123_456, "bench-7");
        assert_eq!(parse_body(&body), Some((1_700_000_000_123_456, "bench-7")));
        assert_eq!(parse_body("hello"), None);
        assert_eq!(parse_body("layer-bench soon bench-7"), None);
    }

    fn change(body: &str) -> String {
        json!({ "type": "change", "counter": 3, "timestamp": "2026-01-01T00:00:00.000Z",
                "body": { "operation": "create",
                          "object": { "type": "Message", "id": "layer:///messages/x" },
                          "data": { "parts": [{ "mime_type": "text/plain", "body": body }] } } })
        .to_string()
    }

    #[test]
    fn receipts_count_other_participants_only_while_counting() {
        let receipts = Receipts::default();
        let pending = Pending::default();
        let sent = message_body(unix_micros(), "alice");
        handle_packet(&change(&sent), "bob", &pending, &receipts);
        assert_eq!(
            receipts.received.load(Ordering::Relaxed),
            0,
            "not counting yet"
        );
        receipts.since.store(0, Ordering::Relaxed);
        handle_packet(&change(&sent), "alice", &pending, &receipts);
        handle_packet(&change("hello"), "bob", &pending, &receipts);
        handle_packet("not json", "bob", &pending, &receipts);
        assert_eq!(
            receipts.received.load(Ordering::Relaxed),
            0,
            "own or foreign messages"
        );
        handle_packet(&change(&sent), "bob", &pending, &receipts);
        assert_eq!(receipts.received.load(Ordering::Relaxed), 1);
        assert_eq!(receipts.latencies.summary().count, 1);
    }

    #[test]
    fn responses_complete_their_request() {
        let receipts = Receipts::default();
        let pending = Pending::default();
        let (ok_tx, mut ok_rx) = oneshot::channel();
        let (err_tx, mut err_rx) = oneshot::channel();
        pending.lock().unwrap().insert("r1".into(), ok_tx);
        pending.lock().unwrap().insert("r2".into(), err_tx);
        let response = |id: &str, success: bool| {
            json!({ "type": "response", "counter": 0, "timestamp": "2026-01-01T00:00:00.000Z",
                    "body": { "request_id": id, "method": "Message.create", "success": success,
                              "data": { "id": "not_found" } } })
            .to_string()
        };
        handle_packet(&response("r2", false), "bob", &pending, &receipts);
        handle_packet(&response("r1", true), "bob", &pending, &receipts);
        handle_packet(&response("r9", true), "bob", &pending, &receipts);
        assert_eq!(ok_rx.try_recv().unwrap(), Ok(()));
        assert!(err_rx
            .try_recv()
            .unwrap()
            .unwrap_err()
            .contains("not_found"));
        assert!(pending.lock().unwrap().is_empty());
    }
}
