//! Topology builders: named nodes (one namespace each), veth links with IPv4/IPv6 addresses, routes,
//! sysctls, and processes started inside, all torn down on drop (processes first, then namespaces).
//!
//! ```text
//!   Topology::builder()
//!       .node("a").node("b")
//!       .link("a", "b")                 ─► veth a:"b0" ── b:"a0", 10.0.<n>.1/24 ── 10.0.<n>.2/24,
//!       .route("a", "10.9.0.0/16 via …")                   fd00:0:<n>::1/64 ── fd00:0:<n>::2/64
//!       .sysctl("a", "net.ipv4.ip_forward", "1")
//!       .build()? ──► Topology { nodes, links, processes }
//! ```
//!
//! The same in TOML: [`TopologyBuilder::from_toml`].
//!
//! Namespace names come from [`crate::netns::Netns::new`] (`tb<pid>-<n>-<role>`), so they are unique
//! and swept when a test process dies. Processes started with [`Topology::spawn`] run through nsenter
//! (bpffs stays visible) and are killed before the namespaces are deleted.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::netns::{Netns, addr, veth};
use crate::peers::Daemon;

/// One veth link of a built topology, with the addresses on both ends.
#[derive(Clone, Debug)]
pub struct Link {
    pub a: String,
    pub a_if: String,
    pub b: String,
    pub b_if: String,
    pub a_v4: Ipv4Addr,
    pub b_v4: Ipv4Addr,
    pub a_v6: Ipv6Addr,
    pub b_v6: Ipv6Addr,
    /// Prefix lengths of the link's IPv4 and IPv6 subnets.
    pub v4_len: u8,
    pub v6_len: u8,
}

impl Link {
    /// The address of `node`'s end (`v6` selects the family).
    pub fn addr_of(&self, node: &str, v6: bool) -> Option<IpAddr> {
        match (node == self.a, node == self.b, v6) {
            (true, _, false) => Some(self.a_v4.into()),
            (true, _, true) => Some(self.a_v6.into()),
            (_, true, false) => Some(self.b_v4.into()),
            (_, true, true) => Some(self.b_v6.into()),
            _ => None,
        }
    }
}

#[derive(Debug)]
struct LinkSpec {
    a: String,
    b: String,
    a_if: Option<String>,
    b_if: Option<String>,
    v4: Option<(Ipv4Addr, Ipv4Addr, u8)>,
    v6: Option<(Ipv6Addr, Ipv6Addr, u8)>,
}

/// Builder for a [`Topology`]; nothing is created until [`TopologyBuilder::build`].
#[derive(Debug, Default)]
pub struct TopologyBuilder {
    nodes: Vec<String>,
    links: Vec<LinkSpec>,
    routes: Vec<(String, String)>,
    sysctls: Vec<(String, String, String)>,
}

impl TopologyBuilder {
    /// Adds a node (a namespace) with a role name, unique within the topology.
    pub fn node(mut self, role: &str) -> Self {
        self.nodes.push(role.to_string());
        self
    }

    /// Adds a router node: a namespace with IPv4 and IPv6 forwarding on.
    pub fn router(self, role: &str) -> Self {
        self.node(role)
            .sysctl(role, "net.ipv4.ip_forward", "1")
            .sysctl(role, "net.ipv6.conf.all.forwarding", "1")
    }

    /// Links `a` and `b` with automatic names (`a` sees `<b>0`-ish names: the peer's role truncated
    /// plus the link number) and addresses `10.<k/256>.<k%256>.1|2/24`, `fd00:0:<k>::1|2/64` where k
    /// is the link's index.
    pub fn link(mut self, a: &str, b: &str) -> Self {
        let k = self.links.len() as u16;
        let [hi, lo] = k.to_be_bytes();
        self.links.push(LinkSpec {
            a: a.to_string(),
            b: b.to_string(),
            a_if: None,
            b_if: None,
            v4: Some((
                Ipv4Addr::new(10, hi, lo, 1),
                Ipv4Addr::new(10, hi, lo, 2),
                24,
            )),
            v6: Some((
                Ipv6Addr::new(0xfd00, 0, k, 0, 0, 0, 0, 1),
                Ipv6Addr::new(0xfd00, 0, k, 0, 0, 0, 0, 2),
                64,
            )),
        });
        self
    }

    /// Links `a:a_if` and `b:b_if` with the given addresses (CIDR notation; empty for none).
    pub fn link_with(
        mut self,
        (a, a_if, a_addrs): (&str, &str, &[&str]),
        (b, b_if, b_addrs): (&str, &str, &[&str]),
    ) -> Result<Self> {
        let parse = |s: &str| -> Result<(IpAddr, u8)> {
            let (ip, len) = s.split_once('/').with_context(|| format!("{s}: no /len"))?;
            Ok((ip.parse()?, len.parse()?))
        };
        let (mut v4, mut v6) = (None, None);
        for (x, y) in a_addrs.iter().zip(b_addrs.iter()) {
            match (parse(x)?, parse(y)?) {
                ((IpAddr::V4(x), l), (IpAddr::V4(y), _)) => v4 = Some((x, y, l)),
                ((IpAddr::V6(x), l), (IpAddr::V6(y), _)) => v6 = Some((x, y, l)),
                _ => bail!("{x} and {y} are of different families"),
            }
        }
        self.links.push(LinkSpec {
            a: a.to_string(),
            b: b.to_string(),
            a_if: Some(a_if.to_string()),
            b_if: Some(b_if.to_string()),
            v4,
            v6,
        });
        Ok(self)
    }

