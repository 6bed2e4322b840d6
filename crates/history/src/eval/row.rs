//! Filters compiled for counting over a collection, with each element's
//! fields looked up once.
//!
//! [`Ctx::prepare`](super::Ctx::prepare) counts, in one pass over a
//! collection, the elements every metric's filter keeps. Evaluated as
//! expressions, a dozen filters over a user look its fields up a dozen
//! times, each lookup walking the user's map and comparing key bytes. A
//! [`Pred`] instead names the top-level fields it reads by slot; the pass
//! resolves the slots of an element once (one walk over its entries, one key
//! comparison per field) and every filter then reads them directly.
//!
//! A [`Pred`] is `&&`, `||` and `!` over atoms: comparisons, truthiness
//! and `contains()` of fields, paths, literals, `||` and `&&` of those,
//! `length()`, `days_since()` and `days_until()`; the forms
//! [`Ctx::test`](super::Ctx::test) decides without evaluating, with the same
//! answers. Filters share atoms, and each atom is decided once for a whole
//! batch of elements ([`Fields::decide`]), into bits that predicates
//! combine. Whatever an atom cannot decide (an error to report, equality of
//! values that are not numbers) leaves the element undecided, and the
//! caller evaluates the filter on it normally; a filter with any other form
//! is not compiled at all.

use serde_json::Value;

use super::compile::{Cmp, Node};
use super::counting::prefetch;
use super::functions::{Func, days_between, length_of};
use super::values::{Hint, NULL, compare_json, float_eq, get_hinted, json_equal, json_truthy, ordered};

