//! Parsing what comes back: ICMP errors quoting a probe, echo replies, and TCP SYN-ACK/RST.
//!
//! Replies are matched to probes by what they quote, never by arrival order. The parser only
//! recovers the identity fields; deciding whether a probe with that identity was really sent is
//! the engine's job. Anything that is not an answer to a probe is `WireError::Unrelated`.
//!
//! Checksums: a reply damaged in transit still names a probe, just not the one it answers, so
//! the ICMPv4 checksum of every answer and the TCP checksum of IPv4 SYN-ACKs and RSTs (whose
//! pseudo-header the IPv4 header gives) are verified, and a mismatch is `Malformed`. ICMPv6
//! checksums are verified by the kernel before a raw socket sees the message; IPv6 TCP replies
//! arrive without the IPv6 header, so without the pseudo-header, and are not checked.

use crate::{MplsEntry, Protocol, WireError, checksum, extensions, gre::GreRepr};
use etherparse::{Icmpv4Slice, Icmpv6Slice, Ipv4HeaderSlice, Ipv6HeaderSlice, TcpHeaderSlice};
use std::net::{IpAddr, Ipv6Addr};

/// What kind of answer a reply is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplyKind {
    /// ICMP time exceeded in transit: a router on the path.
    TimeExceeded,
    /// ICMP destination unreachable with its code (ICMPv4 or ICMPv6 code space, see `v6`).
    Unreachable {
        code: u8,
        v6: bool,
    },
    /// ICMP parameter problem; ICMPv6 code 1 (unrecognized next header) is how IPv6 hosts say
    /// "protocol unreachable".
    ParamProblem {
        code: u8,
        v6: bool,
    },
    EchoReply,
    /// The target accepted the TCP connection: the port is open.
    TcpSynAck,
    /// The target refused the TCP connection: the port is closed.
    TcpRst,
}

/// The identity of the probe a reply answers, as quoted (or echoed) back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProbeId {
    pub protocol: Protocol,
    /// The probe's destination address.
    pub destination: IpAddr,
    /// ICMP identifier, UDP/TCP source port, or GRE key.
    pub flow: u32,
    /// UDP/TCP destination port; 0 for ICMP and GRE.
    pub port: u16,
    /// ICMP sequence, UDP checksum, TCP sequence number, or GRE sequence number, when quoted.
    pub seq: Option<u32>,
    /// The IPv4 identification of the quoted probe.
    pub ip_id: Option<u16>,
}

/// A reply to one of our probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub from: IpAddr,
    pub kind: ReplyKind,
    pub probe: ProbeId,
    /// MPLS label stack quoted in RFC 4950 extensions.
    pub mpls: Vec<MplsEntry>,
}

fn truncated(what: &'static str, needed: usize, got: usize) -> WireError {
    WireError::Truncated { what, needed, got }
}

/// Parses a packet read from a raw IPv4 socket (IPv4 header included), ICMP or TCP.
pub fn parse_reply_v4(packet: &[u8]) -> Result<Reply, WireError> {
    let ip = Ipv4HeaderSlice::from_slice(packet).map_err(|e| WireError::Malformed {
        what: "IPv4 header",
        detail: e.to_string(),
    })?;
    let total = usize::from(ip.total_len()).clamp(ip.slice().len(), packet.len());
    let payload = &packet[ip.slice().len()..total];
    let from = IpAddr::V4(ip.source_addr());
    match ip.protocol().0 {
        1 => parse_icmpv4(from, payload),
        6 => {
            let reply = parse_tcp(from, payload)?;
            let pseudo =
                checksum::pseudo_header_v4(ip.source(), ip.destination(), 6, payload.len());
            verify_tcp(pseudo, payload)?;
            Ok(reply)
        }
        _ => Err(WireError::Unrelated("neither ICMP nor TCP")),
    }
}

