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

use std::borrow::Cow;
use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

use jmespath::ast::{Ast, Comparator};
use serde_json::{Map, Number, Value};

use crate::dataprint::parse_time;

mod row;

/// The functions this crate adds to standard JMESPath.
pub const EXTRA_FUNCTIONS: &[&str] =
    &["days_since", "days_until", "to_epoch", "unique", "add", "sub", "mul", "div", "round", "split"];

const SECONDS_PER_DAY: i64 = 86_400;

/// Converts a literal of the parsed expression into JSON, keeping numbers
/// exactly as written.
fn variable_to_json(var: &jmespath::Variable) -> Value {
    use jmespath::Variable;
    match var {
        Variable::Null | Variable::Expref(_) => Value::Null,
        Variable::Bool(b) => Value::Bool(*b),
        Variable::Number(n) => Value::Number(n.clone()),
        Variable::String(s) => Value::String(s.clone()),
        Variable::Array(items) => Value::Array(items.iter().map(|v| variable_to_json(v)).collect()),
        Variable::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), variable_to_json(v))).collect()),
    }
}

/// A compiled expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Identity,
    Field(String, Hint),
    Index(i32),
    Slice {
        start: Option<i32>,
        stop: Option<i32>,
        step: i32,
    },
    Literal(Value),
    Subexpr(Box<Node>, Box<Node>),
    Projection(Box<Node>, Box<Node>),
    ObjectValues(Box<Node>),
    Flatten(Box<Node>),
    Condition(Box<Node>, Box<Node>),
    Comparison(Cmp, Box<Node>, Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
    MultiList(Vec<Node>),
    MultiHash(Vec<(String, Node)>),
    Function(Func, Vec<Node>),
    Expref(Box<Node>),
    /// `length()` of a projection, counted without building the array.
    CountProjection(Box<Node>, Box<Node>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// Every function, resolved at compile time so that a misspelt name is an
/// error when the metric is loaded rather than on every evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Func {
    Abs,
    Avg,
    Ceil,
    Contains,
    EndsWith,
    Floor,
    Join,
    Keys,
    Length,
    Map,
    Max,
    MaxBy,
    Merge,
    Min,
    MinBy,
    NotNull,
    Reverse,
    Sort,
    SortBy,
    StartsWith,
    Sum,
    ToArray,
    ToNumber,
    ToString,
    Type,
    Values,
    DaysSince,
    DaysUntil,
    ToEpoch,
    Unique,
    Add,
    Sub,
    Mul,
    Div,
    Round,
    Split,
}

const FUNCTIONS: &[(&str, Func)] = &[
    ("abs", Func::Abs),
    ("avg", Func::Avg),
    ("ceil", Func::Ceil),
    ("contains", Func::Contains),
    ("ends_with", Func::EndsWith),
    ("floor", Func::Floor),
    ("join", Func::Join),
    ("keys", Func::Keys),
    ("length", Func::Length),
    ("map", Func::Map),
    ("max", Func::Max),
    ("max_by", Func::MaxBy),
    ("merge", Func::Merge),
    ("min", Func::Min),
    ("min_by", Func::MinBy),
    ("not_null", Func::NotNull),
    ("reverse", Func::Reverse),
    ("sort", Func::Sort),
    ("sort_by", Func::SortBy),
    ("starts_with", Func::StartsWith),
    ("sum", Func::Sum),
    ("to_array", Func::ToArray),
    ("to_number", Func::ToNumber),
    ("to_string", Func::ToString),
    ("type", Func::Type),
    ("values", Func::Values),
    ("days_since", Func::DaysSince),
    ("days_until", Func::DaysUntil),
    ("to_epoch", Func::ToEpoch),
    ("unique", Func::Unique),
    ("add", Func::Add),
    ("sub", Func::Sub),
    ("mul", Func::Mul),
    ("div", Func::Div),
    ("round", Func::Round),
    ("split", Func::Split),
];

impl Func {
    fn name(self) -> &'static str {
        FUNCTIONS.iter().find(|(_, f)| *f == self).map_or("?", |(n, _)| n)
    }

    /// The number of arguments: fixed, or at least one for the variadic
    /// `merge` and `not_null`.
    fn arity(self) -> (usize, bool) {
        match self {
            Func::Merge | Func::NotNull => (1, true),
            Func::Contains
            | Func::EndsWith
            | Func::Join
            | Func::Map
            | Func::MaxBy
            | Func::MinBy
            | Func::SortBy
            | Func::StartsWith
            | Func::Add
            | Func::Sub
            | Func::Mul
            | Func::Div
            | Func::Round
            | Func::Split => (2, false),
            _ => (1, false),
        }
    }
}

