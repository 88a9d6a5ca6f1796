//! `POST /accounts/{account_id}/request-tracer/trace`: Cloudflare's Request Trace. The request
//! described by the body runs through [`Edge::handle`] — the very function the proxy runs —
//! in trace mode: rate-limit counters are read, not counted; challenges pass only with
//! `context.skip_challenge`; the origin is called unless `skip_response`.
//!
//! Permission: "Request Tracer Read". The URL's hostname must be in one of the account's zones.
//!
//! edgetrace extensions (documented in the OpenAPI document): `?all_rules=true` also lists the
//! rules and rulesets that did not match (the dashboard's "All configurations");
//! `?explain=false` leaves out each rule's `explanation` (why it matched or not, from the rules
//! engine); `context.ip` sets the client address (default: the caller's); each ruleset step
//! has its `phase`; `result.outcome` says what was (or would be) sent to the origin and what
//! answered.

use crate::error::{ApiError, ErrorItem, codes};
use crate::{AppState, account_caller, json_body_within, ok};
use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Extension, OriginalUri, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use edgetrace_edge::input::{Fields, object, type_name};
use edgetrace_edge::page_rules::RequestUrl;
use edgetrace_edge::pipeline::{Geo, Request, RunOptions, Step};
use edgetrace_edge::{FieldError, FieldErrors};
use edgetrace_proxy::{Handled, Mode};
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use utoipa::{OpenApi, ToSchema};

pub const REQUEST_TRACER_READ: &str = "Request Tracer Read";

/// The largest body a traced request may carry, decoded [1 MiB].
pub const MAX_TRACE_BODY: usize = 1024 * 1024;
/// The largest API body this route reads (a base64 body of [`MAX_TRACE_BODY`] and the rest).
const MAX_API_BODY: usize = 2 * MAX_TRACE_BODY;

#[derive(OpenApi)]
#[openapi(paths(trace), components(schemas(TraceEnvelope, TraceResult)))]
pub(crate) struct Doc;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/accounts/{account_id}/request-tracer/trace", post(trace))
}

crate::envelope_schema!(TraceEnvelope, TraceResult);

/// Trace result with an origin status code.
#[derive(Debug, Serialize, ToSchema)]
pub struct TraceResult {
    /// HTTP status of the zone's response: the origin's, or the one a rule answered with
    /// (403 for a block, 30x for a redirect). Absent with `skip_response` when no rule
    /// answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    /// The steps acting on the request and the response, in evaluation order.
    #[schema(value_type = Vec<Object>)]
    pub trace: Vec<Step>,
    /// edgetrace extension: what was (or, with `skip_response`, would be) sent to the origin,
    /// and what answered.
    #[schema(value_type = Object)]
    pub outcome: Value,
}

fn flag(name: &str, value: Option<&str>, default: bool) -> Result<bool, ApiError> {
    match value {
        None => Ok(default),
        Some("true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(other) => Err(ApiError::invalid(vec![ErrorItem::at(
            codes::INVALID_FIELD,
            format!("?{name}"),
            format!("{name}: {other:?} must be true or false"),
        )])),
    }
}

/// A traced request, checked.
struct Traced {
    request: Request<'static>,
    url: RequestUrl,
    skip_challenge: bool,
    skip_response: bool,
}

