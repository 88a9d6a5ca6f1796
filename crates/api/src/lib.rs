//! The HTTP API of edgetrace.
//!
//! [`router`] serves the Cloudflare-compatible routes under `/client/v4` (so Cloudflare's SDKs
//! work with `base_url=http://HOST:PORT/client/v4`); [`sysprobe::router`] serves Datadog's
//! system-probe `GET /traceroute/{host}`. Both are plain axum routers over one [`AppState`],
//! tested without a socket through `tower::ServiceExt::oneshot`.
//!
//! ```no_run
//! # async fn demo(state: edgetrace_api::AppState) -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, edgetrace_api::router(state)).await
//! # }
//! ```

pub mod auth;
pub mod error;
pub mod lists;
pub mod openapi;
pub mod page_rules;
pub mod request_tracer;
pub mod rulesets;
pub mod sysprobe;
pub mod traceroute;
pub mod zones;

use crate::auth::{Principal, authenticate, authorize, check_id};
use crate::error::{ApiError, ErrorItem, codes};
use axum::body::Body;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use edgetrace_fleet::{Fleet, SelectError};
use edgetrace_probe::report::Traceroute;
use edgetrace_store::Store;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use serde::Serialize;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use utoipa::ToSchema;

/// Request bodies larger than this are refused with 413 (a ruleset of 1,000 rules fits).
pub const MAX_BODY: usize = 1024 * 1024;

/// The permission the traceroute route requires, as Cloudflare names it.
pub const TRACEROUTE_WRITE: &str = "Magic Transit Write";
pub const TRACEROUTE_READ: &str = "Magic Transit Read";

/// Requests per period allowed to one token (or global key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: u32,
    pub period: Duration,
}

impl Default for RateLimit {
    /// Cloudflare's: 1200 requests per 5 minutes.
    fn default() -> Self {
        RateLimit {
            requests: 1200,
            period: Duration::from_secs(300),
        }
    }
}

/// A token bucket per caller (GCRA, from the governor crate).
pub struct Limiter {
    limiter: Option<DefaultKeyedRateLimiter<String>>,
}

impl Limiter {
    pub fn new(limit: RateLimit) -> Limiter {
        let limiter = NonZeroU32::new(limit.requests).and_then(|burst| {
            Quota::with_period(limit.period / burst.get())
                .map(|q| DefaultKeyedRateLimiter::keyed(q.allow_burst(burst)))
        });
        Limiter { limiter }
    }

    fn check(&self, caller: &str) -> Result<(), ApiError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.check_key(&caller.to_string()).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError {
                retry_after: Some(wait.as_secs().max(1)),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    codes::RATE_LIMITED,
                    format!(
                        "rate limited: too many requests with this credential; retry in {} s",
                        wait.as_secs().max(1)
                    ),
                )
            }
        })
    }
}

/// Settings of the Datadog system-probe route.
#[derive(Debug, Clone, Default)]
pub struct SysprobeConfig {
    /// `namespace` of every NetworkPath.
    pub namespace: String,
    /// `source.network_id` of every NetworkPath.
    pub network_id: String,
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub fleet: Arc<Fleet>,
    pub limiter: Arc<Limiter>,
    pub sysprobe: Arc<SysprobeConfig>,
    /// The edge (proxy and request tracer share it: sites, counters, origin client).
    pub edge: Arc<edgetrace_proxy::Edge>,
}

/// The success envelope.
#[derive(Debug, Serialize, ToSchema)]
pub struct Envelope<T> {
    /// Always true.
    pub success: bool,
    pub errors: Vec<ErrorItem>,
    pub messages: Vec<ErrorItem>,
    pub result: T,
    /// Pagination, on list routes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_info: Option<ResultInfo>,
}

/// `result_info` of a list response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
pub struct ResultInfo {
    pub page: usize,
    pub per_page: usize,
    /// Items on this page.
    pub count: usize,
    pub total_count: usize,
    pub total_pages: usize,
}

/// Declares the OpenAPI schema of a success envelope around `$result` (with `result_info` when
/// a list): utoipa needs a concrete type per envelope.
macro_rules! envelope_schema {
    ($name:ident, $result:ty) => {
        #[derive(serde::Serialize, utoipa::ToSchema)]
        #[allow(dead_code)] // a description of responses, never built
        pub struct $name {
            /// Always true.
            pub success: bool,
            pub errors: Vec<$crate::error::ErrorItem>,
            pub messages: Vec<$crate::error::ErrorItem>,
            pub result: $result,
        }
    };
    ($name:ident, $result:ty, list) => {
        #[derive(serde::Serialize, utoipa::ToSchema)]
        #[allow(dead_code)] // a description of responses, never built
        pub struct $name {
            /// Always true.
            pub success: bool,
            pub errors: Vec<$crate::error::ErrorItem>,
            pub messages: Vec<$crate::error::ErrorItem>,
            pub result: $result,
            pub result_info: $crate::ResultInfo,
        }
    };
}
pub(crate) use envelope_schema;

