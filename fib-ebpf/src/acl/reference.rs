//! The reference matcher: a plain linear walk over the rules with the semantics of the module
//! documentation. The compiled classifier (in BPF, and its Rust emulation) must agree with it.

use std::net::IpAddr;

use super::abi::{CLS_FRAG_DF, CLS_FRAG_FF, CLS_FRAG_ISF, CLS_FRAG_LF, CLS_MAX_APPLY};
use super::{Action, Family, Match, Prefix, RateLimit, RuleSet};

/// The header fields the classifier looks at, as it sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketFields {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IPv4 protocol / IPv6 next header.
    pub protocol: u8,
    /// (source, destination) for TCP/UDP/SCTP first fragments with 4 bytes of header.
    pub ports: Option<(u16, u16)>,
    /// (type, code) for ICMP (IPv4) / ICMPv6 (IPv6).
    pub icmp: Option<(u8, u8)>,
    pub tcp_flags: Option<u8>,
    pub pkt_len: u16,
    pub dscp: u8,
    /// FlowSpec fragment bits (DF 1, is-fragment 2, first 4, last 8).
    pub fragment: u8,
    pub ingress_ifindex: u32,
}

impl PacketFields {
    pub fn family(&self) -> Family {
        match self.src {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// Parses an Ethernet frame (one optional 802.1Q/802.1ad tag) the way the XDP stage does.
    /// `None` for frames the forwarder does not classify (non-IP, IPv4 options, IPv6 extension
    /// headers, truncated headers).
    pub fn from_frame(frame: &[u8], ingress_ifindex: u32) -> Option<PacketFields> {
        let mut off = 12;
        let mut et = u16::from_be_bytes(frame.get(12..14)?.try_into().ok()?);
        if et == 0x8100 || et == 0x88a8 {
            et = u16::from_be_bytes(frame.get(16..18)?.try_into().ok()?);
            off += 4;
        }
        let l3 = frame.get(off + 2..)?;
        match et {
            0x0800 => {
                let h = l3.get(..20)?;
                if h[0] != 0x45 {
                    return None;
                }
                let fo = u16::from_be_bytes([h[6], h[7]]);
                let frag_off = fo & 0x1fff;
                let mf = fo & 0x2000 != 0;
                let mut fragment = 0;
                if fo & 0x4000 != 0 {
                    fragment |= CLS_FRAG_DF;
                }
                if mf || frag_off != 0 {
                    fragment |= CLS_FRAG_ISF;
                }
                if frag_off == 0 && mf {
                    fragment |= CLS_FRAG_FF;
                }
                if frag_off != 0 && !mf {
                    fragment |= CLS_FRAG_LF;
                }
                let tot = usize::from(u16::from_be_bytes([h[2], h[3]]));
                // Like the XDP stage: the transport header is read up to the end of the frame.
                let l4 = l3.get(20..).unwrap_or(&[]);
                let mut p = PacketFields {
                    src: IpAddr::from(<[u8; 4]>::try_from(&h[12..16]).ok()?),
                    dst: IpAddr::from(<[u8; 4]>::try_from(&h[16..20]).ok()?),
                    protocol: h[9],
                    ports: None,
                    icmp: None,
                    tcp_flags: None,
                    pkt_len: tot as u16,
                    dscp: h[1] >> 2,
                    fragment,
                    ingress_ifindex,
                };
                if frag_off == 0 {
                    p.fill_l4(l4, 1);
                }
                Some(p)
            }
            0x86dd => {
                let h = l3.get(..40)?;
                let payload = usize::from(u16::from_be_bytes([h[4], h[5]]));
                let next = h[6];
                if matches!(next, 0 | 43 | 44 | 60 | 51 | 50 | 135 | 139 | 140) {
                    return None;
                }
                let tc = (h[0] << 4) | (h[1] >> 4);
                let l4 = l3.get(40..).unwrap_or(&[]);
                let mut p = PacketFields {
                    src: IpAddr::from(<[u8; 16]>::try_from(&h[8..24]).ok()?),
                    dst: IpAddr::from(<[u8; 16]>::try_from(&h[24..40]).ok()?),
                    protocol: next,
                    ports: None,
                    icmp: None,
                    tcp_flags: None,
                    pkt_len: (payload + 40) as u16,
                    dscp: tc >> 2,
                    fragment: 0,
                    ingress_ifindex,
                };
                p.fill_l4(l4, 58);
                Some(p)
            }
            _ => None,
        }
    }

    fn fill_l4(&mut self, l4: &[u8], icmp_proto: u8) {
        match self.protocol {
            6 | 17 | 132 => {
                if l4.len() >= 4 {
                    self.ports = Some((
                        u16::from_be_bytes([l4[0], l4[1]]),
                        u16::from_be_bytes([l4[2], l4[3]]),
                    ));
                }
                if self.protocol == 6 && l4.len() >= 14 {
                    self.tcp_flags = Some(l4[13]);
                }
            }
            p if p == icmp_proto && l4.len() >= 2 => self.icmp = Some((l4[0], l4[1])),
            _ => {}
        }
    }
}

fn addr_bits(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => (u32::from(a) as u128) << 96,
        IpAddr::V6(a) => u128::from(a),
    }
}

fn prefix_ok(p: &Option<Prefix>, a: IpAddr, fam: Family) -> bool {
    match p {
        None => true,
        Some(p) => p.family() == fam && p.contains_bits(addr_bits(a)),
    }
}

fn in_ranges<T: PartialOrd + Copy>(r: &Option<Vec<std::ops::RangeInclusive<T>>>, v: T) -> bool {
    match r {
        None => true,
        Some(rs) => rs.iter().any(|r| r.contains(&v)),
    }
}

fn opt_ranges<T: PartialOrd + Copy>(
    r: &Option<Vec<std::ops::RangeInclusive<T>>>,
    v: Option<T>,
) -> bool {
    match (r, v) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(_), Some(v)) => in_ranges(r, v),
    }
}

