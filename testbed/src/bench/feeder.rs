//! Feeders as processes (`testbed bench-feeder`, hidden): each opens one session from the feed
//! namespace, sends a pre-encoded stream file and holds the session, so the benchmark can stop it
//! (NOTIFICATION), freeze it (SIGSTOP: no more keepalives, the hold timer expires), reset it (SO_LINGER 0
//! then SIGKILL: the kernel answers with a TCP RST) or take its link down.
//!
//! ```text
//!   parent ──stdin: send FILE | stop | reset | quit──► bench-feeder ──bgp::session──► system under test
//!   parent ◄─stdout: "established NS", "queued NS", "send-start NS", "sent NS", "stopped NS", "down NS"
//!                    (CLOCK_MONOTONIC ns)
//! ```
//!
//! `send FILE` (the churn section) reads a further stream of whole messages, stamps `send-start`, writes
//! it to the session and stamps `sent` once the last octet is in the socket.

use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use bgp::fsm::{Family, State};
use tokio::sync::mpsc as tmpsc;

use super::mono_ns;
use crate::feed::SessionSpec;

/// `testbed bench-feeder` command line.
#[derive(Debug, Clone, clap::Args)]
pub struct FeederArgs {
    /// File of whole BGP messages to send once Established.
    #[arg(long)]
    pub stream: PathBuf,
    #[arg(long)]
    pub local: IpAddr,
    #[arg(long)]
    pub peer: IpAddr,
    #[arg(long)]
    pub local_as: u32,
    #[arg(long)]
    pub peer_as: u32,
    #[arg(long, default_value_t = 90)]
    pub hold_time: u16,
    /// Also negotiate IPv6 unicast (MP-BGP over the IPv4 session).
    #[arg(long)]
    pub v6: bool,
}

fn say(what: &str) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{what} {}", mono_ns());
    let _ = o.flush();
}

/// Every socket of this process gets SO_LINGER {on, 0}: closing it (at exit) sends a RST.
fn linger_zero_all() {
    let Ok(rd) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    for e in rd.flatten() {
        let Ok(fd) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let is_socket = std::fs::read_link(e.path())
            .map(|l| l.to_string_lossy().starts_with("socket:"))
            .unwrap_or(false);
        if is_socket {
            let _ = bgp::session::socket::set_linger_zero(fd);
        }
    }
}

/// Runs the feeder process.
pub fn run(a: FeederArgs) -> Result<()> {
    let bytes = std::fs::read(&a.stream)
        .with_context(|| format!("reading the stream {}", a.stream.display()))?;
    let chunks = super::table::split_messages(&bytes, 1 << 20);
    drop(bytes);
    let mut spec = SessionSpec::new(a.local, a.peer, a.local_as, a.peer_as);
    spec.hold_time = a.hold_time;
    spec.extended_message = false;
    if a.v6 {
        spec.families = vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST];
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let (ltx, mut lrx) = tmpsc::unbounded_channel::<String>();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(l) = line else { break };
                if ltx.send(l).is_err() {
                    break;
                }
            }
        });
        let (tx, rx) = tmpsc::channel(64);
        let h = bgp::session::PeerHandle::spawn(spec.peer_config(1), None, tx)?;
        tokio::spawn(async move {
            let mut rx = rx;
            while rx.recv().await.is_some() {}
        });
        h.start();
        tokio::time::timeout(Duration::from_secs(120), h.wait_for(State::Established))
            .await
            .with_context(|| format!("no session with {} within 120 s", a.peer))?;
        say("established");
        let mut state = h.watch_state();
        for c in chunks {
            h.send_raw(c).await?;
        }
        h.flush().await?;
        say("queued");
        let mut was_up = true;
        loop {
            tokio::select! {
                line = lrx.recv() => match line.as_deref().map(str::trim) {
                    Some("stop") => {
                        h.stop(Some("testbed bench: failover"));
                        say("stopped");
                    }
                    Some("reset") => {
                        linger_zero_all();
                        // SAFETY: kill(2) on ourselves; the kernel closes the sockets with RST.
                        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
                    }
                    Some(l) if l.starts_with("send ") => {
                        let path = l["send ".len()..].trim();
                        let bytes = match std::fs::read(path) {
                            Ok(b) => b,
                            Err(e) => {
                                eprintln!("bench-feeder: reading {path}: {e}");
                                continue;
                            }
                        };
                        let chunks = super::table::split_messages(&bytes, 1 << 20);
                        drop(bytes);
                        say("send-start");
                        for c in chunks {
                            h.send_raw(c).await?;
                        }
                        h.flush().await?;
                        say("sent");
                    }
                    Some("quit") | None => break,
                    Some(other) => eprintln!("bench-feeder: unknown command {other:?}"),
                },
                ch = state.changed() => {
                    if ch.is_err() {
                        break;
                    }
                    let up = *state.borrow() == State::Established;
                    if was_up && !up {
                        say("down");
                    }
                    was_up = up;
                }
            }
        }
        h.stop(Some("testbed bench done"));
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok(())
    })
}

