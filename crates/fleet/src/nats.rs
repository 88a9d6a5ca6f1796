//! Colos reached over NATS: the wire protocol, the server's registry and dispatcher
//! ([`Remote`]), and the agent's loop ([`run_agent`]).
//!
//! Subjects (protocol version 1, every payload JSON):
//!
//! | subject | from → to | payload |
//! |---|---|---|
//! | `edgetrace.v1.announce` | agent → servers, on connect and every heartbeat | [`Announce`] |
//! | `edgetrace.v1.leave` | agent → servers, on shutdown | [`Announce`] |
//! | `edgetrace.v1.discover` | server → agents, on connect (answer: an announce) | empty |
//! | `edgetrace.v1.refused.{agent}` | server → one agent older than the minimum | [`Refusal`] |
//! | `edgetrace.v1.job.{colo}` | server → the colo's agents (queue group `colo.{colo}`), request/reply | [`Job`] → [`JobReply`] |
//!
//! A colo's agents share one queue group, so each job runs on exactly one of them. An agent
//! only subscribes to its own colo's subject and still checks every job (shape, colo, target,
//! options, deadline) before it runs anything; a bad job is answered with
//! [`JobReply::Rejected`] naming the field, and logged.

use crate::{ColoRun, Family, LocalColo, check_target, deadline};
use async_nats::{Client, ConnectOptions, Event, Request, RequestErrorKind};
use bytes::Bytes;
use edgetrace_probe::report::{Colo, ColoError, ColoTrace};
use edgetrace_probe::{
    Confidence, FlowCount, MaxTtl, Options, PacketType, PacketsPerTtl, Paths, WaitTime,
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

pub use async_nats;

pub const ANNOUNCE: &str = "edgetrace.v1.announce";
pub const LEAVE: &str = "edgetrace.v1.leave";
pub const DISCOVER: &str = "edgetrace.v1.discover";

/// How often an agent announces itself.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// Added to [`deadline`] on the server: the agent answers Code 3 itself at the deadline, so the
/// server only decides alone when the agent is gone.
pub const DISPATCH_MARGIN: Duration = Duration::from_secs(1);
/// The largest deadline a job may carry.
const MAX_DEADLINE_MS: u64 = 10 * 60 * 1000;
/// Jobs one agent runs at once; more wait for a slot.
const MAX_CONCURRENT_JOBS: usize = 256;

/// The subject of a colo's jobs.
pub fn job_subject(colo: &str) -> String {
    format!("edgetrace.v1.job.{colo}")
}

/// The queue group a colo's agents share.
pub fn queue_group(colo: &str) -> String {
    format!("colo.{colo}")
}

/// Where the server tells one agent that it is refused.
pub fn refused_subject(agent: &str) -> String {
    format!("edgetrace.v1.refused.{agent}")
}

/// Why something failed on the NATS side.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    #[error("{flag} {value:?}: {message}")]
    Invalid {
        flag: &'static str,
        value: String,
        message: String,
    },
    #[error("NATS {url}: {message}")]
    Nats { url: String, message: String },
    #[error(
        "refused by the server: this agent's version {version} is older than the minimum {minimum}"
    )]
    Refused { version: String, minimum: String },
}

/// Checks a colo name: 1-32 characters of `a-z`, `0-9`, `-`, `_` (it is a NATS subject token).
pub fn check_colo_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 32
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return Err("must be 1-32 characters of a-z, 0-9, '-' and '_' (e.g. sin01)".into());
    }
    Ok(())
}

/// A version `MAJOR.MINOR.PATCH`, compared numerically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u64, pub u64, pub u64);

impl std::str::FromStr for Version {
    type Err = String;
    fn from_str(s: &str) -> Result<Version, String> {
        let core = s.split(['-', '+']).next().unwrap_or("");
        let parts: Vec<Option<u64>> = core.split('.').map(|p| p.parse().ok()).collect();
        match parts[..] {
            [Some(a), Some(b), Some(c)] => Ok(Version(a, b, c)),
            _ => Err(format!("{s:?} is not a version MAJOR.MINOR.PATCH")),
        }
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// What an agent says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Announce {
    /// Unique per agent process.
    pub agent: String,
    pub colo: String,
    pub city: String,
    pub version: String,
    /// How often this agent announces itself.
    pub heartbeat_ms: u64,
}

/// The server's answer to an agent older than its minimum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub minimum: String,
    pub version: String,
}

