//! Integration tests for the topologies. They need root (as in CI).

use std::collections::BTreeMap;
use std::time::Duration;

use edgetrace_testnet::{
    DiamondSpec, Lab, LinearSpec, TtlCounters, ecmp_diamond, linear_tagged, list_lab_namespaces,
};

fn ping(lab: &Lab, ns: &str, target: &str) -> String {
    lab.exec_ok(ns, &["ping", "-n", "-c1", "-W3", target])
        .unwrap_or_else(|e| panic!("ping {target} failed: {e}"))
}

fn ping_rtt_ms(out: &str) -> f64 {
    let pos = out.find("time=").expect("rtt in ping output") + 5;
    out[pos..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Parses `traceroute -n` output into TTL → addresses.
fn traceroute_hops(out: &str) -> BTreeMap<u8, Vec<String>> {
    let mut hops = BTreeMap::new();
    for line in out.lines().skip(1) {
        let mut it = line.split_whitespace();
        let Some(ttl) = it.next().and_then(|t| t.parse::<u8>().ok()) else {
            continue;
        };
        let addrs: Vec<String> = it
            .filter(|t| t.parse::<std::net::IpAddr>().is_ok())
            .map(str::to_string)
            .collect();
        hops.insert(ttl, addrs);
    }
    hops
}

fn lab_gone(prefix: &str) -> bool {
    !list_lab_namespaces()
        .unwrap()
        .iter()
        .any(|n| n.starts_with(prefix))
}

#[test]
fn linear_ping_and_hop_addresses() {
    let path = linear_tagged(
        "ping",
        &LinearSpec {
            routers: 3,
            ..Default::default()
        },
    )
    .unwrap();
    let prefix = path.lab.prefix().to_string();
    assert_eq!(path.target_ttl(), 4);
    assert!(ping(&path.lab, &path.src, &path.target_v4.to_string()).contains("1 received"));
    assert!(ping(&path.lab, &path.src, &path.target_v6.to_string()).contains("1 received"));
    // Return path from every router too.
    for (i, r) in path.routers.iter().enumerate() {
        ping(&path.lab, r, &path.src_v4.to_string());
        ping(&path.lab, r, &path.src_v6.to_string());
        assert_eq!(
            path.lab.sysctl_get(r, "net/ipv4/icmp_ratelimit").unwrap(),
            "0",
            "router {i}"
        );
    }
    for (flag, hops) in [
        (
            "-4",
            path.hops_v4
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>(),
        ),
        ("-6", path.hops_v6.iter().map(|a| a.to_string()).collect()),
    ] {
        let target = hops.last().unwrap().clone();
        let out = path
            .lab
            .exec_ok(
                &path.src,
                &[
                    "traceroute",
                    flag,
                    "-n",
                    "-q",
                    "2",
                    "-w",
                    "1",
                    "-m",
                    "8",
                    &target,
                ],
            )
            .unwrap();
        let got = traceroute_hops(&out);
        assert_eq!(got.len(), hops.len(), "{out}");
        for (i, want) in hops.iter().enumerate() {
            let seen = &got[&(i as u8 + 1)];
            assert!(
                !seen.is_empty() && seen.iter().all(|a| a == want),
                "TTL {}: {out}",
                i + 1
            );
        }
    }
    drop(path);
    assert!(lab_gone(&prefix), "namespaces left behind");
}

#[test]
fn silent_router_and_silent_target() {
    let path = linear_tagged(
        "silent",
        &LinearSpec {
            routers: 3,
            silent_routers: vec![2],
            target_silent: true,
            ..Default::default()
        },
    )
    .unwrap();
    for (flag, target, r1, r3) in [
        (
            "-4",
            path.target_v4.to_string(),
            path.hops_v4[0].to_string(),
            path.hops_v4[2].to_string(),
        ),
        (
            "-6",
            path.target_v6.to_string(),
            path.hops_v6[0].to_string(),
            path.hops_v6[2].to_string(),
        ),
    ] {
        let out = path
            .lab
            .exec_ok(
                &path.src,
                &[
                    "traceroute",
                    flag,
                    "-n",
                    "-q",
                    "2",
                    "-w",
                    "1",
                    "-m",
                    "5",
                    &target,
                ],
            )
            .unwrap();
        let got = traceroute_hops(&out);
        assert_eq!(got[&1], vec![r1], "{out}");
        assert!(got[&2].is_empty(), "TTL 2 must be silent: {out}");
        assert_eq!(got[&3], vec![r3], "{out}");
        assert!(
            got[&4].is_empty() && got[&5].is_empty(),
            "target must be silent: {out}"
        );
        let ping = path
            .lab
            .exec(&path.src, &["ping", "-n", "-c1", "-W1", &target])
            .unwrap();
        assert!(!ping.status.success());
    }
}

#[test]
fn reject_and_tcp_port() {
    let path = linear_tagged(
        "reject",
        &LinearSpec {
            routers: 2,
            target_reject_host_unreach: true,
            ..Default::default()
        },
    )
    .unwrap();
    let out = path
        .lab
        .exec(
            &path.src,
            &["ping", "-n", "-c1", "-W2", &path.target_v4.to_string()],
        )
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Destination Host Unreachable")
            && text.contains(&path.hops_v4[1].to_string()),
        "{text}"
    );
    let out = path
        .lab
        .exec(
            &path.src,
            &["ping", "-n", "-c1", "-W2", &path.target_v6.to_string()],
        )
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Address unreachable") && text.contains(&path.hops_v6[1].to_string()),
        "{text}"
    );
    drop(path);

    let path = linear_tagged(
        "tcp",
        &LinearSpec {
            routers: 1,
            tcp_open_port: Some(8080),
            ..Default::default()
        },
    )
    .unwrap();
    for t in [path.target_v4.to_string(), format!("[{}]", path.target_v6)] {
        let open = format!("{t}:8080");
        let closed = format!("{t}:8081");
        let (a, b) = path
            .lab
            .in_ns(&path.src, || {
                let to = Duration::from_secs(2);
                let a = std::net::TcpStream::connect_timeout(&open.parse().unwrap(), to);
                let b = std::net::TcpStream::connect_timeout(&closed.parse().unwrap(), to);
                (a.map(|_| ()), b.map(|_| ()))
            })
            .unwrap();
        a.unwrap();
        assert_eq!(b.unwrap_err().kind(), std::io::ErrorKind::ConnectionRefused);
    }
}

