//! FRR driver: `zebra` and `bgpd` in the foreground inside the namespace, run as user `frr` on a
//! directory owned by `frr` (root fails FRR's vty group check), controlled with
//! `vtysh --vty_socket DIR`.
//!
//! Routes are `network P route-map TB-…` statements (with `no bgp network import-check`, so no RIB entry
//! is needed) whose route-map sets the attributes; announce/withdraw run the same lines through vtysh at
//! run time, and the generated `bgpd.conf` is kept current so [`BgpPeer::restart`] starts from the same
//! state. FRR 8 enforces RFC 8212 on eBGP: the configuration says `no bgp ebgp-requires-policy`.
//! Received routes come from `show bgp ipv4|ipv6 unicast json detail`.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ipnet::IpNet;
use serde_json::Value;

use super::{
    BgpPeer, Daemon, Family, Kind, Origin, PeerConfig, ReceivedRoute, Route, SessionState, lock,
    parse_community, parse_large_community, tail, temp_dir, wait_until,
};

/// A running FRR (zebra + bgpd).
pub struct Frr {
    ns: String,
    state: Mutex<State>,
    dir: tempfile::TempDir,
}

struct State {
    cfg: PeerConfig,
    /// Neighbours shut down with [`BgpPeer::shutdown_neighbor`] (kept in the config for restarts).
    shut: HashSet<IpAddr>,
    zebra: Option<Daemon>,
    bgpd: Option<Daemon>,
}

fn afi_word(f: Family) -> &'static str {
    if f.is_ipv4() { "ipv4" } else { "ipv6" }
}

fn safi_word(f: Family) -> &'static str {
    if f.is_flowspec() {
        "flowspec"
    } else {
        "unicast"
    }
}

/// Route-map name for a prefix's announcement.
fn map_name(p: &IpNet) -> String {
    format!("TB-{}", p.to_string().replace(['/', ':'], "_"))
}

/// The route-map lines (without `route-map … permit 10`) setting `r`'s attributes.
fn set_lines(r: &Route) -> Vec<String> {
    let mut v = Vec::new();
    if !r.communities.is_empty() {
        let c: Vec<String> = r
            .communities
            .iter()
            .map(|(a, b)| format!("{a}:{b}"))
            .collect();
        v.push(format!("set community {} additive", c.join(" ")));
    }
    if !r.large_communities.is_empty() {
        let c: Vec<String> = r
            .large_communities
            .iter()
            .map(|(a, b, c)| format!("{a}:{b}:{c}"))
            .collect();
        v.push(format!("set large-community {} additive", c.join(" ")));
    }
    if let Some(m) = r.med {
        v.push(format!("set metric {m}"));
    }
    if let Some(lp) = r.local_pref {
        v.push(format!("set local-preference {lp}"));
    }
    if !r.prepend.is_empty() {
        let p: Vec<String> = r.prepend.iter().map(u32::to_string).collect();
        v.push(format!("set as-path prepend {}", p.join(" ")));
    }
    if let Some(o) = r.origin {
        v.push(format!("set origin {}", o.word()));
    }
    v
}

impl Frr {
    /// Writes the configuration and starts zebra and bgpd in namespace `ns`.
    pub fn start(ns: &str, cfg: PeerConfig) -> Result<Frr> {
        let dir = temp_dir("frr", ns)?;
        let f = Frr {
            ns: ns.to_string(),
            state: Mutex::new(State {
                cfg,
                shut: HashSet::new(),
                zebra: None,
                bgpd: None,
            }),
            dir,
        };
        std::fs::write(
            f.path("zebra.conf"),
            format!(
                "hostname zebra-{}\nlog file {}\n",
                f.ns,
                f.path("zebra.log").display()
            ),
        )?;
        f.write_bgpd_conf(&lock(&f.state))?;
        f.spawn_zebra()?;
        f.spawn_bgpd()?;
        Ok(f)
    }

    fn path(&self, f: &str) -> PathBuf {
        self.dir.path().join(f)
    }

    fn chown(&self) -> Result<()> {
        crate::netns::run(
            Command::new("chown")
                .arg("-R")
                .arg("frr:frr")
                .arg(self.dir.path()),
        )
        .map(|_| ())
        .context("chown frr:frr on the FRR directory (is the frr package installed?)")
    }

