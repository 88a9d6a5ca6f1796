//! Origin connections against real servers on loopback: a keep-alive origin gets one
//! connection for a run of requests; an origin that closes after every response (saying so,
//! or silently once the connection is idle) gets each request on a working connection; a
//! response body dropped before its end does not put its connection back. Against scripted
//! origins: every way a response body is framed, responses that are not HTTP, and bodies
//! that trickle or stop under an idle timeout.

use bytes::Bytes;
use edgetrace_proxy::headers::Headers;
use edgetrace_proxy::origin;
use http_body_util::BodyExt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The origin timeout of these tests' requests: long (none of their origins is slow on
/// purpose; `stalled_origin.rs` tests the timeout).
const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy)]
enum Close {
    /// Keep-alive: answer every request of the connection.
    Never,
    /// `Connection: close` on the response, then close.
    Announced,
    /// Answer one request as if keeping the connection, then close it 20 ms later.
    Silently,
}

/// An origin on 127.0.0.1 answering `hello` (`body_len` bytes of it) to every request;
/// returns its address and a count of accepted connections.
async fn origin(close: Close, body_len: usize) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    // One request: headers only (GET), up to the blank line.
                    if !read_head(&mut stream, &mut buf).await {
                        return;
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    buf.drain(..end);
                    let connection = match close {
                        Close::Announced => "Connection: close\r\n",
                        _ => "",
                    };
                    let body = "hello".repeat(body_len / 5 + 1)[..body_len].to_string();
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{connection}\r\n{body}",
                        body.len()
                    );
                    if stream.write_all(response.as_bytes()).await.is_err() {
                        return;
                    }
                    match close {
                        Close::Never => {}
                        Close::Announced => return,
                        Close::Silently => {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            return;
                        }
                    }
                }
            });
        }
    });
    (address, accepted)
}

/// Reads into `buf` until it holds a request head (up to its blank line); false when the
/// connection ended first.
async fn read_head(stream: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    true
}

fn get(address: SocketAddr) -> http::Request<Bytes> {
    http::Request::builder()
        .uri("/")
        .header("host", address.to_string())
        .body(Bytes::new())
        .unwrap()
}

