//! Zones and their DNS records, as Cloudflare's API has them. A proxied `A`/`AAAA`/`CNAME`
//! record names a hostname the edge proxy serves and the origin it forwards to.
//!
//! Permissions: "Zone Read"/"Zone Write" for zones, "DNS Read"/"DNS Write" for records; a
//! write permission implies the read one.

use crate::auth::{Principal, authenticate, authorize, check_id};
use crate::error::{ApiError, ErrorItem, codes};
use crate::{AppState, Paging, json_body, ok, ok_page, timestamp};
use axum::Router;
use axum::body::Body;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use edgetrace_edge::FieldErrors;
use edgetrace_edge::input::{Fields, object};
use edgetrace_store::{DnsRecord, NewDnsRecord, Zone};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use utoipa::{OpenApi, ToSchema};

pub const ZONE_READ: &str = "Zone Read";
pub const ZONE_WRITE: &str = "Zone Write";
pub const DNS_READ: &str = "DNS Read";
pub const DNS_WRITE: &str = "DNS Write";

#[derive(OpenApi)]
#[openapi(
    paths(
        create_zone,
        list_zones,
        get_zone,
        delete_zone,
        create_record,
        list_records,
        get_record,
        put_record,
        patch_record,
        delete_record
    ),
    components(schemas(
        ZoneJson,
        AccountRef,
        DnsRecordJson,
        IdJson,
        ZoneEnvelope,
        ZonesEnvelope,
        RecordEnvelope,
        RecordsEnvelope,
        IdEnvelope,
        crate::ResultInfo
    ))
)]
pub(crate) struct Doc;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/zones", get(list_zones).post(create_zone))
        .route("/zones/{zone_id}", get(get_zone).delete(delete_zone))
        .route(
            "/zones/{zone_id}/dns_records",
            get(list_records).post(create_record),
        )
        .route(
            "/zones/{zone_id}/dns_records/{record_id}",
            get(get_record)
                .put(put_record)
                .patch(patch_record)
                .delete(delete_record),
        )
}

/// Authentication, the zone's existence, then the caller's permission on its account: what
/// every `/zones/{zone_id}/…` route starts with.
pub(crate) async fn zone_caller(
    state: &AppState,
    headers: &HeaderMap,
    path: &str,
    zone_id: &str,
    permissions: &[&str],
) -> Result<(Principal, Zone), ApiError> {
    check_id(path, zone_id)?;
    let principal = authenticate(state, headers).await?;
    let zone = state
        .store
        .zone(zone_id)
        .await?
        .ok_or_else(|| ApiError::not_found(path))?;
    authorize(&principal, &zone.account_id, permissions)?;
    Ok((principal, zone))
}

crate::envelope_schema!(ZoneEnvelope, ZoneJson);
crate::envelope_schema!(ZonesEnvelope, Vec<ZoneJson>, list);
crate::envelope_schema!(RecordEnvelope, DnsRecordJson);
crate::envelope_schema!(RecordsEnvelope, Vec<DnsRecordJson>, list);
crate::envelope_schema!(IdEnvelope, IdJson);

/// The errors of routes that read a JSON body.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // a description of responses, never built
pub(crate) enum BodyErrors {
    /// Body over 1 MiB (1004)
    #[response(status = 413)]
    TooLarge(crate::error::ErrorEnvelope),
    /// Body not application/json (1003)
    #[response(status = 415)]
    NotJson(crate::error::ErrorEnvelope),
}

/// `account` of a zone.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountRef {
    pub id: String,
    pub name: String,
}

/// A zone, as Cloudflare returns it (the fields edgetrace has).
#[derive(Debug, Serialize, ToSchema)]
pub struct ZoneJson {
    pub id: String,
    pub name: String,
    /// Always `active`: edgetrace serves a zone as soon as it exists.
    pub status: String,
    pub paused: bool,
    /// `full`.
    pub r#type: String,
    pub development_mode: i64,
    pub name_servers: Vec<String>,
    pub original_name_servers: Option<Vec<String>>,
    pub original_registrar: Option<String>,
    pub original_dnshost: Option<String>,
    pub vanity_name_servers: Vec<String>,
    pub created_on: String,
    pub modified_on: String,
    pub activated_on: String,
    pub account: AccountRef,
    #[schema(value_type = Object)]
    pub meta: Value,
    #[schema(value_type = Object)]
    pub owner: Value,
    pub permissions: Vec<String>,
}

