//! The request pipeline against configurations made the way the API makes them (checked, then
//! compiled): phase order, account before zone, terminating and accumulating actions, execute
//! with overrides, skip, fields fixed within a phase, raw fields, response phases, the trace.

use edgetrace_edge::actions::Checker;
use edgetrace_edge::phases::PhaseOrder;
use edgetrace_edge::pipeline::{
    Config, Effects, Geo, HeaderEdit, Outcome, Pipeline, Request, Response, Rule, Ruleset,
    RunOptions, Step,
};
use edgetrace_edge::ruleset::{Level, check_ruleset};
use edgetrace_rules::{MemoryLists, Scheme};
use serde_json::{Value, json};
use std::collections::HashMap;

fn compile(scheme: &Scheme, id: &str, kind: &str, phase: &str, rules: Value) -> Ruleset {
    let lists = MemoryLists::new();
    let checker = Checker {
        scheme,
        lists: &lists,
    };
    let level = if kind == "zone" {
        Level::Zone
    } else {
        Level::Account
    };
    let checked = check_ruleset(
        &json!({"name": id, "kind": kind, "phase": phase, "rules": rules}),
        level,
        None,
        &checker,
        "2026-11-21T00:00:00Z",
    )
    .unwrap_or_else(|e| panic!("{id}: {e:?}"));
    let stored = json!({"id": id, "name": id, "kind": kind, "phase": phase, "description": "", "rules": checked.rules});
    Ruleset::compile(&stored, scheme, &lists).unwrap()
}

fn request(uri: &str) -> Request<'_> {
    Request {
        method: "GET".into(),
        https: true,
        host: "shop.test".into(),
        uri: uri.into(),
        version: "HTTP/1.1".into(),
        headers: vec![("user-agent".into(), "curl/8".into())],
        body: Vec::new(),
        client_ip: "198.51.100.7".parse().unwrap(),
        geo: Some(Box::new(Geo {
            country: Some("DE".into()),
            ..Geo::default()
        })),
        bot_score: Some(90),
        verified_bot: false,
        threat_score: None,
    }
}

#[derive(Default)]
struct Recorder {
    pass_challenges: bool,
    over_limit: bool,
    challenges: Vec<String>,
    logged: Vec<String>,
}

impl Effects for Recorder {
    fn challenge(&mut self, kind: &str) -> bool {
        self.challenges.push(kind.to_string());
        self.pass_challenges
    }
    fn rate_limited(&mut self, _rule: &Rule, _request: &Request) -> bool {
        self.over_limit
    }
    fn log(&mut self, rule: &Rule) {
        self.logged.push(rule.r#ref.clone());
    }
}

fn config(account: Vec<Ruleset>, zone: Vec<Ruleset>, custom: Vec<Ruleset>) -> Config {
    Config {
        order: PhaseOrder::default(),
        account,
        zone,
        custom: custom
            .into_iter()
            .map(|r| (r.id.clone(), r))
            .collect::<HashMap<_, _>>(),
        lists: Box::new(MemoryLists::new()),
        page_rules: Vec::new(),
        fields: None,
    }
}

fn run<'a>(
    config: &'a Config,
    scheme: &'a Scheme,
    req: Request<'static>,
    effects: &mut Recorder,
    all: bool,
) -> Outcome<'a> {
    Pipeline {
        scheme,
        config,
        options: RunOptions {
            all_rules: all,
            explain: true,
            lean: false,
        },
    }
    .request(req, effects)
}

/// The pipeline over `config` with the default options (the Request Trace API's), for tests
/// that run the response phases too.
fn pipeline<'a>(scheme: &'a Scheme, config: &'a Config) -> Pipeline<'a> {
    Pipeline {
        scheme,
        config,
        options: RunOptions::default(),
    }
}

/// (step_name, matched) of a trace, depth first.
fn flat(trace: &[Step]) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for s in trace {
        out.push((s.step_name.clone(), s.matched));
        out.extend(flat(&s.trace));
    }
    out
}

