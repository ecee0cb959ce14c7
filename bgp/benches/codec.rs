//! UPDATE decode/encode throughput on a realistic stream, against bgpkit-parser on the same bytes.
//!
//!   cargo bench -p bgp --bench codec
//!
//! The stream: 20,000 UPDATEs of 1–30 prefixes each (uniform), 85 % IPv4 in the NLRI field and 15 % IPv6 in
//! MP_REACH_NLRI, 8 % pure withdrawals. IPv4 prefix lengths follow the real 2014 RouteViews table (512,621
//! prefixes: /24 52.7 %, /22 11.3 %, /23 9.2 %, /21 7.3 %, /20 7.0 %, /19 4.9 %, /16 2.5 %, /18 2.3 %, ...);
//! IPv6 mostly /48, /32, /44, /40. Attributes: ORIGIN, AS_PATH of 1–9 ASes (mean ≈ 4, a quarter of them
//! 4-octet), NEXT_HOP, MED (30 %), COMMUNITIES (60 %, 1–12), LARGE_COMMUNITIES (10 %), EXTENDED_COMMUNITIES
//! (5 %), AGGREGATOR + ATOMIC_AGGREGATE (5 %). 4-octet AS session, no ADD-PATH (bgpkit-parser's parser takes one
//! ADD-PATH switch for all families, so it is off for both).
//!
//! After criterion's own report, the bench prints prefixes/s for each decoder and their ratio, measured in the
//! same process on the same bytes (best of 15 interleaved passes over the whole stream).

use bgp::wire::attr::as_path::AsPath;
use bgp::wire::attr::community::{Community, ExtCommunity, LargeCommunity};
use bgp::wire::attr::mp::{MpReach, MpUnreach, NextHop};
use bgp::wire::attr::{Aggregator, Origin, PathAttributes};
use bgp::wire::{AfiSafi, Context, Message, Nlri, Update};
use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;
use std::time::Instant;

/// IPv4 prefix length → count in the 2014-05-13 RouteViews table (Debian's python3-pyasn data).
const V4_LENGTHS: &[(u8, u32)] = &[
    (8, 16),
    (9, 12),
    (10, 30),
    (11, 90),
    (12, 259),
    (13, 487),
    (14, 974),
    (15, 1726),
    (16, 13017),
    (17, 7050),
    (18, 11917),
    (19, 24936),
    (20, 35828),
    (21, 37624),
    (22, 57782),
    (23, 47385),
    (24, 270023),
    (25, 918),
    (26, 1060),
    (27, 537),
    (28, 138),
    (29, 292),
    (30, 331),
    (31, 20),
    (32, 169),
];
const V6_LENGTHS: &[(u8, u32)] = &[
    (32, 20),
    (29, 3),
    (36, 3),
    (40, 6),
    (44, 8),
    (46, 2),
    (47, 2),
    (48, 55),
    (56, 1),
    (64, 2),
];

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn weighted(&mut self, table: &[(u8, u32)]) -> u8 {
        let total: u32 = table.iter().map(|t| t.1).sum();
        let mut x = self.below(u64::from(total)) as u32;
        for &(v, w) in table {
            if x < w {
                return v;
            }
            x -= w;
        }
        table[0].0
    }
    fn asn(&mut self) -> u32 {
        if self.chance(25) {
            131_072 + self.below(270_000) as u32
        } else {
            1 + self.below(64_000) as u32
        }
    }
}

fn attrs(r: &mut Rng, v6: bool) -> PathAttributes {
    let len = 1 + (r.below(5) + r.below(5)) as usize; // 1..9, triangular around 5
    let path: Vec<u32> = (0..len).map(|_| r.asn()).collect();
    let first = path[0];
    let mut a = PathAttributes {
        origin: Some(
            [Origin::Igp, Origin::Igp, Origin::Igp, Origin::Incomplete][r.below(4) as usize],
        ),
        as_path: Some(AsPath::sequence(path)),
        next_hop: (!v6).then(|| Ipv4Addr::from(0xc000_0200 | r.below(250) as u32)),
        ..Default::default()
    };
    if r.chance(30) {
        a.med = Some(r.below(1000) as u32);
    }
    if r.chance(60) {
        let n = 1 + r.below(12);
        a.communities = (0..n)
            .map(|_| Community::new(first as u16, r.below(65535) as u16))
            .collect();
    }
    if r.chance(10) {
        a.large_communities = (0..1 + r.below(3))
            .map(|_| LargeCommunity {
                global: first,
                local1: r.below(100) as u32,
                local2: r.below(1000) as u32,
            })
            .collect();
    }
    if r.chance(5) {
        a.ext_communities = vec![ExtCommunity::route_target_as2(
            first as u16,
            r.below(1000) as u32,
        )];
    }
    if r.chance(5) {
        a.atomic_aggregate = true;
        a.aggregator = Some(Aggregator {
            asn: first,
            address: Ipv4Addr::from(r.next() as u32),
        });
    }
    a
}

fn prefix(r: &mut Rng, v6: bool) -> Nlri {
    if v6 {
        let l = r.weighted(V6_LENGTHS);
        let a = (0x2000u128 << 112) | (u128::from(r.next()) << 64 | u128::from(r.next())) >> 4;
        Nlri::new(IpNet::V6(
            Ipv6Net::new(Ipv6Addr::from(a), l).unwrap().trunc(),
        ))
    } else {
        let l = r.weighted(V4_LENGTHS);
        let a = (1 + r.below(222) as u32) << 24 | (r.next() as u32 & 0x00ff_ffff);
        Nlri::new(IpNet::V4(
            Ipv4Net::new(Ipv4Addr::from(a), l).unwrap().trunc(),
        ))
    }
}

