//! Katran-style packet table through BPF_PROG_TEST_RUN: {description, input frame, expected action,
//! expected output frame, expected counter}, run against both IPv4 engines (and with the route cache).
//! Expected output frames are built from scratch (fresh headers, checksum computed over the whole
//! header), so the forwarder's incremental checksum is checked against an independent computation.
//! Needs root (CAP_BPF).

mod common;

use std::net::{Ipv4Addr, Ipv6Addr};

use common::*;
use fib_ebpf::abi::*;
use fib_ebpf::{Engine4, Forwarder, LoadOptions};

const LO: u32 = 1;

struct Fixture {
    desc: &'static str,
    input: Vec<u8>,
    action: u32,
    /// None: the frame must come out unchanged.
    output: Option<Vec<u8>>,
    reason: StatReason,
}

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}
fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

const SRC4: &str = "100.100.0.1";
const SRC6: &str = "2001:db8:ffff::1";

/// Next-hops: 5 (/8 and ::/0), 6 (/24, /48), 7 (/25, /64), 8 (/32), 9 (VLAN 100), 10 (not a tx port).
fn setup(engine: Engine4, cache: bool) -> (Forwarder, Routes4) {
    let mut fwd = Forwarder::load_with(&LoadOptions {
        engine4: engine,
        route_cache: cache,
        ..Default::default()
    })
    .expect("load forwarder");
    let m = fwd.maps_mut();
    m.tx_port_add(LO).expect("tx_port lo");
    for (id, n) in [
        (5, nh(LO, 5, None)),
        (6, nh(LO, 6, None)),
        (7, nh(LO, 7, None)),
        (8, nh(LO, 8, None)),
        (9, nh(LO, 9, Some(100))),
        (10, nh(77, 10, None)),
    ] {
        m.nh_write(id, &n).unwrap();
        m.nhg_write(id, &[id]).unwrap();
        m.pathlist_set(id + 15, id).unwrap(); // pl 20..25 -> nhg 5..10
    }
    m.pathlist_set(30, NHG_PASS).unwrap(); // unresolved
    let mut r = Routes4::new();
    for (p, pl) in [
        ("10.0.0.0/8", 20),
        ("10.1.0.0/24", 21),
        ("10.1.0.128/25", 22),
        ("10.1.0.200/32", 23),
        ("172.16.0.0/16", 24),
        ("192.0.2.0/24", PL_BLACKHOLE),
        ("198.51.100.0/24", PL_PASS),
        ("198.51.100.1/32", PL_LOCAL),
        ("203.0.113.0/24", 30),
        ("203.0.114.0/24", 25),
    ] {
        r.insert(m, p, pl);
    }
    for (p, pl) in [
        ("::/0", 20),
        ("2001:db8::/48", 21),
        ("2001:db8:0:1::/64", 22),
        ("2001:db8:dead::/48", PL_BLACKHOLE),
        ("2001:db8:2::/48", 24),
    ] {
        let (a, l) = parse6(p);
        m.fib6_insert(
            a,
            l,
            FibVal {
                pl_id: pl,
                flags: 0,
            },
        )
        .unwrap();
    }
    (fwd, r)
}

fn tcp4(dst: &str, ttl: u8, vlan: Option<u16>) -> Vec<u8> {
    cat(&[
        &eth(DMAC_IN, SMAC_IN, vlan, 0x0800),
        &ipv4(v4(SRC4), v4(dst), ttl, 6, &ports(1234, 80)),
    ])
}

fn tcp6(dst: &str, hop: u8) -> Vec<u8> {
    cat(&[
        &eth(DMAC_IN, SMAC_IN, None, 0x86dd),
        &ipv6(v6(SRC6), v6(dst), hop, 6, &ports(1234, 80)),
    ])
}

/// The frame a next-hop should emit, built from scratch.
fn out4(n: u8, dst: &str, ttl: u8, vlan: Option<(u8, u16)>) -> Vec<u8> {
    let h = nh(LO, n, None);
    cat(&[
        &eth_pcp(h.dmac, h.smac, vlan, 0x0800),
        &ipv4(v4(SRC4), v4(dst), ttl, 6, &ports(1234, 80)),
    ])
}

