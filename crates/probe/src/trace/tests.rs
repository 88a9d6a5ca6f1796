//! The engine against a fake path in virtual time. Replies are real bytes built by
//! `edgetrace_wire::testing` and parsed back, so matching is exercised as on the wire.

use super::*;
use crate::options::{Confidence, FlowCount, MaxTtl, Options, PacketsPerTtl, Paths};
use crate::report::{Colo, ColoTrace, NAT, RATE_LIMITED};
use edgetrace_wire::{parse_reply_v4, testing};
use std::cell::{Cell, RefCell};
use std::net::Ipv4Addr;

const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const TARGET: Ipv4Addr = Ipv4Addr::new(198, 18, 9, 9);

/// A linear path: router at TTL i answers from `router(i)`; the target is at `target_ttl`.
struct FakePath {
    target_ttl: u8,
    /// Round-trip time to the hop at each TTL (index TTL-1); beyond the list, the last value.
    rtt: Vec<Duration>,
    silent: Vec<u8>,
    target_silent: bool,
    /// A router that answers "host unreachable" for everything beyond it.
    unreachable_at: Option<u8>,
    /// The router at this TTL limits its ICMP with a token bucket.
    rate_limit: Option<(u8, TokenBucket)>,
    /// A link in front of this TTL loses packets with this probability each way.
    lossy: Option<(u8, f64)>,
    rng: Cell<u64>,
    /// The router at this TTL translates our source address; the errors of hops beyond it come
    /// back with the quoted address restored but the UDP checksum still translated.
    nat_at: Option<u8>,
    /// Per-flow load balancing: from this TTL up to the target, the router a probe meets
    /// depends on its flow, one of this many branches (`branch_router`).
    ecmp: Option<(u8, u8)>,
}

/// A router's ICMP token bucket: `burst` tokens, refilled at `per_second`.
struct TokenBucket {
    per_second: f64,
    burst: f64,
    state: RefCell<(f64, Option<Instant>)>,
}

impl TokenBucket {
    fn new(per_second: f64, burst: u32) -> TokenBucket {
        TokenBucket {
            per_second,
            burst: f64::from(burst),
            state: RefCell::new((f64::from(burst), None)),
        }
    }

    fn take(&self, now: Instant) -> bool {
        let mut s = self.state.borrow_mut();
        let elapsed =
            s.1.map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64());
        s.0 = (s.0 + elapsed * self.per_second).min(self.burst);
        s.1 = Some(now);
        if s.0 >= 1.0 {
            s.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

fn router(ttl: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, ttl, 1)
}

/// The router of branch `b` at `ttl` behind a load balancer.
fn branch_router(ttl: u8, b: u64) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, ttl, 100 + b as u8)
}

