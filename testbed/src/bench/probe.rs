//! Sampled forwarding lookups during failover, and the events that start the clock.
//!
//! ```text
//!   ribd:       a second copy of the forwarder loaded on ribd's pinned maps ──BPF_PROG_TEST_RUN──►
//!               one 64-octet UDP frame per sampled prefix → XDP_REDIRECT + destination MAC = which feeder
//!   BIRD, FRR:  `ip -batch` of `route get ADDR` (RTM_GETROUTE per sample) → "dev f0" / "dev f1"
//!   frozen peer: an AF_PACKET socket on the frozen feeder's interface stamps the dut's NOTIFICATION
//!   link down:   SIOCSIFFLAGS on the feeder's end, stamped just before the ioctl
//!   detection:   in the dut's namespace, an AF_PACKET socket with kernel timestamps (NOTIFICATION in
//!                or out, RST in) and an rtnetlink listener (carrier loss), both SCHED_FIFO
//! ```
//! Only samples are looked up: a full dump of a kernel table takes longer than the events measured.

use std::fs::File;
use std::io::Write as _;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use aya::programs::{TestRun, TestRunOptions};
use fib_ebpf::{Forwarder, LoadOptions};
use ipnet::IpNet;

use super::mono_ns;

/// Where the sampled flows go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// To the failed upstream.
    pub dead: usize,
    /// To the surviving upstream.
    pub survivor: usize,
    /// Nowhere usable: no route, unresolved, passed to the kernel, dropped.
    pub none: usize,
    /// When (mono_ns) the last lookup of the round that found the dead upstream was made (0: none);
    /// for `ip route get` rounds, which are one batch, the round's start (an earlier bound).
    pub dead_at: u64,
    /// The same for the last lookup not on the survivor (dead or nowhere).
    pub other_at: u64,
}

/// An address inside `p` (the first host, or the address itself for a host route).
pub fn host_in(p: &IpNet) -> IpAddr {
    let p = p.trunc();
    match p {
        IpNet::V4(n) if n.prefix_len() < 32 => IpAddr::V4((u32::from(n.network()) + 1).into()),
        IpNet::V6(n) if n.prefix_len() < 128 => IpAddr::V6((u128::from(n.network()) + 1).into()),
        _ => p.addr(),
    }
}

fn csum(data: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], 0])
        };
        s += u32::from(w);
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// A 64-octet (without FCS) Ethernet + IPv4/IPv6 + UDP frame to `dst` from port `sport`.
pub fn udp_frame(dst: IpAddr, sport: u16) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02];
    match dst {
        IpAddr::V4(d) => {
            f.extend_from_slice(&[0x08, 0x00]);
            let total: u16 = 20 + 8 + 22;
            let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0, 0, 64, 17, 0, 0, 198, 18, 0, 1];
            ip[2..4].copy_from_slice(&total.to_be_bytes());
            ip.extend_from_slice(&d.octets());
            let c = csum(&ip);
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            f.extend_from_slice(&ip);
            f.extend_from_slice(&sport.to_be_bytes());
            f.extend_from_slice(&9u16.to_be_bytes());
            f.extend_from_slice(&30u16.to_be_bytes());
            f.extend_from_slice(&[0, 0]);
            f.resize(64, 0);
        }
        IpAddr::V6(d) => {
            f.extend_from_slice(&[0x86, 0xdd]);
            let plen: u16 = 8 + 10;
            f.extend_from_slice(&[0x60, 0, 0, 0]);
            f.extend_from_slice(&plen.to_be_bytes());
            f.extend_from_slice(&[17, 64]);
            f.extend_from_slice(
                &"2001:db8::1"
                    .parse::<std::net::Ipv6Addr>()
                    .map(|a| a.octets())
                    .unwrap_or([0; 16]),
            );
            f.extend_from_slice(&d.octets());
            f.extend_from_slice(&sport.to_be_bytes());
            f.extend_from_slice(&9u16.to_be_bytes());
            f.extend_from_slice(&plen.to_be_bytes());
            f.extend_from_slice(&[0, 0]);
            f.resize(14 + 40 + plen as usize, 0);
        }
    }
    f
}

