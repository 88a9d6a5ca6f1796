//! ASN and geolocation databases built by the tests: `.mmdb` files written with mmdb-writer
//! (MaxMind and IPinfo layouts) and ip2asn TSV files.

use edgetrace_enrich::{AsnDb, DbOptions, Error, Geo, GeoDb};
use mmdb_writer::ipnet::IpNet;
use mmdb_writer::{IpVersion, Value, Writer};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn no_poll() -> DbOptions {
    DbOptions {
        reload_interval: None,
        ..DbOptions::default()
    }
}

/// A writer with the metadata a full verification asks for.
fn writer(database_type: &str) -> Writer {
    Writer::builder(database_type)
        .description(&[("en", "edgetrace test data")])
        .build()
}

/// A GeoLite2-ASN-like database (IPv6 tree, IPv4 mapped into it).
fn maxmind_asn() -> Vec<u8> {
    let mut w = writer("GeoLite2-ASN");
    let rec = |asn: u32, org: &str| {
        Value::map([
            ("autonomous_system_number", Value::from(asn)),
            ("autonomous_system_organization", Value::from(org)),
        ])
    };
    w.insert_value(net("198.18.0.0/24"), rec(64500, "TEST-CORE"))
        .unwrap();
    w.insert_value(net("198.18.4.0/22"), rec(64501, "TEST-EDGE"))
        .unwrap();
    w.insert_value(net("2001:2::/48"), rec(64502, "TEST-V6"))
        .unwrap();
    w.to_bytes().unwrap()
}

/// An IPinfo-like database: `asn` as a string.
fn ipinfo_asn() -> Vec<u8> {
    let mut w = writer("ipinfo standard_asn.mmdb");
    w.insert_value(
        net("203.0.113.0/24"),
        Value::map([
            ("asn", Value::from("AS64510")),
            ("name", Value::from("Example Transit")),
            ("domain", Value::from("example.net")),
        ]),
    )
    .unwrap();
    w.insert_value(
        net("2001:2:0:ff::/64"),
        Value::map([("asn", Value::from("AS64511"))]),
    )
    .unwrap();
    w.to_bytes().unwrap()
}

fn names(en: &str) -> Value {
    Value::map([("en", Value::from(en))])
}

/// A GeoLite2-City-like database: one London network (v4 and v6), one Country-only record.
fn city() -> Vec<u8> {
    let mut w = writer("GeoLite2-City");
    let london = Value::map([
        (
            "city",
            Value::map([
                ("geoname_id", Value::from(2643743u32)),
                ("names", names("London")),
            ]),
        ),
        (
            "continent",
            Value::map([("code", Value::from("EU")), ("names", names("Europe"))]),
        ),
        (
            "country",
            Value::map([
                ("iso_code", Value::from("GB")),
                ("names", names("United Kingdom")),
            ]),
        ),
        (
            "location",
            Value::map([
                ("latitude", Value::from(51.5142f64)),
                ("longitude", Value::from(-0.0931f64)),
                ("time_zone", Value::from("Europe/London")),
                ("accuracy_radius", Value::from(10u16)),
            ]),
        ),
        ("postal", Value::map([("code", Value::from("EC2V"))])),
        (
            "subdivisions",
            Value::Array(vec![
                Value::map([
                    ("iso_code", Value::from("ENG")),
                    ("names", names("England")),
                ]),
                Value::map([
                    ("iso_code", Value::from("WSM")),
                    ("names", names("Westminster")),
                ]),
            ]),
        ),
    ]);
    w.insert_value(net("198.18.1.0/24"), london.clone())
        .unwrap();
    w.insert_value(net("2001:2:0:1::/64"), london).unwrap();
    let paris = Value::map([
        ("continent", Value::map([("code", Value::from("EU"))])),
        (
            "country",
            Value::map([
                ("iso_code", Value::from("FR")),
                ("is_in_european_union", Value::from(true)),
            ]),
        ),
    ]);
    w.insert_value(net("198.18.2.0/24"), paris).unwrap();
    w.to_bytes().unwrap()
}

