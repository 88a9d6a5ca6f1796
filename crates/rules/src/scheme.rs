//! The scheme: which fields exist, their types, and where they are available.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::types::Type;

/// What an expression is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExprKind {
    /// A rule's filter (its `expression`): must be Boolean.
    Filter,
    /// A value expression (rewrite value, dynamic redirect target,
    /// header value): must be a String.
    Value,
}

impl fmt::Display for ExprKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExprKind::Filter => "filter",
            ExprKind::Value => "value",
        })
    }
}

/// Whether a phase sees the request only, or the response too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Request phases: response fields are not available.
    Request,
    /// Response phases: request and response fields are available.
    Response,
}

/// A Cloudflare ruleset phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Phase {
    /// URL normalization and URL rewrite Transform Rules.
    HttpRequestTransform,
    /// Request header Transform Rules.
    HttpRequestLateTransform,
    /// Single Redirects (static and dynamic).
    HttpRequestDynamicRedirect,
    /// Bulk Redirects.
    HttpRequestRedirect,
    /// Origin Rules.
    HttpRequestOrigin,
    /// Cache Rules.
    HttpRequestCacheSettings,
    /// Configuration Rules.
    HttpConfigSettings,
    /// WAF custom rules.
    HttpRequestFirewallCustom,
    /// Rate limiting rules.
    HttpRatelimit,
    /// WAF managed rules.
    HttpRequestFirewallManaged,
    /// Super Bot Fight Mode.
    HttpRequestSbfm,
    /// Snippets.
    HttpRequestSnippets,
    /// Cloud Connector.
    HttpRequestCloudConnector,
    /// Response header Transform Rules.
    HttpResponseHeadersTransform,
    /// Compression Rules.
    HttpResponseCompression,
    /// Custom Error Rules.
    HttpCustomErrors,
    /// Sensitive data detection.
    HttpResponseFirewallManaged,
    /// Logpush custom fields.
    HttpLogCustomFields,
}

impl Phase {
    /// Every phase, request phases first in Cloudflare's order, then response phases.
    pub const ALL: [Phase; 18] = [
        Phase::HttpRequestDynamicRedirect,
        Phase::HttpRequestTransform,
        Phase::HttpRequestOrigin,
        Phase::HttpRequestCacheSettings,
        Phase::HttpConfigSettings,
        Phase::HttpRequestRedirect,
        Phase::HttpRequestFirewallCustom,
        Phase::HttpRatelimit,
        Phase::HttpRequestFirewallManaged,
        Phase::HttpRequestSbfm,
        Phase::HttpRequestLateTransform,
        Phase::HttpRequestSnippets,
        Phase::HttpRequestCloudConnector,
        Phase::HttpCustomErrors,
        Phase::HttpResponseHeadersTransform,
        Phase::HttpResponseCompression,
        Phase::HttpResponseFirewallManaged,
        Phase::HttpLogCustomFields,
    ];

