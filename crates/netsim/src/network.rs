//! The simulated network, sans-IO: handed `now` and the packets the engine sent, it says which
//! packets to give back and when.
//!
//! ```
//! use edgetrace_netsim::{Network, Scenario, SimTime};
//! use edgetrace_wire::{ProbeSpec, Protocol, emit_probe, parse_reply_v4, ReplyKind};
//! use std::time::Duration;
//!
//! let scenario = Scenario::from_toml(r#"
//!     [[router]]
//!     name = "r1"
//!     v4 = "198.18.1.1"
//!     [[host]]
//!     name = "dst"
//!     addresses = ["198.19.0.9"]
//!     [[link]]
//!     between = ["source", "r1"]
//!     latency_ms = 5.0
//!     [[link]]
//!     between = ["r1", "dst"]
//! "#).unwrap();
//! let mut net = Network::new(&scenario);
//! let mut probe = Vec::new();
//! let spec = ProbeSpec {
//!     protocol: Protocol::Icmp,
//!     source: "198.18.0.1".parse().unwrap(),
//!     destination: "198.19.0.9".parse().unwrap(),
//!     ttl: 1,
//!     flow: 0x8001,
//!     port: 1,
//!     seq: 1,
//! };
//! emit_probe(&spec, &mut probe).unwrap();
//! net.on_packet(SimTime::ZERO, &probe);
//! // Nothing before the round trip over the 5 ms link...
//! assert_eq!(net.poll_timeout(), Some(SimTime::ZERO + Duration::from_millis(10)));
//! assert!(net.poll_transmit(SimTime::ZERO + Duration::from_millis(9)).is_none());
//! // ...then r1's time exceeded.
//! let reply = net.poll_transmit(SimTime::ZERO + Duration::from_millis(10)).unwrap();
//! let reply = parse_reply_v4(&reply).unwrap();
//! assert_eq!(reply.kind, ReplyKind::TimeExceeded);
//! assert_eq!(reply.from.to_string(), "198.18.1.1");
//! ```
//!
//! A packet's whole fate is decided when it arrives: it walks the topology link by link
//! (loss and delay drawn per link, ECMP choices made per router) until its TTL runs out, it
//! reaches its destination, or a link drops it; the answer walks the same links back (so the
//! return path is the forward path reversed, through the same NATs). The answer is then queued
//! for delivery at its arrival time.

use crate::bucket::TokenBucket;
use crate::packet::{Datagram, TraceKey, proto};
use crate::reply::{IcmpError, echo_reply, icmp_checksum, icmp_error, tcp_answer};
use crate::rng::Rng;
use crate::scenario::{
    Answer, EcmpMode, HostBehavior, LinkParams, NatQuote, Prefix, SOURCE, Scenario,
};
use crate::{SimTime, Truth};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::IpAddr;
use std::time::Duration;

/// The source node's index.
const SOURCE_NODE: usize = 0;
/// Longest path a packet may take before the simulator calls it a loop.
const MAX_PATH: usize = 255;
/// Delay between a reply and its hostile duplicate.
const DUPLICATE_GAP: Duration = Duration::from_millis(1);

/// Counters of what happened to the packets, for tests and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Packets read from the engine.
    pub received: u64,
    /// Packets that did not parse as IPv4/IPv6.
    pub malformed: u64,
    /// Packets to addresses nobody owns, or with no path.
    pub no_route: u64,
    /// Packets dropped by link loss on the way out.
    pub lost_forward: u64,
    /// Replies dropped by link loss on the way back.
    pub lost_return: u64,
    /// Times a router's TTL expiry drew no reply because it is silent.
    pub silent: u64,
    /// Replies withheld by an ICMP rate limit.
    pub rate_limited: u64,
    /// Packets that reached a host or router that chose not to answer.
    pub dropped_by_target: u64,
    /// Genuine replies queued for the engine.
    pub replies: u64,
    /// Extra hostile packets queued (duplicates, corrupt, unsolicited, cross-trace).
    pub hostile: u64,
}

#[derive(Debug, Clone)]
enum Kind {
    Source,
    Router(Box<crate::scenario::Router>),
    Host(crate::scenario::Host),
}

#[derive(Debug, Clone)]
struct Node {
    kind: Kind,
    /// Per-node ECMP hash salt.
    salt: u64,
}

