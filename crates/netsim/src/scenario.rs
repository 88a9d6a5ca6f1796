//! The scenario format: a TOML file describing the simulated network, validated once into types
//! that cannot hold invalid values.
//!
//! ```
//! use edgetrace_netsim::Scenario;
//!
//! let s = Scenario::from_toml(r#"
//!     seed = 7
//!     [[router]]
//!     name = "r1"
//!     v4 = "198.18.1.1"
//!     [[host]]
//!     name = "dst"
//!     addresses = ["198.18.9.9"]
//!     [[link]]
//!     between = ["source", "r1"]
//!     latency_ms = 5.0
//!     [[link]]
//!     between = ["r1", "dst"]
//! "#).unwrap();
//! assert_eq!(s.routers[0].name, "r1");
//!
//! let e = Scenario::from_toml(r#"
//!     [[router]]
//!     name = "r1"
//!     v4 = "198.18.1"
//! "#).unwrap_err();
//! assert_eq!(e.to_string(), r#"router[0].v4: "198.18.1" is not an IPv4 address"#);
//! ```
//!
//! Every field, with its default:
//!
//! ```toml
//! seed = 1                       # the RNG seed (loss, jitter, hostile choices, ECMP keys)
//! [source]                       # the engine's end of the TUN device (node name "source")
//! v4 = "198.18.0.1"
//! v6 = "2001:2::1"
//! routes = ["198.18.0.0/15", "2001:2::/48"]   # prefixes the namespace routes into the TUN
//!
//! [[router]]
//! name = "r1"                    # unique; "source" is reserved
//! v4 = "198.18.1.1"              # the address it answers from (and owns)
//! v6 = "2001:2:0:1::1"
//! answer = "normal"              # or "silent": never sends ICMP
//! reply_v4 = "198.18.99.1"       # answer from another interface's address instead
//! reply_v6 = "2001:2:0:99::1"
//! ecmp = "flow"                  # or "packet": how it picks among equal-cost next hops
//! mpls = [{ label = 24001, tc = 0, ttl = 1 }]   # label stack quoted in RFC 4950 extensions
//! icmp_rate = { per_second = 10.0, burst = 5 }  # token bucket on the ICMP it sends
//! quote_bytes = 548              # bytes of the expired packet its ICMP errors quote
//! nat = { v4 = "198.18.200.1", v6 = "2001:2:0:200::1", quote = "address" }  # or "full"
//! hostile = { corrupt = 0.0, duplicate = 0.0, unsolicited = 0.0, cross_trace = 0.0 }
//!
//! [[host]]
//! name = "dst"
//! addresses = ["198.19.0.9", "198.19.4.0/22", "2001:2:0:ff::9"]   # addresses or prefixes
//! behavior = "answer"            # "drop", "host-unreachable", "net-unreachable", "admin-prohibited"
//! tcp_open = [80]                # SYN-ACK on these ports, RST on the others
//!
//! [link_defaults]
//! latency_ms = 0.0
//! jitter_ms = 0.0
//! loss = 0.0
//!
//! [[link]]
//! between = ["source", "r1"]     # links are bidirectional; routing is shortest path (cost)
//! latency_ms = 1.0               # one way; jitter is the std-dev of a normal, per traversal
//! jitter_ms = 0.1
//! loss = 0.01                    # per traversal, each direction
//! cost = 1
//! ```

use edgetrace_wire::MplsEntry;
use serde::Deserialize;
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// The node name of the engine's end of the TUN device.
pub const SOURCE: &str = "source";

/// Why a scenario was refused.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// TOML syntax, an unknown field or a value of the wrong type; the message carries the
    /// line, column and field name.
    #[error("{0}")]
    Toml(String),
    /// A value that parses but makes no sense: names the field, the value and what is allowed.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

