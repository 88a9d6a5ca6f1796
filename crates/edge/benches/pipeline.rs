//! The pipeline's own cost per request, without any network: the request phases and the
//! response phases for `bench/proxy.sh`'s request and zone (95 firewall custom rules that do
//! not match, from `bench/edge-common.sh`, plus the 5 matching rewrites), next to the same
//! request through a zone without rulesets (the fixed cost) and with the 5 rewrites only.
//!
//! Run with `cargo bench -p edgetrace-edge --bench pipeline`; prints ns per request and the
//! 100-rule zone's cost over the empty one's. Needs bash (the rule corpus is the shell
//! script's, so the two benches measure the same rules).

use edgetrace_edge::actions::Checker;
use edgetrace_edge::phases::PhaseOrder;
use edgetrace_edge::pipeline::{
    Config, Effects, Pipeline, Request, Response, Rule, Ruleset, RunOptions,
};
use edgetrace_edge::ruleset::{Level, check_ruleset};
use edgetrace_rules::{MemoryLists, Scheme};
use serde_json::{Value, json};
use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// mimalloc (the proxy's allocator), counting allocations: a request's allocations are
/// much of its cost.
struct Counting;

thread_local! {
    // Per thread and not atomic: a locked increment per allocation would cost the bench
    // what it measures (about 7% of a request).
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

// A bench-only wrapper (a global allocator can only be written with `unsafe`).
// SAFETY: every call goes to mimalloc's allocator as it is; only a counter is added.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { mimalloc::MiMalloc.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// `firewall_expressions N` of bench/edge-common.sh.
fn firewall_expressions(n: usize) -> Vec<String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench/edge-common.sh");
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("source '{script}' && firewall_expressions {n}"))
        .output()
        .expect("bash runs");
    assert!(out.status.success(), "{script}: {:?}", out);
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(str::to_string)
        .collect()
}

fn compile(scheme: &Scheme, phase: &str, rules: Value) -> Ruleset {
    let lists = MemoryLists::new();
    let checker = Checker {
        scheme,
        lists: &lists,
    };
    let checked = check_ruleset(
        &json!({"name": phase, "kind": "zone", "phase": phase, "rules": rules}),
        Level::Zone,
        None,
        &checker,
        "2026-11-22T00:00:00Z",
    )
    .unwrap_or_else(|e| panic!("{phase}: {e:?}"));
    let stored = json!({"id": phase, "name": phase, "kind": "zone", "phase": phase,
        "description": "", "rules": checked.rules});
    Ruleset::compile(&stored, scheme, &lists).expect("compiles")
}

/// The zone of bench/proxy.sh: `firewall` non-matching block rules and the 5 rewrites, or
/// nothing at all.
fn config(scheme: &Scheme, firewall: Option<usize>) -> Config {
    let mut zone = Vec::new();
    if let Some(n) = firewall {
        let rules: Vec<Value> = firewall_expressions(n)
            .into_iter()
            .map(|e| json!({"expression": e, "action": "block"}))
            .collect();
        if !rules.is_empty() {
            zone.push(compile(
                scheme,
                "http_request_firewall_custom",
                json!(rules),
            ));
        }
        zone.push(compile(scheme, "http_request_transform", json!([
            {"expression": "http.request.uri.path matches \"^/products/[0-9]+$\"", "action": "rewrite",
             "action_parameters": {"uri": {"query": {"expression": "concat(http.request.uri.query, \"&via=edge\")"}}}}])));
        zone.push(compile(scheme, "http_request_late_transform", json!([
            {"expression": "starts_with(http.request.uri.path, \"/products/\")", "action": "rewrite",
             "action_parameters": {"headers": {"x-bench-rewritten": {"operation": "set", "value": "edgetrace"}}}},
            {"expression": "http.request.method in {\"GET\" \"HEAD\"}", "action": "rewrite",
             "action_parameters": {"headers": {"x-request-method": {"operation": "set", "expression": "lower(http.request.method)"}}}}])));
        zone.push(compile(scheme, "http_response_headers_transform", json!([
            {"expression": "true", "action": "rewrite",
             "action_parameters": {"headers": {"x-edge": {"operation": "set", "value": "edgetrace"}}}},
            {"expression": "http.request.uri.path ne \"/health\"", "action": "rewrite",
             "action_parameters": {"headers": {"x-served-by": {"operation": "set", "value": "bench"}}}}])));
    }
    let mut config = Config {
        order: PhaseOrder::default(),
        account: Vec::new(),
        zone,
        custom: HashMap::new(),
        lists: Box::new(MemoryLists::new()),
        page_rules: Vec::new(),
        fields: None,
    };
    config.fields = Some(config.field_masks(scheme));
    config
}

