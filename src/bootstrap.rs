//! What happens at start-up before serving: apps declared in configuration are created or
//! updated, and on an empty store a development app is created with everything a newcomer needs.

use anyhow::Context;

use crate::admin;
use crate::config::Settings;
use crate::ids;
use crate::keys::DevKey;
use crate::secrets;
use crate::store::{BearerToken, Store, Timestamp, SOURCE_CONFIG, SOURCE_DEV};

/// Creates or updates the apps of `settings.apps` with their tokens and keys.
pub async fn provision_declared(store: &dyn Store, settings: &Settings) -> anyhow::Result<()> {
    use secrecy::ExposeSecret;
    for declared in &settings.apps {
        let id = admin::parse_id(&declared.id, "app id", ids::parse_app_id)?;
        let provider = admin::parse_optional_id(
            declared.provider_id.as_deref(),
            "provider id",
            ids::parse_provider_id,
        )?;
        let name = declared.name.clone().unwrap_or_else(|| id.to_string());
        let app = store.upsert_app(id, &name, provider).await?;

        let plaintext = declared
            .tokens
            .iter()
            .map(|t| secrets::sha256_hex(t.expose_secret()));
        let mut hashes: Vec<String> = plaintext.collect();
        for digest in &declared.token_sha256 {
            hashes.push(secrets::parse_sha256_hex(digest).with_context(|| {
                format!("app {id}: token_sha256 entries must be 64 hex characters")
            })?);
        }
        for token_hash in hashes {
            store
                .add_token(&BearerToken {
                    id: uuid::Uuid::new_v4(),
                    app_id: app.id,
                    token_hash,
                    label: Some("declared in configuration".into()),
                    source: SOURCE_CONFIG.into(),
                    created_at: Timestamp::now(),
                    revoked_at: None,
                })
                .await?;
        }

        for key in &declared.keys {
            let key_id = admin::parse_id(&key.id, "key id", ids::parse_key_id)?;
            let key_provider = admin::parse_optional_id(
                key.provider_id.as_deref(),
                "provider id",
                ids::parse_provider_id,
            )?;
            let pem = match (&key.public_key, &key.public_key_file) {
                (Some(pem), _) => pem.clone(),
                (None, Some(file)) => std::fs::read_to_string(file)
                    .with_context(|| format!("reading {}", file.display()))?,
                (None, None) => anyhow::bail!(
                    "key {} of app {id}: set public_key or public_key_file",
                    key.id
                ),
            };
            let record = admin::provider_key(&app, Some(key_id), key_provider, &pem, SOURCE_CONFIG)
                .with_context(|| format!("key {} of app {id}", key.id))?;
            store.upsert_key(&record).await?;
        }
        tracing::info!(app = %app.id, "provisioned app from configuration");
    }
    Ok(())
}

/// The development app created on first start.
pub struct DevApp {
    pub app_id: uuid::Uuid,
    pub token: String,
    pub key_path: std::path::PathBuf,
}

/// On an empty store: creates the development app, a Bearer token, and registers the
/// development identity key (generated into `data_dir` unless one is there already).
pub async fn ensure_dev_app(
    store: &dyn Store,
    settings: &Settings,
) -> anyhow::Result<Option<DevApp>> {
    if !store.apps().await?.is_empty() {
        return Ok(None);
    }
    let key = match DevKey::load(&settings.data_dir) {
        Ok(key) => key,
        Err(_) if !DevKey::path_in(&settings.data_dir).exists() => {
            DevKey::create(&settings.data_dir)?
        }
        Err(err) => return Err(err.into()),
    };
    let app = admin::create_app(store, None, "Development").await?;
    let (_, token) =
        admin::issue_token(store, app.id, Some("development".into()), SOURCE_DEV).await?;
    let record = admin::provider_key(&app, None, None, &key.public_pem, SOURCE_DEV)?;
    store.add_key(&record).await?;
    tracing::info!(app = %app.id, "created the development app");
    Ok(Some(DevApp {
        app_id: app.id,
        token,
        key_path: key.path,
    }))
}

impl DevApp {
    /// The first-steps guide printed once, when the development app is created.
    pub fn guide(&self, base_url: &str) -> String {
        let app = self.app_id;
        let token = &self.token;
        let headers = format!(
            "-H 'Accept: application/vnd.layer+json; version=3.0' -H 'Authorization: Bearer {token}'"
        );
        format!(
            "\n\
=== layer-server: development app created ===\n\
App id:        layer:///apps/production/{app}\n\
Bearer token:  {token}\n\
\x20              (shown once; only its SHA-256 is stored. More: layer-server token create --app {app})\n\
Identity key:  {key} (signs development identity tokens)\n\
\n\
Try the Platform API (create a user's identity, then read it):\n\
\x20 curl -sS -X PUT {base_url}/apps/{app}/users/alice/identity {headers} -H 'Content-Type: application/json' -d '{{\"display_name\":\"Alice\"}}'\n\
\x20 curl -sS {base_url}/apps/{app}/users/alice/identity {headers}\n\
\n\
Log a client in as alice: get a nonce, mint an identity token for it, exchange it for a session:\n\
\x20 curl -sS -X POST {base_url}/nonces -H 'Accept: application/vnd.layer+json; version=3.0'\n\
\x20 layer-server dev-token --app {app} --user alice --nonce <nonce>\n\
\x20 (dev-token without --nonce mints a token with a fresh nonce of its own)\n\
\x20 curl -sS -X POST {base_url}/sessions -H 'Accept: application/vnd.layer+json; version=3.0' -H 'Content-Type: application/json' -d '{{\"app_id\":\"{app}\",\"identity_token\":\"<token>\"}}'\n\
Then send Authorization: Layer session-token=\"<session_token>\" with Client API requests.\n\
Point Layer SDKs at {base_url} with app id layer:///apps/production/{app}.\n\
==============================================\n",
            key = self.key_path.display(),
        )
    }
}
