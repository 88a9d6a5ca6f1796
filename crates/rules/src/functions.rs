//! Functions: their availability and their runtime behaviour.

use std::borrow::Cow;
use std::net::IpAddr;

use base64::Engine as _;
use regex::bytes::Regex;

use crate::scheme::{ExprKind, Phase, Target};
use crate::types::Value;

/// Where a function may be used.
pub(crate) struct Availability {
    pub filter: bool,
    pub value: bool,
    /// `None`: every phase.
    pub phases: Option<&'static [Phase]>,
    /// Human description of where it is allowed.
    pub where_: &'static str,
}

const TRANSFORM: &[Phase] = &[
    Phase::HttpRequestTransform,
    Phase::HttpRequestLateTransform,
    Phase::HttpResponseHeadersTransform,
];
const TRANSFORM_AND_REDIRECT: &[Phase] = &[
    Phase::HttpRequestTransform,
    Phase::HttpRequestLateTransform,
    Phase::HttpResponseHeadersTransform,
    Phase::HttpRequestDynamicRedirect,
];
const URL_REWRITE_AND_REDIRECT: &[Phase] = &[
    Phase::HttpRequestTransform,
    Phase::HttpRequestDynamicRedirect,
];
const WAF: &[Phase] = &[Phase::HttpRequestFirewallCustom, Phase::HttpRatelimit];
const TRANSFORM_AND_WAF: &[Phase] = &[
    Phase::HttpRequestTransform,
    Phase::HttpRequestLateTransform,
    Phase::HttpResponseHeadersTransform,
    Phase::HttpRequestFirewallCustom,
    Phase::HttpRatelimit,
];
const JOIN_PHASES: &[Phase] = &[
    Phase::HttpRequestTransform,
    Phase::HttpRequestLateTransform,
    Phase::HttpResponseHeadersTransform,
    Phase::HttpRequestFirewallCustom,
    Phase::HttpCustomErrors,
];
const SPLIT_PHASES: &[Phase] = &[Phase::HttpResponseHeadersTransform, Phase::HttpCustomErrors];
const ENCODE_PHASES: &[Phase] = &[
    Phase::HttpRequestTransform,
    Phase::HttpRequestLateTransform,
    Phase::HttpResponseHeadersTransform,
    Phase::HttpCustomErrors,
];

const EVERYWHERE: Availability = Availability {
    filter: true,
    value: true,
    phases: None,
    where_: "everywhere",
};

/// Every function name, for suggestions.
pub(crate) const NAMES: &[&str] = &[
    "any",
    "all",
    "cidr",
    "cidr6",
    "concat",
    "decode_base64",
    "encode_base64",
    "ends_with",
    "join",
    "len",
    "lookup_json_integer",
    "lookup_json_string",
    "lower",
    "regex_replace",
    "remove_bytes",
    "remove_query_args",
    "sha256",
    "split",
    "starts_with",
    "substring",
    "to_string",
    "upper",
    "url_decode",
    "uuidv4",
    "wildcard_replace",
];

pub(crate) fn availability(name: &str) -> Availability {
    let a = |filter, value, phases, where_| Availability {
        filter,
        value,
        phases: Some(phases),
        where_,
    };
    match name {
        "cidr" | "cidr6" => a(true, false, WAF, "custom rules and rate limiting rules"),
        "decode_base64" => a(
            true,
            true,
            TRANSFORM_AND_WAF,
            "Transform Rules, custom rules and rate limiting rules",
        ),
        "join" => a(
            true,
            true,
            JOIN_PHASES,
            "Transform Rules, custom rules and Custom Error Rules",
        ),
        "split" => a(
            true,
            true,
            SPLIT_PHASES,
            "response header Transform Rules and Custom Error Rules",
        ),
        "encode_base64" => a(
            true,
            true,
            ENCODE_PHASES,
            "Transform Rules and Custom Error Rules",
        ),
        "sha256" => a(
            false,
            true,
            TRANSFORM,
            "rewrite expressions of Transform Rules",
        ),
        "uuidv4" => a(
            false,
            true,
            TRANSFORM,
            "rewrite expressions of Transform Rules",
        ),
        "remove_query_args" => a(
            false,
            true,
            TRANSFORM,
            "rewrite expressions of Transform Rules",
        ),
        "regex_replace" | "to_string" => a(
            false,
            true,
            TRANSFORM_AND_REDIRECT,
            "rewrite expressions of Transform Rules and target URL expressions of dynamic URL redirects",
        ),
        "wildcard_replace" => a(
            false,
            true,
            URL_REWRITE_AND_REDIRECT,
            "rewrite expressions of URL rewrites and target URL expressions of dynamic URL redirects",
        ),
        _ => EVERYWHERE,
    }
}

