//! Reverse DNS: PTR lookups started the moment a hop answers, shared while in flight, cached
//! with their TTLs.

use crate::Error;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::runtime::Handle;
use tokio::sync::{Semaphore, oneshot, watch};

/// How reverse lookups are made and cached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsOptions {
    /// The DNS server to ask; `None` uses the system configuration (`/etc/resolv.conf`).
    pub server: Option<SocketAddr>,
    /// The longest a lookup may take from the moment it starts, waiting for a free slot
    /// included. After it the name is the IP. 1 ms to 60 s; default 1 s.
    pub timeout: Duration,
    /// Lookups sent at once; the others wait (within their timeout). 1 to 4096; default 64.
    pub max_in_flight: usize,
    /// Answers are kept at least this long, whatever their TTL, so the trace that asked gets
    /// them. Default 10 s.
    pub min_ttl: Duration,
    /// Names are kept at most this long. Default 1 day.
    pub max_ttl: Duration,
    /// "No such name" answers are kept for the negative TTL of the zone's SOA (RFC 2308),
    /// at most this long. Default 1 hour.
    pub max_negative_ttl: Duration,
    /// Timeouts and server failures are kept this long before the next try. Default 5 s.
    pub error_ttl: Duration,
    /// Most addresses kept; when full, expired entries go first, then arbitrary ones.
    /// At least 1; default 100 000.
    pub cache_capacity: usize,
}

impl Default for DnsOptions {
    fn default() -> Self {
        DnsOptions {
            server: None,
            timeout: Duration::from_secs(1),
            max_in_flight: 64,
            min_ttl: Duration::from_secs(10),
            max_ttl: Duration::from_secs(86_400),
            max_negative_ttl: Duration::from_secs(3_600),
            error_ttl: Duration::from_secs(5),
            cache_capacity: 100_000,
        }
    }
}

impl DnsOptions {
    fn validate(&self) -> Result<(), Error> {
        let bad = |field, value: String, allowed| {
            Err(Error::DnsOption {
                field,
                value,
                allowed,
            })
        };
        if self.timeout < Duration::from_millis(1) || self.timeout > Duration::from_secs(60) {
            return bad("timeout", format!("{:?}", self.timeout), "1 ms to 60 s");
        }
        if !(1..=4096).contains(&self.max_in_flight) {
            return bad("max_in_flight", self.max_in_flight.to_string(), "1 to 4096");
        }
        if self.cache_capacity == 0 {
            return bad("cache_capacity", "0".into(), "at least 1");
        }
        if self.min_ttl > self.max_ttl {
            return bad(
                "min_ttl",
                format!("{:?}", self.min_ttl),
                "no more than max_ttl",
            );
        }
        Ok(())
    }
}

/// A reverse-DNS resolver with a cache, shared by every trace.
///
/// Call [`prefetch`](Resolver::prefetch) as soon as an address is seen (it returns at once
/// and may be called from any thread), and [`name`](Resolver::name) when the name is
/// needed: it returns the cached answer, or waits for the lookup already under way, never
/// past [`DnsOptions::timeout`] after that lookup started. The name is the PTR name without
/// its final dot, or the IP itself when there is none, the lookup failed or it timed out.
///
/// Lookups run on the tokio runtime the resolver was created in, or, when created outside
/// one, on a small runtime of its own (one thread, stopped when the last clone is dropped).
/// Cloning is cheap; clones share the cache.
///
/// ```no_run
/// use edgetrace_enrich::{DnsOptions, Resolver};
/// use std::time::Duration;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), edgetrace_enrich::Error> {
/// let resolver = Resolver::new(DnsOptions {
///     server: Some("127.0.0.1:53".parse().unwrap()),
///     timeout: Duration::from_millis(500),
///     ..DnsOptions::default()
/// })?;
/// let ip = "198.18.0.1".parse().unwrap();
/// resolver.prefetch(ip); // when the hop answers
/// // ... probing goes on ...
/// let name: String = resolver.name(ip).await; // "router1.example.net" or "198.18.0.1"
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Resolver {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("options", &self.inner.options)
            .field("cached", &self.inner.lock().len())
            .finish()
    }
}

