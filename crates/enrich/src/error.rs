//! The one error type of the crate.

use std::io;
use std::path::{Path, PathBuf};

/// What went wrong while setting up enrichment: opening or reloading a database, or building
/// the resolver. Lookups themselves never fail: a name falls back to the IP, an ASN to `""`.
///
/// Every message names the file (and, for TSV files, the line) or the option at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be read at all.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A line of an ip2asn TSV file is malformed. `line` counts from 1.
    #[error("{}: line {line}: {what}", path.display())]
    Tsv {
        path: PathBuf,
        line: usize,
        what: String,
    },
    /// The file is not a valid MaxMind DB (`.mmdb`) file: truncated, corrupt or another format.
    #[error("{}: not a valid MaxMind DB file: {source}", path.display())]
    Mmdb {
        path: PathBuf,
        #[source]
        source: maxminddb::MaxMindDbError,
    },
    /// The file parses but cannot serve its purpose (empty, or the wrong kind of database).
    #[error("{}: {what}", path.display())]
    Database { path: PathBuf, what: String },
    /// An ASN database was asked for with no file.
    #[error("no {0} database file given")]
    NoFile(&'static str),
    /// A DNS option is out of range.
    #[error("DNS option {field} = {value}: must be {allowed}")]
    DnsOption {
        field: &'static str,
        value: String,
        allowed: &'static str,
    },
    /// The system resolver configuration (`/etc/resolv.conf`) could not be read.
    #[error("system resolver configuration (/etc/resolv.conf): {0}")]
    SystemConfig(String),
    /// The background thread that runs DNS lookups could not be started.
    #[error("starting the DNS lookup thread: {0}")]
    Runtime(#[source] io::Error),
}

impl Error {
    /// The database file this error is about, if it is about one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Error::Read { path, .. }
            | Error::Tsv { path, .. }
            | Error::Mmdb { path, .. }
            | Error::Database { path, .. } => Some(path),
            _ => None,
        }
    }

    /// True when the error is about the content of a database file (as opposed to reading it
    /// or configuring DNS).
    pub fn is_corrupt_database(&self) -> bool {
        matches!(
            self,
            Error::Tsv { .. } | Error::Mmdb { .. } | Error::Database { .. }
        )
    }
}
