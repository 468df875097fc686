//! The WebSocket API through the real wire: upgrade and refusals, counters and timestamps, every
//! request method, typing relay, sockets closed on logout, overflow and shutdown.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use layer_server::store::Timestamp;
use reqwest::Method;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::common::{expect_error, identity_id, json, TestServer};

type Stream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const WAIT: Duration = Duration::from_secs(10);

/// A test client: checks that every packet continues the counter, keeps what it skipped.
pub(crate) struct Ws {
    stream: Stream,
    /// Change, operation and signal packets read while waiting for a response.
    pub(crate) stash: std::collections::VecDeque<Value>,
    next_counter: u64,
    next_request: u32,
    protocol: String,
}

fn ws_url(server: &TestServer, path_and_query: &str) -> String {
    format!("{}{path_and_query}", server.base.replacen("http", "ws", 1))
}

pub(crate) async fn open(server: &TestServer, token: &str, protocol: &str) -> Ws {
    let url = ws_url(
        server,
        &format!("/websocket/?session_token={token}&client-id=tab1&layer-xdk-version=4.0.6"),
    );
    open_request(url, protocol, None).await
}

/// `open`, through a receive buffer of 4 KiB: a test that reads nothing for a while makes the
/// server's writes wait (the kernel would otherwise take megabytes).
pub(crate) async fn open_unread(server: &TestServer, token: &str, protocol: &str) -> Ws {
    let url = ws_url(server, &format!("/websocket/?session_token={token}"));
    let (stream, echoed) = small_buffer_stream(server, url, protocol).await;
    Ws::new(stream, echoed)
}

/// A WebSocket through a TCP socket with a 4 KiB receive buffer; the subprotocol echoed.
async fn small_buffer_stream(server: &TestServer, url: String, protocol: &str) -> (Stream, String) {
    let tcp = tokio::net::TcpSocket::new_v4().unwrap();
    tcp.set_recv_buffer_size(4096).unwrap();
    let stream = tcp
        .connect(server.base.trim_start_matches("http://").parse().unwrap())
        .await
        .unwrap();
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", protocol.parse().unwrap());
    let (stream, response) =
        tokio_tungstenite::client_async(request, tokio_tungstenite::MaybeTlsStream::Plain(stream))
            .await
            .unwrap();
    let echoed = response.headers()["sec-websocket-protocol"]
        .to_str()
        .unwrap()
        .to_owned();
    (stream, echoed)
}

async fn open_request(url: String, protocol: &str, authorization: Option<&str>) -> Ws {
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", protocol.parse().unwrap());
    if let Some(value) = authorization {
        request
            .headers_mut()
            .insert("authorization", value.parse().unwrap());
    }
    let (stream, response) = tokio_tungstenite::connect_async(request)
        .await
        .expect("upgrade");
    let echoed = response.headers()["sec-websocket-protocol"]
        .to_str()
        .unwrap()
        .to_owned();
    Ws::new(stream, echoed)
}

impl Ws {
    /// A client on an upgraded stream, with the subprotocol the server echoed.
    fn new(stream: Stream, protocol: String) -> Ws {
        Ws {
            stream,
            stash: Default::default(),
            next_counter: 0,
            next_request: 1,
            protocol,
        }
    }

    pub(crate) async fn send(&mut self, packet: Value) {
        self.stream
            .send(Message::text(packet.to_string()))
            .await
            .unwrap();
    }

