//! Benchmarks edgetrace's `traceroute` against Debian traceroute, mtr,
//! scamper and (if installed) trippy on namespace topologies.
//!
//! Every run gets a freshly built 8-hop path (6 routers, target at TTL 7) so
//! neighbour caches and ICMP rate-limit buckets start from the same state.
//! Probes are counted by iptables/ip6tables rules in the source namespace
//! (one rule per TTL matching packets to the target), not taken from the
//! tools' own reports. Needs root.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use edgetrace_testnet::{LinearSpec, Path, TtlCounters, linear_tagged};

const ROUTERS: usize = 6;
const TARGET_TTL: u8 = ROUTERS as u8 + 1;
const COUNT_TTLS: u8 = 64;

#[derive(Parser, Debug)]
#[command(about = "Compare edgetrace traceroute with traceroute/mtr/scamper/trippy on netns paths")]
struct Args {
    /// edgetrace binary; omit to benchmark the peers only.
    #[arg(long)]
    edgetrace: Option<PathBuf>,
    /// Scenarios to run (comma separated, 1-6); default all. 6 is 5 plus rate limiting on the target too.
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<u8>,
    /// Tools to run (comma separated: edgetrace,traceroute,mtr,scamper,trip); default all available.
    #[arg(long, value_delimiter = ',')]
    tools: Vec<String>,
    /// Kill a tool run after this many seconds.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// Trace the target's IPv6 address instead of IPv4.
    #[arg(short = '6', long)]
    ipv6: bool,
    /// Print every tool's output.
    #[arg(short, long)]
    verbose: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Icmp,
    Udp,
}

struct Scenario {
    id: u8,
    title: &'static str,
    proto: Proto,
    spec: LinearSpec,
}

