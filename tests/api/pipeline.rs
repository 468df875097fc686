//! The compat layer and the HTTP pipeline: Accept negotiation, method override, PATCH content
//! type, error envelopes for 404/405/413, CORS, request ids, compression.

use reqwest::Method;

use crate::common::{json, TestServer};

const SERVER_406: &str = r#"{"id":"invalid_header","code":107,"message":"Invalid Accept header; must be of form application/vnd.layer+json; version=x.y","url":"http://docs.layer.com/reference/server_api#versioning","data":{"header":"Accept"}}"#;
const CLIENT_406: &str = r#"{"id":"invalid_header","code":107,"message":"Invalid Accept header; must be of form application/vnd.layer+json; version=x.y","url":"http://docs.layer.com/reference/client_api#versioning","data":{"header":"Accept"}}"#;

#[tokio::test]
async fn bad_accept_headers_get_the_exact_406_body() {
    let server = TestServer::start().await;
    let path = "/users/alice/identity";
    let cases: [Option<&str>; 6] = [
        None,
        Some("application/json"),
        Some("application/vnd.layer+json"),
        Some("application/vnd.layer+json; version=x.y"),
        Some("application/vnd.layer+json; version=4.0"),
        Some("garbage;;=="),
    ];
    for accept in cases {
        let mut request = server
            .raw(Method::GET, &format!("/apps/{}{path}", server.app_id))
            .bearer_auth(&server.token);
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 406, "{accept:?}");
        assert_eq!(
            response.headers()["content-type"],
            "application/json; charset=utf-8",
            "{accept:?}"
        );
        assert_eq!(response.text().await.unwrap(), SERVER_406, "{accept:?}");
    }
    // The Client API's body names its own documentation.
    let response = server.raw(Method::POST, "/nonces").send().await.unwrap();
    assert_eq!(response.status(), 406);
    assert_eq!(response.text().await.unwrap(), CLIENT_406);
}

