//! The request pipeline: one code path for the proxy and the request tracer.
//!
//! [`Pipeline::request`] runs the request phases in order — in each phase the account's entry
//! point, then the zone's — applying each matching rule's action with Cloudflare's semantics:
//! terminating actions stop (block, challenges that are not passed, redirect), the others
//! accumulate with "last match wins" per setting (rewrite, route, set_config,
//! set_cache_settings, score), `execute` runs a custom ruleset as a nested level with its
//! overrides, `skip` skips what it names. Field values are fixed within a phase and updated
//! between phases; `raw.*` fields keep the original request. [`Pipeline::response`] runs the
//! response phases on the origin's response. After the request phases, unless a rule answered,
//! the zone's page rules apply: the first active one whose pattern matches, in Cloudflare's
//! precedence; a forwarding URL or `always_use_https` answers with a redirect, other settings
//! join `Outcome::config` (a ruleset's `set_config` of the same setting wins).
//!
//! Side effects go through [`Effects`]: the proxy performs them, a trace records them. Every
//! step is recorded as a [`Step`] in evaluation order, the Request Trace API's `trace`.

use crate::page_rules::{PageRule, RequestUrl, Resolved, applicable};
use crate::phases::PhaseOrder;
use edgetrace_rules::{
    ExecutionContext, Expression, FieldId, Lists, Phase, Prefilter, Scheme, Stage, Target,
};
use serde::Serialize;
use serde_json::{Map, Value, json};
use smallvec::SmallVec;
use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;

/// Geolocation of the client, as far as it is known (fields left `None` are missing, and rules
/// comparing them do not match).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Geo {
    pub country: Option<String>,
    pub continent: Option<String>,
    pub city: Option<String>,
    pub region_code: Option<String>,
    pub postal_code: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub subdivision_1_iso_code: Option<String>,
    pub subdivision_2_iso_code: Option<String>,
    pub is_in_european_union: Option<bool>,
    pub timezone: Option<String>,
    pub asnum: Option<i64>,
}

/// A request as the pipeline sees it. Its text either borrows the request as received
/// (`'r`: the rules' fields then borrow it too, no copy) or is its own (`Request<'static>`;
/// and what rewrites write).
#[derive(Debug, Clone, PartialEq)]
pub struct Request<'r> {
    pub method: Cow<'r, str>,
    pub https: bool,
    /// Lowercase, without port.
    pub host: Cow<'r, str>,
    /// Path and query, as sent (`/a/b?x=1`).
    pub uri: Cow<'r, str>,
    /// `HTTP/1.1`, `HTTP/2`, …
    pub version: Cow<'r, str>,
    pub headers: Vec<(Cow<'r, str>, Cow<'r, str>)>,
    pub body: Vec<u8>,
    pub client_ip: IpAddr,
    /// `None`: nothing known (every geolocation field missing). Boxed: most requests have
    /// none (no geolocation database), and a request is moved about whole.
    pub geo: Option<Box<Geo>>,
    pub bot_score: Option<i64>,
    pub verified_bot: bool,
    pub threat_score: Option<i64>,
}

/// No geolocation: every field missing.
static NO_GEO: Geo = Geo {
    country: None,
    continent: None,
    city: None,
    region_code: None,
    postal_code: None,
    latitude: None,
    longitude: None,
    subdivision_1_iso_code: None,
    subdivision_2_iso_code: None,
    is_in_european_union: None,
    timezone: None,
    asnum: None,
};

impl Request<'_> {
    /// The client's geolocation, as far as it is known.
    pub fn geo(&self) -> &Geo {
        self.geo.as_deref().unwrap_or(&NO_GEO)
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.uri.split_once('?').map_or(&self.uri, |(p, _)| p)
    }

    /// The query, without `?` (empty when none).
    pub fn query(&self) -> &str {
        self.uri.split_once('?').map_or("", |(_, q)| q)
    }

    /// The full URL.
    pub fn url(&self) -> String {
        format!(
            "{}://{}{}",
            if self.https { "https" } else { "http" },
            self.host,
            self.uri
        )
    }
}

/// A response as the pipeline sees it (the origin's, for the response phases). Header
/// rewrites write the rules' own text into its list (borrowed, as in a [`Request`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response<'r> {
    pub status: u16,
    pub headers: Vec<(Cow<'r, str>, Cow<'r, str>)>,
    pub body: Vec<u8>,
}

/// One rule, ready to run.
#[derive(Debug)]
pub struct Rule {
    pub id: String,
    pub r#ref: String,
    pub description: String,
    pub expression: String,
    filter: Expression,
    pub action: String,
    pub action_parameters: Option<Value>,
    pub enabled: bool,
    pub ratelimit: Option<Value>,
    /// Value expressions of the action, by JSON pointer inside `action_parameters` (a few
    /// at most: a list).
    values: Vec<(String, Expression)>,
    /// A rewrite's new path and query (`action_parameters.uri.path`, `.query`), and its
    /// header operations (`.headers`), read once here rather than from the JSON on every
    /// request.
    uri_path: Option<Source>,
    uri_query: Option<Source>,
    header_ops: Vec<HeaderOp>,
}

/// Where a rewritten value comes from: its expression (an index into [`Rule::values`]),
/// else its literal `value`.
#[derive(Debug)]
struct Source {
    expression: Option<usize>,
    value: Option<String>,
}

impl Source {
    /// `v`'s `{"value": …}` or `{"expression": …}`, `v` being at `pointer` in the action
    /// parameters (spelled as [`collect_values`] spells it); `None` when neither.
    fn read(v: &Value, pointer: &str, values: &[(String, Expression)]) -> Option<Source> {
        let expression_pointer = format!("{pointer}/expression");
        let source = Source {
            expression: values.iter().position(|(p, _)| *p == expression_pointer),
            value: v["value"].as_str().map(str::to_string),
        };
        (source.expression.is_some() || source.value.is_some()).then_some(source)
    }

    /// The value: its expression's (computed), else its literal (borrowed from the rule).
    fn get<'p>(&'p self, rule: &'p Rule, ctx: &ExecutionContext<'_, '_>) -> Option<Cow<'p, str>> {
        match self.expression.and_then(|i| rule.values[i].1.evaluate(ctx)) {
            Some(v) => Some(Cow::Owned(v)),
            None => self.value.as_deref().map(Cow::Borrowed),
        }
    }
}