/// Compiles a parsed expression.
pub(crate) fn compile(ast: &Ast) -> Result<Node, String> {
    let b = |a: &Ast| compile(a).map(Box::new);
    Ok(match ast {
        Ast::Identity { .. } => Node::Identity,
        Ast::Field { name, .. } => Node::Field(name.clone(), Hint::default()),
        Ast::Index { idx, .. } => Node::Index(*idx),
        Ast::Slice { start, stop, step, .. } => Node::Slice { start: *start, stop: *stop, step: *step },
        Ast::Literal { value, .. } => Node::Literal(variable_to_json(value)),
        Ast::Subexpr { lhs, rhs, .. } => Node::Subexpr(b(lhs)?, b(rhs)?),
        Ast::Projection { lhs, rhs, .. } => Node::Projection(b(lhs)?, b(rhs)?),
        Ast::ObjectValues { node, .. } => Node::ObjectValues(b(node)?),
        Ast::Flatten { node, .. } => Node::Flatten(b(node)?),
        Ast::Condition { predicate, then, .. } => Node::Condition(b(predicate)?, b(then)?),
        Ast::Comparison { comparator, lhs, rhs, .. } => {
            let cmp = match comparator {
                Comparator::Equal => Cmp::Eq,
                Comparator::NotEqual => Cmp::Ne,
                Comparator::LessThan => Cmp::Lt,
                Comparator::LessThanEqual => Cmp::Le,
                Comparator::GreaterThan => Cmp::Gt,
                Comparator::GreaterThanEqual => Cmp::Ge,
            };
            Node::Comparison(cmp, b(lhs)?, b(rhs)?)
        }
        Ast::And { lhs, rhs, .. } => Node::And(b(lhs)?, b(rhs)?),
        Ast::Or { lhs, rhs, .. } => Node::Or(b(lhs)?, b(rhs)?),
        Ast::Not { node, .. } => Node::Not(b(node)?),
        Ast::MultiList { elements, .. } => Node::MultiList(elements.iter().map(compile).collect::<Result<_, _>>()?),
        Ast::MultiHash { elements, .. } => Node::MultiHash(
            elements.iter().map(|kv| compile(&kv.value).map(|v| (kv.key.clone(), v))).collect::<Result<_, _>>()?,
        ),
        Ast::Expref { ast, .. } => Node::Expref(b(ast)?),
        Ast::Function { name, args, .. } => {
            let func = FUNCTIONS
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, f)| *f)
                .ok_or_else(|| format!("unknown function `{name}`"))?;
            let (count, variadic) = func.arity();
            if args.len() < count || (!variadic && args.len() > count) {
                return Err(format!(
                    "{name}() takes {}{count} argument{}, {} given",
                    if variadic { "at least " } else { "" },
                    if count == 1 { "" } else { "s" },
                    args.len()
                ));
            }
            let args: Vec<Node> = args.iter().map(compile).collect::<Result<_, _>>()?;
            // Counting the elements of a filtered collection is what most
            // metrics do; it needs no array.
            if func == Func::Length
                && let [Node::Projection(lhs, rhs)] = args.as_slice()
            {
                return Ok(Node::CountProjection(lhs.clone(), rhs.clone()));
            }
            Node::Function(func, args)
        }
    })
}

/// The JMESPath type of a value, for argument checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Boolean,
    Number,
    String,
    Array,
    Object,
    Expref,
}

impl Kind {
    fn name(self) -> &'static str {
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

