//! Ruling out, in one pass, the rules of a ruleset that cannot match a request.
//!
//! Most rules of a zone compare a value with literals (`http.request.uri.path eq "/admin"`,
//! `lower(http.user_agent) contains "sqlmap"`, `starts_with(…, "/wp-admin/")`,
//! `http.referer matches "^https?://spam"`, `any(http.request.headers["x-a"][*] eq "1")`),
//! and for a given request nearly all of them are false. Each such comparison has a
//! *necessary condition*: the rule can only match if the value it compares (its *key*)
//! contains one of a few byte strings (the literal itself; for `in {…}` any of the set; for a
//! regex, one of the literal prefixes every match starts with). A [`Prefilter`] collects these
//! conditions for a list of filters, groups them by key, and per request evaluates each key
//! once and searches it once for all of its needles (Aho-Corasick), which leaves only the
//! rules that may match. An IP comparison's condition is its ranges: the key (`ip.src`) is
//! evaluated once and looked up in the ranges of every rule that compares it. Rules without
//! a condition (`not …`, `or` with an unguarded side) are always candidates.
//!
//! The conditions are only necessary, never sufficient: a candidate still runs its filter.
//! So the set of rules that match is the same with or without the prefilter (a property test
//! holds it to that); what it saves is running the filters of rules that cannot match.
//!
//! Guards, by the shape of the filter:
//! - `key eq "lit"`, `key contains "lit"`, `starts_with(key, "lit")`, `ends_with(key, "lit")`,
//!   `key matches "^lit$"`…: the key contains `lit` (not for an empty literal).
//! - `key in {"a" "b"}`: the key contains `a` or `b`.
//! - `key matches re`: the key contains one of the regex's literal prefixes, when the set of
//!   prefixes is finite and none is empty.
//! - `key in {10.0.0.0/8 192.0.2.1}`, `key eq 192.0.2.1`: the key (an IP address) is in one
//!   of the ranges.
//! - `any(key[*] <one of the above>)`: some element of the key contains a needle (not `all`,
//!   which is true of an empty array).
//! - `a and b`: the guard of either side (the one with the longest shortest needle);
//!   `a or b`: both guards together, if both sides have one.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use aho_corasick::{AhoCorasick, MatchKind};

use crate::Expression;
use crate::ast::{CmpOp, LogicalOp};
use crate::check::{Key, Node, NodeKind};
use crate::context::ExecutionContext;
use crate::functions::Func;
use crate::interp::eval;
use crate::ops::{BytesSet, Op};
use crate::types::Value;

/// A rule's necessary condition: one of these needles occurs in its key (the node, its
/// canonical text, and whether ASCII case is ignored: see [`case_folded`]).
type Guard<'n> = Vec<(&'n Node, String, bool, Needle)>;

/// What a key must have for a rule to match: a byte string in it, or (an IP address key) to
/// be in a range (first and last address, of one family).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Needle {
    Bytes(Vec<u8>),
    Ip(IpAddr, IpAddr),
}

impl Needle {
    /// How much finding it narrows the rules down, for choosing between the guards of `and`:
    /// a byte string by its length; an IP range about like a short string.
    fn strength(&self) -> usize {
        match self {
            Needle::Bytes(b) => b.len(),
            Needle::Ip(..) => 4,
        }
    }
}

/// A key's needles, each with the rules it lets through, in the order first seen (the
/// automaton's patterns in that order: the same automaton for the same rules, run after
/// run), and where each is in that list.
#[derive(Default)]
struct Needles {
    list: Vec<(Needle, Vec<u32>)>,
    index: HashMap<Needle, usize>,
}

impl Needles {
    /// The rules of `needle` (none yet if it is new).
    fn rules(&mut self, needle: Needle) -> &mut Vec<u32> {
        let list = &mut self.list;
        let i = *self.index.entry(needle).or_insert_with_key(|n| {
            list.push((n.clone(), Vec::new()));
            list.len() - 1
        });
        &mut self.list[i].1
    }
}

/// The distinct value a guard searches, with every needle searched in it.
struct KeyEntry {
    node: Node,
    searcher: Searcher,
    /// The rules (indexes into the filter list) each needle (pattern id) lets through.
    rules: Vec<Vec<u32>>,
}

