//! Page rules and lists through the router without a socket, on a real SQLite store: every
//! route, precedence as the request pipeline sees it, bulk operations, permissions, and errors
//! that point at the offending field.

use axum::http::{Method, StatusCode};
use edgetrace_edge::page_rules::{PageRule, RequestUrl, Resolved, applicable, from_stored};
use serde_json::{Value, json};

mod common;

use common::env;

fn target(pattern: &str) -> Value {
    json!([{"target": "url", "constraint": {"operator": "matches", "value": pattern}}])
}

#[tokio::test]
async fn page_rules_crud() {
    let env = env().await;
    let zone = env.zone("example.test").await;
    let rules = format!("/zones/{zone}/pagerules");

    let created = env
        .ok(
            Method::POST,
            &rules,
            Some(json!({
                "targets": target("*example.test/images/*"),
                "actions": [{"id": "cache_level", "value": "bypass"}, {"id": "browser_cache_ttl", "value": 14400}],
                "priority": 1,
                "status": "active"
            })),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 32);
    assert_eq!(created["targets"], target("*example.test/images/*"));
    assert_eq!(
        created["actions"],
        json!([{"id": "cache_level", "value": "bypass"}, {"id": "browser_cache_ttl", "value": 14400}])
    );
    assert_eq!(
        (created["priority"].clone(), created["status"].clone()),
        (json!(1), json!("active"))
    );
    assert!(created["created_on"].as_str().unwrap().ends_with('Z'));
    assert_eq!(created["created_on"], created["modified_on"]);

    // Defaults: priority 1, status disabled (Cloudflare's).
    let redirect = env
        .ok(
            Method::POST,
            &rules,
            Some(json!({
                "targets": target("http://www.example.test/old/*"),
                "actions": [{"id": "forwarding_url", "value": {"url": "https://www.example.test/new/$1", "status_code": 301}}],
            })),
        )
        .await;
    let redirect_id = redirect["id"].as_str().unwrap().to_string();
    assert_eq!(
        (redirect["priority"].clone(), redirect["status"].clone()),
        (json!(1), json!("disabled"))
    );

    // PATCH changes what it names; the rest stays.
    let edited = env
        .ok(
            Method::PATCH,
            &format!("{rules}/{redirect_id}"),
            Some(json!({"priority": 5, "status": "active"})),
        )
        .await;
    assert_eq!(
        (edited["priority"].clone(), edited["status"].clone()),
        (json!(5), json!("active"))
    );
    assert_eq!(edited["actions"], redirect["actions"]);
    assert_eq!(edited["created_on"], redirect["created_on"]);

    // The list is in the order the rules apply: priority, higher first.
    let listed = env.ok(Method::GET, &rules, None).await;
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [redirect_id.as_str(), id.as_str()]);
    let asc = env
        .ok(Method::GET, &format!("{rules}?direction=asc"), None)
        .await;
    assert_eq!(asc[0]["id"], id.as_str());
    env.ok(
        Method::PATCH,
        &format!("{rules}/{id}"),
        Some(json!({"status": "disabled"})),
    )
    .await;
    let active = env
        .ok(
            Method::GET,
            &format!("{rules}?status=active&match=all"),
            None,
        )
        .await;
    assert_eq!(active.as_array().unwrap().len(), 1);
    assert_eq!(active[0]["id"], redirect_id.as_str());
    let by_status = env
        .ok(
            Method::GET,
            &format!("{rules}?order=status&direction=asc"),
            None,
        )
        .await;
    assert_eq!(by_status[0]["status"], "active");

    // A PATCH that breaks the rule as a whole is refused, naming the field.
    let r = env
        .call(
            Method::PATCH,
            &format!("{rules}/{redirect_id}"),
            &env.admin,
            Some(json!({"targets": target("www.example.test/old")})),
        )
        .await;
    assert_eq!(
        r.invalid(),
        (
            "/actions/0/value/url".to_string(),
            "actions[0].value.url: $1 refers to no wildcard: the target has 0 (${1}…${0}); write \\$ for a literal $".to_string()
        )
    );

    // PUT replaces everything; absent fields take their defaults.
    let put = env
        .ok(
            Method::PUT,
            &format!("{rules}/{id}"),
            Some(json!({"targets": target("example.test/*"), "actions": [{"id": "always_use_https"}]})),
        )
        .await;
    assert_eq!(put["actions"], json!([{"id": "always_use_https"}]));
    assert_eq!(
        (put["priority"].clone(), put["status"].clone()),
        (json!(1), json!("disabled"))
    );
    let got = env.ok(Method::GET, &format!("{rules}/{id}"), None).await;
    assert_eq!(got, put);

    // Deleting, then the rule is gone.
    let deleted = env.ok(Method::DELETE, &format!("{rules}/{id}"), None).await;
    assert_eq!(deleted, json!({"id": id}));
    let r = env
        .call(Method::GET, &format!("{rules}/{id}"), &env.admin, None)
        .await;
    assert_eq!(r.errors(StatusCode::NOT_FOUND)[0].0, 7003);
    let r = env
        .call(Method::GET, &format!("{rules}/nope"), &env.admin, None)
        .await;
    assert_eq!(r.errors(StatusCode::NOT_FOUND)[0].0, 7003);

    // Deleting the zone deletes its page rules.
    env.ok(Method::DELETE, &format!("/zones/{zone}"), None)
        .await;
    assert!(env.state.store.page_rules(&zone).await.unwrap().is_empty());
}

