//! Type checking: [`Expr`] → typed [`Node`] tree with operators and
//! literal arguments compiled.

use std::net::IpAddr;

use crate::ast::{CmpOp, Expr, Index, Literal, LogicalOp, Rhs};
use crate::error::{Error, ErrorKind, Result, Span, suggest};
use crate::functions::{self, Func, JsonKey};
use crate::lists::{ListKind, Lists};
use crate::ops::{self, BytesSet, IpSet, Op};
use crate::scheme::{ExprKind, Scheme, Stage, Target};
use crate::types::{Type, Value};

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub kind: NodeKind,
    pub ty: Type,
    /// Produced by `[*]`: stands for every element of an array.
    pub each: bool,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub(crate) enum Key {
    Pos(usize),
    Name(Vec<u8>),
}

#[derive(Debug, Clone)]
pub(crate) enum NodeKind {
    Lit(Value<'static>),
    Field {
        index: usize,
        name: String,
    },
    Index {
        base: Box<Node>,
        key: Key,
    },
    Each(Box<Node>),
    Call {
        func: Func,
        args: Vec<Node>,
        /// The context slot that keeps the result ([`Scheme::memo_slot`]): set for a call of
        /// one field (`lower(http.host)`, `lower(http.request.headers.names[*])`), which
        /// many rules of a zone repeat, so each context computes it once.
        memo: Option<usize>,
    },
    Cmp {
        lhs: Box<Node>,
        op: Op,
        cmp: CmpOp,
        rhs_text: String,
    },
    Not(Box<Node>),
    Logic {
        op: LogicalOp,
        items: Vec<Node>,
    },
}

pub(crate) struct Checker<'a> {
    pub scheme: &'a Scheme,
    pub target: Target,
    pub lists: Option<&'a dyn Lists>,
    pub text: &'a str,
    pub replace_calls: usize,
    pub concat_calls: usize,
}

fn err(kind: ErrorKind, span: Span, msg: impl Into<String>) -> Error {
    Error::new(kind, span, msg)
}

fn article(ty: &Type) -> &'static str {
    match ty {
        Type::Int | Type::Ip | Type::Array(_) => "an",
        _ => "a",
    }
}

