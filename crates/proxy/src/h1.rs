//! The proxy's HTTP/1.1 server side: requests read from a client connection (plain or TLS),
//! handed to the proxy whole, and its responses written back; keep-alive and pipelining.
//! (HTTP/2 is hyper's, [`crate::server`].)
//!
//! Why not hyper's HTTP/1.1 server (used before): its connection machinery — dispatch, a
//! `HeaderMap` per request and per response, the `Date` check on every poll, the
//! protocol-sniffing wrapper of hyper-util's auto builder — was about a fifth of the proxy's
//! user CPU per request on bench/proxy.sh, and the proxy reads every request body whole
//! before its rules run anyway, which is the simple case of HTTP/1.1 framing. The request
//! line and headers are parsed by `httparse` (hyper's parser); what is left is RFC 9112's
//! message framing, done here as strictly as the RFC allows against request smuggling:
//!
//! - a body is framed by `Content-Length` (equal values only) or by `Transfer-Encoding:
//!   chunked` alone; both at once, another transfer coding, or a transfer coding in an
//!   HTTP/1.0 request is refused (400 or 501) and the connection closed;
//! - a head larger than [`MAX_HEAD`] or with more than [`MAX_HEADERS`] headers is a 431, a
//!   body larger than [`MAX_BODY`] a 413, anything that does not parse a 400; each refusal
//!   closes the connection (what follows cannot be framed);
//! - a request without `Host` (HTTP/1.1) or with two is a 400 (RFC 9112 §3.2);
//! - a client that has not sent a whole head within the client timeout of its first bytes,
//!   or goes silent that long in the middle of a body, gets a 408 (no timer is made for a
//!   request that arrives whole, as nearly all do); a connection that waits for its next
//!   request (or its first) longer than the keep-alive timeout is closed ([`Idle`]);
//! - `Expect: 100-continue` is answered before the body is read;
//! - a response is framed by its length when the body's is known, else chunked (HTTP/1.1)
//!   or by closing the connection (HTTP/1.0); none for `HEAD`, 1xx, 204 and 304;
//! - the connection is kept alive unless the client or the framing says otherwise; each
//!   response is written before the next pipelined request is handled; a refused one is
//!   closed gently (the client's unread bytes drained for a moment after the answer, so that
//!   the close does not reset the connection and lose the answer).

use crate::Reply;
use crate::chunked::Chunk;
use crate::headers::Headers;
use crate::server::{MAX_BODY, RequestHead};
use bytes::BytesMut;
use hyper::body::Body as _;
use std::cell::{Cell, RefCell};
use std::future::{Future, poll_fn};
use std::io::Write as _;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// The longest request line and headers accepted [64 KiB]; longer is a 431.
pub const MAX_HEAD: usize = 64 * 1024;
/// The most headers accepted in a request (hyper's limit too); more is a 431.
pub const MAX_HEADERS: usize = 100;
/// What one read asks the socket for.
const READ_SIZE: usize = 16 * 1024;
/// Response bytes gathered before they are written even though more are ready.
const WRITE_SIZE: usize = 64 * 1024;

/// A request this side will not hand over: answered with `status` and `message`, then the
/// connection is closed.
#[derive(Debug)]
struct Refusal {
    status: http::StatusCode,
    message: String,
}

fn refusal(status: u16, message: impl Into<String>) -> Refusal {
    Refusal {
        status: http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_REQUEST),
        message: message.into(),
    }
}

/// How a request's body is framed.
#[derive(Debug, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
}

/// Where bytes are in a buffer: offset and length.
type Span = (usize, usize);

/// A parsed request head.
struct Head {
    request: RequestHead,
    framing: Option<Framing>,
    keep_alive: bool,
    expect_continue: bool,
}

/// How long a client may be silent: in the middle of a request, and between requests.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub client: Duration,
    pub keep_alive: Duration,
}

/// The keep-alive check of a connection (HTTP/1.1's [`Idle`], HTTP/2's in
/// `crate::server`), made every quarter of the keep-alive timeout: the connection has been
/// idle for the whole timeout at the fourth check in a row that finds no request served since
/// the one before and none being handled (between 1 and 1¼ timeouts after its last request).
#[derive(Default)]
pub(crate) struct Quiet {
    /// Requests served at the last check, and how many checks in a row found no more.
    served: u64,
    checks: u32,
}

