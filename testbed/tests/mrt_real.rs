//! The MRT reader (RFC 6396) on the real RouteViews excerpts Debian's python3-pyasn ships, and the
//! writer → reader round trip. The excerpts are the first MiB of bzip2 files: the stream is cut, and
//! so is the last MRT record.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use testbed::mrt::{self, Attributes, Peer, Rib};

fn data(f: &str) -> PathBuf {
    Path::new(testbed::tablegen::PYASN_DATA).join(f)
}

fn route<'a>(rib: &'a Rib, prefix: &str, peer_as: u32) -> &'a mrt::RibRoute {
    let p: IpNet = prefix.parse().unwrap();
    rib.routes
        .iter()
        .find(|r| r.prefix == p && rib.peers[r.peer].asn == peer_as)
        .unwrap_or_else(|| panic!("no {prefix} from AS{peer_as}"))
}

#[test]
fn table_dump_v2_ipv4_excerpt_rfc6396_4_3() {
    let rib = mrt::read_rib_file(&data("rib.20140523.0600_firstMB.bz2")).unwrap();
    assert!(rib.truncated, "the excerpt ends inside a record");
    assert_eq!(rib.peers.len(), 47);
    // `bzip2 -dc` yields 9,069 complete RIB records with 269,914 entries; the Rust decoder also keeps
    // part of the cut block, so a few more.
    assert!(
        (9_069..9_200).contains(&rib.records),
        "{} records",
        rib.records
    );
    assert!(rib.routes.len() >= 269_914, "{} routes", rib.routes.len());
    assert_eq!(rib.prefixes().len(), rib.records);
    assert!(
        rib.routes
            .iter()
            .all(|r| r.peer < rib.peers.len() && r.prefix.addr().is_ipv4())
    );

    let d = route(&rib, "0.0.0.0/0", 2905);
    assert_eq!(d.attrs.path(), vec![2905, 65023, 16637]);
    assert_eq!(d.attrs.med, Some(0));
    let g = route(&rib, "1.0.0.0/24", 701);
    assert_eq!(g.attrs.path(), vec![701, 6453, 15169]);
    assert_eq!(g.attrs.origin_as(), Some(15169));
    assert_eq!(
        g.attrs.next_hop,
        Some(IpAddr::V4(Ipv4Addr::new(157, 130, 10, 233)))
    );
    assert_eq!(rib.peers[g.peer].bgp_id, Ipv4Addr::new(137, 39, 3, 60));
    let c = route(&rib, "1.0.0.0/24", 7660);
    assert_eq!(c.attrs.communities, vec![502005765]); // 7660:9001

    let full = rib.fullest_peer().unwrap();
    assert_eq!(rib.peers[full].asn, 8492);
    // Real tables carry communities: a good share of the routes do.
    let with_comm = rib
        .routes
        .iter()
        .filter(|r| !r.attrs.communities.is_empty())
        .count();
    assert!(
        with_comm * 4 > rib.routes.len(),
        "{with_comm} of {} with communities",
        rib.routes.len()
    );
}

#[test]
fn table_dump_v2_ipv6_excerpt_rfc6396_4_3_4() {
    let rib = mrt::read_rib_file(&data("rib6.20151101.0600_firstMB.bz2")).unwrap();
    assert!(rib.truncated);
    assert_eq!(rib.peers.len(), 29);
    assert!(
        (6_869..7_000).contains(&rib.records),
        "{} records",
        rib.records
    );
    assert!(rib.routes.len() >= 149_561);
    assert!(rib.routes.iter().all(|r| r.prefix.addr().is_ipv6()));
    // Next hops come from MP_REACH_NLRI.
    assert!(
        rib.routes
            .iter()
            .all(|r| matches!(r.attrs.next_hop, Some(IpAddr::V6(_))))
    );
    let r = route(&rib, "2001::/32", 3257);
    assert_eq!(r.attrs.path(), vec![3257, 1103, 1101]);
    assert_eq!(r.attrs.med, Some(70));
    assert_eq!(r.attrs.communities.len(), 6);
}

#[test]
fn table_dump_v1_excerpt_rfc6396_4_2() {
    let rib = mrt::read_rib_file(&data("rib.20080501.0644_firstMB.bz2")).unwrap();
    assert!(rib.truncated);
    assert!(rib.records >= 139_274, "{} records", rib.records);
    assert_eq!(rib.routes.len(), rib.records); // v1: one entry per record
    assert_eq!(rib.peers.len(), 44);
    let r = route(&rib, "3.0.0.0/8", 13237);
    assert_eq!(r.attrs.path(), vec![13237, 3320, 1239, 701, 703, 80]);
    assert_eq!(r.attrs.communities.len(), 9);
    assert_eq!(r.attrs.origin_as(), Some(80));
}

#[test]
fn writer_then_reader_round_trips_real_entries() {
    let src = mrt::read_rib_file(&data("rib.20140523.0600_firstMB.bz2")).unwrap();
    let src6 = mrt::read_rib_file(&data("rib6.20151101.0600_firstMB.bz2")).unwrap();
    let mut buf = Vec::new();
    let mut w = mrt::Writer::new(
        &mut buf,
        1_400_000_000,
        Ipv4Addr::new(192, 0, 2, 1),
        &src.peers,
    )
    .unwrap();
    // Raw attributes as they were, grouped per prefix, for the first 2,000 prefixes.
    let mut written = Vec::new();
    let mut i = 0;
    while i < src.routes.len() && written.len() < 2_000 {
        let p = src.routes[i].prefix;
        let group: Vec<_> = src.routes[i..]
            .iter()
            .take_while(|r| r.prefix == p)
            .collect();
        let entries: Vec<(u16, &[u8])> = group
            .iter()
            .map(|r| (r.peer as u16, r.raw.as_slice()))
            .collect();
        w.rib(p, &entries).unwrap();
        written.extend(
            group
                .iter()
                .map(|r| (r.peer, r.prefix, r.raw.clone(), r.attrs.clone())),
        );
        i += group.len();
    }
    w.finish().unwrap();
    let back = mrt::read_rib(&buf).unwrap();
    assert!(!back.truncated);
    assert_eq!(back.peers, src.peers);
    let got: Vec<_> = back
        .routes
        .iter()
        .map(|r| (r.peer, r.prefix, r.raw.clone(), r.attrs.clone()))
        .collect();
    assert_eq!(got, written);

    // Re-encoding the parsed attributes (IPv4 and IPv6 next hops) gives the same parsed attributes.
    for r in src
        .routes
        .iter()
        .take(5_000)
        .chain(src6.routes.iter().take(5_000))
    {
        if !r.attrs.other.is_empty() || r.attrs.as_path.iter().any(|(_, a)| a.len() > 255) {
            continue; // the encoder writes only the attributes it parses
        }
        let mut raw = Vec::new();
        mrt::encode_attributes(&r.attrs, &mut raw);
        let again: Attributes = mrt::parse_attributes(&raw, true).unwrap();
        assert_eq!(again, r.attrs, "{}", r.prefix);
    }

    // An IPv6 peer and a 4-octet AS survive the peer index table.
    let peers = vec![Peer {
        bgp_id: Ipv4Addr::new(10, 0, 0, 1),
        addr: "2001:db8::1".parse().unwrap(),
        asn: 4_200_000_001,
    }];
    let mut buf = Vec::new();
    mrt::Writer::new(&mut buf, 0, Ipv4Addr::new(10, 0, 0, 9), &peers)
        .unwrap()
        .finish()
        .unwrap();
    assert_eq!(mrt::read_rib(&buf).unwrap().peers, peers);
}
