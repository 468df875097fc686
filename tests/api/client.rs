//! The Client API as the SDKs use it: session users of each version, following the absolute
//! `url`s the server returns (client-wire-protocol.md §0.2), paging with raw `layer:///` ids.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{
    accept_version, assert_keys, json, layer_count, Provider, TestServer, IDENTITY_KEY_A,
};

async fn logged_in(server: &TestServer, users: &[&str]) -> Vec<String> {
    let provider = Provider::register(&server.store, server.app_id, IDENTITY_KEY_A).await;
    let mut sessions = Vec::new();
    for user in users {
        sessions.push(server.login(&provider, user).await);
    }
    sessions
}

/// A request to an absolute URL the server rendered, as the user, in `version`.
fn follow(
    server: &TestServer,
    session: &str,
    version: &str,
    method: Method,
    url: &str,
) -> reqwest::RequestBuilder {
    assert!(
        url.starts_with(&server.base),
        "{url} is under {}",
        server.base
    );
    server
        .raw(method, &url[server.base.len()..])
        .header("accept", accept_version(version))
        .header(
            "authorization",
            format!("Layer session-token=\"{session}\""),
        )
}

/// GET an absolute rendered URL as the user: the JSON of a 200.
async fn fetch(server: &TestServer, session: &str, version: &str, url: &str) -> Value {
    let response = follow(server, session, version, Method::GET, url)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "GET {url}");
    json(response).await
}

