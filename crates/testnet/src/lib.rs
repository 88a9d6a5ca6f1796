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
//! Hops answer from the address of their interface facing the source (the
//! inbound interface of the probe): IPv6 does this by itself, and every
//! namespace sets `net.ipv4.icmp_errors_use_inbound_ifaddr=1` so IPv4 matches
//! (without it, IPv4 picks the source of the route back to the sender, which
//! differs on asymmetric paths such as the far side of [`ecmp_diamond`]).
//!
//! ICMP rate limiting is off in every namespace unless asked otherwise
//! ([`NsOptions`], [`LinearSpec::kernel_icmp_ratelimit`]); with the kernel
//! defaults, time-exceeded and destination-unreachable are limited per
//! destination (v4: `icmp_ratelimit=1000` ms with a burst of 6, v6:
//! `ratelimit=100` ms) and globally (`icmp_msgs_per_sec`/`icmp_msgs_burst`).

pub mod counters;
pub mod lab;
pub mod scenarios;
mod sys;

pub use counters::TtlCounters;
pub use lab::{Lab, NsOptions, TimedOutput, cleanup_stale, list_lab_namespaces, run_in_netns};
pub use scenarios::{
    ColoPath, ColoPaths, ColoPathsSpec, Diamond, DiamondSpec, LinearSpec, Path, colo_paths,
    ecmp_diamond, linear, linear_tagged, link_v4, link_v6,
};