struct Inner {
    dns: TokioResolver,
    options: DnsOptions,
    permits: Semaphore,
    cache: Mutex<HashMap<IpAddr, Slot>>,
    handle: Handle,
    /// Dropping it stops the resolver's own runtime, if it has one.
    _stop: Option<oneshot::Sender<()>>,
}

/// `None`: no name (no PTR, failure or timeout); the IP stands in.
type Answer = Option<Arc<str>>;

enum Slot {
    Ready { name: Answer, expires: Instant },
    Pending(watch::Receiver<Option<Answer>>),
}

enum Started {
    Ready(Answer),
    Pending(watch::Receiver<Option<Answer>>),
}

impl Resolver {
    /// Builds a resolver from validated options. Lookups run on the current tokio runtime,
    /// or on a runtime of the resolver's own when there is none.
    pub fn new(options: DnsOptions) -> Result<Resolver, Error> {
        match Handle::try_current() {
            Ok(handle) => Self::build(options, handle, None),
            Err(_) => {
                let (handle, stop) = own_runtime()?;
                Self::build(options, handle, Some(stop))
            }
        }
    }

    /// Builds a resolver whose lookups run on the given runtime.
    pub fn with_handle(options: DnsOptions, handle: Handle) -> Result<Resolver, Error> {
        Self::build(options, handle, None)
    }

    fn build(
        options: DnsOptions,
        handle: Handle,
        stop: Option<oneshot::Sender<()>>,
    ) -> Result<Resolver, Error> {
        options.validate()?;
        let (config, mut opts) = match options.server {
            Some(server) => {
                let mut udp = ConnectionConfig::udp();
                udp.port = server.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = server.port();
                let ns = NameServerConfig::new(server.ip(), true, vec![udp, tcp]);
                let mut opts = ResolverOpts::default();
                opts.use_hosts_file = ResolveHosts::Never;
                (ResolverConfig::from_name_servers(vec![ns]), opts)
            }
            None => hickory_resolver::system_conf::read_system_conf()
                .map_err(|e| Error::SystemConfig(e.to_string()))?,
        };
        // Our own cache keeps the answers, with our TTL rules; the outer timeout is the hard
        // limit, the resolver's own just has to fit in it.
        opts.cache_size = 0;
        opts.timeout = options.timeout;
        opts.attempts = 1;
        let dns = {
            let _guard = handle.enter();
            TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
                .with_options(opts)
                .build()
                .map_err(|e| Error::SystemConfig(e.to_string()))?
        };
        Ok(Resolver {
            inner: Arc::new(Inner {
                dns,
                permits: Semaphore::new(options.max_in_flight),
                options,
                cache: Mutex::new(HashMap::new()),
                handle,
                _stop: stop,
            }),
        })
    }

    /// The options in use.
    pub fn options(&self) -> &DnsOptions {
        &self.inner.options
    }

    /// Starts looking up `ip` in the background unless it is cached or already under way.
    /// Returns at once; callable from any thread (the prober's included).
    pub fn prefetch(&self, ip: IpAddr) {
        let _ = self.start(ip);
    }

    /// The name of `ip`: cached, or from the lookup under way (started now if there is
    /// none). Waits at most until the lookup's timeout, counted from when it started.
    pub async fn name(&self, ip: IpAddr) -> String {
        let answer = match self.start(ip) {
            Started::Ready(answer) => answer,
            // The lookup task always sends by its deadline; if it is gone (runtime shut
            // down) the channel closes and the IP stands in.
            Started::Pending(mut rx) => match rx.wait_for(Option::is_some).await {
                Ok(v) => v.clone().flatten(),
                Err(_) => None,
            },
        };
        render(ip, answer)
    }

    /// The cached name of `ip`, without waiting or starting anything. `None` when not cached
    /// (or expired, or still in flight).
    pub fn cached(&self, ip: IpAddr) -> Option<String> {
        match self.inner.lock().get(&ip) {
            Some(Slot::Ready { name, expires }) if *expires > Instant::now() => {
                Some(render(ip, name.clone()))
            }
            _ => None,
        }
    }

