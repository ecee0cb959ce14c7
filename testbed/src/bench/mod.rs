//! `testbed bench`: ribd side by side with BIRD 2, FRR and GoBGP on the same feed, in one run, as ratios
//! (issue 12). Every figure is repeated and reported as median and min, next to the machine's load.
//!
//! ```text
//!   tablegen (seeded) ──encode once──► DIR/feed-K.bgp (pre-packed UPDATEs, End-of-RIB)
//!        │
//!   feed netns: `testbed bench-feeder` processes (one per upstream; SIGSTOP/SIGKILL-able)
//!        │ veth eK ── fK
//!   dut netns: the system under test (ribd + XDP | BIRD + kernel table | FRR bgpd + zebra | GoBGP)
//!        ▲ polled: RIB/FIB counts (API, birdc, vtysh, gobgp, /proc/net/fib_triestat), RSS (/proc/PID/status)
//!        │ sampled lookups (XDP program via BPF_PROG_TEST_RUN on the pinned maps | `ip route get`)
//!   results DIR/bench-<time>.json ──`--doc`──► docs/BENCHMARKS.md
//! ```
//!
//! Sections: `ingest` (time from Established to all prefixes in the RIB and in the FIB/dataplane, RSS),
//! `churn` (after the table, a pre-encoded mix of withdrawals, re-announcements and attribute changes;
//! time until absorbed, changes/s), `failover` (two upstreams, one fails; time until the dead next-hop
//! is unused and until everything uses the survivor), `forward` (`testbed fwd-bench`: packets/s of the
//! XDP forwarder against kernel forwarding, and the forwarder's BPF_PROG_TEST_RUN ns/packet).
//!
//! `--skip SYSTEM:TEXT[=REASON]` leaves a system out of every case whose "section: case" contains TEXT
//! (e.g. `gobgp:4 feeders`), and records that it did and why.

pub mod churn;
pub mod churn_stream;
pub mod failover;
pub mod feeder;
pub mod forward;
pub mod ingest;
pub mod probe;
pub mod report;
pub mod sut;
pub mod table;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

pub use sut::SutKind;

/// `testbed bench` command line.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Sections to run: ingest, churn, failover, forward (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "ingest")]
    pub sections: Vec<String>,
    /// Systems under test: ribd, bird, frr, gobgp (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "ribd,bird,frr,gobgp")]
    pub systems: Vec<String>,
    /// `real`: the real 512,621-prefix IPv4 table (pyasn 2014, real paths); `scaled`: 1.05M IPv4 +
    /// 240k IPv6 grown from it.
    #[arg(long, default_value = "real")]
    pub table: String,
    /// Use only the first N IPv4 prefixes (a quick run); IPv6 is scaled down in proportion.
    #[arg(long)]
    pub prefixes: Option<usize>,
    /// Upstream feeders announcing the same table, one ingest case per value (e.g. `1,4`); churn uses
    /// one, failover two.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub feeders: Vec<usize>,
    /// Prefix-level changes in the churn stream (withdrawals, re-announcements, attribute changes).
    #[arg(long, default_value_t = 100_000)]
    pub churn: usize,
    /// Leave SYSTEM out of the cases whose "section: case" contains TEXT: `SYSTEM:TEXT[=REASON]`
    /// (e.g. `gobgp:4 feeders=takes over 10 min`); recorded in the results.
    #[arg(long)]
    pub skip: Vec<String>,
    /// Repetitions per system and case; medians and minimums are reported.
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Failover kinds: notification, frozen, kill, linkdown.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "notification,frozen,kill,linkdown"
    )]
    pub failures: Vec<String>,
    /// Failover modes: backup (best + backup), ecmp.
    #[arg(long, value_delimiter = ',', default_value = "backup,ecmp")]
    pub modes: Vec<String>,
    /// Hold time (s) the system under test uses towards the feeders (the frozen-peer case waits for it).
    #[arg(long, default_value_t = 3)]
    pub hold_time: u16,
    /// Prefixes sampled by failover lookups.
    #[arg(long, default_value_t = 1000)]
    pub samples: usize,
    /// Poll interval for counts (ms).
    #[arg(long, default_value_t = 25)]
    pub poll_ms: u64,
    /// Frames per run of the forward section (fwd-bench `--packets`).
    #[arg(long, default_value_t = 2_000_000)]
    pub packets: u32,
    /// Where JSON results go.
    #[arg(long, default_value = "target/bench-results")]
    pub results: PathBuf,
    /// Write docs/BENCHMARKS.md (this path) from the results of this run (and of `--merge` files).
    #[arg(long)]
    pub doc: Option<PathBuf>,
    /// Earlier result files to include in `--doc` (e.g. the ingest and failover runs done separately).
    #[arg(long, value_delimiter = ',')]
    pub merge: Vec<PathBuf>,
    /// Only regenerate `--doc` from `--merge` files; run nothing.
    #[arg(long)]
    pub doc_only: bool,
}

