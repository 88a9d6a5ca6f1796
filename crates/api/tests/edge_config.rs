//! Zones, DNS records and the Rulesets API through the router without a socket, on a real
//! SQLite store: every route, versions, entry points, dry runs, references between rulesets,
//! permissions, and errors that point at the offending field.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

mod common;

use common::env;

#[tokio::test]
async fn zones_and_dns_records() {
    let env = env().await;
    let zone = env
        .ok(
            Method::POST,
            "/zones",
            Some(json!({"name": "Example.TEST.", "account": {"id": env.account}, "type": "full"})),
        )
        .await;
    assert_eq!(zone["name"], "example.test");
    assert_eq!(zone["status"], "active");
    assert_eq!(zone["account"]["id"], env.account.as_str());
    let zone_id = zone["id"].as_str().unwrap().to_string();

    // The name is taken now; bad bodies name their field.
    let r = env
        .call(
            Method::POST,
            "/zones",
            &env.admin,
            Some(json!({"name": "example.test", "account": {"id": env.account}})),
        )
        .await;
    assert_eq!(r.error().0, StatusCode::CONFLICT);
    assert_eq!(r.error().2, "/name");
    let r = env
        .call(
            Method::POST,
            "/zones",
            &env.admin,
            Some(json!({"name": "bad_label-.test", "account": {}})),
        )
        .await;
    let pointers: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["source"]["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(pointers, ["/name", "/account/id"], "{}", r.body);

    env.zone("other.test").await;
    let list = env
        .call(Method::GET, "/zones?per_page=1&page=2", &env.admin, None)
        .await;
    assert_eq!(list.body["result"][0]["name"], "other.test");
    assert_eq!(list.body["result_info"]["total_count"], 2);
    assert_eq!(list.body["result_info"]["total_pages"], 2);
    let named = env.ok(Method::GET, "/zones?name=example.test", None).await;
    assert_eq!(named.as_array().unwrap().len(), 1);

    // Records: relative names, proxied origins, content checked against the type.
    let records = format!("/zones/{zone_id}/dns_records");
    let www = env
        .ok(
            Method::POST,
            &records,
            Some(json!({"type": "A", "name": "www", "content": "127.0.0.1", "proxied": true, "ttl": 1})),
        )
        .await;
    assert_eq!(www["name"], "www.example.test");
    assert_eq!(www["proxied"], true);
    assert_eq!(www["zone_name"], "example.test");
    let apex = env
        .ok(
            Method::POST,
            &records,
            Some(json!({"type": "AAAA", "name": "@", "content": "::1"})),
        )
        .await;
    assert_eq!(apex["name"], "example.test");
    assert_eq!(apex["proxied"], false);
    let r = env
        .call(
            Method::POST,
            &records,
            &env.admin,
            Some(json!({"type": "A", "name": "x.elsewhere.test.", "content": "::1", "ttl": 5})),
        )
        .await;
    let messages: Vec<(&str, &str)> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["source"]["pointer"].as_str().unwrap(),
                e["message"].as_str().unwrap(),
            )
        })
        .collect();
    let pointers: Vec<&str> = messages.iter().map(|m| m.0).collect();
    assert_eq!(pointers, ["/name", "/content", "/ttl"], "{messages:?}");
    assert_eq!(
        messages[0].1,
        "name: \"x.elsewhere.test\" is not in zone example.test"
    );
    assert!(
        messages[1].1.contains("is not an IPv4 address"),
        "{messages:?}"
    );
    assert!(messages[2].1.contains("5 is out of range"), "{messages:?}");
    let r = env
        .call(
            Method::POST,
            &records,
            &env.admin,
            Some(json!({"type": "MX", "name": "m", "content": "x"})),
        )
        .await;
    assert_eq!(r.error().2, "/type");

    let www_id = www["id"].as_str().unwrap();
    let patched = env
        .ok(
            Method::PATCH,
            &format!("{records}/{www_id}"),
            Some(json!({"content": "127.0.0.2"})),
        )
        .await;
    assert_eq!(patched["content"], "127.0.0.2");
    assert_eq!(patched["proxied"], true, "PATCH keeps what it is not given");
    let listed = env
        .ok(Method::GET, &format!("{records}?type=A"), None)
        .await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(
        env.state
            .store
            .proxied_records("www.example.test")
            .await
            .unwrap()
            .len(),
        1
    );
    env.ok(Method::DELETE, &format!("{records}/{www_id}"), None)
        .await;
    let r = env
        .call(
            Method::GET,
            &format!("{records}/{www_id}"),
            &env.admin,
            None,
        )
        .await;
    assert_eq!(r.error().0, StatusCode::NOT_FOUND);

    // Deleting the zone takes its records with it.
    env.ok(Method::DELETE, &format!("/zones/{zone_id}"), None)
        .await;
    assert!(
        env.state
            .store
            .dns_records(&zone_id, None, None)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn permissions_are_checked_per_route_and_account() {
    let env = env().await;
    let zone = env.zone("perm.test").await;
    let dns_read = env.token(&["DNS Read"]).await;
    let zone_write = env.token(&["Zone Write"]).await;
    let records = format!("/zones/{zone}/dns_records");

    assert_eq!(
        env.call(Method::GET, &records, &dns_read, None)
            .await
            .status,
        StatusCode::OK
    );
    let r = env
        .call(
            Method::POST,
            &records,
            &dns_read,
            Some(json!({"type": "A", "name": "a", "content": "127.0.0.1"})),
        )
        .await;
    assert_eq!(r.error().0, StatusCode::FORBIDDEN);
    assert!(r.error().3.contains("DNS Write"), "{}", r.body);
    // Zone Write implies Zone Read, not DNS Read.
    assert_eq!(
        env.call(Method::GET, &format!("/zones/{zone}"), &zone_write, None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        env.call(Method::GET, &records, &zone_write, None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    // Rulesets need their own permissions.
    let r = env
        .call(
            Method::GET,
            &format!("/zones/{zone}/rulesets"),
            &zone_write,
            None,
        )
        .await;
    assert!(r.error().3.contains("Zone Rulesets Read"), "{}", r.body);
    let r = env
        .call(
            Method::GET,
            &format!("/accounts/{}/rulesets", env.account),
            &dns_read,
            None,
        )
        .await;
    assert!(r.error().3.contains("Account Rulesets Read"), "{}", r.body);

    // Another account's token sees nothing of this account's zones.
    let other = env.state.store.create_account("other").await.unwrap();
    let (_, stranger) = env
        .state
        .store
        .create_token(&other.id, "s", &["Zone Write".into(), "DNS Write".into()])
        .await
        .unwrap();
    assert_eq!(
        env.call(Method::GET, &records, &stranger, None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let mine = env.call(Method::GET, "/zones", &stranger, None).await;
    assert_eq!(mine.body["result"], json!([]));
    let r = env
        .call(
            Method::POST,
            "/zones",
            &stranger,
            Some(json!({"name": "steal.test", "account": {"id": env.account}})),
        )
        .await;
    assert_eq!(r.error().0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn entry_points_rules_and_versions() {
    let env = env().await;
    let zone = env.zone("rules.test").await;
    let entry = format!("/zones/{zone}/rulesets/phases/http_request_firewall_custom/entrypoint");

    let r = env.call(Method::GET, &entry, &env.admin, None).await;
    assert_eq!(r.error().0, StatusCode::NOT_FOUND);

    // PUT creates the entry point.
    let v1 = env
        .ok(
            Method::PUT,
            &entry,
            Some(json!({"rules": [
                {"expression": "http.request.uri.path eq \"/admin\"", "action": "block", "ref": "admin"},
                {"expression": "ip.src in {192.0.2.0/24}", "action": "managed_challenge"},
            ]})),
        )
        .await;
    assert_eq!(v1["kind"], "zone");
    assert_eq!(v1["name"], "default");
    assert_eq!(v1["version"], "1");
    let ruleset = v1["id"].as_str().unwrap().to_string();
    let admin_rule = v1["rules"][0]["id"].as_str().unwrap().to_string();
    let base = format!("/zones/{zone}/rulesets/{ruleset}");

    // A rule added before the first one; a new version.
    let v2 = env
        .ok(
            Method::POST,
            &format!("{base}/rules"),
            Some(json!({"expression": "http.host eq \"rules.test\"", "action": "log", "position": {"before": admin_rule}})),
        )
        .await;
    assert_eq!(v2["version"], "2");
    let actions: Vec<&str> = v2["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["log", "block", "managed_challenge"]);
    assert_eq!(
        v2["rules"][1]["version"], "1",
        "untouched rules keep their version"
    );

    // A bad expression in a single rule points at the body's field, with the caret.
    let r = env
        .call(
            Method::POST,
            &format!("{base}/rules"),
            &env.admin,
            Some(json!({"expression": "http.request.uri.path lt \"/\" and ip.src lt 10.0.0.1", "action": "block"})),
        )
        .await;
    let (status, code, pointer, message) = r.error();
    assert_eq!(
        (status, code, pointer.as_str()),
        (StatusCode::BAD_REQUEST, 1002, "/expression")
    );
    assert!(message.starts_with("expression: "), "{message}");
    assert!(message.contains("^"), "{message}");
    // In a whole ruleset, at /rules/N/expression.
    let r = env
        .call(
            Method::PUT,
            &base,
            &env.admin,
            Some(json!({"rules": [
                {"expression": "true", "action": "log"},
                {"expression": "true", "action": "log"},
                {"expression": "http.hots eq \"x\"", "action": "block"},
            ]})),
        )
        .await;
    assert_eq!(r.error().2, "/rules/2/expression");
    assert!(
        r.error().3.contains("did you mean \"http.host\"?"),
        "{}",
        r.body
    );

    // PATCH a rule: new version of it and of the ruleset.
    let v3 = env
        .ok(
            Method::PATCH,
            &format!("{base}/rules/{admin_rule}"),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(v3["version"], "3");
    let patched = v3["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == admin_rule.as_str())
        .unwrap();
    assert_eq!(patched["enabled"], false);
    assert_eq!(patched["version"], "2");
    assert_eq!(patched["ref"], "admin");

    // A dry run checks and answers null, storing nothing.
    let dry = env
        .call(
            Method::DELETE,
            &format!("{base}/rules/{admin_rule}?dry_run=true"),
            &env.admin,
            None,
        )
        .await;
    assert_eq!(dry.status, StatusCode::OK);
    assert_eq!(dry.body["result"], Value::Null);
    let v4 = env
        .ok(Method::DELETE, &format!("{base}/rules/{admin_rule}"), None)
        .await;
    assert_eq!(v4["version"], "4");
    assert_eq!(v4["rules"].as_array().unwrap().len(), 2);

    // Versions: listed newest first; old ones readable and deletable, the latest not.
    let versions = env.ok(Method::GET, &format!("{base}/versions"), None).await;
    let numbers: Vec<&str> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(numbers, ["4", "3", "2", "1"]);
    let old = env
        .ok(Method::GET, &format!("{base}/versions/1"), None)
        .await;
    assert_eq!(old["rules"].as_array().unwrap().len(), 2);
    assert_eq!(old["rules"][0]["ref"], "admin");
    let entry_v2 = env
        .ok(Method::GET, &format!("{entry}/versions/2"), None)
        .await;
    assert_eq!(entry_v2["rules"].as_array().unwrap().len(), 3);
    let r = env
        .call(
            Method::DELETE,
            &format!("{base}/versions/4"),
            &env.admin,
            None,
        )
        .await;
    assert_eq!(r.error().0, StatusCode::CONFLICT);
    let r = env
        .call(
            Method::DELETE,
            &format!("{base}/versions/1"),
            &env.admin,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        env.call(Method::GET, &format!("{base}/versions/1"), &env.admin, None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // A second entry point for the phase is refused.
    let r = env
        .call(
            Method::POST,
            &format!("/zones/{zone}/rulesets"),
            &env.admin,
            Some(json!({"name": "again", "kind": "zone", "phase": "http_request_firewall_custom"})),
        )
        .await;
    assert_eq!(r.error().0, StatusCode::CONFLICT);
    // Unknown phase in the path.
    let r = env
        .call(
            Method::GET,
            &format!("/zones/{zone}/rulesets/phases/http_request_nope/entrypoint"),
            &env.admin,
            None,
        )
        .await;
    assert_eq!(r.error().0, StatusCode::NOT_FOUND);
    assert!(r.error().3.contains("unknown phase"), "{}", r.body);
}

#[tokio::test]
async fn custom_rulesets_are_executed_by_reference() {
    let env = env().await;
    let account = format!("/accounts/{}/rulesets", env.account);
    let custom = env
        .ok(
            Method::POST,
            &account,
            Some(
                json!({"name": "shared", "kind": "custom", "phase": "http_request_firewall_custom",
                "rules": [{"expression": "http.user_agent contains \"bot\"", "action": "block"}]}),
            ),
        )
        .await;
    let custom_id = custom["id"].as_str().unwrap().to_string();
    let missing = "0123456789abcdef0123456789abcdef";

    let entry = format!("{account}/phases/http_request_firewall_custom/entrypoint");
    let r = env
        .call(
            Method::PUT,
            &entry,
            &env.admin,
            Some(json!({"rules": [{"expression": "true", "action": "execute", "action_parameters": {"id": missing}}]})),
        )
        .await;
    assert_eq!(r.error().2, "/rules/0/action_parameters/id");
    assert!(r.error().3.contains("no ruleset"), "{}", r.body);

    let root = env
        .ok(
            Method::PUT,
            &entry,
            Some(json!({"rules": [{"expression": "true", "action": "execute", "action_parameters": {"id": custom_id}}]})),
        )
        .await;
    assert_eq!(root["kind"], "root");

    // In use: cannot be deleted.
    let r = env
        .call(
            Method::DELETE,
            &format!("{account}/{custom_id}"),
            &env.admin,
            None,
        )
        .await;
    assert_eq!(r.error().0, StatusCode::CONFLICT);

    let listed = env
        .call(
            Method::GET,
            &format!("{account}?per_page=1"),
            &env.admin,
            None,
        )
        .await;
    assert_eq!(listed.body["result"].as_array().unwrap().len(), 1);
    assert!(listed.body["result"][0].get("rules").is_none());
    let cursor = listed.body["result_info"]["cursor"]
        .as_str()
        .unwrap()
        .to_string();
    let next = env
        .ok(
            Method::GET,
            &format!("{account}?per_page=1&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(next.as_array().unwrap().len(), 1);
    assert_ne!(next[0]["id"], listed.body["result"][0]["id"]);

    // Once the reference is gone, the custom ruleset can go.
    env.ok(Method::PUT, &entry, Some(json!({"rules": []})))
        .await;
    let r = env
        .call(
            Method::DELETE,
            &format!("{account}/{custom_id}"),
            &env.admin,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        env.call(
            Method::GET,
            &format!("{account}/{custom_id}"),
            &env.admin,
            None
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
}
