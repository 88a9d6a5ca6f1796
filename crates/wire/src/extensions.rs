//! ICMP multi-part messages (RFC 4884) and the MPLS label stack object (RFC 4950).
//!
//! Routers inside MPLS networks append the label stack of the expired packet to their time
//! exceeded messages. RFC 4884 says where the extension structure starts (a length field in the
//! ICMP header); older implementations put it at offset 128 with the length field zero, which we
//! accept too when the structure there checks out.

use std::fmt;

/// One entry of an MPLS label stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MplsEntry {
    pub label: u32,
    /// Traffic class (formerly EXP).
    pub tc: u8,
    pub bottom_of_stack: bool,
    pub ttl: u8,
}

impl fmt::Display for MplsEntry {
    /// As traceroute prints it: `MPLS:L=24001,E=0,S=1,T=1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MPLS:L={},E={},S={},T={}",
            self.label,
            self.tc,
            u8::from(self.bottom_of_stack),
            self.ttl
        )
    }
}

impl MplsEntry {
    pub fn parse(b: [u8; 4]) -> MplsEntry {
        let v = u32::from_be_bytes(b);
        MplsEntry {
            label: v >> 12,
            tc: ((v >> 9) & 0x7) as u8,
            bottom_of_stack: (v >> 8) & 1 == 1,
            ttl: (v & 0xff) as u8,
        }
    }

    pub fn emit(&self) -> [u8; 4] {
        let v = (self.label << 12)
            | (u32::from(self.tc & 7) << 9)
            | (u32::from(self.bottom_of_stack) << 8)
            | u32::from(self.ttl);
        v.to_be_bytes()
    }
}

const MPLS_CLASS: u8 = 1;
const MPLS_INCOMING_STACK: u8 = 1;
/// Offset of the extension structure when the sender predates RFC 4884 (length field zero).
const COMPAT_OFFSET: usize = 128;

/// Finds the MPLS label stack in the data that follows an ICMP error's 8-byte header.
///
/// `length_words` is the RFC 4884 length field: the quoted datagram's length in 32-bit words for
/// ICMPv4, 64-bit words for ICMPv6 (pass the word size as `word`). Returns an empty vector when
/// there is no (valid) extension structure. Never panics.
pub fn mpls_labels(after_header: &[u8], length_words: u8, word: usize) -> Vec<MplsEntry> {
    let start = if length_words != 0 {
        usize::from(length_words) * word
    } else {
        COMPAT_OFFSET
    };
    let Some(ext) = after_header.get(start..) else {
        return Vec::new();
    };
    // Extension header: version 2 in the top nibble, reserved, then a checksum.
    if ext.len() < 4 || ext[0] >> 4 != 2 {
        return Vec::new();
    }
    let stored = u16::from_be_bytes([ext[2], ext[3]]);
    if stored != 0 && internet_checksum(ext) != 0 {
        return Vec::new();
    }
    let mut labels = Vec::new();
    let mut objects = &ext[4..];
    while objects.len() >= 4 {
        let len = usize::from(u16::from_be_bytes([objects[0], objects[1]]));
        if len < 4 || len > objects.len() {
            break;
        }
        let (class, ctype) = (objects[2], objects[3]);
        if class == MPLS_CLASS && ctype == MPLS_INCOMING_STACK {
            for e in objects[4..len].chunks_exact(4) {
                labels.push(MplsEntry::parse([e[0], e[1], e[2], e[3]]));
            }
        }
        objects = &objects[len..];
    }
    labels
}

/// Builds an extension structure holding one MPLS label stack object (for tests and the
/// simulator), checksum included.
pub fn emit_mpls_extension(stack: &[MplsEntry]) -> Vec<u8> {
    let mut out = vec![0x20, 0, 0, 0];
    let len = 4 + 4 * stack.len();
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.extend_from_slice(&[MPLS_CLASS, MPLS_INCOMING_STACK]);
    for e in stack {
        out.extend_from_slice(&e.emit());
    }
    let sum = internet_checksum(&out);
    out[2..4].copy_from_slice(&sum.to_be_bytes());
    out
}

fn internet_checksum(data: &[u8]) -> u16 {
    let sum = etherparse::checksum::Sum16BitWords::new().add_slice(data);
    // Sum16BitWords works in native byte order and returns the value to store as-is.
    u16::from_be(sum.ones_complement())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_entry_roundtrip_and_text() {
        let e = MplsEntry::parse([0x05, 0xdc, 0x11, 0x01]);
        assert_eq!(
            e,
            MplsEntry {
                label: 24001,
                tc: 0,
                bottom_of_stack: true,
                ttl: 1
            }
        );
        assert_eq!(e.emit(), [0x05, 0xdc, 0x11, 0x01]);
        assert_eq!(e.to_string(), "MPLS:L=24001,E=0,S=1,T=1");
    }

    #[test]
    fn rfc4884_structure_hex() {
        // 128 bytes of quoted datagram, then: version 2, checksum, object (len 12, class 1,
        // c-type 1) with two labels 16 (TC 0) and 24001 (TC 5, bottom of stack).
        let mut data = vec![0u8; 128];
        data.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
        data.extend_from_slice(&[
            0x00, 0x0c, 0x01, 0x01, 0x00, 0x01, 0x00, 0xff, 0x05, 0xdc, 0x1b, 0x01,
        ]);
        // Checksum over the extension structure, computed by hand: fill it in.
        let sum = internet_checksum(&data[128..]);
        data[130..132].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(internet_checksum(&data[128..]), 0);
        let labels = mpls_labels(&data, 32, 4);
        assert_eq!(labels.len(), 2);
        assert_eq!(
            labels[0],
            MplsEntry {
                label: 16,
                tc: 0,
                bottom_of_stack: false,
                ttl: 255
            }
        );
        assert_eq!(
            labels[1],
            MplsEntry {
                label: 24001,
                tc: 5,
                bottom_of_stack: true,
                ttl: 1
            }
        );
        // Pre-RFC 4884 senders leave the length zero; offset 128 is tried then.
        assert_eq!(mpls_labels(&data, 0, 4), labels);
        // ICMPv6 counts 64-bit words.
        assert_eq!(mpls_labels(&data, 16, 8), labels);
    }

    #[test]
    fn emit_then_parse() {
        let stack = [MplsEntry {
            label: 300,
            tc: 1,
            bottom_of_stack: true,
            ttl: 3,
        }];
        let mut data = vec![0u8; 128];
        data.extend(emit_mpls_extension(&stack));
        assert_eq!(mpls_labels(&data, 32, 4), stack);
    }

    #[test]
    fn garbage_is_ignored() {
        let mut data = vec![0u8; 128];
        data.extend_from_slice(&[0x20, 0x00, 0x12, 0x34, 0x00, 0x08, 0x01, 0x01, 0, 0, 0, 0]);
        assert!(mpls_labels(&data, 32, 4).is_empty(), "bad checksum");
        assert!(mpls_labels(&data, 200, 4).is_empty(), "length past the end");
        assert!(mpls_labels(&[], 0, 4).is_empty());
        let mut zero_len = vec![0u8; 128];
        zero_len.extend_from_slice(&[0x20, 0, 0, 0, 0x00, 0x00, 0x01, 0x01]);
        assert!(
            mpls_labels(&zero_len, 32, 4).is_empty(),
            "object length 0 must not loop"
        );
    }
}