/// Whether `m` matches `p`.
pub fn matches(m: &Match, p: &PacketFields) -> bool {
    let fam = p.family();
    if m.effective_family().is_some_and(|f| f != fam) {
        return false;
    }
    prefix_ok(&m.src, p.src, fam)
        && prefix_ok(&m.dst, p.dst, fam)
        && in_ranges(&m.protocol, p.protocol)
        && opt_ranges(&m.src_port, p.ports.map(|x| x.0))
        && opt_ranges(&m.dst_port, p.ports.map(|x| x.1))
        && opt_ranges(&m.icmp_type, p.icmp.map(|x| x.0))
        && opt_ranges(&m.icmp_code, p.icmp.map(|x| x.1))
        && match (&m.tcp_flags, p.tcp_flags) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(s), Some(f)) => s.contains(f),
        }
        && in_ranges(&m.pkt_len, p.pkt_len)
        && in_ranges(&m.dscp, p.dscp & 63)
        && m.fragment.is_none_or(|s| s.contains(p.fragment))
        && m.ingress_ifindex
            .as_ref()
            .is_none_or(|l| l.contains(&p.ingress_ifindex))
}

/// What the rule set does to one packet.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    /// Positions of the rules that counted the packet, in order.
    pub counted: Vec<usize>,
    /// Position of the rule that dropped it.
    pub dropped_by: Option<usize>,
    /// The DSCP written into a packet that is not dropped.
    pub set_dscp: Option<u8>,
}

impl Outcome {
    pub fn dropped(&self) -> bool {
        self.dropped_by.is_some()
    }
}

/// Evaluates `set` on `p`. `conform(position, limit, cost)` answers for rate-limit rules whether
/// the packet fits the bucket (the caller models the bucket; cost is 1 packet or `pkt_len` bytes).
pub fn evaluate(
    set: &RuleSet,
    p: &PacketFields,
    mut conform: impl FnMut(usize, &RateLimit, u64) -> bool,
) -> Outcome {
    let mut out = Outcome::default();
    for (i, r) in set.rules.iter().enumerate() {
        if out.counted.len() >= CLS_MAX_APPLY as usize {
            break;
        }
        if !matches(&r.matches, p) {
            continue;
        }
        out.counted.push(i);
        let drop = match &r.action {
            Action::Accept => false,
            Action::Drop => true,
            Action::RateLimit(l) => {
                let cost = match l.unit {
                    super::RateUnit::Packets => 1,
                    super::RateUnit::Bytes => u64::from(p.pkt_len),
                };
                !conform(i, l, cost)
            }
        };
        if drop {
            out.dropped_by = Some(i);
            out.set_dscp = None;
            return out;
        }
        if out.set_dscp.is_none() {
            out.set_dscp = r.set_dscp.map(|d| d & 63);
        }
        if r.terminal {
            break;
        }
    }
    out
}