/// One link crossed, and what a NAT at the node it led to did.
#[derive(Debug, Clone, Copy)]
struct Step {
    link: usize,
    node: usize,
    /// When the packet got to `node`.
    at: SimTime,
    /// The source this node's NAT replaced, and what it restores in quotes.
    nat: Option<(IpAddr, NatQuote)>,
}

/// The probe a reply answers, for the ground truth: its trace, the TTL it was sent with, when
/// it reached the simulator, and who answers it.
#[derive(Debug, Clone, Copy)]
struct Answers {
    key: TraceKey,
    ttl: u8,
    sent: SimTime,
    from: IpAddr,
}

/// What the last expired probe of another trace looked like at a router.
#[derive(Debug, Clone)]
struct Expired {
    key: TraceKey,
    ttl: u8,
    sent: SimTime,
    probe: Datagram,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Pending {
    at: SimTime,
    order: u64,
    packet: Vec<u8>,
}

/// The simulated network.
#[derive(Debug)]
pub struct Network {
    nodes: Vec<Node>,
    /// Per node: (neighbour, link index).
    adjacency: Vec<Vec<(usize, usize)>>,
    links: Vec<LinkParams>,
    /// `next_hops[destination][node]`: equal-cost next hops, sorted.
    next_hops: Vec<Vec<Vec<usize>>>,
    /// Address ownership, longest prefix first.
    owners: Vec<(Prefix, usize)>,
    rng: Rng,
    buckets: Vec<Option<TokenBucket>>,
    round_robin: Vec<usize>,
    last_expired: Vec<Option<Expired>>,
    queue: BinaryHeap<Reverse<Pending>>,
    order: u64,
    stats: Stats,
    truth: Truth,
}

impl Network {
    /// Builds the network of a validated scenario, its RNG seeded with the scenario's seed.
    pub fn new(scenario: &Scenario) -> Network {
        Network::with_seed(scenario, scenario.seed)
    }

