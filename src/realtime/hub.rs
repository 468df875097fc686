//! The in-process registry of live sockets, keyed by app and user (several per user), and
//! ephemeral presence: what users announced on this node, and what other nodes reported about
//! theirs (`Notice::Presence`), merged into the presence followers see.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch, Notify};
use uuid::Uuid;

use super::packet::{Bodies, Outbound, PacketType};
use crate::store::{Appended, Change, Timestamp};
use crate::version::ApiVersion;

/// Why the server closes a socket: the close frame's code and reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close {
    pub code: u16,
    pub reason: &'static str,
}

impl Close {
    /// The session was deleted (logout, `DELETE /users/:u/sessions`) or the user suspended.
    pub const SESSION_ENDED: Close = Close {
        code: 4001,
        reason: "session ended",
    };
    /// The client read too slowly; it reconnects and replays.
    pub const OVERFLOW: Close = Close {
        code: 1013,
        reason: "outbound queue overflow; reconnect",
    };
    pub const SHUTDOWN: Close = Close {
        code: 1001,
        reason: "server shutting down",
    };
    /// Nothing heard from the peer for a whole ping interval.
    pub const DEAD_PEER: Close = Close {
        code: 1011,
        reason: "no answer to ping",
    };

    /// The label of the closes metric.
    pub fn label(self) -> &'static str {
        match self.code {
            4001 => "session_ended",
            1013 => "overflow",
            1001 => "shutdown",
            _ => "dead_peer",
        }
    }
}

/// One live socket, as the Hub and the request worker see it.
pub struct Socket {
    pub id: u64,
    pub app_id: Uuid,
    pub user_id: String,
    /// SHA-256 of the session token that opened it.
    pub session: String,
    pub version: ApiVersion,
    /// Packets with the time they were queued at (what a packet other than a change is stamped
    /// with).
    queue: mpsc::Sender<(Outbound, Timestamp)>,
    close: watch::Sender<Option<Close>>,
    /// Poked when the user's change log grew (the delivery task queues what was handed over, or
    /// reads the log).
    pub wake: Notify,
    /// Changes this node appended to the user's log, handed over after their commit.
    handed: Mutex<Handed>,
    /// Set by `Presence.subscribe`: the socket hears presence changes of whom its user follows.
    pub presence_subscribed: AtomicBool,
    /// While the delivery task is behind its user's log: the time (ms) of the oldest change it
    /// has not queued yet (`i64::MAX` when caught up). Packets queued meanwhile are stamped no
    /// later than this, so a client replaying from its last timestamp gets that change (and
    /// every change queued after it, whose times are no earlier).
    pub undelivered_since: AtomicI64,
}

impl Socket {
    /// The timestamp for a packet queued now that is not a change: now, or earlier while
    /// changes wait to be queued (see `undelivered_since`).
    fn stamp(&self) -> Timestamp {
        let now = Timestamp::now();
        match self.undelivered_since.load(Ordering::Relaxed) {
            i64::MAX => now,
            since => now.min(Timestamp::from_millis(since)),
        }
    }
}

/// Changes handed to a socket, and whether its log holds others it must read.
#[derive(Default)]
pub struct Handed {
    pub changes: Vec<Change>,
    /// Set by a wake-up that handed nothing over (another node's change, a lost notification):
    /// the delivery task reads the log.
    pub read_log: bool,
}

/// Changes kept for a socket whose delivery task is behind; past this, it reads the log.
const HANDED_MAX: usize = 256;

impl Socket {
    /// Hands changes of the user's log over and wakes the delivery task. A task too far behind
    /// to take them reads the log instead (its backlog is bounded).
    fn hand_over(&self, changes: &[Appended]) {
        let mut handed = lock(&self.handed);
        if handed.read_log || handed.changes.len() + changes.len() > HANDED_MAX {
            handed.changes.clear();
            handed.read_log = true;
        } else {
            handed.changes.extend(changes.iter().map(|c| Change {
                seq: c.seq,
                at: c.at,
                event: Some(c.event.clone()),
            }));
        }
        drop(handed);
        self.wake.notify_one();
    }

