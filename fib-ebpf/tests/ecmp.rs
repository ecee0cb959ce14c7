//! ECMP through the real program (BPF_PROG_TEST_RUN): spread over 2/3/8/16 equal next-hops and over
//! weighted groups, per-flow stickiness, and resilient removal of one next-hop. Needs root.

mod common;

use std::collections::HashMap;
use std::net::Ipv4Addr;

use common::*;
use fib_ebpf::abi::Nh;
use fib_ebpf::{Forwarder, nhg};

const LO: u32 = 1;
const FLOWS: usize = 20_000;

/// xorshift64*: a deterministic stream of random flows.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[derive(Clone, Copy)]
struct Flow {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    proto: u8,
}

fn flows(n: usize, net: u8, seed: u64) -> Vec<Flow> {
    let mut r = Rng(seed);
    (0..n)
        .map(|_| {
            let x = r.next();
            Flow {
                src: Ipv4Addr::from((x >> 32) as u32 | 0x0100_0000),
                dst: Ipv4Addr::new(10, net, (x >> 8) as u8, x as u8),
                sport: (x >> 16) as u16,
                dport: [80, 443, 53, 8080][(x >> 60) as usize & 3],
                proto: if x & 1 == 0 { 6 } else { 17 },
            }
        })
        .collect()
}

fn frame(f: &Flow, ttl: u8, pad: usize) -> Vec<u8> {
    let mut l4 = ports(f.sport, f.dport);
    l4.extend(std::iter::repeat_n(0u8, pad));
    cat(&[
        &eth(DMAC_IN, SMAC_IN, None, 0x0800),
        &ipv4(f.src, f.dst, ttl, f.proto, &l4),
    ])
}

/// The next-hop a flow took (next-hop id is the last byte of the rewritten destination MAC).
fn nh_of(fwd: &mut Forwarder, f: &Flow, ttl: u8, pad: usize) -> u32 {
    let (a, out) = run(fwd.program().unwrap(), &frame(f, ttl, pad));
    assert_eq!(a, XDP_REDIRECT);
    u32::from(out[5])
}

fn setup() -> Forwarder {
    let mut fwd = Forwarder::load().expect("load");
    let m = fwd.maps_mut();
    m.tx_port_add(LO).unwrap();
    for id in 1..=16u32 {
        let n: Nh = nh(LO, id as u8, None);
        m.nh_write(id, &n).unwrap();
    }
    fwd
}

/// Installs 10.<net>.0.0/16 → path-list → a group of `members` (nh id, weight); returns the buckets.
fn group(fwd: &mut Forwarder, net: u8, gid: u32, members: &[(u32, u32)]) -> Vec<u32> {
    let b = nhg::buckets(members, fib_ebpf::abi::NHG_MAX_BUCKETS);
    let m = fwd.maps_mut();
    m.nhg_write(gid, &b).unwrap();
    let pl = 100 + u32::from(net);
    m.pathlist_set(pl, gid).unwrap();
    let mut dir = fib_ebpf::Dir24::new(4, std::time::Duration::from_secs(1));
    dir.insert(m, Ipv4Addr::new(10, net, 0, 0), 16, pl).unwrap();
    b
}

fn spread(fwd: &mut Forwarder, net: u8, members: &[(u32, u32)]) {
    let total: u32 = members.iter().map(|m| m.1).sum();
    let mut count: HashMap<u32, usize> = HashMap::new();
    for f in flows(FLOWS, net, 0x1234 + u64::from(net)) {
        *count.entry(nh_of(fwd, &f, 64, 0)).or_default() += 1;
    }
    for &(id, w) in members {
        let want = FLOWS as f64 * f64::from(w) / f64::from(total);
        let got = *count.get(&id).unwrap_or(&0) as f64;
        assert!(
            (got - want).abs() <= 0.15 * want,
            "{} members: nh {id} (weight {w}) got {got} flows, expected {want:.0} ± 15% ({count:?})",
            members.len()
        );
    }
    assert_eq!(count.values().sum::<usize>(), FLOWS);
    assert!(count.keys().all(|k| members.iter().any(|m| m.0 == *k)));
}

#[test]
fn equal_cost_spread_with_2_3_8_and_16_next_hops() {
    let mut fwd = setup();
    for (net, n) in [(2u8, 2u32), (3, 3), (8, 8), (16, 16)] {
        let members: Vec<(u32, u32)> = (1..=n).map(|i| (i, 1)).collect();
        group(&mut fwd, net, u32::from(net), &members);
        spread(&mut fwd, net, &members);
    }
}

#[test]
fn weighted_groups_follow_their_weights() {
    let mut fwd = setup();
    let members = [(1, 1), (2, 2), (3, 5)];
    group(&mut fwd, 50, 50, &members);
    spread(&mut fwd, 50, &members);
    let members = [(4, 3), (5, 1)];
    group(&mut fwd, 51, 51, &members);
    spread(&mut fwd, 51, &members);
}

#[test]
fn every_packet_of_a_flow_takes_one_next_hop() {
    let mut fwd = setup();
    let members: Vec<(u32, u32)> = (1..=8).map(|i| (i, 1)).collect();
    group(&mut fwd, 8, 8, &members);
    for f in flows(500, 8, 99) {
        let first = nh_of(&mut fwd, &f, 64, 0);
        for (ttl, pad) in [(63, 10), (17, 100), (2, 3), (200, 0)] {
            assert_eq!(
                nh_of(&mut fwd, &f, ttl, pad),
                first,
                "TTL/length must not move a flow"
            );
        }
    }
}

