//! One TCP connection: a reader task (framing, decoding, delivery to the consumer) and a writer task
//! (batched writes). Both are owned by the peer task, which aborts them when the FSM closes the connection.
//!
//! ```text
//!   socket ─read 256 KiB─► frame() ─┬─ UPDATE, Established ─► decode with the session Context ─► batch ─► consumer
//!                                   └─ anything else ─► peer task (FSM) ─ack(mode, events)─┘   (bounded: a full
//!                                                                                                channel stops reads)
//!   peer task ─control (unbounded)─┐
//!   PeerHandle ─data (bounded)─────┴─► writer: drain both, one write for many messages ─► socket
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};

use super::{Counters, Event, PeerId};
use crate::fsm::{ConnId, Msg};
use crate::wire::{self, Context, Message, MessageType, Notification};

/// How the reader handles what follows a control message.
#[derive(Debug)]
pub(crate) enum Mode {
    /// Keep handing every message to the peer task.
    Control,
    /// The session is up: decode UPDATEs inline with this context.
    Established(Context),
    /// Stop reading (the connection is being closed).
    Stop,
}

/// The peer task's answer to a control message: the reader's next mode. Events to deliver first are
/// in `ReaderState::owed` by then.
#[derive(Debug)]
pub(crate) struct Ack {
    pub mode: Mode,
}

/// What a reader tells the peer task.
#[derive(Debug)]
pub(crate) enum FromReader {
    Control(ConnId, Msg, oneshot::Sender<Ack>),
    Malformed(ConnId, Notification),
    Closed(ConnId),
}

/// State the reader shares with the peer task (for the hold timer under back-pressure).
#[derive(Debug, Default)]
pub(crate) struct ReaderState {
    /// Milliseconds (on the peer task's clock) of the last read that returned data.
    pub last_rx_ms: AtomicU64,
    /// The reader is waiting for the consumer (bounded channel full).
    pub paused: AtomicBool,
    /// Events the peer task produced for this connection's consumer (Established, RouteRefresh), to be
    /// delivered before the UPDATEs read next. The reader hands them over one by one; when the
    /// connection is closed first (its reader aborted), the peer task delivers what is left, so an
    /// Established always reaches the consumer before its Down.
    pub owed: std::sync::Mutex<std::collections::VecDeque<Event>>,
}

/// Converts a decoded message to the FSM's view (UPDATE contents stay behind).
pub(crate) fn to_fsm(m: Message) -> Msg {
    match m {
        Message::Open(o) => Msg::Open(o),
        Message::Update(_) => Msg::Update,
        Message::Notification(n) => Msg::Notification(n),
        Message::Keepalive => Msg::Keepalive,
        Message::RouteRefresh(r) => Msg::RouteRefresh {
            family: r.afi_safi,
            subtype: r.subtype,
        },
    }
}

const READ_CHUNK: usize = 256 * 1024;
/// UPDATEs per batch handed to the consumer (a batch is also cut at the end of each read).
const BATCH: usize = 1024;
/// Wire octets per batch: a batch is cut once its UPDATEs reach this size (so it holds at most
/// this plus one message). With the consumer's channel bounded in events, this bounds what a peer
/// can make us hold decoded between its socket and the RIB, whatever the size of its UPDATEs
/// (`ribd` keeps 32 events: at most 2 MiB of UPDATEs plus one message per event).
pub const BATCH_OCTETS: usize = 64 * 1024;

pub(crate) struct Reader {
    pub peer: PeerId,
    pub conn: ConnId,
    pub sock: OwnedReadHalf,
    pub to_task: mpsc::UnboundedSender<FromReader>,
    pub events: mpsc::Sender<Event>,
    pub counters: Arc<Counters>,
    pub state: Arc<ReaderState>,
    pub clock: tokio::time::Instant,
}

