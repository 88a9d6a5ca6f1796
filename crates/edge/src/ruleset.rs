//! Rulesets and their rules, checked as the Rulesets API receives them.
//!
//! A ruleset has a `kind` (`root` at account level and `zone` at zone level are the phase entry
//! points; `custom` rulesets are run by an `execute` rule; `managed` ones are provided, never
//! created), a `phase`, and ordered rules `{id, version, ref, description, expression, action,
//! action_parameters, enabled, logging, ratelimit}`. Every change makes a new version of the
//! ruleset; a rule's own `version` goes up only when the rule itself changed.
//!
//! ```
//! use edgetrace_edge::actions::Checker;
//! use edgetrace_edge::ruleset::{Level, check_ruleset};
//! use edgetrace_rules::{MemoryLists, Scheme};
//! let scheme = Scheme::cloudflare();
//! let lists = MemoryLists::new();
//! let checker = Checker { scheme: &scheme, lists: &lists };
//! let body = serde_json::json!({
//!     "name": "default", "kind": "zone", "phase": "http_request_firewall_custom",
//!     "rules": [{"expression": "http.request.uri.path eq \"/admin\"", "action": "block"},
//!               {"expression": "ip.src in {10.0.0.0/8", "action": "block"}],
//! });
//! let errors = check_ruleset(&body, Level::Zone, None, &checker, "2026-11-21T00:00:00Z").unwrap_err();
//! assert_eq!(errors[0].pointer, "/rules/1/expression");
//! ```

use crate::actions::{self, Checker, Refs, is_id};
use crate::input::{Fields, object, type_name};
use crate::phases::{allowed_actions, known_phases};
use crate::{FieldError, FieldErrors};
use edgetrace_rules::{Phase, Target};
use serde_json::{Map, Value, json};
use std::collections::HashSet;

/// At most this many rules in one ruleset.
pub const MAX_RULES: usize = 1000;

/// Where a ruleset lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Account,
    Zone,
}

impl Level {
    /// The kind of this level's phase entry points.
    pub fn entrypoint_kind(self) -> &'static str {
        match self {
            Level::Account => "root",
            Level::Zone => "zone",
        }
    }
}

/// A ruleset as it is now, for updates.
#[derive(Debug, Clone, Copy)]
pub struct Current<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub kind: &'a str,
    pub phase: &'a str,
    /// The stored rules (JSON objects as [`check_ruleset`] made them).
    pub rules: &'a [Value],
}

/// A checked ruleset, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    pub name: String,
    pub description: String,
    pub kind: String,
    pub phase: Phase,
    /// Rule objects with ids and versions assigned.
    pub rules: Vec<Value>,
    /// Rulesets the rules refer to (pointer, ruleset id); the caller checks they exist.
    pub refs: Refs,
}