    fn daemon_args(&self, name: &str) -> Vec<String> {
        vec![
            "-f".into(),
            self.path(&format!("{name}.conf")).display().to_string(),
            "-i".into(),
            self.path(&format!("{name}.pid")).display().to_string(),
            "-z".into(),
            self.path("zserv.api").display().to_string(),
            "--vty_socket".into(),
            self.dir.path().display().to_string(),
            "-A".into(),
            "127.0.0.1".into(),
            "-P".into(),
            "0".into(),
        ]
    }

    fn spawn_zebra(&self) -> Result<()> {
        self.chown()?;
        let args = self.daemon_args("zebra");
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        lock(&self.state).zebra = Some(Daemon::spawn(
            "zebra",
            &self.ns,
            "/usr/lib/frr/zebra",
            &args,
            &[],
            &self.path("zebra.out"),
        )?);
        wait_until(Duration::from_secs(10), || {
            Ok(self.path("zserv.api").exists().then_some(()))
        })
        .with_context(|| format!("zebra did not come up\n{}", self.diagnostics()))
    }

    fn spawn_bgpd(&self) -> Result<()> {
        self.chown()?;
        let args = self.daemon_args("bgpd");
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        lock(&self.state).bgpd = Some(Daemon::spawn(
            "bgpd",
            &self.ns,
            "/usr/lib/frr/bgpd",
            &args,
            &[],
            &self.path("bgpd.out"),
        )?);
        wait_until(Duration::from_secs(10), || {
            if let Some(d) = lock(&self.state).bgpd.as_mut()
                && let Some(st) = d.exited()
            {
                bail!("bgpd exited at start ({st})");
            }
            Ok(self.vtysh(&["show bgp summary json"]).ok().map(|_| ()))
        })
        .with_context(|| format!("bgpd did not come up\n{}", self.diagnostics()))
    }

    /// Runs `vtysh --vty_socket DIR -c L1 -c L2 …`; lines starting with `%` in the output are errors.
    pub fn vtysh(&self, lines: &[&str]) -> Result<String> {
        let mut cmd = Command::new("vtysh");
        cmd.arg("--vty_socket").arg(self.dir.path());
        for l in lines {
            cmd.arg("-c").arg(l);
        }
        let out = crate::netns::run(&mut cmd)?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if let Some(err) = text.lines().find(|l| l.starts_with('%')) {
            bail!("vtysh {lines:?}: {err}");
        }
        Ok(text)
    }

    fn configure(&self, lines: &[String]) -> Result<()> {
        let mut all = vec!["configure terminal".to_string()];
        all.extend_from_slice(lines);
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        self.vtysh(&refs).map(|_| ())
    }

    fn write_bgpd_conf(&self, st: &State) -> Result<()> {
        let path = self.path("bgpd.conf");
        std::fs::write(&path, self.bgpd_conf_text(st)).context("writing bgpd.conf")?;
        // bgpd reads it as user frr on restart.
        std::os::unix::fs::chown(&path, Some(frr_uid()?), None).context("chown bgpd.conf")
    }