#[tokio::test]
async fn page_rule_errors_name_the_field() {
    let env = env().await;
    let zone = env.zone("example.test").await;
    let rules = format!("/zones/{zone}/pagerules");
    let bad = |body: Value| {
        let env = &env;
        let rules = rules.clone();
        async move {
            env.call(Method::POST, &rules, &env.admin, Some(body))
                .await
                .invalid()
        }
    };
    let (pointer, message) = bad(json!({
        "targets": target("www.other.test/*"),
        "actions": [{"id": "cache_level", "value": "bypass"}],
    }))
    .await;
    assert_eq!(pointer, "/targets/0/constraint/value");
    assert_eq!(
        message,
        "targets[0].constraint.value: \"www.other.test/*\": the host \"www.other.test\" is not in zone example.test"
    );
    let (pointer, message) = bad(json!({
        "targets": target("example.test/*"),
        "actions": [{"id": "security_level", "value": "extreme"}],
    }))
    .await;
    assert_eq!(pointer, "/actions/0/value");
    assert_eq!(
        message,
        "actions[0].value: must be one of off, essentially_off, low, medium, high, under_attack, not \"extreme\""
    );
    let (pointer, _) = bad(json!({
        "targets": target("example.test/*"),
        "actions": [{"id": "forwarding_url", "value": {"url": "https://x.test/", "status_code": 301}}, {"id": "ssl", "value": "full"}],
    }))
    .await;
    assert_eq!(pointer, "/actions/0/id");
    let (pointer, message) = bad(json!({"targets": target("example.test/*")})).await;
    assert_eq!(
        (pointer.as_str(), message.as_str()),
        ("/actions", "actions: required")
    );

    // Every problem at once.
    let r = env
        .call(
            Method::POST,
            &rules,
            &env.admin,
            Some(json!({"targets": "x", "actions": [{"id": "waf", "value": true}], "priority": "high", "colour": 1})),
        )
        .await;
    let pointers: Vec<String> = r
        .errors(StatusCode::BAD_REQUEST)
        .into_iter()
        .map(|e| e.1)
        .collect();
    assert_eq!(
        pointers,
        ["/colour", "/targets", "/actions/0/value", "/priority"]
    );

    // Not JSON, not an object.
    let r = env
        .call(Method::POST, &rules, &env.admin, Some(json!([1])))
        .await;
    // A body that is not an object is malformed (1001), like one that is not JSON.
    let errors = r.errors(StatusCode::BAD_REQUEST);
    assert_eq!(
        errors,
        [(
            1001,
            String::new(),
            "body: must be an object, not an array".to_string()
        )]
    );
}