/// Lookups through the XDP forwarder on ribd's pinned maps.
pub struct XdpProbe {
    fwd: Forwarder,
    frames: Vec<Vec<u8>>,
    dead_mac: [u8; 6],
    survivor_mac: [u8; 6],
}

impl XdpProbe {
    pub fn new(
        instance: &str,
        samples: &[IpNet],
        dead_mac: [u8; 6],
        survivor_mac: [u8; 6],
    ) -> Result<XdpProbe> {
        let opts = LoadOptions {
            instance: Some(instance.to_string()),
            ..LoadOptions::default()
        };
        let fwd = Forwarder::load_with(&opts).context("loading the forwarder on ribd's pins")?;
        anyhow::ensure!(
            fwd.reused_pinned_maps(),
            "no pinned maps of ribd under {instance}"
        );
        let frames = samples
            .iter()
            .enumerate()
            .map(|(i, p)| udp_frame(host_in(p), 1024 + (i % 60000) as u16))
            .collect();
        Ok(XdpProbe {
            fwd,
            frames,
            dead_mac,
            survivor_mac,
        })
    }

    pub fn probe(&mut self) -> Result<Counts> {
        let prog = self.fwd.program()?;
        let mut c = Counts::default();
        let mut out = vec![0u8; 256];
        for f in &self.frames {
            let at = mono_ns();
            let r = prog
                .test_run(TestRunOptions {
                    data_in: Some(f),
                    data_out: Some(&mut out),
                    ..Default::default()
                })
                .context("BPF_PROG_TEST_RUN")?;
            // XDP_REDIRECT = 4: the destination MAC says which upstream.
            if r.return_value == 4 && out[..6] == self.dead_mac {
                c.dead += 1;
                (c.dead_at, c.other_at) = (at, at);
            } else if r.return_value == 4 && out[..6] == self.survivor_mac {
                c.survivor += 1;
            } else {
                c.none += 1;
                c.other_at = at;
            }
        }
        Ok(c)
    }
}

/// Lookups in the kernel FIB of the dut namespace (`ip route get`, one netlink request per sample).
pub struct KernelProbe {
    ns: String,
    input: String,
    n: usize,
    dead_dev: String,
    survivor_dev: String,
}

impl KernelProbe {
    pub fn new(ns: &str, samples: &[IpNet], dead_dev: &str, survivor_dev: &str) -> KernelProbe {
        let mut input = String::new();
        for p in samples {
            input.push_str(&format!("route get {}\n", host_in(p)));
        }
        KernelProbe {
            ns: ns.to_string(),
            input,
            n: samples.len(),
            dead_dev: format!(" dev {dead_dev} "),
            survivor_dev: format!(" dev {survivor_dev} "),
        }
    }

    pub fn probe(&mut self) -> Result<Counts> {
        let start = mono_ns();
        let mut child = Command::new("ip")
            .args(["-n", &self.ns, "-force", "-batch", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("ip -batch")?;
        child
            .stdin
            .take()
            .context("stdin")?
            .write_all(self.input.as_bytes())?;
        let out = child.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut c = Counts::default();
        for l in text.lines() {
            let l = format!("{l} ");
            if l.contains(&self.dead_dev) {
                c.dead += 1;
            } else if l.contains(&self.survivor_dev) {
                c.survivor += 1;
            }
        }
        c.none = self.n.saturating_sub(c.dead + c.survivor);
        if c.dead > 0 {
            c.dead_at = start;
        }
        if c.survivor < self.n {
            c.other_at = start;
        }
        Ok(c)
    }
}

pub enum Probe {
    Xdp(Box<XdpProbe>),
    Kernel(KernelProbe),
}

impl Probe {
    pub fn probe(&mut self) -> Result<Counts> {
        match self {
            Probe::Xdp(p) => p.probe(),
            Probe::Kernel(p) => p.probe(),
        }
    }
}

/// Runs `f` on a thread inside namespace `ns`.
pub fn in_ns<T: Send>(ns: &str, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    let file = File::open(format!("/var/run/netns/{ns}"))
        .with_context(|| format!("opening namespace {ns}"))?;
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: setns on a valid namespace fd affects only this scoped thread.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                bail!("setns {ns}: {}", std::io::Error::last_os_error());
            }
            f()
        })
        .join()
        .map_err(|_| anyhow::anyhow!("thread in {ns} panicked"))?
    })
}

