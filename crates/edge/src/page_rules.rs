//! Page rules, as Cloudflare documents them: a URL pattern with `*` wildcards, the settings to
//! apply when a request matches, a priority and a status. For each request only the first
//! matching active rule applies, in priority order (higher number first).
//!
//! ```
//! use edgetrace_edge::page_rules::{PageRule, RequestUrl, Resolved, applicable, validate};
//! let body = serde_json::json!({
//!     "targets": [{"target": "url", "constraint": {"operator": "matches", "value": "http://*.example.com/*.jpg"}}],
//!     "actions": [{"id": "forwarding_url", "value": {"url": "http://example.com/images/$1/$2.jpg", "status_code": 301}}],
//!     "status": "active",
//! });
//! let rule = PageRule::new("r1", validate(&body, "example.com").unwrap(), 0);
//! let url = RequestUrl::parse("http://cloud.example.com/flare.jpg").unwrap();
//! let applied = applicable(std::slice::from_ref(&rule), &url).unwrap();
//! assert_eq!(applied.captures, ["cloud", "flare"]);
//! assert_eq!(applied.actions, [Resolved::Redirect {
//!     location: "http://example.com/images/cloud/flare.jpg".into(),
//!     status: 301,
//! }]);
//! ```
//!
//! A pattern is `[scheme://]host[:port][/path][?query]`: without a scheme it matches http and
//! https, without a port every port; `*` matches any run of characters (none included), in any
//! part, and `$1`…`$4` in a forwarding URL are what the wildcards matched. A pattern without a
//! path means the path `/` (`example.com` is the home page only; `example.com/*` every page).
//! Host names compare without regard to case, paths and queries exactly.

use crate::input::{Fields, object, path};
use crate::{FieldError, FieldErrors};
use serde_json::{Map, Value, json};
use std::fmt;

/// Wildcards a pattern may hold (Cloudflare's limit).
pub const MAX_WILDCARDS: usize = 4;
/// Page rules a zone may hold (Cloudflare's Enterprise limit).
pub const MAX_PAGE_RULES: usize = 125;
/// The longest URL pattern or forwarding URL.
pub const MAX_URL: usize = 2048;

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    /// The scheme a URL starts with (`http://`, any case), and the rest.
    fn split(text: &str) -> Option<(Scheme, &str)> {
        let lower = text.get(..8).unwrap_or(text).to_ascii_lowercase();
        if lower.starts_with("http://") {
            Some((Scheme::Http, &text[7..]))
        } else if lower.starts_with("https://") {
            Some((Scheme::Https, &text[8..]))
        } else {
            None
        }
    }
}

/// A page rule's URL pattern, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlPattern {
    /// As given (and returned by the API).
    text: String,
    scheme: Option<Scheme>,
    /// Whether the pattern names a port (then the request's port, explicit or default, is
    /// part of what is matched).
    has_port: bool,
    /// The normalized pattern split at each `*`: one more piece than wildcards.
    pieces: Vec<String>,
}

impl fmt::Display for UrlPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl UrlPattern {
    /// Parses a pattern; `zone`, when given, is the zone the pattern's host must be in.
    pub fn parse(text: &str, zone: Option<&str>) -> Result<UrlPattern, String> {
        if text.is_empty() || text.len() > MAX_URL {
            return Err(format!("a URL pattern has 1-{MAX_URL} characters"));
        }
        if let Some(c) = text
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || *c == '#')
        {
            return Err(format!("{text:?} contains {c:?}, which no URL pattern can"));
        }
        let stars = text.matches('*').count();
        if stars > MAX_WILDCARDS {
            return Err(format!(
                "{text:?} has {stars} wildcards; a pattern may have at most {MAX_WILDCARDS}"
            ));
        }
        let (scheme, rest) = match Scheme::split(text) {
            Some((s, rest)) => (Some(s), rest),
            None if text.contains("://") => {
                return Err(format!(
                    "{text:?}: the scheme must be http:// or https:// (or none, for both)"
                ));
            }
            None => (None, text),
        };
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, mut tail) = (rest[..end].to_ascii_lowercase(), rest[end..].to_string());
        let (host, has_port) = match authority.rsplit_once(':') {
            // An IPv6 literal's colons are inside brackets.
            Some((host, port)) if !port.contains(']') => {
                let valid = port == "*"
                    || (!port.is_empty()
                        && port.bytes().all(|b| b.is_ascii_digit())
                        && port.parse::<u16>().is_ok_and(|p| p > 0));
                if !valid {
                    return Err(format!(
                        "{text:?}: the port {port:?} must be a number from 1 to 65535 or *"
                    ));
                }
                (host.to_string(), true)
            }
            _ => (authority.clone(), false),
        };
        if host.is_empty() {
            return Err(format!("{text:?} has no host"));
        }
        if let Some(c) = host.chars().find(|c| {
            !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '*' | '[' | ']' | ':'))
        }) {
            return Err(format!("{text:?}: the host contains {c:?}"));
        }
        if let Some(zone) = zone {
            let bare = host.trim_start_matches(['*', '.']);
            let inside = bare.is_empty() || bare == zone || bare.ends_with(&format!(".{zone}"));
            if !inside {
                return Err(format!("{text:?}: the host {host:?} is not in zone {zone}"));
            }
        }
        if tail.is_empty() && !authority.ends_with('*') {
            tail.push('/');
        } else if tail.starts_with('?') {
            tail.insert(0, '/');
        }
        let normalized = match scheme {
            Some(s) => format!("{}://{authority}{tail}", s.as_str()),
            None => format!("{authority}{tail}"),
        };
        Ok(UrlPattern {
            text: text.to_string(),
            scheme,
            has_port,
            pieces: normalized.split('*').map(str::to_string).collect(),
        })
    }

    /// How many `*` the pattern has.
    pub fn wildcards(&self) -> usize {
        self.pieces.len() - 1
    }

    /// Whether `url` matches, and what each wildcard matched (greedily, leftmost first, as a
    /// regular expression's `(.*)` would).
    pub fn captures(&self, url: &RequestUrl) -> Option<Vec<String>> {
        if self.scheme.is_some_and(|s| s != url.scheme) {
            return None;
        }
        let mut subject = String::new();
        if self.scheme.is_some() {
            subject.push_str(url.scheme.as_str());
            subject.push_str("://");
        }
        subject.push_str(&url.host);
        if self.has_port {
            subject.push_str(&format!(":{}", url.port()));
        }
        subject.push_str(&url.path);
        if let Some(q) = &url.query {
            subject.push('?');
            subject.push_str(q);
        }
        glob(&self.pieces, &subject)
    }
}

