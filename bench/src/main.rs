//! layer-bench: drives a running layer-server the way real clients do and measures send
//! throughput and latency (REST and WebSocket `Message.create`, open and closed loop),
//! WebSocket fan-out (send-to-receive latency, sockets held, server RSS), and, in the same run,
//! a baseline: the store method one send calls, on the same database at the same concurrency,
//! with no HTTP. See docs/performance.md.

mod client;
mod facts;
mod load;
mod stats;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use futures_util::{StreamExt, TryStreamExt};
use layer_server::store::{DynStore, NewMessage, Part, Sender, Timestamp};
use serde_json::{json, Value};
use uuid::Uuid;

use client::{message_body, message_json, unix_micros, Api, Credentials, Receipts, Socket};
use stats::{Delivery, Outcome};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// `send_message` of the store directly, closed loop at --concurrency (no HTTP).
    Baseline,
    /// REST sends, open loop at --rate.
    RestRate,
    /// REST sends, closed loop at --concurrency (saturation).
    RestMax,
    /// WebSocket `Message.create`, open loop at --rate.
    WsRate,
    /// WebSocket `Message.create`, closed loop at --concurrency.
    WsMax,
    /// Every user holds a socket; sends at --fanout-rate; send-to-receive latency.
    Fanout,
}

#[derive(Debug, Parser)]
#[command(name = "layer-bench", version, about = "Load tool for layer-server")]
struct Args {
    /// Base URL of the running server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The server's data directory (its development identity key, and the SQLite database
    /// unless --database-url is given).
    #[arg(long, default_value = "./data")]
    data_dir: PathBuf,
    /// The server's database (for the baseline and the report); default: the SQLite file in
    /// --data-dir.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Pool size of the baseline's store: keep it equal to the server's
    /// database.max_connections (default 10).
    #[arg(long, default_value_t = 10)]
    db_connections: u32,
    /// App id (UUID); default: the app the development key is registered for.
    #[arg(long)]
    app: Option<Uuid>,
    #[arg(long, default_value_t = 1000)]
    users: usize,
    #[arg(long, default_value_t = 200)]
    conversations: usize,
    #[arg(long, default_value_t = 5)]
    participants: usize,
    /// Scenarios to run, in this order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "baseline,rest-rate,rest-max,ws-rate,ws-max,fanout"
    )]
    scenarios: Vec<Scenario>,
    /// Seconds each scenario is measured.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Unmeasured seconds of the same load before each scenario.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Offered sends per second of the open-loop scenarios.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Sends in flight in the closed-loop scenarios and the baseline.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Offered sends per second during the fan-out measurement.
    #[arg(long, default_value_t = 500.0)]
    fanout_rate: f64,
    /// Open-loop sends outstanding at most (later ones are shed and counted).
    #[arg(long, default_value_t = 5000)]
    max_in_flight: usize,
    /// The server's process id (for RSS); default: the process listening on --url's port.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Where the JSON report goes.
    #[arg(long, default_value = "bench-results.json")]
    out: PathBuf,
    /// A label for the report (e.g. "postgres, after batching"); the last one given counts
    /// (bench/run.sh passes the backend's name first).
    #[arg(long, overrides_with = "label")]
    label: Option<String>,
}

/// Who sends what: users `bench-<i>`, and conversations of consecutive users.
struct World {
    users: Vec<String>,
    sessions: Vec<String>,
    /// Each conversation and its participants (indexes into `users`), creator first.
    conversations: Vec<(Uuid, Vec<usize>)>,
}