#[test]
fn block_stops_everything_and_the_trace_says_where() {
    let scheme = Scheme::cloudflare();
    let zone = compile(
        &scheme,
        "zone-custom",
        "zone",
        "http_request_firewall_custom",
        json!([
            {"ref": "admin", "expression": "starts_with(http.request.uri.path, \"/admin\")", "action": "block",
             "action_parameters": {"response": {"status_code": 451, "content": "{\"no\":1}", "content_type": "application/json"}}},
            {"ref": "never", "expression": "true", "action": "log"},
        ]),
    );
    let late = compile(
        &scheme,
        "zone-headers",
        "zone",
        "http_request_late_transform",
        json!([{"ref": "hdr", "expression": "true", "action": "rewrite",
                "action_parameters": {"headers": {"x-late": {"operation": "set", "value": "1"}}}}]),
    );
    let cfg = config(vec![], vec![zone, late], vec![]);
    let mut fx = Recorder::default();
    let out = run(&cfg, &scheme, request("/admin/users"), &mut fx, false);
    let answer = out.answer.expect("blocked");
    assert_eq!(answer.status, 451);
    assert_eq!(answer.body, b"{\"no\":1}");
    assert_eq!(
        answer.headers,
        [("content-type".to_string(), "application/json".to_string())]
    );
    assert!(fx.logged.is_empty(), "nothing after the block runs");
    assert!(
        !out.request.headers.iter().any(|(k, _)| k == "x-late"),
        "later phases do not run"
    );
    assert_eq!(out.trace.len(), 1);
    assert_eq!(out.trace[0].r#type, "ruleset");
    assert_eq!(out.trace[0].trace.len(), 1);
    assert_eq!(out.trace[0].trace[0].action.as_deref(), Some("block"));

    // Not matched: the origin gets the request with the late header.
    let out = run(&cfg, &scheme, request("/shop"), &mut fx, true);
    assert!(out.answer.is_none());
    assert!(out.request.headers.contains(&("x-late".into(), "1".into())));
    assert_eq!(
        out.header_edits,
        [HeaderEdit::Set("x-late".into(), "1".into())],
        "what the proxy replays"
    );
    assert_eq!(fx.logged, ["never"]);
    let admin = &out.trace[0].trace[0];
    assert!(!admin.matched);
    let why = admin.explanation.as_ref().expect("explained").join("; ");
    assert!(
        why.contains("/shop"),
        "the explanation shows the value seen: {why}"
    );
}

#[test]
fn account_runs_before_zone_and_execute_applies_overrides() {
    let scheme = Scheme::cloudflare();
    let custom = compile(
        &scheme,
        "c0ffee00c0ffee00c0ffee00c0ffee00",
        "custom",
        "http_request_firewall_custom",
        json!([{"ref": "bots", "expression": "http.user_agent contains \"curl\"", "action": "block"}]),
    );
    let root = compile(
        &scheme,
        "root",
        "root",
        "http_request_firewall_custom",
        json!([{"ref": "exec", "expression": "true", "action": "execute",
                "action_parameters": {"id": "c0ffee00c0ffee00c0ffee00c0ffee00", "overrides": {"action": "log"}}}]),
    );
    let zone = compile(
        &scheme,
        "zone",
        "zone",
        "http_request_firewall_custom",
        json!([{"ref": "z", "expression": "ip.src.country eq \"DE\"", "action": "managed_challenge"}]),
    );
    let cfg = config(vec![root], vec![zone], vec![custom]);
    let mut fx = Recorder {
        pass_challenges: true,
        ..Recorder::default()
    };
    let out = run(&cfg, &scheme, request("/"), &mut fx, false);
    assert!(
        out.answer.is_none(),
        "the override turned block into log; the challenge was passed"
    );
    assert_eq!(fx.logged, ["bots"]);
    assert_eq!(fx.challenges, ["managed_challenge"]);
    let names: Vec<String> = flat(&out.trace).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names.len(), 6, "{names:?}");
    assert_eq!(names[0], "root", "account first");
    assert_eq!(
        names[2], "c0ffee00c0ffee00c0ffee00c0ffee00",
        "nested under the execute rule"
    );
    assert_eq!(names[4], "zone");

    // A challenge not passed answers 403.
    let mut fx = Recorder::default();
    let out = run(&cfg, &scheme, request("/"), &mut fx, false);
    assert_eq!(out.answer.unwrap().status, 403);
}

