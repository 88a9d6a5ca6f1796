//! Each action's `action_parameters`, checked against what the action accepts, as Cloudflare
//! documents it. Value expressions (rewrites, dynamic redirects) are parsed for their phase.
//!
//! ```
//! use edgetrace_edge::actions::{Checker, check};
//! use edgetrace_rules::{MemoryLists, Phase, Scheme};
//! let scheme = Scheme::cloudflare();
//! let lists = MemoryLists::new();
//! let checker = Checker { scheme: &scheme, lists: &lists };
//! let params = serde_json::json!({"response": {"status_code": 200, "content": "no", "content_type": "text/plain"}});
//! let mut errors = Vec::new();
//! check(&checker, "block", Some(&params), "/rules/0/action_parameters", Phase::HttpRequestFirewallCustom, &mut errors);
//! assert_eq!(errors[0].pointer, "/rules/0/action_parameters/response/status_code");
//! ```

use crate::input::{Fields, type_name};
use crate::{FieldError, FieldErrors};
use edgetrace_rules::{Expression, Lists, Phase, Scheme, Target};
use serde_json::{Map, Value};

/// What checking expressions needs: the scheme and the account's named lists.
#[derive(Clone, Copy)]
pub struct Checker<'a> {
    pub scheme: &'a Scheme,
    pub lists: &'a dyn Lists,
}

impl Checker<'_> {
    /// Parses and checks an expression, naming its field on error with the caret rendering.
    pub fn expression(
        &self,
        text: &str,
        target: Target,
        pointer: &str,
        errors: &mut FieldErrors,
    ) -> Option<Expression> {
        match Expression::parse_with_lists(self.scheme, text, target, self.lists) {
            Ok(e) => Some(e),
            Err(e) => {
                errors.push(FieldError::new(
                    pointer,
                    format!("{}: {}", crate::input::path(pointer), e.render()),
                ));
                None
            }
        }
    }
}

/// Ruleset ids an action refers to (execute's `id`, skip's `ruleset`/`rulesets`/`rules`), with
/// where: the caller checks that they exist.
pub type Refs = Vec<(String, String)>;

