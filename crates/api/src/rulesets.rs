//! The Rulesets API at account and zone level, as Cloudflare has it: rulesets, their rules,
//! versions and phase entry points, with `?dry_run=true` to validate without storing.
//!
//! Permissions: "Account Rulesets Read"/"Account Rulesets Write" under `/accounts/{id}`,
//! "Zone Rulesets Read"/"Zone Rulesets Write" under `/zones/{id}` (write implies read).

use crate::auth::check_id;
use crate::error::{ApiError, ErrorItem, codes};
use crate::zones::zone_caller;
use crate::{AppState, Envelope, ResultInfo, account_caller, json_body, ok, timestamp};
use axum::Router;
use axum::body::Body;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use edgetrace_edge::FieldError;
use edgetrace_edge::actions::Checker;
use edgetrace_edge::ruleset::{Checked, Current, Level, check_ruleset, position};
use edgetrace_rules::{Phase, Scheme};
use edgetrace_store::{NewRuleset, Scope, StoredRuleset};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::LazyLock;
use utoipa::OpenApi;

pub const ACCOUNT_RULESETS_READ: &str = "Account Rulesets Read";
pub const ACCOUNT_RULESETS_WRITE: &str = "Account Rulesets Write";
pub const ZONE_RULESETS_READ: &str = "Zone Rulesets Read";
pub const ZONE_RULESETS_WRITE: &str = "Zone Rulesets Write";

static SCHEME: LazyLock<Scheme> = LazyLock::new(Scheme::cloudflare);

#[derive(OpenApi)]
#[openapi(paths(
    list_rulesets,
    create_ruleset,
    get_ruleset,
    update_ruleset,
    delete_ruleset,
    create_rule,
    edit_rule,
    delete_rule,
    list_versions,
    get_version,
    delete_version,
    get_entrypoint,
    update_entrypoint,
    list_entrypoint_versions,
    get_entrypoint_version,
))]
pub(crate) struct Doc;

pub(crate) fn routes() -> Router<AppState> {
    let mut router = Router::new();
    for scope in ["/accounts/{account_id}", "/zones/{zone_id}"] {
        router = router
            .route(
                &format!("{scope}/rulesets"),
                get(list_rulesets).post(create_ruleset),
            )
            .route(
                &format!("{scope}/rulesets/{{ruleset_id}}"),
                get(get_ruleset).put(update_ruleset).delete(delete_ruleset),
            )
            .route(
                &format!("{scope}/rulesets/{{ruleset_id}}/rules"),
                axum::routing::post(create_rule),
            )
            .route(
                &format!("{scope}/rulesets/{{ruleset_id}}/rules/{{rule_id}}"),
                axum::routing::patch(edit_rule).delete(delete_rule),
            )
            .route(
                &format!("{scope}/rulesets/{{ruleset_id}}/versions"),
                get(list_versions),
            )
            .route(
                &format!("{scope}/rulesets/{{ruleset_id}}/versions/{{version}}"),
                get(get_version).delete(delete_version),
            )
            .route(
                &format!("{scope}/rulesets/phases/{{phase}}/entrypoint"),
                get(get_entrypoint).put(update_entrypoint),
            )
            .route(
                &format!("{scope}/rulesets/phases/{{phase}}/entrypoint/versions"),
                get(list_entrypoint_versions),
            )
            .route(
                &format!("{scope}/rulesets/phases/{{phase}}/entrypoint/versions/{{version}}"),
                get(get_entrypoint_version),
            );
    }
    router
}

/// The account or zone a request is about, once the caller may act on it.
struct Target {
    account: String,
    zone: Option<String>,
}

impl Target {
    fn scope(&self) -> Scope<'_> {
        match &self.zone {
            None => Scope::Account(&self.account),
            Some(zone) => Scope::Zone {
                account: &self.account,
                zone,
            },
        }
    }

    fn level(&self) -> Level {
        if self.zone.is_some() {
            Level::Zone
        } else {
            Level::Account
        }
    }
}

