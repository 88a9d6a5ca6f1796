//! Connections to origins: HTTP/1.1 keep-alive connections, kept per thread, that the
//! request's own task writes to and reads from.
//!
//! Each proxy thread runs its own runtime ([`crate::server`]), so a connection made by one
//! thread is only ever used by it: taking and returning one is a thread-local `Vec` push and
//! pop, with no lock and no cross-thread wake-up.
//!
//! Why not hyper's client (used before, as hyper-util's pooled client and then as hyper's
//! connection API): it runs each connection in a task of its own and hands it the request, the
//! response and every piece of the body through channels, each a wake-up of the other task;
//! that machinery was a quarter of the proxy's user CPU per request on the bench
//! (bench/proxy.sh). The edge writes every request it sends itself (one form: a
//! `Content-Length` body, already read whole), so what is left is reading responses: the
//! status line and headers parsed by `httparse` (hyper's parser), the body framed as RFC 9112
//! §6.3 says (`Content-Length`, chunked, or until the origin closes; none for `HEAD`, 1xx, 204
//! and 304) and streamed to the client straight from the connection's read buffer.
//!
//! The body may be given an idle timeout ([`OriginBody::idle_timeout`]; the proxy's is its
//! origin timeout): an origin that goes silent in the middle of a body then fails it rather
//! than holding the client's response open for as long as it likes.
//!
//! A connection goes back to its thread's pool when the response body that came over it has
//! been read to the end (and the origin did not ask to close it); one dropped earlier is
//! closed with its body. A pooled connection the origin closed meanwhile is noticed when it
//! is taken (its socket reads end-of-file), or, if the close arrives while the request is on
//! its way, by the request failing before any answer: an idempotent request then goes out
//! again on a new connection, as does one that could not be written at all.

use crate::Reply;
use crate::chunked::Chunk;
use crate::headers::Headers;
use bytes::{Buf, Bytes, BytesMut};
use foldhash::HashMap;
use hyper::body::{Body, Frame, SizeHint};
use smallvec::SmallVec;
use std::cell::RefCell;
use std::future::{Future, poll_fn};
use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;

/// How long connecting to an origin may take [10 s].
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle connections kept per origin address and thread.
const MAX_IDLE: usize = 256;
/// Origin addresses with idle connections kept per thread; past it the pool starts over.
const MAX_ORIGINS: usize = 4096;
/// The longest status line and headers accepted from an origin [64 KiB].
pub const MAX_HEAD: usize = 64 * 1024;
/// The most headers accepted in a response (hyper's limit too).
pub const MAX_HEADERS: usize = 100;
/// What one read asks the socket for.
const READ_SIZE: usize = 16 * 1024;

/// How much earlier than a request's deadline the timer of its connection may be set
/// ([`Conn::within`]).
const TIMER_SLACK: Duration = Duration::from_millis(500);

/// One HTTP/1.1 connection to an origin, with what was read from it and not used yet.
struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    /// The timer of the origin timeout ([`send`]), made the first time a request on the
    /// connection waits and moved to each request's deadline after (a timer made and
    /// dropped for each request was a few percent of a proxied request's CPU; moving one
    /// to a later deadline is an atomic store, its place in the timer wheel kept). It may
    /// go off while the connection is idle: no request is waiting on it then.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// Gives the bytes of a request sent back to the thread, for the next request's
/// ([`encode`]): one allocation less per request. A large one (a request body) is let go.
fn spare_out(bytes: Vec<u8>) {
    if bytes.capacity() <= 16 * 1024 {
        OUT.set(bytes);
    }
}

thread_local! {
    static OUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static IDLE: RefCell<HashMap<SocketAddr, Vec<Conn>>> = RefCell::new(HashMap::default());
}

/// An idle connection to `address` that is still open.
fn take(address: SocketAddr) -> Option<Conn> {
    loop {
        let conn = IDLE.with_borrow_mut(|idle| idle.get_mut(&address)?.pop())?;
        if conn.open() {
            return Some(conn);
        }
    }
}