/// A value read from the element without evaluation, like
/// [`peek`](super::peek).
#[derive(Debug)]
pub(super) enum Operand<'n> {
    /// A top-level field of the element, by slot.
    Slot(usize),
    /// A field of an object the left side reads (`a.b`).
    Sub(Box<Operand<'n>>, &'n str, &'n Hint),
    Literal(&'n Value),
    Or(Box<Operand<'n>>, Box<Operand<'n>>),
    And(Box<Operand<'n>>, Box<Operand<'n>>),
}

/// A side of a comparison.
#[derive(Debug)]
pub(super) enum Side<'n> {
    /// A literal's number (`None` when it is not a number), worked out once.
    Constant(Option<f64>),
    Value(Operand<'n>),
    Length(Operand<'n>),
    /// `days_since()` or `days_until()`.
    Days(Func, Operand<'n>),
}

/// A test of one element that a predicate combines: filters often share
/// them (`accountEnabled == `true``), and each is decided once per element.
#[derive(Debug)]
enum Atom<'n> {
    /// `field == literal`, or `!=` when `negate`: the most common test,
    /// decided without the general comparison.
    FieldEquals {
        slot: usize,
        literal: &'n Value,
        negate: bool,
    },
    Compare(Cmp, Side<'n>, Side<'n>),
    /// `contains(list or string, value)`.
    Contains(Operand<'n>, Operand<'n>),
    Truthy(Operand<'n>),
}

/// A filter's predicate, over the atoms of its collection's [`Fields`].
#[derive(Debug)]
pub(super) enum Pred {
    And(Box<Pred>, Box<Pred>),
    Or(Box<Pred>, Box<Pred>),
    Not(Box<Pred>),
    Atom(usize),
}

/// What the predicates of one collection read: the top-level fields, in
/// slot order, with where each was found in the last element, and the atoms
/// the predicates combine.
#[derive(Debug, Default)]
pub(super) struct Fields<'n> {
    names: Vec<&'n str>,
    positions: Vec<usize>,
    /// The atoms of the collection's predicates, with the nodes they were
    /// compiled from, so that equal nodes share one atom.
    atoms: Vec<(&'n Node, Atom<'n>)>,
}

impl<'n> Fields<'n> {
    fn slot(&mut self, name: &'n str) -> usize {
        if let Some(i) = self.names.iter().position(|n| *n == name) {
            return i;
        }
        self.names.push(name);
        self.positions.push(0);
        self.names.len() - 1
    }

    fn atom(&mut self, node: &'n Node) -> Option<usize> {
        if let Some(i) = self.atoms.iter().position(|(n, _)| *n == node) {
            return Some(i);
        }
        let atom = match node {
            Node::Comparison(cmp @ (Cmp::Eq | Cmp::Ne), l, r) => match (&**l, &**r) {
                (Node::Field(name, _), Node::Literal(literal)) | (Node::Literal(literal), Node::Field(name, _)) => {
                    Atom::FieldEquals { slot: self.slot(name), literal, negate: *cmp == Cmp::Ne }
                }
                _ => compare(*cmp, side(l, self)?, side(r, self)?),
            },
            Node::Comparison(cmp, l, r) => compare(*cmp, side(l, self)?, side(r, self)?),
            Node::Function(Func::Contains, args) => match args.as_slice() {
                [list, item] => Atom::Contains(operand(list, self)?, operand(item, self)?),
                _ => return None,
            },
            other => Atom::Truthy(operand(other, self)?),
        };
        self.atoms.push((node, atom));
        Some(self.atoms.len() - 1)
    }

    /// The number of slots each element has.
    pub(super) fn len(&self) -> usize {
        self.names.len()
    }

    /// Collects where the entries of a batch of elements are (one walk over
    /// each element's map, which reads only the map's length) and asks for
    /// the memory of the keys and values at the fields' positions.
    ///
    /// The elements' memory is scattered, and reading an element is a chain
    /// of loads that each wait on memory: its map, the keys and values in
    /// it, then the key bytes and strings they point to.
    /// [`Ctx::prepare`](super::Ctx::prepare) keeps several batches in
    /// flight, each a step further along that chain ([`touch`], `gather`, [`Fields::fetch`],
    /// [`Fields::resolve`]), so that the waits overlap the work instead of
    /// adding up.
    pub(super) fn gather<'a>(&self, elements: &[&'a Value], into: &mut Gathered<'a>) {
        into.entries.clear();
        into.starts.clear();
        for element in elements {
            into.starts.push(into.entries.len());
            if let Value::Object(m) = element {
                into.entries.extend(m.iter());
            }
        }
        into.starts.push(into.entries.len());
        for window in into.starts.windows(2) {
            let Some(row) = into.entries.get(window[0]..window[1]) else {
                continue;
            };
            for position in &self.positions {
                if let Some((k, v)) = row.get(*position) {
                    prefetch(std::ptr::from_ref(*k));
                    prefetch(std::ptr::from_ref(*v));
                }
            }
        }
    }

    /// Asks for the key bytes and strings at the fields' positions in
    /// gathered elements, and for the entries of nested objects there.
    pub(super) fn fetch(&self, gathered: &Gathered<'_>) {
        for window in gathered.starts.windows(2) {
            let Some(row) = gathered.entries.get(window[0]..window[1]) else {
                continue;
            };
            for position in &self.positions {
                if let Some((k, v)) = row.get(*position) {
                    prefetch(k.as_ptr());
                    match v {
                        Value::String(s) => prefetch(s.as_ptr()),
                        Value::Object(inner) => {
                            for (k2, v2) in inner.iter() {
                                prefetch(k2.as_ptr());
                                if let Value::String(s) = v2 {
                                    prefetch(s.as_ptr());
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    /// Fills `slots` with every gathered element's value of every field
    /// (null when absent, and for elements that are not objects), `len()`
    /// slots per element.
    pub(super) fn resolve<'a>(&mut self, gathered: &Gathered<'a>, slots: &mut Vec<&'a Value>) {
        slots.clear();
        for window in gathered.starts.windows(2) {
            let row = gathered.entries.get(window[0]..window[1]).unwrap_or_default();
            for (name, position) in self.names.iter().zip(self.positions.iter_mut()) {
                // The elements of a collection have the same fields in the
                // same order, so the field is almost always where it was in
                // the element before.
                let value = match row.get(*position) {
                    Some((k, v)) if same_key(k, name) => v,
                    _ => match row.iter().position(|(k, _)| same_key(k, name)) {
                        Some(p) => {
                            *position = p;
                            row[p].1
                        }
                        None => &NULL,
                    },
                };
                slots.push(value);
            }
        }
    }
}

/// The entries of a batch of elements, from [`Fields::gather`].
#[derive(Debug, Default)]
pub(super) struct Gathered<'a> {
    entries: Vec<(&'a String, &'a Value)>,
    /// Where each element's entries start in `entries`, and where the last
    /// one ends.
    starts: Vec<usize>,
}

/// Reads the first entry of each element's map, the first load of the chain
/// [`Fields::gather`] follows, so that it is in the cache by then. The loop
/// is kept to that one load per element, so that the processor has many of
/// them in flight at once.
pub(super) fn touch(elements: &[&Value]) {
    for element in elements {
        if let Value::Object(m) = element
            && let Some((k, v)) = m.iter().next()
        {
            prefetch(std::ptr::from_ref(k));
            prefetch(std::ptr::from_ref(v));
        }
    }
}

/// Compiles a filter's predicate, or `None` when it has a form that must be
/// evaluated.
pub(super) fn compile<'n>(node: &'n Node, fields: &mut Fields<'n>) -> Option<Pred> {
    Some(match node {
        Node::And(x, y) => Pred::And(Box::new(compile(x, fields)?), Box::new(compile(y, fields)?)),
        Node::Or(x, y) => Pred::Or(Box::new(compile(x, fields)?), Box::new(compile(y, fields)?)),
        Node::Not(x) => Pred::Not(Box::new(compile(x, fields)?)),
        other => Pred::Atom(fields.atom(other)?),
    })
}

/// A comparison atom. When one side is a number worked out from a field
/// (`length()`, `days_since()`), the comparison is one of numbers, and a
/// literal on the other side is turned into its number once.
fn compare<'n>(cmp: Cmp, l: Side<'n>, r: Side<'n>) -> Atom<'n> {
    let numeric = |s: &Side<'_>| matches!(s, Side::Length(_) | Side::Days(..));
    let constant = |s: Side<'n>| match s {
        Side::Value(Operand::Literal(v)) => Side::Constant(v.as_f64()),
        other => other,
    };
    if numeric(&l) || numeric(&r) { Atom::Compare(cmp, constant(l), constant(r)) } else { Atom::Compare(cmp, l, r) }
}

fn side<'n>(node: &'n Node, fields: &mut Fields<'n>) -> Option<Side<'n>> {
    Some(match node {
        Node::Function(Func::Length, args) => Side::Length(operand(single(args)?, fields)?),
        Node::Function(func @ (Func::DaysSince | Func::DaysUntil), args) => {
            Side::Days(*func, operand(single(args)?, fields)?)
        }
        other => Side::Value(operand(other, fields)?),
    })
}

fn single(args: &[Node]) -> Option<&Node> {
    match args {
        [only] => Some(only),
        _ => None,
    }
}

fn operand<'n>(node: &'n Node, fields: &mut Fields<'n>) -> Option<Operand<'n>> {
    let b = |o: Operand<'n>| Box::new(o);
    Some(match node {
        Node::Field(name, _) => Operand::Slot(fields.slot(name)),
        Node::Literal(v) => Operand::Literal(v),
        Node::Subexpr(lhs, rhs) => match &**rhs {
            Node::Field(name, hint) => Operand::Sub(b(operand(lhs, fields)?), name, hint),
            _ => return None,
        },
        Node::Or(x, y) => Operand::Or(b(operand(x, fields)?), b(operand(y, fields)?)),
        Node::And(x, y) => Operand::And(b(operand(x, fields)?), b(operand(y, fields)?)),
        _ => return None,
    })
}

impl Operand<'_> {
    /// The value, with fields and literals, the commonest operands, read
    /// inline.
    #[inline]
    fn read<'a>(&'a self, slots: &[&'a Value]) -> &'a Value {
        match self {
            Operand::Slot(i) => slots.get(*i).copied().unwrap_or(&NULL),
            Operand::Literal(v) => v,
            other => other.read_nested(slots),
        }
    }

    fn read_nested<'a>(&'a self, slots: &[&'a Value]) -> &'a Value {
        match self {
            Operand::Slot(i) => slots.get(*i).copied().unwrap_or(&NULL),
            Operand::Literal(v) => v,
            Operand::Sub(lhs, name, hint) => match lhs.read(slots) {
                Value::Object(m) => get_hinted(m, name, hint).unwrap_or(&NULL),
                _ => &NULL,
            },
            Operand::Or(x, y) => {
                let v = x.read(slots);
                if json_truthy(v) { v } else { y.read(slots) }
            }
            Operand::And(x, y) => {
                let v = x.read(slots);
                if json_truthy(v) { y.read(slots) } else { v }
            }
        }
    }
}

impl Side<'_> {
    /// As [`Ctx::fast_number`](super::Ctx::fast_number): `Some(Some(n))` for
    /// a number, `Some(None)` for a value that is not one, `None` when the
    /// side must be evaluated (an error to report).
    fn number(&self, slots: &[&Value], now: Option<i64>) -> Option<Option<f64>> {
        match self {
            Side::Constant(n) => Some(*n),
            Side::Value(o) => Some(o.read(slots).as_f64()),
            Side::Length(o) => length_of(o.read(slots)).map(Some),
            Side::Days(func, o) => match o.read(slots) {
                Value::String(s) => Some(days_between(*func, s, now)),
                Value::Null => Some(None),
                _ => None,
            },
        }
    }
}

impl Atom<'_> {
    #[inline]
    fn test(&self, slots: &[&Value], now: Option<i64>) -> Option<bool> {
        match self {
            Atom::FieldEquals { slot, literal, negate } => {
                Some(field_equals(slots.get(*slot).copied().unwrap_or(&NULL), literal) != *negate)
            }
            Atom::Truthy(o) => Some(json_truthy(o.read(slots))),
            Atom::Contains(list, item) => {
                let item = item.read(slots);
                match list.read(slots) {
                    Value::Array(items) => Some(items.iter().any(|x| json_equal(x, item))),
                    Value::String(s) => Some(matches!(item, Value::String(n) if s.contains(n.as_str()))),
                    // Anything else is a type error, which the evaluator
                    // reports.
                    _ => None,
                }
            }
            Atom::Compare(cmp, Side::Value(l), Side::Value(r)) => {
                Some(compare_json(*cmp, l.read(slots), r.read(slots)) == Some(true))
            }
            Atom::Compare(cmp, l, r) => match (l.number(slots, now)?, r.number(slots, now)?) {
                (Some(x), Some(y)) => Some(match cmp {
                    Cmp::Eq => float_eq(x, y),
                    Cmp::Ne => !float_eq(x, y),
                    _ => ordered(*cmp, x, y) == Some(true),
                }),
                // Ordering needs two numbers; equality of other values is
                // left to the evaluator.
                _ if !matches!(cmp, Cmp::Eq | Cmp::Ne) => Some(false),
                _ => None,
            },
        }
    }
}

/// What a test gave for each element of a batch: bit `j` is element `j`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bits {
    /// The elements that pass.
    yes: u64,
    /// The elements the test could not decide, which must be evaluated.
    unknown: u64,
}

impl Bits {
    /// The most elements a batch can have.
    pub(super) const CAPACITY: usize = 64;

    /// Every element of a batch of `n` passes.
    pub(super) fn all(n: usize) -> Bits {
        let yes = if n >= Self::CAPACITY { u64::MAX } else { (1u64 << n) - 1 };
        Bits { yes, unknown: 0 }
    }

    /// The same elements, none decided.
    pub(super) fn undecided(self) -> Bits {
        Bits { yes: 0, unknown: self.yes }
    }

    /// How many elements are known to pass.
    pub(super) fn kept(self) -> usize {
        (self.yes & !self.unknown).count_ones() as usize
    }

    /// The elements that must be evaluated, in order.
    pub(super) fn undecided_positions(self) -> impl Iterator<Item = usize> {
        let mut rest = self.unknown;
        std::iter::from_fn(move || {
            if rest == 0 {
                return None;
            }
            let j = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            Some(j)
        })
    }
}

impl Fields<'_> {
    /// Decides every atom for every element of a batch whose slots
    /// [`Fields::resolve`] filled. Elements that are not objects are left
    /// undecided: filters over them are evaluated.
    ///
    /// Each atom is decided for the whole batch in one loop, so that the
    /// processor runs the same few instructions over and over instead of
    /// walking every predicate for each element.
    pub(super) fn decide(&self, batch: &[&Value], slots: &[&Value], now: Option<i64>, out: &mut Vec<Bits>) {
        let width = self.names.len();
        let mut objects = 0u64;
        for (j, element) in batch.iter().enumerate().take(Bits::CAPACITY) {
            if element.is_object() {
                objects |= 1 << j;
            }
        }
        out.clear();
        let n = batch.len().min(Bits::CAPACITY);
        let field = |j: usize, slot: usize| slots.get(j * width + slot).copied().unwrap_or(&NULL);
        for (_, atom) in &self.atoms {
            // Elements that are not objects have null in every slot: what
            // the atom says of them is ignored, so no element is skipped
            // and the loops stay simple.
            let mut bits = Bits { yes: 0, unknown: !objects & Bits::all(n).yes };
            // The commonest atoms get loops of their own.
            match atom {
                Atom::FieldEquals { slot, literal, negate } => {
                    for j in 0..n {
                        if field_equals(field(j, *slot), literal) != *negate {
                            bits.yes |= 1 << j;
                        }
                    }
                }
                Atom::Truthy(Operand::Slot(slot)) => {
                    for j in 0..n {
                        if json_truthy(field(j, *slot)) {
                            bits.yes |= 1 << j;
                        }
                    }
                }
                _ => {
                    for j in 0..n {
                        let row = slots.get(j * width..(j + 1) * width).unwrap_or_default();
                        match atom.test(row, now) {
                            Some(true) => bits.yes |= 1 << j,
                            Some(false) => {}
                            None => bits.unknown |= 1 << j,
                        }
                    }
                }
            }
            out.push(bits);
        }
    }
}

/// Whether a field's value equals a literal, as `==` says.
#[inline]
fn field_equals(value: &Value, literal: &Value) -> bool {
    match (value, literal) {
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::String(x), Value::String(y)) => x == y,
        _ => json_equal(value, literal),
    }
}