const TSV_V4: &str = "\
0.0.0.0\t0.255.255.255\t0\tNone\tNot routed
198.18.0.0\t198.18.0.255\t64500\tZZ\tTEST-CORE
198.18.1.0\t198.18.3.255\t0\tNone\tNot routed
198.18.4.0\t198.18.7.255\t64501\tZZ\tTEST-EDGE
198.19.255.0\t198.19.255.255\t4294967295\tZZ\tlargest AS number
";

const TSV_V6: &str = "\
2001:2::\t2001:2:0:ffff:ffff:ffff:ffff:ffff\t64502\tZZ\tTEST-V6
2001:2:1::\t2001:2:1::ff\t64503\tZZ\tTEST-V6-SMALL
";

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Addresses inside, at the edges of and outside every range; `None` is unknown.
const CASES: &[(&str, Option<u32>)] = &[
    ("198.17.255.255", None),
    ("198.18.0.0", Some(64500)),
    ("198.18.0.77", Some(64500)),
    ("198.18.0.255", Some(64500)),
    ("198.18.1.0", None),
    ("198.18.3.255", None),
    ("198.18.4.0", Some(64501)),
    ("198.18.6.1", Some(64501)),
    ("198.18.7.255", Some(64501)),
    ("198.18.8.0", None),
    ("::ffff:198.18.0.1", Some(64500)),
    ("2001:1:ffff:ffff:ffff:ffff:ffff:ffff", None),
    ("2001:2::", Some(64502)),
    ("2001:2::1", Some(64502)),
    ("2001:2:0:ffff:ffff:ffff:ffff:ffff", Some(64502)),
    ("2001:2:1::", None),
    ("2001:db8::1", None),
];

#[test]
fn ip2asn_tsv_v4_and_v6_files() {
    let dir = tempfile::tempdir().unwrap();
    let v4 = write(dir.path(), "ip2asn-v4.tsv", TSV_V4);
    let v6 = write(dir.path(), "ip2asn-v6.tsv", TSV_V6);
    let db = AsnDb::open_with([&v4, &v6], no_poll()).unwrap();
    let mut cases = CASES.to_vec();
    cases.retain(|(a, _)| *a != "2001:2:1::");
    cases.extend([
        ("2001:2:1::", Some(64503)),
        ("2001:2:1::ff", Some(64503)),
        ("2001:2:1::100", None),
        ("198.19.255.255", Some(u32::MAX)),
        ("0.0.0.1", None),
    ]);
    for (a, want) in cases {
        assert_eq!(db.lookup(ip(a)), want, "{a}");
    }
    assert_eq!(db.asn_string(ip("198.18.0.1")), "AS64500");
    assert_eq!(db.asn_string(ip("198.18.1.1")), "");
    assert_eq!(db.asn_string(ip("198.19.255.1")), "AS4294967295");
}

#[test]
fn ip2asn_u32_and_combined_files() {
    let dir = tempfile::tempdir().unwrap();
    // ip2asn-v4-u32.tsv: 198.18.0.0 = 3323068416.
    let u32s = write(
        dir.path(),
        "ip2asn-v4-u32.tsv",
        "3323068416\t3323068671\t64500\tZZ\tTEST-CORE\r\n",
    );
    let db = AsnDb::open_with([&u32s], no_poll()).unwrap();
    assert_eq!(db.lookup(ip("198.18.0.0")), Some(64500));
    assert_eq!(db.lookup(ip("198.18.0.255")), Some(64500));
    assert_eq!(db.lookup(ip("198.18.1.0")), None);
    let combined = write(
        dir.path(),
        "ip2asn-combined.tsv",
        format!("{TSV_V4}{TSV_V6}"),
    );
    let db = AsnDb::open_with([&combined], no_poll()).unwrap();
    assert_eq!(db.lookup(ip("2001:2:1::7")), Some(64503));
    assert_eq!(db.lookup(ip("198.18.5.5")), Some(64501));
}

