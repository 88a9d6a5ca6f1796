//! Multipath discovery through the simulator: `paths` = N flows (Dublin traceroute) and
//! `paths` = auto (the MDA), against scenarios whose every path is known.

mod common;

use common::*;
use edgetrace_net::TraceRequest;
use edgetrace_probe::report::PER_PACKET;
use edgetrace_probe::{Confidence, FlowCount, Options, Paths, TraceOutcome};
use edgetrace_wire::Protocol;
use std::collections::BTreeSet;

const PROTOCOLS: [Protocol; 4] = [Protocol::Icmp, Protocol::Udp, Protocol::Tcp, Protocol::Gre];

/// Every path of a scenario, as the hop addresses from TTL 1 to the target.
fn expected(scenario: &str, v6: bool) -> BTreeSet<Vec<String>> {
    let a = |v4: &str, v6_addr: &str| if v6 { v6_addr } else { v4 }.to_string();
    let r1 = a("198.18.1.1", "2001:2:0:1::1");
    let r2 = a("198.18.2.1", "2001:2:0:2::1");
    let dst = a("198.19.0.1", "2001:2:0:ff::1");
    let path = |middle: &[String]| {
        let mut p = vec![r1.clone(), r2.clone()];
        p.extend_from_slice(middle);
        p.push(dst.clone());
        p
    };
    match scenario {
        "ecmp2" => (1..=2)
            .map(|i| {
                path(&[
                    a(&format!("198.18.3.{i}"), &format!("2001:2:0:3::{i}")),
                    a("198.18.4.1", "2001:2:0:4::1"),
                ])
            })
            .collect(),
        "ecmp" => (1..=4)
            .map(|i| {
                path(&[
                    a(&format!("198.18.3.{i}"), &format!("2001:2:0:3::{i}")),
                    a(&format!("198.18.4.{i}"), &format!("2001:2:0:4::{i}")),
                    a("198.18.6.1", "2001:2:0:6::1"),
                ])
            })
            .collect(),
        "ecmp_nested" => {
            let r5 = a("198.18.5.1", "2001:2:0:5::1");
            let a1 = a("198.18.3.1", "2001:2:0:3::1");
            let a2 = a("198.18.3.2", "2001:2:0:3::2");
            let mut all: BTreeSet<Vec<String>> = (1..=3)
                .map(|i| {
                    path(&[
                        a1.clone(),
                        a(&format!("198.18.4.{i}"), &format!("2001:2:0:4::{i}")),
                        r5.clone(),
                    ])
                })
                .collect();
            all.insert(path(&[a2, a("198.18.4.4", "2001:2:0:4::4"), r5]));
            all
        }
        other => panic!("no expected paths for {other}"),
    }
}

fn target(v6: bool) -> &'static str {
    if v6 { "2001:2:0:ff::1" } else { "198.19.0.1" }
}

fn with_paths(protocol: Protocol, paths: Paths) -> Options {
    Options {
        paths,
        ..options(protocol, 12, 1)
    }
}

/// The distinct paths of a trace's `paths` extension, each flow's hops as one address per TTL.
fn paths_of(o: &TraceOutcome) -> BTreeSet<Vec<String>> {
    collect_paths(o, false)
}

/// Like [`paths_of`], leaving out paths with a TTL no flow of theirs heard from (a reply lost
/// or late under load): such a path is not evidence of a branch, and a trace that found no
/// complete path through some branch counts as incomplete.
fn complete_paths_of(o: &TraceOutcome) -> BTreeSet<Vec<String>> {
    collect_paths(o, true)
}

fn collect_paths(o: &TraceOutcome, skip_gaps: bool) -> BTreeSet<Vec<String>> {
    colo(o)
        .paths
        .iter()
        .filter(|p| !skip_gaps || p.hops.iter().all(|ips| !ips.is_empty()))
        .map(|p| {
            p.hops
                .iter()
                .map(|ips| {
                    assert_eq!(ips.len(), 1, "per-flow balancing: one node per flow: {p:?}");
                    ips[0].clone()
                })
                .collect()
        })
        .collect()
}

