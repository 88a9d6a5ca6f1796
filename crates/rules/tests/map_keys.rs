//! A key of a map field (`http.request.headers["x-a"]`, `…cookies["id"]`, `…uri.args["q"]`)
//! is looked up in the pairs the map is made of until a rule needs the whole map: the value
//! is the same either way, and the same as the request's own headers, cookies and arguments
//! say; a map set again (new headers, or a value of its own) or unset is seen at once.

mod common;
use common::context;
use edgetrace_rules::{ExecutionContext, Expression, Scheme, Target, Value};
use proptest::prelude::*;
use std::borrow::Cow;

const NAMES: &[&str] = &["X-A", "x-a", "Accept", "x-b", "Cookie", "cookie"];
const VALUES: &[&str] = &["1", "", "id=7; theme=dark", "id=8", "text/html"];
const KEYS: &[&str] = &["x-a", "X-A", "x-b", "accept", "cookie", "none"];
const URIS: &[&str] = &["/", "/p?q=1", "/p?q=1&q=2&r=", "/p?x=%41&q"];
const ARGS: &[&str] = &["q", "r", "x", "none"];
const COOKIES: &[&str] = &["id", "theme", "none"];

fn headers() -> impl Strategy<Value = Vec<(&'static str, &'static str)>> {
    prop::collection::vec(
        (prop::sample::select(NAMES), prop::sample::select(VALUES)),
        0..6,
    )
}

/// `field["key"]` joined with `|`, or `None` when missing.
fn key_of(
    scheme: &Scheme,
    ctx: &ExecutionContext<'_, '_>,
    field: &str,
    key: &str,
) -> Option<String> {
    let e = Expression::parse(
        scheme,
        &format!("join({field}[\"{key}\"], \"|\")"),
        Target::VALUE,
    )
    .unwrap();
    e.evaluate(ctx)
}

/// The values of header `key` (names compared as lowercase: a key with capitals is found
/// in no map), as the request's list has them.
fn expected_header(headers: &[(&str, &str)], key: &str) -> Option<String> {
    let values: Vec<&str> = headers
        .iter()
        .filter(|(k, _)| k.to_ascii_lowercase() == key)
        .map(|(_, v)| *v)
        .collect();
    (!values.is_empty()).then(|| values.join("|"))
}

proptest! {
    #[test]
    fn a_key_looked_up_in_the_pairs_is_the_maps(
        hs in headers(),
        uri in prop::sample::select(URIS),
        key in prop::sample::select(KEYS),
        arg in prop::sample::select(ARGS),
        cookie in prop::sample::select(COOKIES),
    ) {
        let scheme = Scheme::cloudflare();
        let fields = [
            ("http.request.headers", key),
            ("http.request.uri.args", arg),
            ("raw.http.request.uri.args", arg),
            ("http.request.cookies", cookie),
        ];
        // From the pairs (no map built yet)…
        let lazy = context(&scheme, uri, &hs);
        let from_pairs: Vec<Option<String>> =
            fields.iter().map(|(f, k)| key_of(&scheme, &lazy, f, k)).collect();
        // …equal what the maps say once built (`get` builds them)…
        let built = context(&scheme, uri, &hs);
        for (f, k) in fields {
            let map = built.get(f).cloned();
            let want = map.as_ref().and_then(|m| m.map_get(k.as_bytes())).map(|v| match v {
                Value::Array(items) => items.iter().map(|i| i.to_string().trim_matches('"').to_string()).collect::<Vec<_>>().join("|"),
                other => panic!("{f}[{k}] is {other}"),
            });
            prop_assert_eq!(key_of(&scheme, &built, f, k), want.clone(), "{}[{}] from the map", f, k);
        }
        prop_assert_eq!(
            fields.iter().map(|(f, k)| key_of(&scheme, &built, f, k)).collect::<Vec<_>>(),
            from_pairs.clone()
        );
        // …and what the request says.
        prop_assert_eq!(&from_pairs[0], &expected_header(&hs, key));
    }

    #[test]
    fn a_map_set_again_or_unset_is_seen_at_once(
        before in headers(),
        after in headers(),
        key in prop::sample::select(KEYS),
        build_first in any::<bool>(),
    ) {
        let scheme = Scheme::cloudflare();
        let mut ctx = context(&scheme, "/", &before);
        if build_first {
            let _ = ctx.get("http.request.headers");
        }
        prop_assert_eq!(key_of(&scheme, &ctx, "http.request.headers", key), expected_header(&before, key));
        // New headers (as after a rewrite).
        ctx.update_request(false, "shop.test", None::<&str>, Some(after.as_slice())).unwrap();
        prop_assert_eq!(key_of(&scheme, &ctx, "http.request.headers", key), expected_header(&after, key));
        // A map of its own.
        let own = Value::Map(vec![(Cow::Borrowed(key.as_bytes()), Value::Array(vec!["own".into()]))]);
        ctx.set("http.request.headers", own).unwrap();
        prop_assert_eq!(key_of(&scheme, &ctx, "http.request.headers", key), Some("own".to_string()));
        // Headers again (twice: the second list replaces the first), then none at all.
        ctx.set_headers("http.request.headers", before.iter().copied()).unwrap();
        ctx.set_headers("http.request.headers", after.iter().copied()).unwrap();
        prop_assert_eq!(key_of(&scheme, &ctx, "http.request.headers", key), expected_header(&after, key));
        ctx.unset("http.request.headers");
        prop_assert_eq!(key_of(&scheme, &ctx, "http.request.headers", key), None);
    }
}
