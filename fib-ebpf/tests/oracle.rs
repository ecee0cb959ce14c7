//! Oracle property test: after random insert/delete sequences, the DIR-24-8 tables (read back
//! through the program with BPF_PROG_TEST_RUN), the BPF LPM trie (also through the program) and a
//! plain Rust longest match over the prefix set give the same answer for random and boundary
//! addresses. Needs root.

mod common;

use std::collections::HashMap;
use std::net::Ipv4Addr;

use common::*;
use fib_ebpf::abi::{FibVal, Nh};
use fib_ebpf::{Dir24, Engine4, Forwarder, LoadOptions};
use proptest::prelude::*;

const LO: u32 = 1;
const VALUES: u32 = 48; // path-lists 16..64, each to its own next-hop

fn load(engine: Engine4) -> Forwarder {
    let mut fwd = Forwarder::load_with(&LoadOptions {
        engine4: engine,
        ..Default::default()
    })
    .expect("load");
    let m = fwd.maps_mut();
    m.tx_port_add(LO).unwrap();
    for pl in 16..16 + VALUES {
        let n = Nh {
            ifindex: LO,
            smac: [2, 0, 0, 0, 0, 1],
            dmac: [2, 0, 0, 0, (pl >> 8) as u8, pl as u8],
            vlan: 0,
            flags: 0,
            _pad: 0,
        };
        m.nh_write(pl, &n).unwrap();
        m.nhg_write(pl, &[pl]).unwrap();
        m.pathlist_set(pl, pl).unwrap();
    }
    fwd
}

/// The path-list the program chose for `dst` (0 when it passed the frame: no route).
fn answer(fwd: &mut Forwarder, dst: Ipv4Addr) -> u32 {
    let f = cat(&[
        &eth(DMAC_IN, SMAC_IN, None, 0x0800),
        &ipv4(Ipv4Addr::new(1, 1, 1, 1), dst, 64, 17, &ports(1, 2)),
    ]);
    let (a, out) = run(fwd.program().unwrap(), &f);
    match a {
        XDP_REDIRECT => u32::from(out[4]) << 8 | u32::from(out[5]),
        XDP_PASS => 0,
        other => panic!("unexpected action {other} for {dst}"),
    }
}

fn mask(a: u32, l: u8) -> u32 {
    if l == 0 {
        0
    } else {
        a & (u32::MAX << (32 - l))
    }
}

fn reference(rules: &HashMap<(u32, u8), u32>, a: u32) -> u32 {
    (0..=32u8)
        .rev()
        .find_map(|l| rules.get(&(mask(a, l), l)).copied())
        .unwrap_or(0)
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u32, u8, u32),
    Delete(usize),
}

/// Addresses concentrated in a few /16s so prefixes nest and overlap at every length.
fn addr() -> impl Strategy<Value = u32> {
    (
        prop::sample::select(vec![0x0a00_0000u32, 0x0a01_0000, 0xc0a8_0000, 0xcb00_7100]),
        any::<u16>(),
    )
        .prop_map(|(base, low)| base | u32::from(low))
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (addr(), prop_oneof![1 => 0u8..=12, 6 => 13u8..=24, 6 => 25u8..=32], 16..16 + VALUES).prop_map(|(a, l, v)| Op::Insert(a, l, v)),
        1 => any::<usize>().prop_map(Op::Delete),
    ]
}

/// Loaded once: map sets are large, and loading them per case would dominate the run time. Each case
/// starts by deleting whatever the previous one (or a failed, shrinking one) left installed.
struct World {
    d24: Forwarder,
    lpm: Forwarder,
    dir: Dir24,
    installed: Vec<(u32, u8)>,
}

impl World {
    fn clear(&mut self) {
        for (a, l) in self.installed.drain(..) {
            self.dir
                .delete(self.d24.maps_mut(), Ipv4Addr::from(a), l)
                .unwrap();
            self.lpm.maps().fib4_remove(Ipv4Addr::from(a), l).unwrap();
        }
        self.dir.commit();
        self.dir.commit();
        assert!(self.dir.rules.is_empty());
        assert_eq!(
            self.dir.groups_in_use(),
            0,
            "deleting everything unlinks every group"
        );
    }
}

#[test]
fn dir24_lpm_trie_and_reference_agree() {
    let dir = Dir24::new(fib_ebpf::abi::DIR8_MAX_GROUPS, std::time::Duration::ZERO);
    let world = std::cell::RefCell::new(World {
        d24: load(Engine4::Dir24),
        lpm: load(Engine4::Lpm),
        dir,
        installed: Vec::new(),
    });
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 5,
        ..ProptestConfig::default()
    });
    let strategy = (
        prop::collection::vec(op(), 1000..2000),
        prop::collection::vec(addr(), 300),
    );
    let result = runner.run(&strategy, |(ops, probes)| {
        let mut w = world.borrow_mut();
        w.clear();
        let World {
            d24,
            lpm,
            dir,
            installed,
        } = &mut *w;
        let mut rules: HashMap<(u32, u8), u32> = HashMap::new();
        for (i, o) in ops.iter().enumerate() {
            match *o {
                Op::Insert(a, l, v) => {
                    let a = mask(a, l);
                    dir.insert(d24.maps_mut(), Ipv4Addr::from(a), l, v).unwrap();
                    lpm.maps()
                        .fib4_insert(Ipv4Addr::from(a), l, FibVal { pl_id: v, flags: 0 })
                        .unwrap();
                    if rules.insert((a, l), v).is_none() {
                        installed.push((a, l));
                    }
                }
                Op::Delete(k) if !installed.is_empty() => {
                    let (a, l) = installed.swap_remove(k % installed.len());
                    rules.remove(&(a, l));
                    prop_assert!(dir.delete(d24.maps_mut(), Ipv4Addr::from(a), l).unwrap());
                    lpm.maps().fib4_remove(Ipv4Addr::from(a), l).unwrap();
                }
                Op::Delete(_) => {}
            }
            if i % 500 == 0 {
                dir.commit();
            }
        }
        // Random addresses plus the first/last address of every prefix and their neighbours.
        let mut addrs: Vec<u32> = probes;
        for &(a, l) in installed.iter().take(400) {
            let last = a | if l == 32 { 0 } else { u32::MAX >> l };
            addrs.extend([a, last, a.wrapping_sub(1), last.wrapping_add(1)]);
        }
        // Multicast and broadcast destinations are passed to the kernel before any lookup.
        for a in addrs.into_iter().filter(|&a| a < 0xe000_0000) {
            let want = reference(&rules, a);
            let ip = Ipv4Addr::from(a);
            prop_assert_eq!(
                fib_ebpf::dir24::lookup(d24.maps(), ip),
                want,
                "DIR-24-8 read back from the mmapped maps, {}",
                ip
            );
            prop_assert_eq!(
                answer(d24, ip),
                want,
                "DIR-24-8 through the program, {}",
                ip
            );
            prop_assert_eq!(
                answer(lpm, ip),
                want,
                "LPM trie through the program, {}",
                ip
            );
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
