//! Opening the raw sockets, and the little unsafe glue socket2 leaves to us.

use crate::NetError;
use edgetrace_wire::Protocol;
use socket2::{Domain, SockAddr, SockFilter, Socket, Type};
use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

const IPPROTO_GRE: i32 = 47;
const RECV_BUFFER: usize = 4 << 20;

/// The sockets every trace of this process shares. IPv4 probes go through one `IP_HDRINCL`
/// socket (we write the IP header, so TTL and identification are ours); IPv6 probes go through
/// one raw socket per protocol, the hop limit set per send. Replies arrive on the ICMP sockets
/// and, for TCP, on raw TCP sockets filtered down to SYN-ACK and RST segments.
#[derive(Debug)]
pub struct Sockets {
    pub(crate) v4_send: Socket,
    pub(crate) v4_icmp: Socket,
    pub(crate) v4_tcp: Socket,
    pub(crate) v6: Option<V6Sockets>,
}

#[derive(Debug)]
pub(crate) struct V6Sockets {
    /// Sends echo requests and receives every ICMPv6 message.
    pub(crate) icmp: Socket,
    pub(crate) udp: Socket,
    /// Sends SYNs and receives SYN-ACK/RST.
    pub(crate) tcp: Socket,
    pub(crate) gre: Socket,
}

impl V6Sockets {
    pub(crate) fn sender(&self, protocol: Protocol) -> &Socket {
        match protocol {
            Protocol::Icmp => &self.icmp,
            Protocol::Udp => &self.udp,
            Protocol::Tcp => &self.tcp,
            Protocol::Gre => &self.gre,
        }
    }
}

fn raw(domain: Domain, protocol: i32, what: &'static str) -> Result<Socket, NetError> {
    Socket::new(domain, Type::RAW, Some(socket2::Protocol::from(protocol))).map_err(|source| {
        match source.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => NetError::NotPermitted {
                what,
                hint: "raw sockets need CAP_NET_RAW: run as root or grant it with \
                       `setcap cap_net_raw+ep <edgetrace binary>`",
                source,
            },
            _ => NetError::Io {
                context: what,
                source,
            },
        }
    })
}

fn io_err(context: &'static str) -> impl FnOnce(io::Error) -> NetError {
    move |source| NetError::Io { context, source }
}

/// Accepts only TCP segments with RST, or with both SYN and ACK; `ip_header` says whether the
/// data starts with an IPv4 header (IPv4 raw sockets) or with the TCP header (IPv6).
fn tcp_reply_filter(ip_header: bool) -> Vec<SockFilter> {
    const LDX_MSH: u16 = 0xb1; // X = 4 * (P[k] & 0xf)
    const LDB_IND: u16 = 0x50; // A = P[X + k]
    const LDB_ABS: u16 = 0x30; // A = P[k]
    const JSET: u16 = 0x45;
    const AND: u16 = 0x54;
    const JEQ: u16 = 0x15;
    const RET: u16 = 0x06;
    let mut f = if ip_header {
        vec![
            SockFilter::new(LDX_MSH, 0, 0, 0),
            SockFilter::new(LDB_IND, 0, 0, 13),
        ]
    } else {
        vec![SockFilter::new(LDB_ABS, 0, 0, 13)]
    };
    f.extend([
        SockFilter::new(JSET, 2, 0, 0x04), // RST: accept
        SockFilter::new(AND, 0, 0, 0x12),
        SockFilter::new(JEQ, 0, 1, 0x12), // SYN+ACK: accept, else drop
        SockFilter::new(RET, 0, 0, 0xffff),
        SockFilter::new(RET, 0, 0, 0),
    ]);
    f
}

/// For sockets we only send on: drop everything the kernel would queue to them.
fn drop_all_filter() -> [SockFilter; 1] {
    [SockFilter::new(0x06, 0, 0, 0)]
}

/// Where a raw socket that only traces of one protocol use is bound while none of them runs
/// ("parked"): the one that receives TCP replies, and IPv6's UDP, TCP and GRE sockets. A raw
/// socket receives a copy of every packet of its protocol the host receives (the kernel copies
/// each one before the socket's filter drops it), which on a busy host (the proxy's own
/// traffic) is a copy of every TCP packet. One bound to an address receives only what is sent
/// to that address: for IPv4 an unused loopback address, for IPv6 the loopback address (the
/// only one every host has). A trace unparks it by binding it to the unspecified address
/// again. (Binding, unlike connecting, can be undone: disconnecting a raw socket unhooks it
/// for good.)
pub(crate) const PARKED_V4: Ipv4Addr = Ipv4Addr::new(127, 255, 255, 254);
pub(crate) const PARKED_V6: Ipv6Addr = Ipv6Addr::LOCALHOST;

