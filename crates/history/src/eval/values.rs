//! The values evaluation works on, and what the evaluator asks of them.
//!
//! A [`Val`] borrows from the document wherever it can, and a document value
//! is read in place ([`get_hinted`], [`compare_json`], [`json_truthy`])
//! whenever no new value must be built. Equality and ordering follow the
//! `jmespath` crate: numbers compare as floats within its tolerance, objects
//! are visited in key order.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

use serde_json::{Map, Number, Value};

use super::compile::{Cmp, Node};

/// The JMESPath type of a value, for argument checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Null,
    Boolean,
    Number,
    String,
    Array,
    Object,
    Expref,
}

impl Kind {
    pub(super) fn name(self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Boolean => "boolean",
            Kind::Number => "number",
            Kind::String => "string",
            Kind::Array => "array",
            Kind::Object => "object",
            Kind::Expref => "expref",
        }
    }
}

/// A value during evaluation: borrowed from the document where possible.
#[derive(Debug, Clone)]
pub(crate) enum Val<'a> {
    Null,
    Bool(bool),
    Num(Number),
    Str(Cow<'a, str>),
    /// An array of the document.
    JArr(&'a [Value]),
    /// An array built during evaluation.
    Arr(Vec<Val<'a>>),
    /// An object of the document.
    JObj(&'a Map<String, Value>),
    /// An object built during evaluation (multi-select hash, `merge`).
    Obj(BTreeMap<String, Val<'a>>),
    Expref(&'a Node),
}

impl<'a> Val<'a> {
    pub(crate) fn from_json(v: &'a Value) -> Val<'a> {
        match v {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(*b),
            Value::Number(n) => Val::Num(n.clone()),
            Value::String(s) => Val::Str(Cow::Borrowed(s)),
            Value::Array(a) => Val::JArr(a),
            Value::Object(m) => Val::JObj(m),
        }
    }

    pub(super) fn kind(&self) -> Kind {
        match self {
            Val::Null => Kind::Null,
            Val::Bool(_) => Kind::Boolean,
            Val::Num(_) => Kind::Number,
            Val::Str(_) => Kind::String,
            Val::JArr(_) | Val::Arr(_) => Kind::Array,
            Val::JObj(_) | Val::Obj(_) => Kind::Object,
            Val::Expref(_) => Kind::Expref,
        }
    }

    pub(super) fn type_name(&self) -> &'static str {
        self.kind().name()
    }

    pub(crate) fn is_truthy(&self) -> bool {
        match self {
            Val::Null | Val::Expref(_) => false,
            Val::Bool(b) => *b,
            Val::Num(_) => true,
            Val::Str(s) => !s.is_empty(),
            Val::JArr(a) => !a.is_empty(),
            Val::Arr(a) => !a.is_empty(),
            Val::JObj(m) => !m.is_empty(),
            Val::Obj(m) => !m.is_empty(),
        }
    }

    pub(super) fn is_null(&self) -> bool {
        matches!(self, Val::Null)
    }

    pub(super) fn is_array(&self) -> bool {
        matches!(self, Val::JArr(_) | Val::Arr(_))
    }

    pub(super) fn is_object(&self) -> bool {
        matches!(self, Val::JObj(_) | Val::Obj(_))
    }

    pub(super) fn as_f64(&self) -> Option<f64> {
        match self {
            Val::Num(n) => n.as_f64(),
            _ => None,
        }
    }

    pub(super) fn as_str(&self) -> Option<&str> {
        match self {
            Val::Str(s) => Some(s),
            _ => None,
        }
    }

    pub(super) fn len(&self) -> usize {
        match self {
            Val::JArr(a) => a.len(),
            Val::Arr(a) => a.len(),
            Val::JObj(m) => m.len(),
            Val::Obj(m) => m.len(),
            _ => 0,
        }
    }

    /// The elements of an array (empty for anything else).
    pub(super) fn items(&self) -> Vec<Val<'a>> {
        match self {
            Val::JArr(a) => a.iter().map(Val::from_json).collect(),
            Val::Arr(a) => a.clone(),
            _ => Vec::new(),
        }
    }

    pub(super) fn field(&self, name: &str) -> Val<'a> {
        match self {
            Val::JObj(m) => get(m, name).map_or(Val::Null, Val::from_json),
            Val::Obj(m) => m.get(name).cloned().unwrap_or(Val::Null),
            _ => Val::Null,
        }
    }

    /// Converts back to JSON. Whole floating-point numbers become integers,
    /// so that a count reads `3`, not `3.0`.
    pub(crate) fn to_json(&self) -> Value {
        self.to_json_with(true)
    }

    pub(super) fn to_json_with(&self, integral: bool) -> Value {
        match self {
            Val::Null | Val::Expref(_) => Value::Null,
            Val::Bool(b) => Value::Bool(*b),
            Val::Num(n) => Value::Number(if integral { integral_number(n) } else { n.clone() }),
            Val::Str(s) => Value::String(s.to_string()),
            Val::JArr(a) => Value::Array(a.iter().map(|v| json_with(v, integral)).collect()),
            Val::Arr(a) => Value::Array(a.iter().map(|v| v.to_json_with(integral)).collect()),
            Val::JObj(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort_unstable();
                Value::Object(
                    keys.into_iter().filter_map(|k| m.get(k).map(|v| (k.clone(), json_with(v, integral)))).collect(),
                )
            }
            Val::Obj(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json_with(integral))).collect()),
        }
    }
}

pub(super) static NULL: Value = Value::Null;

/// Looks a key up. Graph objects have a dozen fields, and a scan of the
/// map's contiguous entries comparing lengths first beats hashing the key.
fn get<'a>(m: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if m.len() <= 24 { m.iter().find(|(k, _)| k.as_str() == name).map(|(_, v)| v) } else { m.get(name) }
}

