//! HTTP client plumbing: response framing (Content-Length, chunked with extensions and trailers, EOF,
//! interim 1xx), status → error mapping, timeouts, the bearer token over TCP. The servers here are
//! scripted byte streams on a socket, standing in for ribd only to exercise the transport; every
//! command's behaviour against the real daemon is in `e2e.rs`.

use std::io::{BufRead, BufReader, Cursor, Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::Duration;

use ribctl::client::{Client, ReadError, Target, encode, read_response, with_query};
use ribctl::error::Error;
use ribd::api::{ActionResult, CheckReport};

fn parse(bytes: &[u8]) -> Result<ribctl::client::Response, ReadError> {
    read_response(&mut Cursor::new(bytes.to_vec()), false)
}

#[test]
fn content_length_body() {
    let r = parse(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"a\":1234}\nEXTRA").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(r.body, b"{\"a\":1234}\n");
}

#[test]
fn chunked_body_with_extensions_and_trailers() {
    let r = parse(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
          5;name=value\r\n{\"ok\"\r\n\
          1B\r\n:true,\"message\":\"reloa\"}   \r\n\
          0\r\nX-Trailer: 1\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.body, b"{\"ok\":true,\"message\":\"reloa\"}   ");
    let a: ActionResult = serde_json::from_slice(&r.body).unwrap();
    assert!(a.ok);
}

#[test]
fn body_until_eof_without_length() {
    let r = parse(b"HTTP/1.0 500 Internal Server Error\r\n\r\nboom").unwrap();
    assert_eq!(
        (r.status, r.reason.as_str()),
        (500, "Internal Server Error")
    );
    assert_eq!(r.body, b"boom");
}

#[test]
fn interim_100_continue_is_skipped() {
    let r = parse(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n").unwrap();
    assert_eq!(r.status, 204);
    assert!(r.body.is_empty());
}

#[test]
fn malformed_answers_are_protocol_errors() {
    for bad in [
        &b"SSH-2.0-OpenSSH\r\n\r\n"[..],
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY0\r\n\r\n",
    ] {
        match parse(bad) {
            Err(ReadError::Protocol(_)) => {}
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(bad)),
        }
    }
}

#[test]
fn truncated_answers_are_io_errors() {
    for bad in [
        &b""[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc",
    ] {
        assert!(
            matches!(parse(bad), Err(ReadError::Io(_))),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn query_values_are_percent_encoded() {
    assert_eq!(encode("2001:db8::_32"), "2001:db8::_32");
    assert_eq!(encode("^64501_ .*$"), "%5E64501_%20.%2A%24");
    assert_eq!(encode("a+b/c&d=e"), "a%2Bb%2Fc%26d%3De");
    assert_eq!(
        with_query(
            "/v1/rib/ipv4",
            &[
                ("prefix", Some("10.0.0.0/8".into())),
                ("peer", None),
                ("limit", Some("2".into()))
            ]
        ),
        "/v1/rib/ipv4?prefix=10.0.0.0%2F8&limit=2"
    );
    assert_eq!(with_query("/v1/fib", &[("after", None)]), "/v1/fib");
}

#[test]
fn urls_are_checked() {
    assert_eq!(
        Target::from_url("http://127.0.0.1:8179/", None).unwrap(),
        Target::Tcp {
            host: "127.0.0.1".into(),
            port: 8179,
            token: None
        }
    );
    let v6 = Target::from_url("http://[::1]:8179", Some("t".into())).unwrap();
    assert_eq!(v6.describe(), "http://[::1]:8179");
    for bad in [
        "https://x:1",
        "ftp://x:1",
        "http://x",
        "http://x:99999",
        "http://:80",
        "http://x:80/v1",
    ] {
        assert!(
            matches!(Target::from_url(bad, None), Err(Error::Usage(_))),
            "{bad}"
        );
    }
}

/// A scripted server on a Unix socket: answers each connection with the next canned response and
/// hands the request head it read back through the join handle.
fn serve_unix(answers: Vec<Vec<u8>>) -> (tempfile::TempDir, PathBuf, JoinHandle<Vec<String>>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ribd.sock");
    let l = UnixListener::bind(&path).unwrap();
    let h = std::thread::spawn(move || {
        let mut heads = Vec::new();
        for a in answers {
            let (s, _) = l.accept().unwrap();
            let mut r = BufReader::new(s);
            heads.push(read_head(&mut r));
            let mut s = r.into_inner();
            s.write_all(&a).unwrap();
        }
        heads
    });
    (dir, path, h)
}

fn answer(status: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn read_head(r: &mut impl BufRead) -> String {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
            return head;
        }
        head.push_str(&line);
    }
}

fn client(path: PathBuf) -> Client {
    Client::new(Target::Unix(path), Duration::from_secs(5))
}

#[test]
fn status_codes_map_to_operator_errors() {
    let (_d, path, h) = serve_unix(vec![
        answer("404 Not Found", r#"{"error":"unknown peer \"nope\""}"#),
        answer("400 Bad Request", r#"{"error":"bad regex \"(\""}"#),
        b"HTTP/1.1 500 Internal Server Error\r\ntransfer-encoding: chunked\r\n\r\n13\r\n{\"error\":\"rib busy\"\r\n1\r\n}\r\n0\r\n\r\n".to_vec(),
        answer("403 Forbidden", ""),
        answer("404 Not Found", ""),
        answer("200 OK", "not json!"),
        answer("409 Conflict", r#"{"error":"peer x is not established"}"#),
        answer("422 Unprocessable Entity", r#"{"error":"reload rejected: ribd.toml:3: ..."}"#),
    ]);
    let c = client(path);
    let e = c.get::<CheckReport>("/v1/peers/nope").unwrap_err();
    assert_eq!(e, Error::NotFound("unknown peer \"nope\"".into()));
    assert_eq!(e.exit_code(), 1);
    let e = c.get::<CheckReport>("/v1/rib/ipv4?as-path=(").unwrap_err();
    assert_eq!(e.exit_code(), 2, "{e}");
    assert!(e.to_string().contains("bad regex"), "{e}");
    let e = c.post::<ActionResult>("/v1/reload").unwrap_err();
    assert_eq!(e.exit_code(), 5);
    assert!(e.to_string().contains("rib busy"), "{e}");
    let e = c.get::<CheckReport>("/v1/fib/check").unwrap_err();
    assert_eq!(e.exit_code(), 4, "{e}");
    // A 404 without a body (an endpoint this ribd does not have) names the path.
    let e = c.get::<CheckReport>("/v1/new-thing").unwrap_err();
    assert!(e.to_string().contains("/v1/new-thing"), "{e}");
    let e = c.get::<CheckReport>("/v1/fib/check").unwrap_err();
    assert_eq!(e.exit_code(), 5);
    assert!(e.to_string().contains("same version"), "{e}");
    // Refusals are negative answers (exit 1), with the daemon's reason.
    let e = c.post::<ActionResult>("/v1/peers/x/refresh").unwrap_err();
    assert_eq!(e, Error::Refused("peer x is not established".into()));
    assert_eq!(e.exit_code(), 1);
    let e = c.post::<ActionResult>("/v1/reload").unwrap_err();
    assert_eq!(e.exit_code(), 1);
    assert!(e.to_string().starts_with("refused: reload rejected"), "{e}");

    let heads = h.join().unwrap();
    assert!(
        heads[0].starts_with("GET /v1/peers/nope HTTP/1.1\r\n"),
        "{}",
        heads[0]
    );
    assert!(heads[0].contains("Connection: close\r\n"));
    assert!(
        !heads[0].contains("Authorization"),
        "no token over the socket"
    );
    assert!(heads[2].starts_with("POST /v1/reload HTTP/1.1\r\n"));
    assert!(heads[2].contains("Content-Length: 0\r\n"));
}

#[test]
fn daemon_closing_without_answer_or_hanging_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ribd.sock");
    let l = UnixListener::bind(&path).unwrap();
    let h = std::thread::spawn(move || {
        // First connection: read the request, close without a word.
        let (s, _) = l.accept().unwrap();
        read_head(&mut BufReader::new(&s));
        drop(s);
        // Second: read it and say nothing until the client gives up.
        let (s, _) = l.accept().unwrap();
        read_head(&mut BufReader::new(&s));
        let mut buf = [0u8; 1];
        let _ = (&s).read(&mut buf);
    });
    let c = client(path.clone());
    let e = c.get::<CheckReport>("/v1/fib/check").unwrap_err();
    assert_eq!(e.exit_code(), 3);
    assert!(e.to_string().contains("closed the connection"), "{e}");
    let c = Client::new(Target::Unix(path), Duration::from_millis(300));
    let e = c.get::<CheckReport>("/v1/fib/check").unwrap_err();
    assert_eq!(e.exit_code(), 3);
    assert!(e.to_string().contains("no answer within"), "{e}");
    h.join().unwrap();
}

#[test]
fn tcp_sends_the_bearer_token() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let mut r = BufReader::new(s);
        let head = read_head(&mut r);
        let body = b"{\"ok\":true,\"checked\":3,\"differences\":[]}";
        let mut s = r.into_inner();
        write!(
            s,
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .unwrap();
        s.write_all(body).unwrap();
        head
    });
    let c = Client::new(
        Target::from_url(&format!("http://127.0.0.1:{port}"), Some("s3cret".into())).unwrap(),
        Duration::from_secs(5),
    );
    let r: CheckReport = c.get("/v1/fib/check").unwrap();
    assert_eq!(r.checked, 3);
    let head = h.join().unwrap();
    assert!(head.contains("Authorization: Bearer s3cret\r\n"), "{head}");
    assert!(
        head.contains(&format!("Host: 127.0.0.1:{port}\r\n")),
        "{head}"
    );
}

#[test]
fn tcp_connection_refused_is_unreachable() {
    // Bind then drop to get a port with no listener.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = Client::new(
        Target::from_url(&format!("http://127.0.0.1:{port}"), None).unwrap(),
        Duration::from_secs(2),
    );
    let e = c.get::<CheckReport>("/v1/fib/check").unwrap_err();
    assert_eq!(e.exit_code(), 3);
    assert!(e.to_string().contains("connection refused"), "{e}");
}
