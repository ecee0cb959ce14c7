//! The benchmark's feed: one seeded table (testbed::tablegen), pre-encoded per feeder into a file of
//! whole BGP messages (UPDATEs sharing attribute sets, then End-of-RIB per family), so every system under
//! test receives the same octets and the feeder is never the bottleneck.
//!
//! Feeder k sits at 10.0.k.2 / fd00:0:k::2 (interface eK in the feed namespace), the system under test
//! at 10.0.k.1 / fd00:0:k::1 (interface fK in the dut namespace); the next hop of every route is the
//! feeder's own address, so it is directly connected.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result, bail};
use bgp::wire::attr::Origin;
use bgp::wire::attr::as_path::AsPath;
use bgp::wire::attr::community::{Community, LargeCommunity};
use bgp::wire::attr::mp::{MpReach, MpUnreach, NextHop};
use bgp::wire::{AfiSafi, Context, Nlri, PathAttributes, Update};
use bytes::BytesMut;
use ipnet::IpNet;

use super::BenchArgs;
use super::churn_stream::{self, ChurnConfig, ChurnStream, NextHops};
use crate::tablegen::{self, AttrSet, Table};

/// AS of every feeder (same AS: equal paths from two feeders form an ECMP set without AS-path relax).
pub const FEED_AS: u32 = 65001;
/// AS of the system under test: a 4-octet private AS, because real paths in the table contain 65000
/// (110 prefixes of the 2014 table would be dropped as AS-path loops).
pub const DUT_AS: u32 = 4_200_000_000;

/// Addresses of link k.
pub fn feeder_v4(k: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, k as u8, 2)
}
pub fn dut_v4(k: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, k as u8, 1)
}
pub fn feeder_v6(k: usize) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0, k as u16, 0, 0, 0, 0, 2)
}
/// The feeder's second address on link k (the churn's next-hop changes move routes to it and back).
pub fn feeder_v4_alt(k: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, k as u8, 3)
}
pub fn feeder_v6_alt(k: usize) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0, k as u16, 0, 0, 0, 0, 3)
}
pub fn dut_v6(k: usize) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0, k as u16, 0, 0, 0, 0, 1)
}

/// The table and its encodings.
pub struct FeedSet {
    pub table: Table,
    pub v4: usize,
    pub v6: usize,
    /// "real 512,621 IPv4" / "scaled 1,050,000 IPv4 + 240,000 IPv6".
    pub label: String,
    dir: PathBuf,
    streams: Mutex<HashMap<(usize, usize), (PathBuf, usize)>>,
    churn_cfg: ChurnConfig,
    churns: Mutex<HashMap<usize, (PathBuf, Arc<ChurnStream>)>>,
}

pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl FeedSet {
    pub fn build(a: &BenchArgs, dir: &Path) -> Result<FeedSet> {
        let (v4, v6) = match a.table.as_str() {
            "real" => (512_621, 0),
            "scaled" => (1_050_000, 240_000),
            other => bail!("--table {other:?}: real or scaled"),
        };
        let (v4, v6) = match a.prefixes {
            Some(n) if n < v4 => (n, v6 * n / v4),
            _ => (v4, v6),
        };
        let t = std::time::Instant::now();
        let cfg = tablegen::Config {
            v4_count: v4,
            v6_count: v6,
            peer_as: Some(FEED_AS),
            ..tablegen::Config::default()
        };
        let table = tablegen::generate(&cfg)?;
        // Distinct prefixes: what a RIB ends up holding.
        let distinct: std::collections::HashSet<IpNet> =
            table.routes.iter().map(|(p, _)| p.trunc()).collect();
        let n4 = distinct.iter().filter(|p| p.addr().is_ipv4()).count();
        let n6 = distinct.len() - n4;
        let label = if n6 == 0 {
            format!("{} {} IPv4", a.table, thousands(n4))
        } else {
            format!(
                "{} {} IPv4 + {} IPv6",
                a.table,
                thousands(n4),
                thousands(n6)
            )
        };
        println!(
            "table: {label}, {} attribute sets, generated in {:.1} s",
            table.attrs.len(),
            t.elapsed().as_secs_f64()
        );
        Ok(FeedSet {
            table,
            v4: n4,
            v6: n6,
            label,
            dir: dir.to_path_buf(),
            streams: Mutex::new(HashMap::new()),
            churn_cfg: ChurnConfig {
                changes: a.churn,
                ..ChurnConfig::default()
            },
            churns: Mutex::new(HashMap::new()),
        })
    }

    pub fn prefixes(&self) -> usize {
        self.v4 + self.v6
    }

    pub fn describe(&self) -> String {
        format!(
            "feed: {} ({} attribute sets; real prefixes, AS paths, communities and MED from pyasn's RouteViews data)",
            self.label,
            self.table.attrs.len()
        )
    }

    /// The message stream feeder `k` sends (its own next hops; `prepend` extra copies of FEED_AS make
    /// it a backup path), encoded on first use. Returns the file and its size in octets.
    pub fn stream(&self, k: usize, prepend: usize) -> Result<(PathBuf, usize)> {
        let mut m = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = m.get(&(k, prepend)) {
            return Ok(s.clone());
        }
        let bytes = encode(&self.table, feeder_v4(k), feeder_v6(k), prepend)?;
        let path = self.dir.join(format!("feed-{k}-{prepend}.bgp"));
        std::fs::write(&path, &bytes).with_context(|| format!("writing {}", path.display()))?;
        m.insert((k, prepend), (path.clone(), bytes.len()));
        Ok((path, bytes.len()))
    }

    /// The churn stream of feeder `k` (generated and written on first use; the returned value holds
    /// no octets, the file does).
    pub fn churn(&self, k: usize) -> Result<(PathBuf, Arc<ChurnStream>)> {
        let mut m = self.churns.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = m.get(&k) {
            return Ok(s.clone());
        }
        let t = std::time::Instant::now();
        let nh = NextHops {
            v4: feeder_v4(k),
            v6: feeder_v6(k),
            v4_alt: feeder_v4_alt(k),
            v6_alt: feeder_v6_alt(k),
        };
        let mut c = churn_stream::generate(&self.table, nh, &self.churn_cfg)?;
        let path = self.dir.join(format!("churn-{k}.bgp"));
        std::fs::write(&path, &c.bytes).with_context(|| format!("writing {}", path.display()))?;
        println!(
            "churn stream for feeder {k}: {} octets, generated in {:.1} s",
            c.bytes.len(),
            t.elapsed().as_secs_f64()
        );
        c.bytes = Vec::new();
        let v = (path, Arc::new(c));
        m.insert(k, v.clone());
        Ok(v)
    }

    /// Every `step`-th prefix of the table (sampled lookups), IPv4 first.
    pub fn sample(&self, n: usize) -> Vec<IpNet> {
        let step = (self.table.len() / n.max(1)).max(1);
        self.table
            .routes
            .iter()
            .step_by(step)
            .map(|(p, _)| *p)
            .take(n)
            .collect()
    }
}

/// The path attributes of attribute set `a` as a feeder sends them (`prepend` extra copies of FEED_AS;
/// no NEXT_HOP: [`announce`] adds it per family).
pub fn path_attributes(a: &AttrSet, prepend: usize) -> PathAttributes {
    let mut path: Vec<u32> = Vec::with_capacity(a.as_path.len() + prepend);
    path.extend(std::iter::repeat_n(FEED_AS, prepend));
    path.extend(a.as_path.iter().copied());
    PathAttributes {
        origin: Some(match a.origin {
            0 => Origin::Igp,
            1 => Origin::Egp,
            _ => Origin::Incomplete,
        }),
        as_path: Some(AsPath::sequence(path)),
        med: a.med,
        communities: a
            .communities
            .iter()
            .map(|(x, y)| Community::new(*x, *y))
            .collect(),
        large_communities: a
            .large_communities
            .iter()
            .map(|&(global, local1, local2)| LargeCommunity {
                global,
                local1,
                local2,
            })
            .collect(),
        ..PathAttributes::default()
    }
}