/// Parses a packet read from a raw IPv6 socket: the transport part only (Linux strips the IPv6
/// header), the sender's address taken from `recvfrom`. `next_header` is the socket's protocol:
/// 58 (ICMPv6) or 6 (TCP).
pub fn parse_reply_v6(from: Ipv6Addr, next_header: u8, data: &[u8]) -> Result<Reply, WireError> {
    match next_header {
        58 => parse_icmpv6(IpAddr::V6(from), data),
        6 => parse_tcp(IpAddr::V6(from), data),
        _ => Err(WireError::Unrelated("neither ICMPv6 nor TCP")),
    }
}

/// An echo reply answers the probe whose identifier and sequence it echoes; it comes from the
/// probe's destination.
fn echo_reply(from: IpAddr, rest: [u8; 4]) -> Reply {
    let probe = ProbeId {
        protocol: Protocol::Icmp,
        destination: from,
        flow: u32::from(u16::from_be_bytes([rest[0], rest[1]])),
        port: 0,
        seq: Some(u32::from(u16::from_be_bytes([rest[2], rest[3]]))),
        ip_id: None,
    };
    Reply {
        from,
        kind: ReplyKind::EchoReply,
        probe,
        mpls: Vec::new(),
    }
}

fn parse_icmpv4(from: IpAddr, data: &[u8]) -> Result<Reply, WireError> {
    let icmp = Icmpv4Slice::from_slice(data).map_err(|e| WireError::Malformed {
        what: "ICMP header",
        detail: e.to_string(),
    })?;
    let rest = icmp.bytes5to8();
    let kind = match (icmp.type_u8(), icmp.code_u8()) {
        (0, _) => ReplyKind::EchoReply,
        (11, _) => ReplyKind::TimeExceeded,
        (3, code) => ReplyKind::Unreachable { code, v6: false },
        (12, code) => ReplyKind::ParamProblem { code, v6: false },
        _ => {
            return Err(WireError::Unrelated(
                "ICMP type that does not answer probes",
            ));
        }
    };
    // Only answers are checked: most ICMP a raw socket sees is someone else's, and dropped.
    if !checksum::verifies(0, data) {
        return Err(WireError::Malformed {
            what: "ICMP message",
            detail: format!(
                "checksum {:#06x} does not match its contents, which need {:#06x}",
                icmp.checksum(),
                checksum::expected(0, data, 2)
            ),
        });
    }
    if kind == ReplyKind::EchoReply {
        return Ok(echo_reply(from, rest));
    }
    // The 8-byte ICMP header, then the quoted datagram (then, maybe, extensions).
    let after = &data[8..];
    let probe = parse_quoted_v4(after)?;
    let mpls = extensions::mpls_labels(after, rest[1], 4);
    Ok(Reply {
        from,
        kind,
        probe,
        mpls,
    })
}

fn parse_icmpv6(from: IpAddr, data: &[u8]) -> Result<Reply, WireError> {
    let icmp = Icmpv6Slice::from_slice(data).map_err(|e| WireError::Malformed {
        what: "ICMPv6 header",
        detail: e.to_string(),
    })?;
    let rest = icmp.bytes5to8();
    let kind = match (icmp.type_u8(), icmp.code_u8()) {
        (129, _) => return Ok(echo_reply(from, rest)),
        (3, _) => ReplyKind::TimeExceeded,
        (1, code) => ReplyKind::Unreachable { code, v6: true },
        (4, code) => ReplyKind::ParamProblem { code, v6: true },
        _ => {
            return Err(WireError::Unrelated(
                "ICMPv6 type that does not answer probes",
            ));
        }
    };
    let after = &data[8..];
    let probe = parse_quoted_v6(after)?;
    let mpls = extensions::mpls_labels(after, rest[0], 8);
    Ok(Reply {
        from,
        kind,
        probe,
        mpls,
    })
}

