//! The engine against a fake path in virtual time. Replies are real bytes built by
//! `edgetrace_wire::testing` and parsed back, so matching is exercised as on the wire.

use super::*;
use crate::options::{MaxTtl, Options, PacketsPerTtl};
use crate::report::{NAT, RATE_LIMITED};
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
            return (!self.silent.contains(&ttl))
                .then(|| testing::time_exceeded_v4(router(ttl), probe));
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
    let cfg = TraceConfig::new(protocol, SRC.into(), TARGET.into(), vec![0x8042], &options);
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
