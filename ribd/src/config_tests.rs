//! Config parsing and validation: what operators get told when something is wrong.

use super::*;

const EXAMPLE: &str = include_str!("../examples/ribd.toml");

fn errors(text: &str) -> Vec<String> {
    parse(text, "ribd.toml")
        .expect_err("must be rejected")
        .iter()
        .map(|e| e.to_string())
        .collect()
}

#[test]
fn the_example_config_is_valid_and_groups_merge() {
    let l = parse(EXAMPLE, "example.toml").unwrap_or_else(|e| panic!("{:#?}", e));
    assert_eq!(l.neighbors.len(), 3);
    let a = l.neighbors.iter().find(|n| n.name == "transit-a").unwrap();
    assert_eq!(
        a.import.as_deref(),
        Some(&["SANE-IMPORT".to_string(), "FROM-TRANSIT".to_string()][..])
    );
    assert_eq!(a.max_prefix.as_ref().map(|m| m.limit), Some(1_200_000));
    assert_eq!(a.ttl_security, Some(1));
    assert!(a.is_ebgp());
    let rr = l.neighbors.iter().find(|n| n.name == "core-rr").unwrap();
    assert!(!rr.is_ebgp() && rr.route_reflector_client);
    assert_eq!(l.config.statics.len(), 1);
    assert_eq!(l.acls.len(), 3, "the example's ACL rules validate");
    assert!(l.acls.iter().all(|a| a.acl == "edge-in"));
}

#[test]
fn unknown_keys_are_errors_with_file_line_and_field() {
    let text = "router-id = \"192.0.2.1\"\nlocal-as = 65000\n\n[peer.a]\naddress = \"192.0.2.2\"\nremote-as = 1\nholdtime = 3\n";
    let e = errors(text);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with("ribd.toml:7: holdtime: "), "{}", e[0]);
    assert!(e[0].contains("unknown field `holdtime`"), "{}", e[0]);
}

#[test]
fn bad_values_say_what_is_expected() {
    let e = errors("router-id = \"192.0.2.1\"\nlocal-as = \"sixty-five thousand\"\n");
    assert!(e[0].starts_with("ribd.toml:2: local-as: "), "{}", e[0]);
    assert!(e[0].contains("u32") || e[0].contains("integer"), "{}", e[0]);
    let e = errors("router-id = \"192.0.2.300\"\nlocal-as = 1\n");
    assert!(e[0].starts_with("ribd.toml:1: router-id: "), "{}", e[0]);
}

#[test]
fn semantic_errors_are_all_reported_with_their_lines() {
    let text = r#"router-id = "192.0.2.1"
local-as = 65000

[peer.a]
address = "192.0.2.2"
remote-as = 64500
hold-time = 2
import = ["NOPE"]

[peer.b]
address = "192.0.2.2"
group = "missing"

[peer.c]
address = "2001:db8::1"
remote-as = 64501
local-address = "192.0.2.1"
multihop = 2
ttl-security = 1

[[static]]
prefix = "10.0.0.1/8"
"#;
    let e = errors(text).join("\n");
    for want in [
        "ribd.toml:7: peer.a.hold-time: expected 0 or 3-65535 seconds",
        "ribd.toml:8: peer.a.import: unknown policy \"NOPE\"",
        "ribd.toml:11: peer.b.address: 192.0.2.2 is already used by another peer",
        "ribd.toml:12: peer.b.group: unknown peer group \"missing\"",
        "peer.b.remote-as: missing",
        "ribd.toml:17: peer.c.local-address: 192.0.2.1 is not of the same family",
        "ribd.toml:19: peer.c.ttl-security: cannot be combined with multihop",
        "static[0].prefix: 10.0.0.1/8 has host bits set",
        "static[0]: needs a next-hop or blackhole = true",
    ] {
        assert!(e.contains(want), "missing {want:?} in:\n{e}");
    }
}

#[test]
fn policy_errors_point_at_the_policy() {
    let text = "router-id = \"192.0.2.1\"\nlocal-as = 65000\n\n[[policy.P.term]]\nname = \"x\"\nmatch.prefix-list = [\"NOPE\"]\n";
    let e = errors(text);
    assert!(e[0].starts_with("ribd.toml:4: policy.P: policy P: term 1 (\"x\"): match.prefix-list: unknown prefix list"), "{}", e[0]);
}