#[test]
fn rewrites_apply_between_phases_and_raw_fields_never_change() {
    let scheme = Scheme::cloudflare();
    let transform = compile(
        &scheme,
        "t",
        "zone",
        "http_request_transform",
        json!([
            {"ref": "rw", "expression": "http.request.uri.path eq \"/old\"", "action": "rewrite",
             "action_parameters": {"uri": {"path": {"value": "/new"}, "query": {"expression": "concat(\"from=\", http.request.uri.path)"}}}},
            // Same phase: still sees /old.
            {"ref": "same", "expression": "http.request.uri.path eq \"/old\"", "action": "rewrite",
             "action_parameters": {"uri": {"path": {"value": "/newer"}}}},
        ]),
    );
    let custom = compile(
        &scheme,
        "f",
        "zone",
        "http_request_firewall_custom",
        json!([
            {"ref": "seen-new", "expression": "http.request.uri.path eq \"/newer\" and raw.http.request.uri.path eq \"/old\"", "action": "log"},
        ]),
    );
    let origin = compile(
        &scheme,
        "o",
        "zone",
        "http_request_origin",
        json!([
            {"ref": "r1", "expression": "true", "action": "route", "action_parameters": {"origin": {"port": 8081}, "host_header": "a.test"}},
            {"ref": "r2", "expression": "true", "action": "route", "action_parameters": {"origin": {"port": 8082}}},
        ]),
    );
    let cfg = config(vec![], vec![transform, custom, origin], vec![]);
    let mut fx = Recorder::default();
    let out = run(&cfg, &scheme, request("/old?x=1"), &mut fx, false);
    assert_eq!(
        out.request.uri, "/newer?from=/old",
        "last match wins; values from the phase's fields"
    );
    assert_eq!(fx.logged, ["seen-new"]);
    assert_eq!(out.route.origin_port, Some(8082));
    assert_eq!(out.route.host_header.as_deref(), Some("a.test"));
}

