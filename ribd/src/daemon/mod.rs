//! The daemon: one task owns the RIB and everything it feeds; sessions, the API and signals talk to it
//! over channels.
//!
//! ```text
//!   bgp::session peer tasks ──Event (bounded: back-pressure)──┐
//!   API server (axum, Unix socket / TCP) ──Request + oneshot──┤
//!   signals (SIGHUP reload, SIGTERM/SIGINT stop) ─────────────┤
//!   timers (GR stale, max-prefix restart) ────────────────────┤
//!                                                             ▼
//!                                     Core: import → Rib → FIB deltas → dataplane
//! ```
//!
//! The core is synchronous: a batch of events is applied completely (RIB, then dataplane) before the
//! next is read, so API answers always see a consistent state.

mod core;
pub mod dataplane;
mod memory;
pub mod metrics;
mod restart;
pub mod server;

pub use core::{Core, Request, Response};

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result};
use bgp::session::{Event, Listener};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::config::Loaded;

/// Capacity of the channel from the sessions to the core, in events. An event carries at most
/// [`bgp::session::BATCH_OCTETS`] of UPDATEs (plus one message), so all peers together hold at most
/// ~2 MiB of wire octets decoded in the queue; a full queue stops the readers and TCP pushes back
/// on the peers. A full-table load decodes far faster than the RIB takes it in, so with a deeper
/// queue much of the table waited here decoded: with 1,024 events of up to 1,024 UPDATEs each the
/// scaled table's load peaked at 669 MiB RSS, with this queue at 525 MiB (docs/ARCHITECTURE.md,
/// "Memory during a load"). A few events keep the core busy while the readers decode the next
/// batches.
const EVENT_QUEUE: usize = 32;

/// Command-line options that are not in the config file.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub config_path: PathBuf,
    /// Remove pinned maps and XDP links on exit (default: keep forwarding).
    pub flush_on_exit: bool,
}

/// Runs the daemon until SIGTERM/SIGINT.
pub async fn run(loaded: Loaded, opts: Options) -> Result<()> {
    let listener = Listener::bind(&loaded.config.listen)
        .with_context(|| format!("listening for BGP on {:?}", loaded.config.listen))?;
    let (events_tx, mut events) = mpsc::channel::<Event>(EVENT_QUEUE);
    let (req_tx, mut requests) = mpsc::channel::<Request>(64);

    let mut core = Core::new(loaded, opts.clone(), listener, events_tx)?;
    let servers = server::start(&core.loaded().config.api, req_tx.clone()).await?;
    core.start_peers();
    notify_ready();
    tracing::info!(peers = core.peer_count(), "ribd running");

    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let netlink = match core.dataplane_event_fd() {
        // SAFETY: `fd` is our own duplicate of the resolver's netlink socket; nothing else closes it
        // while the AsyncFd owns it.
        Some(fd) => Some(
            unsafe { tokio::io::unix::AsyncFd::register(fd) }
                .map_err(|e| anyhow::anyhow!("watching netlink events: {e}"))?,
        ),
        None => None,
    };
    loop {
        tokio::select! {
            ready = async {
                match &netlink {
                    Some(a) => a.readable().await.map(|mut g| g.clear_ready()),
                    None => std::future::pending().await,
                }
            } => {
                if ready.is_ok() {
                    core.poll_dataplane();
                }
            }
            Some(ev) = events.recv() => {
                core.on_event(ev);
                // Drain what is already queued before doing the per-batch work once.
                for _ in 0..256 {
                    match events.try_recv() {
                        Ok(ev) => core.on_event(ev),
                        Err(_) => break,
                    }
                }
                core.flush();
                core.after_events();
            }
            Some(req) = requests.recv() => core.on_request(req),
            _ = tick.tick() => core.on_tick(),
            _ = hup.recv() => {
                let msg = core.reload();
                tracing::info!("SIGHUP: {msg}");
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    tracing::info!("shutting down: sending Cease/Administrative Shutdown to peers");
    core.shutdown().await;
    drop(servers);
    Ok(())
}

/// Tells systemd we are ready (Type=notify), when NOTIFY_SOCKET is set.
fn notify_ready() {
    let Ok(path) = std::env::var("NOTIFY_SOCKET") else {
        return;
    };
    let path = match path.strip_prefix('@') {
        Some(abstract_name) => format!("\0{abstract_name}"),
        None => path,
    };
    if let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() {
        let _ = sock.send_to(b"READY=1", path);
    }
}
