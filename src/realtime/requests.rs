//! The request worker of one socket: handles client packets in the order they arrived and
//! answers every request with exactly one response. Creates go through the same service and
//! rendering code as their REST endpoints.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use uuid::Uuid;

use super::delivery::Command;
use super::hub::{Notice, Socket, STATUSES};
use super::packet::{self, Bodies, Inbound, Outbound, PacketType, Request};
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::http::auth::Actor;
use crate::http::AppState;
use crate::render::{Perspective, View};
use crate::store::Timestamp;

/// How long a checked conversation membership is trusted for typing indicators.
const MEMBERSHIP_TTL: Duration = Duration::from_secs(5);
/// Conversations remembered per socket for typing indicators.
const MEMBERSHIP_CACHE: usize = 256;
/// Identities one `Presence.sync {ids}` may ask about.
const MAX_PRESENCE_IDS: usize = 500;
/// Conversations whose typing indicators one socket expires (beyond: relayed, not expired).
const MAX_TYPING: usize = 256;

/// What the other participants were last told about this socket's user typing in one
/// conversation, for server-side expiry.
struct Typing {
    /// `started` or `paused`.
    action: &'static str,
    /// When the typist last signalled.
    heard: Instant,
    others: Vec<String>,
    object: Value,
    /// The typist as signals name them (1.x, 2.0+).
    sender: (Value, Value),
}

/// The typing indicators of one socket's user that are still running. When updates stop,
/// `started` turns `paused`, then `finished`; when the socket goes (this is dropped), every
/// one still running is `finished`.
struct Typists {
    app_id: Uuid,
    fanout: Arc<dyn super::hub::Fanout>,
    paused_after: Duration,
    finished_after: Duration,
    running: HashMap<Uuid, Typing>,
}

fn typing_notice(app_id: Uuid, typing: &Typing, action: &str) -> Notice {
    let body = |who: (&str, &Value)| {
        json!({
            "type": "typing_indicator",
            "object": typing.object,
            "data": { "action": action, who.0: who.1 },
        })
    };
    Notice::Deliver {
        app_id,
        users: typing.others.clone(),
        kind: PacketType::Signal,
        bodies: Bodies {
            legacy: body(("user_id", &typing.sender.0)),
            current: body(("sender", &typing.sender.1)),
        },
    }
}

impl Typists {
    fn deadline(&self, typing: &Typing) -> Instant {
        let after = if typing.action == "started" {
            self.paused_after
        } else {
            self.finished_after
        };
        typing.heard + after
    }

    /// When the next indicator expires.
    fn next_deadline(&self) -> Option<Instant> {
        self.running.values().map(|t| self.deadline(t)).min()
    }

    /// Remembers what the others were just told.
    fn heard(&mut self, conversation: Uuid, typing: Typing) {
        if typing.action == "finished" {
            self.running.remove(&conversation);
        } else if self.running.len() < MAX_TYPING || self.running.contains_key(&conversation) {
            self.running.insert(conversation, typing);
        }
    }

    /// Moves every expired indicator on: `started` → `paused`, `paused` → `finished`.
    async fn expire(&mut self, now: Instant) {
        let expired: Vec<Uuid> = self
            .running
            .iter()
            .filter(|(_, t)| self.deadline(t) <= now)
            .map(|(c, _)| *c)
            .collect();
        for conversation in expired {
            let Some(typing) = self.running.get_mut(&conversation) else {
                continue;
            };
            let next = if typing.action == "started" {
                typing.action = "paused";
                "paused"
            } else {
                "finished"
            };
            let notice = typing_notice(self.app_id, typing, next);
            if next == "finished" {
                self.running.remove(&conversation);
            }
            self.fanout.publish(notice).await;
        }
    }
}

impl Drop for Typists {
    fn drop(&mut self) {
        if self.running.is_empty() {
            return;
        }
        let notices: Vec<Notice> = self
            .running
            .values()
            .map(|t| typing_notice(self.app_id, t, "finished"))
            .collect();
        let fanout = self.fanout.clone();
        // Dropped with its socket's task, possibly while the runtime shuts down.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                for notice in notices {
                    fanout.publish(notice).await;
                }
            });
        }
    }
}