#[tokio::test]
async fn page_rule_permissions() {
    let env = env().await;
    let zone = env.zone("example.test").await;
    let rules = format!("/zones/{zone}/pagerules");
    let body =
        json!({"targets": target("example.test/*"), "actions": [{"id": "waf", "value": "off"}]});

    let read = env.token(&["Page Rules Read"]).await;
    let write = env.token(&["Page Rules Write"]).await;
    let zone_write = env.token(&["Zone Write"]).await;

    let r = env
        .call(Method::POST, &rules, &read, Some(body.clone()))
        .await;
    let e = r.errors(StatusCode::FORBIDDEN);
    assert_eq!(e[0].0, 9109);
    assert!(e[0].2.contains("Page Rules Write"), "{e:?}");
    let r = env.call(Method::GET, &rules, &zone_write, None).await;
    assert!(
        r.errors(StatusCode::FORBIDDEN)[0]
            .2
            .contains("Page Rules Read")
    );

    let r = env.call(Method::POST, &rules, &write, Some(body)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // Write implies read.
    let r = env.call(Method::GET, &rules, &write, None).await;
    assert_eq!(r.body["result"].as_array().unwrap().len(), 1);
    let r = env.call(Method::GET, &rules, &read, None).await;
    assert_eq!(r.status, StatusCode::OK);

    // Another account's token: forbidden; a zone that does not exist: 404.
    let other = env.state.store.create_account("other").await.unwrap();
    let (_, stranger) = env
        .state
        .store
        .create_token(&other.id, "s", &["Page Rules Write".into()])
        .await
        .unwrap();
    let r = env.call(Method::GET, &rules, &stranger, None).await;
    assert_eq!(r.errors(StatusCode::FORBIDDEN)[0].0, 9109);
    let missing = "0123456789abcdef0123456789abcdef";
    let r = env
        .call(
            Method::GET,
            &format!("/zones/{missing}/pagerules"),
            &env.admin,
            None,
        )
        .await;
    assert_eq!(r.errors(StatusCode::NOT_FOUND)[0].0, 7003);
}

/// Rules created through the API, read back as the request pipeline reads them: the highest
/// priority match alone applies, disabled rules never do, wildcards feed `$N`.
#[tokio::test]
async fn stored_page_rules_apply_in_priority_order() {
    let env = env().await;
    let zone = env.zone("example.test").await;
    let rules = format!("/zones/{zone}/pagerules");
    let create = |pattern: &str, actions: Value, priority: i64, status: &str| {
        env.ok(
            Method::POST,
            &rules,
            Some(json!({"targets": target(pattern), "actions": actions, "priority": priority, "status": status})),
        )
    };
    let catch_all = create(
        "*example.test/images/*",
        json!([{"id": "cache_level", "value": "cache_everything"}]),
        1,
        "active",
    )
    .await;
    let special = create(
        "*example.test/images/special/*",
        json!([{"id": "cache_level", "value": "bypass"}]),
        2,
        "active",
    )
    .await;
    create(
        "*example.test/*",
        json!([{"id": "security_level", "value": "high"}]),
        10,
        "disabled",
    )
    .await;
    create(
        "http://*example.test/old/*",
        json!([{"id": "forwarding_url", "value": {"url": "https://www.example.test/new/$2", "status_code": 302}}]),
        3,
        "active",
    )
    .await;

    let typed: Vec<PageRule> = env
        .state
        .store
        .page_rules(&zone)
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            let spec = from_stored(
                &r.rule.targets,
                &r.rule.actions,
                r.rule.priority,
                &r.rule.status,
                "example.test",
            )
            .unwrap();
            PageRule::new(r.id, spec, r.created_at)
        })
        .collect();
    let apply = |url: &str| applicable(&typed, &RequestUrl::parse(url).unwrap());

    let a = apply("https://cdn.example.test/images/special/a.png").unwrap();
    assert_eq!(a.rule.id, special["id"].as_str().unwrap());
    assert_eq!(
        a.actions,
        [Resolved::Setting {
            id: "cache_level".into(),
            value: Some(json!("bypass"))
        }]
    );
    let a = apply("https://example.test/images/a.png").unwrap();
    assert_eq!(a.rule.id, catch_all["id"].as_str().unwrap());
    let a = apply("http://www.example.test/old/x/y.html").unwrap();
    assert_eq!(
        a.actions,
        [Resolved::Redirect {
            location: "https://www.example.test/new/x/y.html".into(),
            status: 302
        }]
    );
    // Only the disabled rule matches these: nothing applies.
    assert!(apply("https://example.test/about").is_none());
    assert!(apply("https://www.example.test/old/x").is_none());
}

