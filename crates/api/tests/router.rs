//! Every validation branch and auth case of the API, through the router without a socket.
//! A real SQLite store in a temporary directory and a real prober; the only traces run go to
//! loopback addresses. Needs root (raw sockets), like the rest of the suite.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use edgetrace_api::{AppState, Limiter, RateLimit, SysprobeConfig, router, sysprobe};
use edgetrace_fleet::{Fleet, LocalColo};
use edgetrace_net::{Prober, Sockets};
use edgetrace_probe::report::Colo;
use edgetrace_store::Store;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

struct Env {
    _dir: tempfile::TempDir,
    state: AppState,
    account: String,
    secret: String,
}

async fn env_with(limit: RateLimit) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_data_dir(dir.path()).await.unwrap();
    let account = store.create_account("test").await.unwrap();
    let (_, secret) = store
        .create_token(&account.id, "all", &["Magic Transit Write".into()])
        .await
        .unwrap();
    let prober = Prober::start(Some(Sockets::open().unwrap())).unwrap();
    let colo = Colo {
        name: "lab01".into(),
        city: "Lab, ZZ".into(),
    };
    let state = AppState {
        edge: Arc::new(edgetrace_proxy::Edge::new(store.clone())),
        store,
        fleet: Arc::new(Fleet::new(vec![LocalColo::new(colo, prober)])),
        limiter: Arc::new(Limiter::new(limit)),
        sysprobe: Arc::new(SysprobeConfig {
            namespace: "lab".into(),
            network_id: "vpc-1".into(),
        }),
    };
    Env {
        _dir: dir,
        state,
        account: account.id,
        secret,
    }
}

async fn env() -> Env {
    env_with(RateLimit::default()).await
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

async fn send(app: axum::Router, req: Request<Body>) -> Reply {
    let res = app.oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)));
    Reply {
        status,
        headers,
        body,
    }
}

