//! `edgetrace traceroute` against real multi-hop topologies built from network namespaces.
//! Every probe stays inside namespaces these tests create; each `Path`/`Diamond` tears its
//! namespaces down on drop, also when an assertion fails. Needs root (CI runs as root).

use edgetrace_probe::report::{ColoTrace, Traceroute};
use edgetrace_testnet::{DiamondSpec, LinearSpec, Path, TtlCounters, ecmp_diamond, linear_tagged};
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::process::Output;

const BIN: &str = env!("CARGO_BIN_EXE_edgetrace");

fn run(lab: &edgetrace_testnet::Lab, ns: &str, args: &[&str]) -> Output {
    let mut argv = vec![BIN, "traceroute"];
    argv.extend_from_slice(args);
    lab.exec(ns, &argv).expect("ip netns exec runs")
}

fn trace_json(lab: &edgetrace_testnet::Lab, ns: &str, args: &[&str]) -> Vec<Traceroute> {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = run(lab, ns, &all);
    assert!(
        out.status.success(),
        "edgetrace {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).expect("--json prints the API's result array")
}

fn only_colo(t: &Traceroute) -> &ColoTrace {
    assert_eq!(t.colos.len(), 1);
    assert_eq!(t.colos[0].colo.name, "local");
    assert_eq!(t.colos[0].error, "");
    &t.colos[0]
}

/// The node IPs per TTL.
fn hop_ips(c: &ColoTrace) -> Vec<Vec<String>> {
    c.hops
        .iter()
        .map(|h| h.nodes.iter().map(|n| n.ip.clone()).collect())
        .collect()
}

fn expected(hops: &[String], silent: &[u8]) -> Vec<Vec<String>> {
    hops.iter()
        .enumerate()
        .map(|(i, ip)| {
            if silent.contains(&(i as u8 + 1)) {
                vec![]
            } else {
                vec![ip.clone()]
            }
        })
        .collect()
}

fn hops_of(path: &Path, v6: bool) -> Vec<String> {
    if v6 {
        path.hops_v6.iter().map(ToString::to_string).collect()
    } else {
        path.hops_v4.iter().map(ToString::to_string).collect()
    }
}

fn target_of(path: &Path, v6: bool) -> String {
    if v6 {
        path.target_v6.to_string()
    } else {
        path.target_v4.to_string()
    }
}

/// Runs `edgetrace traceroute ARGS` in `ns` with CAP_NET_RAW dropped from its bounding set.
fn run_without_cap_net_raw(lab: &edgetrace_testnet::Lab, ns: &str, args: &str) -> Output {
    let cmd = format!("{BIN} traceroute {args}");
    lab.exec(ns, &["capsh", "--drop=cap_net_raw", "--", "-c", &cmd])
        .expect("capsh runs")
}

fn six_routers(tag: &str, spec: LinearSpec) -> Path {
    linear_tagged(tag, &LinearSpec { routers: 6, ..spec }).expect("topology builds")
}

#[test]
fn dual_stack_linear_path_every_protocol_exact_hops() {
    let path = six_routers(
        "lin",
        LinearSpec {
            tcp_open_port: Some(8080),
            ..Default::default()
        },
    );
    for v6 in [false, true] {
        let target = target_of(&path, v6);
        for proto in ["icmp", "udp", "tcp", "gre"] {
            let port = if proto == "tcp" { "8080" } else { "0" };
            let r = trace_json(&path.lab, &path.src, &["-P", proto, "-p", port, &target]);
            let c = only_colo(&r[0]);
            assert_eq!(r[0].target, target);
            assert_eq!(
                hop_ips(c),
                expected(&hops_of(&path, v6), &[]),
                "{proto} v6={v6}"
            );
            for h in &c.hops {
                assert_eq!(
                    (h.packets_sent, h.packets_lost),
                    (3, 0),
                    "{proto} v6={v6} TTL {}",
                    h.packets_ttl
                );
                assert_eq!(h.nodes[0].packet_count, 3);
                assert!(
                    h.nodes[0].min_rtt_ms <= h.nodes[0].mean_rtt_ms
                        && h.nodes[0].mean_rtt_ms <= h.nodes[0].max_rtt_ms
                );
            }
            assert_eq!(c.target_summary.ip, target);
            assert_eq!(c.target_summary.packet_count, 3, "{proto} v6={v6}");
            let target_labels = &c.hops[6].nodes[0].labels;
            match proto {
                "tcp" => assert_eq!(target_labels, &vec!["open".to_string()]),
                _ => assert!(
                    target_labels.is_empty(),
                    "{proto} v6={v6}: {target_labels:?}"
                ),
            }
        }
    }
}

#[test]
fn gre_plus_icmp_labels_each_node_with_its_trace() {
    let path = six_routers("greicmp", LinearSpec::default());
    let r = trace_json(
        &path.lab,
        &path.src,
        &["-P", "gre+icmp", &path.target_v4.to_string()],
    );
    let c = only_colo(&r[0]);
    assert_eq!(c.hops.len(), 7);
    for (h, ip) in c.hops.iter().zip(hops_of(&path, false)) {
        assert_eq!(h.packets_sent, 6);
        let labels: BTreeSet<String> = h.nodes.iter().flat_map(|n| n.labels.clone()).collect();
        assert_eq!(
            labels,
            BTreeSet::from(["gre".to_string(), "icmp".to_string()]),
            "TTL {}",
            h.packets_ttl
        );
        assert!(h.nodes.iter().all(|n| n.ip == ip));
    }
}

#[test]
fn silent_routers_are_empty_hops_and_cost_about_one_wait() {
    let path = six_routers(
        "silent",
        LinearSpec {
            silent_routers: vec![3, 4],
            ..Default::default()
        },
    );
    for v6 in [false, true] {
        let target = target_of(&path, v6);
        let r = trace_json(&path.lab, &path.src, &["-P", "udp", &target]);
        let c = only_colo(&r[0]);
        assert_eq!(
            hop_ips(c),
            expected(&hops_of(&path, v6), &[3, 4]),
            "v6={v6}"
        );
        assert_eq!((c.hops[2].packets_sent, c.hops[2].packets_lost), (3, 3));
        // One wait time (1 s) for the silent TTLs together, not one per probe or per hop.
        assert!(
            c.traceroute_time_ms < 1500,
            "v6={v6}: {} ms",
            c.traceroute_time_ms
        );
    }
}

#[test]
fn silent_target_runs_to_max_ttl_in_about_one_wait() {
    let path = six_routers(
        "deaf",
        LinearSpec {
            target_silent: true,
            ..Default::default()
        },
    );
    let r = trace_json(&path.lab, &path.src, &[&path.target_v4.to_string()]);
    let c = only_colo(&r[0]);
    assert_eq!(c.hops.len(), 30);
    let hops = hops_of(&path, false);
    assert_eq!(hop_ips(c)[..6], expected(&hops[..6], &[])[..]);
    assert!(
        c.hops[6..]
            .iter()
            .all(|h| h.nodes.is_empty() && h.packets_lost == 3)
    );
    assert_eq!(c.target_summary.packet_count, 0);
    assert!(c.target_summary.mean_latency_ms.is_none());
    assert!(c.traceroute_time_ms < 1500, "{} ms", c.traceroute_time_ms);
}

#[test]
fn tcp_closed_port_and_host_unreachable() {
    let path = six_routers(
        "unreach",
        LinearSpec {
            target_reject_host_unreach: true,
            ..Default::default()
        },
    );
    for v6 in [false, true] {
        let target = target_of(&path, v6);
        let r = trace_json(&path.lab, &path.src, &["-P", "udp", &target]);
        let c = only_colo(&r[0]);
        let hops = hops_of(&path, v6);
        // TTL 7 is refused by the last router (TTL 6), which answers from the same address.
        assert_eq!(c.hops.len(), 7, "v6={v6}");
        assert_eq!(c.hops[6].nodes.len(), 1);
        assert_eq!(c.hops[6].nodes[0].ip, hops[5]);
        assert_eq!(c.hops[6].nodes[0].labels, vec!["!H".to_string()], "v6={v6}");
    }
    let closed = six_routers(
        "closed",
        LinearSpec {
            tcp_open_port: Some(8080),
            ..Default::default()
        },
    );
    for v6 in [false, true] {
        let target = target_of(&closed, v6);
        let r = trace_json(
            &closed.lab,
            &closed.src,
            &["-P", "tcp", "-p", "8081", &target],
        );
        let c = only_colo(&r[0]);
        assert_eq!(c.hops[6].nodes[0].ip, target);
        assert_eq!(
            c.hops[6].nodes[0].labels,
            vec!["closed".to_string()],
            "v6={v6}"
        );
    }
}

#[test]
fn ecmp_diamond_every_ttl_of_a_trace_follows_one_branch() {
    let d = ecmp_diamond(&DiamondSpec::default()).expect("diamond builds");
    let (a, b) = (d.branch_a_v4.to_string(), d.branch_b_v4.to_string());
    let (ra, rb) = (d.r3_a_v4.to_string(), d.r3_b_v4.to_string());
    let target = d.target_v4.to_string();
    let mut branches_seen = BTreeSet::new();
    // Ten traces per run, each its own flow; L4 hashing spreads flows over both branches.
    for _ in 0..3 {
        let targets = vec![target.as_str(); 10];
        let mut args = vec!["-P", "udp"];
        args.extend(targets);
        for t in trace_json(&d.lab, &d.src, &args) {
            let c = only_colo(&t);
            let ips = hop_ips(c);
            assert_eq!(ips.len(), 4);
            assert_eq!(ips[0], vec![d.r1_v4.to_string()]);
            // All probes of TTL 2 went one way, and TTL 3 came through that same branch.
            assert_eq!(ips[1].len(), 1, "TTL 2 split across branches: {ips:?}");
            assert_eq!(c.hops[1].nodes[0].packet_count, 3);
            let expected_r3 = if ips[1][0] == a { &ra } else { &rb };
            assert!(ips[1][0] == a || ips[1][0] == b);
            assert_eq!(
                &ips[2],
                &vec![expected_r3.clone()],
                "TTL 3 not on the branch of TTL 2"
            );
            assert_eq!(ips[3], vec![target.clone()]);
            branches_seen.insert(ips[1][0].clone());
        }
        if branches_seen.len() == 2 {
            break;
        }
    }
    assert_eq!(
        branches_seen.len(),
        2,
        "flows never spread over both branches; is ECMP hashing on?"
    );
}

#[test]
fn ten_targets_at_once_no_reply_attributed_to_the_wrong_trace() {
    let path = six_routers("ten", LinearSpec::default());
    let v4 = hops_of(&path, false);
    let v6 = hops_of(&path, true);
    // Targets at every distance, both families: each trace must show exactly the path prefix.
    let mut targets: Vec<(String, Vec<String>)> = Vec::new();
    for k in [1usize, 3, 4, 5, 6] {
        targets.push((v4[k].clone(), v4[..=k].to_vec()));
        targets.push((v6[k].clone(), v6[..=k].to_vec()));
    }
    let args: Vec<&str> = targets.iter().map(|(t, _)| t.as_str()).collect();
    let r = trace_json(&path.lab, &path.src, &args);
    assert_eq!(r.len(), 10);
    for (t, (target, prefix)) in r.iter().zip(&targets) {
        assert_eq!(&t.target, target);
        let c = only_colo(t);
        assert_eq!(hop_ips(c), expected(prefix, &[]), "target {target}");
        assert!(
            c.hops
                .iter()
                .all(|h| h.packets_lost == 0 && h.nodes[0].packet_count == 3),
            "target {target}"
        );
    }
}

#[test]
fn bad_input_exits_2_and_sends_nothing() {
    let path = linear_tagged(
        "badin",
        &LinearSpec {
            routers: 1,
            ..Default::default()
        },
    )
    .unwrap();
    let target: IpAddr = path.target_v4.into();
    let counters = TtlCounters::install(&path.lab, &path.src, target, 64).unwrap();
    let t = target.to_string();
    let eleven: Vec<&str> = vec![t.as_str(); 11];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["-m", "65", &t],
            "max_ttl: 65 is out of range; allowed: 1-64",
        ),
        (
            vec!["-q", "0", &t],
            "packets_per_ttl: 0 is out of range; allowed: 1-10",
        ),
        (
            vec!["-w", "6", &t],
            "wait_time: 6 is out of range; allowed: 1-5",
        ),
        (vec!["-p", "65536", &t], "--port"),
        (
            vec!["-P", "sctp", &t],
            "allowed: icmp, udp, tcp, gre, gre+icmp",
        ),
        (vec![&t, "not a host"], "target \"not a host\""),
        (vec![&t, "999.1.1.1.1"], "999.1.1.1.1"),
        (eleven, "11 targets given; allowed: 1-10"),
    ];
    for (args, needle) in cases {
        let out = run(&path.lab, &path.src, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: {stderr:?} lacks {needle:?}"
        );
    }
    assert!(
        counters.read(&path.lab).unwrap().is_empty(),
        "bad input must send nothing"
    );
}

