//! Persistence for edgetrace: accounts, API tokens and global keys (only their SHA-256 is
//! kept), and every traceroute request with its result.
//!
//! One set of migrations (`migrations/`) and one set of queries serve SQLite (the embedded
//! default, a file in the data directory) and PostgreSQL (`postgres://…`), through sqlx's `Any`
//! driver.
//!
//! ```no_run
//! # async fn demo() -> Result<(), edgetrace_store::StoreError> {
//! use edgetrace_store::Store;
//! let store = Store::open_data_dir("./edgetrace-data".as_ref()).await?;
//! let account = store.create_account("ops").await?;
//! let (token, secret) = store
//!     .create_token(&account.id, "ci", &["Magic Transit Write".to_string()])
//!     .await?;
//! assert_eq!(store.token_by_secret(&secret).await?.unwrap().id, token.id);
//! # Ok(()) }
//! ```

use rand::Rng;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor, Row};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// The permissions a token can be given, by their Cloudflare names.
/// A "… Write" permission implies the matching "… Read".
pub const PERMISSIONS: &[&str] = &[
    "Magic Transit Read",
    "Magic Transit Write",
    "Zone Read",
    "Zone Write",
    "DNS Read",
    "DNS Write",
    "Account Rulesets Read",
    "Account Rulesets Write",
    "Zone Rulesets Read",
    "Zone Rulesets Write",
    "Page Rules Read",
    "Page Rules Write",
    "Account Lists Read",
    "Account Lists Write",
    "Request Tracer Read",
];

mod edge;
mod lists;
mod page_rules;
pub use edge::*;
#[allow(unused_imports)]
pub use lists::*;
#[allow(unused_imports)]
pub use page_rules::*;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database at {location}: {source}")]
    Open {
        location: String,
        source: sqlx::Error,
    },
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot apply the database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Input that the store refuses, naming the field.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("no {what} with id {id}")]
    NotFound { what: &'static str, id: String },
    /// The object would clash with one that exists (a zone name, an entry point).
    #[error("{field}: {message}")]
    Conflict {
        field: &'static str,
        message: String,
    },
}

impl StoreError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::NotFound { .. })
    }
}

pub(crate) type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Account {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

/// A token as stored: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Token {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub permissions: Vec<String>,
    /// `active` or `revoked`.
    pub status: String,
    pub created_at: i64,
}

impl Token {
    pub fn is_active(&self) -> bool {
        self.status == "active"
    }

    /// Whether the token has `permission`, directly or through the matching "… Write".
    pub fn allows(&self, permission: &str) -> bool {
        let write = permission
            .strip_suffix(" Read")
            .map(|base| format!("{base} Write"));
        self.permissions
            .iter()
            .any(|p| p == permission || Some(p) == write.as_ref())
    }
}

/// A user authenticated by email and global API key: every permission on its accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub email: String,
    pub accounts: Vec<String>,
}

/// A stored traceroute request and, once finished, its result.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTraceroute {
    pub id: String,
    pub account_id: String,
    pub request: serde_json::Value,
    pub result: Option<serde_json::Value>,
    /// `running`, `done` or `failed`.
    pub status: String,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

/// The database: a pool shared by every request.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
}

/// 32 lowercase hex characters from 16 random bytes, the shape of Cloudflare's identifiers.
pub fn new_id() -> String {
    hex::encode(rand::rng().random::<[u8; 16]>())
}

/// A token secret: 40 characters from a URL-safe alphabet (about 238 bits).
fn new_secret() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
    let mut rng = rand::rng();
    (0..40)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Secrets are long random strings, so one SHA-256 is enough to make a leaked database useless
/// for authentication (no password stretching needed).
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub(crate) fn check_id(field: &'static str, id: &str) -> Result<()> {
    if id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(StoreError::Invalid {
            field,
            message: format!("{id:?} is not an identifier (32 lowercase hex characters)"),
        })
    }
}

