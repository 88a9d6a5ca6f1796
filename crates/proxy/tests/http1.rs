//! The proxy's HTTP/1.1 server side over raw TCP: pipelining, request body framing
//! (`Content-Length`, chunked, `Expect: 100-continue`), keep-alive (HTTP/1.0 and 1.1),
//! `HEAD`, response framing (length, chunked, close-delimited), and the refusals that close
//! the connection; and the timeouts of a client connection (a head or body not coming, a
//! TLS handshake that stalls, keep-alive for HTTP/1.1 and HTTP/2). A real proxy and a real
//! origin, both on loopback; the origin echoes what it received (method, target, the headers
//! it cares about, the body).

use edgetrace_proxy::{Edge, server};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

mod common;

/// The origin: answers each request on a connection with `METHOD TARGET\nbody=BODY`, framed by
/// a length; `/chunked…` in two chunks instead, without a length.
async fn origin(listener: TcpListener) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move {
            let mut buf = Vec::new();
            loop {
                let (method, target, length, used) = loop {
                    let mut headers = [httparse::EMPTY_HEADER; 64];
                    let mut req = httparse::Request::new(&mut headers);
                    if let Ok(httparse::Status::Complete(used)) = req.parse(&buf) {
                        let length = req
                            .headers
                            .iter()
                            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                            .map_or(0, |h| {
                                std::str::from_utf8(h.value).unwrap().parse().unwrap()
                            });
                        let (m, t) = (req.method.unwrap(), req.path.unwrap());
                        break (m.to_string(), t.to_string(), length, used);
                    }
                    if !fill(&mut stream, &mut buf).await {
                        return;
                    }
                };
                while buf.len() < used + length {
                    if !fill(&mut stream, &mut buf).await {
                        return;
                    }
                }
                let body = String::from_utf8_lossy(&buf[used..used + length]).into_owned();
                buf.drain(..used + length);
                let text = format!("{method} {target}\nbody={body}");
                let response = if target.starts_with("/chunked") {
                    let (a, b) = text.split_at(text.len() / 2);
                    format!(
                        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
                        a.len(),
                        b.len()
                    )
                } else if method == "HEAD" {
                    format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", text.len())
                } else {
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{text}",
                        text.len()
                    )
                };
                if stream.write_all(response.as_bytes()).await.is_err() {
                    return;
                }
            }
        });
    }
}

async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

/// A proxy for `www.shop.test` in front of a fresh origin, both on loopback.
async fn proxy(dir: &std::path::Path) -> SocketAddr {
    proxy_with(
        dir,
        edgetrace_proxy::DEFAULT_CLIENT_TIMEOUT,
        edgetrace_proxy::DEFAULT_KEEP_ALIVE_TIMEOUT,
    )
    .await
}

/// [`proxy`] with a client timeout and a keep-alive timeout.
async fn proxy_with(
    dir: &std::path::Path,
    client_timeout: Duration,
    keep_alive_timeout: Duration,
) -> SocketAddr {
    let origin_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin_port = origin_listener.local_addr().unwrap().port();
    tokio::spawn(origin(origin_listener));
    let (store, _, _) = common::shop(dir, "127.0.0.1").await;
    let mut edge = Edge::new(store);
    edge.origin_port = Some(origin_port);
    edge.client_timeout = client_timeout;
    edge.keep_alive_timeout = keep_alive_timeout;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    server::spawn(Arc::new(edge), listener, None, 1).unwrap();
    address
}

