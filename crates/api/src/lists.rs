//! Named lists of an account (`$name` in rule expressions), as Cloudflare's Lists API has them:
//! lists of kind `ip`, `hostname` or `asn`, and their items, changed by bulk operations that
//! edgetrace runs at once and records as completed.
//!
//! Permissions: "Account Lists Read"/"Account Lists Write" (write implies read).

use crate::auth::check_id;
use crate::error::{ApiError, ErrorItem, codes};
use crate::zones::IdJson;
use crate::{AppState, account_caller, json_body, ok, timestamp};
use axum::body::Body;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use edgetrace_edge::lists::{
    Catalog, ItemValue, MAX_ITEMS, kind_name, parse_kind, validate_item_ids, validate_items,
    validate_list, validate_list_update,
};
use edgetrace_rules::ListKind;
use edgetrace_store::{
    ItemChange, ListOperation, NewList, NewListItem, Scope, StoredList, StoredListItem,
};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use utoipa::{OpenApi, ToSchema};

pub const LISTS_READ: &str = "Account Lists Read";
pub const LISTS_WRITE: &str = "Account Lists Write";

#[derive(OpenApi)]
#[openapi(
    paths(
        create_list,
        list_lists,
        get_list,
        update_list,
        delete_list,
        create_items,
        replace_items,
        list_items,
        delete_items,
        get_item,
        get_operation
    ),
    components(schemas(
        ListJson,
        ListItemJson,
        OperationIdJson,
        OperationJson,
        ItemsPageInfo,
        Cursors
    ))
)]
pub(crate) struct Doc;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/accounts/{account_id}/rules/lists",
            get(list_lists).post(create_list),
        )
        .route(
            "/accounts/{account_id}/rules/lists/bulk_operations/{operation_id}",
            get(get_operation),
        )
        .route(
            "/accounts/{account_id}/rules/lists/{list_id}",
            get(get_list).put(update_list).delete(delete_list),
        )
        .route(
            "/accounts/{account_id}/rules/lists/{list_id}/items",
            get(list_items)
                .post(create_items)
                .put(replace_items)
                .delete(delete_items),
        )
        .route(
            "/accounts/{account_id}/rules/lists/{list_id}/items/{item_id}",
            get(get_item),
        )
}