/// The stream, the range of each message in it, and the number of prefixes.
fn stream(n: usize) -> (Vec<u8>, Vec<Range<usize>>, usize) {
    let ctx = Context::four_octet();
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let mut buf = BytesMut::new();
    let mut ranges = Vec::with_capacity(n);
    let mut prefixes = 0;
    for _ in 0..n {
        let v6 = r.chance(15);
        let k = 1 + r.below(30) as usize;
        let nlri: Vec<Nlri> = (0..k).map(|_| prefix(&mut r, v6)).collect();
        prefixes += k;
        let withdraw = r.chance(8);
        let u = match (v6, withdraw) {
            (false, false) => Update {
                attrs: attrs(&mut r, false),
                nlri,
                ..Default::default()
            },
            (false, true) => Update {
                withdrawn: nlri,
                ..Default::default()
            },
            (true, false) => Update {
                attrs: attrs(&mut r, true),
                mp_reach: Some(MpReach {
                    afi_safi: AfiSafi::IPV6_UNICAST,
                    next_hop: NextHop::Ipv6 {
                        global: Ipv6Addr::from(0x2001_0db8u128 << 96 | 1),
                        link_local: None,
                    },
                    nlri,
                    flowspec: Vec::new(),
                    opaque_nlri: vec![],
                }),
                ..Default::default()
            },
            (true, true) => Update {
                mp_unreach: Some(MpUnreach {
                    afi_safi: AfiSafi::IPV6_UNICAST,
                    withdrawn: nlri,
                    flowspec: Vec::new(),
                    opaque_withdrawn: vec![],
                }),
                ..Default::default()
            },
        };
        let start = buf.len();
        Message::Update(u)
            .encode(&ctx, &mut buf)
            .expect("fits in 4096");
        ranges.push(start..buf.len());
    }
    (buf.to_vec(), ranges, prefixes)
}

fn decode_wire(bytes: &[u8], ranges: &[Range<usize>], ctx: &Context) -> usize {
    let mut n = 0;
    for r in ranges {
        match Message::decode(&bytes[r.clone()], ctx) {
            Ok(Message::Update(u)) => n += u.prefix_count(),
            other => panic!("wire failed: {other:?}"),
        }
    }
    n
}

fn decode_bgpkit(bytes: &Bytes, ranges: &[Range<usize>]) -> usize {
    use bgpkit_parser::models::{AsnLength, BgpMessage};
    let mut n = 0;
    for r in ranges {
        let mut b = bytes.slice(r.clone());
        match bgpkit_parser::parser::bgp::messages::parse_bgp_message(
            &mut b,
            false,
            &AsnLength::Bits32,
        ) {
            Ok(BgpMessage::Update(u)) => n += black_box(u).announced_prefixes.len().max(1),
            other => panic!("bgpkit failed: {other:?}"),
        }
    }
    n
}

fn encode_wire(updates: &[Message], ctx: &Context, out: &mut BytesMut) -> usize {
    out.clear();
    for m in updates {
        m.encode(ctx, out).unwrap();
    }
    out.len()
}

fn main() {
    let ctx = Context::four_octet();
    let (bytes, ranges, prefixes) = stream(20_000);
    let shared = Bytes::from(bytes.clone());
    let decoded: Vec<Message> = ranges
        .iter()
        .map(|r| Message::decode(&bytes[r.clone()], &ctx).unwrap())
        .collect();
    // Sanity: both decoders accept every message; our encoder reproduces the stream exactly.
    assert_eq!(decode_wire(&bytes, &ranges, &ctx), prefixes);
    decode_bgpkit(&shared, &ranges);
    let mut out = BytesMut::with_capacity(bytes.len());
    encode_wire(&decoded, &ctx, &mut out);
    assert_eq!(&out[..], &bytes[..]);

    let mut c = Criterion::default().configure_from_args();
    let mut g = c.benchmark_group("update_stream");
    g.throughput(Throughput::Elements(prefixes as u64));
    g.sample_size(20);
    g.bench_function("wire_decode", |b| {
        b.iter(|| decode_wire(black_box(&bytes), &ranges, &ctx))
    });
    g.bench_function("bgpkit_decode", |b| {
        b.iter(|| decode_bgpkit(black_box(&shared), &ranges))
    });
    g.bench_function("wire_encode", |b| {
        b.iter(|| encode_wire(black_box(&decoded), &ctx, &mut out))
    });
    g.finish();
    c.final_summary();

    // Under `cargo test --benches` criterion runs each function once; skip the long comparison then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    // Interleaved passes, best of 15 each, so that load from other processes hits both decoders alike.
    let time = |f: &mut dyn FnMut() -> usize| {
        let t = Instant::now();
        black_box(f());
        t.elapsed().as_secs_f64()
    };
    let (mut t_wire, mut t_kit, mut t_enc) = (f64::INFINITY, f64::INFINITY, f64::INFINITY);
    for _ in 0..15 {
        t_wire = t_wire.min(time(&mut || decode_wire(&bytes, &ranges, &ctx)));
        t_kit = t_kit.min(time(&mut || decode_bgpkit(&shared, &ranges)));
        t_enc = t_enc.min(time(&mut || encode_wire(&decoded, &ctx, &mut out)));
    }
    let p = prefixes as f64;
    println!(
        "stream: {} UPDATEs, {} prefixes, {} octets",
        ranges.len(),
        prefixes,
        bytes.len()
    );
    println!("bgp::wire decode:      {:>12.0} prefixes/s", p / t_wire);
    println!("bgpkit-parser decode:  {:>12.0} prefixes/s", p / t_kit);
    println!("bgp::wire encode:      {:>12.0} prefixes/s", p / t_enc);
    println!(
        "decode ratio bgp::wire / bgpkit-parser: {:.2}x",
        t_kit / t_wire
    );
}
