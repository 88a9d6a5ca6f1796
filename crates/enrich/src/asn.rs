//! AS numbers from local databases: ip2asn TSV files and ASN `.mmdb` files.

use crate::ip2asn::{Builder, Ip2Asn};
use crate::reload::{DbOptions, Watched};
use crate::{Error, mmdb};
use serde::Deserialize;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An AS-number database that follows its files.
///
/// Opened from one or more files, each either an ip2asn TSV file (`ip2asn-v4.tsv`,
/// `ip2asn-v6.tsv`, `ip2asn-combined.tsv`, `ip2asn-v4-u32.tsv`; the TSV files are merged into
/// one table) or an ASN `.mmdb` file (MaxMind GeoLite2-ASN / GeoIP2-ISP with
/// `autonomous_system_number`, IPinfo with `asn: "AS13335"`). The format is told from the
/// content. Lookups go to the TSV table first, then to each `.mmdb` in order.
///
/// Cloning is cheap and clones share the database. When a file changes (polled every
/// [`DbOptions::reload_interval`]) all files are loaded again; if that fails the old database
/// stays in use and the error is logged (`tracing` warn) and kept in
/// [`last_reload_error`](AsnDb::last_reload_error).
///
/// ```no_run
/// use edgetrace_enrich::AsnDb;
/// # fn main() -> Result<(), edgetrace_enrich::Error> {
/// let db = AsnDb::open_files(["ip2asn-v4.tsv", "ip2asn-v6.tsv"])?;
/// assert_eq!(db.asn_string("1.1.1.1".parse().unwrap()), "AS13335");
/// assert_eq!(db.asn_string("10.0.0.1".parse().unwrap()), "");
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct AsnDb {
    inner: Arc<Watched<AsnData>>,
}

impl std::fmt::Debug for AsnDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsnDb")
            .field("paths", &self.inner.paths())
            .field("data", &**self.inner.current())
            .finish()
    }
}

/// One loaded version of the database: what [`AsnDb::snapshot`] returns. Lookups on it skip
/// the (cheap) check for a newer version.
pub struct AsnData {
    tsv: Option<Ip2Asn>,
    mmdb: Vec<(PathBuf, maxminddb::Reader<Vec<u8>>)>,
}