async fn zone_json(state: &AppState, zone: Zone) -> Result<ZoneJson, ApiError> {
    let account_name = state
        .store
        .account(&zone.account_id)
        .await?
        .map(|a| a.name)
        .unwrap_or_default();
    Ok(ZoneJson {
        status: "active".into(),
        paused: zone.paused,
        r#type: zone.r#type,
        development_mode: 0,
        name_servers: Vec::new(),
        original_name_servers: None,
        original_registrar: None,
        original_dnshost: None,
        vanity_name_servers: Vec::new(),
        created_on: timestamp(zone.created_at),
        modified_on: timestamp(zone.modified_at),
        activated_on: timestamp(zone.created_at),
        account: AccountRef {
            id: zone.account_id,
            name: account_name,
        },
        meta: json!({"phishing_detected": false}),
        owner: json!({"id": null, "type": "user", "email": null}),
        permissions: Vec::new(),
        id: zone.id,
        name: zone.name,
    })
}

/// `{id}` of a deleted object.
#[derive(Debug, Serialize, ToSchema)]
pub struct IdJson {
    pub id: String,
}

/// A hostname as DNS names are written: labels of letters, digits, `-` and `_` (and `*` as the
/// whole first label), 1-63 characters each, at most 253 in all; returned lowercase without a
/// trailing dot.
pub(crate) fn hostname(name: &str, wildcard: bool) -> Result<String, String> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if name.is_empty() || name.len() > 253 {
        return Err(format!("{name:?} must be 1-253 characters"));
    }
    for (i, label) in name.split('.').enumerate() {
        let ok_label = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !(ok_label || (wildcard && i == 0 && label == "*")) {
            return Err(format!(
                "{name:?} is not a valid hostname (label {label:?}: letters, digits, '-' and '_', 1-63 characters)"
            ));
        }
    }
    Ok(name)
}

#[utoipa::path(
    post, path = "/zones", tag = "Zones", summary = "Create Zone",
    description = "Creates a zone (a domain) in an account. Its name must not be taken. Requires Zone Write.",
    request_body(content = Object, description = "`{\"name\": \"example.test\", \"account\": {\"id\": \"…\"}, \"type\": \"full\"}`", content_type = "application/json"),
    responses(
        (status = 200, description = "The zone", body = ZoneEnvelope),
        (status = 400, description = "Invalid body (1001, 1002)", body = crate::error::ErrorEnvelope),
        (status = 409, description = "The name is taken (1006)", body = crate::error::ErrorEnvelope),
        crate::openapi::AccountErrors, crate::openapi::AuthErrors, BodyErrors,
    ),
    security(("api_token" = []), ("api_email" = [], "api_key" = []))
)]
async fn create_zone(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let principal = authenticate(&state, &headers).await?;
    let body = json_body(&headers, body).await?;
    let mut errors = FieldErrors::new();
    let Some(map) = object(&body, "", &mut errors) else {
        return Err(errors.into());
    };
    let fields = Fields::new(map, "");
    fields.only(&["name", "account", "type", "jump_start"], &mut errors);
    let name = fields
        .string("name", true, &mut errors)
        .and_then(|n| match hostname(&n, false) {
            Ok(n) if n.contains('.') => Some(n),
            Ok(n) => {
                errors.push(fields.error("name", format!("{n:?} is not a domain (no dot)")));
                None
            }
            Err(e) => {
                errors.push(fields.error("name", e));
                None
            }
        });
    let account = match fields.object("account", &mut errors) {
        Some(a) => Fields::new(a, "/account").string("id", true, &mut errors),
        None => {
            if fields.get("account").is_none() {
                fields.missing("account", &mut errors);
            }
            None
        }
    };
    let kind = fields
        .string("type", false, &mut errors)
        .unwrap_or_else(|| "full".into());
    if kind != "full" {
        errors.push(fields.error(
            "type",
            format!("{kind:?} is not supported; edgetrace serves zones of type \"full\""),
        ));
    }
    fields.boolean("jump_start", &mut errors);
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let (Some(name), Some(account)) = (name, account) else {
        return Err(errors.into());
    };
    if check_id("", &account).is_err() {
        return Err(ApiError::invalid(vec![ErrorItem::at(
            codes::INVALID_FIELD,
            "/account/id",
            format!("account.id: {account:?} is not an account identifier (32 hex characters)"),
        )]));
    }
    authorize(&principal, &account, &[ZONE_WRITE])?;
    if state.store.account(&account).await?.is_none() {
        return Err(ApiError::not_found(&format!("/accounts/{account}")));
    }
    let zone = state.store.create_zone(&account, &name, &kind).await?;
    Ok(ok(zone_json(&state, zone).await?).into_response())
}