/// One `headers.<name>` entry of a rewrite: the name (lowercase), the operation, and where
/// the value comes from (none for `remove`).
#[derive(Debug)]
struct HeaderOp {
    name: String,
    operation: Operation,
    source: Option<Source>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Set,
    Add,
    Remove,
    /// Anything else (the checker lets none through): does nothing.
    Other,
}

/// The header operations of a rule's `action_parameters`, in their JSON order.
fn header_ops(params: &Value, values: &[(String, Expression)]) -> Vec<HeaderOp> {
    let Some(headers) = params["headers"].as_object() else {
        return Vec::new();
    };
    headers
        .iter()
        .map(|(name, op)| HeaderOp {
            name: name.to_ascii_lowercase(),
            operation: match op["operation"].as_str() {
                Some("set") => Operation::Set,
                Some("add") => Operation::Add,
                Some("remove") => Operation::Remove,
                _ => Operation::Other,
            },
            source: Source::read(op, &format!("/headers/{name}"), values),
        })
        .collect()
}

/// A ruleset, ready to run.
#[derive(Debug)]
pub struct Ruleset {
    pub id: String,
    pub name: String,
    pub description: String,
    pub kind: String,
    pub phase: Phase,
    pub rules: Vec<Rule>,
    /// Rules out, per request, the rules whose filters cannot be true (see
    /// [`edgetrace_rules::prefilter`]); not used when every rule is shown.
    prefilter: Prefilter,
}

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_string()
}

impl Ruleset {
    /// Compiles a ruleset as the API returns it (`{id, name, kind, phase, rules: […]}`); the
    /// rules were checked when stored, so an error here means the configuration changed under
    /// them (a list deleted).
    pub fn compile(json: &Value, scheme: &Scheme, lists: &dyn Lists) -> Result<Ruleset, String> {
        let phase_name = text(json, "phase");
        let phase = Phase::from_name(&phase_name)
            .ok_or_else(|| format!("ruleset {}: unknown phase {phase_name:?}", text(json, "id")))?;
        let mut rules = Vec::new();
        for r in json["rules"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let expression = text(r, "expression");
            let filter =
                Expression::parse_with_lists(scheme, &expression, Target::filter_in(phase), lists)
                    .map_err(|e| format!("rule {}: {}", text(r, "id"), e.render()))?;
            let mut values = Vec::new();
            collect_values(&r["action_parameters"], "", &mut |pointer, text| {
                Expression::parse_with_lists(scheme, text, Target::value_in(phase), lists)
                    .map(|e| values.push((pointer.to_string(), e)))
                    .map_err(|e| e.render())
            })
            .map_err(|e| format!("rule {}: {e}", text(r, "id")))?;
            rules.push(Rule {
                header_ops: header_ops(&r["action_parameters"], &values),
                uri_path: Source::read(
                    &r["action_parameters"]["uri"]["path"],
                    "/uri/path",
                    &values,
                ),
                uri_query: Source::read(
                    &r["action_parameters"]["uri"]["query"],
                    "/uri/query",
                    &values,
                ),
                id: text(r, "id"),
                r#ref: text(r, "ref"),
                description: text(r, "description"),
                expression,
                filter,
                action: text(r, "action"),
                action_parameters: r.get("action_parameters").filter(|v| !v.is_null()).cloned(),
                enabled: r["enabled"].as_bool().unwrap_or(true),
                ratelimit: r.get("ratelimit").filter(|v| !v.is_null()).cloned(),
                values,
            });
        }
        Ok(Ruleset {
            prefilter: Prefilter::new(rules.iter().map(|r| Some(&r.filter))),
            id: text(json, "id"),
            name: text(json, "name"),
            description: text(json, "description"),
            kind: text(json, "kind"),
            phase,
            rules,
        })
    }
}

