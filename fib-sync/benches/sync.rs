//! fib-sync benchmark (needs root; prints figures and ratios measured in one run, asserts no time):
//!
//! - initial sync of the full IPv4 + IPv6 tables in one batch into fresh maps, against installing
//!   the same tables into a kernel routing table over netlink (RTM_NEWROUTE, as many per sendmsg as
//!   fit in 60 KiB, each ACKed) in a namespace, once with a gateway in every route (BIRD) and once
//!   through nexthop objects (FRR's zebra), the faster being the baseline; every run of the maps is
//!   followed by one of each kernel install (same data, interleaved so load drifts reach both),
//!   and the ratios are median vs median, min vs min and CPU time vs CPU time; two table sets: the
//!   real prefixes (ipasn_20140513, ~513k IPv4; ipasn6_20151101, ~27.7k IPv6 grown to 240k by
//!   deaggregation) and today's size (1.05M
//!   IPv4 and 240k IPv6, grown as the testbed's table generator does: real length mix,
//!   more-specifics of real prefixes and random global prefixes);
//! - sustained churn of random announce/withdraw/next-hop-set deltas in batches, on the live maps;
//! - failover: map work after one next-hop's death with ~1M IPv4 prefixes over 2 next-hops (single
//!   and ECMP sets) and over 8 upstreams with ECMP sets, with the number of map writes.
//!
//! `cargo bench -p fib-sync --bench sync` (FS_BENCH_NO_KERNEL=1 skips the kernel baseline,
//! FS_BENCH_REPEAT=n repeats each map measurement n times, default 3;
//! FS_BENCH_ONLY=trie,init,churn,failover runs only those parts; `trie` times the IPv6 trie alone
//! in several insert orders).

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fib_ebpf::{Engine4, Forwarder, LoadOptions};
use fib_sync::{FibSync, NhL2, PinnedMaps, Route, SyncConfig};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

const V4: &str = "/usr/lib/python3/dist-packages/data/ipasn_20140513.dat.gz";
const V6: &str = "/usr/lib/python3/dist-packages/data/ipasn6_20151101.dat.gz";

/// xorshift64*: seeded, so runs are comparable.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn read_ipasn(path: &str) -> Vec<(IpNet, u32)> {
    let f = File::open(path).unwrap_or_else(|e| panic!("{path}: {e} (package python3-pyasn)"));
    let r = BufReader::new(flate2::read::GzDecoder::new(f));
    let mut v = Vec::new();
    for line in r.lines() {
        let line = line.expect("read");
        if line.starts_with(';') {
            continue;
        }
        let mut it = line.split_whitespace();
        let (Some(p), Some(asn)) = (it.next(), it.next()) else {
            continue;
        };
        if let (Ok(p), Ok(asn)) = (p.parse::<IpNet>(), asn.parse::<u32>()) {
            v.push((p.trunc(), asn));
        }
    }
    v.sort();
    v.dedup_by_key(|x| x.0);
    v
}

