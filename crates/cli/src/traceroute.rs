//! `edgetrace traceroute`.

use anyhow::Context;
use clap::{CommandFactory, error::ErrorKind};
use edgetrace_enrich::{AsnDb, DnsOptions, Enricher, Resolver};
use edgetrace_fleet::{Family, LocalColo, resolve};
use edgetrace_net::{Sockets, drop_privileges};
use edgetrace_probe::report::{Colo, Traceroute};
use edgetrace_probe::{Confidence, MaxTtl, Options, PacketType, PacketsPerTtl, Paths, WaitTime};
use futures::StreamExt;
use std::io::{IsTerminal, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// At most this many targets per run, as the API allows.
const MAX_TARGETS: usize = 10;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  edgetrace traceroute 198.18.0.9\n  edgetrace traceroute -P tcp -p 443 --json example.com 2001:db8::1"
)]
pub struct Args {
    /// Hostnames, IPv4 or IPv6 addresses (1 to 10), traced concurrently.
    #[arg(required = true, value_name = "TARGET")]
    targets: Vec<String>,
    /// Probe type.
    #[arg(short = 'P', long, default_value = "icmp", value_parser = parse_packet_type)]
    protocol: PacketType,
    /// UDP/TCP destination port, GRE key, or first ICMP sequence number (0-65535); 0 picks the
    /// default per protocol: UDP 33434, TCP 80, ICMP 1, GRE a key per trace.
    #[arg(short = 'p', long, default_value_t = 0)]
    port: u16,
    /// Highest TTL to probe (1-64).
    #[arg(short = 'm', long, default_value = "30", value_parser = parse_max_ttl)]
    max_ttl: MaxTtl,
    /// Probes sent at each TTL (1-10).
    #[arg(short = 'q', long, default_value = "3", value_parser = parse_ppt)]
    packets_per_ttl: PacketsPerTtl,
    /// Seconds to wait for a reply to a probe (1-5).
    #[arg(short = 'w', long, default_value = "1", value_parser = parse_wait)]
    wait_time: WaitTime,
    /// Flows per target (1-64), each a Paris traceroute with a flow identifier of its own, to
    /// find every path through per-flow load balancers; or `auto`: add flows until the MDA's
    /// stopping rule says every next hop was seen (see --confidence). Other than 1 needs raw
    /// sockets.
    #[arg(long, default_value = "1", value_name = "N|auto", value_parser = parse_paths)]
    paths: Paths,
    /// With --paths auto: the confidence, in percent (50-99), that every next hop was found
    /// [default: 95].
    #[arg(long, value_name = "PERCENT", value_parser = parse_confidence)]
    confidence: Option<Confidence>,
    /// Use IPv4 when a hostname has both IPv4 and IPv6 addresses (the default).
    #[arg(short = '4', conflicts_with = "ipv6")]
    ipv4: bool,
    /// Use IPv6 when a hostname has both IPv4 and IPv6 addresses.
    #[arg(short = '6')]
    ipv6: bool,
    /// Print the result array of the Cloudflare traceroute API instead of tables.
    #[arg(long)]
    json: bool,
    /// Name of this machine as a colo in the output.
    #[arg(long, default_value = "local")]
    colo_name: String,
    #[command(flatten)]
    enrich: EnrichArgs,
}

/// Reverse DNS and ASN of hops and targets; shared by `traceroute` and `serve`.
#[derive(clap::Args, Debug, Clone, Default)]
#[command(next_help_heading = "Names and AS numbers")]
pub struct EnrichArgs {
    /// Do not look up the names of hops and targets: `name` stays the IP address.
    #[arg(long)]
    pub no_dns: bool,
    /// DNS server for reverse lookups, IP or IP:PORT (port 53 by default) [default: the
    /// system's, from /etc/resolv.conf].
    #[arg(long, value_name = "IP:PORT", value_parser = parse_dns_server, conflicts_with = "no_dns")]
    pub dns_server: Option<SocketAddr>,
    /// Longest wait for one reverse lookup, in milliseconds (1-60000) [default: 1000]. Lookups
    /// start as hops answer, so a trace ends at most this long after its last reply.
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub dns_timeout: Option<u64>,
    /// AS-number database: an ip2asn TSV file (ip2asn-v4.tsv, -v6.tsv, -combined.tsv) or an
    /// ASN .mmdb (MaxMind GeoLite2-ASN, IPinfo). Repeat for several files; without one, `asn`
    /// stays empty. A changed file is loaded again without a restart.
    #[arg(long = "asn-db", value_name = "FILE")]
    pub asn_db: Vec<PathBuf>,
}