#[utoipa::path(
    get, path = "/zones", tag = "Zones", summary = "List Zones",
    description = "The zones the caller can read, by name. Query: `name`, `account.id`, `page`, `per_page` (5-50, default 20). Requires Zone Read.",
    responses(
        (status = 200, description = "The zones, with result_info", body = ZonesEnvelope),
        (status = 400, description = "Bad query (1002) or missing credentials (9106)", body = crate::error::ErrorEnvelope),
        crate::openapi::AccountErrors, crate::openapi::AuthErrors,
    ),
    security(("api_token" = []), ("api_email" = [], "api_key" = []))
)]
async fn list_zones(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let principal = authenticate(&state, &headers).await?;
    let paging = Paging::from_query(&query, 20, 50)?;
    let accounts: Vec<String> = match (&principal, query.get("account.id")) {
        (_, Some(a)) => {
            authorize(&principal, a, &[ZONE_READ])?;
            vec![a.clone()]
        }
        (Principal::Token(t), None) => {
            authorize(&principal, &t.account_id, &[ZONE_READ])?;
            vec![t.account_id.clone()]
        }
        (Principal::User(u), None) => u.accounts.clone(),
    };
    let name = query
        .get("name")
        .map(|n| n.trim_end_matches('.').to_ascii_lowercase());
    let mut zones = Vec::new();
    for account in &accounts {
        for zone in state.store.zones(Some(account), name.as_deref()).await? {
            zones.push(zone_json(&state, zone).await?);
        }
    }
    zones.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(ok_page(zones, paging).into_response())
}

#[utoipa::path(
    get, path = "/zones/{zone_id}", tag = "Zones", summary = "Zone Details",
    description = "Requires Zone Read.",
    params(("zone_id" = String, Path, description = "Zone identifier", max_length = 32)),
    responses(
        (status = 200, description = "The zone", body = ZoneEnvelope),
        (status = 400, description = "Missing credentials (9106)", body = crate::error::ErrorEnvelope),
        crate::openapi::AccountErrors, crate::openapi::AuthErrors,
    ),
    security(("api_token" = []), ("api_email" = [], "api_key" = []))
)]
async fn get_zone(
    State(state): State<AppState>,
    Path(zone_id): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (_, zone) = zone_caller(&state, &headers, uri.path(), &zone_id, &[ZONE_READ]).await?;
    Ok(ok(zone_json(&state, zone).await?).into_response())
}

#[utoipa::path(
    delete, path = "/zones/{zone_id}", tag = "Zones", summary = "Delete Zone",
    description = "Deletes a zone with its DNS records, rulesets and page rules. Requires Zone Write.",
    params(("zone_id" = String, Path, description = "Zone identifier", max_length = 32)),
    responses(
        (status = 200, description = "The deleted zone's id", body = IdEnvelope),
        (status = 400, description = "Missing credentials (9106)", body = crate::error::ErrorEnvelope),
        crate::openapi::AccountErrors, crate::openapi::AuthErrors,
    ),
    security(("api_token" = []), ("api_email" = [], "api_key" = []))
)]
async fn delete_zone(
    State(state): State<AppState>,
    Path(zone_id): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    zone_caller(&state, &headers, uri.path(), &zone_id, &[ZONE_WRITE]).await?;
    if !state.store.delete_zone(&zone_id).await? {
        return Err(ApiError::not_found(uri.path()));
    }
    Ok(ok(IdJson { id: zone_id }).into_response())
}

/// A DNS record, as Cloudflare returns it.
#[derive(Debug, Serialize, ToSchema)]
pub struct DnsRecordJson {
    pub id: String,
    pub zone_id: String,
    pub zone_name: String,
    pub name: String,
    /// `A`, `AAAA` or `CNAME`.
    pub r#type: String,
    pub content: String,
    /// Always true: every record type edgetrace keeps can be proxied.
    pub proxiable: bool,
    pub proxied: bool,
    /// Seconds; 1 is automatic.
    pub ttl: i64,
    pub comment: Option<String>,
    pub tags: Vec<String>,
    #[schema(value_type = Object)]
    pub meta: Value,
    #[schema(value_type = Object)]
    pub settings: Value,
    pub created_on: String,
    pub modified_on: String,
}