async fn caller(
    state: &AppState,
    headers: &HeaderMap,
    path: &str,
    params: &HashMap<String, String>,
    write: bool,
) -> Result<Target, ApiError> {
    if let Some(account) = params.get("account_id") {
        let permissions: &[&str] = if write {
            &[ACCOUNT_RULESETS_WRITE]
        } else {
            &[ACCOUNT_RULESETS_READ]
        };
        account_caller(state, headers, path, account, permissions).await?;
        if state.store.account(account).await?.is_none() {
            return Err(ApiError::not_found(path));
        }
        return Ok(Target {
            account: account.clone(),
            zone: None,
        });
    }
    let zone_id = params.get("zone_id").map(String::as_str).unwrap_or("");
    let permissions: &[&str] = if write {
        &[ZONE_RULESETS_WRITE]
    } else {
        &[ZONE_RULESETS_READ]
    };
    let (_, zone) = zone_caller(state, headers, path, zone_id, permissions).await?;
    Ok(Target {
        account: zone.account_id,
        zone: Some(zone.id),
    })
}

fn dry_run(query: &HashMap<String, String>) -> Result<bool, ApiError> {
    match query.get("dry_run").map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(ApiError::invalid(vec![ErrorItem::at(
            codes::INVALID_FIELD,
            "?dry_run",
            format!("dry_run: {other:?} must be true or false"),
        )])),
    }
}

/// A stored ruleset as the API returns it; with `rules` unless listing.
fn ruleset_json(r: &StoredRuleset, with_rules: bool) -> Value {
    let mut v = json!({
        "id": r.id,
        "name": r.ruleset.name,
        "description": r.ruleset.description,
        "kind": r.ruleset.kind,
        "phase": r.ruleset.phase,
        "version": r.version.to_string(),
        "last_updated": timestamp(r.last_updated),
    });
    if with_rules {
        v["rules"] = r.ruleset.rules.clone();
    }
    v
}

fn stored_rules(r: &StoredRuleset) -> Vec<Value> {
    r.ruleset.rules.as_array().cloned().unwrap_or_default()
}

async fn existing(
    state: &AppState,
    target: &Target,
    id: &str,
    path: &str,
) -> Result<StoredRuleset, ApiError> {
    check_id(path, id)?;
    state
        .store
        .ruleset(target.scope(), id)
        .await?
        .ok_or_else(|| ApiError::not_found(path))
}

