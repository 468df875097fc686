//! Announcements (server-api.md §3.8, §9): the app sends them; each recipient reads,
//! acknowledges and deletes their own copy through the proxy (§13).

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{
    expect_error, identity_id, json as body_json, layer_count, uuid_of, TestServer,
};

async fn announce(server: &TestServer, body: Value) -> reqwest::Response {
    server
        .platform(Method::POST, "/announcements")
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// A v3 announcement from a bot identity to `recipients`; the response body.
pub(crate) async fn announcement_to(server: &TestServer, recipients: &[&str]) -> Value {
    let recipients: Vec<String> = recipients.iter().map(|r| identity_id(r)).collect();
    let response = announce(
        server,
        json!({
            "recipients": recipients,
            "sender_id": identity_id("admin"),
            "parts": [{"body": "Hello, World!", "mime_type": "text/plain"}],
            "notification": {"title": "New Alert", "text": "Alert"},
        }),
    )
    .await;
    assert_eq!(response.status(), 202);
    body_json(response).await
}

async fn user_list(server: &TestServer, user: &str) -> (Vec<Value>, i64) {
    let response = server
        .proxy(user, Method::GET, "/announcements")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let count = layer_count(&response);
    (body_json(response).await.as_array().unwrap().clone(), count)
}

#[tokio::test]
async fn announce_is_202_with_the_announcement() {
    let server = TestServer::start().await;
    server.create_identity("admin", "The Admin").await;
    let announcement = announcement_to(&server, &["u1", "u2"]).await;
    let id = announcement["id"].as_str().unwrap();
    assert!(id.starts_with("layer:///announcements/"), "{announcement}");
    let uuid = uuid_of(id);
    assert!(uuid::Uuid::try_parse(&uuid).is_ok());
    assert_eq!(
        announcement["url"],
        format!("{}/announcements/{uuid}", server.app_url())
    );
    assert!(announcement["sent_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    assert_eq!(
        announcement["recipients"],
        json!([identity_id("u1"), identity_id("u2")])
    );
    assert_eq!(
        announcement["sender"],
        json!({
            "id": identity_id("admin"),
            "url": format!("{}/users/admin/identity", server.app_url()),
            "user_id": "admin",
            "display_name": "The Admin",
            "avatar_url": null,
        })
    );
    let parts = announcement["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0]["body"], "Hello, World!");
    assert_eq!(parts[0]["mime_type"], "text/plain");
}

#[tokio::test]
async fn announce_v1_with_a_named_sender() {
    let server = TestServer::start().await;
    let response = server
        .platform_version("1.1", Method::POST, "/announcements")
        .json(&json!({
            "recipients": ["u1", "u2"],
            "sender": {"name": "The System"},
            "parts": [{"body": "Hi", "mime_type": "text/plain"}],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let announcement = body_json(response).await;
    assert_eq!(announcement["recipients"], json!(["u1", "u2"]));
    assert_eq!(
        announcement["sender"],
        json!({"user_id": null, "name": "The System"})
    );
}

#[tokio::test]
async fn announce_validation() {
    let server = TestServer::start().await;
    let error = expect_error(announce(&server, json!({})).await, 422, "missing_property").await;
    assert!(error["data"]["property"].is_string(), "{error}");
    let parts = json!([{"body": "Hi", "mime_type": "text/plain"}]);
    for (body, property) in [
        (
            json!({"sender": {"name": "S"}, "parts": parts}),
            "recipients",
        ),
        (
            json!({"recipients": [], "sender": {"name": "S"}, "parts": parts}),
            "recipients",
        ),
        (json!({"recipients": ["u1"], "parts": parts}), "sender"),
        (
            json!({"recipients": ["u1"], "sender": {"name": "S"}}),
            "parts",
        ),
    ] {
        let error = expect_error(
            announce(&server, body.clone()).await,
            422,
            "missing_property",
        )
        .await;
        assert_eq!(error["data"]["property"], property, "{body}");
    }
    let error = expect_error(
        announce(
            &server,
            json!({"recipients": ["u1"], "sender": {"name": "S"},
                   "parts": [{"body": "x".repeat(2049), "mime_type": "text/plain"}]}),
        )
        .await,
        422,
        "invalid_property",
    )
    .await;
    assert!(error["data"]["property"]
        .as_str()
        .unwrap()
        .starts_with("parts"));
    assert_eq!(user_list(&server, "u1").await.1, 0);
}

#[tokio::test]
async fn a_recipient_lists_gets_acknowledges_and_deletes_it() {
    let server = TestServer::start().await;
    let older = announcement_to(&server, &["u1"]).await;
    let announcement = announcement_to(&server, &["u1", "u2"]).await;
    let uuid = uuid_of(announcement["id"].as_str().unwrap());
    let own_url = format!("{}/users/u1/announcements/{uuid}", server.app_url());

    let (items, count) = user_list(&server, "u1").await;
    assert_eq!(count, 2);
    let listed: Vec<&Value> = items.iter().map(|a| &a["id"]).collect();
    // newest first (equal sent_at may come in either order)
    if announcement["sent_at"] != older["sent_at"] {
        assert_eq!(listed, [&announcement["id"], &older["id"]]);
    } else {
        assert_eq!(listed.len(), 2);
    }

    let path = format!("/announcements/{uuid}");
    let response = server.proxy("u1", Method::GET, &path).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let seen = body_json(response).await;
    assert_eq!(seen["id"], announcement["id"]);
    assert_eq!(seen["url"], own_url);
    assert_eq!(seen["receipts_url"], format!("{own_url}/receipts"));
    assert_eq!(seen["is_unread"], true);
    assert_eq!(seen["parts"][0]["body"], "Hello, World!");
    assert_eq!(seen["recipient_status"], json!({identity_id("u1"): "sent"}));

    let response = server
        .proxy("u1", Method::POST, &format!("{path}/receipts"))
        .json(&json!({"type": "read"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let seen = body_json(server.proxy("u1", Method::GET, &path).send().await.unwrap()).await;
    assert_eq!(seen["is_unread"], false);
    assert_eq!(seen["recipient_status"], json!({identity_id("u1"): "read"}));
    // u2's copy is untouched
    let theirs = body_json(server.proxy("u2", Method::GET, &path).send().await.unwrap()).await;
    assert_eq!(theirs["is_unread"], true);

    let response = server
        .proxy("u1", Method::POST, &format!("{path}/receipts"))
        .json(&json!({"type": "bogus"}))
        .send()
        .await
        .unwrap();
    expect_error(response, 422, "invalid_property").await;

    let response = server
        .proxy("u1", Method::DELETE, &path)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let (items, count) = user_list(&server, "u1").await;
    assert_eq!(count, 1);
    assert_eq!(items[0]["id"], older["id"]);
    expect_error(
        server.proxy("u1", Method::GET, &path).send().await.unwrap(),
        404,
        "not_found",
    )
    .await;
    expect_error(
        server
            .proxy("u1", Method::DELETE, &path)
            .send()
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;
    // still there for u2
    assert_eq!(user_list(&server, "u2").await.1, 1);
}

#[tokio::test]
async fn a_non_recipient_sees_nothing() {
    let server = TestServer::start().await;
    let announcement = announcement_to(&server, &["u1"]).await;
    let path = format!(
        "/announcements/{}",
        uuid_of(announcement["id"].as_str().unwrap())
    );
    assert_eq!(user_list(&server, "stranger").await, (vec![], 0));
    expect_error(
        server
            .proxy("stranger", Method::GET, &path)
            .send()
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;
    let response = server
        .proxy("stranger", Method::POST, &format!("{path}/receipts"))
        .json(&json!({"type": "read"}))
        .send()
        .await
        .unwrap();
    expect_error(response, 404, "not_found").await;
    expect_error(
        server
            .proxy("stranger", Method::DELETE, &path)
            .send()
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;
    // and the recipient still has it, unread
    let (items, _) = user_list(&server, "u1").await;
    assert_eq!(items[0]["is_unread"], true);
}

#[tokio::test]
async fn announcements_page_with_layer_count() {
    let server = TestServer::start().await;
    for _ in 0..3 {
        announcement_to(&server, &["u1"]).await;
    }
    let (all, count) = user_list(&server, "u1").await;
    assert_eq!((all.len(), count), (3, 3));
    let response = server
        .proxy("u1", Method::GET, "/announcements?page_size=2")
        .send()
        .await
        .unwrap();
    assert_eq!(layer_count(&response), 3);
    let page1 = body_json(response).await;
    assert_eq!(page1.as_array().unwrap()[..], all[..2]);
    let response = server
        .proxy(
            "u1",
            Method::GET,
            &format!(
                "/announcements?page_size=2&from_id={}",
                page1[1]["id"].as_str().unwrap()
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(layer_count(&response), 3);
    assert_eq!(body_json(response).await.as_array().unwrap()[..], all[2..]);
}