    fn kind(&self) -> Kind {
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

    fn type_name(&self) -> &'static str {
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

    fn is_null(&self) -> bool {
        matches!(self, Val::Null)
    }

    fn is_array(&self) -> bool {
        matches!(self, Val::JArr(_) | Val::Arr(_))
    }

    fn is_object(&self) -> bool {
        matches!(self, Val::JObj(_) | Val::Obj(_))
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            Val::Num(n) => n.as_f64(),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Val::Str(s) => Some(s),
            _ => None,
        }
    }

    fn len(&self) -> usize {
        match self {
            Val::JArr(a) => a.len(),
            Val::Arr(a) => a.len(),
            Val::JObj(m) => m.len(),
            Val::Obj(m) => m.len(),
            _ => 0,
        }
    }

    /// The elements of an array (empty for anything else).
    fn items(&self) -> Vec<Val<'a>> {
        match self {
            Val::JArr(a) => a.iter().map(Val::from_json).collect(),
            Val::Arr(a) => a.clone(),
            _ => Vec::new(),
        }
    }

    fn field(&self, name: &str) -> Val<'a> {
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

    fn to_json_with(&self, integral: bool) -> Value {
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

fn get_hinted<'a>(m: &'a Map<String, Value>, name: &str, hint: &Hint) -> Option<&'a Value> {
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
pub(crate) fn integral_number(n: &Number) -> Number {
    match n.as_f64() {
        Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15 =>
        {
            #[allow(clippy::cast_possible_truncation)]
            Number::from(f as i64)
        }
        _ => n.clone(),
    }
}

fn float_num(f: f64) -> Result<Val<'static>, EvalError> {
    Number::from_f64(f).map(Val::Num).ok_or_else(|| EvalError("the result is not a finite number".into()))
}

/// Whole-number results of the extra functions are integers, as a person
/// would write them.
fn nice_num(f: f64) -> Val<'static> {
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        #[allow(clippy::cast_possible_truncation)]
        return Val::Num(Number::from(f as i64));
    }
    Number::from_f64(f).map_or(Val::Null, Val::Num)
}

