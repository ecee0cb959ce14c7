//! The failover benchmark's detection listeners against real sockets in two namespaces: the dut's
//! watch tells a NOTIFICATION from the peer, the dut's own NOTIFICATION, the peer's RST and the
//! carrier loss apart, each stamped in the order the events happened; the NOTIFICATION sniffer sees
//! the peer's message.
//!
//! dut (10.x.x.1) ── peer (10.x.x.2)

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use anyhow::{Context, Result};
use testbed::bench::probe::{DutWatch, NotificationSniffer, link_down};
use testbed::topo::Topology;

/// A BGP NOTIFICATION (Cease, Administrative Reset).
const NOTIFICATION: [u8; 21] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0, 21, 3, 6, 4,
];

#[test]
fn dut_watch_sees_each_failure_kind_in_order() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root (namespaces)");
        return Ok(());
    }
    let topo = Topology::pair("dut", "peer")?;
    let link = topo.link(0)?.clone();
    let (dut, peer) = (topo.ns("dut")?, topo.ns("peer")?);
    let listen = SocketAddr::new(link.a_v4.into(), 1179);
    let listener = dut.run_in(|| TcpListener::bind(listen))??;

    let watch = DutWatch::start(dut.name(), &link.a_if, link.a_v4, link.b_v4)?;
    let sniff =
        NotificationSniffer::start(dut.name(), &link.a_if, link.b_v4, Duration::from_secs(20))?;

    // The peer's NOTIFICATION, then the dut's own in answer (so strictly later).
    let mut out =
        peer.run_in(|| TcpStream::connect_timeout(&listen, Duration::from_secs(10)))??;
    let (mut conn, _) = listener.accept()?;
    out.write_all(&NOTIFICATION)?;
    let mut got = [0u8; 21];
    conn.read_exact(&mut got)?;
    assert_eq!(got, NOTIFICATION);
    conn.write_all(&NOTIFICATION)?;
    out.read_exact(&mut got)?;
    let sniffed = sniff
        .wait()?
        .context("the sniffer missed the peer's NOTIFICATION")?;

    // The peer's RST: an abortive close (SO_LINGER 0) with the connection open.
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on the stream's own socket with a correctly sized linger.
    let rc = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&out),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            size_of::<libc::linger>() as u32,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER: {}", std::io::Error::last_os_error());
    drop(out);
    let mut rest = Vec::new();
    assert!(
        conn.read_to_end(&mut rest).is_err(),
        "the dut's socket should see the reset"
    );

    // Carrier loss: the peer's end goes down, so the dut's veth loses its carrier.
    link_down(peer.name(), &link.b_if)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let seen = loop {
        std::thread::sleep(Duration::from_millis(100));
        if std::time::Instant::now() > deadline {
            break watch.finish()?;
        }
        let carrier = dut.exec("ip", &["-j", "link", "show", "dev", &link.a_if])?;
        if !String::from_utf8_lossy(&carrier.stdout).contains("LOWER_UP") {
            // Netlink delivery is asynchronous: give the listener a moment before stopping it.
            std::thread::sleep(Duration::from_millis(200));
            break watch.finish()?;
        }
    };

    let n_in = seen.notification_in.context("no NOTIFICATION in")?;
    let n_out = seen.notification_out.context("no NOTIFICATION out")?;
    let rst = seen.rst_in.context("no RST in")?;
    let carrier = seen.carrier_lost.context("no carrier loss")?;
    assert!(n_in < n_out, "{seen:?}");
    assert!(n_out < rst, "{seen:?}");
    assert!(rst < carrier, "{seen:?}");
    // The sniffer stamps when it read the packet, the watch when the kernel received it.
    assert!(
        sniffed >= n_in,
        "sniffer {sniffed} before the packet arrived {n_in}"
    );
    Ok(())
}