/// Calls `f` with the pointer and text of every `"expression"` string inside `v` (the value
/// expressions of rewrites, redirects, bulk redirect keys).
fn collect_values(
    v: &Value,
    pointer: &str,
    f: &mut dyn FnMut(&str, &str) -> Result<(), String>,
) -> Result<(), String> {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let p = format!("{pointer}/{k}");
                match (k.as_str(), child) {
                    ("expression" | "key", Value::String(s)) => f(&p, s)?,
                    _ => collect_values(child, &p, f)?,
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The rulesets of one zone and its account.
pub struct Config {
    pub order: PhaseOrder,
    /// The account's phase entry points (kind `root`).
    pub account: Vec<Ruleset>,
    /// The zone's phase entry points (kind `zone`).
    pub zone: Vec<Ruleset>,
    /// Rulesets that `execute` can run, by id.
    pub custom: HashMap<String, Ruleset>,
    pub lists: Box<dyn Lists>,
    /// The zone's page rules, in any order.
    pub page_rules: Vec<PageRule>,
    /// The fields the rules read, per phase ([`Config::field_masks`]): only these are
    /// computed for a request. `None`: every field.
    pub fields: Option<FieldMasks>,
}

/// For each phase, the fields a context built for it needs.
#[derive(Debug, Clone)]
pub struct FieldMasks {
    by_phase: Vec<(Phase, Vec<bool>)>,
    /// Whether the response phases read the response's headers
    /// ([`Pipeline::reads_response_headers`]).
    response_headers: bool,
    ids: Ids,
}

/// The ids of the fields a run sets beside those [`ExecutionContext::set_request`] derives
/// from the request, looked up once per configuration (by name, a request looked up about 25
/// names).
#[derive(Debug, Clone)]
struct Ids {
    /// `raw.http.request.uri`, `.uri.path`, `.uri.query`.
    raw_uri: [Option<FieldId>; 3],
    raw_full_uri: Option<FieldId>,
    ip_src: Option<FieldId>,
    /// The geolocation's text fields, in [`Run::context`]'s order.
    geo: [Option<FieldId>; 8],
    lat: Option<FieldId>,
    lon: Option<FieldId>,
    european_union: Option<FieldId>,
    asnum: Option<FieldId>,
    bot_score: Option<FieldId>,
    threat_score: Option<FieldId>,
    verified_bot: Option<FieldId>,
    client_bot: Option<FieldId>,
    body_raw: Option<FieldId>,
    body_size: Option<FieldId>,
    response_code: Option<FieldId>,
    media_type: Option<FieldId>,
}

impl Ids {
    fn new(scheme: &Scheme) -> Ids {
        let f = |name: &str| scheme.field(name);
        Ids {
            raw_uri: [
                "raw.http.request.uri",
                "raw.http.request.uri.path",
                "raw.http.request.uri.query",
            ]
            .map(f),
            raw_full_uri: f("raw.http.request.full_uri"),
            ip_src: f("ip.src"),
            geo: [
                "ip.src.country",
                "ip.src.continent",
                "ip.src.city",
                "ip.src.region_code",
                "ip.src.postal_code",
                "ip.src.subdivision_1_iso_code",
                "ip.src.subdivision_2_iso_code",
                "ip.src.timezone.name",
            ]
            .map(f),
            lat: f("ip.src.lat"),
            lon: f("ip.src.lon"),
            european_union: f("ip.src.is_in_european_union"),
            asnum: f("ip.src.asnum"),
            bot_score: f("cf.bot_management.score"),
            threat_score: f("cf.threat_score"),
            verified_bot: f("cf.bot_management.verified_bot"),
            client_bot: f("cf.client.bot"),
            body_raw: f("http.request.body.raw"),
            body_size: f("http.request.body.size"),
            response_code: f("http.response.code"),
            media_type: f("http.response.content_type.media_type"),
        }
    }
}

impl FieldMasks {
    fn get(&self, phase: Phase) -> Option<&[bool]> {
        self.by_phase
            .iter()
            .find(|(p, _)| *p == phase)
            .map(|(_, m)| m.as_slice())
    }
}

impl Config {
    /// For each phase, the fields read by the filter and value expressions of its entry
    /// points and of the later phases (a context built for a phase serves the next ones
    /// until a rewrite changes the request, the response phases included), and of every
    /// ruleset `execute` can run. A context is narrowed to the mask of each phase it serves,
    /// so what is computed again after a rewrite is only what the rest of the rules read.
    pub fn field_masks(&self, scheme: &Scheme) -> FieldMasks {
        fn exprs(rs: &Ruleset) -> impl Iterator<Item = &Expression> {
            rs.rules
                .iter()
                .flat_map(|r| std::iter::once(&r.filter).chain(r.values.iter().map(|(_, e)| e)))
        }
        // The response stage first: a request phase's context serves the response phases
        // too ([`Pipeline::request_keeping`]), so it computes what they read as well.
        let mut acc = scheme.field_mask(self.custom.values().flat_map(exprs));
        let mut by_phase = Vec::new();
        for stage in [self.order.response(), self.order.request()] {
            for &phase in stage.iter().rev() {
                let entry_points = self.account.iter().chain(&self.zone);
                let read =
                    scheme.field_mask(entry_points.filter(|rs| rs.phase == phase).flat_map(exprs));
                for (a, r) in acc.iter_mut().zip(read) {
                    *a |= r;
                }
                by_phase.push((phase, acc.clone()));
            }
        }
        // What the first response phase's context computes: the later ones' fields too.
        let first_response = self.order.response().first().copied();
        let response_mask = by_phase
            .iter()
            .find(|(p, _)| Some(*p) == first_response)
            .map(|(_, m)| m.as_slice());
        let response_headers = response_mask.is_none_or(|mask| {
            [
                "http.response.headers",
                "http.response.headers.names",
                "http.response.headers.values",
                "http.response.content_type.media_type",
            ]
            .iter()
            .filter_map(|f| scheme.field(f))
            .any(|id| mask.get(id.index()).copied().unwrap_or(true))
        });
        FieldMasks {
            by_phase,
            response_headers,
            ids: Ids::new(scheme),
        }
    }
}

/// What a challenge, a rate limit or a log line does: performed by the proxy, recorded by a
/// trace.
pub trait Effects {
    /// Whether the client passes a challenge of `kind` (`challenge`, `js_challenge`,
    /// `managed_challenge`).
    fn challenge(&mut self, kind: &str) -> bool;
    /// Whether the rate limit of `rule` is exceeded for this request (the proxy counts it;
    /// a trace only reads the counter).
    fn rate_limited(&mut self, rule: &Rule, request: &Request<'_>) -> bool;
    /// A `log` rule matched.
    fn log(&mut self, rule: &Rule) {
        let _ = rule;
    }
}

/// One step of the evaluation, in the Request Trace API's shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub step_name: String,
    /// `ruleset`, `rule` or `page_rule`.
    pub r#type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    pub matched: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action_parameters: Option<Value>,
    /// edgetrace extension: the phase of a ruleset step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// edgetrace extension: why a rule matched or not, from the rules engine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trace: Vec<Step>,
}

/// How the pipeline ended a request by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The action that answered (`block`, `redirect`, `managed_challenge`, `serve_error`).
    pub action: String,
}

/// Where and how to reach the origin, after `route` actions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Route {
    pub host_header: Option<String>,
    pub origin_host: Option<String>,
    pub origin_port: Option<u16>,
    pub sni: Option<String>,
}

/// What the request phases decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome<'r> {
    /// The request as it goes to the origin (rewrites applied).
    pub request: Request<'r>,
    /// Its path and query as it arrived (the `raw.*` fields of the response phases too).
    pub raw_uri: Cow<'r, str>,
    /// Set when a terminating action answered; the origin is not called.
    pub answer: Option<Answer>,
    pub route: Route,
    /// `set_config` settings, last match wins per setting.
    pub config: Map<String, Value>,
    /// `set_cache_settings` settings, last match wins per setting.
    pub cache: Map<String, Value>,
    /// Sum of `score` actions.
    pub score: i64,
    /// The rewrites' header operations, in the order they were applied to `request`'s
    /// headers: replayed on the request's own header map, they give the same headers.
    pub header_edits: Vec<HeaderEdit<'r>>,
    pub trace: Vec<Step>,
}