/// One needle (the common case: a header or a field only one rule reads) is a substring
/// search; more are one automaton; IP ranges are compared one by one (a few per rule, and
/// each comparison is two integer comparisons: less than running the rule's filter).
enum Searcher {
    One(Box<memchr::memmem::Finder<'static>>),
    Many(Box<Many>),
    Ips(Vec<(IpAddr, IpAddr)>),
}

/// Needles searched with an automaton, and what rules most values out before it runs: a
/// value shorter than every needle, or (a short one) without a byte any needle starts with.
/// (Most values a key takes are short, a path, a header's name, a host, and contain no
/// needle: the automaton's search has a cost of its own per value, a few times what looking
/// at a dozen bytes costs.)
struct Many {
    ac: AhoCorasick,
    min_len: usize,
    /// The needles' first bytes (both cases when ASCII case is ignored).
    first: [bool; 256],
}

/// Values up to this long are looked at byte by byte before the automaton runs.
const SHORT: usize = 24;

impl Many {
    fn new(ac: AhoCorasick, patterns: &[Vec<u8>], case_insensitive: bool) -> Many {
        let mut first = [false; 256];
        for b in patterns.iter().filter_map(|p| p.first()) {
            first[usize::from(*b)] = true;
            if case_insensitive {
                first[usize::from(b.to_ascii_lowercase())] = true;
                first[usize::from(b.to_ascii_uppercase())] = true;
            }
        }
        Many {
            ac,
            min_len: patterns.iter().map(Vec::len).min().unwrap_or(0),
            first,
        }
    }

    /// Whether a needle may occur in `haystack` (true unless it surely does not).
    fn may_occur(&self, haystack: &[u8]) -> bool {
        let Some(starts) = haystack.len().checked_sub(self.min_len) else {
            return false;
        };
        if haystack.len() > SHORT || self.min_len == 0 {
            return self.ac.is_match(haystack);
        }
        haystack[..=starts]
            .iter()
            .any(|&b| self.first[usize::from(b)])
            && self.ac.is_match(haystack)
    }
}

/// Rules ruled out before running their filters; see the [module](self) documentation.
pub struct Prefilter {
    keys: Vec<KeyEntry>,
    /// Rules without a guard: always candidates.
    unguarded: Vec<u32>,
    len: usize,
    scheme_id: Option<u64>,
}

impl std::fmt::Debug for Prefilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prefilter")
            .field("rules", &self.len)
            .field("guarded", &self.guarded())
            .field("keys", &self.keys.len())
            .finish()
    }
}

/// Which rules may match a request (a bit per rule; up to 256 rules without an allocation).
#[derive(Debug, Clone)]
pub struct Candidates(smallvec::SmallVec<[u64; 4]>);

impl Candidates {
    fn none(len: usize) -> Candidates {
        Candidates(smallvec::smallvec![0; len.div_ceil(64)])
    }

    fn set(&mut self, i: u32) {
        self.0[i as usize / 64] |= 1 << (i % 64);
    }

    /// Whether rule `i` may match (its filter must still run). Out of range: true.
    #[inline]
    pub fn may_match(&self, i: usize) -> bool {
        self.0.get(i / 64).is_none_or(|w| w & (1 << (i % 64)) != 0)
    }

    /// The first rule from `i` on that may match ([`may_match`](Self::may_match)): `i` itself
    /// when it is out of range. A loop over the candidates skips the others a word at a time.
    #[inline]
    pub fn next_from(&self, i: usize) -> usize {
        let mut w = i / 64;
        let Some(&first) = self.0.get(w) else {
            return i;
        };
        let mut bits = first & (u64::MAX << (i % 64));
        loop {
            if bits != 0 {
                return w * 64 + bits.trailing_zeros() as usize;
            }
            w += 1;
            match self.0.get(w) {
                Some(&b) => bits = b,
                None => return w * 64,
            }
        }
    }
}