/// Matches `subject` against `pieces` (a pattern split at its wildcards). Each wildcard takes
/// as much as it can: the pieces are placed from the right, each as far right as the ones
/// after it allow.
fn glob(pieces: &[String], subject: &str) -> Option<Vec<String>> {
    let (first, rest) = pieces.split_first()?;
    let Some((last, middle)) = rest.split_last() else {
        return (subject == first).then(Vec::new);
    };
    if subject.len() < first.len() + last.len()
        || !subject.starts_with(first.as_str())
        || !subject.ends_with(last.as_str())
    {
        return None;
    }
    // starts[i]: where middle piece i begins.
    let mut starts = vec![0; middle.len()];
    let mut limit = subject.len() - last.len();
    for (i, piece) in middle.iter().enumerate().rev() {
        let at = subject.get(..limit)?.rfind(piece.as_str())?;
        if at < first.len() {
            return None;
        }
        starts[i] = at;
        limit = at;
    }
    let mut captures = Vec::with_capacity(rest.len());
    let mut from = first.len();
    for (i, piece) in middle.iter().enumerate() {
        captures.push(subject[from..starts[i]].to_string());
        from = starts[i] + piece.len();
    }
    captures.push(subject[from..subject.len() - last.len()].to_string());
    Some(captures)
}

/// A request's URL, as page rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestUrl {
    pub scheme: Scheme,
    /// Lowercase.
    pub host: String,
    /// Explicit port, if the URL has one.
    pub explicit_port: Option<u16>,
    /// From `/`, as sent (not decoded).
    pub path: String,
    pub query: Option<String>,
}

impl RequestUrl {
    /// Parses an absolute `http://` or `https://` URL; a fragment is dropped.
    pub fn parse(url: &str) -> Result<RequestUrl, String> {
        let (scheme, rest) =
            Scheme::split(url).ok_or_else(|| format!("{url:?} is not an http(s) URL"))?;
        let rest = rest.split('#').next().unwrap_or("");
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let authority = &rest[..end];
        let tail = &rest[end..];
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !p.contains(']') => (
                h,
                Some(
                    p.parse::<u16>()
                        .map_err(|_| format!("{url:?}: bad port {p:?}"))?,
                ),
            ),
            _ => (authority, None),
        };
        if host.is_empty() || host.contains('@') {
            return Err(format!("{url:?} has no usable host"));
        }
        let (path, query) = match tail.split_once('?') {
            Some((p, q)) => (p, Some(q.to_string())),
            None => (tail, None),
        };
        Ok(RequestUrl {
            scheme,
            host: host.to_ascii_lowercase(),
            explicit_port: port,
            path: if path.is_empty() {
                "/".into()
            } else {
                path.into()
            },
            query,
        })
    }

    /// The port: explicit, or the scheme's default.
    pub fn port(&self) -> u16 {
        self.explicit_port.unwrap_or(self.scheme.default_port())
    }
}

impl fmt::Display for RequestUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.host)?;
        if let Some(p) = self.explicit_port {
            write!(f, ":{p}")?;
        }
        f.write_str(&self.path)?;
        if let Some(q) = &self.query {
            write!(f, "?{q}")?;
        }
        Ok(())
    }
}

/// One setting of a page rule, validated.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Redirects to `url`, in which `$1`… stand for what the wildcards matched.
    ForwardingUrl { url: String, status_code: u16 },
    /// Redirects `http://` requests to `https://` (301).
    AlwaysUseHttps,
    /// Any other setting: its id and value (absent for `disable_*`), as given.
    Setting { id: String, value: Option<Value> },
}

impl Action {
    pub fn id(&self) -> &str {
        match self {
            Action::ForwardingUrl { .. } => "forwarding_url",
            Action::AlwaysUseHttps => "always_use_https",
            Action::Setting { id, .. } => id,
        }
    }

    /// The action as the API writes it.
    pub fn to_json(&self) -> Value {
        match self {
            Action::ForwardingUrl { url, status_code } => json!({
                "id": "forwarding_url",
                "value": {"url": url, "status_code": status_code},
            }),
            Action::AlwaysUseHttps => json!({"id": "always_use_https"}),
            Action::Setting { id, value: None } => json!({"id": id}),
            Action::Setting { id, value: Some(v) } => json!({"id": id, "value": v}),
        }
    }
}

/// `active` or `disabled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Active,
    Disabled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Disabled => "disabled",
        }
    }
}

/// A page rule's content, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct PageRuleSpec {
    pub target: UrlPattern,
    pub actions: Vec<Action>,
    /// Higher wins. Default 1.
    pub priority: i64,
    /// Default `disabled`, as on Cloudflare.
    pub status: Status,
}

impl PageRuleSpec {
    /// `targets` as the API writes it.
    pub fn targets_json(&self) -> Value {
        json!([{
            "target": "url",
            "constraint": {"operator": "matches", "value": self.target.text},
        }])
    }

    /// `actions` as the API writes it.
    pub fn actions_json(&self) -> Value {
        Value::Array(self.actions.iter().map(Action::to_json).collect())
    }
}

/// A page rule of a zone.
#[derive(Debug, Clone, PartialEq)]
pub struct PageRule {
    pub id: String,
    pub spec: PageRuleSpec,
    /// Creation time (Unix ms), which orders rules of equal priority: the older first.
    pub created_at: i64,
}

