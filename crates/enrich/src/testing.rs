//! A small authoritative DNS server for tests (feature `testing`): serves PTR records,
//! answers NXDOMAIN with an SOA, can answer late or never, and counts the queries it sees.
//!
//! It runs on a thread of its own (with its own one-thread runtime), so it works from sync
//! tests and async ones alike, and on a socket bound anywhere — inside a test's network
//! namespace included. It stops when dropped.
//!
//! ```no_run
//! use edgetrace_enrich::testing::{DnsServer, Mode};
//! let server = DnsServer::loopback(&[("198.18.1.2", "r1.example.net.", 300)], 300, Mode::answer())
//!     .unwrap();
//! // ... edgetrace traceroute --dns-server {server.addr()} ...
//! assert_eq!(server.seen("198.18.1.2"), 1);
//! ```

use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{PTR, SOA};
use hickory_proto::rr::{Name, RData, Record};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

/// How the server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Answer after this long.
    Answer(Duration),
    /// Read every query and never answer.
    Drop,
}

impl Mode {
    /// Answer at once.
    pub fn answer() -> Mode {
        Mode::Answer(Duration::ZERO)
    }
}

/// A running test DNS server.
pub struct DnsServer {
    addr: SocketAddr,
    queries: Arc<Mutex<HashMap<String, usize>>>,
    _stop: oneshot::Sender<()>,
}

impl DnsServer {
    /// Serves on a fresh UDP socket on `127.0.0.1`.
    pub fn loopback(
        records: &[(&str, &str, u32)],
        negative_ttl: u32,
        mode: Mode,
    ) -> io::Result<DnsServer> {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
        DnsServer::start(socket, records, negative_ttl, mode)
    }

    /// Serves on an already bound socket (e.g. one bound inside a network namespace).
    ///
    /// `records` are PTR records: (address, name, TTL). Names of addresses not listed get
    /// NXDOMAIN with an SOA whose negative TTL is `negative_ttl`.
    pub fn start(
        socket: std::net::UdpSocket,
        records: &[(&str, &str, u32)],
        negative_ttl: u32,
        mode: Mode,
    ) -> io::Result<DnsServer> {
        let addr = socket.local_addr()?;
        socket.set_nonblocking(true)?;
        let mut zone = HashMap::new();
        for (ip, name, ttl) in records {
            let ip: IpAddr = ip
                .parse()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{ip}: {e}")))?;
            let name = Name::from_ascii(name)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{name}: {e}")))?;
            zone.insert(reverse_key(ip), (name, *ttl));
        }
        let queries = Arc::new(Mutex::new(HashMap::new()));
        let (stop, stopped) = oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let seen = queries.clone();
        std::thread::Builder::new()
            .name("test-dns".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(socket) = UdpSocket::from_std(socket) else {
                        return;
                    };
                    tokio::select! {
                        () = serve(Arc::new(socket), Arc::new(zone), negative_ttl, mode, seen) => {}
                        _ = stopped => {}
                    }
                });
            })?;
        Ok(DnsServer {
            addr,
            queries,
            _stop: stop,
        })
    }

    /// The address the server listens on (for `--dns-server`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queries seen for the reverse name of `ip`.
    pub fn seen(&self, ip: &str) -> usize {
        let ip: IpAddr = ip.parse().expect("an IP address");
        self.lock().get(&reverse_key(ip)).copied().unwrap_or(0)
    }

    /// Every query seen.
    pub fn total(&self) -> usize {
        self.lock().values().sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.queries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn reverse_key(ip: IpAddr) -> String {
    Name::from(ip).to_ascii().to_lowercase()
}

async fn serve(
    socket: Arc<UdpSocket>,
    zone: Arc<HashMap<String, (Name, u32)>>,
    negative_ttl: u32,
    mode: Mode,
    seen: Arc<Mutex<HashMap<String, usize>>>,
) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            return;
        };
        let Ok(request) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        let Some(query) = request.queries.first().cloned() else {
            continue;
        };
        let key = query.name().to_ascii().to_lowercase();
        *seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.clone())
            .or_insert(0) += 1;
        let Mode::Answer(delay) = mode else {
            continue;
        };
        let (socket, zone) = (socket.clone(), zone.clone());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let mut response = Message::response(request.metadata.id, OpCode::Query);
            response.metadata.authoritative = true;
            response.metadata.recursion_desired = request.metadata.recursion_desired;
            response.add_query(query.clone());
            match zone.get(&key) {
                Some((target, ttl)) => {
                    response.add_answer(Record::from_rdata(
                        query.name().clone(),
                        *ttl,
                        RData::PTR(PTR(target.clone())),
                    ));
                }
                None => {
                    response.metadata.response_code = ResponseCode::NXDomain;
                    let soa = SOA::new(
                        Name::from_ascii("ns.example.net.").expect("valid name"),
                        Name::from_ascii("hostmaster.example.net.").expect("valid name"),
                        1,
                        3600,
                        600,
                        86400,
                        negative_ttl,
                    );
                    response.add_authority(Record::from_rdata(
                        Name::from_ascii("arpa.").expect("valid name"),
                        negative_ttl,
                        RData::SOA(soa),
                    ));
                }
            }
            if let Ok(bytes) = response.to_vec() {
                let _ = socket.send_to(&bytes, from).await;
            }
        });
    }
}
