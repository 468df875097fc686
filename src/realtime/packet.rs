//! The packets of the WebSocket API: the server's envelope `{type, counter, timestamp, body}`
//! (client-wire-protocol.md §4.2) and the client's requests and signals (§4.3).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::store::Timestamp;
use crate::version::ApiVersion;

/// The kinds of server → client packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PacketType {
    Change,
    Response,
    Signal,
    Operation,
}

/// A packet body in the two shapes users are rendered in: 1.x (bare user ids) and 2.0+
/// (BasicIdentity objects). Plain data, so that it can travel between nodes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bodies {
    pub legacy: Value,
    pub current: Value,
}

impl Bodies {
    pub fn for_version(&self, version: ApiVersion) -> &Value {
        if version.has_identities() {
            &self.current
        } else {
            &self.legacy
        }
    }
}

/// What waits in a socket's outbound queue. The writer stamps counter and timestamp when it
/// writes, so the order of the queue is the order of the counters.
#[derive(Debug, Clone)]
pub enum Outbound {
    Packet {
        kind: PacketType,
        body: Value,
    },
    Delivery {
        kind: PacketType,
        bodies: Bodies,
    },
    /// A change-log packet: it carries the change's time, live and replayed alike.
    Stamped {
        kind: PacketType,
        body: Value,
        at: Timestamp,
    },
    /// The answer to `Counter.read`: its data is the counter of the packet written before it.
    CounterRead {
        request_id: String,
    },
}

/// One server → client frame, stamped now.
pub fn envelope(kind: PacketType, counter: u64, body: &Value) -> String {
    envelope_at(kind, counter, body, Timestamp::now())
}

/// One server → client frame with the given timestamp.
pub fn envelope_at(kind: PacketType, counter: u64, body: &Value, at: Timestamp) -> String {
    json!({
        "type": kind,
        "counter": counter,
        "timestamp": at.to_iso(),
        "body": body,
    })
    .to_string()
}

/// The body of a `response` packet: data on success, Layer's error object on failure.
pub fn response(request_id: &str, method: &str, result: ApiResult<Value>) -> Value {
    let (success, data) = match result {
        Ok(data) => (true, data),
        Err(err) => (false, error_object(&err)),
    };
    json!({ "request_id": request_id, "method": method, "success": success, "data": data })
}

/// Layer's error object `{id, code, message, url, data?}`, as REST bodies carry it.
pub fn error_object(err: &ApiError) -> Value {
    serde_json::from_slice(&err.body()).unwrap_or(Value::Null)
}

/// A client request (`{type: "request", body: {method, request_id, object_id?, data?}}`).
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub request_id: String,
    /// Empty when the client sent none (answered with an error).
    pub method: String,
    pub object_id: Option<String>,
    pub data: Value,
}

/// What a client frame asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    Request(Request),
    /// A malformed packet that still names a request id: answered with this error.
    Invalid {
        request: Request,
        error: String,
    },
    /// `{type: "signal", body}` (typing indicators).
    Signal(Value),
}

/// Longest request id echoed back (Layer: `[a-zA-Z0-9.-]+`, underscores in the prose).
const MAX_REQUEST_ID_CHARS: usize = 256;

fn valid_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_CHARS
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// Reads a client frame. `None`: nothing to answer (not JSON, or no usable request id, which
/// Layer answered with silence too).
pub fn parse(text: &str) -> Option<Inbound> {
    let packet: Value = serde_json::from_str(text).ok()?;
    let body = packet.get("body").cloned().unwrap_or(Value::Null);
    let kind = packet.get("type").and_then(Value::as_str);
    if kind == Some("signal") {
        return Some(Inbound::Signal(body));
    }
    let request_id = body.get("request_id").and_then(Value::as_str)?;
    if !valid_request_id(request_id) {
        return None;
    }
    let method = body.get("method").and_then(Value::as_str).unwrap_or("");
    let request = Request {
        request_id: request_id.to_owned(),
        method: method.to_owned(),
        object_id: body
            .get("object_id")
            .and_then(Value::as_str)
            .map(str::to_owned),
        data: body.get("data").cloned().unwrap_or(Value::Null),
    };
    let error = match kind {
        Some("request") if method.is_empty() => "A request needs a method.".to_owned(),
        Some("request") => return Some(Inbound::Request(request)),
        Some(other) => format!("Clients send request and signal packets, not {other:?}."),
        None => "A packet needs a type.".to_owned(),
    };
    Some(Inbound::Invalid { request, error })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_requests_signals_and_refuses_the_rest() {
        let r = parse(r#"{"type":"request","body":{"method":"Counter.read","request_id":"r1"}}"#);
        assert!(
            matches!(r, Some(Inbound::Request(ref q)) if q.method == "Counter.read" && q.request_id == "r1")
        );
        assert!(matches!(
            parse(r#"{"type":"signal","body":{"type":"typing_indicator"}}"#),
            Some(Inbound::Signal(_))
        ));
        assert!(matches!(
            parse(r#"{"type":"request","body":{"request_id":"r2"}}"#),
            Some(Inbound::Invalid { .. })
        ));
        assert!(matches!(
            parse(r#"{"type":"response","body":{"request_id":"r3","method":"x"}}"#),
            Some(Inbound::Invalid { .. })
        ));
        for silent in [
            "not json",
            "[]",
            "{}",
            r#"{"type":"request","body":{"method":"Counter.read"}}"#,
            r#"{"type":"request","body":{"method":"x","request_id":"a b"}}"#,
            r#"{"type":"request","body":{"method":"x","request_id":7}}"#,
        ] {
            assert_eq!(parse(silent), None, "{silent}");
        }
    }

    #[test]
    fn envelopes_carry_counter_and_millisecond_timestamps() {
        let frame: Value =
            serde_json::from_str(&envelope(PacketType::Signal, 7, &json!({"a": 1}))).unwrap();
        assert_eq!(frame["type"], "signal");
        assert_eq!(frame["counter"], 7);
        let ts = frame["timestamp"].as_str().unwrap();
        assert!(Timestamp::parse_iso(ts).is_some() && ts.ends_with('Z') && ts.len() == 24);
    }
}