pub(crate) fn ok<T: Serialize>(result: T) -> Json<Envelope<T>> {
    Json(Envelope {
        success: true,
        errors: Vec::new(),
        messages: Vec::new(),
        result,
        result_info: None,
    })
}

/// A time stored as Unix milliseconds, as Cloudflare writes times: RFC 3339 in UTC.
pub(crate) fn timestamp(ms: i64) -> String {
    let time = std::time::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_micros(time).to_string()
}

/// `page` and `per_page` of a list route's query string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Paging {
    pub page: usize,
    pub per_page: usize,
}

impl Paging {
    /// Reads `page` (from 1) and `per_page` (1..=`max`, `default` when absent) from a query.
    pub(crate) fn from_query(
        query: &std::collections::HashMap<String, String>,
        default: usize,
        max: usize,
    ) -> Result<Paging, ApiError> {
        let number = |name: &str, default: usize, max: usize| -> Result<usize, ApiError> {
            match query.get(name) {
                None => Ok(default),
                Some(v) => v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=max).contains(n))
                    .ok_or_else(|| {
                        ApiError::invalid(vec![ErrorItem::at(
                            codes::INVALID_FIELD,
                            format!("?{name}"),
                            format!("{name}: {v:?} must be an integer from 1 to {max}"),
                        )])
                    }),
            }
        };
        Ok(Paging {
            page: number("page", 1, 1_000_000)?,
            per_page: number("per_page", default, max)?,
        })
    }
}

/// One page of `items`, with its `result_info`.
pub(crate) fn ok_page<T: Serialize>(items: Vec<T>, paging: Paging) -> Json<Envelope<Vec<T>>> {
    let total_count = items.len();
    let total_pages = total_count.div_ceil(paging.per_page).max(1);
    let page: Vec<T> = items
        .into_iter()
        .skip((paging.page - 1).saturating_mul(paging.per_page))
        .take(paging.per_page)
        .collect();
    Json(Envelope {
        success: true,
        errors: Vec::new(),
        messages: Vec::new(),
        result_info: Some(ResultInfo {
            page: paging.page,
            per_page: paging.per_page,
            count: page.len(),
            total_count,
            total_pages,
        }),
        result: page,
    })
}

/// The Cloudflare-compatible API, every route under `/client/v4`.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route(
            "/accounts/{account_id}/diagnostics/traceroute",
            post(create_traceroute),
        )
        .route(
            "/accounts/{account_id}/diagnostics/traceroutes/{traceroute_id}",
            get(get_traceroute),
        )
        .route("/accounts/{account_id}/diagnostics/colos", get(list_colos))
        .route("/user/tokens/verify", get(verify_token))
        .route("/openapi.json", get(openapi::serve))
        .merge(zones::routes())
        .merge(rulesets::routes())
        .merge(page_rules::routes())
        .merge(lists::routes())
        .merge(request_tracer::routes())
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            invalidate_sites,
        ))
        .with_state(state);
    Router::new()
        .nest("/client/v4", api)
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
}

/// After a successful change through the API, the edge reads configurations again (this
/// replica at once; others within `edgetrace_proxy::site::DEFAULT_TTL`).
async fn invalidate_sites(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let change = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) && !request.uri().path().ends_with("/request-tracer/trace");
    let response = next.run(request).await;
    if change && response.status().is_success() {
        state.edge.sites.invalidate();
    }
    response
}

async fn no_route(OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::no_route(uri.path())
}

async fn method_not_allowed(OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        codes::METHOD_NOT_ALLOWED,
        format!("Method not allowed on {}", uri.path()),
    )
}

/// Reads a JSON body: `application/json`, at most [`MAX_BODY`] bytes, valid JSON.
pub async fn json_body(headers: &HeaderMap, body: Body) -> Result<serde_json::Value, ApiError> {
    json_body_within(headers, body, MAX_BODY, || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            codes::BODY_TOO_LARGE,
            format!("the body is larger than {} MiB", MAX_BODY >> 20),
        )
    })
    .await
}

/// Reads a JSON body of at most `limit` bytes; a larger one is `too_large()`.
pub(crate) async fn json_body_within(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    too_large: impl FnOnce() -> ApiError,
) -> Result<serde_json::Value, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("application/json") {
        let shown = if content_type.is_empty() {
            "none".to_string()
        } else {
            format!("{content_type:?}")
        };
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            codes::UNSUPPORTED_MEDIA_TYPE,
            format!("the body must be sent with Content-Type: application/json (got {shown})"),
        ));
    }
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            codes::MALFORMED_BODY,
            format!("the body is not valid JSON: {e}"),
        )
    })
}

