//! NLRI: IPv4/IPv6 prefixes, optionally preceded by an ADD-PATH path identifier (RFC 4271 §4.3, RFC 4760 §5,
//! RFC 7911 §3).
//!
//! ```text
//! +---------------------------+
//! | Path Identifier (4 octets)|   only when ADD-PATH is negotiated for this AFI/SAFI and direction
//! +---------------------------+
//! |   Length (1 octet)        |   prefix length in bits
//! +---------------------------+
//! |   Prefix (variable)       |   ceil(length / 8) octets, trailing bits ignored
//! +---------------------------+
//! ```
//!
//! Decoding is two passes over the same bytes: [`validate`] checks the whole field and counts the prefixes
//! (no allocation), then [`NlriIter`] yields them without any allocation, or [`decode_into`] pushes them into a
//! vector sized once from the count.

use bytes::{BufMut, BytesMut};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, Ipv6Addr};

/// One prefix, with its ADD-PATH path identifier when the session negotiated one for its family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Nlri {
    pub prefix: IpNet,
    pub path_id: Option<u32>,
}

impl Nlri {
    pub fn new(prefix: IpNet) -> Self {
        Nlri {
            prefix,
            path_id: None,
        }
    }

    pub fn with_path_id(prefix: IpNet, path_id: u32) -> Self {
        Nlri {
            prefix,
            path_id: Some(path_id),
        }
    }

    /// Octets this NLRI takes on the wire.
    pub fn wire_len(&self, add_path: bool) -> usize {
        (if add_path { 4 } else { 0 }) + 1 + usize::from(self.prefix.prefix_len()).div_ceil(8)
    }

    /// Appends the NLRI; the path identifier is written (0 if absent) only when `add_path` is set.
    pub fn encode(&self, add_path: bool, buf: &mut BytesMut) {
        if add_path {
            buf.put_u32(self.path_id.unwrap_or(0));
        }
        let len = self.prefix.prefix_len();
        buf.put_u8(len);
        let n = usize::from(len).div_ceil(8);
        match self.prefix {
            IpNet::V4(p) => buf.put_slice(&p.network().octets()[..n]),
            IpNet::V6(p) => buf.put_slice(&p.network().octets()[..n]),
        }
    }
}

impl From<IpNet> for Nlri {
    fn from(p: IpNet) -> Self {
        Nlri::new(p)
    }
}

/// Address family of a prefix field: how many bits a prefix may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    fn max_bits(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }
}

/// The prefix field is malformed: a length above 32/128 bits, or a prefix or path identifier overrunning it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidNlri;

/// Checks a whole NLRI field and returns the number of prefixes in it. Never allocates.
pub fn validate(mut buf: &[u8], family: Family, add_path: bool) -> Result<usize, InvalidNlri> {
    let max = family.max_bits();
    let mut n = 0;
    while !buf.is_empty() {
        if add_path {
            buf = buf.get(4..).ok_or(InvalidNlri)?;
        }
        let (&len, rest) = buf.split_first().ok_or(InvalidNlri)?;
        if len > max {
            return Err(InvalidNlri);
        }
        buf = rest
            .get(usize::from(len).div_ceil(8)..)
            .ok_or(InvalidNlri)?;
        n += 1;
    }
    Ok(n)
}

/// Iterates over the prefixes of a field that [`validate`] accepted. On bytes it did not accept, the iterator
/// stops at the first malformed prefix (it never panics).
#[derive(Debug, Clone)]
pub struct NlriIter<'a> {
    buf: &'a [u8],
    family: Family,
    add_path: bool,
}

impl<'a> NlriIter<'a> {
    pub fn new(buf: &'a [u8], family: Family, add_path: bool) -> Self {
        NlriIter {
            buf,
            family,
            add_path,
        }
    }
}