/// Binds a raw socket to its parking address (`park`), or to the unspecified address, so
/// that it receives (and sends from) every address again.
pub(crate) fn park(socket: &Socket, v6: bool, park: bool) -> io::Result<()> {
    let ip: IpAddr = match (v6, park) {
        (false, true) => PARKED_V4.into(),
        (false, false) => Ipv4Addr::UNSPECIFIED.into(),
        (true, true) => PARKED_V6.into(),
        (true, false) => Ipv6Addr::UNSPECIFIED.into(),
    };
    socket.bind(&SockAddr::from(SocketAddr::new(ip, 0)))
}

impl Sockets {
    /// Opens every socket edgetrace probes with. Needs CAP_NET_RAW; call it once, before
    /// [`drop_privileges`]. IPv6 sockets are optional: a kernel without IPv6 still traces IPv4.
    pub fn open() -> Result<Sockets, NetError> {
        let v4_send = raw(Domain::IPV4, libc::IPPROTO_RAW, "raw IPv4 probes")?;
        v4_send
            .set_header_included_v4(true)
            .map_err(io_err("IP_HDRINCL"))?;
        let v4_icmp = raw(Domain::IPV4, libc::IPPROTO_ICMP, "receiving ICMP")?;
        let v4_tcp = raw(Domain::IPV4, libc::IPPROTO_TCP, "receiving TCP replies")?;
        v4_tcp
            .attach_filter(&tcp_reply_filter(true))
            .map_err(io_err("TCP filter"))?;
        for s in [&v4_icmp, &v4_tcp] {
            s.set_nonblocking(true).map_err(io_err("non-blocking"))?;
            // Best effort: a smaller buffer only means drops under extreme load.
            let _ = s.set_recv_buffer_size(RECV_BUFFER);
        }
        let v6 = match raw(Domain::IPV6, libc::IPPROTO_ICMPV6, "ICMPv6") {
            Ok(icmp) => {
                let udp = raw(Domain::IPV6, libc::IPPROTO_UDP, "sending UDP over IPv6")?;
                let tcp = raw(Domain::IPV6, libc::IPPROTO_TCP, "TCP over IPv6")?;
                let gre = raw(Domain::IPV6, IPPROTO_GRE, "sending GRE over IPv6")?;
                udp.attach_filter(&drop_all_filter())
                    .map_err(io_err("UDP filter"))?;
                gre.attach_filter(&drop_all_filter())
                    .map_err(io_err("GRE filter"))?;
                tcp.attach_filter(&tcp_reply_filter(false))
                    .map_err(io_err("TCP filter"))?;
                for s in [&icmp, &udp, &tcp, &gre] {
                    s.set_nonblocking(true).map_err(io_err("non-blocking"))?;
                }
                // The two that receive replies (ICMPv6 errors, TCP's SYN-ACKs and RSTs).
                for s in [&icmp, &tcp] {
                    let _ = s.set_recv_buffer_size(RECV_BUFFER);
                }
                Some(V6Sockets {
                    icmp,
                    udp,
                    tcp,
                    gre,
                })
            }
            Err(e @ NetError::NotPermitted { .. }) => return Err(e),
            Err(_) => None,
        };
        // Best effort (a namespace whose loopback is down has no route to park at): an
        // unparked socket only costs copies.
        let _ = park(&v4_tcp, false, true);
        if let Some(v6) = &v6 {
            for s in [&v6.udp, &v6.tcp, &v6.gre] {
                let _ = park(s, true, true);
            }
        }
        Ok(Sockets {
            v4_send,
            v4_icmp,
            v4_tcp,
            v6,
        })
    }
}

/// Drops every capability of the calling thread (and of the threads it starts afterwards):
/// once the sockets are open, nothing else edgetrace does needs privileges. Call it before
/// starting other threads.
pub fn drop_privileges() -> Result<(), NetError> {
    use caps::CapSet;
    let to_io = |e: caps::errors::CapsError| io::Error::other(e.to_string());
    for set in [
        CapSet::Effective,
        CapSet::Permitted,
        CapSet::Inheritable,
        CapSet::Ambient,
    ] {
        caps::clear(None, set).map_err(|e| NetError::Io {
            context: "dropping capabilities",
            source: to_io(e),
        })?;
    }
    Ok(())
}

