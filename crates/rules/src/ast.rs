//! The syntax tree, and its canonical printing.
//!
//! `Display` prints canonical text (word operators, quoted strings,
//! parentheses only where needed) that parses back to the same tree.

use std::fmt;
use std::net::IpAddr;

use crate::error::{Quoted, Span};

/// A literal value as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Literal {
    /// `"text"`, `r"text"`, `r#"text"#`.
    String(Vec<u8>),
    /// `42`, `-1`.
    Int(i64),
    /// `true`, `false`.
    Bool(bool),
    /// `10.0.0.1`, `2001:db8::1`.
    Ip(IpAddr),
    /// `10.0.0.0/8`, `2001:db8::/32` (sets only).
    Cidr(IpAddr, u8),
    /// `1..5` (sets only).
    IntRange(i64, i64),
    /// `10.0.0.1..10.0.0.9` (sets only).
    IpRange(IpAddr, IpAddr),
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::String(s) => write!(f, "{}", Quoted(s)),
            Literal::Int(i) => write!(f, "{i}"),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Ip(ip) => write!(f, "{ip}"),
            Literal::Cidr(ip, len) => write!(f, "{ip}/{len}"),
            Literal::IntRange(a, b) => write!(f, "{a}..{b}"),
            Literal::IpRange(a, b) => write!(f, "{a}..{b}"),
        }
    }
}

/// A comparison operator. Each has a word and a symbol spelling where
/// Cloudflare defines one; the word is canonical.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    /// `eq`, `==`.
    Eq,
    /// `ne`, `!=`.
    Ne,
    /// `lt`, `<`.
    Lt,
    /// `le`, `<=`.
    Le,
    /// `gt`, `>`.
    Gt,
    /// `ge`, `>=`.
    Ge,
    /// `contains`.
    Contains,
    /// `matches`, `~`.
    Matches,
    /// `wildcard` (case-insensitive).
    Wildcard,
    /// `strict wildcard` (case-sensitive).
    StrictWildcard,
    /// `in`.
    In,
}

impl CmpOp {
    /// The canonical (word) spelling.
    pub fn word(self) -> &'static str {
        match self {
            CmpOp::Eq => "eq",
            CmpOp::Ne => "ne",
            CmpOp::Lt => "lt",
            CmpOp::Le => "le",
            CmpOp::Gt => "gt",
            CmpOp::Ge => "ge",
            CmpOp::Contains => "contains",
            CmpOp::Matches => "matches",
            CmpOp::Wildcard => "wildcard",
            CmpOp::StrictWildcard => "strict wildcard",
            CmpOp::In => "in",
        }
    }
}

impl fmt::Display for CmpOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// A logical operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogicalOp {
    /// `and`, `&&` (binds tightest).
    And,
    /// `xor`, `^^`.
    Xor,
    /// `or`, `||` (binds loosest).
    Or,
}

impl LogicalOp {
    /// The canonical (word) spelling.
    pub fn word(self) -> &'static str {
        match self {
            LogicalOp::And => "and",
            LogicalOp::Xor => "xor",
            LogicalOp::Or => "or",
        }
    }

    fn precedence(self) -> u8 {
        match self {
            LogicalOp::Or => 1,
            LogicalOp::Xor => 2,
            LogicalOp::And => 3,
        }
    }
}

/// An index applied to an array or map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Index {
    /// `[0]`: array element.
    Int(i64),
    /// `["key"]`: map entry.
    Key(Vec<u8>),
    /// `[*]`: every element (or every map value).
    Each,
}

/// The right-hand side of a comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rhs {
    /// A single literal.
    Literal(Literal, Span),
    /// `{a b c}`: a set of literals (for `in`).
    Set(Vec<(Literal, Span)>, Span),
    /// `$name`: a named list (for `in`).
    List(String, Span),
}

impl Rhs {
    /// Where the right-hand side is written.
    pub fn span(&self) -> Span {
        match self {
            Rhs::Literal(_, s) | Rhs::Set(_, s) | Rhs::List(_, s) => *s,
        }
    }
}

impl fmt::Display for Rhs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rhs::Literal(l, _) => write!(f, "{l}"),
            Rhs::Set(items, _) => {
                f.write_str("{")?;
                for (i, (l, _)) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{l}")?;
                }
                f.write_str("}")
            }
            Rhs::List(name, _) => write!(f, "${name}"),
        }
    }
}

