//! Shared by the classifier tests: packet builders (checksums computed from scratch) and proptest
//! generators of rule sets and packets that hit them.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;

use fib_ebpf::acl::{Action, ByteSet, Family, Match, Prefix, RateLimit, RateUnit, Rule, RuleId};
use proptest::prelude::*;

pub const SMAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xee];
pub const DMAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

pub fn csum(data: &[u8]) -> u16 {
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

/// A packet to build: everything the classifier can look at.
#[derive(Debug, Clone)]
pub struct Pkt {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    /// ICMP type/code (for proto 1 / 58), else ignored.
    pub icmp: (u8, u8),
    pub tcp_flags: u8,
    pub dscp: u8,
    pub ecn: u8,
    /// IPv4 only: DF, MF, fragment offset (8-byte units).
    pub df: bool,
    pub mf: bool,
    pub frag_off: u16,
    /// Bytes after the transport header's first 20 bytes.
    pub pad: usize,
    pub vlan: Option<u16>,
}

impl Pkt {
    pub fn v4(src: &str, dst: &str) -> Pkt {
        Pkt {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            proto: 6,
            sport: 40000,
            dport: 443,
            icmp: (0, 0),
            tcp_flags: 0x10,
            dscp: 0,
            ecn: 0,
            df: false,
            mf: false,
            frag_off: 0,
            pad: 0,
            vlan: None,
        }
    }
    pub fn v6(src: &str, dst: &str) -> Pkt {
        Pkt::v4("0.0.0.0", "0.0.0.0").with(|p| {
            p.src = src.parse().unwrap();
            p.dst = dst.parse().unwrap();
        })
    }
    pub fn with(mut self, f: impl FnOnce(&mut Pkt)) -> Pkt {
        f(&mut self);
        self
    }

    fn l4(&self) -> Vec<u8> {
        let mut l4 = vec![0u8; 20 + self.pad];
        match self.proto {
            1 | 58 => {
                l4[0] = self.icmp.0;
                l4[1] = self.icmp.1;
            }
            _ => {
                l4[0..2].copy_from_slice(&self.sport.to_be_bytes());
                l4[2..4].copy_from_slice(&self.dport.to_be_bytes());
                l4[12] = 0x50;
                l4[13] = self.tcp_flags;
            }
        }
        l4
    }

    /// The Ethernet frame.
    pub fn frame(&self) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&DMAC);
        f.extend_from_slice(&SMAC);
        if let Some(v) = self.vlan {
            f.extend_from_slice(&0x8100u16.to_be_bytes());
            f.extend_from_slice(&v.to_be_bytes());
        }
        let l4 = self.l4();
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                f.extend_from_slice(&0x0800u16.to_be_bytes());
                let mut h = vec![0u8; 20];
                h[0] = 0x45;
                h[1] = (self.dscp << 2) | (self.ecn & 3);
                h[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
                h[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
                let fo = (u16::from(self.df) << 14)
                    | (u16::from(self.mf) << 13)
                    | (self.frag_off & 0x1fff);
                h[6..8].copy_from_slice(&fo.to_be_bytes());
                h[8] = 64;
                h[9] = self.proto;
                h[12..16].copy_from_slice(&s.octets());
                h[16..20].copy_from_slice(&d.octets());
                let c = csum(&h);
                h[10..12].copy_from_slice(&c.to_be_bytes());
                f.extend_from_slice(&h);
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                f.extend_from_slice(&0x86ddu16.to_be_bytes());
                let tc = (self.dscp << 2) | (self.ecn & 3);
                let mut h = vec![0u8; 40];
                h[0] = 0x60 | (tc >> 4);
                h[1] = (tc << 4) | 0x0a;
                h[2] = 0xbc;
                h[3] = 0xde;
                h[4..6].copy_from_slice(&(l4.len() as u16).to_be_bytes());
                h[6] = self.proto;
                h[7] = 64;
                h[8..24].copy_from_slice(&s.octets());
                h[24..40].copy_from_slice(&d.octets());
                f.extend_from_slice(&h);
            }
            _ => panic!("mixed families"),
        }
        f.extend_from_slice(&l4);
        f
    }
}

