//! Fuzzes the rules-language parser, checker and evaluator: no input may
//! panic, every error carries a span within the input, and every accepted
//! expression prints canonically to text that parses back to the same tree.
#![no_main]

use std::sync::OnceLock;

use edgetrace_rules::{ExecutionContext, ExprKind, Expression, Scheme, parse};
use libfuzzer_sys::fuzz_target;

fn scheme() -> &'static Scheme {
    static SCHEME: OnceLock<Scheme> = OnceLock::new();
    SCHEME.get_or_init(Scheme::cloudflare)
}

fn check_error(text: &str, err: &edgetrace_rules::Error) {
    let span = err.span();
    assert!(span.start <= span.end, "inverted span {span:?} for {text:?}");
    assert!(span.end <= text.len(), "span {span:?} beyond input of {} bytes: {text:?}", text.len());
    assert!(!err.message().is_empty());
    let _ = err.to_string();
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match parse(text) {
        Err(e) => check_error(text, &e),
        Ok(ast) => {
            let printed = ast.to_string();
            let mut again = parse(&printed).expect("canonical text parses");
            let mut orig = ast.clone();
            orig.clear_spans();
            again.clear_spans();
            assert_eq!(orig, again, "print/parse round trip changed the tree: {printed}");
        }
    }
    let scheme = scheme();
    let mut ctx = ExecutionContext::new(scheme);
    let _ = ctx.set_request(
        "POST",
        true,
        "www.example.com",
        "/api/v1/items.json?id=1&q=a%20b",
        "HTTP/1.1",
        &[("User-Agent", "fuzz"), ("X-Id", "1"), ("Cookie", "a=b")],
    );
    let _ = ctx.set("http.request.body.raw", r#"{"a": [1, "x"]}"#);
    let _ = ctx.set("cf.random_seed", vec![7u8; 32]);
    for kind in [ExprKind::Filter, ExprKind::Value] {
        match Expression::parse(scheme, text, kind) {
            Err(e) => check_error(text, &e),
            Ok(expr) => {
                let fast = expr.execute(&ctx);
                let explained = expr.explain(&ctx);
                if kind == ExprKind::Filter {
                    assert_eq!(fast, explained.matched, "execute and explain disagree on {text:?}");
                }
                let _ = explained.to_string();
                let _ = expr.evaluate(&ctx);
                let _ = expr.execute(&ExecutionContext::new(scheme));
            }
        }
    }
});