/// Checks `body` (create when `current` is None) with the account's lists, then that every
/// ruleset the rules refer to exists and fits.
async fn check(
    state: &AppState,
    target: &Target,
    body: &Value,
    current: Option<&StoredRuleset>,
) -> Result<Checked, ApiError> {
    let lists = crate::lists::catalog(state, &target.account).await?;
    let checker = Checker {
        scheme: &SCHEME,
        lists: &lists,
    };
    let rules = current.map(stored_rules).unwrap_or_default();
    let cur = current.map(|c| Current {
        name: &c.ruleset.name,
        description: &c.ruleset.description,
        kind: &c.ruleset.kind,
        phase: &c.ruleset.phase,
        rules: &rules,
    });
    let now = humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string();
    let checked = check_ruleset(body, target.level(), cur, &checker, &now)?;
    let mut errors = Vec::new();
    for (pointer, id) in &checked.refs {
        if current.is_some_and(|c| &c.id == id) {
            continue;
        }
        let found = match state.store.ruleset(target.scope(), id).await? {
            Some(r) => Some(r),
            None => {
                state
                    .store
                    .ruleset(Scope::Account(&target.account), id)
                    .await?
            }
        };
        let problem = match found {
            None => Some(format!("no ruleset {id} in this account")),
            Some(r)
                if pointer.ends_with("/action_parameters/id")
                    && r.ruleset.kind != "custom"
                    && r.ruleset.kind != "managed" =>
            {
                Some(format!(
                    "ruleset {id} is a {} ruleset (a phase entry point); execute runs custom or managed rulesets",
                    r.ruleset.kind
                ))
            }
            Some(r)
                if pointer.ends_with("/action_parameters/id")
                    && r.ruleset.phase != checked.phase.name() =>
            {
                Some(format!(
                    "ruleset {id} belongs to phase {}, not {}",
                    r.ruleset.phase,
                    checked.phase.name()
                ))
            }
            Some(_) => None,
        };
        if let Some(p) = problem {
            errors.push(FieldError::new(
                pointer,
                format!("{}: {p}", edgetrace_edge::input::path(pointer)),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(errors.into());
    }
    Ok(checked)
}

fn new_ruleset(checked: Checked) -> NewRuleset {
    NewRuleset {
        name: checked.name,
        description: checked.description,
        kind: checked.kind,
        phase: checked.phase.name().to_string(),
        rules: Value::Array(checked.rules),
    }
}

/// `null` for a dry run, else the value.
fn answer(dry: bool, value: Value) -> Response {
    if dry {
        ok(Value::Null).into_response()
    } else {
        ok(value).into_response()
    }
}

/// Documents a handler of both levels (`accounts` and `zones`) with the responses they share.
macro_rules! doc {
    ($method:ident, $path:literal, $summary:literal, $description:literal, [$(($name:literal, $pdesc:literal)),*], $item:item) => {
        #[utoipa::path(
            $method,
            path = $path,
            tag = "Rulesets",
            summary = $summary,
            description = $description,
            params(("account_or_zone" = String, Path, description = "`accounts` or `zones`"),
                   ("account_or_zone_id" = String, Path, description = "Account or zone identifier", max_length = 32),
                   $(($name = String, Path, description = $pdesc)),*),
            responses(
                (status = 200, description = "Success envelope; `result` is the ruleset (null on a dry run)", body = Object),
                (status = 204, description = "Deleted (DELETE routes)"),
                (status = 400, description = "Invalid body or query (1001, 1002; pointers like /rules/2/expression) or missing credentials (9106)", body = crate::error::ErrorEnvelope),
                (status = 409, description = "Conflict: an entry point exists, the ruleset changed meanwhile, or it is in use (1006)", body = crate::error::ErrorEnvelope),
                (status = 413, description = "Body over 1 MiB (1004)", body = crate::error::ErrorEnvelope),
                (status = 415, description = "Body not application/json (1003)", body = crate::error::ErrorEnvelope),
                crate::openapi::AccountErrors,
                crate::openapi::AuthErrors,
            ),
            security(("api_token" = []), ("api_email" = [], "api_key" = []))
        )]
        $item
    };
}

#[utoipa::path(
    get, path = "/{account_or_zone}/{account_or_zone_id}/rulesets", tag = "Rulesets", summary = "List rulesets",
    description = "The rulesets of an account or zone, without their rules, by phase and name. Cursor pagination: `per_page` (1-1000, default 100) and `cursor` from `result_info.cursor`. Requires Account/Zone Rulesets Read.",
    params(("account_or_zone" = String, Path, description = "`accounts` or `zones`"), ("account_or_zone_id" = String, Path, description = "Account or zone identifier", max_length = 32)),
    responses((status = 200, description = "The rulesets", body = Object), crate::openapi::AccountErrors, crate::openapi::AuthErrors),
    security(("api_token" = []), ("api_email" = [], "api_key" = []))
)]
async fn list_rulesets(
    State(state): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
    Query(query): Query<HashMap<String, String>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let target = caller(&state, &headers, uri.path(), &params, false).await?;
    let bad = |name: &str, v: &str, what: &str| {
        ApiError::invalid(vec![ErrorItem::at(
            codes::INVALID_FIELD,
            format!("?{name}"),
            format!("{name}: {v:?} {what}"),
        )])
    };
    let per_page = match query.get("per_page") {
        None => 100,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| bad("per_page", v, "must be an integer from 1 to 1000"))?,
    };
    let start = match query.get("cursor").filter(|c| !c.is_empty()) {
        None => 0,
        Some(c) => c
            .parse::<usize>()
            .map_err(|_| bad("cursor", c, "is not a cursor from result_info.cursor"))?,
    };
    let all = state.store.rulesets(target.scope()).await?;
    let page: Vec<Value> = all
        .iter()
        .skip(start)
        .take(per_page)
        .map(|r| ruleset_json(r, false))
        .collect();
    let next = start + page.len();
    let mut body = serde_json::to_value(Envelope {
        success: true,
        errors: Vec::new(),
        messages: Vec::new(),
        result: page,
        result_info: None::<ResultInfo>,
    })
    .map_err(|e| ApiError::internal("ruleset list", &e))?;
    body["result_info"] = json!({
        "cursor": if next < all.len() { Value::String(next.to_string()) } else { Value::Null },
    });
    Ok(axum::Json(body).into_response())
}

