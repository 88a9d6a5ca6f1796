//! Tracing without CAP_NET_RAW: ICMP through ping sockets (where `net.ipv4.ping_group_range`
//! admits our group) and UDP through an ordinary socket; with `IP_RECVERR` the kernel hands the
//! ICMP errors our probes draw to the socket's error queue, with the router's address.
//!
//! Each trace gets its own socket: the kernel picks the ICMP identifier (or UDP source port),
//! which becomes the trace's flow. ICMP probes carry their sequence in the echo header; UDP
//! probes carry it in the payload (the kernel computes the checksum here), which the error
//! quotes back. MPLS extensions are not passed on by the kernel in this mode.

use crate::NetError;
use edgetrace_wire::{ProbeId, Protocol, Reply, ReplyKind};
use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, setsockopt, sockopt,
};
use socket2::{Domain, SockAddr, Socket, Type};
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::Instant;

const MAGIC: &[u8; 8] = b"edgetrce";
const SO_EE_ORIGIN_ICMP: u8 = 2;
const SO_EE_ORIGIN_ICMP6: u8 = 3;

#[derive(Debug)]
pub(crate) struct UnprivilegedSocket {
    pub(crate) socket: Socket,
    protocol: Protocol,
    target: IpAddr,
    pub(crate) flow: u32,
    port: u16,
}

fn not_permitted(what: &'static str, source: io::Error) -> NetError {
    NetError::NotPermitted {
        what,
        hint: "run as root, grant CAP_NET_RAW with `setcap cap_net_raw+ep <edgetrace binary>`, \
               or (ICMP only) admit your group in `sysctl net.ipv4.ping_group_range`",
        source,
    }
}

impl UnprivilegedSocket {
    /// Opens the socket of one trace. `port` is the UDP destination port.
    pub(crate) fn open(protocol: Protocol, target: IpAddr, port: u16) -> Result<Self, NetError> {
        let v6 = target.is_ipv6();
        let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
        let io = |context| move |source| NetError::Io { context, source };
        let socket = match protocol {
            Protocol::Icmp => {
                let number = if v6 {
                    libc::IPPROTO_ICMPV6
                } else {
                    libc::IPPROTO_ICMP
                };
                Socket::new(domain, Type::DGRAM, Some(socket2::Protocol::from(number))).map_err(
                    |e| match e.raw_os_error() {
                        Some(libc::EACCES) | Some(libc::EPERM) => not_permitted("ICMP probes", e),
                        _ => NetError::Io {
                            context: "opening a ping socket",
                            source: e,
                        },
                    },
                )?
            }
            Protocol::Udp => Socket::new(domain, Type::DGRAM, Some(socket2::Protocol::UDP))
                .map_err(io("opening a UDP socket"))?,
            Protocol::Tcp => {
                return Err(not_permitted(
                    "TCP probes",
                    io::Error::other("raw sockets are the only way to send SYNs"),
                ));
            }
            Protocol::Gre => {
                return Err(not_permitted(
                    "GRE probes",
                    io::Error::other("raw sockets are the only way to send GRE"),
                ));
            }
        };
        let any: SocketAddr = if v6 {
            "[::]:0".parse().expect("literal")
        } else {
            "0.0.0.0:0".parse().expect("literal")
        };
        socket
            .bind(&any.into())
            .map_err(io("binding the probe socket"))?;
        if protocol == Protocol::Udp {
            socket
                .connect(&SocketAddr::new(target, port).into())
                .map_err(|source| NetError::NoRoute { target, source })?;
        }
        if v6 {
            setsockopt(&socket, sockopt::Ipv6RecvErr, &true).map_err(|e| NetError::Io {
                context: "IPV6_RECVERR",
                source: e.into(),
            })?;
        } else {
            setsockopt(&socket, sockopt::Ipv4RecvErr, &true).map_err(|e| NetError::Io {
                context: "IP_RECVERR",
                source: e.into(),
            })?;
        }
        socket.set_nonblocking(true).map_err(io("non-blocking"))?;
        let local = socket.local_addr().map_err(io("local address"))?;
        let flow = u32::from(local.as_socket().map_or(0, |a| a.port()));
        Ok(UnprivilegedSocket {
            socket,
            protocol,
            target,
            flow,
            port,
        })
    }

    /// Sends one probe. `probe` is what the engine built (an IPv4 probe with its header);
    /// only the part this kind of socket takes is sent.
    pub(crate) fn send(&self, ttl: u8, seq: u16, probe: &[u8]) -> io::Result<()> {
        // With IP_RECVERR the kernel also reports an earlier probe's ICMP error (port
        // unreachable, time exceeded) as the socket's pending error, returned by the next send
        // instead of sending. That error is already queued for us, so send again.
        let mut tries = 0;
        loop {
            match self.send_once(ttl, seq, probe) {
                Err(e) if tries < 3 && is_async_icmp_error(&e) => tries += 1,
                other => return other,
            }
        }
    }

