//! One task per socket: it owns the socket and is its only writer, so counters follow the order
//! packets are written in. Client packets go to a sequential request worker through a bounded
//! queue; everything for the client arrives through the bounded outbound queue.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::{interval_at, timeout, Instant, MissedTickBehavior};
use uuid::Uuid;

use super::hub::Close;
use super::packet::{self, Outbound, PacketType};
use crate::http::AppState;
use crate::store::Timestamp;
use crate::version::ApiVersion;

/// Who opened the socket.
pub struct Opened {
    pub app_id: Uuid,
    pub user_id: String,
    pub session_hash: String,
    pub version: ApiVersion,
    /// The user's change-log head when the upgrade was accepted: delivery starts after it.
    pub cursor: i64,
}

/// How long a close frame may take to leave when the peer does not read.
const CLOSE_WRITE_LIMIT: Duration = Duration::from_secs(1);

pub async fn run(mut ws: WebSocket, state: AppState, opened: Opened) {
    let limits = state.settings.websocket.clone();
    let hub = state.realtime.hub.clone();
    let first = !hub.is_connected(opened.app_id, &opened.user_id);
    let (registration, socket, mut ends) = hub.register(
        opened.app_id,
        &opened.user_id,
        opened.session_hash,
        opened.version,
        limits.outbound_queue,
    );
    if first {
        super::presence_changed(&state, opened.app_id, &opened.user_id).await;
    }
    let presence_state = state.clone();
    let (inbound, inbound_rx) = mpsc::channel(limits.inbound_queue);
    let (commands, commands_rx) = mpsc::channel(1);
    let delivery = tokio::spawn(super::delivery::run(
        state.clone(),
        socket.clone(),
        opened.cursor,
        commands_rx,
    ));
    let worker = tokio::spawn(super::requests::serve(
        state,
        socket.clone(),
        inbound_rx,
        commands,
    ));
    let period = Duration::from_secs(limits.ping_interval_secs);
    let mut ping = interval_at(Instant::now() + period, period);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut heard = true;
    let mut counter: u64 = 0;

    let close = loop {
        tokio::select! {
            biased;
            _ = ends.close.changed() => break *ends.close.borrow(),
            out = ends.queue.recv() => {
                let Some((out, queued_at)) = out else { break None };
                let frame = frame(out, counter, socket.version, queued_at);
                counter += 1;
                // A peer that does not read blocks this write; a close request must still win.
                tokio::select! {
                    written = ws.send(Message::Text(frame.into())) => if written.is_err() { break None },
                    _ = ends.close.changed() => break *ends.close.borrow(),
                }
            }
            received = ws.recv() => match received {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break None,
                Some(Ok(Message::Text(text))) => {
                    heard = true;
                    match packet::parse(text.as_str()) {
                        Some(packet) => if inbound.send(packet).await.is_err() { break None },
                        None => tracing::debug!("ignored a WebSocket frame without a request id"),
                    }
                }
                Some(Ok(_)) => heard = true,
            },
            _ = ping.tick() => {
                if !heard {
                    break Some(Close::DEAD_PEER);
                }
                heard = false;
                if ws.send(Message::Ping(Default::default())).await.is_err() {
                    break None;
                }
            }
        }
    };
    worker.abort();
    delivery.abort();
    if let Some(close) = close {
        metrics::counter!("layer_websocket_closes_total", "reason" => close.label()).increment(1);
        let frame = CloseFrame {
            code: close.code,
            reason: close.reason.into(),
        };
        let _ = timeout(CLOSE_WRITE_LIMIT, ws.send(Message::Close(Some(frame)))).await;
    }
    drop(registration);
    if !hub.is_connected(socket.app_id, &socket.user_id) {
        super::presence_changed(&presence_state, socket.app_id, &socket.user_id).await;
    }
}

/// Stamps the next counter and the time onto a queued packet: a change its own time, anything
/// else the time it was queued at (`Socket::push`).
fn frame(out: Outbound, counter: u64, version: ApiVersion, now: Timestamp) -> String {
    match out {
        Outbound::Packet { kind, body } => packet::envelope_at(kind, counter, &body, now),
        Outbound::Stamped { kind, body, at } => packet::envelope_at(kind, counter, &body, at),
        Outbound::Delivery { kind, bodies } => {
            packet::envelope_at(kind, counter, bodies.for_version(version), now)
        }
        Outbound::CounterRead { request_id } => {
            // The counter of the packet written before this one (-1: none yet).
            let previous = i64::try_from(counter).map_or(-1, |c| c - 1);
            let body = packet::response(
                &request_id,
                "Counter.read",
                Ok(json!({ "counter": previous })),
            );
            packet::envelope_at(PacketType::Response, counter, &body, now)
        }
    }
}
