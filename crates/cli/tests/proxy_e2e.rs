//! The edge proxy end to end, as a client sees it: `edgetrace serve --proxy-listen` in a
//! namespace of its own, a real origin inside it (a small echo server on 127.0.0.2), curl as
//! the client. Over TLS (a certificate made by openssl), HTTP/1.1 and HTTP/2 by ALPN, with a
//! GeoLite2-City-like database built by the test: `ip.src.country` rules match, the origin gets
//! `CF-IPCountry`. In plain text, HTTP/1.1 and HTTP/2 with prior knowledge, without a
//! geolocation database: the same rules do not match. Plus the proxy's own answers: an unknown
//! host, an unreachable origin, a body over the limit. Needs root, like every namespace test.

use edgetrace_testnet::Lab;
use mmdb_writer::{Value as Mmdb, Writer};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

mod common;

use common::{admin_account, api, start_serve_logged};

/// Serves `listener` (already bound inside the namespace): every request is answered 200 with
/// a JSON echo of its method, target and headers.
fn echo_origin(listener: TcpListener) {
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut out = stream;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut parts = line.split_whitespace();
                    let method = parts.next().unwrap_or("").to_string();
                    let target = parts.next().unwrap_or("").to_string();
                    let mut headers = Vec::new();
                    let mut length = 0usize;
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        let h = h.trim_end();
                        if h.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = h.split_once(':') {
                            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_string());
                            if k == "content-length" {
                                length = v.parse().unwrap_or(0);
                            }
                            headers.push(json!([k, v]));
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let echo = json!({"method": method, "target": target, "headers": headers,
                                      "body_length": length})
                    .to_string();
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{echo}",
                        echo.len()
                    );
                    if out.write_all(response.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
}

/// A GeoLite2-City-like database placing 127.0.0.0/8 in London.
fn city_db(path: &Path) {
    let names = |n: &str| Mmdb::map([("en", Mmdb::from(n))]);
    let mut w = Writer::builder("GeoLite2-City")
        .description(&[("en", "edgetrace test data")])
        .build();
    let london = Mmdb::map([
        ("city", Mmdb::map([("names", names("London"))])),
        (
            "continent",
            Mmdb::map([("code", Mmdb::from("EU")), ("names", names("Europe"))]),
        ),
        ("country", Mmdb::map([("iso_code", Mmdb::from("GB"))])),
        (
            "location",
            Mmdb::map([
                ("latitude", Mmdb::from(51.5142f64)),
                ("longitude", Mmdb::from(-0.0931f64)),
                ("time_zone", Mmdb::from("Europe/London")),
            ]),
        ),
    ]);
    w.insert_value(
        "127.0.0.0/8".parse::<mmdb_writer::ipnet::IpNet>().unwrap(),
        london,
    )
    .unwrap();
    std::fs::write(path, w.to_bytes().unwrap()).unwrap();
}

/// An account with an all-permission token, a zone `shop.test` with `www` proxied to
/// 127.0.0.2 and `down` proxied to 127.0.0.9 (nothing listens there), and rules: a block of
/// `/geo` for visitors from GB, a header naming the visitor's country.
fn configure(lab: &Lab, ns: &str, token: &str, account: &str) {
    let (status, zone) = api(
        lab,
        ns,
        "POST",
        "/zones",
        token,
        Some(&json!({"name": "shop.test", "account": {"id": account}})),
    );
    assert_eq!(status, 200, "{zone}");
    let zone = zone["result"]["id"].as_str().unwrap().to_string();
    for (name, ip) in [
        ("www", "127.0.0.2"),
        ("down", "127.0.0.9"),
        ("loop", "127.0.0.1"),
    ] {
        let (status, r) = api(
            lab,
            ns,
            "POST",
            &format!("/zones/{zone}/dns_records"),
            token,
            Some(&json!({"type": "A", "name": name, "content": ip, "proxied": true})),
        );
        assert_eq!(status, 200, "{r}");
    }
    for (phase, rules) in [
        (
            "http_request_firewall_custom",
            json!([{"expression": "ip.src.country eq \"GB\" and http.request.uri.path eq \"/geo\"",
                    "action": "block", "action_parameters": {"response": {"status_code": 451,
                    "content": "not here", "content_type": "text/plain"}}}]),
        ),
        (
            // loop.shop.test's origin is the plain-text proxy itself.
            "http_request_origin",
            json!([{"expression": "http.host eq \"loop.shop.test\"", "action": "route",
                    "action_parameters": {"origin": {"port": 8000}}}]),
        ),
        (
            "http_request_late_transform",
            json!([{"expression": "true", "action": "rewrite", "action_parameters": {"headers": {
                    "x-visitor-country": {"operation": "set", "expression": "ip.src.country"}}}}]),
        ),
    ] {
        let (status, r) = api(
            lab,
            ns,
            "PUT",
            &format!("/zones/{zone}/rulesets/phases/{phase}/entrypoint"),
            token,
            Some(&json!({ "rules": rules })),
        );
        assert_eq!(status, 200, "{r}");
    }
}

