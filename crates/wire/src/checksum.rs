//! The one piece of checksum arithmetic etherparse does not offer: choosing two payload bytes so
//! that a packet's checksum comes out at a value we pick (Paris traceroute's trick).

/// Ones' complement addition of two 16-bit words (end-around carry).
fn oc_add(a: u16, b: u16) -> u16 {
    let s = u32::from(a) + u32::from(b);
    ((s & 0xffff) + (s >> 16)) as u16
}

/// Given the checksum `current` that a packet has with a zero adjustment word, returns the word
/// to write in its place so that the checksum becomes `wanted`. The adjustment word must sit at an
/// even offset of the checksummed data.
pub(crate) fn adjustment(current: u16, wanted: u16) -> u16 {
    // checksum = !sum. With adj added: !wanted = !current + adj, so adj = !wanted - !current,
    // and in ones' complement -x is !x.
    oc_add(!wanted, current)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071 checksum over big-endian words, written out plainly as the reference.
    fn reference(data: &[u8]) -> u16 {
        let mut sum = 0u32;
        for pair in data.chunks(2) {
            let hi = u32::from(pair[0]) << 8;
            let lo = pair.get(1).copied().map_or(0, u32::from);
            sum += hi | lo;
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    #[test]
    fn adjustment_reaches_every_wanted_value() {
        let mut data = vec![0x45, 0x00, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 0, 0];
        let current = reference(&data);
        for wanted in [1u16, 2, 0x1234, 0x8000, 0xfffe] {
            let adj = adjustment(current, wanted);
            data[8..10].copy_from_slice(&adj.to_be_bytes());
            assert_eq!(reference(&data), wanted, "wanted {wanted:#06x}");
            data[8..10].copy_from_slice(&[0, 0]);
        }
    }
}
