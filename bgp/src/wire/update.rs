//! UPDATE message (RFC 4271 §4.3) with multiprotocol NLRI (RFC 4760), ADD-PATH (RFC 7911), End-of-RIB
//! (RFC 4724 §2) and RFC 7606 error handling.

use super::attr::mp::{MpReach, MpUnreach};
use super::attr::{self, MpPart, PathAttributes};
use super::flowspec::FlowSpec;
use super::nlri::{self, Family, Nlri};
use super::{AfiSafi, Context, EncodeError, Error, HEADER_LEN, MessageType};
use bytes::{BufMut, BytesMut};
use serde::{Deserialize, Serialize};

/// UPDATE message body.
///
/// ```text
/// +-----------------------------------------------------+
/// |   Withdrawn Routes Length (2 octets)                |
/// +-----------------------------------------------------+
/// |   Withdrawn Routes (variable)                       |
/// +-----------------------------------------------------+
/// |   Total Path Attribute Length (2 octets)            |
/// +-----------------------------------------------------+
/// |   Path Attributes (variable)                        |
/// +-----------------------------------------------------+
/// |   Network Layer Reachability Information (variable) |
/// +-----------------------------------------------------+
/// ```
///
/// `withdrawn` and `nlri` are the IPv4 unicast fields of the message; other families travel in `mp_reach` /
/// `mp_unreach`. RFC 7606 outcomes that do not reset the session are recorded here:
/// * `treat_as_withdraw`: the UPDATE's reachable prefixes must be handled as withdrawn
///   ([`Update::withdrawn_routes`] then lists them too, and [`Update::announced`] is empty);
/// * `discarded`: attributes that were dropped (the UPDATE is otherwise used as is);
/// * `afi_safi_disable`: a FlowSpec MP_REACH_NLRI/MP_UNREACH_NLRI whose NLRI could not be located (RFC 4760
///   §7, RFC 7606 §7.11). The attribute is dropped from the UPDATE; the receiver must delete every route of
///   that family learned from the peer and ignore the family for the rest of the session (the session
///   driver drops its later UPDATEs; the RIB flushes). The rest of the UPDATE is used as usual.
///
/// FlowSpec rules travel in `mp_reach` / `mp_unreach` (`flowspec` fields); [`Update::announced_flowspec`] and
/// [`Update::withdrawn_flowspec`] list them with treat-as-withdraw applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Update {
    pub withdrawn: Vec<Nlri>,
    pub attrs: PathAttributes,
    pub mp_reach: Option<MpReach>,
    pub mp_unreach: Option<MpUnreach>,
    pub nlri: Vec<Nlri>,
    /// RFC 7606 treat-as-withdraw, with the error that caused it (first one found).
    pub treat_as_withdraw: Option<Error>,
    /// RFC 7606 attribute discard: one error per discarded attribute.
    pub discarded: Vec<Error>,
    /// RFC 7606 / RFC 4760 §7 "AFI/SAFI disable" for a FlowSpec family, with the error that caused it.
    pub afi_safi_disable: Option<(AfiSafi, Error)>,
}

impl Update {
    /// The End-of-RIB marker for a family (RFC 4724 §2): an empty UPDATE for IPv4 unicast, else an UPDATE with
    /// only an empty MP_UNREACH_NLRI.
    pub fn end_of_rib(af: AfiSafi) -> Update {
        if af == AfiSafi::IPV4_UNICAST {
            return Update::default();
        }
        Update {
            mp_unreach: Some(MpUnreach {
                afi_safi: af,
                withdrawn: vec![],
                flowspec: vec![],
                opaque_withdrawn: vec![],
            }),
            ..Update::default()
        }
    }

    /// The family whose End-of-RIB this UPDATE is, if it is one.
    pub fn end_of_rib_family(&self) -> Option<AfiSafi> {
        if !self.withdrawn.is_empty()
            || !self.nlri.is_empty()
            || self.mp_reach.is_some()
            || self.attrs != PathAttributes::default()
            || self.afi_safi_disable.is_some()
        {
            return None;
        }
        match &self.mp_unreach {
            None => Some(AfiSafi::IPV4_UNICAST),
            Some(u)
                if u.withdrawn.is_empty()
                    && u.flowspec.is_empty()
                    && u.opaque_withdrawn.is_empty() =>
            {
                Some(u.afi_safi)
            }
            Some(_) => None,
        }
    }

