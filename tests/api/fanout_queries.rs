//! What a message fan-out costs the database: statements per recipient socket, counted from
//! sqlx's statement log (Issue 8). Postgres only: the test's runtime thread sees the statement
//! events of Postgres connections; SQLite runs its statements (and logs them) on worker threads.
//! Run it alone: `LAYER_TEST_BACKEND=postgres cargo test --test api fanout_queries -- --ignored`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::json;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

use layer_server::store::Backend;

use crate::common::TestServer;
use crate::websocket::open;

#[derive(Clone, Default)]
struct Statements {
    count: Arc<AtomicUsize>,
    texts: Arc<Mutex<Vec<String>>>,
}

struct Text(String);
impl tracing::field::Visit for Text {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "summary" {
            self.0 = format!("{value:?}");
        }
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "summary" {
            self.0 = value.to_owned();
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for Statements {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() == "sqlx::query" {
            self.count.fetch_add(1, Ordering::SeqCst);
            let mut text = Text(String::new());
            event.record(&mut text);
            self.texts.lock().unwrap().push(text.0);
        }
    }
}

/// Per socket: nothing. The sending node hands each socket its change (no change-log read),
/// the members' views are read once for all sockets, and the message itself and its
/// identities are kept from the send.
///
/// It counts the `sqlx::query` events its thread's subscriber sees; in a process running other
/// tests (their subscribers, their tracing callsites) it saw none at all once in a while. So
/// it is ignored in the suite and `.ci/test` runs it in a process of its own.
#[tokio::test]
#[ignore = "needs a process of its own: .ci/test runs it with --ignored"]
async fn a_fan_out_reads_nothing_per_recipient_socket() {
    let statements = Statements::default();
    let subscriber = tracing_subscriber::registry().with(statements.clone());
    let _guard = tracing::subscriber::set_default(subscriber);
    let server = TestServer::start().await;
    if server.store.backend() != Backend::Postgres {
        return;
    }
    let users: Vec<String> = (0..20).map(|i| format!("u{i}")).collect();
    let names: Vec<&str> = users.iter().map(String::as_str).collect();
    let conversation = server.conversation_of(&names).await;
    let mut sockets = Vec::new();
    for user in &names {
        let token = server.session_for(user).await;
        sockets.push(open(&server, &token, "layer-3.0").await);
    }
    let token = server.session_for("u0").await;
    for round in 0..3 {
        statements.count.store(0, Ordering::SeqCst);
        statements.texts.lock().unwrap().clear();
        let response = server
            .client(
                reqwest::Method::POST,
                &format!("/conversations/{conversation}/messages"),
            )
            .header("authorization", format!("Layer session-token=\"{token}\""))
            .json(&json!({"parts": [{"mime_type": "text/plain", "body": format!("m{round}")}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        for ws in &mut sockets {
            ws.message().await;
        }
        let total = statements.count.load(Ordering::SeqCst);
        let texts = statements.texts.lock().unwrap().clone();
        let count = |prefix: &str| texts.iter().filter(|t| t.starts_with(prefix)).count();
        let report = format!("round {round}: {total} statements: {texts:#?}");
        // One read of every member's view for all sockets; the message (with its parts,
        // receipts and identities) never read back: the sending node keeps it from the send.
        assert_eq!(count("with mem as"), 1, "{report}");
        for load in [
            "select id, conversation_id, position",
            "select message_id, id, mime_type",
        ] {
            assert_eq!(count(load), 0, "{report}");
        }
        // No socket reads its change log: the send handed it its change.
        assert_eq!(count("select seq, at, event from changes"), 0, "{report}");
        // What is left is the request's own: its session, the send's statements and commit,
        // the NOTIFY for other nodes (this round's, perhaps the last round's) and the views:
        // 6 to 8 with 20 sockets, whatever their number.
        assert!(total <= 10, "{report}");
    }
}
