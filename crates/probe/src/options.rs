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