/// One measured quantity of one system in one case, over the repetitions.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Figure {
    pub section: String,
    /// e.g. "real 512,621 IPv4, 1 feeder" or "ecmp / linkdown".
    pub case: String,
    pub system: String,
    /// e.g. "rib_secs", "fib_secs", "peak_rss_mib".
    pub metric: String,
    pub unit: String,
    pub values: Vec<f64>,
    pub median: Option<f64>,
    pub min: Option<f64>,
    /// Load average (1 min) at each repetition.
    pub load: Vec<f64>,
    pub note: String,
}

/// Everything one `testbed bench` run measured.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct RunResults {
    pub started_utc: String,
    pub command: String,
    pub machine: Machine,
    pub uptime_before: String,
    pub uptime_after: String,
    pub figures: Vec<Figure>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Machine {
    pub kernel: String,
    pub cpus: usize,
    pub cpu_model: String,
    pub mem_total_mib: u64,
    pub versions: Vec<(String, String)>,
    pub git_rev: String,
}

impl RunResults {
    /// Adds (or extends) the figure for (section, case, system, metric) with one repetition's value.
    pub fn push(&mut self, key: (&str, &str, &str, &str, &str), value: f64, note: &str) {
        let (section, case, system, metric, unit) = key;
        let load = load1();
        let f = match self.figures.iter_mut().find(|f| {
            f.section == section && f.case == case && f.system == system && f.metric == metric
        }) {
            Some(f) => f,
            None => {
                self.figures.push(Figure {
                    section: section.into(),
                    case: case.into(),
                    system: system.into(),
                    metric: metric.into(),
                    unit: unit.into(),
                    values: Vec::new(),
                    median: None,
                    min: None,
                    load: Vec::new(),
                    note: String::new(),
                });
                self.figures.last_mut().expect("just pushed")
            }
        };
        f.values.push(value);
        f.load.push(load);
        f.median = median(&f.values);
        f.min = f.values.iter().copied().reduce(f64::min);
        if !note.is_empty() && !f.note.contains(note) {
            if !f.note.is_empty() {
                f.note.push_str("; ");
            }
            f.note.push_str(note);
        }
    }

    pub fn get(&self, section: &str, case: &str, system: &str, metric: &str) -> Option<&Figure> {
        self.figures.iter().find(|f| {
            f.section == section && f.case == case && f.system == system && f.metric == metric
        })
    }
}

static EXE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// The testbed executable the feeders and ribd are started from: a copy taken at the start of the run,
/// so rebuilding the workspace during a long run does not pull the binary from under it.
pub fn exe() -> Result<PathBuf> {
    match EXE.get() {
        Some(p) => Ok(p.clone()),
        None => std::env::current_exe().context("current executable"),
    }
}

/// Starts feeders and ribd from `path` (a testbed executable) instead of a copy of the running one:
/// for tests, whose own executable is the test harness. Call before [`run`].
pub fn set_exe(path: PathBuf) {
    let _ = EXE.set(path);
}

