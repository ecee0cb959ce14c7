//! Built-in lists and policies every config can name. Documented in README's policy section.
//!
//! - prefix-list `BOGONS-V4`: RFC 6890 special-purpose and unallocated IPv4 space, any length.
//! - prefix-list `BOGONS-V6`: IPv6 special-purpose space and everything outside 2000::/3, any length.
//! - prefix-list `TOO-SPECIFIC`: IPv4 longer than /24, IPv6 longer than /48.
//! - prefix-list `DEFAULT-ROUTE`: 0.0.0.0/0 and ::/0.
//! - as-path-list `BOGON-ASNS`: AS 0, AS_TRANS 23456 and private/reserved ASNs anywhere in the path.
//! - policy `SANE-IMPORT`: rejects the above, AS paths longer than 64, then `next-policy`, so the
//!   operator's own import policy follows it in the chain: `import = ["SANE-IMPORT", "MY-IMPORT"]`.

use super::{Action, AsPathListDef, MatchDef, PolicyDef, PolicyDefs, PrefixListDef, TermDef};

pub const BOGONS_V4: &[&str] = &[
    "0.0.0.0/8+",
    "10.0.0.0/8+",
    "100.64.0.0/10+",
    "127.0.0.0/8+",
    "169.254.0.0/16+",
    "172.16.0.0/12+",
    "192.0.0.0/24+",
    "192.0.2.0/24+",
    "192.168.0.0/16+",
    "198.18.0.0/15+",
    "198.51.100.0/24+",
    "203.0.113.0/24+",
    "224.0.0.0/4+",
    "240.0.0.0/4+",
];

pub const BOGONS_V6: &[&str] = &[
    "::/8+",
    "0100::/64+",
    "2001:2::/48+",
    "2001:10::/28+",
    "2001:db8::/32+",
    "2002::/16+",
    "3ffe::/16+",
    "4000::/2+",
    "8000::/1+",
    "fc00::/7+",
    "fe80::/10+",
    "fec0::/10+",
    "ff00::/8+",
    "1000::/4+",
    "0200::/7+",
    "0400::/6+",
    "0800::/5+",
];

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

pub fn definitions() -> PolicyDefs {
    let mut d = PolicyDefs::default();
    d.prefix_list.insert(
        "BOGONS-V4".into(),
        PrefixListDef {
            prefixes: s(BOGONS_V4),
        },
    );
    d.prefix_list.insert(
        "BOGONS-V6".into(),
        PrefixListDef {
            prefixes: s(BOGONS_V6),
        },
    );
    d.prefix_list.insert(
        "TOO-SPECIFIC".into(),
        PrefixListDef {
            prefixes: s(&["0.0.0.0/0 ge 25 le 32", "::/0 ge 49 le 128"]),
        },
    );
    d.prefix_list.insert(
        "DEFAULT-ROUTE".into(),
        PrefixListDef {
            prefixes: s(&["0.0.0.0/0", "::/0"]),
        },
    );
    d.as_path_list.insert(
        "BOGON-ASNS".into(),
        AsPathListDef {
            regex: s(&[
                "_0_",
                "_23456_",
                "_6449[6-9]_|_645[0-1][0-9]_",
                "_6451[2-9]_|_645[2-9][0-9]_|_64[6-9][0-9][0-9]_|_65[0-4][0-9][0-9]_|_655[0-2][0-9]_|_6553[0-5]_",
                "_42[0-9]{8}_",
            ]),
        },
    );
    let reject = |name: &str, m: MatchDef| TermDef {
        name: name.into(),
        matches: m,
        action: Some(Action::Reject),
        ..TermDef::default()
    };
    d.policy.insert(
        "SANE-IMPORT".into(),
        PolicyDef {
            term: vec![
                reject(
                    "bogon-prefixes",
                    MatchDef {
                        prefix_list: s(&["BOGONS-V4", "BOGONS-V6"]),
                        ..MatchDef::default()
                    },
                ),
                reject(
                    "too-specific",
                    MatchDef {
                        prefix_list: s(&["TOO-SPECIFIC"]),
                        ..MatchDef::default()
                    },
                ),
                reject(
                    "default-route",
                    MatchDef {
                        prefix_list: s(&["DEFAULT-ROUTE"]),
                        ..MatchDef::default()
                    },
                ),
                reject(
                    "bogon-asns",
                    MatchDef {
                        as_path_list: s(&["BOGON-ASNS"]),
                        ..MatchDef::default()
                    },
                ),
                reject(
                    "long-as-path",
                    MatchDef {
                        as_path_length_min: Some(65),
                        ..MatchDef::default()
                    },
                ),
                TermDef {
                    name: "continue".into(),
                    action: Some(Action::NextPolicy),
                    ..TermDef::default()
                },
            ],
        },
    );
    d
}
