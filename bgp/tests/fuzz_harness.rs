//! The fuzz target's checks (bgp/fuzz/fuzz_targets/decode.rs) run over every captured fixture under all 16
//! contexts the target can select, plus any input saved in tests/fuzz_regressions/ (inputs that once crashed
//! the target; the first byte selects the context, as in the target).

use bgp::wire::{AfiSafiSet, Context, Message, frame};
use std::path::Path;

fn context(sel: u8) -> Context {
    Context {
        four_octet_as: sel & 1 != 0,
        add_path_rx: if sel & 2 != 0 {
            AfiSafiSet::ALL
        } else {
            AfiSafiSet::EMPTY
        },
        add_path_tx: if sel & 2 != 0 {
            AfiSafiSet::ALL
        } else {
            AfiSafiSet::EMPTY
        },
        max_message_len: if sel & 4 != 0 { 65535 } else { 4096 },
        extended_next_hop: if sel & 8 != 0 {
            AfiSafiSet::ALL
        } else {
            AfiSafiSet::EMPTY
        },
    }
}

/// Same checks as the fuzz target: frame a stream, decode each message, and re-encode what decoded cleanly.
fn check(sel: u8, mut buf: &[u8]) {
    let ctx = context(sel);
    while let Ok(Some(len)) = frame(buf, ctx.max_message_len) {
        let (msg, rest) = buf.split_at(len);
        buf = rest;
        let Ok(m) = Message::decode(msg, &ctx) else {
            continue;
        };
        if let Message::Update(u) = &m {
            let _ = u.announced().count() + u.withdrawn_routes().count();
            flowspec_checks(u);
            if u.treat_as_withdraw.is_some()
                || !u.discarded.is_empty()
                || u.afi_safi_disable.is_some()
            {
                continue;
            }
        }
        let out = m.to_bytes(&ctx).expect("decoded message re-encodes");
        assert_eq!(
            Message::decode(&out, &ctx).expect("re-encoded message decodes"),
            m
        );
    }
}

/// The FlowSpec part of the target: typed rules render, re-validate and order consistently.
fn flowspec_checks(u: &bgp::wire::Update) {
    let rules: Vec<_> = u
        .announced_flowspec()
        .chain(u.withdrawn_flowspec())
        .map(|(_, r)| r)
        .collect();
    for a in &rules {
        let _ = a.to_string();
        assert_eq!(
            bgp::wire::FlowSpec::new(a.family(), a.components().to_vec()).as_ref(),
            Ok(*a)
        );
        for b in &rules {
            assert_eq!(a.compare_precedence(b), b.compare_precedence(a).reverse());
        }
    }
    let _ = u.attrs.flow_actions();
}

fn files(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return vec![];
    };
    let mut v: Vec<_> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v.iter()
        .filter(|p| p.extension().is_none_or(|e| e == "bin"))
        .map(|p| std::fs::read(p).unwrap())
        .collect()
}

#[test]
fn fixtures_under_every_fuzz_context() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut all = files(&base.join("messages"));
    all.extend(files(&base.join("flowspec")));
    assert!(all.len() > 130);
    for sel in 0..16 {
        for f in &all {
            check(sel, f);
        }
        // The whole capture as one stream, too.
        check(sel, &all.concat());
    }
}

#[test]
fn saved_fuzz_regressions() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    for input in files(&dir) {
        if let Some((&sel, rest)) = input.split_first() {
            check(sel, rest);
            let _ = Message::decode(rest, &context(sel));
        }
    }
}