impl ScenarioError {
    fn invalid(field: impl Into<String>, message: impl Into<String>) -> ScenarioError {
        ScenarioError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The field named in the error, when it is about one.
    pub fn field(&self) -> Option<&str> {
        match self {
            ScenarioError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }
}

/// A probability, 0–1.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Probability(f64);

impl Probability {
    pub fn new(p: f64) -> Option<Probability> {
        (0.0..=1.0).contains(&p).then_some(Probability(p))
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

/// An address prefix such as `198.19.0.0/22`; a bare address is a full-length prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl Prefix {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                u32::from(a) & mask == u32::from(b) & mask
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                u128::from(a) & mask == u128::from(b) & mask
            }
            _ => false,
        }
    }

    /// The `n`-th address of the prefix (`None` past its end).
    pub fn nth(&self, n: u128) -> Option<IpAddr> {
        match self.addr {
            IpAddr::V4(a) => {
                let size = 1u128 << (32 - u32::from(self.len));
                (n < size).then(|| IpAddr::V4(Ipv4Addr::from(u32::from(a) + n as u32)))
            }
            IpAddr::V6(a) => {
                let bits = 128 - u32::from(self.len);
                (bits == 128 || n < (1u128 << bits))
                    .then(|| IpAddr::V6(Ipv6Addr::from(u128::from(a) + n)))
            }
        }
    }
}

impl FromStr for Prefix {
    type Err = String;
    fn from_str(s: &str) -> Result<Prefix, String> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an address or prefix"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len {
            None => max,
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("{s:?}: prefix length must be 0-{max}"))?,
        };
        let p = Prefix { addr, len };
        // The network address itself, so `nth(0)` is the first address.
        let base = match addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
        };
        Ok(Prefix { addr: base, ..p })
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Latency, jitter and loss of a link, per traversal in each direction.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LinkParams {
    pub latency: Duration,
    /// Standard deviation of a normal distribution added to the latency (clamped at 0).
    pub jitter: Duration,
    pub loss: Probability,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    pub a: String,
    pub b: String,
    pub params: LinkParams,
    /// Routing cost; traffic follows the cheapest paths, splitting over equal-cost ones.
    pub cost: u32,
}

/// Whether a router sends ICMP at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Answer {
    #[default]
    Normal,
    Silent,
}

/// How a router spreads traffic over equal-cost next hops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EcmpMode {
    /// Hash of the flow fields (addresses, protocol, first 4 transport bytes, IPv6 flow label,
    /// GRE key): every packet of a flow takes the same branch.
    #[default]
    Flow,
    /// Round robin, packet by packet.
    Packet,
}

/// A token bucket on the ICMP a router sends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

/// What a NAT restores in the header quoted by ICMP errors it translates back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NatQuote {
    /// Only the quoted source address (and IP header checksum): the quoted transport checksum
    /// still carries the translation, which is how traceroutes detect the NAT.
    #[default]
    Address,
    /// Everything, transport checksum included (as Linux conntrack does).
    Full,
}

/// Source NAT on a router: packets it forwards leave with its outside address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nat {
    pub v4: Option<Ipv4Addr>,
    pub v6: Option<Ipv6Addr>,
    pub quote: NatQuote,
}

/// Misbehaviour of a router's replies, each a probability per reply it sends.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Hostile {
    /// A bit of the quoted probe flipped in transit; the ICMP checksum no longer matches.
    pub corrupt: Probability,
    /// The reply arrives twice.
    pub duplicate: Probability,
    /// An extra reply quoting a probe nobody sent (random flow and sequence), and an echo
    /// reply nobody asked for.
    pub unsolicited: Probability,
    /// An extra reply, late, to the last probe of another trace that expired here.
    pub cross_trace: Probability,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Router {
    pub name: String,
    pub v4: Option<Ipv4Addr>,
    pub v6: Option<Ipv6Addr>,
    pub answer: Answer,
    pub reply_v4: Option<Ipv4Addr>,
    pub reply_v6: Option<Ipv6Addr>,
    pub ecmp: EcmpMode,
    pub mpls: Vec<MplsEntry>,
    pub icmp_rate: Option<RateLimit>,
    /// Bytes of the expired packet quoted; `None` quotes as much as fits (576 bytes in all for
    /// IPv4, 1280 for IPv6, as Linux does).
    pub quote_bytes: Option<usize>,
    pub nat: Option<Nat>,
    pub hostile: Hostile,
}

