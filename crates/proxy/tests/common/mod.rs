//! What the proxy's tests share: a store with one proxied site.

use edgetrace_store::{NewDnsRecord, Store};
use std::path::Path;

/// A store in `dir` (SQLite) with an account, its zone `shop.test` and a proxied A record
/// `www.shop.test` whose origin is `origin`: the store, the account's id and the zone's id.
pub async fn shop(dir: &Path, origin: &str) -> (Store, String, String) {
    let store = Store::open_data_dir(dir).await.unwrap();
    let account = store.create_account("shop").await.unwrap();
    let zone = store
        .create_zone(&account.id, "shop.test", "full")
        .await
        .unwrap();
    store
        .create_dns_record(
            &zone.id,
            &NewDnsRecord {
                r#type: "A".into(),
                name: "www.shop.test".into(),
                content: origin.into(),
                proxied: true,
                ttl: 1,
                comment: None,
            },
        )
        .await
        .unwrap();
    (store, account.id, zone.id)
}
