//! The edge configuration's storage: zones, DNS records and rulesets (every version kept).
//!
//! The store keeps what it is given: validating rules, actions and expressions is the `edge`
//! crate's job, done before anything reaches here. Rules are kept as the JSON the API returns.

use crate::{Result, Store, StoreError, check_id, now_ms};
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

/// A zone: a domain of an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Zone {
    pub id: String,
    pub account_id: String,
    /// The domain, lowercase, without a trailing dot.
    pub name: String,
    /// `full` (the only type edgetrace serves), kept as given.
    pub r#type: String,
    pub paused: bool,
    pub created_at: i64,
    pub modified_at: i64,
}

/// A DNS record's content, as created or replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDnsRecord {
    /// `A`, `AAAA` or `CNAME`.
    pub r#type: String,
    /// Fully qualified, lowercase.
    pub name: String,
    pub content: String,
    pub proxied: bool,
    /// Seconds; 1 means automatic.
    pub ttl: i64,
    pub comment: Option<String>,
}

/// A stored DNS record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsRecord {
    pub id: String,
    pub zone_id: String,
    pub record: NewDnsRecord,
    pub created_at: i64,
    pub modified_at: i64,
}

/// Where a ruleset lives: an account, or one of its zones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    Account(&'a str),
    Zone { account: &'a str, zone: &'a str },
}

impl Scope<'_> {
    fn account(&self) -> &str {
        match self {
            Scope::Account(a) | Scope::Zone { account: a, .. } => a,
        }
    }

    fn zone(&self) -> Option<&str> {
        match self {
            Scope::Account(_) => None,
            Scope::Zone { zone, .. } => Some(zone),
        }
    }
}

/// A ruleset's content, as created or replaced.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRuleset {
    pub name: String,
    pub description: String,
    /// `root`, `zone`, `custom` or `managed`.
    pub kind: String,
    pub phase: String,
    /// The JSON array of rules, as the API returns them.
    pub rules: serde_json::Value,
}

/// A ruleset at one version.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRuleset {
    pub id: String,
    pub account_id: String,
    pub zone_id: Option<String>,
    pub version: i64,
    pub last_updated: i64,
    pub ruleset: NewRuleset,
}

/// One version of a ruleset, as listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RulesetVersion {
    pub version: i64,
    pub created_at: i64,
}

const ZONE_COLUMNS: &str = "id, account_id, name, type, paused, created_at, modified_at";
const RECORD_COLUMNS: &str =
    "id, zone_id, type, name, content, proxied, ttl, comment, created_at, modified_at";

fn zone_from_row(r: &AnyRow) -> Result<Zone> {
    Ok(Zone {
        id: r.try_get("id")?,
        account_id: r.try_get("account_id")?,
        name: r.try_get("name")?,
        r#type: r.try_get("type")?,
        paused: r.try_get::<i64, _>("paused")? != 0,
        created_at: r.try_get("created_at")?,
        modified_at: r.try_get("modified_at")?,
    })
}

fn record_from_row(r: &AnyRow) -> Result<DnsRecord> {
    Ok(DnsRecord {
        id: r.try_get("id")?,
        zone_id: r.try_get("zone_id")?,
        record: NewDnsRecord {
            r#type: r.try_get("type")?,
            name: r.try_get("name")?,
            content: r.try_get("content")?,
            proxied: r.try_get::<i64, _>("proxied")? != 0,
            ttl: r.try_get("ttl")?,
            comment: r.try_get("comment")?,
        },
        created_at: r.try_get("created_at")?,
        modified_at: r.try_get("modified_at")?,
    })
}

fn json(field: &'static str, text: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Invalid {
        field,
        message: format!("stored JSON is corrupt: {e}"),
    })
}

fn ruleset_from_row(r: &AnyRow) -> Result<StoredRuleset> {
    let rules: String = r.try_get("rules")?;
    Ok(StoredRuleset {
        id: r.try_get("id")?,
        account_id: r.try_get("account_id")?,
        zone_id: r.try_get("zone_id")?,
        version: r.try_get("version")?,
        last_updated: r.try_get("last_updated")?,
        ruleset: NewRuleset {
            name: r.try_get("name")?,
            description: r.try_get("description")?,
            kind: r.try_get("kind")?,
            phase: r.try_get("phase")?,
            rules: json("rules", &rules)?,
        },
    })
}

