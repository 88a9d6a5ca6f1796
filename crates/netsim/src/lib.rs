//! A simulated internet on a TUN device, for testing and benchmarking edgetrace's traceroute
//! engine with real packets.
//!
//! A [`Simulator`] creates a network namespace (through `edgetrace-testnet`'s `Lab`, so it is
//! deleted on drop, also on panic), a TUN device in it, and routes for the simulated prefixes
//! into the TUN. Every packet the kernel sends there is handed to a [`Network`] — the
//! topology of a [`Scenario`] TOML file — which answers as the routers and hosts of the
//! scenario would, after the configured latencies. The engine under test runs in the same
//! namespace and knows nothing of the simulation.
//!
//! ```no_run
//! use edgetrace_netsim::{Scenario, Simulator};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let scenario = Scenario::from_file("crates/netsim/scenarios/linear16.toml")?;
//! let sim = Simulator::start("doc", &scenario)?;
//! // Anything run through `sim.run` is inside the namespace: sockets, probes, a Prober.
//! let out = sim.lab().exec_ok(sim.namespace(), &["ping", "-c1", "-t1", "198.19.0.1"]);
//! let truth = sim.truth(); // every genuine reply delivered, per probe: the ground truth
//! # drop((out, truth)); Ok(()) }
//! ```
//!
//! The simulation itself ([`Network`]) is sans-IO and deterministic given the scenario's seed
//! and the packets handed to it; the [`Simulator`] only moves packets between it and the TUN.

mod bucket;
pub mod network;
pub mod packet;
pub mod reply;
mod rng;
pub mod scenario;
mod sim;

pub use bucket::TokenBucket;
pub use network::{Network, Stats};
pub use packet::TraceKey;
pub use rng::Rng;
pub use scenario::{Scenario, ScenarioError};
pub use sim::Simulator;

use std::collections::HashMap;
use std::net::IpAddr;
use std::ops::{Add, Sub};
use std::time::Duration;

/// Simulated time: the time since the simulation started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SimTime(Duration);

impl SimTime {
    pub const ZERO: SimTime = SimTime(Duration::ZERO);

    pub fn from_duration(d: Duration) -> SimTime {
        SimTime(d)
    }

    pub fn as_duration(self) -> Duration {
        self.0
    }
}

impl Add<Duration> for SimTime {
    type Output = SimTime;
    fn add(self, d: Duration) -> SimTime {
        SimTime(self.0 + d)
    }
}

impl Sub<Duration> for SimTime {
    type Output = SimTime;
    fn sub(self, d: Duration) -> SimTime {
        SimTime(self.0.saturating_sub(d))
    }
}

impl Sub<SimTime> for SimTime {
    type Output = Duration;
    /// Saturating: zero when `other` is later.
    fn sub(self, other: SimTime) -> Duration {
        self.0.saturating_sub(other.0)
    }
}

/// The genuine replies the simulator delivered: per probe (trace and TTL it was sent with),
/// which address answered and how often. A reply an engine attributes beyond these is
/// attributed to the wrong probe.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Truth {
    replies: HashMap<(TraceKey, u8), HashMap<IpAddr, u32>>,
    /// The same, summed over flows: (protocol, destination, ttl).
    by_target: HashMap<(u8, IpAddr, u8), HashMap<IpAddr, u32>>,
    /// Simulated round trips of the genuine replies (not the hostile extras), by (protocol,
    /// destination, ttl), in the order the probes arrived.
    rtts: HashMap<(u8, IpAddr, u8), Vec<Duration>>,
}

impl Truth {
    pub fn record(&mut self, key: TraceKey, ttl: u8, from: IpAddr) {
        *self
            .replies
            .entry((key, ttl))
            .or_default()
            .entry(from)
            .or_default() += 1;
        *self
            .by_target
            .entry((key.protocol, key.destination, ttl))
            .or_default()
            .entry(from)
            .or_default() += 1;
    }

    /// Records the simulated round trip of a genuine reply: from the probe's arrival at the
    /// simulator to the reply's due time (the link delays drawn, nothing of the host's timing).
    pub fn record_rtt(&mut self, key: TraceKey, ttl: u8, rtt: Duration) {
        self.rtts
            .entry((key.protocol, key.destination, ttl))
            .or_default()
            .push(rtt);
    }

    /// The simulated round trips of the genuine replies to probes of `protocol` to
    /// `destination` sent with `ttl`, over every flow: what an engine's RTTs would be on a host
    /// that added no delay of its own.
    pub fn rtts(&self, protocol: u8, destination: IpAddr, ttl: u8) -> Vec<Duration> {
        self.rtts
            .get(&(protocol, destination, ttl))
            .cloned()
            .unwrap_or_default()
    }

    /// Who answered probes of one trace sent with `ttl`, and how many times.
    pub fn of_probe(&self, key: TraceKey, ttl: u8) -> HashMap<IpAddr, u32> {
        self.replies.get(&(key, ttl)).cloned().unwrap_or_default()
    }

    /// Who answered probes of `protocol` (IP protocol number) to `destination` sent with
    /// `ttl`, over every flow, and how many times.
    pub fn responders(&self, protocol: u8, destination: IpAddr, ttl: u8) -> HashMap<IpAddr, u32> {
        self.by_target
            .get(&(protocol, destination, ttl))
            .cloned()
            .unwrap_or_default()
    }

    /// How many of the replies an engine reports — `(ttl, from, count)` for one destination —
    /// the simulator never sent for a probe with that TTL: replies attributed to the wrong
    /// probe.
    pub fn misattributed(
        &self,
        protocol: u8,
        destination: IpAddr,
        reported: impl IntoIterator<Item = (u8, IpAddr, u32)>,
    ) -> u32 {
        reported
            .into_iter()
            .map(|(ttl, ip, n)| {
                let sent = self
                    .by_target
                    .get(&(protocol, destination, ttl))
                    .and_then(|m| m.get(&ip))
                    .copied()
                    .unwrap_or(0);
                n.saturating_sub(sent)
            })
            .sum()
    }

    /// Number of (probe, responder) entries.
    pub fn len(&self) -> usize {
        self.replies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.replies.is_empty()
    }
}