/// Nodes per TTL, as sets.
fn nodes(o: &TraceOutcome) -> Vec<BTreeSet<String>> {
    hop_ips(o)
        .into_iter()
        .map(|h| h.into_iter().collect())
        .collect()
}

/// The nodes per TTL that a set of paths makes.
fn nodes_of(paths: &BTreeSet<Vec<String>>) -> Vec<BTreeSet<String>> {
    let len = paths.iter().map(Vec::len).max().unwrap_or(0);
    (0..len)
        .map(|i| paths.iter().map(|p| p[i].clone()).collect())
        .collect()
}

#[test]
fn paths_n_finds_exactly_the_configured_paths() {
    // With N flows over b equally likely branches, a branch is missed with probability about
    // b · (1 − 1/b)^N per vertex: 16 flows over 2 (3e-5), 64 over 4 (4e-8); the nested
    // scenario's rarest path takes 1/6 of the flows (3 · (5/6)^64 = 3e-5).
    for (scenario, flows, families) in [
        ("ecmp2", 16, &[false][..]),
        ("ecmp", 64, &[false, true][..]),
        ("ecmp_nested", 64, &[false][..]),
    ] {
        let sim = start(scenario);
        for &v6 in families {
            let want = expected(scenario, v6);
            let requests: Vec<TraceRequest> = PROTOCOLS
                .iter()
                .map(|&protocol| TraceRequest {
                    protocol,
                    target: addr(target(v6)),
                    options: with_paths(protocol, Paths::Flows(FlowCount::new(flows).unwrap())),
                })
                .collect();
            for (o, protocol) in trace_all(&sim, &requests).iter().zip(PROTOCOLS) {
                let what = format!("{scenario} {protocol:?} v6={v6}");
                assert_eq!(o.flows, flows as u16, "{what}");
                assert_eq!(paths_of(o), want, "{what}");
                assert_eq!(nodes(o), nodes_of(&want), "{what}");
                let c = colo(o);
                // No loss here: every flow answered at every TTL, and took exactly one path.
                let total: u32 = c.paths.iter().map(|p| p.flows).sum();
                assert_eq!(total, flows as u32, "{what}");
                for h in &c.hops {
                    assert_eq!(
                        (h.packets_sent, h.packets_lost),
                        (flows as u32, 0),
                        "{what}"
                    );
                    assert!(
                        h.nodes
                            .iter()
                            .all(|n| !n.labels.iter().any(|l| l == PER_PACKET)),
                        "{what}"
                    );
                }
                assert_eq!(misattributed(&sim.truth(), protocol, o), 0, "{what}");
                eprintln!("paths {flows} on {what}: {} probes sent", o.probes_sent);
            }
        }
    }
}

#[test]
fn one_flow_keeps_the_contract_and_reports_no_paths() {
    let sim = start("ecmp");
    let o = trace(
        &sim,
        Protocol::Udp,
        target(false),
        options(Protocol::Udp, 12, 3),
    );
    assert_eq!(o.flows, 1);
    let c = colo(&o);
    assert!(c.paths.is_empty());
    let json = serde_json::to_value(&c).unwrap();
    assert!(json.get("paths").is_none(), "{json}");
    assert!(nodes(&o).iter().all(|h| h.len() == 1));
}

