//! Trace options, validated once at the boundary into types that cannot hold invalid values.

use edgetrace_wire::Protocol;
use std::{fmt, str::FromStr, time::Duration};

/// Why an option was refused: names the option, the value and the allowed range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {value} is out of range; allowed: {allowed}")]
pub struct OptionsError {
    pub field: &'static str,
    pub value: String,
    pub allowed: &'static str,
}

macro_rules! bounded {
    ($(#[$doc:meta])* $name:ident, $field:literal, $min:literal, $max:literal, $default:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(u8);

        impl $name {
            pub const MIN: u8 = $min;
            pub const MAX: u8 = $max;

            pub fn new(v: u64) -> Result<Self, OptionsError> {
                if ($min as u64..=$max as u64).contains(&v) {
                    Ok(Self(v as u8))
                } else {
                    Err(OptionsError {
                        field: $field,
                        value: v.to_string(),
                        allowed: concat!($min, "-", $max),
                    })
                }
            }

            pub fn get(self) -> u8 {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self($default)
            }
        }

        impl FromStr for $name {
            type Err = OptionsError;
            fn from_str(s: &str) -> Result<Self, OptionsError> {
                let v: u64 = s.trim().parse().map_err(|_| OptionsError {
                    field: $field,
                    value: format!("{s:?}"),
                    allowed: concat!("an integer ", $min, "-", $max),
                })?;
                Self::new(v)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

bounded!(
    /// Highest TTL probed, 1–64.
    MaxTtl, "max_ttl", 1, 64, 30
);
bounded!(
    /// Probes sent at each TTL, 1–10.
    PacketsPerTtl, "packets_per_ttl", 1, 10, 3
);
bounded!(
    /// Seconds to wait for a reply to a probe, 1–5.
    WaitTime, "wait_time", 1, 5, 1
);

bounded!(
    /// Flows of a multipath trace, 1–64 (`--paths N`): each flow is a Paris traceroute of its
    /// own, with its own flow identifier.
    FlowCount, "paths", 1, 64, 1
);
bounded!(
    /// Confidence, in percent (50–99), with which the MDA's stopping rule says every next hop
    /// was seen.
    Confidence, "confidence", 50, 99, 95
);

impl Confidence {
    /// The probability that the stopping rule stops too early at one vertex: 1 − confidence.
    pub fn failure_bound(self) -> f64 {
        1.0 - f64::from(self.0) / 100.0
    }
}

/// How many flows a trace uses, each with its own flow identifier (the fields load balancers
/// hash on): a fixed number, or as many as the MDA's stopping rule asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Paths {
    /// This many flows, each probed `packets_per_ttl` times at every TTL.
    Flows(FlowCount),
    /// The Multipath Detection Algorithm (Augustin et al.): flows are added until, at every
    /// vertex, enough flows went through it for the stopping rule to say, with this
    /// confidence, that all of its next hops were seen.
    Auto(Confidence),
}

impl Paths {
    /// Flows a trace may use at most: the fixed count, or [`Paths::MDA_MAX_FLOWS`].
    pub fn max_flows(self) -> u16 {
        match self {
            Paths::Flows(n) => u16::from(n.get()),
            Paths::Auto(_) => Paths::MDA_MAX_FLOWS,
        }
    }

    /// The MDA stops adding flows here whatever the stopping rule says (enough for a vertex
    /// reached by 1/8 of the flows to have 16 next hops checked at 95%).
    pub const MDA_MAX_FLOWS: u16 = 256;
}

impl Default for Paths {
    fn default() -> Self {
        Paths::Flows(FlowCount::default())
    }
}

impl FromStr for Paths {
    type Err = OptionsError;
    /// A flow count 1–64, `auto` (the MDA at 95%) or `auto:NN` (at NN%), as `Display` writes.
    fn from_str(s: &str) -> Result<Self, OptionsError> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("auto") {
            return Ok(Paths::Auto(Confidence::default()));
        }
        if let Some(c) = t.get(..5).filter(|a| a.eq_ignore_ascii_case("auto:")) {
            return t[c.len()..].parse().map(Paths::Auto);
        }
        let v: u64 = s.trim().parse().map_err(|_| OptionsError {
            field: "paths",
            value: format!("{s:?}"),
            allowed: "an integer 1-64, or auto",
        })?;
        FlowCount::new(v)
            .map(Paths::Flows)
            .map_err(|e| OptionsError {
                allowed: "1-64, or auto",
                ..e
            })
    }
}

impl fmt::Display for Paths {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Paths::Flows(n) => n.fmt(f),
            Paths::Auto(c) if *c == Confidence::default() => f.write_str("auto"),
            Paths::Auto(c) => write!(f, "auto:{c}"),
        }
    }
}

impl WaitTime {
    pub fn duration(self) -> Duration {
        Duration::from_secs(u64::from(self.0))
    }
}

/// The kind of trace: one protocol, or GRE and ICMP in one measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PacketType {
    #[default]
    Icmp,
    Udp,
    Tcp,
    Gre,
    GreIcmp,
}

