//! The BGP finite state machine (RFC 4271 §8) as a pure function: `Fsm::handle(now, Input) -> Vec<Output>`.
//!
//! No sockets, no tasks, no clock: time comes in as `now` (any monotonic origin), timers leave as
//! `Output::Timer(id, deadline)` and come back as `Input::Timer(id)`. The tokio driver in
//! `crate::session` only performs outputs; tests run two machines against each other on virtual time.
//!
//! ```text
//!             Start                 Connected / Incoming         OPEN ok            KEEPALIVE
//!   Idle ─────────────► Connect/Active ──────────────► OpenSent ─────────► OpenConfirm ─────────► Established
//!    ▲  idle hold (back-off)       │ DelayOpen: OPEN only after the timer or the peer's OPEN          │
//!    └──────────── error, NOTIFICATION, hold expiry, close ◄──────────────────────────────────────────┘
//! ```
//!
//! Up to two TCP connections exist at once (ours and the peer's); each has its own phase and timers,
//! and the session's RFC state is the most advanced of them. Connection collisions (§6.8) are resolved
//! when a connection's OPEN arrives while the other already has the peer's OPEN: the connection opened
//! by the speaker with the higher BGP Identifier survives (the larger AS on equal Identifiers, RFC 6286
//! §2.3). A new connection facing an Established session loses, but when the Identifier rule favours it
//! the FSM first waits a little for the peer's own resolution (see `open_received`): the peer may be
//! closing the Established connection, which it only saw in OpenConfirm.
//!
//! After a connection error the session waits in Idle for an idle-hold time that doubles with each
//! consecutive failure (capped), and resets once a session stays up for `stable_time`.

pub mod msg;
pub mod negotiate;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::wire::capability::code as cap_code;
pub use crate::wire::notification::{cease, code, fsm as fsm_error, open as open_error};
pub use crate::wire::{AS_TRANS, Notification, Open};
pub use msg::{AddPathMode, Capabilities, Family, GracefulRestart, LongLivedGr, Msg};
pub use negotiate::{Negotiated, default_capabilities, local_open, negotiate, validate_open};

/// A point in time on the driver's monotonic clock (virtual in tests).
pub type Time = Duration;

/// Identifies one TCP connection of the session (allocated by the FSM).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ConnId(pub u32);

/// Who opened a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    /// We connected to the peer.
    Outgoing,
    /// The peer connected to us.
    Incoming,
}

/// The session states of RFC 4271 §8.2.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum State {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// Timers (RFC 4271 §8.1.3 and §10), per session or per connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TimerId {
    ConnectRetry,
    /// Idle hold: automatic restart after an error, with exponential back-off.
    IdleHold,
    Hold(ConnId),
    Keepalive(ConnId),
    DelayOpen(ConnId),
    /// How long a connection whose OPEN collided with an Established session waits for the peer's
    /// resolution before it is closed (see `FsmConfig::collision_wait`).
    Collision(ConnId),
}

/// What happens to the FSM (RFC 4271 §8.1 events, grouped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Input {
    /// ManualStart (event 1).
    Start,
    /// ManualStop (event 2): Cease/Administrative Shutdown with an optional RFC 8203 message.
    Stop { message: Option<String> },
    /// Cease/Administrative Reset, then start again at once.
    Reset { message: Option<String> },
    /// ManualStop with a given NOTIFICATION instead of Cease/Administrative Shutdown (e.g. Cease/Maximum
    /// Number of Prefixes Reached with its RFC 4486 §4 data); no automatic restart.
    Cease { notification: Notification },
    /// Our outgoing connection `ConnId` completed (event 17, TcpConnectionConfirmed on our side).
    Connected(ConnId),
    /// Our outgoing connection attempt failed (event 18).
    ConnectFailed(ConnId),
    /// The peer connected to us (event 16); the FSM answers `Accept(id)` or `Refuse`.
    Incoming,
    /// The connection was closed or broke (event 18).
    Closed(ConnId),
    /// A well-formed message arrived.
    Received(ConnId, Msg),
    /// A message could not be decoded: send this NOTIFICATION and drop the connection (events 21–22, 25, 28).
    Malformed(ConnId, Notification),
    /// Bytes are arriving on the connection although the driver is not reading them (back-pressure):
    /// the peer is alive, which is what the hold timer checks.
    Alive(ConnId),
    /// A timer armed by `Output::Timer` reached its deadline.
    Timer(TimerId),
    /// Ask the peer to resend its routes for a family (ROUTE-REFRESH, RFC 2918).
    Refresh(Family),
}

