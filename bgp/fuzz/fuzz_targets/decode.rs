//! Fuzz target: frame + decode any bytes under one of 16 negotiated contexts (chosen by the first byte), and for
//! every message that decodes cleanly, check that it re-encodes and decodes back to the same value.
#![no_main]

use bgp::wire::flowspec::{self, FlowSpec};
use bgp::wire::nlri::Family;
use bgp::wire::{AfiSafiSet, Context, Message, frame};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, mut buf)) = data.split_first() else { return };
    let ctx = Context {
        four_octet_as: sel & 1 != 0,
        add_path_rx: if sel & 2 != 0 { AfiSafiSet::ALL } else { AfiSafiSet::EMPTY },
        add_path_tx: if sel & 2 != 0 { AfiSafiSet::ALL } else { AfiSafiSet::EMPTY },
        max_message_len: if sel & 4 != 0 { 65535 } else { 4096 },
        extended_next_hop: if sel & 8 != 0 { AfiSafiSet::ALL } else { AfiSafiSet::EMPTY },
    };
    // A stream of messages, as the session reads them.
    while let Ok(Some(len)) = frame(buf, ctx.max_message_len) {
        let (msg, rest) = buf.split_at(len);
        buf = rest;
        let Ok(m) = Message::decode(msg, &ctx) else { continue };
        let _ = m.message_type();
        if let Message::Update(u) = &m {
            let _ = u.announced().count() + u.withdrawn_routes().count();
            let _ = u.end_of_rib_family();
            // FlowSpec rules: render, re-validate, order consistently.
            let rules: Vec<&FlowSpec> =
                u.announced_flowspec().chain(u.withdrawn_flowspec()).map(|(_, r)| r).collect();
            for a in &rules {
                let _ = a.to_string();
                assert_eq!(FlowSpec::new(a.family(), a.components().to_vec()).as_ref(), Ok(*a));
                for b in &rules {
                    assert_eq!(a.compare_precedence(b), b.compare_precedence(a).reverse());
                }
            }
            let _ = u.attrs.flow_actions();
            if u.treat_as_withdraw.is_some() || !u.discarded.is_empty() || u.afi_safi_disable.is_some() {
                continue;
            }
        }
        let mut out = BytesMut::new();
        match m.encode(&ctx, &mut out) {
            Ok(()) => {
                let again = Message::decode(&out, &ctx).expect("re-encoded message must decode");
                assert_eq!(again, m, "decode(encode(m)) != m");
            }
            Err(e) => panic!("decoded message failed to re-encode: {e}"),
        }
    }
    // Arbitrary bytes straight into decode too (no framing).
    let _ = Message::decode(data, &ctx);
    // And straight into the FlowSpec NLRI field decoder (both families): what decodes re-encodes to a field
    // that decodes to the same rules.
    let fam = if sel & 16 != 0 { Family::V6 } else { Family::V4 };
    let mut rules = Vec::new();
    if flowspec::decode_field(&data[1.min(data.len())..], fam, &mut rules).is_ok() {
        let mut out = BytesMut::new();
        flowspec::encode_field(&rules, &mut out);
        let mut again = Vec::new();
        assert_eq!(flowspec::decode_field(&out, fam, &mut again), Ok(None));
        assert_eq!(again, rules);
    }
});
