//! The probing thread: one loop that drives every running trace over the shared sockets.

use crate::sockets::{park, recv_from};
use crate::unprivileged::UnprivilegedSocket;
use crate::{NetError, Sockets, source_for};
use edgetrace_probe::{Options, Trace, TraceConfig, TraceOutcome};
use edgetrace_wire::{Protocol, Reply, parse_reply_v4, parse_reply_v6};
use mio::{Events, Interest, Poll, Token, Waker, unix::SourceFd};
use socket2::SockAddr;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Instant;
use tokio::sync::oneshot;

/// One trace to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceRequest {
    pub protocol: Protocol,
    pub target: IpAddr,
    pub options: Options,
}

type OutcomeSender = oneshot::Sender<Result<TraceOutcome, NetError>>;

/// Called on the probing thread with the source address of every reply that belongs to a
/// running trace, the moment it is read (e.g. to start its reverse-DNS lookup). It must
/// return at once: the probing of every trace waits for it.
pub type ReplyObserver = Arc<dyn Fn(IpAddr) + Send + Sync>;

struct Job {
    request: TraceRequest,
    source: IpAddr,
    reply: OutcomeSender,
}

/// Handle to the probing thread. Dropping it lets running traces finish, then stops the thread.
pub struct Prober {
    jobs: Option<mpsc::Sender<Job>>,
    waker: Arc<Waker>,
    thread: Option<thread::JoinHandle<()>>,
    has_v6: bool,
}

const WAKER: Token = Token(0);
const V4_ICMP: Token = Token(1);
const V4_TCP: Token = Token(2);
const V6_ICMP: Token = Token(3);
const V6_TCP: Token = Token(4);

impl Prober {
    /// Starts the probing thread over already opened raw sockets, or, with `None`, in
    /// unprivileged mode (ICMP through ping sockets, UDP with `IP_RECVERR`; TCP and GRE are
    /// refused with [`NetError::NotPermitted`]).
    pub fn start(sockets: Option<Sockets>) -> Result<Prober, NetError> {
        Self::start_with(sockets, None)
    }