#[test]
fn maxmind_and_ipinfo_mmdb() {
    let dir = tempfile::tempdir().unwrap();
    let mm = write(dir.path(), "GeoLite2-ASN.mmdb", maxmind_asn());
    let db = AsnDb::open_with([&mm], no_poll()).unwrap();
    for (a, want) in CASES {
        // The mmdb holds the /22 198.18.4.0-198.18.7.255 and the /48 2001:2::/48.
        let want = match *a {
            "2001:2:1::" => None,
            _ => *want,
        };
        assert_eq!(db.lookup(ip(a)), want, "{a}");
    }
    assert_eq!(db.lookup(ip("2001:2:0:ffff::1")), Some(64502));
    assert_eq!(db.lookup(ip("2001:2:1::1")), None);
    assert_eq!(db.lookup(ip("2001:3::")), None);

    let info = write(dir.path(), "asn.mmdb", ipinfo_asn());
    // Several files: the TSV first, then each mmdb.
    let tsv = write(dir.path(), "ip2asn-v4.tsv", TSV_V4);
    let db = AsnDb::open_with([&tsv, &info, &mm], no_poll()).unwrap();
    assert_eq!(db.asn_string(ip("203.0.113.0")), "AS64510");
    assert_eq!(db.asn_string(ip("203.0.113.255")), "AS64510");
    assert_eq!(db.asn_string(ip("203.0.114.0")), "");
    assert_eq!(db.asn_string(ip("2001:2:0:ff::9")), "AS64511");
    assert_eq!(db.asn_string(ip("198.18.0.9")), "AS64500");
    assert_eq!(db.asn_string(ip("2001:2::9")), "AS64502");
}

#[test]
fn geolocation_from_a_city_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "GeoLite2-City.mmdb", city());
    let geo = GeoDb::open_with(&path, no_poll()).unwrap();
    let london = Geo {
        country: Some("GB".into()),
        continent: Some("EU".into()),
        city: Some("London".into()),
        region: Some("England".into()),
        region_code: Some("ENG".into()),
        postal_code: Some("EC2V".into()),
        lat: Some(51.5142),
        lon: Some(-0.0931),
        subdivision_1_iso_code: Some("GB-ENG".into()),
        subdivision_2_iso_code: Some("GB-WSM".into()),
        is_in_european_union: Some(false),
        timezone_name: Some("Europe/London".into()),
        metro_code: None,
        asnum: None,
    };
    assert_eq!(geo.lookup(ip("198.18.1.0")), london);
    assert_eq!(geo.lookup(ip("198.18.1.255")), london);
    assert_eq!(geo.lookup(ip("2001:2:0:1::5")), london);
    assert_eq!(geo.lookup(ip("198.18.0.255")), Geo::default());
    assert_eq!(geo.lookup(ip("2001:2:0:2::")), Geo::default());
    let paris = geo.lookup(ip("198.18.2.9"));
    assert_eq!(paris.country.as_deref(), Some("FR"));
    assert_eq!(paris.is_in_european_union, Some(true));
    assert_eq!(paris.city, None);
    assert_eq!(paris.subdivision_1_iso_code, None);

    // With the ASN database: ip.src.asnum.
    let asn = AsnDb::open_with(
        [write(dir.path(), "GeoLite2-ASN.mmdb", maxmind_asn())],
        no_poll(),
    )
    .unwrap();
    let g = Geo::of(ip("198.18.0.1"), Some(&geo), Some(&asn));
    assert_eq!(g.asnum, Some(64500));
    assert_eq!(g.country, None);
    let g = Geo::of(ip("198.18.1.1"), Some(&geo), None);
    assert_eq!(g.city.as_deref(), Some("London"));
    assert_eq!(g.asnum, None);
    assert_eq!(Geo::of(ip("198.18.1.1"), None, None), Geo::default());
}

