//! A realistic, seeded full-table generator built only from data installed on the machine.
//!
//! ```text
//!  ipasn_20140513.dat.gz  (512k real IPv4 prefix → origin AS)  ─┐
//!  ipasn6_20151101.dat.gz (27.7k real IPv6 prefix → origin AS) ─┼─► prefixes + origins, scaled to the
//!                                                               │   requested size (sampled, or grown
//!                                                               │   by deaggregation with the real
//!                                                               │   prefix-length mix)
//!  rib.20140523…bz2 / rib6.20151101…bz2 (RouteViews excerpts) ──┴─► templates: AS paths (with their
//!      one peer's view, "the fullest"                               prepends), communities, MED,
//!                                                                   ORIGIN; and the attribute-sharing
//!                                                                   ratio to reproduce
//!                                     ──► Table { attrs: Vec<AttrSet>, routes: Vec<(prefix, attr index)> }
//!                                     ──► compact file (write/read) and MRT TABLE_DUMP_V2 (gobgp mrt inject)
//! ```
//!
//! How a route is built:
//! - **Prefixes and origins** are the real ones. When more are asked for than the list has, extra
//!   prefixes are made by picking a real prefix and a target length from the real length histogram:
//!   a longer target becomes a random more-specific of the real prefix with the same origin (how the
//!   table grew after 2014: deaggregation), a shorter one a random prefix of that length in global
//!   unicast space with the picked origin. Fewer than the list has: a seeded sample.
//! - **AS paths**: an origin the excerpt's view has routes for gets one of its real attribute sets;
//!   any other origin gets a random real path with its origin (and that origin's prepends) replaced.
//!   With [`Config::peer_as`] set, the first AS becomes the feeding neighbour's AS.
//! - **Attribute sharing**: prefixes of one origin share attribute sets. Each further prefix of an
//!   origin starts a new set (another real route's upstream path, prepends, communities and MED, ending
//!   in the same origin) with a probability chosen so that distinct sets / routes matches the
//!   excerpt's view (≈0.31 IPv4, ≈0.51 IPv6); otherwise it reuses one of the origin's sets.
//! - Communities, large communities and MED always come together from one real route of the view.
//!
//! Limits: the excerpts cover only the start of the address space (IPv4 0/8–12/8, IPv6 2001::–2401::)
//! and one view each; the IPv6 list has 27.7k real prefixes (2015), so most of a 240k IPv6 table is
//! synthetic deaggregation of them.
//! - Everything random comes from one SplitMix64 stream seeded by [`Config::seed`]: same seed, same
//!   table, byte for byte.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::mrt::{self, AS_SEQUENCE, Attributes, Peer};

/// Where Debian's python3-pyasn installs its data.
pub const PYASN_DATA: &str = "/usr/lib/python3/dist-packages/data";
pub const IPASN_V4: &str = "ipasn_20140513.dat.gz";
pub const IPASN_V6: &str = "ipasn6_20151101.dat.gz";
pub const RIB_V4: &str = "rib.20140523.0600_firstMB.bz2";
pub const RIB_V6: &str = "rib6.20151101.0600_firstMB.bz2";

/// Generator settings.
#[derive(Clone, Debug)]
pub struct Config {
    pub seed: u64,
    pub v4_count: usize,
    pub v6_count: usize,
    pub next_hop_v4: Ipv4Addr,
    pub next_hop_v6: Ipv6Addr,
    /// The AS of the neighbour feeding the table: replaces the first AS of every path.
    pub peer_as: Option<u32>,
    pub local_pref: Option<u32>,
    pub data_dir: PathBuf,
}

impl Default for Config {
    /// A full table of today's size: 1.05M IPv4 + 240k IPv6 routes.
    fn default() -> Self {
        Config {
            seed: 1,
            v4_count: 1_050_000,
            v6_count: 240_000,
            next_hop_v4: Ipv4Addr::new(192, 0, 2, 1),
            next_hop_v6: "2001:db8::1".parse().unwrap_or(Ipv6Addr::UNSPECIFIED),
            peer_as: None,
            local_pref: None,
            data_dir: PathBuf::from(PYASN_DATA),
        }
    }
}

