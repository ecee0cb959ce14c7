//! Edge cases of the [`Paths`] representation: inline path ↔ column block, the optional path-id
//! column, replacement at every position, permutation, extraction, in-place changes, and that
//! every attribute handle is released exactly once (reference counts back to where they started).

use proptest::prelude::*;

use super::{Path, PathRef, Paths, PeerId, flags};
use crate::rib::attrs::{AttrRef, AttrStore, Attrs};

/// `n` distinct interned sets (MED 0..n) and the store holding them.
fn sets(n: u32) -> (AttrStore, Vec<AttrRef>) {
    let mut store = AttrStore::new();
    let v = (0..n)
        .map(|i| store.intern(Attrs::default().with_med(Some(i))))
        .collect();
    (store, v)
}

fn counts(v: &[AttrRef]) -> Vec<usize> {
    v.iter().map(AttrRef::ref_count).collect()
}

/// (peer, path id, index of the set in `sets`, flags) of every path, in order.
fn content(e: &Paths, sets: &[AttrRef]) -> Vec<(PeerId, u32, usize, u8)> {
    e.iter()
        .map(|p| (p.peer, p.path_id, index_of(p, sets), p.flags))
        .collect()
}

fn index_of(p: PathRef<'_>, sets: &[AttrRef]) -> usize {
    sets.iter()
        .position(|a| AttrRef::ptr_eq(a, p.attrs))
        .expect("a known set")
}

/// Peers in rank (arrival) order.
fn arrival(e: &Paths) -> Vec<PeerId> {
    let mut v: Vec<PathRef<'_>> = e.iter().collect();
    v.sort_by_key(|p| p.rank);
    v.iter().map(|p| p.peer).collect()
}