/// Whether a key is the field's name. Field names are short: comparing
/// them as two overlapping words is quicker than a call to `memcmp`.
#[inline]
fn same_key(key: &str, name: &str) -> bool {
    let (a, b) = (key.as_bytes(), name.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    if (8..=16).contains(&a.len()) {
        let head = |s: &[u8]| s.first_chunk::<8>().map(|c| u64::from_ne_bytes(*c));
        let tail = |s: &[u8]| s.last_chunk::<8>().map(|c| u64::from_ne_bytes(*c));
        return head(a) == head(b) && tail(a) == tail(b);
    }
    a == b
}

impl Pred {
    /// Which elements of a batch pass, from what [`Fields::decide`] gave for
    /// each atom. An element any of the predicate's atoms left undecided is
    /// undecided: evaluating it decides it exactly, short circuits and all.
    pub(super) fn bits(&self, atoms: &[Bits], all: Bits) -> Bits {
        match self {
            Pred::And(x, y) => {
                let (x, y) = (x.bits(atoms, all), y.bits(atoms, all));
                Bits { yes: x.yes & y.yes, unknown: x.unknown | y.unknown }
            }
            Pred::Or(x, y) => {
                let (x, y) = (x.bits(atoms, all), y.bits(atoms, all));
                Bits { yes: x.yes | y.yes, unknown: x.unknown | y.unknown }
            }
            Pred::Not(x) => {
                let x = x.bits(atoms, all);
                Bits { yes: all.yes & !x.yes, unknown: x.unknown }
            }
            Pred::Atom(i) => atoms.get(*i).copied().unwrap_or(all.undecided()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::same_key;

    #[test]
    fn keys_compare_equal_only_when_every_byte_is_equal() {
        for len in 0..24 {
            let name: String = (0..len).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            assert!(same_key(&name, &name.clone()), "{name}");
            assert!(!same_key(&name, &format!("{name}x")), "{name}");
            for at in 0..len {
                let mut other = name.clone().into_bytes();
                other[at] = b'Z';
                let other = String::from_utf8(other).unwrap_or_default();
                assert!(!same_key(&name, &other), "{name} / {other}");
            }
        }
    }
}
