//! The packets the simulator forwards: a parsed view over the bytes read from the TUN device,
//! with the rewrites routers do (TTL, NAT) and the fields they hash for ECMP.

use etherparse::{Ipv4HeaderSlice, Ipv6HeaderSlice};
use std::net::IpAddr;

/// Why bytes from the TUN device were not forwarded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("not an IP packet: {0}")]
    Malformed(String),
}

/// Protocol numbers the simulator knows.
pub mod proto {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const GRE: u8 = 47;
    pub const ICMPV6: u8 = 58;
}

/// An IPv4 or IPv6 packet (header included) and where its parts are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    bytes: Vec<u8>,
    pub v6: bool,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ttl: u8,
    pub protocol: u8,
    pub flow_label: u32,
    l4: usize,
}

/// What identifies the trace a probe belongs to: (protocol, destination, flow), the flow being
/// the ICMP identifier, UDP/TCP source port or GRE key (0 when absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceKey {
    pub protocol: u8,
    pub destination: IpAddr,
    pub flow: u32,
}

impl Datagram {
    /// Parses a packet as read from the TUN device; bytes past the IP total length are cut.
    pub fn parse(bytes: &[u8]) -> Result<Datagram, PacketError> {
        match bytes.first().map(|b| b >> 4) {
            Some(4) => {
                let ip = Ipv4HeaderSlice::from_slice(bytes)
                    .map_err(|e| PacketError::Malformed(e.to_string()))?;
                let total = usize::from(ip.total_len()).clamp(ip.slice().len(), bytes.len());
                Ok(Datagram {
                    v6: false,
                    src: ip.source_addr().into(),
                    dst: ip.destination_addr().into(),
                    ttl: ip.ttl(),
                    protocol: ip.protocol().0,
                    flow_label: 0,
                    l4: ip.slice().len(),
                    bytes: bytes[..total].to_vec(),
                })
            }
            Some(6) => {
                let ip = Ipv6HeaderSlice::from_slice(bytes)
                    .map_err(|e| PacketError::Malformed(e.to_string()))?;
                let total = (40 + usize::from(ip.payload_length())).min(bytes.len());
                Ok(Datagram {
                    v6: true,
                    src: ip.source_addr().into(),
                    dst: ip.destination_addr().into(),
                    ttl: ip.hop_limit(),
                    protocol: ip.next_header().0,
                    flow_label: ip.flow_label().value(),
                    l4: 40,
                    bytes: bytes[..total].to_vec(),
                })
            }
            Some(v) => Err(PacketError::Malformed(format!("IP version {v}"))),
            None => Err(PacketError::Malformed("empty".into())),
        }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// The transport part (after the fixed IP header; our probes carry no IPv6 extensions).
    pub fn l4(&self) -> &[u8] {
        &self.bytes[self.l4..]
    }

    fn word(&self, at: usize) -> Option<u16> {
        let l4 = self.l4();
        Some(u16::from_be_bytes([*l4.get(at)?, *l4.get(at + 1)?]))
    }

    /// The GRE key, when the key bit is set.
    fn gre_key(&self) -> Option<u32> {
        let l4 = self.l4();
        let flags = *l4.first()?;
        if flags & 0x20 == 0 {
            return None;
        }
        let at = if flags & 0x80 != 0 { 8 } else { 4 };
        Some(u32::from_be_bytes(l4.get(at..at + 4)?.try_into().ok()?))
    }

    pub fn is_icmp(&self) -> bool {
        self.protocol == if self.v6 { proto::ICMPV6 } else { proto::ICMP }
    }

    /// ICMP type, when this is ICMP(v6).
    pub fn icmp_type(&self) -> Option<u8> {
        self.is_icmp().then(|| self.l4().first().copied()).flatten()
    }

    pub fn trace_key(&self) -> TraceKey {
        let flow = match self.protocol {
            proto::UDP | proto::TCP => self.word(0).map(u32::from),
            proto::ICMP | proto::ICMPV6 => self.word(4).map(u32::from),
            proto::GRE => self.gre_key(),
            _ => None,
        };
        TraceKey {
            protocol: self.protocol,
            destination: self.dst,
            flow: flow.unwrap_or(0),
        }
    }

    /// What a per-flow load balancer hashes: addresses, protocol, the first four transport
    /// bytes (ports; ICMP type, code and checksum), the IPv6 flow label and the GRE key.
    /// Never the ICMP sequence, the UDP checksum or the TCP sequence number.
    pub fn flow_hash(&self, salt: u64) -> u64 {
        let mut h = Fnv::new(salt);
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                h.write(&s.octets());
                h.write(&d.octets());
            }
            (s, d) => {
                h.write(s.to_string().as_bytes());
                h.write(d.to_string().as_bytes());
            }
        }
        h.write(&[self.protocol]);
        let l4 = self.l4();
        h.write(&l4[..l4.len().min(4)]);
        h.write(&self.flow_label.to_be_bytes());
        if self.protocol == proto::GRE {
            h.write(&self.gre_key().unwrap_or(0).to_be_bytes());
        }
        h.finish()
    }

    /// Writes `seq` where the engine's probes carry their sequence (ICMP sequence, UDP
    /// checksum, low half of the TCP sequence number, low half of the GRE sequence number) and,
    /// on IPv4, into the identification. Transport checksums are left as they were: this makes
    /// quotes of probes that were never sent, or that were damaged in transit.
    pub fn set_sequence(&mut self, seq: u16) {
        let at = match self.protocol {
            proto::ICMP | proto::ICMPV6 | proto::UDP | proto::TCP => Some(6),
            proto::GRE => self.l4().first().map(|f| {
                let mut off = 4;
                if f & 0x80 != 0 {
                    off += 4;
                }
                if f & 0x20 != 0 {
                    off += 4;
                }
                off + 2
            }),
            _ => None,
        };
        if let Some(at) = at.map(|a| self.l4 + a)
            && at + 2 <= self.bytes.len()
        {
            self.bytes[at..at + 2].copy_from_slice(&seq.to_be_bytes());
        }
        if !self.v6 {
            self.bytes[4..6].copy_from_slice(&seq.to_be_bytes());
            fix_ipv4_header_checksum(&mut self.bytes);
        }
    }

    /// The sequence as [`Datagram::set_sequence`] writes it, when present.
    pub fn sequence(&self) -> Option<u16> {
        match self.protocol {
            proto::GRE => None,
            _ => self.word(6),
        }
    }

    /// Sets the TTL / hop limit (fixing the IPv4 header checksum).
    pub fn set_ttl(&mut self, ttl: u8) {
        self.ttl = ttl;
        if self.v6 {
            self.bytes[7] = ttl;
        } else {
            self.bytes[8] = ttl;
            fix_ipv4_header_checksum(&mut self.bytes);
        }
    }

    /// Rewrites the source address as a NAT does, fixing every checksum that covers it.
    pub fn set_src(&mut self, ip: IpAddr) {
        let at = if self.v6 { 8 } else { 12 };
        self.rewrite_address(at, ip);
        self.src = ip;
    }

    /// Rewrites the destination address, fixing every checksum that covers it.
    pub fn set_dst(&mut self, ip: IpAddr) {
        let at = if self.v6 { 24 } else { 16 };
        self.rewrite_address(at, ip);
        self.dst = ip;
    }

    fn rewrite_address(&mut self, at: usize, ip: IpAddr) {
        let new: Vec<u8> = match ip {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        let len = new.len();
        if (len == 16) != self.v6 {
            return; // family mismatch: a scenario error caught at validation
        }
        let old = self.bytes[at..at + len].to_vec();
        self.bytes[at..at + len].copy_from_slice(&new);
        if !self.v6 {
            fix_ipv4_header_checksum(&mut self.bytes);
        }
        // Transport checksums over the pseudo-header (ICMPv4's does not cover it).
        let sum_at = match self.protocol {
            proto::UDP => Some(6),
            proto::TCP => Some(16),
            proto::ICMPV6 => Some(2),
            _ => None,
        };
        if let Some(off) = sum_at {
            let at = self.l4 + off;
            if let Some(b) = self.bytes.get(at..at + 2) {
                let sum = u16::from_be_bytes([b[0], b[1]]);
                // An IPv4 UDP checksum of 0 means "none" and stays so.
                if !(self.protocol == proto::UDP && sum == 0) {
                    let mut fixed = adjust_checksum(sum, &old, &new);
                    if self.protocol == proto::UDP && fixed == 0 {
                        fixed = 0xffff;
                    }
                    self.bytes[at..at + 2].copy_from_slice(&fixed.to_be_bytes());
                }
            }
        }
    }
}

