//! Tests of the attribute representation and the interner.
use super::*;

#[test]
fn as_path_length_counts_set_as_one_and_confed_as_zero_rfc4271_9_1_2_2_a() {
    let p = AsPath::from_segments([
        (SegmentKind::ConfedSequence, &[65001, 65002][..]),
        (SegmentKind::Sequence, &[1, 2, 3][..]),
        (SegmentKind::Set, &[4, 5, 6][..]),
    ]);
    assert_eq!(p.selection_len(), 4);
    assert_eq!(p.neighbor_as(), Some(1));
    assert_eq!(p.origin_as(), None);
    assert_eq!(p.to_string(), "(65001 65002) 1 2 3 {4,5,6}");
}

#[test]
fn prepend_extends_the_leading_sequence() {
    let mut p = AsPath::sequence(vec![2, 3]);
    p.prepend(1, 2);
    assert_eq!(p.to_string(), "1 1 2 3");
    let mut empty = AsPath::default();
    empty.prepend(7, 1);
    assert_eq!(empty.to_string(), "7");
}

#[test]
fn interning_shares_equal_sets_and_frees_unused_ones() {
    let mut store = AttrStore::new();
    let a = Attrs::default().with_med(Some(5));
    let x = store.intern(a.clone());
    let y = store.intern(a);
    assert!(AttrRef::ptr_eq(&x, &y));
    assert_eq!(store.len(), 1);
    store.release(x);
    assert_eq!(store.len(), 1, "still referenced by y");
    store.release(y);
    assert_eq!(store.len(), 0);
}

#[test]
fn link_bandwidth_is_read_from_the_extended_community() {
    let bw = 125_000_000f32.to_be_bytes();
    let a = Attrs::default()
        .with_ext_communities([[0x40, 0x04, 0xFD, 0xE8, bw[0], bw[1], bw[2], bw[3]]]);
    assert_eq!(a.link_bandwidth(), Some(125_000_000.0));
}

#[test]
fn rare_attributes_leave_no_box_behind() {
    let mut a = Attrs::default().with_originator_id(Some(Ipv4Addr::new(10, 0, 0, 1)));
    assert!(a.rare().is_some());
    assert_ne!(a, Attrs::default());
    a.set_originator_id(None);
    assert!(a.rare().is_none(), "emptied rare attributes are dropped");
    assert_eq!(a, Attrs::default());
    assert_eq!(hash_of(&a), hash_of(&Attrs::default()));
    a.set_aggregator(None);
    assert!(
        a.rare().is_none(),
        "setting an absent one to nothing allocates nothing"
    );
}

#[test]
fn serialised_form_lists_every_attribute_and_segments_as_before() {
    let a = Attrs::default()
        .with_as_path(AsPath::from_segments([
            (SegmentKind::Sequence, &[64500, 3356][..]),
            (SegmentKind::Set, &[1, 2][..]),
        ]))
        .with_communities([0xFFFF_FF01])
        .with_cluster_list(vec![Ipv4Addr::new(10, 0, 0, 9)])
        .with_next_hop_ll(Some("fe80::1".parse().unwrap()));
    let v = serde_json::to_value(&a).unwrap();
    assert_eq!(
        v["as_path"],
        serde_json::json!({"segments": [
            {"kind": "sequence", "asns": [64500, 3356]},
            {"kind": "set", "asns": [1, 2]},
        ]})
    );
    assert_eq!(v["cluster_list"], serde_json::json!(["10.0.0.9"]));
    assert_eq!(v["next_hop_ll"], serde_json::json!("fe80::1"));
    assert_eq!(v["ext_communities"], serde_json::json!([]));
    let back: Attrs = serde_json::from_value(v).unwrap();
    assert_eq!(back, a);
}

