//! The execution context: the field values of one request (and response).

use crate::error::{Error, ErrorKind, Result, Span};
use crate::lists::Lists;
use crate::scheme::{FieldId, Scheme};
use crate::types::Value;
use std::cell::{Cell, OnceCell};

/// Field values for one evaluation. Fields never set are *missing*:
/// comparisons against them are false, functions given them return missing.
pub struct ExecutionContext<'a> {
    pub(crate) scheme: &'a Scheme,
    pub(crate) values: Vec<Option<Value>>,
    /// The ids of the fields set (repeats allowed): what is emptied when the context is
    /// dropped, so that its `values` can serve the next context of the thread.
    set: Vec<usize>,
    /// Results of the calls the scheme gave a memo slot, computed at their first use; emptied
    /// whenever a field is set.
    pub(crate) memo: Vec<OnceCell<Option<Value>>>,
    /// Whether a memo cell may be filled (so that setting fields, which empties them, need not
    /// look at each one every time).
    pub(crate) memo_used: Cell<bool>,
    pub(crate) lists: Option<&'a dyn Lists>,
    /// Only these fields are kept (and computed by [`set_request`](Self::set_request)).
    wanted: Option<&'a [bool]>,
}

impl std::fmt::Debug for ExecutionContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut m = f.debug_map();
        for (def, v) in self.scheme.fields().iter().zip(&self.values) {
            if let Some(v) = v {
                m.entry(&def.name, &format_args!("{v}"));
            }
        }
        m.finish()
    }
}

/// The vectors of a context, emptied, for the next context of the thread: a context per
/// request (or per phase) would otherwise allocate a slot for every field of the scheme, a
/// memo slot for every memoized call and grow its list of fields set, when a request sets a
/// few of them.
struct Spare {
    values: Vec<Option<Value>>,
    set: Vec<usize>,
    memo: Vec<OnceCell<Option<Value>>>,
}

thread_local! {
    static SPARE: std::cell::RefCell<Vec<Spare>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Spare vectors kept per thread.
const MAX_SPARE: usize = 8;

/// Empty vectors for a context of `scheme`: spare ones or new ones.
fn spare(scheme: &Scheme) -> Spare {
    let (len, memo_len) = (scheme.fields().len(), scheme.memo_len());
    let mut spare = SPARE
        .try_with(|spare| spare.borrow_mut().pop())
        .ok()
        .flatten()
        .filter(|s| s.values.len() == len)
        .unwrap_or_else(|| Spare {
            values: vec![None; len],
            set: Vec::new(),
            memo: Vec::new(),
        });
    // The scheme can gain memo slots (a rule compiled meanwhile); the cells are empty.
    spare.memo.resize_with(memo_len, OnceCell::new);
    spare
}

impl Drop for ExecutionContext<'_> {
    fn drop(&mut self) {
        let mut values = std::mem::take(&mut self.values);
        let mut set = std::mem::take(&mut self.set);
        for &id in &set {
            values[id] = None;
        }
        set.clear();
        let mut memo = std::mem::take(&mut self.memo);
        self.memo_used.set(false);
        memo.iter_mut().for_each(|m| drop(m.take()));
        let _ = SPARE.try_with(|spare| {
            let mut spare = spare.borrow_mut();
            if spare.len() < MAX_SPARE {
                spare.push(Spare { values, set, memo });
            }
        });
    }
}

fn context_error(message: String) -> Error {
    Error::new(ErrorKind::Context, Span::default(), message)
}

impl<'a> ExecutionContext<'a> {
    /// An empty context (every field missing) for `scheme`.
    pub fn new(scheme: &'a Scheme) -> Self {
        let Spare { values, set, memo } = spare(scheme);
        ExecutionContext {
            scheme,
            values,
            set,
            memo,
            memo_used: Cell::new(false),
            lists: None,
            wanted: None,
        }
    }

    /// Keeps only the fields `mask` ([`Scheme::field_mask`]) marks: setting another field
    /// does nothing, and [`set_request`](Self::set_request) does not even compute it. For
    /// contexts that only ever run the expressions the mask was made from.
    pub fn with_fields(mut self, mask: &'a [bool]) -> Self {
        self.wanted = Some(mask);
        self
    }

