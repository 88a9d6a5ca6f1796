//! Explained evaluation: which sub-expressions ran, what they saw, and
//! where short-circuiting stopped.

use std::fmt;

use crate::ast::{CmpOp, LogicalOp};
use crate::check::{Node, NodeKind};
use crate::context::ExecutionContext;
use crate::error::Span;
use crate::functions::Func;
use crate::interp::{eval, truthy};
use crate::types::Value;

/// What a [`Step`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// `and`, `or` or `xor` over the children.
    Logical(LogicalOp),
    /// `not` of the single child.
    Not,
    /// A comparison, a Boolean field or a Boolean function call.
    Leaf,
}

/// One Boolean step of an evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// What the step is.
    pub kind: StepKind,
    /// The sub-expression's source text.
    pub text: String,
    /// Where it is in the expression.
    pub span: Span,
    /// Its result, or `None` if it was not evaluated (short-circuit).
    pub result: Option<bool>,
    /// What it saw, e.g. ``"`ip.src.country` was "DE", not in {"US" "CA"}"``.
    pub note: Option<String>,
    /// Sub-steps (operands of `and`/`or`/`xor`/`not`).
    pub children: Vec<Step>,
}

/// The result of [`Expression::explain`](crate::Expression::explain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// For a filter, whether it matched. For a value expression, whether it
    /// produced a value.
    pub matched: bool,
    /// The produced value (a Boolean for filters; missing is `None`).
    pub value: Option<Value<'static>>,
    /// The evaluation tree.
    pub root: Step,
}

impl Explanation {
    /// The notes of the evaluated comparisons and fields whose result
    /// decided the outcome, in order: for a filter that did not match,
    /// *why* it did not.
    pub fn reasons(&self) -> Vec<String> {
        fn walk(step: &Step, want: bool, out: &mut Vec<String>) {
            if step.result != Some(want) {
                return;
            }
            if step.children.is_empty() {
                if let Some(n) = &step.note {
                    out.push(n.clone());
                }
                return;
            }
            let child_want = if step.kind == StepKind::Not {
                !want
            } else {
                want
            };
            for c in &step.children {
                walk(c, child_want, out);
            }
        }
        let mut out = Vec::new();
        walk(&self.root, self.root.result.unwrap_or(false), &mut out);
        out
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, 0)
    }
}

impl Step {
    fn write(&self, f: &mut fmt::Formatter<'_>, depth: usize) -> fmt::Result {
        let label = match self.result {
            Some(true) => "true ",
            Some(false) => "false",
            None => "skip ",
        };
        write!(f, "{}{label} {}", "  ".repeat(depth), self.text)?;
        if let Some(n) = &self.note {
            write!(f, " — {n}")?;
        }
        writeln!(f)?;
        for c in &self.children {
            c.write(f, depth + 1)?;
        }
        Ok(())
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(Value::Bool(b)) => {
                writeln!(f, "{}", if *b { "matched" } else { "did not match" })?
            }
            Some(v) => writeln!(f, "value: {v}")?,
            None => writeln!(f, "value: missing")?,
        }
        write!(f, "{}", self.root)
    }
}

fn phrase(cmp: CmpOp, result: bool) -> &'static str {
    match (cmp, result) {
        (CmpOp::Eq, true) | (CmpOp::Ne, false) => "equal to",
        (CmpOp::Eq, false) | (CmpOp::Ne, true) => "not equal to",
        (CmpOp::Lt, true) => "less than",
        (CmpOp::Lt, false) => "not less than",
        (CmpOp::Le, true) => "less than or equal to",
        (CmpOp::Le, false) => "greater than",
        (CmpOp::Gt, true) => "greater than",
        (CmpOp::Gt, false) => "not greater than",
        (CmpOp::Ge, true) => "greater than or equal to",
        (CmpOp::Ge, false) => "less than",
        (CmpOp::Contains, true) => "contains",
        (CmpOp::Contains, false) => "does not contain",
        (CmpOp::Matches, true) => "matches",
        (CmpOp::Matches, false) => "does not match",
        (CmpOp::Wildcard, true) => "matches wildcard",
        (CmpOp::Wildcard, false) => "does not match wildcard",
        (CmpOp::StrictWildcard, true) => "matches strict wildcard",
        (CmpOp::StrictWildcard, false) => "does not match strict wildcard",
        (CmpOp::In, true) => "in",
        (CmpOp::In, false) => "not in",
    }
}

pub(crate) struct Explainer<'a, 'c, 'v> {
    pub text: &'a str,
    pub ctx: &'a ExecutionContext<'c, 'v>,
}

