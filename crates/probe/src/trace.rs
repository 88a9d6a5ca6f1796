//! One trace: the state machine that paces probes, matches replies and decides when it is done.
//!
//! Pacing: all probes of a TTL leave together, and TTLs are sent up to `WINDOW` beyond the
//! highest TTL that answered, so on a path whose hops answer the probes run one wave ahead of
//! the replies and the trace takes about two round trips. When nothing answers for a while
//! (`patience`, from the round-trip times seen), the window grows, doubling each time, so silent
//! routers or a silent target cost about one wait time in all. Once the target (or a router
//! saying "unreachable") answers at TTL d, nothing beyond d is sent and probes beyond it are
//! not waited for: the distance is learned early and the target's ICMP budget is spared.
//!
//! Rate limiting, told apart from loss: all probes of a TTL leave in one burst, and a router
//! that rate-limits the ICMP it generates (a token bucket, as nearly all do) answers the first
//! probes of the burst, until its bucket is empty, and none after. Loss on a link hits probes
//! at random, and every hop beyond the link too. So a hop is labelled `rate-limited` when
//! (see [`Trace::rate_limited`]) the probes it answered are exactly the first ones sent in its
//! burst, the rest timed out, and a later hop answered every probe it was sent: the path
//! through the hop carried the probes, the hop declined to answer them.
//!
//! Multipath: a trace may use several flows ([`Paths`]), each with its own flow identifier
//! (the fields load balancers hash on), each a Paris traceroute of its own: all probes of a
//! flow share its identifier, and every probe carries a sequence unique in the trace, so a
//! reply names its probe and, through it, its flow and TTL. With a fixed count every flow is
//! probed at every TTL from the start. In MDA mode ([`Paths::Auto`]) the trace starts with
//! `n_1` flows, probed at every TTL, and, each time every probe is resolved, checks the
//! stopping rule at every vertex (see [`crate::mda`]) and adds flows, probed from the TTL of the
//! lowest undecided vertex to the next hops of the highest, until it holds everywhere.

use crate::mda::stopping_point;
use crate::options::{Options, Paths};
use crate::report::{HopResult, NAT, NodeResult, PER_PACKET, RATE_LIMITED};
use edgetrace_wire::{MplsEntry, ProbeId, ProbeSpec, Protocol, Reply, ReplyKind, emit_probe};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// TTLs sent ahead of the highest TTL that answered.
const WINDOW: u8 = 4;
/// Least time without news before the window grows.
const MIN_PATIENCE: Duration = Duration::from_millis(10);
/// Probes of one TTL sent within this span form one burst, which no ICMP token bucket refills
/// during (router limits are a few to a few hundred messages per second).
const BURST_SPAN: Duration = Duration::from_millis(10);
/// Probes one trace may send at most: every one needs a sequence of its own, and a UDP
/// probe's (its checksum) cannot be 0 or 0xffff.
const MAX_PROBES: usize = 65534;

/// What a trace needs to know, fixed for its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceConfig {
    pub protocol: Protocol,
    pub source: IpAddr,
    pub target: IpAddr,
    /// One flow identifier per flow the trace may use (ICMP identifier, UDP/TCP source port,
    /// or GRE key), each unique among running traces; flow 0 first. At least one; a trace
    /// uses at most `paths.max_flows()` of them.
    pub flows: Vec<u32>,
    /// UDP/TCP destination port; first ICMP sequence.
    pub port: u16,
    pub max_ttl: u8,
    pub packets_per_ttl: u8,
    pub wait: Duration,
    pub paths: Paths,
}

impl TraceConfig {
    /// A config from validated options and the flow identifiers the caller reserved for the
    /// trace. For GRE a non-zero `port` option is the key of flow 0 (flow i uses key + i),
    /// and then replaces `flows`.
    ///
    /// # Panics
    /// When `flows` is empty.
    pub fn new(
        protocol: Protocol,
        source: IpAddr,
        target: IpAddr,
        flows: Vec<u32>,
        o: &Options,
    ) -> Self {
        assert!(!flows.is_empty(), "a trace needs at least one flow");
        let flows = match (protocol, o.port) {
            (Protocol::Gre, p) if p != 0 => (0..flows.len() as u32)
                .map(|i| u32::from(p).wrapping_add(i))
                .collect(),
            _ => flows,
        };
        TraceConfig {
            protocol,
            source,
            target,
            flows,
            port: o.effective_port(protocol),
            max_ttl: o.max_ttl.get(),
            packets_per_ttl: o.packets_per_ttl.get(),
            wait: o.wait_time.duration(),
            paths: o.paths,
        }
    }