/// Grows `real` to `n` prefixes of its family as the testbed's table generator does: a target
/// length drawn from the real length histogram and a real prefix; a longer target becomes a random
/// more-specific of it, a shorter one a random prefix of that length in global unicast space.
fn scale(real: &[(IpNet, u32)], n: usize, rng: &mut Rng) -> Vec<(IpNet, u32)> {
    let mut hist = [0usize; 129];
    for (p, _) in real {
        hist[p.prefix_len() as usize] += 1;
    }
    let cdf: Vec<usize> = hist
        .iter()
        .scan(0, |s, &x| {
            *s += x;
            Some(*s)
        })
        .collect();
    let mut seen: HashSet<IpNet> = real.iter().map(|x| x.0).collect();
    let mut out = real.to_vec();
    while out.len() < n {
        let x = rng.below(real.len());
        let len = cdf.partition_point(|&c| c <= x) as u8;
        let (p, asn) = real[rng.below(real.len())];
        let q = match p {
            IpNet::V4(p) if len > p.prefix_len() => {
                let host = (rng.next() as u32) & (u32::MAX >> p.prefix_len());
                Ipv4Net::new(Ipv4Addr::from(u32::from(p.network()) | host), len).map(IpNet::V4)
            }
            IpNet::V4(_) => {
                let a = rng.next() as u32;
                let o = a.to_be_bytes();
                if o[0] == 0 || o[0] == 10 || o[0] == 127 || o[0] >= 224 {
                    continue;
                }
                Ipv4Net::new(Ipv4Addr::from(a), len).map(IpNet::V4)
            }
            IpNet::V6(p) if len > p.prefix_len() => {
                let host = (u128::from(rng.next()) << 64 | u128::from(rng.next()))
                    & (u128::MAX >> p.prefix_len());
                Ipv6Net::new(Ipv6Addr::from(u128::from(p.network()) | host), len).map(IpNet::V6)
            }
            IpNet::V6(_) => {
                let r = u128::from(rng.next()) << 64 | u128::from(rng.next());
                Ipv6Net::new(Ipv6Addr::from((r >> 3) | (1u128 << 125)), len).map(IpNet::V6)
            }
        };
        let Ok(q) = q else { continue };
        let q = q.trunc();
        if seen.insert(q) {
            out.push((q, asn));
        }
    }
    out.sort_unstable();
    out
}

fn nh_addr(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1 + i as u8))
}

fn l2(i: usize) -> NhL2 {
    NhL2 {
        ifindex: 1,
        smac: [2, 0, 0, 0, 0xff, 0],
        dmac: [2, 0, 0, 0, 0, i as u8 + 1],
        vlan: None,
    }
}

/// Next-hop sets like a box with 8 upstreams: single paths and ECMP pairs/quads, chosen by origin.
fn set_for(asn: u32, salt: u32) -> Vec<(IpAddr, u32)> {
    let h = (asn ^ salt).wrapping_mul(2_654_435_761) as usize >> 4;
    let (a, b, c, d) = (h % 8, (h >> 3) % 8, (h >> 6) % 8, (h >> 9) % 8);
    match (h >> 12) % 4 {
        0 | 1 => vec![(nh_addr(a), 1)],
        2 => vec![(nh_addr(a), 1), (nh_addr(b), 1)],
        _ => vec![
            (nh_addr(a), 1),
            (nh_addr(b), 2),
            (nh_addr(c), 1),
            (nh_addr(d), 1),
        ],
    }
}

/// Routes with next-hop sets interned as the RIB hands them over (one `Arc` per distinct set).
fn routes(table: &[(IpNet, u32)], salt: u32) -> Vec<Route> {
    let mut interned: std::collections::HashMap<Vec<(IpAddr, u32)>, fib_sync::NhSet> =
        std::collections::HashMap::new();
    table
        .iter()
        .map(|&(p, asn)| {
            let members = set_for(asn, salt);
            let set = interned
                .entry(members.clone())
                .or_insert_with(|| fib_sync::NhSet::new(members))
                .clone();
            Route {
                prefix: p,
                action: Some(fib_sync::RouteAction::Forward(set)),
            }
        })
        .collect()
}

