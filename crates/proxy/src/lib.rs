//! The edge: one request handler, [`Edge::handle`], run for real by the reverse proxy
//! ([`server`]) and in trace mode by the Request Trace API.
//!
//! ```text
//!   proxy listener ──► server::proxy ─┐                      ┌─► origin (origin.rs)
//!                                     ├─► Edge::handle ──────┤
//!   POST …/request-tracer/trace ──────┘   request phases,    └─► response phases
//!                                         page rules (edge::pipeline)
//! ```
//!
//! Both callers build an `edge::pipeline::Request` and hand it to the same function with a
//! [`Mode`]: the proxy performs the side effects ([`effects::Perform`]: rate-limit counters
//! count, challenges are served, logs are written), a trace records them
//! ([`effects::Record`]: counters are read, `skip_challenge` passes challenges) and calls the
//! origin only without `skip_response`. Because the code is the same, a trace cannot drift
//! from what the proxy does.

mod chunked;
pub mod effects;
mod h1;
pub mod headers;
pub mod origin;
pub mod server;
pub mod site;

use bytes::Bytes;
use edgetrace_edge::pipeline::{
    Geo, HeaderEdit, Outcome, Pipeline, Request, Response, RunOptions, Step,
};
use edgetrace_enrich::{AsnDb, GeoDb};
use edgetrace_rules::Scheme;
use effects::{Counters, Perform, Record};
use headers::Headers;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use site::{Site, Sites};
use smallvec::SmallVec;
use std::borrow::Cow;
use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

pub use site::LoadError;

/// A response body: the origin's, streamed, or one the edge wrote.
pub type Body = BoxBody<Bytes, std::io::Error>;

/// A response: its status, its headers (none of them hop-by-hop: the server writes its own
/// framing), its body.
pub struct Reply<B = Body> {
    pub status: http::StatusCode,
    pub headers: Headers,
    pub body: B,
}

/// How long the origin may take to answer with its headers, and then go without sending a
/// byte of the body [30 s].
pub const DEFAULT_ORIGIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a client may go silent in the middle of a request [30 s].
pub const DEFAULT_CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a client connection may stay open without a request [75 s, as nginx's
/// `keepalive_timeout`].
pub const DEFAULT_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(75);

/// Whether a (lowercase) header belongs to one connection and is not forwarded (RFC 9110
/// §7.6.1), or is one the server writes itself (`content-length`). A `match`: it runs for every
/// header of every request and response. (A name added here goes in [`hop_or_edge_written`]
/// too.)
fn hop_by_hop(lower: &[u8]) -> bool {
    matches!(
        lower,
        b"connection"
            | b"keep-alive"
            | b"proxy-connection"
            | b"transfer-encoding"
            | b"te"
            | b"trailer"
            | b"upgrade"
            | b"content-length"
    )
}

/// Whether an HTTP/1.x connection stays open after a message with this `Connection` header
/// `value`, `keep_alive` being what it was before the header was seen: `close` ends it,
/// `keep-alive` keeps an HTTP/1.0 one (HTTP/1.1 ones stay open anyway).
fn keeps_alive(value: &[u8], version: http::Version, mut keep_alive: bool) -> bool {
    for token in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
        if token.eq_ignore_ascii_case(b"close") {
            keep_alive = false;
        } else if token.eq_ignore_ascii_case(b"keep-alive") && version == http::Version::HTTP_10 {
            keep_alive = true;
        }
    }
    keep_alive
}

/// Whether a (lowercase) header is one of the forwarding headers the edge writes to the
/// origin ([`forwarded`]), replacing the client's. (A name added here goes in
/// [`hop_or_edge_written`] too.)
fn edge_written(lower: &[u8]) -> bool {
    matches!(
        lower,
        b"cdn-loop"
            | b"x-forwarded-for"
            | b"x-forwarded-proto"
            | b"cf-connecting-ip"
            | b"cf-ipcountry"
            | b"cf-visitor"
    )
}

/// Whether `name` (any case) is [`hop_by_hop`] or [`edge_written`]: by its length first (most
/// names are none of them; a test checks it against the two).
fn hop_or_edge_written(name: &str) -> bool {
    let is = |n: &str| name.eq_ignore_ascii_case(n);
    match name.len() {
        2 => is("te"),
        7 => is("trailer") || is("upgrade"),
        8 => is("cdn-loop"),
        10 => is("connection") || is("keep-alive") || is("cf-visitor"),
        12 => is("cf-ipcountry"),
        14 => is("content-length"),
        15 => is("x-forwarded-for"),
        16 => is("proxy-connection") || is("cf-connecting-ip"),
        17 => is("transfer-encoding") || is("x-forwarded-proto"),
        _ => false,
    }
}