    /// Wakes the delivery task to read the log.
    fn wake_to_read(&self) {
        lock(&self.handed).read_log = true;
        self.wake.notify_one();
    }

    /// What was handed over since the last call.
    pub fn take_handed(&self) -> Handed {
        std::mem::take(&mut *lock(&self.handed))
    }
}

impl Socket {
    /// Queues a packet. A full queue closes the socket (`Close::OVERFLOW`): a consumer that slow
    /// gets a fresh start rather than unbounded memory.
    pub fn push(&self, packet: Outbound) -> bool {
        match self.queue.try_send((packet, self.stamp())) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.close(Close::OVERFLOW);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Queues a packet once the queue has room for it plus `headroom` more (kept free for
    /// responses and signals, which never wait): a large backlog waits here rather than
    /// overflowing. False when the socket is gone.
    pub async fn push_paced(&self, packet: Outbound, headroom: usize) -> bool {
        let wanted = (headroom + 1).min(self.queue.max_capacity());
        match self.queue.reserve_many(wanted).await {
            Ok(mut permits) => match permits.next() {
                Some(permit) => {
                    permit.send((packet, self.stamp()));
                    true
                }
                None => false,
            },
            Err(_) => false,
        }
    }

    /// Asks the writer to close; the first reason wins.
    pub fn close(&self, reason: Close) {
        self.close.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(reason);
                true
            } else {
                false
            }
        });
    }
}

/// The ends the connection task keeps.
pub struct SocketEnds {
    pub queue: mpsc::Receiver<(Outbound, Timestamp)>,
    pub close: watch::Receiver<Option<Close>>,
}

type UserKey = (Uuid, String);

/// A user's presence status as they set it (`Presence.update`), with `last_seen_at`.
#[derive(Debug, Clone)]
struct PresenceState {
    status: Option<String>,
    last_seen_at: Option<Timestamp>,
    changed_at: Timestamp,
}

/// Presence as another user (or the user themself) sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    pub status: &'static str,
    pub last_seen_at: Option<Timestamp>,
}

/// A user's presence as one node knows it: whether they have a socket there, and what they
/// announced there (times in milliseconds since the epoch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePresence {
    pub connected: bool,
    pub status: Option<String>,
    pub last_seen_at: Option<i64>,
    pub changed_at: i64,
}

/// Status values a client may set; `auto` restores the last one (or `available`).
pub const STATUSES: [&str; 6] = ["auto", "available", "away", "busy", "offline", "invisible"];

#[derive(Default)]
pub struct Hub {
    /// This node, as other nodes' notices name it.
    pub node: Uuid,
    sockets: Mutex<HashMap<UserKey, Vec<Arc<Socket>>>>,
    presence: Mutex<HashMap<UserKey, PresenceState>>,
    /// What other nodes reported, per user and node.
    remote_presence: Mutex<HashMap<UserKey, HashMap<Uuid, NodePresence>>>,
    /// The presence this node last pushed to the followers connected to it.
    announced: Mutex<HashMap<UserKey, Presence>>,
    next_id: AtomicU64,
    live: watch::Sender<usize>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks leaves plain maps behind; keep serving.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Removes the socket from the Hub when the connection ends.
pub struct Registration {
    hub: Arc<Hub>,
    socket: Arc<Socket>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.hub.unregister(&self.socket);
    }
}

impl Hub {
    pub fn new() -> Arc<Self> {
        Arc::new(Hub {
            node: Uuid::new_v4(),
            ..Hub::default()
        })
    }

