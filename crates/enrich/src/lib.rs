//! Enrichment for edgetrace: the `name` (reverse DNS) and `asn` of every hop and target, and
//! geolocation for the edge proxy's rules.
//!
//! - [`Resolver`]: PTR lookups through hickory-resolver, started the moment a hop answers so
//!   they overlap with probing, shared while in flight, bounded in number and time, cached
//!   with their TTLs (negative answers too).
//! - [`AsnDb`]: AS numbers from ip2asn TSV files (sorted ranges, a 16-bit prefix index and a
//!   binary search: tens of millions of lookups a second) or ASN `.mmdb` files.
//! - [`GeoDb`] and [`Geo`]: `ip.src.country` and friends from a GeoLite2-City/Country `.mmdb`.
//! - [`Enricher`]: both for a [`ColoTrace`].
//!
//! Databases follow their files: a changed file is loaded again without a restart, and a bad
//! new file leaves the old database in use. A bad file at startup is an [`Error`] that names
//! the file and what is wrong with it.
//!
//! ```no_run
//! use edgetrace_enrich::{AsnDb, DnsOptions, Enricher, Resolver};
//! use edgetrace_probe::report::{Colo, ColoTrace};
//! # fn main() -> Result<(), edgetrace_enrich::Error> {
//! // Outside any tokio runtime the resolver starts a small one of its own.
//! let enricher = Enricher {
//!     resolver: Some(Resolver::new(DnsOptions::default())?), // None for --no-dns
//!     asn: Some(AsnDb::open_files(["ip2asn-v4.tsv", "ip2asn-v6.tsv"])?),
//! };
//! // In the probing loop, whenever a reply arrives from `ip`:
//! # let ip = "198.18.0.1".parse().unwrap();
//! enricher.prefetch(ip);
//! // When the trace is done:
//! let mut trace = ColoTrace::from_hops(Colo::default(), ip, &[], Default::default());
//! enricher.enrich_blocking(&mut trace); // or `enricher.enrich(&mut trace).await`
//! # Ok(())
//! # }
//! ```

mod asn;
mod dns;
mod error;
mod geo;
mod ip2asn;
mod mmdb;
mod reload;
#[cfg(feature = "testing")]
pub mod testing;

pub use asn::{AsnData, AsnDb};
pub use dns::{DnsOptions, Resolver};
pub use error::Error;
pub use geo::{Geo, GeoDb};
pub use reload::DbOptions;

use edgetrace_probe::report::ColoTrace;
use std::collections::HashMap;
use std::net::IpAddr;

/// Reverse DNS and ASN for traces. Either part may be absent: with no resolver (`--no-dns`)
/// names stay equal to the IPs; with no ASN database `asn` stays `""`.
#[derive(Debug, Clone, Default)]
pub struct Enricher {
    pub resolver: Option<Resolver>,
    pub asn: Option<AsnDb>,
}

impl Enricher {
    /// Starts the reverse lookup of an address that just answered. Returns at once; callable
    /// from any thread. Does nothing without a resolver.
    pub fn prefetch(&self, ip: IpAddr) {
        if let Some(r) = &self.resolver {
            r.prefetch(ip);
        }
    }

    /// `"AS13335"`, or `""` when unknown or when there is no ASN database.
    pub fn asn(&self, ip: IpAddr) -> String {
        self.asn
            .as_ref()
            .map(|db| db.asn_string(ip))
            .unwrap_or_default()
    }

    /// Fills `name` and `asn` of every node and of the target summary. Waits for the names
    /// at most about one lookup timeout (less when they were prefetched).
    pub async fn enrich(&self, trace: &mut ColoTrace) {
        let names = match &self.resolver {
            Some(r) => r.names(addresses(trace)).await,
            None => HashMap::new(),
        };
        self.apply(trace, &names);
    }

    /// [`enrich`](Enricher::enrich) for code outside async contexts (the CLI): blocks this
    /// thread. Must not be called from a thread that drives the resolver's runtime.
    pub fn enrich_blocking(&self, trace: &mut ColoTrace) {
        let names = match &self.resolver {
            Some(r) => r.names_blocking(addresses(trace)),
            None => HashMap::new(),
        };
        self.apply(trace, &names);
    }

    fn apply(&self, trace: &mut ColoTrace, names: &HashMap<IpAddr, String>) {
        let asns = self.asn.as_ref().map(AsnDb::snapshot);
        let fill = |ip: &str, name: &mut String, asn: &mut String| {
            let Ok(addr) = ip.parse::<IpAddr>() else {
                return;
            };
            if let Some(n) = names.get(&addr) {
                name.clone_from(n);
            }
            if let Some(db) = &asns {
                *asn = db
                    .lookup(addr)
                    .map(|a| format!("AS{a}"))
                    .unwrap_or_default();
            }
        };
        for hop in &mut trace.hops {
            for node in &mut hop.nodes {
                fill(&node.ip, &mut node.name, &mut node.asn);
            }
        }
        let t = &mut trace.target_summary;
        fill(&t.ip, &mut t.name, &mut t.asn);
    }
}

/// Every address of the trace, target included (a failed trace's target may be a hostname
/// and is skipped).
fn addresses(trace: &ColoTrace) -> Vec<IpAddr> {
    trace
        .hops
        .iter()
        .flat_map(|h| h.nodes.iter().map(|n| n.ip.as_str()))
        .chain(std::iter::once(trace.target_summary.ip.as_str()))
        .filter_map(|s| s.parse().ok())
        .collect()
}
