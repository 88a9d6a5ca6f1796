//! Builders of replies, as routers and targets send them, for tests of the parser, the engine
//! and the simulator. They build what a correct peer sends; tests corrupt bytes themselves.

use crate::ProbeSpec;
use etherparse::{IcmpEchoHeader, Icmpv4Header, Icmpv4Type, IpNumber, Ipv4Header, TcpHeader};
use std::net::{IpAddr, Ipv4Addr};

fn ipv4(from: Ipv4Addr, to: [u8; 4], protocol: u8, payload: &[u8]) -> Vec<u8> {
    let mut ip = Ipv4Header::new(
        payload.len() as u16,
        64,
        IpNumber(protocol),
        from.octets(),
        to,
    )
    .expect("test packets are small");
    ip.header_checksum = ip.calc_header_checksum();
    let mut out = ip.to_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

/// The source address of an IPv4 probe (bytes 12..16 of its header).
fn probe_source(probe: &[u8]) -> [u8; 4] {
    [probe[12], probe[13], probe[14], probe[15]]
}

/// Bytes from a hex block (whitespace ignored), for expected packets written as hex in tests.
/// Panics on malformed hex: it is test input, written by hand.
pub fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digits"))
        .collect()
}

/// An ICMPv4 message with type, code, the 4 "rest of header" bytes and a body.
pub fn icmpv4(
    from: Ipv4Addr,
    to: [u8; 4],
    ty: u8,
    code: u8,
    rest: [u8; 4],
    body: &[u8],
) -> Vec<u8> {
    let mut icmp = vec![ty, code, 0, 0];
    icmp.extend_from_slice(&rest);
    icmp.extend_from_slice(body);
    let sum = Icmpv4Header::with_checksum(
        Icmpv4Type::Unknown {
            type_u8: ty,
            code_u8: code,
            bytes5to8: rest,
        },
        body,
    )
    .checksum;
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    ipv4(from, to, 1, &icmp)
}

/// ICMP time exceeded from `router`, quoting the whole IPv4 `probe` (as Linux does).
pub fn time_exceeded_v4(router: Ipv4Addr, probe: &[u8]) -> Vec<u8> {
    icmpv4(router, probe_source(probe), 11, 0, [0; 4], probe)
}

/// ICMP destination unreachable with `code` from `from`, quoting the IPv4 `probe`.
pub fn unreachable_v4(from: Ipv4Addr, code: u8, probe: &[u8]) -> Vec<u8> {
    icmpv4(from, probe_source(probe), 3, code, [0; 4], probe)
}

/// Time exceeded whose quote is padded to 128 bytes and followed by an RFC 4884 extension.
pub fn time_exceeded_v4_with_extension(
    router: Ipv4Addr,
    probe: &[u8],
    extension: &[u8],
) -> Vec<u8> {
    let mut body = probe.to_vec();
    body.resize(128, 0);
    body.extend_from_slice(extension);
    icmpv4(router, probe_source(probe), 11, 0, [0, 32, 0, 0], &body)
}

/// An echo reply from `from` to `to`.
pub fn echo_reply_v4(from: Ipv4Addr, to: Ipv4Addr, id: u16, seq: u16) -> Vec<u8> {
    let h = Icmpv4Header::with_checksum(
        Icmpv4Type::EchoReply(IcmpEchoHeader { id, seq }),
        b"edgetrce\0\0",
    );
    let mut icmp = h.to_bytes().to_vec();
    icmp.extend_from_slice(b"edgetrce\0\0");
    ipv4(from, to.octets(), 1, &icmp)
}

/// A TCP SYN-ACK (`syn`) or RST+ACK from the target's `port` to our `flow` port.
pub fn tcp_reply_v4(
    from: Ipv4Addr,
    to: Ipv4Addr,
    port: u16,
    flow: u16,
    ack: u32,
    syn: bool,
) -> Vec<u8> {
    let mut tcp = TcpHeader::new(port, flow, 1000, if syn { 64240 } else { 0 });
    tcp.ack = true;
    tcp.acknowledgment_number = ack;
    tcp.syn = syn;
    tcp.rst = !syn;
    tcp.checksum = tcp
        .calc_checksum_ipv4_raw(from.octets(), to.octets(), &[])
        .expect("small");
    ipv4(from, to.octets(), 6, &tcp.to_bytes())
}

/// An ICMPv6 error (type, code) as a raw IPv6 socket delivers it (no IPv6 header), quoting
/// the probe with a rebuilt IPv6 header. Checksum left zero: the kernel verifies it before
/// delivery, the parser does not.
pub fn icmpv6_error(ty: u8, code: u8, spec: &ProbeSpec, probe_l4: &[u8], rest: &[u8]) -> Vec<u8> {
    let (IpAddr::V6(src), IpAddr::V6(dst)) = (spec.source, spec.destination) else {
        panic!("icmpv6_error needs an IPv6 probe spec");
    };
    let mut out = vec![ty, code, 0, 0, 0, 0, 0, 0];
    if rest.len() >= 4 {
        out[4..8].copy_from_slice(&rest[..4]);
    }
    let next = spec.protocol.ip_number(true);
    // IPv6 header: version 6, payload length, next header, hop limit 1.
    out.extend_from_slice(&[0x60, 0, 0, 0]);
    out.extend_from_slice(&(probe_l4.len() as u16).to_be_bytes());
    out.extend_from_slice(&[next, 1]);
    out.extend_from_slice(&src.octets());
    out.extend_from_slice(&dst.octets());
    out.extend_from_slice(probe_l4);
    out
}