fn open_err(name: &str, bytes: &[u8]) -> (Error, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), name, bytes);
    let e = AsnDb::open_with([&p], no_poll()).unwrap_err();
    (e, p)
}

#[test]
fn truncated_and_corrupt_files_are_clear_startup_errors() {
    let good = maxmind_asn();
    // Truncated mmdb: the metadata at the end is gone.
    let (e, p) = open_err("GeoLite2-ASN.mmdb", &good[..good.len() / 2]);
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!("{}: not a valid MaxMind DB file: ", p.display())),
        "{msg}"
    );
    assert!(e.is_corrupt_database());
    assert_eq!(e.path(), Some(p.as_path()));

    // Truncated without an .mmdb extension: still recognised as a MaxMind DB.
    let (e, p) = open_err("asn.db", &good[..good.len() - 40]);
    assert!(
        e.to_string()
            .starts_with(&format!("{}: not a valid MaxMind DB file", p.display())),
        "{e}"
    );

    // A corrupt search tree: the first records cannot be read.
    let mut bad = good.clone();
    for b in bad.iter_mut().take(64) {
        *b = 0xff;
    }
    let (e, p) = open_err("GeoLite2-ASN.mmdb", &bad);
    assert!(e.to_string().starts_with(&p.display().to_string()), "{e}");
    assert!(e.is_corrupt_database(), "{e}");

    // Garbage.
    let (e, _) = open_err("x.mmdb", b"this is not a database\n");
    assert!(matches!(e, Error::Mmdb { .. }), "{e}");

    // A City database given as the ASN database.
    let (e, p) = open_err("GeoLite2-City.mmdb", &city());
    assert_eq!(
        e.to_string(),
        format!(
            "{}: not an ASN database: its records have no autonomous_system_number or asn field \
             (database_type \"GeoLite2-City\")",
            p.display()
        )
    );

    // Truncated TSV: the line number and what is wrong.
    let cut = &TSV_V4[..TSV_V4.find("TEST-EDGE").unwrap() - 4];
    let (e, p) = open_err("ip2asn-v4.tsv", cut.as_bytes());
    assert_eq!(
        e.to_string(),
        format!(
            "{}: line 4: the last line has no end of line: the file looks truncated",
            p.display()
        )
    );
    let (e, p) = open_err("ip2asn-v4.tsv", b"198.18.0.0\t198.18.0.255\t64500\n");
    assert_eq!(
        e.to_string(),
        format!(
            "{}: line 1: expected 5 tab-separated fields (range_start, range_end, AS_number, \
             country_code, AS_description), found 3",
            p.display()
        )
    );
    let (e, _) = open_err("ip2asn-v4.tsv", b"");
    assert!(
        e.to_string()
            .ends_with("no ranges: the ip2asn file is empty"),
        "{e}"
    );

    let no_files: [&str; 0] = [];
    let e = AsnDb::open_with(no_files, no_poll()).unwrap_err();
    assert_eq!(e.to_string(), "no ASN database file given");

    // Missing file.
    let e = AsnDb::open_with(["/nonexistent/ip2asn-v4.tsv"], no_poll()).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("/nonexistent/ip2asn-v4.tsv: cannot read: "),
        "{e}"
    );

    // An ASN database given as the City database.
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "GeoLite2-ASN.mmdb", maxmind_asn());
    let e = GeoDb::open_with(&p, no_poll()).unwrap_err();
    assert!(
        e.to_string().contains("not a City or Country database"),
        "{e}"
    );
}

#[test]
fn full_verification_is_available() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "GeoLite2-ASN.mmdb", maxmind_asn());
    let verify = DbOptions {
        verify_mmdb: true,
        ..no_poll()
    };
    AsnDb::open_with([&p], verify.clone()).unwrap();
    GeoDb::open_with(write(dir.path(), "c.mmdb", city()), verify).unwrap();
}