impl Prefilter {
    /// The prefilter of `filters`, in order (rule `i` is `filters[i]`). A `None` (a rule
    /// without a filter of its own) is always a candidate.
    pub fn new<'a>(filters: impl IntoIterator<Item = Option<&'a Expression>>) -> Prefilter {
        // Keys by canonical text; per key, the rules of each needle.
        let mut slots: HashMap<(String, bool), usize> = HashMap::new();
        let mut pending: Vec<(Node, bool, Needles)> = Vec::new();
        let mut unguarded = Vec::new();
        let mut scheme_id = None;
        let mut len = 0;
        for (i, filter) in filters.into_iter().enumerate() {
            len = i + 1;
            let i = i as u32;
            let guard = filter.and_then(|f| {
                if *scheme_id.get_or_insert(f.scheme_id) != f.scheme_id {
                    return None; // another scheme's filter: its keys mean something else
                }
                guard(&f.node)
            });
            let Some(guard) = guard else {
                unguarded.push(i);
                continue;
            };
            for (node, text, case_insensitive, needle) in guard {
                let is_ip = matches!(needle, Needle::Ip(..));
                let slot = *slots.entry((text, is_ip)).or_insert_with(|| {
                    pending.push((node.clone(), case_insensitive, Needles::default()));
                    pending.len() - 1
                });
                let rules = pending[slot].2.rules(needle);
                if rules.last() != Some(&i) {
                    rules.push(i);
                }
            }
        }
        let mut keys = Vec::new();
        for (node, case_insensitive, needles) in pending {
            let (needles, rules): (Vec<Needle>, Vec<Vec<u32>>) = needles.list.into_iter().unzip();
            let (mut patterns, mut ranges) = (Vec::new(), Vec::new());
            for n in needles {
                match n {
                    Needle::Bytes(b) => patterns.push(b),
                    Needle::Ip(first, last) => ranges.push((first, last)),
                }
            }
            let searcher = match patterns.as_slice() {
                // A key's needles are all ranges or all byte strings (`slots` has both kinds).
                [] => Searcher::Ips(ranges),
                [one] if !case_insensitive => {
                    Searcher::One(Box::new(memchr::memmem::Finder::new(one).into_owned()))
                }
                _ => match automaton(&patterns, case_insensitive) {
                    Ok(ac) => Searcher::Many(Box::new(Many::new(ac, &patterns, case_insensitive))),
                    // Too many needles for the automaton: their rules run unfiltered.
                    Err(_) => {
                        unguarded.extend(rules.into_iter().flatten());
                        continue;
                    }
                },
            };
            keys.push(KeyEntry {
                node,
                searcher,
                rules,
            });
        }
        unguarded.sort_unstable();
        unguarded.dedup();
        Prefilter {
            keys,
            unguarded,
            len,
            scheme_id,
        }
    }

    /// How many rules have a guard (the others always run).
    pub fn guarded(&self) -> usize {
        self.len - self.unguarded.len()
    }

    /// Whether ruling rules out is likely to cost less than running their filters: each key
    /// is evaluated and searched for every request, about what running a simple filter
    /// costs, so it pays when there are at least twice as many guarded rules as keys (a
    /// zone's list of custom rules), not for a ruleset of a rule or two, where it would only
    /// add to the filters that run anyway.
    pub fn pays(&self) -> bool {
        !self.keys.is_empty() && self.guarded() >= 2 * self.keys.len()
    }

    /// The rules that may match in `ctx`: the unguarded ones and those a needle of whose guard
    /// occurs in its key. Every rule whose filter is true in `ctx` is among them.
    pub fn candidates(&self, ctx: &ExecutionContext<'_, '_>) -> Candidates {
        let mut out = Candidates::none(self.len);
        if self.scheme_id.is_some_and(|id| id != ctx.scheme.id()) {
            // Another scheme's context: no filter matches it anyway; let them all say so.
            out.0.fill(u64::MAX);
            return out;
        }
        for &i in &self.unguarded {
            out.set(i);
        }
        for key in &self.keys {
            let Some(value) = eval(&key.node, ctx) else {
                continue;
            };
            if let Searcher::Ips(ranges) = &key.searcher {
                each_ip(&value, &mut |ip| {
                    for (k, (first, last)) in ranges.iter().enumerate() {
                        // A range is of one family, and `IpAddr` orders every IPv4 address
                        // before every IPv6 one: no address is in a range of the other family.
                        if *first <= ip && ip <= *last {
                            key.rules[k].iter().for_each(|&i| out.set(i));
                        }
                    }
                });
                continue;
            }
            each_bytes(&value, &mut |haystack| match &key.searcher {
                Searcher::One(finder) => {
                    if finder.find(haystack).is_some() {
                        key.rules[0].iter().for_each(|&i| out.set(i));
                    }
                }
                Searcher::Many(many) => {
                    // Most values contain no needle: a quick yes/no first (the length, the
                    // first bytes, the automaton's vectorized prefilter), then the full scan
                    // for which ones.
                    if !many.may_occur(haystack) {
                        return;
                    }
                    for m in many.ac.find_overlapping_iter(haystack) {
                        key.rules[m.pattern().as_usize()]
                            .iter()
                            .for_each(|&i| out.set(i));
                    }
                }
                Searcher::Ips(_) => {} // above
            });
        }
        out
    }
}

