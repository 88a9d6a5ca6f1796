//! Cloudflare's Rules language (the wirefilter syntax): a typed scheme of
//! fields, a parser to a spanned syntax tree, a type checker, a compiler to
//! closures, and execution against a request — plus *explained* execution
//! that says why a rule did or did not match.
//!
//! ```
//! use edgetrace_rules::{ExecutionContext, Expression, ExprKind, Scheme};
//!
//! let scheme = Scheme::cloudflare();
//! let filter = Expression::parse(
//!     &scheme,
//!     r#"http.host eq "example.com" and ip.src.country in {"US" "CA"}"#,
//!     ExprKind::Filter,
//! )?;
//!
//! let mut ctx = ExecutionContext::new(&scheme);
//! ctx.set("http.host", "example.com")?;
//! ctx.set("ip.src.country", "DE")?;
//! assert!(!filter.execute(&ctx));
//!
//! // Why not?
//! let why = filter.explain(&ctx);
//! assert_eq!(why.reasons(), [r#"`ip.src.country` was "DE", not in {"US" "CA"}"#]);
//!
//! // Value expressions (rewrites, redirect targets) produce strings.
//! let target = Expression::parse(&scheme, r#"concat("https://", http.host, "/new")"#, ExprKind::Value)?;
//! assert_eq!(target.evaluate(&ctx).as_deref(), Some("https://example.com/new"));
//!
//! // Errors point at the problem.
//! let err = Expression::parse(&scheme, r#"http.hots eq "x""#, ExprKind::Filter).unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "unknown field \"http.hots\" — did you mean \"http.host\"?\n | http.hots eq \"x\"\n | ^^^^^^^^^"
//! );
//! # Ok::<(), edgetrace_rules::Error>(())
//! ```
//!
//! # Pipeline
//!
//! 1. [`Scheme`]: the typed fields ([`Scheme::cloudflare`] has Cloudflare's
//!    request fields, their `raw.*` variants, map fields with `.names` /
//!    `.values`, and the response fields of response phases).
//! 2. [`parse`]: text → [`Expr`] (every node spanned); `Display` on [`Expr`]
//!    prints canonical text that parses back to the same tree.
//! 3. Checking against the scheme and a [`Target`] (filter or value
//!    expression, optionally a [`Phase`]): types, operator/type rules,
//!    function argument rules and availability, named lists.
//! 4. Compilation to closures; regexes, sets and literal arguments are built
//!    once. [`Expression::execute`] is the fast path;
//!    [`Expression::explain`] re-evaluates with a record of every step.
//!
//! # Functions and where they are allowed
//!
//! | function | filter | value | phases |
//! |---|---|---|---|
//! | `any` `all` `lower` `upper` `len` `concat` `starts_with` `ends_with` `substring` `url_decode` `lookup_json_string` `lookup_json_integer` `remove_bytes` | yes | yes | all |
//! | `cidr` `cidr6` | yes | no | custom rules, rate limiting |
//! | `decode_base64` | yes | yes | Transform Rules, custom rules, rate limiting |
//! | `join` | yes | yes | Transform Rules, custom rules, Custom Error Rules |
//! | `split` | yes | yes | response header Transform Rules, Custom Error Rules |
//! | `encode_base64` | yes | yes | Transform Rules, Custom Error Rules |
//! | `regex_replace` `to_string` | no | yes | Transform Rules, dynamic redirects |
//! | `wildcard_replace` | no | yes | URL rewrites, dynamic redirects |
//! | `remove_query_args` `uuidv4` `sha256` | no | yes | Transform Rules |
//!
//! Without a phase in the [`Target`], only the filter/value column applies.
//!
//! Semantics follow Cloudflare's documentation: comparisons against a
//! missing field are false (and `not` of such a comparison is true);
//! filters must be Boolean; value expressions must produce a String;
//! expressions are at most 4,096 characters; functions are only accepted
//! where Cloudflare allows them (see [`Target`] and [`Phase`]); regular
//! expressions are byte-oriented unless `(?u)` turns Unicode on, as in
//! Cloudflare's engine; `wildcard` ignores ASCII case, `strict wildcard`
//! does not.

mod ast;
mod check;
mod compile;
mod context;
mod error;
mod explain;
pub(crate) mod functions;
mod interp;
mod lexer;
mod lists;
mod ops;
mod parser;
pub mod prefilter;
mod scheme;
mod types;

use std::fmt;

pub use ast::{CmpOp, Expr, Index, Literal, LogicalOp, Rhs};
pub use context::{ExecutionContext, Text};
pub use error::{Error, ErrorKind, Result, Span};
pub use explain::{Explanation, Step, StepKind};
pub use lists::{ListKind, Lists, MemoryLists};
pub use parser::{MAX_DEPTH, MAX_EXPRESSION_CHARS, parse};
pub use prefilter::{Candidates, Prefilter};
pub use scheme::{ExprKind, FieldDef, FieldId, Phase, Scheme, Stage, Target};
pub use types::{Type, Value};