fn parse_quoted_v4(quoted: &[u8]) -> Result<ProbeId, WireError> {
    let ip = Ipv4HeaderSlice::from_slice(quoted).map_err(|e| WireError::Malformed {
        what: "quoted IPv4 header",
        detail: e.to_string(),
    })?;
    let l4 = &quoted[ip.slice().len()..];
    let mut id = parse_quoted_transport(ip.protocol().0, IpAddr::V4(ip.destination_addr()), l4)?;
    id.ip_id = Some(ip.identification());
    Ok(id)
}

fn parse_quoted_v6(quoted: &[u8]) -> Result<ProbeId, WireError> {
    let ip = Ipv6HeaderSlice::from_slice(quoted).map_err(|e| WireError::Malformed {
        what: "quoted IPv6 header",
        detail: e.to_string(),
    })?;
    // Our probes carry no extension headers, so the next header is the transport.
    let l4 = &quoted[ip.slice().len()..];
    parse_quoted_transport(ip.next_header().0, IpAddr::V6(ip.destination_addr()), l4)
}

fn parse_quoted_transport(
    number: u8,
    destination: IpAddr,
    l4: &[u8],
) -> Result<ProbeId, WireError> {
    let word = |at: usize| u16::from_be_bytes([l4[at], l4[at + 1]]);
    let need = |n: usize, what| {
        if l4.len() < n {
            Err(truncated(what, n, l4.len()))
        } else {
            Ok(())
        }
    };
    let mut id = ProbeId {
        protocol: Protocol::Icmp,
        destination,
        flow: 0,
        port: 0,
        seq: None,
        ip_id: None,
    };
    match number {
        1 | 58 => {
            need(8, "quoted ICMP echo")?;
            let echo_request = if number == 1 { 8 } else { 128 };
            if l4[0] != echo_request {
                return Err(WireError::Unrelated("quoted ICMP is not an echo request"));
            }
            id.flow = u32::from(word(4));
            id.seq = Some(u32::from(word(6)));
        }
        17 => {
            need(8, "quoted UDP header")?;
            id.protocol = Protocol::Udp;
            id.flow = u32::from(word(0));
            id.port = word(2);
            id.seq = Some(u32::from(word(6)));
        }
        6 => {
            need(8, "quoted TCP header")?;
            id.protocol = Protocol::Tcp;
            id.flow = u32::from(word(0));
            id.port = word(2);
            id.seq = Some(u32::from_be_bytes([l4[4], l4[5], l4[6], l4[7]]));
        }
        47 => {
            let gre = GreRepr::parse_lax(l4)?;
            id.protocol = Protocol::Gre;
            id.flow = gre
                .key
                .ok_or(WireError::Unrelated("quoted GRE without a key"))?;
            id.seq = gre.sequence;
        }
        _ => {
            return Err(WireError::Unrelated(
                "quoted packet is of no probe protocol",
            ));
        }
    }
    Ok(id)
}

/// Checks a TCP segment's checksum given its pseudo-header's sum. A segment the local kernel
/// sent (over loopback or a veth, where checksums are left to an offload that never happens)
/// carries only the folded pseudo-header sum, as raw sockets see it: that is accepted too, a
/// damaged segment having one chance in 65,536 of carrying exactly that value.
fn verify_tcp(pseudo: u32, segment: &[u8]) -> Result<(), WireError> {
    if checksum::verifies(pseudo, segment) {
        return Ok(());
    }
    let stored = u16::from_be_bytes([segment[16], segment[17]]);
    if stored == checksum::fold(pseudo) {
        return Ok(());
    }
    Err(WireError::Malformed {
        what: "TCP segment",
        detail: format!(
            "checksum {stored:#06x} does not match its contents and pseudo-header, which need {:#06x}",
            checksum::expected(pseudo, segment, 16)
        ),
    })
}