/// Authentication, then the account and permission check, for an account route.
pub(crate) async fn account_caller(
    state: &AppState,
    headers: &HeaderMap,
    path: &str,
    account_id: &str,
    permissions: &[&str],
) -> Result<Principal, ApiError> {
    check_id(path, account_id)?;
    let principal = authenticate(state, headers).await?;
    authorize(&principal, account_id, permissions)?;
    Ok(principal)
}

#[utoipa::path(
    post,
    path = "/accounts/{account_id}/diagnostics/traceroute",
    tag = "Diagnostics",
    summary = "Traceroute",
    description = "Runs traceroutes from the named colos (all when `colos` is absent) to 1-10 targets, all at once. \
        A colo that cannot trace a target says so in its entry's `error` (`Could not gather traceroute data: Code N`: \
        1 the target could not be resolved at the colo, 2 probes could not be sent, 3 the colo did not answer in time, \
        4 the colo does not support the packet type or address family). Requires Magic Transit Write. \
        The response header `X-Edgetrace-Traceroute-Id` names the stored request.",
    params(("account_id" = String, Path, description = "Account identifier", max_length = 32)),
    request_body(content = traceroute::TracerouteRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "One entry per target, in request order", body = openapi::TracerouteResponse,
            headers(("x-edgetrace-traceroute-id" = String, description = "Id of the stored request"))),
        (status = 400, description = "Invalid body (codes 1001, 1002, 1005) or missing credentials (9106)", body = error::ErrorEnvelope),
        openapi::AccountErrors,
        (status = 413, description = "Body over 1 MiB (1004)", body = error::ErrorEnvelope),
        (status = 415, description = "Body not application/json (1003)", body = error::ErrorEnvelope),
        openapi::AuthErrors,
    ),
    security(("api_token" = []), ("api_email" = [], "api_key" = []))
)]
async fn create_traceroute(
    State(state): State<AppState>,
    Path(account_id): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let principal = account_caller(
        &state,
        &headers,
        uri.path(),
        &account_id,
        &[TRACEROUTE_WRITE],
    )
    .await?;
    let body = json_body(&headers, body).await?;
    let request = traceroute::validate(&body)?;
    match state.fleet.select(request.colos.as_deref()) {
        Ok(_) => {}
        Err(SelectError::Unknown(unknown)) => {
            let names = request.colos.as_deref().unwrap_or_default();
            let errors = names
                .iter()
                .enumerate()
                .filter(|(_, n)| unknown.unknown.contains(n))
                .map(|(i, n)| {
                    ErrorItem::at(
                        codes::UNKNOWN_COLO,
                        format!("/colos/{i}"),
                        format!(
                            "colos[{i}]: no colo named {n:?}; known: {}",
                            unknown.known.join(", ")
                        ),
                    )
                })
                .collect();
            return Err(ApiError::invalid(errors));
        }
        // NATS is down or no agent is live: fail now, clearly, rather than wait for deadlines.
        Err(SelectError::Unavailable(why)) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                codes::COLOS_UNREACHABLE,
                why,
            ));
        }
    }
    let id = edgetrace_store::new_id();
    state
        .store
        .insert_traceroute(&id, &account_id, principal.id(), &body)
        .await?;
    // The traces and the storing of their result run on their own task: a client that goes
    // away does not cancel them, and the result is stored either way.
    let task = {
        let (store, fleet, id) = (state.store.clone(), state.fleet.clone(), id.clone());
        tokio::spawn(async move {
            let result = fleet
                .traceroute(&request.targets, request.colos.as_deref(), request.options)
                .await
                .unwrap_or_else(|e| {
                    eprintln!("edgetrace: traceroute {id}: {e}");
                    Vec::new()
                });
            let stored = match serde_json::to_value(&result) {
                Ok(json) => store.finish_traceroute(&id, Some(&json)).await,
                Err(_) => store.finish_traceroute(&id, None).await,
            };
            if let Err(e) = stored {
                eprintln!("edgetrace: cannot store the result of traceroute {id}: {e}");
            }
            result
        })
    };
    let result: Vec<Traceroute> = task
        .await
        .map_err(|e| ApiError::internal("traceroute task", &e))?;
    Ok(([("x-edgetrace-traceroute-id", id)], ok(result)).into_response())
}