doc!(
    post,
    "/{account_or_zone}/{account_or_zone_id}/rulesets",
    "Create a ruleset",
    "Body: `name`, `kind` (root at account level, zone at zone level: the phase's entry point, one per phase; or custom), `phase`, `description`, `rules`. Each rule: `expression` (a filter in the Rules language), `action` (allowed in the phase), `action_parameters` (checked for the action), `description`, `enabled`, `ref`, `logging`, `ratelimit`. `?dry_run=true` validates only. Requires Account/Zone Rulesets Write.",
    [],
    async fn create_ruleset(
        State(state): State<AppState>,
        Path(params): Path<HashMap<String, String>>,
        Query(query): Query<HashMap<String, String>>,
        OriginalUri(uri): OriginalUri,
        headers: HeaderMap,
        body: Body,
    ) -> Result<Response, ApiError> {
        let target = caller(&state, &headers, uri.path(), &params, true).await?;
        let dry = dry_run(&query)?;
        let body = json_body(&headers, body).await?;
        let checked = check(&state, &target, &body, None).await?;
        let kind = checked.kind.clone();
        let phase = checked.phase;
        if kind == target.level().entrypoint_kind()
            && state
                .store
                .entrypoint(target.scope(), phase.name())
                .await?
                .is_some()
        {
            return Err(edgetrace_store::StoreError::Conflict {
            field: "phase",
            message: format!(
                "an entry point ruleset for phase {phase} already exists here; update it (PUT …/rulesets/phases/{phase}/entrypoint)"
            ),
        }
        .into());
        }
        create(&state, &target, checked, dry).await
    }
);

doc!(
    get,
    "/{account_or_zone}/{account_or_zone_id}/rulesets/{ruleset_id}",
    "Get a ruleset",
    "The latest version, with its rules. Requires Account/Zone Rulesets Read.",
    [("ruleset_id", "Ruleset identifier")],
    async fn get_ruleset(
        State(state): State<AppState>,
        Path(params): Path<HashMap<String, String>>,
        OriginalUri(uri): OriginalUri,
        headers: HeaderMap,
    ) -> Result<Response, ApiError> {
        let target = caller(&state, &headers, uri.path(), &params, false).await?;
        let r = existing(&state, &target, &params["ruleset_id"], uri.path()).await?;
        Ok(ok(ruleset_json(&r, true)).into_response())
    }
);

/// Stores `checked` as a new ruleset (or only answers, on a dry run).
async fn create(
    state: &AppState,
    target: &Target,
    checked: Checked,
    dry: bool,
) -> Result<Response, ApiError> {
    if dry {
        return Ok(answer(true, Value::Null));
    }
    let stored = state
        .store
        .create_ruleset(target.scope(), &new_ruleset(checked))
        .await?;
    Ok(answer(false, ruleset_json(&stored, true)))
}

/// Stores `checked` as the next version of `current` (or only answers, on a dry run).
async fn save(
    state: &AppState,
    target: &Target,
    current: &StoredRuleset,
    checked: Checked,
    dry: bool,
) -> Result<Response, ApiError> {
    if dry {
        return Ok(answer(true, Value::Null));
    }
    let stored = state
        .store
        .update_ruleset(
            target.scope(),
            &current.id,
            &new_ruleset(checked),
            Some(current.version),
        )
        .await?
        .ok_or_else(|| ApiError::not_found(&current.id))?;
    Ok(answer(false, ruleset_json(&stored, true)))
}

doc!(
    put,
    "/{account_or_zone}/{account_or_zone_id}/rulesets/{ruleset_id}",
    "Update a ruleset",
    "Replaces the rules (when given), name and description, making a new version; kind and phase cannot change. Rules that keep their `id` keep their version unless they changed. `?dry_run=true` validates only. Requires Account/Zone Rulesets Write.",
    [("ruleset_id", "Ruleset identifier")],
    async fn update_ruleset(
        State(state): State<AppState>,
        Path(params): Path<HashMap<String, String>>,
        Query(query): Query<HashMap<String, String>>,
        OriginalUri(uri): OriginalUri,
        headers: HeaderMap,
        body: Body,
    ) -> Result<Response, ApiError> {
        let target = caller(&state, &headers, uri.path(), &params, true).await?;
        let dry = dry_run(&query)?;
        let current = existing(&state, &target, &params["ruleset_id"], uri.path()).await?;
        let body = json_body(&headers, body).await?;
        let checked = check(&state, &target, &body, Some(&current)).await?;
        save(&state, &target, &current, checked, dry).await
    }
);