#[utoipa::path(
    post, path = "/accounts/{account_id}/request-tracer/trace", tag = "Request Trace", summary = "Request Trace",
    description = "Runs a request through the zone's configuration exactly as the proxy would (account then zone entry points in each phase, page rules, \
        then the origin and the response phases unless `skip_response`), recording each step. Body: `method`, `url` (its hostname must be in one of the \
        account's zones), `body` (one of `base64`, `json`, `plain_text`; at most 1 MiB), `context` (`bot_score` 1-99, `threat_score` 0-100, `geoloc`, \
        `skip_challenge`; extension `ip`: the client address), `cookies`, `headers`, `protocol` (`HTTP/1.0`, `HTTP/1.1`, `HTTP/2`, `HTTP/3`), `skip_response`. \
        Rate limits are read, not counted. Query (extensions): `all_rules=true` lists the rules that did not match too; `explain=false` leaves out the \
        rules engine's explanations. Requires Request Tracer Read.",
    params(
        ("account_id" = String, Path, description = "Account identifier", max_length = 32),
        ("all_rules" = Option<bool>, Query, description = "edgetrace extension: include rules and rulesets that did not match"),
        ("explain" = Option<bool>, Query, description = "edgetrace extension: include each rule's explanation (default true)"),
    ),
    request_body(content = Object, description = "`{\"method\": \"GET\", \"url\": \"https://shop.example.com/cart?x=1\", \"headers\": {\"user-agent\": \"curl\"}, \"context\": {\"geoloc\": {\"iso_code\": \"GB\"}}, \"skip_response\": true}`", content_type = "application/json"),
    responses(
        (status = 200, description = "The trace", body = TraceEnvelope),
        (status = 400, description = "Invalid body, or a hostname in none of the account's zones (1001, 1002)", body = crate::error::ErrorEnvelope),
        crate::openapi::AccountErrors, crate::openapi::AuthErrors, crate::zones::BodyErrors,
    ),
    security(("api_token" = []), ("api_email" = [], "api_key" = []))
)]
async fn trace(
    State(state): State<AppState>,
    Path(account_id): Path<String>,
    OriginalUri(uri): OriginalUri,
    Query(query): Query<HashMap<String, String>>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    account_caller(
        &state,
        &headers,
        uri.path(),
        &account_id,
        &[REQUEST_TRACER_READ],
    )
    .await?;
    let options = RunOptions {
        all_rules: flag(
            "all_rules",
            query.get("all_rules").map(String::as_str),
            false,
        )?,
        explain: flag("explain", query.get("explain").map(String::as_str), true)?,
        lean: false,
    };
    let body = read_body(&headers, body).await?;
    let caller = connect.map_or(IpAddr::from([127, 0, 0, 1]), |c| c.0.0.ip());
    let traced = parse(&body, caller, &state)?;
    let host = traced.url.host.clone();
    let site = state
        .edge
        .sites
        .for_account(&account_id, &host)
        .await
        .map_err(|e| ApiError::internal("request trace", &e))?
        .ok_or_else(|| {
            ApiError::invalid(vec![ErrorItem::at(
                codes::INVALID_FIELD,
                "/url",
                format!(
                    "url: the hostname {host} is not in any zone of account {account_id}; \
                     add the zone first (POST /zones)"
                ),
            )])
        })?;
    let port = traced.url.port();
    let handled = state
        .edge
        .handle(
            &site,
            traced.request,
            None,
            port,
            Mode::Trace {
                skip_challenge: traced.skip_challenge,
                skip_response: traced.skip_response,
            },
            options,
        )
        .await;
    Ok(ok(result(handled, state.edge.origin_timeout).await).into_response())
}

/// The JSON body, read with this route's own limit (a traced body may be up to 1 MiB).
async fn read_body(headers: &HeaderMap, body: Body) -> Result<Value, ApiError> {
    json_body_within(headers, body, MAX_API_BODY, || {
        ApiError::invalid(vec![ErrorItem::at(
            codes::INVALID_FIELD,
            "/body",
            format!(
                "body: the trace request is larger than {} MiB; a traced body may be at most {} MiB",
                MAX_API_BODY >> 20,
                MAX_TRACE_BODY >> 20
            ),
        )])
    })
    .await
}

const PROTOCOLS: &[&str] = &["HTTP/1.0", "HTTP/1.1", "HTTP/2", "HTTP/3"];

