//! Platform API messages (server-api.md §3.5-3.6, §6) and v3 message parts (§7).

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{
    assert_keys, expect_error, identity_id, json as body_json, layer_count, uuid_of, TestServer,
};

fn text_part(body: &str) -> Value {
    json!({"mime_type": "text/plain", "body": body})
}

fn from_name(name: &str, parts: Value) -> Value {
    json!({"sender": {"name": name}, "parts": parts})
}

fn messages_path(conversation: &str) -> String {
    format!("/conversations/{conversation}/messages")
}

fn message_path(conversation: &str, message: &Value) -> String {
    format!(
        "/conversations/{conversation}/messages/{}",
        uuid_of(message["id"].as_str().unwrap())
    )
}

async fn get(server: &TestServer, path: &str) -> reqwest::Response {
    server.platform(Method::GET, path).send().await.unwrap()
}

async fn list(server: &TestServer, conversation: &str, query: &str) -> (Vec<Value>, i64) {
    let response = get(server, &format!("{}{query}", messages_path(conversation))).await;
    assert_eq!(response.status(), 200, "list {query}");
    let count = layer_count(&response);
    let items = body_json(response).await.as_array().unwrap().clone();
    (items, count)
}

fn ids(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

// Sending

#[tokio::test]
async fn send_as_a_named_sender_v3() {
    let server = TestServer::start().await;
    let conversation = server.conversation_of(&["a", "b"]).await;
    let response = server
        .post_message(
            &conversation,
            from_name(
                "The System",
                json!([text_part("hello"), text_part("world")]),
            ),
        )
        .await;
    assert_eq!(response.status(), 201);
    let message = body_json(response).await;

    let id = message["id"].as_str().unwrap();
    assert!(id.starts_with("layer:///messages/"), "{message}");
    let uuid = uuid_of(id);
    let conversation_url = format!("{}/conversations/{conversation}", server.app_url());
    let url = format!("{conversation_url}/messages/{uuid}");
    assert_eq!(message["url"], url);
    assert_eq!(
        message["conversation"],
        json!({"id": format!("layer:///conversations/{conversation}"), "url": conversation_url})
    );
    assert!(message["sent_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    assert_eq!(message["sender"]["display_name"], "The System");
    assert!(message["sender"]["user_id"].is_null(), "{message}");
    // Nobody sent it, so everyone is at `sent`, keyed by identity id.
    assert_eq!(
        message["recipient_status"],
        json!({identity_id("a"): "sent", identity_id("b"): "sent"})
    );
    // system perspective: no per-user values
    assert!(message["is_unread"].is_null() && message["receipts_url"].is_null());

    let parts = message["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 2);
    for (part, body) in parts.iter().zip(["hello", "world"]) {
        let part_id = part["id"].as_str().unwrap();
        let prefix = format!("layer:///messages/{uuid}/parts/");
        assert!(part_id.starts_with(&prefix), "{part}");
        let part_uuid = &part_id[prefix.len()..];
        assert!(uuid::Uuid::try_parse(part_uuid).is_ok(), "{part}");
        assert_eq!(part["url"], format!("{url}/parts/{part_uuid}"));
        assert_eq!(part["message_url"], url);
        assert_eq!(part["mime_type"], "text/plain");
        assert_eq!(part["body"], body);
        assert!(part["encoding"].is_null());
    }
    assert_ne!(parts[0]["id"], parts[1]["id"]);

    // GET renders the same message.
    let fetched = body_json(get(&server, &message_path(&conversation, &message)).await).await;
    assert_eq!(fetched["id"], message["id"]);
    assert_eq!(fetched["parts"], message["parts"]);
    assert_eq!(fetched["recipient_status"], message["recipient_status"]);
    assert!(fetched["position"].is_i64(), "{fetched}");
    // the v3 GET shape (server-api.md §3.5, §3.6)
    assert_keys(
        &fetched,
        &[
            "id",
            "url",
            "receipts_url",
            "position",
            "conversation",
            "parts",
            "sent_at",
            "sender",
            "is_unread",
            "received_at",
            "recipient_status",
            "reply_to",
            "notification",
            "updated_at",
        ],
    );
    assert_keys(
        &fetched["parts"][0],
        &[
            "id",
            "url",
            "message_url",
            "mime_type",
            "body",
            "encoding",
            "content",
            "updated_at",
        ],
    );
}

#[tokio::test]
async fn send_as_a_named_sender_v1() {
    let server = TestServer::start().await;
    let conversation = server.conversation_of(&["a", "b"]).await;
    let response = server
        .platform_version("1.1", Method::POST, &messages_path(&conversation))
        .json(&from_name(
            "System",
            json!([text_part("one"), text_part("two")]),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let message = body_json(response).await;
    let uuid = uuid_of(message["id"].as_str().unwrap());
    assert_eq!(
        message["sender"],
        json!({"user_id": null, "name": "System"})
    );
    assert_eq!(
        message["recipient_status"],
        json!({"a": "sent", "b": "sent"})
    );
    let part_ids: Vec<&str> = message["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        part_ids,
        [
            format!("layer:///messages/{uuid}/parts/0"),
            format!("layer:///messages/{uuid}/parts/1")
        ]
    );
}

#[tokio::test]
async fn send_as_a_named_sender_v2() {
    let server = TestServer::start().await;
    let conversation = server.conversation_of(&["a", "b"]).await;
    let response = server
        .platform_version("2.0", Method::POST, &messages_path(&conversation))
        .json(&from_name(
            "System",
            json!([text_part("one"), text_part("two")]),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let message = body_json(response).await;
    let uuid = uuid_of(message["id"].as_str().unwrap());
    // 2.0: identity-keyed receipts, but parts still numbered, without URLs
    assert_eq!(
        message["recipient_status"],
        json!({identity_id("a"): "sent", identity_id("b"): "sent"})
    );
    assert_eq!(message["sender"]["display_name"], "System");
    assert_eq!(
        message["parts"][1]["id"],
        format!("layer:///messages/{uuid}/parts/1")
    );
    assert!(message["parts"][1].get("url").is_none(), "{message}");
}

#[tokio::test]
async fn send_with_sender_id_v3() {
    let server = TestServer::start().await;
    server.create_identity("bot", "Helper Bot").await;
    let conversation = server.conversation_of(&["a", "bot", "b"]).await;
    let response = server
        .post_message(
            &conversation,
            json!({"sender_id": identity_id("bot"), "parts": [text_part("hi")]}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let message = body_json(response).await;
    assert_eq!(
        message["sender"],
        json!({
            "id": identity_id("bot"),
            "url": format!("{}/users/bot/identity", server.app_url()),
            "user_id": "bot",
            "display_name": "Helper Bot",
            "avatar_url": null,
        })
    );
    assert_eq!(
        message["recipient_status"],
        json!({identity_id("a"): "sent", identity_id("bot"): "read", identity_id("b"): "sent"})
    );
}

#[tokio::test]
async fn send_with_sender_user_id_v1() {
    let server = TestServer::start().await;
    let conversation = server.conversation_of(&["a", "b"]).await;
    let response = server
        .platform_version("1.1", Method::POST, &messages_path(&conversation))
        .json(&json!({"sender": {"user_id": "a"}, "parts": [text_part("hi")]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let message = body_json(response).await;
    assert_eq!(message["sender"], json!({"user_id": "a", "name": null}));
    assert_eq!(
        message["recipient_status"],
        json!({"a": "read", "b": "sent"})
    );
}

#[tokio::test]
async fn exactly_one_sender() {
    let server = TestServer::start().await;
    let conversation = server.conversation_of(&["a"]).await;
    let parts = json!([text_part("x")]);
    for body in [
        json!({"sender_id": identity_id("a"), "sender": {"name": "S"}, "parts": parts}),
        json!({"sender_id": "a", "sender": {"user_id": "a"}, "parts": parts}),
        json!({"sender": {"user_id": "a", "name": "S"}, "parts": parts}),
    ] {
        let error = expect_error(
            server.post_message(&conversation, body.clone()).await,
            422,
            "invalid_property",
        )
        .await;
        assert_eq!(error["data"]["property"], "sender", "{body}");
    }
    for body in [
        json!({"parts": parts}),
        json!({"sender": {}, "parts": parts}),
    ] {
        let error = expect_error(
            server.post_message(&conversation, body.clone()).await,
            422,
            "missing_property",
        )
        .await;
        assert_eq!(error["data"]["property"], "sender", "{body}");
    }
    expect_error(
        server
            .post_message(&conversation, from_name("", parts.clone()))
            .await,
        422,
        "invalid_property",
    )
    .await;
    // nothing was sent
    assert_eq!(list(&server, &conversation, "").await.1, 0);
}

#[tokio::test]
async fn parts_are_required() {
    let server = TestServer::start().await;
    let conversation = server.conversation_of(&["a"]).await;
    for parts in [Value::Null, json!([])] {
        let mut body = from_name("S", parts.clone());
        if parts.is_null() {
            body.as_object_mut().unwrap().remove("parts");
        }
        let error = expect_error(
            server.post_message(&conversation, body).await,
            422,
            "missing_property",
        )
        .await;
        assert_eq!(error["data"]["property"], "parts", "{parts}");
    }
    expect_error(
        server
            .post_message(
                &conversation,
                from_name("S", json!([{"body": "no mime type"}])),
            )
            .await,
        422,
        "missing_property",
    )
    .await;
}

#[tokio::test]
async fn inline_bodies_are_limited_to_2048_decoded_bytes() {
    use base64::Engine;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let server = TestServer::start().await;
    let conversation = server.conversation_of(&["a"]).await;
    let ok = [
        text_part(&"x".repeat(2048)),
        // 1024 two-byte characters: 2048 bytes
        text_part(&"é".repeat(1024)),
        json!({"mime_type": "application/octet-stream", "encoding": "base64", "body": b64(&[7u8; 2048])}),
    ];
    for part in ok {
        let response = server
            .post_message(&conversation, from_name("S", json!([part])))
            .await;
        assert_eq!(response.status(), 201);
        let message = body_json(response).await;
        assert_eq!(message["parts"][0]["body"], part["body"]);
        assert_eq!(
            message["parts"][0]["encoding"],
            part.get("encoding").cloned().unwrap_or(Value::Null)
        );
    }
    let too_big = [
        text_part(&"x".repeat(2049)),
        text_part(&"é".repeat(1025)),
        json!({"mime_type": "application/octet-stream", "encoding": "base64", "body": b64(&[7u8; 2049])}),
        json!({"mime_type": "application/octet-stream", "encoding": "base64", "body": "not base64!"}),
        json!({"mime_type": "text/plain", "encoding": "rot13", "body": "uryyb"}),
    ];
    for part in too_big {
        let error = expect_error(
            server
                .post_message(
                    &conversation,
                    from_name("S", json!([text_part("fine"), part.clone()])),
                )
                .await,
            422,
            "invalid_property",
        )
        .await;
        assert!(
            error["data"]["property"]
                .as_str()
                .is_some_and(|p| p.starts_with("parts")),
            "{part}: {error}"
        );
    }
    assert_eq!(list(&server, &conversation, "").await.1, 3);
}

#[tokio::test]
async fn send_to_unknown_and_deleted_conversations() {
    let server = TestServer::start().await;
    let unknown = uuid::Uuid::new_v4().to_string();
    let body = from_name("S", json!([text_part("x")]));
    expect_error(
        server.post_message(&unknown, body.clone()).await,
        404,
        "not_found",
    )
    .await;
    let conversation = server.conversation_of(&["a"]).await;
    let response = server
        .platform(Method::DELETE, &format!("/conversations/{conversation}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let response = server.post_message(&conversation, body).await;
    assert_eq!(response.status(), 410);
}

#[tokio::test]
async fn a_reused_message_id_is_id_in_use_with_the_existing_message() {
    let server = TestServer::start().await;
    let conversation = server.conversation_of(&["a"]).await;
    let id = uuid::Uuid::new_v4();
    let mut first = from_name("S", json!([text_part("first")]));
    first["id"] = json!(format!("layer:///messages/{id}"));
    let response = server.post_message(&conversation, first).await;
    assert_eq!(response.status(), 201);
    let sent = body_json(response).await;
    assert_eq!(sent["id"], format!("layer:///messages/{id}"));

    let mut second = from_name("S", json!([text_part("second")]));
    second["id"] = json!(id.to_string());
    let error = expect_error(
        server.post_message(&conversation, second).await,
        409,
        "id_in_use",
    )
    .await;
    assert_eq!(error["data"]["id"], sent["id"]);
    assert_eq!(error["data"]["parts"][0]["body"], "first");
    let (items, count) = list(&server, &conversation, "").await;
    assert_eq!(count, 1);
    assert_eq!(items[0]["parts"][0]["body"], "first");
}

#[tokio::test]
async fn if_none_match_replays_the_sent_message() {
    let server = TestServer::start().await;
    let conversation = server.conversation_of(&["a"]).await;
    let tag = format!("\"{}\"", uuid::Uuid::new_v4());
    let mut sent = Vec::new();
    for _ in 0..2 {
        let response = server
            .platform(Method::POST, &messages_path(&conversation))
            .header("if-none-match", &tag)
            .json(&from_name("S", json!([text_part("once")])))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        sent.push(body_json(response).await);
    }
    assert_eq!(sent[0], sent[1]);
    assert_eq!(list(&server, &conversation, "").await.1, 1);
}

#[tokio::test]
async fn a_batch_is_202_with_every_message() {
    let server = TestServer::start().await;
    let conversation = server.conversation_of(&["a"]).await;
    let response = server
        .platform(Method::POST, &messages_path(&conversation))
        .json(&json!([
            from_name("S", json!([text_part("one")])),
            from_name("S", json!([text_part("two")])),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let batch = body_json(response).await;
    let batch = batch.as_array().unwrap();
    assert_eq!(batch.len(), 2);
    assert_eq!(batch[0]["parts"][0]["body"], "one");
    assert_eq!(batch[1]["parts"][0]["body"], "two");
    let (items, count) = list(&server, &conversation, "").await;
    assert_eq!(count, 2);
    assert_eq!(
        ids(&items),
        [batch[1]["id"].clone(), batch[0]["id"].clone()].map(|v| v.as_str().unwrap().to_owned())
    );

    // one invalid message refuses the whole batch
    let response = server
        .platform(Method::POST, &messages_path(&conversation))
        .json(&json!([
            from_name("S", json!([text_part("three")])),
            from_name("S", json!([text_part(&"x".repeat(2049))])),
        ]))
        .send()
        .await
        .unwrap();
    expect_error(response, 422, "invalid_property").await;
    assert_eq!(list(&server, &conversation, "").await.1, 2);
}

#[tokio::test]
async fn concurrent_sends_all_land_with_distinct_positions() {
    let server = TestServer::start().await;
    let conversation = server.conversation_of(&["a", "b"]).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..12 {
        let request = server
            .platform(Method::POST, &messages_path(&conversation))
            .json(&from_name("S", json!([text_part(&format!("m{i}"))])));
        tasks.spawn(async move { request.send().await.unwrap().status().as_u16() });
    }
    let statuses: Vec<u16> = tasks.join_all().await;
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    let (items, count) = list(&server, &conversation, "").await;
    assert_eq!(count, 12);
    let mut positions: Vec<i64> = items
        .iter()
        .map(|m| m["position"].as_i64().unwrap())
        .collect();
    positions.dedup();
    assert_eq!(positions.len(), 12, "{positions:?}");
}

// Listing, getting, deleting

#[tokio::test]
async fn list_is_newest_first_and_pages_with_from_id() {
    let server = TestServer::start().await;
    let conversation = server.conversation_of(&["a", "b"]).await;
    let mut sent = Vec::new();
    for i in 0..5 {
        sent.push(server.send_text(&conversation, &format!("m{i}")).await);
    }
    let newest_first: Vec<String> = ids(&sent).into_iter().rev().collect();

    let (all, count) = list(&server, &conversation, "").await;
    assert_eq!(count, 5);
    assert_eq!(ids(&all), newest_first);
    let positions: Vec<i64> = all
        .iter()
        .map(|m| m["position"].as_i64().unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] > w[1]), "{positions:?}");

    let (page1, count1) = list(&server, &conversation, "?page_size=2").await;
    assert_eq!((ids(&page1), count1), (newest_first[..2].to_vec(), 5));
    // from_id as a Layer id
    let (page2, count2) = list(
        &server,
        &conversation,
        &format!("?page_size=2&from_id={}", page1[1]["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!((ids(&page2), count2), (newest_first[2..4].to_vec(), 5));
    // from_id as a bare UUID
    let (page3, count3) = list(
        &server,
        &conversation,
        &format!(
            "?page_size=2&from_id={}",
            uuid_of(page2[1]["id"].as_str().unwrap())
        ),
    )
    .await;
    assert_eq!((ids(&page3), count3), (newest_first[4..].to_vec(), 5));
    let (page4, count4) = list(
        &server,
        &conversation,
        &format!(
            "?page_size=2&from_id={}",
            uuid_of(page3[0]["id"].as_str().unwrap())
        ),
    )
    .await;
    assert_eq!((page4.len(), count4), (0, 5));
}

#[tokio::test]
async fn page_size_is_capped_at_100() {
    let server = TestServer::start().await;
    let conversation = server.conversation_of(&["a"]).await;
    for i in 0..101 {
        server.send_text(&conversation, &format!("m{i}")).await;
    }
    for query in ["", "?page_size=500", "?page_size=101"] {
        let (items, count) = list(&server, &conversation, query).await;
        assert_eq!((items.len(), count), (100, 101), "{query}");
    }
}

#[tokio::test]
async fn list_of_unknown_conversation_is_404() {
    let server = TestServer::start().await;
    let response = get(&server, &messages_path(&uuid::Uuid::new_v4().to_string())).await;
    expect_error(response, 404, "not_found").await;
}

#[tokio::test]
async fn get_one_only_under_its_conversation() {
    let server = TestServer::start().await;
    let conversation = server.conversation_of(&["a"]).await;
    let other = server.conversation_of(&["a"]).await;
    let message = server.send_text(&conversation, "hi").await;
    let response = get(&server, &message_path(&conversation, &message)).await;
    assert_eq!(response.status(), 200);
    let fetched = body_json(response).await;
    assert_eq!(fetched["parts"][0]["body"], "hi");
    assert_eq!(fetched["url"], message["url"]);

    expect_error(
        get(&server, &message_path(&other, &message)).await,
        404,
        "not_found",
    )
    .await;
    expect_error(
        get(
            &server,
            &format!(
                "/conversations/{conversation}/messages/{}",
                uuid::Uuid::new_v4()
            ),
        )
        .await,
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn delete_is_204_then_404() {
    let server = TestServer::start().await;
    let conversation = server.conversation_of(&["a"]).await;
    let keep = server.send_text(&conversation, "keep").await;
    let message = server.send_text(&conversation, "bye").await;
    let path = message_path(&conversation, &message);
    let response = server.platform(Method::DELETE, &path).send().await.unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(response.text().await.unwrap(), "");
    expect_error(get(&server, &path).await, 404, "not_found").await;
    expect_error(
        server.platform(Method::DELETE, &path).send().await.unwrap(),
        404,
        "not_found",
    )
    .await;
    let (items, count) = list(&server, &conversation, "").await;
    assert_eq!((ids(&items), count), (ids(&[keep]), 1));
}

// Message parts (3.0)

async fn message_with_parts(server: &TestServer, bodies: &[&str]) -> (String, Value, String) {
    let conversation = server.conversation_of(&["a"]).await;
    let parts: Vec<Value> = bodies.iter().map(|b| text_part(b)).collect();
    let response = server
        .post_message(&conversation, from_name("S", json!(parts)))
        .await;
    assert_eq!(response.status(), 201);
    let message = body_json(response).await;
    let path = message_path(&conversation, &message);
    (conversation, message, path)
}

#[tokio::test]
async fn parts_list_and_get() {
    let server = TestServer::start().await;
    let (_, message, path) = message_with_parts(&server, &["one", "two"]).await;
    let response = get(&server, &format!("{path}/parts")).await;
    assert_eq!(response.status(), 200);
    let parts = body_json(response).await;
    assert_eq!(parts, message["parts"]);
    for part in parts.as_array().unwrap() {
        let response = get(
            &server,
            &format!("{path}/parts/{}", uuid_of(part["id"].as_str().unwrap())),
        )
        .await;
        assert_eq!(response.status(), 200);
        assert_eq!(&body_json(response).await, part);
    }
    expect_error(
        get(&server, &format!("{path}/parts/{}", uuid::Uuid::new_v4())).await,
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn add_a_part() {
    let server = TestServer::start().await;
    let (_, message, path) = message_with_parts(&server, &["one"]).await;
    assert!(message["updated_at"].is_null() || message.get("updated_at").is_none());
    let response = server
        .platform(Method::POST, &format!("{path}/parts"))
        .json(&text_part("hello world"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let part = body_json(response).await;
    let uuid = uuid_of(message["id"].as_str().unwrap());
    let part_id = part["id"].as_str().unwrap();
    assert!(
        part_id.starts_with(&format!("layer:///messages/{uuid}/parts/")),
        "{part}"
    );
    assert_eq!(part["message_url"], message["url"]);
    assert_eq!(
        part["url"],
        format!(
            "{}/parts/{}",
            message["url"].as_str().unwrap(),
            uuid_of(part_id)
        )
    );
    assert_eq!(part["body"], "hello world");
    assert!(part["updated_at"].as_str().is_some(), "{part}");

    let fetched = body_json(get(&server, &path).await).await;
    assert!(fetched["updated_at"].as_str().is_some(), "{fetched}");
    let parts = fetched["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 2);
    assert!(parts.contains(&part), "{fetched}");

    // a part over the limit is refused
    let response = server
        .platform(Method::POST, &format!("{path}/parts"))
        .json(&text_part(&"x".repeat(2049)))
        .send()
        .await
        .unwrap();
    expect_error(response, 422, "invalid_property").await;
}

#[tokio::test]
async fn update_one_part() {
    let server = TestServer::start().await;
    let (_, message, path) = message_with_parts(&server, &["one", "two"]).await;
    let first = &message["parts"][0];
    let part_path = format!("{path}/parts/{}", uuid_of(first["id"].as_str().unwrap()));
    let response = server
        .platform(Method::PUT, &part_path)
        .json(&json!({"mime_type": "text/markdown", "body": "*one*"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let part = body_json(response).await;
    assert_eq!(part["id"], first["id"]);
    assert_eq!(part["mime_type"], "text/markdown");
    assert_eq!(part["body"], "*one*");
    assert!(part["updated_at"].as_str().is_some(), "{part}");

    let fetched = body_json(get(&server, &path).await).await;
    assert!(fetched["updated_at"].as_str().is_some());
    assert_eq!(fetched["parts"][0], part);
    assert_eq!(fetched["parts"][1], message["parts"][1]);

    let response = server
        .platform(
            Method::PUT,
            &format!("{path}/parts/{}", uuid::Uuid::new_v4()),
        )
        .json(&text_part("x"))
        .send()
        .await
        .unwrap();
    expect_error(response, 404, "not_found").await;
}

#[tokio::test]
async fn replace_all_parts() {
    let server = TestServer::start().await;
    let (_, message, path) = message_with_parts(&server, &["one", "two"]).await;
    let response = server
        .platform(Method::PUT, &format!("{path}/parts"))
        .json(&json!([
            text_part("uno"),
            text_part("dos"),
            text_part("tres")
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let parts = body_json(response).await;
    let parts = parts.as_array().unwrap();
    let bodies: Vec<&str> = parts.iter().map(|p| p["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["uno", "dos", "tres"]);
    for old in message["parts"].as_array().unwrap() {
        assert!(
            parts.iter().all(|p| p["id"] != old["id"]),
            "new ids: {parts:?}"
        );
    }
    let fetched = body_json(get(&server, &path).await).await;
    assert_eq!(fetched["parts"].as_array().unwrap(), parts);
    assert!(fetched["updated_at"].as_str().is_some());
}

#[tokio::test]
async fn delete_a_part() {
    let server = TestServer::start().await;
    let (_, message, path) = message_with_parts(&server, &["one", "two"]).await;
    let part_path = format!(
        "{path}/parts/{}",
        uuid_of(message["parts"][0]["id"].as_str().unwrap())
    );
    let response = server
        .platform(Method::DELETE, &part_path)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    expect_error(get(&server, &part_path).await, 404, "not_found").await;
    expect_error(
        server
            .platform(Method::DELETE, &part_path)
            .send()
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;
    let fetched = body_json(get(&server, &path).await).await;
    assert_eq!(fetched["parts"], json!([message["parts"][1]]));
    assert!(fetched["updated_at"].as_str().is_some());
}

#[tokio::test]
async fn part_ids_in_use_and_empty_replacements_are_refused() {
    let server = TestServer::start().await;
    let (_, message, path) = message_with_parts(&server, &["one"]).await;
    let taken = message["parts"][0]["id"].clone();
    let response = server
        .platform(Method::POST, &format!("{path}/parts"))
        .json(&json!({"id": taken, "mime_type": "text/plain", "body": "dup"}))
        .send()
        .await
        .unwrap();
    expect_error(response, 409, "id_in_use").await;
    let response = server
        .platform(Method::PUT, &format!("{path}/parts"))
        .json(&json!([]))
        .send()
        .await
        .unwrap();
    expect_error(response, 422, "missing_property").await;
    // a client-chosen part id is kept
    let chosen = uuid::Uuid::new_v4();
    let response = server
        .platform(Method::POST, &format!("{path}/parts"))
        .json(&json!({"id": chosen.to_string(), "mime_type": "text/plain", "body": "mine"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let part = body_json(response).await;
    assert_eq!(uuid_of(part["id"].as_str().unwrap()), chosen.to_string());
    let fetched = body_json(get(&server, &path).await).await;
    assert_eq!(fetched["parts"], json!([message["parts"][0], part]));
}

#[tokio::test]
async fn parts_of_a_deleted_message_are_404() {
    let server = TestServer::start().await;
    let (_, message, path) = message_with_parts(&server, &["one"]).await;
    let response = server.platform(Method::DELETE, &path).send().await.unwrap();
    assert_eq!(response.status(), 204);
    let part_path = format!(
        "{path}/parts/{}",
        uuid_of(message["parts"][0]["id"].as_str().unwrap())
    );
    expect_error(
        get(&server, &format!("{path}/parts")).await,
        404,
        "not_found",
    )
    .await;
    expect_error(get(&server, &part_path).await, 404, "not_found").await;
    let response = server
        .platform(Method::POST, &format!("{path}/parts"))
        .json(&text_part("x"))
        .send()
        .await
        .unwrap();
    expect_error(response, 404, "not_found").await;
    let response = server
        .platform(Method::PUT, &part_path)
        .json(&text_part("x"))
        .send()
        .await
        .unwrap();
    expect_error(response, 404, "not_found").await;
}

#[tokio::test]
async fn parts_of_a_message_in_another_conversation_are_404() {
    let server = TestServer::start().await;
    let (_, message, _) = message_with_parts(&server, &["one"]).await;
    let other = server.conversation_of(&["a"]).await;
    let path = format!("{}/parts", message_path(&other, &message));
    expect_error(get(&server, &path).await, 404, "not_found").await;
    let response = server
        .platform(Method::POST, &path)
        .json(&text_part("x"))
        .send()
        .await
        .unwrap();
    expect_error(response, 404, "not_found").await;
}

#[tokio::test]
async fn part_routes_are_3_0_only() {
    let server = TestServer::start().await;
    let (_, message, path) = message_with_parts(&server, &["one"]).await;
    let part_path = format!(
        "{path}/parts/{}",
        uuid_of(message["parts"][0]["id"].as_str().unwrap())
    );
    let parts_path = format!("{path}/parts");
    let requests = [
        (Method::GET, parts_path.as_str(), None),
        (Method::POST, parts_path.as_str(), Some(text_part("x"))),
        (
            Method::PUT,
            parts_path.as_str(),
            Some(json!([text_part("x")])),
        ),
        (Method::GET, part_path.as_str(), None),
        (Method::PUT, part_path.as_str(), Some(text_part("x"))),
        (Method::DELETE, part_path.as_str(), None),
    ];
    for (method, path, body) in requests {
        let mut request = server.platform_version("2.0", method.clone(), path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        expect_error(response, 404, "invalid_endpoint").await;
    }
    // nothing changed
    let fetched = body_json(get(&server, &path).await).await;
    assert_eq!(fetched["parts"], message["parts"]);
}

/// The checks a send makes in its transaction, in order, and that a refused send leaves no
/// trace (no message, no position taken).
#[tokio::test]
async fn refused_sends_answer_in_check_order_and_write_nothing() {
    let server = TestServer::start().await;
    let conversation = server.conversation_of(&["alice", "bob", "carol"]).await;
    server.send_text(&conversation, "first").await;
    let path = messages_path(&conversation);
    let client_send = |user: &'static str| {
        let server = &server;
        let path = path.clone();
        async move {
            let session = server.session_for(user).await;
            server
                .as_session(&session, Method::POST, &path)
                .json(&json!({"parts": [text_part(user)]}))
                .send()
                .await
                .unwrap()
        }
    };
    // Never a member: the conversation does not exist for them.
    expect_error(client_send("mallory").await, 404, "not_found").await;
    // Removed: they still see it, but may not send.
    let removed = server
        .patch_conversation(
            &conversation,
            json!([{"operation": "remove", "property": "participants", "value": "carol"}]),
        )
        .await;
    assert_eq!(removed.status(), 204);
    let body = expect_error(client_send("carol").await, 403, "access_denied").await;
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("no longer a participant"));
    // Suspended: refused before anything else, on the Platform API too.
    let suspended = server
        .platform(Method::PATCH, "/users/bob")
        .header("content-type", "application/vnd.layer-patch+json")
        .json(&json!([{"operation": "set", "property": "suspended", "value": true}]))
        .send()
        .await
        .unwrap();
    assert_eq!(suspended.status(), 202);
    expect_error(
        server
            .post_message(
                &conversation,
                json!({"sender_id": identity_id("bob"), "parts": [text_part("x")]}),
            )
            .await,
        403,
        "user_suspended",
    )
    .await;
    // None of that wrote anything: the next message is the second, at the next position.
    let second = body_json(client_send("alice").await).await;
    assert_eq!(second["parts"][0]["body"], "alice");
    let (messages, total) = list(&server, &conversation, "").await;
    assert_eq!(total, 2);
    assert_eq!(messages[0]["id"], second["id"]);
    assert_eq!(
        second["position"].as_i64().unwrap(),
        messages[1]["position"].as_i64().unwrap() + 1,
        "a refused send took no position"
    );
    // A deleted conversation is gone for its participants.
    let deleted = server
        .platform(Method::DELETE, &format!("/conversations/{conversation}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    expect_error(client_send("alice").await, 404, "not_found").await;
}

/// A Platform API sender who is not a participant is rendered with their identity all the same.
#[tokio::test]
async fn a_sender_outside_the_participants_is_rendered_with_their_identity() {
    let server = TestServer::start().await;
    server.create_identity("outsider", "Out Sider").await;
    server.create_identity("a", "Ay").await;
    let conversation = server.conversation_of(&["a", "b"]).await;
    let response = server
        .post_message(
            &conversation,
            json!({"sender_id": identity_id("outsider"), "parts": [text_part("hi")]}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let message = body_json(response).await;
    assert_eq!(message["sender"]["display_name"], "Out Sider");
    assert_eq!(
        message["recipient_status"],
        json!({identity_id("a"): "sent", identity_id("b"): "sent"})
    );
}
