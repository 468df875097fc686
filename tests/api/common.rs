//! The test harness: a fresh database per test (SQLite file or Postgres database, chosen by
//! LAYER_TEST_BACKEND), the real server spawned on 127.0.0.1:0, and HTTP helpers.

use std::path::PathBuf;
use std::time::Duration;

use layer_server::config::Settings;
use layer_server::store::{DynStore, Session, Timestamp};
use layer_server::{admin, secrets, server};
use reqwest::{Method, RequestBuilder};
use tokio::sync::oneshot;
use uuid::Uuid;

pub const ACCEPT_V3: &str = "application/vnd.layer+json; version=3.0";

pub fn backend() -> String {
    std::env::var("LAYER_TEST_BACKEND").unwrap_or_else(|_| "sqlite".into())
}

pub fn is_postgres() -> bool {
    backend() == "postgres"
}

/// A fresh, empty database plus a scratch data directory.
pub struct TestDb {
    pub url: String,
    pub dir: tempfile::TempDir,
    /// Drops the Postgres database when the test is done with it (`None`: not this one's to
    /// drop, or SQLite, whose file goes with `dir`).
    pub cleanup: Option<DropDatabase>,
}

/// Drops a test's Postgres database when dropped, so test runs leave no databases behind.
pub struct DropDatabase {
    admin: String,
    name: String,
}