fn out6(n: u8, dst: &str, hop: u8) -> Vec<u8> {
    let h = nh(LO, n, None);
    cat(&[
        &eth(h.dmac, h.smac, None, 0x86dd),
        &ipv6(v6(SRC6), v6(dst), hop, 6, &ports(1234, 80)),
    ])
}

fn fixtures() -> Vec<Fixture> {
    use StatReason::*;
    let fwd = |desc, input, output| Fixture {
        desc,
        input,
        action: XDP_REDIRECT,
        output: Some(output),
        reason: Forwarded,
    };
    let pass = |desc, input, reason| Fixture {
        desc,
        input,
        action: XDP_PASS,
        output: None,
        reason,
    };
    let drop = |desc, input, reason| Fixture {
        desc,
        input,
        action: XDP_DROP,
        output: None,
        reason,
    };

    let mut options = tcp4("10.9.9.9", 64, None);
    options[14] = 0x46; // IHL 6: one word of options (content irrelevant: the kernel handles it)
    let mut bad_ihl = tcp4("10.9.9.9", 64, None);
    bad_ihl[14] = 0x44;
    let mut long_tot = tcp4("10.9.9.9", 64, None);
    long_tot[16..18].copy_from_slice(&1500u16.to_be_bytes());
    let mut short_tot = tcp4("10.9.9.9", 64, None);
    short_tot[16..18].copy_from_slice(&12u16.to_be_bytes());
    let mut v6_long = tcp6("2001:db8::1", 64);
    v6_long[18..20].copy_from_slice(&1500u16.to_be_bytes());
    let mut arp = eth([0xff; 6], SMAC_IN, None, 0x0806);
    arp.extend_from_slice(&[0u8; 28]);
    let mut ns = vec![135u8, 0, 0, 0];
    ns.extend_from_slice(&[0u8; 20]);
    let nd = cat(&[
        &eth([0x33, 0x33, 0xff, 0, 0, 1], SMAC_IN, None, 0x86dd),
        &ipv6(v6("fe80::1"), v6("ff02::1:ff00:1"), 255, 58, &ns),
    ]);
    let mcast4 = cat(&[
        &eth([1, 0, 0x5e, 0, 0, 5], SMAC_IN, None, 0x0800),
        &ipv4(v4(SRC4), v4("224.0.0.5"), 1, 89, &[0; 20]),
    ]);
    let bcast = cat(&[
        &eth([0xff; 6], SMAC_IN, None, 0x0800),
        &ipv4(v4(SRC4), v4("10.255.255.255"), 64, 17, &ports(68, 67)),
    ]);
    let mcast6 = cat(&[
        &eth([0x33, 0x33, 0, 0, 0, 1], SMAC_IN, None, 0x86dd),
        &ipv6(v6(SRC6), v6("ff02::1"), 1, 17, &ports(1, 2)),
    ]);
    let hbh = cat(&[
        &eth(DMAC_IN, SMAC_IN, None, 0x86dd),
        &ipv6(
            v6(SRC6),
            v6("2001:db8::1"),
            64,
            0,
            &[6, 0, 0, 0, 0, 0, 0, 0],
        ),
    ]);
    let tagged_pcp = cat(&[
        &eth_pcp(DMAC_IN, SMAC_IN, Some((5, 7)), 0x0800),
        &ipv4(v4(SRC4), v4("172.16.3.4"), 64, 6, &ports(1234, 80)),
    ]);

    vec![
        fwd(
            "ipv4 /8 forwards, TTL 64->63, checksum",
            tcp4("10.9.9.9", 64, None),
            out4(5, "10.9.9.9", 63, None),
        ),
        fwd(
            "ipv4 /24 beats /8",
            tcp4("10.1.0.5", 64, None),
            out4(6, "10.1.0.5", 63, None),
        ),
        fwd(
            "ipv4 /25 beats /24",
            tcp4("10.1.0.130", 64, None),
            out4(7, "10.1.0.130", 63, None),
        ),
        fwd(
            "ipv4 /32 beats /25",
            tcp4("10.1.0.200", 64, None),
            out4(8, "10.1.0.200", 63, None),
        ),
        fwd(
            "ipv4 /25 neighbour of the /32",
            tcp4("10.1.0.201", 64, None),
            out4(7, "10.1.0.201", 63, None),
        ),
        fwd(
            "ipv4 TTL 2 still forwards (checksum carry case)",
            tcp4("10.9.9.9", 2, None),
            out4(5, "10.9.9.9", 1, None),
        ),
        fwd(
            "ipv4 TTL 255",
            tcp4("10.9.9.9", 255, None),
            out4(5, "10.9.9.9", 254, None),
        ),
        fwd(
            "untagged in, next-hop with VLAN 100: tag pushed",
            tcp4("172.16.3.4", 64, None),
            out4(9, "172.16.3.4", 63, Some((0, 100))),
        ),
        fwd(
            "tagged in (VLAN 7, PCP 5), next-hop VLAN 100: VID rewritten, PCP kept",
            tagged_pcp,
            out4(9, "172.16.3.4", 63, Some((5, 100))),
        ),
        fwd(
            "tagged in, next-hop without VLAN: tag popped",
            tcp4("10.9.9.9", 64, Some(7)),
            out4(5, "10.9.9.9", 63, None),
        ),
        fwd(
            "ipv6 ::/0 forwards, hop limit 64->63",
            tcp6("2001:db9::1", 64),
            out6(5, "2001:db9::1", 63),
        ),
        fwd(
            "ipv6 /48 beats ::/0",
            tcp6("2001:db8::1", 64),
            out6(6, "2001:db8::1", 63),
        ),
        fwd(
            "ipv6 /64 beats /48",
            tcp6("2001:db8:0:1::5", 64),
            out6(7, "2001:db8:0:1::5", 63),
        ),
        pass(
            "ipv4 TTL 1: kernel sends time exceeded",
            tcp4("10.9.9.9", 1, None),
            StatReason::PassTtl,
        ),
        pass("ipv4 TTL 0", tcp4("10.9.9.9", 0, None), PassTtl),
        pass("ipv6 hop limit 1", tcp6("2001:db8::1", 1), PassTtl),
        pass("ipv4 options", options, PassIpOptions),
        pass("ipv4 no route", tcp4("100.64.0.1", 64, None), PassNoRoute),
        pass(
            "ipv4 local /32 inside a pass-to-kernel /24",
            tcp4("198.51.100.1", 64, None),
            PassLocal,
        ),
        pass(
            "ipv4 route flagged pass-to-kernel",
            tcp4("198.51.100.2", 64, None),
            PassKernel,
        ),
        pass(
            "ipv4 next-hop unresolved",
            tcp4("203.0.113.9", 64, None),
            PassUnresolved,
        ),
        pass(
            "ipv4 egress not in tx_port",
            tcp4("203.0.114.9", 64, None),
            RedirectFailed,
        ),
        pass("ARP", arp, PassNonIp),
        pass("IPv6 neighbour solicitation", nd, PassNd),
        pass("ipv4 multicast", mcast4, PassMcast),
        pass("L2 broadcast", bcast, PassMcast),
        pass("ipv6 multicast", mcast6, PassMcast),
        pass(
            "ipv6 link-local destination",
            tcp6("fe80::2", 64),
            PassLocal,
        ),
        pass("ipv6 hop-by-hop extension header", hbh, PassFragmentOrExt),
        drop("ipv4 blackhole", tcp4("192.0.2.1", 64, None), DropBlackhole),
        drop(
            "ipv6 blackhole",
            tcp6("2001:db8:dead::1", 64),
            DropBlackhole,
        ),
        drop(
            "truncated VLAN tag",
            cat(&[&eth(DMAC_IN, SMAC_IN, None, 0x8100), &[0, 1]]),
            DropMalformed,
        ),
        drop(
            "truncated IPv4 header",
            tcp4("10.9.9.9", 64, None)[..30].to_vec(),
            DropMalformed,
        ),
        drop("IPv4 IHL 4", bad_ihl, DropMalformed),
        drop(
            "IPv4 total length beyond the frame",
            long_tot,
            DropMalformed,
        ),
        drop(
            "IPv4 total length below the header",
            short_tot,
            DropMalformed,
        ),
        drop(
            "truncated IPv6 header",
            tcp6("2001:db8::1", 64)[..50].to_vec(),
            DropMalformed,
        ),
        drop(
            "IPv6 payload length beyond the frame",
            v6_long,
            DropMalformed,
        ),
    ]
}