    /// Reachable prefixes with their family (none under treat-as-withdraw).
    pub fn announced(&self) -> impl Iterator<Item = (AfiSafi, &Nlri)> {
        let ok = self.treat_as_withdraw.is_none();
        let v4 = self
            .nlri
            .iter()
            .filter(move |_| ok)
            .map(|n| (AfiSafi::IPV4_UNICAST, n));
        let mp = self
            .mp_reach
            .iter()
            .filter(move |_| ok)
            .flat_map(|m| m.nlri.iter().map(move |n| (m.afi_safi, n)));
        v4.chain(mp)
    }

    /// Prefixes to withdraw: the withdrawn fields, plus every reachable prefix under treat-as-withdraw.
    pub fn withdrawn_routes(&self) -> impl Iterator<Item = (AfiSafi, &Nlri)> {
        let taw = self.treat_as_withdraw.is_some();
        let v4 = self.withdrawn.iter().map(|n| (AfiSafi::IPV4_UNICAST, n));
        let mp = self
            .mp_unreach
            .iter()
            .flat_map(|m| m.withdrawn.iter().map(move |n| (m.afi_safi, n)));
        let taw_v4 = self
            .nlri
            .iter()
            .filter(move |_| taw)
            .map(|n| (AfiSafi::IPV4_UNICAST, n));
        let taw_mp = self
            .mp_reach
            .iter()
            .filter(move |_| taw)
            .flat_map(|m| m.nlri.iter().map(move |n| (m.afi_safi, n)));
        v4.chain(mp).chain(taw_v4).chain(taw_mp)
    }

    /// FlowSpec rules announced, with their family (none under treat-as-withdraw).
    pub fn announced_flowspec(&self) -> impl Iterator<Item = (AfiSafi, &FlowSpec)> {
        let ok = self.treat_as_withdraw.is_none();
        self.mp_reach
            .iter()
            .filter(move |_| ok)
            .flat_map(|m| m.flowspec.iter().map(move |r| (m.afi_safi, r)))
    }

    /// FlowSpec rules to withdraw: MP_UNREACH_NLRI's, plus every announced one under treat-as-withdraw.
    pub fn withdrawn_flowspec(&self) -> impl Iterator<Item = (AfiSafi, &FlowSpec)> {
        let taw = self.treat_as_withdraw.is_some();
        let w = self
            .mp_unreach
            .iter()
            .flat_map(|m| m.flowspec.iter().map(move |r| (m.afi_safi, r)));
        let t = self
            .mp_reach
            .iter()
            .filter(move |_| taw)
            .flat_map(|m| m.flowspec.iter().map(move |r| (m.afi_safi, r)));
        w.chain(t)
    }

    /// Number of prefixes (and FlowSpec rules) announced or withdrawn.
    pub fn prefix_count(&self) -> usize {
        self.withdrawn.len()
            + self.nlri.len()
            + self
                .mp_reach
                .as_ref()
                .map_or(0, |m| m.nlri.len() + m.flowspec.len())
            + self
                .mp_unreach
                .as_ref()
                .map_or(0, |m| m.withdrawn.len() + m.flowspec.len())
    }

    /// Applies an "AFI/SAFI disable" (RFC 4760 §7) on the receive path: drops the MP attributes of the
    /// `disabled` families, and returns whether anything is left to deliver. An UPDATE left empty by this is
    /// dropped whole (an empty UPDATE would read as IPv4 unicast End-of-RIB). Call it with the families
    /// disabled so far, after adding the UPDATE's own [`Update::afi_safi_disable`] family (the UPDATE that
    /// disables a family is always delivered, so the receiver learns it must flush that family).
    pub fn drop_families(&mut self, disabled: &[AfiSafi]) -> bool {
        let mut stripped = false;
        if self
            .mp_reach
            .as_ref()
            .is_some_and(|m| disabled.contains(&m.afi_safi))
        {
            self.mp_reach = None;
            stripped = true;
        }
        if self
            .mp_unreach
            .as_ref()
            .is_some_and(|m| disabled.contains(&m.afi_safi))
        {
            self.mp_unreach = None;
            stripped = true;
        }
        !stripped
            || self.afi_safi_disable.is_some()
            || !self.withdrawn.is_empty()
            || !self.nlri.is_empty()
            || self.mp_reach.is_some()
            || self.mp_unreach.is_some()
    }