#[test]
fn password_file_is_read_and_trimmed() {
    let dir = std::env::temp_dir().join(format!("ribd-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("key");
    std::fs::write(&f, "hunter2\n").unwrap();
    let text = format!(
        "router-id = \"192.0.2.1\"\nlocal-as = 65000\n[peer.a]\naddress = \"192.0.2.2\"\nremote-as = 1\npassword-file = \"{}\"\n",
        f.display()
    );
    let l = parse(&text, "x").unwrap();
    assert_eq!(l.neighbors[0].password.as_deref(), Some("hunter2"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn flowspec_families_and_settings() {
    let text = "router-id = \"192.0.2.1\"\nlocal-as = 65000\n\n[flowspec]\nvalidate = false\n\n[peer.a]\naddress = \"192.0.2.2\"\nremote-as = 1\nfamilies = [\"ipv4-unicast\", \"ipv4-flowspec\", \"ipv6-flowspec\"]\n";
    let l = parse(text, "ribd.toml").unwrap_or_else(|e| panic!("{e:#?}"));
    assert!(!l.config.flowspec.validate && l.config.flowspec.enforce);
    assert_eq!(
        l.neighbors[0].families,
        vec![
            Family::Ipv4Unicast,
            Family::Ipv4Flowspec,
            Family::Ipv6Flowspec
        ]
    );
    let e = errors("router-id = \"192.0.2.1\"\nlocal-as = 65000\n\n[flowspec]\nvalidat = false\n");
    assert!(e[0].contains("unknown field `validat`"), "{e:?}");
    let e = errors(
        "router-id = \"192.0.2.1\"\nlocal-as = 65000\n\n[peer.a]\naddress = \"192.0.2.2\"\nremote-as = 1\nfamilies = [\"ipv4-flow\"]\n",
    );
    assert!(
        e[0].contains("peer.a")
            && e[0].contains("expected one of `ipv4-unicast`, `ipv6-unicast`, `ipv4-flowspec`"),
        "{e:?}"
    );
}

#[test]
fn the_kernel_mirror_is_off_by_default_and_its_table_is_checked() {
    let c = parse("router-id = \"192.0.2.1\"\nlocal-as = 1\n", "ribd.toml").unwrap();
    assert!(!c.config.dataplane.kernel_mirror.enabled);
    let c = parse(
        "router-id = \"192.0.2.1\"\nlocal-as = 1\n[dataplane.kernel-mirror]\nenabled = true\ntable = 100\n",
        "ribd.toml",
    )
    .unwrap();
    assert_eq!(
        (
            c.config.dataplane.kernel_mirror.enabled,
            c.config.dataplane.kernel_mirror.table
        ),
        (true, 100)
    );
    let e =
        errors("router-id = \"192.0.2.1\"\nlocal-as = 1\n[dataplane.kernel-mirror]\ntable = 0\n");
    assert!(e[0].contains("dataplane.kernel-mirror.table"), "{}", e[0]);
}

#[test]
fn more_peers_than_the_rib_holds_is_a_config_error_naming_the_first_that_does_not_fit() {
    let mut text = String::from("router-id = \"192.0.2.1\"\nlocal-as = 65000\n");
    let n = crate::rib::MAX_PEERS; // one more than fits: one slot is the static routes'
    for i in 0..n {
        text.push_str(&format!(
            "[peer.p{i:05}]\naddress = \"10.{}.{}.1\"\nremote-as = 64500\n",
            i / 256,
            i % 256
        ));
    }
    let e = errors(&text).join("\n");
    let want = format!(
        "peer.p{:05}: {n} peers configured; at most {} fit in the RIB",
        n - 1,
        n - 1
    );
    assert!(e.contains(&want), "missing {want:?} in:\n{e}");
}

#[test]
fn graceful_restart_mode_and_select_defer_time_rfc4724_4_1() {
    let base = "router-id = \"192.0.2.1\"\nlocal-as = 65000\n";
    let l = parse(base, "ribd.toml").unwrap();
    assert_eq!(l.config.graceful_restart.mode, GrMode::Full);
    assert_eq!(l.config.graceful_restart.select_defer_time, 120);
    let l = parse(
        &format!("{base}[graceful-restart]\nmode = \"helper-only\"\nselect-defer-time = 360\n"),
        "ribd.toml",
    )
    .unwrap();
    assert_eq!(l.config.graceful_restart.mode, GrMode::HelperOnly);
    assert_eq!(l.config.graceful_restart.select_defer_time, 360);
    // A mode that does not exist names the ones that do, with its line.
    let e = errors(&format!("{base}[graceful-restart]\nmode = \"restart\"\n"));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with("ribd.toml:4: "), "{}", e[0]);
    assert!(
        e[0].contains("`full`") && e[0].contains("`helper-only`"),
        "{}",
        e[0]
    );
    for bad in ["0", "3601"] {
        let e = errors(&format!(
            "{base}[graceful-restart]\nselect-defer-time = {bad}\n"
        ));
        assert_eq!(
            e,
            vec![format!(
                "ribd.toml:4: graceful-restart.select-defer-time: expected 1-3600 seconds, found {bad}"
            )]
        );
    }
}