/// A rewrite's header name, and its value when the rule gives it as it is, are the rule's
/// own text in the request's list, the response's and the edits the proxy replays (nothing
/// copied); a computed value is the request's own.
#[test]
fn header_rewrites_borrow_the_rules_text() {
    use std::borrow::Cow;
    let scheme = Scheme::cloudflare();
    let late = compile(
        &scheme,
        "l",
        "zone",
        "http_request_late_transform",
        json!([{"ref": "h", "expression": "true", "action": "rewrite",
                "action_parameters": {"headers": {
                    "x-literal": {"operation": "set", "value": "edge"},
                    "x-computed": {"operation": "add", "expression": "lower(http.request.method)"}}}}]),
    );
    let response = compile(
        &scheme,
        "r",
        "zone",
        "http_response_headers_transform",
        json!([{"ref": "s", "expression": "true", "action": "rewrite",
                "action_parameters": {"headers": {"x-served": {"operation": "set", "value": "by-edge"}}}}]),
    );
    let cfg = config(vec![], vec![late, response], vec![]);
    let pipeline = pipeline(&scheme, &cfg);
    let mut fx = Recorder::default();
    let out = pipeline.request(request("/"), &mut fx);
    // Borrowed: the rule's text (the request's own are the one header of `request`).
    let is_borrowed = |c: &Cow<'_, str>| matches!(c, Cow::Borrowed(_));
    let literal = out
        .request
        .headers
        .iter()
        .find(|(k, _)| k == "x-literal")
        .expect("x-literal set");
    assert!(
        is_borrowed(&literal.0) && is_borrowed(&literal.1),
        "{literal:?}"
    );
    let computed = out
        .request
        .headers
        .iter()
        .find(|(k, _)| k == "x-computed")
        .expect("x-computed added");
    assert!(is_borrowed(&computed.0), "{computed:?}");
    assert_eq!(computed.1, "get");
    assert!(
        !is_borrowed(&computed.1),
        "a computed value is the request's own"
    );
    match &out.header_edits[..] {
        // (The object's keys in order: serde_json sorts them.)
        [HeaderEdit::Add(n2, v2), HeaderEdit::Set(n1, v1)] => {
            assert_eq!((n1.as_ref(), v1.as_ref()), ("x-literal", "edge"));
            assert_eq!((n2.as_ref(), v2.as_ref()), ("x-computed", "get"));
            assert!(is_borrowed(n1) && is_borrowed(v1) && is_borrowed(n2));
        }
        other => panic!("edits: {other:?}"),
    }
    let responded = pipeline.response(
        &out,
        Response {
            status: 200,
            headers: vec![("server".into(), "origin".into())],
            body: Vec::new(),
        },
        &mut fx,
        &mut Vec::new(),
    );
    let served = &responded.response.headers[1];
    assert_eq!(
        (served.0.as_ref(), served.1.as_ref()),
        ("x-served", "by-edge")
    );
    assert!(is_borrowed(&served.0) && is_borrowed(&served.1));
    assert!(matches!(
        &responded.header_edits[..],
        [HeaderEdit::Set(
            Cow::Borrowed("x-served"),
            Cow::Borrowed("by-edge")
        )]
    ));
}

#[test]
fn dynamic_redirects_and_skips() {
    let scheme = Scheme::cloudflare();
    let redirect = compile(
        &scheme,
        "d",
        "zone",
        "http_request_dynamic_redirect",
        json!([{"ref": "to-https", "expression": "http.request.uri.path eq \"/go\"", "action": "redirect",
                "action_parameters": {"from_value": {"target_url": {"expression": "concat(\"https://www.\", http.host, \"/went\")"},
                    "status_code": 308, "preserve_query_string": true}}}]),
    );
    let custom = compile(
        &scheme,
        "f",
        "zone",
        "http_request_firewall_custom",
        json!([
            {"ref": "skip", "expression": "ip.src in {198.51.100.0/24}", "action": "skip", "action_parameters": {"phases": ["http_ratelimit"]}},
        ]),
    );
    let limit = compile(
        &scheme,
        "rl",
        "zone",
        "http_ratelimit",
        json!([{"ref": "limit", "expression": "true", "action": "block",
                "ratelimit": {"characteristics": ["ip.src", "cf.colo.id"], "period": 60, "requests_per_period": 1}}]),
    );
    let cfg = config(vec![], vec![redirect, custom, limit], vec![]);
    let mut fx = Recorder {
        over_limit: true,
        ..Recorder::default()
    };
    let out = run(&cfg, &scheme, request("/go?a=1"), &mut fx, false);
    let answer = out.answer.unwrap();
    assert_eq!(answer.status, 308);
    assert_eq!(
        answer.headers,
        [(
            "location".to_string(),
            "https://www.shop.test/went?a=1".to_string()
        )]
    );

    // The client is in the skipped range: the rate limit does not run.
    let out = run(&cfg, &scheme, request("/shop"), &mut fx, false);
    assert!(out.answer.is_none());
    let mut outside = request("/shop");
    outside.client_ip = "203.0.113.1".parse().unwrap();
    let out = run(&cfg, &scheme, outside, &mut fx, false);
    assert_eq!(out.answer.unwrap().status, 403, "over the limit: blocked");
}

