//! Community literals as operators write them: `65000:100`, well-known names (`no-export`,
//! `blackhole`, ...), large communities `65000:1:2`, extended communities `rt:65000:100`,
//! `ro:192.0.2.1:7`, `lb:65000:1250000000` (link bandwidth, bytes/s), and regular expressions over the
//! text form, written `re:PATTERN`.

use std::net::Ipv4Addr;

use crate::rib::attrs::{LargeCommunity, community};

const WELL_KNOWN: &[(&str, u32)] = &[
    ("graceful-shutdown", community::GRACEFUL_SHUTDOWN),
    ("accept-own", community::ACCEPT_OWN),
    ("llgr-stale", community::LLGR_STALE),
    ("no-llgr", community::NO_LLGR),
    ("blackhole", community::BLACKHOLE),
    ("no-export", community::NO_EXPORT),
    ("no-advertise", community::NO_ADVERTISE),
    ("no-export-subconfed", community::NO_EXPORT_SUBCONFED),
    ("no-peer", community::NO_PEER),
];

/// Parses `ASN:VALUE` (each 0–65535) or a well-known name.
pub fn parse_community(s: &str) -> Result<u32, String> {
    let s = s.trim();
    if let Some((_, v)) = WELL_KNOWN.iter().find(|(n, _)| n.eq_ignore_ascii_case(s)) {
        return Ok(*v);
    }
    let (a, b) = s.split_once(':').ok_or_else(|| {
        format!("community {s:?}: expected ASN:VALUE (e.g. 65000:100) or a well-known name")
    })?;
    let a: u16 = a
        .parse()
        .map_err(|_| format!("community {s:?}: {a:?} is not a number 0-65535"))?;
    let b: u16 = b
        .parse()
        .map_err(|_| format!("community {s:?}: {b:?} is not a number 0-65535"))?;
    Ok((u32::from(a) << 16) | u32::from(b))
}

/// Text form used for display and regex matching (`65000:100`, or the well-known name).
pub fn format_community(c: u32) -> String {
    match WELL_KNOWN.iter().find(|(_, v)| *v == c) {
        Some((n, _)) => (*n).to_string(),
        None => format!("{}:{}", c >> 16, c & 0xffff),
    }
}

/// Parses `GLOBAL:LOCAL1:LOCAL2` (RFC 8092, each a 32-bit number).
pub fn parse_large(s: &str) -> Result<LargeCommunity, String> {
    let parts: Vec<&str> = s.trim().split(':').collect();
    let [g, l1, l2] = parts.as_slice() else {
        return Err(format!(
            "large community {s:?}: expected GLOBAL:LOCAL1:LOCAL2"
        ));
    };
    let n = |x: &str| {
        x.parse::<u32>()
            .map_err(|_| format!("large community {s:?}: {x:?} is not a 32-bit number"))
    };
    Ok(LargeCommunity {
        global: n(g)?,
        local1: n(l1)?,
        local2: n(l2)?,
    })
}

pub fn format_large(c: &LargeCommunity) -> String {
    format!("{}:{}:{}", c.global, c.local1, c.local2)
}

