//! Policy tests: one or more per match condition and per action.

use std::net::{IpAddr, Ipv4Addr};

use super::*;
use crate::rib::attrs::AsPath;

fn ctx(prefix: &str) -> RouteCtx {
    RouteCtx {
        prefix: prefix.parse().unwrap(),
        peer_addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        peer_as: 64500,
        local_as: 65000,
        local_addr: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2))),
        rpki: RpkiState::NotFound,
        kind: RouteKind::Unicast,
    }
}

fn attrs() -> Attrs {
    Attrs::default()
        .with_as_path(AsPath::sequence(vec![64500, 174, 15169]))
        .with_next_hop(Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))))
        .with_communities([community::parse_community("64500:100").unwrap()])
        .with_med(Some(50))
        .with_large_communities([community::parse_large("64500:1:2").unwrap()])
        .with_ext_communities([community::parse_ext("rt:64500:7").unwrap()])
}

fn compile(toml_text: &str) -> PolicySet {
    let defs: PolicyDefs = toml::from_str(toml_text).expect("valid policy TOML");
    PolicySet::compile(&defs).expect("compiles")
}

fn run(set: &PolicySet, names: &[&str], prefix: &str, a: &Attrs) -> Verdict {
    let chain = set
        .chain(&names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .unwrap();
    evaluate(&chain, &ctx(prefix), a)
}

/// Each match condition, as a term `accept`ing when it holds, against a route where it holds and one
/// where it does not.
#[test]
fn every_match_condition_selects_what_it_says() {
    let cases: &[(&str, &str)] = &[
        ("prefix = [\"198.51.0.0/16 le 24\"]", "198.51.100.0/24"),
        ("prefix-list = [\"MINE\"]", "198.51.100.0/24"),
        ("as-path = [\"_174_\"]", ""),
        ("as-path = [\"^64500_\"]", ""),
        ("as-path = [\"^64500_174_15169$\"]", ""),
        ("as-path = [\"_174_15169_\"]", ""),
        ("as-path-list = [\"T1\"]", ""),
        ("origin-as = [15169]", ""),
        ("as-path-length-min = 3\nas-path-length-max = 3", ""),
        ("community = [\"64500:100\"]", ""),
        ("community = [\"re:^64500:1..$\"]", ""),
        ("community-list = [\"CL\"]", ""),
        ("large-community = [\"64500:1:2\"]", ""),
        ("large-community = [\"re:^64500:1:\"]", ""),
        ("ext-community = [\"rt:64500:7\"]", ""),
        ("next-hop = [\"192.0.2.0/24\"]", ""),
        ("peer-address = [\"192.0.2.0/30\"]", ""),
        ("peer-as = [64500]", ""),
        ("rpki = \"not-found\"", ""),
        ("afi = \"ipv4\"", ""),
    ];
    for (cond, prefix) in cases {
        let prefix = if prefix.is_empty() {
            "198.51.100.0/24"
        } else {
            prefix
        };
        let text = format!(
            "[prefix-list.MINE]\nprefixes = [\"198.51.100.0/22 le 24\"]\n[as-path-list.T1]\nregex = [\"_(174|3356)_\"]\n\
             [community-list.CL]\nmembers = [\"64500:100\"]\n\
             [[policy.P.term]]\nname = \"t\"\naction = \"accept\"\n[policy.P.term.match]\n{cond}\n"
        );
        let set = compile(&text);
        assert_eq!(
            run(&set, &["P"], prefix, &attrs()),
            Verdict::Accept(None),
            "{cond}: must match"
        );
        let other = Attrs::default()
            .with_as_path(AsPath::sequence(vec![65001, 65002, 65003, 65004]))
            .with_next_hop(Some("10.9.9.9".parse().unwrap()));
        let mut c = ctx("2001:db8:1::/48");
        c.peer_as = 1;
        c.peer_addr = "10.0.0.1".parse().unwrap();
        c.rpki = RpkiState::Invalid;
        let chain = set.chain(&["P".to_string()]).unwrap();
        assert_eq!(
            evaluate(&chain, &c, &other),
            Verdict::Reject,
            "{cond}: must not match the other route"
        );
    }
}

#[test]
fn set_actions_change_a_copy_and_leave_the_shared_set_alone() {
    let set = compile(
        r#"
[[policy.P.term]]
name = "all"
action = "accept"
[policy.P.term.set]
local-pref = 200
med = "+10"
origin = "incomplete"
next-hop = "self"
community-add = ["65000:1", "no-export"]
community-remove = ["re:^64500:"]
large-community-add = ["65000:0:1"]
ext-community-remove = ["rt:64500:7"]
prepend = 2
weight = 7
"#,
    );
    let a = attrs();
    let Verdict::Accept(Some(m)) = run(&set, &["P"], "198.51.100.0/24", &a) else {
        panic!("expected modified accept")
    };
    assert_eq!(m.local_pref(), Some(200));
    assert_eq!(m.med(), Some(60));
    assert_eq!(m.origin(), Origin::Incomplete);
    assert_eq!(m.next_hop(), Some("192.0.2.2".parse().unwrap()));
    assert_eq!(
        m.communities(),
        &[
            community::parse_community("65000:1").unwrap(),
            crate::rib::attrs::community::NO_EXPORT
        ]
    );
    assert_eq!(m.large_communities().len(), 2);
    assert!(m.ext_communities().is_empty());
    assert_eq!(m.as_path().to_string(), "65000 65000 64500 174 15169");
    assert_eq!(m.weight(), 7);
    assert_eq!(a, attrs(), "the input is not modified");
}

#[test]
fn accept_without_changes_keeps_the_shared_set() {
    let set = compile("[[policy.P.term]]\nname = \"x\"\naction = \"accept\"\n");
    assert_eq!(
        run(&set, &["P"], "198.51.100.0/24", &attrs()),
        Verdict::Accept(None)
    );
}

#[test]
fn actions_next_term_next_policy_and_the_end_of_the_chain_rejects() {
    let set = compile(
        r#"
[[policy.A.term]]
name = "mark"
set.local-pref = 300
[[policy.A.term]]
name = "skip-rest"
action = "next-policy"
[[policy.A.term]]
name = "never"
action = "reject"
[[policy.B.term]]
name = "accept-marked"
match.community = ["64500:100"]
action = "accept"
"#,
    );
    let Verdict::Accept(Some(m)) = run(&set, &["A", "B"], "198.51.100.0/24", &attrs()) else {
        panic!("accepted by B")
    };
    assert_eq!(
        m.local_pref(),
        Some(300),
        "changes of earlier terms carry on"
    );
    let plain = attrs().with_communities([]);
    assert_eq!(
        run(&set, &["A", "B"], "198.51.100.0/24", &plain),
        Verdict::Reject,
        "no decision: reject"
    );
    assert_eq!(
        evaluate(&[], &ctx("198.51.100.0/24"), &attrs()),
        Verdict::Reject
    );
}

#[test]
fn sane_import_rejects_bogons_too_specifics_and_bogon_asns_rfc6890() {
    let set = compile("[[policy.ALL.term]]\nname = \"all\"\naction = \"accept\"\n");
    let chain = ["SANE-IMPORT", "ALL"];
    let good = attrs().with_as_path(AsPath::sequence(vec![3320, 174, 15169]));
    assert_eq!(
        run(&set, &chain, "8.8.8.0/24", &good),
        Verdict::Accept(None)
    );
    assert_eq!(
        run(&set, &chain, "8.8.8.0/24", &attrs()),
        Verdict::Reject,
        "64500 is a documentation ASN (RFC 5398)"
    );
    for bad in [
        "10.1.0.0/16",
        "192.168.1.0/24",
        "8.8.8.0/25",
        "0.0.0.0/0",
        "2001:db8::/32",
        "fe80::/64",
        "2a00::/64",
    ] {
        assert_eq!(run(&set, &chain, bad, &good), Verdict::Reject, "{bad}");
    }
    assert_eq!(
        run(&set, &chain, "2a00:1450::/32", &good),
        Verdict::Accept(None)
    );
    for asn in [0u32, 23456, 64512, 65534, 4_200_000_001] {
        let a = attrs().with_as_path(AsPath::sequence(vec![3320, asn, 15169]));
        assert_eq!(
            run(&set, &chain, "8.8.8.0/24", &a),
            Verdict::Reject,
            "AS {asn} in path"
        );
    }
    let long = good.with_as_path(AsPath::sequence(vec![174; 70]));
    assert_eq!(run(&set, &chain, "8.8.8.0/24", &long), Verdict::Reject);
}

#[test]
fn compile_errors_name_the_policy_term_and_field() {
    let defs: PolicyDefs = toml::from_str(
        r#"
[[policy.P.term]]
name = "bad"
match.prefix-list = ["NOPE"]
match.prefix = ["10.0.0.1/8"]
match.community = ["70000:1"]
set.next-hop = "elsewhere"
set.med = "x"
"#,
    )
    .unwrap();
    let errs = PolicySet::compile(&defs).unwrap_err();
    let all = errs.join("\n");
    assert!(
        all.contains("policy P: term 1 (\"bad\"): match.prefix-list: unknown prefix list \"NOPE\""),
        "{all}"
    );
    assert!(
        all.contains(
            "match.prefix[0]: \"10.0.0.1/8\" has host bits set (did you mean 10.0.0.0/8?)"
        ),
        "{all}"
    );
    assert!(all.contains("match.community[0]"), "{all}");
    assert!(all.contains("set.next-hop"), "{all}");
    assert!(all.contains("set.med"), "{all}");
    let unknown: Result<PolicyDefs, _> =
        toml::from_str("[[policy.P.term]]\nname = \"x\"\nmatch.prefx = []\n");
    assert!(
        unknown
            .unwrap_err()
            .to_string()
            .contains("unknown field `prefx`")
    );
}

#[test]
fn prefix_ranges_follow_ge_le_semantics() {
    let r = PrefixRange::parse("10.0.0.0/8 ge 16 le 24").unwrap();
    assert!(r.matches(&"10.1.0.0/16".parse().unwrap()));
    assert!(r.matches(&"10.1.2.0/24".parse().unwrap()));
    assert!(!r.matches(&"10.0.0.0/8".parse().unwrap()));
    assert!(!r.matches(&"10.1.2.0/25".parse().unwrap()));
    let ge = PrefixRange::parse("10.0.0.0/8 ge 24").unwrap();
    assert_eq!((ge.ge, ge.le), (24, 32));
    let exact = PrefixRange::parse("10.0.0.0/8").unwrap();
    assert!(!exact.matches(&"10.1.0.0/16".parse().unwrap()));
    assert!(PrefixRange::parse("10.0.0.0/8 le 4").is_err());
}
