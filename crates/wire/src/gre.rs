//! GRE headers (RFC 2784 with the key and sequence number extensions of RFC 2890).
//!
//! etherparse does not cover GRE; the format is small, so it is ours. Parsing is lax about
//! truncation because ICMP errors may quote only the first 8 bytes of a probe: the fields that
//! made it are returned, the others are `None`.

use crate::WireError;

mod flags {
    pub const CHECKSUM: u16 = 0x8000;
    pub const KEY: u16 = 0x2000;
    pub const SEQUENCE: u16 = 0x1000;
    pub const VERSION: u16 = 0x0007;
}

/// A GRE header as a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GreRepr {
    pub protocol_type: u16,
    /// Whether the checksum field is present (we never send one; parsing skips it).
    pub checksum: bool,
    pub key: Option<u32>,
    pub sequence: Option<u32>,
}

impl GreRepr {
    pub fn buffer_len(&self) -> usize {
        4 + 4
            * (usize::from(self.checksum)
                + usize::from(self.key.is_some())
                + usize::from(self.sequence.is_some()))
    }

    /// Writes the header into the first `buffer_len()` bytes of `buf`. A checksum, if
    /// flagged, is written as zero (valid for an empty payload only).
    pub fn emit(&self, buf: &mut [u8]) {
        let mut f = 0u16;
        if self.checksum {
            f |= flags::CHECKSUM;
        }
        if self.key.is_some() {
            f |= flags::KEY;
        }
        if self.sequence.is_some() {
            f |= flags::SEQUENCE;
        }
        buf[0..2].copy_from_slice(&f.to_be_bytes());
        buf[2..4].copy_from_slice(&self.protocol_type.to_be_bytes());
        let mut at = 4;
        if self.checksum {
            buf[at..at + 4].fill(0);
            at += 4;
        }
        for v in [self.key, self.sequence].into_iter().flatten() {
            buf[at..at + 4].copy_from_slice(&v.to_be_bytes());
            at += 4;
        }
    }

    /// Parses a possibly truncated GRE header: flags and protocol type are required, optional
    /// fields are returned only if all their bytes are present.
    pub fn parse_lax(buf: &[u8]) -> Result<GreRepr, WireError> {
        if buf.len() < 4 {
            return Err(WireError::Truncated {
                what: "GRE header",
                needed: 4,
                got: buf.len(),
            });
        }
        let f = u16::from_be_bytes([buf[0], buf[1]]);
        if f & flags::VERSION != 0 {
            return Err(WireError::Malformed {
                what: "GRE header",
                detail: format!("version {} (only 0 is ours)", f & flags::VERSION),
            });
        }
        let checksum = f & flags::CHECKSUM != 0;
        let word = |at: usize| {
            buf.get(at..at + 4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        let mut at = if checksum { 8 } else { 4 };
        let key = if f & flags::KEY != 0 {
            let k = word(at);
            at += 4;
            k
        } else {
            None
        };
        let sequence = if f & flags::SEQUENCE != 0 {
            word(at)
        } else {
            None
        };
        Ok(GreRepr {
            protocol_type: u16::from_be_bytes([buf[2], buf[3]]),
            checksum,
            key,
            sequence,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emit_into_poisoned_buffer_then_parse() {
        let repr = GreRepr {
            protocol_type: 0x880b,
            checksum: false,
            key: Some(0xdead_beef),
            sequence: Some(7),
        };
        let mut buf = [0xa5u8; 12];
        repr.emit(&mut buf);
        assert_eq!(
            buf,
            [0x30, 0x00, 0x88, 0x0b, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 7]
        );
        assert_eq!(GreRepr::parse_lax(&buf).unwrap(), repr);
    }

    #[test]
    fn truncated_quote_keeps_what_arrived() {
        let buf = [0x30, 0x00, 0x88, 0x0b, 0xde, 0xad, 0xbe, 0xef];
        let repr = GreRepr::parse_lax(&buf).unwrap();
        assert_eq!(repr.key, Some(0xdead_beef));
        assert_eq!(repr.sequence, None);
    }

    #[test]
    fn checksum_field_is_skipped() {
        let buf = [
            0xb0, 0x00, 0x08, 0x00, 0x12, 0x34, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2,
        ];
        let repr = GreRepr::parse_lax(&buf).unwrap();
        assert_eq!((repr.key, repr.sequence), (Some(1), Some(2)));
        assert_eq!(repr.buffer_len(), 16);
    }

    #[test]
    fn bad_input() {
        assert!(GreRepr::parse_lax(&[0x30, 0x00]).is_err());
        assert!(GreRepr::parse_lax(&[0x30, 0x01, 0x88, 0x0b]).is_err());
    }
}
