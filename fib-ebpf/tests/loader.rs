//! The embedded forwarder loads, verifies and runs: attached to a veth inside a fresh network
//! namespace, its per-CPU counters move when a ping crosses. Needs root (CAP_BPF, CAP_NET_ADMIN).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};

use aya::programs::{TestRun, TestRunOptions};
use fib_ebpf::abi::StatReason;
use fib_ebpf::{AttachMode, Forwarder};

/// Two namespaces joined by a veth, deleted on drop (also when the test panics).
struct Pair {
    a: String,
    b: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pair {
    fn new(tag: &str) -> Pair {
        let a = format!("fe{}-{tag}-a", std::process::id());
        let b = format!("fe{}-{tag}-b", std::process::id());
        // Built before anything can fail, so Drop cleans whatever part exists.
        let pair = Pair { a, b };
        ip(&["netns", "add", &pair.a]);
        ip(&["netns", "add", &pair.b]);
        ip(&[
            "link", "add", "va", "netns", &pair.a, "type", "veth", "peer", "name", "vb", "netns",
            &pair.b,
        ]);
        ip(&["-n", &pair.a, "addr", "add", "192.0.2.1/24", "dev", "va"]);
        ip(&["-n", &pair.b, "addr", "add", "192.0.2.2/24", "dev", "vb"]);
        ip(&["-n", &pair.a, "link", "set", "va", "up"]);
        ip(&["-n", &pair.b, "link", "set", "vb", "up"]);
        pair
    }

    fn in_b<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let ns = File::open(format!("/var/run/netns/{}", self.b)).expect("open netns");
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: setns on a valid namespace fd, affecting only this scoped thread.
                let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .expect("thread in namespace")
        })
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn forwarded_counter(fwd: &Forwarder, reason: StatReason) -> u64 {
    fwd.stats()
        .expect("read stats")
        .into_iter()
        .find(|(r, _)| *r == reason)
        .map(|(_, c)| c.packets)
        .unwrap_or(0)
}

#[test]
fn xdp_program_attaches_to_a_veth_in_a_namespace_and_counts_a_ping() {
    let pair = Pair::new("ping");
    let mut fwd = Forwarder::load().expect("load embedded forwarder");
    let mode = pair
        .in_b(|| fwd.attach("vb", AttachMode::Auto))
        .expect("attach XDP to vb");
    eprintln!("attached in {mode:?} mode");
    let before = forwarded_counter(&fwd, StatReason::PassNoRoute);

    let status = Command::new("ip")
        .args([
            "netns",
            "exec",
            &pair.a,
            "ping",
            "-c",
            "3",
            "-i",
            "0.05",
            "-W",
            "1",
            "192.0.2.2",
        ])
        .stdout(Stdio::null())
        .status()
        .expect("run ping");
    assert!(
        status.success(),
        "ping across the veth failed: the XDP program must pass IP traffic up"
    );

    let after = forwarded_counter(&fwd, StatReason::PassNoRoute);
    assert!(
        after >= before + 3,
        "IPv4 counter moved from {before} to {after}, expected at least 3 echo requests"
    );
    assert!(
        forwarded_counter(&fwd, StatReason::PassNonIp) >= 1,
        "the ARP request must be counted as non-IP"
    );
}

#[test]
fn test_run_passes_an_ipv4_frame_and_drops_a_truncated_one() {
    let mut fwd = Forwarder::load().expect("load embedded forwarder");
    let mut frame = vec![0u8; 64];
    frame[12] = 0x08; // ethertype IPv4
    frame[14] = 0x45; // version 4, IHL 5
    frame[17] = 50; // total length: the 50 bytes after the Ethernet header
    frame[22] = 64; // TTL
    let prog = fwd.program().expect("program");
    let mut out = vec![0u8; 128];
    let r = prog
        .test_run(TestRunOptions {
            data_in: Some(&frame),
            data_out: Some(&mut out),
            ..Default::default()
        })
        .expect("BPF_PROG_TEST_RUN");
    assert_eq!(r.return_value, 2, "XDP_PASS (no route)");

    let truncated = &frame[..20];
    let r = prog
        .test_run(TestRunOptions {
            data_in: Some(truncated),
            ..Default::default()
        })
        .expect("BPF_PROG_TEST_RUN");
    assert_eq!(r.return_value, 1, "XDP_DROP for an IPv4 header cut short");
    assert_eq!(forwarded_counter(&fwd, StatReason::DropMalformed), 1);
}

/// A pin directory under /sys/fs/bpf removed on drop.
struct PinDir(std::path::PathBuf, String);