/// MDA runs of 20 traces (5 per protocol) at once on each scenario. At 95% the stopping rule
/// misses a next hop at a vertex at most 5% of the time, so a trace may miss a branch; 15 of
/// 20 must find every path (failing this by chance: below 0.1%), and together they find all.
#[test]
fn mda_finds_every_branch_and_says_how_many_probes_it_used() {
    for scenario in ["ecmp2", "ecmp", "ecmp_nested"] {
        let sim = start(scenario);
        let want = expected(scenario, false);
        let requests: Vec<TraceRequest> = (0..20)
            .map(|i| {
                let protocol = PROTOCOLS[i % 4];
                TraceRequest {
                    protocol,
                    target: addr(target(false)),
                    options: with_paths(protocol, Paths::Auto(Confidence::default())),
                }
            })
            .collect();
        let outcomes = trace_all(&sim, &requests);
        let mut complete = 0;
        let mut union = BTreeSet::new();
        let (mut probes, mut flows) = (Vec::new(), Vec::new());
        for (o, r) in outcomes.iter().zip(&requests) {
            let found = complete_paths_of(o);
            assert!(found.is_subset(&want), "{scenario}: {found:?}");
            complete += usize::from(found == want);
            union.extend(found);
            probes.push(o.probes_sent);
            flows.push(o.flows);
            assert_eq!(misattributed(&sim.truth(), r.protocol, o), 0);
            // The probes it used are in the result: packets_sent of every hop.
            let sent: u32 = colo(o).hops.iter().map(|h| h.packets_sent).sum();
            assert!(sent as usize <= o.probes_sent && sent > 0);
        }
        probes.sort_unstable();
        flows.sort_unstable();
        eprintln!(
            "MDA 95% on {scenario}: {complete}/20 traces found all {} paths; flows used {flows:?}; \
             probes sent min {} median {} max {}",
            want.len(),
            probes[0],
            probes[10],
            probes[19]
        );
        assert!(complete >= 15, "{scenario}: only {complete}/20 complete");
        assert_eq!(union, want, "{scenario}");
    }
}

#[test]
fn mda_on_a_single_path_stops_after_n1_flows() {
    let sim = start("linear16");
    for protocol in PROTOCOLS {
        let o = trace(
            &sim,
            protocol,
            "198.19.0.7",
            Options {
                paths: Paths::Auto(Confidence::default()),
                ..options(protocol, 30, 3)
            },
        );
        // n_1 = 6 at 95%: six flows through every vertex, each with one next hop, and no more.
        assert_eq!(o.flows, 6, "{protocol:?}");
        let c = colo(&o);
        assert_eq!(c.paths.len(), 1, "{protocol:?}");
        assert_eq!(c.paths[0].flows, 6);
        assert_eq!(c.hops.len(), 16);
        // Flow 0 is a Paris traceroute with 3 probes per TTL, the 5 others one probe each.
        assert!(
            c.hops
                .iter()
                .all(|h| h.packets_sent == 8 && h.packets_lost == 0)
        );
        assert_eq!(misattributed(&sim.truth(), protocol, &o), 0);
    }
}

#[test]
fn per_packet_balancing_is_labelled_where_one_flow_sees_several_nodes() {
    let sim = start("ecmp_per_packet");
    let o = trace(
        &sim,
        Protocol::Icmp,
        target(false),
        Options {
            paths: Paths::Flows(FlowCount::new(4).unwrap()),
            ..options(Protocol::Icmp, 10, 4)
        },
    );
    let c = colo(&o);
    let labelled: Vec<bool> = c
        .hops
        .iter()
        .map(|h| {
            h.nodes
                .iter()
                .any(|n| n.labels.iter().any(|l| l == PER_PACKET))
        })
        .collect();
    // r2 round-robins packets over 4 branches: hops 3 and 4 (b1x, b2x) depend on the packet.
    assert_eq!(labelled, [false, false, true, true, false, false]);
    assert_eq!(c.hops[2].nodes.len(), 4);
    // Each flow's path shows several nodes at hops 3 and 4.
    assert!(
        c.paths
            .iter()
            .all(|p| p.hops[2].len() > 1 && p.hops[0].len() == 1),
        "{:?}",
        c.paths
    );
    assert_eq!(misattributed(&sim.truth(), Protocol::Icmp, &o), 0);
}
