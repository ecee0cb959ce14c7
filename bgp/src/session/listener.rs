//! The shared passive side: one listening socket per address family for every peer, dispatching each
//! accepted connection to the session task of the peer with that source address.
//!
//! ```text
//!   SYN ─► [IPv4 listener] ─┐           peers: HashMap<IpAddr, Sender<TcpStream>>
//!   SYN ─► [IPv6 listener] ─┴─ accept ─► known source? ─yes─► peer's options on the socket ─► peer task
//!                                                     └─no──► SO_LINGER 0 + close (RST), nothing read
//! ```
//!
//! TCP-MD5 keys are installed on the listeners per peer address when the peer registers, so the kernel
//! verifies the SYN before accept(); a wrong or missing signature never reaches user space.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::socket::{self, SocketOptions};

/// Accepted connections queued for one peer before its task takes them.
const PER_PEER_BACKLOG: usize = 4;

struct PeerEntry {
    tx: mpsc::Sender<TcpStream>,
    opts: SocketOptions,
}

struct Inner {
    peers: Mutex<HashMap<IpAddr, PeerEntry>>,
    /// Raw fds of the listening sockets (for per-peer MD5 keys), with their address family.
    fds: Vec<(std::os::fd::RawFd, bool)>,
    refused: AtomicU64,
    accepted: AtomicU64,
}

/// A listening BGP endpoint shared by every configured peer.
pub struct Listener {
    inner: Arc<Inner>,
    tasks: Vec<JoinHandle<()>>,
    local: Vec<SocketAddr>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("local", &self.local)
            .finish()
    }
}

/// Connections for one registered peer; unregisters (and removes its MD5 key) on drop.
pub struct Registration {
    pub incoming: mpsc::Receiver<TcpStream>,
    peer: IpAddr,
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("peer", &self.peer)
            .finish()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let had_key = lock(&self.inner.peers)
            .remove(&self.peer)
            .is_some_and(|e| e.opts.md5_key.is_some());
        if had_key {
            for &(fd, _) in &self.inner.fds {
                let _ = socket::set_md5(fd, self.peer, None);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Strips the v4-mapped form an IPv6 socket reports for IPv4 peers.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

impl Listener {
    /// Listens on each of `addrs` (e.g. `0.0.0.0:179` and `[::]:179`). IPv6 sockets are IPv6-only so
    /// both families can share a port. Must be called inside a tokio runtime.
    pub fn bind(addrs: &[SocketAddr]) -> io::Result<Listener> {
        let mut listeners = Vec::new();
        let mut fds = Vec::new();
        let mut local = Vec::new();
        for &addr in addrs {
            let sock = if addr.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                let s = TcpSocket::new_v6()?;
                socket::set_v6only(s.as_raw_fd())?;
                s
            };
            sock.set_reuseaddr(true)?;
            sock.bind(addr).map_err(|e| {
                io::Error::new(e.kind(), format!("binding BGP listener {addr}: {e}"))
            })?;
            let l = sock.listen(1024)?;
            fds.push((l.as_raw_fd(), addr.is_ipv6()));
            local.push(l.local_addr()?);
            listeners.push(l);
        }
        let inner = Arc::new(Inner {
            peers: Mutex::new(HashMap::new()),
            fds,
            refused: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
        });
        let tasks = listeners
            .into_iter()
            .map(|l| tokio::spawn(accept_loop(l, inner.clone())))
            .collect();
        Ok(Listener {
            inner,
            tasks,
            local,
        })
    }

    /// The bound addresses (with the real port when 0 was asked for).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local
    }

    /// Connections refused because their source was not a configured peer.
    pub fn refused(&self) -> u64 {
        self.inner.refused.load(Ordering::Relaxed)
    }

    /// Connections handed to a peer.
    pub fn accepted(&self) -> u64 {
        self.inner.accepted.load(Ordering::Relaxed)
    }

    /// Accepts connections from `peer` from now on, with `opts` (MD5 key on the listeners, TTL/GTSM on
    /// each accepted socket). Fails if the peer is already registered.
    pub fn register(&self, peer: IpAddr, opts: SocketOptions) -> io::Result<Registration> {
        let peer = canonical(peer);
        let mut peers = lock(&self.inner.peers);
        if peers.contains_key(&peer) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("peer {peer} is already registered on the listener"),
            ));
        }
        for &(fd, v6) in &self.inner.fds {
            if peer.is_ipv6() && !v6 {
                continue;
            }
            if let Some(key) = opts.md5_key.as_deref().filter(|k| !k.is_empty()) {
                socket::set_md5(fd, peer, Some(key))?;
            }
            // The SYN-ACK leaves from the listener: a GTSM peer drops it unless it carries TTL 255. (Multihop
            // peers need nothing here: the default TTL reaches them.) 255 is harmless for every other peer.
            if matches!(opts.ttl, socket::TtlMode::Gtsm { .. }) {
                socket::set_ttl(fd, 255)?;
            }
        }
        let (tx, rx) = mpsc::channel(PER_PEER_BACKLOG);
        peers.insert(peer, PeerEntry { tx, opts });
        Ok(Registration {
            incoming: rx,
            peer,
            inner: self.inner.clone(),
        })
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn accept_loop(l: TcpListener, inner: Arc<Inner>) {
    loop {
        let (stream, from) = match l.accept().await {
            Ok(x) => x,
            // EMFILE/ENFILE/ECONNABORTED: back off briefly instead of spinning.
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let ip = canonical(from.ip());
        let target = lock(&inner.peers)
            .get(&ip)
            .map(|e| (e.tx.clone(), e.opts.clone()));
        match target {
            Some((tx, opts)) if socket::configure_connected(&stream, &opts).is_ok() => {
                if tx.try_send(stream).is_ok() {
                    inner.accepted.fetch_add(1, Ordering::Relaxed);
                } else {
                    inner.refused.fetch_add(1, Ordering::Relaxed);
                }
            }
            _ => {
                // Not a peer: reset without reading a byte.
                let _ = socket::set_linger_zero(stream.as_raw_fd());
                drop(stream);
                inner.refused.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