impl Quiet {
    /// One check: `served`, the requests served on the connection so far; `busy`, whether one
    /// is being handled. True when the connection has been idle for the timeout.
    pub(crate) fn idle_for_timeout(&mut self, served: u64, busy: bool) -> bool {
        if busy || served != self.served {
            (self.served, self.checks) = (served, 0);
            return false;
        }
        self.checks += 1;
        self.checks >= 4
    }
}

/// The keep-alive timeout of a connection waiting for a request. One timer per connection,
/// made the first time it waits, that goes off every quarter of the timeout ([`Quiet`]). A
/// request does not touch the timer (a timer set anew for each would be a registration with
/// the runtime's timer wheel per request); the wait polls it only when no request is there
/// yet.
struct Idle {
    quarter: Duration,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    quiet: Quiet,
}

impl Idle {
    fn new(timeout: Duration) -> Idle {
        Idle {
            quarter: timeout / 4,
            timer: None,
            quiet: Quiet::default(),
        }
    }

    /// `f`'s output, or `None` when the connection has been idle too long (`served`: the
    /// requests served on it so far).
    async fn wait<F: Future>(&mut self, f: F, served: u64) -> Option<F::Output> {
        let mut f = std::pin::pin!(f);
        poll_fn(|cx| {
            if let Poll::Ready(out) = f.as_mut().poll(cx) {
                return Poll::Ready(Some(out));
            }
            let quarter = self.quarter;
            let timer = self
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(quarter)));
            while timer.as_mut().poll(cx).is_ready() {
                if self.quiet.idle_for_timeout(served, false) {
                    return Poll::Ready(None);
                }
                timer.as_mut().reset(tokio::time::Instant::now() + quarter);
            }
            Poll::Pending
        })
        .await
    }
}

/// Serves the requests of one connection with `handle`, `buf` holding what was read from it
/// already; returns when the connection is closed (by either side, or for being idle longer
/// than the keep-alive timeout) or broken.
pub async fn serve<S, H, F>(mut io: S, mut buf: BytesMut, timeouts: Timeouts, mut handle: H)
where
    S: AsyncRead + AsyncWrite + Unpin,
    H: FnMut(RequestHead, Vec<u8>) -> F,
    F: Future<Output = Reply>,
{
    let mut out = Vec::with_capacity(4096);
    let timeout = timeouts.client;
    let mut idle = Idle::new(timeouts.keep_alive);
    let mut served: u64 = 0;
    loop {
        // Where the buffer ended when it last held part of a head only: it is parsed again
        // only once the bytes since can end one (a head sent a byte at a time would otherwise
        // be parsed from its start after each, up to `MAX_HEAD` times).
        let mut partial: Option<usize> = None;
        // When the head must be complete: the client timeout after its first bytes had to be
        // waited for (a client trickling a byte now and then does not keep it open).
        let mut deadline: Option<tokio::time::Instant> = None;
        let head = loop {
            if !buf.is_empty() && partial.is_none_or(|at| may_end_head(&buf, at)) {
                match parse(&mut buf) {
                    Ok(Some(head)) => break head,
                    Ok(None) => partial = Some(buf.len()),
                    Err(r) => return refuse(&mut io, &mut out, r).await,
                }
            } else if buf.len() >= MAX_HEAD {
                return refuse(&mut io, &mut out, head_too_long()).await;
            }
            let read = if buf.is_empty() {
                // Between requests: the keep-alive timeout.
                match idle.wait(read(&mut io, &mut buf), served).await {
                    Some(read) => read,
                    None => {
                        let _ = io.shutdown().await;
                        return;
                    }
                }
            } else {
                let deadline =
                    *deadline.get_or_insert_with(|| tokio::time::Instant::now() + timeout);
                match tokio::time::timeout_at(deadline, read(&mut io, &mut buf)).await {
                    Ok(read) => read,
                    Err(_) => return refuse(&mut io, &mut out, slow_head(timeout)).await,
                }
            };
            match read {
                Ok(0) | Err(_) => return, // closed (in the middle of a head: nothing to answer)
                Ok(_) => {}
            }
        };
        let Head {
            request,
            framing,
            keep_alive,
            expect_continue,
        } = head;
        let body = match framing {
            None => Vec::new(),
            Some(framing) => {
                match read_body(&mut io, &mut buf, framing, expect_continue, timeout).await {
                    Ok(Some(body)) => body,
                    Ok(None) => return, // the client went away
                    Err(r) => return refuse(&mut io, &mut out, r).await,
                }
            }
        };
        let head_only = request.method == http::Method::HEAD;
        let http10 = request.version == http::Version::HTTP_10;
        let response = handle(request, body).await;
        if !respond(&mut io, &mut out, response, head_only, keep_alive, http10).await {
            return;
        }
        served += 1;
    }
}

