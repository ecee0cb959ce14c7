//! The churn stream: after the table is in, a seeded mix of route changes pre-encoded as whole UPDATE
//! messages, ended by a sentinel prefix that no table holds, so "the system has absorbed everything"
//! is observable from outside for every system (the sentinel is in its RIB / FIB).
//!
//! ```text
//!   table routes ──pick groups of 1..max_group routes of one family (not currently withdrawn)──►
//!     flap       withdraw now, re-announce the same attributes `flap_gap` events later
//!     as-path    the AS path of another attribute set of the table (real paths)
//!     med        a new MED
//!     community  a new FEED_AS:x community added to the set's own
//!     next-hop   the feeder's second address ⇄ its first (both on the link, both resolve)
//!   ──► UPDATEs (one per group and new attribute set) … pending re-announcements … sentinel (last)
//! ```
//!
//! Every route ends announced, so the final table is the initial one plus the sentinel (with some
//! attributes changed); [`ChurnStream::final_state`] is what each prefix should carry at the end.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::net::{Ipv4Addr, Ipv6Addr};

use anyhow::{Context as _, Result, bail};
use bgp::wire::attr::community::Community;
use bgp::wire::{Context, Nlri, Update};
use bytes::BytesMut;
use ipnet::IpNet;

use super::table::{FEED_AS, announce, path_attributes, withdraw};
use crate::tablegen::{Rng, Table};

/// What the stream contains.
#[derive(Debug, Clone)]
pub struct ChurnConfig {
    /// Prefix-level changes to generate (a flap counts two: its withdrawal and its re-announcement).
    pub changes: usize,
    pub seed: u64,
    /// Prefixes per change event (1..=max_group, uniform): prefixes that move together share an UPDATE.
    pub max_group: usize,
    /// Events between a flap's withdrawal and its re-announcement.
    pub flap_gap: usize,
}

impl Default for ChurnConfig {
    fn default() -> Self {
        ChurnConfig {
            changes: 100_000,
            seed: 0xc4_u64 << 32 | 12,
            max_group: 8,
            flap_gap: 500,
        }
    }
}

/// Kinds of change and their share of the events (percent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Change {
    Flap,
    AsPath,
    Med,
    Community,
    NextHop,
}

pub const MIX: [(Change, u32); 5] = [
    (Change::Flap, 30),
    (Change::AsPath, 25),
    (Change::Med, 15),
    (Change::Community, 15),
    (Change::NextHop, 15),
];

impl Change {
    pub fn name(self) -> &'static str {
        match self {
            Change::Flap => "withdraw + re-announce",
            Change::AsPath => "AS path",
            Change::Med => "MED",
            Change::Community => "community",
            Change::NextHop => "next hop",
        }
    }

    fn pick(rng: &mut Rng) -> Change {
        let total: u32 = MIX.iter().map(|(_, w)| w).sum();
        let mut x = (rng.next_u64() % u64::from(total)) as u32;
        for (c, w) in MIX {
            if x < w {
                return c;
            }
            x -= w;
        }
        Change::Flap
    }
}

/// The attributes a route carries at some point of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteState {
    /// Attribute set of the table the route started with (origin, communities, MED).
    pub set: u32,
    /// Attribute set whose AS path the route carries.
    pub path: u32,
    /// MED replacing the set's.
    pub med: Option<u32>,
    /// A community FEED_AS:x added to the set's.
    pub community: Option<u16>,
    /// Next hop: the feeder's second address instead of its first.
    pub alt_nh: bool,
}

impl RouteState {
    fn initial(set: u32) -> RouteState {
        RouteState {
            set,
            path: set,
            med: None,
            community: None,
            alt_nh: false,
        }
    }
}

/// Next hops of one feeder: the primary and the alternate of each family.
#[derive(Debug, Clone, Copy)]
pub struct NextHops {
    pub v4: Ipv4Addr,
    pub v6: Ipv6Addr,
    pub v4_alt: Ipv4Addr,
    pub v6_alt: Ipv6Addr,
}