#[test]
fn removing_one_next_hop_moves_only_its_flows() {
    let mut fwd = setup();
    let members: Vec<(u32, u32)> = (1..=8).map(|i| (i, 1)).collect();
    let old = group(&mut fwd, 8, 8, &members);
    let fl = flows(FLOWS, 8, 7);
    let before: Vec<u32> = fl.iter().map(|f| nh_of(&mut fwd, f, 64, 0)).collect();
    // Make-before-break: the new table goes to a fresh group id, then one path-list store flips it.
    let survivors: Vec<(u32, u32)> = members.iter().copied().filter(|m| m.0 != 3).collect();
    let new = nhg::resilient(&old, &survivors);
    fwd.maps().nhg_write(9, &new).unwrap();
    fwd.maps().pathlist_set(108, 9).unwrap();
    let after: Vec<u32> = fl.iter().map(|f| nh_of(&mut fwd, f, 64, 0)).collect();
    let mut kept = 0;
    let mut others = 0;
    for (b, a) in before.iter().zip(&after) {
        assert_ne!(*a, 3, "no flow may use the removed next-hop");
        if *b != 3 {
            others += 1;
            kept += usize::from(a == b);
        }
    }
    let share = kept as f64 / others as f64;
    assert!(
        share >= 0.95,
        "only {kept}/{others} flows of the other next-hops stayed"
    );
    eprintln!(
        "resilient removal: {kept}/{others} ({:.2}%) of the other flows kept their next-hop",
        share * 100.0
    );
}

/// IPv4 frame with explicit fragment fields (flags+offset word).
fn fragment(f: &Flow, frag: u16, l4: &[u8]) -> Vec<u8> {
    let mut ip = ipv4(f.src, f.dst, 64, f.proto, l4);
    ip[6..8].copy_from_slice(&frag.to_be_bytes());
    ip[10..12].copy_from_slice(&[0, 0]);
    let c = inet_checksum(&ip[..20]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    cat(&[&eth(DMAC_IN, SMAC_IN, None, 0x0800), &ip])
}

#[test]
fn all_fragments_of_a_packet_take_one_next_hop() {
    let mut fwd = setup();
    let members: Vec<(u32, u32)> = (1..=16).map(|i| (i, 1)).collect();
    group(&mut fwd, 16, 16, &members);
    let mut seen = std::collections::HashSet::new();
    for f in flows(300, 16, 5) {
        // First fragment (MF set, offset 0) carries the ports; later ones (offset > 0) do not.
        let first = fragment(&f, 0x2000, &ports(f.sport, f.dport));
        let middle = fragment(&f, 0x2000 | 185, &[0xaa; 40]);
        let last = fragment(&f, 370, &[0xbb; 16]);
        let hops: Vec<u32> = [first, middle, last]
            .iter()
            .map(|fr| {
                let (a, out) = run(fwd.program().unwrap(), fr);
                assert_eq!(a, XDP_REDIRECT);
                u32::from(out[5])
            })
            .collect();
        assert!(
            hops.iter().all(|h| *h == hops[0]),
            "fragments split over {hops:?}"
        );
        seen.insert(hops[0]);
    }
    assert!(
        seen.len() >= 12,
        "fragmented flows still spread ({} next-hops used)",
        seen.len()
    );
}

#[test]
fn ipv6_flows_spread_over_8_next_hops() {
    let mut fwd = setup();
    let members: Vec<(u32, u32)> = (1..=8).map(|i| (i, 1)).collect();
    fwd.maps()
        .nhg_write(60, &nhg::buckets(&members, 256))
        .unwrap();
    fwd.maps().pathlist_set(160, 60).unwrap();
    let (a, l) = parse6("2001:db8:60::/48");
    fwd.maps()
        .fib6_insert(
            a,
            l,
            fib_ebpf::abi::FibVal {
                pl_id: 160,
                flags: 0,
            },
        )
        .unwrap();
    let mut r = Rng(77);
    let mut count: HashMap<u32, usize> = HashMap::new();
    for _ in 0..FLOWS {
        let x = r.next();
        let y = r.next();
        let src = std::net::Ipv6Addr::from(u128::from(x) << 64 | u128::from(y) | 0x2001 << 112);
        let dst = std::net::Ipv6Addr::from(0x2001_0db8_0060u128 << 80 | u128::from(y >> 16));
        let fr = cat(&[
            &eth(DMAC_IN, SMAC_IN, None, 0x86dd),
            &ipv6(src, dst, 64, 17, &ports(x as u16, 53)),
        ]);
        let (act, out) = run(fwd.program().unwrap(), &fr);
        assert_eq!(act, XDP_REDIRECT);
        *count.entry(u32::from(out[5])).or_default() += 1;
    }
    let want = FLOWS as f64 / 8.0;
    for id in 1..=8 {
        let got = *count.get(&id).unwrap_or(&0) as f64;
        assert!(
            (got - want).abs() <= 0.15 * want,
            "nh {id}: {got} flows, expected {want} ± 15%"
        );
    }
}

#[test]
fn the_userspace_flow_hash_predicts_the_programs_next_hop() {
    let mut fwd = setup();
    let members: Vec<(u32, u32)> = (1..=7).map(|id| (id, 1 + id % 3)).collect();
    let buckets = group(&mut fwd, 9, 9, &members);
    let seed = fib_ebpf::loader::LoadOptions::default().hash_seed;
    for f in flows(2_000, 9, 0xfeed) {
        let h = fib_ebpf::flow::flow_hash_v4(seed, f.src, f.dst, f.proto, Some((f.sport, f.dport)));
        let predicted = buckets[fib_ebpf::flow::bucket_of(h, buckets.len())];
        assert_eq!(
            predicted,
            nh_of(&mut fwd, &f, 64, 0),
            "flow {}:{} -> {}:{}",
            f.src,
            f.sport,
            f.dst,
            f.dport
        );
    }
}