/// What a load balancer hashes (as routers do: ports, ICMP checksum, GRE key), mixed.
fn flow_hash(protocol: Protocol, probe: &[u8]) -> u64 {
    let l4 = &probe[20..];
    let key = match protocol {
        Protocol::Icmp => u64::from(u16::from_be_bytes([l4[2], l4[3]])),
        Protocol::Udp | Protocol::Tcp => {
            u64::from(u32::from_be_bytes([l4[0], l4[1], l4[2], l4[3]]))
        }
        Protocol::Gre => u64::from(u32::from_be_bytes([l4[4], l4[5], l4[6], l4[7]])),
    };
    // splitmix64's finalizer.
    let mut z = key.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl FakePath {
    fn linear(target_ttl: u8, rtt_ms: f64) -> FakePath {
        FakePath {
            target_ttl,
            rtt: (1..=target_ttl)
                .map(|t| Duration::from_secs_f64(rtt_ms * f64::from(t) / 1e3))
                .collect(),
            silent: vec![],
            target_silent: false,
            unreachable_at: None,
            rate_limit: None,
            lossy: None,
            rng: Cell::new(0x9e37_79b9_7f4a_7c15),
            nat_at: None,
            ecmp: None,
        }
    }

    fn seeded(mut self, seed: u64) -> FakePath {
        self.rng = Cell::new(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        self
    }

    /// Whether a packet crossing the lossy link (if `ttl` takes it there) is lost, once each way.
    fn lost(&self, ttl: u8) -> bool {
        let Some((from, p)) = self.lossy else {
            return false;
        };
        if ttl < from {
            return false;
        }
        let mut x = self.rng.get();
        let mut draw = || {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64
        };
        let lost = draw() < p || draw() < p;
        self.rng.set(x);
        lost
    }

    fn rtt(&self, ttl: u8) -> Duration {
        let i = usize::from(ttl.min(self.target_ttl)) - 1;
        self.rtt[i.min(self.rtt.len() - 1)]
    }

    /// The reply a probe sent at `now` draws, if any.
    fn answer(&self, protocol: Protocol, ttl: u8, probe: &[u8], now: Instant) -> Option<Vec<u8>> {
        if self.lost(ttl) {
            return None;
        }
        if let Some((at, bucket)) = &self.rate_limit
            && ttl == *at
            && ttl < self.target_ttl
            && !bucket.take(now + self.rtt(ttl) / 2)
        {
            return None;
        }
        let translated;
        let probe = match self.nat_at {
            Some(n) if ttl > n && probe[9] == 17 => {
                let mut p = probe.to_vec();
                let sum = u16::from_be_bytes([p[26], p[27]]).wrapping_add(0x3f00);
                p[26..28].copy_from_slice(&sum.to_be_bytes());
                translated = p;
                &translated[..]
            }
            _ => probe,
        };
        if let Some(u) = self.unreachable_at
            && ttl > u
        {
            return Some(testing::unreachable_v4(router(u), 1, probe));
        }
        if ttl < self.target_ttl {
            let from = match self.ecmp {
                Some((from, branches)) if ttl >= from => {
                    branch_router(ttl, flow_hash(protocol, probe) % u64::from(branches))
                }
                _ => router(ttl),
            };
            return (!self.silent.contains(&ttl)).then(|| testing::time_exceeded_v4(from, probe));
        }
        if self.target_silent {
            return None;
        }
        let seq = u16::from_be_bytes([probe[4], probe[5]]);
        Some(match protocol {
            Protocol::Icmp => {
                let id = u16::from_be_bytes([probe[24], probe[25]]);
                let s = u16::from_be_bytes([probe[26], probe[27]]);
                testing::echo_reply_v4(TARGET, SRC, id, s)
            }
            Protocol::Udp => testing::unreachable_v4(TARGET, 3, probe),
            Protocol::Tcp => {
                let flow = u16::from_be_bytes([probe[20], probe[21]]);
                let tcp_seq = u32::from_be_bytes([probe[24], probe[25], probe[26], probe[27]]);
                testing::tcp_reply_v4(
                    TARGET,
                    SRC,
                    80,
                    flow,
                    tcp_seq.wrapping_add(1),
                    seq.is_multiple_of(2),
                )
            }
            Protocol::Gre => testing::unreachable_v4(TARGET, 2, probe),
        })
    }
}

struct Run {
    outcome: TraceOutcome,
    elapsed: Duration,
    sent: usize,
    highest_ttl: u8,
}

/// Drives a trace in virtual time until done (or a safety bound).
fn run(path: &FakePath, protocol: Protocol, options: Options) -> Run {
    let flows = (0..u32::from(options.paths.max_flows()))
        .map(|i| 0x8042 + i)
        .collect();
    let cfg = TraceConfig::new(protocol, SRC.into(), TARGET.into(), flows, &options);
    let mut trace = Trace::new(cfg);
    let t0 = Instant::now();
    let mut now = t0;
    let mut in_flight: Vec<(Instant, Vec<u8>)> = Vec::new();
    let (mut sent, mut highest_ttl) = (0, 0);
    let mut buf = Vec::new();
    for _ in 0..100_000 {
        while let Some(tx) = trace.poll_transmit(now, &mut buf) {
            sent += 1;
            highest_ttl = highest_ttl.max(tx.ttl);
            if let Some(reply) = path.answer(protocol, tx.ttl, &buf, now) {
                in_flight.push((now + path.rtt(tx.ttl), reply));
            }
        }
        trace.handle_timeout(now);
        if trace.is_done() {
            break;
        }
        let next_reply = in_flight.iter().map(|(t, _)| *t).min();
        now = match (trace.poll_timeout(), next_reply) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).expect("a trace that is not done must want waking"),
        }
        .max(now);
        in_flight.retain(|(t, bytes)| {
            if *t <= now {
                trace.on_reply(now, &parse_reply_v4(bytes).unwrap());
                false
            } else {
                true
            }
        });
    }
    assert!(trace.is_done(), "trace never finished");
    Run {
        outcome: trace.outcome(),
        elapsed: now - t0,
        sent,
        highest_ttl,
    }
}

