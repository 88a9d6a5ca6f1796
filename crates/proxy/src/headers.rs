//! Header fields as the proxy carries them: a list of (name, value) in the order they came,
//! repeated names kept, names lowercase; a parsed message's are slices of its bytes.
//!
//! Why not `http::HeaderMap` (used before): a map hashes every name, copies each name it does
//! not know and keeps an index, and the proxy made one for the client's request and one for
//! the origin's response, edited them and dropped them, on every request: about a sixth of
//! its user CPU per request on bench/proxy.sh, for messages of ten or so headers of which it
//! looks up a handful. A message has at most a hundred (more are refused): a scan of the list
//! costs what a lookup does, and making the list copies nothing. Only HTTP/2 (hyper) still
//! needs maps: [`Headers::from_map`] and [`Headers::to_map`].

use bytes::Bytes;
use std::borrow::Cow;

/// Header fields, in order; names lowercase and valid in HTTP, values valid in HTTP.
///
/// A parsed message's fields are spans of its bytes (`head`, shared, not copied); fields added
/// or changed since are written to bytes of the list's own. Spans rather than a `Bytes` slice
/// per name and value: each slice is a reference count taken and given back (an atomic
/// operation, two per field), which was 6% of the proxy's user CPU per request.
#[derive(Clone, Default)]
pub struct Headers {
    head: Bytes,
    own: Vec<u8>,
    fields: Vec<(Span, Span)>,
}

/// Where a name or value is: in the message's bytes or in the list's own.
#[derive(Clone, Copy)]
struct Span {
    own: bool,
    at: u32,
    len: u32,
}

impl Span {
    /// Its bytes, of a list's `head` and `own`.
    fn of<'a>(self, head: &'a [u8], own: &'a [u8]) -> &'a [u8] {
        let bytes = if self.own { own } else { head };
        &bytes[self.at as usize..(self.at + self.len) as usize]
    }
}

/// The bytes of a token (RFC 9110 §5.6.2), by value.
const TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        table[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        i += 1;
    }
    table
};

/// Whether `name` is a valid field name (a token, RFC 9110 §5.1).
pub fn valid_name(name: &[u8]) -> bool {
    name_case(name).is_some()
}

/// Whether `name` is a valid field name, and if so whether it has uppercase letters: one
/// pass over it for what [`Headers::set`] and [`Headers::append`] need to know (a name that
/// is lowercase already is written as it is).
fn name_case(name: &[u8]) -> Option<bool> {
    let (mut valid, mut upper) = (!name.is_empty(), false);
    for &b in name {
        valid &= TOKEN[usize::from(b)];
        upper |= b.is_ascii_uppercase();
    }
    valid.then_some(upper)
}

/// Whether `value` can be sent as a field value written by the edge: visible ASCII, spaces and
/// tabs (what `http::HeaderValue::from_str` accepts; a value the rules wrote is a string).
pub fn valid_value(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
}

impl Headers {
    pub fn new() -> Headers {
        Headers::default()
    }

    pub fn with_capacity(n: usize) -> Headers {
        Headers {
            fields: Vec::with_capacity(n),
            ..Headers::default()
        }
    }