/// Checks `params` for `action` in `phase`; problems go to `errors`, ruleset references are
/// returned.
pub fn check(
    checker: &Checker<'_>,
    action: &str,
    params: Option<&Value>,
    pointer: &str,
    phase: Phase,
    errors: &mut FieldErrors,
) -> Refs {
    let mut refs = Refs::new();
    let params = match params {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) => Some(map),
        Some(other) => {
            errors.push(FieldError::new(
                pointer,
                format!(
                    "{}: must be an object, not {}",
                    crate::input::path(pointer),
                    type_name(other)
                ),
            ));
            return refs;
        }
    };
    let empty = Map::new();
    let f = Fields::new(params.unwrap_or(&empty), pointer);
    let required = |errors: &mut FieldErrors, what: &str| {
        if params.is_none() {
            errors.push(FieldError::new(
                pointer,
                format!(
                    "{}: required for action {action}: {what}",
                    crate::input::path(pointer)
                ),
            ));
        }
    };
    match action {
        "block" => {
            f.only(&["response"], errors);
            if let Some(r) = f.object("response", errors) {
                let r = Fields::new(r, f.pointer("response"));
                r.only(&["status_code", "content", "content_type"], errors);
                if r.get("status_code").is_none() {
                    r.missing("status_code", errors);
                }
                r.integer("status_code", 400, 499, errors);
                content(&r, 10 * 1024, errors);
            }
        }
        "challenge" | "js_challenge" | "managed_challenge" | "log" => {
            f.only(&[], errors);
        }
        "skip" => {
            required(errors, "one of ruleset, phases, rulesets, rules, products");
            skip(&f, phase, &mut refs, errors);
        }
        "execute" => {
            required(errors, "{\"id\": RULESET_ID}");
            f.only(&["id", "overrides", "matched_data"], errors);
            if let Some(id) = f.string("id", params.is_some(), errors) {
                ruleset_id(&f, "id", &id, &mut refs, errors);
            }
            if let Some(o) = f.object("overrides", errors) {
                overrides(&Fields::new(o, f.pointer("overrides")), errors);
            }
            if let Some(m) = f.object("matched_data", errors) {
                let m = Fields::new(m, f.pointer("matched_data"));
                m.only(&["public_key"], errors);
                m.string("public_key", true, errors);
            }
        }
        "redirect" => {
            required(errors, "from_value or from_list");
            redirect(checker, &f, phase, params.is_some(), errors);
        }
        "rewrite" => {
            required(errors, "uri or headers");
            rewrite(checker, &f, phase, params.is_some(), errors);
        }
        "route" => {
            required(errors, "host_header, origin or sni");
            route(&f, params.is_some(), errors);
        }
        "set_config" => {
            required(errors, "at least one setting");
            set_config(&f, params.is_some(), errors);
        }
        "set_cache_settings" => {
            required(errors, "at least one setting");
            cache_settings(&f, errors);
        }
        "serve_error" => {
            required(errors, "content or asset_name");
            serve_error(&f, params.is_some(), errors);
        }
        "score" => {
            required(errors, "{\"increment\": N}");
            f.only(&["increment"], errors);
            if params.is_some() && f.get("increment").is_none() {
                f.missing("increment", errors);
            }
            f.integer("increment", -100, 100, errors);
        }
        "compress_response" => {
            required(errors, "{\"algorithms\": [...]}");
            f.only(&["algorithms"], errors);
            if let Some(items) = f.array("algorithms", errors) {
                for (i, item) in items.iter().enumerate() {
                    let p = format!("{}/{i}", f.pointer("algorithms"));
                    let mut local = FieldErrors::new();
                    if let Some(m) = crate::input::object(item, &p, &mut local) {
                        let a = Fields::new(m, &p);
                        a.only(&["name"], &mut local);
                        if let Some(n) = a.string("name", true, &mut local)
                            && !["none", "auto", "default", "gzip", "brotli", "zstd"]
                                .contains(&n.as_str())
                        {
                            local.push(a.error(
                                "name",
                                format!("{n:?}: allowed: none, auto, default, gzip, brotli, zstd"),
                            ));
                        }
                    }
                    errors.extend(local);
                }
            } else if params.is_some() {
                f.missing("algorithms", errors);
            }
        }
        "log_custom_field" => {
            f.only(
                &[
                    "request_fields",
                    "response_fields",
                    "cookie_fields",
                    "raw_request_fields",
                    "raw_response_fields",
                    "transformed_request_fields",
                ],
                errors,
            );
            for key in [
                "request_fields",
                "response_fields",
                "cookie_fields",
                "raw_request_fields",
                "raw_response_fields",
                "transformed_request_fields",
            ] {
                if let Some(items) = f.array(key, errors) {
                    for (i, item) in items.iter().enumerate() {
                        let p = format!("{}/{i}", f.pointer(key));
                        if let Some(m) = crate::input::object(item, &p, errors) {
                            let n = Fields::new(m, &p);
                            n.only(&["name", "preserve_duplicates"], errors);
                            n.string("name", true, errors);
                            n.boolean("preserve_duplicates", errors);
                        }
                    }
                }
            }
        }
        _ => {}
    }
    refs
}

fn content(f: &Fields<'_>, max: usize, errors: &mut FieldErrors) {
    if let Some(c) = f.string("content", false, errors)
        && c.len() > max
    {
        errors.push(f.error("content", format!("{} bytes; at most {max}", c.len())));
    }
    if let Some(t) = f.string("content_type", false, errors)
        && !["text/html", "text/plain", "application/json", "text/xml"].contains(&t.as_str())
    {
        errors.push(f.error(
            "content_type",
            format!("{t:?}; allowed: text/html, text/plain, application/json, text/xml"),
        ));
    }
}

fn ruleset_id(f: &Fields<'_>, key: &str, id: &str, refs: &mut Refs, errors: &mut FieldErrors) {
    if is_id(id) {
        refs.push((f.pointer(key), id.to_string()));
    } else {
        errors.push(f.error(
            key,
            format!("{id:?} is not a ruleset id (32 hex characters)"),
        ));
    }
}

/// A Cloudflare identifier: 32 lowercase hex characters.
pub fn is_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

const PRODUCTS: &[&str] = &[
    "bic",
    "hot",
    "rateLimit",
    "securityLevel",
    "uaBlock",
    "waf",
    "zoneLockdown",
];

