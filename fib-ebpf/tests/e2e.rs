//! End to end in namespaces: src → dut → dst over two parallel links, XDP forwarder on every dut
//! interface, `ip_forward=0` and IPv6 forwarding off on the dut (so only XDP can forward), routes and
//! next-hops written through the Rust map API. Ping (v4 and v6) and TCP pass, TTL is decremented,
//! both links carry flows, counters match what was sent. Needs root.
//!
//! ```text
//!   src s0 ── d0 [dut] d1 ── t1 [dst]   10.9.0.1 / fd00:9::1 on dst's lo
//!                      d2 ── t2
//! ```

mod common;

use std::process::{Command, Stdio};

use common::*;
use fib_ebpf::abi::{FibVal, Nh, PL_LOCAL, PL_PASS, StatReason};
use fib_ebpf::{AttachMode, Dir24, Forwarder, nhg};

const SRC: usize = 0;
const DUT: usize = 1;
const DST: usize = 2;

fn sysctl(ns: &Netns, i: usize, kv: &str) {
    let out = ns.exec(i, &["sysctl", "-qw", kv]);
    assert!(
        out.status.success(),
        "sysctl {kv}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn mac(ns: &Netns, i: usize, dev: &str) -> [u8; 6] {
    let out = Command::new("ip")
        .args(["-n", ns.name(i), "-br", "link", "show", "dev", dev])
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    let m = s.split_whitespace().nth(2).expect("mac column");
    let v: Vec<u8> = m
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect();
    v.try_into().unwrap()
}

fn ifindex(ns: &Netns, i: usize, dev: &str) -> u32 {
    let out = Command::new("ip")
        .args(["-n", ns.name(i), "-o", "link", "show", "dev", dev])
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    s.split(':').next().unwrap().trim().parse().unwrap()
}

fn topology() -> Netns {
    let ns = Netns::new("e2e", &["src", "dut", "dst"]);
    let (s, d, t) = (
        ns.name(SRC).to_string(),
        ns.name(DUT).to_string(),
        ns.name(DST).to_string(),
    );
    for (a, an, b, bn) in [
        (&s, "s0", &d, "d0"),
        (&d, "d1", &t, "t1"),
        (&d, "d2", &t, "t2"),
    ] {
        ip(&[
            "link", "add", an, "netns", a, "type", "veth", "peer", "name", bn, "netns", b,
        ]);
    }
    sysctl(&ns, DUT, "net.ipv4.ip_forward=0");
    sysctl(&ns, DUT, "net.ipv6.conf.all.forwarding=0");
    for k in ["all", "default"] {
        sysctl(&ns, DST, &format!("net.ipv4.conf.{k}.rp_filter=0"));
    }
    for (n, dev, a4, a6) in [
        (&s, "s0", "10.0.1.2/24", "fd00:1::2/64"),
        (&d, "d0", "10.0.1.1/24", "fd00:1::1/64"),
        (&d, "d1", "10.0.2.1/24", "fd00:2::1/64"),
        (&d, "d2", "10.0.3.1/24", "fd00:3::1/64"),
        (&t, "t1", "10.0.2.2/24", "fd00:2::2/64"),
        (&t, "t2", "10.0.3.2/24", "fd00:3::2/64"),
    ] {
        ip(&["-n", n, "addr", "add", a4, "dev", dev]);
        ip(&["-n", n, "addr", "add", a6, "dev", dev, "nodad"]);
        ip(&["-n", n, "link", "set", dev, "up"]);
    }
    for n in [&s, &d, &t] {
        ip(&["-n", n, "link", "set", "lo", "up"]);
    }
    sysctl(&ns, DST, "net.ipv4.conf.t2.rp_filter=0");
    sysctl(&ns, DST, "net.ipv4.conf.t1.rp_filter=0");
    ip(&["-n", &t, "addr", "add", "10.9.0.1/32", "dev", "lo"]);
    ip(&["-n", &t, "addr", "add", "fd00:9::1/128", "dev", "lo"]);
    ip(&["-n", &s, "route", "add", "default", "via", "10.0.1.1"]);
    ip(&[
        "-n",
        &s,
        "-6",
        "route",
        "add",
        "default",
        "via",
        "fd00:1::1",
    ]);
    ip(&["-n", &t, "route", "add", "10.0.1.0/24", "via", "10.0.2.1"]);
    ip(&[
        "-n",
        &t,
        "-6",
        "route",
        "add",
        "fd00:1::/64",
        "via",
        "fd00:2::1",
    ]);
    ns.run_in(SRC, || tx_checksum_off("s0"));
    ns.run_in(DST, || {
        tx_checksum_off("t1");
        tx_checksum_off("t2");
    });
    ns
}

/// `ethtool -K dev tx off` through SIOCETHTOOL (ETHTOOL_STXCSUM), in the calling thread's namespace.
/// veth senders leave TCP/UDP checksums to "hardware" (CHECKSUM_PARTIAL); a frame redirected by XDP
/// loses that note and would arrive with a partial checksum. Real NICs deliver complete checksums, so
/// the senders in this topology compute them in software.
fn tx_checksum_off(dev: &str) {
    #[repr(C)]
    struct EthtoolValue {
        cmd: u32,
        data: u32,
    }
    #[repr(C)]
    struct Ifreq {
        name: [u8; 16],
        data: *mut EthtoolValue,
        _pad: [u8; 16],
    }
    let mut v = EthtoolValue { cmd: 0x17, data: 0 }; // ETHTOOL_STXCSUM
    let mut req = Ifreq {
        name: [0; 16],
        data: &mut v,
        _pad: [0; 16],
    };
    req.name[..dev.len()].copy_from_slice(dev.as_bytes());
    // SAFETY: a datagram socket for the ioctl; `req` and `v` outlive the call.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        assert!(fd >= 0);
        let rc = libc::ioctl(fd, 0x8946, &mut req); // SIOCETHTOOL
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        assert_eq!(rc, 0, "SIOCETHTOOL {dev}: {err}");
    }
}