/// `IP:PORT`, `[IPv6]:PORT` or a bare IP (port 53).
pub fn parse_dns_server(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    s.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("{s:?}: not IP, IP:PORT or [IPv6]:PORT"))
}

/// Why the enricher could not be built: a database file (named in `error`) or the resolver.
#[derive(Debug)]
pub enum EnrichSetupError {
    AsnDb(edgetrace_enrich::Error),
    Dns(edgetrace_enrich::Error),
}

impl std::fmt::Display for EnrichSetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EnrichSetupError::AsnDb(e) => write!(f, "--asn-db: {e}"),
            EnrichSetupError::Dns(e) => write!(
                f,
                "reverse DNS: {e} (give a server with --dns-server IP:PORT, or use --no-dns)"
            ),
        }
    }
}

impl std::error::Error for EnrichSetupError {}

impl EnrichArgs {
    /// Opens the ASN database (a bad file is an error naming it) and builds the resolver,
    /// whose lookups run on `runtime`. Call after the privileges are dropped: both start
    /// threads (the database's reload thread, the runtime's workers).
    pub fn build(&self, runtime: tokio::runtime::Handle) -> Result<Enricher, EnrichSetupError> {
        let asn = if self.asn_db.is_empty() {
            None
        } else {
            Some(AsnDb::open_files(&self.asn_db).map_err(EnrichSetupError::AsnDb)?)
        };
        let resolver = if self.no_dns {
            None
        } else {
            let options = DnsOptions {
                server: self.dns_server,
                timeout: self
                    .dns_timeout
                    .map_or(DnsOptions::default().timeout, Duration::from_millis),
                ..DnsOptions::default()
            };
            Some(Resolver::with_handle(options, runtime).map_err(EnrichSetupError::Dns)?)
        };
        Ok(Enricher { resolver, asn })
    }
}

/// The warning for a run or a server without an ASN database (printed once).
pub fn warn_without_asn_db(enricher: &Enricher) {
    if enricher.asn.is_none() {
        eprintln!(
            "edgetrace: warning: no ASN database configured: `asn` stays empty. Give one with \
             --asn-db FILE (an ip2asn TSV such as ip2asn-combined.tsv from iptoasn.com, or a \
             GeoLite2-ASN / IPinfo .mmdb)."
        );
    }
}

fn parse_packet_type(s: &str) -> Result<PacketType, String> {
    s.parse()
        .map_err(|e: edgetrace_probe::OptionsError| e.to_string())
}
fn parse_max_ttl(s: &str) -> Result<MaxTtl, String> {
    s.parse()
        .map_err(|e: edgetrace_probe::OptionsError| e.to_string())
}
fn parse_ppt(s: &str) -> Result<PacketsPerTtl, String> {
    s.parse()
        .map_err(|e: edgetrace_probe::OptionsError| e.to_string())
}
fn parse_wait(s: &str) -> Result<WaitTime, String> {
    s.parse()
        .map_err(|e: edgetrace_probe::OptionsError| e.to_string())
}
fn parse_paths(s: &str) -> Result<Paths, String> {
    s.parse()
        .map_err(|e: edgetrace_probe::OptionsError| e.to_string())
}
fn parse_confidence(s: &str) -> Result<Confidence, String> {
    s.parse()
        .map_err(|e: edgetrace_probe::OptionsError| e.to_string())
}

/// Exits with clap's usage error (exit code 2) naming the offending argument.
fn usage_error(kind: ErrorKind, message: String) -> ! {
    let mut cmd = crate::Cli::command();
    let sub = cmd
        .find_subcommand_mut("traceroute")
        .expect("traceroute is a subcommand");
    sub.error(kind, message).exit()
}

