//! Static ACLs from the config (`[[acl]]`), enforced by the XDP classifier before the route lookup.
//!
//! ```text
//!   [[acl]] name, interfaces, [[acl.rule]] (match fields, action, rate-limit, set-dscp)
//!      ──validate (errors name acl[i].rule[j].field)──► AclRule { fib_ebpf::acl::Rule, interfaces }
//!      ──install: ingress ifindexes resolved, config rules first, then FlowSpec──► classifier
//! ```
//!
//! The match language is FlowSpec's, written the way operators write filters:
//! `protocol = ["tcp", "udp", "47"]`, `destination-port = ["80", "8000-8080"]`,
//! `tcp-flags = "syn,!ack"` (listed flags set, `!` flags clear), `fragment = ["is-fragment"]`,
//! `packet-length = ["0-64"]`, `dscp = ["46"]`, `icmp-type = ["8"]`. Actions: `accept` (stop here,
//! forward), `drop`, `count` (count and go on to the next rule), `rate-limit = "1000pps"` or
//! `"50Mbps"` (drop above the rate), `set-dscp = 10` (with accept/count/rate-limit).

use std::hash::{Hash, Hasher as _};
use std::ops::RangeInclusive;

use fib_sync::fib_ebpf::acl;
use serde::{Deserialize, Serialize};

/// One ACL: rules applied, in order, to packets arriving on `interfaces`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AclDef {
    pub name: String,
    /// Ingress interfaces it applies to; absent = every forwarding interface.
    #[serde(default)]
    pub interfaces: Option<Vec<String>>,
    #[serde(default)]
    pub rule: Vec<AclRuleDef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AclRuleDef {
    /// Shown in `ribctl show acl` and the metrics; defaults to the rule's position.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub destination: Option<String>,
    #[serde(default)]
    pub protocol: Option<Vec<String>>,
    #[serde(default)]
    pub source_port: Option<Vec<String>>,
    #[serde(default)]
    pub destination_port: Option<Vec<String>>,
    #[serde(default)]
    pub icmp_type: Option<Vec<String>>,
    #[serde(default)]
    pub icmp_code: Option<Vec<String>>,
    #[serde(default)]
    pub tcp_flags: Option<String>,
    #[serde(default)]
    pub packet_length: Option<Vec<String>>,
    #[serde(default)]
    pub dscp: Option<Vec<String>>,
    #[serde(default)]
    pub fragment: Option<Vec<String>>,
    /// "accept", "drop" or "count"; with `rate-limit` the default is to drop what exceeds it.
    #[serde(default)]
    pub action: Option<String>,
    /// "N pps" / "Npps", or a bit rate "N bps|kbps|Mbps|Gbps".
    #[serde(default)]
    pub rate_limit: Option<String>,
    #[serde(default)]
    pub set_dscp: Option<u8>,
}

/// A validated rule: the classifier rule (without interfaces) and where it applies.
#[derive(Debug, Clone, PartialEq)]
pub struct AclRule {
    pub acl: String,
    pub name: String,
    pub interfaces: Option<Vec<String>>,
    pub rule: acl::Rule,
    /// The rule's match and action as configured, one line (for `show acl`).
    pub text: String,
}

/// Validates every ACL; errors are `(field path, message)` with paths like `acl[0].rule[2].protocol`.
pub fn validate(defs: &[AclDef]) -> Result<Vec<AclRule>, Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut errs = Vec::new();
    let mut names = std::collections::HashSet::new();
    for (i, a) in defs.iter().enumerate() {
        if a.name.is_empty() || !names.insert(a.name.clone()) {
            errs.push((
                format!("acl[{i}].name"),
                format!("{:?}: expected a unique, non-empty name", a.name),
            ));
        }
        for (j, r) in a.rule.iter().enumerate() {
            let at = |f: &str| format!("acl[{i}].rule[{j}].{f}");
            match rule(a, j, r, &at) {
                Ok(x) => out.push(x),
                Err(e) => errs.extend(e),
            }
        }
    }
    if errs.is_empty() { Ok(out) } else { Err(errs) }
}