    /// The generated `bgpd.conf`.
    fn bgpd_conf_text(&self, st: &State) -> String {
        let c = &st.cfg;
        let mut s = String::new();
        let _ = writeln!(s, "hostname bgpd-{}", self.ns);
        let _ = writeln!(s, "log file {} debugging", self.path("bgpd.log").display());
        let _ = writeln!(s, "log timestamp precision 3");
        // Session events and UPDATEs in bgpd.log: what a failing test needs to show.
        let _ = writeln!(s, "debug bgp neighbor-events\ndebug bgp updates");
        for r in &c.routes {
            let _ = writeln!(s, "route-map {} permit 10", map_name(&r.prefix));
            for l in set_lines(r) {
                let _ = writeln!(s, " {l}");
            }
            let _ = writeln!(s, "exit");
        }
        let _ = writeln!(s, "router bgp {}", c.local_as);
        let _ = writeln!(s, " bgp router-id {}", c.router_id);
        let _ = writeln!(s, " no bgp ebgp-requires-policy");
        let _ = writeln!(s, " no bgp default ipv4-unicast");
        let _ = writeln!(s, " no bgp network import-check");
        if let Some(t) = c.neighbors.iter().find_map(|n| n.graceful_restart) {
            let _ = writeln!(
                s,
                " bgp graceful-restart\n bgp graceful-restart restart-time {t}"
            );
        }
        for n in &c.neighbors {
            let a = n.address;
            let _ = writeln!(s, " neighbor {a} remote-as {}", n.remote_as);
            let _ = writeln!(s, " neighbor {a} timers connect 1");
            if n.passive {
                let _ = writeln!(s, " neighbor {a} passive");
            }
            if let Some(ttl) = n.multihop {
                let _ = writeln!(s, " neighbor {a} ebgp-multihop {ttl}");
            }
            if n.ttl_security {
                let _ = writeln!(s, " neighbor {a} ttl-security hops 1");
            }
            if let Some(p) = &n.password {
                let _ = writeln!(s, " neighbor {a} password {p}");
            }
            if let Some(h) = n.hold_time {
                let _ = writeln!(s, " neighbor {a} timers {} {h}", (h / 3).max(1));
            }
            if let Some(l) = n.local_address {
                let _ = writeln!(s, " neighbor {a} update-source {l}");
            }
            if n.graceful_restart.is_some() {
                let _ = writeln!(s, " neighbor {a} graceful-restart");
            }
            if st.shut.contains(&a) {
                let _ = writeln!(s, " neighbor {a} shutdown");
            }
        }
        for fam in [
            Family::Ipv4Unicast,
            Family::Ipv6Unicast,
            Family::Ipv4Flowspec,
            Family::Ipv6Flowspec,
        ] {
            // FlowSpec sections only where a neighbour receives it (FRR does not originate rules).
            if fam.is_flowspec() && !c.neighbors.iter().any(|n| n.has(fam)) {
                continue;
            }
            let _ = writeln!(s, " address-family {} {}", afi_word(fam), safi_word(fam));
            for r in c.routes.iter().filter(|r| Family::of(&r.prefix) == fam) {
                let _ = writeln!(
                    s,
                    "  network {} route-map {}",
                    r.prefix,
                    map_name(&r.prefix)
                );
            }
            for n in c.neighbors.iter().filter(|n| n.has(fam)) {
                let a = n.address;
                let _ = writeln!(s, "  neighbor {a} activate");
                if let Some(ap) = n.add_path {
                    if ap.send {
                        let _ = writeln!(s, "  neighbor {a} addpath-tx-all-paths");
                    }
                    if !ap.receive {
                        let _ = writeln!(s, "  neighbor {a} disable-addpath-rx");
                    }
                }
            }
            let _ = writeln!(s, " exit-address-family");
        }
        s
    }

    fn neighbor_exists(st: &State, neighbor: IpAddr) -> Result<()> {
        if st.cfg.neighbors.iter().any(|n| n.address == neighbor) {
            Ok(())
        } else {
            bail!("FRR has no neighbour {neighbor}")
        }
    }
}

/// Parses `show bgp <afi> unicast json detail`, keeping paths learned from neighbours.
pub fn parse_show_bgp_json(text: &str) -> Result<Vec<ReceivedRoute>> {
    let v: Value = serde_json::from_str(text).context("parsing FRR JSON")?;
    let mut out = Vec::new();
    let Some(routes) = v.get("routes").and_then(Value::as_object) else {
        return Ok(out);
    };
    for (prefix, paths) in routes {
        let Ok(prefix) = prefix.parse::<IpNet>() else {
            continue;
        };
        for p in paths.as_array().into_iter().flatten() {
            // The first element of each list is a header ({prefix, version}) without path data.
            let Some(peer) = p.get("peer") else { continue };
            let from = peer
                .get("peerId")
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<IpAddr>().ok());
            if from.is_none_or(|a| a.is_unspecified()) || p.get("local").is_some() {
                continue;
            }
            let as_path = p
                .pointer("/aspath/segments")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .flat_map(|seg| seg.get("list").and_then(Value::as_array).cloned())
                .flatten()
                .filter_map(|a| a.as_u64().map(|a| a as u32))
                .collect();
            let strings = |ptr: &str| -> Vec<String> {
                p.pointer(ptr)
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            };
            out.push(ReceivedRoute {
                prefix: Some(prefix),
                from,
                next_hop: p
                    .pointer("/nexthops/0/ip")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse().ok()),
                as_path,
                communities: strings("/community/list")
                    .iter()
                    .filter_map(|s| parse_community(s))
                    .collect(),
                large_communities: strings("/largeCommunity/list")
                    .iter()
                    .filter_map(|s| parse_large_community(s))
                    .collect(),
                med: p.get("metric").and_then(Value::as_u64).map(|m| m as u32),
                local_pref: p.get("locPrf").and_then(Value::as_u64).map(|m| m as u32),
                origin: p
                    .get("origin")
                    .and_then(Value::as_str)
                    .and_then(Origin::parse),
                path_id: p
                    .get("addpathRxId")
                    .and_then(Value::as_u64)
                    .filter(|&id| id != 0)
                    .map(|id| id as u32),
            });
        }
    }
    Ok(out)
}