    /// An empty list for the fields of a message whose bytes are `head`
    /// ([`push_parsed`](Self::push_parsed)), with room for `n` fields.
    pub(crate) fn of(head: Bytes, n: usize) -> Headers {
        Headers {
            head,
            own: Vec::new(),
            fields: Vec::with_capacity(n),
        }
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// A copy with room for `more` fields (the message's bytes are shared, not copied): a
    /// clone's list would have none, and grow at the first field added.
    pub fn copy_with_room(&self, more: usize) -> Headers {
        let mut fields = Vec::with_capacity(self.fields.len() + more);
        fields.extend_from_slice(&self.fields);
        Headers {
            head: self.head.clone(),
            own: self.own.clone(),
            fields,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    fn bytes(&self, span: Span) -> &[u8] {
        span.of(&self.head, &self.own)
    }

    /// Whether the name at `span` is `name` (any case); its length looked at first (most
    /// names in a list are not as long as the one looked for).
    fn is(&self, span: Span, name: &[u8]) -> bool {
        span.len as usize == name.len() && self.bytes(span).eq_ignore_ascii_case(name)
    }

    /// Whether the name at `span` is `name`, given lowercase as the list's names are; its
    /// length looked at first.
    fn is_lower(&self, span: Span, name: &str) -> bool {
        span.len as usize == name.len() && self.bytes(span) == name.as_bytes()
    }

    /// Every field, in order: (name, value).
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.fields
            .iter()
            .map(|&(k, v)| (self.bytes(k), self.bytes(v)))
    }

    /// Every field as text: borrowed when it is UTF-8 (nearly always; names always, being
    /// tokens), else decoded lossily (a byte that is not UTF-8 becomes U+FFFD). The message's
    /// bytes and the list's own are checked once each, not name by name and value by value
    /// (a dozen checks of a few bytes each cost four times what one of the whole head does).
    pub fn texts(&self) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
        let (head, own) = (
            std::str::from_utf8(&self.head),
            std::str::from_utf8(&self.own),
        );
        let text = move |span: Span| {
            let whole = if span.own { &own } else { &head };
            let at = span.at as usize;
            // A span of text that is UTF-8 is, unless it cuts a character (it does not: names
            // and values start and end at ASCII delimiters).
            match whole
                .as_ref()
                .ok()
                .and_then(|s| s.get(at..at + span.len as usize))
            {
                Some(s) => Cow::Borrowed(s),
                None => String::from_utf8_lossy(self.bytes(span)),
            }
        };
        self.fields.iter().map(move |&(k, v)| (text(k), text(v)))
    }

    /// The first value of `name` (lowercase).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        let &(_, v) = self.fields.iter().find(|&&(k, _)| self.is_lower(k, name))?;
        Some(self.bytes(v))
    }