pub fn pfx(s: &str) -> Prefix {
    s.parse().unwrap()
}

pub fn rule(id: u64, m: Match, action: Action) -> Rule {
    Rule::new(id, m, action)
}

/// A terminal accept rule that marks the packet with DSCP `id` (so the output says which matched).
pub fn mark(id: u64, m: Match) -> Rule {
    Rule {
        id: RuleId(id),
        matches: m,
        action: Action::Accept,
        set_dscp: Some(id as u8),
        terminal: true,
    }
}

// ---- generators ----

const V4_POOL: [&str; 10] = [
    "0.0.0.0/0",
    "10.0.0.0/8",
    "10.1.0.0/16",
    "10.1.2.0/24",
    "10.1.2.128/25",
    "10.1.2.3/32",
    "10.200.0.0/14",
    "192.0.2.0/24",
    "172.16.0.0/12",
    "100.64.7.0/24",
];
const V6_POOL: [&str; 7] = [
    "::/0",
    "2001:db8::/32",
    "2001:db8:1::/48",
    "2001:db8:1:2::/64",
    "2001:db8:1:2::5/128",
    "fd00::/8",
    "2001:db8:1:2:3:4::/96",
];
const PORTS: [u16; 8] = [0, 22, 53, 80, 443, 1000, 2000, 65535];

fn ranges8(max: u8) -> impl Strategy<Value = Option<Vec<RangeInclusive<u8>>>> {
    prop_oneof![
        4 => Just(None),
        1 => prop::collection::vec((0..=max, 0..=8u8).prop_map(move |(a, w)| a..=a.saturating_add(w).min(max)), 0..3).prop_map(Some),
    ]
}

fn ranges16() -> impl Strategy<Value = Option<Vec<RangeInclusive<u16>>>> {
    let point = prop_oneof![prop::sample::select(PORTS.to_vec()), any::<u16>()];
    prop_oneof![
        3 => Just(None),
        1 => prop::collection::vec((point, prop_oneof![Just(0u16), 0..100u16, 0..5000u16]).prop_map(|(a, w)| a..=a.saturating_add(w)), 0..3).prop_map(Some),
    ]
}

fn byteset() -> impl Strategy<Value = Option<ByteSet>> {
    prop_oneof![
        4 => Just(None),
        1 => any::<u8>().prop_map(|b| Some(ByteSet::all_of(b))),
        1 => any::<u8>().prop_map(|b| Some(ByteSet::any_of(b))),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(m, v)| Some(ByteSet::masked(m, v).complement())),
    ]
}

fn prefix(fam: Family) -> BoxedStrategy<Prefix> {
    match fam {
        Family::V4 => prop_oneof![
            3 => prop::sample::select(V4_POOL.to_vec()).prop_map(pfx),
            1 => (any::<u32>(), 0..=32u8).prop_map(|(a, l)| Prefix::V4(Ipv4Addr::from(a), l)),
        ]
        .boxed(),
        Family::V6 => prop_oneof![
            3 => prop::sample::select(V6_POOL.to_vec()).prop_map(pfx),
            1 => (any::<u128>(), 0..=128u8).prop_map(|(a, l)| Prefix::V6(Ipv6Addr::from(a), l)),
        ]
        .boxed(),
    }
}