/// A response as the client read it.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A client connection: what it sent and read.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    async fn connect(address: SocketAddr) -> Client {
        Client {
            stream: TcpStream::connect(address).await.unwrap(),
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    async fn fill(&mut self) -> bool {
        tokio::time::timeout(
            Duration::from_secs(5),
            fill(&mut self.stream, &mut self.buf),
        )
        .await
        .expect("the proxy answers within 5 s")
    }

    /// The next response, its body framed as its headers say (none for `head_only`).
    async fn response(&mut self, head_only: bool) -> Response {
        let (status, headers, used) = loop {
            let mut slots = [httparse::EMPTY_HEADER; 64];
            let mut r = httparse::Response::new(&mut slots);
            if let httparse::Status::Complete(used) = r.parse(&self.buf).unwrap() {
                let headers = r
                    .headers
                    .iter()
                    .map(|h| {
                        let v = String::from_utf8(h.value.to_vec()).unwrap();
                        (h.name.to_string(), v)
                    })
                    .collect();
                break (r.code.unwrap(), headers, used);
            }
            assert!(self.fill().await, "closed before a response head");
        };
        self.buf.drain(..used);
        let mut response = Response {
            status,
            headers,
            body: String::new(),
        };
        if head_only || status == 100 {
            return response;
        }
        let body = if let Some(n) = response.header("content-length") {
            let n: usize = n.parse().unwrap();
            while self.buf.len() < n {
                assert!(self.fill().await, "closed in the middle of a body");
            }
            self.buf.drain(..n).collect::<Vec<u8>>()
        } else if response.header("transfer-encoding") == Some("chunked") {
            let mut body = Vec::new();
            loop {
                while !self.buf.windows(2).any(|w| w == b"\r\n") {
                    assert!(self.fill().await, "closed in the middle of a chunked body");
                }
                let line = self.buf.windows(2).position(|w| w == b"\r\n").unwrap();
                let size = std::str::from_utf8(&self.buf[..line]).unwrap();
                let size = usize::from_str_radix(size, 16).unwrap();
                while self.buf.len() < line + 2 + size + 2 {
                    assert!(self.fill().await, "closed in the middle of a chunked body");
                }
                body.extend_from_slice(&self.buf[line + 2..line + 2 + size]);
                self.buf.drain(..line + 2 + size + 2);
                if size == 0 {
                    break body;
                }
            }
        } else {
            while self.fill().await {} // until the proxy closes
            std::mem::take(&mut self.buf)
        };
        response.body = String::from_utf8(body).unwrap();
        response
    }

    /// Whether the proxy closed the connection (nothing more to read).
    async fn closed(&mut self) -> bool {
        self.buf.is_empty() && !self.fill().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let dir = tempfile::tempdir().unwrap();
    let proxy = proxy(dir.path()).await;
    let mut client = Client::connect(proxy).await;
    client
        .send(
            b"GET /a HTTP/1.1\r\nHost: www.shop.test\r\n\r\n\
              POST /b HTTP/1.1\r\nHost: www.shop.test\r\nContent-Length: 3\r\n\r\nxyz\
              GET /chunked HTTP/1.1\r\nHost: www.shop.test\r\n\r\n",
        )
        .await;
    let a = client.response(false).await;
    assert_eq!((a.status, a.body.as_str()), (200, "GET /a\nbody="));
    assert!(a.header("date").is_some(), "{a:?}");
    let b = client.response(false).await;
    assert_eq!(b.body, "POST /b\nbody=xyz");
    // No length from the origin: chunked to an HTTP/1.1 client, and the connection goes on.
    let c = client.response(false).await;
    assert_eq!(c.header("transfer-encoding"), Some("chunked"));
    assert_eq!(c.body, "GET /chunked\nbody=");
    client
        .send(b"HEAD /d HTTP/1.1\r\nHost: www.shop.test\r\n\r\nGET /e HTTP/1.1\r\nHost: www.shop.test\r\nConnection: close\r\n\r\n")
        .await;
    // HEAD: a head only; the next response is read right after it.
    let d = client.response(true).await;
    assert_eq!(d.status, 200);
    let e = client.response(false).await;
    assert_eq!(e.body, "GET /e\nbody=");
    assert_eq!(e.header("connection"), Some("close"));
    assert!(client.closed().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_and_expect_continue_bodies_reach_the_origin_whole() {
    let dir = tempfile::tempdir().unwrap();
    let proxy = proxy(dir.path()).await;
    let mut client = Client::connect(proxy).await;
    // A chunked body in pieces, with an extension and a trailer.
    client
        .send(b"POST /up HTTP/1.1\r\nHost: www.shop.test\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhel")
        .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    client
        .send(b"lo\r\n6\r\n world\r\n0\r\nx-t: 1\r\n\r\n")
        .await;
    let r = client.response(false).await;
    assert_eq!(r.body, "POST /up\nbody=hello world");
    // Expect: 100-continue: the body is sent only after the proxy says to go on.
    client
        .send(b"PUT /x HTTP/1.1\r\nHost: www.shop.test\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        .await;
    let go_on = client.response(false).await;
    assert_eq!(go_on.status, 100);
    client.send(b"data").await;
    let r = client.response(false).await;
    assert_eq!(r.body, "PUT /x\nbody=data");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http10_connections_close_unless_kept_alive() {
    let dir = tempfile::tempdir().unwrap();
    let proxy = proxy(dir.path()).await;
    let mut client = Client::connect(proxy).await;
    client
        .send(b"GET /k HTTP/1.0\r\nHost: www.shop.test\r\nConnection: keep-alive\r\n\r\n")
        .await;
    let r = client.response(false).await;
    assert_eq!(r.header("connection"), Some("keep-alive"));
    // No length for an HTTP/1.0 client: the body ends when the connection does.
    client
        .send(b"GET /chunked HTTP/1.0\r\nHost: www.shop.test\r\nConnection: keep-alive\r\n\r\n")
        .await;
    let r = client.response(false).await;
    assert_eq!(r.header("transfer-encoding"), None);
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(r.body, "GET /chunked\nbody=");

    let mut client = Client::connect(proxy).await;
    client
        .send(b"GET /once HTTP/1.0\r\nHost: www.shop.test\r\n\r\n")
        .await;
    let r = client.response(false).await;
    assert_eq!(r.body, "GET /once\nbody=");
    assert_eq!(r.header("connection"), Some("close"));
    assert!(client.closed().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_cannot_be_framed_are_refused_and_the_connection_closed() {
    let dir = tempfile::tempdir().unwrap();
    let proxy = proxy(dir.path()).await;
    let many_headers: String = (0..101).map(|i| format!("x-{i}: 1\r\n")).collect();
    let many_headers = format!("GET / HTTP/1.1\r\nHost: www.shop.test\r\n{many_headers}\r\n");
    let long_head = format!(
        "GET / HTTP/1.1\r\nHost: www.shop.test\r\nx-long: {}\r\n\r\n",
        "a".repeat(70 * 1024)
    );
    let cases: [(&[u8], u16, &str); 12] = [
        (
            b"GET / HTTP/1.1\r\nHost: www.shop.test\r\nHost: other.test\r\n\r\n",
            400,
            "exactly one Host header",
        ),
        (b"GET / HTTP/1.1\r\n\r\n", 400, "exactly one Host header"),
        (
            b"POST / HTTP/1.1\r\nHost: www.shop.test\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
            "both a content-length and a transfer-encoding",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: www.shop.test\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            400,
            "two different content-lengths",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: www.shop.test\r\nContent-Length: 3x\r\n\r\nabc",
            400,
            "content-length is not a number",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: www.shop.test\r\nTransfer-Encoding: gzip\r\n\r\n",
            501,
            "\"gzip\" is not supported",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: www.shop.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            400,
            "invalid chunk size",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: www.shop.test\r\nContent-Length: 9999999999\r\n\r\n",
            413,
            "larger than 8 MiB",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: www.shop.test\r\nExpect: teapot\r\n\r\n",
            417,
            "100-continue",
        ),
        (b"GET / HTTP/3.0\r\nHost: www.shop.test\r\n\r\n", 505, "HTTP/1.0 and HTTP/1.1"),
        (many_headers.as_bytes(), 431, "more than 100 headers"),
        (long_head.as_bytes(), 431, "longer than 64 KiB"),
    ];
    for (request, status, message) in cases {
        let mut client = Client::connect(proxy).await;
        client.send(request).await;
        let r = client.response(false).await;
        assert_eq!(
            r.status,
            status,
            "{}: {r:?}",
            String::from_utf8_lossy(request)
        );
        assert!(r.body.contains(message), "{r:?}");
        assert_eq!(r.header("connection"), Some("close"));
    }
    // A body refused unread: the answer arrives at once, while the client is still sending.
    let mut client = Client::connect(proxy).await;
    let head = b"PUT / HTTP/1.1\r\nHost: www.shop.test\r\nContent-Length: 9999999999\r\n\r\n";
    let _ = client
        .stream
        .write_all(&[head.as_slice(), &vec![b'x'; 1 << 20]].concat())
        .await;
    let r = client.response(false).await;
    assert_eq!(r.status, 413, "{r:?}");
    // Not HTTP at all.
    let mut client = Client::connect(proxy).await;
    client.send(b"hello there\r\n\r\n").await;
    let r = client.response(false).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("not valid HTTP/1.1"), "{r:?}");
    // The proxy serves on after all of them.
    let mut client = Client::connect(proxy).await;
    client
        .send(b"GET /after HTTP/1.1\r\nHost: www.shop.test\r\n\r\n")
        .await;
    assert_eq!(client.response(false).await.body, "GET /after\nbody=");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_silent_in_the_middle_of_a_request_gets_a_408() {
    let dir = tempfile::tempdir().unwrap();
    let proxy = proxy_with(
        dir.path(),
        Duration::from_millis(200),
        edgetrace_proxy::DEFAULT_KEEP_ALIVE_TIMEOUT,
    )
    .await;
    for (what, partial) in [
        ("head", b"GET / HTTP/1.1\r\nHost: www.sh".as_slice()),
        (
            "body",
            b"POST / HTTP/1.1\r\nHost: www.shop.test\r\nContent-Length: 10\r\n\r\nabc",
        ),
    ] {
        let mut client = Client::connect(proxy).await;
        let started = std::time::Instant::now();
        client.send(partial).await;
        let r = client.response(false).await;
        assert_eq!(r.status, 408, "{what}: {r:?}");
        assert!(r.body.contains(&format!("request {what}")), "{r:?}");
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert!(client.closed().await);
    }
    // A head trickled in a few bytes at a time, each well within the client timeout: the
    // whole head is due within the client timeout of its first bytes, so the 408 comes while
    // the client is still sending (it would take 10 s to send it all).
    let mut client = Client::connect(proxy).await;
    let started = std::time::Instant::now();
    let mut head = b"GET / HTTP/1.1\r\nHost: www.shop.test\r\n".to_vec();
    head.extend(std::iter::repeat_n(b"X-Slow: 1\r\n".as_slice(), 40).flatten());
    for piece in head.chunks(2) {
        if client.stream.write_all(piece).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut answer = [0u8; 4096];
        if let Ok(n @ 1..) = client.stream.try_read(&mut answer) {
            client.buf.extend_from_slice(&answer[..n]);
            break;
        }
    }
    let took = started.elapsed();
    let r = client.response(false).await;
    assert_eq!(r.status, 408, "{r:?}");
    assert!(r.body.contains("whole request head within 0.2 s"), "{r:?}");
    assert!(took < Duration::from_secs(2), "the 408 came after {took:?}");
    // Idle between requests is not the client timeout's business (the keep-alive timeout's,
    // 75 s here).
    let mut client = Client::connect(proxy).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    client
        .send(b"GET /late HTTP/1.1\r\nHost: www.shop.test\r\n\r\n")
        .await;
    assert_eq!(client.response(false).await.body, "GET /late\nbody=");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_idle_for_the_keep_alive_timeout_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let keep_alive = Duration::from_millis(400);
    let proxy = proxy_with(
        dir.path(),
        edgetrace_proxy::DEFAULT_CLIENT_TIMEOUT,
        keep_alive,
    )
    .await;
    let request = b"GET /a HTTP/1.1\r\nHost: www.shop.test\r\n\r\n";

    // A connection that never sends a request, and one idle after its request: closed after
    // between 1 and 1¼ keep-alive timeouts (the check runs every quarter), plus scheduling.
    let mut silent = Client::connect(proxy).await;
    let started = std::time::Instant::now();
    let mut served = Client::connect(proxy).await;
    served.send(request).await;
    assert_eq!(served.response(false).await.status, 200);
    let answered = std::time::Instant::now();
    assert!(silent.closed().await);
    let waited = started.elapsed();
    assert!(waited >= keep_alive, "closed after {waited:?}");
    assert!(waited < keep_alive * 3, "closed after {waited:?}");
    assert!(served.closed().await);
    let waited = answered.elapsed();
    assert!(waited >= keep_alive, "closed after {waited:?}");
    assert!(waited < keep_alive * 3, "closed after {waited:?}");

    // A connection with a request every half timeout stays open for several timeouts.
    let mut busy = Client::connect(proxy).await;
    for _ in 0..8 {
        busy.send(request).await;
        assert_eq!(busy.response(false).await.status, 200);
        tokio::time::sleep(keep_alive / 2).await;
    }
    busy.send(request).await;
    assert_eq!(busy.response(false).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_handshake_that_stalls_is_dropped_after_the_client_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=www.shop.test", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (store, _, _) = common::shop(dir.path(), "127.0.0.1").await;
    let mut edge = Edge::new(store);
    let timeout = Duration::from_millis(300);
    edge.client_timeout = timeout;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy = listener.local_addr().unwrap();
    let tls = server::tls_acceptor(&cert, &key).unwrap();
    server::spawn(Arc::new(edge), listener, Some(tls), 1).unwrap();

    // Nothing sent, and the first bytes of a ClientHello (a record header announcing more):
    // the proxy lets go of both after the client timeout.
    for sent in [&b""[..], b"\x16\x03\x01\x02\x00"] {
        let mut client = Client::connect(proxy).await;
        let started = std::time::Instant::now();
        client.send(sent).await;
        assert!(client.closed().await, "{sent:?}");
        let waited = started.elapsed();
        assert!(waited >= timeout, "{sent:?}: closed after {waited:?}");
        assert!(waited < timeout * 5, "{sent:?}: closed after {waited:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http2_connection_is_shut_down_after_the_keep_alive_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let keep_alive = Duration::from_millis(400);
    let proxy = proxy_with(
        dir.path(),
        edgetrace_proxy::DEFAULT_CLIENT_TIMEOUT,
        keep_alive,
    )
    .await;
    // HTTP/2 with prior knowledge (h2c), as `curl --http2-prior-knowledge`.
    let stream = TcpStream::connect(proxy).await.unwrap();
    let (client, connection) = h2::client::handshake(stream).await.unwrap();
    let closed = tokio::spawn(async move {
        let _ = connection.await;
        std::time::Instant::now()
    });
    let get = |mut client: h2::client::SendRequest<bytes::Bytes>| async move {
        let request = http::Request::get("http://www.shop.test/a")
            .body(())
            .unwrap();
        let (response, _) = client.send_request(request, true).unwrap();
        let response = response.await.unwrap();
        let status = response.status();
        let mut body = response.into_body();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.unwrap();
            let _ = body.flow_control().release_capacity(chunk.len());
        }
        status
    };
    // A request every half timeout: the connection stays open over several timeouts.
    for _ in 0..6 {
        let ready = client.clone().ready().await.unwrap();
        assert_eq!(get(ready).await, 200);
        tokio::time::sleep(keep_alive / 2).await;
    }
    let ready = client.clone().ready().await.unwrap();
    assert_eq!(get(ready).await, 200);
    let answered = std::time::Instant::now();
    // Then idle: shut down after between 1 and 1¼ timeouts (plus scheduling).
    let closed = tokio::time::timeout(Duration::from_secs(5), closed)
        .await
        .expect("the proxy shuts the idle connection down within 5 s")
        .unwrap();
    let waited = closed - answered;
    assert!(waited >= keep_alive, "shut down after {waited:?}");
    assert!(waited < keep_alive * 3, "shut down after {waited:?}");
}