struct Pins(PathBuf, Option<Forwarder>);
impl Pins {
    fn new(tag: &str) -> Pins {
        let name = format!("fsbench{}-{tag}", std::process::id());
        let fwd = Forwarder::load_with(&LoadOptions {
            instance: Some(name.clone()),
            engine4: Engine4::Dir24,
            ..Default::default()
        })
        .expect("load the forwarder (root, bpffs)");
        Pins(Path::new("/sys/fs/bpf").join(name), Some(fwd))
    }
    fn sync(&self) -> FibSync {
        // FS_BENCH_PARALLEL_MIN: SyncConfig::parallel_min (a huge value keeps every batch on one thread).
        let parallel_min = std::env::var("FS_BENCH_PARALLEL_MIN")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(SyncConfig::default().parallel_min);
        let cfg = SyncConfig {
            parallel_min,
            ..SyncConfig::default()
        };
        let mut s = FibSync::new(PinnedMaps::open(&self.0).unwrap(), cfg);
        let res: Vec<_> = (0..8).map(|i| (nh_addr(i), Some(l2(i)))).collect();
        s.set_nexthops(&res).unwrap();
        s
    }
}
impl Drop for Pins {
    fn drop(&mut self) {
        self.1 = None;
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Netns(String);
impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn ip(args: &[&str]) {
    let ok = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "ip {args:?}");
}

/// How the kernel baseline names the next-hop of each route.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum KernelNh {
    /// RTA_GATEWAY + RTA_OIF in every route (BIRD; the kernel validates the gateway per route).
    Gateway,
    /// RTA_NH_ID of a nexthop object created first (FRR's zebra on kernels that have them).
    Object,
}

/// Installs `table` into routing table 100 of a fresh namespace over netlink: RTM_NEWROUTE
/// (proto bgp, via a gateway on a veth), as many per sendmsg as fit in 60 KiB, each ACKed. Returns
/// the time for the IPv4 and the IPv6 routes, and the CPU time of the installing thread (the
/// kernel's work runs in its syscalls).
fn kernel_install(table: &[(IpNet, u32)], nh: KernelNh) -> (Duration, Duration, Duration) {
    let ns = Netns(format!("fsbench{}-k", std::process::id()));
    ip(&["netns", "add", &ns.0]);
    // A veth pair inside the namespace stands in for the upstream port (no dummy module here).
    ip(&[
        "-n", &ns.0, "link", "add", "d0", "type", "veth", "peer", "name", "d1",
    ]);
    ip(&["-n", &ns.0, "addr", "add", "192.0.2.1/24", "dev", "d0"]);
    ip(&[
        "-n",
        &ns.0,
        "addr",
        "add",
        "2001:db8::1/64",
        "dev",
        "d0",
        "nodad",
    ]);
    ip(&["-n", &ns.0, "link", "set", "d1", "up"]);
    ip(&["-n", &ns.0, "link", "set", "d0", "up"]);
    if nh == KernelNh::Object {
        ip(&[
            "-n",
            &ns.0,
            "nexthop",
            "add",
            "id",
            "1",
            "via",
            "192.0.2.2",
            "dev",
            "d0",
        ]);
        ip(&[
            "-n",
            &ns.0,
            "nexthop",
            "add",
            "id",
            "2",
            "via",
            "2001:db8::2",
            "dev",
            "d0",
        ]);
    }
    let file = File::open(format!("/var/run/netns/{}", ns.0)).unwrap();
    let ifindex: u32 = {
        let out = Command::new("ip")
            .args(["-n", &ns.0, "-o", "link", "show", "d0"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split(':')
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: setns on a valid namespace fd, this thread only.
            assert_eq!(
                unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) },
                0
            );
            let mut sock = Socket::new(NETLINK_ROUTE).unwrap();
            sock.bind_auto().unwrap();
            sock.connect(&SocketAddr::new(0, 0)).unwrap();
            let _ = sock.set_rx_buf_sz(8 << 20);
            let v4 = table.iter().filter(|x| x.0.addr().is_ipv4()).map(|x| x.0);
            let v6 = table.iter().filter(|x| x.0.addr().is_ipv6()).map(|x| x.0);
            let c0 = thread_cpu();
            let t4 = install(&sock, ifindex, nh, v4);
            let t6 = install(&sock, ifindex, nh, v6);
            (t4, t6, thread_cpu() - c0)
        })
        .join()
        .unwrap()
    })
}

