//! Network namespaces and veth links, built with iproute2 and always removed again.
//!
//! Names are unique per process (`tb<pid>-<counter>-<role>`), so parallel tests never collide, and
//! [`sweep_stale`] removes namespaces left behind by processes that died without cleaning up.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, Result, bail};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Namespaces this process created and has not deleted yet (for the signal handler).
static LIVE: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// bpffs directories (pinned maps and XDP links) this process created and has not removed yet.
static LIVE_PINS: Mutex<Vec<std::path::PathBuf>> = Mutex::new(Vec::new());

/// Registers a bpffs directory to remove on teardown (signal, [`delete_all_live`]). Name it
/// `/sys/fs/bpf/tb<pid>-...` so [`sweep_stale`] also removes it after a SIGKILL.
pub fn register_pin_dir(dir: &std::path::Path) {
    LIVE_PINS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(dir.to_path_buf());
}

/// Removes a bpffs directory (removing its link pins detaches XDP) and forgets it.
pub fn remove_pin_dir(dir: &std::path::Path) {
    let _ = std::fs::remove_dir_all(dir);
    LIVE_PINS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|d| d != dir);
}

/// Prefix of every namespace the testbed creates.
pub const PREFIX: &str = "tb";

/// Runs a command, failing with its stderr when it exits non-zero.
pub fn run(cmd: &mut Command) -> Result<Output> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("spawning {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

/// `ip ARGS...`
pub fn ip(args: &[&str]) -> Result<Output> {
    run(Command::new("ip").args(args))
}

/// A network namespace, deleted (with every process still in it) on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `tb<pid>-<n>-<role>` with loopback up.
    pub fn new(role: &str) -> Result<Self> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{PREFIX}{}-{n}-{role}", std::process::id());
        ip(&["netns", "add", &name]).with_context(|| format!("creating namespace {name}"))?;
        lock_live().push(name.clone());
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        // Interfaces created later inherit `default`: no duplicate address detection, so IPv6 addresses
        // (link-local ones too) are usable the moment a link is up instead of ~2 s later.
        ns.sysctl("net.ipv6.conf.default.accept_dad", "0")?;
        ns.sysctl("net.ipv6.conf.all.accept_dad", "0")?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Path of the namespace handle, for setns/nsenter.
    pub fn path(&self) -> String {
        format!("/var/run/netns/{}", self.name)
    }

    /// `ip -n NAME ARGS...`
    pub fn ip(&self, args: &[&str]) -> Result<Output> {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        ip(&full).with_context(|| format!("in namespace {}", self.name))
    }

    /// A command that runs inside the namespace via `nsenter --net=` (bpffs stays visible).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.path()))
            .arg("--")
            .arg(program);
        c
    }

    /// Runs `program args` inside the namespace and returns its output, failing on non-zero exit.
    pub fn exec(&self, program: &str, args: &[&str]) -> Result<Output> {
        run(self.command(program).args(args)).with_context(|| format!("in namespace {}", self.name))
    }

    /// Sets a sysctl inside the namespace (e.g. `net.ipv4.ip_forward`).
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        self.exec("sysctl", &["-qw", &format!("{key}={value}")])
            .map(|_| ())
    }

    /// Runs `f` on a fresh thread whose network namespace is this one. Interfaces are resolved by name
    /// inside the namespace; file descriptors (BPF maps, programs) created before stay usable.
    pub fn run_in<T: Send, F: FnOnce() -> T + Send>(&self, f: F) -> Result<T> {
        let file = File::open(self.path()).with_context(|| format!("opening {}", self.path()))?;
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: setns on a valid namespace fd affects only this (scoped) thread.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                if rc != 0 {
                    return Err(anyhow::anyhow!(
                        "setns into {} failed: {}",
                        self.name,
                        std::io::Error::last_os_error()
                    ));
                }
                Ok(f())
            })
            .join()
            .map_err(|_| anyhow::anyhow!("thread inside namespace {} panicked", self.name))?
        })
    }

    /// PIDs of processes inside the namespace.
    pub fn pids(&self) -> Vec<i32> {
        ip(&["netns", "pids", &self.name])
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        delete_namespace(&self.name);
        lock_live().retain(|n| n != &self.name);
    }
}

fn lock_live() -> std::sync::MutexGuard<'static, Vec<String>> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Kills every process in `name` and deletes it. Errors are ignored: this runs on teardown paths.
pub fn delete_namespace(name: &str) {
    if let Ok(o) = Command::new("ip")
        .args(["netns", "pids", name])
        .stderr(Stdio::null())
        .output()
    {
        for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
            if let Ok(pid) = pid.parse::<i32>() {
                // SAFETY: plain kill(2) on a pid read from the namespace.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
    let _ = Command::new("ip")
        .args(["netns", "del", name])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Deletes every namespace this process still owns (for signal handlers and `exit`).
pub fn delete_all_live() {
    let names: Vec<String> = lock_live().drain(..).collect();
    for n in names {
        delete_namespace(&n);
    }
    let pins: Vec<std::path::PathBuf> = LIVE_PINS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .drain(..)
        .collect();
    for d in pins {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// Removes testbed namespaces whose creating process is gone (left over after SIGKILL).
pub fn sweep_stale() {
    let Ok(o) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        // SAFETY: kill with signal 0 only checks for existence.
        let alive = unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        if !alive {
            delete_namespace(name);
        }
    }
    // bpffs instances of dead testbed processes (the XDP links pinned there keep programs attached).
    if let Ok(rd) = std::fs::read_dir("/sys/fs/bpf") {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = name
                .strip_prefix(PREFIX)
                .and_then(|r| r.split('-').next())
                .and_then(|p| p.parse::<i32>().ok())
            else {
                continue;
            };
            // SAFETY: kill with signal 0 only checks for existence.
            if unsafe { libc::kill(pid, 0) } != 0
                && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
            {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// Installs a handler so SIGINT/SIGTERM/SIGHUP delete this process's namespaces before it exits.
/// Call it first in `main`, before other threads start: the signals are blocked for every thread
/// spawned afterwards and taken by one dedicated thread with `sigwait`.
pub fn install_cleanup_on_signal() {
    // SAFETY: sigset manipulation on a local set; pthread_sigmask affects this thread and is inherited.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        std::thread::spawn(move || {
            let mut sig: libc::c_int = 0;
            libc::sigwait(&set, &mut sig);
            eprintln!("\ntestbed: signal {sig}, tearing down namespaces");
            delete_all_live();
            std::process::exit(128 + sig);
        });
    }
}

/// A veth pair between two namespaces, with the given interface names.
pub fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) -> Result<()> {
    ip(&[
        "link",
        "add",
        a_if,
        "netns",
        a.name(),
        "type",
        "veth",
        "peer",
        "name",
        b_if,
        "netns",
        b.name(),
    ])
    .with_context(|| format!("creating veth {a_if}@{} -- {b_if}@{}", a.name(), b.name()))?;
    a.ip(&["link", "set", a_if, "up"])?;
    b.ip(&["link", "set", b_if, "up"])?;
    Ok(())
}

/// Adds an address (CIDR notation) to an interface inside `ns`. IPv6 addresses skip DAD.
pub fn addr(ns: &Netns, iface: &str, cidr: &str) -> Result<()> {
    if cidr.contains(':') {
        ns.ip(&["-6", "addr", "add", cidr, "dev", iface, "nodad"])
            .map(|_| ())
    } else {
        ns.ip(&["addr", "add", cidr, "dev", iface]).map(|_| ())
    }
}
