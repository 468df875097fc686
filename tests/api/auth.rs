//! Bearer and session-token authentication, and their 401s.

use reqwest::Method;

use crate::common::{json, TestServer};

#[tokio::test]
async fn bearer_token_variants() {
    let server = TestServer::start().await;
    let path = format!("/apps/{}/users/alice/identity", server.app_id);

    // missing
    let response = server.client(Method::GET, &path).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let body = json(response).await;
    assert_eq!(body["id"], "authentication_required");
    assert_eq!(body["code"], 4);

    // wrong scheme, unknown token, empty token
    for header in [
        "Basic abc".to_owned(),
        "Bearer not-a-token".to_owned(),
        "Bearer ".to_owned(),
        format!("Token {}", server.token),
    ] {
        let response = server
            .client(Method::GET, &path)
            .header("authorization", &header)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{header}");
    }

    // valid: the identity does not exist yet, so the request got past auth to the handler
    let response = server
        .client(Method::GET, &path)
        .bearer_auth(&server.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(json(response).await["id"], "not_found");
    // the scheme is case-insensitive
    let response = server
        .client(Method::GET, &path)
        .header("authorization", format!("bearer {}", server.token))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn a_token_opens_only_its_own_app() {
    let server = TestServer::start().await;
    let other = layer_server::admin::create_app(&*server.store, None, "other")
        .await
        .unwrap();
    for app in [
        other.id.to_string(),
        uuid::Uuid::new_v4().to_string(),
        "not-a-uuid".to_owned(),
    ] {
        let response = server
            .client(Method::GET, &format!("/apps/{app}/users/alice/identity"))
            .bearer_auth(&server.token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{app}");
    }
}

#[tokio::test]
async fn revoked_tokens_are_refused_at_once() {
    let server = TestServer::start().await;
    let get = || server.platform(Method::GET, "/users/alice/identity").send();
    assert_eq!(get().await.unwrap().status(), 404);
    let token = server
        .store
        .tokens(Some(server.app_id))
        .await
        .unwrap()
        .remove(0);
    assert!(server
        .store
        .revoke_token(token.id, layer_server::store::Timestamp::now())
        .await
        .unwrap());
    assert_eq!(get().await.unwrap().status(), 401);
}

#[tokio::test]
async fn session_tokens_in_header_or_query_and_challenges_with_a_nonce() {
    let server = TestServer::start().await;
    let session = server.session_for("alice").await;
    let probe = "/?action=validateConnectionForWebsocket&client=4.0.6";

    for header in [
        format!("Layer session-token=\"{session}\""),
        format!("Layer session-token='{session}'"),
    ] {
        let response = server
            .client(Method::GET, probe)
            .header("authorization", &header)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{header}");
    }
    let response = server
        .client(Method::GET, &format!("{probe}&session_token={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // No session, or a dead one: 401 authentication_required with a fresh, usable nonce.
    for auth in [None, Some("Layer session-token=\"expired-or-made-up\"")] {
        let mut request = server.client(Method::GET, probe);
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{auth:?}");
        let body = json(response).await;
        assert_eq!(body["id"], "authentication_required");
        let nonce = body["data"]["nonce"]
            .as_str()
            .expect("a nonce in data")
            .to_owned();
        let hash = layer_server::secrets::sha256_hex(&nonce);
        let now = layer_server::store::Timestamp::now();
        assert!(
            server.store.consume_nonce(&hash, now).await.unwrap(),
            "the nonce is live"
        );
        assert!(
            !server.store.consume_nonce(&hash, now).await.unwrap(),
            "and single use"
        );
    }
}
