//! The proxy's threads share its connections evenly: with 2 threads, clients are served by
//! each thread in turn, even when they all connect at once (the first thread accepts and hands
//! every other connection to the second). Seen from a real origin on loopback: each thread
//! keeps its own origin connections (a per-thread pool), so clients making their requests one
//! at a time reach the origin over exactly 2 connections, one per thread: 1 if one thread
//! served them all, more if a connection handed over was not served by the thread it went to.

use bytes::Bytes;
use edgetrace_proxy::{Edge, server};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

mod common;

/// A keep-alive origin on 127.0.0.1 answering `ok`; its address and a count of the
/// connections it accepted.
async fn origin() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(
                TokioIo::new(stream),
                service_fn(|_| async {
                    Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from("ok"))))
                }),
            ));
        }
    });
    (address, accepted)
}

/// One keep-alive request on `stream`; the response's status line and body.
async fn get(stream: &mut TcpStream) -> (String, String) {
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: www.shop.test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the proxy closed the connection: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no content-length: {head}"));
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the proxy closed the connection mid-body");
        buf.extend_from_slice(&chunk[..n]);
    }
    let status = head.lines().next().unwrap_or_default().to_string();
    let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).to_string();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_threads_serve_a_burst_of_clients_in_turn_each_with_its_own_origin_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _, _) = common::shop(dir.path(), "127.0.0.1").await;
    let (origin, accepted) = origin().await;
    let mut edge = Edge::new(store);
    edge.origin_port = Some(origin.port());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy = listener.local_addr().unwrap();
    server::spawn(Arc::new(edge), listener, None, 2).unwrap();

    // 8 clients connect at once (as a load generator's do), then make their requests one
    // after the other, a few each, keeping their connections open.
    let mut clients = Vec::new();
    for _ in 0..8 {
        clients.push(TcpStream::connect(proxy).await.unwrap());
    }
    for request in 0..3 {
        for (client, stream) in clients.iter_mut().enumerate() {
            let (status, body) = get(stream).await;
            assert_eq!(
                (status.as_str(), body.as_str()),
                ("HTTP/1.1 200 OK", "ok"),
                "client {client}, request {request}"
            );
        }
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "8 clients over 2 threads, one request at a time: each thread served 4 of them over \
         one origin connection of its own"
    );
}