fn install(
    sock: &Socket,
    ifindex: u32,
    nh: KernelNh,
    table: impl Iterator<Item = IpNet>,
) -> Duration {
    let t = Instant::now();
    let mut buf = Vec::with_capacity(1 << 16);
    let mut pending = 0usize;
    let mut rbuf = vec![0u8; 1 << 16];
    let mut seq = 0u32;
    let flush = |buf: &mut Vec<u8>, pending: &mut usize, rbuf: &mut [u8]| {
        if *pending == 0 {
            return;
        }
        sock.send(buf, 0).unwrap();
        buf.clear();
        while *pending > 0 {
            let n = sock.recv(&mut &mut rbuf[..], 0).unwrap();
            let mut off = 0;
            while off < n {
                let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rbuf[off..n]).unwrap();
                if let NetlinkPayload::Error(e) = &m.payload {
                    assert!(e.code.is_none(), "kernel refused a route: {e:?}");
                    *pending -= 1;
                }
                off += (m.header.length as usize + 3) & !3;
            }
        }
    };
    for n in table {
        let (family, dst, gw) = match n {
            IpNet::V4(n) => (
                AddressFamily::Inet,
                RouteAddress::Inet(n.network()),
                RouteAddress::Inet(Ipv4Addr::new(192, 0, 2, 2)),
            ),
            IpNet::V6(n) => (
                AddressFamily::Inet6,
                RouteAddress::Inet6(n.network()),
                RouteAddress::Inet6("2001:db8::2".parse().unwrap()),
            ),
        };
        let mut m = RouteMessage::default();
        m.header = RouteHeader {
            address_family: family,
            destination_prefix_length: n.prefix_len(),
            table: 100,
            protocol: RouteProtocol::Bgp,
            scope: RouteScope::Universe,
            kind: RouteType::Unicast,
            ..Default::default()
        };
        m.attributes.push(RouteAttribute::Table(100));
        m.attributes.push(RouteAttribute::Destination(dst));
        match nh {
            KernelNh::Gateway => {
                m.attributes.push(RouteAttribute::Gateway(gw));
                m.attributes.push(RouteAttribute::Oif(ifindex));
            }
            KernelNh::Object => {
                m.attributes
                    .push(RouteAttribute::NhId(if family == AddressFamily::Inet {
                        1
                    } else {
                        2
                    }))
            }
        }
        let mut h = NetlinkHeader::default();
        h.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
        seq += 1;
        h.sequence_number = seq;
        let mut nl = NetlinkMessage::new(
            h,
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(m)),
        );
        nl.finalize();
        let len = nl.buffer_len();
        if buf.len() + len > 60 * 1024 {
            flush(&mut buf, &mut pending, &mut rbuf);
        }
        let at = buf.len();
        buf.resize(at + len, 0);
        nl.serialize(&mut buf[at..]);
        pending += 1;
    }
    flush(&mut buf, &mut pending, &mut rbuf);
    t.elapsed()
}

/// Next-hop `i` dies (timed) and comes back; returns the map-work time of the death in µs and
/// its report.
fn failover(s: &mut FibSync, i: usize) -> (f64, fib_sync::BatchReport) {
    let t = Instant::now();
    let rep = s.set_nexthops(&[(nh_addr(i), None)]).unwrap();
    let us = t.elapsed().as_secs_f64() * 1e6;
    s.set_nexthops(&[(nh_addr(i), Some(l2(i)))]).unwrap();
    (us, rep)
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// (min, median) of `v`.
fn min_med(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[0], v[v.len() / 2])
}

/// CPU time of this process (all threads).
fn process_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn load_avg() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    load.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Wall and CPU seconds of the runs of one side.
#[derive(Default)]
struct Runs {
    wall: Vec<f64>,
    cpu: Vec<f64>,
}

impl Runs {
    fn push(&mut self, wall: Duration, cpu: Duration) {
        self.wall.push(secs(wall));
        self.cpu.push(secs(cpu));
    }
    /// (min, median) of the wall times, median CPU.
    fn stats(&self) -> (f64, f64, f64) {
        let (min, med) = min_med(&mut self.wall.clone());
        (min, med, min_med(&mut self.cpu.clone()).1)
    }
}

