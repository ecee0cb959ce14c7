//! `testbed feed`: opens a BGP session with `bgp::session` and announces a table as fast as the peer
//! accepts it, then holds the session (withdraw / re-announce on demand).
//!
//! ```text
//!   ipasn_20140513.dat.gz ─► (prefix, origin AS) ─group by origin─► UPDATEs, pre-encoded in 1 MiB chunks
//!                                                                     │ (before the session is up, so the
//!   PeerHandle::send_raw ◄────────────────────────────────────────────┘  feeder is never the bottleneck)
//!        └─► writer task ─► TCP ─► peer (our collect, BIRD, GoBGP, ...)
//! ```
//!
//! Every UPDATE carries ORIGIN IGP, AS_PATH (local AS, origin AS) and NEXT_HOP = the feeder's address;
//! prefixes of one origin AS share one UPDATE (split at 4096 octets), as a real full table mostly does.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use bgp::fsm::{Family, FsmConfig, State};
use bgp::session::{Event, PeerConfig, PeerHandle, PeerId, SocketOptions, TtlMode};
use bgp::wire::attr::Origin;
use bgp::wire::attr::as_path::AsPath;
use bgp::wire::{Context, Nlri, PathAttributes, Update};
use bytes::{Bytes, BytesMut};
use ipnet::{IpNet, Ipv4Net};
use tokio::sync::mpsc;

/// The real full IPv4 table shipped by python3-pyasn (prefix → origin AS, 512,621 prefixes).
pub const IPASN: &str = "/usr/lib/python3/dist-packages/data/ipasn_20140513.dat.gz";

/// Size of one pre-encoded chunk handed to the session.
const CHUNK: usize = 1 << 20;

/// Reads `prefix<TAB>origin` lines of a pyasn IPASN file (gzip), at most `limit` prefixes.
pub fn load_ipasn(path: &Path, limit: Option<usize>) -> Result<Vec<(Ipv4Net, u32)>> {
    let f = std::fs::File::open(path)
        .with_context(|| format!("opening {} (apt-get install python3-pyasn)", path.display()))?;
    let r = std::io::BufReader::new(flate2::read::GzDecoder::new(f));
    let mut out = Vec::new();
    for line in r.lines() {
        let line = line?;
        if line.starts_with(';') || line.trim().is_empty() {
            continue;
        }
        let mut it = line.split_whitespace();
        let (Some(p), Some(a)) = (it.next(), it.next()) else {
            continue;
        };
        let (Ok(p), Ok(a)) = (p.parse::<Ipv4Net>(), a.parse::<u32>()) else {
            continue;
        };
        out.push((p, a));
        if limit.is_some_and(|l| out.len() >= l) {
            break;
        }
    }
    Ok(out)
}

/// `n` distinct /24s from 11.0.0.0 on, 16 per origin AS (for tests that need no data file).
pub fn synthetic(n: usize) -> Vec<(Ipv4Net, u32)> {
    (0..n)
        .map(|i| {
            let p = Ipv4Net::new(Ipv4Addr::from(0x0b00_0000u32 + ((i as u32) << 8)), 24)
                .expect("valid /24");
            (p, 64_512 + (i / 16) as u32 % 1000)
        })
        .collect()
}

/// Pre-encodes announcements of `table` (grouped by origin AS) plus the IPv4 End-of-RIB, in chunks.
pub fn encode_announce(
    table: &[(Ipv4Net, u32)],
    local_as: u32,
    next_hop: Ipv4Addr,
    ctx: &Context,
) -> Result<Vec<Bytes>> {
    let mut by_origin: BTreeMap<u32, Vec<Nlri>> = BTreeMap::new();
    for (p, origin) in table {
        by_origin
            .entry(*origin)
            .or_default()
            .push(Nlri::new(IpNet::V4(*p)));
    }
    let mut chunks = Vec::new();
    let mut buf = BytesMut::with_capacity(CHUNK + 8192);
    for (origin, nlri) in by_origin {
        let path = if origin == local_as {
            vec![local_as]
        } else {
            vec![local_as, origin]
        };
        let u = Update {
            attrs: PathAttributes {
                origin: Some(Origin::Igp),
                as_path: Some(AsPath::sequence(path)),
                next_hop: Some(next_hop),
                ..PathAttributes::default()
            },
            nlri,
            ..Update::default()
        };
        u.encode_split(ctx, &mut buf)?;
        if buf.len() >= CHUNK {
            chunks.push(buf.split().freeze());
        }
    }
    Update::end_of_rib(Family::IPV4_UNICAST).encode_split(ctx, &mut buf)?;
    chunks.push(buf.split().freeze());
    Ok(chunks)
}