/// An account's lists with their items, as rule expressions see them. A stored item that no
/// longer validates (a corrupt row) is an internal error, not a silently smaller list.
pub(crate) async fn catalog(state: &AppState, account_id: &str) -> Result<Catalog, ApiError> {
    let mut catalog = Catalog::new();
    for (list, items) in state.store.lists_with_items(account_id).await? {
        let kind = parse_kind(&list.list.kind)
            .map_err(|e| ApiError::internal(&format!("list {}", list.id), &e))?;
        let values = items
            .iter()
            .map(|i| {
                ItemValue::parse(kind, &i.item.data, "")
                    .map_err(|e| ApiError::internal(&format!("list item {}", i.id), &e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        catalog.insert(&list.list.name, kind, values);
    }
    Ok(catalog)
}

crate::envelope_schema!(ListEnvelope, ListJson);
crate::envelope_schema!(ListsEnvelope, Vec<ListJson>);
crate::envelope_schema!(ItemEnvelope, ListItemJson);
crate::envelope_schema!(OperationIdEnvelope, OperationIdJson);
crate::envelope_schema!(OperationEnvelope, OperationJson);

/// A list, as Cloudflare returns it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListJson {
    pub id: String,
    pub name: String,
    pub description: String,
    /// `ip`, `hostname` or `asn`.
    pub kind: String,
    pub num_items: i64,
    /// Always 0: edgetrace does not count the rules that name a list.
    pub num_referencing_filters: i64,
    pub created_on: String,
    pub modified_on: String,
}

fn list_json(l: StoredList) -> ListJson {
    ListJson {
        id: l.id,
        name: l.list.name,
        description: l.list.description,
        kind: l.list.kind,
        num_items: l.num_items,
        num_referencing_filters: 0,
        created_on: timestamp(l.created_at),
        modified_on: timestamp(l.modified_at),
    }
}

/// A list item: one of `ip`, `hostname`, `asn`, by the list's kind.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListItemJson {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// `{url_hostname, exclude_exact_hostname}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub hostname: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asn: Option<u64>,
    pub comment: Option<String>,
    pub created_on: String,
    pub modified_on: String,
}

fn item_json(i: StoredListItem) -> ListItemJson {
    let data = i.item.data;
    let (mut ip, mut hostname, mut asn) = (None, None, None);
    match data {
        Value::String(s) => ip = Some(s),
        Value::Number(n) => asn = n.as_u64(),
        other => hostname = Some(other),
    }
    ListItemJson {
        id: i.id,
        ip,
        hostname,
        asn,
        comment: i.item.comment,
        created_on: timestamp(i.created_at),
        modified_on: timestamp(i.modified_at),
    }
}

/// `{operation_id}` of a bulk operation.
#[derive(Debug, Serialize, ToSchema)]
pub struct OperationIdJson {
    pub operation_id: String,
}

/// A bulk operation's status.
#[derive(Debug, Serialize, ToSchema)]
pub struct OperationJson {
    pub id: String,
    /// `pending`, `running`, `completed` or `failed`.
    pub status: String,
    /// When it ended, once `completed` or `failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed: Option<String>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn operation_json(o: ListOperation) -> OperationJson {
    OperationJson {
        id: o.id,
        status: o.status,
        completed: o.completed_at.map(timestamp),
        error: o.error,
    }
}

async fn existing_list(
    state: &AppState,
    account_id: &str,
    list_id: &str,
    path: &str,
) -> Result<StoredList, ApiError> {
    check_id(path, list_id)?;
    state
        .store
        .list(account_id, list_id)
        .await?
        .ok_or_else(|| ApiError::not_found(path))
}

fn list_kind(list: &StoredList) -> Result<ListKind, ApiError> {
    parse_kind(&list.list.kind).map_err(|e| ApiError::internal(&format!("list {}", list.id), &e))
}

#[utoipa::path(
    post, path = "/accounts/{account_id}/rules/lists", tag = "Lists", summary = "Create a list",
    description = "An empty list of kind `ip`, `hostname` or `asn` (`redirect` is not supported). `name` (1-50 lowercase letters, digits, `_`) is unique in the account and names the list in expressions (`$name`). Requires Account Lists Write.",
    params(("account_id" = String, Path, description = "Account identifier", max_length = 32)),
    request_body(content = Object, description = "`{\"name\": \"office\", \"kind\": \"ip\", \"description\": \"…\"}`", content_type = "application/json"),
    responses(
        (status = 200, description = "The list", body = ListEnvelope),
        (status = 400, description = "Invalid body (1001, 1002)", body = crate::error::ErrorEnvelope),
        (status = 409, description = "The name is taken (1006)", body = crate::error::ErrorEnvelope),
        crate::openapi::AccountErrors, crate::openapi::AuthErrors, crate::zones::BodyErrors,
    ),
    security(("api_token" = []), ("api_email" = [], "api_key" = []))
)]
async fn create_list(
    State(state): State<AppState>,
    Path(account_id): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    account_caller(&state, &headers, uri.path(), &account_id, &[LISTS_WRITE]).await?;
    let body = json_body(&headers, body).await?;
    let list = validate_list(&body)?;
    let stored = state
        .store
        .create_list(
            &account_id,
            &NewList {
                name: list.name,
                description: list.description,
                kind: kind_name(list.kind).to_string(),
            },
        )
        .await?;
    Ok(ok(list_json(stored)).into_response())
}

#[utoipa::path(
    get, path = "/accounts/{account_id}/rules/lists", tag = "Lists", summary = "Get lists",
    description = "Every list of the account, by name. Requires Account Lists Read.",
    params(("account_id" = String, Path, description = "Account identifier", max_length = 32)),
    responses(
        (status = 200, description = "The lists", body = ListsEnvelope),
        (status = 400, description = "Missing credentials (9106)", body = crate::error::ErrorEnvelope),
        crate::openapi::AccountErrors, crate::openapi::AuthErrors,
    ),
    security(("api_token" = []), ("api_email" = [], "api_key" = []))
)]
async fn list_lists(
    State(state): State<AppState>,
    Path(account_id): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    account_caller(&state, &headers, uri.path(), &account_id, &[LISTS_READ]).await?;
    let lists: Vec<ListJson> = state
        .store
        .lists(&account_id)
        .await?
        .into_iter()
        .map(list_json)
        .collect();
    Ok(ok(lists).into_response())
}