fn skip(f: &Fields<'_>, phase: Phase, refs: &mut Refs, errors: &mut FieldErrors) {
    f.only(
        &["ruleset", "phases", "rulesets", "rules", "products"],
        errors,
    );
    let mut forms = 0;
    if let Some(r) = f.string("ruleset", false, errors) {
        forms += 1;
        if r != "current" {
            errors.push(f.error("ruleset", format!("{r:?}; the only value is \"current\"")));
        }
    }
    if let Some(items) = f.array("phases", errors) {
        forms += 1;
        for (i, item) in items.iter().enumerate() {
            let p = format!("{}/{i}", f.pointer("phases"));
            match item.as_str().map(|n| (n, Phase::from_name(n))) {
                Some((_, Some(p2))) if p2 == phase => errors.push(FieldError::new(
                    &p,
                    format!(
                        "{}: a rule cannot skip its own phase",
                        crate::input::path(&p)
                    ),
                )),
                Some((_, Some(_))) => {}
                Some((n, None)) => errors.push(FieldError::new(
                    &p,
                    format!(
                        "{}: unknown phase {n:?}; known: {}",
                        crate::input::path(&p),
                        crate::phases::known_phases().join(", ")
                    ),
                )),
                None => errors.push(FieldError::new(
                    &p,
                    format!(
                        "{}: must be a phase name, not {}",
                        crate::input::path(&p),
                        type_name(item)
                    ),
                )),
            }
        }
    }
    if let Some(items) = f.array("rulesets", errors) {
        forms += 1;
        for (i, item) in items.iter().enumerate() {
            let p = format!("{}/{i}", f.pointer("rulesets"));
            match item.as_str() {
                Some(id) if is_id(id) => refs.push((p, id.to_string())),
                _ => errors.push(FieldError::new(
                    &p,
                    format!(
                        "{}: must be a ruleset id (32 hex characters), not {item}",
                        crate::input::path(&p)
                    ),
                )),
            }
        }
    }
    if let Some(rules) = f.object("rules", errors) {
        forms += 1;
        let base = f.pointer("rules");
        let r = Fields::new(rules, &base);
        for (ruleset, ids) in rules {
            let p = r.pointer(ruleset);
            if is_id(ruleset) {
                refs.push((p.clone(), ruleset.clone()));
            } else {
                errors.push(r.error(ruleset, "keys must be ruleset ids (32 hex characters)"));
            }
            match ids.as_array() {
                Some(ids) if ids.iter().all(|id| id.as_str().is_some_and(is_id)) => {}
                _ => errors
                    .push(r.error(ruleset, "must be an array of rule ids (32 hex characters)")),
            }
        }
    }
    if let Some(items) = f.array("products", errors) {
        forms += 1;
        for (i, item) in items.iter().enumerate() {
            if !item.as_str().is_some_and(|p| PRODUCTS.contains(&p)) {
                let p = format!("{}/{i}", f.pointer("products"));
                errors.push(FieldError::new(
                    &p,
                    format!(
                        "{}: {item}; allowed: {}",
                        crate::input::path(&p),
                        PRODUCTS.join(", ")
                    ),
                ));
            }
        }
    }
    if forms == 0 && !f.map.is_empty() {
        // Unknown keys were reported already.
    } else if forms == 0 {
        errors.push(FieldError::new(
            &f.base,
            format!(
                "{}: give one of ruleset, phases, rulesets, rules, products",
                crate::input::path(&f.base)
            ),
        ));
    }
}

fn overrides(f: &Fields<'_>, errors: &mut FieldErrors) {
    f.only(
        &[
            "enabled",
            "action",
            "sensitivity_level",
            "categories",
            "rules",
        ],
        errors,
    );
    f.boolean("enabled", errors);
    override_action(f, errors);
    sensitivity(f, errors);
    if let Some(items) = f.array("categories", errors) {
        for (i, item) in items.iter().enumerate() {
            let p = format!("{}/{i}", f.pointer("categories"));
            if let Some(m) = crate::input::object(item, &p, errors) {
                let c = Fields::new(m, &p);
                c.only(
                    &["category", "action", "enabled", "sensitivity_level"],
                    errors,
                );
                c.string("category", true, errors);
                c.boolean("enabled", errors);
                override_action(&c, errors);
                sensitivity(&c, errors);
            }
        }
    }
    if let Some(items) = f.array("rules", errors) {
        for (i, item) in items.iter().enumerate() {
            let p = format!("{}/{i}", f.pointer("rules"));
            if let Some(m) = crate::input::object(item, &p, errors) {
                let r = Fields::new(m, &p);
                r.only(
                    &[
                        "id",
                        "action",
                        "enabled",
                        "score_threshold",
                        "sensitivity_level",
                    ],
                    errors,
                );
                if let Some(id) = r.string("id", true, errors)
                    && !is_id(&id)
                {
                    errors.push(
                        r.error("id", format!("{id:?} is not a rule id (32 hex characters)")),
                    );
                }
                r.boolean("enabled", errors);
                override_action(&r, errors);
                sensitivity(&r, errors);
                r.integer("score_threshold", 1, 100, errors);
            }
        }
    }
}