/// One shared set of path attributes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AttrSet {
    pub as_path: Vec<u32>,
    pub communities: Vec<(u16, u16)>,
    pub large_communities: Vec<(u32, u32, u32)>,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    /// 0 IGP, 1 EGP, 2 INCOMPLETE.
    pub origin: u8,
    pub next_hop: IpAddr,
}

impl AttrSet {
    /// As MRT/wire attributes (one AS_SEQUENCE).
    pub fn to_mrt(&self) -> Attributes {
        Attributes {
            origin: Some(self.origin),
            as_path: if self.as_path.is_empty() {
                Vec::new()
            } else {
                vec![(AS_SEQUENCE, self.as_path.clone())]
            },
            next_hop: Some(self.next_hop),
            med: self.med,
            local_pref: self.local_pref,
            atomic_aggregate: false,
            communities: self
                .communities
                .iter()
                .map(|(a, b)| ((*a as u32) << 16) | *b as u32)
                .collect(),
            large_communities: self
                .large_communities
                .iter()
                .map(|(a, b, c)| [*a, *b, *c])
                .collect(),
            other: Vec::new(),
        }
    }
}

/// One route, attributes expanded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenRoute {
    pub prefix: IpNet,
    pub origin_as: u32,
    pub as_path: Vec<u32>,
    pub communities: Vec<(u16, u16)>,
    pub large_communities: Vec<(u32, u32, u32)>,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    pub origin: u8,
    pub next_hop: IpAddr,
}

/// A generated table: shared attribute sets and (prefix, attribute set index) pairs, IPv4 first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table {
    pub attrs: Vec<AttrSet>,
    pub routes: Vec<(IpNet, u32)>,
}

impl Table {
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Route `i` with its attributes expanded.
    pub fn route(&self, i: usize) -> Option<GenRoute> {
        let (prefix, a) = *self.routes.get(i)?;
        let a = self.attrs.get(a as usize)?;
        Some(GenRoute {
            prefix,
            origin_as: a.as_path.last().copied().unwrap_or(0),
            as_path: a.as_path.clone(),
            communities: a.communities.clone(),
            large_communities: a.large_communities.clone(),
            med: a.med,
            local_pref: a.local_pref,
            origin: a.origin,
            next_hop: a.next_hop,
        })
    }