fn hop_ips(o: &TraceOutcome) -> Vec<Vec<IpAddr>> {
    o.hops
        .iter()
        .map(|h| h.nodes.iter().map(|n| n.ip).collect())
        .collect()
}

fn expected_path(target_ttl: u8, silent: &[u8]) -> Vec<Vec<IpAddr>> {
    (1..=target_ttl)
        .map(|t| match t {
            t if t == target_ttl => vec![IpAddr::V4(TARGET)],
            t if silent.contains(&t) => vec![],
            t => vec![IpAddr::V4(router(t))],
        })
        .collect()
}

#[test]
fn every_hop_answers_in_about_two_round_trips_and_few_probes() {
    for protocol in [Protocol::Icmp, Protocol::Udp, Protocol::Tcp, Protocol::Gre] {
        let path = FakePath::linear(7, 0.1);
        let r = run(&path, protocol, Options::default());
        assert_eq!(hop_ips(&r.outcome), expected_path(7, &[]), "{protocol:?}");
        let rtt = path.rtt(7);
        assert!(
            r.elapsed <= rtt * 2 + Duration::from_millis(5),
            "{protocol:?}: {:?}",
            r.elapsed
        );
        assert!(r.sent <= 32, "{protocol:?}: {} probes", r.sent);
        assert!(
            r.highest_ttl <= 11,
            "{protocol:?}: probed TTL {}",
            r.highest_ttl
        );
        for h in &r.outcome.hops {
            assert_eq!((h.sent, h.received()), (3, 3), "TTL {}", h.ttl);
        }
    }
}

#[test]
fn tcp_open_and_closed_are_labelled() {
    let r = run(&FakePath::linear(3, 0.1), Protocol::Tcp, Options::default());
    let target = &r.outcome.hops[2].nodes[0];
    assert_eq!(target.rtts.len(), 3);
    assert!(target.labels.contains(&"open".to_string()));
    assert!(target.labels.contains(&"closed".to_string()));
}

#[test]
fn silent_routers_cost_one_wait_in_total() {
    let mut path = FakePath::linear(7, 0.1);
    path.silent = vec![3, 4];
    let r = run(&path, Protocol::Icmp, Options::default());
    assert_eq!(hop_ips(&r.outcome), expected_path(7, &[3, 4]));
    assert!(r.elapsed <= Duration::from_millis(1050), "{:?}", r.elapsed);
    assert_eq!(r.outcome.hops[2].sent, 3);
    assert_eq!(r.outcome.hops[2].received(), 0);
}

#[test]
fn silent_target_runs_to_max_ttl_within_about_one_wait() {
    let mut path = FakePath::linear(7, 0.1);
    path.target_silent = true;
    let r = run(&path, Protocol::Udp, Options::default());
    assert_eq!(r.outcome.hops.len(), 30);
    assert_eq!(r.highest_ttl, 30);
    assert!(r.elapsed <= Duration::from_millis(1100), "{:?}", r.elapsed);
    assert!(
        r.outcome.hops[6..]
            .iter()
            .all(|h| h.nodes.is_empty() && h.sent == 3)
    );
}

#[test]
fn long_link_costs_one_round_trip_not_one_wait() {
    let mut path = FakePath::linear(7, 0.1);
    // +40 ms each way from TTL 4 on.
    for t in 4..=7 {
        path.rtt[t - 1] += Duration::from_millis(80);
    }
    let r = run(&path, Protocol::Icmp, Options::default());
    assert_eq!(hop_ips(&r.outcome), expected_path(7, &[]));
    assert!(r.elapsed <= Duration::from_millis(90), "{:?}", r.elapsed);
}

#[test]
fn unreachable_router_ends_the_trace_with_its_code() {
    let mut path = FakePath::linear(7, 0.1);
    path.unreachable_at = Some(4);
    let r = run(&path, Protocol::Udp, Options::default());
    assert_eq!(r.outcome.hops.len(), 5);
    let last = &r.outcome.hops[4].nodes[0];
    assert_eq!(last.ip, IpAddr::V4(router(4)));
    assert_eq!(last.labels, vec!["!H"]);
}