/// One (target × colo) traceroute, as sent to a colo's agents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    pub id: String,
    pub colo: String,
    pub target: String,
    pub options: JobOptions,
    /// The agent answers Code 3 itself once this has passed since it got the job.
    pub deadline_ms: u64,
}

/// [`Options`] on the wire, checked again by the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobOptions {
    pub packet_type: String,
    pub port: u16,
    pub max_ttl: u64,
    pub packets_per_ttl: u64,
    pub wait_time: u64,
    /// Flows per trace (1-64); absent: 1.
    #[serde(default = "one")]
    pub paths: u64,
    /// When present, `paths` is ignored and the MDA adds flows until it is this confident
    /// (50-99 %) that every next hop was seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mda_confidence: Option<u64>,
}

fn one() -> u64 {
    1
}

impl From<&Options> for JobOptions {
    fn from(o: &Options) -> JobOptions {
        let (paths, mda_confidence) = match o.paths {
            Paths::Flows(n) => (n.get().into(), None),
            Paths::Auto(c) => (1, Some(c.get().into())),
        };
        JobOptions {
            paths,
            mda_confidence,
            packet_type: o.packet_type.as_str().to_string(),
            port: o.port,
            max_ttl: o.max_ttl.get().into(),
            packets_per_ttl: o.packets_per_ttl.get().into(),
            wait_time: o.wait_time.get().into(),
        }
    }
}

impl JobOptions {
    /// The engine's options, or the first field out of range (`options.max_ttl: 99 is out of
    /// range; allowed: 1-64`).
    // Options may gain fields this protocol version does not carry; they keep their defaults.
    #[allow(clippy::needless_update)]
    pub fn to_options(&self) -> Result<Options, String> {
        let e = |e: edgetrace_probe::OptionsError| format!("options.{e}");
        Ok(Options {
            packet_type: self.packet_type.parse::<PacketType>().map_err(e)?,
            port: self.port,
            max_ttl: MaxTtl::new(self.max_ttl).map_err(e)?,
            packets_per_ttl: PacketsPerTtl::new(self.packets_per_ttl).map_err(e)?,
            wait_time: WaitTime::new(self.wait_time).map_err(e)?,
            paths: match self.mda_confidence {
                Some(c) => Paths::Auto(Confidence::new(c).map_err(e)?),
                None => Paths::Flows(FlowCount::new(self.paths).map_err(e)?),
            },
            ..Options::default()
        })
    }
}

/// An agent's answer to a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobReply {
    Done {
        trace: Box<ColoTrace>,
        problems: Vec<String>,
    },
    /// The job was not run; `field` names what was wrong with it.
    Rejected { field: String, error: String },
}

/// A job checked by an agent: what it will run.
#[derive(Debug, Clone)]
pub struct ValidJob {
    pub id: String,
    pub target: String,
    pub options: Options,
    pub deadline: Duration,
}

/// Checks a job's bytes for the colo `colo`; `Err((field, message))` names the problem.
pub fn validate_job(payload: &[u8], colo: &str) -> Result<ValidJob, (String, String)> {
    let job: Job = serde_json::from_slice(payload)
        .map_err(|e| ("job".to_string(), format!("not a job: {e}")))?;
    let bad = |field: &str, message: String| (field.to_string(), message);
    if job.id.is_empty() || job.id.len() > 64 || !job.id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad(
            "id",
            format!("{:?}: 1-64 printable characters", job.id),
        ));
    }
    if job.colo != colo {
        return Err(bad(
            "colo",
            format!("job for colo {:?} sent to colo {colo:?}", job.colo),
        ));
    }
    check_target(&job.target).map_err(|e| bad("target", e))?;
    let options = job.options.to_options().map_err(|e| {
        let field = e.split(':').next().unwrap_or("options").to_string();
        (field, e)
    })?;
    if !(1..=MAX_DEADLINE_MS).contains(&job.deadline_ms) {
        return Err(bad(
            "deadline_ms",
            format!(
                "{} is out of range; allowed: 1-{MAX_DEADLINE_MS}",
                job.deadline_ms
            ),
        ));
    }
    Ok(ValidJob {
        id: job.id,
        target: job.target,
        options,
        deadline: Duration::from_millis(job.deadline_ms),
    })
}

