//! Fuzz target: frame + decode any bytes under one of 16 negotiated contexts (chosen by the first byte), and for
//! every message that decodes cleanly, check that it re-encodes and decodes back to the same value.
#![no_main]

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
            if u.treat_as_withdraw.is_some() || !u.discarded.is_empty() {
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
});
