//! BIRD 2 driver: `bird -f` in the namespace, controlled through its socket with `birdc`.
//!
//! Routes are `protocol static` entries (`route P blackhole { bgp_… attributes }`), exported to every
//! neighbour with `export where source = RTS_STATIC`; announce/withdraw rewrite `bird.conf` and run
//! `birdc configure`. Received routes come from parsing `birdc show route all table master4|6`.
//! FlowSpec rules ([`FlowRoute`]) are `route flow4|flow6 { … }` entries, each in a static protocol of its
//! own (named after its match) feeding the tables `tbflow4`/`tbflow6`; the `tbflow` export filter adds each
//! rule's action as a generic extended community, picked by protocol name.
//! BIRD binds port 179 for the whole namespace: one BIRD per namespace. BIRD does not send a locally set
//! MED to eBGP neighbours. A [`Route::next_hop`] becomes `route P via NH`: BIRD passes it on as a
//! third-party next hop when it lies in the subnet shared with the neighbour, else announces itself.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ipnet::IpNet;

use super::{
    BgpPeer, Daemon, Family, FlowRoute, Kind, Origin, PeerConfig, ReceivedRoute, Route,
    SessionState, lock, parse_large_community, tail, temp_dir, wait_until,
};

/// A running BIRD 2.
pub struct Bird {
    ns: String,
    state: Mutex<State>,
    dir: tempfile::TempDir,
}

struct State {
    cfg: PeerConfig,
    daemon: Option<Daemon>,
}

impl Bird {
    /// Writes the configuration and starts BIRD in namespace `ns` (by name; see `Netns::name`).
    pub fn start(ns: &str, cfg: PeerConfig) -> Result<Bird> {
        let dir = temp_dir("bird", ns)?;
        let b = Bird {
            ns: ns.to_string(),
            state: Mutex::new(State { cfg, daemon: None }),
            dir,
        };
        b.write_config(&lock(&b.state).cfg)?;
        b.spawn()?;
        Ok(b)
    }

    fn path(&self, f: &str) -> PathBuf {
        self.dir.path().join(f)
    }

    fn ctl(&self) -> String {
        self.path("bird.ctl").display().to_string()
    }

    fn spawn(&self) -> Result<()> {
        let (conf, ctl, pid) = (
            self.path("bird.conf"),
            self.ctl(),
            self.path("bird.pid").display().to_string(),
        );
        let conf = conf.display().to_string();
        let d = Daemon::spawn(
            "bird",
            &self.ns,
            "bird",
            &["-f", "-c", &conf, "-s", &ctl, "-P", &pid],
            &[],
            &self.path("bird.out"),
        )?;
        lock(&self.state).daemon = Some(d);
        wait_until(Duration::from_secs(10), || {
            if let Some(d) = lock(&self.state).daemon.as_mut()
                && let Some(st) = d.exited()
            {
                bail!("bird exited at start ({st})");
            }
            Ok(self.birdc(&["show", "status"]).ok().map(|_| ()))
        })
        .with_context(|| format!("BIRD did not come up\n{}", self.diagnostics()))
    }

    /// Runs `birdc -s CTL args` and returns its output; BIRD's error replies become errors.
    pub fn birdc(&self, args: &[&str]) -> Result<String> {
        let out = crate::netns::run(Command::new("birdc").arg("-s").arg(self.ctl()).args(args))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        // Reply codes 8xxx/9xxx are runtime/parse errors; birdc prints them without the code.
        for bad in [
            "syntax error",
            "Unable to connect",
            "No protocols match",
            "Reconfiguration rejected",
        ] {
            if text.contains(bad) {
                bail!("birdc {}: {}", args.join(" "), text.trim());
            }
        }
        Ok(text)
    }

    fn proto_name(&self, neighbor: IpAddr) -> Result<String> {
        lock(&self.state)
            .cfg
            .neighbors
            .iter()
            .position(|n| n.address == neighbor)
            .map(|i| format!("n{i}"))
            .with_context(|| format!("BIRD has no neighbour {neighbor}"))
    }