#[test]
fn udp_port_unreachable_from_target_is_not_labelled_but_gre_protocol_unreachable_neither() {
    for protocol in [Protocol::Udp, Protocol::Gre] {
        let r = run(&FakePath::linear(2, 0.1), protocol, Options::default());
        assert!(r.outcome.hops[1].nodes[0].labels.is_empty(), "{protocol:?}");
    }
}

#[test]
fn max_ttl_and_packets_per_ttl_are_honoured() {
    let mut path = FakePath::linear(9, 0.1);
    path.target_silent = true;
    let options = Options {
        max_ttl: MaxTtl::new(5).unwrap(),
        packets_per_ttl: PacketsPerTtl::new(1).unwrap(),
        ..Options::default()
    };
    let r = run(&path, Protocol::Icmp, options);
    assert_eq!((r.sent, r.highest_ttl, r.outcome.hops.len()), (5, 5, 5));
}

fn probe_bytes(cfg: &TraceConfig, ttl: u8, seq: u16) -> Vec<u8> {
    let spec = ProbeSpec {
        protocol: cfg.protocol,
        source: cfg.source,
        destination: cfg.target,
        ttl,
        flow: cfg.flow(),
        port: cfg.port,
        seq,
    };
    let mut buf = Vec::new();
    emit_probe(&spec, &mut buf).unwrap();
    buf
}

#[test]
fn foreign_duplicate_late_and_unsent_replies_are_ignored() {
    let options = Options::default();
    let cfg = TraceConfig::new(
        Protocol::Udp,
        SRC.into(),
        TARGET.into(),
        vec![0x8042],
        &options,
    );
    let mut trace = Trace::new(cfg.clone());
    let t0 = Instant::now();
    let mut buf = Vec::new();
    while trace.poll_transmit(t0, &mut buf).is_some() {}
    let t1 = t0 + Duration::from_millis(1);
    // Another trace's probe (other flow) to the same target.
    let other = TraceConfig {
        flows: vec![0x8043],
        ..cfg.clone()
    };
    let foreign = parse_reply_v4(&testing::time_exceeded_v4(
        router(1),
        &probe_bytes(&other, 1, 1),
    ))
    .unwrap();
    assert!(!trace.on_reply(t1, &foreign));
    // A probe this trace never sent (TTL 20's sequence).
    let unsent = parse_reply_v4(&testing::time_exceeded_v4(
        router(9),
        &probe_bytes(&cfg, 20, 58),
    ))
    .unwrap();
    assert!(!trace.on_reply(t1, &unsent));
    // The real reply, then its duplicate.
    let real = parse_reply_v4(&testing::time_exceeded_v4(
        router(1),
        &probe_bytes(&cfg, 1, 1),
    ))
    .unwrap();
    assert!(trace.on_reply(t1, &real));
    assert!(!trace.on_reply(t1, &real));
    // A reply after the wait time counts as lost.
    let t2 = t0 + Duration::from_millis(1500);
    trace.handle_timeout(t2);
    let late = parse_reply_v4(&testing::time_exceeded_v4(
        router(1),
        &probe_bytes(&cfg, 1, 2),
    ))
    .unwrap();
    assert!(!trace.on_reply(t2, &late));
    assert_eq!(trace.outcome().hops[0].received(), 1);
}

#[test]
fn first_icmp_sequence_is_the_port_option() {
    let options = Options {
        port: 65535,
        ..Options::default()
    };
    let cfg = TraceConfig::new(Protocol::Icmp, SRC.into(), TARGET.into(), vec![7], &options);
    let mut trace = Trace::new(cfg);
    let mut buf = Vec::new();
    let t0 = Instant::now();
    trace.poll_transmit(t0, &mut buf).unwrap();
    assert_eq!(u16::from_be_bytes([buf[26], buf[27]]), 65535);
    trace.poll_transmit(t0, &mut buf).unwrap();
    assert_eq!(u16::from_be_bytes([buf[26], buf[27]]), 0, "wraps");
    let reply = parse_reply_v4(&testing::echo_reply_v4(TARGET, SRC, 7, 0)).unwrap();
    assert!(trace.on_reply(t0 + Duration::from_millis(1), &reply));
}

fn labelled(o: &TraceOutcome, label: &str) -> Vec<u8> {
    o.hops
        .iter()
        .filter(|h| h.nodes.iter().any(|n| n.labels.iter().any(|l| l == label)))
        .map(|h| h.ttl)
        .collect()
}

