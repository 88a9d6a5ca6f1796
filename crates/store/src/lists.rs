//! Named lists of an account, their items, and the bulk operations that change the items.
//!
//! The store keeps what it is given: item values are validated (and made canonical) by the
//! `edge` crate. Changes to items are recorded as operations, as Cloudflare's Lists API has
//! them; edgetrace runs each at once, in one transaction, and records it as completed.

use crate::{Result, Store, StoreError, check_id, now_ms};
use sqlx::Row;
use sqlx::any::AnyRow;

/// A list's content, as created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewList {
    /// Unique in the account.
    pub name: String,
    pub description: String,
    /// `ip`, `hostname` or `asn`.
    pub kind: String,
}

/// A stored list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredList {
    pub id: String,
    pub account_id: String,
    pub list: NewList,
    pub num_items: i64,
    pub created_at: i64,
    pub modified_at: i64,
}

/// An item to add to a list.
#[derive(Debug, Clone, PartialEq)]
pub struct NewListItem {
    /// Canonical text of the value, unique in the list (`10.0.0.0/8`, `13335`).
    pub value: String,
    /// The item's field as the API returns it (`"10.0.0.0/8"`, `{"url_hostname": …}`).
    pub data: serde_json::Value,
    pub comment: Option<String>,
}

/// A stored list item.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredListItem {
    pub id: String,
    pub list_id: String,
    pub item: NewListItem,
    pub created_at: i64,
    pub modified_at: i64,
}

/// A bulk operation on a list's items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListOperation {
    pub id: String,
    pub account_id: String,
    pub list_id: String,
    /// `pending`, `running`, `completed` or `failed`.
    pub status: String,
    pub error: Option<String>,
    pub created_at: i64,
    pub completed_at: Option<i64>,
}

