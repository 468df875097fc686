//! If-None-Match de-duplication of creates.

use reqwest::Method;
use serde_json::json;

use crate::common::{json as body_json, TestServer};

async fn identity_rows(server: &TestServer, user: &str) -> usize {
    usize::from(
        server
            .store
            .identity(server.app_id, user)
            .await
            .unwrap()
            .is_some(),
    )
}

#[tokio::test]
async fn a_repeated_create_is_replayed_not_re_executed() {
    let server = TestServer::start().await;
    let tag = uuid::Uuid::new_v4();
    let create = |tag: String| {
        server
            .platform(Method::POST, "/users/bob/identity")
            .header("if-none-match", tag)
            .json(&json!({"display_name": "Bob"}))
            .send()
    };
    // quoted form first, then the bare form of the same tag
    let first = create(format!("\"{tag}\"")).await.unwrap();
    assert_eq!(first.status(), 201);
    let again = create(tag.to_string()).await.unwrap();
    // Executed again, the create would be a 409 (the identity exists); the replay is the 201.
    assert_eq!(again.status(), 201);
    assert_eq!(identity_rows(&server, "bob").await, 1);

    // a new tag does execute
    let fresh = create(format!("\"{}\"", uuid::Uuid::new_v4()))
        .await
        .unwrap();
    assert_eq!(fresh.status(), 409);
}

#[tokio::test]
async fn replays_carry_the_first_body_and_status() {
    let server = TestServer::start().await;
    let tag = format!("\"{}\"", uuid::Uuid::new_v4());
    let send = || {
        server
            .platform(Method::POST, "/users/carol/identity")
            .header("if-none-match", &tag)
            .json(&json!({"first_name": "no display name"}))
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), 422);
    let first_body = body_json(first).await;
    let second = send().await.unwrap();
    assert_eq!(second.status(), 422);
    assert_eq!(
        second.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    assert_eq!(body_json(second).await, first_body);
}

#[tokio::test]
async fn concurrent_repeats_execute_once() {
    let server = TestServer::start().await;
    for round in 0..5 {
        let tag = format!("\"{}\"", uuid::Uuid::new_v4());
        let user = format!("dave{round}");
        let send = || {
            server
                .platform(Method::POST, &format!("/users/{user}/identity"))
                .header("if-none-match", &tag)
                .json(&json!({"display_name": "Dave"}))
                .send()
        };
        let (a, b, c) = tokio::join!(send(), send(), send());
        // Executed more than once, all but one would be 409s.
        for response in [a, b, c] {
            assert_eq!(response.unwrap().status(), 201, "round {round}");
        }
        assert_eq!(identity_rows(&server, &user).await, 1);
    }
}

#[tokio::test]
async fn tags_are_scoped_to_the_caller_and_checked() {
    let server = TestServer::start().await;
    let tag = format!("\"{}\"", uuid::Uuid::new_v4());
    let first = server
        .platform(Method::POST, "/users/erin/identity")
        .header("if-none-match", &tag)
        .json(&json!({"display_name": "Erin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 201);
    // The same tag on a different request is refused rather than answered with another's result.
    let other = server
        .platform(Method::POST, "/users/frank/identity")
        .header("if-none-match", &tag)
        .json(&json!({"display_name": "Frank"}))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 400);
    assert_eq!(body_json(other).await["id"], "invalid_request_id");
    assert_eq!(identity_rows(&server, "frank").await, 0);

    // Not a UUID
    let bad = server
        .platform(Method::POST, "/users/gina/identity")
        .header("if-none-match", "\"yesterday\"")
        .json(&json!({"display_name": "Gina"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(body_json(bad).await["code"], 3);
}

#[tokio::test]
async fn entries_expire_after_the_window() {
    let server = TestServer::start_with(&[("LAYER__DEDUP__TTL_SECS", "0")]).await;
    let tag = format!("\"{}\"", uuid::Uuid::new_v4());
    let send = || {
        server
            .platform(Method::POST, "/users/hal/identity")
            .header("if-none-match", &tag)
            .json(&json!({"display_name": "Hal"}))
            .send()
    };
    assert_eq!(send().await.unwrap().status(), 201);
    // With a zero window the tag is forgotten at once, so the repeat executes (and conflicts).
    assert_eq!(send().await.unwrap().status(), 409);
}
