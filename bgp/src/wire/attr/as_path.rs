//! AS_PATH and AS4_PATH (RFC 4271 §4.3, §5.1.2; RFC 5065 confederation segments; RFC 6793 §4.2.3).

use crate::wire::{AS_TRANS, EncodeError};
use bytes::{BufMut, BytesMut};
use serde::{Deserialize, Serialize};

/// Segment types (RFC 4271 §4.3, RFC 5065 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum SegmentType {
    Set = 1,
    Sequence = 2,
    ConfedSequence = 3,
    ConfedSet = 4,
}

impl SegmentType {
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => SegmentType::Set,
            2 => SegmentType::Sequence,
            3 => SegmentType::ConfedSequence,
            4 => SegmentType::ConfedSet,
            _ => return None,
        })
    }

    pub fn is_confed(self) -> bool {
        matches!(self, SegmentType::ConfedSequence | SegmentType::ConfedSet)
    }
}

/// One path segment.
///
/// ```text
/// +-----------------+------------------+---------------------------------+
/// | type (1 octet)  | count (1 octet)  | count × AS (2 or 4 octets each)  |
/// +-----------------+------------------+---------------------------------+
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Segment {
    pub kind: SegmentType,
    pub asns: Vec<u32>,
}

/// An AS path with 4-octet AS numbers, whatever the session's AS size: a 2-octet peer's AS_PATH and AS4_PATH
/// are merged on decode ([`AsPath::reconstruct`]) and split again on encode.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AsPath {
    pub segments: Vec<Segment>,
}

/// The AS_PATH octets are malformed (RFC 7606 §7.2): bad segment type, zero count, or overrun.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedPath;

impl AsPath {
    /// A path that is one AS_SEQUENCE.
    pub fn sequence(asns: impl IntoIterator<Item = u32>) -> Self {
        let asns: Vec<u32> = asns.into_iter().collect();
        if asns.is_empty() {
            return AsPath::default();
        }
        AsPath {
            segments: vec![Segment {
                kind: SegmentType::Sequence,
                asns,
            }],
        }
    }

    /// Path length for the decision process (RFC 4271 §9.1.2.2): a set counts 1, confed segments 0.
    pub fn path_len(&self) -> usize {
        self.segments
            .iter()
            .map(|s| match s.kind {
                SegmentType::Sequence => s.asns.len(),
                SegmentType::Set => 1,
                _ => 0,
            })
            .sum()
    }

    /// The neighbour AS: the first AS of a leading AS_SEQUENCE.
    pub fn first_as(&self) -> Option<u32> {
        self.segments
            .iter()
            .find(|s| !s.kind.is_confed())
            .filter(|s| s.kind == SegmentType::Sequence)?
            .asns
            .first()
            .copied()
    }

    /// The origin AS: the last AS of a trailing AS_SEQUENCE.
    pub fn origin_as(&self) -> Option<u32> {
        self.segments
            .last()
            .filter(|s| s.kind == SegmentType::Sequence)?
            .asns
            .last()
            .copied()
    }

    /// Whether some AS does not fit in 2 octets (then a 2-octet peer needs AS4_PATH).
    pub fn has_four_octet(&self) -> bool {
        self.segments
            .iter()
            .flat_map(|s| &s.asns)
            .any(|&a| a > 0xffff)
    }