fn rule(
    a: &AclDef,
    j: usize,
    r: &AclRuleDef,
    at: &dyn Fn(&str) -> String,
) -> Result<AclRule, Vec<(String, String)>> {
    let mut errs = Vec::new();
    let mut m = acl::Match::default();
    let mut text = Vec::new();
    let mut pfx = |v: &Option<String>, f: &str| -> Option<acl::Prefix> {
        let s = v.as_ref()?;
        match s.parse::<ipnet::IpNet>() {
            Ok(n) => {
                text.push(format!("{f} {n}"));
                Some(match n.trunc() {
                    ipnet::IpNet::V4(n) => acl::Prefix::V4(n.network(), n.prefix_len()),
                    ipnet::IpNet::V6(n) => acl::Prefix::V6(n.network(), n.prefix_len()),
                })
            }
            Err(_) => {
                errs.push((
                    at(f),
                    format!("{s:?}: expected a prefix such as 192.0.2.0/24"),
                ));
                None
            }
        }
    };
    m.src = pfx(&r.source, "source");
    m.dst = pfx(&r.destination, "destination");
    if let (Some(s), Some(d)) = (m.src, m.dst)
        && s.family() != d.family()
    {
        errs.push((
            at("destination"),
            "source and destination are of different address families".into(),
        ));
    }
    macro_rules! list {
        ($field:ident, $name:literal, $max:expr, $names:expr) => {
            if let Some(v) = &r.$field {
                match ranges(v, $max, $names) {
                    Ok(x) => {
                        text.push(format!("{} {}", $name, v.join(",")));
                        Some(x)
                    }
                    Err(e) => {
                        errs.push((at($name), e));
                        None
                    }
                }
            } else {
                None
            }
        };
    }
    let narrow8 = |v: Option<Vec<RangeInclusive<u32>>>| {
        v.map(|v| {
            v.into_iter()
                .map(|r| *r.start() as u8..=*r.end() as u8)
                .collect()
        })
    };
    let narrow16 = |v: Option<Vec<RangeInclusive<u32>>>| {
        v.map(|v| {
            v.into_iter()
                .map(|r| *r.start() as u16..=*r.end() as u16)
                .collect()
        })
    };
    m.protocol = narrow8(list!(protocol, "protocol", 255, PROTOCOLS));
    m.src_port = narrow16(list!(source_port, "source-port", 65535, &[]));
    m.dst_port = narrow16(list!(destination_port, "destination-port", 65535, &[]));
    m.icmp_type = narrow8(list!(icmp_type, "icmp-type", 255, &[]));
    m.icmp_code = narrow8(list!(icmp_code, "icmp-code", 255, &[]));
    m.pkt_len = narrow16(list!(packet_length, "packet-length", 65535, &[]));
    m.dscp = narrow8(list!(dscp, "dscp", 63, &[]));
    if let Some(f) = &r.tcp_flags {
        match tcp_flags(f) {
            Ok(s) => {
                m.tcp_flags = Some(s);
                text.push(format!("tcp-flags {f}"));
            }
            Err(e) => errs.push((at("tcp-flags"), e)),
        }
    }
    if let Some(f) = &r.fragment {
        match fragment(f) {
            Ok(s) => {
                m.fragment = Some(s);
                text.push(format!("fragment {}", f.join(",")));
            }
            Err(e) => errs.push((at("fragment"), e)),
        }
    }
    let police = match r.rate_limit.as_deref().map(rate) {
        None => None,
        Some(Ok(l)) => Some(l),
        Some(Err(e)) => {
            errs.push((at("rate-limit"), e));
            None
        }
    };
    let (action, terminal) = match (r.action.as_deref(), police) {
        (None | Some("drop"), Some(l)) => (acl::Action::RateLimit(l), true),
        (Some("count"), Some(l)) => (acl::Action::RateLimit(l), false),
        (Some("accept"), Some(l)) => (acl::Action::RateLimit(l), true),
        (Some("accept") | None, None) => (acl::Action::Accept, true),
        (Some("drop"), None) => (acl::Action::Drop, true),
        (Some("count"), None) => (acl::Action::Accept, false),
        (Some(other), _) => {
            errs.push((
                at("action"),
                format!("{other:?}: expected \"accept\", \"drop\" or \"count\""),
            ));
            (acl::Action::Accept, true)
        }
    };
    if let Some(d) = r.set_dscp {
        if d > 63 {
            errs.push((at("set-dscp"), format!("{d}: expected a DSCP 0-63")));
        }
        if action == acl::Action::Drop {
            errs.push((
                at("set-dscp"),
                "a drop rule cannot also remark (nothing is left to mark)".into(),
            ));
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    let name = r.name.clone().unwrap_or_else(|| j.to_string());
    let mut h = crate::flowspec::Fnv(0x8422_2325_cbf2_9ce4);
    ("acl", &a.name, &name).hash(&mut h);
    let mut act = match action {
        acl::Action::Accept if terminal => "accept".to_string(),
        acl::Action::Accept => "count".to_string(),
        acl::Action::Drop => "drop".to_string(),
        acl::Action::RateLimit(l) => format!(
            "rate-limit {} {}",
            l.rate,
            if l.unit == acl::RateUnit::Packets {
                "pps"
            } else {
                "bytes/s"
            }
        ),
    };
    if let Some(d) = r.set_dscp {
        act.push_str(&format!(", set dscp {d}"));
    }
    if text.is_empty() {
        text.push("any".into());
    }
    Ok(AclRule {
        acl: a.name.clone(),
        name,
        interfaces: a.interfaces.clone(),
        rule: acl::Rule {
            // FlowSpec ids have the top bit set; config ids never do.
            id: acl::RuleId(h.finish() & !(1 << 63)),
            matches: m,
            action,
            set_dscp: r.set_dscp,
            terminal,
        },
        text: format!("{} → {act}", text.join(" ")),
    })
}

const PROTOCOLS: &[(&str, u32)] = &[
    ("icmp", 1),
    ("igmp", 2),
    ("tcp", 6),
    ("udp", 17),
    ("gre", 47),
    ("esp", 50),
    ("ah", 51),
    ("icmpv6", 58),
    ("ospf", 89),
    ("sctp", 132),
];

/// "80", "8000-8080" or a name, each within 0..=max.
fn ranges(
    items: &[String],
    max: u32,
    names: &[(&str, u32)],
) -> Result<Vec<RangeInclusive<u32>>, String> {
    if items.is_empty() {
        return Err("an empty list matches nothing: leave the field out to match anything".into());
    }
    let num = |s: &str| -> Result<u32, String> {
        let s = s.trim();
        if let Some((_, v)) = names.iter().find(|(n, _)| n.eq_ignore_ascii_case(s)) {
            return Ok(*v);
        }
        match s.parse::<u32>() {
            Ok(v) if v <= max => Ok(v),
            _ => Err(format!(
                "{s:?}: expected a number 0-{max}{}",
                if names.is_empty() {
                    String::new()
                } else {
                    format!(
                        " or one of {}",
                        names.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                    )
                }
            )),
        }
    };
    items
        .iter()
        .map(|it| match it.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(format!("{it:?}: the range is empty ({a} > {b})"));
                }
                Ok(a..=b)
            }
            None => num(it).map(|v| v..=v),
        })
        .collect()
}

