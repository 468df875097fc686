//! The command line: `serve` (default), `migrate`, and the operator commands for apps, Bearer
//! tokens, identity-provider keys and development identity tokens.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use uuid::Uuid;

use crate::admin;
use crate::config::Settings;
use crate::ids;
use crate::keys::{DevKey, IdentityClaims};
use crate::secrets;
use crate::store::{self, DynStore, Timestamp};

#[derive(Debug, Parser)]
#[command(
    name = "layer-server",
    version,
    about = "A self-hosted, wire-compatible Layer server"
)]
pub struct Cli {
    /// Configuration file (TOML), layered over the defaults and under LAYER__* variables.
    #[arg(long, global = true, value_name = "FILE", env = "LAYER_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the Client and Platform APIs (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage apps.
    #[command(subcommand)]
    App(AppCommand),
    /// Manage Platform API Bearer tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage identity-provider public keys (they verify identity tokens).
    #[command(subcommand)]
    Key(KeyCommand),
    /// Mint an identity token with the development key pair.
    DevToken(DevTokenArgs),
}

#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// Create an app (keep your Layer app UUID with --id).
    Create {
        /// App id: a UUID or layer:///apps/{staging,production}/<uuid>.
        #[arg(long)]
        id: Option<String>,
        #[arg(long, default_value = "Layer app")]
        name: String,
    },
    /// List apps.
    List,
    /// Suspend an app: its users cannot log in, their sessions stop working, and its Bearer
    /// tokens get 403 `app_suspended`. Nothing is deleted.
    Suspend {
        /// App id: a UUID or layer:///apps/{staging,production}/<uuid>.
        app: String,
    },
    /// Reinstate a suspended app (sessions that have not expired work again).
    Resume { app: String },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a Bearer token; it is printed once, only its SHA-256 is stored.
    Create {
        #[arg(long)]
        app: String,
        #[arg(long)]
        label: Option<String>,
    },
    /// List tokens (ids, never secrets).
    List {
        #[arg(long)]
        app: Option<String>,
    },
    /// Revoke a token by its id.
    Revoke { id: Uuid },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Register an RSA public key (PEM) that verifies the app's identity tokens.
    Add {
        #[arg(long)]
        app: String,
        #[arg(long, value_name = "FILE")]
        public_key: PathBuf,
        /// Provider id (`iss`): a UUID or layer:///providers/<uuid>; default: the app's.
        #[arg(long)]
        provider_id: Option<String>,
        /// Key id (`kid`): a UUID or layer:///keys/<uuid>; default: a new one.
        #[arg(long)]
        key_id: Option<String>,
    },
    /// List keys.
    List {
        #[arg(long)]
        app: Option<String>,
    },
    /// Remove a key by its id.
    Remove { id: String },
}

#[derive(Debug, Args)]
pub struct DevTokenArgs {
    #[arg(long)]
    pub app: String,
    #[arg(long)]
    pub user: String,
    /// A nonce from POST /nonces; without it a fresh nonce is issued directly.
    #[arg(long)]
    pub nonce: Option<String>,
    /// display_name claim (creates or updates the user's identity at login).
    #[arg(long)]
    pub display_name: Option<String>,
    /// Token lifetime in seconds.
    #[arg(long, default_value_t = 600)]
    pub ttl: i64,
}

pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    crate::telemetry::init(&settings.log);
    match run(cli.command.unwrap_or(Command::Serve), settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn set_suspended(store: &dyn store::Store, app: &str, suspended: bool) -> anyhow::Result<()> {
    let id = app_arg(app)?;
    if !store.set_app_suspended(id, suspended).await? {
        anyhow::bail!("no app with id {id}");
    }
    println!(
        "app {id} {}",
        if suspended { "suspended" } else { "active" }
    );
    Ok(())
}

fn app_arg(value: &str) -> anyhow::Result<Uuid> {
    admin::parse_id(value, "app id", ids::parse_app_id)
}

pub async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    if let Command::Serve = command {
        let store = crate::server::prepare(&settings).await?;
        let listener = tokio::net::TcpListener::bind(settings.http.bind)
            .await
            .with_context(|| format!("binding {}", settings.http.bind))?;
        return crate::server::serve(settings, store, listener, crate::server::shutdown_signal())
            .await;
    }
    let store = store::open(&settings)
        .await
        .with_context(|| format!("opening {}", store::redact_url(&settings.database_url())))?;
    let result = admin_command(command, &settings, &store).await;
    store.close().await;
    result
}

