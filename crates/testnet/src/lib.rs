//! Network-namespace topologies for edgetrace's integration tests.
//!
//! ```no_run
//! use edgetrace_testnet::{linear, LinearSpec};
//! use std::time::Duration;
//!
//! # fn main() -> std::io::Result<()> {
//! // src — r1 — r2 — r3 — dst, router at TTL 2 silent, +40 ms on link 3 (r2↔r3).
//! let path = linear(&LinearSpec {
//!     routers: 3,
//!     silent_routers: vec![2],
//!     delay: Some((3, Duration::from_millis(40))),
//!     ..Default::default()
//! })?;
//! let target = path.target_v4.to_string();
//! let out = path.lab.exec_ok(&path.src, &["ping", "-c1", "-W2", &target])?;
//! assert!(out.contains("1 received"));
//! assert_eq!(path.hops_v4[0].to_string(), "198.18.1.2"); // TTL 1 answers from here
//! // Sockets can also be created inside a namespace from the test itself:
//! let sock = path.lab.in_ns(&path.src, || std::net::UdpSocket::bind("0.0.0.0:0"))??;
//! # drop(sock);
//! # Ok(()) }
//! // Dropping `path` (also on panic) kills spawned processes and deletes every namespace.
//! ```
//!
//! Everything lives in namespaces named `et-{pid}-{n}-{tag}-{short}`; no
//! interface is ever created in the root namespace, and addresses come from
//! the benchmarking ranges `198.18.0.0/15` and `2001:2::/48`. Tests need root
//! (CAP_SYS_ADMIN + CAP_NET_ADMIN), `ip` (iproute2) and `iptables`/`ip6tables`.
//!
//! Hops answer from the address of their interface facing the source: with
//! routes set in both directions, Linux picks the ICMP error's source address
//! from the route back to the original sender, which leaves through the
//! ingress interface on a linear path.

pub mod counters;
pub mod lab;
pub mod scenarios;
mod sys;

pub use counters::TtlCounters;
pub use lab::{Lab, NsOptions, TimedOutput, cleanup_stale, list_lab_namespaces, run_in_netns};
pub use scenarios::{
    Diamond, DiamondSpec, LinearSpec, Path, ecmp_diamond, linear, linear_tagged, link_v4, link_v6,
};
