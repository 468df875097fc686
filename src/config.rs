//! Settings: compiled-in defaults (`config/default.toml`) < an optional file < `LAYER__*`
//! environment variables (plus `DATABASE_URL` and `RUST_LOG`). Secrets are `SecretString`s, so
//! they never reach logs or `Debug` output.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use config::{Config, Environment, File, FileFormat};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

pub const DEFAULTS: &str = include_str!("../config/default.toml");

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub log: LogSettings,
    pub auth: AuthSettings,
    pub dedup: DedupSettings,
    pub limits: LimitSettings,
    pub bootstrap: BootstrapSettings,
    pub websocket: WebsocketSettings,
    pub content: ContentSettings,
    pub webhooks: WebhookSettings,
    #[serde(default)]
    pub apps: Vec<DeclaredApp>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HttpSettings {
    pub bind: SocketAddr,
    pub public_url: String,
    pub request_timeout_secs: u64,
    pub body_limit_bytes: usize,
    pub cors_allowed_origins: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    /// May carry a password.
    pub url: SecretString,
    pub max_connections: u32,
    pub acquire_timeout_secs: u64,
    pub sqlite_busy_timeout_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    pub format: LogFormat,
    pub filter: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    pub nonce_ttl_secs: u64,
    pub session_ttl_secs: u64,
    pub clock_skew_secs: u64,
}