/// The automaton of a key's needles: for a few of them a DFA (the fastest search: on
/// bench/proxy.sh's zone a hundred instructions less per request than the crate's choice),
/// else what the crate picks (a DFA's memory grows with the needles times the bytes they
/// tell apart: for thousands of them, megabytes per key).
fn automaton(
    patterns: &[Vec<u8>],
    case_insensitive: bool,
) -> Result<AhoCorasick, aho_corasick::BuildError> {
    const DFA_NEEDLES: usize = 64;
    AhoCorasick::builder()
        .match_kind(MatchKind::Standard)
        .ascii_case_insensitive(case_insensitive)
        .kind((patterns.len() <= DFA_NEEDLES).then_some(aho_corasick::AhoCorasickKind::DFA))
        .build(patterns)
}

fn each_bytes(v: &Value<'_>, f: &mut impl FnMut(&[u8])) {
    match v {
        Value::Bytes(b) => f(b),
        Value::Array(items) => items.iter().for_each(|i| each_bytes(i, f)),
        _ => {}
    }
}

fn each_ip(v: &Value<'_>, f: &mut impl FnMut(IpAddr)) {
    match v {
        Value::Ip(ip) => f(*ip),
        Value::Array(items) => items.iter().for_each(|i| each_ip(i, f)),
        _ => {}
    }
}

/// The necessary condition of a Boolean node, if it has one.
fn guard(node: &Node) -> Option<Guard<'_>> {
    match &node.kind {
        NodeKind::Cmp { lhs, op, .. } if !lhs.each => keyed(lhs, needles(op)?),
        NodeKind::Call {
            func: Func::Any,
            args,
            ..
        } => match args.as_slice() {
            [
                Node {
                    kind: NodeKind::Cmp { lhs, op, .. },
                    ..
                },
            ] if lhs.each => keyed(lhs, needles(op)?),
            _ => None,
        },
        NodeKind::Call {
            func: Func::StartsWith | Func::EndsWith,
            args,
            ..
        } => match args.as_slice() {
            [
                key,
                Node {
                    kind: NodeKind::Lit(Value::Bytes(lit)),
                    ..
                },
            ] if !key.each && !lit.is_empty() => keyed(key, vec![Needle::Bytes(lit.to_vec())]),
            _ => None,
        },
        NodeKind::Logic {
            op: LogicalOp::And,
            items,
        } => items
            .iter()
            .filter_map(guard)
            .max_by_key(|g| g.iter().map(|(.., n)| n.strength()).min().unwrap_or(0)),
        NodeKind::Logic {
            op: LogicalOp::Or,
            items,
        } => {
            let mut all = Vec::new();
            for item in items {
                all.extend(guard(item)?);
            }
            Some(all)
        }
        _ => None,
    }
}

/// `needles` in the value of `key`, if `key` is a value the prefilter can name and evaluate.
fn keyed(key: &Node, needles: Vec<Needle>) -> Option<Guard<'_>> {
    let (key, case_insensitive) = match case_folded(key) {
        Some(inner) => (inner, true),
        None => (key, false),
    };
    let mut text = key_text(key)?;
    if case_insensitive {
        text.push_str(" (ASCII case ignored)");
    }
    Some(
        needles
            .into_iter()
            .map(|n| (key, text.clone(), case_insensitive, n))
            .collect(),
    )
}

