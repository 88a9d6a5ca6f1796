//! Names and AS numbers of hops and targets, end to end: `edgetrace traceroute` and
//! `edgetrace serve` on a namespace path, with a DNS server (edgetrace_enrich::testing) bound
//! on the source namespace's loopback that serves PTR records for the path's addresses, and
//! ip2asn TSV files written by the tests. No probe and no DNS query leaves the namespaces the
//! tests create; each `Path`/`Lab` tears them down on drop. Needs root (CI runs as root).

use edgetrace_enrich::testing::{DnsServer, Mode};
use edgetrace_probe::report::{ColoTrace, Traceroute};
use edgetrace_testnet::{Lab, LinearSpec, Path, linear_tagged};
use std::process::Output;
use std::time::{Duration, Instant};

mod common;

use common::{BIN, credentials, http, start_serve};

/// src — r1 — r2 — r3 — dst: hops 198.18.{1,2,3}.2 and the target 198.18.4.2 (and
/// 2001:2:0:{1,2,3,4}::2).
fn path(tag: &str) -> Path {
    linear_tagged(
        tag,
        &LinearSpec {
            routers: 3,
            ..Default::default()
        },
    )
    .expect("topology builds")
}

/// PTR records of the path: every address but 198.18.2.2 (NXDOMAIN: its name is its IP).
const RECORDS: &[(&str, &str, u32)] = &[
    ("198.18.1.2", "r1.v4.test.example.", 300),
    ("198.18.3.2", "r3.v4.test.example.", 300),
    ("198.18.4.2", "dst.v4.test.example.", 300),
    ("2001:2:0:1::2", "r1.v6.test.example.", 300),
    ("2001:2:0:2::2", "r2.v6.test.example.", 300),
    ("2001:2:0:3::2", "R3.V6.Test.Example.", 300),
    ("2001:2:0:4::2", "dst.v6.test.example.", 300),
];

/// (ip, name, asn) of every hop and then of the target summary.
const WANT_V4: &[(&str, &str, &str)] = &[
    ("198.18.1.2", "r1.v4.test.example", "AS64501"),
    ("198.18.2.2", "198.18.2.2", "AS64501"),
    ("198.18.3.2", "r3.v4.test.example", "AS64503"),
    ("198.18.4.2", "dst.v4.test.example", "AS64504"),
    ("198.18.4.2", "dst.v4.test.example", "AS64504"),
];
const WANT_V6: &[(&str, &str, &str)] = &[
    ("2001:2:0:1::2", "r1.v6.test.example", "AS64601"),
    ("2001:2:0:2::2", "r2.v6.test.example", ""),
    ("2001:2:0:3::2", "R3.V6.Test.Example", "AS64603"),
    ("2001:2:0:4::2", "dst.v6.test.example", "AS64603"),
    ("2001:2:0:4::2", "dst.v6.test.example", "AS64603"),
];

/// The DNS server, on a socket bound on the loopback of namespace `ns`.
fn dns_in(lab: &Lab, ns: &str, records: &[(&str, &str, u32)], mode: Mode) -> DnsServer {
    let socket = lab
        .in_ns(ns, || std::net::UdpSocket::bind("127.0.0.1:0"))
        .expect("enter the namespace")
        .expect("bind in the namespace");
    DnsServer::start(socket, records, 300, mode).expect("DNS server starts")
}

/// Two ip2asn files, v4 and v6: ranges that hold the addresses inside, at their edges, and
/// leave 2001:2:0:2::/64 out. Returns `--asn-db` arguments.
fn asn_files(dir: &tempfile::TempDir) -> Vec<String> {
    let v4 = dir.path().join("ip2asn-v4.tsv");
    std::fs::write(
        &v4,
        "198.18.1.0\t198.18.2.255\t64501\tZZ\tTEST-A\n\
         198.18.3.0\t198.18.3.255\t64503\tZZ\tTEST-C\n\
         198.18.4.2\t198.18.4.2\t64504\tZZ\tTEST-D\n",
    )
    .unwrap();
    let v6 = dir.path().join("ip2asn-v6.tsv");
    std::fs::write(
        &v6,
        "2001:2:0:1::\t2001:2:0:1:ffff:ffff:ffff:ffff\t64601\tZZ\tTEST-A6\n\
         2001:2:0:3::\t2001:2:0:4::2\t64603\tZZ\tTEST-C6\n",
    )
    .unwrap();
    vec![
        "--asn-db".into(),
        v4.display().to_string(),
        "--asn-db".into(),
        v6.display().to_string(),
    ]
}