    /// Adds a socket; it stays until the returned registration is dropped.
    pub fn register(
        self: &Arc<Self>,
        app_id: Uuid,
        user_id: &str,
        session: String,
        version: ApiVersion,
        queue_capacity: usize,
    ) -> (Registration, Arc<Socket>, SocketEnds) {
        let (queue_tx, queue) = mpsc::channel(queue_capacity);
        let (close_tx, close) = watch::channel(None);
        let socket = Arc::new(Socket {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            app_id,
            user_id: user_id.to_owned(),
            session,
            version,
            queue: queue_tx,
            close: close_tx,
            wake: Notify::new(),
            handed: Mutex::default(),
            presence_subscribed: AtomicBool::new(false),
            undelivered_since: AtomicI64::new(i64::MAX),
        });
        lock(&self.sockets)
            .entry((app_id, user_id.to_owned()))
            .or_default()
            .push(socket.clone());
        self.live.send_modify(|n| *n += 1);
        metrics::gauge!("layer_websocket_connections").increment(1.0);
        let registration = Registration {
            hub: self.clone(),
            socket: socket.clone(),
        };
        (registration, socket, SocketEnds { queue, close })
    }

    fn unregister(&self, socket: &Socket) {
        let key = (socket.app_id, socket.user_id.clone());
        let last = {
            let mut sockets = lock(&self.sockets);
            let list = sockets.entry(key.clone()).or_default();
            list.retain(|s| s.id != socket.id);
            let last = list.is_empty();
            if last {
                sockets.remove(&key);
            }
            last
        };
        if last {
            // The user was seen until now.
            let now = Timestamp::now();
            if let Some(state) = lock(&self.presence).get_mut(&key) {
                state.last_seen_at = Some(now);
                state.changed_at = now;
            }
        }
        self.live.send_modify(|n| *n = n.saturating_sub(1));
        metrics::gauge!("layer_websocket_connections").decrement(1.0);
    }

    fn sockets_of(&self, app_id: Uuid, users: &[String]) -> Vec<Arc<Socket>> {
        let sockets = lock(&self.sockets);
        users
            .iter()
            .filter_map(|u| sockets.get(&(app_id, u.clone())))
            .flatten()
            .cloned()
            .collect()
    }

    /// Queues a packet on every socket of these users (each rendered for its socket's version).
    pub fn deliver(&self, app_id: Uuid, users: &[String], kind: PacketType, bodies: &Bodies) {
        for socket in self.sockets_of(app_id, users) {
            socket.push(Outbound::Delivery {
                kind,
                bodies: bodies.clone(),
            });
        }
    }

    /// Wakes the delivery of these users' sockets to read their logs (they grew).
    pub fn wake(&self, app_id: Uuid, users: &[String]) {
        for socket in self.sockets_of(app_id, users) {
            socket.wake_to_read();
        }
    }

    /// Hands changes this node appended (after their commit) to their users' sockets here.
    pub fn hand_over(&self, app_id: Uuid, appended: &[Appended]) {
        let sockets = lock(&self.sockets);
        let mut key = (app_id, String::new());
        for changes in appended.chunk_by(|a, b| a.user == b.user) {
            key.1.clone_from(&changes[0].user);
            for socket in sockets.get(&key).into_iter().flatten() {
                socket.hand_over(changes);
            }
        }
    }

    /// Wakes every socket (of one app, or all) to read its log: notifications may have been
    /// lost.
    pub fn wake_all(&self, app_id: Option<Uuid>) {
        for socket in lock(&self.sockets).values().flatten() {
            if app_id.is_none_or(|app| app == socket.app_id) {
                socket.wake_to_read();
            }
        }
    }

    /// Closes every socket opened with this session.
    pub fn close_session(&self, session: &str) {
        let sockets: Vec<Arc<Socket>> = lock(&self.sockets).values().flatten().cloned().collect();
        for socket in sockets.iter().filter(|s| s.session == session) {
            socket.close(Close::SESSION_ENDED);
        }
    }

    /// Closes every socket of a user.
    pub fn close_user(&self, app_id: Uuid, user_id: &str) {
        for socket in self.sockets_of(app_id, &[user_id.to_owned()]) {
            socket.close(Close::SESSION_ENDED);
        }
    }

