//! The execution context: the field values of one request (and response).

use crate::error::{Error, ErrorKind, Result, Span};
use crate::lists::Lists;
use crate::scheme::{FieldId, Scheme};
use crate::types::Value;
use smallvec::SmallVec;
use std::borrow::Cow;
use std::cell::{Cell, OnceCell};

/// A pair of a map field kept as its pairs: the field's id, the key as the map has it, the
/// value ([`ExecutionContext::pairs`]).
type Pair<'v> = (usize, Cow<'v, [u8]>, Cow<'v, [u8]>);

/// Field values for one evaluation. Fields never set are *missing*:
/// comparisons against them are false, functions given them return missing.
///
/// `'a` is the scheme's (and the lists') lifetime, `'v` the values': a value set from text
/// that lives for `'v` (a request's, [`set_request`](Self::set_request)) borrows it instead
/// of copying it.
pub struct ExecutionContext<'a, 'v> {
    pub(crate) scheme: &'a Scheme,
    /// For each field of the scheme, 1 + the place of its value in `values`; 0 when it was
    /// never set. Kept for the next context of the thread (the fields set are put back to 0).
    slots: Vec<u32>,
    /// The values set and their fields' ids, in the order first set (`None`: unset since).
    /// Not indexed by field, so that a new context (whose values borrow for another `'v`)
    /// has no vector as long as the scheme's fields to make: it has as many as it sets.
    values: Vec<(usize, Option<Value<'v>>)>,
    /// Map fields (`Map<Array<String>>`: headers, cookies, query arguments) as the pairs they
    /// are made of (field id, key as the map has it, value), until a rule needs the map
    /// itself: most rules look one key up ([`lookup`](Self::lookup)), which the pairs answer
    /// without a map of arrays to build (an allocation per key). Their slot is [`LAZY`] |
    /// the cell of `maps` their map is built in at its first use; `values` lists them too
    /// (as unset), for the slots to reset.
    pairs: Vec<Pair<'v>>,
    maps: Vec<OnceCell<Value<'v>>>,
    /// Results of the calls the scheme gave a memo slot, computed at their first use; emptied
    /// whenever a field is set.
    pub(crate) memo: Vec<OnceCell<Option<Value<'v>>>>,
    /// Whether a memo cell may be filled (so that setting fields, which empties them, need not
    /// look at each one every time).
    pub(crate) memo_used: Cell<bool>,
    pub(crate) lists: Option<&'a dyn Lists>,
    /// Only these fields are kept (and computed by [`set_request`](Self::set_request)).
    wanted: Option<&'a [bool]>,
}

impl std::fmt::Debug for ExecutionContext<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut m = f.debug_map();
        let mut seen = Vec::new();
        for &(id, _) in &self.values {
            if seen.contains(&id) {
                continue; // a field set, unset and set again
            }
            seen.push(id);
            if let (Some(def), Some(v)) = (self.scheme.fields().get(id), self.value(id)) {
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
///
/// Kept empty (no elements, the capacity only): a value kept would borrow what the next
/// context cannot.
struct Spare {
    slots: Vec<u32>,
    values: Vec<(usize, Option<Value<'static>>)>,
    pairs: Vec<Pair<'static>>,
    maps: Vec<OnceCell<Value<'static>>>,
    memo: Vec<OnceCell<Option<Value<'static>>>>,
}

/// The mark of a slot of a map kept as its pairs ([`ExecutionContext::pairs`]).
const LAZY: u32 = 1 << 31;

thread_local! {
    static SPARE: std::cell::RefCell<Vec<Spare>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Spare vectors kept per thread.
const MAX_SPARE: usize = 8;

/// Empty vectors for a context of `scheme`: spare ones or new ones.
fn spare(scheme: &Scheme) -> Spare {
    let len = scheme.fields().len();
    let mut spare = SPARE
        .try_with(|spare| spare.borrow_mut().pop())
        .ok()
        .flatten()
        .unwrap_or_else(|| Spare {
            slots: Vec::new(),
            values: Vec::new(),
            pairs: Vec::new(),
            maps: Vec::new(),
            memo: Vec::new(),
        });
    // All 0: only a new vector (or a scheme with more fields) is written to.
    spare.slots.resize(len, 0);
    spare
}

/// `v`, emptied, as a vector of another element type of the same size (its allocation is
/// kept: the standard library collects in place).
fn emptied<T, U>(mut v: Vec<T>) -> Vec<U> {
    v.clear();
    v.into_iter().map(|_| unreachable!("emptied")).collect()
}

impl Drop for ExecutionContext<'_, '_> {
    fn drop(&mut self) {
        let mut slots = std::mem::take(&mut self.slots);
        let values = std::mem::take(&mut self.values);
        for (id, _) in &values {
            slots[*id] = 0;
        }
        let pairs = std::mem::take(&mut self.pairs);
        let maps = std::mem::take(&mut self.maps);
        let memo = std::mem::take(&mut self.memo);
        self.memo_used.set(false);
        let _ = SPARE.try_with(|spare| {
            let mut spare = spare.borrow_mut();
            if spare.len() < MAX_SPARE {
                spare.push(Spare {
                    slots,
                    values: emptied(values),
                    pairs: emptied(pairs),
                    maps: emptied(maps),
                    memo: emptied(memo),
                });
            }
        });
    }
}

fn context_error(message: String) -> Error {
    Error::new(ErrorKind::Context, Span::default(), message)
}

impl<'a, 'v> ExecutionContext<'a, 'v> {
    /// An empty context (every field missing) for `scheme`.
    pub fn new(scheme: &'a Scheme) -> Self {
        let Spare {
            slots,
            values,
            pairs,
            maps,
            memo,
        } = spare(scheme);
        // Cells are invariant in the lifetime of their value: the spare vectors are
        // converted (empty, so only their allocation is kept).
        let mut memo: Vec<OnceCell<Option<Value<'v>>>> = emptied(memo);
        memo.resize_with(scheme.memo_len(), OnceCell::new);
        ExecutionContext {
            scheme,
            slots,
            values,
            pairs,
            maps: emptied(maps),
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
        self.narrow(mask);
        self
    }

    /// [`with_fields`](Self::with_fields) in place (a context is large to move).
    pub fn narrow(&mut self, mask: &'a [bool]) {
        self.wanted = Some(mask);
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
        self.use_lists(lists);
        self
    }

    /// [`with_lists`](Self::with_lists) in place.
    pub fn use_lists(&mut self, lists: &'a dyn Lists) {
        self.lists = Some(lists);
    }

    /// The scheme this context belongs to.
    pub fn scheme(&self) -> &'a Scheme {
        self.scheme
    }

    /// Sets a field by name. Fails if the field is unknown or the value does
    /// not have the field's type.
    pub fn set(&mut self, name: &str, value: impl Into<Value<'v>>) -> Result<()> {
        let id = self
            .scheme
            .field(name)
            .ok_or_else(|| context_error(format!("unknown field \"{name}\"")))?;
        self.set_id(id, value)
    }

    /// Sets a field by id.
    pub fn set_id(&mut self, id: FieldId, value: impl Into<Value<'v>>) -> Result<()> {
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
    fn put(&mut self, id: FieldId, value: impl Into<Value<'v>>) -> Result<()> {
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

    fn store(&mut self, id: FieldId, value: Value<'v>) {
        if self.slots[id.0] & LAZY != 0 {
            self.clear(id.0);
        }
        match self.slots[id.0] {
            0 => {
                self.values.push((id.0, Some(value)));
                self.slots[id.0] = u32::try_from(self.values.len()).unwrap_or(u32::MAX);
            }
            slot => self.values[slot as usize - 1].1 = Some(value),
        }
        self.forget_memo();
    }

    /// Makes field `id` missing.
    fn clear(&mut self, id: usize) {
        match self.slots.get(id) {
            Some(&slot) if slot & LAZY != 0 => {
                // Its cell of `maps` stays, unreachable.
                self.pairs.retain(|(f, ..)| *f != id);
                self.slots[id] = 0;
            }
            Some(&slot) if slot != 0 => self.values[slot as usize - 1].1 = None,
            _ => {}
        }
    }

    /// Map field `id` (kept, a `Map<Array<String>>`) from its pairs, pushed onto
    /// [`pairs`](Self::pairs) (its pairs of before, if any, removed first).
    fn store_lazy(&mut self, id: FieldId) {
        match self.slots[id.0] {
            // The pairs changed: the map is built again.
            slot if slot & LAZY != 0 => self.maps[(slot & !LAZY) as usize] = OnceCell::new(),
            slot => {
                match slot {
                    0 => self.values.push((id.0, None)),
                    _ => self.values[slot as usize - 1].1 = None,
                }
                self.maps.push(OnceCell::new());
                let cell = u32::try_from(self.maps.len() - 1).unwrap_or(LAZY - 1);
                self.slots[id.0] = LAZY | cell;
            }
        }
        self.forget_memo();
    }

    /// The map of map field `id` kept as its pairs (`slot`), built at its first use.
    fn lazy_map(&self, id: usize, slot: u32) -> Option<&Value<'v>> {
        let cell = self.maps.get((slot & !LAZY) as usize)?;
        Some(cell.get_or_init(|| {
            let mut map: Vec<(Cow<'v, [u8]>, Value<'v>)> = Vec::new();
            for (_, key, value) in self.pairs.iter().filter(|(f, ..)| *f == id) {
                let value = Value::Bytes(value.clone());
                match map.iter_mut().find(|(k, _)| k == key) {
                    Some((_, Value::Array(items))) => items.push(value),
                    _ => map.push((key.clone(), Value::Array(vec![value]))),
                }
            }
            Value::Map(map)
        }))
    }

    /// `field[key]` of a map field (`index`): from the field's pairs when its map was not
    /// built (a rule looking one header up needs no map of every header), else from the map.
    /// `None`: missing (no such key, or no such field).
    pub(crate) fn lookup(&self, index: usize, key: &[u8]) -> Option<Cow<'_, Value<'v>>> {
        match self.slots.get(index) {
            Some(&slot) if slot & LAZY != 0 => {
                if let Some(map) = self.maps.get((slot & !LAZY) as usize).and_then(|c| c.get()) {
                    return map.map_get(key).map(Cow::Borrowed);
                }
                let mut values = self
                    .pairs
                    .iter()
                    .filter(|(f, k, _)| *f == index && **k == *key)
                    .map(|(_, _, v)| Value::Bytes(v.clone()))
                    .peekable();
                values.peek()?;
                Some(Cow::Owned(Value::Array(values.collect())))
            }
            _ => self
                .value(index)
                .and_then(|v| v.map_get(key))
                .map(Cow::Borrowed),
        }
    }

    /// Makes a field missing again.
    pub fn unset(&mut self, name: &str) {
        if let Some(id) = self.scheme.field(name) {
            self.clear(id.0);
            self.forget_memo();
        }
    }

    /// The value of a field, if set.
    pub fn get(&self, name: &str) -> Option<&Value<'v>> {
        self.scheme.field(name).and_then(|id| self.value(id.0))
    }

    /// Sets a header-style map field (`Map<Array<String>>`) from name/value
    /// pairs: names are lowercased, repeated names collect their values in
    /// order. Also sets `<field>.names` (original case) and `<field>.values`
    /// when the scheme has them.
    pub fn set_headers<K: Into<Cow<'v, str>>, V: Into<Cow<'v, str>>>(
        &mut self,
        field: &str,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<()> {
        self.set_multimap(field, pairs, true)
    }

    /// Like [`set_headers`](Self::set_headers) but keeps names as given
    /// (query arguments and cookies are case-sensitive).
    pub fn set_args<K: Into<Cow<'v, str>>, V: Into<Cow<'v, str>>>(
        &mut self,
        field: &str,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<()> {
        self.set_multimap(field, pairs, false)
    }

    /// Sets a `Map<Array<String>>` field and its `.names`/`.values` companions;
    /// `lowercase` folds the map keys (headers) or keeps them (arguments, cookies).
    fn set_multimap<K: Into<Cow<'v, str>>, V: Into<Cow<'v, str>>>(
        &mut self,
        field: &str,
        pairs: impl IntoIterator<Item = (K, V)>,
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
        let pairs = pairs
            .into_iter()
            .map(|(k, v)| (into_bytes(k.into()), into_bytes(v.into())));
        self.set_multimap_ids(ids, pairs, lowercase)
    }

    /// A map field and its `.names` / `.values` companions, by id (`None`: not in the
    /// scheme); only the wanted ones are computed.
    fn set_multimap_ids(
        &mut self,
        [map_id, names_id, values_id]: [Option<FieldId>; 3],
        pairs: impl Iterator<Item = (Cow<'v, [u8]>, Cow<'v, [u8]>)>,
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
        let n = pairs.size_hint().0;
        let capacity = |wanted: Option<FieldId>| if wanted.is_some() { n } else { 0 };
        let mut names = Vec::with_capacity(capacity(want_names));
        let mut values = Vec::with_capacity(capacity(want_values));
        if let Some(id) = want_map {
            // The field's pairs of before (a field set again) are gone.
            if self.slots[id.0] & LAZY != 0 {
                self.pairs.retain(|(f, ..)| *f != id.0);
            }
        }
        for (name, value) in pairs {
            if want_names.is_some() {
                names.push(Value::Bytes(name.clone()));
            }
            if want_values.is_some() {
                values.push(Value::Bytes(value.clone()));
            }
            let Some(id) = want_map else {
                continue;
            };
            let key = if lowercase && name.iter().any(u8::is_ascii_uppercase) {
                Cow::Owned(name.to_ascii_lowercase())
            } else {
                name
            };
            self.pairs.push((id.0, key, value));
        }
        if let Some(id) = want_map {
            self.store_lazy(id);
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
    ///
    /// Text given borrowed for `'v` is not copied: the fields hold parts of it (all but
    /// those computed from it, such as a normalized path that differs or a decoded
    /// argument); text given owned is copied as needed.
    pub fn set_request<H: Text<'v>>(
        &mut self,
        method: impl Text<'v>,
        scheme_https: bool,
        host: impl Text<'v>,
        uri: impl Text<'v>,
        version: impl Text<'v>,
        headers: &[(H, H)],
    ) -> Result<()> {
        let host = host.text();
        self.set_uri_fields(scheme_https, &host, Src::of(&uri), true, true)?;
        self.set_method_host(method.text(), scheme_https, host, version.text())?;
        self.set_header_fields(headers)
    }

    /// After a rewrite: sets again the fields [`set_request`](Self::set_request) derives from
    /// the URI (when `uri` is given; the `raw.*` fields keep the request as it arrived) and
    /// from the headers (when `headers` are given; fields of headers no longer there are
    /// unset). The other fields stay as they are, so an update costs only what changed.
    pub fn update_request<U: Text<'v>, H: Text<'v>>(
        &mut self,
        scheme_https: bool,
        host: impl Text<'v>,
        uri: Option<U>,
        headers: Option<&[(H, H)]>,
    ) -> Result<()> {
        if let Some(uri) = uri {
            self.set_uri_fields(scheme_https, host.as_str(), Src::of(&uri), false, true)?;
        }
        if let Some(headers) = headers {
            let ids = self.scheme.request_ids();
            for f in HEADER_FIELDS {
                if let Some(id) = ids[f as usize] {
                    self.clear(id.0);
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
    pub fn update_query(
        &mut self,
        scheme_https: bool,
        host: impl Text<'v>,
        uri: impl Text<'v>,
    ) -> Result<()> {
        self.set_uri_fields(scheme_https, host.as_str(), Src::of(&uri), false, false)
    }

    /// Whether the context keeps a field [`set_request`](Self::set_request) derives from the
    /// headers: when it does not, [`update_request`](Self::update_request) need not be given
    /// changed headers (what it would set again, nothing reads).
    pub fn keeps_header_fields(&self) -> bool {
        HEADER_FIELDS.into_iter().any(|f| self.want(f).is_some())
    }

    fn set_method_host(
        &mut self,
        method: Cow<'v, str>,
        scheme_https: bool,
        host: Cow<'v, str>,
        version: Cow<'v, str>,
    ) -> Result<()> {
        let mut set = |f: R, v: &dyn Fn() -> Value<'v>| -> Result<()> {
            match self.want(f) {
                Some(id) => self.put(id, v()),
                None => Ok(()),
            }
        };
        set(R::Method, &|| Value::Bytes(bytes_of(&method)))?;
        set(R::Host, &|| Value::Bytes(bytes_of(&host)))?;
        set(R::Ssl, &|| scheme_https.into())?;
        set(R::Version, &|| Value::Bytes(bytes_of(&version)))
    }

    /// The URI's fields (with `raw`, the `raw.*` ones too).
    fn set_uri_fields(
        &mut self,
        scheme_https: bool,
        host: &str,
        uri: Src<'v, '_>,
        raw: bool,
        path_changed: bool,
    ) -> Result<()> {
        let whole = uri.as_str();
        let (path, query) = match whole.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (whole, None),
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
        // Most paths need no normalization: then the field is the path itself.
        let plain = want_decoded && is_plain_path(path.as_bytes());
        let mut decoded_path: Cow<'v, [u8]> = match (want_decoded, plain) {
            (false, _) => Cow::Borrowed(&[]),
            (true, true) => uri.part(path),
            (true, false) => Cow::Owned(normalize_path_fully(path.as_bytes())),
        };
        let mut ext: Cow<'v, [u8]> = match want_ext {
            false => Cow::Borrowed(&[]),
            true => match path.rsplit('/').next().and_then(|s| s.rsplit_once('.')) {
                Some((_, e)) if e.bytes().any(|b| b.is_ascii_uppercase()) => {
                    Cow::Owned(e.to_ascii_lowercase().into_bytes())
                }
                Some((_, e)) => uri.part(e),
                None => Cow::Borrowed(&[]),
            },
        };
        let query_part = || match query {
            Some(q) => uri.part(q),
            None => Cow::Borrowed(&[][..]),
        };
        let mut set = |f: R, v: &dyn Fn() -> Value<'v>| -> Result<()> {
            match self.want(f) {
                Some(id) => self.put(id, v()),
                None => Ok(()),
            }
        };
        if raw {
            set(R::RawFullUri, &|| {
                format!("{scheme_name}://{host}{whole}").into()
            })?;
            set(R::RawUri, &|| Value::Bytes(uri.bytes()))?;
            set(R::RawPath, &|| Value::Bytes(uri.part(path)))?;
            set(R::RawExt, &|| Value::Bytes(ext.clone()))?;
            set(R::RawQuery, &|| Value::Bytes(query_part()))?;
        }
        // The normalized path and the query: the URI itself when the path is as it was.
        let decoded_uri = || -> Cow<'v, [u8]> {
            match (plain, query) {
                (true, _) => uri.bytes(),
                (false, Some(q)) => Cow::Owned([&decoded_path[..], b"?", q.as_bytes()].concat()),
                (false, None) => decoded_path.clone(),
            }
        };
        set(R::FullUri, &|| {
            Value::bytes([format!("{scheme_name}://{host}").as_bytes(), &decoded_uri()].concat())
        })?;
        set(R::Uri, &|| Value::Bytes(decoded_uri()))?;
        set(R::Query, &|| Value::Bytes(query_part()))?;
        // The last users of the path and the extension take them (no copy).
        if let Some(id) = self.want(R::Path).filter(|_| path_changed) {
            self.put(id, Value::Bytes(std::mem::take(&mut decoded_path)))?;
        }
        if let Some(id) = self.want(R::Ext).filter(|_| path_changed) {
            self.put(id, Value::Bytes(std::mem::take(&mut ext)))?;
        }
        let ids = self.scheme.request_ids();
        let group = |f: [R; 3]| f.map(|f| ids[f as usize]);
        let (args_ids, raw_args_ids) = (
            group([R::Args, R::ArgsNames, R::ArgsValues]),
            group([R::RawArgs, R::RawArgsNames, R::RawArgsValues]),
        );
        let args = || {
            query
                .unwrap_or("")
                .split('&')
                .filter(|s| !s.is_empty())
                .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
        };
        if self.want_group(args_ids) {
            // Decoded (a part with nothing to decode is itself).
            let dec = |s: &str| -> Cow<'v, [u8]> {
                if s.contains(['%', '+']) {
                    let decoded = crate::functions::percent_decode(s.as_bytes(), true);
                    Cow::Owned(match String::from_utf8(decoded) {
                        Ok(s) => s.into_bytes(),
                        Err(e) => String::from_utf8_lossy(e.as_bytes())
                            .into_owned()
                            .into_bytes(),
                    })
                } else {
                    uri.part(s)
                }
            };
            self.set_multimap_ids(args_ids, args().map(|(k, v)| (dec(k), dec(v))), false)?;
        }
        if raw && self.want_group(raw_args_ids) {
            let pairs = args().map(|(k, v)| (uri.part(k), uri.part(v)));
            self.set_multimap_ids(raw_args_ids, pairs, false)?;
        }
        Ok(())
    }

    fn want_group(&self, ids: [Option<FieldId>; 3]) -> bool {
        ids.iter().any(|id| self.wanted_id(*id).is_some())
    }

    /// The headers' fields: the map and its names/values, the user agent, referer,
    /// X-Forwarded-For and cookies.
    fn set_header_fields<H: Text<'v>>(&mut self, headers: &[(H, H)]) -> Result<()> {
        let ids = self.scheme.request_ids();
        let group = |f: [R; 3]| f.map(|f| ids[f as usize]);
        let (header_ids, cookie_ids) = (
            group([R::Headers, R::HeadersNames, R::HeadersValues]),
            group([R::Cookies, R::CookiesNames, R::CookiesValues]),
        );
        let pairs = headers
            .iter()
            .map(|(k, v)| (into_bytes(k.text()), into_bytes(v.text())));
        self.set_multimap_ids(header_ids, pairs, true)?;
        // The headers are looked for only when their fields are kept, all in one pass: the
        // first user-agent, referer and x-forwarded-for, and the cookie headers.
        let (ua, referer, xff) = (
            self.want(R::UserAgent),
            self.want(R::Referer),
            self.want(R::XForwardedFor),
        );
        let want_cookies = self.want_group(cookie_ids);
        let want_cookie = self.want(R::Cookie);
        let any_cookie = want_cookies || want_cookie.is_some();
        let mut found: [Option<&H>; 3] = [None; 3];
        let mut cookies: SmallVec<[&H; 1]> = SmallVec::new();
        if ua.is_some() || referer.is_some() || xff.is_some() || any_cookie {
            for (k, v) in headers {
                let k = k.as_str();
                let slot = match k.len() {
                    10 if k.eq_ignore_ascii_case("user-agent") => 0,
                    7 if k.eq_ignore_ascii_case("referer") => 1,
                    15 if k.eq_ignore_ascii_case("x-forwarded-for") => 2,
                    6 if any_cookie && k.eq_ignore_ascii_case("cookie") => {
                        cookies.push(v);
                        continue;
                    }
                    _ => continue,
                };
                found[slot].get_or_insert(v);
            }
        }
        for (id, v) in [ua, referer, xff].into_iter().zip(found) {
            if let (Some(id), Some(v)) = (id, v) {
                self.put(id, Value::Bytes(into_bytes(v.text())))?;
            }
        }
        // One Cookie header (nearly always) is the field as it is; more are joined.
        let cookie: Cow<'v, str> = match cookies.as_slice() {
            [] => return Ok(()),
            [one] => one.text(),
            more => Cow::Owned(
                more.iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        };
        if let Some(id) = want_cookie {
            self.put(id, Value::Bytes(bytes_of(&cookie)))?;
        }
        if want_cookies {
            let pairs = cookie
                .split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
                .map(|(k, v)| (part(&cookie, k), part(&cookie, v)));
            self.set_multimap_ids(cookie_ids, pairs, false)?;
        }
        Ok(())
    }

    #[inline]
    fn forget_memo(&mut self) {
        if self.memo_used.replace(false) {
            for m in &mut self.memo {
                m.take();
            }
        }
    }

    pub(crate) fn value(&self, index: usize) -> Option<&Value<'v>> {
        match self.slots.get(index) {
            Some(&slot) if slot & LAZY != 0 => self.lazy_map(index, slot),
            Some(&slot) if slot != 0 => self.values[slot as usize - 1].1.as_ref(),
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

/// Text that fields are set from ([`ExecutionContext::set_request`]): a `&'v str`, which the
/// fields borrow, or a `Cow<'v, str>` (or a reference to one), borrowed when it is, else
/// copied.
pub trait Text<'v> {
    /// The text.
    fn as_str(&self) -> &str;
    /// The text when it lives for `'v` (the fields may borrow it).
    fn lasting(&self) -> Option<&'v str>;
    /// The text, borrowed for `'v` if it can be, else copied.
    fn text(&self) -> Cow<'v, str> {
        match self.lasting() {
            Some(s) => Cow::Borrowed(s),
            None => Cow::Owned(self.as_str().to_owned()),
        }
    }
}

impl<'v> Text<'v> for &'v str {
    fn as_str(&self) -> &str {
        self
    }
    fn lasting(&self) -> Option<&'v str> {
        Some(self)
    }
}

impl<'v> Text<'v> for Cow<'v, str> {
    fn as_str(&self) -> &str {
        self
    }
    fn lasting(&self) -> Option<&'v str> {
        match self {
            Cow::Borrowed(s) => Some(s),
            Cow::Owned(_) => None,
        }
    }
    fn text(&self) -> Cow<'v, str> {
        self.clone()
    }
}

