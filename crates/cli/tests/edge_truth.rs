//! Truthfulness of the Request Trace API (issue 5): a corpus of requests against a
//! configuration that exercises every action, each traced and then sent through the running
//! proxy to real origins on loopback that echo what they received. What the trace predicts —
//! the status, the request the origin sees (method, rewritten path and query, headers, body,
//! address), the response headers (a redirect's target among them) and what answered — must be
//! what really happened.
//!
//! Everything runs in a network namespace of its own: `edgetrace serve` with the API on
//! 127.0.0.1:8080 and the proxy on 127.0.0.1:8000, and three echo origins written here with
//! std only, on 127.0.0.2:8081 (the proxied records' address and `--proxy-origin-port`),
//! 127.0.0.2:8082 (a `route` rule's port) and 127.0.0.3:8082 (a `route` rule's host and port).
//! Needs root, like every namespace test.

use edgetrace_testnet::Lab;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod common;

use common::{admin_account, api, start_serve_logged};

// ---------------------------------------------------------------------------------------------
// The echo origins

/// One request as an echo origin received it.
#[derive(Debug, Clone, PartialEq)]
struct Received {
    /// The listener's address (`127.0.0.2:8081`, …).
    origin: SocketAddr,
    method: String,
    /// Path and query, as on the request line.
    target: String,
    /// In order, names lowercased.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Echo origins on loopback addresses inside the namespace, each a thread of this process;
/// stopped (and their sockets closed) on drop.
struct Echo {
    log: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Echo {
    fn start(lab: &Lab, ns: &str, addrs: &[&str]) -> Echo {
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for addr in addrs {
            let addr: SocketAddr = addr.parse().unwrap();
            // Loopback addresses other than 127.0.0.1 answer on `lo` without being added.
            let listener = lab
                .in_ns(ns, || TcpListener::bind(addr))
                .unwrap()
                .unwrap_or_else(|e| panic!("echo origin on {addr}: {e}"));
            listener.set_nonblocking(true).unwrap();
            let (log, stop) = (log.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => serve_echo(stream, addr, &log),
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(2));
                        }
                        Err(e) => panic!("echo origin {addr}: accept: {e}"),
                    }
                }
            }));
        }
        Echo { log, stop, threads }
    }

    /// Takes what the origins received since the last call.
    fn take(&self) -> Vec<Received> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Reads an HTTP/1.1 message head (up to the blank line) and returns it and what followed.
fn read_head(stream: &mut TcpStream) -> std::io::Result<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            return Ok((head, buf[end + 4..].to_vec()));
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::new(
                ErrorKind::UnexpectedEof,
                format!("head cut short: {:?}", String::from_utf8_lossy(&buf)),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn parse_headers<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<(String, String)> {
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap_or((l, ""));
            (k.trim().to_ascii_lowercase(), v.trim().to_string())
        })
        .collect()
}

/// Answers one request (one per connection: the answer says `Connection: close`) with a JSON
/// echo of it. `/status/NNN` answers NNN; every answer carries `x-origin` (which listener)
/// and `x-origin-secret` (a header a response rule removes).
fn serve_echo(mut stream: TcpStream, addr: SocketAddr, log: &Mutex<Vec<Received>>) {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let Ok((head, mut body)) = read_head(&mut stream) else {
        return; // a connection opened and closed without a request
    };
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_string();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let headers = parse_headers(lines);
    assert!(
        !headers.iter().any(|(k, _)| k == "transfer-encoding"),
        "the proxy sent a chunked body; the echo origin reads Content-Length only: {head}"
    );
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut chunk = [0u8; 4096];
    while body.len() < length {
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "request body cut short");
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    let status: u16 = target
        .strip_prefix("/status/")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let received = Received {
        origin: addr,
        method: method.clone(),
        target: target.clone(),
        headers: headers.clone(),
        body: body.clone(),
    };
    let echo = json!({
        "origin": addr.to_string(),
        "method": method,
        "target": target,
        "headers": headers.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
        "body": String::from_utf8_lossy(&body),
    })
    .to_string();
    log.lock().unwrap().push(received);
    let label = if addr.port() == 8081 { "a" } else { "b" };
    let response_body = if method == "HEAD" { "" } else { echo.as_str() };
    let response = format!(
        "HTTP/1.1 {status} Echo\r\ncontent-type: application/json\r\nx-origin: {label}\r\n\
         x-origin-secret: s3cret\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{response_body}",
        echo.len()
    );
    let _ = stream.write_all(response.as_bytes());
}

// ---------------------------------------------------------------------------------------------
// The client side