#[utoipa::path(
    get, path = "/accounts/{account_id}/rules/lists/{list_id}", tag = "Lists", summary = "Get a list",
    description = "Requires Account Lists Read.",
    params(("account_id" = String, Path, description = "Account identifier", max_length = 32), ("list_id" = String, Path, description = "List identifier", max_length = 32)),
    responses(
        (status = 200, description = "The list", body = ListEnvelope),
        (status = 400, description = "Missing credentials (9106)", body = crate::error::ErrorEnvelope),
        crate::openapi::AccountErrors, crate::openapi::AuthErrors,
    ),
    security(("api_token" = []), ("api_email" = [], "api_key" = []))
)]
async fn get_list(
    State(state): State<AppState>,
    Path((account_id, list_id)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    account_caller(&state, &headers, uri.path(), &account_id, &[LISTS_READ]).await?;
    let list = existing_list(&state, &account_id, &list_id, uri.path()).await?;
    Ok(ok(list_json(list)).into_response())
}

#[utoipa::path(
    put, path = "/accounts/{account_id}/rules/lists/{list_id}", tag = "Lists", summary = "Update a list",
    description = "Changes the description (name and kind cannot change). Requires Account Lists Write.",
    params(("account_id" = String, Path, description = "Account identifier", max_length = 32), ("list_id" = String, Path, description = "List identifier", max_length = 32)),
    request_body(content = Object, description = "`{\"description\": \"…\"}`", content_type = "application/json"),
    responses(
        (status = 200, description = "The list", body = ListEnvelope),
        (status = 400, description = "Invalid body (1001, 1002)", body = crate::error::ErrorEnvelope),
        crate::openapi::AccountErrors, crate::openapi::AuthErrors, crate::zones::BodyErrors,
    ),
    security(("api_token" = []), ("api_email" = [], "api_key" = []))
)]
async fn update_list(
    State(state): State<AppState>,
    Path((account_id, list_id)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    account_caller(&state, &headers, uri.path(), &account_id, &[LISTS_WRITE]).await?;
    existing_list(&state, &account_id, &list_id, uri.path()).await?;
    let body = json_body(&headers, body).await?;
    let description = validate_list_update(&body)?;
    let list = state
        .store
        .update_list(&account_id, &list_id, &description)
        .await?
        .ok_or_else(|| ApiError::not_found(uri.path()))?;
    Ok(ok(list_json(list)).into_response())
}

#[utoipa::path(
    delete, path = "/accounts/{account_id}/rules/lists/{list_id}", tag = "Lists", summary = "Delete a list",
    description = "Deletes the list and its items. Requires Account Lists Write.",
    params(("account_id" = String, Path, description = "Account identifier", max_length = 32), ("list_id" = String, Path, description = "List identifier", max_length = 32)),
    responses(
        (status = 200, description = "The deleted list's id", body = crate::zones::IdEnvelope),
        (status = 400, description = "Missing credentials (9106)", body = crate::error::ErrorEnvelope),
        (status = 409, description = "A rule refers to the list (1006)", body = crate::error::ErrorEnvelope),
        crate::openapi::AccountErrors, crate::openapi::AuthErrors,
    ),
    security(("api_token" = []), ("api_email" = [], "api_key" = []))
)]
async fn delete_list(
    State(state): State<AppState>,
    Path((account_id, list_id)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    account_caller(&state, &headers, uri.path(), &account_id, &[LISTS_WRITE]).await?;
    let list = existing_list(&state, &account_id, &list_id, uri.path()).await?;
    if let Some((ruleset, rule)) = referencing_rule(&state, &account_id, &list.list.name).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            codes::CONFLICT,
            format!(
                "list {} is in use: rule {rule} of ruleset {ruleset} refers to ${}; \
                 change or delete the rule first",
                list.list.name, list.list.name
            ),
        ));
    }
    if !state.store.delete_list(&account_id, &list_id).await? {
        return Err(ApiError::not_found(uri.path()));
    }
    Ok(ok(IdJson { id: list_id }).into_response())
}

