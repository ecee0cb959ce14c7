//! Client-side checks of operator input, so a typo is answered before the daemon is called, with the
//! correct form in the message. All failures are [`Error::Usage`] (exit 2).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::args::Afi;
use crate::error::Error;

/// A prefix in canonical text form with its family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl Prefix {
    pub fn afi(&self) -> Afi {
        if self.addr.is_ipv4() {
            Afi::Ipv4
        } else {
            Afi::Ipv6
        }
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

fn network(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
        }
        IpAddr::V6(a) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
        }
    }
}

/// Parses `ADDRESS/LEN` with the host bits clear.
pub fn prefix(s: &str) -> Result<Prefix, Error> {
    let s = s.trim();
    let Some((a, l)) = s.split_once('/') else {
        return Err(match s.parse::<IpAddr>() {
            Ok(addr) => {
                let host = if addr.is_ipv4() { 32 } else { 128 };
                Error::Usage(format!(
                    "{s} is an address, not a prefix: write {addr}/{host}, or use \
                     `ribctl lookup {addr}` for the longest match"
                ))
            }
            Err(_) => Error::Usage(format!(
                "malformed prefix {s:?}: expected ADDRESS/LENGTH (e.g. 192.0.2.0/24 or 2001:db8::/32)"
            )),
        });
    };
    let addr: IpAddr = a.parse().map_err(|_| {
        Error::Usage(format!(
            "malformed prefix {s:?}: {a:?} is not an IPv4 or IPv6 address"
        ))
    })?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len: u8 = l.parse().ok().filter(|l| *l <= max).ok_or_else(|| {
        Error::Usage(format!(
            "malformed prefix {s:?}: the length must be a number 0-{max}"
        ))
    })?;
    let net = network(addr, len);
    if net != addr {
        return Err(Error::Usage(format!(
            "malformed prefix {s:?}: host bits are set; the prefix is {net}/{len}"
        )));
    }
    Ok(Prefix { addr, len })
}

/// Parses an IPv4 or IPv6 address.
pub fn address(s: &str) -> Result<IpAddr, Error> {
    let s = s.trim();
    s.parse().map_err(|_| {
        if s.contains('/') {
            Error::Usage(format!(
                "{s:?} is a prefix; lookup takes an address (e.g. 192.0.2.1); use `ribctl show route {s}` \
                 for a prefix"
            ))
        } else {
            Error::Usage(format!(
                "malformed address {s:?}: expected an IPv4 or IPv6 address (e.g. 192.0.2.1 or 2001:db8::1)"
            ))
        }
    })
}

const WELL_KNOWN: &[&str] = &[
    "graceful-shutdown",
    "accept-own",
    "llgr-stale",
    "no-llgr",
    "blackhole",
    "no-export",
    "no-advertise",
    "no-export-subconfed",
    "no-peer",
];

/// Checks a community filter: `ASN:VALUE` (16-bit each) or a well-known name, the forms ribd's
/// `community=` query filters on.
pub fn community(s: &str) -> Result<String, Error> {
    let s = s.trim();
    let bad = |why: String| {
        Error::Usage(format!(
            "malformed community {s:?}: {why}; expected ASN:VALUE (e.g. 65000:100) or a well-known \
             name ({})",
            WELL_KNOWN.join(", ")
        ))
    };
    if let Some(w) = WELL_KNOWN.iter().find(|w| w.eq_ignore_ascii_case(s)) {
        return Ok((*w).to_string());
    }
    let parts: Vec<&str> = s.split(':').collect();
    match parts.as_slice() {
        [a, b] => {
            for x in [a, b] {
                x.parse::<u16>()
                    .map_err(|_| bad(format!("{x:?} is not a number 0-65535")))?;
            }
        }
        [_, _, _] => {
            return Err(bad(
                "large and extended communities cannot be filtered on yet".to_string(),
            ));
        }
        _ => return Err(bad("not ASN:VALUE".to_string())),
    }
    Ok(s.to_string())
}

/// Checks an AS-path regex as ribd compiles it (`_` stands for an AS boundary).
pub fn as_path(s: &str) -> Result<String, Error> {
    let translated = s.replace('_', r"\b");
    regex::Regex::new(&translated).map_err(|e| {
        Error::Usage(format!(
            "malformed AS-path regex {s:?}: {e}\n(examples: `^65001_` paths learned from AS 65001, \
             `_65010$` originated by AS 65010, `_174_` through AS 174)"
        ))
    })?;
    Ok(s.to_string())
}

/// Checks a neighbour given on the command line: a name from the config or an address.
pub fn peer(s: &str) -> Result<String, Error> {
    let s = s.trim();
    if s.is_empty() || s.chars().any(|c| c.is_control() || c == '/') {
        return Err(Error::Usage(format!(
            "malformed neighbour {s:?}: give its name from the config or its address"
        )));
    }
    Ok(s.to_string())
}