impl PageRule {
    pub fn new(id: impl Into<String>, spec: PageRuleSpec, created_at: i64) -> PageRule {
        PageRule {
            id: id.into(),
            spec,
            created_at,
        }
    }
}

/// What an applicable action does to this request.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved {
    /// Answer with a redirect (`forwarding_url`, or `always_use_https` on an http request).
    Redirect { location: String, status: u16 },
    /// `always_use_https` on a request that is https already: nothing to do.
    AlreadyHttps,
    /// A setting for the rest of the request's processing.
    Setting { id: String, value: Option<Value> },
}

/// The page rule that applies to a request, with its actions resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied<'a> {
    pub rule: &'a PageRule,
    /// What each wildcard matched, `$1` first.
    pub captures: Vec<String>,
    pub actions: Vec<Resolved>,
}

fn precedence(a: &PageRule, b: &PageRule) -> std::cmp::Ordering {
    b.spec
        .priority
        .cmp(&a.spec.priority)
        .then(a.created_at.cmp(&b.created_at))
        .then_with(|| a.id.cmp(&b.id))
}

/// Orders rules as they apply: priority, higher first; then the older first; then by id.
pub fn sort(rules: &mut [PageRule]) {
    rules.sort_by(precedence);
}

/// The page rule that applies to `url` among a zone's `rules` — the first active one that
/// matches, in [`sort`] order — and what its actions do.
pub fn applicable<'a>(rules: &'a [PageRule], url: &RequestUrl) -> Option<Applied<'a>> {
    let mut order: Vec<&PageRule> = rules.iter().collect();
    order.sort_by(|a, b| precedence(a, b));
    order
        .into_iter()
        .filter(|r| r.spec.status == Status::Active)
        .find_map(|rule| {
            let captures = rule.spec.target.captures(url)?;
            let actions = rule
                .spec
                .actions
                .iter()
                .map(|a| resolve(a, url, &captures))
                .collect();
            Some(Applied {
                rule,
                captures,
                actions,
            })
        })
}

fn resolve(action: &Action, url: &RequestUrl, captures: &[String]) -> Resolved {
    match action {
        Action::ForwardingUrl {
            url: to,
            status_code,
        } => Resolved::Redirect {
            location: substitute(to, captures),
            status: *status_code,
        },
        Action::AlwaysUseHttps if url.scheme == Scheme::Https => Resolved::AlreadyHttps,
        Action::AlwaysUseHttps => {
            let https = RequestUrl {
                scheme: Scheme::Https,
                explicit_port: url.explicit_port.filter(|p| *p != 80),
                ..url.clone()
            };
            Resolved::Redirect {
                location: https.to_string(),
                status: 301,
            }
        }
        Action::Setting { id, value } => Resolved::Setting {
            id: id.clone(),
            value: value.clone(),
        },
    }
}

/// A forwarding URL's pieces: literal text and wildcard references (`$1` → 1).
fn references(url: &str) -> Vec<Result<String, usize>> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut chars = url.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'$') => {
                chars.next();
                text.push('$');
            }
            '$' if chars.peek().is_some_and(char::is_ascii_digit) => {
                let mut n = 0usize;
                while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                    n = n.saturating_mul(10).saturating_add(d as usize);
                    chars.next();
                }
                out.push(Ok(std::mem::take(&mut text)));
                out.push(Err(n));
            }
            c => text.push(c),
        }
    }
    out.push(Ok(text));
    out
}

/// `url` with `$N` replaced by the N-th capture and `\$` by `$`.
pub fn substitute(url: &str, captures: &[String]) -> String {
    references(url)
        .into_iter()
        .map(|p| match p {
            Ok(text) => text,
            Err(n) => captures.get(n.wrapping_sub(1)).cloned().unwrap_or_default(),
        })
        .collect()
}

/// Settings whose value is `on` or `off`.
const ON_OFF: &[&str] = &[
    "automatic_https_rewrites",
    "browser_check",
    "cache_by_device_type",
    "cache_deception_armor",
    "email_obfuscation",
    "explicit_cache_control",
    "ip_geolocation",
    "mirage",
    "opportunistic_encryption",
    "origin_error_page_pass_thru",
    "respect_strong_etag",
    "response_buffering",
    "rocket_loader",
    "sort_query_string_for_cache",
    "true_client_ip_header",
    "waf",
];

/// Settings that take no value.
const NO_VALUE: &[&str] = &[
    "always_use_https",
    "disable_apps",
    "disable_performance",
    "disable_security",
    "disable_zaraz",
];

/// Settings whose value is one of a few words.
const CHOICES: &[(&str, &[&str])] = &[
    (
        "cache_level",
        &[
            "bypass",
            "basic",
            "simplified",
            "aggressive",
            "cache_everything",
        ],
    ),
    (
        "security_level",
        &[
            "off",
            "essentially_off",
            "low",
            "medium",
            "high",
            "under_attack",
        ],
    ),
    ("ssl", &["off", "flexible", "full", "strict", "origin_pull"]),
    ("polish", &["off", "lossless", "lossy"]),
];

/// Browser cache TTLs Cloudflare offers, in seconds (0: respect the origin's headers).
pub const BROWSER_CACHE_TTLS: &[i64] = &[
    0, 30, 60, 120, 300, 1200, 1800, 3600, 7200, 10800, 14400, 18000, 28800, 43200, 57600, 72000,
    86400, 172800, 259200, 345600, 432000, 691200, 1382400, 2073600, 2678400, 5356800, 16070400,
    31536000,
];

/// Settings whose value is a string (a cookie-name pattern, a host name, an origin).
const STRINGS: &[&str] = &[
    "bypass_cache_on_cookie",
    "cache_on_cookie",
    "host_header_override",
    "resolve_override",
];

/// Settings edgetrace knows of but does not accept.
const UNSUPPORTED: &[&str] = &["cache_key_fields"];