    /// Every route, attributes expanded.
    pub fn iter(&self) -> impl Iterator<Item = GenRoute> + '_ {
        (0..self.routes.len()).filter_map(|i| self.route(i))
    }

    /// Distinct attribute sets per route (1.0 = nothing shared).
    pub fn sharing_ratio(&self) -> f64 {
        let used: HashSet<u32> = self.routes.iter().map(|(_, a)| *a).collect();
        used.len() as f64 / self.routes.len().max(1) as f64
    }

    /// Writes the compact file (format in [`Table::read_from`]).
    pub fn write_to(&self, path: &Path) -> Result<()> {
        let f =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut w = BufWriter::new(f);
        w.write_all(b"TBRT")?;
        w.write_all(&1u32.to_be_bytes())?;
        w.write_all(&(self.attrs.len() as u32).to_be_bytes())?;
        w.write_all(&(self.routes.len() as u32).to_be_bytes())?;
        for a in &self.attrs {
            let flags = u8::from(a.med.is_some())
                | (u8::from(a.local_pref.is_some()) << 1)
                | (u8::from(a.next_hop.is_ipv6()) << 2);
            w.write_all(&[a.origin, flags])?;
            if let Some(m) = a.med {
                w.write_all(&m.to_be_bytes())?;
            }
            if let Some(lp) = a.local_pref {
                w.write_all(&lp.to_be_bytes())?;
            }
            match a.next_hop {
                IpAddr::V4(n) => w.write_all(&n.octets())?,
                IpAddr::V6(n) => w.write_all(&n.octets())?,
            }
            w.write_all(&(a.as_path.len() as u16).to_be_bytes())?;
            for x in &a.as_path {
                w.write_all(&x.to_be_bytes())?;
            }
            w.write_all(&(a.communities.len() as u16).to_be_bytes())?;
            for (x, y) in &a.communities {
                w.write_all(&x.to_be_bytes())?;
                w.write_all(&y.to_be_bytes())?;
            }
            w.write_all(&(a.large_communities.len() as u16).to_be_bytes())?;
            for (x, y, z) in &a.large_communities {
                for v in [x, y, z] {
                    w.write_all(&v.to_be_bytes())?;
                }
            }
        }
        for (p, a) in &self.routes {
            let len = p.prefix_len();
            let n = (len as usize).div_ceil(8);
            match p {
                IpNet::V4(p) => {
                    w.write_all(&[4, len])?;
                    w.write_all(&p.network().octets()[..n])?;
                }
                IpNet::V6(p) => {
                    w.write_all(&[6, len])?;
                    w.write_all(&p.network().octets()[..n])?;
                }
            }
            w.write_all(&a.to_be_bytes())?;
        }
        w.flush()?;
        Ok(())
    }

    /// Reads the compact file:
    ///
    /// ```text
    ///  "TBRT" | version u32 = 1 | n_attrs u32 | n_routes u32          (all big-endian)
    ///  n_attrs × { origin u8, flags u8 (1 MED, 2 LOCAL_PREF, 4 IPv6 next hop), [MED u32], [LP u32],
    ///              next hop (4|16), n u16, n × ASN u32, n u16, n × (u16,u16), n u16, n × (u32,u32,u32) }
    ///  n_routes × { afi u8 (4|6), length u8, ceil(length/8) address bytes, attr index u32 }
    /// ```
    pub fn read_from(path: &Path) -> Result<Table> {
        let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let mut r = BufReader::new(f);
        let mut magic = [0u8; 4];
        r.read_exact(&mut magic)?;
        if &magic != b"TBRT" || read_u32(&mut r)? != 1 {
            bail!("{} is not a version-1 TBRT route file", path.display());
        }
        let n_attrs = read_u32(&mut r)? as usize;
        let n_routes = read_u32(&mut r)? as usize;
        let mut t = Table {
            attrs: Vec::with_capacity(n_attrs),
            routes: Vec::with_capacity(n_routes),
        };
        for _ in 0..n_attrs {
            let mut h = [0u8; 2];
            r.read_exact(&mut h)?;
            let (origin, flags) = (h[0], h[1]);
            let med = if flags & 1 != 0 {
                Some(read_u32(&mut r)?)
            } else {
                None
            };
            let local_pref = if flags & 2 != 0 {
                Some(read_u32(&mut r)?)
            } else {
                None
            };
            let next_hop = if flags & 4 != 0 {
                let mut b = [0u8; 16];
                r.read_exact(&mut b)?;
                IpAddr::V6(b.into())
            } else {
                let mut b = [0u8; 4];
                r.read_exact(&mut b)?;
                IpAddr::V4(b.into())
            };
            let n = read_u16(&mut r)?;
            let as_path = (0..n).map(|_| read_u32(&mut r)).collect::<Result<_>>()?;
            let n = read_u16(&mut r)?;
            let communities = (0..n)
                .map(|_| Ok((read_u16(&mut r)?, read_u16(&mut r)?)))
                .collect::<Result<_>>()?;
            let n = read_u16(&mut r)?;
            let large_communities = (0..n)
                .map(|_| Ok((read_u32(&mut r)?, read_u32(&mut r)?, read_u32(&mut r)?)))
                .collect::<Result<_>>()?;
            t.attrs.push(AttrSet {
                as_path,
                communities,
                large_communities,
                med,
                local_pref,
                origin,
                next_hop,
            });
        }
        for _ in 0..n_routes {
            let mut h = [0u8; 2];
            r.read_exact(&mut h)?;
            let (afi, len) = (h[0], h[1]);
            let n = (len as usize).div_ceil(8);
            let prefix = match afi {
                4 if len <= 32 => {
                    let mut b = [0u8; 4];
                    r.read_exact(&mut b[..n])?;
                    IpNet::V4(Ipv4Net::new(b.into(), len)?)
                }
                6 if len <= 128 => {
                    let mut b = [0u8; 16];
                    r.read_exact(&mut b[..n])?;
                    IpNet::V6(Ipv6Net::new(b.into(), len)?)
                }
                _ => bail!("bad route entry: afi {afi} length {len}"),
            };
            let a = read_u32(&mut r)?;
            if a as usize >= t.attrs.len() {
                bail!(
                    "route {prefix} refers to attribute set {a} of {}",
                    t.attrs.len()
                );
            }
            t.routes.push((prefix, a));
        }
        Ok(t)
    }

    /// Writes the table as MRT TABLE_DUMP_V2 with one peer, for `gobgp mrt inject global` (whose 3.10
    /// drops the last routes of a file: append the file to itself before injecting).
    pub fn write_mrt(&self, path: &Path, peer: &Peer) -> Result<()> {
        let f =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut w = mrt::Writer::new(
            BufWriter::new(f),
            1_400_000_000,
            peer.bgp_id,
            std::slice::from_ref(peer),
        )?;
        let raws: Vec<Vec<u8>> = self
            .attrs
            .iter()
            .map(|a| {
                let mut v = Vec::new();
                mrt::encode_attributes(&a.to_mrt(), &mut v);
                v
            })
            .collect();
        for (p, a) in &self.routes {
            w.rib(*p, &[(0, raws[*a as usize].as_slice())])?;
        }
        w.finish()?;
        Ok(())
    }
}