#[test]
fn delay_link_adds_delay() {
    let delay = Duration::from_millis(40);
    let path = linear_tagged(
        "delay",
        &LinearSpec {
            routers: 3,
            delay: Some((2, delay)),
            ..Default::default()
        },
    )
    .unwrap();
    let prefix = path.lab.prefix().to_string();
    for target in [path.target_v4.to_string(), path.target_v6.to_string()] {
        ping(&path.lab, &path.src, &target); // warm up ARP/ND
        let rtt = ping_rtt_ms(&ping(&path.lab, &path.src, &target));
        assert!((78.0..130.0).contains(&rtt), "rtt {rtt} ms to {target}");
        // Hop before the delay link is fast.
        let rtt1 = ping_rtt_ms(&ping(&path.lab, &path.src, &path.hops_v4[0].to_string()));
        assert!(rtt1 < 20.0, "rtt {rtt1} to r1");
    }
    // The router behind the delay link answers from its TUN address.
    let out = path
        .lab
        .exec_ok(
            &path.src,
            &[
                "traceroute",
                "-n",
                "-q",
                "1",
                "-w",
                "1",
                "-m",
                "4",
                &path.target_v4.to_string(),
            ],
        )
        .unwrap();
    assert_eq!(
        traceroute_hops(&out)[&2],
        vec![path.hops_v4[1].to_string()],
        "{out}"
    );
    drop(path);
    assert!(lab_gone(&prefix));
}