#[test]
fn as_path_segments_read_back_in_order() {
    let p = AsPath::from_segments([
        (SegmentKind::Sequence, &[1, 2][..]),
        (SegmentKind::Set, &[][..]),
        (SegmentKind::ConfedSet, &[7][..]),
    ]);
    let segs: Vec<Segment> = p.segments().map(SegmentRef::to_owned).collect();
    assert_eq!(
        segs,
        vec![
            Segment {
                kind: SegmentKind::Sequence,
                asns: Box::new([1, 2])
            },
            Segment {
                kind: SegmentKind::ConfedSet,
                asns: Box::new([7])
            },
        ]
    );
    assert_eq!(p.heap_bytes(), 5 * 4);
    assert!(AsPath::sequence(Vec::new()).is_empty());
}

fn hash_of(a: &Attrs) -> u64 {
    use std::hash::BuildHasher;
    rustc_hash::FxBuildHasher.hash_one(a)
}

/// Blocks and rare-attribute records alive on this thread.
pub(super) fn live_blocks() -> (isize, isize) {
    (LIVE_BLOCKS.with(|c| c.get()), LIVE_RARE.with(|c| c.get()))
}

/// Every attribute, as plain fields: what a set must read back.
#[derive(Debug, Clone, PartialEq, Default)]
struct Model {
    origin: Origin,
    atomic_aggregate: bool,
    as_path: AsPath,
    next_hop: Option<IpAddr>,
    med: Option<u32>,
    local_pref: Option<u32>,
    communities: Vec<u32>,
    weight: u32,
    next_hop_ll: Option<Ipv6Addr>,
    aggregator: Option<(u32, Ipv4Addr)>,
    originator_id: Option<Ipv4Addr>,
    cluster_list: Vec<Ipv4Addr>,
    ext_communities: Vec<[u8; 8]>,
    large_communities: Vec<LargeCommunity>,
    unknown: Vec<RawAttr>,
}

impl Model {
    fn read(a: &Attrs) -> Model {
        Model {
            origin: a.origin(),
            atomic_aggregate: a.atomic_aggregate(),
            as_path: a.as_path().to_owned(),
            next_hop: a.next_hop(),
            med: a.med(),
            local_pref: a.local_pref(),
            communities: a.communities().to_vec(),
            weight: a.weight(),
            next_hop_ll: a.next_hop_ll(),
            aggregator: a.aggregator(),
            originator_id: a.originator_id(),
            cluster_list: a.cluster_list().to_vec(),
            ext_communities: a.ext_communities().to_vec(),
            large_communities: a.large_communities().to_vec(),
            unknown: a.unknown().to_vec(),
        }
    }

    /// Built in one go (`Attrs::new`), rare attributes set afterwards.
    fn build(&self) -> Attrs {
        Attrs::new(&CommonAttrs {
            origin: self.origin,
            atomic_aggregate: self.atomic_aggregate,
            as_path: &self.as_path,
            next_hop: self.next_hop,
            med: self.med,
            local_pref: self.local_pref,
            communities: &self.communities,
            weight: self.weight,
        })
        .with_next_hop_ll(self.next_hop_ll)
        .with_aggregator(self.aggregator)
        .with_originator_id(self.originator_id)
        .with_cluster_list(self.cluster_list.clone())
        .with_ext_communities(self.ext_communities.clone())
        .with_large_communities(self.large_communities.clone())
        .with_unknown(self.unknown.clone())
    }
}