impl<'v> Text<'v> for &Cow<'v, str> {
    fn as_str(&self) -> &str {
        self
    }
    fn lasting(&self) -> Option<&'v str> {
        (*self).lasting()
    }
    fn text(&self) -> Cow<'v, str> {
        (*self).clone()
    }
}

/// Text the fields are computed from, as [`Text`] gives it: living for `'v` (the fields borrow
/// its parts), or only for `'t` (the parts the fields hold are copied, and only those: not
/// the whole text first).
#[derive(Clone, Copy)]
enum Src<'v: 't, 't> {
    Lasting(&'v str),
    Passing(&'t str),
}

impl<'v: 't, 't> Src<'v, 't> {
    fn of<T: Text<'v>>(text: &'t T) -> Self {
        match text.lasting() {
            Some(s) => Src::Lasting(s),
            None => Src::Passing(text.as_str()),
        }
    }

    fn as_str(self) -> &'t str {
        match self {
            Src::Lasting(s) => s,
            Src::Passing(s) => s,
        }
    }

    /// All of it, as bytes.
    fn bytes(self) -> Cow<'v, [u8]> {
        match self {
            Src::Lasting(s) => Cow::Borrowed(s.as_bytes()),
            Src::Passing(s) => Cow::Owned(s.as_bytes().to_vec()),
        }
    }

    /// `part`, a part of it, borrowed when it lasts (else copied).
    fn part(self, part: &str) -> Cow<'v, [u8]> {
        if let Src::Lasting(w) = self {
            let start = (part.as_ptr() as usize).wrapping_sub(w.as_ptr() as usize);
            if let Some(p) = w.as_bytes().get(start..start.saturating_add(part.len())) {
                return Cow::Borrowed(p);
            }
        }
        Cow::Owned(part.as_bytes().to_vec())
    }
}