fn ppt(n: u64) -> Options {
    Options {
        packets_per_ttl: PacketsPerTtl::new(n).unwrap(),
        ..Options::default()
    }
}

#[test]
fn rate_limited_router_is_labelled_and_no_other_hop() {
    for (n, burst) in [(3, 1), (3, 2), (5, 2), (10, 4)] {
        let mut path = FakePath::linear(7, 0.1);
        path.rate_limit = Some((3, TokenBucket::new(1.0, burst)));
        let r = run(&path, Protocol::Icmp, ppt(n));
        assert_eq!(hop_ips(&r.outcome), expected_path(7, &[]), "{n} probes");
        let hop = &r.outcome.hops[2];
        assert_eq!(
            (hop.sent, hop.received()),
            (n as u32, burst),
            "{n} probes, burst {burst}"
        );
        assert_eq!(labelled(&r.outcome, RATE_LIMITED), [3], "{n} probes");
        assert_eq!(hop.nodes[0].labels, [RATE_LIMITED]);
    }
}

#[test]
fn a_bucket_that_never_runs_dry_is_not_labelled() {
    let mut path = FakePath::linear(7, 0.1);
    path.rate_limit = Some((3, TokenBucket::new(1.0, 3)));
    let r = run(&path, Protocol::Udp, ppt(3));
    assert_eq!(r.outcome.hops[2].received(), 3);
    assert!(labelled(&r.outcome, RATE_LIMITED).is_empty());
}

/// 30% loss each way in front of TTL 5 (as netsim's `ratelimit` scenario), 500 seeds of 5
/// probes per TTL: a lossy hop is almost never called rate-limited, the rate-limited router
/// upstream always is (when it answered at all: always, here, alone on the path).
#[test]
fn lossy_link_is_rarely_mistaken_for_rate_limiting() {
    let (mut wrong, mut right, mut lossy_hops) = (0, 0, 0);
    for seed in 0..500 {
        let mut path = FakePath::linear(6, 0.1).seeded(seed);
        path.lossy = Some((5, 0.3));
        path.rate_limit = Some((2, TokenBucket::new(1.0, 2)));
        let r = run(&path, Protocol::Icmp, ppt(5));
        let marked = labelled(&r.outcome, RATE_LIMITED);
        right += usize::from(marked.contains(&2));
        wrong += marked.iter().filter(|&&t| t != 2).count();
        lossy_hops += r.outcome.hops[4..]
            .iter()
            .filter(|h| h.received() < h.sent)
            .count();
    }
    eprintln!(
        "500 traces: rate-limited hop labelled {right}, lossy hops {lossy_hops}, of them labelled {wrong}"
    );
    assert_eq!(right, 500);
    // Expected about 0.35% of the lossy TTL 5 hops (only TTL 5 has a later hop): ~2 of 500.
    assert!(wrong <= 8, "{wrong} lossy hops labelled rate-limited");
    assert!(lossy_hops > 500, "the link was lossy: {lossy_hops}");
}

#[test]
fn loss_at_the_last_hop_or_everywhere_beyond_is_not_rate_limiting() {
    // A hop whose answers fall as a prefix but no later hop answers everything: not labelled.
    let mut path = FakePath::linear(4, 0.1);
    path.rate_limit = Some((2, TokenBucket::new(1.0, 1)));
    path.lossy = Some((3, 0.99));
    let r = run(&path, Protocol::Icmp, ppt(3));
    assert_eq!(r.outcome.hops[1].received(), 1);
    assert!(labelled(&r.outcome, RATE_LIMITED).is_empty());
}

