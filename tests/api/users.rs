//! Platform API users (server-api.md §12): badges, block lists, suspension, sessions, the app's
//! session TTL and following, through the real wire.

use reqwest::{Method, RequestBuilder, Response};
use serde_json::{json, Value};

use crate::common::{json as body_json, TestServer};

const PATCH_TYPE: &str = "application/vnd.layer-patch+json";

/// A Platform API request with an explicit version (`path` below `/apps/:app_uuid`).
fn at(server: &TestServer, version: &str, method: Method, path: &str) -> RequestBuilder {
    server
        .raw(method, &format!("/apps/{}{path}", server.app_id))
        .bearer_auth(&server.token)
        .header(
            "accept",
            format!("application/vnd.layer+json; version={version}"),
        )
}

/// A Layer Patch request (v3 unless the caller overrides the Accept header).
async fn patch(server: &TestServer, path: &str, body: Value) -> Response {
    server
        .platform(Method::PATCH, path)
        .header("content-type", PATCH_TYPE)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

async fn get_json(request: RequestBuilder) -> Value {
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    body_json(response).await
}

/// The `user_id`s of a block list, in either version's shape.
async fn blocked(server: &TestServer, owner_path: &str) -> Vec<String> {
    let list = get_json(server.platform(Method::GET, &format!("/users/{owner_path}/blocks"))).await;
    list.as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["user_id"].as_str().unwrap().to_owned())
        .collect()
}

/// Whether the session token still opens the Client API (the SDKs' pre-WebSocket probe).
async fn session_alive(server: &TestServer, token: &str) -> bool {
    let response = server
        .client(Method::GET, "/?action=validateConnectionForWebsocket")
        .header("authorization", format!("Layer session-token=\"{token}\""))
        .send()
        .await
        .unwrap();
    match response.status().as_u16() {
        200 => true,
        401 => false,
        other => panic!("unexpected status {other}"),
    }
}

/// Asserts a 422 `invalid_property` naming `property`; returns the message.
async fn assert_invalid_property(response: Response, property: &str) -> String {
    assert_eq!(response.status(), 422);
    let error = body_json(response).await;
    assert_eq!(error["id"], "invalid_property", "{error}");
    assert_eq!(error["data"]["property"], property, "{error}");
    error["message"].as_str().unwrap().to_owned()
}

async fn assert_error(response: Response, status: u16, id: &str) {
    assert_eq!(response.status(), status);
    assert_eq!(body_json(response).await["id"], id);
}

