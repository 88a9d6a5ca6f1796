//! `edgetrace serve`: the API on the embedded default (SQLite in the data directory, this
//! machine as the one colo), optionally the Datadog system-probe route on a Unix socket and TCP.
//! Scaled out: `--nats` dispatches to the colos' agents, `--database postgres://…` shares one
//! database between replicas.

use crate::traceroute::{EnrichArgs, parse_dns_server, warn_without_asn_db};
use anyhow::{Context, bail};
use edgetrace_api::{AppState, Limiter, RateLimit, SysprobeConfig};
use edgetrace_fleet::nats::{Version, check_nats_url};
use edgetrace_fleet::{Fleet, LocalColo, Remote};
use edgetrace_net::{Sockets, drop_privileges};
use edgetrace_probe::report::Colo;
use edgetrace_store::{PERMISSIONS, Store};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./edgetrace-data";

#[derive(clap::Args, Debug)]
#[command(after_help = "\
On an empty data directory, serve creates an account and a first API token with every
permission and prints both once on stderr; only the token's hash is stored.

Examples:
  edgetrace serve
  edgetrace serve --listen 0.0.0.0:8080 --data-dir /var/lib/edgetrace --colo-name ams01 --colo-city 'Amsterdam, NL'
  edgetrace serve --sysprobe-socket /opt/datadog-agent/run/sysprobe.sock
  edgetrace serve --nats nats://10.0.0.5:4222 --database postgres://edgetrace@db/edgetrace
  edgetrace serve --proxy-listen 0.0.0.0:443 --proxy-tls-cert edge.pem --proxy-tls-key edge.key --geo-db GeoLite2-City.mmdb

With --nats, the colos are the `edgetrace agent`s that announce themselves on NATS (this machine
is no longer one; it still answers the system-probe route). Without it, this machine is the one
colo. With --database, replicas behind a load balancer share accounts, tokens and results.

With --proxy-listen, serve also runs the edge: a reverse proxy (HTTP/1.1 and HTTP/2; TLS when a
certificate is given) for the proxied DNS records of the configured zones, applying their
rulesets and page rules to every request, then forwarding to the record's address (the port the
request came in on, unless --proxy-origin-port or a `route` rule says otherwise). A change made
through the API applies at once on this replica and within 1 s on others.

Config file (TOML; every key optional, command-line flags win):
  listen = \"127.0.0.1:8080\"
  data_dir = \"./edgetrace-data\"
  database = \"postgres://edgetrace@db.example.net/edgetrace\"   # instead of SQLite in data_dir
  nats = \"nats://10.0.0.5:4222\"
  min_agent_version = \"0.1.0\"
  [colo]
  name = \"local\"
  city = \"\"
  [rate_limit]            # per API token
  requests = 1200
  period_secs = 300
  [sysprobe]
  socket = \"/run/edgetrace/sysprobe.sock\"
  listen = \"127.0.0.1:3333\"   # needs an API token with Magic Transit Write
  namespace = \"default\"
  network_id = \"\"
  [enrich]                # names and AS numbers of hops and targets
  no_dns = false
  dns_server = \"127.0.0.53:53\"   # default: the system's resolvers (/etc/resolv.conf)
  dns_timeout_ms = 1000
  asn_db = [\"ip2asn-v4.tsv\", \"ip2asn-v6.tsv\"]   # relative to this file
  [proxy]
  listen = \"0.0.0.0:443\"
  tls_cert = \"edge.pem\"      # PEM chain, leaf first; with tls_key: HTTPS (HTTP/2 by ALPN)
  tls_key = \"edge.key\"
  origin_port = 80
  geo_db = \"GeoLite2-City.mmdb\"   # ip.src.country and friends; without it they are missing")]