/// A stored traceroute request.
#[derive(Debug, Serialize, ToSchema)]
pub struct StoredTraceroute {
    pub id: String,
    /// `running`, `done` or `failed`.
    pub status: String,
    /// Unix time in milliseconds.
    pub created_at: i64,
    pub finished_at: Option<i64>,
    /// The request body as received.
    #[schema(value_type = Object)]
    pub request: serde_json::Value,
    /// The response's `result`, once done.
    pub result: Option<Vec<Traceroute>>,
}

#[utoipa::path(
    get,
    path = "/accounts/{account_id}/diagnostics/traceroutes/{traceroute_id}",
    tag = "Diagnostics",
    summary = "Stored traceroute (edgetrace extension)",
    description = "A traceroute request as stored, with its result once finished. Requires Magic Transit Read or Write.",
    params(
        ("account_id" = String, Path, description = "Account identifier", max_length = 32),
        ("traceroute_id" = String, Path, description = "The `X-Edgetrace-Traceroute-Id` of the request", max_length = 32),
    ),
    responses(
        (status = 200, description = "The stored request", body = openapi::StoredTracerouteResponse),
        (status = 400, description = "Missing credentials (9106)", body = error::ErrorEnvelope),
        openapi::AccountErrors,
        openapi::AuthErrors,
    ),
    security(("api_token" = []), ("api_email" = [], "api_key" = []))
)]
async fn get_traceroute(
    State(state): State<AppState>,
    Path((account_id, traceroute_id)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    account_caller(
        &state,
        &headers,
        uri.path(),
        &account_id,
        &[TRACEROUTE_READ, TRACEROUTE_WRITE],
    )
    .await?;
    let not_found = || ApiError::not_found(uri.path());
    check_id(uri.path(), &traceroute_id).map_err(|_| not_found())?;
    let stored = state
        .store
        .traceroute(&account_id, &traceroute_id)
        .await?
        .ok_or_else(not_found)?;
    Ok(ok(StoredTraceroute {
        id: stored.id,
        status: stored.status,
        created_at: stored.created_at,
        finished_at: stored.finished_at,
        request: stored.request,
        result: stored.result.and_then(|r| serde_json::from_value(r).ok()),
    })
    .into_response())
}

#[utoipa::path(
    get,
    path = "/accounts/{account_id}/diagnostics/colos",
    tag = "Diagnostics",
    summary = "Colos (edgetrace extension)",
    description = "The live colos this account can run traceroutes from, with their city and how many agents serve each. Requires Magic Transit Read or Write.",
    params(("account_id" = String, Path, description = "Account identifier", max_length = 32)),
    responses(
        (status = 200, description = "The colos", body = openapi::ColosResponse),
        (status = 400, description = "Missing credentials (9106)", body = error::ErrorEnvelope),
        openapi::AccountErrors,
        openapi::AuthErrors,
    ),
    security(("api_token" = []), ("api_email" = [], "api_key" = []))
)]
async fn list_colos(
    State(state): State<AppState>,
    Path(account_id): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Json<Envelope<Vec<ColoInfo>>>, ApiError> {
    account_caller(
        &state,
        &headers,
        uri.path(),
        &account_id,
        &[TRACEROUTE_READ, TRACEROUTE_WRITE],
    )
    .await?;
    let colos = state.fleet.status().into_iter().map(|s| ColoInfo {
        name: s.colo.name,
        city: s.colo.city,
        agents: s.agents,
    });
    Ok(ok(colos.collect()))
}

/// A live colo (an entry of the colos route).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
pub struct ColoInfo {
    /// The colo's name, e.g. `sin01`; `colos` in a traceroute request takes it (or `sin`).
    pub name: String,
    pub city: String,
    /// Processes serving the colo: live `edgetrace agent`s, or 1 for the server's own colo.
    pub agents: usize,
}

/// `result` of the token verification.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenStatus {
    pub id: String,
    /// `active`.
    pub status: String,
}

#[utoipa::path(
    get,
    path = "/user/tokens/verify",
    tag = "User API Tokens",
    summary = "Verify Token",
    description = "Whether the bearer token is valid and active.",
    responses(
        (status = 200, description = "The token is active", body = openapi::VerifyResponse),
        (status = 400, description = "Missing credentials (9106)", body = error::ErrorEnvelope),
        openapi::AuthErrors,
    ),
    security(("api_token" = []))
)]
async fn verify_token(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Envelope<TokenStatus>>, ApiError> {
    match authenticate(&state, &headers).await? {
        Principal::Token(t) => Ok(ok(TokenStatus {
            id: t.id,
            status: t.status,
        })),
        Principal::User(_) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            codes::MISSING_AUTH,
            "this route verifies API tokens: send Authorization: Bearer <token>",
        )),
    }
}