/// Sends a GET and reads the whole body.
async fn fetch(address: SocketAddr) -> String {
    let response = send(address, get(address)).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn keep_alive_origin_gets_one_connection() {
    let (address, accepted) = origin(Close::Never, 5).await;
    for _ in 0..5 {
        assert_eq!(fetch(address).await, "hello");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn origin_that_closes_gets_each_request_on_a_working_connection() {
    let (address, accepted) = origin(Close::Announced, 5).await;
    for _ in 0..5 {
        assert_eq!(fetch(address).await, "hello");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 5);

    // Closed without a word once idle: the pooled connection is found dead (or the request
    // fails before anything was answered and goes out again on a new one).
    let (address, accepted) = origin(Close::Silently, 5).await;
    for _ in 0..3 {
        assert_eq!(fetch(address).await, "hello");
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "current_thread")]
async fn a_body_dropped_before_its_end_does_not_go_back_to_the_pool() {
    let (address, accepted) = origin(Close::Never, 200_000).await;
    let response = send(address, get(address)).await.unwrap();
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert!(first.data_ref().is_some_and(|d| !d.is_empty()));
    drop(body); // most of the 200 kB unread
    // The next request cannot use that connection (its response is still coming).
    assert_eq!(fetch(address).await.len(), 200_000);
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    // Read to the end, the connection is reused.
    assert_eq!(fetch(address).await.len(), 200_000);
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

/// An origin on 127.0.0.1 that answers the requests of each connection with `responses` in
/// turn, written as they are, then closes the connection; returns its address, a count of
/// accepted connections and the requests received (the raw head and any body bytes).
async fn scripted(
    responses: Vec<&'static [u8]>,
) -> (
    SocketAddr,
    Arc<AtomicUsize>,
    Arc<std::sync::Mutex<Vec<String>>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let received = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (count, seen) = (accepted.clone(), received.clone());
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            let (responses, seen) = (responses.clone(), seen.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                for response in responses {
                    // One request: its head, and as many body bytes as its content-length says.
                    let request = loop {
                        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..end + 4]).to_string();
                            let length: usize = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length: "))
                                .map_or(0, |n| n.trim().parse().unwrap());
                            if buf.len() >= end + 4 + length {
                                let all: Vec<u8> = buf.drain(..end + 4 + length).collect();
                                break String::from_utf8_lossy(&all).to_string();
                            }
                        }
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    seen.lock().unwrap().push(request);
                    if stream.write_all(response).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (address, accepted, received)
}

/// `origin::send` of `request`; the answer as an `http::Response`.
async fn send(
    address: SocketAddr,
    request: http::Request<Bytes>,
) -> Result<http::Response<origin::OriginBody>, String> {
    let target = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let reply = origin::send(
        address,
        request.method(),
        target,
        &Headers::from_map(request.headers()),
        request.body(),
        TIMEOUT,
    )
    .await
    .map_err(|e| {
        assert_eq!(e.status, 502, "{e}");
        e.message
    })?;
    let mut response = http::Response::new(reply.body);
    *response.status_mut() = reply.status;
    *response.headers_mut() = reply.headers.to_map();
    Ok(response)
}

/// Sends `request`; the status, the headers and the body read to its end (or the error that
/// ended it).
async fn exchange(
    address: SocketAddr,
    request: http::Request<Bytes>,
) -> (u16, http::HeaderMap, Result<String, String>) {
    let response = send(address, request).await.unwrap();
    let (parts, body) = response.into_parts();
    // A body whose end is missed would wait for the origin to close: fail instead.
    let body = tokio::time::timeout(Duration::from_secs(5), body.collect())
        .await
        .expect("the body ends within 5 s")
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).to_string())
        .map_err(|e| e.to_string());
    (parts.status.as_u16(), parts.headers, body)
}

#[tokio::test(flavor = "current_thread")]
async fn chunked_bodies_are_decoded_and_their_connection_reused() {
    let response: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n\
        5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n";
    let (address, accepted, _) = scripted(vec![response, response]).await;
    for _ in 0..2 {
        let (status, headers, body) = exchange(address, get(address)).await;
        assert_eq!(status, 200);
        assert_eq!(headers["x-a"], "1");
        assert_eq!(body.unwrap(), "hello, world");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn a_body_without_length_ends_with_the_connection() {
    let (address, accepted, _) = scripted(vec![b"HTTP/1.1 200 OK\r\n\r\nuntil the end"]).await;
    let (status, _, body) = exchange(address, get(address)).await;
    assert_eq!((status, body.unwrap().as_str()), (200, "until the end"));
    // Such a body ends only when the origin closes: the next request has a connection of
    // its own.
    let (_, _, body) = exchange(address, get(address)).await;
    assert_eq!(body.unwrap(), "until the end");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "current_thread")]
async fn head_204_304_and_interim_responses_have_no_body() {
    let (address, accepted, _) = scripted(vec![
        b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    ])
    .await;
    let mut head = get(address);
    *head.method_mut() = http::Method::HEAD;
    let (status, headers, body) = exchange(address, head).await;
    assert_eq!((status, body.unwrap().as_str()), (200, ""));
    assert_eq!(headers["content-length"], "11");
    let (status, _, body) = exchange(address, get(address)).await;
    assert_eq!((status, body.unwrap().as_str()), (204, ""));
    let (status, _, body) = exchange(address, get(address)).await;
    assert_eq!((status, body.unwrap().as_str()), (304, ""));
    // All on one connection: each response ended where its framing said.
    let (status, _, body) = exchange(address, get(address)).await;
    assert_eq!((status, body.unwrap().as_str()), (200, "ok"));
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn a_connection_the_origin_asked_to_close_is_not_used_again() {
    // The origin would answer a second request on it: only the pool can tell them apart.
    let ok: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    for first in [
        &b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"[..],
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
    ] {
        let (address, accepted, _) = scripted(vec![first, ok]).await;
        for _ in 0..2 {
            let (status, _, body) = exchange(address, get(address)).await;
            assert_eq!((status, body.unwrap().as_str()), (200, "ok"));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }
    // HTTP/1.0 saying keep-alive is kept.
    let (address, accepted, _) = scripted(vec![
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
        ok,
    ])
    .await;
    for _ in 0..2 {
        assert_eq!(exchange(address, get(address)).await.2.unwrap(), "ok");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn a_target_unfit_for_a_request_line_goes_out_as_the_root() {
    let ok: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    let (address, _, received) = scripted(vec![ok, ok]).await;
    let headers = Headers::from_map(get(address).headers());
    for target in ["/a b\r\nx-injected: 1", "/fine?q=1"] {
        let response = origin::send(address, &http::Method::GET, target, &headers, b"", TIMEOUT)
            .await
            .unwrap();
        assert_eq!(response.status, 200);
        drop(response);
    }
    let received = received.lock().unwrap().clone();
    assert!(
        received[0].starts_with("GET / HTTP/1.1\r\n"),
        "{received:?}"
    );
    assert!(!received[0].contains("x-injected"), "{received:?}");
    assert!(
        received[1].starts_with("GET /fine?q=1 HTTP/1.1\r\n"),
        "{received:?}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_request_body_goes_with_its_length() {
    let (address, _, received) =
        scripted(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]).await;
    let mut post = get(address);
    *post.method_mut() = http::Method::POST;
    *post.body_mut() = Bytes::from_static(b"a=1&b=2");
    *post.uri_mut() = http::Uri::from_static("/form?x=y");
    let (status, _, _) = exchange(address, post).await;
    assert_eq!(status, 200);
    let request = received.lock().unwrap()[0].clone();
    assert!(
        request.starts_with("POST /form?x=y HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(request.contains("\r\ncontent-length: 7\r\n"), "{request}");
    assert!(request.ends_with("\r\n\r\na=1&b=2"), "{request}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_body_cut_short_or_badly_chunked_is_an_error() {
    let (address, _, _) = scripted(vec![
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this",
    ])
    .await;
    let (_, _, body) = exchange(address, get(address)).await;
    let e = body.unwrap_err();
    assert!(e.contains("closed the connection before the end"), "{e}");
    let (address, _, _) = scripted(vec![
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ])
    .await;
    let (_, _, body) = exchange(address, get(address)).await;
    assert!(body.unwrap_err().contains("invalid chunk size"));
}

#[tokio::test(flavor = "current_thread")]
async fn responses_that_are_not_http_are_errors_that_say_why() {
    let cases: [(&'static [u8], &str); 5] = [
        (b"SSH-2.0-OpenSSH\r\n\r\n", "not valid HTTP/1.1"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello",
            "content-length is not a number",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
            "two different content-lengths",
        ),
        (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
            "upgrades are not proxied",
        ),
        (b"", "closed before a response"),
    ];
    for (response, message) in cases {
        let (address, _, _) = scripted(vec![response]).await;
        let e = send(address, get(address)).await.err().unwrap();
        assert!(e.contains(message), "{e:?} should say {message:?}");
    }
    // A head that never ends is cut off at the limit.
    let huge: &'static [u8] = Box::leak(
        format!(
            "HTTP/1.1 200 OK\r\nX-Big: {}\r\n",
            "a".repeat(origin::MAX_HEAD)
        )
        .into_bytes()
        .into_boxed_slice(),
    );
    let (address, _, _) = scripted(vec![huge]).await;
    let e = send(address, get(address)).await.err().unwrap();
    assert!(e.contains("longer than 64 KiB"), "{e}");
}

/// An origin that answers the first request with `head` and then `pieces` of body, each
/// after `gap`, and keeps the connection open (silent) afterwards; returns its address.
async fn trickling(head: &'static [u8], pieces: Vec<&'static [u8]>, gap: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        if !read_head(&mut stream, &mut buf).await || stream.write_all(head).await.is_err() {
            return;
        }
        for piece in pieces {
            tokio::time::sleep(gap).await;
            if stream.write_all(piece).await.is_err() {
                return;
            }
        }
        // Silent from here on, the connection open until the test is over.
        let _ = stream.read(&mut [0u8; 64]).await;
    });
    address
}

#[tokio::test(flavor = "current_thread")]
async fn a_body_that_goes_silent_fails_after_the_idle_timeout_and_one_that_trickles_does_not() {
    let head: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc";
    // Two more bytes every 150 ms, under a 400 ms idle timeout: the whole body arrives,
    // although it takes longer than the timeout (the timer starts again with each piece).
    let address = trickling(head, vec![b"de", b"fg", b"hi"], Duration::from_millis(150)).await;
    let started = std::time::Instant::now();
    let body = body_under_idle_timeout(address, Duration::from_millis(400))
        .await
        .expect("a trickling body is not cut off");
    assert_eq!(body, "abcdefghi");
    assert!(started.elapsed() >= Duration::from_millis(440));

    // Three bytes, then nothing: an error once the origin has been silent for 200 ms.
    let address = trickling(head, vec![b"def"], Duration::from_millis(50)).await;
    let started = std::time::Instant::now();
    let error = body_under_idle_timeout(address, Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("sent nothing for 0.2 s"),
        "{error}"
    );
    assert!(started.elapsed() >= Duration::from_millis(200));
}

/// A GET's response body from `address`, read to its end under an idle timeout of `idle`
/// (and, for the test's sake, within 5 s in all).
async fn body_under_idle_timeout(
    address: SocketAddr,
    idle: Duration,
) -> Result<Bytes, std::io::Error> {
    let mut response = send(address, get(address)).await.unwrap();
    response.body_mut().idle_timeout(idle);
    tokio::time::timeout(Duration::from_secs(5), response.into_body().collect())
        .await
        .expect("the body ends or fails within 5 s")
        .map(|b| b.to_bytes())
}