/// Initial sync of `table` (both families, one batch) into fresh maps, `repeat` times, each run
/// followed by the kernel installs of the same table when `kernel` (so load drifts reach both
/// sides alike); prints both sides and their ratios. Returns the last engine (settled).
fn initial(
    tag: &str,
    table: &[(IpNet, u32)],
    n4: usize,
    repeat: usize,
    kernel: bool,
) -> (Pins, FibSync) {
    let r = routes(table, 0);
    let mut maps = Runs::default();
    let mut kern = [Runs::default(), Runs::default()];
    let methods = [KernelNh::Gateway, KernelNh::Object];
    let mut last = None;
    for k in 0..repeat {
        let pins = Pins::new(&format!("{tag}{k}"));
        let mut s = pins.sync();
        let c = process_cpu();
        let t = Instant::now();
        let rep = s.apply(&r).unwrap();
        let el = t.elapsed();
        maps.push(el, process_cpu() - c);
        let t = Instant::now();
        s.settle().unwrap();
        let settle = t.elapsed();
        if k == 0 {
            let (pls, nhgs, nhs) = s.ids_in_use();
            println!(
                "  {tag}: {} prefixes, {} writes ({} tbl24, {} tbl8, {} trie), {pls} path-lists, {nhgs} groups, \
                 {nhs} next-hops, {} tbl8 groups; tables of prefixes for later batches ready {:.3} s later",
                rep.prefixes,
                rep.writes.total(),
                rep.writes.dir24,
                rep.writes.dir8,
                rep.writes.fib4 + rep.writes.fib6,
                s.tbl8_in_use(),
                secs(settle)
            );
            let b = s.prefix_state_bytes();
            println!(
                "  {tag}: per-prefix state in the heap (tables of prefixes, tbl8 group records) {:.1} MiB = {:.1} B/prefix",
                b as f64 / (1 << 20) as f64,
                b as f64 / rep.prefixes as f64
            );
            let t = Instant::now();
            let diffs = s.check(&r).unwrap();
            println!(
                "  {tag}: consistency check {:.2} s, {} differences",
                secs(t.elapsed()),
                diffs.len()
            );
            assert!(diffs.is_empty(), "{diffs:?}");
        }
        println!(
            "  {tag} run {k}: maps {:.3} s [load {}]",
            secs(el),
            load_avg()
        );
        last = Some((pins, s));
        if !kernel {
            continue;
        }
        for (nh, runs) in methods.iter().zip(&mut kern) {
            let (k4, k6, cpu) = kernel_install(table, *nh);
            runs.push(k4 + k6, cpu);
            // The namespace's routes are freed by kernel workers after `ip netns del`: let that
            // finish before the next measurement of either side.
            std::thread::sleep(Duration::from_secs(1));
            println!(
                "  {tag} run {k}: kernel table over netlink ({nh:?}): IPv4 {n4} in {:.3} s + IPv6 {} in {:.3} s = {:.3} s \
                 ({:.0} routes/s) [load {}]",
                secs(k4),
                table.len() - n4,
                secs(k6),
                secs(k4 + k6),
                table.len() as f64 / secs(k4 + k6),
                load_avg()
            );
        }
    }
    let (min, med, cpu) = maps.stats();
    println!(
        "  {tag}: maps min {min:.3} s, median {med:.3} s ({:.2} M prefixes/s), CPU {cpu:.3} s [load {}]",
        table.len() as f64 / med / 1e6,
        load_avg()
    );
    if kernel {
        // Both ways routing daemons install; the faster one (by median) is the baseline.
        let mut best = (f64::MAX, f64::MAX, f64::MAX, KernelNh::Gateway);
        for (nh, runs) in methods.iter().zip(&kern) {
            let (kmin, kmed, kcpu) = runs.stats();
            println!(
                "  {tag}: kernel ({nh:?}) min {kmin:.3} s, median {kmed:.3} s, CPU {kcpu:.3} s"
            );
            if kmed < best.1 {
                best = (kmin, kmed, kcpu, *nh);
            }
        }
        let (kmin, kmed, kcpu, nh) = best;
        println!(
            "  {tag}: maps are {:.1}x faster than the faster kernel install ({nh:?}) at the median \
             ({:.1}x min vs min; {:.1}x in CPU time) over {repeat} interleaved runs",
            kmed / med,
            kmin / min,
            kcpu / cpu,
        );
    }
    last.expect("repeat >= 1")
}