impl PinDir {
    fn new(tag: &str) -> PinDir {
        let name = format!("fe{}-{tag}", std::process::id());
        PinDir(std::path::Path::new("/sys/fs/bpf").join(&name), name)
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn opts(instance: &str) -> fib_ebpf::LoadOptions {
    fib_ebpf::LoadOptions {
        instance: Some(instance.to_string()),
        ..Default::default()
    }
}

#[test]
fn pinned_maps_are_reused_and_a_different_abi_version_is_refused() {
    let dir = PinDir::new("abi");
    {
        let fwd = Forwarder::load_with(&opts(&dir.1)).expect("first load");
        assert!(!fwd.reused_pinned_maps());
        fwd.maps().dir24_store(0x0a0000, 42);
        fwd.maps().pathlist_set(42, 7).unwrap();
        fwd.maps().bump_generation();
    }
    {
        let fwd = Forwarder::load_with(&opts(&dir.1)).expect("second load re-uses the pins");
        assert!(fwd.reused_pinned_maps());
        assert_eq!(
            fwd.maps().dir24_load(0x0a0000),
            42,
            "routes survive the restart"
        );
        assert_eq!(fwd.maps().pathlist_get(42).unwrap(), 7);
        assert_eq!(
            fwd.maps().generation(),
            2,
            "fresh maps start at generation 1; one bump"
        );
        // Pretend the pinned maps came from another ABI.
        let pinned = fib_ebpf::FibMaps::open_pinned(&dir.0).unwrap();
        assert_eq!(pinned.abi_version(), fib_ebpf::abi::FIB_ABI_VERSION);
    }
    let meta = aya::maps::MapData::from_pin(dir.0.join("meta")).unwrap();
    let mut arr: aya::maps::Array<_, fib_ebpf::abi::FibMeta> =
        aya::maps::Array::try_from(aya::maps::Map::Array(meta)).unwrap();
    arr.set(
        0,
        fib_ebpf::abi::FibMeta {
            abi_version: 99,
            _pad: 0,
            generation: 1,
        },
        0,
    )
    .unwrap();
    match Forwarder::load_with(&opts(&dir.1)) {
        Err(fib_ebpf::LoaderError::AbiMismatch {
            found, expected, ..
        }) => {
            assert_eq!((found, expected), (99, fib_ebpf::abi::FIB_ABI_VERSION));
        }
        Err(e) => panic!("expected an ABI refusal, got {e}"),
        Ok(_) => panic!("maps of another ABI version were re-used"),
    }
}

fn xdp_attached(pair: &Pair) -> bool {
    let out = Command::new("ip")
        .args(["-n", &pair.b, "-d", "link", "show", "vb"])
        .output()
        .expect("ip link show");
    String::from_utf8_lossy(&out.stdout).contains("prog/xdp")
}

fn ping(pair: &Pair) -> bool {
    Command::new("ip")
        .args([
            "netns",
            "exec",
            &pair.a,
            "ping",
            "-c",
            "2",
            "-i",
            "0.05",
            "-W",
            "1",
            "192.0.2.2",
        ])
        .stdout(Stdio::null())
        .status()
        .expect("run ping")
        .success()
}

#[test]
fn a_pinned_link_outlives_its_process_is_taken_over_and_detaches() {
    let pair = Pair::new("pin");
    let dir = PinDir::new("link");
    {
        let mut fwd = Forwarder::load_with(&opts(&dir.1)).expect("load");
        let mode = pair
            .in_b(|| fwd.attach("vb", AttachMode::Auto))
            .expect("attach");
        assert_ne!(mode, fib_ebpf::AttachedMode::TookOver);
    }
    assert!(
        xdp_attached(&pair),
        "the pinned link keeps the program attached after drop"
    );
    let maps = fib_ebpf::FibMaps::open_pinned(&dir.0).unwrap();
    let before = maps.stat(StatReason::PassNoRoute).unwrap().packets;
    assert!(ping(&pair));
    let after = maps.stat(StatReason::PassNoRoute).unwrap().packets;
    assert!(
        after >= before + 2,
        "the orphaned program still runs ({before} -> {after})"
    );

    let mut fwd = Forwarder::load_with(&opts(&dir.1)).expect("reload");
    let mode = pair
        .in_b(|| fwd.attach("vb", AttachMode::Auto))
        .expect("take over");
    assert_eq!(mode, fib_ebpf::AttachedMode::TookOver);
    assert!(xdp_attached(&pair));
    assert!(ping(&pair));
    assert!(maps.stat(StatReason::PassNoRoute).unwrap().packets >= after + 2);

    fwd.detach("vb").expect("detach");
    drop(fwd);
    assert!(
        !xdp_attached(&pair),
        "detach removes the program from the interface"
    );
    assert!(ping(&pair));
}