    /// Decodes into a default `Update` (filled in place: moving the large value is a measurable cost).
    pub(crate) fn decode_in_place(&mut self, body: &[u8], ctx: &Context) -> Result<(), Error> {
        let (wd, rest) = split_len(body).ok_or(Error::MalformedAttributeList)?;
        let (attrs, nlri_bytes) = split_len(rest).ok_or(Error::MalformedAttributeList)?;
        let ap4 = ctx.add_path_receive(AfiSafi::IPV4_UNICAST);
        nlri::decode_into(wd, Family::V4, ap4, &mut self.withdrawn)
            .map_err(|_| Error::InvalidNetworkField)?;
        nlri::decode_into(nlri_bytes, Family::V4, ap4, &mut self.nlri)
            .map_err(|_| Error::InvalidNetworkField)?;
        let overrun = attr::decode(attrs, ctx, self)?;
        if overrun {
            // RFC 7606 §4: treat-as-withdraw needs the prefixes; if none could be located, reset.
            if self.withdrawn.is_empty()
                && self.nlri.is_empty()
                && self.mp_reach.is_none()
                && self.mp_unreach.is_none()
            {
                return Err(Error::MalformedAttributeList);
            }
            self.treat_as_withdraw
                .get_or_insert(Error::MalformedAttributeList);
        }
        // RFC 7606 §3 d: mandatory attributes, needed only when something is announced.
        let flow = self
            .mp_reach
            .as_ref()
            .is_some_and(|m| !m.flowspec.is_empty());
        let reach = !self.nlri.is_empty()
            || flow
            || self
                .mp_reach
                .as_ref()
                .is_some_and(|m| !m.nlri.is_empty() || !m.opaque_nlri.is_empty());
        // RFC 8955 §10: a traffic filtering action that cannot be decoded makes EXTENDED_COMMUNITIES malformed
        // (RFC 7606 §7.14: treat-as-withdraw). Checked where actions mean something: UPDATEs with rules.
        if flow && self.treat_as_withdraw.is_none() {
            let bad = self.attrs.ext_communities.iter().any(|c| {
                super::flowspec::action::FlowAction::from_ext_community(*c)
                    .is_some_and(|a| a.is_malformed())
            });
            if bad {
                let v = &self.attrs.ext_communities;
                let mut data = vec![attr::flags::OPTIONAL | attr::flags::TRANSITIVE];
                data.push(attr::code::EXTENDED_COMMUNITIES);
                data.push(u8::try_from(v.len() * 8).unwrap_or(u8::MAX));
                v.iter().for_each(|c| data.extend_from_slice(&c.0));
                self.treat_as_withdraw = Some(Error::OptionalAttributeError(data));
            }
        }
        if reach && self.treat_as_withdraw.is_none() {
            let a = &self.attrs;
            let missing = if a.origin.is_none() {
                Some(attr::code::ORIGIN)
            } else if a.as_path.is_none() {
                Some(attr::code::AS_PATH)
            } else if !self.nlri.is_empty() && a.next_hop.is_none() {
                Some(attr::code::NEXT_HOP)
            } else {
                None
            };
            self.treat_as_withdraw = missing.map(Error::MissingWellKnownAttribute);
        }
        Ok(())
    }