    /// Whether field `name` exists and is kept.
    pub fn wants(&self, name: &str) -> bool {
        self.scheme.field(name).is_some_and(|id| self.keeps(id))
    }

    /// Whether field `id` is kept (no field mask, or the mask has it): whether setting it
    /// would do anything.
    pub fn wants_id(&self, id: FieldId) -> bool {
        self.keeps(id)
    }

    /// Resolves `in $name` through `lists` during execution. Without lists,
    /// `in $name` is false.
    pub fn with_lists(mut self, lists: &'a dyn Lists) -> Self {
        self.lists = Some(lists);
        self
    }

    /// The scheme this context belongs to.
    pub fn scheme(&self) -> &'a Scheme {
        self.scheme
    }

    /// Sets a field by name. Fails if the field is unknown or the value does
    /// not have the field's type.
    pub fn set(&mut self, name: &str, value: impl Into<Value>) -> Result<()> {
        let id = self
            .scheme
            .field(name)
            .ok_or_else(|| context_error(format!("unknown field \"{name}\"")))?;
        self.set_id(id, value)
    }

    /// Sets a field by id.
    pub fn set_id(&mut self, id: FieldId, value: impl Into<Value>) -> Result<()> {
        if !self.keeps(id) {
            return Ok(());
        }
        let value = value.into();
        let def = self
            .scheme
            .field_def(id)
            .ok_or_else(|| context_error(format!("field id {} is not in this scheme", id.0)))?;
        if !value.has_type(&def.ty) {
            return Err(context_error(format!(
                "field \"{}\" is {}, the value {value} does not fit",
                def.name, def.ty
            )));
        }
        self.store(id, value);
        Ok(())
    }

    /// [`set_id`](Self::set_id) for the values this module derives from a request, whose type
    /// is the field's by construction: the type is not checked again (a `Map<Array<String>>`
    /// of headers would be walked whole), except in debug builds.
    fn put(&mut self, id: FieldId, value: impl Into<Value>) -> Result<()> {
        if !self.keeps(id) {
            return Ok(());
        }
        let value = value.into();
        debug_assert!(
            self.scheme
                .field_def(id)
                .is_some_and(|d| value.has_type(&d.ty)),
            "field id {} set to {value}",
            id.0
        );
        self.store(id, value);
        Ok(())
    }

    /// Whether field `id` is kept (no field mask, or the mask has it).
    fn keeps(&self, id: FieldId) -> bool {
        self.wanted
            .is_none_or(|w| w.get(id.0).copied().unwrap_or(false))
    }

    fn store(&mut self, id: FieldId, value: Value) {
        self.values[id.0] = Some(value);
        self.set.push(id.0);
        self.forget_memo();
    }

    /// Makes a field missing again.
    pub fn unset(&mut self, name: &str) {
        if let Some(id) = self.scheme.field(name) {
            self.values[id.0] = None;
            self.forget_memo();
        }
    }

    /// The value of a field, if set.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.scheme
            .field(name)
            .and_then(|id| self.values[id.0].as_ref())
    }

    /// Sets a header-style map field (`Map<Array<String>>`) from name/value
    /// pairs: names are lowercased, repeated names collect their values in
    /// order. Also sets `<field>.names` (original case) and `<field>.values`
    /// when the scheme has them.
    pub fn set_headers<'h>(
        &mut self,
        field: &str,
        pairs: impl IntoIterator<Item = (&'h str, &'h str)>,
    ) -> Result<()> {
        self.set_multimap(field, pairs, true)
    }

    /// Sets a `Map<Array<String>>` field and its `.names`/`.values` companions;
    /// `lowercase` folds the map keys (headers) or keeps them (arguments, cookies).
    fn set_multimap<'h>(
        &mut self,
        field: &str,
        pairs: impl IntoIterator<Item = (&'h str, &'h str)>,
        lowercase: bool,
    ) -> Result<()> {
        let [names_field, values_field] = companions(field);
        let ids = [
            self.scheme.field(field),
            self.scheme.field(&names_field),
            self.scheme.field(&values_field),
        ];
        // The values are put without a type check: the caller's field must be a map.
        if let Some(def) = ids[0].and_then(|id| self.scheme.field_def(id))
            && !def.ty.is_map_of_string_arrays()
        {
            return Err(context_error(format!(
                "field \"{}\" is {}, not a map of string arrays",
                def.name, def.ty
            )));
        }
        self.set_multimap_ids(ids, pairs, lowercase)
    }

    /// A map field and its `.names` / `.values` companions, by id (`None`: not in the
    /// scheme); only the wanted ones are computed.
    fn set_multimap_ids<'h>(
        &mut self,
        [map_id, names_id, values_id]: [Option<FieldId>; 3],
        pairs: impl IntoIterator<Item = (&'h str, &'h str)>,
        lowercase: bool,
    ) -> Result<()> {
        let want_map = self.wanted_id(map_id);
        let array_of_strings = |ctx: &Self, id: Option<FieldId>| {
            ctx.wanted_id(id).filter(|id| {
                ctx.scheme
                    .field_def(*id)
                    .is_some_and(|d| d.ty.is_array_of_strings())
            })
        };
        let want_names = array_of_strings(self, names_id);
        let want_values = array_of_strings(self, values_id);
        if want_map.is_none() && want_names.is_none() && want_values.is_none() {
            return Ok(());
        }
        let pairs = pairs.into_iter();
        let n = pairs.size_hint().0;
        let capacity = |wanted: Option<FieldId>| if wanted.is_some() { n } else { 0 };
        let mut map: Vec<(Vec<u8>, Value)> = Vec::with_capacity(capacity(want_map));
        let mut names = Vec::with_capacity(capacity(want_names));
        let mut values = Vec::with_capacity(capacity(want_values));
        for (name, value) in pairs {
            if want_names.is_some() {
                names.push(Value::from(name));
            }
            if want_values.is_some() {
                values.push(Value::from(value));
            }
            if want_map.is_none() {
                continue;
            }
            let key = if lowercase {
                name.to_ascii_lowercase().into_bytes()
            } else {
                name.as_bytes().to_vec()
            };
            match map.iter_mut().find(|(k, _)| *k == key) {
                Some((_, Value::Array(items))) => items.push(value.into()),
                _ => map.push((key, Value::Array(vec![value.into()]))),
            }
        }
        if let Some(id) = want_map {
            self.put(id, Value::Map(map))?;
        }
        for (id, v) in [(want_names, names), (want_values, values)] {
            if let Some(id) = id {
                self.put(id, Value::Array(v))?;
            }
        }
        Ok(())
    }

    /// `id` when it is set and the context wants it (no field mask, or the mask has it).
    fn wanted_id(&self, id: Option<FieldId>) -> Option<FieldId> {
        id.filter(|&id| self.keeps(id))
    }

    /// The id of a field `set_request` fills, when the context wants it.
    fn want(&self, f: R) -> Option<FieldId> {
        self.wanted_id(self.scheme.request_ids()[f as usize])
    }

    /// Fills the request fields Cloudflare derives from a request line and
    /// headers: `http.request.method`, `http.host`, `http.request.full_uri`,
    /// `.uri`, `.uri.path`, `.uri.path.extension`, `.uri.query`,
    /// `.uri.args` (+ `.names`/`.values`), their `raw.*` variants (not
    /// percent-decoded),
    /// `http.request.version`, `http.request.headers` (+ `.names`/`.values`),
    /// `http.user_agent`, `http.referer`, `http.cookie`,
    /// `http.request.cookies`, `http.x_forwarded_for` and `ssl`.
    ///
    /// `uri` is the request target (`/path?query`); `host` the Host header.
    /// The non-`raw` URI fields hold the path normalized as Cloudflare's
    /// URL normalization does: backslashes become slashes, repeated slashes
    /// merge, percent-encoded unreserved characters are decoded (other
    /// escapes get uppercase hex), and `.` / `..` segments are resolved.
    /// Fields the scheme lacks are skipped.
    pub fn set_request(
        &mut self,
        method: &str,
        scheme_https: bool,
        host: &str,
        uri: &str,
        version: &str,
        headers: &[(&str, &str)],
    ) -> Result<()> {
        self.set_method_host(method, scheme_https, host, version)?;
        self.set_uri_fields(scheme_https, host, uri, true, true)?;
        self.set_header_fields(headers)
    }

    /// After a rewrite: sets again the fields [`set_request`](Self::set_request) derives from
    /// the URI (when `uri` is given; the `raw.*` fields keep the request as it arrived) and
    /// from the headers (when `headers` are given; fields of headers no longer there are
    /// unset). The other fields stay as they are, so an update costs only what changed.
    pub fn update_request(
        &mut self,
        scheme_https: bool,
        host: &str,
        uri: Option<&str>,
        headers: Option<&[(&str, &str)]>,
    ) -> Result<()> {
        if let Some(uri) = uri {
            self.set_uri_fields(scheme_https, host, uri, false, true)?;
        }
        if let Some(headers) = headers {
            let ids = self.scheme.request_ids();
            for f in HEADER_FIELDS {
                if let Some(id) = ids[f as usize] {
                    self.values[id.0] = None;
                }
            }
            self.forget_memo();
            self.set_header_fields(headers)?;
        }
        Ok(())
    }

    /// After a rewrite of the query alone (`uri`, the new target, has the path the fields
    /// were set from): sets again the fields derived from the query, as
    /// [`update_request`](Self::update_request) would, without the path's (its normalization
    /// and extension are as they were).
    pub fn update_query(&mut self, scheme_https: bool, host: &str, uri: &str) -> Result<()> {
        self.set_uri_fields(scheme_https, host, uri, false, false)
    }

    /// Whether the context keeps a field [`set_request`](Self::set_request) derives from the
    /// headers: when it does not, [`update_request`](Self::update_request) need not be given
    /// changed headers (what it would set again, nothing reads).
    pub fn keeps_header_fields(&self) -> bool {
        HEADER_FIELDS.into_iter().any(|f| self.want(f).is_some())
    }

    fn set_method_host(
        &mut self,
        method: &str,
        scheme_https: bool,
        host: &str,
        version: &str,
    ) -> Result<()> {
        let mut set = |f: R, v: &dyn Fn() -> Value| -> Result<()> {
            match self.want(f) {
                Some(id) => self.put(id, v()),
                None => Ok(()),
            }
        };
        set(R::Method, &|| method.into())?;
        set(R::Host, &|| host.into())?;
        set(R::Ssl, &|| scheme_https.into())?;
        set(R::Version, &|| version.into())
    }

    /// The URI's fields (with `raw`, the `raw.*` ones too).
    fn set_uri_fields(
        &mut self,
        scheme_https: bool,
        host: &str,
        uri: &str,
        raw: bool,
        path_changed: bool,
    ) -> Result<()> {
        let (path, query) = match uri.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (uri, None),
        };
        let scheme_name = if scheme_https { "https" } else { "http" };
        // Compute only what is kept (all of it without a field mask); field ids are the
        // scheme's, looked up once ([`Scheme::request_ids`]).
        let want = |ctx: &Self, fs: &[R]| fs.iter().any(|f| ctx.want(*f).is_some());
        // The path's own fields are set again only when it changed.
        let want_path = path_changed && self.want(R::Path).is_some();
        let want_decoded = want_path || want(self, &[R::FullUri, R::Uri]);
        let want_ext = (path_changed && self.want(R::Ext).is_some())
            || (raw && self.want(R::RawExt).is_some());
        let mut decoded_path = if want_decoded {
            normalize_path(path.as_bytes())
        } else {
            Vec::new()
        };
        let mut ext = if want_ext {
            path.rsplit('/')
                .next()
                .and_then(|seg| seg.rsplit_once('.'))
                .map(|(_, e)| e.to_ascii_lowercase())
                .unwrap_or_default()
        } else {
            String::new()
        };
        let mut set = |f: R, v: &dyn Fn() -> Value| -> Result<()> {
            match self.want(f) {
                Some(id) => self.put(id, v()),
                None => Ok(()),
            }
        };
        if raw {
            set(R::RawFullUri, &|| {
                format!("{scheme_name}://{host}{uri}").into()
            })?;
            set(R::RawUri, &|| uri.into())?;
            set(R::RawPath, &|| path.into())?;
            set(R::RawExt, &|| ext.clone().into())?;
            set(R::RawQuery, &|| query.unwrap_or("").into())?;
        }
        let decoded_uri = || match query {
            Some(q) => [decoded_path.as_slice(), b"?", q.as_bytes()].concat(),
            None => decoded_path.clone(),
        };
        set(R::FullUri, &|| {
            [
                format!("{scheme_name}://{host}").into_bytes(),
                decoded_uri(),
            ]
            .concat()
            .into()
        })?;
        set(R::Uri, &|| decoded_uri().into())?;
        set(R::Query, &|| query.unwrap_or("").into())?;
        // The last users of the path and the extension take them (no copy).
        if let Some(id) = self.want(R::Path).filter(|_| path_changed) {
            self.put(id, std::mem::take(&mut decoded_path))?;
        }
        if let Some(id) = self.want(R::Ext).filter(|_| path_changed) {
            self.put(id, std::mem::take(&mut ext))?;
        }
        let ids = self.scheme.request_ids();
        let group = |f: [R; 3]| f.map(|f| ids[f as usize]);
        let (args_ids, raw_args_ids) = (
            group([R::Args, R::ArgsNames, R::ArgsValues]),
            group([R::RawArgs, R::RawArgsNames, R::RawArgsValues]),
        );
        if self.want_group(args_ids) {
            let args: Vec<(String, String)> = query
                .unwrap_or("")
                .split('&')
                .filter(|s| !s.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    let dec = |s: &str| {
                        String::from_utf8_lossy(&crate::functions::percent_decode(
                            s.as_bytes(),
                            true,
                        ))
                        .into_owned()
                    };
                    (dec(k), dec(v))
                })
                .collect();
            self.set_multimap_ids(
                args_ids,
                args.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                false,
            )?;
        }
        if raw && self.want_group(raw_args_ids) {
            let raw: Vec<(&str, &str)> = query
                .unwrap_or("")
                .split('&')
                .filter(|s| !s.is_empty())
                .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
                .collect();
            self.set_multimap_ids(raw_args_ids, raw, false)?;
        }
        Ok(())
    }

    fn want_group(&self, ids: [Option<FieldId>; 3]) -> bool {
        ids.iter().any(|id| self.wanted_id(*id).is_some())
    }

    /// The headers' fields: the map and its names/values, the user agent, referer,
    /// X-Forwarded-For and cookies.
    fn set_header_fields(&mut self, headers: &[(&str, &str)]) -> Result<()> {
        let ids = self.scheme.request_ids();
        let group = |f: [R; 3]| f.map(|f| ids[f as usize]);
        let (header_ids, cookie_ids) = (
            group([R::Headers, R::HeadersNames, R::HeadersValues]),
            group([R::Cookies, R::CookiesNames, R::CookiesValues]),
        );
        self.set_multimap_ids(header_ids, headers.iter().copied(), true)?;
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| *v)
        };
        let mut set = |f: R, v: Option<&str>| -> Result<()> {
            match (v, self.want(f)) {
                (Some(v), Some(id)) => self.put(id, v),
                _ => Ok(()),
            }
        };
        set(R::UserAgent, header("user-agent"))?;
        set(R::Referer, header("referer"))?;
        set(R::XForwardedFor, header("x-forwarded-for"))?;
        let want_cookies = self.want_group(cookie_ids);
        let want_cookie = self.want(R::Cookie);
        if !want_cookies && want_cookie.is_none() {
            return Ok(());
        }
        let joined_cookies: Vec<&str> = headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("cookie"))
            .map(|(_, v)| *v)
            .collect();
        let cookie = match joined_cookies.as_slice() {
            [one] => std::borrow::Cow::Borrowed(*one),
            more => std::borrow::Cow::Owned(more.join("; ")),
        };
        if let Some(id) = want_cookie.filter(|_| !joined_cookies.is_empty()) {
            self.put(id, &*cookie)?;
        }
        if want_cookies {
            let pairs: Vec<(&str, &str)> = cookie
                .split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
                .collect();
            self.set_multimap_ids(cookie_ids, pairs, false)?;
        }
        Ok(())
    }

    /// Like [`set_headers`](Self::set_headers) but keeps names as given
    /// (query arguments and cookies are case-sensitive).
    pub fn set_args<'h>(
        &mut self,
        field: &str,
        pairs: impl IntoIterator<Item = (&'h str, &'h str)>,
    ) -> Result<()> {
        self.set_multimap(field, pairs, false)
    }

    #[inline]
    fn forget_memo(&mut self) {
        if self.memo_used.replace(false) {
            for m in &mut self.memo {
                m.take();
            }
        }
    }

    pub(crate) fn value(&self, index: usize) -> Option<&Value> {
        match self.values.get(index) {
            Some(Some(v)) => Some(v),
            _ => None,
        }
    }
}