/// An expression node. Every node carries the span of its source text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// A field reference, e.g. `http.host`.
    Field {
        /// The field name.
        name: String,
        /// Source span.
        span: Span,
    },
    /// A literal used as an operand (`true`, a function argument).
    Literal {
        /// The value.
        value: Literal,
        /// Source span.
        span: Span,
    },
    /// A function call.
    Call {
        /// The function name.
        name: String,
        /// The arguments.
        args: Vec<Expr>,
        /// Source span of the whole call.
        span: Span,
    },
    /// `base[index]`.
    Index {
        /// What is indexed.
        base: Box<Expr>,
        /// The index.
        index: Index,
        /// Source span of the whole expression.
        span: Span,
    },
    /// `lhs op rhs`.
    Compare {
        /// The left-hand operand.
        lhs: Box<Expr>,
        /// The operator.
        op: CmpOp,
        /// Where the operator is written.
        op_span: Span,
        /// The right-hand side.
        rhs: Rhs,
        /// Source span of the whole comparison.
        span: Span,
    },
    /// `not inner`.
    Not {
        /// The negated expression.
        inner: Box<Expr>,
        /// Source span.
        span: Span,
    },
    /// `a and b and c` (two or more items, same operator).
    Logical {
        /// The operator.
        op: LogicalOp,
        /// The operands, left to right.
        items: Vec<Expr>,
        /// Source span.
        span: Span,
    },
}

impl Expr {
    /// The node's source span.
    pub fn span(&self) -> Span {
        match self {
            Expr::Field { span, .. }
            | Expr::Literal { span, .. }
            | Expr::Call { span, .. }
            | Expr::Index { span, .. }
            | Expr::Compare { span, .. }
            | Expr::Not { span, .. }
            | Expr::Logical { span, .. } => *span,
        }
    }

    /// Calls `f` with the name of every field the expression reads.
    pub fn for_each_field(&self, f: &mut dyn FnMut(&str)) {
        match self {
            Expr::Field { name, .. } => f(name),
            Expr::Literal { .. } => {}
            Expr::Call { args, .. } => args.iter().for_each(|a| a.for_each_field(f)),
            Expr::Index { base, .. } => base.for_each_field(f),
            Expr::Compare { lhs, .. } => lhs.for_each_field(f),
            Expr::Not { inner, .. } => inner.for_each_field(f),
            Expr::Logical { items, .. } => items.iter().for_each(|i| i.for_each_field(f)),
        }
    }

    /// Sets every span in the tree to `0..0` (useful to compare trees
    /// parsed from differently formatted text).
    pub fn clear_spans(&mut self) {
        let zero = Span::default();
        match self {
            Expr::Field { span, .. } | Expr::Literal { span, .. } => *span = zero,
            Expr::Call { args, span, .. } => {
                *span = zero;
                args.iter_mut().for_each(Expr::clear_spans);
            }
            Expr::Index { base, span, .. } => {
                *span = zero;
                base.clear_spans();
            }
            Expr::Compare {
                lhs,
                op_span,
                rhs,
                span,
                ..
            } => {
                *span = zero;
                *op_span = zero;
                lhs.clear_spans();
                match rhs {
                    Rhs::Literal(_, s) | Rhs::List(_, s) => *s = zero,
                    Rhs::Set(items, s) => {
                        *s = zero;
                        items.iter_mut().for_each(|(_, s)| *s = zero);
                    }
                }
            }
            Expr::Not { inner, span } => {
                *span = zero;
                inner.clear_spans();
            }
            Expr::Logical { items, span, .. } => {
                *span = zero;
                items.iter_mut().for_each(Expr::clear_spans);
            }
        }
    }

    /// 0: logical (any), 4: not, 5: comparison, 6: operand.
    fn level(&self) -> u8 {
        match self {
            Expr::Logical { op, .. } => op.precedence(),
            Expr::Not { .. } => 4,
            Expr::Compare { .. } => 5,
            _ => 6,
        }
    }
}

struct Wrapped<'a>(&'a Expr, bool);

impl fmt::Display for Wrapped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.1 {
            write!(f, "({})", self.0)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Field { name, .. } => f.write_str(name),
            Expr::Literal { value, .. } => write!(f, "{value}"),
            Expr::Call { name, args, .. } => {
                write!(f, "{name}(")?;
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                f.write_str(")")
            }
            Expr::Index { base, index, .. } => {
                write!(f, "{}", Wrapped(base, base.level() < 6))?;
                match index {
                    Index::Int(i) => write!(f, "[{i}]"),
                    Index::Key(k) => write!(f, "[{}]", Quoted(k)),
                    Index::Each => f.write_str("[*]"),
                }
            }
            Expr::Compare { lhs, op, rhs, .. } => {
                write!(f, "{} {op} {rhs}", Wrapped(lhs, lhs.level() < 6))
            }
            Expr::Not { inner, .. } => write!(f, "not {}", Wrapped(inner, inner.level() < 4)),
            Expr::Logical { op, items, .. } => {
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        write!(f, " {} ", op.word())?;
                    }
                    write!(f, "{}", Wrapped(item, item.level() <= op.precedence()))?;
                }
                Ok(())
            }
        }
    }
}
