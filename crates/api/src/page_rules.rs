//! Page rules of a zone, as Cloudflare's API has them: one URL pattern (`*` wildcards), the
//! settings to apply, a priority (higher wins) and a status. Only the first matching active
//! rule applies to a request (`edgetrace_edge::page_rules::applicable`).
//!
//! Permissions: "Page Rules Read"/"Page Rules Write" (write implies read).

use crate::error::{ApiError, ErrorItem, codes};
use crate::zones::{IdJson, zone_caller};
use crate::{AppState, json_body, ok, timestamp};
use axum::Router;
use axum::body::Body;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use edgetrace_edge::page_rules::{MAX_PAGE_RULES, PageRule, from_stored, validate};
use edgetrace_store::{NewPageRule, StoredPageRule, Zone};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use utoipa::{OpenApi, ToSchema};

pub const PAGE_RULES_READ: &str = "Page Rules Read";
pub const PAGE_RULES_WRITE: &str = "Page Rules Write";

#[derive(OpenApi)]
#[openapi(
    paths(
        create_page_rule,
        list_page_rules,
        get_page_rule,
        put_page_rule,
        patch_page_rule,
        delete_page_rule
    ),
    components(schemas(
        PageRuleJson,
        PageRuleEnvelope,
        PageRulesEnvelope,
        crate::zones::IdEnvelope
    ))
)]
pub(crate) struct Doc;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/zones/{zone_id}/pagerules",
            get(list_page_rules).post(create_page_rule),
        )
        .route(
            "/zones/{zone_id}/pagerules/{pagerule_id}",
            get(get_page_rule)
                .put(put_page_rule)
                .patch(patch_page_rule)
                .delete(delete_page_rule),
        )
}

/// A zone's page rules, typed, for the request pipeline (pass them to
/// `edgetrace_edge::page_rules::applicable`). A stored rule that no longer validates is an
/// internal error, not a silently missing rule.
#[allow(dead_code)] // the request tracer (issue 5) is its caller
pub(crate) async fn zone_page_rules(
    state: &AppState,
    zone: &Zone,
) -> Result<Vec<PageRule>, ApiError> {
    state
        .store
        .page_rules(&zone.id)
        .await?
        .into_iter()
        .map(|r| {
            from_stored(
                &r.rule.targets,
                &r.rule.actions,
                r.rule.priority,
                &r.rule.status,
                &zone.name,
            )
            .map(|spec| PageRule::new(r.id.clone(), spec, r.created_at))
            .map_err(|e| ApiError::internal(&format!("page rule {}", r.id), &format!("{e:?}")))
        })
        .collect()
}

crate::envelope_schema!(PageRuleEnvelope, PageRuleJson);
crate::envelope_schema!(PageRulesEnvelope, Vec<PageRuleJson>);

/// A page rule, as Cloudflare returns it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PageRuleJson {
    pub id: String,
    /// `[{"target": "url", "constraint": {"operator": "matches", "value": "…"}}]`.
    #[schema(value_type = Vec<Object>)]
    pub targets: Value,
    /// `[{"id": "…", "value": …}]`.
    #[schema(value_type = Vec<Object>)]
    pub actions: Value,
    /// Higher wins.
    pub priority: i64,
    /// `active` or `disabled`.
    pub status: String,
    pub created_on: String,
    pub modified_on: String,
}

fn rule_json(r: StoredPageRule) -> PageRuleJson {
    PageRuleJson {
        id: r.id,
        targets: r.rule.targets,
        actions: r.rule.actions,
        priority: r.rule.priority,
        status: r.rule.status,
        created_on: timestamp(r.created_at),
        modified_on: timestamp(r.modified_at),
    }
}

/// Validates a body for `zone` into what the store keeps.
fn new_rule(zone: &Zone, body: &Value) -> Result<NewPageRule, ApiError> {
    let spec = validate(body, &zone.name)?;
    Ok(NewPageRule {
        targets: spec.targets_json(),
        actions: spec.actions_json(),
        priority: spec.priority,
        status: spec.status.as_str().to_string(),
    })
}

async fn existing_rule(
    state: &AppState,
    zone: &Zone,
    id: &str,
    path: &str,
) -> Result<StoredPageRule, ApiError> {
    crate::auth::check_id(path, id)?;
    state
        .store
        .page_rule(&zone.id, id)
        .await?
        .ok_or_else(|| ApiError::not_found(path))
}

