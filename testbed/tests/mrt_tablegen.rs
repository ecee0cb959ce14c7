//! The full-table generator: determinism, scale, distributions against the real data, the compact
//! file and the MRT writer round trips.

use std::collections::HashSet;
use std::path::Path;

use ipnet::IpNet;
use testbed::mrt;
use testbed::tablegen::{self, Config, Table, generate, length_histogram, read_ipasn};

fn small(seed: u64) -> Config {
    Config {
        seed,
        v4_count: 60_000,
        v6_count: 20_000,
        ..Config::default()
    }
}

/// Share of each prefix length among `prefixes`.
fn shares<'a>(prefixes: impl Iterator<Item = &'a IpNet>) -> Vec<f64> {
    let h = length_histogram(prefixes);
    let n: usize = h.iter().sum();
    h.iter().map(|&x| x as f64 / n as f64).collect()
}

/// Total variation distance between two distributions.
fn tvd(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f64>() / 2.0
}

#[test]
fn same_seed_same_table_other_seed_other_table() {
    let a = generate(&small(7)).unwrap();
    let b = generate(&small(7)).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.len(), 80_000);
    let c = generate(&small(8)).unwrap();
    assert_ne!(a.routes, c.routes);
}

#[test]
fn full_scale_table_has_real_prefixes_lengths_paths_and_sharing() {
    let cfg = Config::default();
    let t = generate(&cfg).unwrap();
    let v4: Vec<IpNet> = t
        .routes
        .iter()
        .map(|(p, _)| *p)
        .filter(|p| p.addr().is_ipv4())
        .collect();
    let v6: Vec<IpNet> = t
        .routes
        .iter()
        .map(|(p, _)| *p)
        .filter(|p| p.addr().is_ipv6())
        .collect();
    assert_eq!((v4.len(), v6.len()), (1_050_000, 240_000));
    let all: HashSet<IpNet> = t.routes.iter().map(|(p, _)| *p).collect();
    assert_eq!(all.len(), t.len(), "prefixes are unique");

    // Every real prefix is in, with its real origin.
    let d = Path::new(tablegen::PYASN_DATA);
    let real4 = read_ipasn(&d.join(tablegen::IPASN_V4)).unwrap();
    let index: std::collections::HashMap<IpNet, u32> = t
        .routes
        .iter()
        .map(|(p, a)| (*p, *t.attrs[*a as usize].as_path.last().unwrap()))
        .collect();
    for (p, origin) in real4.iter().step_by(97) {
        assert_eq!(index.get(p), Some(origin), "{p}");
    }
    assert_eq!(
        t.route(0).unwrap().prefix,
        "1.0.0.0/24".parse::<IpNet>().unwrap()
    );
    assert_eq!(t.route(0).unwrap().origin_as, 15169);

    // Prefix-length mix close to the real lists'.
    let real6: Vec<IpNet> = read_ipasn(&d.join(tablegen::IPASN_V6))
        .unwrap()
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| p.addr().is_ipv6())
        .collect();
    let real4p: Vec<IpNet> = real4.iter().map(|(p, _)| *p).collect();
    let (d4, d6) = (
        tvd(&shares(v4.iter()), &shares(real4p.iter())),
        tvd(&shares(v6.iter()), &shares(real6.iter())),
    );
    assert!(
        d4 < 0.03,
        "IPv4 length mix differs from the real one by {d4:.3}"
    );
    assert!(
        d6 < 0.03,
        "IPv6 length mix differs from the real one by {d6:.3}"
    );
    let s24 = shares(v4.iter())[24];
    assert!((0.5..0.56).contains(&s24), "/24 share {s24:.3}"); // real list: 270,023 / 512,621 = 0.527

    // Paths and sharing follow the excerpts' views.
    let inputs = tablegen::Inputs::load(d).unwrap();
    for (v6, m) in [(false, &inputs.m4), (true, &inputs.m6)] {
        let routes: Vec<&(IpNet, u32)> = t
            .routes
            .iter()
            .filter(|(p, _)| p.addr().is_ipv6() == v6)
            .collect();
        let sets: HashSet<u32> = routes.iter().map(|(_, a)| *a).collect();
        let ratio = sets.len() as f64 / routes.len() as f64;
        assert!(
            (ratio - m.sharing_ratio).abs() < 0.25 * m.sharing_ratio,
            "v6={v6}: sharing {ratio:.3} vs the view's {:.3}",
            m.sharing_ratio
        );
        let mean = routes
            .iter()
            .map(|(_, a)| t.attrs[*a as usize].as_path.len())
            .sum::<usize>() as f64
            / routes.len() as f64;
        assert!(
            (mean - m.mean_path_len()).abs() < 0.6,
            "v6={v6}: mean path {mean:.2} vs {:.2}",
            m.mean_path_len()
        );
        // As many routes carry communities as in the view (the IPv6 view, AS22652, sends none).
        let with_comm = routes
            .iter()
            .filter(|(_, a)| !t.attrs[*a as usize].communities.is_empty())
            .count();
        let share = with_comm as f64 / routes.len() as f64;
        assert!(
            (share - m.community_share()).abs() < 0.15,
            "v6={v6}: {share:.2} with communities vs {:.2}",
            m.community_share()
        );
    }
}

#[test]
fn compact_file_and_mrt_round_trip() {
    let cfg = Config {
        peer_as: Some(64512),
        local_pref: Some(100),
        ..small(3)
    };
    let t = generate(&cfg).unwrap();
    assert!(
        t.iter()
            .all(|r| r.as_path.len() == 1 || r.as_path[0] == 64512)
    );
    let dir = tempfile::tempdir().unwrap();

    let f = dir.path().join("table.tbrt");
    t.write_to(&f).unwrap();
    assert_eq!(Table::read_from(&f).unwrap(), t);

    let m = dir.path().join("table.mrt");
    let peer = mrt::Peer {
        bgp_id: "192.0.2.1".parse().unwrap(),
        addr: "192.0.2.1".parse().unwrap(),
        asn: 64512,
    };
    t.write_mrt(&m, &peer).unwrap();
    let rib = mrt::read_rib_file(&m).unwrap();
    assert!(!rib.truncated);
    assert_eq!(rib.peers, vec![peer]);
    assert_eq!(rib.routes.len(), t.len());
    for (r, g) in rib.routes.iter().zip(t.iter()) {
        assert_eq!(r.prefix, g.prefix);
        assert_eq!(r.attrs.path(), g.as_path);
        assert_eq!(r.attrs.next_hop, Some(g.next_hop));
        assert_eq!(r.attrs.local_pref, Some(100));
        assert_eq!(r.attrs.communities.len(), g.communities.len());
    }
}
