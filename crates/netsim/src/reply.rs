//! Building what routers and targets send back, with etherparse computing every checksum.
//!
//! ```
//! use edgetrace_netsim::packet::Datagram;
//! use edgetrace_netsim::reply::{IcmpError, icmp_error};
//! use edgetrace_wire::{ProbeSpec, Protocol, emit_probe, parse_reply_v4};
//!
//! let spec = ProbeSpec {
//!     protocol: Protocol::Udp,
//!     source: "198.18.0.1".parse().unwrap(),
//!     destination: "198.19.0.9".parse().unwrap(),
//!     ttl: 1,
//!     flow: 0x8001,
//!     port: 33434,
//!     seq: 4,
//! };
//! let mut probe = Vec::new();
//! emit_probe(&spec, &mut probe).unwrap();
//! let probe = Datagram::parse(&probe).unwrap();
//! let reply = icmp_error("198.18.1.1".parse().unwrap(), &probe, IcmpError::TimeExceeded, None, &[]);
//! let parsed = parse_reply_v4(&reply).unwrap();
//! assert_eq!(parsed.probe.seq, Some(4));
//! ```

use crate::packet::{Datagram, proto};
use edgetrace_wire::MplsEntry;
use edgetrace_wire::extensions::emit_mpls_extension;
use etherparse::{
    IcmpEchoHeader, Icmpv4Header, Icmpv4Type, Icmpv6Header, Icmpv6Type, IpNumber, Ipv4Header,
    Ipv6FlowLabel, Ipv6Header, TcpHeader, TcpHeaderSlice,
};
use std::net::IpAddr;

/// TTL / hop limit of packets the simulated nodes originate.
const REPLY_TTL: u8 = 64;
/// RFC 4884: with extensions, the quoted datagram is padded (or cut) to 128 bytes.
const EXTENSION_QUOTE: usize = 128;

/// The ICMP errors the simulator sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpError {
    TimeExceeded,
    PortUnreachable,
    /// IPv4 protocol unreachable; IPv6 parameter problem "unrecognized next header".
    ProtocolUnreachable,
    /// `!H`; IPv6 "address unreachable".
    HostUnreachable,
    /// `!N`; IPv6 "no route".
    NetUnreachable,
    /// `!X`; IPv6 "administratively prohibited".
    AdminProhibited,
}

impl IcmpError {
    /// (type, code, the four bytes after the checksum) for the family.
    fn header(self, v6: bool) -> (u8, u8, [u8; 4]) {
        match (self, v6) {
            (IcmpError::TimeExceeded, false) => (11, 0, [0; 4]),
            (IcmpError::TimeExceeded, true) => (3, 0, [0; 4]),
            (IcmpError::PortUnreachable, false) => (3, 3, [0; 4]),
            (IcmpError::PortUnreachable, true) => (1, 4, [0; 4]),
            (IcmpError::ProtocolUnreachable, false) => (3, 2, [0; 4]),
            // The pointer: offset 6 of the IPv6 header, the next header field.
            (IcmpError::ProtocolUnreachable, true) => (4, 1, [0, 0, 0, 6]),
            (IcmpError::HostUnreachable, false) => (3, 1, [0; 4]),
            (IcmpError::HostUnreachable, true) => (1, 3, [0; 4]),
            (IcmpError::NetUnreachable, false) => (3, 0, [0; 4]),
            (IcmpError::NetUnreachable, true) => (1, 0, [0; 4]),
            (IcmpError::AdminProhibited, false) => (3, 13, [0; 4]),
            (IcmpError::AdminProhibited, true) => (1, 1, [0; 4]),
        }
    }
}

fn octets4(ip: IpAddr) -> Option<[u8; 4]> {
    match ip {
        IpAddr::V4(a) => Some(a.octets()),
        IpAddr::V6(_) => None,
    }
}

fn octets6(ip: IpAddr) -> Option<[u8; 16]> {
    match ip {
        IpAddr::V6(a) => Some(a.octets()),
        IpAddr::V4(_) => None,
    }
}

