//! fib-sync benchmark (needs root; prints figures and ratios measured in one run, asserts no time):
//!
//! - initial sync of the real IPv4 table (ipasn_20140513, ~513k) and the IPv6 table (ipasn6_20151101,
//!   ~27.7k, and scaled to 240k by deaggregation) into the maps, against installing the same IPv4 table
//!   into a kernel routing table over netlink (batched RTM_NEWROUTE with ACKs, as routing daemons do) in
//!   a namespace;
//! - sustained churn of random announce/withdraw deltas;
//! - failover: map work after one next-hop's death with the full table, and with ~1M IPv4 prefixes.
//!
//! `cargo bench -p fib-sync --bench sync` (FS_BENCH_NO_KERNEL=1 skips the kernel baseline).

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

/// Grows `real` to `n` prefixes of its family by deaggregation: a real prefix and a target length
/// drawn from the real length histogram; a longer target becomes a random more-specific.
fn scale(real: &[(IpNet, u32)], n: usize, rng: &mut Rng) -> Vec<(IpNet, u32)> {
    let mut seen: HashSet<IpNet> = real.iter().map(|x| x.0).collect();
    let mut out = real.to_vec();
    while out.len() < n {
        let (p, asn) = real[rng.below(real.len())];
        let t = real[rng.below(real.len())].0.prefix_len();
        if t <= p.prefix_len() {
            continue;
        }
        let q = match p {
            IpNet::V4(p) => {
                let host = (rng.next() as u32) & (u32::MAX >> p.prefix_len());
                let a = Ipv4Addr::from(u32::from(p.network()) | host);
                IpNet::V4(Ipv4Net::new(a, t).unwrap().trunc())
            }
            IpNet::V6(p) => {
                let host = (u128::from(rng.next()) << 64 | u128::from(rng.next()))
                    & (u128::MAX >> p.prefix_len());
                let a = Ipv6Addr::from(u128::from(p.network()) | host);
                IpNet::V6(Ipv6Net::new(a, t).unwrap().trunc())
            }
        };
        if seen.insert(q) {
            out.push((q, asn));
        }
    }
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
        let mut s = FibSync::new(PinnedMaps::open(&self.0).unwrap(), SyncConfig::default());
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

/// Installs `table` into routing table 100 of a fresh namespace over netlink: RTM_NEWROUTE
/// (proto bgp, via a gateway on a dummy device), as many per sendmsg as fit in 64 KiB, each ACKed.
fn kernel_install(table: &[(IpNet, u32)]) -> Duration {
    let ns = Netns(format!("fsbench{}-k", std::process::id()));
    ip(&["netns", "add", &ns.0]);
    // A veth pair inside the namespace stands in for the upstream port (no dummy module here).
    ip(&[
        "-n", &ns.0, "link", "add", "d0", "type", "veth", "peer", "name", "d1",
    ]);
    ip(&["-n", &ns.0, "addr", "add", "192.0.2.1/24", "dev", "d0"]);
    ip(&["-n", &ns.0, "link", "set", "d1", "up"]);
    ip(&["-n", &ns.0, "link", "set", "d0", "up"]);
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
    let table: Vec<Ipv4Net> = table
        .iter()
        .filter_map(|(p, _)| match p {
            IpNet::V4(n) => Some(*n),
            _ => None,
        })
        .collect();
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
            let t = Instant::now();
            let mut buf = Vec::with_capacity(1 << 16);
            let mut pending = 0usize;
            let mut rbuf = vec![0u8; 1 << 16];
            let mut seq = 0u32;
            let flush = |buf: &mut Vec<u8>, pending: &mut usize, sock: &Socket, rbuf: &mut [u8]| {
                if *pending == 0 {
                    return;
                }
                sock.send(buf, 0).unwrap();
                buf.clear();
                while *pending > 0 {
                    let n = sock.recv(&mut &mut rbuf[..], 0).unwrap();
                    let mut off = 0;
                    while off < n {
                        let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rbuf[off..n])
                            .unwrap();
                        if let NetlinkPayload::Error(e) = &m.payload {
                            assert!(e.code.is_none(), "kernel refused a route: {e:?}");
                            *pending -= 1;
                        }
                        off += (m.header.length as usize + 3) & !3;
                    }
                }
            };
            for n in &table {
                let mut m = RouteMessage::default();
                m.header = RouteHeader {
                    address_family: AddressFamily::Inet,
                    destination_prefix_length: n.prefix_len(),
                    table: 100,
                    protocol: RouteProtocol::Bgp,
                    scope: RouteScope::Universe,
                    kind: RouteType::Unicast,
                    ..Default::default()
                };
                m.attributes.push(RouteAttribute::Table(100));
                m.attributes
                    .push(RouteAttribute::Destination(RouteAddress::Inet(n.network())));
                m.attributes
                    .push(RouteAttribute::Gateway(RouteAddress::Inet(Ipv4Addr::new(
                        192, 0, 2, 2,
                    ))));
                m.attributes.push(RouteAttribute::Oif(ifindex));
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
                    flush(&mut buf, &mut pending, &sock, &mut rbuf);
                }
                let at = buf.len();
                buf.resize(at + len, 0);
                nl.serialize(&mut buf[at..]);
                pending += 1;
            }
            flush(&mut buf, &mut pending, &sock, &mut rbuf);
            t.elapsed()
        })
        .join()
        .unwrap()
    })
}