/// The MAC address of `ifname` in `ns`.
pub fn mac_of(ns: &str, ifname: &str) -> Result<[u8; 6]> {
    let out = crate::netns::ip(&["-n", ns, "-j", "link", "show", "dev", ifname])?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let s = v[0]["address"]
        .as_str()
        .with_context(|| format!("no MAC for {ifname} in {ns}"))?;
    let mut mac = [0u8; 6];
    for (i, p) in s.split(':').enumerate().take(6) {
        mac[i] = u8::from_str_radix(p, 16)?;
    }
    Ok(mac)
}

/// Takes `ifname` in `ns` administratively down; returns the time just before the ioctl.
pub fn link_down(ns: &str, ifname: &str) -> Result<u64> {
    let name = ifname.to_string();
    in_ns(ns, move || {
        // SAFETY: a plain datagram socket for interface ioctls, closed below.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
        if fd < 0 {
            bail!("socket: {}", std::io::Error::last_os_error());
        }
        // SAFETY: ifreq is plain data; the name is NUL-terminated (shorter than IFNAMSIZ).
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (i, b) in name.bytes().take(libc::IFNAMSIZ - 1).enumerate() {
            req.ifr_name[i] = b as libc::c_char;
        }
        // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the flags member of our ifreq.
        let t = unsafe {
            if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) < 0 {
                libc::close(fd);
                bail!("SIOCGIFFLAGS {name}: {}", std::io::Error::last_os_error());
            }
            req.ifr_ifru.ifru_flags &= !(libc::IFF_UP as libc::c_short);
            let t = mono_ns();
            let rc = libc::ioctl(fd, libc::SIOCSIFFLAGS, &req);
            libc::close(fd);
            if rc < 0 {
                bail!("SIOCSIFFLAGS {name}: {}", std::io::Error::last_os_error());
            }
            t
        };
        Ok(t)
    })
}

/// Watches `ifname` in `ns` for a BGP NOTIFICATION sent by `from`; returns when it passed, or `None`
/// after `timeout`. Call [`NotificationSniffer::start`] before the event, [`NotificationSniffer::wait`] after.
pub struct NotificationSniffer {
    handle: Option<std::thread::JoinHandle<Result<Option<u64>>>>,
    found: std::sync::mpsc::Receiver<u64>,
}

/// Makes the calling thread SCHED_FIFO, so that a listener that sleeps until an event runs as soon
/// as the event wakes it (its timestamp is not delayed by a loaded machine). Best effort.
fn realtime_priority() {
    let p = libc::sched_param { sched_priority: 50 };
    // SAFETY: changes only the calling thread's policy.
    unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &p) };
}