/// An IP packet from `src` to `dst` around a transport payload. Empty when the families differ
/// or the payload is too big (neither happens with the packets this module builds).
pub fn ip_packet(src: IpAddr, dst: IpAddr, protocol: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(40 + payload.len());
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let Ok(mut ip) = Ipv4Header::new(
                payload.len() as u16,
                REPLY_TTL,
                IpNumber(protocol),
                s.octets(),
                d.octets(),
            ) else {
                return out;
            };
            ip.header_checksum = ip.calc_header_checksum();
            out.extend_from_slice(&ip.to_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let Ok(len) = u16::try_from(payload.len()) else {
                return out;
            };
            let ip = Ipv6Header {
                traffic_class: 0,
                flow_label: Ipv6FlowLabel::ZERO,
                payload_length: len,
                next_header: IpNumber(protocol),
                hop_limit: REPLY_TTL,
                source: s.octets(),
                destination: d.octets(),
            };
            out.extend_from_slice(&ip.to_bytes());
        }
        _ => return out,
    }
    out.extend_from_slice(payload);
    out
}

/// An ICMP(v6) message with a computed checksum, in its IP packet.
fn icmp_packet(src: IpAddr, dst: IpAddr, ty: u8, code: u8, rest: [u8; 4], body: &[u8]) -> Vec<u8> {
    let mut icmp = Vec::with_capacity(8 + body.len());
    if let (Some(_), Some(_)) = (octets4(src), octets4(dst)) {
        let h = Icmpv4Header::with_checksum(
            Icmpv4Type::Unknown {
                type_u8: ty,
                code_u8: code,
                bytes5to8: rest,
            },
            body,
        );
        icmp.extend_from_slice(&h.to_bytes());
        icmp.extend_from_slice(body);
        return ip_packet(src, dst, proto::ICMP, &icmp);
    }
    let (Some(s), Some(d)) = (octets6(src), octets6(dst)) else {
        return Vec::new();
    };
    let Ok(h) = Icmpv6Header::with_checksum(
        Icmpv6Type::Unknown {
            type_u8: ty,
            code_u8: code,
            bytes5to8: rest,
        },
        s,
        d,
        body,
    ) else {
        return Vec::new();
    };
    icmp.extend_from_slice(&h.to_bytes());
    icmp.extend_from_slice(body);
    ip_packet(src, dst, proto::ICMPV6, &icmp)
}

/// The checksum an ICMP(v6) message `l4` (checksum field included, any value) should carry,
/// from `src` to `dst`; `None` when it is shorter than its 8-byte header.
pub fn icmp_checksum(src: IpAddr, dst: IpAddr, l4: &[u8]) -> Option<u16> {
    if l4.len() < 8 {
        return None;
    }
    let ty = Icmpv4Type::Unknown {
        type_u8: l4[0],
        code_u8: l4[1],
        bytes5to8: [l4[4], l4[5], l4[6], l4[7]],
    };
    match (src, dst) {
        (IpAddr::V4(_), IpAddr::V4(_)) => Some(Icmpv4Header::with_checksum(ty, &l4[8..]).checksum),
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let ty = Icmpv6Type::Unknown {
                type_u8: l4[0],
                code_u8: l4[1],
                bytes5to8: [l4[4], l4[5], l4[6], l4[7]],
            };
            Icmpv6Header::with_checksum(ty, s.octets(), d.octets(), &l4[8..])
                .ok()
                .map(|h| h.checksum)
        }
        _ => None,
    }
}