/// curl in the namespace; returns (status, HTTP version, body).
fn curl(lab: &Lab, ns: &str, args: &[&str]) -> (u16, String, String) {
    let mut argv = vec![
        "curl",
        "-sS",
        "--max-time",
        "20",
        "-w",
        "\n%{http_code} %{http_version}",
    ];
    argv.extend_from_slice(args);
    let out = lab.exec(ns, &argv).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "curl {args:?}: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (body, tail) = stdout.rsplit_once('\n').unwrap();
    let (code, version) = tail.split_once(' ').unwrap();
    (code.parse().unwrap(), version.to_string(), body.to_string())
}

fn header<'a>(echo: &'a Value, name: &str) -> Option<&'a str> {
    echo["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h[0] == name)
        .and_then(|h| h[1].as_str())
}

/// A namespace with serve (extra flags), the echo origin on 127.0.0.2:8081, the configuration;
/// returns the lab, the namespace, the token and the account.
fn start(tag: &str, dir: &Path, extra: &[&str]) -> (Lab, String, String, String) {
    let mut lab = Lab::new(tag).unwrap();
    let ns = lab.add_ns("edge").unwrap();
    lab.ip(&ns, &["addr", "add", "127.0.0.2/8", "dev", "lo"])
        .unwrap();
    let listener = lab
        .in_ns(&ns, || TcpListener::bind("127.0.0.2:8081"))
        .unwrap()
        .unwrap();
    echo_origin(listener);
    let data = dir.join("data");
    let (account, token) = admin_account(&data, "proxy");
    let mut args = vec!["--no-dns", "--proxy-origin-port", "8081"];
    args.extend_from_slice(extra);
    let log = dir.join("serve.log");
    start_serve_logged(&mut lab, &ns, &data, &args, &log);
    common::wait_for_log(&log, "edge proxy on", Duration::from_secs(10));
    configure(&lab, &ns, &token, &account);
    (lab, ns, token, account)
}