fn full() -> Model {
    Model {
        origin: Origin::Egp,
        atomic_aggregate: true,
        as_path: AsPath::from_segments([
            (SegmentKind::ConfedSequence, &[65001][..]),
            (SegmentKind::Sequence, &[64500, 3356, 15169][..]),
            (SegmentKind::Set, &[1, 2][..]),
        ]),
        next_hop: Some("2001:db8::1:2:3".parse().unwrap()),
        med: Some(0),
        local_pref: Some(u32::MAX),
        communities: vec![0xFFFF_FF01, 1, 2],
        weight: 7,
        next_hop_ll: Some("fe80::1".parse().unwrap()),
        aggregator: Some((64500, Ipv4Addr::new(192, 0, 2, 1))),
        originator_id: Some(Ipv4Addr::new(10, 0, 0, 1)),
        cluster_list: vec![Ipv4Addr::new(10, 0, 0, 9)],
        ext_communities: vec![[0, 2, 0, 1, 0, 0, 0, 7]],
        large_communities: vec![LargeCommunity {
            global: 64500,
            local1: 1,
            local2: 2,
        }],
        unknown: vec![RawAttr {
            flags: 0xC0,
            type_code: 99,
            value: Box::new([1, 2, 3]),
        }],
    }
}

#[test]
fn every_attribute_kind_round_trips_through_the_block() {
    let before = live_blocks();
    for m in [
        full(),
        Model {
            next_hop: Some("192.0.2.7".parse().unwrap()),
            ..full()
        },
        Model::default(),
    ] {
        let a = m.build();
        assert_eq!(Model::read(&a), m);
        let back: Attrs = serde_json::from_value(serde_json::to_value(&a).unwrap()).unwrap();
        assert_eq!(back, a);
        assert_eq!(Model::read(&a.clone()), m);
        let mut store = AttrStore::new();
        let r = store.intern(a);
        assert_eq!(Model::read(&r), m, "read through a shared handle");
        assert_eq!(
            r.addr() % 8,
            0,
            "table::Paths tags the low bit of the pointer"
        );
        store.release(r);
    }
    assert_eq!(live_blocks(), before, "every block freed");
    assert_eq!(std::mem::size_of::<Attrs>(), 8);
    assert_eq!(std::mem::size_of::<AttrRef>(), 8);
}

#[test]
fn a_typical_ipv4_set_is_one_block_of_56_bytes() {
    let a = Attrs::default()
        .with_next_hop(Some("192.0.2.1".parse().unwrap()))
        .with_med(Some(10))
        .with_as_path(AsPath::sequence(vec![64500, 174, 3356, 6939, 15169]))
        .with_communities([1, 2]);
    assert_eq!(a.block_bytes(), 16 + 4 * (1 + 1 + 6 + 2));
    assert_eq!(a.rare_bytes(), 0);
    assert_eq!(Attrs::default().block_bytes(), 16);
}

/// Interning through several growths of the table: every set is found again by content (the same
/// block) after the table re-placed its slots, different sets stay apart, reference counts are the
/// store's one plus the handles, and releasing them all empties the store and frees every block.
#[test]
fn interned_sets_are_found_again_after_the_table_grows() {
    let before = live_blocks();
    let set = |i: u32| {
        Attrs::default()
            .with_as_path(AsPath::sequence(vec![64500, i]))
            .with_med(i.is_multiple_of(3).then_some(i))
    };
    let mut store = AttrStore::new();
    let first: Vec<AttrRef> = (0..5000).map(|i| store.intern(set(i))).collect();
    assert_eq!(store.len(), 5000);
    let again: Vec<AttrRef> = (0..5000).map(|i| store.intern(set(i))).collect();
    for (i, (a, b)) in first.iter().zip(&again).enumerate() {
        assert!(AttrRef::ptr_eq(a, b), "set {i} found again");
        assert_eq!(a.ref_count(), 3, "the store's, and two handles");
        assert_eq!(a.as_path().origin_as(), Some(i as u32));
    }
    assert_eq!(store.len(), 5000);
    for a in first {
        store.release(a);
    }
    assert_eq!(store.len(), 5000, "each still held once");
    for a in again.into_iter().rev() {
        store.release(a);
    }
    assert!(store.is_empty());
    assert_eq!(live_blocks(), before, "every block freed");
}

