//! Colos: the places traceroutes run from, and the dispatcher that runs a request's
//! (target × colo) traces at once and assembles the API's `result` array.
//!
//! A colo is this machine ([`LocalColo`], in process, over one [`Prober`]: the embedded
//! default), or agents reached through NATS ([`nats`]: `edgetrace agent` processes announce
//! themselves, the server's [`Remote`] keeps the registry and sends each (target × colo) job
//! to the colo's queue group).
//!
//! A colo built with [`LocalColo::with_enricher`] fills `name` (reverse DNS) and `asn` of every
//! node and of the target summary: the target's lookup starts with the trace, each hop's the
//! moment it answers (on the probing thread), and the trace waits for the names at most one
//! lookup timeout after the last of them started.
//!
//! ```no_run
//! use edgetrace_fleet::{Fleet, LocalColo};
//! use edgetrace_net::{Prober, Sockets, drop_privileges};
//! use edgetrace_probe::{Options, report::Colo};
//!
//! # async fn demo() -> anyhow::Result<()> {
//! let sockets = Sockets::open().ok();
//! drop_privileges()?;
//! let colo = Colo { name: "local".into(), city: String::new() };
//! let fleet = Fleet::new(vec![LocalColo::new(colo, Prober::start(sockets)?)]);
//! let result = fleet
//!     .traceroute(&["127.0.0.1".to_string()], None, Options::default())
//!     .await?;
//! println!("{}", result[0].colos[0].hops.len());
//! # Ok(()) }
//! ```

use edgetrace_enrich::Enricher;
use edgetrace_net::{NetError, Prober, ReplyObserver, Sockets, TraceRequest};
use edgetrace_probe::Options;
use edgetrace_probe::report::{Colo, ColoError, ColoTrace, HopResult, Traceroute, merge_labelled};
pub mod nats;
pub use nats::{ColoStatus, Remote};

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// Which address to use when a hostname has both IPv4 and IPv6 addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Family {
    #[default]
    PreferV4,
    PreferV6,
}

/// A colo's trace of one target, and what went wrong in words a person can act on (the API
/// object only carries the documented code).
#[derive(Debug, Clone)]
pub struct ColoRun {
    pub trace: ColoTrace,
    pub problems: Vec<String>,
}

/// This machine as a colo.
pub struct LocalColo {
    colo: Colo,
    prober: Prober,
    enricher: Option<Enricher>,
}

/// How long a resolution at the colo may take before the target counts as unresolvable.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

impl LocalColo {
    /// A colo whose traces are not enriched (`name` is the IP, `asn` is empty).
    pub fn new(colo: Colo, prober: Prober) -> LocalColo {
        LocalColo {
            colo,
            prober,
            enricher: None,
        }
    }

    /// A colo whose traces are enriched: starts the probing thread over `sockets` (see
    /// [`Prober::start`]) with an observer that starts the reverse lookup of every address
    /// the moment it answers, and fills `name` and `asn` before each trace is returned.
    ///
    /// The enricher's resolver must run on a runtime that is driven while traces are awaited
    /// (the caller's, or the resolver's own).
    pub fn with_enricher(
        colo: Colo,
        sockets: Option<Sockets>,
        enricher: Enricher,
    ) -> Result<LocalColo, NetError> {
        let observer: Option<ReplyObserver> = enricher.resolver.as_ref().map(|_| {
            let e = enricher.clone();
            Arc::new(move |ip| e.prefetch(ip)) as ReplyObserver
        });
        Ok(LocalColo {
            colo,
            prober: Prober::start_with(sockets, observer)?,
            enricher: Some(enricher),
        })
    }

    /// The enricher of this colo's traces, if any.
    pub fn enricher(&self) -> Option<&Enricher> {
        self.enricher.as_ref()
    }

    pub fn colo(&self) -> &Colo {
        &self.colo
    }

    /// Resolves `target` here and traces it with every protocol the packet type needs.
    pub async fn trace(&self, target: &str, options: Options, family: Family) -> ColoRun {
        match resolve(target, family).await {
            Ok(ip) => self.trace_ip(ip, options).await,
            Err(problem) => ColoRun {
                trace: ColoTrace::failed(self.colo.clone(), target, ColoError::Target),
                problems: vec![problem],
            },
        }
    }