/// Reads what the socket has into `buf`: the number of bytes, 0 at end-of-file.
async fn read<S: AsyncRead + Unpin>(io: &mut S, buf: &mut BytesMut) -> std::io::Result<usize> {
    if buf.capacity() - buf.len() < READ_SIZE / 4 {
        buf.reserve(READ_SIZE);
    }
    poll_fn(|cx| tokio_util::io::poll_read_buf(Pin::new(&mut *io), cx, buf)).await
}

/// Parses the request head at the start of `buf` (consumed when complete); `None`: more
/// bytes are needed.
fn parse(buf: &mut BytesMut) -> Result<Option<Head>, Refusal> {
    // Left uninitialized: httparse fills what it parses.
    let mut slots = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .parse_request_with_uninit_headers(&mut req, buf, &mut slots);
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => return Err(head_too_long()),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(refusal(
                431,
                format!("the request has more than {MAX_HEADERS} headers"),
            ));
        }
        Err(httparse::Error::Version) => {
            return Err(refusal(505, "only HTTP/1.0 and HTTP/1.1 are served here"));
        }
        Err(e) => {
            return Err(refusal(
                400,
                format!("the request is not valid HTTP/1.1: {e}"),
            ));
        }
    };
    let method = req.method.unwrap_or_default();
    let method = http::Method::from_bytes(method.as_bytes())
        .map_err(|_| refusal(400, format!("the method {method:?} is not valid")))?;
    let version = if req.version == Some(0) {
        http::Version::HTTP_10
    } else {
        http::Version::HTTP_11
    };
    // Where the target and each header are in the buffer: once the head is split off it, they
    // become slices of its bytes (no copy), the names lowercased first.
    let base = buf.as_ptr() as usize;
    let at = |s: &[u8]| (s.as_ptr() as usize - base, s.len());
    let target = at(req.path.unwrap_or_default().as_bytes());
    let spans: smallvec::SmallVec<[(Span, Span); 16]> = req
        .headers
        .iter()
        .map(|h| (at(h.name.as_bytes()), at(h.value)))
        .collect();
    for &((at, len), _) in &spans {
        buf[at..at + len].make_ascii_lowercase();
    }
    let head = buf.split_to(len).freeze();
    let slice = |(at, len): Span| head.slice(at..at + len);
    let uri = http::Uri::from_maybe_shared(slice(target)).map_err(|_| {
        refusal(
            400,
            format!(
                "the request target {:?} is not valid",
                String::from_utf8_lossy(&slice(target))
            ),
        )
    })?;
    let mut length: Option<usize> = None;
    let mut transfer_encoding: Option<&[u8]> = None;
    let mut keep_alive = version == http::Version::HTTP_11;
    let mut expect_continue = false;
    let mut hosts = 0;
    // Room for the forwarding headers the proxy adds to them: the list does not grow then.
    let mut headers = Headers::of(head.clone(), spans.len() + 8);
    for &(name, value) in &spans {
        // httparse let through only valid names (tokens) and values.
        headers.push_parsed(name, value);
        // Slices of the head, not `Bytes` of it: a `Bytes` per header was two atomic
        // operations each (its reference count up and down).
        let (name, value) = (
            &head[name.0..name.0 + name.1],
            &head[value.0..value.0 + value.1],
        );
        match name {
            b"content-length" => {
                let n = crate::origin::content_length(value)
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| refusal(400, "the content-length is not a number"))?;
                if length.is_some_and(|l| l != n) {
                    return Err(refusal(
                        400,
                        "the request has two different content-lengths",
                    ));
                }
                length = Some(n);
            }
            b"transfer-encoding" => {
                if transfer_encoding.is_some() {
                    return Err(refusal(400, "the request has two transfer-encodings"));
                }
                transfer_encoding = Some(value);
            }
            b"connection" => {
                keep_alive = crate::keeps_alive(value, version, keep_alive);
            }
            b"host" => hosts += 1,
            b"expect" => {
                if !value.eq_ignore_ascii_case(b"100-continue") {
                    return Err(refusal(417, "the only expectation met is 100-continue"));
                }
                expect_continue = version == http::Version::HTTP_11;
            }
            _ => {}
        }
    }
    if hosts > 1 || (hosts == 0 && version == http::Version::HTTP_11) {
        return Err(refusal(
            400,
            "an HTTP/1.1 request has exactly one Host header",
        ));
    }
    let framing = match (transfer_encoding, length) {
        (None, None | Some(0)) => None,
        (None, Some(n)) => Some(Framing::Length(n)),
        (Some(_), Some(_)) => {
            return Err(refusal(
                400,
                "the request has both a content-length and a transfer-encoding",
            ));
        }
        (Some(_), None) if version == http::Version::HTTP_10 => {
            return Err(refusal(400, "an HTTP/1.0 request has a transfer-encoding"));
        }
        (Some(te), None) if te.trim_ascii().eq_ignore_ascii_case(b"chunked") => {
            Some(Framing::Chunked)
        }
        (Some(te), None) => {
            return Err(refusal(
                501,
                format!(
                    "the transfer-encoding {:?} is not supported (only chunked)",
                    String::from_utf8_lossy(te)
                ),
            ));
        }
    };
    Ok(Some(Head {
        request: RequestHead {
            method,
            uri,
            version,
            headers,
        },
        framing,
        keep_alive,
        expect_continue,
    }))
}