/// The fields [`ExecutionContext::set_request`] fills, in [`REQUEST_FIELD_NAMES`] order.
#[derive(Debug, Clone, Copy)]
pub(crate) enum R {
    Method,
    Host,
    Ssl,
    Version,
    RawFullUri,
    RawUri,
    RawPath,
    RawExt,
    RawQuery,
    FullUri,
    Uri,
    Path,
    Ext,
    Query,
    Args,
    ArgsNames,
    ArgsValues,
    RawArgs,
    RawArgsNames,
    RawArgsValues,
    Headers,
    HeadersNames,
    HeadersValues,
    UserAgent,
    Referer,
    XForwardedFor,
    Cookies,
    CookiesNames,
    CookiesValues,
    Cookie,
}

/// The fields [`ExecutionContext::set_request`] derives from the headers.
const HEADER_FIELDS: [R; 10] = [
    R::Headers,
    R::HeadersNames,
    R::HeadersValues,
    R::UserAgent,
    R::Referer,
    R::XForwardedFor,
    R::Cookie,
    R::Cookies,
    R::CookiesNames,
    R::CookiesValues,
];

/// The names of [`R`]'s fields, in its order.
pub(crate) const REQUEST_FIELD_NAMES: [&str; 30] = [
    "http.request.method",
    "http.host",
    "ssl",
    "http.request.version",
    "raw.http.request.full_uri",
    "raw.http.request.uri",
    "raw.http.request.uri.path",
    "raw.http.request.uri.path.extension",
    "raw.http.request.uri.query",
    "http.request.full_uri",
    "http.request.uri",
    "http.request.uri.path",
    "http.request.uri.path.extension",
    "http.request.uri.query",
    "http.request.uri.args",
    "http.request.uri.args.names",
    "http.request.uri.args.values",
    "raw.http.request.uri.args",
    "raw.http.request.uri.args.names",
    "raw.http.request.uri.args.values",
    "http.request.headers",
    "http.request.headers.names",
    "http.request.headers.values",
    "http.user_agent",
    "http.referer",
    "http.x_forwarded_for",
    "http.request.cookies",
    "http.request.cookies.names",
    "http.request.cookies.values",
    "http.cookie",
];

