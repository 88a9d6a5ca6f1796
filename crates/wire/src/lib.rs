//! Packet formats for edgetrace: building traceroute probes and parsing the replies they draw.
//!
//! ```
//! use edgetrace_wire::{emit_probe, parse_reply_v4, Protocol, ProbeSpec};
//! use std::net::Ipv4Addr;
//!
//! let spec = ProbeSpec {
//!     protocol: Protocol::Udp,
//!     source: Ipv4Addr::new(198, 18, 0, 2).into(),
//!     destination: Ipv4Addr::new(198, 18, 0, 9).into(),
//!     ttl: 3,
//!     flow: 40_000,
//!     port: 33434,
//!     seq: 7,
//! };
//! let mut probe = Vec::new();
//! emit_probe(&spec, &mut probe).unwrap();
//! // A router answers with ICMP time exceeded quoting the probe; the parser recovers its identity.
//! let reply = edgetrace_wire::testing::time_exceeded_v4(Ipv4Addr::new(198, 18, 0, 5), &probe);
//! let reply = parse_reply_v4(&reply).unwrap();
//! assert_eq!(reply.probe.flow, 40_000);
//! assert_eq!(reply.probe.seq, Some(7));
//! ```
//!
//! Headers and checksums come from `etherparse`; GRE (RFC 2784/2890) and ICMP extensions
//! (RFC 4884/4950 MPLS label stacks) are small enough, and absent from etherparse, so they are ours.

mod checksum;
pub mod extensions;
pub mod gre;
mod probe;
mod reply;
pub mod testing;

pub use extensions::MplsEntry;
pub use probe::{ProbeSpec, emit_probe};
pub use reply::{ProbeId, Reply, ReplyKind, parse_reply_v4, parse_reply_v6};

/// The transport a probe uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Icmp,
    Udp,
    Tcp,
    Gre,
}

impl Protocol {
    /// The IP protocol number carried by a probe of this kind for the given address family.
    pub fn ip_number(self, v6: bool) -> u8 {
        match (self, v6) {
            (Protocol::Icmp, false) => 1,
            (Protocol::Icmp, true) => 58,
            (Protocol::Udp, _) => 17,
            (Protocol::Tcp, _) => 6,
            (Protocol::Gre, _) => 47,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Icmp => "icmp",
            Protocol::Udp => "udp",
            Protocol::Tcp => "tcp",
            Protocol::Gre => "gre",
        }
    }
}

/// Why bytes could not be turned into a probe or a reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("packet truncated: {what} needs {needed} bytes, got {got}")]
    Truncated {
        what: &'static str,
        needed: usize,
        got: usize,
    },
    #[error("not a traceroute reply: {0}")]
    Unrelated(&'static str),
    #[error("malformed {what}: {detail}")]
    Malformed { what: &'static str, detail: String },
    #[error("cannot build probe: {0}")]
    Build(String),
}

impl WireError {
    /// True when the packet is well-formed but simply not an answer to a probe (most traffic).
    pub fn is_unrelated(&self) -> bool {
        matches!(self, WireError::Unrelated(_))
    }
}