#[test]
fn probes_that_could_not_be_sent_are_not_rate_limiting() {
    let cfg = TraceConfig::new(
        Protocol::Icmp,
        SRC.into(),
        TARGET.into(),
        vec![0x8042],
        &ppt(3),
    );
    let mut trace = Trace::new(cfg.clone());
    let t0 = Instant::now();
    let mut buf = Vec::new();
    // TTL 1 and 2: the first probe of TTL 1 leaves, the other two fail to.
    let mut seqs = Vec::new();
    while let Some(tx) = trace.poll_transmit(t0, &mut buf) {
        if tx.ttl == 1 && tx.seq > cfg.port {
            trace.on_send_error("no buffer space".into());
        }
        seqs.push((tx.ttl, tx.seq));
    }
    let t1 = t0 + Duration::from_millis(1);
    for &(ttl, seq) in &seqs {
        if (ttl == 1 && seq == cfg.port) || ttl == 2 {
            let from = if ttl == 2 { TARGET } else { router(ttl) };
            let bytes = if ttl == 2 {
                testing::echo_reply_v4(TARGET, SRC, 0x8042, seq)
            } else {
                testing::time_exceeded_v4(from, &probe_bytes(&cfg, ttl, seq))
            };
            assert!(trace.on_reply(t1, &parse_reply_v4(&bytes).unwrap()));
        }
    }
    trace.handle_timeout(t0 + Duration::from_secs(2));
    assert!(trace.is_done());
    let o = trace.outcome();
    assert_eq!((o.hops[0].received(), o.hops[1].received()), (1, 3));
    assert!(labelled(&o, RATE_LIMITED).is_empty());
}

#[test]
fn udp_behind_a_nat_is_matched_on_the_ip_id_and_the_nat_labelled() {
    for nat_at in [1, 3] {
        let mut path = FakePath::linear(6, 0.1);
        path.nat_at = Some(nat_at);
        let r = run(&path, Protocol::Udp, Options::default());
        assert_eq!(
            hop_ips(&r.outcome),
            expected_path(6, &[]),
            "NAT at {nat_at}"
        );
        for h in &r.outcome.hops {
            assert_eq!(h.received(), 3, "TTL {}", h.ttl);
        }
        assert_eq!(labelled(&r.outcome, NAT), [nat_at]);
        // ICMP probes carry no checksum over addresses: nothing to see, nothing labelled.
        let r = run(&path, Protocol::Icmp, Options::default());
        assert!(labelled(&r.outcome, NAT).is_empty());
    }
    // The NAT silent: the first hop with rewritten quotes is labelled.
    let mut path = FakePath::linear(6, 0.1);
    path.nat_at = Some(3);
    path.silent = vec![3];
    let r = run(&path, Protocol::Udp, Options::default());
    assert_eq!(labelled(&r.outcome, NAT), [4]);
}

#[test]
fn udp_reply_whose_checksum_and_ip_id_name_different_probes_is_ignored() {
    let cfg = TraceConfig::new(
        Protocol::Udp,
        SRC.into(),
        TARGET.into(),
        vec![0x8042],
        &Options::default(),
    );
    let mut trace = Trace::new(cfg.clone());
    let t0 = Instant::now();
    let mut buf = Vec::new();
    while trace.poll_transmit(t0, &mut buf).is_some() {}
    let mut probe = probe_bytes(&cfg, 1, 1);
    // The quoted UDP checksum says probe 1, the IP ID probe 2.
    probe[4..6].copy_from_slice(&2u16.to_be_bytes());
    let t1 = t0 + Duration::from_millis(1);
    let reply = parse_reply_v4(&testing::time_exceeded_v4(router(1), &probe)).unwrap();
    assert_eq!((reply.probe.seq, reply.probe.ip_id), (Some(1), Some(2)));
    assert!(!trace.on_reply(t1, &reply));
    // The IP ID naming no probe (a router that rewrites it): the checksum is trusted.
    probe[4..6].copy_from_slice(&0xf00du16.to_be_bytes());
    let reply = parse_reply_v4(&testing::time_exceeded_v4(router(1), &probe)).unwrap();
    assert!(trace.on_reply(t1, &reply));
    assert!(labelled(&trace.outcome(), NAT).is_empty());
}

fn multipath(paths: Paths, ppt: u64) -> Options {
    Options {
        paths,
        packets_per_ttl: PacketsPerTtl::new(ppt).unwrap(),
        ..Options::default()
    }
}

fn flows(n: u64) -> Paths {
    Paths::Flows(FlowCount::new(n).unwrap())
}

/// The distinct paths of an outcome, one address per TTL (per-flow balancing).
fn distinct_paths(o: &TraceOutcome) -> Vec<Vec<Vec<String>>> {
    ColoTrace::from_hops(Colo::default(), o.target, &o.hops, o.duration)
        .paths
        .into_iter()
        .map(|p| p.hops)
        .collect()
}