/// The crate's float equality: exact, or relatively within machine epsilon.
fn float_eq(a: f64, b: f64) -> bool {
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
fn equal(a: &Val<'_>, b: &Val<'_>) -> bool {
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

fn has_key(v: &Val<'_>, key: &str) -> bool {
    match v {
        Val::JObj(m) => m.contains_key(key),
        Val::Obj(m) => m.contains_key(key),
        _ => false,
    }
}

/// The entries of an object, in key order.
fn object_entries<'a>(v: &Val<'a>) -> Vec<(Cow<'a, str>, Val<'a>)> {
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

fn keys_sorted(m: &Map<String, Value>) -> bool {
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
fn order(a: &Val<'_>, b: &Val<'_>) -> Ordering {
    match (a, b) {
        (Val::Str(x), Val::Str(y)) => x.cmp(y),
        (Val::Num(x), Val::Num(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Less),
            _ => Ordering::Equal,
        },
        _ => Ordering::Equal,
    }
}

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
fn prefetch<T>(address: *const T) {
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

/// `length()` of a document value, or `None` for a value that has none
/// (an error the evaluator reports).
fn length_of(v: &Value) -> Option<f64> {
    #[allow(clippy::cast_precision_loss)]
    Some(match v {
        Value::Array(a) => a.len() as f64,
        Value::Object(m) => m.len() as f64,
        Value::String(s) => s.chars().count() as f64,
        _ => return None,
    })
}

/// Whole days from `now` back to the time `text` (`days_since`) or from
/// `now` on to it (`days_until`); `None` when either is unknown.
fn days_between(func: Func, text: &str, now: Option<i64>) -> Option<f64> {
    epoch_seconds(text).zip(now).map(|(t, now)| {
        let seconds = if func == Func::DaysSince { now - t } else { t - now };
        #[allow(clippy::cast_precision_loss)]
        let days = seconds.div_euclid(SECONDS_PER_DAY) as f64;
        days
    })
}

/// The address of a node, as a key for what is known about it.
fn address(node: &Node) -> usize {
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
    pub(crate) fn new(now: Option<i64>) -> Ctx {
        Ctx { now, sorted: RefCell::new(HashMap::new()), counts: RefCell::new(HashMap::new()) }
    }

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

    /// Calls a function with its evaluated arguments: the first two, then
    /// the rest of a variadic call.
    #[inline(never)]
    fn call<'a>(
        &self,
        func: Func,
        count: usize,
        a: Val<'a>,
        b: Val<'a>,
        rest: Vec<Val<'a>>,
    ) -> Result<Val<'a>, EvalError> {
        check_types(func, count, &a, &b, &rest)?;
        let args = rest.into_iter();
        Ok(match func {
            Func::Abs => float_num(a.as_f64().unwrap_or_default().abs())?,
            Func::Avg => {
                let items = a.items();
                let sum: f64 = items.iter().filter_map(Val::as_f64).sum();
                #[allow(clippy::cast_precision_loss)]
                float_num(sum / items.len() as f64)?
            }
            Func::Ceil => float_num(a.as_f64().unwrap_or_default().ceil())?,
            Func::Floor => float_num(a.as_f64().unwrap_or_default().floor())?,
            // Filters call `contains()` on a literal list for every element:
            // the list is walked in place, not copied.
            Func::Contains => match &a {
                Val::Str(s) => Val::Bool(b.as_str().is_some_and(|n| s.contains(n))),
                Val::JArr(items) => Val::Bool(items.iter().any(|x| equal(&Val::from_json(x), &b))),
                _ => Val::Bool(a.items().iter().any(|x| equal(x, &b))),
            },
            Func::StartsWith => Val::Bool(a.as_str().zip(b.as_str()).is_some_and(|(s, p)| s.starts_with(p))),
            Func::EndsWith => Val::Bool(a.as_str().zip(b.as_str()).is_some_and(|(s, p)| s.ends_with(p))),
            Func::Join => {
                let parts: Vec<String> = b.items().iter().filter_map(|x| x.as_str().map(str::to_owned)).collect();
                Val::Str(Cow::Owned(parts.join(a.as_str().unwrap_or_default())))
            }
            Func::Keys => Val::Arr(object_entries(&a).into_iter().map(|(k, _)| Val::Str(k)).collect()),
            Func::Values => Val::Arr(self.object_values(&a).unwrap_or_default()),
            Func::Length => Val::Num(Number::from(match &a {
                Val::Str(s) => s.chars().count(),
                other => other.len(),
            })),
            Func::Map => {
                let Val::Expref(expr) = a else {
                    return Err(type_error(func, 1, "expref", &a));
                };
                Val::Arr(b.items().iter().map(|x| self.eval(expr, x)).collect::<Result<_, _>>()?)
            }
            Func::Max | Func::Min => {
                let items = a.items();
                let mut best: Option<Val<'a>> = None;
                for item in items {
                    best = Some(match best {
                        None => item,
                        Some(current) => {
                            let o = order(&item, &current);
                            let take = if func == Func::Max { o != Ordering::Less } else { o == Ordering::Less };
                            if take { item } else { current }
                        }
                    });
                }
                best.unwrap_or(Val::Null)
            }
            Func::MaxBy | Func::MinBy | Func::SortBy => {
                let Val::Expref(expr) = b else {
                    return Err(type_error(func, 2, "expref", &b));
                };
                self.by_key(func, a.items(), expr)?
            }
            Func::Merge => {
                let mut out = BTreeMap::new();
                for object in std::iter::once(a).chain(std::iter::once(b)).chain(args) {
                    for (k, v) in object_entries(&object) {
                        out.insert(k.into_owned(), v);
                    }
                }
                Val::Obj(out)
            }
            Func::NotNull => {
                std::iter::once(a).chain(std::iter::once(b)).chain(args).find(|v| !v.is_null()).unwrap_or(Val::Null)
            }
            Func::Reverse => match &a {
                Val::Str(s) => Val::Str(Cow::Owned(s.chars().rev().collect())),
                _ => {
                    let mut items = a.items();
                    items.reverse();
                    Val::Arr(items)
                }
            },
            Func::Sort => {
                let mut items = a.items();
                items.sort_by(order);
                Val::Arr(items)
            }
            Func::Sum => {
                let sum: f64 = a.items().iter().filter_map(Val::as_f64).sum();
                float_num(sum)?
            }
            Func::ToArray => {
                if a.is_array() {
                    a
                } else {
                    Val::Arr(vec![a])
                }
            }
            Func::ToNumber => match &a {
                Val::Num(_) => a,
                Val::Str(s) => match serde_json::from_str::<Value>(s) {
                    Ok(Value::Number(n)) => Val::Num(n),
                    _ => Val::Null,
                },
                _ => Val::Null,
            },
            Func::ToString => match a {
                Val::Str(_) => a,
                other => Val::Str(Cow::Owned(other.to_json_with(false).to_string())),
            },
            Func::Type => Val::Str(Cow::Borrowed(a.type_name())),
            Func::DaysSince | Func::DaysUntil | Func::ToEpoch => {
                let t = a.as_str().and_then(epoch_seconds);
                match (func, t, self.now) {
                    (Func::ToEpoch, Some(t), _) => Val::Num(Number::from(t)),
                    (Func::DaysSince, Some(t), Some(now)) => {
                        Val::Num(Number::from((now - t).div_euclid(SECONDS_PER_DAY)))
                    }
                    (Func::DaysUntil, Some(t), Some(now)) => {
                        Val::Num(Number::from((t - now).div_euclid(SECONDS_PER_DAY)))
                    }
                    _ => Val::Null,
                }
            }
            Func::Unique => {
                if a.is_null() {
                    return Ok(Val::Null);
                }
                let mut strings: HashSet<String> = HashSet::new();
                let mut out: Vec<Val<'a>> = Vec::new();
                for item in a.items() {
                    let fresh = match item.as_str() {
                        Some(s) => strings.insert(s.to_owned()),
                        None => !out.iter().any(|o| equal(o, &item)),
                    };
                    if fresh {
                        out.push(item);
                    }
                }
                Val::Arr(out)
            }
            Func::Add | Func::Sub | Func::Mul | Func::Div => match (a.as_f64(), b.as_f64()) {
                (Some(x), Some(y)) => match func {
                    Func::Add => nice_num(x + y),
                    Func::Sub => nice_num(x - y),
                    Func::Mul => nice_num(x * y),
                    _ if y == 0.0 => Val::Null,
                    _ => nice_num(x / y),
                },
                _ => Val::Null,
            },
            Func::Round => match a.as_f64() {
                Some(x) => {
                    let digits = b.as_f64().unwrap_or_default().clamp(0.0, 10.0).trunc();
                    let factor = 10f64.powf(digits);
                    nice_num((x * factor).round() / factor)
                }
                None => Val::Null,
            },
            Func::Split => match (a.as_str(), b.as_str()) {
                (Some(text), Some(sep)) => {
                    let owned = |p: &str| Val::Str(Cow::Owned(p.to_owned()));
                    Val::Arr(if sep == " " {
                        // Graph separates scopes by single spaces but
                        // sometimes pads them; empty pieces carry no scope.
                        text.split_whitespace().map(owned).collect()
                    } else if sep.is_empty() {
                        vec![owned(text)]
                    } else {
                        text.split(sep).map(owned).collect()
                    })
                }
                _ => Val::Null,
            },
        })
    }

    /// `max_by`, `min_by` and `sort_by`: the key expression must give only
    /// numbers or only strings.
    #[inline(never)]
    fn by_key<'a>(&self, func: Func, items: Vec<Val<'a>>, expr: &'a Node) -> Result<Val<'a>, EvalError> {
        if items.is_empty() {
            return Ok(if func == Func::SortBy { Val::Arr(items) } else { Val::Null });
        }
        let mut keyed: Vec<(Val<'a>, Val<'a>)> = Vec::with_capacity(items.len());
        let mut kind: Option<Kind> = None;
        for item in items {
            let key = self.eval(expr, &item)?;
            let t = key.kind();
            match kind {
                None if t == Kind::Number || t == Kind::String => kind = Some(t),
                None => {
                    return Err(EvalError(format!(
                        "{}() needs an expression giving numbers or strings, got {}",
                        func.name(),
                        t.name()
                    )));
                }
                Some(k) if k != t => {
                    return Err(EvalError(format!(
                        "{}() needs an expression giving only {}s, got {}",
                        func.name(),
                        k.name(),
                        t.name()
                    )));
                }
                Some(_) => {}
            }
            keyed.push((item, key));
        }
        Ok(match func {
            Func::SortBy => {
                keyed.sort_by(|a, b| order(&a.1, &b.1));
                Val::Arr(keyed.into_iter().map(|(item, _)| item).collect())
            }
            _ => {
                let mut iter = keyed.into_iter();
                let mut best = iter.next().ok_or_else(|| EvalError("empty".into()))?;
                for candidate in iter {
                    let o = order(&candidate.1, &best.1);
                    let better = if func == Func::MaxBy { o == Ordering::Greater } else { o == Ordering::Less };
                    if better {
                        best = candidate;
                    }
                }
                best.0
            }
        })
    }
}

/// Seconds since the epoch of an RFC 3339 time. Graph's own format
/// (`2026-11-28T12:00:00Z`, with up to seven fractional digits) is read
/// directly, since metrics parse one per user; anything else goes through
/// chrono.
fn epoch_seconds(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let mut n = 0i64;
        for &c in b.get(range)? {
            if !c.is_ascii_digit() {
                return None;
            }
            n = n * 10 + i64::from(c - b'0');
        }
        Some(n)
    };
    let simple = b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b'T' || b[10] == b't')
        && b[13] == b':'
        && b[16] == b':'
        && matches!(b.last(), Some(b'Z' | b'z'))
        && (b.len() == 20 || (b[19] == b'.' && b[20..b.len() - 1].iter().all(u8::is_ascii_digit)));
    if !simple {
        return parse_time(text).map(|t| t.timestamp());
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if !(1..=12).contains(&month) || day < 1 || day > month_days || hour > 23 || minute > 59 || second > 59 {
        return parse_time(text).map(|t| t.timestamp());
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * SECONDS_PER_DAY + hour * 3600 + minute * 60 + second)
}

fn index<'a>(cur: &Val<'a>, i: i32) -> Val<'a> {
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