    fn write_config(&self, cfg: &PeerConfig) -> Result<()> {
        let text = self.config_text(cfg);
        std::fs::write(self.path("bird.conf"), text).context("writing bird.conf")
    }

    /// The generated `bird.conf`.
    pub fn config_text(&self, c: &PeerConfig) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "log \"{}\" all;", self.path("bird.log").display());
        let _ = writeln!(s, "router id {};", c.router_id);
        let _ = writeln!(s, "protocol device {{ scan time 1; }}");
        for (name, fam) in [("s4", Family::Ipv4Unicast), ("s6", Family::Ipv6Unicast)] {
            let chan = if fam == Family::Ipv4Unicast {
                "ipv4"
            } else {
                "ipv6"
            };
            let _ = writeln!(s, "protocol static {name} {{\n  {chan};");
            for r in c.routes.iter().filter(|r| Family::of(&r.prefix) == fam) {
                // With a next hop on a shared subnet BIRD announces it unchanged to an eBGP neighbour on
                // that subnet (a third-party next hop, RFC 4271 §5.1.3); otherwise the session address.
                let how = match r.next_hop {
                    Some(nh) => format!("via {nh}"),
                    None => "blackhole".to_string(),
                };
                let _ = writeln!(s, "  route {} {how}{};", r.prefix, static_attrs(r));
            }
            let _ = writeln!(s, "}}");
        }
        let _ = writeln!(s, "flow4 table tbflow4;\nflow6 table tbflow6;");
        for f in &c.flows {
            let table = if f.family == Family::Ipv6Flowspec {
                "flow6 { table tbflow6; }"
            } else {
                "flow4 { table tbflow4; }"
            };
            let _ = writeln!(
                s,
                "protocol static {} {{\n  {table};\n  {}\n}}",
                f.bird_proto_name(),
                f.bird_route()
            );
        }
        let _ = writeln!(s, "filter tbflow {{");
        for f in &c.flows {
            let _ = writeln!(s, "  {}", f.bird_action());
        }
        let _ = writeln!(s, "  if source = RTS_STATIC then accept;\n  reject;\n}}");
        for (i, n) in c.neighbors.iter().enumerate() {
            let _ = writeln!(s, "protocol bgp n{i} {{");
            match n.local_address {
                Some(a) => {
                    let _ = writeln!(s, "  local {a} as {};", c.local_as);
                }
                None => {
                    let _ = writeln!(s, "  local as {};", c.local_as);
                }
            }
            let _ = writeln!(s, "  neighbor {} as {};", n.address, n.remote_as);
            if n.passive {
                let _ = writeln!(s, "  passive on;");
            }
            if let Some(ttl) = n.multihop {
                let _ = writeln!(s, "  multihop {ttl};");
            }
            if n.ttl_security {
                let _ = writeln!(s, "  ttl security on;");
            }
            if let Some(p) = &n.password {
                let _ = writeln!(s, "  password \"{p}\";");
            }
            if let Some(h) = n.hold_time {
                let _ = writeln!(s, "  hold time {h};\n  keepalive time {};", (h / 3).max(1));
                let _ = writeln!(s, "  connect retry time 1;\n  error wait time 1, 5;");
            }
            match n.graceful_restart {
                Some(t) => {
                    let _ = writeln!(s, "  graceful restart on;\n  graceful restart time {t};");
                }
                None => {
                    let _ = writeln!(s, "  graceful restart off;");
                }
            }
            if !n.route_refresh {
                let _ = writeln!(s, "  enable route refresh off;");
            }
            for fam in &n.families {
                let chan = match fam {
                    Family::Ipv4Unicast => "ipv4",
                    Family::Ipv6Unicast => "ipv6",
                    Family::Ipv4Flowspec => "flow4",
                    Family::Ipv6Flowspec => "flow6",
                };
                if fam.is_flowspec() {
                    let table = if *fam == Family::Ipv4Flowspec {
                        "tbflow4"
                    } else {
                        "tbflow6"
                    };
                    let _ = writeln!(
                        s,
                        "  {chan} {{ table {table}; import all; export filter tbflow; }};"
                    );
                    continue;
                }
                let mut extra = String::new();
                if let Some(ap) = n.add_path {
                    let mode = match (ap.send, ap.receive) {
                        (true, true) => "on",
                        (true, false) => "tx",
                        (false, true) => "rx",
                        (false, false) => "off",
                    };
                    let _ = write!(extra, " add paths {mode};");
                }
                let _ = writeln!(
                    s,
                    "  {chan} {{ import all; export where source = RTS_STATIC;{extra} }};"
                );
            }
            let _ = writeln!(s, "}}");
        }
        s
    }

    fn reconfigure(&self, cfg: &PeerConfig) -> Result<()> {
        self.write_config(cfg)?;
        let out = self.birdc(&["configure"])?;
        if !out.contains("Reconfigured") && !out.contains("Reconfiguration in progress") {
            bail!("birdc configure: {}", out.trim());
        }
        Ok(())
    }
}

