//! A JMESPath evaluator over borrowed `serde_json` values.
//!
//! Expressions are parsed by the `jmespath` crate and compiled here into a
//! [`Node`] tree. Evaluation then reads the dataprint in place: converting a
//! 2,000-user dataprint into `jmespath::Variable`s costs far more than
//! evaluating thirty metrics over it, and the metric budget (1,000 tenants in
//! a second) leaves no room for that copy.
//!
//! The semantics follow the `jmespath` crate 0.5 (a test compares the two on
//! random documents): objects are visited in key order, numbers compare with
//! the crate's tolerance, ordering comparisons need numbers, and functions
//! check their argument types. On top of the standard functions, this
//! evaluator offers the crate's extras (see [`EXTRA_FUNCTIONS`]).
//!
//! This module owns the evaluation of a compiled expression ([`Ctx::eval`]
//! and the value-free shortcuts filters take); the rest lives in its
//! submodules:
//!
//! - [`compile`](mod@compile): the compiled expression ([`Node`]) and its compilation
//!   from the parsed one;
//! - [`values`]: the values evaluation works on ([`Val`]), field lookups,
//!   equality, ordering and comparisons, indexing and slicing;
//! - [`functions`]: the function table, argument checks and the functions
//!   themselves, including the date arithmetic of the extras;
//! - [`counting`]: the one-pass counting over collections
//!   ([`Ctx::prepare`]);
//! - [`row`]: the filters that pass compiles into predicates over each
//!   element's fields, decided a batch of elements at a time.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde_json::{Map, Number, Value};

mod compile;
mod counting;
mod functions;
mod row;
mod values;

pub(crate) use self::compile::{Node, compile};
pub use self::functions::EXTRA_FUNCTIONS;
pub(crate) use self::functions::Func;
pub(crate) use self::values::Val;

use self::compile::Cmp;
use self::counting::address;
use self::functions::{days_between, length_of, type_error};
use self::values::{
    NULL, compare, compare_json, float_eq, get_hinted, index, json_truthy, keys_sorted, ordered, slice,
};

/// An evaluation error, with a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EvalError(pub(crate) String);

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Evaluation state for one document: the caller's time and a cache of
/// which large objects already have their keys in order.
pub(crate) struct Ctx {
    now: Option<i64>,
    sorted: RefCell<HashMap<usize, bool>>,
    /// Counts computed ahead by [`Ctx::prepare`], by node address.
    counts: RefCell<HashMap<usize, Result<usize, EvalError>>>,
}

impl Ctx {
    pub(crate) fn new(now: Option<i64>) -> Ctx {
        Ctx { now, sorted: RefCell::new(HashMap::new()), counts: RefCell::new(HashMap::new()) }
    }

