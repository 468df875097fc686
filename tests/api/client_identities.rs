//! Client API identities, following and push tokens (client-api.md §3.8, §3.9), through the
//! real wire as session users.

use layer_server::secrets;
use layer_server::store::{PushToken, Session, Timestamp};
use reqwest::{Method, RequestBuilder};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::common::{
    accept_version, assert_keys, encode_path, expect_error, json as body_json, layer_count,
    TestServer, PATCH_CONTENT_TYPE,
};

/// A session user of an app: Client API requests carry their session token.
struct User<'a> {
    server: &'a TestServer,
    token: String,
}

impl<'a> User<'a> {
    async fn of(server: &'a TestServer, user_id: &str) -> Self {
        User {
            server,
            token: server.session_for(user_id).await,
        }
    }

    /// A user of another app on the same server.
    async fn in_app(server: &'a TestServer, app_id: Uuid, user_id: &str) -> Self {
        let token = secrets::generate_token();
        let now = Timestamp::now();
        let session = Session {
            app_id,
            user_id: user_id.to_owned(),
            created_at: now,
            expires_at: now.plus_secs(3600),
        };
        server
            .store
            .create_session(&secrets::sha256_hex(&token), &session)
            .await
            .unwrap();
        User { server, token }
    }

    fn at(&self, version: &str, method: Method, path: &str) -> RequestBuilder {
        self.server
            .raw(method, path)
            .header("accept", accept_version(version))
            .header(
                "authorization",
                format!("Layer session-token=\"{}\"", self.token),
            )
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.at("3.0", method, path)
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.request(Method::GET, path).send().await.unwrap()
    }

    /// A 200 response's JSON body.
    async fn get_json(&self, path: &str) -> Value {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        body_json(response).await
    }

    /// Asserts that `method path` answers `status` with an empty body.
    async fn expect(&self, method: Method, path: &str, status: u16) {
        let response = self.request(method.clone(), path).send().await.unwrap();
        assert_eq!(response.status(), status, "{method} {path}");
        assert_eq!(
            response.text().await.unwrap(),
            "",
            "{method} {path}: no body"
        );
    }

    async fn patch(&self, path: &str, operations: Value) -> reqwest::Response {
        self.patch_raw(path, PATCH_CONTENT_TYPE, &operations.to_string())
            .await
    }

    async fn patch_raw(&self, path: &str, content_type: &str, body: &str) -> reqwest::Response {
        self.request(Method::PATCH, path)
            .header("content-type", content_type)
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
    }

    async fn post_json(&self, path: &str, body: &str) -> reqwest::Response {
        self.request(Method::POST, path)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
    }
}

const FULL_IDENTITY_KEYS: &[&str] = &[
    "id",
    "url",
    "user_id",
    "display_name",
    "avatar_url",
    "first_name",
    "last_name",
    "phone_number",
    "email_address",
    "public_key",
    "metadata",
    "identity_type",
    "type",
];

/// A Layer Patch of one `set`.
fn set(property: &str, value: Value) -> Value {
    json!([{"operation": "set", "property": property, "value": value}])
}

/// What the SDKs' `strictEncodeURI` sends: RFC 3986 unreserved characters only.
fn strict_encode(user_id: &str) -> String {
    encode_path(user_id).replace('~', "%7E")
}