/// The source address the kernel would use towards `target`: connecting a UDP socket sends
/// nothing but runs the route lookup.
pub fn source_for(target: IpAddr) -> Result<IpAddr, NetError> {
    let bind: SocketAddr = match target {
        IpAddr::V4(_) => "0.0.0.0:0".parse().expect("literal"),
        IpAddr::V6(_) => "[::]:0".parse().expect("literal"),
    };
    let no_route = |source| NetError::NoRoute { target, source };
    let s = UdpSocket::bind(bind).map_err(no_route)?;
    s.connect((target, 33434)).map_err(no_route)?;
    Ok(s.local_addr().map_err(no_route)?.ip())
}

/// Receives one datagram into `buf`, returning its length and sender.
pub(crate) fn recv_from(socket: &Socket, buf: &mut [u8]) -> io::Result<(usize, SockAddr)> {
    // SAFETY: `MaybeUninit<u8>` has the layout of `u8`; recv_from only writes initialized bytes
    // into the slice, so viewing an initialized `[u8]` as `[MaybeUninit<u8>]` is sound.
    let uninit = unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) };
    socket.recv_from(uninit)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every socket that receives replies gets the larger buffer: a burst of replies to many
    /// traces at once is not dropped by one left at the default (IPv6's TCP one was).
    #[test]
    fn every_socket_receiving_replies_has_the_larger_buffer() {
        let s = Sockets::open().expect("raw sockets (tests run as root)");
        let size = |s: &Socket| s.recv_buffer_size().expect("SO_RCVBUF");
        let larger = size(&s.v4_icmp);
        let mut receiving = vec![("v4 tcp", &s.v4_tcp)];
        if let Some(v6) = &s.v6 {
            receiving.extend([("v6 icmp", &v6.icmp), ("v6 tcp", &v6.tcp)]);
        }
        // The default is what a new socket gets: the larger one is more (the kernel caps it
        // at net.core.rmem_max, above the default).
        let default = size(&Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap());
        assert!(larger > default, "{larger} > {default}");
        for (name, socket) in receiving {
            assert_eq!(size(socket), larger, "{name}");
        }
    }

    #[test]
    fn source_of_loopback_is_loopback() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(source_for(lo).unwrap(), lo);
    }

    /// Runs a classic BPF program over a packet, for the few opcodes our filters use.
    fn run(filter: &[SockFilter], packet: &[u8]) -> u32 {
        let prog: Vec<libc::sock_filter> = filter
            .iter()
            // SAFETY: socket2 declares SockFilter `#[repr(transparent)]` over `sock_filter`.
            .map(|f| unsafe { std::mem::transmute_copy::<SockFilter, libc::sock_filter>(f) })
            .collect();
        let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
        loop {
            let i = prog[pc];
            pc += 1;
            match i.code {
                0xb1 => x = 4 * u32::from(packet[i.k as usize] & 0xf),
                0x50 => a = u32::from(packet[(x + i.k) as usize]),
                0x30 => a = u32::from(packet[i.k as usize]),
                0x54 => a &= i.k,
                0x45 => pc += usize::from(if a & i.k != 0 { i.jt } else { i.jf }),
                0x15 => pc += usize::from(if a == i.k { i.jt } else { i.jf }),
                0x06 => return i.k,
                other => panic!("opcode {other:#x} not in our filters"),
            }
        }
    }

    #[test]
    fn tcp_filter_admits_only_syn_ack_and_rst() {
        // Flags, byte 13 of the TCP header: SYN 0x02, ACK 0x10, RST 0x04.
        let cases = [
            (0x12, true),
            (0x14, true),
            (0x04, true),
            (0x02, false),
            (0x10, false),
            (0x18, false),
        ];
        for (flags, admitted) in cases {
            let mut tcp = [0u8; 20];
            tcp[12] = 0x50;
            tcp[13] = flags;
            let mut v4 = vec![0x45u8];
            v4.resize(20, 0);
            v4.extend_from_slice(&tcp);
            assert_eq!(
                run(&tcp_reply_filter(true), &v4) != 0,
                admitted,
                "IPv4 flags {flags:#x}"
            );
            assert_eq!(
                run(&tcp_reply_filter(false), &tcp) != 0,
                admitted,
                "IPv6 flags {flags:#x}"
            );
        }
        assert_eq!(run(&drop_all_filter(), &[0u8; 40]), 0);
    }
}
