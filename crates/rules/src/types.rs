//! Types and runtime values.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

use crate::error::Quoted;

/// The type of a field, function result or sub-expression.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Type {
    /// `true` / `false`.
    Bool,
    /// A signed 64-bit integer.
    Int,
    /// A string (a sequence of bytes; Cloudflare calls these String or Bytes).
    Bytes,
    /// An IPv4 or IPv6 address.
    Ip,
    /// An array of values of one type.
    Array(Box<Type>),
    /// A map from string keys to values of one type.
    Map(Box<Type>),
}

impl Type {
    /// `Array<String>`, the type of `.names` / `.values` fields.
    pub fn array_of_strings() -> Type {
        Type::Array(Box::new(Type::Bytes))
    }

    /// `Map<Array<String>>`, the type of headers, cookies and query args.
    pub fn map_of_string_arrays() -> Type {
        Type::Map(Box::new(Type::array_of_strings()))
    }

    /// Whether this is `Array<String>` (without building one to compare with).
    pub fn is_array_of_strings(&self) -> bool {
        matches!(self, Type::Array(t) if **t == Type::Bytes)
    }

    /// Whether this is `Map<Array<String>>` (without building one to compare with).
    pub fn is_map_of_string_arrays(&self) -> bool {
        matches!(self, Type::Map(t) if t.is_array_of_strings())
    }

    /// A plural noun for messages such as `"lt" is not defined for IP addresses`.
    pub fn plural(&self) -> String {
        match self {
            Type::Bool => "Booleans".into(),
            Type::Int => "integers".into(),
            Type::Bytes => "strings".into(),
            Type::Ip => "IP addresses".into(),
            Type::Array(_) => format!("arrays ({self})"),
            Type::Map(_) => format!("maps ({self})"),
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Bool => f.write_str("Boolean"),
            Type::Int => f.write_str("Integer"),
            Type::Bytes => f.write_str("String"),
            Type::Ip => f.write_str("IP address"),
            Type::Array(t) => write!(f, "Array<{t}>"),
            Type::Map(t) => write!(f, "Map<{t}>"),
        }
    }
}

/// A runtime value: what a field holds in an execution context, or what a
/// function returns. Strings either borrow bytes that live for `'a` (a request's, while
/// the context that holds them is in use: set without a copy) or own theirs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    /// A Boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A string, as bytes (not necessarily UTF-8).
    Bytes(Cow<'a, [u8]>),
    /// An IP address.
    Ip(IpAddr),
    /// An array.
    Array(Vec<Value<'a>>),
    /// A map, in insertion order; keys are unique.
    Map(Vec<(Cow<'a, [u8]>, Value<'a>)>),
}

impl<'a> Value<'a> {
    /// A string value owning `bytes`.
    pub fn bytes(bytes: impl Into<Vec<u8>>) -> Value<'static> {
        Value::Bytes(Cow::Owned(bytes.into()))
    }

    /// The value with every string its own (borrowing nothing).
    pub fn into_owned(self) -> Value<'static> {
        match self {
            Value::Bool(b) => Value::Bool(b),
            Value::Int(i) => Value::Int(i),
            Value::Bytes(b) => Value::Bytes(Cow::Owned(b.into_owned())),
            Value::Ip(ip) => Value::Ip(ip),
            Value::Array(items) => Value::Array(items.into_iter().map(Value::into_owned).collect()),
            Value::Map(items) => Value::Map(
                items
                    .into_iter()
                    .map(|(k, v)| (Cow::Owned(k.into_owned()), v.into_owned()))
                    .collect(),
            ),
        }
    }

    /// Whether the value has type `ty` (arrays and maps: every element).
    pub fn has_type(&self, ty: &Type) -> bool {
        match (self, ty) {
            (Value::Bool(_), Type::Bool)
            | (Value::Int(_), Type::Int)
            | (Value::Bytes(_), Type::Bytes)
            | (Value::Ip(_), Type::Ip) => true,
            (Value::Array(items), Type::Array(t)) => items.iter().all(|v| v.has_type(t)),
            (Value::Map(items), Type::Map(t)) => items.iter().all(|(_, v)| v.has_type(t)),
            _ => false,
        }
    }

    /// The bytes of a string value.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// Looks up a map key.
    pub fn map_get(&self, key: &[u8]) -> Option<&Value<'a>> {
        match self {
            Value::Map(items) => items.iter().find(|(k, _)| **k == *key).map(|(_, v)| v),
            _ => None,
        }
    }
}

impl fmt::Display for Value<'_> {
    /// Rules-language literal syntax where one exists (`"text"`, `42`,
    /// `true`, `10.0.0.1`); arrays as `["a", "b"]`, maps as `{"k": …}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Bytes(b) => write!(f, "{}", Quoted(b)),
            Value::Ip(ip) => write!(f, "{ip}"),
            Value::Array(items) => {
                f.write_str("[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            Value::Map(items) => {
                f.write_str("{")?;
                for (i, (k, v)) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{}: {v}", Quoted(k))?;
                }
                f.write_str("}")
            }
        }
    }
}

impl From<bool> for Value<'_> {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<i64> for Value<'_> {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<i32> for Value<'_> {
    fn from(v: i32) -> Self {
        Value::Int(v.into())
    }
}
impl From<u16> for Value<'_> {
    fn from(v: u16) -> Self {
        Value::Int(v.into())
    }
}
impl From<u32> for Value<'_> {
    fn from(v: u32) -> Self {
        Value::Int(v.into())
    }
}
/// Borrows the string.
impl<'a> From<&'a str> for Value<'a> {
    fn from(v: &'a str) -> Self {
        Value::Bytes(Cow::Borrowed(v.as_bytes()))
    }
}
impl From<String> for Value<'_> {
    fn from(v: String) -> Self {
        Value::Bytes(Cow::Owned(v.into_bytes()))
    }
}
/// Borrows the bytes.
impl<'a> From<&'a [u8]> for Value<'a> {
    fn from(v: &'a [u8]) -> Self {
        Value::Bytes(Cow::Borrowed(v))
    }
}
impl From<Vec<u8>> for Value<'_> {
    fn from(v: Vec<u8>) -> Self {
        Value::Bytes(Cow::Owned(v))
    }
}
impl<'a> From<Cow<'a, [u8]>> for Value<'a> {
    fn from(v: Cow<'a, [u8]>) -> Self {
        Value::Bytes(v)
    }
}
impl<'a> From<Cow<'a, str>> for Value<'a> {
    fn from(v: Cow<'a, str>) -> Self {
        Value::Bytes(match v {
            Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
            Cow::Owned(s) => Cow::Owned(s.into_bytes()),
        })
    }
}
impl From<IpAddr> for Value<'_> {
    fn from(v: IpAddr) -> Self {
        Value::Ip(v)
    }
}
impl From<std::net::Ipv4Addr> for Value<'_> {
    fn from(v: std::net::Ipv4Addr) -> Self {
        Value::Ip(v.into())
    }
}
impl From<std::net::Ipv6Addr> for Value<'_> {
    fn from(v: std::net::Ipv6Addr) -> Self {
        Value::Ip(v.into())
    }
}
impl<'a, T: Into<Value<'a>>> From<Vec<T>> for Value<'a> {
    fn from(v: Vec<T>) -> Self {
        Value::Array(v.into_iter().map(Into::into).collect())
    }
}
