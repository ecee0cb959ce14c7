//! A small blocking HTTP/1.1 client for ribd's control API, over the Unix socket or TCP.
//!
//! ```text
//!   Client::get/post(path) ──connect──► UnixStream (socket) | TcpStream (--url, Bearer token)
//!        ▲                               │ one request per connection, `Connection: close`
//!        └── JSON → API type ◄── read_response: status line, headers, body by
//!                                 chunked | Content-Length | until EOF
//! ```
//!
//! One request per connection keeps the client trivial and costs nothing next to the daemon's work; large
//! tables are fetched page by page (`limit`/`after`), so no single answer is large. Connection and status
//! errors become [`Error`]s that say what to do (which socket was tried, its mode and group, ...).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ribd::api::ErrorBody;
use serde::de::DeserializeOwned;

use crate::error::Error;

/// Largest response ribctl accepts (one page of a table is far below this).
pub const MAX_BODY: usize = 256 << 20;
/// Largest header block.
const MAX_HEAD: usize = 64 << 10;

/// Where the daemon is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Unix(PathBuf),
    Tcp {
        host: String,
        port: u16,
        token: Option<String>,
    },
}

impl Target {
    /// Parses `http://HOST:PORT[/]` (HOST may be `[v6]`).
    pub fn from_url(url: &str, token: Option<String>) -> Result<Target, Error> {
        let rest = if let Some(r) = url.strip_prefix("http://") {
            r
        } else if url.starts_with("https://") {
            return Err(Error::Usage(format!(
                "--url {url}: https is not supported; reach ribd's TCP listener over plain http \
                 (e.g. through an SSH tunnel) or use the Unix socket"
            )));
        } else {
            return Err(Error::Usage(format!(
                "--url {url}: expected http://HOST:PORT (e.g. http://127.0.0.1:8179)"
            )));
        };
        let authority = rest.trim_end_matches('/');
        if authority.contains('/') {
            return Err(Error::Usage(format!(
                "--url {url}: give only http://HOST:PORT, without a path"
            )));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, p) = v6.split_once("]:").ok_or_else(|| {
                Error::Usage(format!("--url {url}: expected http://[ADDRESS]:PORT"))
            })?;
            (h.to_string(), p)
        } else {
            let (h, p) = authority.rsplit_once(':').ok_or_else(|| {
                Error::Usage(format!(
                    "--url {url}: the port is missing (http://HOST:PORT)"
                ))
            })?;
            (h.to_string(), p)
        };
        let port: u16 = port
            .parse()
            .map_err(|_| Error::Usage(format!("--url {url}: {port:?} is not a port number")))?;
        if host.is_empty() {
            return Err(Error::Usage(format!("--url {url}: the host is missing")));
        }
        Ok(Target::Tcp { host, port, token })
    }

    /// How the target is named in messages.
    pub fn describe(&self) -> String {
        match self {
            Target::Unix(p) => p.display().to_string(),
            Target::Tcp { host, port, .. } if host.contains(':') => {
                format!("http://[{host}]:{port}")
            }
            Target::Tcp { host, port, .. } => format!("http://{host}:{port}"),
        }
    }
}

/// A response as read off the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The API client.
#[derive(Debug, Clone)]
pub struct Client {
    target: Target,
    timeout: Duration,
}

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

impl Client {
    pub fn new(target: Target, timeout: Duration) -> Client {
        Client { target, timeout }
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// `GET path` decoded as `T`.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        let r = self.request("GET", path)?;
        self.decode(path, r)
    }