#[tokio::test]
async fn every_documented_version_is_accepted() {
    let server = TestServer::start().await;
    for version in ["1.0", "1.1", "2.0", "3.0"] {
        let response = server
            .raw(Method::POST, "/nonces")
            .header(
                "accept",
                format!("application/vnd.layer+json; version={version}"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "version {version}");
        let body = json(response).await;
        assert_eq!(body["nonce"].as_str().unwrap().len(), 40);
    }
}

#[tokio::test]
async fn unknown_routes_are_invalid_endpoint_in_the_envelope() {
    let server = TestServer::start().await;
    let response = server.client(Method::GET, "/nonce").send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    let body = json(response).await;
    assert_eq!(body["id"], "invalid_endpoint");
    assert_eq!(body["code"], 106);
    assert_eq!(body["message"], "The endpoint 'GET /nonce' does not exist");
    assert!(body["url"].as_str().unwrap().starts_with("http"));
}

#[tokio::test]
async fn wrong_method_is_405_with_allow_and_envelope() {
    let server = TestServer::start().await;
    let response = server
        .client(Method::DELETE, "/nonces")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    let allow = response.headers()["allow"].to_str().unwrap().to_owned();
    assert!(allow.contains("POST"), "{allow}");
    let body = json(response).await;
    assert_eq!(body["id"], "method_not_allowed");
    assert_eq!(body["code"], 109);

    let response = server
        .platform(Method::DELETE, "/announcements")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    let allow = response.headers()["allow"].to_str().unwrap().to_owned();
    assert!(allow.contains("POST"), "{allow}");
}

#[tokio::test]
async fn method_override_turns_post_into_patch() {
    let server = TestServer::start().await;
    // An overridden POST must be answered like a PATCH: first the PATCH content-type rule, then
    // the PATCH handler (404: alice has no identity) — never the POST handler (which would
    // refuse an array body with 400).
    let response = server
        .platform(Method::POST, "/users/alice/identity")
        .header("x-http-method-override", "PATCH")
        .header("content-type", "application/json")
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 406);
    let body = json(response).await;
    assert_eq!(body["id"], "invalid_header");
    assert_eq!(body["data"]["header"], "Content-Type");

    let response = server
        .platform(Method::POST, "/users/alice/identity")
        .header("x-http-method-override", "patch")
        .header("content-type", "application/vnd.layer-patch+json")
        .body(r#"[{"operation": "set", "property": "display_name", "value": "A"}]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert!(server
        .store
        .identity(server.app_id, "alice")
        .await
        .unwrap()
        .is_none());

    // Without the header the same POST creates.
    let response = server
        .platform(Method::POST, "/users/alice/identity")
        .json(&serde_json::json!({"display_name": "Alice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn invalid_json_is_400_invalid_request_saying_what_is_wrong() {
    let server = TestServer::start().await;
    let response = server
        .platform(Method::POST, "/users/alice/identity")
        .header("content-type", "application/json")
        .body("{\"display_name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body = json(response).await;
    assert_eq!(body["id"], "invalid_request");
    assert_eq!(body["code"], 10);
    assert!(body["message"].as_str().unwrap().contains("EOF"), "{body}");

    let response = server
        .platform(Method::POST, "/users/alice/identity")
        .json(&serde_json::json!({"display_name": 42}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body = json(response).await;
    assert!(
        body["message"].as_str().unwrap().contains("display_name"),
        "{body}"
    );
}

#[tokio::test]
async fn oversized_bodies_are_413_in_the_envelope() {
    let server = TestServer::start_with(&[("LAYER__HTTP__BODY_LIMIT_BYTES", "1024")]).await;
    let big = format!("{{\"display_name\": \"{}\"}}", "x".repeat(4096));
    let response = server
        .platform(Method::POST, "/users/alice/identity")
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let body = json(response).await;
    assert_eq!(body["id"], "invalid_request");
}

#[tokio::test]
async fn cors_preflight_allows_layer_headers_and_echoes_the_origin() {
    let server = TestServer::start().await;
    let response = server
        .raw(Method::OPTIONS, "/conversations")
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "PATCH")
        .header(
            "access-control-request-headers",
            "authorization, accept, content-type, client-id, layer-xdk-version, if-none-match, x-http-method-override",
        )
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let h = response.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(h["access-control-allow-credentials"], "true");
    let allowed = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    for name in [
        "authorization",
        "client-id",
        "layer-xdk-version",
        "if-none-match",
        "x-http-method-override",
    ] {
        assert!(allowed.contains(name), "{allowed}");
    }
    assert!(h["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("PATCH"));

    let response = server
        .client(Method::POST, "/nonces")
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    let exposed = response.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    for name in ["layer-count", "location", "link"] {
        assert!(exposed.contains(name), "{exposed}");
    }
}

#[tokio::test]
async fn cors_origins_can_be_restricted() {
    let server =
        TestServer::start_with(&[("LAYER__HTTP__CORS_ALLOWED_ORIGINS", "https://good.example")])
            .await;
    let allowed = |origin: &'static str| {
        server
            .client(Method::POST, "/nonces")
            .header("origin", origin)
            .send()
    };
    let good = allowed("https://good.example").await.unwrap();
    assert_eq!(
        good.headers()["access-control-allow-origin"],
        "https://good.example"
    );
    let evil = allowed("https://evil.example").await.unwrap();
    assert!(evil.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn request_ids_are_generated_or_propagated() {
    let server = TestServer::start().await;
    let response = server.client(Method::POST, "/nonces").send().await.unwrap();
    let generated = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(uuid::Uuid::try_parse(&generated).is_ok(), "{generated}");
    let response = server
        .client(Method::POST, "/nonces")
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-me-42");
}

#[tokio::test]
async fn root_links_and_ping() {
    let server = TestServer::start().await;
    let response = server.client(Method::GET, "/").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let link = response.headers()["link"].to_str().unwrap().to_owned();
    assert!(
        link.contains(&format!(
            "<{}/conversations>; rel=conversations",
            server.base
        )),
        "{link}"
    );
    assert!(link.contains("rel=websocket"), "{link}");
    let response = server.client(Method::HEAD, "/ping").send().await.unwrap();
    assert!(response.status().is_success());
}
