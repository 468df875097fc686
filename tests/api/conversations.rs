//! Platform API conversations (server-api.md §3.3, §5; layer-patch.md §7, §9.3): create with
//! distinct semantics, get, delete, Layer Patch of participants and metadata, app isolation.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{
    assert_keys, expect_error, identity_id, json as body_json, uuid_of, TestServer,
    PATCH_CONTENT_TYPE,
};

/// The user ids of a rendered participant list (v3 BasicIdentities or v1 strings).
fn user_ids(conversation: &Value) -> Vec<String> {
    conversation["participants"]
        .as_array()
        .unwrap_or_else(|| panic!("participants: {conversation}"))
        .iter()
        .map(|p| match p {
            Value::String(user) => user.clone(),
            other => other["user_id"].as_str().unwrap().to_owned(),
        })
        .collect()
}

async fn post_conversation(server: &TestServer, body: Value) -> reqwest::Response {
    server
        .platform(Method::POST, "/conversations")
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn get_status(server: &TestServer, path: &str) -> reqwest::Response {
    server.platform(Method::GET, path).send().await.unwrap()
}

// Create

#[tokio::test]
async fn create_v3_renders_basic_identities_in_the_order_given() {
    let server = TestServer::start().await;
    server.create_identity("zed", "Zed Z").await;
    let created = server
        .create_conversation(json!({
            "participants": ["zed", identity_id("amy"), "bob"],
            "metadata": {"topic": "x", "nested": {"a": "b"}},
        }))
        .await;

    let id = created["id"].as_str().unwrap();
    assert!(id.starts_with("layer:///conversations/"), "{created}");
    let uuid = uuid_of(id);
    assert!(uuid::Uuid::try_parse(&uuid).is_ok(), "{created}");
    let url = format!("{}/conversations/{uuid}", server.app_url());
    assert_eq!(created["url"], url);
    assert_eq!(created["messages_url"], format!("{url}/messages"));
    assert!(created["created_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    // Conversations are distinct unless asked otherwise.
    assert_eq!(created["distinct"], true);
    assert_eq!(
        created["metadata"],
        json!({"topic": "x", "nested": {"a": "b"}})
    );
    assert_eq!(user_ids(&created), ["zed", "amy", "bob"]);

    let zed = &created["participants"][0];
    assert_eq!(
        zed,
        &json!({
            "id": "layer:///identities/zed",
            "url": format!("{}/users/zed/identity", server.app_url()),
            "user_id": "zed",
            "display_name": "Zed Z",
            "avatar_url": null,
        })
    );
    // A user without an identity still gets a BasicIdentity, with a null display name.
    let amy = created["participants"][1].as_object().unwrap();
    assert_eq!(amy.len(), 5, "exactly the five BasicIdentity keys: {amy:?}");
    assert_eq!(amy["id"], "layer:///identities/amy");
    assert!(amy["display_name"].is_null());

    assert_keys(
        &created,
        &[
            "id",
            "url",
            "messages_url",
            "created_at",
            "participants",
            "distinct",
            "metadata",
        ],
    );
    // GET renders the same conversation.
    assert_eq!(server.get_conversation(&uuid).await, created);
}

#[tokio::test]
async fn create_v1_takes_and_renders_user_ids() {
    let server = TestServer::start().await;
    server.create_identity("ann", "Ann").await;
    let response = server
        .platform_version("1.1", Method::POST, "/conversations")
        .json(&json!({"participants": ["ann", "ben"], "distinct": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created = body_json(response).await;
    assert_eq!(created["participants"], json!(["ann", "ben"]));
    assert_eq!(created["distinct"], false);
    assert_eq!(created["metadata"], json!({}));
}

#[tokio::test]
async fn identity_ids_are_percent_decoded_into_user_ids() {
    let server = TestServer::start().await;
    let created = server
        .create_conversation(json!({"participants": ["layer:///identities/a%2Fb", "c"]}))
        .await;
    assert_eq!(user_ids(&created), ["a/b", "c"]);
    assert_eq!(
        created["participants"][0]["id"],
        "layer:///identities/a%2Fb"
    );
    assert_eq!(
        created["participants"][0]["url"],
        format!("{}/users/a%2Fb/identity", server.app_url())
    );
    // The same set given as plain user ids is the same distinct conversation.
    let again = post_conversation(&server, json!({"participants": ["c", "a/b"]})).await;
    assert_eq!(again.status(), 200);
    assert_eq!(body_json(again).await["id"], created["id"]);
}

#[tokio::test]
async fn distinct_create_of_the_same_set_returns_the_existing_one() {
    let server = TestServer::start().await;
    let created = server
        .create_conversation(json!({"participants": ["a", "b", "c"], "metadata": {"k": "v"}}))
        .await;
    let uuid = uuid_of(created["id"].as_str().unwrap());

    for body in [
        json!({"participants": ["c", "a", "b"]}),
        json!({"participants": ["b", "c", "a"], "distinct": true, "metadata": null}),
        json!({"participants": ["a", "b", "c"], "metadata": {"k": "v"}}),
    ] {
        let response = post_conversation(&server, body.clone()).await;
        assert_eq!(response.status(), 200, "{body}");
        let location = response
            .headers()
            .get("location")
            .unwrap_or_else(|| panic!("Location on 200: {body}"))
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            location,
            format!("/apps/{}/conversations/{uuid}", server.app_id),
            "{body}"
        );
        let existing = body_json(response).await;
        assert_eq!(existing["id"], created["id"], "{body}");
        assert_eq!(existing["metadata"], json!({"k": "v"}));
        assert_eq!(existing["distinct"], true);
    }
}

#[tokio::test]
async fn distinct_create_with_other_metadata_is_a_conflict_carrying_the_existing_one() {
    let server = TestServer::start().await;
    let created = server
        .create_conversation(json!({"participants": ["a", "b"], "metadata": {"k": "v"}}))
        .await;
    for metadata in [
        json!({"k": "other"}),
        json!({}),
        json!({"k": "v", "x": "y"}),
    ] {
        let response = post_conversation(
            &server,
            json!({"participants": ["b", "a"], "metadata": metadata}),
        )
        .await;
        let error = expect_error(response, 409, "conflict").await;
        assert_eq!(error["data"]["id"], created["id"], "{metadata}");
        assert_eq!(error["data"]["metadata"], json!({"k": "v"}));
        assert_eq!(error["data"]["url"], created["url"]);
    }
}

#[tokio::test]
async fn concurrent_distinct_creates_make_one_conversation() {
    let server = TestServer::start().await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let participants = if i % 2 == 0 { ["p", "q"] } else { ["q", "p"] };
        let request = server
            .platform(Method::POST, "/conversations")
            .json(&json!({"participants": participants}));
        tasks.spawn(async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, body_json(response).await["id"].clone())
        });
    }
    let results = tasks.join_all().await;
    let created = results.iter().filter(|(s, _)| *s == 201).count();
    let found = results.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!((created, found), (1, 7), "{results:?}");
    assert!(
        results.iter().all(|(_, id)| *id == results[0].1),
        "{results:?}"
    );
}

#[tokio::test]
async fn non_distinct_creates_always_create() {
    let server = TestServer::start().await;
    let first = server
        .create_conversation(json!({"participants": ["a", "b"], "distinct": false}))
        .await;
    let second = server
        .create_conversation(json!({"participants": ["a", "b"], "distinct": false}))
        .await;
    assert_ne!(first["id"], second["id"]);
    assert_eq!(first["distinct"], false);
    // A distinct create of the same set does not match the non-distinct ones.
    let distinct = server
        .create_conversation(json!({"participants": ["a", "b"]}))
        .await;
    assert_ne!(distinct["id"], first["id"]);
    assert_ne!(distinct["id"], second["id"]);
}

#[tokio::test]
async fn a_deleted_distinct_conversation_no_longer_matches() {
    let server = TestServer::start().await;
    let first = server
        .create_conversation(json!({"participants": ["a", "b"]}))
        .await;
    let uuid = uuid_of(first["id"].as_str().unwrap());
    let response = server
        .platform(Method::DELETE, &format!("/conversations/{uuid}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let again = server
        .create_conversation(json!({"participants": ["a", "b"]}))
        .await;
    assert_ne!(again["id"], first["id"]);
}

#[tokio::test]
async fn create_validation() {
    let server = TestServer::start().await;
    let error = expect_error(
        post_conversation(&server, json!({})).await,
        422,
        "missing_property",
    )
    .await;
    assert_eq!(error["data"]["property"], "participants");

    let too_many: Vec<String> = (0..26).map(|i| format!("user{i}")).collect();
    let error = expect_error(
        post_conversation(&server, json!({"participants": too_many})).await,
        422,
        "invalid_property",
    )
    .await;
    assert_eq!(error["data"]["property"], "participants");

    let error = expect_error(
        post_conversation(
            &server,
            json!({"participants": ["a"], "metadata": {"count": 5}}),
        )
        .await,
        422,
        "invalid_property",
    )
    .await;
    assert_eq!(error["data"]["property"], "metadata");

    for reference in ["layer:///identities/", "layer:///conversations/x", ""] {
        let error = expect_error(
            post_conversation(&server, json!({"participants": ["a", reference]})).await,
            422,
            "invalid_property",
        )
        .await;
        assert_eq!(error["data"]["property"], "participants", "{reference:?}");
    }

    // 25 is the limit, not beyond it.
    let most: Vec<String> = (0..25).map(|i| format!("user{i}")).collect();
    let created = server
        .create_conversation(json!({"participants": most}))
        .await;
    assert_eq!(created["participants"].as_array().unwrap().len(), 25);
}

// Get and delete

#[tokio::test]
async fn get_unknown_malformed_and_deleted() {
    let server = TestServer::start().await;
    let unknown = uuid::Uuid::new_v4();
    expect_error(
        get_status(&server, &format!("/conversations/{unknown}")).await,
        404,
        "not_found",
    )
    .await;
    expect_error(
        get_status(&server, "/conversations/wrongid").await,
        404,
        "not_found",
    )
    .await;

    let uuid = server.conversation_of(&["a", "b"]).await;
    for _ in 0..2 {
        let response = server
            .platform(Method::DELETE, &format!("/conversations/{uuid}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204);
        assert_eq!(response.text().await.unwrap(), "");
    }
    let response = get_status(&server, &format!("/conversations/{uuid}")).await;
    assert_eq!(response.status(), 410);

    expect_error(
        server
            .platform(Method::DELETE, &format!("/conversations/{unknown}"))
            .send()
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;
}

// PATCH

#[tokio::test]
async fn patch_participants_in_v1_value_form() {
    let server = TestServer::start().await;
    let uuid = server.conversation_of(&["a", "b"]).await;
    let response = server
        .platform_version("1.1", Method::PATCH, &format!("/conversations/{uuid}"))
        .header("content-type", PATCH_CONTENT_TYPE)
        .body(
            json!([
                {"operation": "add", "property": "participants", "value": "c"},
                {"operation": "remove", "property": "participants", "value": "a"},
                // set semantics: adding a participant twice and removing a stranger change nothing
                {"operation": "add", "property": "participants", "value": "b"},
                {"operation": "remove", "property": "participants", "value": "nobody"},
            ])
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(response.text().await.unwrap(), "");
    assert_eq!(user_ids(&server.get_conversation(&uuid).await), ["b", "c"]);
}

#[tokio::test]
async fn patch_participants_with_identity_ids_r01_r02() {
    let server = TestServer::start().await;
    let uuid = server.conversation_of(&["a", "123"]).await;
    // R01: identity ids as `value`
    let response = server
        .patch_conversation(
            &uuid,
            json!([{"operation": "add", "property": "participants", "value": "layer:///identities/456"}]),
        )
        .await;
    assert_eq!(response.status(), 204);
    assert_eq!(
        user_ids(&server.get_conversation(&uuid).await),
        ["a", "123", "456"]
    );
    // R02: identity ids as `id`
    let response = server
        .patch_conversation(
            &uuid,
            json!([
                {"operation": "remove", "property": "participants", "id": "layer:///identities/a"},
                {"operation": "add", "property": "participants", "id": "layer:///identities/b"},
            ]),
        )
        .await;
    assert_eq!(response.status(), 204);
    assert_eq!(
        user_ids(&server.get_conversation(&uuid).await),
        ["123", "456", "b"]
    );
}

#[tokio::test]
async fn patch_set_participants_r03() {
    let server = TestServer::start().await;
    let uuid = server.conversation_of(&["a", "b"]).await;
    let response = server
        .patch_conversation(
            &uuid,
            json!([{"operation": "set", "property": "participants", "value": ["tu2", "tu1"]}]),
        )
        .await;
    assert_eq!(response.status(), 204);
    assert_eq!(
        user_ids(&server.get_conversation(&uuid).await),
        ["tu2", "tu1"]
    );

    // v2 "partial" set: clear, then add
    let response = server
        .patch_conversation(
            &uuid,
            json!([
                {"operation": "set", "property": "participants", "value": []},
                {"operation": "add", "property": "participants", "id": "layer:///identities/x"},
            ]),
        )
        .await;
    assert_eq!(response.status(), 204);
    assert_eq!(user_ids(&server.get_conversation(&uuid).await), ["x"]);

    // R03: an unknown conversation is 404
    let response = server
        .patch_conversation(
            &uuid::Uuid::new_v4().to_string(),
            json!([{"operation": "set", "property": "participants", "value": ["tu2", "tu1"]}]),
        )
        .await;
    expect_error(response, 404, "not_found").await;
}

#[tokio::test]
async fn patch_metadata_set_nested_r04() {
    let server = TestServer::start().await;
    let created = server
        .create_conversation(json!({"participants": ["a"], "metadata": {"foo": "bar"}}))
        .await;
    let uuid = uuid_of(created["id"].as_str().unwrap());
    let response = server
        .patch_conversation(
            &uuid,
            json!([
                {"operation": "set", "property": "metadata.foo", "value": "10"},
                {"operation": "set", "property": "metadata.bar",
                 "value": {"user": "fred", "hours": {"start": "9", "end": "5"}}},
            ]),
        )
        .await;
    assert_eq!(response.status(), 204);
    assert_eq!(
        server.get_conversation(&uuid).await["metadata"],
        json!({"foo": "10", "bar": {"user": "fred", "hours": {"start": "9", "end": "5"}}})
    );
}

#[tokio::test]
async fn patch_metadata_dotted_set_and_delete_r05() {
    let server = TestServer::start().await;
    let created = server
        .create_conversation(json!({
            "participants": ["a"],
            "metadata": {"stats": {"counter": "9"}, "admin": {"user_id": "fred"}},
        }))
        .await;
    let uuid = uuid_of(created["id"].as_str().unwrap());
    let response = server
        .patch_conversation(
            &uuid,
            json!([
                {"operation": "set", "property": "metadata.stats.counter", "value": "10"},
                {"operation": "delete", "property": "metadata.admin"},
            ]),
        )
        .await;
    assert_eq!(response.status(), 204);
    assert_eq!(
        server.get_conversation(&uuid).await["metadata"],
        json!({"stats": {"counter": "10"}})
    );

    // intermediate objects are created as needed
    let response = server
        .patch_conversation(
            &uuid,
            json!([{"operation": "set", "property": "metadata.a.b.c", "value": "deep"}]),
        )
        .await;
    assert_eq!(response.status(), 204);
    assert_eq!(
        server.get_conversation(&uuid).await["metadata"],
        json!({"stats": {"counter": "10"}, "a": {"b": {"c": "deep"}}})
    );
}

#[tokio::test]
async fn patch_metadata_number_is_invalid_r09() {
    let server = TestServer::start().await;
    let created = server
        .create_conversation(json!({"participants": ["a"], "metadata": {"foo": "bar"}}))
        .await;
    let uuid = uuid_of(created["id"].as_str().unwrap());
    for value in [json!(5), json!(true), json!(["x"]), json!({"nested": 1})] {
        let response = server
            .patch_conversation(
                &uuid,
                json!([{"operation": "set", "property": "metadata.count", "value": value}]),
            )
            .await;
        expect_error(response, 422, "invalid_property").await;
    }
    assert_eq!(server.get_conversation(&uuid).await, created);
}

#[tokio::test]
async fn patch_of_invalid_participants_is_refused() {
    let server = TestServer::start().await;
    let created = server
        .create_conversation(json!({"participants": ["a", "b"]}))
        .await;
    let uuid = uuid_of(created["id"].as_str().unwrap());
    let too_many: Vec<String> = (0..26).map(|i| format!("user{i}")).collect();
    for operation in [
        json!({"operation": "set", "property": "participants", "value": too_many}),
        json!({"operation": "set", "property": "participants", "value": "a"}),
        json!({"operation": "set", "property": "participants", "value": ["a", 5]}),
        json!({"operation": "add", "property": "participants", "value": 5}),
        json!({"operation": "add", "property": "participants", "value": ["c"]}),
        json!({"operation": "add", "property": "participants", "id": "layer:///conversations/x"}),
    ] {
        let response = server.patch_conversation(&uuid, json!([operation])).await;
        let error = expect_error(response, 422, "invalid_property").await;
        assert_eq!(error["data"]["property"], "participants", "{operation}");
    }
    assert_eq!(server.get_conversation(&uuid).await, created);
}

#[tokio::test]
async fn patch_of_forbidden_properties_is_refused_and_changes_nothing() {
    let server = TestServer::start().await;
    let created = server
        .create_conversation(json!({"participants": ["a", "b"], "metadata": {"k": "v"}}))
        .await;
    let uuid = uuid_of(created["id"].as_str().unwrap());
    for operation in [
        json!({"operation": "set", "property": "distinct", "value": false}),
        json!({"operation": "set", "property": "created_at", "value": "2001-01-01T00:00:00.000Z"}),
        json!({"operation": "set", "property": "id", "value": "layer:///conversations/x"}),
        json!({"operation": "delete", "property": "metadata"}),
    ] {
        let response = server.patch_conversation(&uuid, json!([operation])).await;
        expect_error(response, 422, "invalid_property").await;
    }
    assert_eq!(server.get_conversation(&uuid).await, created);
}

#[tokio::test]
async fn patch_is_atomic() {
    let server = TestServer::start().await;
    let created = server
        .create_conversation(json!({"participants": ["a", "b"], "metadata": {"k": "v"}}))
        .await;
    let uuid = uuid_of(created["id"].as_str().unwrap());
    // the bad operation last, after good ones of both kinds
    let response = server
        .patch_conversation(
            &uuid,
            json!([
                {"operation": "set", "property": "metadata.k", "value": "changed"},
                {"operation": "add", "property": "participants", "value": "c"},
                {"operation": "set", "property": "metadata.n", "value": 1},
            ]),
        )
        .await;
    expect_error(response, 422, "invalid_property").await;
    let response = server
        .patch_conversation(
            &uuid,
            json!([
                {"operation": "remove", "property": "participants", "value": "a"},
                {"operation": "set", "property": "distinct", "value": false},
            ]),
        )
        .await;
    expect_error(response, 422, "invalid_property").await;
    // an operation the document refuses (a path through a string)
    let response = server
        .patch_conversation(
            &uuid,
            json!([
                {"operation": "set", "property": "metadata.fresh", "value": "1"},
                {"operation": "set", "property": "metadata.k.sub", "value": "x"},
            ]),
        )
        .await;
    expect_error(response, 422, "invalid_property").await;
    assert_eq!(server.get_conversation(&uuid).await, created);
}

#[tokio::test]
async fn malformed_patches_are_invalid_requests() {
    let server = TestServer::start().await;
    let created = server
        .create_conversation(json!({"participants": ["a"], "metadata": {"k": "v"}}))
        .await;
    let uuid = uuid_of(created["id"].as_str().unwrap());
    for body in [
        "not json".to_owned(),
        json!({"operation": "set", "property": "metadata.k", "value": "x"}).to_string(),
        json!([{"operation": "replace", "property": "metadata.k", "value": "x"}]).to_string(),
        json!([{"property": "metadata.k", "value": "x"}]).to_string(),
        json!([{"operation": "set", "value": "x"}]).to_string(),
    ] {
        let response = server
            .platform(Method::PATCH, &format!("/conversations/{uuid}"))
            .header("content-type", PATCH_CONTENT_TYPE)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        expect_error(response, 400, "invalid_request").await;
    }
    assert_eq!(server.get_conversation(&uuid).await, created);
}

#[tokio::test]
async fn patch_with_the_wrong_content_type_is_406() {
    let server = TestServer::start().await;
    let created = server
        .create_conversation(json!({"participants": ["a"], "metadata": {"k": "v"}}))
        .await;
    let uuid = uuid_of(created["id"].as_str().unwrap());
    let response = server
        .platform(Method::PATCH, &format!("/conversations/{uuid}"))
        .json(&json!([{"operation": "set", "property": "metadata.k", "value": "x"}]))
        .send()
        .await
        .unwrap();
    let error = expect_error(response, 406, "invalid_header").await;
    assert_eq!(error["data"]["header"], "Content-Type");
    assert_eq!(server.get_conversation(&uuid).await, created);

    // X-HTTP-Method-Override: PATCH is a PATCH, with the same content type rule
    let response = server
        .platform(Method::POST, &format!("/conversations/{uuid}"))
        .header("x-http-method-override", "PATCH")
        .header("content-type", PATCH_CONTENT_TYPE)
        .body(json!([{"operation": "set", "property": "metadata.k", "value": "x"}]).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(
        server.get_conversation(&uuid).await["metadata"],
        json!({"k": "x"})
    );
}

#[tokio::test]
async fn changing_participants_ends_distinctness() {
    let server = TestServer::start().await;
    let created = server
        .create_conversation(json!({"participants": ["a", "b"]}))
        .await;
    let uuid = uuid_of(created["id"].as_str().unwrap());

    // a metadata change keeps it distinct, as does a set of the same participants
    let response = server
        .patch_conversation(
            &uuid,
            json!([
                {"operation": "set", "property": "metadata.k", "value": "v"},
                {"operation": "set", "property": "participants", "value": ["b", "a"]},
            ]),
        )
        .await;
    assert_eq!(response.status(), 204);
    assert_eq!(server.get_conversation(&uuid).await["distinct"], true);

    let response = server
        .patch_conversation(
            &uuid,
            json!([{"operation": "add", "property": "participants", "value": "c"}]),
        )
        .await;
    assert_eq!(response.status(), 204);
    assert_eq!(server.get_conversation(&uuid).await["distinct"], false);

    // removing c again does not make it distinct again
    let response = server
        .patch_conversation(
            &uuid,
            json!([{"operation": "remove", "property": "participants", "value": "c"}]),
        )
        .await;
    assert_eq!(response.status(), 204);
    let after = server.get_conversation(&uuid).await;
    assert_eq!(after["distinct"], false);
    // (the set above listed them as b, a)
    assert_eq!(user_ids(&after), ["b", "a"]);

    // so a distinct create of the original set makes a new conversation
    let fresh = post_conversation(&server, json!({"participants": ["a", "b"]})).await;
    assert_eq!(fresh.status(), 201);
    let fresh = body_json(fresh).await;
    assert_ne!(fresh["id"], created["id"]);
    assert_eq!(fresh["distinct"], true);
}

#[tokio::test]
async fn concurrent_patches_all_apply() {
    let server = TestServer::start().await;
    let uuid = server.conversation_of(&["a"]).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let request = server
            .platform(Method::PATCH, &format!("/conversations/{uuid}"))
            .header("content-type", PATCH_CONTENT_TYPE)
            .body(
                json!([
                    {"operation": "add", "property": "participants", "value": format!("u{i}")},
                    {"operation": "set", "property": format!("metadata.k{i}"), "value": "v"},
                ])
                .to_string(),
            );
        tasks.spawn(async move { request.send().await.unwrap().status().as_u16() });
    }
    let statuses = tasks.join_all().await;
    assert!(statuses.iter().all(|s| *s == 204), "{statuses:?}");
    let after = server.get_conversation(&uuid).await;
    let mut users = user_ids(&after);
    users.sort();
    let mut expected: Vec<String> = (0..8).map(|i| format!("u{i}")).collect();
    expected.push("a".into());
    expected.sort();
    assert_eq!(users, expected);
    assert_eq!(after["metadata"].as_object().unwrap().len(), 8, "{after}");
}

#[tokio::test]
async fn patch_of_a_deleted_conversation_is_gone() {
    let server = TestServer::start().await;
    let uuid = server.conversation_of(&["a"]).await;
    let response = server
        .platform(Method::DELETE, &format!("/conversations/{uuid}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let response = server
        .patch_conversation(
            &uuid,
            json!([{"operation": "set", "property": "metadata.k", "value": "v"}]),
        )
        .await;
    assert_eq!(response.status(), 410);
}

// Isolation between apps

#[tokio::test]
async fn another_app_cannot_see_or_touch_the_conversation() {
    let server = TestServer::start().await;
    let uuid = server.conversation_of(&["a", "b"]).await;
    let sent = server.send_text(&uuid, "hello").await;
    let (other_app, other_token) = server.second_app().await;
    let request = |app: uuid::Uuid, method: Method, path: &str| {
        server
            .raw(method, &format!("/apps/{app}{path}"))
            .header("accept", crate::common::ACCEPT_V3)
            .bearer_auth(&other_token)
    };
    let conversation = format!("/conversations/{uuid}");
    let messages = format!("/conversations/{uuid}/messages");
    let message_body =
        json!({"sender": {"name": "x"}, "parts": [{"mime_type": "text/plain", "body": "x"}]});

    // The first app's path with the other app's token: refused outright.
    for (method, path) in [
        (Method::GET, conversation.as_str()),
        (Method::DELETE, conversation.as_str()),
        (Method::GET, messages.as_str()),
    ] {
        let response = request(server.app_id, method.clone(), path)
            .send()
            .await
            .unwrap();
        expect_error(response, 401, "authentication_required").await;
    }

    // The other app's own path: the conversation does not exist there.
    for (method, path) in [
        (Method::GET, conversation.as_str()),
        (Method::DELETE, conversation.as_str()),
        (Method::GET, messages.as_str()),
    ] {
        let response = request(other_app, method.clone(), path)
            .send()
            .await
            .unwrap();
        expect_error(response, 404, "not_found").await;
    }
    let response = request(other_app, Method::POST, &messages)
        .json(&message_body)
        .send()
        .await
        .unwrap();
    expect_error(response, 404, "not_found").await;
    let response = request(other_app, Method::PATCH, &conversation)
        .header("content-type", PATCH_CONTENT_TYPE)
        .body(json!([{"operation": "add", "property": "participants", "value": "z"}]).to_string())
        .send()
        .await
        .unwrap();
    expect_error(response, 404, "not_found").await;
    // its users see nothing through the proxy either
    let response = request(other_app, Method::GET, "/users/a/conversations")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(body_json(response).await, json!([]));
    let message = format!("/messages/{}", uuid_of(sent["id"].as_str().unwrap()));
    for path in [
        format!("/users/a{conversation}"),
        format!("/users/a{message}"),
    ] {
        let response = request(other_app, Method::GET, &path).send().await.unwrap();
        expect_error(response, 404, "not_found").await;
    }
    let response = request(
        other_app,
        Method::POST,
        &format!("/users/a{message}/receipts"),
    )
    .json(&json!({"type": "read"}))
    .send()
    .await
    .unwrap();
    expect_error(response, 404, "not_found").await;
    let response = request(other_app, Method::GET, &format!("{conversation}{message}"))
        .send()
        .await
        .unwrap();
    expect_error(response, 404, "not_found").await;

    // and a distinct create there makes its own conversation
    let response = request(other_app, Method::POST, "/conversations")
        .json(&json!({"participants": ["a", "b"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);

    // untouched in the first app
    let after = server.get_conversation(&uuid).await;
    assert_eq!(user_ids(&after), ["a", "b"]);
    let response = server
        .platform(Method::GET, &messages)
        .send()
        .await
        .unwrap();
    assert_eq!(body_json(response).await.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn platform_delete_for_one_user_is_refused_and_changes_nothing() {
    let server = TestServer::start().await;
    let conversation = server.conversation_of(&["ann", "bob"]).await;
    let response = server
        .platform(
            Method::DELETE,
            &format!("/conversations/{conversation}?mode=my_devices"),
        )
        .send()
        .await
        .unwrap();
    let body = expect_error(response, 422, "invalid_property").await;
    assert_eq!(body["data"]["property"], "mode");
    let still = server.get_conversation(&conversation).await;
    assert_eq!(
        still["participants"].as_array().unwrap().len(),
        2,
        "{still}"
    );
}