/// Every setting id, for messages.
fn known_ids() -> Vec<&'static str> {
    let mut ids: Vec<&str> = ON_OFF
        .iter()
        .chain(NO_VALUE)
        .chain(STRINGS)
        .copied()
        .chain(CHOICES.iter().map(|(id, _)| *id))
        .chain([
            "forwarding_url",
            "browser_cache_ttl",
            "edge_cache_ttl",
            "cache_ttl_by_status",
        ])
        .collect();
    ids.sort_unstable();
    ids
}

/// Validates one action at `base` (`/actions/0`).
fn action(
    item: &Value,
    base: &str,
    target: Option<&UrlPattern>,
    errors: &mut FieldErrors,
) -> Option<Action> {
    let map = object(item, base, errors)?;
    let fields = Fields::new(map, base);
    fields.only(&["id", "value"], errors);
    let id = fields.string("id", true, errors)?;
    let value = fields.get("value");
    let vptr = fields.pointer("value");
    let bad = |message: String| FieldError::new(&vptr, format!("{}: {message}", path(&vptr)));
    let need = |errors: &mut FieldErrors| -> Option<&Value> {
        if value.is_none() {
            fields.missing("value", errors);
        }
        value
    };
    if NO_VALUE.contains(&id.as_str()) {
        if let Some(v) = value {
            errors.push(bad(format!("{id} takes no value, not {v}")));
            return None;
        }
        return Some(if id == "always_use_https" {
            Action::AlwaysUseHttps
        } else {
            Action::Setting { id, value: None }
        });
    }
    if ON_OFF.contains(&id.as_str()) {
        let v = need(errors)?;
        if !matches!(v.as_str(), Some("on" | "off")) {
            errors.push(bad(format!("must be \"on\" or \"off\", not {v}")));
            return None;
        }
        return Some(Action::Setting {
            id,
            value: Some(v.clone()),
        });
    }
    if let Some((_, choices)) = CHOICES.iter().find(|(c, _)| *c == id) {
        let v = need(errors)?;
        if !v.as_str().is_some_and(|s| choices.contains(&s)) {
            errors.push(bad(format!(
                "must be one of {}, not {v}",
                choices.join(", ")
            )));
            return None;
        }
        return Some(Action::Setting {
            id,
            value: Some(v.clone()),
        });
    }
    if STRINGS.contains(&id.as_str()) {
        let v = need(errors)?;
        match v.as_str() {
            Some(s) if !s.trim().is_empty() && s.len() <= 1024 => {}
            _ => {
                errors.push(bad(format!(
                    "must be a non-empty string of at most 1024 characters, not {v}"
                )));
                return None;
            }
        }
        return Some(Action::Setting {
            id,
            value: Some(v.clone()),
        });
    }
    if UNSUPPORTED.contains(&id.as_str()) {
        errors.push(fields.error(
            "id",
            format!("{id} is not supported by edgetrace's page rules"),
        ));
        return None;
    }
    match id.as_str() {
        "browser_cache_ttl" => {
            let v = need(errors)?;
            if !v.as_i64().is_some_and(|n| BROWSER_CACHE_TTLS.contains(&n)) {
                errors.push(bad(format!(
                    "must be one of Cloudflare's browser cache TTLs in seconds (0 respects the origin's headers): {}; not {v}",
                    BROWSER_CACHE_TTLS.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
                )));
                return None;
            }
            Some(Action::Setting {
                id,
                value: Some(v.clone()),
            })
        }
        "edge_cache_ttl" => {
            let v = need(errors)?;
            if !v.as_i64().is_some_and(|n| (1..=31_536_000).contains(&n)) {
                errors.push(bad(format!(
                    "must be a whole number of seconds from 1 to 31536000, not {v}"
                )));
                return None;
            }
            Some(Action::Setting {
                id,
                value: Some(v.clone()),
            })
        }
        "cache_ttl_by_status" => {
            let v = need(errors)?;
            let before = errors.len();
            cache_ttl_by_status(v, &vptr, errors);
            (errors.len() == before).then(|| Action::Setting {
                id,
                value: Some(v.clone()),
            })
        }
        "forwarding_url" => {
            let v = need(errors)?;
            let before = errors.len();
            let map = object(v, &vptr, errors)?;
            let f = Fields::new(map, &vptr);
            f.only(&["url", "status_code"], errors);
            let url = f.string("url", true, errors);
            let status = match f.get("status_code") {
                None => {
                    f.missing("status_code", errors);
                    None
                }
                Some(s) => match s.as_u64() {
                    Some(c @ (301 | 302)) => Some(c as u16),
                    _ => {
                        errors.push(f.error("status_code", format!("must be 301 or 302, not {s}")));
                        None
                    }
                },
            };
            if let Some(u) = &url {
                match Scheme::split(u) {
                    Some((_, rest)) if !rest.is_empty() && !rest.starts_with('/') => {}
                    _ => errors.push(f.error(
                        "url",
                        format!("{u:?} must be an absolute http:// or https:// URL"),
                    )),
                }
                if u.len() > MAX_URL || u.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    errors.push(f.error(
                        "url",
                        format!("must be at most {MAX_URL} characters, without spaces"),
                    ));
                }
                let available = target.map(UrlPattern::wildcards);
                for r in references(u).into_iter().filter_map(Result::err) {
                    match available {
                        Some(n) if r == 0 || r > n => errors.push(f.error(
                            "url",
                            format!(
                                "${r} refers to no wildcard: the target has {n} (${{1}}…${{{n}}}); write \\$ for a literal $"
                            ),
                        )),
                        _ => {}
                    }
                }
            }
            match (url, status) {
                (Some(url), Some(status_code)) if errors.len() == before => {
                    Some(Action::ForwardingUrl { url, status_code })
                }
                _ => None,
            }
        }
        other => {
            errors.push(fields.error(
                "id",
                format!(
                    "{other:?} is not a page rule setting; known: {}",
                    known_ids().join(", ")
                ),
            ));
            None
        }
    }
}