const TCP_FLAGS: &[(&str, u8)] = &[
    ("fin", 0x01),
    ("syn", 0x02),
    ("rst", 0x04),
    ("psh", 0x08),
    ("ack", 0x10),
    ("urg", 0x20),
    ("ece", 0x40),
    ("cwr", 0x80),
];

/// "syn,!ack": every listed flag set, every `!` flag clear.
fn tcp_flags(s: &str) -> Result<acl::ByteSet, String> {
    let (mut set, mut clear) = (0u8, 0u8);
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (neg, name) = match part.strip_prefix('!') {
            Some(n) => (true, n),
            None => (false, part),
        };
        let bit = TCP_FLAGS
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, b)| *b)
            .ok_or_else(|| {
                format!(
                    "{name:?}: expected flags from fin, syn, rst, psh, ack, urg, ece, cwr (\"!\" = clear)"
                )
            })?;
        if neg {
            clear |= bit;
        } else {
            set |= bit;
        }
    }
    if set & clear != 0 {
        return Err(format!("{s:?}: a flag cannot be both set and clear"));
    }
    if set | clear == 0 {
        return Err("expected at least one flag, e.g. \"syn,!ack\"".into());
    }
    Ok(acl::ByteSet::masked(set | clear, set))
}

/// Fragment conditions, any of which matches: dont-fragment, is-fragment, first-fragment,
/// last-fragment, not-fragment.
fn fragment(items: &[String]) -> Result<acl::ByteSet, String> {
    use fib_sync::fib_ebpf::acl::abi::{CLS_FRAG_DF, CLS_FRAG_FF, CLS_FRAG_ISF, CLS_FRAG_LF};
    let mut set = acl::ByteSet::EMPTY;
    for it in items {
        let s = match it.as_str() {
            "dont-fragment" => acl::ByteSet::all_of(CLS_FRAG_DF),
            "is-fragment" => acl::ByteSet::all_of(CLS_FRAG_ISF),
            "first-fragment" => acl::ByteSet::all_of(CLS_FRAG_FF),
            "last-fragment" => acl::ByteSet::all_of(CLS_FRAG_LF),
            "not-fragment" => acl::ByteSet::masked(CLS_FRAG_ISF, 0),
            other => {
                return Err(format!(
                    "{other:?}: expected dont-fragment, is-fragment, first-fragment, last-fragment or not-fragment"
                ));
            }
        };
        set = set.or(s);
    }
    Ok(set)
}

