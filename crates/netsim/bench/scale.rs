//! Probing at scale: 1,000 targets behind the 16-hop `linear16` scenario (0.5 ms per link), 3
//! probes per TTL, ICMP Paris traceroute, from one process: edgetrace's `Prober` with every trace
//! running at once, then scamper on a fresh copy of the same simulated network.
//!
//! ```text
//! cargo bench -p edgetrace-netsim --bench scale                    # both, 1,000 targets
//! cargo bench -p edgetrace-netsim --bench scale -- --targets 200 --pps 5000 --no-scamper
//! ```
//!
//! Reports probes per second, wall time, CPU time, peak memory and the replies attributed to the
//! wrong probe, which the simulator's ground truth counts (must be 0). Needs root; installs
//! scamper with apt-get when it is missing.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{options, scenario};
use edgetrace_net::{Prober, Sockets, TraceRequest, drop_privileges};
use edgetrace_netsim::{Simulator, Truth};
use edgetrace_wire::Protocol;
use std::collections::HashMap;
use std::net::IpAddr;
use std::process::Command;
use std::time::{Duration, Instant};

struct Args {
    targets: usize,
    pps: u32,
    window: u32,
    scamper: bool,
}

fn args() -> Args {
    let mut a = Args {
        targets: 1000,
        pps: 10_000,
        window: 1000,
        scamper: true,
    };
    let argv: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < argv.len() {
        let next = || argv.get(i + 1).and_then(|v| v.parse().ok());
        match argv[i].as_str() {
            "--targets" => a.targets = next().unwrap_or(a.targets as u32) as usize,
            "--pps" => a.pps = next().unwrap_or(a.pps),
            "--window" => a.window = next().unwrap_or(a.window),
            "--no-scamper" => a.scamper = false,
            _ => {}
        }
        i += 1;
    }
    a
}

/// One measured run.
#[derive(Debug, Default)]
struct Figures {
    traces: usize,
    complete: usize,
    probes: u64,
    wall: Duration,
    cpu: Duration,
    /// Peak resident memory (KiB): growth during the run for edgetrace, the whole process for
    /// scamper (its maximum RSS).
    memory_kib: u64,
    misattributed: u32,
}

impl Figures {
    fn print(&self, name: &str) {
        let secs = self.wall.as_secs_f64();
        println!(
            "{name:>9}: {} traces ({} reached the target), {} probes in {:.2} s wall = {:.0} probes/s, \
             CPU {:.2} s, memory {} KiB ({:.1} KiB per trace), misattributed replies {}",
            self.traces,
            self.complete,
            self.probes,
            secs,
            self.probes as f64 / secs,
            self.cpu.as_secs_f64(),
            self.memory_kib,
            self.memory_kib as f64 / self.traces as f64,
            self.misattributed
        );
    }
}

fn targets(sim: &Simulator, n: usize) -> Vec<IpAddr> {
    sim.scenario().host_addresses("targets", false, n)
}

/// CPU time of every thread of this process so far (schedstat, ns).
fn process_cpu() -> Duration {
    let mut total = 0u64;
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for t in dir.flatten() {
            let s = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
            total += s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
        }
    }
    Duration::from_nanos(total)
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The engine's side, run as a child process inside the simulator's namespace so its CPU time
/// and memory are its own: prints `FIG wall_ns cpu_ns memory_kib probes complete` and one
/// `HOP target ttl ip count` line per node.
fn engine_child(n: usize) {
    let targets = scenario("linear16").host_addresses("targets", false, n);
    let opts = options(Protocol::Icmp, 30, 3);
    let sockets = Sockets::open().expect("raw sockets");
    drop_privileges().expect("dropping privileges");
    let prober = Prober::start(Some(sockets)).expect("prober");
    let baseline = status_kib("VmRSS:");
    let cpu0 = process_cpu();
    let start = Instant::now();
    let receivers: Vec<_> = targets
        .iter()
        .map(|t| {
            prober
                .trace(TraceRequest {
                    protocol: Protocol::Icmp,
                    target: *t,
                    options: opts,
                })
                .expect("trace starts")
        })
        .collect();
    let outcomes: Vec<_> = receivers
        .into_iter()
        .map(|rx| rx.blocking_recv().expect("answer").expect("trace"))
        .collect();
    let wall = start.elapsed();
    let cpu = process_cpu() - cpu0;
    let memory = status_kib("VmHWM:").saturating_sub(baseline);
    let probes: usize = outcomes.iter().map(|o| o.probes_sent).sum();
    let complete = outcomes
        .iter()
        .filter(|o| {
            o.hops
                .last()
                .is_some_and(|h| h.nodes.iter().any(|n| n.ip == o.target))
        })
        .count();
    println!(
        "FIG {} {} {memory} {probes} {complete}",
        wall.as_nanos(),
        cpu.as_nanos()
    );
    for o in &outcomes {
        for h in &o.hops {
            for node in &h.nodes {
                println!("HOP {} {} {} {}", o.target, h.ttl, node.ip, node.rtts.len());
            }
        }
    }
}

