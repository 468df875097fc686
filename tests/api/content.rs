//! Rich content through the wire (client-api.md §3.6, server-api.md §8): POST /content, the
//! unauthenticated PUT to the signed upload URL, parts that reference content, signed downloads,
//! refresh, the checks on bad input, restartable uploads and garbage collection.

use layer_server::content::{Purpose, Storage, UrlSigner};
use layer_server::service::content::collect_garbage;
use layer_server::store::{Content, Timestamp};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::common::{expect_error, json, uuid_of, TestServer};
use crate::moto::Moto;

/// The server under test and where its content lives: the local directory, or a bucket of a
/// moto server on loopback (`[content] store = "s3"`).
pub struct Fixture {
    pub server: TestServer,
    extra: Vec<(String, String)>,
    s3: Option<(Moto, String)>,
}

impl Fixture {
    pub async fn local(extra: &[(&str, &str)]) -> Fixture {
        Fixture {
            server: TestServer::start_with(extra).await,
            extra: owned(extra),
            s3: None,
        }
    }

    /// A server on a fresh bucket of a fresh moto, or `None` (skipped) without moto.
    pub async fn s3(test: &str, extra: &[(&str, &str)]) -> Option<Fixture> {
        let moto = Moto::start(test).await?;
        let bucket = moto.bucket().await;
        let mut all = owned(extra);
        all.extend(owned(&[
            ("LAYER__CONTENT__STORE", "s3"),
            ("LAYER__CONTENT__S3__BUCKET", &bucket),
            ("LAYER__CONTENT__S3__ENDPOINT", &moto.endpoint),
            ("LAYER__CONTENT__S3__REGION", "us-east-1"),
            ("LAYER__CONTENT__S3__ACCESS_KEY_ID", "testing"),
            ("LAYER__CONTENT__S3__SECRET_ACCESS_KEY", "testing"),
            ("LAYER__CONTENT__S3__PREFIX", "layer/content"),
        ]));
        let server = TestServer::start_with(&borrowed(&all)).await;
        Some(Fixture {
            server,
            extra: all,
            s3: Some((moto, bucket)),
        })
    }

    /// The server's settings (with the content store's).
    pub fn settings(&self) -> layer_server::config::Settings {
        self.server.db.settings(&borrowed(&self.extra))
    }

    /// The content store, opened as the server opens it.
    pub fn storage(&self) -> Storage {
        Storage::open(&self.settings()).unwrap()
    }

    /// The stored bytes of a content (`layer:///content/<uuid>` or the UUID), read past the
    /// server: from the directory, or from the bucket with a plain S3 GET.
    pub async fn object(&self, id: &str) -> Option<Vec<u8>> {
        let key = format!("{}/{}", self.server.app_id, uuid_of(id));
        match &self.s3 {
            Some((moto, bucket)) => moto.object(bucket, &format!("layer/content/{key}")).await,
            None => std::fs::read(self.server.db.data_dir().join("content").join(key)).ok(),
        }
    }

