//! ExaBGP 4.2 driver: `exabgp CONF` in the foreground in the namespace, with two API processes:
//!
//! ```text
//!   announce()/withdraw() ──append──► DIR/api.in ──tail -F──► process tb-api ──text commands──► exabgp
//!   exabgp ──json (encoder json, receive { parsed; update; }, neighbor-changes)──► process tb-recv
//!        └──► DIR/received.jsonl ──replayed by received()/session_state()
//! ```
//!
//! ExaBGP has no state query of its own with the CLI off, so the session state is the last
//! `"type": "state"` event of the neighbour, and the received table is the replay of every UPDATE since
//! the last `down`. Routes given at start become `static` routes; a [`Route::prepend`] becomes an
//! explicit `as-path [ LOCAL-AS … ]` (ExaBGP does not prepend its AS to an explicit path), which assumes
//! eBGP. ExaBGP does no AS-path loop detection: [`BgpPeer::received`] also lists routes that carry its
//! own AS (FRR, for one, sends a route back to the AS it came from). [`BgpPeer::shutdown_neighbor`] sends a NOTIFICATION Cease (`teardown 2`); ExaBGP reconnects on
//! its own afterwards, so [`BgpPeer::enable_neighbor`] has nothing to do. FlowSpec rules ([`FlowRoute`])
//! given at start are a `flow { route … }` block; at run time they are `announce flow route { match { … }
//! then { … } }` / `withdraw flow route { … }` API commands to every neighbour of their family.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ipnet::IpNet;
use serde_json::Value;

use super::{
    BgpPeer, Daemon, Family, FlowRoute, Kind, Neighbor, Origin, PeerConfig, ReceivedRoute, Route,
    SessionState, lock, tail, temp_dir, wait_until,
};

/// A running ExaBGP.
pub struct ExaBgp {
    ns: String,
    state: Mutex<State>,
    dir: tempfile::TempDir,
}

struct State {
    cfg: PeerConfig,
    daemon: Option<Daemon>,
    /// Number of restarts, to name the rotated received files.
    generation: u32,
}

