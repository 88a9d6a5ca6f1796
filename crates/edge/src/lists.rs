//! Named lists, as Cloudflare's Lists API has them: an account's IP, hostname and ASN lists,
//! which rule expressions name as `$name`.
//!
//! This module validates lists and their items ([`validate_list`], [`validate_items`]) and
//! builds [`Catalog`], the account's lists as the rules engine reads them.
//!
//! ```
//! use edgetrace_edge::lists::{Catalog, ItemValue, validate_items};
//! use edgetrace_rules::{ListKind, Lists, Value};
//! let body = serde_json::json!([{"ip": "192.0.2.0/24"}, {"ip": "2001:db8::/32", "comment": "lab"}]);
//! let items = validate_items(ListKind::Ip, &body).unwrap();
//! let mut catalog = Catalog::new();
//! catalog.insert("office", ListKind::Ip, items.into_iter().map(|i| i.value));
//! assert!(catalog.contains("office", &Value::Ip("192.0.2.7".parse().unwrap())));
//! assert!(!catalog.contains("office", &Value::Ip("198.51.100.1".parse().unwrap())));
//! assert_eq!(validate_items(ListKind::Ip, &serde_json::json!([{"ip": "10.0.0.1/4"}]))
//!     .unwrap_err()[0].to_string(),
//!     "/0/ip: [0].ip: \"10.0.0.1/4\": an IPv4 prefix must be /8 to /32");
//! ```

use crate::input::{Fields, object, path, type_name};
use crate::{FieldError, FieldErrors};
use edgetrace_rules::{ListKind, Lists, Value as RuleValue};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The most items one list holds (Cloudflare's limit for most plans).
pub const MAX_ITEMS: usize = 10_000;
/// The longest list name.
pub const MAX_NAME: usize = 50;
/// The longest list description and item comment.
pub const MAX_DESCRIPTION: usize = 500;

/// The API's name of a list kind: `ip`, `hostname` or `asn`.
pub fn kind_name(kind: ListKind) -> &'static str {
    match kind {
        ListKind::Ip => "ip",
        ListKind::Hostname => "hostname",
        ListKind::Asn => "asn",
    }
}

/// A list kind from its API name, or why not.
pub fn parse_kind(kind: &str) -> Result<ListKind, String> {
    match kind {
        "ip" => Ok(ListKind::Ip),
        "hostname" => Ok(ListKind::Hostname),
        "asn" => Ok(ListKind::Asn),
        "redirect" => Err(
            "\"redirect\" lists (Bulk Redirects) are not supported by edgetrace; use ip, hostname or asn"
                .into(),
        ),
        other => Err(format!(
            "{other:?} is not a list kind; allowed: ip, hostname, asn"
        )),
    }
}

/// A list's name, description and kind, as created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewList {
    pub name: String,
    pub description: String,
    pub kind: ListKind,
}

/// Validates the body of `POST /accounts/{id}/rules/lists`.
pub fn validate_list(body: &Value) -> Result<NewList, FieldErrors> {
    let mut errors = FieldErrors::new();
    let Some(map) = object(body, "", &mut errors) else {
        return Err(errors);
    };
    let fields = Fields::new(map, "");
    fields.only(&["name", "description", "kind"], &mut errors);
    let name = fields.string("name", true, &mut errors);
    if let Some(n) = &name
        && let Err(e) = check_name(n)
    {
        errors.push(fields.error("name", e));
    }
    let description = description(&fields, &mut errors);
    let kind = fields
        .string("kind", true, &mut errors)
        .and_then(|k| match parse_kind(&k) {
            Ok(k) => Some(k),
            Err(e) => {
                errors.push(fields.error("kind", e));
                None
            }
        });
    match (name, kind) {
        (Some(name), Some(kind)) if errors.is_empty() => Ok(NewList {
            name,
            description: description.unwrap_or_default(),
            kind,
        }),
        _ => Err(errors),
    }
}