fn record_json(zone: &Zone, r: DnsRecord) -> DnsRecordJson {
    DnsRecordJson {
        id: r.id,
        zone_id: r.zone_id,
        zone_name: zone.name.clone(),
        name: r.record.name,
        r#type: r.record.r#type,
        content: r.record.content,
        proxiable: true,
        proxied: r.record.proxied,
        ttl: r.record.ttl,
        comment: r.record.comment,
        tags: Vec::new(),
        meta: json!({}),
        settings: json!({}),
        created_on: timestamp(r.created_at),
        modified_on: timestamp(r.modified_at),
    }
}

/// Validates a record body against its zone. With `base`, fields absent from the body keep
/// their value there (PATCH).
fn record_body(
    zone: &Zone,
    body: &Value,
    base: Option<&NewDnsRecord>,
) -> Result<NewDnsRecord, ApiError> {
    let mut errors = FieldErrors::new();
    let Some(map) = object(body, "", &mut errors) else {
        return Err(errors.into());
    };
    let fields = Fields::new(map, "");
    fields.only(
        &[
            "type", "name", "content", "proxied", "ttl", "comment", "tags", "id", "settings",
        ],
        &mut errors,
    );
    let required = base.is_none();
    let kind = fields
        .string("type", required, &mut errors)
        .map(|t| t.to_ascii_uppercase())
        .or_else(|| base.map(|b| b.r#type.clone()));
    if let Some(k) = &kind
        && !matches!(k.as_str(), "A" | "AAAA" | "CNAME")
    {
        errors.push(fields.error(
            "type",
            format!("{k:?} is not supported; edgetrace keeps A, AAAA and CNAME records"),
        ));
    }
    let name = match fields.string("name", required, &mut errors) {
        Some(n) => {
            // `@` is the apex; a trailing dot or the zone's suffix makes a full name; anything
            // else is relative to the zone.
            let lower = n.to_ascii_lowercase();
            let full = if n == "@" {
                zone.name.clone()
            } else if lower.ends_with('.')
                || lower == zone.name
                || lower.ends_with(&format!(".{}", zone.name))
            {
                lower
            } else {
                format!("{lower}.{}", zone.name)
            };
            match hostname(&full, true) {
                Ok(h) if h == zone.name || h.ends_with(&format!(".{}", zone.name)) => Some(h),
                Ok(h) => {
                    errors
                        .push(fields.error("name", format!("{h:?} is not in zone {}", zone.name)));
                    None
                }
                Err(e) => {
                    errors.push(fields.error("name", e));
                    None
                }
            }
        }
        None => base.map(|b| b.name.clone()),
    };
    let content = fields
        .string("content", required, &mut errors)
        .or_else(|| base.map(|b| b.content.clone()));
    if let (Some(k), Some(c)) = (&kind, &content) {
        let problem = match k.as_str() {
            "A" if c.parse::<Ipv4Addr>().is_err() => Some(format!(
                "{c:?} is not an IPv4 address (an A record's content)"
            )),
            "AAAA" if c.parse::<Ipv6Addr>().is_err() => Some(format!(
                "{c:?} is not an IPv6 address (an AAAA record's content)"
            )),
            "CNAME" => hostname(c, false).err(),
            _ => None,
        };
        if let Some(p) = problem {
            errors.push(fields.error("content", p));
        }
    }
    let proxied = fields
        .boolean("proxied", &mut errors)
        .or(base.map(|b| b.proxied))
        .unwrap_or(false);
    let ttl = match fields.get("ttl").and_then(Value::as_i64) {
        Some(1) => Some(1),
        _ => fields.integer("ttl", 30, 86_400, &mut errors),
    }
    .or(base.map(|b| b.ttl))
    .unwrap_or(1);
    let comment = fields
        .string("comment", false, &mut errors)
        .or_else(|| base.and_then(|b| b.comment.clone()));
    if let Some(c) = &comment
        && c.chars().count() > 100
    {
        errors.push(fields.error("comment", "at most 100 characters"));
    }
    if let Some(tags) = fields.array("tags", &mut errors)
        && !tags.is_empty()
    {
        errors.push(fields.error("tags", "tags are not supported by edgetrace; send []"));
    }
    if !errors.is_empty() {
        return Err(errors.into());
    }
    match (kind, name, content) {
        (Some(kind), Some(name), Some(content)) => Ok(NewDnsRecord {
            content: if kind == "CNAME" {
                content.trim_end_matches('.').to_ascii_lowercase()
            } else {
                content
            },
            r#type: kind,
            name,
            proxied,
            ttl,
            comment,
        }),
        _ => Err(errors.into()),
    }
}

#[utoipa::path(
    post, path = "/zones/{zone_id}/dns_records", tag = "DNS Records", summary = "Create DNS Record",
    description = "An `A`, `AAAA` or `CNAME` record. With `proxied: true` the edge proxy serves `name` and forwards to `content` (port 80/443 unless an Origin Rule routes elsewhere). `name` may be relative to the zone or `@`. Requires DNS Write.",
    params(("zone_id" = String, Path, description = "Zone identifier", max_length = 32)),
    request_body(content = Object, description = "`{\"type\": \"A\", \"name\": \"www.example.test\", \"content\": \"127.0.0.1\", \"proxied\": true, \"ttl\": 1}`", content_type = "application/json"),
    responses(
        (status = 200, description = "The record", body = RecordEnvelope),
        (status = 400, description = "Invalid body (1001, 1002)", body = crate::error::ErrorEnvelope),
        crate::openapi::AccountErrors, crate::openapi::AuthErrors, BodyErrors,
    ),
    security(("api_token" = []), ("api_email" = [], "api_key" = []))
)]
async fn create_record(
    State(state): State<AppState>,
    Path(zone_id): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (_, zone) = zone_caller(&state, &headers, uri.path(), &zone_id, &[DNS_WRITE]).await?;
    let body = json_body(&headers, body).await?;
    let record = record_body(&zone, &body, None)?;
    let stored = state.store.create_dns_record(&zone.id, &record).await?;
    Ok(ok(record_json(&zone, stored)).into_response())
}