impl World {
    /// Send `i` goes to conversation `i mod C`, from its participants in turn.
    fn pick(&self, i: u64) -> (Uuid, usize) {
        let c = self.conversations.len() as u64;
        let (id, members) = &self.conversations[(i % c) as usize];
        (*id, members[((i / c) % members.len() as u64) as usize])
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.users > 0 && args.conversations > 0 && args.participants > 0,
        "--users, --conversations and --participants must be at least 1"
    );
    anyhow::ensure!(
        args.participants <= args.users,
        "more participants than users"
    );
    anyhow::ensure!(
        args.rate > 0.0 && args.fanout_rate > 0.0,
        "rates must be positive"
    );
    let database_url = args
        .database_url
        .clone()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| format!("sqlite://{}", args.data_dir.join("layer.db").display()));
    let backend = if database_url.starts_with("postgres") {
        "postgres"
    } else {
        "sqlite"
    };
    let store = open_store(&args, &database_url).await?;
    let credentials = credentials(&args, &store).await?;
    let api = Arc::new(Api::new(&args.url, args.concurrency.max(64))?);

    let database = facts::database_version(&database_url)
        .await
        .unwrap_or_else(|e| format!("unknown ({e})"));
    let server_pid = args.server_pid.or_else(|| {
        let port = reqwest::Url::parse(&args.url)
            .ok()?
            .port_or_known_default()?;
        facts::pid_listening_on(port)
    });
    let machine = facts::machine(
        backend,
        &database,
        facts::git_commit(std::path::Path::new(".")),
    );
    eprintln!("machine: {machine}");
    eprintln!("server pid: {server_pid:?}");

    let started = std::time::Instant::now();
    let world = Arc::new(setup(&args, &api, &credentials).await?);
    eprintln!(
        "setup: {} sessions (nonce + identity token + session), {} conversations of {} (Client API) in {:.1}s",
        world.users.len(),
        world.conversations.len(),
        args.participants,
        started.elapsed().as_secs_f64()
    );

    let receipts = Arc::new(Receipts::default());
    // Sockets by user index, opened when a scenario first needs them.
    let mut sockets: Vec<Option<Arc<Socket>>> = vec![None; world.users.len()];
    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut next = 0u64;
    let mut autovacuum = None;
    let measure = Duration::from_secs(args.duration);
    let warmup = Duration::from_secs(args.warmup);
    for scenario in &args.scenarios {
        let senders: Vec<usize> = world.conversations.iter().map(|(_, m)| m[0]).collect();
        let wanted: Vec<usize> = match scenario {
            Scenario::WsRate | Scenario::WsMax => senders,
            Scenario::Fanout => (0..world.users.len()).collect(),
            _ => Vec::new(),
        };
        open_sockets(&args.url, &world, &mut sockets, &wanted, &receipts).await?;
        let sockets = Arc::new(sockets.clone());
        eprintln!(
            "{scenario:?}: {} sockets open, {}s warm-up, {}s measured",
            receipts.open.load(Ordering::Relaxed),
            args.warmup,
            args.duration
        );
        let run = |duration: Duration, first: u64| {
            run_scenario(
                *scenario,
                &args,
                &store,
                &credentials,
                &api,
                &world,
                &sockets,
                duration,
                first,
            )
        };
        if !warmup.is_zero() {
            run(warmup, next).await;
            next += 1_000_000;
        }
        // Planner statistics as autovacuum would keep them (see analyze_if_no_autovacuum),
        // taken after the warm-up so that no table is analyzed empty: plans made for empty
        // tables slowed the first scenario (the baseline) to a fifth.
        autovacuum = facts::analyze_if_no_autovacuum(&database_url).await?;
        if *scenario == Scenario::Fanout {
            receipts.received.store(0, Ordering::Relaxed);
            receipts.since.store(unix_micros(), Ordering::Relaxed);
        }
        // The baseline's store runs in this process; every other scenario's in the server.
        let worker = match scenario {
            Scenario::Baseline => Some(std::process::id()),
            _ => server_pid,
        };
        let cpu_before = worker.and_then(facts::cpu_secs);
        let switches_before = worker.and_then(facts::context_switches);
        let mut outcome = run(measure, next).await;
        outcome.cpu_secs = cpu_before
            .zip(worker.and_then(facts::cpu_secs))
            .map(|(before, after)| after - before);
        outcome.context_switches = switches_before
            .zip(worker.and_then(facts::context_switches))
            .map(|(before, after)| after.saturating_sub(before));
        next += 10_000_000;
        if *scenario == Scenario::Fanout {
            outcome.delivery = Some(fanout_delivery(&world, &receipts, &outcome, server_pid).await);
        }
        eprintln!("  {}", outcome.to_json(None));
        outcomes.push(outcome);
    }

    let baseline = outcomes
        .iter()
        .find(|o| o.name == "baseline")
        .map(Outcome::per_sec);
    let config = json!({
        "url": args.url, "users": args.users, "conversations": args.conversations,
        "participants": args.participants, "duration_s": args.duration, "warmup_s": args.warmup,
        "rate": args.rate, "concurrency": args.concurrency, "fanout_rate": args.fanout_rate,
        "db_connections": args.db_connections, "conversations_created_with": "Client API",
        "label": args.label,
    });
    let report = json!({
        "machine": machine,
        "config": config,
        "server_pid": server_pid,
        // false: the tool ran `analyze` before each scenario (autovacuum off on this host).
        "postgres_autovacuum": autovacuum,
        "server_rss_mb_at_end": server_pid.and_then(facts::rss_mb),
        "scenarios": outcomes.iter().map(|o| o.to_json(baseline)).collect::<Vec<_>>(),
    });
    println!("{}", table(&report, &outcomes, baseline));
    std::fs::write(&args.out, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!("wrote {}", args.out.display());
    store.close().await;
    Ok(())
}