fn is_notification_from(frame: &[u8], from: [u8; 4]) -> bool {
    if frame.len() < 14 + 20 || frame[12..14] != [0x08, 0x00] {
        return false;
    }
    let ip = &frame[14..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    if ip[9] != 6 || ip[12..16] != from || ip.len() < ihl + 20 {
        return false;
    }
    let tcp = &ip[ihl..];
    let doff = usize::from(tcp[12] >> 4) * 4;
    let Some(payload) = tcp.get(doff..) else {
        return false;
    };
    payload
        .windows(19)
        .any(|w| w[..16].iter().all(|&b| b == 0xff) && w[18] == 3)
}

impl NotificationSniffer {
    pub fn start(
        ns: &str,
        ifname: &str,
        from: std::net::Ipv4Addr,
        timeout: Duration,
    ) -> Result<NotificationSniffer> {
        let file = File::open(format!("/var/run/netns/{ns}"))?;
        let name = std::ffi::CString::new(ifname)?;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();
        let (found_tx, found) = std::sync::mpsc::channel::<u64>();
        let from = from.octets();
        let handle = std::thread::spawn(move || -> Result<Option<u64>> {
            realtime_priority();
            let setup = || -> Result<i32> {
                // SAFETY: setns on a valid namespace fd affects only this thread.
                if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    bail!("setns: {}", std::io::Error::last_os_error());
                }
                // SAFETY: valid NUL-terminated name.
                let idx = unsafe { libc::if_nametoindex(name.as_ptr()) };
                packet_socket(idx as i32, Duration::from_millis(100), false)
            };
            let fd = match setup() {
                Ok(fd) => {
                    let _ = ready_tx.send(Ok(()));
                    fd
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(anyhow::anyhow!("{e:#}")));
                    return Err(e);
                }
            };
            let deadline = std::time::Instant::now() + timeout;
            let mut buf = vec![0u8; 65536];
            let mut found = None;
            while std::time::Instant::now() < deadline {
                // SAFETY: recv into our buffer.
                let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
                if n > 0 && is_notification_from(&buf[..n as usize], from) {
                    let t = mono_ns();
                    found = Some(t);
                    let _ = found_tx.send(t);
                    break;
                }
            }
            // SAFETY: our socket.
            unsafe { libc::close(fd) };
            Ok(found)
        });
        ready_rx.recv().context("sniffer thread ended")??;
        Ok(NotificationSniffer {
            handle: Some(handle),
            found,
        })
    }

    /// When the NOTIFICATION passed, as soon as the sniffer saw it (closing its socket, which
    /// waits for an RCU grace period, happens afterwards and off the clock); `None` after the
    /// timeout.
    pub fn wait(mut self) -> Result<Option<u64>> {
        if let Ok(t) = self.found.recv() {
            // Not joined: the thread ends by itself once its socket is closed.
            drop(self.handle.take());
            return Ok(Some(t));
        }
        match self.handle.take() {
            Some(h) => h.join().map_err(|_| anyhow::anyhow!("sniffer panicked"))?,
            None => Ok(None),
        }
    }
}

/// What the system under test saw of a failure, each the first after [`DutWatch::start`], stamped
/// on [`mono_ns`]'s clock (CLOCK_MONOTONIC, the clock of the probe rounds).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// A BGP NOTIFICATION from the peer arrived on the dut's interface (kernel receive timestamp).
    pub notification_in: Option<u64>,
    /// The dut's own NOTIFICATION (e.g. Hold Timer Expired) left its interface (kernel timestamp).
    pub notification_out: Option<u64>,
    /// A TCP segment with RST from the peer arrived (kernel receive timestamp).
    pub rst_in: Option<u64>,
    /// The dut's kernel announced carrier loss on the interface: RTM_NEWLINK without IFF_LOWER_UP
    /// (or with an operstate other than up), as read by a listener in the dut's namespace; stamped
    /// when that listener read it (netlink has no kernel timestamp), so late by its wake-up at most.
    pub carrier_lost: Option<u64>,
}

impl Seen {
    fn merge(&mut self, o: Seen) {
        let first = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        };
        self.notification_in = first(self.notification_in, o.notification_in);
        self.notification_out = first(self.notification_out, o.notification_out);
        self.rst_in = first(self.rst_in, o.rst_in);
        self.carrier_lost = first(self.carrier_lost, o.carrier_lost);
    }
}

