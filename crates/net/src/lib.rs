//! Real sockets for edgetrace's traceroute engine.
//!
//! Privileged sockets are opened once ([`Sockets::open`]), the capabilities no longer needed are
//! dropped ([`drop_privileges`]), and one thread ([`Prober`]) runs every trace over the shared
//! sockets: it sends what the engines ask for, reads every reply, and dispatches each reply to
//! the trace whose probe it quotes.
//!
//! ```no_run
//! use edgetrace_net::{Prober, Sockets, TraceRequest, drop_privileges};
//! use edgetrace_probe::Options;
//! use edgetrace_wire::Protocol;
//!
//! // Raw sockets when permitted; otherwise ping sockets and UDP with IP_RECVERR.
//! let sockets = Sockets::open().ok();
//! drop_privileges().unwrap();
//! let prober = Prober::start(sockets).unwrap();
//! let request = TraceRequest {
//!     protocol: Protocol::Icmp,
//!     target: "127.0.0.1".parse().unwrap(),
//!     options: Options::default(),
//! };
//! let outcome = prober.trace(request).unwrap().blocking_recv().unwrap().unwrap();
//! println!("{} hops", outcome.hops.len());
//! ```

mod driver;
mod sockets;
mod unprivileged;

pub use driver::{Prober, ReplyObserver, TraceRequest};
pub use sockets::{Sockets, drop_privileges, source_for};

use std::io;

/// Why a trace could not run.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The probe type needs a privilege this process lacks.
    #[error("{what} are not permitted here: {hint} ({source})")]
    NotPermitted {
        what: &'static str,
        hint: &'static str,
        source: io::Error,
    },
    /// No route to the target, or no address of its family on this machine.
    #[error("no route to {target}: {source}")]
    NoRoute {
        target: std::net::IpAddr,
        source: io::Error,
    },
    /// A GRE key chosen by the user is already in use towards the same target.
    #[error("a GRE trace to {target} with key {key} is already running")]
    FlowBusy { target: std::net::IpAddr, key: u32 },
    #[error("the probing thread has stopped")]
    Stopped,
    #[error("{context}: {source}")]
    Io {
        context: &'static str,
        source: io::Error,
    },
}

impl NetError {
    pub fn is_not_permitted(&self) -> bool {
        matches!(self, NetError::NotPermitted { .. })
    }

    pub fn is_no_route(&self) -> bool {
        matches!(self, NetError::NoRoute { .. })
    }
}