#[tokio::test]
async fn badge_counts_and_external_count() {
    let server = TestServer::start().await;
    for version in ["1.0", "1.1", "2.0", "3.0"] {
        let badge = get_json(at(&server, version, Method::GET, "/users/nobody/badge")).await;
        assert_eq!(
            badge,
            json!({"external_unread_count": 0, "unread_conversation_count": 0, "unread_message_count": 0})
        );
    }
    let response = server
        .platform(Method::PUT, "/users/a%2Fb/badge")
        .json(&json!({"external_unread_count": 13}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(response.text().await.unwrap(), "");
    let badge = get_json(server.platform(Method::GET, "/users/a%2Fb/badge")).await;
    assert_eq!(badge["external_unread_count"], 13);
    assert_eq!(badge["unread_message_count"], 0);
    // the user is someone else's namesake only through the decoded id
    let other = get_json(server.platform(Method::GET, "/users/a/badge")).await;
    assert_eq!(other["external_unread_count"], 0);

    let put = |body: &str| {
        server
            .platform(Method::PUT, "/users/a%2Fb/badge")
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
    };
    assert_error(put("{}").await.unwrap(), 422, "missing_property").await;
    for bad in ["-1", "\"3\"", "1.5", "null", "true", "9223372036854775808"] {
        let body = format!("{{\"external_unread_count\": {bad}}}");
        assert_invalid_property(put(&body).await.unwrap(), "external_unread_count").await;
    }
    for malformed in ["", "{", "[1]", "7"] {
        assert_error(put(malformed).await.unwrap(), 400, "invalid_request").await;
    }
    let badge = get_json(server.platform(Method::GET, "/users/a%2Fb/badge")).await;
    assert_eq!(
        badge["external_unread_count"], 13,
        "bad input changed nothing"
    );
}

#[tokio::test]
async fn v1_block_list_forms_as_the_node_client_uses_them() {
    let server = TestServer::start().await;
    // The integration spec of layer-api: an unknown owner blocks itself.
    let owner = "layerapi-testuser";
    let response = at(
        &server,
        "1.0",
        Method::POST,
        &format!("/users/{owner}/blocks"),
    )
    .json(&json!({"user_id": owner}))
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(response.text().await.unwrap(), "");
    let list = get_json(at(
        &server,
        "1.0",
        Method::GET,
        &format!("/users/{owner}/blocks"),
    ))
    .await;
    assert_eq!(list, json!([{"user_id": owner}]));
    let response = at(
        &server,
        "1.0",
        Method::DELETE,
        &format!("/users/{owner}/blocks/{owner}"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(response.text().await.unwrap(), "");
    let list = get_json(at(
        &server,
        "1.0",
        Method::GET,
        &format!("/users/{owner}/blocks"),
    ))
    .await;
    assert_eq!(list, json!([]));

    // User ids escaped with querystring.escape (node's blocklist tests), `%2F` inside segments.
    let owner_path = "testing%2Fbla*foo";
    for (blocked_path, blocked_id) in [
        ("!%24%23%2Fb-%3Fla*foo%26", "!$#/b-?la*foo&"),
        ("%23%5E%26L%3C", "#^&L<"),
    ] {
        let response = at(
            &server,
            "1.1",
            Method::POST,
            &format!("/users/{owner_path}/blocks"),
        )
        .json(&json!({"user_id": blocked_id}))
        .send()
        .await
        .unwrap();
        assert_eq!(response.status(), 204);
        assert!(blocked(&server, owner_path)
            .await
            .contains(&blocked_id.to_owned()));
        let response = at(
            &server,
            "1.1",
            Method::DELETE,
            &format!("/users/{owner_path}/blocks/{blocked_path}"),
        )
        .send()
        .await
        .unwrap();
        assert_eq!(response.status(), 204);
        assert!(blocked(&server, owner_path).await.is_empty());
    }
    assert!(server
        .store
        .blocks(server.app_id, "testing/bla*foo")
        .await
        .unwrap()
        .is_empty());

    // The v1 forms stay available in later versions; a bad body is refused.
    let response = server
        .platform(Method::POST, "/users/ann/blocks")
        .json(&json!({"user_id": "bob"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let post = |body: Value| {
        server
            .platform(Method::POST, "/users/ann/blocks")
            .json(&body)
            .send()
    };
    assert_error(post(json!({})).await.unwrap(), 422, "missing_property").await;
    assert_invalid_property(post(json!({"user_id": 5})).await.unwrap(), "user_id").await;
    assert_invalid_property(post(json!({"user_id": ""})).await.unwrap(), "user_id").await;
    assert_error(post(json!(["bob"])).await.unwrap(), 400, "invalid_request").await;
    assert_eq!(blocked(&server, "ann").await, ["bob"]);
}

#[tokio::test]
async fn block_list_shape_per_version() {
    let server = TestServer::start().await;
    let response = server
        .platform(Method::PUT, "/users/with%2Fidentity/identity")
        .json(&json!({"display_name": "Wendy", "avatar_url": "https://a.example/w.png"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let response = patch(
        &server,
        "/users/owner",
        json!([{"operation": "set", "property": "blocks", "value": ["plain", "with/identity"]}]),
    )
    .await;
    assert_eq!(response.status(), 202);

    for version in ["1.0", "1.1"] {
        let list = get_json(at(&server, version, Method::GET, "/users/owner/blocks")).await;
        assert_eq!(
            list,
            json!([{"user_id": "plain"}, {"user_id": "with/identity"}]),
            "{version}"
        );
    }
    let base = format!("{}/apps/{}/users", server.base, server.app_id);
    for version in ["2.0", "3.0"] {
        let list = get_json(at(&server, version, Method::GET, "/users/owner/blocks")).await;
        assert_eq!(
            list,
            json!([
                {"id": "layer:///identities/plain", "url": format!("{base}/plain/identity"),
                 "user_id": "plain", "display_name": null, "avatar_url": null},
                {"id": "layer:///identities/with%2Fidentity",
                 "url": format!("{base}/with%2Fidentity/identity"), "user_id": "with/identity",
                 "display_name": "Wendy", "avatar_url": "https://a.example/w.png"},
            ]),
            "{version}"
        );
    }
}

#[tokio::test]
async fn patch_blocks_with_values_and_identity_ids() {
    let server = TestServer::start().await;
    let owner = "/users/o%2Fwner";
    // v1: user ids as value
    let response = at(&server, "1.0", Method::PATCH, owner)
        .header("content-type", PATCH_TYPE)
        .body(
            json!([
                {"operation": "add", "property": "blocks", "value": "a"},
                {"operation": "add", "property": "blocks", "value": "b"},
            ])
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    assert_eq!(response.text().await.unwrap(), "");
    assert_eq!(blocked(&server, "o%2Fwner").await, ["a", "b"]);

    // v3: Identity ids as id (R07), and as value; removing what is not blocked is a no-op
    let response = patch(
        &server,
        owner,
        json!([
            {"operation": "add", "property": "blocks", "id": "layer:///identities/c%2Fd"},
            {"operation": "remove", "property": "blocks", "value": "layer:///identities/a"},
            {"operation": "remove", "property": "blocks", "id": "layer:///identities/never"},
            {"operation": "add", "property": "blocks", "value": "b"},
        ]),
    )
    .await;
    assert_eq!(response.status(), 202);
    assert_eq!(blocked(&server, "o%2Fwner").await, ["b", "c/d"]);

    // set [] clears, then adds (the 2.0 way of replacing); a set keeps blocks it repeats
    let response = patch(
        &server,
        owner,
        json!([
            {"operation": "set", "property": "blocks", "value": []},
            {"operation": "add", "property": "blocks", "id": "layer:///identities/e"},
        ]),
    )
    .await;
    assert_eq!(response.status(), 202);
    assert_eq!(blocked(&server, "o%2Fwner").await, ["e"]);
    // (times have millisecond precision: make sure the next block is younger)
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let response = patch(
        &server,
        owner,
        json!([{"operation": "set", "property": "blocks", "value": ["a", "layer:///identities/e"]}]),
    )
    .await;
    assert_eq!(response.status(), 202);
    assert_eq!(
        blocked(&server, "o%2Fwner").await,
        ["e", "a"],
        "e keeps its original (older) place"
    );

    // an empty patch is a no-op
    assert_eq!(patch(&server, owner, json!([])).await.status(), 202);
    assert_eq!(blocked(&server, "o%2Fwner").await, ["e", "a"]);
}

#[tokio::test]
async fn a_patch_with_one_bad_operation_changes_nothing() {
    let server = TestServer::start().await;
    let token = server.session_for("victim").await;
    let good = [
        json!({"operation": "add", "property": "blocks", "value": "x"}),
        json!({"operation": "set", "property": "suspended", "value": true}),
    ];
    let cases = [
        (
            json!({"operation": "delete", "property": "blocks"}),
            "blocks",
            Some("delete"),
        ),
        (
            json!({"operation": "set", "property": "blocks", "value": "x"}),
            "blocks",
            None,
        ),
        (
            json!({"operation": "add", "property": "blocks", "value": {"id": "x"}}),
            "blocks",
            None,
        ),
        (
            json!({"operation": "add", "property": "blocks", "id": "layer:///messages/1"}),
            "blocks",
            None,
        ),
        (
            json!({"operation": "add", "property": "blocks", "value": "y".repeat(129)}),
            "blocks",
            None,
        ),
        (
            json!({"operation": "add", "property": "suspended", "value": true}),
            "suspended",
            Some("add"),
        ),
        (
            json!({"operation": "set", "property": "suspended", "value": "yes"}),
            "suspended",
            None,
        ),
        (
            json!({"operation": "set", "property": "display_name", "value": "x"}),
            "display_name",
            Some("set"),
        ),
        (
            json!({"operation": "set", "property": "blocks.x", "value": "x"}),
            "blocks.x",
            Some("set"),
        ),
    ];
    for (bad, property, operation) in cases {
        let body = json!([good[0], good[1], bad]);
        let message =
            assert_invalid_property(patch(&server, "/users/victim", body).await, property).await;
        if let Some(operation) = operation {
            assert!(message.contains(operation), "{message}");
        }
    }
    // structurally invalid documents are 400
    for malformed in [
        "not json",
        "{}",
        r#"[{"operation": "move", "property": "blocks", "value": "x"}]"#,
        r#"[{"operation": "add", "property": "blocks"}]"#,
    ] {
        let response = server
            .platform(Method::PATCH, "/users/victim")
            .header("content-type", PATCH_TYPE)
            .body(malformed)
            .send()
            .await
            .unwrap();
        assert_error(response, 400, "invalid_request").await;
    }
    // a PATCH sent as JSON is refused by the compat layer
    let response = server
        .platform(Method::PATCH, "/users/victim")
        .json(&json!([good[0]]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 406);

    assert!(blocked(&server, "victim").await.is_empty());
    let user = get_json(server.platform(Method::GET, "/users/victim")).await;
    assert_eq!(user["suspended"], false);
    assert!(session_alive(&server, &token).await);

    // both properties in one good patch
    let response = patch(&server, "/users/victim", json!(good)).await;
    assert_eq!(response.status(), 202);
    assert_eq!(blocked(&server, "victim").await, ["x"]);
    assert!(!session_alive(&server, &token).await);
}

#[tokio::test]
async fn suspension_ends_sessions_and_shows_on_the_user() {
    let server = TestServer::start().await;
    let alice = server.session_for("alice").await;
    let alice_too = server.session_for("alice").await;
    let bob = server.session_for("bob").await;
    assert!(session_alive(&server, &alice).await);

    let suspend = |value: bool| {
        patch(
            &server,
            "/users/alice",
            json!([{"operation": "set", "property": "suspended", "value": value}]),
        )
    };
    let response = suspend(true).await;
    assert_eq!(response.status(), 202);
    assert_eq!(response.text().await.unwrap(), "");
    assert!(!session_alive(&server, &alice).await);
    assert!(!session_alive(&server, &alice_too).await);
    assert!(
        session_alive(&server, &bob).await,
        "other users keep theirs"
    );
    let user = get_json(server.platform(Method::GET, "/users/alice")).await;
    assert_eq!(user["suspended"], true);

    assert_eq!(suspend(false).await.status(), 202);
    let user = get_json(server.platform(Method::GET, "/users/alice")).await;
    assert_eq!(user["suspended"], false);
    let state = server
        .store
        .user_state(server.app_id, "alice")
        .await
        .unwrap();
    assert!(!state.suspended);
}

#[tokio::test]
async fn the_user_resource_per_version() {
    let server = TestServer::start().await;
    let user = get_json(server.platform(Method::GET, "/users/ghost")).await;
    assert_eq!(
        user,
        json!({"id": "ghost", "identity": null, "suspended": false})
    );

    let response = server
        .platform(Method::PUT, "/users/n%2Fx/identity")
        .json(&json!({"display_name": "Nx"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let v3 = get_json(server.platform(Method::GET, "/users/n%2Fx")).await;
    assert_eq!(v3["id"], "n/x");
    assert_eq!(v3["suspended"], false);
    assert_eq!(v3["identity"]["id"], "layer:///identities/n%2Fx");
    assert_eq!(v3["identity"]["user_id"], "n/x");
    assert_eq!(v3["identity"]["display_name"], "Nx");
    let v1 = get_json(at(&server, "1.0", Method::GET, "/users/n%2Fx")).await;
    assert_eq!(v1["identity"]["display_name"], "Nx");
    assert!(
        v1["identity"].get("id").is_none(),
        "1.x identities: profile only"
    );
}

#[tokio::test]
async fn deleting_sessions_ends_them_and_tolerates_users_without_any() {
    let server = TestServer::start().await;
    let carol = server.session_for("c%arol").await;
    let dave = server.session_for("dave").await;
    let response = server
        .platform(Method::DELETE, "/users/c%25arol/sessions")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(response.text().await.unwrap(), "");
    assert!(!session_alive(&server, &carol).await);
    assert!(session_alive(&server, &dave).await);
    for path in ["/users/c%25arol/sessions", "/users/never-seen/sessions"] {
        let response = server.platform(Method::DELETE, path).send().await.unwrap();
        assert_eq!(response.status(), 204, "{path}");
    }
}

#[tokio::test]
async fn app_session_ttl() {
    let server = TestServer::start().await;
    let set = |value: Value| {
        patch(
            &server,
            "",
            json!([{"operation": "set", "property": "session_ttl_in_seconds", "value": value}]),
        )
    };
    for (value, expected) in [(3600, 3600), (30, 30), (31_536_000, 31_536_000)] {
        let response = set(json!(value)).await;
        assert_eq!(response.status(), 202);
        assert_eq!(response.text().await.unwrap(), "");
        let ttl = server.store.session_ttl(server.app_id).await.unwrap();
        assert_eq!(ttl, Some(expected));
    }
    for bad in [
        json!(29),
        json!(31_536_001),
        json!(-5),
        json!("3600"),
        json!(60.5),
        json!(true),
    ] {
        assert_invalid_property(set(bad.clone()).await, "session_ttl_in_seconds").await;
    }
    for bad in [
        json!([{"operation": "set", "property": "name", "value": "x"}]),
        json!([{"operation": "delete", "property": "session_ttl_in_seconds"}]),
        json!([{"operation": "add", "property": "session_ttl_in_seconds", "value": 60}]),
    ] {
        let response = patch(&server, "", bad).await;
        assert_eq!(response.status(), 422);
    }
    assert_eq!(
        server.store.session_ttl(server.app_id).await.unwrap(),
        Some(31_536_000),
        "refused patches changed nothing"
    );
    // null goes back to the configured default
    assert_eq!(set(Value::Null).await.status(), 202);
    assert_eq!(server.store.session_ttl(server.app_id).await.unwrap(), None);

    // POST + X-HTTP-Method-Override, every version
    for version in ["1.0", "2.0"] {
        let response = at(&server, version, Method::POST, "")
            .header("x-http-method-override", "PATCH")
            .header("content-type", PATCH_TYPE)
            .body(
                json!([{"operation": "set", "property": "session_ttl_in_seconds", "value": 60}])
                    .to_string(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202, "{version}");
    }
    // the app is `/apps/:uuid` exactly; a trailing slash is another (unknown) route
    let response = server
        .platform(Method::PATCH, "/")
        .header("content-type", PATCH_TYPE)
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_error(response, 404, "invalid_endpoint").await;
}

#[tokio::test]
async fn following_from_version_2() {
    let server = TestServer::start().await;
    let me = "/users/me";
    // 1.x: the routes do not exist
    for (method, path) in [
        (Method::GET, "/users/me/following"),
        (Method::POST, "/users/me/following"),
        (Method::PUT, "/users/me/following/x"),
        (Method::GET, "/users/me/following/x"),
        (Method::DELETE, "/users/me/following/x"),
        (Method::GET, "/users/me/identities"),
    ] {
        let response = at(&server, "1.1", method.clone(), path)
            .json(&json!([]))
            .send()
            .await
            .unwrap();
        assert_error(response, 404, "invalid_endpoint").await;
    }

    let request = |method: Method, path: &str| at(&server, "2.0", method, &format!("{me}{path}"));
    assert_error(
        request(Method::GET, "/following/x%2Fy")
            .send()
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;
    let response = request(Method::PUT, "/following/x%2Fy")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(response.text().await.unwrap(), "");
    let response = request(Method::GET, "/following/x%2Fy")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);

    let response = request(Method::POST, "/following")
        .json(&json!(["layer:///identities/b", "c", "x/y"]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    assert_eq!(response.text().await.unwrap(), "");
    let list = get_json(request(Method::GET, "/following")).await;
    assert_eq!(
        list,
        json!([
            "layer:///identities/x%2Fy",
            "layer:///identities/b",
            "layer:///identities/c"
        ]),
        "in order of following; following again keeps the place"
    );

    // paging: page_size and from_id (Identity id or user id)
    let page = get_json(request(Method::GET, "/following?page_size=1")).await;
    assert_eq!(page, json!(["layer:///identities/x%2Fy"]));
    let page = get_json(request(
        Method::GET,
        "/following?page_size=5&from_id=layer%3A%2F%2F%2Fidentities%2Fx%252Fy",
    ))
    .await;
    assert_eq!(
        page,
        json!(["layer:///identities/b", "layer:///identities/c"])
    );
    let page = get_json(request(Method::GET, "/following?from_id=b")).await;
    assert_eq!(page, json!(["layer:///identities/c"]));
    for bad in ["page_size=0", "page_size=abc", "page_size=-1"] {
        let response = request(Method::GET, &format!("/following?{bad}"))
            .send()
            .await
            .unwrap();
        assert_invalid_property(response, "page_size").await;
    }

    // identities: every followed user, as a full Identity (blank for users without one)
    let response = server
        .platform(Method::PUT, "/users/c/identity")
        .json(&json!({"display_name": "Cee"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let identities = get_json(request(Method::GET, "/identities")).await;
    let users: Vec<&Value> = identities
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["user_id"])
        .collect();
    assert_eq!(users, [&json!("x/y"), &json!("b"), &json!("c")]);
    assert!(identities[0]["display_name"].is_null(), "{identities}");
    assert_eq!(identities[0]["metadata"], json!({}));
    assert_eq!(identities[2]["display_name"], "Cee");
    assert_eq!(identities[2]["identity_type"], "user");

    // unfollow, then following again starts at the end
    let response = request(Method::DELETE, "/following/x%2Fy")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_error(
        request(Method::GET, "/following/x%2Fy")
            .send()
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;
    let response = request(Method::DELETE, "/following/never")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(
        request(Method::PUT, "/following/x%2Fy")
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let list = get_json(request(Method::GET, "/following")).await;
    assert_eq!(
        list,
        json!([
            "layer:///identities/b",
            "layer:///identities/c",
            "layer:///identities/x%2Fy"
        ])
    );

    // bad bodies
    let post = |body: &str| {
        request(Method::POST, "/following")
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
    };
    assert_invalid_property(post("[5]").await.unwrap(), "following").await;
    assert_invalid_property(
        post("[\"layer:///conversations/x\"]").await.unwrap(),
        "following",
    )
    .await;
    assert_error(post("{}").await.unwrap(), 400, "invalid_request").await;
    assert_error(post("[").await.unwrap(), 400, "invalid_request").await;
}

#[tokio::test]
async fn bad_user_ids_and_foreign_tokens() {
    let server = TestServer::start().await;
    let long = "u".repeat(129);
    for path in [
        format!("/users/{long}/badge"),
        format!("/users/{long}"),
        format!("/users/{long}/blocks"),
        "/users/%FF/badge".to_owned(),
        format!("/users/ok/blocks/{long}"),
    ] {
        let method = if path.contains("/blocks/") {
            Method::DELETE
        } else {
            Method::GET
        };
        assert_invalid_property(
            server.platform(method, &path).send().await.unwrap(),
            "user_id",
        )
        .await;
    }
    let exactly_128 = "u".repeat(128);
    let response = server
        .platform(Method::GET, &format!("/users/{exactly_128}/badge"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // another app's token opens none of these
    let other = layer_server::admin::create_app(&*server.store, None, "other")
        .await
        .unwrap();
    let (_, other_token) = layer_server::admin::issue_token(&*server.store, other.id, None, "cli")
        .await
        .unwrap();
    for (method, path) in [
        (Method::GET, "/users/a/badge"),
        (Method::GET, "/users/a"),
        (Method::PATCH, "/users/a"),
        (Method::GET, "/users/a/blocks"),
        (Method::DELETE, "/users/a/sessions"),
        (Method::PATCH, ""),
        (Method::GET, "/users/a/following"),
    ] {
        let response = server
            .raw(method.clone(), &format!("/apps/{}{path}", server.app_id))
            .bearer_auth(&other_token)
            .header("accept", crate::common::ACCEPT_V3)
            .header("content-type", PATCH_TYPE)
            .body("[]")
            .send()
            .await
            .unwrap();
        assert_error(response, 401, "authentication_required").await;
    }
}

#[tokio::test]
async fn blockers_among_participants() {
    let server = TestServer::start().await;
    let (store, app) = (&server.store, server.app_id);
    let now = layer_server::store::Timestamp::now();
    let owned = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    store
        .replace_blocks(app, "ann", &owned(&["spammer", "eve"]), now)
        .await
        .unwrap();
    store
        .change_blocks(app, "cid", &owned(&["spammer"]), &[], now)
        .await
        .unwrap();
    store
        .change_blocks(app, "bob", &owned(&["eve"]), &[], now)
        .await
        .unwrap();
    let participants = owned(&["cid", "bob", "ann", "dan", "ann"]);
    assert_eq!(
        store
            .blockers_among(app, &participants, "spammer")
            .await
            .unwrap(),
        ["cid", "ann"],
        "in the participants' order, once each"
    );
    assert!(store
        .blockers_among(app, &participants, "dan")
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .blockers_among(app, &[], "eve")
        .await
        .unwrap()
        .is_empty());
    // more owners than one `in (...)` list holds
    let many: Vec<String> = (0..1200).map(|i| format!("user{i}")).collect();
    for owner in ["user3", "user700", "user1199"] {
        store
            .change_blocks(app, owner, &owned(&["eve"]), &[], now)
            .await
            .unwrap();
    }
    assert_eq!(
        store.blockers_among(app, &many, "eve").await.unwrap(),
        ["user3", "user700", "user1199"]
    );
    // another app's blocks do not count
    let other = layer_server::admin::create_app(&**store, None, "other")
        .await
        .unwrap();
    assert!(store
        .blockers_among(other.id, &participants, "spammer")
        .await
        .unwrap()
        .is_empty());
}

/// Unread state written straight into the messaging tables (their store methods belong to the
/// messaging work), to pin down what the badge counts.
macro_rules! seed_unread {
    ($pool:expr, $app:expr) => {{
        let now = layer_server::store::Timestamp::now();
        // (conversation, deleted, [(member, hidden_position, left_position)])
        let conversations: [(u8, bool, &[(&str, Option<i64>, Option<i64>)]); 5] = [
            (1, false, &[("u", None, None), ("v", None, None)]),
            (2, false, &[("u", Some(2), None)]),
            (3, false, &[("u", None, Some(1))]),
            (4, true, &[("u", None, None)]),
            (5, false, &[("u", None, None)]),
        ];
        // (conversation, position, user, status, hidden)
        let recipients: [(u8, i64, &str, i16, bool); 14] = [
            (1, 1, "u", 2, false), // read
            (1, 2, "u", 0, false), // unread
            (1, 3, "u", 1, false), // delivered = unread
            (1, 3, "v", 0, false), // someone else's
            (2, 1, "u", 0, false), // deleted for u (my_devices) up to 2
            (2, 2, "u", 0, false),
            (2, 3, "u", 0, false), // unread
            (3, 1, "u", 0, false), // unread, before leaving
            (3, 2, "u", 0, false), // after leaving
            (4, 1, "u", 0, false), // conversation deleted
            (5, 1, "u", 0, true),  // message deleted for u
            (5, 2, "u", 0, false), // unread
            (5, 3, "u", 2, false),
            (5, 4, "u", 2, false),
        ];
        let conversation_id = |n: u8| uuid::Uuid::from_u128(u128::from(n));
        for (n, deleted, members) in conversations {
            sqlx::query(
                "insert into conversations (app_id, id, created_at, metadata, deleted_at)
                 values ($1, $2, $3, '{}', $4)",
            )
            .bind($app)
            .bind(conversation_id(n))
            .bind(now)
            .bind(deleted.then_some(now))
            .execute($pool)
            .await
            .unwrap();
            for (seq, (user, hidden, left)) in members.iter().enumerate() {
                sqlx::query(
                    "insert into conversation_members (app_id, conversation_id, user_id, seq,
                        is_participant, joined_at, left_position, hidden_position)
                     values ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind($app)
                .bind(conversation_id(n))
                .bind(*user)
                .bind(seq as i64)
                .bind(left.is_none())
                .bind(now)
                .bind(*left)
                .bind(*hidden)
                .execute($pool)
                .await
                .unwrap();
            }
        }
        for (n, position, user, status, hidden) in recipients {
            let message_id = uuid::Uuid::from_u128(u128::from(n) << 64 | position as u128);
            sqlx::query(
                "insert into messages (app_id, id, conversation_id, position, sent_at)
                 values ($1, $2, $3, $4, $5) on conflict do nothing",
            )
            .bind($app)
            .bind(message_id)
            .bind(conversation_id(n))
            .bind(position)
            .bind(now)
            .execute($pool)
            .await
            .unwrap();
            sqlx::query(
                "insert into message_recipients (app_id, message_id, conversation_id, position,
                    user_id, status, hidden, updated_at)
                 values ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind($app)
            .bind(message_id)
            .bind(conversation_id(n))
            .bind(position)
            .bind(user)
            .bind(status)
            .bind(hidden)
            .bind(now)
            .execute($pool)
            .await
            .unwrap();
        }
    }};
}

#[tokio::test]
async fn badge_counts_what_the_member_sees_unread() {
    let server = TestServer::start().await;
    if crate::common::is_postgres() {
        let pool = sqlx::PgPool::connect(&server.db.url).await.unwrap();
        seed_unread!(&pool, server.app_id);
    } else {
        let pool = sqlx::SqlitePool::connect(&server.db.url).await.unwrap();
        seed_unread!(&pool, server.app_id);
    }
    let badge = get_json(server.platform(Method::GET, "/users/u/badge")).await;
    assert_eq!(
        badge,
        json!({"external_unread_count": 0, "unread_conversation_count": 4, "unread_message_count": 5})
    );
    let badge = get_json(server.platform(Method::GET, "/users/v/badge")).await;
    assert_eq!(badge["unread_message_count"], 1);
    assert_eq!(badge["unread_conversation_count"], 1);
}