/// Median of the values (mean of the middle two for an even count).
pub fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    Some(if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    })
}

/// CLOCK_MONOTONIC in nanoseconds: one clock for this process and the feeder processes.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Seconds between two `mono_ns` readings.
pub fn secs(from: u64, to: u64) -> f64 {
    to.saturating_sub(from) as f64 / 1e9
}

/// `uptime`'s load part ("load average: a, b, c").
pub fn uptime() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| {
            let v: Vec<&str> = s.split_whitespace().take(3).collect();
            format!("load average: {}", v.join(", "))
        })
        .unwrap_or_default()
}

/// CPU time of a process so far, whole and by thread, from /proc (seconds).
#[derive(Debug, Clone, Default)]
pub struct CpuTimes {
    /// The process, exited threads included.
    pub total: f64,
    /// Live threads: (thread id, name, CPU seconds, seconds spent waiting for a CPU).
    pub threads: Vec<(i32, String, f64, f64)>,
}

impl CpuTimes {
    pub fn of(pid: i32) -> CpuTimes {
        // SAFETY: sysconf only reads a constant.
        let tck = (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).max(1) as f64;
        // utime + stime of a /proc stat line (fields 14 and 15; the name may hold spaces).
        let cpu = |stat: &str| -> Option<(String, f64)> {
            let (open, close) = (stat.find('(')?, stat.rfind(')')?);
            let f: Vec<&str> = stat[close + 2..].split_whitespace().collect();
            let t = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            Some((stat[open + 1..close].to_string(), t / tck))
        };
        let mut c = CpuTimes::default();
        if let Some((_, t)) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| cpu(&s))
        {
            c.total = t;
        }
        let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return c;
        };
        for e in dir.flatten() {
            let Ok(tid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Some((name, t)) = std::fs::read_to_string(e.path().join("stat"))
                .ok()
                .and_then(|s| cpu(&s))
            else {
                continue;
            };
            // schedstat: time on a CPU, time waiting on a run queue (ns), timeslices.
            let wait = std::fs::read_to_string(e.path().join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().nth(1)?.parse::<f64>().ok())
                .unwrap_or(0.0)
                / 1e9;
            c.threads.push((tid, name, t, wait));
        }
        c.threads.sort_by_key(|t| t.0);
        c
    }

    /// What `self` (later) adds to `before`, as "main 6.1 s (waited 0.4 s for a CPU), tokio-rt-worker
    /// ×2 1.1 s, exited threads 0.1 s; total 7.3 s": the main thread first, then the others by name.
    pub fn since(&self, pid: i32, before: &CpuTimes) -> String {
        let prev = |tid: i32| {
            before
                .threads
                .iter()
                .find(|t| t.0 == tid)
                .map_or((0.0, 0.0), |t| (t.2, t.3))
        };
        let mut main = (0.0, 0.0);
        let mut by_name: std::collections::BTreeMap<&str, (usize, f64)> = Default::default();
        let mut live = 0.0;
        for (tid, name, t, w) in &self.threads {
            let (t0, w0) = prev(*tid);
            live += t - t0;
            if *tid == pid {
                main = (t - t0, w - w0);
            } else {
                let e = by_name.entry(name).or_default();
                e.0 += 1;
                e.1 += t - t0;
            }
        }
        let mut out = format!("main {:.2} s (waited {:.2} s for a CPU)", main.0, main.1);
        for (name, (n, t)) in by_name.iter().filter(|(_, (_, t))| *t >= 0.005) {
            let count = if *n > 1 {
                format!(" x{n}")
            } else {
                String::new()
            };
            out.push_str(&format!(", {name}{count} {t:.2} s"));
        }
        let total = self.total - before.total;
        let exited = total - live;
        if exited >= 0.005 {
            out.push_str(&format!(", exited threads {exited:.2} s"));
        }
        out.push_str(&format!("; total {total:.2} s"));
        out
    }
}

