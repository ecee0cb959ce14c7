//! Shared by the integration tests: frame builders with an independent checksum, a test-run helper,
//! a route writer that fills both IPv4 engines, and namespace guards.
#![allow(dead_code)]

use std::fs::File;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};

use aya::programs::{TestRun, TestRunOptions, Xdp};
use fib_ebpf::abi::{FibVal, NH_F_VLAN, Nh};
use fib_ebpf::{Dir24, FibMaps};

pub const XDP_ABORTED: u32 = 0;
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_REDIRECT: u32 = 4;

pub const SMAC_IN: [u8; 6] = [0x02, 0, 0, 0, 0, 0xee];
pub const DMAC_IN: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

/// RFC 1071 checksum over `data`, computed from scratch (not incrementally).
pub fn inet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from(c[0]) << 8
        };
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Ethernet header (+ optional 802.1Q tag with PCP 0).
pub fn eth(dst: [u8; 6], src: [u8; 6], vlan: Option<u16>, ethertype: u16) -> Vec<u8> {
    eth_pcp(dst, src, vlan.map(|v| (0, v)), ethertype)
}

pub fn eth_pcp(dst: [u8; 6], src: [u8; 6], vlan: Option<(u8, u16)>, ethertype: u16) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    if let Some((pcp, vid)) = vlan {
        f.extend_from_slice(&0x8100u16.to_be_bytes());
        f.extend_from_slice(&((u16::from(pcp) << 13) | vid).to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// IPv4 header (no options) with a correct checksum, then `l4`.
pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; 20];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
    h[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
    h[8] = ttl;
    h[9] = proto;
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    let c = inet_checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(l4);
    h
}

/// IPv6 header then `l4`.
pub fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, hop: u8, next: u8, l4: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; 40];
    h[0] = 0x60;
    h[4..6].copy_from_slice(&(l4.len() as u16).to_be_bytes());
    h[6] = next;
    h[7] = hop;
    h[8..24].copy_from_slice(&src.octets());
    h[24..40].copy_from_slice(&dst.octets());
    h.extend_from_slice(l4);
    h
}

/// A TCP/UDP-like L4 header: ports then padding.
pub fn ports(sport: u16, dport: u16) -> Vec<u8> {
    let mut l4 = vec![0u8; 20];
    l4[0..2].copy_from_slice(&sport.to_be_bytes());
    l4[2..4].copy_from_slice(&dport.to_be_bytes());
    l4
}

pub fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Runs the program once on `frame`: (action, output frame).
pub fn run(prog: &mut Xdp, frame: &[u8]) -> (u32, Vec<u8>) {
    let mut out = vec![0u8; frame.len() + 64];
    let r = prog
        .test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ..Default::default()
        })
        .expect("BPF_PROG_TEST_RUN");
    out.truncate(r.data_size_out as usize);
    (r.return_value, out)
}

pub fn nh(ifindex: u32, dmac_last: u8, vlan: Option<u16>) -> Nh {
    Nh {
        ifindex,
        smac: [0x02, 0, 0, 0, 0x10, dmac_last],
        dmac: [0x02, 0, 0, 0, 0x20, dmac_last],
        vlan: vlan.unwrap_or(0),
        flags: if vlan.is_some() { NH_F_VLAN } else { 0 },
        _pad: 0,
    }
}

/// Writes IPv4 routes into both engines (DIR-24-8 through the builder, and the LPM trie).
pub struct Routes4 {
    pub dir: Dir24,
}

impl Routes4 {
    pub fn new() -> Routes4 {
        Routes4 {
            dir: Dir24::new(
                fib_ebpf::abi::DIR8_MAX_GROUPS,
                std::time::Duration::from_secs(1),
            ),
        }
    }

    pub fn insert(&mut self, maps: &mut FibMaps, p: &str, pl: u32) {
        let (a, l) = parse4(p);
        self.dir.insert(maps, a, l, pl).expect("dir24 insert");
        maps.fib4_insert(
            a,
            l,
            FibVal {
                pl_id: pl,
                flags: 0,
            },
        )
        .expect("fib4 insert");
    }

    pub fn delete(&mut self, maps: &mut FibMaps, p: &str) {
        let (a, l) = parse4(p);
        self.dir.delete(maps, a, l).expect("dir24 delete");
        maps.fib4_remove(a, l).expect("fib4 remove");
    }
}

pub fn parse4(p: &str) -> (Ipv4Addr, u8) {
    let (a, l) = p.split_once('/').expect("prefix/len");
    (a.parse().expect("addr"), l.parse().expect("len"))
}

pub fn parse6(p: &str) -> (Ipv6Addr, u8) {
    let (a, l) = p.split_once('/').expect("prefix/len");
    (a.parse().expect("addr"), l.parse().expect("len"))
}

/// Pins the calling thread to CPU 0, so per-CPU state (route cache) is the same across test runs.
pub fn pin_to_cpu0() {
    pin_to_cpu(0)
}

/// Pins the calling thread to `cpu` (BPF_PROG_TEST_RUN runs the program on the calling CPU).
pub fn pin_to_cpu(cpu: usize) {
    // SAFETY: plain sched_setaffinity on the calling thread with a zeroed, then filled, cpu set.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set)
    };
    assert_eq!(
        rc,
        0,
        "sched_setaffinity({cpu}): {}",
        std::io::Error::last_os_error()
    );
}

// ---- namespaces ----

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

/// Network namespaces deleted on drop (also when the test panics).
pub struct Netns {
    pub names: Vec<String>,
}

impl Netns {
    pub fn new(tag: &str, roles: &[&str]) -> Netns {
        let mut ns = Netns { names: Vec::new() };
        for r in roles {
            let name = format!("fe{}-{tag}-{r}", std::process::id());
            ip(&["netns", "add", &name]);
            ns.names.push(name);
        }
        ns
    }

    pub fn name(&self, i: usize) -> &str {
        &self.names[i]
    }

    /// Runs `f` on a thread inside namespace `i`.
    pub fn run_in<T: Send>(&self, i: usize, f: impl FnOnce() -> T + Send) -> T {
        let ns = File::open(format!("/var/run/netns/{}", self.names[i])).expect("open netns");
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: setns on a valid namespace fd, affecting only this scoped thread.
                let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .expect("thread in namespace")
        })
    }

    /// `ip netns exec <ns i> cmd...` output.
    pub fn exec(&self, i: usize, cmd: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.names[i]])
            .args(cmd)
            .stdin(Stdio::null())
            .output()
            .expect("ip netns exec")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in &self.names {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}
