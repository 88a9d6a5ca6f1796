//! ASN lookups per second: the ip2asn table against a `.mmdb` of the same ranges (the peer:
//! the maxminddb crate, as for GeoLite2-ASN), looking up the same addresses in one process.
//!
//! `cargo bench -p edgetrace-enrich --bench asn` prints a summary first, then criterion's
//! figures (`thrpt` is lookups per second).

use criterion::{BenchmarkId, Criterion, Throughput, black_box};
use edgetrace_enrich::{AsnDb, DbOptions};
use mmdb_writer::{Value, Writer};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

const V4_RANGES: usize = 500_000;
const V6_RANGES: usize = 100_000;
const ADDRESSES: usize = 1 << 20;

/// xorshift64*: reproducible and dependency-free.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Ranges shaped like a BGP table: mostly /24s, fewer bigger blocks, unrouted gaps
/// (written as AS 0 lines, as ip2asn does), every range its own AS.
fn synthetic_v4(rng: &mut Rng) -> Vec<(u32, u32, u32)> {
    let mut out = Vec::with_capacity(V4_RANGES);
    let mut at: u32 = u32::from(Ipv4Addr::new(1, 0, 0, 0));
    while out.len() < V4_RANGES {
        let k = match rng.below(100) {
            0..50 => 0,
            50..70 => 1,
            70..80 => 2,
            80..88 => 3,
            88..93 => 4,
            93..97 => 5,
            _ => 8,
        };
        let size = 256u32 << k;
        let asn = if rng.below(10) == 0 {
            0
        } else {
            1 + rng.below(400_000) as u32
        };
        let Some(end) = at.checked_add(size - 1) else {
            break;
        };
        out.push((at, end, asn));
        at = end + 1;
    }
    out
}

fn synthetic_v6(rng: &mut Rng) -> Vec<(u128, u128, u32)> {
    let mut out = Vec::with_capacity(V6_RANGES);
    let mut at: u128 = u128::from("2001:200::".parse::<Ipv6Addr>().unwrap());
    while out.len() < V6_RANGES {
        // /32 to /48 blocks.
        let prefix = 32 + rng.below(17) as u32;
        let size = 1u128 << (128 - prefix);
        let asn = if rng.below(10) == 0 {
            0
        } else {
            1 + rng.below(400_000) as u32
        };
        out.push((at, at + size - 1, asn));
        at += size;
    }
    out
}

fn tsv(v4: &[(u32, u32, u32)], v6: &[(u128, u128, u32)]) -> String {
    let mut s = String::with_capacity(40 * (v4.len() + v6.len()));
    for &(a, b, asn) in v4 {
        let (a, b) = (Ipv4Addr::from(a), Ipv4Addr::from(b));
        let _ = writeln!(s, "{a}\t{b}\t{asn}\tZZ\tAS{asn}-SYNTHETIC");
    }
    for &(a, b, asn) in v6 {
        let (a, b) = (Ipv6Addr::from(a), Ipv6Addr::from(b));
        let _ = writeln!(s, "{a}\t{b}\t{asn}\tZZ\tAS{asn}-SYNTHETIC");
    }
    s
}

fn mmdb(v4: &[(u32, u32, u32)], v6: &[(u128, u128, u32)]) -> Vec<u8> {
    let mut w = Writer::builder("GeoLite2-ASN")
        .description(&[("en", "synthetic")])
        .build();
    let rec = |asn: u32| {
        Value::map([
            ("autonomous_system_number", Value::from(asn)),
            (
                "autonomous_system_organization",
                Value::from(format!("AS{asn}-SYNTHETIC")),
            ),
        ])
    };
    for &(a, b, asn) in v4.iter().filter(|r| r.2 != 0) {
        w.insert_range(
            Ipv4Addr::from(a).into(),
            Ipv4Addr::from(b).into(),
            &rec(asn),
        )
        .unwrap();
    }
    for &(a, b, asn) in v6.iter().filter(|r| r.2 != 0) {
        w.insert_range(
            Ipv6Addr::from(a).into(),
            Ipv6Addr::from(b).into(),
            &rec(asn),
        )
        .unwrap();
    }
    w.to_bytes().unwrap()
}

