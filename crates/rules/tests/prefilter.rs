//! The prefilter rules out only rules that do not match: for every request, every filter that
//! is true is among the candidates (tested over a corpus that has every guard shape, and
//! requests built from the corpus's own literals so that rules do match). And it does rule
//! out: a request that matches nothing leaves only the unguarded rules.

use edgetrace_rules::{ExecutionContext, ExprKind, Expression, Prefilter, Scheme};
use proptest::prelude::*;

/// Filters of every shape the prefilter knows: each has a guard.
const GUARDED: &[&str] = &[
    r#"http.request.uri.path eq "/admin""#,
    r#"http.request.uri.path eq "/admin" and http.request.method eq "POST""#,
    r#"http.request.method eq "POST" and http.request.uri.path contains "/login""#,
    r#"starts_with(http.request.uri.path, "/wp-")"#,
    r#"ends_with(http.request.uri.path, ".php")"#,
    r#"http.request.uri.path contains "etc/passwd""#,
    r#"http.request.uri.path in {"/a" "/b" "/admin"}"#,
    r#"http.request.uri.path matches "^/api/v[0-9]+/x""#,
    r#"http.request.uri.path matches "(?i)^/ADMIN""#,
    r#"http.request.uri.path matches "admin|login""#,
    r#"http.request.uri.path matches "^/x$""#,
    r#"lower(http.user_agent) contains "sqlmap""#,
    r#"upper(http.user_agent) contains "SQLMAP""#,
    r#"lower(http.host) eq "shop.test""#,
    r#"upper(http.host) eq "SHOP.TEST""#,
    r#"any(lower(http.request.headers["x-attack"][*])[*] contains "evil")"#,
    r#"any(upper(http.request.headers.names[*])[*] eq "X-ATTACK")"#,
    r#"http.host eq "shop.test" or http.request.uri.path eq "/admin""#,
    r#"any(http.request.headers["x-attack"][*] eq "1")"#,
    r#"any(http.request.headers["x-attack"][*] contains "evil")"#,
    r#"any(lower(http.request.headers.names[*])[*] eq "x-attack")"#,
    r#"any(http.request.headers.names[*] eq "X-Attack")"#,
    r#"http.request.headers["x-attack"][0] eq "1""#,
    r#"http.cookie contains "session=stolen""#,
    r#"http.request.uri.query contains "union+select""#,
    r#"http.request.uri.path.extension in {"php" "asp"} and not ip.src in {10.0.0.0/8}"#,
    r#"(http.request.uri.path eq "/admin" or http.request.uri.path eq "/login") and http.request.method eq "GET""#,
    r#"concat(http.request.uri.path, "x") eq "/adminx""#,
    r#"url_decode(http.request.uri.query) contains "' or 1=1""#,
    r#"http.request.uri.path eq "/admin" and (ip.src in {10.0.0.0/8} or http.host eq "a.test")"#,
    r#"http.host eq "shop.test" or ip.src in {10.0.0.0/8}"#,
    r#"ip.src in {10.0.0.0/8 192.0.2.1}"#,
    r#"ip.src in {2001:db8::/32 10.1.2.3}"#,
    r#"ip.src eq 203.0.113.9"#,
    r#"ip.src in {192.0.2.0/24 100.64.3.0/24} or http.request.uri.path contains "/etc/passwd""#,
    r#"ip.src in {10.0.0.0/8} and http.request.method eq "PUT""#,
];

/// Filters with no necessary literal or range, which it must leave alone (always candidates):
/// negations, wildcards, regexes without finite non-empty prefixes, empty literals, xor,
/// all(), lengths, `true`.
const UNGUARDED: &[&str] = &[
    r#"http.request.uri.path matches "a*""#,
    r#"http.request.uri.path matches ".*""#,
    r#"http.request.uri.path matches "[a-z]+""#,
    r#"http.request.uri.path wildcard "/ADM*""#,
    r#"http.request.uri.path strict wildcard "/adm*""#,
    r#"http.request.uri.path ne "/admin""#,
    r#"not http.request.uri.path eq "/admin""#,
    r#"http.request.uri.path eq "" "#,
    r#"http.request.uri.path contains """#,
    r#"http.host eq "shop.test" or not ip.src in {10.0.0.0/8}"#,
    r#"http.host eq "shop.test" xor http.request.uri.path eq "/admin""#,
    r#"ip.src ne 192.0.2.1"#,
    r#"all(http.request.headers["x-attack"][*] eq "1")"#,
    r#"all(http.request.headers.values[*] ne "1")"#,
    r#"len(http.request.headers["x-attack"]) gt 0"#,
    r#"true"#,
];