impl PacketType {
    pub const ALL: [PacketType; 5] = [
        PacketType::Icmp,
        PacketType::Udp,
        PacketType::Tcp,
        PacketType::Gre,
        PacketType::GreIcmp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PacketType::Icmp => "icmp",
            PacketType::Udp => "udp",
            PacketType::Tcp => "tcp",
            PacketType::Gre => "gre",
            PacketType::GreIcmp => "gre+icmp",
        }
    }

    /// The protocols whose traces make up a measurement of this type.
    pub fn protocols(self) -> &'static [Protocol] {
        match self {
            PacketType::Icmp => &[Protocol::Icmp],
            PacketType::Udp => &[Protocol::Udp],
            PacketType::Tcp => &[Protocol::Tcp],
            PacketType::Gre => &[Protocol::Gre],
            PacketType::GreIcmp => &[Protocol::Gre, Protocol::Icmp],
        }
    }
}

impl FromStr for PacketType {
    type Err = OptionsError;
    fn from_str(s: &str) -> Result<Self, OptionsError> {
        PacketType::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| OptionsError {
                field: "packet_type",
                value: format!("{s:?}"),
                allowed: "icmp, udp, tcp, gre, gre+icmp",
            })
    }
}

impl fmt::Display for PacketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Options of one measurement, as the CLI and the API take them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    pub packet_type: PacketType,
    /// UDP/TCP destination port, GRE key, or first ICMP sequence; 0 picks the default.
    pub port: u16,
    pub max_ttl: MaxTtl,
    pub packets_per_ttl: PacketsPerTtl,
    pub wait_time: WaitTime,
    /// Flows per trace (an edgetrace extension; 1, the default, is Cloudflare's contract).
    pub paths: Paths,
}

impl Options {
    /// The port a protocol actually uses when `port` is 0: UDP 33434, TCP 80, ICMP sequence 1.
    /// For GRE, 0 means "a key of our choosing" and stays 0 here.
    pub fn effective_port(&self, protocol: Protocol) -> u16 {
        match (protocol, self.port) {
            (Protocol::Udp, 0) => 33434,
            (Protocol::Tcp, 0) => 80,
            (Protocol::Icmp, 0) => 1,
            (_, p) => p,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_enforced_with_named_errors() {
        assert_eq!(MaxTtl::new(64).unwrap().get(), 64);
        let e = MaxTtl::new(65).unwrap_err();
        assert_eq!(e.to_string(), "max_ttl: 65 is out of range; allowed: 1-64");
        assert!(MaxTtl::new(0).is_err());
        assert!(PacketsPerTtl::new(11).is_err());
        assert_eq!(
            WaitTime::from_str("5").unwrap().duration(),
            Duration::from_secs(5)
        );
        assert_eq!(
            WaitTime::from_str("x").unwrap_err().to_string(),
            "wait_time: \"x\" is out of range; allowed: an integer 1-5"
        );
        assert_eq!(
            PacketType::from_str("GRE+ICMP").unwrap(),
            PacketType::GreIcmp
        );
        assert!(
            PacketType::from_str("sctp")
                .unwrap_err()
                .to_string()
                .contains("icmp, udp")
        );
    }

    #[test]
    fn paths_take_a_count_or_auto() {
        assert_eq!(Paths::default(), Paths::Flows(FlowCount::new(1).unwrap()));
        assert_eq!(
            Paths::from_str("16").unwrap(),
            Paths::Flows(FlowCount::new(16).unwrap())
        );
        assert_eq!(
            Paths::from_str("AUTO").unwrap(),
            Paths::Auto(Confidence::new(95).unwrap())
        );
        assert_eq!(
            Paths::from_str("65").unwrap_err().to_string(),
            "paths: 65 is out of range; allowed: 1-64, or auto"
        );
        assert_eq!(
            Paths::from_str("0").unwrap_err().to_string(),
            "paths: 0 is out of range; allowed: 1-64, or auto"
        );
        assert_eq!(
            Paths::from_str("many").unwrap_err().to_string(),
            "paths: \"many\" is out of range; allowed: an integer 1-64, or auto"
        );
        assert_eq!(
            Confidence::new(100).unwrap_err().to_string(),
            "confidence: 100 is out of range; allowed: 50-99"
        );
        assert_eq!(Paths::Auto(Confidence::default()).max_flows(), 256);
        for p in ["1", "64", "auto", "auto:99"] {
            assert_eq!(Paths::from_str(p).unwrap().to_string(), p);
        }
        assert_eq!(
            Paths::from_str("auto:100").unwrap_err().to_string(),
            "confidence: 100 is out of range; allowed: 50-99"
        );
        assert!((Confidence::default().failure_bound() - 0.05).abs() < 1e-12);
    }

    #[test]
    fn defaults() {
        let o = Options::default();
        assert_eq!(
            (o.max_ttl.get(), o.packets_per_ttl.get(), o.wait_time.get()),
            (30, 3, 1)
        );
        assert_eq!(o.effective_port(Protocol::Udp), 33434);
        assert_eq!(o.effective_port(Protocol::Tcp), 80);
        assert_eq!(o.effective_port(Protocol::Icmp), 1);
        assert_eq!(
            Options { port: 443, ..o }.effective_port(Protocol::Tcp),
            443
        );
    }
}