/// 1-minute load average.
pub fn load1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Memory of a process from /proc/PID/status, in KiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rss {
    pub hwm_kib: u64,
    pub rss_kib: u64,
    pub anon_kib: u64,
}

impl std::ops::Add for Rss {
    type Output = Rss;
    fn add(self, o: Rss) -> Rss {
        Rss {
            hwm_kib: self.hwm_kib + o.hwm_kib,
            rss_kib: self.rss_kib + o.rss_kib,
            anon_kib: self.anon_kib + o.anon_kib,
        }
    }
}

pub fn rss_of(pid: i32) -> Result<Rss> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok(Rss {
        hwm_kib: field("VmHWM:"),
        rss_kib: field("VmRSS:"),
        anon_kib: field("RssAnon:"),
    })
}

/// Sum over processes.
pub fn rss_sum(pids: &[i32]) -> Result<Rss> {
    let mut r = Rss::default();
    for p in pids {
        r = r + rss_of(*p)?;
    }
    Ok(r)
}

fn first_line(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            let s = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&s)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    Machine {
        kernel: first_line("uname", &["-r"]),
        cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        cpu_model: cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default(),
        mem_total_mib: meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .unwrap_or(0)
            >> 10,
        versions: vec![
            ("BIRD".into(), first_line("bird", &["--version"])),
            (
                "FRR".into(),
                first_line("/usr/lib/frr/bgpd", &["--version"]),
            ),
            ("GoBGP".into(), first_line("gobgpd", &["--version"])),
            ("ribd".into(), env!("CARGO_PKG_VERSION").to_string()),
        ],
        git_rev: first_line("git", &["rev-parse", "--short", "HEAD"]),
    }
}

fn utc_now() -> String {
    first_line("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"])
}