/// An ICMP error from `from` about `offending` (sent back to its source), quoting at most
/// `quote_limit` bytes of it (default: what fits in 576 bytes for IPv4, 1280 for IPv6, as Linux
/// does), with an RFC 4950 MPLS label stack object when `mpls` is not empty.
pub fn icmp_error(
    from: IpAddr,
    offending: &Datagram,
    kind: IcmpError,
    quote_limit: Option<usize>,
    mpls: &[MplsEntry],
) -> Vec<u8> {
    let v6 = offending.v6;
    let (ty, code, mut rest) = kind.header(v6);
    let max = if v6 { 1280 - 48 } else { 576 - 28 };
    let limit = quote_limit.unwrap_or(max).min(max);
    let bytes = offending.bytes();
    let mut body = bytes[..bytes.len().min(limit)].to_vec();
    if !mpls.is_empty() {
        body.resize(EXTENSION_QUOTE, 0);
        // RFC 4884 length of the original datagram: 32-bit words (ICMPv4, byte 6 of the
        // header), 64-bit words (ICMPv6, byte 5).
        if v6 {
            rest[0] = (EXTENSION_QUOTE / 8) as u8;
        } else {
            rest[1] = (EXTENSION_QUOTE / 4) as u8;
        }
        body.extend_from_slice(&emit_mpls_extension(mpls));
    }
    icmp_packet(from, offending.src, ty, code, rest, &body)
}

/// The echo reply to an echo request (same identifier, sequence and payload). `None` when the
/// request is not an echo request.
pub fn echo_reply(request: &Datagram) -> Option<Vec<u8>> {
    let l4 = request.l4();
    let want = if request.v6 { 128 } else { 8 };
    if l4.len() < 8 || l4[0] != want {
        return None;
    }
    let echo = IcmpEchoHeader {
        id: u16::from_be_bytes([l4[4], l4[5]]),
        seq: u16::from_be_bytes([l4[6], l4[7]]),
    };
    let payload = &l4[8..];
    let mut icmp = Vec::with_capacity(l4.len());
    if request.v6 {
        let (s, d) = (octets6(request.dst)?, octets6(request.src)?);
        let h = Icmpv6Header::with_checksum(Icmpv6Type::EchoReply(echo), s, d, payload).ok()?;
        icmp.extend_from_slice(&h.to_bytes());
        icmp.extend_from_slice(payload);
        Some(ip_packet(request.dst, request.src, proto::ICMPV6, &icmp))
    } else {
        let h = Icmpv4Header::with_checksum(Icmpv4Type::EchoReply(echo), payload);
        icmp.extend_from_slice(&h.to_bytes());
        icmp.extend_from_slice(payload);
        Some(ip_packet(request.dst, request.src, proto::ICMP, &icmp))
    }
}