async fn open_store(args: &Args, database_url: &str) -> anyhow::Result<DynStore> {
    let env = [
        (
            "LAYER__DATA_DIR".to_owned(),
            args.data_dir.display().to_string(),
        ),
        ("DATABASE_URL".to_owned(), database_url.to_owned()),
        (
            "LAYER__DATABASE__MAX_CONNECTIONS".to_owned(),
            args.db_connections.to_string(),
        ),
    ];
    let settings = layer_server::config::Settings::load_from(None, env)?;
    layer_server::store::open(&settings)
        .await
        .with_context(|| format!("opening {}", layer_server::store::redact_url(database_url)))
}

/// The development key from the data directory and the app it is registered for.
async fn credentials(args: &Args, store: &DynStore) -> anyhow::Result<Credentials> {
    let key = layer_server::keys::DevKey::load(&args.data_dir).with_context(|| {
        format!(
            "no development identity key in {} (the server writes it on first start)",
            args.data_dir.display()
        )
    })?;
    let registered = store
        .keys(args.app)
        .await?
        .into_iter()
        .find(|k| k.public_key_pem == key.public_pem)
        .context("the development key is registered for no app (of --app) in this database")?;
    Ok(Credentials {
        app_id: registered.app_id,
        key_id: registered.id,
        provider_id: registered.provider_id,
        key,
    })
}

/// Logs every user in through the real flow and creates the conversations (Client API).
async fn setup(args: &Args, api: &Arc<Api>, credentials: &Credentials) -> anyhow::Result<World> {
    let users: Vec<String> = (0..args.users).map(|i| format!("bench-{i}")).collect();
    let sessions: Vec<String> = futures_util::stream::iter(users.iter())
        .map(|user| api.login(credentials, user))
        .buffered(16)
        .try_collect()
        .await?;
    let members: Vec<Vec<usize>> = (0..args.conversations)
        .map(|c| {
            (0..args.participants)
                .map(|k| (c * args.participants + k) % args.users)
                .collect()
        })
        .collect();
    let ids: Vec<Uuid> = futures_util::stream::iter(members.iter())
        .map(|m| {
            let names: Vec<String> = m.iter().map(|&u| users[u].clone()).collect();
            let session = sessions[m[0]].clone();
            async move { api.create_conversation(&session, &names).await }
        })
        .buffered(16)
        .try_collect()
        .await?;
    Ok(World {
        users,
        sessions,
        conversations: ids.into_iter().zip(members).collect(),
    })
}