/// Runs `testbed bench`.
pub fn run(a: BenchArgs) -> Result<()> {
    if a.doc_only {
        let doc = a.doc.as_ref().context("--doc-only needs --doc PATH")?;
        let mut runs = Vec::new();
        for p in &a.merge {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            runs.push(serde_json::from_str::<RunResults>(&text)?);
        }
        std::fs::write(doc, report::markdown(&runs))?;
        println!("wrote {}", doc.display());
        return Ok(());
    }
    if cfg!(debug_assertions) {
        println!(
            "warning: a debug build; benchmark with `cargo run --release -p testbed -- bench ...`"
        );
    }
    let systems: Vec<SutKind> = a
        .systems
        .iter()
        .map(|s| SutKind::parse(s))
        .collect::<Result<_>>()?;
    fib_ebpf::bpffs::ensure_bpffs().context("bpffs")?;
    std::fs::create_dir_all(&a.results)
        .with_context(|| format!("creating {}", a.results.display()))?;
    let mut res = RunResults {
        started_utc: utc_now(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine: machine(),
        uptime_before: uptime(),
        uptime_after: String::new(),
        figures: Vec::new(),
        notes: Vec::new(),
    };
    println!(
        "testbed bench: {} CPUs, kernel {}, {}",
        res.machine.cpus,
        res.machine.kernel,
        uptime()
    );
    let out = a.results.join(format!(
        "bench-{}.json",
        res.started_utc.replace([':', '-'], "")
    ));
    let save = |res: &RunResults| -> Result<()> {
        std::fs::write(&out, serde_json::to_string_pretty(res)?)
            .with_context(|| format!("writing {}", out.display()))
    };
    let work = tempfile::Builder::new()
        .prefix("tb-bench-")
        .tempdir()
        .context("temporary directory")?;
    if EXE.get().is_none() {
        let copy = work.path().join("testbed");
        std::fs::copy(std::env::current_exe()?, &copy).context("copying the testbed executable")?;
        let _ = EXE.set(copy);
    }
    let feed = table::FeedSet::build(&a, work.path())?;
    println!("{}", feed.describe());
    let mut result = Ok(());
    for s in &a.sections {
        let r = match s.as_str() {
            "ingest" => ingest::run(&a, &feed, &systems, &mut res, &save),
            "churn" => churn::run(&a, &feed, &systems, &mut res, &save),
            "failover" => failover::run(&a, &feed, &systems, &mut res, &save),
            "forward" => forward::run(&a, &mut res, &save),
            other => Err(anyhow::anyhow!(
                "unknown section {other:?} (ingest, churn, failover, forward)"
            )),
        };
        if let Err(e) = r {
            println!("section {s} failed: {e:#}");
            res.notes.push(format!("section {s} failed: {e:#}"));
            result = Err(e);
        }
    }
    res.uptime_after = uptime();
    save(&res)?;
    println!("results: {}", out.display());
    if let Some(doc) = &a.doc {
        let mut runs = Vec::new();
        for p in &a.merge {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            runs.push(serde_json::from_str::<RunResults>(&text)?);
        }
        runs.push(res.clone());
        std::fs::write(doc, report::markdown(&runs))?;
        println!("wrote {}", doc.display());
    }
    result
}

/// Whether `kind` runs in `case` of `section`; a `--skip` that matches is recorded (once per case).
pub fn allowed(
    a: &BenchArgs,
    section: &str,
    case: &str,
    kind: SutKind,
    res: &mut RunResults,
) -> bool {
    let what = format!("{section}: {case}");
    for s in &a.skip {
        let (rule, reason) = match s.split_once('=') {
            Some((r, why)) => (r, why.trim()),
            None => (s.as_str(), ""),
        };
        let (sys, text) = rule.split_once(':').unwrap_or((rule, ""));
        let Ok(k) = SutKind::parse(sys) else {
            continue;
        };
        if k == kind && what.contains(text.trim()) {
            let why = if reason.is_empty() {
                format!("--skip {rule}")
            } else {
                format!("{reason} (--skip {rule})")
            };
            let note = format!("skipped {} in {what}: {why}", kind.name());
            if !res.notes.contains(&note) {
                println!("  {note}");
                res.notes.push(note);
            }
            return false;
        }
    }
    true
}

/// Polls `f` every `every` until it yields `Some` or `timeout` passes.
pub fn poll<T>(timeout: Duration, every: Duration, mut f: impl FnMut() -> Option<T>) -> Result<T> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if std::time::Instant::now() >= deadline {
            bail!("timed out after {timeout:?}");
        }
        std::thread::sleep(every);
    }
}

#[cfg(test)]
mod tests {
    use super::CpuTimes;

    /// A thread that burns CPU shows up by name with that time, and the process total covers it.
    #[test]
    fn cpu_times_find_a_busy_thread_by_name() {
        let pid = std::process::id() as i32;
        let before = CpuTimes::of(pid);
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let (read_tx, read_rx) = std::sync::mpsc::channel::<()>();
        let busy = std::thread::Builder::new()
            .name("cpu-burner".into())
            .spawn(move || {
                // Until this thread has used 150 ms of CPU (however busy the machine is).
                let cpu = || {
                    let mut ts = libc::timespec {
                        tv_sec: 0,
                        tv_nsec: 0,
                    };
                    // SAFETY: ts is a valid timespec for the call to fill.
                    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
                    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
                };
                let mut x = 0u64;
                while cpu() < 0.15 {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                }
                let _ = done_tx.send(());
                // Still alive while the parent reads /proc.
                let _ = read_rx.recv();
                x
            })
            .expect("a thread");
        done_rx.recv().expect("the thread burnt its CPU");
        let after = CpuTimes::of(pid);
        let _ = read_tx.send(());
        let burner = after
            .threads
            .iter()
            .find(|t| t.1 == "cpu-burner")
            .expect("the thread is listed by name");
        assert!(burner.2 >= 0.1, "it used CPU: {burner:?}");
        assert!(after.total - before.total >= burner.2 - 0.02);
        let line = after.since(pid, &before);
        assert!(line.contains("cpu-burner"), "{line}");
        assert!(line.starts_with("main "), "{line}");
        let _ = busy.join();
    }
}