struct Worker {
    state: AppState,
    socket: Arc<Socket>,
    actor: Actor,
    /// Conversation → its participants, for the typing indicators of a participant.
    memberships: HashMap<Uuid, (Instant, Vec<String>)>,
    /// This user as typing indicators name them (1.x, 2.0+).
    sender: Option<(Value, Value)>,
    /// The socket's delivery task (replays go through it).
    delivery: mpsc::Sender<Command>,
    typing: Typists,
}

pub async fn serve(
    state: AppState,
    socket: Arc<Socket>,
    mut inbound: mpsc::Receiver<Inbound>,
    delivery: mpsc::Sender<Command>,
) {
    let actor = Actor {
        app_id: socket.app_id,
        perspective: Perspective::Client {
            user_id: socket.user_id.clone(),
        },
    };
    let limits = &state.settings.websocket;
    let typing = Typists {
        app_id: socket.app_id,
        fanout: state.realtime.fanout.clone(),
        paused_after: Duration::from_millis(limits.typing_paused_after_ms),
        finished_after: Duration::from_millis(limits.typing_finished_after_ms),
        running: HashMap::new(),
    };
    let mut worker = Worker {
        state,
        socket,
        actor,
        memberships: HashMap::new(),
        sender: None,
        delivery,
        typing,
    };
    loop {
        let deadline = worker.typing.next_deadline();
        let packet = tokio::select! {
            packet = inbound.recv() => packet,
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                worker.typing.expire(Instant::now()).await;
                continue;
            }
        };
        let Some(packet) = packet else { break };
        match packet {
            Inbound::Request(request) => worker.answer(request).await,
            Inbound::Invalid { request, error } => {
                worker.respond(&request, Err(ApiError::invalid_request(error)))
            }
            Inbound::Signal(body) => {
                if let Err(err) = worker.signal(body).await {
                    tracing::debug!(error = %err, "typing indicator dropped");
                }
            }
        }
    }
}

/// `data` of a request, parsed like a REST body.
fn data_as<T: serde::de::DeserializeOwned>(data: Value) -> ApiResult<T> {
    serde_path_to_error::deserialize(data).map_err(|e| {
        ApiError::invalid_request(format!("Invalid data at {}: {}", e.path(), e.inner()))
    })
}

impl Worker {
    fn user(&self) -> &str {
        &self.socket.user_id
    }

    fn respond(&self, request: &Request, result: ApiResult<Value>) {
        let body = packet::response(&request.request_id, &request.method, result);
        self.socket.push(Outbound::Packet {
            kind: PacketType::Response,
            body,
        });
    }

    async fn answer(&mut self, request: Request) {
        let result = match request.method.as_str() {
            "Counter.read" => {
                // The writer fills in the counter it stands at.
                self.socket.push(Outbound::CounterRead {
                    request_id: request.request_id,
                });
                return;
            }
            "Conversation.create" => self.create_conversation(request.data.clone()).await,
            "Message.create" => self.create_message(&request).await,
            "Channel.create" if self.socket.version.has_identities() => {
                let data = request.data.clone();
                crate::api::channels::create_channel(
                    &self.state,
                    &self.actor,
                    self.socket.version,
                    data,
                )
                .await
            }
            "Presence.subscribe" => {
                self.socket
                    .presence_subscribed
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                Ok(json!({}))
            }
            "Presence.update" => self.update_presence(&request.data).await,
            "Presence.sync" => self.sync_presence(&request.data).await,
            "Event.replay" => self.replay(&request.data).await,
            other => Err(ApiError::new(
                ErrorKind::INVALID_REQUEST,
                format!("Unknown or unsupported WebSocket request method {other:?}."),
            )
            .with_data(json!({ "method": other }))),
        };
        self.respond(&request, result);
    }

    async fn create_conversation(&self, data: Value) -> ApiResult<Value> {
        let body = data_as(data)?;
        let version = self.socket.version;
        crate::api::conversations::create_conversation(&self.state, &self.actor, version, body)
            .await
            .map(|created| created.into_body())
    }

    async fn create_message(&self, request: &Request) -> ApiResult<Value> {
        let conversation = request
            .object_id
            .as_deref()
            .ok_or_else(|| ApiError::missing_property("object_id"))?;
        if conversation.starts_with("layer:///channels/") && self.socket.version.has_identities() {
            let channel_id = crate::service::object_id("object_id", "channels", conversation)?;
            return crate::api::channels::send_message(
                &self.state,
                &self.actor,
                self.socket.version,
                channel_id,
                request.data.clone(),
            )
            .await;
        }
        let conversation_id =
            crate::service::object_id("object_id", "conversations", conversation)?;
        let input =
            crate::api::messages::message_input(&self.state, &self.actor, request.data.clone())?;
        crate::api::messages::send_one(
            &self.state,
            &self.actor,
            self.socket.version,
            conversation_id,
            input,
        )
        .await
    }