/// The encoded stream and what it holds.
#[derive(Debug, Clone)]
pub struct ChurnStream {
    pub bytes: Vec<u8>,
    /// UPDATE messages in `bytes` (what ribd's `updates_in` counter grows by).
    pub updates: usize,
    /// NLRI announced and withdrawn (the sentinel included).
    pub announced: usize,
    pub withdrawn: usize,
    /// Events and prefixes per kind of change.
    pub by_kind: BTreeMap<Change, (usize, usize)>,
    /// Announced last: when a system has it, it has processed everything before it.
    pub sentinel: IpNet,
    /// Every prefix of the table (deduplicated) with the state the stream leaves it in.
    pub final_state: Vec<(IpNet, RouteState)>,
}

impl ChurnStream {
    /// Prefix-level changes (announcements + withdrawals, the sentinel included).
    pub fn changes(&self) -> usize {
        self.announced + self.withdrawn
    }

    /// "30% withdraw + re-announce (12,000 prefixes), ...".
    pub fn describe(&self) -> String {
        let events: usize = self.by_kind.values().map(|(e, _)| e).sum();
        let parts: Vec<String> = self
            .by_kind
            .iter()
            .map(|(k, (e, p))| {
                format!(
                    "{} {:.0}% ({} prefixes)",
                    k.name(),
                    *e as f64 * 100.0 / events.max(1) as f64,
                    p
                )
            })
            .collect();
        format!(
            "{} UPDATEs, {} announced + {} withdrawn NLRI in {events} events: {}; sentinel {}",
            self.updates,
            self.announced,
            self.withdrawn,
            parts.join(", "),
            self.sentinel
        )
    }
}

/// A /24 of 198.18.0.0/15 (RFC 2544 benchmarking) that no table prefix overlaps.
pub fn sentinel_for(prefixes: &[IpNet]) -> Result<IpNet> {
    for i in 0..512u32 {
        let a = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + (i << 8));
        let cand = IpNet::V4(ipnet::Ipv4Net::new(a, 24).context("a /24")?);
        if !prefixes
            .iter()
            .any(|p| p.contains(&cand) || cand.contains(p))
        {
            return Ok(cand);
        }
    }
    bail!("every /24 of 198.18.0.0/15 overlaps the table: no sentinel")
}

struct Gen<'a> {
    table: &'a Table,
    nh: NextHops,
    ctx: Context,
    buf: BytesMut,
    updates: usize,
    announced: usize,
    withdrawn: usize,
}

impl Gen<'_> {
    fn emit(&mut self, u: Update) -> Result<()> {
        let before = self.buf.len();
        u.encode_split(&self.ctx, &mut self.buf)?;
        self.updates += super::table::count_messages(&self.buf[before..]);
        Ok(())
    }

    fn announce(&mut self, st: RouteState, prefixes: Vec<IpNet>) -> Result<()> {
        let Some(first) = prefixes.first() else {
            return Ok(());
        };
        let v6 = first.addr().is_ipv6();
        let base = self
            .table
            .attrs
            .get(st.set as usize)
            .context("route points at a missing attribute set")?;
        let path = self
            .table
            .attrs
            .get(st.path as usize)
            .context("missing attribute set")?;
        let mut attrs = path_attributes(base, 0);
        attrs.as_path = path_attributes(path, 0).as_path;
        if let Some(m) = st.med {
            attrs.med = Some(m);
        }
        if let Some(c) = st.community {
            attrs.communities.push(Community::new(FEED_AS as u16, c));
        }
        let (nh4, nh6) = if st.alt_nh {
            (self.nh.v4_alt, self.nh.v6_alt)
        } else {
            (self.nh.v4, self.nh.v6)
        };
        self.announced += prefixes.len();
        let nlri = prefixes.into_iter().map(Nlri::new).collect();
        self.emit(announce(v6, attrs, nlri, nh4, nh6))
    }

    fn withdraw(&mut self, prefixes: Vec<IpNet>) -> Result<()> {
        let Some(first) = prefixes.first() else {
            return Ok(());
        };
        let v6 = first.addr().is_ipv6();
        self.withdrawn += prefixes.len();
        self.emit(withdraw(v6, prefixes.into_iter().map(Nlri::new).collect()))
    }
}