fn ping(ns: &Netns, dst: &str, count: u32) -> String {
    let out = ns.exec(
        SRC,
        &[
            "ping",
            "-c",
            &count.to_string(),
            "-i",
            "0.01",
            "-W",
            "2",
            dst,
        ],
    );
    let s = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "ping {dst} failed:\n{s}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s
}

const TCP_SERVER: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.9.0.1", 5001)); s.listen(64)
print("ready", flush=True)
n = int(sys.argv[1])
for _ in range(n):
    c, _ = s.accept()
    data = b""
    while not data.endswith(b"\n"):
        chunk = c.recv(65536)
        if not chunk: break
        data += chunk
    c.sendall(data)
    c.close()
"#;

const TCP_CLIENT: &str = r#"
import socket, sys
n = int(sys.argv[1]); ok = 0
for i in range(n):
    c = socket.create_connection(("10.9.0.1", 5001), timeout=3)
    msg = (b"x" * 3000) + b"%d\n" % i
    c.sendall(msg)
    got = b""
    while len(got) < len(msg):
        chunk = c.recv(65536)
        if not chunk: break
        got += chunk
    ok += got == msg
    c.close()
print(ok)
"#;

#[test]
fn src_to_dst_through_xdp_only_over_two_links() {
    let ns = topology();
    let mut fwd = Forwarder::load().expect("load forwarder");
    // Redirecting into a veth in native mode needs an XDP program on the receiving peer: an empty
    // forwarder (no routes, so it passes everything) on s0, t1 and t2.
    let mut peer = Forwarder::load().expect("load peer program");
    ns.run_in(SRC, || peer.attach("s0", AttachMode::Auto))
        .expect("attach s0");
    for dev in ["t1", "t2"] {
        ns.run_in(DST, || peer.attach(dev, AttachMode::Auto))
            .expect("attach peer");
    }

    let (d0, d1, d2) = (
        ifindex(&ns, DUT, "d0"),
        ifindex(&ns, DUT, "d1"),
        ifindex(&ns, DUT, "d2"),
    );
    let nhs = [
        (1u32, d1, mac(&ns, DUT, "d1"), mac(&ns, DST, "t1")),
        (2, d2, mac(&ns, DUT, "d2"), mac(&ns, DST, "t2")),
        (3, d0, mac(&ns, DUT, "d0"), mac(&ns, SRC, "s0")),
    ];
    {
        let m = fwd.maps_mut();
        ns.run_in(DUT, || {
            for i in [d0, d1, d2] {
                m.tx_port_add(i).expect("tx_port");
            }
        });
        for (id, ifindex, smac, dmac) in nhs {
            m.nh_write(
                id,
                &Nh {
                    ifindex,
                    smac,
                    dmac,
                    vlan: 0,
                    flags: 0,
                    _pad: 0,
                },
            )
            .unwrap();
        }
        m.nhg_write(1, &nhg::buckets(&[(1, 1), (2, 1)], 256))
            .unwrap();
        m.nhg_write(2, &[3]).unwrap();
        m.pathlist_set(16, 1).unwrap();
        m.pathlist_set(17, 2).unwrap();
        let mut dir = Dir24::new(16, std::time::Duration::from_secs(1));
        for (p, pl) in [
            ("10.9.0.0/24", 16),
            ("10.0.1.0/24", 17),
            ("10.0.1.1/32", PL_LOCAL),
            ("10.0.2.0/24", PL_PASS),
            ("10.0.2.1/32", PL_LOCAL),
            ("10.0.3.0/24", PL_PASS),
            ("10.0.3.1/32", PL_LOCAL),
        ] {
            let (a, l) = parse4(p);
            dir.insert(m, a, l, pl).unwrap();
        }
        for (p, pl) in [
            ("fd00:9::/64", 16),
            ("fd00:1::/64", 17),
            ("fd00:1::1/128", PL_LOCAL),
            ("fd00:2::/64", PL_PASS),
            ("fd00:2::1/128", PL_LOCAL),
            ("fd00:3::/64", PL_PASS),
            ("fd00:3::1/128", PL_LOCAL),
        ] {
            let (a, l) = parse6(p);
            m.fib6_insert(
                a,
                l,
                FibVal {
                    pl_id: pl,
                    flags: 0,
                },
            )
            .unwrap();
        }
    }
    for dev in ["d0", "d1", "d2"] {
        let mode = ns
            .run_in(DUT, || fwd.attach(dev, AttachMode::Auto))
            .expect("attach dut");
        eprintln!("dut:{dev} attached ({mode:?})");
    }
    // Resolve neighbours in src/dst first (ARP/ND pass through XDP to the dut's kernel).
    let _ = ns.exec(SRC, &["ping", "-c", "1", "-W", "1", "10.0.1.1"]);
    let _ = ns.exec(DST, &["ping", "-c", "1", "-W", "1", "10.0.2.1"]);
    let _ = ns.exec(SRC, &["ping", "-c", "1", "-W", "1", "fd00:1::1"]);
    let _ = ns.exec(DST, &["ping", "-c", "1", "-W", "1", "fd00:2::1"]);

    let fwd_before = fwd.maps().stat(StatReason::Forwarded).unwrap().packets;
    let nh_before: Vec<u64> = (1..=3)
        .map(|i| fwd.maps().nh_stats(i).unwrap().packets)
        .collect();
    let out = ping(&ns, "10.9.0.1", 50);
    assert!(
        out.contains("ttl=63"),
        "the reply crossed the dut once: TTL 64 -> 63\n{out}"
    );
    assert!(out.contains(" 0% packet loss"), "{out}");
    let out6 = ping(&ns, "fd00:9::1", 50);
    assert!(
        out6.contains("ttl=63") || out6.contains("hlim=63"),
        "hop limit decremented\n{out6}"
    );
    let nh_after: Vec<u64> = (1..=3)
        .map(|i| fwd.maps().nh_stats(i).unwrap().packets)
        .collect();
    let toward_dst = (nh_after[0] - nh_before[0]) + (nh_after[1] - nh_before[1]);
    let toward_src = nh_after[2] - nh_before[2];
    assert_eq!(
        toward_dst, 100,
        "50 v4 + 50 v6 echo requests forwarded toward dst"
    );
    assert_eq!(
        toward_src, 100,
        "50 v4 + 50 v6 echo replies forwarded toward src"
    );
    let fwd_after = fwd.maps().stat(StatReason::Forwarded).unwrap().packets;
    assert_eq!(
        fwd_after - fwd_before,
        200,
        "the forwarded counter matches the packets sent"
    );

    // TCP: many connections (many source ports), each echoing 3 kB through both links.
    let conns = 40;
    let mut server = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns.name(DST),
            "/usr/bin/python3",
            "-c",
            TCP_SERVER,
            &conns.to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("tcp server");
    {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(server.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
    }
    let client = ns.exec(
        SRC,
        &["/usr/bin/python3", "-c", TCP_CLIENT, &conns.to_string()],
    );
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(
        String::from_utf8_lossy(&client.stdout).trim(),
        conns.to_string(),
        "every TCP echo came back intact: {}",
        String::from_utf8_lossy(&client.stderr)
    );
    let l1 = fwd.maps().nh_stats(1).unwrap().packets - nh_after[0];
    let l2 = fwd.maps().nh_stats(2).unwrap().packets - nh_after[1];
    eprintln!("TCP segments toward dst: link 1 {l1}, link 2 {l2}");
    assert!(
        l1 > 0 && l2 > 0,
        "both parallel links carry TCP flows ({l1}, {l2})"
    );
}