impl Reader {
    pub async fn run(mut self) {
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        let mut mode = Mode::Control;
        let mut batch: Vec<wire::Update> = Vec::new();
        // Wire octets of the UPDATEs in `batch`.
        let mut octets = 0;
        // Families disabled on this connection (RFC 4760 §7), for the rest of its life.
        let mut disabled: Vec<wire::AfiSafi> = Vec::new();
        loop {
            if buf.capacity() - buf.len() < READ_CHUNK / 4 {
                buf.reserve(READ_CHUNK);
            }
            match self.sock.read_buf(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let ms = self.clock.elapsed().as_millis() as u64;
                    self.state.last_rx_ms.store(ms, Ordering::Relaxed);
                }
            }
            loop {
                let max = match &mode {
                    Mode::Established(ctx) => ctx.max_message_len,
                    _ => wire::MAX_MESSAGE_LEN,
                };
                let len = match wire::frame(&buf, max) {
                    Ok(Some(len)) => len,
                    Ok(None) => break,
                    Err(e) => {
                        self.flush(&mut batch, &mut octets).await;
                        let _ = self
                            .to_task
                            .send(FromReader::Malformed(self.conn, e.notification()));
                        return;
                    }
                };
                let ty = buf[18];
                self.counters.count_in(ty);
                let frame = buf.split_to(len);
                if let (Mode::Established(ctx), Some(MessageType::Update)) =
                    (&mode, MessageType::from_u8(ty))
                {
                    match Message::decode(&frame, ctx) {
                        Ok(Message::Update(mut u)) => {
                            // RFC 4760 §7 / RFC 7606 §7.11 "AFI/SAFI disable" (FlowSpec families): the
                            // UPDATE that disables a family reaches the consumer (which flushes it); later
                            // routes of the family on this connection are ignored.
                            if let Some((af, _)) = &u.afi_safi_disable
                                && !disabled.contains(af)
                            {
                                disabled.push(*af);
                            }
                            if !disabled.is_empty() && !u.drop_families(&disabled) {
                                continue;
                            }
                            batch.push(u);
                            octets += len;
                            if batch.len() >= BATCH || octets >= BATCH_OCTETS {
                                self.flush(&mut batch, &mut octets).await;
                            }
                            continue;
                        }
                        Ok(_) => unreachable!("type checked above"),
                        Err(e) => {
                            self.flush(&mut batch, &mut octets).await;
                            let _ = self
                                .to_task
                                .send(FromReader::Malformed(self.conn, e.notification()));
                            return;
                        }
                    }
                }
                // Everything else goes through the FSM, in order with the UPDATEs before it.
                self.flush(&mut batch, &mut octets).await;
                let ctx = match &mode {
                    Mode::Established(ctx) => *ctx,
                    _ => Context::default(),
                };
                let msg = match Message::decode(&frame, &ctx) {
                    Ok(m) => to_fsm(m),
                    Err(e) => {
                        let _ = self
                            .to_task
                            .send(FromReader::Malformed(self.conn, e.notification()));
                        return;
                    }
                };
                let (tx, rx) = oneshot::channel();
                if self
                    .to_task
                    .send(FromReader::Control(self.conn, msg, tx))
                    .is_err()
                {
                    return;
                }
                let Ok(ack) = rx.await else { return };
                if !self.deliver_owed().await {
                    return;
                }
                match ack.mode {
                    Mode::Stop => return,
                    Mode::Control => {}
                    m @ Mode::Established(_) => mode = m,
                }
            }
            self.flush(&mut batch, &mut octets).await;
        }
        self.flush(&mut batch, &mut octets).await;
        let _ = self.to_task.send(FromReader::Closed(self.conn));
    }

    /// Hands the events the peer task left in `owed` to the consumer. Abort-safe: an event leaves the
    /// queue only together with a send that cannot wait. False when the consumer is gone.
    async fn deliver_owed(&self) -> bool {
        let owed = || self.state.owed.lock().unwrap_or_else(|e| e.into_inner());
        while !owed().is_empty() {
            let Ok(permit) = self.events.reserve().await else {
                return false;
            };
            match owed().pop_front() {
                Some(ev) => permit.send(ev),
                None => break,
            }
        }
        true
    }

    /// Hands the batch to the consumer, waiting (and so not reading the socket) while its channel is
    /// full; `octets` (the batch's wire size) starts again from zero.
    async fn flush(&mut self, batch: &mut Vec<wire::Update>, octets: &mut usize) {
        if batch.is_empty() {
            return;
        }
        *octets = 0;
        let updates = std::mem::take(batch);
        let ev = Event::Updates {
            peer: self.peer,
            updates,
        };
        match self.events.try_send(ev) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(ev)) => {
                self.state.paused.store(true, Ordering::Relaxed);
                let _ = self.events.send(ev).await;
                self.state.paused.store(false, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// Commands for a writer.
#[derive(Debug)]
pub(crate) enum WriteCmd {
    Bytes(Bytes),
    /// Write what is queued, then shut the connection down.
    Close,
}

/// What a `PeerHandle` queues for the writer.
#[derive(Debug)]
pub(crate) enum Data {
    Bytes(Bytes),
    /// Answer once everything queued before it has been written to the socket.
    Flush(oneshot::Sender<()>),
}

/// Largest amount gathered into one write.
const WRITE_BATCH: usize = 1 << 20;

pub(crate) async fn writer(
    mut sock: OwnedWriteHalf,
    mut control: mpsc::UnboundedReceiver<WriteCmd>,
    mut data: mpsc::Receiver<Data>,
) {
    let mut buf = BytesMut::new();
    let mut data_open = true;
    let mut flushed: Vec<oneshot::Sender<()>> = Vec::new();
    loop {
        // Control first (KEEPALIVE, NOTIFICATION, close), then UPDATE data.
        let cmd = tokio::select! {
            biased;
            c = control.recv() => match c {
                Some(c) => c,
                None => return,
            },
            d = data.recv(), if data_open => match d {
                Some(Data::Bytes(b)) => WriteCmd::Bytes(b),
                Some(Data::Flush(ack)) => {
                    flushed.push(ack);
                    WriteCmd::Bytes(Bytes::new())
                }
                None => {
                    data_open = false;
                    continue;
                }
            },
        };
        let mut closing = false;
        match cmd {
            WriteCmd::Bytes(b) => buf.extend_from_slice(&b),
            WriteCmd::Close => closing = true,
        }
        // Gather whatever else is already queued into the same write.
        while !closing && flushed.is_empty() && buf.len() < WRITE_BATCH {
            match control.try_recv() {
                Ok(WriteCmd::Bytes(b)) => {
                    buf.extend_from_slice(&b);
                    continue;
                }
                Ok(WriteCmd::Close) => {
                    closing = true;
                    break;
                }
                Err(_) => {}
            }
            match data.try_recv() {
                Ok(Data::Bytes(b)) => buf.extend_from_slice(&b),
                Ok(Data::Flush(ack)) => flushed.push(ack),
                Err(_) => break,
            }
        }
        if !buf.is_empty() {
            if sock.write_all(&buf).await.is_err() {
                return;
            }
            buf.clear();
        }
        for ack in flushed.drain(..) {
            let _ = ack.send(());
        }
        if closing {
            let _ = sock.shutdown().await;
            return;
        }
    }
}