fn put(address: SocketAddr, conn: Conn) {
    IDLE.with_borrow_mut(|idle| {
        if idle.len() >= MAX_ORIGINS && !idle.contains_key(&address) {
            idle.clear();
        }
        let conns = idle.entry(address).or_default();
        if conns.len() < MAX_IDLE {
            conns.push(conn);
        }
    });
}

impl Conn {
    /// Whether an idle connection can carry a request: the origin has not closed it (nor sent
    /// anything unasked). Looked at without a system call unless the socket was seen readable.
    fn open(&self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        match self.stream.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            // Readable: end-of-file, or bytes no request asked for; or a stale readiness.
            Poll::Ready(Ok(())) => matches!(
                self.stream.try_read(&mut [0u8; 1]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock
            ),
        }
    }

    /// Reads what the socket has into the buffer: the number of bytes, 0 at end-of-file.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < READ_SIZE / 4 {
            self.buf.reserve(READ_SIZE);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.stream), cx, &mut self.buf)
    }

    /// `op` on the connection until it is ready, or [`Failure::TimedOut`] at `deadline`.
    async fn within<T>(
        &mut self,
        deadline: tokio::time::Instant,
        mut op: impl FnMut(&mut Conn, &mut Context<'_>) -> Poll<T>,
    ) -> Result<T, Failure> {
        poll_fn(|cx| {
            if let Poll::Ready(v) = op(self, cx) {
                return Poll::Ready(Ok(v));
            }
            let timer = self
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            // Moved when it would go off late, or more than `TIMER_SLACK` early (moving it at
            // every request, by the time between requests, was half a percent of a proxied
            // request's CPU); one that goes off early is moved to the deadline then.
            if timer.deadline() > deadline || timer.deadline() + TIMER_SLACK < deadline {
                timer.as_mut().reset(deadline);
            }
            while timer.as_mut().poll(cx).is_ready() {
                if tokio::time::Instant::now() >= deadline {
                    return Poll::Ready(Err(Failure::TimedOut));
                }
                timer.as_mut().reset(deadline);
            }
            Poll::Pending
        })
        .await
    }
}