/// Why the session (or a connection) ended; also the "last error" of the status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cause {
    /// We sent this NOTIFICATION.
    Sent(Notification),
    /// The peer sent this NOTIFICATION.
    Received(Notification),
    /// The TCP connection closed or broke without a NOTIFICATION.
    ConnectionClosed,
    /// The outgoing TCP connection could not be opened.
    ConnectFailed,
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cause::Sent(n) => write!(f, "sent {n}"),
            Cause::Received(n) => write!(f, "received {n}"),
            Cause::ConnectionClosed => f.write_str("connection closed"),
            Cause::ConnectFailed => f.write_str("connect failed"),
        }
    }
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Output {
    /// Open an outgoing TCP connection and report `Connected(id)` / `ConnectFailed(id)`.
    Connect(ConnId),
    /// Keep the connection just reported by `Input::Incoming`, known from now on as `id`.
    Accept(ConnId),
    /// Close the connection just reported by `Input::Incoming` without reading from it.
    Refuse,
    Send(ConnId, Msg),
    /// Close the connection after what was queued for it has been written.
    Close(ConnId),
    /// Arm (`Some(deadline)`) or cancel (`None`) a timer.
    Timer(TimerId, Option<Time>),
    /// The session's RFC state changed.
    State(State),
    /// The session is up on this connection: decode and encode with these parameters.
    Established(ConnId, Box<Negotiated>),
    /// The session left Established.
    Down(Cause),
    /// The peer asked for our routes of a family again (RFC 2918; `subtype` per RFC 7313).
    RouteRefresh(Family, u8),
}

/// Configuration of one peer's state machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsmConfig {
    pub local_as: u32,
    /// The AS the peer must have; `None` accepts any (dynamic/unnumbered neighbours).
    pub peer_as: Option<u32>,
    pub router_id: std::net::Ipv4Addr,
    /// Hold time we propose, seconds (0 or ≥ 3).
    pub hold_time: u16,
    /// Keepalive interval, seconds; default one third of the negotiated hold time.
    pub keepalive: Option<u16>,
    /// ConnectRetryTime.
    pub connect_retry: Duration,
    /// Never connect; wait for the peer.
    pub passive: bool,
    /// DelayOpen (RFC 4271 §8.1.1, attribute 23).
    pub delay_open: Option<Duration>,
    /// Hold time while waiting for the peer's OPEN (RFC 4271 §8.2.2 suggests 4 minutes).
    pub open_hold_time: Duration,
    /// First idle-hold delay after an error; doubled per consecutive error up to `idle_hold_max`.
    pub idle_hold: Duration,
    pub idle_hold_max: Duration,
    /// A session up at least this long resets the back-off.
    pub stable_time: Duration,
    pub capabilities: Capabilities,
    /// Capability codes the peer must advertise, else OPEN error "Unsupported Capability" (RFC 5492 §5).
    pub required_capabilities: Vec<u8>,
    /// When the peer's OPEN arrives on a second connection while the session is Established on the
    /// other one and the BGP Identifier rule favours the new connection, how long to wait for the peer's
    /// side of the collision resolution (a NOTIFICATION or close on either connection, or a KEEPALIVE
    /// on the new one) before closing the new connection as RFC 4271 §6.8 prescribes. The peer answers
    /// our OPEN at once, so a few round trips are enough; longer only keeps a spare socket open. Zero
    /// closes it at once, as BIRD and FRR do.
    #[serde(default = "default_collision_wait")]
    pub collision_wait: Duration,
    /// Seed of the RFC 4271 §10 jitter: each ConnectRetry and idle-hold delay is multiplied by a random
    /// factor in 0.75–1.0, so two speakers with the same timers do not collide again on every retry.
    /// `None` arms the exact delays. The FSM draws from its own small generator (no clock, no OS
    /// randomness), so a seeded run on virtual time is reproducible.
    #[serde(default)]
    pub jitter_seed: Option<u64>,
}

fn default_collision_wait() -> Duration {
    Duration::from_secs(5)
}

impl FsmConfig {
    /// Defaults: hold 90 s, connect-retry 30 s, idle hold 1 s doubling up to 120 s, IPv4 unicast with the
    /// usual capabilities.
    pub fn new(local_as: u32, peer_as: u32, router_id: std::net::Ipv4Addr) -> Self {
        FsmConfig {
            local_as,
            peer_as: Some(peer_as),
            router_id,
            hold_time: 90,
            keepalive: None,
            connect_retry: Duration::from_secs(30),
            passive: false,
            delay_open: None,
            open_hold_time: Duration::from_secs(240),
            idle_hold: Duration::from_secs(1),
            idle_hold_max: Duration::from_secs(120),
            stable_time: Duration::from_secs(60),
            capabilities: default_capabilities(local_as, &[Family::IPV4_UNICAST]),
            required_capabilities: Vec::new(),
            collision_wait: default_collision_wait(),
            // Distinct speakers (and a speaker's distinct peers) draw distinct sequences.
            jitter_seed: Some(
                (u64::from(u32::from(router_id)) << 32)
                    ^ u64::from(local_as)
                    ^ (u64::from(peer_as) << 16),
            ),
        }
    }
}