    /// Whether a projection keeps an element: its right side is not null.
    fn kept<'a>(&self, rhs: &'a Node, item: &Val<'a>) -> Result<bool, EvalError> {
        match rhs {
            // A filter that keeps the element itself: only the predicate
            // matters (and a null element is dropped, after its predicate
            // was evaluated, errors included, as a projection does).
            Node::Condition(predicate, then) if matches!(**then, Node::Identity) => {
                Ok(self.test(predicate, item)? && !item.is_null())
            }
            other => Ok(!self.eval(other, item)?.is_null()),
        }
    }

    /// The values of an object in key order. Dataprint collections are
    /// written with sorted keys, so the check usually succeeds and is done
    /// once per collection, however many metrics read it.
    fn object_values<'a>(&self, v: &Val<'a>) -> Option<Vec<Val<'a>>> {
        match v {
            Val::JObj(m) => {
                if self.is_sorted(m) {
                    Some(m.values().map(Val::from_json).collect())
                } else {
                    let mut entries: Vec<(&String, &Value)> = m.iter().collect();
                    entries.sort_by(|a, b| a.0.cmp(b.0));
                    Some(entries.into_iter().map(|(_, v)| Val::from_json(v)).collect())
                }
            }
            Val::Obj(m) => Some(m.values().cloned().collect()),
            _ => None,
        }
    }

    /// Feeds the elements of a projection's left side to `f`, returning
    /// false when that side is not an array (the projection is then null).
    /// `values(x)` and `x.*` are walked in place instead of being collected
    /// into an array first.
    #[inline(never)]
    fn project<'a>(
        &self,
        lhs: &'a Node,
        cur: &Val<'a>,
        ordered: bool,
        f: &mut dyn FnMut(&Val<'a>) -> Result<(), EvalError>,
    ) -> Result<bool, EvalError> {
        let (inner, strict) = match lhs {
            Node::Function(Func::Values, args) if args.len() == 1 => (&args[0], true),
            Node::ObjectValues(inner) => (&**inner, false),
            other => {
                let left = self.eval(other, cur)?;
                match &left {
                    Val::JArr(a) => {
                        for item in *a {
                            f(&Val::from_json(item))?;
                        }
                    }
                    Val::Arr(a) => {
                        for item in a {
                            f(item)?;
                        }
                    }
                    _ => return Ok(false),
                }
                return Ok(true);
            }
        };
        let object = self.eval(inner, cur)?;
        match &object {
            Val::JObj(m) if !ordered || self.is_sorted(m) => {
                for v in m.values() {
                    f(&Val::from_json(v))?;
                }
            }
            Val::JObj(_) | Val::Obj(_) => {
                for v in self.object_values(&object).unwrap_or_default() {
                    f(&v)?;
                }
            }
            // `values()` of anything else is a type error, `*` is null.
            other if strict => return Err(type_error(Func::Values, 1, "an object", other)),
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn is_sorted(&self, m: &Map<String, Value>) -> bool {
        if m.len() <= 16 {
            return keys_sorted(m);
        }
        let addr = std::ptr::from_ref::<Map<String, Value>>(m) as usize;
        *self.sorted.borrow_mut().entry(addr).or_insert_with(|| keys_sorted(m))
    }

    /// The truthiness of a node's value. Filters only need that, and for
    /// the usual predicates (fields, literals, comparisons, `&&`, `||`, `!`)
    /// it can be had without building any value.
    fn test<'a>(&self, node: &'a Node, cur: &Val<'a>) -> Result<bool, EvalError> {
        match node {
            Node::And(a, b) => Ok(self.test(a, cur)? && self.test(b, cur)?),
            Node::Or(a, b) => Ok(self.test(a, cur)? || self.test(b, cur)?),
            Node::Not(a) => Ok(!self.test(a, cur)?),
            Node::Comparison(cmp, l, r) => {
                if let (Some(x), Some(y)) = (peek(l, cur), peek(r, cur)) {
                    return Ok(compare_json(*cmp, x, y) == Some(true));
                }
                if let (Some(x), Some(y)) = (self.fast_number(l, cur), self.fast_number(r, cur)) {
                    match (x, y) {
                        (Some(x), Some(y)) => {
                            return Ok(match cmp {
                                Cmp::Eq => float_eq(x, y),
                                Cmp::Ne => !float_eq(x, y),
                                _ => ordered(*cmp, x, y) == Some(true),
                            });
                        }
                        // Ordering needs two numbers, so anything else is
                        // null, hence false; equality needs the real values.
                        _ if !matches!(cmp, Cmp::Eq | Cmp::Ne) => return Ok(false),
                        _ => {}
                    }
                }
                let l = self.eval(l, cur)?;
                let r = self.eval(r, cur)?;
                Ok(compare(*cmp, &l, &r) == Some(true))
            }
            _ => match peek(node, cur) {
                Some(v) => Ok(json_truthy(v)),
                None => Ok(self.eval(node, cur)?.is_truthy()),
            },
        }
    }

    /// The number a node evaluates to, for the numeric expressions filters
    /// compare most (`length(x)`, `days_since(x)`, fields, literals), without
    /// building values: `Some(Some(n))` for a number, `Some(None)` for a
    /// value that is not a number, `None` when the node must be evaluated
    /// normally (including every case that would be an error).
    fn fast_number<'a>(&self, node: &'a Node, cur: &Val<'a>) -> Option<Option<f64>> {
        match node {
            Node::Function(Func::Length, args) => length_of(peek(args.first()?, cur)?).map(Some),
            Node::Function(func @ (Func::DaysSince | Func::DaysUntil), args) => match peek(args.first()?, cur)? {
                Value::String(s) => Some(days_between(*func, s, self.now)),
                Value::Null => Some(None),
                _ => None,
            },
            _ => peek(node, cur).map(Value::as_f64),
        }
    }

    pub(crate) fn eval<'a>(&self, node: &'a Node, cur: &Val<'a>) -> Result<Val<'a>, EvalError> {
        Ok(match node {
            Node::Identity => cur.clone(),
            Node::Field(name, hint) => match cur {
                Val::JObj(m) => get_hinted(m, name, hint).map_or(Val::Null, Val::from_json),
                _ => cur.field(name),
            },
            Node::Index(i) => index(cur, *i),
            Node::Slice { start, stop, step } => {
                if *step == 0 {
                    return Err(EvalError("slice step cannot be 0".into()));
                }
                if cur.is_array() { Val::Arr(slice(&cur.items(), *start, *stop, *step)) } else { Val::Null }
            }
            Node::Literal(v) => Val::from_json(v),
            Node::Subexpr(lhs, rhs) => {
                let left = self.eval(lhs, cur)?;
                self.eval(rhs, &left)?
            }
            Node::Projection(lhs, rhs) => {
                let mut out = Vec::new();
                let projected = self.project(lhs, cur, true, &mut |item| {
                    let v = self.eval(rhs, item)?;
                    if !v.is_null() {
                        out.push(v);
                    }
                    Ok(())
                })?;
                if projected { Val::Arr(out) } else { Val::Null }
            }
            Node::CountProjection(lhs, rhs) => {
                if let Some(result) = self.counts.borrow().get(&address(node)) {
                    return result.clone().map(|n| Val::Num(Number::from(n)));
                }
                let mut count = 0usize;
                // A count does not depend on the order of the elements.
                let projected = self.project(lhs, cur, false, &mut |item| {
                    if self.kept(rhs, item)? {
                        count += 1;
                    }
                    Ok(())
                })?;
                if !projected {
                    return Err(type_error(Func::Length, 1, "an array, an object or a string", &Val::Null));
                }
                Val::Num(Number::from(count))
            }
            Node::ObjectValues(inner) => {
                let v = self.eval(inner, cur)?;
                self.object_values(&v).map_or(Val::Null, Val::Arr)
            }
            Node::Flatten(inner) => {
                let v = self.eval(inner, cur)?;
                if !v.is_array() {
                    return Ok(Val::Null);
                }
                let mut out = Vec::new();
                for item in v.items() {
                    if item.is_array() {
                        out.extend(item.items());
                    } else {
                        out.push(item);
                    }
                }
                Val::Arr(out)
            }
            Node::Condition(predicate, then) => {
                if self.test(predicate, cur)? {
                    self.eval(then, cur)?
                } else {
                    Val::Null
                }
            }
            Node::Comparison(cmp, lhs, rhs) => {
                let l = self.eval(lhs, cur)?;
                let r = self.eval(rhs, cur)?;
                compare(*cmp, &l, &r).map_or(Val::Null, Val::Bool)
            }
            Node::And(lhs, rhs) => {
                let l = self.eval(lhs, cur)?;
                if l.is_truthy() { self.eval(rhs, cur)? } else { l }
            }
            Node::Or(lhs, rhs) => {
                let l = self.eval(lhs, cur)?;
                if l.is_truthy() { l } else { self.eval(rhs, cur)? }
            }
            Node::Not(inner) => Val::Bool(!self.eval(inner, cur)?.is_truthy()),
            Node::MultiList(elements) => {
                if cur.is_null() {
                    return Ok(Val::Null);
                }
                Val::Arr(elements.iter().map(|e| self.eval(e, cur)).collect::<Result<_, _>>()?)
            }
            Node::MultiHash(elements) => {
                if cur.is_null() {
                    return Ok(Val::Null);
                }
                let mut out = BTreeMap::new();
                for (k, e) in elements {
                    out.insert(k.clone(), self.eval(e, cur)?);
                }
                Val::Obj(out)
            }
            Node::Expref(inner) => Val::Expref(inner),
            Node::Function(func, args) => {
                // Most functions take one or two arguments; evaluating them
                // into locals avoids an allocation per call.
                let mut iter = args.iter();
                let a = match iter.next() {
                    Some(n) => self.eval(n, cur)?,
                    None => Val::Null,
                };
                let b = match iter.next() {
                    Some(n) => self.eval(n, cur)?,
                    None => Val::Null,
                };
                let rest = iter.map(|n| self.eval(n, cur)).collect::<Result<Vec<_>, _>>()?;
                self.call(*func, args.len(), a, b, rest)?
            }
        })
    }
}