/// Connects with reconnection forever (exponential backoff from 100 ms to 5 s, with ±25 %
/// jitter), also when the first attempt fails; `on_connect` runs on every (re)connection and
/// `connected` follows the connection's state.
pub async fn connect(
    url: &str,
    name: &str,
    connected: watch::Sender<bool>,
    on_connect: impl Fn() + Send + Sync + 'static,
) -> Result<Client, NatsError> {
    let on_connect = Arc::new(on_connect);
    let connected = Arc::new(connected);
    let url_shown = url.to_string();
    ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(2))
        .ping_interval(Duration::from_secs(5))
        .reconnect_delay_callback(backoff)
        .event_callback(move |event| {
            let (on_connect, connected, url) =
                (on_connect.clone(), connected.clone(), url_shown.clone());
            async move {
                match event {
                    Event::Connected => {
                        eprintln!("edgetrace: NATS {url}: connected");
                        connected.send_replace(true);
                        on_connect();
                    }
                    Event::Disconnected => {
                        eprintln!("edgetrace: NATS {url}: disconnected; reconnecting");
                        connected.send_replace(false);
                    }
                    Event::Closed => {
                        connected.send_replace(false);
                    }
                    other => eprintln!("edgetrace: NATS {url}: {other}"),
                }
            }
        })
        .connect(url)
        .await
        .map_err(|e| NatsError::Nats {
            url: url.to_string(),
            message: e.to_string(),
        })
}

/// The delay before reconnection attempt `attempts` (1-based).
pub fn backoff(attempts: usize) -> Duration {
    use rand::Rng;
    let exp = attempts.saturating_sub(1).min(6) as u32;
    let base = Duration::from_millis(100 * 2u64.pow(exp)).min(Duration::from_secs(5));
    base.mul_f64(rand::rng().random_range(0.75..1.25))
}

/// Checks a `nats://` URL (several, comma-separated, are allowed).
pub fn check_nats_url(url: &str) -> Result<(), NatsError> {
    let invalid = |message: &str| NatsError::Invalid {
        flag: "--nats",
        value: url.to_string(),
        message: message.to_string(),
    };
    for one in url.split(',') {
        let one = one.trim();
        let rest = ["nats://", "tls://"]
            .iter()
            .find_map(|s| one.strip_prefix(s))
            .ok_or_else(|| invalid("expected nats://HOST:PORT"))?;
        let host = rest.rsplit('@').next().unwrap_or(rest);
        if host.is_empty() || host.starts_with(':') {
            return Err(invalid("the URL has no host"));
        }
    }
    Ok(())
}

/// One agent as the registry knows it.
#[derive(Debug, Clone)]
struct AgentEntry {
    colo: String,
    last_seen: Instant,
    heartbeat: Duration,
}

/// A colo as the registry knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColoStatus {
    pub colo: Colo,
    /// Live agents serving it.
    pub agents: usize,
}

/// The colos whose agents announced themselves, and their agents.
#[derive(Debug, Default)]
struct Registry {
    /// Every colo ever announced since the server started: name → city.
    colos: HashMap<String, String>,
    agents: HashMap<String, AgentEntry>,
    refused: HashMap<String, Instant>,
}

impl Registry {
    fn is_live(a: &AgentEntry, now: Instant) -> bool {
        now.duration_since(a.last_seen) <= a.heartbeat * 3 + Duration::from_millis(500)
    }

    fn status(&self, now: Instant) -> Vec<ColoStatus> {
        let mut out: Vec<ColoStatus> = self
            .colos
            .iter()
            .map(|(name, city)| ColoStatus {
                colo: Colo {
                    name: name.clone(),
                    city: city.clone(),
                },
                agents: self
                    .agents
                    .values()
                    .filter(|a| &a.colo == name && Registry::is_live(a, now))
                    .count(),
            })
            .collect();
        out.sort_by(|a, b| a.colo.name.cmp(&b.colo.name));
        out
    }
}

