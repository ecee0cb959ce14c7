//! Shared by the integration tests: a forwarder loaded into a uniquely named pin directory (removed
//! on drop), frames, BPF_PROG_TEST_RUN lookups, namespaces.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use aya::programs::{TestRun, TestRunOptions};
use fib_ebpf::{Engine4, Forwarder, LoadOptions};
use fib_sync::{FibSync, NhL2, PinnedMaps, SyncConfig};

pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_REDIRECT: u32 = 4;

/// A pin directory under /sys/fs/bpf, removed on drop (after the forwarder using it).
pub struct Instance {
    pub name: String,
    pub dir: PathBuf,
    pub fwd: Option<Forwarder>,
}

impl Instance {
    pub fn new(tag: &str, engine4: Engine4) -> Instance {
        Self::with(tag, engine4, false)
    }

    /// With `bench`, the object's `xdp_pass` program is loaded too (for the far ends of veths:
    /// a redirect into a veth needs an XDP program on the receiving peer).
    pub fn with(tag: &str, engine4: Engine4, bench: bool) -> Instance {
        sweep_dead_instances();
        let name = format!("fs{}-{tag}", std::process::id());
        let dir = PathBuf::from("/sys/fs/bpf").join(&name);
        let _ = std::fs::remove_dir_all(&dir);
        let mut inst = Instance {
            name: name.clone(),
            dir,
            fwd: None,
        };
        inst.fwd = Some(
            Forwarder::load_with(&LoadOptions {
                instance: Some(name),
                engine4,
                bench,
                ..Default::default()
            })
            .expect("load the forwarder"),
        );
        inst
    }

    pub fn sync(&self, cfg: SyncConfig) -> FibSync {
        FibSync::new(PinnedMaps::open(&self.dir).expect("open pins"), cfg)
    }

    pub fn fwd(&mut self) -> &mut Forwarder {
        self.fwd.as_mut().expect("loaded")
    }

    /// Runs a TCP frame to `dst` through the XDP program: (action, dmac of the output frame).
    pub fn send(&mut self, dst: IpAddr, sport: u16) -> (u32, [u8; 6]) {
        let frame = tcp_frame(dst, sport);
        let prog = self.fwd().program().expect("program");
        let mut out = vec![0u8; frame.len() + 64];
        let r = prog
            .test_run(TestRunOptions {
                data_in: Some(&frame),
                data_out: Some(&mut out),
                ..Default::default()
            })
            .expect("BPF_PROG_TEST_RUN");
        let mut dmac = [0u8; 6];
        dmac.copy_from_slice(&out[..6]);
        (r.return_value, dmac)
    }
}