impl Frr {
    fn withdraw_locked(&self, st: &mut State, prefix: IpNet) -> Result<()> {
        let lines = vec![
            format!("router bgp {}", st.cfg.local_as),
            format!("address-family {} unicast", afi_word(Family::of(&prefix))),
            format!("no network {prefix}"),
            "exit-address-family".into(),
            "exit".into(),
            format!("no route-map {}", map_name(&prefix)),
        ];
        self.configure(&lines)?;
        st.cfg.routes.retain(|r| r.prefix != prefix);
        self.write_bgpd_conf(st)
    }
}

impl BgpPeer for Frr {
    fn kind(&self) -> Kind {
        Kind::Frr
    }

    fn netns(&self) -> &str {
        &self.ns
    }

    fn announce(&self, route: &Route) -> Result<()> {
        let mut st = lock(&self.state);
        if st.cfg.routes.iter().any(|r| r.prefix == route.prefix) {
            self.withdraw_locked(&mut st, route.prefix)?;
        }
        let name = map_name(&route.prefix);
        let mut lines = vec![format!("route-map {name} permit 10")];
        lines.extend(set_lines(route));
        lines.push("exit".into());
        lines.push(format!("router bgp {}", st.cfg.local_as));
        lines.push(format!(
            "address-family {} unicast",
            afi_word(Family::of(&route.prefix))
        ));
        lines.push(format!("network {} route-map {name}", route.prefix));
        self.configure(&lines)?;
        st.cfg.routes.push(route.clone());
        self.write_bgpd_conf(&st)
    }

    fn withdraw(&self, prefix: IpNet) -> Result<()> {
        let mut st = lock(&self.state);
        self.withdraw_locked(&mut st, prefix)
    }

    fn received(&self, family: Family) -> Result<Vec<ReceivedRoute>> {
        if family.is_flowspec() {
            bail!("the FRR driver reads back unicast routes only, not {family:?}");
        }
        let text = self.vtysh(&[&format!(
            "show bgp {} unicast json detail",
            afi_word(family)
        )])?;
        parse_show_bgp_json(&text)
    }