    /// The names of many addresses at once, looked up concurrently.
    pub async fn names(&self, ips: impl IntoIterator<Item = IpAddr>) -> HashMap<IpAddr, String> {
        let mut unique: Vec<IpAddr> = ips.into_iter().collect();
        unique.sort_unstable();
        unique.dedup();
        // Start them all before waiting for any.
        for &ip in &unique {
            self.prefetch(ip);
        }
        let names = futures_util::future::join_all(unique.iter().map(|&ip| self.name(ip))).await;
        unique.into_iter().zip(names).collect()
    }

    /// [`names`](Resolver::names) for code outside async contexts: runs on the resolver's
    /// runtime and blocks this thread until done (at most about one timeout). Must not be
    /// called from a thread that drives that runtime.
    pub fn names_blocking(&self, ips: Vec<IpAddr>) -> HashMap<IpAddr, String> {
        let (tx, rx) = std::sync::mpsc::channel();
        let this = self.clone();
        let fallback: HashMap<IpAddr, String> =
            ips.iter().map(|ip| (*ip, ip.to_string())).collect();
        self.inner.handle.spawn(async move {
            let _ = tx.send(this.names(ips).await);
        });
        rx.recv().unwrap_or(fallback)
    }

    /// Drops every cached answer (lookups under way finish and are cached).
    pub fn clear_cache(&self) {
        self.inner
            .lock()
            .retain(|_, s| matches!(s, Slot::Pending(_)));
    }