/// The first rule (ruleset id, rule id) of the account or its zones whose expressions refer
/// to `$name`.
async fn referencing_rule(
    state: &AppState,
    account_id: &str,
    name: &str,
) -> Result<Option<(String, String)>, ApiError> {
    let mut rulesets = state.store.rulesets(Scope::Account(account_id)).await?;
    for zone in state.store.zones(Some(account_id), None).await? {
        rulesets.extend(
            state
                .store
                .rulesets(Scope::Zone {
                    account: account_id,
                    zone: &zone.id,
                })
                .await?,
        );
    }
    let reference = format!("${name}");
    let refers = |text: &str| {
        text.match_indices(&reference).any(|(at, _)| {
            !text[at + reference.len()..]
                .starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        })
    };
    for r in &rulesets {
        for rule in r.ruleset.rules.as_array().into_iter().flatten() {
            // The filter and every value expression (action parameters) as text.
            if refers(&rule["expression"].to_string())
                || refers(&rule["action_parameters"].to_string())
            {
                let id = rule["id"].as_str().unwrap_or_default().to_string();
                return Ok(Some((r.id.clone(), id)));
            }
        }
    }
    Ok(None)
}

/// Validates items against the list's kind, for the store.
fn new_items(list: &StoredList, body: &Value) -> Result<Vec<NewListItem>, ApiError> {
    let items = validate_items(list_kind(list)?, body)?;
    Ok(items
        .into_iter()
        .map(|i| NewListItem {
            value: i.value.key(),
            data: i.value.field().1,
            comment: i.comment,
        })
        .collect())
}

async fn change_items(
    state: AppState,
    account_id: String,
    list_id: String,
    path: &str,
    headers: HeaderMap,
    body: Body,
    replace: bool,
) -> Result<Response, ApiError> {
    account_caller(&state, &headers, path, &account_id, &[LISTS_WRITE]).await?;
    let list = existing_list(&state, &account_id, &list_id, path).await?;
    let body = json_body(&headers, body).await?;
    let items = new_items(&list, &body)?;
    let change = if replace {
        ItemChange::Replace(&items)
    } else {
        ItemChange::Append(&items)
    };
    let operation = state
        .store
        .change_list_items(&account_id, &list_id, change, MAX_ITEMS)
        .await?
        .ok_or_else(|| ApiError::not_found(path))?;
    Ok(ok(OperationIdJson {
        operation_id: operation.id,
    })
    .into_response())
}

#[utoipa::path(
    post, path = "/accounts/{account_id}/rules/lists/{list_id}/items", tag = "Lists", summary = "Create list items",
    description = "Appends items of the list's kind: `[{\"ip\": \"192.0.2.0/24\"}]` (IPv4 addresses, IPv4 /8-/32, IPv6 /4-/64; an IPv6 address is kept as its /64), `[{\"hostname\": {\"url_hostname\": \"*.example.com\"}}]`, `[{\"asn\": 13335}]`, each with an optional `comment`. An item whose value is in the list already gets the new comment. At most 10,000 items per list. Answers the id of the bulk operation, which has completed. Requires Account Lists Write.",
    params(("account_id" = String, Path, description = "Account identifier", max_length = 32), ("list_id" = String, Path, description = "List identifier", max_length = 32)),
    request_body(content = Vec<Object>, content_type = "application/json"),
    responses(
        (status = 200, description = "The operation", body = OperationIdEnvelope),
        (status = 400, description = "Invalid body (1001, 1002)", body = crate::error::ErrorEnvelope),
        crate::openapi::AccountErrors, crate::openapi::AuthErrors, crate::zones::BodyErrors,
    ),
    security(("api_token" = []), ("api_email" = [], "api_key" = []))
)]
async fn create_items(
    State(state): State<AppState>,
    Path((account_id, list_id)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    change_items(state, account_id, list_id, uri.path(), headers, body, false).await
}

#[utoipa::path(
    put, path = "/accounts/{account_id}/rules/lists/{list_id}/items", tag = "Lists", summary = "Update all list items",
    description = "Replaces every item of the list (same body as create). Requires Account Lists Write.",
    params(("account_id" = String, Path, description = "Account identifier", max_length = 32), ("list_id" = String, Path, description = "List identifier", max_length = 32)),
    request_body(content = Vec<Object>, content_type = "application/json"),
    responses(
        (status = 200, description = "The operation", body = OperationIdEnvelope),
        (status = 400, description = "Invalid body (1001, 1002)", body = crate::error::ErrorEnvelope),
        crate::openapi::AccountErrors, crate::openapi::AuthErrors, crate::zones::BodyErrors,
    ),
    security(("api_token" = []), ("api_email" = [], "api_key" = []))
)]
async fn replace_items(
    State(state): State<AppState>,
    Path((account_id, list_id)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    change_items(state, account_id, list_id, uri.path(), headers, body, true).await
}

/// `result_info.cursors` of an item page.
#[derive(Debug, Serialize, ToSchema)]
pub struct Cursors {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// Absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// `result_info` of an item page.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemsPageInfo {
    pub cursors: Cursors,
}

/// A page of items, with cursors.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemsPage {
    pub success: bool,
    pub errors: Vec<ErrorItem>,
    pub messages: Vec<ErrorItem>,
    pub result: Vec<ListItemJson>,
    pub result_info: ItemsPageInfo,
}