impl ExaBgp {
    /// Writes the configuration and starts ExaBGP in namespace `ns`. Neighbours without a
    /// `local_address` get the source address the namespace's routing picks for them.
    pub fn start(ns: &str, mut cfg: PeerConfig) -> Result<ExaBgp> {
        for n in &mut cfg.neighbors {
            if n.local_address.is_none() {
                n.local_address = Some(source_address(ns, n.address)?);
            }
        }
        let dir = temp_dir("exabgp", ns)?;
        let e = ExaBgp {
            ns: ns.to_string(),
            state: Mutex::new(State {
                cfg,
                daemon: None,
                generation: 0,
            }),
            dir,
        };
        let recv = e.path("recv.sh");
        // The helper must keep its stdout (the pipe ExaBGP watches) open, or ExaBGP declares it dead.
        std::fs::write(
            &recv,
            format!(
                "#!/bin/sh\nexec 3>&1\nexec cat >> {}\n",
                e.path("received.jsonl").display()
            ),
        )?;
        std::fs::set_permissions(&recv, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        e.spawn()?;
        Ok(e)
    }

    fn path(&self, f: &str) -> PathBuf {
        self.dir.path().join(f)
    }

    fn spawn(&self) -> Result<()> {
        let conf = {
            let st = lock(&self.state);
            std::fs::write(self.path("exabgp.conf"), self.config_text(&st.cfg))
                .context("writing exabgp.conf")?;
            std::fs::write(self.path("api.in"), "")?;
            st.cfg
                .neighbors
                .iter()
                .filter(|n| n.passive)
                .filter_map(|n| n.local_address)
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let log = self.path("exabgp.log").display().to_string();
        let conf_path = self.path("exabgp.conf").display().to_string();
        let d = Daemon::spawn(
            "exabgp",
            &self.ns,
            "exabgp",
            &[&conf_path],
            &[
                ("exabgp_daemon_user", "root"),
                ("exabgp_daemon_drop", "false"),
                ("exabgp_daemon_daemonize", "false"),
                ("exabgp_api_cli", "false"),
                ("exabgp_api_ack", "false"),
                ("exabgp_log_destination", &log),
                // Listen only where a passive neighbour expects us (empty: do not listen).
                ("exabgp_tcp_bind", &conf),
            ],
            &self.path("exabgp.out"),
        )?;
        lock(&self.state).daemon = Some(d);
        // ExaBGP has no readiness signal without its CLI: wait until it says it loaded the config.
        wait_until(Duration::from_secs(15), || {
            if let Some(d) = lock(&self.state).daemon.as_mut()
                && let Some(st) = d.exited()
            {
                bail!("exabgp exited at start ({st})");
            }
            let out = std::fs::read_to_string(self.path("exabgp.out")).unwrap_or_default();
            Ok(out.contains("loaded new configuration").then_some(()))
        })
        .with_context(|| format!("ExaBGP did not come up\n{}", self.diagnostics()))
    }

    /// The generated `exabgp.conf`.
    fn config_text(&self, c: &PeerConfig) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "process tb-api {{\n  run /usr/bin/tail -n +1 -F {};\n  encoder text;\n}}",
            self.path("api.in").display()
        );
        let _ = writeln!(
            s,
            "process tb-recv {{\n  run {};\n  encoder json;\n}}",
            self.path("recv.sh").display()
        );
        for n in &c.neighbors {
            let _ = writeln!(s, "neighbor {} {{", n.address);
            let _ = writeln!(s, "  router-id {};", c.router_id);
            if let Some(l) = n.local_address {
                let _ = writeln!(s, "  local-address {l};");
            }
            let _ = writeln!(s, "  local-as {};\n  peer-as {};", c.local_as, n.remote_as);
            if let Some(h) = n.hold_time {
                let _ = writeln!(s, "  hold-time {h};");
            }
            if n.passive {
                let _ = writeln!(s, "  passive true;");
            }
            if let Some(p) = &n.password {
                let _ = writeln!(s, "  md5-password \"{p}\";");
            }
            if let Some(ttl) = n.multihop {
                let _ = writeln!(s, "  outgoing-ttl {ttl};");
            }
            if n.ttl_security {
                let _ = writeln!(s, "  outgoing-ttl 255;\n  incoming-ttl 255;");
            }
            let _ = writeln!(s, "  capability {{");
            if n.route_refresh {
                let _ = writeln!(s, "    route-refresh;");
            }
            if let Some(t) = n.graceful_restart {
                let _ = writeln!(s, "    graceful-restart {t};");
            }
            if let Some(ap) = n.add_path {
                let mode = match (ap.send, ap.receive) {
                    (true, true) => Some("send/receive"),
                    (true, false) => Some("send"),
                    (false, true) => Some("receive"),
                    (false, false) => None,
                };
                if let Some(m) = mode {
                    let _ = writeln!(s, "    add-path {m};");
                }
            }
            let _ = writeln!(s, "  }}\n  family {{");
            for f in &n.families {
                let _ = writeln!(s, "    {};", family_words(*f));
            }
            let _ = writeln!(s, "  }}");
            let _ = writeln!(
                s,
                "  api {{\n    processes [ tb-recv ];\n    neighbor-changes;\n    receive {{ parsed; update; }}\n  }}"
            );
            let _ = writeln!(s, "  api {{\n    processes [ tb-api ];\n  }}");
            let _ = writeln!(s, "  static {{");
            for r in c.routes.iter().filter(|r| n.has(Family::of(&r.prefix))) {
                let _ = writeln!(s, "    {};", route_text(r, c.local_as));
            }
            let _ = writeln!(s, "  }}");
            let flows: Vec<&FlowRoute> = c.flows.iter().filter(|f| n.has(f.family)).collect();
            if !flows.is_empty() {
                let _ = writeln!(s, "  flow {{");
                for (i, f) in flows.iter().enumerate() {
                    // The configuration names its routes: `route NAME { … }`.
                    let text = f
                        .exabgp_text()
                        .replacen("route ", &format!("route tb{i} "), 1);
                    let _ = writeln!(s, "    {text}");
                }
                let _ = writeln!(s, "  }}");
            }
            let _ = writeln!(s, "}}");
        }
        s
    }

    /// Appends API commands for tb-api.
    fn api(&self, lines: &[String]) -> Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.path("api.in"))
            .context("opening api.in")?;
        for l in lines {
            writeln!(f, "{l}")?;
        }
        Ok(())
    }

    fn neighbors_for(cfg: &PeerConfig, f: Family) -> Vec<IpAddr> {
        cfg.neighbors
            .iter()
            .filter(|n| n.has(f))
            .map(|n| n.address)
            .collect()
    }

    fn replay(&self) -> Replay {
        let text = std::fs::read_to_string(self.path("received.jsonl")).unwrap_or_default();
        Replay::from_stream(&text)
    }
}

/// ExaBGP's `family { … }` words.
fn family_words(f: Family) -> &'static str {
    match f {
        Family::Ipv4Unicast => "ipv4 unicast",
        Family::Ipv6Unicast => "ipv6 unicast",
        Family::Ipv4Flowspec => "ipv4 flow",
        Family::Ipv6Flowspec => "ipv6 flow",
    }
}

