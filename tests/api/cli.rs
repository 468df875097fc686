//! The binary: every operator command, the zero-config first start and its guide, configuration
//! precedence, graceful shutdown on SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use reqwest::Method;

use crate::common::{is_postgres, json, TestDb, TestServer};

const BIN: &str = env!("CARGO_BIN_EXE_layer-server");

/// Runs the binary with the test database; returns stdout, failing on a non-zero exit.
fn run(db: &TestDb, args: &[&str]) -> String {
    let output = command(db, args).output().unwrap();
    assert!(
        output.status.success(),
        "layer-server {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn run_failing(db: &TestDb, args: &[&str]) -> String {
    let output = command(db, args).output().unwrap();
    assert!(
        !output.status.success(),
        "layer-server {args:?} should fail"
    );
    String::from_utf8(output.stderr).unwrap()
}

fn command(db: &TestDb, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &db.url)
        .env("LAYER__DATA_DIR", db.data_dir())
        .env("RUST_LOG", "warn");
    cmd
}

fn field<'a>(output: &'a str, name: &str) -> &'a str {
    output
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix('\t'))
        .unwrap_or_else(|| panic!("no {name} in {output:?}"))
}

#[tokio::test]
async fn app_token_and_key_commands() {
    let db = TestDb::new().await;
    let app_uuid = uuid::Uuid::new_v4();
    // An operator migrating off Layer keeps the app id, in either form.
    let out = run(
        &db,
        &[
            "app",
            "create",
            "--id",
            &format!("layer:///apps/staging/{app_uuid}"),
            "--name",
            "Migrated",
        ],
    );
    assert_eq!(field(&out, "uuid"), app_uuid.to_string());
    assert_eq!(
        field(&out, "app_id"),
        format!("layer:///apps/production/{app_uuid}")
    );
    let err = run_failing(&db, &["app", "create", "--id", &app_uuid.to_string()]);
    assert!(err.contains("exists already"), "{err}");
    assert!(run(&db, &["app", "list"]).contains(&format!("{app_uuid}")));

    // A token created by the CLI works over HTTP against a server on the same database...
    let token = run(
        &db,
        &[
            "token",
            "create",
            "--app",
            &app_uuid.to_string(),
            "--label",
            "backend",
        ],
    )
    .trim()
    .to_owned();
    assert!(token.len() >= 43, "{token}");
    let listing = run(&db, &["token", "list", "--app", &app_uuid.to_string()]);
    assert!(!listing.contains(&token), "secrets are never listed");
    let token_id = listing
        .lines()
        .find(|l| l.contains("backend"))
        .and_then(|l| l.split('\t').next())
        .unwrap()
        .to_owned();

    let server = TestServer::start_on(db, &[]).await;
    let get = |token: String| {
        server
            .client(Method::GET, &format!("/apps/{app_uuid}/users/zed/identity"))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(
        get(token.clone()).await.unwrap().status(),
        404,
        "authenticated, no such identity"
    );

    // Suspending the app refuses its tokens with 403 app_suspended; resuming restores them.
    let out = run(
        &server.db,
        &[
            "app",
            "suspend",
            &format!("layer:///apps/staging/{app_uuid}"),
        ],
    );
    assert!(out.contains("suspended"), "{out}");
    assert!(run(&server.db, &["app", "list"]).contains("suspended"));
    let response = get(token.clone()).await.unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(json(response).await["id"], "app_suspended");
    run(&server.db, &["app", "resume", &app_uuid.to_string()]);
    assert_eq!(get(token.clone()).await.unwrap().status(), 404);
    let err = run_failing(
        &server.db,
        &["app", "suspend", &uuid::Uuid::new_v4().to_string()],
    );
    assert!(err.contains("no app"), "{err}");

    // ...until it is revoked.
    run(&server.db, &["token", "revoke", &token_id]);
    assert_eq!(get(token.clone()).await.unwrap().status(), 401);
    let err = run_failing(&server.db, &["token", "revoke", &token_id]);
    assert!(err.contains("no active token"), "{err}");

    // Keys keep their Layer provider and key ids; bare and layer:/// forms are equivalent.
    let key = layer_server::keys::DevKey::create(&server.db.data_dir().join("k")).unwrap();
    let pem_file = server.db.data_dir().join("provider.pem");
    std::fs::write(&pem_file, &key.public_pem).unwrap();
    let (provider, kid) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let out = run(
        &server.db,
        &[
            "key",
            "add",
            "--app",
            &app_uuid.to_string(),
            "--public-key",
            pem_file.to_str().unwrap(),
            "--provider-id",
            &format!("layer:///providers/{provider}"),
            "--key-id",
            &kid.to_string(),
        ],
    );
    assert_eq!(field(&out, "key_id"), format!("layer:///keys/{kid}"));
    assert_eq!(
        field(&out, "provider_id"),
        format!("layer:///providers/{provider}")
    );
    let stored = server
        .store
        .key(app_uuid, kid)
        .await
        .unwrap()
        .expect("key stored");
    assert_eq!(stored.provider_id, provider);
    assert!(run(&server.db, &["key", "list"]).contains(&format!("layer:///keys/{kid}")));
    let not_pem = server.db.data_dir().join("junk.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let err = run_failing(
        &server.db,
        &[
            "key",
            "add",
            "--app",
            &app_uuid.to_string(),
            "--public-key",
            not_pem.to_str().unwrap(),
        ],
    );
    assert!(err.contains("RSA public key"), "{err}");
    run(
        &server.db,
        &["key", "remove", &format!("layer:///keys/{kid}")],
    );
    assert!(server.store.key(app_uuid, kid).await.unwrap().is_none());
    let err = run_failing(&server.db, &["key", "remove", &kid.to_string()]);
    assert!(err.contains("no key"), "{err}");
    assert!(run(&server.db, &["migrate"]).contains("migrations applied"));
}

/// A `serve` child process whose stdout is read up to the end of the first-steps guide.
struct Served {
    child: Child,
    guide: String,
}

fn serve(dir: &Path, envs: &[(&str, &str)], args: &[&str]) -> Served {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .env("LAYER__HTTP__BIND", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut guide = String::new();
        let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
        for line in lines.by_ref() {
            let end = line.starts_with("=====");
            guide.push_str(&line);
            guide.push('\n');
            if end {
                break;
            }
        }
        let _ = tx.send(guide);
        lines.for_each(drop); // keep the pipe open while the server runs
    });
    let guide = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the first-steps guide within 60 s");
    Served { child, guide }
}