/// Recomputes the IPv4 header checksum of `packet` in place (no-op on a bad header).
pub fn fix_ipv4_header_checksum(packet: &mut [u8]) {
    if let Ok(h) = Ipv4HeaderSlice::from_slice(packet) {
        let sum = h.to_header().calc_header_checksum();
        packet[10..12].copy_from_slice(&sum.to_be_bytes());
    }
}

/// Incremental checksum update (RFC 1624, eqn. 3): `old` bytes replaced by `new` (same even
/// length) under a checksum `sum`.
pub fn adjust_checksum(sum: u16, old: &[u8], new: &[u8]) -> u16 {
    let mut acc: u32 = u32::from(!sum);
    for (o, n) in old.chunks(2).zip(new.chunks(2)) {
        let o = u16::from_be_bytes([o[0], *o.get(1).unwrap_or(&0)]);
        let n = u16::from_be_bytes([n[0], *n.get(1).unwrap_or(&0)]);
        acc += u32::from(!o) + u32::from(n);
    }
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// FNV-1a, salted, with a final avalanche: stable across runs and Rust versions (unlike
/// `DefaultHasher`), which keeps ECMP choices a pure function of the scenario seed.
struct Fnv(u64);

impl Fnv {
    fn new(salt: u64) -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325 ^ salt)
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgetrace_wire::{ProbeSpec, Protocol, emit_probe};
    use etherparse::{Ipv4Slice, UdpHeaderSlice};

    fn probe(protocol: Protocol, flow: u32, seq: u16, ttl: u8) -> Datagram {
        let spec = ProbeSpec {
            protocol,
            source: "198.18.0.1".parse().unwrap(),
            destination: "198.19.0.9".parse().unwrap(),
            ttl,
            flow,
            port: 33434,
            seq,
        };
        let mut buf = Vec::new();
        emit_probe(&spec, &mut buf).unwrap();
        Datagram::parse(&buf).unwrap()
    }

    #[test]
    fn flow_hash_is_stable_per_flow_and_ignores_the_sequence() {
        for protocol in [Protocol::Icmp, Protocol::Udp, Protocol::Tcp, Protocol::Gre] {
            let a = probe(protocol, 0x8001, 1, 1).flow_hash(7);
            for seq in 2..50 {
                assert_eq!(
                    probe(protocol, 0x8001, seq, seq as u8).flow_hash(7),
                    a,
                    "{protocol:?} seq {seq}"
                );
            }
            assert_ne!(
                probe(protocol, 0x8002, 1, 1).flow_hash(7),
                a,
                "{protocol:?}: another flow"
            );
            assert_ne!(
                probe(protocol, 0x8001, 1, 1).flow_hash(8),
                a,
                "{protocol:?}: another salt"
            );
        }
    }

    #[test]
    fn flows_spread_over_branches() {
        let mut counts = [0; 4];
        for flow in 0x8000..0x8400 {
            counts[(probe(Protocol::Udp, flow, 1, 1).flow_hash(3) % 4) as usize] += 1;
        }
        assert!(counts.iter().all(|c| (200..312).contains(c)), "{counts:?}");
    }

    #[test]
    fn trace_key_names_the_flow() {
        let p = probe(Protocol::Gre, 0x1234_5678, 3, 2);
        assert_eq!(p.trace_key().flow, 0x1234_5678);
        assert_eq!(probe(Protocol::Icmp, 0x8009, 3, 2).trace_key().flow, 0x8009);
        assert_eq!(
            probe(Protocol::Tcp, 0x8009, 3, 2).trace_key().protocol,
            proto::TCP
        );
    }

    #[test]
    fn ttl_and_nat_rewrites_keep_checksums_valid() {
        let mut p = probe(Protocol::Udp, 0x8001, 5, 9);
        p.set_ttl(3);
        p.set_src("198.18.200.1".parse().unwrap());
        let ip = Ipv4Slice::from_slice(p.bytes()).unwrap();
        let h = ip.header().to_header();
        assert_eq!(h.time_to_live, 3);
        assert_eq!(h.header_checksum, h.calc_header_checksum());
        let udp = UdpHeaderSlice::from_slice(p.l4()).unwrap();
        let want = udp
            .to_header()
            .calc_checksum_ipv4_raw(h.source, h.destination, &p.l4()[8..])
            .unwrap();
        assert_eq!(udp.checksum(), want);
        assert_ne!(
            udp.checksum(),
            5,
            "NAT changed the checksum that carried the sequence"
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [&[][..], &[0x45][..], &[0x60, 0, 0][..], &[0x15; 40][..]] {
            assert!(Datagram::parse(bytes).is_err());
        }
        // A header claiming more than was read is cut to what was read.
        let mut p = probe(Protocol::Icmp, 1, 1, 1).into_bytes();
        p.truncate(24);
        let d = Datagram::parse(&p).unwrap();
        assert_eq!(d.l4().len(), 4);
        let _ = d.trace_key();
        let _ = d.flow_hash(0);
    }
}