impl<'r> Outcome<'r> {
    /// `request` as it came, nothing decided: what the edge forwards when no rule ran (a
    /// request the proxy answers itself before its rules, say).
    pub fn untouched(request: Request<'r>) -> Outcome<'r> {
        Outcome {
            raw_uri: request.uri.clone(),
            request,
            answer: None,
            route: Route::default(),
            config: Map::new(),
            cache: Map::new(),
            score: 0,
            header_edits: Vec::new(),
            trace: Vec::new(),
        }
    }
}

/// What the response phases made of the origin's response.
#[derive(Debug, Clone, PartialEq)]
pub struct Responded<'a> {
    /// The response to send: the origin's with its header rewrites, or a rule's answer.
    pub response: Response<'a>,
    /// Whether a rule answered (`response` is then that answer).
    pub answered: bool,
    /// The rewrites' header operations, in the order they were applied to the origin's
    /// headers (none when a rule answered): replayed on the origin's own header map, they
    /// give the same headers.
    pub header_edits: Vec<HeaderEdit<'a>>,
}

/// A header operation of a rewrite, as applied (names lowercase). Its name, and its value
/// when the rule gives it as it is, borrow the rule's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderEdit<'a> {
    /// Replaces every value of the header.
    Set(Cow<'a, str>, Cow<'a, str>),
    /// Adds a value.
    Add(Cow<'a, str>, Cow<'a, str>),
    Remove(Cow<'a, str>),
}

/// Options of one run.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Record the rules that did not match too (the dashboard's "All configurations").
    pub all_rules: bool,
    /// Record the engine's explanation of each rule.
    pub explain: bool,
    /// Record no steps (the outcome's trace is empty): the proxy's setting, which needs the
    /// decisions only. Decisions are the same.
    pub lean: bool,
}

/// The pipeline over one configuration.
#[derive(Clone, Copy)]
pub struct Pipeline<'a> {
    pub scheme: &'a Scheme,
    pub config: &'a Config,
    pub options: RunOptions,
}

/// Header and URI changes of one phase, applied when it ends (fields are fixed within a phase).
#[derive(Default)]
struct Pending<'p> {
    path: Option<Cow<'p, str>>,
    query: Option<Cow<'p, str>>,
    /// (A phase's rules set a few: no allocation for up to 4.)
    headers: SmallVec<[PendingHeader<'p>; 4]>,
}

/// A header operation to apply: the (lowercase) name, the operation, the value.
type PendingHeader<'p> = (&'p str, Operation, Option<Cow<'p, str>>);

/// Evaluation state of one request (whose text lives for `'r`), for the configuration of
/// `'p` (which outlives it: rewrites write the rules' own text into the request).
struct Run<'p, 'e, 'o, 'r> {
    pipeline: Pipeline<'p>,
    effects: &'e mut dyn Effects,
    /// Owned by the request phases (they rewrite it), borrowed by the response phases.
    request: Cow<'o, Request<'r>>,
    /// `raw.*` fields: the path and query as the request arrived.
    raw_uri: Cow<'r, str>,
    /// What the rewrites changed since the context ([`phase`](Self::phase)) was last
    /// brought up to date.
    stale: Stale,
    response: Option<Response<'r>>,
    answer: Option<Answer>,
    route: Route,
    config: Map<String, Value>,
    cache: Map<String, Value>,
    score: i64,
    // What `skip` rules named: a few at most, usually none.
    skipped_phases: Vec<Phase>,
    skipped_rulesets: Vec<String>,
    skipped_rules: Vec<String>,
    pending: Pending<'p>,
    /// The header operations applied (to the request's headers, or in the response phases
    /// the response's).
    edits: Vec<HeaderEdit<'r>>,
    ids: RunIds<'p>,
}

/// The field ids a run sets: the configuration's, or (a configuration without field masks)
/// the run's own. Boxed: a run is moved about, and the ids are 400 bytes.
enum RunIds<'p> {
    Config(&'p Ids),
    Own(Box<Ids>),
}

impl std::ops::Deref for RunIds<'_> {
    type Target = Ids;
    fn deref(&self) -> &Ids {
        match self {
            RunIds::Config(ids) => ids,
            RunIds::Own(ids) => ids,
        }
    }
}

/// The field values the request phases ended with, for the response phases
/// ([`Pipeline::request_keeping`]); opaque.
#[derive(Default)]
pub struct Fields<'p, 'r> {
    ctx: Option<ExecutionContext<'p, 'r>>,
    stale: Stale,
}

/// What a request phase's rewrites changed since the context was brought up to date.
#[derive(Debug, Default, Clone, Copy)]
struct Stale {
    /// The path (and maybe the query).
    path: bool,
    /// The query alone: the path's fields (its normalization) are still right.
    query: bool,
    headers: bool,
}

/// A phase's bit in a set of phases.
fn phase_bit(phase: Phase) -> u32 {
    1 << (phase as u32)
}

/// Sets field `id` (when the scheme has it, the context keeps it and there is a value),
/// computing the value only then.
fn set_opt<'v, V: Into<edgetrace_rules::Value<'v>>>(
    ctx: &mut ExecutionContext<'_, 'v>,
    id: Option<FieldId>,
    v: impl FnOnce() -> Option<V>,
) {
    if let Some(id) = id.filter(|&id| ctx.wants_id(id))
        && let Some(v) = v()
    {
        let _ = ctx.set_id(id, v);
    }
}

