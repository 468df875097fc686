//! Channels and memberships through the wire (client-api.md §3.10, client-wire-protocol.md
//! §5.8-5.9, §6.6): create (name conflict, id in use), membership, channel messages, metadata,
//! delete, version gating and isolation. Every user logs in through the identity-token flow.

use reqwest::{Method, RequestBuilder, Response};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::common::{
    accept_version, assert_keys, encode_path, expect_error, json, layer_count, uuid_of, Provider,
    TestServer, IDENTITY_KEY_A, IDENTITY_KEY_B, PATCH_CONTENT_TYPE,
};

const CHANNEL_KEYS: &[&str] = &["id", "url", "created_at", "name", "metadata", "membership"];
const MEMBERSHIP_KEYS: &[&str] = &["id", "url", "channel", "identity", "role", "joined_at"];
const MESSAGE_KEYS: &[&str] = &[
    "id",
    "url",
    "position",
    "channel",
    "parts",
    "sent_at",
    "received_at",
    "sender",
    "updated_at",
];

struct World {
    server: TestServer,
    provider: Provider,
}

impl World {
    async fn new() -> Self {
        Self::with(&[]).await
    }

    async fn with(extra: &[(&str, &str)]) -> Self {
        let server = TestServer::start_with(extra).await;
        let provider = Provider::register(&server.store, server.app_id, IDENTITY_KEY_A).await;
        World { server, provider }
    }

    async fn login(&self, user: &str) -> String {
        self.server.login(&self.provider, user).await
    }

    /// Gives the user's identity a display name (Platform API).
    async fn name(&self, user: &str, display_name: &str) {
        let response = self
            .server
            .platform(Method::PUT, &format!("/users/{user}/identity"))
            .json(&json!({"display_name": display_name}))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "identity of {user}");
    }

    /// A Client API 3.0 request as `session`.
    fn req(&self, session: &str, method: Method, path: &str) -> RequestBuilder {
        self.server.as_session(session, method, path)
    }

    /// A Client API request as `session` asking for `version`.
    fn req_version(
        &self,
        version: &str,
        session: &str,
        method: Method,
        path: &str,
    ) -> RequestBuilder {
        self.server
            .raw(method, path)
            .header("accept", accept_version(version))
            .header(
                "authorization",
                format!("Layer session-token=\"{session}\""),
            )
    }

    async fn create(&self, session: &str, body: Value) -> Response {
        self.req(session, Method::POST, "/channels")
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Creates a channel named `name`; asserts 201 and returns its UUID.
    async fn channel(&self, session: &str, name: &str, members: &[&str]) -> String {
        let response = self
            .create(session, json!({"name": name, "members": members}))
            .await;
        assert_eq!(response.status(), 201, "create {name}");
        uuid_of(json(response).await["id"].as_str().unwrap())
    }

    async fn get(&self, session: &str, path: &str) -> Response {
        self.req(session, Method::GET, path).send().await.unwrap()
    }

    async fn send(&self, session: &str, channel: &str, body: Value) -> Response {
        self.req(
            session,
            Method::POST,
            &format!("/channels/{channel}/messages"),
        )
        .json(&body)
        .send()
        .await
        .unwrap()
    }

    /// Sends a text message; asserts 201 and returns the message.
    async fn send_text(&self, session: &str, channel: &str, text: &str) -> Value {
        let response = self
            .send(
                session,
                channel,
                json!({"parts": [{"mime_type": "text/plain", "body": text}]}),
            )
            .await;
        assert_eq!(response.status(), 201, "send {text:?}");
        json(response).await
    }

    async fn put_member(&self, session: &str, channel: &str, user: &str) -> Response {
        let path = format!("/channels/{channel}/members/{}", encode_path(user));
        self.req(session, Method::PUT, &path).send().await.unwrap()
    }

    async fn delete_member(&self, session: &str, channel: &str, user: &str) -> Response {
        let path = format!("/channels/{channel}/members/{}", encode_path(user));
        self.req(session, Method::DELETE, &path)
            .send()
            .await
            .unwrap()
    }

    async fn patch(&self, session: &str, channel: &str, ops: Value) -> Response {
        self.req(session, Method::PATCH, &format!("/channels/{channel}"))
            .header("content-type", PATCH_CONTENT_TYPE)
            .body(ops.to_string())
            .send()
            .await
            .unwrap()
    }

    /// The user ids of a member list page.
    async fn member_page(&self, session: &str, path: &str) -> (i64, Vec<String>, Vec<Value>) {
        let response = self.get(session, path).await;
        assert_eq!(response.status(), 200, "{path}");
        let count = layer_count(&response);
        let items: Vec<Value> = json(response).await.as_array().unwrap().clone();
        let users = items
            .iter()
            .map(|m| m["identity"]["user_id"].as_str().unwrap().to_owned())
            .collect();
        (count, users, items)
    }
}

/// Sends the requests concurrently; their responses, in any order.
async fn all(requests: Vec<RequestBuilder>) -> Vec<Response> {
    let mut set = tokio::task::JoinSet::new();
    for request in requests {
        set.spawn(request.send());
    }
    let mut responses = Vec::new();
    while let Some(done) = set.join_next().await {
        responses.push(done.unwrap().unwrap());
    }
    responses
}