/// This edge's name in `CDN-Loop` (RFC 8586), added to every request sent to an origin.
pub const CDN_LOOP: &str = "edgetrace";
/// A request that has been through edgetrace this many times already is answered 508 (an
/// origin that points back at the proxy).
pub const MAX_LOOPS: usize = 8;

/// How many times `request` went through edgetrace already, by its `CDN-Loop` headers.
fn loops(request: &Request<'_>) -> usize {
    request
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("cdn-loop"))
        .flat_map(|(_, v)| v.split(','))
        .filter(|t| {
            t.split(';')
                .next()
                .is_some_and(|name| name.trim().eq_ignore_ascii_case(CDN_LOOP))
        })
        .count()
}

/// Whether a request is served or traced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Served by the proxy: side effects happen.
    Proxy,
    /// Traced: side effects are recorded; the origin is called unless `skip_response`.
    Trace {
        skip_challenge: bool,
        skip_response: bool,
    },
}

/// What goes (or, with `skip_response`, would go) to the origin.
#[derive(Debug, Clone)]
pub struct Forwarded {
    /// The origin's address, when it could be resolved.
    pub address: Option<SocketAddr>,
    /// Every header sent, exactly as sent (a header whose name or value is not valid in HTTP
    /// is not sent, so not here either); `host` first in a trace, where the client sent it in
    /// the proxy.
    pub headers: Headers,
}

impl Forwarded {
    /// `http://HOST/path?query` for `request` (the outcome's: its path and query are what is
    /// sent), HOST being the `Host` header the origin receives.
    pub fn url(&self, request: &Request<'_>) -> String {
        let host = self
            .headers
            .get("host")
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        format!("http://{host}{}", request.uri)
    }
}

/// The result of one request through the edge.
pub struct Handled<'r> {
    /// Every step, request phases then page rules then response phases, in evaluation order.
    pub trace: Vec<Step>,
    /// What the request phases decided (`trace` moved out).
    pub outcome: Outcome<'r>,
    /// What was sent to the origin (in a trace; the proxy sends it without keeping a copy);
    /// `None` when a rule answered, and for the proxy.
    pub forwarded: Option<Forwarded>,
    /// The action that answered instead of the origin (`block`, `redirect`, `page_rule`,
    /// `managed_challenge`, `serve_error`, …), if one did.
    pub answered_by: Option<String>,
    /// Why the origin could not be reached (the response is then a 502 or 504).
    pub origin_error: Option<String>,
    /// The response to send; `None` for a trace with `skip_response` that no rule answered.
    pub response: Option<Reply>,
}

/// The edge of one process: sites, counters, the origin client, geolocation.
pub struct Edge {
    pub sites: Sites,
    scheme: Arc<Scheme>,
    counters: Counters,
    /// GeoLite2-City/Country database for `ip.src.*` fields.
    pub geo: Option<GeoDb>,
    /// ASN database for `ip.src.asnum`.
    pub asn: Option<AsnDb>,
    /// The origins' port when no `route` rule names one; `None`: the port the request came in
    /// on (for a trace: the URL's port).
    pub origin_port: Option<u16>,
    /// How long the origin may take to answer with its headers, and then go silent in the
    /// middle of the body (the client's response is then cut off) [`DEFAULT_ORIGIN_TIMEOUT`].
    pub origin_timeout: Duration,
    /// How long an HTTP/1.1 client may take to send the rest of a request head it has
    /// started (all of it), or of a body (between two reads); then a 408 and the connection
    /// closed. Also how long a TLS handshake may take [`DEFAULT_CLIENT_TIMEOUT`].
    pub client_timeout: Duration,
    /// How long a client connection may wait for its next request (or its first) before it
    /// is closed (HTTP/2: shut down gracefully); checked every quarter of it, so an idle
    /// connection goes after between 1 and 1¼ times this [`DEFAULT_KEEP_ALIVE_TIMEOUT`].
    pub keep_alive_timeout: Duration,
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// Headers as the pipeline sees them: lowercase names, values decoded lossily (a byte that is
/// not UTF-8 becomes U+FFFD), in order, repeated names kept; borrowed from `headers` (the
/// lossily decoded ones are copies).
pub fn header_pairs(headers: &Headers) -> Vec<(Cow<'_, str>, Cow<'_, str>)> {
    // Room for a few more: the headers rewrites add (and HTTP/2's `host`) need no new list.
    let mut pairs = Vec::with_capacity(headers.len() + 4);
    pairs.extend(headers.texts());
    pairs
}

/// [`header_pairs`] as text of its own (the pipeline's list of a response's headers).
fn owned_header_pairs(headers: &Headers) -> Vec<(Cow<'static, str>, Cow<'static, str>)> {
    headers
        .texts()
        .map(|(k, v)| (k.into_owned().into(), v.into_owned().into()))
        .collect()
}

/// A plain-text response written by the edge.
pub fn text_response(status: u16, text: String) -> Reply {
    let mut headers = Headers::with_capacity(1);
    headers.push(b"content-type", b"text/plain; charset=utf-8");
    Reply {
        status: status_code(status),
        headers,
        body: full(text),
    }
}

fn status_code(status: u16) -> http::StatusCode {
    http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_GATEWAY)
}