impl Served {
    /// SIGTERM, then the exit status (graceful shutdown must exit 0).
    fn terminate(mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        for _ in 0..200 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("the server did not stop within 10 s of SIGTERM");
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

#[tokio::test]
async fn first_start_prints_a_guide_whose_curl_lines_work() {
    let dir = tempfile::tempdir().unwrap();
    // Zero configuration: no DATABASE_URL means SQLite in ./data. The Postgres run passes one,
    // and everything else must behave identically.
    let db = TestDb::new().await;
    let envs: Vec<(&str, &str)> = if is_postgres() {
        vec![("DATABASE_URL", db.url.as_str())]
    } else {
        vec![]
    };
    let served = serve(dir.path(), &envs, &[]);
    let guide = served.guide.clone();
    assert!(guide.contains("development app created"), "{guide}");
    if !is_postgres() {
        assert!(
            dir.path().join("data/layer.db").exists(),
            "SQLite file in ./data"
        );
    }
    assert!(dir.path().join("data/dev-identity-key.pem").exists());

    let curls: Vec<&str> = guide
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("curl "))
        .collect();
    assert!(curls.len() >= 3, "{guide}");
    let mut outputs = Vec::new();
    for line in &curls {
        let out = Command::new("sh")
            .arg("-c")
            .arg(line)
            .output()
            .expect("sh and curl must be installed");
        assert!(
            out.status.success(),
            "{line}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        outputs.push(String::from_utf8(out.stdout).unwrap());
    }
    let identity: serde_json::Value =
        serde_json::from_str(&outputs[1]).unwrap_or_else(|_| panic!("{outputs:?}"));
    assert_eq!(identity["display_name"], "Alice");
    let nonce: serde_json::Value = serde_json::from_str(&outputs[2]).unwrap();
    let nonce = nonce["nonce"].as_str().unwrap().to_owned();

    // dev-token, as the guide says, signs with the generated key for the app's provider.
    let app_id = guide
        .lines()
        .find_map(|l| l.strip_prefix("App id:"))
        .and_then(|v| v.trim().strip_prefix("layer:///apps/production/"))
        .unwrap()
        .to_owned();
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir.path())
        .env_clear()
        .env("RUST_LOG", "warn");
    if is_postgres() {
        cmd.env("DATABASE_URL", &db.url);
    }
    let out = cmd
        .args([
            "dev-token",
            "--app",
            &app_id,
            "--user",
            "alice",
            "--nonce",
            &nonce,
            "--display-name",
            "Alice A",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let jwt = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    // The guide's POST /sessions line, with the minted token in place of <token>, logs alice in.
    let login = curls
        .iter()
        .find(|l| l.contains("/sessions"))
        .expect("a POST /sessions line")
        .replace("<token>", &jwt);
    let out = Command::new("sh").arg("-c").arg(&login).output().unwrap();
    let session: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stdout)));
    assert!(
        session["session_token"]
            .as_str()
            .is_some_and(|t| t.len() >= 22),
        "{session}"
    );
    let header = decode_header(&jwt).unwrap();
    assert_eq!(header.alg, Algorithm::RS256);
    assert_eq!(header.cty.as_deref(), Some("layer-eit;v=1"));
    assert!(header.kid.unwrap().starts_with("layer:///keys/"));
    let key = layer_server::keys::DevKey::load(&dir.path().join("data")).unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.required_spec_claims.clear();
    let claims = decode::<serde_json::Value>(
        &jwt,
        &DecodingKey::from_rsa_pem(key.public_pem.as_bytes()).unwrap(),
        &validation,
    )
    .unwrap()
    .claims;
    assert_eq!(claims["prn"], "alice");
    assert_eq!(claims["nce"], nonce.as_str());
    assert_eq!(claims["display_name"], "Alice A");
    assert!(claims["iss"]
        .as_str()
        .unwrap()
        .starts_with("layer:///providers/"));