#[test]
fn response_phases_rewrite_headers_and_serve_errors() {
    let scheme = Scheme::cloudflare();
    let headers = compile(
        &scheme,
        "h",
        "zone",
        "http_response_headers_transform",
        json!([{"ref": "h", "expression": "http.response.code eq 200", "action": "rewrite",
                "action_parameters": {"headers": {"server": {"operation": "remove"}, "x-served": {"operation": "set", "value": "edgetrace"}}}}]),
    );
    let errors = compile(
        &scheme,
        "e",
        "zone",
        "http_custom_errors",
        json!([{"ref": "e", "expression": "http.response.code ge 500", "action": "serve_error",
                "action_parameters": {"content": "<h1>down</h1>", "content_type": "text/html", "status_code": 503}}]),
    );
    let cfg = config(vec![], vec![headers, errors], vec![]);
    let pipeline = pipeline(&scheme, &cfg);
    let mut fx = Recorder::default();
    let out = pipeline.request(request("/"), &mut fx);
    let mut trace = Vec::new();
    let ok = pipeline.response(
        &out,
        Response {
            status: 200,
            headers: vec![
                ("server".into(), "origin".into()),
                ("content-type".into(), "text/plain".into()),
            ],
            body: b"hi".to_vec(),
        },
        &mut fx,
        &mut trace,
    );
    assert_eq!(ok.response.status, 200);
    assert!(!ok.answered, "the origin's response, rewritten");
    assert_eq!(
        ok.response.headers,
        [
            ("content-type".into(), "text/plain".into()),
            ("x-served".into(), "edgetrace".into())
        ]
    );
    // What the proxy replays on the origin's header map.
    assert_eq!(
        ok.header_edits,
        [
            HeaderEdit::Remove("server".into()),
            HeaderEdit::Set("x-served".into(), "edgetrace".into())
        ]
    );
    let failed = pipeline.response(
        &out,
        Response {
            status: 502,
            headers: Vec::new(),
            body: Vec::new(),
        },
        &mut fx,
        &mut trace,
    );
    assert_eq!(failed.response.status, 503);
    assert!(failed.answered, "serve_error answered");
    assert_eq!(failed.response.body, b"<h1>down</h1>");
    assert_eq!(trace.len(), 2, "one matched ruleset per response");
}

#[test]
fn disabled_rules_are_not_shown_and_do_not_run() {
    let scheme = Scheme::cloudflare();
    let zone = compile(
        &scheme,
        "z",
        "zone",
        "http_request_firewall_custom",
        json!([
            {"ref": "off", "expression": "true", "action": "block", "enabled": false},
            {"ref": "miss", "expression": "http.host eq \"other.test\"", "action": "block"},
        ]),
    );
    let cfg = config(vec![], vec![zone], vec![]);
    let mut fx = Recorder::default();
    let out = run(&cfg, &scheme, request("/"), &mut fx, true);
    assert!(out.answer.is_none());
    let steps = flat(&out.trace);
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert!(!steps[1].1);
    let out = run(&cfg, &scheme, request("/"), &mut fx, false);
    assert!(
        out.trace.is_empty(),
        "without all_rules, unmatched rulesets are left out"
    );
}

