//! A site: one proxied hostname with its zone's configuration, compiled for the pipeline, read
//! from the store and cached.
//!
//! The cache holds each hostname's compiled configuration; after [`DEFAULT_TTL`] it is read
//! again in the background (requests keep using the old one meanwhile) and compiled again only
//! if it changed, and everything is forgotten when [`Sites::invalidate`] is called (the API
//! calls it after every change it makes, so a replica sees its own changes at once; other
//! replicas within about the TTL). Compiling runs on the blocking pool, not on a thread that
//! serves requests (a zone of 1,000 rules takes milliseconds).

use edgetrace_edge::lists::{Catalog, ItemValue, parse_kind};
use edgetrace_edge::page_rules::{PageRule, from_stored};
use edgetrace_edge::phases::PhaseOrder;
use edgetrace_edge::pipeline::{Config, Ruleset};
use edgetrace_rules::Scheme;
use edgetrace_store::{
    DnsRecord, Scope, Store, StoreError, StoredList, StoredListItem, StoredPageRule, StoredRuleset,
    Zone,
};
use serde_json::json;
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a compiled configuration is used before it is read again [1 s].
pub const DEFAULT_TTL: Duration = Duration::from_secs(1);

/// One hostname of a zone, ready to serve.
pub struct Site {
    pub zone: Zone,
    /// The hostname, lowercase.
    pub host: String,
    /// The proxied DNS records of the hostname: where the origin is. Empty when the hostname
    /// has none (a trace of a name inside the zone that is not proxied).
    pub origins: Vec<DnsRecord>,
    /// The first origin's address when its record holds one (A/AAAA): read once, not at
    /// every request.
    pub origin_ip: Option<IpAddr>,
    pub config: Config,
}

/// Why a site could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored ruleset, list or page rule no longer compiles (a list it names was deleted).
    #[error("the configuration of zone {zone} does not compile: {message}")]
    Config { zone: String, message: String },
    /// The runtime that reads the store stopped (the server is shutting down).
    #[error("the server is shutting down")]
    ShuttingDown,
}

struct Entry {
    site: Option<Arc<Site>>,
    /// What `site` was compiled from.
    stored: Option<Arc<Stored>>,
    loaded: Instant,
    generation: u64,
    /// Set by the one request that reloads an expired entry; the others keep using it.
    refreshing: AtomicBool,
}

/// What a site is compiled from, as read from the store: a reload that reads the same as the
/// cached site was compiled from keeps the compiled site.
#[derive(PartialEq)]
struct Stored {
    zone: Zone,
    origins: Vec<DnsRecord>,
    lists: Vec<(StoredList, Vec<StoredListItem>)>,
    account: Vec<StoredRuleset>,
    zoned: Vec<StoredRuleset>,
    page_rules: Vec<StoredPageRule>,
}

/// A site and what it was compiled from (both `None`: no zone proxies the hostname).
type Loaded = (Option<Arc<Site>>, Option<Arc<Stored>>);

/// Loads and caches sites.
pub struct Sites {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    /// The runtime that reads the store (the one `Sites` was made in): the proxy's threads
    /// run their own runtimes, and a store connection stays with the runtime that opened it.
    runtime: tokio::runtime::Handle,
    scheme: Arc<Scheme>,
    ttl: Duration,
    generation: AtomicU64,
    cache: Mutex<foldhash::HashMap<String, Arc<Entry>>>,
    /// Moves whenever `cache` or `generation` does: a thread's copy of the entries it looked
    /// up ([`LOCAL`]) is good as long as this has not moved.
    version: AtomicU64,
    /// Tells this cache from the others of the process in [`LOCAL`] (an address could be a
    /// dropped one's).
    id: u64,
}

/// The next [`Inner::id`].
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// Per thread, the entries it looked up: the id of their [`Inner`], its `version` then,
    /// and the entries by host. A request finds its site here without taking the
    /// cache's lock (the proxy's threads all asked the one locked map before).
    static LOCAL: RefCell<(u64, u64, foldhash::HashMap<String, Arc<Entry>>)> =
        RefCell::new((0, 0, HashMap::default()));
}