    fn send_once(&self, ttl: u8, seq: u16, probe: &[u8]) -> io::Result<()> {
        if self.target.is_ipv6() {
            self.socket.set_unicast_hops_v6(u32::from(ttl))?;
        } else {
            self.socket.set_ttl_v4(u32::from(ttl))?;
        }
        match self.protocol {
            Protocol::Icmp => {
                let l4 = if self.target.is_ipv4() {
                    probe.get(20..).unwrap_or_default()
                } else {
                    probe
                };
                self.socket
                    .send_to(l4, &SockAddr::from(SocketAddr::new(self.target, 0)))?;
            }
            _ => {
                let mut payload = MAGIC.to_vec();
                payload.extend_from_slice(&seq.to_be_bytes());
                self.socket.send(&payload)?;
            }
        }
        Ok(())
    }

    fn id(&self, seq: Option<u32>) -> ProbeId {
        ProbeId {
            protocol: self.protocol,
            destination: self.target,
            flow: self.flow,
            port: if self.protocol == Protocol::Udp {
                self.port
            } else {
                0
            },
            seq,
            ip_id: None,
        }
    }

    /// The probe sequence in the data the kernel returns: the ICMP echo header, or our payload.
    fn seq_in(&self, data: &[u8]) -> Option<u32> {
        match self.protocol {
            Protocol::Icmp => data
                .get(6..8)
                .map(|b| u32::from(u16::from_be_bytes([b[0], b[1]]))),
            _ => (data.get(..8) == Some(&MAGIC[..]))
                .then(|| {
                    data.get(8..10)
                        .map(|b| u32::from(u16::from_be_bytes([b[0], b[1]])))
                })
                .flatten(),
        }
    }

    /// Reads everything queued: echo replies, then the error queue.
    pub(crate) fn drain(&self, replies: &mut Vec<(Instant, Reply)>) {
        let mut buf = [0u8; 2048];
        if self.protocol == Protocol::Icmp {
            while let Ok((len, from)) = crate::sockets::recv_from(&self.socket, &mut buf) {
                let Some(from) = from.as_socket().map(|a| a.ip()) else {
                    continue;
                };
                let data = &buf[..len];
                let echo_reply = if self.target.is_ipv6() { 129 } else { 0 };
                if data.len() >= 8 && data[0] == echo_reply && from == self.target {
                    replies.push((
                        Instant::now(),
                        Reply {
                            from,
                            kind: ReplyKind::EchoReply,
                            probe: self.id(self.seq_in(data)),
                            mpls: Vec::new(),
                        },
                    ));
                }
            }
        }
        loop {
            let mut cmsg = nix::cmsg_space!(libc::sock_extended_err, libc::sockaddr_in6);
            let mut iov = [IoSliceMut::new(&mut buf)];
            let Ok(msg) = recvmsg::<SockaddrStorage>(
                self.socket.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT,
            ) else {
                return;
            };
            let len = msg.bytes;
            let mut found = None;
            if let Ok(cmsgs) = msg.cmsgs() {
                for c in cmsgs {
                    found = match c {
                        ControlMessageOwned::Ipv4RecvErr(e, Some(addr))
                            if e.ee_origin == SO_EE_ORIGIN_ICMP =>
                        {
                            let from = IpAddr::V4(std::net::Ipv4Addr::from(u32::from_be(
                                addr.sin_addr.s_addr,
                            )));
                            let kind = match e.ee_type {
                                11 => ReplyKind::TimeExceeded,
                                3 => ReplyKind::Unreachable {
                                    code: e.ee_code,
                                    v6: false,
                                },
                                12 => ReplyKind::ParamProblem {
                                    code: e.ee_code,
                                    v6: false,
                                },
                                _ => continue,
                            };
                            Some((from, kind))
                        }
                        ControlMessageOwned::Ipv6RecvErr(e, Some(addr))
                            if e.ee_origin == SO_EE_ORIGIN_ICMP6 =>
                        {
                            let from = IpAddr::V6(std::net::Ipv6Addr::from(addr.sin6_addr.s6_addr));
                            let kind = match e.ee_type {
                                3 => ReplyKind::TimeExceeded,
                                1 => ReplyKind::Unreachable {
                                    code: e.ee_code,
                                    v6: true,
                                },
                                4 => ReplyKind::ParamProblem {
                                    code: e.ee_code,
                                    v6: true,
                                },
                                _ => continue,
                            };
                            Some((from, kind))
                        }
                        _ => continue,
                    };
                }
            }
            if let Some((from, kind)) = found {
                let seq = self.seq_in(&buf[..len]);
                replies.push((
                    Instant::now(),
                    Reply {
                        from,
                        kind,
                        probe: self.id(seq),
                        mpls: Vec::new(),
                    },
                ));
            }
        }
    }
}

fn is_async_icmp_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ECONNREFUSED
                | libc::EHOSTUNREACH
                | libc::ENETUNREACH
                | libc::EHOSTDOWN
                | libc::EPROTO
                | libc::ENOPROTOOPT
                | libc::EACCES
                | libc::EMSGSIZE
        )
    )
}