/// CLOCK_REALTIME in nanoseconds (packet timestamps are on it).
fn real_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// What a frame on the dut's interface says, for [`Seen`]: a NOTIFICATION or RST from `peer`, a
/// NOTIFICATION from `own`.
fn classify(frame: &[u8], peer: [u8; 4], own: [u8; 4]) -> Seen {
    let mut s = Seen::default();
    if frame.len() < 14 + 20 || frame[12..14] != [0x08, 0x00] {
        return s;
    }
    let ip = &frame[14..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    if ip[9] != 6 || ip.len() < ihl + 20 {
        return s;
    }
    let (src, tcp) = (&ip[12..16], &ip[ihl..]);
    let rst = tcp[13] & 0x04 != 0;
    let notification = is_notification_from(frame, [src[0], src[1], src[2], src[3]]);
    if src == peer {
        if rst {
            s.rst_in = Some(0);
        }
        if notification {
            s.notification_in = Some(0);
        }
    } else if src == own && notification {
        s.notification_out = Some(0);
    }
    s
}

/// Whether a rtnetlink datagram announces that interface `index` lost its carrier.
fn carrier_lost_in(buf: &[u8], index: i32) -> bool {
    const RTM_NEWLINK: u16 = 16;
    const IFLA_OPERSTATE: u16 = 16;
    const IF_OPER_UP: u8 = 6;
    let mut off = 0;
    while off + 16 <= buf.len() {
        let len = u32::from_ne_bytes([buf[off], buf[off + 1], buf[off + 2], buf[off + 3]]) as usize;
        let ty = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
        if len < 16 || off + len > buf.len() {
            return false;
        }
        let msg = &buf[off + 16..off + len];
        if ty == RTM_NEWLINK && msg.len() >= 16 {
            let idx = i32::from_ne_bytes([msg[4], msg[5], msg[6], msg[7]]);
            let flags = u32::from_ne_bytes([msg[8], msg[9], msg[10], msg[11]]);
            if idx == index {
                if flags & libc::IFF_LOWER_UP as u32 == 0 {
                    return true;
                }
                let mut a = 16;
                while a + 4 <= msg.len() {
                    let alen = usize::from(u16::from_ne_bytes([msg[a], msg[a + 1]]));
                    let aty = u16::from_ne_bytes([msg[a + 2], msg[a + 3]]) & 0x3fff;
                    if alen < 4 || a + alen > msg.len() {
                        break;
                    }
                    if aty == IFLA_OPERSTATE && alen >= 5 && msg[a + 4] != IF_OPER_UP {
                        return true;
                    }
                    a += (alen + 3) & !3;
                }
            }
        }
        off += (len + 3) & !3;
    }
    false
}

/// Watches the dut's interface while a failure happens: an AF_PACKET socket with kernel
/// timestamps (SO_TIMESTAMPNS) for NOTIFICATIONs and RSTs, and an rtnetlink link listener for
/// carrier loss, both inside the dut's namespace. [`DutWatch::finish`] stops them.
pub struct DutWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<Result<Seen>>>,
}