/// A new connection to `address`, within [`CONNECT_TIMEOUT`] (and by `deadline`, the
/// request's).
async fn connect(address: SocketAddr, deadline: tokio::time::Instant) -> Result<Conn, Failure> {
    let by = deadline.min(tokio::time::Instant::now() + CONNECT_TIMEOUT);
    let stream = tokio::time::timeout_at(by, TcpStream::connect(address))
        .await
        .map_err(|_| {
            if by == deadline {
                Failure::TimedOut
            } else {
                Failure::Other(format!(
                    "no connection within {} s",
                    CONNECT_TIMEOUT.as_secs()
                ))
            }
        })?
        .map_err(|e| Failure::Other(e.to_string()))?;
    let _ = stream.set_nodelay(true);
    Ok(Conn {
        stream,
        buf: BytesMut::with_capacity(READ_SIZE),
        timer: None,
    })
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

/// A request as the bytes sent: the request line in origin form (`target`, written as it
/// is), the headers as they are in the list (`Host` among them), `Content-Length` when there is a body (or the method expects one),
/// then the body.
fn encode(method: &http::Method, target: &str, headers: &Headers, body: &[u8]) -> Vec<u8> {
    // The thread's buffer of the last request sent, when it came back ([`spare_out`]).
    let mut out = OUT.with_borrow_mut(std::mem::take);
    out.clear();
    out.reserve(256 + headers.len() * 48 + body.len());
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    headers.write_lines(&mut out, |_| false);
    let expects_body = matches!(
        *method,
        http::Method::POST | http::Method::PUT | http::Method::PATCH
    );
    if !body.is_empty() || expects_body {
        crate::h1::write_content_length(&mut out, body.len() as u64);
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// Whether `target` can go on a request line as it is: a path (and query) of visible ASCII,
/// no space or control byte that would end the line or the request (what `http::Uri`
/// accepts, and a little more: the origin decides about the rest); or `*` (`OPTIONS *`).
fn origin_form(target: &str) -> bool {
    target == "*" || (target.starts_with('/') && target.bytes().all(|b| b.is_ascii_graphic()))
}

/// How a request on a connection failed.
enum Failure {
    /// Before the origin answered anything: the connection broke while the request was
    /// written (nothing went out, or not all of it), or it was closed with no answer.
    Unanswered { written: bool, error: String },
    /// No answer by the request's deadline (the origin timeout).
    TimedOut,
    /// Anything else: an answer that is not HTTP, too large a head, a broken body framing.
    Other(String),
}

/// Why a request got no response from its origin: the status the client gets for it (502;
/// 504 when the origin did not answer within the origin timeout) and a message that says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginError {
    pub status: u16,
    pub message: String,
}

impl std::fmt::Display for OriginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Sends a request to `address` on a pooled connection or a new one, and reads the response's
/// status and headers; the body streams from the connection as the caller reads it.
///
/// The request: `method`, `target` in origin form (`/path?query`; one unfit for a request
/// line — a space, a control byte, non-ASCII, see [`origin_form`] — goes out as `/`),
/// `headers` (`Host` among them) and `body`. Unless the response's head has come within
/// `timeout` (the origin timeout: connecting, writing and waiting included, tries on pooled
/// connections that broke too), a 504 [`OriginError`].
pub async fn send(
    address: SocketAddr,
    method: &http::Method,
    target: &str,
    headers: &Headers,
    body: &[u8],
    timeout: Duration,
) -> Result<Reply<OriginBody>, OriginError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let failed = |failure: Failure| match failure {
        Failure::TimedOut => OriginError {
            status: 504,
            message: format!(
                "origin {address} did not answer within {} s",
                timeout.as_secs_f64()
            ),
        },
        Failure::Unanswered { error, .. } | Failure::Other(error) => OriginError {
            status: 502,
            message: format!("origin {address}: {error}"),
        },
    };
    let target = if origin_form(target) { target } else { "/" };
    let bytes = encode(method, target, headers, body);
    // The thread's other ready requests run their rules first: the requests to origins then
    // go out one after the other, and an origin that went idle is woken once for them all
    // rather than once each (see `crate::server::proxy`).
    tokio::task::yield_now().await;
    let head_only = method == http::Method::HEAD;
    let retry = idempotent(method);
    // Pooled connections first; one that broke before the origin answered anything tries the
    // next (for a request that was written whole, only when it is idempotent), then a new one.
    while let Some(conn) = take(address) {
        match exchange(conn, address, &bytes, head_only, deadline).await {
            Ok(response) => {
                spare_out(bytes);
                return Ok(response);
            }
            Err(Failure::Unanswered { written, .. }) if !written || retry => {}
            Err(failure) => return Err(failed(failure)),
        }
    }
    let sent = match connect(address, deadline).await {
        Ok(conn) => exchange(conn, address, &bytes, head_only, deadline).await,
        Err(failure) => Err(failure),
    };
    spare_out(bytes);
    sent.map_err(failed)
}

/// Writes a request on `conn` and reads the response's head, by `deadline`.
async fn exchange(
    mut conn: Conn,
    address: SocketAddr,
    request: &[u8],
    head_only: bool,
    deadline: tokio::time::Instant,
) -> Result<Reply<OriginBody>, Failure> {
    let mut written = 0;
    let write = conn
        .within(deadline, |conn, cx| {
            while written < request.len() {
                match ready!(Pin::new(&mut conn.stream).poll_write(cx, &request[written..])) {
                    Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Ok(n) => written += n,
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            Poll::Ready(Ok(()))
        })
        .await?;
    if let Err(e) = write {
        return Err(Failure::Unanswered {
            written: false,
            error: e.to_string(),
        });
    }
    // The buffer is empty: a connection goes back to the pool only with nothing unread.
    loop {
        if !conn.buf.is_empty() {
            match parse_head(&mut conn.buf, head_only).map_err(Failure::Other)? {
                Head::Final(parts, framing, reusable) => {
                    let body = OriginBody {
                        conn: Some(conn),
                        address,
                        framing,
                        reusable,
                        idle: None,
                    };
                    return Ok(Reply {
                        status: parts.status,
                        headers: parts.headers,
                        body,
                    });
                }
                Head::Interim => continue,
                Head::Partial => {}
            }
        }
        match conn.within(deadline, Conn::poll_fill).await? {
            Ok(0) if conn.buf.is_empty() => {
                return Err(Failure::Unanswered {
                    written: true,
                    error: "the connection was closed before a response".into(),
                });
            }
            Ok(0) => return Err(Failure::Other("the response was cut short".into())),
            Ok(_) => {}
            Err(e) if conn.buf.is_empty() => {
                return Err(Failure::Unanswered {
                    written: true,
                    error: e.to_string(),
                });
            }
            Err(e) => return Err(Failure::Other(e.to_string())),
        }
    }
}

/// A response's status and headers.
struct Parts {
    status: http::StatusCode,
    headers: Headers,
}

enum Head {
    /// The response (its head consumed from the buffer), how its body is framed, and whether
    /// the connection can carry another request after it.
    Final(Parts, Framing, bool),
    /// A 1xx response other than 101, consumed: the final one follows.
    Interim,
    /// More bytes are needed.
    Partial,
}

/// Parses the response head at the start of `buf`.
fn parse_head(buf: &mut BytesMut, head_only: bool) -> Result<Head, String> {
    // Room for the most headers a response may have, left uninitialized (httparse fills what
    // it parses; zeroing 100 slots first is work a response of a few headers does not need).
    let mut slots = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        buf,
        &mut slots,
    );
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            return Err(format!(
                "the response's status line and headers are longer than {} KiB",
                MAX_HEAD >> 10
            ));
        }
        Ok(httparse::Status::Partial) => return Ok(Head::Partial),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(format!("the response has more than {MAX_HEADERS} headers"));
        }
        Err(e) => return Err(format!("the response is not valid HTTP/1.1: {e}")),
    };
    let code = response.code.unwrap_or(0);
    let status = http::StatusCode::from_u16(code)
        .map_err(|_| format!("the response's status {code} is not valid"))?;
    if status == http::StatusCode::SWITCHING_PROTOCOLS {
        return Err("the origin switched protocols (101); upgrades are not proxied".into());
    }
    if status.is_informational() {
        buf.advance(len);
        return Ok(Head::Interim);
    }
    let version = if response.version == Some(0) {
        http::Version::HTTP_10
    } else {
        http::Version::HTTP_11
    };
    // Where each header's name and value are in the buffer: once the head is split off the
    // buffer, they become slices of its bytes (no copy), the names lowercased first.
    let base = buf.as_ptr() as usize;
    let spans: SmallVec<[(usize, usize, usize, usize); 16]> = response
        .headers
        .iter()
        .map(|h| {
            (
                h.name.as_ptr() as usize - base,
                h.name.len(),
                h.value.as_ptr() as usize - base,
                h.value.len(),
            )
        })
        .collect();
    for &(at, len, ..) in &spans {
        buf[at..at + len].make_ascii_lowercase();
    }
    let head = buf.split_to(len).freeze();
    let mut framing = if head_only
        || status == http::StatusCode::NO_CONTENT
        || status == http::StatusCode::NOT_MODIFIED
    {
        Framing::Empty
    } else {
        Framing::Close
    };
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut transfer_encoding = false;
    let mut close = version == http::Version::HTTP_10;
    let mut headers = Headers::of(head.clone(), spans.len() + 4);
    for &(name_at, name_len, value_at, value_len) in &spans {
        // httparse let through only valid names (tokens) and values.
        headers.push_parsed((name_at, name_len), (value_at, value_len));
        let name = &head[name_at..name_at + name_len];
        let value = &head[value_at..value_at + value_len];
        if name == b"content-length" {
            let n = content_length(value)
                .ok_or_else(|| "the response's content-length is not a number".to_string())?;
            if length.is_some_and(|l| l != n) {
                return Err("the response has two different content-lengths".into());
            }
            length = Some(n);
        } else if name == b"transfer-encoding" {
            transfer_encoding = true;
            // The last coding decides: chunked, or the body ends when the connection does.
            chunked = value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name == b"connection" {
            close = !crate::keeps_alive(value, version, !close);
        }
    }
    if !matches!(framing, Framing::Empty) {
        framing = if transfer_encoding {
            // With a content-length too, the transfer coding wins and the connection is not
            // used again (RFC 9112 §6.3): the two disagreed about where the body ends.
            close |= length.is_some() || !chunked;
            if chunked {
                Framing::Chunked(Chunk::Size)
            } else {
                Framing::Close
            }
        } else {
            match length {
                Some(n) => Framing::Length(n),
                None => Framing::Close,
            }
        };
    }
    let reusable = !close && !matches!(framing, Framing::Close);
    Ok(Head::Final(Parts { status, headers }, framing, reusable))
}