    /// `ip route add ROUTE` in `node` (IPv6 routes are recognised by a `:` in them).
    pub fn route(mut self, node: &str, route: &str) -> Self {
        self.routes.push((node.to_string(), route.to_string()));
        self
    }

    pub fn sysctl(mut self, node: &str, key: &str, value: &str) -> Self {
        self.sysctls
            .push((node.to_string(), key.to_string(), value.to_string()));
        self
    }

    /// Creates everything; on any error, what was created so far is torn down. Namespaces left by
    /// earlier test processes that were killed (no Drop ran) are swept first.
    pub fn build(self) -> Result<Topology> {
        crate::netns::sweep_stale();
        let mut t = Topology {
            processes: Vec::new(),
            links: Vec::new(),
            nodes: BTreeMap::new(),
        };
        for role in &self.nodes {
            if t.nodes.contains_key(role) {
                bail!("node {role} defined twice");
            }
            t.nodes.insert(role.clone(), Netns::new(role)?);
        }
        for (i, l) in self.links.iter().enumerate() {
            let a_if = l.a_if.clone().unwrap_or_else(|| if_name(&l.b, i));
            let b_if = l.b_if.clone().unwrap_or_else(|| if_name(&l.a, i));
            veth(t.ns(&l.a)?, &a_if, t.ns(&l.b)?, &b_if)?;
            let (a_v4, b_v4, v4_len) =
                l.v4.unwrap_or((Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED, 0));
            let (a_v6, b_v6, v6_len) =
                l.v6.unwrap_or((Ipv6Addr::UNSPECIFIED, Ipv6Addr::UNSPECIFIED, 0));
            if l.v4.is_some() {
                addr(t.ns(&l.a)?, &a_if, &format!("{a_v4}/{v4_len}"))?;
                addr(t.ns(&l.b)?, &b_if, &format!("{b_v4}/{v4_len}"))?;
            }
            if l.v6.is_some() {
                addr(t.ns(&l.a)?, &a_if, &format!("{a_v6}/{v6_len}"))?;
                addr(t.ns(&l.b)?, &b_if, &format!("{b_v6}/{v6_len}"))?;
            }
            t.links.push(Link {
                a: l.a.clone(),
                a_if,
                b: l.b.clone(),
                b_if,
                a_v4,
                b_v4,
                a_v6,
                b_v6,
                v4_len,
                v6_len,
            });
        }
        for (node, key, value) in &self.sysctls {
            t.ns(node)?.sysctl(key, value)?;
        }
        for (node, route) in &self.routes {
            let args: Vec<&str> = route.split_whitespace().collect();
            let ns = t.ns(node)?;
            if route.contains(':') {
                let mut full = vec!["-6", "route", "add"];
                full.extend(args);
                ns.ip(&full)?;
            } else {
                let mut full = vec!["route", "add"];
                full.extend(args);
                ns.ip(&full)?;
            }
        }
        Ok(t)
    }
}

