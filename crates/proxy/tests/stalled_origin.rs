//! The origin timeout: an origin that does not answer a request gets the client a 504 once
//! it has been silent that long, request after request; one that sends its head and part of
//! the body, then nothing, has the client's response cut off (the connection closed after
//! the part that came), rather than holding the client for as long as the origin likes.
//! Real proxy, real origin socket, both on loopback.

use edgetrace_proxy::{Edge, server};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_the_origin_stops_sending_is_cut_off_after_the_origin_timeout() {
    // The origin: reads a request head, answers with 3 of 9 bytes of body, then keeps the
    // connection open without a word.
    let origin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin_port = origin.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut stream, _) = origin.accept().await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc")
            .await;
        let _ = stream.read(&mut chunk).await; // silent until the proxy lets go
    });

    let dir = tempfile::tempdir().unwrap();
    let (store, _, _) = common::shop(dir.path(), "127.0.0.1").await;
    let mut edge = Edge::new(store);
    edge.origin_port = Some(origin_port);
    edge.origin_timeout = Duration::from_millis(300);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy = listener.local_addr().unwrap();
    server::spawn(Arc::new(edge), listener, None, 1).unwrap();

    let mut client = TcpStream::connect(proxy).await.unwrap();
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: www.shop.test\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    // Until the proxy closes the connection (or resets it); a proxy that waited on the origin
    // would leave this read pending past the 5 s.
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match client.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .expect("the proxy cuts the response off within 5 s");
    let received = String::from_utf8_lossy(&received);
    assert!(received.starts_with("HTTP/1.1 200 OK\r\n"), "{received}");
    assert!(received.ends_with("\r\n\r\nabc"), "{received}");
    assert!(started.elapsed() >= Duration::from_millis(300));
}

/// Sends `GET path` on a connection of its own; the status and how long the answer took.
async fn get(proxy: std::net::SocketAddr, path: &str) -> (String, Duration) {
    let started = Instant::now();
    let mut client = TcpStream::connect(proxy).await.unwrap();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: www.shop.test\r\nConnection: close\r\n\r\n");
    client.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut received))
        .await
        .expect("the proxy answers within 5 s")
        .unwrap();
    let received = String::from_utf8_lossy(&received).to_string();
    let status = received.lines().next().unwrap_or_default().to_string();
    (status, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_that_does_not_answer_gets_a_504_after_the_origin_timeout_every_time() {
    // The origin answers `/fast` at once and never answers `/silent` (the connection stays
    // open), request after request on each connection.
    let origin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin_port = origin.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = origin.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    buf.drain(..end);
                    if head.starts_with("GET /silent") {
                        let _ = stream.read(&mut chunk).await; // until the proxy lets go
                        return;
                    }
                    let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                    if stream.write_all(ok).await.is_err() {
                        return;
                    }
                }
            });
        }
    });

    let dir = tempfile::tempdir().unwrap();
    let (store, _, _) = common::shop(dir.path(), "127.0.0.1").await;
    let mut edge = Edge::new(store);
    edge.origin_port = Some(origin_port);
    let timeout = Duration::from_millis(300);
    edge.origin_timeout = timeout;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy = listener.local_addr().unwrap();
    server::spawn(Arc::new(edge), listener, None, 1).unwrap();

    let (status, _) = get(proxy, "/fast").await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    // A while without requests: nothing left over from the first one fires later.
    tokio::time::sleep(timeout + Duration::from_millis(200)).await;
    for path in ["/silent", "/fast", "/silent", "/silent", "/fast"] {
        let (status, took) = get(proxy, path).await;
        if path == "/fast" {
            assert!(status.starts_with("HTTP/1.1 200"), "{path}: {status}");
            assert!(took < timeout, "{path} took {took:?}");
        } else {
            assert!(status.starts_with("HTTP/1.1 504"), "{path}: {status}");
            assert!(took >= timeout, "{path}: a 504 after {took:?}");
            assert!(took < timeout * 5, "{path}: a 504 after {took:?}");
        }
    }
    // A request on a pooled connection soon after the last one there: the connection's timer
    // (set for that one's deadline, a little earlier than this one's) may go off first, and
    // the 504 still comes only at this request's deadline.
    for _ in 0..2 {
        let (status, _) = get(proxy, "/fast").await;
        assert!(status.starts_with("HTTP/1.1 200"), "/fast: {status}");
        tokio::time::sleep(timeout / 3).await;
        let (status, took) = get(proxy, "/silent").await;
        assert!(status.starts_with("HTTP/1.1 504"), "/silent: {status}");
        assert!(
            took >= timeout,
            "/silent soon after /fast: a 504 after {took:?}"
        );
    }
}