/// Where a field was found last time. The objects of a collection have the
/// same fields in the same order (dataprints write keys sorted), so the
/// position that held a field in one object almost always holds it in the
/// next: checking it first makes a lookup one comparison.
#[derive(Debug, Default)]
pub(crate) struct Hint(AtomicUsize);

impl Clone for Hint {
    fn clone(&self) -> Self {
        Hint(AtomicUsize::new(self.0.load(AtomicOrdering::Relaxed)))
    }
}

impl PartialEq for Hint {
    /// Hints are a cache, not part of the expression.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

pub(super) fn get_hinted<'a>(m: &'a Map<String, Value>, name: &str, hint: &Hint) -> Option<&'a Value> {
    let at = hint.0.load(AtomicOrdering::Relaxed);
    if let Some((k, v)) = m.iter().nth(at)
        && k == name
    {
        return Some(v);
    }
    if m.len() <= 24 {
        let (position, (_, v)) = m.iter().enumerate().find(|(_, (k, _))| k.as_str() == name)?;
        hint.0.store(position, AtomicOrdering::Relaxed);
        Some(v)
    } else {
        m.get(name)
    }
}

/// A document value with objects in key order (as the `jmespath` crate
/// holds them) and, if asked, whole floats as integers.
fn json_with(v: &Value, integral: bool) -> Value {
    match v {
        Value::Number(n) if integral => Value::Number(integral_number(n)),
        Value::Array(a) => Value::Array(a.iter().map(|x| json_with(x, integral)).collect()),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort_unstable();
            Value::Object(
                keys.into_iter().filter_map(|k| m.get(k).map(|x| (k.clone(), json_with(x, integral)))).collect(),
            )
        }
        other => other.clone(),
    }
}

/// JMESPath's arithmetic works in floating point; a whole result is turned
/// back into an integer.
fn integral_number(n: &Number) -> Number {
    match n.as_f64() {
        Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15 =>
        {
            #[allow(clippy::cast_possible_truncation)]
            Number::from(f as i64)
        }
        _ => n.clone(),
    }
}

pub(super) fn json_truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(_) => true,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

/// The crate's float equality: exact, or relatively within machine epsilon.
pub(super) fn float_eq(a: f64, b: f64) -> bool {
    let diff = (a - b).abs();
    if a == b {
        true
    } else if !a.is_normal() || !b.is_normal() {
        diff < (f64::EPSILON * f64::MIN_POSITIVE)
    } else {
        diff / (a.abs() + b.abs()) < f64::EPSILON
    }
}

/// Structural equality with numbers compared as floats.
pub(super) fn equal(a: &Val<'_>, b: &Val<'_>) -> bool {
    match (a, b) {
        (Val::Null, Val::Null) => true,
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Num(x), Val::Num(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => float_eq(x, y),
            _ => false,
        },
        (Val::Str(x), Val::Str(y)) => x == y,
        (Val::Expref(x), Val::Expref(y)) => x == y,
        _ if a.is_array() && b.is_array() => {
            a.len() == b.len() && a.items().iter().zip(b.items().iter()).all(|(x, y)| equal(x, y))
        }
        _ if a.is_object() && b.is_object() => {
            if a.len() != b.len() {
                return false;
            }
            object_entries(a).iter().all(|(k, v)| equal(v, &b.field(k)) && has_key(b, k))
        }
        _ => false,
    }
}

/// [`equal`] on document values.
pub(super) fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => float_eq(x, y),
            _ => false,
        },
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_equal(p, q)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