impl Router {
    /// The address ICMP from this router comes from, per family.
    pub fn reply_address(&self, v6: bool) -> Option<IpAddr> {
        if v6 {
            self.reply_v6.or(self.v6).map(IpAddr::V6)
        } else {
            self.reply_v4.or(self.v4).map(IpAddr::V4)
        }
    }
}

/// How a target host treats probes addressed to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HostBehavior {
    /// Echo replies, port unreachable for UDP, SYN-ACK/RST for TCP, protocol unreachable for GRE.
    #[default]
    Answer,
    Drop,
    /// The router in front of it answers `!H` (IPv6: address unreachable).
    HostUnreachable,
    /// `!N` (IPv6: no route).
    NetUnreachable,
    /// `!X` (IPv6: administratively prohibited).
    AdminProhibited,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    pub name: String,
    pub addresses: Vec<Prefix>,
    pub behavior: HostBehavior,
    pub tcp_open: Vec<u16>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub v4: Option<Ipv4Addr>,
    pub v6: Option<Ipv6Addr>,
    pub routes: Vec<Prefix>,
}

impl Default for Source {
    fn default() -> Source {
        Source {
            v4: Some(Ipv4Addr::new(198, 18, 0, 1)),
            v6: Some(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1)),
            routes: vec![
                "198.18.0.0/15".parse().expect("literal"),
                "2001:2::/48".parse().expect("literal"),
            ],
        }
    }
}

/// A validated scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub seed: u64,
    pub source: Source,
    pub routers: Vec<Router>,
    pub hosts: Vec<Host>,
    pub links: Vec<Link>,
}

// ---- the raw TOML shape -------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    seed: Option<u64>,
    #[serde(default)]
    source: Option<RawSource>,
    #[serde(default)]
    link_defaults: Option<RawLinkParams>,
    #[serde(default, rename = "router")]
    routers: Vec<RawRouter>,
    #[serde(default, rename = "host")]
    hosts: Vec<RawHost>,
    #[serde(default, rename = "link")]
    links: Vec<RawLink>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    v4: Option<String>,
    v6: Option<String>,
    routes: Option<Vec<String>>,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(deny_unknown_fields)]
