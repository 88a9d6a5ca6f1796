//! Building probes.
//!
//! Every probe of one trace keeps the fields that load balancers hash on (addresses, protocol,
//! ports, ICMP checksum) constant, as Paris traceroute does; what tells probes apart lives in
//! fields routers do not hash on and that ICMP errors quote:
//!
//! | protocol | flow (per trace)         | probe sequence                         |
//! |----------|--------------------------|----------------------------------------|
//! | ICMP     | echo identifier          | echo sequence; payload keeps checksum constant |
//! | UDP      | source port              | UDP checksum (payload bytes chosen for it) |
//! | TCP      | source port              | TCP sequence number `flow << 16 \| seq` |
//! | GRE      | GRE key (RFC 2890)       | GRE sequence number                    |
//!
//! On IPv4 the IP identification carries the sequence too, for routers that quote only 8 bytes.

use crate::{Protocol, WireError, checksum, gre::GreRepr};
use etherparse::{
    IcmpEchoHeader, Icmpv4Header, Icmpv4Type, Icmpv6Header, Icmpv6Type, IpNumber, Ipv4Header,
    TcpHeader, UdpHeader,
};
use std::net::IpAddr;

/// Marks our payloads in captures.
const MAGIC: &[u8; 8] = b"edgetrce";
/// GRE protocol type of our probes: PPP, as FreeBSD's `traceroute -P gre` uses.
pub const GRE_PROTOCOL_TYPE: u16 = 0x880b;

/// Everything that makes one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSpec {
    pub protocol: Protocol,
    pub source: IpAddr,
    pub destination: IpAddr,
    pub ttl: u8,
    /// ICMP identifier, UDP/TCP source port, or GRE key. Constant for a trace.
    pub flow: u32,
    /// UDP/TCP destination port; unused for ICMP and GRE.
    pub port: u16,
    /// Identifies the probe within its trace. For UDP it becomes the checksum, so it must not be
    /// 0 or 0xffff.
    pub seq: u16,
}

impl ProbeSpec {
    /// The ICMP checksum all probes of an ICMP trace share.
    fn icmp_checksum(&self) -> u16 {
        0x5eed ^ (self.flow as u16)
    }
}

/// Writes the probe into `buf` (cleared first). IPv4 probes include the IPv4 header (for a raw
/// socket with `IP_HDRINCL`); IPv6 probes are the transport part only, the hop limit being set on
/// the socket, since Linux raw IPv6 sockets do not take a header.
pub fn emit_probe(spec: &ProbeSpec, buf: &mut Vec<u8>) -> Result<(), WireError> {
    buf.clear();
    let v6 = match (spec.source, spec.destination) {
        (IpAddr::V4(_), IpAddr::V4(_)) => false,
        (IpAddr::V6(_), IpAddr::V6(_)) => true,
        _ => {
            return Err(WireError::Build(
                "source and destination families differ".into(),
            ));
        }
    };
    if spec.protocol == Protocol::Udp && (spec.seq == 0 || spec.seq == 0xffff) {
        return Err(WireError::Build(format!(
            "UDP probe sequence {} cannot be a checksum",
            spec.seq
        )));
    }
    if spec.protocol != Protocol::Gre && spec.flow > u32::from(u16::MAX) {
        return Err(WireError::Build(format!(
            "flow {} does not fit 16 bits for {}",
            spec.flow,
            spec.protocol.as_str()
        )));
    }
    let mut l4 = Vec::with_capacity(64);
    emit_transport(spec, &mut l4)?;
    if let (IpAddr::V4(src), IpAddr::V4(dst)) = (spec.source, spec.destination) {
        let number = IpNumber(spec.protocol.ip_number(v6));
        let mut ip = Ipv4Header::new(
            l4.len() as u16,
            spec.ttl,
            number,
            src.octets(),
            dst.octets(),
        )
        .map_err(|e| WireError::Build(e.to_string()))?;
        ip.identification = spec.seq;
        ip.dont_fragment = false;
        ip.header_checksum = ip.calc_header_checksum();
        buf.extend_from_slice(&ip.to_bytes());
    }
    buf.extend_from_slice(&l4);
    Ok(())
}

fn emit_transport(spec: &ProbeSpec, out: &mut Vec<u8>) -> Result<(), WireError> {
    match spec.protocol {
        Protocol::Icmp => emit_icmp(spec, out),
        Protocol::Udp => emit_udp(spec, out),
        Protocol::Tcp => emit_tcp(spec, out),
        Protocol::Gre => {
            let gre = GreRepr {
                protocol_type: GRE_PROTOCOL_TYPE,
                checksum: false,
                key: Some(spec.flow),
                sequence: Some(u32::from(spec.seq)),
            };
            out.resize(gre.buffer_len(), 0);
            gre.emit(out);
            out.extend_from_slice(MAGIC);
            Ok(())
        }
    }
}