    /// The identifier of flow 0.
    pub fn flow(&self) -> u32 {
        self.flows[0]
    }

    /// Flows the trace may use: the identifiers given, at most what the paths option asks.
    fn usable_flows(&self) -> u16 {
        (self.flows.len().min(usize::from(u16::MAX)) as u16).min(self.paths.max_flows())
    }

    /// The sequence value a probe carries on the wire (and sees quoted back).
    fn wire_seq(&self, index: usize) -> u16 {
        match self.protocol {
            Protocol::Icmp => self.port.wrapping_add(index as u16),
            _ => index as u16 + 1,
        }
    }

    /// The probe a reply answers (among `count` planned), and whether the quote was
    /// rewritten on the way (see below). The caller checks the flow.
    fn index_of(&self, id: &ProbeId, count: usize) -> Option<(usize, bool)> {
        let from_seq = |s: u16| -> Option<usize> {
            let i = match self.protocol {
                Protocol::Icmp => usize::from(s.wrapping_sub(self.port)),
                _ => usize::from(s).checked_sub(1)?,
            };
            (i < count).then_some(i)
        };
        match (id.seq, self.protocol) {
            (Some(raw), Protocol::Tcp) => {
                // The upper half is the flow's identifier, checked by the caller.
                Some((from_seq(raw as u16)?, false))
            }
            (Some(raw), Protocol::Udp) => {
                // The sequence is the UDP checksum, which covers the addresses: a NAT that
                // translates our source rewrites it, and one that restores only the address in
                // the errors it translates back leaves the quoted checksum naming no probe. The
                // IPv4 ID carries the sequence too, and NATs leave it alone: match on it then,
                // and say so. When both name probes, but different ones, trust neither.
                let by_seq = u16::try_from(raw).ok().and_then(from_seq);
                let by_id = id.ip_id.and_then(from_seq);
                match (by_seq, by_id) {
                    (Some(i), Some(j)) if i != j => None,
                    (Some(i), _) => Some((i, false)),
                    (None, Some(j)) => Some((j, true)),
                    (None, None) => None,
                }
            }
            (Some(raw), _) => Some((from_seq(u16::try_from(raw).ok()?)?, false)),
            (None, _) => Some((from_seq(id.ip_id?)?, false)),
        }
    }
}

/// A probe the caller must send now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    pub ttl: u8,
    pub destination: IpAddr,
    /// The sequence value the probe carries (for sockets that take only a payload).
    pub seq: u16,
}

#[derive(Debug, Clone)]
struct Answer {
    from: IpAddr,
    rtt: Duration,
    kind: ReplyKind,
    mpls: Vec<MplsEntry>,
    /// The quote came back rewritten by a NAT (matched on the IPv4 ID).
    translated: bool,
}

#[derive(Debug, Clone)]
struct Probe {
    ttl: u8,
    /// Index of the probe's flow in `TraceConfig::flows`.
    flow: u16,
    sent: Option<Instant>,
    answer: Option<Answer>,
    lost: bool,
    /// Could not be sent: lost, but not the path's doing.
    failed: bool,
}

/// The finished trace: per-hop results and whether anything could be sent at all.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceOutcome {
    pub hops: Vec<HopResult>,
    pub target: IpAddr,
    pub duration: Duration,
    /// Set when probes could not be sent (the last send error), for the colo's error.
    pub send_error: Option<String>,
    pub probes_sent: usize,
    /// Flows the trace used (1 unless `paths` asked for more).
    pub flows: u16,
}

/// One trace to one target with one protocol.
#[derive(Debug)]
pub struct Trace {
    cfg: TraceConfig,
    /// Every probe planned, in the order they are sent; the index is the sequence.
    probes: Vec<Probe>,
    next_index: usize,
    /// Flows planned so far (all of them at every TTL up to the limit).
    flows_used: u16,
    window_end: u8,
    grow: u8,
    /// Lowest TTL at which the target, or a router saying "unreachable", answered.
    end_ttl: Option<u8>,
    max_rtt: Duration,
    started: Option<Instant>,
    last_send: Option<Instant>,
    patience: Duration,
    send_errors: usize,
    last_send_error: Option<String>,
    done_at: Option<Instant>,
}