struct RawLinkParams {
    latency_ms: Option<f64>,
    jitter_ms: Option<f64>,
    loss: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLink {
    between: Vec<String>,
    latency_ms: Option<f64>,
    jitter_ms: Option<f64>,
    loss: Option<f64>,
    cost: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMpls {
    label: u32,
    #[serde(default)]
    tc: u8,
    ttl: Option<u8>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRate {
    per_second: f64,
    burst: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNat {
    v4: Option<String>,
    v6: Option<String>,
    quote: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHostile {
    corrupt: Option<f64>,
    duplicate: Option<f64>,
    unsolicited: Option<f64>,
    cross_trace: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRouter {
    name: String,
    v4: Option<String>,
    v6: Option<String>,
    answer: Option<String>,
    reply_v4: Option<String>,
    reply_v6: Option<String>,
    ecmp: Option<String>,
    #[serde(default)]
    mpls: Vec<RawMpls>,
    icmp_rate: Option<RawRate>,
    quote_bytes: Option<u32>,
    nat: Option<RawNat>,
    hostile: Option<RawHostile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    name: String,
    #[serde(default)]
    addresses: Vec<String>,
    behavior: Option<String>,
    #[serde(default)]
    tcp_open: Vec<u16>,
}

// ---- validation ---------------------------------------------------------------------------

fn v4(field: &str, s: &Option<String>) -> Result<Option<Ipv4Addr>, ScenarioError> {
    s.as_deref()
        .map(|s| {
            s.parse()
                .map_err(|_| ScenarioError::invalid(field, format!("{s:?} is not an IPv4 address")))
        })
        .transpose()
}

fn v6(field: &str, s: &Option<String>) -> Result<Option<Ipv6Addr>, ScenarioError> {
    s.as_deref()
        .map(|s| {
            s.parse()
                .map_err(|_| ScenarioError::invalid(field, format!("{s:?} is not an IPv6 address")))
        })
        .transpose()
}

fn probability(field: &str, p: Option<f64>) -> Result<Probability, ScenarioError> {
    match p {
        None => Ok(Probability::default()),
        Some(p) => Probability::new(p).ok_or_else(|| {
            ScenarioError::invalid(field, format!("{p} is out of range; allowed: 0-1"))
        }),
    }
}

fn millis(field: &str, ms: f64) -> Result<Duration, ScenarioError> {
    if !(0.0..=60_000.0).contains(&ms) {
        return Err(ScenarioError::invalid(
            field,
            format!("{ms} is out of range; allowed: 0-60000 ms"),
        ));
    }
    Ok(Duration::from_secs_f64(ms / 1e3))
}

fn one_of<T: Copy>(
    field: &str,
    s: &Option<String>,
    allowed: &[(&str, T)],
    default: T,
) -> Result<T, ScenarioError> {
    let Some(s) = s else { return Ok(default) };
    allowed
        .iter()
        .find(|(name, _)| *name == s)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let names: Vec<&str> = allowed.iter().map(|(n, _)| *n).collect();
            ScenarioError::invalid(field, format!("{s:?} is not one of: {}", names.join(", ")))
        })
}

fn link_params(
    field: &str,
    raw: RawLinkParams,
    defaults: LinkParams,
) -> Result<LinkParams, ScenarioError> {
    Ok(LinkParams {
        latency: match raw.latency_ms {
            Some(ms) => millis(&format!("{field}.latency_ms"), ms)?,
            None => defaults.latency,
        },
        jitter: match raw.jitter_ms {
            Some(ms) => millis(&format!("{field}.jitter_ms"), ms)?,
            None => defaults.jitter,
        },
        loss: match raw.loss {
            Some(_) => probability(&format!("{field}.loss"), raw.loss)?,
            None => defaults.loss,
        },
    })
}

impl Scenario {
    /// Parses and validates a scenario.
    pub fn from_toml(text: &str) -> Result<Scenario, ScenarioError> {
        let raw: RawScenario = toml::from_str(text)
            .map_err(|e| ScenarioError::Toml(e.to_string().trim_end().to_string()))?;
        Scenario::validate(raw)
    }

    /// Reads, parses and validates a scenario file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Scenario, ScenarioError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Scenario::from_toml(&text).map_err(|e| match e {
            ScenarioError::Toml(m) => ScenarioError::Toml(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    fn validate(raw: RawScenario) -> Result<Scenario, ScenarioError> {
        let source = match raw.source {
            None => Source::default(),
            Some(s) => {
                let routes = match &s.routes {
                    None => Source::default().routes,
                    Some(r) => r
                        .iter()
                        .enumerate()
                        .map(|(i, p)| {
                            p.parse().map_err(|m| {
                                ScenarioError::invalid(format!("source.routes[{i}]"), m)
                            })
                        })
                        .collect::<Result<_, _>>()?,
                };
                Source {
                    v4: v4("source.v4", &s.v4)?,
                    v6: v6("source.v6", &s.v6)?,
                    routes,
                }
            }
        };
        if source.v4.is_none() && source.v6.is_none() {
            return Err(ScenarioError::invalid(
                "source",
                "needs a v4 or a v6 address",
            ));
        }
        let defaults = link_params(
            "link_defaults",
            raw.link_defaults.unwrap_or_default(),
            LinkParams::default(),
        )?;

        let mut names: HashSet<String> = HashSet::from([SOURCE.to_string()]);
        let mut owned: Vec<(Prefix, String)> = Vec::new();
        let mut claim = |field: String, p: Prefix, owner: &str| -> Result<(), ScenarioError> {
            if let Some((_, other)) = owned
                .iter()
                .find(|(q, _)| q.contains(p.addr) || p.contains(q.addr))
            {
                return Err(ScenarioError::invalid(
                    field,
                    format!("{p} overlaps an address of {other:?}"),
                ));
            }
            owned.push((p, owner.to_string()));
            Ok(())
        };
        if let Some(a) = source.v4 {
            claim(
                "source.v4".into(),
                Prefix {
                    addr: a.into(),
                    len: 32,
                },
                SOURCE,
            )?;
        }
        if let Some(a) = source.v6 {
            claim(
                "source.v6".into(),
                Prefix {
                    addr: a.into(),
                    len: 128,
                },
                SOURCE,
            )?;
        }

        let mut routers = Vec::new();
        for (i, r) in raw.routers.into_iter().enumerate() {
            let f = |name: &str| format!("router[{i}].{name}");
            if r.name.is_empty() || !names.insert(r.name.clone()) {
                return Err(ScenarioError::invalid(
                    f("name"),
                    format!("{:?} is empty, reserved or used twice", r.name),
                ));
            }
            let router = Router {
                v4: v4(&f("v4"), &r.v4)?,
                v6: v6(&f("v6"), &r.v6)?,
                answer: one_of(
                    &f("answer"),
                    &r.answer,
                    &[("normal", Answer::Normal), ("silent", Answer::Silent)],
                    Answer::Normal,
                )?,
                reply_v4: v4(&f("reply_v4"), &r.reply_v4)?,
                reply_v6: v6(&f("reply_v6"), &r.reply_v6)?,
                ecmp: one_of(
                    &f("ecmp"),
                    &r.ecmp,
                    &[("flow", EcmpMode::Flow), ("packet", EcmpMode::Packet)],
                    EcmpMode::Flow,
                )?,
                mpls: {
                    let n = r.mpls.len();
                    r.mpls
                        .iter()
                        .enumerate()
                        .map(|(j, m)| {
                            if m.label >= 1 << 20 {
                                return Err(ScenarioError::invalid(
                                    format!("router[{i}].mpls[{j}].label"),
                                    format!("{} is out of range; allowed: 0-1048575", m.label),
                                ));
                            }
                            if m.tc > 7 {
                                return Err(ScenarioError::invalid(
                                    format!("router[{i}].mpls[{j}].tc"),
                                    format!("{} is out of range; allowed: 0-7", m.tc),
                                ));
                            }
                            Ok(MplsEntry {
                                label: m.label,
                                tc: m.tc,
                                bottom_of_stack: j + 1 == n,
                                ttl: m.ttl.unwrap_or(1),
                            })
                        })
                        .collect::<Result<_, _>>()?
                },
                icmp_rate: match &r.icmp_rate {
                    None => None,
                    Some(rate) => {
                        if !(rate.per_second > 0.0 && rate.per_second.is_finite()) {
                            return Err(ScenarioError::invalid(
                                f("icmp_rate.per_second"),
                                format!("{} must be a positive number", rate.per_second),
                            ));
                        }
                        if rate.burst == 0 {
                            return Err(ScenarioError::invalid(
                                f("icmp_rate.burst"),
                                "0 is out of range; allowed: 1 or more",
                            ));
                        }
                        Some(RateLimit {
                            per_second: rate.per_second,
                            burst: rate.burst,
                        })
                    }
                },
                quote_bytes: match r.quote_bytes {
                    None => None,
                    Some(n @ 1..=1232) => Some(n as usize),
                    Some(n) => {
                        return Err(ScenarioError::invalid(
                            f("quote_bytes"),
                            format!("{n} is out of range; allowed: 1-1232"),
                        ));
                    }
                },
                nat: match &r.nat {
                    None => None,
                    Some(n) => {
                        let nat = Nat {
                            v4: v4(&f("nat.v4"), &n.v4)?,
                            v6: v6(&f("nat.v6"), &n.v6)?,
                            quote: one_of(
                                &f("nat.quote"),
                                &n.quote,
                                &[("address", NatQuote::Address), ("full", NatQuote::Full)],
                                NatQuote::Address,
                            )?,
                        };
                        if nat.v4.is_none() && nat.v6.is_none() {
                            return Err(ScenarioError::invalid(
                                f("nat"),
                                "needs a v4 or a v6 outside address",
                            ));
                        }
                        Some(nat)
                    }
                },
                hostile: {
                    let h = r.hostile.unwrap_or_default();
                    Hostile {
                        corrupt: probability(&f("hostile.corrupt"), h.corrupt)?,
                        duplicate: probability(&f("hostile.duplicate"), h.duplicate)?,
                        unsolicited: probability(&f("hostile.unsolicited"), h.unsolicited)?,
                        cross_trace: probability(&f("hostile.cross_trace"), h.cross_trace)?,
                    }
                },
                name: r.name,
            };
            if router.v4.is_none() && router.v6.is_none() {
                return Err(ScenarioError::invalid(
                    f("v4"),
                    "a router needs a v4 or a v6 address",
                ));
            }
            for (field, a) in [
                ("v4", router.v4.map(IpAddr::V4)),
                ("v6", router.v6.map(IpAddr::V6)),
                ("reply_v4", router.reply_v4.map(IpAddr::V4)),
                ("reply_v6", router.reply_v6.map(IpAddr::V6)),
                ("nat.v4", router.nat.and_then(|n| n.v4).map(IpAddr::V4)),
                ("nat.v6", router.nat.and_then(|n| n.v6).map(IpAddr::V6)),
            ] {
                if let Some(a) = a {
                    let len = if a.is_ipv4() { 32 } else { 128 };
                    claim(f(field), Prefix { addr: a, len }, &router.name)?;
                }
            }
            routers.push(router);
        }

        let mut hosts = Vec::new();
        for (i, h) in raw.hosts.into_iter().enumerate() {
            let f = |name: &str| format!("host[{i}].{name}");
            if h.name.is_empty() || !names.insert(h.name.clone()) {
                return Err(ScenarioError::invalid(
                    f("name"),
                    format!("{:?} is empty, reserved or used twice", h.name),
                ));
            }
            if h.addresses.is_empty() {
                return Err(ScenarioError::invalid(
                    f("addresses"),
                    "a host needs at least one address or prefix",
                ));
            }
            let mut addresses = Vec::new();
            for (j, a) in h.addresses.iter().enumerate() {
                let field = format!("host[{i}].addresses[{j}]");
                let p: Prefix = a.parse().map_err(|m| ScenarioError::invalid(&field, m))?;
                claim(field, p, &h.name)?;
                addresses.push(p);
            }
            hosts.push(Host {
                behavior: one_of(
                    &f("behavior"),
                    &h.behavior,
                    &[
                        ("answer", HostBehavior::Answer),
                        ("drop", HostBehavior::Drop),
                        ("host-unreachable", HostBehavior::HostUnreachable),
                        ("net-unreachable", HostBehavior::NetUnreachable),
                        ("admin-prohibited", HostBehavior::AdminProhibited),
                    ],
                    HostBehavior::Answer,
                )?,
                tcp_open: h.tcp_open,
                addresses,
                name: h.name,
            });
        }

        let mut links = Vec::new();
        let mut pairs = HashSet::new();
        for (i, l) in raw.links.into_iter().enumerate() {
            let field = format!("link[{i}]");
            let [a, b] = <[String; 2]>::try_from(l.between.clone()).map_err(|v| {
                ScenarioError::invalid(
                    format!("{field}.between"),
                    format!("needs exactly 2 node names, got {}", v.len()),
                )
            })?;
            for n in [&a, &b] {
                if !names.contains(n) {
                    return Err(ScenarioError::invalid(
                        format!("{field}.between"),
                        format!("{n:?} is not a router, a host or \"source\""),
                    ));
                }
            }
            if a == b {
                return Err(ScenarioError::invalid(
                    format!("{field}.between"),
                    format!("links {a:?} to itself"),
                ));
            }
            let key = if a < b {
                (a.clone(), b.clone())
            } else {
                (b.clone(), a.clone())
            };
            if !pairs.insert(key) {
                return Err(ScenarioError::invalid(
                    format!("{field}.between"),
                    format!("{a:?} and {b:?} are already linked"),
                ));
            }
            let cost = match l.cost {
                None => 1,
                Some(c @ 1..=1_000_000) => c,
                Some(c) => {
                    return Err(ScenarioError::invalid(
                        format!("{field}.cost"),
                        format!("{c} is out of range; allowed: 1-1000000"),
                    ));
                }
            };
            let params = link_params(
                &field,
                RawLinkParams {
                    latency_ms: l.latency_ms,
                    jitter_ms: l.jitter_ms,
                    loss: l.loss,
                },
                defaults,
            )?;
            links.push(Link { a, b, params, cost });
        }

        Ok(Scenario {
            seed: raw.seed.unwrap_or(1),
            source,
            routers,
            hosts,
            links,
        })
    }

    /// Every address a host answers for, in order, up to `limit` (prefixes expanded).
    pub fn host_addresses(&self, host: &str, v6: bool, limit: usize) -> Vec<IpAddr> {
        let mut out = Vec::new();
        for h in self.hosts.iter().filter(|h| h.name == host) {
            for p in h.addresses.iter().filter(|p| p.addr.is_ipv6() == v6) {
                let mut n = 0;
                while out.len() < limit {
                    match p.nth(n) {
                        Some(a) => out.push(a),
                        None => break,
                    }
                    n += 1;
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Scenario::from_toml(text).unwrap_err().to_string()
    }

    const BASE: &str = r#"
        [[router]]
        name = "r1"
        v4 = "198.18.1.1"
        [[host]]
        name = "dst"
        addresses = ["198.18.9.0/24"]
        [[link]]
        between = ["source", "r1"]
        [[link]]
        between = ["r1", "dst"]
    "#;

    #[test]
    fn defaults() {
        let s = Scenario::from_toml(BASE).unwrap();
        assert_eq!(s.seed, 1);
        assert_eq!(s.source, Source::default());
        assert_eq!(s.links[0].params, LinkParams::default());
        assert_eq!(s.links[0].cost, 1);
        assert_eq!(s.routers[0].ecmp, EcmpMode::Flow);
        assert_eq!(s.hosts[0].behavior, HostBehavior::Answer);
        assert_eq!(
            s.host_addresses("dst", false, 3),
            ["198.18.9.0", "198.18.9.1", "198.18.9.2"].map(|a| a.parse::<IpAddr>().unwrap())
        );
    }

    #[test]
    fn link_defaults_apply_and_are_overridden() {
        let s = Scenario::from_toml(&format!(
            "[link_defaults]\nlatency_ms = 2.5\nloss = 0.5\n{BASE}\n[[link]]\nbetween = [\"source\", \"dst\"]\nlatency_ms = 1\ncost = 9"
        ))
        .unwrap();
        assert_eq!(s.links[0].params.latency, Duration::from_micros(2500));
        assert_eq!(s.links[0].params.loss.get(), 0.5);
        assert_eq!(s.links[2].params.latency, Duration::from_millis(1));
        assert_eq!(s.links[2].cost, 9);
    }

    #[test]
    fn mpls_stack_gets_bottom_of_stack_on_the_last_entry() {
        let s = Scenario::from_toml(
            r#"[[router]]
            name = "r1"
            v6 = "2001:2:0:1::1"
            mpls = [{ label = 16 }, { label = 24001, tc = 5, ttl = 3 }]"#,
        )
        .unwrap();
        let m = &s.routers[0].mpls;
        assert_eq!((m[0].label, m[0].bottom_of_stack, m[0].ttl), (16, false, 1));
        assert_eq!(
            (m[1].label, m[1].tc, m[1].bottom_of_stack, m[1].ttl),
            (24001, 5, true, 3)
        );
    }

    #[test]
    fn errors_name_the_field() {
        let r = |extra: &str| format!("[[router]]\nname = \"r1\"\nv4 = \"198.18.1.1\"\n{extra}");
        let cases = [
            (
                r("ecmp = \"random\""),
                r#"router[0].ecmp: "random" is not one of: flow, packet"#,
            ),
            (
                r("answer = \"loud\""),
                r#"router[0].answer: "loud" is not one of: normal, silent"#,
            ),
            (
                r("reply_v6 = \"198.18.1.2\""),
                r#"router[0].reply_v6: "198.18.1.2" is not an IPv6 address"#,
            ),
            (
                r("mpls = [{ label = 2000000 }]"),
                "router[0].mpls[0].label: 2000000 is out of range; allowed: 0-1048575",
            ),
            (
                r("icmp_rate = { per_second = 0.0, burst = 1 }"),
                "router[0].icmp_rate.per_second: 0 must be a positive number",
            ),
            (
                r("icmp_rate = { per_second = 1.0, burst = 0 }"),
                "router[0].icmp_rate.burst: 0 is out of range; allowed: 1 or more",
            ),
            (
                r("quote_bytes = 0"),
                "router[0].quote_bytes: 0 is out of range; allowed: 1-1232",
            ),
            (
                r("hostile = { duplicate = 1.5 }"),
                "router[0].hostile.duplicate: 1.5 is out of range; allowed: 0-1",
            ),
            (
                r("nat = { quote = \"full\" }"),
                "router[0].nat: needs a v4 or a v6 outside address",
            ),
            (
                "[[router]]\nname = \"source\"\nv4 = \"198.18.1.1\"".into(),
                r#"router[0].name: "source" is empty, reserved or used twice"#,
            ),
            (
                "[[router]]\nname = \"r\"".into(),
                "router[0].v4: a router needs a v4 or a v6 address",
            ),
            (
                "[[host]]\nname = \"h\"\naddresses = [\"198.18.0.0/16\"]".into(),
                r#"host[0].addresses[0]: 198.18.0.0/16 overlaps an address of "source""#,
            ),
            (
                "[[host]]\nname = \"h\"\naddresses = [\"198.19.0.0/33\"]".into(),
                r#"host[0].addresses[0]: "198.19.0.0/33": prefix length must be 0-32"#,
            ),
            (
                "[[host]]\nname = \"h\"\naddresses = [\"198.19.0.1\"]\nbehavior = \"sulk\"".into(),
                r#"host[0].behavior: "sulk" is not one of: answer, drop, host-unreachable, net-unreachable, admin-prohibited"#,
            ),
            (
                format!("{BASE}\n[[link]]\nbetween = [\"r1\", \"nowhere\"]"),
                r#"link[2].between: "nowhere" is not a router, a host or "source""#,
            ),
            (
                format!("{BASE}\n[[link]]\nbetween = [\"dst\", \"r1\"]"),
                r#"link[2].between: "dst" and "r1" are already linked"#,
            ),
            (
                format!("{BASE}\n[[link]]\nbetween = [\"r1\"]"),
                "link[2].between: needs exactly 2 node names, got 1",
            ),
            (
                format!("{BASE}\n[[link]]\nbetween = [\"source\", \"dst\"]\njitter_ms = -1"),
                "link[2].jitter_ms: -1 is out of range; allowed: 0-60000 ms",
            ),
            (
                format!("{BASE}\n[[link]]\nbetween = [\"source\", \"dst\"]\ncost = 0"),
                "link[2].cost: 0 is out of range; allowed: 1-1000000",
            ),
            (
                "[source]\nv4 = \"2001:2::1\"".into(),
                r#"source.v4: "2001:2::1" is not an IPv4 address"#,
            ),
            (
                "[source]\nroutes = [\"x\"]".into(),
                r#"source.routes[0]: "x" is not an address or prefix"#,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(err(&text), want, "for:\n{text}");
        }
    }

    #[test]
    fn toml_errors_name_the_field_and_line() {
        let e = err("[[router]]\nname = \"r1\"\nv4 = \"198.18.1.1\"\nlatency = 3");
        assert!(e.contains("unknown field `latency`"), "{e}");
        assert!(e.contains("line 4"), "{e}");
        let e = err("seed = \"x\"");
        assert!(e.contains("seed") || e.contains("line 1"), "{e}");
    }

    #[test]
    fn prefixes() {
        let p: Prefix = "198.19.1.77/22".parse().unwrap();
        assert_eq!(p.to_string(), "198.19.0.0/22");
        assert!(p.contains("198.19.3.255".parse().unwrap()));
        assert!(!p.contains("198.19.4.0".parse().unwrap()));
        assert_eq!(p.nth(1024), None);
        let all: Prefix = "::/0".parse().unwrap();
        assert!(all.contains("2001:2::1".parse().unwrap()));
        assert!(!all.contains("198.18.0.1".parse().unwrap()));
    }
}