    fn mp_part(&self) -> MpPart<'_> {
        MpPart {
            reach: self
                .mp_reach
                .as_ref()
                .map(|m| (m, &m.nlri[..], &m.flowspec[..])),
            unreach: self
                .mp_unreach
                .as_ref()
                .map(|m| (m, &m.withdrawn[..], &m.flowspec[..])),
        }
    }

    pub(crate) fn encode_body(&self, ctx: &Context, buf: &mut BytesMut) -> Result<(), EncodeError> {
        write_body(
            buf,
            ctx,
            &self.withdrawn,
            Some(&self.attrs),
            self.mp_part(),
            &self.nlri,
        )
    }

    /// Appends this UPDATE as one or more messages, each within `ctx.max_message_len`, and returns how many.
    ///
    /// If it fits, that is one message identical to [`super::Message::encode`]. Otherwise withdrawals go
    /// first in attribute-less messages (IPv4 field, then MP_UNREACH_NLRI), then the path attributes are repeated
    /// in as many messages as the announced prefixes need, each packed as full as the limit allows. Fails only
    /// when the attributes alone leave no room for one prefix.
    pub fn encode_split(&self, ctx: &Context, buf: &mut BytesMut) -> Result<usize, EncodeError> {
        let max = ctx
            .max_message_len
            .clamp(super::MAX_MESSAGE_LEN, super::MAX_EXTENDED_MESSAGE_LEN);
        let start = buf.len();
        match write_message(buf, max, |b| self.encode_body(ctx, b)) {
            Ok(()) => return Ok(1),
            Err(EncodeError::TooLong { .. }) => buf.truncate(start),
            Err(e) => return Err(e),
        }
        let r = self.encode_split_inner(ctx, max, buf);
        if r.is_err() {
            buf.truncate(start);
        }
        r
    }

    fn encode_split_inner(
        &self,
        ctx: &Context,
        max: usize,
        buf: &mut BytesMut,
    ) -> Result<usize, EncodeError> {
        // Fixed cost of a message: header, the two length fields.
        const FIXED: usize = HEADER_LEN + 4;
        let mut count = 0;
        let ap4 = ctx.add_path_send(AfiSafi::IPV4_UNICAST);
        for chunk in chunks(&self.withdrawn, ap4, max - FIXED) {
            write_message(buf, max, |b| {
                write_body(b, ctx, chunk, None, MpPart::default(), &[])
            })?;
            count += 1;
        }
        if let Some(u) = &self.mp_unreach {
            // MP_UNREACH header: 4 (flags, type, 2-octet length) + AFI/SAFI 3 + opaque part.
            let room = (max - FIXED).saturating_sub(7 + u.opaque_withdrawn.len());
            let ap = ctx.add_path_send(u.afi_safi);
            let empty = PathAttributes::default();
            for chunk in chunks(&u.withdrawn, ap, room) {
                let mp = MpPart {
                    reach: None,
                    unreach: Some((u, chunk, &[])),
                };
                write_message(buf, max, |b| write_body(b, ctx, &[], Some(&empty), mp, &[]))?;
                count += 1;
            }
            for chunk in rule_chunks(&u.flowspec, room) {
                let mp = MpPart {
                    reach: None,
                    unreach: Some((u, &[], chunk)),
                };
                write_message(buf, max, |b| write_body(b, ctx, &[], Some(&empty), mp, &[]))?;
                count += 1;
            }
        }
        // Announcements: the attributes once, to know what room is left.
        let mut scratch = BytesMut::new();
        self.attrs.encode(ctx, &mut scratch)?;
        let attrs_len = scratch.len();
        if !self.nlri.is_empty() {
            let room = (max - FIXED)
                .checked_sub(attrs_len)
                .filter(|&r| r > 0)
                .ok_or(EncodeError::TooLong {
                    len: FIXED + attrs_len,
                    max,
                })?;
            for chunk in chunks(&self.nlri, ap4, room) {
                write_message(buf, max, |b| {
                    write_body(b, ctx, &[], Some(&self.attrs), MpPart::default(), chunk)
                })?;
                count += 1;
            }
        }
        if let Some(m) = &self.mp_reach {
            scratch.clear();
            m.encode_header(&mut scratch);
            let mp_fixed = 4 + scratch.len() + m.opaque_nlri.len();
            let room = (max - FIXED)
                .checked_sub(attrs_len + mp_fixed)
                .filter(|&r| r > 0)
                .ok_or(EncodeError::TooLong {
                    len: FIXED + attrs_len + mp_fixed,
                    max,
                })?;
            let ap = ctx.add_path_send(m.afi_safi);
            for chunk in chunks(&m.nlri, ap, room) {
                let mp = MpPart {
                    reach: Some((m, chunk, &[])),
                    unreach: None,
                };
                write_message(buf, max, |b| {
                    write_body(b, ctx, &[], Some(&self.attrs), mp, &[])
                })?;
                count += 1;
            }
            for chunk in rule_chunks(&m.flowspec, room) {
                let mp = MpPart {
                    reach: Some((m, &[], chunk)),
                    unreach: None,
                };
                write_message(buf, max, |b| {
                    write_body(b, ctx, &[], Some(&self.attrs), mp, &[])
                })?;
                count += 1;
            }
        }
        Ok(count)
    }
}

