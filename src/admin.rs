//! Operator actions on apps, Bearer tokens and identity-provider keys, shared by the CLI, the
//! configuration provisioning and the development bootstrap.

use std::path::Path;

use anyhow::{bail, Context};
use uuid::Uuid;

use crate::keys;
use crate::secrets;
use crate::store::{App, BearerToken, ProviderKey, Store, StoreError, Timestamp};

pub async fn create_app(store: &dyn Store, id: Option<Uuid>, name: &str) -> anyhow::Result<App> {
    let app = App {
        id: id.unwrap_or_else(Uuid::new_v4),
        name: name.to_owned(),
        provider_id: Uuid::new_v4(),
        created_at: Timestamp::now(),
        suspended: false,
    };
    match store.create_app(&app).await {
        Ok(()) => Ok(app),
        Err(StoreError::Conflict(_)) => bail!("an app with id {} exists already", app.id),
        Err(err) => Err(err.into()),
    }
}

pub async fn require_app(store: &dyn Store, id: Uuid) -> anyhow::Result<App> {
    store
        .app(id)
        .await?
        .with_context(|| format!("no app with id {id}"))
}

/// Creates a Bearer token; the plaintext is returned once and only its SHA-256 is stored.
pub async fn issue_token(
    store: &dyn Store,
    app_id: Uuid,
    label: Option<String>,
    source: &str,
) -> anyhow::Result<(BearerToken, String)> {
    require_app(store, app_id).await?;
    let secret = secrets::generate_token();
    let token = BearerToken {
        id: Uuid::new_v4(),
        app_id,
        token_hash: secrets::sha256_hex(&secret),
        label,
        source: source.to_owned(),
        created_at: Timestamp::now(),
        revoked_at: None,
    };
    store.add_token(&token).await?;
    Ok((token, secret))
}

/// Builds a provider key record from a PEM, validating it.
pub fn provider_key(
    app: &App,
    key_id: Option<Uuid>,
    provider_id: Option<Uuid>,
    pem: &str,
    source: &str,
) -> anyhow::Result<ProviderKey> {
    Ok(ProviderKey {
        id: key_id.unwrap_or_else(Uuid::new_v4),
        app_id: app.id,
        provider_id: provider_id.unwrap_or(app.provider_id),
        public_key_pem: keys::normalize_public_key(pem)?,
        source: source.to_owned(),
        created_at: Timestamp::now(),
    })
}

pub async fn add_key_file(
    store: &dyn Store,
    app_id: Uuid,
    file: &Path,
    key_id: Option<Uuid>,
    provider_id: Option<Uuid>,
) -> anyhow::Result<ProviderKey> {
    let app = require_app(store, app_id).await?;
    let pem =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let key = provider_key(&app, key_id, provider_id, &pem, crate::store::SOURCE_CLI)?;
    match store.add_key(&key).await {
        Ok(()) => Ok(key),
        Err(StoreError::Conflict(_)) => bail!("a key with id {} exists already", key.id),
        Err(err) => Err(err.into()),
    }
}

/// Parses an id argument with the given parser, naming what was expected on failure.
pub fn parse_id(value: &str, what: &str, parse: fn(&str) -> Option<Uuid>) -> anyhow::Result<Uuid> {
    parse(value).with_context(|| format!("{value:?} is not a valid {what}"))
}

/// `parse_id` for an optional argument.
pub fn parse_optional_id(
    value: Option<&str>,
    what: &str,
    parse: fn(&str) -> Option<Uuid>,
) -> anyhow::Result<Option<Uuid>> {
    value.map(|v| parse_id(v, what, parse)).transpose()
}
