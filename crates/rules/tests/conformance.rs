//! Conformance suite: Cloudflare's documented examples for every operator,
//! function and field type, with their expected result (true, false, a
//! value, or an error).

mod common;

use std::net::IpAddr;

use edgetrace_rules::{
    ErrorKind, ExecutionContext, ExprKind, Expression, MemoryLists, Phase, Scheme, Target, Value,
};

fn scheme() -> Scheme {
    Scheme::cloudflare()
}

/// The request most examples run against.
fn request(scheme: &Scheme) -> ExecutionContext<'_, '_> {
    let mut ctx = ExecutionContext::new(scheme);
    ctx.set_request(
        "GET",
        true,
        "www.example.com",
        "/articles/2008/welcome.html?order=asc&country=GB&id=42",
        "HTTP/1.1",
        &[
            ("Host", "www.example.com"),
            ("User-Agent", "Mozilla/5.0 (compatible; Googlebot/2.1)"),
            ("Accept", "*/*"),
            ("Content-Type", "application/json"),
            ("client_id", "MTIzYWJj"),
            ("X-Categories", "groceries,electronics,diy,auto"),
            ("X-Empty-Parts", "groceries,,electronics"),
            ("Cookie", "session=abc123; theme=dark"),
            ("Referer", "https://search.example.net/?q=x"),
        ],
    )
    .unwrap();
    ctx.set("ip.src", "113.10.0.2".parse::<IpAddr>().unwrap())
        .unwrap();
    ctx.set("ip.src.country", "DE").unwrap();
    ctx.set("ip.src.continent", "EU").unwrap();
    ctx.set("ip.src.asnum", 13335).unwrap();
    ctx.set("ip.src.city", "Berlin").unwrap();
    ctx.set("ip.src.is_in_european_union", true).unwrap();
    ctx.set("ip.src.lat", "52.52").unwrap();
    ctx.set("ip.src.timezone.name", "Europe/Berlin").unwrap();
    ctx.set("cf.threat_score", 15).unwrap();
    ctx.set("cf.bot_management.score", 5).unwrap();
    ctx.set("cf.bot_management.verified_bot", false).unwrap();
    ctx.set("cf.client.bot", true).unwrap();
    ctx.set("cf.edge.server_port", 8005).unwrap();
    ctx.set("http.request.body.raw", "asdfghjk").unwrap();
    ctx.set("cf.random_seed", vec![0x42u8; 32]).unwrap();
    ctx.set_args(
        "http.request.body.form",
        [("comment", "an%20xss%20attack"), ("name", "bob")],
    )
    .unwrap();
    ctx
}

#[track_caller]
fn filter(ctx: &ExecutionContext<'_, '_>, text: &str, expected: bool) {
    filter_in(ctx, Target::FILTER, text, expected);
}

#[track_caller]
fn filter_in(ctx: &ExecutionContext<'_, '_>, target: Target, text: &str, expected: bool) {
    let expr = Expression::parse(ctx.scheme(), text, target)
        .unwrap_or_else(|e| panic!("{text} should parse:\n{e}"));
    assert_eq!(expr.execute(ctx), expected, "{text}\n{}", expr.explain(ctx));
    // Explained evaluation agrees with the fast path.
    assert_eq!(
        expr.explain(ctx).matched,
        expected,
        "explain disagrees on {text}"
    );
    // The canonical text means the same thing.
    let canonical = Expression::parse(ctx.scheme(), &expr.to_string(), target).unwrap();
    assert_eq!(
        canonical.execute(ctx),
        expected,
        "canonical form {canonical} of {text}"
    );
}

#[track_caller]
fn value_in(ctx: &ExecutionContext<'_, '_>, target: Target, text: &str, expected: Option<&str>) {
    let expr = Expression::parse(ctx.scheme(), text, target)
        .unwrap_or_else(|e| panic!("{text} should parse:\n{e}"));
    assert_eq!(expr.evaluate(ctx).as_deref(), expected, "{text}");
}

#[track_caller]
fn value(ctx: &ExecutionContext<'_, '_>, text: &str, expected: &str) {
    value_in(
        ctx,
        Target::value_in(Phase::HttpRequestTransform),
        text,
        Some(expected),
    );
}

#[track_caller]
fn error(scheme: &Scheme, target: Target, text: &str, kind: ErrorKind, message: &str) {
    match Expression::parse(scheme, text, target) {
        Ok(e) => panic!("{text} should be rejected, parsed as {e}"),
        Err(e) => {
            assert_eq!(e.kind(), kind, "{text}: {e}");
            assert!(
                e.message().contains(message),
                "{text}: expected {message:?} in:\n{e}"
            );
            assert!(e.span().end <= text.len());
        }
    }
}