    /// Traces an address with every protocol the packet type needs (GRE and ICMP at once for
    /// `gre+icmp`, their nodes labelled with the trace they came from).
    pub async fn trace_ip(&self, target: IpAddr, options: Options) -> ColoRun {
        if let Some(e) = &self.enricher {
            e.prefetch(target);
        }
        let protocols = options.packet_type.protocols();
        let outcomes = futures::future::join_all(protocols.iter().map(|&protocol| async move {
            let request = TraceRequest {
                protocol,
                target,
                options,
            };
            match self.prober.trace(request) {
                Ok(rx) => rx.await.unwrap_or(Err(NetError::Stopped)),
                Err(e) => Err(e),
            }
        }))
        .await;
        let mut problems = Vec::new();
        let mut error = None;
        let mut duration = Duration::ZERO;
        let mut parts: Vec<(&str, Vec<HopResult>)> = Vec::new();
        for (protocol, outcome) in protocols.iter().zip(outcomes) {
            match outcome {
                Ok(o) if o.send_error.is_some() && o.hops.iter().all(|h| h.nodes.is_empty()) => {
                    problems.push(format!(
                        "{target}: cannot send {} probes: {}",
                        protocol.as_str(),
                        o.send_error.unwrap_or_default()
                    ));
                    error = Some(ColoError::Send);
                }
                Ok(o) => {
                    duration = duration.max(o.duration);
                    parts.push((protocol.as_str(), o.hops));
                }
                Err(e) => {
                    problems.push(format!("{target}: {e}"));
                    error = Some(colo_error(&e));
                }
            }
        }
        let colo = self.colo.clone();
        let mut trace = match error {
            Some(e) => ColoTrace::failed(colo, &target.to_string(), e),
            None if parts.len() > 1 => {
                let parts: Vec<(&str, &[HopResult])> =
                    parts.iter().map(|(n, h)| (*n, h.as_slice())).collect();
                ColoTrace::from_hops(colo, target, &merge_labelled(&parts), duration)
            }
            None => ColoTrace::from_hops(
                colo,
                target,
                &parts.pop().map(|p| p.1).unwrap_or_default(),
                duration,
            ),
        };
        if let Some(e) = &self.enricher {
            e.enrich(&mut trace).await;
        }
        ColoRun { trace, problems }
    }
}

/// The documented code for an engine error.
pub fn colo_error(e: &NetError) -> ColoError {
    match e {
        NetError::NotPermitted { .. } => ColoError::NotPermitted,
        NetError::NoRoute { .. } => ColoError::Send,
        NetError::FlowBusy { .. } => ColoError::Target,
        NetError::Stopped | NetError::Io { .. } => ColoError::Unavailable,
    }
}

/// Checks that `target` looks like an address or a hostname (no resolution).
pub fn check_target(target: &str) -> Result<(), String> {
    if parse_ip(target).is_some() {
        return Ok(());
    }
    let valid_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let name = target.strip_suffix('.').unwrap_or(target);
    if name.is_empty() || name.len() > 253 || !name.split('.').all(valid_label) {
        return Err(format!(
            "target {target:?}: not an IPv4 address, an IPv6 address or a hostname"
        ));
    }
    Ok(())
}

fn parse_ip(target: &str) -> Option<IpAddr> {
    target
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(target)
        .parse()
        .ok()
}

/// Resolves a target to one address; `family` picks when a name has both.
pub async fn resolve(target: &str, family: Family) -> Result<IpAddr, String> {
    if let Some(ip) = parse_ip(target) {
        return Ok(ip);
    }
    check_target(target)?;
    let lookup = tokio::net::lookup_host((target, 0));
    let addrs: Vec<IpAddr> = match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
        Ok(Ok(addrs)) => addrs.map(|a| a.ip()).collect(),
        Ok(Err(e)) => return Err(format!("target {target:?}: cannot resolve: {e}")),
        Err(_) => {
            return Err(format!(
                "target {target:?}: no answer from the resolver in {} s",
                RESOLVE_TIMEOUT.as_secs()
            ));
        }
    };
    let want_v6 = family == Family::PreferV6;
    addrs
        .iter()
        .find(|a| a.is_ipv6() == want_v6)
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| format!("target {target:?}: no addresses"))
}

