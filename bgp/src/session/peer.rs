//! The peer task: feeds the FSM and performs its outputs. It never blocks on the consumer or on a
//! socket while a session runs, so timers fire on time.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::conn::{Ack, FromReader, Mode, ReaderState, WriteCmd};
use super::{Command, DataPath, Event, PeerConfig, Shared, lock, socket};
use crate::fsm::{ConnId, Fsm, Input, Msg, Output, State, TimerId};
use crate::wire::{Context, Message, RouteRefresh};

/// Time a closing connection gets to flush its last NOTIFICATION.
const CLOSE_GRACE: Duration = Duration::from_secs(3);

struct ConnIo {
    control: mpsc::UnboundedSender<WriteCmd>,
    data_tx: mpsc::Sender<super::conn::Data>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
    state: Arc<ReaderState>,
    fd: std::os::fd::RawFd,
    ctx: Context,
    /// The hold-timer liveness (ms) last reported to the FSM.
    reported_rx_ms: u64,
}

enum Internal {
    ConnectResult(ConnId, io::Result<TcpStream>),
}

pub(crate) struct PeerTask {
    cfg: PeerConfig,
    fsm: Fsm,
    clock: Instant,
    timers: HashMap<TimerId, Instant>,
    conns: HashMap<ConnId, ConnIo>,
    connecting: HashMap<ConnId, JoinHandle<()>>,
    pending_incoming: Option<TcpStream>,
    registration: Option<super::Registration>,
    events: mpsc::Sender<Event>,
    cmd_rx: mpsc::UnboundedReceiver<Command>,
    state_tx: watch::Sender<State>,
    shared: Arc<Shared>,
    internal_tx: mpsc::UnboundedSender<Internal>,
    internal_rx: mpsc::UnboundedReceiver<Internal>,
    reader_tx: mpsc::UnboundedSender<FromReader>,
    reader_rx: mpsc::UnboundedReceiver<FromReader>,
    /// Events to deliver through a reader's ack (they must precede its next UPDATEs).
    ack_events: Vec<Event>,
    ack_mode: Option<Mode>,
    /// Events from the task itself (Down), waiting for room in the consumer's channel. Readers' acks
    /// wait behind them so that the consumer sees every event in order.
    pending: VecDeque<Event>,
    deferred_acks: Vec<(ConnId, oneshot::Sender<Ack>, Ack, Vec<Event>)>,
}

impl PeerTask {
    pub fn new(
        cfg: PeerConfig,
        registration: Option<super::Registration>,
        events: mpsc::Sender<Event>,
        cmd_rx: mpsc::UnboundedReceiver<Command>,
        state_tx: watch::Sender<State>,
        shared: Arc<Shared>,
    ) -> Self {
        let (internal_tx, internal_rx) = mpsc::unbounded_channel();
        let (reader_tx, reader_rx) = mpsc::unbounded_channel();
        PeerTask {
            fsm: Fsm::new(cfg.fsm.clone()),
            cfg,
            clock: Instant::now(),
            timers: HashMap::new(),
            conns: HashMap::new(),
            connecting: HashMap::new(),
            pending_incoming: None,
            registration,
            events,
            cmd_rx,
            state_tx,
            shared,
            internal_tx,
            internal_rx,
            reader_tx,
            reader_rx,
            ack_events: Vec::new(),
            ack_mode: None,
            pending: VecDeque::new(),
            deferred_acks: Vec::new(),
        }
    }

    fn now(&self) -> Duration {
        self.clock.elapsed()
    }

    pub async fn run(mut self) {
        loop {
            let next_timer = self.timers.values().min().copied();
            let events = self.events.clone();
            tokio::select! {
                cmd = self.cmd_rx.recv() => match cmd {
                    Some(c) => self.command(c).await,
                    None => {
                        // Every handle is gone: stop the session and end.
                        self.input(Input::Stop { message: None }).await;
                        break;
                    }
                },
                Some(i) = self.internal_rx.recv() => match i {
                    Internal::ConnectResult(id, res) => {
                        self.connecting.remove(&id);
                        match res {
                            Ok(stream) => {
                                // Attached first: if the FSM no longer wants it, its Close tears it down.
                                self.attach(id, stream);
                                self.input(Input::Connected(id)).await;
                            }
                            Err(_) => self.input(Input::ConnectFailed(id)).await,
                        }
                    }
                },
                Some(r) = self.reader_rx.recv() => self.reader_message(r).await,
                Some(stream) = recv_incoming(&mut self.registration) => {
                    self.pending_incoming = Some(stream);
                    self.input(Input::Incoming).await;
                    if let Some(s) = self.pending_incoming.take() {
                        refuse(s);
                    }
                },
                _ = sleep_opt(next_timer) => self.fire_timers().await,
                Some(permit) = reserve_if(&events, !self.pending.is_empty()) => {
                    if let Some(ev) = self.pending.pop_front() {
                        permit.send(ev);
                    }
                    if self.pending.is_empty() {
                        for (id, tx, ack, events) in std::mem::take(&mut self.deferred_acks) {
                            self.send_ack(id, tx, ack, events);
                        }
                    }
                }
            }
        }
        for (_, c) in self.connecting.drain() {
            c.abort();
        }
        for ev in self.pending.drain(..) {
            let _ = self.events.try_send(ev);
        }
    }

