//! The in-process registry of live sockets, keyed by app and user (several per user), and the
//! ephemeral presence of the users connected to this node.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch, Notify};
use uuid::Uuid;

use super::packet::{Bodies, Outbound, PacketType};
use crate::store::Timestamp;
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
    queue: mpsc::Sender<Outbound>,
    close: watch::Sender<Option<Close>>,
    /// Poked when the user's change log may have grown (the delivery task reads it).
    pub wake: Notify,
}

impl Socket {
    /// Queues a packet. A full queue closes the socket (`Close::OVERFLOW`): a consumer that slow
    /// gets a fresh start rather than unbounded memory.
    pub fn push(&self, packet: Outbound) -> bool {
        match self.queue.try_send(packet) {
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
                    permit.send(packet);
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
    pub queue: mpsc::Receiver<Outbound>,
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

/// Status values a client may set; `auto` restores the last one (or `available`).
pub const STATUSES: [&str; 6] = ["auto", "available", "away", "busy", "offline", "invisible"];

#[derive(Default)]
pub struct Hub {
    sockets: Mutex<HashMap<UserKey, Vec<Arc<Socket>>>>,
    presence: Mutex<HashMap<UserKey, PresenceState>>,
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
        Arc::new(Hub::default())
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

    /// Wakes the delivery of these users' sockets (their change logs grew).
    pub fn wake(&self, app_id: Uuid, users: &[String]) {
        for socket in self.sockets_of(app_id, users) {
            socket.wake.notify_one();
        }
    }

    /// Wakes every socket (of one app, or all): notifications may have been lost.
    pub fn wake_all(&self, app_id: Option<Uuid>) {
        for socket in lock(&self.sockets).values().flatten() {
            if app_id.is_none_or(|app| app == socket.app_id) {
                socket.wake.notify_one();
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

    /// Applies `Presence.update`'s status (one of `STATUSES`).
    pub fn set_status(&self, app_id: Uuid, user_id: &str, status: &str) {
        let now = Timestamp::now();
        let mut presence = lock(&self.presence);
        let state = presence
            .entry((app_id, user_id.to_owned()))
            .or_insert(PresenceState {
                status: None,
                last_seen_at: None,
                changed_at: now,
            });
        let status = match (status, &state.status) {
            ("auto", Some(previous)) => previous.clone(),
            ("auto", None) => "available".to_owned(),
            (status, _) => status.to_owned(),
        };
        state.status = Some(status);
        state.last_seen_at = Some(now);
        state.changed_at = now;
    }

    /// A user's presence as `viewer` sees it: offline without a live socket or an announced
    /// status; `invisible` only to the user themself.
    pub fn presence(&self, app_id: Uuid, user_id: &str, viewer: &str) -> Presence {
        let state = lock(&self.presence)
            .get(&(app_id, user_id.to_owned()))
            .cloned();
        let last_seen_at = state.as_ref().and_then(|s| s.last_seen_at);
        let status = match state.and_then(|s| s.status) {
            Some(status) if self.is_connected(app_id, user_id) => status,
            _ => "offline".to_owned(),
        };
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

    /// Users of the app whose presence changed at or after `since`.
    pub fn presence_changed_since(&self, app_id: Uuid, since: Timestamp) -> Vec<String> {
        lock(&self.presence)
            .iter()
            .filter(|((app, _), state)| *app == app_id && state.changed_at >= since)
            .map(|((_, user), _)| user.clone())
            .collect()
    }
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
}

/// The seam between events and sockets. `Local` hands notices straight to this node's Hub; a
/// multi-node implementation publishes them (Postgres NOTIFY) and every node's listener hands
/// what it hears to its own Hub with `Hub::apply`.
#[async_trait::async_trait]
pub trait Fanout: Send + Sync {
    async fn publish(&self, notice: Notice);
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
}