    /// `POST path` (empty body) decoded as `T`.
    pub fn post<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        let r = self.request("POST", path)?;
        self.decode(path, r)
    }

    fn decode<T: DeserializeOwned>(&self, path: &str, r: Response) -> Result<T, Error> {
        if !(200..300).contains(&r.status) {
            return Err(status_error(&self.target, path, &r));
        }
        serde_json::from_slice(&r.body).map_err(|e| {
            Error::Api(format!(
                "cannot read the answer to {path} ({e}); is ribd the same version as ribctl ({})?",
                env!("CARGO_PKG_VERSION")
            ))
        })
    }

    /// Sends one request and reads the whole response, whatever its status.
    pub fn request(&self, method: &str, path: &str) -> Result<Response, Error> {
        let mut stream = self.connect()?;
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: ribctl/{}\r\nAccept: application/json\r\n\
             Connection: close\r\n",
            self.host_header(),
            env!("CARGO_PKG_VERSION")
        );
        if method != "GET" {
            req.push_str("Content-Length: 0\r\n");
        }
        if let Target::Tcp { token: Some(t), .. } = &self.target {
            req.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        req.push_str("\r\n");
        stream
            .write_all(req.as_bytes())
            .and_then(|_| stream.flush())
            .map_err(|e| self.io_error("sending the request", &e))?;
        let mut reader = BufReader::new(stream);
        read_response(&mut reader, method == "HEAD").map_err(|e| match e {
            ReadError::Io(e) => self.io_error("reading the answer", &e),
            ReadError::Protocol(m) => Error::Api(format!(
                "malformed HTTP answer from {} to {method} {path}: {m}",
                self.target.describe()
            )),
        })
    }

    fn host_header(&self) -> String {
        match &self.target {
            Target::Unix(_) => "localhost".to_string(),
            Target::Tcp { host, port, .. } if host.contains(':') => format!("[{host}]:{port}"),
            Target::Tcp { host, port, .. } => format!("{host}:{port}"),
        }
    }

    fn connect(&self) -> Result<Box<dyn Stream>, Error> {
        match &self.target {
            Target::Unix(path) => {
                let s = UnixStream::connect(path).map_err(|e| unix_connect_error(path, &e))?;
                s.set_read_timeout(Some(self.timeout))
                    .and_then(|_| s.set_write_timeout(Some(self.timeout)))
                    .map_err(|e| self.io_error("setting timeouts", &e))?;
                Ok(Box::new(s))
            }
            Target::Tcp { host, port, .. } => {
                let addrs =
                    (host.as_str(), *port)
                        .to_socket_addrs()
                        .map_err(|e| Error::Unreachable {
                            target: self.target.describe(),
                            detail: format!("cannot resolve {host}: {e}"),
                        })?;
                let mut last = None;
                for a in addrs {
                    match TcpStream::connect_timeout(&a, self.timeout) {
                        Ok(s) => {
                            s.set_read_timeout(Some(self.timeout))
                                .and_then(|_| s.set_write_timeout(Some(self.timeout)))
                                .map_err(|e| self.io_error("setting timeouts", &e))?;
                            return Ok(Box::new(s));
                        }
                        Err(e) => last = Some(e),
                    }
                }
                let detail = match last {
                    Some(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                        "connection refused: is ribd running, and is its TCP API listener \
                         enabled in the config on this address?"
                            .to_string()
                    }
                    Some(e) => e.to_string(),
                    None => format!("{host} has no address"),
                };
                Err(Error::Unreachable {
                    target: self.target.describe(),
                    detail,
                })
            }
        }
    }

    fn io_error(&self, doing: &str, e: &io::Error) -> Error {
        let detail = match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => format!(
                "no answer within {} s while {doing} (ribd busy or hung? raise --timeout)",
                self.timeout.as_secs_f64()
            ),
            io::ErrorKind::UnexpectedEof => {
                format!("ribd closed the connection while {doing} (did it exit?)")
            }
            _ => format!("{doing}: {e}"),
        };
        Error::Unreachable {
            target: self.target.describe(),
            detail,
        }
    }
}

/// Turns a failed `connect()` on the control socket into advice.
pub fn unix_connect_error(path: &Path, e: &io::Error) -> Error {
    let target = path.display().to_string();
    let start = "start it with `ribd --config FILE`, or point ribctl at its socket with --socket PATH \
                 or RIBCTL_SOCKET";
    match e.kind() {
        io::ErrorKind::NotFound => Error::Unreachable {
            target,
            detail: format!("no such socket: ribd is not running or listens elsewhere; {start}"),
        },
        io::ErrorKind::ConnectionRefused => {
            let not_socket = std::fs::metadata(path)
                .map(|m| !m.file_type().is_socket())
                .unwrap_or(false);
            let detail = if not_socket {
                format!("{target} is not a socket; {start}")
            } else {
                format!(
                    "nobody is listening on the socket (ribd exited and left it behind?); {start}"
                )
            };
            Error::Unreachable { target, detail }
        }
        io::ErrorKind::PermissionDenied => Error::Permission {
            detail: permission_advice(path),
            target,
        },
        _ => Error::Unreachable {
            target,
            detail: e.to_string(),
        },
    }
}

/// Says what the socket's mode and owner are and who may connect.
fn permission_advice(path: &Path) -> String {
    match std::fs::metadata(path) {
        Ok(m) => {
            let mode = m.mode() & 0o7777;
            let user = name_of("/etc/passwd", m.uid());
            let group = name_of("/etc/group", m.gid());
            format!(
                "the socket is mode {mode:04o}, owner {user}, group {group}; connecting needs write \
                 permission: run ribctl as root or as a member of group {group} (ribd creates the \
                 socket mode 0660; check the `api` group setting in its config)"
            )
        }
        Err(_) => {
            let dir = path.parent().map(|d| d.display().to_string());
            format!(
                "cannot reach the socket through its directory {}: it must be searchable (x) by \
                 this user; run ribctl as root or fix the directory's mode/group",
                dir.unwrap_or_default()
            )
        }
    }
}

/// The name for `id` in a passwd/group style file, or the number.
fn name_of(file: &str, id: u32) -> String {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                let _pw = f.next()?;
                (f.next()?.parse::<u32>().ok()? == id).then(|| name.to_string())
            })
        })
        .unwrap_or_else(|| id.to_string())
}

