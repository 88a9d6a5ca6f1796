//! API overhead and memory of `edgetrace serve`, on a namespace path (run by `bench/api.sh`).
//!
//! - Overhead: wall time of a 10-target request through the API (5 IPv4 + 5 IPv6 targets at
//!   TTL 1-5) minus the slowest single trace in it (its `traceroute_time_ms`), median over the
//!   runs; the peer is the engine's own time for the same traces in the same request.
//! - Memory: the server's VmRSS idle, and its peak while 50 clients keep requests in flight.
//!
//! The server runs in the source namespace of the path; this program talks to it from a thread
//! that joins that namespace, so every packet stays inside namespaces the bench created.

use clap::Parser;
use edgetrace_testnet::{LinearSpec, linear_tagged};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// The edgetrace binary to benchmark.
    #[arg(long)]
    edgetrace: String,
    /// Requests measured for the overhead.
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Concurrent clients for the memory figure.
    #[arg(long, default_value_t = 50)]
    clients: usize,
    /// Seconds of concurrent load.
    #[arg(long, default_value_t = 5)]
    load_secs: u64,
}

fn post(addr: &str, path: &str, token: &str, body: &str) -> std::io::Result<(u16, Value)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = Vec::new();
    s.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no HTTP header"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, serde_json::from_str(body).unwrap_or(Value::Null)))
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

fn cli(bin: &str, data: &str, args: &[&str]) -> String {
    let out = Command::new(bin)
        .args(args)
        .args(["--data-dir", data])
        .output()
        .expect("edgetrace runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let path = linear_tagged(
        "apibench",
        &LinearSpec {
            routers: 4,
            ..Default::default()
        },
    )?;
    let mut lab = path.lab;
    let data = std::env::temp_dir().join(format!("edgetrace-api-bench-{}", std::process::id()));
    let data_s = data.to_string_lossy().to_string();
    let account = cli(
        &args.edgetrace,
        &data_s,
        &["account", "create", "--name", "bench"],
    );
    let token = cli(
        &args.edgetrace,
        &data_s,
        &[
            "token",
            "create",
            "--account",
            &account,
            "--permission",
            "Magic Transit Write",
        ],
    );
    let pid = lab.spawn(
        &path.src,
        &[
            &args.edgetrace,
            "serve",
            "--listen",
            "127.0.0.1:8080",
            "--data-dir",
            &data_s,
            "--rate-limit",
            "0",
        ],
    )?;
    // `ip netns exec` execs the server, so the pid is the server's.
    let addr = "127.0.0.1:8080";
    let route = format!("/client/v4/accounts/{account}/diagnostics/traceroute");
    let mut targets: Vec<String> = path.hops_v4.iter().map(|h| h.to_string()).collect();
    targets.extend(path.hops_v6.iter().map(|h| h.to_string()));
    let body = serde_json::json!({"targets": targets, "options": {"max_ttl": 8}}).to_string();
    let single =
        serde_json::json!({"targets": [path.target_v4.to_string()], "options": {"max_ttl": 8}})
            .to_string();
    let (src, runs, clients, load) = (path.src.clone(), args.runs, args.clients, args.load_secs);
    let report = lab.in_ns(&src, move || -> std::io::Result<String> {
        let start = Instant::now();
        while TcpStream::connect(addr).is_err() {
            if start.elapsed() > Duration::from_secs(20) {
                return Err(std::io::Error::other("the server did not start"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(300));
        let idle = rss_kib(pid);
        // Warm-up, then the measured runs.
        post(addr, &route, &token, &body)?;
        let mut overheads = Vec::new();
        let mut walls = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            let (status, v) = post(addr, &route, &token, &body)?;
            let wall = t.elapsed().as_secs_f64() * 1e3;
            assert_eq!(status, 200, "{v}");
            let slowest = v["result"]
                .as_array()
                .map(|r| {
                    r.iter()
                        .filter_map(|t| t["colos"][0]["traceroute_time_ms"].as_f64())
                        .fold(0.0, f64::max)
                })
                .unwrap_or(0.0);
            assert!(
                v["result"].as_array().is_some_and(|r| r.len() == 10
                    && r.iter().all(|t| t["colos"][0]["error"] == "")),
                "{v}"
            );
            overheads.push(wall - slowest);
            walls.push(wall);
        }
        overheads.sort_by(f64::total_cmp);
        walls.sort_by(f64::total_cmp);
        let median = |v: &[f64]| v[v.len() / 2];
        // Memory under load: clients keep single-target requests in flight.
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                let (stop, done, route, token, single) =
                    (stop.clone(), done.clone(), route.clone(), token.clone(), single.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        if let Ok((200, _)) = post(addr, &route, &token, &single) {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        let mut peak = 0;
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(load) {
            peak = peak.max(rss_kib(pid));
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            let _ = h.join();
        }
        let after = rss_kib(pid);
        Ok(format!(
            "API overhead, 10 targets (5 v4 + 5 v6, TTL 1-5), {runs} runs:\n  \
             request wall time median {:.2} ms (min {:.2}, max {:.2})\n  \
             overhead = wall - slowest trace: median {:.2} ms (min {:.2}, max {:.2})  goal < 20 ms\n\
             Server memory (VmRSS): idle {} KiB; peak under {clients} concurrent clients {} KiB \
             ({} requests in {load} s); after {} KiB",
            median(&walls),
            walls[0],
            walls[walls.len() - 1],
            median(&overheads),
            overheads[0],
            overheads[overheads.len() - 1],
            idle,
            peak,
            done.load(Ordering::Relaxed),
            after,
        ))
    })??;
    println!("{report}");
    lab.shutdown()?;
    let _ = std::fs::remove_dir_all(&data);
    Ok(())
}
