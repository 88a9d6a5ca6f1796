//! The ip2asn TSV format (<https://iptoasn.com>) as sorted ranges searched through a
//! bucket index.
//!
//! One line per range: `range_start \t range_end \t AS_number \t country_code \t
//! AS_description`, with IPv4 or IPv6 addresses (or, as in `ip2asn-v4-u32.tsv`, IPv4
//! addresses as decimal integers). AS number 0 means "Not routed" and is left out.

use crate::Error;
use std::net::IpAddr;
use std::path::Path;

/// A key of the range table: an address as an integer.
pub(crate) trait Key: Copy + Ord {
    /// The address as the widest integer, for the bucket arithmetic.
    fn wide(self) -> u128;
    /// The address before this one.
    fn prev(self) -> Option<Self>;
}

impl Key for u32 {
    #[inline]
    fn wide(self) -> u128 {
        self.into()
    }
    fn prev(self) -> Option<Self> {
        self.checked_sub(1)
    }
}

impl Key for u128 {
    #[inline]
    fn wide(self) -> u128 {
        self
    }
    fn prev(self) -> Option<Self> {
        self.checked_sub(1)
    }
}

const BUCKETS: usize = 1 << 16;

/// Disjoint ranges sorted by start, and an index that cuts the span they cover (from the
/// first start to the last end) into 65 536 equal buckets: `index[b]` is the first range
/// starting in bucket `b` or later. The range holding an address is then found by a binary
/// search within its bucket (plus the range just before, which may reach into it). Cutting
/// the covered span rather than the whole address space keeps IPv6, which lives in 2000::/3,
/// spread over the buckets too.
#[derive(Debug, Clone)]
pub(crate) struct RangeTable<K> {
    starts: Vec<K>,
    /// (end, asn), kept apart from `starts` so the search touches only the starts.
    ends: Vec<(K, u32)>,
    index: Vec<u32>,
    base: u128,
    shift: u32,
}

impl<K: Key> RangeTable<K> {
    /// Builds the table from ranges sorted by start, disjoint, with `start <= end`.
    fn from_sorted(ranges: &[Range<K>]) -> Self {
        let mut starts: Vec<K> = Vec::with_capacity(ranges.len());
        let mut ends: Vec<(K, u32)> = Vec::with_capacity(ranges.len());
        for r in ranges {
            // Merge touching ranges of the same AS: fewer, denser entries.
            if let (Some(last), Some(before)) = (ends.last_mut(), r.start.prev())
                && last.1 == r.asn
                && last.0 == before
            {
                last.0 = r.end;
                continue;
            }
            starts.push(r.start);
            ends.push((r.end, r.asn));
        }
        let base = starts.first().map_or(0, |s| s.wide());
        let span = ends.last().map_or(0, |e| e.0.wide()) - base;
        let mut shift = 0;
        while span >> shift >= BUCKETS as u128 {
            shift += 1;
        }
        let mut index = vec![0u32; BUCKETS + 1];
        let mut i = 0usize;
        for (b, slot) in index.iter_mut().enumerate().take(BUCKETS) {
            let first = base.saturating_add((b as u128) << shift);
            while i < starts.len() && starts[i].wide() < first {
                i += 1;
            }
            *slot = i as u32;
        }
        index[BUCKETS] = starts.len() as u32;
        RangeTable {
            starts,
            ends,
            index,
            base,
            shift,
        }
    }

    #[inline]
    pub(crate) fn lookup(&self, key: K) -> Option<u32> {
        let offset = key.wide().checked_sub(self.base)?;
        let b = usize::try_from(offset >> self.shift).ok()?;
        let lo = *self.index.get(b)? as usize;
        let hi = *self.index.get(b + 1)? as usize;
        let first = lo.saturating_sub(1);
        let slice = self.starts.get(first..hi)?;
        let n = slice.partition_point(|&s| s <= key);
        let i = first + n.checked_sub(1)?;
        let &(end, asn) = self.ends.get(i)?;
        (key <= end).then_some(asn)
    }

    pub(crate) fn len(&self) -> usize {
        self.starts.len()
    }
}

/// IPv4 and IPv6 tables built from one or more TSV files.
#[derive(Debug, Clone)]
pub(crate) struct Ip2Asn {
    pub(crate) v4: RangeTable<u32>,
    pub(crate) v6: RangeTable<u128>,
}