fn head_too_long() -> Refusal {
    refusal(
        431,
        format!(
            "the request line and headers are longer than {} KiB",
            MAX_HEAD >> 10
        ),
    )
}

/// Whether the bytes of `buf` from `from` on (with the two before, which may start the end)
/// hold a line feed that ends a head: one followed by another, or by CR LF.
fn may_end_head(buf: &[u8], from: usize) -> bool {
    let tail = &buf[from.saturating_sub(2).min(buf.len())..];
    tail.iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && matches!(&tail[i + 1..], [b'\n', ..] | [b'\r', b'\n', ..]))
}

fn slow_head(timeout: Duration) -> Refusal {
    refusal(
        408,
        format!(
            "the client did not send the whole request head within {} s",
            timeout.as_secs_f64()
        ),
    )
}

fn silent_body(timeout: Duration) -> Refusal {
    refusal(
        408,
        format!(
            "the client sent nothing for {} s in the middle of the request body",
            timeout.as_secs_f64()
        ),
    )
}

fn too_large() -> Refusal {
    refusal(413, crate::server::body_too_large())
}

/// Reads a request body whole; `None` when the client closed the connection before its end.
async fn read_body<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    buf: &mut BytesMut,
    framing: Framing,
    expect_continue: bool,
    timeout: Duration,
) -> Result<Option<Vec<u8>>, Refusal> {
    // Each read that has to wait may wait `timeout`.
    let more = async |io: &mut S, buf: &mut BytesMut| -> Result<bool, Refusal> {
        match tokio::time::timeout(timeout, read(io, buf)).await {
            Ok(Ok(n)) => Ok(n > 0),
            Ok(Err(_)) => Ok(false),
            Err(_) => Err(silent_body(timeout)),
        }
    };
    if let Framing::Length(n) = framing
        && n > MAX_BODY
    {
        return Err(too_large());
    }
    if expect_continue && buf.is_empty() {
        // The client waits for this before sending the body.
        if io
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .await
            .is_err()
        {
            return Ok(None);
        }
    }
    let mut body = Vec::new();
    match framing {
        Framing::Length(n) => {
            body.reserve_exact(n);
            while body.len() < n {
                if buf.is_empty() && !more(io, buf).await? {
                    return Ok(None);
                }
                let take = buf.len().min(n - body.len());
                body.extend_from_slice(&buf.split_to(take));
            }
        }
        Framing::Chunked => {
            let mut chunk = Chunk::Size;
            loop {
                match chunk {
                    Chunk::End => break,
                    Chunk::Data(left) if !buf.is_empty() => {
                        let take = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                        if body.len() + take > MAX_BODY {
                            return Err(too_large());
                        }
                        body.extend_from_slice(&buf.split_to(take));
                        chunk = match left - take as u64 {
                            0 => Chunk::DataEnd,
                            left => Chunk::Data(left),
                        };
                        continue;
                    }
                    _ => {}
                }
                match chunk.advance(buf) {
                    Ok(Some(next)) if next != chunk => chunk = next,
                    Ok(_) => {
                        if !more(io, buf).await? {
                            return Ok(None);
                        }
                    }
                    Err(what) => {
                        return Err(refusal(400, format!("the chunked request body has {what}")));
                    }
                }
            }
        }
    }
    Ok(Some(body))
}