fn new_rule_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Checks a ruleset body: for a create (`current` None) or an update of `current`. `now` is
/// the RFC 3339 time written into changed rules' `last_updated`.
pub fn check_ruleset(
    body: &Value,
    level: Level,
    current: Option<Current<'_>>,
    checker: &Checker<'_>,
    now: &str,
) -> Result<Checked, FieldErrors> {
    let mut errors = FieldErrors::new();
    let Some(map) = object(body, "", &mut errors) else {
        return Err(errors);
    };
    let f = Fields::new(map, "");
    f.only(
        &[
            "name",
            "description",
            "kind",
            "phase",
            "rules",
            "id",
            "version",
            "last_updated",
        ],
        &mut errors,
    );
    let creating = current.is_none();
    let name = f.string("name", creating, &mut errors);
    if let Some(n) = &name
        && (n.trim().is_empty() || n.chars().count() > 255)
    {
        errors.push(f.error("name", "must be 1-255 characters"));
    }
    let description = f.string("description", false, &mut errors);
    if let Some(d) = &description
        && d.chars().count() > 500
    {
        errors.push(f.error("description", "at most 500 characters"));
    }
    let kind = f.string("kind", creating, &mut errors);
    let phase_name = f.string("phase", creating, &mut errors);
    let mut phase = None;
    if let Some(p) = &phase_name {
        match Phase::from_name(p) {
            Some(ph) => phase = Some(ph),
            None => errors.push(f.error(
                "phase",
                format!("unknown phase {p:?}; known: {}", known_phases().join(", ")),
            )),
        }
    }
    if let Some(cur) = current {
        if let Some(k) = &kind
            && k != cur.kind
        {
            errors.push(f.error(
                "kind",
                format!(
                    "{k:?}: a ruleset's kind cannot change (it is {:?})",
                    cur.kind
                ),
            ));
        }
        if let Some(p) = &phase_name
            && p != cur.phase
        {
            errors.push(f.error(
                "phase",
                format!(
                    "{p:?}: a ruleset's phase cannot change (it is {:?})",
                    cur.phase
                ),
            ));
        }
    } else if let Some(k) = &kind {
        match (k.as_str(), level) {
            ("root", Level::Account) | ("zone", Level::Zone) | ("custom", _) => {}
            ("root", Level::Zone) => errors.push(f.error(
                "kind",
                "\"root\" rulesets are account-level entry points; a zone's are kind \"zone\"",
            )),
            ("zone", Level::Account) => errors.push(f.error(
                "kind",
                "\"zone\" rulesets belong to zones; an account's entry points are kind \"root\"",
            )),
            ("managed", _) => errors.push(f.error(
                "kind",
                "managed rulesets are provided, not created; create a \"custom\" ruleset",
            )),
            (other, _) => errors.push(f.error(
                "kind",
                format!("{other:?}; allowed: root (account), zone (zone), custom"),
            )),
        }
    }
    let phase = phase.or_else(|| current.and_then(|c| Phase::from_name(c.phase)));
    let mut rules = Vec::new();
    let mut refs = Refs::new();
    let given_rules = f.array("rules", &mut errors);
    if let (Some(items), Some(phase)) = (given_rules, phase) {
        if items.len() > MAX_RULES {
            errors.push(f.error(
                "rules",
                format!("{} rules; at most {MAX_RULES}", items.len()),
            ));
        }
        let previous = current.map(|c| c.rules).unwrap_or_default();
        let mut ids = HashSet::new();
        let mut refs_seen = HashSet::new();
        for (i, item) in items.iter().enumerate() {
            let pointer = format!("/rules/{i}");
            if let Some((rule, rule_refs)) =
                check_rule(item, &pointer, phase, checker, previous, now, &mut errors)
            {
                let id = rule["id"].as_str().unwrap_or_default().to_string();
                if !ids.insert(id.clone()) {
                    errors.push(FieldError::new(
                        format!("{pointer}/id"),
                        format!("rules[{i}].id: {id} is used by another rule of this ruleset"),
                    ));
                }
                let r = rule["ref"].as_str().unwrap_or_default().to_string();
                if !refs_seen.insert(r.clone()) {
                    errors.push(FieldError::new(
                        format!("{pointer}/ref"),
                        format!("rules[{i}].ref: {r:?} is used by another rule of this ruleset"),
                    ));
                }
                refs.extend(rule_refs);
                rules.push(rule);
            }
        }
    } else if given_rules.is_none()
        && let Some(cur) = current
    {
        rules = cur.rules.to_vec();
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let (Some(phase), Some(kind)) = (phase, kind.or_else(|| current.map(|c| c.kind.to_string())))
    else {
        return Err(errors);
    };
    Ok(Checked {
        name: name
            .or_else(|| current.map(|c| c.name.to_string()))
            .unwrap_or_default(),
        description: description
            .or_else(|| current.map(|c| c.description.to_string()))
            .unwrap_or_default(),
        kind,
        phase,
        rules,
        refs,
    })
}

/// The fields of a rule that make its content (a change to any of them is a new rule version).
const CONTENT: &[&str] = &[
    "action",
    "action_parameters",
    "description",
    "enabled",
    "expression",
    "logging",
    "ratelimit",
    "ref",
];

/// Checks one rule at `pointer`, assigning its id and version against `previous` rules.
pub fn check_rule(
    item: &Value,
    pointer: &str,
    phase: Phase,
    checker: &Checker<'_>,
    previous: &[Value],
    now: &str,
    errors: &mut FieldErrors,
) -> Option<(Value, Refs)> {
    let before = errors.len();
    let map = object(item, pointer, errors)?;
    let f = Fields::new(map, pointer);
    f.only(
        &[
            "id",
            "ref",
            "description",
            "expression",
            "action",
            "action_parameters",
            "enabled",
            "logging",
            "ratelimit",
            "categories",
            "version",
            "last_updated",
        ],
        errors,
    );
    let id = f.string("id", false, errors);
    if let Some(id) = &id
        && !is_id(id)
    {
        errors.push(f.error("id", format!("{id:?} is not a rule id (32 hex characters)")));
    }
    let expression = f.string("expression", true, errors);
    if let Some(e) = &expression {
        checker.expression(
            e,
            Target::filter_in(phase),
            &f.pointer("expression"),
            errors,
        );
    }
    let action = f.string("action", true, errors);
    let allowed = allowed_actions(phase);
    let mut refs = Refs::new();
    if let Some(a) = &action {
        if allowed.contains(&a.as_str()) {
            refs = actions::check(
                checker,
                a,
                f.get("action_parameters"),
                &f.pointer("action_parameters"),
                phase,
                errors,
            );
        } else {
            errors.push(f.error(
                "action",
                format!(
                    "{a:?} is not allowed in phase {phase}; allowed: {}",
                    allowed.join(", ")
                ),
            ));
        }
    }
    let description = f.string("description", false, errors).unwrap_or_default();
    if description.chars().count() > 500 {
        errors.push(f.error("description", "at most 500 characters"));
    }
    let enabled = f.boolean("enabled", errors).unwrap_or(true);
    let r#ref = f.string("ref", false, errors);
    if let Some(r) = &r#ref
        && (r.is_empty() || r.len() > 100)
    {
        errors.push(f.error("ref", "must be 1-100 characters"));
    }
    if let Some(l) = f.object("logging", errors) {
        let l = Fields::new(l, f.pointer("logging"));
        l.only(&["enabled"], errors);
        if l.boolean("enabled", errors).is_none() {
            l.missing("enabled", errors);
        }
    }
    match (f.object("ratelimit", errors), phase) {
        (Some(r), Phase::HttpRatelimit) => ratelimit(
            checker,
            &Fields::new(r, f.pointer("ratelimit")),
            phase,
            errors,
        ),
        (Some(_), _) => errors.push(f.error(
            "ratelimit",
            format!("only rules of phase http_ratelimit have a ratelimit, not {phase}"),
        )),
        (None, Phase::HttpRatelimit) if action.as_deref() != Some("execute") => {
            f.missing("ratelimit", errors)
        }
        _ => {}
    }
    if let Some(c) = f.get("categories")
        && !c.as_array().is_some_and(|a| a.iter().all(Value::is_string))
    {
        errors.push(f.error(
            "categories",
            format!("must be an array of strings, not {}", type_name(c)),
        ));
    }
    if errors.len() > before {
        return None;
    }
    let id = id.unwrap_or_else(new_rule_id);
    let mut rule = Map::new();
    rule.insert("id".into(), json!(id));
    rule.insert("action".into(), json!(action));
    if let Some(p) = f.get("action_parameters") {
        rule.insert("action_parameters".into(), p.clone());
    }
    rule.insert("expression".into(), json!(expression));
    rule.insert("description".into(), json!(description));
    rule.insert("enabled".into(), json!(enabled));
    if let Some(l) = f.get("logging") {
        rule.insert("logging".into(), l.clone());
    }
    if let Some(r) = f.get("ratelimit") {
        rule.insert("ratelimit".into(), r.clone());
    }
    rule.insert("ref".into(), json!(r#ref.unwrap_or_else(|| id.clone())));
    let old = previous.iter().find(|p| p["id"] == json!(id));
    let (version, last_updated) = match old {
        Some(old) if CONTENT.iter().all(|k| old.get(*k) == rule.get(*k)) => {
            (old["version"].clone(), old["last_updated"].clone())
        }
        Some(old) => {
            let v = old["version"]
                .as_str()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            (json!((v + 1).to_string()), json!(now))
        }
        None => (json!("1"), json!(now)),
    };
    rule.insert("version".into(), version);
    rule.insert("last_updated".into(), last_updated);
    Some((Value::Object(rule), refs))
}

const PERIODS: &[i64] = &[10, 60, 120, 300, 600, 3600];
const TIMEOUTS: &[i64] = &[0, 10, 60, 120, 300, 600, 3600, 86_400];

fn ratelimit(checker: &Checker<'_>, f: &Fields<'_>, phase: Phase, errors: &mut FieldErrors) {
    f.only(
        &[
            "characteristics",
            "period",
            "requests_per_period",
            "mitigation_timeout",
            "counting_expression",
            "requests_to_origin",
            "score_per_period",
            "score_response_header_name",
        ],
        errors,
    );
    match f.array("characteristics", errors) {
        Some(c) if !c.iter().any(|v| v == "cf.colo.id") => errors.push(f.error(
            "characteristics",
            "must include \"cf.colo.id\" (counters are per colo)",
        )),
        Some(c) if !c.iter().all(Value::is_string) => {
            errors.push(f.error("characteristics", "must be an array of strings"))
        }
        Some(_) => {}
        None => f.missing("characteristics", errors),
    }
    match f.integer("period", 1, 86_400, errors) {
        Some(p) if !PERIODS.contains(&p) => errors.push(f.error(
            "period",
            format!("{p}; allowed: 10, 60, 120, 300, 600, 3600"),
        )),
        None if f.get("period").is_none() => f.missing("period", errors),
        _ => {}
    }
    let requests = f.integer("requests_per_period", 1, 1_000_000_000, errors);
    let score = f.integer("score_per_period", 1, 1_000_000_000, errors);
    if requests.is_none()
        && score.is_none()
        && f.get("requests_per_period").is_none()
        && f.get("score_per_period").is_none()
    {
        errors.push(f.error("requests_per_period", "required (or score_per_period)"));
    }
    if score.is_some()
        && f.string("score_response_header_name", false, errors)
            .is_none()
    {
        errors.push(f.error(
            "score_response_header_name",
            "required with score_per_period",
        ));
    }
    if let Some(t) = f.integer("mitigation_timeout", 0, 86_400, errors)
        && !TIMEOUTS.contains(&t)
    {
        errors.push(f.error(
            "mitigation_timeout",
            format!("{t}; allowed: 0, 10, 60, 120, 300, 600, 3600, 86400"),
        ));
    }
    if let Some(e) = f.string("counting_expression", false, errors)
        && !e.is_empty()
    {
        checker.expression(
            &e,
            Target {
                kind: edgetrace_rules::ExprKind::Filter,
                phase: Some(phase),
            },
            &f.pointer("counting_expression"),
            errors,
        );
    }
    f.boolean("requests_to_origin", errors);
}

/// Where `position` (`{before: RULE_ID}`, `{after: RULE_ID}` or `{index: N}` from 1) puts a
/// rule among `rules`; absent means at the end.
pub fn position(rules: &[Value], position: Option<&Value>) -> Result<usize, FieldError> {
    let Some(p) = position.filter(|p| !p.is_null()) else {
        return Ok(rules.len());
    };
    let mut errors = FieldErrors::new();
    let Some(map) = object(p, "/position", &mut errors) else {
        return Err(errors.remove(0));
    };
    let f = Fields::new(map, "/position");
    let index_of = |key: &str, id: &str| {
        rules
            .iter()
            .position(|r| r["id"] == json!(id))
            .ok_or_else(|| f.error(key, format!("no rule {id} in this ruleset")))
    };
    match (map.len(), map.iter().next()) {
        (1, Some((k, Value::String(id)))) if k == "before" => index_of("before", id),
        (1, Some((k, Value::String(id)))) if k == "after" => index_of("after", id).map(|i| i + 1),
        (1, Some((k, v))) if k == "index" => match v.as_u64() {
            Some(n) if n >= 1 && n as usize <= rules.len() + 1 => Ok(n as usize - 1),
            _ => Err(f.error(
                "index",
                format!("{v}; allowed: 1-{} (from 1)", rules.len() + 1),
            )),
        },
        _ => Err(FieldError::new(
            "/position",
            "position: give exactly one of {\"before\": RULE_ID}, {\"after\": RULE_ID}, {\"index\": N}",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgetrace_rules::{MemoryLists, Scheme};

    const NOW: &str = "2026-11-21T10:00:00Z";
    const LATER: &str = "2026-11-21T11:00:00Z";

    fn check(
        body: Value,
        level: Level,
        current: Option<Current<'_>>,
    ) -> Result<Checked, Vec<String>> {
        let scheme = Scheme::cloudflare();
        let mut lists = MemoryLists::new();
        lists.add_ip_list("office", [("192.0.2.0".parse().unwrap(), 24)]);
        let checker = Checker {
            scheme: &scheme,
            lists: &lists,
        };
        let now = if current.is_some() { LATER } else { NOW };
        check_ruleset(&body, level, current, &checker, now)
            .map_err(|e| e.iter().map(ToString::to_string).collect())
    }

    fn zone_ruleset(rules: Value) -> Value {
        json!({"name": "default", "kind": "zone", "phase": "http_request_firewall_custom", "rules": rules})
    }

    #[test]
    fn a_ruleset_gets_ids_versions_and_defaults() {
        let checked = check(
            zone_ruleset(json!([
                {"expression": "ip.src in $office", "action": "skip", "action_parameters": {"ruleset": "current"}, "logging": {"enabled": true}},
                {"expression": "http.request.uri.path eq \"/admin\"", "action": "block", "description": "admin", "ref": "admin"},
            ])),
            Level::Zone,
            None,
        )
        .unwrap();
        assert_eq!(checked.phase, Phase::HttpRequestFirewallCustom);
        assert_eq!(checked.rules.len(), 2);
        let first = &checked.rules[0];
        assert!(is_id(first["id"].as_str().unwrap()));
        assert_eq!(first["ref"], first["id"]);
        assert_eq!(first["version"], "1");
        assert_eq!(first["enabled"], true);
        assert_eq!(first["last_updated"], NOW);
        assert_eq!(checked.rules[1]["ref"], "admin");
        assert_eq!(checked.rules[1]["description"], "admin");
    }

    #[test]
    fn only_changed_rules_get_a_new_version() {
        let first = check(
            zone_ruleset(json!([
                {"expression": "http.host eq \"a.test\"", "action": "block"},
                {"expression": "http.host eq \"b.test\"", "action": "block"},
            ])),
            Level::Zone,
            None,
        )
        .unwrap();
        let (a, b) = (first.rules[0]["id"].clone(), first.rules[1]["id"].clone());
        let current = Current {
            name: "default",
            description: "",
            kind: "zone",
            phase: "http_request_firewall_custom",
            rules: &first.rules,
        };
        let second = check(
            json!({"rules": [
                {"id": a, "expression": "http.host eq \"a.test\"", "action": "block"},
                {"id": b, "expression": "http.host eq \"b.test\"", "action": "log"},
                {"expression": "http.host eq \"c.test\"", "action": "block"},
            ]}),
            Level::Zone,
            Some(current),
        )
        .unwrap();
        assert_eq!(second.name, "default");
        assert_eq!(second.rules[0]["version"], "1");
        assert_eq!(second.rules[0]["last_updated"], NOW);
        assert_eq!(second.rules[1]["version"], "2");
        assert_eq!(second.rules[1]["last_updated"], LATER);
        assert_eq!(second.rules[2]["version"], "1");
        // Without rules, an update keeps them.
        let third = check(json!({"description": "d"}), Level::Zone, Some(current)).unwrap();
        assert_eq!(third.rules, first.rules);
        assert_eq!(third.description, "d");
        // Kind and phase cannot change.
        let e = check(
            json!({"phase": "http_ratelimit"}),
            Level::Zone,
            Some(current),
        )
        .unwrap_err();
        assert_eq!(
            e,
            [
                "/phase: phase: \"http_ratelimit\": a ruleset's phase cannot change (it is \"http_request_firewall_custom\")"
            ]
        );
    }

    #[test]
    fn a_bad_expression_points_at_the_rule_with_a_caret() {
        let e = check(
            zone_ruleset(json!([
                {"expression": "true", "action": "log"},
                {"expression": "true", "action": "log"},
                {"expression": "http.hots eq \"x\"", "action": "block"},
            ])),
            Level::Zone,
            None,
        )
        .unwrap_err();
        assert_eq!(
            e,
            [
                "/rules/2/expression: rules[2].expression: unknown field \"http.hots\" — did you mean \"http.host\"?\n | http.hots eq \"x\"\n | ^^^^^^^^^"
            ]
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_pointer() {
        let e = check(
            json!({"kind": "root", "phase": "http_request_nope", "rules": [
                {"action": "redirect", "expression": "true", "extra": 1},
                {"expression": "ip.src in $missing", "action": "block"},
                "not a rule",
            ]}),
            Level::Zone,
            None,
        )
        .unwrap_err();
        let pointers: Vec<&str> = e.iter().map(|m| m.split(':').next().unwrap()).collect();
        assert_eq!(pointers, ["/name", "/phase", "/kind"], "{e:?}");
        let e = check(
            zone_ruleset(json!([
                {"action": "redirect", "expression": "true", "extra": 1},
                {"expression": "ip.src in $missing", "action": "block"},
                "not a rule",
            ])),
            Level::Zone,
            None,
        )
        .unwrap_err();
        let pointers: Vec<&str> = e.iter().map(|m| m.split(':').next().unwrap()).collect();
        assert_eq!(
            pointers,
            [
                "/rules/0/extra",
                "/rules/0/action",
                "/rules/1/expression",
                "/rules/2"
            ],
            "{e:?}"
        );
        assert!(e[1].contains(
            "\"redirect\" is not allowed in phase http_request_firewall_custom; allowed: block,"
        ));
    }

    #[test]
    fn kinds_belong_to_levels() {
        let body = |kind: &str| json!({"name": "n", "kind": kind, "phase": "http_request_firewall_custom"});
        assert!(check(body("root"), Level::Account, None).is_ok());
        assert!(check(body("custom"), Level::Account, None).is_ok());
        assert!(check(body("zone"), Level::Account, None).is_err());
        assert!(check(body("root"), Level::Zone, None).is_err());
        let e = check(body("managed"), Level::Account, None).unwrap_err();
        assert!(e[0].contains("managed rulesets are provided"), "{e:?}");
    }

    #[test]
    fn ids_and_refs_are_unique() {
        let id = "0123456789abcdef0123456789abcdef";
        let e = check(
            zone_ruleset(json!([
                {"id": id, "expression": "true", "action": "log", "ref": "r"},
                {"id": id, "expression": "true", "action": "log", "ref": "r"},
            ])),
            Level::Zone,
            None,
        )
        .unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].starts_with("/rules/1/id: "));
        assert!(e[1].starts_with("/rules/1/ref: "));
    }

    #[test]
    fn rate_limiting_rules_need_their_parameters() {
        let body = |ratelimit: Value| {
            json!({"name": "rl", "kind": "zone", "phase": "http_ratelimit", "rules": [
                {"expression": "http.request.uri.path eq \"/login\"", "action": "block", "ratelimit": ratelimit}]})
        };
        assert!(
            check(
                body(json!({"characteristics": ["ip.src", "cf.colo.id"], "period": 60, "requests_per_period": 10, "mitigation_timeout": 600})),
                Level::Zone,
                None
            )
            .is_ok()
        );
        let e = check(
            body(json!({"characteristics": ["ip.src"], "period": 61})),
            Level::Zone,
            None,
        )
        .unwrap_err();
        assert_eq!(
            e,
            [
                "/rules/0/ratelimit/characteristics: rules[0].ratelimit.characteristics: must include \"cf.colo.id\" (counters are per colo)",
                "/rules/0/ratelimit/period: rules[0].ratelimit.period: 61; allowed: 10, 60, 120, 300, 600, 3600",
                "/rules/0/ratelimit/requests_per_period: rules[0].ratelimit.requests_per_period: required (or score_per_period)",
            ]
        );
    }

    #[test]
    fn positions() {
        let rules = vec![json!({"id": "a"}), json!({"id": "b"})];
        assert_eq!(position(&rules, None), Ok(2));
        assert_eq!(position(&rules, Some(&json!({"before": "b"}))), Ok(1));
        assert_eq!(position(&rules, Some(&json!({"after": "b"}))), Ok(2));
        assert_eq!(position(&rules, Some(&json!({"index": 1}))), Ok(0));
        assert_eq!(
            position(&rules, Some(&json!({"index": 4})))
                .unwrap_err()
                .to_string(),
            "/position/index: position.index: 4; allowed: 1-3 (from 1)"
        );
        assert_eq!(
            position(&rules, Some(&json!({"before": "z"})))
                .unwrap_err()
                .pointer,
            "/position/before"
        );
        assert!(position(&rules, Some(&json!({"before": "a", "after": "b"}))).is_err());
    }
}