/// `cache_ttl_by_status`: `{"200": 3600, "500-599": "no-store", …}`, codes 100-999, TTLs in
/// seconds (0 or more) or `no-cache` / `no-store`.
fn cache_ttl_by_status(v: &Value, pointer: &str, errors: &mut FieldErrors) {
    let Some(map) = object(v, pointer, errors) else {
        return;
    };
    if map.is_empty() {
        errors.push(FieldError::new(
            pointer,
            format!("{}: at least one status code", path(pointer)),
        ));
    }
    let fields = Fields::new(map, pointer);
    let code = |s: &str| {
        s.parse::<u16>()
            .ok()
            .filter(|c| (100..=999).contains(c) && s.len() == 3)
    };
    for (key, ttl) in map {
        let ok_key = match key.split_once('-') {
            Some((a, b)) => matches!((code(a), code(b)), (Some(a), Some(b)) if a <= b),
            None => code(key).is_some(),
        };
        if !ok_key {
            errors.push(fields.error(
                key,
                "the key must be a status code (100-999) or a range such as 500-599",
            ));
        }
        let ok_ttl = matches!(ttl.as_str(), Some("no-cache" | "no-store"))
            || ttl.as_i64().is_some_and(|n| n >= 0);
        if !ok_ttl {
            errors.push(fields.error(
                key,
                format!(
                    "the TTL must be seconds (0 or more), \"no-cache\" or \"no-store\", not {ttl}"
                ),
            ));
        }
    }
}

/// Validates a page rule body (`POST`/`PUT`, or the result of applying a `PATCH` to the
/// current rule) for a rule of `zone`.
pub fn validate(body: &Value, zone: &str) -> Result<PageRuleSpec, FieldErrors> {
    let mut errors = FieldErrors::new();
    let Some(map) = object(body, "", &mut errors) else {
        return Err(errors);
    };
    let fields = Fields::new(map, "");
    fields.only(
        &["targets", "actions", "priority", "status", "id"],
        &mut errors,
    );
    let target = targets(&fields, zone, &mut errors);
    let mut actions = Vec::new();
    match fields.array("actions", &mut errors) {
        None if fields.get("actions").is_none() => fields.missing("actions", &mut errors),
        None => {}
        Some(items) if items.is_empty() => {
            errors.push(fields.error("actions", "at least one action is needed"))
        }
        Some(items) => {
            let mut seen: Vec<(String, usize)> = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let base = format!("/actions/{i}");
                if let Some(a) = action(item, &base, target.as_ref(), &mut errors) {
                    if let Some((_, first)) = seen.iter().find(|(id, _)| id == a.id()) {
                        errors.push(FieldError::new(
                            format!("{base}/id"),
                            format!(
                                "actions[{i}].id: {} is also actions[{first}]; each setting once",
                                a.id()
                            ),
                        ));
                        continue;
                    }
                    seen.push((a.id().to_string(), i));
                    actions.push((i, a));
                }
            }
            if actions.len() > 1
                && let Some((i, a)) = actions.iter().find(|(_, a)| {
                    matches!(a, Action::ForwardingUrl { .. } | Action::AlwaysUseHttps)
                })
            {
                errors.push(FieldError::new(
                    format!("/actions/{i}/id"),
                    format!(
                        "actions[{i}].id: {} cannot be combined with other settings; a page rule either redirects or changes settings",
                        a.id()
                    ),
                ));
            }
        }
    }
    let priority = match fields.get("priority") {
        None => 1,
        Some(_) => fields
            .integer("priority", 1, i64::from(i32::MAX), &mut errors)
            .unwrap_or(1),
    };
    let status = match fields.string("status", false, &mut errors).as_deref() {
        None | Some("disabled") => Status::Disabled,
        Some("active") => Status::Active,
        Some(other) => {
            errors.push(fields.error(
                "status",
                format!("{other:?} must be \"active\" or \"disabled\""),
            ));
            Status::Disabled
        }
    };
    match target {
        Some(target) if errors.is_empty() => Ok(PageRuleSpec {
            target,
            actions: actions.into_iter().map(|(_, a)| a).collect(),
            priority,
            status,
        }),
        _ => Err(errors),
    }
}

fn targets(fields: &Fields<'_>, zone: &str, errors: &mut FieldErrors) -> Option<UrlPattern> {
    let items = match fields.array("targets", errors) {
        None => {
            if fields.get("targets").is_none() {
                fields.missing("targets", errors);
            }
            return None;
        }
        Some(items) => items,
    };
    if items.len() != 1 {
        errors.push(fields.error(
            "targets",
            format!("a page rule has exactly one target, not {}", items.len()),
        ));
        return None;
    }
    let base = "/targets/0";
    let map: &Map<String, Value> = object(&items[0], base, errors)?;
    let target = Fields::new(map, base);
    target.only(&["target", "constraint"], errors);
    match target.string("target", true, errors).as_deref() {
        Some("url") | None => {}
        Some(other) => errors.push(target.error("target", format!("{other:?} must be \"url\""))),
    }
    let Some(constraint) = target.object("constraint", errors) else {
        if target.get("constraint").is_none() {
            target.missing("constraint", errors);
        }
        return None;
    };
    let cbase = "/targets/0/constraint";
    let c = Fields::new(constraint, cbase);
    c.only(&["operator", "value"], errors);
    match c.string("operator", true, errors).as_deref() {
        Some("matches") | None => {}
        Some(op @ ("contains" | "equals" | "not_equal" | "not_contain")) => errors.push(c.error(
            "operator",
            format!("{op:?} is not supported by edgetrace; use \"matches\" with a URL pattern (* wildcards)"),
        )),
        Some(other) => errors.push(c.error(
            "operator",
            format!("{other:?} must be \"matches\""),
        )),
    }
    let value = c.string("value", true, errors)?;
    match UrlPattern::parse(&value, Some(zone)) {
        Ok(p) => Some(p),
        Err(e) => {
            errors.push(c.error("value", e));
            None
        }
    }
}