/// A `Content-Length` value: digits, or a list of equal ones (RFC 9110 §8.6).
pub(crate) fn content_length(value: &[u8]) -> Option<u64> {
    let mut length = None;
    for part in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
        if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n: u64 = std::str::from_utf8(part).ok()?.parse().ok()?;
        if length.is_some_and(|l| l != n) {
            return None;
        }
        length = Some(n);
    }
    length
}

/// How a response body ends.
#[derive(Debug)]
enum Framing {
    /// No body (`HEAD`, 204, 304), or one read to its end.
    Empty,
    /// This many bytes are left.
    Length(u64),
    /// Chunked, at this point of it.
    Chunked(Chunk),
    /// When the origin closes the connection.
    Close,
}

/// The response body from an origin, read from its connection as it is polled; the connection
/// goes back to the pool once the body has been read to the end.
pub struct OriginBody {
    conn: Option<Conn>,
    address: SocketAddr,
    framing: Framing,
    reusable: bool,
    /// How long the body may go without a byte ([`idle_timeout`](Self::idle_timeout)).
    idle: Option<Idle>,
}

/// A body's idle timeout: armed when a read has to wait, disarmed by the next bytes. The timer
/// is made the first time a read waits: a body that came with its head (most) never needs one.
struct Idle {
    after: Duration,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    armed: bool,
}