fn slice<'a>(items: &[Val<'a>], start: Option<i32>, stop: Option<i32>, step: i32) -> Vec<Val<'a>> {
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

static NULL: Value = Value::Null;

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

fn json_truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(_) => true,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

/// [`equal`] on document values.
fn json_equal(a: &Value, b: &Value) -> bool {
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

/// [`compare`] on document values.
fn compare_json(cmp: Cmp, l: &Value, r: &Value) -> Option<bool> {
    match cmp {
        Cmp::Eq => Some(json_equal(l, r)),
        Cmp::Ne => Some(!json_equal(l, r)),
        _ => ordered(cmp, l.as_f64()?, r.as_f64()?),
    }
}

fn ordered(cmp: Cmp, x: f64, y: f64) -> Option<bool> {
    let o = if float_eq(x, y) { Ordering::Equal } else { x.partial_cmp(&y).unwrap_or(Ordering::Less) };
    Some(match cmp {
        Cmp::Lt => o == Ordering::Less,
        Cmp::Le => o != Ordering::Greater,
        Cmp::Gt => o == Ordering::Greater,
        _ => o != Ordering::Less,
    })
}

fn compare(cmp: Cmp, l: &Val<'_>, r: &Val<'_>) -> Option<bool> {
    match cmp {
        Cmp::Eq => Some(equal(l, r)),
        Cmp::Ne => Some(!equal(l, r)),
        _ => ordered(cmp, l.as_f64()?, r.as_f64()?),
    }
}

fn type_error(func: Func, position: usize, expected: &str, got: &Val<'_>) -> EvalError {
    EvalError(format!("argument {position} of {}() must be {expected}, got {}", func.name(), got.type_name()))
}

/// Argument type checks, mirroring the signatures of the `jmespath` crate
/// and of the extra functions.
fn check_types(func: Func, count: usize, a: &Val<'_>, b: &Val<'_>, rest: &[Val<'_>]) -> Result<(), EvalError> {
    let arg = |i: usize| match i {
        0 => a,
        1 => b,
        _ => rest.get(i - 2).unwrap_or(&Val::Null),
    };
    let all = |v: &Val<'_>, t: Kind| v.items().iter().all(|x| x.kind() == t);
    let need = |i: usize, ok: bool, expected: &str| -> Result<(), EvalError> {
        if ok { Ok(()) } else { Err(type_error(func, i + 1, expected, arg(i))) }
    };
    let t = |i: usize| arg(i).kind();
    match func {
        Func::Abs | Func::Ceil | Func::Floor => need(0, t(0) == Kind::Number, "a number"),
        Func::Avg | Func::Sum => need(0, arg(0).is_array() && all(arg(0), Kind::Number), "an array of numbers"),
        Func::Contains => need(0, t(0) == Kind::String || t(0) == Kind::Array, "a string or an array"),
        Func::EndsWith | Func::StartsWith => {
            need(0, t(0) == Kind::String, "a string")?;
            need(1, t(1) == Kind::String, "a string")
        }
        Func::Join => {
            need(0, t(0) == Kind::String, "a string")?;
            need(1, arg(1).is_array() && all(arg(1), Kind::String), "an array of strings")
        }
        Func::Keys | Func::Values => need(0, arg(0).is_object(), "an object"),
        Func::Length => {
            need(0, matches!(t(0), Kind::Array | Kind::Object | Kind::String), "an array, an object or a string")
        }
        Func::Map => {
            need(0, t(0) == Kind::Expref, "an expression")?;
            need(1, arg(1).is_array(), "an array")
        }
        Func::Max | Func::Min | Func::Sort => need(
            0,
            arg(0).is_array() && (all(arg(0), Kind::Number) || all(arg(0), Kind::String)),
            "an array of numbers or of strings",
        ),
        Func::MaxBy | Func::MinBy | Func::SortBy => {
            need(0, arg(0).is_array(), "an array")?;
            need(1, t(1) == Kind::Expref, "an expression")
        }
        Func::Merge => {
            for i in 0..count {
                need(i, arg(i).is_object(), "an object")?;
            }
            Ok(())
        }
        Func::Reverse => need(0, t(0) == Kind::Array || t(0) == Kind::String, "an array or a string"),
        Func::ToString => need(0, t(0) != Kind::Expref, "a value"),
        Func::NotNull | Func::ToArray | Func::ToNumber | Func::Type => Ok(()),
        Func::DaysSince | Func::DaysUntil | Func::ToEpoch => {
            need(0, matches!(t(0), Kind::String | Kind::Null), "a string or null")
        }
        Func::Unique => need(0, matches!(t(0), Kind::Array | Kind::Null), "an array or null"),
        Func::Add | Func::Sub | Func::Mul | Func::Div => {
            need(0, matches!(t(0), Kind::Number | Kind::Null), "a number or null")?;
            need(1, matches!(t(1), Kind::Number | Kind::Null), "a number or null")
        }
        Func::Round => {
            need(0, matches!(t(0), Kind::Number | Kind::Null), "a number or null")?;
            need(1, t(1) == Kind::Number, "a number")
        }
        Func::Split => {
            need(0, matches!(t(0), Kind::String | Kind::Null), "a string or null")?;
            need(1, t(1) == Kind::String, "a string")
        }
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
    fn fast_time_parsing_agrees_with_chrono() {
        for text in [
            "1970-01-01T00:00:00Z",
            "2026-11-28T12:00:00Z",
            "2024-02-29T23:59:59.1234567Z",
            "2000-03-01T00:00:00Z",
            "1999-12-31T23:59:59z",
            "2026-11-28T12:00:00+02:00",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-11-28T12:00:60Z",
            "2026-11-28 12:00:00Z",
            "garbage",
        ] {
            assert_eq!(epoch_seconds(text), parse_time(text).map(|t| t.timestamp()), "{text}");
        }
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
    fn unknown_functions_and_arity_fail_at_compile_time() {
        let parse = |e: &str| compile(&jmespath::parse(e).unwrap());
        assert!(parse("nope(@)").is_err());
        assert!(parse("length(@, @)").is_err());
        assert!(parse("merge()").is_err());
        assert!(parse("merge(@, @, @)").is_ok());
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