/// The unicast table of `family` (received routes are read back for unicast only).
fn master_table(family: Family) -> Result<&'static str> {
    match family {
        Family::Ipv4Unicast => Ok("master4"),
        Family::Ipv6Unicast => Ok("master6"),
        f => {
            bail!("the BIRD driver reads back unicast routes only, not {f:?} (use received_count)")
        }
    }
}

/// ` { bgp_community.add(..); ... }` for a static route, or nothing.
fn static_attrs(r: &Route) -> String {
    let mut a = String::new();
    for (x, y) in &r.communities {
        let _ = write!(a, " bgp_community.add(({x},{y}));");
    }
    for (x, y, z) in &r.large_communities {
        let _ = write!(a, " bgp_large_community.add(({x},{y},{z}));");
    }
    if let Some(m) = r.med {
        let _ = write!(a, " bgp_med = {m};");
    }
    if let Some(lp) = r.local_pref {
        let _ = write!(a, " bgp_local_pref = {lp};");
    }
    for asn in r.prepend.iter().rev() {
        let _ = write!(a, " bgp_path.prepend({asn});");
    }
    if let Some(o) = r.origin {
        let w = match o {
            Origin::Igp => "ORIGIN_IGP",
            Origin::Egp => "ORIGIN_EGP",
            Origin::Incomplete => "ORIGIN_INCOMPLETE",
        };
        let _ = write!(a, " bgp_origin = {w};");
    }
    if a.is_empty() {
        a
    } else {
        format!(" {{{a} }}")
    }
}

