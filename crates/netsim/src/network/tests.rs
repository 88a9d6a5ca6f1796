use super::*;
use crate::reply::ip_packet;
use crate::reply::tests::icmpv4_checksum_ok;
use edgetrace_wire::{
    ProbeSpec, Protocol, Reply, ReplyKind, emit_probe, parse_reply_v4, parse_reply_v6,
};
use etherparse::Ipv6Slice;
use std::collections::BTreeSet;

const FAR: Duration = Duration::from_secs(3600);

/// source — r1 — r2 — {a1 — a2 | b1 — b2} — r5 — dst, every link 1 ms.
fn diamond(extra_r2: &str, extra: &str) -> Scenario {
    Scenario::from_toml(&format!(
        r#"
        [link_defaults]
        latency_ms = 1.0
        [[router]]
        name = "r1"
        v4 = "198.18.1.1"
        v6 = "2001:2:0:1::1"
        [[router]]
        name = "r2"
        v4 = "198.18.2.1"
        v6 = "2001:2:0:2::1"
        {extra_r2}
        [[router]]
        name = "a1"
        v4 = "198.18.3.1"
        v6 = "2001:2:0:3::1"
        [[router]]
        name = "a2"
        v4 = "198.18.4.1"
        v6 = "2001:2:0:4::1"
        [[router]]
        name = "b1"
        v4 = "198.18.3.2"
        v6 = "2001:2:0:3::2"
        [[router]]
        name = "b2"
        v4 = "198.18.4.2"
        v6 = "2001:2:0:4::2"
        [[router]]
        name = "r5"
        v4 = "198.18.5.1"
        v6 = "2001:2:0:5::1"
        [[host]]
        name = "dst"
        addresses = ["198.19.0.0/24", "2001:2:0:ff::/64"]
        tcp_open = [443]
        {extra}
        [[link]]
        between = ["source", "r1"]
        [[link]]
        between = ["r1", "r2"]
        [[link]]
        between = ["r2", "a1"]
        [[link]]
        between = ["a1", "a2"]
        [[link]]
        between = ["a2", "r5"]
        [[link]]
        between = ["r2", "b1"]
        [[link]]
        between = ["b1", "b2"]
        [[link]]
        between = ["b2", "r5"]
        [[link]]
        between = ["r5", "dst"]
        "#
    ))
    .unwrap()
}

fn spec(protocol: Protocol, v6: bool, ttl: u8, flow: u32, seq: u16) -> ProbeSpec {
    let (source, destination) = if v6 {
        (
            "2001:2::1".parse().unwrap(),
            "2001:2:0:ff::9".parse().unwrap(),
        )
    } else {
        ("198.18.0.1".parse().unwrap(), "198.19.0.9".parse().unwrap())
    };
    ProbeSpec {
        protocol,
        source,
        destination,
        ttl,
        flow,
        port: if protocol == Protocol::Tcp {
            443
        } else {
            33434
        },
        seq,
    }
}

/// The probe as the TUN device sees it (IPv6 gets the header the kernel adds).
fn wire(s: &ProbeSpec) -> Vec<u8> {
    let mut l4 = Vec::new();
    emit_probe(s, &mut l4).unwrap();
    if s.source.is_ipv6() {
        let mut p = ip_packet(s.source, s.destination, s.protocol.ip_number(true), &l4);
        p[7] = s.ttl;
        p
    } else {
        l4
    }
}

/// Parses what the simulator delivers as the engine does.
fn parse(p: &[u8]) -> Result<Reply, edgetrace_wire::WireError> {
    if p[0] >> 4 == 4 {
        parse_reply_v4(p)
    } else {
        let ip = Ipv6Slice::from_slice(p).unwrap();
        parse_reply_v6(
            ip.header().source_addr(),
            ip.header().next_header().0,
            ip.payload().payload,
        )
    }
}

/// Sends one probe and collects everything that comes back, with arrival times.
fn exchange(net: &mut Network, at: SimTime, probe: &[u8]) -> Vec<(SimTime, Vec<u8>)> {
    net.on_packet(at, probe);
    drain(net)
}

fn drain(net: &mut Network) -> Vec<(SimTime, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(t) = net.poll_timeout() {
        out.push((t, net.poll_transmit(t).unwrap()));
    }
    out
}

fn hop(net: &mut Network, s: &ProbeSpec) -> Option<Reply> {
    let out = exchange(net, SimTime::ZERO, &wire(s));
    out.first().map(|(_, p)| parse(p).unwrap())
}

