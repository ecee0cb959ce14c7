//! The demo: ribd learning the same networks from two upstreams (BIRD and FRR), selecting ECMP, and
//! forwarding many flows across both with XDP while the kernel on the router forwards nothing.
//!
//! ```text
//!                                 ┌── u1 ── up1 (BIRD 2, AS 65001) ──┐
//!   src ── s0 dut (ribd + XDP) ───┤                                  ├── dst  10.100.0-3.0/24, fd00:100::/64
//!                                 └── u2 ── up2 (FRR,    AS 65002) ──┘
//! ```
//! The topology lives in [`testbed::fabric`]; the end-to-end suite asserts on the same one.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use testbed::fabric::{self, Fabric, RibdCommand};
use testbed::peers::BgpPeer;
use testbed::traffic::{LossReport, Receiver, Sender};

const FLOWS: u32 = 64;
const PPS: u32 = 4000;
const SECONDS: u64 = 5;

fn sibling(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(name)))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(name))
}

fn heading(s: &str) {
    println!("\n\x1b[1m== {s} ==\x1b[0m");
}

/// Runs `ribctl --socket SOCK args` and prints the command and its output.
fn ribctl(socket: &Path, args: &[&str]) {
    println!("\x1b[2m$ ribctl {}\x1b[0m", args.join(" "));
    match Command::new(sibling("ribctl"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
    {
        Ok(o) => {
            print!("{}", String::from_utf8_lossy(&o.stdout));
            eprint!("{}", String::from_utf8_lossy(&o.stderr));
        }
        Err(e) => println!("(cannot run ribctl: {e})"),
    }
}

pub fn run(keep: bool) -> Result<()> {
    let t0 = Instant::now();
    let ribd = {
        let s = RibdCommand::sibling();
        if s.program.exists() {
            s
        } else {
            // No ribd binary next to this one: run the daemon from this binary (`testbed ribd`).
            RibdCommand {
                program: std::env::current_exe()?,
                args: vec!["ribd".into()],
            }
        }
    };
    println!(
        "\x1b[1mribd demo\x1b[0m: two upstreams, ECMP, XDP forwarding (kernel forwarding off on dut)\n"
    );
    println!("                                ┌── u1 ── up1 (BIRD 2, AS 65001) ── e1 ─┐");
    println!(
        "  src ── s0  dut (ribd, AS 65000)                                        dst  10.100.0-3.0/24"
    );
    println!(
        "    10.0.1.2      XDP on s0,u1,u2 └── u2 ── up2 (FRR,    AS 65002) ── e2 ─┘      fd00:100::/64"
    );
    println!("  up1 also announces its own 10.201.0.0/24 and 10.201.1.0/24\n");
    println!(
        "starting namespaces, BIRD, FRR and ribd ({}) ...",
        ribd.program.display()
    );
    let f = Fabric::start("demo", ribd).context("starting the demo topology")?;
    println!(
        "4 BGP sessions Established, ECMP programmed into XDP after {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let sock = f.ribd.socket.clone();
    println!(
        "dut: net.ipv4.ip_forward = {}, net.ipv6.conf.all.forwarding = {}",
        sysctl(&f, "net.ipv4.ip_forward"),
        sysctl(&f, "net.ipv6.conf.all.forwarding")
    );

    heading("neighbours");
    ribctl(&sock, &["show", "neighbors"]);
    heading("RIB");
    ribctl(&sock, &["show", "rib"]);
    heading("FIB (what XDP forwards with)");
    ribctl(&sock, &["show", "fib"]);

    heading(&format!(
        "traffic: {FLOWS} UDP flows src → 10.100.0.1 and 16 flows src → fd00:100::1, {SECONDS} s"
    ));
    let base = (f.nexthop_packets()?, f.upstream_rx(1)?, f.upstream_rx(2)?);
    let fwd0 = f.ribd.reason("forwarded")?;
    let rx4 = Receiver::start(&f.dst.path(), "0.0.0.0:9000".parse()?)?;
    let rx6 = Receiver::start(&f.dst.path(), "[::]:9001".parse()?)?;
    let tx4 = Sender::start(
        &f.src.path(),
        fabric::Fabric::dst_sockaddr(0, 9000),
        20000,
        FLOWS,
        PPS,
        200,
    )?;
    let tx6 = Sender::start(
        &f.src.path(),
        std::net::SocketAddr::new(fabric::dst_host6(), 9001),
        30000,
        16,
        1000,
        200,
    )?;
    // Meanwhile: up1's own network is reachable only through up1.
    let ping = f
        .src
        .exec("ping", &["-c", "3", "-i", "0.2", "-W", "1", "10.201.0.1"]);
    std::thread::sleep(Duration::from_secs(SECONDS.saturating_sub(1)));
    let (s4, s6) = (tx4.stop()?, tx6.stop()?);
    std::thread::sleep(Duration::from_millis(300));
    let (r4, r6) = (rx4.stop(), rx6.stop());
    let l4 = LossReport::new(&s4, &r4, PPS);
    let l6 = LossReport::new(&s6, &r6, 1000);
    println!("  IPv4: {l4}");
    println!("  IPv6: {l6}");
    match ping {
        Ok(o) => {
            let t = String::from_utf8_lossy(&o.stdout);
            if let Some(l) = t.lines().find(|l| l.contains("packets transmitted")) {
                println!("  ping 10.201.0.1 (up1 only): {l}");
            }
        }
        Err(e) => println!("  ping 10.201.0.1 (up1 only) failed: {e:#}"),
    }

    heading("dataplane counters");
    ribctl(&sock, &["show", "stats"]);

    heading("per-upstream split of the traffic");
    let nh = f.nexthop_packets()?;
    let (up1, up2) = (f.upstream_rx(1)? - base.1, f.upstream_rx(2)? - base.2);
    let (x1, x2) = (nh.0 - base.0.0, nh.1 - base.0.1);
    let total = (x1 + x2).max(1) as f64;
    println!(
        "  {:<30} {:>12} {:>8} {:>22}",
        "upstream", "XDP tx pkts", "share", "rx on upstream's link"
    );
    println!(
        "  {:<30} {:>12} {:>7.1}% {:>22}",
        "up1 via u1 (BIRD, 10.0.11.2)",
        x1,
        100.0 * x1 as f64 / total,
        up1
    );
    println!(
        "  {:<30} {:>12} {:>7.1}% {:>22}",
        "up2 via u2 (FRR, 10.0.12.2)",
        x2,
        100.0 * x2 as f64 / total,
        up2
    );
    println!(
        "  XDP forwarded {} packets during the run; dut's kernel forwarding is off, so nothing else could.",
        f.ribd.reason("forwarded")? - fwd0
    );
    ribctl(&sock, &["fib", "check"]);
    println!("\n(demo took {:.1} s)", t0.elapsed().as_secs_f64());

    if keep {
        let nsenter = |ns: &testbed::netns::Netns| format!("nsenter --net={} --", ns.path());
        println!("\nThe topology stays up until you press Ctrl-C. Try:");
        println!(
            "  {} --socket {} show summary",
            sibling("ribctl").display(),
            sock.display()
        );
        println!(
            "  {} --socket {} show stats --watch 1",
            sibling("ribctl").display(),
            sock.display()
        );
        println!(
            "  {} --socket {} lookup 10.100.2.1",
            sibling("ribctl").display(),
            sock.display()
        );
        println!("  {} ping 10.100.1.1", nsenter(&f.src));
        println!(
            "  {} iperf3 -s -D; {} iperf3 -c 10.100.0.1 -P 8 -u -b 100M",
            nsenter(&f.dst),
            nsenter(&f.src)
        );
        println!(
            "  birdc -s <up1's bird.ctl, below> disable n0   # shut up1's IPv4 session: traffic moves to up2"
        );
        println!(
            "  {}",
            f.up1
                .diagnostics()
                .lines()
                .take(6)
                .collect::<Vec<_>>()
                .join("\n  ")
        );
        println!(
            "  ribd log: {}   config: {}",
            f.ribd.log.display(),
            f.ribd.config.display()
        );
        println!("  bpftool map show; ls {}", f.pin_dir().display());
        loop {
            std::thread::park();
        }
    }
    Ok(())
}

fn sysctl(f: &Fabric, key: &str) -> String {
    f.dut
        .exec("sysctl", &["-n", key])
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|e| format!("? ({e})"))
}