fn query_error(name: &str, message: String) -> ApiError {
    ApiError::invalid(vec![ErrorItem::at(
        codes::INVALID_FIELD,
        format!("?{name}"),
        format!("{name}: {message}"),
    )])
}

#[utoipa::path(
    get, path = "/accounts/{account_id}/rules/lists/{list_id}/items", tag = "Lists", summary = "Get list items",
    description = "The items, oldest first (items added together: by their text), by pages of `per_page` (1-500, default 100); `result_info.cursors.after` is the `cursor` of the next page. `search`: IP items that start with it, hostnames that contain it, the AS number equal to it. Requires Account Lists Read.",
    params(("account_id" = String, Path, description = "Account identifier", max_length = 32), ("list_id" = String, Path, description = "List identifier", max_length = 32)),
    responses(
        (status = 200, description = "A page of items", body = ItemsPage),
        (status = 400, description = "Bad query (1002) or missing credentials (9106)", body = crate::error::ErrorEnvelope),
        crate::openapi::AccountErrors, crate::openapi::AuthErrors,
    ),
    security(("api_token" = []), ("api_email" = [], "api_key" = []))
)]
async fn list_items(
    State(state): State<AppState>,
    Path((account_id, list_id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    account_caller(&state, &headers, uri.path(), &account_id, &[LISTS_READ]).await?;
    let list = existing_list(&state, &account_id, &list_id, uri.path()).await?;
    let per_page = match query.get("per_page") {
        None => 100,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=500).contains(n))
            .ok_or_else(|| {
                query_error(
                    "per_page",
                    format!("{v:?} must be an integer from 1 to 500"),
                )
            })?,
    };
    let start = match query.get("cursor").filter(|c| !c.is_empty()) {
        None => 0,
        Some(c) => c.parse::<usize>().map_err(|_| {
            query_error(
                "cursor",
                format!("{c:?} is not a cursor this server gave (result_info.cursors)"),
            )
        })?,
    };
    let search = query.get("search").map(|s| s.to_ascii_lowercase());
    let items: Vec<StoredListItem> = state
        .store
        .list_items(&list.id)
        .await?
        .into_iter()
        .filter(|i| match (&search, &i.item.data) {
            (None, _) => true,
            (Some(s), Value::String(ip)) => ip.starts_with(s.as_str()),
            (Some(s), Value::Number(n)) => n.to_string() == *s,
            (Some(s), _) => i.item.value.contains(s.as_str()),
        })
        .collect();
    let total = items.len();
    let page: Vec<ListItemJson> = items
        .into_iter()
        .skip(start)
        .take(per_page)
        .map(item_json)
        .collect();
    let end = start.saturating_add(per_page);
    Ok(Json(ItemsPage {
        success: true,
        errors: Vec::new(),
        messages: Vec::new(),
        result: page,
        result_info: ItemsPageInfo {
            cursors: Cursors {
                before: (start > 0).then(|| start.saturating_sub(per_page).to_string()),
                after: (end < total).then(|| end.to_string()),
            },
        },
    })
    .into_response())
}