/// The server's side: the registry of agents and the dispatch of jobs.
pub struct Remote {
    client: Client,
    url: String,
    registry: Arc<Mutex<Registry>>,
    connected: watch::Receiver<bool>,
}

impl Remote {
    /// Connects to NATS (in the background when the server is not up yet) and keeps the
    /// registry from the agents' announcements; agents older than `min_version` are told so
    /// and not listed.
    pub async fn start(url: &str, min_version: Option<Version>) -> Result<Remote, NatsError> {
        check_nats_url(url)?;
        let (tx, rx) = watch::channel(false);
        // Ask the agents to announce themselves on every (re)connection, so a new server knows
        // them at once rather than after a heartbeat.
        let (discover_tx, mut discover_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let client = connect(url, "edgetrace serve", tx, move || {
            let _ = discover_tx.send(());
        })
        .await?;
        let nats_err = |e: &dyn std::fmt::Display| NatsError::Nats {
            url: url.to_string(),
            message: e.to_string(),
        };
        let registry = Arc::new(Mutex::new(Registry::default()));
        let mut announces = client.subscribe(ANNOUNCE).await.map_err(|e| nats_err(&e))?;
        let mut leaves = client.subscribe(LEAVE).await.map_err(|e| nats_err(&e))?;
        {
            let client = client.clone();
            tokio::spawn(async move {
                while discover_rx.recv().await.is_some() {
                    let _ = client.publish(DISCOVER, Bytes::new()).await;
                }
            });
        }
        {
            let (client, registry) = (client.clone(), registry.clone());
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        Some(m) = announces.next() => {
                            let refusal = register(&registry, &m.payload, min_version);
                            if let Some((agent, refusal)) = refusal
                                && let Ok(json) = serde_json::to_vec(&refusal)
                            {
                                let _ = client.publish(refused_subject(&agent), json.into()).await;
                            }
                        }
                        Some(m) = leaves.next() => {
                            if let Ok(a) = serde_json::from_slice::<Announce>(&m.payload) {
                                let mut r = registry.lock().unwrap_or_else(|p| p.into_inner());
                                if r.agents.remove(&a.agent).is_some() {
                                    eprintln!("edgetrace: agent {} of colo {} left", a.agent, a.colo);
                                }
                            }
                        }
                        else => break,
                    }
                }
            });
        }
        Ok(Remote {
            client,
            url: url.to_string(),
            registry,
            connected: rx,
        })
    }

    /// Every colo seen since the server started, with its live agents (0 when none is left).
    pub fn status(&self) -> Vec<ColoStatus> {
        self.registry
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .status(Instant::now())
    }

    /// Why no request can be dispatched now, if so.
    pub fn unavailable(&self) -> Option<String> {
        if *self.connected.borrow() {
            None
        } else {
            Some(format!(
                "the colos cannot be reached: no connection to the NATS server {} (reconnecting); retry shortly",
                self.url
            ))
        }
    }

    /// Runs one (target × colo) job on the colo's agents: Code 3 when no agent answers within
    /// [`deadline`] + [`DISPATCH_MARGIN`], when none is subscribed, or when NATS goes away.
    pub async fn trace(&self, colo: &Colo, target: &str, options: Options) -> ColoRun {
        let limit = deadline(&options);
        let job = Job {
            id: crate::job_id(),
            colo: colo.name.clone(),
            target: target.to_string(),
            options: JobOptions::from(&options),
            deadline_ms: limit.as_millis() as u64,
        };
        let failed = |error: ColoError, problem: String| ColoRun {
            trace: ColoTrace::failed(colo.clone(), target, error),
            problems: vec![problem],
        };
        let payload = match serde_json::to_vec(&job) {
            Ok(p) => p,
            Err(e) => return failed(ColoError::Unavailable, format!("job: {e}")),
        };
        let request = Request::new()
            .payload(payload.into())
            .timeout(Some(limit + DISPATCH_MARGIN));
        let mut connected = self.connected.clone();
        let send = self.client.send_request(job_subject(&colo.name), request);
        let reply = tokio::select! {
            r = send => r,
            _ = connected.wait_for(|c| !*c) => {
                return failed(ColoError::Unavailable, format!("colo {}: NATS connection lost", colo.name));
            }
        };
        let message = match reply {
            Ok(m) => m,
            Err(e) => {
                let why = match e.kind() {
                    RequestErrorKind::NoResponders => "no live agent".to_string(),
                    RequestErrorKind::TimedOut => format!(
                        "no answer within {} ms",
                        (limit + DISPATCH_MARGIN).as_millis()
                    ),
                    RequestErrorKind::Other => e.to_string(),
                };
                return failed(ColoError::Unavailable, format!("colo {}: {why}", colo.name));
            }
        };
        match serde_json::from_slice::<JobReply>(&message.payload) {
            Ok(JobReply::Done {
                mut trace,
                problems,
            }) => {
                // The registry's name is the one the request designated.
                trace.colo.name = colo.name.clone();
                ColoRun {
                    trace: *trace,
                    problems,
                }
            }
            Ok(JobReply::Rejected { field, error }) => {
                eprintln!(
                    "edgetrace: colo {} rejected job {}: {field}: {error}",
                    colo.name, job.id
                );
                let code = if field == "target" {
                    ColoError::Target
                } else {
                    ColoError::NotPermitted
                };
                failed(code, format!("colo {}: rejected: {error}", colo.name))
            }
            Err(e) => failed(
                ColoError::Unavailable,
                format!("colo {}: unreadable answer: {e}", colo.name),
            ),
        }
    }
}

