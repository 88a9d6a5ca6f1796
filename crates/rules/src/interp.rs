//! Evaluation of checked value sub-expressions (function calls, indexing).
//! Boolean structure is compiled to closures in `compile`; this module is
//! what those closures (and explanation) call for everything else.

use std::borrow::Cow;

use crate::ast::LogicalOp;
use crate::check::{Key, Node, NodeKind};
use crate::context::ExecutionContext;
use crate::functions::Func;
use crate::types::Value;

type Val<'c, 'v> = Option<Cow<'c, Value<'v>>>;

fn index_of<'c, 'v>(v: &'c Value<'v>, key: &Key) -> Option<&'c Value<'v>> {
    match (v, key) {
        (Value::Array(items), Key::Pos(i)) => items.get(*i),
        (Value::Map(_), Key::Name(k)) => v.map_get(k),
        _ => None,
    }
}

pub(crate) fn truthy(v: &Val<'_, '_>) -> bool {
    matches!(v.as_deref(), Some(Value::Bool(true)))
}

/// Evaluates `node`; `None` means missing.
pub(crate) fn eval<'c, 'v>(node: &'c Node, ctx: &'c ExecutionContext<'_, 'v>) -> Val<'c, 'v> {
    match &node.kind {
        NodeKind::Lit(v) => Some(Cow::Borrowed(v)),
        NodeKind::Field { index, .. } => ctx.value(*index).map(Cow::Borrowed),
        NodeKind::Index { base, key } if base.each => {
            let v = eval(base, ctx)?;
            let Value::Array(items) = v.as_ref() else {
                return None;
            };
            Some(Cow::Owned(Value::Array(
                items
                    .iter()
                    .filter_map(|i| index_of(i, key))
                    .cloned()
                    .collect(),
            )))
        }
        // A map field's key: looked up without the map (see `ExecutionContext::lookup`).
        NodeKind::Index { base, key } if matches!(base.kind, NodeKind::Field { .. }) => {
            let NodeKind::Field { index, .. } = base.kind else {
                return None;
            };
            match key {
                Key::Name(k) => ctx.lookup(index, k),
                Key::Pos(_) => index_of(ctx.value(index)?, key).map(Cow::Borrowed),
            }
        }
        NodeKind::Index { base, key } => match eval(base, ctx)? {
            Cow::Borrowed(v) => index_of(v, key).map(Cow::Borrowed),
            Cow::Owned(v) => index_of(&v, key).cloned().map(Cow::Owned),
        },
        NodeKind::Each(base) => match eval(base, ctx)? {
            Cow::Borrowed(Value::Map(items)) => Some(Cow::Owned(Value::Array(
                items.iter().map(|(_, v)| v.clone()).collect(),
            ))),
            Cow::Owned(Value::Map(items)) => Some(Cow::Owned(Value::Array(
                items.into_iter().map(|(_, v)| v).collect(),
            ))),
            arr @ Cow::Borrowed(Value::Array(_)) => Some(arr),
            arr @ Cow::Owned(Value::Array(_)) => Some(arr),
            _ => None,
        },
        NodeKind::Call { func, args, memo } => {
            if let Some(cell) = memo.and_then(|slot| ctx.memo.get(slot)) {
                ctx.memo_used.set(true);
                return cell
                    .get_or_init(|| call(func, args, ctx).map(Cow::into_owned))
                    .as_ref()
                    .map(Cow::Borrowed);
            }
            call(func, args, ctx)
        }
        NodeKind::Cmp { lhs, op, .. } => {
            let v = eval(lhs, ctx);
            if lhs.each {
                let v = v?;
                let Value::Array(items) = v.as_ref() else {
                    return None;
                };
                let out = items
                    .iter()
                    .map(|i| Value::Bool(op.test(i, ctx.lists)))
                    .collect();
                Some(Cow::Owned(Value::Array(out)))
            } else {
                Some(Cow::Owned(Value::Bool(
                    v.is_some_and(|v| op.test(&v, ctx.lists)),
                )))
            }
        }
        NodeKind::Not(inner) => Some(Cow::Owned(Value::Bool(!truthy(&eval(inner, ctx))))),
        NodeKind::Logic { op, items } => {
            let mut it = items.iter().map(|i| truthy(&eval(i, ctx)));
            let r = match op {
                LogicalOp::And => it.all(|b| b),
                LogicalOp::Or => it.any(|b| b),
                LogicalOp::Xor => it.fold(false, |a, b| a ^ b),
            };
            Some(Cow::Owned(Value::Bool(r)))
        }
    }
}

/// [`eval`] of an expression whose value is taken (a rewrite's value): a call at its top is
/// not memoized (its value would be computed into the memo cell, then copied out of it),
/// unless another expression memoized it already.
pub(crate) fn eval_taken<'c, 'v>(node: &'c Node, ctx: &'c ExecutionContext<'_, 'v>) -> Val<'c, 'v> {
    if let NodeKind::Call { func, args, memo } = &node.kind {
        let cached = memo
            .and_then(|slot| ctx.memo.get(slot))
            .and_then(|cell| cell.get());
        return match cached {
            Some(v) => v.as_ref().map(Cow::Borrowed),
            None => call(func, args, ctx),
        };
    }
    eval(node, ctx)
}

/// A function call's value, computed.
fn call<'c, 'v>(
    func: &'c Func,
    args: &'c [Node],
    ctx: &'c ExecutionContext<'_, 'v>,
) -> Val<'c, 'v> {
    let mapped = args.first().is_some_and(|a| a.each);
    // Most calls have a few arguments: their values on the stack, not in a new vector.
    const INLINE: usize = 4;
    if !mapped && args.len() <= INLINE {
        let mut vals: [Val<'c, 'v>; INLINE] = [None, None, None, None];
        for (v, a) in vals.iter_mut().zip(args) {
            *v = eval(a, ctx);
        }
        return func.apply(&vals[..args.len()]).map(Cow::Owned);
    }
    let mut vals: Vec<Val<'c, 'v>> = args.iter().map(|a| eval(a, ctx)).collect();
    if mapped {
        let rest = vals.split_off(1);
        let first = vals.pop()??;
        let Value::Array(items) = first.as_ref() else {
            return None;
        };
        let mut local: Vec<Val<'_, 'v>> = Vec::with_capacity(rest.len() + 1);
        local.push(None);
        local.extend(rest.iter().map(|v| v.as_deref().map(Cow::Borrowed)));
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            local[0] = Some(Cow::Borrowed(item));
            if let Some(v) = func.apply(&local) {
                out.push(v);
            }
        }
        Some(Cow::Owned(Value::Array(out)))
    } else {
        func.apply(&vals).map(Cow::Owned)
    }
}