    /// Same, with another seed.
    pub fn with_seed(scenario: &Scenario, seed: u64) -> Network {
        let mut rng = Rng::new(seed);
        let mut nodes = vec![Node {
            kind: Kind::Source,
            salt: rng.next_u64(),
        }];
        let mut index: HashMap<&str, usize> = HashMap::from([(SOURCE, SOURCE_NODE)]);
        let mut owners = Vec::new();
        if let Some(a) = scenario.source.v4 {
            owners.push((
                Prefix {
                    addr: a.into(),
                    len: 32,
                },
                SOURCE_NODE,
            ));
        }
        if let Some(a) = scenario.source.v6 {
            owners.push((
                Prefix {
                    addr: a.into(),
                    len: 128,
                },
                SOURCE_NODE,
            ));
        }
        for r in &scenario.routers {
            let n = nodes.len();
            index.insert(&r.name, n);
            let addrs = [
                r.v4.map(IpAddr::V4),
                r.v6.map(IpAddr::V6),
                r.reply_v4.map(IpAddr::V4),
                r.reply_v6.map(IpAddr::V6),
                r.nat.and_then(|x| x.v4).map(IpAddr::V4),
                r.nat.and_then(|x| x.v6).map(IpAddr::V6),
            ];
            for a in addrs.into_iter().flatten() {
                let len = if a.is_ipv4() { 32 } else { 128 };
                owners.push((Prefix { addr: a, len }, n));
            }
            nodes.push(Node {
                kind: Kind::Router(Box::new(r.clone())),
                salt: rng.next_u64(),
            });
        }
        for h in &scenario.hosts {
            let n = nodes.len();
            index.insert(&h.name, n);
            owners.extend(h.addresses.iter().map(|p| (*p, n)));
            nodes.push(Node {
                kind: Kind::Host(h.clone()),
                salt: rng.next_u64(),
            });
        }
        owners.sort_by_key(|(p, _)| Reverse(p.len));
        let mut adjacency = vec![Vec::new(); nodes.len()];
        let mut links = Vec::new();
        let mut costs = Vec::new();
        for l in &scenario.links {
            // Validation guarantees both names exist.
            let (Some(&a), Some(&b)) = (index.get(l.a.as_str()), index.get(l.b.as_str())) else {
                continue;
            };
            let i = links.len();
            links.push(l.params);
            costs.push(l.cost);
            adjacency[a].push((b, i));
            adjacency[b].push((a, i));
        }
        let is_router: Vec<bool> = nodes
            .iter()
            .map(|n| matches!(n.kind, Kind::Router(_)))
            .collect();
        let next_hops = (0..nodes.len())
            .map(|dest| routes_to(dest, &adjacency, &costs, &is_router))
            .collect();
        let buckets = nodes
            .iter()
            .map(|n| match &n.kind {
                Kind::Router(r) => r.icmp_rate.map(|l| TokenBucket::new(l.per_second, l.burst)),
                _ => None,
            })
            .collect();
        Network {
            round_robin: vec![0; nodes.len()],
            last_expired: vec![None; nodes.len()],
            nodes,
            adjacency,
            links,
            next_hops,
            owners,
            rng,
            buckets,
            queue: BinaryHeap::new(),
            order: 0,
            stats: Stats::default(),
            truth: Truth::default(),
        }
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Which genuine replies were delivered, per probe: what the engine should have seen.
    pub fn truth(&self) -> &Truth {
        &self.truth
    }

    /// The next packet due for the engine at `now`.
    pub fn poll_transmit(&mut self, now: SimTime) -> Option<Vec<u8>> {
        if self.queue.peek().is_some_and(|p| p.0.at <= now) {
            self.queue.pop().map(|p| p.0.packet)
        } else {
            None
        }
    }

    /// When the next packet is due; `None` when nothing is in flight.
    pub fn poll_timeout(&self) -> Option<SimTime> {
        self.queue.peek().map(|p| p.0.at)
    }

    /// Packets in flight.
    pub fn in_flight(&self) -> usize {
        self.queue.len()
    }

    fn owner(&self, ip: IpAddr) -> Option<usize> {
        self.owners
            .iter()
            .find(|(p, _)| p.contains(ip))
            .map(|(_, n)| *n)
    }

    fn link_between(&self, a: usize, b: usize) -> Option<usize> {
        self.adjacency[a]
            .iter()
            .find(|(n, _)| *n == b)
            .map(|(_, l)| *l)
    }

    fn next_hop(&mut self, node: usize, dest: usize, d: &Datagram) -> Option<usize> {
        let hops = &self.next_hops[dest][node];
        match hops.len() {
            0 => None,
            1 => Some(hops[0]),
            n => {
                let mode = match &self.nodes[node].kind {
                    Kind::Router(r) => r.ecmp,
                    _ => EcmpMode::Flow,
                };
                let i = match mode {
                    EcmpMode::Flow => (d.flow_hash(self.nodes[node].salt) % n as u64) as usize,
                    EcmpMode::Packet => {
                        self.round_robin[node] = self.round_robin[node].wrapping_add(1);
                        self.round_robin[node] % n
                    }
                };
                Some(hops[i])
            }
        }
    }

    /// Crosses a link: false when it drops the packet, else `t` moves on by its delay.
    fn traverse(&mut self, link: usize, t: &mut SimTime) -> bool {
        let p = self.links[link];
        if self.rng.chance(p.loss.get()) {
            return false;
        }
        let mut delay = p.latency.as_secs_f64();
        if !p.jitter.is_zero() {
            delay += p.jitter.as_secs_f64() * self.rng.normal();
        }
        *t = *t + Duration::from_secs_f64(delay.max(0.0));
        true
    }

    /// Takes a packet the engine sent at `now`.
    pub fn on_packet(&mut self, now: SimTime, bytes: &[u8]) {
        let Ok(mut d) = Datagram::parse(bytes) else {
            self.stats.malformed += 1;
            return;
        };
        self.stats.received += 1;
        let Some(dest) = self.owner(d.dst).filter(|n| *n != SOURCE_NODE) else {
            self.stats.no_route += 1;
            return;
        };
        let key = d.trace_key();
        let sent_ttl = d.ttl;
        let mut node = SOURCE_NODE;
        let mut t = now;
        let mut path: Vec<Step> = Vec::new();
        loop {
            let Some(next) = self.next_hop(node, dest, &d) else {
                self.stats.no_route += 1;
                return;
            };
            let Some(link) = self.link_between(node, next) else {
                self.stats.no_route += 1;
                return;
            };
            if !self.traverse(link, &mut t) {
                self.stats.lost_forward += 1;
                return;
            }
            path.push(Step {
                link,
                node: next,
                at: t,
                nat: None,
            });
            node = next;
            if node == dest {
                self.arrive(d, key, sent_ttl, now, &path);
                return;
            }
            if d.ttl <= 1 || path.len() >= MAX_PATH {
                self.expire(d, key, sent_ttl, now, &path);
                return;
            }
            d.set_ttl(d.ttl - 1);
            if let Kind::Router(r) = &self.nodes[node].kind
                && let Some(nat) = r.nat
            {
                let outside = if d.v6 {
                    nat.v6.map(IpAddr::V6)
                } else {
                    nat.v4.map(IpAddr::V4)
                };
                if let Some(outside) = outside {
                    let inside = d.src;
                    d.set_src(outside);
                    if let Some(step) = path.last_mut() {
                        step.nat = Some((inside, nat.quote));
                    }
                }
            }
        }
    }

    /// Whether router `node` may send one more ICMP message at `t` (silence, rate limit).
    fn may_answer(&mut self, node: usize, t: SimTime) -> bool {
        let Kind::Router(r) = &self.nodes[node].kind else {
            return true;
        };
        if r.answer == Answer::Silent {
            self.stats.silent += 1;
            return false;
        }
        if let Some(b) = &mut self.buckets[node]
            && !b.take(t)
        {
            self.stats.rate_limited += 1;
            return false;
        }
        true
    }

    /// The probe's TTL ran out at the last node of `path`, a router.
    fn expire(&mut self, d: Datagram, key: TraceKey, sent_ttl: u8, sent: SimTime, path: &[Step]) {
        let at = path.len() - 1;
        let node = path[at].node;
        if !self.may_answer(node, path[at].at) {
            return;
        }
        let Kind::Router(r) = &self.nodes[node].kind else {
            return;
        };
        let r = r.clone();
        let Some(from) = r.reply_address(d.v6) else {
            return;
        };
        let reply = icmp_error(from, &d, IcmpError::TimeExceeded, r.quote_bytes, &r.mpls);
        let answers = Answers {
            key,
            ttl: sent_ttl,
            sent,
            from,
        };
        let h = r.hostile;
        if self.rng.chance(h.corrupt.get()) {
            // Damaged in transit: a bit of the quoted sequence flipped, checksum left stale.
            let mut damaged = d.clone();
            damaged.set_sequence(d.sequence().unwrap_or(0) ^ 1);
            let mut bad = icmp_error(
                from,
                &damaged,
                IcmpError::TimeExceeded,
                r.quote_bytes,
                &r.mpls,
            );
            let sum = if d.v6 { 40 + 2 } else { 20 + 2 };
            if bad.len() >= sum + 2 && reply.len() >= sum + 2 {
                bad[sum..sum + 2].copy_from_slice(&reply[sum..sum + 2]);
            }
            self.send_back(bad, path, at, None, true);
        } else {
            self.send_back(reply.clone(), path, at, Some(answers), false);
            if self.rng.chance(h.duplicate.get()) {
                let mut later = path.to_vec();
                later[at].at = later[at].at + DUPLICATE_GAP;
                self.send_back(reply, &later, at, Some(answers), true);
            }
        }
        if self.rng.chance(h.unsolicited.get()) {
            let mut never_sent = d.clone();
            never_sent.set_sequence(0xf000 | (self.rng.next_u64() as u16 & 0x0fff));
            let quote = icmp_error(
                from,
                &never_sent,
                IcmpError::TimeExceeded,
                r.quote_bytes,
                &[],
            );
            self.send_back(quote, path, at, None, true);
            // And an echo reply from a random address of the range, to a random identifier.
            if let Some(echo) = self.unsolicited_echo(&d) {
                self.send_back(echo, path, at, None, true);
            }
        }
        if self.rng.chance(h.cross_trace.get())
            && let Some(other) = self.last_expired[node].clone()
            && other.key != key
        {
            let late = icmp_error(
                from,
                &other.probe,
                IcmpError::TimeExceeded,
                r.quote_bytes,
                &r.mpls,
            );
            let answers = Answers {
                key: other.key,
                ttl: other.ttl,
                sent: other.sent,
                from,
            };
            self.send_back(late, path, at, Some(answers), true);
        }
        if h.cross_trace.get() > 0.0 {
            self.last_expired[node] = Some(Expired {
                key,
                ttl: sent_ttl,
                sent,
                probe: d,
            });
        }
    }

    fn unsolicited_echo(&mut self, probe: &Datagram) -> Option<Vec<u8>> {
        let r = self.rng.next_u64();
        let stranger: IpAddr = if probe.v6 {
            IpAddr::V6(std::net::Ipv6Addr::new(
                0x2001,
                2,
                0,
                0xfff0,
                0,
                0,
                (r >> 16) as u16,
                r as u16,
            ))
        } else {
            IpAddr::V4(std::net::Ipv4Addr::new(198, 19, 254, r as u8))
        };
        let v6 = probe.v6;
        let request = crate::reply::ip_packet(
            probe.src,
            stranger,
            if v6 { proto::ICMPV6 } else { proto::ICMP },
            &[
                if v6 { 128 } else { 8 },
                0,
                0,
                0,
                (r >> 40) as u8,
                (r >> 32) as u8,
                0,
                1,
            ],
        );
        echo_reply(&Datagram::parse(&request).ok()?)
    }

    /// The packet reached its destination node, the last of `path`.
    fn arrive(&mut self, d: Datagram, key: TraceKey, sent_ttl: u8, sent: SimTime, path: &[Step]) {
        let at = path.len() - 1;
        let node = path[at].node;
        let behavior = match &self.nodes[node].kind {
            Kind::Host(h) => h.behavior,
            _ => HostBehavior::Answer,
        };
        let unreachable = match behavior {
            HostBehavior::Drop => {
                self.stats.dropped_by_target += 1;
                return;
            }
            HostBehavior::Answer => None,
            HostBehavior::HostUnreachable => Some(IcmpError::HostUnreachable),
            HostBehavior::NetUnreachable => Some(IcmpError::NetUnreachable),
            HostBehavior::AdminProhibited => Some(IcmpError::AdminProhibited),
        };
        if let Some(kind) = unreachable {
            // The router in front of the host says so (the host itself when none is).
            let (replier, from) = match at.checked_sub(1).map(|i| (i, path[i].node)) {
                Some((i, n)) => match &self.nodes[n].kind {
                    Kind::Router(r) => match r.reply_address(d.v6) {
                        Some(a) => (i, a),
                        None => return,
                    },
                    _ => (at, d.dst),
                },
                None => (at, d.dst),
            };
            if !self.may_answer(path[replier].node, path[replier].at) {
                return;
            }
            let quote = match &self.nodes[path[replier].node].kind {
                Kind::Router(r) => r.quote_bytes,
                _ => None,
            };
            let reply = icmp_error(from, &d, kind, quote, &[]);
            let answers = Answers {
                key,
                ttl: sent_ttl,
                sent,
                from,
            };
            self.send_back(reply, path, replier, Some(answers), false);
            return;
        }
        let tcp_open = match &self.nodes[node].kind {
            Kind::Host(h) => h.tcp_open.clone(),
            _ => Vec::new(),
        };
        if !self.may_answer(node, path[at].at) {
            return;
        }
        let reply = match d.protocol {
            proto::ICMP | proto::ICMPV6 => echo_reply(&d),
            proto::TCP => {
                let port = d.l4().get(2..4).map(|b| u16::from_be_bytes([b[0], b[1]]));
                tcp_answer(&d, port.is_some_and(|p| tcp_open.contains(&p)))
            }
            proto::UDP => Some(icmp_error(d.dst, &d, IcmpError::PortUnreachable, None, &[])),
            _ => Some(icmp_error(
                d.dst,
                &d,
                IcmpError::ProtocolUnreachable,
                None,
                &[],
            )),
        };
        match reply {
            Some(r) => {
                let answers = Answers {
                    key,
                    ttl: sent_ttl,
                    sent,
                    from: d.dst,
                };
                self.send_back(r, path, at, Some(answers), false);
            }
            None => self.stats.dropped_by_target += 1,
        }
    }

    /// Sends `reply` from the node at `path[from]` back to the source over the same links,
    /// undoing NATs on the way. `truth` names the probe it genuinely answers.
    fn send_back(
        &mut self,
        mut reply: Vec<u8>,
        path: &[Step],
        from: usize,
        truth: Option<Answers>,
        hostile: bool,
    ) {
        if reply.is_empty() {
            return;
        }
        let mut t = path[from].at;
        for i in (0..=from).rev() {
            let step = path[i];
            if i < from
                && let Some((inside, quote)) = step.nat
            {
                reply = nat_reverse(reply, inside, quote);
            }
            if !self.traverse(step.link, &mut t) {
                self.stats.lost_return += 1;
                return;
            }
        }
        if hostile {
            self.stats.hostile += 1;
        } else {
            self.stats.replies += 1;
        }
        if let Some(a) = truth {
            self.truth.record(a.key, a.ttl, a.from);
            if !hostile {
                self.truth.record_rtt(a.key, a.ttl, t - a.sent);
            }
        }
        self.order += 1;
        self.queue.push(Reverse(Pending {
            at: t,
            order: self.order,
            packet: reply,
        }));
    }
}

/// Undoes a source NAT on a reply coming back: the destination becomes the inside address
/// again, and in ICMP errors the quoted source too (and, with [`NatQuote::Full`], the quoted
/// transport checksum).
fn nat_reverse(reply: Vec<u8>, inside: IpAddr, quote: NatQuote) -> Vec<u8> {
    let Ok(mut d) = Datagram::parse(&reply) else {
        return reply;
    };
    d.set_dst(inside);
    let is_error = matches!(
        (d.v6, d.icmp_type()),
        (false, Some(3 | 11 | 12)) | (true, Some(1 | 3 | 4))
    );
    if !is_error {
        return d.into_bytes();
    }
    let l4_at = if d.v6 {
        40
    } else {
        d.bytes().len() - d.l4().len()
    };
    let mut bytes = d.into_bytes();
    let quoted_at = l4_at + 8;
    if let Ok(mut q) = Datagram::parse(&bytes[quoted_at..]) {
        let keep_checksum = quote == NatQuote::Address;
        let transport_sum = match q.protocol {
            proto::UDP => Some(6),
            proto::TCP => Some(16),
            proto::ICMPV6 => Some(2),
            _ => None,
        };
        let l4_len = q.l4().len();
        let q_l4_at = q.bytes().len() - l4_len;
        let before = transport_sum.and_then(|o| q.l4().get(o..o + 2).map(|b| [b[0], b[1]]));
        q.set_src(inside);
        let mut qb = q.into_bytes();
        if keep_checksum && let (Some(o), Some(b)) = (transport_sum, before) {
            qb[q_l4_at + o..q_l4_at + o + 2].copy_from_slice(&b);
        }
        let end = (quoted_at + qb.len()).min(bytes.len());
        bytes[quoted_at..end].copy_from_slice(&qb[..end - quoted_at]);
    }
    if let Ok(d) = Datagram::parse(&bytes)
        && let Some(sum) = icmp_checksum(d.src, d.dst, d.l4())
    {
        bytes[l4_at + 2..l4_at + 4].copy_from_slice(&sum.to_be_bytes());
    }
    bytes
}

/// Equal-cost next hops towards `dest` from every node (Dijkstra from the destination).
/// Only routers carry transit traffic; the source and hosts are ends.
fn routes_to(
    dest: usize,
    adjacency: &[Vec<(usize, usize)>],
    costs: &[u32],
    is_router: &[bool],
) -> Vec<Vec<usize>> {
    let n = adjacency.len();
    let mut dist = vec![u64::MAX; n];
    dist[dest] = 0;
    let mut heap = BinaryHeap::from([Reverse((0u64, dest))]);
    while let Some(Reverse((d, u))) = heap.pop() {
        if d > dist[u] || (u != dest && !is_router[u]) {
            continue;
        }
        for &(v, l) in &adjacency[u] {
            let nd = d + u64::from(costs[l]);
            if nd < dist[v] {
                dist[v] = nd;
                heap.push(Reverse((nd, v)));
            }
        }
    }
    (0..n)
        .map(|u| {
            if u == dest || dist[u] == u64::MAX {
                return Vec::new();
            }
            let mut hops: Vec<usize> = adjacency[u]
                .iter()
                .filter(|&&(v, l)| {
                    (v == dest || is_router[v])
                        && dist[v] != u64::MAX
                        && dist[v] + u64::from(costs[l]) == dist[u]
                })
                .map(|&(v, _)| v)
                .collect();
            hops.sort_unstable();
            hops.dedup();
            hops
        })
        .collect()
}

#[cfg(test)]
mod tests;