    assert!(served.terminate().success(), "graceful shutdown exits 0");

    // A second start finds the app and prints no guide (and keeps the same key).
    let served = {
        let mut cmd = Command::new(BIN);
        cmd.current_dir(dir.path())
            .env_clear()
            .env("RUST_LOG", "info")
            .env("LAYER__HTTP__BIND", "127.0.0.1:0");
        for (k, v) in &envs {
            cmd.env(k, v);
        }
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut child = served;
    let stderr = child.stderr.take().unwrap();
    let listening = BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.contains("listening"));
    assert!(listening);
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(!String::from_utf8_lossy(&output.stdout).contains("development app created"));
    assert_eq!(
        layer_server::keys::DevKey::load(&dir.path().join("data"))
            .unwrap()
            .public_pem,
        key.public_pem
    );
}

#[tokio::test]
async fn configuration_precedence_defaults_file_environment() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("layer.toml");
    std::fs::write(
        &file,
        "[http]\npublic_url = \"https://from-file.example\"\n",
    )
    .unwrap();
    let config = file.to_str().unwrap();

    // default: the bound address
    let served = serve(dir.path(), &[("LAYER__DATA_DIR", "d1")], &[]);
    assert!(
        served.guide.contains("curl -sS http://127.0.0.1:"),
        "{}",
        served.guide
    );
    drop(served);
    // file over default
    let served = serve(
        dir.path(),
        &[("LAYER__DATA_DIR", "d2")],
        &["--config", config],
    );
    assert!(
        served.guide.contains("https://from-file.example/apps/"),
        "{}",
        served.guide
    );
    drop(served);
    // environment over file
    let served = serve(
        dir.path(),
        &[
            ("LAYER__DATA_DIR", "d3"),
            ("LAYER__HTTP__PUBLIC_URL", "https://from-env.example"),
        ],
        &["--config", config],
    );
    assert!(
        served.guide.contains("https://from-env.example/apps/"),
        "{}",
        served.guide
    );
    assert!(!served.guide.contains("from-file"), "{}", served.guide);
}

#[tokio::test]
async fn declared_apps_and_tokens_from_configuration() {
    let db = TestDb::new().await;
    let app = uuid::Uuid::new_v4();
    let digest = layer_server::secrets::sha256_hex("hashed-elsewhere");
    let key = layer_server::keys::DevKey::create(&db.data_dir().join("provider")).unwrap();
    let key_file = db.data_dir().join("provider.pem");
    std::fs::write(&key_file, &key.public_pem).unwrap();
    let (kid, provider) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let file = db.data_dir().join("apps.toml");
    std::fs::write(
        &file,
        format!(
            "[[apps]]\nid = \"layer:///apps/production/{app}\"\nname = \"Declared\"\ntokens = [\"plain-secret-token\"]\ntoken_sha256 = [\"{digest}\"]\n\
             [[apps.keys]]\nid = \"layer:///keys/{kid}\"\nprovider_id = \"layer:///providers/{provider}\"\npublic_key_file = \"{}\"\n",
            key_file.display()
        ),
    )
    .unwrap();
    let settings = layer_server::config::Settings::load_from(
        Some(&file),
        [
            ("DATABASE_URL".to_owned(), db.url.clone()),
            ("LAYER__BOOTSTRAP__DEV_APP".to_owned(), "true".to_owned()),
            (
                "LAYER__DATA_DIR".to_owned(),
                db.data_dir().display().to_string(),
            ),
        ],
    )
    .unwrap();
    let store = layer_server::server::prepare(&settings).await.unwrap();
    // Declared apps count: no development app is added next to them.
    assert!(layer_server::bootstrap::ensure_dev_app(&*store, &settings)
        .await
        .unwrap()
        .is_none());
    // Provisioning is idempotent.
    layer_server::bootstrap::provision_declared(&*store, &settings)
        .await
        .unwrap();
    assert_eq!(store.tokens(Some(app)).await.unwrap().len(), 2);
    let stored = store
        .key(app, kid)
        .await
        .unwrap()
        .expect("declared key stored");
    assert_eq!(
        (stored.provider_id, stored.public_key_pem.as_str()),
        (provider, key.public_pem.as_str())
    );
    assert_eq!(store.keys(Some(app)).await.unwrap().len(), 1);
    store.close().await;

    let server = TestServer::start_on(db, &[]).await;
    for token in ["plain-secret-token", "hashed-elsewhere"] {
        let response = server
            .client(Method::PUT, &format!("/apps/{app}/users/u1/identity"))
            .bearer_auth(token)
            .json(&serde_json::json!({"display_name": "U"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204, "{token}");
    }
    let body = json(
        server
            .client(Method::GET, &format!("/apps/{app}/users/u1/identity"))
            .bearer_auth("plain-secret-token")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body["user_id"], "u1");
}