fn edgetrace(n: usize) -> Option<Figures> {
    let sim = Simulator::start("bench", &scenario("linear16")).expect("simulator (root)");
    let exe = std::env::current_exe().ok()?;
    let exe = exe.to_string_lossy();
    let count = n.to_string();
    let out = sim
        .lab()
        .exec(
            sim.namespace(),
            &[&exe, "--engine-child", "--targets", &count],
        )
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "engine child failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    sim.settle(Duration::from_secs(1));
    let truth = sim.truth();
    eprintln!("edgetrace simulator: {:?}", sim.stats());
    let mut f = Figures::default();
    let mut reported: HashMap<IpAddr, Vec<(u8, IpAddr, u32)>> = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["FIG", wall, cpu, memory, probes, complete] => {
                f.wall = Duration::from_nanos(wall.parse().ok()?);
                f.cpu = Duration::from_nanos(cpu.parse().ok()?);
                f.memory_kib = memory.parse().ok()?;
                f.probes = probes.parse().ok()?;
                f.complete = complete.parse().ok()?;
                f.traces = n;
            }
            ["HOP", target, ttl, ip, count] => reported
                .entry(target.parse().ok()?)
                .or_default()
                .push((ttl.parse().ok()?, ip.parse().ok()?, count.parse().ok()?)),
            _ => {}
        }
    }
    f.misattributed = reported
        .into_iter()
        .map(|(target, hops)| truth.misattributed(1, target, hops))
        .sum();
    Some(f)
}

fn ensure_scamper() -> bool {
    if Command::new("scamper").arg("-v").output().is_ok() {
        return true;
    }
    eprintln!("scamper missing: apt-get install scamper");
    let _ = Command::new("apt-get").args(["update", "-q"]).status();
    Command::new("apt-get")
        .args(["install", "-y", "-q", "scamper"])
        .status()
        .is_ok_and(|s| s.success())
}

fn scamper(n: usize, pps: u32, window: u32) -> Option<Figures> {
    if !ensure_scamper() {
        eprintln!("no scamper: skipped");
        return None;
    }
    let sim = Simulator::start("bench", &scenario("linear16")).expect("simulator (root)");
    let targets = targets(&sim, n);
    let dir = std::env::temp_dir().join(format!("netsim-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let list = dir.join("targets.txt");
    let out = dir.join("out.json");
    let text: String = targets.iter().map(|t| format!("{t}\n")).collect();
    std::fs::write(&list, text).ok()?;
    let (pps, window) = (pps.to_string(), window.to_string());
    let (list_s, out_s) = (list.to_string_lossy(), out.to_string_lossy());
    let argv = [
        "/usr/bin/time",
        "-f",
        "TIME %e %U %S %M",
        "scamper",
        "-O",
        "json",
        "-o",
        &out_s,
        "-p",
        &pps,
        "-w",
        &window,
        "-c",
        "trace -P icmp-paris -q 3 -Q -w 1",
        "-f",
        &list_s,
    ];
    let result = sim.lab().exec(sim.namespace(), &argv).ok()?;
    let stderr = String::from_utf8_lossy(&result.stderr);
    let times: Vec<f64> = stderr
        .lines()
        .find_map(|l| l.strip_prefix("TIME "))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    if times.len() < 4 {
        eprintln!("scamper failed: {stderr}");
        return None;
    }
    sim.settle(Duration::from_secs(1));
    let truth = sim.truth();
    eprintln!("scamper simulator: {:?}", sim.stats());
    let json = std::fs::read_to_string(&out).ok()?;
    let _ = std::fs::remove_dir_all(&dir);
    let mut f = Figures {
        wall: Duration::from_secs_f64(times[0]),
        cpu: Duration::from_secs_f64(times[1] + times[2]),
        memory_kib: times[3] as u64,
        ..Figures::default()
    };
    for line in json.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["type"] != "trace" {
            continue;
        }
        f.traces += 1;
        f.probes += v["probe_count"].as_u64().unwrap_or(0);
        f.misattributed += scamper_misattributed(&truth, &v);
        if v["stop_reason"] == "COMPLETED" {
            f.complete += 1;
        }
    }
    Some(f)
}

/// Every hop record of a scamper trace is one reply to the probe sent with `probe_ttl`.
fn scamper_misattributed(truth: &Truth, trace: &serde_json::Value) -> u32 {
    let Some(dst) = trace["dst"].as_str().and_then(|d| d.parse::<IpAddr>().ok()) else {
        return 0;
    };
    let reported = trace["hops"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| {
            let ip = h["addr"].as_str()?.parse::<IpAddr>().ok()?;
            let ttl = u8::try_from(h["probe_ttl"].as_u64()?).ok()?;
            Some((ttl, ip))
        });
    let mut counts: HashMap<(u8, IpAddr), u32> = HashMap::new();
    for k in reported {
        *counts.entry(k).or_default() += 1;
    }
    truth.misattributed(1, dst, counts.into_iter().map(|((t, ip), n)| (t, ip, n)))
}

fn main() {
    let a = args();
    if std::env::args().any(|a| a == "--engine-child") {
        engine_child(a.targets);
        return;
    }
    println!(
        "scale: {} targets behind 16 simulated hops (0.5 ms per link), ICMP Paris, 3 probes per TTL",
        a.targets
    );
    match edgetrace(a.targets) {
        Some(f) => f.print("edgetrace"),
        None => println!("edgetrace: failed"),
    }
    if a.scamper {
        match scamper(a.targets, a.pps, a.window) {
            Some(f) => f.print(&format!("scamper -p {} -w {}", a.pps, a.window)),
            None => println!("scamper: not run"),
        }
    }
}