#[test]
fn one_to_four_paths_and_back_keep_every_path_the_count_and_the_block_size() {
    let (_store, s) = sets(4);
    let base = counts(&s);
    {
        let mut e = Paths::one(Path::new(0, 0, s[0].clone()));
        e.set_multipath(1);
        assert_eq!((e.len(), e.multipath(), e.heap_bytes()), (1, 1, 0));
        for n in 1..4u16 {
            assert!(
                e.push_newest(Path::new(n, 0, s[n as usize].clone()), None)
                    .is_none()
            );
            let len = n as usize + 1;
            assert_eq!(e.len(), len);
            assert_eq!(
                e.multipath(),
                1,
                "adding a path keeps the count until selection"
            );
            assert_eq!(
                e.heap_bytes(),
                12 * 4,
                "attribute pointer + peer/flags/rank, no ids, room for 4"
            );
            let want: Vec<_> = (0..=n).map(|i| (i, 0, i as usize, 0)).collect();
            assert_eq!(content(&e, &s), want);
            assert_eq!(arrival(&e), (0..=n).collect::<Vec<_>>());
            assert_eq!(e.best().map(|b| b.peer), Some(0));
        }
        e.set_multipath(3);
        assert_eq!(e.forwarding().len(), 3);
        assert_eq!(
            e.forwarding().iter().map(|p| p.peer).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        // And back: 4 → 3 → 2 → 1 → none.
        let mut e = Some(e);
        for n in (0..4u16).rev() {
            let (removed, kept) = e.take().unwrap().extract(|p| p.peer == n);
            assert_eq!(removed.len(), 1);
            assert_eq!(removed[0].peer, n);
            assert!(AttrRef::ptr_eq(&removed[0].attrs, &s[n as usize]));
            match kept {
                None => assert_eq!(n, 0),
                Some(k) => {
                    assert_eq!(k.len(), n as usize);
                    assert_eq!(k.multipath(), 0, "selection runs again after an extraction");
                    assert_eq!(k.heap_bytes(), if n > 1 { 12 * n as usize } else { 0 });
                    let want: Vec<_> = (0..n).map(|i| (i, 0, i as usize, 0)).collect();
                    assert_eq!(content(&k, &s), want);
                    e = Some(k);
                }
            }
        }
        assert!(e.is_none());
    }
    assert_eq!(counts(&s), base, "every handle released once");
}

/// A block grows in its spare room (2 → 3 → 4 paths in one allocation, then 5 → 8 in the next),
/// and `shrink` makes it exact, keeping every path; a shrunk block grows with room again.
#[test]
fn a_block_grows_in_its_spare_room_and_shrink_makes_it_exact() {
    let (_store, s) = sets(9);
    let base = counts(&s);
    for id in [0u32, 5] {
        let per = if id != 0 { 16 } else { 12 };
        let mut e = Paths::one(Path::new(0, id, s[0].clone()));
        let mut blocks = Vec::new();
        for n in 1..9u16 {
            e.push_newest(Path::new(n, id, s[n as usize].clone()), None);
            blocks.push(e.as_slice().attrs.as_ptr() as usize);
            let len = n as usize + 1;
            assert_eq!(
                e.heap_bytes(),
                per * len.max(4).next_power_of_two(),
                "{len} paths"
            );
        }
        assert!(
            blocks[..3].iter().all(|&b| b == blocks[0]),
            "2-4 paths: one block"
        );
        assert!(
            blocks[3..7].iter().all(|&b| b == blocks[3]),
            "5-8 paths: the next"
        );
        assert_ne!(blocks[7], blocks[3], "9 paths: a block with room for 16");
        let released = e.shrink();
        assert_eq!(
            (released, e.heap_bytes()),
            (per * 7, per * 9),
            "room for 16, 9 used"
        );
        let want: Vec<_> = (0..9u16).map(|i| (i, id, i as usize, 0)).collect();
        assert_eq!(content(&e, &s), want);
        let (_, kept) = e.extract(|p| p.peer >= 3);
        let mut e = kept.unwrap();
        assert_eq!(e.heap_bytes(), per * 3, "extraction leaves the block exact");
        e.push_newest(Path::new(3, id, s[3].clone()), None);
        assert_eq!(e.heap_bytes(), per * 4);
        let (_, kept) = e.extract(|p| p.peer == 3);
        let mut e = kept.unwrap();
        e.push_newest(Path::new(4, id, s[4].clone()), None);
        e.push_newest(Path::new(5, id, s[5].clone()), None);
        e.permute(&[3, 1, 0, 2]);
        e.set_multipath(2);
        let before = content(&e, &s);
        assert_eq!(e.heap_bytes(), per * 8, "4 → 5 paths: room for 8");
        assert_eq!(e.shrink(), per * 3);
        assert_eq!(e.heap_bytes(), per * 5);
        assert_eq!(content(&e, &s), before, "every column moved with its paths");
        assert_eq!(e.multipath(), 2);
        assert_eq!(e.shrink(), 0, "exact already");
    }
    assert_eq!(counts(&s), base, "every handle released once");
}

#[test]
fn replacing_at_every_position_returns_the_old_path_and_makes_the_new_one_newest() {
    let (_store, s) = sets(8);
    let base = counts(&s);
    for n in 1..=5usize {
        for at in 0..n {
            for id in [0u32, 7] {
                let v: Vec<Path> = (0..n)
                    .map(|i| Path::new(i as PeerId, 0, s[i].clone()))
                    .collect();
                let mut e = if n == 1 {
                    Paths::one(v.into_iter().next().unwrap())
                } else {
                    let mut e = Paths::one(v[0].clone());
                    for p in v.into_iter().skip(1) {
                        e.push_newest(p, None);
                    }
                    e
                };
                e.set_multipath(1);
                let old = e
                    .push_newest(Path::new(at as PeerId, id, s[7].clone()), Some(at))
                    .expect("a path replaced");
                assert_eq!((old.peer, old.path_id), (at as PeerId, 0));
                assert!(AttrRef::ptr_eq(&old.attrs, &s[at]));
                drop(old);
                let got = content(&e, &s);
                for (i, g) in got.iter().enumerate() {
                    let want = if i == at {
                        (at as PeerId, id, 7, 0)
                    } else {
                        (i as PeerId, 0, i, 0)
                    };
                    assert_eq!(*g, want, "n {n} at {at} id {id} position {i}");
                }
                assert_eq!(e.multipath(), 1, "the count stays (n {n} at {at})");
                if n > 1 {
                    assert_eq!(arrival(&e).last(), Some(&(at as PeerId)), "newest");
                    let per = if id != 0 { 16 } else { 12 };
                    e.shrink();
                    assert_eq!(e.heap_bytes(), per * n, "id column only when needed");
                }
            }
        }
    }
    assert_eq!(counts(&s), base);
}

#[test]
fn path_ids_survive_every_move_of_the_block() {
    let (_store, s) = sets(6);
    let base = counts(&s);
    {
        // An inline path with an id, then paths with and without ids.
        let mut e = Paths::one(Path::new(0, 11, s[0].clone()));
        assert_eq!(e.get(0).map(|p| p.path_id), Some(11));
        e.push_newest(Path::new(1, 0, s[1].clone()), None);
        e.push_newest(Path::new(2, 12, s[2].clone()), None);
        assert_eq!(e.heap_bytes(), 16 * 4, "room for 4");
        assert_eq!(e.shrink(), 16);
        assert_eq!(e.heap_bytes(), 16 * 3);
        assert_eq!(
            content(&e, &s),
            [(0, 11, 0, 0), (1, 0, 1, 0), (2, 12, 2, 0)]
        );
        // A block without ids gains the column when a path with an id arrives.
        let mut f = Paths::from_vec(vec![
            Path::new(0, 0, s[0].clone()),
            Path::new(1, 0, s[1].clone()),
        ])
        .unwrap();
        assert_eq!(f.heap_bytes(), 24);
        f.push_newest(Path::new(5, 99, s[5].clone()), None);
        assert_eq!(f.heap_bytes(), 16 * 4);
        f.shrink();
        assert_eq!(f.heap_bytes(), 48);
        assert_eq!(content(&f, &s), [(0, 0, 0, 0), (1, 0, 1, 0), (5, 99, 5, 0)]);
        // Clone, permute, extract: the ids go with their paths.
        let c = e.clone();
        e.permute(&[2, 0, 1]);
        assert_eq!(
            content(&e, &s),
            [(2, 12, 2, 0), (0, 11, 0, 0), (1, 0, 1, 0)]
        );
        assert_eq!(
            content(&c, &s),
            [(0, 11, 0, 0), (1, 0, 1, 0), (2, 12, 2, 0)]
        );
        let (removed, kept) = e.extract(|p| p.path_id != 0);
        assert_eq!(
            removed.iter().map(|p| p.path_id).collect::<Vec<_>>(),
            [12, 11]
        );
        let kept = kept.unwrap();
        assert_eq!(content(&kept, &s), [(1, 0, 1, 0)]);
        // Rebuilt without ids when none is left.
        let (_, kept) = f.extract(|p| p.path_id != 0);
        assert_eq!(kept.unwrap().heap_bytes(), 24);
        assert_eq!(
            c.iter().rev().map(|p| p.path_id).collect::<Vec<_>>(),
            [12, 0, 11]
        );
    }
    assert_eq!(counts(&s), base);
}

#[test]
fn permute_moves_every_column_together_for_every_order() {
    let (_store, s) = sets(5);
    let base = counts(&s);
    for n in 2..=5 {
        for order in super::tests::perms(n) {
            let v: Vec<Path> = (0..n)
                .map(|i| {
                    let mut p =
                        Path::new(i as PeerId, 100 + i as u32 * (i as u32 % 2), s[i].clone());
                    p.flags = i as u8;
                    p.rank = 10 + i as u8;
                    p
                })
                .collect();
            let mut e = Paths::from_vec(v).unwrap();
            e.set_multipath(2);
            e.permute(&order);
            for (pos, &i) in order.iter().enumerate() {
                let p = e.get(pos).unwrap();
                assert_eq!(
                    (p.peer, p.path_id, index_of(p, &s), p.flags, p.rank),
                    (
                        i as PeerId,
                        100 + i as u32 * (i as u32 % 2),
                        i,
                        i as u8,
                        10 + i as u8
                    )
                );
            }
            assert_eq!(e.multipath(), 2);
        }
    }
    assert_eq!(counts(&s), base);
}

#[test]
fn changes_in_place_reach_the_inline_path_and_every_block_path() {
    let (_store, s) = sets(4);
    let base = counts(&s);
    {
        let mut one = Paths::one(Path::new(3, 5, s[0].clone()));
        one.set_multipath(1);
        for p in one.iter_mut() {
            assert_eq!((p.peer, p.path_id), (3, 5));
            *p.flags |= flags::STALE;
            drop(std::mem::replace(p.attrs, s[3].clone()));
        }
        assert_eq!(content(&one, &s), [(3, 5, 3, flags::STALE)]);
        assert_eq!(one.multipath(), 1, "the lone path's count is not its flags");

        let mut e = Paths::from_vec(
            (0..3)
                .map(|i| Path::new(i, 0, s[i as usize].clone()))
                .collect(),
        )
        .unwrap();
        for p in e.iter_mut().filter(|p| p.peer != 1) {
            *p.flags |= flags::NH_DOWN;
            drop(std::mem::replace(p.attrs, s[3].clone()));
        }
        if let Some(p) = e.get_mut(1) {
            *p.flags = flags::LLGR_STALE;
        }
        assert_eq!(
            content(&e, &s),
            [
                (0, 0, 3, flags::NH_DOWN),
                (1, 0, 1, flags::LLGR_STALE),
                (2, 0, 3, flags::NH_DOWN)
            ]
        );
        assert_eq!(s[3].ref_count(), base[3] + 3);
    }
    assert_eq!(counts(&s), base);
}

#[test]
fn the_placeholder_entry_holds_nothing_and_becomes_a_lone_path() {
    let (_store, s) = sets(1);
    let base = counts(&s);
    {
        let e = Paths::default();
        assert_eq!((e.len(), e.heap_bytes(), e.multipath()), (0, 0, 0));
        assert!(e.iter().next().is_none() && e.best().is_none());
        let c = e.clone();
        assert!(c.is_empty());
        let mut e = e;
        assert!(e.push_newest(Path::new(4, 0, s[0].clone()), None).is_none());
        assert_eq!((e.len(), e.heap_bytes()), (1, 0));
        assert_eq!(content(&e, &s), [(4, 0, 0, 0)]);
        assert_eq!(Paths::default().into_vec().len(), 0);
    }
    assert_eq!(counts(&s), base);
}

#[test]
fn slices_read_like_slices() {
    let (_store, s) = sets(4);
    let e = Paths::from_vec(
        (0..4)
            .map(|i| Path::new(i, 0, s[i as usize].clone()))
            .collect(),
    )
    .unwrap();
    let all = e.as_slice();
    assert_eq!(all.len(), 4);
    assert_eq!(
        all.slice(1..3).iter().map(|p| p.peer).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(all.slice(2..).at(0).peer, 2);
    assert_eq!(all.slice(..=1).len(), 2);
    assert!(all.slice(4..).is_empty() && all.get(4).is_none());
    assert_eq!(
        all.iter().rev().map(|p| p.peer).collect::<Vec<_>>(),
        [3, 2, 1, 0]
    );
    assert_eq!(all.iter().nth(2).map(|p| p.peer), Some(2));
    assert_eq!(all.iter().len(), 4);
    assert_eq!((&e).into_iter().count(), 4);
    assert!(std::panic::catch_unwind(|| all.at(4)).is_err());
    assert!(std::panic::catch_unwind(|| all.slice(3..5)).is_err());
}

#[derive(Debug, Clone)]
enum Op {
    /// A path from (peer, path id) with this set, replacing the one it has, if any.
    Announce(PeerId, u32, usize),
    /// Remove the peer's paths.
    Withdraw(PeerId),
    SetMultipath(usize),
    /// Reverse, then rotate by this much (a permutation).
    Shuffle(usize),
    /// OR these flags into the peer's paths (in place).
    Flag(PeerId, u8),
    Clone,
    Shrink,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0..5 as PeerId, prop_oneof![3 => Just(0u32), 1 => 1..3u32], 0..3usize)
            .prop_map(|(p, id, a)| Op::Announce(p, id, a)),
        2 => (0..5 as PeerId).prop_map(Op::Withdraw),
        1 => (0..7usize).prop_map(Op::SetMultipath),
        2 => (0..5usize).prop_map(Op::Shuffle),
        1 => (0..5 as PeerId, 1..8u8).prop_map(|(p, f)| Op::Flag(p, f)),
        1 => Just(Op::Clone),
        1 => Just(Op::Shrink),
    ]
}