/// The `.names` and `.values` companions of a map field (without formatting them on every
/// request for the maps `set_request` fills).
fn companions(field: &str) -> [std::borrow::Cow<'static, str>; 2] {
    let known: Option<[&'static str; 2]> = match field {
        "http.request.headers" => {
            Some(["http.request.headers.names", "http.request.headers.values"])
        }
        "http.request.uri.args" => Some([
            "http.request.uri.args.names",
            "http.request.uri.args.values",
        ]),
        "raw.http.request.uri.args" => Some([
            "raw.http.request.uri.args.names",
            "raw.http.request.uri.args.values",
        ]),
        "http.request.cookies" => {
            Some(["http.request.cookies.names", "http.request.cookies.values"])
        }
        "http.response.headers" => Some([
            "http.response.headers.names",
            "http.response.headers.values",
        ]),
        _ => None,
    };
    match known {
        Some([n, v]) => [n.into(), v.into()],
        None => [
            format!("{field}.names").into(),
            format!("{field}.values").into(),
        ],
    }
}

/// Cloudflare-style URL path normalization (see [`ExecutionContext::set_request`]).
pub(crate) fn normalize_path(path: &[u8]) -> Vec<u8> {
    // Most paths have nothing to normalize: no escapes, backslashes, repeated slashes or
    // dot segments.
    let plain = !path.iter().any(|&b| b == b'%' || b == b'\\')
        && !path.windows(2).any(|w| w == b"//" || w == b"/.")
        && path.first() != Some(&b'.');
    if plain {
        return path.to_vec();
    }
    normalize_path_fully(path)
}