/// Why `name` may not be used in `target`, if it may not.
pub(crate) fn check_availability(name: &str, target: Target) -> Option<String> {
    let a = availability(name);
    let kind_ok = match target.kind {
        ExprKind::Filter => a.filter,
        ExprKind::Value => a.value,
    };
    if !kind_ok {
        return Some(match target.kind {
            ExprKind::Filter => format!(
                "{name}() cannot be used in a filter expression: it is only available in {}",
                a.where_
            ),
            ExprKind::Value => format!(
                "{name}() cannot be used in a value expression: it is only available in filters of {}",
                a.where_
            ),
        });
    }
    if let (Some(phase), Some(phases)) = (target.phase, a.phases) {
        if !phases.contains(&phase) {
            return Some(format!(
                "{name}() is not available in phase {phase}: it is only available in {}",
                a.where_
            ));
        }
    }
    None
}

/// A checked function call with its literal arguments compiled.
#[derive(Debug, Clone)]
pub(crate) enum Func {
    Any,
    All,
    Lower,
    Upper,
    Len,
    Concat,
    StartsWith,
    EndsWith,
    Substring,
    Split { sep: Vec<u8>, limit: usize },
    Join,
    UrlDecode { recursive: bool, unicode: bool },
    DecodeBase64,
    EncodeBase64 { url_safe: bool, pad: bool },
    LookupJson { integer: bool, keys: Vec<JsonKey> },
    RemoveBytes,
    RemoveQueryArgs { names: Vec<Vec<u8>> },
    ToString,
    RegexReplace { re: Regex, replacement: Vec<u8> },
    WildcardReplace { re: Regex, replacement: Vec<u8> },
    Cidr { v4: u8, v6: u8 },
    Uuidv4,
    Sha256,
}

#[derive(Debug, Clone)]
pub(crate) enum JsonKey {
    Name(String),
    Pos(usize),
}

type Arg<'a, 'v> = Option<Cow<'a, Value<'v>>>;

fn bytes<'a>(a: &'a Arg<'_, '_>) -> Option<&'a [u8]> {
    a.as_deref().and_then(Value::as_bytes)
}

fn int(a: &Arg<'_, '_>) -> Option<i64> {
    match a.as_deref() {
        Some(Value::Int(i)) => Some(*i),
        _ => None,
    }
}

/// `%XX` decoding; `plus` also turns `+` into a space.
pub(crate) fn percent_decode(input: &[u8], plus: bool) -> Vec<u8> {
    let replaced: Cow<'_, [u8]> = if plus && input.contains(&b'+') {
        Cow::Owned(
            input
                .iter()
                .map(|&b| if b == b'+' { b' ' } else { b })
                .collect(),
        )
    } else {
        Cow::Borrowed(input)
    };
    percent_encoding::percent_decode(&replaced).collect()
}

fn unicode_percent_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' && matches!(input.get(i + 1), Some(b'u' | b'U')) {
            let hex = input
                .get(i + 2..i + 6)
                .and_then(|h| std::str::from_utf8(h).ok());
            if let Some(c) = hex
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .and_then(char::from_u32)
            {
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                i += 6;
                continue;
            }
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

fn url_decode(input: &[u8], recursive: bool, unicode: bool) -> Vec<u8> {
    let mut cur = input.to_vec();
    for _ in 0..16 {
        let mut next = percent_decode(&cur, true);
        if unicode {
            next = unicode_percent_decode(&next);
        }
        let done = next == cur;
        cur = next;
        if !recursive || done {
            break;
        }
    }
    cur
}