/// Pre-encodes a [`crate::tablegen::Table`] (IPv4 routes only; see [`encode_table`]) plus the IPv4
/// End-of-RIB, in chunks.
pub fn encode_generated(
    table: &crate::tablegen::Table,
    next_hop: Ipv4Addr,
    ctx: &Context,
) -> Result<Vec<Bytes>> {
    encode_table(table, Some(next_hop), None, ctx)
}

/// Pre-encodes a [`crate::tablegen::Table`] in chunks: IPv4 routes in the classic fields with `nh4`,
/// IPv6 routes in MP_REACH_NLRI with `nh6` (real AS paths, communities, large communities, MED,
/// ORIGIN; prefixes sharing an attribute set share UPDATEs), then the End-of-RIB of every family that
/// has a next hop. The first AS of each path must already be the feeder's. Routes of a family without
/// a next hop are an error, not silently dropped.
pub fn encode_table(
    table: &crate::tablegen::Table,
    nh4: Option<Ipv4Addr>,
    nh6: Option<Ipv6Addr>,
    ctx: &Context,
) -> Result<Vec<Bytes>> {
    let mut by_set: BTreeMap<(bool, u32), Vec<Nlri>> = BTreeMap::new();
    for (p, set) in &table.routes {
        by_set
            .entry((p.addr().is_ipv6(), *set))
            .or_default()
            .push(Nlri::new(*p));
    }
    let mut chunks = Vec::new();
    let mut buf = BytesMut::with_capacity(CHUNK + 8192);
    for ((v6, set), nlri) in by_set {
        let a = table
            .attrs
            .get(set as usize)
            .context("route points at a missing attribute set")?;
        if v6 {
            nh6.context("the table has IPv6 routes: an IPv6 next hop is needed")?;
        } else {
            nh4.context("the table has IPv4 routes: an IPv4 next hop is needed")?;
        }
        let u = crate::bench::table::announce(
            v6,
            crate::bench::table::path_attributes(a, 0),
            nlri,
            nh4.unwrap_or(Ipv4Addr::UNSPECIFIED),
            nh6.unwrap_or(Ipv6Addr::UNSPECIFIED),
        );
        u.encode_split(ctx, &mut buf)?;
        if buf.len() >= CHUNK {
            chunks.push(buf.split().freeze());
        }
    }
    if nh4.is_some() {
        Update::end_of_rib(Family::IPV4_UNICAST).encode_split(ctx, &mut buf)?;
    }
    if nh6.is_some() {
        Update::end_of_rib(Family::IPV6_UNICAST).encode_split(ctx, &mut buf)?;
    }
    chunks.push(buf.split().freeze());
    Ok(chunks)
}