fn parse_tcp(from: IpAddr, data: &[u8]) -> Result<Reply, WireError> {
    let tcp = TcpHeaderSlice::from_slice(data).map_err(|e| WireError::Malformed {
        what: "TCP header",
        detail: e.to_string(),
    })?;
    if !tcp.ack() {
        return Err(WireError::Unrelated("TCP segment without ACK"));
    }
    let kind = if tcp.rst() {
        ReplyKind::TcpRst
    } else if tcp.syn() {
        ReplyKind::TcpSynAck
    } else {
        return Err(WireError::Unrelated(
            "TCP segment is neither SYN-ACK nor RST",
        ));
    };
    let probe = ProbeId {
        protocol: Protocol::Tcp,
        destination: from,
        flow: u32::from(tcp.destination_port()),
        port: tcp.source_port(),
        seq: Some(tcp.acknowledgment_number().wrapping_sub(1)),
        ip_id: None,
    };
    Ok(Reply {
        from,
        kind,
        probe,
        mpls: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;
    use crate::testing::hex;
    use crate::{ProbeSpec, emit_probe, extensions::emit_mpls_extension};
    use std::net::Ipv4Addr;

    const ROUTER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 5);

    /// The bytes of the second probe (TTL 2) of flow 40000 from 198.18.0.2 to 198.18.0.9.
    fn probe_to_198_18_0_9(protocol: Protocol, port: u16) -> Vec<u8> {
        let spec = ProbeSpec {
            protocol,
            source: "198.18.0.2".parse().unwrap(),
            destination: "198.18.0.9".parse().unwrap(),
            ttl: 2,
            flow: 40000,
            port,
            seq: 2,
        };
        let mut probe = Vec::new();
        emit_probe(&spec, &mut probe).unwrap();
        probe
    }

    #[test]
    fn time_exceeded_quoting_udp_hex() {
        // Captured shape of a Linux router's answer to a UDP probe: 20-byte IP header, ICMP 11/0,
        // then the whole quoted probe.
        let packet = hex("45c0 0042 1111 0000 4001 0000 c612 0005 c612 0002
             0b00 afbb 0000 0000
             4500 0026 0003 0000 0111 ff2c c612 0002 c612 0009
             9c41 829a 0012 0003 6564 6765 7472 6365 b019");
        let r = parse_reply_v4(&packet).unwrap();
        assert_eq!(r.from, IpAddr::V4(ROUTER));
        assert_eq!(r.kind, ReplyKind::TimeExceeded);
        assert_eq!(
            r.probe,
            ProbeId {
                protocol: Protocol::Udp,
                destination: Ipv4Addr::new(198, 18, 0, 9).into(),
                flow: 0x9c41,
                port: 33434,
                seq: Some(3),
                ip_id: Some(3),
            }
        );
        assert!(r.mpls.is_empty());
    }

    #[test]
    fn eight_byte_quote_of_gre_keeps_key_and_ip_id() {
        let packet = hex("4500 0038 0000 0000 4001 0000 c612 0005 c612 0002
             0b00 cf11 0000 0000
             4500 0030 0007 0000 012f ff09 c612 0002 c612 0009
             3000 880b 0000 9c41");
        let r = parse_reply_v4(&packet).unwrap();
        assert_eq!(r.probe.protocol, Protocol::Gre);
        assert_eq!(r.probe.flow, 0x9c41);
        assert_eq!(r.probe.seq, None);
        assert_eq!(r.probe.ip_id, Some(7));
    }

    #[test]
    fn every_protocol_roundtrips_through_time_exceeded_and_unreachable() {
        for protocol in [Protocol::Icmp, Protocol::Udp, Protocol::Tcp, Protocol::Gre] {
            for v6 in [false, true] {
                let (source, destination): (IpAddr, IpAddr) = if v6 {
                    (
                        "2001:2::2".parse().unwrap(),
                        "2001:2:0:9::2".parse().unwrap(),
                    )
                } else {
                    ("198.18.0.2".parse().unwrap(), "198.18.0.9".parse().unwrap())
                };
                let spec = ProbeSpec {
                    protocol,
                    source,
                    destination,
                    ttl: 4,
                    flow: 0x8123,
                    port: 443,
                    seq: 17,
                };
                let mut probe = Vec::new();
                emit_probe(&spec, &mut probe).unwrap();
                let router: IpAddr = if v6 {
                    "2001:2::5".parse().unwrap()
                } else {
                    ROUTER.into()
                };
                let r = if v6 {
                    let IpAddr::V6(r6) = router else {
                        unreachable!()
                    };
                    let icmp = testing::icmpv6_error(3, 0, &spec, &probe, &[]);
                    parse_reply_v6(r6, 58, &icmp).unwrap()
                } else {
                    let IpAddr::V4(r4) = router else {
                        unreachable!()
                    };
                    parse_reply_v4(&testing::time_exceeded_v4(r4, &probe)).unwrap()
                };
                assert_eq!(r.from, router, "{protocol:?} v6={v6}");
                assert_eq!(r.probe.protocol, protocol);
                assert_eq!(r.probe.destination, destination);
                assert_eq!(r.probe.flow, 0x8123);
                let want_seq = match protocol {
                    Protocol::Tcp => crate::probe::tcp_sequence(0x8123, 17),
                    _ => 17,
                };
                assert_eq!(r.probe.seq, Some(want_seq), "{protocol:?} v6={v6}");
            }
        }
    }

    #[test]
    fn echo_reply_and_tcp_answers() {
        let to = Ipv4Addr::new(198, 18, 0, 2);
        let target = Ipv4Addr::new(198, 18, 0, 9);
        let r = parse_reply_v4(&testing::echo_reply_v4(target, to, 0x8123, 5)).unwrap();
        assert_eq!(r.kind, ReplyKind::EchoReply);
        assert_eq!((r.probe.flow, r.probe.seq), (0x8123, Some(5)));

        let seq = crate::probe::tcp_sequence(0x8123, 9);
        let synack = testing::tcp_reply_v4(target, to, 80, 0x8123, seq.wrapping_add(1), true);
        let r = parse_reply_v4(&synack).unwrap();
        assert_eq!(r.kind, ReplyKind::TcpSynAck);
        assert_eq!(
            (r.probe.flow, r.probe.port, r.probe.seq),
            (0x8123, 80, Some(seq))
        );
        let rst = testing::tcp_reply_v4(target, to, 80, 0x8123, seq.wrapping_add(1), false);
        assert_eq!(parse_reply_v4(&rst).unwrap().kind, ReplyKind::TcpRst);
    }

    #[test]
    fn mpls_labels_are_read_from_time_exceeded() {
        let probe = probe_to_198_18_0_9(Protocol::Udp, 33434);
        let stack = [MplsEntry {
            label: 24001,
            tc: 0,
            bottom_of_stack: true,
            ttl: 1,
        }];
        let packet =
            testing::time_exceeded_v4_with_extension(ROUTER, &probe, &emit_mpls_extension(&stack));
        let r = parse_reply_v4(&packet).unwrap();
        assert_eq!(r.mpls, stack);
        assert_eq!(r.probe.seq, Some(2));
    }

    /// Regression (netsim `hostile_corrupt`): a router's time exceeded whose quoted sequence and
    /// IP ID lost a bit in transit named another probe of the trace, which took the reply.
    #[test]
    fn damaged_icmpv4_is_malformed_not_another_probe() {
        let probe = probe_to_198_18_0_9(Protocol::Udp, 33434);
        let good = testing::time_exceeded_v4(ROUTER, &probe);
        assert!(parse_reply_v4(&good).is_ok());
        // Every single bit flipped in the ICMP message is caught: the quote, the header, the
        // checksum itself.
        for bit in 20 * 8..good.len() * 8 {
            let mut bad = good.clone();
            bad[bit / 8] ^= 0x80 >> (bit % 8);
            let e = parse_reply_v4(&bad).unwrap_err();
            assert!(
                matches!(e, WireError::Malformed { .. } | WireError::Unrelated(_)),
                "bit {bit}: {e}"
            );
        }
        // The quoted IP ID and UDP checksum (the sequence) flipped, checksum stale, as netsim's
        // hostile routers do it.
        let mut bad = good.clone();
        bad[20 + 8 + 5] ^= 1;
        bad[20 + 8 + 20 + 7] ^= 1;
        assert_eq!(
            parse_reply_v4(&bad).unwrap_err().to_string(),
            "malformed ICMP message: checksum 0x8153 does not match its contents, which need 0x8151"
        );
        // An echo reply is checked too.
        let mut echo = testing::echo_reply_v4(ROUTER, Ipv4Addr::new(198, 18, 0, 2), 0x8123, 5);
        echo[20 + 7] ^= 4;
        assert!(matches!(
            parse_reply_v4(&echo).unwrap_err(),
            WireError::Malformed { .. }
        ));
    }

    #[test]
    fn tcp_replies_are_checked_against_their_pseudo_header() {
        let (target, us) = (Ipv4Addr::new(198, 18, 0, 9), Ipv4Addr::new(198, 18, 0, 2));
        let seq = crate::probe::tcp_sequence(0x8123, 9);
        let synack = testing::tcp_reply_v4(target, us, 80, 0x8123, seq.wrapping_add(1), true);
        assert!(parse_reply_v4(&synack).is_ok());
        // A damaged acknowledgment number would name another probe.
        let mut bad = synack.clone();
        bad[20 + 11] ^= 2;
        assert!(matches!(
            parse_reply_v4(&bad).unwrap_err(),
            WireError::Malformed {
                what: "TCP segment",
                ..
            }
        ));
        // The address in the pseudo-header counts: the same segment from elsewhere fails.
        let mut moved = synack.clone();
        moved[15] ^= 1;
        moved[10..12].copy_from_slice(&[0, 0]);
        assert!(parse_reply_v4(&moved).is_err());
        // A SYN-ACK of the local kernel, as a raw socket sees it over loopback or a veth
        // (captured with Linux 6.x): the field holds only the folded pseudo-header sum, left
        // for an offload. Accepted.
        let mut partial = synack.clone();
        let pseudo = checksum::pseudo_header_v4(target.octets(), us.octets(), 6, 20);
        partial[20 + 16..20 + 18].copy_from_slice(&checksum::fold(pseudo).to_be_bytes());
        assert_eq!(parse_reply_v4(&partial).unwrap().kind, ReplyKind::TcpSynAck);
        // Unrelated segments are not checked, just dropped as unrelated.
        let mut syn = synack.clone();
        syn[20 + 13] = 0x02;
        assert!(parse_reply_v4(&syn).unwrap_err().is_unrelated());
    }

    #[test]
    fn unrelated_and_malformed_are_errors_not_panics() {
        assert!(parse_reply_v4(&[]).is_err());
        assert!(parse_reply_v4(&[0x45; 19]).is_err());
        // Echo request (someone pinging us) is unrelated.
        let ping = hex("4500 001c 0000 0000 4001 0000 c612 0009 c612 0002 0800 f7ff 0000 0000");
        assert!(parse_reply_v4(&ping).unwrap_err().is_unrelated());
        // Time exceeded quoting nothing.
        let short = hex("4500 001c 0000 0000 4001 0000 c612 0005 c612 0002 0b00 f4ff 0000 0000");
        assert!(parse_reply_v4(&short).is_err());
        // Every truncation of a valid reply.
        let probe = probe_to_198_18_0_9(Protocol::Tcp, 80);
        let full = testing::time_exceeded_v4(ROUTER, &probe);
        for n in 0..full.len() {
            let _ = parse_reply_v4(&full[..n]);
        }
        for n in 0..60 {
            let _ = parse_reply_v6(
                Ipv6Addr::LOCALHOST,
                58,
                &full[20..20 + n.min(full.len() - 20)],
            );
        }
    }
}