#[test]
fn ttl_walks_the_path_and_the_target_answers_every_protocol() {
    for v6 in [false, true] {
        for protocol in [Protocol::Icmp, Protocol::Udp, Protocol::Tcp, Protocol::Gre] {
            let mut net = Network::new(&diamond("", ""));
            let mut seen = Vec::new();
            for ttl in 1..=6 {
                let r = hop(&mut net, &spec(protocol, v6, ttl, 0x8001, ttl.into())).unwrap();
                assert_eq!(r.probe.destination, spec(protocol, v6, 1, 1, 1).destination);
                seen.push((r.from.to_string(), r.kind));
            }
            let last = seen.pop().unwrap();
            assert!(
                seen.iter().all(|(_, k)| *k == ReplyKind::TimeExceeded),
                "{seen:?}"
            );
            let want: Vec<&str> = if v6 {
                vec![
                    "2001:2:0:1::1",
                    "2001:2:0:2::1",
                    "2001:2:0:3::",
                    "2001:2:0:4::",
                    "2001:2:0:5::1",
                ]
            } else {
                vec![
                    "198.18.1.1",
                    "198.18.2.1",
                    "198.18.3.",
                    "198.18.4.",
                    "198.18.5.1",
                ]
            };
            for (i, (from, _)) in seen.iter().enumerate() {
                assert!(
                    from.starts_with(want[i]),
                    "{protocol:?} v6={v6} TTL {}: {from}",
                    i + 1
                );
            }
            let target = if v6 { "2001:2:0:ff::9" } else { "198.19.0.9" };
            assert_eq!(last.0, target);
            let kind = match (protocol, v6) {
                (Protocol::Icmp, _) => ReplyKind::EchoReply,
                (Protocol::Udp, v6) => ReplyKind::Unreachable {
                    code: if v6 { 4 } else { 3 },
                    v6,
                },
                (Protocol::Tcp, _) => ReplyKind::TcpSynAck,
                (Protocol::Gre, false) => ReplyKind::Unreachable { code: 2, v6: false },
                (Protocol::Gre, true) => ReplyKind::ParamProblem { code: 1, v6: true },
            };
            assert_eq!(last.1, kind, "{protocol:?} v6={v6}");
        }
    }
}

#[test]
fn round_trip_time_is_twice_the_path_latency() {
    let mut net = Network::new(&diamond("", ""));
    let t0 = SimTime::ZERO + Duration::from_secs(1);
    for ttl in 1..=6u8 {
        let out = exchange(
            &mut net,
            t0,
            &wire(&spec(Protocol::Icmp, false, ttl, 1, ttl.into())),
        );
        assert_eq!(
            out[0].0 - t0,
            Duration::from_millis(2 * u64::from(ttl)),
            "TTL {ttl}"
        );
        // The ground truth holds the same round trip.
        let dst = spec(Protocol::Icmp, false, 1, 1, 1).destination;
        assert_eq!(net.truth().rtts(1, dst, ttl), [out[0].0 - t0], "TTL {ttl}");
    }
}

#[test]
fn per_flow_ecmp_is_stable_and_spreads_flows() {
    let mut net = Network::new(&diamond("", ""));
    let mut branches = BTreeSet::new();
    for flow in 0x8000..0x8040u32 {
        let first = hop(&mut net, &spec(Protocol::Udp, false, 3, flow, 1))
            .unwrap()
            .from;
        for seq in 2..6 {
            let again = hop(&mut net, &spec(Protocol::Udp, false, 3, flow, seq))
                .unwrap()
                .from;
            assert_eq!(again, first, "flow {flow:#x} changed branch");
            // TTL 4 follows the same branch.
            let next = hop(&mut net, &spec(Protocol::Udp, false, 4, flow, seq))
                .unwrap()
                .from;
            assert_eq!(
                next.to_string().rsplit('.').next(),
                first.to_string().rsplit('.').next()
            );
        }
        branches.insert(first.to_string());
    }
    assert_eq!(
        branches,
        BTreeSet::from(["198.18.3.1".to_string(), "198.18.3.2".to_string()])
    );
}