/// A response with the headers of a list the pipeline wrote (a name or value that is not
/// valid in HTTP is left out).
fn response_from<T: AsRef<str>>(status: u16, pairs: &[(T, T)], body: Body) -> Reply {
    let mut headers = Headers::with_capacity(pairs.len());
    for (k, v) in pairs {
        headers.append(k.as_ref(), v.as_ref());
    }
    response_with(status, headers, body)
}

/// A response with `headers`, less the hop-by-hop ones.
fn response_with(status: u16, mut headers: Headers, body: Body) -> Reply {
    strip_hop_by_hop(&mut headers);
    Reply {
        status: status_code(status),
        headers,
        body,
    }
}

/// The edge's answer when the origin could not be reached (`status` 502 or 504).
fn unreachable_origin(status: u16, why: &str) -> Reply {
    text_response(status, format!("edgetrace: origin unreachable: {why}\n"))
}

/// Removes the headers that belong to the origin's connection (and the ones the server writes),
/// and the ones its `Connection` header names.
fn strip_hop_by_hop(headers: &mut Headers) {
    // Usually `keep-alive` or `close`: hop-by-hop anyway, removed with the others.
    let nominated: SmallVec<[Vec<u8>; 4]> = headers
        .get_all("connection")
        .flat_map(|v| v.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|t| {
            !t.is_empty()
                && !t.eq_ignore_ascii_case(b"keep-alive")
                && !t.eq_ignore_ascii_case(b"close")
        })
        .map(<[u8]>::to_ascii_lowercase)
        .collect();
    headers.retain(|k| !hop_by_hop(k) && !nominated.iter().any(|n| n == k));
}

