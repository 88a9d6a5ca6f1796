//! Page rules of a zone. The store keeps what it is given: targets and actions are validated
//! by the `edge` crate and kept as the JSON the API returns.

use crate::{Result, Store, StoreError, now_ms};
use sqlx::Row;
use sqlx::any::AnyRow;

/// A page rule's content, as created or replaced.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPageRule {
    /// The JSON array of targets.
    pub targets: serde_json::Value,
    /// The JSON array of actions.
    pub actions: serde_json::Value,
    pub priority: i64,
    /// `active` or `disabled`.
    pub status: String,
}

/// A stored page rule.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPageRule {
    pub id: String,
    pub zone_id: String,
    pub rule: NewPageRule,
    pub created_at: i64,
    pub modified_at: i64,
}

const COLUMNS: &str = "id, zone_id, targets, actions, priority, status, created_at, modified_at";

fn json(field: &'static str, text: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Invalid {
        field,
        message: format!("stored JSON is corrupt: {e}"),
    })
}

fn rule_from_row(r: &AnyRow) -> Result<StoredPageRule> {
    let targets: String = r.try_get("targets")?;
    let actions: String = r.try_get("actions")?;
    Ok(StoredPageRule {
        id: r.try_get("id")?,
        zone_id: r.try_get("zone_id")?,
        rule: NewPageRule {
            targets: json("targets", &targets)?,
            actions: json("actions", &actions)?,
            priority: r.try_get("priority")?,
            status: r.try_get("status")?,
        },
        created_at: r.try_get("created_at")?,
        modified_at: r.try_get("modified_at")?,
    })
}

impl Store {
    /// Creates a page rule, refusing it when the zone holds `max` already.
    pub async fn create_page_rule(
        &self,
        zone_id: &str,
        rule: &NewPageRule,
        max: usize,
    ) -> Result<StoredPageRule> {
        let mut tx = self.pool.begin().await?;
        let count: i64 = sqlx::query("SELECT COUNT(*) AS n FROM page_rules WHERE zone_id = $1")
            .bind(zone_id)
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        if count >= max as i64 {
            return Err(StoreError::Invalid {
                field: "targets",
                message: format!("the zone has {count} page rules already; at most {max}"),
            });
        }
        let now = now_ms();
        let stored = StoredPageRule {
            id: crate::new_id(),
            zone_id: zone_id.to_string(),
            rule: rule.clone(),
            created_at: now,
            modified_at: now,
        };
        sqlx::query(&format!(
            "INSERT INTO page_rules ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(&stored.id)
        .bind(zone_id)
        .bind(rule.targets.to_string())
        .bind(rule.actions.to_string())
        .bind(rule.priority)
        .bind(&rule.status)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(stored)
    }

    /// A zone's page rules in the order they apply: priority, higher first, then the older
    /// first.
    pub async fn page_rules(&self, zone_id: &str) -> Result<Vec<StoredPageRule>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM page_rules WHERE zone_id = $1 \
             ORDER BY priority DESC, created_at, id"
        ))
        .bind(zone_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rule_from_row).collect()
    }

    pub async fn page_rule(&self, zone_id: &str, id: &str) -> Result<Option<StoredPageRule>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM page_rules WHERE zone_id = $1 AND id = $2"
        ))
        .bind(zone_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(rule_from_row).transpose()
    }

    /// Replaces a page rule's content; `None` when there is no such rule.
    pub async fn update_page_rule(
        &self,
        zone_id: &str,
        id: &str,
        rule: &NewPageRule,
    ) -> Result<Option<StoredPageRule>> {
        let done = sqlx::query(
            "UPDATE page_rules SET targets = $1, actions = $2, priority = $3, status = $4, \
             modified_at = $5 WHERE zone_id = $6 AND id = $7",
        )
        .bind(rule.targets.to_string())
        .bind(rule.actions.to_string())
        .bind(rule.priority)
        .bind(&rule.status)
        .bind(now_ms())
        .bind(zone_id)
        .bind(id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        self.page_rule(zone_id, id).await
    }

    /// Deletes a page rule; false when there was none.
    pub async fn delete_page_rule(&self, zone_id: &str, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM page_rules WHERE zone_id = $1 AND id = $2")
            .bind(zone_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(priority: i64) -> NewPageRule {
        NewPageRule {
            targets: json!([{"target": "url", "constraint": {"operator": "matches", "value": "a.test/*"}}]),
            actions: json!([{"id": "cache_level", "value": "bypass"}]),
            priority,
            status: "active".into(),
        }
    }

    #[tokio::test]
    async fn page_rules_are_kept_in_priority_order_and_go_with_their_zone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_data_dir(dir.path()).await.unwrap();
        let a = store.create_account("a").await.unwrap();
        let zone = store.create_zone(&a.id, "a.test", "full").await.unwrap();
        let low = store.create_page_rule(&zone.id, &rule(1), 3).await.unwrap();
        let high = store.create_page_rule(&zone.id, &rule(5), 3).await.unwrap();
        let tie = store.create_page_rule(&zone.id, &rule(1), 3).await.unwrap();
        let e = store
            .create_page_rule(&zone.id, &rule(1), 3)
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "targets: the zone has 3 page rules already; at most 3"
        );
        let ids: Vec<String> = store
            .page_rules(&zone.id)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        let mut ties = [low.id.clone(), tie.id.clone()];
        if low.created_at == tie.created_at {
            ties.sort();
        }
        assert_eq!(ids, [high.id.clone(), ties[0].clone(), ties[1].clone()]);

        let updated = store
            .update_page_rule(&zone.id, &low.id, &rule(9))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(updated.rule.priority, 9);
        assert_eq!(updated.created_at, low.created_at);
        assert_eq!(store.page_rules(&zone.id).await.unwrap()[0].id, low.id);
        assert!(
            store
                .update_page_rule(&zone.id, &crate::new_id(), &rule(1))
                .await
                .unwrap()
                .is_none()
        );
        assert!(store.delete_page_rule(&zone.id, &high.id).await.unwrap());
        assert!(!store.delete_page_rule(&zone.id, &high.id).await.unwrap());
        assert!(store.page_rule(&zone.id, &high.id).await.unwrap().is_none());

        // Deleting the zone deletes its page rules.
        assert!(store.delete_zone(&zone.id).await.unwrap());
        assert!(store.page_rules(&zone.id).await.unwrap().is_empty());
    }
}