    /// [`start`](Prober::start) with an observer told the source of every reply that belongs
    /// to a trace, on the probing thread, as soon as it is read.
    pub fn start_with(
        sockets: Option<Sockets>,
        on_reply: Option<ReplyObserver>,
    ) -> Result<Prober, NetError> {
        let io = |context| move |source| NetError::Io { context, source };
        let poll = Poll::new().map_err(io("creating poll"))?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER).map_err(io("creating waker"))?);
        let registry = poll.registry();
        let register = |fd: i32, token| {
            registry
                .register(&mut SourceFd(&fd), token, Interest::READABLE)
                .map_err(io("registering socket"))
        };
        if let Some(sockets) = &sockets {
            register(sockets.v4_icmp.as_raw_fd(), V4_ICMP)?;
            register(sockets.v4_tcp.as_raw_fd(), V4_TCP)?;
            if let Some(v6) = &sockets.v6 {
                register(v6.icmp.as_raw_fd(), V6_ICMP)?;
                register(v6.tcp.as_raw_fd(), V6_TCP)?;
            }
        }
        // Unprivileged sockets are opened per trace; the kernel says then whether IPv6 works.
        let has_v6 = sockets.as_ref().is_none_or(|s| s.v6.is_some());
        let (tx, rx) = mpsc::channel();
        let driver = Driver {
            sockets,
            poll,
            jobs: rx,
            traces: HashMap::new(),
            by_flow: HashMap::new(),
            next_id: 0,
            next_flow: 0x8000 | (std::process::id() as u16).wrapping_mul(7919) & 0x7fff,
            closed: false,
            on_reply,
            running: HashMap::new(),
        };
        let thread = thread::Builder::new()
            .name("edgetrace-prober".into())
            .spawn(move || driver.run())
            .map_err(io("starting the probing thread"))?;
        Ok(Prober {
            jobs: Some(tx),
            waker,
            thread: Some(thread),
            has_v6,
        })
    }

    /// Starts a trace; the receiver yields its outcome when it is done. Fails at once when
    /// there is no route to the target.
    pub fn trace(
        &self,
        request: TraceRequest,
    ) -> Result<oneshot::Receiver<Result<TraceOutcome, NetError>>, NetError> {
        if request.target.is_ipv6() && !self.has_v6 {
            return Err(NetError::NoRoute {
                target: request.target,
                source: std::io::Error::other("IPv6 is not available on this machine"),
            });
        }
        let source = source_for(request.target)?;
        let (reply, rx) = oneshot::channel();
        let jobs = self.jobs.as_ref().ok_or(NetError::Stopped)?;
        jobs.send(Job {
            request,
            source,
            reply,
        })
        .map_err(|_| NetError::Stopped)?;
        self.waker.wake().map_err(|source| NetError::Io {
            context: "waking the prober",
            source,
        })?;
        Ok(rx)
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.jobs.take();
        let _ = self.waker.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Running {
    trace: Trace,
    reply: OutcomeSender,
    /// One (protocol, target, flow identifier) per flow the trace may use.
    keys: Vec<(Protocol, IpAddr, u32)>,
    /// The trace's own socket in unprivileged mode.
    own: Option<UnprivilegedSocket>,
}

/// Tokens of per-trace sockets start here: token = OWN_BASE + trace id.
const OWN_BASE: usize = 1 << 20;

struct Driver {
    sockets: Option<Sockets>,
    poll: Poll,
    jobs: mpsc::Receiver<Job>,
    traces: HashMap<u64, Running>,
    by_flow: HashMap<(Protocol, IpAddr, u32), u64>,
    next_id: u64,
    next_flow: u16,
    closed: bool,
    on_reply: Option<ReplyObserver>,
    /// Traces over the raw sockets running, by family (IPv6?) and protocol: a raw socket
    /// that only those traces use is parked while none runs (see
    /// [`crate::sockets::PARKED_V4`]).
    running: HashMap<(bool, Protocol), usize>,
}

impl Driver {
    fn run(mut self) {
        let mut events = Events::with_capacity(64);
        let mut packet = Vec::with_capacity(128);
        loop {
            self.accept_jobs();
            if self.closed && self.traces.is_empty() {
                return;
            }
            let now = Instant::now();
            self.transmit(now, &mut packet);
            self.finish_done();
            let timeout = self
                .traces
                .values()
                .filter_map(|r| r.trace.poll_timeout())
                .min()
                .map(|t| t.saturating_duration_since(Instant::now()));
            if let Err(e) = self.poll.poll(&mut events, timeout)
                && e.kind() != std::io::ErrorKind::Interrupted
            {
                self.fail_all(&e);
                return;
            }
            for event in events.iter() {
                match event.token() {
                    WAKER => {}
                    token => self.drain(token),
                }
            }
        }
    }

    fn accept_jobs(&mut self) {
        loop {
            match self.jobs.try_recv() {
                Ok(job) => self.add(job),
                Err(mpsc::TryRecvError::Empty) => return,
                Err(mpsc::TryRecvError::Disconnected) => {
                    self.closed = true;
                    return;
                }
            }
        }
    }

    /// The raw socket only traces of `protocol` to `target`'s family use, which is parked
    /// while none runs: the one that receives TCP replies, and IPv6's UDP, TCP and GRE
    /// sockets (they send; IPv4 probes go out through one socket that receives nothing).
    fn own_socket(&self, protocol: Protocol, target: IpAddr) -> Option<&socket2::Socket> {
        let sockets = self.sockets.as_ref()?;
        match (target, protocol) {
            (IpAddr::V4(_), Protocol::Tcp) => Some(&sockets.v4_tcp),
            (IpAddr::V6(_), Protocol::Udp | Protocol::Tcp | Protocol::Gre) => {
                sockets.v6.as_ref().map(|v6| v6.sender(protocol))
            }
            _ => None,
        }
    }

    /// A trace starts: its protocol's own socket is unparked if it is the first.
    fn started(&mut self, protocol: Protocol, target: IpAddr) -> Result<(), NetError> {
        let key = (target.is_ipv6(), protocol);
        let running = self.running.get(&key).copied().unwrap_or(0);
        if let Some(socket) = self.own_socket(protocol, target) {
            if running == 0 {
                park(socket, target.is_ipv6(), false).map_err(|source| NetError::Io {
                    context: "unparking the raw socket",
                    source,
                })?;
            }
            self.running.insert(key, running + 1);
        }
        Ok(())
    }

    /// A trace ended: the last one of its protocol and family parks the protocol's own socket
    /// again (best effort: unparked, it only costs copies).
    fn ended(&mut self, protocol: Protocol, target: IpAddr) {
        let key = (target.is_ipv6(), protocol);
        let running = self.running.get(&key).copied().unwrap_or(0);
        if let Some(socket) = self.own_socket(protocol, target) {
            if running == 1 {
                let _ = park(socket, target.is_ipv6(), true);
            }
            self.running.insert(key, running.saturating_sub(1));
        }
    }

    fn allocate_flow(&mut self, protocol: Protocol, target: IpAddr) -> u32 {
        loop {
            let flow = u32::from(self.next_flow);
            self.next_flow = self.next_flow.wrapping_add(1) | 0x8000;
            if !self.by_flow.contains_key(&(protocol, target, flow)) {
                return flow;
            }
        }
    }

    fn add(&mut self, job: Job) {
        let TraceRequest {
            protocol,
            target,
            options,
        } = job.request;
        let id = self.next_id;
        self.next_id += 1;
        let flows = options.paths.max_flows();
        let (flows, own) = if self.sockets.is_some() {
            let flows: Vec<u32> = (0..flows)
                .map(|_| self.allocate_flow(protocol, target))
                .collect();
            (flows, None)
        } else if flows > 1 {
            // The kernel picks the one identifier of an unprivileged socket.
            let _ = job.reply.send(Err(NetError::NotPermitted {
                what: "multipath traces (paths other than 1)",
                hint: "each flow needs an identifier of its own, which only raw sockets give: \
                       run as root or grant CAP_NET_RAW with `setcap cap_net_raw+ep <edgetrace binary>`",
                source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
            }));
            return;
        } else {
            let port = options.effective_port(protocol);
            let opened = UnprivilegedSocket::open(protocol, target, port).and_then(|s| {
                let token = Token(OWN_BASE + id as usize);
                self.poll
                    .registry()
                    .register(
                        &mut SourceFd(&s.socket.as_raw_fd()),
                        token,
                        Interest::READABLE,
                    )
                    .map_err(|source| NetError::Io {
                        context: "registering socket",
                        source,
                    })?;
                Ok(s)
            });
            match opened {
                Ok(s) => (vec![s.flow], Some(s)),
                Err(e) => {
                    let _ = job.reply.send(Err(e));
                    return;
                }
            }
        };
        let cfg = TraceConfig::new(protocol, job.source, target, flows, &options);
        let keys: Vec<_> = cfg.flows.iter().map(|&f| (protocol, target, f)).collect();
        if let Some(&(_, _, key)) = keys.iter().find(|k| self.by_flow.contains_key(k)) {
            let _ = job.reply.send(Err(NetError::FlowBusy { target, key }));
            return;
        }
        if let Err(e) = self.started(protocol, target) {
            let _ = job.reply.send(Err(e));
            return;
        }
        for key in &keys {
            self.by_flow.insert(*key, id);
        }
        let trace = Trace::new(cfg);
        self.traces.insert(
            id,
            Running {
                trace,
                reply: job.reply,
                keys,
                own,
            },
        );
    }

    fn transmit(&mut self, now: Instant, packet: &mut Vec<u8>) {
        for r in self.traces.values_mut() {
            r.trace.handle_timeout(now);
            // Each probe is stamped just before it is built and sent, not with the pass's start:
            // with many traces a pass takes long enough to bias RTTs.
            while let Some(tx) = r.trace.poll_transmit(Instant::now(), packet) {
                let sent = match (&self.sockets, &r.own, tx.destination) {
                    (_, Some(own), _) => own.send(tx.ttl, tx.seq, packet).map(|()| 0),
                    (None, None, _) => Err(std::io::Error::other("no socket for this trace")),
                    (Some(sockets), None, IpAddr::V4(_)) => {
                        let to = SockAddr::from(SocketAddr::new(tx.destination, 0));
                        sockets.v4_send.send_to(packet, &to)
                    }
                    (Some(sockets), None, IpAddr::V6(_)) => match &sockets.v6 {
                        Some(v6) => {
                            let s = v6.sender(r.trace.config().protocol);
                            let to = SockAddr::from(SocketAddr::new(tx.destination, 0));
                            s.set_unicast_hops_v6(u32::from(tx.ttl))
                                .and_then(|()| s.send_to(packet, &to))
                        }
                        None => Err(std::io::Error::other("IPv6 is not available")),
                    },
                };
                if let Err(e) = sent {
                    r.trace.on_send_error(e.to_string());
                }
            }
        }
    }

    fn finish_done(&mut self) {
        let done: Vec<u64> = self
            .traces
            .iter()
            .filter(|(_, r)| r.trace.is_done())
            .map(|(id, _)| *id)
            .collect();
        for id in done {
            if let Some(r) = self.traces.remove(&id) {
                for key in &r.keys {
                    self.by_flow.remove(key);
                }
                let config = r.trace.config();
                self.ended(config.protocol, config.target);
                if let Some(own) = &r.own {
                    let _ = self
                        .poll
                        .registry()
                        .deregister(&mut SourceFd(&own.socket.as_raw_fd()));
                }
                let _ = r.reply.send(Ok(r.trace.outcome()));
            }
        }
    }

    fn fail_all(&mut self, e: &std::io::Error) {
        for (_, r) in std::mem::take(&mut self.traces) {
            let config = r.trace.config();
            self.ended(config.protocol, config.target);
            let _ = r.reply.send(Err(NetError::Io {
                context: "polling sockets",
                source: std::io::Error::new(e.kind(), e.to_string()),
            }));
        }
    }

    /// Reads every queued packet of one socket and dispatches the replies.
    fn drain(&mut self, token: Token) {
        if token.0 >= OWN_BASE {
            let id = (token.0 - OWN_BASE) as u64;
            let mut replies = Vec::new();
            if let Some(own) = self.traces.get(&id).and_then(|r| r.own.as_ref()) {
                own.drain(&mut replies);
            }
            for (at, reply) in &replies {
                self.dispatch(*at, reply);
            }
            return;
        }
        let Some(sockets) = &self.sockets else { return };
        let mut buf = [0u8; 2048];
        let mut replies = Vec::new();
        loop {
            let socket = match token {
                V4_ICMP => &sockets.v4_icmp,
                V4_TCP => &sockets.v4_tcp,
                V6_ICMP | V6_TCP => match &sockets.v6 {
                    Some(v6) if token == V6_ICMP => &v6.icmp,
                    Some(v6) => &v6.tcp,
                    None => break,
                },
                _ => break,
            };
            let (len, from) = match recv_from(socket, &mut buf) {
                Ok(r) => r,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                // WouldBlock: drained. Other errors (e.g. a queued ICMP error): nothing to read.
                Err(_) => break,
            };
            let now = Instant::now();
            let data = &buf[..len];
            let parsed = match token {
                V4_ICMP | V4_TCP => parse_reply_v4(data),
                _ => match from.as_socket() {
                    Some(SocketAddr::V6(a)) => {
                        parse_reply_v6(*a.ip(), if token == V6_ICMP { 58 } else { 6 }, data)
                    }
                    _ => continue,
                },
            };
            if let Ok(reply) = parsed {
                replies.push((now, reply));
            }
        }
        for (now, reply) in &replies {
            self.dispatch(*now, reply);
        }
    }

    fn dispatch(&mut self, now: Instant, reply: &Reply) {
        let key = (
            reply.probe.protocol,
            reply.probe.destination,
            reply.probe.flow,
        );
        if let Some(r) = self
            .by_flow
            .get(&key)
            .and_then(|id| self.traces.get_mut(id))
        {
            let accepted = r.trace.on_reply(now, reply);
            if accepted && let Some(observe) = &self.on_reply {
                observe(reply.from);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sockets::{PARKED_V4, PARKED_V6};
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;

    /// The local address `/proc/self/net/{table}` shows for the socket with descriptor `fd`,
    /// as the kernel prints it (32-bit words of the address in host order, hex).
    fn local_of(table: &str, fd: i32) -> String {
        let inode = std::fs::metadata(format!("/proc/self/fd/{fd}"))
            .unwrap()
            .ino()
            .to_string();
        // The kernel lists the table afresh from where the last read stopped: read in pieces
        // while other tests open and close sockets, it can skip a line (ours; seen once in six
        // runs of this suite). One read() of it all is listed in one go; a socket still
        // missing is looked for again.
        let mut text = String::new();
        for _ in 0..10 {
            let mut buf = vec![0; 1 << 20];
            let n = std::fs::File::open(format!("/proc/self/net/{table}"))
                .and_then(|mut f| f.read(&mut buf))
                .unwrap();
            text = String::from_utf8_lossy(&buf[..n]).into_owned();
            // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
            let local = text
                .lines()
                .skip(1)
                .map(|l| l.split_whitespace().collect::<Vec<_>>())
                .find(|f| f.get(9) == Some(&inode.as_str()))
                .map(|f| f[1].split(':').next().unwrap().to_string());
            if let Some(local) = local {
                return local;
            }
        }
        panic!("socket {inode} not in /proc/self/net/{table}:\n{text}")
    }

    fn printed(octets: &[u8]) -> String {
        octets
            .chunks(4)
            .map(|w| format!("{:08X}", u32::from_ne_bytes(w.try_into().unwrap())))
            .collect()
    }

    /// A raw TCP socket gets a copy of every TCP segment the host receives; while no TCP trace
    /// runs, it is parked (bound to an address nothing sends to), and a TCP trace unparks it:
    /// the trace to a closed port on loopback only reaches its target if the RST comes
    /// through. IPv6's UDP and GRE sockets are parked the same way while no trace of theirs
    /// runs. Needs root, like the rest of the suite; probes go to loopback only.
    #[test]
    fn own_sockets_are_parked_while_no_trace_of_theirs_runs() {
        let sockets = Sockets::open().unwrap();
        let v4 = sockets.v4_tcp.as_raw_fd();
        let v6: Vec<i32> = sockets
            .v6
            .iter()
            .flat_map(|s| [s.udp.as_raw_fd(), s.tcp.as_raw_fd(), s.gre.as_raw_fd()])
            .collect();
        let parked_v4 = printed(&PARKED_V4.octets());
        let parked_v6 = printed(&PARKED_V6.octets());
        let check_parked = || {
            assert_eq!(local_of("raw", v4), parked_v4);
            for &fd in &v6 {
                assert_eq!(local_of("raw6", fd), parked_v6);
            }
        };
        check_parked();
        let prober = Prober::start(Some(sockets)).unwrap();
        // A port nothing listens on: the target answers the SYN with a RST.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let traces = [
            (Protocol::Tcp, "127.0.0.1"),
            (Protocol::Tcp, "::1"),
            (Protocol::Udp, "::1"),
        ];
        for (protocol, target) in traces {
            let target: IpAddr = target.parse().unwrap();
            if target.is_ipv6() && v6.is_empty() {
                continue;
            }
            let request = TraceRequest {
                protocol,
                target,
                options: Options {
                    port,
                    ..Options::default()
                },
            };
            let outcome = prober
                .trace(request)
                .unwrap()
                .blocking_recv()
                .unwrap()
                .unwrap();
            let answered = outcome
                .hops
                .iter()
                .flat_map(|h| &h.nodes)
                .any(|n| n.ip == target && !n.rtts.is_empty());
            assert!(
                answered,
                "{protocol:?} {target}: no answer came through: {outcome:?}"
            );
            // Done: parked again.
            check_parked();
        }
    }
}