impl<'a> Pipeline<'a> {
    /// Runs the request phases. The outcome may borrow the configuration's text (its
    /// rewrites'), hence `'a: 'r`.
    pub fn request<'r>(&self, request: Request<'r>, effects: &mut dyn Effects) -> Outcome<'r>
    where
        'a: 'r,
    {
        self.request_keeping(request, effects).0
    }

    /// Runs the request phases, and keeps the field values they ended with for
    /// [`response_from`](Self::response_from) (which then sets only the response's fields
    /// and what the last rewrites changed, instead of every field again).
    pub fn request_keeping<'r>(
        &self,
        request: Request<'r>,
        effects: &mut dyn Effects,
    ) -> (Outcome<'r>, Fields<'a, 'r>)
    where
        'a: 'r,
    {
        let raw_uri = request.uri.clone();
        let mut run = Run::new(*self, Cow::Owned(request), raw_uri, None, effects);
        let mut trace = Vec::new();
        let mut ctx = None;
        let present = self.phases_present();
        for &phase in self.config.order.request() {
            if run.answer.is_some() {
                break;
            }
            if present & phase_bit(phase) != 0 {
                run.phase(phase, &mut ctx, &mut trace);
            }
        }
        if run.answer.is_none() {
            run.page_rules(&mut trace);
        }
        let fields = Fields {
            ctx,
            stale: run.stale,
        };
        let outcome = Outcome {
            request: run.request.into_owned(),
            raw_uri: run.raw_uri,
            answer: run.answer,
            route: run.route,
            config: run.config,
            cache: run.cache,
            score: run.score,
            header_edits: run.edits,
            trace,
        };
        (outcome, fields)
    }

    /// The phases with an entry point ([`phase_bit`]s): the others are not run at all (a zone
    /// has a few of the 18; looking at every entry point for each phase was a tenth of a
    /// request's rules).
    fn phases_present(&self) -> u32 {
        let config = self.config;
        config
            .account
            .iter()
            .chain(&config.zone)
            .fold(0, |bits, r| bits | phase_bit(r.phase))
    }

    /// Whether a response phase has an entry point (else [`response`](Self::response) gives
    /// the origin's response back as it is).
    pub fn runs_response_phases(&self) -> bool {
        let config = self.config;
        config
            .account
            .iter()
            .chain(&config.zone)
            .any(|r| r.phase.stage() == Stage::Response)
    }

    /// Whether the response phases' rules read the response's headers
    /// (`http.response.headers…`, `http.response.content_type.media_type`). When they do not,
    /// the headers given to [`response_from`](Self::response_from) only serve as the list its
    /// rewrites edit: a caller that replays [`Responded::header_edits`] on the origin's own
    /// header map may give none (what the rewrites do does not depend on them).
    pub fn reads_response_headers(&self) -> bool {
        // Without field masks every field is computed.
        self.config
            .fields
            .as_ref()
            .is_none_or(|m| m.response_headers)
    }

    /// Runs the response phases on `response` for the request the request phases produced;
    /// returns the response to send (the origin's with its header rewrites, or, when a rule
    /// answered, that answer) and appends the steps to `trace`.
    pub fn response<'r>(
        &self,
        outcome: &Outcome<'r>,
        response: Response<'r>,
        effects: &mut dyn Effects,
        trace: &mut Vec<Step>,
    ) -> Responded<'r>
    where
        'a: 'r,
    {
        self.response_from(outcome, Fields::default(), response, effects, trace)
    }

    /// [`response`](Self::response), starting from the field values the request phases
    /// ended with (`fields`, from [`request_keeping`](Self::request_keeping) of `outcome`).
    pub fn response_from<'r>(
        &self,
        outcome: &Outcome<'r>,
        fields: Fields<'a, 'r>,
        response: Response<'r>,
        effects: &mut dyn Effects,
        trace: &mut Vec<Step>,
    ) -> Responded<'r>
    where
        'a: 'r,
    {
        if !self.runs_response_phases() {
            // No response phase has an entry point: the origin's response as it is.
            return Responded {
                response,
                answered: false,
                header_edits: Vec::new(),
            };
        }
        let mut run = Run::new(
            *self,
            Cow::Borrowed(&outcome.request),
            outcome.raw_uri.clone(),
            Some(response),
            effects,
        );
        let mut ctx = fields.ctx;
        if let Some(ctx) = &mut ctx {
            run.set_response_fields(ctx);
            run.stale = fields.stale;
        }
        let present = self.phases_present();
        for &phase in self.config.order.response() {
            if run.answer.is_some() {
                break;
            }
            if present & phase_bit(phase) != 0 {
                run.phase(phase, &mut ctx, trace);
            }
        }
        match run.answer {
            Some(a) => Responded {
                response: Response {
                    status: a.status,
                    headers: a
                        .headers
                        .into_iter()
                        .map(|(k, v)| (k.into(), v.into()))
                        .collect(),
                    body: a.body,
                },
                answered: true,
                header_edits: Vec::new(),
            },
            None => Responded {
                response: run.response.unwrap_or(Response {
                    status: 502,
                    headers: Vec::new(),
                    body: Vec::new(),
                }),
                answered: false,
                header_edits: run.edits,
            },
        }
    }
}