#[test]
fn a_copy_of_a_shared_set_is_its_own() {
    // `Deref` lends the shared block as `&Attrs`: `clone` must copy it, never share it, or
    // changing the copy would change every route holding the set.
    let mut store = AttrStore::new();
    let r = store.intern(full().build());
    let mut mine = (*r).clone();
    mine.set_med(Some(5));
    mine.set_local_pref(None);
    mine.set_communities([9]);
    mine.set_originator_id(None);
    mine.set_weight(0);
    assert_eq!(Model::read(&r), full(), "the shared set is unchanged");
    assert_ne!(mine, *r);
    assert_ne!(mine.addr_for_test(), r.addr());
    assert_eq!(r.ref_count(), 2, "the copy took no reference");
    drop(mine);
    store.release(r);
    assert!(store.is_empty());
}

#[test]
fn the_last_handle_frees_the_set_whichever_thread_drops_the_others() {
    let before = live_blocks();
    let mut store = AttrStore::new();
    let r = store.intern(full().build());
    let one = (before.0 + 1, before.1 + 1);
    assert_eq!(live_blocks(), one, "the probe became the stored block");
    let hit = store.intern(full().build());
    assert!(AttrRef::ptr_eq(&r, &hit));
    assert_eq!(live_blocks(), one, "a hit frees the probe");
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let mut held = Vec::new();
                for i in 0..10_000 {
                    held.push(r.clone());
                    if i % 3 == 0 {
                        held.clear();
                    }
                }
            });
        }
    });
    assert_eq!(r.ref_count(), 3, "store + two handles");
    store.release(hit);
    assert_eq!(store.len(), 1);
    store.release(r);
    assert_eq!(store.len(), 0);
    assert_eq!(live_blocks(), before, "count 0: freed");
    let u = AttrRef::unshared(Attrs::default());
    let v = u.clone();
    drop(u);
    assert_eq!(live_blocks(), (before.0 + 1, before.1));
    drop(v);
    assert_eq!(live_blocks(), before);
}

#[derive(Debug, Clone)]
enum Edit {
    Origin(u8),
    Atomic(bool),
    Path(Vec<u32>),
    Prepend(u32, u8),
    NextHop(Option<IpAddr>),
    Med(Option<u32>),
    LocalPref(Option<u32>),
    Communities(Vec<u32>),
    Weight(u32),
    NextHopLl(Option<Ipv6Addr>),
    OriginatorId(Option<Ipv4Addr>),
    ClusterList(Vec<Ipv4Addr>),
    Large(Vec<u32>),
}

fn edit() -> impl proptest::strategy::Strategy<Value = Edit> {
    use proptest::prelude::*;
    let nh = prop_oneof![
        Just(None),
        any::<u32>().prop_map(|a| Some(IpAddr::V4(a.into()))),
        any::<u128>().prop_map(|a| Some(IpAddr::V6(a.into()))),
    ];
    let small = || prop_oneof![Just(None), (0u32..3).prop_map(Some)];
    prop_oneof![
        (0u8..3).prop_map(Edit::Origin),
        any::<bool>().prop_map(Edit::Atomic),
        proptest::collection::vec(0u32..5, 0..4).prop_map(Edit::Path),
        (0u32..5, 0u8..3).prop_map(|(a, n)| Edit::Prepend(a, n)),
        nh.prop_map(Edit::NextHop),
        small().prop_map(Edit::Med),
        small().prop_map(Edit::LocalPref),
        proptest::collection::vec(0u32..3, 0..3).prop_map(Edit::Communities),
        (0u32..2).prop_map(Edit::Weight),
        prop_oneof![Just(None), Just(Some(Ipv6Addr::LOCALHOST))].prop_map(Edit::NextHopLl),
        prop_oneof![Just(None), Just(Some(Ipv4Addr::LOCALHOST))].prop_map(Edit::OriginatorId),
        proptest::collection::vec(Just(Ipv4Addr::LOCALHOST), 0..2).prop_map(Edit::ClusterList),
        proptest::collection::vec(0u32..2, 0..2).prop_map(Edit::Large),
    ]
}