#[tokio::test]
async fn lists_and_items() {
    let env = env().await;
    let lists = format!("/accounts/{}/rules/lists", env.account);

    let list = env
        .ok(
            Method::POST,
            &lists,
            Some(json!({"name": "office", "kind": "ip", "description": "HQ"})),
        )
        .await;
    let id = list["id"].as_str().unwrap().to_string();
    assert_eq!(
        (
            list["name"].clone(),
            list["kind"].clone(),
            list["num_items"].clone(),
            list["num_referencing_filters"].clone()
        ),
        (json!("office"), json!("ip"), json!(0), json!(0))
    );
    let r = env
        .call(
            Method::POST,
            &lists,
            &env.admin,
            Some(json!({"name": "office", "kind": "asn"})),
        )
        .await;
    assert_eq!(
        r.errors(StatusCode::CONFLICT)[0],
        (
            1006,
            "/name".to_string(),
            "name: a list named \"office\" already exists".to_string()
        )
    );

    let items = format!("{lists}/{id}/items");
    let op = env
        .ok(
            Method::POST,
            &items,
            Some(json!([
                {"ip": "192.0.2.0/24", "comment": "lab"},
                {"ip": "10.0.0.1"},
                {"ip": "2001:DB8::/32"},
                {"ip": "2001:db8:1:2::99"}
            ])),
        )
        .await;
    let op_id = op["operation_id"].as_str().unwrap().to_string();
    let status = env
        .ok(
            Method::GET,
            &format!("{lists}/bulk_operations/{op_id}"),
            None,
        )
        .await;
    assert_eq!(status["id"], op_id.as_str());
    assert_eq!(status["status"], "completed");
    assert!(status["completed"].as_str().unwrap().ends_with('Z'));

    let page = env.call(Method::GET, &items, &env.admin, None).await;
    let values: Vec<&str> = page.body["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["ip"].as_str().unwrap())
        .collect();
    assert_eq!(
        values,
        // Oldest first; items added together by their text.
        [
            "10.0.0.1",
            "192.0.2.0/24",
            "2001:db8:1:2::/64",
            "2001:db8::/32"
        ]
    );
    assert_eq!(page.body["result_info"], json!({"cursors": {}}));
    assert_eq!(page.body["result"][1]["comment"], "lab");
    assert_eq!(page.body["result"][0]["comment"], Value::Null);

    // Appending a value already there replaces its comment.
    env.ok(
        Method::POST,
        &items,
        Some(json!([{"ip": "192.0.2.0/24", "comment": "moved"}])),
    )
    .await;
    let list_now = env.ok(Method::GET, &format!("{lists}/{id}"), None).await;
    assert_eq!(list_now["num_items"], 4);
    let first = env
        .ok(Method::GET, &format!("{items}?search=192.0"), None)
        .await;
    assert_eq!(first.as_array().unwrap().len(), 1);
    assert_eq!(first[0]["comment"], "moved");
    let item_id = first[0]["id"].as_str().unwrap().to_string();
    let item = env
        .ok(Method::GET, &format!("{items}/{item_id}"), None)
        .await;
    assert_eq!(item, first[0]);

    // Cursor pages.
    let p1 = env
        .call(
            Method::GET,
            &format!("{items}?per_page=3"),
            &env.admin,
            None,
        )
        .await;
    assert_eq!(p1.body["result"].as_array().unwrap().len(), 3);
    let after = p1.body["result_info"]["cursors"]["after"]
        .as_str()
        .unwrap()
        .to_string();
    let p2 = env
        .call(
            Method::GET,
            &format!("{items}?per_page=3&cursor={after}"),
            &env.admin,
            None,
        )
        .await;
    assert_eq!(p2.body["result"].as_array().unwrap().len(), 1);
    assert_eq!(p2.body["result_info"]["cursors"]["after"], Value::Null);
    let r = env
        .call(
            Method::GET,
            &format!("{items}?per_page=0"),
            &env.admin,
            None,
        )
        .await;
    assert_eq!(r.invalid().0, "?per_page");

    // Items of another kind, bad prefixes, duplicates: every problem with its pointer.
    let r = env
        .call(
            Method::POST,
            &items,
            &env.admin,
            Some(json!([{"asn": 13335}, {"ip": "10.0.0.0/4"}, {"ip": "192.0.2.1/24"}, {"ip": "1.1.1.1"}, {"ip": "1.1.1.1/32"}])),
        )
        .await;
    let errors = r.errors(StatusCode::BAD_REQUEST);
    let got: Vec<(&str, &str)> = errors
        .iter()
        .map(|e| (e.1.as_str(), e.2.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "/0/asn",
                "[0].asn: this list is of kind ip: its items have \"ip\", not \"asn\""
            ),
            ("/0/ip", "[0].ip: required"),
            (
                "/1/ip",
                "[1].ip: \"10.0.0.0/4\": an IPv4 prefix must be /8 to /32"
            ),
            (
                "/2/ip",
                "[2].ip: \"192.0.2.1/24\" has host bits set; the range is 192.0.2.0/24"
            ),
            ("/4/ip", "[4].ip: 1.1.1.1 is also item 3; each value once"),
        ]
    );
    // Nothing of a refused operation is kept.
    assert_eq!(
        env.ok(Method::GET, &format!("{lists}/{id}"), None).await["num_items"],
        4
    );

    // Delete by id; an id that is not in the list is named.
    let r = env
        .call(
            Method::DELETE,
            &items,
            &env.admin,
            Some(json!({"items": [{"id": item_id}, {"id": "0123456789abcdef0123456789abcdef"}]})),
        )
        .await;
    assert_eq!(r.invalid().0, "/items/1/id");
    let op = env
        .ok(
            Method::DELETE,
            &items,
            Some(json!({"items": [{"id": item_id}]})),
        )
        .await;
    assert!(op["operation_id"].is_string());
    assert_eq!(
        env.ok(Method::GET, &format!("{lists}/{id}"), None).await["num_items"],
        3
    );
    let r = env
        .call(Method::GET, &format!("{items}/{item_id}"), &env.admin, None)
        .await;
    assert_eq!(r.errors(StatusCode::NOT_FOUND)[0].0, 7003);

    // Replace every item.
    env.ok(
        Method::PUT,
        &items,
        Some(json!([{"ip": "198.51.100.0/24"}])),
    )
    .await;
    let all = env.ok(Method::GET, &items, None).await;
    assert_eq!(all.as_array().unwrap().len(), 1);
    assert_eq!(all[0]["ip"], "198.51.100.0/24");

    // The description changes; name and kind cannot.
    let updated = env
        .ok(
            Method::PUT,
            &format!("{lists}/{id}"),
            Some(json!({"description": "new"})),
        )
        .await;
    assert_eq!(updated["description"], "new");
    let r = env
        .call(
            Method::PUT,
            &format!("{lists}/{id}"),
            &env.admin,
            Some(json!({"kind": "asn"})),
        )
        .await;
    assert_eq!(r.invalid().0, "/kind");

    // Hostname and ASN lists.
    let hosts = env
        .ok(
            Method::POST,
            &lists,
            Some(json!({"name": "hosts", "kind": "hostname"})),
        )
        .await;
    let hosts_items = format!("{lists}/{}/items", hosts["id"].as_str().unwrap());
    env.ok(
        Method::POST,
        &hosts_items,
        Some(json!([{"hostname": {"url_hostname": "*.Example.com"}}, {"hostname": {"url_hostname": "example.net", "exclude_exact_hostname": false}}])),
    )
    .await;
    let got = env.ok(Method::GET, &hosts_items, None).await;
    assert_eq!(
        got[0]["hostname"],
        json!({"url_hostname": "*.example.com", "exclude_exact_hostname": true})
    );
    let asns = env
        .ok(
            Method::POST,
            &lists,
            Some(json!({"name": "asns", "kind": "asn"})),
        )
        .await;
    let asn_items = format!("{lists}/{}/items", asns["id"].as_str().unwrap());
    env.ok(
        Method::POST,
        &asn_items,
        Some(json!([{"asn": 13335, "comment": "cf"}])),
    )
    .await;
    assert_eq!(
        env.ok(Method::GET, &format!("{asn_items}?search=13335"), None)
            .await[0]["asn"],
        13335
    );
    assert!(
        env.ok(Method::GET, &format!("{asn_items}?search=1333"), None)
            .await
            .as_array()
            .unwrap()
            .is_empty()
    );

    let names: Vec<String> = env
        .ok(Method::GET, &lists, None)
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["asns", "hosts", "office"]);

    // Deleting a list deletes its items; its operations stay readable.
    assert_eq!(
        env.ok(Method::DELETE, &format!("{lists}/{id}"), None).await,
        json!({"id": id})
    );
    let r = env
        .call(Method::GET, &format!("{lists}/{id}"), &env.admin, None)
        .await;
    assert_eq!(r.errors(StatusCode::NOT_FOUND)[0].0, 7003);
    assert_eq!(
        env.ok(
            Method::GET,
            &format!("{lists}/bulk_operations/{op_id}"),
            None
        )
        .await["status"],
        "completed"
    );
    let r = env
        .call(
            Method::GET,
            &format!("{lists}/bulk_operations/nope"),
            &env.admin,
            None,
        )
        .await;
    assert_eq!(r.errors(StatusCode::NOT_FOUND)[0].0, 7003);
}