    /// Closes every socket (server shutdown).
    pub fn close_all(&self) {
        for socket in lock(&self.sockets).values().flatten() {
            socket.close(Close::SHUTDOWN);
        }
    }

    /// Resolves once no socket is left.
    pub async fn idle(&self) {
        let mut live = self.live.subscribe();
        let _ = live.wait_for(|n| *n == 0).await;
    }

    pub fn is_connected(&self, app_id: Uuid, user_id: &str) -> bool {
        lock(&self.sockets).contains_key(&(app_id, user_id.to_owned()))
    }

    /// The status the user announced last, on any node.
    fn latest_status(&self, app_id: Uuid, user_id: &str) -> Option<String> {
        let mut nodes = vec![self.node_presence(app_id, user_id)];
        if let Some(remote) = lock(&self.remote_presence).get(&(app_id, user_id.to_owned())) {
            nodes.extend(remote.values().cloned());
        }
        nodes
            .into_iter()
            .filter_map(|n| Some((n.changed_at, n.status?)))
            .max()
            .map(|(_, status)| status)
    }

    /// Applies `Presence.update`'s status (one of `STATUSES`); `auto` restores the latest one
    /// announced on any node (or `available`).
    pub fn set_status(&self, app_id: Uuid, user_id: &str, status: &str) {
        let now = Timestamp::now();
        let latest = self.latest_status(app_id, user_id);
        let mut presence = lock(&self.presence);
        let state = presence
            .entry((app_id, user_id.to_owned()))
            .or_insert(PresenceState {
                status: None,
                last_seen_at: None,
                changed_at: now,
            });
        let status = match (status, latest) {
            ("auto", Some(previous)) => previous,
            ("auto", None) => "available".to_owned(),
            (status, _) => status.to_owned(),
        };
        state.status = Some(status);
        state.last_seen_at = Some(now);
        state.changed_at = now;
    }

    /// What this node knows of the user's presence, for the other nodes.
    pub fn node_presence(&self, app_id: Uuid, user_id: &str) -> NodePresence {
        let connected = self.is_connected(app_id, user_id);
        let state = lock(&self.presence)
            .get(&(app_id, user_id.to_owned()))
            .cloned();
        NodePresence {
            connected,
            status: state.as_ref().and_then(|s| s.status.clone()),
            last_seen_at: state
                .as_ref()
                .and_then(|s| s.last_seen_at.map(Timestamp::millis)),
            changed_at: state.map_or(0, |s| s.changed_at.millis()),
        }
    }

    /// A user's presence as `viewer` sees it, over every node: offline unless some node has a
    /// socket of theirs and a status they announced there; then the status they announced last
    /// (on any node). Last seen: the latest any node saw. `invisible` only to the user
    /// themself.
    pub fn presence(&self, app_id: Uuid, user_id: &str, viewer: &str) -> Presence {
        let mut nodes = vec![self.node_presence(app_id, user_id)];
        if let Some(remote) = lock(&self.remote_presence).get(&(app_id, user_id.to_owned())) {
            nodes.extend(remote.values().cloned());
        }
        let last_seen_at = nodes
            .iter()
            .filter_map(|n| n.last_seen_at)
            .max()
            .map(Timestamp::from_millis);
        let online = nodes.iter().any(|n| n.connected && n.status.is_some());
        let status = nodes
            .into_iter()
            .filter(|_| online)
            .filter_map(|n| Some((n.changed_at, n.status?)))
            .max()
            .map_or_else(|| "offline".to_owned(), |(_, status)| status);
        let status = match status.as_str() {
            "invisible" if viewer == user_id => "invisible",
            "available" => "available",
            "away" => "away",
            "busy" => "busy",
            _ => "offline",
        };
        Presence {
            status,
            last_seen_at,
        }
    }

