//! The Request Trace API end to end: `edgetrace serve --proxy-listen … --proxy-origin-port …`
//! in a network namespace of its own with a real origin (Python's http.server on 127.0.0.2 in
//! that namespace), configured and traced with Cloudflare's official Python SDK (unchanged):
//! nested traces of an executed custom ruleset, blocks, rewrites, the origin's own status
//! codes, the proxy answering the same requests the same way, a change seen by the next
//! trace, and 400s that name the field. Needs root, like every namespace test.

use edgetrace_testnet::Lab;
use std::time::{Duration, Instant};

mod common;

use common::{admin_account, start_serve, venv, workspace};

const ORIGIN: &str = "127.0.0.2:8090";
const PROXY: &str = "127.0.0.1:8081";

#[test]
fn cloudflare_sdk_traces_requests_through_the_edge() {
    let python = venv().join("bin/python");
    let mut lab = Lab::new("tracer").unwrap();
    let ns = lab.add_ns("api").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let site = tmp.path().join("site");
    std::fs::create_dir(&site).unwrap();
    std::fs::write(site.join("hello.txt"), "hello from the origin\n").unwrap();
    let (account, secret) = admin_account(&data, "tracer");

    // The origin, inside the namespace only.
    let (origin_ip, origin_port) = ORIGIN.split_once(':').unwrap();
    lab.spawn(
        &ns,
        &[
            "python3",
            "-m",
            "http.server",
            "--bind",
            origin_ip,
            "--directory",
            site.to_str().unwrap(),
            origin_port,
        ],
    )
    .unwrap();
    let start = Instant::now();
    while lab
        .in_ns(&ns, || std::net::TcpStream::connect(ORIGIN))
        .unwrap()
        .is_err()
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the origin did not listen on {ORIGIN} within 20 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    start_serve(
        &mut lab,
        &ns,
        tmp.path(),
        &data,
        &["--proxy-listen", PROXY, "--proxy-origin-port", origin_port],
    );
    let out = lab
        .exec(
            &ns,
            &[
                python.to_str().unwrap(),
                workspace()
                    .join("tests/e2e/sdk_request_tracer.py")
                    .to_str()
                    .unwrap(),
                "http://127.0.0.1:8080/client/v4",
                &secret,
                &account,
                PROXY,
                ORIGIN,
            ],
        )
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        summary,
        serde_json::json!({
            "blocked_status": 403,
            "proxy_blocked_status": 403,
            "nested_rules": ["log", "block"],
            // root ruleset, execute rule, custom ruleset and its 4 enabled rules; the zone's
            // transform, firewall and late transform rulesets with their rule each.
            "all_rules_steps": 13,
            "zone_block_status": 451,
            "origin_status": 200,
            "missing_status": 404,
            "proxy_origin_status": 200,
            "proxy_missing_status": 404,
            "after_change_status": null,
            "bad_requests": 3,
            "ok": true,
        }),
        "{stdout}"
    );
    let prefix = lab.prefix().to_string();
    drop(lab);
    let left = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&left.stdout).contains(&prefix),
        "namespaces of this test were left behind"
    );
}
