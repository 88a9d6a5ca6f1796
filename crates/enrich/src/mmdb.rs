//! Opening `.mmdb` files with errors that name the file.

use crate::Error;
use crate::reload::DbOptions;
use serde::Deserialize;
use std::path::Path;

const MARKER: &[u8] = b"\xab\xcd\xefMaxMind.com";

/// A `.mmdb` file: by its extension, its metadata marker, or binary content (so that a
/// truncated `.mmdb` that lost its marker is reported as a bad MaxMind DB, not as a bad TSV).
pub(crate) fn looks_like_mmdb(path: &Path, bytes: &[u8]) -> bool {
    let ext = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("mmdb"));
    let tail = &bytes[bytes.len().saturating_sub(128 * 1024)..];
    let has_marker = tail.windows(MARKER.len()).any(|w| w == MARKER);
    let head = &bytes[..bytes.len().min(512)];
    let binary = head
        .iter()
        .any(|&b| b == 0 || (b < 0x20 && !b"\t\r\n".contains(&b)));
    ext || has_marker || binary
}

pub(crate) fn open(
    path: &Path,
    bytes: Vec<u8>,
    options: &DbOptions,
) -> Result<maxminddb::Reader<Vec<u8>>, Error> {
    let err = |source| Error::Mmdb {
        path: path.to_owned(),
        source,
    };
    let reader = maxminddb::Reader::from_source(bytes).map_err(err)?;
    if options.verify_mmdb {
        reader.verify().map_err(err)?;
    }
    Ok(reader)
}

/// Decodes the first records of the file, which also finds gross corruption of the tree or
/// data section early.
pub(crate) fn sample<T: for<'de> Deserialize<'de>>(
    path: &Path,
    reader: &maxminddb::Reader<Vec<u8>>,
) -> Result<Vec<T>, Error> {
    let err = |source| Error::Mmdb {
        path: path.to_owned(),
        source,
    };
    let mut out = Vec::new();
    for item in reader.networks(Default::default()).map_err(err)?.take(32) {
        if let Some(record) = item.map_err(err)?.decode::<T>().map_err(err)? {
            out.push(record);
        }
    }
    if out.is_empty() {
        return Err(Error::Database {
            path: path.to_owned(),
            what: "the MaxMind DB holds no records".into(),
        });
    }
    Ok(out)
}
