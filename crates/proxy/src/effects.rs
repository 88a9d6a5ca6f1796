//! The pipeline's side effects: performed by the proxy, recorded by a trace.
//!
//! Rate limits count requests in fixed windows of the rule's `period`, per rule and per value
//! of its `characteristics`; once over `requests_per_period`, the key stays limited for
//! `mitigation_timeout` seconds (or to the window's end). The proxy counts; a trace reads the
//! same counters and says whether this request would be over the limit, without counting it.
//!
//! Challenges: edgetrace has no challenge platform, so the proxy answers every challenge with
//! its challenge page (403); a trace passes them when `skip_challenge` is set.

use edgetrace_edge::pipeline::{Effects, Request, Rule};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, Default)]
struct Window {
    /// Start of the window, in seconds since the epoch.
    start: u64,
    count: u64,
    /// Limited until then (seconds since the epoch).
    blocked_until: u64,
}

/// Counters kept before the expired ones are dropped.
const MAX_KEYS: usize = 100_000;

/// Rate-limit counters shared by every request of this process.
#[derive(Default)]
pub struct Counters {
    windows: Mutex<HashMap<(String, String), Window>>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The value of one rate-limit characteristic for a request.
fn characteristic(name: &str, request: &Request<'_>) -> String {
    match name {
        "ip.src" | "cf.unique_visitor_id" => request.client_ip.to_string(),
        "cf.colo.id" | "cf.colo.name" => String::new(),
        "http.host" => request.host.to_string(),
        "http.request.uri.path" => request.path().to_string(),
        "ip.src.country" => request.geo().country.clone().unwrap_or_default(),
        "ip.src.asnum" => request
            .geo()
            .asnum
            .map(|a| a.to_string())
            .unwrap_or_default(),
        _ => {
            // http.request.headers["name"] and http.request.cookies["name"]
            let inner = |prefix: &str| {
                name.strip_prefix(prefix)
                    .and_then(|r| r.strip_suffix("\"]"))
                    .map(str::to_ascii_lowercase)
            };
            if let Some(h) = inner("http.request.headers[\"") {
                request
                    .headers
                    .iter()
                    .filter(|(k, _)| k.eq_ignore_ascii_case(&h))
                    .map(|(_, v)| v.as_ref())
                    .collect::<Vec<_>>()
                    .join(",")
            } else if let Some(c) = inner("http.request.cookies[\"") {
                request
                    .headers
                    .iter()
                    .filter(|(k, _)| k.eq_ignore_ascii_case("cookie"))
                    .flat_map(|(_, v)| v.split(';'))
                    .filter_map(|kv| kv.trim().split_once('='))
                    .filter(|(k, _)| k.eq_ignore_ascii_case(&c))
                    .map(|(_, v)| v)
                    .collect::<Vec<_>>()
                    .join(",")
            } else {
                name.to_string()
            }
        }
    }
}

impl Counters {
    /// Whether `request` is over `rule`'s limit; counts it when `count`.
    pub fn check(&self, rule: &Rule, request: &Request, count: bool) -> bool {
        let Some(limit) = &rule.ratelimit else {
            return false;
        };
        let period = limit["period"].as_u64().unwrap_or(60).max(1);
        let allowed = limit["requests_per_period"].as_u64().unwrap_or(u64::MAX);
        let timeout = limit["mitigation_timeout"].as_u64().unwrap_or(0);
        let key = limit["characteristics"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_str())
            .map(|c| characteristic(c, request))
            .collect::<Vec<_>>()
            .join("\u{1f}");
        let now = now_secs();
        let start = now - now % period;
        let mut windows = self.windows.lock().expect("counters lock");
        if windows.len() >= MAX_KEYS {
            // Forget what no longer counts: windows that ended and are not blocking.
            windows.retain(|_, w| w.blocked_until > now || w.start + period > now);
        }
        let w = windows.entry((rule.id.clone(), key)).or_default();
        if w.start != start {
            w.start = start;
            w.count = 0;
        }
        let over = now < w.blocked_until || w.count + 1 > allowed;
        if count {
            w.count += 1;
            if over && w.blocked_until <= now {
                w.blocked_until = now + timeout.max(start + period - now);
            }
        }
        over
    }
}

/// What the proxy does.
pub struct Perform<'a> {
    pub counters: &'a Counters,
}