/// Removes `fs<pid>-*` instances whose test process is gone: an instance held in a `static` (the model
/// test shares one across proptest cases) is never dropped, so the next run cleans it up.
fn sweep_dead_instances() {
    let Ok(entries) = std::fs::read_dir("/sys/fs/bpf") else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("fs")
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        // SAFETY: kill with signal 0 only checks whether the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        if !alive {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.fwd = None;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An L2 next-hop on `lo` (ifindex 1, always a valid redirect target) with dmac 02:00:00:00:00:n.
pub fn lo_nh(n: u8) -> NhL2 {
    NhL2 {
        ifindex: 1,
        smac: [0x02, 0, 0, 0, 0xff, 0],
        dmac: [0x02, 0, 0, 0, 0, n],
        vlan: None,
    }
}

pub fn tcp_frame(dst: IpAddr, sport: u16) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0xee];
    let mut l4 = Vec::new();
    l4.extend_from_slice(&sport.to_be_bytes());
    l4.extend_from_slice(&80u16.to_be_bytes());
    l4.extend_from_slice(&[0u8; 16]);
    match dst {
        IpAddr::V4(d) => {
            f.extend_from_slice(&0x0800u16.to_be_bytes());
            let mut h = vec![0u8; 20];
            h[0] = 0x45;
            h[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
            h[8] = 64;
            h[9] = 6;
            h[12..16].copy_from_slice(&Ipv4Addr::new(100, 100, 0, 1).octets());
            h[16..20].copy_from_slice(&d.octets());
            let mut sum: u32 = h
                .chunks(2)
                .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
                .sum();
            while sum > 0xffff {
                sum = (sum & 0xffff) + (sum >> 16);
            }
            h[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
            f.extend_from_slice(&h);
        }
        IpAddr::V6(d) => {
            f.extend_from_slice(&0x86ddu16.to_be_bytes());
            let mut h = vec![0u8; 40];
            h[0] = 0x60;
            h[4..6].copy_from_slice(&(l4.len() as u16).to_be_bytes());
            h[6] = 6;
            h[7] = 64;
            h[8..24].copy_from_slice(&"2001:db8:ffff::1".parse::<Ipv6Addr>().unwrap().octets());
            h[24..40].copy_from_slice(&d.octets());
            f.extend_from_slice(&h);
        }
    }
    f.extend_from_slice(&l4);
    f
}

/// Runs `ip` with `args`, panicking with its stderr on failure.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace named after the test process, deleted on drop.
pub struct Ns {
    pub name: String,
}

impl Ns {
    pub fn new(tag: &str) -> Ns {
        let ns = Ns {
            name: format!("fs{}-{tag}", std::process::id()),
        };
        let _ = Command::new("ip")
            .args(["netns", "del", &ns.name])
            .stderr(Stdio::null())
            .status();
        ip(&["netns", "add", &ns.name]);
        ns.ip(&["link", "set", "lo", "up"]);
        ns.sysctl("net.ipv4.ip_forward", "1");
        ns.sysctl("net.ipv6.conf.all.forwarding", "1");
        ns.sysctl("net.ipv6.conf.all.accept_dad", "0");
        ns.sysctl("net.ipv6.conf.default.accept_dad", "0");
        ns
    }

    pub fn ip(&self, args: &[&str]) {
        let mut v = vec!["-n", self.name.as_str()];
        v.extend_from_slice(args);
        ip(&v);
    }

    pub fn sysctl(&self, key: &str, value: &str) {
        let out = self.exec("sysctl", &["-qw", &format!("{key}={value}")]);
        assert!(
            out.status.success(),
            "sysctl {key}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs a program inside the namespace (`ip netns exec`: no bpffs there, fine for ping).
    pub fn exec(&self, prog: &str, args: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name, prog])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("ip netns exec")
    }

    /// Runs `f` on a thread that entered the namespace (sockets it opens stay in it).
    pub fn run_in<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        use std::os::fd::AsRawFd;
        let file =
            std::fs::File::open(format!("/var/run/netns/{}", self.name)).expect("open netns");
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: setns on a valid namespace fd; affects only this thread.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
        })
    }

    /// The MAC of `iface`.
    pub fn mac(&self, iface: &str) -> [u8; 6] {
        let out = Command::new("ip")
            .args(["-n", &self.name, "-br", "link", "show", iface])
            .output()
            .expect("ip link show");
        let s = String::from_utf8_lossy(&out.stdout);
        let field = s.split_whitespace().nth(2).expect("mac field");
        let mut mac = [0u8; 6];
        for (i, b) in field.split(':').enumerate() {
            mac[i] = u8::from_str_radix(b, 16).expect("hex");
        }
        mac
    }

    /// The ifindex of `iface`.
    pub fn ifindex(&self, iface: &str) -> u32 {
        let out = Command::new("ip")
            .args(["-n", &self.name, "-o", "link", "show", iface])
            .output()
            .expect("ip link show");
        let s = String::from_utf8_lossy(&out.stdout);
        s.split(':')
            .next()
            .expect("index")
            .trim()
            .parse()
            .expect("ifindex")
    }

    pub fn ping(&self, dst: &str, count: u32) -> bool {
        self.exec(
            "ping",
            &["-c", &count.to_string(), "-i", "0.05", "-W", "1", dst],
        )
        .status
        .success()
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// A veth between `a` and `b`.
pub fn veth(a: &Ns, a_if: &str, b: &Ns, b_if: &str) {
    ip(&[
        "link", "add", a_if, "netns", &a.name, "type", "veth", "peer", "name", b_if, "netns",
        &b.name,
    ]);
    a.ip(&["link", "set", a_if, "up"]);
    b.ip(&["link", "set", b_if, "up"]);
}

/// S ── R ── N1, R ── N2: see tests/netns.rs.
pub struct Topo {
    pub s: Ns,
    pub r: Ns,
    pub n1: Ns,
    pub n2: Ns,
}

pub fn topo(tag: &str) -> Topo {
    let t = Topo {
        s: Ns::new(&format!("{tag}-s")),
        r: Ns::new(&format!("{tag}-r")),
        n1: Ns::new(&format!("{tag}-n1")),
        n2: Ns::new(&format!("{tag}-n2")),
    };
    veth(&t.s, "s0", &t.r, "rs");
    veth(&t.r, "r1", &t.n1, "n1");
    veth(&t.r, "r2", &t.n2, "n2");
    t.s.ip(&["addr", "add", "10.0.1.2/24", "dev", "s0"]);
    t.s.ip(&["route", "add", "default", "via", "10.0.1.1"]);
    t.r.ip(&["addr", "add", "10.0.1.1/24", "dev", "rs"]);
    t.r.ip(&["addr", "add", "192.0.2.1/24", "dev", "r1"]);
    t.r.ip(&["addr", "add", "2001:db8:1::1/64", "dev", "r1"]);
    t.r.ip(&["addr", "add", "198.51.100.1/24", "dev", "r2"]);
    t.n1.ip(&["addr", "add", "192.0.2.2/24", "dev", "n1"]);
    t.n1.ip(&["addr", "add", "2001:db8:1::2/64", "dev", "n1"]);
    t.n1.ip(&["addr", "add", "10.99.1.1/32", "dev", "lo"]);
    t.n1.ip(&["addr", "add", "10.98.1.1/32", "dev", "lo"]);
    t.n1.ip(&["route", "add", "default", "via", "192.0.2.1"]);
    t.n2.ip(&["addr", "add", "198.51.100.2/24", "dev", "n2"]);
    t.n2.ip(&["addr", "add", "10.99.1.1/32", "dev", "lo"]);
    t.n2.ip(&["route", "add", "default", "via", "198.51.100.1"]);
    // A MAC change is announced with a gratuitous ARP.
    t.n1.sysctl("net.ipv4.conf.n1.arp_notify", "1");
    t
}