#[test]
fn ecmp_diamond_uses_both_branches() {
    let d = ecmp_diamond(&DiamondSpec::default()).unwrap();
    let s = |a: &dyn ToString| a.to_string();
    for (flag, target, a, b, r3a, r3b) in [
        (
            "-4",
            s(&d.target_v4),
            s(&d.branch_a_v4),
            s(&d.branch_b_v4),
            s(&d.r3_a_v4),
            s(&d.r3_b_v4),
        ),
        (
            "-6",
            s(&d.target_v6),
            s(&d.branch_a_v6),
            s(&d.branch_b_v6),
            s(&d.r3_a_v6),
            s(&d.r3_b_v6),
        ),
    ] {
        // Classic UDP traceroute: the destination port changes per probe, so
        // with an L4 hash the probes spread over both branches. 8 probes all on
        // one branch happen with p = 1/128, so allow a few attempts.
        let mut seen = std::collections::BTreeSet::new();
        let mut out = String::new();
        for base in ["33434", "40000", "50000", "60000"] {
            out = d
                .lab
                .exec_ok(
                    &d.src,
                    &[
                        "traceroute",
                        flag,
                        "-n",
                        "-q",
                        "8",
                        "-w",
                        "1",
                        "-m",
                        "4",
                        "-p",
                        base,
                        &target,
                    ],
                )
                .unwrap();
            let hops = traceroute_hops(&out);
            assert!(hops[&2].iter().all(|x| *x == a || *x == b), "{out}");
            seen.extend(hops[&2].iter().cloned());
            if seen.len() == 2 {
                break;
            }
        }
        assert_eq!(seen.len(), 2, "only one ECMP branch used: {out}");
        let hops = traceroute_hops(&out);
        assert!(hops[&3].iter().all(|x| *x == r3a || *x == r3b), "{out}");
        assert!(hops[&4].iter().all(|x| *x == target), "{out}");
    }
}

#[test]
fn ttl_counters_count_probes() {
    let path = linear_tagged(
        "count",
        &LinearSpec {
            routers: 2,
            ..Default::default()
        },
    )
    .unwrap();
    for target in [path.target_v4.into(), std::net::IpAddr::V6(path.target_v6)] {
        let c = TtlCounters::install(&path.lab, &path.src, target, 30).unwrap();
        let t = target.to_string();
        path.lab
            .exec_ok(
                &path.src,
                &[
                    "traceroute",
                    "-n",
                    "-I",
                    "-q",
                    "3",
                    "-N",
                    "1",
                    "-w",
                    "1",
                    "-m",
                    "30",
                    &t,
                ],
            )
            .unwrap();
        let counts = c.read(&path.lab).unwrap();
        assert_eq!(counts.get(&1), Some(&3), "{counts:?}");
        assert_eq!(counts.get(&3), Some(&3), "{counts:?}");
        assert_eq!(counts.keys().max(), Some(&3), "{counts:?}");
        c.reset(&path.lab).unwrap();
        assert!(c.read(&path.lab).unwrap().is_empty());
    }
}

#[test]
fn drop_on_panic_and_stale_cleanup() {
    let prefix = std::panic::catch_unwind(|| {
        let mut lab = Lab::new("panic").unwrap();
        let a = lab.add_ns("a").unwrap();
        lab.spawn(&a, &["sleep", "300"]).unwrap();
        let p = lab.prefix().to_string();
        std::panic::panic_any(p);
    })
    .unwrap_err()
    .downcast::<String>()
    .unwrap();
    assert!(lab_gone(&prefix));

    // A namespace that looks like it belongs to a dead process is collected.
    let stale = "et-999999999-0-stale-x";
    let st = std::process::Command::new("ip")
        .args(["netns", "add", stale])
        .status()
        .unwrap();
    assert!(st.success());
    // (A concurrently starting Lab may collect it first; either way it must be gone.)
    edgetrace_testnet::cleanup_stale().unwrap();
    assert!(lab_gone(stale));
}

#[test]
fn icmp_ratelimit_options() {
    let mut lab = Lab::new("rl").unwrap();
    let off = lab.add_ns("off").unwrap();
    let kept = lab
        .add_ns_opts(
            "kept",
            edgetrace_testnet::NsOptions {
                kernel_icmp_ratelimit: true,
            },
        )
        .unwrap();
    let get = |ns: &str, k: &str| lab.sysctl_get(ns, k).unwrap();
    assert_eq!(get(&off, "net/ipv4/icmp_ratelimit"), "0");
    assert_eq!(get(&off, "net/ipv4/icmp_ratemask"), "0");
    assert_eq!(get(&off, "net/ipv6/icmp/ratelimit"), "0");
    assert_ne!(get(&kept, "net/ipv4/icmp_ratelimit"), "0");
    lab.restore_kernel_icmp_ratelimit(&off).unwrap();
    for k in [
        "net/ipv4/icmp_ratelimit",
        "net/ipv4/icmp_ratemask",
        "net/ipv6/icmp/ratelimit",
    ] {
        assert_eq!(get(&off, k), get(&kept, k), "{k}");
    }
    // Commands only run in the lab's own namespaces.
    assert!(lab.exec("not-ours", &["true"]).is_err());
}
