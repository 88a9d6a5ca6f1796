//! Phases as ordered configuration data, and which actions each phase accepts.
//!
//! The default order is Cloudflare's current one (request phases, then response phases); a
//! deployment may give its own order, checked by [`PhaseOrder::from_names`].
//!
//! ```
//! use edgetrace_edge::phases::PhaseOrder;
//! use edgetrace_rules::Phase;
//! let order = PhaseOrder::default();
//! assert_eq!(order.request()[0], Phase::HttpRequestDynamicRedirect);
//! assert!(order.response().contains(&Phase::HttpCustomErrors));
//! assert!(PhaseOrder::from_names(&["http_request_firewall_custom", "http_nope"]).is_err());
//! ```

use edgetrace_rules::{Phase, Stage};

/// The order in which phases run, request phases then response phases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseOrder {
    request: Vec<Phase>,
    response: Vec<Phase>,
}

impl Default for PhaseOrder {
    /// Cloudflare's order.
    fn default() -> Self {
        let (request, response) = Phase::ALL
            .into_iter()
            .partition(|p| p.stage() == Stage::Request);
        PhaseOrder { request, response }
    }
}

impl PhaseOrder {
    /// An order from phase names: each known, none twice. Request and response phases may be
    /// interleaved in the list; each keeps its relative order within its stage. Phases left out
    /// do not run.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Result<PhaseOrder, String> {
        let mut order = PhaseOrder {
            request: Vec::new(),
            response: Vec::new(),
        };
        for (i, name) in names.iter().enumerate() {
            let name = name.as_ref();
            let phase = Phase::from_name(name).ok_or_else(|| {
                format!(
                    "phases[{i}]: unknown phase {name:?}; known: {}",
                    known_phases().join(", ")
                )
            })?;
            let list = match phase.stage() {
                Stage::Request => &mut order.request,
                Stage::Response => &mut order.response,
            };
            if list.contains(&phase) {
                return Err(format!("phases[{i}]: {name} is listed twice"));
            }
            list.push(phase);
        }
        Ok(order)
    }

    pub fn request(&self) -> &[Phase] {
        &self.request
    }

    pub fn response(&self) -> &[Phase] {
        &self.response
    }
}

/// Every phase name, in the default order.
pub fn known_phases() -> Vec<&'static str> {
    Phase::ALL.iter().map(|p| p.name()).collect()
}

/// Actions that stop the evaluation of the request (nothing after them runs, not even the
/// origin fetch).
pub const TERMINATING: &[&str] = &[
    "block",
    "challenge",
    "js_challenge",
    "managed_challenge",
    "redirect",
    "serve_error",
];

/// Whether `action` stops the request.
pub fn is_terminating(action: &str) -> bool {
    TERMINATING.contains(&action)
}

/// The actions a rule may have in `phase`, as Cloudflare's phases accept them.
pub fn allowed_actions(phase: Phase) -> &'static [&'static str] {
    match phase {
        Phase::HttpRequestFirewallCustom => &[
            "block",
            "challenge",
            "js_challenge",
            "managed_challenge",
            "log",
            "skip",
            "execute",
        ],
        Phase::HttpRatelimit => &[
            "block",
            "challenge",
            "js_challenge",
            "managed_challenge",
            "log",
            "execute",
        ],
        Phase::HttpRequestFirewallManaged => &[
            "block",
            "challenge",
            "js_challenge",
            "managed_challenge",
            "log",
            "skip",
            "execute",
            "score",
        ],
        Phase::HttpRequestSbfm => &[
            "block",
            "challenge",
            "js_challenge",
            "managed_challenge",
            "log",
            "skip",
            "execute",
        ],
        Phase::HttpRequestTransform
        | Phase::HttpRequestLateTransform
        | Phase::HttpResponseHeadersTransform => &["rewrite"],
        Phase::HttpRequestDynamicRedirect | Phase::HttpRequestRedirect => &["redirect"],
        Phase::HttpRequestOrigin => &["route"],
        Phase::HttpRequestCacheSettings => &["set_cache_settings"],
        Phase::HttpConfigSettings => &["set_config"],
        Phase::HttpCustomErrors => &["serve_error"],
        Phase::HttpResponseCompression => &["compress_response"],
        Phase::HttpLogCustomFields => &["log_custom_field"],
        Phase::HttpResponseFirewallManaged => &["log", "execute", "skip"],
        Phase::HttpRequestSnippets | Phase::HttpRequestCloudConnector => &["skip"],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_order_has_every_phase_once() {
        let order = PhaseOrder::default();
        assert_eq!(
            order.request().len() + order.response().len(),
            Phase::ALL.len()
        );
        assert!(
            order
                .response()
                .iter()
                .all(|p| p.stage() == Stage::Response)
        );
        let custom = order
            .request()
            .iter()
            .position(|p| *p == Phase::HttpRequestFirewallCustom);
        let managed = order
            .request()
            .iter()
            .position(|p| *p == Phase::HttpRequestFirewallManaged);
        assert!(custom < managed, "custom rules run before managed rules");
    }

    #[test]
    fn configured_order_is_checked() {
        let order = PhaseOrder::from_names(&["http_custom_errors", "http_request_origin"]).unwrap();
        assert_eq!(order.request(), [Phase::HttpRequestOrigin]);
        assert_eq!(order.response(), [Phase::HttpCustomErrors]);
        let e =
            PhaseOrder::from_names(&["http_request_origin", "http_request_origin"]).unwrap_err();
        assert_eq!(e, "phases[1]: http_request_origin is listed twice");
        let e = PhaseOrder::from_names(&["http_request_orign"]).unwrap_err();
        assert!(e.starts_with("phases[0]: unknown phase \"http_request_orign\"; known: "));
    }

    #[test]
    fn every_phase_accepts_some_action() {
        for p in Phase::ALL {
            assert!(!allowed_actions(p).is_empty(), "{p}");
        }
    }
}