#[test]
fn without_cap_net_raw_the_error_says_what_to_do() {
    let path = linear_tagged(
        "nocap",
        &LinearSpec {
            routers: 1,
            ..Default::default()
        },
    )
    .unwrap();
    let t = path.target_v4.to_string();
    let out = run_without_cap_net_raw(&path.lab, &path.src, &t);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("CAP_NET_RAW") && stderr.contains("setcap"),
        "{stderr}"
    );
}

#[test]
fn without_cap_net_raw_icmp_and_udp_trace_through_unprivileged_sockets() {
    let path = six_routers("unpriv", LinearSpec::default());
    path.lab
        .sysctls(&path.src, &[("net/ipv4/ping_group_range", "0 2147483647")])
        .unwrap();
    for v6 in [false, true] {
        let target = target_of(&path, v6);
        for proto in ["icmp", "udp"] {
            let args = format!("--json -P {proto} {target}");
            let out = run_without_cap_net_raw(&path.lab, &path.src, &args);
            assert!(
                out.status.success(),
                "{proto} v6={v6}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let r: Vec<Traceroute> = serde_json::from_slice(&out.stdout).unwrap();
            let c = only_colo(&r[0]);
            assert_eq!(
                hop_ips(c),
                expected(&hops_of(&path, v6), &[]),
                "{proto} v6={v6}"
            );
            assert!(
                c.hops.iter().all(|h| h.packets_lost == 0),
                "{proto} v6={v6}: {:?}",
                c.hops
            );
        }
        // TCP has no unprivileged way: Code 4 and a message that says what to do.
        let out = run_without_cap_net_raw(&path.lab, &path.src, &format!("--json -P tcp {target}"));
        assert_eq!(out.status.code(), Some(1));
        let r: Vec<Traceroute> = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            r[0].colos[0].error,
            "Could not gather traceroute data: Code 4"
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("CAP_NET_RAW"));
    }
}