#[utoipa::path(
    post, path = "/zones/{zone_id}/pagerules", tag = "Page Rules", summary = "Create a Page Rule",
    description = "One target (`matches` a URL pattern in the zone: `[scheme://]host[:port][/path][?query]` with up to 4 `*`), \
        the settings to apply (Cloudflare's page rule settings; `forwarding_url` and `always_use_https` stand alone; `cache_key_fields` is not supported), \
        `priority` (default 1, higher wins) and `status` (default `disabled`). At most 125 rules per zone. Requires Page Rules Write.",
    params(("zone_id" = String, Path, description = "Zone identifier", max_length = 32)),
    request_body(content = Object, description = "`{\"targets\": [{\"target\": \"url\", \"constraint\": {\"operator\": \"matches\", \"value\": \"*example.test/images/*\"}}], \"actions\": [{\"id\": \"cache_level\", \"value\": \"bypass\"}], \"priority\": 1, \"status\": \"active\"}`", content_type = "application/json"),
    responses(
        (status = 200, description = "The page rule", body = PageRuleEnvelope),
        (status = 400, description = "Invalid body (1001, 1002)", body = crate::error::ErrorEnvelope),
        crate::openapi::AccountErrors, crate::openapi::AuthErrors, crate::zones::BodyErrors,
    ),
    security(("api_token" = []), ("api_email" = [], "api_key" = []))
)]
async fn create_page_rule(
    State(state): State<AppState>,
    Path(zone_id): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (_, zone) =
        zone_caller(&state, &headers, uri.path(), &zone_id, &[PAGE_RULES_WRITE]).await?;
    let body = json_body(&headers, body).await?;
    let rule = new_rule(&zone, &body)?;
    let stored = state
        .store
        .create_page_rule(&zone.id, &rule, MAX_PAGE_RULES)
        .await?;
    Ok(ok(rule_json(stored)).into_response())
}

fn query_error(name: &str, value: &str, allowed: &str) -> ApiError {
    ApiError::invalid(vec![ErrorItem::at(
        codes::INVALID_FIELD,
        format!("?{name}"),
        format!("{name}: {value:?} must be {allowed}"),
    )])
}