/// How a bulk operation changes a list's items.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemChange<'a> {
    /// Adds items; an item whose value is in the list already gets the new comment.
    Append(&'a [NewListItem]),
    /// Replaces every item.
    Replace(&'a [NewListItem]),
    /// Deletes the items with these ids (ids not in the list are ignored).
    Delete(&'a [String]),
}

const LIST_COLUMNS: &str = "l.id, l.account_id, l.name, l.description, l.kind, l.created_at, \
     l.modified_at, (SELECT COUNT(*) FROM list_items i WHERE i.list_id = l.id) AS num_items";
const ITEM_COLUMNS: &str = "id, list_id, value, data, comment, created_at, modified_at";
const OPERATION_COLUMNS: &str = "id, account_id, list_id, status, error, created_at, completed_at";

fn list_from_row(r: &AnyRow) -> Result<StoredList> {
    Ok(StoredList {
        id: r.try_get("id")?,
        account_id: r.try_get("account_id")?,
        list: NewList {
            name: r.try_get("name")?,
            description: r.try_get("description")?,
            kind: r.try_get("kind")?,
        },
        num_items: r.try_get("num_items")?,
        created_at: r.try_get("created_at")?,
        modified_at: r.try_get("modified_at")?,
    })
}

fn item_from_row(r: &AnyRow) -> Result<StoredListItem> {
    let data: String = r.try_get("data")?;
    Ok(StoredListItem {
        id: r.try_get("id")?,
        list_id: r.try_get("list_id")?,
        item: NewListItem {
            value: r.try_get("value")?,
            data: serde_json::from_str(&data).map_err(|e| StoreError::Invalid {
                field: "data",
                message: format!("stored JSON is corrupt: {e}"),
            })?,
            comment: r.try_get("comment")?,
        },
        created_at: r.try_get("created_at")?,
        modified_at: r.try_get("modified_at")?,
    })
}

fn operation_from_row(r: &AnyRow) -> Result<ListOperation> {
    Ok(ListOperation {
        id: r.try_get("id")?,
        account_id: r.try_get("account_id")?,
        list_id: r.try_get("list_id")?,
        status: r.try_get("status")?,
        error: r.try_get("error")?,
        created_at: r.try_get("created_at")?,
        completed_at: r.try_get("completed_at")?,
    })
}

impl Store {
    /// Creates a list; its name must be new in the account.
    pub async fn create_list(&self, account_id: &str, list: &NewList) -> Result<StoredList> {
        check_id("account", account_id)?;
        if self.list_by_name(account_id, &list.name).await?.is_some() {
            return Err(StoreError::Conflict {
                field: "name",
                message: format!("a list named {:?} already exists", list.name),
            });
        }
        let now = now_ms();
        let stored = StoredList {
            id: crate::new_id(),
            account_id: account_id.to_string(),
            list: list.clone(),
            num_items: 0,
            created_at: now,
            modified_at: now,
        };
        sqlx::query(
            "INSERT INTO lists (id, account_id, name, description, kind, created_at, modified_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&stored.id)
        .bind(account_id)
        .bind(&list.name)
        .bind(&list.description)
        .bind(&list.kind)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(stored)
    }

    /// An account's lists, by name.
    pub async fn lists(&self, account_id: &str) -> Result<Vec<StoredList>> {
        let rows = sqlx::query(&format!(
            "SELECT {LIST_COLUMNS} FROM lists l WHERE l.account_id = $1 ORDER BY l.name, l.id"
        ))
        .bind(account_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(list_from_row).collect()
    }

    pub async fn list(&self, account_id: &str, id: &str) -> Result<Option<StoredList>> {
        let row = sqlx::query(&format!(
            "SELECT {LIST_COLUMNS} FROM lists l WHERE l.account_id = $1 AND l.id = $2"
        ))
        .bind(account_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(list_from_row).transpose()
    }

    pub async fn list_by_name(&self, account_id: &str, name: &str) -> Result<Option<StoredList>> {
        let row = sqlx::query(&format!(
            "SELECT {LIST_COLUMNS} FROM lists l WHERE l.account_id = $1 AND l.name = $2"
        ))
        .bind(account_id)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(list_from_row).transpose()
    }

    /// Changes a list's description; `None` when there is no such list.
    pub async fn update_list(
        &self,
        account_id: &str,
        id: &str,
        description: &str,
    ) -> Result<Option<StoredList>> {
        sqlx::query(
            "UPDATE lists SET description = $1, modified_at = $2 WHERE account_id = $3 AND id = $4",
        )
        .bind(description)
        .bind(now_ms())
        .bind(account_id)
        .bind(id)
        .execute(&self.pool)
        .await?;
        self.list(account_id, id).await
    }

    /// Deletes a list and its items; false when there was none.
    pub async fn delete_list(&self, account_id: &str, id: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let exists = sqlx::query("SELECT id FROM lists WHERE account_id = $1 AND id = $2")
            .bind(account_id)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Ok(false);
        }
        sqlx::query("DELETE FROM list_items WHERE list_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM lists WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// A list's items, oldest first, then by value.
    pub async fn list_items(&self, list_id: &str) -> Result<Vec<StoredListItem>> {
        let rows = sqlx::query(&format!(
            "SELECT {ITEM_COLUMNS} FROM list_items WHERE list_id = $1 ORDER BY created_at, value"
        ))
        .bind(list_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(item_from_row).collect()
    }

    pub async fn list_item(&self, list_id: &str, id: &str) -> Result<Option<StoredListItem>> {
        let row = sqlx::query(&format!(
            "SELECT {ITEM_COLUMNS} FROM list_items WHERE list_id = $1 AND id = $2"
        ))
        .bind(list_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(item_from_row).transpose()
    }

    /// Every list of an account with its items: what rule expressions can name.
    pub async fn lists_with_items(
        &self,
        account_id: &str,
    ) -> Result<Vec<(StoredList, Vec<StoredListItem>)>> {
        let lists = self.lists(account_id).await?;
        let rows = sqlx::query(
            "SELECT i.id, i.list_id, i.value, i.data, i.comment, i.created_at, i.modified_at \
             FROM list_items i JOIN lists l ON l.id = i.list_id WHERE l.account_id = $1 \
             ORDER BY i.created_at, i.value",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<(StoredList, Vec<StoredListItem>)> =
            lists.into_iter().map(|l| (l, Vec::new())).collect();
        for row in &rows {
            let item = item_from_row(row)?;
            if let Some((_, items)) = out.iter_mut().find(|(l, _)| l.id == item.list_id) {
                items.push(item);
            }
        }
        Ok(out)
    }

    /// Runs a bulk operation on a list's items in one transaction, refusing it when the list
    /// would hold more than `max_items`, and records it as completed. `None` when there is no
    /// such list.
    pub async fn change_list_items(
        &self,
        account_id: &str,
        list_id: &str,
        change: ItemChange<'_>,
        max_items: usize,
    ) -> Result<Option<ListOperation>> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let exists = sqlx::query("SELECT id FROM lists WHERE account_id = $1 AND id = $2")
            .bind(account_id)
            .bind(list_id)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Ok(None);
        }
        let items = match change {
            ItemChange::Append(items) => items,
            ItemChange::Replace(items) => {
                sqlx::query("DELETE FROM list_items WHERE list_id = $1")
                    .bind(list_id)
                    .execute(&mut *tx)
                    .await?;
                items
            }
            ItemChange::Delete(ids) => {
                for id in ids {
                    sqlx::query("DELETE FROM list_items WHERE list_id = $1 AND id = $2")
                        .bind(list_id)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                &[]
            }
        };
        for item in items {
            let existing =
                sqlx::query("SELECT id FROM list_items WHERE list_id = $1 AND value = $2")
                    .bind(list_id)
                    .bind(&item.value)
                    .fetch_optional(&mut *tx)
                    .await?;
            match existing {
                Some(row) => {
                    let id: String = row.try_get("id")?;
                    sqlx::query(
                        "UPDATE list_items SET data = $1, comment = $2, modified_at = $3 \
                         WHERE id = $4",
                    )
                    .bind(item.data.to_string())
                    .bind(item.comment.clone())
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                }
                None => {
                    sqlx::query(&format!(
                        "INSERT INTO list_items ({ITEM_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                    ))
                    .bind(crate::new_id())
                    .bind(list_id)
                    .bind(&item.value)
                    .bind(item.data.to_string())
                    .bind(item.comment.clone())
                    .bind(now)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        let count: i64 = sqlx::query("SELECT COUNT(*) AS n FROM list_items WHERE list_id = $1")
            .bind(list_id)
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        if count > max_items as i64 {
            return Err(StoreError::Invalid {
                field: "body",
                message: format!("the list would hold {count} items; at most {max_items}"),
            });
        }
        sqlx::query("UPDATE lists SET modified_at = $1 WHERE id = $2")
            .bind(now)
            .bind(list_id)
            .execute(&mut *tx)
            .await?;
        let operation = ListOperation {
            id: crate::new_id(),
            account_id: account_id.to_string(),
            list_id: list_id.to_string(),
            status: "completed".into(),
            error: None,
            created_at: now,
            completed_at: Some(now),
        };
        sqlx::query(&format!(
            "INSERT INTO list_operations ({OPERATION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ))
        .bind(&operation.id)
        .bind(account_id)
        .bind(list_id)
        .bind(&operation.status)
        .bind(operation.error.clone())
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(operation))
    }

    /// A bulk operation of an account.
    pub async fn list_operation(
        &self,
        account_id: &str,
        id: &str,
    ) -> Result<Option<ListOperation>> {
        let row = sqlx::query(&format!(
            "SELECT {OPERATION_COLUMNS} FROM list_operations WHERE account_id = $1 AND id = $2"
        ))
        .bind(account_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(operation_from_row).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(value: &str, comment: Option<&str>) -> NewListItem {
        NewListItem {
            value: value.into(),
            data: json!(value),
            comment: comment.map(str::to_string),
        }
    }

    #[tokio::test]
    async fn lists_hold_unique_items_changed_by_operations() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_data_dir(dir.path()).await.unwrap();
        let a = store.create_account("a").await.unwrap();
        let new = NewList {
            name: "office".into(),
            description: "d".into(),
            kind: "ip".into(),
        };
        let list = store.create_list(&a.id, &new).await.unwrap();
        let e = store.create_list(&a.id, &new).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "name: a list named \"office\" already exists"
        );

        let items = [item("10.0.0.0/8", Some("corp")), item("192.0.2.1", None)];
        let op = store
            .change_list_items(&a.id, &list.id, ItemChange::Append(&items), 10)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (op.status.as_str(), op.completed_at.is_some()),
            ("completed", true)
        );
        assert_eq!(store.list_operation(&a.id, &op.id).await.unwrap(), Some(op));
        // The same value again replaces the comment, not the item.
        let again = [item("10.0.0.0/8", Some("hq"))];
        store
            .change_list_items(&a.id, &list.id, ItemChange::Append(&again), 10)
            .await
            .unwrap();
        let stored = store.list_items(&list.id).await.unwrap();
        assert_eq!(stored.len(), 2);
        let corp = stored
            .iter()
            .find(|i| i.item.value == "10.0.0.0/8")
            .unwrap();
        assert_eq!(corp.item.comment.as_deref(), Some("hq"));
        assert_eq!(
            store
                .list(&a.id, &list.id)
                .await
                .unwrap()
                .unwrap()
                .num_items,
            2
        );
        assert_eq!(
            store.list_item(&list.id, &corp.id).await.unwrap().as_ref(),
            Some(corp)
        );

        // Over the limit: nothing changes.
        let many: Vec<_> = (0..3)
            .map(|i| item(&format!("198.51.100.{i}"), None))
            .collect();
        let e = store
            .change_list_items(&a.id, &list.id, ItemChange::Append(&many), 4)
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "body: the list would hold 5 items; at most 4"
        );
        assert_eq!(store.list_items(&list.id).await.unwrap().len(), 2);

        store
            .change_list_items(&a.id, &list.id, ItemChange::Replace(&many), 4)
            .await
            .unwrap();
        let stored = store.list_items(&list.id).await.unwrap();
        assert_eq!(stored.len(), 3);
        let ids = [stored[0].id.clone(), crate::new_id()];
        store
            .change_list_items(&a.id, &list.id, ItemChange::Delete(&ids), 4)
            .await
            .unwrap();
        assert_eq!(store.list_items(&list.id).await.unwrap().len(), 2);

        let all = store.lists_with_items(&a.id).await.unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].1.len(), 2);

        // Another account sees nothing.
        let b = store.create_account("b").await.unwrap();
        assert!(store.list(&b.id, &list.id).await.unwrap().is_none());
        assert!(
            store
                .change_list_items(&b.id, &list.id, ItemChange::Append(&items), 10)
                .await
                .unwrap()
                .is_none()
        );
        assert!(store.lists_with_items(&b.id).await.unwrap().is_empty());

        let updated = store
            .update_list(&a.id, &list.id, "new")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(updated.list.description, "new");
        assert!(store.delete_list(&a.id, &list.id).await.unwrap());
        assert!(!store.delete_list(&a.id, &list.id).await.unwrap());
        assert!(store.list_items(&list.id).await.unwrap().is_empty());
    }
}