/// Validates the body of `PUT /accounts/{id}/rules/lists/{list_id}`: the new description
/// (only the description of a list can change, as on Cloudflare).
pub fn validate_list_update(body: &Value) -> Result<String, FieldErrors> {
    let mut errors = FieldErrors::new();
    let Some(map) = object(body, "", &mut errors) else {
        return Err(errors);
    };
    let fields = Fields::new(map, "");
    fields.only(&["description"], &mut errors);
    let description = description(&fields, &mut errors);
    if errors.is_empty() {
        Ok(description.unwrap_or_default())
    } else {
        Err(errors)
    }
}

fn description(fields: &Fields<'_>, errors: &mut FieldErrors) -> Option<String> {
    let d = fields.string("description", false, errors)?;
    if d.chars().count() > MAX_DESCRIPTION {
        errors.push(fields.error(
            "description",
            format!("at most {MAX_DESCRIPTION} characters"),
        ));
    }
    Some(d)
}

/// A list name: 1-50 characters, lowercase letters, digits and `_`, as Cloudflare allows,
/// so that it can be written `$name` in an expression.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(format!("{name:?} must be 1-{MAX_NAME} characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        return Err(format!(
            "{name:?} contains {c:?}; a list name has only lowercase letters, digits and '_'"
        ));
    }
    Ok(())
}

/// An IP list item: an address (a full-length prefix) or a CIDR range, host bits zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpPrefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl IpPrefix {
    /// Whether `ip` is in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                u32::from(a) & mask == u32::from(net) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                u128::from(a) & mask == u128::from(net) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for IpPrefix {
    /// `192.0.2.1` for a single IPv4 address, `CIDR` otherwise (IPv6 lowercase, compressed).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr {
            IpAddr::V4(a) if self.len == 32 => write!(f, "{a}"),
            a => write!(f, "{a}/{}", self.len),
        }
    }
}

/// Parses an IP list item as Cloudflare accepts them: an IPv4 address, an IPv4 CIDR range
/// /8 to /32, an IPv6 CIDR range /4 to /64, or an IPv6 address, which is kept as the /64
/// that contains it. A range's host bits must be zero.
pub fn parse_ip_item(text: &str) -> Result<IpPrefix, String> {
    let (addr, len) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text, None),
    };
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| format!("{text:?} is not an IP address or CIDR range"))?;
    let len = match len {
        None => None,
        Some(l) if !l.is_empty() && l.len() <= 3 && l.bytes().all(|b| b.is_ascii_digit()) => {
            // At most 3 digits: fits, and anything over 128 fails the range checks below.
            Some(l.parse::<u16>().unwrap_or(u16::MAX).min(255) as u8)
        }
        Some(_) => return Err(format!("{text:?}: the prefix length must be a number")),
    };
    match addr {
        IpAddr::V4(a) => {
            let len = len.unwrap_or(32);
            if !(8..=32).contains(&len) {
                return Err(format!("{text:?}: an IPv4 prefix must be /8 to /32"));
            }
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            let net = Ipv4Addr::from(u32::from(a) & mask);
            if net != a {
                return Err(format!(
                    "{text:?} has host bits set; the range is {net}/{len}"
                ));
            }
            Ok(IpPrefix {
                addr: IpAddr::V4(a),
                len,
            })
        }
        IpAddr::V6(a) => {
            let mask = |len: u8| u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            match len {
                None => Ok(IpPrefix {
                    addr: IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask(64))),
                    len: 64,
                }),
                Some(len) if !(4..=64).contains(&len) => Err(format!(
                    "{text:?}: an IPv6 prefix must be /4 to /64 (a single address is kept as its /64)"
                )),
                Some(len) => {
                    let net = Ipv6Addr::from(u128::from(a) & mask(len));
                    if net != a {
                        return Err(format!(
                            "{text:?} has host bits set; the range is {net}/{len}"
                        ));
                    }
                    Ok(IpPrefix {
                        addr: IpAddr::V6(a),
                        len,
                    })
                }
            }
        }
    }
}

