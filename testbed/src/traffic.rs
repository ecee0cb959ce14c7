//! Many-flow UDP traffic with sequence numbers: a paced sender in one namespace, a receiver in another,
//! and per-flow accounting of what arrived (loss, the longest run of consecutive losses).
//!
//! ```text
//!   Sender (thread setns'd into src): flows × UDP sockets, source ports base..base+flows
//!        │ payload = magic, flow, seq  (round-robin over flows, paced to a total rate)
//!        ▼
//!   Receiver (thread setns'd into dst): one socket on PORT, per-flow count / last seq / longest gap
//! ```
//! Every flow is its own 5-tuple, so ECMP hashing spreads them over the members of a group.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

const MAGIC: u32 = 0x7462_6631; // "tbf1"

/// Spawns a thread whose network namespace is `ns_path` (a /var/run/netns/NAME handle) and runs `f`.
pub fn spawn_in<T: Send + 'static>(
    ns_path: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<Result<T>>> {
    let file = File::open(ns_path).with_context(|| format!("opening {ns_path}"))?;
    Ok(std::thread::spawn(move || {
        // SAFETY: setns on a valid namespace fd affects only this thread.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            bail!("setns: {}", std::io::Error::last_os_error());
        }
        Ok(f())
    }))
}

/// What one flow saw at the receiver.
#[derive(Clone, Debug, Default)]
pub struct FlowRx {
    pub received: u64,
    /// Highest sequence number seen + 1.
    pub next_seq: u64,
    /// Longest run of sequence numbers that never arrived before a later one did.
    pub longest_gap: u64,
    /// When the last packet of this flow arrived.
    pub last_rx: Option<Instant>,
    /// Packets per TOS / traffic class octet as received (DSCP = octet >> 2), when the socket reports it.
    pub tos: BTreeMap<u8, u64>,
}

/// A UDP receiver counting per flow.
pub struct Receiver {
    stop: Arc<AtomicBool>,
    flows: Arc<Mutex<BTreeMap<u32, FlowRx>>>,
    thread: Option<JoinHandle<Result<Result<()>>>>,
}

impl Receiver {
    /// Listens on `bind` inside namespace `ns_path`.
    pub fn start(ns_path: &str, bind: SocketAddr) -> Result<Receiver> {
        let stop = Arc::new(AtomicBool::new(false));
        let flows: Arc<Mutex<BTreeMap<u32, FlowRx>>> = Arc::default();
        let (tx, rx) = std::sync::mpsc::channel();
        let (s2, f2) = (stop.clone(), flows.clone());
        let thread = spawn_in(ns_path, move || -> Result<()> {
            let sock = match UdpSocket::bind(bind) {
                Ok(s) => {
                    let _ = tx.send(Ok(()));
                    s
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return Ok(());
                }
            };
            sock.set_read_timeout(Some(Duration::from_millis(50)))?;
            recv_tos_on(&sock, bind.is_ipv4())?;
            let mut buf = [0u8; 2048];
            while !s2.load(Ordering::Relaxed) {
                let Some((n, tos)) = recv_with_tos(&sock, &mut buf) else {
                    continue;
                };
                if n < 16 || u32::from_be_bytes(buf[0..4].try_into()?) != MAGIC {
                    continue;
                }
                let flow = u32::from_be_bytes(buf[4..8].try_into()?);
                let seq = u64::from_be_bytes(buf[8..16].try_into()?);
                let mut m = f2.lock().unwrap_or_else(|e| e.into_inner());
                let f = m.entry(flow).or_default();
                f.received += 1;
                if seq >= f.next_seq {
                    f.longest_gap = f.longest_gap.max(seq - f.next_seq);
                    f.next_seq = seq + 1;
                }
                f.last_rx = Some(Instant::now());
                if let Some(t) = tos {
                    *f.tos.entry(t).or_default() += 1;
                }
            }
            Ok(())
        })?;
        rx.recv_timeout(Duration::from_secs(5))
            .context("receiver thread did not start")?
            .with_context(|| format!("binding the receiver to {bind}"))?;
        Ok(Receiver {
            stop,
            flows,
            thread: Some(thread),
        })
    }