    /// Deletes a content's bytes behind the server's back.
    pub async fn remove_object(&self, id: &str) {
        let key = format!("{}/{}", self.server.app_id, uuid_of(id));
        self.storage().delete(&key).await.unwrap();
        assert_eq!(self.object(id).await, None);
    }
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn borrowed(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
    pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// A test module running `flow` on both content stores: `local` and `s3` (skipped without moto).
macro_rules! on_both_stores {
    ($name:ident, $flow:ident) => {
        on_both_stores!($name, $flow, &[]);
    };
    ($name:ident, $flow:ident, $extra:expr) => {
        mod $name {
            #[tokio::test]
            async fn local() {
                super::$flow(super::Fixture::local($extra).await).await;
            }

            #[tokio::test]
            async fn s3() {
                let test = concat!("content::", stringify!($name), "::s3");
                if let Some(fixture) = super::Fixture::s3(test, $extra).await {
                    super::$flow(fixture).await;
                }
            }
        }
    };
}

on_both_stores!(
    upload_send_download_and_refresh,
    upload_send_download_and_refresh_as_session_users
);
on_both_stores!(platform_api, platform_api_upload_send_and_refresh);
on_both_stores!(five_megabytes, five_megabytes_are_streamed_both_ways);
on_both_stores!(restarted_upload, a_restarted_upload_replaces_the_first);
on_both_stores!(
    bad_uploads,
    bad_uploads_are_refused_and_keep_nothing,
    &[("LAYER__CONTENT__MAX_BYTES", "100000")]
);
on_both_stores!(missing_data, missing_data_in_the_store_is_a_clear_error);
on_both_stores!(
    garbage_collection,
    unreferenced_content_is_collected_after_its_time
);

/// Deterministic bytes that are not valid UTF-8 everywhere.
pub fn bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// `POST /content` as a session user; the response.
async fn request_upload(
    server: &TestServer,
    session: &str,
    content_type: &str,
    size: usize,
) -> reqwest::Response {
    server
        .as_session(session, Method::POST, "/content")
        .header("upload-content-type", content_type)
        .header("upload-content-length", size.to_string())
        .header("upload-origin", "http://localhost")
        .send()
        .await
        .unwrap()
}

/// `PUT <upload_url>` as the SDKs do it: no authorization, no Accept.
async fn put(
    server: &TestServer,
    url: &str,
    content_type: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    server
        .http
        .put(url)
        .header("upload-content-type", content_type)
        .header("upload-content-length", body.len().to_string())
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

/// Requests and uploads; returns the Content id.
pub async fn uploaded(
    server: &TestServer,
    session: &str,
    content_type: &str,
    data: &[u8],
) -> String {
    let response = request_upload(server, session, content_type, data.len()).await;
    assert_eq!(response.status(), 201);
    upload_to(server, json(response).await, content_type, data).await
}

/// PUTs `data` to the `upload_url` of `content` (a 201 body); asserts 200, returns the id.
async fn upload_to(server: &TestServer, content: Value, content_type: &str, data: &[u8]) -> String {
    let url = content["upload_url"].as_str().unwrap();
    let response = put(server, url, content_type, data.to_vec()).await;
    assert_eq!(response.status(), 200);
    content["id"].as_str().unwrap().to_owned()
}

fn rich_part(content_type: &str, id: &str, size: usize) -> Value {
    json!({"parts": [{"mime_type": content_type, "content": {"id": id, "size": size}}]})
}

async fn send_as(
    server: &TestServer,
    session: &str,
    conversation: &str,
    body: Value,
) -> reqwest::Response {
    server
        .as_session(
            session,
            Method::POST,
            &format!("/conversations/{conversation}/messages"),
        )
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// GET with no headers at all (the SDKs' download).
async fn download(server: &TestServer, url: &str) -> reqwest::Response {
    server.http.get(url).send().await.unwrap()
}

/// A GET of an absolute URL the server rendered, as a session user.
async fn follow(server: &TestServer, session: &str, url: &str) -> reqwest::Response {
    server
        .as_session(session, Method::GET, &url[server.base.len()..])
        .send()
        .await
        .unwrap()
}

async fn upload_send_download_and_refresh_as_session_users(fixture: Fixture) {
    let server = &fixture.server;
    let (alice, bob, carol) = (
        server.session_for("alice").await,
        server.session_for("bob").await,
        server.session_for("carol").await,
    );
    let conversation = server.conversation_of(&["alice", "bob"]).await;
    let data = bytes(5000);

    let response = request_upload(server, &alice, "image/png", data.len()).await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let content = json(response).await;
    let id = content["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("layer:///content/"), "{content}");
    assert_eq!(location, format!("/content/{}", uuid_of(&id)));
    assert_eq!(content["size"], 5000);
    for field in ["download_url", "expiration", "refresh_url"] {
        assert_eq!(content[field], Value::Null, "{field} before the upload");
    }
    let upload_url = content["upload_url"].as_str().unwrap();
    assert!(upload_url.starts_with(&format!("{}/content-uploads/", server.base)));

    // Before the upload the content cannot be sent.
    let response = send_as(
        server,
        &alice,
        &conversation,
        rich_part("image/png", &id, 5000),
    )
    .await;
    expect_error(response, 422, "invalid_property").await;

    assert_eq!(
        put(server, upload_url, "image/png", data.clone())
            .await
            .status(),
        200
    );
    let record = server
        .store
        .content(server.app_id, uuid_of(&id).parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.size, Some(5000));
    assert_eq!(
        record.sha256.as_deref(),
        Some(hex::encode(Sha256::digest(&data)).as_str())
    );

    let response = send_as(
        server,
        &alice,
        &conversation,
        rich_part("image/png", &id, 5000),
    )
    .await;
    assert_eq!(response.status(), 201);
    let message = json(response).await;
    let part = &message["parts"][0];
    assert_eq!(part["body"], Value::Null);
    assert_eq!(part["content"]["id"], id.as_str());
    assert_eq!(part["content"]["size"], 5000);
    assert_eq!(
        part["content"]["refresh_url"],
        format!("{}/content/{}", server.base, uuid_of(&id))
    );
    let expiration = part["content"]["expiration"].as_str().unwrap();
    let expires =
        time::OffsetDateTime::parse(expiration, &time::format_description::well_known::Rfc3339)
            .unwrap();
    assert!(
        expires > time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        "{expiration}"
    );

    // Bob, a participant, sees the message and downloads the exact bytes.
    let response = server
        .as_session(
            &bob,
            Method::GET,
            &format!("/conversations/{conversation}/messages"),
        )
        .send()
        .await
        .unwrap();
    let messages = json(response).await;
    let content = &messages[0]["parts"][0]["content"];
    let response = download(server, content["download_url"].as_str().unwrap()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/png");
    assert_eq!(response.bytes().await.unwrap().to_vec(), data);

    // Refresh: a fresh download URL for participants, 404 for anybody else.
    let refresh_url = content["refresh_url"].as_str().unwrap();
    let response = follow(server, &bob, refresh_url).await;
    assert_eq!(response.status(), 200);
    let refreshed = json(response).await;
    assert_eq!(refreshed["id"], id.as_str());
    assert!(refreshed["expiration"].is_string());
    let response = download(server, refreshed["download_url"].as_str().unwrap()).await;
    assert_eq!(response.bytes().await.unwrap().to_vec(), data);
    expect_error(follow(server, &carol, refresh_url).await, 404, "not_found").await;

    // The system view renders the Platform API refresh URL, which works with the Bearer token.
    let response = server
        .platform(
            Method::GET,
            &format!("/conversations/{conversation}/messages"),
        )
        .send()
        .await
        .unwrap();
    let messages = json(response).await;
    let refresh_url = messages[0]["parts"][0]["content"]["refresh_url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        refresh_url,
        format!(
            "{}/conversations/{conversation}/content/{}",
            server.app_url(),
            uuid_of(&id)
        )
    );
    let response = server
        .platform(Method::GET, &refresh_url[server.app_url().len()..])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // Sent content is final: its upload URL no longer accepts bytes.
    let response = put(server, upload_url, "image/png", bytes(10)).await;
    expect_error(response, 409, "conflict").await;
}

async fn platform_api_upload_send_and_refresh(fixture: Fixture) {
    let server = &fixture.server;
    let bob = server.session_for("bob").await;
    let conversation = server.conversation_of(&["alice", "bob"]).await;
    let data = bytes(3000);

    let response = server
        .platform(
            Method::POST,
            &format!("/conversations/{conversation}/content"),
        )
        .header("upload-content-type", "application/pdf")
        .header("upload-content-length", "3000")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let content = json(response).await;
    let id = content["id"].as_str().unwrap().to_owned();
    let path = format!("/conversations/{conversation}/content/{}", uuid_of(&id));
    // Location is relative; as on Layer (server-api.md §8).
    assert_eq!(content["size"], 3000);
    assert_eq!(content["download_url"], Value::Null);

    // Not uploaded yet: refresh fails.
    let response = server.platform(Method::GET, &path).send().await.unwrap();
    expect_error(response, 404, "not_found").await;

    let response = put(
        server,
        content["upload_url"].as_str().unwrap(),
        "application/pdf",
        data.clone(),
    )
    .await;
    assert_eq!(response.status(), 200);
    let response = server.platform(Method::GET, &path).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let refreshed = json(response).await;
    assert_eq!(
        refreshed["refresh_url"],
        format!("{}{path}", server.app_url())
    );

    let response = server
        .post_message(
            &conversation,
            json!({"sender": {"name": "Reports"}, "parts": [{"mime_type": "application/pdf", "content": {"id": id, "size": 3000}}]}),
        )
        .await;
    assert_eq!(response.status(), 201);

    // Bob, a participant, can refresh and download it through the Client API.
    let response = follow(
        server,
        &bob,
        &format!("{}/content/{}", server.base, uuid_of(&id)),
    )
    .await;
    assert_eq!(response.status(), 200);
    let refreshed = json(response).await;
    let response = download(server, refreshed["download_url"].as_str().unwrap()).await;
    assert_eq!(response.headers()["content-type"], "application/pdf");
    assert_eq!(response.bytes().await.unwrap().to_vec(), data);

    // Unknown conversation.
    let response = server
        .platform(
            Method::POST,
            &format!("/conversations/{}/content", Uuid::new_v4()),
        )
        .header("upload-content-type", "application/pdf")
        .header("upload-content-length", "3000")
        .send()
        .await
        .unwrap();
    expect_error(response, 404, "not_found").await;
}

async fn five_megabytes_are_streamed_both_ways(fixture: Fixture) {
    let server = &fixture.server;
    let alice = server.session_for("alice").await;
    let conversation = server.conversation_of(&["alice"]).await;
    let data = bytes(5 * 1024 * 1024 + 123);
    let id = uploaded(server, &alice, "application/octet-stream", &data).await;
    let response = send_as(
        server,
        &alice,
        &conversation,
        rich_part("application/octet-stream", &id, data.len()),
    )
    .await;
    assert_eq!(response.status(), 201);
    let message = json(response).await;
    let url = message["parts"][0]["content"]["download_url"]
        .as_str()
        .unwrap();
    let response = download(server, url).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-length"],
        data.len().to_string().as_str()
    );
    let body = response.bytes().await.unwrap();
    assert_eq!(Sha256::digest(&body), Sha256::digest(&data));
}

async fn a_restarted_upload_replaces_the_first(fixture: Fixture) {
    let server = &fixture.server;
    let alice = server.session_for("alice").await;
    let conversation = server.conversation_of(&["alice"]).await;
    let response = request_upload(server, &alice, "application/octet-stream", 4000).await;
    let content = json(response).await;
    let url = content["upload_url"].as_str().unwrap();
    assert_eq!(
        put(server, url, "application/octet-stream", vec![1; 4000])
            .await
            .status(),
        200
    );
    // Too large the second time: refused, and the first upload stays.
    let response = put(server, url, "application/octet-stream", vec![3; 4001]).await;
    expect_error(response, 413, "invalid_request").await;
    assert_eq!(
        put(server, url, "application/octet-stream", vec![2; 4000])
            .await
            .status(),
        200
    );
    let id = content["id"].as_str().unwrap();
    let message = json(
        send_as(
            server,
            &alice,
            &conversation,
            rich_part("application/octet-stream", id, 4000),
        )
        .await,
    )
    .await;
    let response = download(
        server,
        message["parts"][0]["content"]["download_url"]
            .as_str()
            .unwrap(),
    )
    .await;
    assert_eq!(response.bytes().await.unwrap().to_vec(), vec![2; 4000]);
}

async fn bad_uploads_are_refused_and_keep_nothing(fixture: Fixture) {
    let server = &fixture.server;
    let alice = server.session_for("alice").await;

    // Missing or malformed headers; too large for the server.
    let response = server
        .as_session(&alice, Method::POST, "/content")
        .send()
        .await
        .unwrap();
    expect_error(response, 400, "invalid_request").await;
    expect_error(
        request_upload(server, &alice, "not a type", 10).await,
        400,
        "invalid_request",
    )
    .await;
    expect_error(
        request_upload(server, &alice, "image/png", 100_001).await,
        413,
        "invalid_request",
    )
    .await;
    // Without a session.
    let response = server
        .client(Method::POST, "/content")
        .header("upload-content-type", "image/png")
        .header("upload-content-length", "10")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    let content = json(request_upload(server, &alice, "image/png", 3000).await).await;
    let url = content["upload_url"].as_str().unwrap().to_owned();
    let id: Uuid = uuid_of(content["id"].as_str().unwrap()).parse().unwrap();

    // Larger than declared.
    let response = put(server, &url, "image/png", bytes(3001)).await;
    let error = expect_error(response, 413, "invalid_request").await;
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("nothing was stored"),
        "{error}"
    );
    // The wrong type.
    let response = put(server, &url, "text/plain", bytes(3000)).await;
    expect_error(response, 415, "invalid_request").await;
    let record = server
        .store
        .content(server.app_id, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.uploaded_at, None);
    assert_eq!(
        fixture.object(&id.to_string()).await,
        None,
        "no object after failed uploads"
    );

    // Forged, altered and expired signatures.
    let forged = url.replace("signature=", "signature=00");
    expect_error(
        put(server, &forged, "image/png", bytes(3000)).await,
        403,
        "access_denied",
    )
    .await;
    let other_id = url.replace(&id.to_string(), &Uuid::new_v4().to_string());
    expect_error(
        put(server, &other_id, "image/png", bytes(3000)).await,
        403,
        "access_denied",
    )
    .await;
    let bare = url.split('?').next().unwrap();
    expect_error(
        put(server, bare, "image/png", bytes(3000)).await,
        403,
        "access_denied",
    )
    .await;
    let signer = signer(server);
    let past = Timestamp::from_millis(Timestamp::now().millis() - 1000);
    let expired = format!(
        "{}/content-uploads/{id}?{}",
        server.base,
        signer.query(Purpose::Upload, server.app_id, id, past.unix_seconds())
    );
    expect_error(
        put(server, &expired, "image/png", bytes(3000)).await,
        403,
        "access_denied",
    )
    .await;
    // A download URL does not upload, and vice versa.
    let as_download = url.replace("/content-uploads/", "/content-downloads/");
    expect_error(download(server, &as_download).await, 403, "access_denied").await;

    // The genuine URL still works afterwards.
    assert_eq!(
        put(server, &url, "image/png", bytes(3000)).await.status(),
        200
    );
    assert_eq!(fixture.object(&id.to_string()).await, Some(bytes(3000)));
}

/// The signer of the server (its secret was generated into the data directory).
fn signer(server: &TestServer) -> UrlSigner {
    let settings = server.db.settings(&[]);
    UrlSigner::load(&settings.content.signing_secret, &settings.data_dir).unwrap()
}

#[tokio::test]
async fn content_of_another_user_or_app_cannot_be_referenced() {
    let server = TestServer::start().await;
    let (alice, bob) = (
        server.session_for("alice").await,
        server.session_for("bob").await,
    );
    let conversation = server.conversation_of(&["alice", "bob"]).await;
    let bobs = uploaded(&server, &bob, "image/png", &bytes(3000)).await;
    let response = send_as(
        &server,
        &alice,
        &conversation,
        rich_part("image/png", &bobs, 3000),
    )
    .await;
    let error = expect_error(response, 422, "invalid_property").await;
    assert_eq!(error["data"]["property"], "parts[0].content");
    // Unknown ids read the same.
    let unknown = format!("layer:///content/{}", Uuid::new_v4());
    let response = send_as(
        &server,
        &alice,
        &conversation,
        rich_part("image/png", &unknown, 3000),
    )
    .await;
    assert_eq!(json(response).await["message"], error["message"]);
    // The Platform API cannot send a user's content as the app either.
    let response = server
        .post_message(&conversation, json!({"sender": {"name": "x"}, "parts": [{"mime_type": "image/png", "content": {"id": bobs}}]}))
        .await;
    expect_error(response, 422, "invalid_property").await;
    // ... but it can send it as its owner.
    let response = server
        .post_message(&conversation, json!({"sender": {"user_id": "bob"}, "parts": [{"mime_type": "image/png", "content": {"id": bobs}}]}))
        .await;
    assert_eq!(response.status(), 201);

    // Another app's uploaded content, even with the same user id.
    let foreign_id = foreign_content(&server, Some("alice")).await;
    let response = send_as(
        &server,
        &alice,
        &conversation,
        rich_part("image/png", &foreign_id, 10),
    )
    .await;
    expect_error(response, 422, "invalid_property").await;
    let response = server
        .as_session(
            &alice,
            Method::GET,
            &format!("/content/{}", uuid_of(&foreign_id)),
        )
        .send()
        .await
        .unwrap();
    expect_error(response, 404, "not_found").await;
    // Malformed ids.
    let response = send_as(
        &server,
        &alice,
        &conversation,
        rich_part("image/png", "layer:///content/nope", 10),
    )
    .await;
    expect_error(response, 422, "invalid_property").await;
}

async fn missing_data_in_the_store_is_a_clear_error(fixture: Fixture) {
    let server = &fixture.server;
    let alice = server.session_for("alice").await;
    let conversation = server.conversation_of(&["alice"]).await;
    let id = uploaded(server, &alice, "image/png", &bytes(3000)).await;
    let message = json(
        send_as(
            server,
            &alice,
            &conversation,
            rich_part("image/png", &id, 3000),
        )
        .await,
    )
    .await;
    assert_eq!(fixture.object(&id).await, Some(bytes(3000)));
    fixture.remove_object(&id).await;
    let response = download(
        server,
        message["parts"][0]["content"]["download_url"]
            .as_str()
            .unwrap(),
    )
    .await;
    let error = expect_error(response, 404, "not_found").await;
    assert!(
        error["message"].as_str().unwrap().contains("missing"),
        "{error}"
    );
}

async fn unreferenced_content_is_collected_after_its_time(fixture: Fixture) {
    let server = &fixture.server;
    let alice = server.session_for("alice").await;
    let conversation = server.conversation_of(&["alice"]).await;
    let sent = uploaded(server, &alice, "image/png", &bytes(3000)).await;
    assert_eq!(
        send_as(
            server,
            &alice,
            &conversation,
            rich_part("image/png", &sent, 3000)
        )
        .await
        .status(),
        201
    );
    let unsent = uploaded(server, &alice, "image/png", &bytes(3000)).await;
    let pending = json(request_upload(server, &alice, "image/png", 10).await).await;
    let pending_upload_url = pending["upload_url"].as_str().unwrap().to_owned();
    let pending = pending["id"].as_str().unwrap().to_owned();

    assert_eq!(fixture.object(&unsent).await, Some(bytes(3000)));
    let settings = fixture.settings();
    let storage = fixture.storage();
    let ttl = settings.content.unreferenced_ttl_secs;
    // Not yet: everything is younger than the time allowed.
    assert_eq!(
        collect_garbage(&server.store, &storage, Timestamp::now(), ttl)
            .await
            .unwrap(),
        0
    );
    let later = Timestamp::now().plus_secs(ttl + 1);
    assert_eq!(
        collect_garbage(&server.store, &storage, later, ttl)
            .await
            .unwrap(),
        2
    );

    assert_eq!(fixture.object(&sent).await, Some(bytes(3000)));
    assert_eq!(fixture.object(&unsent).await, None);
    for (id, kept) in [(&sent, true), (&unsent, false), (&pending, false)] {
        let record = server
            .store
            .content(server.app_id, uuid_of(id).parse().unwrap())
            .await
            .unwrap();
        assert_eq!(record.is_some(), kept, "{id}");
    }
    // A collected content's upload URL and id are dead.
    expect_error(
        put(server, &pending_upload_url, "image/png", bytes(10)).await,
        403,
        "access_denied",
    )
    .await;
    let response = send_as(
        server,
        &alice,
        &conversation,
        rich_part("image/png", &unsent, 3000),
    )
    .await;
    expect_error(response, 422, "invalid_property").await;
}

/// `POST /apps/:app/conversations/:conversation/content` and the upload; the Content id.
pub async fn app_uploaded(server: &TestServer, conversation: &str, data: &[u8]) -> String {
    let response = server
        .platform(
            Method::POST,
            &format!("/conversations/{conversation}/content"),
        )
        .header("upload-content-type", "image/png")
        .header("upload-content-length", data.len().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    upload_to(server, json(response).await, "image/png", data).await
}

/// Content ids no sender may use: unknown, not uploaded, another user's, another app's.
async fn unusable_contents(server: &TestServer, session: &str) -> Vec<String> {
    let pending = json(request_upload(server, session, "image/png", 10).await).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let users = uploaded(server, session, "image/png", &bytes(3000)).await;
    vec![
        format!("layer:///content/{}", Uuid::new_v4()),
        pending,
        users,
        foreign_content(server, None).await,
    ]
}

/// An uploaded content of a new, other app, owned by `owner` (`None`: that app); its id.
async fn foreign_content(server: &TestServer, owner: Option<&str>) -> String {
    let other = layer_server::admin::create_app(&*server.store, None, "other")
        .await
        .unwrap();
    let foreign = Content {
        app_id: other.id,
        id: Uuid::new_v4(),
        owner_user_id: owner.map(str::to_owned),
        conversation_id: None,
        content_type: "image/png".into(),
        declared_size: 10,
        size: Some(10),
        sha256: Some("x".into()),
        created_at: Timestamp::now(),
        uploaded_at: Some(Timestamp::now()),
    };
    server.store.create_content(&foreign).await.unwrap();
    format!("layer:///content/{}", foreign.id)
}

async fn referenced(server: &TestServer, id: &str) -> bool {
    server
        .store
        .content_referenced(server.app_id, uuid_of(id).parse().unwrap())
        .await
        .unwrap()
}

pub fn content_part(id: &str) -> Value {
    json!({"mime_type": "image/png", "content": {"id": id, "size": 3000}})
}

#[tokio::test]
async fn parts_added_updated_or_replaced_reference_only_usable_content() {
    let server = TestServer::start().await;
    let carol = server.session_for("carol").await;
    let conversation = server.conversation_of(&["alice", "bob"]).await;
    let response = server
        .post_message(
            &conversation,
            json!({"sender": {"name": "System"}, "parts": [{"mime_type": "text/plain", "body": "one"}]}),
        )
        .await;
    let message = json(response).await;
    let path = format!(
        "/conversations/{conversation}/messages/{}",
        uuid_of(message["id"].as_str().unwrap())
    );
    let part_path = format!(
        "{path}/parts/{}",
        uuid_of(message["parts"][0]["id"].as_str().unwrap())
    );
    // Carol's content is a user's: the app may not send it from a named sender.
    let unusable = unusable_contents(&server, &carol).await;

    for id in &unusable {
        let response = server
            .platform(Method::POST, &format!("{path}/parts"))
            .json(&content_part(id))
            .send()
            .await
            .unwrap();
        let error = expect_error(response, 422, "invalid_property").await;
        assert_eq!(error["data"]["property"], "content", "{id}: {error}");
        let response = server
            .platform(Method::PUT, &part_path)
            .json(&content_part(id))
            .send()
            .await
            .unwrap();
        expect_error(response, 422, "invalid_property").await;
        let response = server
            .platform(Method::PUT, &format!("{path}/parts"))
            .json(&json!([{"mime_type": "text/plain", "body": "x"}, content_part(id)]))
            .send()
            .await
            .unwrap();
        let error = expect_error(response, 422, "invalid_property").await;
        assert_eq!(error["data"]["property"], "parts[1].content", "{error}");
    }
    // Nothing changed.
    let response = server.platform(Method::GET, &path).send().await.unwrap();
    assert_eq!(json(response).await["parts"], message["parts"]);
    assert!(!referenced(&server, &unusable[2]).await);

    // The app's own content: added, updated, replaced, each time marked referenced.
    for (method, target) in [
        (Method::POST, format!("{path}/parts")),
        (Method::PUT, part_path.clone()),
    ] {
        let id = app_uploaded(&server, &conversation, &bytes(3000)).await;
        let response = server
            .platform(method.clone(), &target)
            .json(&content_part(&id))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{method} {target}");
        let part = json(response).await;
        assert_eq!(part["content"]["id"], id.as_str(), "{part}");
        assert_eq!(part["content"]["size"], 3000);
        assert!(part["content"]["download_url"].is_string(), "{part}");
        assert!(referenced(&server, &id).await, "{method} {target}");
    }
    let id = app_uploaded(&server, &conversation, &bytes(3000)).await;
    let response = server
        .platform(Method::PUT, &format!("{path}/parts"))
        .json(&json!([content_part(&id)]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(referenced(&server, &id).await);
}

#[tokio::test]
async fn a_sender_edits_parts_with_their_own_content_only() {
    let server = TestServer::start().await;
    let alice = server.session_for("alice").await;
    let conversation = server.conversation_of(&["alice", "bob"]).await;
    let response = send_as(
        &server,
        &alice,
        &conversation,
        json!({"parts": [{"mime_type": "text/plain", "body": "one"}]}),
    )
    .await;
    assert_eq!(response.status(), 201);
    let message = json(response).await;
    let parts = format!(
        "/messages/{}/parts",
        uuid_of(message["id"].as_str().unwrap())
    );
    let apps = app_uploaded(&server, &conversation, &bytes(3000)).await;
    let bobs = uploaded(
        &server,
        &server.session_for("bob").await,
        "image/png",
        &bytes(3000),
    )
    .await;
    for id in [&apps, &bobs] {
        let response = server
            .as_session(&alice, Method::POST, &parts)
            .json(&content_part(id))
            .send()
            .await
            .unwrap();
        expect_error(response, 422, "invalid_property").await;
    }
    let own = uploaded(&server, &alice, "image/png", &bytes(3000)).await;
    let response = server
        .as_session(&alice, Method::POST, &parts)
        .json(&content_part(&own))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert!(referenced(&server, &own).await);
    // The app editing Alice's message may use Alice's content and its own, not Bob's.
    let platform_parts = format!(
        "/conversations/{conversation}/messages/{}/parts",
        uuid_of(message["id"].as_str().unwrap())
    );
    let response = server
        .platform(Method::POST, &platform_parts)
        .json(&content_part(&bobs))
        .send()
        .await
        .unwrap();
    expect_error(response, 422, "invalid_property").await;
    let response = server
        .platform(Method::POST, &platform_parts)
        .json(&content_part(&apps))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn announcements_reference_only_usable_content() {
    let server = TestServer::start().await;
    let (admin, bob) = (
        server.session_for("admin").await,
        server.session_for("bob").await,
    );
    let conversation = server.conversation_of(&["admin"]).await;
    let announce = |sender: Value, id: &str| {
        let mut body = json!({
            "recipients": ["layer:///identities/bob"],
            "parts": [content_part(id)],
        });
        body.as_object_mut()
            .unwrap()
            .extend(sender.as_object().unwrap().clone());
        server
            .platform(Method::POST, "/announcements")
            .json(&body)
            .send()
    };
    let named = json!({"sender": {"name": "Admin"}});
    let unusable = unusable_contents(&server, &bob).await;
    for id in &unusable {
        let response = announce(named.clone(), id).await.unwrap();
        let error = expect_error(response, 422, "invalid_property").await;
        assert_eq!(error["data"]["property"], "parts[0].content", "{error}");
    }
    let response = server
        .as_session(&bob, Method::GET, "/announcements")
        .send()
        .await
        .unwrap();
    assert_eq!(json(response).await, json!([]), "nothing announced");

    // The app's content from a named sender; a user's own content from that user.
    let apps = app_uploaded(&server, &conversation, &bytes(3000)).await;
    let admins = uploaded(&server, &admin, "image/png", &bytes(3000)).await;
    for (sender, id) in [
        (named.clone(), &apps),
        (json!({"sender_id": "layer:///identities/admin"}), &admins),
    ] {
        let response = announce(sender, id).await.unwrap();
        assert_eq!(response.status(), 202);
        let announcement = json(response).await;
        assert_eq!(announcement["parts"][0]["content"]["id"], id.as_str());
        assert!(referenced(&server, id).await);
        // The recipient refreshes the download URL and downloads the bytes.
        let response = follow(
            &server,
            &bob,
            &format!("{}/content/{}", server.base, uuid_of(id)),
        )
        .await;
        assert_eq!(response.status(), 200);
        let refreshed = json(response).await;
        let response = download(&server, refreshed["download_url"].as_str().unwrap()).await;
        assert_eq!(response.bytes().await.unwrap().to_vec(), bytes(3000));
        // The Platform API's refresh URL (no conversation frames an announcement).
        let refresh_url = announcement["parts"][0]["content"]["refresh_url"]
            .as_str()
            .unwrap();
        assert_eq!(
            refresh_url,
            format!("{}/content/{}", server.app_url(), uuid_of(id))
        );
        let response = server
            .platform(Method::GET, &refresh_url[server.app_url().len()..])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(json(response).await["download_url"].is_string());
    }
    // A user sender may not announce another user's content (as for messages, the app's own
    // content may go out under any sender).
    let response = announce(
        json!({"sender_id": "layer:///identities/admin"}),
        &unusable[2],
    )
    .await
    .unwrap();
    expect_error(response, 422, "invalid_property").await;
    // The app-wide refresh URL knows only uploaded content of this app.
    for id in [&unusable[0], &unusable[1], &unusable[3]] {
        let response = server
            .platform(Method::GET, &format!("/content/{}", uuid_of(id)))
            .send()
            .await
            .unwrap();
        expect_error(response, 404, "not_found").await;
    }
}

/// Starts a PUT of `declared` bytes to `url` over a raw connection and sends `chunks` of body,
/// pausing `pause` before each; then waits for the response's status line.
async fn slow_put(url: &str, declared: usize, chunks: usize, pause: std::time::Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let url = url::Url::parse(url).unwrap();
    let address = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "PUT {}?{} HTTP/1.1\r\nhost: {}\r\ncontent-type: image/png\r\ncontent-length: {declared}\r\n\r\n",
        url.path(),
        url.query().unwrap(),
        url.host_str().unwrap()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for _ in 0..chunks {
        tokio::time::sleep(pause).await;
        if stream.write_all(&[7; 10]).await.is_err() {
            break;
        }
    }
    let mut response = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        stream.read_to_end(&mut response),
    )
    .await;
    assert!(read.is_ok(), "the server ends the connection");
    String::from_utf8_lossy(&response)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

#[tokio::test]
async fn slow_uploads_are_cut_off_and_keep_nothing() {
    let fixture = Fixture::local(&[
        ("LAYER__CONTENT__TRANSFER_IDLE_TIMEOUT_SECS", "1"),
        ("LAYER__CONTENT__TRANSFER_TIMEOUT_SECS", "3"),
    ])
    .await;
    let server = &fixture.server;
    let alice = server.session_for("alice").await;
    let content = json(request_upload(server, &alice, "image/png", 3000).await).await;
    let url = content["upload_url"].as_str().unwrap();
    let started = std::time::Instant::now();

    // A client that stops sending: cut off after the idle timeout.
    let status = slow_put(url, 3000, 1, std::time::Duration::ZERO).await;
    assert!(status.contains(" 408 "), "{status}");
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    // A client that trickles (a chunk every 0.5 s): cut off after the total time.
    let started = std::time::Instant::now();
    let status = slow_put(url, 3000, 20, std::time::Duration::from_millis(500)).await;
    assert!(status.contains(" 408 "), "{status}");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= std::time::Duration::from_secs(3) && elapsed < std::time::Duration::from_secs(8),
        "{elapsed:?}"
    );
    assert_eq!(fixture.object(content["id"].as_str().unwrap()).await, None);
    let record = server
        .store
        .content(
            server.app_id,
            uuid_of(content["id"].as_str().unwrap()).parse().unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.uploaded_at, None);
    // A prompt upload still works.
    assert_eq!(
        put(server, url, "image/png", bytes(3000)).await.status(),
        200
    );
}

#[tokio::test]
async fn download_urls_are_checked_and_nothing_crosses_apps() {
    let server = TestServer::start().await;
    let alice = server.session_for("alice").await;
    let conversation = server.conversation_of(&["alice", "bob"]).await;
    let id = uploaded(&server, &alice, "image/png", &bytes(3000)).await;
    let message = json(
        send_as(
            &server,
            &alice,
            &conversation,
            rich_part("image/png", &id, 3000),
        )
        .await,
    )
    .await;
    let url = message["parts"][0]["content"]["download_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let uuid: Uuid = uuid_of(&id).parse().unwrap();
    assert_eq!(download(&server, &url).await.status(), 200);

    // Forged, altered, expired, signed for another app or another content, or unsigned.
    let signer = signer(&server);
    let (other_app, other_token) = server.second_app().await;
    let past = Timestamp::now().unix_seconds() - 1;
    let future = Timestamp::now().plus_secs(3600).unix_seconds();
    let signed = |app: Uuid, expires: i64| {
        format!(
            "{}/content-downloads/{uuid}?{}",
            server.base,
            signer.query(Purpose::Download, app, uuid, expires)
        )
    };
    let bad = [
        url.replace("signature=", "signature=00"),
        url.replace(&uuid.to_string(), &Uuid::new_v4().to_string()),
        url.split('?').next().unwrap().to_owned(),
        signed(server.app_id, past),
        signed(other_app, future),
    ];
    for bad in &bad {
        let error = expect_error(download(&server, bad).await, 403, "access_denied").await;
        assert!(error.get("download_url").is_none(), "{error}");
    }
    // The signer's own URL for this app is good (the checks above are not vacuous).
    assert_eq!(
        download(&server, &signed(server.app_id, future))
            .await
            .bytes()
            .await
            .unwrap()
            .to_vec(),
        bytes(3000)
    );

    // Another app's Platform API knows nothing of this app's content or conversation.
    let other = |method: Method, path: &str| {
        server
            .raw(method, &format!("/apps/{other_app}{path}"))
            .header("accept", crate::common::ACCEPT_V3)
            .bearer_auth(&other_token)
    };
    let content_path = format!("/conversations/{conversation}/content/{uuid}");
    for path in [format!("/content/{uuid}"), content_path] {
        let response = other(Method::GET, &path).send().await.unwrap();
        expect_error(response, 404, "not_found").await;
    }
    let response = other(
        Method::POST,
        &format!("/conversations/{conversation}/content"),
    )
    .header("upload-content-type", "image/png")
    .header("upload-content-length", "10")
    .send()
    .await
    .unwrap();
    expect_error(response, 404, "not_found").await;
    // ... and cannot reference it, even as its owner's user id.
    let response = other(Method::POST, "/conversations")
        .json(&json!({"participants": ["alice"], "distinct": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let theirs = uuid_of(json(response).await["id"].as_str().unwrap());
    let response = other(Method::POST, &format!("/conversations/{theirs}/messages"))
        .json(&json!({"sender": {"user_id": "alice"}, "parts": [content_part(&id)]}))
        .send()
        .await
        .unwrap();
    expect_error(response, 422, "invalid_property").await;
    // This app's path with the other app's token: refused, no content shown.
    let response = server
        .raw(
            Method::GET,
            &format!("/apps/{}/content/{uuid}", server.app_id),
        )
        .header("accept", crate::common::ACCEPT_V3)
        .bearer_auth(&other_token)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_client_error(), "{}", response.status());
    assert!(json(response).await.get("download_url").is_none());
}