/// `route P next-hop … attributes` in ExaBGP's syntax (static and API).
fn route_text(r: &Route, local_as: u32) -> String {
    let mut s = format!("route {} next-hop ", r.prefix);
    match r.next_hop {
        Some(nh) => s.push_str(&nh.to_string()),
        None => s.push_str("self"),
    }
    if let Some(o) = r.origin {
        let _ = write!(s, " origin {}", o.word());
    }
    if !r.prepend.is_empty() {
        let p: Vec<String> = std::iter::once(local_as)
            .chain(r.prepend.iter().copied())
            .map(|a| a.to_string())
            .collect();
        let _ = write!(s, " as-path [ {} ]", p.join(" "));
    }
    if let Some(m) = r.med {
        let _ = write!(s, " med {m}");
    }
    if let Some(lp) = r.local_pref {
        let _ = write!(s, " local-preference {lp}");
    }
    if !r.communities.is_empty() {
        let c: Vec<String> = r
            .communities
            .iter()
            .map(|(a, b)| format!("{a}:{b}"))
            .collect();
        let _ = write!(s, " community [ {} ]", c.join(" "));
    }
    if !r.large_communities.is_empty() {
        let c: Vec<String> = r
            .large_communities
            .iter()
            .map(|(a, b, c)| format!("{a}:{b}:{c}"))
            .collect();
        let _ = write!(s, " large-community [ {} ]", c.join(" "));
    }
    s
}

/// The source address namespace `ns` uses towards `dst` (`ip route get`).
fn source_address(ns: &str, dst: IpAddr) -> Result<IpAddr> {
    let out = crate::netns::ip(&["-n", ns, "route", "get", &dst.to_string()])?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    while let Some(w) = words.next() {
        if w == "src"
            && let Some(a) = words.next().and_then(|a| a.parse().ok())
        {
            return Ok(a);
        }
    }
    bail!("no source address towards {dst} in namespace {ns}: {text}")
}

/// The state rebuilt from ExaBGP's JSON event stream.
#[derive(Debug, Default)]
pub struct Replay {
    /// Last state word per neighbour ("connected", "up", "down").
    pub states: BTreeMap<IpAddr, String>,
    /// (neighbour, prefix, path id) → route.
    pub routes: BTreeMap<(IpAddr, IpNet, u32), ReceivedRoute>,
}

impl Replay {
    /// Replays a stream of JSON lines; an unparsable line (the one being written) is skipped.
    pub fn from_stream(text: &str) -> Replay {
        let mut r = Replay::default();
        for line in text.lines() {
            if let Ok(v) = serde_json::from_str::<Value>(line) {
                r.apply(&v);
            }
        }
        r
    }

