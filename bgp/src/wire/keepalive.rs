//! KEEPALIVE message (RFC 4271 §4.4): a header and nothing else, 19 octets exactly.

use super::Error;

/// KEEPALIVE has no body; this type only hosts its checks. [`super::Message::Keepalive`] is the message.
pub struct Keepalive;

impl Keepalive {
    /// The 19 octets of a KEEPALIVE.
    pub const BYTES: [u8; 19] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0, 19, 4,
    ];

    pub(crate) fn decode_body(body: &[u8]) -> Result<(), Error> {
        if body.is_empty() {
            Ok(())
        } else {
            Err(Error::BadMessageLength(
                (super::HEADER_LEN + body.len()) as u16,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Context, Message};

    #[test]
    fn keepalive_is_19_octets_rfc4271_4_4() {
        let b = Message::Keepalive.to_bytes(&Context::default()).unwrap();
        assert_eq!(&b[..], &Keepalive::BYTES);
        assert_eq!(
            Message::decode(&b, &Context::default()),
            Ok(Message::Keepalive)
        );
    }

    #[test]
    fn keepalive_with_body_is_bad_length_rfc4271_6_1() {
        let mut b = Keepalive::BYTES.to_vec();
        b[17] = 20;
        b.push(0);
        assert_eq!(
            Message::decode(&b, &Context::default()),
            Err(Error::BadMessageLength(20))
        );
    }
}