    /// Users of the app whose presence changed at or after `since` (on any node).
    pub fn presence_changed_since(&self, app_id: Uuid, since: Timestamp) -> Vec<String> {
        let mut users: Vec<String> = lock(&self.presence)
            .iter()
            .filter(|((app, _), state)| *app == app_id && state.changed_at >= since)
            .map(|((_, user), _)| user.clone())
            .collect();
        users.extend(
            lock(&self.remote_presence)
                .iter()
                .filter(|((app, _), nodes)| {
                    *app == app_id && nodes.values().any(|n| n.changed_at >= since.millis())
                })
                .map(|((_, user), _)| user.clone()),
        );
        users.sort();
        users.dedup();
        users
    }

    /// A node reported a user's presence: record it (another node's) and, when the presence
    /// followers see changed, push it to those connected here who subscribed (2.0+: an
    /// Identity `update` of `presence.status` and `presence.last_seen_at`).
    fn presence_reported(&self, report: &PresenceReport) {
        let key = (report.app_id, report.user.clone());
        if report.node != self.node {
            lock(&self.remote_presence)
                .entry(key.clone())
                .or_default()
                .insert(report.node, report.state.clone());
        }
        let now = self.presence(report.app_id, &report.user, "");
        let never = Presence {
            status: "offline",
            last_seen_at: None,
        };
        let before = lock(&self.announced).insert(key, now.clone());
        if before.unwrap_or(never) == now {
            return;
        }
        let body = serde_json::json!({
            "operation": "update",
            "object": {
                "type": "Identity",
                "id": crate::ids::identity_uri(&report.user),
                "url": report.identity_url,
            },
            "data": [
                { "operation": "set", "property": "presence.status", "value": now.status },
                { "operation": "set", "property": "presence.last_seen_at",
                  "value": now.last_seen_at.map(Timestamp::to_iso) },
            ],
        });
        for socket in self.sockets_of(report.app_id, &report.followers) {
            if socket.version.has_identities() && socket.presence_subscribed.load(Ordering::Relaxed)
            {
                socket.push(Outbound::Packet {
                    kind: PacketType::Change,
                    body: body.clone(),
                });
            }
        }
    }
}

/// What a node knows of one user's presence, and who follows them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PresenceReport {
    pub app_id: Uuid,
    pub user: String,
    /// The Identity's URL (rendered by the reporting node; clients do not read it).
    pub identity_url: String,
    pub node: Uuid,
    pub state: NodePresence,
    pub followers: Vec<String>,
}

/// What crosses from whoever causes an event to the sockets that must hear about it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Notice {
    /// A packet for every socket of these users.
    Deliver {
        app_id: Uuid,
        users: Vec<String>,
        kind: PacketType,
        bodies: Bodies,
    },
    /// These users' change logs grew.
    Changed { app_id: Uuid, users: Vec<String> },
    /// Too many users to name (or notifications were lost): every socket of the app (of all
    /// apps when `None`) re-reads its log.
    Recheck { app_id: Option<Uuid> },
    /// A session ended: close its sockets.
    SessionEnded { session: String },
    /// All sessions of a user ended (or the user was suspended).
    UserLoggedOut { app_id: Uuid, user_id: String },
    /// A node's knowledge of a user's presence changed (never stored).
    Presence(PresenceReport),
}

/// The seam between events and sockets. `Local` hands notices straight to this node's Hub; a
/// multi-node implementation publishes them (Postgres NOTIFY) and every node's listener hands
/// what it hears to its own Hub with `Hub::apply`.
#[async_trait::async_trait]
pub trait Fanout: Send + Sync {
    async fn publish(&self, notice: Notice);
    /// Publishes to the other nodes only (this node applied it already).
    async fn publish_elsewhere(&self, notice: Notice);
}

impl Hub {
    /// Acts on a notice for the sockets of this node.
    pub fn apply(&self, notice: &Notice) {
        match notice {
            Notice::Deliver {
                app_id,
                users,
                kind,
                bodies,
            } => self.deliver(*app_id, users, *kind, bodies),
            Notice::Changed { app_id, users } => self.wake(*app_id, users),
            Notice::Recheck { app_id } => self.wake_all(*app_id),
            Notice::SessionEnded { session } => self.close_session(session),
            Notice::UserLoggedOut { app_id, user_id } => self.close_user(*app_id, user_id),
            Notice::Presence(report) => self.presence_reported(report),
        }
    }
}

