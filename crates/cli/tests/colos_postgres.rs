//! Two `serve` replicas on one real PostgreSQL database share accounts, tokens and results.
//!
//! The server's URL comes from `EDGETRACE_TEST_POSTGRES` (scripts/test.sh starts a throwaway
//! cluster and sets it); each test creates a database of its own and drops it. Under CI
//! (`CI=true`) a missing URL fails the test; elsewhere the test says it did not run.
//! The replicas listen on loopback and trace only 127.0.0.1.

mod common;

use common::BIN;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn postgres_url() -> Option<String> {
    match std::env::var("EDGETRACE_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => panic!(
            "EDGETRACE_TEST_POSTGRES is not set: CI must run PostgreSQL (scripts/test.sh starts one)"
        ),
        _ => {
            eprintln!("NOT RUN: set EDGETRACE_TEST_POSTGRES=postgres://… (scripts/test.sh does)");
            None
        }
    }
}

fn psql(url: &str, sql: &str) {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-qc", sql])
        .output()
        .expect("psql runs (Debian package postgresql-client)");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A database of its own, dropped at the end (also on failure).
struct Database {
    admin: String,
    name: String,
    url: String,
}

impl Database {
    fn create(admin: &str) -> Database {
        let name = format!("edgetrace_test_{}", std::process::id());
        psql(admin, &format!("DROP DATABASE IF EXISTS {name}"));
        psql(admin, &format!("CREATE DATABASE {name}"));
        let base = admin.rsplit_once('/').map_or(admin, |(b, _)| b);
        Database {
            admin: admin.to_string(),
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                &self.admin,
                "-qc",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

/// A `serve` replica on loopback, killed on drop.
struct Replica {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Replica {
    fn start(dir: &Path, name: &str, database: &str) -> Replica {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--database", database])
            .arg("--data-dir")
            .arg(dir.join(name))
            .args(["--no-dns"])
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        let text = common::wait_for_log(&log, "/client/v4 (", Duration::from_secs(30));
        let port = text
            .split("API on http://127.0.0.1:")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {text}"));
        Replica { child, port, log }
    }

    /// One request; returns status, the `X-Edgetrace-Traceroute-Id` header and the body.
    fn request(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> (u16, Option<String>, Value) {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        write!(
            s,
            "{method} /client/v4{path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        s.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        let id = head.lines().find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("x-edgetrace-traceroute-id:")
                .map(|v| v.trim().to_string())
        });
        let body = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {response}"));
        (status, id, body)
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn two_replicas_on_one_postgres_share_tokens_and_results() {
    let Some(admin) = postgres_url() else { return };
    let db = Database::create(&admin);
    let dir = tempfile::tempdir().unwrap();
    // The first replica finds an empty database: it creates the account and the first token.
    let a = Replica::start(dir.path(), "a", &db.url);
    let log = std::fs::read_to_string(&a.log).unwrap();
    let account = log
        .split("created account ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no account in {log}"))
        .to_string();
    let secret = log
        .split("keep it:")
        .nth(1)
        .map(|r| r.trim().lines().next().unwrap().trim().to_string())
        .unwrap_or_else(|| panic!("no token in {log}"));
    assert_eq!(secret.len(), 40);
    // The second one finds it populated and creates nothing.
    let b = Replica::start(dir.path(), "b", &db.url);
    let log_b = std::fs::read_to_string(&b.log).unwrap();
    assert!(!log_b.contains("created account"), "{log_b}");

    // The token made by replica a authenticates on replica b.
    let (status, _, body) = b.request("GET", "/user/tokens/verify", &secret, None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["status"], "active");

    // A result stored by a is read through b.
    let started = Instant::now();
    let (status, id, body) = a.request(
        "POST",
        &format!("/accounts/{account}/diagnostics/traceroute"),
        &secret,
        Some(&json!({"targets": ["127.0.0.1"], "options": {"max_ttl": 4}})),
    );
    assert_eq!(status, 200, "{body}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let id = id.expect("X-Edgetrace-Traceroute-Id");
    assert_eq!(body["result"][0]["colos"][0]["error"], "", "{body}");
    let (status, _, stored) = b.request(
        "GET",
        &format!("/accounts/{account}/diagnostics/traceroutes/{id}"),
        &secret,
        None,
    );
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored["result"]["status"], "done");
    assert_eq!(stored["result"]["result"], body["result"]);
    assert_eq!(stored["result"]["request"]["targets"], json!(["127.0.0.1"]));

    // The admin commands work on the shared database too: a token made with
    // `token create --database` authenticates on a replica.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_edgetrace"))
        .args([
            "token",
            "create",
            "--account",
            &account,
            "--all-permissions",
            "--database",
            &db.url,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli_secret = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let (status, _, body) = b.request("GET", "/user/tokens/verify", &cli_secret, None);
    assert_eq!(status, 200, "{body}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_edgetrace"))
        .args([
            "token",
            "list",
            "--database",
            "mysql://x",
            "--account",
            &account,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--database: expected postgres://"));

    // A wrong token is refused by both.
    let (status, _, _) = b.request("GET", "/user/tokens/verify", &"x".repeat(40), None);
    assert_eq!(status, 401);
    drop((a, b));
}