    /// `Event.replay {from_timestamp}`: the delivery task queues every change of this user at
    /// or after that time, less `replay_margin_ms` (inclusive, original timestamps, in order),
    /// before this response.
    async fn replay(&self, data: &Value) -> ApiResult<Value> {
        let from = data
            .get("from_timestamp")
            .ok_or_else(|| ApiError::missing_property("from_timestamp"))?
            .as_str()
            .and_then(Timestamp::parse_iso)
            .ok_or_else(|| {
                ApiError::invalid_property("from_timestamp", "from_timestamp is an ISO 8601 time.")
            })?;
        let retention = self.state.settings.websocket.change_retention_secs;
        if from < Timestamp::now().minus(Duration::from_secs(retention)) {
            return Err(ApiError::invalid_property(
                "from_timestamp",
                format!(
                    "Changes are kept for {retention} seconds; from_timestamp is older. \
                     Nothing was replayed: reload conversations and messages instead."
                ),
            ));
        }
        // Changes stamped before `from` may have committed after the client's last packet.
        let margin = Duration::from_millis(self.state.settings.websocket.replay_margin_ms);
        let (done, result) = oneshot::channel();
        let command = Command::Replay {
            from: from.minus(margin),
            done,
        };
        if self.delivery.send(command).await.is_err() {
            return Err(ApiError::service_unavailable("The socket is closing."));
        }
        result
            .await
            .map_err(|_| ApiError::service_unavailable("The socket is closing."))??;
        Ok(Value::Null)
    }

    /// `Presence.update`: a Layer Patch setting `status`; announced to every node (and so to
    /// the user's subscribed followers).
    async fn update_presence(&self, data: &Value) -> ApiResult<Value> {
        let operations = data
            .as_array()
            .filter(|ops| !ops.is_empty())
            .ok_or_else(|| {
                ApiError::invalid_request("Presence.update takes a Layer Patch array.")
            })?;
        let mut status = None;
        for op in operations {
            let set_status = op.get("operation").and_then(Value::as_str) == Some("set")
                && op.get("property").and_then(Value::as_str) == Some("status");
            if !set_status {
                return Err(ApiError::invalid_property(
                    "status",
                    "Presence.update only sets the status.",
                ));
            }
            status = Some(
                op.get("value")
                    .and_then(Value::as_str)
                    .filter(|v| STATUSES.contains(v))
                    .ok_or_else(|| {
                        ApiError::invalid_property(
                            "status",
                            "status is auto, available, away, busy, offline or invisible.",
                        )
                    })?,
            );
        }
        if let Some(status) = status {
            self.state
                .realtime
                .hub
                .set_status(self.socket.app_id, self.user(), status);
            super::presence_changed(&self.state, self.socket.app_id, self.user()).await;
        }
        Ok(json!({}))
    }

    /// `Presence.sync {ids}` or `{since}`: Identity `update` change bodies for the users this
    /// user may see (themself and whom they follow).
    async fn sync_presence(&self, data: &Value) -> ApiResult<Value> {
        let hub = &self.state.realtime.hub;
        let app_id = self.socket.app_id;
        let users: Vec<String> = if let Some(ids) = data.get("ids") {
            let ids = ids
                .as_array()
                .ok_or_else(|| ApiError::invalid_property("ids", "ids must be an array."))?;
            if ids.len() > MAX_PRESENCE_IDS {
                return Err(ApiError::invalid_property(
                    "ids",
                    format!("At most {MAX_PRESENCE_IDS} ids per Presence.sync."),
                ));
            }
            ids.iter()
                .filter_map(Value::as_str)
                .filter_map(|id| crate::service::user_ref("ids", id).ok())
                .collect()
        } else if let Some(since) = data.get("since") {
            let since = since
                .as_str()
                .and_then(Timestamp::parse_iso)
                .ok_or_else(|| ApiError::invalid_property("since", "since is an ISO 8601 time."))?;
            let mut users = hub.presence_changed_since(app_id, since);
            users.truncate(MAX_PRESENCE_IDS);
            users
        } else {
            return Err(ApiError::missing_property("ids"));
        };
        let view = View::new(
            self.socket.version,
            &self.state.urls,
            app_id,
            self.actor.perspective.clone(),
        );
        let mut changes = Vec::new();
        for user in users {
            let visible = user == self.user()
                || self
                    .state
                    .store
                    .is_following(app_id, self.user(), &user)
                    .await?;
            if !visible {
                continue;
            }
            let presence = hub.presence(app_id, &user, self.user());
            let identity = view.basic_identity(&user);
            changes.push(json!({
                "operation": "update",
                "object": { "type": "Identity", "id": identity["id"], "url": identity["url"] },
                "data": [
                    { "operation": "set", "property": "presence.status", "value": presence.status },
                    { "operation": "set", "property": "presence.last_seen_at",
                      "value": presence.last_seen_at.map(Timestamp::to_iso) },
                ],
            }));
        }
        Ok(json!({ "changes": changes }))
    }