fn parse(body: &Value, caller: IpAddr, state: &AppState) -> Result<Traced, ApiError> {
    let mut errors = FieldErrors::new();
    // Not an object: 1001 (the pointer "" makes it malformed, see ApiError's From).
    let Some(map) = object(body, "", &mut errors) else {
        return Err(errors.into());
    };
    let f = Fields::new(map, "");
    f.only(
        &[
            "method",
            "url",
            "body",
            "context",
            "cookies",
            "headers",
            "protocol",
            "skip_response",
        ],
        &mut errors,
    );
    let method = f.string("method", true, &mut errors);
    if let Some(m) = &method
        && (m.is_empty() || http::Method::from_bytes(m.as_bytes()).is_err())
    {
        errors.push(f.error("method", format!("{m:?} is not an HTTP method")));
    }
    // The URL and its host and port as written: the `Host` header a client sends for it (the
    // proxy forwards the header as received, without lowering its case).
    let url = f.string("url", true, &mut errors).and_then(|u| {
        match RequestUrl::parse(&u).and_then(|url| check_url(&url).map(|()| url)) {
            Ok(mut url) => {
                // The proxy serves `www.example.com.` as `www.example.com`: so does a trace.
                url.host = url.host.trim_end_matches('.').to_string();
                let rest = u.split_once("://").map_or(u.as_str(), |(_, r)| r);
                let authority =
                    rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())].to_string();
                Some((url, authority))
            }
            Err(e) => {
                errors.push(f.error("url", e));
                None
            }
        }
    });
    let protocol = f.string("protocol", false, &mut errors);
    if let Some(p) = &protocol
        && !PROTOCOLS.contains(&p.as_str())
    {
        errors.push(f.error(
            "protocol",
            format!("{p:?} is not one of {}", PROTOCOLS.join(", ")),
        ));
    }
    let skip_response = f.boolean("skip_response", &mut errors).unwrap_or(false);
    let mut request_headers = Vec::new();
    if let Some(h) = f.object("headers", &mut errors) {
        let hf = Fields::new(h, "/headers");
        for (name, value) in h {
            let Some(v) = value.as_str() else {
                errors.push(hf.error(name, format!("must be a string, not {}", type_name(value))));
                continue;
            };
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                errors.push(hf.error(name, "is not a valid header name"));
            } else if http::HeaderValue::from_str(v).is_err() {
                errors.push(hf.error(
                    name,
                    "the value holds bytes a header cannot carry (control characters)",
                ));
            } else {
                request_headers.push((name.to_ascii_lowercase(), v.to_string()));
            }
        }
    }
    if let Some(c) = f.object("cookies", &mut errors) {
        let cf = Fields::new(c, "/cookies");
        let mut pairs = Vec::new();
        for (name, value) in c {
            let Some(v) = value.as_str() else {
                errors.push(cf.error(name, format!("must be a string, not {}", type_name(value))));
                continue;
            };
            if name.is_empty() || http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                errors.push(cf.error(name, "is not a valid cookie name"));
            } else if v
                .bytes()
                .any(|b| b < 0x21 || b == b'"' || b == b',' || b == b';' || b == b'\\' || b == 0x7f)
            {
                errors.push(cf.error(
                    name,
                    "the value holds characters a cookie cannot carry (space, quote, comma, semicolon, backslash, controls)",
                ));
            } else {
                pairs.push(format!("{name}={v}"));
            }
        }
        if !pairs.is_empty() {
            request_headers.retain(|(k, _)| k != "cookie");
            request_headers.push(("cookie".into(), pairs.join("; ")));
        }
    }
    let body_bytes = match f.object("body", &mut errors) {
        None => Vec::new(),
        Some(b) => traced_body(&Fields::new(b, "/body"), &mut errors),
    };
    let mut geo = None;
    let mut client_ip = caller;
    let (mut bot_score, mut threat_score, mut skip_challenge) = (None, None, false);
    if let Some(c) = f.object("context", &mut errors) {
        let cf = Fields::new(c, "/context");
        cf.only(
            &[
                "bot_score",
                "geoloc",
                "skip_challenge",
                "threat_score",
                "ip",
            ],
            &mut errors,
        );
        bot_score = cf.integer("bot_score", 1, 99, &mut errors);
        threat_score = cf.integer("threat_score", 0, 100, &mut errors);
        skip_challenge = cf.boolean("skip_challenge", &mut errors).unwrap_or(false);
        if let Some(ip) = cf.string("ip", false, &mut errors) {
            match ip.parse() {
                Ok(ip) => client_ip = ip,
                Err(_) => errors.push(cf.error("ip", format!("{ip:?} is not an IP address"))),
            }
        }
        if let Some(g) = cf.object("geoloc", &mut errors) {
            geo = Some(geoloc(&Fields::new(g, "/context/geoloc"), &mut errors));
        }
    }
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let (Some(method), Some((url, authority))) = (method, url) else {
        return Err(ApiError::internal(
            "request trace",
            &"checked fields missing",
        ));
    };
    if !request_headers.iter().any(|(k, _)| k == "host") {
        request_headers.insert(0, ("host".into(), authority));
    }
    let uri = match &url.query {
        Some(q) => format!("{}?{q}", url.path),
        None => url.path.clone(),
    };
    Ok(Traced {
        request: Request {
            method: method.into(),
            https: url.scheme == edgetrace_edge::page_rules::Scheme::Https,
            host: url.host.clone().into(),
            uri: uri.into(),
            version: protocol.unwrap_or_else(|| "HTTP/1.1".into()).into(),
            headers: request_headers
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            body: body_bytes,
            client_ip,
            geo: match geo {
                Some(geo) => Some(Box::new(geo)),
                None => state.edge.geo_of(client_ip),
            },
            bot_score,
            verified_bot: false,
            threat_score,
        },
        url,
        skip_challenge,
        skip_response,
    })
}

