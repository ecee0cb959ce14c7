//! Human output: one function (or streaming sink) per command, from the API model to aligned text.
//! Pure functions of their input (no clock, no environment), so golden files pin them down.

use std::collections::BTreeMap;
use std::io::{self, Write};

use ribd::api::{
    ActionResult, Candidate, CheckReport, DataplaneStats, FibNextHop, FibPage, FibRoute, Lookup,
    Peer, RibPage, RibPath, RibRoute, RouteDetail, Summary,
};

use crate::table::{Align, Cell, Color, Style, Table};

/// `HH:MM:SS` under a day, `1d02h03m` under a week, `2w3d04h` beyond (as vtysh prints uptimes).
pub fn duration(secs: u64) -> String {
    let (w, d, h, m, s) = (
        secs / 604_800,
        secs / 86_400 % 7,
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60,
    );
    if secs < 86_400 {
        format!("{h:02}:{m:02}:{s:02}")
    } else if secs < 604_800 {
        format!("{d}d{h:02}h{m:02}m")
    } else {
        format!("{w}w{d}d{h:02}h")
    }
}

/// A rate with an SI suffix: `0`, `950`, `1.23k`, `45.6M`, `7.89G`.
pub fn rate(x: f64) -> String {
    let x = if x.is_finite() && x > 0.0 { x } else { 0.0 };
    let (v, suffix) = if x >= 1e12 {
        (x / 1e12, "T")
    } else if x >= 1e9 {
        (x / 1e9, "G")
    } else if x >= 1e6 {
        (x / 1e6, "M")
    } else if x >= 1e3 {
        (x / 1e3, "k")
    } else {
        return format!("{}", x.round() as u64);
    };
    if v >= 100.0 {
        format!("{v:.0}{suffix}")
    } else if v >= 10.0 {
        format!("{v:.1}{suffix}")
    } else {
        format!("{v:.2}{suffix}")
    }
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".to_string(), T::to_string)
}

fn state_color(p: &Peer) -> Option<Color> {
    if !p.enabled {
        Some(Color::Dim)
    } else if p.state == "Established" {
        Some(Color::Green)
    } else if p.state == "Idle" || p.last_error.is_some() {
        Some(Color::Red)
    } else {
        Some(Color::Yellow)
    }
}

fn state_text(p: &Peer) -> String {
    if p.enabled {
        p.state.clone()
    } else {
        format!("{} (admin down)", p.state)
    }
}

/// `show summary`: the daemon, table sizes, the dataplane, then the neighbour table.
pub fn summary(out: &mut dyn Write, s: &Summary, peers: &[Peer], style: Style) -> io::Result<()> {
    writeln!(
        out,
        "{} {}, router id {}, local AS {}, up {}",
        style.paint(Some(Color::Bold), "ribd"),
        s.version,
        s.router_id,
        s.local_as,
        duration(s.uptime_secs)
    )?;
    writeln!(out, "config: {}", s.config_file)?;
    writeln!(
        out,
        "neighbours: {} configured, {} established",
        s.peers_configured, s.peers_established
    )?;
    writeln!(out, "attribute sets: {}", s.attribute_sets)?;
    writeln!(out)?;
    let mut t = Table::new(&[
        ("TABLE", Align::Left),
        ("RIB PREFIXES", Align::Right),
        ("RIB PATHS", Align::Right),
        ("FIB PREFIXES", Align::Right),
        ("FIB PATHS", Align::Right),
    ]);
    let mut afis: Vec<&str> = s.rib.iter().map(|c| c.afi.as_str()).collect();
    for f in &s.fib {
        if !afis.contains(&f.afi.as_str()) {
            afis.push(&f.afi);
        }
    }
    for afi in afis {
        let rib = s.rib.iter().find(|c| c.afi == afi);
        let fib = s.fib.iter().find(|c| c.afi == afi);
        t.row(vec![
            afi.into(),
            opt(&rib.map(|c| c.prefixes)).into(),
            opt(&rib.map(|c| c.paths)).into(),
            opt(&fib.map(|c| c.prefixes)).into(),
            opt(&fib.map(|c| c.paths)).into(),
        ]);
    }
    t.flush(out, style)?;
    writeln!(out)?;
    let dp = &s.dataplane;
    if dp.enabled {
        writeln!(out, "dataplane: instance {}", dp.instance)?;
    } else {
        writeln!(out, "dataplane: disabled (RIB only)")?;
    }
    if let Some(e) = &dp.error {
        writeln!(
            out,
            "{}",
            style.paint(Some(Color::Red), &format!("dataplane error: {e}"))
        )?;
    }
    if !dp.interfaces.is_empty() {
        let mut t = Table::new(&[
            ("INTERFACE", Align::Left),
            ("IFINDEX", Align::Right),
            ("XDP", Align::Left),
        ])
        .indent(2);
        for i in &dp.interfaces {
            let c = match i.mode.as_str() {
                "down" => Some(Color::Red),
                "generic" => Some(Color::Yellow),
                _ => Some(Color::Green),
            };
            t.row(vec![
                i.name.as_str().into(),
                i.ifindex.to_string().into(),
                Cell::colored(i.mode.clone(), c),
            ]);
        }
        t.flush(out, style)?;
    }
    let gr = &s.graceful_restart;
    // A server older than graceful restart status sends none: no line then.
    if !gr.mode.is_empty() {
        writeln!(out, "graceful restart: {}", gr_summary_text(gr))?;
    }
    writeln!(out)?;
    neighbors(out, peers, style)
}