/// An UPDATE announcing `nlri` with `attrs`: IPv4 in the NLRI field with NEXT_HOP `nh4`, IPv6 in
/// MP_REACH_NLRI with the global next hop `nh6`.
pub fn announce(
    v6: bool,
    mut attrs: PathAttributes,
    nlri: Vec<Nlri>,
    nh4: Ipv4Addr,
    nh6: Ipv6Addr,
) -> Update {
    if v6 {
        Update {
            attrs,
            mp_reach: Some(MpReach {
                afi_safi: AfiSafi::IPV6_UNICAST,
                next_hop: NextHop::Ipv6 {
                    global: nh6,
                    link_local: None,
                },
                nlri,
                flowspec: Vec::new(),
                opaque_nlri: Vec::new(),
            }),
            ..Update::default()
        }
    } else {
        attrs.next_hop = Some(nh4);
        Update {
            attrs,
            nlri,
            ..Update::default()
        }
    }
}

/// An UPDATE withdrawing `nlri` (IPv4 in the withdrawn field, IPv6 in MP_UNREACH_NLRI).
pub fn withdraw(v6: bool, nlri: Vec<Nlri>) -> Update {
    if v6 {
        Update {
            mp_unreach: Some(MpUnreach {
                afi_safi: AfiSafi::IPV6_UNICAST,
                withdrawn: nlri,
                flowspec: Vec::new(),
                opaque_withdrawn: Vec::new(),
            }),
            ..Update::default()
        }
    } else {
        Update {
            withdrawn: nlri,
            ..Update::default()
        }
    }
}

/// UPDATEs for `table` (prefixes sharing an attribute set share UPDATEs), then End-of-RIB for IPv4 and,
/// when the table has IPv6 routes, IPv6 (MP_REACH with a global next hop).
pub fn encode(table: &Table, nh4: Ipv4Addr, nh6: Ipv6Addr, prepend: usize) -> Result<Vec<u8>> {
    let ctx = Context::four_octet();
    let mut by_set: BTreeMap<(bool, u32), Vec<Nlri>> = BTreeMap::new();
    for (p, set) in &table.routes {
        by_set
            .entry((p.addr().is_ipv6(), *set))
            .or_default()
            .push(Nlri::new(*p));
    }
    let mut buf = BytesMut::with_capacity(table.len() * 16);
    let mut has_v6 = false;
    for ((v6, set), nlri) in by_set {
        let a = table
            .attrs
            .get(set as usize)
            .context("route points at a missing attribute set")?;
        has_v6 |= v6;
        announce(v6, path_attributes(a, prepend), nlri, nh4, nh6).encode_split(&ctx, &mut buf)?;
    }
    Update::end_of_rib(AfiSafi::IPV4_UNICAST).encode_split(&ctx, &mut buf)?;
    if has_v6 {
        Update::end_of_rib(AfiSafi::IPV6_UNICAST).encode_split(&ctx, &mut buf)?;
    }
    Ok(buf.to_vec())
}

/// Whole messages in a buffer of messages.
pub fn count_messages(b: &[u8]) -> usize {
    let (mut n, mut i) = (0, 0);
    while i + bgp::wire::HEADER_LEN <= b.len() {
        let len =
            usize::from(u16::from_be_bytes([b[i + 16], b[i + 17]])).max(bgp::wire::HEADER_LEN);
        i += len;
        n += 1;
    }
    n
}

/// Splits a buffer of whole messages into chunks of about `size` octets at message boundaries.
pub fn split_messages(b: &[u8], size: usize) -> Vec<bytes::Bytes> {
    let mut out = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i + bgp::wire::HEADER_LEN <= b.len() {
        let len =
            usize::from(u16::from_be_bytes([b[i + 16], b[i + 17]])).max(bgp::wire::HEADER_LEN);
        i += len;
        if i - start >= size {
            out.push(bytes::Bytes::copy_from_slice(&b[start..i.min(b.len())]));
            start = i;
        }
    }
    if start < b.len() {
        out.push(bytes::Bytes::copy_from_slice(&b[start..]));
    }
    out
}
