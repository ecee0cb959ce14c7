//! MRT routing-table dumps (RFC 6396): a reader for TABLE_DUMP_V2 (PEER_INDEX_TABLE, RIB_IPV4_UNICAST,
//! RIB_IPV6_UNICAST) and TABLE_DUMP (v1), and a TABLE_DUMP_V2 writer.
//!
//! ```text
//!   .bz2 / .gz / raw file ──decompress (keeps what decoded before a cut)──► bytes
//!        ──records (stops cleanly at a truncated last record)──► Record::{PeerIndex, Rib, TableDump}
//!        ──read_rib──► Rib { peers, routes: (peer, prefix, raw attributes, parsed Attributes) }
//!   Writer: peer index table + RIB records ──► a file `gobgp mrt inject` and this reader load
//! ```
//!
//! Self-contained on purpose (it does not use `bgp::wire`): a small path-attribute parser/encoder for
//! ORIGIN, AS_PATH (2- and 4-octet), NEXT_HOP, MED, LOCAL_PREF, COMMUNITIES, MP_REACH_NLRI's next hop,
//! AS4_PATH and LARGE_COMMUNITIES is all the generator and the tests need.
//!
//! The RouteViews excerpts Debian's python3-pyasn ships are the first MiB of compressed files: the
//! bzip2 stream ends mid-block and the last MRT record is cut. Both are tolerated: what decodes is
//! kept and [`Records::truncated`] reports the cut.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use anyhow::{Context, Result, bail};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// MRT types and subtypes used here (RFC 6396 §4).
pub mod consts {
    pub const TABLE_DUMP: u16 = 12;
    pub const TABLE_DUMP_V2: u16 = 13;
    pub const PEER_INDEX_TABLE: u16 = 1;
    pub const RIB_IPV4_UNICAST: u16 = 2;
    pub const RIB_IPV6_UNICAST: u16 = 4;
    pub const AFI_IPV4: u16 = 1;
    pub const AFI_IPV6: u16 = 2;
}
use consts::*;

/// Path attribute type codes.
pub mod attr {
    pub const ORIGIN: u8 = 1;
    pub const AS_PATH: u8 = 2;
    pub const NEXT_HOP: u8 = 3;
    pub const MED: u8 = 4;
    pub const LOCAL_PREF: u8 = 5;
    pub const ATOMIC_AGGREGATE: u8 = 6;
    pub const AGGREGATOR: u8 = 7;
    pub const COMMUNITIES: u8 = 8;
    pub const MP_REACH_NLRI: u8 = 14;
    pub const AS4_PATH: u8 = 17;
    pub const LARGE_COMMUNITIES: u8 = 32;
}

/// A peer of the collector (PEER_INDEX_TABLE entry, or the peer of a TABLE_DUMP v1 record).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Peer {
    pub bgp_id: Ipv4Addr,
    pub addr: IpAddr,
    pub asn: u32,
}

/// AS_PATH segment types.
pub const AS_SET: u8 = 1;
pub const AS_SEQUENCE: u8 = 2;

/// The attributes the generator and tests look at, parsed from raw path attributes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Attributes {
    /// 0 IGP, 1 EGP, 2 INCOMPLETE.
    pub origin: Option<u8>,
    /// Segments as (type, ASNs), AS4_PATH already merged in (RFC 6793 §4.2.3).
    pub as_path: Vec<(u8, Vec<u32>)>,
    pub next_hop: Option<IpAddr>,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    pub atomic_aggregate: bool,
    pub communities: Vec<u32>,
    pub large_communities: Vec<[u32; 3]>,
    /// Type codes of attributes not parsed above.
    pub other: Vec<u8>,
}

impl Attributes {
    /// The AS path flattened (sets included in order).
    pub fn path(&self) -> Vec<u32> {
        self.as_path
            .iter()
            .flat_map(|(_, a)| a.iter().copied())
            .collect()
    }

    /// The originating AS: the last AS of the last AS_SEQUENCE segment, if the path ends in one.
    pub fn origin_as(&self) -> Option<u32> {
        match self.as_path.last() {
            Some((AS_SEQUENCE, asns)) => asns.last().copied(),
            _ => None,
        }
    }
}

/// One RIB entry: who announced `prefix` with which attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RibRoute {
    /// Index into [`Rib::peers`].
    pub peer: usize,
    pub prefix: IpNet,
    pub originated: u32,
    /// Raw path attributes as in the dump (4-octet AS paths for TABLE_DUMP_V2).
    pub raw: Vec<u8>,
    pub attrs: Attributes,
}