/// Names in a request's `colos` that match no colo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownColos {
    pub unknown: Vec<String>,
    pub known: Vec<String>,
}

impl std::fmt::Display for UnknownColos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "unknown colo(s): {}; known: {}",
            self.unknown.join(", "),
            self.known.join(", ")
        )
    }
}

impl std::error::Error for UnknownColos {}

/// Whether a requested colo name designates `colo`: the same name, or its site code (`den`
/// for `den01`), case-insensitively.
fn designates(requested: &str, colo: &str) -> bool {
    let (r, c) = (requested.to_ascii_lowercase(), colo.to_ascii_lowercase());
    r == c
        || c.strip_prefix(&r)
            .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
}

/// Why a request's colos cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectError {
    /// Names in `colos` that match no colo.
    Unknown(UnknownColos),
    /// No colo can be reached now (NATS is down, or no agent is live); the message says which.
    Unavailable(String),
}

impl std::fmt::Display for SelectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SelectError::Unknown(u) => u.fmt(f),
            SelectError::Unavailable(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for SelectError {}

/// A colo a request runs on.
pub enum Selected<'a> {
    /// In this process.
    Local(&'a LocalColo),
    /// Agents reached over NATS.
    Remote(&'a Remote, Colo),
}

impl Selected<'_> {
    pub fn colo(&self) -> &Colo {
        match self {
            Selected::Local(l) => &l.colo,
            Selected::Remote(_, c) => c,
        }
    }

    async fn trace(&self, target: &str, options: Options) -> ColoRun {
        match self {
            Selected::Local(l) => l.trace(target, options, Family::PreferV4).await,
            Selected::Remote(r, c) => r.trace(c, target, options).await,
        }
    }
}

/// A random identifier (32 hex characters) for jobs and agents.
pub(crate) fn job_id() -> String {
    use rand::Rng;
    let bytes: [u8; 16] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every colo this server can run traces from: the local colo(s) in process, or, with
/// [`Fleet::with_remote`], the colos whose agents announce themselves over NATS.
pub struct Fleet {
    colos: Vec<LocalColo>,
    remote: Option<Remote>,
}

impl Fleet {
    /// Colos in this process (the embedded default: this machine).
    pub fn new(colos: Vec<LocalColo>) -> Fleet {
        Fleet {
            colos,
            remote: None,
        }
    }

    /// The colos of `remote`'s agents; `local` only serves [`Fleet::local`] (the Datadog route).
    pub fn with_remote(local: Vec<LocalColo>, remote: Remote) -> Fleet {
        Fleet {
            colos: local,
            remote: Some(remote),
        }
    }

    /// The colo that is this machine (the first one), for requests that trace from here.
    pub fn local(&self) -> Option<&LocalColo> {
        self.colos.first()
    }

    /// The colos a request without `colos` runs on.
    pub fn colos(&self) -> Vec<Colo> {
        self.status().into_iter().map(|s| s.colo).collect()
    }

    /// The live colos and how many agents serve each (1 for a colo in this process).
    pub fn status(&self) -> Vec<ColoStatus> {
        match &self.remote {
            Some(r) => r.status().into_iter().filter(|s| s.agents > 0).collect(),
            None => self
                .colos
                .iter()
                .map(|c| ColoStatus {
                    colo: c.colo.clone(),
                    agents: 1,
                })
                .collect(),
        }
    }

    /// The colos a request names (all live ones when `None`), in the fleet's order. A remote
    /// colo seen since the server started stays selectable when its agents are gone: its
    /// traces then answer Code 3.
    pub fn select(&self, names: Option<&[String]>) -> Result<Vec<Selected<'_>>, SelectError> {
        let known: Vec<Selected<'_>> = match &self.remote {
            None => self.colos.iter().map(Selected::Local).collect(),
            Some(r) => {
                if let Some(why) = r.unavailable() {
                    return Err(SelectError::Unavailable(why));
                }
                let status = r.status();
                if names.is_none() && !status.iter().any(|s| s.agents > 0) {
                    return Err(SelectError::Unavailable(
                        "no colo is live: no agent has announced itself on NATS".into(),
                    ));
                }
                status
                    .into_iter()
                    .filter(|s| names.is_some() || s.agents > 0)
                    .map(|s| Selected::Remote(r, s.colo))
                    .collect()
            }
        };
        let Some(names) = names else {
            return Ok(known);
        };
        let unknown: Vec<String> = names
            .iter()
            .filter(|n| !known.iter().any(|c| designates(n, &c.colo().name)))
            .cloned()
            .collect();
        if !unknown.is_empty() {
            return Err(SelectError::Unknown(UnknownColos {
                unknown,
                known: known.iter().map(|c| c.colo().name.clone()).collect(),
            }));
        }
        Ok(known
            .into_iter()
            .filter(|c| names.iter().any(|n| designates(n, &c.colo().name)))
            .collect())
    }

    /// Runs every (target × colo) trace at once and returns one `Traceroute` per target, in the
    /// request's order. A colo that does not finish within [`deadline`] (plus
    /// [`nats::DISPATCH_MARGIN`] for agents) answers Code 3.
    pub async fn traceroute(
        &self,
        targets: &[String],
        colos: Option<&[String]>,
        options: Options,
    ) -> Result<Vec<Traceroute>, SelectError> {
        let selected = self.select(colos)?;
        let limit = deadline(&options) + nats::DISPATCH_MARGIN;
        let per_target = targets.iter().map(|target| {
            let selected = &selected;
            async move {
                let runs = futures::future::join_all(selected.iter().map(|colo| async move {
                    match tokio::time::timeout(limit, colo.trace(target, options)).await {
                        Ok(run) => run.trace,
                        Err(_) => {
                            ColoTrace::failed(colo.colo().clone(), target, ColoError::Unavailable)
                        }
                    }
                }))
                .await;
                Traceroute {
                    target: target.clone(),
                    colos: runs,
                }
            }
        });
        Ok(futures::future::join_all(per_target).await)
    }
}