/// Pre-encodes withdrawals of every route of a [`crate::tablegen::Table`] (IPv6 in MP_UNREACH_NLRI).
pub fn encode_table_withdraw(table: &crate::tablegen::Table, ctx: &Context) -> Result<Vec<Bytes>> {
    use bgp::wire::attr::mp::MpUnreach;
    let (v6, v4): (Vec<Nlri>, Vec<Nlri>) = table
        .routes
        .iter()
        .map(|(p, _)| Nlri::new(*p))
        .partition(|n| n.prefix.addr().is_ipv6());
    let mut buf = BytesMut::new();
    let mut chunks = Vec::new();
    for part in v4.chunks(4096) {
        Update {
            withdrawn: part.to_vec(),
            ..Update::default()
        }
        .encode_split(ctx, &mut buf)?;
        if buf.len() >= CHUNK {
            chunks.push(buf.split().freeze());
        }
    }
    for part in v6.chunks(4096) {
        Update {
            mp_unreach: Some(MpUnreach {
                afi_safi: Family::IPV6_UNICAST,
                withdrawn: part.to_vec(),
                flowspec: Vec::new(),
                opaque_withdrawn: Vec::new(),
            }),
            ..Update::default()
        }
        .encode_split(ctx, &mut buf)?;
        if buf.len() >= CHUNK {
            chunks.push(buf.split().freeze());
        }
    }
    chunks.push(buf.split().freeze());
    Ok(chunks)
}

/// The routes one collector peer of an MRT dump announced, as a table fed by `local_as`: the feeder's
/// AS is prepended to every path (it is an eBGP speaker re-announcing what it learned); LOCAL_PREF is
/// dropped (not sent over eBGP); attribute sets are shared as in the dump. Only the first route of a
/// prefix is kept (a dump with ADD-PATH entries may have several).
pub fn table_from_mrt(rib: &crate::mrt::Rib, peer: usize, local_as: u32) -> crate::tablegen::Table {
    use crate::tablegen::{AttrSet, Table};
    use std::collections::{HashMap, HashSet};
    let mut sets: HashMap<AttrSet, u32> = HashMap::new();
    let mut t = Table::default();
    let mut seen: HashSet<IpNet> = HashSet::new();
    for r in rib.of_peer(peer) {
        if !seen.insert(r.prefix) {
            continue;
        }
        let mut as_path = vec![local_as];
        as_path.extend(r.attrs.path());
        let set = AttrSet {
            as_path,
            communities: r
                .attrs
                .communities
                .iter()
                .map(|c| ((c >> 16) as u16, *c as u16))
                .collect(),
            large_communities: r
                .attrs
                .large_communities
                .iter()
                .map(|[a, b, c]| (*a, *b, *c))
                .collect(),
            med: r.attrs.med,
            local_pref: None,
            origin: r.attrs.origin.unwrap_or(2),
            // The feeder announces itself as next hop: the dump's next hops would only split sets.
            next_hop: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        };
        let next = sets.len() as u32;
        let id = *sets.entry(set.clone()).or_insert_with(|| {
            t.attrs.push(set);
            next
        });
        t.routes.push((r.prefix, id));
    }
    t
}

/// Pre-encodes withdrawals of every prefix of `table`.
pub fn encode_withdraw(table: &[(Ipv4Net, u32)], ctx: &Context) -> Result<Vec<Bytes>> {
    let mut buf = BytesMut::new();
    let mut chunks = Vec::new();
    for part in table.chunks(4096) {
        let u = Update {
            withdrawn: part.iter().map(|(p, _)| Nlri::new(IpNet::V4(*p))).collect(),
            ..Update::default()
        };
        u.encode_split(ctx, &mut buf)?;
        if buf.len() >= CHUNK {
            chunks.push(buf.split().freeze());
        }
    }
    chunks.push(buf.split().freeze());
    Ok(chunks)
}

/// One side of a benchmark or tool session.
#[derive(Debug, Clone)]
pub struct SessionSpec {
    pub local: IpAddr,
    pub peer: SocketAddr,
    pub local_as: u32,
    pub peer_as: u32,
    pub router_id: Ipv4Addr,
    pub hold_time: u16,
    pub passive: bool,
    pub md5: Option<String>,
    pub gtsm: bool,
    /// Offer the extended message capability (RFC 8654).
    pub extended_message: bool,
    pub families: Vec<Family>,
}

impl SessionSpec {
    pub fn new(local: IpAddr, peer: IpAddr, local_as: u32, peer_as: u32) -> Self {
        let router_id = match local {
            IpAddr::V4(a) => a,
            IpAddr::V6(_) => Ipv4Addr::new(10, 255, 255, 1),
        };
        SessionSpec {
            local,
            peer: SocketAddr::new(peer, 179),
            local_as,
            peer_as,
            router_id,
            hold_time: 90,
            passive: false,
            md5: None,
            gtsm: false,
            extended_message: false,
            families: vec![Family::IPV4_UNICAST],
        }
    }