#[tokio::test]
async fn list_errors_and_permissions() {
    let env = env().await;
    let lists = format!("/accounts/{}/rules/lists", env.account);
    let r = env
        .call(
            Method::POST,
            &lists,
            &env.admin,
            Some(json!({"name": "redirects", "kind": "redirect"})),
        )
        .await;
    assert_eq!(
        r.invalid(),
        (
            "/kind".to_string(),
            "kind: \"redirect\" lists (Bulk Redirects) are not supported by edgetrace; use ip, hostname or asn".to_string()
        )
    );
    let r = env
        .call(
            Method::POST,
            &lists,
            &env.admin,
            Some(json!({"name": "Bad Name", "kind": "ip"})),
        )
        .await;
    assert_eq!(r.invalid().0, "/name");

    let read = env.token(&["Account Lists Read"]).await;
    let write = env.token(&["Account Lists Write"]).await;
    let rulesets = env.token(&["Account Rulesets Write"]).await;
    let body = json!({"name": "office", "kind": "ip"});
    let r = env
        .call(Method::POST, &lists, &read, Some(body.clone()))
        .await;
    assert!(
        r.errors(StatusCode::FORBIDDEN)[0]
            .2
            .contains("Account Lists Write")
    );
    let r = env.call(Method::GET, &lists, &rulesets, None).await;
    assert!(
        r.errors(StatusCode::FORBIDDEN)[0]
            .2
            .contains("Account Lists Read")
    );
    let r = env.call(Method::POST, &lists, &write, Some(body)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let id = r.body["result"]["id"].as_str().unwrap().to_string();
    let r = env
        .call(Method::GET, &format!("{lists}/{id}/items"), &read, None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = env
        .call(
            Method::POST,
            &format!("{lists}/{id}/items"),
            &read,
            Some(json!([{"ip": "10.0.0.1"}])),
        )
        .await;
    assert_eq!(r.errors(StatusCode::FORBIDDEN)[0].0, 9109);

    // Another account cannot see the list, even with its own Lists Write.
    let other = env.state.store.create_account("other").await.unwrap();
    let (_, stranger) = env
        .state
        .store
        .create_token(&other.id, "s", &["Account Lists Write".into()])
        .await
        .unwrap();
    let r = env
        .call(Method::GET, &format!("{lists}/{id}"), &stranger, None)
        .await;
    assert_eq!(r.errors(StatusCode::FORBIDDEN)[0].0, 9109);
    let theirs = format!("/accounts/{}/rules/lists/{id}", other.id);
    let r = env.call(Method::GET, &theirs, &stranger, None).await;
    assert_eq!(r.errors(StatusCode::NOT_FOUND)[0].0, 7003);
}

/// Lists are what `$name` means in rule expressions: a ruleset naming a list that exists is
/// accepted, one naming a missing list is refused at the rule's expression.
#[tokio::test]
async fn rule_expressions_see_the_accounts_lists() {
    let env = env().await;
    let lists = format!("/accounts/{}/rules/lists", env.account);
    let list = env
        .ok(
            Method::POST,
            &lists,
            Some(json!({"name": "office", "kind": "ip"})),
        )
        .await;
    env.ok(
        Method::POST,
        &format!("{lists}/{}/items", list["id"].as_str().unwrap()),
        Some(json!([{"ip": "192.0.2.0/24"}])),
    )
    .await;
    let rulesets = format!("/accounts/{}/rulesets", env.account);
    let body = |expression: &str| {
        json!({"name": "r", "kind": "custom", "phase": "http_request_firewall_custom",
            "rules": [{"expression": expression, "action": "block"}]})
    };
    env.ok(Method::POST, &rulesets, Some(body("ip.src in $office")))
        .await;
    let r = env
        .call(
            Method::POST,
            &rulesets,
            &env.admin,
            Some(body("ip.src in $nope")),
        )
        .await;
    let errors = r.errors(StatusCode::BAD_REQUEST);
    assert_eq!(errors[0].1, "/rules/0/expression", "{errors:?}");

    // A list a rule refers to is not deleted (the zone's configuration would stop compiling);
    // a list whose name merely starts the same way does not count.
    let officers = env
        .ok(
            Method::POST,
            &lists,
            Some(json!({"name": "office_old", "kind": "ip"})),
        )
        .await;
    let office = format!("{lists}/{}", list["id"].as_str().unwrap());
    let r = env.call(Method::DELETE, &office, &env.admin, None).await;
    let errors = r.errors(StatusCode::CONFLICT);
    assert!(errors[0].2.contains("list office is in use"), "{errors:?}");
    env.ok(
        Method::DELETE,
        &format!("{lists}/{}", officers["id"].as_str().unwrap()),
        None,
    )
    .await;
    let all = env.ok(Method::GET, &rulesets, None).await;
    let id = all[0]["id"].as_str().unwrap();
    let r = env
        .call(
            Method::DELETE,
            &format!("{rulesets}/{id}"),
            &env.admin,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    env.ok(Method::DELETE, &office, None).await;
}
