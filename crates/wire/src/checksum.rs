//! The checksum arithmetic etherparse does not offer: choosing two payload bytes so that a
//! packet's checksum comes out at a value we pick (Paris traceroute's trick), and checking the
//! checksum of a received message over slices of it (and a pseudo-header) without copying.

/// Ones' complement addition of two 16-bit words (end-around carry).
fn oc_add(a: u16, b: u16) -> u16 {
    let s = u32::from(a) + u32::from(b);
    ((s & 0xffff) + (s >> 16)) as u16
}

/// The RFC 1071 sum of `data` added to `sum`, not yet folded. Every slice but the last handed
/// to a chain of calls must be of even length (ours are: headers and pseudo-headers).
pub(crate) fn add(mut sum: u32, data: &[u8]) -> u32 {
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
        // Fold as we go so the sum never overflows, whatever the length.
        sum = (sum & 0xffff) + (sum >> 16);
    }
    if let [last] = words.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

/// Folds a sum to 16 bits (end-around carry).
pub(crate) fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Whether `data` (after the pseudo-header summed in `sum`, or 0) carries a correct checksum.
pub(crate) fn verifies(sum: u32, data: &[u8]) -> bool {
    fold(add(sum, data)) == 0xffff
}

/// The checksum `data` should carry in its checksum field at `at` (an even offset): the sum
/// with that field left out, complemented.
pub(crate) fn expected(sum: u32, data: &[u8], at: usize) -> u16 {
    !fold(add(add(sum, &data[..at]), &data[at + 2..]))
}

/// The sum of an IPv4 pseudo-header (RFC 793): addresses, protocol and transport length.
pub(crate) fn pseudo_header_v4(
    source: [u8; 4],
    destination: [u8; 4],
    protocol: u8,
    len: usize,
) -> u32 {
    let sum = add(add(0, &source), &destination);
    // A length beyond 16 bits cannot come from an IPv4 packet; it is summed as it would wrap.
    sum + u32::from(protocol) + (len as u32 & 0xffff) + (len as u32 >> 16)
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
    fn sums_match_the_reference_and_verify_what_they_compute() {
        let data = [0x45, 0x00, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0x7f];
        assert_eq!(!fold(add(0, &data)), reference(&data));
        // Split at an even offset, the sum is the same.
        assert_eq!(
            fold(add(add(0, &data[..4]), &data[4..])),
            fold(add(0, &data))
        );
        let mut msg = data.to_vec();
        let sum = expected(0, &msg, 8);
        msg[8..10].copy_from_slice(&sum.to_be_bytes());
        assert!(verifies(0, &msg));
        assert_eq!(expected(0, &msg, 8), sum);
        msg[3] ^= 1;
        assert!(!verifies(0, &msg));
        // Long data cannot overflow the running sum.
        assert_eq!(fold(add(0, &[0xff; 100_000])), 0xffff);
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
