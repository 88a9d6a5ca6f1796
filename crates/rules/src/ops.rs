//! Compiled comparison operators, shared by fast execution and explanation.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::net::IpAddr;

use regex::bytes::Regex;

use crate::ast::CmpOp;
use crate::lists::Lists;
use crate::types::Value;

/// `re.is_match(h)` behind its own small function: there the regex
/// crate's generic `is_match` gets inlined, which avoids passing its search
/// input through memory (a measurable store-forwarding stall when it was
/// called out of line from the larger closures).
#[inline(never)]
pub(crate) fn regex_is_match(re: &Regex, h: &[u8]) -> bool {
    re.is_match(h)
}

/// A set of IP ranges, sorted and merged, per family.
#[derive(Debug, Clone, Default)]
pub(crate) struct IpSet {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

fn merge<T: Ord + Copy>(mut ranges: Vec<(T, T)>, succ: impl Fn(T) -> Option<T>) -> Vec<(T, T)> {
    ranges.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (a, b) in ranges {
        match out.last_mut() {
            Some((_, end)) if succ(*end).is_none_or(|n| a <= n) => *end = (*end).max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

fn find<T: Ord + Copy>(ranges: &[(T, T)], x: T) -> bool {
    if ranges.len() <= 4 {
        return ranges.iter().any(|&(a, b)| a <= x && x <= b);
    }
    let i = ranges.partition_point(|&(a, _)| a <= x);
    i > 0 && x <= ranges[i - 1].1
}

impl IpSet {
    pub(crate) fn new(ranges: Vec<(IpAddr, IpAddr)>) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (a, b) in ranges {
            match (a, b) {
                (IpAddr::V4(a), IpAddr::V4(b)) => v4.push((u32::from(a), u32::from(b))),
                (IpAddr::V6(a), IpAddr::V6(b)) => v6.push((u128::from(a), u128::from(b))),
                _ => {}
            }
        }
        IpSet {
            v4: merge(v4, |x| x.checked_add(1)),
            v6: merge(v6, |x| x.checked_add(1)),
        }
    }

    /// The ranges (first and last address), IPv4 first.
    pub(crate) fn ranges(&self) -> impl Iterator<Item = (IpAddr, IpAddr)> + '_ {
        let v4 = self.v4.iter().map(|&(a, b)| {
            (
                IpAddr::from(std::net::Ipv4Addr::from(a)),
                IpAddr::from(std::net::Ipv4Addr::from(b)),
            )
        });
        let v6 = self.v6.iter().map(|&(a, b)| {
            (
                IpAddr::from(std::net::Ipv6Addr::from(a)),
                IpAddr::from(std::net::Ipv6Addr::from(b)),
            )
        });
        v4.chain(v6)
    }

    #[inline]
    pub(crate) fn contains(&self, ip: &IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => find(&self.v4, u32::from(*a)),
            IpAddr::V6(a) => find(&self.v6, u128::from(*a)),
        }
    }
}

pub(crate) fn cidr_range(ip: IpAddr, len: u8) -> (IpAddr, IpAddr) {
    match ip {
        IpAddr::V4(a) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            let lo = u32::from(a) & mask;
            (IpAddr::V4(lo.into()), IpAddr::V4((lo | !mask).into()))
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            let lo = u128::from(a) & mask;
            (IpAddr::V6(lo.into()), IpAddr::V6((lo | !mask).into()))
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum BytesSet {
    Small(Vec<Vec<u8>>),
    Hashed(HashSet<Vec<u8>>),
}

impl BytesSet {
    pub(crate) fn new(items: Vec<Vec<u8>>) -> Self {
        if items.len() <= 8 {
            BytesSet::Small(items)
        } else {
            BytesSet::Hashed(items.into_iter().collect())
        }
    }

    #[inline]
    fn contains(&self, b: &[u8]) -> bool {
        match self {
            BytesSet::Small(v) => v.iter().any(|x| x == b),
            BytesSet::Hashed(h) => h.contains(b),
        }
    }
}

/// A comparison with its right-hand side compiled.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Order(CmpOp, Value<'static>),
    Contains(Vec<u8>),
    StartsWith(Vec<u8>),
    EndsWith(Vec<u8>),
    Matches(Regex),
    Wildcard(Wildcard),
    InBytes(BytesSet),
    InInt(Vec<(i64, i64)>),
    InIp(IpSet),
    InList(String),
}

fn order(a: &Value<'_>, b: &Value<'_>) -> Option<Ordering> {
    match (a, b) {
        (Value::Bytes(a), Value::Bytes(b)) => Some(a.as_ref().cmp(b.as_ref())),
        (Value::Int(a), Value::Int(b)) => Some(a.cmp(b)),
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        (Value::Ip(a), Value::Ip(b)) => (a.is_ipv4() == b.is_ipv4()).then(|| a.cmp(b)),
        _ => None,
    }
}

impl Op {
    pub(crate) fn int_ranges(ranges: Vec<(i64, i64)>) -> Op {
        Op::InInt(merge(ranges, |x| x.checked_add(1)))
    }

    /// Whether `v` (a present value of the checked type) satisfies the comparison.
    #[inline]
    pub(crate) fn test(&self, v: &Value<'_>, lists: Option<&dyn Lists>) -> bool {
        match self {
            Op::Order(op, rhs) => {
                let Some(o) = order(v, rhs) else { return false };
                match op {
                    CmpOp::Eq => o == Ordering::Equal,
                    CmpOp::Ne => o != Ordering::Equal,
                    CmpOp::Lt => o == Ordering::Less,
                    CmpOp::Le => o != Ordering::Greater,
                    CmpOp::Gt => o == Ordering::Greater,
                    CmpOp::Ge => o != Ordering::Less,
                    _ => false,
                }
            }
            Op::Contains(needle) => v
                .as_bytes()
                .is_some_and(|h| memchr::memmem::find(h, needle).is_some()),
            Op::StartsWith(p) => v.as_bytes().is_some_and(|h| h.starts_with(p)),
            Op::EndsWith(p) => v.as_bytes().is_some_and(|h| h.ends_with(p)),
            Op::Matches(re) => v.as_bytes().is_some_and(|h| regex_is_match(re, h)),
            Op::Wildcard(w) => v.as_bytes().is_some_and(|h| w.is_match(h)),
            Op::InBytes(set) => v.as_bytes().is_some_and(|b| set.contains(b)),
            Op::InInt(ranges) => matches!(v, Value::Int(i) if find(ranges, *i)),
            Op::InIp(set) => matches!(v, Value::Ip(ip) if set.contains(ip)),
            Op::InList(name) => lists.is_some_and(|l| l.contains(name, v)),
        }
    }
}

/// Splits a wildcard pattern at its unescaped `*`s into literal segments
/// (`\*` and `\\` are literal; `**` is invalid).
fn wildcard_segments(pattern: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut segments = Vec::new();
    let mut current = Vec::new();
    let mut i = 0;
    let mut prev_star = false;
    while i < pattern.len() {
        match pattern[i] {
            b'\\' => match pattern.get(i + 1) {
                Some(&e @ (b'*' | b'\\')) => {
                    i += 1;
                    current.push(e);
                }
                _ => {
                    return Err(
                        "a backslash must be followed by * or \\ (write \\* or \\\\)".into(),
                    );
                }
            },
            b'*' => {
                if prev_star {
                    return Err("two unescaped * in a row (**) are not allowed".into());
                }
                prev_star = true;
                segments.push(std::mem::take(&mut current));
                i += 1;
                continue;
            }
            b => current.push(b),
        }
        prev_star = false;
        i += 1;
    }
    segments.push(current);
    Ok(segments)
}

/// Builds a regex for a wildcard pattern: `*` matches any run of bytes
/// (lazily, one capture group each, for `wildcard_replace`); the whole
/// value must match.
pub(crate) fn wildcard_regex(pattern: &[u8], case_sensitive: bool) -> Result<Regex, String> {
    let segments = wildcard_segments(pattern)?;
    let mut re = String::from(if case_sensitive {
        "(?s-u)^"
    } else {
        "(?si-u)^"
    });
    for (i, seg) in segments.iter().enumerate() {
        if i > 0 {
            re.push_str("(.*?)");
        }
        for &b in seg {
            if b.is_ascii_alphanumeric() {
                re.push(b as char);
            } else {
                re.push_str(&format!("\\x{b:02x}"));
            }
        }
    }
    re.push('$');
    regex::bytes::RegexBuilder::new(&re)
        .size_limit(1 << 22)
        .build()
        .map_err(|e| format!("the pattern is too complex: {e}"))
}

/// The `wildcard` / `strict wildcard` operators: the whole value must
/// match; `*` matches any run of bytes; `wildcard` ignores ASCII case.
#[derive(Debug, Clone)]
pub(crate) struct Wildcard {
    segments: Vec<Vec<u8>>,
    case_sensitive: bool,
}

impl Wildcard {
    pub(crate) fn new(pattern: &[u8], case_sensitive: bool) -> Result<Self, String> {
        let mut segments = wildcard_segments(pattern)?;
        if !case_sensitive {
            segments.iter_mut().for_each(|s| s.make_ascii_lowercase());
        }
        Ok(Wildcard {
            segments,
            case_sensitive,
        })
    }

    pub(crate) fn is_match(&self, value: &[u8]) -> bool {
        if !self.case_sensitive && value.iter().any(u8::is_ascii_uppercase) {
            return self.match_exact(&value.to_ascii_lowercase());
        }
        self.match_exact(value)
    }

    fn match_exact(&self, h: &[u8]) -> bool {
        let segs = &self.segments;
        let (Some(first), Some(last)) = (segs.first(), segs.last()) else {
            return false;
        };
        if segs.len() == 1 {
            return h == first.as_slice();
        }
        if !h.starts_with(first) || h.len() < first.len() + last.len() || !h.ends_with(last) {
            return false;
        }
        let mut pos = first.len();
        let end = h.len() - last.len();
        for mid in &segs[1..segs.len() - 1] {
            match memchr::memmem::find(&h[pos..end], mid) {
                Some(i) => pos += i + mid.len(),
                None => return false,
            }
        }
        true
    }
}

/// A regular expression that is only a literal, optionally anchored
/// (`^/api/`, `\.php$`, `^/$`, `admin`), runs as a plain byte comparison
/// with the same meaning.
pub(crate) fn literal_regex(pattern: &str) -> Option<Op> {
    use regex_syntax::hir::{HirKind, Look};
    let hir = byte_hir(pattern)?;
    let items: Vec<&regex_syntax::hir::Hir> = match hir.kind() {
        HirKind::Concat(items) => items.iter().collect(),
        _ => vec![&hir],
    };
    let (start, rest) = match items.split_first() {
        Some((first, rest)) if matches!(first.kind(), HirKind::Look(Look::Start)) => (true, rest),
        _ => (false, items.as_slice()),
    };
    let (end, middle) = match rest.split_last() {
        Some((last, middle)) if matches!(last.kind(), HirKind::Look(Look::End)) => (true, middle),
        _ => (false, rest),
    };
    let lit = match middle {
        [] => Vec::new(),
        [one] => match one.kind() {
            HirKind::Literal(lit) => lit.0.to_vec(),
            _ => return None,
        },
        _ => return None,
    };
    Some(match (start, end) {
        (true, true) => Op::Order(CmpOp::Eq, Value::bytes(lit)),
        (true, false) => Op::StartsWith(lit),
        (false, true) => Op::EndsWith(lit),
        (false, false) => Op::Contains(lit),
    })
}

/// A pattern's syntax tree as the rules compile regexes: byte-oriented unless `(?u)`.
pub(crate) fn byte_hir(pattern: &str) -> Option<regex_syntax::hir::Hir> {
    regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .build()
        .parse(pattern)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn wildcard_matcher_agrees_with_regex(
            pattern in "[aAb*\\\\]{0,8}",
            value in "[aAb*\\\\]{0,10}",
            strict in any::<bool>(),
        ) {
            let w = Wildcard::new(pattern.as_bytes(), strict);
            let r = wildcard_regex(pattern.as_bytes(), strict);
            prop_assert_eq!(w.is_ok(), r.is_ok());
            if let (Ok(w), Ok(r)) = (w, r) {
                prop_assert_eq!(w.is_match(value.as_bytes()), r.is_match(value.as_bytes()), "{} on {}", pattern, value);
            }
        }

        #[test]
        fn literal_regexes_agree_with_regex(
            pattern in "\\^?[a/.b]{0,4}(\\\\[.])?[a/b]{0,3}\\$?",
            value in "[a/.b\n]{0,8}",
        ) {
            let re = regex::bytes::RegexBuilder::new(&pattern).unicode(false).build().unwrap();
            if let Some(op) = literal_regex(&pattern) {
                let v = Value::bytes(value.as_bytes());
                prop_assert_eq!(op.test(&v, None), re.is_match(value.as_bytes()), "{} on {:?}", pattern, value);
            }
        }
    }
}