/// Answers a refused request and closes the connection (unread bytes are dropped with it).
async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(io: &mut S, out: &mut Vec<u8>, r: Refusal) {
    let text = format!("edgetrace: {}\n", r.message);
    let response = crate::text_response(r.status.as_u16(), text);
    respond(io, out, response, false, false, false).await;
    let _ = io.shutdown().await;
    // What the client is still sending (a body refused unread) is read and dropped for a
    // moment: closing a socket with unread bytes resets the connection, and a client that
    // gets the reset before it read the answer loses it (RFC 9112 §9.6).
    let mut sink = BytesMut::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let mut drained = 0;
        while drained < 1 << 20 {
            sink.clear();
            match read(io, &mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}

/// Writes `response`; whether the connection can carry another request.
async fn respond<S: AsyncWrite + Unpin>(
    io: &mut S,
    out: &mut Vec<u8>,
    response: Reply,
    head_only: bool,
    mut keep_alive: bool,
    http10: bool,
) -> bool {
    let Reply {
        status,
        headers,
        mut body,
    } = response;
    let no_body = status.is_informational()
        || status == http::StatusCode::NO_CONTENT
        || status == http::StatusCode::NOT_MODIFIED;
    let length = body.size_hint().exact();
    enum Write {
        None,
        Length(u64),
        Chunked,
        Close,
    }
    let write = match length {
        _ if no_body || head_only => Write::None,
        Some(n) => Write::Length(n),
        None if http10 => Write::Close,
        None => Write::Chunked,
    };
    if matches!(write, Write::Close) {
        keep_alive = false;
    }
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut dated = false;
    headers.write_lines(out, |name| match name {
        // Written below, as this connection's framing says.
        b"content-length" | b"transfer-encoding" | b"connection" => true,
        b"date" => {
            dated = true;
            false
        }
        _ => false,
    });
    if !dated {
        out.extend_from_slice(b"date: ");
        date(out);
        out.extend_from_slice(b"\r\n");
    }
    match write {
        // Writing to a Vec cannot fail.
        Write::Length(n) => write_content_length(out, n),
        Write::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        // A HEAD's body would have had this length.
        Write::None if head_only && !no_body => {
            if let Some(n) = length.filter(|&n| n > 0) {
                write_content_length(out, n);
            }
        }
        Write::None | Write::Close => {}
    }
    if !keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    } else if http10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if matches!(write, Write::None) {
        return flush(io, out).await.is_ok() && keep_alive;
    }
    let mut left = length.unwrap_or(0);
    loop {
        // What the body has ready joins what is gathered; written once it would wait.
        let frame = match poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx))).await {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                if flush(io, out).await.is_err() {
                    return false;
                }
                poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
            }
        };
        let data = match frame {
            None => break,
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                Err(_) => continue, // trailers: not forwarded
            },
            Some(Err(_)) => {
                // The origin failed in the middle of the body: the client's response is cut
                // off (no last chunk; fewer bytes than its length) and the connection closed.
                let _ = flush(io, out).await;
                return false;
            }
        };
        if data.is_empty() {
            continue;
        }
        match write {
            Write::Length(_) => {
                if data.len() as u64 > left {
                    // More than the body said it had: the length written cannot be kept.
                    let _ = flush(io, out).await;
                    return false;
                }
                left -= data.len() as u64;
                out.extend_from_slice(&data);
            }
            Write::Chunked => {
                drop(write!(out, "{:x}\r\n", data.len()));
                out.extend_from_slice(&data);
                out.extend_from_slice(b"\r\n");
            }
            // Close-delimited (a body-less response returned above).
            Write::Close | Write::None => out.extend_from_slice(&data),
        }
        if out.len() >= WRITE_SIZE && flush(io, out).await.is_err() {
            return false;
        }
    }
    match write {
        Write::Chunked => out.extend_from_slice(b"0\r\n\r\n"),
        // Fewer bytes than the length written: the client would wait for the rest.
        Write::Length(_) if left > 0 => keep_alive = false,
        _ => {}
    }
    flush(io, out).await.is_ok() && keep_alive
}

/// Writes out what is gathered in `out`.
async fn flush<S: AsyncWrite + Unpin>(io: &mut S, out: &mut Vec<u8>) -> std::io::Result<()> {
    let written = io.write_all(out).await;
    out.clear();
    if out.capacity() > 4 * WRITE_SIZE {
        out.shrink_to(WRITE_SIZE);
    }
    written?;
    io.flush().await
}

/// Appends a `Content-Length` header line (itoa: `write!` went through the formatting
/// machinery, a percent of a proxied request's CPU).
pub(crate) fn write_content_length(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(b"content-length: ");
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    out.extend_from_slice(b"\r\n");
}