fn has_key(v: &Val<'_>, key: &str) -> bool {
    match v {
        Val::JObj(m) => m.contains_key(key),
        Val::Obj(m) => m.contains_key(key),
        _ => false,
    }
}

/// The entries of an object, in key order.
pub(super) fn object_entries<'a>(v: &Val<'a>) -> Vec<(Cow<'a, str>, Val<'a>)> {
    match v {
        Val::JObj(m) => {
            let mut entries: Vec<(Cow<'a, str>, Val<'a>)> =
                m.iter().map(|(k, v)| (Cow::Borrowed(k.as_str()), Val::from_json(v))).collect();
            if !keys_sorted(m) {
                entries.sort_by(|a, b| a.0.cmp(&b.0));
            }
            entries
        }
        Val::Obj(m) => m.iter().map(|(k, v)| (Cow::Owned(k.clone()), v.clone())).collect(),
        _ => Vec::new(),
    }
}

pub(super) fn keys_sorted(m: &Map<String, Value>) -> bool {
    let mut keys = m.keys();
    let Some(mut previous) = keys.next() else {
        return true;
    };
    for key in keys {
        if key < previous {
            return false;
        }
        previous = key;
    }
    true
}

/// Ordering of two values of the same type (strings and numbers), as the
/// crate's `sort` and `sort_by` use it.
pub(super) fn order(a: &Val<'_>, b: &Val<'_>) -> Ordering {
    match (a, b) {
        (Val::Str(x), Val::Str(y)) => x.cmp(y),
        (Val::Num(x), Val::Num(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Less),
            _ => Ordering::Equal,
        },
        _ => Ordering::Equal,
    }
}

pub(super) fn compare(cmp: Cmp, l: &Val<'_>, r: &Val<'_>) -> Option<bool> {
    match cmp {
        Cmp::Eq => Some(equal(l, r)),
        Cmp::Ne => Some(!equal(l, r)),
        _ => ordered(cmp, l.as_f64()?, r.as_f64()?),
    }
}

/// [`compare`] on document values.
pub(super) fn compare_json(cmp: Cmp, l: &Value, r: &Value) -> Option<bool> {
    match cmp {
        Cmp::Eq => Some(json_equal(l, r)),
        Cmp::Ne => Some(!json_equal(l, r)),
        _ => ordered(cmp, l.as_f64()?, r.as_f64()?),
    }
}

pub(super) fn ordered(cmp: Cmp, x: f64, y: f64) -> Option<bool> {
    let o = if float_eq(x, y) { Ordering::Equal } else { x.partial_cmp(&y).unwrap_or(Ordering::Less) };
    Some(match cmp {
        Cmp::Lt => o == Ordering::Less,
        Cmp::Le => o != Ordering::Greater,
        Cmp::Gt => o == Ordering::Greater,
        _ => o != Ordering::Less,
    })
}

pub(super) fn index<'a>(cur: &Val<'a>, i: i32) -> Val<'a> {
    let len = cur.len();
    if !cur.is_array() {
        return Val::Null;
    }
    let position = if i >= 0 {
        usize::try_from(i).ok().filter(|p| *p < len)
    } else {
        let back = usize::try_from(i.unsigned_abs()).unwrap_or(usize::MAX).max(1);
        len.checked_sub(back)
    };
    match (cur, position) {
        (Val::JArr(a), Some(p)) => a.get(p).map_or(Val::Null, Val::from_json),
        (Val::Arr(a), Some(p)) => a.get(p).cloned().unwrap_or(Val::Null),
        _ => Val::Null,
    }
}

pub(super) fn slice<'a>(items: &[Val<'a>], start: Option<i32>, stop: Option<i32>, step: i32) -> Vec<Val<'a>> {
    let Ok(len) = i32::try_from(items.len()) else {
        return Vec::new();
    };
    if len == 0 {
        return Vec::new();
    }
    let adjust = |endpoint: i32| -> i32 {
        if endpoint < 0 {
            let e = endpoint + len;
            if e >= 0 {
                e
            } else if step < 0 {
                -1
            } else {
                0
            }
        } else if endpoint < len {
            endpoint
        } else if step < 0 {
            len - 1
        } else {
            len
        }
    };
    let a = start.map_or(if step < 0 { len - 1 } else { 0 }, adjust);
    let b = stop.map_or(if step < 0 { -1 } else { len }, adjust);
    let mut out = Vec::new();
    let mut i = a;
    while (step > 0 && i < b) || (step < 0 && i > b) {
        if let Some(item) = usize::try_from(i).ok().and_then(|p| items.get(p)) {
            out.push(item.clone());
        }
        i += step;
    }
    out
}
