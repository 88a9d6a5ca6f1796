//! A context brought up to date with `update_request` (or `update_query`, after a rewrite of
//! the query alone) holds the same fields as one built from the rewritten request, except
//! `raw.*`, which keep the request as it arrived; with or without a field mask.

use edgetrace_rules::{ExecutionContext, ExprKind, Expression, Scheme};
use proptest::prelude::*;

const URIS: &[&str] = &[
    "/",
    "/a/b.php?x=1&y=%41",
    "/a//./c/../d.HTML",
    "/products/42?color=red&via=edge",
    "/%7Euser/?q=a+b",
];
const NAMES: &[&str] = &[
    "User-Agent",
    "Referer",
    "Cookie",
    "X-Forwarded-For",
    "X-Key",
];
const VALUES: &[&str] = &["curl/8", "session=1; theme=dark", "198.51.100.1", "v", ""];

fn headers() -> impl Strategy<Value = Vec<(&'static str, &'static str)>> {
    prop::collection::vec(
        (prop::sample::select(NAMES), prop::sample::select(VALUES)),
        0..5,
    )
}

fn built<'s>(
    scheme: &'s Scheme,
    mask: Option<&'s [bool]>,
    uri: &'s str,
    headers: &[(&'s str, &'s str)],
) -> ExecutionContext<'s, 's> {
    let mut ctx = ExecutionContext::new(scheme);
    if let Some(m) = mask {
        ctx = ctx.with_fields(m);
    }
    ctx.set_request("GET", true, "shop.test", uri, "HTTP/1.1", headers)
        .unwrap();
    ctx
}

proptest! {
    #[test]
    fn an_updated_context_equals_a_rebuilt_one(
        before in prop::sample::select(URIS),
        after in prop::sample::select(URIS),
        headers_before in headers(),
        headers_after in headers(),
        change_uri in any::<bool>(),
        change_headers in any::<bool>(),
        query_only in any::<bool>(),
        masked in any::<bool>(),
    ) {
        let scheme = Scheme::cloudflare();
        // A mask of what a few rules read (lower() of a field is memoized: the update must
        // forget it).
        let rules: Vec<Expression> = [
            "lower(http.user_agent) contains \"curl\"",
            "http.request.uri.args[\"x\"][0] eq \"1\"",
            "http.cookie contains \"session\"",
            "raw.http.request.uri.path eq \"/\"",
            "any(http.request.headers.names[*] eq \"X-Key\")",
            "http.request.uri.path.extension eq \"php\" and http.request.full_uri contains \"y=\"",
            "http.request.uri.query contains \"via\"",
            // Keys of maps, looked up in a map's pairs (the map not built) until `get`
            // below builds the maps.
            "any(http.request.headers[\"x-key\"][*] eq \"v\")",
            "http.request.headers[\"cookie\"][1] contains \"theme\"",
            "http.request.cookies[\"theme\"][0] eq \"dark\"",
        ]
        .iter()
        .map(|t| Expression::parse(&scheme, t, ExprKind::Filter).unwrap())
        .collect();
        let mask = scheme.field_mask(rules.iter());
        let mask = masked.then_some(mask.as_slice());
        let uri = if change_uri { after } else { before };
        let hs = if change_headers { &headers_after } else { &headers_before };

        // A change of the query alone (the path of `before`, the query of `after`) is
        // brought up to date by `update_query`.
        let path_of = |u: &'static str| u.split_once('?').map_or(u, |(p, _)| p);
        let query_only = change_uri && query_only;
        let uri = if query_only {
            match after.split_once('?') {
                Some((_, q)) => format!("{}?{q}", path_of(before)),
                None => path_of(before).to_string(),
            }
        } else {
            uri.to_string()
        };
        let mut updated = built(&scheme, mask, before, &headers_before);
        let memo_before: Vec<bool> = rules.iter().map(|r| r.execute(&updated)).collect();
        if query_only {
            updated.update_query(true, "shop.test", uri.as_str()).unwrap();
        }
        updated
            .update_request(
                true,
                "shop.test",
                (change_uri && !query_only).then_some(uri.as_str()),
                change_headers.then_some(headers_after.as_slice()),
            )
            .unwrap();
        let rebuilt = built(&scheme, mask, &uri, hs);
        let original = built(&scheme, mask, before, &headers_before);
        // The rules first (maps not built: keys looked up in their pairs, on either side),
        // then every field (which builds them), then the rules again (keys looked up in the
        // maps of `updated`, in the pairs of new contexts).
        let check_rules = |updated: &ExecutionContext<'_, '_>| -> Result<(), TestCaseError> {
            let rebuilt = built(&scheme, mask, &uri, hs);
            let original = built(&scheme, mask, before, &headers_before);
            for (i, r) in rules.iter().enumerate() {
                let want = if r.text().starts_with("raw.") { r.execute(&original) } else { r.execute(&rebuilt) };
                prop_assert_eq!(r.execute(updated), want, "{} (before the update: {})", r.text(), memo_before[i]);
            }
            Ok(())
        };
        check_rules(&updated)?;
        for def in scheme.fields() {
            let name = def.name.as_str();
            let expected = if name.starts_with("raw.") { original.get(name) } else { rebuilt.get(name) };
            prop_assert_eq!(updated.get(name), expected, "{}", name);
        }
        check_rules(&updated)?;
    }
}