/// A whole dump.
#[derive(Clone, Debug, Default)]
pub struct Rib {
    pub peers: Vec<Peer>,
    pub routes: Vec<RibRoute>,
    /// Number of RIB records (prefixes) read.
    pub records: usize,
    /// The input ended inside a record (an excerpt cut at a size).
    pub truncated: bool,
}

impl Rib {
    /// Distinct prefixes in the dump.
    pub fn prefixes(&self) -> std::collections::HashSet<IpNet> {
        self.routes.iter().map(|r| r.prefix).collect()
    }

    /// Routes of one peer.
    pub fn of_peer(&self, peer: usize) -> impl Iterator<Item = &RibRoute> {
        self.routes.iter().filter(move |r| r.peer == peer)
    }

    /// The peer with the most routes (a "full feed" to draw distributions from).
    pub fn fullest_peer(&self) -> Option<usize> {
        let mut n = vec![0usize; self.peers.len()];
        for r in &self.routes {
            if let Some(c) = n.get_mut(r.peer) {
                *c += 1;
            }
        }
        n.iter()
            .enumerate()
            .max_by_key(|(_, c)| **c)
            .map(|(i, _)| i)
    }
}

/// One MRT record of interest.
#[derive(Clone, Debug)]
pub enum Record {
    PeerIndex {
        collector: Ipv4Addr,
        view: String,
        peers: Vec<Peer>,
    },
    /// RIB_IPV4_UNICAST / RIB_IPV6_UNICAST: (peer index, originated time, raw attributes) per entry.
    Rib {
        seq: u32,
        prefix: IpNet,
        entries: Vec<(u16, u32, Vec<u8>)>,
    },
    /// TABLE_DUMP (v1): one prefix from one peer; AS paths have 2-octet ASNs.
    TableDump {
        prefix: IpNet,
        originated: u32,
        peer: Peer,
        attrs: Vec<u8>,
    },
    /// A type or subtype this reader skips.
    Other { kind: u16, subtype: u16 },
}

/// Reads a file, decompressing `.bz2` / `.gz` by name and keeping everything decoded before a
/// truncation of the compressed stream.
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let name = path.to_string_lossy();
    let mut out = Vec::new();
    let res = if name.ends_with(".bz2") {
        bzip2::read::BzDecoder::new(std::io::BufReader::new(f)).read_to_end(&mut out)
    } else if name.ends_with(".gz") {
        flate2::read::GzDecoder::new(std::io::BufReader::new(f)).read_to_end(&mut out)
    } else {
        std::io::BufReader::new(f).read_to_end(&mut out)
    };
    match res {
        Ok(_) => Ok(out),
        // A cut compressed stream: read_to_end keeps what was decoded before the error.
        Err(_) if !out.is_empty() => Ok(out),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Iterator over the records of an MRT byte stream.
pub struct Records<'a> {
    data: &'a [u8],
    pos: usize,
    /// Set when the stream ended inside a record.
    pub truncated: bool,
}

impl<'a> Records<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Records {
            data,
            pos: 0,
            truncated: false,
        }
    }
}

impl Iterator for Records<'_> {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Result<Record>> {
        let rest = &self.data[self.pos..];
        if rest.is_empty() {
            return None;
        }
        if rest.len() < 12 {
            self.truncated = true;
            return None;
        }
        let kind = u16::from_be_bytes([rest[4], rest[5]]);
        let subtype = u16::from_be_bytes([rest[6], rest[7]]);
        let len = u32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]]) as usize;
        if rest.len() < 12 + len {
            self.truncated = true;
            return None;
        }
        let body = &rest[12..12 + len];
        self.pos += 12 + len;
        Some(parse_record(kind, subtype, body).with_context(|| {
            format!(
                "MRT record type {kind}/{subtype} at offset {}",
                self.pos - 12 - len
            )
        }))
    }
}

/// A bounds-checked big-endian cursor.
struct Cur<'a> {
    b: &'a [u8],
}