    /// Parses AS_PATH/AS4_PATH octets with `as_size` (2 or 4) octets per AS.
    pub fn decode(mut b: &[u8], as_size: usize) -> Result<AsPath, MalformedPath> {
        // Count segments first so the vector is allocated once.
        let mut n = 0;
        let mut scan = b;
        while !scan.is_empty() {
            let [t, c, ..] = scan else {
                return Err(MalformedPath);
            };
            if SegmentType::from_u8(*t).is_none() || *c == 0 {
                return Err(MalformedPath);
            }
            scan = scan
                .get(2 + usize::from(*c) * as_size..)
                .ok_or(MalformedPath)?;
            n += 1;
        }
        let mut segments = Vec::with_capacity(n);
        while let [t, c, rest @ ..] = b {
            let kind = SegmentType::from_u8(*t).ok_or(MalformedPath)?;
            let len = usize::from(*c) * as_size;
            let body = rest.get(..len).ok_or(MalformedPath)?;
            let asns = if as_size == 4 {
                body.chunks_exact(4)
                    .map(|a| u32::from_be_bytes([a[0], a[1], a[2], a[3]]))
                    .collect()
            } else {
                body.chunks_exact(2)
                    .map(|a| u32::from(u16::from_be_bytes([a[0], a[1]])))
                    .collect()
            };
            segments.push(Segment { kind, asns });
            b = &rest[len..];
        }
        Ok(AsPath { segments })
    }

    /// Appends the path's octets with `as_size` octets per AS; with 2 octets, larger ASes become AS_TRANS.
    /// Segments longer than 255 ASes are split into several segments of the same type.
    pub fn encode(&self, as_size: usize, buf: &mut BytesMut) -> Result<(), EncodeError> {
        self.encode_filtered(as_size, false, buf)
    }

    /// As [`encode`](Self::encode), leaving out confederation segments when `skip_confed` (AS4_PATH, RFC 6793
    /// §3 forbids them there).
    pub(crate) fn encode_filtered(
        &self,
        as_size: usize,
        skip_confed: bool,
        buf: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        for s in &self.segments {
            if skip_confed && s.kind.is_confed() {
                continue;
            }
            if s.asns.is_empty() {
                return Err(EncodeError::Unencodable("empty AS_PATH segment"));
            }
            if s.asns.len() > 255 && matches!(s.kind, SegmentType::Set | SegmentType::ConfedSet) {
                return Err(EncodeError::Unencodable("AS_SET of more than 255 ASes"));
            }
            for chunk in s.asns.chunks(255) {
                buf.put_u8(s.kind as u8);
                buf.put_u8(chunk.len() as u8);
                for &a in chunk {
                    if as_size == 4 {
                        buf.put_u32(a);
                    } else {
                        buf.put_u16(u16::try_from(a).unwrap_or(AS_TRANS as u16));
                    }
                }
            }
        }
        Ok(())
    }

    /// Merges a 2-octet speaker's AS_PATH with its AS4_PATH (RFC 6793 §4.2.3).
    ///
    /// If AS_PATH has fewer ASes than AS4_PATH, AS4_PATH is ignored. Otherwise the result is the leading
    /// ASes of AS_PATH that AS4_PATH does not cover (including any confederation segments), followed by
    /// AS4_PATH. ASes are counted as in path selection (a set counts one, confed segments none).
    pub fn reconstruct(as_path: AsPath, as4_path: AsPath) -> AsPath {
        let n_path = as_path.path_len();
        let n_as4 = as4_path.path_len();
        if n_path < n_as4 {
            return as_path;
        }
        let mut keep = n_path - n_as4;
        let mut segments = Vec::with_capacity(as_path.segments.len() + as4_path.segments.len());
        for s in as_path.segments {
            match s.kind {
                SegmentType::ConfedSequence | SegmentType::ConfedSet => segments.push(s),
                _ if keep == 0 => break,
                SegmentType::Set => {
                    keep -= 1;
                    segments.push(s);
                }
                SegmentType::Sequence => {
                    let take = keep.min(s.asns.len());
                    keep -= take;
                    let mut s = s;
                    s.asns.truncate(take);
                    segments.push(s);
                }
            }
        }
        let cut = n_path > n_as4;
        for (i, s) in as4_path
            .segments
            .into_iter()
            .filter(|s| !s.kind.is_confed())
            .enumerate()
        {
            // Where AS_PATH's leading part was cut, rejoin the two halves of the sequence it came from.
            match segments.last_mut() {
                Some(last)
                    if cut
                        && i == 0
                        && last.kind == SegmentType::Sequence
                        && s.kind == SegmentType::Sequence
                        && last.asns.len() + s.asns.len() <= 255 =>
                {
                    last.asns.extend(s.asns)
                }
                _ => segments.push(s),
            }
        }
        AsPath { segments }
    }
}