/// Payload: magic, then the adjustment word that makes a checksum come out as wanted.
fn payload_with_adjustment() -> Vec<u8> {
    let mut p = MAGIC.to_vec();
    p.extend_from_slice(&[0, 0]);
    p
}

fn emit_icmp(spec: &ProbeSpec, out: &mut Vec<u8>) -> Result<(), WireError> {
    let echo = IcmpEchoHeader {
        id: spec.flow as u16,
        seq: spec.seq,
    };
    let mut payload = payload_with_adjustment();
    let adj_at = payload.len() - 2;
    let wanted = spec.icmp_checksum();
    match (spec.source, spec.destination) {
        (IpAddr::V4(_), IpAddr::V4(_)) => {
            let ty = Icmpv4Type::EchoRequest(echo);
            let current = Icmpv4Header::with_checksum(ty.clone(), &payload).checksum;
            payload[adj_at..].copy_from_slice(&checksum::adjustment(current, wanted).to_be_bytes());
            let header = Icmpv4Header::with_checksum(ty, &payload);
            out.extend_from_slice(&header.to_bytes());
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            let ty = Icmpv6Type::EchoRequest(echo);
            let current = Icmpv6Header::with_checksum(ty, src.octets(), dst.octets(), &payload)
                .map_err(|e| WireError::Build(e.to_string()))?
                .checksum;
            payload[adj_at..].copy_from_slice(&checksum::adjustment(current, wanted).to_be_bytes());
            let header = Icmpv6Header::with_checksum(ty, src.octets(), dst.octets(), &payload)
                .map_err(|e| WireError::Build(e.to_string()))?;
            out.extend_from_slice(&header.to_bytes());
        }
        _ => unreachable!("families checked by emit_probe"),
    }
    out.extend_from_slice(&payload);
    Ok(())
}

fn udp_checksum(spec: &ProbeSpec, header: &UdpHeader, payload: &[u8]) -> Result<u16, WireError> {
    let sum = match (spec.source, spec.destination) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            header.calc_checksum_ipv4_raw(s.octets(), d.octets(), payload)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            header.calc_checksum_ipv6_raw(s.octets(), d.octets(), payload)
        }
        _ => unreachable!("families checked by emit_probe"),
    };
    sum.map_err(|e| WireError::Build(e.to_string()))
}

fn emit_udp(spec: &ProbeSpec, out: &mut Vec<u8>) -> Result<(), WireError> {
    let mut payload = payload_with_adjustment();
    let adj_at = payload.len() - 2;
    let mut header = UdpHeader {
        source_port: spec.flow as u16,
        destination_port: spec.port,
        length: (UdpHeader::LEN + payload.len()) as u16,
        checksum: 0,
    };
    let current = udp_checksum(spec, &header, &payload)?;
    payload[adj_at..].copy_from_slice(&checksum::adjustment(current, spec.seq).to_be_bytes());
    header.checksum = udp_checksum(spec, &header, &payload)?;
    if header.checksum != spec.seq {
        return Err(WireError::Build(format!(
            "UDP checksum came out {:#06x}, wanted {:#06x}",
            header.checksum, spec.seq
        )));
    }
    out.extend_from_slice(&header.to_bytes());
    out.extend_from_slice(&payload);
    Ok(())
}

/// The TCP sequence number of a probe; the reply's acknowledgment number is this plus one.
pub fn tcp_sequence(flow: u32, seq: u16) -> u32 {
    (flow << 16) | u32::from(seq)
}