/// Splits off a 2-octet length and that many octets.
fn split_len(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let (l, rest) = b.split_first_chunk::<2>()?;
    let l = usize::from(u16::from_be_bytes(*l));
    (rest.len() >= l).then(|| rest.split_at(l))
}

/// Greedy chunks of `v` whose encodings each fit in `room` octets (a prefix larger than `room` on its own —
/// impossible with room ≥ 21 — would still get a chunk, and fail the length check).
fn chunks(v: &[Nlri], add_path: bool, room: usize) -> impl Iterator<Item = &[Nlri]> {
    let mut rest = v;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut used = 0;
        let mut n = 0;
        for x in rest {
            let l = x.wire_len(add_path);
            if n > 0 && used + l > room {
                break;
            }
            used += l;
            n += 1;
        }
        let (c, r) = rest.split_at(n);
        rest = r;
        Some(c)
    })
}

/// Greedy chunks of FlowSpec rules fitting in `room` octets each (as [`chunks`]).
fn rule_chunks(v: &[FlowSpec], room: usize) -> impl Iterator<Item = &[FlowSpec]> {
    let mut rest = v;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut used = 0;
        let mut n = 0;
        for x in rest {
            let l = x.wire_len();
            if n > 0 && used + l > room {
                break;
            }
            used += l;
            n += 1;
        }
        let (c, r) = rest.split_at(n);
        rest = r;
        Some(c)
    })
}

fn write_message(
    buf: &mut BytesMut,
    max: usize,
    body: impl FnOnce(&mut BytesMut) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    let start = buf.len();
    super::begin(buf, MessageType::Update);
    body(buf)?;
    super::finish(buf, start, max)
}