/// A raw packet socket (all protocols) bound to interface `ifindex` with a receive timeout, made on
/// this thread; with `timestamps`, each packet carries its kernel receive time (SO_TIMESTAMPNS).
fn packet_socket(ifindex: i32, timeout: Duration, timestamps: bool) -> Result<i32> {
    let proto = (libc::ETH_P_ALL as u16).to_be();
    let fd = socket_with_timeout(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto), timeout)?;
    // SAFETY: sockaddr_ll is plain data.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = ifindex;
    let on: i32 = 1;
    // SAFETY: setsockopt/bind on our socket with correctly sized values we own.
    let rc = unsafe {
        if timestamps {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&on as *const i32).cast(),
                size_of::<i32>() as u32,
            );
        }
        libc::bind(
            fd,
            (&sll as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if rc < 0 {
        let e = std::io::Error::last_os_error();
        // SAFETY: our socket.
        unsafe { libc::close(fd) };
        bail!("bind AF_PACKET: {e}");
    }
    Ok(fd)
}

/// A socket of `domain`/`ty`/`proto` with a receive timeout of `timeout` (under a second), made on
/// this thread (in its network namespace).
fn socket_with_timeout(domain: i32, ty: i32, proto: i32, timeout: Duration) -> Result<i32> {
    // SAFETY: a socket owned by the calling thread, closed by it.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        bail!("socket: {}", std::io::Error::last_os_error());
    }
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: timeout.subsec_micros().into(),
    };
    // SAFETY: setsockopt with a correctly sized timeval.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            size_of::<libc::timeval>() as u32,
        );
    }
    Ok(fd)
}

impl DutWatch {
    /// Starts watching `ifname` in `ns`, where `own` is the dut's address and `peer` the failing
    /// upstream's; returns once both listeners are in place.
    pub fn start(
        ns: &str,
        ifname: &str,
        own: std::net::Ipv4Addr,
        peer: std::net::Ipv4Addr,
    ) -> Result<DutWatch> {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let name = std::ffi::CString::new(ifname)?;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();
        let mut threads = Vec::new();
        for netlink in [false, true] {
            let file = File::open(format!("/var/run/netns/{ns}"))
                .with_context(|| format!("opening namespace {ns}"))?;
            let (name, stop, ready) = (name.clone(), stop.clone(), ready_tx.clone());
            let (own, peer) = (own.octets(), peer.octets());
            threads.push(std::thread::spawn(move || -> Result<Seen> {
                realtime_priority();
                let setup = || -> Result<(i32, i32)> {
                    // SAFETY: setns on a valid namespace fd affects only this thread.
                    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                        bail!("setns: {}", std::io::Error::last_os_error());
                    }
                    // SAFETY: valid NUL-terminated name.
                    let idx = unsafe { libc::if_nametoindex(name.as_ptr()) } as i32;
                    if idx == 0 {
                        bail!("no interface {name:?}");
                    }
                    let fd = if netlink {
                        let fd = socket_with_timeout(
                            libc::AF_NETLINK,
                            libc::SOCK_RAW,
                            libc::NETLINK_ROUTE,
                            Duration::from_millis(50),
                        )?;
                        // SAFETY: sockaddr_nl is plain data.
                        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
                        sa.nl_family = libc::AF_NETLINK as u16;
                        sa.nl_groups = libc::RTMGRP_LINK as u32;
                        // SAFETY: bind with a correctly sized sockaddr_nl.
                        if unsafe {
                            libc::bind(
                                fd,
                                (&sa as *const libc::sockaddr_nl).cast(),
                                size_of::<libc::sockaddr_nl>() as u32,
                            )
                        } < 0
                        {
                            let e = std::io::Error::last_os_error();
                            // SAFETY: our socket.
                            unsafe { libc::close(fd) };
                            bail!("bind rtnetlink: {e}");
                        }
                        fd
                    } else {
                        packet_socket(idx, Duration::from_millis(50), true)?
                    };
                    Ok((fd, idx))
                };
                let (fd, idx) = match setup() {
                    Ok(v) => {
                        let _ = ready.send(Ok(()));
                        v
                    }
                    Err(e) => {
                        let _ = ready.send(Err(anyhow::anyhow!("{e:#}")));
                        return Err(e);
                    }
                };
                let mut seen = Seen::default();
                let mut buf = vec![0u8; 65536];
                let mut ctl = [0u64; 16];
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let mut iov = libc::iovec {
                        iov_base: buf.as_mut_ptr().cast(),
                        iov_len: buf.len(),
                    };
                    // SAFETY: msghdr is plain data; it points at our buffers below.
                    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
                    msg.msg_iov = &mut iov;
                    msg.msg_iovlen = 1;
                    msg.msg_control = ctl.as_mut_ptr().cast();
                    msg.msg_controllen = size_of_val(&ctl);
                    // SAFETY: recvmsg into our buffers.
                    let n = unsafe { libc::recvmsg(fd, &mut msg, 0) };
                    let (mono, real) = (mono_ns(), real_ns());
                    if n <= 0 {
                        continue;
                    }
                    let data = &buf[..n as usize];
                    if netlink {
                        if seen.carrier_lost.is_none() && carrier_lost_in(data, idx) {
                            seen.carrier_lost = Some(mono);
                        }
                        continue;
                    }
                    let c = classify(data, peer, own);
                    if c == Seen::default() {
                        continue;
                    }
                    // The kernel's receive (or transmit) timestamp, moved onto the monotonic clock.
                    let mut at = mono;
                    // SAFETY: walking the control messages recvmsg filled in.
                    unsafe {
                        let mut cm = libc::CMSG_FIRSTHDR(&msg);
                        while !cm.is_null() {
                            if (*cm).cmsg_level == libc::SOL_SOCKET
                                && (*cm).cmsg_type == libc::SCM_TIMESTAMPNS
                            {
                                let ts: libc::timespec =
                                    std::ptr::read_unaligned(libc::CMSG_DATA(cm).cast());
                                let stamp = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
                                if stamp > 0 && stamp <= real {
                                    at = mono.saturating_sub(real - stamp);
                                }
                            }
                            cm = libc::CMSG_NXTHDR(&msg, cm);
                        }
                    }
                    let stamp = |v: Option<u64>| v.map(|_| at);
                    seen.merge(Seen {
                        notification_in: stamp(c.notification_in),
                        notification_out: stamp(c.notification_out),
                        rst_in: stamp(c.rst_in),
                        carrier_lost: None,
                    });
                }
                // SAFETY: our socket.
                unsafe { libc::close(fd) };
                Ok(seen)
            }));
        }
        drop(ready_tx);
        let mut watch = DutWatch { stop, threads };
        for _ in 0..2 {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    let _ = watch.stop_threads();
                    return Err(e.context(format!("watching {ifname} in {ns}")));
                }
                Err(_) => {
                    let _ = watch.stop_threads();
                    bail!("watcher thread ended");
                }
            }
        }
        Ok(watch)
    }

    fn stop_threads(&mut self) -> Result<Seen> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut seen = Seen::default();
        let mut err = None;
        for t in self.threads.drain(..) {
            match t.join() {
                Ok(Ok(s)) => seen.merge(s),
                Ok(Err(e)) => err = Some(e),
                Err(_) => err = Some(anyhow::anyhow!("watcher panicked")),
            }
        }
        match err {
            Some(e) => Err(e),
            None => Ok(seen),
        }
    }

    /// Stops watching; what was seen.
    pub fn finish(mut self) -> Result<Seen> {
        self.stop_threads()
    }
}