    /// The next packet; asserts counter (previous + 1) and a millisecond UTC timestamp.
    pub(crate) async fn packet(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(WAIT, self.stream.next())
                .await
                .expect("a packet within the wait")
                .expect("socket open")
                .expect("frame");
            let Message::Text(text) = message else {
                continue;
            };
            let packet: Value = serde_json::from_str(text.as_str()).unwrap();
            assert_eq!(packet["counter"], self.next_counter, "{packet}");
            self.next_counter += 1;
            let ts = packet["timestamp"].as_str().unwrap();
            assert!(
                Timestamp::parse_iso(ts).is_some() && ts.len() == 24 && ts.ends_with('Z'),
                "{ts}"
            );
            return packet;
        }
    }

    /// Sends a request and returns its response body (the next packet must be it).
    pub(crate) async fn request(
        &mut self,
        method: &str,
        object_id: Option<&str>,
        data: Value,
    ) -> Value {
        let request_id = format!("r{}", self.next_request);
        self.next_request += 1;
        let mut body = json!({ "method": method, "request_id": request_id, "data": data });
        if let Some(id) = object_id {
            body["object_id"] = json!(id);
        }
        self.send(json!({ "type": "request", "body": body })).await;
        let packet = loop {
            let packet = self.packet().await;
            if packet["type"] == "response" {
                break packet;
            }
            self.stash.push_back(packet);
        };
        assert_eq!(packet["body"]["request_id"], request_id.as_str());
        assert_eq!(packet["body"]["method"], method);
        packet["body"].clone()
    }

    pub(crate) async fn ok(&mut self, method: &str, object_id: Option<&str>, data: Value) -> Value {
        let body = self.request(method, object_id, data).await;
        assert_eq!(body["success"], true, "{body}");
        body["data"].clone()
    }

    /// A failed request's Layer error object, with the expected id.
    pub(crate) async fn fails(
        &mut self,
        method: &str,
        object_id: Option<&str>,
        data: Value,
        id: &str,
    ) -> Value {
        let body = self.request(method, object_id, data).await;
        assert_eq!(body["success"], false, "{body}");
        let error = &body["data"];
        assert_eq!(error["id"], id, "{body}");
        assert!(
            error["code"].is_number() && error["message"].is_string() && error["url"].is_string()
        );
        error.clone()
    }

    /// Proves that nothing else was queued for this socket: a Counter.read answered next.
    pub(crate) async fn nothing_pending(&mut self) {
        assert!(self.stash.is_empty(), "unread packets: {:?}", self.stash);
        let before = self.next_counter;
        let data = self.ok("Counter.read", None, Value::Null).await;
        assert!(self.stash.is_empty(), "unread packets: {:?}", self.stash);
        assert_eq!(data["counter"], before as i64 - 1);
    }

    /// The next packet that is not a response (read earlier while waiting for one, or now).
    pub(crate) async fn push_packet(&mut self) -> Value {
        if let Some(packet) = self.stash.pop_front() {
            return packet;
        }
        let packet = self.packet().await;
        assert_ne!(packet["type"], "response", "{packet}");
        packet
    }

    /// The next change packet: asserts its operation and object type; returns the packet.
    pub(crate) async fn change(&mut self, operation: &str, kind: &str) -> Value {
        let packet = self.push_packet().await;
        assert_eq!(packet["type"], "change", "{packet}");
        assert_eq!(packet["body"]["operation"], operation, "{packet}");
        assert_eq!(packet["body"]["object"]["type"], kind, "{packet}");
        packet
    }

    /// A Message create and the Conversation update that follows it (the receiving user's
    /// `last_message`, `unread_message_count` and `total_message_count`); the create packet.
    pub(crate) async fn message(&mut self) -> Value {
        let packet = self.change("create", "Message").await;
        let update = self.conversation_counts().await;
        assert_eq!(
            update["body"]["object"]["id"], packet["body"]["data"]["conversation"]["id"],
            "{update}"
        );
        packet
    }

    /// The Conversation update refreshing the per-user counts; the packet.
    pub(crate) async fn conversation_counts(&mut self) -> Value {
        let update = self.push_packet().await;
        assert_eq!(update["type"], "change", "{update}");
        assert!(
            matches!(
                update["body"]["operation"].as_str(),
                Some("update" | "patch")
            ),
            "{update}"
        );
        assert_eq!(update["body"]["object"]["type"], "Conversation", "{update}");
        let ops = update["body"]["data"].as_array().unwrap();
        let properties: Vec<&str> = ops
            .iter()
            .map(|op| op["property"].as_str().unwrap())
            .collect();
        assert_eq!(
            properties,
            [
                "last_message",
                "unread_message_count",
                "total_message_count"
            ],
            "{update}"
        );
        update
    }

    /// Closes from the client side.
    pub(crate) async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }

    /// Reads until the server closes; the close code.
    pub(crate) async fn closed(&mut self) -> Option<CloseCode> {
        loop {
            match tokio::time::timeout(WAIT, self.stream.next())
                .await
                .expect("closed within the wait")
            {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| f.code),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }
}

