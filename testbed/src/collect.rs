//! `testbed collect`: accepts a BGP session with `bgp::session` and counts (optionally records) what
//! arrives, reporting when End-of-RIB or a given number of prefixes has arrived.
//!
//! ```text
//!   peer ─TCP─► Listener ─► peer task ─► reader: frame + decode UPDATEs ─Event::Updates─► count / record
//!                                                                                          └─► Report (JSON)
//! ```

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use bgp::session::{Event, Listener, PeerHandle};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::feed::SessionSpec;

/// What arrived on one session.
#[derive(Debug, Clone)]
pub struct Report {
    pub announced: usize,
    pub withdrawn: usize,
    pub updates: usize,
    /// End-of-RIB markers seen.
    pub end_of_rib: usize,
    pub established: Option<Instant>,
    /// When the condition was met (N prefixes or End-of-RIB).
    pub done: Option<Instant>,
    /// CPU time of the collecting thread at those two moments (all of a current-thread runtime's work:
    /// socket reads, framing, decoding, the consumer).
    pub established_cpu: Option<Duration>,
    pub done_cpu: Option<Duration>,
}

/// CPU time consumed by the calling thread.
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

impl Report {
    fn new() -> Self {
        Report {
            announced: 0,
            withdrawn: 0,
            updates: 0,
            end_of_rib: 0,
            established: None,
            done: None,
            established_cpu: None,
            done_cpu: None,
        }
    }

    /// CPU seconds the collecting thread spent from Established to done.
    pub fn cpu_secs(&self) -> Option<f64> {
        Some(
            self.done_cpu?
                .saturating_sub(self.established_cpu?)
                .as_secs_f64(),
        )
    }

    /// Seconds from Established to done.
    pub fn secs(&self) -> Option<f64> {
        Some(self.done?.duration_since(self.established?).as_secs_f64())
    }
}

#[derive(Serialize)]
struct JsonReport {
    announced: usize,
    withdrawn: usize,
    updates: usize,
    end_of_rib: usize,
    secs_after_established: Option<f64>,
    prefixes_per_sec: Option<f64>,
}

/// A collecting session: the listener and the peer stay up as long as this lives.
pub struct Collector {
    pub handle: PeerHandle,
    pub listener: Listener,
    events: mpsc::Receiver<Event>,
    pub report: Report,
}

impl Collector {
    /// Listens on `spec.local` (port `spec.peer.port()`), accepting only `spec.peer`.
    pub fn start(spec: &SessionSpec) -> Result<Collector> {
        let listener = Listener::bind(&[SocketAddr::new(spec.local, spec.peer.port())])
            .with_context(|| format!("collect: listening on {}", spec.local))?;
        let (tx, rx) = mpsc::channel(256);
        let handle = PeerHandle::spawn(spec.peer_config(2), Some(&listener), tx)?;
        handle.start();
        Ok(Collector {
            handle,
            listener,
            events: rx,
            report: Report::new(),
        })
    }