doc!(
    delete,
    "/{account_or_zone}/{account_or_zone_id}/rulesets/{ruleset_id}",
    "Delete a ruleset",
    "Deletes every version; 204 without a body. A ruleset that a rule of another ruleset executes cannot be deleted (409). Requires Account/Zone Rulesets Write.",
    [("ruleset_id", "Ruleset identifier")],
    async fn delete_ruleset(
        State(state): State<AppState>,
        Path(params): Path<HashMap<String, String>>,
        Query(query): Query<HashMap<String, String>>,
        OriginalUri(uri): OriginalUri,
        headers: HeaderMap,
    ) -> Result<Response, ApiError> {
        let target = caller(&state, &headers, uri.path(), &params, true).await?;
        let dry = dry_run(&query)?;
        let current = existing(&state, &target, &params["ruleset_id"], uri.path()).await?;
        if let Some(user) = referrer(&state, &target, &current.id).await? {
            return Err(edgetrace_store::StoreError::Conflict {
                field: "id",
                message: format!(
                    "ruleset {} is referred to by ruleset {user}; remove those rules first",
                    current.id
                ),
            }
            .into());
        }
        if !dry {
            state
                .store
                .delete_ruleset(target.scope(), &current.id)
                .await?;
        }
        Ok(StatusCode::NO_CONTENT.into_response())
    }
);

/// A ruleset of the account (or of its zones) whose rules refer to `id`.
async fn referrer(state: &AppState, target: &Target, id: &str) -> Result<Option<String>, ApiError> {
    let mut candidates = state
        .store
        .rulesets(Scope::Account(&target.account))
        .await?;
    for zone in state.store.zones(Some(&target.account), None).await? {
        candidates.extend(
            state
                .store
                .rulesets(Scope::Zone {
                    account: &target.account,
                    zone: &zone.id,
                })
                .await?,
        );
    }
    let needle = Value::String(id.to_string());
    Ok(candidates
        .into_iter()
        .filter(|r| r.id != id)
        .find(|r| {
            stored_rules(r).iter().any(|rule| {
                let p = &rule["action_parameters"];
                p["id"] == needle
                    || p["rulesets"]
                        .as_array()
                        .is_some_and(|a| a.contains(&needle))
                    || p["rules"].get(id).is_some()
            })
        })
        .map(|r| r.id))
}

/// Moves rule errors of the rule at `index` to the pointers of a single-rule body.
fn relocate(error: ApiError, index: usize) -> ApiError {
    let prefix = format!("/rules/{index}");
    let path = format!("rules[{index}].");
    let path_end = format!("rules[{index}]: ");
    let errors = error
        .errors
        .into_iter()
        .map(|mut e| {
            if let Some(source) = &mut e.source
                && let Some(rest) = source.pointer.strip_prefix(&prefix)
                && (rest.is_empty() || rest.starts_with('/'))
            {
                source.pointer = rest.to_string();
                e.message = e
                    .message
                    .replacen(&path, "", 1)
                    .replacen(&path_end, "body: ", 1);
            }
            e
        })
        .collect();
    ApiError { errors, ..error }
}

/// The rule in a rules-API body: without `position`.
fn rule_body(body: &Value) -> Result<(Map<String, Value>, Option<Value>), ApiError> {
    let Some(map) = body.as_object() else {
        return Err(ApiError::invalid(vec![ErrorItem::at(
            codes::MALFORMED_BODY,
            "",
            "the body must be a JSON object (a rule)",
        )]));
    };
    let mut map = map.clone();
    let position = map.remove("position");
    Ok((map, position))
}

fn position_error(e: FieldError) -> ApiError {
    ApiError::invalid(vec![ErrorItem::at(
        codes::INVALID_FIELD,
        e.pointer,
        e.message,
    )])
}

doc!(
    post,
    "/{account_or_zone}/{account_or_zone_id}/rulesets/{ruleset_id}/rules",
    "Create a rule",
    "Adds a rule (at the end, or at `position`: `{before: RULE_ID}`, `{after: RULE_ID}`, `{index: N}` from 1), making a new version; answers the whole ruleset. Requires Account/Zone Rulesets Write.",
    [("ruleset_id", "Ruleset identifier")],
    async fn create_rule(
        State(state): State<AppState>,
        Path(params): Path<HashMap<String, String>>,
        Query(query): Query<HashMap<String, String>>,
        OriginalUri(uri): OriginalUri,
        headers: HeaderMap,
        body: Body,
    ) -> Result<Response, ApiError> {
        let target = caller(&state, &headers, uri.path(), &params, true).await?;
        let dry = dry_run(&query)?;
        let current = existing(&state, &target, &params["ruleset_id"], uri.path()).await?;
        let body = json_body(&headers, body).await?;
        let (rule, pos) = rule_body(&body)?;
        let mut rules = stored_rules(&current);
        let index = position(&rules, pos.as_ref()).map_err(position_error)?;
        rules.insert(index, Value::Object(rule));
        let checked = check(&state, &target, &json!({ "rules": rules }), Some(&current))
            .await
            .map_err(|e| relocate(e, index))?;
        save(&state, &target, &current, checked, dry).await
    }
);