/// For `lower(X)` or `upper(X)` (also mapped over an array, `lower(X[*])[*]`): `X`. These
/// change the case of ASCII letters and nothing else, byte for byte, so a needle occurs in
/// `lower(X)` only where it occurs in `X` ignoring ASCII case: searching `X` that way is a
/// necessary condition too, and spares computing the lowercase copy for every request (most
/// requests then run none of the rules that need it).
fn case_folded(key: &Node) -> Option<&Node> {
    let call = match &key.kind {
        NodeKind::Each(base) => base.as_ref(),
        _ => key,
    };
    let NodeKind::Call {
        func: Func::Lower | Func::Upper,
        args,
        ..
    } = &call.kind
    else {
        return None;
    };
    match (args.as_slice(), std::ptr::eq(call, key)) {
        // `lower(X)`: a value, or an array mapped element by element (`lower(X[*])`).
        ([inner], true) if inner.each == key.each => Some(inner),
        // `lower(X[*])[*]`: each element of the mapped array is `X[*]`'s, lowercased.
        ([inner], false) if inner.each => Some(inner),
        _ => None,
    }
}

/// The byte strings one of which a value satisfying `op` contains, or the IP ranges one of
/// which it is in; `None` when there is no such finite set (or it has the empty string, which
/// every value contains).
fn needles(op: &Op) -> Option<Vec<Needle>> {
    let bytes = match op {
        Op::Order(CmpOp::Eq, Value::Bytes(lit)) => vec![lit.to_vec()],
        Op::Contains(lit) | Op::StartsWith(lit) | Op::EndsWith(lit) => vec![lit.clone()],
        Op::InBytes(BytesSet::Small(items)) => items.clone(),
        Op::InBytes(BytesSet::Hashed(items)) => items.iter().cloned().collect(),
        Op::Matches(re) => regex_prefixes(re.as_str())?,
        Op::Order(CmpOp::Eq, Value::Ip(ip)) => return Some(vec![Needle::Ip(*ip, *ip)]),
        // An empty set matches nothing: no needle, and the rule is never a candidate.
        Op::InIp(set) => {
            return Some(set.ranges().map(|(a, b)| Needle::Ip(a, b)).collect());
        }
        _ => return None,
    };
    (!bytes.is_empty() && bytes.iter().all(|n| !n.is_empty()))
        .then(|| bytes.into_iter().map(Needle::Bytes).collect())
}

/// The literal prefixes every match of `pattern` starts with, when finitely many (regexes are
/// byte-oriented, as the rules compile them).
fn regex_prefixes(pattern: &str) -> Option<Vec<Vec<u8>>> {
    let hir = crate::ops::byte_hir(pattern)?;
    let seq = regex_syntax::hir::literal::Extractor::new().extract(&hir);
    Some(
        seq.literals()?
            .iter()
            .map(|l| l.as_bytes().to_vec())
            .collect(),
    )
}

/// A canonical name for a key (fields, indexes, `[*]` and calls of them with literal
/// arguments), the same for the same value in every rule; `None` for anything else.
fn key_text(node: &Node) -> Option<String> {
    let mut out = String::new();
    write_key(node, &mut out)?;
    Some(out)
}

fn write_key(node: &Node, out: &mut String) -> Option<()> {
    match &node.kind {
        NodeKind::Field { name, .. } => out.push_str(name),
        NodeKind::Index { base, key } => {
            write_key(base, out)?;
            match key {
                Key::Pos(i) => write!(out, "[{i}]").ok()?,
                Key::Name(k) => write!(out, "[{k:?}]").ok()?,
            }
        }
        NodeKind::Each(base) => {
            write_key(base, out)?;
            out.push_str("[*]");
        }
        NodeKind::Call { func, args, .. } => {
            // Debug names the function and its compiled literal arguments (regexes, keys).
            write!(out, "{func:?}(").ok()?;
            for a in args {
                match &a.kind {
                    NodeKind::Lit(v) => write!(out, "{v:?}").ok()?,
                    _ => write_key(a, out)?,
                }
                out.push(',');
            }
            out.push(')');
        }
        _ => return None,
    }
    Some(())
}
