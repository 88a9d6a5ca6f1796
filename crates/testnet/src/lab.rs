//! [`Lab`]: a set of network namespaces plus everything running inside them.

use std::collections::VecDeque;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::sys;

/// Every namespace created by this crate is called `et-{pid}-{n}-{tag}-{short}`.
pub const NS_PREFIX: &str = "et-";

/// Sysctls (under `/proc/sys`) that [`Lab::add_ns`] changes to switch ICMP rate limiting off.
const ICMP_RATELIMIT_KEYS: [&str; 6] = [
    "net/ipv4/icmp_ratemask",
    "net/ipv4/icmp_ratelimit",
    "net/ipv6/icmp/ratelimit",
    "net/ipv6/icmp/ratemask",
    "net/ipv4/icmp_msgs_per_sec",
    "net/ipv4/icmp_msgs_burst",
];

static LAB_COUNTER: AtomicU64 = AtomicU64::new(0);
/// `ip netns add/del` manipulate the shared `/run/netns` mount; serialise them
/// so labs built concurrently from several test threads don't race on it.
static NETNS_LOCK: Mutex<()> = Mutex::new(());

/// Options for one namespace (see [`Lab::add_ns_opts`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NsOptions {
    /// Keep the kernel's default ICMP rate limiting (`icmp_ratelimit`,
    /// `icmp_ratemask`, `icmp_msgs_per_sec`, v6 `ratelimit`/`ratemask`)
    /// instead of switching it off.
    pub kernel_icmp_ratelimit: bool,
}

/// Result of [`Lab::exec_timeout`].
#[derive(Debug)]
pub struct TimedOutput {
    /// Exit status and captured stdout/stderr (whatever was produced before a kill).
    pub output: Output,
    /// Wall time from spawn to exit (or to the kill).
    pub elapsed: Duration,
    /// The command ran longer than the timeout and was killed.
    pub timed_out: bool,
}

/// A background thread group (delay link, TCP listener) stopped through a flag.
struct Worker {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Worker {
    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A set of network namespaces and what runs inside them.
///
/// Dropping the lab kills every process spawned with [`Lab::spawn`] (and any
/// other process still living in one of its namespaces), stops delay links and
/// listeners, and deletes the namespaces — also during a panic unwind.
/// Namespaces left behind by a killed test run are removed by the next
/// [`Lab::new`] (or explicitly with [`cleanup_stale`]).
pub struct Lab {
    prefix: String,
    namespaces: Vec<String>,
    children: Vec<Child>,
    workers: Vec<Worker>,
    default_opts: NsOptions,
    /// Kernel defaults of the ICMP rate-limit sysctls, read from the first
    /// namespace before they were switched off.
    icmp_defaults: Option<Vec<(&'static str, String)>>,
}

impl std::fmt::Debug for Lab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lab")
            .field("prefix", &self.prefix)
            .field("namespaces", &self.namespaces)
            .field("children", &self.children.len())
            .field("workers", &self.workers.len())
            .finish()
    }
}

fn other(msg: impl Into<String>) -> io::Error {
    io::Error::other(msg.into())
}

fn run(cmd: &mut Command) -> io::Result<Output> {
    cmd.stdin(Stdio::null())
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("{cmd:?}: {e}")))
}