impl Explainer<'_, '_, '_> {
    fn src(&self, span: Span) -> String {
        self.text.get(span.start..span.end).unwrap_or("").to_owned()
    }

    fn skipped(&self, node: &Node, why: String) -> Step {
        Step {
            kind: StepKind::Leaf,
            text: self.src(node.span),
            span: node.span,
            result: None,
            note: Some(why),
            children: Vec::new(),
        }
    }

    pub(crate) fn step(&self, node: &Node) -> Step {
        let text = self.src(node.span);
        let span = node.span;
        match &node.kind {
            NodeKind::Logic { op, items } => {
                let mut children = Vec::with_capacity(items.len());
                let mut acc = matches!(op, LogicalOp::And);
                let mut stopped = false;
                for item in items {
                    if stopped {
                        let why = match op {
                            LogicalOp::And => {
                                "not evaluated: \"and\" stopped at the first false operand"
                            }
                            _ => "not evaluated: \"or\" stopped at the first true operand",
                        };
                        children.push(self.skipped(item, why.to_owned()));
                        continue;
                    }
                    let s = self.step(item);
                    let r = s.result.unwrap_or(false);
                    children.push(s);
                    match op {
                        LogicalOp::And => {
                            acc = acc && r;
                            stopped = !r;
                        }
                        LogicalOp::Or => {
                            acc = acc || r;
                            stopped = r;
                        }
                        LogicalOp::Xor => acc ^= r,
                    }
                }
                Step {
                    kind: StepKind::Logical(*op),
                    text,
                    span,
                    result: Some(acc),
                    note: None,
                    children,
                }
            }
            NodeKind::Not(inner) => {
                let child = self.step(inner);
                let r = !child.result.unwrap_or(false);
                Step {
                    kind: StepKind::Not,
                    text,
                    span,
                    result: Some(r),
                    note: None,
                    children: vec![child],
                }
            }
            NodeKind::Cmp {
                lhs,
                op,
                cmp,
                rhs_text,
            } => {
                let lhs_text = self.src(lhs.span);
                let v = eval(lhs, self.ctx);
                let (result, note) = match v.as_deref() {
                    None => (
                        false,
                        format!("`{lhs_text}` is missing, so the comparison is false"),
                    ),
                    Some(Value::Array(items)) if lhs.each => {
                        let results: Vec<bool> =
                            items.iter().map(|i| op.test(i, self.ctx.lists)).collect();
                        let shown = Value::Array(items.clone());
                        let n = results.iter().filter(|b| **b).count();
                        (
                            n > 0,
                            format!(
                                "`{lhs_text}` was {shown}; {n} of {} element(s) {} {rhs_text}",
                                results.len(),
                                phrase(*cmp, true)
                            ),
                        )
                    }
                    Some(v) => {
                        let r = op.test(v, self.ctx.lists);
                        (
                            r,
                            format!("`{lhs_text}` was {v}, {} {rhs_text}", phrase(*cmp, r)),
                        )
                    }
                };
                // An each-comparison is an array; as a step, report whether any matched.
                Step {
                    kind: StepKind::Leaf,
                    text,
                    span,
                    result: Some(result),
                    note: Some(note),
                    children: Vec::new(),
                }
            }
            NodeKind::Call {
                func: Func::Any | Func::All,
                args,
                ..
            } if matches!(args.as_slice(), [Node { kind: NodeKind::Cmp { lhs, .. }, .. }] if lhs.each) =>
            {
                // any(x[*] op v) / all(…): report the elements and how many matched.
                let inner = self.step(&args[0]);
                let r = truthy(&eval(node, self.ctx));
                Step {
                    kind: StepKind::Leaf,
                    text,
                    span,
                    result: Some(r),
                    note: inner.note,
                    children: Vec::new(),
                }
            }
            _ => {
                let v = eval(node, self.ctx);
                let r = truthy(&v);
                let mut note = match v.as_deref() {
                    Some(v) => format!("`{text}` was {v}"),
                    None => format!("`{text}` is missing"),
                };
                if let NodeKind::Call { args, .. } = &node.kind {
                    let seen: Vec<String> = args
                        .iter()
                        .filter(|a| !matches!(a.kind, NodeKind::Lit(_)))
                        .map(|a| match eval(a, self.ctx).as_deref() {
                            Some(v) => format!("`{}` was {v}", self.src(a.span)),
                            None => format!("`{}` is missing", self.src(a.span)),
                        })
                        .collect();
                    if !seen.is_empty() {
                        note.push_str(&format!(" ({})", seen.join(", ")));
                    }
                }
                Step {
                    kind: StepKind::Leaf,
                    text,
                    span,
                    result: Some(r),
                    note: Some(note),
                    children: Vec::new(),
                }
            }
        }
    }
}