pub(crate) fn conversation_id() -> String {
    format!("layer:///conversations/{}", Uuid::new_v4())
}

fn distinct_create(participants: &[&str], metadata: Value, id: &str) -> Value {
    json!({
        "participants": participants.iter().map(|u| identity_id(u)).collect::<Vec<_>>(),
        "distinct": true,
        "metadata": metadata,
        "id": id,
    })
}

#[tokio::test]
async fn upgrade_echoes_each_subprotocol_and_counts_every_packet_from_zero() {
    let server = TestServer::start().await;
    let token = server.session_for("alice").await;
    for protocol in ["layer-1.0", "layer-2.0", "layer-3.0"] {
        let mut ws = open(&server, &token, protocol).await;
        assert_eq!(ws.protocol, protocol);
        let first = ws.ok("Counter.read", None, Value::Null).await;
        assert_eq!(
            first["counter"], -1,
            "nothing was sent before the first packet"
        );
        let second = ws.ok("Counter.read", None, Value::Null).await;
        assert_eq!(second["counter"], 0);
        ws.ok("Presence.subscribe", None, Value::Null).await;
        ws.nothing_pending().await;
    }
    // Without the slash, with the token in the Authorization header, several offered protocols.
    let mut ws = open_request(
        ws_url(&server, "/websocket"),
        "layer-2.0, layer-3.0",
        Some(&format!("Layer session-token=\"{token}\"")),
    )
    .await;
    assert_eq!(ws.protocol, "layer-2.0");
    ws.nothing_pending().await;
}

