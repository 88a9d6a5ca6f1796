//! The reverse proxy's listener: HTTP/1.1 and HTTP/2 (h2c with prior knowledge in plain text,
//! ALPN over TLS) with hyper-util's auto connection builder, TLS with rustls when a
//! certificate is configured. Each request is read (body up to [`MAX_BODY`]), turned into the
//! pipeline's request and handed to [`Edge::handle`].

use crate::{Body, Edge, Mode, header_pairs, text_response};
use edgetrace_edge::pipeline::{Request, RunOptions};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// The largest request body the proxy reads (rules can look at it) [8 MiB]; larger is a 413.
pub const MAX_BODY: usize = 8 * 1024 * 1024;

/// A TLS configuration problem, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("the certificate and key do not go together: {0}")]
    Config(rustls::Error),
}

/// A TLS acceptor from PEM files: the certificate chain (leaf first) and its private key.
/// ALPN offers HTTP/2 and HTTP/1.1.
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let file_error = |path: &Path, message: String| TlsError::File {
        path: path.display().to_string(),
        message,
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file_error(cert, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(file_error(cert, "no PEM certificate in the file".into()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| file_error(key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(TlsError::Config)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves the proxy on `listener` with `threads` threads, each running its own single-threaded
/// runtime that serves the connections handed to it start to end (thread per core: a request,
/// its rules and its origin connection never leave the thread that serves its connection).
/// The first thread accepts and hands the connections out in turn, so that each thread gets
/// as many (the threads all accepting from the listener shared it unevenly: under wrk's 32
/// connections, one thread did 2.4 times the other's work). The threads run until the process
/// exits; an error starting one is returned.
pub fn spawn(
    edge: Arc<Edge>,
    listener: std::net::TcpListener,
    tls: Option<TlsAcceptor>,
    threads: usize,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let (senders, receivers): (Vec<_>, Vec<_>) = (1..threads.max(1))
        .map(|_| tokio::sync::mpsc::unbounded_channel())
        .unzip();
    let sources = std::iter::once(Connections::Listener(listener, senders))
        .chain(receivers.into_iter().map(Connections::Handed));
    for (i, connections) in sources.enumerate() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let edge = edge.clone();
        let tls = tls.clone();
        std::thread::Builder::new()
            .name(format!("edgetrace-proxy-{i}"))
            .spawn(move || runtime.block_on(serve(edge, connections, tls, i)))?;
    }
    Ok(())
}

/// Where a proxy thread's connections come from.
enum Connections {
    /// The listener and the other threads' hand-off channels: the connections it accepts are
    /// served here and by the other threads in turn.
    Listener(
        std::net::TcpListener,
        Vec<tokio::sync::mpsc::UnboundedSender<(std::net::TcpStream, SocketAddr)>>,
    ),
    /// Connections the first thread accepted for this one.
    Handed(tokio::sync::mpsc::UnboundedReceiver<(std::net::TcpStream, SocketAddr)>),
}

/// One proxy thread: accepts (or receives) connections and serves each in a task of the
/// thread's runtime.
async fn serve(edge: Arc<Edge>, connections: Connections, tls: Option<TlsAcceptor>, thread: usize) {
    match connections {
        Connections::Listener(listener, others) => {
            let listener = match TcpListener::from_std(listener) {
                Ok(l) => l,
                Err(e) => return eprintln!("edgetrace: proxy thread {thread}: {e}"),
            };
            let mut turn = 0;
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(c) => c,
                    // Out of file descriptors and the like: wait a little rather than spin.
                    Err(e) => {
                        eprintln!("edgetrace: proxy: accept: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                turn = (turn + 1) % (others.len() + 1);
                let Some(other) = turn.checked_sub(1).and_then(|t| others.get(t)) else {
                    connection(&edge, stream, peer, &tls);
                    continue;
                };
                // Off this thread's event loop, onto the other's (`from_std` there).
                match stream.into_std() {
                    Ok(stream) => {
                        if let Err(e) = other.send((stream, peer)) {
                            // That thread is gone (it cannot stop, short of a panic).
                            if let Ok(stream) = TcpStream::from_std(e.0.0) {
                                connection(&edge, stream, peer, &tls);
                            }
                        }
                    }
                    Err(e) => eprintln!("edgetrace: proxy: accept: {e}"),
                }
            }
        }
        Connections::Handed(mut receive) => {
            while let Some((stream, peer)) = receive.recv().await {
                match TcpStream::from_std(stream) {
                    Ok(stream) => connection(&edge, stream, peer, &tls),
                    Err(e) => eprintln!("edgetrace: proxy thread {thread}: {e}"),
                }
            }
        }
    }
}

/// Serves one connection in a task of the current thread's runtime.
fn connection(edge: &Arc<Edge>, stream: TcpStream, peer: SocketAddr, tls: &Option<TlsAcceptor>) {
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().unwrap_or(peer);
    let edge = edge.clone();
    let tls = tls.clone();
    tokio::spawn(async move {
        let https = tls.is_some();
        let service = service_fn(move |req| {
            let edge = edge.clone();
            async move { Ok::<_, Infallible>(proxy(&edge, req, peer, local, https).await) }
        });
        let builder = auto::Builder::new(TokioExecutor::new());
        let result = match tls {
            Some(acceptor) => match acceptor.accept(stream).await {
                Ok(s) => builder.serve_connection(TokioIo::new(s), service).await,
                Err(_) => return, // a failed handshake: nothing to answer
            },
            None => {
                builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await
            }
        };
        drop(result); // a client that went away
    });
}

/// `Host` without its port, lowercase; from the URI (HTTP/2) or the `Host` header.
fn host_of(req: &http::Request<Incoming>) -> Option<String> {
    let raw = match req.uri().authority() {
        Some(a) => a.host().to_string(),
        None => {
            let h = req.headers().get(http::header::HOST)?.to_str().ok()?;
            match h.rsplit_once(':') {
                Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host.to_string(),
                _ => h.to_string(),
            }
        }
    };
    let host = raw.trim_end_matches('.').to_ascii_lowercase();
    (!host.is_empty()).then_some(host)
}

fn version(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

/// One proxied request.
async fn proxy(
    edge: &Edge,
    req: http::Request<Incoming>,
    peer: SocketAddr,
    local: SocketAddr,
    https: bool,
) -> http::Response<Body> {
    let Some(host) = host_of(&req) else {
        return text_response(400, "edgetrace: the request has no Host\n".into());
    };
    let site = match edge.sites.for_host(&host).await {
        Ok(Some(site)) => site,
        Ok(None) => {
            return text_response(
                404,
                format!("edgetrace: no zone proxies {host} (no proxied DNS record of that name)\n"),
            );
        }
        Err(e) => {
            eprintln!("edgetrace: proxy: {host}: {e}");
            return text_response(
                500,
                format!("edgetrace: cannot load the configuration of {host}\n"),
            );
        }
    };
    let (parts, body) = req.into_parts();
    let body = if hyper::body::Body::is_end_stream(&body) {
        Vec::new() // most requests (no body): nothing to collect
    } else {
        match Limited::new(body, MAX_BODY).collect().await {
            Ok(b) => b.to_bytes().to_vec(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return text_response(
                    413,
                    format!(
                        "edgetrace: the request body is larger than {} MiB\n",
                        MAX_BODY >> 20
                    ),
                );
            }
            Err(_) => {
                return text_response(400, "edgetrace: the request body was cut short\n".into());
            }
        }
    };
    let mut headers = header_pairs(&parts.headers);
    if !headers.iter().any(|(k, _)| k == "host") {
        // HTTP/2 carries the host in :authority; rules see it as the Host header.
        let authority = parts
            .uri
            .authority()
            .map_or_else(|| host.clone(), |a| a.to_string());
        headers.insert(0, ("host".into(), authority));
    }
    let request = Request {
        method: parts.method.as_str().to_string(),
        https,
        host,
        uri: parts
            .uri
            .path_and_query()
            .map_or_else(|| "/".to_string(), |p| p.as_str().to_string()),
        version: version(parts.version).to_string(),
        headers,
        body,
        client_ip: peer.ip(),
        geo: edge.geo_of(peer.ip()),
        bot_score: None,
        verified_bot: false,
        threat_score: None,
    };
    let handled = edge
        .handle(
            &site,
            request,
            Some(parts.headers),
            local.port(),
            Mode::Proxy,
            RunOptions {
                lean: true,
                ..RunOptions::default()
            },
        )
        .await;
    // Wake-ups. Writing to a socket whose reader sleeps wakes it, and waking a process on an
    // idle CPU costs an interrupt to that CPU, paid by the writer (on a VM, an exit to the
    // hypervisor with interrupts off). Written as soon as each request is ready, the responses
    // reach a client that has just gone back to sleep, one by one; after a yield, every ready
    // request of this thread has got its response first and they go out together (as the
    // requests to origins do, `origin::send`). On bench/proxy.sh the two yields took the
    // kernel time per request from 5.7 to 3.6 µs (nginx's: 3.6) and req/s from 85k to 101k.
    tokio::task::yield_now().await;
    if let Some(e) = &handled.origin_error {
        eprintln!("edgetrace: proxy: {}: {e}", site.host);
    }
    handled
        .response
        .unwrap_or_else(|| text_response(502, "edgetrace: no response\n".into()))
}
