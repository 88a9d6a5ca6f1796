//! Executions per second: edgetrace's engine vs crates.io
//! `wirefilter-engine` 0.6.1 on the same filter, plus a 1,000-rule zone
//! evaluated for one request.
//!
//! Run with `cargo bench -p edgetrace-rules --bench eval`. Besides
//! criterion's report it prints exec/s for both engines and the ratio.
//!
//! Measured on the 2-core development machine (rustc 1.95, release):
//! the issue's filter 122.6 M exec/s (8.2 ns) vs wirefilter 49.7 M (20.1 ns),
//! 2.47x; with a non-literal regex (`^/api/v[0-9]+/`) 54.8 M vs 43.6 M,
//! 1.26x; the 1,000-rule zone for one request 32–34 µs.

use std::hint::black_box;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use criterion::Criterion;
use edgetrace_rules::{ExecutionContext, ExprKind, Expression, Scheme};

const FILTER: &str = r#"http.host eq "example.com" and not ip.src in {10.0.0.0/8} and http.request.uri.path matches "^/api/""#;

/// The same filter with a regular expression that is not a plain literal,
/// so both engines run the regex crate.
const FILTER_REGEX: &str = r#"http.host eq "example.com" and not ip.src in {10.0.0.0/8} and http.request.uri.path matches "^/api/v[0-9]+/""#;

const HOST: &str = "example.com";
const PATH: &str = "/api/v1/users";
const IP: &str = "203.0.113.7";

fn ours() -> (Scheme, Expression) {
    let scheme = Scheme::cloudflare();
    let expr = Expression::parse(&scheme, FILTER, ExprKind::Filter).expect("filter parses");
    (scheme, expr)
}

fn ours_ctx(scheme: &Scheme) -> ExecutionContext<'_, '_> {
    let mut ctx = ExecutionContext::new(scheme);
    ctx.set("http.host", HOST).expect("set host");
    ctx.set("http.request.uri.path", PATH).expect("set path");
    ctx.set("ip.src", IP.parse::<IpAddr>().expect("ip"))
        .expect("set ip");
    ctx
}

fn wf_scheme() -> wirefilter::Scheme {
    wirefilter::Scheme! {
        http.host: Bytes,
        http.request.uri.path: Bytes,
        ip.src: Ip,
    }
}