/// Records an announcement; returns the refusal to send when the agent is too old.
fn register(
    registry: &Mutex<Registry>,
    payload: &[u8],
    min_version: Option<Version>,
) -> Option<(String, Refusal)> {
    let a: Announce = match serde_json::from_slice(payload) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("edgetrace: ignored an announcement that is not one: {e}");
            return None;
        }
    };
    if let Err(e) = check_colo_name(&a.colo) {
        eprintln!(
            "edgetrace: ignored agent {}: colo {:?}: {e}",
            a.agent, a.colo
        );
        return None;
    }
    let mut r = registry.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(min) = min_version {
        let old = a.version.parse::<Version>().map_or(true, |v| v < min);
        if old {
            let now = Instant::now();
            let first = r.refused.insert(a.agent.clone(), now).is_none();
            if first {
                eprintln!(
                    "edgetrace: refused agent {} of colo {}: version {} is older than --min-agent-version {min}",
                    a.agent, a.colo, a.version
                );
            }
            return Some((
                a.agent,
                Refusal {
                    minimum: min.to_string(),
                    version: a.version,
                },
            ));
        }
    }
    let heartbeat = Duration::from_millis(a.heartbeat_ms.clamp(100, 60_000));
    if !r.agents.contains_key(&a.agent) {
        eprintln!(
            "edgetrace: agent {} of colo {} ({}) version {} joined",
            a.agent, a.colo, a.city, a.version
        );
    }
    r.colos.insert(a.colo.clone(), a.city.clone());
    r.agents.insert(
        a.agent,
        AgentEntry {
            colo: a.colo,
            last_seen: Instant::now(),
            heartbeat,
        },
    );
    None
}