pub(crate) fn check_name(field: &'static str, name: &str) -> Result<()> {
    if name.trim().is_empty() || name.len() > 120 || name.chars().any(char::is_control) {
        return Err(StoreError::Invalid {
            field,
            message: format!("{name:?} must be 1-120 printable characters"),
        });
    }
    Ok(())
}

impl Store {
    /// Opens (creating when missing) the SQLite database of a data directory.
    pub async fn open_data_dir(dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::DataDir {
            path: dir.display().to_string(),
            source,
        })?;
        let file = dir.join("edgetrace.db");
        Store::open(&format!("sqlite://{}?mode=rwc", file.display())).await
    }

    /// Opens a database by URL (`sqlite://FILE?mode=rwc` or `postgres://…`) and brings its
    /// schema up to date.
    pub async fn open(url: &str) -> Result<Store> {
        install_default_drivers();
        let sqlite = url.starts_with("sqlite:");
        let location = redact(url);
        let pool = AnyPoolOptions::new()
            .max_connections(if sqlite { 4 } else { 16 })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if sqlite {
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; \
                             PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await
            .map_err(|source| StoreError::Open { location, source })?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Store { pool })
    }

    pub async fn create_account(&self, name: &str) -> Result<Account> {
        check_name("name", name)?;
        let account = Account {
            id: new_id(),
            name: name.to_string(),
            created_at: now_ms(),
        };
        sqlx::query("INSERT INTO accounts (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(&account.id)
            .bind(&account.name)
            .bind(account.created_at)
            .execute(&self.pool)
            .await?;
        Ok(account)
    }

    pub async fn accounts(&self) -> Result<Vec<Account>> {
        let rows = sqlx::query("SELECT id, name, created_at FROM accounts ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Account {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    pub async fn account(&self, id: &str) -> Result<Option<Account>> {
        let row = sqlx::query("SELECT id, name, created_at FROM accounts WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(Account {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .transpose()
    }

    /// Creates a token and returns it with its secret, which is not kept and cannot be shown
    /// again.
    pub async fn create_token(
        &self,
        account_id: &str,
        name: &str,
        permissions: &[String],
    ) -> Result<(Token, String)> {
        check_id("account", account_id)?;
        check_name("name", name)?;
        if permissions.is_empty() {
            return Err(StoreError::Invalid {
                field: "permission",
                message: format!("at least one is needed; known: {}", PERMISSIONS.join(", ")),
            });
        }
        for p in permissions {
            if !PERMISSIONS.contains(&p.as_str()) {
                return Err(StoreError::Invalid {
                    field: "permission",
                    message: format!(
                        "{p:?} is not a permission; known: {}",
                        PERMISSIONS.join(", ")
                    ),
                });
            }
        }
        if self.account(account_id).await?.is_none() {
            return Err(StoreError::NotFound {
                what: "account",
                id: account_id.to_string(),
            });
        }
        let mut permissions = permissions.to_vec();
        permissions.dedup();
        let secret = new_secret();
        let token = Token {
            id: new_id(),
            account_id: account_id.to_string(),
            name: name.to_string(),
            permissions,
            status: "active".into(),
            created_at: now_ms(),
        };
        sqlx::query(
            "INSERT INTO tokens (id, account_id, name, secret_hash, permissions, status, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&token.id)
        .bind(&token.account_id)
        .bind(&token.name)
        .bind(hash_secret(&secret))
        .bind(serde_json::to_string(&token.permissions).unwrap_or_default())
        .bind(&token.status)
        .bind(token.created_at)
        .execute(&self.pool)
        .await?;
        Ok((token, secret))
    }

    fn token_from_row(r: &sqlx::any::AnyRow) -> Result<Token> {
        let permissions: String = r.try_get("permissions")?;
        Ok(Token {
            id: r.try_get("id")?,
            account_id: r.try_get("account_id")?,
            name: r.try_get("name")?,
            permissions: serde_json::from_str(&permissions).unwrap_or_default(),
            status: r.try_get("status")?,
            created_at: r.try_get("created_at")?,
        })
    }

    /// Every token, or an account's.
    pub async fn tokens(&self, account_id: Option<&str>) -> Result<Vec<Token>> {
        let rows = match account_id {
            Some(a) => {
                sqlx::query(
                    "SELECT id, account_id, name, permissions, status, created_at FROM tokens \
                     WHERE account_id = $1 ORDER BY created_at, id",
                )
                .bind(a)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(
                    "SELECT id, account_id, name, permissions, status, created_at FROM tokens \
                     ORDER BY created_at, id",
                )
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(Store::token_from_row).collect()
    }

    /// The token a secret designates, whatever its status.
    pub async fn token_by_secret(&self, secret: &str) -> Result<Option<Token>> {
        let row = sqlx::query(
            "SELECT id, account_id, name, permissions, status, created_at FROM tokens \
             WHERE secret_hash = $1",
        )
        .bind(hash_secret(secret))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(Store::token_from_row).transpose()
    }

    /// Revokes a token; false when it was already revoked.
    pub async fn revoke_token(&self, id: &str) -> Result<bool> {
        check_id("token", id)?;
        let done = sqlx::query(
            "UPDATE tokens SET status = 'revoked', revoked_at = $1 WHERE id = $2 AND status = 'active'",
        )
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 1 {
            return Ok(true);
        }
        let exists = sqlx::query("SELECT id FROM tokens WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        match exists {
            Some(_) => Ok(false),
            None => Err(StoreError::NotFound {
                what: "token",
                id: id.to_string(),
            }),
        }
    }

    /// Gives `email` a new global API key and membership of `account_id` (creating the user
    /// when new); returns the key, which is not kept.
    pub async fn create_global_key(&self, email: &str, account_id: &str) -> Result<String> {
        let email = email.trim().to_ascii_lowercase();
        if !email.contains('@') || email.len() > 254 || email.contains(char::is_whitespace) {
            return Err(StoreError::Invalid {
                field: "email",
                message: format!("{email:?} is not an email address"),
            });
        }
        check_id("account", account_id)?;
        if self.account(account_id).await?.is_none() {
            return Err(StoreError::NotFound {
                what: "account",
                id: account_id.to_string(),
            });
        }
        let key = hex::encode(rand::rng().random::<[u8; 20]>());
        let mut tx = self.pool.begin().await?;
        let existing = sqlx::query("SELECT id FROM users WHERE email = $1")
            .bind(&email)
            .fetch_optional(&mut *tx)
            .await?;
        let user_id = match existing {
            Some(row) => {
                let id: String = row.try_get("id")?;
                sqlx::query("UPDATE users SET key_hash = $1 WHERE id = $2")
                    .bind(hash_secret(&key))
                    .bind(&id)
                    .execute(&mut *tx)
                    .await?;
                id
            }
            None => {
                let id = new_id();
                sqlx::query(
                    "INSERT INTO users (id, email, key_hash, created_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(&id)
                .bind(&email)
                .bind(hash_secret(&key))
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
                id
            }
        };
        let member =
            sqlx::query("SELECT user_id FROM memberships WHERE user_id = $1 AND account_id = $2")
                .bind(&user_id)
                .bind(account_id)
                .fetch_optional(&mut *tx)
                .await?;
        if member.is_none() {
            sqlx::query("INSERT INTO memberships (user_id, account_id) VALUES ($1, $2)")
                .bind(&user_id)
                .bind(account_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(key)
    }

    /// The user an email and global key designate, with the accounts it belongs to.
    pub async fn user_by_key(&self, email: &str, key: &str) -> Result<Option<User>> {
        let row = sqlx::query("SELECT id, email FROM users WHERE email = $1 AND key_hash = $2")
            .bind(email.trim().to_ascii_lowercase())
            .bind(hash_secret(key))
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let id: String = row.try_get("id")?;
        let accounts = sqlx::query("SELECT account_id FROM memberships WHERE user_id = $1")
            .bind(&id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get("account_id"))
            .collect::<Result<Vec<String>, _>>()?;
        Ok(Some(User {
            id,
            email: row.try_get("email")?,
            accounts,
        }))
    }

    /// Records a traceroute request before it runs.
    pub async fn insert_traceroute(
        &self,
        id: &str,
        account_id: &str,
        token_id: &str,
        request: &serde_json::Value,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO traceroutes (id, account_id, token_id, request, status, created_at) \
             VALUES ($1, $2, $3, $4, 'running', $5)",
        )
        .bind(id)
        .bind(account_id)
        .bind(token_id)
        .bind(request.to_string())
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Stores a traceroute's result (`done`) or records that it failed (`failed`, no result).
    pub async fn finish_traceroute(
        &self,
        id: &str,
        result: Option<&serde_json::Value>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE traceroutes SET result = $1, status = $2, finished_at = $3 WHERE id = $4",
        )
        .bind(result.map(|r| r.to_string()))
        .bind(if result.is_some() { "done" } else { "failed" })
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn traceroute(&self, account_id: &str, id: &str) -> Result<Option<StoredTraceroute>> {
        let row = sqlx::query(
            "SELECT id, account_id, request, result, status, created_at, finished_at \
             FROM traceroutes WHERE account_id = $1 AND id = $2",
        )
        .bind(account_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(Store::traceroute_from_row).transpose()
    }

    /// An account's most recent traceroutes, newest first.
    pub async fn recent_traceroutes(
        &self,
        account_id: &str,
        limit: i64,
    ) -> Result<Vec<StoredTraceroute>> {
        sqlx::query(
            "SELECT id, account_id, request, result, status, created_at, finished_at \
             FROM traceroutes WHERE account_id = $1 ORDER BY created_at DESC, id LIMIT $2",
        )
        .bind(account_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(Store::traceroute_from_row)
        .collect()
    }

    fn traceroute_from_row(r: &sqlx::any::AnyRow) -> Result<StoredTraceroute> {
        let request: String = r.try_get("request")?;
        let result: Option<String> = r.try_get("result")?;
        Ok(StoredTraceroute {
            id: r.try_get("id")?,
            account_id: r.try_get("account_id")?,
            request: serde_json::from_str(&request).unwrap_or(serde_json::Value::Null),
            result: result.and_then(|s| serde_json::from_str(&s).ok()),
            status: r.try_get("status")?,
            created_at: r.try_get("created_at")?,
            finished_at: r.try_get("finished_at")?,
        })
    }

    /// Closes the pool, waiting for running queries.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_data_dir(dir.path()).await.unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn tokens_are_stored_hashed_and_found_by_secret() {
        let (dir, store) = store().await;
        let account = store.create_account("ops").await.unwrap();
        assert_eq!(account.id.len(), 32);
        let (token, secret) = store
            .create_token(&account.id, "ci", &["Magic Transit Write".into()])
            .await
            .unwrap();
        assert_eq!(secret.len(), 40);
        let found = store.token_by_secret(&secret).await.unwrap().unwrap();
        assert_eq!(found, token);
        assert!(found.allows("Magic Transit Write") && !found.allows("Zone Write"));
        assert!(store.token_by_secret("nope").await.unwrap().is_none());
        store.close().await;
        // The secret never reaches the disk; its hash does.
        let mut bytes = Vec::new();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
        }
        let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        assert!(!contains(secret.as_bytes()));
        assert!(contains(hash_secret(&secret).as_bytes()));
    }

    #[tokio::test]
    async fn revoking_and_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let (id, secret) = {
            let store = Store::open_data_dir(dir.path()).await.unwrap();
            let account = store.create_account("ops").await.unwrap();
            let (token, secret) = store
                .create_token(&account.id, "t", &["Zone Read".into()])
                .await
                .unwrap();
            store.close().await;
            (token.id, secret)
        };
        let store = Store::open_data_dir(dir.path()).await.unwrap();
        assert!(
            store
                .token_by_secret(&secret)
                .await
                .unwrap()
                .unwrap()
                .is_active()
        );
        assert!(store.revoke_token(&id).await.unwrap());
        assert!(!store.revoke_token(&id).await.unwrap());
        assert!(
            !store
                .token_by_secret(&secret)
                .await
                .unwrap()
                .unwrap()
                .is_active()
        );
        let missing = store.revoke_token(&new_id()).await.unwrap_err();
        assert!(missing.is_not_found());
        assert!(store.revoke_token("x").await.is_err());
    }

    #[tokio::test]
    async fn bad_input_names_the_field() {
        let (_dir, store) = store().await;
        let account = store.create_account("a").await.unwrap();
        let e = store
            .create_token(&account.id, "t", &["Magic Transit Writ".into()])
            .await
            .unwrap_err();
        assert!(
            e.to_string().starts_with(
                "permission: \"Magic Transit Writ\" is not a permission; known: Magic Transit Read"
            ),
            "{e}"
        );
        let e = store.create_token(&account.id, "t", &[]).await.unwrap_err();
        assert!(e.to_string().starts_with("permission: at least one"), "{e}");
        let e = store.create_account("").await.unwrap_err();
        assert!(e.to_string().starts_with("name: "), "{e}");
        let e = store
            .create_token("0123", "t", &["Zone Read".into()])
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("account: \"0123\" is not an identifier"),
            "{e}"
        );
        let e = store
            .create_token(&new_id(), "t", &["Zone Read".into()])
            .await
            .unwrap_err();
        assert!(e.is_not_found(), "{e}");
        let e = store
            .create_global_key("nobody", &account.id)
            .await
            .unwrap_err();
        assert!(e.to_string().starts_with("email: "), "{e}");
    }

    #[tokio::test]
    async fn global_keys_rotate_and_carry_memberships() {
        let (_dir, store) = store().await;
        let a = store.create_account("a").await.unwrap();
        let b = store.create_account("b").await.unwrap();
        let k1 = store
            .create_global_key("Ops@Example.com", &a.id)
            .await
            .unwrap();
        let user = store
            .user_by_key("ops@example.com", &k1)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(user.accounts, std::slice::from_ref(&a.id));
        let k2 = store
            .create_global_key("ops@example.com", &b.id)
            .await
            .unwrap();
        assert!(
            store
                .user_by_key("ops@example.com", &k1)
                .await
                .unwrap()
                .is_none()
        );
        let mut accounts = store
            .user_by_key("OPS@example.com", &k2)
            .await
            .unwrap()
            .unwrap()
            .accounts;
        accounts.sort();
        let mut want = vec![a.id, b.id];
        want.sort();
        assert_eq!(accounts, want);
    }

    #[tokio::test]
    async fn traceroutes_are_stored_with_their_results() {
        let (_dir, store) = store().await;
        let a = store.create_account("a").await.unwrap();
        let id = new_id();
        let request = serde_json::json!({"targets": ["198.18.0.1"]});
        store
            .insert_traceroute(&id, &a.id, "t", &request)
            .await
            .unwrap();
        let running = store.traceroute(&a.id, &id).await.unwrap().unwrap();
        assert_eq!(
            (running.status.as_str(), running.result.clone()),
            ("running", None)
        );
        let result = serde_json::json!([{"target": "198.18.0.1", "colos": []}]);
        store.finish_traceroute(&id, Some(&result)).await.unwrap();
        let done = store.traceroute(&a.id, &id).await.unwrap().unwrap();
        assert_eq!(done.status, "done");
        assert_eq!(done.request, request);
        assert_eq!(done.result, Some(result));
        assert!(done.finished_at.unwrap() >= done.created_at);
        let recent = store.recent_traceroutes(&a.id, 10).await.unwrap();
        assert_eq!(recent, std::slice::from_ref(&done));
        // Another account cannot read it.
        let b = store.create_account("b").await.unwrap();
        assert!(store.traceroute(&b.id, &id).await.unwrap().is_none());
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact("postgres://u:pw@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("sqlite://x.db"), "sqlite://x.db");
    }
}
