//! The simulator process: a namespace, a TUN device in it, and a thread moving packets between
//! the TUN and the [`Network`].

use crate::{Network, Scenario, SimTime, Stats, Truth};
use edgetrace_testnet::{Lab, run_in_netns};
use nix::poll::{PollFd, PollFlags, ppoll};
use nix::sys::time::TimeSpec;
use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};
use tun_rs::{DeviceBuilder, SyncDevice};

/// The TUN device's name inside the namespace.
pub const TUN_NAME: &str = "netsim0";
/// Longest the packet thread sleeps before looking at its stop flag.
const IDLE: Duration = Duration::from_millis(20);

/// A running simulation. Dropping it stops the packet thread and deletes the namespace.
pub struct Simulator {
    // Field order is drop order: the thread stops before the lab deletes the namespace.
    thread: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    network: Arc<Mutex<Network>>,
    namespace: String,
    scenario: Scenario,
    lab: Lab,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl Simulator {
    /// Starts `scenario` in a new namespace `et-{pid}-{n}-{tag}-sim` with its own seed.
    pub fn start(tag: &str, scenario: &Scenario) -> io::Result<Simulator> {
        Simulator::start_seeded(tag, scenario, scenario.seed)
    }

    /// Same, with another seed.
    pub fn start_seeded(tag: &str, scenario: &Scenario, seed: u64) -> io::Result<Simulator> {
        let mut lab = Lab::new(tag)?;
        let namespace = lab.add_ns("sim")?;
        let device = run_in_netns(&namespace, || {
            DeviceBuilder::new()
                .name(TUN_NAME)
                .mtu(1500)
                // Room for every probe of a thousand traces sent at once.
                .tx_queue_len(50_000)
                .build_sync()
        })?
        .map_err(|e| io::Error::new(e.kind(), format!("creating TUN {TUN_NAME}: {e}")))?;
        device.set_nonblocking(true)?;
        lab.ip(&namespace, &["link", "set", TUN_NAME, "up"])?;
        let source = &scenario.source;
        if let Some(a) = source.v4 {
            lab.addr(&namespace, TUN_NAME, &format!("{a}/32"))?;
        }
        if let Some(a) = source.v6 {
            lab.addr(&namespace, TUN_NAME, &format!("{a}/128"))?;
        }
        for p in &source.routes {
            let src = if p.addr.is_ipv4() {
                source.v4.map(|a| a.to_string())
            } else {
                source.v6.map(|a| a.to_string())
            };
            let prefix = p.to_string();
            let mut args = vec![prefix.as_str(), "dev", TUN_NAME];
            if let Some(src) = &src {
                args.extend(["src", src.as_str()]);
            }
            lab.route(&namespace, &args)?;
        }
        let network = Arc::new(Mutex::new(Network::with_seed(scenario, seed)));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let network = network.clone();
            let stop = stop.clone();
            thread::Builder::new()
                .name("netsim".into())
                .spawn(move || pump(device, &network, &stop))?
        };
        Ok(Simulator {
            thread: Some(thread),
            stop,
            network,
            namespace,
            scenario: scenario.clone(),
            lab,
        })
    }

    /// The full name of the namespace the engine must run in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The lab owning the namespace, to run commands in it (`exec`, `spawn`).
    pub fn lab(&self) -> &Lab {
        &self.lab
    }

    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// Runs `f` on a thread inside the namespace (threads it starts stay there too).
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> io::Result<T> {
        run_in_netns(&self.namespace, f)
    }

    fn network(&self) -> MutexGuard<'_, Network> {
        self.network.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn stats(&self) -> Stats {
        self.network().stats()
    }

    /// A copy of the ground truth so far.
    pub fn truth(&self) -> Truth {
        self.network().truth().clone()
    }

    /// Waits until no packet is in flight (at most `limit`), so late replies are counted.
    pub fn settle(&self, limit: Duration) {
        let until = Instant::now() + limit;
        while self.network().in_flight() > 0 && Instant::now() < until {
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The packet thread: reads what the kernel routes into the TUN, writes back what is due.
fn pump(device: SyncDevice, network: &Mutex<Network>, stop: &AtomicBool) {
    let start = Instant::now();
    let now = || SimTime::from_duration(start.elapsed());
    let mut buf = vec![0u8; 65536];
    let mut batch: Vec<(SimTime, Vec<u8>)> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let next = {
            let mut net = network.lock().unwrap_or_else(|p| p.into_inner());
            let t = now();
            while let Some(p) = net.poll_transmit(t) {
                // A full device queue drops the packet, as a congested link would.
                let _ = device.send(&p);
            }
            net.poll_timeout()
        };
        let wait = next.map_or(IDLE, |at| (at - now()).min(IDLE));
        if !wait.is_zero() {
            let mut fds = [PollFd::new(device.as_fd(), PollFlags::POLLIN)];
            let _ = ppoll(&mut fds, Some(TimeSpec::from_duration(wait)), None);
        }
        // Read everything waiting first, stamping each packet as it is read, then simulate:
        // simulation work must not delay the timestamps of packets still queued.
        batch.clear();
        while batch.len() < 4096 {
            match device.recv(&mut buf) {
                Ok(n) => batch.push((now(), buf[..n].to_vec())),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            let mut net = network.lock().unwrap_or_else(|p| p.into_inner());
            for (at, packet) in &batch {
                net.on_packet(*at, packet);
            }
        }
    }
}
