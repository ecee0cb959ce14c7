//! TCP sockets for BGP: the options a BGP speaker sets and the order it sets them in.
//!
//! ```text
//!   active:  socket() ─ TCP_MD5SIG(peer) ─ bind(local) ─ IP_TTL/MINTTL ─ NODELAY/buffers ─ connect()
//!   passive: accept() on the shared Listener ─ same per-peer options on the accepted socket
//! ```
//!
//! * TCP-MD5 (RFC 2385) must be on the socket before the SYN leaves (active) or on the listener for the
//!   peer's address before the SYN arrives (passive): the kernel signs/verifies every segment.
//! * GTSM (RFC 5082): send with TTL/hop limit 255 and drop anything that arrived with less than
//!   `256 - hops` (`IP_MINTTL`, `IPV6_MINHOPCOUNT`), so a remote attacker cannot reach the session.
//! * Multihop eBGP without GTSM only raises the sent TTL.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream};

/// How the IP TTL / hop limit of a session's segments is set and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum TtlMode {
    /// The kernel default TTL; nothing is checked.
    #[default]
    Default,
    /// Multihop eBGP: send with this TTL; nothing is checked.
    Multihop(u8),
    /// GTSM (RFC 5082) for a peer `hops` away (1 = directly connected): send with 255, accept only
    /// segments that arrive with at least `256 - hops`.
    Gtsm { hops: u8 },
}

impl TtlMode {
    /// TTL to send with, if not the kernel's default.
    pub fn send_ttl(self) -> Option<u8> {
        match self {
            TtlMode::Default => None,
            TtlMode::Multihop(ttl) => Some(ttl),
            TtlMode::Gtsm { .. } => Some(255),
        }
    }

    /// Minimum TTL a received segment must carry, if checked.
    pub fn min_ttl(self) -> Option<u8> {
        match self {
            TtlMode::Gtsm { hops } => Some((256 - u16::from(hops.max(1))) as u8),
            _ => None,
        }
    }
}

/// Per-peer socket settings shared by the active and the passive side.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SocketOptions {
    /// TCP-MD5 key (RFC 2385), at most 80 bytes.
    pub md5_key: Option<Vec<u8>>,
    pub ttl: TtlMode,
    /// Local address to bind the active connection to (also the session's transport address).
    pub local_addr: Option<IpAddr>,
    /// SO_RCVBUF / SO_SNDBUF; `None` leaves the kernel's autotuning alone.
    pub recv_buffer: Option<u32>,
    pub send_buffer: Option<u32>,
}

/// Largest key `TCP_MD5SIG` accepts (`TCP_MD5SIG_MAXKEYLEN`).
pub const MD5_MAX_KEY_LEN: usize = 80;

/// `struct tcp_md5sig` from `<linux/tcp.h>`.
#[repr(C)]
struct TcpMd5Sig {
    addr: libc::sockaddr_storage,
    flags: u8,
    prefixlen: u8,
    keylen: u16,
    ifindex: libc::c_int,
    key: [u8; MD5_MAX_KEY_LEN],
}

