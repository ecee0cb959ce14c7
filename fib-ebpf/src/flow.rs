//! The forwarder's flow hash and bucket choice, computed in userspace exactly as `forward.bpf.c` does
//! (`hash.h`), so tools can say which next-hop a given flow takes without sending a packet.
//!
//! Words are fed as the program loads them: addresses and the L4 port pair as they sit in the packet,
//! read as native-endian u32.

use std::net::{Ipv4Addr, Ipv6Addr};

fn hash_word(mut h: u32, mut k: u32) -> u32 {
    k = k.wrapping_mul(0xcc9e_2d51);
    k = k.rotate_left(15);
    k = k.wrapping_mul(0x1b87_3593);
    h ^= k;
    h = h.rotate_left(13);
    h.wrapping_mul(5).wrapping_add(0xe654_6b64)
}

fn hash_final(mut h: u32, len: u32) -> u32 {
    h ^= len;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

/// The port word: the first four bytes of a TCP/UDP/SCTP header, 0 for other protocols (and for
/// non-first fragments, which the caller handles by passing `None`).
fn ports_word(proto: u8, ports: Option<(u16, u16)>) -> u32 {
    match (proto, ports) {
        (6 | 17 | 132, Some((s, d))) => {
            let (s, d) = (s.to_be_bytes(), d.to_be_bytes());
            u32::from_ne_bytes([s[0], s[1], d[0], d[1]])
        }
        _ => 0,
    }
}

/// Flow hash of an IPv4 packet (5-tuple for TCP/UDP/SCTP, 3-tuple otherwise).
pub fn flow_hash_v4(
    seed: u32,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    ports: Option<(u16, u16)>,
) -> u32 {
    let mut h = hash_word(seed, u32::from_ne_bytes(src.octets()));
    h = hash_word(h, u32::from_ne_bytes(dst.octets()));
    h = hash_word(h, ports_word(proto, ports));
    hash_final(h, u32::from(proto))
}

/// Flow hash of an IPv6 packet.
pub fn flow_hash_v6(
    seed: u32,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    proto: u8,
    ports: Option<(u16, u16)>,
) -> u32 {
    let mut h = seed;
    for a in [src, dst] {
        for w in a.octets().chunks_exact(4) {
            h = hash_word(h, u32::from_ne_bytes([w[0], w[1], w[2], w[3]]));
        }
    }
    h = hash_word(h, ports_word(proto, ports));
    hash_final(h, u32::from(proto))
}

/// The bucket of a group of `n_buckets` a hash selects (multiply-shift, as the program does).
pub fn bucket_of(hash: u32, n_buckets: usize) -> usize {
    ((u64::from(hash) * n_buckets as u64) >> 32) as usize
}