    /// The phase's API name, e.g. `http_request_firewall_custom`.
    pub fn name(self) -> &'static str {
        match self {
            Phase::HttpRequestTransform => "http_request_transform",
            Phase::HttpRequestLateTransform => "http_request_late_transform",
            Phase::HttpRequestDynamicRedirect => "http_request_dynamic_redirect",
            Phase::HttpRequestRedirect => "http_request_redirect",
            Phase::HttpRequestOrigin => "http_request_origin",
            Phase::HttpRequestCacheSettings => "http_request_cache_settings",
            Phase::HttpConfigSettings => "http_config_settings",
            Phase::HttpRequestFirewallCustom => "http_request_firewall_custom",
            Phase::HttpRatelimit => "http_ratelimit",
            Phase::HttpRequestFirewallManaged => "http_request_firewall_managed",
            Phase::HttpRequestSbfm => "http_request_sbfm",
            Phase::HttpRequestSnippets => "http_request_snippets",
            Phase::HttpRequestCloudConnector => "http_request_cloud_connector",
            Phase::HttpResponseHeadersTransform => "http_response_headers_transform",
            Phase::HttpResponseCompression => "http_response_compression",
            Phase::HttpCustomErrors => "http_custom_errors",
            Phase::HttpResponseFirewallManaged => "http_response_firewall_managed",
            Phase::HttpLogCustomFields => "http_log_custom_fields",
        }
    }

    /// Looks a phase up by its API name.
    pub fn from_name(name: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Whether the phase runs on the request or on the response.
    pub fn stage(self) -> Stage {
        match self {
            Phase::HttpResponseHeadersTransform
            | Phase::HttpResponseCompression
            | Phase::HttpCustomErrors
            | Phase::HttpResponseFirewallManaged
            | Phase::HttpLogCustomFields => Stage::Response,
            _ => Stage::Request,
        }
    }

    /// Whether this is a Transform Rules phase (URL rewrite, request or response headers).
    pub fn is_transform(self) -> bool {
        matches!(
            self,
            Phase::HttpRequestTransform
                | Phase::HttpRequestLateTransform
                | Phase::HttpResponseHeadersTransform
        )
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where an expression will run: its kind, and optionally its phase.
///
/// Without a phase, phase-specific restrictions are not checked (response
/// fields are allowed, functions are allowed wherever the kind allows them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target {
    /// Filter or value expression.
    pub kind: ExprKind,
    /// The ruleset phase, if known.
    pub phase: Option<Phase>,
}

impl Target {
    /// A filter with no phase restriction.
    pub const FILTER: Target = Target {
        kind: ExprKind::Filter,
        phase: None,
    };
    /// A value expression with no phase restriction.
    pub const VALUE: Target = Target {
        kind: ExprKind::Value,
        phase: None,
    };

    /// A filter in `phase`.
    pub fn filter_in(phase: Phase) -> Target {
        Target {
            kind: ExprKind::Filter,
            phase: Some(phase),
        }
    }

    /// A value expression in `phase`.
    pub fn value_in(phase: Phase) -> Target {
        Target {
            kind: ExprKind::Value,
            phase: Some(phase),
        }
    }
}

impl From<ExprKind> for Target {
    fn from(kind: ExprKind) -> Self {
        Target { kind, phase: None }
    }
}

/// A field of the scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDef {
    /// Its name, e.g. `http.request.uri.path`.
    pub name: String,
    /// Its type.
    pub ty: Type,
    /// Only available in response phases.
    pub response_only: bool,
}

/// The position of a field in its scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldId(pub(crate) usize);

impl FieldId {
    /// The field's index in [`Scheme::fields`].
    pub fn index(self) -> usize {
        self.0
    }
}

static NEXT_SCHEME_ID: AtomicU64 = AtomicU64::new(1);

/// The set of fields expressions may use.
#[derive(Debug)]
pub struct Scheme {
    id: u64,
    fields: Vec<FieldDef>,
    /// Looked up for every field set in every context: a fast hasher (names are ours, not an
    /// attacker's).
    by_name: HashMap<String, FieldId, foldhash::fast::FixedState>,
    /// The ids of the fields `ExecutionContext::set_request` fills, looked up once.
    request_ids: OnceLock<Vec<Option<FieldId>>>,
    /// Slots of the calls whose results contexts keep ([`Scheme::memo_slot`]).
    memo: Mutex<HashMap<String, usize>>,
    memo_len: AtomicUsize,
}

/// Memo slots a scheme hands out; past them calls are computed each time. Each context has
/// one empty slot per slot handed out.
pub const MAX_MEMO_SLOTS: usize = 64;

impl Default for Scheme {
    fn default() -> Self {
        Scheme::new()
    }
}

impl Clone for Scheme {
    fn clone(&self) -> Self {
        let mut s = Scheme::new();
        for f in &self.fields {
            // Names are unique in `self`, so this cannot fail.
            let _ = s.add_field(&f.name, f.ty.clone(), f.response_only);
        }
        s
    }
}

use Type::{Bool, Bytes, Int, Ip};