#[test]
fn response_phases_see_the_raw_fields_of_the_request_as_it_arrived() {
    let scheme = Scheme::cloudflare();
    let transform = compile(
        &scheme,
        "t",
        "zone",
        "http_request_transform",
        json!([{"ref": "rw", "expression": "true", "action": "rewrite",
                "action_parameters": {"uri": {"path": {"value": "/new"}, "query": {"value": "y=2"}}}}]),
    );
    let headers = compile(
        &scheme,
        "h",
        "zone",
        "http_response_headers_transform",
        json!([{"ref": "raw", "expression": "raw.http.request.uri eq \"/old?x=1\" and raw.http.request.uri.path eq \"/old\" and raw.http.request.uri.query eq \"x=1\" and raw.http.request.full_uri eq \"https://shop.test/old?x=1\" and http.request.uri eq \"/new?y=2\"",
                "action": "rewrite",
                "action_parameters": {"headers": {"x-raw": {"operation": "set", "expression": "raw.http.request.uri.path"}}}}]),
    );
    let cfg = config(vec![], vec![transform, headers], vec![]);
    let pipeline = pipeline(&scheme, &cfg);
    let mut fx = Recorder::default();
    let out = pipeline.request(request("/old?x=1"), &mut fx);
    assert_eq!(out.request.uri, "/new?y=2");
    let mut trace = Vec::new();
    let response = pipeline
        .response(
            &out,
            Response {
                status: 200,
                headers: Vec::new(),
                body: Vec::new(),
            },
            &mut fx,
            &mut trace,
        )
        .response;
    assert_eq!(
        response.headers,
        [("x-raw".into(), "/old".into())],
        "{trace:?}"
    );
}

#[test]
fn rules_the_prefilter_rules_out_are_exactly_rules_that_do_not_match() {
    // Without all_rules the pipeline runs only the prefilter's candidates; with all_rules it
    // runs every rule. The rules that match (and what they do) must be the same.
    let scheme = Scheme::cloudflare();
    let mut rules = Vec::new();
    for i in 0..40 {
        let expression = match i % 8 {
            0 => format!("http.request.uri.path eq \"/admin/{i}\""),
            1 => format!("starts_with(http.request.uri.path, \"/wp-{i}/\")"),
            2 => format!("http.request.uri.path matches \"^/api/v[0-9]+/{i}\""),
            3 => format!("lower(http.user_agent) contains \"bot{i}\""),
            4 => format!("any(http.request.headers[\"x-attack-{i}\"][*] eq \"1\")"),
            5 => format!("http.request.uri.query contains \"q={i}\" or http.host eq \"x{i}.test\""),
            6 => format!("not http.request.uri.path eq \"/admin/{i}\""),
            _ => format!("ip.src in {{198.51.100.{i}}}"),
        };
        rules.push(json!({"ref": format!("r{i}"), "expression": expression, "action": "log"}));
    }
    let zone = compile(
        &scheme,
        "z",
        "zone",
        "http_request_firewall_custom",
        Value::Array(rules),
    );
    let cfg = config(vec![], vec![zone], vec![]);
    let requests = [
        request("/"),
        request("/admin/8"),
        request("/wp-9/x"),
        request("/api/v2/10/x?q=13"),
        request("/api/vx/10"),
        Request {
            headers: vec![
                ("user-agent".into(), "Mozilla BOT11".into()),
                ("x-attack-12".into(), "1".into()),
                ("host".into(), "x21.test".into()),
            ],
            host: "x21.test".into(),
            ..request("/?q=5")
        },
        Request {
            client_ip: "198.51.100.7".parse().unwrap(),
            ..request("/admin/0")
        },
    ];
    let mut matched_any = 0;
    for req in requests {
        let uri = req.uri.clone();
        let mut fx_all = Recorder::default();
        let all = run(&cfg, &scheme, req.clone(), &mut fx_all, true);
        let mut fx = Recorder::default();
        let lean = run(&cfg, &scheme, req, &mut fx, false);
        let matched_all: Vec<(String, bool)> =
            flat(&all.trace).into_iter().filter(|s| s.1).collect();
        assert_eq!(flat(&lean.trace), matched_all, "{uri}");
        assert_eq!(fx.logged, fx_all.logged, "{uri}");
        matched_any += fx.logged.len();
    }
    assert!(
        matched_any > 40,
        "the requests match rules of every kind: {matched_any}"
    );
}