/// A hostname list item: `example.com`, or `*.example.com` for its subdomains (and, with
/// `exclude_exact_hostname: false`, the name itself).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostnameItem {
    /// Lowercase, without a trailing dot.
    pub url_hostname: String,
    /// For a wildcard: whether the name without `*.` is left out (the default, true).
    pub exclude_exact_hostname: bool,
}

impl HostnameItem {
    /// Whether `host` (any case) is matched by the item.
    pub fn matches(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        match self.url_hostname.strip_prefix("*.") {
            Some(suffix) => {
                (host.len() > suffix.len() + 1
                    && host.ends_with(suffix)
                    && host.as_bytes()[host.len() - suffix.len() - 1] == b'.')
                    || (!self.exclude_exact_hostname && host == suffix)
            }
            None => host == self.url_hostname,
        }
    }
}

/// Checks a hostname item: ASCII letters, digits, `-` and dots, with `*.` only in front.
fn parse_hostname(text: &str) -> Result<String, String> {
    let host = text.trim_end_matches('.').to_ascii_lowercase();
    let bare = host.strip_prefix("*.").unwrap_or(&host);
    if bare.is_empty() || host.len() > 253 {
        return Err(format!("{text:?} must be a hostname of 1-253 characters"));
    }
    for label in bare.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            let hint = if label.contains('*') {
                " (a wildcard is only allowed as a leading \"*.\")"
            } else {
                ""
            };
            return Err(format!(
                "{text:?} is not a valid hostname: label {label:?} must be 1-63 letters, digits or '-'{hint}"
            ));
        }
    }
    Ok(host)
}

/// The value of one list item.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ItemValue {
    Ip(IpPrefix),
    Hostname(HostnameItem),
    /// A 32-bit autonomous system number.
    Asn(u32),
}

impl ItemValue {
    pub fn kind(&self) -> ListKind {
        match self {
            ItemValue::Ip(_) => ListKind::Ip,
            ItemValue::Hostname(_) => ListKind::Hostname,
            ItemValue::Asn(_) => ListKind::Asn,
        }
    }

    /// What makes two items the same: adding an item whose key is in the list already
    /// replaces that item's comment.
    pub fn key(&self) -> String {
        match self {
            ItemValue::Ip(p) => p.to_string(),
            ItemValue::Hostname(h) => h.url_hostname.clone(),
            ItemValue::Asn(a) => a.to_string(),
        }
    }

    /// The item's field as the API writes it: `("ip", "192.0.2.0/24")`,
    /// `("hostname", {"url_hostname": …, "exclude_exact_hostname": …})`, `("asn", 13335)`.
    pub fn field(&self) -> (&'static str, Value) {
        match self {
            ItemValue::Ip(p) => ("ip", json!(p.to_string())),
            ItemValue::Hostname(h) => (
                "hostname",
                json!({
                    "url_hostname": h.url_hostname,
                    "exclude_exact_hostname": h.exclude_exact_hostname,
                }),
            ),
            ItemValue::Asn(a) => ("asn", json!(a)),
        }
    }

    /// Reads an item's field (`value`, at `pointer`) for a list of `kind`: what the API
    /// receives, and what the store gives back.
    pub fn parse(kind: ListKind, value: &Value, pointer: &str) -> Result<ItemValue, FieldError> {
        let err = |m: String| FieldError::new(pointer, format!("{}: {m}", path(pointer)));
        match kind {
            ListKind::Ip => match value {
                Value::String(s) => parse_ip_item(s).map(ItemValue::Ip).map_err(err),
                other => Err(err(format!(
                    "must be a string (an IP address or CIDR range), not {}",
                    type_name(other)
                ))),
            },
            ListKind::Asn => match value.as_u64() {
                Some(n) if n <= u64::from(u32::MAX) => Ok(ItemValue::Asn(n as u32)),
                _ => Err(err(format!(
                    "must be an AS number from 0 to 4294967295, not {value}"
                ))),
            },
            ListKind::Hostname => {
                let mut errors = FieldErrors::new();
                let Some(map) = object(value, pointer, &mut errors) else {
                    return Err(errors.remove(0));
                };
                let fields = Fields::new(map, pointer);
                fields.only(&["url_hostname", "exclude_exact_hostname"], &mut errors);
                let host = fields.string("url_hostname", true, &mut errors);
                let exclude = fields.boolean("exclude_exact_hostname", &mut errors);
                if let Some(e) = errors.into_iter().next() {
                    return Err(e);
                }
                let host = host.unwrap_or_default();
                let url_hostname =
                    parse_hostname(&host).map_err(|m| fields.error("url_hostname", m))?;
                Ok(ItemValue::Hostname(HostnameItem {
                    url_hostname,
                    exclude_exact_hostname: exclude.unwrap_or(true),
                }))
            }
        }
    }
}