impl std::fmt::Display for AsPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for s in &self.segments {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            let (open, close) = match s.kind {
                SegmentType::Sequence => ("", ""),
                SegmentType::Set => ("{", "}"),
                SegmentType::ConfedSequence => ("(", ")"),
                SegmentType::ConfedSet => ("[", "]"),
            };
            f.write_str(open)?;
            for (i, a) in s.asns.iter().enumerate() {
                if i > 0 {
                    f.write_str(
                        if s.kind == SegmentType::Set || s.kind == SegmentType::ConfedSet {
                            ","
                        } else {
                            " "
                        },
                    )?;
                }
                write!(f, "{a}")?;
            }
            f.write_str(close)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(v: &[u32]) -> Segment {
        Segment {
            kind: SegmentType::Sequence,
            asns: v.to_vec(),
        }
    }

    #[test]
    fn two_and_four_octet_segments_rfc4271_4_3_rfc6793_3() {
        let p = AsPath {
            segments: vec![
                seq(&[65001, 4_200_000_000]),
                Segment {
                    kind: SegmentType::Set,
                    asns: vec![1, 2],
                },
            ],
        };
        let mut b = BytesMut::new();
        p.encode(4, &mut b).unwrap();
        assert_eq!(AsPath::decode(&b, 4), Ok(p.clone()));
        let mut b2 = BytesMut::new();
        p.encode(2, &mut b2).unwrap();
        assert_eq!(&b2[..], &[2, 2, 0xfd, 0xe9, 0x5b, 0xa0, 1, 2, 0, 1, 0, 2]);
        assert_eq!(p.path_len(), 3);
        assert_eq!(p.to_string(), "65001 4200000000 {1,2}");
    }

    #[test]
    fn malformed_segments_rfc7606_7_2() {
        assert_eq!(AsPath::decode(&[5, 1, 0, 1], 2), Err(MalformedPath));
        assert_eq!(AsPath::decode(&[2, 0], 2), Err(MalformedPath));
        assert_eq!(AsPath::decode(&[2, 2, 0, 1], 2), Err(MalformedPath));
        assert_eq!(AsPath::decode(&[2], 4), Err(MalformedPath));
    }

    #[test]
    fn reconstruct_as4_path_rfc6793_4_2_3() {
        // A 2-octet speaker 65001 prepended to a path that came from 4-octet land.
        let as_path = AsPath {
            segments: vec![seq(&[65001, 23456, 23456, 65002])],
        };
        let as4 = AsPath {
            segments: vec![seq(&[4_200_000_001, 4_200_000_002, 65002])],
        };
        let r = AsPath::reconstruct(as_path, as4);
        assert_eq!(
            r,
            AsPath {
                segments: vec![seq(&[65001, 4_200_000_001, 4_200_000_002, 65002])]
            }
        );
    }

    #[test]
    fn as4_path_longer_than_as_path_is_ignored_rfc6793_4_2_3() {
        let as_path = AsPath {
            segments: vec![seq(&[65001])],
        };
        let as4 = AsPath {
            segments: vec![seq(&[1, 2])],
        };
        assert_eq!(AsPath::reconstruct(as_path.clone(), as4), as_path);
    }

    #[test]
    fn long_sequence_splits_into_255s() {
        let p = AsPath::sequence(1..=300);
        let mut b = BytesMut::new();
        p.encode(4, &mut b).unwrap();
        let d = AsPath::decode(&b, 4).unwrap();
        assert_eq!(d.segments.len(), 2);
        assert_eq!(d.path_len(), 300);
    }
}