fn traceroute(lab: &Lab, ns: &str, args: &[String]) -> (Output, Duration) {
    let mut argv = vec![BIN, "traceroute"];
    argv.extend(args.iter().map(String::as_str));
    let out = lab
        .exec_timeout(ns, &argv, Duration::from_secs(60))
        .expect("ip netns exec runs");
    assert!(!out.timed_out, "edgetrace {args:?} did not end");
    (out.output, out.elapsed)
}

fn traced(out: &Output, args: &[String]) -> Vec<Traceroute> {
    assert!(
        out.status.success(),
        "edgetrace {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).expect("--json prints the API's result array")
}

fn rows(c: &ColoTrace) -> Vec<(String, String, String)> {
    assert_eq!(c.error, "", "{c:?}");
    c.hops
        .iter()
        .map(|h| {
            assert_eq!(h.nodes.len(), 1, "TTL {}: {:?}", h.packets_ttl, h.nodes);
            &h.nodes[0]
        })
        .map(|n| (n.ip.clone(), n.name.clone(), n.asn.clone()))
        .chain([(
            c.target_summary.ip.clone(),
            c.target_summary.name.clone(),
            c.target_summary.asn.clone(),
        )])
        .collect()
}

fn owned(want: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    want.iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect()
}

fn args(list: &[&str], more: &[String]) -> Vec<String> {
    list.iter()
        .map(|s| s.to_string())
        .chain(more.iter().cloned())
        .collect()
}

const NO_ASN_WARNING: &str = "no ASN database configured";

#[test]
fn names_and_asns_come_back_exactly_for_every_hop_and_target_v4_and_v6() {
    let path = path("enrnames");
    let dns = dns_in(&path.lab, &path.src, RECORDS, Mode::answer());
    let dir = tempfile::tempdir().unwrap();
    let server = dns.addr().to_string();
    let (v4, v6) = (path.target_v4.to_string(), path.target_v6.to_string());
    for proto in ["icmp", "udp"] {
        let a = args(
            &["--json", "-P", proto, "--dns-server", &server, &v4, &v6],
            &asn_files(&dir),
        );
        let (out, _) = traceroute(&path.lab, &path.src, &a);
        let r = traced(&out, &a);
        assert_eq!(rows(&r[0].colos[0]), owned(WANT_V4), "{proto}");
        assert_eq!(rows(&r[1].colos[0]), owned(WANT_V6), "{proto}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains(NO_ASN_WARNING), "{stderr}");
    }
    // One query per address and run (two runs): prefetched at the first reply, shared with
    // the other probes of its TTL, the target's started with the trace, all awaited at the end.
    for (ip, _, _) in RECORDS {
        assert_eq!(dns.seen(ip), 2, "{ip}");
    }
    assert_eq!(dns.seen("198.18.2.2"), 2, "NXDOMAIN too");

    // The tables show name, address and AS.
    let a = args(&["--dns-server", &server, &v4], &asn_files(&dir));
    let (out, _) = traceroute(&path.lab, &path.src, &a);
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    for line in [
        "r1.v4.test.example (198.18.1.2) [AS64501]",
        "198.18.2.2 [AS64501]",
        "dst.v4.test.example (198.18.4.2) [AS64504]",
    ] {
        assert!(table.contains(line), "{line:?} missing in\n{table}");
    }
}

#[test]
fn a_dns_server_that_drops_every_query_costs_at_most_one_timeout() {
    let path = path("enrdrop");
    let dns = dns_in(&path.lab, &path.src, RECORDS, Mode::Drop);
    let dir = tempfile::tempdir().unwrap();
    let timeout = Duration::from_millis(500);
    let server = dns.addr().to_string();
    for target in [path.target_v4.to_string(), path.target_v6.to_string()] {
        let a = args(
            &[
                "--json",
                "--dns-server",
                &server,
                "--dns-timeout",
                "500",
                &target,
            ],
            &asn_files(&dir),
        );
        let (out, elapsed) = traceroute(&path.lab, &path.src, &a);
        let r = traced(&out, &a);
        let c = &r[0].colos[0];
        let want = if target.contains(':') {
            WANT_V6
        } else {
            WANT_V4
        };
        // Names are the IPs; AS numbers are still there.
        let want: Vec<(String, String, String)> = want
            .iter()
            .map(|(ip, _, asn)| (ip.to_string(), ip.to_string(), asn.to_string()))
            .collect();
        assert_eq!(rows(c), want, "{target}");
        let trace_time = Duration::from_millis(c.traceroute_time_ms);
        // The whole run, process start and namespace entry included.
        let margin = Duration::from_millis(300);
        eprintln!(
            "{target}: trace {trace_time:?}, run {elapsed:?} with a silent DNS server ({timeout:?} timeout)"
        );
        assert!(
            elapsed < trace_time + timeout + margin,
            "{target}: {elapsed:?} for a {trace_time:?} trace"
        );
        assert!(dns.seen(&target) >= 1, "the queries were sent");
    }
}

#[test]
fn no_dns_keeps_names_equal_to_ips_and_warns_once_without_an_asn_database() {
    let path = path("enrnodns");
    let dns = dns_in(&path.lab, &path.src, RECORDS, Mode::answer());
    let (v4, v6) = (path.target_v4.to_string(), path.target_v6.to_string());
    let a = args(&["--json", "--no-dns", &v4, &v6], &[]);
    let (out, _) = traceroute(&path.lab, &path.src, &a);
    let r = traced(&out, &a);
    for (t, want) in r.iter().zip([WANT_V4, WANT_V6]) {
        let want: Vec<(String, String, String)> = want
            .iter()
            .map(|(ip, _, _)| (ip.to_string(), ip.to_string(), String::new()))
            .collect();
        assert_eq!(rows(&t.colos[0]), want);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches(NO_ASN_WARNING).count(), 1, "{stderr}");
    assert!(stderr.contains("--asn-db FILE"), "{stderr}");
    assert_eq!(dns.total(), 0);

    // --no-dns and --dns-server contradict each other.
    let a = args(
        &["--no-dns", "--dns-server", &dns.addr().to_string(), &v4],
        &[],
    );
    let (out, _) = traceroute(&path.lab, &path.src, &a);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_corrupt_database_exits_2_naming_the_file() {
    // A namespace with only a loopback interface: nothing can leave it.
    let mut lab = Lab::new("enrbad").unwrap();
    let ns = lab.add_ns("src").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tsv = dir.path().join("broken-ip2asn.tsv");
    std::fs::write(
        &tsv,
        "198.18.1.0\t198.18.1.255\t64501\tZZ\tTEST\n198.18.2.0\tnot-an-address\t64502\tZZ\tX\n",
    )
    .unwrap();
    let truncated = dir.path().join("GeoLite2-ASN.mmdb");
    std::fs::write(&truncated, b"\xab\xcd\xefMaxMind.com\x00\x01").unwrap();
    let missing = dir.path().join("missing.tsv");
    for (file, what) in [
        (&tsv, "line 2"),
        (&truncated, "MaxMind DB"),
        (&missing, "cannot read"),
    ] {
        let file = file.display().to_string();
        let a = args(&["--no-dns", "--asn-db", &file, "127.0.0.1"], &[]);
        let (out, _) = traceroute(&lab, &ns, &a);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{file}: {stderr}");
        assert!(stderr.contains(&file), "{stderr}");
        assert!(stderr.contains(what), "{what:?} missing: {stderr}");
        assert!(out.stdout.is_empty());
    }

    // serve refuses to start.
    let data = dir.path().join("data");
    let file = tsv.display().to_string();
    let out = lab
        .exec_timeout(
            &ns,
            &[
                BIN,
                "serve",
                "--listen",
                "127.0.0.1:8080",
                "--data-dir",
                data.to_str().unwrap(),
                "--asn-db",
                &file,
            ],
            Duration::from_secs(30),
        )
        .unwrap();
    assert!(!out.timed_out, "serve started with a corrupt database");
    let stderr = String::from_utf8_lossy(&out.output.stderr);
    assert!(!out.output.status.success());
    assert!(
        stderr.contains(&file) && stderr.contains("line 2"),
        "{stderr}"
    );
    lab.shutdown().unwrap();
}

#[test]
fn serve_fills_names_and_asns_in_the_api_and_the_network_path() {
    let path = path("enrapi");
    let dns = dns_in(&path.lab, &path.src, RECORDS, Mode::answer());
    let mut lab = path.lab;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (account, secret) = credentials(&data);
    // The databases through the config file (relative paths), DNS through a flag.
    asn_files(&dir);
    let config = dir.path().join("edgetrace.toml");
    std::fs::write(
        &config,
        "[enrich]\ndns_timeout_ms = 2000\nasn_db = [\"ip2asn-v4.tsv\", \"ip2asn-v6.tsv\"]\n",
    )
    .unwrap();
    let socket = dir.path().join("sysprobe.sock");
    let server = dns.addr().to_string();
    let config_arg = config.to_str().unwrap();
    start_serve(
        &mut lab,
        &path.src,
        dir.path(),
        &data,
        &["--config", config_arg, "--dns-server", &server],
    );

    let (v4, v6) = (path.target_v4.to_string(), path.target_v6.to_string());
    let body = serde_json::json!({"targets": [v4, v6]}).to_string();
    let request = format!(
        "POST /client/v4/accounts/{account}/diagnostics/traceroute HTTP/1.1\r\nHost: api\r\n\
         Authorization: Bearer {secret}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let stream = lab
        .in_ns(&path.src, || std::net::TcpStream::connect("127.0.0.1:8080"))
        .unwrap()
        .unwrap();
    let (status, reply) = http(stream, &request);
    assert_eq!(status, 200, "{reply}");
    let result: Vec<Traceroute> = serde_json::from_value(reply["result"].clone()).unwrap();
    assert_eq!(rows(&result[0].colos[0]), owned(WANT_V4));
    assert_eq!(rows(&result[1].colos[0]), owned(WANT_V6));

    // The Datadog NetworkPath: each hop's hostname is its name.
    for (target, want) in [(&v4, WANT_V4), (&v6, WANT_V6)] {
        let stream = std::os::unix::net::UnixStream::connect(&socket).unwrap();
        let (status, np) = http(
            stream,
            &format!(
                "GET /traceroute/{target}?protocol=UDP&max_ttl=10 HTTP/1.1\r\nHost: sysprobe\r\n\
                 Connection: close\r\n\r\n"
            ),
        );
        assert_eq!(status, 200, "{np}");
        let hops: Vec<(String, String)> = np["hops"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h["ip_address"].as_str().unwrap().to_string(),
                    h["hostname"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let want: Vec<(String, String)> = want[..4]
            .iter()
            .map(|(ip, name, _)| (ip.to_string(), name.to_string()))
            .collect();
        assert_eq!(hops, want, "{target}");
    }
    drop(lab);
}

/// The figure of the closing note: wall-clock time of whole `edgetrace traceroute` runs on the
/// same path with and without enrichment (DNS server answering, ASN files given), runs
/// interleaved so that load changes hit both alike; on plain veth links (the trace takes well
/// under a millisecond, so nothing hides the lookups) and with a 5 ms link in the middle.
/// Prints the medians; `EDGETRACE_ENRICH_RUNS` sets the number of runs (bench/enrich.sh).
#[test]
fn enrichment_adds_little_to_a_trace() {
    let runs: usize = std::env::var("EDGETRACE_ENRICH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(11);
    for (tag, delay) in [
        ("enrtime", None),
        ("enrtimed", Some(Duration::from_millis(5))),
    ] {
        let path = linear_tagged(
            tag,
            &LinearSpec {
                routers: 3,
                delay: delay.map(|d| (2, d)),
                ..Default::default()
            },
        )
        .expect("topology builds");
        let dns = dns_in(&path.lab, &path.src, RECORDS, Mode::answer());
        let dir = tempfile::tempdir().unwrap();
        let server = dns.addr().to_string();
        let target = path.target_v4.to_string();
        let plain = args(&["--json", "--no-dns", &target], &[]);
        let enriched = args(
            &["--json", "--dns-server", &server, &target],
            &asn_files(&dir),
        );
        let (mut without, mut with) = (Vec::new(), Vec::new());
        for i in 0..runs {
            for (a, times) in [(&plain, &mut without), (&enriched, &mut with)] {
                // Timed here: `Lab::exec_timeout` polls the child every 5 ms.
                let started = Instant::now();
                let out = std::process::Command::new("ip")
                    .args(["netns", "exec", &path.src, BIN, "traceroute"])
                    .args(a.iter())
                    .output()
                    .expect("ip netns exec runs");
                let elapsed = started.elapsed();
                let r = traced(&out, a);
                // Every run asks the server again: the cache lives in the process.
                if a == &enriched {
                    assert_eq!(rows(&r[0].colos[0]), owned(WANT_V4), "run {i}");
                }
                times.push(elapsed);
            }
        }
        let median = |v: &mut Vec<Duration>| {
            v.sort();
            v[v.len() / 2]
        };
        let (a, b) = (median(&mut without), median(&mut with));
        let diff_ms = b.as_secs_f64() * 1e3 - a.as_secs_f64() * 1e3;
        let links = match delay {
            None => "veth links".to_string(),
            Some(d) => format!("a {d:?} one-way link at TTL 2"),
        };
        eprintln!(
            "enrichment figure ({links}): median of {runs} runs of `edgetrace traceroute` \
             over 4 hops: {a:?} without enrichment (--no-dns, no ASN database), {b:?} with \
             it (DNS server answering, 2 ip2asn files): {diff_ms:+.1} ms"
        );
        assert!(dns.seen(&target) >= runs, "each run looked the names up");
        // The goal is under 10 ms; the bound leaves room for a loaded CI machine.
        assert!(diff_ms < 50.0, "{links}: {diff_ms} ms");
    }
}