/// Generates the churn stream of one feeder over `table` (as announced by [`super::table::encode`]).
pub fn generate(table: &Table, nh: NextHops, cfg: &ChurnConfig) -> Result<ChurnStream> {
    // One route per distinct prefix (what the RIB holds).
    let mut seen = HashSet::new();
    let routes: Vec<(IpNet, u32)> = table
        .routes
        .iter()
        .filter(|(p, _)| seen.insert(p.trunc()))
        .copied()
        .collect();
    if routes.is_empty() || table.attrs.is_empty() {
        bail!("churn over an empty table");
    }
    let prefixes: Vec<IpNet> = routes.iter().map(|(p, _)| *p).collect();
    let sentinel = sentinel_for(&prefixes)?;
    let mut state: Vec<RouteState> = routes
        .iter()
        .map(|(_, s)| RouteState::initial(*s))
        .collect();
    let mut down = vec![false; routes.len()];
    let mut pending: VecDeque<(usize, Vec<usize>)> = VecDeque::new();
    let mut by_kind: BTreeMap<Change, (usize, usize)> = BTreeMap::new();
    let mut rng = Rng::new(cfg.seed);
    let mut g = Gen {
        table,
        nh,
        ctx: Context::four_octet(),
        buf: BytesMut::with_capacity(cfg.changes * 24 + 4096),
        updates: 0,
        announced: 0,
        withdrawn: 0,
    };
    // Re-announces members of a flap, each with the state it had (one UPDATE per distinct state).
    let reannounce =
        |g: &mut Gen<'_>, members: &[usize], state: &[RouteState], down: &mut [bool]| {
            let mut by_state: BTreeMap<RouteState, Vec<IpNet>> = BTreeMap::new();
            for &i in members {
                down[i] = false;
                by_state.entry(state[i]).or_default().push(routes[i].0);
            }
            for (st, ps) in by_state {
                g.announce(st, ps)?;
            }
            anyhow::Ok(())
        };
    let (mut changes, mut event) = (0usize, 0usize);
    let n = routes.len();
    while changes < cfg.changes {
        while pending.front().is_some_and(|(due, _)| *due <= event) {
            let (_, members) = pending.pop_front().expect("checked");
            reannounce(&mut g, &members, &state, &mut down)?;
        }
        event += 1;
        // A group: up to `size` routes of the family of a random start, none currently withdrawn.
        let size = 1 + (rng.next_u64() % cfg.max_group.max(1) as u64) as usize;
        let start = (rng.next_u64() % n as u64) as usize;
        let v6 = routes[start].0.addr().is_ipv6();
        let mut members = Vec::with_capacity(size);
        for i in (start..n).chain(0..start).take(size * 4) {
            if members.len() == size {
                break;
            }
            if !down[i] && routes[i].0.addr().is_ipv6() == v6 {
                members.push(i);
            }
        }
        if members.is_empty() {
            continue;
        }
        let kind = Change::pick(&mut rng);
        let e = by_kind.entry(kind).or_default();
        e.0 += 1;
        e.1 += members.len();
        if kind == Change::Flap {
            for &i in &members {
                down[i] = true;
            }
            g.withdraw(members.iter().map(|&i| routes[i].0).collect())?;
            changes += 2 * members.len();
            pending.push_back((event + cfg.flap_gap, members));
            continue;
        }
        let mut st = state[members[0]];
        match kind {
            Change::AsPath => {
                let other = (rng.next_u64() % table.attrs.len() as u64) as u32;
                st.path = if other == st.path && table.attrs.len() > 1 {
                    (other + 1) % table.attrs.len() as u32
                } else {
                    other
                };
            }
            Change::Med => {
                let m = (rng.next_u64() % 1000) as u32 * 10 + 5;
                st.med = Some(if st.med == Some(m) { m + 1 } else { m });
            }
            Change::Community => {
                let c = 1 + (rng.next_u64() % 60_000) as u16;
                st.community = Some(if st.community == Some(c) { c + 1 } else { c });
            }
            Change::NextHop => st.alt_nh = !st.alt_nh,
            Change::Flap => unreachable!("handled above"),
        }
        for &i in &members {
            state[i] = st;
        }
        changes += members.len();
        g.announce(st, members.iter().map(|&i| routes[i].0).collect())?;
    }
    while let Some((_, members)) = pending.pop_front() {
        reannounce(&mut g, &members, &state, &mut down)?;
    }
    // The sentinel, last: the first attribute set, the primary next hop.
    g.announce(RouteState::initial(routes[0].1), vec![sentinel])?;
    let final_state = routes
        .iter()
        .zip(&state)
        .map(|((p, _), s)| (*p, *s))
        .collect();
    Ok(ChurnStream {
        bytes: g.buf.to_vec(),
        updates: g.updates,
        announced: g.announced,
        withdrawn: g.withdrawn,
        by_kind,
        sentinel,
        final_state,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::IpAddr;

    use bgp::wire::{Message, PathAttributes};

    use super::*;
    use crate::tablegen;

    fn nh() -> NextHops {
        NextHops {
            v4: "10.0.0.2".parse().expect("literal"),
            v6: "fd00::2".parse().expect("literal"),
            v4_alt: "10.0.0.3".parse().expect("literal"),
            v6_alt: "fd00::3".parse().expect("literal"),
        }
    }

    fn table(v4: usize, v6: usize) -> Table {
        tablegen::generate(&tablegen::Config {
            v4_count: v4,
            v6_count: v6,
            peer_as: Some(FEED_AS),
            ..tablegen::Config::default()
        })
        .expect("the pyasn data is installed (python3-pyasn)")
    }

    /// Applies a stream of messages to a table of prefix → (attributes, next hop); returns the
    /// messages in order with what each announced / withdrew.
    fn apply(
        bytes: &[u8],
        rib: &mut HashMap<IpNet, (PathAttributes, IpAddr)>,
    ) -> Vec<(Vec<IpNet>, Vec<IpNet>)> {
        let ctx = Context::four_octet();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            let len = u16::from_be_bytes([bytes[i + 16], bytes[i + 17]]) as usize;
            let Message::Update(u) = Message::decode(&bytes[i..i + len], &ctx).expect("decodes")
            else {
                panic!("not an UPDATE");
            };
            i += len;
            let w: Vec<IpNet> = u.withdrawn_routes().map(|(_, n)| n.prefix).collect();
            for p in &w {
                assert!(rib.remove(p).is_some(), "{p} withdrawn while not announced");
            }
            let a: Vec<IpNet> = u.announced().map(|(_, n)| n.prefix).collect();
            for p in &a {
                let nh = match (&u.mp_reach, u.attrs.next_hop) {
                    (Some(m), _) => match m.next_hop {
                        bgp::wire::attr::mp::NextHop::Ipv6 { global, .. } => IpAddr::V6(global),
                        ref other => panic!("next hop {other:?}"),
                    },
                    (None, Some(v4)) => IpAddr::V4(v4),
                    (None, None) => panic!("no next hop"),
                };
                let mut attrs = u.attrs.clone();
                attrs.next_hop = None;
                rib.insert(*p, (attrs, nh));
            }
            out.push((a, w));
        }
        out
    }

    #[test]
    fn the_stream_leaves_every_prefix_announced_with_its_final_state_and_the_sentinel_last() {
        let t = table(3000, 600);
        let cfg = ChurnConfig {
            changes: 5000,
            flap_gap: 50,
            ..ChurnConfig::default()
        };
        let s = generate(&t, nh(), &cfg).expect("generates");
        let mut rib = HashMap::new();
        apply(
            &super::super::table::encode(&t, nh().v4, nh().v6, 0).expect("encodes"),
            &mut rib,
        );
        let initial = rib.len();
        let msgs = apply(&s.bytes, &mut rib);
        assert_eq!(msgs.len(), s.updates);
        let announced: usize = msgs.iter().map(|(a, _)| a.len()).sum();
        let withdrawn: usize = msgs.iter().map(|(_, w)| w.len()).sum();
        assert_eq!((announced, withdrawn), (s.announced, s.withdrawn));
        assert!(s.changes() >= cfg.changes, "{}", s.describe());
        // The sentinel is the only NLRI of the last UPDATE and appears nowhere else.
        let (last_a, last_w) = msgs.last().expect("messages");
        assert_eq!((last_a.as_slice(), last_w.len()), (&[s.sentinel][..], 0));
        assert_eq!(
            msgs.iter().filter(|(a, _)| a.contains(&s.sentinel)).count(),
            1
        );
        // Final table = initial + sentinel, each prefix with the state the generator reports.
        assert_eq!(rib.len(), initial + 1);
        assert_eq!(s.final_state.len(), initial);
        for (p, st) in &s.final_state {
            let (attrs, nh_got) = rib
                .get(p)
                .unwrap_or_else(|| panic!("{p} missing at the end"));
            let want_nh: IpAddr = match (p.addr().is_ipv6(), st.alt_nh) {
                (false, false) => nh().v4.into(),
                (false, true) => nh().v4_alt.into(),
                (true, false) => nh().v6.into(),
                (true, true) => nh().v6_alt.into(),
            };
            assert_eq!(*nh_got, want_nh, "{p}");
            assert_eq!(
                attrs.as_path,
                path_attributes(&t.attrs[st.path as usize], 0).as_path,
                "{p}"
            );
            let base_med = t.attrs[st.set as usize].med;
            assert_eq!(attrs.med, st.med.or(base_med), "{p}");
            let extra = Community::new(FEED_AS as u16, st.community.unwrap_or(0));
            assert_eq!(
                attrs.communities.contains(&extra),
                st.community.is_some(),
                "{p}"
            );
        }
    }

    #[test]
    fn every_kind_of_change_appears_near_its_share_and_in_both_families() {
        let t = table(5000, 1000);
        let s = generate(
            &t,
            nh(),
            &ChurnConfig {
                changes: 20_000,
                ..ChurnConfig::default()
            },
        )
        .expect("generates");
        let events: usize = s.by_kind.values().map(|(e, _)| e).sum();
        for (kind, pct) in MIX {
            let (e, p) = s.by_kind.get(&kind).copied().unwrap_or_default();
            let share = e as f64 * 100.0 / events as f64;
            assert!(
                (share - f64::from(pct)).abs() < 5.0,
                "{kind:?}: {share:.1}% of events, want ~{pct}%: {}",
                s.describe()
            );
            assert!(p >= e, "{kind:?}: every event touches at least one prefix");
        }
        let mut rib = HashMap::new();
        apply(
            &super::super::table::encode(&t, nh().v4, nh().v6, 0).expect("encodes"),
            &mut rib,
        );
        let msgs = apply(&s.bytes, &mut rib);
        assert!(
            msgs.iter()
                .any(|(a, _)| a.iter().any(|p| p.addr().is_ipv6()))
        );
        assert!(
            msgs.iter()
                .any(|(_, w)| w.iter().any(|p| p.addr().is_ipv6()))
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_octets_and_another_seed_does_not() {
        let t = table(2000, 0);
        let cfg = ChurnConfig {
            changes: 2000,
            ..ChurnConfig::default()
        };
        let a = generate(&t, nh(), &cfg).expect("generates");
        let b = generate(&t, nh(), &cfg).expect("generates");
        assert_eq!(a.bytes, b.bytes);
        let c = generate(
            &t,
            nh(),
            &ChurnConfig {
                seed: 7,
                ..cfg.clone()
            },
        )
        .expect("generates");
        assert_ne!(a.bytes, c.bytes);
        assert_eq!(a.sentinel, c.sentinel);
    }

    #[test]
    fn the_sentinel_avoids_every_table_prefix() {
        let p = |s: &str| s.parse::<IpNet>().expect("literal");
        assert_eq!(
            sentinel_for(&[p("10.0.0.0/8")]).expect("found"),
            p("198.18.0.0/24")
        );
        // A covering prefix and the first /24s are taken: the next free one.
        assert_eq!(
            sentinel_for(&[p("198.18.0.0/23"), p("198.18.2.0/25")]).expect("found"),
            p("198.18.3.0/24")
        );
        assert!(sentinel_for(&[p("198.18.0.0/15")]).is_err());
        assert!(sentinel_for(&[p("0.0.0.0/0")]).is_err());
    }
}