/// A hostname and a path and query the proxy could have received.
fn check_url(url: &RequestUrl) -> Result<(), String> {
    let host_ok = url
        .host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if !host_ok {
        return Err(format!("{:?} is not a hostname", url.host));
    }
    let target = match &url.query {
        Some(q) => format!("{}?{q}", url.path),
        None => url.path.clone(),
    };
    target
        .parse::<http::uri::PathAndQuery>()
        .map(|_| ())
        .map_err(|_| format!("the path and query {target:?} hold characters a URL cannot carry; percent-encode them"))
}

/// The traced body: exactly one of `base64`, `json`, `plain_text`, at most
/// [`MAX_TRACE_BODY`] bytes.
fn traced_body(f: &Fields<'_>, errors: &mut FieldErrors) -> Vec<u8> {
    f.only(&["base64", "json", "plain_text"], errors);
    let given: Vec<&str> = ["base64", "json", "plain_text"]
        .into_iter()
        .filter(|k| f.get(k).is_some())
        .collect();
    if given.len() > 1 {
        errors.push(FieldError::new(
            "/body",
            format!(
                "body: give one of base64, json, plain_text, not {}",
                given.join(" and ")
            ),
        ));
        return Vec::new();
    }
    let (key, bytes) = match given.first() {
        None => return Vec::new(),
        Some(&"base64") => {
            let Some(text) = f.string("base64", false, errors) else {
                return Vec::new();
            };
            if text.len() > MAX_TRACE_BODY / 3 * 4 + 4 {
                ("base64", vec![0; MAX_TRACE_BODY + 1])
            } else {
                match base64::engine::general_purpose::STANDARD.decode(text.trim()) {
                    Ok(b) => ("base64", b),
                    Err(e) => {
                        errors.push(f.error("base64", format!("not valid base64: {e}")));
                        return Vec::new();
                    }
                }
            }
        }
        Some(&"json") => (
            "json",
            serde_json::to_vec(f.get("json").unwrap_or(&Value::Null)).unwrap_or_default(),
        ),
        Some(_) => match f.string("plain_text", false, errors) {
            Some(t) => ("plain_text", t.into_bytes()),
            None => return Vec::new(),
        },
    };
    if bytes.len() > MAX_TRACE_BODY {
        errors.push(f.error(
            key,
            format!(
                "the body is larger than {} MiB ({} bytes allowed)",
                MAX_TRACE_BODY >> 20,
                MAX_TRACE_BODY
            ),
        ));
        return Vec::new();
    }
    bytes
}