/// "1000pps", "1000 pps", "50Mbps", "1.5 Gbps", "800kbps", "64000bps" → a token bucket (bit rates
/// become bytes/s of IP packets).
fn rate(s: &str) -> Result<acl::RateLimit, String> {
    let t: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let lower = t.to_ascii_lowercase();
    let split = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(split);
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected e.g. \"1000pps\" or \"50Mbps\""))?;
    let (rate, unit) = match unit {
        "pps" => (v, acl::RateUnit::Packets),
        "bps" => (v / 8.0, acl::RateUnit::Bytes),
        "kbps" => (v * 1e3 / 8.0, acl::RateUnit::Bytes),
        "mbps" => (v * 1e6 / 8.0, acl::RateUnit::Bytes),
        "gbps" => (v * 1e9 / 8.0, acl::RateUnit::Bytes),
        _ => {
            return Err(format!("{s:?}: unit must be pps, bps, kbps, Mbps or Gbps"));
        }
    };
    if rate.is_nan() || rate < 1.0 {
        return Err(format!(
            "{s:?}: expected a rate of at least 1 (use action = \"drop\" to drop everything)"
        ));
    }
    let rate = rate as u64;
    let burst = match unit {
        acl::RateUnit::Packets => (rate / 10).max(1),
        acl::RateUnit::Bytes => (rate / 10).max(1500),
    };
    Ok(acl::RateLimit { rate, unit, burst })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(toml_rule: &str) -> Result<AclRule, Vec<(String, String)>> {
        let text = format!("name = \"edge\"\n[[rule]]\n{toml_rule}\n");
        let a: AclDef = toml::from_str(&text).unwrap();
        validate(&[a]).map(|mut v| v.remove(0))
    }

    #[test]
    fn match_language_compiles_to_classifier_fields() {
        let r = one(
            "name = \"web\"\ndestination = \"192.0.2.0/24\"\nprotocol = [\"tcp\", \"17\"]\ndestination-port = [\"80\", \"8000-8080\"]\ntcp-flags = \"syn,!ack\"\npacket-length = [\"0-100\"]\ndscp = [\"46\"]\naction = \"drop\"",
        )
        .unwrap();
        let m = &r.rule.matches;
        assert_eq!(
            m.dst,
            Some(acl::Prefix::V4("192.0.2.0".parse().unwrap(), 24))
        );
        assert_eq!(m.protocol, Some(vec![6..=6, 17..=17]));
        assert_eq!(m.dst_port, Some(vec![80..=80, 8000..=8080]));
        let f = m.tcp_flags.unwrap();
        assert!(f.contains(0x02) && !f.contains(0x12) && f.contains(0x02 | 0x08));
        assert_eq!(m.pkt_len, Some(vec![0..=100]));
        assert_eq!(m.dscp, Some(vec![46..=46]));
        assert_eq!(r.rule.action, acl::Action::Drop);
        assert!(r.rule.terminal);
        assert_eq!(r.name, "web");
        assert!(
            r.rule.id.0 >> 63 == 0,
            "config ids never collide with FlowSpec ids"
        );
    }

    #[test]
    fn actions_rates_and_marking() {
        let r = one("rate-limit = \"1000pps\"").unwrap();
        assert_eq!(
            r.rule.action,
            acl::Action::RateLimit(acl::RateLimit {
                rate: 1000,
                unit: acl::RateUnit::Packets,
                burst: 100
            })
        );
        let r = one("rate-limit = \"8 Mbps\"\naction = \"count\"").unwrap();
        assert_eq!(
            r.rule.action,
            acl::Action::RateLimit(acl::RateLimit {
                rate: 1_000_000,
                unit: acl::RateUnit::Bytes,
                burst: 100_000
            })
        );
        assert!(!r.rule.terminal);
        let r = one("action = \"count\"\nset-dscp = 10").unwrap();
        assert_eq!(
            (r.rule.action, r.rule.set_dscp, r.rule.terminal),
            (acl::Action::Accept, Some(10), false)
        );
        let r = one("fragment = [\"is-fragment\", \"dont-fragment\"]").unwrap();
        let f = r.rule.matches.fragment.unwrap();
        assert!(f.contains(0x02) && f.contains(0x01) && !f.contains(0x00));
    }

    #[test]
    fn errors_name_the_field_and_say_what_is_expected() {
        let e = one("protocol = [\"tcpp\"]").unwrap_err();
        assert_eq!(e[0].0, "acl[0].rule[0].protocol");
        assert!(e[0].1.contains("tcp, udp"), "{e:?}");
        let e = one("destination-port = [\"90-80\"]").unwrap_err();
        assert!(e[0].1.contains("empty"), "{e:?}");
        let e = one("tcp-flags = \"syn,!syn\"").unwrap_err();
        assert_eq!(e[0].0, "acl[0].rule[0].tcp-flags");
        let e = one("rate-limit = \"10 furlongs\"").unwrap_err();
        assert!(e[0].1.contains("pps, bps"), "{e:?}");
        let e = one("action = \"reject\"").unwrap_err();
        assert!(
            e[0].1.contains("\"accept\", \"drop\" or \"count\""),
            "{e:?}"
        );
        let e = one("source = \"192.0.2.0/24\"\ndestination = \"2001:db8::/32\"").unwrap_err();
        assert!(e[0].1.contains("families"), "{e:?}");
        let e = one("action = \"drop\"\nset-dscp = 10").unwrap_err();
        assert_eq!(e[0].0, "acl[0].rule[0].set-dscp");
        let e = one("dscp = [\"64\"]").unwrap_err();
        assert!(e[0].1.contains("0-63"), "{e:?}");
    }

    #[test]
    fn ids_are_stable_and_distinct() {
        let a = one("name = \"x\"").unwrap();
        let b = one("name = \"x\"\naction = \"drop\"").unwrap();
        let c = one("name = \"y\"").unwrap();
        assert_eq!(
            a.rule.id, b.rule.id,
            "the id follows the name, not the content"
        );
        assert_ne!(a.rule.id, c.rule.id);
    }
}