#[test]
fn comparison_operators_both_spellings() {
    let s = scheme();
    let mut c = request(&s);
    c.set("http.request.uri.path", "/articles/2008/").unwrap();
    for (text, want) in [
        (r#"http.request.uri.path eq "/articles/2008/""#, true),
        (r#"http.request.uri.path == "/articles/2008/""#, true),
        (r#"http.request.uri.path ne "/articles/2008/""#, false),
        (r#"http.request.uri.path != "/articles/2007/""#, true),
        ("ip.src ne 203.0.113.0", true),
        ("ip.src != 113.10.0.2", false),
        ("ip.src eq 113.10.0.2", true),
        ("cf.threat_score lt 10", false),
        ("cf.threat_score < 20", true),
        ("cf.threat_score le 15", true),
        ("cf.threat_score <= 14", false),
        ("cf.threat_score gt 10", true),
        ("cf.threat_score > 15", false),
        ("cf.threat_score ge 15", true),
        ("cf.threat_score >= 16", false),
        (r#"http.request.uri.path contains "/articles/""#, true),
        (r#"http.request.uri.path contains "/blog/""#, false),
        (
            r#"http.request.uri.path matches "^/articles/200[7-8]/$""#,
            true,
        ),
        (r#"http.request.uri.path ~ "^/articles/199[0-9]/$""#, false),
        (r#"http.request.uri.path lt "/b""#, true),
        (r#"http.request.uri.path ge "/b""#, false),
        ("ssl", true),
        ("not ssl", false),
        ("ssl eq true", true),
        ("cf.bot_management.verified_bot == false", true),
        ("cf.client.bot ne true", false),
    ] {
        filter(&c, text, want);
    }
}

#[test]
fn wildcard_operators() {
    let s = scheme();
    let mut c = request(&s);
    c.set(
        "http.request.full_uri",
        "https://sub.example.com/foo/page.html",
    )
    .unwrap();
    c.set("http.request.uri.path", "/AdminTeam/settings")
        .unwrap();
    for (text, want) in [
        (
            r#"http.request.full_uri wildcard "https://*.example.com/*/page.html""#,
            true,
        ),
        (
            r#"http.request.full_uri wildcard "HTTPS://SUB.EXAMPLE.COM/*""#,
            true,
        ),
        (
            r#"http.request.full_uri wildcard "https://example.com/*""#,
            false,
        ),
        (r#"http.request.full_uri wildcard "*.html""#, true),
        (r#"http.request.full_uri wildcard "*.htm""#, false),
        (
            r#"http.request.uri.path strict wildcard "/AdminTeam/*""#,
            true,
        ),
        (
            r#"http.request.uri.path strict wildcard "/adminteam/*""#,
            false,
        ),
        (r#"http.request.uri.path wildcard "/adminteam/*""#, true),
        (
            r#"http.request.uri.path wildcard "/AdminTeam/settings""#,
            true,
        ),
        (r#"http.request.uri.path wildcard r"/Admin\*""#, false),
    ] {
        filter(&c, text, want);
    }
    c.set("http.request.uri.path", "/a*b").unwrap();
    filter(
        &c,
        r#"http.request.uri.path strict wildcard r"/a\*b""#,
        true,
    );
    filter(
        &c,
        r#"http.request.uri.path strict wildcard r"/a\*""#,
        false,
    );
    error(
        &s,
        Target::FILTER,
        r#"http.host wildcard "a**b""#,
        ErrorKind::Pattern,
        "(**)",
    );
}

#[test]
fn logical_operators_and_precedence() {
    let s = scheme();
    let c = request(&s);
    for (text, want) in [
        (r#"ssl and http.host eq "www.example.com""#, true),
        (r#"ssl && http.host eq "other""#, false),
        (r#"not ssl or http.host eq "www.example.com""#, true),
        ("not ssl || cf.threat_score gt 50", false),
        ("ssl xor cf.client.bot", false),
        ("ssl ^^ cf.bot_management.verified_bot", true),
        ("!ssl", false),
        ("! (ssl and cf.client.bot)", false),
        // and binds tighter than xor, which binds tighter than or.
        ("true or true and false", true),
        ("(true or true) and false", false),
        ("true xor true and false", true),
        ("false and false or true", true),
        ("true or false xor true", true),
        ("not true or true", true),
        ("not (true or true)", false),
        ("true", true),
        ("false", false),
    ] {
        filter(&c, text, want);
    }
}

#[test]
fn in_sets_ips_cidrs_ranges() {
    let s = scheme();
    let c = request(&s);
    for (text, want) in [
        ("ip.src in { 203.0.113.0 203.0.113.1 }", false),
        ("ip.src in {113.10.0.0/24}", true),
        ("ip.src in {113.10.0.0/16 2001:db8::/32}", true),
        ("ip.src in {10.0.0.0/8 192.168.0.0/16}", false),
        ("ip.src in {113.10.0.1..113.10.0.9}", true),
        ("not ip.src in {10.0.0.0/8}", true),
        ("cf.edge.server_port in {80 443 8000..8009}", true),
        ("cf.edge.server_port in {80 443 8080..8090}", false),
        ("ip.src.asnum in {13335 209242}", true),
        (r#"ip.src.country in {"US" "CA"}"#, false),
        (
            r#"ip.src.country in {"DE" "FR" "IT" "ES" "NL" "BE" "AT" "PL" "SE" "DK"}"#,
            true,
        ),
        (r#"http.request.method in {"GET" "HEAD"}"#, true),
        (
            r#"ip.src.continent eq "EU" and ip.src.is_in_european_union"#,
            true,
        ),
    ] {
        filter(&c, text, want);
    }
    let mut v6 = ExecutionContext::new(&s);
    v6.set("ip.src", "2001:db8::1".parse::<IpAddr>().unwrap())
        .unwrap();
    filter(&v6, "ip.src in {2001:db8::/32}", true);
    filter(&v6, "ip.src in {113.10.0.0/16}", false);
    filter(&v6, "ip.src eq 2001:db8::1", true);
    filter(&v6, "ip.src in {2001:db8::0..2001:db8::ff}", true);
}

#[test]
fn arrays_maps_and_each() {
    let s = scheme();
    let c = request(&s);
    for (text, want) in [
        (r#"http.request.headers["accept"][0] eq "*/*""#, true),
        (r#"http.request.headers["accept"][1] eq "*/*""#, false),
        (r#"http.request.headers["x-missing"][0] eq "x""#, false),
        (
            r#"any(http.request.headers.names[*] == "Content-Type")"#,
            true,
        ),
        (
            r#"any(lower(http.request.headers.names[*])[*] == "content-type")"#,
            true,
        ),
        (
            r#"all(http.request.headers["content-type"][*] == "application/json")"#,
            true,
        ),
        (r#"all(http.request.headers.values[*] contains "a")"#, false),
        (r#"http.request.uri.args["id"][0] eq "42""#, true),
        (r#"any(http.request.uri.args.names[*] eq "order")"#, true),
        (r#"http.request.uri.args.values[0] eq "asc""#, true),
        (r#"http.request.cookies["session"][0] eq "abc123""#, true),
        (r#"any(http.request.cookies[*][0] eq "dark")"#, true),
        (r#"any(http.request.cookies[*][0] eq "light")"#, false),
        ("len(http.request.headers.names) gt 5", true),
        (
            r#"any(len(http.request.headers["accept"][*])[*] eq 3)"#,
            true,
        ),
        (r#"http.cookie contains "theme=dark""#, true),
        (r#"http.user_agent contains "Googlebot""#, true),
        (r#"http.referer contains "search.example.net""#, true),
        (r#"http.request.uri.path.extension eq "html""#, true),
        (
            r#"http.request.uri.query eq "order=asc&country=GB&id=42""#,
            true,
        ),
        (
            r#"http.request.full_uri eq "https://www.example.com/articles/2008/welcome.html?order=asc&country=GB&id=42""#,
            true,
        ),
        (r#"http.request.version eq "HTTP/1.1""#, true),
        (
            r#"raw.http.request.uri.path eq "/articles/2008/welcome.html""#,
            true,
        ),
        (r#"http.request.body.raw eq "asdfghjk""#, true),
    ] {
        filter(&c, text, want);
    }
}

#[test]
fn raw_strings() {
    let s = scheme();
    let mut c = request(&s);
    c.set("http.request.uri.path", r#"/api/42/"quoted"\x"#)
        .unwrap();
    filter(&c, r#"http.request.uri.path matches r"^/api/\d+/""#, true);
    filter(
        &c,
        r##"http.request.uri.path contains r#""quoted""#"##,
        true,
    );
    filter(
        &c,
        r#"http.request.uri.path contains "\"quoted\"\\x""#,
        true,
    );
    filter(&c, r#"http.request.uri.path matches "^/api/\\d+/""#, true);
    error(
        &s,
        Target::FILTER,
        r#"http.host matches "\d""#,
        ErrorKind::Syntax,
        "invalid escape",
    );
}

#[test]
fn missing_values() {
    let s = scheme();
    let c = ExecutionContext::new(&s);
    for (text, want) in [
        (r#"http.referer eq "x""#, false),
        (r#"http.referer ne "x""#, false),
        (r#"not http.referer eq "x""#, true),
        ("cf.threat_score lt 10", false),
        ("cf.threat_score ge 10", false),
        ("ip.src in {0.0.0.0/0 ::/0}", false),
        ("ssl", false),
        ("not ssl", true),
        (r#"len(http.host) eq 0"#, false),
        (r#"lower(http.host) eq """#, false),
        (r#"any(http.request.headers.names[*] eq "a")"#, false),
        (r#"all(http.request.headers.names[*] eq "a")"#, false),
        (r#"http.request.headers["a"][0] eq "a""#, false),
    ] {
        filter(&c, text, want);
    }
    value_in(&c, Target::VALUE, r#"concat("/", http.host)"#, None);
}

#[test]
fn named_lists() {
    let s = scheme();
    let mut lists = MemoryLists::new();
    lists.add_ip_list("office", [("113.10.0.0".parse().unwrap(), 16)]);
    lists.add_hostname_list("partners", ["*.example.com", "example.org"]);
    lists.add_asn_list("cloud", [13335, 16509]);
    let c = request(&s).with_lists(&lists);
    for (text, want) in [
        ("ip.src in $office", true),
        ("not ip.src in $office", false),
        ("http.host in $partners", true),
        ("ip.src.asnum in $cloud", true),
        ("ip.src.asnum in $nonexistent", false),
    ] {
        filter(&c, text, want);
    }
    // Without lists in the context, `in $name` is false.
    filter(&request(&s), "ip.src in $office", false);
    // Checked against a catalog.
    let ok = Expression::parse_with_lists(&s, "ip.src in $office", ExprKind::Filter, &lists);
    assert!(ok.is_ok());
    let e =
        Expression::parse_with_lists(&s, "ip.src in $nope", ExprKind::Filter, &lists).unwrap_err();
    assert_eq!(e.message(), "unknown list $nope");
    let e = Expression::parse_with_lists(&s, "ip.src in $partners", ExprKind::Filter, &lists)
        .unwrap_err();
    assert_eq!(
        e.message(),
        "$partners is a hostname list, but `ip.src` needs an IP list"
    );
}

#[test]
fn string_functions() {
    let s = scheme();
    let mut c = request(&s);
    c.set("http.host", "WWW.cloudflare.com").unwrap();
    for (text, want) in [
        (r#"lower(http.host) == "www.cloudflare.com""#, true),
        (r#"upper(http.host) == "WWW.CLOUDFLARE.COM""#, true),
        ("len(http.host) eq 18", true),
        (
            r#"concat("String1", " ", "String", "2") == "String1 String2""#,
            true,
        ),
        (r#"concat(http.host, "/x") eq "WWW.cloudflare.com/x""#, true),
        (r#"ends_with(http.request.uri.path, ".html")"#, true),
        (r#"starts_with(http.request.uri.path, "/blog")"#, false),
        (r#"starts_with(http.request.uri.path, "/articles")"#, true),
        (
            r#"remove_bytes(http.host, "\x2e\x77") eq "WWWcloudflarecom""#,
            true,
        ),
        (r#"substring(http.request.body.raw, 2, 5) eq "dfg""#, true),
        (r#"substring(http.request.body.raw, 2) eq "dfghjk""#, true),
        (r#"substring(http.request.body.raw, -2) eq "jk""#, true),
        (
            r#"substring(http.request.body.raw, 0, -2) eq "asdfgh""#,
            true,
        ),
        (
            r#"url_decode(http.request.uri.path) eq "/articles/2008/welcome.html""#,
            true,
        ),
        (r#"url_decode("John%20Doe") eq "John Doe""#, true),
        (r#"url_decode("John+Doe") eq "John Doe""#, true),
        (r#"url_decode("%2520") eq "%20""#, true),
        (r#"url_decode("%2520", "r") eq " ""#, true),
        (r#"url_decode("%u2601", "u") eq "☁""#, true),
        (
            r#"any(url_decode(http.request.body.form.values[*])[*] contains "an xss attack")"#,
            true,
        ),
        (
            r#"any(decode_base64(http.request.headers["client_id"][*])[*] eq "123abc")"#,
            true,
        ),
    ] {
        filter(&c, text, want);
    }
}

#[test]
fn json_functions() {
    let s = scheme();
    let mut c = ExecutionContext::new(&s);
    let cases: &[(&str, &str, bool)] = &[
        (
            r#"{ "record_id": "aed53a", "version": 2 }"#,
            r#"lookup_json_integer(http.request.body.raw, "version") eq 2"#,
            true,
        ),
        (
            r#"{ "product": { "id": 356 } }"#,
            r#"lookup_json_integer(http.request.body.raw, "product", "id") eq 356"#,
            true,
        ),
        (
            r#"["first_item", -234]"#,
            "lookup_json_integer(http.request.body.raw, 1) eq -234",
            true,
        ),
        (
            r#"{ "network_ids": [123, 456] }"#,
            r#"lookup_json_integer(http.request.body.raw, "network_ids", 0) eq 123"#,
            true,
        ),
        (
            r#"[{ "product_id": 123 }, { "product_id": 456 }]"#,
            r#"lookup_json_integer(http.request.body.raw, 1, "product_id") eq 456"#,
            true,
        ),
        (
            r#"{ "version": 42.0 }"#,
            r#"lookup_json_integer(http.request.body.raw, "version") eq 42"#,
            false,
        ),
        (
            r#"{ "company": "cloudflare", "product": "rulesets" }"#,
            r#"lookup_json_string(http.request.body.raw, "company") == "cloudflare""#,
            true,
        ),
        (
            r#"{ "network": { "name": "cloudflare" } }"#,
            r#"lookup_json_string(http.request.body.raw, "network", "name") == "cloudflare""#,
            true,
        ),
        (
            r#"["other_company", "cloudflare"]"#,
            r#"lookup_json_string(http.request.body.raw, 1) == "cloudflare""#,
            true,
        ),
        (
            r#"{ "networks": ["other_company", "cloudflare"] }"#,
            r#"lookup_json_string(http.request.body.raw, "networks", 1) == "cloudflare""#,
            true,
        ),
        (
            r#"[{ "network": "other_company" }, { "network": "cloudflare" }]"#,
            r#"lookup_json_string(http.request.body.raw, 1, "network") == "cloudflare""#,
            true,
        ),
        (
            "not json",
            r#"lookup_json_string(http.request.body.raw, "a") == "b""#,
            false,
        ),
    ];
    for (body, text, want) in cases {
        c.set("http.request.body.raw", *body).unwrap();
        filter(&c, text, *want);
    }
}

#[test]
fn rewrite_value_functions() {
    let s = scheme();
    let c = request(&s);
    value(
        &c,
        r#"regex_replace("/foo/bar", "/bar$", "/baz")"#,
        "/foo/baz",
    );
    value(&c, r#"regex_replace("/x", "^/y$", "/mumble")"#, "/x");
    value(&c, r#"regex_replace("/foo", "^/FOO$", "/x")"#, "/foo");
    value(&c, r#"regex_replace("/a/a", "/a", "/b")"#, "/b/a");
    value(&c, r#"regex_replace("/b", "^/b$", "/b$$")"#, "/b$");
    value(
        &c,
        r#"regex_replace("/foo/a/path", "^/foo/([^/]*)/(.*)$", "/bar/${2}/${1}")"#,
        "/bar/path/a",
    );
    value(
        &c,
        r#"regex_replace(http.request.uri.path, "^/articles/(\\d+)/(.*)$", "/blog/${1}/${2}")"#,
        "/blog/2008/welcome.html",
    );
    value(
        &c,
        r#"remove_query_args(http.request.uri.query, "country")"#,
        "order=asc&id=42",
    );
    value(
        &c,
        r#"remove_query_args(http.request.uri.query, "order", "id")"#,
        "country=GB",
    );
    value(
        &c,
        r#"remove_query_args(http.request.uri.query, "search")"#,
        "order=asc&country=GB&id=42",
    );
    value(&c, "to_string(cf.bot_management.score)", "5");
    value(&c, "to_string(ssl)", "true");
    value(&c, "to_string(ip.src)", "113.10.0.2");
    value(
        &c,
        r#"concat("/new", http.request.uri.path)"#,
        "/new/articles/2008/welcome.html",
    );
    value(&c, "http.host", "www.example.com");
    value(&c, r#"encode_base64("hello")"#, "aGVsbG8");
    value(&c, r#"encode_base64("hello", "p")"#, "aGVsbG8=");
    value(
        &c,
        r#"encode_base64(sha256("abc"), "p")"#,
        "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=",
    );
    value(&c, r#"encode_base64("\xfb\xff", "u")"#, "-_8");
    let uuid = Expression::parse(
        &s,
        "uuidv4(cf.random_seed)",
        Target::value_in(Phase::HttpRequestTransform),
    )
    .unwrap()
    .evaluate(&c)
    .unwrap();
    assert_eq!(uuid.len(), 36);
    assert_eq!(&uuid[14..15], "4", "{uuid} is a version 4 UUID");

    // wildcard_replace: URL rewrites and dynamic redirects.
    let redirect = Target::value_in(Phase::HttpRequestDynamicRedirect);
    let mut w = ExecutionContext::new(&s);
    w.set(
        "http.request.full_uri",
        "https://apps.example.com/calendar/admin?expand=true",
    )
    .unwrap();
    value_in(
        &w,
        redirect,
        r#"wildcard_replace(http.request.full_uri, "https://*.example.com/*/*", "https://example.com/${1}/${2}/${3}")"#,
        Some("https://example.com/apps/calendar/admin?expand=true"),
    );
    w.set(
        "http.request.full_uri",
        "https://example.com/applications/app1",
    )
    .unwrap();
    value_in(
        &w,
        redirect,
        r#"wildcard_replace(http.request.full_uri, "/applications/*", "/apps/${1}")"#,
        Some("https://example.com/applications/app1"),
    );
    for (path, text, want) in [
        (
            "/calendar",
            r#"wildcard_replace(http.request.uri.path, "/*", "/apps/${1}")"#,
            "/apps/calendar",
        ),
        (
            "/Apps/calendar",
            r#"wildcard_replace(http.request.uri.path, "/apps/*", "/${1}")"#,
            "/calendar",
        ),
        (
            "/Apps/calendar",
            r#"wildcard_replace(http.request.uri.path, "/apps/*", "/${1}", "s")"#,
            "/Apps/calendar",
        ),
        (
            "/apps/calendar/login",
            r#"wildcard_replace(http.request.uri.path, "/apps/*/login", "/${1}/login")"#,
            "/calendar/login",
        ),
    ] {
        w.set("http.request.uri.path", path).unwrap();
        value_in(&w, redirect, text, Some(want));
    }
}

#[test]
fn phase_specific_functions() {
    let s = scheme();
    let c = request(&s);
    let waf = Target::filter_in(Phase::HttpRequestFirewallCustom);
    filter_in(&c, waf, "cidr(ip.src, 24, 24) eq 113.10.0.0", true);
    filter_in(&c, waf, "cidr(ip.src, 8, 24) in {113.0.0.0/8}", true);
    filter_in(&c, waf, "cidr6(ip.src, 24) eq 113.10.0.2", true);
    let mut v6 = ExecutionContext::new(&s);
    v6.set(
        "ip.src",
        "2001:0000:130F:0000:0000:09C0:876A:130B"
            .parse::<IpAddr>()
            .unwrap(),
    )
    .unwrap();
    filter_in(&v6, waf, "cidr(ip.src, 24, 24) eq 2001::", true);
    filter_in(&v6, waf, "cidr6(ip.src, 24) eq 2001::", true);
    filter_in(
        &c,
        waf,
        r#"join(http.request.headers["accept"], ",") eq "*/*""#,
        true,
    );

    let resp = Target::filter_in(Phase::HttpResponseHeadersTransform);
    let mut r = request(&s);
    r.set("http.response.code", 404).unwrap();
    r.set_headers(
        "http.response.headers",
        [("Content-Type", "text/html"), ("X-A", "1")],
    )
    .unwrap();
    r.set("http.response.content_type.media_type", "text/html")
        .unwrap();
    filter_in(
        &r,
        resp,
        r#"split(http.request.headers["x-categories"][0], ",", 64)[3] eq "auto""#,
        true,
    );
    filter_in(
        &r,
        resp,
        r#"split(http.request.headers["x-categories"][0], ",", 3)[2] eq "diy,auto""#,
        true,
    );
    filter_in(
        &r,
        resp,
        r#"split(http.request.headers["x-empty-parts"][0], ",", 64)[1] eq """#,
        true,
    );
    filter_in(
        &r,
        resp,
        r#"len(split(http.request.headers["x-categories"][0], ",", 64)) eq 4"#,
        true,
    );
    filter_in(&r, resp, "http.response.code eq 404", true);
    filter_in(
        &r,
        resp,
        r#"http.response.headers["content-type"][0] eq "text/html""#,
        true,
    );
    filter_in(
        &r,
        resp,
        r#"any(http.response.headers.names[*] eq "X-A")"#,
        true,
    );
    filter_in(
        &r,
        resp,
        r#"http.response.content_type.media_type eq "text/html""#,
        true,
    );
    value_in(
        &r,
        Target::value_in(Phase::HttpResponseHeadersTransform),
        r#"join(http.request.headers.names, ",")"#,
        Some(
            "Host,User-Agent,Accept,Content-Type,client_id,X-Categories,X-Empty-Parts,Cookie,Referer",
        ),
    );
}

#[test]
fn availability_errors() {
    let s = scheme();
    error(
        &s,
        Target::FILTER,
        r#"regex_replace(http.host, "a", "b") eq "c""#,
        ErrorKind::Availability,
        "regex_replace() cannot be used in a filter expression: it is only available in rewrite expressions of Transform Rules and target URL expressions of dynamic URL redirects",
    );
    error(
        &s,
        Target::FILTER,
        r#"to_string(cf.threat_score) eq "1""#,
        ErrorKind::Availability,
        "cannot be used in a filter expression",
    );
    error(
        &s,
        Target::FILTER,
        r#"wildcard_replace(http.host, "*", "x") eq "x""#,
        ErrorKind::Availability,
        "cannot be used in a filter expression",
    );
    error(
        &s,
        Target::FILTER,
        r#"remove_query_args(http.request.uri.query, "a") eq "x""#,
        ErrorKind::Availability,
        "cannot be used in a filter expression",
    );
    error(
        &s,
        Target::FILTER,
        r#"uuidv4(cf.random_seed) eq "x""#,
        ErrorKind::Availability,
        "cannot be used in a filter expression",
    );
    error(
        &s,
        Target::filter_in(Phase::HttpRequestTransform),
        "cidr(ip.src, 24, 24) eq 1.2.3.0",
        ErrorKind::Availability,
        "cidr() is not available in phase http_request_transform: it is only available in custom rules and rate limiting rules",
    );
    error(
        &s,
        Target::filter_in(Phase::HttpRequestFirewallCustom),
        r#"split(http.host, ".", 2)[0] eq "a""#,
        ErrorKind::Availability,
        "split() is not available in phase http_request_firewall_custom",
    );
    error(
        &s,
        Target::value_in(Phase::HttpRequestDynamicRedirect),
        r#"remove_query_args(http.request.uri.query, "a")"#,
        ErrorKind::Availability,
        "only available in rewrite expressions of Transform Rules",
    );
    error(
        &s,
        Target::value_in(Phase::HttpRequestLateTransform),
        r#"wildcard_replace(http.host, "*", "x")"#,
        ErrorKind::Availability,
        "not available in phase http_request_late_transform",
    );
    error(
        &s,
        Target::filter_in(Phase::HttpRequestFirewallCustom),
        "http.response.code eq 404",
        ErrorKind::Availability,
        "field \"http.response.code\" is only available in response phases, not in phase http_request_firewall_custom",
    );
    // Without a phase, response fields are accepted.
    assert!(Expression::parse(&s, "http.response.code eq 404", ExprKind::Filter).is_ok());
}

#[test]
fn argument_rules() {
    let s = scheme();
    let t = Target::value_in(Phase::HttpRequestTransform);
    let f = Target::FILTER;
    error(
        &s,
        t,
        r#"concat("/a", concat("/b", http.host))"#,
        ErrorKind::Argument,
        "concat() can appear only once in a URL rewrite expression",
    );
    assert!(
        Expression::parse(
            &s,
            r#"concat("/a", concat("/b", http.host))"#,
            ExprKind::Value
        )
        .is_ok()
    );
    error(
        &s,
        f,
        r#"starts_with("foo", "f")"#,
        ErrorKind::Argument,
        "argument 1 of starts_with() must be a field",
    );
    error(
        &s,
        f,
        r#"decode_base64("MTIz") eq "123""#,
        ErrorKind::Argument,
        "must be a field",
    );
    error(
        &s,
        f,
        "lower(http.host, http.host) eq \"a\"",
        ErrorKind::Argument,
        "lower() takes 1 argument, found 2",
    );
    error(
        &s,
        f,
        "substring(http.host) eq \"a\"",
        ErrorKind::Argument,
        "substring() takes 2 to 3 arguments, found 1",
    );
    error(
        &s,
        f,
        "lower(cf.threat_score) eq \"a\"",
        ErrorKind::Type,
        "argument 1 of lower() must be a String, but `cf.threat_score` is Integer",
    );
    error(
        &s,
        f,
        "any(http.request.headers.names[*])",
        ErrorKind::Type,
        "any() takes an Array<Boolean>",
    );
    error(
        &s,
        f,
        r#"any(http.host eq "a")"#,
        ErrorKind::Type,
        "any() takes an Array<Boolean>",
    );
    error(
        &s,
        Target::filter_in(Phase::HttpResponseHeadersTransform),
        r#"split(http.host, "", 2)[0] eq "a""#,
        ErrorKind::Argument,
        "must not be empty",
    );
    error(
        &s,
        Target::filter_in(Phase::HttpResponseHeadersTransform),
        r#"split(http.host, ".", 0)[0] eq "a""#,
        ErrorKind::Argument,
        "from 1 to 128",
    );
    error(
        &s,
        Target::filter_in(Phase::HttpRequestFirewallCustom),
        "cidr(ip.src, 33, 24) eq 1.2.3.4",
        ErrorKind::Argument,
        "argument 2 of cidr() must be a literal integer from 1 to 32",
    );
    error(
        &s,
        Target::filter_in(Phase::HttpRequestFirewallCustom),
        "cidr(1.2.3.4, 24, 24) eq 1.2.3.0",
        ErrorKind::Argument,
        "must be a field",
    );
    error(
        &s,
        t,
        r#"remove_query_args(http.host, "a")"#,
        ErrorKind::Argument,
        "must be the field http.request.uri.query",
    );
    error(
        &s,
        t,
        r#"uuidv4(http.host)"#,
        ErrorKind::Argument,
        "cf.random_seed",
    );
    error(
        &s,
        t,
        r#"regex_replace(http.host, "(", "x")"#,
        ErrorKind::Pattern,
        "invalid regular expression",
    );
    error(
        &s,
        t,
        r#"regex_replace(http.host, "(a)", "${2}")"#,
        ErrorKind::Argument,
        "only 1 capture group",
    );
    error(
        &s,
        t,
        r#"concat(regex_replace(http.host, "a", "b"), regex_replace(http.host, "c", "d"))"#,
        ErrorKind::Argument,
        "can appear only once",
    );
    error(
        &s,
        t,
        r#"url_decode(http.host, "x")"#,
        ErrorKind::Argument,
        "only \"r\" and \"u\" are allowed",
    );
    error(
        &s,
        f,
        r#"lookup_json_string(http.request.body.raw, http.host) eq "a""#,
        ErrorKind::Type,
        "must be a literal string",
    );
    error(
        &s,
        f,
        r#"concat("a", 1) eq "a1""#,
        ErrorKind::Type,
        "argument 2 of concat()",
    );
    error(
        &s,
        f,
        "lowr(http.host) eq \"a\"",
        ErrorKind::UnknownFunction,
        "unknown function \"lowr\" — did you mean \"lower\"?",
    );
}

#[test]
fn type_errors() {
    let s = scheme();
    let f = Target::FILTER;
    error(
        &s,
        f,
        "ip.src lt 10.0.0.1",
        ErrorKind::Type,
        "\"lt\" is not defined for IP addresses",
    );
    error(
        &s,
        f,
        "ip.src contains \"1\"",
        ErrorKind::Type,
        "\"contains\" is not defined for IP addresses",
    );
    error(
        &s,
        f,
        "cf.threat_score matches \"1\"",
        ErrorKind::Type,
        "\"matches\" is not defined for integers",
    );
    error(
        &s,
        f,
        "ssl gt true",
        ErrorKind::Type,
        "\"gt\" is not defined for Booleans",
    );
    error(
        &s,
        f,
        r#"http.request.headers.names eq "a""#,
        ErrorKind::Type,
        "use [*] to compare every element",
    );
    error(
        &s,
        f,
        "http.host eq 5",
        ErrorKind::Type,
        "`http.host` is a String, so the value must be a string such as \"text\", not an integer",
    );
    error(
        &s,
        f,
        r#"cf.threat_score eq "5""#,
        ErrorKind::Type,
        "not a string",
    );
    error(
        &s,
        f,
        "ip.src eq 10.0.0.0/8",
        ErrorKind::Type,
        "use a set: `ip.src in {10.0.0.0/8}`",
    );
    error(&s, f, r#"ip.src in {"a"}"#, ErrorKind::Type, "IP address");
    error(
        &s,
        f,
        "http.host",
        ErrorKind::Type,
        "a filter expression must be Boolean, but `http.host` is a String",
    );
    error(
        &s,
        f,
        r#"http.request.headers.names[*] eq "a""#,
        ErrorKind::Type,
        "wrap it in any(…) or all(…)",
    );
    error(
        &s,
        f,
        r#"http.host eq "a" and cf.threat_score"#,
        ErrorKind::Type,
        "an operand of \"and\" must be Boolean",
    );
    error(
        &s,
        f,
        r#"http.request.headers[0][0] eq "a""#,
        ErrorKind::Type,
        "is a map",
    );
    error(
        &s,
        f,
        r#"http.request.headers.names["a"] eq "a""#,
        ErrorKind::Type,
        "is an array",
    );
    error(
        &s,
        f,
        r#"http.host[0] eq "a""#,
        ErrorKind::Type,
        "cannot be indexed",
    );
    error(
        &s,
        Target::VALUE,
        "cf.threat_score",
        ErrorKind::Type,
        "a value expression must produce a String, but this is an Integer; convert it with to_string(…)",
    );
    error(
        &s,
        Target::VALUE,
        r#"http.host eq "a""#,
        ErrorKind::Type,
        "must produce a String",
    );
}

#[test]
fn syntax_and_limit_errors() {
    let s = scheme();
    let f = Target::FILTER;
    error(
        &s,
        f,
        "http.hots eq \"a\"",
        ErrorKind::UnknownField,
        "unknown field \"http.hots\" — did you mean \"http.host\"?",
    );
    error(
        &s,
        f,
        "http.host eq",
        ErrorKind::Syntax,
        "expected a value after \"eq\"",
    );
    error(
        &s,
        f,
        "http.host eq \"a",
        ErrorKind::Syntax,
        "unterminated string",
    );
    error(
        &s,
        f,
        "http.host eq r#\"a\"",
        ErrorKind::Syntax,
        "unterminated raw string",
    );
    error(&s, f, "(ssl", ErrorKind::Syntax, "expected \")\"");
    error(
        &s,
        f,
        "ssl and",
        ErrorKind::Syntax,
        "expected an expression",
    );
    error(&s, f, "ssl ssl", ErrorKind::Syntax, "unexpected \"ssl\"");
    error(
        &s,
        f,
        "ip.src in {10.0.0.0/33}",
        ErrorKind::Syntax,
        "invalid CIDR",
    );
    error(
        &s,
        f,
        "cf.threat_score in {5..1}",
        ErrorKind::Syntax,
        "the start is greater than the end",
    );
    error(
        &s,
        f,
        "cf.threat_score in {}",
        ErrorKind::Syntax,
        "at least one value",
    );
    error(
        &s,
        f,
        "cf.threat_score in 5",
        ErrorKind::Syntax,
        "expected a set of values {…} or a list $name after \"in\"",
    );
    error(
        &s,
        f,
        "http.host eq http.referer",
        ErrorKind::Syntax,
        "not a field",
    );
    error(&s, f, "and", ErrorKind::Syntax, "found the keyword \"and\"");
    error(
        &s,
        f,
        "http.host eq \"a\" @",
        ErrorKind::Syntax,
        "unexpected \"@\"",
    );
    error(
        &s,
        f,
        "cf.threat_score eq 99999999999999999999",
        ErrorKind::Syntax,
        "out of range",
    );
    let long = format!("http.host eq \"{}\"", "a".repeat(4096));
    error(&s, f, &long, ErrorKind::Limit, "the maximum is 4,096");
    let deep = format!("{}ssl{}", "(".repeat(100), ")".repeat(100));
    error(&s, f, &deep, ErrorKind::Limit, "nested too deeply");
    let indexes = format!("http.request.headers.names{} eq \"a\"", "[0]".repeat(100));
    error(&s, f, &indexes, ErrorKind::Limit, "nested too deeply");
    let nots = format!("{}ssl", "not ".repeat(100));
    error(&s, f, &nots, ErrorKind::Limit, "nested too deeply");
    // Exactly 4,096 characters is fine.
    let exact = format!("http.host eq \"{}\"", "é".repeat(4096 - 15));
    assert_eq!(exact.chars().count(), 4096);
    assert!(Expression::parse(&s, &exact, f).is_ok());
}

#[test]
fn context_values_are_type_checked() {
    let s = scheme();
    let mut c = ExecutionContext::new(&s);
    assert!(c.set("http.host", 5).is_err());
    assert!(c.set("no.such.field", "x").is_err());
    assert!(c.set("ip.src", "1.2.3.4").is_err());
    assert!(
        c.set("http.request.headers.names", Value::Array(vec!["a".into()]))
            .is_ok()
    );
    assert_eq!(c.get("http.host"), None);
}

#[test]
fn other_scheme_contexts_do_not_match() {
    let s1 = scheme();
    let s2 = scheme();
    let e = Expression::parse(&s1, "true", ExprKind::Filter).unwrap();
    assert!(e.execute(&ExecutionContext::new(&s1)));
    assert!(!e.execute(&ExecutionContext::new(&s2)));
}

#[test]
fn literal_regexes_keep_regex_meaning() {
    let s = scheme();
    let mut c = ExecutionContext::new(&s);
    for (path, pattern, want) in [
        ("/api/x", "^/api/", true),
        ("/v1/api/x", "^/api/", false),
        ("/index.php", "\\\\.php$", true),
        ("/index.php\n", "\\\\.php$", false),
        ("/index.phps", "\\\\.php$", false),
        ("/", "^/$", true),
        ("//", "^/$", false),
        ("/admin/x", "admin", true),
        ("/ADMIN/x", "admin", false),
        ("/ADMIN/x", "(?i)admin", true),
        ("anything", "", true),
        ("/a.b", "^/a.b$", true),
        ("/axb", "^/a.b$", true),
        ("/axb", "^/a\\\\.b$", false),
    ] {
        c.set("http.request.uri.path", path).unwrap();
        filter(
            &c,
            &format!("http.request.uri.path matches \"{pattern}\""),
            want,
        );
        filter(
            &c,
            &format!("not http.request.uri.path matches \"{pattern}\""),
            !want,
        );
    }
}

#[test]
fn raw_fields_are_not_decoded() {
    let s = scheme();
    let mut c = ExecutionContext::new(&s);
    c.set_request(
        "GET",
        false,
        "example.com",
        "/a%20b/c.PNG?q=x%20y",
        "HTTP/2",
        &[] as &[(&str, &str)],
    )
    .unwrap();
    filter(&c, r#"http.request.uri.path eq "/a%20b/c.PNG""#, true);
    filter(
        &c,
        r#"url_decode(http.request.uri.path) eq "/a b/c.PNG""#,
        true,
    );
    filter(&c, r#"raw.http.request.uri.path eq "/a%20b/c.PNG""#, true);
    filter(&c, r#"http.request.uri.path.extension eq "png""#, true);
    filter(&c, r#"http.request.uri.args["q"][0] eq "x y""#, true);
    filter(&c, r#"raw.http.request.uri.args["q"][0] eq "x%20y""#, true);
    filter(
        &c,
        r#"raw.http.request.full_uri eq "http://example.com/a%20b/c.PNG?q=x%20y""#,
        true,
    );
    filter(&c, "ssl", false);
}

#[test]
fn header_fields_take_the_first_header_of_their_name_in_any_case_and_join_cookies() {
    let s = scheme();
    let c = common::context(
        &s,
        "/",
        &[
            ("referer", "https://first.example/"),
            ("COOKIE", "a=1"),
            ("User-Agent", "first-agent"),
            ("X-Forwarded-For", "192.0.2.1"),
            ("user-agent", "second-agent"),
            ("Cookie", "b=2; c=3"),
            ("Referer", "https://second.example/"),
            ("x-forwarded-for", "192.0.2.2"),
            ("cookie", "d=4"),
        ],
    );
    filter(&c, r#"http.user_agent eq "first-agent""#, true);
    filter(&c, r#"http.referer eq "https://first.example/""#, true);
    filter(&c, r#"http.x_forwarded_for eq "192.0.2.1""#, true);
    filter(&c, r#"http.cookie eq "a=1; b=2; c=3; d=4""#, true);
    filter(&c, r#"http.request.cookies["c"][0] eq "3""#, true);
    filter(&c, r#"http.request.cookies["d"][0] eq "4""#, true);
    // None of them: the fields are missing (a comparison with a missing field is false).
    let c = common::context(&s, "/", &[("accept", "*/*")]);
    filter(&c, r#"http.user_agent ne "x""#, false);
    filter(&c, r#"http.cookie ne "x""#, false);
}

#[test]
fn expressions_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Expression>();
    check::<Scheme>();
}

#[test]
fn regexes_are_byte_oriented_unless_u_flag() {
    let s = scheme();
    let mut c = ExecutionContext::new(&s);
    c.set("http.request.uri.path", "/%ED%95%9C%EA%B8%80")
        .unwrap();
    // Cloudflare's example: (?u) enables Unicode classes.
    filter(
        &c,
        r#"url_decode(http.request.uri.path) matches "(?u)\\p{Hangul}+""#,
        true,
    );
    filter(
        &c,
        r#"url_decode(http.request.uri.path) matches "(?u)^/\\p{Hangul}{2}$""#,
        true,
    );
    // Without it, `.` is one byte: the two Hangul syllables are six bytes.
    filter(
        &c,
        r#"url_decode(http.request.uri.path) matches "^/.{6}$""#,
        true,
    );
    filter(
        &c,
        r#"url_decode(http.request.uri.path) matches "^/.{2}$""#,
        false,
    );
    c.set("http.request.uri.path", "/\u{e9}").unwrap();
    filter(&c, r#"http.request.uri.path matches "^/é$""#, true);
}

#[test]
fn scheme_has_the_documented_fields_and_types() {
    use edgetrace_rules::Type;
    let s = scheme();
    let string = Type::Bytes;
    let strings = Type::array_of_strings();
    let map = Type::map_of_string_arrays();
    let expected: Vec<(&str, Type, bool)> = vec![
        ("http.host", string.clone(), false),
        ("http.request.method", string.clone(), false),
        ("http.request.uri", string.clone(), false),
        ("http.request.uri.path", string.clone(), false),
        ("http.request.uri.query", string.clone(), false),
        ("http.request.uri.path.extension", string.clone(), false),
        ("http.request.full_uri", string.clone(), false),
        ("http.request.version", string.clone(), false),
        ("http.user_agent", string.clone(), false),
        ("http.referer", string.clone(), false),
        ("http.cookie", string.clone(), false),
        ("http.x_forwarded_for", string.clone(), false),
        ("http.request.headers", map.clone(), false),
        ("http.request.headers.names", strings.clone(), false),
        ("http.request.headers.values", strings.clone(), false),
        ("http.request.cookies", map.clone(), false),
        ("http.request.uri.args", map.clone(), false),
        ("http.request.uri.args.names", strings.clone(), false),
        ("http.request.uri.args.values", strings.clone(), false),
        ("http.request.body.raw", string.clone(), false),
        ("http.request.body.size", Type::Int, false),
        ("http.request.body.form", map.clone(), false),
        ("http.request.body.form.names", strings.clone(), false),
        ("http.request.body.form.values", strings.clone(), false),
        ("http.request.body.mime", string.clone(), false),
        ("ip.src", Type::Ip, false),
        ("ip.src.country", string.clone(), false),
        ("ip.src.continent", string.clone(), false),
        ("ip.src.asnum", Type::Int, false),
        ("ip.src.city", string.clone(), false),
        ("ip.src.region_code", string.clone(), false),
        ("ip.src.postal_code", string.clone(), false),
        ("ip.src.lat", string.clone(), false),
        ("ip.src.lon", string.clone(), false),
        ("ip.src.subdivision_1_iso_code", string.clone(), false),
        ("ip.src.subdivision_2_iso_code", string.clone(), false),
        ("ip.src.is_in_european_union", Type::Bool, false),
        ("ip.src.timezone.name", string.clone(), false),
        ("ssl", Type::Bool, false),
        ("cf.bot_management.score", Type::Int, false),
        ("cf.bot_management.verified_bot", Type::Bool, false),
        ("cf.client.bot", Type::Bool, false),
        ("cf.threat_score", Type::Int, false),
        ("raw.http.request.uri", string.clone(), false),
        ("raw.http.request.uri.path", string.clone(), false),
        ("raw.http.request.uri.query", string.clone(), false),
        ("raw.http.request.full_uri", string.clone(), false),
        ("raw.http.request.uri.args", map.clone(), false),
        ("raw.http.request.uri.args.names", strings.clone(), false),
        ("http.response.code", Type::Int, true),
        ("http.response.headers", map.clone(), true),
        ("http.response.headers.names", strings.clone(), true),
        ("http.response.headers.values", strings.clone(), true),
        (
            "http.response.content_type.media_type",
            string.clone(),
            true,
        ),
    ];
    for (name, ty, response_only) in expected {
        let id = s.field(name).unwrap_or_else(|| panic!("{name} missing"));
        let def = s.field_def(id).unwrap();
        assert_eq!(def.ty, ty, "{name}");
        assert_eq!(def.response_only, response_only, "{name}");
    }
}

#[test]
fn field_types_in_use() {
    let s = scheme();
    let mut c = request(&s);
    c.set("ip.src.region_code", "BE").unwrap();
    c.set("ip.src.postal_code", "10115").unwrap();
    c.set("ip.src.lon", "13.40").unwrap();
    c.set("ip.src.subdivision_1_iso_code", "DE-BE").unwrap();
    c.set("http.request.body.size", 8).unwrap();
    c.set("http.request.body.mime", "application/json").unwrap();
    c.set("http.x_forwarded_for", "198.51.100.1, 203.0.113.9")
        .unwrap();
    c.set(
        "cf.bot_management.detection_ids",
        Value::Array(vec![Value::Int(33554817)]),
    )
    .unwrap();
    for (text, want) in [
        (
            r#"ip.src.city eq "Berlin" and ip.src.region_code eq "BE""#,
            true,
        ),
        (r#"ip.src.postal_code matches "^10[0-9]{3}$""#, true),
        (r#"ip.src.lat eq "52.52" and ip.src.lon ne "0""#, true),
        (r#"ip.src.subdivision_1_iso_code eq "DE-BE""#, true),
        (r#"ip.src.subdivision_2_iso_code eq "x""#, false),
        (r#"ip.src.timezone.name eq "Europe/Berlin""#, true),
        (
            "http.request.body.size gt 5 and http.request.body.size le 8",
            true,
        ),
        (r#"http.request.body.mime eq "application/json""#, true),
        (r#"http.request.body.form["name"][0] eq "bob""#, true),
        (r#"any(http.request.body.form.names[*] eq "comment")"#, true),
        (r#"http.x_forwarded_for contains "203.0.113.9""#, true),
        ("any(cf.bot_management.detection_ids[*] eq 33554817)", true),
        (
            "cf.bot_management.score lt 30 and not cf.bot_management.verified_bot",
            true,
        ),
        ("cf.client.bot or cf.threat_score gt 50", true),
    ] {
        filter(&c, text, want);
    }
}

#[test]
fn url_normalization_of_request_paths() {
    let s = scheme();
    let mut c = ExecutionContext::new(&s);
    for (raw, normalized) in [
        ("/a/b", "/a/b"),
        ("/%7Euser/%41bc", "/~user/Abc"),
        ("/a%2fb", "/a%2Fb"),
        ("//a///b", "/a/b"),
        ("/a\\b", "/a/b"),
        ("/a/./b/../c", "/a/c"),
        ("/a/b/..", "/a/"),
        ("/..", "/"),
        ("/", "/"),
        ("/dir/", "/dir/"),
    ] {
        c.set_request(
            "GET",
            true,
            "example.com",
            raw,
            "HTTP/1.1",
            &[] as &[(&str, &str)],
        )
        .unwrap();
        assert_eq!(
            c.get("http.request.uri.path"),
            Some(&Value::from(normalized)),
            "{raw}"
        );
        assert_eq!(
            c.get("raw.http.request.uri.path"),
            Some(&Value::from(raw)),
            "{raw}"
        );
    }
}
