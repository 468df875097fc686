//! Operations: health, readiness (including a database that goes away and comes back), metrics,
//! graceful shutdown.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;

use crate::common::{eventually, is_postgres, pg_admin_url, TestDb, TestServer};

#[tokio::test]
async fn healthz_readyz_metrics() {
    let server = TestServer::start().await;
    let health = server.raw(Method::GET, "/healthz").send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = server.raw(Method::GET, "/readyz").send().await.unwrap();
    assert_eq!(ready.status(), 200);

    let _ = server
        .platform(Method::GET, "/users/nobody/identity")
        .send()
        .await
        .unwrap();
    let metrics = server.raw(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    let wanted = "route=\"/apps/{app_uuid}/users/{user_id}/identity\"";
    assert!(
        text.lines()
            .any(|l| l.starts_with("layer_http_requests_total")
                && l.contains(wanted)
                && l.contains("status=\"404\"")),
        "{text}"
    );
    assert!(
        text.contains("layer_http_request_duration_seconds_bucket"),
        "{text}"
    );
    server.stop().await;
}

/// A TCP proxy between the server and Postgres that can be cut and restored.
struct Proxy {
    port: u16,
    down: Arc<AtomicBool>,
    cut: broadcast::Sender<()>,
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let (cut, _) = broadcast::channel(1);
        let (down2, cut2) = (down.clone(), cut.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if down2.load(Ordering::SeqCst) {
                    continue; // dropped: connection refused in effect
                }
                let upstream = upstream.clone();
                let mut cut = cut2.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.recv() => {}
                    }
                });
            }
        });
        Proxy { port, down, cut }
    }

    fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
        if down {
            let _ = self.cut.send(());
        }
    }
}

#[tokio::test]
async fn readyz_is_503_while_the_database_is_unreachable_and_recovers() {
    if !is_postgres() {
        // An embedded SQLite file cannot become unreachable; the Postgres run covers this.
        return;
    }
    let db = TestDb::new().await;
    let admin = url::Url::parse(&pg_admin_url()).unwrap();
    let upstream = format!(
        "{}:{}",
        admin.host_str().unwrap(),
        admin.port().unwrap_or(5432)
    );
    let proxy = Proxy::start(upstream).await;
    let mut via_proxy = url::Url::parse(&db.url).unwrap();
    via_proxy.set_host(Some("127.0.0.1")).unwrap();
    via_proxy.set_port(Some(proxy.port)).unwrap();
    let db = TestDb {
        url: via_proxy.to_string(),
        dir: db.dir,
        cleanup: db.cleanup,
    };
    let server = TestServer::start_on(db, &[("LAYER__DATABASE__ACQUIRE_TIMEOUT_SECS", "1")]).await;
    let status = |s: &TestServer| {
        let request = s.raw(Method::GET, "/readyz").send();
        async move { request.await.map(|r| r.status().as_u16()).unwrap_or(0) }
    };
    assert_eq!(status(&server).await, 200);

    proxy.set_down(true);
    assert!(
        eventually(Duration::from_secs(15), || async {
            status(&server).await == 503
        })
        .await
    );
    let body: serde_json::Value = server
        .raw(Method::GET, "/readyz")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["id"], "service_unavailable");
    // Liveness does not depend on the database.
    assert_eq!(
        server
            .raw(Method::GET, "/healthz")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Requests that need the database fail with 503, not 500.
    let response = server
        .platform(Method::GET, "/users/x/identity")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);

    proxy.set_down(false);
    assert!(
        eventually(Duration::from_secs(15), || async {
            status(&server).await == 200
        })
        .await
    );
}