impl<'a> Cur<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.b.len() < n {
            bail!("truncated: need {n} bytes, have {}", self.b.len());
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn ip(&mut self, v6: bool) -> Result<IpAddr> {
        Ok(if v6 {
            let b: [u8; 16] = self.take(16)?.try_into()?;
            IpAddr::V6(Ipv6Addr::from(b))
        } else {
            let b: [u8; 4] = self.take(4)?.try_into()?;
            IpAddr::V4(Ipv4Addr::from(b))
        })
    }
    /// A prefix as (length, ceil(length/8) bytes), RFC 4271 NLRI encoding.
    fn prefix(&mut self, v6: bool) -> Result<IpNet> {
        let len = self.u8()?;
        let max = if v6 { 128 } else { 32 };
        if len > max {
            bail!("prefix length {len} > {max}");
        }
        let bytes = self.take(len.div_ceil(8) as usize)?;
        prefix_from(bytes, len, v6)
    }
}

fn prefix_from(bytes: &[u8], len: u8, v6: bool) -> Result<IpNet> {
    Ok(if v6 {
        let mut a = [0u8; 16];
        a[..bytes.len()].copy_from_slice(bytes);
        IpNet::V6(Ipv6Net::new(Ipv6Addr::from(a), len)?.trunc())
    } else {
        let mut a = [0u8; 4];
        a[..bytes.len()].copy_from_slice(bytes);
        IpNet::V4(Ipv4Net::new(Ipv4Addr::from(a), len)?.trunc())
    })
}

fn parse_record(kind: u16, subtype: u16, body: &[u8]) -> Result<Record> {
    let mut c = Cur { b: body };
    match (kind, subtype) {
        (TABLE_DUMP_V2, PEER_INDEX_TABLE) => {
            let collector = Ipv4Addr::from(c.u32()?);
            let vlen = c.u16()? as usize;
            let view = String::from_utf8_lossy(c.take(vlen)?).into_owned();
            let n = c.u16()?;
            let mut peers = Vec::with_capacity(n as usize);
            for _ in 0..n {
                let t = c.u8()?;
                let bgp_id = Ipv4Addr::from(c.u32()?);
                let addr = c.ip(t & 1 != 0)?;
                let asn = if t & 2 != 0 {
                    c.u32()?
                } else {
                    c.u16()? as u32
                };
                peers.push(Peer { bgp_id, addr, asn });
            }
            Ok(Record::PeerIndex {
                collector,
                view,
                peers,
            })
        }
        (TABLE_DUMP_V2, RIB_IPV4_UNICAST | RIB_IPV6_UNICAST) => {
            let seq = c.u32()?;
            let prefix = c.prefix(subtype == RIB_IPV6_UNICAST)?;
            let n = c.u16()?;
            let mut entries = Vec::with_capacity(n as usize);
            for _ in 0..n {
                let peer = c.u16()?;
                let originated = c.u32()?;
                let alen = c.u16()? as usize;
                entries.push((peer, originated, c.take(alen)?.to_vec()));
            }
            Ok(Record::Rib {
                seq,
                prefix,
                entries,
            })
        }
        (TABLE_DUMP, AFI_IPV4 | AFI_IPV6) => {
            let v6 = subtype == AFI_IPV6;
            let _view = c.u16()?;
            let _seq = c.u16()?;
            let addr = c.ip(v6)?;
            let len = c.u8()?;
            let bytes = match addr {
                IpAddr::V4(a) => a.octets().to_vec(),
                IpAddr::V6(a) => a.octets().to_vec(),
            };
            let prefix = prefix_from(&bytes, len, v6)?;
            let _status = c.u8()?;
            let originated = c.u32()?;
            let peer_addr = c.ip(v6)?;
            let asn = c.u16()? as u32;
            let alen = c.u16()? as usize;
            let attrs = c.take(alen)?.to_vec();
            Ok(Record::TableDump {
                prefix,
                originated,
                peer: Peer {
                    bgp_id: Ipv4Addr::UNSPECIFIED,
                    addr: peer_addr,
                    asn,
                },
                attrs,
            })
        }
        _ => Ok(Record::Other { kind, subtype }),
    }
}