#[test]
fn tls_http1_and_http2_with_geolocation() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (cert, key, geo) = (
        dir.join("cert.pem"),
        dir.join("key.pem"),
        dir.join("city.mmdb"),
    );
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=www.shop.test"])
        .args(["-addext", "subjectAltName=DNS:www.shop.test"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    city_db(&geo);
    let (lab, ns, token, account) = start(
        "proxytls",
        dir,
        &[
            "--proxy-listen",
            "127.0.0.1:8443",
            "--proxy-tls-cert",
            cert.to_str().unwrap(),
            "--proxy-tls-key",
            key.to_str().unwrap(),
            "--geo-db",
            geo.to_str().unwrap(),
        ],
    );
    let tls = [
        "--cacert",
        cert.to_str().unwrap(),
        "--resolve",
        "www.shop.test:8443:127.0.0.1",
    ];
    for (flag, version) in [("--http1.1", "1.1"), ("--http2", "2")] {
        let mut args = tls.to_vec();
        args.extend([flag, "https://www.shop.test:8443/hello?x=1"]);
        let (status, got, body) = curl(&lab, &ns, &args);
        assert_eq!((status, got.as_str()), (200, version), "{body}");
        let echo: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(echo["target"], "/hello?x=1");
        assert_eq!(header(&echo, "x-forwarded-proto"), Some("https"));
        assert_eq!(header(&echo, "cf-visitor"), Some("{\"scheme\":\"https\"}"));
        assert_eq!(header(&echo, "cf-ipcountry"), Some("GB"), "{echo}");
        assert_eq!(header(&echo, "x-visitor-country"), Some("GB"), "{echo}");
        assert_eq!(header(&echo, "x-forwarded-for"), Some("127.0.0.1"));
        assert_eq!(header(&echo, "host"), Some("www.shop.test:8443"));

        let mut args = tls.to_vec();
        args.extend([flag, "https://www.shop.test:8443/geo"]);
        let (status, got, body) = curl(&lab, &ns, &args);
        assert_eq!(
            (status, got.as_str(), body.as_str()),
            (451, version, "not here")
        );
    }
    // The tracer sees the same geolocation for the same client address.
    let (status, trace) = api(
        &lab,
        &ns,
        "POST",
        &format!("/accounts/{account}/request-tracer/trace"),
        &token,
        Some(&json!({"method": "GET", "url": "https://www.shop.test/geo",
                     "context": {"ip": "127.0.0.1"}, "skip_response": true})),
    );
    assert_eq!(status, 200, "{trace}");
    assert_eq!(trace["result"]["status_code"], 451, "{trace}");
    assert_eq!(trace["result"]["outcome"]["answered_by"], "block");
}

#[test]
fn plain_http1_and_h2c_without_geolocation() {
    let tmp = tempfile::tempdir().unwrap();
    let (lab, ns, _token, _account) = start(
        "proxyplain",
        tmp.path(),
        &["--proxy-listen", "127.0.0.1:8000"],
    );
    let resolve = ["--resolve", "www.shop.test:8000:127.0.0.1"];
    for (flag, version) in [("--http1.1", "1.1"), ("--http2-prior-knowledge", "2")] {
        let mut args = resolve.to_vec();
        args.extend([flag, "http://www.shop.test:8000/geo"]);
        let (status, got, body) = curl(&lab, &ns, &args);
        // Without a geolocation database ip.src.country is missing: the block does not match.
        assert_eq!((status, got.as_str()), (200, version), "{body}");
        let echo: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(echo["target"], "/geo");
        assert_eq!(header(&echo, "x-forwarded-proto"), Some("http"));
        assert_eq!(header(&echo, "cdn-loop"), Some("edgetrace"));
        assert_eq!(header(&echo, "cf-ipcountry"), None, "{echo}");
        assert_eq!(header(&echo, "x-visitor-country"), None, "{echo}");
    }
    // A host no zone proxies.
    let (status, _, body) = curl(
        &lab,
        &ns,
        &["-H", "Host: other.test", "http://127.0.0.1:8000/"],
    );
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no zone proxies other.test"), "{body}");
    // An origin nobody listens on.
    let (status, _, body) = curl(
        &lab,
        &ns,
        &["-H", "Host: down.shop.test", "http://127.0.0.1:8000/"],
    );
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("origin unreachable"), "{body}");
    // An origin that is the proxy itself: CDN-Loop stops it.
    let (status, _, body) = curl(
        &lab,
        &ns,
        &["-H", "Host: loop.shop.test", "http://127.0.0.1:8000/"],
    );
    assert_eq!(status, 508, "{body}");
    assert!(body.contains("loop detected"), "{body}");
    // A body over the proxy's limit, and one under it that reaches the origin whole.
    let big = tempfile::NamedTempFile::new().unwrap();
    big.as_file().set_len(9 * 1024 * 1024).unwrap();
    let upload = format!("@{}", big.path().display());
    let (status, _, body) = curl(
        &lab,
        &ns,
        &[
            "-H",
            "Host: www.shop.test",
            "--data-binary",
            &upload,
            "http://127.0.0.1:8000/up",
        ],
    );
    assert_eq!(status, 413, "{body}");
    big.as_file().set_len(3 * 1024 * 1024).unwrap();
    let (status, _, body) = curl(
        &lab,
        &ns,
        &[
            "-H",
            "Host: www.shop.test",
            "--data-binary",
            &upload,
            "http://127.0.0.1:8000/up",
        ],
    );
    assert_eq!(status, 200, "{body}");
    let echo: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["body_length"], 3 * 1024 * 1024);
}