fn post(
    uri: &str,
    secret: Option<&str>,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> Request<Body> {
    let mut b = Request::post(uri);
    if let Some(s) = secret {
        b = b.header("authorization", format!("Bearer {s}"));
    }
    if let Some(ct) = content_type {
        b = b.header("content-type", ct);
    }
    b.body(body.into()).unwrap()
}

fn get(uri: &str, secret: Option<&str>) -> Request<Body> {
    let mut b = Request::get(uri);
    if let Some(s) = secret {
        b = b.header("authorization", format!("Bearer {s}"));
    }
    b.body(Body::empty()).unwrap()
}

fn trace_uri(account: &str) -> String {
    format!("/client/v4/accounts/{account}/diagnostics/traceroute")
}

fn error(r: &Reply) -> (u64, String) {
    assert_eq!(r.body["success"], false, "{}", r.body);
    assert_eq!(r.body["result"], Value::Null);
    let e = &r.body["errors"][0];
    (
        e["code"].as_u64().unwrap(),
        e["message"].as_str().unwrap().to_string(),
    )
}

const JSON: Option<&str> = Some("application/json");

#[tokio::test]
async fn auth_cases() {
    let e = env().await;
    let app = || router(e.state.clone());
    let body = json!({"targets": ["127.0.0.1"]}).to_string();
    let uri = trace_uri(&e.account);

    let r = send(app(), post(&uri, None, JSON, body.clone())).await;
    assert_eq!((r.status, error(&r).0), (StatusCode::BAD_REQUEST, 9106));

    let r = send(app(), post(&uri, Some("wrong"), JSON, body.clone())).await;
    assert_eq!((r.status, error(&r).0), (StatusCode::UNAUTHORIZED, 10000));

    let r = send(
        app(),
        Request::post(&uri)
            .header("authorization", "Basic abc")
            .header("content-type", "application/json")
            .body(Body::from(body.clone()))
            .unwrap(),
    )
    .await;
    assert_eq!(error(&r).0, 10000);
    assert!(error(&r).1.contains("Bearer"), "{}", error(&r).1);

    // A token of another account, and a token without the permission.
    let other = e.state.store.create_account("other").await.unwrap();
    let (_, other_secret) = e
        .state
        .store
        .create_token(&other.id, "o", &["Magic Transit Write".into()])
        .await
        .unwrap();
    let r = send(app(), post(&uri, Some(&other_secret), JSON, body.clone())).await;
    assert_eq!((r.status, error(&r).0), (StatusCode::FORBIDDEN, 9109));
    let (_, read_only) = e
        .state
        .store
        .create_token(&e.account, "ro", &["Magic Transit Read".into()])
        .await
        .unwrap();
    let r = send(app(), post(&uri, Some(&read_only), JSON, body.clone())).await;
    assert_eq!((r.status, error(&r).0), (StatusCode::FORBIDDEN, 9109));
    assert!(error(&r).1.contains("Magic Transit Write"));
    // ... which may still list colos.
    let colos = format!("/client/v4/accounts/{}/diagnostics/colos", e.account);
    let r = send(app(), get(&colos, Some(&read_only))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body["result"],
        json!([{"name": "lab01", "city": "Lab, ZZ", "agents": 1}])
    );

    // A revoked token.
    let (t, revoked) = e
        .state
        .store
        .create_token(&e.account, "gone", &["Magic Transit Write".into()])
        .await
        .unwrap();
    e.state.store.revoke_token(&t.id).await.unwrap();
    let r = send(app(), post(&uri, Some(&revoked), JSON, body.clone())).await;
    assert_eq!((r.status, error(&r).0), (StatusCode::UNAUTHORIZED, 10000));
    assert!(error(&r).1.contains("revoked"));

    // Invalid account identifiers are a routing error before anything else.
    let r = send(
        app(),
        post(&trace_uri("ACCOUNT"), Some(&e.secret), JSON, body.clone()),
    )
    .await;
    assert_eq!((r.status, error(&r).0), (StatusCode::NOT_FOUND, 7003));

    // Legacy email + global key.
    let key = e
        .state
        .store
        .create_global_key("ops@example.com", &e.account)
        .await
        .unwrap();
    let legacy = |email: &str, key: &str| {
        Request::get(&colos)
            .header("x-auth-email", email)
            .header("x-auth-key", key)
            .body(Body::empty())
            .unwrap()
    };
    let r = send(app(), legacy("ops@example.com", &key)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = send(app(), legacy("ops@example.com", "0000")).await;
    assert_eq!((r.status, error(&r).0), (StatusCode::UNAUTHORIZED, 10000));
    let r = send(
        app(),
        Request::get(&colos)
            .header("x-auth-email", "ops@example.com")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(error(&r).0, 9106);
    let r = send(
        app(),
        Request::get(format!(
            "/client/v4/accounts/{}/diagnostics/colos",
            other.id
        ))
        .header("x-auth-email", "ops@example.com")
        .header("x-auth-key", &key)
        .body(Body::empty())
        .unwrap(),
    )
    .await;
    assert_eq!((r.status, error(&r).0), (StatusCode::FORBIDDEN, 9109));
}

#[tokio::test]
async fn verify_token() {
    let e = env().await;
    let r = send(
        router(e.state.clone()),
        get("/client/v4/user/tokens/verify", Some(&e.secret)),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["result"]["status"], "active");
    assert_eq!(r.body["result"]["id"].as_str().unwrap().len(), 32);
    let r = send(
        router(e.state.clone()),
        get("/client/v4/user/tokens/verify", Some("nope")),
    )
    .await;
    assert_eq!(error(&r).0, 10000);
}

#[tokio::test]
async fn body_errors() {
    let e = env().await;
    let app = || router(e.state.clone());
    let uri = trace_uri(&e.account);
    let s = Some(e.secret.as_str());

    let r = send(app(), post(&uri, s, JSON, "{\"targets\": [")).await;
    assert_eq!((r.status, error(&r).0), (StatusCode::BAD_REQUEST, 1001));
    assert!(error(&r).1.starts_with("the body is not valid JSON"));

    let r = send(app(), post(&uri, s, Some("text/plain"), "{}")).await;
    assert_eq!(
        (r.status, error(&r).0),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, 1003)
    );
    let r = send(app(), post(&uri, s, None, "{}")).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = send(
        app(),
        post(&uri, s, Some("application/json; charset=utf-8"), "[]"),
    )
    .await;
    assert_eq!((r.status, error(&r).0), (StatusCode::BAD_REQUEST, 1001));

    let big = format!("{{\"targets\": [\"{}\"]}}", "a".repeat(1024 * 1024 + 1));
    let r = send(app(), post(&uri, s, JSON, big)).await;
    assert_eq!(
        (r.status, error(&r).0),
        (StatusCode::PAYLOAD_TOO_LARGE, 1004)
    );

    let r = send(
        app(),
        post(
            &uri,
            s,
            JSON,
            json!({"targets": ["127.0.0.1", "a b"], "options": {"max_ttl": 65, "wait_time": 0}})
                .to_string(),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let pointers: Vec<(&str, u64)> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["source"]["pointer"].as_str().unwrap(),
                e["code"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        pointers,
        [
            ("/targets/1", 1002),
            ("/options/max_ttl", 1002),
            ("/options/wait_time", 1002)
        ]
    );

    let r = send(
        app(),
        post(
            &uri,
            s,
            JSON,
            json!({"targets": ["127.0.0.1"], "colos": ["lab", "den", "sin01"]}).to_string(),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let errors = r.body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0]["code"], 1005);
    assert_eq!(errors[0]["source"]["pointer"], "/colos/1");
    assert_eq!(
        errors[0]["message"],
        "colos[1]: no colo named \"den\"; known: lab01"
    );
    assert_eq!(errors[1]["source"]["pointer"], "/colos/2");

    // Unknown routes and methods answer in the envelope too.
    let r = send(app(), get("/client/v4/nothing", s)).await;
    assert_eq!((r.status, error(&r).0), (StatusCode::NOT_FOUND, 7000));
    let r = send(app(), get("/elsewhere", s)).await;
    assert_eq!((r.status, error(&r).0), (StatusCode::NOT_FOUND, 7000));
    let r = send(app(), get(&uri, s)).await;
    assert_eq!(
        (r.status, error(&r).0),
        (StatusCode::METHOD_NOT_ALLOWED, 7001)
    );
}

#[tokio::test]
async fn rate_limit_per_token() {
    let e = env_with(RateLimit {
        requests: 2,
        period: Duration::from_secs(60),
    })
    .await;
    let verify = "/client/v4/user/tokens/verify";
    for _ in 0..2 {
        let r = send(router(e.state.clone()), get(verify, Some(&e.secret))).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let r = send(router(e.state.clone()), get(verify, Some(&e.secret))).await;
    assert_eq!(
        (r.status, error(&r).0),
        (StatusCode::TOO_MANY_REQUESTS, 1015)
    );
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    // Another token has its own budget.
    let (_, other) = e
        .state
        .store
        .create_token(&e.account, "b", &["Magic Transit Read".into()])
        .await
        .unwrap();
    let r = send(router(e.state.clone()), get(verify, Some(&other))).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn traceroute_to_loopback_is_answered_and_stored() {
    let e = env().await;
    let body = json!({"targets": ["127.0.0.1", "::1"], "colos": ["lab"],
                      "options": {"max_ttl": 4, "packets_per_ttl": 2}});
    let r = send(
        router(e.state.clone()),
        post(
            &trace_uri(&e.account),
            Some(&e.secret),
            JSON,
            body.to_string(),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["success"], true);
    let result = r.body["result"].as_array().unwrap();
    assert_eq!(result.len(), 2);
    for (t, ip) in result.iter().zip(["127.0.0.1", "::1"]) {
        assert_eq!(t["target"], ip);
        let c = &t["colos"][0];
        assert_eq!(c["colo"]["name"], "lab01");
        assert_eq!(c["error"], "");
        assert_eq!(c["hops"][0]["packets_sent"], 2);
        assert_eq!(c["hops"][0]["nodes"][0]["ip"], ip);
        assert_eq!(c["target_summary"]["packet_count"], 2);
    }
    let id = r.headers["x-edgetrace-traceroute-id"]
        .to_str()
        .unwrap()
        .to_string();
    let stored = send(
        router(e.state.clone()),
        get(
            &format!(
                "/client/v4/accounts/{}/diagnostics/traceroutes/{id}",
                e.account
            ),
            Some(&e.secret),
        ),
    )
    .await;
    assert_eq!(stored.status, StatusCode::OK, "{}", stored.body);
    assert_eq!(stored.body["result"]["status"], "done");
    assert_eq!(stored.body["result"]["request"], body);
    assert_eq!(stored.body["result"]["result"], r.body["result"]);
    let missing = send(
        router(e.state.clone()),
        get(
            &format!(
                "/client/v4/accounts/{}/diagnostics/traceroutes/{}",
                e.account,
                "0".repeat(32)
            ),
            Some(&e.secret),
        ),
    )
    .await;
    assert_eq!(
        (missing.status, error(&missing).0),
        (StatusCode::NOT_FOUND, 7003)
    );
}

#[tokio::test]
async fn openapi_document_lists_every_route() {
    let e = env().await;
    let r = send(
        router(e.state.clone()),
        get("/client/v4/openapi.json", None),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths: Vec<String> = r.body["paths"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    for wanted in [
        "/accounts/{account_id}/diagnostics/colos",
        "/accounts/{account_id}/diagnostics/traceroute",
        "/accounts/{account_id}/diagnostics/traceroutes/{traceroute_id}",
        "/openapi.json",
        "/user/tokens/verify",
        "/zones",
        "/zones/{zone_id}/dns_records",
        "/{account_or_zone}/{account_or_zone_id}/rulesets/phases/{phase}/entrypoint",
        "/zones/{zone_id}/pagerules",
        "/accounts/{account_id}/rules/lists",
    ] {
        assert!(
            paths.iter().any(|p| p == wanted),
            "{wanted} missing from {paths:?}"
        );
    }
    // Every documented path is served: with its parameters filled in, the router finds a
    // route (whatever the method or the credentials then say).
    for path in &paths {
        let concrete = path
            .replace("{account_or_zone}", "accounts")
            .replace("{phase}", "http_request_firewall_custom")
            .replace("{version}", "1");
        let concrete: String = concrete
            .split('/')
            .map(|seg| {
                if seg.starts_with('{') {
                    "0123456789abcdef0123456789abcdef"
                } else {
                    seg
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let reply = send(
            router(e.state.clone()),
            get(&format!("/client/v4{concrete}"), Some(&e.secret)),
        )
        .await;
        assert_ne!(
            reply.body["errors"][0]["code"], 7000,
            "{path} is documented but not served: {}",
            reply.body
        );
    }
    assert_eq!(r.body["servers"][0]["url"], "/client/v4");
}

#[tokio::test]
async fn sysprobe_network_path() {
    let e = env().await;
    let r = send(
        sysprobe::router(e.state.clone(), false),
        get(
            "/traceroute/127.0.0.1?protocol=ICMP&max_ttl=5&timeout=1000000000&client_id=t",
            None,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let p = &r.body;
    assert_eq!(p["protocol"], "ICMP");
    assert_eq!(p["namespace"], "lab");
    assert_eq!(p["source"]["network_id"], "vpc-1");
    assert_eq!(p["source"]["via"]["interface"]["name"], "lo");
    assert_eq!(
        p["destination"],
        json!({"hostname": "127.0.0.1", "ip_address": "127.0.0.1", "port": 1})
    );
    assert_eq!(p["hops"][0]["ttl"], 1);
    assert_eq!(p["hops"][0]["ip_address"], "127.0.0.1");
    assert_eq!(p["hops"][0]["reachable"], true);
    assert!(uuid::Uuid::parse_str(p["path_id"].as_str().unwrap()).is_ok());

    let r = send(
        sysprobe::router(e.state.clone(), false),
        get("/traceroute/127.0.0.1?protocol=SCTP", None),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body["error"].as_str().unwrap().contains("protocol"));
    // On TCP, a token is required.
    let r = send(
        sysprobe::router(e.state.clone(), true),
        get("/traceroute/127.0.0.1", None),
    )
    .await;
    assert_eq!(error(&r).0, 9106);
}
