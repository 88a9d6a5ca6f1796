//! A context that keeps only the fields an expression reads (`Scheme::field_mask`,
//! `ExecutionContext::with_fields`) gives every expression the same result as a full one.

use edgetrace_rules::{ExecutionContext, ExprKind, Expression, Scheme};

const EXPRESSIONS: &[&str] = &[
    "http.request.uri.path eq \"/a/b.php\"",
    "http.request.uri.path.extension eq \"php\"",
    "raw.http.request.uri.path.extension eq \"PHP\"",
    "http.request.full_uri contains \"?x=1\"",
    "raw.http.request.full_uri eq \"https://shop.test/a/%62.PHP?x=1&y=%41\"",
    "http.request.uri eq \"/a/b.PHP?x=1&y=%41\"",
    "http.request.uri.query contains \"y=\"",
    "http.request.uri.args[\"y\"][0] eq \"A\"",
    "raw.http.request.uri.args[\"y\"][0] eq \"%41\"",
    "any(http.request.uri.args.names[*] eq \"x\")",
    "any(http.request.uri.args.values[*] eq \"1\")",
    "http.request.headers[\"x-key\"][0] eq \"v\"",
    "any(http.request.headers.names[*] eq \"X-Key\")",
    "any(http.request.headers.values[*] eq \"v\")",
    "http.user_agent contains \"curl\"",
    "http.referer eq \"https://ref.test/\"",
    "http.cookie contains \"session=1\"",
    "http.request.cookies[\"session\"][0] eq \"1\"",
    "len(http.request.cookies) eq 0",
    "lower(http.host) eq \"shop.test\" and ssl",
    "http.request.method in {\"GET\" \"POST\"} and http.request.version eq \"HTTP/1.1\"",
    "http.x_forwarded_for eq \"198.51.100.1\"",
    "not http.request.uri.path matches \"^/admin\"",
];

fn context<'a>(
    scheme: &'a Scheme,
    mask: Option<&'a [bool]>,
    cookies: bool,
) -> ExecutionContext<'a, 'a> {
    let mut ctx = ExecutionContext::new(scheme);
    if let Some(m) = mask {
        ctx = ctx.with_fields(m);
    }
    let mut headers = vec![
        ("X-Key", "v"),
        ("User-Agent", "curl/8"),
        ("Referer", "https://ref.test/"),
        ("X-Forwarded-For", "198.51.100.1"),
    ];
    if cookies {
        headers.push(("Cookie", "session=1; b=2"));
    }
    ctx.set_request(
        "GET",
        true,
        "shop.test",
        "/a/%62.PHP?x=1&y=%41",
        "HTTP/1.1",
        &headers,
    )
    .unwrap();
    ctx
}

#[test]
fn masked_contexts_agree_with_full_ones() {
    let scheme = Scheme::cloudflare();
    let mut matched = 0;
    for cookies in [true, false] {
        let full = context(&scheme, None, cookies);
        for text in EXPRESSIONS {
            let e = Expression::parse(&scheme, text, ExprKind::Filter).unwrap();
            let mask = scheme.field_mask([&e]);
            assert!(mask.iter().any(|&w| w), "{text}: no field in the mask");
            let masked = context(&scheme, Some(&mask), cookies);
            assert_eq!(
                e.execute(&masked),
                e.execute(&full),
                "{text} (cookies: {cookies})"
            );
            matched += usize::from(e.execute(&full));
            // Fields the expression does not read are not even set.
            for (i, def) in scheme.fields().iter().enumerate() {
                if !mask[i] {
                    assert!(masked.get(&def.name).is_none(), "{text}: {} set", def.name);
                }
            }
        }
    }
    // The corpus is not trivially false: most expressions match this request.
    assert!(matched > EXPRESSIONS.len(), "{matched}");
}

/// A masked context that keeps no header field (`keeps_header_fields`) gives every
/// expression the result it gives on the request with other headers: a pipeline may leave
/// such a context's header fields as they were when a rewrite changes the headers. And the
/// expressions that read headers are seen to.
#[test]
fn a_context_keeping_no_header_field_does_not_depend_on_the_headers() {
    let scheme = Scheme::cloudflare();
    let other_headers = [
        ("X-Key", "w"),
        ("User-Agent", "wget/1"),
        ("Referer", "https://other.test/"),
        ("X-Forwarded-For", "203.0.113.7"),
        ("Cookie", "session=2"),
    ];
    let mut keeping = 0;
    for text in EXPRESSIONS {
        let e = Expression::parse(&scheme, text, ExprKind::Filter).unwrap();
        let mask = scheme.field_mask([&e]);
        let masked = context(&scheme, Some(&mask), true);
        if masked.keeps_header_fields() {
            keeping += 1;
            continue;
        }
        let mut other = ExecutionContext::new(&scheme);
        other
            .set_request(
                "GET",
                true,
                "shop.test",
                "/a/%62.PHP?x=1&y=%41",
                "HTTP/1.1",
                &other_headers,
            )
            .unwrap();
        assert_eq!(e.execute(&masked), e.execute(&other), "{text}");
    }
    // The ones that read the headers, their names or values, the agent, the referer, the
    // X-Forwarded-For, the cookies.
    assert_eq!(keeping, 9);
}
