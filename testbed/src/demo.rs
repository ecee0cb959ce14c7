//! The demo: a namespace topology with the XDP forwarder on the router in the middle.
//!
//! ```text
//!   src (10.0.1.2, fd00:1::2) ── s0|dut|d0 ── dst (10.0.2.2, fd00:2::2)
//!                                 XDP on s0 and d0
//! ```
//!
//! Today the forwarder parses and accounts every frame and hands it to the kernel; as the FIB, the RIB
//! and the daemon land, the demo grows into the full `src — dut — {up1, up2} — dst` picture.

use std::time::Instant;

use anyhow::{Context, Result};
use fib_ebpf::{AttachMode, Forwarder};
use testbed::netns::{Netns, addr, veth};

pub fn run(keep: bool) -> Result<()> {
    let t0 = Instant::now();
    fib_ebpf::bpffs::ensure_bpffs().context("bpffs")?;
    let src = Netns::new("src")?;
    let dut = Netns::new("dut")?;
    let dst = Netns::new("dst")?;
    veth(&src, "eth0", &dut, "s0")?;
    veth(&dut, "d0", &dst, "eth0")?;
    addr(&src, "eth0", "10.0.1.2/24")?;
    addr(&dut, "s0", "10.0.1.1/24")?;
    addr(&dut, "d0", "10.0.2.1/24")?;
    addr(&dst, "eth0", "10.0.2.2/24")?;
    addr(&src, "eth0", "fd00:1::2/64")?;
    addr(&dut, "s0", "fd00:1::1/64")?;
    addr(&dut, "d0", "fd00:2::1/64")?;
    addr(&dst, "eth0", "fd00:2::2/64")?;
    src.ip(&["route", "add", "default", "via", "10.0.1.1"])?;
    dst.ip(&["route", "add", "default", "via", "10.0.2.1"])?;
    src.ip(&["-6", "route", "add", "default", "via", "fd00:1::1"])?;
    dst.ip(&["-6", "route", "add", "default", "via", "fd00:2::1"])?;
    dut.sysctl("net.ipv4.ip_forward", "1")?;
    dut.sysctl("net.ipv6.conf.all.forwarding", "1")?;

    println!("== topology ==");
    println!(
        "  src {} ── s0 | dut {} | d0 ── dst {}",
        src.name(),
        dut.name(),
        dst.name()
    );

    let mut fwd = Forwarder::load().context("loading the XDP forwarder")?;
    for iface in ["s0", "d0"] {
        let mode = dut.run_in(|| fwd.attach(iface, AttachMode::Auto))??;
        println!("  XDP attached to dut:{iface} ({mode:?} mode)");
    }

    println!("\n== traffic: 20 pings src → dst over IPv4 and IPv6 ==");
    for target in ["10.0.2.2", "fd00:2::2"] {
        let out = src.exec("ping", &["-c", "10", "-i", "0.01", "-W", "1", target])?;
        let text = String::from_utf8_lossy(&out.stdout);
        let summary = text
            .lines()
            .find(|l| l.contains("packets transmitted"))
            .unwrap_or("");
        println!("  {target:<10} {summary}");
    }

    println!("\n== dataplane counters on dut (all CPUs) ==");
    println!("  {:<22} {:>10} {:>12}", "reason", "packets", "bytes");
    for (reason, c) in fwd.stats()? {
        if c.packets > 0 {
            println!("  {:<22} {:>10} {:>12}", reason.name(), c.packets, c.bytes);
        }
    }
    println!("\n(demo took {:.1} s)", t0.elapsed().as_secs_f64());

    if keep {
        println!("\nThe topology stays up until you press Ctrl-C. Try:");
        println!("  ip netns exec {} ping 10.0.2.2", src.name());
        println!("  bpftool prog show; bpftool map dump name stats");
        loop {
            std::thread::park();
        }
    }
    Ok(())
}