/// Limits Layer documented (server-api.md §3.3, §3.6, §1.5), configurable.
#[derive(Debug, Clone, Deserialize)]
pub struct LimitSettings {
    pub max_participants: usize,
    /// Members per channel (client-api.md §3.10).
    pub max_channel_members: usize,
    pub max_inline_part_bytes: usize,
    pub max_page_size: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DedupSettings {
    pub ttl_secs: u64,
}

/// The WebSocket API (`/websocket`): per-connection bounds and keepalive.
#[derive(Debug, Clone, Deserialize)]
pub struct WebsocketSettings {
    /// Packets waiting to be written to one socket; a socket whose queue overflows is closed.
    pub outbound_queue: usize,
    /// Client packets read but not yet handled; reading pauses while this many wait.
    pub inbound_queue: usize,
    /// Seconds between WebSocket pings; a peer silent for a whole interval is dropped.
    pub ping_interval_secs: u64,
    /// Largest accepted client message (and frame), in bytes.
    pub max_message_bytes: usize,
    /// Seconds a change stays in the per-user change log (`Event.replay` reaches this far back).
    pub change_retention_secs: u64,
    /// A typist whose `started` is not repeated for this long is announced as `paused` ...
    pub typing_paused_after_ms: u64,
    /// ... and one not heard from for this long (or whose socket closes) as `finished`.
    pub typing_finished_after_ms: u64,
    /// `Event.replay` starts this much before the `from_timestamp` asked for: a change is
    /// stamped when its transaction starts, so it can commit (and be delivered) after packets
    /// stamped later; the margin re-sends those instead of missing them.
    pub replay_margin_ms: u64,
}

/// Rich content (parts larger than 2 KB): where the bytes live and how long URLs last.
#[derive(Debug, Clone, Deserialize)]
pub struct ContentSettings {
    pub store: ContentBackend,
    /// Local store: the directory; empty: `<data_dir>/content`.
    pub local_dir: String,
    pub max_bytes: u64,
    pub upload_url_ttl_secs: u64,
    pub download_url_ttl_secs: u64,
    pub unreferenced_ttl_secs: u64,
    /// A transfer (upload or download) that moves no bytes this long is cut off.
    pub transfer_idle_timeout_secs: u64,
    /// No transfer takes longer than this in total.
    pub transfer_timeout_secs: u64,
    /// HMAC key of upload and download URLs; empty: generated into `<data_dir>`.
    pub signing_secret: SecretString,
    pub s3: S3Settings,
}

/// Webhook delivery (webhooks.md §5): timeouts, the retry schedule, claims, and which target
/// URLs registrations may name.
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookSettings {
    /// A delivery (or verification) not answered within this is a failure.
    pub timeout_ms: u64,
    /// Delays before each retry of a failed delivery; after the last one fails the webhook is
    /// deactivated and its backlog dropped. (One value in the environment is a list of one.)
    #[serde(deserialize_with = "one_or_many")]
    pub retry_schedule_ms: Vec<u64>,
    /// How long a claimed delivery is reserved for the node delivering it; a claim whose node
    /// died is taken over when it expires. Must exceed `timeout_ms`.
    pub lease_ms: u64,
    /// How often each node looks for due deliveries (it is also woken by its own writes).
    pub poll_interval_ms: u64,
    /// Deliveries in flight per node.
    pub max_in_flight: usize,
    /// Webhooks per app.
    pub max_per_app: u32,
    /// Allow `http://` target URLs (Layer required `https://`).
    pub allow_http: bool,
    /// Allow targets on loopback, private, link-local and other non-public addresses.
    pub allow_private_targets: bool,
}

/// A list of numbers, or a single one (the environment gives strings: `"100,200"` or `"100"`).
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Item {
        Number(u64),
        Text(String),
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(Item),
        Many(Vec<Item>),
    }
    let items = match OneOrMany::deserialize(d)? {
        OneOrMany::One(item) => vec![item],
        OneOrMany::Many(items) => items,
    };
    items
        .into_iter()
        .map(|item| match item {
            Item::Number(n) => Ok(n),
            Item::Text(text) => text
                .trim()
                .parse()
                .map_err(|_| serde::de::Error::custom(format!("{text:?} is not a number"))),
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContentBackend {
    Local,
    S3,
}

/// An S3-compatible bucket (AWS, MinIO, Ceph, moto, ...).
#[derive(Debug, Clone, Deserialize)]
pub struct S3Settings {
    pub bucket: String,
    /// Empty: AWS itself; otherwise the endpoint URL (path-style requests).
    pub endpoint: String,
    pub region: String,
    /// Empty: taken from the environment (AWS_ACCESS_KEY_ID, instance metadata, ...).
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    /// Key prefix inside the bucket.
    pub prefix: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BootstrapSettings {
    pub dev_app: bool,
}

/// An app declared in configuration (created or updated at start-up).
#[derive(Debug, Clone, Deserialize)]
pub struct DeclaredApp {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub provider_id: Option<String>,
    /// Plaintext Bearer tokens; only their SHA-256 is stored.
    #[serde(default)]
    pub tokens: Vec<SecretString>,
    /// SHA-256 hex digests of Bearer tokens whose plaintext lives elsewhere.
    #[serde(default)]
    pub token_sha256: Vec<String>,
    #[serde(default)]
    pub keys: Vec<DeclaredKey>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DeclaredKey {
    pub id: String,
    #[serde(default)]
    pub provider_id: Option<String>,
    #[serde(default)]
    pub public_key: Option<String>,
    #[serde(default)]
    pub public_key_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("configuration: {0}")]
    Config(#[from] config::ConfigError),
    #[error("configuration: {0}")]
    Invalid(String),
}

impl Settings {
    /// Loads defaults, then `file` (which must exist when given), then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        Self::load_from(file, std::env::vars())
    }

    /// As `load`, with the environment passed in (tests use this to avoid touching the process's).
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, SettingsError> {
        let env: std::collections::HashMap<String, String> = env.into_iter().collect();
        let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
        if let Some(path) = file {
            builder = builder.add_source(File::from(path).required(true));
        }
        let layer_env = env
            .iter()
            .filter(|(k, _)| k.starts_with("LAYER__"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        builder = builder.add_source(
            Environment::with_prefix("LAYER")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("http.cors_allowed_origins")
                .with_list_parse_key("webhooks.retry_schedule_ms")
                .source(Some(layer_env)),
        );
        if let Some(url) = env.get("DATABASE_URL").filter(|u| !u.is_empty()) {
            builder = builder.set_override("database.url", url.as_str())?;
        }
        if let Some(filter) = env.get("RUST_LOG").filter(|f| !f.is_empty()) {
            builder = builder.set_override("log.filter", filter.as_str())?;
        }
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), SettingsError> {
        let invalid = |m: &str| Err(SettingsError::Invalid(m.to_owned()));
        if self.database.max_connections == 0 {
            return invalid("database.max_connections must be at least 1");
        }
        if self.http.request_timeout_secs == 0 {
            return invalid("http.request_timeout_secs must be at least 1");
        }
        if self.websocket.outbound_queue == 0 || self.websocket.inbound_queue == 0 {
            return invalid(
                "websocket.outbound_queue and websocket.inbound_queue must be at least 1",
            );
        }
        if self.websocket.ping_interval_secs == 0 {
            return invalid("websocket.ping_interval_secs must be at least 1");
        }
        if self.websocket.typing_paused_after_ms == 0
            || self.websocket.typing_finished_after_ms < self.websocket.typing_paused_after_ms
        {
            return invalid(
                "websocket.typing_paused_after_ms must be at least 1 and at most \
                 websocket.typing_finished_after_ms",
            );
        }
        if self.content.upload_url_ttl_secs == 0 || self.content.download_url_ttl_secs == 0 {
            return invalid("content URL lifetimes must be at least 1 second");
        }
        if self.content.transfer_idle_timeout_secs == 0 || self.content.transfer_timeout_secs == 0 {
            return invalid("content transfer timeouts must be at least 1 second");
        }
        if self.content.store == ContentBackend::S3 && self.content.s3.bucket.is_empty() {
            return invalid("content.store = \"s3\" needs content.s3.bucket");
        }
        let hooks = &self.webhooks;
        if hooks.timeout_ms == 0 || hooks.poll_interval_ms == 0 || hooks.max_in_flight == 0 {
            return invalid(
                "webhooks.timeout_ms, poll_interval_ms and max_in_flight must be at least 1",
            );
        }
        if hooks.lease_ms <= hooks.timeout_ms {
            return invalid("webhooks.lease_ms must exceed webhooks.timeout_ms");
        }
        if !self.http.public_url.is_empty() {
            match url::Url::parse(&self.http.public_url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                _ => return invalid("http.public_url must be an absolute http(s) URL"),
            }
        }
        Ok(())
    }

    /// The database URL to use: the configured one, or SQLite inside `data_dir`.
    pub fn database_url(&self) -> String {
        let url = self.database.url.expose_secret();
        if url.is_empty() {
            format!("sqlite://{}", self.data_dir.join("layer.db").display())
        } else {
            url.to_owned()
        }
    }

    /// The base of rendered URLs, without a trailing slash.
    pub fn public_url(&self) -> String {
        if self.http.public_url.is_empty() {
            format!("http://{}", self.http.bind)
        } else {
            self.http.public_url.trim_end_matches('/').to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_cover_every_setting() {
        let s = Settings::load_from(None, env(&[])).unwrap();
        assert_eq!(s.http.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(s.public_url(), "http://127.0.0.1:8080");
        assert_eq!(s.database.max_connections, 10);
        assert_eq!(s.dedup.ttl_secs, 86_400);
        assert_eq!(
            (
                s.websocket.typing_paused_after_ms,
                s.websocket.typing_finished_after_ms,
                s.websocket.replay_margin_ms
            ),
            (6_000, 30_000, 10_000)
        );
        assert!(s.database_url().starts_with("sqlite://"));
        assert!(s.database_url().ends_with("layer.db"));
        assert!(s.apps.is_empty());
    }

    #[test]
    fn environment_overrides_file_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("layer.toml");
        std::fs::write(
            &file,
            "[http]\nbind = \"0.0.0.0:9000\"\npublic_url = \"https://chat.example.com/\"\n[database]\nmax_connections = 4\n",
        )
        .unwrap();
        let s = Settings::load_from(Some(&file), env(&[])).unwrap();
        assert_eq!(s.http.bind.to_string(), "0.0.0.0:9000");
        assert_eq!(s.public_url(), "https://chat.example.com");
        assert_eq!(s.database.max_connections, 4);

        let s = Settings::load_from(
            Some(&file),
            env(&[
                ("LAYER__HTTP__BIND", "127.0.0.1:7000"),
                ("LAYER__DATABASE__MAX_CONNECTIONS", "7"),
                (
                    "LAYER__HTTP__CORS_ALLOWED_ORIGINS",
                    "https://a.example,https://b.example",
                ),
                ("DATABASE_URL", "postgres://u:hunter2@db/layer"),
            ]),
        )
        .unwrap();
        assert_eq!(s.http.bind.to_string(), "127.0.0.1:7000");
        assert_eq!(s.database.max_connections, 7);
        assert_eq!(
            s.http.cors_allowed_origins,
            ["https://a.example", "https://b.example"]
        );
        assert_eq!(s.database_url(), "postgres://u:hunter2@db/layer");
        // the file's value survives where the environment says nothing
        assert_eq!(s.public_url(), "https://chat.example.com");
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("apps.toml");
        std::fs::write(
            &file,
            "[[apps]]\nid = \"7c27fe20-f650-11e5-9d56-61d800001f29\"\ntokens = [\"s3cret-token\"]\n",
        )
        .unwrap();
        let s = Settings::load_from(
            Some(&file),
            env(&[("DATABASE_URL", "postgres://u:hunter2@db/x")]),
        )
        .unwrap();
        let debug = format!("{s:?}");
        assert!(!debug.contains("s3cret-token"), "{debug}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert_eq!(s.apps[0].tokens[0].expose_secret(), "s3cret-token");
    }

    #[test]
    fn webhook_retry_schedule_from_defaults_and_environment() {
        let s = Settings::load_from(None, env(&[])).unwrap();
        assert_eq!(
            s.webhooks.retry_schedule_ms,
            [10_000, 30_000, 120_000, 300_000, 1_200_000]
        );
        for (value, expected) in [("100,200", vec![100, 200]), ("60000", vec![60_000])] {
            let s =
                Settings::load_from(None, env(&[("LAYER__WEBHOOKS__RETRY_SCHEDULE_MS", value)]))
                    .unwrap();
            assert_eq!(s.webhooks.retry_schedule_ms, expected);
        }
        let short_lease = env(&[
            ("LAYER__WEBHOOKS__TIMEOUT_MS", "5000"),
            ("LAYER__WEBHOOKS__LEASE_MS", "5000"),
        ]);
        assert!(Settings::load_from(None, short_lease).is_err());
    }

    #[test]
    fn missing_file_and_bad_values_are_errors() {
        assert!(Settings::load_from(Some(Path::new("/nonexistent/layer.toml")), env(&[])).is_err());
        assert!(
            Settings::load_from(None, env(&[("LAYER__HTTP__BIND", "not an address")])).is_err()
        );
        assert!(Settings::load_from(None, env(&[("LAYER__HTTP__PUBLIC_URL", "ftp://x")])).is_err());
        // Typing expiry: paused first, finished no earlier.
        let typing = |paused: &str, finished: &str| {
            Settings::load_from(
                None,
                env(&[
                    ("LAYER__WEBSOCKET__TYPING_PAUSED_AFTER_MS", paused),
                    ("LAYER__WEBSOCKET__TYPING_FINISHED_AFTER_MS", finished),
                ]),
            )
        };
        assert!(typing("0", "100").is_err());
        assert!(typing("200", "100").is_err());
        assert!(typing("100", "100").is_ok());
    }
}