/// Parses `birdc show route all` output, keeping BGP routes; `protos` maps protocol names to neighbours.
pub fn parse_show_route_all(text: &str, protos: &[(String, IpAddr)]) -> Vec<ReceivedRoute> {
    let mut out: Vec<ReceivedRoute> = Vec::new();
    let mut cur_prefix: Option<IpNet> = None;
    let mut cur: Option<(ReceivedRoute, bool)> = None; // (route, is BGP)
    let flush = |cur: &mut Option<(ReceivedRoute, bool)>, out: &mut Vec<ReceivedRoute>| {
        if let Some((r, true)) = cur.take() {
            out.push(r);
        }
    };
    for line in text.lines() {
        if line.is_empty() || line.starts_with("BIRD ") || line.starts_with("Table ") {
            continue;
        }
        if let Some(attr) = line.strip_prefix('\t') {
            let Some((_, r)) = cur.as_mut().map(|(r, b)| (b, r)) else {
                continue;
            };
            let attr = attr.trim();
            if attr.starts_with("Type: BGP") {
                if let Some(c) = cur.as_mut() {
                    c.1 = true;
                }
                continue;
            }
            let Some((k, v)) = attr.split_once(": ") else {
                continue;
            };
            let v = v.trim();
            match k {
                "BGP.origin" => r.origin = Origin::parse(v),
                "BGP.as_path" => {
                    r.as_path = v
                        .split(|c: char| !c.is_ascii_digit())
                        .filter_map(|t| t.parse().ok())
                        .collect()
                }
                "BGP.next_hop" => {
                    r.next_hop = v.split_whitespace().next().and_then(|a| a.parse().ok())
                }
                "BGP.med" => r.med = v.parse().ok(),
                "BGP.local_pref" => r.local_pref = v.parse().ok(),
                "BGP.community" => {
                    r.communities = v
                        .split(')')
                        .filter_map(|p| {
                            let p = p.trim().trim_start_matches('(');
                            super::parse_community(&p.replace(',', ":"))
                        })
                        .collect()
                }
                "BGP.large_community" => {
                    r.large_communities = v
                        .split(')')
                        .filter_map(|p| {
                            let p = p.trim().trim_start_matches('(');
                            parse_large_community(&p.replace(',', ":"))
                        })
                        .collect()
                }
                _ => {}
            }
            continue;
        }
        // A route header: "PREFIX  unicast [proto time] ..." or, for a further route of the same
        // prefix, the same without the prefix (indented with spaces).
        flush(&mut cur, &mut out);
        let mut words = line.split_whitespace();
        if !line.starts_with(' ')
            && let Some(p) = words.next().and_then(|w| w.parse::<IpNet>().ok())
        {
            cur_prefix = Some(p);
        }
        let proto = line
            .split_once('[')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap_or("");
        let from = protos.iter().find(|(n, _)| n == proto).map(|(_, a)| *a);
        cur = Some((
            ReceivedRoute {
                prefix: cur_prefix,
                from,
                ..Default::default()
            },
            false,
        ));
    }
    flush(&mut cur, &mut out);
    out
}

impl BgpPeer for Bird {
    fn kind(&self) -> Kind {
        Kind::Bird
    }

    fn netns(&self) -> &str {
        &self.ns
    }

    fn announce(&self, route: &Route) -> Result<()> {
        let mut st = lock(&self.state);
        st.cfg.routes.retain(|r| r.prefix != route.prefix);
        st.cfg.routes.push(route.clone());
        self.reconfigure(&st.cfg)
    }

    fn withdraw(&self, prefix: IpNet) -> Result<()> {
        let mut st = lock(&self.state);
        st.cfg.routes.retain(|r| r.prefix != prefix);
        self.reconfigure(&st.cfg)
    }

    fn announce_flow(&self, flow: &FlowRoute) -> Result<()> {
        flow.validate()?;
        let mut st = lock(&self.state);
        st.cfg.flows.retain(|f| !f.same_match(flow));
        st.cfg.flows.push(flow.clone());
        self.reconfigure(&st.cfg)
    }

    fn withdraw_flow(&self, flow: &FlowRoute) -> Result<()> {
        let mut st = lock(&self.state);
        st.cfg.flows.retain(|f| !f.same_match(flow));
        self.reconfigure(&st.cfg)
    }

    fn received(&self, family: Family) -> Result<Vec<ReceivedRoute>> {
        let table = master_table(family)?;
        let text = self.birdc(&["show", "route", "all", "table", table])?;
        let protos: Vec<(String, IpAddr)> = lock(&self.state)
            .cfg
            .neighbors
            .iter()
            .enumerate()
            .map(|(i, n)| (format!("n{i}"), n.address))
            .collect();
        Ok(parse_show_route_all(&text, &protos))
    }

    fn received_count(&self, family: Family) -> Result<usize> {
        let table = match family {
            Family::Ipv4Flowspec => "tbflow4",
            Family::Ipv6Flowspec => "tbflow6",
            f => master_table(f)?,
        };
        let text = self.birdc(&[
            "show", "route", "table", table, "where", "source", "=", "RTS_BGP", "count",
        ])?;
        // "N of M routes for K networks in table master4"
        text.lines()
            .find_map(|l| {
                l.split_once(" of ")
                    .and_then(|(n, _)| n.trim().parse().ok())
            })
            .with_context(|| format!("no route count in: {text}"))
    }

