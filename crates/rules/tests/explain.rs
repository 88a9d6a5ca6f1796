//! Explained evaluation: results, values seen, short-circuit points.

use edgetrace_rules::{ExecutionContext, ExprKind, Expression, Scheme, StepKind};

#[test]
fn says_why_a_rule_did_not_match() {
    let scheme = Scheme::cloudflare();
    let mut ctx = ExecutionContext::new(&scheme);
    ctx.set("http.host", "example.com").unwrap();
    ctx.set("ip.src.country", "DE").unwrap();
    let e = Expression::parse(
        &scheme,
        r#"http.host eq "example.com" and ip.src.country in {"US" "CA"} and http.request.uri.path matches "^/api/""#,
        ExprKind::Filter,
    )
    .unwrap();
    let x = e.explain(&ctx);
    assert!(!x.matched);
    assert_eq!(
        x.reasons(),
        [r#"`ip.src.country` was "DE", not in {"US" "CA"}"#]
    );
    assert_eq!(
        x.root.kind,
        StepKind::Logical(edgetrace_rules::LogicalOp::And)
    );
    let kids = &x.root.children;
    assert_eq!(kids.len(), 3);
    assert_eq!(kids[0].result, Some(true));
    assert_eq!(
        kids[0].note.as_deref(),
        Some(r#"`http.host` was "example.com", equal to "example.com""#)
    );
    assert_eq!(kids[1].result, Some(false));
    // Short-circuit: the third operand was not evaluated.
    assert_eq!(kids[2].result, None);
    assert_eq!(
        kids[2].note.as_deref(),
        Some("not evaluated: \"and\" stopped at the first false operand")
    );
    assert_eq!(
        x.to_string(),
        concat!(
            "did not match\n",
            "false http.host eq \"example.com\" and ip.src.country in {\"US\" \"CA\"} and http.request.uri.path matches \"^/api/\"\n",
            "  true  http.host eq \"example.com\" — `http.host` was \"example.com\", equal to \"example.com\"\n",
            "  false ip.src.country in {\"US\" \"CA\"} — `ip.src.country` was \"DE\", not in {\"US\" \"CA\"}\n",
            "  skip  http.request.uri.path matches \"^/api/\" — not evaluated: \"and\" stopped at the first false operand\n",
        )
    );
}

#[test]
fn missing_values_negation_and_or() {
    let scheme = Scheme::cloudflare();
    let mut ctx = ExecutionContext::new(&scheme);
    ctx.set("ssl", true).unwrap();
    let e = Expression::parse(
        &scheme,
        r#"http.referer contains "x" or not ssl"#,
        ExprKind::Filter,
    )
    .unwrap();
    let x = e.explain(&ctx);
    assert!(!x.matched);
    assert_eq!(
        x.reasons(),
        [
            "`http.referer` is missing, so the comparison is false",
            "`ssl` was true"
        ]
    );
    let e = Expression::parse(
        &scheme,
        r#"ssl or http.referer contains "x""#,
        ExprKind::Filter,
    )
    .unwrap();
    let x = e.explain(&ctx);
    assert!(x.matched);
    assert_eq!(x.root.children[1].result, None);
    assert_eq!(
        x.root.children[1].note.as_deref(),
        Some("not evaluated: \"or\" stopped at the first true operand")
    );
}

#[test]
fn arrays_and_functions() {
    let scheme = Scheme::cloudflare();
    let mut ctx = ExecutionContext::new(&scheme);
    ctx.set_headers(
        "http.request.headers",
        [("Accept", "text/html"), ("X-A", "1")],
    )
    .unwrap();
    ctx.set("http.request.uri.path", "/x").unwrap();
    let e = Expression::parse(
        &scheme,
        r#"any(http.request.headers.names[*] eq "Cookie") or starts_with(http.request.uri.path, "/blog")"#,
        ExprKind::Filter,
    )
    .unwrap();
    let x = e.explain(&ctx);
    assert!(!x.matched);
    assert_eq!(
        x.reasons(),
        [
            r#"`http.request.headers.names[*]` was ["Accept", "X-A"]; 0 of 2 element(s) equal to "Cookie""#,
            r#"`starts_with(http.request.uri.path, "/blog")` was false (`http.request.uri.path` was "/x")"#,
        ]
    );
}

#[test]
fn value_expressions() {
    let scheme = Scheme::cloudflare();
    let mut ctx = ExecutionContext::new(&scheme);
    ctx.set("http.request.uri.path", "/old/page").unwrap();
    let e = Expression::parse(
        &scheme,
        r#"concat("/new", http.request.uri.path)"#,
        ExprKind::Value,
    )
    .unwrap();
    let x = e.explain(&ctx);
    assert!(x.matched);
    assert_eq!(x.value, Some("/new/old/page".into()));
    assert!(x.to_string().starts_with("value: \"/new/old/page\"\n"));
}