#[tokio::test]
async fn create_renders_the_channel_with_the_creators_membership() {
    let w = World::new().await;
    let alice = w.login("alice").await;
    let bob = w.login("bob").await;
    w.name("alice", "Alice").await;
    let id = Uuid::new_v4();
    let response = w
        .create(
            &alice,
            json!({
                "id": format!("layer:///channels/{id}"),
                "name": "general",
                "metadata": {"topic": "anything", "nested": {"a": "b"}},
                "members": ["layer:///identities/bob", "layer:///identities/alice"],
            }),
        )
        .await;
    assert_eq!(response.status(), 201);
    let channel = json(response).await;
    assert_keys(&channel, CHANNEL_KEYS);
    assert_eq!(channel["id"], format!("layer:///channels/{id}"));
    assert_eq!(channel["url"], format!("{}/channels/{id}", w.server.base));
    assert_eq!(channel["name"], "general");
    assert_eq!(
        channel["metadata"],
        json!({"topic": "anything", "nested": {"a": "b"}})
    );
    assert!(channel["created_at"].as_str().unwrap().ends_with('Z'));
    let membership = &channel["membership"];
    assert_keys(membership, MEMBERSHIP_KEYS);
    assert_eq!(
        membership["id"],
        format!("layer:///channels/{id}/members/alice")
    );
    assert_eq!(
        membership["url"],
        format!("{}/channels/{id}/members/alice", w.server.base)
    );
    assert_eq!(
        membership["channel"],
        json!({"id": format!("layer:///channels/{id}"), "url": format!("{}/channels/{id}", w.server.base)})
    );
    assert_eq!(membership["identity"]["id"], "layer:///identities/alice");
    assert_eq!(membership["identity"]["user_id"], "alice");
    assert_eq!(membership["identity"]["display_name"], "Alice");
    assert!(membership["role"].is_null());
    assert!(membership["joined_at"].is_string());

    // The same channel by id, bare or as a Layer id, for the creator and for a listed member.
    let response = w.get(&alice, &format!("/channels/{id}")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(json(response).await, channel);
    let response = w
        .get(&bob, &format!("/channels/layer%3A%2F%2F%2Fchannels%2F{id}"))
        .await;
    assert_eq!(response.status(), 200);
    let seen_by_bob = json(response).await;
    assert_eq!(seen_by_bob["name"], "general");
    assert_eq!(seen_by_bob["membership"]["identity"]["user_id"], "bob");

    // Metadata is {} when not given or null; a bare UUID id is kept.
    let bare = Uuid::new_v4();
    let response = w
        .create(
            &bob,
            json!({"id": bare.to_string(), "name": "random", "metadata": null}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let channel = json(response).await;
    assert_eq!(channel["id"], format!("layer:///channels/{bare}"));
    assert_eq!(channel["metadata"], json!({}));
    let (count, users, _) = w
        .member_page(&bob, &format!("/channels/{bare}/members"))
        .await;
    assert_eq!((count, users), (1, vec!["bob".to_owned()]));
}

#[tokio::test]
async fn a_taken_name_is_a_conflict_carrying_the_existing_channel() {
    let w = World::new().await;
    let alice = w.login("alice").await;
    let bob = w.login("bob").await;
    let carol = w.login("carol").await;
    let general = w.channel(&alice, "general", &["carol"]).await;

    // Bob is no member: he gets the channel (how clients find one by name), without membership.
    let response = w
        .create(
            &bob,
            json!({"id": Uuid::new_v4().to_string(), "name": "general", "metadata": {"x": "y"}}),
        )
        .await;
    let error = expect_error(response, 409, "conflict").await;
    assert_keys(&error["data"], CHANNEL_KEYS);
    assert_eq!(error["data"]["id"], format!("layer:///channels/{general}"));
    assert_eq!(error["data"]["metadata"], json!({}));
    assert!(error["data"]["membership"].is_null(), "{error}");

    // ... which he may then join.
    let response = w.put_member(&bob, &general, "bob").await;
    assert_eq!(response.status(), 204);
    let response = w.get(&bob, &format!("/channels/{general}")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        json(response).await["membership"]["identity"]["user_id"],
        "bob"
    );

    // A member creating it again gets it with their membership.
    let response = w.create(&carol, json!({"name": "general"})).await;
    let error = expect_error(response, 409, "conflict").await;
    assert_eq!(error["data"]["membership"]["identity"]["user_id"], "carol");

    // Names are exact: another spelling is another channel.
    let response = w.create(&bob, json!({"name": "General"})).await;
    assert_eq!(response.status(), 201);
    let response = w.get(&alice, "/channels").await;
    assert_eq!(layer_count(&response), 1);
}

#[tokio::test]
async fn concurrent_creates_of_one_name_make_one_channel() {
    let w = World::new().await;
    let alice = w.login("alice").await;
    let bob = w.login("bob").await;
    let (a, b) = tokio::join!(
        w.create(&alice, json!({"name": "race"})),
        w.create(&bob, json!({"name": "race"}))
    );
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409]);
    let (ja, jb) = (json(a).await, json(b).await);
    let (created, conflict) = if ja["id"] == "conflict" {
        (&jb, &ja)
    } else {
        (&ja, &jb)
    };
    assert_eq!(conflict["data"]["id"], created["id"]);
}

#[tokio::test]
async fn a_taken_id_is_id_in_use() {
    let w = World::new().await;
    let alice = w.login("alice").await;
    let carol = w.login("carol").await;
    let id = Uuid::new_v4();
    let body = json!({"id": format!("layer:///channels/{id}"), "name": "general"});
    let response = w.create(&alice, body.clone()).await;
    assert_eq!(response.status(), 201);
    let created = json(response).await;

    // Retrying the create is answered with the channel (what the SDKs count as success).
    let response = w.create(&alice, body).await;
    let error = expect_error(response, 409, "id_in_use").await;
    assert_eq!(error["data"], created);

    // Someone who is no member learns nothing, whatever the name.
    for name in ["general", "other"] {
        let response = w
            .create(&carol, json!({"id": id.to_string(), "name": name}))
            .await;
        let error = expect_error(response, 409, "id_in_use").await;
        assert!(error["data"].is_null(), "{error}");
    }

    // A deleted channel keeps its id taken, but frees its name.
    let response = w
        .req(&alice, Method::DELETE, &format!("/channels/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let response = w
        .create(&alice, json!({"id": id.to_string(), "name": "general"}))
        .await;
    let error = expect_error(response, 409, "id_in_use").await;
    assert!(error["data"].is_null(), "{error}");
    let response = w.create(&carol, json!({"name": "general"})).await;
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn create_validation() {
    let w = World::with(&[("LAYER__LIMITS__MAX_CHANNEL_MEMBERS", "3")]).await;
    let alice = w.login("alice").await;
    let long_name = "n".repeat(257);
    let long_user = "u".repeat(129);
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({}), 422, "missing_property"),
        (json!({"name": null}), 422, "missing_property"),
        (json!({"name": "  "}), 422, "invalid_property"),
        (json!({"name": long_name}), 422, "invalid_property"),
        (json!({"name": 5}), 400, "invalid_request"),
        (
            json!({"name": "a", "id": "nope"}),
            400,
            "invalid_request_id",
        ),
        (
            json!({"name": "a", "id": format!("layer:///conversations/{}", Uuid::new_v4())}),
            400,
            "invalid_request_id",
        ),
        (
            json!({"name": "a", "members": "bob"}),
            400,
            "invalid_request",
        ),
        (json!({"name": "a", "members": [1]}), 400, "invalid_request"),
        (
            json!({"name": "a", "members": [""]}),
            422,
            "invalid_property",
        ),
        (
            json!({"name": "a", "members": [long_user]}),
            422,
            "invalid_property",
        ),
        (
            json!({"name": "a", "members": ["layer:///identities/"]}),
            422,
            "invalid_property",
        ),
        (
            json!({"name": "a", "metadata": {"n": 1}}),
            422,
            "invalid_property",
        ),
        (
            json!({"name": "a", "metadata": "x"}),
            400,
            "invalid_request",
        ),
        (
            json!({"name": "a", "members": ["b", "c", "d"]}),
            422,
            "invalid_property",
        ),
        (json!([]), 400, "invalid_request"),
    ];
    for (body, status, id) in cases {
        let response = w.create(&alice, body.clone()).await;
        let error = expect_error(response, status, id).await;
        assert!(error["message"].is_string(), "{body}: {error}");
    }
    let response = w
        .req(&alice, Method::POST, "/channels")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    expect_error(response, 400, "invalid_request").await;
    // The creator counts once, however often listed: three members fit.
    let response = w
        .create(
            &alice,
            json!({"name": "a", "members": ["alice", "b", "layer:///identities/alice", "c", "b"]}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let response = w.get(&alice, "/channels").await;
    assert_eq!(layer_count(&response), 1);
}

#[tokio::test]
async fn members_join_leave_and_page() {
    let w = World::new().await;
    let alice = w.login("alice").await;
    let channel = w.channel(&alice, "general", &[]).await;
    let mut sessions = Vec::new();
    for user in ["u3", "u1", "u5", "u2", "u4"] {
        let session = w.login(user).await;
        let response = w.put_member(&session, &channel, user).await;
        assert_eq!(response.status(), 204, "{user} joins");
        sessions.push((user, session));
    }
    // Joining twice changes nothing.
    let response = w.put_member(&sessions[0].1, &channel, "u3").await;
    assert_eq!(response.status(), 204);

    // Pages in user id order; from_id is the last membership id of the page (raw, as the SDK
    // sends it), a user id or an Identity id.
    let base = format!("/channels/{channel}/members");
    let (count, users, page) = w.member_page(&alice, &format!("{base}?page_size=2")).await;
    assert_eq!(
        (count, users),
        (6, vec!["alice".to_owned(), "u1".to_owned()])
    );
    for member in &page {
        assert_keys(member, MEMBERSHIP_KEYS);
    }
    let last = page[1]["id"].as_str().unwrap();
    assert_eq!(last, format!("layer:///channels/{channel}/members/u1"));
    let (count, users, _) = w
        .member_page(&alice, &format!("{base}?page_size=2&from_id={last}"))
        .await;
    assert_eq!((count, users), (6, vec!["u2".to_owned(), "u3".to_owned()]));
    let (_, users, _) = w
        .member_page(&alice, &format!("{base}?page_size=2&from_id=u3"))
        .await;
    assert_eq!(users, vec!["u4".to_owned(), "u5".to_owned()]);
    let (_, users, _) = w
        .member_page(
            &alice,
            &format!("{base}?page_size=10&from_id=layer%3A%2F%2F%2Fidentities%2Fu4"),
        )
        .await;
    assert_eq!(users, vec!["u5".to_owned()]);
    let (_, users, _) = w.member_page(&alice, &format!("{base}?from_id=u5")).await;
    assert!(users.is_empty());
    let (_, users, _) = w
        .member_page(&alice, &format!("{base}?page_size=1000"))
        .await;
    assert_eq!(users.len(), 6);

    // One membership; a user who is not a member is 404 not_found.
    let response = w.get(&sessions[1].1, &format!("{base}/u4")).await;
    assert_eq!(response.status(), 200);
    let member = json(response).await;
    assert_keys(&member, MEMBERSHIP_KEYS);
    assert_eq!(member["identity"]["user_id"], "u4");
    let response = w.get(&alice, &format!("{base}/nobody")).await;
    expect_error(response, 404, "not_found").await;

    // Leaving: the channel is gone for the leaver, the others see one member less.
    let (u1, u1_session) = &sessions[1];
    let response = w.delete_member(u1_session, &channel, u1).await;
    assert_eq!(response.status(), 204);
    let response = w.get(u1_session, &format!("/channels/{channel}")).await;
    expect_error(response, 404, "not_found").await;
    let response = w.get(u1_session, "/channels").await;
    assert_eq!(layer_count(&response), 0);
    let response = w.delete_member(u1_session, &channel, u1).await;
    expect_error(response, 404, "not_found").await;
    let (count, users, _) = w.member_page(&alice, &format!("{base}?page_size=2")).await;
    assert_eq!(
        (count, users),
        (5, vec!["alice".to_owned(), "u2".to_owned()])
    );
    // A page boundary at a member who left still holds.
    let (_, users, _) = w
        .member_page(&alice, &format!("{base}?page_size=2&from_id=u1"))
        .await;
    assert_eq!(users, vec!["u2".to_owned(), "u3".to_owned()]);

    // Bad page parameters are 4xx.
    for query in ["page_size=0", "page_size=abc", "page_size=-1"] {
        let response = w.get(&alice, &format!("{base}?{query}")).await;
        expect_error(response, 422, "invalid_property").await;
    }
    let response = w
        .get(&alice, &format!("{base}?from_id=layer:///identities/%25FF"))
        .await;
    expect_error(response, 422, "invalid_property").await;
}

#[tokio::test]
async fn members_add_others_and_only_the_creator_removes_them() {
    let w = World::new().await;
    let alice = w.login("alice").await;
    let bob = w.login("bob").await;
    let carol = w.login("carol").await;
    let channel = w.channel(&alice, "general", &["bob"]).await;

    // A member adds someone (who never logged in, with reserved characters in the id).
    let odd = "dave/with space?&%";
    let response = w.put_member(&bob, &channel, odd).await;
    assert_eq!(response.status(), 204);
    let response = w
        .get(
            &bob,
            &format!("/channels/{channel}/members/{}", encode_path(odd)),
        )
        .await;
    assert_eq!(response.status(), 200);
    let member = json(response).await;
    assert_eq!(member["identity"]["user_id"], odd);
    assert_eq!(
        member["id"],
        format!("layer:///channels/{channel}/members/dave%2Fwith%20space%3F%26%25")
    );
    let url = member["url"].as_str().unwrap().to_owned();
    assert_eq!(
        url,
        format!(
            "{}/channels/{channel}/members/dave%2Fwith%20space%3F%26%25",
            w.server.base
        )
    );
    // The rendered url works as it is.
    let response = w.get(&bob, url.strip_prefix(&w.server.base).unwrap()).await;
    assert_eq!(response.status(), 200);

    // Only the creator removes others; anyone leaves.
    let response = w.delete_member(&bob, &channel, odd).await;
    expect_error(response, 403, "access_denied").await;
    let response = w.delete_member(&alice, &channel, odd).await;
    assert_eq!(response.status(), 204);
    let response = w.delete_member(&alice, &channel, odd).await;
    expect_error(response, 404, "not_found").await;
    let response = w.delete_member(&bob, &channel, "bob").await;
    assert_eq!(response.status(), 204);

    // Outsiders add nobody but themselves.
    let response = w.put_member(&carol, &channel, "erin").await;
    expect_error(response, 404, "not_found").await;
    let response = w.put_member(&bob, &channel, "bob").await;
    assert_eq!(response.status(), 204);

    // The creator who left may come back, and keeps the creator's rights.
    let response = w.delete_member(&alice, &channel, "alice").await;
    assert_eq!(response.status(), 204);
    let response = w.put_member(&alice, &channel, "alice").await;
    assert_eq!(response.status(), 204);
    let response = w.delete_member(&alice, &channel, "bob").await;
    assert_eq!(response.status(), 204);
    let (count, users, _) = w
        .member_page(&alice, &format!("/channels/{channel}/members"))
        .await;
    assert_eq!((count, users), (1, vec!["alice".to_owned()]));

    // Bad member ids are 4xx.
    let long = "x".repeat(129);
    let response = w.put_member(&alice, &channel, &long).await;
    expect_error(response, 422, "invalid_property").await;
}

#[tokio::test]
async fn the_251st_member_is_refused() {
    let w = World::new().await;
    let alice = w.login("alice").await;
    let bob = w.login("bob").await;
    let members: Vec<String> = (1..250).map(|i| format!("m{i:03}")).collect();
    let response = w
        .create(&alice, json!({"name": "full house", "members": members}))
        .await;
    assert_eq!(response.status(), 201);
    let channel = uuid_of(json(response).await["id"].as_str().unwrap());
    let (count, _, _) = w
        .member_page(&alice, &format!("/channels/{channel}/members?page_size=1"))
        .await;
    assert_eq!(count, 250);

    let response = w.put_member(&bob, &channel, "bob").await;
    let error = expect_error(response, 422, "invalid_property").await;
    assert_eq!(error["data"]["property"], "members");
    let response = w.put_member(&alice, &channel, "zed").await;
    expect_error(response, 422, "invalid_property").await;
    // Re-adding a member is no 251st.
    let response = w.put_member(&alice, &channel, "m001").await;
    assert_eq!(response.status(), 204);

    // A seat freed is a seat taken.
    let response = w.delete_member(&alice, &channel, "m001").await;
    assert_eq!(response.status(), 204);
    let response = w.put_member(&bob, &channel, "bob").await;
    assert_eq!(response.status(), 204);
    let (count, _, _) = w
        .member_page(&alice, &format!("/channels/{channel}/members?page_size=1"))
        .await;
    assert_eq!(count, 250);

    // More than 250 at creation is refused.
    let members: Vec<String> = (1..=250).map(|i| format!("m{i:03}")).collect();
    let response = w
        .create(&alice, json!({"name": "too many", "members": members}))
        .await;
    expect_error(response, 422, "invalid_property").await;
}

#[tokio::test]
async fn concurrent_joins_respect_the_limit() {
    let w = World::with(&[("LAYER__LIMITS__MAX_CHANNEL_MEMBERS", "5")]).await;
    let alice = w.login("alice").await;
    let channel = w.channel(&alice, "small", &[]).await;
    let users: Vec<String> = (0..12).map(|i| format!("user{i}")).collect();
    let responses = all(users
        .iter()
        .map(|u| {
            w.req(
                &alice,
                Method::PUT,
                &format!("/channels/{channel}/members/{u}"),
            )
        })
        .collect())
    .await;
    let added = responses.iter().filter(|r| r.status() == 204).count();
    let refused = responses.iter().filter(|r| r.status() == 422).count();
    assert_eq!((added, refused), (4, 8));
    let (count, users, _) = w
        .member_page(&alice, &format!("/channels/{channel}/members"))
        .await;
    assert_eq!((count, users.len()), (5, 5));
}

#[tokio::test]
async fn outsiders_reach_nothing_of_a_channel() {
    let w = World::new().await;
    let alice = w.login("alice").await;
    let carol = w.login("carol").await;
    let (other_app, _) = w.server.second_app().await;
    let other_provider = Provider::register(&w.server.store, other_app, IDENTITY_KEY_B).await;
    let other_alice = w.server.login_to(other_app, &other_provider, "alice").await;
    let channel = w.channel(&alice, "secret", &["bob"]).await;
    let message = w.send_text(&alice, &channel, "psst").await;
    let m = uuid_of(message["id"].as_str().unwrap());
    let c = &channel;

    for (who, session) in [("carol", &carol), ("another app's alice", &other_alice)] {
        let response = w.get(session, "/channels").await;
        assert_eq!(response.status(), 200);
        assert_eq!(layer_count(&response), 0, "{who}");
        assert_eq!(json(response).await, json!([]), "{who}");

        let text = json!({"parts": [{"body": "hi", "mime_type": "text/plain"}]});
        let attempts: Vec<(Method, String, Option<Value>)> = vec![
            (Method::GET, format!("/channels/{c}"), None),
            (Method::DELETE, format!("/channels/{c}"), None),
            (Method::GET, format!("/channels/{c}/messages"), None),
            (Method::POST, format!("/channels/{c}/messages"), Some(text)),
            (Method::GET, format!("/channels/{c}/members"), None),
            (Method::GET, format!("/channels/{c}/members/alice"), None),
            (Method::PUT, format!("/channels/{c}/members/dave"), None),
            (Method::DELETE, format!("/channels/{c}/members/bob"), None),
            (Method::DELETE, format!("/channels/{c}/members/alice"), None),
            (Method::GET, format!("/messages/{m}"), None),
            (Method::DELETE, format!("/messages/{m}"), None),
        ];
        for (method, path, body) in attempts {
            let mut request = w.req(session, method.clone(), &path);
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.unwrap();
            let error = expect_error(response, 404, "not_found").await;
            assert!(
                error.get("data").is_none(),
                "{who} {method} {path}: {error}"
            );
        }
        let response = w
            .patch(
                session,
                c,
                json!([{"operation": "set", "property": "metadata.x", "value": "y"}]),
            )
            .await;
        expect_error(response, 404, "not_found").await;
    }
    // The other app's alice cannot even join: the channel is not of her app.
    let response = w.put_member(&other_alice, c, "alice").await;
    expect_error(response, 404, "not_found").await;
    // An unknown or malformed channel id is the same 404.
    for path in [
        format!("/channels/{}", Uuid::new_v4()),
        "/channels/not-a-uuid".to_owned(),
        format!("/channels/layer%3A%2F%2F%2Fconversations%2F{c}"),
    ] {
        let response = w.get(&alice, &path).await;
        expect_error(response, 404, "not_found").await;
    }

    // Nothing changed.
    let response = w.get(&alice, &format!("/channels/{c}/members")).await;
    assert_eq!(layer_count(&response), 2);
    let response = w.get(&alice, &format!("/messages/{m}")).await;
    assert_eq!(json(response).await["parts"][0]["body"], "psst");
    let response = w.get(&alice, &format!("/channels/{c}")).await;
    assert_eq!(json(response).await["metadata"], json!({}));
}

#[tokio::test]
async fn channels_of_two_apps_are_separate() {
    let w = World::new().await;
    let alice = w.login("alice").await;
    let (other_app, _) = w.server.second_app().await;
    let other_provider = Provider::register(&w.server.store, other_app, IDENTITY_KEY_B).await;
    let other_alice = w.server.login_to(other_app, &other_provider, "alice").await;
    let id = Uuid::new_v4();
    // Same name and same id in both apps.
    for session in [&alice, &other_alice] {
        let response = w
            .create(session, json!({"id": id.to_string(), "name": "general"}))
            .await;
        assert_eq!(response.status(), 201);
    }
    let mid = Uuid::new_v4();
    for (session, text) in [(&alice, "mine"), (&other_alice, "theirs")] {
        let response = w
            .send(
                session,
                &id.to_string(),
                json!({"id": mid.to_string(), "parts": [{"body": text, "mime_type": "text/plain"}]}),
            )
            .await;
        assert_eq!(response.status(), 201);
    }
    let response = w.get(&alice, &format!("/messages/{mid}")).await;
    assert_eq!(json(response).await["parts"][0]["body"], "mine");
    let response = w.get(&other_alice, &format!("/messages/{mid}")).await;
    assert_eq!(json(response).await["parts"][0]["body"], "theirs");
}

#[tokio::test]
async fn metadata_patch() {
    let w = World::new().await;
    let alice = w.login("alice").await;
    let bob = w.login("bob").await;
    let channel = w.channel(&alice, "general", &["bob"]).await;
    let path = format!("/channels/{channel}");

    let response = w
        .patch(
            &bob,
            &channel,
            json!([
                {"operation": "set", "property": "metadata.topic", "value": "cats"},
                {"operation": "set", "property": "metadata.style.color", "value": "red"},
                {"operation": "set", "property": "metadata.style.size", "value": "big"},
            ]),
        )
        .await;
    assert_eq!(response.status(), 204);
    let response = w
        .patch(
            &alice,
            &channel,
            json!([{"operation": "delete", "property": "metadata.style.size"}]),
        )
        .await;
    assert_eq!(response.status(), 204);
    let expected = json!({"topic": "cats", "style": {"color": "red"}});
    let response = w.get(&alice, &path).await;
    assert_eq!(json(response).await["metadata"], expected);

    // The name and anything but metadata are refused; nothing of such a patch applies.
    let refused = [
        json!([{"operation": "set", "property": "name", "value": "renamed"}]),
        json!([
            {"operation": "set", "property": "metadata.topic", "value": "dogs"},
            {"operation": "set", "property": "name", "value": "renamed"},
        ]),
        json!([{"operation": "add", "property": "participants", "value": "carol"}]),
        json!([{"operation": "add", "property": "members", "value": "carol"}]),
        json!([{"operation": "delete", "property": "metadata"}]),
        json!([{"operation": "set", "property": "metadata.topic", "value": 5}]),
        json!([{"operation": "set", "property": "metadata", "value": "x"}]),
        json!([{"operation": "set", "property": "metadata.style.color.deep", "value": "x"}]),
    ];
    for ops in refused {
        let response = w.patch(&alice, &channel, ops.clone()).await;
        let status = response.status().as_u16();
        let body = json(response).await;
        assert!((400..500).contains(&status), "{ops}: {status} {body}");
        assert!(body["id"].is_string(), "{ops}: {body}");
    }
    for malformed in ["not json", "{}", "[{\"operation\": \"explode\"}]"] {
        let response = w
            .req(&alice, Method::PATCH, &path)
            .header("content-type", PATCH_CONTENT_TYPE)
            .body(malformed)
            .send()
            .await
            .unwrap();
        expect_error(response, 400, "invalid_request").await;
    }
    let response = w
        .req(&alice, Method::PATCH, &path)
        .header("content-type", "application/json")
        .body("[]")
        .send()
        .await
        .unwrap();
    expect_error(response, 406, "invalid_header").await;
    let response = w.get(&alice, &path).await;
    let channel_now = json(response).await;
    assert_eq!(channel_now["metadata"], expected);
    assert_eq!(channel_now["name"], "general");
}

#[tokio::test]
async fn concurrent_metadata_patches_all_apply() {
    let w = World::new().await;
    let alice = w.login("alice").await;
    let channel = w.channel(&alice, "busy", &[]).await;
    let patches = (0..8)
        .map(|i| {
            w.req(&alice, Method::PATCH, &format!("/channels/{channel}"))
                .header("content-type", PATCH_CONTENT_TYPE)
                .body(
                    json!([{"operation": "set", "property": format!("metadata.k{i}"), "value": "v"}])
                        .to_string(),
                )
        })
        .collect();
    for response in all(patches).await {
        assert_eq!(response.status(), 204);
    }
    let response = w.get(&alice, &format!("/channels/{channel}")).await;
    assert_eq!(
        json(response).await["metadata"].as_object().unwrap().len(),
        8
    );
}

#[tokio::test]
async fn only_the_creator_deletes_a_channel() {
    let w = World::new().await;
    let alice = w.login("alice").await;
    let bob = w.login("bob").await;
    let channel = w.channel(&alice, "general", &["bob"]).await;
    let message = w.send_text(&bob, &channel, "hello").await;
    let m = uuid_of(message["id"].as_str().unwrap());
    let path = format!("/channels/{channel}");

    let response = w.req(&bob, Method::DELETE, &path).send().await.unwrap();
    expect_error(response, 403, "access_denied").await;
    // Layer's SDK sends an empty query string.
    let response = w
        .req(&alice, Method::DELETE, &format!("{path}?"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);

    for session in [&alice, &bob] {
        for gone in [
            path.clone(),
            format!("{path}/messages"),
            format!("{path}/members"),
            format!("{path}/members/alice"),
            format!("/messages/{m}"),
        ] {
            let response = w.get(session, &gone).await;
            expect_error(response, 404, "not_found").await;
        }
        let response = w.get(session, "/channels").await;
        assert_eq!(layer_count(&response), 0);
    }
    let response = w.req(&alice, Method::DELETE, &path).send().await.unwrap();
    expect_error(response, 404, "not_found").await;
    let response = w.put_member(&alice, &channel, "alice").await;
    expect_error(response, 404, "not_found").await;
}

#[tokio::test]
async fn channel_messages_send_list_and_page() {
    let w = World::new().await;
    let alice = w.login("alice").await;
    let bob = w.login("bob").await;
    w.name("bob", "Bob").await;
    let channel = w.channel(&alice, "general", &["bob"]).await;

    let (id, part) = (Uuid::new_v4(), Uuid::new_v4());
    let response = w
        .send(
            &bob,
            &channel,
            json!({
                "id": format!("layer:///messages/{id}"),
                "parts": [{"id": format!("layer:///messages/{id}/parts/{part}"), "mime_type": "text/plain", "body": "first"}],
                "notification": {"text": "ignored: channels send no pushes"},
            }),
        )
        .await;
    assert_eq!(response.status(), 201);
    let first = json(response).await;
    assert_keys(&first, MESSAGE_KEYS);
    assert_eq!(first["id"], format!("layer:///messages/{id}"));
    assert_eq!(first["url"], format!("{}/messages/{id}", w.server.base));
    assert_eq!(
        first["channel"],
        json!({"id": format!("layer:///channels/{channel}"), "url": format!("{}/channels/{channel}", w.server.base)})
    );
    assert_eq!(
        first["parts"][0]["id"],
        format!("layer:///messages/{id}/parts/{part}")
    );
    assert_eq!(first["parts"][0]["body"], "first");
    assert_eq!(first["sender"]["user_id"], "bob");
    assert_eq!(first["sender"]["display_name"], "Bob");
    assert_eq!(first["position"], 1);
    assert!(first["updated_at"].is_null());

    // GET /messages/:id serves channel messages like conversation ones.
    let response = w.get(&alice, &format!("/messages/{id}")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(json(response).await, first);

    let mut ids = vec![first["id"].as_str().unwrap().to_owned()];
    for i in 2..=5 {
        let message = w.send_text(&alice, &channel, &format!("m{i}")).await;
        assert_eq!(message["position"], i);
        ids.push(message["id"].as_str().unwrap().to_owned());
    }

    // Newest first, paged by from_id (the full id, raw, as the SDK sends it).
    let base = format!("/channels/{channel}/messages");
    let response = w.get(&bob, &format!("{base}?page_size=2")).await;
    assert_eq!(layer_count(&response), 5);
    let page = json(response).await;
    let texts: Vec<&str> = page
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["parts"][0]["body"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["m5", "m4"]);
    let last = page[1]["id"].as_str().unwrap();
    let response = w
        .get(&bob, &format!("{base}?page_size=2&from_id={last}"))
        .await;
    assert_eq!(layer_count(&response), 5);
    let page = json(response).await;
    assert_eq!(page[0]["parts"][0]["body"], "m3");
    assert_eq!(page[1]["parts"][0]["body"], "m2");
    let response = w
        .get(&bob, &format!("{base}?from_id={}", uuid_of(&ids[1])))
        .await;
    let page = json(response).await;
    assert_eq!(page.as_array().unwrap().len(), 1);
    assert_eq!(page[0]["parts"][0]["body"], "first");
    let response = w
        .get(&bob, &format!("{base}?from_id={}", Uuid::new_v4()))
        .await;
    assert_eq!(json(response).await, json!([]));
    for query in ["page_size=0", "page_size=x"] {
        let response = w.get(&bob, &format!("{base}?{query}")).await;
        expect_error(response, 422, "invalid_property").await;
    }
    let response = w.get(&bob, &format!("{base}?from_id=nope")).await;
    expect_error(response, 400, "invalid_request_id").await;

    // Members who join later see the whole (shared) history.
    let carol = w.login("carol").await;
    let response = w.put_member(&carol, &channel, "carol").await;
    assert_eq!(response.status(), 204);
    let response = w.get(&carol, &base).await;
    assert_eq!(layer_count(&response), 5);
}

#[tokio::test]
async fn message_ids_are_shared_with_conversations() {
    let w = World::new().await;
    let alice = w.login("alice").await;
    let carol = w.login("carol").await;
    let channel = w.channel(&alice, "general", &[]).await;
    let body = |id: &Uuid| json!({"id": id.to_string(), "parts": [{"mime_type": "text/plain", "body": "x"}]});

    // A retried send is answered with the message.
    let id = Uuid::new_v4();
    let response = w.send(&alice, &channel, body(&id)).await;
    assert_eq!(response.status(), 201);
    let sent = json(response).await;
    let response = w.send(&alice, &channel, body(&id)).await;
    let error = expect_error(response, 409, "id_in_use").await;
    assert_eq!(error["data"], sent);

    // Carol cannot reuse it, not even in a conversation, and learns nothing.
    let carols = w.channel(&carol, "carol's", &[]).await;
    let response = w.send(&carol, &carols, body(&id)).await;
    let error = expect_error(response, 409, "id_in_use").await;
    assert!(error["data"].is_null(), "{error}");
    let response = w
        .req(&carol, Method::POST, "/conversations")
        .json(&json!({"participants": ["dave"], "distinct": false}))
        .send()
        .await
        .unwrap();
    let conversation = uuid_of(json(response).await["id"].as_str().unwrap());
    let response = w
        .req(
            &carol,
            Method::POST,
            &format!("/conversations/{conversation}/messages"),
        )
        .json(&body(&id))
        .send()
        .await
        .unwrap();
    let error = expect_error(response, 409, "id_in_use").await;
    assert!(error["data"].is_null(), "{error}");

    // The other way round: a conversation message's id is taken for channels.
    let taken = Uuid::new_v4();
    let response = w
        .req(
            &carol,
            Method::POST,
            &format!("/conversations/{conversation}/messages"),
        )
        .json(&body(&taken))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let response = w.send(&carol, &carols, body(&taken)).await;
    let error = expect_error(response, 409, "id_in_use").await;
    assert!(error["data"].is_null(), "{error}");
    let response = w.get(&carol, &format!("/messages/{taken}")).await;
    assert!(json(response).await["conversation"].is_object());
}

#[tokio::test]
async fn channel_message_parts_are_validated_like_conversation_ones() {
    let w = World::new().await;
    let alice = w.login("alice").await;
    let channel = w.channel(&alice, "general", &[]).await;
    let id = Uuid::new_v4();
    let big = "x".repeat(2049);
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({}), 422, "missing_property"),
        (json!({"parts": []}), 422, "missing_property"),
        (json!({"parts": [{"body": "x"}]}), 422, "missing_property"),
        (
            json!({"parts": [{"mime_type": "text/plain"}]}),
            422,
            "missing_property",
        ),
        (
            json!({"parts": [{"mime_type": "text/plain", "body": big}]}),
            422,
            "invalid_property",
        ),
        (
            json!({"parts": [{"mime_type": "image/png", "body": "***", "encoding": "base64"}]}),
            422,
            "invalid_property",
        ),
        (
            json!({"parts": [{"mime_type": "text/plain", "body": "x", "encoding": "rot13"}]}),
            422,
            "invalid_property",
        ),
        (
            json!({"id": id.to_string(), "parts": [
                {"id": format!("layer:///messages/{id}/parts/{id}"), "mime_type": "text/plain", "body": "a"},
                {"id": id.to_string(), "mime_type": "text/plain", "body": "b"},
            ]}),
            422,
            "invalid_property",
        ),
        (
            json!({"id": id.to_string(), "parts": [
                {"id": format!("layer:///messages/{}/parts/{id}", Uuid::new_v4()), "mime_type": "text/plain", "body": "a"},
            ]}),
            422,
            "invalid_property",
        ),
        (
            json!({"id": "nope", "parts": []}),
            400,
            "invalid_request_id",
        ),
        (json!({"parts": "x"}), 400, "invalid_request"),
        (json!([1]), 400, "invalid_request"),
    ];
    for (body, status, error_id) in cases {
        let response = w.send(&alice, &channel, body.clone()).await;
        let error = expect_error(response, status, error_id).await;
        assert!(error["message"].is_string(), "{body}");
    }
    let response = w
        .get(&alice, &format!("/channels/{channel}/messages"))
        .await;
    assert_eq!(layer_count(&response), 0);

    // Rich content must be the sender's own upload.
    let unknown = format!("layer:///content/{}", Uuid::new_v4());
    let response = w
        .send(
            &alice,
            &channel,
            json!({"parts": [{"mime_type": "video/mp4", "content": {"id": unknown, "size": 5000}}]}),
        )
        .await;
    expect_error(response, 422, "invalid_property").await;

    // Base64 bodies are kept as sent; rich-content references get their download URLs.
    let video =
        crate::content::uploaded(&w.server, &alice, "video/mp4", &crate::content::bytes(5000))
            .await;
    let response = w
        .send(
            &alice,
            &channel,
            json!({"parts": [
                {"mime_type": "image/png", "body": "iVBORw0KGgo=", "encoding": "base64"},
                {"mime_type": "video/mp4", "content": {"id": video, "size": 5000}},
            ]}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let message = json(response).await;
    assert_eq!(message["parts"][0]["encoding"], "base64");
    assert_eq!(message["parts"][1]["content"]["size"], 5000);
    assert!(message["parts"][1]["content"]["download_url"].is_string());
}

#[tokio::test]
async fn channel_messages_are_deleted_for_everyone_by_sender_or_creator() {
    let w = World::new().await;
    let alice = w.login("alice").await;
    let bob = w.login("bob").await;
    let carol = w.login("carol").await;
    let channel = w.channel(&alice, "general", &["bob", "carol"]).await;
    let from_bob = uuid_of(
        w.send_text(&bob, &channel, "bob's").await["id"]
            .as_str()
            .unwrap(),
    );
    let from_carol = uuid_of(
        w.send_text(&carol, &channel, "carol's").await["id"]
            .as_str()
            .unwrap(),
    );
    let delete = |session: &str, id: &str, query: &str| {
        w.req(session, Method::DELETE, &format!("/messages/{id}{query}"))
            .send()
    };

    let response = delete(&carol, &from_bob, "").await.unwrap();
    expect_error(response, 403, "access_denied").await;
    let response = delete(&bob, &from_bob, "?mode=my_devices").await.unwrap();
    expect_error(response, 422, "invalid_property").await;
    let response = delete(&bob, &from_bob, "").await.unwrap();
    assert_eq!(response.status(), 204);
    // The creator moderates.
    let response = delete(&alice, &from_carol, "?mode=all_participants")
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    for id in [&from_bob, &from_carol] {
        for session in [&alice, &bob, &carol] {
            let response = w.get(session, &format!("/messages/{id}")).await;
            expect_error(response, 404, "not_found").await;
        }
        let response = delete(&alice, id, "").await.unwrap();
        expect_error(response, 404, "not_found").await;
    }
    let response = w
        .get(&alice, &format!("/channels/{channel}/messages"))
        .await;
    assert_eq!(layer_count(&response), 0);
}

#[tokio::test]
async fn channels_list_newest_first_with_paging() {
    let w = World::new().await;
    let alice = w.login("alice").await;
    let bob = w.login("bob").await;
    let mut names = Vec::new();
    for i in 0..5 {
        let name = format!("c{i}");
        w.channel(&alice, &name, &[]).await;
        names.push(name);
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    w.channel(&bob, "bob's own", &[]).await;
    let response = w.get(&alice, "/channels?page_size=2").await;
    assert_eq!(layer_count(&response), 5);
    let page = json(response).await;
    let listed: Vec<&str> = page
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["c4", "c3"]);
    for channel in page.as_array().unwrap() {
        assert_keys(channel, CHANNEL_KEYS);
        assert_eq!(channel["membership"]["identity"]["user_id"], "alice");
    }
    let mut seen: Vec<String> = listed.iter().map(|s| s.to_string()).collect();
    let mut last = page[1]["id"].as_str().unwrap().to_owned();
    loop {
        let response = w
            .get(&alice, &format!("/channels?page_size=2&from_id={last}"))
            .await;
        assert_eq!(layer_count(&response), 5);
        let page = json(response).await;
        let items = page.as_array().unwrap();
        if items.is_empty() {
            break;
        }
        seen.extend(items.iter().map(|c| c["name"].as_str().unwrap().to_owned()));
        last = items.last().unwrap()["id"].as_str().unwrap().to_owned();
    }
    assert_eq!(seen, ["c4", "c3", "c2", "c1", "c0"]);

    // A page boundary at a channel alice left still holds.
    let c2 = page_id(&w, &alice, "c2").await;
    let response = w.delete_member(&alice, &c2, "alice").await;
    assert_eq!(response.status(), 204);
    let response = w.get(&alice, &format!("/channels?from_id={c2}")).await;
    assert_eq!(layer_count(&response), 4);
    let names: Vec<String> = json(response)
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["c1", "c0"]);
    for query in ["page_size=0", "page_size=1.5"] {
        let response = w.get(&alice, &format!("/channels?{query}")).await;
        expect_error(response, 422, "invalid_property").await;
    }
    let response = w
        .get(&alice, &format!("/channels?from_id=layer:///messages/{c2}"))
        .await;
    expect_error(response, 400, "invalid_request_id").await;
}

/// The UUID of alice's channel named `name`.
async fn page_id(w: &World, session: &str, name: &str) -> String {
    let response = w.get(session, "/channels").await;
    let list = json(response).await;
    let channel = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no channel {name}: {list}"));
    uuid_of(channel["id"].as_str().unwrap())
}

#[tokio::test]
async fn channels_exist_from_version_2_on() {
    let w = World::new().await;
    let alice = w.login("alice").await;
    let channel = w.channel(&alice, "general", &[]).await;
    let message = w.send_text(&alice, &channel, "hi").await;
    let m = uuid_of(message["id"].as_str().unwrap());

    for (method, path) in [
        (Method::GET, "/channels".to_owned()),
        (Method::POST, "/channels".to_owned()),
        (Method::GET, format!("/channels/{channel}")),
        (Method::GET, format!("/channels/{channel}/messages")),
        (Method::GET, format!("/channels/{channel}/members")),
        (Method::PUT, format!("/channels/{channel}/members/alice")),
    ] {
        let response = w
            .req_version("1.0", &alice, method.clone(), &path)
            .json(&json!({"name": "x"}))
            .send()
            .await
            .unwrap();
        let error = expect_error(response, 404, "invalid_endpoint").await;
        assert!(
            error["message"].as_str().unwrap().contains("/channels"),
            "{method} {path}: {error}"
        );
    }
    let response = w
        .req_version("1.0", &alice, Method::GET, &format!("/messages/{m}"))
        .send()
        .await
        .unwrap();
    expect_error(response, 404, "not_found").await;

    // 2.0: the same objects, parts with index ids.
    let response = w
        .req_version("2.0", &alice, Method::GET, &format!("/messages/{m}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let v2 = json(response).await;
    assert_eq!(
        v2["parts"][0]["id"],
        format!("layer:///messages/{m}/parts/0")
    );
    assert_eq!(v2["channel"]["id"], format!("layer:///channels/{channel}"));
    let response = w
        .req_version("2.0", &alice, Method::GET, "/channels")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_keys(&json(response).await[0], CHANNEL_KEYS);

    // Without a session: the challenge, whatever the version 2.0+ route.
    let response = w
        .server
        .client(Method::GET, "/channels")
        .send()
        .await
        .unwrap();
    let error = expect_error(response, 401, "authentication_required").await;
    assert!(error["data"]["nonce"].is_string());
    // Channels are no Platform API resource, not even through the proxy.
    let response = w
        .server
        .platform(Method::GET, &format!("/channels/{channel}"))
        .send()
        .await
        .unwrap();
    expect_error(response, 404, "invalid_endpoint").await;
    let response = w
        .server
        .proxy("alice", Method::GET, "/channels")
        .send()
        .await
        .unwrap();
    expect_error(response, 404, "invalid_endpoint").await;
}