    /// Consumes events until `expect` prefixes were announced (or, without `expect`, End-of-RIB), or
    /// `timeout` passes. Records `A prefix` / `W prefix` lines to `record` if given.
    pub async fn run_until(
        &mut self,
        expect: Option<usize>,
        timeout: Duration,
        mut record: Option<&mut dyn Write>,
    ) -> Result<&Report> {
        let deadline = tokio::time::Instant::now() + timeout;
        let r = &mut self.report;
        r.done = None;
        let eor_before = r.end_of_rib;
        loop {
            let ev = match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(ev)) => ev,
                Ok(None) => bail!("collect: session task ended"),
                Err(_) => bail!(
                    "collect: timed out after {timeout:?} with {} prefixes announced, {} withdrawn, state {}",
                    r.announced,
                    r.withdrawn,
                    self.handle.state()
                ),
            };
            match ev {
                Event::Established { .. } => {
                    r.established = Some(Instant::now());
                    r.established_cpu = Some(thread_cpu_time());
                }
                Event::Updates { updates, .. } => {
                    for u in &updates {
                        r.updates += 1;
                        if u.end_of_rib_family().is_some() {
                            r.end_of_rib += 1;
                            continue;
                        }
                        match record.as_mut() {
                            Some(w) => {
                                for (_, n) in u.announced() {
                                    writeln!(w, "A {}", n.prefix)?;
                                    r.announced += 1;
                                }
                                for (_, n) in u.withdrawn_routes() {
                                    writeln!(w, "W {}", n.prefix)?;
                                    r.withdrawn += 1;
                                }
                            }
                            None => {
                                r.announced += u.announced().count();
                                r.withdrawn += u.withdrawn_routes().count();
                            }
                        }
                    }
                }
                Event::RouteRefresh { .. } => {}
                Event::Down { cause, .. } => {
                    if let Some(w) = record.as_mut() {
                        w.flush()?;
                    }
                    eprintln!("collect: session down: {cause}");
                }
            }
            let done = match expect {
                Some(n) => r.announced >= n,
                None => r.end_of_rib > eor_before,
            };
            if done {
                r.done = Some(Instant::now());
                r.done_cpu = Some(thread_cpu_time());
                return Ok(&self.report);
            }
        }
    }
}

/// `testbed collect` command line.
#[derive(Debug, clap::Args)]
pub struct CollectArgs {
    /// Address to listen on (and to accept the session on).
    #[arg(long)]
    pub listen: IpAddr,
    /// The only peer accepted.
    #[arg(long)]
    pub peer: IpAddr,
    #[arg(long, default_value_t = 179)]
    pub port: u16,
    #[arg(long, default_value_t = 65002)]
    pub local_as: u32,
    #[arg(long, default_value_t = 65001)]
    pub peer_as: u32,
    /// Report once this many prefixes arrived (default: at End-of-RIB).
    #[arg(long)]
    pub expect: Option<usize>,
    /// Write `A prefix` / `W prefix` lines here.
    #[arg(long)]
    pub record: Option<std::path::PathBuf>,
    #[arg(long)]
    pub md5: Option<String>,
    /// Exit after the report instead of holding the session.
    #[arg(long)]
    pub exit: bool,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
}

pub fn run(a: CollectArgs) -> Result<()> {
    let mut spec = SessionSpec::new(a.listen, a.peer, a.local_as, a.peer_as);
    spec.peer.set_port(a.port);
    spec.passive = true;
    spec.md5 = a.md5;
    spec.extended_message = true;
    spec.families = vec![
        bgp::fsm::Family::IPV4_UNICAST,
        bgp::fsm::Family::IPV6_UNICAST,
    ];
    let mut file = match &a.record {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => None,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut c = Collector::start(&spec)?;
        loop {
            let rec = file.as_mut().map(|f| f as &mut dyn Write);
            let r = c
                .run_until(a.expect, Duration::from_secs(a.timeout), rec)
                .await?
                .clone();
            let secs = r.secs();
            let j = JsonReport {
                announced: r.announced,
                withdrawn: r.withdrawn,
                updates: r.updates,
                end_of_rib: r.end_of_rib,
                secs_after_established: secs,
                prefixes_per_sec: secs.map(|s| r.announced as f64 / s.max(1e-9)),
            };
            println!("{}", serde_json::to_string(&j)?);
            if let Some(f) = file.as_mut() {
                f.flush()?;
            }
            if a.exit || a.expect.is_some() {
                break;
            }
        }
        c.handle.stop(Some("testbed collect finished"));
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(())
    })
}

