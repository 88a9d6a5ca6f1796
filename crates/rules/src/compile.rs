//! Compilation of checked trees into closures for fast execution.
//!
//! Comparisons whose left-hand side is a plain field are specialised per
//! operator so that the common case costs one indirect call and the
//! comparison itself. Other sub-expressions run through `interp::eval`
//! over the pre-checked node (regexes and literal arguments already built).

use crate::ast::{CmpOp, LogicalOp};
use crate::check::{Node, NodeKind};
use crate::context::ExecutionContext;
use crate::functions::Func;
use crate::interp::{eval, truthy};
use crate::ops::{Op, regex_is_match};
use crate::types::Value;

pub(crate) type BoolFn = Box<dyn Fn(&ExecutionContext<'_, '_>) -> bool + Send + Sync>;

/// `neg` negates the result (for `not field op value`), so that the
/// common `not ip.src in {…}` costs a single call.
fn field_cmp(index: usize, op: Op, neg: bool) -> BoolFn {
    match op {
        Op::StartsWith(p) => Box::new(move |ctx| {
            matches!(ctx.value(index), Some(Value::Bytes(b)) if b.starts_with(&p)) != neg
        }),
        Op::Order(CmpOp::Eq, Value::Bytes(lit)) => Box::new(move |ctx| {
            matches!(ctx.value(index), Some(Value::Bytes(b)) if *b == lit) != neg
        }),
        Op::Order(CmpOp::Ne, Value::Bytes(lit)) => Box::new(move |ctx| {
            matches!(ctx.value(index), Some(Value::Bytes(b)) if *b != lit) != neg
        }),
        Op::Order(CmpOp::Eq, Value::Int(lit)) => {
            Box::new(move |ctx| matches!(ctx.value(index), Some(Value::Int(i)) if *i == lit) != neg)
        }
        Op::Matches(re) => Box::new(move |ctx| {
            matches!(ctx.value(index), Some(Value::Bytes(b)) if regex_is_match(&re, b)) != neg
        }),
        Op::InIp(set) => Box::new(move |ctx| {
            matches!(ctx.value(index), Some(Value::Ip(ip)) if set.contains(ip)) != neg
        }),
        Op::Contains(needle) => {
            let finder = memchr::memmem::Finder::new(&needle).into_owned();
            Box::new(move |ctx| {
                matches!(ctx.value(index), Some(Value::Bytes(b)) if finder.find(b).is_some()) != neg
            })
        }
        op => Box::new(move |ctx| ctx.value(index).is_some_and(|v| op.test(v, ctx.lists)) != neg),
    }
}

pub(crate) fn compile_bool(node: Node) -> BoolFn {
    let Node {
        kind,
        ty,
        each,
        span,
    } = node;
    match kind {
        NodeKind::Lit(Value::Bool(b)) => Box::new(move |_| b),
        NodeKind::Field { index, .. } => {
            Box::new(move |ctx| matches!(ctx.value(index), Some(Value::Bool(true))))
        }
        NodeKind::Cmp { lhs, op, .. } if !lhs.each => match lhs.kind {
            NodeKind::Field { index, .. } => field_cmp(index, op, false),
            _ => Box::new(move |ctx| eval(&lhs, ctx).is_some_and(|v| op.test(&v, ctx.lists))),
        },
        NodeKind::Not(inner) => {
            if let NodeKind::Cmp { lhs, op, .. } = &inner.kind {
                if let (false, NodeKind::Field { index, .. }) = (lhs.each, &lhs.kind) {
                    return field_cmp(*index, op.clone(), true);
                }
            }
            let f = compile_bool(*inner);
            Box::new(move |ctx| !f(ctx))
        }
        NodeKind::Logic { op, items } => {
            let mut fs: Vec<BoolFn> = items.into_iter().map(compile_bool).collect();
            match (op, fs.len()) {
                (LogicalOp::And, 2) => {
                    let (b, a) = (fs.pop(), fs.pop());
                    match (a, b) {
                        (Some(a), Some(b)) => Box::new(move |ctx| a(ctx) && b(ctx)),
                        _ => Box::new(|_| false),
                    }
                }
                (LogicalOp::Or, 2) => {
                    let (b, a) = (fs.pop(), fs.pop());
                    match (a, b) {
                        (Some(a), Some(b)) => Box::new(move |ctx| a(ctx) || b(ctx)),
                        _ => Box::new(|_| false),
                    }
                }
                (LogicalOp::And, _) => Box::new(move |ctx| fs.iter().all(|f| f(ctx))),
                (LogicalOp::Or, _) => Box::new(move |ctx| fs.iter().any(|f| f(ctx))),
                (LogicalOp::Xor, _) => {
                    Box::new(move |ctx| fs.iter().fold(false, |acc, f| acc ^ f(ctx)))
                }
            }
        }
        NodeKind::Call {
            func: func @ (Func::Any | Func::All),
            args,
            ..
        } if is_each_cmp(&args) => {
            let all = matches!(func, Func::All);
            let Some(Node {
                kind: NodeKind::Cmp { lhs, op, .. },
                ..
            }) = args.into_iter().next()
            else {
                return Box::new(|_| false);
            };
            // any/all over a comparison of each element: no intermediate array.
            Box::new(move |ctx| match eval(&lhs, ctx).as_deref() {
                Some(Value::Array(items)) if all => items.iter().all(|v| op.test(v, ctx.lists)),
                Some(Value::Array(items)) => items.iter().any(|v| op.test(v, ctx.lists)),
                _ => false,
            })
        }
        NodeKind::Call {
            func: func @ (Func::StartsWith | Func::EndsWith),
            args,
            ..
        } if field_and_literal(&args).is_some() => {
            let Some((index, lit)) = field_and_literal(&args) else {
                return Box::new(|_| false);
            };
            if matches!(func, Func::StartsWith) {
                Box::new(
                    move |ctx| matches!(ctx.value(index), Some(Value::Bytes(b)) if b.starts_with(&lit)),
                )
            } else {
                Box::new(
                    move |ctx| matches!(ctx.value(index), Some(Value::Bytes(b)) if b.ends_with(&lit)),
                )
            }
        }
        kind => {
            let node = Node {
                kind,
                ty,
                each,
                span,
            };
            Box::new(move |ctx| truthy(&eval(&node, ctx)))
        }
    }
}

fn is_each_cmp(args: &[Node]) -> bool {
    matches!(args, [Node { kind: NodeKind::Cmp { lhs, .. }, .. }] if lhs.each)
}

/// `(field index, literal)` for calls such as `starts_with(field, "lit")`.
fn field_and_literal(args: &[Node]) -> Option<(usize, Vec<u8>)> {
    match args {
        [
            Node {
                kind: NodeKind::Field { index, .. },
                each: false,
                ..
            },
            Node {
                kind: NodeKind::Lit(Value::Bytes(lit)),
                ..
            },
        ] => Some((*index, lit.to_vec())),
        _ => None,
    }
}