fn read_u32(r: &mut impl Read) -> Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_be_bytes(b))
}

fn read_u16(r: &mut impl Read) -> Result<u16> {
    let mut b = [0u8; 2];
    r.read_exact(&mut b)?;
    Ok(u16::from_be_bytes(b))
}

/// SplitMix64: small, fast, and the same on every platform.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Reads a pyasn `.dat(.gz)` file: `prefix<TAB>asn` lines, `;` comments. Lines whose origin is not a
/// single AS number are skipped.
pub fn read_ipasn(path: &Path) -> Result<Vec<(IpNet, u32)>> {
    let bytes = mrt::read_file(path)?;
    let mut out = Vec::new();
    for line in BufReader::new(bytes.as_slice()).lines() {
        let line = line?;
        if line.starts_with(';') || line.trim().is_empty() {
            continue;
        }
        let mut it = line.split_whitespace();
        let (Some(p), Some(a)) = (it.next(), it.next()) else {
            continue;
        };
        if let (Ok(p), Ok(a)) = (p.parse::<IpNet>(), a.parse::<u32>()) {
            out.push((p.trunc(), a));
        }
    }
    Ok(out)
}

/// An attribute template taken from a real route: the path split into transit part and origin.
#[derive(Clone, Debug)]
struct Template {
    /// The path without the origin AS and its prepends.
    transit: Vec<u32>,
    /// How many times the origin appears at the end (prepending).
    origin_repeat: usize,
    communities: Vec<(u16, u16)>,
    large_communities: Vec<(u32, u32, u32)>,
    med: Option<u32>,
    origin: u8,
}

/// What the generator learns from one view (peer) of a RIB excerpt.
#[derive(Clone, Debug)]
pub struct Model {
    templates: Vec<Template>,
    /// Template indices by origin AS.
    by_origin: HashMap<u32, Vec<usize>>,
    /// Distinct attribute sets / routes in the view.
    pub sharing_ratio: f64,
    pub view_peer: Peer,
    pub view_routes: usize,
}