fn geoloc(f: &Fields<'_>, errors: &mut FieldErrors) -> Geo {
    f.only(
        &[
            "city",
            "continent",
            "is_eu_country",
            "iso_code",
            "latitude",
            "longitude",
            "postal_code",
            "region_code",
            "subdivision_2_iso_code",
            "timezone",
        ],
        errors,
    );
    let coordinate = |key: &str, limit: f64, errors: &mut FieldErrors| match f.get(key) {
        None => None,
        Some(v) => match v.as_f64() {
            Some(x) if (-limit..=limit).contains(&x) => Some(x),
            _ => {
                errors.push(f.error(key, format!("must be a number from -{limit} to {limit}")));
                None
            }
        },
    };
    Geo {
        city: f.string("city", false, errors),
        continent: f.string("continent", false, errors),
        is_in_european_union: f.boolean("is_eu_country", errors),
        country: f.string("iso_code", false, errors),
        latitude: coordinate("latitude", 90.0, errors),
        longitude: coordinate("longitude", 180.0, errors),
        postal_code: f.string("postal_code", false, errors),
        region_code: f.string("region_code", false, errors),
        subdivision_2_iso_code: f.string("subdivision_2_iso_code", false, errors),
        timezone: f.string("timezone", false, errors),
        ..Geo::default()
    }
}

fn header_map<T: AsRef<str>>(headers: &[(T, T)]) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in headers {
        let (k, v) = (k.as_ref().to_ascii_lowercase(), v.as_ref());
        match out.get_mut(&k) {
            Some(Value::String(s)) => {
                s.push_str(", ");
                s.push_str(v);
            }
            _ => {
                out.insert(k, Value::String(v.to_string()));
            }
        }
    }
    out
}

/// The API's `result`; the response body (when the origin was called) is drained: at most
/// [`MAX_TRACE_BODY`] of it for at most `drain` (a stalled or endless body must not hold the
/// trace, nor be buffered whole).
async fn result(handled: Handled<'_>, drain: std::time::Duration) -> TraceResult {
    let mut outcome = Map::new();
    let mut status_code = None;
    if let Some(by) = &handled.answered_by {
        outcome.insert("answered_by".into(), json!(by));
    }
    if let Some(f) = &handled.forwarded {
        outcome.insert(
            "origin_request".into(),
            json!({
                "method": handled.outcome.request.method,
                "url": f.url(&handled.outcome.request),
                "address": f.address.map(|a| a.to_string()),
                "headers": header_map(&edgetrace_proxy::header_pairs(&f.headers)),
            }),
        );
    }
    if let Some(e) = &handled.origin_error {
        outcome.insert("origin_error".into(), json!(e));
    }
    if let Some(response) = handled.response {
        status_code = Some(response.status.as_u16());
        let headers = edgetrace_proxy::header_pairs(&response.headers);
        outcome.insert(
            "response_headers".into(),
            Value::Object(header_map(&headers)),
        );
        // Drain the origin's body so the connection goes back to the pool; a larger or slower
        // one is dropped instead (its connection closed).
        let body = http_body_util::Limited::new(response.body, MAX_TRACE_BODY);
        let _ = tokio::time::timeout(drain, http_body_util::BodyExt::collect(body)).await;
    }
    let o = &handled.outcome;
    if !o.config.is_empty() {
        outcome.insert("config".into(), Value::Object(o.config.clone()));
    }
    if !o.cache.is_empty() {
        outcome.insert("cache_settings".into(), Value::Object(o.cache.clone()));
    }
    if o.score != 0 {
        outcome.insert("score".into(), json!(o.score));
    }
    TraceResult {
        status_code,
        trace: handled.trace,
        outcome: Value::Object(outcome),
    }
}