thread_local! {
    /// The `Date` header's value, refreshed each second by [`keep_date`] when it runs on
    /// the thread (each proxy thread runs it): writing a response then reads no clock.
    static DATE: RefCell<String> = const { RefCell::new(String::new()) };
    static DATE_KEPT: Cell<bool> = const { Cell::new(false) };
}

/// Appends the current date in the form of HTTP's `Date` header.
fn date(out: &mut Vec<u8>) {
    if DATE_KEPT.get() {
        DATE.with_borrow(|d| out.extend_from_slice(d.as_bytes()));
    } else {
        out.extend_from_slice(httpdate::fmt_http_date(SystemTime::now()).as_bytes());
    }
}

/// Keeps this thread's `Date` value current, each second, for as long as the runtime runs;
/// for a runtime that runs every task on its own thread (the proxy threads').
pub async fn keep_date() {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let now = httpdate::fmt_http_date(SystemTime::now());
        DATE.with_borrow_mut(|d| *d = now);
        DATE_KEPT.set(true);
    }
}

#[cfg(test)]
mod tests {
    use super::{Quiet, may_end_head, parse};
    use bytes::BytesMut;

    #[test]
    fn headers_written_back_as_lines_parse_as_they_came() {
        // Names of any case, empty values, spaces and tabs around values, bare line feeds,
        // a value that is not UTF-8; then fields set and added. Lines as they came are
        // copied (spaces and tabs before the value kept); the others are written anew.
        let mut buf = BytesMut::from(
            &b"GET /a HTTP/1.1\r\nHost: h\r\nX-Empty:\r\nx-tabs:\t\t1 2\t\r\nx-ows:\t 6\r\nX-Lf: 3\nx-bin: \xff\r\nx-last:4 \r\n\r\n"[..],
        );
        let mut headers = parse(&mut buf).unwrap().unwrap().request.headers;
        assert!(headers.set("x-lf", "three") && headers.append("X-New", "5"));
        let mut out = b"GET /a HTTP/1.1\r\n".to_vec();
        headers.write_lines(&mut out, |name| name == b"x-bin");
        out.extend_from_slice(b"\r\n");
        let again = parse(&mut BytesMut::from(&out[..]))
            .unwrap()
            .unwrap()
            .request
            .headers;
        let list = |h: &crate::headers::Headers| -> Vec<(Vec<u8>, Vec<u8>)> {
            h.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect()
        };
        let mut expected = list(&headers);
        expected.retain(|(k, _)| k != b"x-bin");
        assert_eq!(list(&again), expected);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /a HTTP/1.1\r\nhost: h\r\nx-empty:\r\nx-tabs: 1 2\r\nx-ows:\t 6\r\nx-lf: three\r\nx-last: 4\r\nx-new: 5\r\n\r\n"
        );
    }

    #[test]
    fn a_connection_is_idle_for_the_timeout_at_the_fourth_quiet_check_in_a_row() {
        let mut quiet = Quiet::default();
        // A new connection: four checks without a request.
        let checks: Vec<bool> = (0..4).map(|_| quiet.idle_for_timeout(0, false)).collect();
        assert_eq!(checks, [false, false, false, true]);
        // A request served, or one being handled, starts the count again.
        let mut quiet = Quiet::default();
        for (served, busy, idle) in [
            (0, false, false),
            (0, false, false),
            (0, false, false),
            (1, false, false),
            (1, false, false),
            (1, true, false),
            (1, false, false),
            (1, false, false),
            (1, false, false),
            (1, false, true),
        ] {
            assert_eq!(
                quiet.idle_for_timeout(served, busy),
                idle,
                "{served} {busy}"
            );
        }
    }

    #[test]
    fn only_bytes_that_can_end_a_head_send_it_to_the_parser_again() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        // Fed a byte at a time: the head can end only with its last byte.
        let ends: Vec<usize> = (1..=head.len())
            .filter(|&n| may_end_head(&head[..n], n - 1))
            .collect();
        assert_eq!(ends, [head.len()]);
        // Line feeds alone end a head too, and the end may straddle two reads.
        assert!(may_end_head(b"GET / HTTP/1.1\nHost: a\n\n", 20));
        for last_read_ended in [24, 25, 26] {
            assert!(may_end_head(
                b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
                last_read_ended
            ));
        }
        assert!(!may_end_head(b"GET / HTTP/1.1\r\nHost: a\r\n", 0));
    }
}