/// The proxy runs the response phases on the field values the request phases ended with
/// (`request_keeping`, `response_from`); a trace of the same request built anew would see
/// the same values: the request as rewritten (here by the last request phase, whose rewrite
/// no later request phase has read yet), the `raw.*` fields as it arrived, and fields only
/// the response phases read (the field masks must include them in the request phases).
#[test]
fn response_phases_see_the_same_fields_from_kept_values_as_from_new_ones() {
    let scheme = Scheme::cloudflare();
    let transform = compile(
        &scheme,
        "t",
        "zone",
        "http_request_transform",
        json!([{"ref": "rw", "expression": "http.request.uri.path eq \"/old\"", "action": "rewrite",
                "action_parameters": {"uri": {"path": {"value": "/new"}}}}]),
    );
    let late = compile(
        &scheme,
        "l",
        "zone",
        "http_request_late_transform",
        json!([{"ref": "late", "expression": "true", "action": "rewrite",
                "action_parameters": {"headers": {"x-late": {"operation": "set", "value": "1"}}}}]),
    );
    let headers = compile(
        &scheme,
        "h",
        "zone",
        "http_response_headers_transform",
        json!([{"ref": "seen", "expression": "any(http.request.headers[\"x-late\"][*] eq \"1\") and raw.http.request.uri.path eq \"/old\" and http.request.uri.path eq \"/new\" and http.cookie contains \"id=\" and http.response.code eq 201",
                "action": "rewrite",
                "action_parameters": {"headers": {"x-seen": {"operation": "set", "expression": "http.request.uri.path"}}}}]),
    );
    let mut cfg = config(vec![], vec![transform, late, headers], vec![]);
    cfg.fields = Some(cfg.field_masks(&scheme));
    let pipeline = pipeline(&scheme, &cfg);
    let origin = || Response {
        status: 201,
        headers: vec![("server".into(), "origin".into())],
        body: Vec::new(),
    };
    let mut req = request("/old");
    req.headers.push(("cookie".into(), "id=7".into()));
    let mut fx = Recorder::default();
    let (out, fields) = pipeline.request_keeping(req.clone(), &mut fx);
    let kept = pipeline.response_from(&out, fields, origin(), &mut fx, &mut Vec::new());
    let fresh = pipeline.response(
        &pipeline.request(req, &mut fx),
        origin(),
        &mut fx,
        &mut Vec::new(),
    );
    assert_eq!(
        fresh.response.headers,
        [
            ("server".into(), "origin".into()),
            ("x-seen".into(), "/new".into())
        ]
    );
    assert_eq!(kept, fresh);
    // No response rule reads the response's headers: the proxy may leave them out.
    assert!(!pipeline.reads_response_headers());
}

/// Whether the response phases read the response's headers, by the field masks: the proxy
/// hands the origin's headers to the pipeline only then.
#[test]
fn the_pipeline_says_whether_response_rules_read_response_headers() {
    let scheme = Scheme::cloudflare();
    let reads = |expression: &str, value: &str| {
        let rules = compile(
            &scheme,
            "h",
            "zone",
            "http_response_headers_transform",
            json!([{"ref": "r", "expression": expression, "action": "rewrite",
                    "action_parameters": {"headers": {"x-a": {"operation": "set", "expression": value}}}}]),
        );
        let mut cfg = config(vec![], vec![rules], vec![]);
        cfg.fields = Some(cfg.field_masks(&scheme));
        pipeline(&scheme, &cfg).reads_response_headers()
    };
    assert!(!reads("http.response.code eq 200", "http.request.uri.path"));
    assert!(reads(
        "any(http.response.headers[\"server\"][*] eq \"x\")",
        "http.request.uri.path"
    ));
    assert!(reads(
        "http.response.content_type.media_type eq \"text/html\"",
        "http.request.uri.path"
    ));
    assert!(reads(
        "true",
        "concat(\"was:\", http.response.headers[\"server\"][0])"
    ));
    assert!(reads("len(http.response.headers.names) gt 3", "\"x\""));
}
