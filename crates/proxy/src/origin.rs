//! Connections to origins: HTTP/1.1 keep-alive connections made with hyper's connection API
//! and kept per thread.
//!
//! Each proxy thread runs its own runtime ([`crate::server`]), so a connection made by one
//! thread is only ever used by it: taking and returning one is a thread-local `Vec` push and
//! pop, with no lock and no cross-thread wake-up. (hyper-util's pooled client, used before,
//! shares one locked pool between all threads and sends each request to the connection's task
//! through a channel; it cost a sixth of the proxy's throughput on the 2-core bench machine.)
//!
//! A connection goes back to its thread's pool when the response body that came over it has
//! been read to the end ([`OriginBody`]'s drop); one dropped earlier is closed with its body.
//! A pooled connection the origin closed meanwhile is noticed when it is taken (or when the
//! request fails before anything was sent on it) and the request goes out on a new one.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

type Sender = SendRequest<Full<Bytes>>;

/// How long connecting to an origin may take [10 s].
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle connections kept per origin address and thread.
const MAX_IDLE: usize = 256;
/// Origin addresses with idle connections kept per thread; past it the pool starts over.
const MAX_ORIGINS: usize = 4096;

thread_local! {
    static IDLE: RefCell<HashMap<SocketAddr, Vec<Sender>>> = RefCell::new(HashMap::new());
}

fn take(address: SocketAddr) -> Option<Sender> {
    IDLE.with_borrow_mut(|idle| {
        let senders = idle.get_mut(&address)?;
        while let Some(s) = senders.pop() {
            if !s.is_closed() {
                return Some(s);
            }
        }
        None
    })
}

fn put(address: SocketAddr, sender: Sender) {
    if sender.is_closed() {
        return;
    }
    IDLE.with_borrow_mut(|idle| {
        if idle.len() >= MAX_ORIGINS && !idle.contains_key(&address) {
            idle.clear();
        }
        let senders = idle.entry(address).or_default();
        if senders.len() < MAX_IDLE {
            senders.push(sender);
        }
    });
}

async fn connect(address: SocketAddr) -> Result<Sender, String> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(address))
        .await
        .map_err(|_| {
            format!(
                "origin {address}: no connection within {} s",
                CONNECT_TIMEOUT.as_secs()
            )
        })?
        .map_err(|e| format!("origin {address}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("origin {address}: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await; // the origin closed it, or it broke: nothing to tell
    });
    Ok(sender)
}

/// The response body from an origin; its connection goes back to the pool once it has been
/// read to the end.
pub struct OriginBody {
    body: Incoming,
    slot: Option<(SocketAddr, Sender)>,
}

impl Body for OriginBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for OriginBody {
    fn drop(&mut self) {
        if self.body.is_end_stream()
            && let Some((address, sender)) = self.slot.take()
        {
            put(address, sender);
        }
    }
}

/// Whether a request may be sent again after the connection broke while it was sent (RFC 9110
/// §9.2.2).
fn idempotent(method: &http::Method) -> bool {
    matches!(
        *method,
        http::Method::GET
            | http::Method::HEAD
            | http::Method::OPTIONS
            | http::Method::TRACE
            | http::Method::PUT
            | http::Method::DELETE
    )
}

/// Sends `request` to `address` on a pooled connection or a new one. `remake` builds the
/// request again for another attempt when the first one was consumed by a connection that
/// broke while it was sent (rare: the origin closed the idle connection just then).
pub async fn send(
    address: SocketAddr,
    request: http::Request<Full<Bytes>>,
    remake: impl Fn() -> http::Request<Full<Bytes>>,
) -> Result<http::Response<OriginBody>, String> {
    let retry = idempotent(request.method());
    let mut request = Some(request);
    // Pooled connections first; a failure on one that sent nothing (or, for an idempotent
    // request, that the origin closed under it) tries the next, then a new connection.
    while let Some(mut sender) = take(address) {
        if sender.ready().await.is_err() {
            continue;
        }
        let attempt = request.take().unwrap_or_else(&remake);
        match sender.try_send_request(attempt).await {
            Ok(response) => return Ok(wrap(response, address, sender)),
            Err(mut e) => {
                request = e.take_message();
                let e = e.into_error();
                if !(e.is_canceled() || (retry && e.is_incomplete_message())) {
                    return Err(format!("origin {address}: {e}"));
                }
            }
        }
    }
    let mut sender = connect(address).await?;
    match sender
        .send_request(request.take().unwrap_or_else(&remake))
        .await
    {
        Ok(response) => Ok(wrap(response, address, sender)),
        Err(e) => Err(format!("origin {address}: {e}")),
    }
}

fn wrap(
    response: http::Response<Incoming>,
    address: SocketAddr,
    sender: Sender,
) -> http::Response<OriginBody> {
    response.map(|body| OriginBody {
        body,
        slot: Some((address, sender)),
    })
}