fn run_table(engine: Engine4, cache: bool) {
    let (mut fwd, _routes) = setup(engine, cache);
    for f in fixtures() {
        let before = fwd.maps().stat(f.reason).unwrap();
        let (action, out) = run(fwd.program().unwrap(), &f.input);
        assert_eq!(
            action, f.action,
            "{engine:?}/cache={cache}: {}: action",
            f.desc
        );
        let want = f.output.as_ref().unwrap_or(&f.input);
        assert_eq!(
            &out, want,
            "{engine:?}/cache={cache}: {}: output frame",
            f.desc
        );
        // (Frames shorter than an Ethernet header cannot be test-run: the kernel rejects them.)
        if action == XDP_REDIRECT {
            // The header checksum of what left must verify from scratch.
            let l3 = if out[12..14] == [0x81, 0x00] { 18 } else { 14 };
            if out[l3 - 2..l3] == [0x08, 0x00] {
                assert_eq!(
                    inet_checksum(&out[l3..l3 + 20]),
                    0,
                    "{}: IPv4 checksum",
                    f.desc
                );
            }
        }
        let after = fwd.maps().stat(f.reason).unwrap();
        assert_eq!(
            after.packets,
            before.packets + 1,
            "{}: counter {:?}",
            f.desc,
            f.reason
        );
        assert_eq!(
            after.bytes,
            before.bytes + f.input.len() as u64,
            "{}: bytes",
            f.desc
        );
    }
    // Every reason except the two that need a broken map is covered by the table.
    let covered: std::collections::HashSet<_> = fixtures().iter().map(|f| f.reason).collect();
    assert_eq!(
        covered.len(),
        StatReason::ALL.len(),
        "the table covers every reason"
    );
    // Per next-hop tx counters moved for the next-hops used.
    assert!(fwd.maps().nh_stats(5).unwrap().packets >= 4);
    assert_eq!(fwd.maps().nh_stats(8).unwrap().packets, 1);
}