#[utoipa::path(
    delete, path = "/accounts/{account_id}/rules/lists/{list_id}/items", tag = "Lists", summary = "Delete list items",
    description = "Deletes the items named by id: `{\"items\": [{\"id\": \"…\"}]}`; every id must be an item of the list. Requires Account Lists Write.",
    params(("account_id" = String, Path, description = "Account identifier", max_length = 32), ("list_id" = String, Path, description = "List identifier", max_length = 32)),
    request_body(content = Object, content_type = "application/json"),
    responses(
        (status = 200, description = "The operation", body = OperationIdEnvelope),
        (status = 400, description = "Invalid body (1001, 1002)", body = crate::error::ErrorEnvelope),
        crate::openapi::AccountErrors, crate::openapi::AuthErrors, crate::zones::BodyErrors,
    ),
    security(("api_token" = []), ("api_email" = [], "api_key" = []))
)]
async fn delete_items(
    State(state): State<AppState>,
    Path((account_id, list_id)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    account_caller(&state, &headers, uri.path(), &account_id, &[LISTS_WRITE]).await?;
    let list = existing_list(&state, &account_id, &list_id, uri.path()).await?;
    let body = json_body(&headers, body).await?;
    let ids = validate_item_ids(&body)?;
    let existing: Vec<String> = state
        .store
        .list_items(&list.id)
        .await?
        .into_iter()
        .map(|i| i.id)
        .collect();
    let unknown: Vec<ErrorItem> = ids
        .iter()
        .enumerate()
        .filter(|(_, id)| !existing.contains(id))
        .map(|(i, id)| {
            ErrorItem::at(
                codes::INVALID_FIELD,
                format!("/items/{i}/id"),
                format!("items[{i}].id: {id:?} is not an item of this list"),
            )
        })
        .collect();
    if !unknown.is_empty() {
        return Err(ApiError::invalid(unknown));
    }
    let operation = state
        .store
        .change_list_items(&account_id, &list_id, ItemChange::Delete(&ids), MAX_ITEMS)
        .await?
        .ok_or_else(|| ApiError::not_found(uri.path()))?;
    Ok(ok(OperationIdJson {
        operation_id: operation.id,
    })
    .into_response())
}

#[utoipa::path(
    get, path = "/accounts/{account_id}/rules/lists/{list_id}/items/{item_id}", tag = "Lists", summary = "Get a list item",
    description = "Requires Account Lists Read.",
    params(("account_id" = String, Path, description = "Account identifier", max_length = 32), ("list_id" = String, Path, description = "List identifier", max_length = 32), ("item_id" = String, Path, description = "Item identifier", max_length = 32)),
    responses(
        (status = 200, description = "The item", body = ItemEnvelope),
        (status = 400, description = "Missing credentials (9106)", body = crate::error::ErrorEnvelope),
        crate::openapi::AccountErrors, crate::openapi::AuthErrors,
    ),
    security(("api_token" = []), ("api_email" = [], "api_key" = []))
)]
async fn get_item(
    State(state): State<AppState>,
    Path((account_id, list_id, item_id)): Path<(String, String, String)>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    account_caller(&state, &headers, uri.path(), &account_id, &[LISTS_READ]).await?;
    let list = existing_list(&state, &account_id, &list_id, uri.path()).await?;
    check_id(uri.path(), &item_id)?;
    let item = state
        .store
        .list_item(&list.id, &item_id)
        .await?
        .ok_or_else(|| ApiError::not_found(uri.path()))?;
    Ok(ok(item_json(item)).into_response())
}

#[utoipa::path(
    get, path = "/accounts/{account_id}/rules/lists/bulk_operations/{operation_id}", tag = "Lists", summary = "Get bulk operation status",
    description = "edgetrace runs item changes at once: an operation is `completed` (with `completed`, its time) as soon as its id is answered. Requires Account Lists Read.",
    params(("account_id" = String, Path, description = "Account identifier", max_length = 32), ("operation_id" = String, Path, description = "Operation identifier", max_length = 32)),
    responses(
        (status = 200, description = "The operation", body = OperationEnvelope),
        (status = 400, description = "Missing credentials (9106)", body = crate::error::ErrorEnvelope),
        crate::openapi::AccountErrors, crate::openapi::AuthErrors,
    ),
    security(("api_token" = []), ("api_email" = [], "api_key" = []))
)]
async fn get_operation(
    State(state): State<AppState>,
    Path((account_id, operation_id)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    account_caller(&state, &headers, uri.path(), &account_id, &[LISTS_READ]).await?;
    check_id(uri.path(), &operation_id)?;
    let operation = state
        .store
        .list_operation(&account_id, &operation_id)
        .await?
        .ok_or_else(|| ApiError::not_found(uri.path()))?;
    Ok(ok(operation_json(operation)).into_response())
}
