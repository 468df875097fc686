//! Logging in and out: `POST /sessions` with identity tokens (every refusal of client-api.md §2
//! and the verification rules of the Client API issue) and `DELETE /sessions/:token`.

use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

use crate::common::{expect_error, json, Provider, TestServer, IDENTITY_KEY_A, IDENTITY_KEY_B};

/// The 422 every bad identity token gets; returns its message.
async fn refused(response: reqwest::Response) -> String {
    let body = expect_error(response, 422, "invalid_property").await;
    assert_eq!(body["code"], 105);
    assert_eq!(body["data"]["property"], "identity_token");
    body["message"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn nonce_token_session_then_the_session_works() {
    let server = TestServer::start().await;
    let provider = Provider::register(&server.store, server.app_id, IDENTITY_KEY_A).await;
    let nonce = server.nonce().await;
    assert_eq!(nonce.len(), 40);
    let (header, mut claims) = provider.parts("alice@example.com", &nonce);
    claims["display_name"] = json!("Alice");
    claims["avatar_url"] = json!("https://example.com/a.png");
    claims["first_name"] = json!("Alice");
    let response = server
        .post_session(
            &format!("layer:///apps/staging/{}", server.app_id),
            &provider.sign(&header, &claims),
        )
        .await;
    assert_eq!(response.status(), 201);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let link = response.headers()["link"].to_str().unwrap().to_owned();
    assert!(link.contains(&format!(
        "<{}/conversations>; rel=conversations",
        server.base
    )));
    assert!(
        link.contains("rel=content") && link.contains("rel=websocket"),
        "{link}"
    );
    let body = json(response).await;
    let session = body["session_token"].as_str().unwrap();
    assert!(session.len() >= 22, "at least 128 bits");
    assert!(session
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    // Stored hashed: the token itself is nowhere in the store.
    assert!(server
        .store
        .session(session, layer_server::store::Timestamp::now())
        .await
        .unwrap()
        .is_none());

    let response = server
        .as_session(session, Method::GET, "/conversations")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let probe = "/?action=validateConnectionForWebsocket&client=3.4.18";
    let response = server
        .as_session(session, Method::GET, probe)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // The profile claims created the identity.
    let identity = server
        .store
        .identity(server.app_id, "alice@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(identity.display_name.as_deref(), Some("Alice"));
    assert_eq!(
        identity.avatar_url.as_deref(),
        Some("https://example.com/a.png")
    );
    assert_eq!(identity.first_name.as_deref(), Some("Alice"));
}

#[tokio::test]
async fn every_app_id_form_names_the_app_and_others_are_refused() {
    let server = TestServer::start().await;
    let provider = Provider::register(&server.store, server.app_id, IDENTITY_KEY_A).await;
    for app in [
        server.app_id.to_string(),
        format!("layer:///apps/staging/{}", server.app_id),
        format!("layer:///apps/production/{}", server.app_id),
    ] {
        let token = provider.token("alice", &server.nonce().await);
        assert_eq!(
            server.post_session(&app, &token).await.status(),
            201,
            "{app}"
        );
    }
    for app in [
        "not-an-app".to_owned(),
        Uuid::new_v4().to_string(),
        format!("layer:///apps/other/{}", server.app_id),
    ] {
        let token = provider.token("alice", &server.nonce().await);
        let body = expect_error(
            server.post_session(&app, &token).await,
            403,
            "invalid_app_id",
        )
        .await;
        assert_eq!(body["code"], 2);
    }
}

#[tokio::test]
async fn a_key_opens_only_its_own_app() {
    let server = TestServer::start().await;
    let provider = Provider::register(&server.store, server.app_id, IDENTITY_KEY_A).await;
    let (other_app, _) = server.second_app().await;
    // A valid token of this app's provider, presented for the other app: its kid is unknown there.
    let token = provider.token("alice", &server.nonce().await);
    let message = refused(server.post_session(&other_app.to_string(), &token).await).await;
    assert!(message.contains("no key with this kid"), "{message}");
    // The other app's key with this app's provider id as iss: the iss no longer matches.
    let theirs = Provider::register(&server.store, other_app, IDENTITY_KEY_B).await;
    let (header, mut claims) = theirs.parts("alice", &server.nonce().await);
    claims["iss"] = json!(format!("layer:///providers/{}", provider.provider_id));
    let message = refused(
        server
            .post_session(&other_app.to_string(), &theirs.sign(&header, &claims))
            .await,
    )
    .await;
    assert!(message.contains("iss"), "{message}");
}

#[tokio::test]
async fn nonces_are_single_use_even_under_concurrency() {
    let server = TestServer::start().await;
    let provider = Provider::register(&server.store, server.app_id, IDENTITY_KEY_A).await;
    let app = server.app_id.to_string();

    let token = provider.token("alice", &server.nonce().await);
    assert_eq!(server.post_session(&app, &token).await.status(), 201);
    let message = refused(server.post_session(&app, &token).await).await;
    assert!(message.contains("nonce"), "{message}");

    // A nonce this server never issued.
    let token = provider.token("alice", "b7a5fba5ad402d072013c1949481c1080860ff32");
    refused(server.post_session(&app, &token).await).await;

    // Eight logins racing with one nonce: exactly one session.
    let token = provider.token("alice", &server.nonce().await);
    let mut racing = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let request = server
            .client(Method::POST, "/sessions")
            .json(&json!({"identity_token": token, "app_id": app}));
        racing.spawn(async move { request.send().await.unwrap().status().as_u16() });
    }
    let statuses = racing.join_all().await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 422).count(),
        7,
        "{statuses:?}"
    );
}

/// Many users logging in for the first time at once (each login creates the user's identity):
/// every one gets a session. On SQLite a read-then-write transaction begun deferred used to
/// fail with "database is locked" (SQLITE_BUSY_SNAPSHOT) when another login committed first.
#[tokio::test]
async fn concurrent_first_logins_all_succeed() {
    let server = TestServer::start().await;
    let provider = Provider::register(&server.store, server.app_id, IDENTITY_KEY_A).await;
    let app = server.app_id.to_string();
    let mut tokens = Vec::new();
    for i in 0..24 {
        let mut profile = provider.parts(&format!("user-{i}"), &server.nonce().await);
        profile.1["display_name"] = json!(format!("User {i}"));
        tokens.push(provider.sign(&profile.0, &profile.1));
    }
    let mut racing = tokio::task::JoinSet::new();
    for token in tokens {
        let request = server
            .client(Method::POST, "/sessions")
            .json(&json!({"identity_token": token, "app_id": app}));
        racing.spawn(async move { request.send().await.unwrap().status().as_u16() });
    }
    let statuses = racing.join_all().await;
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    for i in 0..24 {
        let identity = server
            .store
            .identity(server.app_id, &format!("user-{i}"))
            .await;
        assert_eq!(
            identity.unwrap().unwrap().display_name.as_deref(),
            Some(format!("User {i}").as_str())
        );
    }
}

#[tokio::test]
async fn expired_nonces_are_refused() {
    let server = TestServer::start_with(&[("LAYER__AUTH__NONCE_TTL_SECS", "0")]).await;
    let provider = Provider::register(&server.store, server.app_id, IDENTITY_KEY_A).await;
    let token = provider.token("alice", &server.nonce().await);
    let message = refused(
        server
            .post_session(&server.app_id.to_string(), &token)
            .await,
    )
    .await;
    assert!(message.contains("nonce"), "{message}");
}

#[tokio::test]
async fn only_rs256_tokens_with_the_layer_header_and_the_right_key_pass() {
    let server = TestServer::start().await;
    let provider = Provider::register(&server.store, server.app_id, IDENTITY_KEY_A).await;
    let app = server.app_id.to_string();
    let b64 = |v: serde_json::Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&v).unwrap())
    };

    // alg none
    let (header, claims) = provider.parts("alice", &server.nonce().await);
    let none = format!(
        "{}.{}.",
        b64(json!({"typ": "JWT", "alg": "none", "cty": "layer-eit;v=1", "kid": header.kid})),
        b64(claims.clone())
    );
    assert!(refused(server.post_session(&app, &none).await)
        .await
        .contains("RS256"));

    // HS256 keyed with the registered public key (algorithm confusion)
    let mut hs = header.clone();
    hs.alg = jsonwebtoken::Algorithm::HS256;
    let public = server
        .store
        .key(server.app_id, provider.key_id)
        .await
        .unwrap()
        .unwrap()
        .public_key_pem;
    let token = jsonwebtoken::encode(
        &hs,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(public.as_bytes()),
    )
    .unwrap();
    assert!(refused(server.post_session(&app, &token).await)
        .await
        .contains("RS256"));

    // wrong cty, unknown kid, another key's signature, garbage
    let mut bad = header.clone();
    bad.cty = Some("application/json".into());
    refused(
        server
            .post_session(&app, &provider.sign(&bad, &claims))
            .await,
    )
    .await;
    let mut bad = header.clone();
    bad.kid = Some(format!("layer:///keys/{}", Uuid::new_v4()));
    refused(
        server
            .post_session(&app, &provider.sign(&bad, &claims))
            .await,
    )
    .await;
    let other = Provider::register(&server.store, server.app_id, IDENTITY_KEY_B).await;
    let mut forged = header.clone();
    forged.kid = Some(format!("layer:///keys/{}", other.key_id));
    let message = refused(
        server
            .post_session(&app, &provider.sign(&forged, &claims))
            .await,
    )
    .await;
    assert!(message.contains("signature"), "{message}");
    refused(server.post_session(&app, "not.a.token").await).await;
    refused(server.post_session(&app, &"x".repeat(20_000)).await).await;

    // None of these burnt the nonce: the genuine token still logs in.
    assert_eq!(
        server
            .post_session(&app, &provider.sign(&header, &claims))
            .await
            .status(),
        201
    );
}

