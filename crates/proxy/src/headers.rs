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

/// Header fields, in order; names lowercase and valid in HTTP, values valid in HTTP.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers(Vec<(Bytes, Bytes)>);

/// Whether `name` is a valid field name (a token, RFC 9110 §5.1).
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
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
        Headers(Vec::new())
    }

    pub fn with_capacity(n: usize) -> Headers {
        Headers(Vec::with_capacity(n))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every field, in order: (name, value).
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.0.iter().map(|(k, v)| (&k[..], &v[..]))
    }

    /// The first value of `name` (lowercase).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(k, _)| k[..] == *name.as_bytes())
            .map(|(_, v)| &v[..])
    }

    /// Every value of `name` (lowercase), in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k[..] == *name.as_bytes())
            .map(|(_, v)| &v[..])
    }

    /// Appends a field known to be valid, its name lowercase (a parsed message's, or one of
    /// the edge's own).
    pub(crate) fn push(&mut self, name: Bytes, value: Bytes) {
        debug_assert!(valid_name(&name) && !name.iter().any(u8::is_ascii_uppercase));
        self.0.push((name, value));
    }

    /// Appends a field; `false`, and nothing appended, when the name or the value is not valid
    /// ([`valid_name`], [`valid_value`]). The name is lowercased.
    pub fn append(&mut self, name: &str, value: &str) -> bool {
        if !valid_name(name.as_bytes()) || !valid_value(value.as_bytes()) {
            return false;
        }
        self.0
            .push((lowercase(name), Bytes::copy_from_slice(value.as_bytes())));
        true
    }

    /// Replaces the values of `name` with `value`, where the first of them was (at the end
    /// when there was none); `false`, and nothing changed, when the name or the value is not
    /// valid.
    pub fn set(&mut self, name: &str, value: &str) -> bool {
        if !valid_name(name.as_bytes()) || !valid_value(value.as_bytes()) {
            return false;
        }
        let name = lowercase(name);
        let value = Bytes::copy_from_slice(value.as_bytes());
        match self.0.iter().position(|(k, _)| *k == name) {
            Some(first) => {
                self.0[first].1 = value;
                let mut i = 0;
                self.0.retain(|(k, _)| {
                    i += 1;
                    i - 1 == first || *k != name
                });
            }
            None => self.0.push((name, value)),
        }
        true
    }

    /// Removes every field of `name` (any case).
    pub fn remove(&mut self, name: &str) {
        self.0
            .retain(|(k, _)| !k.eq_ignore_ascii_case(name.as_bytes()));
    }

    /// Keeps the fields `keep` says to keep (given the name and the value).
    pub fn retain(&mut self, mut keep: impl FnMut(&[u8], &[u8]) -> bool) {
        self.0.retain(|(k, v)| keep(k, v));
    }

    /// The fields of an `http::HeaderMap` (HTTP/2's, from hyper): copied.
    pub fn from_map(map: &http::HeaderMap) -> Headers {
        let mut headers = Headers::with_capacity(map.len() + 8);
        for (k, v) in map {
            headers.push(
                Bytes::copy_from_slice(k.as_str().as_bytes()),
                Bytes::copy_from_slice(v.as_bytes()),
            );
        }
        headers
    }

    /// The fields as an `http::HeaderMap` (for hyper's HTTP/2), sharing the values' bytes.
    pub fn to_map(&self) -> http::HeaderMap {
        let mut map = http::HeaderMap::with_capacity(self.0.len());
        for (k, v) in &self.0 {
            // Valid by construction; a field that were not would be left out.
            if let (Ok(k), Ok(v)) = (
                http::HeaderName::from_bytes(k),
                http::HeaderValue::from_maybe_shared(v.clone()),
            ) {
                map.append(k, v);
            }
        }
        map
    }
}

/// `name` lowercased, without a copy of the common name that is lowercase already.
fn lowercase(name: &str) -> Bytes {
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Bytes::from(name.to_ascii_lowercase())
    } else {
        Bytes::copy_from_slice(name.as_bytes())
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