/// A running feeder process (killed on drop).
pub struct FeederProc {
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    rx: mpsc::Receiver<(String, u64)>,
    /// Events already read (tag, mono ns).
    pub events: Vec<(String, u64)>,
    log: PathBuf,
}

impl FeederProc {
    /// Starts `testbed bench-feeder` inside namespace `ns`.
    pub fn spawn(name: &str, ns: &str, args: &FeederArgs, log: PathBuf) -> Result<FeederProc> {
        let exe = super::exe()?;
        let err = std::fs::File::create(&log)?;
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/var/run/netns/{ns}"))
            .arg("--")
            .arg(exe)
            .arg("bench-feeder")
            .args(["--stream", &a_str(&args.stream)])
            .args(["--local", &args.local.to_string()])
            .args(["--peer", &args.peer.to_string()])
            .args(["--local-as", &args.local_as.to_string()])
            .args(["--peer-as", &args.peer_as.to_string()])
            .args(["--hold-time", &args.hold_time.to_string()]);
        if args.v6 {
            cmd.arg("--v6");
        }
        cmd.process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(err);
        let mut child = cmd.spawn().context("starting bench-feeder")?;
        let stdout = child.stdout.take().context("feeder stdout")?;
        let stdin = child.stdin.take();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(l) = line else { break };
                let mut it = l.split_whitespace();
                if let (Some(tag), Some(ns)) = (it.next(), it.next().and_then(|n| n.parse().ok()))
                    && tx.send((tag.to_string(), ns)).is_err()
                {
                    break;
                }
            }
        });
        Ok(FeederProc {
            name: name.to_string(),
            child,
            stdin,
            rx,
            events: Vec::new(),
            log,
        })
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits for event `tag` (or returns it if already seen); its CLOCK_MONOTONIC time.
    pub fn wait(&mut self, tag: &str, timeout: Duration) -> Result<u64> {
        if let Some((_, t)) = self.events.iter().find(|(t, _)| t == tag) {
            return Ok(*t);
        }
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.rx.recv_timeout(left) {
                Ok((t, ns)) => {
                    self.events.push((t.clone(), ns));
                    if t == tag {
                        return Ok(ns);
                    }
                }
                Err(_) => {
                    let st = self.child.try_wait().ok().flatten();
                    bail!(
                        "feeder {}: no {tag:?} within {timeout:?} (process {}; log {}):\n{}",
                        self.name,
                        st.map(|s| s.to_string())
                            .unwrap_or_else(|| "running".into()),
                        self.log.display(),
                        crate::peers::tail(&self.log, 10)
                    );
                }
            }
        }
    }

    /// Event `tag` if it has arrived by now (no waiting).
    pub fn try_event(&mut self, tag: &str) -> Option<u64> {
        while let Ok(ev) = self.rx.try_recv() {
            self.events.push(ev);
        }
        self.events
            .iter()
            .find(|(t, _)| t == tag)
            .map(|(_, ns)| *ns)
    }

    /// Sends a command line (`send FILE`, `stop`, `reset`, `quit`).
    pub fn command(&mut self, cmd: &str) -> Result<()> {
        let s = self.stdin.as_mut().context("feeder stdin closed")?;
        writeln!(s, "{cmd}")?;
        s.flush()?;
        Ok(())
    }

    /// SIGSTOP / SIGCONT the feeder.
    pub fn signal(&self, sig: libc::c_int) -> Result<()> {
        crate::peers::signal(self.pid(), sig)
    }
}

fn a_str(p: &std::path::Path) -> String {
    p.display().to_string()
}

impl Drop for FeederProc {
    fn drop(&mut self) {
        let _ = crate::peers::signal(-self.pid(), libc::SIGKILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