/// The daemon's graceful restart state in one line.
fn gr_summary_text(gr: &ribd::api::GrSummary) -> String {
    let mut t = format!("{}, {}", gr.mode, gr.phase);
    let mut parts = Vec::new();
    if gr.phase != "done" {
        parts.push(format!(
            "Restart State bit {}",
            if gr.restart_state { "set" } else { "clear" }
        ));
    }
    parts.push(format!(
        "forwarding preserved: {}",
        if gr.forwarding_preserved.is_empty() {
            "none".to_string()
        } else {
            gr.forwarding_preserved.join(", ")
        }
    ));
    if gr.deferring {
        parts.push("our routes deferred until the peers' End-of-RIB".to_string());
    }
    if let Some(s) = gr.deadline_secs {
        parts.push(format!("at most {s} s left"));
    }
    if let (Some(why), Some(secs)) = (&gr.ended, gr.ended_after_secs) {
        parts.push(format!("ended after {secs:.1} s: {why}"));
    }
    t.push_str(&format!(" ({})", parts.join("; ")));
    t
}

fn families(peers: &[Peer]) -> Vec<String> {
    let mut afis: Vec<String> = Vec::new();
    for p in peers {
        for f in &p.families {
            if !afis.contains(&f.afi) {
                afis.push(f.afi.clone());
            }
        }
    }
    afis
}

/// `show neighbors`: one line per neighbour with per-family received/accepted/advertised.
pub fn neighbors(out: &mut dyn Write, peers: &[Peer], style: Style) -> io::Result<()> {
    if peers.is_empty() {
        return writeln!(out, "no neighbours configured");
    }
    let afis = families(peers);
    let heads: Vec<String> = afis
        .iter()
        .map(|a| {
            format!(
                "{} RCV/ACC/ADV",
                a.trim_end_matches("-unicast").to_uppercase()
            )
        })
        .collect();
    let mut cols = vec![
        ("NEIGHBOR", Align::Left),
        ("ADDRESS", Align::Left),
        ("AS", Align::Right),
        ("TYPE", Align::Left),
        ("STATE", Align::Left),
        ("UP/DOWN", Align::Right),
        ("FLAPS", Align::Right),
    ];
    for h in &heads {
        cols.push((h.as_str(), Align::Right));
    }
    cols.push(("LAST ERROR", Align::Left));
    let mut t = Table::new(&cols);
    for p in peers {
        let mut row: Vec<Cell> = vec![
            p.name.as_str().into(),
            p.address.to_string().into(),
            p.remote_as.to_string().into(),
            p.kind.as_str().into(),
            Cell::colored(state_text(p), state_color(p)),
            p.uptime_secs.map_or("never".into(), duration).into(),
            p.flaps.to_string().into(),
        ];
        for a in &afis {
            row.push(match p.families.iter().find(|f| &f.afi == a) {
                Some(f) => format!("{}/{}/{}", f.received, f.accepted, f.advertised).into(),
                None => "-".into(),
            });
        }
        row.push(p.last_error.clone().unwrap_or_default().into());
        t.row(row);
    }
    t.flush(out, style)
}

/// `show acl`: one row per config ACL rule, in classifier order.
pub fn acl(out: &mut dyn Write, t: &ribd::api::AclTable, style: Style) -> io::Result<()> {
    if t.rules.is_empty() {
        return writeln!(out, "no ACLs configured");
    }
    let mut tab = Table::new(&[
        ("#", Align::Right),
        ("ACL", Align::Left),
        ("RULE", Align::Left),
        ("INTERFACES", Align::Left),
        ("MATCH → ACTION", Align::Left),
        ("STATE", Align::Left),
        ("PACKETS", Align::Right),
        ("BYTES", Align::Right),
        ("DROPPED", Align::Right),
    ]);
    for r in &t.rules {
        let (state, color) = if r.installed {
            ("installed", Color::Green)
        } else {
            ("not installed", Color::Red)
        };
        tab.row(vec![
            r.order.to_string().into(),
            r.acl.as_str().into(),
            r.name.as_str().into(),
            if r.interfaces.is_empty() {
                "all".into()
            } else {
                r.interfaces.join(",").into()
            },
            r.rule.as_str().into(),
            Cell::colored(state, Some(color)),
            r.packets.to_string().into(),
            r.bytes.to_string().into(),
            r.dropped.to_string().into(),
        ]);
    }
    tab.flush(out, style)
}

