//! Helpers shared by the tests that run `edgetrace serve` and the account/token commands.
#![allow(dead_code)] // each test binary uses its own subset

use edgetrace_testnet::Lab;
use serde_json::Value;
use std::io::{Read, Write};
use std::path::Path;
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