/// The IPv6 trie alone: 240k inserts into a fresh `fib6` in several orders and splits, to see what
/// the kernel's LPM-trie insert costs and whether order or a second thread changes it.
fn trie_orders(v6: &[(IpNet, u32)]) {
    use fib_ebpf::abi::FibVal;
    let items: Vec<(Ipv6Addr, u8, FibVal)> = v6
        .iter()
        .filter_map(|&(p, _)| match p {
            IpNet::V6(n) => Some((n.network(), n.prefix_len(), FibVal { pl_id: 5, flags: 0 })),
            IpNet::V4(_) => None,
        })
        .collect();
    let mut sorted = items.clone();
    sorted.sort_unstable_by_key(|x| (x.0, x.1));
    let mut by_len = items.clone();
    by_len.sort_unstable_by_key(|x| (x.1, x.0));
    let mut longest_first = items.clone();
    longest_first.sort_unstable_by_key(|x| (std::cmp::Reverse(x.1), x.0));
    let mut shuffled = sorted.clone();
    let mut rng = Rng(7);
    for i in (1..shuffled.len()).rev() {
        shuffled.swap(i, rng.below(i + 1));
    }
    println!(
        "IPv6 trie alone, {} prefixes into a fresh fib6:",
        items.len()
    );
    type Case<'a> = (&'a str, &'a [(Ipv6Addr, u8, FibVal)], usize, usize);
    let cases: [Case; 7] = [
        ("sorted (addr, len), one batch", &sorted, 1, usize::MAX),
        ("sorted, batches of 4096", &sorted, 1, 4096),
        ("sorted, one syscall each", &sorted, 1, 1),
        ("sorted, two threads (halves)", &sorted, 2, usize::MAX),
        ("by (len, addr), one batch", &by_len, 1, usize::MAX),
        ("longest first, one batch", &longest_first, 1, usize::MAX),
        ("shuffled, one batch", &shuffled, 1, usize::MAX),
    ];
    for (name, list, threads, chunk) in cases {
        let mut t = Vec::new();
        let mut cpu = Vec::new();
        for k in 0..3 {
            let pins = Pins::new(&format!("trie{k}"));
            let maps = PinnedMaps::open(&pins.0).unwrap();
            let start = Instant::now();
            let c: Duration = std::thread::scope(|s| {
                let jobs: Vec<_> = list
                    .chunks(list.len().div_ceil(threads))
                    .map(|part| {
                        let m = &maps;
                        s.spawn(move || {
                            let c0 = thread_cpu();
                            for c in part.chunks(chunk.min(part.len())) {
                                if chunk == 1 {
                                    m.fib.fib6_insert(c[0].0, c[0].1, c[0].2).unwrap();
                                } else {
                                    m.fib.fib6_insert_batch(c).unwrap();
                                }
                            }
                            thread_cpu() - c0
                        })
                    })
                    .collect();
                jobs.into_iter().map(|j| j.join().unwrap()).sum()
            });
            t.push(secs(start.elapsed()));
            cpu.push(secs(c));
        }
        let (min, med) = min_med(&mut t);
        let (_, cpu_med) = min_med(&mut cpu);
        println!(
            "  {name}: median {med:.3} s (min {min:.3}), {:.2} µs/prefix; CPU {:.2} µs/prefix [load {}]",
            med * 1e6 / list.len() as f64,
            cpu_med * 1e6 / list.len() as f64,
            load_avg()
        );
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // cargo test --benches asks for a list; nothing to list.
    }
    let repeat: usize = std::env::var("FS_BENCH_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let kernel = std::env::var("FS_BENCH_NO_KERNEL").is_err();
    let only = std::env::var("FS_BENCH_ONLY").unwrap_or_default();
    let run = |part: &str| only.is_empty() || only.split(',').any(|p| p == part);
    println!(
        "machine: {} CPUs, load average {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_avg()
    );
    let mut rng = Rng(0x5eed_f1b5);
    let v4_real: Vec<(IpNet, u32)> = read_ipasn(V4)
        .into_iter()
        .filter(|x| x.0.addr().is_ipv4())
        .collect();
    let v6_real: Vec<(IpNet, u32)> = read_ipasn(V6)
        .into_iter()
        .filter(|x| x.0.addr().is_ipv6())
        .collect();
    let v6 = scale(&v6_real, 240_000, &mut rng);
    let v4_big = scale(&v4_real, 1_050_000, &mut rng);
    let real: Vec<(IpNet, u32)> = v4_real.iter().chain(&v6).copied().collect();
    let big: Vec<(IpNet, u32)> = v4_big.iter().chain(&v6).copied().collect();
    println!(
        "tables: real = IPv4 {} + IPv6 {} (27.7k real grown), today = IPv4 {} + IPv6 {} (grown as the testbed generator does)",
        v4_real.len(),
        v6.len(),
        v4_big.len(),
        v6.len()
    );

    if run("trie") {
        trie_orders(&v6);
    }
    // ---- initial sync ----
    println!("initial sync, IPv4 + IPv6 in one batch into fresh maps ({repeat} runs each):");
    let mut keep = None;
    for (tag, table, n4) in [
        ("real", &real, v4_real.len()),
        ("today", &big, v4_big.len()),
    ] {
        if tag == "today" && !run("init") {
            continue;
        }
        let (pins, s) = initial(tag, table, n4, repeat, kernel && run("init"));
        if tag == "real" {
            keep = Some((pins, s));
        }
    }
    if let Some((pins, mut s)) = keep.filter(|_| run("churn")) {
        // ---- churn ----
        let batch = 10_000;
        let mut present4: Vec<bool> = vec![true; v4_real.len()];
        let mut present6: Vec<bool> = vec![true; v6.len()];
        let mut round = 1u32;
        let mut churn = |s: &mut FibSync, v4_share: f64, secs_: u64, rng: &mut Rng| -> (f64, f64) {
            let mut changes = 0u64;
            let mut busy = Duration::ZERO;
            let mut cpu = Duration::ZERO;
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(secs_) {
                let mut b = Vec::with_capacity(batch);
                let mut seen = HashSet::with_capacity(batch);
                while b.len() < batch {
                    let v6_pick = (rng.below(1000) as f64) >= v4_share * 1000.0;
                    let (table, present) = if v6_pick {
                        (&v6, &mut present6)
                    } else {
                        (&v4_real, &mut present4)
                    };
                    let i = rng.below(table.len());
                    let (p, asn) = table[i];
                    if !seen.insert(p) {
                        continue;
                    }
                    if present[i] && rng.below(2) == 0 {
                        b.push(Route::withdraw(p));
                        present[i] = false;
                    } else {
                        // Re-announced over one of two next-hop set assignments (best-path changes
                        // among the existing upstream sets, as most churn is); a new Route per delta,
                        // as ribd converts its FibDeltas.
                        b.push(Route::forward(p, set_for(asn, round % 2)));
                        present[i] = true;
                    }
                }
                let t = Instant::now();
                let c = process_cpu();
                s.apply(&b).unwrap();
                busy += t.elapsed();
                cpu += process_cpu().saturating_sub(c);
                changes += b.len() as u64;
                round += 1;
            }
            (
                changes as f64 / secs(busy) / 1e6,
                changes as f64 / secs(cpu) / 1e6,
            )
        };
        println!(
            "churn on the live maps (random announce/withdraw/next-hop-set changes, batches of {batch}, time inside apply):"
        );
        for (name, share) in if run("churn") {
            &[
                ("IPv4", 1.0),
                ("IPv6", 0.0),
                ("mixed as the table (68% IPv4)", 0.68),
            ][..]
        } else {
            &[][..]
        } {
            let (mut rates, mut per_cpu): (Vec<f64>, Vec<f64>) = (0..repeat)
                .map(|_| churn(&mut s, *share, 1, &mut rng))
                .unzip();
            let (min, med) = min_med(&mut rates);
            let (cmin, cmed) = min_med(&mut per_cpu);
            println!(
                "  {name}: median {med:.2} M changes/s (min {min:.2}); per CPU-second of this \
                 process (both threads; less sensitive to other load) median {cmed:.2} M (min {cmin:.2}) [load {}]",
                load_avg()
            );
        }
        drop(s);
        drop(pins);
    }

    // ---- failover with ~1M IPv4 prefixes ----
    if !run("failover") {
        return;
    }
    let v4_1m = scale(&v4_real, 1_000_000, &mut rng);
    println!(
        "failover, {} IPv4 prefixes (map work of the batch after one next-hop's death):",
        v4_1m.len()
    );
    {
        // Two next-hops: a third of the prefixes over each alone, a third over both (ECMP).
        let pins = Pins::new("fo2");
        let mut s = pins.sync();
        let r: Vec<Route> = {
            let sets = [
                fib_sync::NhSet::new([(nh_addr(0), 1)]),
                fib_sync::NhSet::new([(nh_addr(1), 1)]),
                fib_sync::NhSet::new([(nh_addr(0), 1), (nh_addr(1), 1)]),
            ];
            v4_1m
                .iter()
                .enumerate()
                .map(|(i, &(p, _))| Route {
                    prefix: p,
                    action: Some(fib_sync::RouteAction::Forward(sets[i % 3].clone())),
                })
                .collect()
        };
        s.apply(&r).unwrap();
        s.settle().unwrap();
        let mut t = Vec::new();
        let mut rep = None;
        for k in 0..repeat.max(5) {
            let (us, r) = failover(&mut s, k % 2);
            t.push(us);
            rep.get_or_insert(r);
        }
        let rep = rep.expect("ran");
        let (min, med) = min_med(&mut t);
        println!(
            "  2 next-hops (sets {{A}}, {{B}}, {{A,B}}): min {min:.1} µs, median {med:.1} µs; writes: {} path-list, {} group, {} prefix [load {}]",
            rep.writes.pathlist,
            rep.writes.nhg,
            rep.writes.dir24 + rep.writes.dir8 + rep.writes.fib4 + rep.writes.fib6,
            load_avg()
        );
    }
    {
        let pins = Pins::new("fo8");
        let mut s = pins.sync();
        s.apply(&routes(&v4_1m, 0)).unwrap();
        s.settle().unwrap();
        let mut t = Vec::new();
        let mut reps = Vec::new();
        for k in 0..repeat.max(2) * 8 {
            let (us, r) = failover(&mut s, k % 8);
            t.push(us);
            reps.push(r);
        }
        let (min, med) = min_med(&mut t);
        let pl = reps.iter().map(|r| r.writes.pathlist).max().unwrap_or(0);
        let g = reps.iter().map(|r| r.writes.nhg).max().unwrap_or(0);
        let px = reps
            .iter()
            .map(|r| r.writes.dir24 + r.writes.dir8 + r.writes.fib4 + r.writes.fib6)
            .max()
            .unwrap_or(0);
        println!(
            "  8 upstreams, {} path-lists (single, ECMP pairs and quads), each next-hop dying in turn: min {min:.1} µs, \
             median {med:.1} µs; writes per death at most: {pl} path-list, {g} group, {px} prefix [load {}]",
            s.ids_in_use().0,
            load_avg()
        );
    }
}
