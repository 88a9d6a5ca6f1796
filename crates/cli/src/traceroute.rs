//! `edgetrace traceroute`.

use anyhow::Context;
use clap::{CommandFactory, error::ErrorKind};
use edgetrace_net::{NetError, Prober, Sockets, TraceRequest, drop_privileges};
use edgetrace_probe::report::{Colo, ColoError, ColoTrace, HopResult, Traceroute, merge_labelled};
use edgetrace_probe::{MaxTtl, Options, PacketType, PacketsPerTtl, WaitTime};
use std::io::{IsTerminal, Write};
use std::net::{IpAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::mpsc;
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

/// Exits with clap's usage error (exit code 2) naming the offending argument.
fn usage_error(kind: ErrorKind, message: String) -> ! {
    let mut cmd = crate::Cli::command();
    let sub = cmd
        .find_subcommand_mut("traceroute")
        .expect("traceroute is a subcommand");
    sub.error(kind, message).exit()
}

/// Resolves a target; `prefer_v6` picks the family when a name has both.
fn resolve(target: &str, prefer_v6: bool) -> Result<IpAddr, String> {
    if let Ok(ip) = target
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Ok(ip);
    }
    if target.is_empty()
        || target.len() > 253
        || target.contains(|c: char| c.is_whitespace() || c == '/')
    {
        return Err(format!("target {target:?}: not an IP address or hostname"));
    }
    let addrs: Vec<IpAddr> = (target, 0)
        .to_socket_addrs()
        .map_err(|e| format!("target {target:?}: cannot resolve: {e}"))?
        .map(|a| a.ip())
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv6() == prefer_v6)
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| format!("target {target:?}: no addresses"))
}

pub fn run(args: Args) -> ExitCode {
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
            .map(|t| s.spawn(move || resolve(t, args.ipv6)))
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
    match trace_all(&args, &targets) {
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

fn colo_error(e: &NetError) -> ColoError {
    match e {
        NetError::NotPermitted { .. } => ColoError::NotPermitted,
        NetError::NoRoute { .. } => ColoError::Send,
        NetError::FlowBusy { .. } => ColoError::Target,
        NetError::Stopped | NetError::Io { .. } => ColoError::Unavailable,
    }
}

/// Runs every (target, protocol) trace at once; returns the API objects and whether any failed.
fn trace_all(args: &Args, targets: &[IpAddr]) -> anyhow::Result<(Vec<Traceroute>, bool)> {
    // Raw sockets when permitted; otherwise the unprivileged ways (ping sockets, UDP with
    // IP_RECVERR), and each trace that needs more says so.
    let sockets = match Sockets::open() {
        Ok(s) => Some(s),
        Err(e) if e.is_not_permitted() => None,
        Err(e) => return Err(e).context("cannot open the probing sockets"),
    };
    drop_privileges().context("cannot drop privileges")?;
    let prober = Prober::start(sockets)?;
    let options = Options {
        packet_type: args.protocol,
        port: args.port,
        max_ttl: args.max_ttl,
        packets_per_ttl: args.packets_per_ttl,
        wait_time: args.wait_time,
    };
    let protocols = args.protocol.protocols();
    let (tx, rx) = mpsc::channel();
    let mut pending = 0;
    let mut outcomes: Vec<Vec<Option<Result<edgetrace_probe::TraceOutcome, NetError>>>> = targets
        .iter()
        .map(|_| protocols.iter().map(|_| None).collect())
        .collect();
    for (t, &target) in targets.iter().enumerate() {
        for (p, &protocol) in protocols.iter().enumerate() {
            match prober.trace(TraceRequest {
                protocol,
                target,
                options,
            }) {
                Ok(receiver) => {
                    let tx = tx.clone();
                    pending += 1;
                    std::thread::spawn(move || {
                        let r = receiver.blocking_recv().unwrap_or(Err(NetError::Stopped));
                        let _ = tx.send((t, p, r));
                    });
                }
                Err(e) => outcomes[t][p] = Some(Err(e)),
            }
        }
    }
    drop(tx);
    let progress = std::io::stderr().is_terminal();
    let total = pending;
    let started = Instant::now();
    while pending > 0 {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok((t, p, r)) => {
                outcomes[t][p] = Some(r);
                pending -= 1;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if progress {
            eprint!(
                "\r\x1b[Ktracing {} target(s), {}/{} traces done, {:.1} s",
                targets.len(),
                total - pending,
                total,
                started.elapsed().as_secs_f64()
            );
        }
    }
    if progress {
        eprint!("\r\x1b[K");
    }
    let colo = Colo {
        name: args.colo_name.clone(),
        city: String::new(),
    };
    let mut failed = false;
    let mut results = Vec::new();
    for (t, &target) in targets.iter().enumerate() {
        let mut hops: Vec<(&str, Vec<HopResult>)> = Vec::new();
        let mut duration = Duration::ZERO;
        let mut error = None;
        for (p, protocol) in protocols.iter().enumerate() {
            match outcomes[t][p].take().unwrap_or(Err(NetError::Stopped)) {
                Ok(o) if o.send_error.is_some() && o.hops.iter().all(|h| h.nodes.is_empty()) => {
                    eprintln!(
                        "edgetrace: {target}: cannot send {} probes: {}",
                        protocol.as_str(),
                        o.send_error.unwrap_or_default()
                    );
                    error = Some(ColoError::Send);
                }
                Ok(o) => {
                    duration = duration.max(o.duration);
                    hops.push((protocol.as_str(), o.hops));
                }
                Err(e) => {
                    eprintln!("edgetrace: {target}: {e}");
                    error = Some(colo_error(&e));
                }
            }
        }
        let trace = match error {
            Some(e) => {
                failed = true;
                ColoTrace::failed(colo.clone(), &target.to_string(), e)
            }
            None if protocols.len() > 1 => {
                let parts: Vec<(&str, &[HopResult])> =
                    hops.iter().map(|(n, h)| (*n, h.as_slice())).collect();
                ColoTrace::from_hops(colo.clone(), target, &merge_labelled(&parts), duration)
            }
            None => ColoTrace::from_hops(
                colo.clone(),
                target,
                &hops.pop().map(|h| h.1).unwrap_or_default(),
                duration,
            ),
        };
        results.push(Traceroute {
            target: args.targets[t].clone(),
            colos: vec![trace],
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
            writeln!(
                out,
                "traceroute to {} ({ip}), {}, max {} hops, {} probes per hop, from {} in {} ms",
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
            writeln!(out)?;
        }
    }
    Ok(())
}
