//! Helpers shared by the tests that run `edgetrace serve` and the account/token commands.
#![allow(dead_code)] // each test binary uses its own subset

use edgetrace_testnet::Lab;
use serde_json::Value;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_edgetrace");

/// `edgetrace ARGS --data-dir DATA`, which must succeed; stdout trimmed.
pub fn cli(data: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "edgetrace {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// An account and a token with Magic Transit Write, made with the CLI; checks their shapes and
/// that only the token's hash reaches the database.
/// A new account in `data` and a token with every permission: (account id, token secret).
pub fn admin_account(data: &Path, name: &str) -> (String, String) {
    let account = cli(data, &["account", "create", "--name", name]);
    let token = cli(
        data,
        &[
            "token",
            "create",
            "--account",
            &account,
            "--all-permissions",
        ],
    );
    (account, token)
}

pub fn credentials(data: &Path) -> (String, String) {
    let account = cli(data, &["account", "create", "--name", "e2e"]);
    assert_eq!(account.len(), 32, "{account:?}");
    assert!(
        account
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    let secret = cli(
        data,
        &[
            "token",
            "create",
            "--account",
            &account,
            "--permission",
            "Magic Transit Write",
        ],
    );
    assert_eq!(secret.len(), 40, "only the secret on stdout: {secret:?}");
    let db = std::fs::read(data.join("edgetrace.db")).unwrap_or_default();
    let wal = std::fs::read(data.join("edgetrace.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()));
    }
    (account, secret)
}

pub fn wait_for(path: &Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "edgetrace serve did not create {} within 20 s",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts `edgetrace serve` in `ns` on 127.0.0.1:8080 with the system-probe socket
/// `dir/sysprobe.sock`; returns the server's pid once it is listening.
pub fn start_serve(lab: &mut Lab, ns: &str, dir: &Path, data: &Path, extra: &[&str]) -> u32 {
    let socket = dir.join("sysprobe.sock");
    let mut argv = vec![
        BIN,
        "serve",
        "--listen",
        "127.0.0.1:8080",
        "--data-dir",
        data.to_str().unwrap(),
        "--sysprobe-socket",
        socket.to_str().unwrap(),
    ];
    argv.extend_from_slice(extra);
    let pid = lab.spawn(ns, &argv).unwrap();
    wait_for(&socket);
    pid
}

/// One HTTP/1.1 exchange on a stream (the request must say `Connection: close`); returns the
/// status and the JSON body.
pub fn http(mut s: impl Read + Write, request: &str) -> (u16, Value) {
    s.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {response}"));
    (status, body)
}

/// `GET target` on the system-probe Unix socket.
pub fn unix_get(socket: &Path, target: &str) -> (u16, Value) {
    let s = std::os::unix::net::UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    http(
        s,
        &format!("GET {target} HTTP/1.1\r\nHost: sysprobe\r\nConnection: close\r\n\r\n"),
    )
}

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The venv with the pinned Python tools, created once per test run when missing or stale.
pub fn venv() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let dir = workspace().join("target/e2e-venv");
        let wanted = std::fs::read_to_string(workspace().join("tests/e2e/requirements.txt"))
            .expect("tests/e2e/requirements.txt");
        let stamp = dir.join("requirements.installed");
        if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
            let ok = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&dir)
                .status()
                .expect("python3 runs")
                .success();
            assert!(ok, "python3 -m venv {} failed", dir.display());
            let ok = Command::new(dir.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
                .arg(workspace().join("tests/e2e/requirements.txt"))
                .status()
                .expect("pip runs")
                .success();
            assert!(ok, "pip install of tests/e2e/requirements.txt failed");
            std::fs::write(&stamp, wanted).unwrap();
        }
        dir
    })
}

/// A `nats-server` (Debian package) on `addr:port` inside `ns`, killed with the lab.
pub fn start_nats(lab: &mut Lab, ns: &str, addr: &str, port: u16, log: &Path) -> u32 {
    let port_s = port.to_string();
    let pid = lab
        .spawn_logged(ns, &["nats-server", "-a", addr, "-p", &port_s], log)
        .expect("nats-server runs (Debian package nats-server)");
    let connect = if addr == "0.0.0.0" { "127.0.0.1" } else { addr };
    let target: std::net::SocketAddr = format!("{connect}:{port}").parse().unwrap();
    let start = Instant::now();
    while lab
        .in_ns(ns, || std::net::TcpStream::connect(target))
        .unwrap()
        .is_err()
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "nats-server did not listen on {target} within 10 s: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    pid
}

/// Waits until `log` contains `needle`; panics with the log after `timeout`.
pub fn wait_for_log(log: &Path, needle: &str, timeout: Duration) -> String {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            start.elapsed() < timeout,
            "{needle:?} not in {} within {timeout:?}:\n{text}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts `edgetrace serve --listen 127.0.0.1:8080 --data-dir DATA EXTRA` in `ns`, its output
/// in `log`; returns its pid once it listens.
pub fn start_serve_logged(lab: &mut Lab, ns: &str, data: &Path, extra: &[&str], log: &Path) -> u32 {
    let mut argv = vec![
        BIN,
        "serve",
        "--listen",
        "127.0.0.1:8080",
        "--data-dir",
        data.to_str().unwrap(),
    ];
    argv.extend_from_slice(extra);
    let pid = lab.spawn_logged(ns, &argv, log).unwrap();
    wait_for_log(log, "API on http://", Duration::from_secs(20));
    pid
}

/// One API request to the server on 127.0.0.1:8080 in `ns`.
pub fn api(
    lab: &Lab,
    ns: &str,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let stream = lab
        .in_ns(ns, || std::net::TcpStream::connect("127.0.0.1:8080"))
        .unwrap()
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} /client/v4{path} HTTP/1.1\r\nHost: edgetrace\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    http(stream, &request)
}

/// The node IPs per TTL of a colo's entry.
pub fn hop_ips(colo: &Value) -> Vec<Vec<String>> {
    colo["hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            h["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["ip"].as_str().unwrap().to_string())
                .collect()
        })
        .collect()
}