/// `--paths N`: one run finds both branches of a kernel ECMP diamond (L4 hashing), each flow
/// keeping to one branch; `--paths auto` (the MDA) too, with fewer flows than 64.
#[test]
fn paths_find_both_branches_of_an_ecmp_diamond_in_one_trace() {
    let d = ecmp_diamond(&DiamondSpec::default()).expect("diamond builds");
    let target = d.target_v4.to_string();
    let want: BTreeSet<Vec<Vec<String>>> = [
        (d.branch_a_v4.to_string(), d.r3_a_v4.to_string()),
        (d.branch_b_v4.to_string(), d.r3_b_v4.to_string()),
    ]
    .into_iter()
    .map(|(branch, r3)| {
        vec![
            vec![d.r1_v4.to_string()],
            vec![branch],
            vec![r3],
            vec![target.clone()],
        ]
    })
    .collect();
    // 16 flows over 2 branches miss one with probability 2^-15: one trace. The MDA stops
    // once it is 99% sure there is no other branch, so a trace of it misses one up to 1% of
    // the time by design: up to 3 traces (every path each one finds must be a true one).
    for (args, max_flows, tries) in [
        (vec!["-P", "udp", "--paths", "16"], 16, 1),
        (vec!["-P", "tcp", "-q", "1", "--paths", "16"], 16, 1),
        (
            vec!["-P", "udp", "--paths", "auto", "--confidence", "99"],
            63,
            3,
        ),
    ] {
        let mut args = args.clone();
        args.push(&target);
        let mut found = BTreeSet::new();
        for _ in 0..tries {
            let r = trace_json(&d.lab, &d.src, &args);
            let c = only_colo(&r[0]);
            found = c.paths.iter().map(|p| p.hops.clone()).collect();
            assert!(found.is_subset(&want), "{args:?}: {found:?}");
            let flows: u32 = c.paths.iter().map(|p| p.flows).sum();
            assert!(flows <= max_flows, "{args:?}: {flows} flows");
            if found == want {
                assert_eq!(c.hops[1].nodes.len(), 2, "{args:?}: both branches at TTL 2");
                break;
            }
        }
        assert_eq!(found, want, "{args:?}");
        // The table lists the paths too.
        let mut table = String::new();
        for _ in 0..tries {
            let out = run(&d.lab, &d.src, &args);
            table = String::from_utf8_lossy(&out.stdout).into_owned();
            if table.contains("2 distinct path(s)") {
                break;
            }
        }
        assert!(table.contains("2 distinct path(s)"), "{table}");
    }
}