#[test]
fn n_flows_probe_every_ttl_and_every_node_knows_its_flows() {
    for protocol in [Protocol::Icmp, Protocol::Udp, Protocol::Tcp, Protocol::Gre] {
        let mut path = FakePath::linear(6, 0.1);
        path.ecmp = Some((3, 2));
        let r = run(&path, protocol, multipath(flows(16), 2));
        assert_eq!(r.outcome.flows, 16, "{protocol:?}");
        let o = &r.outcome;
        for h in &o.hops {
            assert_eq!(
                (h.sent, h.received()),
                (32, 32),
                "{protocol:?} TTL {}",
                h.ttl
            );
            // Every flow reached exactly one node at every TTL.
            let mut all: Vec<u16> = h.nodes.iter().flat_map(|n| n.flows.clone()).collect();
            all.sort_unstable();
            assert_eq!(
                all,
                (0..16).collect::<Vec<u16>>(),
                "{protocol:?} TTL {}",
                h.ttl
            );
        }
        let branches: Vec<usize> = o.hops.iter().map(|h| h.nodes.len()).collect();
        assert_eq!(branches, [1, 1, 2, 2, 2, 1], "{protocol:?}");
        let paths = distinct_paths(o);
        assert_eq!(paths.len(), 2, "{protocol:?}: {paths:?}");
        // A flow keeps to its branch: TTL 3 and 4 on the same one.
        for p in &paths {
            assert_eq!(p[2][0].rsplit('.').next(), p[3][0].rsplit('.').next());
        }
        // Per-flow balancing: no flow saw two nodes at one TTL.
        assert!(
            o.hops
                .iter()
                .flat_map(|h| &h.nodes)
                .all(|n| !n.labels.iter().any(|l| l == PER_PACKET)),
            "{protocol:?}"
        );
    }
}

#[test]
fn one_flow_keeps_the_layout_and_reports_no_paths() {
    let r = run(&FakePath::linear(5, 0.1), Protocol::Udp, Options::default());
    assert_eq!(r.outcome.flows, 1);
    assert!(distinct_paths(&r.outcome).is_empty());
    assert!(
        r.outcome
            .hops
            .iter()
            .flat_map(|h| &h.nodes)
            .all(|n| n.flows == [0])
    );
}

#[test]
fn a_reply_naming_the_probe_of_another_flow_is_ignored() {
    let cfg = TraceConfig::new(
        Protocol::Udp,
        SRC.into(),
        TARGET.into(),
        vec![0x8042, 0x8043],
        &multipath(flows(2), 1),
    );
    let mut trace = Trace::new(cfg.clone());
    let t0 = Instant::now();
    let mut buf = Vec::new();
    let mut sent = Vec::new();
    while let Some(tx) = trace.poll_transmit(t0, &mut buf) {
        sent.push((tx.ttl, tx.seq, u16::from_be_bytes([buf[20], buf[21]])));
    }
    // TTL 1: sequence 1 on flow 0x8042, sequence 2 on flow 0x8043.
    assert_eq!(&sent[..2], [(1, 1, 0x8042), (1, 2, 0x8043)]);
    let t1 = t0 + Duration::from_millis(1);
    let on_flow = |flow: u32, seq: u16| {
        let other = TraceConfig {
            flows: vec![flow],
            ..cfg.clone()
        };
        parse_reply_v4(&testing::time_exceeded_v4(
            router(1),
            &probe_bytes(&other, 1, seq),
        ))
        .unwrap()
    };
    assert!(
        !trace.on_reply(t1, &on_flow(0x8043, 1)),
        "sequence 1 went out on 0x8042"
    );
    assert!(
        !trace.on_reply(t1, &on_flow(0x8044, 2)),
        "not a flow of this trace"
    );
    assert!(trace.on_reply(t1, &on_flow(0x8042, 1)));
    assert!(trace.on_reply(t1, &on_flow(0x8043, 2)));
}

