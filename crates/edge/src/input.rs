//! Reading JSON request bodies field by field, collecting every problem with its pointer.
//!
//! ```
//! use edgetrace_edge::input::{Fields, object};
//! let body = serde_json::json!({"name": 3, "extra": true});
//! let mut errors = Vec::new();
//! let map = object(&body, "", &mut errors).unwrap();
//! let fields = Fields::new(map, "");
//! fields.only(&["name"], &mut errors);
//! assert_eq!(fields.string("name", true, &mut errors), None);
//! assert_eq!(errors[0].pointer, "/extra");
//! assert_eq!(errors[1].to_string(), "/name: name: must be a string, not a number");
//! ```

use crate::{FieldError, FieldErrors};
use serde_json::{Map, Value};

/// The JSON type of a value, for messages ("a string", "null").
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Escapes one key for a JSON pointer (RFC 6901).
pub fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// `pointer` as a field path for messages: `/rules/2/action` → `rules[2].action`.
pub fn path(pointer: &str) -> String {
    let mut out = String::new();
    for part in pointer.split('/').skip(1) {
        if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&part.replace("~1", "/").replace("~0", "~"));
        }
    }
    if out.is_empty() { "body".into() } else { out }
}

/// `v` as an object, or an error at `pointer`.
pub fn object<'a>(
    v: &'a Value,
    pointer: &str,
    errors: &mut FieldErrors,
) -> Option<&'a Map<String, Value>> {
    match v {
        Value::Object(map) => Some(map),
        other => {
            errors.push(FieldError::new(
                pointer,
                format!(
                    "{}: must be an object, not {}",
                    path(pointer),
                    type_name(other)
                ),
            ));
            None
        }
    }
}

/// The fields of one JSON object at `base`.
#[derive(Clone)]
pub struct Fields<'a> {
    pub map: &'a Map<String, Value>,
    /// The object's own pointer (`""` for the body).
    pub base: String,
}

impl<'a> Fields<'a> {
    pub fn new(map: &'a Map<String, Value>, base: impl Into<String>) -> Fields<'a> {
        Fields {
            map,
            base: base.into(),
        }
    }

    /// The pointer of field `key`.
    pub fn pointer(&self, key: &str) -> String {
        format!("{}/{}", self.base, escape(key))
    }

    /// An error at field `key`, its message prefixed with the field's path.
    pub fn error(&self, key: &str, message: impl AsRef<str>) -> FieldError {
        let pointer = self.pointer(key);
        let message = format!("{}: {}", path(&pointer), message.as_ref());
        FieldError { pointer, message }
    }

    /// Reports every key not in `allowed`.
    pub fn only(&self, allowed: &[&str], errors: &mut FieldErrors) {
        for key in self.map.keys() {
            if !allowed.contains(&key.as_str()) {
                errors.push(self.error(
                    key,
                    format!("unknown field; allowed: {}", allowed.join(", ")),
                ));
            }
        }
    }

    /// The value of `key`; null counts as absent.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// A required field that is missing.
    pub fn missing(&self, key: &str, errors: &mut FieldErrors) {
        errors.push(self.error(key, "required"));
    }

    pub fn string(&self, key: &str, required: bool, errors: &mut FieldErrors) -> Option<String> {
        match self.get(key) {
            None => {
                if required {
                    self.missing(key, errors);
                }
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                errors.push(self.error(key, format!("must be a string, not {}", type_name(other))));
                None
            }
        }
    }

    pub fn boolean(&self, key: &str, errors: &mut FieldErrors) -> Option<bool> {
        match self.get(key) {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(other) => {
                errors.push(self.error(
                    key,
                    format!("must be true or false, not {}", type_name(other)),
                ));
                None
            }
        }
    }

    /// An integer within `min..=max`.
    pub fn integer(&self, key: &str, min: i64, max: i64, errors: &mut FieldErrors) -> Option<i64> {
        let v = self.get(key)?;
        match v.as_i64() {
            Some(n) if (min..=max).contains(&n) => Some(n),
            Some(n) => {
                errors.push(self.error(key, format!("{n} is out of range; allowed: {min}-{max}")));
                None
            }
            None => {
                errors.push(self.error(
                    key,
                    format!("must be an integer from {min} to {max}, not {v}"),
                ));
                None
            }
        }
    }

    pub fn array(&self, key: &str, errors: &mut FieldErrors) -> Option<&'a Vec<Value>> {
        match self.get(key)? {
            Value::Array(items) => Some(items),
            other => {
                errors.push(self.error(key, format!("must be an array, not {}", type_name(other))));
                None
            }
        }
    }

    pub fn object(&self, key: &str, errors: &mut FieldErrors) -> Option<&'a Map<String, Value>> {
        match self.get(key)? {
            Value::Object(map) => Some(map),
            other => {
                errors
                    .push(self.error(key, format!("must be an object, not {}", type_name(other))));
                None
            }
        }
    }
}