fn rule_index(current: &StoredRuleset, rule_id: &str, path: &str) -> Result<usize, ApiError> {
    stored_rules(current)
        .iter()
        .position(|r| r["id"] == json!(rule_id))
        .ok_or_else(|| ApiError::not_found(path))
}

doc!(
    patch,
    "/{account_or_zone}/{account_or_zone_id}/rulesets/{ruleset_id}/rules/{rule_id}",
    "Update a rule",
    "Changes the fields given (and moves the rule with `position`), making a new version; answers the whole ruleset. Requires Account/Zone Rulesets Write.",
    [
        ("ruleset_id", "Ruleset identifier"),
        ("rule_id", "Rule identifier")
    ],
    async fn edit_rule(
        State(state): State<AppState>,
        Path(params): Path<HashMap<String, String>>,
        Query(query): Query<HashMap<String, String>>,
        OriginalUri(uri): OriginalUri,
        headers: HeaderMap,
        body: Body,
    ) -> Result<Response, ApiError> {
        let target = caller(&state, &headers, uri.path(), &params, true).await?;
        let dry = dry_run(&query)?;
        let current = existing(&state, &target, &params["ruleset_id"], uri.path()).await?;
        let index = rule_index(&current, &params["rule_id"], uri.path())?;
        let body = json_body(&headers, body).await?;
        let (changes, pos) = rule_body(&body)?;
        let mut rules = stored_rules(&current);
        let mut rule = rules.remove(index);
        if let Some(obj) = rule.as_object_mut() {
            for (k, v) in changes {
                if k == "action" && v != obj["action"] {
                    // A new action comes with its own parameters.
                    obj.remove("action_parameters");
                }
                obj.insert(k, v);
            }
        }
        let index = match &pos {
            None => index,
            Some(p) => position(&rules, Some(p)).map_err(position_error)?,
        };
        rules.insert(index, rule);
        let checked = check(&state, &target, &json!({ "rules": rules }), Some(&current))
            .await
            .map_err(|e| relocate(e, index))?;
        save(&state, &target, &current, checked, dry).await
    }
);

doc!(
    delete,
    "/{account_or_zone}/{account_or_zone_id}/rulesets/{ruleset_id}/rules/{rule_id}",
    "Delete a rule",
    "Removes a rule, making a new version; answers the whole ruleset. Requires Account/Zone Rulesets Write.",
    [
        ("ruleset_id", "Ruleset identifier"),
        ("rule_id", "Rule identifier")
    ],
    async fn delete_rule(
        State(state): State<AppState>,
        Path(params): Path<HashMap<String, String>>,
        Query(query): Query<HashMap<String, String>>,
        OriginalUri(uri): OriginalUri,
        headers: HeaderMap,
    ) -> Result<Response, ApiError> {
        let target = caller(&state, &headers, uri.path(), &params, true).await?;
        let dry = dry_run(&query)?;
        let current = existing(&state, &target, &params["ruleset_id"], uri.path()).await?;
        let index = rule_index(&current, &params["rule_id"], uri.path())?;
        let mut rules = stored_rules(&current);
        rules.remove(index);
        let checked = check(&state, &target, &json!({ "rules": rules }), Some(&current)).await?;
        save(&state, &target, &current, checked, dry).await
    }
);

async fn versions_of(
    state: &AppState,
    target: &Target,
    current: &StoredRuleset,
) -> Result<Response, ApiError> {
    let versions = state
        .store
        .ruleset_versions(target.scope(), &current.id)
        .await?
        .unwrap_or_default();
    let items: Vec<Value> = versions
        .iter()
        .map(|v| {
            let mut r = ruleset_json(current, false);
            r["version"] = json!(v.version.to_string());
            r["last_updated"] = json!(timestamp(v.created_at));
            r
        })
        .collect();
    Ok(ok(items).into_response())
}

fn version_number(v: &str, path: &str) -> Result<i64, ApiError> {
    v.parse::<i64>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| ApiError::not_found(path))
}