#[test]
fn per_packet_ecmp_alternates_within_a_flow() {
    let mut net = Network::new(&diamond("ecmp = \"packet\"", ""));
    let seen: BTreeSet<String> = (1..=4)
        .map(|seq| {
            hop(&mut net, &spec(Protocol::Icmp, false, 3, 0x8001, seq))
                .unwrap()
                .from
                .to_string()
        })
        .collect();
    assert_eq!(seen.len(), 2, "{seen:?}");
}

#[test]
fn silent_and_other_interface_routers() {
    let mut net = Network::new(&diamond("answer = \"silent\"", ""));
    assert!(hop(&mut net, &spec(Protocol::Icmp, false, 2, 1, 1)).is_none());
    assert_eq!(net.stats().silent, 1);
    let mut net = Network::new(&diamond(
        "reply_v4 = \"198.18.99.2\"\nreply_v6 = \"2001:2:0:99::2\"",
        "",
    ));
    assert_eq!(
        hop(&mut net, &spec(Protocol::Icmp, false, 2, 1, 1))
            .unwrap()
            .from
            .to_string(),
        "198.18.99.2"
    );
    assert_eq!(
        hop(&mut net, &spec(Protocol::Icmp, true, 2, 1, 1))
            .unwrap()
            .from
            .to_string(),
        "2001:2:0:99::2"
    );
    // The other interface's address is the router's own: a probe to it is answered.
    let mut to_router = spec(Protocol::Icmp, false, 9, 1, 1);
    to_router.destination = "198.18.99.2".parse().unwrap();
    let r = hop(&mut net, &to_router).unwrap();
    assert_eq!(
        (r.kind, r.from.to_string()),
        (ReplyKind::EchoReply, "198.18.99.2".into())
    );
}

#[test]
fn rate_limit_is_a_token_bucket_in_simulated_time() {
    let mut net = Network::new(&diamond("icmp_rate = { per_second = 10.0, burst = 2 }", ""));
    let t0 = SimTime::ZERO + Duration::from_secs(1);
    let mut answered = 0;
    for seq in 1..=10u16 {
        // 10 probes within 10 ms: the burst of 2 answers.
        let at = t0 + Duration::from_millis(seq.into());
        answered += exchange(&mut net, at, &wire(&spec(Protocol::Icmp, false, 2, 1, seq))).len();
    }
    assert_eq!((answered, net.stats().rate_limited), (2, 8));
    // 100 ms later, one token more.
    let later = t0 + Duration::from_millis(110);
    assert_eq!(
        exchange(
            &mut net,
            later,
            &wire(&spec(Protocol::Icmp, false, 2, 1, 11))
        )
        .len(),
        1
    );
    assert_eq!(
        exchange(
            &mut net,
            later,
            &wire(&spec(Protocol::Icmp, false, 2, 1, 12))
        )
        .len(),
        0
    );
    // Other routers are not limited.
    assert_eq!(
        exchange(
            &mut net,
            later,
            &wire(&spec(Protocol::Icmp, false, 1, 1, 13))
        )
        .len(),
        1
    );
}

#[test]
fn mpls_labels_are_quoted() {
    let mut net = Network::new(&diamond(
        "mpls = [{ label = 16 }, { label = 24001, tc = 5 }]",
        "",
    ));
    for v6 in [false, true] {
        let r = hop(&mut net, &spec(Protocol::Udp, v6, 2, 1, 2)).unwrap();
        let labels: Vec<String> = r.mpls.iter().map(ToString::to_string).collect();
        assert_eq!(
            labels,
            ["MPLS:L=16,E=0,S=0,T=1", "MPLS:L=24001,E=5,S=1,T=1"]
        );
        assert_eq!(r.probe.seq, Some(2));
    }
}

#[test]
fn unreachable_targets_answer_through_the_router_in_front() {
    for (behavior, code4, code6) in [
        ("host-unreachable", 1, 3),
        ("net-unreachable", 0, 0),
        ("admin-prohibited", 13, 1),
    ] {
        for v6 in [false, true] {
            let mut net = Network::new(&diamond("", &format!("behavior = \"{behavior}\"")));
            let r = hop(&mut net, &spec(Protocol::Icmp, v6, 30, 1, 1)).unwrap();
            let code = if v6 { code6 } else { code4 };
            assert_eq!(r.kind, ReplyKind::Unreachable { code, v6 }, "{behavior}");
            assert_eq!(
                r.from.to_string(),
                if v6 { "2001:2:0:5::1" } else { "198.18.5.1" }
            );
        }
    }
    let mut net = Network::new(&diamond("", "behavior = \"drop\""));
    assert!(hop(&mut net, &spec(Protocol::Icmp, false, 30, 1, 1)).is_none());
    // TCP to a closed port: RST.
    let mut net = Network::new(&diamond("", ""));
    let mut closed = spec(Protocol::Tcp, false, 30, 0x8001, 1);
    closed.port = 80;
    assert_eq!(hop(&mut net, &closed).unwrap().kind, ReplyKind::TcpRst);
}