    fn apply(&mut self, v: &Value) {
        let Some(peer) = v
            .pointer("/neighbor/address/peer")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<IpAddr>().ok())
        else {
            return;
        };
        match v.get("type").and_then(Value::as_str) {
            Some("state") => {
                let st = v
                    .pointer("/neighbor/state")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                if st == "down" {
                    self.routes.retain(|(p, _, _), _| *p != peer);
                }
                self.states.insert(peer, st);
            }
            Some("update") => {
                let Some(u) = v.pointer("/neighbor/message/update") else {
                    return;
                };
                let attrs = u.get("attribute");
                for (_fam, by_nh) in u
                    .get("announce")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                {
                    for (nh, nlris) in by_nh.as_object().into_iter().flatten() {
                        for n in nlris.as_array().into_iter().flatten() {
                            let Some(prefix) = nlri(n) else { continue };
                            let id = path_id(n);
                            let mut route = parse_attributes(attrs);
                            route.prefix = Some(prefix);
                            route.from = Some(peer);
                            route.next_hop = nh.parse().ok();
                            route.path_id = id;
                            // An IPv6 next hop pair is listed as two entries (global, link-local):
                            // the global one wins.
                            let link_local = matches!(route.next_hop, Some(IpAddr::V6(a)) if a.is_unicast_link_local());
                            let key = (peer, prefix, id.unwrap_or(0));
                            if link_local {
                                self.routes.entry(key).or_insert(route);
                            } else {
                                self.routes.insert(key, route);
                            }
                        }
                    }
                }
                for (_fam, nlris) in u
                    .get("withdraw")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                {
                    for n in nlris.as_array().into_iter().flatten() {
                        if let Some(prefix) = nlri(n) {
                            self.routes.remove(&(peer, prefix, path_id(n).unwrap_or(0)));
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

fn nlri(n: &Value) -> Option<IpNet> {
    n.get("nlri").and_then(Value::as_str)?.parse().ok()
}

fn path_id(n: &Value) -> Option<u32> {
    n.get("path-information")
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<Ipv4Addr>().ok())
        .map(u32::from)
}

fn parse_attributes(a: Option<&Value>) -> ReceivedRoute {
    let mut r = ReceivedRoute::default();
    let Some(a) = a else { return r };
    let nums = |v: &Value| -> Vec<u32> {
        let mut out = Vec::new();
        let mut stack = vec![v.clone()];
        while let Some(x) = stack.pop() {
            match x {
                Value::Number(n) => out.extend(n.as_u64().map(|n| n as u32)),
                Value::Array(xs) => stack.extend(xs.into_iter().rev()),
                _ => {}
            }
        }
        out
    };
    r.origin = a
        .get("origin")
        .and_then(Value::as_str)
        .and_then(Origin::parse);
    r.as_path = a.get("as-path").map(nums).unwrap_or_default();
    r.med = a.get("med").and_then(Value::as_u64).map(|x| x as u32);
    r.local_pref = a
        .get("local-preference")
        .and_then(Value::as_u64)
        .map(|x| x as u32);
    r.communities = a
        .get("community")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| match nums(c).as_slice() {
            [x, y] => Some((*x as u16, *y as u16)),
            _ => None,
        })
        .collect();
    r.large_communities = a
        .get("large-community")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| match nums(c).as_slice() {
            [x, y, z] => Some((*x, *y, *z)),
            _ => None,
        })
        .collect();
    r
}

impl BgpPeer for ExaBgp {
    fn kind(&self) -> Kind {
        Kind::ExaBgp
    }

    fn netns(&self) -> &str {
        &self.ns
    }

    fn announce(&self, route: &Route) -> Result<()> {
        let mut st = lock(&self.state);
        let text = route_text(route, st.cfg.local_as);
        let lines: Vec<String> = ExaBgp::neighbors_for(&st.cfg, Family::of(&route.prefix))
            .iter()
            .map(|n| format!("neighbor {n} announce {text}"))
            .collect();
        self.api(&lines)?;
        st.cfg.routes.retain(|r| r.prefix != route.prefix);
        st.cfg.routes.push(route.clone());
        Ok(())
    }

    fn withdraw(&self, prefix: IpNet) -> Result<()> {
        let mut st = lock(&self.state);
        let lines: Vec<String> = ExaBgp::neighbors_for(&st.cfg, Family::of(&prefix))
            .iter()
            .map(|n| format!("neighbor {n} withdraw route {prefix}"))
            .collect();
        self.api(&lines)?;
        st.cfg.routes.retain(|r| r.prefix != prefix);
        Ok(())
    }

    fn announce_flow(&self, flow: &FlowRoute) -> Result<()> {
        flow.validate()?;
        let mut st = lock(&self.state);
        let text = flow.exabgp_text();
        let lines: Vec<String> = ExaBgp::neighbors_for(&st.cfg, flow.family)
            .iter()
            .map(|n| format!("neighbor {n} announce flow {text}"))
            .collect();
        if lines.is_empty() {
            bail!("ExaBGP has no neighbour with {:?}", flow.family);
        }
        self.api(&lines)?;
        st.cfg.flows.retain(|f| !f.same_match(flow));
        st.cfg.flows.push(flow.clone());
        Ok(())
    }

    fn withdraw_flow(&self, flow: &FlowRoute) -> Result<()> {
        let mut st = lock(&self.state);
        // ExaBGP finds the rule to withdraw by its NLRI; write the announced one (with its action).
        let text = st
            .cfg
            .flows
            .iter()
            .find(|f| f.same_match(flow))
            .unwrap_or(flow)
            .exabgp_text();
        let lines: Vec<String> = ExaBgp::neighbors_for(&st.cfg, flow.family)
            .iter()
            .map(|n| format!("neighbor {n} withdraw flow {text}"))
            .collect();
        self.api(&lines)?;
        st.cfg.flows.retain(|f| !f.same_match(flow));
        Ok(())
    }

    fn received(&self, family: Family) -> Result<Vec<ReceivedRoute>> {
        if family.is_flowspec() {
            bail!("the ExaBGP driver reads back unicast routes only, not {family:?}");
        }
        Ok(self
            .replay()
            .routes
            .into_values()
            .filter(|r| r.prefix.is_some_and(|p| Family::of(&p) == family))
            .collect())
    }

    fn session_state(&self, neighbor: IpAddr) -> Result<SessionState> {
        if !lock(&self.state)
            .cfg
            .neighbors
            .iter()
            .any(|n: &Neighbor| n.address == neighbor)
        {
            bail!("ExaBGP has no neighbour {neighbor}");
        }
        Ok(
            match self.replay().states.get(&neighbor).map(String::as_str) {
                Some("up") => SessionState::Established,
                Some("connected") => SessionState::OpenSent,
                Some("down") | None => SessionState::Idle,
                Some(other) => SessionState::Other(other.to_string()),
            },
        )
    }

    fn shutdown_neighbor(&self, neighbor: IpAddr) -> Result<()> {
        // Cease, subcode 2: administrative shutdown (RFC 4486).
        self.api(&[format!("neighbor {neighbor} teardown 2")])
    }

    fn enable_neighbor(&self, _neighbor: IpAddr) -> Result<()> {
        Ok(())
    }

    fn refresh_in(&self, neighbor: IpAddr) -> Result<()> {
        let st = lock(&self.state);
        let n = st
            .cfg
            .neighbors
            .iter()
            .find(|n| n.address == neighbor)
            .with_context(|| format!("ExaBGP has no neighbour {neighbor}"))?;
        let lines: Vec<String> = n
            .families
            .iter()
            .map(|f| {
                format!(
                    "neighbor {neighbor} announce route-refresh {}",
                    family_words(*f)
                )
            })
            .collect();
        self.api(&lines)
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
        let g = {
            let mut st = lock(&self.state);
            st.generation += 1;
            st.generation
        };
        // The old event stream describes the previous process's sessions: keep it, start afresh.
        let _ = std::fs::rename(
            self.path("received.jsonl"),
            self.path(&format!("received.{g}.jsonl")),
        );
        self.spawn()
    }

    fn diagnostics(&self) -> String {
        let mut s = format!(
            "ExaBGP in namespace {} (dir {}; commands go to api.in, events to received.jsonl):\n",
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
                let _ = writeln!(s, "  process exabgp pid {pid} (own process group)");
            }
            None => s.push_str("  process exabgp: not running\n"),
        }
        for (n, st) in self.replay().states {
            let _ = writeln!(s, "  neighbour {n}: {st}");
        }
        s.push_str(&tail(&self.path("exabgp.out"), 20));
        s.push_str(&tail(&self.path("exabgp.log"), 60));
        s.push_str(&tail(&self.path("received.jsonl"), 10));
        s
    }
}

impl Drop for ExaBgp {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_announce_withdraw_and_session_down() {
        let stream = r#"{ "type": "state", "neighbor": { "address": { "local": "10.9.0.1", "peer": "10.9.0.2" }, "state": "up" } }
{ "type": "update", "neighbor": { "address": { "local": "10.9.0.1", "peer": "10.9.0.2" }, "message": { "update": { "attribute": { "origin": "incomplete", "as-path": [ 65002 ], "community": [ [ 65002, 9 ] ], "large-community": [ [ 65002, 3 , 4 ] ], "med": 5 }, "announce": { "ipv4 unicast": { "10.9.0.2": [ { "nlri": "10.60.0.0/24", "path-information": "0.0.0.2" }, { "nlri": "10.61.0.0/24" } ] } } } } } }
{ "type": "update", "neighbor": { "address": { "local": "10.9.0.1", "peer": "10.9.0.2" }, "message": { "update": { "withdraw": { "ipv4 unicast": [ { "nlri": "10.61.0.0/24" } ] } } } } }
{ "type": "upd"#;
        let r = Replay::from_stream(stream);
        assert_eq!(r.states.values().next().map(String::as_str), Some("up"));
        let routes: Vec<&ReceivedRoute> = r.routes.values().collect();
        assert_eq!(routes.len(), 1);
        assert_eq!(routes[0].prefix, Some("10.60.0.0/24".parse().unwrap()));
        assert_eq!(routes[0].path_id, Some(2));
        assert_eq!(routes[0].communities, vec![(65002, 9)]);
        assert_eq!(routes[0].large_communities, vec![(65002, 3, 4)]);
        assert_eq!(routes[0].origin, Some(Origin::Incomplete));
        assert_eq!(routes[0].med, Some(5));
        let down = format!(
            "{stream}\n{}",
            r#"{ "type": "state", "neighbor": { "address": { "peer": "10.9.0.2" }, "state": "down" } }"#
        );
        assert!(Replay::from_stream(&down).routes.is_empty());
    }
}