/// Runs an agent for `colo` until `shutdown` resolves: announces itself, answers discovery,
/// runs its colo's jobs. Returns an error when the server refuses it.
pub async fn run_agent(
    url: &str,
    colo: Arc<LocalColo>,
    version: &str,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), NatsError> {
    check_nats_url(url)?;
    let name = colo.colo().name.clone();
    check_colo_name(&name).map_err(|message| NatsError::Invalid {
        flag: "--colo",
        value: name.clone(),
        message,
    })?;
    let announce = Announce {
        agent: crate::job_id(),
        colo: name.clone(),
        city: colo.colo().city.clone(),
        version: version.to_string(),
        heartbeat_ms: HEARTBEAT.as_millis() as u64,
    };
    let announce_bytes: Bytes = serde_json::to_vec(&announce)
        .map_err(|e| NatsError::Nats {
            url: url.to_string(),
            message: e.to_string(),
        })?
        .into();
    let (tx, _rx) = watch::channel(false);
    let (hello_tx, mut hello_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let client = connect(url, &format!("edgetrace agent {name}"), tx, move || {
        let _ = hello_tx.send(());
    })
    .await?;
    let nats_err = |e: &dyn std::fmt::Display| NatsError::Nats {
        url: url.to_string(),
        message: e.to_string(),
    };
    let mut jobs = client
        .queue_subscribe(job_subject(&name), queue_group(&name))
        .await
        .map_err(|e| nats_err(&e))?;
    let mut discover = client.subscribe(DISCOVER).await.map_err(|e| nats_err(&e))?;
    let mut refused = client
        .subscribe(refused_subject(&announce.agent))
        .await
        .map_err(|e| nats_err(&e))?;
    // The subscriptions reach the server before the agent says it takes jobs.
    let _ = client.flush().await;
    eprintln!(
        "edgetrace: agent {} of colo {name} version {version}: taking jobs on {}",
        announce.agent,
        job_subject(&name)
    );
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_JOBS));
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    tokio::pin!(shutdown);
    let result = loop {
        tokio::select! {
            _ = &mut shutdown => break Ok(()),
            _ = heartbeat.tick() => {
                let _ = client.publish(ANNOUNCE, announce_bytes.clone()).await;
            }
            Some(()) = hello_rx.recv() => {
                let _ = client.publish(ANNOUNCE, announce_bytes.clone()).await;
            }
            Some(_) = discover.next() => {
                let _ = client.publish(ANNOUNCE, announce_bytes.clone()).await;
            }
            Some(m) = refused.next() => {
                let r: Refusal = serde_json::from_slice(&m.payload).unwrap_or(Refusal {
                    minimum: "?".into(),
                    version: version.to_string(),
                });
                break Err(NatsError::Refused { version: version.to_string(), minimum: r.minimum });
            }
            Some(m) = jobs.next() => {
                let Some(reply_to) = m.reply.clone() else {
                    eprintln!("edgetrace: agent {name}: rejected a job without a reply subject");
                    continue;
                };
                let job = match validate_job(&m.payload, &name) {
                    Ok(job) => job,
                    Err((field, error)) => {
                        eprintln!("edgetrace: agent {name}: rejected job: {field}: {error}");
                        let reply = JobReply::Rejected { field, error };
                        if let Ok(json) = serde_json::to_vec(&reply) {
                            let _ = client.publish(reply_to, json.into()).await;
                        }
                        continue;
                    }
                };
                let (client, colo, slots) = (client.clone(), colo.clone(), slots.clone());
                tokio::spawn(async move {
                    let started = Instant::now();
                    let Ok(_slot) = slots.acquire_owned().await else { return };
                    let left = job.deadline.saturating_sub(started.elapsed());
                    let run = colo.trace(&job.target, job.options, Family::PreferV4);
                    let run = match tokio::time::timeout(left, run).await {
                        Ok(run) => run,
                        Err(_) => ColoRun {
                            trace: ColoTrace::failed(colo.colo().clone(), &job.target, ColoError::Unavailable),
                            problems: vec![format!("{}: not done within the job's deadline", job.target)],
                        },
                    };
                    let reply = JobReply::Done { trace: Box::new(run.trace), problems: run.problems };
                    if let Ok(json) = serde_json::to_vec(&reply) {
                        let _ = client.publish(reply_to, json.into()).await;
                    }
                });
            }
        }
    };
    if result.is_ok() {
        let _ = client.publish(LEAVE, announce_bytes).await;
    }
    let _ = client.flush().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(colo: &str, target: &str, max_ttl: u64) -> Vec<u8> {
        serde_json::to_vec(&Job {
            id: "j1".into(),
            colo: colo.into(),
            target: target.into(),
            options: JobOptions {
                packet_type: "icmp".into(),
                port: 0,
                max_ttl,
                packets_per_ttl: 3,
                wait_time: 1,
                paths: 1,
                mda_confidence: None,
            },
            deadline_ms: 5000,
        })
        .unwrap()
    }

    #[test]
    fn jobs_are_checked_field_by_field() {
        let ok = validate_job(&job("sin01", "198.18.0.1", 15), "sin01").unwrap();
        assert_eq!(ok.options.max_ttl.get(), 15);
        let err = |bytes: &[u8]| validate_job(bytes, "sin01").unwrap_err();
        assert_eq!(err(&job("den01", "198.18.0.1", 15)).0, "colo");
        assert_eq!(err(&job("sin01", "a b", 15)).0, "target");
        let (field, message) = err(&job("sin01", "198.18.0.1", 99));
        assert_eq!(field, "options.max_ttl");
        assert!(
            message.contains("99") && message.contains("1-64"),
            "{message}"
        );
        assert_eq!(err(b"{\"id\":1}").0, "job");
        assert_eq!(err(b"\xff\xfe").0, "job");
        let mut extra: serde_json::Value = serde_json::from_slice(&job("sin01", "x", 1)).unwrap();
        extra["run"] = "rm -rf /".into();
        assert_eq!(err(&serde_json::to_vec(&extra).unwrap()).0, "job");
    }

    #[test]
    #[allow(clippy::needless_update)]
    fn options_survive_the_wire() {
        let o = Options {
            packet_type: PacketType::GreIcmp,
            port: 4242,
            max_ttl: MaxTtl::new(7).unwrap(),
            packets_per_ttl: PacketsPerTtl::new(2).unwrap(),
            wait_time: WaitTime::new(3).unwrap(),
            paths: Paths::Flows(FlowCount::new(8).unwrap()),
            ..Options::default()
        };
        assert_eq!(JobOptions::from(&o).to_options().unwrap(), o);
        let auto = Options {
            paths: Paths::Auto(Confidence::new(99).unwrap()),
            ..o
        };
        assert_eq!(JobOptions::from(&auto).to_options().unwrap(), auto);
        let mut wire = JobOptions::from(&o);
        wire.paths = 65;
        assert!(
            wire.to_options()
                .unwrap_err()
                .starts_with("options.paths: 65")
        );
    }

    #[test]
    fn versions_compare_numerically() {
        let v = |s: &str| s.parse::<Version>().unwrap();
        assert!(v("0.10.0") > v("0.9.9"));
        assert_eq!(v("1.2.3-rc1"), Version(1, 2, 3));
        assert!("1.2".parse::<Version>().is_err());
        assert!("x.y.z".parse::<Version>().is_err());
    }

    #[test]
    fn registry_counts_live_agents_and_refuses_old_ones() {
        let r = Mutex::new(Registry::default());
        let a = |agent: &str, colo: &str, version: &str| {
            serde_json::to_vec(&Announce {
                agent: agent.into(),
                colo: colo.into(),
                city: "Singapore, SG".into(),
                version: version.into(),
                heartbeat_ms: 1000,
            })
            .unwrap()
        };
        let min = Some(Version(0, 2, 0));
        assert!(register(&r, &a("a1", "sin01", "0.2.0"), min).is_none());
        assert!(register(&r, &a("a2", "sin01", "0.3.1"), min).is_none());
        let (agent, refusal) = register(&r, &a("a3", "den01", "0.1.9"), min).unwrap();
        assert_eq!((agent.as_str(), refusal.minimum.as_str()), ("a3", "0.2.0"));
        assert!(register(&r, &a("a4", "BAD COLO", "1.0.0"), min).is_none());
        assert!(register(&r, b"not json", min).is_none());
        let now = Instant::now();
        let status = r.lock().unwrap().status(now);
        assert_eq!(status.len(), 1);
        assert_eq!(
            (status[0].colo.name.as_str(), status[0].agents),
            ("sin01", 2)
        );
        // Silent for more than three heartbeats: still known, no agent left.
        let later = now + Duration::from_secs(4);
        assert_eq!(r.lock().unwrap().status(later)[0].agents, 0);
    }

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        for attempt in 1..50 {
            let d = backoff(attempt);
            assert!(
                d >= Duration::from_millis(75) && d <= Duration::from_millis(6250),
                "{d:?}"
            );
        }
        assert!(backoff(20) > backoff(1));
    }

    #[test]
    fn nats_urls_are_checked() {
        assert!(check_nats_url("nats://127.0.0.1:4222").is_ok());
        assert!(check_nats_url("nats://a:1,nats://b:2").is_ok());
        let e = check_nats_url("http://x").unwrap_err().to_string();
        assert!(e.starts_with("--nats \"http://x\""), "{e}");
        assert!(check_nats_url("nats://").is_err());
    }
}