    /// The `bgp::session` configuration for this side.
    pub fn peer_config(&self, id: u32) -> PeerConfig {
        let mut f = FsmConfig::new(self.local_as, self.peer_as, self.router_id);
        f.hold_time = self.hold_time;
        f.passive = self.passive;
        f.connect_retry = Duration::from_secs(2);
        f.idle_hold = Duration::from_millis(500);
        f.capabilities.families = self.families.clone();
        f.capabilities.extended_message = self.extended_message;
        let mut c = PeerConfig::new(PeerId(id), self.peer, f);
        c.socket = SocketOptions {
            md5_key: self.md5.as_ref().map(|k| k.as_bytes().to_vec()),
            ttl: if self.gtsm {
                TtlMode::Gtsm { hops: 1 }
            } else {
                TtlMode::Default
            },
            local_addr: Some(self.local),
            recv_buffer: None,
            send_buffer: None,
        };
        c
    }
}

/// Counts what the other side sends us, so our reader never blocks on a full channel.
fn drain(mut rx: mpsc::Receiver<Event>) {
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
}

/// A feeding session that is up (dropping it stops the session).
pub struct Feeder {
    pub handle: PeerHandle,
    /// When the session reached Established.
    pub established: Instant,
    /// When the last chunk was queued for the socket.
    pub queued: Instant,
    _listener: Option<bgp::session::Listener>,
}

/// Connects (or waits, if passive), waits for Established within `timeout`, queues `chunks`.
pub async fn feed(spec: &SessionSpec, chunks: &[Bytes], timeout: Duration) -> Result<Feeder> {
    let (tx, rx) = mpsc::channel(64);
    let listener = if spec.passive {
        Some(bgp::session::Listener::bind(&[SocketAddr::new(
            spec.local,
            spec.peer.port(),
        )])?)
    } else {
        None
    };
    let h = PeerHandle::spawn(spec.peer_config(1), listener.as_ref(), tx)?;
    drain(rx);
    h.start();
    tokio::time::timeout(timeout, h.wait_for(State::Established))
        .await
        .with_context(|| format!("feed: no session with {} within {timeout:?}", spec.peer))?;
    let established = Instant::now();
    let ctx = h.context().context("session went down")?;
    if ctx.add_path_tx != bgp::wire::AfiSafiSet::EMPTY || !ctx.four_octet_as {
        bail!(
            "feed: chunks are encoded for 4-octet AS without ADD-PATH; the peer negotiated {ctx:?}"
        );
    }
    for c in chunks {
        h.send_raw(c.clone()).await?;
    }
    Ok(Feeder {
        handle: h,
        established,
        queued: Instant::now(),
        _listener: listener,
    })
}

