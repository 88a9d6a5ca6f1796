//! The proxy's threads share its connections evenly: with 2 threads, clients are served by
//! each thread in turn, even when they all connect at once (the first thread accepts and hands
//! every other connection to the second). Seen from a real origin on loopback: each thread
//! keeps its own origin connections (a per-thread pool), so clients making their requests one
//! at a time reach the origin over one connection per thread, and the clients that came over
//! one origin connection are one thread's: two groups of 4 of the 8 clients. (When the
//! threads all accepted from the listener, this failed 8 runs of 8: one thread took 8, 7 or 5
//! of the clients.)

use bytes::Bytes;
use edgetrace_proxy::{Edge, server};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

mod common;

/// What the origin saw: for each request, its path and the number of the origin connection
/// it came over (in the order the origin accepted them).
type Seen = Arc<Mutex<Vec<(String, usize)>>>;

/// A keep-alive origin on 127.0.0.1 answering `ok`; its address and what it saw.
async fn origin() -> (SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let record = seen.clone();
    tokio::spawn(async move {
        let mut accepted = 0;
        while let Ok((stream, _)) = listener.accept().await {
            let (record, connection) = (record.clone(), accepted);
            accepted += 1;
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(
                TokioIo::new(stream),
                service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let path = req.uri().path().to_string();
                    record.lock().unwrap().push((path, connection));
                    async { Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from("ok")))) }
                }),
            ));
        }
    });
    (address, seen)
}

/// One keep-alive request for `path` on `stream`; the response's status line and body.
async fn get(stream: &mut TcpStream, path: &str) -> (String, String) {
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: www.shop.test\r\n\r\n").as_bytes())
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
    let (origin, seen) = origin().await;
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
            let (status, body) = get(stream, &format!("/client-{client}")).await;
            assert_eq!(
                (status.as_str(), body.as_str()),
                ("HTTP/1.1 200 OK", "ok"),
                "client {client}, request {request}"
            );
        }
    }
    // A thread sends its requests, one at a time, over the one origin connection of its pool;
    // so the clients that came over one origin connection are the clients of one thread.
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 24);
    let mut by_connection: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    for (path, connection) in seen {
        by_connection.entry(connection).or_default().insert(path);
    }
    let sizes: Vec<usize> = by_connection.values().map(BTreeSet::len).collect();
    assert_eq!(
        sizes,
        [4, 4],
        "8 clients over 2 threads: each thread serves 4 of them, over an origin connection of \
         its own ({by_connection:?})"
    );
}