    fn session_state(&self, neighbor: IpAddr) -> Result<SessionState> {
        let name = self.proto_name(neighbor)?;
        let text = self.birdc(&["show", "protocols", "all", &name])?;
        let state = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("BGP state:"))
            .map(str::trim)
            .with_context(|| format!("no BGP state in: {text}"))?;
        Ok(SessionState::parse(state))
    }

    fn shutdown_neighbor(&self, neighbor: IpAddr) -> Result<()> {
        let name = self.proto_name(neighbor)?;
        self.birdc(&["disable", &name]).map(|_| ())
    }

    fn enable_neighbor(&self, neighbor: IpAddr) -> Result<()> {
        let name = self.proto_name(neighbor)?;
        self.birdc(&["enable", &name]).map(|_| ())
    }

    fn refresh_in(&self, neighbor: IpAddr) -> Result<()> {
        let name = self.proto_name(neighbor)?;
        self.birdc(&["reload", "in", &name]).map(|_| ())
    }

    fn bgp_pids(&self) -> Vec<i32> {
        lock(&self.state).daemon.iter().map(Daemon::pid).collect()
    }

    fn kill(&self) -> Result<()> {
        let d = lock(&self.state).daemon.take();
        if let Some(mut d) = d {
            d.kill();
        }
        Ok(())
    }

    fn restart(&self) -> Result<()> {
        self.kill()?;
        self.spawn()
    }

    fn diagnostics(&self) -> String {
        let mut s = format!(
            "BIRD in namespace {} (dir {}):\n",
            self.ns,
            self.dir.path().display()
        );
        let pid = self
            .state
            .try_lock()
            .ok()
            .and_then(|st| st.daemon.as_ref().map(Daemon::pid));
        match pid {
            Some(pid) => {
                let _ = writeln!(
                    s,
                    "  process bird pid {pid}; control: birdc -s {}",
                    self.ctl()
                );
            }
            None => s.push_str("  process bird: not running\n"),
        }
        if let Ok(p) = self.birdc(&["show", "protocols"]) {
            s.push_str(&p);
        }
        s.push_str(&tail(&self.path("bird.out"), 20));
        s.push_str(&tail(&self.path("bird.log"), 60));
        s
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_show_route_all_with_two_paths_for_one_prefix() {
        let text = "BIRD 2.0.12 ready.\nTable master4:\n\
10.60.0.0/24         unicast [n1 14:21:28.606] * (100) [AS65002i]\n\
\tvia 10.9.0.2 on va\n\tType: BGP univ\n\tBGP.origin: IGP\n\tBGP.as_path: 65002 65009\n\
\tBGP.next_hop: 10.9.0.2\n\tBGP.med: 7\n\tBGP.local_pref: 100\n\tBGP.community: (65002,9) (1,2)\n\
\tBGP.large_community: (65002, 1, 1)\n\
                     unicast [n0 14:21:28.606] (100) [AS65003i]\n\
\tvia 10.9.1.2 on vb\n\tType: BGP univ\n\tBGP.origin: Incomplete\n\tBGP.as_path: 65003\n\
\tBGP.next_hop: 10.9.1.2\n\
10.50.0.0/24         blackhole [s4 14:21:18.314] * (200)\n\tType: static univ\n\tBGP.as_path: 65001\n";
        let protos = vec![
            ("n0".to_string(), "10.9.1.2".parse().unwrap()),
            ("n1".to_string(), "10.9.0.2".parse().unwrap()),
        ];
        let r = parse_show_route_all(text, &protos);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].prefix, Some("10.60.0.0/24".parse().unwrap()));
        assert_eq!(r[0].as_path, vec![65002, 65009]);
        assert_eq!(r[0].communities, vec![(65002, 9), (1, 2)]);
        assert_eq!(r[0].large_communities, vec![(65002, 1, 1)]);
        assert_eq!(r[0].med, Some(7));
        assert_eq!(r[0].from, Some("10.9.0.2".parse().unwrap()));
        assert_eq!(r[1].prefix, r[0].prefix);
        assert_eq!(r[1].origin, Some(Origin::Incomplete));
        assert_eq!(r[1].from, Some("10.9.1.2".parse().unwrap()));
    }
}