fn run_ok(cmd: &mut Command) -> io::Result<String> {
    let out = run(cmd)?;
    if !out.status.success() {
        return Err(other(format!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Lists the names of all namespaces under `/run/netns` starting with `et-`.
pub fn list_lab_namespaces() -> io::Result<Vec<String>> {
    let dir = match fs::read_dir("/run/netns") {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut names: Vec<String> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(NS_PREFIX))
        .collect();
    names.sort();
    Ok(names)
}

/// Kills whatever still runs in `ns` and deletes it.
fn destroy_ns(ns: &str) -> io::Result<()> {
    if let Ok(pids) = run_ok(Command::new("ip").args(["netns", "pids", ns])) {
        for pid in pids.split_whitespace() {
            // These processes live inside a namespace this crate created.
            let _ = Command::new("kill")
                .args(["-KILL", pid])
                .stderr(Stdio::null())
                .status();
        }
    }
    let _guard = NETNS_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let out = run(Command::new("ip").args(["netns", "del", ns]))?;
    if !out.status.success() && Path::new("/run/netns").join(ns).exists() {
        return Err(other(format!(
            "ip netns del {ns}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Deletes `et-{pid}-…` namespaces whose creating process no longer exists
/// (left behind by a SIGKILLed test run). Returns the names removed.
pub fn cleanup_stale() -> io::Result<Vec<String>> {
    let me = std::process::id();
    let mut removed = Vec::new();
    for ns in list_lab_namespaces()? {
        let Some(pid) = ns
            .strip_prefix(NS_PREFIX)
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        destroy_ns(&ns)?;
        removed.push(ns);
    }
    Ok(removed)
}

/// Runs `f` on a fresh thread that has entered network namespace `ns`
/// (a full name under `/run/netns`). Sockets and TUN devices created by `f`
/// stay in that namespace after it returns.
pub fn run_in_netns<T, F>(ns: &str, f: F) -> io::Result<T>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    thread::scope(|s| {
        let h = s.spawn(|| -> io::Result<T> {
            sys::enter_netns(ns)?;
            Ok(f())
        });
        match h.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

impl Lab {
    /// Creates an empty lab. Namespace names will be `et-{pid}-{n}-{tag}-{short}`.
    /// Also removes stale `et-*` namespaces of dead processes.
    pub fn new(tag: &str) -> io::Result<Lab> {
        if let Err(e) = cleanup_stale() {
            eprintln!("edgetrace-testnet: stale namespace cleanup failed: {e}");
        }
        let n = LAB_COUNTER.fetch_add(1, Ordering::Relaxed);
        Ok(Lab {
            prefix: format!("{NS_PREFIX}{}-{n}-{}-", std::process::id(), sanitize(tag)),
            namespaces: Vec::new(),
            children: Vec::new(),
            workers: Vec::new(),
            default_opts: NsOptions::default(),
            icmp_defaults: None,
        })
    }

    /// Sets the options used by later [`Lab::add_ns`] calls.
    pub fn set_default_ns_options(&mut self, opts: NsOptions) {
        self.default_opts = opts;
    }

    /// The common prefix of this lab's namespace names.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Full names of the namespaces created so far.
    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }

    /// Resolves a full or short namespace name to the full name, refusing
    /// anything this lab did not create.
    pub fn ns_name(&self, ns: &str) -> io::Result<String> {
        if self.namespaces.iter().any(|n| n == ns) {
            return Ok(ns.to_string());
        }
        let full = format!("{}{}", self.prefix, ns);
        if self.namespaces.contains(&full) {
            return Ok(full);
        }
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{ns:?} is not a namespace of lab {}", self.prefix),
        ))
    }

    /// Adds a namespace with the lab's default options (see [`Lab::add_ns_opts`]).
    pub fn add_ns(&mut self, short: &str) -> io::Result<String> {
        let opts = self.default_opts;
        self.add_ns_opts(short, opts)
    }

    /// Creates namespace `{prefix}{short}` and returns its full name.
    ///
    /// Inside it: `lo` up, IPv4/IPv6 forwarding on, rp_filter off, IPv4 ICMP
    /// errors sourced from the inbound interface (`icmp_errors_use_inbound_ifaddr=1`,
    /// which is what IPv6 does anyway), IPv6 DAD off
    /// for all interfaces created later, and — unless
    /// `opts.kernel_icmp_ratelimit` — ICMP rate limiting off
    /// (`icmp_ratemask=0`, `icmp_ratelimit=0`, v6 `ratelimit=0`, `ratemask=""`).
    pub fn add_ns_opts(&mut self, short: &str, opts: NsOptions) -> io::Result<String> {
        let name = format!("{}{}", self.prefix, sanitize(short));
        if self.namespaces.contains(&name) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("namespace {name} already exists in this lab"),
            ));
        }
        {
            let _guard = NETNS_LOCK.lock().unwrap_or_else(|p| p.into_inner());
            run_ok(Command::new("ip").args(["netns", "add", &name]))?;
        }
        self.namespaces.push(name.clone());
        run_ok(Command::new("ip").args(["-n", &name, "link", "set", "lo", "up"]))?;
        let mut settings: Vec<(&str, &str)> = vec![
            ("net/ipv4/ip_forward", "1"),
            ("net/ipv4/conf/all/rp_filter", "0"),
            ("net/ipv4/conf/default/rp_filter", "0"),
            // Match IPv6 (which answers from the interface the packet came in on)
            // so v4 and v6 traceroutes see the same router interfaces.
            ("net/ipv4/icmp_errors_use_inbound_ifaddr", "1"),
            ("net/ipv6/conf/all/forwarding", "1"),
            ("net/ipv6/conf/default/forwarding", "1"),
            ("net/ipv6/conf/all/accept_dad", "0"),
            ("net/ipv6/conf/default/accept_dad", "0"),
            ("net/ipv6/conf/default/dad_transmits", "0"),
            ("net/ipv6/conf/all/accept_ra", "0"),
            ("net/ipv6/conf/default/accept_ra", "0"),
        ];
        if !opts.kernel_icmp_ratelimit {
            if self.icmp_defaults.is_none() {
                let ns = name.clone();
                self.icmp_defaults = Some(run_in_netns(&ns, || {
                    ICMP_RATELIMIT_KEYS
                        .iter()
                        .filter_map(|k| {
                            fs::read_to_string(format!("/proc/sys/{k}"))
                                .ok()
                                .map(|v| (*k, v.trim().to_string()))
                        })
                        .collect()
                })?);
            }
            settings.extend([
                ("net/ipv4/icmp_ratemask", "0"),
                ("net/ipv4/icmp_ratelimit", "0"),
                ("net/ipv6/icmp/ratelimit", "0"),
                ("net/ipv6/icmp/ratemask", ""), // optional: absent on old kernels
                ("net/ipv4/icmp_msgs_per_sec", "1000000"),
                ("net/ipv4/icmp_msgs_burst", "1000000"),
            ]);
        }
        self.sysctls(&name, &settings)?;
        Ok(name)
    }

    /// Writes `net/...` sysctls (paths relative to `/proc/sys`) inside `ns`.
    /// Keys that don't exist on this kernel are skipped if they are one of the
    /// optional rate-limit knobs, otherwise reported as an error.
    pub fn sysctls(&self, ns: &str, settings: &[(&str, &str)]) -> io::Result<()> {
        let ns = self.ns_name(ns)?;
        run_in_netns(&ns, || -> io::Result<()> {
            for (key, value) in settings {
                let path = format!("/proc/sys/{}", key.trim_start_matches('/'));
                match fs::write(&path, format!("{value}\n")) {
                    Ok(()) => {}
                    Err(e)
                        if e.kind() == io::ErrorKind::NotFound
                            && (key.ends_with("ratemask") || key.contains("icmp_msgs")) => {}
                    Err(e) => {
                        return Err(io::Error::new(e.kind(), format!("{path} in {ns}: {e}")));
                    }
                }
            }
            Ok(())
        })?
    }

    /// Reads one sysctl (path relative to `/proc/sys`, e.g. `net/ipv4/ip_forward`) inside `ns`.
    pub fn sysctl_get(&self, ns: &str, key: &str) -> io::Result<String> {
        let ns = self.ns_name(ns)?;
        let path = format!("/proc/sys/{}", key.trim_start_matches('/'));
        run_in_netns(&ns, || fs::read_to_string(&path))?.map(|s| s.trim().to_string())
    }

    /// Runs `f` on a thread inside namespace `ns` (see [`run_in_netns`]).
    /// Handy for creating sockets in the source namespace from a test.
    pub fn in_ns<T: Send, F: FnOnce() -> T + Send>(&self, ns: &str, f: F) -> io::Result<T> {
        let ns = self.ns_name(ns)?;
        run_in_netns(&ns, f)
    }

    fn ns_command(&self, ns: &str, argv: &[&str]) -> io::Result<Command> {
        let ns = self.ns_name(ns)?;
        if argv.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty argv"));
        }
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns]).args(argv);
        Ok(cmd)
    }

    /// Runs `argv` inside `ns` (`ip netns exec`) and returns its output, whatever the exit status.
    pub fn exec(&self, ns: &str, argv: &[&str]) -> io::Result<Output> {
        run(&mut self.ns_command(ns, argv)?)
    }

    /// Like [`Lab::exec`] but fails (with stderr in the message) on a non-zero exit; returns stdout.
    pub fn exec_ok(&self, ns: &str, argv: &[&str]) -> io::Result<String> {
        run_ok(&mut self.ns_command(ns, argv)?)
    }

    /// Runs `argv` inside `ns` feeding `input` on stdin; fails on a non-zero exit.
    pub fn exec_stdin(&self, ns: &str, argv: &[&str], input: &str) -> io::Result<String> {
        let mut cmd = self.ns_command(ns, argv)?;
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        let input = input.to_string();
        let writer = thread::spawn(move || stdin.write_all(input.as_bytes()));
        let out = child.wait_with_output()?;
        let _ = writer.join();
        if !out.status.success() {
            return Err(other(format!(
                "{cmd:?} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `argv` inside `ns`, killing it (SIGKILL) after `timeout`.
    pub fn exec_timeout(
        &self,
        ns: &str,
        argv: &[&str],
        timeout: Duration,
    ) -> io::Result<TimedOutput> {
        let mut cmd = self.ns_command(ns, argv)?;
        let start = Instant::now();
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let mut so = child.stdout.take().expect("piped stdout");
        let mut se = child.stderr.take().expect("piped stderr");
        let t_out = thread::spawn(move || {
            let mut v = Vec::new();
            let _ = so.read_to_end(&mut v);
            v
        });
        let t_err = thread::spawn(move || {
            let mut v = Vec::new();
            let _ = se.read_to_end(&mut v);
            v
        });
        let mut timed_out = false;
        let status = loop {
            if let Some(st) = child.try_wait()? {
                break st;
            }
            if start.elapsed() >= timeout {
                timed_out = true;
                let _ = child.kill();
                break child.wait()?;
            }
            thread::sleep(Duration::from_millis(5));
        };
        let elapsed = start.elapsed();
        let stdout = t_out.join().unwrap_or_default();
        let stderr = t_err.join().unwrap_or_default();
        Ok(TimedOutput {
            output: Output {
                status,
                stdout,
                stderr,
            },
            elapsed,
            timed_out,
        })
    }

    /// Starts `argv` in the background inside `ns`; it is killed when the lab is dropped.
    pub fn spawn(&mut self, ns: &str, argv: &[&str]) -> io::Result<u32> {
        let mut cmd = self.ns_command(ns, argv)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("{cmd:?}: {e}")))?;
        let pid = child.id();
        self.children.push(child);
        Ok(pid)
    }

    /// Like [`Lab::spawn`], with stdout and stderr appended to the file `log`.
    pub fn spawn_logged(&mut self, ns: &str, argv: &[&str], log: &Path) -> io::Result<u32> {
        let mut cmd = self.ns_command(ns, argv)?;
        let file = fs::OpenOptions::new().create(true).append(true).open(log)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("{cmd:?}: {e}")))?;
        let pid = child.id();
        self.children.push(child);
        Ok(pid)
    }

    /// Whether a process started with [`Lab::spawn`] has exited; its status if so.
    pub fn try_wait(&mut self, pid: u32) -> io::Result<Option<std::process::ExitStatus>> {
        let child = self
            .children
            .iter_mut()
            .find(|c| c.id() == pid)
            .ok_or_else(|| other(format!("pid {pid} was not spawned by this lab")))?;
        child.try_wait()
    }

    /// Kills (SIGKILL) and reaps a process started with [`Lab::spawn`].
    pub fn kill(&mut self, pid: u32) -> io::Result<()> {
        let idx = self
            .children
            .iter()
            .position(|c| c.id() == pid)
            .ok_or_else(|| other(format!("pid {pid} was not spawned by this lab")))?;
        let mut child = self.children.swap_remove(idx);
        let _ = child.kill();
        child.wait()?;
        Ok(())
    }

    /// Runs `ip -n NS ARGS...`; fails with stderr on error.
    pub fn ip(&self, ns: &str, args: &[&str]) -> io::Result<String> {
        let ns = self.ns_name(ns)?;
        run_ok(Command::new("ip").args(["-n", &ns]).args(args))
    }

    /// Runs many `ip` commands in `ns` with one process (`ip -batch -`);
    /// each line is what would follow `ip` on the command line.
    pub fn ip_batch(&self, ns: &str, lines: &[String]) -> io::Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut input = lines.join("\n");
        input.push('\n');
        self.exec_stdin(ns, &["ip", "-batch", "-"], &input)
            .map(|_| ())
    }

    /// `iptables -w ARGS...` inside `ns`.
    pub fn iptables(&self, ns: &str, args: &[&str]) -> io::Result<String> {
        let mut argv = vec!["iptables", "-w"];
        argv.extend_from_slice(args);
        self.exec_ok(ns, &argv)
    }

    /// `ip6tables -w ARGS...` inside `ns`.
    pub fn ip6tables(&self, ns: &str, args: &[&str]) -> io::Result<String> {
        let mut argv = vec!["ip6tables", "-w"];
        argv.extend_from_slice(args);
        self.exec_ok(ns, &argv)
    }

    /// Creates a veth pair directly inside the two namespaces (never in the
    /// root namespace) and sets both ends up. Interface names are per
    /// namespace, so `if_a == if_b` is fine.
    pub fn veth(&self, ns_a: &str, if_a: &str, ns_b: &str, if_b: &str) -> io::Result<()> {
        let a = self.ns_name(ns_a)?;
        let b = self.ns_name(ns_b)?;
        run_ok(Command::new("ip").args([
            "link", "add", if_a, "netns", &a, "type", "veth", "peer", "name", if_b, "netns", &b,
        ]))?;
        self.ip(&a, &["link", "set", if_a, "up"])?;
        self.ip(&b, &["link", "set", if_b, "up"])?;
        Ok(())
    }

    /// Adds an address (`198.18.1.1/24` or `2001:2:0:1::1/64`) to an
    /// interface; IPv6 addresses get `nodad` so they are usable at once.
    pub fn addr(&self, ns: &str, ifname: &str, cidr: &str) -> io::Result<()> {
        let mut args = vec!["addr", "add", cidr, "dev", ifname];
        if cidr.contains(':') {
            args.push("nodad");
        }
        self.ip(ns, &args).map(|_| ())
    }

    /// `ip route add ARGS...` (family deduced from the prefix).
    pub fn route(&self, ns: &str, args: &[&str]) -> io::Result<()> {
        let mut v = vec!["route", "add"];
        v.extend_from_slice(args);
        self.ip(ns, &v).map(|_| ())
    }

    /// Links `ns_a`/`if_a` and `ns_b`/`if_b` with a user-space "wire": a TUN
    /// device on each side and two threads that forward every packet after
    /// `one_way` (so a ping across it gains 2 × `one_way`). Both interfaces
    /// are set up; add addresses with [`Lab::addr`].
    pub fn delay_link(
        &mut self,
        ns_a: &str,
        if_a: &str,
        ns_b: &str,
        if_b: &str,
        one_way: Duration,
    ) -> io::Result<()> {
        let a = self.ns_name(ns_a)?;
        let b = self.ns_name(ns_b)?;
        let tun_a = Arc::new(run_in_netns(&a, || sys::create_tun(if_a))??);
        let tun_b = Arc::new(run_in_netns(&b, || sys::create_tun(if_b))??);
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for (from, to) in [(tun_a.clone(), tun_b.clone()), (tun_b, tun_a)] {
            let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
            let stop_r = stop.clone();
            threads.push(thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                while !stop_r.load(Ordering::Relaxed) {
                    match sys::wait_readable(&from, 50) {
                        Ok(true) => match (&*from).read(&mut buf) {
                            Ok(n) if n > 0 => {
                                if tx
                                    .send((Instant::now() + one_way, buf[..n].to_vec()))
                                    .is_err()
                                {
                                    return;
                                }
                            }
                            Ok(_) => {}
                            Err(_) => thread::sleep(Duration::from_millis(5)),
                        },
                        Ok(false) => {}
                        Err(_) => thread::sleep(Duration::from_millis(5)),
                    }
                }
            }));
            let stop_w = stop.clone();
            threads.push(thread::spawn(move || {
                // The delay is constant, so FIFO order is deadline order.
                let mut queue: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
                loop {
                    if stop_w.load(Ordering::Relaxed) {
                        return;
                    }
                    let wait = queue
                        .front()
                        .map(|(t, _)| t.saturating_duration_since(Instant::now()))
                        .unwrap_or(Duration::from_millis(50))
                        .min(Duration::from_millis(50));
                    match rx.recv_timeout(wait) {
                        Ok(item) => queue.push_back(item),
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        Err(mpsc::RecvTimeoutError::Disconnected) => {
                            if queue.is_empty() {
                                return;
                            }
                            thread::sleep(wait);
                        }
                    }
                    let now = Instant::now();
                    while queue.front().is_some_and(|(t, _)| *t <= now) {
                        let (_, pkt) = queue.pop_front().expect("front checked");
                        let _ = (&*to).write(&pkt);
                    }
                }
            }));
        }
        self.workers.push(Worker { stop, threads });
        self.ip(&a, &["link", "set", if_a, "up"])?;
        self.ip(&b, &["link", "set", if_b, "up"])?;
        Ok(())
    }

    /// Starts a TCP listener on `[::]:port` (v4 and v6) inside `ns` that
    /// accepts and immediately closes connections; stopped on drop.
    pub fn tcp_listen(&mut self, ns: &str, port: u16) -> io::Result<()> {
        let ns = self.ns_name(ns)?;
        let listener = run_in_netns(&ns, || {
            let l = TcpListener::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)))?;
            l.set_nonblocking(true)?;
            Ok::<_, io::Error>(l)
        })??;
        let stop = Arc::new(AtomicBool::new(false));
        let stop_t = stop.clone();
        let t = thread::spawn(move || {
            while !stop_t.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => drop(conn),
                    Err(_) => thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        self.workers.push(Worker {
            stop,
            threads: vec![t],
        });
        Ok(())
    }

    /// Puts the kernel's default ICMP rate limiting back in `ns` (values as
    /// found in a fresh namespace of this lab before they were switched off).
    pub fn restore_kernel_icmp_ratelimit(&self, ns: &str) -> io::Result<()> {
        let defaults = self
            .icmp_defaults
            .as_ref()
            .ok_or_else(|| other("ICMP rate limiting was never switched off in this lab"))?;
        let settings: Vec<(&str, &str)> = defaults.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.sysctls(ns, &settings)
    }

    /// Tears everything down now (also done by `Drop`). Returns the first error.
    pub fn shutdown(&mut self) -> io::Result<()> {
        for mut c in self.children.drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
        for mut w in self.workers.drain(..) {
            w.shutdown();
        }
        let mut first_err = None;
        for ns in self.namespaces.drain(..).rev() {
            if let Err(e) = destroy_ns(&ns) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            eprintln!("edgetrace-testnet: teardown of {} failed: {e}", self.prefix);
        }
    }
}
