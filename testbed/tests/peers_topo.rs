//! Topology builder: a routed chain of namespaces with IPv4 and IPv6, processes inside, link
//! down/up, and complete teardown on drop.

use std::process::Command;

use anyhow::Result;
use testbed::topo::Topology;

fn ping(t: &Topology, from: &str, to: &str) -> bool {
    t.ns(from)
        .and_then(|ns| ns.exec("ping", &["-c", "1", "-W", "1", to]))
        .is_ok()
}

fn namespaces() -> String {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn routed_chain_forwards_ipv4_and_ipv6_and_is_torn_down() -> Result<()> {
    let names;
    {
        let mut t = Topology::builder()
            .node("left")
            .router("mid")
            .node("right")
            .link("left", "mid")
            .link_with(
                ("mid", "r0", &["192.0.2.1/30", "2001:db8:9::1/64"]),
                ("right", "eth0", &["192.0.2.2/30", "2001:db8:9::2/64"]),
            )?
            .route("left", "default via 10.0.0.2")
            .route("left", "default via fd00::2")
            .route("right", "default via 192.0.2.1")
            .route("right", "default via 2001:db8:9::1")
            .build()?;
        names = ["left", "mid", "right"].map(|r| t.ns_name(r).map(str::to_string));
        let l0 = t.link(0)?.clone();
        assert_eq!(
            (l0.a_v4.to_string(), l0.b_v4.to_string()),
            ("10.0.0.1".into(), "10.0.0.2".into())
        );
        assert_eq!(l0.a_if, "mid0");
        assert_eq!(t.link_between("right", "mid")?.b_if, "eth0");

        assert!(ping(&t, "left", "192.0.2.2"), "{}", t.describe());
        assert!(ping(&t, "left", "2001:db8:9::2"), "{}", t.describe());

        // Down the far link: no more path; up again: back.
        t.set_link("mid", "r0", false)?;
        assert!(!ping(&t, "left", "192.0.2.2"));
        t.set_link("mid", "r0", true)?;
        assert!(ping(&t, "left", "192.0.2.2"), "{}", t.describe());

        // A process started inside runs in that namespace and is stopped on request.
        let log = tempfile::NamedTempFile::new()?;
        let pid = t.spawn("right", "sleep", &["600"], log.path())?;
        // The child is nsenter until it has entered the namespace: wait for it to show up there.
        let inside = testbed::peers::wait_until(std::time::Duration::from_secs(5), || {
            Ok(t.ns("right")?.pids().contains(&pid).then_some(()))
        });
        assert!(inside.is_ok(), "pid {pid} never appeared in the namespace");
        t.stop(pid);
        assert!(!t.ns("right")?.pids().contains(&pid));
        t.spawn("left", "sleep", &["600"], log.path())?;
    }
    let left = namespaces();
    for n in names {
        assert!(!left.contains(&n?), "namespace left behind");
    }
    Ok(())
}

#[test]
fn toml_topology_builds_the_same_kind_of_chain() -> Result<()> {
    let text = r#"
        [[node]]
        name = "src"
        routes = ["default via 10.0.0.2", "default via fd00::2"]

        [[node]]
        name = "dut"
        router = true
        sysctls = { "net.ipv4.conf.all.rp_filter" = "0" }

        [[node]]
        name = "dst"
        routes = ["default via 198.51.100.1"]

        [[link]]
        a = "src"
        b = "dut"

        [[link]]
        a = "dut"
        a_if = "d0"
        a_addrs = ["198.51.100.1/24"]
        b = "dst"
        b_if = "eth0"
        b_addrs = ["198.51.100.2/24"]
    "#;
    let t = testbed::topo::TopologyBuilder::from_toml(text)?.build()?;
    assert!(ping(&t, "src", "198.51.100.2"), "{}", t.describe());
    assert_eq!(t.link_between("dut", "dst")?.a_if, "d0");
    assert!(testbed::topo::TopologyBuilder::from_toml("[[link]]\na = \"x\"\nb = \"y\"").is_err());
    assert!(testbed::topo::TopologyBuilder::from_toml("[[node]]\nnam = \"x\"").is_err());
    Ok(())
}