#[tokio::test]
async fn the_urls_the_server_renders_are_where_the_objects_live() {
    let server = TestServer::start().await;
    let s = logged_in(&server, &["alice", "bob"]).await;
    let (alice, bob) = (&s[0], &s[1]);
    let response = server
        .as_session(alice, Method::POST, "/conversations")
        .json(&json!({"participants": ["layer:///identities/bob"], "metadata": {"topic": "x"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let conversation = json(response).await;
    let url = conversation["url"].as_str().unwrap().to_owned();
    assert_eq!(
        url,
        format!(
            "{}/conversations/{}",
            server.base,
            conversation["id"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
        )
    );
    let response = follow(&server, alice, "3.0", Method::POST, &format!("{url}/messages"))
        .json(&json!({"parts": [{"body": "hi", "mime_type": "text/plain"}, {"body": "AAEC", "mime_type": "application/octet-stream", "encoding": "base64"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let message = json(response).await;
    assert_eq!(message["conversation"]["url"], url.as_str());

    // Bob follows the urls: the message, its receipts, the conversation and mark_all_read.
    let message_url = message["url"].as_str().unwrap();
    let response = follow(&server, bob, "3.0", Method::GET, message_url)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = json(response).await;
    assert_eq!(seen["is_unread"], true);
    assert_eq!(seen["recipient_status"]["layer:///identities/bob"], "sent");
    let response = follow(
        &server,
        bob,
        "3.0",
        Method::POST,
        seen["receipts_url"].as_str().unwrap(),
    )
    .json(&json!({"type": "delivery"}))
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(
        fetch(&server, bob, "3.0", message_url).await["recipient_status"]
            ["layer:///identities/bob"],
        "delivered"
    );
    assert_eq!(
        fetch(&server, bob, "3.0", &url).await["unread_message_count"],
        1
    );
    let response = follow(
        &server,
        bob,
        "3.0",
        Method::POST,
        &format!("{url}/mark_all_read"),
    )
    .json(&json!({"position": message["position"]}))
    .send()
    .await
    .unwrap();
    assert!(response.status().is_success());
    assert_eq!(
        fetch(&server, bob, "3.0", &url).await["unread_message_count"],
        0
    );
    assert_eq!(
        fetch(&server, alice, "3.0", message_url).await["recipient_status"]
            ["layer:///identities/bob"],
        "read"
    );

    // PATCH and DELETE go to the same url.
    let response = follow(&server, alice, "3.0", Method::PATCH, &url)
        .header("content-type", "application/vnd.layer-patch+json")
        .json(&json!([{"operation": "set", "property": "metadata.topic", "value": "y"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(
        fetch(&server, bob, "3.0", &url).await["metadata"]["topic"],
        "y"
    );
    let response = follow(
        &server,
        alice,
        "3.0",
        Method::DELETE,
        &format!("{url}?mode=all_participants"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 204);
    let response = follow(&server, bob, "3.0", Method::GET, &url)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn each_version_renders_its_own_shapes() {
    let server = TestServer::start().await;
    let s = logged_in(&server, &["alice", "bob"]).await;
    let alice = &s[0];
    let response = server
        .as_session(alice, Method::POST, "/conversations")
        .json(&json!({"participants": ["bob"]}))
        .send()
        .await
        .unwrap();
    let url = json(response).await["url"].as_str().unwrap().to_owned();
    let response = follow(
        &server,
        alice,
        "3.0",
        Method::POST,
        &format!("{url}/messages"),
    )
    .json(&json!({"parts": [{"body": "hi", "mime_type": "text/plain"}]}))
    .send()
    .await
    .unwrap();
    let message_url = json(response).await["url"].as_str().unwrap().to_owned();

    // 1.0: user ids.
    let c = fetch(&server, alice, "1.0", &url).await;
    assert_eq!(c["participants"], json!(["alice", "bob"]));
    let m = fetch(&server, alice, "1.0", &message_url).await;
    assert_eq!(m["sender"]["user_id"], "alice");
    assert_eq!(m["recipient_status"]["bob"], "sent");
    // 1.x part ids are indexes under the message id.
    assert_eq!(
        m["parts"][0]["id"],
        format!("{}/parts/0", m["id"].as_str().unwrap())
    );

    // 2.0 (layer-websdk): BasicIdentity objects (no metadata key), identity-id receipts.
    let c = fetch(&server, alice, "2.0", &url).await;
    let bob = c["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["user_id"] == "bob")
        .unwrap()
        .clone();
    assert_keys(
        &bob,
        &["id", "url", "user_id", "display_name", "avatar_url"],
    );
    assert_eq!(bob["id"], "layer:///identities/bob");
    assert_eq!(bob["url"], format!("{}/identities/bob", server.base));
    assert_eq!(c["metadata"], json!({}), "never null");
    assert_eq!(c["unread_message_count"], 0);
    let m = fetch(&server, alice, "2.0", &message_url).await;
    assert_eq!(m["sender"]["user_id"], "alice");
    assert_eq!(m["recipient_status"]["layer:///identities/alice"], "read");
    assert_eq!(m["is_unread"], false, "own messages are read");

    // 3.0 (web-xdk): part ids and updated_at.
    let m = fetch(&server, alice, "3.0", &message_url).await;
    let part_id = m["parts"][0]["id"].as_str().unwrap();
    assert!(
        part_id.starts_with(&format!("{}/parts/", m["id"].as_str().unwrap())),
        "{part_id}"
    );
    assert!(m.get("updated_at").is_some(), "null until the parts change");
}

#[tokio::test]
async fn paging_with_raw_layer_ids_as_the_sdks_send_them() {
    let server = TestServer::start().await;
    let s = logged_in(&server, &["alice"]).await;
    let alice = &s[0];
    let mut ids = Vec::new();
    for n in 0..5 {
        let response = server
            .as_session(alice, Method::POST, "/conversations")
            .json(&json!({"participants": [format!("peer{n}")]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        ids.push(json(response).await["id"].as_str().unwrap().to_owned());
    }
    ids.reverse(); // newest first
    let mut seen = Vec::new();
    let mut from: Option<String> = None;
    loop {
        // `from_id` unencoded, exactly as the SDKs build the query string.
        let path = match &from {
            Some(id) => format!("/conversations?sort_by=created_at&page_size=2&from_id={id}"),
            None => "/conversations?sort_by=created_at&page_size=2".to_owned(),
        };
        let response = server
            .as_session(alice, Method::GET, &path)
            .send()
            .await
            .unwrap();
        assert_eq!(layer_count(&response), 5);
        let page: Vec<Value> = serde_json::from_value(json(response).await).unwrap();
        seen.extend(page.iter().map(|c| c["id"].as_str().unwrap().to_owned()));
        if page.len() < 2 {
            break;
        }
        from = Some(page.last().unwrap()["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen, ids);
}
