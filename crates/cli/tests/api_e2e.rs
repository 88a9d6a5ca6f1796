//! `edgetrace serve` end to end: a real server in a network namespace, credentials made with
//! the CLI, driven by Cloudflare's official Python SDK (unchanged) against targets in a
//! namespace topology, the Datadog route over its Unix socket, and Schemathesis against the
//! served OpenAPI document. Python tools live in `target/e2e-venv`, installed from PyPI on first
//! use (pinned in `tests/e2e/requirements.txt`). Needs root, like every namespace test.

use edgetrace_testnet::{Lab, LinearSpec, linear_tagged};
use serde_json::Value;
use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::{BIN, cli, credentials, start_serve, unix_get, venv, workspace};

fn node_ips(trace: &Value) -> Vec<Vec<String>> {
    trace["colos"][0]["hops"]
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

#[test]
fn cloudflare_sdk_and_sysprobe_against_a_namespace_path() {
    let python = venv().join("bin/python");
    let path = linear_tagged(
        "api",
        &LinearSpec {
            routers: 4,
            ..Default::default()
        },
    )
    .unwrap();
    let mut lab = path.lab;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (account, secret) = credentials(&data);
    let socket = tmp.path().join("sysprobe.sock");
    let pid = start_serve(
        &mut lab,
        &path.src,
        tmp.path(),
        &data,
        &["--colo-name", "lab01", "--colo-city", "Lab, ZZ"],
    );
    // The raw sockets are open and every capability is gone (`ip netns exec` execs the server).
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let cap = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default()
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(cap("CapEff:"), "0000000000000000", "{status}");
    assert_eq!(cap("CapPrm:"), "0000000000000000", "{status}");

    let (v4, v6) = (path.target_v4.to_string(), path.target_v6.to_string());
    let script = workspace().join("tests/e2e/sdk_traceroute.py");
    let out = lab
        .exec(
            &path.src,
            &[
                python.to_str().unwrap(),
                script.to_str().unwrap(),
                "http://127.0.0.1:8080/client/v4",
                &secret,
                &account,
                &v4,
                &v6,
            ],
        )
        .unwrap();
    assert!(
        out.status.success(),
        "SDK script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sdk: Value = serde_json::from_slice(&out.stdout).unwrap();
    let want_v4: Vec<Vec<String>> = path.hops_v4.iter().map(|h| vec![h.to_string()]).collect();
    let want_v6: Vec<Vec<String>> = path.hops_v6.iter().map(|h| vec![h.to_string()]).collect();
    for packet_type in ["icmp", "udp", "tcp"] {
        let traces = &sdk["traces"][packet_type];
        assert_eq!(
            traces.as_array().unwrap().len(),
            2,
            "{packet_type}: {traces}"
        );
        for (trace, (target, want)) in traces
            .as_array()
            .unwrap()
            .iter()
            .zip([(&v4, &want_v4), (&v6, &want_v6)])
        {
            assert_eq!(&trace["target"], target.as_str());
            let colo = &trace["colos"][0];
            assert_eq!(colo["colo"]["name"], "lab01");
            assert_eq!(colo["colo"]["city"], "Lab, ZZ");
            assert_eq!(colo["error"], "", "{packet_type} {target}: {colo}");
            assert_eq!(&node_ips(trace), want, "{packet_type} {target}");
            for hop in colo["hops"].as_array().unwrap() {
                assert_eq!(hop["packets_sent"], 2, "{packet_type} {target}: {hop}");
                assert_eq!(hop["packets_lost"], 0, "{packet_type} {target}: {hop}");
            }
            assert_eq!(colo["target_summary"]["ip"], target.as_str());
            assert_eq!(colo["target_summary"]["packet_count"], 2);
        }
    }
    assert_eq!(sdk["verify"]["status"], "active");
    assert_eq!(sdk["bad_request"]["status"], 400);
    assert_eq!(
        sdk["bad_request"]["body"]["errors"][0]["source"]["pointer"],
        "/options/max_ttl"
    );
    assert_eq!(sdk["unauthenticated"]["status"], 401);
    assert_eq!(sdk["unauthenticated"]["body"]["errors"][0]["code"], 10000);

    // The Datadog route over the Unix socket, with the route lookup's gateway and interface.
    let (status, np) = unix_get(
        &socket,
        &format!("/traceroute/{v4}?protocol=UDP&max_ttl=10&timeout=1000000000&client_id=e2e"),
    );
    assert_eq!(status, 200, "{np}");
    assert_eq!(np["protocol"], "UDP");
    assert_eq!(np["destination"]["ip_address"], v4.as_str());
    assert_eq!(np["destination"]["port"], 33434);
    let hops: Vec<&str> = np["hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["ip_address"].as_str().unwrap())
        .collect();
    let want: Vec<String> = path.hops_v4.iter().map(|h| h.to_string()).collect();
    assert_eq!(hops, want);
    assert!(
        np["hops"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["reachable"] == true)
    );
    assert_eq!(np["source"]["via"]["gateway"], path.hops_v4[0].to_string());
    let iface = np["source"]["via"]["interface"]["name"].as_str().unwrap();
    assert!(!iface.is_empty() && iface != "lo", "{np}");
    let (status, np) = unix_get(
        &socket,
        &format!("/traceroute/{v6}?protocol=ICMP&max_ttl=10"),
    );
    assert_eq!(status, 200, "{np}");
    let hops: Vec<&str> = np["hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["ip_address"].as_str().unwrap())
        .collect();
    let want: Vec<String> = path.hops_v6.iter().map(|h| h.to_string()).collect();
    assert_eq!(hops, want);
    let (status, body) = unix_get(&socket, "/traceroute/198.18.0.1?protocol=SCTP");
    assert_eq!(status, 400, "{body}");
}

#[test]
fn schemathesis_finds_no_server_error_and_no_nonconformance() {
    let schemathesis = venv().join("bin/schemathesis");
    // A namespace with only a loopback interface: whatever targets Schemathesis makes up, no
    // probe and no DNS query can leave it.
    let mut lab = Lab::new("schema").unwrap();
    let ns = lab.add_ns("api").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (account, _) = credentials(&data);
    // Every permission, so that every route is exercised past authorization.
    let secret = cli(
        &data,
        &[
            "token",
            "create",
            "--account",
            &account,
            "--all-permissions",
        ],
    );
    start_serve(&mut lab, &ns, tmp.path(), &data, &[]);
    let config = tmp.path().join("schemathesis.toml");
    std::fs::write(
        &config,
        format!("[parameters]\naccount_id = \"{account}\"\n"),
    )
    .unwrap();
    let auth = format!("Authorization: Bearer {secret}");
    // Run from the temporary directory: Schemathesis keeps a cache in its working directory.
    let out = lab
        .exec(
            &ns,
            &[
                "sh",
                "-c",
                "cd \"$0\" && exec \"$@\"",
                tmp.path().to_str().unwrap(),
                schemathesis.to_str().unwrap(),
                "--config-file",
                config.to_str().unwrap(),
                "run",
                "http://127.0.0.1:8080/client/v4/openapi.json",
                "--url",
                "http://127.0.0.1:8080/client/v4",
                "-H",
                &auth,
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance",
                "--max-examples",
                "30",
                "--seed",
                "1",
            ],
        )
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("passed"), "{stdout}");
    assert!(!stdout.contains("failed"), "{stdout}");
}

#[test]
fn a_client_that_disconnects_loses_nothing() {
    // A silent target keeps the trace busy for about a wait time; the client leaves long
    // before, and the result is stored anyway.
    let path = linear_tagged(
        "gone",
        &LinearSpec {
            routers: 2,
            target_silent: true,
            ..Default::default()
        },
    )
    .unwrap();
    let mut lab = path.lab;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (account, secret) = credentials(&data);
    start_serve(&mut lab, &path.src, tmp.path(), &data, &[]);
    let target = path.target_v4.to_string();
    let body = format!("{{\"targets\": [\"{target}\"], \"options\": {{\"max_ttl\": 6}}}}");
    let request = format!(
        "POST /client/v4/accounts/{account}/diagnostics/traceroute HTTP/1.1\r\nHost: x\r\n\
         Authorization: Bearer {secret}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    lab.in_ns(&path.src, move || {
        let mut s = std::net::TcpStream::connect("127.0.0.1:8080").unwrap();
        s.write_all(request.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        // Gone without reading the answer.
    })
    .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stored = runtime.block_on(async {
        let store = edgetrace_store::Store::open_data_dir(&data).await.unwrap();
        let start = Instant::now();
        loop {
            let recent = store.recent_traceroutes(&account, 5).await.unwrap();
            if let Some(t) = recent.first().filter(|t| t.status != "running") {
                break t.clone();
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "no finished traceroute stored: {recent:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    assert_eq!(stored.status, "done");
    let result = stored.result.unwrap();
    let colo = &result[0]["colos"][0];
    assert_eq!(result[0]["target"], target.as_str());
    assert_eq!(colo["error"], "");
    let want: Vec<Vec<String>> = path.hops_v4[..2]
        .iter()
        .map(|h| vec![h.to_string()])
        .collect();
    assert_eq!(node_ips(&result[0])[..2], want[..]);
    assert_eq!(colo["target_summary"]["packet_count"], 0);
}

#[test]
fn bad_configuration_and_admin_input_name_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("edgetrace.toml");
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:8080\"\n[colo]\nnmae = \"x\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(tmp.path().join("d"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("edgetrace.toml") && stderr.contains("nmae"),
        "{stderr}"
    );
    std::fs::write(&config, "[rate_limit]\nrequests = 5\nperiod_secs = 0\n").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("rate_limit.period_secs: 0 is out of range"),
        "{stderr}"
    );
    let out = Command::new(BIN)
        .args(["serve", "--listen", "localhost"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--listen"));

    let data = tmp.path().join("data");
    let account = cli(&data, &["account", "create", "--name", "a"]);
    for (args, needle) in [
        (vec!["account", "create", "--name", ""], "name: "),
        (
            vec![
                "token",
                "create",
                "--account",
                &account,
                "--permission",
                "Everything",
            ],
            "permission: \"Everything\" is not a permission; known: Magic Transit Read",
        ),
        (
            vec![
                "token",
                "create",
                "--account",
                "nope",
                "--permission",
                "Zone Read",
            ],
            "account: \"nope\" is not an identifier",
        ),
        (vec!["token", "revoke", &"0".repeat(32)], "no token with id"),
        (
            vec!["key", "create", "--email", "x", "--account", &account],
            "email: ",
        ),
    ] {
        let out = Command::new(BIN)
            .args(&args)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            out.stdout.is_empty(),
            "{args:?}: nothing on stdout on failure"
        );
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    let listed = cli(&data, &["account", "list"]);
    assert_eq!(listed, format!("{account}\ta"));
}