impl OriginBody {
    /// Fails the body (an error frame; its connection closed) when the origin sends nothing
    /// for `after` in the middle of it. Without one, a body waits as long as the origin does.
    pub fn idle_timeout(&mut self, after: Duration) {
        self.idle = Some(Idle {
            after,
            timer: None,
            armed: false,
        });
    }

    /// Whether no byte of the body is left to read (none was sent, or all of it was read).
    fn nothing_left(&self) -> bool {
        matches!(self.framing, Framing::Empty | Framing::Length(0))
    }

    /// The body is complete: the connection goes back to the pool when it can carry another
    /// request (nothing else was sent on it).
    fn finish(&mut self) {
        self.framing = Framing::Empty;
        if let Some(conn) = self.conn.take()
            && self.reusable
            && conn.buf.is_empty()
        {
            put(self.address, conn);
        }
    }

    /// The next frame's bytes, or `None` at the end.
    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, io::Error>> {
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(Ok(None));
            };
            match &mut self.framing {
                Framing::Empty | Framing::Length(0) => {
                    self.finish();
                    return Poll::Ready(Ok(None));
                }
                Framing::Length(left) | Framing::Chunked(Chunk::Data(left)) => {
                    if !conn.buf.is_empty() {
                        let n = conn
                            .buf
                            .len()
                            .min(usize::try_from(*left).unwrap_or(usize::MAX));
                        *left -= n as u64;
                        if let Framing::Chunked(c @ Chunk::Data(0)) = &mut self.framing {
                            *c = Chunk::DataEnd;
                        }
                        return Poll::Ready(Ok(Some(conn.buf.split_to(n).freeze())));
                    }
                    if ready!(conn.poll_fill(cx))? == 0 {
                        return Poll::Ready(Err(cut_short()));
                    }
                }
                Framing::Close => {
                    if !conn.buf.is_empty() {
                        return Poll::Ready(Ok(Some(conn.buf.split().freeze())));
                    }
                    if ready!(conn.poll_fill(cx))? == 0 {
                        self.reusable = false;
                        self.finish();
                        return Poll::Ready(Ok(None));
                    }
                }
                Framing::Chunked(Chunk::End) => {
                    self.finish();
                    return Poll::Ready(Ok(None));
                }
                Framing::Chunked(chunk) => match chunk.advance(&mut conn.buf) {
                    Ok(Some(next)) => *chunk = next,
                    Ok(None) => {
                        if ready!(conn.poll_fill(cx))? == 0 {
                            return Poll::Ready(Err(cut_short()));
                        }
                    }
                    Err(what) => return Poll::Ready(Err(invalid(what))),
                },
            }
        }
    }
}

