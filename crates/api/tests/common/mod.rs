//! What the router tests of the edge configuration share: a real SQLite store in a temporary
//! directory, an account with an all-permission token, and requests through the router
//! without a socket.
#![allow(dead_code)] // each test binary uses its own subset

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use edgetrace_api::{AppState, Limiter, RateLimit, SysprobeConfig, router};
use edgetrace_fleet::Fleet;
use edgetrace_store::Store;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

pub struct Env {
    pub _dir: tempfile::TempDir,
    pub state: AppState,
    pub account: String,
    /// Every permission.
    pub admin: String,
}

pub async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_data_dir(dir.path()).await.unwrap();
    let account = store.create_account("edge").await.unwrap();
    let all: Vec<String> = edgetrace_store::PERMISSIONS
        .iter()
        .map(|p| p.to_string())
        .collect();
    let (_, admin) = store
        .create_token(&account.id, "admin", &all)
        .await
        .unwrap();
    let state = AppState {
        edge: Arc::new(edgetrace_proxy::Edge::new(store.clone())),
        store,
        fleet: Arc::new(Fleet::new(Vec::new())),
        limiter: Arc::new(Limiter::new(RateLimit::default())),
        sysprobe: Arc::new(SysprobeConfig::default()),
    };
    Env {
        _dir: dir,
        state,
        account: account.id,
        admin,
    }
}

impl Env {
    pub async fn token(&self, permissions: &[&str]) -> String {
        let permissions: Vec<String> = permissions.iter().map(|p| p.to_string()).collect();
        self.state
            .store
            .create_token(&self.account, "t", &permissions)
            .await
            .unwrap()
            .1
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        secret: &str,
        body: Option<Value>,
    ) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("/client/v4{path}"))
            .header("authorization", format!("Bearer {secret}"));
        let body = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                Body::from(b.to_string())
            }
            None => Body::empty(),
        };
        let res = router(self.state.clone())
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
        };
        Reply { status, body }
    }

    pub async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let r = self.call(method.clone(), path, &self.admin, body).await;
        assert_eq!(r.status, StatusCode::OK, "{method} {path}: {}", r.body);
        assert_eq!(r.body["success"], true);
        r.body["result"].clone()
    }

    pub async fn zone(&self, name: &str) -> String {
        let zone = self
            .ok(
                Method::POST,
                "/zones",
                Some(json!({"name": name, "account": {"id": self.account}})),
            )
            .await;
        zone["id"].as_str().unwrap().to_string()
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
}

impl Reply {
    /// Every error as (code, pointer, message), after checking the envelope and `status`.
    pub fn errors(&self, status: StatusCode) -> Vec<(u64, String, String)> {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.body["success"], false, "{}", self.body);
        assert_eq!(self.body["result"], Value::Null);
        self.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["code"].as_u64().unwrap(),
                    e["source"]["pointer"].as_str().unwrap_or("").to_string(),
                    e["message"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// The one error's pointer and message, for a 400 with code 1002.
    pub fn invalid(&self) -> (String, String) {
        let errors = self.errors(StatusCode::BAD_REQUEST);
        assert_eq!(errors.len(), 1, "{}", self.body);
        assert_eq!(errors[0].0, 1002, "{}", self.body);
        (errors[0].1.clone(), errors[0].2.clone())
    }

    /// The first error's status, code, pointer and message.
    pub fn error(&self) -> (StatusCode, u64, String, String) {
        assert_eq!(self.body["success"], false, "{}", self.body);
        let e = &self.body["errors"][0];
        (
            self.status,
            e["code"].as_u64().unwrap(),
            e["source"]["pointer"].as_str().unwrap_or("").to_string(),
            e["message"].as_str().unwrap().to_string(),
        )
    }
}