#[test]
fn bad_paths_options_exit_2_naming_the_option() {
    let path = linear_tagged(
        "badpaths",
        &LinearSpec {
            routers: 1,
            ..Default::default()
        },
    )
    .unwrap();
    let t = path.target_v4.to_string();
    for (args, needle) in [
        (
            vec!["--paths", "65", &t],
            "paths: 65 is out of range; allowed: 1-64, or auto",
        ),
        (
            vec!["--paths", "all", &t],
            "paths: \"all\" is out of range; allowed: an integer 1-64, or auto",
        ),
        (
            vec!["--paths", "auto", "--confidence", "100", &t],
            "confidence: 100 is out of range; allowed: 50-99",
        ),
        (
            vec!["--paths", "4", "--confidence", "90", &t],
            "--confidence: applies only to --paths auto, not --paths 4",
        ),
    ] {
        let out = run(&path.lab, &path.src, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: {stderr:?} lacks {needle:?}"
        );
    }
    // Without raw sockets a flow identifier of one's own is not to be had: Code 4, and why.
    path.lab
        .sysctls(&path.src, &[("net/ipv4/ping_group_range", "0 2147483647")])
        .unwrap();
    let out = run_without_cap_net_raw(&path.lab, &path.src, &format!("--json --paths 4 {t}"));
    assert_eq!(out.status.code(), Some(1));
    let r: Vec<Traceroute> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        r[0].colos[0].error,
        "Could not gather traceroute data: Code 4"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("multipath traces") && stderr.contains("CAP_NET_RAW"),
        "{stderr}"
    );
}