/// An error while reading a response.
#[derive(Debug)]
pub enum ReadError {
    Io(io::Error),
    Protocol(String),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

fn protocol(m: impl Into<String>) -> ReadError {
    ReadError::Protocol(m.into())
}

/// Reads one HTTP/1.x response: status line, headers, and a body framed by chunked transfer coding,
/// Content-Length, or the end of the connection. 1xx interim responses are skipped.
pub fn read_response<R: BufRead>(r: &mut R, head: bool) -> Result<Response, ReadError> {
    loop {
        let (status, reason) = read_status_line(r)?;
        let headers = read_headers(r)?;
        if (100..200).contains(&status) {
            continue;
        }
        let mut resp = Response {
            status,
            reason,
            headers,
            body: Vec::new(),
        };
        if head || status == 204 || status == 304 {
            return Ok(resp);
        }
        let chunked = resp
            .header("transfer-encoding")
            .map(|v| {
                v.split(',')
                    .any(|c| c.trim().eq_ignore_ascii_case("chunked"))
            })
            .unwrap_or(false);
        if chunked {
            resp.body = read_chunked(r)?;
        } else if let Some(len) = resp.header("content-length") {
            let len: usize = len
                .trim()
                .parse()
                .map_err(|_| protocol(format!("bad Content-Length {len:?}")))?;
            if len > MAX_BODY {
                return Err(protocol(format!("body of {len} bytes is too large")));
            }
            resp.body = vec![0; len];
            r.read_exact(&mut resp.body)?;
        } else {
            r.take(MAX_BODY as u64 + 1).read_to_end(&mut resp.body)?;
            if resp.body.len() > MAX_BODY {
                return Err(protocol("body too large"));
            }
        }
        return Ok(resp);
    }
}

fn read_line<R: BufRead>(r: &mut R, what: &str) -> Result<String, ReadError> {
    let mut buf = Vec::new();
    let n = r.take(MAX_HEAD as u64).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Err(ReadError::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("connection closed before the {what}"),
        )));
    }
    if !buf.ends_with(b"\n") {
        return Err(protocol(format!("{what} is not terminated")));
    }
    buf.pop();
    if buf.ends_with(b"\r") {
        buf.pop();
    }
    String::from_utf8(buf).map_err(|_| protocol(format!("{what} is not text")))
}

fn read_status_line<R: BufRead>(r: &mut R) -> Result<(u16, String), ReadError> {
    let line = read_line(r, "status line")?;
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(protocol(format!("not an HTTP/1 status line: {line:?}")));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| (100..600).contains(s))
        .ok_or_else(|| protocol(format!("bad status line {line:?}")))?;
    Ok((status, parts.next().unwrap_or_default().to_string()))
}

fn read_headers<R: BufRead>(r: &mut R) -> Result<Vec<(String, String)>, ReadError> {
    let mut headers = Vec::new();
    let mut total = 0;
    loop {
        let line = read_line(r, "headers")?;
        if line.is_empty() {
            return Ok(headers);
        }
        total += line.len();
        if total > MAX_HEAD {
            return Err(protocol("header block too large"));
        }
        let (n, v) = line
            .split_once(':')
            .ok_or_else(|| protocol(format!("bad header line {line:?}")))?;
        headers.push((n.trim().to_string(), v.trim().to_string()));
    }
}

fn read_chunked<R: BufRead>(r: &mut R) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    loop {
        let line = read_line(r, "chunk size")?;
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16)
            .map_err(|_| protocol(format!("bad chunk size line {line:?}")))?;
        if size == 0 {
            // Trailers, up to the empty line.
            while !read_line(r, "trailers")?.is_empty() {}
            return Ok(body);
        }
        if body.len() + size > MAX_BODY {
            return Err(protocol("chunked body too large"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf)?;
        if &crlf != b"\r\n" {
            return Err(protocol("chunk data not followed by CRLF"));
        }
    }
}

/// Maps a non-2xx answer to an [`Error`], using the daemon's [`ErrorBody`] when there is one.
pub fn status_error(target: &Target, path: &str, r: &Response) -> Error {
    let msg = match serde_json::from_slice::<ErrorBody>(&r.body) {
        Ok(b) => b.error,
        Err(_) => {
            let text = String::from_utf8_lossy(&r.body).trim().to_string();
            if text.is_empty() {
                format!("{} {} for {path}", r.status, r.reason)
            } else {
                text
            }
        }
    };
    match r.status {
        404 => Error::NotFound(msg),
        400 => Error::Usage(format!("ribd rejected the request: {msg}")),
        409 | 422 => Error::Refused(msg),
        401 | 403 => Error::Permission {
            target: target.describe(),
            detail: format!(
                "{msg} (HTTP {}); give the API token with --token-file FILE or RIBCTL_TOKEN",
                r.status
            ),
        },
        s => Error::Api(format!("HTTP {s} for {path}: {msg}")),
    }
}

/// Percent-encodes a path segment or query value (RFC 3986 unreserved characters and `:` stay).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Builds `path?k=v&...` from the pairs whose value is set.
pub fn with_query(path: &str, pairs: &[(&str, Option<String>)]) -> String {
    let q: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v))))
        .collect();
    if q.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", q.join("&"))
    }
}