/// The value of a literal or of a path of fields into the document, borrowed;
/// `None` for any other node, which must then be evaluated.
fn peek<'a>(node: &'a Node, cur: &Val<'a>) -> Option<&'a Value> {
    match node {
        Node::Literal(v) => Some(v),
        Node::Field(name, hint) => match cur {
            Val::JObj(m) => Some(get_hinted(m, name, hint).unwrap_or(&NULL)),
            Val::Obj(_) => None,
            _ => Some(&NULL),
        },
        Node::Or(a, b) => {
            let x = peek(a, cur)?;
            if json_truthy(x) { Some(x) } else { peek(b, cur) }
        }
        Node::And(a, b) => {
            let x = peek(a, cur)?;
            if json_truthy(x) { peek(b, cur) } else { Some(x) }
        }
        Node::Subexpr(lhs, rhs) => {
            let Node::Field(name, hint) = &**rhs else {
                return None;
            };
            match peek(lhs, cur)? {
                Value::Object(m) => Some(get_hinted(m, name, hint).unwrap_or(&NULL)),
                _ => Some(&NULL),
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(expr: &str, data: &Value) -> Result<Value, EvalError> {
        let node = compile(&jmespath::parse(expr).unwrap()).unwrap();
        // 2026-11-28T12:00:00Z.
        let ctx = Ctx::new(Some(1_795_867_200));
        ctx.eval(&node, &Val::from_json(data)).map(|v| v.to_json())
    }

    #[test]
    fn dates() {
        let d = json!({});
        assert_eq!(eval("days_since('2026-08-30T12:00:00Z')", &d), Ok(json!(90)));
        assert_eq!(eval("days_since('2026-08-30T13:00:00Z')", &d), Ok(json!(89)));
        assert_eq!(eval("days_until('2026-12-28T11:00:00Z')", &d), Ok(json!(29)));
        assert_eq!(eval("days_until('2026-11-27T12:00:00Z')", &d), Ok(json!(-1)));
        assert_eq!(eval("days_since(missing)", &d), Ok(Value::Null));
        assert_eq!(eval("days_since('not a date')", &d), Ok(Value::Null));
        assert_eq!(eval("to_epoch('1970-01-02T00:00:00Z')", &d), Ok(json!(86400)));
        assert!(eval("days_since(`1`)", &d).is_err());
    }

    #[test]
    fn arithmetic() {
        let d = json!({});
        assert_eq!(eval("sub(`10`, `4`)", &d), Ok(json!(6)));
        assert_eq!(eval("div(`1`, `0`)", &d), Ok(Value::Null));
        assert_eq!(eval("round(mul(div(`41.5`, `80`), `100`), `1`)", &d), Ok(json!(51.9)));
        assert_eq!(eval("add(a, `1`)", &d), Ok(Value::Null));
        assert!(eval("add('a', `1`)", &d).is_err());
    }

    #[test]
    fn collections() {
        assert_eq!(eval("unique(@)", &json!(["a", "b", "a", 1, 1.0])), Ok(json!(["a", "b", 1])));
        assert_eq!(eval("split(@, ' ')", &json!("User.Read  Mail.Read")), Ok(json!(["User.Read", "Mail.Read"])));
        assert_eq!(eval("split(@, ',')", &json!("a,,b")), Ok(json!(["a", "", "b"])));
        assert_eq!(eval("unique(missing)", &json!({})), Ok(Value::Null));
    }

    #[test]
    fn objects_are_visited_in_key_order() {
        let d: Value = serde_json::from_str(r#"{"b": 2, "a": 1, "c": 3}"#).unwrap();
        assert_eq!(eval("values(@)", &d), Ok(json!([1, 2, 3])));
        assert_eq!(eval("keys(@)", &d), Ok(json!(["a", "b", "c"])));
        assert_eq!(eval("*", &d), Ok(json!([1, 2, 3])));
        assert_eq!(eval("to_string(@)", &d), Ok(json!("{\"a\":1,\"b\":2,\"c\":3}")));
    }
}
