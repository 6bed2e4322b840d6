//! The one-pass counting over collections: [`Ctx::prepare`] finds every
//! count over a collection the metrics take at the document root and
//! computes them together, walking each collection once, so that
//! [`Ctx::eval`] then only looks the results up.
//!
//! The filters of those counts are compiled into predicates over each
//! element's fields ([`row`]); elements are read in batches, with later
//! batches fetched ahead, and whatever a predicate cannot decide is
//! evaluated normally, in order, so that the first error is the one
//! reported.

use serde_json::Value;

use super::compile::Node;
use super::functions::Func;
use super::values::Val;
use super::{Ctx, EvalError, row};

/// What makes a count keep an element.
enum Keep<'a> {
    Filter(&'a Node),
    NotNull(&'a Node),
}

/// How many elements of a collection [`Ctx::prepare`] gathers together
/// (see [`row::Fields::gather`]); at most [`row::Bits::CAPACITY`].
const BATCH: usize = 16;

/// Asks the processor to start loading the cache line at `address`.
#[inline]
pub(super) fn prefetch<T>(address: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint; it never faults, whatever the
    // address, and reads nothing into the program. SSE, which provides it, is
    // part of every x86_64 processor.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(address.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

/// The address of a node, as a key for what is known about it.
pub(super) fn address(node: &Node) -> usize {
    std::ptr::from_ref::<Node>(node) as usize
}

/// The collection a count's left side walks, when it is
/// `values(collections.NAME)`.
fn counted_collection(lhs: &Node) -> Option<&str> {
    let Node::Function(Func::Values, args) = lhs else {
        return None;
    };
    match args.as_slice() {
        [Node::Subexpr(l, r)] => match (&**l, &**r) {
            (Node::Field(c, _), Node::Field(name, _)) if c == "collections" => Some(name),
            _ => None,
        },
        _ => None,
    }
}

/// Finds the counts over a collection that an expression evaluates against
/// the document root: the nodes reached without changing the current value
/// (function arguments, operands, left sides of sub-expressions and
/// projections, but not projected right sides or expression references).
fn root_counts<'a>(node: &'a Node, out: &mut Vec<(&'a str, &'a Node)>) {
    match node {
        Node::CountProjection(lhs, _) => {
            if let Some(name) = counted_collection(lhs) {
                out.push((name, node));
            }
            root_counts(lhs, out);
        }
        Node::Subexpr(lhs, _) | Node::Projection(lhs, _) => root_counts(lhs, out),
        Node::Flatten(inner) | Node::ObjectValues(inner) | Node::Not(inner) => root_counts(inner, out),
        Node::Condition(a, b) | Node::Comparison(_, a, b) | Node::And(a, b) | Node::Or(a, b) => {
            root_counts(a, out);
            root_counts(b, out);
        }
        Node::MultiList(items) | Node::Function(_, items) => items.iter().for_each(|i| root_counts(i, out)),
        Node::MultiHash(items) => items.iter().for_each(|(_, i)| root_counts(i, out)),
        Node::Identity | Node::Field(..) | Node::Index(_) | Node::Slice { .. } | Node::Literal(_) | Node::Expref(_) => {
        }
    }
}

impl Ctx {
    /// Computes ahead, in one pass per collection, every count over a
    /// collection that the expressions take at the document root.
    ///
    /// Most metrics count the elements of a collection that pass a filter.
    /// Evaluated one after the other, thirty metrics walk a 2,000-user
    /// collection a dozen times, and each walk waits on memory for every
    /// user; walked once, each user is read from memory once and every
    /// filter then finds it in the cache. The results are the ones the
    /// metrics would compute themselves, errors included: a count that fails
    /// on an element stops there with that error, as it would alone.
    pub(crate) fn prepare<'a>(&self, expressions: &[&'a Node], root: &Val<'a>) {
        let mut found: Vec<(&'a str, &'a Node)> = Vec::new();
        for node in expressions {
            root_counts(node, &mut found);
        }
        let mut names: Vec<&str> = found.iter().map(|(name, _)| *name).collect();
        names.sort_unstable();
        names.dedup();
        let collections = root.field("collections");
        for name in names {
            let Val::JObj(collection) = collections.field(name) else {
                // Not an object: evaluation reports it as it happens.
                continue;
            };
            // Each count keeps an element either when a filter's predicate
            // holds (`[?p]`, by far the most common) or when its right side
            // is not null.
            let nodes: Vec<(&Node, Keep<'_>)> = found
                .iter()
                .filter(|(n, _)| *n == name)
                .filter_map(|(_, node)| match node {
                    Node::CountProjection(_, rhs) => Some((
                        *node,
                        match &**rhs {
                            Node::Condition(p, then) if matches!(**then, Node::Identity) => Keep::Filter(p),
                            other => Keep::NotNull(other),
                        },
                    )),
                    _ => None,
                })
                .collect();
            let mut results: Vec<Result<usize, EvalError>> = vec![Ok(0); nodes.len()];
            let mut fields = row::Fields::default();
            let preds: Vec<Option<row::Pred>> = nodes
                .iter()
                .map(|(_, keep)| match keep {
                    Keep::Filter(p) => row::compile(p, &mut fields),
                    Keep::NotNull(_) => None,
                })
                .collect();
            let mut slots: Vec<&Value> = Vec::new();
            let mut decided: Vec<row::Bits> = Vec::new();
            let values: Vec<&Value> = collection.values().collect();
            let width = fields.len();
            let batches: Vec<&[&Value]> = values.chunks(BATCH).collect();
            // Batch `b` is resolved and tested while `b + 1` is fetched,
            // `b + 2` gathered and `b + 3` touched (see `row::Fields::gather`).
            let mut gathered: [row::Gathered<'_>; 3] = Default::default();
            if width > 0 {
                for batch in batches.iter().take(3) {
                    row::touch(batch);
                }
                for (batch, into) in batches.iter().zip(&mut gathered).take(2) {
                    fields.gather(batch, into);
                }
                fields.fetch(&gathered[0]);
            }
            for (b, batch) in batches.iter().enumerate() {
                if width > 0 {
                    if let Some(far) = batches.get(b + 3) {
                        row::touch(far);
                    }
                    match batches.get(b + 2) {
                        Some(next) => fields.gather(next, &mut gathered[2]),
                        None => gathered[2] = row::Gathered::default(),
                    }
                    fields.fetch(&gathered[1]);
                    fields.resolve(&gathered[0], &mut slots);
                    gathered.rotate_left(1);
                }
                fields.decide(batch, &slots, self.now, &mut decided);
                let all = row::Bits::all(batch.len());
                for (((_, keep), pred), result) in nodes.iter().zip(&preds).zip(results.iter_mut()) {
                    let Ok(count) = result else {
                        continue;
                    };
                    let bits = pred.as_ref().map_or(all.undecided(), |p| p.bits(&decided, all));
                    *count += bits.kept();
                    // Elements the predicate could not decide are evaluated
                    // one by one, in order, so that the first error is the
                    // one reported.
                    for j in bits.undecided_positions() {
                        let Some(value) = batch.get(j) else {
                            continue;
                        };
                        let item = Val::from_json(value);
                        let kept = match keep {
                            Keep::Filter(p) => self.test(p, &item).map(|t| t && !item.is_null()),
                            Keep::NotNull(rhs) => self.eval(rhs, &item).map(|v| !v.is_null()),
                        };
                        match kept {
                            Ok(true) => *count += 1,
                            Ok(false) => {}
                            Err(e) => {
                                *result = Err(e);
                                break;
                            }
                        }
                    }
                }
            }
            let mut counts = self.counts.borrow_mut();
            for ((node, _), result) in nodes.iter().zip(results) {
                counts.insert(address(node), result);
            }
        }
    }
}