/// bench/proxy.sh's request as the proxy hands it to the pipeline.
fn request() -> Request<'static> {
    let headers = [
        ("host", "www.shop.test"),
        ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) bench/1.0"),
        ("accept", "text/html,application/xhtml+xml"),
        ("accept-language", "en-GB,en;q=0.8"),
        ("cookie", "session=abc123; theme=dark"),
        ("referer", "http://www.shop.test/products"),
    ];
    Request {
        method: "GET".into(),
        https: false,
        host: "www.shop.test".into(),
        uri: "/products/42?color=red".into(),
        version: "HTTP/1.1".into(),
        headers: {
            // As the proxy's list: the text borrowed from the request as received, room for
            // the headers rewrites add.
            let mut list = Vec::with_capacity(headers.len() + 8);
            list.extend(headers.iter().map(|&(k, v)| (k.into(), v.into())));
            list
        },
        body: Vec::new(),
        client_ip: "127.0.0.1".parse().expect("ip"),
        geo: None,
        bot_score: None,
        verified_bot: false,
        threat_score: None,
    }
}

/// The origin's response; its headers only when the response phases read them (as the
/// proxy hands them over).
fn origin_response(headers: bool) -> Response<'static> {
    if !headers {
        return Response {
            status: 200,
            headers: Vec::new(),
            body: Vec::new(),
        };
    }
    Response {
        status: 200,
        headers: vec![
            ("server".into(), "nginx".into()),
            ("date".into(), "Sun, 22 Nov 2026 01:00:00 GMT".into()),
            ("content-type".into(), "text/plain".into()),
            ("content-length".into(), "22".into()),
        ],
        body: Vec::new(),
    }
}

struct Proxy;

impl Effects for Proxy {
    fn challenge(&mut self, _kind: &str) -> bool {
        false
    }
    fn rate_limited(&mut self, _rule: &Rule, _request: &Request<'_>) -> bool {
        false
    }
}

/// ns per request (request and response phases), the proxy's run options, the median of 5
/// runs of `per_run` requests; and allocations (and reallocations) per request, the bench's
/// own making of the request and the origin's response included.
fn measure(scheme: &Scheme, config: &Config, per_run: u32) -> (f64, f64) {
    let pipeline = Pipeline {
        scheme,
        config,
        options: RunOptions {
            lean: true,
            ..RunOptions::default()
        },
    };
    let before = allocations();
    let mut runs: Vec<Duration> = (0..5)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..per_run {
                // As the proxy runs it: the response phases start from the request's fields.
                let (mut outcome, fields) =
                    pipeline.request_keeping(black_box(request()), &mut Proxy);
                assert!(
                    outcome.answer.is_none(),
                    "the bench request must reach the origin"
                );
                let mut trace = std::mem::take(&mut outcome.trace);
                let responded = pipeline.response_from(
                    &outcome,
                    fields,
                    origin_response(pipeline.reads_response_headers()),
                    &mut Proxy,
                    &mut trace,
                );
                black_box((responded, trace));
            }
            started.elapsed() / per_run
        })
        .collect();
    let allocations = allocations() - before;
    runs.sort();
    (
        runs[2].as_nanos() as f64,
        allocations as f64 / f64::from(5 * per_run),
    )
}

fn main() {
    // `cargo test` runs benches once with --bench absent: keep that quick.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let scheme = Scheme::cloudflare();
    let empty = config(&scheme, None);
    let five = config(&scheme, Some(0));
    let hundred = config(&scheme, Some(95));
    const PER_RUN: u32 = 50_000;
    // `--only 100` (or 5, 0): that configuration alone, 10 times 5 runs, for a profiler;
    // `--requests N`: N requests per run instead of 50,000 (a profiler that records every
    // allocation, say).
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--only") {
        let config = match args.get(i + 1).map(String::as_str) {
            Some("0") => &empty,
            Some("5") => &five,
            _ => &hundred,
        };
        let per_run = match args.iter().position(|a| a == "--requests") {
            Some(j) => match args.get(j + 1).and_then(|n| n.parse().ok()) {
                Some(n) if n > 0 => n,
                _ => {
                    eprintln!("pipeline bench: --requests needs a number above 0");
                    std::process::exit(2);
                }
            },
            None => PER_RUN,
        };
        for _ in 0..10 {
            measure(&scheme, config, per_run);
        }
        return;
    }
    let (e, ea) = measure(&scheme, &empty, PER_RUN);
    let (f, fa) = measure(&scheme, &five, PER_RUN);
    let (h, ha) = measure(&scheme, &hundred, PER_RUN);
    println!("pipeline, one request (request and response phases), lean (the proxy's options):");
    println!("  no rulesets           {e:>8.0} ns  {ea:>5.1} allocations");
    println!(
        "  5 matching rewrites   {f:>8.0} ns  {fa:>5.1} allocations  ({:.1}x the empty zone's time)",
        f / e
    );
    println!(
        "  100 rules (95 + 5)    {h:>8.0} ns  {ha:>5.1} allocations  ({:.1}x the empty zone's time)",
        h / e
    );
}
