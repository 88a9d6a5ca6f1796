//! The site cache against a real store (SQLite in a temporary directory): a change written to
//! the store behind the cache's back (as another replica would) is used after the TTL without
//! any request waiting for the reload; an invalidation is seen at once; a reload that reads
//! what the cached site was compiled from keeps it.

use edgetrace_proxy::site::{DEFAULT_TTL, Sites};
use edgetrace_rules::Scheme;
use edgetrace_store::{NewRuleset, Scope, Store};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

fn ruleset(expression: &str) -> NewRuleset {
    NewRuleset {
        name: "zone".into(),
        description: String::new(),
        kind: "zone".into(),
        phase: "http_request_firewall_custom".into(),
        rules: json!([{"id": "r1", "expression": expression, "action": "block", "enabled": true}]),
    }
}

fn expression(sites: &edgetrace_proxy::site::Site) -> String {
    sites.config.zone[0].rules[0].expression.clone()
}

/// The shop's zone (`common::shop`, origin 127.0.0.2) with a custom rules entry point of one
/// rule, `http.host eq "a"`, and a cache of its sites: the store, the account's and the zone's
/// ids, the entry point's id and the cache.
async fn cached_zone(dir: &Path) -> (Store, String, String, String, Sites) {
    let (store, account, zone) = common::shop(dir, "127.0.0.2").await;
    let scope = Scope::Zone {
        account: &account,
        zone: &zone,
    };
    let stored = store
        .create_ruleset(scope, &ruleset("http.host eq \"a\""))
        .await
        .unwrap();
    let sites = Sites::new(store.clone(), Arc::new(Scheme::cloudflare()));
    (store, account, zone, stored.id, sites)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_sites_reload_in_the_background_and_invalidation_is_immediate() {
    let dir = tempfile::tempdir().unwrap();
    let (store, account, zone, ruleset_id, sites) = cached_zone(dir.path()).await;
    let scope = Scope::Zone {
        account: &account,
        zone: &zone,
    };
    assert!(sites.for_host("nope.shop.test").await.unwrap().is_none());
    let site = sites.for_host("www.shop.test").await.unwrap().unwrap();
    assert_eq!(expression(&site), "http.host eq \"a\"");
    assert_eq!(site.origins[0].record.content, "127.0.0.2");

    // Changed behind the cache's back: the cached configuration is used until the TTL...
    store
        .update_ruleset(scope, &ruleset_id, &ruleset("http.host eq \"b\""), None)
        .await
        .unwrap()
        .unwrap();
    let site = sites.for_host("www.shop.test").await.unwrap().unwrap();
    assert_eq!(expression(&site), "http.host eq \"a\"");
    // ...then the first request after it still gets the old one at once (no waiting) and
    // starts the reload; shortly after, the new one is served.
    tokio::time::sleep(DEFAULT_TTL + Duration::from_millis(50)).await;
    let site = sites.for_host("www.shop.test").await.unwrap().unwrap();
    assert_eq!(expression(&site), "http.host eq \"a\"");
    let start = Instant::now();
    loop {
        let site = sites.for_host("www.shop.test").await.unwrap().unwrap();
        if expression(&site) == "http.host eq \"b\"" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "never reloaded");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // An invalidation (the API's, after a change) is seen by the very next request.
    store
        .update_ruleset(scope, &ruleset_id, &ruleset("http.host eq \"c\""), None)
        .await
        .unwrap()
        .unwrap();
    sites.invalidate();
    let site = sites.for_host("www.shop.test").await.unwrap().unwrap();
    assert_eq!(expression(&site), "http.host eq \"c\"");
}

/// A reload that reads the same configuration keeps the compiled one (compiling a zone of many
/// rules every TTL stalled the requests of the thread it ran on); one that reads a changed
/// configuration compiles it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_configuration_is_not_compiled_again() {
    let dir = tempfile::tempdir().unwrap();
    let (store, account, zone, ruleset_id, sites) = cached_zone(dir.path()).await;
    let scope = Scope::Zone {
        account: &account,
        zone: &zone,
    };
    let first = sites.for_host("www.shop.test").await.unwrap().unwrap();
    // Two TTLs, each ending in a reload (the first request after it starts one): the same
    // compiled site throughout.
    for _ in 0..2 {
        tokio::time::sleep(DEFAULT_TTL + Duration::from_millis(50)).await;
        let site = sites.for_host("www.shop.test").await.unwrap().unwrap();
        assert!(Arc::ptr_eq(&site, &first));
        tokio::time::sleep(Duration::from_millis(200)).await; // the reload's read
        let site = sites.for_host("www.shop.test").await.unwrap().unwrap();
        assert!(Arc::ptr_eq(&site, &first), "compiled again, unchanged");
    }
    // A change (behind the cache's back): compiled at the next reload.
    store
        .update_ruleset(scope, &ruleset_id, &ruleset("http.host eq \"b\""), None)
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(DEFAULT_TTL + Duration::from_millis(50)).await;
    let start = Instant::now();
    loop {
        let site = sites.for_host("www.shop.test").await.unwrap().unwrap();
        if !Arc::ptr_eq(&site, &first) {
            assert_eq!(expression(&site), "http.host eq \"b\"");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "never reloaded");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