fn apply(e: &Edit, a: &mut Attrs, m: &mut Model) {
    match e.clone() {
        Edit::Origin(o) => {
            let o = [Origin::Igp, Origin::Egp, Origin::Incomplete][o as usize];
            a.set_origin(o);
            m.origin = o;
        }
        Edit::Atomic(v) => {
            a.set_atomic_aggregate(v);
            m.atomic_aggregate = v;
        }
        Edit::Path(p) => {
            a.set_as_path(AsPath::sequence(p.clone()));
            m.as_path = AsPath::sequence(p);
        }
        Edit::Prepend(asn, n) => {
            a.prepend_as_path(asn, n.into());
            m.as_path.prepend(asn, n.into());
        }
        Edit::NextHop(v) => {
            a.set_next_hop(v);
            m.next_hop = v;
        }
        Edit::Med(v) => {
            a.set_med(v);
            m.med = v;
        }
        Edit::LocalPref(v) => {
            a.set_local_pref(v);
            m.local_pref = v;
        }
        Edit::Communities(v) => {
            a.set_communities(v.clone());
            m.communities = v;
        }
        Edit::Weight(v) => {
            a.set_weight(v);
            m.weight = v;
        }
        Edit::NextHopLl(v) => {
            a.set_next_hop_ll(v);
            m.next_hop_ll = v;
        }
        Edit::OriginatorId(v) => {
            a.set_originator_id(v);
            m.originator_id = v;
        }
        Edit::ClusterList(v) => {
            a.set_cluster_list(v.clone());
            m.cluster_list = v;
        }
        Edit::Large(v) => {
            let l: Vec<LargeCommunity> = v
                .iter()
                .map(|&x| LargeCommunity {
                    global: x,
                    local1: 0,
                    local2: 0,
                })
                .collect();
            a.set_large_communities(l.clone());
            m.large_communities = l;
        }
    }
}

proptest::proptest! {
    /// The one-sequence shortcut of the selection length and neighbouring AS agrees with reading
    /// the segments, for any path (confederation segments, sets, several sequences, empty).
    #[test]
    fn selection_length_and_neighbour_as_agree_with_the_segments(
        segs in proptest::collection::vec((0u32..4, proptest::collection::vec(1u32..6, 0..4)), 0..4)
    ) {
        let p = AsPath::from_segments(segs.iter().map(|(k, a)| (SegmentKind::from_code(*k), &a[..])));
        let len: u32 = p.segments().map(|s| match s.kind {
            SegmentKind::Sequence => s.asns.len() as u32,
            SegmentKind::Set => 1,
            SegmentKind::ConfedSequence | SegmentKind::ConfedSet => 0,
        }).sum();
        let neighbor = p
            .segments()
            .find(|s| matches!(s.kind, SegmentKind::Sequence | SegmentKind::Set))
            .and_then(|s| (s.kind == SegmentKind::Sequence).then(|| s.asns[0]));
        proptest::prop_assert_eq!(p.selection_len_and_neighbor(), (len, neighbor));
        proptest::prop_assert_eq!(p.selection_len(), len);
        proptest::prop_assert_eq!(p.neighbor_as(), neighbor);
    }

    /// What selection reads in one pass is what the accessors read one by one, for any set.
    #[test]
    fn selection_reads_what_the_accessors_read(edits in proptest::collection::vec(edit(), 0..24)) {
        let mut a = Attrs::default();
        let mut m = Model::default();
        for e in &edits {
            apply(e, &mut a, &mut m);
            let (med, local_pref, weight) = a.med_local_pref_weight();
            let (as_path_len, neighbor_as) = a.as_path().selection_len_and_neighbor();
            let want = SelectionAttrs {
                next_hop: a.next_hop(),
                origin: a.origin(),
                med,
                local_pref,
                weight,
                as_path_len,
                neighbor_as,
                originator_id: a.originator_id(),
                cluster_len: a.cluster_list().len() as u32,
            };
            proptest::prop_assert_eq!(a.for_selection(), want, "after {:?}", e);
            proptest::prop_assert_eq!((med, local_pref, weight), (m.med, m.local_pref, m.weight));
        }
    }

    /// Any sequence of changes reads back as the model says, and the set is equal to (and hashes
    /// like, and interns to the same block as) the same attributes built in one go: equality and
    /// hashing see content only, however the block was arrived at (in place or rebuilt).
    #[test]
    fn changes_read_back_and_equal_sets_hash_alike(edits in proptest::collection::vec(edit(), 0..24)) {
        let before = live_blocks();
        {
            let mut a = Attrs::default();
            let mut m = Model::default();
            let mut store = AttrStore::new();
            let mut held = Vec::new();
            for e in &edits {
                apply(e, &mut a, &mut m);
                proptest::prop_assert_eq!(Model::read(&a), m.clone(), "after {:?}", e);
                let b = m.build();
                proptest::prop_assert_eq!(&a, &b);
                proptest::prop_assert_eq!(hash_of(&a), hash_of(&b));
                let x = store.intern(a.clone());
                let y = store.intern(b);
                proptest::prop_assert!(AttrRef::ptr_eq(&x, &y));
                held.push(x);
                held.push(y);
            }
            // Distinct models give distinct sets.
            for (i, x) in held.iter().enumerate() {
                for y in &held[i + 1..] {
                    proptest::prop_assert_eq!(AttrRef::ptr_eq(x, y), Model::read(x) == Model::read(y));
                }
            }
            for h in held {
                store.release(h);
            }
            proptest::prop_assert!(store.is_empty());
        }
        proptest::prop_assert_eq!(live_blocks(), before, "no block leaked or freed twice");
    }
}