/// `testbed feed` command line.
#[derive(Debug, clap::Args)]
pub struct FeedArgs {
    /// Our address (the session's source and the announced next hop).
    #[arg(long)]
    pub local: IpAddr,
    /// The peer's address.
    #[arg(long)]
    pub peer: IpAddr,
    #[arg(long, default_value_t = 179)]
    pub port: u16,
    #[arg(long, default_value_t = 65001)]
    pub local_as: u32,
    #[arg(long, default_value_t = 65002)]
    pub peer_as: u32,
    /// Announce this many prefixes of the real table (default: all of it).
    #[arg(long)]
    pub prefixes: Option<usize>,
    /// Synthetic /24s instead of the real table.
    #[arg(long)]
    pub synthetic: bool,
    /// Announce the routes of an MRT TABLE_DUMP_V2/TABLE_DUMP file (.bz2, .gz or raw) with their real
    /// attributes; repeat for an IPv4 and an IPv6 dump (e.g. the RouteViews excerpts of python3-pyasn:
    /// /usr/lib/python3/dist-packages/data/rib.20140523.0600_firstMB.bz2, rib6.20151101.0600_firstMB.bz2).
    #[arg(long, conflicts_with_all = ["synthetic", "generated"])]
    pub mrt: Vec<std::path::PathBuf>,
    /// Which collector peer of the dump to replay (index in its peer table; default: the one with
    /// the most routes).
    #[arg(long, requires = "mrt")]
    pub mrt_peer: Option<usize>,
    /// The generated full table (testbed::tablegen: real prefixes, AS paths and communities, scaled).
    #[arg(long, conflicts_with = "synthetic")]
    pub generated: bool,
    /// IPv4 routes of the generated table.
    #[arg(long, default_value_t = 1_050_000, requires = "generated")]
    pub v4_count: usize,
    /// IPv6 routes of the generated table.
    #[arg(long, default_value_t = 240_000, requires = "generated")]
    pub v6_count: usize,
    /// Seed of the generated table.
    #[arg(long, default_value_t = 1, requires = "generated")]
    pub seed: u64,
    /// IPv6 next hop for IPv6 routes (default: --local when it is IPv6). IPv6 unicast is negotiated
    /// when the table has IPv6 routes.
    #[arg(long)]
    pub local6: Option<Ipv6Addr>,
    #[arg(long, default_value_t = 90)]
    pub hold_time: u16,
    /// TCP-MD5 password.
    #[arg(long)]
    pub md5: Option<String>,
    /// Wait for the peer to connect.
    #[arg(long)]
    pub passive: bool,
}

/// What `testbed feed` announces: pre-encoded announcements and withdrawals, prefixes per family.
struct FeedTable {
    announce: Vec<Bytes>,
    withdraw: Vec<Bytes>,
    v4: usize,
    v6: usize,
}

fn feed_table(a: &FeedArgs, ctx: &Context) -> Result<FeedTable> {
    let nh4 = match a.local {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(_) => None,
    };
    let nh6 = a.local6.or(match a.local {
        IpAddr::V6(v6) => Some(v6),
        IpAddr::V4(_) => None,
    });
    if a.mrt.is_empty() && !a.generated {
        let table = if a.synthetic {
            synthetic(a.prefixes.unwrap_or(100_000))
        } else {
            load_ipasn(Path::new(IPASN), a.prefixes)?
        };
        let nh = nh4.context("feed announces IPv4 with an IPv4 next hop: --local must be IPv4")?;
        return Ok(FeedTable {
            announce: encode_announce(&table, a.local_as, nh, ctx)?,
            withdraw: encode_withdraw(&table, ctx)?,
            v4: table.len(),
            v6: 0,
        });
    }
    let mut table = crate::tablegen::Table::default();
    if a.generated {
        let cfg = crate::tablegen::Config {
            seed: a.seed,
            v4_count: a.v4_count,
            v6_count: a.v6_count,
            peer_as: Some(a.local_as),
            ..crate::tablegen::Config::default()
        };
        table = crate::tablegen::generate(&cfg)?;
    }
    for path in &a.mrt {
        let rib = crate::mrt::read_rib_file(path)?;
        let peer = match a.mrt_peer {
            Some(p) if p < rib.peers.len() => p,
            Some(p) => bail!(
                "--mrt-peer {p}: {} has {} peers in its index table",
                path.display(),
                rib.peers.len()
            ),
            None => rib
                .fullest_peer()
                .with_context(|| format!("{} holds no routes", path.display()))?,
        };
        let t = table_from_mrt(&rib, peer, a.local_as);
        eprintln!(
            "feed: {}: peer {peer} ({:?}) {} routes, {} attribute sets{}",
            path.display(),
            rib.peers.get(peer),
            t.len(),
            t.attrs.len(),
            if rib.truncated {
                " (excerpt: the dump is cut, the last record was dropped)"
            } else {
                ""
            }
        );
        let base = table.attrs.len() as u32;
        table.attrs.extend(t.attrs);
        table
            .routes
            .extend(t.routes.into_iter().map(|(p, s)| (p, s + base)));
    }
    if a.prefixes.is_some_and(|n| n < table.routes.len()) {
        table.routes.truncate(a.prefixes.unwrap_or(0));
    }
    let v6 = table
        .routes
        .iter()
        .filter(|(p, _)| p.addr().is_ipv6())
        .count();
    let v4 = table.routes.len() - v6;
    if v6 > 0 && nh6.is_none() {
        bail!("the table has {v6} IPv6 routes: give --local6 (the IPv6 next hop to announce)");
    }
    if v4 > 0 && nh4.is_none() {
        bail!(
            "the table has {v4} IPv4 routes: --local must be IPv4 (the IPv4 next hop to announce)"
        );
    }
    Ok(FeedTable {
        announce: encode_table(&table, nh4.filter(|_| v4 > 0), nh6.filter(|_| v6 > 0), ctx)?,
        withdraw: encode_table_withdraw(&table, ctx)?,
        v4,
        v6,
    })
}