    fn start(&self, ip: IpAddr) -> Started {
        let now = Instant::now();
        let mut cache = self.inner.lock();
        match cache.get(&ip) {
            Some(Slot::Ready { name, expires }) if *expires > now => {
                return Started::Ready(name.clone());
            }
            // A lookup task that vanished (its runtime shut down) closed its channel: retry.
            Some(Slot::Pending(rx)) if rx.has_changed().is_ok() => {
                return Started::Pending(rx.clone());
            }
            _ => {}
        }
        if cache.len() >= self.inner.options.cache_capacity {
            evict(&mut cache, now, self.inner.options.cache_capacity);
        }
        let (tx, rx) = watch::channel(None);
        cache.insert(ip, Slot::Pending(rx.clone()));
        drop(cache);
        let inner = self.inner.clone();
        let deadline = tokio::time::Instant::from_std(now + inner.options.timeout);
        self.inner.handle.spawn(async move {
            let outcome = tokio::time::timeout_at(deadline, async {
                // The semaphore is never closed; a closed one would just skip the limit.
                let _permit = inner.permits.acquire().await;
                inner.dns.lookup(Name::from(ip), RecordType::PTR).await
            })
            .await;
            let (name, ttl) = match outcome {
                Ok(result) => classify(result, &inner.options),
                Err(_elapsed) => (None, inner.options.error_ttl),
            };
            inner.lock().insert(
                ip,
                Slot::Ready {
                    name: name.clone(),
                    expires: Instant::now() + ttl,
                },
            );
            // Nobody waiting is fine.
            let _ = tx.send(Some(name));
        });
        Started::Pending(rx)
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, Slot>> {
        // The map stays consistent across a panic in another holder: recover it.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Makes room: expired answers first, then arbitrary ones (never lookups under way) until
/// the map is at most three quarters full.
fn evict(cache: &mut HashMap<IpAddr, Slot>, now: Instant, capacity: usize) {
    cache.retain(|_, s| !matches!(s, Slot::Ready { expires, .. } if *expires <= now));
    let target = capacity - capacity / 4;
    if cache.len() >= target.max(1) {
        let mut excess = cache.len() + 1 - target.max(1);
        cache.retain(|_, s| {
            if excess > 0 && matches!(s, Slot::Ready { .. }) {
                excess -= 1;
                false
            } else {
                true
            }
        });
    }
}

/// The name and how long to keep it.
fn classify(
    result: Result<hickory_resolver::lookup::Lookup, NetError>,
    o: &DnsOptions,
) -> (Answer, Duration) {
    match result {
        Ok(lookup) => {
            let name = lookup.answers().iter().find_map(|r| match &r.data {
                RData::PTR(ptr) => {
                    let s = ptr.0.to_ascii();
                    let s = s.strip_suffix('.').unwrap_or(&s);
                    (!s.is_empty()).then(|| Arc::<str>::from(s))
                }
                _ => None,
            });
            let ttl = lookup.answers().iter().map(|r| r.ttl).min().unwrap_or(0);
            let ttl = Duration::from_secs(ttl.into()).clamp(o.min_ttl, o.max_ttl);
            (name, ttl)
        }
        Err(NetError::Dns(DnsError::NoRecordsFound(nr))) => {
            let ttl = Duration::from_secs(nr.negative_ttl.unwrap_or(0).into());
            (
                None,
                ttl.clamp(o.min_ttl, o.max_negative_ttl.max(o.min_ttl)),
            )
        }
        Err(e) => {
            tracing::debug!("reverse lookup failed: {e}");
            (None, o.error_ttl)
        }
    }
}

fn render(ip: IpAddr, answer: Answer) -> String {
    match answer {
        Some(name) => name.to_string(),
        None => ip.to_string(),
    }
}

/// A one-thread runtime on a thread of its own, which lives until the sender is dropped.
fn own_runtime() -> Result<(Handle, oneshot::Sender<()>), Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let handle = rt.handle().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("edgetrace-dns".into())
        .spawn(move || {
            rt.block_on(async {
                let _ = stopped.await;
            });
        })
        .map_err(Error::Runtime)?;
    Ok((handle, stop))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eviction_drops_expired_then_arbitrary_answers_but_never_pending_lookups() {
        let now = Instant::now();
        let mut cache = HashMap::new();
        let (_tx, rx) = watch::channel(None);
        for i in 0..8u8 {
            let expires = if i < 2 {
                now
            } else {
                now + Duration::from_secs(60)
            };
            cache.insert(
                IpAddr::from([198, 18, 0, i]),
                Slot::Ready {
                    name: None,
                    expires,
                },
            );
        }
        cache.insert(IpAddr::from([198, 18, 1, 1]), Slot::Pending(rx));
        evict(&mut cache, now, 8);
        // Expired ones gone, then down below three quarters of 8, the lookup kept.
        assert!(cache.len() < 6, "{}", cache.len());
        assert!(!cache.contains_key(&IpAddr::from([198, 18, 0, 0])));
        assert!(!cache.contains_key(&IpAddr::from([198, 18, 0, 1])));
        assert!(matches!(
            cache.get(&IpAddr::from([198, 18, 1, 1])),
            Some(Slot::Pending(_))
        ));
    }

    #[test]
    fn ttls_are_clamped_and_names_lose_their_final_dot() {
        use hickory_resolver::lookup::Lookup;
        use hickory_resolver::net::NoRecords;
        use hickory_resolver::proto::op::{Query, ResponseCode};
        use hickory_resolver::proto::rr::{Record, rdata::PTR};
        let o = DnsOptions::default();
        let ip: IpAddr = "198.18.0.1".parse().unwrap();
        let query = Query::query(Name::from(ip), RecordType::PTR);
        let ptr = |ttl| {
            Record::from_rdata(
                Name::from(ip),
                ttl,
                RData::PTR(PTR(Name::from_ascii("r1.example.net.").unwrap())),
            )
        };
        let (name, ttl) = classify(Ok(Lookup::new_with_max_ttl(query.clone(), [ptr(0)])), &o);
        assert_eq!(name.as_deref(), Some("r1.example.net"));
        assert_eq!(ttl, o.min_ttl);
        let (_, ttl) = classify(
            Ok(Lookup::new_with_max_ttl(query.clone(), [ptr(u32::MAX)])),
            &o,
        );
        assert_eq!(ttl, o.max_ttl);
        let mut nx = NoRecords::new(query.clone(), ResponseCode::NXDomain);
        nx.negative_ttl = Some(1_000_000);
        let (name, ttl) = classify(Err(NetError::Dns(DnsError::NoRecordsFound(nx))), &o);
        assert_eq!((name, ttl), (None, o.max_negative_ttl));
        let (name, ttl) = classify(Err(NetError::Timeout), &o);
        assert_eq!((name, ttl), (None, o.error_ttl));
        assert_eq!(render(ip, None), "198.18.0.1");
    }
}
