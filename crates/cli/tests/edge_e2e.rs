//! The edge configuration end to end: `edgetrace serve` in a namespace of its own, a token made
//! with `token create --all-permissions`, and Cloudflare's official Python SDK (unchanged)
//! creating zones, proxied DNS records and rulesets at both levels (entry points, rules with
//! positions, versions, dry runs, executed custom rulesets), and getting 400s that point at
//! the offending field. Needs root, like every namespace test.

use edgetrace_testnet::Lab;

mod common;

use common::{admin_account, cli, start_serve, venv, workspace};

#[test]
fn cloudflare_sdk_manages_zones_records_and_rulesets() {
    let python = venv().join("bin/python");
    let mut lab = Lab::new("edge").unwrap();
    let ns = lab.add_ns("api").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (account, secret) = admin_account(&data, "edge");
    assert_eq!(secret.len(), 40, "{secret:?}");
    let tokens = cli(&data, &["token", "list", "--account", &account]);
    for p in edgetrace_store::PERMISSIONS {
        assert!(tokens.contains(p), "--all-permissions lacks {p}: {tokens}");
    }
    start_serve(&mut lab, &ns, tmp.path(), &data, &[]);
    let out = lab
        .exec(
            &ns,
            &[
                python.to_str().unwrap(),
                workspace().join("tests/e2e/sdk_edge.py").to_str().unwrap(),
                "http://127.0.0.1:8080/client/v4",
                &secret,
                &account,
            ],
        )
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(summary["ok"], true, "{stdout}");
}