/// Runs `testbed feed`: announce, print timing, then read commands from stdin: `withdraw`, `announce`,
/// `quit` (or end of input).
pub fn run(a: FeedArgs) -> Result<()> {
    let ctx = Context::four_octet();
    let FeedTable {
        announce,
        withdraw,
        v4,
        v6,
    } = feed_table(&a, &ctx)?;
    let mut spec = SessionSpec::new(a.local, a.peer, a.local_as, a.peer_as);
    spec.peer.set_port(a.port);
    spec.hold_time = a.hold_time;
    spec.md5 = a.md5;
    spec.passive = a.passive;
    spec.families = Vec::new();
    if v4 > 0 {
        spec.families.push(Family::IPV4_UNICAST);
    }
    if v6 > 0 {
        spec.families.push(Family::IPV6_UNICAST);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let f = feed(&spec, &announce, Duration::from_secs(120)).await?;
        let h = f.handle.clone();
        let secs = f.queued.duration_since(f.established).as_secs_f64();
        println!(
            "{{\"established\":true,\"prefixes\":{},\"ipv4\":{v4},\"ipv6\":{v6},\"queue_secs\":{secs:.3}}}",
            v4 + v6
        );
        let (ltx, mut lrx) = mpsc::unbounded_channel::<String>();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(l) = line else { break };
                if ltx.send(l).is_err() {
                    break;
                }
            }
        });
        while let Some(cmd) = lrx.recv().await {
            let chunks = match cmd.trim() {
                "withdraw" => &withdraw,
                "announce" => &announce,
                "quit" => break,
                other => {
                    eprintln!("feed: unknown command {other:?} (withdraw, announce, quit)");
                    continue;
                }
            };
            for c in chunks {
                h.send_raw(c.clone()).await?;
            }
            h.flush().await?;
            println!("{{\"done\":\"{}\"}}", cmd.trim());
        }
        h.flush().await?;
        h.stop(Some("testbed feed finished"));
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(())
    })
}

/// `testbed session-bench` command line.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Use only the first N prefixes of the real table.
    #[arg(long)]
    pub prefixes: Option<usize>,
    /// Measure only our collector (no BIRD, no GoBGP).
    #[arg(long)]
    pub ours_only: bool,
    /// Real prefixes with synthetic paths (two ASes, one UPDATE per origin) instead of the table generator's
    /// real AS paths, communities and attribute sharing.
    #[arg(long)]
    pub simple: bool,
}

/// Number of BGP messages in a buffer of whole messages.
fn count_messages(b: &[u8]) -> usize {
    let (mut i, mut n) = (0, 0);
    while i + bgp::wire::HEADER_LEN <= b.len() {
        i += usize::from(u16::from_be_bytes([b[i + 16], b[i + 17]])).max(bgp::wire::HEADER_LEN);
        n += 1;
    }
    n
}