#[test]
fn nat_changes_the_quoted_checksum_unless_it_restores_everything() {
    let nat = "nat = { v4 = \"198.18.200.2\", v6 = \"2001:2:0:200::2\" }";
    for v6 in [false, true] {
        let mut net = Network::new(&diamond(nat, ""));
        // Before the NAT (TTL 2 expires at it): the quote is what was sent.
        let r = hop(&mut net, &spec(Protocol::Udp, v6, 2, 0x8001, 7)).unwrap();
        assert_eq!(r.probe.seq, Some(7));
        // Beyond it: the reply comes back to us, quoting our address, but the UDP checksum
        // (the sequence) carries the translation.
        let out = exchange(
            &mut net,
            SimTime::ZERO,
            &wire(&spec(Protocol::Udp, v6, 4, 0x8001, 7)),
        );
        let r = parse(&out[0].1).unwrap();
        assert_eq!(r.kind, ReplyKind::TimeExceeded);
        assert_ne!(
            r.probe.seq,
            Some(7),
            "v6={v6}: a NAT leaves a detectable change"
        );
        if !v6 {
            assert_eq!(r.probe.ip_id, Some(7));
            let quoted_src = &out[0].1[20 + 8 + 12..20 + 8 + 16];
            assert_eq!(quoted_src, [198, 18, 0, 1]);
            assert!(icmpv4_checksum_ok(&out[0].1));
        }
        let dst = &out[0].1[if v6 { 24..40 } else { 16..20 }];
        assert_eq!(dst[dst.len() - 1], 1, "delivered to the inside address");
        // Echo through the NAT comes back to us unchanged.
        let r = hop(&mut net, &spec(Protocol::Icmp, v6, 30, 0x8001, 9)).unwrap();
        assert_eq!((r.kind, r.probe.seq), (ReplyKind::EchoReply, Some(9)));
    }
    let full = "nat = { v4 = \"198.18.200.2\", quote = \"full\" }";
    let mut net = Network::new(&diamond(full, ""));
    let r = hop(&mut net, &spec(Protocol::Udp, false, 4, 0x8001, 7)).unwrap();
    assert_eq!(r.probe.seq, Some(7));
}

#[test]
fn loss_and_jitter_are_deterministic_per_seed() {
    let lossy = |seed| {
        let mut s = diamond("", "");
        for l in &mut s.links {
            l.params.loss = crate::scenario::Probability::new(0.3).unwrap();
            l.params.jitter = Duration::from_micros(300);
        }
        let mut net = Network::with_seed(&s, seed);
        let mut out = Vec::new();
        for seq in 1..200u16 {
            let at = SimTime::ZERO + Duration::from_millis(seq.into());
            net.on_packet(at, &wire(&spec(Protocol::Icmp, false, 3, 1, seq)));
        }
        out.extend(drain(&mut net));
        (out, net.stats())
    };
    let (a, stats) = lossy(5);
    assert_eq!(lossy(5).0, a);
    assert_ne!(lossy(6).0, a);
    // Six traversals at 30% loss each: about 12% come back.
    assert!((10..45).contains(&a.len()), "{}", a.len());
    assert_eq!(stats.lost_forward + stats.lost_return + a.len() as u64, 199);
}