impl Checker<'_> {
    fn src(&self, span: Span) -> &str {
        self.text.get(span.start..span.end).unwrap_or("")
    }

    pub(crate) fn check_root(&mut self, expr: &Expr) -> Result<Node> {
        let node = self.node(expr)?;
        match self.target.kind {
            ExprKind::Filter => self.need_bool(&node, "a filter expression")?,
            ExprKind::Value => {
                if node.ty != Type::Bytes || node.each {
                    let ty = self.shown_type(&node);
                    let hint = match node.ty {
                        Type::Int | Type::Bool | Type::Ip if !node.each => {
                            "; convert it with to_string(…)"
                        }
                        Type::Array(_) => "; pick an element with [0] or join(…, \",\")",
                        _ => "",
                    };
                    return Err(err(
                        ErrorKind::Type,
                        node.span,
                        format!(
                            "a value expression must produce a String, but this is {} {ty}{hint}",
                            article(&node.ty)
                        ),
                    ));
                }
            }
        }
        Ok(node)
    }

    fn shown_type(&self, node: &Node) -> String {
        if node.each {
            format!("{} (each element, from [*])", node.ty)
        } else {
            node.ty.to_string()
        }
    }

    fn need_bool(&self, node: &Node, what: &str) -> Result<()> {
        if node.ty == Type::Bool && !node.each {
            return Ok(());
        }
        let text = self.src(node.span);
        let msg = if node.each && node.ty == Type::Bool
            || node.ty == Type::Array(Box::new(Type::Bool))
        {
            format!(
                "{what} must be Boolean, but `{text}` is Array<Boolean>: wrap it in any(…) or all(…)"
            )
        } else if node.ty == Type::Bytes {
            format!(
                "{what} must be Boolean, but `{text}` is a String: compare it, e.g. `{text} eq \"…\"`"
            )
        } else {
            format!(
                "{what} must be Boolean, but `{text}` is {} {}",
                article(&node.ty),
                self.shown_type(node)
            )
        };
        Err(err(ErrorKind::Type, node.span, msg))
    }

    fn node(&mut self, expr: &Expr) -> Result<Node> {
        match expr {
            Expr::Field { name, span } => self.field(name, *span),
            Expr::Literal { value, span } => {
                let (v, ty) = match value {
                    Literal::String(s) => (Value::bytes(s.clone()), Type::Bytes),
                    Literal::Int(i) => (Value::Int(*i), Type::Int),
                    Literal::Bool(b) => (Value::Bool(*b), Type::Bool),
                    Literal::Ip(ip) => (Value::Ip(*ip), Type::Ip),
                    Literal::Cidr(..) | Literal::IntRange(..) | Literal::IpRange(..) => {
                        return Err(err(
                            ErrorKind::Type,
                            *span,
                            "CIDRs and ranges are only allowed inside a set, e.g. ip.src in {10.0.0.0/8}",
                        ));
                    }
                };
                Ok(Node {
                    kind: NodeKind::Lit(v),
                    ty,
                    each: false,
                    span: *span,
                })
            }
            Expr::Index { base, index, span } => self.index(base, index, *span),
            Expr::Call { name, args, span } => self.call(name, args, *span),
            Expr::Compare {
                lhs,
                op,
                op_span,
                rhs,
                span,
            } => self.compare(lhs, *op, *op_span, rhs, *span),
            Expr::Not { inner, span } => {
                let inner = self.node(inner)?;
                self.need_bool(&inner, "the operand of \"not\"")?;
                Ok(Node {
                    kind: NodeKind::Not(Box::new(inner)),
                    ty: Type::Bool,
                    each: false,
                    span: *span,
                })
            }
            Expr::Logical { op, items, span } => {
                let mut nodes = Vec::with_capacity(items.len());
                for item in items {
                    let n = self.node(item)?;
                    self.need_bool(&n, &format!("an operand of \"{}\"", op.word()))?;
                    nodes.push(n);
                }
                Ok(Node {
                    kind: NodeKind::Logic {
                        op: *op,
                        items: nodes,
                    },
                    ty: Type::Bool,
                    each: false,
                    span: *span,
                })
            }
        }
    }

    fn field(&self, name: &str, span: Span) -> Result<Node> {
        let Some(id) = self.scheme.field(name) else {
            if functions::NAMES.contains(&name) {
                return Err(err(
                    ErrorKind::UnknownField,
                    span,
                    format!(
                        "unknown field \"{name}\" — {name} is a function: call it as {name}(…)"
                    ),
                ));
            }
            let names = self.scheme.fields().iter().map(|f| f.name.as_str());
            let msg = match suggest(name, names) {
                Some(s) => format!("unknown field \"{name}\" — did you mean \"{s}\"?"),
                None => format!("unknown field \"{name}\""),
            };
            return Err(err(ErrorKind::UnknownField, span, msg));
        };
        let Some(def) = self.scheme.field_def(id) else {
            return Err(err(
                ErrorKind::UnknownField,
                span,
                format!("unknown field \"{name}\""),
            ));
        };
        if def.response_only {
            if let Some(phase) = self.target.phase.filter(|p| p.stage() == Stage::Request) {
                return Err(err(
                    ErrorKind::Availability,
                    span,
                    format!(
                        "field \"{name}\" is only available in response phases, not in phase {phase}"
                    ),
                ));
            }
        }
        Ok(Node {
            kind: NodeKind::Field {
                index: id.index(),
                name: name.to_owned(),
            },
            ty: def.ty.clone(),
            each: false,
            span,
        })
    }

    fn index(&mut self, base: &Expr, index: &Index, span: Span) -> Result<Node> {
        let base = self.node(base)?;
        let text = self.src(base.span).to_owned();
        if base.each && *index == Index::Each {
            return Err(err(
                ErrorKind::Type,
                span,
                format!(
                    "`{text}` already stands for each element ([*]); [*] cannot be applied twice"
                ),
            ));
        }
        let base_each = base.each;
        let (kind, ty, each) = match (&base.ty, index) {
            (Type::Array(t), Index::Int(i)) => {
                let pos = usize::try_from(*i).unwrap_or(usize::MAX);
                let t = (**t).clone();
                (
                    NodeKind::Index {
                        base: Box::new(base),
                        key: Key::Pos(pos),
                    },
                    t,
                    base_each,
                )
            }
            (Type::Map(t), Index::Key(k)) => {
                let t = (**t).clone();
                (
                    NodeKind::Index {
                        base: Box::new(base),
                        key: Key::Name(k.clone()),
                    },
                    t,
                    base_each,
                )
            }
            (Type::Array(t) | Type::Map(t), Index::Each) => {
                let t = (**t).clone();
                (NodeKind::Each(Box::new(base)), t, true)
            }
            (Type::Array(_), Index::Key(_)) => {
                return Err(err(
                    ErrorKind::Type,
                    span,
                    format!(
                        "`{text}` is an array: index it with a position such as [0], or [*] for every element"
                    ),
                ));
            }
            (Type::Map(_), Index::Int(_)) => {
                return Err(err(
                    ErrorKind::Type,
                    span,
                    format!(
                        "`{text}` is a map: index it with a key such as [\"name\"], or [*] for every value"
                    ),
                ));
            }
            (ty, _) => {
                return Err(err(
                    ErrorKind::Type,
                    span,
                    format!("`{text}` is {} {ty}, which cannot be indexed", article(ty)),
                ));
            }
        };
        Ok(Node {
            kind,
            ty,
            each,
            span,
        })
    }

    fn compare(
        &mut self,
        lhs: &Expr,
        op: CmpOp,
        op_span: Span,
        rhs: &Rhs,
        span: Span,
    ) -> Result<Node> {
        let lhs = self.node(lhs)?;
        let text = self.src(lhs.span).to_owned();
        let word = op.word();
        let allowed: &[CmpOp] = match lhs.ty {
            Type::Bool => &[CmpOp::Eq, CmpOp::Ne],
            Type::Int => &[
                CmpOp::Eq,
                CmpOp::Ne,
                CmpOp::Lt,
                CmpOp::Le,
                CmpOp::Gt,
                CmpOp::Ge,
                CmpOp::In,
            ],
            Type::Ip => &[CmpOp::Eq, CmpOp::Ne, CmpOp::In],
            Type::Bytes => &[
                CmpOp::Eq,
                CmpOp::Ne,
                CmpOp::Lt,
                CmpOp::Le,
                CmpOp::Gt,
                CmpOp::Ge,
                CmpOp::Contains,
                CmpOp::Matches,
                CmpOp::Wildcard,
                CmpOp::StrictWildcard,
                CmpOp::In,
            ],
            Type::Array(_) | Type::Map(_) => &[],
        };
        if !allowed.contains(&op) {
            let msg = match lhs.ty {
                Type::Array(_) | Type::Map(_) => format!(
                    "\"{word}\" is not defined for {}: use [*] to compare every element (inside any(…) or all(…)), or an index such as [0]",
                    lhs.ty.plural()
                ),
                Type::Bool => format!(
                    "\"{word}\" is not defined for Booleans: use eq, ne, or the field alone (`{text}` / `not {text}`)"
                ),
                Type::Int => format!(
                    "\"{word}\" is not defined for integers: use eq, ne, lt, le, gt, ge or in"
                ),
                _ => format!("\"{word}\" is not defined for IP addresses: use eq, ne or in {{…}}"),
            };
            return Err(err(ErrorKind::Type, op_span, msg));
        }
        let rhs_text = rhs.to_string();
        let op_compiled = match rhs {
            Rhs::List(name, list_span) => self.list_op(&lhs, &text, name, *list_span)?,
            Rhs::Set(items, _) => self.set_op(&lhs, &text, items)?,
            Rhs::Literal(lit, lit_span) => {
                if op == CmpOp::In {
                    return Err(err(
                        ErrorKind::Syntax,
                        *lit_span,
                        "\"in\" takes a set {…} or a list $name",
                    ));
                }
                self.literal_op(&lhs, &text, op, lit, *lit_span)?
            }
        };
        let ty = if lhs.each {
            Type::Array(Box::new(Type::Bool))
        } else {
            Type::Bool
        };
        Ok(Node {
            kind: NodeKind::Cmp {
                lhs: Box::new(lhs),
                op: op_compiled,
                cmp: op,
                rhs_text,
            },
            ty,
            each: false,
            span,
        })
    }

    fn mismatch(&self, lhs: &Node, text: &str, lit: &Literal, span: Span) -> Error {
        let expected = match lhs.ty {
            Type::Bytes => "a string such as \"text\"",
            Type::Int => "an integer such as 42",
            Type::Bool => "true or false",
            Type::Ip => "an IP address such as 192.0.2.1 (or, in a set, a CIDR such as 10.0.0.0/8)",
            _ => "a value of the same type",
        };
        let found = match lit {
            Literal::String(_) => "a string",
            Literal::Int(_) => "an integer",
            Literal::Bool(_) => "a Boolean",
            Literal::Ip(_) => "an IP address",
            Literal::Cidr(..) => "a CIDR",
            Literal::IntRange(..) => "an integer range",
            Literal::IpRange(..) => "an IP range",
        };
        err(
            ErrorKind::Type,
            span,
            format!(
                "`{text}` is {} {}, so the value must be {expected}, not {found}",
                article(&lhs.ty),
                lhs.ty
            ),
        )
    }

    fn literal_op(
        &self,
        lhs: &Node,
        text: &str,
        op: CmpOp,
        lit: &Literal,
        span: Span,
    ) -> Result<Op> {
        match (&lhs.ty, lit) {
            (Type::Bytes, Literal::String(s)) => match op {
                CmpOp::Contains => Ok(Op::Contains(s.clone())),
                CmpOp::Matches => {
                    let pattern = std::str::from_utf8(s).map_err(|_| {
                        err(
                            ErrorKind::Pattern,
                            span,
                            "a regular expression must be valid UTF-8",
                        )
                    })?;
                    regex::bytes::RegexBuilder::new(pattern)
                        .unicode(false)
                        .size_limit(1 << 22)
                        .nest_limit(64)
                        .build()
                        .map(|re| ops::literal_regex(pattern).unwrap_or(Op::Matches(re)))
                        .map_err(|e| {
                            let detail = e.to_string();
                            let last = detail.lines().last().unwrap_or("").trim().to_owned();
                            err(
                                ErrorKind::Pattern,
                                span,
                                format!("invalid regular expression: {last}"),
                            )
                        })
                }
                CmpOp::Wildcard | CmpOp::StrictWildcard => {
                    ops::Wildcard::new(s, op == CmpOp::StrictWildcard)
                        .map(Op::Wildcard)
                        .map_err(|e| {
                            err(
                                ErrorKind::Pattern,
                                span,
                                format!("invalid wildcard pattern: {e}"),
                            )
                        })
                }
                _ => Ok(Op::Order(op, Value::bytes(s.clone()))),
            },
            (Type::Int, Literal::Int(i)) => Ok(Op::Order(op, Value::Int(*i))),
            (Type::Bool, Literal::Bool(b)) => Ok(Op::Order(op, Value::Bool(*b))),
            (Type::Ip, Literal::Ip(ip)) => Ok(Op::Order(op, Value::Ip(*ip))),
            (Type::Ip, Literal::Cidr(..) | Literal::IpRange(..)) => Err(err(
                ErrorKind::Type,
                span,
                format!(
                    "to test whether an address is in a network, use a set: `{text} in {{{lit}}}`"
                ),
            )),
            _ => Err(self.mismatch(lhs, text, lit, span)),
        }
    }

    fn set_op(&self, lhs: &Node, text: &str, items: &[(Literal, Span)]) -> Result<Op> {
        match lhs.ty {
            Type::Bytes => {
                let mut out = Vec::new();
                for (lit, span) in items {
                    match lit {
                        Literal::String(s) => out.push(s.clone()),
                        _ => return Err(self.mismatch(lhs, text, lit, *span)),
                    }
                }
                Ok(Op::InBytes(BytesSet::new(out)))
            }
            Type::Int => {
                let mut out = Vec::new();
                for (lit, span) in items {
                    match lit {
                        Literal::Int(i) => out.push((*i, *i)),
                        Literal::IntRange(a, b) => out.push((*a, *b)),
                        _ => return Err(self.mismatch(lhs, text, lit, *span)),
                    }
                }
                Ok(Op::int_ranges(out))
            }
            Type::Ip => {
                let mut out: Vec<(IpAddr, IpAddr)> = Vec::new();
                for (lit, span) in items {
                    match lit {
                        Literal::Ip(ip) => out.push((*ip, *ip)),
                        Literal::Cidr(ip, len) => out.push(ops::cidr_range(*ip, *len)),
                        Literal::IpRange(a, b) => out.push((*a, *b)),
                        _ => return Err(self.mismatch(lhs, text, lit, *span)),
                    }
                }
                Ok(Op::InIp(IpSet::new(out)))
            }
            _ => Err(err(
                ErrorKind::Type,
                lhs.span,
                format!("\"in\" is not defined for {}", lhs.ty.plural()),
            )),
        }
    }

    fn list_op(&self, lhs: &Node, text: &str, name: &str, span: Span) -> Result<Op> {
        let expected = match lhs.ty {
            Type::Ip => ListKind::Ip,
            Type::Int => ListKind::Asn,
            Type::Bytes => ListKind::Hostname,
            _ => {
                return Err(err(
                    ErrorKind::List,
                    span,
                    format!(
                        "lists hold IP addresses, hostnames or ASNs; `{text}` is {} {}",
                        article(&lhs.ty),
                        lhs.ty
                    ),
                ));
            }
        };
        if let Some(lists) = self.lists {
            match lists.kind(name) {
                None => return Err(err(ErrorKind::List, span, format!("unknown list ${name}"))),
                Some(k) if k != expected => {
                    return Err(err(
                        ErrorKind::List,
                        span,
                        format!(
                            "${name} is {} {k} list, but `{text}` needs {} {expected} list",
                            if k == ListKind::Asn { "an" } else { "a" },
                            if expected == ListKind::Asn || expected == ListKind::Ip {
                                "an"
                            } else {
                                "a"
                            }
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(Op::InList(name.to_owned()))
    }

    fn call(&mut self, name: &str, args: &[Expr], span: Span) -> Result<Node> {
        let name_span = Span::new(span.start, span.start + name.len());
        if !functions::NAMES.contains(&name) {
            let msg = match suggest(name, functions::NAMES.iter().copied()) {
                Some(s) => format!("unknown function \"{name}\" — did you mean \"{s}\"?"),
                None => format!("unknown function \"{name}\""),
            };
            return Err(err(ErrorKind::UnknownFunction, name_span, msg));
        }
        if let Some(msg) = functions::check_availability(name, self.target) {
            return Err(err(ErrorKind::Availability, name_span, msg));
        }
        let mut nodes = Vec::with_capacity(args.len());
        for a in args {
            nodes.push(self.node(a)?);
        }
        let sig = CallCheck {
            name,
            span,
            nodes: &nodes,
            text: self.text,
        };
        let (func, ret, mappable) = match name {
            "any" | "all" => {
                sig.arity(1, 1)?;
                let a = &nodes[0];
                if a.each || a.ty != Type::Array(Box::new(Type::Bool)) {
                    return Err(err(
                        ErrorKind::Type,
                        a.span,
                        format!(
                            "{name}() takes an Array<Boolean>, e.g. {name}(http.request.headers.names[*] eq \"x\"); this is {} {}",
                            article(&a.ty),
                            self.shown_type(a)
                        ),
                    ));
                }
                (
                    if name == "any" { Func::Any } else { Func::All },
                    Type::Bool,
                    false,
                )
            }
            "lower" | "upper" => {
                sig.arity(1, 1)?;
                sig.ty(0, &Type::Bytes, true)?;
                (
                    if name == "lower" {
                        Func::Lower
                    } else {
                        Func::Upper
                    },
                    Type::Bytes,
                    true,
                )
            }
            "len" => {
                sig.arity(1, 1)?;
                let a = &nodes[0];
                let ok = matches!(a.ty, Type::Bytes)
                    || (!a.each && matches!(a.ty, Type::Array(_) | Type::Map(_)));
                if !ok {
                    return Err(sig.bad_type(0, "a String or an array"));
                }
                (Func::Len, Type::Int, true)
            }
            "concat" => {
                self.concat_calls += 1;
                let url_rewrite =
                    self.target == Target::value_in(crate::scheme::Phase::HttpRequestTransform);
                if url_rewrite && self.concat_calls > 1 {
                    return Err(err(
                        ErrorKind::Argument,
                        name_span,
                        "concat() can appear only once in a URL rewrite expression",
                    ));
                }
                sig.arity(1, usize::MAX)?;
                let first = nodes[0].ty.clone();
                let ok_kind = matches!(first, Type::Bytes | Type::Array(_));
                for (i, n) in nodes.iter().enumerate() {
                    if n.each || !ok_kind || n.ty != first {
                        return Err(sig.bad_type(
                            i,
                            if matches!(first, Type::Array(_)) && ok_kind {
                                "an array of the same type as the first argument"
                            } else {
                                "a String (all arguments Strings, or all arrays)"
                            },
                        ));
                    }
                }
                (Func::Concat, first, false)
            }
            "starts_with" | "ends_with" => {
                sig.arity(2, 2)?;
                sig.ty(0, &Type::Bytes, true)?;
                sig.not_literal(0)?;
                sig.ty(1, &Type::Bytes, false)?;
                (
                    if name == "starts_with" {
                        Func::StartsWith
                    } else {
                        Func::EndsWith
                    },
                    Type::Bool,
                    true,
                )
            }
            "substring" => {
                sig.arity(2, 3)?;
                sig.ty(0, &Type::Bytes, true)?;
                sig.ty(1, &Type::Int, false)?;
                if nodes.len() == 3 {
                    sig.ty(2, &Type::Int, false)?;
                }
                (Func::Substring, Type::Bytes, true)
            }
            "split" => {
                sig.arity(3, 3)?;
                sig.ty(0, &Type::Bytes, false)?;
                let sep = sig.lit_bytes(1)?;
                if sep.is_empty() {
                    return Err(err(
                        ErrorKind::Argument,
                        nodes[1].span,
                        "the separator of split() must not be empty",
                    ));
                }
                let limit = sig.lit_int(2, 1, 128)?;
                (
                    Func::Split {
                        sep,
                        limit: usize::try_from(limit).unwrap_or(1),
                    },
                    Type::array_of_strings(),
                    false,
                )
            }
            "join" => {
                sig.arity(2, 2)?;
                sig.ty(0, &Type::array_of_strings(), false)?;
                sig.ty(1, &Type::Bytes, false)?;
                (Func::Join, Type::Bytes, false)
            }
            "url_decode" => {
                sig.arity(1, 2)?;
                sig.ty(0, &Type::Bytes, true)?;
                let opts = if nodes.len() == 2 {
                    sig.lit_flags(1, "ru")?
                } else {
                    Vec::new()
                };
                (
                    Func::UrlDecode {
                        recursive: opts.contains(&b'r'),
                        unicode: opts.contains(&b'u'),
                    },
                    Type::Bytes,
                    true,
                )
            }
            "decode_base64" => {
                sig.arity(1, 1)?;
                sig.ty(0, &Type::Bytes, true)?;
                sig.not_literal(0)?;
                (Func::DecodeBase64, Type::Bytes, true)
            }
            "encode_base64" => {
                sig.arity(1, 2)?;
                sig.ty(0, &Type::Bytes, true)?;
                let flags = if nodes.len() == 2 {
                    sig.lit_flags(1, "up")?
                } else {
                    Vec::new()
                };
                (
                    Func::EncodeBase64 {
                        url_safe: flags.contains(&b'u'),
                        pad: flags.contains(&b'p'),
                    },
                    Type::Bytes,
                    true,
                )
            }
            "lookup_json_string" | "lookup_json_integer" => {
                sig.arity(2, usize::MAX)?;
                sig.ty(0, &Type::Bytes, true)?;
                let mut keys = Vec::new();
                for (i, n) in nodes.iter().enumerate().skip(1) {
                    match &n.kind {
                        NodeKind::Lit(Value::Bytes(b)) => keys.push(JsonKey::Name(String::from_utf8_lossy(b).into_owned())),
                        NodeKind::Lit(Value::Int(p)) if *p >= 0 => keys.push(JsonKey::Pos(usize::try_from(*p).unwrap_or(usize::MAX))),
                        _ => return Err(sig.bad_type(i, "a literal string (attribute name) or a non-negative literal integer (array position)")),
                    }
                }
                let integer = name == "lookup_json_integer";
                (
                    Func::LookupJson { integer, keys },
                    if integer { Type::Int } else { Type::Bytes },
                    true,
                )
            }
            "remove_bytes" => {
                sig.arity(2, 2)?;
                sig.ty(0, &Type::Bytes, true)?;
                sig.ty(1, &Type::Bytes, false)?;
                (Func::RemoveBytes, Type::Bytes, true)
            }
            "remove_query_args" => {
                sig.arity(2, usize::MAX)?;
                let ok = matches!(&nodes[0].kind, NodeKind::Field { name, .. }
                    if name == "http.request.uri.query" || name == "raw.http.request.uri.query");
                if !ok {
                    return Err(err(
                        ErrorKind::Argument,
                        nodes[0].span,
                        "the first argument of remove_query_args() must be the field http.request.uri.query or raw.http.request.uri.query",
                    ));
                }
                let mut names = Vec::new();
                for i in 1..nodes.len() {
                    names.push(sig.lit_bytes(i)?);
                }
                (Func::RemoveQueryArgs { names }, Type::Bytes, false)
            }
            "to_string" => {
                sig.arity(1, 1)?;
                if !matches!(nodes[0].ty, Type::Int | Type::Bool | Type::Ip) {
                    return Err(sig.bad_type(0, "an Integer, a Boolean or an IP address"));
                }
                (Func::ToString, Type::Bytes, true)
            }
            "regex_replace" => {
                sig.arity(3, 3)?;
                self.replace_once(name, name_span)?;
                sig.ty(0, &Type::Bytes, false)?;
                let pattern = sig.lit_bytes(1)?;
                let pattern_str = std::str::from_utf8(&pattern).map_err(|_| {
                    err(
                        ErrorKind::Pattern,
                        nodes[1].span,
                        "a regular expression must be valid UTF-8",
                    )
                })?;
                let re = regex::bytes::RegexBuilder::new(pattern_str)
                    .unicode(false)
                    .size_limit(1 << 22)
                    .nest_limit(64)
                    .build()
                    .map_err(|e| {
                        let detail = e.to_string();
                        let last = detail.lines().last().unwrap_or("").trim().to_owned();
                        err(
                            ErrorKind::Pattern,
                            nodes[1].span,
                            format!("invalid regular expression: {last}"),
                        )
                    })?;
                let replacement = sig.lit_bytes(2)?;
                check_replacement(&replacement, re.captures_len() - 1, nodes[2].span)?;
                (Func::RegexReplace { re, replacement }, Type::Bytes, false)
            }
            "wildcard_replace" => {
                sig.arity(3, 4)?;
                self.replace_once(name, name_span)?;
                sig.ty(0, &Type::Bytes, false)?;
                sig.not_literal(0)?;
                let pattern = sig.lit_bytes(1)?;
                let flags = if nodes.len() == 4 {
                    sig.lit_flags(3, "s")?
                } else {
                    Vec::new()
                };
                let re = ops::wildcard_regex(&pattern, flags.contains(&b's')).map_err(|e| {
                    err(
                        ErrorKind::Pattern,
                        nodes[1].span,
                        format!("invalid wildcard pattern: {e}"),
                    )
                })?;
                let replacement = sig.lit_bytes(2)?;
                check_replacement(&replacement, re.captures_len() - 1, nodes[2].span)?;
                (
                    Func::WildcardReplace { re, replacement },
                    Type::Bytes,
                    false,
                )
            }
            "cidr" => {
                sig.arity(3, 3)?;
                sig.ty(0, &Type::Ip, true)?;
                sig.not_literal(0)?;
                let v4 = sig.lit_int(1, 1, 32)?;
                let v6 = sig.lit_int(2, 1, 128)?;
                (
                    Func::Cidr {
                        v4: u8::try_from(v4).unwrap_or(32),
                        v6: u8::try_from(v6).unwrap_or(128),
                    },
                    Type::Ip,
                    true,
                )
            }
            "cidr6" => {
                sig.arity(2, 2)?;
                sig.ty(0, &Type::Ip, true)?;
                sig.not_literal(0)?;
                let v6 = sig.lit_int(1, 1, 128)?;
                (
                    Func::Cidr {
                        v4: 32,
                        v6: u8::try_from(v6).unwrap_or(128),
                    },
                    Type::Ip,
                    true,
                )
            }
            "uuidv4" => {
                sig.arity(1, 1)?;
                if !matches!(&nodes[0].kind, NodeKind::Field { name, .. } if name == "cf.random_seed")
                {
                    return Err(err(
                        ErrorKind::Argument,
                        nodes[0].span,
                        "uuidv4() takes the field cf.random_seed as its source of randomness",
                    ));
                }
                (Func::Uuidv4, Type::Bytes, false)
            }
            _ => {
                // "sha256": the only name left in functions::NAMES.
                sig.arity(1, 1)?;
                sig.ty(0, &Type::Bytes, false)?;
                (Func::Sha256, Type::Bytes, false)
            }
        };
        for (i, n) in nodes.iter().enumerate() {
            if n.each && (i > 0 || !mappable) {
                return Err(err(
                    ErrorKind::Type,
                    n.span,
                    format!(
                        "{name}() cannot take each element ([*]) as argument {}",
                        i + 1
                    ),
                ));
            }
        }
        let mapped = nodes.first().is_some_and(|n| n.each);
        let ty = if mapped {
            Type::Array(Box::new(ret))
        } else {
            ret
        };
        // A call of one field: the same value for every rule of a context.
        let memo = match nodes.as_slice() {
            [
                Node {
                    kind: NodeKind::Field { name: field, .. },
                    each: false,
                    ..
                },
            ] => self.scheme.memo_slot(&format!("{func:?}({field})")),
            [
                Node {
                    kind: NodeKind::Each(base),
                    ..
                },
            ] => match &base.kind {
                NodeKind::Field { name: field, .. } => {
                    self.scheme.memo_slot(&format!("{func:?}({field}[*])"))
                }
                _ => None,
            },
            _ => None,
        };
        Ok(Node {
            kind: NodeKind::Call {
                func,
                args: nodes,
                memo,
            },
            ty,
            each: false,
            span,
        })
    }

    fn replace_once(&mut self, name: &str, span: Span) -> Result<()> {
        self.replace_calls += 1;
        if self.replace_calls > 1 {
            return Err(err(
                ErrorKind::Argument,
                span,
                format!(
                    "{name}(): regex_replace() and wildcard_replace() can appear only once in an expression, and cannot be nested"
                ),
            ));
        }
        Ok(())
    }
}

fn check_replacement(rep: &[u8], groups: usize, span: Span) -> Result<()> {
    let mut i = 0;
    let mut refs = 0;
    while i < rep.len() {
        if rep[i] == b'$' {
            if rep.get(i + 1) == Some(&b'$') {
                i += 2;
                continue;
            }
            let close = rep[i..].iter().position(|&b| b == b'}');
            let num = match (rep.get(i + 1), close) {
                (Some(b'{'), Some(c)) => std::str::from_utf8(&rep[i + 2..i + c])
                    .ok()
                    .and_then(|s| s.parse::<usize>().ok()),
                _ => None,
            };
            match (num, close) {
                (Some(n), Some(c)) if n <= groups => {
                    refs += 1;
                    i += c + 1;
                    continue;
                }
                (Some(n), _) => {
                    return Err(err(
                        ErrorKind::Argument,
                        span,
                        format!(
                            "the replacement refers to ${{{n}}}, but the pattern has only {groups} capture group(s)"
                        ),
                    ));
                }
                _ => {
                    return Err(err(
                        ErrorKind::Argument,
                        span,
                        "in a replacement, write ${1} for a capture group and $$ for a literal $",
                    ));
                }
            }
        }
        i += 1;
    }
    if refs > 8 {
        return Err(err(
            ErrorKind::Argument,
            span,
            "a replacement can hold at most eight references such as ${1}",
        ));
    }
    Ok(())
}

struct CallCheck<'n> {
    name: &'n str,
    span: Span,
    nodes: &'n [Node],
    text: &'n str,
}

fn ordinal(i: usize) -> String {
    format!("argument {}", i + 1)
}

impl CallCheck<'_> {
    fn arity(&self, min: usize, max: usize) -> Result<()> {
        let n = self.nodes.len();
        if n >= min && n <= max {
            return Ok(());
        }
        let expected = if min == max {
            format!("{min} argument{}", if min == 1 { "" } else { "s" })
        } else if max == usize::MAX {
            format!("at least {min} argument{}", if min == 1 { "" } else { "s" })
        } else {
            format!("{min} to {max} arguments")
        };
        Err(err(
            ErrorKind::Argument,
            self.span,
            format!("{}() takes {expected}, found {n}", self.name),
        ))
    }

    fn bad_type(&self, i: usize, expected: &str) -> Error {
        let n = &self.nodes[i];
        let found = if n.each {
            format!("{} (each element, from [*])", n.ty)
        } else {
            n.ty.to_string()
        };
        err(
            ErrorKind::Type,
            n.span,
            format!(
                "{} of {}() must be {expected}, but `{}` is {found}",
                ordinal(i),
                self.name,
                self.text.get(n.span.start..n.span.end).unwrap_or("")
            ),
        )
    }

    fn ty(&self, i: usize, ty: &Type, each_ok: bool) -> Result<()> {
        let n = &self.nodes[i];
        if n.ty == *ty && (each_ok || !n.each) {
            return Ok(());
        }
        Err(self.bad_type(i, &format!("{} {ty}", article(ty))))
    }

    fn not_literal(&self, i: usize) -> Result<()> {
        let n = &self.nodes[i];
        if matches!(n.kind, NodeKind::Lit(_)) {
            return Err(err(
                ErrorKind::Argument,
                n.span,
                format!(
                    "{} of {}() must be a field (or a function of one), not a literal value",
                    ordinal(i),
                    self.name
                ),
            ));
        }
        Ok(())
    }

    fn lit_bytes(&self, i: usize) -> Result<Vec<u8>> {
        match &self.nodes[i].kind {
            NodeKind::Lit(Value::Bytes(b)) => Ok(b.to_vec()),
            _ => Err(err(
                ErrorKind::Argument,
                self.nodes[i].span,
                format!("{} of {}() must be a literal string", ordinal(i), self.name),
            )),
        }
    }

    fn lit_int(&self, i: usize, min: i64, max: i64) -> Result<i64> {
        match &self.nodes[i].kind {
            NodeKind::Lit(Value::Int(v)) if (min..=max).contains(v) => Ok(*v),
            _ => Err(err(
                ErrorKind::Argument,
                self.nodes[i].span,
                format!(
                    "{} of {}() must be a literal integer from {min} to {max}",
                    ordinal(i),
                    self.name
                ),
            )),
        }
    }

    fn lit_flags(&self, i: usize, allowed: &str) -> Result<Vec<u8>> {
        let flags = self.lit_bytes(i)?;
        if flags.iter().all(|b| allowed.as_bytes().contains(b)) {
            return Ok(flags);
        }
        let list: Vec<String> = allowed.chars().map(|c| format!("\"{c}\"")).collect();
        Err(err(
            ErrorKind::Argument,
            self.nodes[i].span,
            format!(
                "{} of {}() is a set of flags: only {} are allowed",
                ordinal(i),
                self.name,
                list.join(" and ")
            ),
        ))
    }
}
