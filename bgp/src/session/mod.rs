//! The tokio driver: one task per peer that performs the FSM's outputs over TCP.
//!
//! ```text
//!   PeerHandle ──Command──► peer task: Fsm::handle(now, input) → outputs ─► connect / accept / send / timers
//!       │ send_update/send_raw (bounded, straight to the writer)   │ per connection: reader + writer tasks
//!       ▼                                                          ▼
//!   writer ─► socket ◄─ reader ── Event::{Established, Updates, RouteRefresh, Down} ──► consumer (bounded)
//!   Listener (shared, per address family) ── accepted sockets by source address ──► peer task
//! ```
//!
//! Back-pressure: the consumer's channel is bounded, and so is each event's batch of UPDATEs (at most
//! [`BATCH_OCTETS`] of wire octets plus one message), so what a peer can make us hold decoded is
//! bounded whatever it sends. When the channel is full the reader waits and stops reading
//! the socket, so the kernel's receive window closes and the peer slows down; nothing is dropped. The
//! peer task never waits on the consumer while a session is up, so KEEPALIVEs still go out, and the hold
//! timer counts a connection whose reader is paused (or has read data since) as alive.
//!
//! Events of one connection reach the consumer in order: `Established`, then `Updates`/`RouteRefresh`
//! from its reader, then `Down` from the peer task after the reader has been stopped.

mod conn;
pub mod listener;
mod peer;
pub mod socket;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use crate::fsm::{Cause, ConnId, Family, FsmConfig, Negotiated, State, Status};
use crate::wire::{self, Context, Update};

pub use conn::BATCH_OCTETS;
pub use listener::{Listener, Registration};
pub use socket::{SocketOptions, TtlMode};

/// Identifies a peer in the events it produces (chosen by whoever spawns it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PeerId(pub u32);

/// Everything needed to run one peer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerConfig {
    pub id: PeerId,
    /// The peer's address and port (179 unless testing).
    pub remote: SocketAddr,
    pub fsm: FsmConfig,
    pub socket: SocketOptions,
    /// How long an outgoing connect may take.
    pub connect_timeout: Duration,
    /// Capacity of the data queue from `PeerHandle::send_*` to the socket, in chunks.
    pub send_queue: usize,
}

impl PeerConfig {
    pub fn new(id: PeerId, remote: SocketAddr, fsm: FsmConfig) -> Self {
        PeerConfig {
            id,
            remote,
            fsm,
            socket: SocketOptions::default(),
            connect_timeout: Duration::from_secs(10),
            send_queue: 64,
        }
    }
}

/// What a peer tells its consumer (the RIB).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
    Established {
        peer: PeerId,
        negotiated: Box<Negotiated>,
    },
    /// UPDATEs in arrival order (several per event to keep the channel cheap).
    Updates { peer: PeerId, updates: Vec<Update> },
    /// The peer asked for our routes again (RFC 2918 / RFC 7313 subtype).
    RouteRefresh {
        peer: PeerId,
        family: Family,
        subtype: u8,
    },
    /// The session went down: every route learned from it is gone.
    Down { peer: PeerId, cause: Cause },
}

/// Messages in and out, by BGP message type (index = type code 1..=5; 0 counts unknown types).
#[derive(Debug, Default)]
pub struct Counters {
    msgs_in: [AtomicU64; 6],
    msgs_out: [AtomicU64; 6],
}

impl Counters {
    pub(crate) fn count_in(&self, ty: u8) {
        let i = if ty <= 5 { ty as usize } else { 0 };
        self.msgs_in[i].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_out(&self, ty: u8, n: u64) {
        let i = if ty <= 5 { ty as usize } else { 0 };
        self.msgs_out[i].fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> MessageCounts {
        let get = |a: &[AtomicU64; 6]| std::array::from_fn(|i| a[i].load(Ordering::Relaxed));
        MessageCounts {
            received: get(&self.msgs_in),
            sent: get(&self.msgs_out),
        }
    }
}

/// A copy of the message counters; index = message type (1 OPEN, 2 UPDATE, 3 NOTIFICATION, 4 KEEPALIVE,
/// 5 ROUTE-REFRESH).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageCounts {
    pub received: [u64; 6],
    pub sent: [u64; 6],
}

/// A peer's state as shown to operators.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerStatus {
    pub state: State,
    /// Time since the session reached Established.
    pub uptime: Option<Duration>,
    pub flaps: u64,
    pub last_error: Option<Cause>,
    pub negotiated: Option<Negotiated>,
    pub messages: MessageCounts,
}

/// The connection UPDATEs are sent on while the session is Established.
#[derive(Debug, Clone)]
pub(crate) struct DataPath {
    pub conn: ConnId,
    pub tx: mpsc::Sender<conn::Data>,
    pub ctx: Context,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub counters: Arc<Counters>,
    pub status: Mutex<(Status, Option<tokio::time::Instant>)>,
    pub data: Mutex<Option<DataPath>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Operator commands for the peer task.
#[derive(Debug)]
pub(crate) enum Command {
    Start,
    Stop(Option<String>),
    Cease(crate::wire::Notification),
    Reset(Option<String>),
    Refresh(Family),
    GracefulRestart(crate::fsm::GracefulRestart),
}

/// Why a send failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("the session is not established")]
    NotEstablished,
    #[error("encoding the UPDATE failed: {0}")]
    Encode(#[from] wire::EncodeError),
}

/// Controls one peer; dropping every handle stops the peer task (with a Cease).
#[derive(Debug, Clone)]
pub struct PeerHandle {
    id: PeerId,
    cmd: mpsc::UnboundedSender<Command>,
    state: watch::Receiver<State>,
    shared: Arc<Shared>,
}

impl PeerHandle {
    /// Spawns the peer task (inside a tokio runtime). With a `listener`, connections from the peer's
    /// address are accepted; the peer does nothing until [`PeerHandle::start`].
    pub fn spawn(
        cfg: PeerConfig,
        listener: Option<&Listener>,
        events: mpsc::Sender<Event>,
    ) -> std::io::Result<PeerHandle> {
        let registration = match listener {
            Some(l) => Some(l.register(cfg.remote.ip(), cfg.socket.clone())?),
            None => None,
        };
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (state_tx, state_rx) = watch::channel(State::Idle);
        let shared = Arc::new(Shared {
            counters: Arc::new(Counters::default()),
            status: Mutex::new((Status::default(), None)),
            data: Mutex::new(None),
        });
        let id = cfg.id;
        tokio::spawn(
            peer::PeerTask::new(cfg, registration, events, cmd_rx, state_tx, shared.clone()).run(),
        );
        Ok(PeerHandle {
            id,
            cmd: cmd_tx,
            state: state_rx,
            shared,
        })
    }