/// Both, guarded first.
fn corpus() -> Vec<&'static str> {
    GUARDED.iter().chain(UNGUARDED).copied().collect()
}

const PATHS: &[&str] = &[
    "/",
    "/admin",
    "/ADMIN",
    "/a",
    "/b",
    "/login",
    "/api/v2/x",
    "/api/vx/x",
    "/wp-admin/x.php",
    "/etc/passwd",
    "/adminx",
    "/x.asp",
    "/products/42",
];
const HOSTS: &[&str] = &["shop.test", "SHOP.test", "a.test", "evil.test"];
const METHODS: &[&str] = &["GET", "POST", "PUT"];
const AGENTS: &[&str] = &["curl/8", "SQLMap/1.0", "Mozilla/5.0", ""];
const QUERIES: &[&str] = &["", "q=1", "x=union+select+1", "a=%27%20or%201%3D1"];
const HEADER_NAMES: &[&str] = &["X-Attack", "x-attack", "Cookie", "X-Other", "Accept"];
const HEADER_VALUES: &[&str] = &["1", "0", "evil", "EviL", "session=stolen", "session=ok", ""];
const IPS: &[&str] = &[
    "10.1.2.3",
    "192.0.2.1",
    "203.0.113.9",
    "2001:db8::1",
    "100.64.3.7",
    "198.51.100.1",
    "::ffff:10.1.2.3",
];