/// Parses `rt:ASN:N`, `rt:IP:N`, `ro:ASN:N`, `ro:IP:N` (RFC 4360) or `lb:ASN:BYTES_PER_SECOND`.
pub fn parse_ext(s: &str) -> Result<[u8; 8], String> {
    let parts: Vec<&str> = s.trim().split(':').collect();
    let [kind, admin, val] = parts.as_slice() else {
        return Err(format!(
            "extended community {s:?}: expected rt:ADMIN:VALUE, ro:ADMIN:VALUE or lb:ASN:BYTES_PER_SECOND"
        ));
    };
    let sub = match *kind {
        "rt" => 0x02,
        "ro" => 0x03,
        "lb" => 0x04,
        k => {
            return Err(format!(
                "extended community {s:?}: unknown kind {k:?} (rt, ro or lb)"
            ));
        }
    };
    if sub == 0x04 {
        let asn: u16 = admin
            .parse()
            .map_err(|_| format!("extended community {s:?}: {admin:?} is not a 2-octet ASN"))?;
        let bw: f32 = val
            .parse()
            .map_err(|_| format!("extended community {s:?}: {val:?} is not a bandwidth"))?;
        let a = asn.to_be_bytes();
        let b = bw.to_be_bytes();
        return Ok([0x40, 0x04, a[0], a[1], b[0], b[1], b[2], b[3]]);
    }
    if let Ok(ip) = admin.parse::<Ipv4Addr>() {
        let v: u16 = val.parse().map_err(|_| {
            format!("extended community {s:?}: {val:?} must be 0-65535 with an IPv4 administrator")
        })?;
        let o = ip.octets();
        let v = v.to_be_bytes();
        return Ok([0x01, sub, o[0], o[1], o[2], o[3], v[0], v[1]]);
    }
    let asn: u32 = admin.parse().map_err(|_| {
        format!("extended community {s:?}: {admin:?} is not an ASN or IPv4 address")
    })?;
    if let Ok(asn16) = u16::try_from(asn) {
        let v: u32 = val
            .parse()
            .map_err(|_| format!("extended community {s:?}: {val:?} is not a 32-bit number"))?;
        let a = asn16.to_be_bytes();
        let v = v.to_be_bytes();
        Ok([0x00, sub, a[0], a[1], v[0], v[1], v[2], v[3]])
    } else {
        let v: u16 = val.parse().map_err(|_| {
            format!("extended community {s:?}: {val:?} must be 0-65535 with a 4-octet ASN")
        })?;
        let a = asn.to_be_bytes();
        let v = v.to_be_bytes();
        Ok([0x02, sub, a[0], a[1], a[2], a[3], v[0], v[1]])
    }
}

/// Text form of an extended community (`rt:65000:100`, `lb:65000:1250000000`, or hex when unknown).
pub fn format_ext(c: &[u8; 8]) -> String {
    let kind = match c[1] {
        0x02 => "rt",
        0x03 => "ro",
        0x04 => "lb",
        _ => "",
    };
    match (c[0] & 0x3f, kind) {
        (0x00, "lb") => {
            let bw = f32::from_be_bytes([c[4], c[5], c[6], c[7]]);
            format!("lb:{}:{}", u16::from_be_bytes([c[2], c[3]]), bw)
        }
        (0x00, k) if !k.is_empty() => {
            format!(
                "{k}:{}:{}",
                u16::from_be_bytes([c[2], c[3]]),
                u32::from_be_bytes([c[4], c[5], c[6], c[7]])
            )
        }
        (0x01, k) if !k.is_empty() => {
            format!(
                "{k}:{}:{}",
                Ipv4Addr::new(c[2], c[3], c[4], c[5]),
                u16::from_be_bytes([c[6], c[7]])
            )
        }
        (0x02, k) if !k.is_empty() => {
            format!(
                "{k}:{}:{}",
                u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
                u16::from_be_bytes([c[6], c[7]])
            )
        }
        _ => c.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn communities_parse_and_print_in_operator_form() {
        assert_eq!(parse_community("65000:100"), Ok(0xFDE8_0064));
        assert_eq!(parse_community("no-export"), Ok(community::NO_EXPORT));
        assert_eq!(format_community(community::NO_EXPORT), "no-export");
        assert_eq!(format_community(0xFDE8_0064), "65000:100");
        assert!(parse_community("70000:1").unwrap_err().contains("0-65535"));
        assert_eq!(
            format_large(&parse_large("4200000000:1:2").unwrap()),
            "4200000000:1:2"
        );
        assert_eq!(
            format_ext(&parse_ext("rt:65000:100").unwrap()),
            "rt:65000:100"
        );
        assert_eq!(
            format_ext(&parse_ext("ro:192.0.2.1:7").unwrap()),
            "ro:192.0.2.1:7"
        );
        assert_eq!(
            format_ext(&parse_ext("rt:4200000000:7").unwrap()),
            "rt:4200000000:7"
        );
        assert_eq!(
            format_ext(&parse_ext("lb:65000:1250000000").unwrap()),
            "lb:65000:1250000000"
        );
        assert!(parse_ext("xx:1:2").unwrap_err().contains("unknown kind"));
    }
}