impl Ip2Asn {
    #[inline]
    pub(crate) fn lookup(&self, ip: IpAddr) -> Option<u32> {
        match ip.to_canonical() {
            IpAddr::V4(a) => self.v4.lookup(u32::from(a)),
            IpAddr::V6(a) => self.v6.lookup(u128::from(a)),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }
}

#[derive(Debug, Clone, Copy)]
struct Range<K> {
    start: K,
    end: K,
    asn: u32,
    /// Where it came from, for overlap errors: (file number, line).
    origin: (usize, usize),
}

/// Collects the ranges of several files, then checks and indexes them.
#[derive(Default)]
pub(crate) struct Builder<'a> {
    files: Vec<&'a Path>,
    v4: Vec<Range<u32>>,
    v6: Vec<Range<u128>>,
}

impl<'a> Builder<'a> {
    /// Parses one file's bytes. Blank lines and lines starting with `#` are skipped.
    pub(crate) fn add(&mut self, path: &'a Path, bytes: &[u8]) -> Result<(), Error> {
        let file = self.files.len();
        self.files.push(path);
        let err = |line: usize, what: String| Error::Tsv {
            path: path.to_path_buf(),
            line,
            what,
        };
        let mut ranges = 0usize;
        let mut rest = bytes;
        let mut line_no = 0usize;
        while !rest.is_empty() {
            line_no += 1;
            let (line, next) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => {
                    return Err(err(
                        line_no,
                        "the last line has no end of line: the file looks truncated".into(),
                    ));
                }
            };
            rest = next;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.iter().all(u8::is_ascii_whitespace) || line.first() == Some(&b'#') {
                continue;
            }
            let fields: Vec<&[u8]> = line.split(|&b| b == b'\t').collect();
            if fields.len() < 5 {
                return Err(err(
                    line_no,
                    format!(
                        "expected 5 tab-separated fields (range_start, range_end, AS_number, \
                         country_code, AS_description), found {}",
                        fields.len()
                    ),
                ));
            }
            let text = |i: usize, name: &str| {
                std::str::from_utf8(fields[i])
                    .map(str::trim)
                    .map_err(|_| err(line_no, format!("{name} is not text")))
            };
            let start = text(0, "range_start")?;
            let end = text(1, "range_end")?;
            let asn_text = text(2, "AS_number")?;
            let digits = asn_text
                .strip_prefix("AS")
                .or_else(|| asn_text.strip_prefix("as"))
                .unwrap_or(asn_text);
            let asn: u32 = digits.parse().map_err(|_| {
                err(
                    line_no,
                    format!("AS_number {asn_text:?} is not a number from 0 to 4294967295"),
                )
            })?;
            let origin = (file, line_no);
            match (parse_addr(start), parse_addr(end)) {
                (Some(Addr::V4(s)), Some(Addr::V4(e))) => {
                    if s > e {
                        return Err(err(
                            line_no,
                            format!("range_start {start} is after range_end {end}"),
                        ));
                    }
                    if asn != 0 {
                        self.v4.push(Range {
                            start: s,
                            end: e,
                            asn,
                            origin,
                        });
                    }
                }
                (Some(Addr::V6(s)), Some(Addr::V6(e))) => {
                    if s > e {
                        return Err(err(
                            line_no,
                            format!("range_start {start} is after range_end {end}"),
                        ));
                    }
                    if asn != 0 {
                        self.v6.push(Range {
                            start: s,
                            end: e,
                            asn,
                            origin,
                        });
                    }
                }
                (None, _) => {
                    return Err(err(
                        line_no,
                        format!("range_start {start:?} is not an IP address"),
                    ));
                }
                (_, None) => {
                    return Err(err(
                        line_no,
                        format!("range_end {end:?} is not an IP address"),
                    ));
                }
                _ => {
                    return Err(err(
                        line_no,
                        format!(
                            "range_start {start} and range_end {end} are of different IP versions"
                        ),
                    ));
                }
            }
            ranges += 1;
        }
        if ranges == 0 {
            return Err(Error::Database {
                path: path.to_path_buf(),
                what: "no ranges: the ip2asn file is empty".into(),
            });
        }
        Ok(())
    }

    pub(crate) fn build(mut self) -> Result<Ip2Asn, Error> {
        let v4 = std::mem::take(&mut self.v4);
        let v6 = std::mem::take(&mut self.v6);
        let v4 = self.check(v4)?;
        let v6 = self.check(v6)?;
        Ok(Ip2Asn {
            v4: RangeTable::from_sorted(&v4),
            v6: RangeTable::from_sorted(&v6),
        })
    }

    /// Sorts by start and rejects overlaps, naming both lines.
    fn check<K: Key + std::fmt::Debug + ToAddr>(
        &self,
        mut ranges: Vec<Range<K>>,
    ) -> Result<Vec<Range<K>>, Error> {
        ranges.sort_by_key(|r| r.start);
        for w in ranges.windows(2) {
            let (a, b) = (&w[0], &w[1]);
            if b.start <= a.end {
                let (file, line) = b.origin;
                let other = if a.origin.0 == file {
                    format!("line {}", a.origin.1)
                } else {
                    format!("{} line {}", self.files[a.origin.0].display(), a.origin.1)
                };
                return Err(Error::Tsv {
                    path: self.files[file].to_path_buf(),
                    line,
                    what: format!(
                        "range {}-{} overlaps range {}-{} of {other}",
                        b.start.to_addr(),
                        b.end.to_addr(),
                        a.start.to_addr(),
                        a.end.to_addr()
                    ),
                });
            }
        }
        Ok(ranges)
    }
}

