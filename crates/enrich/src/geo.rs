//! Geolocation from a GeoLite2-City / GeoLite2-Country `.mmdb`, for the proxy's `ip.src.*`
//! fields.

use crate::asn::{AsnDb, read};
use crate::reload::{DbOptions, Watched};
use crate::{Error, mmdb};
use serde::Serialize;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where an address is, as the rules language's `ip.src.*` fields see it. Every field is
/// `None` when the database does not say (a Country database has no city, say).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Geo {
    /// `ip.src.country`: ISO 3166-1 alpha-2, `"GB"`.
    pub country: Option<String>,
    /// `ip.src.continent`: `"AF"`, `"AN"`, `"AS"`, `"EU"`, `"NA"`, `"OC"` or `"SA"`.
    pub continent: Option<String>,
    /// `ip.src.city`, in English.
    pub city: Option<String>,
    /// `ip.src.region`: the first subdivision's English name, `"England"`.
    pub region: Option<String>,
    /// `ip.src.region_code`: the first subdivision's code without the country, `"ENG"`.
    pub region_code: Option<String>,
    /// `ip.src.postal_code`.
    pub postal_code: Option<String>,
    /// `ip.src.lat`.
    pub lat: Option<f64>,
    /// `ip.src.lon`.
    pub lon: Option<f64>,
    /// `ip.src.subdivision_1_iso_code`: ISO 3166-2 with the country, `"GB-ENG"`.
    pub subdivision_1_iso_code: Option<String>,
    /// `ip.src.subdivision_2_iso_code`: `"GB-WSM"`.
    pub subdivision_2_iso_code: Option<String>,
    /// `ip.src.is_in_european_union`; known whenever the country is.
    pub is_in_european_union: Option<bool>,
    /// `ip.src.timezone.name`: an IANA zone, `"Europe/London"`.
    pub timezone_name: Option<String>,
    /// `ip.src.metro_code` (US only).
    pub metro_code: Option<u16>,
    /// `ip.src.asnum`, from the ASN database when one is configured.
    pub asnum: Option<u32>,
}

impl Geo {
    /// Everything known about `ip` from whichever databases are configured: the one call the
    /// proxy needs per request.
    pub fn of(ip: IpAddr, geo: Option<&GeoDb>, asn: Option<&AsnDb>) -> Geo {
        let mut g = geo.map(|db| db.lookup(ip)).unwrap_or_default();
        g.asnum = asn.and_then(|db| db.lookup(ip));
        g
    }
}

/// A GeoLite2-City or GeoLite2-Country (or GeoIP2 equivalent) database that follows its file,
/// as [`AsnDb`] does.
///
/// ```no_run
/// use edgetrace_enrich::{Geo, GeoDb};
/// # fn main() -> Result<(), edgetrace_enrich::Error> {
/// let db = GeoDb::open("GeoLite2-City.mmdb")?;
/// let geo: Geo = db.lookup("81.2.69.142".parse().unwrap());
/// assert_eq!(geo.country.as_deref(), Some("GB"));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct GeoDb {
    inner: Arc<Watched<GeoData>>,
}

impl std::fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoDb")
            .field("paths", &self.inner.paths())
            .finish_non_exhaustive()
    }
}

pub(crate) struct GeoData {
    reader: maxminddb::Reader<Vec<u8>>,
}

impl GeoDb {
    /// Opens a `.mmdb` with the default [`DbOptions`].
    pub fn open(path: impl AsRef<Path>) -> Result<GeoDb, Error> {
        Self::open_with(path, DbOptions::default())
    }

    /// Opens a `.mmdb` with explicit options.
    pub fn open_with(path: impl AsRef<Path>, options: DbOptions) -> Result<GeoDb, Error> {
        let paths = vec![path.as_ref().to_owned()];
        Ok(GeoDb {
            inner: Watched::open(paths, options, load, "geo")?,
        })
    }

    /// Where `ip` is; all `None` when the database does not know it.
    pub fn lookup(&self, ip: IpAddr) -> Geo {
        let data = self.inner.current();
        let ip = ip.to_canonical();
        if ip.is_ipv6() && data.reader.metadata().ip_version == 4 {
            return Geo::default();
        }
        let record = match data.reader.lookup(ip).map(|r| {
            r.decode::<maxminddb::geoip2::City<'_>>()
                .map(Option::unwrap_or_default)
        }) {
            Ok(Ok(r)) => r,
            Ok(Err(e)) | Err(e) => {
                tracing::debug!("geolocation of {ip}: {e}");
                return Geo::default();
            }
        };
        let country = record
            .country
            .iso_code
            .or(record.registered_country.iso_code);
        let in_eu = if record.country.iso_code.is_some() {
            record.country.is_in_european_union
        } else {
            record.registered_country.is_in_european_union
        };
        let sub = |i: usize| record.subdivisions.get(i);
        let with_country = |code: Option<&str>| match (country, code) {
            (Some(c), Some(s)) => Some(format!("{c}-{s}")),
            _ => None,
        };
        let s = |v: Option<&str>| v.map(str::to_owned);
        Geo {
            country: s(country),
            continent: s(record.continent.code),
            city: s(record.city.names.english),
            region: s(sub(0).and_then(|d| d.names.english)),
            region_code: s(sub(0).and_then(|d| d.iso_code)),
            postal_code: s(record.postal.code),
            lat: record.location.latitude,
            lon: record.location.longitude,
            subdivision_1_iso_code: with_country(sub(0).and_then(|d| d.iso_code)),
            subdivision_2_iso_code: with_country(sub(1).and_then(|d| d.iso_code)),
            // MaxMind writes the flag only when it is true.
            is_in_european_union: country.map(|_| in_eu.unwrap_or(false)),
            timezone_name: s(record.location.time_zone),
            metro_code: record.location.metro_code,
            asnum: None,
        }
    }

    /// Loads the file again if it changed; on error the old version stays.
    pub fn reload_if_changed(&self) -> Result<bool, Error> {
        self.inner.reload_if_changed()
    }

    /// Loads the file again, changed or not; on error the old version stays.
    pub fn reload(&self) -> Result<bool, Error> {
        self.inner.reload()
    }

    /// The error of the last reload attempt, until one succeeds.
    pub fn last_reload_error(&self) -> Option<String> {
        self.inner.last_error()
    }
}

/// Just enough of a record to tell a location database from another kind.
#[derive(serde::Deserialize)]
struct Probe {
    country: Option<serde::de::IgnoredAny>,
    registered_country: Option<serde::de::IgnoredAny>,
    continent: Option<serde::de::IgnoredAny>,
    location: Option<serde::de::IgnoredAny>,
}

fn load(paths: &[PathBuf], options: &DbOptions) -> Result<GeoData, Error> {
    // Watched hands back the one path GeoDb::open_with gave it.
    let Some(path) = paths.first() else {
        return Err(Error::NoFile("geolocation"));
    };
    let reader = mmdb::open(path, read(path)?, options)?;
    let sample = mmdb::sample::<Probe>(path, &reader)?;
    let located = sample.iter().any(|p| {
        p.country.is_some()
            || p.registered_country.is_some()
            || p.continent.is_some()
            || p.location.is_some()
    });
    if !located {
        return Err(Error::Database {
            path: path.clone(),
            what: format!(
                "not a City or Country database: its records have no country, continent or \
                 location (database_type {:?})",
                reader.metadata().database_type
            ),
        });
    }
    Ok(GeoData { reader })
}