/// The bytes of `s`, borrowed for `'v` when `s` is.
fn bytes_of<'v>(s: &Cow<'v, str>) -> Cow<'v, [u8]> {
    into_bytes(s.clone())
}

/// The bytes of `s`.
fn into_bytes(s: Cow<'_, str>) -> Cow<'_, [u8]> {
    match s {
        Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
        Cow::Owned(s) => Cow::Owned(s.into_bytes()),
    }
}

/// `part`, a part of `whole`, borrowed for `'v` when `whole` is (else copied).
fn part<'v>(whole: &Cow<'v, str>, part: &str) -> Cow<'v, [u8]> {
    Src::of(whole).part(part)
}

/// Whether `path` has nothing to normalize (most paths): no escapes, backslashes, repeated
/// slashes or dot segments.
fn is_plain_path(path: &[u8]) -> bool {
    !path.iter().any(|&b| b == b'%' || b == b'\\')
        && !path.windows(2).any(|w| w == b"//" || w == b"/.")
        && path.first() != Some(&b'.')
}

/// Cloudflare-style URL path normalization (see [`ExecutionContext::set_request`]): what
/// the fields hold, [`is_plain_path`]'s shortcut and [`normalize_path_fully`].
#[cfg(test)]
fn normalize_path(path: &[u8]) -> Vec<u8> {
    if is_plain_path(path) {
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
