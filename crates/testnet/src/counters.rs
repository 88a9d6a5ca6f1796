//! Per-TTL probe counters: iptables/ip6tables rules in the source namespace's
//! OUTPUT chain, one per TTL (`-m ttl --ttl-eq N` / `-m hl --hl-eq N`),
//! matching packets to the target address.

use std::collections::BTreeMap;
use std::io;
use std::net::IpAddr;

use crate::lab::Lab;

/// Counts packets sent from `ns` to `target`, per TTL / hop limit `1..=max_ttl`.
#[derive(Debug, Clone)]
pub struct TtlCounters {
    ns: String,
    target: IpAddr,
    max_ttl: u8,
}

impl TtlCounters {
    /// Appends one counting rule (no verdict) per TTL to `OUTPUT` in `ns`,
    /// loaded with a single `iptables-restore --noflush`.
    pub fn install(lab: &Lab, ns: &str, target: IpAddr, max_ttl: u8) -> io::Result<TtlCounters> {
        let ns = lab.ns_name(ns)?;
        let mut rules = String::from("*filter\n");
        for ttl in 1..=max_ttl {
            match target {
                IpAddr::V4(a) => {
                    rules.push_str(&format!("-A OUTPUT -d {a}/32 -m ttl --ttl-eq {ttl}\n"))
                }
                IpAddr::V6(a) => {
                    rules.push_str(&format!("-A OUTPUT -d {a}/128 -m hl --hl-eq {ttl}\n"))
                }
            }
        }
        rules.push_str("COMMIT\n");
        lab.exec_stdin(&ns, &[restore_cmd(target), "-w", "--noflush"], &rules)?;
        Ok(TtlCounters {
            ns,
            target,
            max_ttl,
        })
    }

    /// Zeroes the counters of the OUTPUT chain.
    pub fn reset(&self, lab: &Lab) -> io::Result<()> {
        lab.exec_ok(&self.ns, &[tables_cmd(self.target), "-w", "-Z", "OUTPUT"])
            .map(|_| ())
    }

    /// Reads the counters: TTL → packets (only TTLs with at least one packet).
    pub fn read(&self, lab: &Lab) -> io::Result<BTreeMap<u8, u64>> {
        let out = lab.exec_ok(
            &self.ns,
            &[
                tables_cmd(self.target),
                "-w",
                "-L",
                "OUTPUT",
                "-v",
                "-x",
                "-n",
            ],
        )?;
        Ok(parse_counters(&out, self.target, self.max_ttl))
    }
}

fn tables_cmd(target: IpAddr) -> &'static str {
    if target.is_ipv4() {
        "iptables"
    } else {
        "ip6tables"
    }
}

fn restore_cmd(target: IpAddr) -> &'static str {
    if target.is_ipv4() {
        "iptables-restore"
    } else {
        "ip6tables-restore"
    }
}

/// Parses `iptables -L OUTPUT -v -x -n` output ("TTL match TTL == N" or
/// "HL match HL == N" rules whose destination is `target`).
pub fn parse_counters(listing: &str, target: IpAddr, max_ttl: u8) -> BTreeMap<u8, u64> {
    let t = target.to_string();
    let mut map = BTreeMap::new();
    for line in listing.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(pkts) = fields.first().and_then(|p| p.parse::<u64>().ok()) else {
            continue;
        };
        if !fields
            .iter()
            .any(|f| f.trim_end_matches("/32").trim_end_matches("/128") == t)
        {
            continue;
        }
        let Some(pos) = fields.iter().position(|f| *f == "==") else {
            continue;
        };
        let Some(ttl) = fields.get(pos + 1).and_then(|v| v.parse::<u8>().ok()) else {
            continue;
        };
        if fields
            .get(pos - 1)
            .is_some_and(|w| *w == "TTL" || *w == "HL")
            && ttl <= max_ttl
            && pkts > 0
        {
            map.insert(ttl, pkts);
        }
    }
    map
}