/// What an [`NsSpeaker`] has learned, as a minimal RIB would keep it.
#[derive(Debug, Clone, Default)]
pub struct Rib {
    /// Routes per (peer, prefix): the AS path and the next hop.
    pub routes: std::collections::BTreeMap<
        (bgp::session::PeerId, ipnet::IpNet),
        (Vec<u32>, Option<IpAddr>),
    >,
    pub updates: u64,
    pub established: u64,
    pub downs: Vec<(bgp::session::PeerId, bgp::fsm::Cause)>,
    /// ROUTE-REFRESH requests received from peers (each answered by announcing again).
    pub refresh_requests: u64,
    pub end_of_rib: u64,
    /// FlowSpec rules per (peer, rule) with the traffic filtering actions they carried.
    pub flows: std::collections::BTreeMap<
        (bgp::session::PeerId, bgp::wire::flowspec::FlowSpec),
        Vec<bgp::wire::flowspec::action::FlowAction>,
    >,
}

impl Rib {
    /// The route for `prefix` from any peer.
    pub fn get(&self, prefix: ipnet::IpNet) -> Option<&(Vec<u32>, Option<IpAddr>)> {
        self.routes
            .iter()
            .find(|((_, p), _)| *p == prefix)
            .map(|(_, v)| v)
    }
}

fn as_path_of(u: &bgp::wire::Update) -> Vec<u32> {
    use bgp::wire::attr::as_path::SegmentType;
    u.attrs
        .as_path
        .as_ref()
        .map(|p| {
            p.segments
                .iter()
                .filter(|s| s.kind == SegmentType::Sequence)
                .flat_map(|s| s.asns.iter().copied())
                .collect()
        })
        .unwrap_or_default()
}

fn next_hop_of(u: &bgp::wire::Update, f: bgp::fsm::Family) -> Option<IpAddr> {
    use bgp::wire::attr::mp::NextHop;
    if f == bgp::fsm::Family::IPV4_UNICAST && u.mp_reach.is_none() {
        return u.attrs.next_hop.map(IpAddr::V4);
    }
    match &u.mp_reach.as_ref()?.next_hop {
        NextHop::Ipv4(a) => Some(IpAddr::V4(*a)),
        NextHop::Ipv6 { global, .. } => Some(IpAddr::V6(*global)),
        NextHop::Other(_) => None,
    }
}

/// Our speaker running inside a namespace (a tokio runtime whose threads live there), with a consumer
/// that keeps a [`Rib`], announces each peer's routes when its session comes up and again when the peer
/// sends ROUTE-REFRESH. For interop and robustness tests.
pub struct NsSpeaker {
    rt: tokio::runtime::Runtime,
    pub handles: Vec<PeerHandle>,
    rib: std::sync::Arc<std::sync::Mutex<Rib>>,
    listener: std::sync::Arc<Listener>,
}