fn scenarios() -> Vec<Scenario> {
    let base = LinearSpec {
        routers: ROUTERS,
        ..Default::default()
    };
    vec![
        Scenario {
            id: 1,
            title: "every hop answers",
            proto: Proto::Icmp,
            spec: base.clone(),
        },
        Scenario {
            id: 2,
            title: "silent routers at TTL 3 and 4",
            proto: Proto::Icmp,
            spec: LinearSpec {
                silent_routers: vec![3, 4],
                ..base.clone()
            },
        },
        Scenario {
            id: 3,
            title: "target never answers",
            proto: Proto::Icmp,
            spec: LinearSpec {
                target_silent: true,
                ..base.clone()
            },
        },
        Scenario {
            id: 4,
            title: "+40 ms one-way on link 4 (r3-r4)",
            proto: Proto::Icmp,
            spec: LinearSpec {
                delay: Some((4, Duration::from_millis(40))),
                ..base.clone()
            },
        },
        Scenario {
            id: 5,
            title: "kernel ICMP rate limiting on routers",
            proto: Proto::Udp,
            spec: LinearSpec {
                kernel_icmp_ratelimit: true,
                ..base.clone()
            },
        },
        Scenario {
            id: 6,
            title: "kernel ICMP rate limiting on routers and target",
            proto: Proto::Udp,
            spec: LinearSpec {
                kernel_icmp_ratelimit: true,
                ..base
            },
        },
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Tool {
    Edgetrace,
    Traceroute,
    Mtr,
    Scamper,
    Trip,
}

impl Tool {
    const ALL: [Tool; 5] = [
        Tool::Edgetrace,
        Tool::Traceroute,
        Tool::Mtr,
        Tool::Scamper,
        Tool::Trip,
    ];

    fn name(self) -> &'static str {
        match self {
            Tool::Edgetrace => "edgetrace",
            Tool::Traceroute => "traceroute",
            Tool::Mtr => "mtr",
            Tool::Scamper => "scamper",
            Tool::Trip => "trip",
        }
    }

    /// Command line for one run ("3 probes per TTL, wait 1 s, max TTL 30").
    fn argv(self, edgetrace: &str, proto: Proto, v6: bool, target: &str) -> Vec<String> {
        let fam = if v6 { "-6" } else { "-4" };
        let v: Vec<&str> = match (self, proto) {
            (Tool::Edgetrace, p) => vec![
                edgetrace,
                "traceroute",
                "-P",
                if p == Proto::Icmp { "icmp" } else { "udp" },
                "-m",
                "30",
                "-q",
                "3",
                "-w",
                "1",
                fam,
                "--json",
                target,
            ],
            (Tool::Traceroute, p) => vec![
                "traceroute",
                fam,
                "-n",
                "-q",
                "3",
                "-w",
                "1",
                "-m",
                "30",
                if p == Proto::Icmp { "-I" } else { "-U" },
                target,
            ],
            (Tool::Mtr, p) => {
                let mut v = vec![
                    "mtr", fam, "--report", "-n", "-c", "3", "-G", "1", "-m", "30",
                ];
                if p == Proto::Udp {
                    v.push("-u");
                }
                v.push(target);
                v
            }
            (Tool::Scamper, p) => vec![
                "scamper",
                "-c",
                if p == Proto::Icmp {
                    "trace -P icmp-paris -q 3 -Q -w 1 -m 30"
                } else {
                    "trace -P udp-paris -q 3 -Q -w 1 -m 30"
                },
                "-i",
                target,
            ],
            (Tool::Trip, p) => vec![
                "trip",
                fam,
                "-m",
                "json",
                "-C",
                "3",
                "-t",
                "30",
                "-g",
                "1s",
                "-p",
                if p == Proto::Icmp { "icmp" } else { "udp" },
                target,
            ],
        };
        v.into_iter().map(str::to_string).collect()
    }

    /// Highest TTL at which the tool's output lists the target.
    fn target_ttl(self, stdout: &str, target: &str) -> Option<u8> {
        let hops = match self {
            Tool::Edgetrace => hops_edgetrace(stdout),
            Tool::Trip => hops_trip(stdout),
            Tool::Mtr => hops_mtr(stdout),
            Tool::Traceroute | Tool::Scamper => hops_text(stdout),
        };
        hops.iter()
            .filter(|(_, ips)| ips.iter().any(|ip| ip == target))
            .map(|(ttl, _)| *ttl)
            .max()
    }
}

type Hops = BTreeMap<u8, Vec<String>>;

fn is_ip(tok: &str) -> bool {
    tok.trim_matches(|c| c == '(' || c == ')')
        .parse::<IpAddr>()
        .is_ok()
}

/// Debian traceroute / scamper text: ` 7  198.18.7.2  0.1 ms ...`.
fn hops_text(out: &str) -> Hops {
    let mut hops = Hops::new();
    for line in out.lines() {
        let mut it = line.split_whitespace();
        let Some(ttl) = it.next().and_then(|t| t.parse::<u8>().ok()) else {
            continue;
        };
        let ips = it
            .filter(|t| is_ip(t))
            .map(|t| t.trim_matches(|c| c == '(' || c == ')').to_string());
        hops.entry(ttl).or_default().extend(ips);
    }
    hops
}

/// mtr --report: `  7.|-- 198.18.7.2  0.0% ...`; extra addresses of the same
/// hop come on lines without a number.
fn hops_mtr(out: &str) -> Hops {
    let mut hops = Hops::new();
    let mut ttl = None;
    for line in out.lines() {
        let toks: Vec<&str> = line.split_whitespace().collect();
        let Some(pos) = toks.iter().position(|t| t.ends_with("|--")) else {
            continue;
        };
        if let Some(n) = toks[0].split('.').next().and_then(|n| n.parse::<u8>().ok()) {
            ttl = Some(n);
        }
        if let (Some(t), Some(ip)) = (ttl, toks.get(pos + 1))
            && is_ip(ip)
        {
            hops.entry(t).or_default().push(ip.to_string());
        }
    }
    hops
}

/// edgetrace --json: `[{"colos": [{"hops": [{"packets_ttl": 1, "nodes": [{"ip": ..}]}]}]}]`.
fn hops_edgetrace(out: &str) -> Hops {
    let mut hops = Hops::new();
    let Ok(v) = serde_json::from_str::<serde_json::Value>(out) else {
        return hops;
    };
    for t in v.as_array().into_iter().flatten() {
        for colo in t["colos"].as_array().into_iter().flatten() {
            for hop in colo["hops"].as_array().into_iter().flatten() {
                let Some(ttl) = hop["packets_ttl"].as_u64() else {
                    continue;
                };
                let ips = hop["nodes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|n| n["ip"].as_str().map(str::to_string));
                hops.entry(ttl.min(255) as u8).or_default().extend(ips);
            }
        }
    }
    hops
}

/// trippy `-m json`: `{"hops": [{"ttl": 1, "hosts": [{"ip": ..}]}]}`.
fn hops_trip(out: &str) -> Hops {
    let mut hops = Hops::new();
    let Ok(v) = serde_json::from_str::<serde_json::Value>(out) else {
        return hops;
    };
    for hop in v["hops"].as_array().into_iter().flatten() {
        let Some(ttl) = hop["ttl"].as_u64() else {
            continue;
        };
        let ips = hop["hosts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| h["ip"].as_str().map(str::to_string));
        hops.entry(ttl.min(255) as u8).or_default().extend(ips);
    }
    hops
}

fn on_path(bin: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
}

struct Run {
    tool: Tool,
    wall: Duration,
    probes: u64,
    max_ttl: Option<u8>,
    target_ttl: Option<u8>,
    note: String,
}

fn build_path(s: &Scenario) -> std::io::Result<Path> {
    linear_tagged(&format!("bench{}", s.id), &s.spec)
}

fn run_one(args: &Args, s: &Scenario, tool: Tool, edgetrace: &str) -> std::io::Result<Run> {
    let path = build_path(s)?;
    if s.id == 6 {
        path.lab.restore_kernel_icmp_ratelimit(&path.target_ns)?;
    }
    let target: IpAddr = if args.ipv6 {
        path.target_v6.into()
    } else {
        path.target_v4.into()
    };
    let t = target.to_string();
    // Resolve ARP/ND along the path so no tool pays for it (echo replies are
    // never rate limited and routers send no ICMP for them).
    let _ = path.lab.exec(&path.src, &["ping", "-n", "-c1", "-W1", &t]);
    let counters = TtlCounters::install(&path.lab, &path.src, target, COUNT_TTLS)?;
    let argv = tool.argv(edgetrace, s.proto, args.ipv6, &t);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let res = path
        .lab
        .exec_timeout(&path.src, &argv, Duration::from_secs(args.timeout))?;
    let counts = counters.read(&path.lab)?;
    let stdout = String::from_utf8_lossy(&res.output.stdout);
    let stderr = String::from_utf8_lossy(&res.output.stderr);
    if args.verbose {
        println!("---- {} ----\n{stdout}{stderr}", argv.join(" "));
    }
    let mut note = String::new();
    if res.timed_out {
        note = format!("killed after {} s", args.timeout);
    } else if !res.output.status.success() {
        let last = stderr.lines().last().unwrap_or("").trim();
        note = format!("{}: {last}", res.output.status);
    }
    Ok(Run {
        tool,
        wall: res.elapsed,
        probes: counts.values().sum(),
        max_ttl: counts.keys().max().copied(),
        target_ttl: tool.target_ttl(&stdout, &t),
        note,
    })
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}", a / b)
    } else {
        "-".into()
    }
}

fn opt(v: Option<u8>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let edgetrace = match &args.edgetrace {
        Some(p) => Some(std::fs::canonicalize(p).map_err(|e| {
            std::io::Error::new(e.kind(), format!("--edgetrace {}: {e}", p.display()))
        })?),
        None => None,
    };
    let edgetrace_str = edgetrace
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let mut tools = Vec::new();
    for tool in Tool::ALL {
        if !args.tools.is_empty() && !args.tools.iter().any(|t| t == tool.name()) {
            continue;
        }
        let available = match tool {
            Tool::Edgetrace => edgetrace.is_some(),
            _ => on_path(tool.name()),
        };
        if available {
            tools.push(tool);
        } else if tool == Tool::Edgetrace {
            println!("edgetrace: skipped (no --edgetrace given)");
        } else {
            println!("{}: skipped (not on PATH)", tool.name());
        }
    }
    if tools.is_empty() {
        return Err(std::io::Error::other("no tools to run"));
    }
    let fam = if args.ipv6 { "IPv6" } else { "IPv4" };
    println!(
        "path: source + {ROUTERS} routers + target (target at TTL {TARGET_TTL}), {fam}; probes counted \
         with per-TTL {} rules in the source namespace; fresh topology per run",
        if args.ipv6 {
            "ip6tables hl"
        } else {
            "iptables ttl"
        }
    );
    println!("commands (run with `ip netns exec <src-ns>`):");
    for tool in &tools {
        for proto in [Proto::Icmp, Proto::Udp] {
            println!(
                "  {}",
                tool.argv(&edgetrace_str, proto, args.ipv6, "TARGET")
                    .join(" ")
            );
        }
    }

    let mut mismatches = 0;
    for s in scenarios() {
        if !args.scenarios.is_empty() && !args.scenarios.contains(&s.id) {
            continue;
        }
        let expect = if s.spec.target_silent {
            None
        } else {
            Some(TARGET_TTL)
        };
        println!(
            "\n== scenario {}: {} ({:?}); target expected at TTL {} ==",
            s.id,
            s.title,
            s.proto,
            opt(expect)
        );
        println!(
            "{:<11} {:>9} {:>7} {:>8} {:>10} {:>8} {:>9}  note",
            "tool", "wall", "probes", "max TTL", "target TTL", "wall/ET", "probes/ET"
        );
        let mut runs = Vec::new();
        for &tool in &tools {
            match run_one(&args, &s, tool, &edgetrace_str) {
                Ok(r) => runs.push(r),
                Err(e) => println!("{:<11} error: {e}", tool.name()),
            }
        }
        let et = runs.iter().find(|r| r.tool == Tool::Edgetrace);
        let (et_wall, et_probes) =
            et.map_or((0.0, 0.0), |r| (r.wall.as_secs_f64(), r.probes as f64));
        for r in &runs {
            let mut note = r.note.clone();
            if r.target_ttl != expect {
                mismatches += 1;
                note = format!("target TTL != {} {note}", opt(expect));
            }
            println!(
                "{:<11} {:>8.3}s {:>7} {:>8} {:>10} {:>8} {:>9}  {}",
                r.tool.name(),
                r.wall.as_secs_f64(),
                r.probes,
                opt(r.max_ttl),
                opt(r.target_ttl),
                ratio(r.wall.as_secs_f64(), et_wall),
                ratio(r.probes as f64, et_probes),
                note.trim()
            );
        }
    }
    println!(
        "\n(wall/ET and probes/ET: the tool's value divided by edgetrace's; {mismatches} run(s) placed the target at an unexpected TTL)"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers_find_target_ttl() {
        let text = "traceroute to 198.18.7.2 (198.18.7.2), 30 hops max\n 1  198.18.1.2  0.1 ms  0.1 ms\n 2  * * *\n 7  198.18.7.2  0.1 ms 198.18.7.20  0.2 ms\n";
        assert_eq!(Tool::Traceroute.target_ttl(text, "198.18.7.2"), Some(7));
        assert_eq!(Tool::Scamper.target_ttl(text, "198.18.7.20"), Some(7));
        let mtr = "HOST: vm   Loss%   Snt\n  1.|-- 198.18.1.2   0.0%  3\n  2.|-- ???   100.0  3\n  8.|-- 198.18.6.2   0.0%  3\n    |  `|-- 198.18.7.2\n";
        assert_eq!(Tool::Mtr.target_ttl(mtr, "198.18.7.2"), Some(8));
        assert_eq!(Tool::Mtr.target_ttl(mtr, "198.18.1.2"), Some(1));
        let et = r#"[{"target": "198.18.7.2", "colos": [{"colo": {"name": "local", "city": ""}, "error": "", "hops": [
            {"packets_ttl": 1, "packets_sent": 3, "nodes": [{"ip": "198.18.1.2"}]},
            {"packets_ttl": 7, "packets_sent": 3, "nodes": [{"ip": "198.18.7.2"}]},
            {"packets_ttl": 8, "packets_sent": 3, "nodes": [{"ip": "198.18.7.2"}]}]}]}]"#;
        assert_eq!(Tool::Edgetrace.target_ttl(et, "198.18.7.2"), Some(8));
        let trip = r#"{"info": {}, "hops": [{"ttl": 7, "hosts": [{"ip": "198.18.7.2", "hostname": "x"}]}]}"#;
        assert_eq!(Tool::Trip.target_ttl(trip, "198.18.7.2"), Some(7));
        assert_eq!(Tool::Trip.target_ttl("garbage", "198.18.7.2"), None);
    }
}