#[tokio::test]
async fn own_identity_right_after_login_for_any_user_id() {
    let server = TestServer::start().await;
    for user_id in [
        "alice",
        "a.b@example.com",
        "tilde~user",
        "with space",
        "bang!(quote)'*",
        "slash/and%percent",
        "ünïcødé",
    ] {
        let user = User::of(&server, user_id).await;
        // no identity stored yet: the session user still gets a full, blank one
        let path = format!("/identities/{}", strict_encode(user_id));
        let identity = user.get_json(&path).await;
        assert_keys(&identity, FULL_IDENTITY_KEYS);
        assert_eq!(identity["user_id"], user_id);
        let encoded = layer_server::ids::encode_component(user_id);
        assert_eq!(identity["id"], format!("layer:///identities/{encoded}"));
        assert_eq!(
            identity["url"],
            format!("{}/identities/{encoded}", server.base)
        );
        assert_eq!(identity["metadata"], json!({}));
        assert!(identity["display_name"].is_null(), "{identity}");
        assert_eq!(identity["type"], "user");

        // the URL it renders is the one that serves it
        let url = identity["url"].as_str().unwrap().to_owned();
        let again = user
            .server
            .http
            .get(&url)
            .header("accept", accept_version("3.0"))
            .header(
                "authorization",
                format!("Layer session-token=\"{}\"", user.token),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(body_json(again).await, identity, "{url}");
    }

    // with a stored identity: its fields, the SDK's `type` next to `identity_type`
    server
        .platform(Method::PUT, "/users/alice/identity")
        .json(&json!({"display_name": "Alice", "identity_type": "bot", "metadata": {"k": "v"}}))
        .send()
        .await
        .unwrap();
    let alice = User::of(&server, "alice").await;
    let identity = alice.get_json("/identities/alice").await;
    assert_eq!(identity["display_name"], "Alice");
    assert_eq!(identity["metadata"], json!({"k": "v"}));
    assert_eq!(identity["type"], "bot");
    assert_eq!(identity["identity_type"], "bot");
}

#[tokio::test]
async fn identities_of_other_users_of_the_app() {
    let server = TestServer::start().await;
    server.create_identity("bob", "Bob").await;
    let conversation = server.conversation_of(&["dave", "carol"]).await;
    let alice = User::of(&server, "alice").await;

    // any identity of the app, followed or not
    let bob = alice.get_json("/identities/bob").await;
    assert_keys(&bob, FULL_IDENTITY_KEYS);
    assert_eq!(bob["display_name"], "Bob");
    assert_eq!(bob["url"], format!("{}/identities/bob", server.base));

    // a user the app has heard of (a participant) but who has no identity: a blank one
    let carol = alice.get_json("/identities/carol").await;
    assert_keys(&carol, FULL_IDENTITY_KEYS);
    assert_eq!(carol["user_id"], "carol");
    assert!(carol["display_name"].is_null() && carol["avatar_url"].is_null());
    assert_eq!(carol["metadata"], json!({}));
    // ... as conversations show such participants
    let participants = &server.get_conversation(&conversation).await["participants"];
    assert_eq!(participants[1]["user_id"], "carol", "{participants}");
    assert!(participants[1]["display_name"].is_null());

    // strangers: 404 not_found; following one makes the server hear of them (the SDK GETs the
    // identity right after following)
    let body = expect_error(alice.get("/identities/stranger").await, 404, "not_found").await;
    assert!(body["message"].as_str().unwrap().contains("identity"));
    alice
        .expect(Method::PUT, "/following/users/stranger", 204)
        .await;
    let stranger = alice.get_json("/identities/stranger").await;
    assert_eq!(stranger["user_id"], "stranger");

    // other ways of having been heard of: a session, an announcement
    let _erin = User::of(&server, "erin").await;
    assert_eq!(alice.get("/identities/erin").await.status(), 200);
    let response = server
        .platform(Method::POST, "/announcements")
        .json(
            &json!({"recipients": ["frank"], "sender_id": "layer:///identities/ops",
                      "parts": [{"mime_type": "text/plain", "body": "hi"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    assert_eq!(alice.get("/identities/frank").await.status(), 200);

    // user ids: Identity ids decode too; a bad one is 422
    let by_id = alice
        .get(&format!(
            "/identities/{}",
            encode_path("layer:///identities/bob")
        ))
        .await;
    expect_error(by_id, 404, "not_found").await;
    let long = "u".repeat(129);
    let response = alice.get(&format!("/identities/{long}")).await;
    expect_error(response, 422, "invalid_property").await;
    expect_error(alice.get("/identities/%FF").await, 422, "invalid_property").await;

    // no session: the challenge the SDKs re-authenticate on
    let response = server
        .client(Method::GET, "/identities/bob")
        .send()
        .await
        .unwrap();
    let body = expect_error(response, 401, "authentication_required").await;
    assert!(body["data"]["nonce"].is_string(), "{body}");
}

#[tokio::test]
async fn identity_and_following_routes_start_at_version_2() {
    let server = TestServer::start().await;
    let alice = User::of(&server, "alice").await;
    let routes = [
        (Method::GET, "/identities"),
        (Method::GET, "/identities/alice"),
        (Method::PATCH, "/identities/alice"),
        (Method::GET, "/following"),
        (Method::POST, "/following/users"),
        (Method::GET, "/following/users/bob"),
        (Method::PUT, "/following/users/bob"),
        (Method::DELETE, "/following/users/bob"),
    ];
    for (method, path) in &routes {
        let response = alice
            .at("1.0", method.clone(), path)
            .header("content-type", PATCH_CONTENT_TYPE)
            .body("[]")
            .send()
            .await
            .unwrap();
        let body = expect_error(response, 404, "invalid_endpoint").await;
        assert!(body["message"].as_str().unwrap().contains(path), "{body}");
    }
    for version in ["2.0", "3.0"] {
        let response = alice
            .at(version, Method::GET, "/identities/alice")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{version}");
    }
    // other methods on the routes: 405 with Allow
    let response = alice
        .request(Method::DELETE, "/identities/alice")
        .send()
        .await
        .unwrap();
    assert!(response.headers().contains_key("allow"));
    expect_error(response, 405, "method_not_allowed").await;
    // the session user's routes are not the Platform proxy's
    let response = server
        .platform(Method::GET, "/users/alice/following/users/bob")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn following_as_the_session_user() {
    let server = TestServer::start().await;
    let alice = User::of(&server, "alice").await;
    server.create_identity("b.o@b", "Bob").await;

    // nothing followed yet
    let response = alice.get("/following").await;
    assert_eq!(layer_count(&response), 0);
    assert_eq!(body_json(response).await, json!([]));
    let response = alice.get("/following/users/b.o@b").await;
    expect_error(response, 404, "not_found").await;

    // follow, check, bulk follow (Identity ids or user ids)
    alice
        .expect(Method::PUT, "/following/users/b.o%40b", 204)
        .await;
    let response = alice
        .post_json(
            "/following/users",
            r#"["layer:///identities/sp%20ace", "tilde~", "b.o@b"]"#,
        )
        .await;
    assert_eq!(response.status(), 202);
    assert_eq!(response.text().await.unwrap(), "");
    for user in ["b.o@b", "sp%20ace", "tilde%7E"] {
        let path = format!("/following/users/{user}");
        alice.expect(Method::GET, &path, 204).await;
    }

    // implicit follows: sharing a conversation
    server.conversation_of(&["alice", "carol"]).await;
    let response = alice.get("/following").await;
    assert_eq!(layer_count(&response), 4);
    assert_eq!(
        body_json(response).await,
        json!([
            "layer:///identities/b.o%40b",
            "layer:///identities/sp%20ace",
            "layer:///identities/tilde~",
            "layer:///identities/carol",
        ]),
        "in order of following"
    );

    // paging: page_size, from_id as Identity id (raw or encoded) or user id; the count stays
    let response = alice.get("/following?page_size=2").await;
    assert_eq!(layer_count(&response), 4);
    assert_eq!(body_json(response).await.as_array().unwrap().len(), 2);
    let page = alice
        .get_json("/following?from_id=layer:///identities/sp%2520ace")
        .await;
    assert_eq!(
        page,
        json!(["layer:///identities/tilde~", "layer:///identities/carol"])
    );
    let page = alice.get_json("/following?from_id=tilde~").await;
    assert_eq!(page, json!(["layer:///identities/carol"]));
    for bad in [
        "page_size=0",
        "page_size=x",
        "from_id=layer:///conversations/1",
    ] {
        let response = alice.get(&format!("/following?{bad}")).await;
        expect_error(response, 422, "invalid_property").await;
    }

    // the identities of the followed users: full, blank where none is stored
    let response = alice.get("/identities").await;
    assert_eq!(layer_count(&response), 4);
    let identities = body_json(response).await;
    let users: Vec<&str> = identities
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["b.o@b", "sp ace", "tilde~", "carol"]);
    for identity in identities.as_array().unwrap() {
        assert_keys(identity, FULL_IDENTITY_KEYS);
        let encoded = layer_server::ids::encode_component(identity["user_id"].as_str().unwrap());
        assert_eq!(
            identity["url"],
            format!("{}/identities/{encoded}", server.base)
        );
    }
    assert_eq!(identities[0]["display_name"], "Bob");
    assert_eq!(identities[3]["metadata"], json!({}));
    let page = alice
        .get_json("/identities?page_size=1&from_id=layer%3A%2F%2F%2Fidentities%2Ftilde~")
        .await;
    assert_eq!(page.as_array().unwrap().len(), 1);
    assert_eq!(page[0]["user_id"], "carol");
    let page = alice.get_json("/identities?page_size=100000").await;
    assert_eq!(page.as_array().unwrap().len(), 4, "capped, not refused");

    // unfollow (a conversation partner too); idempotent
    for user in ["carol", "carol", "never"] {
        let path = format!("/following/users/{user}");
        alice.expect(Method::DELETE, &path, 204).await;
    }
    expect_error(alice.get("/following/users/carol").await, 404, "not_found").await;
    let response = alice.get("/identities").await;
    assert_eq!(layer_count(&response), 3);
    // ... while carol still follows alice
    let carol = User::of(&server, "carol").await;
    carol
        .expect(Method::GET, "/following/users/alice", 204)
        .await;

    // the same lists through the Platform API, acting as alice
    let response = server
        .platform(Method::GET, "/users/alice/following")
        .send()
        .await
        .unwrap();
    assert_eq!(layer_count(&response), 3);
    let identities = body_json(
        server
            .platform(Method::GET, "/users/alice/identities")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(identities.as_array().unwrap().len(), 3);
    let proxied = format!("{}/users/alice/identities/b.o%40b", server.app_url());
    assert_eq!(identities[0]["url"], proxied, "the proxy's own URL");
    let response = server
        .platform(Method::GET, "/users/alice/identities/b.o%40b")
        .send()
        .await
        .unwrap();
    assert_eq!(body_json(response).await, identities[0]);
}

#[tokio::test]
async fn bad_following_bodies_and_ids() {
    let server = TestServer::start().await;
    let alice = User::of(&server, "alice").await;
    for (body, status, id) in [
        ("[5]", 422, "invalid_property"),
        (r#"["layer:///conversations/x"]"#, 422, "invalid_property"),
        (r#"[""]"#, 422, "invalid_property"),
        ("{}", 400, "invalid_request"),
        ("[", 400, "invalid_request"),
        ("", 400, "invalid_request"),
    ] {
        let response = alice.post_json("/following/users", body).await;
        expect_error(response, status, id).await;
    }
    let many: Vec<String> = (0..1001).map(|i| format!("u{i}")).collect();
    let response = alice
        .post_json("/following/users", &serde_json::to_string(&many).unwrap())
        .await;
    let body = expect_error(response, 422, "invalid_property").await;
    assert_eq!(body["data"]["property"], "following");
    let long = "u".repeat(129);
    for method in [Method::GET, Method::PUT, Method::DELETE] {
        let response = alice
            .request(method, &format!("/following/users/{long}"))
            .send()
            .await
            .unwrap();
        expect_error(response, 422, "invalid_property").await;
    }
    assert_eq!(
        server
            .store
            .followed_count(server.app_id, "alice")
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn users_of_another_app_see_nothing_of_this_one() {
    let server = TestServer::start().await;
    server.create_identity("bob", "Bob of A").await;
    server.conversation_of(&["bob", "carol"]).await;
    let (other_app, _) = server.second_app().await;
    let mallory = User::in_app(&server, other_app, "mallory").await;

    // app A's identities and users are unknown in app B
    for path in ["/identities/bob", "/identities/carol"] {
        expect_error(mallory.get(path).await, 404, "not_found").await;
    }
    // following "bob" follows app B's bob: a blank identity, never app A's
    mallory
        .expect(Method::PUT, "/following/users/bob", 204)
        .await;
    let bob = mallory.get_json("/identities/bob").await;
    assert!(bob["display_name"].is_null(), "{bob}");
    let listed = mallory.get_json("/identities").await;
    assert_eq!(listed, json!([bob]));
    // and writes nothing into app A
    let store = &server.store;
    assert!(!store
        .is_following(server.app_id, "mallory", "bob")
        .await
        .unwrap());
    assert!(!store.user_is_known(server.app_id, "mallory").await.unwrap());
    // app A's identity cannot be changed from app B, not even by a namesake
    let namesake = User::in_app(&server, other_app, "bob").await;
    let response = namesake
        .patch("/identities/bob", set("display_name", json!("Hijacked")))
        .await;
    assert_eq!(response.status(), 204);
    let a_bob = store.identity(server.app_id, "bob").await.unwrap().unwrap();
    assert_eq!(a_bob.display_name.as_deref(), Some("Bob of A"));
    let b_bob = store.identity(other_app, "bob").await.unwrap().unwrap();
    assert_eq!(b_bob.display_name.as_deref(), Some("Hijacked"));
    // push tokens too are per app
    let response = namesake
        .request(Method::POST, "/push_tokens")
        .json(&json!({"token": "t", "type": "gcm", "device_id": "d"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    assert!(store
        .push_tokens(server.app_id, "bob")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.push_tokens(other_app, "bob").await.unwrap().len(), 1);
}

#[tokio::test]
async fn users_patch_their_own_identity() {
    let server = TestServer::start().await;
    let alice = User::of(&server, "a.l@ice").await;
    let path = "/identities/a.l%40ice";

    // a blank identity takes a patch without a display name
    let response = alice
        .patch(
            path,
            json!([
                {"operation": "set", "property": "first_name", "value": "Alice"},
                {"operation": "set", "property": "metadata.team", "value": "blue"},
            ]),
        )
        .await;
    assert_eq!(response.status(), 204);
    assert_eq!(response.text().await.unwrap(), "");
    let identity = alice.get_json(path).await;
    assert_eq!(identity["first_name"], "Alice");
    assert_eq!(identity["metadata"], json!({"team": "blue"}));
    assert!(identity["display_name"].is_null());

    // every profile field; X-HTTP-Method-Override works as for every PATCH
    let response = alice
        .request(Method::POST, path)
        .header("x-http-method-override", "PATCH")
        .header("content-type", PATCH_CONTENT_TYPE)
        .body(
            json!([
                {"operation": "set", "property": "display_name", "value": "Alice L"},
                {"operation": "set", "property": "avatar_url", "value": "https://a/b.png"},
                {"operation": "set", "property": "last_name", "value": "L"},
                {"operation": "set", "property": "phone_number", "value": "+1 555"},
                {"operation": "set", "property": "email_address", "value": "a.l@ice"},
                {"operation": "delete", "property": "metadata.team"},
                {"operation": "set", "property": "metadata.level", "value": "2"},
            ])
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let identity = alice.get_json(path).await;
    for (key, value) in [
        ("display_name", "Alice L"),
        ("avatar_url", "https://a/b.png"),
        ("first_name", "Alice"),
        ("last_name", "L"),
        ("phone_number", "+1 555"),
        ("email_address", "a.l@ice"),
    ] {
        assert_eq!(identity[key], value, "{key}");
    }
    assert_eq!(identity["metadata"], json!({"level": "2"}));
    // others see the change
    let bob = User::of(&server, "bob").await;
    assert_eq!(bob.get_json(path).await["display_name"], "Alice L");

    // another user's identity: 403, whatever the body
    server.create_identity("bob", "Bob").await;
    for target in ["/identities/bob", "/identities/nobody"] {
        let response = alice.patch(target, set("display_name", json!("x"))).await;
        expect_error(response, 403, "access_denied").await;
    }
    let response = alice
        .patch_raw("/identities/bob", PATCH_CONTENT_TYPE, "not json")
        .await;
    expect_error(response, 403, "access_denied").await;
    let stored = server
        .store
        .identity(server.app_id, "bob")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.display_name.as_deref(), Some("Bob"));

    // what users may not set, and bad values: 422 naming the property; nothing is written
    for (operations, property) in [
        (set("identity_type", json!("bot")), "identity_type"),
        (set("public_key", json!("k")), "public_key"),
        (set("user_id", json!("bob")), "user_id"),
        (
            json!([{"operation": "add", "property": "metadata.x", "value": "1"}]),
            "metadata.x",
        ),
        (set("display_name", json!("x".repeat(129))), "display_name"),
        (set("display_name", json!(null)), "display_name"),
        (set("display_name", json!(5)), "identity"),
        (set("metadata.x", json!({"nested": "1"})), "metadata"),
        (
            set("email_address", json!("e".repeat(256))),
            "email_address",
        ),
        (
            json!([
                {"operation": "set", "property": "last_name", "value": "Changed"},
                {"operation": "set", "property": "phone_number", "value": "1".repeat(33)},
            ]),
            "phone_number",
        ),
    ] {
        let response = alice.patch(path, operations.clone()).await;
        assert_eq!(response.status(), 422, "{operations}");
        let body = body_json(response).await;
        assert_eq!(body["data"]["property"], property, "{operations}: {body}");
    }
    assert_eq!(alice.get_json(path).await["last_name"], "L", "atomic");
    let response = alice.patch_raw(path, PATCH_CONTENT_TYPE, "{").await;
    expect_error(response, 400, "invalid_request").await;
    let response = alice.patch_raw(path, "application/json", "[]").await;
    expect_error(response, 406, "invalid_header").await;
}

/// The user's push tokens, latest registration first.
async fn tokens(server: &TestServer, user: &str) -> Vec<PushToken> {
    server.store.push_tokens(server.app_id, user).await.unwrap()
}

/// The user's push tokens as (device, token), latest registration first.
async fn devices(server: &TestServer, user: &str) -> Vec<(String, String)> {
    tokens(server, user)
        .await
        .into_iter()
        .map(|t| (t.device_id, t.token))
        .collect()
}

#[tokio::test]
async fn push_tokens_register_replace_and_evict() {
    let server = TestServer::start().await;
    let alice = User::of(&server, "alice").await;
    let register = |body: Value| {
        let request = alice.request(Method::POST, "/push_tokens").json(&body);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 202, "{body}");
            assert_eq!(response.text().await.unwrap(), "");
        }
    };

    // what the SDKs send (client-wire-protocol.md §3.7), in every version
    register(json!({"token": "apns-0", "type": "apns", "device_id": "d0",
                    "ios_version": "9.0", "apns_bundle_id": "com.example.app"}))
    .await;
    let response = alice
        .at("1.0", Method::POST, "/push_tokens")
        .json(&json!({"token": "gcm-1", "type": "gcm", "device_id": "d1", "gcm_sender_id": "42"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let stored = tokens(&server, "alice").await;
    assert_eq!(stored.len(), 2);
    assert_eq!(
        (
            stored[0].token_type.as_str(),
            stored[0].gcm_sender_id.as_deref()
        ),
        ("gcm", Some("42"))
    );
    assert_eq!(stored[1].apns_bundle_id.as_deref(), Some("com.example.app"));
    assert_eq!(stored[1].ios_version.as_deref(), Some("9.0"));

    // the same device again: its token is replaced
    register(json!({"token": "apns-0b", "type": "apns", "device_id": "d0", "ios_version": 10}))
        .await;
    let stored = tokens(&server, "alice").await;
    assert_eq!(stored.len(), 2);
    assert_eq!(
        (stored[0].device_id.as_str(), stored[0].token.as_str()),
        ("d0", "apns-0b")
    );
    assert_eq!(stored[0].ios_version.as_deref(), Some("10"));
    assert_eq!(
        stored[0].apns_bundle_id, None,
        "a registration replaces all of it"
    );

    // 25 per user: the 26th evicts the least recently registered
    for i in 2..25 {
        register(json!({"token": format!("t{i}"), "type": "gcm", "device_id": format!("d{i}")}))
            .await;
    }
    assert_eq!(devices(&server, "alice").await.len(), 25);
    register(json!({"token": "t1b", "type": "gcm", "device_id": "d1"})).await; // d1 is fresh now
    register(json!({"token": "t25", "type": "gcm", "device_id": "d25"})).await;
    let list = devices(&server, "alice").await;
    assert_eq!(list.len(), 25);
    assert_eq!(list[0], ("d25".to_owned(), "t25".to_owned()));
    assert_eq!(list[1], ("d1".to_owned(), "t1b".to_owned()));
    assert!(
        !list.iter().any(|(device, _)| device == "d0"),
        "d0 evicted: {list:?}"
    );
    register(json!({"token": "t26", "type": "gcm", "device_id": "d26"})).await;
    let list = devices(&server, "alice").await;
    assert_eq!(list.len(), 25);
    assert!(
        !list.iter().any(|(device, _)| device == "d2"),
        "then d2: {list:?}"
    );

    // a device or token registered by another user moves to them
    let bob = User::of(&server, "bob").await;
    for body in [
        json!({"token": "bob-5", "type": "gcm", "device_id": "d5"}),
        json!({"token": "t6", "type": "gcm", "device_id": "bobs-phone"}),
    ] {
        let response = bob
            .request(Method::POST, "/push_tokens")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
    }
    let list = devices(&server, "alice").await;
    assert_eq!(list.len(), 23);
    assert!(!list
        .iter()
        .any(|(device, _)| device == "d5" || device == "d6"));
    assert_eq!(devices(&server, "bob").await.len(), 2);

    // unregister: 202, idempotent, only the caller's own device
    alice.expect(Method::DELETE, "/push_tokens/d25", 202).await;
    alice.expect(Method::DELETE, "/push_tokens/d25", 202).await;
    alice.expect(Method::DELETE, "/push_tokens/d5", 202).await;
    assert_eq!(devices(&server, "alice").await.len(), 22);
    assert_eq!(devices(&server, "bob").await.len(), 2, "bob keeps d5");
    alice
        .expect(Method::DELETE, "/push_tokens/a%20b%2Fc", 202)
        .await;
}

#[tokio::test]
async fn push_token_bodies_are_validated() {
    let server = TestServer::start().await;
    let alice = User::of(&server, "alice").await;
    let valid = json!({"token": "t", "type": "apns", "device_id": "d"});
    let with = |key: &str, value: Value| {
        let mut body = valid.clone();
        body[key] = value;
        body
    };
    let without = |key: &str| {
        let mut body = valid.clone();
        body.as_object_mut().unwrap().remove(key);
        body
    };
    for (body, id, property) in [
        (without("token"), "missing_property", "token"),
        (without("type"), "missing_property", "type"),
        (without("device_id"), "missing_property", "device_id"),
        (with("token", Value::Null), "missing_property", "token"),
        (with("token", json!("")), "invalid_property", "token"),
        (
            with("token", json!("t".repeat(1025))),
            "invalid_property",
            "token",
        ),
        (with("token", json!(["t"])), "invalid_property", "token"),
        (with("type", json!("fcm")), "invalid_property", "type"),
        (with("type", json!("APNS")), "invalid_property", "type"),
        (with("type", json!(true)), "invalid_property", "type"),
        (
            with("device_id", json!({"id": 1})),
            "invalid_property",
            "device_id",
        ),
        (
            with("device_id", json!("d".repeat(256))),
            "invalid_property",
            "device_id",
        ),
        (
            with("apns_bundle_id", json!("b".repeat(256))),
            "invalid_property",
            "apns_bundle_id",
        ),
        (
            with("gcm_sender_id", json!(false)),
            "invalid_property",
            "gcm_sender_id",
        ),
        (
            with("ios_version", json!("1".repeat(33))),
            "invalid_property",
            "ios_version",
        ),
    ] {
        let response = alice
            .request(Method::POST, "/push_tokens")
            .json(&body)
            .send()
            .await
            .unwrap();
        let error = expect_error(response, 422, id).await;
        assert_eq!(error["data"]["property"], property, "{body}");
    }
    for body in ["", "{", "[]", "\"token\"", "null"] {
        let response = alice.post_json("/push_tokens", body).await;
        expect_error(response, 400, "invalid_request").await;
    }
    let long = "d".repeat(256);
    let response = alice
        .request(Method::DELETE, &format!("/push_tokens/{long}"))
        .send()
        .await
        .unwrap();
    expect_error(response, 422, "invalid_property").await;
    assert!(devices(&server, "alice").await.is_empty());

    // session users only: no session is a challenge, the proxy has no such route
    let response = server
        .client(Method::POST, "/push_tokens")
        .json(&valid)
        .send()
        .await
        .unwrap();
    let body = expect_error(response, 401, "authentication_required").await;
    assert!(body["data"]["nonce"].is_string());
    let response = server
        .proxy("alice", Method::POST, "/push_tokens")
        .json(&valid)
        .send()
        .await
        .unwrap();
    expect_error(response, 404, "invalid_endpoint").await;
    let response = server
        .proxy("alice", Method::DELETE, "/push_tokens/d")
        .send()
        .await
        .unwrap();
    expect_error(response, 404, "invalid_endpoint").await;
}

#[tokio::test]
async fn joining_a_new_conversation_together_follows_again_after_an_unfollow() {
    let server = TestServer::start().await;
    let conversation = server.conversation_of(&["alice", "carol"]).await;
    let check = || {
        server
            .platform(Method::GET, "/users/alice/following/carol")
            .send()
    };
    assert_eq!(check().await.unwrap().status(), 204, "implicit follow");
    let response = server
        .platform(Method::DELETE, "/users/alice/following/carol")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(check().await.unwrap().status(), 404);
    // A message in the conversation they already share changes nothing ...
    server.send_text(&conversation, "still here").await;
    assert_eq!(check().await.unwrap().status(), 404);
    // ... joining a new one together follows again (client-api.md §3.8).
    server
        .create_conversation(json!({"participants": ["alice", "carol", "dave"], "distinct": false}))
        .await;
    assert_eq!(check().await.unwrap().status(), 204);
}