/// Names of every function the language knows.
pub const FUNCTIONS: &[&str] = functions::NAMES;

/// A parsed, checked and compiled expression.
pub struct Expression {
    text: String,
    ast: Expr,
    node: check::Node,
    exec: compile::BoolFn,
    target: Target,
    scheme_id: u64,
}

impl fmt::Debug for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Expression")
            .field("text", &self.text)
            .field("target", &self.target)
            .finish()
    }
}

impl fmt::Display for Expression {
    /// The canonical text of the expression.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.ast)
    }
}

impl Expression {
    /// Parses, checks and compiles `text` for `target` (an [`ExprKind`], or
    /// a [`Target`] naming the phase too). Named lists (`$name`) are
    /// accepted without checking that they exist.
    pub fn parse(scheme: &Scheme, text: &str, target: impl Into<Target>) -> Result<Self> {
        Self::build(scheme, text, target.into(), None)
    }

    /// Like [`parse`](Self::parse), and also checks that every `$name`
    /// exists in `lists` with the right kind.
    pub fn parse_with_lists(
        scheme: &Scheme,
        text: &str,
        target: impl Into<Target>,
        lists: &dyn Lists,
    ) -> Result<Self> {
        Self::build(scheme, text, target.into(), Some(lists))
    }

    fn build(
        scheme: &Scheme,
        text: &str,
        target: Target,
        lists: Option<&dyn Lists>,
    ) -> Result<Self> {
        let ast = parser::parse(text)?;
        let mut checker = check::Checker {
            scheme,
            target,
            lists,
            text,
            replace_calls: 0,
            concat_calls: 0,
        };
        let node = checker
            .check_root(&ast)
            .map_err(|e| e.with_expression(text))?;
        let exec: compile::BoolFn = match target.kind {
            ExprKind::Filter => compile::compile_bool(node.clone()),
            ExprKind::Value => Box::new(|_| false),
        };
        Ok(Expression {
            text: text.to_owned(),
            ast,
            node,
            exec,
            target,
            scheme_id: scheme.id(),
        })
    }

    /// The text the expression was parsed from.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The syntax tree.
    pub fn ast(&self) -> &Expr {
        &self.ast
    }

    /// What the expression was checked for.
    pub fn target(&self) -> Target {
        self.target
    }

    /// The type the expression produces (Boolean for filters, String for
    /// value expressions).
    pub fn ty(&self) -> &Type {
        &self.node.ty
    }

    /// Runs a filter. Always `false` for a value expression or for a
    /// context built from another scheme.
    #[inline]
    pub fn execute(&self, ctx: &ExecutionContext<'_, '_>) -> bool {
        ctx.scheme.id() == self.scheme_id && (self.exec)(ctx)
    }

    /// Evaluates the expression to a value (`None`: missing, or a context
    /// from another scheme). Filters give a Boolean.
    pub fn evaluate_value(&self, ctx: &ExecutionContext<'_, '_>) -> Option<Value<'static>> {
        if ctx.scheme.id() != self.scheme_id {
            return None;
        }
        interp::eval_taken(&self.node, ctx).map(|v| v.into_owned().into_owned())
    }

    /// Evaluates a value expression to a string (bytes that are not UTF-8
    /// are replaced by U+FFFD). `None` if a value it needs is missing.
    pub fn evaluate(&self, ctx: &ExecutionContext<'_, '_>) -> Option<String> {
        match self.evaluate_value(ctx)? {
            // Valid UTF-8 (nearly always) becomes the string without a copy.
            Value::Bytes(b) => Some(
                String::from_utf8(b.into_owned())
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            ),
            other => Some(other.to_string()),
        }
    }

    /// Evaluates with a record of every Boolean step: what each comparison
    /// saw, and which operands short-circuiting skipped. Slower than
    /// [`execute`](Self::execute), which does no recording.
    pub fn explain(&self, ctx: &ExecutionContext<'_, '_>) -> Explanation {
        let explainer = explain::Explainer {
            text: &self.text,
            ctx,
        };
        let value = self.evaluate_value(ctx);
        let root = if self.node.ty == Type::Bool {
            explainer.step(&self.node)
        } else {
            let mut s = explainer.step(&self.node);
            s.result = Some(value.is_some());
            s
        };
        let matched = match &value {
            Some(Value::Bool(b)) => *b,
            Some(_) => true,
            None => false,
        };
        Explanation {
            matched,
            value,
            root,
        }
    }
}
