//! Allocation accounting on the decode path, with a counting global allocator (this test binary only):
//! decoding an UPDATE costs the same number of allocations whatever its number of prefixes (zero per prefix),
//! and decoding arbitrary bytes never allocates more than a fixed multiple of the input's length.

use bgp::wire::attr::as_path::AsPath;
use bgp::wire::attr::community::Community;
use bgp::wire::attr::mp::{MpReach, NextHop};
use bgp::wire::attr::{Origin, PathAttributes};
use bgp::wire::{AfiSafi, Context, Message, Nlri, Update};
use proptest::prelude::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static COUNT: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let _ = COUNT.try_with(|c| {
            let (n, b) = c.get();
            c.set((n + 1, b + l.size()));
        });
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let _ = COUNT.try_with(|c| {
            let (n, b) = c.get();
            c.set((n + 1, b + new));
        });
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// (allocations, bytes allocated) while running `f` on this thread.
fn counted<T>(f: impl FnOnce() -> T) -> (usize, usize, T) {
    let before = COUNT.with(|c| c.get());
    let r = f();
    let after = COUNT.with(|c| c.get());
    (after.0 - before.0, after.1 - before.1, r)
}

fn attrs() -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::sequence([65001, 3356, 1299, 4_200_000_000])),
        next_hop: Some("192.0.2.1".parse().unwrap()),
        med: Some(10),
        communities: vec![Community::new(3356, 2), Community::new(3356, 500)],
        ..Default::default()
    }
}

fn v4_update(n: u32) -> Vec<u8> {
    let nlri = (0..n)
        .map(|i| Nlri::new(format!("10.{}.{}.0/24", i / 256, i % 256).parse().unwrap()))
        .collect();
    let u = Update {
        attrs: attrs(),
        nlri,
        ..Default::default()
    };
    Message::Update(u)
        .to_bytes(&Context::four_octet())
        .unwrap()
        .to_vec()
}

fn v6_update(n: u32) -> Vec<u8> {
    let nlri = (0..n)
        .map(|i| Nlri::new(format!("2001:db8:{i:x}::/48").parse().unwrap()))
        .collect();
    let mut a = attrs();
    a.next_hop = None;
    let mp = MpReach {
        afi_safi: AfiSafi::IPV6_UNICAST,
        next_hop: NextHop::Ipv6 {
            global: "2001:db8::1".parse().unwrap(),
            link_local: Some("fe80::1".parse().unwrap()),
        },
        nlri,
        flowspec: Vec::new(),
        opaque_nlri: vec![],
    };
    let u = Update {
        attrs: a,
        mp_reach: Some(mp),
        ..Default::default()
    };
    Message::Update(u)
        .to_bytes(&Context::four_octet())
        .unwrap()
        .to_vec()
}

#[test]
fn update_decode_allocations_do_not_grow_with_prefixes() {
    let ctx = Context::four_octet();
    for make in [v4_update as fn(u32) -> Vec<u8>, v6_update] {
        let counts: Vec<usize> = [1, 2, 10, 30, 150]
            .iter()
            .map(|&n| {
                let b = make(n);
                let (allocs, _, m) = counted(|| Message::decode(&b, &ctx));
                let Ok(Message::Update(u)) = m else {
                    panic!("decode failed")
                };
                assert_eq!(u.prefix_count(), n as usize);
                allocs
            })
            .collect();
        assert!(
            counts.windows(2).all(|w| w[0] == w[1]),
            "allocations per UPDATE vary with prefix count: {counts:?}"
        );
        // AS path (segment list + ASes), communities, the NLRI vector: a handful per UPDATE.
        assert!(counts[0] <= 6, "{counts:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// Every allocation is justified by the input: at most 48 octets allocated per input octet (an IPv4 /0
    /// prefix is one octet on the wire and one 28-octet `Nlri` in memory) plus a constant.
    #[test]
    fn arbitrary_bytes_allocate_in_proportion_to_input(body in proptest::collection::vec(any::<u8>(), 0..2000), four in any::<bool>()) {
        let ctx = Context { four_octet_as: four, ..Context::default() };
        let mut b = vec![0xff; 16];
        b.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
        b.push(2);
        b.extend_from_slice(&body);
        let (_, bytes, _) = counted(|| Message::decode(&b, &ctx));
        prop_assert!(bytes <= 48 * b.len() + 1024, "{} octets allocated for {} of input", bytes, b.len());
    }
}