impl std::fmt::Debug for AsnData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsnData")
            .field("tsv_ranges", &self.tsv.as_ref().map(Ip2Asn::len))
            .field(
                "mmdb",
                &self.mmdb.iter().map(|(p, _)| p).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl AsnData {
    /// The AS number of the network holding `ip`, or `None` when no database knows it (or
    /// says it is not routed).
    #[inline]
    pub fn lookup(&self, ip: IpAddr) -> Option<u32> {
        if let Some(asn) = self.tsv.as_ref().and_then(|t| t.lookup(ip)) {
            return Some(asn);
        }
        self.mmdb.iter().find_map(|(_, r)| mmdb_asn(r, ip))
    }

    /// How many ranges the TSV table holds (after merging touching ranges of one AS).
    pub fn tsv_ranges(&self) -> usize {
        self.tsv.as_ref().map_or(0, Ip2Asn::len)
    }
}

impl AsnDb {
    /// Opens one file with the default [`DbOptions`] (reload checks every 5 s).
    pub fn open(path: impl AsRef<Path>) -> Result<AsnDb, Error> {
        Self::open_with([path], DbOptions::default())
    }

    /// Opens several files (typically `ip2asn-v4.tsv` and `ip2asn-v6.tsv`) as one database.
    pub fn open_files<P: AsRef<Path>>(paths: impl IntoIterator<Item = P>) -> Result<AsnDb, Error> {
        Self::open_with(paths, DbOptions::default())
    }

    /// Opens files with explicit options. An empty list of files is an error.
    pub fn open_with<P: AsRef<Path>>(
        paths: impl IntoIterator<Item = P>,
        options: DbOptions,
    ) -> Result<AsnDb, Error> {
        let paths: Vec<PathBuf> = paths.into_iter().map(|p| p.as_ref().to_owned()).collect();
        if paths.is_empty() {
            return Err(Error::NoFile("ASN"));
        }
        Ok(AsnDb {
            inner: Watched::open(paths, options, load, "asn")?,
        })
    }

    /// The AS number of the network holding `ip`; `None` when unknown or not routed.
    #[inline]
    pub fn lookup(&self, ip: IpAddr) -> Option<u32> {
        self.inner.current().lookup(ip)
    }

    /// `"AS13335"`, or `""` when unknown: the API's `asn` field.
    pub fn asn_string(&self, ip: IpAddr) -> String {
        self.lookup(ip)
            .map(|a| format!("AS{a}"))
            .unwrap_or_default()
    }

    /// The version in use now, for many lookups in a row.
    pub fn snapshot(&self) -> Arc<AsnData> {
        self.inner.snapshot()
    }

    /// Loads the files again if they changed since the last load. `Ok(true)` when a new
    /// version is in use; on error the old one stays.
    pub fn reload_if_changed(&self) -> Result<bool, Error> {
        self.inner.reload_if_changed()
    }

    /// Loads the files again, changed or not; on error the old version stays.
    pub fn reload(&self) -> Result<bool, Error> {
        self.inner.reload()
    }

    /// The error of the last reload attempt, until one succeeds.
    pub fn last_reload_error(&self) -> Option<String> {
        self.inner.last_error()
    }

    /// The files this database was opened from.
    pub fn paths(&self) -> &[PathBuf] {
        self.inner.paths()
    }
}

fn load(paths: &[PathBuf], options: &DbOptions) -> Result<AsnData, Error> {
    let mut files = Vec::with_capacity(paths.len());
    for p in paths {
        files.push((p, read(p)?));
    }
    let mut tsv = Builder::default();
    let mut has_tsv = false;
    let mut readers = Vec::new();
    for (path, bytes) in files {
        if mmdb::looks_like_mmdb(path, &bytes) {
            let reader = mmdb::open(path, bytes, options)?;
            check_asn_mmdb(path, &reader)?;
            readers.push((path.clone(), reader));
        } else {
            // `add` borrows the path for its errors; the bytes are consumed here.
            tsv.add(path, &bytes)?;
            has_tsv = true;
        }
    }
    let tsv = if has_tsv { Some(tsv.build()?) } else { None };
    Ok(AsnData { tsv, mmdb: readers })
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}

/// The fields that carry an AS number in the databases we know.
#[derive(Deserialize, Default)]
#[serde(default)]
struct AsnRecord {
    /// MaxMind GeoLite2-ASN, GeoIP2-ISP.
    autonomous_system_number: Option<u32>,
    /// IPinfo: `"AS13335"` (a number is accepted too).
    asn: Option<AsnField>,
}

impl AsnRecord {
    fn asn(&self) -> Option<u32> {
        self.autonomous_system_number
            .or(self.asn.as_ref().and_then(|a| a.0))
            .filter(|&a| a != 0)
    }
}

/// An AS number written as a number or as `"AS13335"`.
struct AsnField(Option<u32>);

impl<'de> Deserialize<'de> for AsnField {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = AsnField;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an AS number or a string like \"AS13335\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<AsnField, E> {
                Ok(AsnField(u32::try_from(v).ok()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<AsnField, E> {
                Ok(AsnField(u32::try_from(v).ok()))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<AsnField, E> {
                let digits = v
                    .strip_prefix("AS")
                    .or_else(|| v.strip_prefix("as"))
                    .unwrap_or(v);
                Ok(AsnField(digits.parse().ok()))
            }
        }
        d.deserialize_any(V)
    }
}

fn mmdb_asn(reader: &maxminddb::Reader<Vec<u8>>, ip: IpAddr) -> Option<u32> {
    let ip = match ip.to_canonical() {
        v4 @ IpAddr::V4(_) => v4,
        IpAddr::V6(_) if reader.metadata().ip_version == 4 => return None,
        v6 => v6,
    };
    let found = reader.lookup(ip).ok()?;
    match found.decode::<AsnRecord>() {
        Ok(r) => r?.asn(),
        Err(e) => {
            tracing::debug!("ASN lookup of {ip}: {e}");
            None
        }
    }
}

/// Rejects a `.mmdb` whose first records carry no AS number (a City database given as the
/// ASN database, say).
fn check_asn_mmdb(path: &Path, reader: &maxminddb::Reader<Vec<u8>>) -> Result<(), Error> {
    let sample = mmdb::sample::<AsnRecord>(path, reader)?;
    if sample.iter().any(|r| r.asn().is_some()) {
        return Ok(());
    }
    Err(Error::Database {
        path: path.to_owned(),
        what: format!(
            "not an ASN database: its records have no autonomous_system_number or asn field \
             (database_type {:?})",
            reader.metadata().database_type
        ),
    })
}