    async fn command(&mut self, c: Command) {
        match c {
            Command::Start => self.input(Input::Start).await,
            Command::Stop(m) => self.input(Input::Stop { message: m }).await,
            Command::Cease(n) => self.input(Input::Cease { notification: n }).await,
            Command::Reset(m) => self.input(Input::Reset { message: m }).await,
            Command::Refresh(f) => self.input(Input::Refresh(f)).await,
            Command::GracefulRestart(gr) => {
                if self.fsm.set_graceful_restart(gr.clone()) {
                    self.cfg.fsm.capabilities.graceful_restart = Some(gr);
                }
            }
        }
    }

    async fn reader_message(&mut self, r: FromReader) {
        match r {
            FromReader::Control(id, msg, ack) => {
                self.ack_events.clear();
                self.ack_mode = None;
                if let Some(c) = self.conns.get_mut(&id) {
                    c.reported_rx_ms = c.state.last_rx_ms.load(Ordering::Relaxed);
                }
                self.input(Input::Received(id, msg)).await;
                let mode = match self.ack_mode.take() {
                    Some(m) => m,
                    None if self.conns.contains_key(&id) => Mode::Control,
                    None => Mode::Stop,
                };
                let events = std::mem::take(&mut self.ack_events);
                if self.pending.is_empty() {
                    self.send_ack(id, ack, Ack { mode }, events);
                } else {
                    self.deferred_acks.push((id, ack, Ack { mode }, events));
                }
            }
            FromReader::Malformed(id, n) => self.input(Input::Malformed(id, n)).await,
            FromReader::Closed(id) => self.input(Input::Closed(id)).await,
        }
    }

    /// Answers a reader: its events go into its `owed` queue (it delivers them before reading on), or
    /// to the task's own queue when the connection is already closed.
    fn send_ack(&mut self, id: ConnId, tx: oneshot::Sender<Ack>, ack: Ack, events: Vec<Event>) {
        match self.conns.get(&id) {
            Some(c) => {
                lock(&c.state.owed).extend(events);
                let _ = tx.send(ack);
            }
            None => self.pending.extend(events),
        }
    }

    async fn fire_timers(&mut self) {
        let now = Instant::now();
        let due: Vec<TimerId> = self
            .timers
            .iter()
            .filter(|(_, d)| **d <= now)
            .map(|(t, _)| *t)
            .collect();
        for t in due {
            self.timers.remove(&t);
            if let TimerId::Hold(id) = t {
                self.report_liveness(id).await;
            }
            self.input(Input::Timer(t)).await;
        }
    }