impl Sites {
    /// Sites read from `store` on the current tokio runtime (the store's connections belong
    /// to it), whatever runtime asks for them.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn new(store: Store, scheme: Arc<Scheme>) -> Sites {
        Sites {
            inner: Arc::new(Inner {
                store,
                runtime: tokio::runtime::Handle::current(),
                scheme,
                ttl: DEFAULT_TTL,
                generation: AtomicU64::new(0),
                cache: Mutex::new(HashMap::default()),
                version: AtomicU64::new(0),
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            }),
        }
    }

    /// Forgets every cached configuration.
    pub fn invalidate(&self) {
        self.inner.generation.fetch_add(1, Ordering::Relaxed);
        self.inner.version.fetch_add(1, Ordering::Release);
    }

    /// The site a proxied hostname belongs to; `None` when no zone has a proxied record of
    /// that name. An expired configuration is read again in the background while requests
    /// keep using it (no request waits for a reload); one invalidated by [`Sites::invalidate`]
    /// is read again before it is used.
    pub async fn for_host(&self, host: &str) -> Result<Option<Arc<Site>>, LoadError> {
        let inner = &self.inner;
        let generation = inner.generation.load(Ordering::Relaxed);
        // The site, and the entry when this request is the one to reload it.
        let hit = inner.cached(host, |e| {
            (e.generation == generation).then(|| {
                let reload =
                    e.loaded.elapsed() >= inner.ttl && !e.refreshing.swap(true, Ordering::AcqRel);
                (e.site.clone(), reload.then(|| e.clone()))
            })
        });
        if let Some((site, reload)) = hit.flatten() {
            if let Some(stale) = reload {
                let inner = self.inner.clone();
                let host = host.to_string();
                let reload = async move {
                    let loaded = match inner.read_host(&host, Some(&stale)).await {
                        Ok(loaded) => loaded,
                        Err(err) => {
                            eprintln!(
                                "edgetrace: proxy: cannot read the configuration of {host} again ({err}); the previous one stays in use"
                            );
                            (stale.site.clone(), stale.stored.clone())
                        }
                    };
                    inner.insert(&host, loaded, generation);
                };
                drop(self.inner.runtime.spawn(reload));
            }
            return Ok(site);
        }
        let read = {
            let inner = self.inner.clone();
            let host = host.to_string();
            inner
                .runtime
                .clone()
                .spawn(async move { inner.read_host(&host, None).await })
        };
        let loaded = match read.await {
            Ok(loaded) => loaded?,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => return Err(LoadError::ShuttingDown),
        };
        let site = loaded.0.clone();
        inner.insert(host, loaded, generation);
        Ok(site)
    }

    /// The site of `host` within `account`'s zones (the request tracer's lookup): the proxied
    /// hostname when it is one of the account's, else the zone the name falls in (the longest
    /// zone name that is the host or a parent of it), without origins. `None` when the host
    /// is in none of the account's zones.
    pub async fn for_account(
        &self,
        account: &str,
        host: &str,
    ) -> Result<Option<Arc<Site>>, LoadError> {
        if let Some(site) = self.for_host(host).await?
            && site.zone.account_id == account
        {
            return Ok(Some(site));
        }
        let inner = &self.inner;
        let zone = inner
            .store
            .zones(Some(account), None)
            .await?
            .into_iter()
            .filter(|z| host == z.name || host.ends_with(&format!(".{}", z.name)))
            .max_by_key(|z| z.name.len());
        match zone {
            None => Ok(None),
            Some(zone) => {
                let stored = inner.read(zone, Vec::new()).await?;
                Ok(Some(inner.compile(host, stored).await?.0))
            }
        }
    }
}

impl Inner {
    /// `f` of the cached entry of `host`: this thread's copy, else the shared cache's (then
    /// copied).
    fn cached<T>(&self, host: &str, f: impl FnOnce(&Arc<Entry>) -> T) -> Option<T> {
        let version = self.version.load(Ordering::Acquire);
        LOCAL.with_borrow_mut(|(of, at, local)| {
            if (*of, *at) != (self.id, version) {
                // Another `Sites`, or this one's cache changed since: start over.
                local.clear();
                (*of, *at) = (self.id, version);
            }
            if let Some(e) = local.get(host) {
                return Some(f(e));
            }
            let e = self.cache.lock().expect("cache lock").get(host).cloned()?;
            if local.len() > 10_000 {
                local.clear();
            }
            let out = f(&e);
            local.insert(host.to_string(), e);
            Some(out)
        })
    }

    fn insert(&self, host: &str, (site, stored): Loaded, generation: u64) {
        let mut cache = self.cache.lock().expect("cache lock");
        self.version.fetch_add(1, Ordering::Release);
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(
            host.to_string(),
            Arc::new(Entry {
                site,
                stored,
                loaded: Instant::now(),
                generation,
                refreshing: AtomicBool::new(false),
            }),
        );
    }