impl Model {
    /// Learns from the peer with the most routes in `rib`.
    pub fn from_rib(rib: &mrt::Rib) -> Result<Model> {
        let view = rib.fullest_peer().context("RIB has no routes")?;
        let mut templates = Vec::new();
        let mut by_origin: HashMap<u32, Vec<usize>> = HashMap::new();
        // Parsed, not raw: some collectors put the NLRI inside MP_REACH_NLRI, making raw bytes unique.
        let mut distinct: HashSet<&Attributes> = HashSet::new();
        let mut n = 0;
        for r in rib.of_peer(view) {
            n += 1;
            distinct.insert(&r.attrs);
            let path = r.attrs.path();
            let Some(&last) = path.last() else { continue };
            if r.attrs.origin_as().is_none() {
                continue; // ends in an AS_SET: no single origin to substitute
            }
            let repeat = path.iter().rev().take_while(|&&a| a == last).count();
            let t = Template {
                transit: path[..path.len() - repeat].to_vec(),
                origin_repeat: repeat,
                communities: r
                    .attrs
                    .communities
                    .iter()
                    .map(|&c| crate::peers::community_from_u32(c))
                    .collect(),
                large_communities: r
                    .attrs
                    .large_communities
                    .iter()
                    .map(|c| (c[0], c[1], c[2]))
                    .collect(),
                med: r.attrs.med,
                origin: r.attrs.origin.unwrap_or(0),
            };
            by_origin.entry(last).or_default().push(templates.len());
            templates.push(t);
        }
        if templates.is_empty() {
            bail!("no usable routes in the view of peer {view}");
        }
        Ok(Model {
            templates,
            by_origin,
            sharing_ratio: distinct.len() as f64 / n.max(1) as f64,
            view_peer: rib.peers[view].clone(),
            view_routes: n,
        })
    }

    /// Share of the view's routes that carry communities.
    pub fn community_share(&self) -> f64 {
        let n = self
            .templates
            .iter()
            .filter(|t| !t.communities.is_empty())
            .count();
        n as f64 / self.templates.len() as f64
    }

    /// Mean AS-path length of the view.
    pub fn mean_path_len(&self) -> f64 {
        let s: usize = self
            .templates
            .iter()
            .map(|t| t.transit.len() + t.origin_repeat)
            .sum();
        s as f64 / self.templates.len() as f64
    }
}

/// Prefix-length histogram (index = length).
pub fn length_histogram<'a>(prefixes: impl Iterator<Item = &'a IpNet>) -> Vec<usize> {
    let mut h = vec![0usize; 129];
    for p in prefixes {
        h[p.prefix_len() as usize] += 1;
    }
    h
}

/// The real data the generator starts from, read once per data directory and process.
#[derive(Debug)]
pub struct Inputs {
    pub v4: Vec<(IpNet, u32)>,
    pub v6: Vec<(IpNet, u32)>,
    pub m4: Model,
    pub m6: Model,
}

impl Inputs {
    /// Reads (or returns the cached) inputs under `dir`.
    pub fn load(dir: &Path) -> Result<std::sync::Arc<Inputs>> {
        static CACHE: std::sync::Mutex<Vec<(PathBuf, std::sync::Arc<Inputs>)>> =
            std::sync::Mutex::new(Vec::new());
        let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, i)) = cache.iter().find(|(d, _)| d == dir) {
            return Ok(i.clone());
        }
        let only = |v: Vec<(IpNet, u32)>, six: bool| -> Vec<(IpNet, u32)> {
            v.into_iter()
                .filter(|(p, _)| p.addr().is_ipv6() == six)
                .collect()
        };
        let i = std::sync::Arc::new(Inputs {
            v4: only(read_ipasn(&dir.join(IPASN_V4))?, false),
            v6: only(read_ipasn(&dir.join(IPASN_V6))?, true),
            m4: Model::from_rib(&mrt::read_rib_file(&dir.join(RIB_V4))?)?,
            m6: Model::from_rib(&mrt::read_rib_file(&dir.join(RIB_V6))?)?,
        });
        cache.push((dir.to_path_buf(), i.clone()));
        Ok(i)
    }
}