/// A model path: (peer, path id, set index, flags).
type M = (PeerId, u32, usize, u8);

proptest! {
    /// With ADD-PATH ids and flags changed in place, the column entry behaves as a vector of paths
    /// with a multipath count: the same paths in the same order, newest-last ranks, a block of 12 B
    /// per path (16 with an id), deep clones, and every handle released once.
    #[test]
    fn paths_with_ids_behave_like_a_vector(ops in prop::collection::vec(op(), 1..150)) {
        let (_store, s) = sets(3);
        let base = counts(&s);
        {
            let mut model: Vec<M> = Vec::new();
            let mut arrival: Vec<(PeerId, u32)> = Vec::new();
            let mut mp = 0usize;
            let mut e: Option<Paths> = None;
            let mut clones: Vec<(Paths, Vec<M>, usize)> = Vec::new();
            for op in ops {
                match op {
                    Op::Announce(peer, id, a) => {
                        let p = Path::new(peer, id, s[a].clone());
                        match e.as_mut() {
                            None => {
                                e = Some(Paths::one(p));
                                model.push((peer, id, a, 0));
                                mp = 0;
                            }
                            Some(x) => {
                                let at = x.iter().position(|q| q.peer == peer && q.path_id == id);
                                let old = x.push_newest(p, at);
                                prop_assert_eq!(old.is_some(), at.is_some());
                                match at {
                                    Some(i) => {
                                        let o = old.unwrap();
                                        prop_assert_eq!((o.peer, o.path_id), (model[i].0, model[i].1));
                                        model[i] = (peer, id, a, 0);
                                    }
                                    None => model.push((peer, id, a, 0)),
                                }
                            }
                        }
                        arrival.retain(|&q| q != (peer, id));
                        arrival.push((peer, id));
                    }
                    Op::Withdraw(peer) => {
                        if let Some(x) = e.take() {
                            let (removed, kept) = x.extract(|q| q.peer == peer);
                            let had = model.iter().filter(|m| m.0 == peer).count();
                            prop_assert_eq!(removed.len(), had);
                            model.retain(|m| m.0 != peer);
                            arrival.retain(|q| q.0 != peer);
                            e = kept;
                            mp = 0;
                        }
                    }
                    Op::SetMultipath(n) => {
                        if let Some(x) = e.as_mut() {
                            x.set_multipath(n);
                            mp = n.min(model.len());
                        }
                    }
                    Op::Shuffle(r) => {
                        if let Some(x) = e.as_mut() {
                            let n = model.len();
                            let order: Vec<usize> = (0..n).map(|i| (n - 1 - i + r) % n).collect();
                            x.permute(&order);
                            if n > 1 {
                                model = order.iter().map(|&i| model[i]).collect();
                            }
                        }
                    }
                    Op::Flag(peer, f) => {
                        if let Some(x) = e.as_mut() {
                            for p in x.iter_mut().filter(|p| p.peer == peer) {
                                *p.flags |= f;
                            }
                            for m in model.iter_mut().filter(|m| m.0 == peer) {
                                m.3 |= f;
                            }
                        }
                    }
                    Op::Clone => {
                        if let Some(x) = &e {
                            clones.push((x.clone(), model.clone(), mp));
                        }
                    }
                    Op::Shrink => {
                        if let Some(x) = e.as_mut() {
                            let before = x.heap_bytes();
                            let released = x.shrink();
                            prop_assert_eq!(before - released, x.heap_bytes());
                            let n = model.len();
                            let per = if x.as_slice().ids.is_empty() { 12 } else { 16 };
                            prop_assert_eq!(x.heap_bytes(), if n > 1 { per * n } else { 0 }, "exact");
                        }
                    }
                }
                prop_assert_eq!(e.is_none(), model.is_empty());
                if let Some(x) = &e {
                    prop_assert_eq!(&content(x, &s), &model);
                    prop_assert_eq!(x.len(), model.len());
                    prop_assert_eq!(x.multipath(), mp);
                    prop_assert_eq!(x.forwarding().len(), mp);
                    prop_assert_eq!(x.best().is_some(), mp > 0);
                    if model.len() > 1 {
                        let mut v: Vec<PathRef<'_>> = x.iter().collect();
                        v.sort_by_key(|p| p.rank);
                        let order: Vec<(PeerId, u32)> = v.iter().map(|p| (p.peer, p.path_id)).collect();
                        prop_assert_eq!(&order, &arrival);
                        // Exact, or with room up to the size class (see `capacity`).
                        let n = model.len();
                        let cap = super::capacity(n, true);
                        let fits = |per: usize| x.heap_bytes() == per * n || x.heap_bytes() == per * cap;
                        if model.iter().any(|m| m.1 != 0) {
                            prop_assert!(fits(16));
                        } else {
                            prop_assert!(fits(12) || fits(16));
                        }
                    } else {
                        prop_assert_eq!(x.heap_bytes(), 0);
                    }
                }
            }
            for (c, m, mp) in &clones {
                prop_assert_eq!(&content(c, &s), m);
                prop_assert_eq!(c.multipath(), *mp);
            }
        }
        prop_assert_eq!(counts(&s), base);
    }
}