pub fn matches_strategy() -> impl Strategy<Value = Match> {
    let fam = prop_oneof![Just(None), Just(Some(Family::V4)), Just(Some(Family::V6))];
    fam.prop_flat_map(|fam| {
        let pf = move || match fam {
            None => Just(None).boxed(),
            Some(f) => prop_oneof![1 => Just(None), 2 => prefix(f).prop_map(Some)].boxed(),
        };
        (
            (pf(), pf(), ranges8(255), ranges16(), ranges16()),
            (
                ranges8(255),
                ranges8(255),
                byteset(),
                ranges16(),
                ranges8(63),
                byteset(),
            ),
            prop_oneof![4 => Just(None), 1 => prop::collection::vec(1..4u32, 0..2).prop_map(Some)],
        )
            .prop_map(
                move |(
                    (src, dst, protocol, src_port, dst_port),
                    (it, ic, tf, pl, dscp, fr),
                    iif,
                )| Match {
                    family: fam,
                    src,
                    dst,
                    protocol: protocol.map(|v| {
                        v.into_iter()
                            .map(|r| {
                                proto_of(*r.start())..=proto_of(*r.end()).max(proto_of(*r.start()))
                            })
                            .collect()
                    }),
                    src_port,
                    dst_port,
                    icmp_type: it,
                    icmp_code: ic,
                    tcp_flags: tf,
                    pkt_len: pl.map(|v| {
                        v.into_iter()
                            .map(|r| {
                                (*r.start() % 200 + 40)
                                    ..=(*r.end() % 200 + 40).max(*r.start() % 200 + 40)
                            })
                            .collect()
                    }),
                    dscp,
                    fragment: fr,
                    ingress_ifindex: iif,
                },
            )
    })
}

/// Protocol numbers the packet generator uses, so protocol conditions hit often.
fn proto_of(v: u8) -> u8 {
    [1, 6, 17, 58, 132, 47][usize::from(v) % 6]
}

pub fn action_strategy() -> impl Strategy<Value = (Action, Option<u8>, bool)> {
    (
        prop_oneof![
            3 => Just(Action::Accept),
            2 => Just(Action::Drop),
            // rate 0 drops everything; a huge rate never does (no clock needed)
            1 => Just(Action::RateLimit(RateLimit { rate: 0, unit: RateUnit::Packets, burst: 1 })),
            1 => Just(Action::RateLimit(RateLimit { rate: 1 << 40, unit: RateUnit::Bytes, burst: 1 << 30 })),
        ],
        prop_oneof![Just(None), (0..64u8).prop_map(Some)],
        prop_oneof![2 => Just(true), 1 => Just(false)],
    )
}

pub fn rules_strategy(max: usize) -> impl Strategy<Value = Vec<Rule>> {
    prop::collection::vec((matches_strategy(), action_strategy()), 0..max).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (m, (action, set_dscp, terminal)))| Rule {
                id: RuleId(1000 + i as u64),
                matches: m,
                action,
                set_dscp,
                terminal,
            })
            .collect()
    })
}

fn addr_in(p: &Prefix, host: u128) -> IpAddr {
    match *p {
        Prefix::V4(a, l) => {
            let m = if l == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(l))
            };
            IpAddr::V4(Ipv4Addr::from((u32::from(a) & m) | (host as u32 & !m)))
        }
        Prefix::V6(a, l) => {
            let m = if l == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(l))
            };
            IpAddr::V6(Ipv6Addr::from((u128::from(a) & m) | (host & !m)))
        }
    }
}