fn override_action(f: &Fields<'_>, errors: &mut FieldErrors) {
    const ALLOWED: &[&str] = &[
        "block",
        "challenge",
        "js_challenge",
        "managed_challenge",
        "log",
    ];
    if let Some(a) = f.string("action", false, errors)
        && !ALLOWED.contains(&a.as_str())
    {
        errors.push(f.error(
            "action",
            format!("{a:?}; an override can set: {}", ALLOWED.join(", ")),
        ));
    }
}

fn sensitivity(f: &Fields<'_>, errors: &mut FieldErrors) {
    if let Some(s) = f.string("sensitivity_level", false, errors)
        && !["default", "medium", "low", "eoff"].contains(&s.as_str())
    {
        errors.push(f.error(
            "sensitivity_level",
            format!("{s:?}; allowed: default, medium, low, eoff"),
        ));
    }
}

/// `{value: "..."}` or `{expression: "..."}` (exactly one), the latter a value expression.
fn value_or_expression(
    checker: &Checker<'_>,
    f: &Fields<'_>,
    key: &str,
    phase: Phase,
    errors: &mut FieldErrors,
) -> bool {
    let Some(m) = f.object(key, errors) else {
        return false;
    };
    let v = Fields::new(m, f.pointer(key));
    v.only(&["value", "expression"], errors);
    let value = v.string("value", false, errors);
    let expression = v.string("expression", false, errors);
    match (&value, &expression) {
        (Some(_), Some(_)) => errors.push(f.error(key, "give value or expression, not both")),
        (None, None) => errors.push(f.error(key, "give value or expression")),
        (None, Some(e)) => {
            checker.expression(e, Target::value_in(phase), &v.pointer("expression"), errors);
        }
        (Some(_), None) => {}
    }
    true
}

fn redirect(
    checker: &Checker<'_>,
    f: &Fields<'_>,
    phase: Phase,
    given: bool,
    errors: &mut FieldErrors,
) {
    f.only(&["from_value", "from_list"], errors);
    match (
        f.object("from_value", errors),
        f.object("from_list", errors),
    ) {
        (Some(_), Some(_)) => {
            errors.push(f.error("from_list", "give from_value or from_list, not both"))
        }
        (Some(v), None) => {
            if phase != Phase::HttpRequestDynamicRedirect {
                errors.push(f.error(
                    "from_value",
                    format!(
                        "single redirects belong to http_request_dynamic_redirect, not {phase}"
                    ),
                ));
            }
            let v = Fields::new(v, f.pointer("from_value"));
            v.only(
                &["target_url", "status_code", "preserve_query_string"],
                errors,
            );
            if !value_or_expression(checker, &v, "target_url", phase, errors) {
                v.missing("target_url", errors);
            } else if let Some(url) = v
                .get("target_url")
                .and_then(|t| t.get("value"))
                .and_then(Value::as_str)
                && !(url.starts_with("http://")
                    || url.starts_with("https://")
                    || url.starts_with('/'))
            {
                errors.push(FieldError::new(
                    format!("{}/value", v.pointer("target_url")),
                    format!(
                        "from_value.target_url.value: {url:?} must be an absolute http(s) URL or a path starting with /"
                    ),
                ));
            }
            status(&v, errors);
            v.boolean("preserve_query_string", errors);
        }
        (None, Some(l)) => {
            if phase != Phase::HttpRequestRedirect {
                errors.push(f.error(
                    "from_list",
                    format!("bulk redirects belong to http_request_redirect, not {phase}"),
                ));
            }
            let l = Fields::new(l, f.pointer("from_list"));
            l.only(&["name", "key"], errors);
            l.string("name", true, errors);
            if let Some(k) = l.string("key", true, errors) {
                checker.expression(&k, Target::value_in(phase), &l.pointer("key"), errors);
            }
        }
        (None, None) => {
            if given {
                errors.push(FieldError::new(
                    &f.base,
                    format!(
                        "{}: give from_value or from_list",
                        crate::input::path(&f.base)
                    ),
                ));
            }
        }
    }
}