const REQUEST_FIELDS: &[(&str, Type)] = &[
    ("http.host", Bytes),
    ("http.request.method", Bytes),
    ("http.request.uri", Bytes),
    ("http.request.uri.path", Bytes),
    ("http.request.uri.path.extension", Bytes),
    ("http.request.uri.query", Bytes),
    ("http.request.full_uri", Bytes),
    ("http.request.version", Bytes),
    ("http.request.timestamp.sec", Int),
    ("http.request.timestamp.msec", Int),
    ("http.user_agent", Bytes),
    ("http.referer", Bytes),
    ("http.cookie", Bytes),
    ("http.x_forwarded_for", Bytes),
    ("http.request.headers.truncated", Bool),
    ("http.request.body.raw", Bytes),
    ("http.request.body.size", Int),
    ("http.request.body.truncated", Bool),
    ("http.request.body.mime", Bytes),
    ("http.request.body.multipart.filenames", Bytes),
    ("raw.http.request.uri", Bytes),
    ("raw.http.request.uri.path", Bytes),
    ("raw.http.request.uri.path.extension", Bytes),
    ("raw.http.request.uri.query", Bytes),
    ("raw.http.request.full_uri", Bytes),
    ("ip.src", Ip),
    ("ip.src.country", Bytes),
    ("ip.src.continent", Bytes),
    ("ip.src.asnum", Int),
    ("ip.src.city", Bytes),
    ("ip.src.region", Bytes),
    ("ip.src.region_code", Bytes),
    ("ip.src.postal_code", Bytes),
    ("ip.src.lat", Bytes),
    ("ip.src.lon", Bytes),
    ("ip.src.metro_code", Bytes),
    ("ip.src.subdivision_1_iso_code", Bytes),
    ("ip.src.subdivision_2_iso_code", Bytes),
    ("ip.src.is_in_european_union", Bool),
    ("ip.src.timezone.name", Bytes),
    ("ip.geoip.country", Bytes),
    ("ip.geoip.continent", Bytes),
    ("ip.geoip.asnum", Int),
    ("ip.geoip.is_in_european_union", Bool),
    ("ssl", Bool),
    ("cf.bot_management.score", Int),
    ("cf.bot_management.verified_bot", Bool),
    ("cf.bot_management.static_resource", Bool),
    ("cf.bot_management.ja3_hash", Bytes),
    ("cf.bot_management.ja4", Bytes),
    ("cf.bot_management.corporate_proxy", Bool),
    ("cf.client.bot", Bool),
    ("cf.threat_score", Int),
    ("cf.waf.score", Int),
    ("cf.waf.score.sqli", Int),
    ("cf.waf.score.xss", Int),
    ("cf.waf.score.rce", Int),
    ("cf.edge.server_ip", Ip),
    ("cf.edge.server_port", Int),
    ("cf.ray_id", Bytes),
    ("cf.random_seed", Bytes),
    ("cf.zone.name", Bytes),
    ("cf.zone.plan", Bytes),
    ("cf.tls_client_auth.cert_verified", Bool),
    ("cf.tls_version", Bytes),
    ("cf.tls_cipher", Bytes),
    ("cf.hostname.metadata", Bytes),
    ("cf.worker.upstream_zone", Bytes),
];

const REQUEST_MAPS: &[&str] = &[
    "http.request.headers",
    "http.request.cookies",
    "http.request.uri.args",
    "raw.http.request.uri.args",
    "http.request.body.form",
    "http.request.body.multipart",
];

const REQUEST_ARRAYS: &[&str] = &[
    "http.request.accepted_languages",
    "http.request.body.multipart.content_types",
    "http.request.body.multipart.content_dispositions",
    "http.request.body.multipart.names",
    "http.request.body.multipart.values",
];

impl Scheme {
    /// An empty scheme.
    pub fn new() -> Self {
        Scheme {
            id: NEXT_SCHEME_ID.fetch_add(1, Ordering::Relaxed),
            fields: Vec::new(),
            by_name: HashMap::default(),
            request_ids: OnceLock::new(),
            memo: Mutex::new(HashMap::new()),
            memo_len: AtomicUsize::new(0),
        }
    }