/// The longest a colo may take for one target with these options before it counts as not
/// answering (Code 3): every TTL waiting the full wait time, plus resolution and a margin.
pub fn deadline(options: &Options) -> Duration {
    options.wait_time.duration() * u32::from(options.max_ttl.get()) + RESOLVE_TIMEOUT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colo_names_match_by_name_or_site_code() {
        assert!(designates("den01", "den01"));
        assert!(designates("DEN", "den01"));
        assert!(designates("den", "den"));
        assert!(!designates("de", "den01"));
        assert!(!designates("den0", "den01x"));
        assert!(!designates("sin", "den01"));
    }

    #[test]
    fn targets_are_checked_before_resolution() {
        for ok in [
            "198.18.0.1",
            "2001:db8::1",
            "[2001:db8::1]",
            "example.com",
            "a-b.c_d.",
            "localhost",
        ] {
            assert_eq!(check_target(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "a b",
            "http://x",
            "-a.com",
            "a..b",
            &"x".repeat(64),
            "ex/ample",
        ] {
            assert!(check_target(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn unknown_colos_list_the_known_ones() {
        let prober = Prober::start(None).unwrap();
        let colo = Colo {
            name: "sin01".into(),
            city: "Singapore, SG".into(),
        };
        let fleet = Fleet::new(vec![LocalColo::new(colo, prober)]);
        let Err(SelectError::Unknown(err)) = fleet
            .traceroute(
                &["127.0.0.1".into()],
                Some(&["sin".into(), "den".into()]),
                Options::default(),
            )
            .await
        else {
            panic!("sin and den are not both known");
        };
        assert_eq!(err.unknown, ["den"]);
        assert_eq!(err.known, ["sin01"]);
        assert_eq!(fleet.select(Some(&["SIN".into()])).unwrap().len(), 1);
    }

    #[tokio::test]
    async fn an_unresolvable_target_is_code_1_at_the_colo() {
        let prober = Prober::start(None).unwrap();
        let colo = LocalColo::new(Colo::default(), prober);
        // Refused before any resolver is asked, so no query leaves the machine.
        let run = colo
            .trace("no such host", Options::default(), Family::PreferV4)
            .await;
        assert_eq!(run.trace.error, "Could not gather traceroute data: Code 1");
        assert_eq!(run.problems.len(), 1);
    }

    /// An enricher over the test DNS server and an ip2asn file covering loopback.
    fn loopback_enricher(
        dns: &edgetrace_enrich::testing::DnsServer,
        timeout: Duration,
        dir: &tempfile::TempDir,
    ) -> Enricher {
        use edgetrace_enrich::{AsnDb, DnsOptions, Resolver};
        let tsv = dir.path().join("ip2asn-combined.tsv");
        std::fs::write(
            &tsv,
            "127.0.0.0\t127.255.255.255\t64500\tZZ\tTEST-LOOPBACK\n\
             ::1\t::1\t64501\tZZ\tTEST-LOOPBACK6\n",
        )
        .unwrap();
        Enricher {
            resolver: Some(
                Resolver::new(DnsOptions {
                    server: Some(dns.addr()),
                    timeout,
                    ..DnsOptions::default()
                })
                .unwrap(),
            ),
            asn: Some(AsnDb::open(&tsv).unwrap()),
        }
    }

    /// Loopback has no PTR to ask for: the resolver names it `localhost` itself (RFC 6761),
    /// so a DNS server that never answers is neither asked nor waited for. Names from a real
    /// server are checked on namespace paths (crates/cli/tests/enrich.rs).
    #[tokio::test]
    async fn enriched_colo_fills_name_and_asn_of_every_node_and_the_target() {
        use edgetrace_enrich::testing::{DnsServer, Mode};
        let dns = DnsServer::loopback(&[], 300, Mode::Drop).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let timeout = Duration::from_millis(500);
        let enricher = loopback_enricher(&dns, timeout, &dir);
        let sockets = Some(edgetrace_net::Sockets::open().unwrap());
        let colo = LocalColo::with_enricher(Colo::default(), sockets, enricher).unwrap();
        assert!(colo.enricher().is_some());
        for (ip, asn) in [("127.0.0.1", "AS64500"), ("::1", "AS64501")] {
            let started = std::time::Instant::now();
            let run = colo.trace_ip(ip.parse().unwrap(), Options::default()).await;
            let took = started.elapsed();
            let t = &run.trace;
            assert_eq!(t.error, "", "{t:?}");
            let node = &t.hops[0].nodes[0];
            assert_eq!(
                (node.ip.as_str(), node.name.as_str(), node.asn.as_str()),
                (ip, "localhost", asn)
            );
            assert_eq!(t.target_summary.name, "localhost");
            assert_eq!(t.target_summary.asn, asn);
            assert!(took < timeout, "{ip}: {took:?}");
        }
        assert_eq!(dns.total(), 0);
    }

    #[tokio::test]
    async fn loopback_traces_through_the_fleet() {
        // Raw sockets (the tests run as root); ping sockets are often not permitted.
        let prober = Prober::start(Some(edgetrace_net::Sockets::open().unwrap())).unwrap();
        let colo = Colo {
            name: "local".into(),
            city: String::new(),
        };
        let fleet = Fleet::new(vec![LocalColo::new(colo, prober)]);
        let result = fleet
            .traceroute(
                &["127.0.0.1".into(), "127.0.0.2".into()],
                None,
                Options::default(),
            )
            .await
            .unwrap();
        assert_eq!(result.len(), 2);
        for (r, ip) in result.iter().zip(["127.0.0.1", "127.0.0.2"]) {
            assert_eq!(r.target, ip);
            let c = &r.colos[0];
            assert_eq!(c.error, "", "{c:?}");
            assert_eq!(c.target_summary.ip, ip);
            assert_eq!(c.hops[0].nodes[0].ip, ip);
        }
    }
}