/// [`normalize_path`] without its shortcut for paths that need nothing.
fn normalize_path_fully(path: &[u8]) -> Vec<u8> {
    // Percent-decoding of unreserved characters; uppercase hex elsewhere.
    let mut decoded = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        let b = path[i];
        if b == b'%'
            && i + 2 < path.len()
            && path[i + 1].is_ascii_hexdigit()
            && path[i + 2].is_ascii_hexdigit()
        {
            let hex = [path[i + 1], path[i + 2]];
            let value = std::str::from_utf8(&hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .unwrap_or(0);
            if value.is_ascii_alphanumeric() || matches!(value, b'-' | b'.' | b'_' | b'~') {
                decoded.push(value);
            } else {
                decoded.push(b'%');
                decoded.extend(hex.iter().map(u8::to_ascii_uppercase));
            }
            i += 3;
            continue;
        }
        decoded.push(if b == b'\\' { b'/' } else { b });
        i += 1;
    }
    // Merge repeated slashes.
    let mut merged: Vec<u8> = Vec::with_capacity(decoded.len());
    for b in decoded {
        if !(b == b'/' && merged.last() == Some(&b'/')) {
            merged.push(b);
        }
    }
    // Resolve dot segments (RFC 3986, section 5.2.4).
    let absolute = merged.first() == Some(&b'/');
    let trailing = merged.ends_with(b"/") || merged.ends_with(b"/.") || merged.ends_with(b"/..");
    let mut out: Vec<&[u8]> = Vec::new();
    for seg in merged.split(|&b| b == b'/') {
        match seg {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            seg => out.push(seg),
        }
    }
    let mut result = Vec::with_capacity(merged.len());
    if absolute {
        result.push(b'/');
    }
    result.extend_from_slice(&out.join(&b'/'));
    if trailing && !out.is_empty() {
        result.push(b'/');
    }
    result
}