/// Reads back a stored rule (JSON written by [`PageRuleSpec::targets_json`] and
/// [`PageRuleSpec::actions_json`]) for `zone`.
pub fn from_stored(
    targets: &Value,
    actions: &Value,
    priority: i64,
    status: &str,
    zone: &str,
) -> Result<PageRuleSpec, FieldErrors> {
    validate(
        &json!({"targets": targets, "actions": actions, "priority": priority, "status": status}),
        zone,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(p: &str) -> UrlPattern {
        UrlPattern::parse(p, None).unwrap()
    }

    fn url(u: &str) -> RequestUrl {
        RequestUrl::parse(u).unwrap()
    }

    fn matches(p: &str, u: &str) -> bool {
        pattern(p).captures(&url(u)).is_some()
    }

    /// Cloudflare's "Wildcard matching and referencing" examples.
    #[test]
    fn documented_wildcard_examples() {
        for u in ["example.com/test", "example.com/toast", "example.com/trust"] {
            assert!(matches("example.com/t*st", &format!("http://{u}")), "{u}");
        }
        assert!(!matches("example.com/t*st", "http://example.com/tests"));
        // example.com/foo/* does not match example.com/foo, but example.com/foo* does.
        assert!(!matches("example.com/foo/*", "http://example.com/foo"));
        assert!(matches("example.com/foo*", "http://example.com/foo"));
        // Without a scheme: http and https.
        assert!(matches("example.com/*", "http://example.com/a"));
        assert!(matches("example.com/*", "https://example.com/a"));
        // example.com alone is not every page: only the home page.
        assert!(matches("example.com", "https://example.com/"));
        assert!(matches("example.com", "https://example.com"));
        assert!(!matches("example.com", "https://example.com/page"));
        // Every page of a domain and its subdomains.
        assert!(matches("*example.com/*", "https://www.example.com/a/b"));
        assert!(matches("*example.com/*", "https://example.com/"));
        // The wildcard reaches into the query string.
        assert!(matches("example.com/*", "https://example.com/a?b=c"));
        assert!(!matches("example.com/a", "https://example.com/a?b=c"));
        // http://*.example.com/* forwarded to http://example.com/images/$1/$2.jpg. The
        // documentation says http://cloud.example.com/flare.jpg goes to …/cloud/flare.jpg,
        // which takes $2 to be "flare"; but the second * matches "flare.jpg" (no ".jpg" in
        // the pattern stops it), so the literal reading gives flare.jpg.jpg.
        let p = pattern("http://*.example.com/*");
        let caps = p
            .captures(&url("http://cloud.example.com/flare.jpg"))
            .unwrap();
        assert_eq!(caps, ["cloud", "flare.jpg"]);
        assert_eq!(
            substitute("http://example.com/images/$1/$2.jpg", &caps),
            "http://example.com/images/cloud/flare.jpg.jpg"
        );
        let caps = pattern("http://*.example.com/*.jpg")
            .captures(&url("http://cloud.example.com/flare.jpg"))
            .unwrap();
        assert_eq!(
            substitute("http://example.com/images/$1/$2.jpg", &caps),
            "http://example.com/images/cloud/flare.jpg"
        );
        assert!(
            p.captures(&url("https://cloud.example.com/flare.jpg"))
                .is_none()
        );
        // \$ is a literal $.
        assert_eq!(
            substitute("https://x.test/\\$1/$1", &caps),
            "https://x.test/$1/cloud"
        );
    }

    #[test]
    fn ports_hosts_and_queries() {
        // No port in the pattern: every port.
        assert!(matches("example.com/*", "https://example.com:8443/a"));
        // A port: the request's, explicit or default.
        assert!(matches("example.com:443/*", "https://example.com/a"));
        assert!(!matches("example.com:443/*", "http://example.com/a"));
        assert!(matches("example.com:8080/*", "http://example.com:8080/a"));
        assert!(matches("example.com:*/*", "http://example.com:8080/a"));
        // Hosts compare without case; paths exactly.
        assert!(matches("EXAMPLE.com/A", "http://example.COM/A"));
        assert!(!matches("example.com/A", "http://example.com/a"));
        assert!(matches(
            "example.com/search?q=*",
            "http://example.com/search?q=x"
        ));
        assert!(matches("example.com?q=*", "http://example.com/?q=x"));
        assert!(matches("example.com*", "http://example.com.evil.test/x"));
        assert!(matches("https://*", "https://anything.test:1/x?y"));
        assert!(!matches("https://*", "http://anything.test/"));
        // Fragments never reach the server.
        assert!(matches("example.com/a", "http://example.com/a#frag"));
    }

    #[test]
    fn wildcards_are_greedy_and_leftmost() {
        let p = pattern("example.com/*/*");
        assert_eq!(
            p.captures(&url("http://example.com/a/b/c")).unwrap(),
            ["a/b", "c"]
        );
        let p = pattern("*.example.com/*.jpg");
        assert_eq!(
            p.captures(&url("http://a.b.example.com/x.jpg.jpg"))
                .unwrap(),
            ["a.b", "x.jpg"]
        );
        let p = pattern("example.com/**");
        assert_eq!(
            p.captures(&url("http://example.com/ab")).unwrap(),
            ["ab", ""]
        );
        assert!(
            pattern("example.com/a*a")
                .captures(&url("http://example.com/a"))
                .is_none()
        );
        assert_eq!(
            pattern("example.com/a*a")
                .captures(&url("http://example.com/aa"))
                .unwrap(),
            [""]
        );
    }

    #[test]
    fn bad_patterns_say_why() {
        let err = |p: &str, zone: Option<&str>| UrlPattern::parse(p, zone).unwrap_err();
        assert!(err("ftp://example.com/*", None).contains("http:// or https://"));
        assert!(err("example.com/*/*/*/*/*", None).contains("at most 4"));
        assert!(err("example.com:99999/", None).contains("1 to 65535"));
        assert!(err("example.com/a b", None).contains("' '"));
        assert!(err("/path", None).contains("no host"));
        assert_eq!(
            err("www.other.test/*", Some("example.test")),
            "\"www.other.test/*\": the host \"www.other.test\" is not in zone example.test"
        );
        assert!(UrlPattern::parse("*example.test/*", Some("example.test")).is_ok());
        assert!(UrlPattern::parse("https://www.example.test/*", Some("example.test")).is_ok());
        assert!(UrlPattern::parse("*.example.test/*", Some("example.test")).is_ok());
        assert!(UrlPattern::parse("*/images/*", Some("example.test")).is_ok());
        assert!(UrlPattern::parse("notexample.test/*", Some("example.test")).is_err());
    }

    fn body(target: &str, actions: Value) -> Value {
        json!({
            "targets": [{"target": "url", "constraint": {"operator": "matches", "value": target}}],
            "actions": actions,
            "status": "active",
        })
    }

    #[test]
    fn actions_are_validated_against_cloudflares_settings() {
        let spec = validate(
            &body(
                "*example.test/images/*",
                json!([
                    {"id": "cache_level", "value": "bypass"},
                    {"id": "browser_cache_ttl", "value": 14400},
                    {"id": "edge_cache_ttl", "value": 7200},
                    {"id": "disable_security"},
                    {"id": "ssl", "value": "strict"},
                    {"id": "cache_ttl_by_status", "value": {"200": 3600, "500-599": "no-store"}}
                ]),
            ),
            "example.test",
        )
        .unwrap();
        assert_eq!(spec.actions.len(), 6);
        assert_eq!((spec.priority, spec.status), (1, Status::Active));
        assert_eq!(spec.actions_json()[3], json!({"id": "disable_security"}));

        let got = |b: Value| -> Vec<String> {
            validate(&b, "example.test")
                .unwrap_err()
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(
            got(body(
                "example.test/*",
                json!([
                    {"id": "cache_level", "value": "everything"},
                    {"id": "browser_cache_ttl", "value": 7},
                    {"id": "rocket_loader"},
                    {"id": "disable_apps", "value": "on"},
                    {"id": "cache_key_fields", "value": {}},
                    {"id": "cache_level", "value": "bypass"},
                    {"id": "cache_ttl_by_status", "value": {"2000": 1, "500-400": -1}}
                ])
            )),
            [
                "/actions/0/value: actions[0].value: must be one of bypass, basic, simplified, aggressive, cache_everything, not \"everything\"",
                "/actions/1/value: actions[1].value: must be one of Cloudflare's browser cache TTLs in seconds (0 respects the origin's headers): 0, 30, 60, 120, 300, 1200, 1800, 3600, 7200, 10800, 14400, 18000, 28800, 43200, 57600, 72000, 86400, 172800, 259200, 345600, 432000, 691200, 1382400, 2073600, 2678400, 5356800, 16070400, 31536000; not 7",
                "/actions/2/value: actions[2].value: required",
                "/actions/3/value: actions[3].value: disable_apps takes no value, not \"on\"",
                "/actions/4/id: actions[4].id: cache_key_fields is not supported by edgetrace's page rules",
                "/actions/6/value/2000: actions[6].value[2000]: the key must be a status code (100-999) or a range such as 500-599",
                "/actions/6/value/500-400: actions[6].value.500-400: the key must be a status code (100-999) or a range such as 500-599",
                "/actions/6/value/500-400: actions[6].value.500-400: the TTL must be seconds (0 or more), \"no-cache\" or \"no-store\", not -1",
            ]
        );
        // Duplicates are caught when both are valid.
        assert_eq!(
            got(body(
                "example.test/*",
                json!([{"id": "waf", "value": "on"}, {"id": "waf", "value": "off"}])
            )),
            ["/actions/1/id: actions[1].id: waf is also actions[0]; each setting once"]
        );
        let unknown = got(body(
            "example.test/*",
            json!([{"id": "cache_lvl", "value": "x"}]),
        ));
        assert!(
            unknown[0].starts_with("/actions/0/id: actions[0].id: \"cache_lvl\" is not a page rule setting; known: always_use_https, automatic_https_rewrites,"),
            "{unknown:?}"
        );
    }

    #[test]
    fn redirects_stand_alone_and_reference_existing_wildcards() {
        let got = |b: Value| -> Vec<String> {
            validate(&b, "example.test")
                .unwrap_err()
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(
            got(body(
                "example.test/*",
                json!([
                    {"id": "cache_level", "value": "bypass"},
                    {"id": "forwarding_url", "value": {"url": "https://x.test/$1", "status_code": 301}}
                ])
            )),
            [
                "/actions/1/id: actions[1].id: forwarding_url cannot be combined with other settings; a page rule either redirects or changes settings"
            ]
        );
        assert_eq!(
            got(body(
                "example.test/*",
                json!([{"id": "always_use_https"}, {"id": "ssl", "value": "full"}])
            ))[0],
            "/actions/0/id: actions[0].id: always_use_https cannot be combined with other settings; a page rule either redirects or changes settings"
        );
        assert_eq!(
            got(body(
                "example.test/*",
                json!([{"id": "forwarding_url", "value": {"url": "https://x.test/$2", "status_code": 307}}])
            )),
            [
                "/actions/0/value/status_code: actions[0].value.status_code: must be 301 or 302, not 307",
                "/actions/0/value/url: actions[0].value.url: $2 refers to no wildcard: the target has 1 (${1}…${1}); write \\$ for a literal $",
            ]
        );
        assert_eq!(
            got(body(
                "example.test/*",
                json!([{"id": "forwarding_url", "value": {"url": "/relative", "status_code": 302}}])
            )),
            [
                "/actions/0/value/url: actions[0].value.url: \"/relative\" must be an absolute http:// or https:// URL"
            ]
        );
        // Targets.
        assert_eq!(
            got(json!({"targets": [], "actions": [{"id": "waf", "value": "on"}]})),
            ["/targets: targets: a page rule has exactly one target, not 0"]
        );
        assert_eq!(
            got(json!({
                "targets": [{"target": "url", "constraint": {"operator": "contains", "value": "x"}}],
                "actions": [],
                "priority": 0,
                "status": "on"
            })),
            [
                "/targets/0/constraint/operator: targets[0].constraint.operator: \"contains\" is not supported by edgetrace; use \"matches\" with a URL pattern (* wildcards)",
                "/targets/0/constraint/value: targets[0].constraint.value: \"x\": the host \"x\" is not in zone example.test",
                "/actions: actions: at least one action is needed",
                "/priority: priority: 0 is out of range; allowed: 1-2147483647",
                "/status: status: \"on\" must be \"active\" or \"disabled\"",
            ]
        );
        assert_eq!(got(json!([])), [": body: must be an object, not an array"]);
    }

    fn rule(id: &str, target: &str, actions: Value, priority: i64, created: i64) -> PageRule {
        let mut b = body(target, actions);
        b["priority"] = json!(priority);
        PageRule::new(id, validate(&b, "example.test").unwrap(), created)
    }

    /// Cloudflare: a catch-all rule A (`/images/*`) and a more specific rule B
    /// (`/images/special/*`) with a higher priority, so that B overrides A. Only one rule
    /// applies per request.
    #[test]
    fn the_highest_priority_match_alone_applies() {
        let a = rule(
            "a",
            "example.test/images/*",
            json!([{"id": "cache_level", "value": "cache_everything"}]),
            1,
            1,
        );
        let b = rule(
            "b",
            "example.test/images/special/*",
            json!([{"id": "cache_level", "value": "bypass"}]),
            2,
            2,
        );
        let rules = vec![a, b];
        let special =
            applicable(&rules, &url("https://example.test/images/special/x.png")).unwrap();
        assert_eq!(special.rule.id, "b");
        assert_eq!(
            special.actions,
            [Resolved::Setting {
                id: "cache_level".into(),
                value: Some(json!("bypass"))
            }]
        );
        let other = applicable(&rules, &url("https://example.test/images/x.png")).unwrap();
        assert_eq!(other.rule.id, "a");
        assert!(applicable(&rules, &url("https://example.test/css/x.css")).is_none());

        // Swap the priorities: the catch-all shadows the specific rule.
        let mut swapped = rules.clone();
        swapped[0].spec.priority = 3;
        assert_eq!(
            applicable(&swapped, &url("https://example.test/images/special/x.png"))
                .unwrap()
                .rule
                .id,
            "a"
        );
        // A disabled rule never applies; the next match does.
        swapped[0].spec.status = Status::Disabled;
        assert_eq!(
            applicable(&swapped, &url("https://example.test/images/special/x.png"))
                .unwrap()
                .rule
                .id,
            "b"
        );
        // Equal priorities: the older rule first.
        let mut tie = rules.clone();
        tie[1].spec.priority = 1;
        tie[1].created_at = 0;
        assert_eq!(
            applicable(&tie, &url("https://example.test/images/special/x"))
                .unwrap()
                .rule
                .id,
            "b"
        );
        let mut listed = tie.clone();
        sort(&mut listed);
        assert_eq!(listed[0].id, "b");
    }

    #[test]
    fn redirects_resolve_against_the_request() {
        let fwd = rule(
            "f",
            "*example.test/old/*",
            json!([{"id": "forwarding_url", "value": {"url": "https://www.example.test/new/$2?from=$1", "status_code": 302}}]),
            1,
            0,
        );
        let applied = applicable(
            std::slice::from_ref(&fwd),
            &url("http://shop.example.test/old/a/b?x=1"),
        )
        .unwrap();
        assert_eq!(applied.captures, ["shop.", "a/b?x=1"]);
        assert_eq!(
            applied.actions,
            [Resolved::Redirect {
                location: "https://www.example.test/new/a/b?x=1?from=shop.".into(),
                status: 302
            }]
        );
        let https = rule(
            "h",
            "http://*example.test/*",
            json!([{"id": "always_use_https"}]),
            1,
            0,
        );
        let rules = [https];
        assert_eq!(
            applicable(&rules, &url("http://example.test:80/a?b"))
                .unwrap()
                .actions,
            [Resolved::Redirect {
                location: "https://example.test/a?b".into(),
                status: 301
            }]
        );
        assert_eq!(
            applicable(&rules, &url("http://example.test:8080/"))
                .unwrap()
                .actions,
            [Resolved::Redirect {
                location: "https://example.test:8080/".into(),
                status: 301
            }]
        );
        let any = rule(
            "h",
            "*example.test/*",
            json!([{"id": "always_use_https"}]),
            1,
            0,
        );
        assert_eq!(
            applicable(&[any], &url("https://example.test/"))
                .unwrap()
                .actions,
            [Resolved::AlreadyHttps]
        );
    }

    #[test]
    fn stored_rules_read_back() {
        let r = rule(
            "r",
            "example.test/*",
            json!([{"id": "security_level", "value": "high"}]),
            5,
            0,
        );
        let back = from_stored(
            &r.spec.targets_json(),
            &r.spec.actions_json(),
            r.spec.priority,
            r.spec.status.as_str(),
            "example.test",
        )
        .unwrap();
        assert_eq!(back, r.spec);
    }

    #[test]
    fn request_urls() {
        assert!(RequestUrl::parse("ftp://x/").is_err());
        assert!(RequestUrl::parse("http://x:99999/").is_err());
        assert!(RequestUrl::parse("http:///a").is_err());
        let u = url("HTTPS://[2001:db8::1]:8443/a?b");
        assert_eq!(
            (u.host.as_str(), u.port(), u.path.as_str()),
            ("[2001:db8::1]", 8443, "/a")
        );
        assert_eq!(url("http://[::1]/").port(), 80);
        assert!(matches("[::1]/*", "http://[::1]/x"));
    }
}