#[test]
fn packet_table_dir24_engine() {
    run_table(Engine4::Dir24, false);
}

#[test]
fn packet_table_lpm_engine() {
    run_table(Engine4::Lpm, false);
}

#[test]
fn packet_table_with_route_cache() {
    run_table(Engine4::Dir24, true);
}

#[test]
fn route_cache_hits_until_the_generation_moves() {
    pin_to_cpu0();
    for engine in [Engine4::Dir24, Engine4::Lpm] {
        let (mut fwd, mut routes) = setup(engine, true);
        let frame = tcp4("10.1.0.5", 64, None);
        let (a, out) = run(fwd.program().unwrap(), &frame);
        assert_eq!(
            (a, out),
            (XDP_REDIRECT, out4(6, "10.1.0.5", 63, None)),
            "{engine:?}: first lookup fills the cache"
        );
        // Move the /24 to another path-list without bumping the generation: the cached answer stays.
        routes.insert(fwd.maps_mut(), "10.1.0.0/24", 23);
        let (_, out) = run(fwd.program().unwrap(), &frame);
        assert_eq!(
            out,
            out4(6, "10.1.0.5", 63, None),
            "{engine:?}: served from the cache"
        );
        // A path-list flip is seen at once (the cache holds path-list ids, not next-hops).
        fwd.maps().pathlist_set(21, 7).unwrap();
        let (_, out) = run(fwd.program().unwrap(), &frame);
        assert_eq!(
            out,
            out4(7, "10.1.0.5", 63, None),
            "{engine:?}: path-list flip through a cached entry"
        );
        // After the bump the new route is looked up.
        fwd.maps().bump_generation();
        let (_, out) = run(fwd.program().unwrap(), &frame);
        assert_eq!(
            out,
            out4(8, "10.1.0.5", 63, None),
            "{engine:?}: generation bump invalidates"
        );
    }
}