    fn received_count(&self, family: Family) -> Result<usize> {
        let text = self.vtysh(&[&format!(
            "show bgp {} {} summary json",
            afi_word(family),
            safi_word(family)
        )])?;
        let v: Value = serde_json::from_str(&text).context("parsing FRR summary JSON")?;
        Ok(v.get("peers")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(_, p)| p.get("pfxRcd").and_then(Value::as_u64))
            .sum::<u64>() as usize)
    }

    fn session_state(&self, neighbor: IpAddr) -> Result<SessionState> {
        Frr::neighbor_exists(&lock(&self.state), neighbor)?;
        let text = self.vtysh(&[&format!("show bgp neighbors {neighbor} json")])?;
        let v: Value = serde_json::from_str(&text).context("parsing FRR neighbour JSON")?;
        let st = v
            .pointer(&format!("/{neighbor}/bgpState"))
            .and_then(Value::as_str)
            .with_context(|| format!("no bgpState for {neighbor} in {text}"))?;
        Ok(SessionState::parse(st))
    }

    fn shutdown_neighbor(&self, neighbor: IpAddr) -> Result<()> {
        let mut st = lock(&self.state);
        Frr::neighbor_exists(&st, neighbor)?;
        self.configure(&[
            format!("router bgp {}", st.cfg.local_as),
            format!("neighbor {neighbor} shutdown"),
        ])?;
        st.shut.insert(neighbor);
        self.write_bgpd_conf(&st)
    }

    fn enable_neighbor(&self, neighbor: IpAddr) -> Result<()> {
        let mut st = lock(&self.state);
        Frr::neighbor_exists(&st, neighbor)?;
        self.configure(&[
            format!("router bgp {}", st.cfg.local_as),
            format!("no neighbor {neighbor} shutdown"),
        ])?;
        st.shut.remove(&neighbor);
        self.write_bgpd_conf(&st)
    }

    fn refresh_in(&self, neighbor: IpAddr) -> Result<()> {
        Frr::neighbor_exists(&lock(&self.state), neighbor)?;
        self.vtysh(&[&format!("clear bgp {neighbor} soft in")])
            .map(|_| ())
    }

    fn bgp_pids(&self) -> Vec<i32> {
        lock(&self.state).bgpd.iter().map(Daemon::pid).collect()
    }

    fn kill(&self) -> Result<()> {
        let d = lock(&self.state).bgpd.take();
        if let Some(mut d) = d {
            d.kill();
        }
        Ok(())
    }

    fn restart(&self) -> Result<()> {
        self.kill()?;
        self.write_bgpd_conf(&lock(&self.state))?;
        self.spawn_bgpd()
    }

    fn diagnostics(&self) -> String {
        let mut s = format!(
            "FRR in namespace {} (dir {}; vtysh --vty_socket {}):\n",
            self.ns,
            self.dir.path().display(),
            self.dir.path().display()
        );
        let pids = self.state.try_lock().ok().map(|st| {
            (
                st.zebra.as_ref().map(Daemon::pid),
                st.bgpd.as_ref().map(Daemon::pid),
            )
        });
        let (zebra, bgpd) = pids.unwrap_or((None, None));
        for (n, d) in [("zebra", zebra), ("bgpd", bgpd)] {
            match d {
                Some(pid) => {
                    let _ = writeln!(s, "  process {n} pid {pid}");
                }
                None => {
                    let _ = writeln!(s, "  process {n}: not running");
                }
            }
        }
        if let Ok(t) = self.vtysh(&["show bgp summary"]) {
            s.push_str(&t);
        }
        s.push_str(&tail(&self.path("bgpd.out"), 20));
        s.push_str(&tail(&self.path("bgpd.log"), 60));
        s
    }
}

impl Drop for Frr {
    fn drop(&mut self) {
        let _ = self.kill();
        let z = lock(&self.state).zebra.take();
        if let Some(mut z) = z {
            z.kill();
        }
    }
}

/// The uid of user `frr`.
fn frr_uid() -> Result<u32> {
    let out = crate::netns::run(Command::new("id").args(["-u", "frr"]))
        .context("user frr does not exist (install the frr package)")?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_frr_detail_json_skipping_headers_and_local_routes() {
        let text = r#"{"routes": { "10.50.0.0/24": [{"prefix":"10.50.0.0/24","version":1},
          {"aspath":{"string":"65001 65001","segments":[{"type":"as-sequence","list":[65001,65001]}],"length":2},
           "origin":"IGP","valid":true,"community":{"string":"65001:7","list":["65001:7"]},
           "largeCommunity":{"string":"65001:1:2","list":["65001:1:2"]},"addpathRxId":2,
           "nexthops":[{"ip":"10.9.0.1","afi":"ipv4"}],"peer":{"peerId":"10.9.0.1","type":"external"}}],
          "10.60.0.0/24": [{"prefix":"10.60.0.0/24"},{"aspath":{"string":"Local","segments":[]},"origin":"IGP",
           "metric":7,"local":true,"nexthops":[{"ip":"0.0.0.0"}],"peer":{"peerId":"0.0.0.0"}}] } }"#;
        let r = parse_show_bgp_json(text).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].as_path, vec![65001, 65001]);
        assert_eq!(r[0].communities, vec![(65001, 7)]);
        assert_eq!(r[0].large_communities, vec![(65001, 1, 2)]);
        assert_eq!(r[0].path_id, Some(2));
        assert_eq!(r[0].from, Some("10.9.0.1".parse().unwrap()));
    }
}
