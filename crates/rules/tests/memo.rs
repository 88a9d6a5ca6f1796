//! Calls of one field (`lower(http.host)`, `lower(http.request.headers.names[*])`) are
//! computed once per context and shared by every expression that makes them: the shared
//! result is the call's, and setting a field afterwards forgets it.

use edgetrace_rules::{ExecutionContext, ExprKind, Expression, Scheme};

fn filter(scheme: &Scheme, text: &str) -> Expression {
    Expression::parse(scheme, text, ExprKind::Filter).unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[test]
fn shared_calls_give_each_expression_the_calls_result() {
    let scheme = Scheme::cloudflare();
    let host_a = filter(&scheme, "lower(http.host) eq \"shop.test\"");
    let host_b = filter(&scheme, "lower(http.host) contains \"shop\"");
    let host_c = filter(&scheme, "upper(http.host) eq \"SHOP.TEST\"");
    let names = filter(
        &scheme,
        "any(lower(http.request.headers.names[*])[*] eq \"x-key\")",
    );
    let names_other = filter(
        &scheme,
        "any(lower(http.request.headers.names[*])[*] eq \"x-other\")",
    );
    let mut ctx = ExecutionContext::new(&scheme);
    ctx.set_request(
        "GET",
        true,
        "SHOP.test",
        "/",
        "HTTP/1.1",
        &[("Host", "SHOP.test"), ("X-Key", "v")],
    )
    .unwrap();
    for _ in 0..2 {
        assert!(host_a.execute(&ctx));
        assert!(host_b.execute(&ctx));
        assert!(
            host_c.execute(&ctx),
            "lower and upper of a field are not one call"
        );
        assert!(names.execute(&ctx));
        assert!(!names_other.execute(&ctx));
    }
    // A field set after the calls ran: they are computed again from the new value.
    ctx.set("http.host", "Other.TEST").unwrap();
    assert!(!host_a.execute(&ctx));
    assert!(!host_b.execute(&ctx));
    assert!(filter(&scheme, "lower(http.host) eq \"other.test\"").execute(&ctx));
    ctx.set_headers("http.request.headers", [("X-Other", "1")])
        .unwrap();
    assert!(names_other.execute(&ctx));
    assert!(!names.execute(&ctx));
    // A fresh context of the same scheme starts empty.
    let ctx = ExecutionContext::new(&scheme);
    assert!(!host_a.execute(&ctx));
    assert!(!names.execute(&ctx));
}