impl<'p: 'r, 'e, 'o, 'r> Run<'p, 'e, 'o, 'r> {
    fn new(
        pipeline: Pipeline<'p>,
        request: Cow<'o, Request<'r>>,
        raw_uri: Cow<'r, str>,
        response: Option<Response<'r>>,
        effects: &'e mut dyn Effects,
    ) -> Self {
        Run {
            pipeline,
            effects,
            raw_uri,
            stale: Stale::default(),
            request,
            response,
            answer: None,
            route: Route::default(),
            config: Map::new(),
            cache: Map::new(),
            score: 0,
            skipped_phases: Vec::new(),
            skipped_rulesets: Vec::new(),
            skipped_rules: Vec::new(),
            pending: Pending::default(),
            edits: Vec::new(),
            ids: match &pipeline.config.fields {
                Some(masks) => RunIds::Config(&masks.ids),
                None => RunIds::Own(Box::new(Ids::new(pipeline.scheme))),
            },
        }
    }

    /// The fields `phase` and the later phases read (`None`: every field).
    fn mask(&self, phase: Phase) -> Option<&'p [bool]> {
        self.pipeline
            .config
            .fields
            .as_ref()
            .and_then(|m| m.get(phase))
    }

    /// Fills `ctx`, a new context, with the request's fields for `phase` (in place: a context
    /// is large to move).
    fn fill(&self, phase: Phase, ctx: &mut ExecutionContext<'p, 'r>) {
        ctx.use_lists(self.pipeline.config.lists.as_ref());
        if let Some(mask) = self.mask(phase) {
            ctx.narrow(mask);
        }
        let r = &*self.request;
        let _ = ctx.set_request(&r.method, r.https, &r.host, &r.uri, &r.version, &r.headers);
        let ids = &*self.ids;
        // raw.* keep the request as it arrived (set_request set them from the current URI).
        if self.raw_uri != r.uri {
            let raw = self.raw_uri.as_ref();
            let (path, query) = raw.split_once('?').unwrap_or((raw, ""));
            for (id, v) in ids.raw_uri.into_iter().zip([raw, path, query]) {
                set_opt(ctx, id, || Some(v.to_string()));
            }
            set_opt(ctx, ids.raw_full_uri, || {
                let scheme = if r.https { "https" } else { "http" };
                Some(format!("{scheme}://{}{raw}", r.host))
            });
        }
        set_opt(ctx, ids.ip_src, || Some(r.client_ip));
        let g = r.geo();
        let geo = [
            &g.country,
            &g.continent,
            &g.city,
            &g.region_code,
            &g.postal_code,
            &g.subdivision_1_iso_code,
            &g.subdivision_2_iso_code,
            &g.timezone,
        ];
        for (id, v) in ids.geo.into_iter().zip(geo) {
            set_opt(ctx, id, || v.clone());
        }
        set_opt(ctx, ids.lat, || g.latitude.map(|v| v.to_string()));
        set_opt(ctx, ids.lon, || g.longitude.map(|v| v.to_string()));
        set_opt(ctx, ids.european_union, || g.is_in_european_union);
        set_opt(ctx, ids.asnum, || g.asnum);
        set_opt(ctx, ids.bot_score, || r.bot_score);
        set_opt(ctx, ids.threat_score, || r.threat_score);
        set_opt(ctx, ids.verified_bot, || Some(r.verified_bot));
        set_opt(ctx, ids.client_bot, || Some(r.verified_bot));
        set_opt(ctx, ids.body_raw, || Some(r.body.clone()));
        set_opt(ctx, ids.body_size, || Some(r.body.len() as i64));
        self.set_response_fields(ctx);
    }

    /// The `http.response.*` fields, in the response phases.
    fn set_response_fields(&self, ctx: &mut ExecutionContext<'_, 'r>) {
        let Some(resp) = &self.response else {
            return;
        };
        set_opt(ctx, self.ids.response_code, || Some(i64::from(resp.status)));
        if !self.pipeline.reads_response_headers() {
            return; // none of the fields below is read (the field masks say so)
        }
        // Copied: the context outlives the response.
        let pairs = resp.headers.iter().map(|(k, v)| (k.clone(), v.clone()));
        let _ = ctx.set_headers("http.response.headers", pairs);
        set_opt(ctx, self.ids.media_type, || {
            let (_, ct) = resp
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))?;
            let media = ct.split(';').next().unwrap_or("").trim();
            Some(media.to_ascii_lowercase())
        });
    }

    /// `ctx` with the fields of what the rewrites since it was built (or last refreshed)
    /// changed set again.
    fn refresh(&mut self, ctx: &mut ExecutionContext<'p, 'r>) {
        let mut stale = std::mem::take(&mut self.stale);
        // Header fields no later rule reads (`ctx` is narrowed to what they read) keep their
        // old values: nothing sees them.
        stale.headers &= ctx.keeps_header_fields();
        if !stale.path && !stale.query && !stale.headers {
            return;
        }
        let r = &*self.request;
        if stale.query && !stale.path {
            let _ = ctx.update_query(r.https, &r.host, &r.uri);
        }
        let _ = ctx.update_request(
            r.https,
            &r.host,
            stale.path.then_some(&r.uri),
            stale.headers.then_some(r.headers.as_slice()),
        );
    }

    /// Runs a phase's rulesets. `context`: the context of the current field values, kept by
    /// the caller from phase to phase (not moved about: it is large); after a request
    /// phase's rewrites, only the fields of what changed are set again ([`Stale`]), before
    /// the next phase that runs rules; after a response phase's, it is built anew. Its
    /// values borrow the request's text where it is the request's as received.
    fn phase(
        &mut self,
        phase: Phase,
        context: &mut Option<ExecutionContext<'p, 'r>>,
        trace: &mut Vec<Step>,
    ) {
        if self.skipped_phases.contains(&phase) {
            return;
        }
        let config = self.pipeline.config;
        for entry in config.account.iter().chain(&config.zone) {
            if entry.phase != phase || self.answer.is_some() {
                continue;
            }
            if self.skipped_phases.contains(&phase) {
                break;
            }
            // Fields are fixed within a phase: one context serves every ruleset of it, and
            // the next phases too unless a phase's rewrites change the request.
            match context {
                Some(ctx) => {
                    // Narrowed to what this phase and the later ones read (a subset of what
                    // the context was built for): a refresh computes no more than that.
                    if let Some(mask) = self.mask(phase) {
                        ctx.narrow(mask);
                    }
                    self.refresh(ctx);
                }
                None => {
                    let ctx = context.insert(ExecutionContext::new(self.pipeline.scheme));
                    self.fill(phase, ctx);
                }
            }
            let Some(ctx) = context.as_ref() else {
                continue;
            };
            let step = self.ruleset(entry, ctx, None);
            if let Some(step) = step.filter(|s| s.matched || self.pipeline.options.all_rules) {
                trace.push(*step);
            }
        }
        self.apply_pending(phase, context);
    }

    /// Runs a ruleset's rules; `overrides` from an `execute`.
    fn ruleset(
        &mut self,
        ruleset: &'p Ruleset,
        ctx: &ExecutionContext<'_, '_>,
        overrides: Option<&Value>,
    ) -> Option<Box<Step>> {
        // No steps in lean mode (the proxy's): only the decisions. (Boxed: a step is large,
        // and the proxy's runs would move `None`s of its size about.)
        let full = !self.pipeline.options.lean;
        let mut step = full.then(|| {
            Box::new(Step {
                step_name: ruleset.id.clone(),
                r#type: "ruleset",
                name: Some(ruleset.name.clone()),
                kind: Some(ruleset.kind.clone()),
                description: Some(ruleset.description.clone()),
                expression: None,
                matched: false,
                action: None,
                action_parameters: None,
                phase: Some(ruleset.phase.name().to_string()),
                explanation: None,
                trace: Vec::new(),
            })
        });
        // Unless every rule is shown, only the rules that may match run: the others' filters
        // are false (the prefilter's guarantee), and no step shows them. (A ruleset of a few
        // rules runs them all: ruling them out would cost more.)
        let candidates = (!self.pipeline.options.all_rules && ruleset.prefilter.pays())
            .then(|| ruleset.prefilter.candidates(ctx));
        let mut next = 0;
        loop {
            // The next rule to run: the next candidate, when the prefilter ruled some out.
            let i = candidates.as_ref().map_or(next, |c| c.next_from(next));
            let Some(rule) = ruleset.rules.get(i) else {
                break;
            };
            next = i + 1;
            if self.answer.is_some() || self.skipped_rulesets.contains(&ruleset.id) {
                break;
            }
            let (enabled, action) = overridden(rule, overrides);
            if !enabled || self.skipped_rules.contains(&rule.id) {
                continue;
            }
            let mut matched = rule.filter.execute(ctx);
            if matched && rule.ratelimit.is_some() {
                matched = self.effects.rate_limited(rule, &self.request);
            }
            if !matched && !self.pipeline.options.all_rules {
                continue;
            }
            if !full {
                // Lean: the decision only (no step to make, nor to move about).
                if matched && self.act(rule, action, ctx, None) {
                    break;
                }
                continue;
            }
            let mut rule_step = full.then(|| Step {
                step_name: rule.id.clone(),
                r#type: "rule",
                name: None,
                kind: None,
                description: Some(rule.description.clone()),
                expression: Some(rule.expression.clone()),
                matched,
                action: Some(action.to_string()),
                action_parameters: rule.action_parameters.clone(),
                phase: None,
                explanation: self
                    .pipeline
                    .options
                    .explain
                    .then(|| rule.filter.explain(ctx).reasons()),
                trace: Vec::new(),
            });
            let stop = matched && self.act(rule, action, ctx, rule_step.as_mut());
            if let (Some(step), Some(rule_step)) = (&mut step, rule_step) {
                step.matched |= matched;
                step.trace.push(rule_step);
            }
            if stop {
                break;
            }
        }
        step
    }

    /// Applies a matched rule's action; true when the ruleset stops here.
    fn act(
        &mut self,
        rule: &'p Rule,
        action: &str,
        ctx: &ExecutionContext<'_, '_>,
        step: Option<&mut Step>,
    ) -> bool {
        let params = rule.action_parameters.as_ref().unwrap_or(&Value::Null);
        match action {
            "block" => {
                let r = &params["response"];
                let status = r["status_code"].as_u64().unwrap_or(403) as u16;
                let (content_type, body) = match r["content"].as_str() {
                    Some(c) => (
                        r["content_type"]
                            .as_str()
                            .unwrap_or("text/plain")
                            .to_string(),
                        c.as_bytes().to_vec(),
                    ),
                    None => (
                        "text/plain".to_string(),
                        format!("Sorry, you have been blocked (rule {})\n", rule.id).into_bytes(),
                    ),
                };
                self.answer = Some(Answer {
                    status,
                    headers: vec![("content-type".into(), content_type)],
                    body,
                    action: "block".into(),
                });
                true
            }
            "challenge" | "js_challenge" | "managed_challenge" => {
                if self.effects.challenge(action) {
                    false
                } else {
                    self.answer = Some(Answer {
                        status: 403,
                        headers: vec![("content-type".into(), "text/html".into())],
                        body: format!(
                            "<!doctype html><title>Just a moment…</title><p>{action} required</p>\n"
                        )
                        .into_bytes(),
                        action: action.into(),
                    });
                    true
                }
            }
            "redirect" => {
                let v = &params["from_value"];
                let target = match self.value(rule, "/from_value/target_url/expression", ctx) {
                    Some(t) => Some(t),
                    None => v["target_url"]["value"].as_str().map(str::to_string),
                };
                let Some(mut target) = target else {
                    return false;
                };
                if v["preserve_query_string"].as_bool() == Some(true)
                    && !self.request.query().is_empty()
                {
                    target.push(if target.contains('?') { '&' } else { '?' });
                    target.push_str(self.request.query());
                }
                self.answer = Some(Answer {
                    status: v["status_code"].as_u64().unwrap_or(301) as u16,
                    headers: vec![("location".into(), target)],
                    body: Vec::new(),
                    action: "redirect".into(),
                });
                true
            }
            "serve_error" => {
                // Without status_code the response keeps its status (Cloudflare: "if provided,
                // this value will override the current response status code").
                let status = params["status_code"].as_u64().map_or_else(
                    || self.response.as_ref().map_or(500, |r| r.status),
                    |s| s as u16,
                );
                self.answer = Some(Answer {
                    status,
                    headers: vec![(
                        "content-type".into(),
                        params["content_type"]
                            .as_str()
                            .unwrap_or("text/html")
                            .to_string(),
                    )],
                    body: params["content"].as_str().unwrap_or("").as_bytes().to_vec(),
                    action: "serve_error".into(),
                });
                true
            }
            "rewrite" => {
                if let Some(v) = rule.uri_path.as_ref().and_then(|s| s.get(rule, ctx)) {
                    self.pending.path = Some(v);
                }
                if let Some(v) = rule.uri_query.as_ref().and_then(|s| s.get(rule, ctx)) {
                    self.pending.query = Some(v);
                }
                for op in &rule.header_ops {
                    let value = op.source.as_ref().and_then(|s| s.get(rule, ctx));
                    self.pending
                        .headers
                        .push((op.name.as_str(), op.operation, value));
                }
                false
            }
            "route" => {
                if let Some(h) = params["host_header"].as_str() {
                    self.route.host_header = Some(h.to_string());
                }
                if let Some(h) = params["origin"]["host"].as_str() {
                    self.route.origin_host = Some(h.to_string());
                }
                if let Some(p) = params["origin"]["port"].as_u64() {
                    self.route.origin_port = u16::try_from(p).ok();
                }
                if let Some(s) = params["sni"]["value"].as_str() {
                    self.route.sni = Some(s.to_string());
                }
                false
            }
            "set_config" | "set_cache_settings" => {
                let target = if action == "set_config" {
                    &mut self.config
                } else {
                    &mut self.cache
                };
                if let Some(map) = params.as_object() {
                    for (k, v) in map {
                        target.insert(k.clone(), v.clone());
                    }
                }
                false
            }
            "score" => {
                self.score += params["increment"].as_i64().unwrap_or(0);
                false
            }
            "log" | "log_custom_field" | "compress_response" => {
                self.effects.log(rule);
                false
            }
            "skip" => {
                if params["ruleset"] == "current" {
                    return true;
                }
                for p in params["phases"].as_array().into_iter().flatten() {
                    if let Some(phase) = p.as_str().and_then(Phase::from_name)
                        && !self.skipped_phases.contains(&phase)
                    {
                        self.skipped_phases.push(phase);
                    }
                }
                for id in params["rulesets"].as_array().into_iter().flatten() {
                    if let Some(id) = id.as_str() {
                        self.skipped_rulesets.push(id.to_string());
                    }
                }
                if let Some(rules) = params["rules"].as_object() {
                    for ids in rules.values() {
                        for id in ids.as_array().into_iter().flatten() {
                            if let Some(id) = id.as_str() {
                                self.skipped_rules.push(id.to_string());
                            }
                        }
                    }
                }
                false
            }
            "execute" => {
                let id = text(params, "id");
                if self.skipped_rulesets.contains(&id) {
                    return false;
                }
                if let Some(target) = self.pipeline.config.custom.get(&id) {
                    let nested = self.ruleset(target, ctx, params.get("overrides"));
                    if let (Some(step), Some(nested)) = (step, nested) {
                        step.trace.push(*nested);
                    }
                }
                self.answer.is_some()
            }
            _ => false,
        }
    }

    /// The page rule that applies, as one step.
    fn page_rules(&mut self, trace: &mut Vec<Step>) {
        let rules = &self.pipeline.config.page_rules;
        if rules.is_empty() {
            return;
        }
        let Ok(url) = RequestUrl::parse(&self.request.url()) else {
            return;
        };
        let Some(applied) = applicable(rules, &url) else {
            return;
        };
        for action in &applied.actions {
            match action {
                Resolved::Redirect { location, status } if self.answer.is_none() => {
                    self.answer = Some(Answer {
                        status: *status,
                        headers: vec![("location".into(), location.clone())],
                        body: Vec::new(),
                        action: "page_rule".into(),
                    });
                }
                Resolved::Setting { id, value } => {
                    if id == "host_header_override" && self.route.host_header.is_none() {
                        self.route.host_header =
                            value.as_ref().and_then(Value::as_str).map(str::to_string);
                    }
                    self.config
                        .entry(id.clone())
                        .or_insert_with(|| value.clone().unwrap_or(Value::Bool(true)));
                }
                _ => {}
            }
        }
        if self.pipeline.options.lean {
            return;
        }
        trace.push(Step {
            step_name: applied.rule.id.clone(),
            r#type: "page_rule",
            name: None,
            kind: None,
            description: Some(applied.rule.spec.target.to_string()),
            expression: None,
            matched: true,
            action: None,
            action_parameters: Some(json!({"actions": applied.rule.spec.actions_json()})),
            phase: None,
            explanation: None,
            trace: Vec::new(),
        });
    }

    fn value(&self, rule: &Rule, pointer: &str, ctx: &ExecutionContext<'_, '_>) -> Option<String> {
        rule.values
            .iter()
            .find(|(p, _)| p == pointer)
            .and_then(|(_, e)| e.evaluate(ctx))
    }

    /// Applies a phase's rewrites to the request (or, in response phases, to the response).
    fn apply_pending(&mut self, phase: Phase, context: &mut Option<ExecutionContext<'p, 'r>>) {
        // Most phases rewrite nothing: looked at in place (taking the struct to look at it,
        // every phase, was a measurable part of a request).
        let p = &self.pending;
        if p.path.is_none() && p.query.is_none() && p.headers.is_empty() {
            return;
        }
        let (path, query) = (self.pending.path.take(), self.pending.query.take());
        if phase.stage() == Stage::Request {
            self.stale.path |= path.is_some();
            self.stale.query |= query.is_some();
            self.stale.headers |= !self.pending.headers.is_empty();
        } else {
            *context = None;
        }
        if path.is_some() || query.is_some() {
            let path = path.as_deref().unwrap_or_else(|| self.request.path());
            let query = query.as_deref().unwrap_or_else(|| self.request.query());
            let mut uri = String::with_capacity(path.len() + 1 + query.len());
            uri.push_str(path);
            if !query.is_empty() {
                uri.push('?');
                uri.push_str(query);
            }
            self.request.to_mut().uri = Cow::Owned(uri);
        }
        for (name, op, value) in self.pending.headers.drain(..) {
            let edit = match (phase.stage(), &mut self.response) {
                (Stage::Response, Some(r)) => edit_headers(&mut r.headers, name, op, value),
                _ => edit_headers(&mut self.request.to_mut().headers, name, op, value),
            };
            self.edits.extend(edit);
        }
    }
}