#[test]
fn handles_counted_ahead_give_back_the_ones_not_taken_and_the_last_one_frees_the_set() {
    let before = live_blocks();
    let mut store = AttrStore::new();
    let r = store.intern(full().build());
    let mut spare = r.clones(3);
    assert_eq!(r.ref_count(), 5, "store + r + three counted ahead");
    let taken = spare.next().expect("one of three");
    assert!(AttrRef::ptr_eq(&r, &taken));
    drop(spare);
    assert_eq!(r.ref_count(), 3, "the two not taken were given back");
    assert_eq!(r.clones(0).count(), 0);
    assert_eq!(r.ref_count(), 3, "none counted for none");
    drop(taken);
    store.release(r);
    assert_eq!(store.len(), 0);
    assert_eq!(live_blocks(), before, "count 0: freed");

    // Spare handles that outlive every other holder free the set when given back.
    let u = AttrRef::unshared(Attrs::default());
    let spare = u.clones(2);
    drop(u);
    assert_eq!(live_blocks(), (before.0 + 1, before.1));
    drop(spare);
    assert_eq!(live_blocks(), before);
}

#[test]
fn interning_with_handles_counted_ahead_counts_a_new_set_and_a_stored_one_alike() {
    let before = live_blocks();
    let mut store = AttrStore::new();
    let (a, spare) = store.intern_counted(full().build(), 2);
    assert_eq!(a.ref_count(), 4, "new: store + handle + two ahead");
    let held: Vec<AttrRef> = spare.collect();
    let (b, spare) = store.intern_counted(full().build(), 3);
    assert!(AttrRef::ptr_eq(&a, &b));
    assert_eq!(store.len(), 1);
    assert_eq!(a.ref_count(), 8, "stored: one handle and three ahead more");
    drop(spare);
    drop(held);
    store.release(b);
    assert_eq!(store.len(), 1, "a still holds it");
    store.release(a);
    assert_eq!(store.len(), 0);
    assert_eq!(live_blocks(), before, "count 0: freed");
}
