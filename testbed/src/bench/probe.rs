//! Sampled forwarding lookups during failover, and the events that start the clock.
//!
//! ```text
//!   ribd:       a second copy of the forwarder loaded on ribd's pinned maps ──BPF_PROG_TEST_RUN──►
//!               one 64-octet UDP frame per sampled prefix → XDP_REDIRECT + destination MAC = which feeder
//!   BIRD, FRR:  `ip -batch` of `route get ADDR` (RTM_GETROUTE per sample) → "dev f0" / "dev f1"
//!   frozen peer: an AF_PACKET socket on the frozen feeder's interface stamps the dut's NOTIFICATION
//!   link down:   SIOCSIFFLAGS on the feeder's end, stamped just before the ioctl
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
            } else if r.return_value == 4 && out[..6] == self.survivor_mac {
                c.survivor += 1;
            } else {
                c.none += 1;
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
    handle: std::thread::JoinHandle<Result<Option<u64>>>,
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
        let from = from.octets();
        let handle = std::thread::spawn(move || -> Result<Option<u64>> {
            let setup = || -> Result<i32> {
                // SAFETY: setns on a valid namespace fd affects only this thread.
                if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    bail!("setns: {}", std::io::Error::last_os_error());
                }
                let proto = (libc::ETH_P_ALL as u16).to_be();
                // SAFETY: a packet socket, owned by this thread and closed at its end.
                let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto)) };
                if fd < 0 {
                    bail!("AF_PACKET socket: {}", std::io::Error::last_os_error());
                }
                // SAFETY: valid NUL-terminated name.
                let idx = unsafe { libc::if_nametoindex(name.as_ptr()) };
                // SAFETY: sockaddr_ll is plain data.
                let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
                sll.sll_family = libc::AF_PACKET as u16;
                sll.sll_protocol = proto;
                sll.sll_ifindex = idx as i32;
                let tv = libc::timeval {
                    tv_sec: 0,
                    tv_usec: 100_000,
                };
                // SAFETY: bind/setsockopt with correctly sized structs we own.
                unsafe {
                    if libc::bind(
                        fd,
                        (&sll as *const libc::sockaddr_ll).cast(),
                        size_of::<libc::sockaddr_ll>() as u32,
                    ) < 0
                    {
                        libc::close(fd);
                        bail!("bind AF_PACKET: {}", std::io::Error::last_os_error());
                    }
                    libc::setsockopt(
                        fd,
                        libc::SOL_SOCKET,
                        libc::SO_RCVTIMEO,
                        (&tv as *const libc::timeval).cast(),
                        size_of::<libc::timeval>() as u32,
                    );
                }
                Ok(fd)
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
                    found = Some(mono_ns());
                    break;
                }
            }
            // SAFETY: our socket.
            unsafe { libc::close(fd) };
            Ok(found)
        });
        ready_rx.recv().context("sniffer thread ended")??;
        Ok(NotificationSniffer { handle })
    }

    pub fn wait(self) -> Result<Option<u64>> {
        self.handle
            .join()
            .map_err(|_| anyhow::anyhow!("sniffer panicked"))?
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
}