    /// Before the hold timer decides, tell the FSM about data the reader saw without the FSM (UPDATEs
    /// decoded inline) or could not read because the consumer is slow.
    async fn report_liveness(&mut self, id: ConnId) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        // Paused on the consumer: the peer is alive if anything is waiting in the socket.
        let paused = c.state.paused.load(Ordering::Relaxed);
        let waiting = paused && socket::pending_bytes(c.fd).unwrap_or(0) > 0;
        let rx = c.state.last_rx_ms.load(Ordering::Relaxed);
        let newer = rx > c.reported_rx_ms;
        c.reported_rx_ms = c.reported_rx_ms.max(rx);
        if waiting {
            let now = self.now();
            self.input_at(now, Input::Alive(id)).await;
        } else if newer {
            self.input_at(Duration::from_millis(rx), Input::Alive(id))
                .await;
        }
    }

    async fn input(&mut self, i: Input) {
        let now = self.now();
        self.input_at(now, i).await;
    }

    async fn input_at(&mut self, now: Duration, i: Input) {
        let outputs = self.fsm.handle(now, i);
        for o in outputs {
            self.perform(o).await;
        }
        let mut st = lock(&self.shared.status);
        st.0 = self.fsm.status().clone();
    }

    fn attach(&mut self, id: ConnId, stream: TcpStream) {
        let fd = stream.as_raw_fd();
        let (rd, wr) = stream.into_split();
        let (control, control_rx) = mpsc::unbounded_channel();
        let (data_tx, data_rx) = mpsc::channel(self.cfg.send_queue.max(1));
        let state = Arc::new(ReaderState::default());
        let reader = super::conn::Reader {
            peer: self.cfg.id,
            conn: id,
            sock: rd,
            to_task: self.reader_tx.clone(),
            events: self.events.clone(),
            counters: self.shared.counters.clone(),
            state: state.clone(),
            clock: self.clock,
        };
        let reader = tokio::spawn(reader.run());
        let writer = tokio::spawn(super::conn::writer(wr, control_rx, data_rx));
        self.conns.insert(
            id,
            ConnIo {
                control,
                data_tx,
                reader,
                writer,
                state,
                fd,
                ctx: Context::default(),
                reported_rx_ms: 0,
            },
        );
    }

    async fn perform(&mut self, o: Output) {
        match o {
            Output::Connect(id) => {
                let remote = self.cfg.remote;
                let opts = self.cfg.socket.clone();
                let timeout = self.cfg.connect_timeout;
                let tx = self.internal_tx.clone();
                let h = tokio::spawn(async move {
                    let r = socket::connect(remote, &opts, timeout).await;
                    let _ = tx.send(Internal::ConnectResult(id, r));
                });
                self.connecting.insert(id, h);
            }
            Output::Accept(id) => {
                if let Some(s) = self.pending_incoming.take() {
                    self.attach(id, s);
                }
            }
            Output::Refuse => {
                if let Some(s) = self.pending_incoming.take() {
                    refuse(s);
                }
            }
            Output::Send(id, msg) => {
                let Some(c) = self.conns.get(&id) else { return };
                let ty = msg.type_code();
                let m = match msg {
                    Msg::Open(o) => Message::Open(o),
                    Msg::Keepalive => Message::Keepalive,
                    Msg::Notification(n) => Message::Notification(n),
                    Msg::RouteRefresh { family, subtype } => Message::RouteRefresh(RouteRefresh {
                        afi_safi: family,
                        subtype,
                        orf: Vec::new(),
                    }),
                    Msg::Update => return,
                };
                let mut buf = BytesMut::with_capacity(64);
                if m.encode(&c.ctx, &mut buf).is_ok() {
                    self.shared.counters.count_out(ty, 1);
                    let _ = c.control.send(WriteCmd::Bytes(buf.freeze()));
                }
            }
            Output::Close(id) => {
                if let Some(h) = self.connecting.remove(&id) {
                    h.abort();
                }
                if let Some(c) = self.conns.remove(&id) {
                    {
                        let mut d = lock(&self.shared.data);
                        if d.as_ref().is_some_and(|d| d.conn == id) {
                            *d = None;
                        }
                    }
                    let _ = c.control.send(WriteCmd::Close);
                    c.reader.abort();
                    let _ = c.reader.await;
                    // Events its reader had not handed over yet (e.g. Established, when the other
                    // connection's KEEPALIVE closes this one right after): they precede everything
                    // queued since, and the Down that follows.
                    let owed = std::mem::take(&mut *lock(&c.state.owed));
                    for ev in owed.into_iter().rev() {
                        self.pending.push_front(ev);
                    }
                    let mut i = 0;
                    while i < self.deferred_acks.len() {
                        if self.deferred_acks[i].0 == id {
                            let (.., events) = self.deferred_acks.remove(i);
                            self.pending.extend(events);
                        } else {
                            i += 1;
                        }
                    }
                    let writer = c.writer;
                    tokio::spawn(async move {
                        let abort = writer.abort_handle();
                        if tokio::time::timeout(CLOSE_GRACE, writer).await.is_err() {
                            abort.abort();
                        }
                    });
                }
            }
            Output::Timer(t, d) => match d {
                Some(d) => {
                    let at = self.clock + d;
                    self.timers.insert(t, at);
                }
                None => {
                    self.timers.remove(&t);
                }
            },
            Output::State(s) => {
                let _ = self.state_tx.send(s);
            }
            Output::Established(id, neg) => {
                let ctx = neg.context();
                if let Some(c) = self.conns.get_mut(&id) {
                    c.ctx = ctx;
                    *lock(&self.shared.data) = Some(DataPath {
                        conn: id,
                        tx: c.data_tx.clone(),
                        ctx,
                    });
                }
                lock(&self.shared.status).1 = Some(Instant::now());
                self.ack_mode = Some(Mode::Established(ctx));
                self.ack_events.push(Event::Established {
                    peer: self.cfg.id,
                    negotiated: neg,
                });
            }
            Output::RouteRefresh(family, subtype) => {
                self.ack_events.push(Event::RouteRefresh {
                    peer: self.cfg.id,
                    family,
                    subtype,
                });
            }
            Output::Down(cause) => {
                lock(&self.shared.status).1 = None;
                // The reader of the session was stopped by the Close before this, so the consumer gets
                // Down after all of its UPDATEs; queued, so a full channel never stalls the timers.
                self.pending.push_back(Event::Down {
                    peer: self.cfg.id,
                    cause,
                });
            }
        }
    }
}

/// Closes a connection we do not want, with a RST and without reading from it.
fn refuse(s: TcpStream) {
    let _ = socket::set_linger_zero(s.as_raw_fd());
    drop(s);
}

async fn recv_incoming(reg: &mut Option<super::Registration>) -> Option<TcpStream> {
    match reg {
        Some(r) => r.incoming.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

async fn reserve_if(tx: &mpsc::Sender<Event>, cond: bool) -> Option<mpsc::Permit<'_, Event>> {
    if cond {
        tx.reserve().await.ok()
    } else {
        std::future::pending().await
    }
}