#[cfg(test)]
mod tests {
    use super::{normalize_path, normalize_path_fully};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn normalization_is_idempotent(path in "[/a.%2eE5fF\\\\]{0,16}") {
            let once = normalize_path(path.as_bytes());
            prop_assert_eq!(normalize_path(&once), once.clone(), "{}", path);
        }

        #[test]
        fn the_shortcut_changes_nothing(path in "[/a.%2eE5fF\\\\]{0,16}") {
            prop_assert_eq!(
                normalize_path(path.as_bytes()),
                normalize_path_fully(path.as_bytes()),
                "{}",
                path
            );
        }

        #[test]
        fn normalization_never_panics(path in proptest::collection::vec(any::<u8>(), 0..32)) {
            let _ = normalize_path(&path);
        }
    }
}

#[cfg(test)]
mod multimap_tests {
    use crate::{ExecutionContext, Scheme};

    /// Header and argument maps are put without a type check of each value, so the field
    /// named by the caller must be a map of string arrays: anything else is an error that
    /// names it, and the field stays unset.
    #[test]
    fn a_multimap_goes_only_into_a_map_field() {
        let scheme = Scheme::cloudflare();
        let mut ctx = ExecutionContext::new(&scheme);
        let err = ctx
            .set_headers("http.host", [("a", "1")])
            .expect_err("http.host is a string");
        assert!(err.to_string().contains("http.host"), "{err}");
        assert!(ctx.get("http.host").is_none());
        ctx.set_headers("http.request.headers", [("X-A", "1"), ("x-a", "2")])
            .unwrap();
        assert_eq!(
            ctx.get("http.request.headers").map(ToString::to_string),
            Some(r#"{"x-a": ["1", "2"]}"#.to_string())
        );
    }
}