#[utoipa::path(
    get, path = "/zones/{zone_id}/pagerules", tag = "Page Rules", summary = "List Page Rules",
    description = "The zone's page rules, by default in the order they apply (`order=priority`, `direction=desc`; equal priorities: the older first). \
        Query: `order` (`priority`, `status`), `direction` (`asc`, `desc`), `status` (`active`, `disabled`), `match` (`all`, `any`). Requires Page Rules Read.",
    params(("zone_id" = String, Path, description = "Zone identifier", max_length = 32)),
    responses(
        (status = 200, description = "The page rules", body = PageRulesEnvelope),
        (status = 400, description = "Bad query (1002) or missing credentials (9106)", body = crate::error::ErrorEnvelope),
        crate::openapi::AccountErrors, crate::openapi::AuthErrors,
    ),
    security(("api_token" = []), ("api_email" = [], "api_key" = []))
)]
async fn list_page_rules(
    State(state): State<AppState>,
    Path(zone_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (_, zone) = zone_caller(&state, &headers, uri.path(), &zone_id, &[PAGE_RULES_READ]).await?;
    let order = query.get("order").map(String::as_str).unwrap_or("priority");
    if !matches!(order, "priority" | "status") {
        return Err(query_error("order", order, "priority or status"));
    }
    let direction = query.get("direction").map(String::as_str).unwrap_or("desc");
    if !matches!(direction, "asc" | "desc") {
        return Err(query_error("direction", direction, "asc or desc"));
    }
    let status = query.get("status").map(String::as_str);
    if let Some(s) = status.filter(|s| !matches!(*s, "active" | "disabled")) {
        return Err(query_error("status", s, "active or disabled"));
    }
    if let Some(m) = query
        .get("match")
        .filter(|m| !matches!(m.as_str(), "any" | "all"))
    {
        return Err(query_error("match", m, "any or all"));
    }
    // The store's order is the order the rules apply in (priority desc, then older first).
    let mut rules: Vec<StoredPageRule> = state
        .store
        .page_rules(&zone.id)
        .await?
        .into_iter()
        .filter(|r| status.is_none_or(|s| r.rule.status == s))
        .collect();
    match (order, direction) {
        ("priority", "desc") => {}
        ("priority", _) => rules.reverse(),
        (_, "asc") => rules.sort_by(|a, b| a.rule.status.cmp(&b.rule.status)),
        _ => rules.sort_by(|a, b| b.rule.status.cmp(&a.rule.status)),
    }
    let rules: Vec<PageRuleJson> = rules.into_iter().map(rule_json).collect();
    Ok(ok(rules).into_response())
}

#[utoipa::path(
    get, path = "/zones/{zone_id}/pagerules/{pagerule_id}", tag = "Page Rules", summary = "Get a Page Rule",
    description = "Requires Page Rules Read.",
    params(("zone_id" = String, Path, description = "Zone identifier", max_length = 32), ("pagerule_id" = String, Path, description = "Page rule identifier", max_length = 32)),
    responses(
        (status = 200, description = "The page rule", body = PageRuleEnvelope),
        (status = 400, description = "Missing credentials (9106)", body = crate::error::ErrorEnvelope),
        crate::openapi::AccountErrors, crate::openapi::AuthErrors,
    ),
    security(("api_token" = []), ("api_email" = [], "api_key" = []))
)]
async fn get_page_rule(
    State(state): State<AppState>,
    Path((zone_id, rule_id)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (_, zone) = zone_caller(&state, &headers, uri.path(), &zone_id, &[PAGE_RULES_READ]).await?;
    let rule = existing_rule(&state, &zone, &rule_id, uri.path()).await?;
    Ok(ok(rule_json(rule)).into_response())
}

async fn update(
    state: AppState,
    zone_id: String,
    rule_id: String,
    path: &str,
    headers: HeaderMap,
    body: Body,
    patch: bool,
) -> Result<Response, ApiError> {
    let (_, zone) = zone_caller(&state, &headers, path, &zone_id, &[PAGE_RULES_WRITE]).await?;
    let current = existing_rule(&state, &zone, &rule_id, path).await?;
    let mut body = json_body(&headers, body).await?;
    if patch && let Value::Object(changes) = &body {
        // The fields given replace the current ones; the result is validated as a whole, so
        // pointers still name the body's fields.
        let mut merged = json!({
            "targets": current.rule.targets,
            "actions": current.rule.actions,
            "priority": current.rule.priority,
            "status": current.rule.status,
        });
        for (k, v) in changes.iter().filter(|(_, v)| !v.is_null()) {
            merged[k] = v.clone();
        }
        body = merged;
    }
    let rule = new_rule(&zone, &body)?;
    let stored = state
        .store
        .update_page_rule(&zone.id, &rule_id, &rule)
        .await?
        .ok_or_else(|| ApiError::not_found(path))?;
    Ok(ok(rule_json(stored)).into_response())
}

#[utoipa::path(
    put, path = "/zones/{zone_id}/pagerules/{pagerule_id}", tag = "Page Rules", summary = "Update a Page Rule",
    description = "Replaces the rule (same body as create; absent `priority` and `status` take their defaults). Requires Page Rules Write.",
    params(("zone_id" = String, Path, description = "Zone identifier", max_length = 32), ("pagerule_id" = String, Path, description = "Page rule identifier", max_length = 32)),
    request_body(content = Object, content_type = "application/json"),
    responses(
        (status = 200, description = "The page rule", body = PageRuleEnvelope),
        (status = 400, description = "Invalid body (1001, 1002)", body = crate::error::ErrorEnvelope),
        crate::openapi::AccountErrors, crate::openapi::AuthErrors, crate::zones::BodyErrors,
    ),
    security(("api_token" = []), ("api_email" = [], "api_key" = []))
)]
async fn put_page_rule(
    State(state): State<AppState>,
    Path((zone_id, rule_id)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    update(state, zone_id, rule_id, uri.path(), headers, body, false).await
}

#[utoipa::path(
    patch, path = "/zones/{zone_id}/pagerules/{pagerule_id}", tag = "Page Rules", summary = "Edit a Page Rule",
    description = "Changes the fields given (`targets`, `actions`, `priority`, `status`). Requires Page Rules Write.",
    params(("zone_id" = String, Path, description = "Zone identifier", max_length = 32), ("pagerule_id" = String, Path, description = "Page rule identifier", max_length = 32)),
    request_body(content = Object, content_type = "application/json"),
    responses(
        (status = 200, description = "The page rule", body = PageRuleEnvelope),
        (status = 400, description = "Invalid body (1001, 1002)", body = crate::error::ErrorEnvelope),
        crate::openapi::AccountErrors, crate::openapi::AuthErrors, crate::zones::BodyErrors,
    ),
    security(("api_token" = []), ("api_email" = [], "api_key" = []))
)]
async fn patch_page_rule(
    State(state): State<AppState>,
    Path((zone_id, rule_id)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    update(state, zone_id, rule_id, uri.path(), headers, body, true).await
}

#[utoipa::path(
    delete, path = "/zones/{zone_id}/pagerules/{pagerule_id}", tag = "Page Rules", summary = "Delete a Page Rule",
    description = "Requires Page Rules Write.",
    params(("zone_id" = String, Path, description = "Zone identifier", max_length = 32), ("pagerule_id" = String, Path, description = "Page rule identifier", max_length = 32)),
    responses(
        (status = 200, description = "The deleted rule's id", body = crate::zones::IdEnvelope),
        (status = 400, description = "Missing credentials (9106)", body = crate::error::ErrorEnvelope),
        crate::openapi::AccountErrors, crate::openapi::AuthErrors,
    ),
    security(("api_token" = []), ("api_email" = [], "api_key" = []))
)]
async fn delete_page_rule(
    State(state): State<AppState>,
    Path((zone_id, rule_id)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (_, zone) =
        zone_caller(&state, &headers, uri.path(), &zone_id, &[PAGE_RULES_WRITE]).await?;
    existing_rule(&state, &zone, &rule_id, uri.path()).await?;
    if !state.store.delete_page_rule(&zone.id, &rule_id).await? {
        return Err(ApiError::not_found(uri.path()));
    }
    Ok(ok(IdJson { id: rule_id }).into_response())
}
