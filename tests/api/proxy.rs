//! The Platform API acting as a user (server-api.md §3.4, §5.5, §13; client-api.md §3.2-3.3):
//! per-user conversation and message views, receipts, mark_all_read and per-user deletion.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{
    assert_keys, expect_error, identity_id, json as body_json, layer_count, uuid_of, TestServer,
};

async fn user_conversations(server: &TestServer, user: &str, query: &str) -> (Vec<Value>, i64) {
    let response = server
        .proxy(user, Method::GET, &format!("/conversations{query}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{user} conversations{query}");
    let count = layer_count(&response);
    (body_json(response).await.as_array().unwrap().clone(), count)
}

async fn user_conversation(
    server: &TestServer,
    user: &str,
    conversation: &str,
) -> reqwest::Response {
    server
        .proxy(user, Method::GET, &format!("/conversations/{conversation}"))
        .send()
        .await
        .unwrap()
}

async fn user_messages(server: &TestServer, user: &str, conversation: &str) -> (Vec<Value>, i64) {
    let response = server
        .proxy(
            user,
            Method::GET,
            &format!("/conversations/{conversation}/messages"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{user} messages of {conversation}");
    let count = layer_count(&response);
    (body_json(response).await.as_array().unwrap().clone(), count)
}

async fn receipt(
    server: &TestServer,
    user: &str,
    message: &Value,
    kind: &str,
) -> reqwest::Response {
    server
        .proxy(
            user,
            Method::POST,
            &format!(
                "/messages/{}/receipts",
                uuid_of(message["id"].as_str().unwrap())
            ),
        )
        .json(&json!({"type": kind}))
        .send()
        .await
        .unwrap()
}

/// The system view of a message.
async fn system_message(server: &TestServer, conversation: &str, message: &Value) -> Value {
    let response = server
        .platform(
            Method::GET,
            &format!(
                "/conversations/{conversation}/messages/{}",
                uuid_of(message["id"].as_str().unwrap())
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    body_json(response).await
}

fn conversation_ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|c| uuid_of(c["id"].as_str().unwrap()))
        .collect()
}

fn participant_ids(conversation: &Value) -> Vec<String> {
    conversation["participants"]
        .as_array()
        .unwrap_or_else(|| panic!("participants: {conversation}"))
        .iter()
        .map(|p| p["user_id"].as_str().unwrap().to_owned())
        .collect()
}

fn find<'a>(items: &'a [Value], conversation: &str) -> &'a Value {
    items
        .iter()
        .find(|c| uuid_of(c["id"].as_str().unwrap()) == conversation)
        .unwrap_or_else(|| panic!("{conversation} not in {items:?}"))
}

// Conversation views

#[tokio::test]
async fn conversation_list_with_counts_and_last_message() {
    let server = TestServer::start().await;
    let busy = server.conversation_of(&["u", "v"]).await;
    let quiet = server.conversation_of(&["v", "u"]).await;
    let _elsewhere = server.conversation_of(&["v", "w"]).await;
    server.send_text(&busy, "first").await;
    let last = server.send_text(&busy, "second").await;

    let (items, count) = user_conversations(&server, "u", "").await;
    assert_eq!(count, 2);
    let mut listed = conversation_ids(&items);
    listed.sort();
    let mut expected = vec![busy.clone(), quiet.clone()];
    expected.sort();
    assert_eq!(listed, expected);

    let prefix = format!("{}/users/u", server.app_url());
    let busy_view = find(&items, &busy);
    assert_eq!(busy_view["url"], format!("{prefix}/conversations/{busy}"));
    assert_eq!(
        busy_view["messages_url"],
        format!("{prefix}/conversations/{busy}/messages")
    );
    assert_eq!(busy_view["unread_message_count"], 2);
    assert_eq!(busy_view["total_message_count"], 2);
    assert_eq!(participant_ids(busy_view), ["u", "v"]);
    let last_message = &busy_view["last_message"];
    assert_eq!(last_message["id"], last["id"]);
    assert_eq!(last_message["parts"][0]["body"], "second");
    assert_eq!(
        last_message["url"],
        format!(
            "{prefix}/messages/{}",
            uuid_of(last["id"].as_str().unwrap())
        )
    );
    assert_eq!(last_message["is_unread"], true);

    let quiet_view = find(&items, &quiet);
    assert!(quiet_view["last_message"].is_null(), "{quiet_view}");
    assert_eq!(quiet_view["unread_message_count"], 0);
    assert_eq!(quiet_view["total_message_count"], 0);

    // w sees only theirs, and a stranger nothing
    assert_eq!(user_conversations(&server, "w", "").await.1, 1);
    assert_eq!(
        user_conversations(&server, "stranger", "").await,
        (vec![], 0)
    );
}

/// Asserts that `items` are sorted by `key` descending (equal keys in any order).
fn assert_sorted_desc(items: &[Value], key: impl Fn(&Value) -> String) {
    let keys: Vec<String> = items.iter().map(key).collect();
    assert!(
        keys.windows(2).all(|w| w[0] >= w[1]),
        "not newest first: {keys:?}"
    );
}

#[tokio::test]
async fn conversation_list_sorts_by_created_at_or_last_message() {
    let server = TestServer::start().await;
    let first = server.conversation_of(&["u"]).await;
    let _second = server.conversation_of(&["u"]).await;
    let third = server.conversation_of(&["u"]).await;
    let message = server.send_text(&first, "bump").await;

    let created_at = |c: &Value| c["created_at"].as_str().unwrap().to_owned();
    let last_activity = |c: &Value| {
        c["last_message"]["sent_at"]
            .as_str()
            .map_or_else(|| created_at(c), str::to_owned)
    };
    for query in ["", "?sort_by=created_at"] {
        let (items, count) = user_conversations(&server, "u", query).await;
        assert_eq!((items.len(), count), (3, 3));
        assert_sorted_desc(&items, created_at);
    }
    let (by_created, _) = user_conversations(&server, "u", "").await;
    let (items, count) = user_conversations(&server, "u", "?sort_by=last_message").await;
    assert_eq!((items.len(), count), (3, 3));
    assert_sorted_desc(&items, last_activity);
    // With distinct timestamps the two orders differ: the first conversation moves up front.
    let third_created = created_at(find(&by_created, &third));
    if message["sent_at"].as_str().unwrap() > third_created.as_str() {
        assert_eq!(conversation_ids(&items)[0], first);
        assert_ne!(conversation_ids(&by_created)[0], first);
    }
}

#[tokio::test]
async fn conversation_list_pages_with_layer_count() {
    let server = TestServer::start().await;
    for _ in 0..3 {
        server.conversation_of(&["u", "v"]).await;
    }
    let (all, count) = user_conversations(&server, "u", "").await;
    assert_eq!((all.len(), count), (3, 3));
    let all = conversation_ids(&all);
    let (page1, count1) = user_conversations(&server, "u", "?page_size=2").await;
    assert_eq!((conversation_ids(&page1), count1), (all[..2].to_vec(), 3));
    let (page2, count2) = user_conversations(
        &server,
        "u",
        &format!("?page_size=2&from_id={}", page1[1]["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!((conversation_ids(&page2), count2), (all[2..].to_vec(), 3));
}

#[tokio::test]
async fn one_conversation_in_the_user_perspective() {
    let server = TestServer::start().await;
    server.create_identity("v", "Vera").await;
    let conversation = server.conversation_of(&["u", "v"]).await;
    let message = server.send_text(&conversation, "hello").await;
    let response = user_conversation(&server, "u", &conversation).await;
    assert_eq!(response.status(), 200);
    let view = body_json(response).await;
    let prefix = format!("{}/users/u", server.app_url());
    assert_eq!(view["id"], format!("layer:///conversations/{conversation}"));
    assert_eq!(
        view["url"],
        format!("{prefix}/conversations/{conversation}")
    );
    assert_eq!(
        view["messages_url"],
        format!("{prefix}/conversations/{conversation}/messages")
    );
    assert_eq!(view["unread_message_count"], 1);
    assert_eq!(view["total_message_count"], 1);
    assert_eq!(view["last_message"]["id"], message["id"]);
    assert_eq!(view["participants"][1]["display_name"], "Vera");
    assert_eq!(view["distinct"], false);
    assert_keys(
        &view,
        &[
            "id",
            "url",
            "messages_url",
            "created_at",
            "participants",
            "distinct",
            "metadata",
            "last_message",
            "unread_message_count",
            "total_message_count",
        ],
    );

    // users with reserved characters in their id
    let odd = server.conversation_of(&["a/b", "v"]).await;
    let response = user_conversation(&server, "a/b", &odd).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        body_json(response).await["url"],
        format!("{}/users/a%2Fb/conversations/{odd}", server.app_url())
    );
}

#[tokio::test]
async fn a_non_participant_gets_404() {
    let server = TestServer::start().await;
    let conversation = server.conversation_of(&["u", "v"]).await;
    let message = server.send_text(&conversation, "private").await;
    let message_id = uuid_of(message["id"].as_str().unwrap());
    expect_error(
        user_conversation(&server, "stranger", &conversation).await,
        404,
        "not_found",
    )
    .await;
    for (method, path) in [
        (
            Method::GET,
            format!("/conversations/{conversation}/messages"),
        ),
        (Method::GET, format!("/messages/{message_id}")),
        (
            Method::DELETE,
            format!("/messages/{message_id}?mode=my_devices"),
        ),
        (
            Method::DELETE,
            format!("/conversations/{conversation}?mode=my_devices"),
        ),
    ] {
        let response = server
            .proxy("stranger", method, &path)
            .send()
            .await
            .unwrap();
        expect_error(response, 404, "not_found").await;
    }
    expect_error(
        receipt(&server, "stranger", &message, "read").await,
        404,
        "not_found",
    )
    .await;
    let response = server
        .proxy(
            "stranger",
            Method::POST,
            &format!("/conversations/{conversation}/mark_all_read"),
        )
        .json(&json!({"position": null}))
        .send()
        .await
        .unwrap();
    expect_error(response, 404, "not_found").await;
    // nothing changed for the participants
    let view = body_json(user_conversation(&server, "u", &conversation).await).await;
    assert_eq!(view["unread_message_count"], 1);
}

// Messages as a user

#[tokio::test]
async fn messages_as_the_user_are_unread_until_read() {
    let server = TestServer::start().await;
    let conversation = server.conversation_of(&["u", "v"]).await;
    let first = server.send_text(&conversation, "one").await;
    let second = server.send_text(&conversation, "two").await;
    let (items, count) = user_messages(&server, "u", &conversation).await;
    assert_eq!(count, 2);
    assert_eq!(items[0]["id"], second["id"]);
    assert_eq!(items[1]["id"], first["id"]);
    let prefix = format!("{}/users/u", server.app_url());
    for item in &items {
        let url = format!(
            "{prefix}/messages/{}",
            uuid_of(item["id"].as_str().unwrap())
        );
        assert_eq!(item["url"], url);
        assert_eq!(item["receipts_url"], format!("{url}/receipts"));
        assert_eq!(item["is_unread"], true, "{item}");
        assert!(item["received_at"].is_string(), "{item}");
        assert_eq!(
            item["conversation"]["url"],
            format!("{prefix}/conversations/{conversation}")
        );
    }
    // one message by its own URL
    let response = server
        .proxy(
            "u",
            Method::GET,
            &format!("/messages/{}", uuid_of(first["id"].as_str().unwrap())),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(body_json(response).await, items[1]);
}

#[tokio::test]
async fn read_and_delivery_receipts() {
    let server = TestServer::start().await;
    let conversation = server.conversation_of(&["u", "v"]).await;
    let first = server.send_text(&conversation, "one").await;
    let second = server.send_text(&conversation, "two").await;

    let response = receipt(&server, "u", &first, "read").await;
    assert_eq!(response.status(), 204);
    assert_eq!(response.text().await.unwrap(), "");
    let status = &system_message(&server, &conversation, &first).await["recipient_status"];
    assert_eq!(
        status,
        &json!({identity_id("u"): "read", identity_id("v"): "sent"})
    );
    let (items, _) = user_messages(&server, "u", &conversation).await;
    assert_eq!(items[1]["is_unread"], false);
    assert_eq!(items[0]["is_unread"], true);
    let view = body_json(user_conversation(&server, "u", &conversation).await).await;
    assert_eq!(view["unread_message_count"], 1);
    // v is unaffected
    let view = body_json(user_conversation(&server, "v", &conversation).await).await;
    assert_eq!(view["unread_message_count"], 2);

    assert_eq!(
        receipt(&server, "u", &second, "delivery").await.status(),
        204
    );
    let status = &system_message(&server, &conversation, &second).await["recipient_status"];
    assert_eq!(status[identity_id("u")], "delivered");
    // a delivery receipt after read changes nothing
    assert_eq!(
        receipt(&server, "u", &first, "delivery").await.status(),
        204
    );
    let status = &system_message(&server, &conversation, &first).await["recipient_status"];
    assert_eq!(status[identity_id("u")], "read");

    let error = expect_error(
        receipt(&server, "u", &second, "bogus").await,
        422,
        "invalid_property",
    )
    .await;
    assert_eq!(error["data"]["property"], "type");
    let response = server
        .proxy(
            "u",
            Method::POST,
            &format!(
                "/messages/{}/receipts",
                uuid_of(second["id"].as_str().unwrap())
            ),
        )
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    expect_error(response, 422, "missing_property").await;
    let status = &system_message(&server, &conversation, &second).await["recipient_status"];
    assert_eq!(status[identity_id("u")], "delivered");
}

#[tokio::test]
async fn mark_all_read() {
    let server = TestServer::start().await;
    let conversation = server.conversation_of(&["u", "v"]).await;
    let mut sent = Vec::new();
    for i in 0..3 {
        sent.push(server.send_text(&conversation, &format!("m{i}")).await);
    }
    let positions: Vec<i64> = {
        let (items, _) = user_messages(&server, "u", &conversation).await;
        items
            .iter()
            .rev()
            .map(|m| m["position"].as_i64().unwrap())
            .collect()
    };
    let path = format!("/conversations/{conversation}/mark_all_read");

    // up to a position
    let response = server
        .proxy("u", Method::POST, &path)
        .json(&json!({"position": positions[1]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    assert_eq!(body_json(response).await, json!({"position": positions[1]}));
    let view = body_json(user_conversation(&server, "u", &conversation).await).await;
    assert_eq!(view["unread_message_count"], 1);

    // null: everything
    let response = server
        .proxy("u", Method::POST, &path)
        .json(&json!({"position": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    assert_eq!(body_json(response).await, json!({"position": positions[2]}));
    let view = body_json(user_conversation(&server, "u", &conversation).await).await;
    assert_eq!(view["unread_message_count"], 0);
    let (items, _) = user_messages(&server, "u", &conversation).await;
    assert!(items.iter().all(|m| m["is_unread"] == false), "{items:?}");
    for message in &sent {
        let status = &system_message(&server, &conversation, message).await["recipient_status"];
        assert_eq!(
            status,
            &json!({identity_id("u"): "read", identity_id("v"): "sent"})
        );
    }
    let view = body_json(user_conversation(&server, "v", &conversation).await).await;
    assert_eq!(view["unread_message_count"], 3);
}

#[tokio::test]
async fn total_message_count_follows_sends_and_deletes_for_everyone() {
    let server = TestServer::start().await;
    let conversation = server.conversation_of(&["u", "v"]).await;
    let mut sent = Vec::new();
    for text in ["one", "two", "three"] {
        sent.push(server.send_text(&conversation, text).await);
    }
    let counts = |view: &Value| {
        (
            view["total_message_count"].as_i64().unwrap(),
            view["unread_message_count"].as_i64().unwrap(),
        )
    };
    let view = body_json(user_conversation(&server, "u", &conversation).await).await;
    assert_eq!(counts(&view), (3, 3));

    let path = format!("/messages/{}", uuid_of(sent[1]["id"].as_str().unwrap()));
    let response = server
        .proxy(
            "u",
            Method::DELETE,
            &format!("{path}?mode=all_participants"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    for user in ["u", "v"] {
        let view = body_json(user_conversation(&server, user, &conversation).await).await;
        assert_eq!(counts(&view), (2, 2), "{user}");
    }
    // Deleting it again changes nothing.
    let response = server
        .proxy(
            "u",
            Method::DELETE,
            &format!("{path}?mode=all_participants"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    server.send_text(&conversation, "four").await;
    let view = body_json(user_conversation(&server, "v", &conversation).await).await;
    assert_eq!(counts(&view), (3, 3));
    let (_, listed) = user_messages(&server, "v", &conversation).await;
    assert_eq!(listed, 3);
}

/// Each member's `unread_message_count` is a kept count: after every kind of write that moves
/// it, it equals what the member's message list says is unread.
#[tokio::test]
async fn unread_message_count_is_what_the_message_list_says() {
    let server = TestServer::start().await;
    let users = ["u", "v", "w"];
    let conversation = server.conversation_of(&users).await;
    let response = server
        .platform(Method::POST, "/users/w/blocks")
        .json(&json!({"user_id": "u"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let check = |step: &'static str| {
        let server = &server;
        let conversation = &conversation;
        async move {
            for user in users {
                let response = user_conversation(server, user, conversation).await;
                if response.status() == 404 {
                    // Deleted for them: nothing to count until a new message.
                    continue;
                }
                let view = body_json(response).await;
                let (items, _) = user_messages(server, user, conversation).await;
                let listed = items.iter().filter(|m| m["is_unread"] == true).count();
                assert_eq!(
                    view["unread_message_count"].as_i64(),
                    Some(listed as i64),
                    "{step}: {user}"
                );
            }
        }
    };
    let send = |user: &'static str, text: &'static str| {
        let server = &server;
        let conversation = &conversation;
        async move {
            let response = server
                .proxy(
                    user,
                    Method::POST,
                    &format!("/conversations/{conversation}/messages"),
                )
                .json(&json!({"parts": [{"mime_type": "text/plain", "body": text}]}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 201);
            body_json(response).await
        }
    };
    let mut sent = Vec::new();
    for (user, text) in [("u", "1"), ("v", "2"), ("u", "3"), ("w", "4")] {
        sent.push(send(user, text).await);
    }
    sent.push(server.send_text(&conversation, "5").await);
    check("sends (w blocked u)").await;
    assert_eq!(receipt(&server, "v", &sent[0], "read").await.status(), 204);
    assert_eq!(
        receipt(&server, "w", &sent[1], "delivery").await.status(),
        204
    );
    check("receipts").await;
    let path = |m: &Value| format!("/messages/{}", uuid_of(m["id"].as_str().unwrap()));
    // A write as `user`, with its status.
    let write = |user: &'static str, method: Method, path: String, body: Option<Value>| {
        let server = &server;
        async move {
            let request = server.proxy(user, method, &path);
            let request = match body {
                Some(body) => request.json(&body),
                None => request,
            };
            request.send().await.unwrap().status().as_u16()
        }
    };
    let mine = format!("{}?mode=my_devices", path(&sent[2]));
    assert_eq!(write("v", Method::DELETE, mine, None).await, 204);
    check("deleted for v").await;
    let everyone = format!("{}?mode=all_participants", path(&sent[3]));
    assert_eq!(write("u", Method::DELETE, everyone, None).await, 204);
    check("deleted for everyone").await;
    let mark = format!("/conversations/{conversation}/mark_all_read");
    let upto = json!({"position": sent[1]["position"]});
    let status = write("w", Method::POST, mark, Some(upto)).await;
    assert!((200..300).contains(&status), "{status}");
    check("w read up to the second").await;
    let hide = format!("/conversations/{conversation}?mode=my_devices");
    assert_eq!(write("v", Method::DELETE, hide, None).await, 204);
    check("conversation deleted for v").await;
    send("u", "6").await;
    check("after a new message").await;
}

// Deleting for one user

#[tokio::test]
async fn delete_a_message_for_my_devices_only() {
    let server = TestServer::start().await;
    let conversation = server.conversation_of(&["u", "v"]).await;
    let keep = server.send_text(&conversation, "keep").await;
    let gone = server.send_text(&conversation, "gone").await;
    let path = format!("/messages/{}", uuid_of(gone["id"].as_str().unwrap()));
    let response = server
        .proxy("u", Method::DELETE, &format!("{path}?mode=my_devices"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);

    expect_error(
        server.proxy("u", Method::GET, &path).send().await.unwrap(),
        404,
        "not_found",
    )
    .await;
    let (items, count) = user_messages(&server, "u", &conversation).await;
    assert_eq!(count, 1);
    assert_eq!(items[0]["id"], keep["id"]);
    let view = body_json(user_conversation(&server, "u", &conversation).await).await;
    assert_eq!(view["total_message_count"], 1);
    assert_eq!(view["last_message"]["id"], keep["id"]);

    // v and the system still see it
    assert_eq!(
        server
            .proxy("v", Method::GET, &path)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(user_messages(&server, "v", &conversation).await.1, 2);
    system_message(&server, &conversation, &gone).await;
}

#[tokio::test]
async fn delete_a_conversation_for_my_devices_only() {
    let server = TestServer::start().await;
    let conversation = server.conversation_of(&["u", "v"]).await;
    server.send_text(&conversation, "old").await;
    let response = server
        .proxy(
            "u",
            Method::DELETE,
            &format!("/conversations/{conversation}?mode=my_devices"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);

    expect_error(
        user_conversation(&server, "u", &conversation).await,
        404,
        "not_found",
    )
    .await;
    assert_eq!(user_conversations(&server, "u", "").await.1, 0);
    // still a participant, for everyone
    assert_eq!(
        participant_ids(&server.get_conversation(&conversation).await),
        ["u", "v"]
    );
    let view = body_json(user_conversation(&server, "v", &conversation).await).await;
    assert_eq!(participant_ids(&view), ["u", "v"]);
    assert_eq!(view["total_message_count"], 1);

    // a new message brings it back, with history starting after the deletion
    let new = server.send_text(&conversation, "new").await;
    let response = user_conversation(&server, "u", &conversation).await;
    assert_eq!(response.status(), 200);
    let view = body_json(response).await;
    assert_eq!(view["total_message_count"], 1);
    assert_eq!(view["unread_message_count"], 1);
    assert_eq!(view["last_message"]["id"], new["id"]);
    let (items, count) = user_messages(&server, "u", &conversation).await;
    assert_eq!((count, items.len()), (1, 1));
    assert_eq!(items[0]["id"], new["id"]);
}

#[tokio::test]
async fn leave_removes_the_user_for_everyone_and_the_conversation_for_them() {
    let server = TestServer::start().await;
    let created = server
        .create_conversation(json!({"participants": ["u", "v", "w"]}))
        .await;
    let conversation = uuid_of(created["id"].as_str().unwrap());
    server.send_text(&conversation, "before").await;
    let response = server
        .proxy(
            "u",
            Method::DELETE,
            &format!("/conversations/{conversation}?mode=my_devices&leave=true"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);

    // others see the removal, which (like any participant change) ends distinctness
    let system = server.get_conversation(&conversation).await;
    assert_eq!(participant_ids(&system), ["v", "w"]);
    assert_eq!(system["distinct"], false);
    let view = body_json(user_conversation(&server, "v", &conversation).await).await;
    assert_eq!(participant_ids(&view), ["v", "w"]);

    // for the leaver it is deleted (client-api.md §3.2.5) ...
    expect_error(
        user_conversation(&server, "u", &conversation).await,
        404,
        "not_found",
    )
    .await;
    assert_eq!(user_conversations(&server, "u", "").await.1, 0);
    // ... and stays so: later messages are not theirs
    let later = server.send_text(&conversation, "after").await;
    let (items, count) = user_conversations(&server, "u", "").await;
    assert_eq!(count, 0, "the leaver's list: {items:?}");
    expect_error(
        user_conversation(&server, "u", &conversation).await,
        404,
        "not_found",
    )
    .await;
    let status = &system_message(&server, &conversation, &later).await["recipient_status"];
    assert!(status.get(identity_id("u")).is_none(), "{status}");
}

#[tokio::test]
async fn a_leaver_added_again_sees_everyone_and_new_messages() {
    let server = TestServer::start().await;
    let conversation = server.conversation_of(&["u", "v"]).await;
    server.send_text(&conversation, "before").await;
    let response = server
        .proxy(
            "u",
            Method::DELETE,
            &format!("/conversations/{conversation}?mode=my_devices&leave=true"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let response = server
        .patch_conversation(
            &conversation,
            json!([{"operation": "add", "property": "participants", "value": "u"}]),
        )
        .await;
    assert_eq!(response.status(), 204);
    let new = server.send_text(&conversation, "welcome back").await;

    let response = user_conversation(&server, "u", &conversation).await;
    assert_eq!(response.status(), 200);
    let view = body_json(response).await;
    assert_eq!(participant_ids(&view), ["v", "u"]);
    assert_eq!(view["last_message"]["id"], new["id"]);
    assert_eq!(view["unread_message_count"], 1);
    assert_eq!(user_conversations(&server, "u", "").await.1, 1);
    // the history they deleted stays deleted
    let (items, count) = user_messages(&server, "u", &conversation).await;
    assert_eq!((count, items.len()), (1, 1));
}

#[tokio::test]
async fn a_removed_participant_still_sees_the_conversation_up_to_the_removal() {
    let server = TestServer::start().await;
    let conversation = server.conversation_of(&["u", "v"]).await;
    let before = server.send_text(&conversation, "before").await;
    let response = server
        .patch_conversation(
            &conversation,
            json!([{"operation": "remove", "property": "participants", "value": "u"}]),
        )
        .await;
    assert_eq!(response.status(), 204);
    server.send_text(&conversation, "after").await;

    let response = user_conversation(&server, "u", &conversation).await;
    assert_eq!(response.status(), 200);
    let view = body_json(response).await;
    assert_eq!(view["participants"], json!([]));
    assert_eq!(view["total_message_count"], 1);
    assert_eq!(view["last_message"]["id"], before["id"]);
    let (items, count) = user_messages(&server, "u", &conversation).await;
    assert_eq!((count, items.len()), (1, 1));
    assert_eq!(items[0]["id"], before["id"]);
    let (listed, _) = user_conversations(&server, "u", "").await;
    assert_eq!(find(&listed, &conversation)["participants"], json!([]));

    // the others see the removal
    let view = body_json(user_conversation(&server, "v", &conversation).await).await;
    assert_eq!(participant_ids(&view), ["v"]);
    assert_eq!(view["total_message_count"], 2);

    // writes are refused
    let response = server
        .proxy(
            "u",
            Method::DELETE,
            &format!("/messages/{}", uuid_of(before["id"].as_str().unwrap())),
        )
        .send()
        .await
        .unwrap();
    expect_error(response, 403, "access_denied").await;
}

#[tokio::test]
async fn delete_for_all_participants_through_the_proxy() {
    let server = TestServer::start().await;
    let conversation = server.conversation_of(&["u", "v"]).await;
    let response = server
        .proxy(
            "u",
            Method::DELETE,
            &format!("/conversations/{conversation}?mode=all_participants"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let response = server
        .platform(Method::GET, &format!("/conversations/{conversation}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 410);
    assert_eq!(user_conversations(&server, "v", "").await.1, 0);
}

// Acting as a user (need the per-user state of the users store)

#[tokio::test]
async fn send_as_the_user_through_the_proxy() {
    let server = TestServer::start().await;
    server.create_identity("u", "Uma").await;
    let conversation = server.conversation_of(&["u", "v"]).await;
    let response = server
        .proxy(
            "u",
            Method::POST,
            &format!("/conversations/{conversation}/messages"),
        )
        .json(&json!({"parts": [{"mime_type": "text/plain", "body": "mine"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let message = body_json(response).await;
    assert_eq!(message["sender"]["user_id"], "u");
    assert_eq!(message["sender"]["display_name"], "Uma");
    assert_eq!(
        message["recipient_status"],
        json!({identity_id("u"): "read", identity_id("v"): "sent"})
    );
    assert_eq!(message["is_unread"], false);

    // own messages are never unread; for v it is
    let (items, _) = user_messages(&server, "u", &conversation).await;
    assert_eq!(items[0]["is_unread"], false);
    let view = body_json(user_conversation(&server, "u", &conversation).await).await;
    assert_eq!(view["unread_message_count"], 0);
    let (items, _) = user_messages(&server, "v", &conversation).await;
    assert_eq!(items[0]["is_unread"], true);
    let view = body_json(user_conversation(&server, "v", &conversation).await).await;
    assert_eq!(view["unread_message_count"], 1);

    // `{}` is refused
    let response = server
        .proxy(
            "u",
            Method::POST,
            &format!("/conversations/{conversation}/messages"),
        )
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    expect_error(response, 422, "missing_property").await;
}

#[tokio::test]
async fn a_removed_participant_cannot_send() {
    let server = TestServer::start().await;
    let conversation = server.conversation_of(&["u", "v"]).await;
    let response = server
        .patch_conversation(
            &conversation,
            json!([{"operation": "remove", "property": "participants", "value": "u"}]),
        )
        .await;
    assert_eq!(response.status(), 204);
    let response = server
        .proxy(
            "u",
            Method::POST,
            &format!("/conversations/{conversation}/messages"),
        )
        .json(&json!({"parts": [{"mime_type": "text/plain", "body": "let me in"}]}))
        .send()
        .await
        .unwrap();
    expect_error(response, 403, "access_denied").await;
    // nor can a stranger
    let response = server
        .proxy(
            "stranger",
            Method::POST,
            &format!("/conversations/{conversation}/messages"),
        )
        .json(&json!({"parts": [{"mime_type": "text/plain", "body": "hi"}]}))
        .send()
        .await
        .unwrap();
    expect_error(response, 404, "not_found").await;
    assert_eq!(user_messages(&server, "v", &conversation).await.1, 0);
}

#[tokio::test]
async fn create_a_conversation_as_the_user() {
    let server = TestServer::start().await;
    let response = server
        .proxy("u", Method::POST, "/conversations")
        .json(&json!({"participants": ["v", "w"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created = body_json(response).await;
    // the creator takes part
    let mut participants = participant_ids(&created);
    participants.sort();
    assert_eq!(participants, ["u", "v", "w"]);
    let uuid = uuid_of(created["id"].as_str().unwrap());
    assert_eq!(
        created["url"],
        format!("{}/users/u/conversations/{uuid}", server.app_url())
    );
    assert_eq!(created["unread_message_count"], 0);
    assert_eq!(user_conversations(&server, "v", "").await.1, 1);
}