/// Applies a header operation to a list of headers (the request's or the response's);
/// returns it as an edit to replay, `None` when it does nothing (a value missing). The name
/// (and a value the rule gives as it is) is the rule's text: borrowed by a list that can
/// (the request's), copied into one that cannot (the response's).
fn edit_headers<'r, T: From<Cow<'r, str>> + AsRef<str>>(
    headers: &mut Vec<(T, T)>,
    name: &'r str,
    op: Operation,
    value: Option<Cow<'r, str>>,
) -> Option<HeaderEdit<'r>> {
    let named = |k: &T| k.as_ref().eq_ignore_ascii_case(name);
    let name = Cow::Borrowed(name);
    Some(match (op, value) {
        (Operation::Remove, _) => {
            headers.retain(|(k, _)| !named(k));
            HeaderEdit::Remove(name)
        }
        (Operation::Set, Some(v)) => {
            headers.retain(|(k, _)| !named(k));
            headers.push((name.clone().into(), v.clone().into()));
            HeaderEdit::Set(name, v)
        }
        (Operation::Add, Some(v)) => {
            headers.push((name.clone().into(), v.clone().into()));
            HeaderEdit::Add(name, v)
        }
        _ => return None,
    })
}

/// A rule's `enabled` and `action` after an `execute`'s overrides (ruleset-wide, then per rule).
fn overridden<'r>(rule: &'r Rule, overrides: Option<&'r Value>) -> (bool, &'r str) {
    let mut enabled = rule.enabled;
    let mut action = rule.action.as_str();
    if let Some(o) = overrides {
        if let Some(e) = o["enabled"].as_bool() {
            enabled = e;
        }
        if let Some(a) = o["action"].as_str() {
            action = a;
        }
        for r in o["rules"].as_array().into_iter().flatten() {
            if r["id"].as_str() == Some(rule.id.as_str()) {
                if let Some(e) = r["enabled"].as_bool() {
                    enabled = e;
                }
                if let Some(a) = r["action"].as_str() {
                    action = a;
                }
            }
        }
    }
    (enabled, action)
}