/// A zone of 1,000 varied rules.
fn thousand_rules() -> Vec<String> {
    (0..1000)
        .map(|i| match i % 10 {
            0 => format!(r#"http.host eq "site{i}.example.com" and http.request.uri.path matches "^/api/v{i}/""#),
            1 => format!("ip.src in {{10.{}.0.0/16 192.0.2.{}}}", i % 256, i % 256),
            2 => format!(r#"http.request.uri.path contains "/admin{i}""#),
            3 => format!(r#"any(http.request.headers["x-id"][*] eq "{i}")"#),
            4 => format!(r#"ip.src.country in {{"US" "CA"}} and cf.bot_management.score lt {}"#, i % 100),
            5 => format!(r#"lower(http.user_agent) contains "bot{i}""#),
            6 => format!(r#"starts_with(http.request.uri.path, "/p{i}/") or http.request.method eq "PUT""#),
            7 => format!(r#"http.request.full_uri wildcard "https://*.example.com/shop{i}/*""#),
            8 => format!(r#"not ssl and http.request.uri.query contains "id={i}" and ip.src.asnum in {{{i} 13335 64496..64511}}"#),
            _ => format!(r#"http.request.headers["user-agent"][0] matches "(?i)crawler{i}" xor cf.client.bot"#),
        })
        .collect()
}

fn request_ctx(scheme: &Scheme) -> ExecutionContext<'_, '_> {
    let mut ctx = ExecutionContext::new(scheme);
    ctx.set_request(
        "GET",
        true,
        "www.example.com",
        "/api/v1/users?id=42&sort=asc",
        "HTTP/2",
        &[
            ("Host", "www.example.com"),
            (
                "User-Agent",
                "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
            ),
            ("Accept", "*/*"),
            ("X-Id", "7"),
            ("Cookie", "session=abc; theme=dark"),
        ],
    )
    .expect("request");
    ctx.set("ip.src", IP.parse::<IpAddr>().expect("ip"))
        .expect("ip");
    ctx.set("ip.src.country", "DE").expect("country");
    ctx.set("ip.src.asnum", 64500).expect("asn");
    ctx.set("cf.bot_management.score", 30).expect("score");
    ctx.set("cf.client.bot", false).expect("bot");
    ctx
}

/// Runs `f` for about `dur` and returns executions per second.
fn rate(dur: Duration, mut f: impl FnMut() -> bool) -> f64 {
    // Warm up.
    for _ in 0..100_000 {
        black_box(f());
    }
    let start = Instant::now();
    let mut n: u64 = 0;
    while start.elapsed() < dur {
        for _ in 0..10_000 {
            black_box(f());
        }
        n += 10_000;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let (scheme, expr) = ours();
    let ctx = ours_ctx(&scheme);
    assert!(
        expr.execute(&ctx),
        "the benchmark request matches the filter"
    );

    let wscheme = wf_scheme();
    let wfilter = wscheme.parse(FILTER).expect("wirefilter parses").compile();
    let mut wctx = wirefilter::ExecutionContext::new(&wscheme);
    wctx.set_field_value("http.host", HOST).expect("host");
    wctx.set_field_value("http.request.uri.path", PATH)
        .expect("path");
    wctx.set_field_value("ip.src", IP.parse::<IpAddr>().expect("ip"))
        .expect("ip");
    assert!(
        wfilter.execute(&wctx).expect("same scheme"),
        "wirefilter agrees"
    );

    let expr_re =
        Expression::parse(&scheme, FILTER_REGEX, ExprKind::Filter).expect("filter parses");
    let wfilter_re = wscheme
        .parse(FILTER_REGEX)
        .expect("wirefilter parses")
        .compile();
    assert!(expr_re.execute(&ctx));
    assert!(wfilter_re.execute(&wctx).expect("same scheme"));

    let rules: Vec<Expression> = thousand_rules()
        .iter()
        .map(|r| Expression::parse(&scheme, r, ExprKind::Filter).expect("rule parses"))
        .collect();
    let rctx = request_ctx(&scheme);

    let mut c = Criterion::default()
        .configure_from_args()
        .measurement_time(Duration::from_secs(3));
    c.bench_function("edgetrace/single_filter", |b| {
        b.iter(|| expr.execute(black_box(&ctx)))
    });
    c.bench_function("wirefilter-0.6.1/single_filter", |b| {
        b.iter(|| wfilter.execute(black_box(&wctx)).unwrap_or(false))
    });
    c.bench_function("edgetrace/regex_filter", |b| {
        b.iter(|| expr_re.execute(black_box(&ctx)))
    });
    c.bench_function("wirefilter-0.6.1/regex_filter", |b| {
        b.iter(|| wfilter_re.execute(black_box(&wctx)).unwrap_or(false))
    });
    c.bench_function("edgetrace/1000_rules_one_request", |b| {
        b.iter(|| rules.iter().filter(|r| r.execute(black_box(&rctx))).count())
    });
    c.final_summary();

    let dur = Duration::from_secs(2);
    let ours_rate = rate(dur, || expr.execute(black_box(&ctx)));
    let wf_rate = rate(dur, || wfilter.execute(black_box(&wctx)).unwrap_or(false));
    let ours_re = rate(dur, || expr_re.execute(black_box(&ctx)));
    let wf_re = rate(dur, || {
        wfilter_re.execute(black_box(&wctx)).unwrap_or(false)
    });
    let start = Instant::now();
    let mut rounds = 0u32;
    let mut matched = 0;
    while start.elapsed() < dur {
        matched = rules.iter().filter(|r| r.execute(black_box(&rctx))).count();
        rounds += 1;
    }
    let per_zone = start.elapsed() / rounds;
    println!();
    println!("filter: {FILTER}");
    println!(
        "edgetrace:          {:>6.1} M exec/s ({:.1} ns/exec)",
        ours_rate / 1e6,
        1e9 / ours_rate
    );
    println!(
        "wirefilter 0.6.1:   {:>6.1} M exec/s ({:.1} ns/exec)",
        wf_rate / 1e6,
        1e9 / wf_rate
    );
    println!(
        "ratio (edgetrace / wirefilter): {:.2}x",
        ours_rate / wf_rate
    );
    println!();
    println!("filter: {FILTER_REGEX}");
    println!(
        "edgetrace:          {:>6.1} M exec/s ({:.1} ns/exec)",
        ours_re / 1e6,
        1e9 / ours_re
    );
    println!(
        "wirefilter 0.6.1:   {:>6.1} M exec/s ({:.1} ns/exec)",
        wf_re / 1e6,
        1e9 / wf_re
    );
    println!("ratio (edgetrace / wirefilter): {:.2}x", ours_re / wf_re);
    println!();
    println!("1,000-rule zone, one request: {per_zone:?} ({matched} rules matched)");
}