fn cut_short() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the origin closed the connection before the end of the response body",
    )
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the origin's chunked response body has {what}"),
    )
}

impl Body for OriginBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        let data = match (this.poll_data(cx), &mut this.idle) {
            (Poll::Ready(data), idle) => {
                if let Some(idle) = idle {
                    idle.armed = false;
                }
                data
            }
            (Poll::Pending, None) => return Poll::Pending,
            (Poll::Pending, Some(idle)) => {
                let after = idle.after;
                let timer = idle
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(after)));
                if !idle.armed {
                    timer.as_mut().reset(tokio::time::Instant::now() + after);
                    idle.armed = true;
                }
                if timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the origin sent nothing for {} s in the middle of the response body",
                        idle.after.as_secs_f64()
                    ),
                ))
            }
        };
        match data {
            Ok(Some(data)) => Poll::Ready(Some(Ok(Frame::data(data)))),
            Ok(None) => Poll::Ready(None),
            Err(e) => {
                // The connection is in an unknown state: closed with the body.
                this.conn = None;
                Poll::Ready(Some(Err(e)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.conn.is_none() || self.nothing_left()
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Empty => SizeHint::with_exact(0),
            Framing::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}

impl Drop for OriginBody {
    fn drop(&mut self) {
        // A body with nothing left to read (none, or all of it read) frees its connection
        // even when it was never polled to its end.
        if self.nothing_left() {
            self.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_takes_digits_and_lists_of_one_value() {
        assert_eq!(content_length(b"42"), Some(42));
        assert_eq!(content_length(b"42, 42"), Some(42));
        assert_eq!(content_length(b"42, 43"), None);
        assert_eq!(content_length(b"+42"), None);
        assert_eq!(content_length(b""), None);
        assert_eq!(content_length(b"99999999999999999999"), None);
    }

    #[test]
    fn only_targets_fit_for_a_request_line_go_out_as_they_are() {
        for ok in ["/", "/a/b?c=d&e=%20", "*", "/{x}|<y>"] {
            assert!(origin_form(ok), "{ok}");
        }
        for bad in [
            "",
            "a/b",
            "/a b",
            "/a\r\nx-injected: 1",
            "/caf\u{e9}",
            "/a\tb",
            "/\x7f",
        ] {
            assert!(!origin_form(bad), "{bad:?}");
        }
    }

    #[test]
    fn requests_are_written_in_origin_form_with_a_length_when_there_is_a_body() {
        let mut headers = Headers::new();
        headers.append("Host", "example.test");
        assert_eq!(
            encode(&http::Method::POST, "/a?b=1", &headers, b"hi"),
            b"POST /a?b=1 HTTP/1.1\r\nhost: example.test\r\ncontent-length: 2\r\n\r\nhi"
        );
        let none = Headers::new();
        assert_eq!(
            encode(&http::Method::GET, "/", &none, b""),
            b"GET / HTTP/1.1\r\n\r\n"
        );
    }
}