    /// A copy of the per-flow counters so far.
    pub fn snapshot(&self) -> BTreeMap<u32, FlowRx> {
        self.flows.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn stop(mut self) -> BTreeMap<u32, FlowRx> {
        self.halt();
        self.snapshot()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Asks the kernel to report each datagram's TOS (IPv4) or traffic class (IPv6) octet.
fn recv_tos_on(sock: &UdpSocket, v4: bool) -> Result<()> {
    let one: libc::c_int = 1;
    let (level, opt) = if v4 {
        (libc::IPPROTO_IP, libc::IP_RECVTOS)
    } else {
        (libc::IPPROTO_IPV6, libc::IPV6_RECVTCLASS)
    };
    // SAFETY: setsockopt with a valid fd and a c_int option value.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            opt,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        bail!(
            "setsockopt(IP_RECVTOS/IPV6_RECVTCLASS): {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// One datagram into `buf` with its TOS / traffic class octet; `None` on timeout or error.
fn recv_with_tos(sock: &UdpSocket, buf: &mut [u8]) -> Option<(usize, Option<u8>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut cbuf = [0u64; 16];
    // SAFETY: msghdr is plain data; every pointer set below outlives the recvmsg call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cbuf);
    // SAFETY: recvmsg on a valid fd with the buffers above.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return None;
    }
    let mut tos = None;
    // SAFETY: walking the control messages the kernel wrote into cbuf, with the libc macros.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            let (level, ty) = ((*c).cmsg_level, (*c).cmsg_type);
            let data = libc::CMSG_DATA(c);
            if level == libc::IPPROTO_IP && ty == libc::IP_TOS {
                tos = Some(*data);
            } else if level == libc::IPPROTO_IPV6 && ty == libc::IPV6_TCLASS {
                tos = Some(std::ptr::read_unaligned(data.cast::<libc::c_int>()) as u8);
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Some((n as usize, tos))
}

/// A paced sender of `flows` UDP flows.
pub struct Sender {
    stop: Arc<AtomicBool>,
    sent: Arc<Mutex<Vec<u64>>>,
    thread: Option<JoinHandle<Result<Result<()>>>>,
    pub flows: u32,
    pub pps: u32,
}

impl Sender {
    /// Sends from namespace `ns_path` to `dst`, source ports `base_port..base_port+flows`, `pps`
    /// packets per second in total, `size` bytes of payload, until stopped.
    pub fn start(
        ns_path: &str,
        dst: SocketAddr,
        base_port: u16,
        flows: u32,
        pps: u32,
        size: usize,
    ) -> Result<Sender> {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(Mutex::new(vec![0u64; flows as usize]));
        let (s2, sent2) = (stop.clone(), sent.clone());
        let thread = spawn_in(ns_path, move || -> Result<()> {
            let any: IpAddr = if dst.is_ipv4() {
                IpAddr::from([0u8; 4])
            } else {
                IpAddr::from([0u16; 8])
            };
            let socks = (0..flows)
                .map(|i| {
                    let s = UdpSocket::bind(SocketAddr::new(any, base_port + i as u16))?;
                    s.connect(dst)?;
                    Ok(s)
                })
                .collect::<Result<Vec<_>>>()
                .context("binding the sender's sockets")?;
            let mut buf = vec![0u8; size.max(16)];
            buf[0..4].copy_from_slice(&MAGIC.to_be_bytes());
            let interval = Duration::from_secs_f64(1.0 / pps.max(1) as f64);
            let start = Instant::now();
            let mut k: u64 = 0;
            let mut seq = vec![0u64; flows as usize];
            while !s2.load(Ordering::Relaxed) {
                let due = start + interval.mul_f64(k as f64);
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                let i = (k % flows as u64) as usize;
                buf[4..8].copy_from_slice(&(i as u32).to_be_bytes());
                buf[8..16].copy_from_slice(&seq[i].to_be_bytes());
                // A send error (no route for a moment, ENOBUFS) counts as sent and lost.
                let _ = socks[i].send(&buf);
                seq[i] += 1;
                if k.is_multiple_of(64) || s2.load(Ordering::Relaxed) {
                    sent2
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .copy_from_slice(&seq);
                }
                k += 1;
            }
            sent2
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .copy_from_slice(&seq);
            Ok(())
        })?;
        Ok(Sender {
            stop,
            sent,
            thread: Some(thread),
            flows,
            pps,
        })
    }

    /// Packets sent per flow so far (updated every 64 packets).
    pub fn sent(&self) -> Vec<u64> {
        self.sent.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stops sending and returns the exact per-flow counts.
    pub fn stop(mut self) -> Result<Vec<u64>> {
        self.halt()?;
        Ok(self.sent())
    }

    fn halt(&mut self) -> Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join()
                .map_err(|_| anyhow::anyhow!("sender thread panicked"))???;
        }
        Ok(())
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let _ = self.halt();
    }
}

/// Sent vs received, over every flow.
#[derive(Clone, Debug)]
pub struct LossReport {
    pub flows: u32,
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    /// Flows that received nothing at all.
    pub dead_flows: u32,
    /// The longest run of consecutive losses in any one flow, in packets of that flow.
    pub longest_gap: u64,
    /// That gap as time: packets of one flow are `flows / pps` seconds apart.
    pub longest_gap_ms: f64,
}

impl LossReport {
    pub fn new(sent: &[u64], rx: &BTreeMap<u32, FlowRx>, pps: u32) -> LossReport {
        let flows = sent.len() as u32;
        let total_sent: u64 = sent.iter().sum();
        let received: u64 = rx.values().map(|f| f.received).sum();
        let dead_flows = (0..flows)
            .filter(|i| rx.get(i).is_none_or(|f| f.received == 0))
            .count() as u32;
        // Losses at the tail of a flow (after its last received packet) count as a gap too.
        let longest_gap = (0..flows)
            .map(|i| {
                let f = rx.get(&i).cloned().unwrap_or_default();
                f.longest_gap
                    .max(sent[i as usize].saturating_sub(f.next_seq))
            })
            .max()
            .unwrap_or(0);
        let per_flow_interval_ms = 1000.0 * flows as f64 / pps.max(1) as f64;
        LossReport {
            flows,
            sent: total_sent,
            received,
            lost: total_sent.saturating_sub(received),
            dead_flows,
            longest_gap,
            longest_gap_ms: longest_gap as f64 * per_flow_interval_ms,
        }
    }

    pub fn loss_percent(&self) -> f64 {
        if self.sent == 0 {
            0.0
        } else {
            100.0 * self.lost as f64 / self.sent as f64
        }
    }
}

impl std::fmt::Display for LossReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} flows: sent {}, received {}, lost {} ({:.2}%), longest gap in one flow {} packets (~{:.0} ms), flows with nothing received {}",
            self.flows,
            self.sent,
            self.received,
            self.lost,
            self.loss_percent(),
            self.longest_gap,
            self.longest_gap_ms,
            self.dead_flows
        )
    }
}