impl Trace {
    pub fn new(cfg: TraceConfig) -> Trace {
        let initial = match cfg.paths {
            Paths::Flows(_) => cfg.usable_flows(),
            Paths::Auto(c) => (stopping_point(1, c) as u16).min(cfg.usable_flows()),
        };
        let mut trace = Trace {
            probes: Vec::new(),
            next_index: 0,
            flows_used: 0,
            window_end: WINDOW,
            grow: WINDOW,
            end_ttl: None,
            max_rtt: Duration::ZERO,
            started: None,
            last_send: None,
            patience: MIN_PATIENCE,
            send_errors: 0,
            last_send_error: None,
            done_at: None,
            cfg,
        };
        trace.plan(initial, 1..=trace.cfg.max_ttl);
        trace
    }

    pub fn config(&self) -> &TraceConfig {
        &self.cfg
    }

    /// Plans `count` more flows at the TTLs `ttls`, TTL by TTL, so that all probes of a TTL
    /// leave together. A flow gets `packets_per_ttl` probes per TTL, except the flows the MDA
    /// adds beyond flow 0, which get one (they only need to say where they go).
    fn plan(&mut self, count: u16, ttls: std::ops::RangeInclusive<u8>) {
        let flows = self.flows_used..self.flows_used + count;
        let ppt = usize::from(self.cfg.packets_per_ttl);
        let mda = matches!(self.cfg.paths, Paths::Auto(_));
        self.probes
            .reserve(ttls.clone().count() * usize::from(count) * ppt);
        'ttls: for ttl in ttls {
            for flow in flows.clone() {
                let n = if mda && flow > 0 { 1 } else { ppt };
                for _ in 0..n {
                    if self.probes.len() >= MAX_PROBES {
                        break 'ttls;
                    }
                    self.probes.push(Probe {
                        ttl,
                        flow,
                        sent: None,
                        answer: None,
                        lost: false,
                        failed: false,
                    });
                }
            }
        }
        self.flows_used += count;
    }

    /// Highest TTL whose probes count: the end when known, else the max TTL.
    fn limit(&self) -> u8 {
        self.end_ttl.unwrap_or(self.cfg.max_ttl)
    }

    /// The probe to send next, if any is due (within the limit). Probes are planned TTL by
    /// TTL, so once one is beyond the limit all after it are too.
    fn next_to_send(&self) -> Option<usize> {
        self.probes
            .get(self.next_index)
            .filter(|p| p.ttl <= self.limit())
            .map(|_| self.next_index)
    }

    /// The probes that count: those within the limit.
    fn counted(&self) -> impl Iterator<Item = &Probe> {
        let limit = self.limit();
        self.probes.iter().filter(move |p| p.ttl <= limit)
    }

    /// The next probe to send now, written into `buf`; `None` when nothing is due.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        if self.is_done() {
            return None;
        }
        let index = self.next_to_send()?;
        self.started.get_or_insert(now);
        let ttl = self.probes[index].ttl;
        if ttl > self.window_end {
            match self.last_send {
                Some(t) if now >= t + self.patience => {
                    // Nothing new for a while: the hops ahead are silent or slow. Grow the
                    // window, more each time, and wait longer before growing it again.
                    self.window_end = self.window_end.saturating_add(self.grow);
                    self.grow = self.grow.saturating_mul(2);
                    self.patience *= 2;
                }
                _ => return None,
            }
        }
        let spec = ProbeSpec {
            protocol: self.cfg.protocol,
            source: self.cfg.source,
            destination: self.cfg.target,
            ttl,
            flow: self.cfg.flows[usize::from(self.probes[index].flow)],
            port: self.cfg.port,
            seq: self.cfg.wire_seq(index),
        };
        if let Err(e) = emit_probe(&spec, buf) {
            // Only a config the caller should have refused gets here; end the trace.
            self.last_send_error = Some(e.to_string());
            self.end_ttl = Some(0);
            self.done_at = Some(now);
            return None;
        }
        self.probes[index].sent = Some(now);
        self.next_index += 1;
        self.last_send = Some(now);
        Some(Transmit {
            ttl,
            destination: self.cfg.target,
            seq: spec.seq,
        })
    }

    /// The probe last returned by `poll_transmit` could not be sent.
    pub fn on_send_error(&mut self, error: String) {
        if let Some(p) = self.next_index.checked_sub(1).map(|i| &mut self.probes[i]) {
            p.lost = true;
            p.failed = true;
        }
        self.send_errors += 1;
        self.last_send_error = Some(error);
    }

    /// Whether a reply, as identified by the dispatcher, could belong to this trace.
    pub fn owns(&self, id: &ProbeId) -> bool {
        id.protocol == self.cfg.protocol
            && id.destination == self.cfg.target
            && self.cfg.flows[..usize::from(self.flows_used)].contains(&id.flow)
            && (id.port == self.cfg.port
                || matches!(self.cfg.protocol, Protocol::Icmp | Protocol::Gre))
    }

    /// Hands a reply to the trace. Returns whether it answered one of its probes; replies to
    /// probes never sent, already answered or given up are ignored, and so are replies whose
    /// flow is not the flow of the probe their sequence names.
    pub fn on_reply(&mut self, now: Instant, reply: &Reply) -> bool {
        if !self.owns(&reply.probe) || self.done_at.is_some() {
            return false;
        }
        let Some((index, translated)) = self.cfg.index_of(&reply.probe, self.probes.len()) else {
            return false;
        };
        let flow = self.cfg.flows[usize::from(self.probes[index].flow)];
        let flow_matches = match (self.cfg.protocol, reply.probe.seq) {
            (Protocol::Tcp, Some(raw)) => raw >> 16 == flow & 0xffff && reply.probe.flow == flow,
            _ => reply.probe.flow == flow,
        };
        if !flow_matches {
            return false;
        }
        let probe = &mut self.probes[index];
        let ttl = probe.ttl;
        let Some(sent) = probe.sent else { return false };
        if probe.answer.is_some() || probe.lost || now < sent {
            return false;
        }
        let rtt = now - sent;
        probe.answer = Some(Answer {
            from: reply.from,
            rtt,
            kind: reply.kind,
            mpls: reply.mpls.clone(),
            translated,
        });
        self.max_rtt = self.max_rtt.max(rtt);
        self.patience = self
            .patience
            .max(self.max_rtt * 2 + Duration::from_millis(5));
        self.window_end = self
            .window_end
            .max(ttl.saturating_add(WINDOW))
            .min(self.cfg.max_ttl);
        self.grow = WINDOW;
        let from_target = reply.from == self.cfg.target;
        let terminal = match reply.kind {
            ReplyKind::TimeExceeded => false,
            ReplyKind::EchoReply | ReplyKind::TcpSynAck | ReplyKind::TcpRst => from_target,
            ReplyKind::Unreachable { .. } | ReplyKind::ParamProblem { .. } => true,
        };
        if terminal && self.end_ttl.is_none_or(|e| ttl < e) {
            self.end_ttl = Some(ttl);
        }
        true
    }

    /// Gives up on probes whose wait time has passed; in MDA mode, adds flows when every
    /// probe is resolved and the stopping rule asks for more.
    pub fn handle_timeout(&mut self, now: Instant) {
        let wait = self.cfg.wait;
        let limit = self.limit();
        for p in self.probes.iter_mut().filter(|p| p.ttl <= limit) {
            if let Some(sent) = p.sent
                && p.answer.is_none()
                && !p.lost
                && now >= sent + wait
            {
                p.lost = true;
            }
        }
        if self.done_at.is_none() && self.all_resolved() && !self.add_flows(now) {
            self.done_at = Some(now);
        }
    }

    fn all_resolved(&self) -> bool {
        self.next_to_send().is_none() && self.counted().all(|p| p.answer.is_some() || p.lost)
    }

    /// When the trace next needs `handle_timeout` or `poll_transmit`; `None` once done.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_done() {
            return None;
        }
        if self.all_resolved() {
            // Done (or more flows planned) as of the next call, which must come right away.
            return self.last_send.or(self.started);
        }
        let mut next = self
            .counted()
            .filter(|p| p.answer.is_none() && !p.lost)
            .filter_map(|p| p.sent)
            .min()
            .map(|s| s + self.cfg.wait);
        if let Some(index) = self.next_to_send() {
            let due = match self.last_send {
                None => self.started,
                Some(t) if self.probes[index].ttl > self.window_end => Some(t + self.patience),
                Some(t) => Some(t),
            };
            next = match (next, due) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        next
    }

    pub fn is_done(&self) -> bool {
        self.done_at.is_some()
    }

    /// The result so far (complete once `is_done`).
    pub fn outcome(&self) -> TraceOutcome {
        let start = self.started.unwrap_or_else(Instant::now);
        let duration = self
            .done_at
            .map_or(Duration::ZERO, |d| d.saturating_duration_since(start));
        let last_ttl = match self.end_ttl {
            Some(e) => e,
            None => self
                .probes
                .iter()
                .filter(|p| p.sent.is_some())
                .map(|p| p.ttl)
                .max()
                .unwrap_or(1)
                .min(self.cfg.max_ttl),
        };
        let rate_limited = self.rate_limited(last_ttl);
        let nat = self.nat(last_ttl);
        let mut hops = Vec::new();
        for ttl in 1..=last_ttl {
            let mut hop = HopResult {
                ttl,
                sent: 0,
                nodes: Vec::new(),
            };
            // Per flow, the nodes it reached at this TTL: several is per-packet balancing.
            let mut reached: Vec<(u16, IpAddr)> = Vec::new();
            for p in self.at(ttl) {
                if p.sent.is_none() {
                    continue;
                }
                hop.sent += 1;
                let Some(a) = &p.answer else { continue };
                let mut labels = labels(self.cfg.protocol, a, a.from == self.cfg.target);
                if rate_limited.contains(&ttl) {
                    labels.push(RATE_LIMITED.to_string());
                }
                if nat == Some(ttl) {
                    labels.push(NAT.to_string());
                }
                let node = match hop.nodes.iter().position(|n| n.ip == a.from) {
                    Some(i) => {
                        hop.nodes[i].add(a.rtt, labels);
                        &mut hop.nodes[i]
                    }
                    None => {
                        hop.nodes.push(NodeResult::new(a.from, a.rtt, labels));
                        hop.nodes.last_mut().expect("just pushed")
                    }
                };
                node.add_flow(p.flow);
                if !reached.contains(&(p.flow, a.from)) {
                    reached.push((p.flow, a.from));
                }
            }
            for n in &mut hop.nodes {
                let per_packet = reached.iter().any(|&(flow, ip)| {
                    ip == n.ip && reached.iter().any(|&(f, other)| f == flow && other != ip)
                });
                if per_packet && !n.labels.iter().any(|l| l == PER_PACKET) {
                    n.labels.push(PER_PACKET.to_string());
                }
            }
            hops.push(hop);
        }
        TraceOutcome {
            hops,
            target: self.cfg.target,
            duration,
            send_error: (self.end_ttl == Some(0)
                || (self.send_errors > 0 && self.send_errors >= self.next_index))
                .then(|| self.last_send_error.clone())
                .flatten(),
            probes_sent: self.probes.iter().filter(|p| p.sent.is_some()).count(),
            flows: self.flows_used,
        }
    }
}