/// One node: notices go straight to the local Hub.
pub struct Local(pub Arc<Hub>);

#[async_trait::async_trait]
impl Fanout for Local {
    async fn publish(&self, notice: Notice) {
        self.0.apply(&notice);
    }

    async fn publish_elsewhere(&self, _notice: Notice) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(app_id: Uuid, node: Uuid, state: NodePresence) -> Notice {
        Notice::Presence(PresenceReport {
            app_id,
            user: "bob".into(),
            identity_url: "http://x/identities/bob".into(),
            node,
            state,
            followers: vec!["alice".into()],
        })
    }

    fn node(
        connected: bool,
        status: Option<&str>,
        seen: Option<i64>,
        changed: i64,
    ) -> NodePresence {
        NodePresence {
            connected,
            status: status.map(str::to_owned),
            last_seen_at: seen,
            changed_at: changed,
        }
    }

    #[test]
    fn presence_merges_what_every_node_reported() {
        let hub = Hub::new();
        let app = Uuid::new_v4();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let seen = |p: Presence| (p.status, p.last_seen_at.map(Timestamp::millis));
        assert_eq!(seen(hub.presence(app, "bob", "alice")), ("offline", None));

        // Connected on node A without a status: still offline.
        hub.apply(&report(app, a, node(true, None, None, 10)));
        assert_eq!(seen(hub.presence(app, "bob", "alice")), ("offline", None));
        // A status on node B (connected there): online, the latest status wins.
        hub.apply(&report(app, b, node(true, Some("busy"), Some(20), 20)));
        assert_eq!(seen(hub.presence(app, "bob", "alice")), ("busy", Some(20)));
        hub.apply(&report(app, a, node(true, Some("away"), Some(30), 30)));
        assert_eq!(seen(hub.presence(app, "bob", "alice")), ("away", Some(30)));
        // Node A's socket goes: online through node B, still the latest status announced.
        hub.apply(&report(app, a, node(false, Some("away"), Some(40), 40)));
        assert_eq!(seen(hub.presence(app, "bob", "alice")), ("away", Some(40)));
        // Node B's too: offline, last seen the latest.
        hub.apply(&report(app, b, node(false, Some("busy"), Some(35), 35)));
        assert_eq!(
            seen(hub.presence(app, "bob", "alice")),
            ("offline", Some(40))
        );
        // Invisible is offline to others; the user themself sees it.
        hub.apply(&report(app, b, node(true, Some("invisible"), Some(50), 50)));
        assert_eq!(
            seen(hub.presence(app, "bob", "alice")),
            ("offline", Some(50))
        );
        assert_eq!(hub.presence(app, "bob", "bob").status, "invisible");
        // Reports of another app are another user.
        assert_eq!(
            hub.presence(Uuid::new_v4(), "bob", "alice").status,
            "offline"
        );
        assert_eq!(
            hub.presence_changed_since(app, Timestamp::from_millis(45)),
            vec!["bob".to_owned()]
        );
        assert!(hub
            .presence_changed_since(app, Timestamp::from_millis(51))
            .is_empty());
    }

    #[test]
    fn auto_restores_the_status_announced_last_on_any_node() {
        let hub = Hub::new();
        let app = Uuid::new_v4();
        hub.set_status(app, "bob", "auto");
        assert_eq!(
            hub.node_presence(app, "bob").status.as_deref(),
            Some("available")
        );
        let later = Timestamp::now().millis() + 1000;
        hub.apply(&report(
            app,
            Uuid::new_v4(),
            node(true, Some("busy"), Some(later), later),
        ));
        hub.set_status(app, "bob", "auto");
        assert_eq!(
            hub.node_presence(app, "bob").status.as_deref(),
            Some("busy")
        );
    }
}
