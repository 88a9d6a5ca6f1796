//! Named lists (`$name`): IP, hostname and ASN lists the caller provides.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

use crate::types::Value;

/// The kind of a named list, which fixes the type of values it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListKind {
    /// IP addresses and CIDR ranges; matched against IP fields.
    Ip,
    /// Hostnames (exact, or `*.example.com` for subdomains); matched against strings.
    Hostname,
    /// Autonomous system numbers; matched against integers.
    Asn,
}

impl fmt::Display for ListKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ListKind::Ip => "IP",
            ListKind::Hostname => "hostname",
            ListKind::Asn => "ASN",
        })
    }
}

/// Resolves named lists. Checking uses [`Lists::kind`] (when a catalog is
/// given); execution uses [`Lists::contains`].
pub trait Lists: Send + Sync {
    /// The kind of list `name`, or `None` if there is no such list.
    fn kind(&self, name: &str) -> Option<ListKind>;
    /// Whether list `name` contains `value`.
    fn contains(&self, name: &str, value: &Value<'_>) -> bool;
}

#[derive(Debug, Clone)]
enum Entries {
    Ip(Vec<(IpAddr, u8)>),
    Hostname(Vec<String>),
    Asn(Vec<i64>),
}

/// A simple in-memory [`Lists`] implementation.
#[derive(Debug, Clone, Default)]
pub struct MemoryLists {
    lists: HashMap<String, Entries>,
}

impl MemoryLists {
    /// No lists.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) an IP list of `(address, prefix length)` entries.
    pub fn add_ip_list(&mut self, name: &str, entries: impl IntoIterator<Item = (IpAddr, u8)>) {
        self.lists
            .insert(name.to_owned(), Entries::Ip(entries.into_iter().collect()));
    }

    /// Adds (or replaces) a hostname list; `*.example.com` matches subdomains.
    pub fn add_hostname_list<S: Into<String>>(
        &mut self,
        name: &str,
        entries: impl IntoIterator<Item = S>,
    ) {
        let hosts = entries
            .into_iter()
            .map(|s| s.into().to_ascii_lowercase())
            .collect();
        self.lists.insert(name.to_owned(), Entries::Hostname(hosts));
    }

    /// Adds (or replaces) an ASN list.
    pub fn add_asn_list(&mut self, name: &str, entries: impl IntoIterator<Item = i64>) {
        self.lists
            .insert(name.to_owned(), Entries::Asn(entries.into_iter().collect()));
    }
}

pub(crate) fn ip_in_prefix(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

impl Lists for MemoryLists {
    fn kind(&self, name: &str) -> Option<ListKind> {
        self.lists.get(name).map(|e| match e {
            Entries::Ip(_) => ListKind::Ip,
            Entries::Hostname(_) => ListKind::Hostname,
            Entries::Asn(_) => ListKind::Asn,
        })
    }

    fn contains(&self, name: &str, value: &Value<'_>) -> bool {
        match (self.lists.get(name), value) {
            (Some(Entries::Ip(nets)), Value::Ip(ip)) => {
                nets.iter().any(|(net, len)| ip_in_prefix(*ip, *net, *len))
            }
            (Some(Entries::Hostname(hosts)), Value::Bytes(b)) => {
                let host = String::from_utf8_lossy(b).to_ascii_lowercase();
                hosts.iter().any(|h| match h.strip_prefix("*.") {
                    Some(suffix) => {
                        host.len() > suffix.len() + 1
                            && host.ends_with(suffix)
                            && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
                    }
                    None => *h == host,
                })
            }
            (Some(Entries::Asn(asns)), Value::Int(i)) => asns.contains(i),
            _ => false,
        }
    }
}