/// Session status for operators (counters of messages live in the driver).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Times the session left Established.
    pub flaps: u64,
    /// Times the session reached Established.
    pub established: u64,
    /// When the current session reached Established.
    pub established_at: Option<Time>,
    pub last_error: Option<Cause>,
    /// Consecutive failures counted by the back-off.
    pub failures: u32,
    pub negotiated: Option<Negotiated>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// Outgoing TCP connect in progress.
    Connecting,
    /// TCP up, DelayOpen running: our OPEN is not sent yet.
    Connected,
    OpenSent,
    OpenConfirm,
    Established,
}

#[derive(Debug, Clone)]
struct Conn {
    id: ConnId,
    dir: Direction,
    phase: Phase,
    negotiated: Option<Negotiated>,
    last_rx: Time,
    /// Hold period in force (OPEN hold time before the OPEN, negotiated after); `None` = no hold timer.
    hold_period: Option<Duration>,
    hold: Option<Time>,
    keepalive_period: Option<Duration>,
    keepalive: Option<Time>,
    delay_open: Option<Time>,
    /// The peer's OPEN arrived (and was valid) while the other connection was Established, and the
    /// collision waits for the peer's resolution (`open_received`): what it negotiated, not yet
    /// answered with a KEEPALIVE. The connection stays in OpenSent meanwhile.
    held: Option<Box<Negotiated>>,
    /// Deadline of `TimerId::Collision` while `held`.
    held_until: Option<Time>,
}

impl Conn {
    fn new(id: ConnId, dir: Direction, phase: Phase, now: Time) -> Self {
        Conn {
            id,
            dir,
            phase,
            negotiated: None,
            last_rx: now,
            hold_period: None,
            hold: None,
            keepalive_period: None,
            keepalive: None,
            delay_open: None,
            held: None,
            held_until: None,
        }
    }
}

/// One peer's BGP state machine.
#[derive(Debug, Clone)]
pub struct Fsm {
    cfg: FsmConfig,
    conns: Vec<Conn>,
    next_id: u32,
    started: bool,
    state: State,
    connect_retry: Option<Time>,
    idle_hold: Option<Time>,
    status: Status,
    /// State of the jitter generator (splitmix64), from `FsmConfig::jitter_seed`.
    rng: u64,
}

type Out = Vec<Output>;

impl Fsm {
    pub fn new(cfg: FsmConfig) -> Self {
        Fsm {
            rng: cfg.jitter_seed.unwrap_or(0),
            cfg,
            conns: Vec::new(),
            next_id: 1,
            started: false,
            state: State::Idle,
            connect_retry: None,
            idle_hold: None,
            status: Status::default(),
        }
    }

    pub fn config(&self) -> &FsmConfig {
        &self.cfg
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn status(&self) -> &Status {
        &self.status
    }

    /// The connection carrying the Established session, if any.
    pub fn established_conn(&self) -> Option<ConnId> {
        self.conns
            .iter()
            .find(|c| c.phase == Phase::Established)
            .map(|c| c.id)
    }

    /// Number of TCP connections the FSM currently tracks (at most 2).
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Replaces our graceful restart capability's Restart State bit, restart time and per-family
    /// Forwarding State bits for the OPENs sent from now on (RFC 4724 §3: a restarting speaker sets R
    /// only while it restarts, and F says what it preserved). An OPEN already sent is not changed; the
    /// capability stays present, so what a connection negotiates is the same whichever version it
    /// sent. Returns false, changing nothing, when the configuration advertises no graceful restart.
    pub fn set_graceful_restart(&mut self, gr: GracefulRestart) -> bool {
        match self.cfg.capabilities.graceful_restart.as_mut() {
            Some(cur) => {
                *cur = gr;
                true
            }
            None => false,
        }
    }

    /// Feeds one input; returns what the driver must do, in order.
    pub fn handle(&mut self, now: Time, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::Start => self.start(now, &mut out),
            Input::Stop { message } => {
                self.shutdown(
                    now,
                    cease::ADMINISTRATIVE_SHUTDOWN,
                    message.as_deref(),
                    &mut out,
                );
                self.started = false;
                self.status.failures = 0;
            }
            Input::Cease { notification } => {
                self.shutdown_with(now, notification, &mut out);
                self.started = false;
                self.status.failures = 0;
            }
            Input::Reset { message } => {
                self.shutdown(
                    now,
                    cease::ADMINISTRATIVE_RESET,
                    message.as_deref(),
                    &mut out,
                );
                self.started = true;
                self.begin_connecting(now, &mut out);
            }
            Input::Connected(id) => self.connected(now, id, &mut out),
            Input::ConnectFailed(id) => {
                if let Some(i) = self.index(id) {
                    self.conns.remove(i);
                    self.status.last_error = Some(Cause::ConnectFailed);
                }
            }
            Input::Incoming => self.incoming(now, &mut out),
            Input::Closed(id) => {
                if self.index(id).is_some() {
                    self.drop_conn(now, id, Some(Cause::ConnectionClosed), true, &mut out);
                }
            }
            Input::Received(id, m) => self.received(now, id, m, &mut out),
            Input::Malformed(id, n) => {
                if self.index(id).is_some() {
                    self.fail(now, id, n, &mut out);
                }
            }
            Input::Alive(id) => {
                if let Some(c) = self.conn_mut(id) {
                    c.last_rx = now;
                }
            }
            Input::Timer(t) => self.timer(now, t, &mut out),
            Input::Refresh(family) => {
                if let Some(c) = self.conns.iter().find(|c| c.phase == Phase::Established)
                    && c.negotiated.as_ref().is_some_and(|n| n.route_refresh)
                {
                    out.push(Output::Send(c.id, Msg::RouteRefresh { family, subtype: 0 }));
                }
            }
        }
        self.update_state(&mut out);
        out
    }