/// One item to add: its value and comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewItem {
    pub value: ItemValue,
    pub comment: Option<String>,
}

/// Validates the body of `POST`/`PUT …/rules/lists/{list_id}/items`: an array of items of the
/// list's kind, `{ip}`, `{hostname: {url_hostname}}` or `{asn}`, each with an optional
/// `comment`. The same value twice is an error.
pub fn validate_items(kind: ListKind, body: &Value) -> Result<Vec<NewItem>, FieldErrors> {
    let mut errors = FieldErrors::new();
    let Value::Array(items) = body else {
        return Err(vec![FieldError::new(
            "",
            format!(
                "body: must be an array of list items, not {}",
                type_name(body)
            ),
        )]);
    };
    if items.len() > MAX_ITEMS {
        return Err(vec![FieldError::new(
            "",
            format!(
                "body: {} items; a list holds at most {MAX_ITEMS}",
                items.len()
            ),
        )]);
    }
    let field = match kind {
        ListKind::Ip => "ip",
        ListKind::Hostname => "hostname",
        ListKind::Asn => "asn",
    };
    let mut out = Vec::with_capacity(items.len());
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        let base = format!("/{i}");
        let Some(map) = object(item, &base, &mut errors) else {
            continue;
        };
        let fields = Fields::new(map, &base);
        let before = errors.len();
        for key in map.keys() {
            if key == field || key == "comment" {
                continue;
            }
            let message = if matches!(key.as_str(), "ip" | "hostname" | "asn" | "redirect") {
                format!(
                    "this list is of kind {}: its items have {field:?}, not {key:?}",
                    kind_name(kind)
                )
            } else {
                format!("unknown field; allowed: {field}, comment")
            };
            errors.push(fields.error(key, message));
        }
        let comment = fields.string("comment", false, &mut errors);
        if let Some(c) = &comment
            && c.chars().count() > MAX_DESCRIPTION
        {
            errors.push(fields.error("comment", format!("at most {MAX_DESCRIPTION} characters")));
        }
        let value = match fields.get(field) {
            None => {
                fields.missing(field, &mut errors);
                None
            }
            Some(v) => match ItemValue::parse(kind, v, &fields.pointer(field)) {
                Ok(v) => Some(v),
                Err(e) => {
                    errors.push(e);
                    None
                }
            },
        };
        if let Some(v) = value
            && errors.len() == before
        {
            if let Some(first) = seen.insert(v.key(), i) {
                errors.push(fields.error(
                    field,
                    format!("{} is also item {first}; each value once", v.key()),
                ));
            }
            out.push(NewItem { value: v, comment });
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Validates the body of `DELETE …/rules/lists/{list_id}/items`: `{"items": [{"id": …}]}`.
pub fn validate_item_ids(body: &Value) -> Result<Vec<String>, FieldErrors> {
    let mut errors = FieldErrors::new();
    let Some(map) = object(body, "", &mut errors) else {
        return Err(errors);
    };
    let fields = Fields::new(map, "");
    fields.only(&["items"], &mut errors);
    let mut ids = Vec::new();
    match fields.array("items", &mut errors) {
        None if fields.get("items").is_none() => fields.missing("items", &mut errors),
        None => {}
        Some(items) => {
            for (i, item) in items.iter().enumerate() {
                let base = format!("/items/{i}");
                let Some(map) = object(item, &base, &mut errors) else {
                    continue;
                };
                let item = Fields::new(map, &base);
                item.only(&["id"], &mut errors);
                if let Some(id) = item.string("id", true, &mut errors) {
                    ids.push(id);
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(ids)
    } else {
        Err(errors)
    }
}

#[derive(Debug, Clone)]
enum Entries {
    Ip(Vec<IpPrefix>),
    Hostname(Vec<HostnameItem>),
    Asn(Vec<u32>),
}

/// An account's lists, as rule expressions see them (`ip.src in $office`): implements
/// [`edgetrace_rules::Lists`].
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    lists: HashMap<String, Entries>,
}

impl Catalog {
    /// No lists.
    pub fn new() -> Catalog {
        Catalog::default()
    }

    /// Adds (or replaces) list `name` of `kind`; items of another kind are left out.
    pub fn insert(
        &mut self,
        name: &str,
        kind: ListKind,
        items: impl IntoIterator<Item = ItemValue>,
    ) {
        let items = items.into_iter();
        let entries = match kind {
            ListKind::Ip => Entries::Ip(
                items
                    .filter_map(|i| match i {
                        ItemValue::Ip(p) => Some(p),
                        _ => None,
                    })
                    .collect(),
            ),
            ListKind::Hostname => Entries::Hostname(
                items
                    .filter_map(|i| match i {
                        ItemValue::Hostname(h) => Some(h),
                        _ => None,
                    })
                    .collect(),
            ),
            ListKind::Asn => Entries::Asn(
                items
                    .filter_map(|i| match i {
                        ItemValue::Asn(a) => Some(a),
                        _ => None,
                    })
                    .collect(),
            ),
        };
        self.lists.insert(name.to_string(), entries);
    }

    /// The names of the lists, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.lists.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    pub fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }
}

impl Lists for Catalog {
    fn kind(&self, name: &str) -> Option<ListKind> {
        self.lists.get(name).map(|e| match e {
            Entries::Ip(_) => ListKind::Ip,
            Entries::Hostname(_) => ListKind::Hostname,
            Entries::Asn(_) => ListKind::Asn,
        })
    }

    fn contains(&self, name: &str, value: &RuleValue) -> bool {
        match (self.lists.get(name), value) {
            (Some(Entries::Ip(nets)), RuleValue::Ip(ip)) => nets.iter().any(|n| n.contains(*ip)),
            (Some(Entries::Hostname(hosts)), RuleValue::Bytes(b)) => match std::str::from_utf8(b) {
                Ok(host) => hosts.iter().any(|h| h.matches(host)),
                Err(_) => false,
            },
            (Some(Entries::Asn(asns)), RuleValue::Int(i)) => {
                u32::try_from(*i).is_ok_and(|a| asns.contains(&a))
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Result<String, String> {
        parse_ip_item(s).map(|p| p.to_string())
    }

    #[test]
    fn ip_items_follow_cloudflares_prefix_limits() {
        assert_eq!(ip("192.0.2.1").unwrap(), "192.0.2.1");
        assert_eq!(ip("192.0.2.1/32").unwrap(), "192.0.2.1");
        assert_eq!(ip("10.0.0.0/8").unwrap(), "10.0.0.0/8");
        assert_eq!(
            ip("10.0.0.0/7").unwrap_err(),
            "\"10.0.0.0/7\": an IPv4 prefix must be /8 to /32"
        );
        assert_eq!(
            ip("192.0.2.1/24").unwrap_err(),
            "\"192.0.2.1/24\" has host bits set; the range is 192.0.2.0/24"
        );
        assert_eq!(ip("2001:DB8::/32").unwrap(), "2001:db8::/32");
        assert_eq!(
            ip("2001:db8::/4").unwrap_err(),
            "\"2001:db8::/4\" has host bits set; the range is 2000::/4"
        );
        assert_eq!(ip("2000::/4").unwrap(), "2000::/4");
        assert_eq!(ip("2001:db8:1:2:3:4:5:6").unwrap(), "2001:db8:1:2::/64");
        assert!(ip("2001:db8::/65").unwrap_err().contains("/4 to /64"));
        assert!(ip("2001:db8::/3").unwrap_err().contains("/4 to /64"));
        assert!(ip("example.com").unwrap_err().contains("not an IP address"));
        assert!(ip("10.0.0.0/").unwrap_err().contains("must be a number"));
        assert!(ip("10.0.0.0/+8").unwrap_err().contains("must be a number"));
        assert!(ip("10.0.0.0/999").unwrap_err().contains("/8 to /32"));
        assert!(
            ip("10.0.0.0/1000")
                .unwrap_err()
                .contains("must be a number")
        );
    }

    #[test]
    fn items_are_checked_against_the_kind_with_pointers() {
        let body = json!([
            {"ip": "10.0.0.0/8", "comment": "corp"},
            {"asn": 13335},
            {"ip": 7},
            {"ip": "10.0.0.0/8"},
            "x",
            {"comment": "no value"},
            {"ip": "192.0.2.0/24", "extra": 1}
        ]);
        let errors = validate_items(ListKind::Ip, &body).unwrap_err();
        let got: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            [
                "/1/asn: [1].asn: this list is of kind ip: its items have \"ip\", not \"asn\"",
                "/1/ip: [1].ip: required",
                "/2/ip: [2].ip: must be a string (an IP address or CIDR range), not a number",
                "/3/ip: [3].ip: 10.0.0.0/8 is also item 0; each value once",
                "/4: [4]: must be an object, not a string",
                "/5/ip: [5].ip: required",
                "/6/extra: [6].extra: unknown field; allowed: ip, comment",
            ]
        );
        assert_eq!(
            validate_items(ListKind::Ip, &json!({"ip": "10.0.0.0/8"})).unwrap_err()[0].pointer,
            ""
        );
    }

    #[test]
    fn hostname_and_asn_items() {
        let items = validate_items(
            ListKind::Hostname,
            &json!([
                {"hostname": {"url_hostname": "Example.COM."}},
                {"hostname": {"url_hostname": "*.example.net", "exclude_exact_hostname": false}}
            ]),
        )
        .unwrap();
        assert_eq!(items[0].value.key(), "example.com");
        assert_eq!(
            items[1].value.field(),
            (
                "hostname",
                json!({"url_hostname": "*.example.net", "exclude_exact_hostname": false})
            )
        );
        let errors = validate_items(
            ListKind::Hostname,
            &json!([{"hostname": {"url_hostname": "a.*.example.com"}}, {"hostname": "x"}]),
        )
        .unwrap_err();
        assert_eq!(errors[0].pointer, "/0/hostname/url_hostname");
        assert!(
            errors[0].message.contains("only allowed as a leading"),
            "{}",
            errors[0]
        );
        assert_eq!(
            errors[1].to_string(),
            "/1/hostname: [1].hostname: must be an object, not a string"
        );
        let errors = validate_items(
            ListKind::Asn,
            &json!([{"asn": -1}, {"asn": 4294967296u64}, {"asn": 1.5}]),
        )
        .unwrap_err();
        assert_eq!(errors.len(), 3);
        assert_eq!(
            errors[0].to_string(),
            "/0/asn: [0].asn: must be an AS number from 0 to 4294967295, not -1"
        );
        assert_eq!(
            validate_items(ListKind::Asn, &json!([{"asn": 4294967295u64}])).unwrap()[0].value,
            ItemValue::Asn(u32::MAX)
        );
    }

    #[test]
    fn lists_are_validated() {
        let list = validate_list(&json!({"name": "office_v4", "kind": "ip"})).unwrap();
        assert_eq!(
            list,
            NewList {
                name: "office_v4".into(),
                description: String::new(),
                kind: ListKind::Ip
            }
        );
        let errors =
            validate_list(&json!({"name": "Office-1", "kind": "redirect", "x": 1})).unwrap_err();
        let got: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            [
                "/x: x: unknown field; allowed: name, description, kind",
                "/name: name: \"Office-1\" contains 'O'; a list name has only lowercase letters, digits and '_'",
                "/kind: kind: \"redirect\" lists (Bulk Redirects) are not supported by edgetrace; use ip, hostname or asn",
            ]
        );
        let errors = validate_list(&json!({"kind": "ips"})).unwrap_err();
        assert_eq!(errors[0].to_string(), "/name: name: required");
        assert_eq!(
            errors[1].to_string(),
            "/kind: kind: \"ips\" is not a list kind; allowed: ip, hostname, asn"
        );
        assert!(validate_list(&json!({"name": "a".repeat(51), "kind": "ip"})).is_err());
        assert_eq!(
            validate_list_update(&json!({"description": "d"})).unwrap(),
            "d"
        );
        assert_eq!(
            validate_list_update(&json!({"kind": "asn"})).unwrap_err()[0].pointer,
            "/kind"
        );
        assert_eq!(
            validate_item_ids(&json!({"items": [{"id": "a"}, {"id": 3}]})).unwrap_err()[0]
                .to_string(),
            "/items/1/id: items[1].id: must be a string, not a number"
        );
        assert_eq!(
            validate_item_ids(&json!({"items": [{"id": "a"}]})).unwrap(),
            ["a"]
        );
    }

    #[test]
    fn the_catalog_answers_the_rules_engine() {
        let mut c = Catalog::new();
        let ips = ["10.0.0.0/8", "192.0.2.1", "2001:db8::/32"]
            .map(|s| ItemValue::Ip(parse_ip_item(s).unwrap()));
        c.insert("office", ListKind::Ip, ips);
        let host = |h: &str, exclude: bool| {
            ItemValue::Hostname(HostnameItem {
                url_hostname: h.into(),
                exclude_exact_hostname: exclude,
            })
        };
        c.insert(
            "hosts",
            ListKind::Hostname,
            [
                host("example.com", true),
                host("*.example.net", true),
                host("*.example.org", false),
            ],
        );
        c.insert("asns", ListKind::Asn, [ItemValue::Asn(13335)]);
        assert_eq!(c.names(), ["asns", "hosts", "office"]);
        assert_eq!(c.kind("office"), Some(ListKind::Ip));
        assert_eq!(c.kind("nope"), None);
        let ip = |s: &str| RuleValue::Ip(s.parse().unwrap());
        assert!(c.contains("office", &ip("10.200.0.1")));
        assert!(c.contains("office", &ip("192.0.2.1")));
        assert!(!c.contains("office", &ip("192.0.2.2")));
        assert!(c.contains("office", &ip("2001:db8:ffff::1")));
        assert!(!c.contains("office", &ip("2001:db9::1")));
        assert!(!c.contains("office", &ip("::ffff:10.0.0.1")));
        let s = |s: &str| RuleValue::bytes(s.as_bytes());
        assert!(c.contains("hosts", &s("EXAMPLE.com")));
        assert!(!c.contains("hosts", &s("www.example.com")));
        assert!(c.contains("hosts", &s("a.b.example.net")));
        assert!(!c.contains("hosts", &s("example.net")));
        assert!(!c.contains("hosts", &s("badexample.net")));
        assert!(c.contains("hosts", &s("example.org")));
        assert!(c.contains("hosts", &s("www.example.org")));
        assert!(!c.contains("hosts", &RuleValue::bytes(vec![0xff])));
        assert!(c.contains("asns", &RuleValue::Int(13335)));
        assert!(!c.contains("asns", &RuleValue::Int(-13335)));
        assert!(!c.contains("asns", &s("13335")));
        assert!(!c.contains("nope", &RuleValue::Int(1)));
    }
}