    /// Reads the site of a proxied hostname from the store; compiles it unless it is what
    /// `previous` (the cached entry being reloaded) was compiled from.
    async fn read_host(&self, host: &str, previous: Option<&Entry>) -> Result<Loaded, LoadError> {
        let records = self.store.proxied_records(host).await?;
        let Some(first) = records.first() else {
            return Ok((None, None));
        };
        let Some(zone) = self.store.zone(&first.zone_id).await? else {
            return Ok((None, None));
        };
        let origins = records
            .iter()
            .filter(|r| r.zone_id == zone.id)
            .cloned()
            .collect();
        let stored = self.read(zone, origins).await?;
        if let Some(prev) = previous
            && prev.site.is_some()
            && prev.stored.as_deref() == Some(&stored)
        {
            return Ok((prev.site.clone(), prev.stored.clone())); // unchanged
        }
        let (site, stored) = self.compile(host, stored).await?;
        Ok((Some(site), Some(stored)))
    }

    /// Reads what a zone's site is compiled from: the account's lists and rulesets, the
    /// zone's rulesets and page rules.
    async fn read(&self, zone: Zone, origins: Vec<DnsRecord>) -> Result<Stored, StoreError> {
        Ok(Stored {
            lists: self.store.lists_with_items(&zone.account_id).await?,
            account: self
                .store
                .rulesets(Scope::Account(&zone.account_id))
                .await?,
            zoned: self
                .store
                .rulesets(Scope::Zone {
                    account: &zone.account_id,
                    zone: &zone.id,
                })
                .await?,
            page_rules: self.store.page_rules(&zone.id).await?,
            zone,
            origins,
        })
    }

    /// Compiles a site on the blocking pool (not on a thread that serves requests).
    async fn compile(
        &self,
        host: &str,
        stored: Stored,
    ) -> Result<(Arc<Site>, Arc<Stored>), LoadError> {
        let scheme = self.scheme.clone();
        let host = host.to_string();
        let compiled = tokio::task::spawn_blocking(move || {
            let site = compile(&scheme, &host, &stored);
            (site, stored)
        })
        .await;
        match compiled {
            Ok((site, stored)) => Ok((Arc::new(site?), Arc::new(stored))),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(LoadError::ShuttingDown),
        }
    }
}

/// Compiles a zone's configuration for `host`: the account's entry points and custom
/// rulesets, the zone's, the account's lists, the zone's page rules.
fn compile(scheme: &Scheme, host: &str, stored: &Stored) -> Result<Site, LoadError> {
    let zone = &stored.zone;
    let bad = |message: String| LoadError::Config {
        zone: zone.name.clone(),
        message,
    };
    let mut lists = Catalog::new();
    for (list, items) in &stored.lists {
        let kind =
            parse_kind(&list.list.kind).map_err(|e| bad(format!("list {}: {e}", list.id)))?;
        let values = items
            .iter()
            .map(|i| {
                ItemValue::parse(kind, &i.item.data, "")
                    .map_err(|e| bad(format!("list item {}: {e}", i.id)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        lists.insert(&list.list.name, kind, values);
    }
    let compile = |r: &StoredRuleset| {
        let json = json!({
            "id": r.id,
            "name": r.ruleset.name,
            "description": r.ruleset.description,
            "kind": r.ruleset.kind,
            "phase": r.ruleset.phase,
            "rules": r.ruleset.rules,
        });
        Ruleset::compile(&json, scheme, &lists).map_err(|e| bad(format!("ruleset {}: {e}", r.id)))
    };
    let mut config = Config {
        order: PhaseOrder::default(),
        account: Vec::new(),
        zone: Vec::new(),
        custom: HashMap::new(),
        lists: Box::new(Catalog::new()),
        page_rules: Vec::new(),
        fields: None,
    };
    // The account's entry points are kind `root`, the zone's `zone`; both have `custom` ones.
    for (rulesets, entry_kind, entry_points) in [
        (&stored.account, "root", &mut config.account),
        (&stored.zoned, "zone", &mut config.zone),
    ] {
        for r in rulesets {
            match r.ruleset.kind.as_str() {
                "custom" => {
                    config.custom.insert(r.id.clone(), compile(r)?);
                }
                kind if kind == entry_kind => entry_points.push(compile(r)?),
                _ => {}
            }
        }
    }
    for r in &stored.page_rules {
        let spec = from_stored(
            &r.rule.targets,
            &r.rule.actions,
            r.rule.priority,
            &r.rule.status,
            &zone.name,
        )
        .map_err(|e| bad(format!("page rule {}: {e:?}", r.id)))?;
        config
            .page_rules
            .push(PageRule::new(r.id.clone(), spec, r.created_at));
    }
    config.lists = Box::new(lists);
    config.fields = Some(config.field_masks(scheme));
    Ok(Site {
        host: host.to_string(),
        zone: zone.clone(),
        origin_ip: stored
            .origins
            .first()
            .and_then(|r| r.record.content.trim_matches(['[', ']']).parse().ok()),
        origins: stored.origins.clone(),
        config,
    })
}
