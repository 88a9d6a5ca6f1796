//! The edge configuration's storage, the same scenario on SQLite and on PostgreSQL: one set of
//! migrations and queries must behave the same on both. PostgreSQL's URL comes from
//! `EDGETRACE_TEST_POSTGRES` (scripts/test.sh starts a throwaway server); each run gets a
//! database of its own, dropped at the end. Under `CI=true` a missing server is a failure.

use edgetrace_store::{NewDnsRecord, NewRuleset, Scope, Store, StoreError};
use serde_json::json;
use sqlx::Connection;

async fn scenario(store: &Store) {
    let account = store.create_account("edge").await.unwrap();
    let zone = store
        .create_zone(&account.id, "backend.test", "full")
        .await
        .unwrap();
    assert!(matches!(
        store.create_zone(&account.id, "backend.test", "full").await,
        Err(StoreError::Conflict { field: "name", .. })
    ));
    assert_eq!(
        store.zones(Some(&account.id), None).await.unwrap(),
        vec![zone.clone()]
    );
    assert!(
        store
            .zones(None, Some("other.test"))
            .await
            .unwrap()
            .is_empty()
    );

    let record = NewDnsRecord {
        r#type: "A".into(),
        name: "www.backend.test".into(),
        content: "127.0.0.1".into(),
        proxied: true,
        ttl: 1,
        comment: None,
    };
    let stored = store.create_dns_record(&zone.id, &record).await.unwrap();
    assert_eq!(stored.record, record);
    let hidden = NewDnsRecord {
        proxied: false,
        name: "dns-only.backend.test".into(),
        comment: Some("not proxied".into()),
        ..record.clone()
    };
    store.create_dns_record(&zone.id, &hidden).await.unwrap();
    let proxied = store.proxied_records("www.backend.test").await.unwrap();
    assert_eq!(proxied.len(), 1);
    assert!(
        store
            .proxied_records("dns-only.backend.test")
            .await
            .unwrap()
            .is_empty()
    );
    let changed = NewDnsRecord {
        content: "127.0.0.2".into(),
        ..record.clone()
    };
    let updated = store
        .update_dns_record(&zone.id, &stored.id, &changed)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.record.content, "127.0.0.2");
    assert_eq!(
        store
            .dns_records(&zone.id, None, Some("A"))
            .await
            .unwrap()
            .len(),
        2
    );

    let scope = Scope::Zone {
        account: &account.id,
        zone: &zone.id,
    };
    let v1 = NewRuleset {
        name: "default".into(),
        description: String::new(),
        kind: "zone".into(),
        phase: "http_request_firewall_custom".into(),
        rules: json!([{"id": "a", "action": "block"}]),
    };
    let created = store.create_ruleset(scope, &v1).await.unwrap();
    assert_eq!(created.version, 1);
    assert!(matches!(
        store.create_ruleset(scope, &v1).await,
        Err(StoreError::Conflict { field: "phase", .. })
    ));
    let v2 = NewRuleset {
        rules: json!([{"id": "a", "action": "log"}]),
        ..v1.clone()
    };
    let updated = store
        .update_ruleset(scope, &created.id, &v2, Some(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.version, 2);
    assert!(matches!(
        store.update_ruleset(scope, &created.id, &v2, Some(1)).await,
        Err(StoreError::Conflict {
            field: "version",
            ..
        })
    ));
    let versions: Vec<i64> = store
        .ruleset_versions(scope, &created.id)
        .await
        .unwrap()
        .unwrap()
        .iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(versions, [2, 1]);
    let old = store
        .ruleset_version(scope, &created.id, 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(old.ruleset.rules, v1.rules);
    assert_eq!(
        store
            .entrypoint(scope, "http_request_firewall_custom")
            .await
            .unwrap()
            .unwrap()
            .ruleset
            .rules,
        v2.rules
    );
    // The account level is another scope.
    assert!(
        store
            .entrypoint(Scope::Account(&account.id), "http_request_firewall_custom")
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        store.delete_ruleset_version(scope, &created.id, 2).await,
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(
        store
            .delete_ruleset_version(scope, &created.id, 1)
            .await
            .unwrap(),
        Some(())
    );

    // Deleting the zone takes its records and rulesets with it.
    assert!(store.delete_zone(&zone.id).await.unwrap());
    assert!(
        store
            .dns_records(&zone.id, None, None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .proxied_records("www.backend.test")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.rulesets(scope).await.unwrap().is_empty());
    assert!(!store.delete_zone(&zone.id).await.unwrap());
}

#[tokio::test]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_data_dir(dir.path()).await.unwrap();
    scenario(&store).await;
    store.close().await;
}

#[tokio::test]
async fn postgres() {
    let url = match std::env::var("EDGETRACE_TEST_POSTGRES") {
        Ok(url) => url,
        Err(_) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!(
                "EDGETRACE_TEST_POSTGRES is not set: CI must run PostgreSQL (scripts/test.sh starts one)"
            )
        }
        Err(_) => {
            eprintln!("NOT RUN: set EDGETRACE_TEST_POSTGRES=postgres://… (scripts/test.sh does)");
            return;
        }
    };
    let db = format!("et_store_edge_{}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS {db}"))
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let (base, _) = url.rsplit_once('/').unwrap();
    let store = Store::open(&format!("{base}/{db}")).await.unwrap();
    let outcome = tokio::spawn(async move {
        scenario(&store).await;
        store.close().await;
    })
    .await;
    // FORCE: a backend of the closed pool may still be on its way out, and
    // "being accessed by other users" must not fail a test whose scenario passed.
    sqlx::query(&format!("DROP DATABASE {db} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