    /// Every value of `name` (lowercase), in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.fields
            .iter()
            .filter(move |&&(k, _)| self.is_lower(k, name))
            .map(|&(_, v)| self.bytes(v))
    }

    /// Appends a field of the message's bytes: `name` and `value` are where they are in them
    /// (offset, length); the name valid and lowercase, the value valid (what a parser let
    /// through).
    pub(crate) fn push_parsed(&mut self, name: (usize, usize), value: (usize, usize)) {
        let span = |(at, len): (usize, usize)| Span {
            own: false,
            at: at as u32,
            len: len as u32,
        };
        debug_assert!(
            name.0 + name.1 <= self.head.len() && value.0 + value.1 <= self.head.len(),
            "a span of the head"
        );
        let (name, value) = (span(name), span(value));
        debug_assert!({
            let name = self.bytes(name);
            valid_name(name) && !name.iter().any(u8::is_ascii_uppercase)
        });
        self.fields.push((name, value));
    }

    /// `bytes` written to the list's own.
    fn write(&mut self, bytes: &[u8]) -> Span {
        if self.own.capacity() == 0 {
            // Room for what the edge adds to a request (its forwarding headers) at once.
            self.own.reserve(256);
        }
        let at = self.own.len() as u32;
        self.own.extend_from_slice(bytes);
        Span {
            own: true,
            at,
            len: bytes.len() as u32,
        }
    }

    /// A field written to the list's own as the line of a message head it is
    /// (`name: value\r\n`, [`write_lines`](Self::write_lines) copies it as it is); the name
    /// lowercased.
    fn write_field(&mut self, name: &[u8], upper: bool, value: &[u8]) -> (Span, Span) {
        let name = self.write(name);
        if upper {
            self.own[name.at as usize..].make_ascii_lowercase();
        }
        self.own.extend_from_slice(b": ");
        let value = self.write(value);
        self.own.extend_from_slice(b"\r\n");
        (name, value)
    }

    /// Appends a field known to be valid, its name lowercase (one of the edge's own).
    pub(crate) fn push(&mut self, name: &[u8], value: &[u8]) {
        debug_assert!(name_case(name) == Some(false), "a valid lowercase name");
        let field = self.write_field(name, false, value);
        self.fields.push(field);
    }

    /// Appends a field; `false`, and nothing appended, when the name or the value is not valid
    /// ([`valid_name`], [`valid_value`]). The name is lowercased.
    pub fn append(&mut self, name: &str, value: &str) -> bool {
        let Some(upper) = name_case(name.as_bytes()).filter(|_| valid_value(value.as_bytes()))
        else {
            return false;
        };
        let field = self.write_field(name.as_bytes(), upper, value.as_bytes());
        self.fields.push(field);
        true
    }

    /// Writes the fields to `out` as the lines of a message head (`name: value\r\n`), but for
    /// the ones `skip` says to leave out (given the name). Fields that are lines of the
    /// message's bytes or of the list's own, one after the other, are copied at once: a
    /// parsed message's, and the ones added since, are (all but values changed since).
    pub(crate) fn write_lines(&self, out: &mut Vec<u8>, mut skip: impl FnMut(&[u8]) -> bool) {
        // Lines of one of the buffers not copied yet: (of the list's own, start, end).
        let mut run: Option<(bool, usize, usize)> = None;
        let copy = |out: &mut Vec<u8>, run: Option<(bool, usize, usize)>| {
            if let Some((own, start, end)) = run {
                let bytes = if own { &self.own[..] } else { &self.head[..] };
                out.extend_from_slice(&bytes[start..end]);
            }
        };
        for &(k, v) in &self.fields {
            if skip(self.bytes(k)) {
                continue;
            }
            match self.line(k, v) {
                Some((start, end)) => match &mut run {
                    Some((own, _, e)) if *own == k.own && *e == start => *e = end,
                    _ => {
                        copy(out, run);
                        run = Some((k.own, start, end));
                    }
                },
                None => {
                    copy(out, run.take());
                    out.extend_from_slice(self.bytes(k));
                    out.extend_from_slice(b": ");
                    out.extend_from_slice(self.bytes(v));
                    out.extend_from_slice(b"\r\n");
                }
            }
        }
        copy(out, run);
    }

    /// Where the line of a field is in its bytes, when they hold it whole: its name, a colon,
    /// spaces or tabs, its value, CRLF. (A value set since is elsewhere.)
    fn line(&self, k: Span, v: Span) -> Option<(usize, usize)> {
        if k.own != v.own {
            return None;
        }
        let bytes = if k.own { &self.own[..] } else { &self.head[..] };
        let (name_end, value_end) = ((k.at + k.len) as usize, (v.at + v.len) as usize);
        let (colon, spaces) = bytes.get(name_end..v.at as usize)?.split_first()?;
        let whole = *colon == b':'
            && spaces.iter().all(|&b| b == b' ' || b == b'\t')
            && bytes.get(value_end..value_end + 2) == Some(b"\r\n");
        whole.then_some((k.at as usize, value_end + 2))
    }

    /// Replaces the values of `name` with `value`, where the first of them was (at the end
    /// when there was none); `false`, and nothing changed, when the name or the value is not
    /// valid.
    pub fn set(&mut self, name: &str, value: &str) -> bool {
        let Some(upper) = name_case(name.as_bytes()).filter(|_| valid_value(value.as_bytes()))
        else {
            return false;
        };
        let named = |&(k, _): &(Span, Span)| self.is(k, name.as_bytes());
        let Some(first) = self.fields.iter().position(named) else {
            let field = self.write_field(name.as_bytes(), upper, value.as_bytes());
            self.fields.push(field);
            return true;
        };
        let more = self.fields[first + 1..].iter().any(named);
        self.fields[first].1 = self.write(value.as_bytes());
        if more {
            let (head, own) = (&self.head, &self.own);
            let mut i = 0;
            self.fields.retain(|&(k, _)| {
                i += 1;
                i - 1 == first || !k.of(head, own).eq_ignore_ascii_case(name.as_bytes())
            });
        }
        true
    }

    /// Removes every field of `name` (any case).
    pub fn remove(&mut self, name: &str) {
        if !self
            .fields
            .iter()
            .any(|&(k, _)| self.is(k, name.as_bytes()))
        {
            return; // (nearly always: nothing to move)
        }
        self.retain(|k| !k.eq_ignore_ascii_case(name.as_bytes()));
    }

    /// Keeps the fields `keep` says to keep, given the name (every user decides by the name
    /// alone: the values are not looked up).
    pub fn retain(&mut self, mut keep: impl FnMut(&[u8]) -> bool) {
        let (head, own) = (&self.head, &self.own);
        self.fields.retain(|&(k, _)| keep(k.of(head, own)));
    }

    /// The fields of an `http::HeaderMap` (HTTP/2's, from hyper): copied.
    pub fn from_map(map: &http::HeaderMap) -> Headers {
        let mut headers = Headers::with_capacity(map.len() + 8);
        for (k, v) in map {
            headers.push(k.as_str().as_bytes(), v.as_bytes());
        }
        headers
    }

    /// The fields as an `http::HeaderMap` (for hyper's HTTP/2); the message's values are
    /// shared, not copied.
    pub fn to_map(&self) -> http::HeaderMap {
        let mut map = http::HeaderMap::with_capacity(self.fields.len());
        for &(k, v) in &self.fields {
            let value = if v.own {
                http::HeaderValue::from_bytes(self.bytes(v))
            } else {
                let at = v.at as usize;
                http::HeaderValue::from_maybe_shared(self.head.slice(at..at + v.len as usize))
            };
            // Valid by construction; a field that were not would be left out.
            if let (Ok(k), Ok(v)) = (http::HeaderName::from_bytes(self.bytes(k)), value) {
                map.append(k, v);
            }
        }
        map
    }
}

