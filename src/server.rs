//! Start-up and serving: open the store, provision configured apps, bootstrap the development
//! app, then serve until the shutdown future resolves. The listener and the shutdown signal are
//! injected so tests bind 127.0.0.1:0 and stop servers deterministically.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::bootstrap;
use crate::config::Settings;
use crate::content::UrlSigner;
use crate::http::{self, AppState, Urls};
use crate::store::{self, DynStore, Timestamp};

/// How long shutdown waits for WebSockets to close.
const SOCKETS_CLOSE_WITHIN: Duration = Duration::from_secs(5);

/// How often expired nonces, sessions and dedup entries are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Opens the store (applying migrations) and provisions declared apps.
pub async fn prepare(settings: &Settings) -> anyhow::Result<DynStore> {
    let store = store::open(settings).await?;
    bootstrap::provision_declared(&*store, settings).await?;
    Ok(store)
}

/// Serves on `listener` until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    settings: Settings,
    store: DynStore,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let local_addr = listener.local_addr()?;
    let base_url = if settings.http.public_url.is_empty() {
        format!("http://{local_addr}")
    } else {
        settings.public_url()
    };
    if settings.bootstrap.dev_app {
        if let Some(dev) = bootstrap::ensure_dev_app(&*store, &settings).await? {
            // Whoever reads stdout may be gone (a closed pipe); that must not stop the server.
            use std::io::Write;
            let _ = writeln!(std::io::stdout().lock(), "{}", dev.guide(&base_url));
        }
    }

    // One node per SQLite file; Postgres nodes share notices through LISTEN/NOTIFY.
    let (realtime, notices) = match store.postgres_pool() {
        Some(pool) => {
            let (realtime, notices) =
                crate::realtime::Realtime::postgres(pool, settings.database_url());
            (realtime, Some(notices))
        }
        None => (crate::realtime::Realtime::local(), None),
    };
    let signer = UrlSigner::load(&settings.content.signing_secret, &settings.data_dir)?;
    let content = crate::content::Storage::open(&settings)?;
    let urls = Urls::new(base_url, signer, settings.content.download_url_ttl_secs);
    let state = AppState {
        store: store.clone(),
        content,
        settings: Arc::new(settings),
        urls: Arc::new(urls),
        metrics: http::ops::metrics_handle(),
        realtime,
    };
    let webhooks = crate::webhooks::spawn(
        state.store.clone(),
        state.urls.clone(),
        state.settings.webhooks.clone(),
    )?;
    let background = tokio::spawn(housekeeping(state.clone()));
    let feed = tokio::spawn(announce_changes(state.clone()));
    tracing::info!(%local_addr, backend = ?store.backend(), "layer-server listening");

    // Upgraded WebSockets outlive their HTTP connection: on shutdown they get a close frame
    // (1001) and the server waits for their tasks to end.
    let hub = state.realtime.hub.clone();
    let shutdown = {
        let hub = hub.clone();
        async move {
            shutdown.await;
            hub.close_all();
        }
    };
    let result = axum::serve(listener, http::router(state))
        .with_graceful_shutdown(shutdown)
        .await;
    hub.close_all();
    if tokio::time::timeout(SOCKETS_CLOSE_WITHIN, hub.idle())
        .await
        .is_err()
    {
        tracing::warn!("WebSockets still open after shutdown");
    }
    // Calls in flight get to finish; what is left is leased and made again after a restart.
    webhooks.stop(SOCKETS_CLOSE_WITHIN).await;
    background.abort();
    feed.abort();
    if let Some(notices) = notices {
        notices.abort();
    }
    store.close().await;
    tracing::info!("layer-server stopped");
    Ok(result?)
}

/// Users whose change logs grew, as one notice names them at most.
const USERS_PER_NOTICE: usize = 100;

/// Carries what the store committed to every node's sockets: this node's sockets are handed the
/// changes appended (coalesced while the previous batch was being published), the other nodes
/// are told whose logs grew (`Notice::Changed`). Messages this node sent are handed to its
/// fan-out first, so its sockets render them without reading them back.
async fn announce_changes(state: AppState) {
    let feed = state.store.change_feed();
    let realtime = &state.realtime;
    loop {
        let committed = feed.next().await;
        for sent in &committed.sent {
            realtime.sent(&sent.message, &sent.identities);
        }
        for (app_id, mut appended) in committed.appended {
            // Each user's changes together (stable: in the order they were appended).
            appended.sort_by(|a, b| a.user.cmp(&b.user));
            realtime.hub.hand_over(app_id, &appended);
            let mut users: Vec<String> = appended.into_iter().map(|c| c.user).collect();
            users.dedup();
            for chunk in users.chunks(USERS_PER_NOTICE) {
                let notice = crate::realtime::Notice::Changed {
                    app_id,
                    users: chunk.to_vec(),
                };
                realtime.fanout.publish_elsewhere(notice).await;
            }
        }
    }
}

async fn housekeeping(state: AppState) {
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    let mut upkeep = tokio::time::interval(Duration::from_secs(5));
    let retention = Duration::from_secs(state.settings.websocket.change_retention_secs);
    loop {
        tokio::select! {
            _ = prune.tick() => {
                match state.store.prune(Timestamp::now()).await {
                    Ok(pruned) => tracing::debug!(?pruned, "pruned expired rows"),
                    Err(err) => tracing::warn!(error = %err, "pruning failed"),
                }
                match state.store.prune_changes(Timestamp::now().minus(retention)).await {
                    Ok(pruned) => tracing::debug!(pruned, "pruned old changes"),
                    Err(err) => tracing::warn!(error = %err, "pruning changes failed"),
                }
                let ttl = state.settings.content.unreferenced_ttl_secs;
                match crate::service::content::collect_garbage(&state.store, &state.content, Timestamp::now(), ttl).await {
                    Ok(deleted) => tracing::debug!(deleted, "collected unreferenced content"),
                    Err(err) => tracing::warn!(error = %err, "content garbage collection failed"),
                }
            },
            _ = upkeep.tick() => state.metrics.run_upkeep(),
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown signal received; draining requests");
}