/// Each of the 8 next-hops dies (timed) and comes back; sorted map-work times in µs and the
/// report of the first death.
fn failovers(s: &mut FibSync) -> (Vec<f64>, fib_sync::BatchReport) {
    let mut v = Vec::new();
    let mut first = None;
    for i in 0..8 {
        let t = Instant::now();
        let rep = s.set_nexthops(&[(nh_addr(i), None)]).unwrap();
        v.push(t.elapsed().as_secs_f64() * 1e6);
        first.get_or_insert(rep);
        s.set_nexthops(&[(nh_addr(i), Some(l2(i)))]).unwrap();
    }
    v.sort_by(|a, b| a.total_cmp(b));
    (v, first.expect("eight runs"))
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // cargo test --benches asks for a list; nothing to list.
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "machine: {} CPUs, load average {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut rng = Rng(0x5eed_f1b5);
    let all = read_ipasn(V4);
    let v4: Vec<(IpNet, u32)> = all
        .iter()
        .filter(|x| x.0.addr().is_ipv4())
        .copied()
        .collect();
    let v6_real: Vec<(IpNet, u32)> = read_ipasn(V6)
        .into_iter()
        .filter(|x| x.0.addr().is_ipv6())
        .collect();
    let v6 = scale(&v6_real, 240_000, &mut rng);
    println!(
        "tables: IPv4 {} real prefixes, IPv6 {} real scaled to {}",
        v4.len(),
        v6_real.len(),
        v6.len()
    );

    // ---- initial sync ----
    let pins = Pins::new("init");
    let mut s = pins.sync();
    let r4 = routes(&v4, 0);
    let r6 = routes(&v6, 0);
    let t = Instant::now();
    let rep4 = s.apply(&r4).unwrap();
    let init4 = t.elapsed();
    let t = Instant::now();
    let rep6 = s.apply(&r6).unwrap();
    let init6 = t.elapsed();
    let (pls, nhgs, nhs) = s.ids_in_use();
    println!(
        "initial sync: IPv4 {} prefixes {:.3} s ({:.0} prefixes/s; {} tbl24 + {} tbl8 stores), IPv6 {} \
         prefixes {:.3} s ({:.0}/s); {pls} path-lists, {nhgs} groups, {nhs} next-hops, {} tbl8 groups",
        v4.len(),
        secs(init4),
        v4.len() as f64 / secs(init4),
        rep4.writes.dir24,
        rep4.writes.dir8,
        v6.len(),
        secs(init6),
        v6.len() as f64 / secs(init6),
        s.tbl8_in_use()
    );
    let _ = rep6;
    let t = Instant::now();
    let mut expected = r4.clone();
    expected.extend(r6.iter().cloned());
    let diffs = s.check(&expected).unwrap();
    println!(
        "consistency check of {} prefixes: {:.3} s, {} differences",
        expected.len(),
        secs(t.elapsed()),
        diffs.len()
    );

    if std::env::var("FS_BENCH_NO_KERNEL").is_err() {
        let k = kernel_install(&v4);
        println!(
            "kernel install of the same IPv4 table over netlink: {:.3} s ({:.0} routes/s) -> maps are {:.1}x faster",
            secs(k),
            v4.len() as f64 / secs(k),
            secs(k) / secs(init4)
        );
    }

    // ---- failover with the full table ----
    // The shadow of the bulk load is built on another thread; a real failover comes later than that.
    let t = Instant::now();
    s.settle().unwrap();
    println!(
        "DIR-24-8 shadow for later batches: joined {:.3} s after the IPv6 load",
        secs(t.elapsed())
    );
    let (fo, rep) = failovers(&mut s);
    println!(
        "failover with {} prefixes, each of 8 next-hops dying in turn: map work min {:.1} µs, median {:.1} µs \
         (one batch: {} path-list stores, {} new groups, {} prefix writes)",
        expected.len(),
        fo[0],
        fo[fo.len() / 2],
        rep.writes.pathlist,
        rep.writes.nhg,
        rep.writes.dir24 + rep.writes.dir8 + rep.writes.fib6
    );

    // ---- churn ----
    let mut present: Vec<bool> = vec![true; v4.len()];
    let batch = 10_000;
    let mut changes = 0u64;
    let t = Instant::now();
    let mut round = 1u32;
    while t.elapsed() < Duration::from_secs(3) {
        let mut b = Vec::with_capacity(batch);
        let mut seen = HashSet::with_capacity(batch);
        while b.len() < batch {
            let i = rng.below(v4.len());
            if !seen.insert(i) {
                continue;
            }
            let (p, asn) = v4[i];
            if present[i] && rng.below(2) == 0 {
                b.push(Route::withdraw(p));
                present[i] = false;
            } else {
                // Re-announced over one of two next-hop set assignments (best-path changes among
                // the existing upstream sets, as most churn is).
                b.push(Route::forward(p, set_for(asn, round % 2)));
                present[i] = true;
            }
        }
        s.apply(&b).unwrap();
        changes += b.len() as u64;
        round += 1;
    }
    let el = t.elapsed();
    println!(
        "churn IPv4 (random announce/withdraw/next-hop-set changes, batches of {batch}): {} changes in {:.2} s = {:.2} M changes/s",
        changes,
        secs(el),
        changes as f64 / secs(el) / 1e6
    );
    let mut changes6 = 0u64;
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(2) {
        let b: Vec<Route> = (0..batch)
            .map(|_| {
                let (p, asn) = v6[rng.below(v6.len())];
                if rng.below(2) == 0 {
                    Route::withdraw(p)
                } else {
                    Route::forward(p, set_for(asn, round % 2))
                }
            })
            .collect();
        s.apply(&b).unwrap();
        changes6 += b.len() as u64;
        round += 1;
    }
    let el = t.elapsed();
    println!(
        "churn IPv6 (LPM trie, one syscall per change): {:.2} M changes/s",
        changes6 as f64 / secs(el) / 1e6
    );
    drop(s);
    drop(pins);

    // ---- failover with ~1M IPv4 prefixes ----
    let big = scale(&v4, 1_000_000, &mut rng);
    let pins = Pins::new("1m");
    let mut s = pins.sync();
    let t = Instant::now();
    s.apply(&routes(&big, 0)).unwrap();
    let init = t.elapsed();
    s.settle().unwrap();
    let (fo, _) = failovers(&mut s);
    println!(
        "1M IPv4 prefixes ({} after scaling): initial sync {:.3} s; failover of each of 8 next-hops: map work min {:.1} µs, median {:.1} µs",
        big.len(),
        secs(init),
        fo[0],
        fo[fo.len() / 2]
    );
}