/// A SYN-ACK (`open`) or RST+ACK to a TCP SYN. `None` for anything but a SYN (the RST the
/// engine's kernel sends back after a SYN-ACK, for one, gets no answer).
pub fn tcp_answer(syn: &Datagram, open: bool) -> Option<Vec<u8>> {
    let tcp = TcpHeaderSlice::from_slice(syn.l4()).ok()?;
    if !tcp.syn() || tcp.ack() || tcp.rst() {
        return None;
    }
    let ack = tcp.sequence_number().wrapping_add(1);
    let mut h = TcpHeader::new(
        tcp.destination_port(),
        tcp.source_port(),
        if open { 0x5eed_0000 ^ ack } else { 0 },
        if open { 64240 } else { 0 },
    );
    h.ack = true;
    h.acknowledgment_number = ack;
    h.syn = open;
    h.rst = !open;
    h.checksum = match (syn.dst, syn.src) {
        (IpAddr::V4(s), IpAddr::V4(d)) => h.calc_checksum_ipv4_raw(s.octets(), d.octets(), &[]),
        (IpAddr::V6(s), IpAddr::V6(d)) => h.calc_checksum_ipv6_raw(s.octets(), d.octets(), &[]),
        _ => return None,
    }
    .ok()?;
    Some(ip_packet(syn.dst, syn.src, proto::TCP, &h.to_bytes()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use edgetrace_wire::{
        ProbeSpec, Protocol, ReplyKind, emit_probe, parse_reply_v4, parse_reply_v6,
    };
    use etherparse::{Icmpv6Slice, Ipv4Slice, Ipv6Slice};
    use std::net::Ipv6Addr;

    /// Whether an IPv4 ICMP packet's checksum is right.
    pub(crate) fn icmpv4_checksum_ok(p: &[u8]) -> bool {
        let l4 = &p[20..];
        let (src, dst) = (
            IpAddr::from([p[12], p[13], p[14], p[15]]),
            IpAddr::from([p[16], p[17], p[18], p[19]]),
        );
        icmp_checksum(src, dst, l4) == Some(u16::from_be_bytes([l4[2], l4[3]]))
    }

    const ROUTER4: &str = "198.18.1.1";
    const ROUTER6: &str = "2001:2:0:1::1";

    fn spec(protocol: Protocol, v6: bool) -> ProbeSpec {
        let (source, destination) = if v6 {
            (
                "2001:2::1".parse().unwrap(),
                "2001:2:0:ff::9".parse().unwrap(),
            )
        } else {
            ("198.18.0.1".parse().unwrap(), "198.19.0.9".parse().unwrap())
        };
        ProbeSpec {
            protocol,
            source,
            destination,
            ttl: 3,
            flow: 0x8123,
            port: 33434,
            seq: 7,
        }
    }

    /// The probe as it would arrive on the TUN device: IPv6 probes get their header here
    /// (the engine's kernel adds it).
    fn wire_probe(s: &ProbeSpec) -> Datagram {
        let mut l4 = Vec::new();
        emit_probe(s, &mut l4).unwrap();
        if s.source.is_ipv6() {
            let mut p = ip_packet(s.source, s.destination, s.protocol.ip_number(true), &l4);
            p[7] = s.ttl;
            Datagram::parse(&p).unwrap()
        } else {
            Datagram::parse(&l4).unwrap()
        }
    }

    /// Parses a reply as the engine does: IPv4 whole, IPv6 without its header.
    fn parse(reply: &[u8]) -> edgetrace_wire::Reply {
        if reply[0] >> 4 == 4 {
            let ip = Ipv4Slice::from_slice(reply).unwrap();
            let h = ip.header().to_header();
            assert_eq!(h.header_checksum, h.calc_header_checksum());
            parse_reply_v4(reply).unwrap()
        } else {
            let ip = Ipv6Slice::from_slice(reply).unwrap();
            let from = ip.header().source_addr();
            let nh = ip.header().next_header().0;
            let payload = ip.payload().payload;
            if nh == 58 {
                let icmp = Icmpv6Slice::from_slice(payload).unwrap();
                assert!(icmp.is_checksum_valid(ip.header().source(), ip.header().destination()));
            }
            parse_reply_v6(from, nh, payload).unwrap()
        }
    }

    #[test]
    fn time_exceeded_quotes_every_protocol_both_families() {
        for v6 in [false, true] {
            for protocol in [Protocol::Icmp, Protocol::Udp, Protocol::Tcp, Protocol::Gre] {
                let s = spec(protocol, v6);
                let probe = wire_probe(&s);
                let from: IpAddr = if v6 { ROUTER6 } else { ROUTER4 }.parse().unwrap();
                let r = parse(&icmp_error(
                    from,
                    &probe,
                    IcmpError::TimeExceeded,
                    None,
                    &[],
                ));
                assert_eq!(r.from, from);
                assert_eq!(r.kind, ReplyKind::TimeExceeded);
                assert_eq!(r.probe.protocol, protocol);
                assert_eq!(r.probe.destination, s.destination);
                assert_eq!(r.probe.flow, 0x8123);
                let seq = if protocol == Protocol::Tcp {
                    (0x8123 << 16) | 7
                } else {
                    7
                };
                assert_eq!(r.probe.seq, Some(seq), "{protocol:?} v6={v6}");
                if !v6 {
                    assert!(icmpv4_checksum_ok(&icmp_error(
                        from,
                        &probe,
                        IcmpError::TimeExceeded,
                        None,
                        &[]
                    )));
                }
            }
        }
    }

    #[test]
    fn unreachable_codes_map_to_the_engine_labels() {
        let cases = [
            (IcmpError::HostUnreachable, 1, 3),
            (IcmpError::NetUnreachable, 0, 0),
            (IcmpError::AdminProhibited, 13, 1),
            (IcmpError::PortUnreachable, 3, 4),
        ];
        for (kind, code4, code6) in cases {
            for v6 in [false, true] {
                let probe = wire_probe(&spec(Protocol::Udp, v6));
                let from: IpAddr = if v6 { ROUTER6 } else { ROUTER4 }.parse().unwrap();
                let r = parse(&icmp_error(from, &probe, kind, None, &[]));
                let code = if v6 { code6 } else { code4 };
                assert_eq!(r.kind, ReplyKind::Unreachable { code, v6 }, "{kind:?}");
            }
        }
        let probe = wire_probe(&spec(Protocol::Gre, true));
        let r = parse(&icmp_error(
            ROUTER6.parse().unwrap(),
            &probe,
            IcmpError::ProtocolUnreachable,
            None,
            &[],
        ));
        assert_eq!(r.kind, ReplyKind::ParamProblem { code: 1, v6: true });
    }

    #[test]
    fn mpls_extension_is_found_by_the_engine_parser() {
        let stack = [
            MplsEntry {
                label: 16,
                tc: 0,
                bottom_of_stack: false,
                ttl: 1,
            },
            MplsEntry {
                label: 24001,
                tc: 5,
                bottom_of_stack: true,
                ttl: 1,
            },
        ];
        for v6 in [false, true] {
            let probe = wire_probe(&spec(Protocol::Icmp, v6));
            let from: IpAddr = if v6 { ROUTER6 } else { ROUTER4 }.parse().unwrap();
            let r = parse(&icmp_error(
                from,
                &probe,
                IcmpError::TimeExceeded,
                None,
                &stack,
            ));
            assert_eq!(r.mpls, stack, "v6={v6}");
            assert_eq!(r.probe.seq, Some(7));
        }
    }

    #[test]
    fn quote_limit_truncates() {
        let probe = wire_probe(&spec(Protocol::Udp, false));
        let reply = icmp_error(
            ROUTER4.parse().unwrap(),
            &probe,
            IcmpError::TimeExceeded,
            Some(24),
            &[],
        );
        assert_eq!(reply.len(), 20 + 8 + 24);
        // 4 bytes of UDP: ports only; the sequence comes back through the IP identification.
        let r = parse_reply_v4(&reply).unwrap_err();
        assert!(r.to_string().contains("truncated"), "{r}");
        let reply = icmp_error(
            ROUTER4.parse().unwrap(),
            &probe,
            IcmpError::TimeExceeded,
            Some(28),
            &[],
        );
        let r = parse_reply_v4(&reply).unwrap();
        assert_eq!((r.probe.seq, r.probe.ip_id), (Some(7), Some(7)));
    }

    #[test]
    fn echo_and_tcp_answers() {
        for v6 in [false, true] {
            let s = spec(Protocol::Icmp, v6);
            let r = parse(&echo_reply(&wire_probe(&s)).unwrap());
            assert_eq!(
                (r.kind, r.from, r.probe.flow, r.probe.seq),
                (ReplyKind::EchoReply, s.destination, 0x8123, Some(7))
            );
            let s = spec(Protocol::Tcp, v6);
            for open in [true, false] {
                let r = parse(&tcp_answer(&wire_probe(&s), open).unwrap());
                let kind = if open {
                    ReplyKind::TcpSynAck
                } else {
                    ReplyKind::TcpRst
                };
                assert_eq!((r.kind, r.probe.flow, r.probe.port), (kind, 0x8123, 33434));
                assert_eq!(r.probe.seq, Some((0x8123 << 16) | 7));
            }
        }
        assert!(echo_reply(&wire_probe(&spec(Protocol::Udp, false))).is_none());
        assert!(tcp_answer(&wire_probe(&spec(Protocol::Udp, false)), true).is_none());
    }

    #[test]
    fn mixed_families_build_nothing() {
        let v6: IpAddr = Ipv6Addr::LOCALHOST.into();
        assert!(ip_packet("198.18.0.1".parse().unwrap(), v6, 1, &[]).is_empty());
    }
}