/// Polls `count` every 10 ms until it reaches `n`, or settles (unchanged for 2 s) within 0.1 % of `n`
/// (a daemon may refuse a prefix or two of a real table); returns when the count last grew.
fn poll_until(
    n: usize,
    timeout: Duration,
    mut count: impl FnMut() -> Option<usize>,
) -> Result<Instant> {
    let deadline = Instant::now() + timeout;
    let (mut last, mut grew) = (0, Instant::now());
    while Instant::now() < deadline {
        if let Some(c) = count() {
            if c != last {
                (last, grew) = (c, Instant::now());
            }
            if c >= n {
                return Ok(grew);
            }
            if c * 1000 >= n * 999 && grew.elapsed() > Duration::from_secs(2) {
                println!("  (settled at {c} of {n} prefixes)");
                return Ok(grew);
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    bail!("only {last} of {n} prefixes after {timeout:?}")
}

/// Runs the feeder inside `ns` on its own thread and runtime, then `wait` (on this thread) until the
/// receiver has everything; returns seconds from Established to done.
fn feed_and_wait(
    ns: &crate::netns::Netns,
    spec: &SessionSpec,
    chunks: &[Bytes],
    wait: impl FnOnce() -> Result<Instant>,
) -> Result<f64> {
    let (tx, rx) = std::sync::mpsc::channel::<Result<Instant>>();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|s| {
        let feeder = s.spawn(move || {
            ns.run_in(move || -> Result<()> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(async {
                    match feed(spec, chunks, Duration::from_secs(60)).await {
                        Ok(f) => {
                            let _ = tx.send(Ok(f.established));
                            // Hold the session (keepalives) until the measurement is over.
                            while stop_rx.try_recv().is_err() {
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                            f.handle.stop(Some("benchmark done"));
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    }
                    Ok(())
                })
            })
        });
        let result = (|| {
            let established = rx.recv().context("feeder thread ended")??;
            let done = wait()?;
            Ok(done.duration_since(established).as_secs_f64())
        })();
        let _ = stop_tx.send(());
        feeder
            .join()
            .map_err(|_| anyhow::anyhow!("feeder thread panicked"))???;
        result
    })
}

/// `testbed session-bench`: the same pre-encoded real table into our collector, BIRD 2 and GoBGP, across a
/// veth between two namespaces; prints prefixes/s and ratios.
pub fn bench(a: BenchArgs) -> Result<()> {
    use crate::peers::{BgpPeer, Bird, GoBgp, Neighbor, PeerConfig as DriverConfig};
    let topo = crate::topo::Topology::pair("feed", "sink")?;
    let l = topo.link(0)?.clone();
    let (feed_ip, sink_ip) = (l.a_v4, l.b_v4);
    let (n, chunks, what) = if a.simple {
        let table = load_ipasn(Path::new(IPASN), a.prefixes)?;
        let chunks = encode_announce(&table, 65001, feed_ip, &Context::four_octet())?;
        let what =
            format!("real prefixes ({IPASN}), path (65001 origin), UPDATEs grouped by origin");
        (table.len(), chunks, what)
    } else {
        let cfg = crate::tablegen::Config {
            v4_count: a.prefixes.unwrap_or(512_621),
            v6_count: 0,
            next_hop_v4: feed_ip,
            peer_as: Some(65001),
            ..crate::tablegen::Config::default()
        };
        let table = crate::tablegen::generate(&cfg)?;
        let chunks = encode_generated(&table, feed_ip, &Context::four_octet())?;
        let what = format!(
            "testbed::tablegen (real prefixes, real AS paths/communities/MED, {} attribute sets)",
            table.attrs.len()
        );
        (table.len(), chunks, what)
    };
    let bytes: usize = chunks.iter().map(Bytes::len).sum();
    let msgs: usize = chunks.iter().map(|c| count_messages(c)).sum();
    println!(
        "session ingest benchmark: {n} IPv4 prefixes, {what}; {msgs} UPDATEs, {} KiB pre-encoded",
        bytes >> 10
    );
    let feed_ns = topo.ns("feed")?;
    let sink_ns = topo.ns("sink")?;
    let spec = SessionSpec::new(feed_ip.into(), sink_ip.into(), 65001, 65002);

    // Ours: a collector on one thread (current-thread runtime) in the sink namespace.
    let mut sink_spec = SessionSpec::new(sink_ip.into(), feed_ip.into(), 65002, 65001);
    sink_spec.passive = true;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<Result<(Instant, usize, Option<f64>)>>();
    let mut cpu = None;
    let ours = std::thread::scope(|s| -> Result<f64> {
        let collector = s.spawn(|| {
            sink_ns.run_in(|| {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.into()));
                        return;
                    }
                };
                rt.block_on(async {
                    let mut c = match crate::collect::Collector::start(&sink_spec) {
                        Ok(c) => c,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    let r = c.run_until(Some(n), Duration::from_secs(120), None).await;
                    let _ = done_tx.send(r.map(|r| {
                        (
                            r.done.unwrap_or_else(Instant::now),
                            r.announced,
                            r.cpu_secs(),
                        )
                    }));
                    tokio::time::sleep(Duration::from_millis(300)).await;
                });
            })
        });
        ready_rx.recv().context("collector thread ended")??;
        let secs = feed_and_wait(feed_ns, &spec, &chunks, || {
            let (done, got, c) = done_rx.recv().context("collector ended")??;
            cpu = c;
            if got < n {
                bail!("collector got {got} of {n}");
            }
            Ok(done)
        });
        collector
            .join()
            .map_err(|_| anyhow::anyhow!("collector thread panicked"))??;
        secs
    })?;
    let rate = |secs: f64| n as f64 / secs.max(1e-9);
    println!(
        "  ours   (bgp::session, decoded and handed to the consumer, 1 thread): {ours:8.3} s  {:>12.0} prefixes/s",
        rate(ours)
    );
    if let Some(c) = cpu {
        println!(
            "         collector thread CPU from Established to the last prefix:   {c:8.3} s  {:>12.0} prefixes per CPU-second",
            rate(c)
        );
    }
    if a.ours_only {
        return Ok(());
    }

    let mut results = Vec::new();
    {
        let cfg = DriverConfig::new(65002, Ipv4Addr::new(10, 255, 0, 2))
            .neighbor(Neighbor::new(feed_ip.into(), 65001));
        let bird = Bird::start(sink_ns.name(), cfg)?;
        let secs = feed_and_wait(feed_ns, &spec, &chunks, || {
            poll_until(n, Duration::from_secs(120), || {
                let out = bird.birdc(&["show", "route", "count"]).ok()?;
                out.lines()
                    .find(|l| l.contains("routes for"))
                    .and_then(|l| l.split_whitespace().next()?.parse().ok())
            })
        })
        .with_context(|| bird.diagnostics())?;
        println!(
            "  BIRD 2 (all prefixes in its RIB):                                {secs:8.3} s  {:>12.0} prefixes/s",
            rate(secs)
        );
        results.push(("BIRD 2", secs));
    }
    {
        let cfg = DriverConfig::new(65002, Ipv4Addr::new(10, 255, 0, 2))
            .neighbor(Neighbor::new(feed_ip.into(), 65001));
        let gobgp = GoBgp::start(sink_ns.name(), cfg)?;
        let secs = feed_and_wait(feed_ns, &spec, &chunks, || {
            poll_until(n, Duration::from_secs(300), || {
                std::thread::sleep(Duration::from_millis(90));
                let out = gobgp
                    .gobgp(&["global", "rib", "summary", "-a", "ipv4"])
                    .ok()?;
                let i = out.find("Destination:")?;
                out[i + 12..]
                    .trim_start()
                    .split(|c: char| !c.is_ascii_digit())
                    .next()?
                    .parse()
                    .ok()
            })
        })
        .with_context(|| gobgp.diagnostics())?;
        println!(
            "  GoBGP  (all prefixes in its RIB):                                {secs:8.3} s  {:>12.0} prefixes/s",
            rate(secs)
        );
        results.push(("GoBGP", secs));
    }
    for (name, secs) in results {
        println!("  ours is {:.1}x {name}", secs / ours.max(1e-9));
    }
    Ok(())
}