    /// The context slot that keeps the result of the call `key` (its canonical text), the
    /// same for every expression of this scheme; `None` once [`MAX_MEMO_SLOTS`] are taken.
    pub(crate) fn memo_slot(&self, key: &str) -> Option<usize> {
        let mut memo = self.memo.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&slot) = memo.get(key) {
            return Some(slot);
        }
        let slot = memo.len();
        if slot >= MAX_MEMO_SLOTS {
            return None;
        }
        memo.insert(key.to_string(), slot);
        self.memo_len.store(slot + 1, Ordering::Release);
        Some(slot)
    }

    /// The ids of [`crate::context::REQUEST_FIELD_NAMES`] (`None`: not in this scheme).
    pub(crate) fn request_ids(&self) -> &[Option<FieldId>] {
        self.request_ids.get_or_init(|| {
            crate::context::REQUEST_FIELD_NAMES
                .iter()
                .map(|n| self.field(n))
                .collect()
        })
    }

    /// How many memo slots a context of this scheme needs.
    pub(crate) fn memo_len(&self) -> usize {
        self.memo_len.load(Ordering::Acquire)
    }

    /// Cloudflare's fields: request fields (including `raw.*` variants, map
    /// fields with their `.names` / `.values` arrays, geolocation and bot
    /// management fields) and the response fields available in response
    /// phases.
    pub fn cloudflare() -> Self {
        let mut s = Scheme::new();
        let mut add = |name: &str, ty: Type, response_only: bool| {
            // The tables above hold unique names.
            let _ = s.add_field(name, ty, response_only);
        };
        for (name, ty) in REQUEST_FIELDS {
            add(name, ty.clone(), false);
        }
        for name in REQUEST_MAPS {
            add(name, Type::map_of_string_arrays(), false);
            add(&format!("{name}.names"), Type::array_of_strings(), false);
            add(&format!("{name}.values"), Type::array_of_strings(), false);
        }
        for name in REQUEST_ARRAYS {
            add(name, Type::array_of_strings(), false);
        }
        add("ip.src.asnum.names", Type::array_of_strings(), false);
        add(
            "cf.bot_management.detection_ids",
            Type::Array(Box::new(Int)),
            false,
        );
        add("http.response.code", Int, true);
        add("http.response.headers", Type::map_of_string_arrays(), true);
        add(
            "http.response.headers.names",
            Type::array_of_strings(),
            true,
        );
        add(
            "http.response.headers.values",
            Type::array_of_strings(),
            true,
        );
        add(
            "raw.http.response.headers",
            Type::map_of_string_arrays(),
            true,
        );
        add(
            "raw.http.response.headers.names",
            Type::array_of_strings(),
            true,
        );
        add(
            "raw.http.response.headers.values",
            Type::array_of_strings(),
            true,
        );
        add("http.response.content_type.media_type", Bytes, true);
        add("cf.response.1xxx_code", Int, true);
        add("cf.response.error_type", Bytes, true);
        s
    }

    /// Adds a field. Fails if the name is taken or is not a valid field name.
    pub fn add_field(
        &mut self,
        name: &str,
        ty: Type,
        response_only: bool,
    ) -> crate::Result<FieldId> {
        let valid = !name.is_empty()
            && name.split('.').all(|part| {
                !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            })
            && name.as_bytes()[0].is_ascii_alphabetic();
        if !valid || self.by_name.contains_key(name) {
            return Err(crate::Error::new(
                crate::ErrorKind::Context,
                Default::default(),
                format!("cannot add field \"{name}\": the name is invalid or already defined"),
            ));
        }
        let id = FieldId(self.fields.len());
        self.fields.push(FieldDef {
            name: name.to_owned(),
            ty,
            response_only,
        });
        self.by_name.insert(name.to_owned(), id);
        self.request_ids = OnceLock::new(); // the field may be one of them
        Ok(id)
    }

    /// Finds a field by name.
    pub fn field(&self, name: &str) -> Option<FieldId> {
        self.by_name.get(name).copied()
    }

    /// The definition of a field.
    pub fn field_def(&self, id: FieldId) -> Option<&FieldDef> {
        self.fields.get(id.0)
    }

    /// All fields, in [`FieldId`] order.
    pub fn fields(&self) -> &[FieldDef] {
        &self.fields
    }

    /// A mask of the fields `expressions` read, for
    /// [`ExecutionContext::with_fields`](crate::ExecutionContext::with_fields).
    pub fn field_mask<'e>(
        &self,
        expressions: impl IntoIterator<Item = &'e crate::Expression>,
    ) -> Vec<bool> {
        let mut mask = vec![false; self.fields.len()];
        for e in expressions {
            e.ast().for_each_field(&mut |name| {
                if let Some(id) = self.field(name) {
                    mask[id.0] = true;
                }
            });
        }
        mask
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }
}