#[tokio::test]
async fn claims_are_checked_with_a_bounded_clock_skew() {
    let server = TestServer::start_with(&[("LAYER__AUTH__CLOCK_SKEW_SECS", "60")]).await;
    let provider = Provider::register(&server.store, server.app_id, IDENTITY_KEY_A).await;
    let app = server.app_id.to_string();
    let now = layer_server::store::Timestamp::now().unix_seconds();
    let attempt = |edit: Box<dyn Fn(&mut serde_json::Value)>| {
        let server = &server;
        let provider = &provider;
        let app = app.clone();
        async move {
            let (header, mut claims) = provider.parts("alice", &server.nonce().await);
            edit(&mut claims);
            server
                .post_session(&app, &provider.sign(&header, &claims))
                .await
        }
    };
    for (what, edit) in [
        (
            "expired",
            Box::new(move |c: &mut serde_json::Value| c["exp"] = json!(now - 120))
                as Box<dyn Fn(&mut serde_json::Value)>,
        ),
        (
            "issued in the future",
            Box::new(move |c| c["iat"] = json!(now + 600)),
        ),
        (
            "no prn",
            Box::new(|c| {
                c.as_object_mut().unwrap().remove("prn");
            }),
        ),
        ("empty prn", Box::new(|c| c["prn"] = json!(""))),
        (
            "no iss",
            Box::new(|c| {
                c.as_object_mut().unwrap().remove("iss");
            }),
        ),
        (
            "wrong iss",
            Box::new(|c| c["iss"] = json!(format!("layer:///providers/{}", Uuid::new_v4()))),
        ),
        (
            "no exp",
            Box::new(|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
        ),
        (
            "display_name not a string",
            Box::new(|c| c["display_name"] = json!(["x"])),
        ),
    ] {
        let response = attempt(edit).await;
        assert_eq!(response.status(), 422, "{what}");
    }
    // Within the skew: a token that expired 30 s ago, or issued 30 s ahead, still passes.
    let response = attempt(Box::new(move |c| c["exp"] = json!(now - 30))).await;
    assert_eq!(response.status(), 201);
    let response = attempt(Box::new(move |c| c["iat"] = json!(now + 30))).await;
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn bad_bodies_are_clear_422s() {
    let server = TestServer::start().await;
    let app = server.app_id.to_string();
    for (body, status, id, property) in [
        (
            json!({"app_id": app}),
            422,
            "missing_property",
            "identity_token",
        ),
        (
            json!({"identity_token": "a.b.c"}),
            422,
            "missing_property",
            "app_id",
        ),
        (
            json!({"identity_token": 5, "app_id": app}),
            422,
            "invalid_property",
            "identity_token",
        ),
        (
            json!({"identity_token": "a.b.c", "app_id": ["x"]}),
            422,
            "invalid_property",
            "app_id",
        ),
    ] {
        let response = server
            .client(Method::POST, "/sessions")
            .json(&body)
            .send()
            .await
            .unwrap();
        let error = expect_error(response, status, id).await;
        assert_eq!(error["data"]["property"], property, "{body}");
    }
    let response = server
        .client(Method::POST, "/sessions")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn suspended_users_are_refused() {
    let server = TestServer::start().await;
    let provider = Provider::register(&server.store, server.app_id, IDENTITY_KEY_A).await;
    let response = server
        .platform(Method::PATCH, "/users/mallory")
        .header("content-type", "application/vnd.layer-patch+json")
        .json(&json!([{"operation": "set", "property": "suspended", "value": true}]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let token = provider.token("mallory", &server.nonce().await);
    let body = expect_error(
        server
            .post_session(&server.app_id.to_string(), &token)
            .await,
        403,
        "user_suspended",
    )
    .await;
    assert_eq!(body["code"], 6);
    // Others log in as usual.
    server.login(&provider, "alice").await;
}

#[tokio::test]
async fn suspended_apps_refuse_logins_and_sessions_until_resumed() {
    let server = TestServer::start().await;
    let provider = Provider::register(&server.store, server.app_id, IDENTITY_KEY_A).await;
    let session = server.login(&provider, "alice").await;
    assert!(server
        .store
        .set_app_suspended(server.app_id, true)
        .await
        .unwrap());

    let token = provider.token("alice", &server.nonce().await);
    let body = expect_error(
        server
            .post_session(&server.app_id.to_string(), &token)
            .await,
        403,
        "app_suspended",
    )
    .await;
    assert_eq!(body["code"], 5);
    // The live session stops working with the usual challenge; the SDK logs in again and
    // learns app_suspended from POST /sessions.
    let response = server
        .as_session(&session, Method::GET, "/conversations")
        .send()
        .await
        .unwrap();
    expect_error(response, 401, "authentication_required").await;
    let response = server
        .platform(Method::GET, "/users/alice/identity")
        .send()
        .await
        .unwrap();
    expect_error(response, 403, "app_suspended").await;

    assert!(server
        .store
        .set_app_suspended(server.app_id, false)
        .await
        .unwrap());
    let response = server
        .as_session(&session, Method::GET, "/conversations")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "unexpired sessions work again");
    server.login(&provider, "alice").await;
}

#[tokio::test]
async fn later_logins_update_only_the_claimed_profile_fields() {
    let server = TestServer::start().await;
    let provider = Provider::register(&server.store, server.app_id, IDENTITY_KEY_A).await;
    server.create_identity("bob", "Bob").await;
    let login_claiming = |claims: serde_json::Value| {
        let (server, provider) = (&server, &provider);
        async move {
            let (header, mut token_claims) = provider.parts("bob", &server.nonce().await);
            token_claims
                .as_object_mut()
                .unwrap()
                .extend(claims.as_object().unwrap().clone());
            let response = server
                .post_session(
                    &server.app_id.to_string(),
                    &provider.sign(&header, &token_claims),
                )
                .await;
            assert_eq!(response.status(), 201);
            server
                .store
                .identity(server.app_id, "bob")
                .await
                .unwrap()
                .unwrap()
        }
    };
    let identity = login_claiming(json!({"avatar_url": "https://example.com/b.png"})).await;
    assert_eq!(identity.display_name.as_deref(), Some("Bob"), "kept");
    assert_eq!(
        identity.avatar_url.as_deref(),
        Some("https://example.com/b.png")
    );
    let identity = login_claiming(json!({"display_name": "Robert"})).await;
    assert_eq!(identity.display_name.as_deref(), Some("Robert"));
    assert_eq!(
        identity.avatar_url.as_deref(),
        Some("https://example.com/b.png")
    );
}

#[tokio::test]
async fn sessions_last_the_apps_ttl() {
    let server = TestServer::start_with(&[("LAYER__AUTH__SESSION_TTL_SECS", "7200")]).await;
    let provider = Provider::register(&server.store, server.app_id, IDENTITY_KEY_A).await;
    let expiry = |session: String| {
        let store = server.store.clone();
        async move {
            let now = layer_server::store::Timestamp::now();
            let record = store
                .session(&layer_server::secrets::sha256_hex(&session), now)
                .await
                .unwrap()
                .unwrap();
            record.expires_at.unix_seconds() - record.created_at.unix_seconds()
        }
    };
    assert_eq!(
        expiry(server.login(&provider, "alice").await).await,
        7200,
        "the configured default"
    );
    let response = server
        .platform(Method::PATCH, "")
        .header("content-type", "application/vnd.layer-patch+json")
        .json(&json!([{"operation": "set", "property": "session_ttl_in_seconds", "value": 3600}]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    assert_eq!(
        expiry(server.login(&provider, "alice").await).await,
        3600,
        "the app's TTL"
    );
}

#[tokio::test]
async fn logout_ends_only_that_session() {
    let server = TestServer::start().await;
    let provider = Provider::register(&server.store, server.app_id, IDENTITY_KEY_A).await;
    let first = server.login(&provider, "alice").await;
    let second = server.login(&provider, "alice").await;
    assert_ne!(first, second);

    // As the XDK does it: the token in the path and in Authorization.
    let response = server
        .as_session(&first, Method::DELETE, &format!("/sessions/{first}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let response = server
        .as_session(&first, Method::GET, "/conversations")
        .send()
        .await
        .unwrap();
    let body = expect_error(response, 401, "authentication_required").await;
    assert!(body["data"]["nonce"]
        .as_str()
        .is_some_and(|n| !n.is_empty()));
    let response = server
        .as_session(&second, Method::GET, "/conversations")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the other session lives on");

    // As the v1 docs do it: no Authorization; and again (idempotent), and an unknown token.
    for token in [second.as_str(), second.as_str(), "never-issued"] {
        let response = server
            .client(Method::DELETE, &format!("/sessions/{token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204, "{token}");
    }
    let response = server
        .as_session(&second, Method::GET, "/conversations")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn a_stale_session_header_does_not_block_logging_in_again() {
    let server = TestServer::start().await;
    let provider = Provider::register(&server.store, server.app_id, IDENTITY_KEY_A).await;
    let token = provider.token("alice", &server.nonce().await);
    let response = server
        .as_session("dead-token", Method::POST, "/sessions")
        .json(&json!({"identity_token": token, "app_id": server.app_id.to_string()}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    for path in ["/nonces"] {
        let response = server
            .as_session("dead-token", Method::POST, path)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{path}");
    }
    let response = server
        .as_session("dead-token", Method::HEAD, "/ping")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
}

#[tokio::test]
async fn the_nonce_of_a_401_logs_the_user_back_in() {
    let server = TestServer::start().await;
    let provider = Provider::register(&server.store, server.app_id, IDENTITY_KEY_A).await;
    let session = server.login(&provider, "alice").await;
    let response = server
        .platform(Method::DELETE, "/users/alice/sessions")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let response = server
        .as_session(&session, Method::GET, "/conversations")
        .send()
        .await
        .unwrap();
    let body = expect_error(response, 401, "authentication_required").await;
    let nonce = body["data"]["nonce"].as_str().unwrap();
    let response = server
        .post_session(&server.app_id.to_string(), &provider.token("alice", nonce))
        .await;
    assert_eq!(response.status(), 201);
    let session = json(response).await["session_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = server
        .as_session(&session, Method::GET, "/conversations")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}
