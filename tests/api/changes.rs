//! The change log through the wire: fan-out of creates, updates and deletes to every device of
//! the users concerned (in each version's form), the mark_all_read operation, and
//! `Event.replay` (inclusive, original timestamps, before its response, gapless counters).

use std::time::Duration;

use layer_server::store::Timestamp;
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::common::{identity_id, json, TestServer};
use crate::websocket::{conversation_id, open};

/// A Client API request as the session's user.
fn as_user(
    server: &TestServer,
    token: &str,
    method: Method,
    path: &str,
) -> reqwest::RequestBuilder {
    server
        .client(method, path)
        .header("authorization", format!("Layer session-token=\"{token}\""))
}

/// `alice` sends a text message through the Client API; its id.
async fn send_as(server: &TestServer, token: &str, conversation: &str, text: &str) -> String {
    let response = as_user(
        server,
        token,
        Method::POST,
        &format!("/conversations/{conversation}/messages"),
    )
    .json(&json!({"parts": [{"mime_type": "text/plain", "body": text}]}))
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 201);
    json(response).await["id"].as_str().unwrap().to_owned()
}

async fn patch_as(server: &TestServer, token: &str, conversation: &str, ops: Value) {
    let response = as_user(
        server,
        token,
        Method::PATCH,
        &format!("/conversations/{conversation}"),
    )
    .header("content-type", "application/vnd.layer-patch+json")
    .body(ops.to_string())
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
}

async fn delete_as(server: &TestServer, token: &str, path: &str) {
    let response = as_user(server, token, Method::DELETE, path)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "{path}");
}

fn text_of(packet: &Value) -> &str {
    packet["body"]["data"]["parts"][0]["body"].as_str().unwrap()
}

#[tokio::test]
async fn messages_reach_every_device_of_every_participant() {
    let server = TestServer::start().await;
    let conversation = server.conversation_of(&["alice", "bob"]).await;
    let alice = server.session_for("alice").await;
    let mut alice_ws = open(&server, &alice, "layer-3.0").await;
    let mut alice_other = open(&server, &server.session_for("alice").await, "layer-2.0").await;
    let mut bob = open(&server, &server.session_for("bob").await, "layer-1.0").await;
    let mut carol = open(&server, &server.session_for("carol").await, "layer-3.0").await;

    // REST send by a user, then a WebSocket send, then a Platform API send.
    let first = send_as(&server, &alice, &conversation, "one").await;
    let id = format!("layer:///messages/{}", Uuid::new_v4());
    alice_ws
        .ok(
            "Message.create",
            Some(&format!("layer:///conversations/{conversation}")),
            json!({"id": id, "parts": [{"mime_type": "text/plain", "body": "two"}]}),
        )
        .await;
    server.send_text(&conversation, "three").await;

    for ws in [&mut alice_ws, &mut alice_other, &mut bob] {
        let packet = ws.message().await;
        assert_eq!(packet["body"]["object"]["id"], first.as_str());
        assert_eq!(
            packet["body"]["data"]["conversation"]["id"],
            format!("layer:///conversations/{conversation}")
        );
        assert_eq!(text_of(&packet), "one");
        let packet = ws.message().await;
        assert_eq!(packet["body"]["data"]["id"], id.as_str());
        assert_eq!(text_of(&ws.message().await), "three");
    }
    // Per version and per user: the 1.0 sender is a user id; bob has not read alice's message.
    let mut bob2 = open(&server, &server.session_for("bob").await, "layer-3.0").await;
    send_as(&server, &alice, &conversation, "four").await;
    let packet = bob2.message().await;
    assert_eq!(packet["body"]["data"]["sender"]["id"], identity_id("alice"));
    assert_eq!(packet["body"]["data"]["is_unread"], true);
    let packet = bob.message().await;
    assert_eq!(packet["body"]["data"]["sender"]["user_id"], "alice");
    assert_eq!(alice_ws.message().await["body"]["data"]["is_unread"], false);
    alice_other.message().await;
    for ws in [
        &mut alice_ws,
        &mut alice_other,
        &mut bob,
        &mut bob2,
        &mut carol,
    ] {
        ws.nothing_pending().await;
    }
}

#[tokio::test]
async fn receipts_and_mark_all_read_reach_the_participants() {
    let server = TestServer::start().await;
    let conversation = server.conversation_of(&["alice", "fred.flinstone"]).await;
    let alice = server.session_for("alice").await;
    let fred = server.session_for("fred.flinstone").await;
    let m1 = send_as(&server, &alice, &conversation, "one").await;
    let m2 = send_as(&server, &alice, &conversation, "two").await;
    let mut alice_v3 = open(&server, &alice, "layer-3.0").await;
    let mut alice_v1 = open(&server, &alice, "layer-1.0").await;
    let mut fred_ws = open(&server, &fred, "layer-2.0").await;

    let response = as_user(
        &server,
        &fred,
        Method::POST,
        &format!("/messages/{}/receipts", m1.rsplit('/').next().unwrap()),
    )
    .json(&json!({"type": "read"}))
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 204);

    let packet = alice_v3.change("update", "Message").await;
    assert_eq!(packet["body"]["object"]["id"], m1.as_str());
    assert_eq!(
        packet["body"]["data"],
        json!([{"operation": "set", "property": "recipient_status.layer:///identities/fred\\.flinstone", "value": "read"}])
    );
    let packet = alice_v1.change("patch", "Message").await;
    assert_eq!(
        packet["body"]["data"][0]["property"],
        "recipient_status.fred\\.flinstone"
    );
    // The reader: the receipt and their unread count.
    fred_ws.change("update", "Message").await;
    let packet = fred_ws.change("update", "Conversation").await;
    assert_eq!(
        packet["body"]["data"],
        json!([{"operation": "set", "property": "unread_message_count", "value": 1}])
    );

    // mark_all_read: an operation packet to every participant, the reader's count.
    let response = as_user(
        &server,
        &fred,
        Method::POST,
        &format!("/conversations/{conversation}/mark_all_read"),
    )
    .json(&json!({}))
    .send()
    .await
    .unwrap();
    assert!(response.status().is_success());
    for ws in [&mut alice_v3, &mut fred_ws] {
        let packet = ws.push_packet().await;
        assert_eq!(packet["type"], "operation", "{packet}");
        assert_eq!(packet["body"]["method"], "Conversation.mark_all_read");
        assert_eq!(
            packet["body"]["object"]["id"],
            format!("layer:///conversations/{conversation}")
        );
        assert_eq!(packet["body"]["data"]["position"], 2);
        assert_eq!(
            packet["body"]["data"]["identity"]["id"],
            identity_id("fred.flinstone")
        );
    }
    alice_v1.push_packet().await;
    let packet = fred_ws.change("update", "Conversation").await;
    assert_eq!(packet["body"]["data"][0]["value"], 0);
    let _ = m2;
    for ws in [&mut alice_v3, &mut alice_v1, &mut fred_ws] {
        ws.nothing_pending().await;
    }
}