#[utoipa::path(
    get, path = "/zones/{zone_id}/dns_records", tag = "DNS Records", summary = "List DNS Records",
    description = "Query: `name`, `type`, `page`, `per_page` (1-5000, default 100). Requires DNS Read.",
    params(("zone_id" = String, Path, description = "Zone identifier", max_length = 32)),
    responses(
        (status = 200, description = "The records, with result_info", body = RecordsEnvelope),
        (status = 400, description = "Bad query (1002) or missing credentials (9106)", body = crate::error::ErrorEnvelope),
        crate::openapi::AccountErrors, crate::openapi::AuthErrors,
    ),
    security(("api_token" = []), ("api_email" = [], "api_key" = []))
)]
async fn list_records(
    State(state): State<AppState>,
    Path(zone_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (_, zone) = zone_caller(&state, &headers, uri.path(), &zone_id, &[DNS_READ]).await?;
    let paging = Paging::from_query(&query, 100, 5000)?;
    let name = query
        .get("name")
        .map(|n| n.trim_end_matches('.').to_ascii_lowercase());
    let kind = query.get("type").map(|t| t.to_ascii_uppercase());
    let records = state
        .store
        .dns_records(&zone.id, name.as_deref(), kind.as_deref())
        .await?
        .into_iter()
        .map(|r| record_json(&zone, r))
        .collect();
    Ok(ok_page(records, paging).into_response())
}

async fn existing_record(
    state: &AppState,
    zone: &Zone,
    record_id: &str,
    path: &str,
) -> Result<DnsRecord, ApiError> {
    check_id(path, record_id)?;
    state
        .store
        .dns_record(&zone.id, record_id)
        .await?
        .ok_or_else(|| ApiError::not_found(path))
}

#[utoipa::path(
    get, path = "/zones/{zone_id}/dns_records/{record_id}", tag = "DNS Records", summary = "DNS Record Details",
    description = "Requires DNS Read.",
    params(("zone_id" = String, Path, description = "Zone identifier", max_length = 32), ("record_id" = String, Path, description = "Record identifier", max_length = 32)),
    responses(
        (status = 200, description = "The record", body = RecordEnvelope),
        (status = 400, description = "Missing credentials (9106)", body = crate::error::ErrorEnvelope),
        crate::openapi::AccountErrors, crate::openapi::AuthErrors,
    ),
    security(("api_token" = []), ("api_email" = [], "api_key" = []))
)]
async fn get_record(
    State(state): State<AppState>,
    Path((zone_id, record_id)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (_, zone) = zone_caller(&state, &headers, uri.path(), &zone_id, &[DNS_READ]).await?;
    let record = existing_record(&state, &zone, &record_id, uri.path()).await?;
    Ok(ok(record_json(&zone, record)).into_response())
}

async fn update_record(
    state: AppState,
    zone_id: String,
    record_id: String,
    path: &str,
    headers: HeaderMap,
    body: Body,
    patch: bool,
) -> Result<Response, ApiError> {
    let (_, zone) = zone_caller(&state, &headers, path, &zone_id, &[DNS_WRITE]).await?;
    let current = existing_record(&state, &zone, &record_id, path).await?;
    let body = json_body(&headers, body).await?;
    let record = record_body(&zone, &body, patch.then_some(&current.record))?;
    let stored = state
        .store
        .update_dns_record(&zone.id, &record_id, &record)
        .await?
        .ok_or_else(|| ApiError::not_found(path))?;
    Ok(ok(record_json(&zone, stored)).into_response())
}

#[utoipa::path(
    put, path = "/zones/{zone_id}/dns_records/{record_id}", tag = "DNS Records", summary = "Overwrite DNS Record",
    description = "Replaces the record (same body as create). Requires DNS Write.",
    params(("zone_id" = String, Path, description = "Zone identifier", max_length = 32), ("record_id" = String, Path, description = "Record identifier", max_length = 32)),
    request_body(content = Object, content_type = "application/json"),
    responses(
        (status = 200, description = "The record", body = RecordEnvelope),
        (status = 400, description = "Invalid body (1001, 1002)", body = crate::error::ErrorEnvelope),
        crate::openapi::AccountErrors, crate::openapi::AuthErrors, BodyErrors,
    ),
    security(("api_token" = []), ("api_email" = [], "api_key" = []))
)]
async fn put_record(
    State(state): State<AppState>,
    Path((zone_id, record_id)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    update_record(state, zone_id, record_id, uri.path(), headers, body, false).await
}

#[utoipa::path(
    patch, path = "/zones/{zone_id}/dns_records/{record_id}", tag = "DNS Records", summary = "Update DNS Record",
    description = "Changes the fields given. Requires DNS Write.",
    params(("zone_id" = String, Path, description = "Zone identifier", max_length = 32), ("record_id" = String, Path, description = "Record identifier", max_length = 32)),
    request_body(content = Object, content_type = "application/json"),
    responses(
        (status = 200, description = "The record", body = RecordEnvelope),
        (status = 400, description = "Invalid body (1001, 1002)", body = crate::error::ErrorEnvelope),
        crate::openapi::AccountErrors, crate::openapi::AuthErrors, BodyErrors,
    ),
    security(("api_token" = []), ("api_email" = [], "api_key" = []))
)]
async fn patch_record(
    State(state): State<AppState>,
    Path((zone_id, record_id)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    update_record(state, zone_id, record_id, uri.path(), headers, body, true).await
}

#[utoipa::path(
    delete, path = "/zones/{zone_id}/dns_records/{record_id}", tag = "DNS Records", summary = "Delete DNS Record",
    description = "Requires DNS Write.",
    params(("zone_id" = String, Path, description = "Zone identifier", max_length = 32), ("record_id" = String, Path, description = "Record identifier", max_length = 32)),
    responses(
        (status = 200, description = "The deleted record's id", body = IdEnvelope),
        (status = 400, description = "Missing credentials (9106)", body = crate::error::ErrorEnvelope),
        crate::openapi::AccountErrors, crate::openapi::AuthErrors,
    ),
    security(("api_token" = []), ("api_email" = [], "api_key" = []))
)]
async fn delete_record(
    State(state): State<AppState>,
    Path((zone_id, record_id)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (_, zone) = zone_caller(&state, &headers, uri.path(), &zone_id, &[DNS_WRITE]).await?;
    existing_record(&state, &zone, &record_id, uri.path()).await?;
    state.store.delete_dns_record(&zone.id, &record_id).await?;
    Ok(ok(IdJson { id: record_id }).into_response())
}