/// Parses path attributes; `as4` says whether AS_PATH carries 4-octet ASNs (TABLE_DUMP_V2: always).
pub fn parse_attributes(raw: &[u8], as4: bool) -> Result<Attributes> {
    let mut a = Attributes::default();
    let mut as4_path = None;
    let mut c = Cur { b: raw };
    while !c.b.is_empty() {
        let flags = c.u8()?;
        let code = c.u8()?;
        let len = if flags & 0x10 != 0 {
            c.u16()? as usize
        } else {
            c.u8()? as usize
        };
        let v = c.take(len)?;
        let mut vc = Cur { b: v };
        match code {
            attr::ORIGIN => a.origin = Some(vc.u8()?),
            attr::AS_PATH => a.as_path = parse_as_path(v, as4)?,
            attr::AS4_PATH => as4_path = Some(parse_as_path(v, true)?),
            attr::NEXT_HOP if len == 4 => a.next_hop = Some(vc.ip(false)?),
            attr::MED => a.med = Some(vc.u32()?),
            attr::LOCAL_PREF => a.local_pref = Some(vc.u32()?),
            attr::ATOMIC_AGGREGATE => a.atomic_aggregate = true,
            attr::COMMUNITIES => {
                while !vc.b.is_empty() {
                    a.communities.push(vc.u32()?);
                }
            }
            attr::LARGE_COMMUNITIES => {
                while !vc.b.is_empty() {
                    a.large_communities.push([vc.u32()?, vc.u32()?, vc.u32()?]);
                }
            }
            attr::MP_REACH_NLRI => a.next_hop = mp_reach_next_hop(v),
            _ => a.other.push(code),
        }
    }
    if let Some(p4) = as4_path {
        a.as_path = merge_as4_path(&a.as_path, &p4);
    }
    Ok(a)
}

/// The next hop of an MP_REACH_NLRI: the abbreviated TABLE_DUMP_V2 form (RFC 6396 §4.3.4: next-hop
/// length, next hop) or the full one (AFI, SAFI, length, next hop, …).
fn mp_reach_next_hop(v: &[u8]) -> Option<IpAddr> {
    let addr = |b: &[u8]| -> Option<IpAddr> {
        match b.len() {
            4 => Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(b).ok()?))),
            16 | 32 => Some(IpAddr::V6(Ipv6Addr::from(
                <[u8; 16]>::try_from(&b[..16]).ok()?,
            ))),
            _ => None,
        }
    };
    let n = *v.first()? as usize;
    if v.len() == 1 + n && matches!(n, 4 | 16 | 32) {
        return addr(&v[1..]);
    }
    let n = *v.get(3)? as usize;
    addr(v.get(4..4 + n)?)
}

fn parse_as_path(v: &[u8], as4: bool) -> Result<Vec<(u8, Vec<u32>)>> {
    let mut c = Cur { b: v };
    let mut segs = Vec::new();
    while !c.b.is_empty() {
        let t = c.u8()?;
        let n = c.u8()?;
        let mut asns = Vec::with_capacity(n as usize);
        for _ in 0..n {
            asns.push(if as4 { c.u32()? } else { c.u16()? as u32 });
        }
        segs.push((t, asns));
    }
    Ok(segs)
}

/// RFC 6793 §4.2.3: keep the leading ASes of AS_PATH that AS4_PATH does not cover, then AS4_PATH.
fn merge_as4_path(path: &[(u8, Vec<u32>)], as4: &[(u8, Vec<u32>)]) -> Vec<(u8, Vec<u32>)> {
    let count = |p: &[(u8, Vec<u32>)]| -> usize {
        p.iter()
            .map(|(t, a)| if *t == AS_SET { 1 } else { a.len() })
            .sum()
    };
    let (n, n4) = (count(path), count(as4));
    if n4 > n {
        return path.to_vec();
    }
    let mut keep = n - n4;
    let mut out = Vec::new();
    for (t, a) in path {
        if keep == 0 {
            break;
        }
        if *t == AS_SET {
            out.push((*t, a.clone()));
            keep -= 1;
        } else {
            let k = keep.min(a.len());
            out.push((*t, a[..k].to_vec()));
            keep -= k;
        }
    }
    out.extend(as4.iter().cloned());
    out
}