struct Setup {
    tsv: AsnDb,
    mmdb: AsnDb,
    v4: Vec<IpAddr>,
    v6: Vec<IpAddr>,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let v4 = synthetic_v4(&mut rng);
    let v6 = synthetic_v6(&mut rng);
    let dir = tempfile::tempdir().unwrap();
    let tsv_path = dir.path().join("ip2asn-combined.tsv");
    let mmdb_path = dir.path().join("GeoLite2-ASN.mmdb");
    std::fs::write(&tsv_path, tsv(&v4, &v6)).unwrap();
    let t = Instant::now();
    std::fs::write(&mmdb_path, mmdb(&v4, &v6)).unwrap();
    eprintln!("built the .mmdb in {:.1} s", t.elapsed().as_secs_f64());
    let opts = DbOptions {
        reload_interval: None,
        ..DbOptions::default()
    };
    let t = Instant::now();
    let tsv = AsnDb::open_with([&tsv_path], opts.clone()).unwrap();
    eprintln!(
        "loaded the TSV ({} v4 + {} v6 lines, {} MB) in {:.2} s",
        v4.len(),
        v6.len(),
        std::fs::metadata(&tsv_path).unwrap().len() >> 20,
        t.elapsed().as_secs_f64()
    );
    let mmdb = AsnDb::open_with([&mmdb_path], opts).unwrap();
    let (lo4, hi4) = (v4[0].0 as u64, v4[v4.len() - 1].1 as u64);
    let addrs4 = (0..ADDRESSES)
        .map(|_| IpAddr::V4(Ipv4Addr::from((lo4 + rng.below(hi4 - lo4)) as u32)))
        .collect();
    let (lo6, hi6) = (v6[0].0, v6[v6.len() - 1].1);
    let addrs6 = (0..ADDRESSES)
        .map(|_| {
            let r = ((rng.next() as u128) << 64) | rng.next() as u128;
            IpAddr::V6(Ipv6Addr::from(lo6 + r % (hi6 - lo6)))
        })
        .collect();
    Setup {
        tsv,
        mmdb,
        v4: addrs4,
        v6: addrs6,
        _dir: dir,
    }
}

fn run(db: &AsnDb, addrs: &[IpAddr]) -> u64 {
    let mut sum = 0u64;
    for &a in addrs {
        sum = sum.wrapping_add(u64::from(db.lookup(black_box(a)).unwrap_or(0)));
    }
    sum
}

/// Lookups per second over the whole address list, best of a few passes.
fn rate(db: &AsnDb, addrs: &[IpAddr]) -> f64 {
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        black_box(run(db, addrs));
        best = best.min(t.elapsed());
    }
    addrs.len() as f64 / best.as_secs_f64()
}

fn main() {
    let s = setup();
    // Both databases must agree on every address before their speeds mean anything.
    for a in s.v4.iter().chain(&s.v6).step_by(7) {
        assert_eq!(s.tsv.lookup(*a), s.mmdb.lookup(*a), "{a}");
    }
    let hits = s.v4.iter().filter(|a| s.tsv.lookup(**a).is_some()).count();
    eprintln!(
        "{} random IPv4 addresses, {:.0}% in a routed range",
        s.v4.len(),
        100.0 * hits as f64 / s.v4.len() as f64
    );
    for (family, addrs) in [("IPv4", &s.v4), ("IPv6", &s.v6)] {
        let tsv = rate(&s.tsv, addrs);
        let mmdb = rate(&s.mmdb, addrs);
        eprintln!(
            "{family}: ip2asn table {:.1} M lookups/s, mmdb (maxminddb) {:.1} M lookups/s, ratio {:.1}x",
            tsv / 1e6,
            mmdb / 1e6,
            tsv / mmdb
        );
    }

    let mut c = Criterion::default()
        .sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .configure_from_args();
    let mut g = c.benchmark_group("asn_lookup");
    g.throughput(Throughput::Elements(ADDRESSES as u64));
    for (family, addrs) in [("v4", &s.v4), ("v6", &s.v6)] {
        g.bench_with_input(BenchmarkId::new("ip2asn", family), addrs, |b, a| {
            b.iter(|| run(&s.tsv, a))
        });
        g.bench_with_input(BenchmarkId::new("mmdb", family), addrs, |b, a| {
            b.iter(|| run(&s.mmdb, a))
        });
    }
    g.finish();
    c.final_summary();
}
