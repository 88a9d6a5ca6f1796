//! Running edgetrace's engine (the real `Prober`, raw sockets and all) inside a simulator's
//! namespace. Shared by the integration tests and the scale benchmark.
#![allow(dead_code)]

use edgetrace_net::{Prober, Sockets, TraceRequest, drop_privileges};
use edgetrace_netsim::{Scenario, Simulator, Truth};
use edgetrace_probe::report::{Colo, ColoTrace};
use edgetrace_probe::{MaxTtl, Options, PacketType, PacketsPerTtl, Paths, TraceOutcome, WaitTime};
use edgetrace_wire::Protocol;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

pub fn scenario(name: &str) -> Scenario {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{name}.toml"));
    Scenario::from_file(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// One simulation at a time per test binary: the tests measure round-trip times, and the
/// simulator's packet thread must not compete with another test's for the CPU.
static SERIAL: Mutex<()> = Mutex::new(());

/// A running scenario, and the lock that keeps it alone; drop both at the end of the test.
pub struct Running {
    pub sim: Simulator,
    _serial: MutexGuard<'static, ()>,
}

impl std::ops::Deref for Running {
    type Target = Simulator;
    fn deref(&self) -> &Simulator {
        &self.sim
    }
}

pub fn start(name: &str) -> Running {
    let serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    Running {
        sim: Simulator::start(name, &scenario(name)).expect("simulator starts (needs root)"),
        _serial: serial,
    }
}

pub fn options(protocol: Protocol, max_ttl: u64, ppt: u64) -> Options {
    Options {
        packet_type: match protocol {
            Protocol::Icmp => PacketType::Icmp,
            Protocol::Udp => PacketType::Udp,
            Protocol::Tcp => PacketType::Tcp,
            Protocol::Gre => PacketType::Gre,
        },
        port: 0,
        max_ttl: MaxTtl::new(max_ttl).unwrap(),
        packets_per_ttl: PacketsPerTtl::new(ppt).unwrap(),
        wait_time: WaitTime::new(1).unwrap(),
        paths: Paths::default(),
    }
}

/// Runs every request concurrently through one `Prober` in the simulator's namespace, as the
/// CLI does: raw sockets opened, then every capability of the thread dropped.
pub fn trace_all(sim: &Simulator, requests: &[TraceRequest]) -> Vec<TraceOutcome> {
    trace_batches(sim, requests, requests.len())
}

/// The same, `batch` requests at a time, each batch started when the one before is done. One
/// `Prober` runs them all, so its flow identifiers keep counting up from one batch to the next
/// (every `Prober` starts from the same one).
pub fn trace_batches(
    sim: &Simulator,
    requests: &[TraceRequest],
    batch: usize,
) -> Vec<TraceOutcome> {
    let requests = requests.to_vec();
    sim.run(move || {
        let sockets = Sockets::open().expect("raw sockets (needs root)");
        drop_privileges().expect("dropping privileges");
        let prober = Prober::start(Some(sockets)).expect("prober starts");
        let mut outcomes = Vec::with_capacity(requests.len());
        for chunk in requests.chunks(batch.max(1)) {
            let receivers: Vec<_> = chunk
                .iter()
                .map(|r| prober.trace(*r).expect("trace starts"))
                .collect();
            outcomes.extend(receivers.into_iter().map(|rx| {
                rx.blocking_recv()
                    .expect("the prober answers")
                    .expect("the trace runs")
            }));
        }
        outcomes
    })
    .expect("runs in the namespace")
}

pub fn trace(sim: &Simulator, protocol: Protocol, target: &str, options: Options) -> TraceOutcome {
    let request = TraceRequest {
        protocol,
        target: target.parse().unwrap(),
        options,
    };
    trace_all(sim, &[request]).pop().unwrap()
}

/// The API object, as `edgetrace traceroute --json` prints it.
pub fn colo(o: &TraceOutcome) -> ColoTrace {
    ColoTrace::from_hops(Colo::default(), o.target, &o.hops, o.duration)
}

/// Node IPs per TTL.
pub fn hop_ips(o: &TraceOutcome) -> Vec<Vec<String>> {
    o.hops
        .iter()
        .map(|h| h.nodes.iter().map(|n| n.ip.to_string()).collect())
        .collect()
}

/// Replies the engine reports that the simulator never sent for a probe of that TTL.
pub fn misattributed(truth: &Truth, protocol: Protocol, o: &TraceOutcome) -> u32 {
    let reported = o.hops.iter().flat_map(|h| {
        h.nodes
            .iter()
            .map(move |n| (h.ttl, n.ip, n.rtts.len() as u32))
    });
    truth.misattributed(protocol.ip_number(o.target.is_ipv6()), o.target, reported)
}

/// What the host (kernel, scheduler, the engine's own work) added to the RTTs the engine
/// measured, in ms, sorted: the engine's RTTs minus the simulated round trips of the same
/// replies ([`Truth::rtts`]), rank by rank. The engine stamps a probe before sending it and a
/// reply after reading it, and the simulator receives the one after and sends the other no
/// sooner than due, so every probe's RTT is at least its simulated one, and so is every rank of
/// the sorted RTTs: a negative delay is an RTT the engine got wrong, or a reply the simulator
/// sent early. On a loaded machine a few delays are large (a thread waiting for a CPU); most
/// stay a fraction of a millisecond.
pub fn host_delays_ms(engine: &[Duration], simulated: &[Duration]) -> Vec<f64> {
    assert_eq!(
        engine.len(),
        simulated.len(),
        "RTTs measured vs replies sent"
    );
    let mut engine = engine.to_vec();
    let mut simulated = simulated.to_vec();
    engine.sort_unstable();
    simulated.sort_unstable();
    let mut delays: Vec<f64> = engine
        .iter()
        .zip(&simulated)
        .map(|(e, s)| (e.as_secs_f64() - s.as_secs_f64()) * 1e3)
        .collect();
    delays.sort_unstable_by(f64::total_cmp);
    delays
}

/// The median of sorted values.
pub fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

pub fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}