fn cidr(ip: IpAddr, v4: u8, v6: u8) -> IpAddr {
    let len = if ip.is_ipv4() { v4 } else { v6 };
    crate::ops::cidr_range(ip, len).0
}

fn remove_query_args(query: &[u8], names: &[Vec<u8>]) -> Vec<u8> {
    let kept: Vec<&[u8]> = query
        .split(|&b| b == b'&')
        .filter(|kv| {
            let name = kv.split(|&b| b == b'=').next().unwrap_or(kv);
            !kv.is_empty() && !names.iter().any(|n| n == name)
        })
        .collect();
    kept.join(&b'&')
}

fn lookup_json(doc: &[u8], keys: &[JsonKey], integer: bool) -> Option<Value<'static>> {
    let root: serde_json::Value = serde_json::from_slice(doc).ok()?;
    let mut cur = &root;
    for k in keys {
        cur = match k {
            JsonKey::Name(n) => cur.as_object()?.get(n)?,
            JsonKey::Pos(i) => cur.as_array()?.get(*i)?,
        };
    }
    if integer {
        match cur {
            serde_json::Value::Number(n) if !n.to_string().contains(['.', 'e', 'E']) => {
                n.as_i64().map(Value::Int)
            }
            _ => None,
        }
    } else {
        cur.as_str().map(Value::bytes)
    }
}

fn substring(b: &[u8], start: i64, end: Option<i64>) -> Vec<u8> {
    let len = i64::try_from(b.len()).unwrap_or(i64::MAX);
    let norm = |i: i64| if i < 0 { (len + i).max(0) } else { i.min(len) };
    let s = norm(start);
    let e = end.map_or(len, norm);
    if s >= e {
        return Vec::new();
    }
    // s and e are within 0..=len, so the conversions cannot fail.
    let (s, e) = (
        usize::try_from(s).unwrap_or(0),
        usize::try_from(e).unwrap_or(0),
    );
    b[s..e].to_vec()
}