/// Lists are equal when their fields are, in order.
impl PartialEq for Headers {
    fn eq(&self, other: &Headers) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Headers {}

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(
                self.iter()
                    .map(|(k, v)| (String::from_utf8_lossy(k), String::from_utf8_lossy(v))),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(h: &Headers) -> Vec<(String, String)> {
        h.iter()
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn fields_keep_their_order_and_edits_touch_only_their_name() {
        let mut h = Headers::new();
        for (k, v) in [("a", "1"), ("b", "2"), ("a", "3"), ("c", "4"), ("a", "5")] {
            assert!(h.append(k, v));
        }
        assert_eq!(h.get("a"), Some(&b"1"[..]));
        assert_eq!(h.get_all("a").collect::<Vec<_>>(), [b"1", b"3", b"5"]);
        assert_eq!(h.get("d"), None);
        // Set: the first one's place, the others gone.
        assert!(h.set("A", "x"));
        assert_eq!(
            list(&h),
            [("a", "x"), ("b", "2"), ("c", "4")].map(|(k, v)| (k.into(), v.into()))
        );
        assert!(h.set("d", "y"));
        h.remove("B");
        assert_eq!(
            list(&h),
            [("a", "x"), ("c", "4"), ("d", "y")].map(|(k, v)| (k.into(), v.into()))
        );
        // A name of the same length as others, absent: nothing changes.
        h.remove("e");
        assert!(h.set("C", "z"));
        assert_eq!(
            list(&h),
            [("a", "x"), ("c", "z"), ("d", "y")].map(|(k, v)| (k.into(), v.into()))
        );
    }

    #[test]
    fn a_copy_with_room_is_the_same_list_and_edits_of_it_stay_its_own() {
        let mut h = Headers::new();
        for (k, v) in [("a", "1"), ("b", "2")] {
            assert!(h.append(k, v));
        }
        let mut c = h.copy_with_room(8);
        assert_eq!(list(&c), list(&h));
        assert!(c.fields.capacity() >= 10);
        assert!(c.set("a", "x") && c.append("d", "4"));
        c.remove("b");
        assert_eq!(
            list(&h),
            [("a", "1"), ("b", "2")].map(|(k, v)| (k.into(), v.into()))
        );
        assert_eq!(
            list(&c),
            [("a", "x"), ("d", "4")].map(|(k, v)| (k.into(), v.into()))
        );
    }

    #[test]
    fn every_token_byte_and_only_those_make_a_name() {
        for b in 0..=255u8 {
            let token = b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            assert_eq!(valid_name(&[b]), token, "{b:#04x}");
        }
    }

    #[test]
    fn invalid_names_and_values_are_refused_and_change_nothing() {
        let mut h = Headers::new();
        assert!(h.append("X-Ok", "visible text\twith tab"));
        for (k, v) in [
            ("bad name", "1"),
            ("", "1"),
            ("x(y)", "1"),
            ("x-a", "line\r\nx-injected: 1"),
            ("x-a", "nul\0"),
            ("x-a", "del\x7f"),
            ("x-a", "café"),
        ] {
            assert!(!h.append(k, v), "{k:?}: {v:?}");
            assert!(!h.set(k, v), "{k:?}: {v:?}");
        }
        assert_eq!(list(&h), [("x-ok".into(), "visible text\twith tab".into())]);
    }

    #[test]
    fn fields_of_a_message_and_fields_added_mix() {
        // As a parser hands them over: spans of the message's bytes.
        let head = Bytes::from_static(b"x-a: 1\r\nx-b: 2\r\nx-a: 3\r\n");
        let mut h = Headers::of(head.clone(), 3);
        for at in [0, 8, 16] {
            h.push_parsed((at, 3), (at + 5, 1));
        }
        assert_eq!(h.get_all("x-a").collect::<Vec<_>>(), [b"1", b"3"]);
        assert!(h.append("X-C", "4"));
        assert!(h.set("x-b", "two"));
        assert!(h.set("x-a", "one"));
        assert_eq!(
            list(&h),
            [("x-a", "one"), ("x-b", "two"), ("x-c", "4")].map(|(k, v)| (k.into(), v.into()))
        );
        h.retain(|k| k != b"x-b");
        assert_eq!(h.len(), 2);
        let map = h.to_map();
        assert_eq!(map["x-a"], "one");
        assert_eq!(map["x-c"], "4");
    }

    #[test]
    fn fields_are_text_borrowed_and_only_bytes_that_are_not_utf8_are_replaced() {
        let head = Bytes::from_static(b"x-a: caf\xc3\xa9\r\nx-b: a\xffb\r\nx-c: 3\r\n");
        let mut h = Headers::of(head, 4);
        h.push_parsed((0, 3), (5, 5));
        h.push_parsed((12, 3), (17, 3));
        h.push_parsed((22, 3), (27, 1));
        // Own bytes that are not UTF-8 (HTTP/2's values come as they are).
        h.push(b"x-d", b"\xfe");
        h.push(b"x-e", b"five");
        let texts: Vec<_> = h.texts().collect();
        assert_eq!(
            texts,
            [
                ("x-a", "café"),
                ("x-b", "a\u{fffd}b"),
                ("x-c", "3"),
                ("x-d", "\u{fffd}"),
                ("x-e", "five")
            ]
            .map(|(k, v)| (Cow::Borrowed(k), Cow::Borrowed(v)))
        );
        // Only the value that is not UTF-8 is a copy.
        let copies: Vec<_> = texts
            .iter()
            .map(|(k, v)| matches!(k, Cow::Owned(_)) || matches!(v, Cow::Owned(_)))
            .collect();
        assert_eq!(copies, [false, true, false, true, false]);
    }

    #[test]
    fn maps_convert_both_ways() {
        let mut map = http::HeaderMap::new();
        map.append("x-a", http::HeaderValue::from_static("1"));
        map.append("x-a", http::HeaderValue::from_static("2"));
        map.append("x-bin", http::HeaderValue::from_bytes(b"a\xffb").unwrap());
        let h = Headers::from_map(&map);
        assert_eq!(h.get("x-bin"), Some(&b"a\xffb"[..]));
        assert_eq!(h.to_map(), map);
    }
}