/// `show flowspec`: one row per rule in classifier order, then the reasons of rules not installed.
pub fn flowspec(out: &mut dyn Write, t: &ribd::api::FlowSpecTable, style: Style) -> io::Result<()> {
    writeln!(
        out,
        "FlowSpec: {} rules; validation (RFC 8955 §6) {}, enforcement in XDP {}",
        t.rules.len(),
        if t.validate { "on" } else { "off" },
        if t.enforce { "on" } else { "off" }
    )?;
    if t.rules.is_empty() {
        return Ok(());
    }
    let mut tab = Table::new(&[
        ("#", Align::Right),
        ("RULE", Align::Left),
        ("PEER", Align::Left),
        ("EFFECT", Align::Left),
        ("STATE", Align::Left),
        ("PACKETS", Align::Right),
        ("BYTES", Align::Right),
        ("DROPPED", Align::Right),
    ]);
    for r in &t.rules {
        let (state, color) = match (r.feasible, r.installed) {
            (_, true) => ("installed", Color::Green),
            (false, _) => ("infeasible", Color::Yellow),
            (true, false) => ("not installed", Color::Red),
        };
        let peer = if r.alternatives > 0 {
            format!("{} (+{})", r.peer, r.alternatives)
        } else {
            r.peer.clone()
        };
        tab.row(vec![
            r.order.to_string().into(),
            r.rule.as_str().into(),
            peer.into(),
            r.effect.as_str().into(),
            Cell::colored(state, Some(color)),
            r.packets.to_string().into(),
            r.bytes.to_string().into(),
            r.dropped.to_string().into(),
        ]);
    }
    tab.flush(out, style)?;
    for r in t.rules.iter().filter(|r| r.reason.is_some()) {
        writeln!(
            out,
            "  #{} {}: {}",
            r.order,
            r.actions.join(" "),
            r.reason.as_deref().unwrap_or_default()
        )?;
    }
    Ok(())
}

fn family_state_color(state: &str) -> Option<Color> {
    match state {
        "active" => Some(Color::Green),
        "disabled" => Some(Color::Red),
        _ => Some(Color::Yellow),
    }
}