impl Trace {
    /// The probes of `ttl`, in the order they were sent.
    fn at(&self, ttl: u8) -> impl Iterator<Item = &Probe> {
        self.probes.iter().filter(move |p| p.ttl == ttl)
    }

    /// MDA mode, every probe resolved: plans more flows when the stopping rule does not hold
    /// at some vertex yet. Returns whether it did.
    ///
    /// A vertex is a node `v` that answered flows at TTL `h` below the limit (not the target).
    /// Its flows that answered at `h + 1` show `k` distinct next hops; it is done once `n_k`
    /// of them did (the stopping rule), or, when they fall silent there, once `n_k` were sent
    /// with no answer at all or twice `n_k` with some (loss: stop rather than probe forever).
    /// Otherwise it needs `n_k − answered` more flows through it; since only a share of new
    /// flows go through `v` (the share of flows that answered at `h` that reached `v`), that
    /// takes about `(n_k − answered) / share` new flows. The round adds the most any vertex
    /// needs, at least `n_1` and at most doubling the flows, up to [`Paths::MDA_MAX_FLOWS`],
    /// probed only from the lowest undecided vertex's TTL to the highest's next hops: the
    /// other TTLs are decided, and `ColoTrace::from_hops` completes the paths of these flows
    /// where a TTL had a single node.
    ///
    /// A round may take a wait time (probes that go unanswered), so none starts unless it would
    /// end within `max_ttl` wait times of the start: what a trace whose every TTL waits takes,
    /// and what the fleet allows a colo before it reports it as not answering.
    fn add_flows(&mut self, now: Instant) -> bool {
        let Paths::Auto(confidence) = self.cfg.paths else {
            return false;
        };
        let available = self.cfg.usable_flows();
        if self.end_ttl == Some(0) || self.send_errors > 0 || self.flows_used >= available {
            return false;
        }
        let budget = self.cfg.wait * u32::from(self.cfg.max_ttl);
        let elapsed = self
            .started
            .map_or(Duration::ZERO, |s| now.saturating_duration_since(s));
        if elapsed + self.cfg.wait > budget {
            return false;
        }
        let limit = self.limit();
        let ttls = usize::from(limit);
        let flows = usize::from(self.flows_used);
        // Per (flow, TTL): the node of its first answer, and whether a probe was resolved.
        let mut node: Vec<Option<IpAddr>> = vec![None; flows * ttls];
        let mut tried = vec![false; flows * ttls];
        for p in self.counted().filter(|p| p.sent.is_some()) {
            let i = usize::from(p.flow) * ttls + usize::from(p.ttl) - 1;
            tried[i] = true;
            if let (None, Some(a)) = (node[i], &p.answer) {
                node[i] = Some(a.from);
            }
        }
        let mut want = 0usize;
        // TTLs (0-based) of the undecided vertices: the new flows are probed there and one
        // beyond, where their next hops show.
        let mut undecided: Option<(usize, usize)> = None;
        for h in 0..ttls.saturating_sub(1) {
            let at = |f: usize, t: usize| node[f * ttls + t];
            let answered_here = (0..flows).filter(|&f| at(f, h).is_some()).count();
            let mut vertices: Vec<IpAddr> = Vec::new();
            for f in 0..flows {
                if let Some(v) = at(f, h)
                    && v != self.cfg.target
                    && !vertices.contains(&v)
                {
                    vertices.push(v);
                }
            }
            for v in vertices {
                let through: Vec<usize> = (0..flows).filter(|&f| at(f, h) == Some(v)).collect();
                let mut next: Vec<IpAddr> = Vec::new();
                let (mut answered, mut sent) = (0, 0);
                for &f in &through {
                    sent += usize::from(tried[f * ttls + h + 1]);
                    if let Some(n) = at(f, h + 1) {
                        answered += 1;
                        if !next.contains(&n) {
                            next.push(n);
                        }
                    }
                }
                let need = stopping_point(next.len() as u32, confidence) as usize;
                if answered >= need || (answered == 0 && sent >= need) || sent >= 2 * need {
                    continue;
                }
                let missing = need - answered;
                want = want.max((missing * answered_here).div_ceil(through.len()));
                undecided = Some(undecided.map_or((h, h), |(lo, hi)| (lo.min(h), hi.max(h))));
            }
        }
        let Some((lo, hi)) = undecided.filter(|_| want > 0) else {
            return false;
        };
        let least = stopping_point(1, confidence) as usize;
        let add = (want.max(least).min(flows).max(1) as u16).min(available - self.flows_used);
        let before = self.probes.len();
        self.next_index = before;
        // TTL h (0-based) is TTL h + 1; the next hops of TTL hi + 1 are at hi + 2.
        self.plan(add, lo as u8 + 1..=hi as u8 + 2);
        self.probes.len() > before
    }