/// A topology described in TOML (see [`TopologyBuilder::from_toml`]).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlTopology {
    #[serde(default)]
    node: Vec<TomlNode>,
    #[serde(default)]
    link: Vec<TomlLink>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlNode {
    name: String,
    #[serde(default)]
    router: bool,
    #[serde(default)]
    routes: Vec<String>,
    #[serde(default)]
    sysctls: BTreeMap<String, String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlLink {
    a: String,
    b: String,
    a_if: Option<String>,
    b_if: Option<String>,
    #[serde(default)]
    a_addrs: Vec<String>,
    #[serde(default)]
    b_addrs: Vec<String>,
}

impl TopologyBuilder {
    /// Reads a topology from TOML:
    ///
    /// ```toml
    /// [[node]]
    /// name = "src"
    /// routes = ["default via 10.0.0.2"]
    ///
    /// [[node]]
    /// name = "dut"
    /// router = true                      # IPv4 and IPv6 forwarding on
    /// sysctls = { "net.ipv4.conf.all.rp_filter" = "0" }
    ///
    /// [[link]]                           # automatic names and addresses (see `link`)
    /// a = "src"
    /// b = "dut"
    ///
    /// [[link]]                           # explicit ones (see `link_with`)
    /// a = "dut"
    /// a_if = "up0"
    /// a_addrs = ["192.0.2.1/30"]
    /// b = "up"
    /// b_if = "eth0"
    /// b_addrs = ["192.0.2.2/30"]
    /// ```
    pub fn from_toml(text: &str) -> Result<TopologyBuilder> {
        let t: TomlTopology = toml::from_str(text).context("parsing the topology TOML")?;
        let mut b = TopologyBuilder::default();
        for n in &t.node {
            b = if n.router {
                b.router(&n.name)
            } else {
                b.node(&n.name)
            };
            for (k, v) in &n.sysctls {
                b = b.sysctl(&n.name, k, v);
            }
        }
        for l in &t.link {
            for end in [&l.a, &l.b] {
                if !t.node.iter().any(|n| &n.name == end) {
                    bail!("link {}—{}: no node {end}", l.a, l.b);
                }
            }
            b = match (&l.a_if, &l.b_if) {
                (None, None) if l.a_addrs.is_empty() && l.b_addrs.is_empty() => b.link(&l.a, &l.b),
                (Some(ai), Some(bi)) => {
                    let aa: Vec<&str> = l.a_addrs.iter().map(String::as_str).collect();
                    let ba: Vec<&str> = l.b_addrs.iter().map(String::as_str).collect();
                    b.link_with((&l.a, ai, &aa), (&l.b, bi, &ba))?
                }
                _ => bail!(
                    "link {}—{}: give both a_if and b_if with addresses, or neither",
                    l.a,
                    l.b
                ),
            };
        }
        // Routes last: they need the links' addresses.
        for n in &t.node {
            for r in &n.routes {
                b = b.route(&n.name, r);
            }
        }
        Ok(b)
    }
}

/// Interface name for the end of link `i` that faces `peer`: at most 15 bytes.
fn if_name(peer: &str, i: usize) -> String {
    let suffix = i.to_string();
    let keep = 15usize.saturating_sub(suffix.len()).min(peer.len());
    format!("{}{suffix}", &peer[..keep])
}

/// A built topology: namespaces by role, links, and processes started inside.
pub struct Topology {
    // Field order is drop order: processes die before their namespaces are deleted.
    processes: Vec<Daemon>,
    links: Vec<Link>,
    nodes: BTreeMap<String, Netns>,
}

impl Topology {
    pub fn builder() -> TopologyBuilder {
        TopologyBuilder::default()
    }

    /// Two nodes joined by one link (`a` = .1, `b` = .2).
    pub fn pair(a: &str, b: &str) -> Result<Topology> {
        Topology::builder().node(a).node(b).link(a, b).build()
    }

    /// The namespace of node `role`.
    pub fn ns(&self, role: &str) -> Result<&Netns> {
        self.nodes
            .get(role)
            .with_context(|| format!("topology has no node {role}"))
    }

    /// The namespace name of node `role` (what the peer drivers take).
    pub fn ns_name(&self, role: &str) -> Result<&str> {
        self.ns(role).map(Netns::name)
    }

    pub fn links(&self) -> &[Link] {
        &self.links
    }

    /// The `i`-th link.
    pub fn link(&self, i: usize) -> Result<&Link> {
        self.links.get(i).with_context(|| format!("no link {i}"))
    }

    /// The first link between `a` and `b`, in either direction.
    pub fn link_between(&self, a: &str, b: &str) -> Result<&Link> {
        self.links
            .iter()
            .find(|l| (l.a == a && l.b == b) || (l.a == b && l.b == a))
            .with_context(|| format!("no link between {a} and {b}"))
    }

    /// Starts `program args` inside node `role` (via nsenter) with output to `log`; the process is killed
    /// when the topology is dropped. Returns its pid.
    pub fn spawn(&mut self, role: &str, program: &str, args: &[&str], log: &Path) -> Result<i32> {
        let ns = self.ns_name(role)?.to_string();
        let d = Daemon::spawn(program, &ns, program, args, &[], log)?;
        let pid = d.pid();
        self.processes.push(d);
        Ok(pid)
    }

    /// Kills (SIGKILL) a process started with [`Topology::spawn`].
    pub fn stop(&mut self, pid: i32) {
        self.processes.retain_mut(|d| {
            if d.pid() == pid {
                d.kill();
                false
            } else {
                true
            }
        });
    }

    /// Sets a link end down or up (`ip link set IF down|up` in `node`).
    pub fn set_link(&self, node: &str, iface: &str, up: bool) -> Result<()> {
        self.ns(node)?
            .ip(&["link", "set", iface, if up { "up" } else { "down" }])
            .map(|_| ())
    }

    /// Every node's namespace name, for failure messages.
    pub fn describe(&self) -> String {
        let mut s = String::from("topology:\n");
        for (role, ns) in &self.nodes {
            s.push_str(&format!("  {role}: namespace {}\n", ns.name()));
        }
        for l in &self.links {
            s.push_str(&format!(
                "  {}:{} {} {} ── {}:{} {} {}\n",
                l.a, l.a_if, l.a_v4, l.a_v6, l.b, l.b_if, l.b_v4, l.b_v6
            ));
        }
        s
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for d in &mut self.processes {
            d.kill();
        }
    }
}