fn version_body(ruleset: &NewRuleset) -> String {
    serde_json::json!({
        "name": ruleset.name,
        "description": ruleset.description,
        "kind": ruleset.kind,
        "phase": ruleset.phase,
        "rules": ruleset.rules,
    })
    .to_string()
}

const RULESET_COLUMNS: &str =
    "id, account_id, zone_id, name, description, kind, phase, version, rules, last_updated";

/// `WHERE` clause (from `$1`, or `$2` when `$1` is taken) selecting a scope's rulesets.
fn scope_clause(scope: &Scope<'_>, first: usize) -> String {
    match scope {
        Scope::Account(_) => format!("account_id = ${first} AND zone_id IS NULL"),
        Scope::Zone { .. } => format!("account_id = ${first} AND zone_id = ${}", first + 1),
    }
}

impl Store {
    /// Creates a zone; its name must not be taken by any account.
    pub async fn create_zone(&self, account_id: &str, name: &str, r#type: &str) -> Result<Zone> {
        check_id("account", account_id)?;
        let now = now_ms();
        let zone = Zone {
            id: crate::new_id(),
            account_id: account_id.to_string(),
            name: name.to_string(),
            r#type: r#type.to_string(),
            paused: false,
            created_at: now,
            modified_at: now,
        };
        if self.zone_by_name(name).await?.is_some() {
            return Err(StoreError::Conflict {
                field: "name",
                message: format!("a zone named {name:?} already exists"),
            });
        }
        sqlx::query(&format!(
            "INSERT INTO zones ({ZONE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ))
        .bind(&zone.id)
        .bind(&zone.account_id)
        .bind(&zone.name)
        .bind(&zone.r#type)
        .bind(0i64)
        .bind(zone.created_at)
        .bind(zone.modified_at)
        .execute(&self.pool)
        .await?;
        Ok(zone)
    }

    /// Zones, of one account or of all, optionally only the one named `name`, by name.
    pub async fn zones(&self, account_id: Option<&str>, name: Option<&str>) -> Result<Vec<Zone>> {
        let rows = sqlx::query(&format!(
            "SELECT {ZONE_COLUMNS} FROM zones \
             WHERE ($1 = '' OR account_id = $1) AND ($2 = '' OR name = $2) ORDER BY name, id"
        ))
        .bind(account_id.unwrap_or(""))
        .bind(name.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(zone_from_row).collect()
    }

    pub async fn zone(&self, id: &str) -> Result<Option<Zone>> {
        let row = sqlx::query(&format!("SELECT {ZONE_COLUMNS} FROM zones WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(zone_from_row).transpose()
    }

    pub async fn zone_by_name(&self, name: &str) -> Result<Option<Zone>> {
        let row = sqlx::query(&format!("SELECT {ZONE_COLUMNS} FROM zones WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(zone_from_row).transpose()
    }

    /// Deletes a zone with its DNS records and rulesets; false when there was none.
    pub async fn delete_zone(&self, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM zones WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn create_dns_record(
        &self,
        zone_id: &str,
        record: &NewDnsRecord,
    ) -> Result<DnsRecord> {
        let now = now_ms();
        let stored = DnsRecord {
            id: crate::new_id(),
            zone_id: zone_id.to_string(),
            record: record.clone(),
            created_at: now,
            modified_at: now,
        };
        sqlx::query(&format!(
            "INSERT INTO dns_records ({RECORD_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(&stored.id)
        .bind(&stored.zone_id)
        .bind(&record.r#type)
        .bind(&record.name)
        .bind(&record.content)
        .bind(i64::from(record.proxied))
        .bind(record.ttl)
        .bind(record.comment.clone())
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(stored)
    }

    /// A zone's records, optionally only those with `name` and/or `type`, by name.
    pub async fn dns_records(
        &self,
        zone_id: &str,
        name: Option<&str>,
        r#type: Option<&str>,
    ) -> Result<Vec<DnsRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {RECORD_COLUMNS} FROM dns_records WHERE zone_id = $1 \
             AND ($2 = '' OR name = $2) AND ($3 = '' OR type = $3) ORDER BY name, type, id"
        ))
        .bind(zone_id)
        .bind(name.unwrap_or(""))
        .bind(r#type.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record_from_row).collect()
    }

    pub async fn dns_record(&self, zone_id: &str, id: &str) -> Result<Option<DnsRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {RECORD_COLUMNS} FROM dns_records WHERE zone_id = $1 AND id = $2"
        ))
        .bind(zone_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(record_from_row).transpose()
    }

    /// Every proxied record named `name`, whatever its zone (the proxy's lookup).
    pub async fn proxied_records(&self, name: &str) -> Result<Vec<DnsRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {RECORD_COLUMNS} FROM dns_records WHERE name = $1 AND proxied = 1 \
             ORDER BY type, id"
        ))
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record_from_row).collect()
    }

    /// Replaces a record's content; `None` when there is no such record.
    pub async fn update_dns_record(
        &self,
        zone_id: &str,
        id: &str,
        record: &NewDnsRecord,
    ) -> Result<Option<DnsRecord>> {
        let done = sqlx::query(
            "UPDATE dns_records SET type = $1, name = $2, content = $3, proxied = $4, ttl = $5, \
             comment = $6, modified_at = $7 WHERE zone_id = $8 AND id = $9",
        )
        .bind(&record.r#type)
        .bind(&record.name)
        .bind(&record.content)
        .bind(i64::from(record.proxied))
        .bind(record.ttl)
        .bind(record.comment.clone())
        .bind(now_ms())
        .bind(zone_id)
        .bind(id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        self.dns_record(zone_id, id).await
    }

    pub async fn delete_dns_record(&self, zone_id: &str, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM dns_records WHERE zone_id = $1 AND id = $2")
            .bind(zone_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Creates a ruleset at version 1. A `root` or `zone` ruleset is its phase's entry point:
    /// there can be one per scope and phase.
    pub async fn create_ruleset(
        &self,
        scope: Scope<'_>,
        ruleset: &NewRuleset,
    ) -> Result<StoredRuleset> {
        if matches!(ruleset.kind.as_str(), "root" | "zone")
            && self.entrypoint(scope, &ruleset.phase).await?.is_some()
        {
            return Err(StoreError::Conflict {
                field: "phase",
                message: format!(
                    "an entry point ruleset for phase {} already exists here; update it instead",
                    ruleset.phase
                ),
            });
        }
        let now = now_ms();
        let stored = StoredRuleset {
            id: crate::new_id(),
            account_id: scope.account().to_string(),
            zone_id: scope.zone().map(str::to_string),
            version: 1,
            last_updated: now,
            ruleset: ruleset.clone(),
        };
        let mut tx = self.pool.begin().await?;
        sqlx::query(&format!(
            "INSERT INTO rulesets ({RULESET_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(&stored.id)
        .bind(&stored.account_id)
        .bind(stored.zone_id.clone())
        .bind(&ruleset.name)
        .bind(&ruleset.description)
        .bind(&ruleset.kind)
        .bind(&ruleset.phase)
        .bind(1i64)
        .bind(ruleset.rules.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO ruleset_versions (ruleset_id, version, body, created_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&stored.id)
        .bind(1i64)
        .bind(version_body(ruleset))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(stored)
    }

    /// A scope's rulesets, by phase and name.
    pub async fn rulesets(&self, scope: Scope<'_>) -> Result<Vec<StoredRuleset>> {
        let sql = format!(
            "SELECT {RULESET_COLUMNS} FROM rulesets WHERE {} ORDER BY phase, name, id",
            scope_clause(&scope, 1)
        );
        let mut q = sqlx::query(&sql).bind(scope.account().to_string());
        if let Some(zone) = scope.zone() {
            q = q.bind(zone.to_string());
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(ruleset_from_row).collect()
    }

    /// A ruleset of a scope, at its latest version.
    pub async fn ruleset(&self, scope: Scope<'_>, id: &str) -> Result<Option<StoredRuleset>> {
        let sql = format!(
            "SELECT {RULESET_COLUMNS} FROM rulesets WHERE id = $1 AND {}",
            scope_clause(&scope, 2)
        );
        let mut q = sqlx::query(&sql).bind(id).bind(scope.account().to_string());
        if let Some(zone) = scope.zone() {
            q = q.bind(zone.to_string());
        }
        let row = q.fetch_optional(&self.pool).await?;
        row.as_ref().map(ruleset_from_row).transpose()
    }

    /// The entry point ruleset of a phase (kind `root` at account level, `zone` at zone level).
    pub async fn entrypoint(&self, scope: Scope<'_>, phase: &str) -> Result<Option<StoredRuleset>> {
        let kind = match scope {
            Scope::Account(_) => "root",
            Scope::Zone { .. } => "zone",
        };
        let sql = format!(
            "SELECT {RULESET_COLUMNS} FROM rulesets WHERE phase = $1 AND kind = $2 AND {}",
            scope_clause(&scope, 3)
        );
        let mut q = sqlx::query(&sql)
            .bind(phase.to_string())
            .bind(kind)
            .bind(scope.account().to_string());
        if let Some(zone) = scope.zone() {
            q = q.bind(zone.to_string());
        }
        let row = q.fetch_optional(&self.pool).await?;
        row.as_ref().map(ruleset_from_row).transpose()
    }

    /// Replaces a ruleset's content, making a new version; `None` when there is no such
    /// ruleset. `expected_version`, when given, must be the current one (else a conflict).
    pub async fn update_ruleset(
        &self,
        scope: Scope<'_>,
        id: &str,
        ruleset: &NewRuleset,
        expected_version: Option<i64>,
    ) -> Result<Option<StoredRuleset>> {
        let Some(current) = self.ruleset(scope, id).await? else {
            return Ok(None);
        };
        if let Some(v) = expected_version.filter(|v| *v != current.version) {
            return Err(StoreError::Conflict {
                field: "version",
                message: format!(
                    "the ruleset is at version {}, not {v}: it changed meanwhile",
                    current.version
                ),
            });
        }
        let now = now_ms();
        let version = current.version + 1;
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE rulesets SET name = $1, description = $2, rules = $3, version = $4, \
             last_updated = $5 WHERE id = $6 AND version = $7",
        )
        .bind(&ruleset.name)
        .bind(&ruleset.description)
        .bind(ruleset.rules.to_string())
        .bind(version)
        .bind(now)
        .bind(id)
        .bind(current.version)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict {
                field: "version",
                message: "the ruleset changed meanwhile; retry".into(),
            });
        }
        sqlx::query(
            "INSERT INTO ruleset_versions (ruleset_id, version, body, created_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(version)
        .bind(version_body(ruleset))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.ruleset(scope, id).await
    }

    /// Deletes a ruleset and all its versions; false when there was none.
    pub async fn delete_ruleset(&self, scope: Scope<'_>, id: &str) -> Result<bool> {
        if self.ruleset(scope, id).await?.is_none() {
            return Ok(false);
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM ruleset_versions WHERE ruleset_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM rulesets WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The versions of a ruleset that are kept, newest first.
    pub async fn ruleset_versions(
        &self,
        scope: Scope<'_>,
        id: &str,
    ) -> Result<Option<Vec<RulesetVersion>>> {
        if self.ruleset(scope, id).await?.is_none() {
            return Ok(None);
        }
        let rows = sqlx::query(
            "SELECT version, created_at FROM ruleset_versions WHERE ruleset_id = $1 \
             ORDER BY version DESC",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RulesetVersion {
                    version: r.try_get("version")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// A ruleset as it was at `version`.
    pub async fn ruleset_version(
        &self,
        scope: Scope<'_>,
        id: &str,
        version: i64,
    ) -> Result<Option<StoredRuleset>> {
        let Some(current) = self.ruleset(scope, id).await? else {
            return Ok(None);
        };
        let row = sqlx::query(
            "SELECT body, created_at FROM ruleset_versions WHERE ruleset_id = $1 AND version = $2",
        )
        .bind(id)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let body: String = row.try_get("body")?;
        let body = json("body", &body)?;
        let text = |k: &str| body[k].as_str().unwrap_or_default().to_string();
        Ok(Some(StoredRuleset {
            version,
            last_updated: row.try_get("created_at")?,
            ruleset: NewRuleset {
                name: text("name"),
                description: text("description"),
                kind: text("kind"),
                phase: text("phase"),
                rules: body["rules"].clone(),
            },
            ..current
        }))
    }

    /// Deletes one version that is not the latest; `None` when there is no such version,
    /// a conflict when it is the latest.
    pub async fn delete_ruleset_version(
        &self,
        scope: Scope<'_>,
        id: &str,
        version: i64,
    ) -> Result<Option<()>> {
        let Some(current) = self.ruleset(scope, id).await? else {
            return Ok(None);
        };
        if version == current.version {
            return Err(StoreError::Conflict {
                field: "version",
                message: format!("version {version} is the latest and cannot be deleted"),
            });
        }
        let done =
            sqlx::query("DELETE FROM ruleset_versions WHERE ruleset_id = $1 AND version = $2")
                .bind(id)
                .bind(version)
                .execute(&self.pool)
                .await?;
        Ok((done.rows_affected() == 1).then_some(()))
    }
}