/// Reads a whole dump (TABLE_DUMP_V2 or v1) from bytes.
pub fn read_rib(data: &[u8]) -> Result<Rib> {
    let mut rib = Rib::default();
    let mut records = Records::new(data);
    for rec in records.by_ref() {
        match rec? {
            Record::PeerIndex { peers, .. } => rib.peers = peers,
            Record::Rib {
                prefix, entries, ..
            } => {
                rib.records += 1;
                for (peer, originated, raw) in entries {
                    let attrs = parse_attributes(&raw, true)
                        .with_context(|| format!("attributes of {prefix} from peer {peer}"))?;
                    rib.routes.push(RibRoute {
                        peer: peer as usize,
                        prefix,
                        originated,
                        raw,
                        attrs,
                    });
                }
            }
            Record::TableDump {
                prefix,
                originated,
                peer,
                attrs: raw,
            } => {
                rib.records += 1;
                let idx = match rib.peers.iter().position(|p| *p == peer) {
                    Some(i) => i,
                    None => {
                        rib.peers.push(peer);
                        rib.peers.len() - 1
                    }
                };
                let attrs = parse_attributes(&raw, false)
                    .with_context(|| format!("attributes of {prefix}"))?;
                rib.routes.push(RibRoute {
                    peer: idx,
                    prefix,
                    originated,
                    raw,
                    attrs,
                });
            }
            Record::Other { .. } => {}
        }
    }
    rib.truncated = records.truncated;
    Ok(rib)
}

/// Reads a dump file (see [`read_file`] for compression and truncation).
pub fn read_rib_file(path: &Path) -> Result<Rib> {
    read_rib(&read_file(path)?).with_context(|| format!("reading MRT {}", path.display()))
}

/// Encodes path attributes in TABLE_DUMP_V2 form: 4-octet AS_PATH, NEXT_HOP for IPv4 or the
/// abbreviated MP_REACH_NLRI (next-hop length, next hop) for IPv6, in type-code order.
pub fn encode_attributes(a: &Attributes, out: &mut Vec<u8>) {
    fn put(out: &mut Vec<u8>, flags: u8, code: u8, v: &[u8]) {
        if v.len() > 255 {
            out.extend_from_slice(&[flags | 0x10, code]);
            out.extend_from_slice(&(v.len() as u16).to_be_bytes());
        } else {
            out.extend_from_slice(&[flags, code, v.len() as u8]);
        }
        out.extend_from_slice(v);
    }
    const WELL_KNOWN: u8 = 0x40;
    const OPTIONAL: u8 = 0x80;
    const TRANSITIVE: u8 = 0x40;
    put(out, WELL_KNOWN, attr::ORIGIN, &[a.origin.unwrap_or(0)]);
    let mut p = Vec::new();
    for (t, asns) in &a.as_path {
        for chunk in asns.chunks(255) {
            p.push(*t);
            p.push(chunk.len() as u8);
            for asn in chunk {
                p.extend_from_slice(&asn.to_be_bytes());
            }
        }
    }
    put(out, WELL_KNOWN, attr::AS_PATH, &p);
    if let Some(IpAddr::V4(nh)) = a.next_hop {
        put(out, WELL_KNOWN, attr::NEXT_HOP, &nh.octets());
    }
    if let Some(m) = a.med {
        put(out, OPTIONAL, attr::MED, &m.to_be_bytes());
    }
    if let Some(lp) = a.local_pref {
        put(out, WELL_KNOWN, attr::LOCAL_PREF, &lp.to_be_bytes());
    }
    if a.atomic_aggregate {
        put(out, WELL_KNOWN, attr::ATOMIC_AGGREGATE, &[]);
    }
    if !a.communities.is_empty() {
        let v: Vec<u8> = a.communities.iter().flat_map(|c| c.to_be_bytes()).collect();
        put(out, OPTIONAL | TRANSITIVE, attr::COMMUNITIES, &v);
    }
    if let Some(IpAddr::V6(nh)) = a.next_hop {
        let mut v = vec![16u8];
        v.extend_from_slice(&nh.octets());
        put(out, OPTIONAL, attr::MP_REACH_NLRI, &v);
    }
    if !a.large_communities.is_empty() {
        let v: Vec<u8> = a
            .large_communities
            .iter()
            .flat_map(|c| c.iter().flat_map(|x| x.to_be_bytes()))
            .collect();
        put(out, OPTIONAL | TRANSITIVE, attr::LARGE_COMMUNITIES, &v);
    }
}

/// Writes TABLE_DUMP_V2: one PEER_INDEX_TABLE, then RIB_IPV4/IPV6_UNICAST records.
pub struct Writer<W: std::io::Write> {
    out: W,
    timestamp: u32,
    seq: u32,
}