impl NsSpeaker {
    /// Starts a listener on `listen` and one peer per `(config, routes to announce)`, all started.
    pub fn start(
        ns: &crate::netns::Netns,
        listen: &[SocketAddr],
        peers: Vec<(bgp::session::PeerConfig, Vec<bgp::wire::Update>)>,
    ) -> Result<NsSpeaker> {
        use std::sync::{Arc, Mutex};
        // Worker threads are created here, inside the namespace, and stay in it.
        let rt = ns.run_in(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
        })??;
        let listen = listen.to_vec();
        let rib = Arc::new(Mutex::new(Rib::default()));
        let rib2 = rib.clone();
        // Everything that opens sockets runs on the runtime's (namespaced) threads.
        let (listener, handles) = rt.block_on(rt.spawn(async move {
            let listener = Arc::new(Listener::bind(&listen)?);
            let (tx, mut rx) = mpsc::channel::<Event>(1024);
            let mut handles = Vec::new();
            let mut routes = std::collections::HashMap::new();
            for (cfg, ann) in peers {
                routes.insert(cfg.id, ann);
                handles.push(PeerHandle::spawn(cfg, Some(&listener), tx.clone())?);
            }
            let by_id: std::collections::HashMap<_, _> =
                handles.iter().map(|h| (h.id(), h.clone())).collect();
            let mut families: std::collections::HashMap<
                bgp::session::PeerId,
                Vec<bgp::fsm::Family>,
            > = std::collections::HashMap::new();
            tokio::spawn(async move {
                while let Some(ev) = rx.recv().await {
                    let announce = {
                        let mut r = rib2.lock().unwrap_or_else(|e| e.into_inner());
                        match ev {
                            Event::Established { peer, negotiated } => {
                                families.insert(peer, negotiated.families.clone());
                                r.established += 1;
                                Some(peer)
                            }
                            Event::RouteRefresh { peer, .. } => {
                                r.refresh_requests += 1;
                                Some(peer)
                            }
                            Event::Down { peer, cause } => {
                                r.routes.retain(|(p, _), _| *p != peer);
                                r.flows.retain(|(p, _), _| *p != peer);
                                r.downs.push((peer, cause));
                                None
                            }
                            Event::Updates { peer, updates } => {
                                for u in &updates {
                                    r.updates += 1;
                                    if u.end_of_rib_family().is_some() {
                                        r.end_of_rib += 1;
                                    }
                                    for (_, n) in u.withdrawn_routes() {
                                        r.routes.remove(&(peer, n.prefix));
                                    }
                                    for (_, rule) in u.withdrawn_flowspec() {
                                        r.flows.remove(&(peer, rule.clone()));
                                    }
                                    let actions = u.attrs.flow_actions();
                                    for (_, rule) in u.announced_flowspec() {
                                        r.flows.insert((peer, rule.clone()), actions.clone());
                                    }
                                    let path = as_path_of(u);
                                    for (f, n) in u.announced() {
                                        r.routes.insert(
                                            (peer, n.prefix),
                                            (path.clone(), next_hop_of(u, f)),
                                        );
                                    }
                                }
                                None
                            }
                        }
                    };
                    if let (Some(peer), Some(h)) = (announce, announce.and_then(|p| by_id.get(&p)))
                    {
                        let ann: Vec<bgp::wire::Update> =
                            routes.get(&peer).cloned().unwrap_or_default();
                        let fams = families.get(&peer).cloned().unwrap_or_default();
                        let h = h.clone();
                        tokio::spawn(async move {
                            // A RIB sends only what was negotiated (RFC 4760 §7 for the others).
                            let mut all = ann;
                            for f in fams {
                                all.push(bgp::wire::Update::end_of_rib(f));
                            }
                            let _ = h.send_updates(&all).await;
                        });
                    }
                }
            });
            for h in &handles {
                h.start();
            }
            anyhow::Ok((listener, handles))
        }))??;
        Ok(NsSpeaker {
            rt,
            handles,
            rib,
            listener,
        })
    }

    pub fn rib(&self) -> Rib {
        self.rib.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn listener(&self) -> &Listener {
        &self.listener
    }

    /// Polls the RIB every 50 ms until `f` returns `Some`, or fails after `timeout` saying `what`.
    pub fn wait<T>(
        &self,
        timeout: Duration,
        what: &str,
        f: impl Fn(&Rib) -> Option<T>,
    ) -> Result<T> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = f(&self.rib()) {
                return Ok(v);
            }
            if Instant::now() > deadline {
                let st: Vec<String> = self
                    .handles
                    .iter()
                    .map(|h| format!("{:?}", h.status()))
                    .collect();
                bail!(
                    "ours: {what} not seen within {timeout:?}; peers: {st:?}; rib: {:?}",
                    self.rib()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until peer `i`'s session is Established.
    pub fn wait_established(&self, i: usize, timeout: Duration) -> Result<()> {
        let h = &self.handles[i];
        let deadline = Instant::now() + timeout;
        while h.state() != bgp::fsm::State::Established {
            if Instant::now() > deadline {
                bail!(
                    "ours: peer {i} not Established within {timeout:?}: {:?}",
                    h.status()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Runs `f` on the runtime (for async handle calls).
    pub fn block_on<T: Send + 'static>(
        &self,
        f: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Result<T> {
        Ok(self.rt.block_on(self.rt.spawn(f))?)
    }
}

impl Drop for NsSpeaker {
    fn drop(&mut self) {
        for h in &self.handles {
            h.stop(Some("test over"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