#[test]
fn a_cache_entry_filled_on_one_cpu_is_not_a_zero_answer_on_another() {
    // Every CPU has its own slots; the slot CPU 1 looks at is still zeroed (empty, generation 0).
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    if cpus < 2 {
        eprintln!("single CPU: nothing to check");
        return;
    }
    let (mut fwd, _routes) = setup(Engine4::Dir24, true);
    let frame = tcp4("10.1.0.5", 64, None);
    let want = (XDP_REDIRECT, out4(6, "10.1.0.5", 63, None));
    pin_to_cpu(0);
    assert_eq!(
        run(fwd.program().unwrap(), &frame),
        want,
        "CPU 0 fills its cache"
    );
    pin_to_cpu(1);
    assert_eq!(
        run(fwd.program().unwrap(), &frame),
        want,
        "CPU 1 must not trust its zeroed slot"
    );
    assert_eq!(
        run(fwd.program().unwrap(), &frame),
        want,
        "CPU 1 from its own cache"
    );
}

/// The route cache's slot of an IPv4 destination (forward.bpf.c `cache_slot`: the address as the
/// program loads it, a little-endian u32 of the network-order bytes).
fn cache_slot4(addr: Ipv4Addr, seed: u32) -> u32 {
    (u32::from_le_bytes(addr.octets()) ^ seed).wrapping_mul(0x9e37_79b1)
        >> (32 - ROUTE_CACHE_SLOTS.trailing_zeros())
}

#[test]
fn route_cache_slot_shared_by_two_destinations_answers_for_the_one_it_holds() {
    pin_to_cpu0();
    let seed = LoadOptions::default().hash_seed;
    let a = v4("10.1.0.5"); // 10.1.0.0/24 -> next-hop 6
    let slot = cache_slot4(a, seed);
    // Another destination with the same slot, under 10.0.0.0/8 only (next-hop 5).
    let b = (0x0a02_0000u32..0x0b00_0000)
        .map(Ipv4Addr::from)
        .find(|&x| cache_slot4(x, seed) == slot)
        .expect("a colliding destination in 10.2.0.0-10.255.255.255");
    let (mut fwd, _routes) = setup(Engine4::Dir24, true);
    let (sa, sb) = (a.to_string(), b.to_string());
    for (dst, nh, what) in [
        (&sa, 6, "fills the slot"),
        (&sb, 5, "same slot, other address: a miss, not a's answer"),
        (&sa, 6, "b replaced a in the slot: a is looked up again"),
        (&sa, 6, "a from the cache"),
    ] {
        let (act, out) = run(fwd.program().unwrap(), &tcp4(dst, 64, None));
        assert_eq!(
            (act, out),
            (XDP_REDIRECT, out4(nh, dst, 63, None)),
            "{dst}: {what}"
        );
        // The slot (CPU 0's copy) holds the destination just looked up: the two really share it.
        let map = fwd.raw_map("route_cache").expect("route_cache");
        let cache: aya::maps::PerCpuArray<_, RouteCacheEntry> =
            aya::maps::PerCpuArray::try_from(map).expect("per-CPU array");
        let e = cache.get(&slot, 0).expect("slot")[0];
        let held = Ipv4Addr::from(e.addr[0].to_le_bytes());
        assert_eq!(
            (held.to_string(), e.family),
            (dst.clone(), 4),
            "slot {slot} after {dst}"
        );
    }
}