impl<W: std::io::Write> Writer<W> {
    /// Starts a dump with the given peers (IPv6 peers and 4-octet ASNs are flagged as such).
    pub fn new(mut out: W, timestamp: u32, collector: Ipv4Addr, peers: &[Peer]) -> Result<Self> {
        let mut b = Vec::new();
        b.extend_from_slice(&collector.octets());
        b.extend_from_slice(&0u16.to_be_bytes()); // no view name
        b.extend_from_slice(&(peers.len() as u16).to_be_bytes());
        for p in peers {
            let v6 = p.addr.is_ipv6();
            b.push(u8::from(v6) | 2);
            b.extend_from_slice(&p.bgp_id.octets());
            match p.addr {
                IpAddr::V4(a) => b.extend_from_slice(&a.octets()),
                IpAddr::V6(a) => b.extend_from_slice(&a.octets()),
            }
            b.extend_from_slice(&p.asn.to_be_bytes());
        }
        write_record(&mut out, timestamp, TABLE_DUMP_V2, PEER_INDEX_TABLE, &b)?;
        Ok(Writer {
            out,
            timestamp,
            seq: 0,
        })
    }

    /// Writes one prefix with its entries: (peer index, raw attributes from [`encode_attributes`]).
    pub fn rib(&mut self, prefix: IpNet, entries: &[(u16, &[u8])]) -> Result<()> {
        let mut b = Vec::with_capacity(64);
        b.extend_from_slice(&self.seq.to_be_bytes());
        self.seq += 1;
        b.push(prefix.prefix_len());
        let n = (prefix.prefix_len() as usize).div_ceil(8);
        let subtype = match prefix {
            IpNet::V4(p) => {
                b.extend_from_slice(&p.network().octets()[..n]);
                RIB_IPV4_UNICAST
            }
            IpNet::V6(p) => {
                b.extend_from_slice(&p.network().octets()[..n]);
                RIB_IPV6_UNICAST
            }
        };
        b.extend_from_slice(&(entries.len() as u16).to_be_bytes());
        for (peer, raw) in entries {
            b.extend_from_slice(&peer.to_be_bytes());
            b.extend_from_slice(&self.timestamp.to_be_bytes());
            b.extend_from_slice(&(raw.len() as u16).to_be_bytes());
            b.extend_from_slice(raw);
        }
        write_record(&mut self.out, self.timestamp, TABLE_DUMP_V2, subtype, &b)
    }

    /// Flushes and returns the inner writer.
    pub fn finish(mut self) -> Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

fn write_record(
    out: &mut impl std::io::Write,
    ts: u32,
    kind: u16,
    subtype: u16,
    body: &[u8],
) -> Result<()> {
    out.write_all(&ts.to_be_bytes())?;
    out.write_all(&kind.to_be_bytes())?;
    out.write_all(&subtype.to_be_bytes())?;
    out.write_all(&(body.len() as u32).to_be_bytes())?;
    out.write_all(body)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as4_path_replaces_as_trans_rfc6793_4_2_3() {
        let path = vec![(AS_SEQUENCE, vec![701, 23456, 23456])];
        let as4 = vec![(AS_SEQUENCE, vec![196608, 200000])];
        assert_eq!(
            merge_as4_path(&path, &as4),
            vec![
                (AS_SEQUENCE, vec![701]),
                (AS_SEQUENCE, vec![196608, 200000])
            ]
        );
    }

    #[test]
    fn attributes_round_trip_through_the_encoder() {
        for nh in ["192.0.2.1", "2001:db8::1"] {
            let a = Attributes {
                origin: Some(2),
                as_path: vec![
                    (AS_SEQUENCE, vec![65001, 4_200_000_000]),
                    (AS_SET, vec![1, 2]),
                ],
                next_hop: Some(nh.parse().unwrap()),
                med: Some(10),
                local_pref: Some(100),
                atomic_aggregate: true,
                communities: vec![0xfde8_0001],
                large_communities: vec![[1, 2, 3]],
                other: vec![],
            };
            let mut raw = Vec::new();
            encode_attributes(&a, &mut raw);
            assert_eq!(parse_attributes(&raw, true).unwrap(), a);
        }
    }

    #[test]
    fn cut_record_is_reported_not_an_error() {
        let mut buf = Vec::new();
        let mut w = Writer::new(&mut buf, 1, Ipv4Addr::new(1, 1, 1, 1), &[]).unwrap();
        w.rib("10.0.0.0/8".parse().unwrap(), &[]).unwrap();
        w.finish().unwrap();
        let cut = &buf[..buf.len() - 3];
        let mut r = Records::new(cut);
        assert!(matches!(r.next(), Some(Ok(Record::PeerIndex { .. }))));
        assert!(r.next().is_none());
        assert!(r.truncated);
    }
}
