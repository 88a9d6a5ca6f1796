//! The traceroute engine of edgetrace. It does no I/O and reads no clock: it is handed `now` and
//! the replies that arrived, and says what to send and when it next needs waking.
//!
//! ```
//! use edgetrace_probe::{Options, PacketType, Trace, TraceConfig};
//! use edgetrace_wire::Protocol;
//! use std::time::{Duration, Instant};
//!
//! let options = Options::default();
//! let cfg = TraceConfig::new(
//!     Protocol::Icmp,
//!     "198.18.0.2".parse().unwrap(),
//!     "198.18.0.9".parse().unwrap(),
//!     vec![0x8001],
//!     &options,
//! );
//! let mut trace = Trace::new(cfg);
//! let t0 = Instant::now();
//! let mut packet = Vec::new();
//! let mut sent = 0;
//! while let Some(tx) = trace.poll_transmit(t0, &mut packet) {
//!     assert!(tx.ttl >= 1);
//!     sent += 1;
//! }
//! assert_eq!(sent, 12); // 4 TTLs ahead of the last answer, 3 probes each
//! // Nothing answers: every probe times out after the wait time, and the trace ends.
//! let mut now = t0;
//! while !trace.is_done() {
//!     now = trace.poll_timeout().unwrap();
//!     trace.handle_timeout(now);
//!     while trace.poll_transmit(now, &mut packet).is_some() {}
//! }
//! assert!(now - t0 < Duration::from_millis(1200));
//! ```

pub mod mda;
mod options;
pub mod report;
mod trace;

pub use options::{
    Confidence, FlowCount, MaxTtl, Options, OptionsError, PacketType, PacketsPerTtl, Paths,
    WaitTime,
};
pub use trace::{Trace, TraceConfig, TraceOutcome, Transmit};