async fn open_sockets(
    url: &str,
    world: &World,
    sockets: &mut [Option<Arc<Socket>>],
    wanted: &[usize],
    receipts: &Arc<Receipts>,
) -> anyhow::Result<()> {
    let missing: Vec<usize> = wanted
        .iter()
        .copied()
        .filter(|&u| sockets[u].is_none())
        .collect();
    let opened: Vec<(usize, Socket)> = futures_util::stream::iter(missing)
        .map(|u| {
            let receipts = receipts.clone();
            async move {
                let socket =
                    Socket::open(url, world.users[u].clone(), &world.sessions[u], receipts).await?;
                anyhow::Ok((u, socket))
            }
        })
        .buffer_unordered(32)
        .try_collect()
        .await?;
    for (u, socket) in opened {
        sockets[u] = Some(Arc::new(socket));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn run_scenario(
    scenario: Scenario,
    args: &Args,
    store: &DynStore,
    credentials: &Credentials,
    api: &Arc<Api>,
    world: &Arc<World>,
    sockets: &Arc<Vec<Option<Arc<Socket>>>>,
    duration: Duration,
    first: u64,
) -> Outcome {
    let name = format!("{scenario:?}")
        .chars()
        .enumerate()
        .flat_map(|(i, c)| {
            let dash = (i > 0 && c.is_uppercase()).then_some('-');
            dash.into_iter().chain(c.to_lowercase())
        })
        .collect::<String>();
    let rest = {
        let (api, world) = (api.clone(), world.clone());
        move |i: u64| {
            let (api, world) = (api.clone(), world.clone());
            async move {
                let (conversation, sender) = world.pick(i);
                let body = message_body(unix_micros(), &world.users[sender]);
                let message = message_json(Uuid::new_v4(), &body);
                api.send(&world.sessions[sender], conversation, &message)
                    .await
            }
        }
    };
    // WebSocket sends go through each conversation's first participant's socket.
    let ws = {
        let (world, sockets) = (world.clone(), sockets.clone());
        move |i: u64| {
            let (world, sockets) = (world.clone(), sockets.clone());
            async move {
                let c = (i % world.conversations.len() as u64) as usize;
                let (conversation, members) = &world.conversations[c];
                let sender = members[0];
                let socket = sockets[sender]
                    .clone()
                    .context("no socket for the sender")?;
                let body = message_body(unix_micros(), &world.users[sender]);
                socket
                    .send(*conversation, message_json(Uuid::new_v4(), &body))
                    .await
            }
        }
    };
    match scenario {
        Scenario::Baseline => {
            let (store, world, app_id) = (store.clone(), world.clone(), credentials.app_id);
            let send = move |i: u64| {
                let (store, world) = (store.clone(), world.clone());
                async move {
                    let (conversation, sender) = world.pick(i);
                    let new = NewMessage {
                        app_id,
                        id: Uuid::new_v4(),
                        conversation_id: conversation,
                        sender: Sender::User(world.users[sender].clone()),
                        sent_at: Timestamp::now(),
                        notification: None,
                        parts: vec![Part {
                            id: Uuid::new_v4(),
                            mime_type: "text/plain".into(),
                            body: Some(message_body(unix_micros(), &world.users[sender])),
                            encoding: None,
                            content: None,
                            updated_at: None,
                        }],
                        // As the Client API sends: the sender's participation is checked.
                        as_participant: true,
                    };
                    match store.send_message(&new).await? {
                        layer_server::store::SendMessage::Sent { .. } => Ok(()),
                        other => anyhow::bail!("send_message: {other:?}"),
                    }
                }
            };
            load::closed_loop(&name, args.concurrency, duration, first, send).await
        }
        Scenario::RestRate => {
            load::open_loop(&name, args.rate, duration, args.max_in_flight, first, rest).await
        }
        Scenario::RestMax => {
            load::closed_loop(&name, args.concurrency, duration, first, rest).await
        }
        Scenario::WsRate => {
            load::open_loop(&name, args.rate, duration, args.max_in_flight, first, ws).await
        }
        Scenario::WsMax => load::closed_loop(&name, args.concurrency, duration, first, ws).await,
        Scenario::Fanout => {
            load::open_loop(
                &name,
                args.fanout_rate,
                duration,
                args.max_in_flight,
                first,
                ws,
            )
            .await
        }
    }
}

/// After the fan-out sends: waits (at most 10 s) for every recipient's copy, then reads the
/// server's RSS.
async fn fanout_delivery(
    world: &World,
    receipts: &Receipts,
    outcome: &Outcome,
    server_pid: Option<u32>,
) -> Delivery {
    let recipients = world
        .conversations
        .iter()
        .map(|(_, m)| m.len() as u64 - 1)
        .sum::<u64>() as f64
        / world.conversations.len() as f64;
    let expected = (outcome.ok as f64 * recipients).round() as u64;
    let rss = server_pid.and_then(facts::rss_mb);
    let drained = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let changed = receipts.changed.notified();
            if receipts.received.load(Ordering::Relaxed) >= expected {
                return;
            }
            changed.await;
        }
    })
    .await;
    if drained.is_err() {
        eprintln!("  fan-out: not every copy arrived within 10 s of the last send");
    }
    Delivery {
        latency: receipts.latencies.summary(),
        expected,
        received: receipts.received.load(Ordering::Relaxed),
        sockets_open: receipts.open.load(Ordering::Relaxed),
        server_rss_mb: rss,
    }
}