    /// Relays a typing indicator to the other participants' sockets (never stored) and keeps
    /// it running for expiry (`Typists`). Only participants may signal.
    async fn signal(&mut self, body: Value) -> ApiResult<()> {
        if body.get("type").and_then(Value::as_str) != Some("typing_indicator") {
            return Err(ApiError::invalid_request("Unknown signal type."));
        }
        let action = body
            .pointer("/data/action")
            .and_then(Value::as_str)
            .filter(|a| matches!(*a, "started" | "paused" | "finished"))
            .ok_or_else(|| ApiError::invalid_property("action", "Unknown typing action."))?;
        let object = body
            .pointer("/object/id")
            .and_then(Value::as_str)
            .unwrap_or("");
        let conversation_id = crate::service::object_id("object.id", "conversations", object)?;
        let participants = self.participants(conversation_id).await?;
        let others: Vec<String> = participants
            .into_iter()
            .filter(|p| p != self.user())
            .collect();
        let sender = self.sender().await?;
        let view = crate::api::bare_view(&self.state, &self.actor, self.socket.version);
        let object = json!({
            "type": "Conversation",
            "id": crate::render::conversation_uri(conversation_id),
            "url": view.conversation_url(conversation_id),
        });
        let action = match action {
            "started" => "started",
            "paused" => "paused",
            _ => "finished",
        };
        let typing = Typing {
            action,
            heard: Instant::now(),
            others,
            object,
            sender,
        };
        let notice = typing_notice(self.socket.app_id, &typing, action);
        // Tracked first: if the socket goes while this is published, it is still finished.
        self.typing.heard(conversation_id, typing);
        self.state.realtime.fanout.publish(notice).await;
        Ok(())
    }

    /// The participants of a conversation this user takes part in (cached briefly).
    async fn participants(&mut self, conversation_id: Uuid) -> ApiResult<Vec<String>> {
        if let Some((checked, participants)) = self.memberships.get(&conversation_id) {
            if checked.elapsed() < MEMBERSHIP_TTL {
                return Ok(participants.clone());
            }
        }
        let view = crate::service::conversations::user_conversation(
            &self.state.store,
            self.socket.app_id,
            self.user(),
            conversation_id,
        )
        .await?;
        if !view.membership.is_participant || view.conversation.deleted_at.is_some() {
            return Err(crate::service::access_denied(
                "Only participants may signal in a conversation.",
            ));
        }
        if self.memberships.len() >= MEMBERSHIP_CACHE {
            self.memberships.clear();
        }
        let participants = view.conversation.participants;
        self.memberships
            .insert(conversation_id, (Instant::now(), participants.clone()));
        Ok(participants)
    }

    /// This user as signals name them: the user id (1.x) and a BasicIdentity (2.0+).
    async fn sender(&mut self) -> ApiResult<(Value, Value)> {
        if let Some(sender) = &self.sender {
            return Ok(sender.clone());
        }
        let user = self.user().to_owned();
        let view = crate::api::view_for(
            &self.state,
            &self.actor,
            crate::version::ApiVersion::V3_0,
            vec![user.clone()],
        )
        .await?;
        let sender = (Value::String(user.clone()), view.basic_identity(&user));
        self.sender = Some(sender.clone());
        Ok(sender)
    }
}