impl Drop for DutWatch {
    fn drop(&mut self) {
        let _ = self.stop_threads();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_64_octets_with_a_valid_ipv4_checksum() {
        let f = udp_frame("192.0.2.1".parse().unwrap(), 1000);
        assert_eq!(f.len(), 64);
        assert_eq!(csum(&f[14..34]), 0);
        assert_eq!(&f[30..34], &[192, 0, 2, 1]);
        let f6 = udp_frame("2001:db8::5".parse().unwrap(), 1000);
        assert_eq!(&f6[12..14], &[0x86, 0xdd]);
        assert_eq!(f6[14 + 6], 17);
    }

    #[test]
    fn sample_address_is_inside_the_prefix() {
        assert_eq!(
            host_in(&"10.1.0.0/16".parse().unwrap()),
            "10.1.0.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            host_in(&"10.1.2.3/32".parse().unwrap()),
            "10.1.2.3".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn notification_is_recognised_in_a_tcp_segment() {
        let mut f = vec![0u8; 14];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        let mut tcp = vec![0u8; 20];
        tcp[12] = 5 << 4;
        let mut bgp = vec![0xffu8; 16];
        bgp.extend_from_slice(&[0, 21, 3, 4, 0]);
        ip.append(&mut tcp);
        ip.append(&mut bgp);
        f.append(&mut ip);
        assert!(is_notification_from(&f, [10, 0, 0, 1]));
        assert!(!is_notification_from(&f, [10, 0, 0, 2]));
        let keepalive_at = f.len() - 3;
        f[keepalive_at] = 4;
        assert!(!is_notification_from(&f, [10, 0, 0, 1]));
    }

    fn tcp_frame(src: [u8; 4], flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 6, 0, 0];
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&[10, 0, 0, 9]);
        let mut tcp = vec![0u8; 20];
        tcp[12] = 5 << 4;
        tcp[13] = flags;
        f.extend_from_slice(&ip);
        f.extend_from_slice(&tcp);
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn dut_watch_tells_notifications_in_and_out_and_resets_apart() {
        let (peer, own) = ([10, 0, 0, 2], [10, 0, 0, 1]);
        let mut notification = vec![0xffu8; 16];
        notification.extend_from_slice(&[0, 21, 3, 4, 0]);
        let mut keepalive = vec![0xffu8; 16];
        keepalive.extend_from_slice(&[0, 19, 4]);
        let c = classify(&tcp_frame(peer, 0x18, &notification), peer, own);
        assert_eq!(
            (c.notification_in, c.notification_out, c.rst_in),
            (Some(0), None, None)
        );
        let c = classify(&tcp_frame(own, 0x18, &notification), peer, own);
        assert_eq!(
            (c.notification_in, c.notification_out, c.rst_in),
            (None, Some(0), None)
        );
        let c = classify(&tcp_frame(peer, 0x14, &[]), peer, own);
        assert_eq!(
            (c.notification_in, c.notification_out, c.rst_in),
            (None, None, Some(0))
        );
        assert_eq!(
            classify(&tcp_frame(peer, 0x18, &keepalive), peer, own),
            Seen::default()
        );
        assert_eq!(
            classify(&tcp_frame([10, 0, 1, 2], 0x14, &[]), peer, own),
            Seen::default()
        );
    }

    fn newlink(index: i32, flags: u32, operstate: Option<u8>) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&[0u8; 4]);
        m.extend_from_slice(&16u16.to_ne_bytes());
        m.extend_from_slice(&[0u8; 10]);
        m.extend_from_slice(&[0, 0, 1, 0]);
        m.extend_from_slice(&index.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        if let Some(o) = operstate {
            m.extend_from_slice(&5u16.to_ne_bytes());
            m.extend_from_slice(&16u16.to_ne_bytes());
            m.extend_from_slice(&[o, 0, 0, 0]);
        }
        let len = m.len() as u32;
        m[..4].copy_from_slice(&len.to_ne_bytes());
        m
    }

    #[test]
    fn carrier_loss_is_read_from_rtm_newlink() {
        let up = (libc::IFF_UP | libc::IFF_LOWER_UP | libc::IFF_RUNNING) as u32;
        let admin_up_only = libc::IFF_UP as u32;
        assert!(!carrier_lost_in(&newlink(3, up, Some(6)), 3));
        assert!(carrier_lost_in(&newlink(3, admin_up_only, Some(2)), 3));
        assert!(carrier_lost_in(&newlink(3, up, Some(7)), 3));
        assert!(!carrier_lost_in(&newlink(4, admin_up_only, Some(2)), 3));
        // Two messages in one datagram: the second one says it.
        let mut two = newlink(4, admin_up_only, None);
        two.extend_from_slice(&newlink(3, admin_up_only, None));
        assert!(carrier_lost_in(&two, 3));
    }
}