impl Func {
    /// Applies the function to evaluated arguments (missing → `None`).
    /// Returns `None` (missing) when a required argument is missing.
    pub(crate) fn apply<'v>(&self, args: &[Arg<'_, 'v>]) -> Option<Value<'v>> {
        let first = args.first()?;
        match self {
            Func::Any | Func::All => {
                let items = match first.as_deref() {
                    Some(Value::Array(items)) => items,
                    _ => return Some(Value::Bool(false)),
                };
                let t = |v: &Value| *v == Value::Bool(true);
                Some(Value::Bool(if matches!(self, Func::Any) {
                    items.iter().any(t)
                } else {
                    items.iter().all(t)
                }))
            }
            Func::Lower => Some(Value::bytes(bytes(first)?.to_ascii_lowercase())),
            Func::Upper => Some(Value::bytes(bytes(first)?.to_ascii_uppercase())),
            Func::Len => match first.as_deref()? {
                Value::Bytes(b) => i64::try_from(b.len()).ok().map(Value::Int),
                Value::Array(a) => i64::try_from(a.len()).ok().map(Value::Int),
                Value::Map(m) => i64::try_from(m.len()).ok().map(Value::Int),
                _ => None,
            },
            Func::Concat => {
                if matches!(first.as_deref()?, Value::Array(_)) {
                    let mut out = Vec::new();
                    for a in args {
                        match a.as_deref()? {
                            Value::Array(items) => out.extend(items.iter().cloned()),
                            _ => return None,
                        }
                    }
                    Some(Value::Array(out))
                } else {
                    let len = args
                        .iter()
                        .map(|a| bytes(a).map(<[u8]>::len))
                        .sum::<Option<usize>>()?;
                    let mut out = Vec::with_capacity(len);
                    for a in args {
                        out.extend_from_slice(bytes(a)?);
                    }
                    Some(Value::bytes(out))
                }
            }
            Func::StartsWith => Some(Value::Bool(bytes(first)?.starts_with(bytes(args.get(1)?)?))),
            Func::EndsWith => Some(Value::Bool(bytes(first)?.ends_with(bytes(args.get(1)?)?))),
            Func::Substring => {
                let start = int(args.get(1)?)?;
                let end = match args.get(2) {
                    Some(a) => Some(int(a)?),
                    None => None,
                };
                Some(Value::bytes(substring(bytes(first)?, start, end)))
            }
            Func::Split { sep, limit } => {
                let b = bytes(first)?;
                let mut parts = Vec::new();
                let mut rest = b;
                while parts.len() + 1 < *limit {
                    match memchr::memmem::find(rest, sep) {
                        Some(i) => {
                            parts.push(Value::bytes(&rest[..i]));
                            rest = &rest[i + sep.len()..];
                        }
                        None => break,
                    }
                }
                parts.push(Value::bytes(rest));
                Some(Value::Array(parts))
            }
            Func::Join => {
                let sep = bytes(args.get(1)?)?;
                let Value::Array(items) = first.as_deref()? else {
                    return None;
                };
                let parts: Vec<&[u8]> = items.iter().filter_map(Value::as_bytes).collect();
                Some(Value::bytes(parts.join(sep)))
            }
            Func::UrlDecode { recursive, unicode } => Some(Value::bytes(url_decode(
                bytes(first)?,
                *recursive,
                *unicode,
            ))),
            Func::DecodeBase64 => {
                let b = bytes(first)?;
                let trimmed: Vec<u8> = b
                    .iter()
                    .copied()
                    .filter(|c| !c.is_ascii_whitespace())
                    .collect();
                let engines = [
                    base64::engine::general_purpose::STANDARD,
                    base64::engine::general_purpose::STANDARD_NO_PAD,
                    base64::engine::general_purpose::URL_SAFE,
                    base64::engine::general_purpose::URL_SAFE_NO_PAD,
                ];
                engines
                    .iter()
                    .find_map(|e| e.decode(&trimmed).ok())
                    .map(Value::bytes)
            }
            Func::EncodeBase64 { url_safe, pad } => {
                use base64::engine::general_purpose as gp;
                let b = bytes(first)?;
                let s = match (url_safe, pad) {
                    (false, true) => gp::STANDARD.encode(b),
                    (false, false) => gp::STANDARD_NO_PAD.encode(b),
                    (true, true) => gp::URL_SAFE.encode(b),
                    (true, false) => gp::URL_SAFE_NO_PAD.encode(b),
                };
                Some(Value::from(s))
            }
            Func::LookupJson { integer, keys } => lookup_json(bytes(first)?, keys, *integer),
            Func::RemoveBytes => {
                let b = bytes(first)?;
                let remove = bytes(args.get(1)?)?;
                Some(Value::bytes(
                    b.iter()
                        .copied()
                        .filter(|c| !remove.contains(c))
                        .collect::<Vec<u8>>(),
                ))
            }
            Func::RemoveQueryArgs { names } => {
                Some(Value::bytes(remove_query_args(bytes(first)?, names)))
            }
            Func::ToString => Some(Value::from(match first.as_deref()? {
                Value::Int(i) => i.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Ip(ip) => ip.to_string(),
                _ => return None,
            })),
            Func::RegexReplace { re, replacement } => Some(Value::bytes(
                re.replace(bytes(first)?, replacement.as_slice())
                    .into_owned(),
            )),
            Func::WildcardReplace { re, replacement } => {
                let b = bytes(first)?;
                Some(Value::bytes(if re.is_match(b) {
                    re.replace(b, replacement.as_slice()).into_owned()
                } else {
                    b.to_vec()
                }))
            }
            Func::Cidr { v4, v6 } => match first.as_deref()? {
                Value::Ip(ip) => Some(Value::Ip(cidr(*ip, *v4, *v6))),
                _ => None,
            },
            Func::Uuidv4 => {
                let seed = bytes(first)?;
                let mut raw = [0u8; 16];
                if seed.len() >= 16 {
                    raw.copy_from_slice(&seed[..16]);
                } else {
                    use sha2::Digest;
                    raw.copy_from_slice(&sha2::Sha256::digest(seed)[..16]);
                }
                Some(Value::from(
                    uuid::Builder::from_random_bytes(raw)
                        .into_uuid()
                        .to_string(),
                ))
            }
            Func::Sha256 => {
                use sha2::Digest;
                Some(Value::bytes(sha2::Sha256::digest(bytes(first)?).to_vec()))
            }
        }
    }
}