/// `show flowspec`, after the rules: the peers with a FlowSpec family, what they sent and were sent,
/// and the RFC 7606 outcomes of their malformed UPDATEs.
pub fn flowspec_peers(out: &mut dyn Write, peers: &[Peer], style: Style) -> io::Result<()> {
    let rows: Vec<(&Peer, &ribd::api::PeerFamily)> = peers
        .iter()
        .flat_map(|p| {
            p.families
                .iter()
                .filter(|f| f.afi.ends_with("flowspec"))
                .map(move |f| (p, f))
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    let mut t = Table::new(&[
        ("PEER", Align::Left),
        ("FAMILY", Align::Left),
        ("STATE", Align::Left),
        ("RULES IN", Align::Right),
        ("ADVERTISED", Align::Right),
        ("TREAT-AS-WITHDRAW", Align::Right),
        ("AFI/SAFI DISABLE", Align::Right),
    ]);
    for (p, f) in &rows {
        t.row(vec![
            p.name.as_str().into(),
            f.afi.as_str().into(),
            Cell::colored(&f.state, family_state_color(&f.state)),
            f.accepted.to_string().into(),
            f.advertised.to_string().into(),
            f.treat_as_withdraw.to_string().into(),
            f.afi_safi_disable.to_string().into(),
        ]);
    }
    t.flush(out, style)?;
    for (p, f) in rows.iter().filter(|(_, f)| f.last_error.is_some()) {
        writeln!(
            out,
            "  {} {}: last RFC 7606 error: {}",
            p.name,
            f.afi,
            f.last_error.as_deref().unwrap_or_default()
        )?;
    }
    Ok(())
}

const MESSAGE_TYPES: [&str; 5] = [
    "open",
    "update",
    "notification",
    "keepalive",
    "route-refresh",
];

/// `show neighbors PEER`: everything about one neighbour.
pub fn neighbor_detail(out: &mut dyn Write, p: &Peer, style: Style) -> io::Result<()> {
    let desc = if p.description.is_empty() {
        String::new()
    } else {
        format!(" \"{}\"", p.description)
    };
    writeln!(
        out,
        "{} {}, AS {} ({}){desc}",
        style.paint(Some(Color::Bold), &p.name),
        p.address,
        p.remote_as,
        p.kind
    )?;
    let kv =
        |out: &mut dyn Write, k: &str, v: String| writeln!(out, "  {:<15}{v}", format!("{k}:"));
    let up = match p.uptime_secs {
        Some(s) if p.state == "Established" => format!(", up {}", duration(s)),
        Some(s) => format!(", down {}", duration(s)),
        None => String::new(),
    };
    kv(
        out,
        "state",
        format!(
            "{}{up}, {} flaps",
            style.paint(state_color(p), &state_text(p)),
            p.flaps
        ),
    )?;
    kv(out, "enabled", yes(p.enabled).to_string())?;
    kv(out, "local AS", p.local_as.to_string())?;
    kv(out, "router id", opt(&p.router_id))?;
    kv(
        out,
        "timers",
        match (p.hold_time, p.keepalive) {
            (Some(h), Some(k)) => format!("hold {h} s, keepalive {k} s"),
            (Some(h), None) => format!("hold {h} s"),
            _ => "-".to_string(),
        },
    )?;
    if let Some(e) = &p.last_error {
        kv(out, "last error", style.paint(Some(Color::Red), e))?;
    }
    if let Some(e) = &p.last_down {
        kv(out, "last down", e.clone())?;
    }
    kv(
        out,
        "capabilities",
        if p.capabilities.is_empty() {
            "-".to_string()
        } else {
            p.capabilities.join(", ")
        },
    )?;
    if let Some(g) = &p.graceful_restart {
        kv(out, "GR", gr_peer_text(g))?;
    }
    let list = |v: &[String]| {
        if v.is_empty() {
            "(none)".to_string()
        } else {
            v.join(", ")
        }
    };
    kv(out, "import policy", list(&p.import))?;
    kv(out, "export policy", list(&p.export))?;
    writeln!(out, "  routes:")?;
    // A server older than the per-family state sends none: no column then.
    let states = p.families.iter().any(|f| !f.state.is_empty());
    let mut cols = vec![("FAMILY", Align::Left)];
    if states {
        cols.push(("STATE", Align::Left));
    }
    cols.extend([
        ("RECEIVED", Align::Right),
        ("ACCEPTED", Align::Right),
        ("ADVERTISED", Align::Right),
    ]);
    let mut t = Table::new(&cols).indent(4);
    for f in &p.families {
        let mut row: Vec<Cell> = vec![f.afi.as_str().into()];
        if states {
            row.push(Cell::colored(&f.state, family_state_color(&f.state)));
        }
        row.extend([
            f.received.to_string().into(),
            f.accepted.to_string().into(),
            f.advertised.to_string().into(),
        ]);
        t.row(row);
    }
    t.flush(out, style)?;
    for f in p
        .families
        .iter()
        .filter(|f| f.treat_as_withdraw > 0 || f.afi_safi_disable > 0 || f.last_error.is_some())
    {
        writeln!(
            out,
            "    {}: RFC 7606 treat-as-withdraw {}, AFI/SAFI disable {}{}",
            f.afi,
            f.treat_as_withdraw,
            f.afi_safi_disable,
            f.last_error
                .as_ref()
                .map(|e| format!("; last error: {e}"))
                .unwrap_or_default()
        )?;
    }
    writeln!(out, "  messages:")?;
    let mut t = Table::new(&[
        ("TYPE", Align::Left),
        ("RECEIVED", Align::Right),
        ("SENT", Align::Right),
    ])
    .indent(4);
    for (i, name) in MESSAGE_TYPES.iter().enumerate() {
        t.row(vec![
            (*name).into(),
            p.messages.received[i].to_string().into(),
            p.messages.sent[i].to_string().into(),
        ]);
    }
    t.row(vec![
        "total".into(),
        p.messages.received.iter().sum::<u64>().to_string().into(),
        p.messages.sent.iter().sum::<u64>().to_string().into(),
    ]);
    t.flush(out, style)
}

fn origin_code(o: &str) -> &str {
    match o.to_ascii_lowercase().as_str() {
        "igp" | "i" => "i",
        "egp" | "e" => "e",
        "incomplete" | "?" => "?",
        _ => o,
    }
}

fn path_flags(p: &RibPath) -> (String, Option<Color>) {
    let mut f = String::new();
    f.push(if p.stale { 'S' } else { ' ' });
    f.push(if p.best {
        '>'
    } else if p.multipath {
        '='
    } else {
        ' '
    });
    let c = if p.stale {
        Some(Color::Yellow)
    } else if p.best {
        Some(Color::Green)
    } else if p.multipath {
        Some(Color::Cyan)
    } else {
        None
    };
    (f, c)
}

fn as_path_text(p: &RibPath) -> String {
    let o = origin_code(&p.origin);
    if p.as_path.is_empty() {
        o.to_string()
    } else {
        format!("{} {o}", p.as_path)
    }
}

fn communities_text(p: &RibPath) -> String {
    let mut v: Vec<&str> = p.communities.iter().map(String::as_str).collect();
    v.extend(p.large_communities.iter().map(String::as_str));
    v.extend(p.ext_communities.iter().map(String::as_str));
    v.join(" ")
}

/// Legend printed above RIB tables.
pub const RIB_LEGEND: &str = "Flags: > best, = multipath, S stale (graceful restart); path ends with \
                              origin: i IGP, e EGP, ? incomplete";

/// `show rib`: routes of one family, fed page by page.
pub struct RibTable {
    style: Style,
    table: Table,
    started: bool,
    prefixes: u64,
    paths: u64,
}

impl RibTable {
    pub fn new(style: Style) -> RibTable {
        RibTable {
            style,
            table: Table::new(&[
                ("", Align::Left),
                ("PREFIX", Align::Left),
                ("NEXT HOP", Align::Left),
                ("PEER", Align::Left),
                ("LOCPRF", Align::Right),
                ("MED", Align::Right),
                ("AS PATH", Align::Left),
                ("COMMUNITIES", Align::Left),
            ])
            // Room for the longest IPv4 prefix and next hop and common peer names, so that later
            // pages seldom need wider columns than the first one.
            .min_width(0, 2)
            .min_width(1, 18)
            .min_width(2, 15)
            .min_width(3, 10),
            started: false,
            prefixes: 0,
            paths: 0,
        }
    }

    pub fn page(&mut self, out: &mut dyn Write, page: &RibPage) -> io::Result<()> {
        if !self.started {
            self.started = true;
            writeln!(
                out,
                "{}",
                self.style.paint(
                    Some(Color::Bold),
                    &format!(
                        "Table {}: {} prefixes, {} matching",
                        page.afi, page.total, page.matched
                    )
                )
            )?;
            if page.routes.is_empty() {
                return Ok(());
            }
        }
        for r in &page.routes {
            self.route(r);
        }
        if !self.table.is_empty() {
            self.table.flush(out, self.style)?;
        }
        Ok(())
    }

    fn route(&mut self, r: &RibRoute) {
        self.prefixes += 1;
        for (i, p) in r.paths.iter().enumerate() {
            self.paths += 1;
            let (flags, c) = path_flags(p);
            self.table.row(vec![
                Cell::colored(flags, c),
                if i == 0 {
                    r.prefix.as_str().into()
                } else {
                    "".into()
                },
                opt(&p.next_hop).into(),
                p.peer.as_str().into(),
                opt(&p.local_pref).into(),
                opt(&p.med).into(),
                as_path_text(p).into(),
                communities_text(p).into(),
            ]);
        }
    }

    /// Prints the count line.
    pub fn finish(&mut self, out: &mut dyn Write) -> io::Result<()> {
        if self.prefixes > 0 {
            writeln!(
                out,
                "{} prefixes, {} paths shown",
                self.prefixes, self.paths
            )?;
        }
        Ok(())
    }
}

fn candidate_line(c: &Candidate, style: Style) -> String {
    let p = &c.path;
    let (flags, color) = path_flags(p);
    let via = p
        .next_hop
        .map_or_else(|| "no next hop".to_string(), |n| format!("via {n}"));
    let verdict = if p.best {
        style.paint(Some(Color::Green), "best")
    } else {
        let step = c.lost_at.clone().unwrap_or_else(|| "?".to_string());
        let mut v = format!("lost at {step}");
        if let Some(r) = &c.reason {
            v.push_str(&format!(": {r}"));
        }
        if p.multipath {
            v = format!("multipath, {v}");
        }
        style.paint(Some(Color::Yellow), &v)
    };
    format!(
        "{} from {} {via}{}  {verdict}",
        style.paint(color, &flags),
        p.peer,
        if p.path_id != 0 {
            format!(" (path id {})", p.path_id)
        } else {
            String::new()
        }
    )
}

/// `show route PREFIX`: every candidate, the best marked, why each other one lost, and the FIB entry.
pub fn route_detail(out: &mut dyn Write, r: &RouteDetail, style: Style) -> io::Result<()> {
    writeln!(
        out,
        "{}: {} candidate path{}",
        style.paint(Some(Color::Bold), &r.prefix),
        r.candidates.len(),
        if r.candidates.len() == 1 { "" } else { "s" }
    )?;
    for c in &r.candidates {
        let p = &c.path;
        writeln!(out, "  {}", candidate_line(c, style))?;
        writeln!(
            out,
            "       AS path: {}, origin {}, local-pref {}, MED {}",
            if p.as_path.is_empty() {
                "(empty)"
            } else {
                &p.as_path
            },
            p.origin,
            opt(&p.local_pref),
            opt(&p.med)
        )?;
        for (k, v) in [
            ("communities", &p.communities),
            ("large communities", &p.large_communities),
            ("ext communities", &p.ext_communities),
        ] {
            if !v.is_empty() {
                writeln!(out, "       {k}: {}", v.join(" "))?;
            }
        }
        writeln!(
            out,
            "       next hop {}, IGP cost {}{}",
            if c.reachable {
                "reachable".to_string()
            } else {
                style.paint(Some(Color::Red), "unreachable")
            },
            c.igp_cost,
            if p.stale { ", stale" } else { "" }
        )?;
    }
    writeln!(out)?;
    match &r.fib {
        Some(f) => fib_entry(out, f, style),
        None => writeln!(out, "FIB: not installed"),
    }
}

fn fib_ids(f: &FibRoute) -> String {
    let mut s = f.kind.clone();
    if let Some(pl) = f.pathlist {
        s.push_str(&format!(", path-list {pl}"));
    }
    if let Some(g) = f.group {
        s.push_str(&format!(", group {g}"));
    }
    s
}

fn nexthop_table(indent: usize) -> Table {
    Table::new(&[
        ("NEXT HOP", Align::Left),
        ("WEIGHT", Align::Right),
        ("BUCKETS", Align::Right),
        ("INTERFACE", Align::Left),
        ("MAC", Align::Left),
    ])
    .indent(indent)
}

fn iface_cell(resolved: bool, iface: &Option<String>) -> Cell {
    if resolved {
        opt(iface).into()
    } else {
        Cell::colored("unresolved (to kernel)", Some(Color::Yellow))
    }
}

/// One FIB route with its next-hop table (used by `show route` and `lookup`).
pub fn fib_entry(out: &mut dyn Write, f: &FibRoute, style: Style) -> io::Result<()> {
    writeln!(out, "FIB: {} {}", f.prefix, fib_ids(f))?;
    if f.nexthops.is_empty() {
        return Ok(());
    }
    let mut t = nexthop_table(2);
    for n in &f.nexthops {
        t.row(nexthop_cells(n, ""));
    }
    for n in &f.backup {
        t.row(nexthop_cells(n, "backup "));
    }
    t.flush(out, style)?;
    if !f.backup.is_empty() {
        writeln!(
            out,
            "  backup: where flows go while every primary next hop is down (BGP PIC)"
        )?;
    }
    Ok(())
}

/// The cells of one next-hop row; `tag` marks backup next-hops.
fn nexthop_cells(n: &FibNextHop, tag: &str) -> Vec<Cell> {
    vec![
        format!("{tag}{}", n.address).into(),
        n.weight.to_string().into(),
        opt(&n.buckets).into(),
        iface_cell(n.resolved, &n.interface),
        opt(&n.mac).into(),
    ]
}

/// `show fib`: the dataplane's routes, fed page by page.
pub struct FibTable {
    style: Style,
    table: Table,
    started: bool,
    routes: u64,
}

impl FibTable {
    pub fn new(style: Style) -> FibTable {
        FibTable {
            style,
            table: Table::new(&[
                ("PREFIX", Align::Left),
                ("KIND", Align::Left),
                ("PATHLIST", Align::Right),
                ("GROUP", Align::Right),
                ("NEXT HOP", Align::Left),
                ("WEIGHT", Align::Right),
                ("BUCKETS", Align::Right),
                ("INTERFACE", Align::Left),
                ("MAC", Align::Left),
            ])
            .min_width(0, 18)
            .min_width(4, 15),
            started: false,
            routes: 0,
        }
    }

    pub fn page(&mut self, out: &mut dyn Write, page: &FibPage) -> io::Result<()> {
        if !self.started {
            self.started = true;
            writeln!(
                out,
                "{}",
                self.style
                    .paint(Some(Color::Bold), &format!("FIB: {} routes", page.total))
            )?;
        }
        for r in &page.routes {
            self.routes += 1;
            let kind_color = match r.kind.as_str() {
                "forward" => None,
                "blackhole" => Some(Color::Red),
                _ => Some(Color::Yellow),
            };
            let head = |t: &mut Table, nh: Vec<Cell>| {
                let mut row = vec![
                    r.prefix.as_str().into(),
                    Cell::colored(r.kind.clone(), kind_color),
                    opt(&r.pathlist).into(),
                    opt(&r.group).into(),
                ];
                row.extend(nh);
                t.row(row);
            };
            if r.nexthops.is_empty() {
                head(&mut self.table, vec!["-".into()]);
            }
            let rows = r
                .nexthops
                .iter()
                .map(|n| (n, ""))
                .chain(r.backup.iter().map(|n| (n, "backup ")));
            for (i, (n, tag)) in rows.enumerate() {
                let nh = nexthop_cells(n, tag);
                if i == 0 {
                    head(&mut self.table, nh);
                } else {
                    let mut row: Vec<Cell> = vec!["".into(), "".into(), "".into(), "".into()];
                    row.extend(nh);
                    self.table.row(row);
                }
            }
        }
        if !self.table.is_empty() {
            self.table.flush(out, self.style)?;
        }
        Ok(())
    }

    pub fn finish(&mut self, out: &mut dyn Write) -> io::Result<()> {
        if self.routes > 0 {
            writeln!(out, "{} routes shown", self.routes)?;
        }
        Ok(())
    }
}

/// `lookup ADDRESS`: the RIB's longest match and what the dataplane does.
pub fn lookup(out: &mut dyn Write, l: &Lookup, style: Style) -> io::Result<()> {
    writeln!(
        out,
        "{}",
        style.paint(Some(Color::Bold), &format!("lookup {}", l.address))
    )?;
    match &l.rib {
        Some(r) => {
            let best = r.paths.iter().find(|p| p.best);
            let mp = r.paths.iter().filter(|p| p.multipath && !p.best).count();
            match best {
                Some(p) => writeln!(
                    out,
                    "RIB: {} best via {} from {}, AS path {}{}",
                    r.prefix,
                    opt(&p.next_hop),
                    p.peer,
                    as_path_text(p),
                    if mp > 0 {
                        format!(" (+{mp} multipath)")
                    } else {
                        String::new()
                    }
                )?,
                None => writeln!(
                    out,
                    "RIB: {} ({} paths, none selected)",
                    r.prefix,
                    r.paths.len()
                )?,
            }
        }
        None => writeln!(out, "RIB: no matching route")?,
    }
    match &l.fib {
        Some(f) => fib_entry(out, f, style)?,
        None => writeln!(
            out,
            "FIB: no matching route (the dataplane passes such packets to the kernel)"
        )?,
    }
    if let Some(f) = &l.flow {
        let ports = match (f.source_port, f.destination_port) {
            (Some(s), Some(d)) => format!(" ports {s} -> {d}"),
            _ => String::new(),
        };
        writeln!(
            out,
            "flow from {} proto {}{ports}: hash {:#010x}, bucket {}/{} of group {} -> {} on {} ({})",
            f.source,
            f.protocol,
            f.hash,
            f.bucket,
            f.buckets,
            f.group,
            opt(&f.nexthop),
            f.interface.as_deref().unwrap_or("-"),
            f.mac.as_deref().unwrap_or("-"),
        )?;
    }
    Ok(())
}

/// Counters of a previous sample and the seconds since, for rates.
pub struct Previous<'a> {
    pub stats: &'a DataplaneStats,
    pub secs: f64,
}

fn per_sec(now: u64, before: Option<u64>, secs: f64) -> f64 {
    match before {
        Some(b) if secs > 0.0 => now.saturating_sub(b) as f64 / secs,
        _ => 0.0,
    }
}

/// `show stats`: counters per reason, per interface (sum of its next-hops' tx) and per next-hop; with a
/// previous sample, packet and bit rates between the two.
pub fn stats(
    out: &mut dyn Write,
    s: &DataplaneStats,
    prev: Option<Previous<'_>>,
    style: Style,
) -> io::Result<()> {
    if s.reasons.is_empty() && s.nexthops.is_empty() {
        return writeln!(
            out,
            "no dataplane counters (the dataplane is not programmed)"
        );
    }
    let rates = prev.is_some();
    let with_rates = |mut cols: Vec<(&'static str, Align)>| {
        if rates {
            cols.push(("PKT/S", Align::Right));
            cols.push(("BIT/S", Align::Right));
        }
        cols
    };
    let rate_cells = |row: &mut Vec<Cell>, pk: u64, by: u64, ppk: Option<u64>, pby: Option<u64>| {
        if let Some(p) = &prev {
            row.push(rate(per_sec(pk, ppk, p.secs)).into());
            row.push(rate(per_sec(by, pby, p.secs) * 8.0).into());
        }
    };
    let mut t = Table::new(&with_rates(vec![
        ("REASON", Align::Left),
        ("PACKETS", Align::Right),
        ("BYTES", Align::Right),
    ]));
    for r in &s.reasons {
        let before = prev
            .as_ref()
            .and_then(|p| p.stats.reasons.iter().find(|x| x.reason == r.reason));
        let mut row: Vec<Cell> = vec![
            r.reason.as_str().into(),
            r.packets.to_string().into(),
            r.bytes.to_string().into(),
        ];
        rate_cells(
            &mut row,
            r.packets,
            r.bytes,
            before.map(|b| b.packets),
            before.map(|b| b.bytes),
        );
        t.row(row);
    }
    t.flush(out, style)?;

    // Per interface: the sum of its next-hops' transmit counters.
    let sum = |st: &DataplaneStats| {
        let mut m: BTreeMap<String, (u64, u64, usize)> = BTreeMap::new();
        for n in &st.nexthops {
            // ribd may write "IFACE (NEXT-HOP)": group by the interface name alone.
            let iface = n
                .interface
                .split(" (")
                .next()
                .unwrap_or_default()
                .to_string();
            let e = m.entry(iface).or_default();
            e.0 += n.packets;
            e.1 += n.bytes;
            e.2 += 1;
        }
        m
    };
    if !s.nexthops.is_empty() {
        writeln!(out)?;
        let now = sum(s);
        let before = prev.as_ref().map(|p| sum(p.stats));
        let mut t = Table::new(&with_rates(vec![
            ("INTERFACE", Align::Left),
            ("NEXT HOPS", Align::Right),
            ("TX PACKETS", Align::Right),
            ("TX BYTES", Align::Right),
        ]));
        for (iface, (pk, by, n)) in &now {
            let b = before.as_ref().and_then(|m| m.get(iface));
            let mut row: Vec<Cell> = vec![
                iface.as_str().into(),
                n.to_string().into(),
                pk.to_string().into(),
                by.to_string().into(),
            ];
            rate_cells(&mut row, *pk, *by, b.map(|b| b.0), b.map(|b| b.1));
            t.row(row);
        }
        t.flush(out, style)?;

        writeln!(out)?;
        let mut t = Table::new(&with_rates(vec![
            ("NEXT HOP ID", Align::Right),
            ("INTERFACE", Align::Left),
            ("MAC", Align::Left),
            ("TX PACKETS", Align::Right),
            ("TX BYTES", Align::Right),
        ]));
        for n in &s.nexthops {
            let b = prev
                .as_ref()
                .and_then(|p| p.stats.nexthops.iter().find(|x| x.id == n.id));
            let mut row: Vec<Cell> = vec![
                n.id.to_string().into(),
                n.interface.as_str().into(),
                n.mac.as_str().into(),
                n.packets.to_string().into(),
                n.bytes.to_string().into(),
            ];
            rate_cells(
                &mut row,
                n.packets,
                n.bytes,
                b.map(|b| b.packets),
                b.map(|b| b.bytes),
            );
            t.row(row);
        }
        t.flush(out, style)?;
    }
    Ok(())
}

/// `fib check`.
pub fn check(out: &mut dyn Write, c: &CheckReport, style: Style) -> io::Result<()> {
    if c.ok {
        writeln!(
            out,
            "FIB check: {} ({} prefixes checked)",
            style.paint(Some(Color::Green), "consistent"),
            c.checked
        )?;
        // Notes that do not make the check fail (e.g. nothing programmed to compare against).
        for d in &c.differences {
            writeln!(out, "  note: {d}")?;
        }
        Ok(())
    } else {
        writeln!(
            out,
            "FIB check: {} in {} prefixes checked",
            style.paint(
                Some(Color::Red),
                &format!(
                    "{} difference{}",
                    c.differences.len(),
                    if c.differences.len() == 1 { "" } else { "s" }
                )
            ),
            c.checked
        )?;
        for d in &c.differences {
            writeln!(out, "  {d}")?;
        }
        Ok(())
    }
}

/// `peer ACTION PEER` and `reload`.
pub fn action(out: &mut dyn Write, what: &str, r: &ActionResult, style: Style) -> io::Result<()> {
    if r.ok {
        writeln!(out, "{what}: {}", r.message)
    } else {
        writeln!(
            out,
            "{what}: {}: {}",
            style.paint(Some(Color::Red), "refused"),
            r.message
        )
    }
}

/// Graceful restart with one neighbour in one line.
fn gr_peer_text(g: &ribd::api::PeerGr) -> String {
    let Some(phase) = &g.stale_phase else {
        return gr_session_text(g);
    };
    let mut t = format!(
        "helping it restart: {} IPv4 + {} IPv6 paths kept stale, {phase} phase",
        g.stale_paths_ipv4, g.stale_paths_ipv6
    );
    if let Some(s) = g.stale_remaining_secs {
        t.push_str(&format!(" ends in {s} s"));
    }
    // While the session is down nothing is negotiated on it; once it is back, what it negotiated
    // (the End-of-RIBs still awaited) follows.
    if g.negotiated {
        t.push_str("; ");
        t.push_str(&gr_session_text(g));
    }
    t
}

/// What the session negotiated of graceful restart (the first part of [`gr_peer_text`]).
fn gr_session_text(g: &ribd::api::PeerGr) -> String {
    if !g.negotiated {
        return if g.deferred {
            "not negotiated; our routes deferred".to_string()
        } else {
            "not negotiated".to_string()
        };
    }
    let mut t = "negotiated".to_string();
    if let Some(rt) = g.peer_restart_time {
        t.push_str(&format!(", peer restart time {rt} s"));
    }
    if g.peer_restarting {
        t.push_str(", peer restarting");
    }
    if !g.peer_forwarding.is_empty() {
        t.push_str(&format!(
            ", peer kept forwarding {}",
            g.peer_forwarding.join(", ")
        ));
    }
    t.push_str(&format!(
        "; End-of-RIB received: {}",
        if g.end_of_rib_received.is_empty() {
            "none".to_string()
        } else {
            g.end_of_rib_received.join(", ")
        }
    ));
    if g.deferred {
        t.push_str("; our routes deferred (restarting)");
    }
    t
}
