//! What a session user may reach: only conversations they take part in (or left, with the
//! history up to then), never another user's or another app's objects, not even by guessing
//! ids. Every user here logs in through the real identity-token flow.

use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

use crate::common::{
    expect_error, json, layer_count, Provider, TestServer, IDENTITY_KEY_A, IDENTITY_KEY_B,
};

struct World {
    server: TestServer,
    alice: String,
    bob: String,
    /// Same app, in none of alice's conversations.
    carol: String,
    /// A user of a second app whose user id is also "alice".
    other_alice: String,
    conversation: Uuid,
    message: Uuid,
    part: Uuid,
}

async fn world() -> World {
    let server = TestServer::start().await;
    let provider = Provider::register(&server.store, server.app_id, IDENTITY_KEY_A).await;
    let (other_app, _) = server.second_app().await;
    let other_provider = Provider::register(&server.store, other_app, IDENTITY_KEY_B).await;
    let alice = server.login(&provider, "alice").await;
    let bob = server.login(&provider, "bob").await;
    let carol = server.login(&provider, "carol").await;
    let other_alice = server.login_to(other_app, &other_provider, "alice").await;

    let conversation = Uuid::new_v4();
    let response = server
        .as_session(&alice, Method::POST, "/conversations")
        .json(&json!({
            "id": format!("layer:///conversations/{conversation}"),
            "participants": ["layer:///identities/alice", "layer:///identities/bob"],
            "distinct": false,
            "metadata": {"secret": "alice and bob only"},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let (message, part) = (Uuid::new_v4(), Uuid::new_v4());
    let response = server
        .as_session(&alice, Method::POST, &format!("/conversations/{conversation}/messages"))
        .json(&json!({
            "id": format!("layer:///messages/{message}"),
            "parts": [{"id": format!("layer:///messages/{message}/parts/{part}"), "body": "psst", "mime_type": "text/plain"}],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    World {
        server,
        alice,
        bob,
        carol,
        other_alice,
        conversation,
        message,
        part,
    }
}

#[tokio::test]
async fn outsiders_reach_nothing_of_a_conversation() {
    let w = world().await;
    let (c, m, p) = (w.conversation, w.message, w.part);
    for (who, session) in [("carol", &w.carol), ("another app's alice", &w.other_alice)] {
        let response = w
            .server
            .as_session(session, Method::GET, "/conversations")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(layer_count(&response), 0, "{who}");
        assert_eq!(json(response).await, json!([]), "{who}");

        let attempts: Vec<(Method, String, Option<serde_json::Value>)> = vec![
            (Method::GET, format!("/conversations/{c}"), None),
            (
                Method::GET,
                format!("/conversations/layer%3A%2F%2F%2Fconversations%2F{c}"),
                None,
            ),
            (Method::GET, format!("/conversations/{c}/messages"), None),
            (
                Method::POST,
                format!("/conversations/{c}/messages"),
                Some(json!({"parts": [{"body": "hi", "mime_type": "text/plain"}]})),
            ),
            (
                Method::POST,
                format!("/conversations/{c}/mark_all_read"),
                Some(json!({"position": null})),
            ),
            (
                Method::DELETE,
                format!("/conversations/{c}?mode=all_participants"),
                None,
            ),
            (
                Method::DELETE,
                format!("/conversations/{c}?mode=my_devices&leave=true"),
                None,
            ),
            (Method::GET, format!("/messages/{m}"), None),
            (
                Method::DELETE,
                format!("/messages/{m}?mode=all_participants"),
                None,
            ),
            (
                Method::DELETE,
                format!("/messages/{m}?mode=my_devices"),
                None,
            ),
            (
                Method::POST,
                format!("/messages/{m}/receipts"),
                Some(json!({"type": "read"})),
            ),
            (Method::GET, format!("/messages/{m}/parts"), None),
            (Method::GET, format!("/messages/{m}/parts/{p}"), None),
            (
                Method::POST,
                format!("/messages/{m}/parts"),
                Some(json!({"body": "x", "mime_type": "text/plain"})),
            ),
            (
                Method::PUT,
                format!("/messages/{m}/parts/{p}"),
                Some(json!({"body": "x", "mime_type": "text/plain"})),
            ),
            (Method::DELETE, format!("/messages/{m}/parts/{p}"), None),
        ];
        for (method, path, body) in attempts {
            let mut request = w.server.as_session(session, method.clone(), &path);
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.unwrap();
            expect_error(response, 404, "not_found").await;
        }
        let response = w
            .server
            .as_session(session, Method::PATCH, &format!("/conversations/{c}"))
            .header("content-type", "application/vnd.layer-patch+json")
            .json(&json!([{"operation": "add", "property": "participants", "id": "layer:///identities/carol"}]))
            .send()
            .await
            .unwrap();
        expect_error(response, 404, "not_found").await;
    }

    // Nothing the outsiders tried changed anything.
    let response = w
        .server
        .as_session(&w.bob, Method::GET, &format!("/conversations/{c}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let conversation = json(response).await;
    assert_eq!(conversation["participants"].as_array().unwrap().len(), 2);
    assert_eq!(conversation["metadata"]["secret"], "alice and bob only");
    let response = w
        .server
        .as_session(&w.bob, Method::GET, &format!("/messages/{m}"))
        .send()
        .await
        .unwrap();
    let message = json(response).await;
    assert_eq!(message["parts"][0]["body"], "psst");
    assert_eq!(
        message["recipient_status"]["layer:///identities/bob"],
        "sent"
    );
}

#[tokio::test]
async fn guessed_ids_reveal_nothing() {
    let w = world().await;
    let (c, m) = (w.conversation, w.message);
    // Carol re-using alice's conversation id: taken, but the 409 carries nothing.
    let response = w
        .server
        .as_session(&w.carol, Method::POST, "/conversations")
        .json(&json!({"id": c.to_string(), "participants": ["dave"], "distinct": false}))
        .send()
        .await
        .unwrap();
    let error = expect_error(response, 409, "id_in_use").await;
    assert!(error["data"].is_null(), "{error}");

    // ... and the message id, sent into a conversation of her own.
    let response = w
        .server
        .as_session(&w.carol, Method::POST, "/conversations")
        .json(&json!({"participants": ["dave"], "distinct": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let own = json(response).await["id"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let response = w
        .server
        .as_session(
            &w.carol,
            Method::POST,
            &format!("/conversations/{own}/messages"),
        )
        .json(&json!({"id": m.to_string(), "parts": [{"body": "hi", "mime_type": "text/plain"}]}))
        .send()
        .await
        .unwrap();
    let error = expect_error(response, 409, "id_in_use").await;
    assert!(error["data"].is_null(), "{error}");

    // Alice retrying her own create gets her object back (what the SDKs count as success).
    let response = w
        .server
        .as_session(&w.alice, Method::POST, &format!("/conversations/{c}/messages"))
        .json(&json!({"id": format!("layer:///messages/{m}"), "parts": [{"body": "psst", "mime_type": "text/plain"}]}))
        .send()
        .await
        .unwrap();
    let error = expect_error(response, 409, "id_in_use").await;
    assert_eq!(error["data"]["id"], format!("layer:///messages/{m}"));
    assert_eq!(
        error["data"]["parts"][0]["id"],
        format!("layer:///messages/{m}/parts/{}", w.part)
    );

    // Ids are per app: the other app's alice may use the same ids for her own objects.
    let response = w
        .server
        .as_session(&w.other_alice, Method::POST, "/conversations")
        .json(&json!({"id": format!("layer:///conversations/{c}"), "participants": ["bob"], "distinct": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let theirs = json(response).await;
    assert_eq!(theirs["id"], format!("layer:///conversations/{c}"));
    assert_eq!(theirs["metadata"], json!({}));
    let response = w
        .server
        .as_session(&w.alice, Method::GET, &format!("/conversations/{c}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        json(response).await["metadata"]["secret"],
        "alice and bob only"
    );
}

#[tokio::test]
async fn a_user_who_left_keeps_the_history_up_to_then() {
    let w = world().await;
    let c = w.conversation;
    let response = w
        .server
        .as_session(
            &w.bob,
            Method::DELETE,
            &format!("/conversations/{c}?mode=my_devices&leave=true"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let response = w
        .server
        .as_session(
            &w.alice,
            Method::POST,
            &format!("/conversations/{c}/messages"),
        )
        .json(&json!({"parts": [{"body": "after bob left", "mime_type": "text/plain"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let later = json(response).await["id"].as_str().unwrap().to_owned();

    // Bob can no longer write, and sees nothing sent after he left.
    let response = w
        .server
        .as_session(
            &w.bob,
            Method::POST,
            &format!("/conversations/{c}/messages"),
        )
        .json(&json!({"parts": [{"body": "hello?", "mime_type": "text/plain"}]}))
        .send()
        .await
        .unwrap();
    assert!(
        matches!(response.status().as_u16(), 403 | 404),
        "{}",
        response.status()
    );
    let response = w
        .server
        .as_session(
            &w.bob,
            Method::GET,
            &format!("/messages/{}", later.rsplit('/').next().unwrap()),
        )
        .send()
        .await
        .unwrap();
    expect_error(response, 404, "not_found").await;
}

#[tokio::test]
async fn a_session_is_not_a_bearer_token_nor_the_reverse() {
    let w = world().await;
    let response = w
        .server
        .raw(
            Method::GET,
            &format!("/apps/{}/conversations/{}", w.server.app_id, w.conversation),
        )
        .header("accept", crate::common::ACCEPT_V3)
        .bearer_auth(&w.alice)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let response = w
        .server
        .as_session(&w.server.token, Method::GET, "/conversations")
        .send()
        .await
        .unwrap();
    expect_error(response, 401, "authentication_required").await;
}