/// A WebSocket upgrade request through plain HTTP, to read refusals' bodies.
async fn raw_upgrade(
    server: &TestServer,
    query: &str,
    protocol: Option<&str>,
) -> reqwest::Response {
    let mut request = server
        .raw(Method::GET, &format!("/websocket/{query}"))
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
    if let Some(protocol) = protocol {
        request = request.header("sec-websocket-protocol", protocol);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn refuses_missing_and_dead_sessions_with_a_challenge_and_unknown_subprotocols() {
    let server = TestServer::start().await;
    for query in ["", "?session_token=not-a-session"] {
        let response = raw_upgrade(&server, query, Some("layer-3.0")).await;
        let body = expect_error(response, 401, "authentication_required").await;
        assert!(
            body["data"]["nonce"]
                .as_str()
                .is_some_and(|n| !n.is_empty()),
            "{body}"
        );
    }
    let token = server.session_for("alice").await;
    let query = format!("?session_token={token}");
    for protocol in [None, Some("layer-4.0"), Some("chat")] {
        let response = raw_upgrade(&server, &query, protocol).await;
        expect_error(response, 406, "invalid_header").await;
    }
    let response = raw_upgrade(&server, &query, Some("layer-3.0")).await;
    assert_eq!(response.status(), 101);
}

#[tokio::test]
async fn conversation_create_is_created_found_conflicting_and_retryable() {
    let server = TestServer::start().await;
    let token = server.session_for("alice").await;
    let mut ws = open(&server, &token, "layer-3.0").await;

    let id = conversation_id();
    let created = ws
        .ok(
            "Conversation.create",
            None,
            distinct_create(&["alice", "bob"], Value::Null, &id),
        )
        .await;
    assert_eq!(created["id"], id.as_str(), "Created keeps the client's id");
    assert_eq!(created["participants"][1]["id"], identity_id("bob"));
    assert!(created["url"].as_str().unwrap().starts_with(&server.base));

    // Found: the existing distinct conversation, for null or equal metadata.
    let found = ws
        .ok(
            "Conversation.create",
            None,
            distinct_create(&["bob", "alice"], Value::Null, &conversation_id()),
        )
        .await;
    assert_eq!(found["id"], id.as_str());

    // FoundMismatch: conflict carrying the existing conversation.
    let conflict = ws
        .fails(
            "Conversation.create",
            None,
            distinct_create(
                &["alice", "bob"],
                json!({"title": "other"}),
                &conversation_id(),
            ),
            "conflict",
        )
        .await;
    assert_eq!(conflict["data"]["id"], id.as_str());

    // A retried create of a non-distinct conversation: id_in_use with the object.
    let plain = conversation_id();
    let body = json!({"participants": [identity_id("carol")], "distinct": false, "metadata": null, "id": plain});
    let first = ws.ok("Conversation.create", None, body.clone()).await;
    assert_eq!(first["id"], plain.as_str());
    let retry = ws.request("Conversation.create", None, body).await;
    if retry["success"] == true {
        assert_eq!(retry["data"]["id"], plain.as_str());
    } else {
        assert_eq!(retry["data"]["id"], "id_in_use", "{retry}");
        assert_eq!(retry["data"]["data"]["id"], plain.as_str());
    }

    ws.fails(
        "Conversation.create",
        None,
        json!({"distinct": true}),
        "missing_property",
    )
    .await;
    ws.fails(
        "Conversation.create",
        None,
        json!("garbage"),
        "invalid_request",
    )
    .await;
    // Its own creates reach the creator's socket too (found and conflicting ones do not).
    let first = ws.change("create", "Conversation").await;
    assert_eq!(first["body"]["object"]["id"], id.as_str());
    assert_eq!(first["body"]["data"]["id"], id.as_str());
    let second = ws.change("create", "Conversation").await;
    assert_eq!(second["body"]["data"]["id"], plain.as_str());
    ws.nothing_pending().await;
}

#[tokio::test]
async fn message_create_keeps_client_ids_and_answers_retries_with_id_in_use() {
    let server = TestServer::start().await;
    let alice = server.session_for("alice").await;
    let carol = server.session_for("carol").await;
    let mut ws = open(&server, &alice, "layer-3.0").await;
    let conversation = conversation_id();
    ws.ok(
        "Conversation.create",
        None,
        distinct_create(&["alice", "bob"], Value::Null, &conversation),
    )
    .await;

    let message_uuid = Uuid::new_v4();
    let message_id = format!("layer:///messages/{message_uuid}");
    let part_id = format!("{message_id}/parts/{}", Uuid::new_v4());
    let data = json!({
        "id": message_id,
        "parts": [
            {"id": part_id, "mime_type": "text/plain", "body": "hello"},
            {"mime_type": "application/json", "body": "{}"},
        ],
        "notification": {"text": "hello", "sound": "chime.aiff"},
    });
    let sent = ws
        .ok("Message.create", Some(&conversation), data.clone())
        .await;
    assert_eq!(sent["id"], message_id.as_str());
    assert_eq!(sent["conversation"]["id"], conversation.as_str());
    assert_eq!(sent["parts"][0]["id"], part_id.as_str());
    assert_eq!(sent["parts"][1]["body"], "{}");
    assert_eq!(sent["sender"]["id"], identity_id("alice"));

    let retry = ws
        .fails(
            "Message.create",
            Some(&conversation),
            data.clone(),
            "id_in_use",
        )
        .await;
    assert_eq!(retry["data"]["id"], message_id.as_str());

    // The server has it, as REST shows.
    let response = server
        .client(Method::GET, &format!("/messages/{message_uuid}"))
        .header("authorization", format!("Layer session-token=\"{alice}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(json(response).await["parts"][0]["body"], "hello");

    // A non-participant retrying the id learns nothing; sending there is refused.
    let mut outsider = open(&server, &carol, "layer-2.0").await;
    let error = outsider
        .fails("Message.create", Some(&conversation), data, "not_found")
        .await;
    assert!(
        error.get("data").is_none_or(|d| d.get("id").is_none()),
        "{error}"
    );

    ws.fails(
        "Message.create",
        None,
        json!({"parts": []}),
        "missing_property",
    )
    .await;
    ws.fails(
        "Message.create",
        Some(&conversation_id()),
        json!({"parts": [{"mime_type": "text/plain", "body": "x"}]}),
        "not_found",
    )
    .await;
    ws.fails(
        "Message.create",
        Some(&conversation),
        json!({"parts": []}),
        "missing_property",
    )
    .await;
    ws.change("create", "Conversation").await;
    let created = ws.change("create", "Message").await;
    assert_eq!(created["body"]["data"]["id"], message_id.as_str());
    // The sender's conversation: this message is last, nothing unread, one message.
    let counts = ws.conversation_counts().await;
    assert_eq!(counts["body"]["object"]["id"], conversation.as_str());
    let ops = &counts["body"]["data"];
    assert_eq!(ops[0]["id"], message_id.as_str());
    assert_eq!(ops[0]["value"]["id"], message_id.as_str());
    assert_eq!(ops[0]["value"]["conversation"]["id"], conversation.as_str());
    assert_eq!(ops[1]["value"], 0);
    assert_eq!(ops[2]["value"], 1);
    ws.nothing_pending().await;
    outsider.nothing_pending().await;
}

fn presence_of(changes: &Value, user: &str) -> Option<(Value, Value)> {
    changes.as_array().unwrap().iter().find_map(|change| {
        (change["object"]["id"] == identity_id(user)).then(|| {
            assert_eq!(change["operation"], "update");
            assert_eq!(change["object"]["type"], "Identity");
            let data = change["data"].as_array().unwrap();
            assert_eq!(data[0]["property"], "presence.status");
            assert_eq!(data[1]["property"], "presence.last_seen_at");
            (data[0]["value"].clone(), data[1]["value"].clone())
        })
    })
}

#[tokio::test]
async fn presence_update_and_sync_report_statuses_the_user_may_see() {
    let server = TestServer::start().await;
    let alice = server.session_for("alice").await;
    let bob = server.session_for("bob").await;
    // alice and bob share a conversation (so follow each other); carol is a stranger.
    server.conversation_of(&["alice", "bob"]).await;
    let mut a = open(&server, &alice, "layer-3.0").await;
    let mut b = open(&server, &bob, "layer-2.0").await;
    let since = Timestamp::now().to_iso();

    a.ok("Presence.subscribe", None, Value::Null).await;
    a.ok(
        "Presence.update",
        None,
        json!([{"operation": "set", "property": "status", "value": "auto"}]),
    )
    .await;
    b.ok(
        "Presence.update",
        None,
        json!([{"operation": "set", "property": "status", "value": "busy"}]),
    )
    .await;
    a.fails(
        "Presence.update",
        None,
        json!([{"operation": "set", "property": "status", "value": "asleep"}]),
        "invalid_property",
    )
    .await;
    a.fails(
        "Presence.update",
        None,
        json!({"status": "away"}),
        "invalid_request",
    )
    .await;

    let ids = json!({"ids": [identity_id("alice"), identity_id("bob"), identity_id("carol")]});
    let changes = a.ok("Presence.sync", None, ids.clone()).await["changes"].clone();
    let (status, seen) = presence_of(&changes, "alice").expect("own presence");
    assert_eq!(status, "available", "auto is available while connected");
    assert!(Timestamp::parse_iso(seen.as_str().unwrap()).is_some());
    assert_eq!(presence_of(&changes, "bob").unwrap().0, "busy");
    assert!(
        presence_of(&changes, "carol").is_none(),
        "not followed: {changes}"
    );

    let changes = a.ok("Presence.sync", None, json!({"since": since})).await["changes"].clone();
    assert_eq!(presence_of(&changes, "bob").unwrap().0, "busy");

    // alice subscribed and follows bob: his status was pushed to her as an Identity update.
    let pushed = a.change("update", "Identity").await;
    let (status, seen) = presence_of(&json!([pushed["body"]]), "bob").unwrap();
    assert_eq!((status.as_str(), seen.is_string()), (Some("busy"), true));

    // bob disconnects: offline, last seen kept, pushed to alice and reported by sync.
    drop(b);
    let pushed = a.change("update", "Identity").await;
    let (status, seen) = presence_of(&json!([pushed["body"]]), "bob").unwrap();
    assert_eq!((status.as_str(), seen.is_string()), (Some("offline"), true));
    let changes = a.ok("Presence.sync", None, ids.clone()).await["changes"].clone();
    assert_eq!(presence_of(&changes, "bob").unwrap(), (status, seen));
    a.fails("Presence.sync", None, json!({}), "missing_property")
        .await;
    a.nothing_pending().await;
}

#[tokio::test]
async fn typing_indicators_reach_the_other_participants_only() {
    let server = TestServer::start().await;
    let conversation = server.conversation_of(&["alice", "bob"]).await;
    let mut alice = open(&server, &server.session_for("alice").await, "layer-3.0").await;
    let mut bob = open(&server, &server.session_for("bob").await, "layer-2.0").await;
    let mut bob_v1 = open(&server, &server.session_for("bob").await, "layer-1.0").await;
    let mut carol = open(&server, &server.session_for("carol").await, "layer-3.0").await;
    let object = json!({"id": format!("layer:///conversations/{conversation}")});
    let signal = |action: &str| json!({"type": "signal", "body": {"type": "typing_indicator", "object": object, "data": {"action": action}}});

    alice.send(signal("started")).await;
    let packet = bob.packet().await;
    assert_eq!(packet["type"], "signal", "{packet}");
    assert_eq!(packet["body"]["type"], "typing_indicator");
    assert_eq!(packet["body"]["object"]["id"], object["id"]);
    assert_eq!(packet["body"]["data"]["action"], "started");
    assert_eq!(packet["body"]["data"]["sender"]["id"], identity_id("alice"));
    assert_eq!(packet["body"]["data"]["sender"]["user_id"], "alice");
    let packet = bob_v1.packet().await;
    assert_eq!(packet["body"]["data"]["user_id"], "alice");

    // Not to the sender, not to strangers; a stranger's signal reaches nobody.
    carol.send(signal("started")).await;
    alice.send(signal("finished")).await;
    assert_eq!(bob.packet().await["body"]["data"]["action"], "finished");
    alice.nothing_pending().await;
    carol.nothing_pending().await;
    bob.nothing_pending().await;
}

fn typing_signal(conversation: &str, action: &str) -> Value {
    json!({"type": "signal", "body": {"type": "typing_indicator",
        "object": {"id": format!("layer:///conversations/{conversation}")},
        "data": {"action": action}}})
}

/// The next packet: a typing indicator about `conversation`, by alice; its action.
async fn typing_action(ws: &mut Ws, conversation: &str) -> String {
    let packet = ws.packet().await;
    assert_eq!(packet["type"], "signal", "{packet}");
    assert_eq!(
        packet["body"]["object"]["id"],
        format!("layer:///conversations/{conversation}"),
        "{packet}"
    );
    assert_eq!(packet["body"]["data"]["sender"]["user_id"], "alice");
    packet["body"]["data"]["action"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn typing_indicators_expire_when_updates_stop_and_finish_when_the_socket_closes() {
    let paused_after = Duration::from_millis(300);
    let finished_after = Duration::from_millis(900);
    let server = TestServer::start_with(&[
        ("LAYER__WEBSOCKET__TYPING_PAUSED_AFTER_MS", "300"),
        ("LAYER__WEBSOCKET__TYPING_FINISHED_AFTER_MS", "900"),
    ])
    .await;
    let one = server.conversation_of(&["alice", "bob"]).await;
    let two = server.conversation_of(&["alice", "bob"]).await;
    let mut alice = open(&server, &server.session_for("alice").await, "layer-3.0").await;
    let mut bob = open(&server, &server.session_for("bob").await, "layer-2.0").await;

    // Finished by the typist in one: nothing more about it. Started and abandoned in two:
    // paused, then finished, each no earlier than its timeout.
    alice.send(typing_signal(&one, "started")).await;
    assert_eq!(typing_action(&mut bob, &one).await, "started");
    alice.send(typing_signal(&one, "finished")).await;
    assert_eq!(typing_action(&mut bob, &one).await, "finished");
    let sent = std::time::Instant::now();
    alice.send(typing_signal(&two, "started")).await;
    assert_eq!(typing_action(&mut bob, &two).await, "started");
    assert_eq!(typing_action(&mut bob, &two).await, "paused");
    assert!(sent.elapsed() >= paused_after, "{:?}", sent.elapsed());
    assert_eq!(typing_action(&mut bob, &two).await, "finished");
    assert!(sent.elapsed() >= finished_after, "{:?}", sent.elapsed());

    // A typist who paused is finished after the longer timeout, without a second paused.
    let sent = std::time::Instant::now();
    alice.send(typing_signal(&one, "paused")).await;
    assert_eq!(typing_action(&mut bob, &one).await, "paused");
    assert_eq!(typing_action(&mut bob, &one).await, "finished");
    assert!(sent.elapsed() >= finished_after, "{:?}", sent.elapsed());
    bob.nothing_pending().await;
    alice.nothing_pending().await;

    // The typist's socket closes mid-sentence: finished at once (long timeouts here).
    let server = TestServer::start_with(&[
        ("LAYER__WEBSOCKET__TYPING_PAUSED_AFTER_MS", "600000"),
        ("LAYER__WEBSOCKET__TYPING_FINISHED_AFTER_MS", "600000"),
    ])
    .await;
    let one = server.conversation_of(&["alice", "bob"]).await;
    let two = server.conversation_of(&["alice", "bob"]).await;
    let mut alice = open(&server, &server.session_for("alice").await, "layer-3.0").await;
    let mut bob = open(&server, &server.session_for("bob").await, "layer-3.0").await;
    alice.send(typing_signal(&one, "started")).await;
    alice.send(typing_signal(&two, "paused")).await;
    assert_eq!(typing_action(&mut bob, &one).await, "started");
    assert_eq!(typing_action(&mut bob, &two).await, "paused");
    alice.close().await;
    let mut finished = Vec::new();
    for _ in 0..2 {
        let packet = bob.packet().await;
        assert_eq!(packet["body"]["data"]["action"], "finished", "{packet}");
        finished.push(packet["body"]["object"]["id"].as_str().unwrap().to_owned());
    }
    finished.sort();
    let mut expected = vec![
        format!("layer:///conversations/{one}"),
        format!("layer:///conversations/{two}"),
    ];
    expected.sort();
    assert_eq!(finished, expected);
    bob.nothing_pending().await;
}

#[tokio::test]
async fn malformed_packets_and_unknown_methods_are_answered_without_closing() {
    let server = TestServer::start().await;
    let mut ws = open(&server, &server.session_for("alice").await, "layer-3.0").await;
    ws.stream.send(Message::text("not json")).await.unwrap();
    ws.stream
        .send(Message::binary(vec![1, 2, 3]))
        .await
        .unwrap();
    ws.send(json!({"type": "request", "body": {"method": "Counter.read"}}))
        .await;
    ws.send(json!({"type": "request", "body": {"request_id": "bad1"}}))
        .await;
    let packet = ws.packet().await;
    assert_eq!(packet["body"]["request_id"], "bad1");
    assert_eq!(packet["body"]["success"], false);
    assert_eq!(packet["body"]["data"]["id"], "invalid_request");

    let error = ws
        .fails(
            "Conversation.teleport",
            None,
            Value::Null,
            "invalid_request",
        )
        .await;
    assert_eq!(error["data"]["method"], "Conversation.teleport");
    ws.fails(
        "Conversation.mark_all_read",
        None,
        Value::Null,
        "invalid_request",
    )
    .await;
    ws.fails(
        "Event.replay",
        None,
        json!({"from_timestamp": "yesterday"}),
        "invalid_property",
    )
    .await;
    ws.fails("Event.replay", None, json!({}), "missing_property")
        .await;
    ws.ok(
        "Event.replay",
        None,
        json!({"from_timestamp": Timestamp::now().to_iso()}),
    )
    .await;
    ws.nothing_pending().await;
}

#[tokio::test]
async fn ending_sessions_closes_their_sockets() {
    let server = TestServer::start().await;
    let token = server.session_for("alice").await;
    let mut logged_out = open(&server, &token, "layer-3.0").await;
    let mut other_session = open(&server, &server.session_for("alice").await, "layer-3.0").await;
    let response = server
        .client(Method::DELETE, &format!("/sessions/{token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(logged_out.closed().await, Some(CloseCode::Library(4001)));
    other_session.nothing_pending().await;
    let response = raw_upgrade(
        &server,
        &format!("?session_token={token}"),
        Some("layer-3.0"),
    )
    .await;
    expect_error(response, 401, "authentication_required").await;

    // The Platform API ends every session of a user.
    let response = server
        .platform(Method::DELETE, "/users/alice/sessions")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(other_session.closed().await, Some(CloseCode::Library(4001)));
}

#[tokio::test]
async fn shutdown_closes_sockets_with_going_away() {
    let server = TestServer::start().await;
    let mut ws = open(&server, &server.session_for("alice").await, "layer-3.0").await;
    ws.nothing_pending().await;
    let stopping = tokio::spawn(server.stop());
    assert_eq!(ws.closed().await, Some(CloseCode::Away));
    stopping.await.unwrap();
}

async fn overflow_closes(server: &TestServer) -> f64 {
    let text = server
        .raw(Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with("layer_websocket_closes_total") && l.contains("overflow"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn a_slow_consumer_overflows_and_only_its_socket_closes() {
    let server = TestServer::start_with(&[("LAYER__WEBSOCKET__OUTBOUND_QUEUE", "4")]).await;
    let conversation = server.conversation_of(&["alice", "bob"]).await;
    let mut alice = open(&server, &server.session_for("alice").await, "layer-3.0").await;
    // bob reads nothing, through a tiny receive buffer.
    let bob_token = server.session_for("bob").await;
    let url = ws_url(&server, &format!("/websocket/?session_token={bob_token}"));
    let (mut bob, _) = small_buffer_stream(&server, url, "layer-3.0").await;

    let before = overflow_closes(&server).await;
    let signal = json!({"type": "signal", "body": {"type": "typing_indicator",
        "object": {"id": format!("layer:///conversations/{conversation}")}, "data": {"action": "started"}}});
    let mut overflowed = false;
    for _ in 0..200 {
        for _ in 0..500 {
            alice
                .stream
                .feed(Message::text(signal.to_string()))
                .await
                .unwrap();
        }
        alice.stream.flush().await.unwrap();
        // Every signal sent so far has been handled once this is answered.
        alice.nothing_pending().await;
        if overflow_closes(&server).await > before {
            overflowed = true;
            break;
        }
    }
    assert!(overflowed, "bob's socket never overflowed");
    alice.nothing_pending().await;
    // bob finds the end of the stream after what was written before the close.
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match bob.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| f.code),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    })
    .await
    .expect("bob's socket ends");
    assert!(matches!(ended, None | Some(CloseCode::Again)), "{ended:?}");
}

#[tokio::test]
async fn channel_create_and_channel_messages_over_the_websocket() {
    let server = TestServer::start().await;
    let alice = server.session_for("alice").await;
    let bob = server.session_for("bob").await;
    let mut ws = open(&server, &alice, "layer-2.0").await;
    let channel = format!("layer:///channels/{}", Uuid::new_v4());
    let data = json!({
        "id": channel,
        "name": "general",
        "metadata": null,
        "members": [identity_id("alice"), identity_id("bob")],
    });
    let created = ws.ok("Channel.create", None, data.clone()).await;
    assert_eq!(created["id"], channel.as_str());
    assert_eq!(created["name"], "general");
    assert_eq!(created["metadata"], json!({}));

    // The name is taken: conflict carrying the existing channel (the SDK adopts it).
    let mut other = open(&server, &bob, "layer-2.0").await;
    let clash = json!({"id": format!("layer:///channels/{}", Uuid::new_v4()), "name": "general", "metadata": null, "members": [identity_id("bob")]});
    let error = other.fails("Channel.create", None, clash, "conflict").await;
    assert_eq!(error["data"]["id"], channel.as_str());

    // A message into the channel, with the client's id, visible over REST as a channel message.
    let message = format!("layer:///messages/{}", Uuid::new_v4());
    let sent = ws
        .ok(
            "Message.create",
            Some(&channel),
            json!({"id": message, "parts": [{"mime_type": "text/plain", "body": "hi all"}]}),
        )
        .await;
    assert_eq!(sent["id"], message.as_str());
    assert_eq!(sent["channel"]["id"], channel.as_str());
    let response = server
        .raw(
            Method::GET,
            &format!("/channels/{}/messages", channel.rsplit('/').next().unwrap()),
        )
        .header("accept", "application/vnd.layer+json; version=2.0")
        .header("authorization", format!("Layer session-token=\"{bob}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let listed = json(response).await;
    assert_eq!(listed[0]["id"], message.as_str());
    assert_eq!(listed[0]["parts"][0]["body"], "hi all");

    // Not on 1.0 (channels are 2.0+).
    let mut old = open(&server, &alice, "layer-1.0").await;
    let data =
        json!({"id": format!("layer:///channels/{}", Uuid::new_v4()), "name": "v1", "members": []});
    let body = old.request("Channel.create", None, data).await;
    assert_eq!(body["success"], false, "{body}");
}