/// Replays the rewrites' header operations on `headers` (the headers the pipeline's list
/// was made from with [`header_pairs`]): they then hold the headers the list holds. A name
/// or value that is not valid in HTTP is left out (a `set` of one removes the header), as a
/// list of headers built from the pipeline's would leave it out; untouched headers keep their
/// bytes (a value that is not UTF-8 too).
fn replay(headers: &mut Headers, edits: &[HeaderEdit<'_>]) {
    for edit in edits {
        match edit {
            HeaderEdit::Set(name, v) => {
                if !headers.set(name, v) {
                    headers.remove(name);
                }
            }
            HeaderEdit::Add(name, v) => {
                headers.append(name, v);
            }
            HeaderEdit::Remove(name) => headers.remove(name),
        }
    }
}

impl Edge {
    /// The edge of `store`'s zones; its sites are read on the current tokio runtime.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn new(store: edgetrace_store::Store) -> Edge {
        let scheme = Arc::new(Scheme::cloudflare());
        Edge {
            sites: Sites::new(store, scheme.clone()),
            scheme,
            counters: Counters::default(),
            geo: None,
            asn: None,
            origin_port: None,
            origin_timeout: DEFAULT_ORIGIN_TIMEOUT,
            client_timeout: DEFAULT_CLIENT_TIMEOUT,
            keep_alive_timeout: DEFAULT_KEEP_ALIVE_TIMEOUT,
        }
    }

    /// Geolocation of a client address from the configured databases; `None` (every field
    /// missing) without them.
    pub fn geo_of(&self, ip: IpAddr) -> Option<Box<Geo>> {
        if self.geo.is_none() && self.asn.is_none() {
            return None;
        }
        let g = edgetrace_enrich::Geo::of(ip, self.geo.as_ref(), self.asn.as_ref());
        Some(Box::new(Geo {
            country: g.country,
            continent: g.continent,
            city: g.city,
            region_code: g.region_code,
            postal_code: g.postal_code,
            latitude: g.lat,
            longitude: g.lon,
            subdivision_1_iso_code: g.subdivision_1_iso_code,
            subdivision_2_iso_code: g.subdivision_2_iso_code,
            is_in_european_union: g.is_in_european_union,
            timezone: g.timezone_name,
            asnum: g.asnum.map(i64::from),
        }))
    }

    /// Runs one request through `site`'s pipeline and, unless a rule answers (or a trace
    /// skips it), the origin and the response phases. `client_headers`: the headers the
    /// request came with, when there are (the proxy's; the origin's request starts from
    /// them, see [`forwarded`]). `port` is the port the request came in on (the origin's port
    /// unless configured otherwise).
    pub async fn handle<'r>(
        &'r self,
        site: &'r Site,
        request: Request<'r>,
        client_headers: Option<Headers>,
        port: u16,
        mode: Mode,
        options: RunOptions,
    ) -> Handled<'r> {
        if loops(&request) >= MAX_LOOPS {
            let response = text_response(
                508,
                format!(
                    "edgetrace: loop detected: the request went through edgetrace {MAX_LOOPS} times (CDN-Loop); does the origin of {} point back at the proxy?\n",
                    site.host
                ),
            );
            return Handled {
                trace: Vec::new(),
                outcome: Outcome::untouched(request),
                forwarded: None,
                answered_by: Some("loop_detection".into()),
                origin_error: None,
                response: Some(response),
            };
        }
        let pipeline = Pipeline {
            scheme: &self.scheme,
            config: &site.config,
            options,
        };
        let mut perform = Perform {
            counters: &self.counters,
        };
        let mut record = Record {
            counters: &self.counters,
            skip_challenge: matches!(
                mode,
                Mode::Trace {
                    skip_challenge: true,
                    ..
                }
            ),
        };
        let effects: &mut (dyn edgetrace_edge::pipeline::Effects + Send) = match mode {
            Mode::Proxy => &mut perform,
            Mode::Trace { .. } => &mut record,
        };
        let (mut outcome, fields) = pipeline.request_keeping(request, effects);
        let mut trace = std::mem::take(&mut outcome.trace);
        if let Some(answer) = &outcome.answer {
            let response = response_from(answer.status, &answer.headers, full(answer.body.clone()));
            return Handled {
                trace,
                answered_by: Some(answer.action.clone()),
                outcome,
                forwarded: None,
                origin_error: None,
                response: Some(response),
            };
        }
        let (address, resolve_error) = match self.origin_address(site, &outcome, port).await {
            Ok(a) => (Some(a), None),
            Err(e) => (None, Some(e)),
        };
        let forwarded = forwarded(&outcome, address, client_headers);
        if let Mode::Trace {
            skip_response: true,
            ..
        } = mode
        {
            return Handled {
                trace,
                outcome,
                forwarded: Some(forwarded),
                answered_by: None,
                origin_error: resolve_error,
                response: None,
            };
        }
        // The proxy hands its request over; a trace keeps what was sent to show it.
        let (sent, forwarded) = match mode {
            Mode::Proxy => (forwarded, None),
            Mode::Trace { .. } => (forwarded.clone(), Some(forwarded)),
        };
        let fetched = match address {
            None => Err((502, resolve_error.unwrap_or_default())),
            Some(addr) => self.fetch(sent, &outcome, addr).await,
        };
        let (status, origin_headers, body, origin_error) = match fetched {
            Ok(reply) => (
                reply.status.as_u16(),
                Some(reply.headers),
                Some(reply.body),
                None,
            ),
            Err((status, e)) => (status, None, None, Some(e)),
        };
        if !pipeline.runs_response_phases() {
            // Nothing can change the origin's response: its headers go back as they came.
            let response = match (origin_headers, body, &origin_error) {
                (Some(headers), Some(body), _) => response_with(status, headers, body),
                (_, _, e) => unreachable_origin(status, e.as_deref().unwrap_or_default()),
            };
            return Handled {
                trace,
                answered_by: None,
                outcome,
                forwarded,
                origin_error,
                response: Some(response),
            };
        }
        // The origin's headers become the pipeline's list only when rules read them; its
        // rewrites are replayed on the origin's headers either way.
        let origin = Response {
            status,
            headers: match &origin_headers {
                Some(h) if pipeline.reads_response_headers() => owned_header_pairs(h),
                _ => Vec::new(),
            },
            body: Vec::new(),
        };
        let responded = pipeline.response_from(&outcome, fields, origin, effects, &mut trace);
        let (response, answered) = (responded.response, responded.answered);
        let response = match (answered, body, &origin_error, origin_headers) {
            (false, Some(body), _, Some(mut headers)) => {
                // The origin's headers with the response phases' rewrites replayed on them.
                replay(&mut headers, &responded.header_edits);
                response_with(response.status, headers, body)
            }
            (false, _, e, _) => {
                let mut headers = response.headers;
                headers.retain(|(k, _)| !k.eq_ignore_ascii_case("content-type"));
                headers.push(("content-type".into(), "text/plain; charset=utf-8".into()));
                let text = format!(
                    "edgetrace: origin unreachable: {}\n",
                    e.as_deref().unwrap_or_default()
                );
                response_from(response.status, &headers, full(text))
            }
            (true, ..) => response_from(response.status, &response.headers, full(response.body)),
        };
        Handled {
            trace,
            answered_by: answered.then(|| "serve_error".to_string()),
            outcome,
            forwarded,
            origin_error,
            response: Some(response),
        }
    }

    /// Where the origin is: a `route` rule's host and port, else the site's proxied records
    /// (A/AAAA content, or a CNAME's target resolved).
    async fn origin_address(
        &self,
        site: &Site,
        outcome: &Outcome<'_>,
        port: u16,
    ) -> Result<SocketAddr, String> {
        let port = outcome
            .route
            .origin_port
            .or(self.origin_port)
            .unwrap_or(port);
        if let (None, Some(ip)) = (&outcome.route.origin_host, site.origin_ip) {
            return Ok(SocketAddr::new(ip, port));
        }
        let host: &str = match &outcome.route.origin_host {
            Some(h) => h,
            None => match site.origins.first() {
                Some(r) => &r.record.content,
                None => {
                    return Err(format!(
                        "{} has no proxied DNS record in zone {}",
                        site.host, site.zone.name
                    ));
                }
            },
        };
        if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, port));
        }
        tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| format!("cannot resolve origin {host}: {e}"))?
            .next()
            .ok_or_else(|| format!("origin {host} has no address"))
    }

    /// Sends the request to the origin; its status and headers and the body to stream, or
    /// the status to answer with and why.
    async fn fetch(
        &self,
        sent: Forwarded,
        outcome: &Outcome<'_>,
        address: SocketAddr,
    ) -> Result<Reply, (u16, String)> {
        let r = &outcome.request;
        let method = http::Method::from_bytes(r.method.as_bytes()).unwrap_or(http::Method::GET);
        let mut reply = origin::send(
            address,
            &method,
            &r.uri,
            &sent.headers,
            &r.body,
            self.origin_timeout,
        )
        .await
        .map_err(|e| (e.status, e.message))?;
        reply.body.idle_timeout(self.origin_timeout);
        Ok(Reply {
            status: reply.status,
            headers: reply.headers,
            body: reply.body.boxed(),
        })
    }
}