/// Packets biased towards the pools the rules draw from.
pub fn pkt_strategy() -> impl Strategy<Value = (Pkt, u32)> {
    let fam = prop_oneof![3 => Just(Family::V4), 1 => Just(Family::V6)];
    fam.prop_flat_map(|fam| {
        (
            (prefix(fam), any::<u128>(), prefix(fam), any::<u128>()),
            (
                0..6u8,
                prop_oneof![prop::sample::select(PORTS.to_vec()), any::<u16>()],
                prop_oneof![prop::sample::select(PORTS.to_vec()), any::<u16>()],
            ),
            (0..20u8, 0..20u8, any::<u8>(), 0..64u8, 0..4u8),
            (
                any::<bool>(),
                prop_oneof![3 => Just(false), 1 => Just(true)],
                prop_oneof![3 => Just(0u16), 1 => 1..100u16],
                0..180usize,
            ),
            (1..4u32, prop_oneof![3 => Just(None), 1 => Just(Some(7u16))]),
        )
            .prop_map(
                move |(
                    (sp, sh, dp, dh),
                    (proto, sport, dport),
                    (it, ic, tf, dscp, ecn),
                    (df, mf, fo, pad),
                    (iif, vlan),
                )| {
                    let mut p = Pkt::v4("0.0.0.0", "0.0.0.0");
                    p.src = addr_in(&sp, sh);
                    p.dst = addr_in(&dp, dh);
                    p.proto = proto_of(proto);
                    if fam == Family::V6 && p.proto == 1 {
                        p.proto = 58;
                    }
                    if fam == Family::V4 && p.proto == 58 {
                        p.proto = 1;
                    }
                    p.sport = sport;
                    p.dport = dport;
                    p.icmp = (it, ic);
                    p.tcp_flags = tf;
                    p.dscp = dscp;
                    p.ecn = ecn;
                    if fam == Family::V4 {
                        p.df = df;
                        p.mf = mf;
                        p.frag_off = fo;
                    }
                    p.pad = pad;
                    p.vlan = vlan;
                    // the forwarder passes link-local and multicast destinations before classifying
                    if let IpAddr::V6(d) = p.dst
                        && (d.octets()[0] == 0xff
                            || (d.octets()[0] == 0xfe && d.octets()[1] & 0xc0 == 0x80))
                    {
                        p.dst = "2001:db8:9::1".parse().unwrap();
                    }
                    if let IpAddr::V4(d) = p.dst
                        && (u32::from(d) >> 28 == 0xe || u32::from(d) == u32::MAX)
                    {
                        p.dst = "10.1.2.3".parse().unwrap();
                    }
                    (p, iif)
                },
            )
    })
}

// ---- running the forwarder ----

pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;

/// One BPF_PROG_TEST_RUN of `frame` arriving on `ifindex` (1 = lo): (action, output frame).
pub fn run_on(prog: &mut aya::programs::Xdp, frame: &[u8], ifindex: u32) -> (u32, Vec<u8>) {
    use aya::programs::{TestRun, TestRunOptions};
    // struct xdp_md {data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex}
    let mut ctx = [0u8; 24];
    ctx[4..8].copy_from_slice(&(frame.len() as u32).to_ne_bytes());
    ctx[12..16].copy_from_slice(&ifindex.to_ne_bytes());
    let mut out = vec![0u8; frame.len() + 64];
    let r = prog
        .test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ctx_in: Some(&ctx),
            ..Default::default()
        })
        .expect("BPF_PROG_TEST_RUN");
    out.truncate(r.data_size_out as usize);
    (r.return_value, out)
}

/// `frame` with its DSCP set to `dscp`, built from scratch (IPv4 checksum recomputed in full).
pub fn with_dscp(frame: &[u8], dscp: u8) -> Vec<u8> {
    let mut f = frame.to_vec();
    let mut l3 = 14;
    if u16::from_be_bytes([f[12], f[13]]) == 0x8100 {
        l3 += 4;
    }
    match f[l3] >> 4 {
        4 => {
            f[l3 + 1] = (dscp << 2) | (f[l3 + 1] & 3);
            f[l3 + 10] = 0;
            f[l3 + 11] = 0;
            let c = csum(&f[l3..l3 + 20]);
            f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
        }
        _ => {
            let tc = (f[l3] << 4) | (f[l3 + 1] >> 4);
            let tc = (dscp << 2) | (tc & 3);
            f[l3] = 0x60 | (tc >> 4);
            f[l3 + 1] = (tc << 4) | (f[l3 + 1] & 0x0f);
        }
    }
    f
}