/// Builds the full table described by `cfg`.
pub fn generate(cfg: &Config) -> Result<Table> {
    let inp = Inputs::load(&cfg.data_dir)?;
    let mut rng = Rng::new(cfg.seed);
    let mut t = Table::default();
    let v4 = scale(inp.v4.clone(), cfg.v4_count, &mut rng);
    add_family(
        &mut t,
        &v4,
        &inp.m4,
        IpAddr::V4(cfg.next_hop_v4),
        cfg,
        &mut rng,
    );
    let v6 = scale(inp.v6.clone(), cfg.v6_count, &mut rng);
    add_family(
        &mut t,
        &v6,
        &inp.m6,
        IpAddr::V6(cfg.next_hop_v6),
        cfg,
        &mut rng,
    );
    Ok(t)
}

/// Samples or grows the real list to `count` prefixes (sorted by address), as described above.
fn scale(real: Vec<(IpNet, u32)>, count: usize, rng: &mut Rng) -> Vec<(IpNet, u32)> {
    let mut out = real;
    if count <= out.len() {
        // Partial Fisher-Yates: a seeded sample of `count`.
        for i in 0..count {
            let j = i + rng.below(out.len() - i);
            out.swap(i, j);
        }
        out.truncate(count);
    } else if !out.is_empty() {
        let hist = length_histogram(out.iter().map(|(p, _)| p));
        let cdf: Vec<usize> = hist
            .iter()
            .scan(0, |s, &x| {
                *s += x;
                Some(*s)
            })
            .collect();
        let total = out.len();
        let mut seen: HashSet<IpNet> = out.iter().map(|(p, _)| *p).collect();
        let mut tries = 0usize;
        while out.len() < count && tries < count * 50 {
            tries += 1;
            let x = rng.below(total);
            let len = cdf.partition_point(|&c| c <= x) as u8;
            let (base, origin) = out[rng.below(total)];
            let p = if len > base.prefix_len() {
                random_subprefix(base, len, rng)
            } else {
                random_global(base, len, rng)
            };
            if let Some(p) = p
                && seen.insert(p)
            {
                out.push((p, origin));
            }
        }
    }
    out.sort_unstable();
    out
}

/// A random prefix of length `len` inside `base`.
fn random_subprefix(base: IpNet, len: u8, rng: &mut Rng) -> Option<IpNet> {
    match base {
        IpNet::V4(b) => {
            let host =
                rng.next_u64() as u32 & (u32::MAX.checked_shr(b.prefix_len() as u32).unwrap_or(0));
            let a = u32::from(b.network()) | host;
            Some(IpNet::V4(Ipv4Net::new(a.into(), len).ok()?.trunc()))
        }
        IpNet::V6(b) => {
            let r = ((rng.next_u64() as u128) << 64) | rng.next_u64() as u128;
            let host = r & (u128::MAX.checked_shr(b.prefix_len() as u32).unwrap_or(0));
            let a = u128::from(b.network()) | host;
            Some(IpNet::V6(Ipv6Net::new(a.into(), len).ok()?.trunc()))
        }
    }
}

