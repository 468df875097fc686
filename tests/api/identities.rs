//! Platform API identities: the first resource through the whole pipeline.

use reqwest::Method;
use serde_json::json;

use crate::common::{json as body_json, uuid_of, TestServer};

#[tokio::test]
async fn create_get_replace_round_trip_per_version() {
    let server = TestServer::start().await;
    let user = "namespace/12345";
    let path = "/users/namespace%2F12345/identity";
    let response = server
        .platform(Method::POST, path)
        .json(&json!({"display_name": "Ann", "identity_type": "bot", "metadata": {"level": "2"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(response.text().await.unwrap(), "");

    let body = body_json(server.platform(Method::GET, path).send().await.unwrap()).await;
    assert_eq!(body["id"], "layer:///identities/namespace%2F12345");
    assert_eq!(body["user_id"], user);
    assert_eq!(
        body["url"],
        format!("{}/apps/{}{path}", server.base, server.app_id)
    );
    assert_eq!(body["identity_type"], "bot");
    assert_eq!(body["metadata"]["level"], "2");
    assert!(body["first_name"].is_null(), "explicit nulls: {body}");

    // 1.x rendered profile fields only
    let v1 = body_json(
        server
            .raw(Method::GET, &format!("/apps/{}{path}", server.app_id))
            .bearer_auth(&server.token)
            .header("accept", "application/vnd.layer+json; version=1.1")
            .send()
            .await
            .unwrap(),
    )
    .await;
    // 1.x has no identity ids, but keeps user_id (the Python client requires it).
    assert!(v1.get("id").is_none() && v1["user_id"] == user, "{v1}");
    assert_eq!(v1["display_name"], "Ann");

    // PUT replaces: fields not sent are cleared
    let response = server
        .platform(Method::PUT, path)
        .json(&json!({"display_name": "Ann B"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let body = body_json(server.platform(Method::GET, path).send().await.unwrap()).await;
    assert_eq!(body["display_name"], "Ann B");
    assert_eq!(body["identity_type"], "user");
    assert_eq!(body["metadata"], json!({}));

    // PUT on an unknown user creates it
    let response = server
        .platform(Method::PUT, "/users/newbie/identity")
        .json(&json!({"display_name": "New"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert!(server
        .store
        .identity(server.app_id, "newbie")
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn validation_errors_name_the_property() {
    let server = TestServer::start().await;
    let cases = [
        (json!({}), "missing_property", "display_name"),
        (
            json!({"display_name": "x", "identity_type": "robot"}),
            "invalid_property",
            "identity_type",
        ),
        (
            json!({"display_name": "x".repeat(129)}),
            "invalid_property",
            "display_name",
        ),
        (
            json!({"display_name": "x", "metadata": {"a": {"nested": "no"}}}),
            "invalid_property",
            "metadata",
        ),
        (
            json!({"display_name": "x", "user_id": "someone-else"}),
            "invalid_property",
            "user_id",
        ),
    ];
    for (body, id, property) in cases {
        let response = server
            .platform(Method::POST, "/users/val/identity")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 422, "{body}");
        let error = body_json(response).await;
        assert_eq!(error["id"], id, "{body}");
        assert_eq!(error["data"]["property"], property, "{body}");
    }
    assert!(server
        .store
        .identity(server.app_id, "val")
        .await
        .unwrap()
        .is_none());
}

/// Writes that read before they write (an identity PUT reads the old identity to know what
/// changed) race message sends into a conversation of the same users, which write the same
/// change streams. None may fail: on SQLite a deferred transaction's first write would fail
/// with `SQLITE_BUSY` once another connection committed after its read, so the store takes
/// the write lock up front.
#[tokio::test]
async fn concurrent_read_then_write_transactions_all_succeed() {
    let server = TestServer::start().await;
    let users: Vec<String> = (0..4).map(|i| format!("racer-{i}")).collect();
    for user in &users {
        server.create_identity(user, "start").await;
    }
    let names: Vec<&str> = users.iter().map(String::as_str).collect();
    let conversation = server.conversation_of(&names).await;
    let conversation_path = format!("/conversations/{}/messages", uuid_of(&conversation));
    let mut calls = tokio::task::JoinSet::new();
    for round in 0..10 {
        for user in &users {
            let request = server
                .platform(Method::PUT, &format!("/users/{user}/identity"))
                .json(&json!({"display_name": format!("{user} {round}")}));
            calls.spawn(async move { ("identity PUT", request.send().await.unwrap().status()) });
        }
        let request = server
            .platform(Method::POST, &conversation_path)
            .json(&json!({
                "sender": {"user_id": names[round % names.len()]},
                "parts": [{"body": format!("m{round}"), "mime_type": "text/plain"}],
            }));
        calls.spawn(async move { ("message POST", request.send().await.unwrap().status()) });
    }
    while let Some(done) = calls.join_next().await {
        let (what, status) = done.unwrap();
        assert!(status.is_success(), "{what}: {status}");
    }
    let listed = body_json(
        server
            .platform(Method::GET, &conversation_path)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(listed.as_array().map(Vec::len), Some(10), "{listed}");
}