fn status(f: &Fields<'_>, errors: &mut FieldErrors) {
    if let Some(code) = f.integer("status_code", 301, 308, errors)
        && ![301, 302, 303, 307, 308].contains(&code)
    {
        errors.push(f.error(
            "status_code",
            format!("{code}; allowed: 301, 302, 303, 307, 308"),
        ));
    }
}

fn rewrite(
    checker: &Checker<'_>,
    f: &Fields<'_>,
    phase: Phase,
    given: bool,
    errors: &mut FieldErrors,
) {
    f.only(&["uri", "headers"], errors);
    let uri = f.object("uri", errors);
    let headers = f.object("headers", errors);
    if let Some(u) = uri {
        if phase != Phase::HttpRequestTransform {
            errors.push(f.error(
                "uri",
                format!("URL rewrites belong to http_request_transform, not {phase}"),
            ));
        }
        let u = Fields::new(u, f.pointer("uri"));
        u.only(&["path", "query"], errors);
        let path = value_or_expression(checker, &u, "path", phase, errors);
        let query = value_or_expression(checker, &u, "query", phase, errors);
        if !path && !query {
            errors.push(f.error("uri", "give path, query or both"));
        }
        if let Some(p) = u
            .get("path")
            .and_then(|t| t.get("value"))
            .and_then(Value::as_str)
            && !p.starts_with('/')
        {
            errors.push(FieldError::new(
                format!("{}/value", u.pointer("path")),
                format!("uri.path.value: {p:?} must start with /"),
            ));
        }
    }
    if let Some(h) = headers {
        if !matches!(
            phase,
            Phase::HttpRequestLateTransform | Phase::HttpResponseHeadersTransform
        ) {
            errors.push(f.error(
                "headers",
                format!(
                    "header rewrites belong to http_request_late_transform or http_response_headers_transform, not {phase}"
                ),
            ));
        }
        let hs = Fields::new(h, f.pointer("headers"));
        if h.is_empty() {
            errors.push(f.error("headers", "give at least one header"));
        }
        for (name, op) in h {
            if name.is_empty() || !name.bytes().all(is_token_char) {
                errors.push(hs.error(name, "not a valid header name"));
            }
            let p = hs.pointer(name);
            let Some(m) = crate::input::object(op, &p, errors) else {
                continue;
            };
            let o = Fields::new(m, &p);
            o.only(&["operation", "value", "expression"], errors);
            match o.string("operation", true, errors).as_deref() {
                Some("remove") if o.get("value").is_some() || o.get("expression").is_some() => {
                    errors.push(o.error("operation", "remove takes no value or expression"));
                }
                Some("remove") => {}
                Some("set" | "add") => {
                    let value = o.string("value", false, errors);
                    let expression = o.string("expression", false, errors);
                    match (value, expression) {
                        (Some(_), Some(_)) => {
                            errors.push(o.error("expression", "give value or expression, not both"))
                        }
                        (None, None) => errors.push(o.error("value", "required (or expression)")),
                        (None, Some(e)) => {
                            checker.expression(
                                &e,
                                Target::value_in(phase),
                                &o.pointer("expression"),
                                errors,
                            );
                        }
                        (Some(v), None) => {
                            if v.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                                errors.push(o.error("value", "must not contain CR, LF or NUL"));
                            }
                        }
                    }
                }
                Some(other) => errors
                    .push(o.error("operation", format!("{other:?}; allowed: set, add, remove"))),
                None => {}
            }
        }
    }
    if given && uri.is_none() && headers.is_none() && f.map.is_empty() {
        errors.push(FieldError::new(
            &f.base,
            format!("{}: give uri or headers", crate::input::path(&f.base)),
        ));
    }
}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn route(f: &Fields<'_>, given: bool, errors: &mut FieldErrors) {
    f.only(&["host_header", "origin", "sni"], errors);
    if let Some(h) = f.string("host_header", false, errors)
        && (h.is_empty() || h.contains(|c: char| c.is_whitespace() || c == '/'))
    {
        errors.push(f.error("host_header", format!("{h:?} is not a hostname")));
    }
    if let Some(o) = f.object("origin", errors) {
        let o = Fields::new(o, f.pointer("origin"));
        o.only(&["host", "port"], errors);
        o.string("host", false, errors);
        o.integer("port", 1, 65_535, errors);
        if o.map.is_empty() {
            errors.push(f.error("origin", "give host, port or both"));
        }
    }
    if let Some(s) = f.object("sni", errors) {
        let s = Fields::new(s, f.pointer("sni"));
        s.only(&["value"], errors);
        s.string("value", true, errors);
    }
    if given && f.map.is_empty() {
        errors.push(FieldError::new(
            &f.base,
            format!(
                "{}: give host_header, origin or sni",
                crate::input::path(&f.base)
            ),
        ));
    }
}