    /// The TTLs up to `last_ttl` whose hop looks rate-limited rather than lossy: one node
    /// answered the first probes of the burst (at least one) and none of the rest, all of which
    /// were sent and timed out (none failed to leave, none is still awaited), and some later hop
    /// answered every probe it was sent, at least as many.
    ///
    /// Random loss makes that pattern too, rarely: with `n` probes, each answered with
    /// probability `q` at the hop and beyond it, a later hop answers all `n` with probability
    /// `q^n`; with 30% loss each way (`q` ≈ 0.49) and 5 probes, about 3%, times the chance of
    /// the hop's answers falling as a prefix (about 12%): 0.35% per lossy hop.
    fn rate_limited(&self, last_ttl: u8) -> Vec<u8> {
        let burst =
            |ttl: u8| -> Vec<&Probe> { self.at(ttl).filter(|p| p.sent.is_some()).collect() };
        // Per TTL: Some((sent, answered)) when the hop's probes are all resolved by the path.
        let tally: Vec<Option<(usize, usize)>> = (1..=last_ttl)
            .map(|ttl| {
                let burst = burst(ttl);
                let resolved = burst
                    .iter()
                    .all(|p| !p.failed && (p.answer.is_some() || p.lost));
                let answered = burst.iter().filter(|p| p.answer.is_some()).count();
                resolved.then_some((burst.len(), answered))
            })
            .collect();
        let mut out = Vec::new();
        for ttl in 1..last_ttl {
            let i = usize::from(ttl) - 1;
            let Some((sent, answered)) = tally[i] else {
                continue;
            };
            if answered == 0 || answered == sent {
                continue;
            }
            let burst = burst(ttl);
            let prefix = burst[..answered].iter().all(|p| p.answer.is_some());
            let mut from = burst
                .iter()
                .filter_map(|p| p.answer.as_ref().map(|a| a.from));
            let first = from.next();
            let one_node = from.all(|f| Some(f) == first);
            let (Some(start), Some(end)) = (burst[0].sent, burst[sent - 1].sent) else {
                continue;
            };
            let one_burst = end.saturating_duration_since(start) <= BURST_SPAN;
            let later_full = tally[i + 1..]
                .iter()
                .flatten()
                .any(|&(s, a)| a == s && s >= sent);
            if prefix && one_node && one_burst && later_full {
                out.push(ttl);
            }
        }
        out
    }
}

