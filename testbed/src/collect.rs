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
        }
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
                Event::Established { .. } => r.established = Some(Instant::now()),
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
                Event::Down { cause, .. } => eprintln!("collect: session down: {cause}"),
            }
            let done = match expect {
                Some(n) => r.announced >= n,
                None => r.end_of_rib > eor_before,
            };
            if done {
                r.done = Some(Instant::now());
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