fn write_body(
    buf: &mut BytesMut,
    ctx: &Context,
    withdrawn: &[Nlri],
    attrs: Option<&PathAttributes>,
    mp: MpPart<'_>,
    nlri: &[Nlri],
) -> Result<(), EncodeError> {
    let ap4 = ctx.add_path_send(AfiSafi::IPV4_UNICAST);
    let at = buf.len();
    buf.put_u16(0);
    for n in withdrawn {
        n.encode(ap4, buf);
    }
    let wl = buf.len() - at - 2;
    let wl = u16::try_from(wl)
        .map_err(|_| EncodeError::Unencodable("withdrawn routes longer than 65535 octets"))?;
    buf[at..at + 2].copy_from_slice(&wl.to_be_bytes());
    let at = buf.len();
    buf.put_u16(0);
    if let Some(a) = attrs {
        a.encode_with(ctx, mp, buf)?;
    }
    let al = buf.len() - at - 2;
    let al = u16::try_from(al)
        .map_err(|_| EncodeError::Unencodable("path attributes longer than 65535 octets"))?;
    buf[at..at + 2].copy_from_slice(&al.to_be_bytes());
    for n in nlri {
        n.encode(ap4, buf);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::attr::Origin;
    use crate::wire::attr::as_path::AsPath;
    use crate::wire::attr::mp::NextHop;
    use crate::wire::{MAX_MESSAGE_LEN, Message};
    use std::net::Ipv4Addr;

    fn attrs() -> PathAttributes {
        PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence([65001, 4_200_000_000])),
            next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
            ..Default::default()
        }
    }

    fn v4(i: u32) -> Nlri {
        Nlri::new(ipnet::IpNet::V4(
            ipnet::Ipv4Net::new(Ipv4Addr::from(i << 8), 24).unwrap(),
        ))
    }

    #[test]
    fn ipv4_update_roundtrip_rfc4271_4_3() {
        let u = Update {
            nlri: vec![v4(1), v4(2)],
            withdrawn: vec![v4(3)],
            attrs: attrs(),
            ..Default::default()
        };
        for ctx in [Context::default(), Context::four_octet()] {
            let b = Message::Update(u.clone()).to_bytes(&ctx).unwrap();
            assert_eq!(Message::decode(&b, &ctx), Ok(Message::Update(u.clone())));
        }
    }

    #[test]
    fn end_of_rib_rfc4724_2() {
        let b = Message::Update(Update::end_of_rib(AfiSafi::IPV4_UNICAST))
            .to_bytes(&Context::default())
            .unwrap();
        assert_eq!(b.len(), 23);
        let b6 = Message::Update(Update::end_of_rib(AfiSafi::IPV6_UNICAST))
            .to_bytes(&Context::default())
            .unwrap();
        assert_eq!(&b6[19..], &[0, 0, 0, 6, 0x80, 15, 3, 0, 2, 1]);
        let Ok(Message::Update(u)) = Message::decode(&b6, &Context::default()) else {
            panic!()
        };
        assert_eq!(u.end_of_rib_family(), Some(AfiSafi::IPV6_UNICAST));
    }

    #[test]
    fn split_packs_into_max_length_rfc4271_4_3() {
        let nlri: Vec<Nlri> = (0..2000).map(v4).collect();
        let u = Update {
            nlri: nlri.clone(),
            attrs: attrs(),
            ..Default::default()
        };
        let ctx = Context::four_octet();
        let mut buf = BytesMut::new();
        let n = u.encode_split(&ctx, &mut buf).unwrap();
        assert!(n >= 2);
        let mut rest = &buf[..];
        let mut got = Vec::new();
        let mut msgs = 0;
        while let Some(len) = crate::wire::frame(rest, MAX_MESSAGE_LEN).unwrap() {
            let Ok(Message::Update(p)) = Message::decode(&rest[..len], &ctx) else {
                panic!()
            };
            assert_eq!(p.attrs, u.attrs);
            got.extend(p.nlri);
            rest = &rest[len..];
            msgs += 1;
            if rest.is_empty() {
                break;
            }
        }
        assert_eq!(msgs, n);
        assert_eq!(got, nlri);
        // 4 octets per /24: all but the last message are within 4 octets of full.
        assert!(buf.len() > (n - 1) * (MAX_MESSAGE_LEN - 4));
    }

    #[test]
    fn split_mp_reach_ipv6_rfc4760_3() {
        let nlri: Vec<Nlri> = (0..1500u128)
            .map(|i| {
                Nlri::new(ipnet::IpNet::V6(
                    ipnet::Ipv6Net::new((0x2001_0db8_u128 << 96 | i << 64).into(), 64).unwrap(),
                ))
            })
            .collect();
        let reach = MpReach {
            afi_safi: AfiSafi::IPV6_UNICAST,
            next_hop: NextHop::Ipv6 {
                global: "2001:db8::1".parse().unwrap(),
                link_local: Some("fe80::1".parse().unwrap()),
            },
            nlri: nlri.clone(),
            flowspec: vec![],
            opaque_nlri: vec![],
        };
        let mut a = attrs();
        a.next_hop = None;
        let u = Update {
            attrs: a,
            mp_reach: Some(reach),
            ..Default::default()
        };
        let ctx = Context::four_octet();
        let mut buf = BytesMut::new();
        let n = u.encode_split(&ctx, &mut buf).unwrap();
        let mut rest = &buf[..];
        let mut got = Vec::new();
        for _ in 0..n {
            let len = crate::wire::frame(rest, MAX_MESSAGE_LEN).unwrap().unwrap();
            let Ok(Message::Update(p)) = Message::decode(&rest[..len], &ctx) else {
                panic!()
            };
            got.extend(p.mp_reach.unwrap().nlri);
            rest = &rest[len..];
        }
        assert!(rest.is_empty());
        assert_eq!(got, nlri);
    }

    #[test]
    fn too_long_single_encode_fails_cleanly() {
        let u = Update {
            nlri: (0..2000).map(v4).collect(),
            attrs: attrs(),
            ..Default::default()
        };
        let mut buf = BytesMut::from(&b"x"[..]);
        assert!(matches!(
            Message::Update(u).encode(&Context::default(), &mut buf),
            Err(EncodeError::TooLong { .. })
        ));
        assert_eq!(&buf[..], b"x");
    }
}