impl Trace {
    /// The TTL to label as the NAT, when replies came back with quotes a NAT rewrote: the hop
    /// in front of the first such reply, if it answered with its quotes intact (a NAT's own
    /// errors quote the probe before it translates it), else the first hop whose quotes were
    /// rewritten (the NAT is silent, or is that hop).
    fn nat(&self, last_ttl: u8) -> Option<u8> {
        let answers = |ttl: u8| self.at(ttl).filter_map(|p| p.answer.as_ref());
        let first = (1..=last_ttl).find(|&t| answers(t).any(|a| a.translated))?;
        let before = first - 1;
        let intact_before = before >= 1 && answers(before).any(|a| !a.translated);
        Some(if intact_before { before } else { first })
    }
}

/// Annotations as traceroute prints them.
fn labels(protocol: Protocol, a: &Answer, from_target: bool) -> Vec<String> {
    let mut out = Vec::new();
    let code_label = |code: u8, v6: bool| -> Option<String> {
        let s = match (v6, code) {
            (false, 0 | 6 | 9 | 11) | (true, 0) => "!N",
            (false, 1 | 7 | 10 | 12) | (true, 3) => "!H",
            (false, 2) if protocol == Protocol::Gre && from_target => return None,
            (false, 2) => "!P",
            (false, 3) | (true, 4) if from_target && protocol == Protocol::Udp => return None,
            (false, 4) => "!F",
            (false, 5) | (true, 2) => "!S",
            (false, 13) | (true, 1 | 5 | 6) => "!X",
            (false, 14) => "!V",
            (false, 15) => "!C",
            _ => return Some(format!("!{code}")),
        };
        Some(s.to_string())
    };
    match a.kind {
        ReplyKind::Unreachable { code, v6 } => out.extend(code_label(code, v6)),
        ReplyKind::ParamProblem { code: 1, v6: true }
            if protocol == Protocol::Gre && from_target => {}
        ReplyKind::ParamProblem { code: 1, v6: true } => out.push("!P".into()),
        ReplyKind::ParamProblem { code, .. } => out.push(format!("!PP{code}")),
        ReplyKind::TcpSynAck => out.push("open".into()),
        ReplyKind::TcpRst => out.push("closed".into()),
        ReplyKind::TimeExceeded | ReplyKind::EchoReply => {}
    }
    out.extend(a.mpls.iter().map(|m| m.to_string()));
    out
}

#[cfg(test)]
mod tests;