fn filters(scheme: &Scheme) -> Vec<Expression> {
    corpus()
        .into_iter()
        .map(|t| {
            Expression::parse(scheme, t, ExprKind::Filter).unwrap_or_else(|e| panic!("{t}: {e}"))
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn context<'s>(
    scheme: &'s Scheme,
    method: &'s str,
    host: &'s str,
    path: &str,
    query: &str,
    agent: &'s str,
    headers: &[(&'s str, &'s str)],
    ip: &str,
) -> ExecutionContext<'s, 's> {
    let uri = if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    };
    let mut all = vec![("Host", host), ("User-Agent", agent)];
    all.extend_from_slice(headers);
    let mut ctx = ExecutionContext::new(scheme);
    let uri = std::borrow::Cow::<str>::Owned(uri);
    ctx.set_request(method, false, host, uri, "HTTP/1.1", &all)
        .unwrap();
    ctx.set("ip.src", ip.parse::<std::net::IpAddr>().unwrap())
        .unwrap();
    ctx
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn every_matching_rule_is_a_candidate(
        method in prop::sample::select(METHODS),
        host in prop::sample::select(HOSTS),
        path in prop::sample::select(PATHS),
        query in prop::sample::select(QUERIES),
        agent in prop::sample::select(AGENTS),
        headers in prop::collection::vec(
            (prop::sample::select(HEADER_NAMES), prop::sample::select(HEADER_VALUES)), 0..4),
        ip in prop::sample::select(IPS),
    ) {
        let scheme = Scheme::cloudflare();
        let filters = filters(&scheme);
        let prefilter = Prefilter::new(filters.iter().map(Some));
        let ctx = context(&scheme, method, host, path, query, agent, &headers, ip);
        let candidates = prefilter.candidates(&ctx);
        for (i, f) in filters.iter().enumerate() {
            if f.execute(&ctx) {
                prop_assert!(candidates.may_match(i), "{} matches but was ruled out", corpus()[i]);
            }
        }
    }
}

#[test]
fn a_request_that_matches_nothing_leaves_only_the_unguarded_rules() {
    let scheme = Scheme::cloudflare();
    let filters = filters(&scheme);
    let prefilter = Prefilter::new(filters.iter().map(Some));
    let ctx = context(
        &scheme,
        "PUT",
        "evil.test",
        "/products/42",
        "q=1",
        "curl/8",
        &[],
        "198.51.100.1",
    );
    let candidates = prefilter.candidates(&ctx);
    let corpus = corpus();
    let kept: Vec<&str> = (0..corpus.len())
        .filter(|&i| candidates.may_match(i))
        .map(|i| corpus[i])
        .collect();
    assert_eq!(kept, UNGUARDED);
    assert_eq!(prefilter.guarded(), GUARDED.len());
    // None of the ruled-out rules matches (the property test's claim, for this request).
    for (i, f) in filters.iter().enumerate() {
        assert!(!f.execute(&ctx) || candidates.may_match(i), "{}", corpus[i]);
    }
}

#[test]
fn rules_sharing_a_key_are_told_apart_by_needle() {
    let scheme = Scheme::cloudflare();
    let texts: Vec<String> = (0..300)
        .map(|i| format!("http.request.uri.path eq \"/admin/secret-{i}\""))
        .collect();
    let filters: Vec<Expression> = texts
        .iter()
        .map(|t| Expression::parse(&scheme, t, ExprKind::Filter).unwrap())
        .collect();
    let prefilter = Prefilter::new(filters.iter().map(Some));
    assert_eq!(prefilter.guarded(), 300);
    let ctx = context(
        &scheme,
        "GET",
        "a.test",
        "/admin/secret-42",
        "",
        "",
        &[],
        "192.0.2.1",
    );
    let candidates = prefilter.candidates(&ctx);
    let kept: Vec<usize> = (0..300).filter(|&i| candidates.may_match(i)).collect();
    // "/admin/secret-4" and "/admin/secret-42" occur in the path; only the second matches.
    assert_eq!(kept, [4, 42]);
    // Walking the candidates (as the pipeline does) visits the same ones, then runs out:
    // past the last word of 64 rules, every index is a candidate again (out of range).
    let mut walked = Vec::new();
    let mut i = candidates.next_from(0);
    while i < 300 {
        walked.push(i);
        i = candidates.next_from(i + 1);
    }
    assert_eq!(walked, kept);
    assert_eq!(candidates.next_from(43), 320);
    assert_eq!(candidates.next_from(1000), 1000);
    assert!(filters[42].execute(&ctx) && !filters[4].execute(&ctx));
}

/// The prefilter is used where it saves work: many guarded rules over few keys (a zone's
/// custom rules), not a ruleset of a rule or two, whose keys cost what their filters do.
#[test]
fn the_prefilter_pays_only_with_more_rules_than_keys() {
    let scheme = Scheme::cloudflare();
    let prefilter_of = |texts: &[&str]| {
        let filters: Vec<Expression> = texts
            .iter()
            .map(|t| Expression::parse(&scheme, t, ExprKind::Filter).unwrap())
            .collect();
        Prefilter::new(filters.iter().map(Some))
    };
    let two_keys = prefilter_of(&[
        r#"starts_with(http.request.uri.path, "/products/")"#,
        r#"http.request.method in {"GET" "HEAD"}"#,
    ]);
    assert_eq!(two_keys.guarded(), 2);
    assert!(!two_keys.pays());
    assert!(
        !prefilter_of(&["true", "ip.src in {10.0.0.0/8}"]).pays(),
        "no key at all"
    );
    // The bench's kind of zone (bench/edge-common.sh): 14 kinds of rule, numbered.
    let texts: Vec<String> = (1..=95)
        .map(|i| match i % 5 {
            0 => format!(r#"http.request.uri.path eq "/admin/secret-{i}""#),
            1 => format!(r#"starts_with(http.request.uri.path, "/wp-admin/{i}/")"#),
            2 => format!(r#"lower(http.user_agent) contains "sqlmap/{i}""#),
            3 => format!(r#"http.cookie contains "session=stolen-{i}""#),
            _ => format!(r#"any(http.request.headers["x-attack-{i}"][*] eq "1")"#),
        })
        .collect();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let zone = prefilter_of(&texts);
    assert!(zone.pays(), "{zone:?}");
}