async fn one_version(
    state: &AppState,
    target: &Target,
    id: &str,
    version: &str,
    path: &str,
) -> Result<Response, ApiError> {
    let version = version_number(version, path)?;
    let r = state
        .store
        .ruleset_version(target.scope(), id, version)
        .await?
        .ok_or_else(|| ApiError::not_found(path))?;
    Ok(ok(ruleset_json(&r, true)).into_response())
}

doc!(
    get,
    "/{account_or_zone}/{account_or_zone_id}/rulesets/{ruleset_id}/versions",
    "List a ruleset's versions",
    "Newest first, without rules. Requires Account/Zone Rulesets Read.",
    [("ruleset_id", "Ruleset identifier")],
    async fn list_versions(
        State(state): State<AppState>,
        Path(params): Path<HashMap<String, String>>,
        OriginalUri(uri): OriginalUri,
        headers: HeaderMap,
    ) -> Result<Response, ApiError> {
        let target = caller(&state, &headers, uri.path(), &params, false).await?;
        let current = existing(&state, &target, &params["ruleset_id"], uri.path()).await?;
        versions_of(&state, &target, &current).await
    }
);

doc!(
    get,
    "/{account_or_zone}/{account_or_zone_id}/rulesets/{ruleset_id}/versions/{version}",
    "Get a ruleset version",
    "The ruleset as it was, with its rules. Requires Account/Zone Rulesets Read.",
    [
        ("ruleset_id", "Ruleset identifier"),
        ("version", "Version number")
    ],
    async fn get_version(
        State(state): State<AppState>,
        Path(params): Path<HashMap<String, String>>,
        OriginalUri(uri): OriginalUri,
        headers: HeaderMap,
    ) -> Result<Response, ApiError> {
        let target = caller(&state, &headers, uri.path(), &params, false).await?;
        check_id(uri.path(), &params["ruleset_id"])?;
        one_version(
            &state,
            &target,
            &params["ruleset_id"],
            &params["version"],
            uri.path(),
        )
        .await
    }
);

doc!(
    delete,
    "/{account_or_zone}/{account_or_zone_id}/rulesets/{ruleset_id}/versions/{version}",
    "Delete a ruleset version",
    "Any version but the latest; 204 without a body. Requires Account/Zone Rulesets Write.",
    [
        ("ruleset_id", "Ruleset identifier"),
        ("version", "Version number")
    ],
    async fn delete_version(
        State(state): State<AppState>,
        Path(params): Path<HashMap<String, String>>,
        OriginalUri(uri): OriginalUri,
        headers: HeaderMap,
    ) -> Result<Response, ApiError> {
        let target = caller(&state, &headers, uri.path(), &params, true).await?;
        let current = existing(&state, &target, &params["ruleset_id"], uri.path()).await?;
        let version = version_number(&params["version"], uri.path())?;
        state
            .store
            .delete_ruleset_version(target.scope(), &current.id, version)
            .await?
            .ok_or_else(|| ApiError::not_found(uri.path()))?;
        Ok(StatusCode::NO_CONTENT.into_response())
    }
);

fn phase_of(params: &HashMap<String, String>, path: &str) -> Result<Phase, ApiError> {
    let name = params.get("phase").map(String::as_str).unwrap_or("");
    Phase::from_name(name).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            codes::INVALID_IDENTIFIER,
            format!(
                "Could not route to {path}: unknown phase {name:?}; known: {}",
                edgetrace_edge::phases::known_phases().join(", ")
            ),
        )
    })
}

async fn entrypoint(
    state: &AppState,
    target: &Target,
    phase: Phase,
    path: &str,
) -> Result<StoredRuleset, ApiError> {
    state
        .store
        .entrypoint(target.scope(), phase.name())
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                codes::INVALID_IDENTIFIER,
                format!(
                    "could not find the entry point ruleset of phase {phase} at {path}; create it with PUT"
                ),
            )
        })
}