const CONFIG_BOOLEANS: &[&str] = &[
    "automatic_https_rewrites",
    "bic",
    "disable_apps",
    "disable_rum",
    "disable_zaraz",
    "email_obfuscation",
    "fonts",
    "hotlink_protection",
    "mirage",
    "opportunistic_encryption",
    "rocket_loader",
    "server_side_excludes",
    "sxg",
    "content_converter",
    "request_body_buffering",
];

fn set_config(f: &Fields<'_>, given: bool, errors: &mut FieldErrors) {
    let mut allowed: Vec<&str> = CONFIG_BOOLEANS.to_vec();
    allowed.extend(["polish", "security_level", "ssl", "autominify"]);
    f.only(&allowed, errors);
    for key in CONFIG_BOOLEANS {
        f.boolean(key, errors);
    }
    one_of(f, "polish", &["off", "lossless", "lossy", "webp"], errors);
    one_of(
        f,
        "security_level",
        &[
            "off",
            "essentially_off",
            "low",
            "medium",
            "high",
            "under_attack",
        ],
        errors,
    );
    one_of(
        f,
        "ssl",
        &["off", "flexible", "full", "strict", "origin_pull"],
        errors,
    );
    if let Some(m) = f.object("autominify", errors) {
        let a = Fields::new(m, f.pointer("autominify"));
        a.only(&["html", "css", "js"], errors);
        for k in ["html", "css", "js"] {
            a.boolean(k, errors);
        }
    }
    if given && f.map.is_empty() {
        errors.push(FieldError::new(
            &f.base,
            format!("{}: give at least one setting", crate::input::path(&f.base)),
        ));
    }
}

fn one_of(f: &Fields<'_>, key: &str, allowed: &[&str], errors: &mut FieldErrors) {
    if let Some(v) = f.string(key, false, errors)
        && !allowed.contains(&v.as_str())
    {
        errors.push(f.error(key, format!("{v:?}; allowed: {}", allowed.join(", "))));
    }
}

fn ttl(f: &Fields<'_>, key: &str, modes: &[&str], errors: &mut FieldErrors) {
    let Some(m) = f.object(key, errors) else {
        return;
    };
    let t = Fields::new(m, f.pointer(key));
    t.only(&["mode", "default", "status_code_ttl"], errors);
    match t.string("mode", true, errors) {
        Some(mode) if !modes.contains(&mode.as_str()) => {
            errors.push(t.error("mode", format!("{mode:?}; allowed: {}", modes.join(", "))))
        }
        Some(mode) if mode == "override_origin" && t.get("default").is_none() => {
            errors.push(t.error("default", "required when mode is override_origin"))
        }
        _ => {}
    }
    t.integer("default", 0, 31_536_000, errors);
    if let Some(items) = t.array("status_code_ttl", errors) {
        for (i, item) in items.iter().enumerate() {
            let p = format!("{}/{i}", t.pointer("status_code_ttl"));
            if let Some(m) = crate::input::object(item, &p, errors) {
                let s = Fields::new(m, &p);
                s.only(&["status_code", "status_code_range", "value"], errors);
                s.integer("status_code", 100, 599, errors);
                s.integer("value", -1, 31_536_000, errors);
                if let Some(r) = s.object("status_code_range", errors) {
                    let r = Fields::new(r, s.pointer("status_code_range"));
                    r.only(&["from", "to"], errors);
                    r.integer("from", 100, 599, errors);
                    r.integer("to", 100, 599, errors);
                }
            }
        }
    }
}