pub fn run(mut args: Args) -> ExitCode {
    match (args.paths, args.confidence) {
        (Paths::Auto(_), Some(c)) => args.paths = Paths::Auto(c),
        (Paths::Flows(n), Some(_)) => usage_error(
            ErrorKind::ArgumentConflict,
            format!("--confidence: applies only to --paths auto, not --paths {n}"),
        ),
        (_, None) => {}
    }
    if args.targets.len() > MAX_TARGETS {
        usage_error(
            ErrorKind::TooManyValues,
            format!(
                "<TARGET>: {} targets given; allowed: 1-{MAX_TARGETS}",
                args.targets.len()
            ),
        );
    }
    // Resolve everything before sending anything: a bad target aborts the run.
    let resolved: Vec<Result<IpAddr, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = args
            .targets
            .iter()
            .map(|t| s.spawn(move || resolve_blocking(t, args.ipv6)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("resolver panicked".into())))
            .collect()
    });
    let mut targets = Vec::new();
    for r in resolved {
        match r {
            Ok(ip) => targets.push(ip),
            Err(e) => usage_error(ErrorKind::ValueValidation, e),
        }
    }
    // Raw sockets when permitted; otherwise the unprivileged ways (ping sockets, UDP with
    // IP_RECVERR), and each trace that needs more says so. Every capability goes before any
    // thread starts (the runtime's, the ASN database's reload thread).
    let sockets = match Sockets::open() {
        Ok(s) => Some(s),
        Err(e) if e.is_not_permitted() => None,
        Err(e) => {
            eprintln!("edgetrace: cannot open the probing sockets: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = drop_privileges() {
        eprintln!("edgetrace: cannot drop privileges: {e}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("edgetrace: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // A bad database is bad input: exit 2 before anything is sent.
    let enricher = match args.enrich.build(runtime.handle().clone()) {
        Ok(e) => e,
        Err(e) => usage_error(ErrorKind::ValueValidation, e.to_string()),
    };
    warn_without_asn_db(&enricher);
    match trace_all(&args, &targets, &runtime, sockets, enricher) {
        Ok((results, failed)) => {
            let mut out = std::io::stdout().lock();
            let written = if args.json {
                serde_json::to_writer_pretty(&mut out, &results)
                    .map_err(std::io::Error::from)
                    .and_then(|()| writeln!(out))
            } else {
                print_tables(&mut out, &args, &targets, &results)
            };
            if written.is_err() {
                return ExitCode::FAILURE;
            }
            if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("edgetrace: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on the calling thread (the CLI resolves every target before sending anything).
fn resolve_blocking(target: &str, prefer_v6: bool) -> Result<IpAddr, String> {
    let family = if prefer_v6 {
        Family::PreferV6
    } else {
        Family::PreferV4
    };
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a resolver: {e}"))?
        .block_on(resolve(target, family))
}

/// Runs every target's trace at once, each enriched as it ends; returns the API objects and
/// whether any failed.
fn trace_all(
    args: &Args,
    targets: &[IpAddr],
    runtime: &tokio::runtime::Runtime,
    sockets: Option<Sockets>,
    enricher: Enricher,
) -> anyhow::Result<(Vec<Traceroute>, bool)> {
    let colo = Colo {
        name: args.colo_name.clone(),
        city: String::new(),
    };
    let colo = LocalColo::with_enricher(colo, sockets, enricher)
        .context("cannot start the probing thread")?;
    let options = Options {
        packet_type: args.protocol,
        port: args.port,
        max_ttl: args.max_ttl,
        packets_per_ttl: args.packets_per_ttl,
        wait_time: args.wait_time,
        paths: args.paths,
    };
    let runs = runtime.block_on(async {
        let mut traces = futures::stream::FuturesOrdered::new();
        for &ip in targets {
            traces.push_back(colo.trace_ip(ip, options));
        }
        let progress = std::io::stderr().is_terminal();
        let started = Instant::now();
        let mut ticker = tokio::time::interval(Duration::from_millis(100));
        let mut runs = Vec::new();
        loop {
            tokio::select! {
                next = traces.next() => match next {
                    Some(run) => runs.push(run),
                    None => break,
                },
                _ = ticker.tick() => {}
            }
            if progress {
                eprint!(
                    "\r\x1b[Ktracing {} target(s), {}/{} done, {:.1} s",
                    targets.len(),
                    runs.len(),
                    targets.len(),
                    started.elapsed().as_secs_f64()
                );
            }
        }
        if progress {
            eprint!("\r\x1b[K");
        }
        runs
    });
    let mut failed = false;
    let mut results = Vec::new();
    for (target, run) in args.targets.iter().zip(runs) {
        for p in &run.problems {
            eprintln!("edgetrace: {p}");
        }
        failed |= !run.trace.error.is_empty();
        results.push(Traceroute {
            target: target.clone(),
            colos: vec![run.trace],
        });
    }
    Ok((results, failed))
}

fn print_tables(
    out: &mut impl Write,
    args: &Args,
    targets: &[IpAddr],
    results: &[Traceroute],
) -> std::io::Result<()> {
    for (r, ip) in results.iter().zip(targets) {
        for c in &r.colos {
            let flows = match args.paths {
                Paths::Flows(n) if n.get() == 1 => String::new(),
                Paths::Flows(n) => format!(" per flow, {n} flows"),
                Paths::Auto(c) => format!(" on flow 0, MDA at {c}%"),
            };
            writeln!(
                out,
                "traceroute to {} ({ip}), {}, max {} hops, {} probes per hop{flows}, from {} in {} ms",
                r.target,
                args.protocol,
                args.max_ttl,
                args.packets_per_ttl,
                c.colo.name,
                c.traceroute_time_ms
            )?;
            if !c.error.is_empty() {
                writeln!(out, "  {}\n", c.error)?;
                continue;
            }
            writeln!(
                out,
                "{:>4}  {:<44} {:>6} {:>4} {:>4} {:>8} {:>8} {:>8} {:>8}  Notes",
                "TTL", "Host", "Loss%", "Snt", "Rcv", "Min", "Avg", "Max", "StDev"
            )?;
            for h in &c.hops {
                let loss = if h.packets_sent == 0 {
                    0.0
                } else {
                    100.0 * f64::from(h.packets_lost) / f64::from(h.packets_sent)
                };
                if h.nodes.is_empty() {
                    writeln!(
                        out,
                        "{:>4}  {:<44} {:>5.1}% {:>4}",
                        h.packets_ttl, "???", loss, h.packets_sent
                    )?;
                }
                for (i, n) in h.nodes.iter().enumerate() {
                    let host = if n.name == n.ip {
                        n.ip.clone()
                    } else {
                        format!("{} ({})", n.name, n.ip)
                    };
                    let host = if n.asn.is_empty() {
                        host
                    } else {
                        format!("{host} [{}]", n.asn)
                    };
                    let (ttl, loss, snt) = if i == 0 {
                        (
                            h.packets_ttl.to_string(),
                            format!("{loss:.1}%"),
                            h.packets_sent.to_string(),
                        )
                    } else {
                        (String::new(), String::new(), String::new())
                    };
                    writeln!(
                        out,
                        "{ttl:>4}  {host:<44} {loss:>6} {snt:>4} {:>4} {:>8.3} {:>8.3} {:>8.3} {:>8.3}  {}",
                        n.packet_count,
                        n.min_rtt_ms,
                        n.mean_rtt_ms,
                        n.max_rtt_ms,
                        n.std_dev_rtt_ms,
                        n.labels.join(" ")
                    )?;
                }
            }
            if !c.paths.is_empty() {
                let probes: u32 = c.hops.iter().map(|h| h.packets_sent).sum();
                writeln!(
                    out,
                    "{} distinct path(s) over {} flows, {probes} probes:",
                    c.paths.len(),
                    c.paths.iter().map(|p| p.flows).sum::<u32>()
                )?;
                for p in &c.paths {
                    let hops: Vec<String> = p
                        .hops
                        .iter()
                        .map(|ips| match ips.as_slice() {
                            [] => "*".to_string(),
                            [ip] => ip.clone(),
                            several => format!("{{{}}}", several.join(",")),
                        })
                        .collect();
                    writeln!(out, "  {:>3} flow(s): {}", p.flows, hops.join(" > "))?;
                }
            }
            writeln!(out)?;
        }
    }
    Ok(())
}