pub(crate) trait ToAddr {
    fn to_addr(self) -> IpAddr;
}
impl ToAddr for u32 {
    fn to_addr(self) -> IpAddr {
        IpAddr::V4(self.into())
    }
}
impl ToAddr for u128 {
    fn to_addr(self) -> IpAddr {
        IpAddr::V6(self.into())
    }
}

enum Addr {
    V4(u32),
    V6(u128),
}

fn parse_addr(s: &str) -> Option<Addr> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        // ip2asn-v4-u32.tsv writes IPv4 addresses as integers.
        return s.parse().ok().map(Addr::V4);
    }
    match s.parse::<IpAddr>().ok()? {
        IpAddr::V4(a) => Some(Addr::V4(a.into())),
        IpAddr::V6(a) => Some(Addr::V6(a.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> Result<Ip2Asn, Error> {
        let mut b = Builder::default();
        b.add(Path::new("t.tsv"), text.as_bytes())?;
        b.build()
    }

    #[test]
    fn lookups_at_edges_and_across_buckets() {
        let t = table(
            "1.0.0.0\t1.0.0.255\t13335\tUS\tCLOUDFLARENET\n\
             1.0.1.0\t1.0.3.255\t0\tNone\tNot routed\n\
             1.0.4.0\t1.2.255.255\t38803\tAU\tGTELECOM\n\
             9.255.255.0\t10.0.0.255\t64500\tZZ\tspans a bucket boundary\n\
             16777216\t16777471\t1\tUS\tu32 form, same as 1.0.0.0/24 is rejected below\n",
        );
        // The u32 line overlaps the first one.
        let e = table_err(t);
        assert_eq!(
            e,
            "t.tsv: line 5: range 1.0.0.0-1.0.0.255 overlaps range 1.0.0.0-1.0.0.255 of line 1"
        );
        let t = table(
            "1.0.0.0\t1.0.0.255\t13335\tUS\tCLOUDFLARENET\n\
             1.0.1.0\t1.0.3.255\t0\tNone\tNot routed\n\
             1.0.4.0\t1.2.255.255\t38803\tAU\tGTELECOM\n\
             9.255.255.0\t10.0.0.255\t64500\tZZ\tspans a bucket boundary\n\
             33554432\t33554687\t1\tUS\tu32 form of 2.0.0.0/24\n",
        )
        .unwrap();
        let l = |s: &str| t.lookup(s.parse().unwrap());
        assert_eq!(l("0.255.255.255"), None);
        assert_eq!(l("1.0.0.0"), Some(13335));
        assert_eq!(l("1.0.0.255"), Some(13335));
        assert_eq!(l("1.0.1.0"), None);
        assert_eq!(l("1.0.4.0"), Some(38803));
        assert_eq!(l("1.1.200.7"), Some(38803));
        assert_eq!(l("1.2.255.255"), Some(38803));
        assert_eq!(l("1.3.0.0"), None);
        assert_eq!(l("9.255.255.0"), Some(64500));
        assert_eq!(l("10.0.0.0"), Some(64500));
        assert_eq!(l("10.0.0.255"), Some(64500));
        assert_eq!(l("10.0.1.0"), None);
        assert_eq!(l("2.0.0.128"), Some(1));
        assert_eq!(l("::ffff:1.0.0.1"), Some(13335));
        assert_eq!(l("255.255.255.255"), None);
    }

    fn table_err(r: Result<Ip2Asn, Error>) -> String {
        r.err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn touching_ranges_of_one_as_merge() {
        let t = table(
            "10.0.0.0\t10.0.0.255\t5\tZZ\ta\n10.0.1.0\t10.0.1.255\t5\tZZ\ta\n\
             10.0.2.0\t10.0.2.255\t6\tZZ\tb\n",
        )
        .unwrap();
        assert_eq!(t.v4.len(), 2);
        assert_eq!(t.lookup("10.0.1.9".parse().unwrap()), Some(5));
        assert_eq!(t.lookup("10.0.2.9".parse().unwrap()), Some(6));
    }

    #[test]
    fn malformed_lines_are_named() {
        let cases = [
            (
                "1.0.0.0\t1.0.0.255\t13335\tUS\n",
                "line 1: expected 5 tab-separated fields",
            ),
            (
                "1.0.0.0\t1.0.0.255\tAS1x\tUS\tX\n",
                "line 1: AS_number \"AS1x\" is not a number",
            ),
            (
                "1.0.0.x\t1.0.0.255\t1\tUS\tX\n",
                "line 1: range_start \"1.0.0.x\" is not an IP",
            ),
            ("1.0.0.0\t::1\t1\tUS\tX\n", "are of different IP versions"),
            (
                "1.0.0.9\t1.0.0.1\t1\tUS\tX\n",
                "range_start 1.0.0.9 is after range_end 1.0.0.1",
            ),
            (
                "# c\n\n1.0.0.0\t1.0.0.255\t1\tUS\tX\n1.0.1.0\t1.0",
                "line 4: the last line has no end of line",
            ),
            ("# only a comment\n", "no ranges"),
        ];
        for (text, want) in cases {
            let got = table_err(table(text));
            assert!(got.contains(want), "{text:?}: {got}");
            assert!(got.starts_with("t.tsv: "), "{got}");
        }
    }

    /// The index against a linear scan, on random tables of both families and at every edge.
    #[test]
    fn agrees_with_a_linear_scan() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..40 {
            let n = 1 + (rnd() % 300) as usize;
            let v6 = round % 2 == 1;
            // Random disjoint ranges over a random slice of the space.
            let mut at: u128 = if v6 {
                0x2001u128 << 112
            } else {
                u128::from(rnd() as u32 >> 4)
            };
            let max: u128 = if v6 { u128::MAX } else { u32::MAX.into() };
            let scale = if v6 {
                1u128 << (rnd() % 100)
            } else {
                1u128 << (rnd() % 20)
            };
            let mut ranges = Vec::new();
            for line in 0..n {
                let gap = u128::from(rnd() % 3) * scale;
                let len = u128::from(1 + rnd() % 4) * scale - 1;
                let Some(start) = at.checked_add(gap) else {
                    break;
                };
                let Some(end) = start.checked_add(len) else {
                    break;
                };
                if end > max {
                    break;
                }
                ranges.push((start, end, (rnd() % 3) as u32 + 1, line));
                at = match end.checked_add(1) {
                    Some(a) => a,
                    None => break,
                };
            }
            let naive = |k: u128| ranges.iter().find(|r| r.0 <= k && k <= r.1).map(|r| r.2);
            let mut probes: Vec<u128> = vec![0, max];
            for r in &ranges {
                probes.extend([
                    r.0,
                    r.1,
                    r.0.saturating_sub(1),
                    r.1.saturating_add(1).min(max),
                ]);
                probes.push(r.0 + (r.1 - r.0) / 2);
            }
            if v6 {
                let t = RangeTable::from_sorted(
                    &ranges
                        .iter()
                        .map(|r| Range {
                            start: r.0,
                            end: r.1,
                            asn: r.2,
                            origin: (0, r.3),
                        })
                        .collect::<Vec<_>>(),
                );
                for k in probes {
                    assert_eq!(t.lookup(k), naive(k), "round {round} key {k:#x}");
                }
            } else {
                let t = RangeTable::from_sorted(
                    &ranges
                        .iter()
                        .map(|r| Range {
                            start: r.0 as u32,
                            end: r.1 as u32,
                            asn: r.2,
                            origin: (0, r.3),
                        })
                        .collect::<Vec<_>>(),
                );
                for k in probes {
                    assert_eq!(t.lookup(k as u32), naive(k), "round {round} key {k:#x}");
                }
            }
        }
    }

    #[test]
    fn whole_space_ranges() {
        let t = table("0.0.0.0\t255.255.255.255\t1\tZZ\tall\n::\tffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff\t2\tZZ\tall\n")
            .unwrap();
        assert_eq!(t.lookup("0.0.0.0".parse().unwrap()), Some(1));
        assert_eq!(t.lookup("255.255.255.255".parse().unwrap()), Some(1));
        assert_eq!(t.lookup("::".parse().unwrap()), Some(2));
        assert_eq!(
            t.lookup("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap()),
            Some(2)
        );
        // IPv4-mapped addresses are looked up as IPv4.
        assert_eq!(t.lookup("::ffff:1.2.3.4".parse().unwrap()), Some(1));
    }
}