doc!(
    get,
    "/{account_or_zone}/{account_or_zone_id}/rulesets/phases/{phase}/entrypoint",
    "Get a phase entry point ruleset",
    "The `root` (account) or `zone` (zone) ruleset of the phase; 404 when there is none yet. Requires Account/Zone Rulesets Read.",
    [("phase", "Phase name, e.g. http_request_firewall_custom")],
    async fn get_entrypoint(
        State(state): State<AppState>,
        Path(params): Path<HashMap<String, String>>,
        OriginalUri(uri): OriginalUri,
        headers: HeaderMap,
    ) -> Result<Response, ApiError> {
        let target = caller(&state, &headers, uri.path(), &params, false).await?;
        let phase = phase_of(&params, uri.path())?;
        let r = entrypoint(&state, &target, phase, uri.path()).await?;
        Ok(ok(ruleset_json(&r, true)).into_response())
    }
);

doc!(
    put,
    "/{account_or_zone}/{account_or_zone_id}/rulesets/phases/{phase}/entrypoint",
    "Update a phase entry point ruleset",
    "Creates the entry point when missing (name `default` unless given), else replaces its rules, making a new version. `?dry_run=true` validates only. Requires Account/Zone Rulesets Write.",
    [("phase", "Phase name, e.g. http_request_firewall_custom")],
    async fn update_entrypoint(
        State(state): State<AppState>,
        Path(params): Path<HashMap<String, String>>,
        Query(query): Query<HashMap<String, String>>,
        OriginalUri(uri): OriginalUri,
        headers: HeaderMap,
        body: Body,
    ) -> Result<Response, ApiError> {
        let target = caller(&state, &headers, uri.path(), &params, true).await?;
        let dry = dry_run(&query)?;
        let phase = phase_of(&params, uri.path())?;
        let body = json_body(&headers, body).await?;
        let kind = target.level().entrypoint_kind();
        if let Some(k) = body.get("kind").and_then(Value::as_str)
            && k != kind
        {
            return Err(ApiError::invalid(vec![ErrorItem::at(
                codes::INVALID_FIELD,
                "/kind",
                format!("kind: {k:?}; an entry point here is kind {kind:?}"),
            )]));
        }
        if let Some(p) = body.get("phase").and_then(Value::as_str)
            && p != phase.name()
        {
            return Err(ApiError::invalid(vec![ErrorItem::at(
                codes::INVALID_FIELD,
                "/phase",
                format!("phase: {p:?} differs from the phase in the path, {phase}"),
            )]));
        }
        match state.store.entrypoint(target.scope(), phase.name()).await? {
            Some(current) => {
                let checked = check(&state, &target, &body, Some(&current)).await?;
                save(&state, &target, &current, checked, dry).await
            }
            None => {
                let mut full = body.clone();
                if let Some(obj) = full.as_object_mut() {
                    obj.entry("name").or_insert(json!("default"));
                    obj.insert("kind".into(), json!(kind));
                    obj.insert("phase".into(), json!(phase.name()));
                }
                let checked = check(&state, &target, &full, None).await?;
                create(&state, &target, checked, dry).await
            }
        }
    }
);

doc!(
    get,
    "/{account_or_zone}/{account_or_zone_id}/rulesets/phases/{phase}/entrypoint/versions",
    "List a phase entry point's versions",
    "Newest first. Requires Account/Zone Rulesets Read.",
    [("phase", "Phase name, e.g. http_request_firewall_custom")],
    async fn list_entrypoint_versions(
        State(state): State<AppState>,
        Path(params): Path<HashMap<String, String>>,
        OriginalUri(uri): OriginalUri,
        headers: HeaderMap,
    ) -> Result<Response, ApiError> {
        let target = caller(&state, &headers, uri.path(), &params, false).await?;
        let phase = phase_of(&params, uri.path())?;
        let current = entrypoint(&state, &target, phase, uri.path()).await?;
        versions_of(&state, &target, &current).await
    }
);

doc!(
    get,
    "/{account_or_zone}/{account_or_zone_id}/rulesets/phases/{phase}/entrypoint/versions/{version}",
    "Get a phase entry point version",
    "Requires Account/Zone Rulesets Read.",
    [
        ("phase", "Phase name, e.g. http_request_firewall_custom"),
        ("version", "Version number")
    ],
    async fn get_entrypoint_version(
        State(state): State<AppState>,
        Path(params): Path<HashMap<String, String>>,
        OriginalUri(uri): OriginalUri,
        headers: HeaderMap,
    ) -> Result<Response, ApiError> {
        let target = caller(&state, &headers, uri.path(), &params, false).await?;
        let phase = phase_of(&params, uri.path())?;
        let current = entrypoint(&state, &target, phase, uri.path()).await?;
        one_version(&state, &target, &current.id, &params["version"], uri.path()).await
    }
);