#[test]
fn reload_picks_up_a_rewritten_file_and_keeps_the_old_one_when_the_new_is_bad() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "ip2asn-v4.tsv",
        "198.18.0.0\t198.18.0.255\t64500\tZZ\tA\n",
    );
    let db = AsnDb::open_with([&p], no_poll()).unwrap();
    assert_eq!(db.lookup(ip("198.18.0.1")), Some(64500));
    assert!(!db.reload_if_changed().unwrap(), "unchanged");

    write(
        dir.path(),
        "ip2asn-v4.tsv",
        "198.18.0.0\t198.18.0.255\t64599\tZZ\tRENUMBERED\n",
    );
    assert!(db.reload_if_changed().unwrap());
    assert_eq!(db.lookup(ip("198.18.0.1")), Some(64599));

    write(dir.path(), "ip2asn-v4.tsv", "198.18.0.0\t198.18.0.2");
    let e = db.reload_if_changed().unwrap_err();
    assert!(
        e.to_string()
            .contains("line 1: the last line has no end of line"),
        "{e}"
    );
    assert_eq!(
        db.lookup(ip("198.18.0.1")),
        Some(64599),
        "old database kept"
    );
    assert!(db.last_reload_error().unwrap().contains("line 1"));
    // Not retried until the file changes again.
    assert!(!db.reload_if_changed().unwrap());

    std::fs::remove_file(&p).unwrap();
    assert!(matches!(db.reload_if_changed(), Err(Error::Read { .. })));
    assert_eq!(db.lookup(ip("198.18.0.1")), Some(64599));

    write(
        dir.path(),
        "ip2asn-v4.tsv",
        "198.18.0.0\t198.18.0.255\t7\tZZ\tB\n",
    );
    assert!(db.reload_if_changed().unwrap());
    assert_eq!(db.lookup(ip("198.18.0.1")), Some(7));
    assert_eq!(db.last_reload_error(), None);
}

fn wait_for(mut ok: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        if ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn the_poll_thread_reloads_mmdb_files_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let asn_path = write(dir.path(), "GeoLite2-ASN.mmdb", maxmind_asn());
    let geo_path = write(dir.path(), "GeoLite2-City.mmdb", city());
    let poll = DbOptions {
        reload_interval: Some(Duration::from_millis(50)),
        ..DbOptions::default()
    };
    let asn = AsnDb::open_with([&asn_path], poll.clone()).unwrap();
    let geo = GeoDb::open_with(&geo_path, poll).unwrap();
    assert_eq!(asn.lookup(ip("203.0.113.1")), None);

    // A bad new file: logged, old one kept.
    let good = maxmind_asn();
    write(dir.path(), "GeoLite2-ASN.mmdb", &good[..good.len() / 3]);
    assert!(wait_for(|| asn.last_reload_error().is_some()));
    assert_eq!(asn.lookup(ip("198.18.0.1")), Some(64500));

    // Replaced atomically, as a downloader would.
    let tmp = write(dir.path(), "new.mmdb", ipinfo_asn());
    std::fs::rename(&tmp, &asn_path).unwrap();
    assert!(wait_for(|| asn.lookup(ip("203.0.113.1")) == Some(64510)));
    assert_eq!(asn.lookup(ip("198.18.0.1")), None);
    assert_eq!(asn.last_reload_error(), None);

    // The City database follows its file too.
    let mut w = Writer::builder("GeoLite2-Country")
        .ip_version(IpVersion::V6)
        .build();
    w.insert_value(
        net("198.18.1.0/24"),
        Value::map([("country", Value::map([("iso_code", Value::from("DE"))]))]),
    )
    .unwrap();
    write(dir.path(), "GeoLite2-City.mmdb", w.to_bytes().unwrap());
    assert!(wait_for(
        || geo.lookup(ip("198.18.1.1")).country.as_deref() == Some("DE")
    ));
}