    fn index(&self, id: ConnId) -> Option<usize> {
        self.conns.iter().position(|c| c.id == id)
    }

    fn conn_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.conns.iter_mut().find(|c| c.id == id)
    }

    fn alloc(&mut self) -> ConnId {
        let id = ConnId(self.next_id);
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }

    fn derive_state(&self) -> State {
        let best = self.conns.iter().max_by_key(|c| c.phase);
        match best {
            Some(c) => match c.phase {
                Phase::Established => State::Established,
                Phase::OpenConfirm => State::OpenConfirm,
                Phase::OpenSent => State::OpenSent,
                Phase::Connecting => State::Connect,
                Phase::Connected => match c.dir {
                    Direction::Outgoing => State::Connect,
                    Direction::Incoming => State::Active,
                },
            },
            None if !self.started || self.idle_hold.is_some() => State::Idle,
            None => State::Active,
        }
    }

    fn update_state(&mut self, out: &mut Out) {
        let s = self.derive_state();
        if s != self.state {
            self.state = s;
            out.push(Output::State(s));
        }
    }

    fn start(&mut self, now: Time, out: &mut Out) {
        if self.started && self.idle_hold.is_none() {
            return;
        }
        self.started = true;
        self.status.failures = 0;
        if self.idle_hold.take().is_some() {
            out.push(Output::Timer(TimerId::IdleHold, None));
        }
        self.begin_connecting(now, out);
    }

    /// Connect (unless passive) and arm ConnectRetry (RFC 4271 §8.2.2, Idle + ManualStart).
    fn begin_connecting(&mut self, now: Time, out: &mut Out) {
        if self.cfg.passive {
            return;
        }
        let id = self.alloc();
        self.conns
            .push(Conn::new(id, Direction::Outgoing, Phase::Connecting, now));
        out.push(Output::Connect(id));
        let d = now + self.jitter(self.cfg.connect_retry);
        self.connect_retry = Some(d);
        out.push(Output::Timer(TimerId::ConnectRetry, Some(d)));
    }

    fn connected(&mut self, now: Time, id: ConnId, out: &mut Out) {
        match self.conn_mut(id) {
            Some(c) if c.phase == Phase::Connecting => {
                c.last_rx = now;
            }
            // Abandoned meanwhile (stop, retry, or the session came up on the other connection).
            _ => {
                out.push(Output::Close(id));
                return;
            }
        }
        if self.established_conn().is_some() {
            self.conns.retain(|c| c.id != id);
            out.push(Output::Close(id));
            return;
        }
        if self.connect_retry.take().is_some() {
            out.push(Output::Timer(TimerId::ConnectRetry, None));
        }
        self.open_or_delay(now, id, out);
    }

    /// The Established connection, when it negotiated graceful restart (RFC 4724): a new connection
    /// from the peer may then be the peer coming back after a restart we did not notice.
    fn established_gr(&self) -> Option<ConnId> {
        self.conns
            .iter()
            .find(|c| c.phase == Phase::Established)
            .filter(|c| {
                c.negotiated
                    .as_ref()
                    .is_some_and(|n| n.graceful_restart.is_some())
            })
            .map(|c| c.id)
    }

    fn incoming(&mut self, now: Time, out: &mut Out) {
        // Idle refuses connections (RFC 4271 §8.2.2); so does an Established session (§6.8: the new
        // connection loses), and a third connection. With graceful restart negotiated the new connection
        // gets its OPEN exchange: a restarting peer's OPEN replaces the session (RFC 4724 §4.2, see
        // `open_received`), any other OPEN meets the usual §6.8 resolution.
        if !self.started
            || self.idle_hold.is_some()
            || self.conns.len() >= 2
            || (self.established_conn().is_some() && self.established_gr().is_none())
        {
            out.push(Output::Refuse);
            return;
        }
        let id = self.alloc();
        self.conns
            .push(Conn::new(id, Direction::Incoming, Phase::Connected, now));
        out.push(Output::Accept(id));
        self.open_or_delay(now, id, out);
    }

    fn open_or_delay(&mut self, now: Time, id: ConnId, out: &mut Out) {
        match self.cfg.delay_open {
            Some(d) if !d.is_zero() => {
                let Some(c) = self.conn_mut(id) else { return };
                c.phase = Phase::Connected;
                c.delay_open = Some(now + d);
                out.push(Output::Timer(TimerId::DelayOpen(id), Some(now + d)));
                // The OPEN hold timer also bounds how long we wait for anything at all.
                self.arm_hold(now, id, Some(self.cfg.open_hold_time), out);
            }
            _ => self.send_open(now, id, out),
        }
    }

    fn send_open(&mut self, now: Time, id: ConnId, out: &mut Out) {
        let open = local_open(&self.cfg);
        let period = self.cfg.open_hold_time;
        let Some(c) = self.conn_mut(id) else { return };
        c.phase = Phase::OpenSent;
        if c.delay_open.take().is_some() {
            out.push(Output::Timer(TimerId::DelayOpen(id), None));
        }
        out.push(Output::Send(id, Msg::Open(open)));
        self.arm_hold(now, id, Some(period), out);
    }

    fn arm_hold(&mut self, now: Time, id: ConnId, period: Option<Duration>, out: &mut Out) {
        let Some(c) = self.conn_mut(id) else { return };
        c.last_rx = now;
        c.hold_period = period;
        let d = period.map(|p| now + p);
        if c.hold != d {
            c.hold = d;
            out.push(Output::Timer(TimerId::Hold(id), d));
        }
    }

    fn received(&mut self, now: Time, id: ConnId, m: Msg, out: &mut Out) {
        let Some(phase) = self.conns.iter().find(|c| c.id == id).map(|c| c.phase) else {
            return;
        };
        match m {
            Msg::Open(open) => match phase {
                Phase::Connected => {
                    // DelayOpen running and the peer's OPEN arrived: send ours now, then answer it.
                    self.send_open(now, id, out);
                    self.open_received(now, id, open, out);
                }
                Phase::OpenSent if !self.is_held(id) => self.open_received(now, id, open, out),
                _ => self.fsm_error(now, id, phase, out),
            },
            Msg::Keepalive => match phase {
                Phase::OpenConfirm => self.establish(now, id, out),
                Phase::OpenSent if self.is_held(id) => self.peer_chose(now, id, out),
                Phase::Established => {
                    if let Some(c) = self.conn_mut(id) {
                        c.last_rx = now;
                    }
                }
                _ => self.fsm_error(now, id, phase, out),
            },
            Msg::Update => match phase {
                Phase::Established => {
                    if let Some(c) = self.conn_mut(id) {
                        c.last_rx = now;
                    }
                }
                _ => self.fsm_error(now, id, phase, out),
            },
            Msg::RouteRefresh { family, subtype } => match phase {
                Phase::Established => {
                    if let Some(c) = self.conn_mut(id) {
                        c.last_rx = now;
                    }
                    out.push(Output::RouteRefresh(family, subtype));
                }
                _ => self.fsm_error(now, id, phase, out),
            },
            Msg::Notification(n) => {
                // A collision loser told to go away is not a session failure if the other survives.
                let others = self.conns.len() > 1;
                let benign = others
                    && n.code == code::CEASE
                    && n.subcode == cease::CONNECTION_COLLISION_RESOLUTION;
                self.drop_conn(now, id, Some(Cause::Received(n)), !benign, out);
            }
        }
    }

    fn open_received(&mut self, now: Time, id: ConnId, open: Open, out: &mut Out) {
        if let Err(n) = validate_open(&self.cfg, &open) {
            self.fail(now, id, n, out);
            return;
        }
        let neg = negotiate(&self.cfg, &open);
        // RFC 4724 §4.2: the peer restarted (its OPEN sets the Restart State bit, §3) and comes back on a
        // new connection while ours still looks Established (e.g. it rebooted and no RST reached us).
        // The old connection goes without a NOTIFICATION, as a TCP failure (Down(ConnectionClosed): the
        // consumer keeps the peer's routes as stale), and the new connection proceeds. A late collision
        // is no restart: a peer that has not restarted leaves the bit clear, and one that was already
        // restarting when the Established session came up set it there too (it sets it on every OPEN
        // until its restart is over, so both colliding connections carry it). Either takes §6.8 below.
        let restarting = |g: Option<&GracefulRestart>| g.is_some_and(|g| g.restarting);
        if restarting(neg.peer_caps.graceful_restart.as_ref())
            && let Some(old) = self.established_gr().filter(|&old| {
                old != id
                    && self.conns.iter().any(|c| {
                        c.id == old
                            && c.negotiated
                                .as_ref()
                                .is_some_and(|n| !restarting(n.graceful_restart.as_ref()))
                    })
            })
        {
            self.drop_conn(now, old, Some(Cause::ConnectionClosed), false, out);
        }
        // Connection collision (RFC 4271 §6.8).
        let rival = self
            .conns
            .iter()
            .find(|c| c.id != id && matches!(c.phase, Phase::OpenConfirm | Phase::Established))
            .map(|c| (c.id, c.phase, c.dir));
        if let Some((rid, rphase, rdir)) = rival {
            let this_dir = self.conns.iter().find(|c| c.id == id).map(|c| c.dir);
            // The connection opened by the dominant speaker survives: the higher BGP Identifier, or
            // on equal Identifiers (possible between ASes) the larger AS number (RFC 6286 §2.3).
            let keep_ours = (u32::from(self.cfg.router_id), self.cfg.local_as)
                > (u32::from(open.bgp_id), neg.peer_as);
            let keep_dir = if keep_ours {
                Direction::Outgoing
            } else {
                Direction::Incoming
            };
            let new_wins = this_dir == Some(keep_dir) || rdir != keep_dir;
            let loser = match rphase {
                // §6.8 step 2 or 3 (both sides, whichever resolves, agree on the winner).
                Phase::OpenConfirm => {
                    if new_wins {
                        rid
                    } else {
                        id
                    }
                }
                // "Unless allowed via configuration, a connection collision with an existing BGP
                // connection that is in the Established state causes closing of the newly created
                // connection" (§6.8). When the Identifier rule also favours the Established one, both
                // sides agree: close the new one now.
                _ if !new_wins || self.cfg.collision_wait.is_zero() => id,
                // The Identifier rule favours the new connection. We reached Established on the other
                // one with the peer's KEEPALIVE, but the peer may still have been in OpenConfirm there
                // when our OPEN on this connection reached it; then §6.8 step 2 makes it close the
                // Established one. Closing this one now as well would kill both connections and cost
                // an idle hold on each side (and, with equal timing on every retry, again and again).
                // So the answer waits for the peer's side of the resolution: its NOTIFICATION or close
                // on this connection (it kept the Established one, as BIRD and FRR always do there),
                // or on the Established one, or a KEEPALIVE here (it kept this one; we follow, which
                // costs one flap instead of two dead connections). Without either within
                // `collision_wait` (the peer was Established too and waits as we do) this connection
                // is closed as §6.8 says. Nothing is sent meanwhile: to the peer this connection is
                // simply in OpenSent. A restarted peer's new connection (RFC 4724 §4.2) never gets
                // here: its Established rival was dropped above.
                _ => {
                    let until = now + self.cfg.collision_wait;
                    let Some(c) = self.conn_mut(id) else { return };
                    c.held = Some(Box::new(neg));
                    c.held_until = Some(until);
                    out.push(Output::Timer(TimerId::Collision(id), Some(until)));
                    return;
                }
            };
            let n = Notification::new(
                code::CEASE,
                cease::CONNECTION_COLLISION_RESOLUTION,
                Vec::new(),
            );
            out.push(Output::Send(loser, Msg::Notification(n.clone())));
            self.drop_conn(now, loser, Some(Cause::Sent(n)), false, out);
            if loser == id {
                return;
            }
        }
        self.accept_open(now, id, neg, out);
    }

    fn is_held(&self, id: ConnId) -> bool {
        self.conns.iter().any(|c| c.id == id && c.held.is_some())
    }

    /// A KEEPALIVE on a held connection: the peer resolved the collision in its favour (it is in
    /// OpenConfirm there, so it has closed or is closing the Established connection). Follow it.
    fn peer_chose(&mut self, now: Time, id: ConnId, out: &mut Out) {
        let rivals: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|c| c.id != id && c.phase >= Phase::OpenSent)
            .map(|c| c.id)
            .collect();
        for rid in rivals {
            let n = Notification::new(
                code::CEASE,
                cease::CONNECTION_COLLISION_RESOLUTION,
                Vec::new(),
            );
            out.push(Output::Send(rid, Msg::Notification(n.clone())));
            // Leaving the held connection alone answers its OPEN (`drop_conn` resumes it).
            self.drop_conn(now, rid, Some(Cause::Sent(n)), false, out);
        }
        if self
            .conns
            .iter()
            .any(|c| c.id == id && c.phase == Phase::OpenConfirm)
        {
            self.establish(now, id, out);
        }
    }

    /// Answers a held OPEN once the connection it collided with is gone.
    fn resume_held(&mut self, now: Time, out: &mut Out) {
        if self
            .conns
            .iter()
            .any(|c| matches!(c.phase, Phase::OpenConfirm | Phase::Established))
        {
            return;
        }
        let Some(c) = self.conns.iter_mut().find(|c| c.held.is_some()) else {
            return;
        };
        let id = c.id;
        let neg = c.held.take();
        if c.held_until.take().is_some() {
            out.push(Output::Timer(TimerId::Collision(id), None));
        }
        if let Some(neg) = neg {
            self.accept_open(now, id, *neg, out);
        }
    }

    /// The peer's OPEN on `id` is accepted: KEEPALIVE, negotiated hold and keepalive timers, OpenConfirm.
    fn accept_open(&mut self, now: Time, id: ConnId, neg: Negotiated, out: &mut Out) {
        let hold = (neg.hold_time > 0).then(|| Duration::from_secs(neg.hold_time.into()));
        let ka = (neg.keepalive > 0).then(|| Duration::from_secs(neg.keepalive.into()));
        out.push(Output::Send(id, Msg::Keepalive));
        self.arm_hold(now, id, hold, out);
        let Some(c) = self.conn_mut(id) else { return };
        c.phase = Phase::OpenConfirm;
        c.negotiated = Some(neg);
        c.keepalive_period = ka;
        c.keepalive = ka.map(|k| now + k);
        out.push(Output::Timer(TimerId::Keepalive(id), c.keepalive));
    }

    fn establish(&mut self, now: Time, id: ConnId, out: &mut Out) {
        let Some(c) = self.conn_mut(id) else { return };
        c.phase = Phase::Established;
        c.last_rx = now;
        let neg = c.negotiated.clone();
        // Pending outgoing attempts are no longer needed.
        let stale: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|c| c.phase == Phase::Connecting)
            .map(|c| c.id)
            .collect();
        for s in stale {
            self.conns.retain(|c| c.id != s);
            out.push(Output::Close(s));
        }
        if self.connect_retry.take().is_some() {
            out.push(Output::Timer(TimerId::ConnectRetry, None));
        }
        self.status.established += 1;
        self.status.established_at = Some(now);
        self.status.negotiated = neg.clone();
        if let Some(neg) = neg {
            out.push(Output::Established(id, Box::new(neg)));
        }
    }

    fn fsm_error(&mut self, now: Time, id: ConnId, phase: Phase, out: &mut Out) {
        let sub = match phase {
            Phase::OpenSent => fsm_error::UNEXPECTED_IN_OPENSENT,
            Phase::OpenConfirm => fsm_error::UNEXPECTED_IN_OPENCONFIRM,
            Phase::Established => fsm_error::UNEXPECTED_IN_ESTABLISHED,
            _ => fsm_error::UNSPECIFIED,
        };
        self.fail(now, id, Notification::new(code::FSM, sub, Vec::new()), out);
    }

    /// Sends `n` on `id` and drops the connection as an error.
    fn fail(&mut self, now: Time, id: ConnId, n: Notification, out: &mut Out) {
        out.push(Output::Send(id, Msg::Notification(n.clone())));
        self.drop_conn(now, id, Some(Cause::Sent(n)), true, out);
    }

    /// Closes every connection with a Cease NOTIFICATION (those that got our OPEN) and stops all timers.
    fn shutdown(&mut self, now: Time, subcode: u8, message: Option<&str>, out: &mut Out) {
        let n = match message {
            Some(m) => Notification::shutdown(subcode, m),
            None => Notification::cease(subcode),
        };
        self.shutdown_with(now, n, out);
    }

    /// Sends `n` on every connection past OpenSent and drops them all.
    fn shutdown_with(&mut self, now: Time, n: Notification, out: &mut Out) {
        // Every connection goes: a held OPEN must not be answered on the way.
        for c in &mut self.conns {
            c.held = None;
        }
        let ids: Vec<(ConnId, Phase)> = self.conns.iter().map(|c| (c.id, c.phase)).collect();
        for (id, phase) in ids {
            if phase >= Phase::OpenSent {
                out.push(Output::Send(id, Msg::Notification(n.clone())));
            }
            self.drop_conn(now, id, Some(Cause::Sent(n.clone())), false, out);
        }
        if self.connect_retry.take().is_some() {
            out.push(Output::Timer(TimerId::ConnectRetry, None));
        }
        if self.idle_hold.take().is_some() {
            out.push(Output::Timer(TimerId::IdleHold, None));
        }
    }

    /// Removes a connection. When it carried the session, reports Down; when it was the last one and
    /// `error`, the session goes Idle and restarts after the back-off delay.
    fn drop_conn(
        &mut self,
        now: Time,
        id: ConnId,
        cause: Option<Cause>,
        error: bool,
        out: &mut Out,
    ) {
        let Some(i) = self.index(id) else { return };
        let c = self.conns.remove(i);
        out.push(Output::Close(id));
        for (t, armed) in [
            (TimerId::Hold(id), c.hold.is_some()),
            (TimerId::Keepalive(id), c.keepalive.is_some()),
            (TimerId::DelayOpen(id), c.delay_open.is_some()),
            (TimerId::Collision(id), c.held_until.is_some()),
        ] {
            if armed {
                out.push(Output::Timer(t, None));
            }
        }
        if let Some(cause) = &cause {
            self.status.last_error = Some(cause.clone());
        }
        let mut stable = false;
        if c.phase == Phase::Established {
            self.status.flaps += 1;
            if let Some(at) = self.status.established_at.take() {
                stable = now.saturating_sub(at) >= self.cfg.stable_time;
            }
            out.push(Output::Down(cause.unwrap_or(Cause::ConnectionClosed)));
        }
        let live = self.conns.iter().any(|c| c.phase != Phase::Connecting);
        if error && self.started && !live {
            // Every remaining attempt goes too: the session restarts from Idle (RFC 4271 §8.2.2).
            for s in std::mem::take(&mut self.conns) {
                out.push(Output::Close(s.id));
            }
            if self.connect_retry.take().is_some() {
                out.push(Output::Timer(TimerId::ConnectRetry, None));
            }
            if stable {
                self.status.failures = 0;
            }
            self.status.failures = self.status.failures.saturating_add(1);
            let delay = self.jitter(self.backoff_delay());
            self.idle_hold = Some(now + delay);
            out.push(Output::Timer(TimerId::IdleHold, self.idle_hold));
        }
        // The connection a held OPEN collided with is gone: the collision is over.
        self.resume_held(now, out);
    }

    /// `d` times a random factor in [0.75, 1.0] (RFC 4271 §10), or `d` without a jitter seed.
    fn jitter(&mut self, d: Duration) -> Duration {
        if self.cfg.jitter_seed.is_none() {
            return d;
        }
        // splitmix64: tiny, statistically fine for spreading retries, deterministic per seed.
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        // 3/4 + r/4 with r in [0, 1] in steps of 1/1024.
        let r = (z % 1025) as u32;
        d.checked_mul(3072 + r).map_or(d, |x| x / 4096)
    }

    /// Idle hold before the next automatic start: `idle_hold × 2^(failures−1)`, capped (before the
    /// jitter, which takes up to a quarter off).
    pub fn backoff_delay(&self) -> Duration {
        let exp = self.status.failures.saturating_sub(1).min(20);
        let d = self.cfg.idle_hold.saturating_mul(1u32 << exp);
        d.min(self.cfg.idle_hold_max)
    }

    fn timer(&mut self, now: Time, t: TimerId, out: &mut Out) {
        match t {
            TimerId::ConnectRetry => {
                if self.connect_retry.is_none_or(|d| now < d) {
                    return;
                }
                self.connect_retry = None;
                if !self.started || self.conns.iter().any(|c| c.phase != Phase::Connecting) {
                    return;
                }
                for s in std::mem::take(&mut self.conns) {
                    out.push(Output::Close(s.id));
                }
                self.begin_connecting(now, out);
            }
            TimerId::IdleHold => {
                if self.idle_hold.is_none_or(|d| now < d) {
                    return;
                }
                self.idle_hold = None;
                if self.started {
                    // AutomaticStart (event 3).
                    self.begin_connecting(now, out);
                }
            }
            TimerId::Hold(id) => {
                let Some(c) = self.conn_mut(id) else { return };
                let (Some(_), Some(period)) = (c.hold, c.hold_period) else {
                    return;
                };
                let due = c.last_rx + period;
                if now < due {
                    // Messages arrived since it was armed: push the deadline out.
                    c.hold = Some(due);
                    out.push(Output::Timer(TimerId::Hold(id), Some(due)));
                    return;
                }
                c.hold = None;
                let n = Notification::new(code::HOLD_TIMER_EXPIRED, 0, Vec::new());
                self.fail(now, id, n, out);
            }
            TimerId::Keepalive(id) => {
                let Some(c) = self.conn_mut(id) else { return };
                let (Some(d), Some(period)) = (c.keepalive, c.keepalive_period) else {
                    return;
                };
                if now < d || !matches!(c.phase, Phase::OpenConfirm | Phase::Established) {
                    return;
                }
                c.keepalive = Some(now + period);
                out.push(Output::Send(id, Msg::Keepalive));
                out.push(Output::Timer(TimerId::Keepalive(id), c.keepalive));
            }
            TimerId::DelayOpen(id) => {
                let Some(c) = self.conn_mut(id) else { return };
                if c.phase != Phase::Connected || c.delay_open.is_none_or(|d| now < d) {
                    return;
                }
                self.send_open(now, id, out);
            }
            TimerId::Collision(id) => {
                let Some(c) = self.conn_mut(id) else { return };
                if c.held.is_none() || c.held_until.is_none_or(|d| now < d) {
                    return;
                }
                // No word from the peer: it kept the Established connection too (§6.8's default).
                c.held_until = None;
                let n = Notification::new(
                    code::CEASE,
                    cease::CONNECTION_COLLISION_RESOLUTION,
                    Vec::new(),
                );
                out.push(Output::Send(id, Msg::Notification(n.clone())));
                self.drop_conn(now, id, Some(Cause::Sent(n)), false, out);
            }
        }
    }
}

#[cfg(test)]
mod tests;
