//! Databases that follow their files: a lock-free current value, swapped when a file changes.

use crate::Error;
use arc_swap::ArcSwap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

/// How a database is opened and kept up to date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbOptions {
    /// How often the files' modification time and size are checked; `None` never reloads on
    /// its own (call `reload`). Default: every 5 s.
    pub reload_interval: Option<Duration>,
    /// Walk a whole `.mmdb` file when it is opened, so that corruption anywhere in it is
    /// reported at once rather than showing up as unknown lookups. Slow on big files (a
    /// GeoLite2-City takes seconds); off by default. Truncation is detected either way.
    pub verify_mmdb: bool,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            reload_interval: Some(Duration::from_secs(5)),
            verify_mmdb: false,
        }
    }
}

/// What a file looked like when it was last loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

fn stamp(path: &PathBuf) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: m.modified().ok(),
        len: m.len(),
    })
}

pub(crate) type Loader<T> = fn(&[PathBuf], &DbOptions) -> Result<T, Error>;

/// A value loaded from files, replaced when they change.
pub(crate) struct Watched<T> {
    current: ArcSwap<T>,
    paths: Vec<PathBuf>,
    options: DbOptions,
    load: Loader<T>,
    state: Mutex<State>,
}

struct State {
    stamps: Vec<Option<Stamp>>,
    last_error: Option<String>,
}

impl<T: Send + Sync + 'static> Watched<T> {
    /// Loads the files (any error is returned as is) and, when asked to, starts a thread that
    /// polls them. The thread ends once the returned value is dropped.
    pub(crate) fn open(
        paths: Vec<PathBuf>,
        options: DbOptions,
        load: Loader<T>,
        what: &'static str,
    ) -> Result<Arc<Self>, Error> {
        let stamps = paths.iter().map(stamp).collect();
        let value = load(&paths, &options)?;
        let watched = Arc::new(Watched {
            current: ArcSwap::from_pointee(value),
            paths,
            options,
            load,
            state: Mutex::new(State {
                stamps,
                last_error: None,
            }),
        });
        if let Some(interval) = watched.options.reload_interval {
            let weak = Arc::downgrade(&watched);
            // Without the thread the database still works; it just does not follow its file.
            let spawned = std::thread::Builder::new()
                .name(format!("edgetrace-{what}-reload"))
                .spawn(move || poll(weak, interval));
            if let Err(e) = spawned {
                tracing::warn!("{what} database: cannot start the reload thread: {e}");
            }
        }
        Ok(watched)
    }

    pub(crate) fn current(&self) -> arc_swap::Guard<Arc<T>> {
        self.current.load()
    }

    pub(crate) fn snapshot(&self) -> Arc<T> {
        self.current.load_full()
    }

    pub(crate) fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    pub(crate) fn last_error(&self) -> Option<String> {
        self.lock().last_error.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave State inconsistent: recover it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Loads the files again if any changed since the last load; returns whether a new value
    /// is now in use. On error the old value stays and the error is remembered (and returned).
    pub(crate) fn reload_if_changed(&self) -> Result<bool, Error> {
        let now: Vec<_> = self.paths.iter().map(stamp).collect();
        if now == self.lock().stamps {
            return Ok(false);
        }
        self.load_now(now)
    }

    /// Loads the files again, changed or not.
    pub(crate) fn reload(&self) -> Result<bool, Error> {
        let now = self.paths.iter().map(stamp).collect();
        self.load_now(now)
    }

    fn load_now(&self, before: Vec<Option<Stamp>>) -> Result<bool, Error> {
        let result = (self.load)(&self.paths, &self.options);
        // Remember the stamps taken before reading: if a writer was still busy, the stamps
        // move again and the next poll retries.
        let mut state = self.lock();
        state.stamps = before;
        match result {
            Ok(value) => {
                self.current.store(Arc::new(value));
                state.last_error = None;
                Ok(true)
            }
            Err(e) => {
                state.last_error = Some(e.to_string());
                Err(e)
            }
        }
    }
}

fn poll<T: Send + Sync + 'static>(weak: Weak<Watched<T>>, interval: Duration) {
    loop {
        std::thread::sleep(interval);
        let Some(watched) = weak.upgrade() else {
            return;
        };
        match watched.reload_if_changed() {
            Ok(true) => tracing::info!(
                "reloaded {}",
                watched
                    .paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Ok(false) => {}
            Err(e) => tracing::warn!("keeping the database in use: reload failed: {e}"),
        }
    }
}