impl Drop for DropDatabase {
    fn drop(&mut self) {
        use sqlx::Connection;
        let admin = std::mem::take(&mut self.admin);
        let name = std::mem::take(&mut self.name);
        // Drop runs inside the test's runtime, which cannot be blocked on: a thread with a
        // runtime of its own does it. `with (force)` ends the sessions of servers still
        // winding down. Best effort: a failure only leaves the database for `.ci/run` to drop.
        let dropped = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(&format!("drop database if exists {name} with (force)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        });
        let _ = dropped.join();
    }
}

impl TestDb {
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (url, cleanup) = match backend().as_str() {
            "sqlite" => (
                format!("sqlite://{}", dir.path().join("layer.db").display()),
                None,
            ),
            "postgres" => {
                let (url, cleanup) = create_pg_database().await;
                (url, Some(cleanup))
            }
            other => panic!("LAYER_TEST_BACKEND must be sqlite or postgres, not {other:?}"),
        };
        TestDb { url, dir, cleanup }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Settings as the binary would load them from this environment.
    pub fn settings(&self, extra: &[(&str, &str)]) -> Settings {
        let mut env = vec![
            ("DATABASE_URL".to_owned(), self.url.clone()),
            (
                "LAYER__DATA_DIR".to_owned(),
                self.data_dir().display().to_string(),
            ),
            ("LAYER__HTTP__BIND".to_owned(), "127.0.0.1:0".to_owned()),
            ("LAYER__BOOTSTRAP__DEV_APP".to_owned(), "false".to_owned()),
            (
                "LAYER__DATABASE__MAX_CONNECTIONS".to_owned(),
                "4".to_owned(),
            ),
        ];
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Settings::load_from(None, env).expect("test settings")
    }
}

pub fn pg_admin_url() -> String {
    std::env::var("LAYER_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// `url` with its database name replaced.
pub fn with_database(url: &str, name: &str) -> String {
    let mut parsed = url::Url::parse(url).expect("postgres URL");
    parsed.set_path(&format!("/{name}"));
    parsed.to_string()
}

async fn create_pg_database() -> (String, DropDatabase) {
    use sqlx::Connection;
    let admin = pg_admin_url();
    let name = format!("layer_test_{}", Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("LAYER_TEST_BACKEND=postgres but {admin} does not answer: {e}"));
    sqlx::query(&format!("create database {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let url = with_database(&admin, &name);
    (url, DropDatabase { admin, name })
}

/// A running server with one app and a Bearer token for it.
pub struct TestServer {
    pub base: String,
    pub store: DynStore,
    pub app_id: Uuid,
    pub token: String,
    pub db: TestDb,
    pub http: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    pub async fn start_with(extra: &[(&str, &str)]) -> Self {
        Self::start_on(TestDb::new().await, extra).await
    }

    pub async fn start_on(db: TestDb, extra: &[(&str, &str)]) -> Self {
        let settings = db.settings(extra);
        let store = server::prepare(&settings).await.expect("store opens");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(server::serve(settings, store.clone(), listener, async {
            let _ = rx.await;
        }));
        let app = admin::create_app(&*store, None, "test app").await.unwrap();
        let (_, token) = admin::issue_token(&*store, app.id, None, "cli")
            .await
            .unwrap();
        TestServer {
            base,
            store,
            app_id: app.id,
            token,
            db,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Another server process on the same database, serving the same app (multi-node tests).
    pub async fn another_node(&self) -> TestServer {
        self.another_node_with(&[]).await
    }

    /// `another_node` with extra settings.
    pub async fn another_node_with(&self, extra: &[(&str, &str)]) -> TestServer {
        let db = TestDb {
            url: self.db.url.clone(),
            dir: tempfile::tempdir().unwrap(),
            cleanup: None,
        };
        let settings = db.settings(extra);
        let store = server::prepare(&settings).await.expect("store opens");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(server::serve(settings, store.clone(), listener, async {
            let _ = rx.await;
        }));
        TestServer {
            base,
            store,
            app_id: self.app_id,
            token: self.token.clone(),
            db,
            http: self.http.clone(),
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// A request with no headers at all.
    pub fn raw(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    /// A Platform API request for this app: `path` is below `/apps/:app_uuid`.
    pub fn platform(&self, method: Method, path: &str) -> RequestBuilder {
        self.raw(method, &format!("/apps/{}{path}", self.app_id))
            .header("accept", ACCEPT_V3)
            .bearer_auth(&self.token)
    }

    /// A Client API request with the v3 Accept header.
    pub fn client(&self, method: Method, path: &str) -> RequestBuilder {
        self.raw(method, path).header("accept", ACCEPT_V3)
    }

    /// A live session for `user_id` (the session endpoint belongs to the Client API work; the
    /// store call is what it will make).
    pub async fn session_for(&self, user_id: &str) -> String {
        let token = secrets::generate_token();
        let now = Timestamp::now();
        self.store
            .create_session(
                &secrets::sha256_hex(&token),
                &Session {
                    app_id: self.app_id,
                    user_id: user_id.to_owned(),
                    created_at: now,
                    expires_at: now.plus_secs(3600),
                },
            )
            .await
            .unwrap();
        token
    }

    /// Kills the server as a crash would: its task is aborted mid-flight, nothing is drained.
    pub async fn kill(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
        // Dropped only now: closing it would have started a graceful shutdown.
        self.shutdown.take();
    }

    /// Stops the server gracefully and waits for it. The database is returned (and dropped with
    /// it on Postgres): keep it while another node still uses it.
    pub async fn stop(mut self) -> TestDb {
        let _ = self.shutdown.take().map(|tx| tx.send(()));
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(20), task)
                .await
                .expect("server stops within 20 s")
                .expect("server task")
                .expect("server exits cleanly");
        }
        std::mem::replace(
            &mut self.db,
            TestDb {
                url: String::new(),
                dir: tempfile::tempdir().unwrap(),
                cleanup: None,
            },
        )
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Polls `check` until it returns true or `limit` passes.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn json(response: reqwest::Response) -> serde_json::Value {
    let text = response.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"))
}

// Messaging helpers (conversations, messages, announcements and the proxy).

pub const PATCH_CONTENT_TYPE: &str = "application/vnd.layer-patch+json";

/// The `Accept` header asking for `version` (`"1.1"`, `"2.0"`, `"3.0"`).
pub fn accept_version(version: &str) -> String {
    format!("application/vnd.layer+json; version={version}")
}

/// The UUID at the end of a Layer id (`layer:///conversations/<uuid>`) or URL, given as a JSON
/// string or a plain string.
pub fn uuid_of(id: impl AsRef<str>) -> String {
    let id = id.as_ref();
    let id = id.trim_matches('"');
    id.rsplit('/').next().unwrap_or(id).to_owned()
}

/// Percent-encodes a path segment (everything but ASCII alphanumerics and `-_.~`).
pub fn encode_path(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `layer:///identities/<user>` for a user id without reserved characters.
pub fn identity_id(user: &str) -> String {
    format!("layer:///identities/{user}")
}

/// The `Layer-Count` header of a list response.
pub fn layer_count(response: &reqwest::Response) -> i64 {
    response
        .headers()
        .get("layer-count")
        .unwrap_or_else(|| panic!("no Layer-Count header: {:?}", response.headers()))
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Asserts the status and Layer's error envelope `{id, code, message, url, data?}` with the code
/// of `id` from the catalogue (server-api.md §15); returns the body.
pub async fn expect_error(response: reqwest::Response, status: u16, id: &str) -> serde_json::Value {
    const CODES: &[(&str, i64)] = &[
        ("service_unavailable", 1),
        ("invalid_app_id", 2),
        ("invalid_request_id", 3),
        ("authentication_required", 4),
        ("app_suspended", 5),
        ("user_suspended", 6),
        ("invalid_operation", 9),
        ("invalid_request", 10),
        ("internal_server_error", 100),
        ("access_denied", 101),
        ("not_found", 102),
        ("missing_property", 104),
        ("invalid_property", 105),
        ("invalid_endpoint", 106),
        ("invalid_header", 107),
        ("conflict", 108),
        ("method_not_allowed", 109),
        ("participant_blocked", 110),
        ("id_in_use", 111),
    ];
    let actual = response.status().as_u16();
    let url = response.url().to_string();
    let body = json(response).await;
    assert_eq!(actual, status, "status of {url}: {body}");
    assert_eq!(body["id"], id, "error id: {body}");
    let code = CODES
        .iter()
        .find(|(name, _)| *name == id)
        .map(|(_, code)| *code);
    assert_eq!(body["code"].as_i64(), code, "error code: {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error message: {body}"
    );
    assert!(
        body["url"].as_str().is_some_and(|u| !u.is_empty()),
        "error url: {body}"
    );
    body
}

impl TestServer {
    /// A Platform API request asking for another API version.
    pub fn platform_version(&self, version: &str, method: Method, path: &str) -> RequestBuilder {
        self.raw(method, &format!("/apps/{}{path}", self.app_id))
            .header("accept", accept_version(version))
            .bearer_auth(&self.token)
    }

    /// A request through the Platform API proxy, acting as `user` (percent-encoded here).
    pub fn proxy(&self, user: &str, method: Method, path: &str) -> RequestBuilder {
        self.platform(method, &format!("/users/{}{path}", encode_path(user)))
    }

    /// The URL prefix of this app's Platform API resources.
    pub fn app_url(&self) -> String {
        format!("{}/apps/{}", self.base, self.app_id)
    }

    /// `POST /conversations` with `body`; asserts 201 and returns the conversation.
    pub async fn create_conversation(&self, body: serde_json::Value) -> serde_json::Value {
        let response = self
            .platform(Method::POST, "/conversations")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "create {body}");
        json(response).await
    }

    /// A new non-distinct conversation with these participants; its UUID.
    pub async fn conversation_of(&self, participants: &[&str]) -> String {
        let created = self
            .create_conversation(
                serde_json::json!({"participants": participants, "distinct": false}),
            )
            .await;
        uuid_of(created["id"].as_str().unwrap())
    }

    /// `PATCH /conversations/:id` with a Layer Patch body.
    pub async fn patch_conversation(
        &self,
        conversation: &str,
        operations: serde_json::Value,
    ) -> reqwest::Response {
        self.platform(Method::PATCH, &format!("/conversations/{conversation}"))
            .header("content-type", PATCH_CONTENT_TYPE)
            .body(operations.to_string())
            .send()
            .await
            .unwrap()
    }

    /// `GET /conversations/:id` (system view); asserts 200.
    pub async fn get_conversation(&self, conversation: &str) -> serde_json::Value {
        let response = self
            .platform(Method::GET, &format!("/conversations/{conversation}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "GET conversation {conversation}");
        json(response).await
    }

    /// `POST /conversations/:id/messages` with `body` (no assertion).
    pub async fn post_message(
        &self,
        conversation: &str,
        body: serde_json::Value,
    ) -> reqwest::Response {
        self.platform(
            Method::POST,
            &format!("/conversations/{conversation}/messages"),
        )
        .json(&body)
        .send()
        .await
        .unwrap()
    }

    /// Sends a text message from a named system sender (`sender.name`); asserts 201.
    pub async fn send_text(&self, conversation: &str, text: &str) -> serde_json::Value {
        let body = serde_json::json!({
            "sender": {"name": "System"},
            "parts": [{"mime_type": "text/plain", "body": text}],
        });
        let response = self.post_message(conversation, body).await;
        assert_eq!(response.status(), 201, "send {text:?}");
        json(response).await
    }

    /// Creates the user's identity with a display name; asserts 201.
    pub async fn create_identity(&self, user: &str, display_name: &str) {
        let response = self
            .platform(
                Method::POST,
                &format!("/users/{}/identity", encode_path(user)),
            )
            .json(&serde_json::json!({"display_name": display_name}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "identity for {user}");
    }

    /// Another app on the same server, with its own Bearer token.
    pub async fn second_app(&self) -> (Uuid, String) {
        let app = admin::create_app(&*self.store, None, "second app")
            .await
            .unwrap();
        let (_, token) = admin::issue_token(&*self.store, app.id, None, "cli")
            .await
            .unwrap();
        (app.id, token)
    }
}

/// Asserts that `object` has exactly these keys (explicit nulls included).
pub fn assert_keys(object: &serde_json::Value, keys: &[&str]) {
    let mut actual: Vec<&str> = object
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {object}"))
        .keys()
        .map(String::as_str)
        .collect();
    actual.sort_unstable();
    let mut expected = keys.to_vec();
    expected.sort_unstable();
    assert_eq!(actual, expected, "keys of {object}");
}

/// The app's identity provider, as a customer backend is: a registered RSA key that signs
/// identity tokens (the private keys are test fixtures, never used elsewhere).
pub struct Provider {
    pub key_id: Uuid,
    pub provider_id: Uuid,
    private_pem: &'static str,
}

pub const IDENTITY_KEY_A: &str = include_str!("../fixtures/identity-key-a.pem");
pub const IDENTITY_KEY_B: &str = include_str!("../fixtures/identity-key-b.pem");

impl Provider {
    /// Registers the public half of `private_pem` for `app_id` under a new key id.
    pub async fn register(store: &DynStore, app_id: Uuid, private_pem: &'static str) -> Self {
        use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding};
        let private = rsa::RsaPrivateKey::from_pkcs8_pem(private_pem).unwrap();
        let public = rsa::RsaPublicKey::from(&private)
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        let app = store.app(app_id).await.unwrap().expect("the app exists");
        let key = admin::provider_key(&app, None, None, &public, "cli").unwrap();
        store.add_key(&key).await.unwrap();
        Provider {
            key_id: key.id,
            provider_id: key.provider_id,
            private_pem,
        }
    }

    /// The standard header and claims for `user_id` and `nonce`, valid for ten minutes.
    pub fn parts(&self, user_id: &str, nonce: &str) -> (jsonwebtoken::Header, serde_json::Value) {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.typ = Some("JWT".into());
        header.cty = Some("layer-eit;v=1".into());
        header.kid = Some(format!("layer:///keys/{}", self.key_id));
        let now = Timestamp::now().unix_seconds();
        let claims = serde_json::json!({
            "iss": format!("layer:///providers/{}", self.provider_id),
            "prn": user_id,
            "iat": now,
            "exp": now + 600,
            "nce": nonce,
        });
        (header, claims)
    }

    /// Signs `claims` under `header` with this provider's private key.
    pub fn sign(&self, header: &jsonwebtoken::Header, claims: &serde_json::Value) -> String {
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(self.private_pem.as_bytes()).unwrap();
        jsonwebtoken::encode(header, claims, &key).unwrap()
    }

    /// A valid identity token for `user_id` and `nonce`.
    pub fn token(&self, user_id: &str, nonce: &str) -> String {
        let (header, claims) = self.parts(user_id, nonce);
        self.sign(&header, &claims)
    }
}

impl TestServer {
    /// A fresh nonce from `POST /nonces`.
    pub async fn nonce(&self) -> String {
        let response = self.client(Method::POST, "/nonces").send().await.unwrap();
        assert_eq!(response.status(), 201);
        json(response).await["nonce"].as_str().unwrap().to_owned()
    }

    /// `POST /sessions` with this identity token for this app.
    pub async fn post_session(&self, app_id: &str, identity_token: &str) -> reqwest::Response {
        self.client(Method::POST, "/sessions")
            .json(&serde_json::json!({ "identity_token": identity_token, "app_id": app_id }))
            .send()
            .await
            .unwrap()
    }

    /// Logs `user_id` in through the whole documented flow (nonce, identity token, session).
    pub async fn login(&self, provider: &Provider, user_id: &str) -> String {
        self.login_to(self.app_id, provider, user_id).await
    }

    /// `login` for another app of this server (`provider` must be registered for it).
    pub async fn login_to(&self, app_id: Uuid, provider: &Provider, user_id: &str) -> String {
        let nonce = self.nonce().await;
        let response = self
            .post_session(&app_id.to_string(), &provider.token(user_id, &nonce))
            .await;
        assert_eq!(response.status(), 201);
        json(response).await["session_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

impl TestServer {
    /// A Client API request (v3) with this session token.
    pub fn as_session(&self, session: &str, method: Method, path: &str) -> RequestBuilder {
        self.client(method, path).header(
            "authorization",
            format!("Layer session-token=\"{session}\""),
        )
    }
}