#[test]
fn mda_adds_flows_until_the_stopping_rule_holds() {
    let c95 = Confidence::new(95).unwrap();
    // No load balancer: n_1 = 6 flows and not one more; flow 0 has its 3 probes per TTL.
    let r = run(
        &FakePath::linear(7, 0.1),
        Protocol::Icmp,
        multipath(Paths::Auto(c95), 3),
    );
    assert_eq!(r.outcome.flows, 6);
    // 8 probes (3 + 5) at each TTL sent, up to a few beyond the target (the window).
    assert_eq!(r.sent, 8 * usize::from(r.highest_ttl));
    assert!((7..=11).contains(&r.highest_ttl));
    assert!(
        r.outcome
            .hops
            .iter()
            .all(|h| h.sent == 8 && h.received() == 8)
    );
    assert_eq!(distinct_paths(&r.outcome).len(), 1);
    // 4 branches from TTL 3: the router at TTL 2 needs n_4 = 21 flows that answered at TTL 3,
    // and each branch router n_1 = 6 through it: about 24 flows or more.
    for protocol in [Protocol::Icmp, Protocol::Udp, Protocol::Tcp, Protocol::Gre] {
        let mut path = FakePath::linear(6, 0.1);
        path.ecmp = Some((3, 4));
        let r = run(&path, protocol, multipath(Paths::Auto(c95), 1));
        let o = &r.outcome;
        let through = |ttl: usize, node: &NodeResult| -> usize {
            // Flows through `node` at `ttl` that answered at ttl + 1.
            node.flows
                .iter()
                .filter(|f| o.hops[ttl].nodes.iter().any(|n| n.flows.contains(f)))
                .count()
        };
        assert_eq!(o.hops[2].nodes.len(), 4, "{protocol:?}: {:?}", o.hops[2]);
        assert!(through(1, &o.hops[1].nodes[0]) >= 21, "{protocol:?}");
        for n in &o.hops[2].nodes {
            assert!(through(3, n) >= 6, "{protocol:?}: {}", n.ip);
        }
        assert_eq!(distinct_paths(o).len(), 4, "{protocol:?}");
        assert!(o.flows < 256, "{protocol:?}: {}", o.flows);
    }
}

#[test]
fn mda_stops_at_silent_hops_and_at_its_flow_limit() {
    let c95 = Confidence::new(95).unwrap();
    // A silent router after the balancer: its vertex has no next hop to see; 6 silent flows
    // through each predecessor settle it.
    let mut path = FakePath::linear(6, 0.1);
    path.ecmp = Some((3, 2));
    path.silent = vec![4];
    let r = run(&path, Protocol::Udp, multipath(Paths::Auto(c95), 1));
    assert_eq!(r.outcome.hops[2].nodes.len(), 2);
    assert!(r.outcome.hops[3].nodes.is_empty());
    assert!(r.outcome.flows < 64, "{}", r.outcome.flows);
    // Only 8 flow identifiers given: the MDA stops there, whatever the rule says.
    let mut path = FakePath::linear(5, 0.1);
    path.ecmp = Some((2, 8));
    let options = multipath(Paths::Auto(c95), 1);
    let cfg = TraceConfig::new(
        Protocol::Icmp,
        SRC.into(),
        TARGET.into(),
        (0..8).map(|i| 0x8042 + i).collect(),
        &options,
    );
    let mut trace = Trace::new(cfg);
    let t0 = Instant::now();
    let mut buf = Vec::new();
    let mut now = t0;
    for _ in 0..1000 {
        let mut replies = Vec::new();
        while let Some(tx) = trace.poll_transmit(now, &mut buf) {
            replies.extend(path.answer(Protocol::Icmp, tx.ttl, &buf, now));
        }
        now += Duration::from_millis(1);
        for r in &replies {
            trace.on_reply(now, &parse_reply_v4(r).unwrap());
        }
        trace.handle_timeout(now);
        if trace.is_done() {
            break;
        }
    }
    assert!(trace.is_done());
    assert_eq!(trace.outcome().flows, 8);
}

#[test]
fn mda_rounds_end_within_max_ttl_wait_times() {
    // Heavy loss behind an 8-way balancer: every round waits for lost probes, and the stopping
    // rule is slow to hold. The trace still ends within max_ttl × wait (the fleet's deadline).
    for seed in 0..20 {
        let mut path = FakePath::linear(4, 0.1).seeded(seed);
        path.ecmp = Some((2, 8));
        path.lossy = Some((2, 0.3));
        let options = Options {
            max_ttl: MaxTtl::new(5).unwrap(),
            ..multipath(Paths::Auto(Confidence::new(99).unwrap()), 1)
        };
        let r = run(&path, Protocol::Icmp, options);
        assert!(
            r.elapsed <= Duration::from_secs(5),
            "seed {seed}: {:?}",
            r.elapsed
        );
        assert!(r.outcome.flows > 6, "seed {seed}: rounds were added");
    }
}