/// A response the proxy sent.
#[derive(Debug)]
struct ProxyResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
            .expect("chunk size");
        data = &data[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// One request through the proxy on 127.0.0.1:8000 in `ns`, HTTP/1.1 with `Connection: close`.
fn through_proxy(lab: &Lab, ns: &str, case: &Case) -> ProxyResponse {
    let mut stream = lab
        .in_ns(ns, || TcpStream::connect("127.0.0.1:8000"))
        .unwrap()
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut request = format!(
        "{} {} {}\r\nHost: {}\r\n",
        case.method, case.target, case.protocol, case.host
    );
    for (k, v) in &case.headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = case.body {
        request.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    request.push_str("Connection: close\r\n\r\n");
    request.push_str(case.body.unwrap_or(""));
    stream.write_all(request.as_bytes()).unwrap();
    let (head, mut rest) = read_head(&mut stream).unwrap();
    stream.read_to_end(&mut rest).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let headers = parse_headers(lines);
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked { dechunk(&rest) } else { rest };
    ProxyResponse {
        status,
        headers,
        body,
    }
}

/// Headers as the trace reports them: names lowercased, repeated headers joined with ", ".
fn header_map(headers: &[(String, String)]) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in headers {
        out.entry(k.to_ascii_lowercase())
            .and_modify(|s| {
                s.push_str(", ");
                s.push_str(v);
            })
            .or_insert_with(|| v.clone());
    }
    out
}

fn json_headers(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .unwrap_or(&Map::new())
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect()
}

/// Headers that belong to the connection a message travelled on, not to the request or
/// response the edge decided: `content-length` (hyper writes it on each hop; the trace's
/// JSON carries no framing), `transfer-encoding`, `connection` (our client's and the echo's
/// `close`) and the `date` hyper's server adds to every response.
const TRANSPORT: &[&str] = &["content-length", "transfer-encoding", "connection", "date"];

fn without_transport(mut m: BTreeMap<String, String>) -> BTreeMap<String, String> {
    m.retain(|k, _| !TRANSPORT.contains(&k.as_str()));
    m
}

// ---------------------------------------------------------------------------------------------
// The corpus

struct Case {
    name: &'static str,
    method: &'static str,
    host: &'static str,
    target: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    body: Option<&'static str>,
    /// `HTTP/1.1` or `HTTP/1.0`.
    protocol: &'static str,
    /// What the configuration should do: the status…
    status: u16,
    /// …and, when given, the redirect target or the path and query the origin sees.
    location: Option<&'static str>,
    origin_target: Option<&'static str>,
    /// Headers the origin must see with these values (`None`: must not see).
    origin_headers: Vec<(&'static str, Option<&'static str>)>,
    /// The origin (listener) that must receive the request.
    origin_addr: Option<&'static str>,
}

fn case(name: &'static str, method: &'static str, target: &'static str, status: u16) -> Case {
    Case {
        name,
        method,
        host: "www.shop.test",
        target,
        headers: Vec::new(),
        body: None,
        protocol: "HTTP/1.1",
        status,
        location: None,
        origin_target: None,
        origin_headers: Vec::new(),
        origin_addr: None,
    }
}

impl Case {
    fn host(mut self, host: &'static str) -> Case {
        self.host = host;
        self
    }
    fn header(mut self, k: &'static str, v: &'static str) -> Case {
        self.headers.push((k, v));
        self
    }
    fn body(mut self, b: &'static str) -> Case {
        self.body = Some(b);
        self
    }
    fn protocol(mut self, p: &'static str) -> Case {
        self.protocol = p;
        self
    }
    fn location(mut self, l: &'static str) -> Case {
        self.location = Some(l);
        self
    }
    fn origin(mut self, t: &'static str) -> Case {
        self.origin_target = Some(t);
        self
    }
    fn sees(mut self, name: &'static str, value: Option<&'static str>) -> Case {
        self.origin_headers.push((name, value));
        self
    }
    fn at(mut self, addr: &'static str) -> Case {
        self.origin_addr = Some(addr);
        self
    }
}

fn corpus() -> Vec<Case> {
    vec![
        case("plain home page", "GET", "/", 200).origin("/"),
        case(
            "plain page with query",
            "GET",
            "/index.html?x=1&y=%20z",
            200,
        )
        .header("User-Agent", "truth/1.0")
        .header("Accept", "text/html")
        .origin("/index.html?x=1&y=%20z"),
        case("percent-encoded path", "GET", "/files/a%20b.txt", 200).origin("/files/a%20b.txt"),
        case("HEAD", "HEAD", "/", 200),
        case("HTTP/1.0", "GET", "/old-client", 200)
            .protocol("HTTP/1.0")
            .sees("x-proto", Some("HTTP/1.0")),
        case("mixed-case host", "GET", "/Mixed/Case", 200)
            .host("WWW.Shop.Test")
            .origin("/Mixed/Case"),
        case("host with a port", "GET", "/with-port?p=1", 200).host("www.shop.test:8000"),
        case("fully qualified host", "GET", "/fqdn", 200).host("www.shop.test."),
        case("empty query", "GET", "/empty?", 200),
        case("dot segments kept", "GET", "/a/./b/../c", 200).origin("/a/./b/../c"),
        case("origin down", "GET", "/down", 502),
        case("origin down, custom error", "GET", "/down-custom", 503),
        case("OPTIONS", "OPTIONS", "/cors", 200),
        case("PUT with a JSON body", "PUT", "/items/9", 200)
            .header("Content-Type", "application/json")
            .body(r#"{"name":"alice","tags":["a","b"]}"#),
        case("POST a form", "POST", "/form", 200)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("name=alice&age=33"),
        case("client X-Forwarded-For is extended", "GET", "/xff", 200)
            .header("X-Forwarded-For", "198.51.100.7")
            .sees("x-forwarded-for", Some("198.51.100.7, 127.0.0.1")),
        case("client cf-connecting-ip is replaced", "GET", "/cfip", 200)
            .header("CF-Connecting-IP", "203.0.113.9")
            .header("X-Forwarded-Proto", "https")
            .sees("cf-connecting-ip", Some("127.0.0.1"))
            .sees("x-forwarded-proto", Some("http")),
        case(
            "a header Connection names stays on this hop",
            "GET",
            "/hop",
            200,
        )
        .header("X-Hop", "1")
        .header("Connection", "X-Hop")
        .header("Keep-Alive", "timeout=5")
        .sees("x-hop", None)
        .sees("keep-alive", None)
        .sees("connection", None),
        // http_request_dynamic_redirect
        case("static redirect 301", "GET", "/old-static", 301)
            .location("https://www.shop.test/new-static"),
        case(
            "static redirect drops the query",
            "GET",
            "/old-static?a=1",
            301,
        )
        .location("https://www.shop.test/new-static"),
        case(
            "dynamic redirect 302 keeps the query",
            "GET",
            "/blog/2024/hello?ref=x",
            302,
        )
        .location("https://blog.shop.test/2024/hello?ref=x"),
        case(
            "relative redirect 307 keeps the query",
            "GET",
            "/go?utm_source=a&k=v",
            307,
        )
        .location("/landing?utm_source=a&k=v"),
        case("relative redirect 307 without query", "GET", "/go", 307).location("/landing"),
        case("redirect 303 for POST only", "POST", "/see-other", 303)
            .body("a=1")
            .location("/thanks"),
        case("no redirect for GET", "GET", "/see-other", 200).origin("/see-other"),
        case("wildcard redirect 308", "GET", "/perm/abc", 308)
            .location("https://www.shop.test/permanent/abc"),
        // http_request_transform
        case("static URI rewrite", "GET", "/rewrite/static", 200).origin("/rewritten/static"),
        case(
            "static URI rewrite keeps the query",
            "GET",
            "/rewrite/static?keep=1",
            200,
        )
        .origin("/rewritten/static?keep=1"),
        case(
            "dynamic path and static query",
            "GET",
            "/v1/users?id=3",
            200,
        )
        .origin("/api/v2/users?migrated=1"),
        case(
            "query args removed",
            "GET",
            "/shoes?utm_source=x&size=42&utm_medium=y",
            200,
        )
        .origin("/shoes?size=42"),
        case("rewritten into a blocked path", "GET", "/secret-alias", 403),
        case(
            "rewrite then cache rule on the new path",
            "GET",
            "/v1/site.css",
            200,
        )
        .origin("/api/v2/site.css?migrated=1"),
        // http_request_origin
        case("route to another host and port", "GET", "/b/item/7", 200)
            .origin("/b/item/7")
            .at("127.0.0.3:8082")
            .sees("host", Some("backend.internal")),
        case("route to another port", "GET", "/port-b?q=1", 200)
            .origin("/port-b?q=1")
            .at("127.0.0.2:8082")
            .sees("host", Some("www.shop.test")),
        case("route host header", "GET", "/hh", 200)
            .header("X-Host", "override")
            .at("127.0.0.2:8081")
            .sees("host", Some("override.shop.test")),
        case("route: last host_header wins", "GET", "/b/both", 200)
            .header("X-Host", "override")
            .at("127.0.0.3:8082")
            .sees("host", Some("override.shop.test")),
        // cache and config settings
        case("cache settings and compression", "GET", "/style.css", 200),
        case("cache off", "GET", "/nocache/page", 200),
        case("config settings", "GET", "/cfg", 200),
        case("config settings accumulate", "GET", "/cfg/ssl", 200),
        // http_request_firewall_custom, zone
        case("block, default response", "GET", "/blocked", 403),
        case("skip the current ruleset (list)", "GET", "/blocked", 200).header("X-Bypass", "1"),
        case("block, custom response", "GET", "/blocked-custom", 418),
        case("challenge", "GET", "/challenge", 403),
        case("managed challenge", "GET", "/managed", 403),
        case("block by method", "DELETE", "/resource/1", 403),
        case("block by body", "POST", "/search", 403).body("q=1; DROP TABLE users"),
        case("body that passes", "POST", "/search", 200).body("q=shoes"),
        case("log and custom log fields", "GET", "/logme", 200).header("User-Agent", "logger"),
        case("list: office address passes", "GET", "/admin", 200),
        // account entry point executing an account custom ruleset, with overrides
        case("account block", "GET", "/acct/block", 403),
        case("account js challenge", "GET", "/acct/js", 403),
        case("account log", "GET", "/acct/log", 200),
        case(
            "account rule disabled by override",
            "GET",
            "/acct/disabled",
            200,
        ),
        case(
            "account rule action overridden to log",
            "GET",
            "/acct/overridden",
            200,
        ),
        case(
            "zone skip cannot skip the account",
            "GET",
            "/acct/block",
            403,
        )
        .header("X-Bypass", "1"),
        // http_request_firewall_managed: execute with overrides, score, skips
        case("managed block with score", "GET", "/m/sqli", 403),
        case("managed log overridden to block", "GET", "/m/xss", 403),
        case("managed rule disabled by override", "GET", "/m/off", 200),
        case(
            "managed rule skipped by a custom rule",
            "GET",
            "/m/skipped",
            200,
        ),
        case("managed ruleset skipped", "GET", "/m/sqli", 200).header("X-Skip-Mgd", "yes"),
        case("managed phase skipped", "GET", "/m/sqli", 200).header("X-Skip-Rl", "yes"),
        case("score", "GET", "/page", 200).header("X-Risk", "high"),
        case("score and managed", "GET", "/m/ok", 200).header("X-Risk", "high"),
        // http_request_late_transform
        case("request headers set, add, remove", "GET", "/headers", 200)
            .header("X-Secret", "hunter2")
            .header("X-Tag", "client")
            .header("X-Edge", "spoofed")
            .sees("x-secret", None)
            .sees("x-tag", Some("client, late, get"))
            .sees("x-edge", Some("edgetrace")),
        case("no late transform on /raw", "GET", "/raw/thing", 200)
            .header("X-Edge", "client")
            .sees("x-edge", Some("client"))
            .sees("x-path", None),
        case(
            "rewritten path in a header, raw path kept",
            "GET",
            "/v1/x",
            200,
        )
        .sees("x-path", Some("/api/v2/x"))
        .sees("x-raw-path", Some("/v1/x")),
        // response phases
        case("custom error 503", "GET", "/status/503", 503),
        case("custom error 404", "GET", "/status/404", 404),
        case("custom error 500", "GET", "/status/500", 500),
        // A custom error without status_code keeps the response's status (Cloudflare: "if
        // provided, this value will override the current response status code").
        case(
            "custom error keeps the origin's status",
            "GET",
            "/status/410/gone",
            410,
        ),
        case(
            "origin 418 passes, response firewall logs",
            "GET",
            "/status/418",
            418,
        ),
        case(
            "origin 201 with response transform",
            "POST",
            "/status/201",
            201,
        )
        .body("x"),
        // page rules
        case("page rule forwarding with $1", "GET", "/legacy/a/b", 302)
            .location("http://www.shop.test/modern/a/b"),
        case(
            "page rule forwarding on another host",
            "GET",
            "/some/path?q=1",
            301,
        )
        .host("old.shop.test")
        .location("https://www.shop.test/some/path?q=1"),
        case("page rule always_use_https", "GET", "/login-page?x=2", 301)
            .host("secure.shop.test")
            .location("https://secure.shop.test/login-page?x=2"),
        case("page rule settings", "GET", "/pr/thing", 200).sees("host", Some("pr.backend.test")),
        case("page rule after a rewrite", "GET", "/v1/legacy-api", 200)
            .origin("/api/v2/legacy-api?migrated=1"),
    ]
}

/// Rate-limited requests, sent within one counting window: 2 per 10 s per address on /login,
/// 1 per 10 s per API key on /api.
fn rate_limited_corpus() -> Vec<Case> {
    vec![
        case("login 1", "POST", "/login", 200).body("u=a&p=1"),
        case("login 2", "POST", "/login", 200).body("u=a&p=2"),
        case("login 3 limited", "POST", "/login", 403).body("u=a&p=3"),
        case("login 4 limited", "POST", "/login", 403).body("u=a&p=4"),
        case("login skips the rate limit phase", "POST", "/login", 200)
            .header("X-Skip-Rl", "yes")
            .body("u=a&p=5"),
        case("api key k1", "GET", "/api/orders", 200).header("X-Api-Key", "k1"),
        case("api key k1 limited", "GET", "/api/orders", 429).header("X-Api-Key", "k1"),
        case("api key k2", "GET", "/api/orders", 200).header("X-Api-Key", "k2"),
        case("api key k2 limited", "GET", "/api/orders?page=2", 429).header("X-Api-Key", "k2"),
    ]
}

// ---------------------------------------------------------------------------------------------
// The configuration

struct Api<'a> {
    lab: &'a Lab,
    ns: &'a str,
    token: &'a str,
}

impl Api<'_> {
    /// A request that must succeed; its `result`.
    fn ok(&self, method: &str, path: &str, body: Value) -> Value {
        let (status, v) = api(self.lab, self.ns, method, path, self.token, Some(&body));
        assert!(
            status == 200 && v["success"] == true,
            "{method} {path}: {status} {v:#}\nbody: {body:#}"
        );
        v["result"].clone()
    }

    fn entrypoint(&self, scope: &str, phase: &str, rules: Value) -> Value {
        self.ok(
            "PUT",
            &format!("/{scope}/rulesets/phases/{phase}/entrypoint"),
            json!({ "rules": rules }),
        )
    }
}

