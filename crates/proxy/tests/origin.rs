//! Origin connections against real servers on loopback: a keep-alive origin gets one
//! connection for a run of requests; an origin that closes after every response (saying so,
//! or silently once the connection is idle) gets each request on a working connection; a
//! response body dropped before its end does not put its connection back.

use bytes::Bytes;
use edgetrace_proxy::origin;
use http_body_util::{BodyExt, Full};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

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
                let mut chunk = [0u8; 4096];
                loop {
                    // One request: headers only (GET), up to the blank line.
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
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

fn get(address: SocketAddr) -> impl Fn() -> http::Request<Full<Bytes>> {
    move || {
        http::Request::builder()
            .uri("/")
            .header("host", address.to_string())
            .body(Full::new(Bytes::new()))
            .unwrap()
    }
}

/// Sends a GET and reads the whole body.
async fn fetch(address: SocketAddr) -> String {
    let response = origin::send(address, get(address)(), get(address))
        .await
        .unwrap();
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
    let response = origin::send(address, get(address)(), get(address))
        .await
        .unwrap();
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
