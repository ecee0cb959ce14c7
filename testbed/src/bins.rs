//! The workspace's own binaries for tests that run them as processes (`ribd`, `ribctl`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Path of a workspace binary: `$<NAME>_BIN` when set (e.g. `RIBD_BIN`), else built with cargo (a no-op
/// when up to date) and located from cargo's own report.
pub fn workspace_bin(package: &str, bin: &str) -> Result<PathBuf> {
    let var = format!("{}_BIN", bin.to_uppercase());
    if let Some(p) = std::env::var_os(&var) {
        return std::fs::canonicalize(&p)
            .with_context(|| format!("{var}={}", Path::new(&p).display()));
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?;
    let out = Command::new(cargo)
        .current_dir(root)
        .args([
            "build",
            "-p",
            package,
            "--bin",
            bin,
            "--message-format=json",
        ])
        .output()
        .with_context(|| format!("running cargo build -p {package}"))?;
    if !out.status.success() {
        bail!(
            "cargo build -p {package} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"]["name"] == bin)
        .filter_map(|v| v["executable"].as_str().map(PathBuf::from))
        .next_back()
        .with_context(|| format!("cargo did not report the {bin} executable"))
}

/// A GET (or POST) over the control API's Unix socket; returns (status, body).
pub fn api(sock: &Path, method: &str, path: &str) -> Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(sock)
        .with_context(|| format!("connecting to {}", sock.display()))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: ribd\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("no HTTP status")?;
    Ok((status, body.to_string()))
}

/// GET `path` from the control API and parse its JSON body; panics naming the path on any failure
/// or a status other than 200 (for tests).
pub fn get_json(sock: &Path, path: &str) -> serde_json::Value {
    let (code, body) = api(sock, "GET", path).unwrap_or_else(|e| panic!("GET {path}: {e:#}"));
    assert_eq!(code, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

/// Polls `f` every 100 ms until it holds; panics naming `what` once `timeout` has passed (for
/// tests).
pub fn wait_until(what: &str, timeout: std::time::Duration, mut f: impl FnMut() -> bool) {
    let t0 = std::time::Instant::now();
    while !f() {
        assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
