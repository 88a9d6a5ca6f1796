//! A context set from borrowed text holds parts of that text (no copy) wherever a field is
//! the text as it is, and holds the same values as one set from owned text.

mod common;
use common::context;
use std::borrow::Cow;

use edgetrace_rules::{ExecutionContext, Scheme, Value};
use proptest::prelude::*;

const URIS: &[&str] = &[
    "/",
    "/products/42?color=red",
    "/A/B.PHP?x=1&x=2&y",
    "/a//b/../c.html?q=a%20b&r=+",
    "/%7Euser/x.tar.gz",
    "/dir/?",
    "/caf%C3%A9?%ZZ=1",
];

const HEADERS: &[(&str, &str)] = &[
    ("host", "shop.test"),
    ("User-Agent", "curl/8"),
    ("cookie", "session=abc; theme=dark"),
    ("Cookie", "x=1"),
    ("referer", "http://shop.test/"),
    ("x-forwarded-for", "192.0.2.1"),
    ("x-a", "1"),
    ("X-A", "2"),
];

/// Whether `part` lies within `whole` (is borrowed from it, not a copy).
fn within(part: &[u8], whole: &str) -> bool {
    let start = whole.as_ptr() as usize;
    let p = part.as_ptr() as usize;
    p >= start && p + part.len() <= start + whole.len()
}

#[test]
fn fields_that_are_the_text_as_it_is_borrow_it() {
    let scheme = Scheme::cloudflare();
    let uri = String::from("/products/42.html?color=red&size=m");
    let headers = [
        ("host", "shop.test"),
        ("user-agent", "curl/8"),
        ("cookie", "session=abc; theme=dark"),
    ];
    let ctx = context(&scheme, &uri, &headers);
    let bytes = |name: &str| match ctx.get(name) {
        Some(Value::Bytes(b)) => b.clone(),
        other => panic!("{name}: {other:?}"),
    };
    for name in [
        "http.request.uri",
        "http.request.uri.path",
        "http.request.uri.path.extension",
        "http.request.uri.query",
        "raw.http.request.uri",
        "raw.http.request.uri.path",
        "raw.http.request.uri.query",
    ] {
        let b = bytes(name);
        assert!(matches!(b, Cow::Borrowed(_)), "{name} is a copy");
        assert!(within(&b, &uri), "{name} is not the request's");
    }
    assert!(within(&bytes("http.cookie"), headers[2].1));
    assert!(within(&bytes("http.user_agent"), headers[1].1));
    let Some(Value::Map(cookies)) = ctx.get("http.request.cookies") else {
        panic!("cookies");
    };
    for (k, v) in cookies {
        assert!(within(k, headers[2].1), "cookie name copied");
        let Value::Array(items) = v else { panic!() };
        assert!(
            items
                .iter()
                .all(|i| within(i.as_bytes().unwrap(), headers[2].1))
        );
    }
    let Some(Value::Map(args)) = ctx.get("http.request.uri.args") else {
        panic!("args");
    };
    assert!(
        args.iter().all(|(k, _)| within(k, &uri)),
        "argument name copied"
    );
    // What differs from the text is computed: a copy.
    let uri = String::from("/a//b/X.PHP?q=a%20b");
    let ctx = context(&scheme, &uri, &headers);
    assert_eq!(
        ctx.get("http.request.uri.path"),
        Some(&Value::from("/a/b/X.PHP"))
    );
    assert_eq!(
        ctx.get("http.request.uri.path.extension"),
        Some(&Value::from("php"))
    );
    assert_eq!(
        ctx.get("http.request.uri.args").map(ToString::to_string),
        Some(r#"{"q": ["a b"]}"#.to_string())
    );
}

proptest! {
    #[test]
    fn borrowed_and_owned_text_give_the_same_fields(
        uri in prop::sample::select(URIS),
        headers in prop::sample::subsequence(HEADERS, 0..=HEADERS.len()),
        https: bool,
    ) {
        let scheme = Scheme::cloudflare();
        let mut borrowed = ExecutionContext::new(&scheme);
        borrowed
            .set_request("GET", https, "shop.test", uri, "HTTP/1.1", &headers)
            .unwrap();
        let owned_headers: Vec<(Cow<'static, str>, Cow<'static, str>)> = headers
            .iter()
            .map(|(k, v)| (Cow::Owned(k.to_string()), Cow::Owned(v.to_string())))
            .collect();
        let own = |s: &str| Cow::<'static, str>::Owned(s.to_string());
        let mut owned = ExecutionContext::new(&scheme);
        owned
            .set_request(own("GET"), https, own("shop.test"), own(uri), own("HTTP/1.1"), &owned_headers)
            .unwrap();
        for def in scheme.fields() {
            let name = def.name.as_str();
            prop_assert_eq!(borrowed.get(name), owned.get(name), "{}", name);
        }
    }
}
