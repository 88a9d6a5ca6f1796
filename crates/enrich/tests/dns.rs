//! Reverse DNS against a real DNS server on 127.0.0.1: the small authoritative responder of
//! `edgetrace_enrich::testing` (hickory-proto) that serves PTR records, answers NXDOMAIN with an SOA, can answer late
//! or never, and counts the queries it sees.

use edgetrace_enrich::testing::{DnsServer as Server, Mode};
use edgetrace_enrich::{AsnDb, DbOptions, DnsOptions, Enricher, Error, Resolver};
use edgetrace_probe::report::{Colo, ColoTrace, HopResult, NodeResult};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// PTR records: (address, name, ttl). NXDOMAIN answers carry an SOA whose negative TTL is
/// `negative_ttl`.
async fn serve(records: &[(&str, &str, u32)], negative_ttl: u32, mode: Mode) -> Server {
    Server::loopback(records, negative_ttl, mode).unwrap()
}

fn options(server: &Server) -> DnsOptions {
    DnsOptions {
        server: Some(server.addr()),
        timeout: Duration::from_millis(400),
        min_ttl: Duration::ZERO,
        ..DnsOptions::default()
    }
}

const RECORDS: &[(&str, &str, u32)] = &[
    ("198.18.0.1", "core1.fra.example.net.", 300),
    ("198.18.7.200", "edge-7-200.example.net.", 300),
    ("2001:2::1", "core1.v6.example.net.", 300),
    ("2001:2::ab:cd", "Mixed-Case.v6.Example.NET.", 300),
    ("198.18.0.2", "short-lived.example.net.", 1),
];

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ptr_names_come_back_exactly_v4_and_v6() {
    let server = serve(RECORDS, 300, Mode::Answer(Duration::ZERO)).await;
    let r = Resolver::new(options(&server)).unwrap();
    assert_eq!(r.name(ip("198.18.0.1")).await, "core1.fra.example.net");
    assert_eq!(r.name(ip("198.18.7.200")).await, "edge-7-200.example.net");
    assert_eq!(r.name(ip("2001:2::1")).await, "core1.v6.example.net");
    assert_eq!(
        r.name(ip("2001:2::ab:cd")).await,
        "Mixed-Case.v6.Example.NET"
    );
    // Cached now: no new query, and visible without waiting.
    assert_eq!(r.name(ip("198.18.0.1")).await, "core1.fra.example.net");
    assert_eq!(server.seen("198.18.0.1"), 1);
    assert_eq!(
        r.cached(ip("2001:2::1")).as_deref(),
        Some("core1.v6.example.net")
    );
    assert_eq!(r.cached(ip("198.18.9.9")), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nxdomain_gives_the_ip_and_is_cached_for_the_soa_negative_ttl() {
    let server = serve(RECORDS, 1, Mode::Answer(Duration::ZERO)).await;
    let r = Resolver::new(options(&server)).unwrap();
    assert_eq!(r.name(ip("198.18.0.99")).await, "198.18.0.99");
    assert_eq!(r.name(ip("198.18.0.99")).await, "198.18.0.99");
    assert_eq!(server.seen("198.18.0.99"), 1, "the second lookup is cached");
    assert_eq!(r.name(ip("2001:2::99")).await, "2001:2::99");
    // The SOA says 1 s.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(r.name(ip("198.18.0.99")).await, "198.18.0.99");
    assert_eq!(
        server.seen("198.18.0.99"),
        2,
        "expired after the negative TTL"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negative_ttl_is_capped() {
    let server = serve(RECORDS, 86_400, Mode::Answer(Duration::ZERO)).await;
    let r = Resolver::new(DnsOptions {
        max_negative_ttl: Duration::from_millis(300),
        ..options(&server)
    })
    .unwrap();
    r.name(ip("198.18.0.98")).await;
    r.name(ip("198.18.0.98")).await;
    assert_eq!(server.seen("198.18.0.98"), 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    r.name(ip("198.18.0.98")).await;
    assert_eq!(server.seen("198.18.0.98"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_expiry_causes_a_new_query() {
    let server = serve(RECORDS, 300, Mode::Answer(Duration::ZERO)).await;
    let r = Resolver::new(options(&server)).unwrap();
    assert_eq!(r.name(ip("198.18.0.2")).await, "short-lived.example.net");
    assert_eq!(r.name(ip("198.18.0.2")).await, "short-lived.example.net");
    assert_eq!(server.seen("198.18.0.2"), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(r.cached(ip("198.18.0.2")), None, "expired");
    assert_eq!(r.name(ip("198.18.0.2")).await, "short-lived.example.net");
    assert_eq!(server.seen("198.18.0.2"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_ttl_keeps_short_answers_for_the_trace_that_asked() {
    let server = serve(RECORDS, 300, Mode::Answer(Duration::ZERO)).await;
    let r = Resolver::new(DnsOptions {
        min_ttl: Duration::from_secs(10),
        ..options(&server)
    })
    .unwrap();
    r.name(ip("198.18.0.2")).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    r.name(ip("198.18.0.2")).await;
    assert_eq!(server.seen("198.18.0.2"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_gives_the_ip_within_the_timeout() {
    let server = serve(RECORDS, 300, Mode::Drop).await;
    let timeout = Duration::from_millis(400);
    let r = Resolver::new(options(&server)).unwrap();
    let t = Instant::now();
    assert_eq!(r.name(ip("198.18.0.1")).await, "198.18.0.1");
    let took = t.elapsed();
    assert!(took >= timeout - Duration::from_millis(20), "{took:?}");
    assert!(took < timeout + Duration::from_millis(250), "{took:?}");
    assert!(server.seen("198.18.0.1") >= 1, "the query was sent");
    // The failure is cached briefly: no second wait.
    let t = Instant::now();
    assert_eq!(r.name(ip("198.18.0.1")).await, "198.18.0.1");
    assert!(t.elapsed() < Duration::from_millis(20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_lookups_to_a_silent_server_take_one_timeout() {
    let server = serve(RECORDS, 300, Mode::Drop).await;
    let timeout = Duration::from_millis(400);
    // Fewer slots than lookups: the queued ones must not wait a timeout each.
    let r = Resolver::new(DnsOptions {
        max_in_flight: 4,
        ..options(&server)
    })
    .unwrap();
    let ips: Vec<IpAddr> = (1..=40u8).map(|i| IpAddr::from([198, 18, 3, i])).collect();
    let t = Instant::now();
    let names = r.names(ips.clone()).await;
    let took = t.elapsed();
    assert!(took < timeout + Duration::from_millis(250), "{took:?}");
    for ip in ips {
        assert_eq!(names[&ip], ip.to_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_in_flight_are_shared() {
    let server = serve(RECORDS, 300, Mode::Answer(Duration::from_millis(150))).await;
    let r = Resolver::new(options(&server)).unwrap();
    let a = ip("198.18.0.1");
    let all = futures_util::future::join_all((0..10).map(|_| r.name(a))).await;
    assert!(all.iter().all(|n| n == "core1.fra.example.net"), "{all:?}");
    assert_eq!(server.seen("198.18.0.1"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetch_overlaps_the_lookup_with_probing() {
    let server = serve(RECORDS, 300, Mode::Answer(Duration::from_millis(150))).await;
    let r = Resolver::new(options(&server)).unwrap();
    let a = ip("2001:2::1");
    r.prefetch(a);
    // "Probing" goes on meanwhile.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let t = Instant::now();
    assert_eq!(r.name(a).await, "core1.v6.example.net");
    assert!(t.elapsed() < Duration::from_millis(20), "{:?}", t.elapsed());
    assert_eq!(server.seen("2001:2::1"), 1);
}

fn trace() -> ColoTrace {
    let ms = Duration::from_millis;
    let hops = vec![
        HopResult {
            ttl: 1,
            sent: 3,
            nodes: vec![NodeResult::new(ip("198.18.0.1"), ms(1), vec![])],
        },
        HopResult {
            ttl: 2,
            sent: 3,
            nodes: vec![
                NodeResult::new(ip("198.18.0.99"), ms(2), vec![]),
                NodeResult::new(ip("198.18.7.200"), ms(2), vec![]),
            ],
        },
        HopResult {
            ttl: 3,
            sent: 3,
            nodes: vec![NodeResult::new(ip("2001:2::1"), ms(3), vec![])],
        },
    ];
    ColoTrace::from_hops(Colo::default(), ip("2001:2::1"), &hops, ms(20))
}

fn asn_db(dir: &tempfile::TempDir) -> AsnDb {
    let path = dir.path().join("ip2asn-combined.tsv");
    std::fs::write(
        &path,
        "198.18.0.0\t198.18.0.255\t64500\tZZ\tTEST-CORE\n\
         198.18.7.0\t198.18.7.255\t64501\tZZ\tTEST-EDGE\n\
         2001:2::\t2001:2::ffff\t64502\tZZ\tTEST-V6\n",
    )
    .unwrap();
    AsnDb::open_with(
        [path],
        DbOptions {
            reload_interval: None,
            ..DbOptions::default()
        },
    )
    .unwrap()
}

fn names_and_asns(t: &ColoTrace) -> Vec<(String, String, String)> {
    t.hops
        .iter()
        .flat_map(|h| h.nodes.iter())
        .map(|n| (n.ip.clone(), n.name.clone(), n.asn.clone()))
        .chain([(
            t.target_summary.ip.clone(),
            t.target_summary.name.clone(),
            t.target_summary.asn.clone(),
        )])
        .collect()
}

fn row(ip: &str, name: &str, asn: &str) -> (String, String, String) {
    (ip.into(), name.into(), asn.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enricher_fills_every_node_and_the_target() {
    let server = serve(RECORDS, 300, Mode::Answer(Duration::ZERO)).await;
    let dir = tempfile::tempdir().unwrap();
    let enricher = Enricher {
        resolver: Some(Resolver::new(options(&server)).unwrap()),
        asn: Some(asn_db(&dir)),
    };
    let mut t = trace();
    for h in &t.hops {
        for n in &h.nodes {
            enricher.prefetch(n.ip.parse().unwrap());
        }
    }
    enricher.enrich(&mut t).await;
    assert_eq!(
        names_and_asns(&t),
        vec![
            row("198.18.0.1", "core1.fra.example.net", "AS64500"),
            row("198.18.0.99", "198.18.0.99", "AS64500"),
            row("198.18.7.200", "edge-7-200.example.net", "AS64501"),
            row("2001:2::1", "core1.v6.example.net", "AS64502"),
            row("2001:2::1", "core1.v6.example.net", "AS64502"),
        ]
    );
    // One query per address, prefetch and enrich together.
    assert_eq!(server.seen("2001:2::1"), 1);

    // --no-dns: names stay the IPs, ASNs are still filled.
    let no_dns = Enricher {
        resolver: None,
        asn: enricher.asn.clone(),
    };
    let mut t = trace();
    no_dns.enrich(&mut t).await;
    assert!(names_and_asns(&t).iter().all(|(ip, name, _)| ip == name));
    assert_eq!(t.target_summary.asn, "AS64502");

    // No ASN database: asn stays "".
    let mut t = trace();
    Enricher::default().enrich(&mut t).await;
    assert!(
        names_and_asns(&t)
            .iter()
            .all(|(ip, name, asn)| ip == name && asn.is_empty())
    );
}

/// The CLI's way: no runtime of its own, prefetch from the prober thread, enrich blocking.
#[test]
fn enricher_works_outside_any_runtime() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(serve(RECORDS, 300, Mode::Answer(Duration::from_millis(50))));
    let enricher = Enricher {
        resolver: Some(Resolver::new(options(&server)).unwrap()),
        asn: None,
    };
    let prober = {
        let e = enricher.clone();
        std::thread::spawn(move || e.prefetch(ip("198.18.7.200")))
    };
    prober.join().unwrap();
    std::thread::sleep(Duration::from_millis(150));
    let mut t = trace();
    let started = Instant::now();
    enricher.enrich_blocking(&mut t);
    assert_eq!(t.hops[1].nodes[1].name, "edge-7-200.example.net");
    assert_eq!(t.hops[0].nodes[0].name, "core1.fra.example.net");
    assert_eq!(t.target_summary.name, "core1.v6.example.net");
    assert!(started.elapsed() < Duration::from_millis(400));
    assert_eq!(server.seen("198.18.7.200"), 1);
    drop(enricher);
    drop(rt);
}

#[tokio::test]
async fn options_are_checked() {
    let e = Resolver::new(DnsOptions {
        timeout: Duration::ZERO,
        ..DnsOptions::default()
    })
    .unwrap_err();
    assert!(matches!(
        e,
        Error::DnsOption {
            field: "timeout",
            ..
        }
    ));
    assert_eq!(
        e.to_string(),
        "DNS option timeout = 0ns: must be 1 ms to 60 s"
    );
    let e = Resolver::new(DnsOptions {
        max_in_flight: 0,
        ..DnsOptions::default()
    })
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "DNS option max_in_flight = 0: must be 1 to 4096"
    );
}

/// The system configuration is read (nothing is sent: no lookup is made).
#[tokio::test]
async fn system_configuration_builds() {
    if std::path::Path::new("/etc/resolv.conf").exists() {
        Resolver::new(DnsOptions::default()).unwrap();
    }
}

/// The goal: with a DNS server that answers, enrichment adds under 10 ms to a trace
/// whose hops were prefetched as they answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enriching_a_prefetched_trace_adds_under_10_ms() {
    let records: Vec<(String, String)> = (1..=30u8)
        .map(|i| (format!("198.18.10.{i}"), format!("hop{i}.example.net.")))
        .collect();
    let refs: Vec<(&str, &str, u32)> = records
        .iter()
        .map(|(a, n)| (a.as_str(), n.as_str(), 300))
        .collect();
    let server = serve(&refs, 300, Mode::Answer(Duration::from_millis(5))).await;
    let dir = tempfile::tempdir().unwrap();
    let enricher = Enricher {
        resolver: Some(Resolver::new(options(&server)).unwrap()),
        asn: Some(asn_db(&dir)),
    };
    let target = ip("198.18.10.30");
    enricher.prefetch(target);
    let mut hops = Vec::new();
    for i in 1..=30u8 {
        let hop = IpAddr::from([198, 18, 10, i]);
        // A hop answers every 2 ms or so; the prober prefetches its name at once.
        tokio::time::sleep(Duration::from_millis(2)).await;
        enricher.prefetch(hop);
        hops.push(HopResult {
            ttl: i,
            sent: 3,
            nodes: vec![NodeResult::new(
                hop,
                Duration::from_millis(i.into()),
                vec![],
            )],
        });
    }
    let mut t = ColoTrace::from_hops(Colo::default(), target, &hops, Duration::from_millis(60));
    // The last hop's lookup has had the time of one round of probing (the wait for the
    // other probes of the TTL) to complete.
    tokio::time::sleep(Duration::from_millis(30)).await;
    let started = Instant::now();
    enricher.enrich(&mut t).await;
    let took = started.elapsed();
    eprintln!("enrich of a prefetched 30-hop trace: {took:?}");
    assert!(took < Duration::from_millis(10), "{took:?}");
    assert_eq!(t.hops[29].nodes[0].name, "hop30.example.net");
    assert_eq!(t.target_summary.name, "hop30.example.net");
    assert_eq!(t.hops[0].nodes[0].asn, "");
    assert_eq!(server.seen("198.18.10.30"), 1);
}