fn rule(expression: &str, action: &str, params: Value) -> Value {
    let mut r = json!({"expression": expression, "action": action, "description": format!("{action}: {expression}")});
    if !params.is_null() {
        r["action_parameters"] = params;
    }
    r
}

fn rule_ids(ruleset: &Value) -> Vec<String> {
    ruleset["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

fn configure(a: &Api<'_>, account: &str) {
    let acc = format!("accounts/{account}");
    let zone = a.ok(
        "POST",
        "/zones",
        json!({"name": "shop.test", "account": {"id": account}, "type": "full"}),
    );
    let zone_id = zone["id"].as_str().unwrap().to_string();
    let zn = format!("zones/{zone_id}");
    for name in ["www", "old", "secure"] {
        a.ok(
            "POST",
            &format!("/{zn}/dns_records"),
            json!({"type": "A", "name": name, "content": "127.0.0.2", "proxied": true, "ttl": 1}),
        );
    }
    for (name, ip) in [("office", "127.0.0.1"), ("partners", "10.0.0.0/8")] {
        let list = a.ok(
            "POST",
            &format!("/{acc}/rules/lists"),
            json!({"name": name, "kind": "ip", "description": name}),
        );
        let id = list["id"].as_str().unwrap();
        a.ok(
            "POST",
            &format!("/{acc}/rules/lists/{id}/items"),
            json!([{ "ip": ip }]),
        );
    }

    // Account level: a custom ruleset run by the account's entry point, with overrides.
    let acct_waf = a.ok(
        "POST",
        &format!("/{acc}/rulesets"),
        json!({"name": "account waf", "kind": "custom", "phase": "http_request_firewall_custom", "rules": [
            rule(r#"http.request.uri.path eq "/acct/block""#, "block", Value::Null),
            rule(r#"http.request.uri.path eq "/acct/js""#, "js_challenge", Value::Null),
            rule(r#"http.request.uri.path eq "/acct/log""#, "log", Value::Null),
            rule(r#"http.request.uri.path eq "/acct/disabled""#, "block", Value::Null),
            rule(r#"http.request.uri.path eq "/acct/overridden""#, "block", Value::Null),
        ]}),
    );
    let acct_id = acct_waf["id"].as_str().unwrap().to_string();
    let acct_rules = rule_ids(&acct_waf);
    a.entrypoint(
        &acc,
        "http_request_firewall_custom",
        json!([rule(
            r#"starts_with(http.request.uri.path, "/acct/") and http.host eq "www.shop.test""#,
            "execute",
            json!({"id": acct_id, "overrides": {"rules": [
                {"id": acct_rules[3], "enabled": false},
                {"id": acct_rules[4], "action": "log"},
            ]}}),
        )]),
    );

    // Zone level: a custom ruleset of the managed phase.
    let mgd = a.ok(
        "POST",
        &format!("/{zn}/rulesets"),
        json!({"name": "zone managed", "kind": "custom", "phase": "http_request_firewall_managed", "rules": [
            rule(r#"starts_with(http.request.uri.path, "/m/")"#, "score", json!({"increment": 7})),
            rule(r#"http.request.uri.path eq "/m/sqli""#, "block", Value::Null),
            rule(r#"http.request.uri.path eq "/m/xss""#, "log", Value::Null),
            rule(r#"http.request.uri.path eq "/m/off""#, "block", Value::Null),
            rule(r#"http.request.uri.path eq "/m/skipped""#, "block", Value::Null),
        ]}),
    );
    let mgd_id = mgd["id"].as_str().unwrap().to_string();
    let mgd_rules = rule_ids(&mgd);

    a.entrypoint(
        &zn,
        "http_request_dynamic_redirect",
        json!([
            rule(r#"http.request.uri.path eq "/old-static""#, "redirect",
                json!({"from_value": {"target_url": {"value": "https://www.shop.test/new-static"}, "status_code": 301}})),
            rule(r#"starts_with(http.request.uri.path, "/blog/")"#, "redirect",
                json!({"from_value": {"target_url": {"expression": r#"concat("https://blog.shop.test/", substring(http.request.uri.path, 6))"#},
                    "status_code": 302, "preserve_query_string": true}})),
            rule(r#"http.request.uri.path eq "/go""#, "redirect",
                json!({"from_value": {"target_url": {"value": "/landing"}, "status_code": 307, "preserve_query_string": true}})),
            rule(r#"http.request.uri.path eq "/see-other" and http.request.method eq "POST""#, "redirect",
                json!({"from_value": {"target_url": {"value": "/thanks"}, "status_code": 303}})),
            rule(r#"starts_with(http.request.uri.path, "/perm/")"#, "redirect",
                json!({"from_value": {"target_url": {"expression": r#"wildcard_replace(http.request.full_uri, "http://www.shop.test/perm/*", "https://www.shop.test/permanent/${1}")"#},
                    "status_code": 308}})),
        ]),
    );
    a.entrypoint(
        &zn,
        "http_request_transform",
        json!([
            rule(r#"http.request.uri.path eq "/rewrite/static""#, "rewrite",
                json!({"uri": {"path": {"value": "/rewritten/static"}}})),
            rule(r#"starts_with(http.request.uri.path, "/v1/")"#, "rewrite",
                json!({"uri": {"path": {"expression": r#"regex_replace(http.request.uri.path, "^/v1/", "/api/v2/")"#},
                    "query": {"value": "migrated=1"}}})),
            rule(r#"http.request.uri.query contains "utm_""#, "rewrite",
                json!({"uri": {"query": {"expression": r#"remove_query_args(http.request.uri.query, "utm_source", "utm_medium")"#}}})),
            rule(r#"http.request.uri.path eq "/secret-alias""#, "rewrite",
                json!({"uri": {"path": {"value": "/blocked"}}})),
        ]),
    );
    a.entrypoint(
        &zn,
        "http_request_origin",
        json!([
            rule(r#"starts_with(http.request.uri.path, "/b/")"#, "route",
                json!({"host_header": "backend.internal", "origin": {"host": "127.0.0.3", "port": 8082}})),
            rule(r#"http.request.uri.path eq "/port-b""#, "route", json!({"origin": {"port": 8082}})),
            rule(r#"starts_with(http.request.uri.path, "/down")"#, "route",
                json!({"origin": {"port": 8089}})),
            rule(r#"any(http.request.headers["x-host"][*] eq "override")"#, "route",
                json!({"host_header": "override.shop.test"})),
        ]),
    );
    a.entrypoint(
        &zn,
        "http_request_cache_settings",
        json!([
            rule(
                r#"ends_with(http.request.uri.path, ".css")"#,
                "set_cache_settings",
                json!({"cache": true, "edge_ttl": {"mode": "override_origin", "default": 3600}})
            ),
            rule(
                r#"starts_with(http.request.uri.path, "/nocache")"#,
                "set_cache_settings",
                json!({"cache": false})
            ),
        ]),
    );
    a.entrypoint(
        &zn,
        "http_config_settings",
        json!([
            rule(
                r#"starts_with(http.request.uri.path, "/cfg")"#,
                "set_config",
                json!({"security_level": "high", "rocket_loader": false})
            ),
            rule(
                r#"http.request.uri.path eq "/cfg/ssl""#,
                "set_config",
                json!({"ssl": "full", "security_level": "low"})
            ),
        ]),
    );
    a.entrypoint(
        &zn,
        "http_request_firewall_custom",
        json!([
            rule(r#"ip.src in $office and any(http.request.headers["x-bypass"][*] eq "1")"#, "skip",
                json!({"ruleset": "current"})),
            rule(r#"any(http.request.headers["x-skip-rl"][*] eq "yes")"#, "skip",
                json!({"phases": ["http_ratelimit", "http_request_firewall_managed"]})),
            rule(r#"http.request.uri.path eq "/m/skipped""#, "skip",
                json!({"rules": {mgd_id.as_str(): [mgd_rules[4]]}})),
            rule(r#"any(http.request.headers["x-skip-mgd"][*] eq "yes")"#, "skip",
                json!({"rulesets": [mgd_id]})),
            rule(r#"http.request.uri.path eq "/blocked""#, "block", Value::Null),
            rule(r#"http.request.uri.path eq "/blocked-custom""#, "block",
                json!({"response": {"status_code": 418, "content": "{\"error\":\"teapot\"}", "content_type": "application/json"}})),
            rule(r#"http.request.uri.path eq "/challenge""#, "challenge", Value::Null),
            rule(r#"http.request.uri.path eq "/managed""#, "managed_challenge", Value::Null),
            rule(r#"http.request.method eq "DELETE""#, "block", Value::Null),
            rule(r#"http.request.body.raw contains "DROP TABLE""#, "block", Value::Null),
            rule(r#"http.request.uri.path eq "/logme""#, "log", Value::Null),
            rule(r#"http.request.uri.path eq "/admin" and not ip.src in $office"#, "block", Value::Null),
            rule(r#"ip.src in $partners"#, "block", Value::Null),
        ]),
    );
    a.entrypoint(
        &zn,
        "http_ratelimit",
        json!([
            {
                "expression": r#"http.request.uri.path eq "/login""#,
                "action": "block",
                "description": "login attempts",
                "ratelimit": {"characteristics": ["ip.src", "cf.colo.id"], "period": 10,
                    "requests_per_period": 2, "mitigation_timeout": 10},
            },
            {
                "expression": r#"starts_with(http.request.uri.path, "/api/orders")"#,
                "action": "block",
                "description": "per API key",
                "action_parameters": {"response": {"status_code": 429, "content": "slow down", "content_type": "text/plain"}},
                "ratelimit": {"characteristics": ["http.request.headers[\"x-api-key\"]", "cf.colo.id"],
                    "period": 10, "requests_per_period": 1, "mitigation_timeout": 0},
            },
        ]),
    );
    a.entrypoint(
        &zn,
        "http_request_firewall_managed",
        json!([
            rule(
                r#"starts_with(http.request.uri.path, "/m/")"#,
                "execute",
                json!({"id": mgd_id, "overrides": {"rules": [
                    {"id": mgd_rules[2], "action": "block"},
                    {"id": mgd_rules[3], "enabled": false},
                ]}})
            ),
            rule(
                r#"any(http.request.headers["x-risk"][*] eq "high")"#,
                "score",
                json!({"increment": 20})
            ),
        ]),
    );
    a.entrypoint(
        &zn,
        "http_request_late_transform",
        json!([
            rule(r#"not starts_with(http.request.uri.path, "/raw")"#, "rewrite",
                json!({"headers": {
                    "x-edge": {"operation": "set", "value": "edgetrace"},
                    "x-path": {"operation": "set", "expression": "http.request.uri.path"},
                    "x-raw-path": {"operation": "set", "expression": "raw.http.request.uri.path"},
                    "x-proto": {"operation": "set", "expression": "http.request.version"},
                }})),
            rule(r#"len(http.request.headers["x-secret"]) > 0"#, "rewrite",
                json!({"headers": {
                    "x-secret": {"operation": "remove"},
                    "x-tag": {"operation": "add", "value": "late"},
                }})),
            rule(r#"http.request.uri.path eq "/headers""#, "rewrite",
                json!({"headers": {"x-tag": {"operation": "add", "expression": "lower(http.request.method)"}}})),
        ]),
    );
    a.entrypoint(
        &zn,
        "http_custom_errors",
        json!([
            rule("http.response.code eq 503", "serve_error",
                json!({"content": "<h1>Down for maintenance</h1>", "content_type": "text/html", "status_code": 503})),
            rule(r#"http.response.code eq 404 and starts_with(http.request.uri.path, "/status/")"#, "serve_error",
                json!({"content": "{\"error\":\"not found\"}", "content_type": "application/json", "status_code": 404})),
            rule("http.response.code in {500 410}", "serve_error", json!({"content": "oops"})),
            rule(r#"http.response.code eq 502 and http.request.uri.path eq "/down-custom""#, "serve_error",
                json!({"content": "origin down", "content_type": "text/plain", "status_code": 503})),
        ]),
    );
    a.entrypoint(
        &zn,
        "http_response_headers_transform",
        json!([
            rule(
                "http.response.code lt 400",
                "rewrite",
                json!({"headers": {
                    "x-served-by": {"operation": "set", "value": "edgetrace"},
                    "x-origin-secret": {"operation": "remove"},
                    "x-req-path": {"operation": "set", "expression": "http.request.uri.path"},
                }})
            ),
            rule(
                r#"any(http.response.headers["x-origin"][*] eq "b")"#,
                "rewrite",
                json!({"headers": {"x-backend": {"operation": "add", "value": "b"}}})
            ),
        ]),
    );
    a.entrypoint(
        &zn,
        "http_response_compression",
        json!([rule(
            r#"ends_with(http.request.uri.path, ".css")"#,
            "compress_response",
            json!({"algorithms": [{"name": "gzip"}, {"name": "auto"}]})
        )]),
    );
    a.entrypoint(
        &zn,
        "http_response_firewall_managed",
        json!([rule("http.response.code eq 418", "log", Value::Null)]),
    );
    a.entrypoint(
        &zn,
        "http_log_custom_fields",
        json!([rule(
            r#"http.request.uri.path eq "/logme""#,
            "log_custom_field",
            json!({"request_fields": [{"name": "user-agent"}]})
        )]),
    );

    // Page rules.
    for (pattern, actions, priority) in [
        (
            "old.shop.test/*",
            json!([{"id": "forwarding_url", "value": {"url": "https://www.shop.test/$1", "status_code": 301}}]),
            3,
        ),
        (
            "www.shop.test/legacy/*",
            json!([{"id": "forwarding_url", "value": {"url": "http://www.shop.test/modern/$1", "status_code": 302}}]),
            2,
        ),
        ("secure.shop.test/*", json!([{"id": "always_use_https"}]), 1),
        (
            "www.shop.test/pr/*",
            json!([{"id": "cache_level", "value": "bypass"}, {"id": "security_level", "value": "high"},
                {"id": "host_header_override", "value": "pr.backend.test"}]),
            1,
        ),
        (
            "www.shop.test/api/v2/legacy-*",
            json!([{"id": "browser_cache_ttl", "value": 3600}]),
            1,
        ),
    ] {
        a.ok(
            "POST",
            &format!("/{zn}/pagerules"),
            json!({"targets": [{"target": "url", "constraint": {"operator": "matches", "value": pattern}}],
                "actions": actions, "priority": priority, "status": "active"}),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The check

/// Adds every matched rule's action (and `ratelimit` for a rate-limiting rule over its limit,
/// `page_rule:ID` for each action of the page rule that applied) found in `steps`.
fn matched_actions(steps: &Value, phase: Option<&str>, out: &mut BTreeSet<String>) {
    for step in steps.as_array().into_iter().flatten() {
        let phase = step["phase"].as_str().or(phase);
        match step["type"].as_str() {
            Some("rule") if step["matched"] == true => {
                let action = step["action"].as_str().unwrap().to_string();
                if phase == Some("http_ratelimit") {
                    out.insert("ratelimit".into());
                }
                if step["expression"].as_str().unwrap_or("").contains('$') {
                    out.insert("list".into());
                }
                out.insert(action);
            }
            Some("page_rule") => {
                for a in step["action_parameters"]["actions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    let id = a["id"].as_str().unwrap();
                    out.insert(match id {
                        "forwarding_url" | "always_use_https" => format!("page_rule:{id}"),
                        _ => "page_rule:setting".into(),
                    });
                }
            }
            _ => {}
        }
        matched_actions(&step["trace"], phase, out);
    }
}

/// Traces `case`, sends it through the proxy, and checks that the trace told the truth;
/// returns the actions that matched.
fn check_case(
    lab: &Lab,
    ns: &str,
    token: &str,
    account: &str,
    echo: &Echo,
    case: &Case,
) -> BTreeSet<String> {
    let name = case.name;
    let mut headers = Map::new();
    for (k, v) in &case.headers {
        headers.insert((*k).to_string(), json!(v));
    }
    let mut body = json!({
        "method": case.method,
        "url": format!("http://{}{}", case.host, case.target),
        "headers": headers,
        "protocol": case.protocol,
    });
    if let Some(b) = case.body {
        body["body"] = json!({ "plain_text": b });
    }
    echo.take();
    let (status, traced) = api(
        lab,
        ns,
        "POST",
        &format!("/accounts/{account}/request-tracer/trace"),
        token,
        Some(&body),
    );
    assert!(
        status == 200 && traced["success"] == true,
        "{name}: trace: {status} {traced:#}"
    );
    let t = &traced["result"];
    let outcome = &t["outcome"];
    let by_trace = echo.take();
    let proxied = through_proxy(lab, ns, case);
    let by_proxy = echo.take();
    let context = || {
        format!(
            "{name}: {} {}{}\ntrace: {t:#}\nproxy: {} {:?} {}\norigin saw (trace): {by_trace:?}\norigin saw (proxy): {by_proxy:?}",
            case.method,
            case.host,
            case.target,
            proxied.status,
            proxied.headers,
            String::from_utf8_lossy(&proxied.body)
        )
    };

    // The status.
    assert_eq!(
        t["status_code"].as_u64(),
        Some(u64::from(proxied.status)),
        "status: {}",
        context()
    );
    assert_eq!(
        proxied.status,
        case.status,
        "expected status: {}",
        context()
    );

    // The response headers (a redirect's Location, a rule's content-type, header rewrites).
    let predicted = without_transport(json_headers(&outcome["response_headers"]));
    let actual = without_transport(header_map(&proxied.headers));
    assert_eq!(predicted, actual, "response headers: {}", context());
    if let Some(l) = case.location {
        assert_eq!(
            actual.get("location").map(String::as_str),
            Some(l),
            "Location: {}",
            context()
        );
    }

    // Who answered, and what the origin received.
    let answered_by = outcome["answered_by"].as_str();
    match outcome.get("origin_request") {
        None => {
            assert!(
                by_proxy.is_empty() && by_trace.is_empty(),
                "the trace says no request reached the origin: {}",
                context()
            );
            let by = answered_by.unwrap_or_else(|| panic!("nothing answered: {}", context()));
            let kind_ok = match by {
                "redirect" | "page_rule" => {
                    (300..400).contains(&proxied.status) && actual.contains_key("location")
                }
                "block" => (400..500).contains(&proxied.status),
                "challenge" | "js_challenge" | "managed_challenge" => {
                    proxied.status == 403
                        && String::from_utf8_lossy(&proxied.body).contains("required")
                }
                other => panic!("unexpected answered_by {other:?}: {}", context()),
            };
            assert!(kind_ok, "answered_by {by}: {}", context());
        }
        Some(_) if outcome.get("origin_error").is_some() => {
            assert!(
                by_proxy.is_empty() && by_trace.is_empty(),
                "the trace says the origin could not be reached: {}",
                context()
            );
            assert!(
                matches!(proxied.status, 502 | 504) || answered_by == Some("serve_error"),
                "origin error: {}",
                context()
            );
        }
        Some(o) => {
            assert_eq!(by_proxy.len(), 1, "one origin request: {}", context());
            let got = &by_proxy[0];
            assert_eq!(
                by_trace.len(),
                1,
                "the trace calls the origin too: {}",
                context()
            );
            // What the trace's own origin call carried is what the proxy's carried. Compared
            // as a map: the trace API takes headers as a JSON object, which has no order.
            let same = |r: &Received| {
                (
                    r.origin,
                    r.method.clone(),
                    r.target.clone(),
                    header_map(&r.headers),
                    r.body.clone(),
                )
            };
            assert_eq!(
                same(&by_trace[0]),
                same(got),
                "trace vs proxy at the origin: {}",
                context()
            );
            assert_eq!(o["method"], json!(got.method), "method: {}", context());
            let url = o["url"].as_str().unwrap();
            let after_scheme = url.strip_prefix("http://").unwrap();
            let path = &after_scheme[after_scheme.find('/').unwrap()..];
            assert_eq!(path, got.target, "path and query: {}", context());
            assert_eq!(
                o["address"],
                json!(got.origin.to_string()),
                "origin address: {}",
                context()
            );
            let predicted = without_transport(json_headers(&o["headers"]));
            let actual = without_transport(header_map(&got.headers));
            assert_eq!(predicted, actual, "origin request headers: {}", context());
            assert_eq!(
                &after_scheme[..after_scheme.find('/').unwrap()],
                actual["host"],
                "URL host is the Host header: {}",
                context()
            );
            assert_eq!(
                got.body,
                case.body.unwrap_or("").as_bytes(),
                "origin body: {}",
                context()
            );
            if let Some(target) = case.origin_target {
                assert_eq!(got.target, target, "expected origin target: {}", context());
            }
            if let Some(addr) = case.origin_addr {
                assert_eq!(
                    got.origin.to_string(),
                    addr,
                    "expected origin: {}",
                    context()
                );
            }
            for (name, value) in &case.origin_headers {
                assert_eq!(
                    actual.get(*name).map(String::as_str),
                    *value,
                    "expected origin header {name}: {}",
                    context()
                );
            }
            match answered_by {
                None => {
                    // The origin's own answer: its status, and (not for HEAD) its echo.
                    if case.method != "HEAD" {
                        let echo: Value = serde_json::from_slice(&proxied.body)
                            .unwrap_or_else(|e| panic!("{e}: {}", context()));
                        assert_eq!(echo["target"], json!(got.target), "{}", context());
                    }
                }
                Some("serve_error") => assert!(
                    proxied.status >= 400 && !proxied.body.starts_with(b"{\"origin\""),
                    "custom error replaced the origin's answer: {}",
                    context()
                ),
                Some(other) => panic!("answered_by {other} after the origin: {}", context()),
            }
        }
    }
    let mut actions = BTreeSet::new();
    matched_actions(&t["trace"], None, &mut actions);
    if outcome.get("score").is_some() {
        actions.insert("score".into());
    }
    actions
}

fn unix_now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
}

#[test]
fn traces_predict_what_the_proxy_does() {
    let started = Instant::now();
    let mut lab = Lab::new("truth").unwrap();
    let ns = lab.add_ns("edge").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let log = tmp.path().join("serve.log");
    let (account, token) = admin_account(&data, "truth");
    let echo = Echo::start(
        &lab,
        &ns,
        &["127.0.0.2:8081", "127.0.0.2:8082", "127.0.0.3:8082"],
    );
    start_serve_logged(
        &mut lab,
        &ns,
        &data,
        &[
            "--proxy-listen",
            "127.0.0.1:8000",
            "--proxy-origin-port",
            "8081",
            "--no-dns",
        ],
        &log,
    );
    let a = Api {
        lab: &lab,
        ns: &ns,
        token: &token,
    };
    configure(&a, &account);

    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut requests = 0;
    let mut run = |cases: Vec<Case>| {
        for c in &cases {
            for a in check_case(&lab, &ns, &token, &account, &echo, c) {
                *counts.entry(a).or_default() += 1;
            }
            requests += 1;
        }
    };
    run(corpus());
    // The rate-limited requests must fall in one 10 s counting window: start early in one.
    let into_window = unix_now().as_secs_f64() % 10.0;
    if into_window > 4.0 {
        std::thread::sleep(Duration::from_secs_f64(10.0 - into_window + 0.05));
    }
    run(rate_limited_corpus());

    eprintln!(
        "{requests} requests in {:?}; matched actions: {counts:?}",
        started.elapsed()
    );
    assert!(requests >= 50, "{requests} requests");
    for action in [
        "block",
        "challenge",
        "js_challenge",
        "managed_challenge",
        "redirect",
        "serve_error",
        "rewrite",
        "route",
        "set_config",
        "set_cache_settings",
        "log",
        "score",
        "execute",
        "skip",
        "compress_response",
        "log_custom_field",
        "ratelimit",
        "list",
        "page_rule:forwarding_url",
        "page_rule:always_use_https",
        "page_rule:setting",
    ] {
        assert!(
            counts.contains_key(action),
            "no trace matched {action}: {counts:?}"
        );
    }
    let serve_log = std::fs::read_to_string(&log).unwrap();
    assert!(
        serve_log.contains("matched"),
        "the proxy performs log rules: {serve_log}"
    );
}