fn emit_tcp(spec: &ProbeSpec, out: &mut Vec<u8>) -> Result<(), WireError> {
    let mut tcp = TcpHeader::new(
        spec.flow as u16,
        spec.port,
        tcp_sequence(spec.flow, spec.seq),
        64240,
    );
    tcp.syn = true;
    // MSS 1460: some middleboxes drop SYNs without options.
    tcp.set_options_raw(&[2, 4, 0x05, 0xb4])
        .map_err(|e| WireError::Build(e.to_string()))?;
    tcp.checksum = match (spec.source, spec.destination) {
        (IpAddr::V4(s), IpAddr::V4(d)) => tcp.calc_checksum_ipv4_raw(s.octets(), d.octets(), &[]),
        (IpAddr::V6(s), IpAddr::V6(d)) => tcp.calc_checksum_ipv6_raw(s.octets(), d.octets(), &[]),
        _ => unreachable!("families checked by emit_probe"),
    }
    .map_err(|e| WireError::Build(e.to_string()))?;
    out.extend_from_slice(&tcp.to_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::hex;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn spec(protocol: Protocol, v6: bool) -> ProbeSpec {
        let (source, destination) = if v6 {
            (
                IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 1, 0, 0, 0, 2)),
                IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 9, 0, 0, 0, 2)),
            )
        } else {
            (
                IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)),
                IpAddr::V4(Ipv4Addr::new(198, 18, 0, 9)),
            )
        };
        ProbeSpec {
            protocol,
            source,
            destination,
            ttl: 5,
            flow: 0x9c41,
            port: 33434,
            seq: 3,
        }
    }

    // Expected bytes below were checked with an independent RFC 1071 implementation (all
    // checksums verify; the UDP checksum equals the sequence; the ICMP checksum is 0x5eed^flow).
    #[test]
    fn udp_v4_hex() {
        let mut buf = vec![0xa5; 80];
        emit_probe(&spec(Protocol::Udp, false), &mut buf).unwrap();
        let expected = hex("4500 0026 0003 0000 0511 2995 c612 0002 c612 0009
             9c41 829a 0012 0003 6564 6765 7472 6365 b019");
        assert_eq!(buf, expected);
    }

    #[test]
    fn icmp_v4_hex_and_constant_checksum() {
        let mut a = Vec::new();
        emit_probe(&spec(Protocol::Icmp, false), &mut a).unwrap();
        let expected = hex("4500 0026 0003 0000 0501 29a5 c612 0002 c612 0009
             0800 c2ac 9c41 0003 6564 6765 7472 6365 f46c");
        assert_eq!(a, expected);
        let mut b = Vec::new();
        let other = ProbeSpec {
            seq: 4000,
            ttl: 9,
            ..spec(Protocol::Icmp, false)
        };
        emit_probe(&other, &mut b).unwrap();
        assert_eq!(
            a[22..24],
            b[22..24],
            "ICMP checksum must not vary within a trace"
        );
        assert_ne!(a[26..28], b[26..28]);
    }

    #[test]
    fn tcp_v4_hex() {
        let mut buf = Vec::new();
        emit_probe(&spec(Protocol::Tcp, false), &mut buf).unwrap();
        let expected = hex("4500 002c 0003 0000 0506 299a c612 0002 c612 0009
             9c41 829a 9c41 0003 0000 0000 6002 faf0 55e5 0000 0204 05b4");
        assert_eq!(buf, expected);
    }

    #[test]
    fn gre_v4_hex() {
        let mut buf = Vec::new();
        emit_probe(&spec(Protocol::Gre, false), &mut buf).unwrap();
        let expected = hex("4500 0028 0003 0000 052f 2975 c612 0002 c612 0009
             3000 880b 0000 9c41 0000 0003 6564 6765 7472 6365");
        assert_eq!(buf, expected);
    }

    #[test]
    fn v6_probes_have_no_ip_header_and_valid_checksums() {
        let s = spec(Protocol::Udp, true);
        let mut buf = Vec::new();
        emit_probe(&s, &mut buf).unwrap();
        assert_eq!(buf.len(), 18);
        assert_eq!(u16::from_be_bytes([buf[6], buf[7]]), 3);
        let (IpAddr::V6(src), IpAddr::V6(dst)) = (s.source, s.destination) else {
            unreachable!()
        };
        let (udp, payload) = UdpHeader::from_slice(&buf).unwrap();
        assert_eq!(
            udp.calc_checksum_ipv6_raw(src.octets(), dst.octets(), payload)
                .unwrap(),
            3
        );

        emit_probe(&spec(Protocol::Icmp, true), &mut buf).unwrap();
        let icmp = etherparse::Icmpv6Slice::from_slice(&buf).unwrap();
        assert!(icmp.is_checksum_valid(src.octets(), dst.octets()));
        assert_eq!(icmp.checksum(), 0x5eed ^ 0x9c41);
    }

    #[test]
    fn udp_checksum_hits_every_sequence() {
        for v6 in [false, true] {
            for seq in 1..=700u16 {
                let mut buf = Vec::new();
                emit_probe(
                    &ProbeSpec {
                        seq,
                        ..spec(Protocol::Udp, v6)
                    },
                    &mut buf,
                )
                .unwrap();
            }
        }
    }

    #[test]
    fn bad_specs_are_errors() {
        let mut buf = Vec::new();
        let zero = ProbeSpec {
            seq: 0,
            ..spec(Protocol::Udp, false)
        };
        assert!(emit_probe(&zero, &mut buf).is_err());
        let mixed = ProbeSpec {
            source: Ipv6Addr::LOCALHOST.into(),
            ..spec(Protocol::Icmp, false)
        };
        assert!(emit_probe(&mixed, &mut buf).is_err());
        let wide = ProbeSpec {
            flow: 70_000,
            ..spec(Protocol::Tcp, false)
        };
        assert!(emit_probe(&wide, &mut buf).is_err());
    }
}
