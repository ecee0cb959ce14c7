//! Golden tests on messages captured from real BIRD 2, FRR and GoBGP sessions (see fixtures/README.md):
//! every captured message decodes under the context its session negotiated and re-encodes to the same octets.

use bgp::wire::{Context, Message, Open};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/messages")
}

fn tsv(name: &str) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(dir().join(name)).expect("fixture index");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split('\t').map(String::from).collect())
        .collect()
}

fn read(file: &str) -> Vec<u8> {
    std::fs::read(dir().join(file)).expect("fixture file")
}

fn open(file: &str) -> Open {
    match Message::decode(&read(file), &Context::default()) {
        Ok(Message::Open(o)) => o,
        other => panic!("{file}: not an OPEN: {other:?}"),
    }
}

/// Every captured message with the context its receiver decodes it under (and its sender encoded it under).
pub fn fixtures() -> Vec<(String, String, Context, Vec<u8>)> {
    // connection → (A, B, A's OPEN, B's OPEN)
    let conns: HashMap<String, Vec<String>> = tsv("connections.tsv")
        .into_iter()
        .map(|r| (r[0].clone(), r))
        .collect();
    let mut out = Vec::new();
    for row in tsv("index.tsv") {
        let (file, conn, sender, ty) = (&row[0], &row[1], &row[2], &row[4]);
        let bytes = read(file);
        let ctx = if ty == "open" {
            Context::default()
        } else {
            let c = &conns[conn];
            let (s_open, r_open) = if &c[1] == sender {
                (&c[3], &c[4])
            } else {
                (&c[4], &c[3])
            };
            // Receiver's point of view; the codec uses the same switches to encode as the sender did.
            let rx = Context::negotiate(&open(r_open), &open(s_open));
            Context {
                add_path_tx: rx.add_path_rx,
                ..rx
            }
        };
        out.push((file.clone(), ty.clone(), ctx, bytes));
    }
    out
}

#[test]
fn captured_messages_decode_and_reencode_identically_rfc4271_4() {
    let all = fixtures();
    assert!(
        all.len() >= 25,
        "need at least 25 captured messages, have {}",
        all.len()
    );
    let mut by_type: HashMap<String, usize> = HashMap::new();
    for (file, ty, ctx, bytes) in &all {
        let m = Message::decode(bytes, ctx).unwrap_or_else(|e| panic!("{file}: {e}"));
        if std::env::var_os("GOLDEN_DUMP").is_some() {
            eprintln!("{file}: {ctx:?}\n  {m:?}");
        }
        if let Message::Update(u) = &m {
            assert_eq!(u.treat_as_withdraw, None, "{file}");
            assert!(u.discarded.is_empty(), "{file}");
        }
        let again = m.to_bytes(ctx).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(&again[..], &bytes[..], "{file}: re-encoding differs");
        *by_type.entry(ty.clone()).or_default() += 1;
    }
    for ty in [
        "open",
        "update",
        "notification",
        "keepalive",
        "route-refresh",
    ] {
        assert!(
            by_type.get(ty).copied().unwrap_or(0) > 0,
            "no captured {ty}"
        );
    }
}
