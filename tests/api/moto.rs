//! An S3-compatible server on loopback for the S3 content tests: PyPI `moto[server]`'s
//! `moto_server`, from `LAYER_TEST_MOTO` (path to the binary) or else from PATH. One per test,
//! on a port it picks itself (`-p 0`), killed when dropped. Without moto the S3 tests skip with
//! a message; with `LAYER_TEST_MOTO` set, a moto that does not start fails them instead.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use uuid::Uuid;

use crate::common::eventually;

/// How long moto may take to print its address and to answer.
const START_LIMIT: Duration = Duration::from_secs(60);

pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:<port>`
    pub endpoint: String,
}

/// The moto_server binary to use, if any: `LAYER_TEST_MOTO`, else `moto_server` on PATH.
fn binary() -> Option<(PathBuf, bool)> {
    if let Some(path) = std::env::var_os("LAYER_TEST_MOTO").filter(|p| !p.is_empty()) {
        return Some((PathBuf::from(path), true));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("moto_server"))
        .find(|candidate| candidate.is_file())
        .map(|found| (found, false))
}

impl Moto {
    /// A fresh moto on 127.0.0.1, or `None` (after printing why) when none is installed.
    pub async fn start(test: &str) -> Option<Moto> {
        let Some((binary, required)) = binary() else {
            eprintln!(
                "SKIPPED {test}: no moto_server (set LAYER_TEST_MOTO or put moto_server on PATH; \
                 `pip install 'moto[server]'`)"
            );
            return None;
        };
        let mut child = match Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(child) => child,
            Err(err) if !required => {
                eprintln!("SKIPPED {test}: {} does not run: {err}", binary.display());
                return None;
            }
            Err(err) => panic!("LAYER_TEST_MOTO={}: {err}", binary.display()),
        };
        // Werkzeug prints "Running on http://127.0.0.1:<port>" once it listens; the reader
        // keeps draining stderr (one log line per request) until moto exits.
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(address) = line.split("Running on ").nth(1) {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(address.trim().to_owned());
                    }
                }
            }
        });
        let endpoint = tokio::task::spawn_blocking(move || rx.recv_timeout(START_LIMIT))
            .await
            .unwrap();
        let mut moto = Moto {
            child,
            endpoint: String::new(),
        };
        match endpoint {
            Ok(endpoint) => moto.endpoint = endpoint,
            Err(_) => panic!(
                "{} did not report its address within {START_LIMIT:?}",
                binary.display()
            ),
        }
        let http = reqwest::Client::new();
        let url = format!("{}/", moto.endpoint);
        let answered = eventually(START_LIMIT, || async {
            http.get(&url).send().await.is_ok()
        })
        .await;
        assert!(answered, "moto at {} does not answer", moto.endpoint);
        Some(moto)
    }

    /// A new, empty bucket (moto accepts an unsigned `PUT /<bucket>`).
    pub async fn bucket(&self) -> String {
        let name = format!("layer-test-{}", Uuid::new_v4().simple());
        let response = reqwest::Client::new()
            .put(format!("{}/{name}", self.endpoint))
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "creating bucket {name}: {}",
            response.status()
        );
        name
    }

    /// The object's bytes as the bucket holds them (unsigned GET), `None` when missing.
    pub async fn object(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let response = reqwest::get(format!("{}/{bucket}/{key}", self.endpoint))
            .await
            .unwrap();
        match response.status().as_u16() {
            200 => Some(response.bytes().await.unwrap().to_vec()),
            404 => None,
            other => panic!("GET {bucket}/{key} from moto: {other}"),
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