async fn admin_command(
    command: Command,
    settings: &Settings,
    store: &DynStore,
) -> anyhow::Result<()> {
    let store = &**store;
    match command {
        Command::Serve => unreachable!("handled by run"),
        Command::Migrate => println!("migrations applied"),
        Command::App(AppCommand::Create { id, name }) => {
            let id = admin::parse_optional_id(id.as_deref(), "app id", ids::parse_app_id)?;
            let app = admin::create_app(store, id, &name).await?;
            println!("app_id\t{}", ids::app_uri(app.id));
            println!("uuid\t{}", app.id);
            println!("provider_id\t{}", ids::provider_uri(app.provider_id));
        }
        Command::App(AppCommand::List) => {
            println!("UUID\tPROVIDER_ID\tCREATED\tSTATE\tNAME");
            for app in store.apps().await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    app.id,
                    ids::provider_uri(app.provider_id),
                    app.created_at.to_iso(),
                    if app.suspended { "suspended" } else { "active" },
                    app.name
                );
            }
        }
        Command::App(AppCommand::Suspend { app }) => set_suspended(store, &app, true).await?,
        Command::App(AppCommand::Resume { app }) => set_suspended(store, &app, false).await?,
        Command::Token(TokenCommand::Create { app, label }) => {
            let (token, secret) =
                admin::issue_token(store, app_arg(&app)?, label, store::SOURCE_CLI).await?;
            eprintln!(
                "token {} created for app {}; it is shown only now:",
                token.id, token.app_id
            );
            println!("{secret}");
        }
        Command::Token(TokenCommand::List { app }) => {
            let app = admin::parse_optional_id(app.as_deref(), "app id", ids::parse_app_id)?;
            println!("ID\tAPP\tSOURCE\tCREATED\tREVOKED\tLABEL");
            for t in store.tokens(app).await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    t.id,
                    t.app_id,
                    t.source,
                    t.created_at.to_iso(),
                    t.revoked_at
                        .map(Timestamp::to_iso)
                        .unwrap_or_else(|| "-".into()),
                    t.label.unwrap_or_default()
                );
            }
        }
        Command::Token(TokenCommand::Revoke { id }) => {
            if !store.revoke_token(id, Timestamp::now()).await? {
                anyhow::bail!("no active token with id {id}");
            }
            println!("revoked {id}");
        }
        Command::Key(KeyCommand::Add {
            app,
            public_key,
            provider_id,
            key_id,
        }) => {
            let provider_id = admin::parse_optional_id(
                provider_id.as_deref(),
                "provider id",
                ids::parse_provider_id,
            )?;
            let key_id = admin::parse_optional_id(key_id.as_deref(), "key id", ids::parse_key_id)?;
            let key = admin::add_key_file(store, app_arg(&app)?, &public_key, key_id, provider_id)
                .await?;
            println!("key_id\t{}", ids::key_uri(key.id));
            println!("provider_id\t{}", ids::provider_uri(key.provider_id));
        }
        Command::Key(KeyCommand::List { app }) => {
            let app = admin::parse_optional_id(app.as_deref(), "app id", ids::parse_app_id)?;
            println!("KEY_ID\tAPP\tPROVIDER_ID\tSOURCE\tCREATED");
            for k in store.keys(app).await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    ids::key_uri(k.id),
                    k.app_id,
                    ids::provider_uri(k.provider_id),
                    k.source,
                    k.created_at.to_iso()
                );
            }
        }
        Command::Key(KeyCommand::Remove { id }) => {
            let id = admin::parse_id(&id, "key id", ids::parse_key_id)?;
            if !store.remove_key(id).await? {
                anyhow::bail!("no key with id {}", ids::key_uri(id));
            }
            println!("removed {}", ids::key_uri(id));
        }
        Command::DevToken(args) => println!("{}", dev_token(store, settings, args).await?),
    }
    Ok(())
}

async fn dev_token(
    store: &dyn store::Store,
    settings: &Settings,
    args: DevTokenArgs,
) -> anyhow::Result<String> {
    let app_id = app_arg(&args.app)?;
    admin::require_app(store, app_id).await?;
    let dev_key = DevKey::load(&settings.data_dir).context(
        "no development key pair in the data directory (it is created with the development app on first start)",
    )?;
    let key = store
        .keys(Some(app_id))
        .await?
        .into_iter()
        .find(|k| k.public_key_pem == dev_key.public_pem)
        .with_context(|| {
            format!("app {app_id} has no development key registered; dev-token only signs for it")
        })?;
    let nonce = match args.nonce {
        Some(nonce) => nonce,
        None => {
            let nonce = secrets::generate_nonce();
            let expires = Timestamp::now().plus_secs(settings.auth.nonce_ttl_secs);
            store
                .create_nonce(&secrets::sha256_hex(&nonce), expires)
                .await?;
            nonce
        }
    };
    let profile = args
        .display_name
        .map(|name| serde_json::Map::from_iter([("display_name".to_owned(), name.into())]));
    Ok(dev_key.mint(&IdentityClaims {
        key_id: key.id,
        provider_id: key.provider_id,
        user_id: &args.user,
        nonce: &nonce,
        issued_at: Timestamp::now().unix_seconds(),
        ttl_secs: args.ttl,
        profile: profile.as_ref(),
    })?)
}