#[tokio::test]
async fn participant_and_metadata_changes_arrive_in_each_version_form() {
    let server = TestServer::start().await;
    let conversation = server.conversation_of(&["alice", "bob"]).await;
    let alice = server.session_for("alice").await;
    let mut alice_v1 = open(&server, &alice, "layer-1.0").await;
    let mut bob_v3 = open(&server, &server.session_for("bob").await, "layer-3.0").await;
    let mut carol = open(&server, &server.session_for("carol").await, "layer-2.0").await;

    patch_as(
        &server,
        &alice,
        &conversation,
        json!([
            {"operation": "add", "property": "participants", "value": "carol"},
            {"operation": "set", "property": "metadata.a.b", "value": "x"},
        ]),
    )
    .await;
    let packet = alice_v1.change("patch", "Conversation").await;
    assert_eq!(
        packet["body"]["data"],
        json!([
            {"operation": "add", "property": "participants", "value": "carol"},
            {"operation": "set", "property": "metadata.a", "value": {"b": "x"}},
        ])
    );
    let packet = bob_v3.change("update", "Conversation").await;
    let add = &packet["body"]["data"][0];
    assert_eq!(add["operation"], "add");
    assert_eq!(add["id"], identity_id("carol"));
    assert_eq!(add["value"]["id"], identity_id("carol"));
    assert_eq!(add["value"]["user_id"], "carol");
    // The new participant gets the conversation itself.
    let packet = carol.change("create", "Conversation").await;
    assert_eq!(
        packet["body"]["data"]["participants"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // A metadata key with a dot is escaped; a removed participant gets a delete.
    patch_as(
        &server,
        &alice,
        &conversation,
        json!([
            {"operation": "remove", "property": "participants", "value": "bob"},
            {"operation": "delete", "property": "metadata.a"},
        ]),
    )
    .await;
    let packet = bob_v3.change("delete", "Conversation").await;
    assert_eq!(
        packet["body"]["data"],
        json!({"mode": "my_devices", "from_position": null})
    );
    let packet = carol.change("update", "Conversation").await;
    assert_eq!(
        packet["body"]["data"],
        json!([
            {"operation": "remove", "property": "participants", "id": identity_id("bob")},
            {"operation": "delete", "property": "metadata.a"},
        ])
    );
    let packet = alice_v1.change("patch", "Conversation").await;
    assert_eq!(packet["body"]["data"][0]["value"], "bob");
    for ws in [&mut alice_v1, &mut bob_v3, &mut carol] {
        ws.nothing_pending().await;
    }
}

#[tokio::test]
async fn deletes_by_mode_reach_exactly_the_users_concerned() {
    let server = TestServer::start().await;
    let conversation = server.conversation_of(&["alice", "bob", "carol"]).await;
    let alice = server.session_for("alice").await;
    let bob = server.session_for("bob").await;
    let mut alice_ws = open(&server, &alice, "layer-3.0").await;
    let mut bob_ws = open(&server, &bob, "layer-3.0").await;
    let mut carol_ws = open(&server, &server.session_for("carol").await, "layer-3.0").await;
    let m1 = send_as(&server, &alice, &conversation, "one").await;
    let m2 = send_as(&server, &alice, &conversation, "two").await;
    for ws in [&mut alice_ws, &mut bob_ws, &mut carol_ws] {
        ws.message().await;
        ws.message().await;
    }

    // my_devices: only bob's devices.
    delete_as(
        &server,
        &bob,
        &format!(
            "/messages/{}?mode=my_devices",
            m1.rsplit('/').next().unwrap()
        ),
    )
    .await;
    let packet = bob_ws.change("delete", "Message").await;
    assert_eq!(packet["body"]["object"]["id"], m1.as_str());
    assert_eq!(packet["body"]["data"], json!({"mode": "my_devices"}));
    // bob's conversation: m2 is still last; one message left for him.
    let counts = bob_ws.conversation_counts().await;
    assert_eq!(counts["body"]["data"][0]["id"], m2.as_str());
    assert_eq!(counts["body"]["data"][1]["value"], 1);
    assert_eq!(counts["body"]["data"][2]["value"], 1);
    // all_participants: everyone.
    delete_as(
        &server,
        &alice,
        &format!(
            "/messages/{}?mode=all_participants",
            m2.rsplit('/').next().unwrap()
        ),
    )
    .await;
    // The last message is gone: bob now has none (he hid m1), the others have m1 again.
    let m1_id = json!(m1);
    for (ws, last) in [
        (&mut alice_ws, &m1_id),
        (&mut bob_ws, &Value::Null),
        (&mut carol_ws, &m1_id),
    ] {
        let packet = ws.change("delete", "Message").await;
        assert_eq!(packet["body"]["object"]["id"], m2.as_str());
        assert_eq!(packet["body"]["data"], json!({"mode": "all_participants"}));
        let counts = ws.conversation_counts().await;
        assert_eq!(&counts["body"]["data"][0]["value"]["id"], last, "{counts}");
    }
    // carol leaves: she gets a delete, the others lose a participant.
    delete_as(
        &server,
        &server.session_for("carol").await,
        &format!("/conversations/{conversation}?mode=my_devices&leave=true"),
    )
    .await;
    let packet = carol_ws.change("delete", "Conversation").await;
    assert_eq!(
        packet["body"]["data"],
        json!({"mode": "my_devices", "from_position": null})
    );
    for ws in [&mut alice_ws, &mut bob_ws] {
        let packet = ws.change("update", "Conversation").await;
        assert_eq!(packet["body"]["data"][0]["operation"], "remove");
        assert_eq!(packet["body"]["data"][0]["id"], identity_id("carol"));
    }
    // Deleted for everyone: every member, carol included (she still saw it).
    delete_as(
        &server,
        &alice,
        &format!("/conversations/{conversation}?mode=all_participants"),
    )
    .await;
    for ws in [&mut alice_ws, &mut bob_ws, &mut carol_ws] {
        let packet = ws.change("delete", "Conversation").await;
        assert_eq!(
            packet["body"]["data"],
            json!({"mode": "all_participants", "from_position": null})
        );
    }
    for ws in [&mut alice_ws, &mut bob_ws, &mut carol_ws] {
        ws.nothing_pending().await;
    }
}

#[tokio::test]
async fn replay_resends_what_a_closed_socket_missed_with_original_timestamps() {
    // Exactly from the timestamp asked for (the margin is tested below).
    let server = TestServer::start_with(&[("LAYER__WEBSOCKET__REPLAY_MARGIN_MS", "0")]).await;
    let conversation = server.conversation_of(&["alice", "bob"]).await;
    let alice = server.session_for("alice").await;
    let bob = server.session_for("bob").await;

    let mut bob_ws = open(&server, &bob, "layer-3.0").await;
    send_as(&server, &alice, &conversation, "one").await;
    let live = bob_ws.message().await;
    let last_seen = live["timestamp"].as_str().unwrap().to_owned();
    drop(bob_ws);

    // Sent while bob is away.
    send_as(&server, &alice, &conversation, "two").await;
    send_as(&server, &alice, &conversation, "three").await;

    let mut bob_ws = open(&server, &bob, "layer-3.0").await;
    let mut alice_ws = open(&server, &alice, "layer-3.0").await;
    bob_ws
        .send(
            json!({"type": "request", "body": {"method": "Event.replay", "request_id": "r1",
            "data": {"from_timestamp": last_seen}}}),
        )
        .await;
    // Inclusive: "one" again, with the timestamp it had live; then the missed ones; then the
    // response. Counters continue without gaps (the harness checks each packet).
    let again = bob_ws.packet().await;
    assert_eq!(again["body"]["operation"], "create");
    assert_eq!(text_of(&again), "one");
    assert_eq!(again["timestamp"], last_seen.as_str());
    assert_eq!(again["body"], live["body"]);
    bob_ws.conversation_counts().await;
    assert_eq!(text_of(&bob_ws.message().await), "two");
    assert_eq!(text_of(&bob_ws.message().await), "three");
    let response = bob_ws.packet().await;
    assert_eq!(response["type"], "response", "{response}");
    assert_eq!(response["body"]["success"], true);
    assert_eq!(response["body"]["method"], "Event.replay");

    // Live delivery continues after the replay, without duplicates.
    send_as(&server, &alice, &conversation, "four").await;
    assert_eq!(text_of(&bob_ws.message().await), "four");
    bob_ws.nothing_pending().await;
    // alice's socket opened after everything but "four": no history on connect.
    assert_eq!(text_of(&alice_ws.message().await), "four");
    alice_ws.nothing_pending().await;

    // A replay from now sends nothing; its timestamps never go backwards.
    let data = bob_ws
        .ok(
            "Event.replay",
            None,
            json!({"from_timestamp": Timestamp::now().to_iso()}),
        )
        .await;
    assert!(data.is_null());
    bob_ws.nothing_pending().await;
}

#[tokio::test]
async fn replay_beyond_the_retention_fails_so_the_client_resyncs() {
    let server = TestServer::start_with(&[("LAYER__WEBSOCKET__CHANGE_RETENTION_SECS", "60")]).await;
    let mut ws = open(&server, &server.session_for("alice").await, "layer-3.0").await;
    let old = Timestamp::now().minus(Duration::from_secs(120)).to_iso();
    let error = ws
        .fails(
            "Event.replay",
            None,
            json!({"from_timestamp": old}),
            "invalid_property",
        )
        .await;
    assert!(
        error["message"].as_str().unwrap().contains("60 seconds"),
        "{error}"
    );
    ws.ok(
        "Event.replay",
        None,
        json!({"from_timestamp": Timestamp::now().minus(Duration::from_secs(30)).to_iso()}),
    )
    .await;
    ws.nothing_pending().await;
}

#[tokio::test]
async fn conversation_created_reaches_every_participant() {
    let server = TestServer::start().await;
    let alice = server.session_for("alice").await;
    let mut alice_ws = open(&server, &alice, "layer-3.0").await;
    let mut alice_other = open(&server, &alice, "layer-1.0").await;
    let mut bob = open(&server, &server.session_for("bob").await, "layer-2.0").await;
    let id = conversation_id();
    alice_ws
        .ok(
            "Conversation.create",
            None,
            json!({"participants": [identity_id("bob")], "distinct": true, "metadata": null, "id": id}),
        )
        .await;
    for ws in [&mut alice_ws, &mut alice_other, &mut bob] {
        let packet = ws.change("create", "Conversation").await;
        assert_eq!(packet["body"]["data"]["id"], id.as_str());
        assert_eq!(packet["body"]["data"]["unread_message_count"], 0);
    }
    for ws in [&mut alice_ws, &mut alice_other, &mut bob] {
        ws.nothing_pending().await;
    }
}

#[tokio::test]
async fn two_nodes_on_one_postgres_database_deliver_to_each_other() {
    if !crate::common::is_postgres() {
        return; // one SQLite file is one node
    }
    let node_a = TestServer::start().await;
    let node_b = node_a.another_node().await;
    let conversation = node_a.conversation_of(&["alice", "bob"]).await;
    let alice = node_a.session_for("alice").await;
    let mut alice_ws = open(&node_a, &alice, "layer-3.0").await;
    let mut bob_ws = open(&node_b, &node_b.session_for("bob").await, "layer-3.0").await;

    // A message sent on node A reaches bob's socket on node B in real time.
    send_as(&node_a, &alice, &conversation, "across").await;
    assert_eq!(text_of(&bob_ws.message().await), "across");
    assert_eq!(text_of(&alice_ws.message().await), "across");

    // So does a typing signal.
    alice_ws
        .send(
            json!({"type": "signal", "body": {"type": "typing_indicator",
            "object": {"id": format!("layer:///conversations/{conversation}")},
            "data": {"action": "started"}}}),
        )
        .await;
    let packet = bob_ws.push_packet().await;
    assert_eq!(packet["type"], "signal", "{packet}");
    assert_eq!(packet["body"]["data"]["sender"]["id"], identity_id("alice"));

    // And back: bob's message on node B reaches alice on node A.
    let bob = node_b.session_for("bob").await;
    send_as(&node_b, &bob, &conversation, "back").await;
    assert_eq!(text_of(&alice_ws.message().await), "back");
    assert_eq!(text_of(&bob_ws.message().await), "back");
    alice_ws.nothing_pending().await;
    bob_ws.nothing_pending().await;
}

#[tokio::test]
async fn follow_and_unfollow_reach_the_followers_devices_as_identity_changes() {
    let server = TestServer::start().await;
    let alice = server.session_for("alice").await;
    server.create_identity("b.ob", "Bob").await;
    let mut alice_v3 = open(&server, &alice, "layer-3.0").await;
    let mut alice_v1 = open(&server, &alice, "layer-1.0").await;
    let mut bob_ws = open(&server, &server.session_for("b.ob").await, "layer-2.0").await;

    let response = as_user(&server, &alice, Method::PUT, "/following/users/b.ob")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let packet = alice_v3.change("create", "Identity").await;
    assert_eq!(packet["body"]["object"]["id"], identity_id("b.ob"));
    assert_eq!(packet["body"]["data"]["id"], identity_id("b.ob"));
    assert_eq!(packet["body"]["data"]["user_id"], "b.ob");
    assert_eq!(packet["body"]["data"]["display_name"], "Bob");
    assert!(packet["body"]["data"].get("metadata").is_some(), "{packet}");

    delete_as(&server, &alice, "/following/users/b.ob").await;
    let packet = alice_v3.change("delete", "Identity").await;
    assert_eq!(packet["body"]["object"]["id"], identity_id("b.ob"));
    assert_eq!(packet["body"]["data"], Value::Null);

    // 1.x has no identities; the followed user hears nothing.
    for ws in [&mut alice_v3, &mut alice_v1, &mut bob_ws] {
        ws.nothing_pending().await;
    }

    // Sharing a conversation follows implicitly (again): the identity comes before the
    // conversation; alice has no identity, so bob gets only the conversation.
    let conversation = server.conversation_of(&["alice", "b.ob"]).await;
    let packet = alice_v3.change("create", "Identity").await;
    assert_eq!(packet["body"]["data"]["display_name"], "Bob");
    let packet = alice_v3.change("create", "Conversation").await;
    assert_eq!(
        packet["body"]["object"]["id"],
        format!("layer:///conversations/{conversation}")
    );
    alice_v1.change("create", "Conversation").await;
    bob_ws.change("create", "Conversation").await;
    // Already following: a second conversation brings no identity.
    server.conversation_of(&["alice", "b.ob", "carol"]).await;
    for ws in [&mut alice_v3, &mut alice_v1, &mut bob_ws] {
        ws.change("create", "Conversation").await;
        ws.nothing_pending().await;
    }
}

#[tokio::test]
async fn announcement_receipts_and_deletes_reach_the_recipients_own_devices() {
    let server = TestServer::start().await;
    let alice = server.session_for("alice").await;
    let mut alice_v3 = open(&server, &alice, "layer-3.0").await;
    let mut alice_v1 = open(&server, &alice, "layer-1.0").await;
    let mut bob_ws = open(&server, &server.session_for("bob").await, "layer-3.0").await;
    let announcement = crate::announcements::announcement_to(&server, &["alice", "bob"]).await;
    let id = announcement["id"].as_str().unwrap();
    for ws in [&mut alice_v3, &mut alice_v1, &mut bob_ws] {
        let packet = ws.change("create", "Announcement").await;
        assert_eq!(packet["body"]["object"]["id"], id);
    }

    let path = format!("/announcements/{}", crate::common::uuid_of(id));
    let response = as_user(&server, &alice, Method::POST, &format!("{path}/receipts"))
        .json(&json!({"type": "read"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let packet = alice_v3.change("update", "Announcement").await;
    assert_eq!(packet["body"]["object"]["id"], id);
    assert_eq!(
        packet["body"]["data"],
        json!([{"operation": "set", "property": "recipient_status.layer:///identities/alice", "value": "read"}])
    );
    let packet = alice_v1.change("patch", "Announcement").await;
    assert_eq!(
        packet["body"]["data"][0]["property"],
        "recipient_status.alice"
    );
    // Not raised again: nothing more.
    let response = as_user(&server, &alice, Method::POST, &format!("{path}/receipts"))
        .json(&json!({"type": "delivery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);

    delete_as(&server, &alice, &path).await;
    for ws in [&mut alice_v3, &mut alice_v1] {
        let packet = ws.change("delete", "Announcement").await;
        assert_eq!(packet["body"]["object"]["id"], id);
        assert_eq!(packet["body"]["data"], json!({}));
    }
    for ws in [&mut alice_v3, &mut alice_v1, &mut bob_ws] {
        ws.nothing_pending().await;
    }
}

#[tokio::test]
async fn identity_changes_reach_the_user_and_their_followers() {
    let server = TestServer::start().await;
    server.create_identity("bob", "Bob").await;
    let alice = server.session_for("alice").await;
    let bob = server.session_for("bob").await;
    let response = as_user(&server, &alice, Method::PUT, "/following/users/bob")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let mut alice_ws = open(&server, &alice, "layer-2.0").await;
    let mut alice_v1 = open(&server, &alice, "layer-1.0").await;
    let mut bob_ws = open(&server, &bob, "layer-3.0").await;
    let mut carol_ws = open(&server, &server.session_for("carol").await, "layer-3.0").await;

    let response = server
        .platform(Method::PATCH, "/users/bob/identity")
        .header("content-type", crate::common::PATCH_CONTENT_TYPE)
        .body(
            json!([
                {"operation": "set", "property": "display_name", "value": "Robert"},
                {"operation": "set", "property": "metadata.team", "value": "blue"},
            ])
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
    for ws in [&mut alice_ws, &mut bob_ws] {
        let packet = ws.change("update", "Identity").await;
        assert_eq!(packet["body"]["object"]["id"], identity_id("bob"));
        assert_eq!(
            packet["body"]["data"],
            json!([
                {"operation": "set", "property": "display_name", "value": "Robert"},
                {"operation": "set", "property": "metadata", "value": {"team": "blue"}},
            ])
        );
    }

    let response = server
        .platform(Method::DELETE, "/users/bob/identity")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    for ws in [&mut alice_ws, &mut bob_ws] {
        let packet = ws.change("delete", "Identity").await;
        assert_eq!(packet["body"]["object"]["id"], identity_id("bob"));
        assert_eq!(packet["body"]["data"], Value::Null);
    }
    for ws in [&mut alice_ws, &mut alice_v1, &mut bob_ws, &mut carol_ws] {
        ws.nothing_pending().await;
    }
}

/// The ops of an update packet as (operation, property) pairs.
fn op_names(packet: &Value) -> Vec<(String, String)> {
    packet["body"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|op| {
            (
                op["operation"].as_str().unwrap().to_owned(),
                op["property"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(o, p)| (o.to_string(), p.to_string()))
        .collect()
}

#[tokio::test]
async fn part_edits_reach_3_0_sockets_as_parts_ops_and_part_updates() {
    let server = TestServer::start().await;
    let conversation = server.conversation_of(&["alice", "bob"]).await;
    let alice = server.session_for("alice").await;
    let message = send_as(&server, &alice, &conversation, "one").await;
    let m = message.trim_start_matches("layer:///messages/").to_owned();
    let first_part = format!("{message}/parts/");
    let mut bob3 = open(&server, &server.session_for("bob").await, "layer-3.0").await;
    let mut bob2 = open(&server, &server.session_for("bob").await, "layer-2.0").await;
    let mut alice3 = open(&server, &alice, "layer-3.0").await;

    // The sender adds a part: a Message update adding it (with the part as value).
    let part_id = Uuid::new_v4();
    let response = as_user(
        &server,
        &alice,
        Method::POST,
        &format!("/messages/{m}/parts"),
    )
    .json(&json!({"id": format!("{message}/parts/{part_id}"),
                      "mime_type": "text/plain", "body": "two"}))
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 201);
    let added = json(response).await;
    let part_uri = format!("{message}/parts/{part_id}");
    for ws in [&mut bob3, &mut alice3] {
        let packet = ws.change("update", "Message").await;
        assert_eq!(packet["body"]["object"]["id"], message.as_str());
        assert_eq!(
            op_names(&packet),
            pairs(&[("add", "parts"), ("set", "updated_at")])
        );
        let op = &packet["body"]["data"][0];
        assert_eq!(op["id"], part_uri.as_str());
        assert_eq!(op["value"], added);
        assert!(packet["body"]["data"][1]["value"].is_string());
    }

    // The app changes the part's body (Platform API): a MessagePart update.
    let response = server
        .platform(
            Method::PUT,
            &format!("/conversations/{conversation}/messages/{m}/parts/{part_id}"),
        )
        .json(&json!({"mime_type": "text/markdown", "body": "TWO"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    for ws in [&mut bob3, &mut alice3] {
        let packet = ws.change("update", "Message").await;
        assert_eq!(op_names(&packet), pairs(&[("set", "updated_at")]));
        let packet = ws.change("update", "MessagePart").await;
        assert_eq!(packet["body"]["object"]["id"], part_uri.as_str());
        assert_eq!(
            packet["body"]["object"]["url"],
            format!("{}/messages/{m}/parts/{part_id}", server.base)
        );
        assert_eq!(
            op_names(&packet),
            pairs(&[("set", "mime_type"), ("set", "body"), ("set", "updated_at")])
        );
        assert_eq!(packet["body"]["data"][0]["value"], "text/markdown");
        assert_eq!(packet["body"]["data"][1]["value"], "TWO");
    }

    // A base64 body: the XDK only rebuilds such a part from a whole one, so a MessagePart
    // create carrying it.
    let response = server
        .platform(
            Method::PUT,
            &format!("/conversations/{conversation}/messages/{m}/parts/{part_id}"),
        )
        .json(&json!({"mime_type": "image/png", "body": "aGVsbG8=", "encoding": "base64"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    // As the Client API renders it.
    let response = as_user(
        &server,
        &alice,
        Method::GET,
        &format!("/messages/{m}/parts/{part_id}"),
    )
    .send()
    .await
    .unwrap();
    let part = json(response).await;
    for ws in [&mut bob3, &mut alice3] {
        ws.change("update", "Message").await;
        let packet = ws.change("create", "MessagePart").await;
        assert_eq!(packet["body"]["object"]["id"], part_uri.as_str());
        assert_eq!(packet["body"]["data"], part);
        assert_eq!(packet["body"]["data"]["encoding"], "base64");
    }

    // Deleting a part removes it by id.
    let response = as_user(
        &server,
        &alice,
        Method::DELETE,
        &format!("/messages/{m}/parts/{part_id}"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 204);
    for ws in [&mut bob3, &mut alice3] {
        let packet = ws.change("update", "Message").await;
        assert_eq!(
            op_names(&packet),
            pairs(&[("remove", "parts"), ("set", "updated_at")])
        );
        assert_eq!(packet["body"]["data"][0]["id"], part_uri.as_str());
    }

    // Replacing all parts: every old part removed, every new one added.
    let response = as_user(
        &server,
        &alice,
        Method::PUT,
        &format!("/messages/{m}/parts"),
    )
    .json(&json!([{"mime_type": "text/plain", "body": "three"},
                      {"mime_type": "text/plain", "body": "four"}]))
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    let parts = json(response).await;
    let packet = bob3.change("update", "Message").await;
    assert_eq!(
        op_names(&packet),
        pairs(&[
            ("remove", "parts"),
            ("add", "parts"),
            ("add", "parts"),
            ("set", "updated_at")
        ])
    );
    let ops = packet["body"]["data"].as_array().unwrap();
    assert!(ops[0]["id"].as_str().unwrap().starts_with(&first_part));
    assert_eq!(ops[1]["value"], parts[0]);
    assert_eq!(ops[2]["value"], parts[1]);
    alice3.change("update", "Message").await;

    // API 2.0 messages are immutable to their clients: nothing for bob's 2.0 socket.
    for ws in [&mut bob2, &mut bob3, &mut alice3] {
        ws.nothing_pending().await;
    }

    // A replay on a new socket renders the recorded changes as they are now: the part added
    // first is gone, so its add and its MessagePart update are skipped.
    let before = Timestamp::now().minus(Duration::from_secs(60)).to_iso();
    let mut later = open(&server, &server.session_for("bob").await, "layer-3.0").await;
    later
        .ok("Event.replay", None, json!({ "from_timestamp": before }))
        .await;
    let mut kinds = Vec::new();
    while let Some(packet) = later.stash.pop_front() {
        kinds.push(format!(
            "{} {}",
            packet["body"]["operation"].as_str().unwrap(),
            packet["body"]["object"]["type"].as_str().unwrap()
        ));
    }
    assert_eq!(
        kinds,
        [
            "create Conversation",
            "create Message",
            "update Conversation",
            // The part added, then updated twice, then deleted: only the message's updated_at
            // for each update, then the removal; then the replacement.
            "update Message",
            "update Message",
            "update Message",
            "update Message"
        ]
    );
}

#[tokio::test]
async fn channel_changes_reach_the_members() {
    let server = TestServer::start().await;
    let alice = server.session_for("alice").await;
    let carol = server.session_for("carol").await;
    let mut alice_ws = open(&server, &alice, "layer-2.0").await;
    let mut bob_ws = open(&server, &server.session_for("bob").await, "layer-3.0").await;
    let mut bob_v1 = open(&server, &server.session_for("bob").await, "layer-1.0").await;
    let mut carol_ws = open(&server, &carol, "layer-2.0").await;
    let uuid = Uuid::new_v4();
    let channel = format!("layer:///channels/{uuid}");

    // Created with alice and bob: a Channel create, with each member's own membership.
    let created = alice_ws
        .ok(
            "Channel.create",
            None,
            json!({"id": channel, "name": "general", "metadata": {"topic": "x"},
                   "members": [identity_id("alice"), identity_id("bob")]}),
        )
        .await;
    let packet = alice_ws.change("create", "Channel").await;
    assert_eq!(packet["body"]["data"], created);
    let packet = bob_ws.change("create", "Channel").await;
    assert_eq!(packet["body"]["object"]["id"], channel.as_str());
    assert_eq!(
        packet["body"]["data"]["membership"]["id"],
        format!("{channel}/members/bob")
    );

    // Metadata: a Channel update.
    let response = as_user(&server, &alice, Method::PATCH, &format!("/channels/{uuid}"))
        .header("content-type", "application/vnd.layer-patch+json")
        .body(
            json!([{"operation": "set", "property": "metadata.topic", "value": "y"},
                   {"operation": "set", "property": "metadata.a\\.b", "value": "1"}])
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
    for ws in [&mut alice_ws, &mut bob_ws] {
        let packet = ws.change("update", "Channel").await;
        assert_eq!(
            packet["body"]["data"],
            json!([{"operation": "set", "property": "metadata.a\\.b", "value": "1"},
                   {"operation": "set", "property": "metadata.topic", "value": "y"}])
        );
    }

    // Carol joins: she gets the Channel, then everyone her Membership.
    let response = as_user(
        &server,
        &carol,
        Method::PUT,
        &format!("/channels/{uuid}/members/carol"),
    )
    .send()
    .await
    .unwrap();
    assert!(response.status().is_success());
    let packet = carol_ws.change("create", "Channel").await;
    assert_eq!(packet["body"]["data"]["metadata"]["topic"], "y");
    for ws in [&mut carol_ws, &mut alice_ws, &mut bob_ws] {
        let packet = ws.change("create", "Membership").await;
        assert_eq!(
            packet["body"]["object"]["id"],
            format!("{channel}/members/carol")
        );
        assert_eq!(packet["body"]["data"]["identity"]["user_id"], "carol");
        assert_eq!(packet["body"]["data"]["channel"]["id"], channel.as_str());
    }

    // A channel message, then its deletion.
    let message = format!("layer:///messages/{}", Uuid::new_v4());
    alice_ws
        .ok(
            "Message.create",
            Some(&channel),
            json!({"id": message, "parts": [{"mime_type": "text/plain", "body": "hi all"}]}),
        )
        .await;
    for ws in [&mut alice_ws, &mut bob_ws, &mut carol_ws] {
        let packet = ws.change("create", "Message").await;
        assert_eq!(packet["body"]["data"]["id"], message.as_str());
        assert_eq!(packet["body"]["data"]["channel"]["id"], channel.as_str());
        assert_eq!(packet["body"]["data"]["parts"][0]["body"], "hi all");
    }
    let response = as_user(
        &server,
        &alice,
        Method::DELETE,
        &format!("/messages/{}", message.rsplit('/').next().unwrap()),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 204);
    for ws in [&mut alice_ws, &mut bob_ws, &mut carol_ws] {
        let packet = ws.change("delete", "Message").await;
        assert_eq!(packet["body"]["object"]["id"], message.as_str());
    }

    // Carol leaves: her Membership goes for everyone, the Channel for her.
    let response = as_user(
        &server,
        &carol,
        Method::DELETE,
        &format!("/channels/{uuid}/members/carol"),
    )
    .send()
    .await
    .unwrap();
    assert!(response.status().is_success());
    for ws in [&mut carol_ws, &mut alice_ws, &mut bob_ws] {
        let packet = ws.change("delete", "Membership").await;
        assert_eq!(
            packet["body"]["object"]["id"],
            format!("{channel}/members/carol")
        );
    }
    let packet = carol_ws.change("delete", "Channel").await;
    assert_eq!(
        packet["body"]["data"],
        json!({"mode": "my_devices", "from_position": null})
    );

    // Deleted by its creator: a Channel delete for the members, and nothing more for carol.
    let response = as_user(
        &server,
        &alice,
        Method::DELETE,
        &format!("/channels/{uuid}"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 204);
    for ws in [&mut alice_ws, &mut bob_ws] {
        let packet = ws.change("delete", "Channel").await;
        assert_eq!(
            packet["body"]["data"],
            json!({"mode": "all_participants", "from_position": null})
        );
    }
    // Channels are 2.0+: nothing for the 1.0 socket.
    for ws in [&mut alice_ws, &mut bob_ws, &mut carol_ws, &mut bob_v1] {
        ws.nothing_pending().await;
    }
}

/// The presence an Identity update packet sets: (status, last_seen_at).
fn pushed_presence(packet: &Value, user: &str) -> (Value, Value) {
    assert_eq!(
        packet["body"]["object"]["id"],
        identity_id(user),
        "{packet}"
    );
    let data = &packet["body"]["data"];
    assert_eq!(data[0]["property"], "presence.status", "{packet}");
    assert_eq!(data[1]["property"], "presence.last_seen_at", "{packet}");
    (data[0]["value"].clone(), data[1]["value"].clone())
}

#[tokio::test]
async fn presence_reaches_subscribed_followers_on_every_node() {
    if !crate::common::is_postgres() {
        return; // one SQLite file is one node
    }
    let node_a = TestServer::start().await;
    let node_b = node_a.another_node().await;
    // A shared conversation: alice and bob follow each other; carol follows nobody.
    node_a.conversation_of(&["alice", "bob"]).await;
    let mut alice = open(&node_a, &node_a.session_for("alice").await, "layer-3.0").await;
    let mut alice_v1 = open(&node_a, &node_a.session_for("alice").await, "layer-1.0").await;
    let mut unsubscribed = open(&node_a, &node_a.session_for("alice").await, "layer-2.0").await;
    let mut carol = open(&node_a, &node_a.session_for("carol").await, "layer-3.0").await;
    for ws in [&mut alice, &mut alice_v1, &mut carol] {
        ws.ok("Presence.subscribe", None, Value::Null).await;
    }

    // bob connects on node B and announces himself: available, pushed to alice on node A.
    let bob_token = node_b.session_for("bob").await;
    let mut bob = open(&node_b, &bob_token, "layer-2.0").await;
    bob.ok(
        "Presence.update",
        None,
        json!([{"operation": "set", "property": "status", "value": "auto"}]),
    )
    .await;
    let (status, seen) = pushed_presence(&alice.change("update", "Identity").await, "bob");
    assert_eq!(status, "available");
    assert!(Timestamp::parse_iso(seen.as_str().unwrap()).is_some());

    // A second device on node A restores the status announced on node B ("auto"): alice hears
    // that bob was seen again. Then busy from node B.
    let mut bob_a = open(&node_a, &node_a.session_for("bob").await, "layer-3.0").await;
    bob_a
        .ok(
            "Presence.update",
            None,
            json!([{"operation": "set", "property": "status", "value": "auto"}]),
        )
        .await;
    let (status, _) = pushed_presence(&alice.change("update", "Identity").await, "bob");
    assert_eq!(status, "available");
    bob.ok(
        "Presence.update",
        None,
        json!([{"operation": "set", "property": "status", "value": "busy"}]),
    )
    .await;
    let (status, _) = pushed_presence(&alice.change("update", "Identity").await, "bob");
    assert_eq!(status, "busy");
    // Node A reports it in Presence.sync too.
    let changes = alice
        .ok("Presence.sync", None, json!({"ids": [identity_id("bob")]}))
        .await["changes"]
        .clone();
    assert_eq!(changes[0]["data"][0]["value"], "busy");

    // bob's socket on node B closes but his device on node A stays: still busy (last seen
    // now). Then the last one closes: offline, last seen then.
    bob.close().await;
    let (status, seen_b) = pushed_presence(&alice.change("update", "Identity").await, "bob");
    assert_eq!(status, "busy");
    bob_a.close().await;
    let (status, seen) = pushed_presence(&alice.change("update", "Identity").await, "bob");
    assert_eq!(status, "offline");
    let seen = Timestamp::parse_iso(seen.as_str().unwrap()).unwrap();
    assert!(seen >= Timestamp::parse_iso(seen_b.as_str().unwrap()).unwrap());

    // Not to strangers, not to 1.0 sockets (no identities), not without Presence.subscribe.
    for ws in [&mut alice, &mut alice_v1, &mut unsubscribed, &mut carol] {
        ws.nothing_pending().await;
    }
}

/// Replays from `from` on a new socket of `token`; the kinds of the replayed packets.
async fn replayed(server: &TestServer, token: &str, from: &str) -> Vec<String> {
    let mut ws = open(server, token, "layer-3.0").await;
    ws.ok("Event.replay", None, json!({ "from_timestamp": from }))
        .await;
    let mut kinds = Vec::new();
    while let Some(packet) = ws.stash.pop_front() {
        kinds.push(format!(
            "{} {}",
            packet["body"]["operation"].as_str().unwrap(),
            packet["body"]["object"]["type"].as_str().unwrap()
        ));
    }
    kinds
}

#[tokio::test]
async fn replay_starts_a_margin_early_for_changes_that_committed_late() {
    // With the margin: the late change (and its conversation refresh), and the conversation
    // created just before; without it: nothing.
    let late = vec![
        "create Conversation",
        "delete Message",
        "update Conversation",
    ];
    for (margin, expected) in [("5000", late), ("0", vec![])] {
        let server =
            TestServer::start_with(&[("LAYER__WEBSOCKET__REPLAY_MARGIN_MS", margin)]).await;
        let conversation = server.conversation_of(&["alice", "bob"]).await;
        let message = server.send_text(&conversation, "hi").await;
        let message =
            Uuid::parse_str(crate::common::uuid_of(message["id"].as_str().unwrap()).as_str())
                .unwrap();
        let bob = server.session_for("bob").await;
        let mut bob_ws = open(&server, &bob, "layer-3.0").await;
        // bob's client last saw a packet stamped `seen` ...
        bob_ws.nothing_pending().await;
        let seen = Timestamp::now();
        // ... then a change stamped 2 s earlier commits (a transaction that took that long):
        // delivered live, after `seen`.
        server
            .store
            .hide_message(
                server.app_id,
                message,
                "bob",
                seen.minus(Duration::from_secs(2)),
            )
            .await
            .unwrap();
        let packet = bob_ws.change("delete", "Message").await;
        assert!(Timestamp::parse_iso(packet["timestamp"].as_str().unwrap()).unwrap() < seen);
        // The socket drops before the client records it; it replays from `seen`.
        drop(bob_ws);
        assert_eq!(
            replayed(&server, &bob, &seen.to_iso()).await,
            expected,
            "margin {margin}"
        );
    }
}

#[tokio::test]
async fn packets_written_during_a_replay_are_stamped_no_later_than_the_changes_still_to_come() {
    let server = TestServer::start_with(&[("LAYER__WEBSOCKET__REPLAY_MARGIN_MS", "0")]).await;
    let conversation = server.conversation_of(&["alice", "bob"]).await;
    let from = Timestamp::now().minus(Duration::from_secs(1)).to_iso();
    for n in 0..60 {
        server.send_text(&conversation, &format!("m{n}")).await;
    }
    let mut alice = open(&server, &server.session_for("alice").await, "layer-3.0").await;
    let mut bob = open(&server, &server.session_for("bob").await, "layer-3.0").await;
    // bob replays a backlog; once it flows, alice's typing signals reach his socket.
    bob.send(
        json!({"type": "request", "body": {"method": "Event.replay", "request_id": "r1",
        "data": {"from_timestamp": from}}}),
    )
    .await;
    let first = bob.packet().await;
    assert_eq!(first["body"]["object"]["type"], "Conversation", "{first}");
    let signal = json!({"type": "signal", "body": {"type": "typing_indicator",
        "object": {"id": format!("layer:///conversations/{conversation}")},
        "data": {"action": "started"}}});
    for _ in 0..20 {
        alice.send(signal.clone()).await;
    }
    let (mut changes, mut signals) = (1, 0);
    // The latest timestamp of a signal so far: no change after it may be stamped earlier (a
    // client whose socket dropped then would replay from that signal and miss the change).
    let mut latest_signal: Option<Timestamp> = None;
    loop {
        let packet = bob.packet().await;
        let at = Timestamp::parse_iso(packet["timestamp"].as_str().unwrap()).unwrap();
        match packet["type"].as_str().unwrap() {
            "signal" => {
                signals += 1;
                latest_signal = latest_signal.max(Some(at));
            }
            "change" => {
                changes += 1;
                if let Some(signal) = latest_signal {
                    assert!(
                        signal <= at,
                        "a change stamped {at:?} after a signal stamped {signal:?}"
                    );
                }
            }
            _ => {
                assert_eq!(packet["body"]["request_id"], "r1", "{packet}");
                break;
            }
        }
    }
    // The conversation, then each message and its conversation refresh.
    assert_eq!(changes, 1 + 60 * 2);
    while signals < 20 {
        assert_eq!(bob.packet().await["type"], "signal");
        signals += 1;
    }
    bob.nothing_pending().await;
}

#[tokio::test]
async fn mark_all_read_succeeds_alongside_concurrent_writes() {
    let server = TestServer::start().await;
    let conversation = server.conversation_of(&["alice", "bob"]).await;
    let alice = server.session_for("alice").await;
    let bob = server.session_for("bob").await;
    send_as(&server, &alice, &conversation, "first").await;
    // bob marks all read while alice keeps sending: every request succeeds (on SQLite a
    // transaction that read before writing failed at once with "database is locked").
    let mut set = tokio::task::JoinSet::new();
    for n in 0..12 {
        let (token, path, body) = if n % 2 == 0 {
            (
                bob.clone(),
                format!("/conversations/{conversation}/mark_all_read"),
                json!({"position": null}),
            )
        } else {
            (
                alice.clone(),
                format!("/conversations/{conversation}/messages"),
                json!({"parts": [{"mime_type": "text/plain", "body": format!("m{n}")}]}),
            )
        };
        set.spawn(
            as_user(&server, &token, Method::POST, &path)
                .json(&body)
                .send(),
        );
    }
    while let Some(done) = set.join_next().await {
        let response = done.unwrap().unwrap();
        assert!(
            response.status().is_success(),
            "{}",
            response.text().await.unwrap()
        );
    }
}

/// The user's view of the conversation through REST (3.0), for comparison.
async fn rest_view(server: &TestServer, token: &str, conversation: &str) -> Value {
    let response = as_user(
        server,
        token,
        Method::GET,
        &format!("/conversations/{conversation}"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    json(response).await
}

/// Asserts that a Conversation update carries the `last_message`, `unread_message_count` and
/// `total_message_count` of the user's REST view; returns the counts.
async fn matches_rest(
    server: &TestServer,
    token: &str,
    conversation: &str,
    update: &Value,
) -> (i64, i64) {
    let rest = rest_view(server, token, conversation).await;
    let ops = &update["body"]["data"];
    assert_eq!(ops[0]["value"], rest["last_message"], "{update}\n{rest}");
    if !rest["last_message"].is_null() {
        assert_eq!(ops[0]["id"], rest["last_message"]["id"], "{update}");
    }
    assert_eq!(ops[1]["value"], rest["unread_message_count"], "{update}");
    assert_eq!(ops[2]["value"], rest["total_message_count"], "{update}");
    (
        ops[1]["value"].as_i64().unwrap(),
        ops[2]["value"].as_i64().unwrap(),
    )
}

#[tokio::test]
async fn conversation_updates_carry_the_counts_and_last_message_of_each_users_view() {
    let server = TestServer::start_with(&[("LAYER__WEBSOCKET__REPLAY_MARGIN_MS", "0")]).await;
    let users = ["alice", "bob", "carol", "dave", "eve", "frank"];
    let conversation = server.conversation_of(&users).await;
    let mut tokens = std::collections::HashMap::new();
    for user in users {
        tokens.insert(user, server.session_for(user).await);
    }
    let response = server
        .platform(Method::POST, "/users/bob/blocks")
        .json(&json!({"user_id": "eve"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let m1 = send_as(&server, &tokens["alice"], &conversation, "one").await;
    let m1_path = format!("/messages/{}", m1.rsplit('/').next().unwrap());
    // Hidden for bob, who blocked eve.
    let e1 = send_as(&server, &tokens["eve"], &conversation, "from eve").await;
    // bob deletes m1 for himself, carol the conversation; dave reads m1; frank is removed.
    delete_as(
        &server,
        &tokens["bob"],
        &format!("{m1_path}?mode=my_devices"),
    )
    .await;
    delete_as(
        &server,
        &tokens["carol"],
        &format!("/conversations/{conversation}?mode=my_devices"),
    )
    .await;
    let response = as_user(
        &server,
        &tokens["dave"],
        Method::POST,
        &format!("{m1_path}/receipts"),
    )
    .json(&json!({"type": "read"}))
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 204);
    patch_as(
        &server,
        &tokens["alice"],
        &conversation,
        json!([{"operation": "remove", "property": "participants", "value": "frank"}]),
    )
    .await;

    let mut sockets = Vec::new();
    for user in users {
        sockets.push((user, open(&server, &tokens[user], "layer-3.0").await));
    }
    let m2 = send_as(&server, &tokens["alice"], &conversation, "two").await;
    let mut stamp = String::new();
    for (user, ws) in &mut sockets {
        if *user == "frank" {
            continue;
        }
        let create = ws.change("create", "Message").await;
        assert_eq!(create["body"]["object"]["id"], m2.as_str());
        assert_eq!(
            create["body"]["data"]["is_unread"],
            *user != "alice",
            "{create}"
        );
        let update = ws.conversation_counts().await;
        assert_eq!(update["body"]["data"][0]["value"], create["body"]["data"]);
        let counts = matches_rest(&server, &tokens[*user], &conversation, &update).await;
        let expected = match *user {
            "alice" => (1, 3),
            "bob" | "carol" => (1, 1),
            "dave" | "eve" => (2, 3),
            _ => unreachable!(),
        };
        assert_eq!(counts, expected, "{user}");
        if *user == "dave" {
            stamp = create["timestamp"].as_str().unwrap().to_owned();
        }
    }

    // frank still sees m1 and e1: deleting m1 for himself leaves e1 his last message.
    delete_as(
        &server,
        &tokens["frank"],
        &format!("{m1_path}?mode=my_devices"),
    )
    .await;
    let frank = &mut sockets.last_mut().unwrap().1;
    frank.change("delete", "Message").await;
    let update = frank.conversation_counts().await;
    assert_eq!(update["body"]["data"][0]["id"], e1.as_str());
    let counts = matches_rest(&server, &tokens["frank"], &conversation, &update).await;
    assert_eq!(counts, (1, 1));

    // A replay renders m2's create with the conversation as it is now: m3 is the last message.
    let m3 = send_as(&server, &tokens["eve"], &conversation, "three").await;
    let dave = &mut sockets[3].1;
    assert_eq!(dave.message().await["body"]["object"]["id"], m3.as_str());
    let mut replay = open(&server, &tokens["dave"], "layer-3.0").await;
    replay
        .ok("Event.replay", None, json!({ "from_timestamp": stamp }))
        .await;
    let create = replay.change("create", "Message").await;
    assert_eq!(create["body"]["object"]["id"], m2.as_str());
    let update = replay.conversation_counts().await;
    assert_eq!(update["body"]["data"][0]["id"], m3.as_str());
    assert_eq!(
        matches_rest(&server, &tokens["dave"], &conversation, &update).await,
        (3, 4)
    );
    assert_eq!(
        replay.change("create", "Message").await["body"]["object"]["id"],
        m3.as_str()
    );
    let update = replay.conversation_counts().await;
    assert_eq!(update["body"]["data"][0]["id"], m3.as_str());
    replay.nothing_pending().await;
}

/// Reads `count` messages from the socket: their texts in the order they arrived, asserting
/// that their timestamps never go backwards (the order of the user's log).
async fn texts_in_order(ws: &mut crate::websocket::Ws, count: usize) -> Vec<String> {
    let mut texts = Vec::with_capacity(count);
    let mut last = String::new();
    for _ in 0..count {
        let packet = ws.message().await;
        let at = packet["timestamp"].as_str().unwrap().to_owned();
        assert!(at >= last, "{at} after {last}");
        last = at;
        // Up to a padding the text may carry.
        let text = text_of(&packet).split(' ').next().unwrap();
        texts.push(text.to_owned());
    }
    texts
}

/// Each sender's texts appear in the order it sent them, and every text sent appears once.
fn assert_each_once_in_send_order(texts: &[String], senders: usize, per_sender: usize) {
    let mut sorted = texts.to_vec();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), senders * per_sender, "{texts:?}");
    for s in 0..senders {
        let own: Vec<&String> = texts
            .iter()
            .filter(|t| t.starts_with(&format!("s{s}-")))
            .collect();
        let expected: Vec<String> = (0..per_sender).map(|i| format!("s{s}-{i:03}")).collect();
        assert_eq!(own, expected.iter().collect::<Vec<_>>(), "{texts:?}");
    }
}

/// Many writers at once (on Postgres, half of them through another node): the changes a node
/// hands its sockets after their commits can reach them out of order or beside another node's;
/// every device still gets each message once, in the order of its user's log.
#[tokio::test]
async fn concurrent_writers_reach_every_device_once_in_log_order() {
    const SENDERS: usize = 6;
    const PER_SENDER: usize = 12;
    let node_a = TestServer::start().await;
    let node_b = if crate::common::is_postgres() {
        Some(node_a.another_node().await)
    } else {
        None
    };
    let mut senders = Vec::new();
    for s in 0..SENDERS {
        let sender = format!("s{s}");
        let conversation = node_a.conversation_of(&["reader", &sender]).await;
        let node = match &node_b {
            Some(b) if s % 2 == 1 => b,
            _ => &node_a,
        };
        senders.push((node, node.session_for(&sender).await, conversation));
    }
    let reader = node_a.session_for("reader").await;
    let mut phone = open(&node_a, &reader, "layer-3.0").await;
    let mut tablet = open(&node_a, &reader, "layer-2.0").await;
    let sends = futures_util::future::join_all(senders.iter().enumerate().map(
        |(s, (node, token, conversation))| async move {
            for i in 0..PER_SENDER {
                send_as(node, token, conversation, &format!("s{s}-{i:03}")).await;
            }
        },
    ));
    let total = SENDERS * PER_SENDER;
    let (_, phone_texts, tablet_texts) = tokio::join!(
        sends,
        texts_in_order(&mut phone, total),
        texts_in_order(&mut tablet, total)
    );
    assert_each_once_in_send_order(&phone_texts, SENDERS, PER_SENDER);
    assert_eq!(tablet_texts, phone_texts);
    phone.nothing_pending().await;
    tablet.nothing_pending().await;
}

/// A device that stops reading while hundreds of changes are written: its delivery waits on the
/// full socket (megabytes of messages), more changes are committed than a socket keeps handed
/// over, and when it reads again it gets every one of them once, in order.
#[tokio::test]
async fn a_device_that_stops_reading_gets_every_change_once_it_reads_again() {
    const MESSAGES: usize = 400;
    let padding = "x".repeat(16 * 1024);
    let server = TestServer::start_with(&[
        ("LAYER__WEBSOCKET__OUTBOUND_QUEUE", "4"),
        ("LAYER__LIMITS__MAX_INLINE_PART_BYTES", "20000"),
    ])
    .await;
    let conversation = server.conversation_of(&["reader", "s0"]).await;
    let mut reader =
        crate::websocket::open_unread(&server, &server.session_for("reader").await, "layer-3.0")
            .await;
    let token = server.session_for("s0").await;
    for i in 0..MESSAGES {
        send_as(
            &server,
            &token,
            &conversation,
            &format!("s0-{i:03} {padding}"),
        )
        .await;
    }
    let texts = texts_in_order(&mut reader, MESSAGES).await;
    assert_each_once_in_send_order(&texts, 1, MESSAGES);
    reader.nothing_pending().await;
}