fn table(report: &Value, outcomes: &[Outcome], baseline: Option<f64>) -> String {
    let machine = &report["machine"];
    let mut out = format!(
        "layer-bench  {} cores, {:.0} MiB, {} ({}), commit {}\n",
        machine["cores"],
        machine["memory_mb"].as_f64().unwrap_or(0.0),
        machine["backend"].as_str().unwrap_or("?"),
        machine["database"].as_str().unwrap_or("?"),
        machine["git_commit"].as_str().unwrap_or("?"),
    );
    out += &format!(
        "{:<14} {:<22} {:>9} {:>8} {:>8} {:>8} {:>9} {:>7} {:>10} {:>8}\n",
        "scenario",
        "load",
        "msg/s",
        "vs base",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "errors",
        "cpu ms/msg",
        "cs/msg"
    );
    for o in outcomes {
        let ratio = baseline
            .filter(|b| *b > 0.0)
            .map_or("-".to_owned(), |b| format!("{:.2}", o.per_sec() / b));
        out += &format!(
            "{:<14} {:<22} {:>9.0} {:>8} {:>8.2} {:>8.2} {:>9.2} {:>7} {:>10} {:>8}\n",
            o.name,
            o.load,
            o.per_sec(),
            ratio,
            o.latency.p50,
            o.latency.p99,
            o.latency.p999,
            o.errors + o.shed,
            o.cpu_ms_per_msg()
                .map_or("?".to_owned(), |ms| format!("{ms:.2}")),
            o.switches_per_msg()
                .map_or("?".to_owned(), |n| format!("{n:.1}")),
        );
        if let Some(d) = &o.delivery {
            out += &format!(
                "{:<14} send-to-receive p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms; {}/{} copies; {} sockets; server RSS {}\n",
                "",
                d.latency.p50,
                d.latency.p99,
                d.latency.p999,
                d.received,
                d.expected,
                d.sockets_open,
                d.server_rss_mb.map_or("?".to_owned(), |mb| format!("{mb:.0} MiB")),
            );
        }
    }
    out
}