/// A random prefix of length `len` in global unicast space of `like`'s family (IPv4 1.0.0.0–
/// 223.255.255.255 without 10/8, 127/8, 172.16/12, 192.168/16, 100.64/10; IPv6 2000::/3).
fn random_global(like: IpNet, len: u8, rng: &mut Rng) -> Option<IpNet> {
    match like {
        IpNet::V4(_) => {
            let a = rng.next_u64() as u32;
            let o = a.to_be_bytes();
            let bad = o[0] == 0
                || o[0] == 10
                || o[0] == 127
                || o[0] >= 224
                || (o[0] == 172 && (16..32).contains(&o[1]))
                || (o[0] == 192 && o[1] == 168)
                || (o[0] == 100 && (64..128).contains(&o[1]));
            if bad {
                return None;
            }
            Some(IpNet::V4(Ipv4Net::new(a.into(), len).ok()?.trunc()))
        }
        IpNet::V6(_) => {
            let r = ((rng.next_u64() as u128) << 64) | rng.next_u64() as u128;
            let a = (r >> 3) | (1u128 << 125); // 2000::/3
            Some(IpNet::V6(Ipv6Net::new(a.into(), len).ok()?.trunc()))
        }
    }
}

fn add_family(
    t: &mut Table,
    list: &[(IpNet, u32)],
    m: &Model,
    nh: IpAddr,
    cfg: &Config,
    rng: &mut Rng,
) {
    // Group prefixes by origin, in order of first appearance (deterministic).
    let mut order: Vec<u32> = Vec::new();
    let mut groups: HashMap<u32, Vec<IpNet>> = HashMap::new();
    for (p, o) in list {
        groups
            .entry(*o)
            .or_insert_with(|| {
                order.push(*o);
                Vec::new()
            })
            .push(*p);
    }
    let (n, o) = (list.len() as f64, order.len() as f64);
    let target_sets = (m.sharing_ratio * n).max(o);
    let p_new = if n > o {
        ((target_sets - o) / (n - o)).clamp(0.0, 1.0)
    } else {
        0.0
    };

    let mut interned: HashMap<AttrSet, u32> = HashMap::new();
    let mut intern = |t: &mut Table, a: AttrSet| -> u32 {
        *interned.entry(a.clone()).or_insert_with(|| {
            t.attrs.push(a);
            (t.attrs.len() - 1) as u32
        })
    };
    let mut routes = Vec::with_capacity(list.len());
    for origin in order {
        let prefixes = &groups[&origin];
        let own = m.by_origin.get(&origin);
        let pick_any = |rng: &mut Rng| -> &Template { &m.templates[rng.below(m.templates.len())] };
        let pick = |rng: &mut Rng| -> &Template {
            match own {
                Some(v) => &m.templates[v[rng.below(v.len())]],
                None => &m.templates[rng.below(m.templates.len())],
            }
        };
        let base = pick(rng).clone();
        let make = |tpl: &Template| {
            let mut path = tpl.transit.clone();
            path.extend(std::iter::repeat_n(origin, tpl.origin_repeat.max(1)));
            // The first AS is the view's neighbour; keep one-AS paths (the neighbour is the origin).
            if let Some(peer) = cfg.peer_as
                && path.len() > 1
            {
                path[0] = peer;
            }
            AttrSet {
                as_path: path,
                communities: tpl.communities.clone(),
                large_communities: tpl.large_communities.clone(),
                med: tpl.med,
                local_pref: cfg.local_pref,
                origin: tpl.origin,
                next_hop: nh,
            }
        };
        let mut sets = vec![intern(t, make(&base))];
        for (i, p) in prefixes.iter().enumerate() {
            let a = if i == 0 {
                sets[0]
            } else if rng.unit() < p_new {
                // A new set for this origin: another real route's path (upstreams, prepends),
                // communities and MED, ending in this origin. Collisions with the origin's sets retry.
                let mut a = sets[0];
                for _ in 0..8 {
                    let variant = pick_any(rng);
                    a = intern(t, make(variant));
                    if !sets.contains(&a) {
                        sets.push(a);
                        break;
                    }
                }
                a
            } else {
                sets[rng.below(sets.len())]
            };
            routes.push((*p, a));
        }
    }
    routes.sort_unstable();
    t.routes.extend(routes);
}