impl Iterator for NlriIter<'_> {
    type Item = Nlri;

    #[inline]
    fn next(&mut self) -> Option<Nlri> {
        let mut b = self.buf;
        let path_id = if self.add_path {
            let id = b.get(..4)?;
            b = &b[4..];
            Some(u32::from_be_bytes([id[0], id[1], id[2], id[3]]))
        } else {
            None
        };
        let (&len, rest) = b.split_first()?;
        let n = usize::from(len).div_ceil(8);
        let bytes = rest.get(..n)?;
        if len > self.family.max_bits() {
            return None;
        }
        let prefix = match self.family {
            Family::V4 => {
                IpNet::V4(Ipv4Net::new(Ipv4Addr::from(read_v4(len, bytes, rest)), len).ok()?)
            }
            Family::V6 => {
                IpNet::V6(Ipv6Net::new(Ipv6Addr::from(read_v6(len, bytes, rest)), len).ok()?)
            }
        };
        self.buf = &rest[n..];
        Some(Nlri { prefix, path_id })
    }
}

/// The address of an IPv4 prefix of `len` bits whose octets are `bytes`, host bits cleared. `rest` is the
/// field from the prefix on: when 4 octets are there, one load and a mask replace the octet-by-octet copy.
#[inline(always)]
fn read_v4(len: u8, bytes: &[u8], rest: &[u8]) -> u32 {
    let raw = match rest {
        [a, b, c, d, ..] => u32::from_be_bytes([*a, *b, *c, *d]),
        _ => bytes
            .iter()
            .enumerate()
            .fold(0, |w, (i, &o)| w | u32::from(o) << (24 - 8 * i)),
    };
    raw & u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

/// As [`read_v4`] for IPv6.
#[inline(always)]
fn read_v6(len: u8, bytes: &[u8], rest: &[u8]) -> u128 {
    let raw = match rest.first_chunk::<16>() {
        Some(c) => u128::from_be_bytes(*c),
        None => bytes
            .iter()
            .enumerate()
            .fold(0, |w, (i, &o)| w | u128::from(o) << (120 - 8 * i)),
    };
    raw & u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

/// Validates a field and appends its prefixes to `out`, growing it at most once.
pub fn decode_into(
    buf: &[u8],
    family: Family,
    add_path: bool,
    out: &mut Vec<Nlri>,
) -> Result<(), InvalidNlri> {
    let n = validate(buf, family, add_path)?;
    out.reserve(n);
    out.extend(NlriIter::new(buf, family, add_path));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_prefixes_rfc4271_4_3() {
        let b = [24, 192, 0, 2, 0, 10, 0, 0];
        assert_eq!(validate(&b, Family::V4, false), Ok(3));
        let v: Vec<_> = NlriIter::new(&b, Family::V4, false).collect();
        assert_eq!(v[0].prefix, "192.0.2.0/24".parse::<IpNet>().unwrap());
        assert_eq!(v[1].prefix, "0.0.0.0/0".parse::<IpNet>().unwrap());
        assert_eq!(v[2].prefix, "0.0.0.0/10".parse::<IpNet>().unwrap());
    }

    #[test]
    fn add_path_ids_rfc7911_3() {
        let b = [0, 0, 0, 7, 64, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0];
        let v: Vec<_> = NlriIter::new(&b, Family::V6, true).collect();
        assert_eq!(
            v,
            vec![Nlri::with_path_id("2001:db8::/64".parse().unwrap(), 7)]
        );
        let mut out = BytesMut::new();
        v[0].encode(true, &mut out);
        assert_eq!(&out[..], &b);
    }

    #[test]
    fn overruns_and_long_prefixes_are_invalid_rfc7606_5_3() {
        assert_eq!(
            validate(&[33, 1, 2, 3, 4, 5], Family::V4, false),
            Err(InvalidNlri)
        );
        assert_eq!(validate(&[24, 1, 2], Family::V4, false), Err(InvalidNlri));
        assert_eq!(validate(&[0, 0, 0], Family::V4, true), Err(InvalidNlri));
        assert_eq!(validate(&[129], Family::V6, false), Err(InvalidNlri));
    }

    #[test]
    fn trailing_host_bits_are_cleared() {
        let v: Vec<_> = NlriIter::new(&[23, 10, 0, 3], Family::V4, false).collect();
        assert_eq!(v[0].prefix, "10.0.2.0/23".parse::<IpNet>().unwrap());
    }
}