fn cache_settings(f: &Fields<'_>, errors: &mut FieldErrors) {
    f.only(
        &[
            "cache",
            "edge_ttl",
            "browser_ttl",
            "cache_key",
            "cache_reserve",
            "serve_stale",
            "respect_strong_etags",
            "origin_error_page_passthru",
            "additional_cacheable_ports",
            "read_timeout",
            "origin_cache_control",
        ],
        errors,
    );
    f.boolean("cache", errors);
    ttl(
        f,
        "edge_ttl",
        &["respect_origin", "bypass_by_default", "override_origin"],
        errors,
    );
    ttl(
        f,
        "browser_ttl",
        &["respect_origin", "bypass", "override_origin"],
        errors,
    );
    f.object("cache_key", errors);
    f.object("cache_reserve", errors);
    if let Some(m) = f.object("serve_stale", errors) {
        let s = Fields::new(m, f.pointer("serve_stale"));
        s.only(&["disable_stale_while_updating"], errors);
        s.boolean("disable_stale_while_updating", errors);
    }
    f.boolean("respect_strong_etags", errors);
    f.boolean("origin_error_page_passthru", errors);
    f.boolean("origin_cache_control", errors);
    f.integer("read_timeout", 100, 6000, errors);
    if let Some(ports) = f.array("additional_cacheable_ports", errors) {
        for (i, p) in ports.iter().enumerate() {
            if !p.as_i64().is_some_and(|n| (1..=65_535).contains(&n)) {
                let ptr = format!("{}/{i}", f.pointer("additional_cacheable_ports"));
                errors.push(FieldError::new(
                    &ptr,
                    format!("{}: {p} is not a port (1-65535)", crate::input::path(&ptr)),
                ));
            }
        }
    }
}

