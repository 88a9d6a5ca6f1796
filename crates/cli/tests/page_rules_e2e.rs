//! Page rules and lists end to end: `edgetrace serve` in a namespace of its own, a token made
//! with `token create --all-permissions`, and Cloudflare's official Python SDK (unchanged)
//! creating, listing, editing, replacing and deleting page rules, and creating lists with
//! items through bulk operations, and getting 400s that name the offending field. Needs root,
//! like every namespace test.

use edgetrace_testnet::Lab;

mod common;

use common::{admin_account, start_serve, venv, workspace};

#[test]
fn cloudflare_sdk_manages_page_rules_and_lists() {
    let python = venv().join("bin/python");
    let mut lab = Lab::new("pagerules").unwrap();
    let ns = lab.add_ns("api").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (account, secret) = admin_account(&data, "pages");
    start_serve(&mut lab, &ns, tmp.path(), &data, &[]);
    let out = lab
        .exec(
            &ns,
            &[
                python.to_str().unwrap(),
                workspace()
                    .join("tests/e2e/sdk_page_rules_lists.py")
                    .to_str()
                    .unwrap(),
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
    assert_eq!(
        summary,
        serde_json::json!({"page_rules": 2, "lists": 3, "ok": true}),
        "{stdout}"
    );
}
