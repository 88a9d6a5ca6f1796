//! Helpers shared by the rules crate's tests.

use edgetrace_rules::{ExecutionContext, Scheme};

/// A context of a GET of `uri` on `shop.test` with `headers`, borrowing them.
pub fn context<'a>(
    scheme: &'a Scheme,
    uri: &'a str,
    headers: &[(&'a str, &'a str)],
) -> ExecutionContext<'a, 'a> {
    let mut ctx = ExecutionContext::new(scheme);
    ctx.set_request("GET", false, "shop.test", uri, "HTTP/1.1", headers)
        .unwrap();
    ctx
}