/// The request the origin receives: the rewritten request, its `Host` (a `route` rule's
/// `host_header` or the original), without hop-by-hop headers, with the forwarding headers.
///
/// `client` is the header list the request came with (the proxy's; `None` for a trace): the
/// origin's headers then start from it, with the rules' changes to the request's headers
/// applied ([`replay`]), instead of being made again one by one from the pipeline's list;
/// the headers are the same either way (a value that is not UTF-8 and that no rule touched
/// keeps its bytes), `host` keeps its place among them.
fn forwarded(
    outcome: &Outcome<'_>,
    address: Option<SocketAddr>,
    client: Option<Headers>,
) -> Forwarded {
    let r = &outcome.request;
    // One pass over the request's headers for the ones this needs.
    let (mut host_header, mut forwarded_for) = (None, None);
    let mut loops: Vec<&str> = Vec::new();
    // Headers the client's `Connection` header names are for this hop only (RFC 9110 §7.6.1).
    let mut nominated: Vec<String> = Vec::new();
    // Whether a header is there that is not forwarded as it is (`dropped` below): hardly ever,
    // and otherwise the client's list is not gone over again to take them out.
    let mut strip = false;
    for (k, v) in &r.headers {
        match k.len() {
            4 if k.eq_ignore_ascii_case("host") => {
                host_header.get_or_insert(v.as_ref());
            }
            8 if k.eq_ignore_ascii_case("cdn-loop") => {
                loops.push(v);
                strip = true;
            }
            10 if k.eq_ignore_ascii_case("connection") => {
                nominated.extend(v.split(',').map(|t| t.trim().to_ascii_lowercase()));
                strip = true;
            }
            15 if k.eq_ignore_ascii_case("x-forwarded-for") => {
                forwarded_for = Some(v.as_ref());
                strip = true;
            }
            _ => strip |= hop_or_edge_written(k),
        }
    }
    let host: &str = match &outcome.route.host_header {
        Some(h) => h,
        None => host_header.unwrap_or(r.host.as_ref()),
    };
    // Not forwarded as they are: this hop's own, and the ones the edge writes below.
    let dropped = |lower: &[u8]| {
        lower == b"host"
            || hop_by_hop(lower)
            || edge_written(lower)
            || (!nominated.is_empty() && nominated.iter().any(|n| n.as_bytes() == lower))
    };
    let host_ok = headers::valid_value(host.as_bytes());
    let mut headers = match client {
        Some(mut headers) => {
            replay(&mut headers, &outcome.header_edits);
            if strip {
                headers.retain(|k| k == b"host" || !dropped(k));
            }
            if !host_ok {
                headers.remove("host");
            } else if headers.get("host") != Some(host.as_bytes()) {
                // Usually the client's own `Host`: left as it is.
                headers.set("host", host);
            }
            headers
        }
        None => {
            let mut headers = Headers::with_capacity(r.headers.len() + 6);
            if host_ok {
                headers.append("host", host);
            }
            for (k, v) in &r.headers {
                // Names from the proxy's listener are lowercase already; a trace's may not be.
                if !dropped(k.to_ascii_lowercase().as_bytes()) {
                    headers.append(k, v);
                }
            }
            headers
        }
    };
    let mut append = |name: &str, value: &[u8]| headers.push(name.as_bytes(), value);
    let ip = address_value(r.client_ip);
    match forwarded_for {
        Some(f) => {
            let value = format!("{f}, {}", r.client_ip);
            // The client's value was not valid to begin with: none sent.
            if headers::valid_value(value.as_bytes()) {
                append("x-forwarded-for", value.as_bytes());
            }
        }
        None => append("x-forwarded-for", &ip),
    }
    let (scheme, visitor) = if r.https {
        ("https", r#"{"scheme":"https"}"#)
    } else {
        ("http", r#"{"scheme":"http"}"#)
    };
    append("x-forwarded-proto", scheme.as_bytes());
    append("cf-connecting-ip", &ip);
    append("cf-visitor", visitor.as_bytes());
    if let Some(c) = r.geo().country.as_deref()
        && headers::valid_value(c.as_bytes())
    {
        append("cf-ipcountry", c.as_bytes());
    }
    if loops.is_empty() {
        append("cdn-loop", CDN_LOOP.as_bytes());
    } else {
        loops.push(CDN_LOOP);
        let value = loops.join(", ");
        if headers::valid_value(value.as_bytes()) {
            append("cdn-loop", value.as_bytes());
        }
    }
    Forwarded { address, headers }
}

/// `ip` as a header value. The last one is kept per thread: the requests of a connection (and
/// of a client's connections) come from one address, and writing an address out is a good
/// part of what building the forwarding headers costs.
fn address_value(ip: IpAddr) -> Bytes {
    thread_local! {
        static LAST: RefCell<Option<(IpAddr, Bytes)>> = const { RefCell::new(None) };
    }
    // Bytes its clones (CF-Connecting-IP, the cache's) share rather than copy.
    let make = || Bytes::from(ip.to_string());
    LAST.try_with(|last| {
        let mut last = last.borrow_mut();
        match &*last {
            Some((cached, value)) if *cached == ip => value.clone(),
            _ => {
                let value = make();
                *last = Some((ip, value.clone()));
                value
            }
        }
    })
    .unwrap_or_else(|_| make())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Headers as parsed: lowercase names, any bytes a parser lets through.
    fn parsed(fields: &[(&'static str, &'static [u8])]) -> Headers {
        let mut h = Headers::new();
        for &(k, v) in fields {
            h.push(k.as_bytes(), v);
        }
        h
    }

    #[test]
    fn header_pairs_keep_order_and_repeats_and_decode_lossily() {
        let h = parsed(&[
            ("x-a", b"1"),
            ("x-utf8", "café".as_bytes()),
            ("x-a", b"2"),
            ("x-bin", b"a\xffb"),
        ]);
        let pairs = header_pairs(&h);
        assert_eq!(
            pairs,
            [
                ("x-a".into(), "1".into()),
                ("x-utf8".into(), "café".into()),
                ("x-a".into(), "2".into()),
                ("x-bin".into(), "a\u{fffd}b".into()),
            ]
        );
        // Text that is UTF-8 is borrowed from the message, not copied; the rest decoded.
        let borrowed: Vec<bool> = pairs
            .iter()
            .map(|(_, v)| matches!(v, Cow::Borrowed(_)))
            .collect();
        assert_eq!(borrowed, [true, true, true, false]);
        assert!(pairs.iter().all(|(k, _)| matches!(k, Cow::Borrowed(_))));
    }

    #[test]
    fn the_cached_address_value_follows_the_address() {
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        for ip in [a, a, b, a, b, b] {
            assert_eq!(address_value(ip), ip.to_string().as_str());
        }
    }

    /// A GET of `http://a.test/` from 192.0.2.1 with `headers`.
    fn get(headers: &[(&'static str, &'static str)]) -> Request<'static> {
        Request {
            method: "GET".into(),
            https: false,
            host: "a.test".into(),
            uri: "/".into(),
            version: "HTTP/1.1".into(),
            headers: headers.iter().map(|&(k, v)| (k.into(), v.into())).collect(),
            body: Vec::new(),
            client_ip: "192.0.2.1".parse().unwrap(),
            geo: None,
            bot_score: None,
            verified_bot: false,
            threat_score: None,
        }
    }

    #[test]
    fn cdn_loop_counts_only_this_edge() {
        let mut r = get(&[
            ("CDN-Loop", "edgetrace, other; x=1, EdgeTrace ; v=2"),
            ("cdn-loop", "edgetrace"),
            ("x-edgetrace", "edgetrace"),
        ]);
        assert_eq!(loops(&r), 3);
        r.headers.clear();
        assert_eq!(loops(&r), 0);
    }

    /// What `forwarded` sends for a request with `headers`, given as the pipeline's list and
    /// as the client's own list (names lowercased), as the proxy gives them.
    fn forwarded_for_headers(headers: &[(&'static str, &'static str)]) -> Vec<(String, String)> {
        let outcome = Outcome::untouched(get(headers));
        let mut client = Headers::new();
        for &(k, v) in headers {
            client.push(k.to_ascii_lowercase().as_bytes(), v.as_bytes());
        }
        forwarded(&outcome, None, Some(client))
            .headers
            .iter()
            .map(|(k, v)| {
                let text = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
                (text(k), text(v))
            })
            .collect()
    }

    #[test]
    fn hop_or_edge_written_is_the_two_lists() {
        let names = [
            "connection",
            "keep-alive",
            "proxy-connection",
            "transfer-encoding",
            "te",
            "trailer",
            "upgrade",
            "content-length",
            "cdn-loop",
            "x-forwarded-for",
            "x-forwarded-proto",
            "cf-connecting-ip",
            "cf-ipcountry",
            "cf-visitor",
        ];
        for name in names {
            assert!(hop_by_hop(name.as_bytes()) || edge_written(name.as_bytes()));
            assert!(hop_or_edge_written(name), "{name}");
            assert!(hop_or_edge_written(&name.to_ascii_uppercase()), "{name}");
        }
        // Other names of those lengths are neither.
        for other in [
            "tx",
            "referer",
            "user-agent",
            "x-forwarded-fox",
            "cf-connecting-iq",
        ] {
            assert!(!hop_or_edge_written(other), "{other}");
            assert!(!hop_by_hop(other.as_bytes()) && !edge_written(other.as_bytes()));
        }
    }

    #[test]
    fn hop_by_hop_and_edge_written_request_headers_are_not_forwarded_as_they_came() {
        let own = [
            ("x-forwarded-for", "192.0.2.1"),
            ("x-forwarded-proto", "http"),
            ("cf-connecting-ip", "192.0.2.1"),
            ("cf-visitor", r#"{"scheme":"http"}"#),
            ("cdn-loop", CDN_LOOP),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let kept = [("host", "a.test"), ("x-keep", "1")];
        let expected: Vec<_> = kept
            .iter()
            .map(|&(k, v)| (k.to_string(), v.to_string()))
            .chain(own.clone())
            .collect();
        // Nothing to drop: the client's headers as they came, then the edge's own.
        assert_eq!(forwarded_for_headers(&kept), expected);
        // Each of the names not forwarded as it came, alone among the others and in any case
        // (the pipeline's list keeps the case a rule gave): gone, or the edge's value instead.
        for name in [
            "Connection",
            "Keep-Alive",
            "Proxy-Connection",
            "Transfer-Encoding",
            "TE",
            "Trailer",
            "Upgrade",
            "Content-Length",
            "X-Forwarded-Proto",
            "CF-Connecting-IP",
            "CF-IPCountry",
            "CF-Visitor",
        ] {
            let sent = forwarded_for_headers(&[kept[0], (name, "1.2.3.4"), kept[1]]);
            assert_eq!(sent, expected, "{name}");
        }
        // The client's own chain and loop marks are continued, not sent twice.
        let sent = forwarded_for_headers(&[
            kept[0],
            ("X-Forwarded-For", "198.51.100.7"),
            ("CDN-Loop", "other"),
            kept[1],
        ]);
        let mut expected = expected;
        expected[2].1 = "198.51.100.7, 192.0.2.1".into();
        expected[6].1 = format!("other, {CDN_LOOP}");
        assert_eq!(sent, expected);
    }

    #[test]
    fn hop_by_hop_response_headers_are_stripped_with_the_ones_connection_names() {
        let mut h = parsed(&[
            ("server", b"nginx"),
            ("connection", b"keep-alive, X-Private"),
            ("keep-alive", b"timeout=5"),
            ("x-private", b"1"),
            ("transfer-encoding", b"chunked"),
            ("content-length", b"22"),
            ("set-cookie", b"a=1"),
        ]);
        strip_hop_by_hop(&mut h);
        assert_eq!(h, parsed(&[("server", b"nginx"), ("set-cookie", b"a=1")]));
    }

    #[test]
    fn header_edits_replayed_touch_only_their_names() {
        let mut h = parsed(&[
            ("server", b"nginx"),
            ("set-cookie", b"a=1"),
            ("x-gone", b"1"),
            ("set-cookie", b"b=2"),
            ("x-latin", b"caf\xe9"),
            ("x-set", b"old"),
            ("x-set", b"older"),
        ]);
        // What the rewrites did: x-gone removed, x-set set, x-new added twice, a cookie added
        // to the two there are; a value and a name HTTP does not allow are left out (a set
        // with a bad value removes the header).
        let edit = |op, name: &'static str, value: &'static str| match op {
            "set" => HeaderEdit::Set(name.into(), value.into()),
            "add" => HeaderEdit::Add(name.into(), value.into()),
            _ => HeaderEdit::Remove(name.into()),
        };
        let edits = [
            edit("remove", "X-Gone", ""),
            edit("set", "x-set", "new"),
            edit("add", "x-new", "1"),
            edit("add", "X-New", "2"),
            edit("add", "set-cookie", "c=3"),
            edit("set", "server", "bad\nvalue"),
            edit("add", "bad name", "1"),
        ];
        replay(&mut h, &edits);
        assert_eq!(
            h,
            parsed(&[
                ("set-cookie", b"a=1"),
                ("set-cookie", b"b=2"),
                ("x-latin", b"caf\xe9"), // untouched: its bytes, not U+FFFD
                ("x-set", b"new"),       // where the first one was
                ("x-new", b"1"),
                ("x-new", b"2"),
                ("set-cookie", b"c=3"),
            ])
        );
    }
}