fn setsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` points at a live T of the size passed; the kernel copies it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether `fd` is an AF_INET6 socket.
fn is_ipv6_socket(fd: RawFd) -> io::Result<bool> {
    // SAFETY: getsockname into a zeroed sockaddr_storage of the size passed.
    unsafe {
        let mut ss: libc::sockaddr_storage = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        if libc::getsockname(
            fd,
            (&mut ss as *mut libc::sockaddr_storage).cast(),
            &mut len,
        ) != 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok(i32::from(ss.ss_family) == libc::AF_INET6)
    }
}

fn sockaddr_storage(ip: IpAddr, v6_socket: bool) -> libc::sockaddr_storage {
    // SAFETY: an all-zero sockaddr_storage is valid; we write a sockaddr_in/in6 prefix into it.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let ip = match ip {
        // An IPv4 peer seen through an IPv6 socket is a v4-mapped address.
        IpAddr::V4(v4) if v6_socket => IpAddr::V6(v4.to_ipv6_mapped()),
        other => other,
    };
    match ip {
        IpAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin) };
        }
        IpAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: 0,
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: sockaddr_in6 fits in sockaddr_storage.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin6) };
        }
    }
    ss
}

/// Installs (or with `None`/empty removes) the TCP-MD5 key for `peer` on `fd` (RFC 2385).
pub fn set_md5(fd: RawFd, peer: IpAddr, key: Option<&[u8]>) -> io::Result<()> {
    let key = key.unwrap_or(&[]);
    if key.len() > MD5_MAX_KEY_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "TCP-MD5 key is {} bytes, at most {MD5_MAX_KEY_LEN} allowed",
                key.len()
            ),
        ));
    }
    let mut sig = TcpMd5Sig {
        addr: sockaddr_storage(peer, is_ipv6_socket(fd)?),
        flags: 0,
        prefixlen: 0,
        keylen: key.len() as u16,
        ifindex: 0,
        key: [0; MD5_MAX_KEY_LEN],
    };
    sig.key[..key.len()].copy_from_slice(key);
    match setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_MD5SIG, &sig) {
        // Removing a key that was never installed is not an error for us.
        Err(e) if key.is_empty() && e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        other => other,
    }
}

/// Sets the TTL (IPv4) and unicast hop limit (IPv6) of sent segments.
pub fn set_ttl(fd: RawFd, ttl: u8) -> io::Result<()> {
    let v = libc::c_int::from(ttl);
    if is_ipv6_socket(fd)? {
        setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, &v)?;
        // An IPv6 socket may still carry IPv4 (v4-mapped peers): set both.
        let _ = setsockopt(fd, libc::IPPROTO_IP, libc::IP_TTL, &v);
        Ok(())
    } else {
        setsockopt(fd, libc::IPPROTO_IP, libc::IP_TTL, &v)
    }
}

/// Drops received segments whose TTL / hop limit is below `min` (GTSM, RFC 5082 §3).
pub fn set_min_ttl(fd: RawFd, min: u8) -> io::Result<()> {
    let v = libc::c_int::from(min);
    if is_ipv6_socket(fd)? {
        setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_MINHOPCOUNT, &v)?;
        let _ = setsockopt(fd, libc::IPPROTO_IP, libc::IP_MINTTL, &v);
        Ok(())
    } else {
        setsockopt(fd, libc::IPPROTO_IP, libc::IP_MINTTL, &v)
    }
}

/// `SO_LINGER {on, 0}`: close() sends RST and frees the socket at once (used to refuse).
pub fn set_linger_zero(fd: RawFd) -> io::Result<()> {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_LINGER, &l)
}

/// `IPV6_V6ONLY`, so an IPv6 listener leaves IPv4 to the IPv4 one.
pub fn set_v6only(fd: RawFd) -> io::Result<()> {
    setsockopt(
        fd,
        libc::IPPROTO_IPV6,
        libc::IPV6_V6ONLY,
        &1 as &libc::c_int,
    )
}

/// Bytes waiting in the receive queue (`FIONREAD`).
pub fn pending_bytes(fd: RawFd) -> io::Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    let rc = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
    if rc == 0 {
        Ok(n.max(0) as usize)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Applies the per-peer options that may be set on a connected (or accepted) socket.
pub fn configure_connected(stream: &TcpStream, opts: &SocketOptions) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let fd = stream.as_raw_fd();
    if let Some(ttl) = opts.ttl.send_ttl() {
        set_ttl(fd, ttl)?;
    }
    if let Some(min) = opts.ttl.min_ttl() {
        set_min_ttl(fd, min)?;
    }
    Ok(())
}

/// Opens the active connection to `peer`, with every option in place before the SYN is sent.
pub async fn connect(
    peer: SocketAddr,
    opts: &SocketOptions,
    timeout: Duration,
) -> io::Result<TcpStream> {
    let sock = if peer.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    let fd = sock.as_raw_fd();
    if let Some(key) = opts.md5_key.as_deref().filter(|k| !k.is_empty()) {
        set_md5(fd, peer.ip(), Some(key))?;
    }
    if let Some(local) = opts.local_addr {
        sock.bind(SocketAddr::new(local, 0))?;
    }
    if let Some(ttl) = opts.ttl.send_ttl() {
        set_ttl(fd, ttl)?;
    }
    if let Some(min) = opts.ttl.min_ttl() {
        set_min_ttl(fd, min)?;
    }
    if let Some(n) = opts.recv_buffer {
        sock.set_recv_buffer_size(n)?;
    }
    if let Some(n) = opts.send_buffer {
        sock.set_send_buffer_size(n)?;
    }
    sock.set_nodelay(true)?;
    match tokio::time::timeout(timeout, sock.connect(peer)).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("connect to {peer} timed out"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtsm_min_ttl_is_256_minus_hops_rfc5082_3() {
        assert_eq!(TtlMode::Gtsm { hops: 1 }.min_ttl(), Some(255));
        assert_eq!(TtlMode::Gtsm { hops: 2 }.min_ttl(), Some(254));
        assert_eq!(TtlMode::Gtsm { hops: 0 }.min_ttl(), Some(255));
        assert_eq!(TtlMode::Gtsm { hops: 1 }.send_ttl(), Some(255));
        assert_eq!(TtlMode::Multihop(5).send_ttl(), Some(5));
        assert_eq!(TtlMode::Multihop(5).min_ttl(), None);
        assert_eq!(TtlMode::Default.send_ttl(), None);
    }

    #[test]
    fn md5_key_longer_than_80_bytes_is_refused_rfc2385() {
        let s = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let err = set_md5(
            s.as_raw_fd(),
            "127.0.0.2".parse().unwrap(),
            Some(&[b'k'; 81]),
        )
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        set_md5(s.as_raw_fd(), "127.0.0.2".parse().unwrap(), Some(b"secret")).unwrap();
        set_md5(s.as_raw_fd(), "127.0.0.2".parse().unwrap(), None).unwrap();
    }
}