impl Effects for Perform<'_> {
    fn challenge(&mut self, _kind: &str) -> bool {
        false
    }
    fn rate_limited(&mut self, rule: &Rule, request: &Request) -> bool {
        self.counters.check(rule, request, true)
    }
    fn log(&mut self, rule: &Rule) {
        eprintln!(
            "edgetrace: proxy: rule {} ({}) matched: {}",
            rule.id, rule.action, rule.expression
        );
    }
}

/// What a trace does: reads counters, passes challenges only when told to.
pub struct Record<'a> {
    pub counters: &'a Counters,
    pub skip_challenge: bool,
}

impl Effects for Record<'_> {
    fn challenge(&mut self, _kind: &str) -> bool {
        self.skip_challenge
    }
    fn rate_limited(&mut self, rule: &Rule, request: &Request) -> bool {
        self.counters.check(rule, request, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgetrace_edge::pipeline::Ruleset;
    use edgetrace_rules::{MemoryLists, Scheme};
    use serde_json::json;

    fn rule(ratelimit: serde_json::Value) -> Ruleset {
        let scheme = Scheme::cloudflare();
        Ruleset::compile(
            &json!({"id": "rs", "phase": "http_ratelimit", "rules": [
                {"id": "r1", "expression": "true", "action": "block", "ratelimit": ratelimit}]}),
            &scheme,
            &MemoryLists::new(),
        )
        .unwrap()
    }

    fn request<'a>(ip: &str, header: &'a str) -> Request<'a> {
        Request {
            method: "GET".into(),
            https: false,
            host: "www.shop.test".into(),
            uri: "/".into(),
            version: "HTTP/1.1".into(),
            headers: vec![("x-key".into(), header.into())],
            body: Vec::new(),
            client_ip: ip.parse().unwrap(),
            geo: None,
            bot_score: None,
            verified_bot: false,
            threat_score: None,
        }
    }

    #[test]
    fn a_trace_reads_what_the_proxy_counts_per_characteristic() {
        let rs = rule(
            json!({"characteristics": ["ip.src", "http.request.headers[\"x-key\"]"],
                             "period": 3600, "requests_per_period": 2, "mitigation_timeout": 0}),
        );
        let r = &rs.rules[0];
        let c = Counters::default();
        let a = request("192.0.2.1", "k");
        // Reads never count: the third request is the first over the limit.
        for _ in 0..5 {
            assert!(!c.check(r, &a, false));
        }
        assert!(!c.check(r, &a, true));
        assert!(!c.check(r, &a, false), "the second would still pass");
        assert!(!c.check(r, &a, true));
        assert!(c.check(r, &a, false), "the third would be over");
        assert!(c.check(r, &a, true));
        // Other values of the characteristics have counters of their own.
        assert!(!c.check(r, &request("192.0.2.2", "k"), true));
        assert!(!c.check(r, &request("192.0.2.1", "other"), true));
    }

    #[test]
    fn mitigation_timeout_keeps_the_key_limited() {
        let rs = rule(json!({"characteristics": ["ip.src"], "period": 3600,
                             "requests_per_period": 1, "mitigation_timeout": 600}));
        let r = &rs.rules[0];
        let c = Counters::default();
        let a = request("192.0.2.1", "");
        assert!(!c.check(r, &a, true));
        assert!(c.check(r, &a, true));
        let w = *c.windows.lock().unwrap().values().next().unwrap();
        assert!(w.blocked_until >= now_secs() + 600 - 1, "{w:?}");
    }
}