#[test]
fn hostile_replies_are_counted_and_never_counted_as_truth() {
    let h = "hostile = { corrupt = 0.5, duplicate = 0.5, unsolicited = 0.5, cross_trace = 0.5 }";
    let mut net = Network::new(&diamond(h, ""));
    let mut kinds = BTreeSet::new();
    let mut genuine = 0;
    for flow in [0x8001u32, 0x8002] {
        for seq in 1..=40u16 {
            for (_, p) in exchange(
                &mut net,
                SimTime::ZERO,
                &wire(&spec(Protocol::Udp, false, 2, flow, seq)),
            ) {
                let icmp_ok = icmpv4_checksum_ok(&p);
                let kind = match parse(&p) {
                    // The parser checks the ICMPv4 checksum: damaged replies never parse.
                    Ok(r) if !icmp_ok => panic!("a damaged reply parsed: {r:?}"),
                    Err(_) if !icmp_ok => "corrupt",
                    Ok(r) if r.kind == ReplyKind::EchoReply => "unsolicited echo",
                    Ok(r) if r.probe.seq.is_some_and(|s| s >= 0xf000) => "never sent",
                    Ok(r) if r.probe.flow != flow => "cross-trace",
                    Ok(_) => "genuine",
                    Err(_) => "unparsable",
                };
                genuine += usize::from(kind == "genuine");
                kinds.insert(kind);
            }
        }
    }
    for k in [
        "corrupt",
        "unsolicited echo",
        "never sent",
        "cross-trace",
        "genuine",
    ] {
        assert!(kinds.contains(k), "no {k} reply among {kinds:?}");
    }
    let s = net.stats();
    assert!(s.hostile > 0);
    // Truth holds only the router at TTL 2, for the two flows.
    let dst = spec(Protocol::Udp, false, 1, 1, 1).destination;
    let at2 = net.truth().responders(17, dst, 2);
    assert_eq!(
        at2.keys().map(ToString::to_string).collect::<Vec<_>>(),
        ["198.18.2.1"]
    );
    assert!(net.truth().responders(17, dst, 3).is_empty());
    // A round trip for each genuine reply, its duplicates aside: 2 ms per TTL.
    let rtts = net.truth().rtts(17, dst, 2);
    assert!(
        (1..genuine).contains(&rtts.len()),
        "{} of {genuine}",
        rtts.len()
    );
    assert!(
        rtts.iter().all(|d| *d == Duration::from_millis(4)),
        "{rtts:?}"
    );
}

#[test]
fn truncated_quotes() {
    let mut net = Network::new(&diamond("quote_bytes = 28", ""));
    let r = hop(&mut net, &spec(Protocol::Udp, false, 2, 1, 5)).unwrap();
    assert_eq!((r.probe.seq, r.probe.ip_id), (Some(5), Some(5)));
    let mut net = Network::new(&diamond("quote_bytes = 24", ""));
    let out = exchange(
        &mut net,
        SimTime::ZERO,
        &wire(&spec(Protocol::Udp, false, 2, 1, 5)),
    );
    assert!(
        parse(&out[0].1).is_err(),
        "4 bytes of UDP is not enough for the parser"
    );
}

#[test]
fn misattribution_is_measured_against_the_truth() {
    let mut net = Network::new(&diamond("", ""));
    for ttl in 1..=3 {
        hop(&mut net, &spec(Protocol::Icmp, false, ttl, 1, ttl.into()));
    }
    let dst: IpAddr = "198.19.0.9".parse().unwrap();
    let r1: IpAddr = "198.18.1.1".parse().unwrap();
    let r2: IpAddr = "198.18.2.1".parse().unwrap();
    let t = net.truth();
    assert_eq!(t.misattributed(1, dst, [(1, r1, 1), (2, r2, 1)]), 0);
    assert_eq!(t.misattributed(1, dst, [(1, r2, 1), (2, r2, 2)]), 2);
}

#[test]
fn garbage_never_panics() {
    let mut net = Network::new(&diamond(
        "mpls = [{ label = 3 }]\nhostile = { corrupt = 0.3, duplicate = 0.3, unsolicited = 0.3, cross_trace = 0.3 }\nnat = { v4 = \"198.18.200.2\" }",
        "",
    ));
    let mut rng = Rng::new(3);
    let good = wire(&spec(Protocol::Tcp, false, 4, 1, 1));
    for i in 0..20_000 {
        let mut p = if i % 2 == 0 {
            good.clone()
        } else {
            vec![0u8; (rng.next_u64() % 80) as usize]
        };
        for _ in 0..(rng.next_u64() % 6) {
            if !p.is_empty() {
                let at = (rng.next_u64() as usize) % p.len();
                p[at] = rng.next_u64() as u8;
            }
        }
        p.truncate((rng.next_u64() % 100) as usize);
        net.on_packet(SimTime::ZERO + Duration::from_micros(i), &p);
    }
    let out = drain(&mut net);
    assert!(net.poll_transmit(SimTime::ZERO + FAR).is_none());
    for (_, p) in out {
        let _ = parse(&p);
    }
}