fn serve_error(f: &Fields<'_>, given: bool, errors: &mut FieldErrors) {
    f.only(
        &["content", "content_type", "status_code", "asset_name"],
        errors,
    );
    let content_given = f.get("content").is_some();
    let asset = f.string("asset_name", false, errors);
    match (content_given, &asset) {
        (true, Some(_)) => {
            errors.push(f.error("asset_name", "give content or asset_name, not both"))
        }
        (false, None) if given => errors.push(f.error("content", "required (or asset_name)")),
        _ => {}
    }
    content(f, 10 * 1024, errors);
    f.integer("status_code", 400, 999, errors);
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgetrace_rules::MemoryLists;
    use serde_json::json;

    fn problems(action: &str, params: Value, phase: Phase) -> Vec<String> {
        let scheme = Scheme::cloudflare();
        let lists = MemoryLists::new();
        let checker = Checker {
            scheme: &scheme,
            lists: &lists,
        };
        let mut errors = Vec::new();
        let params = (!params.is_null()).then_some(params);
        check(&checker, action, params.as_ref(), "/ap", phase, &mut errors);
        errors.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn valid_parameters_pass() {
        use Phase::*;
        let ok = [
            ("block", json!(null), HttpRequestFirewallCustom),
            (
                "block",
                json!({"response": {"status_code": 403, "content": "{}", "content_type": "application/json"}}),
                HttpRequestFirewallCustom,
            ),
            ("managed_challenge", json!(null), HttpRequestFirewallCustom),
            (
                "skip",
                json!({"phases": ["http_ratelimit"], "products": ["waf"]}),
                HttpRequestFirewallCustom,
            ),
            (
                "skip",
                json!({"ruleset": "current"}),
                HttpRequestFirewallCustom,
            ),
            (
                "execute",
                json!({"id": "4814384a9e5d4991b9815dcfc25d2f1f", "overrides": {"action": "log", "rules": [{"id": "5de7edfa648c4d6891dc3e7f84534ffa", "enabled": false}]}}),
                HttpRequestFirewallManaged,
            ),
            (
                "redirect",
                json!({"from_value": {"target_url": {"expression": "concat(\"https://\", http.host, http.request.uri.path)"}, "status_code": 301, "preserve_query_string": true}}),
                HttpRequestDynamicRedirect,
            ),
            (
                "rewrite",
                json!({"uri": {"path": {"value": "/new"}, "query": {"expression": "regex_replace(http.request.uri.query, \"a\", \"b\")"}}}),
                HttpRequestTransform,
            ),
            (
                "rewrite",
                json!({"headers": {"x-added": {"operation": "set", "value": "1"}, "cookie": {"operation": "remove"}}}),
                HttpRequestLateTransform,
            ),
            (
                "route",
                json!({"host_header": "origin.example.test", "origin": {"port": 8080}}),
                HttpRequestOrigin,
            ),
            (
                "set_config",
                json!({"rocket_loader": false, "ssl": "strict"}),
                HttpConfigSettings,
            ),
            (
                "set_cache_settings",
                json!({"cache": true, "edge_ttl": {"mode": "override_origin", "default": 60}}),
                HttpRequestCacheSettings,
            ),
            (
                "serve_error",
                json!({"content": "<h1>oops</h1>", "content_type": "text/html", "status_code": 503}),
                HttpCustomErrors,
            ),
            ("score", json!({"increment": 3}), HttpRequestFirewallManaged),
        ];
        for (action, params, phase) in ok {
            assert_eq!(
                problems(action, params.clone(), phase),
                Vec::<String>::new(),
                "{action} {params}"
            );
        }
    }

    #[test]
    fn each_problem_names_its_field() {
        use Phase::*;
        let cases = [
            (
                "block",
                json!({"response": {"status_code": 200}}),
                HttpRequestFirewallCustom,
                "/ap/response/status_code: ap.response.status_code: 200 is out of range; allowed: 400-499",
            ),
            (
                "log",
                json!({"x": 1}),
                HttpRequestFirewallCustom,
                "/ap/x: ap.x: unknown field; allowed: ",
            ),
            (
                "skip",
                json!(null),
                HttpRequestFirewallCustom,
                "/ap: ap: required for action skip: one of ruleset, phases, rulesets, rules, products",
            ),
            (
                "skip",
                json!({"phases": ["http_request_firewall_custom"]}),
                HttpRequestFirewallCustom,
                "/ap/phases/0: ap.phases[0]: a rule cannot skip its own phase",
            ),
            (
                "execute",
                json!({"id": "nope"}),
                HttpRequestFirewallManaged,
                "/ap/id: ap.id: \"nope\" is not a ruleset id (32 hex characters)",
            ),
            (
                "redirect",
                json!({"from_value": {"target_url": {"expression": "http.hots"}}}),
                HttpRequestDynamicRedirect,
                "/ap/from_value/target_url/expression: ap.from_value.target_url.expression: unknown field \"http.hots\"",
            ),
            (
                "redirect",
                json!({"from_value": {"target_url": {"value": "https://x.test"}, "status_code": 304}}),
                HttpRequestDynamicRedirect,
                "/ap/from_value/status_code: ap.from_value.status_code: 304; allowed: 301, 302, 303, 307, 308",
            ),
            (
                "rewrite",
                json!({"headers": {"x-a": {"operation": "set", "value": "1"}}}),
                HttpRequestTransform,
                "/ap/headers: ap.headers: header rewrites belong to",
            ),
            (
                "rewrite",
                json!({"headers": {"bad header": {"operation": "replace"}}}),
                HttpRequestLateTransform,
                "/ap/headers/bad header: ap.headers.bad header: not a valid header name",
            ),
            (
                "route",
                json!({"origin": {"port": 0}}),
                HttpRequestOrigin,
                "/ap/origin/port: ap.origin.port: 0 is out of range; allowed: 1-65535",
            ),
            (
                "set_config",
                json!({"ssl": "maybe"}),
                HttpConfigSettings,
                "/ap/ssl: ap.ssl: \"maybe\"; allowed: off, flexible, full, strict, origin_pull",
            ),
            (
                "set_cache_settings",
                json!({"edge_ttl": {"mode": "override_origin"}}),
                HttpRequestCacheSettings,
                "/ap/edge_ttl/default: ap.edge_ttl.default: required when mode is override_origin",
            ),
            (
                "serve_error",
                json!({"status_code": 200, "content": "x"}),
                HttpCustomErrors,
                "/ap/status_code: ap.status_code: 200 is out of range; allowed: 400-999",
            ),
        ];
        for (action, params, phase, expected) in cases {
            let got = problems(action, params, phase);
            assert!(
                got.iter().any(|g| g.starts_with(expected)),
                "{action}: expected {expected:?} in {got:?}"
            );
        }
    }

    #[test]
    fn value_expressions_are_checked_for_their_phase() {
        // wildcard_replace is for URL rewrites and dynamic redirects, not header rewrites.
        let expr = r#"wildcard_replace(http.request.full_uri, "https://*/*", "/${2}")"#;
        let url = problems(
            "rewrite",
            json!({"uri": {"path": {"expression": expr}}}),
            Phase::HttpRequestTransform,
        );
        assert_eq!(url, Vec::<String>::new());
        let header = problems(
            "rewrite",
            json!({"headers": {"x-path": {"operation": "set", "expression": expr}}}),
            Phase::HttpRequestLateTransform,
        );
        assert_eq!(header.len(), 1, "{header:?}");
        assert!(
            header[0].starts_with("/ap/headers/x-path/expression: ap.headers.x-path.expression: "),
            "{header:?}"
        );
        assert!(header[0].contains("wildcard_replace"), "{header:?}");
    }
}