pub struct Args {
    /// Address of the HTTP API [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Directory of the SQLite database [default: ./edgetrace-data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// TOML configuration file (see below).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Name of this machine as a colo [default: local].
    #[arg(long, value_name = "NAME")]
    colo_name: Option<String>,
    /// City of this machine as a colo, e.g. "Denver, CO, US".
    #[arg(long, value_name = "CITY")]
    colo_city: Option<String>,
    /// Serve Datadog's system-probe `GET /traceroute/{host}` on this Unix socket (mode 0660).
    #[arg(long, value_name = "PATH")]
    sysprobe_socket: Option<PathBuf>,
    /// Also serve the system-probe route on TCP (callers need an API token).
    #[arg(long, value_name = "ADDR")]
    sysprobe_listen: Option<SocketAddr>,
    /// Database URL (postgres://USER:PASSWORD@HOST/DB) instead of SQLite in the data directory;
    /// replicas on one database share accounts, tokens and results.
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    /// Dispatch traceroutes to the colos' agents over NATS (nats://HOST:PORT, comma-separated
    /// for a cluster) instead of tracing from this machine.
    #[arg(long, value_name = "URL")]
    nats: Option<String>,
    /// Refuse agents whose version is older than this (MAJOR.MINOR.PATCH).
    #[arg(long, value_name = "VERSION", value_parser = parse_version, requires = "nats")]
    min_agent_version: Option<Version>,
    /// Requests per 5 minutes allowed to one API token [default: 1200]; 0 disables the limit.
    #[arg(long, value_name = "N")]
    rate_limit: Option<u32>,
    #[command(flatten)]
    enrich: EnrichArgs,
    /// Run the edge proxy on this address (HTTP/1.1 and HTTP/2).
    #[arg(long, value_name = "ADDR")]
    proxy_listen: Option<SocketAddr>,
    /// Serve the proxy over TLS with this PEM certificate chain (needs --proxy-tls-key).
    #[arg(long, value_name = "FILE", requires = "proxy_tls_key")]
    proxy_tls_cert: Option<PathBuf>,
    /// The PEM private key of --proxy-tls-cert.
    #[arg(long, value_name = "FILE", requires = "proxy_tls_cert")]
    proxy_tls_key: Option<PathBuf>,
    /// Port of the origins [default: the port the request came in on].
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    proxy_origin_port: Option<u16>,
    /// GeoLite2-City or -Country .mmdb for the rules' ip.src.* fields (reloaded when it
    /// changes); without it they are missing and rules comparing them do not match.
    #[arg(long, value_name = "FILE")]
    geo_db: Option<PathBuf>,
    /// Threads serving the API, and as many proxy threads (each one runs its own event loop
    /// and serves its connections start to end) [default: one per core].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    worker_threads: Option<u16>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProxySection {
    listen: Option<SocketAddr>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    origin_port: Option<u16>,
    geo_db: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database: Option<String>,
    nats: Option<String>,
    min_agent_version: Option<String>,
    #[serde(default)]
    colo: ColoConfig,
    rate_limit: Option<RateLimitConfig>,
    #[serde(default)]
    sysprobe: SysprobeSection,
    #[serde(default)]
    enrich: EnrichSection,
    #[serde(default)]
    proxy: ProxySection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnrichSection {
    #[serde(default)]
    no_dns: bool,
    dns_server: Option<String>,
    dns_timeout_ms: Option<u64>,
    #[serde(default)]
    asn_db: Vec<PathBuf>,
}

impl EnrichSection {
    /// The command line's options over the config file's; checked like the flags.
    fn merge(self, flags: EnrichArgs, path: &Path) -> anyhow::Result<EnrichArgs> {
        let dns_server = match (flags.dns_server, self.dns_server) {
            (Some(a), _) => Some(a),
            (None, Some(s)) => Some(
                parse_dns_server(&s)
                    .map_err(|e| anyhow::anyhow!("{}: enrich.dns_server: {e}", path.display()))?,
            ),
            (None, None) => None,
        };
        let dns_timeout = flags.dns_timeout.or(self.dns_timeout_ms);
        if let Some(ms) = dns_timeout
            && !(1..=60_000).contains(&ms)
        {
            bail!(
                "{}: enrich.dns_timeout_ms: {ms} is out of range; allowed: 1-60000",
                path.display()
            );
        }
        // Relative database paths in the file are relative to the file.
        let base = path.parent().unwrap_or(Path::new("."));
        Ok(EnrichArgs {
            no_dns: flags.no_dns || (self.no_dns && flags.dns_server.is_none()),
            dns_server,
            dns_timeout,
            asn_db: if flags.asn_db.is_empty() {
                self.asn_db.into_iter().map(|p| base.join(p)).collect()
            } else {
                flags.asn_db
            },
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ColoConfig {
    name: Option<String>,
    city: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitConfig {
    requests: u32,
    period_secs: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SysprobeSection {
    socket: Option<PathBuf>,
    listen: Option<SocketAddr>,
    namespace: Option<String>,
    network_id: Option<String>,
}

fn load_config(path: &Path) -> anyhow::Result<Config> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    let config: Config =
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if let Some(r) = &config.rate_limit
        && r.period_secs == 0
    {
        bail!(
            "{}: rate_limit.period_secs: 0 is out of range; allowed: 1 or more",
            path.display()
        );
    }
    Ok(config)
}

fn parse_version(s: &str) -> Result<Version, String> {
    s.parse()
}

/// Checks a `--database` URL before anything connects.
pub fn check_database_url(url: &str) -> anyhow::Result<()> {
    if ["postgres://", "postgresql://", "sqlite:"]
        .iter()
        .any(|p| url.starts_with(p))
    {
        Ok(())
    } else {
        bail!("--database: expected postgres://USER@HOST/DB (or sqlite:FILE), got {url:?}")
    }
}

/// The data directory a command works on.
pub fn data_dir(flag: Option<PathBuf>) -> PathBuf {
    flag.unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
}

pub fn run(args: Args) -> ExitCode {
    match serve(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edgetrace: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: Args) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => load_config(path)?,
        None => Config::default(),
    };
    let enrich_args = match &args.config {
        Some(path) => std::mem::take(&mut config.enrich).merge(args.enrich, path)?,
        None => args.enrich,
    };
    let listen = args
        .listen
        .or(config.listen)
        .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("default address"));
    let data_dir = data_dir(args.data_dir.or(config.data_dir));
    let database = args.database.or(config.database);
    if let Some(url) = &database {
        check_database_url(url)?;
    }
    let nats = args.nats.or(config.nats);
    if let Some(url) = &nats {
        check_nats_url(url)?;
    }
    let min_agent_version = match (args.min_agent_version, config.min_agent_version) {
        (Some(v), _) => Some(v),
        (None, Some(s)) => Some(s.parse::<Version>().map_err(|e| {
            anyhow::anyhow!(
                "{}: min_agent_version: {e}",
                args.config.as_deref().unwrap_or(Path::new("")).display()
            )
        })?),
        (None, None) => None,
    };
    if min_agent_version.is_some() && nats.is_none() {
        bail!("min_agent_version: needs --nats (agents only exist with NATS)");
    }
    let colo = Colo {
        name: args
            .colo_name
            .or(config.colo.name)
            .unwrap_or_else(|| "local".into()),
        city: args.colo_city.or(config.colo.city).unwrap_or_default(),
    };
    if colo.name.trim().is_empty() {
        bail!("--colo-name: must not be empty");
    }
    let rate_limit = match (args.rate_limit, config.rate_limit) {
        (Some(n), _) => RateLimit {
            requests: n,
            ..RateLimit::default()
        },
        (None, Some(r)) => RateLimit {
            requests: r.requests,
            period: Duration::from_secs(r.period_secs),
        },
        (None, None) => RateLimit::default(),
    };
    let sysprobe_socket = args.sysprobe_socket.or(config.sysprobe.socket);
    let sysprobe_listen = args.sysprobe_listen.or(config.sysprobe.listen);
    let sysprobe = SysprobeConfig {
        namespace: config
            .sysprobe
            .namespace
            .unwrap_or_else(|| "default".into()),
        network_id: config.sysprobe.network_id.unwrap_or_default(),
    };

    let base = args
        .config
        .as_deref()
        .and_then(Path::parent)
        .unwrap_or(Path::new(""))
        .to_path_buf();
    let proxy_listen = args.proxy_listen.or(config.proxy.listen);
    let tls = match (
        args.proxy_tls_cert
            .or(config.proxy.tls_cert.map(|p| base.join(p))),
        args.proxy_tls_key
            .or(config.proxy.tls_key.map(|p| base.join(p))),
    ) {
        (Some(cert), Some(key)) => Some(
            edgetrace_proxy::server::tls_acceptor(&cert, &key)
                .context("--proxy-tls-cert/--proxy-tls-key")?,
        ),
        (None, None) => None,
        _ => bail!("proxy.tls_cert and proxy.tls_key go together"),
    };
    if tls.is_some() && proxy_listen.is_none() {
        bail!("--proxy-tls-cert: needs --proxy-listen");
    }
    if config.proxy.origin_port == Some(0) {
        bail!("proxy.origin_port: 0 is out of range; allowed: 1-65535");
    }
    let origin_port = args.proxy_origin_port.or(config.proxy.origin_port);
    // A bad database file stops the server here, naming the file.
    let geo_db = match args.geo_db.or(config.proxy.geo_db.map(|p| base.join(p))) {
        Some(path) => Some(
            edgetrace_enrich::GeoDb::open(&path)
                .with_context(|| format!("--geo-db {}", path.display()))?,
        ),
        None => None,
    };

    // Privileged sockets first, then every capability goes, before any thread starts.
    let sockets = match Sockets::open() {
        Ok(s) => Some(s),
        Err(e) if e.is_not_permitted() => {
            eprintln!(
                "edgetrace: no CAP_NET_RAW: ICMP and UDP traces use unprivileged sockets; TCP and GRE answer Code 4 ({e})"
            );
            None
        }
        Err(e) => return Err(e).context("cannot open the probing sockets"),
    };
    drop_privileges().context("cannot drop privileges")?;

    let proxy_threads = args.worker_threads.map(usize::from);
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.worker_threads {
        runtime.worker_threads(usize::from(n));
    }
    let runtime = runtime
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    // A bad database file stops the server here, naming the file.
    let enricher = enrich_args.build(runtime.handle().clone())?;
    warn_without_asn_db(&enricher);
    let enricher_asn = enricher.asn.clone();
    let local = LocalColo::with_enricher(colo, sockets, enricher)
        .context("cannot start the probing thread")?;
    runtime.block_on(async move {
        let (store, stored_in) = match &database {
            Some(url) => (Store::open(url).await?, redact(url)),
            None => (
                Store::open_data_dir(&data_dir).await?,
                data_dir.display().to_string(),
            ),
        };
        bootstrap(&store).await?;
        let fleet = match &nats {
            Some(url) => {
                Fleet::with_remote(vec![local], Remote::start(url, min_agent_version).await?)
            }
            None => Fleet::new(vec![local]),
        };
        let mut edge = edgetrace_proxy::Edge::new(store.clone());
        edge.geo = geo_db;
        edge.asn = enricher_asn;
        edge.origin_port = origin_port;
        let edge = Arc::new(edge);
        let state = AppState {
            edge: edge.clone(),
            store: store.clone(),
            fleet: Arc::new(fleet),
            limiter: Arc::new(Limiter::new(rate_limit)),
            sysprobe: Arc::new(sysprobe),
        };
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("--listen {listen}: cannot listen"))?;
        eprintln!(
            "edgetrace: API on http://{}/client/v4 (data in {stored_in}; colos {})",
            listener.local_addr()?,
            match &nats {
                Some(url) => format!("from agents on NATS {url}"),
                None => "this machine".to_string(),
            }
        );
        let mut servers = tokio::task::JoinSet::new();
        let api = edgetrace_api::router(state.clone());
        servers.spawn(async move {
            axum::serve(
                listener,
                api.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .context("API server")
        });
        if let Some(addr) = proxy_listen {
            let listener = std::net::TcpListener::bind(addr)
                .with_context(|| format!("--proxy-listen {addr}: cannot listen"))?;
            let threads = proxy_threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
            eprintln!(
                "edgetrace: edge proxy on {}://{} ({threads} thread{})",
                if tls.is_some() { "https" } else { "http" },
                listener.local_addr()?,
                if threads == 1 { "" } else { "s" }
            );
            edgetrace_proxy::server::spawn(edge.clone(), listener, tls, threads)
                .context("cannot start the proxy's threads")?;
        }
        if let Some(path) = sysprobe_socket {
            let listener = bind_unix(&path)?;
            eprintln!("edgetrace: system-probe route on unix:{}", path.display());
            let app = edgetrace_api::sysprobe::router(state.clone(), false);
            servers.spawn(async move {
                axum::serve(listener, app)
                    .await
                    .context("system-probe server")
            });
        }
        if let Some(addr) = sysprobe_listen {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("--sysprobe-listen {addr}: cannot listen"))?;
            eprintln!(
                "edgetrace: system-probe route on http://{} (API token required)",
                listener.local_addr()?
            );
            let app = edgetrace_api::sysprobe::router(state.clone(), true);
            servers.spawn(async move {
                axum::serve(listener, app)
                    .await
                    .context("system-probe server")
            });
        }
        tokio::select! {
            done = servers.join_next() => {
                match done {
                    Some(Ok(r)) => r?,
                    Some(Err(e)) => bail!("a server task failed: {e}"),
                    None => {}
                }
            }
            _ = shutdown_signal() => eprintln!("edgetrace: shutting down"),
        }
        store.close().await;
        Ok(())
    })
}

/// A URL without its password, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

/// Binds the system-probe socket, replacing a stale one, readable and writable by the owner
/// and group only.
fn bind_unix(path: &Path) -> anyhow::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            bail!(
                "--sysprobe-socket {}: exists and is not a socket; refusing to replace it",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("--sysprobe-socket {}: cannot remove", path.display()))?;
    }
    let listener = tokio::net::UnixListener::bind(path)
        .with_context(|| format!("--sysprobe-socket {}: cannot listen", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("--sysprobe-socket {}: cannot set mode 0660", path.display()))?;
    Ok(listener)
}

pub(crate) async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}

/// On an empty database: an account and a token with every permission, shown once.
async fn bootstrap(store: &Store) -> anyhow::Result<()> {
    if !store.accounts().await?.is_empty() {
        return Ok(());
    }
    let account = store.create_account("default").await?;
    let permissions: Vec<String> = PERMISSIONS.iter().map(|p| p.to_string()).collect();
    let (token, secret) = store
        .create_token(&account.id, "first token", &permissions)
        .await?;
    eprintln!(
        "edgetrace: created account {} and API token {} with every permission.\n\
         edgetrace: the token's secret is shown only now; keep it:\n\n    {secret}\n",
        account.id, token.id
    );
    Ok(())
}