    pub fn id(&self) -> PeerId {
        self.id
    }

    /// ManualStart: connect (unless passive) and accept the peer's connections.
    pub fn start(&self) {
        let _ = self.cmd.send(Command::Start);
    }

    /// ManualStop: Cease / Administrative Shutdown, with an RFC 8203 message if given. No restart.
    pub fn stop(&self, message: Option<&str>) {
        let _ = self.cmd.send(Command::Stop(message.map(str::to_owned)));
    }

    /// ManualStop with the given NOTIFICATION (e.g. Cease / Maximum Number of Prefixes Reached). No
    /// restart.
    pub fn cease(&self, notification: crate::wire::Notification) {
        let _ = self.cmd.send(Command::Cease(notification));
    }

    /// Cease / Administrative Reset, then start again.
    pub fn reset(&self, message: Option<&str>) {
        let _ = self.cmd.send(Command::Reset(message.map(str::to_owned)));
    }

    /// Soft inbound refresh: send ROUTE-REFRESH for `family` (if the peer supports it).
    pub fn refresh(&self, family: Family) {
        let _ = self.cmd.send(Command::Refresh(family));
    }

    /// Our graceful restart capability (R and F bits, restart time) for the OPENs of connections
    /// made from now on ([`crate::fsm::Fsm::set_graceful_restart`]); the session up stays as it is.
    /// Nothing changes when the peer's configuration advertises no graceful restart.
    pub fn set_graceful_restart(&self, gr: crate::fsm::GracefulRestart) {
        let _ = self.cmd.send(Command::GracefulRestart(gr));
    }

    pub fn state(&self) -> State {
        *self.state.borrow()
    }

    /// Waits until the session is in `want` (or the peer task ended).
    pub async fn wait_for(&self, want: State) -> bool {
        let mut rx = self.state.clone();
        rx.wait_for(|s| *s == want).await.is_ok()
    }

    /// A receiver of state changes.
    pub fn watch_state(&self) -> watch::Receiver<State> {
        self.state.clone()
    }

    pub fn status(&self) -> PeerStatus {
        let (st, since) = lock(&self.shared.status).clone();
        PeerStatus {
            state: self.state(),
            uptime: since.map(|t| t.elapsed()),
            flaps: st.flaps,
            last_error: st.last_error,
            negotiated: st.negotiated,
            messages: self.shared.counters.snapshot(),
        }
    }

    /// The codec context of the Established session.
    pub fn context(&self) -> Option<Context> {
        lock(&self.shared.data).as_ref().map(|d| d.ctx)
    }

    /// Encodes and queues UPDATEs on the Established session (split to the negotiated message size),
    /// waiting while the send queue is full.
    pub async fn send_updates(&self, updates: &[Update]) -> Result<(), SendError> {
        let path = lock(&self.shared.data)
            .clone()
            .ok_or(SendError::NotEstablished)?;
        let mut buf = BytesMut::new();
        let mut n = 0;
        for u in updates {
            n += u.encode_split(&path.ctx, &mut buf)?;
        }
        self.shared.counters.count_out(2, n as u64);
        path.tx
            .send(conn::Data::Bytes(buf.freeze()))
            .await
            .map_err(|_| SendError::NotEstablished)
    }

    /// Queues pre-encoded messages (whole BGP messages, e.g. many UPDATEs) on the Established session,
    /// waiting while the send queue is full. The caller is responsible for encoding them with
    /// [`PeerHandle::context`].
    pub async fn send_raw(&self, bytes: Bytes) -> Result<(), SendError> {
        let path = lock(&self.shared.data)
            .clone()
            .ok_or(SendError::NotEstablished)?;
        let mut i = 0;
        while i + wire::HEADER_LEN <= bytes.len() {
            let len = usize::from(u16::from_be_bytes([bytes[i + 16], bytes[i + 17]]));
            self.shared.counters.count_out(bytes[i + 18], 1);
            i += len.max(wire::HEADER_LEN);
        }
        path.tx
            .send(conn::Data::Bytes(bytes))
            .await
            .map_err(|_| SendError::NotEstablished)
    }

    /// Waits until everything queued with `send_*` so far has been written to the socket (e.g. before
    /// [`PeerHandle::stop`], which otherwise closes without waiting for queued UPDATEs).
    pub async fn flush(&self) -> Result<(), SendError> {
        let path = lock(&self.shared.data)
            .clone()
            .ok_or(SendError::NotEstablished)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        path.tx
            .send(conn::Data::Flush(tx))
            .await
            .map_err(|_| SendError::NotEstablished)?;
        rx.await.map_err(|_| SendError::NotEstablished)
    }
}

#[cfg(test)]
mod tests;
