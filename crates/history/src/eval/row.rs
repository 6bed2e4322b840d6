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
//! A [`Pred`] covers the forms [`Ctx::test`](super::Ctx::test) decides
//! without evaluating (fields, paths, literals, `||` and `&&` of those,
//! comparisons, `length()`, `days_since()`, `days_until()`, `!`) and gives
//! the same answers. Whatever it cannot decide (an error to report, a
//! comparison of values that are not numbers, anything else) it hands back
//! as `None`, and the caller evaluates the filter normally.

use serde_json::Value;

use super::{Cmp, Func, Hint, NULL, Node, compare_json, float_eq, get_hinted, json_equal, json_truthy, ordered};

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

/// The top-level fields the predicates of one collection read, in slot
/// order, with where each was found in the last element.
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
                _ => Atom::Compare(*cmp, side(l, self)?, side(r, self)?),
            },
            Node::Comparison(cmp, l, r) => Atom::Compare(*cmp, side(l, self)?, side(r, self)?),
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

    /// Reads where the entries of a batch of elements are and asks for the
    /// memory of the keys and values the fields are likely at, so that it is
    /// in the cache by the time [`Fields::resolve`] reads it.
    ///
    /// The elements' memory is scattered, and what is read of each (its
    /// map, then the keys and strings the map points to) is a chain of loads
    /// that each wait on memory. Gathering a batch while the one before is
    /// being resolved and tested lets those waits overlap the work instead of
    /// adding up.
    pub(super) fn gather<'a>(&self, elements: &[&'a Value], into: &mut Gathered<'a>) {
        into.entries.clear();
        into.starts.clear();
        for element in elements {
            if let Value::Object(m) = element {
                for position in &self.positions {
                    if let Some((k, v)) = m.iter().nth(*position) {
                        super::prefetch(std::ptr::from_ref(k));
                        super::prefetch(std::ptr::from_ref(v));
                    }
                }
            }
        }
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
                    super::prefetch(k.as_ptr());
                    match v {
                        Value::String(s) => super::prefetch(s.as_ptr()),
                        Value::Object(inner) => {
                            for (k2, v2) in inner {
                                super::prefetch(k2.as_ptr());
                                if let Value::String(s) = v2 {
                                    super::prefetch(s.as_ptr());
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
                    Some((k, v)) if k.as_str() == *name => v,
                    _ => match row.iter().position(|(k, _)| k.as_str() == *name) {
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
            super::prefetch(std::ptr::from_ref(k));
            super::prefetch(std::ptr::from_ref(v));
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
    fn read<'a>(&'a self, slots: &[&'a Value]) -> &'a Value {
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
            Side::Value(o) => Some(o.read(slots).as_f64()),
            Side::Length(o) => super::length_of(o.read(slots)).map(Some),
            Side::Days(func, o) => match o.read(slots) {
                Value::String(s) => Some(super::days_between(*func, s, now)),
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
                let value = slots.get(*slot).copied().unwrap_or(&NULL);
                let equal = match (value, literal) {
                    (Value::Bool(x), Value::Bool(y)) => x == y,
                    (Value::String(x), Value::String(y)) => x == y,
                    _ => json_equal(value, literal),
                };
                Some(equal != *negate)
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
        (0..Self::CAPACITY).filter(move |j| self.unknown >> j & 1 == 1)
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
        for (_, atom) in &self.atoms {
            let mut bits = Bits { yes: 0, unknown: !objects & Bits::all(batch.len()).yes };
            for j in 0..batch.len().min(Bits::CAPACITY) {
                if objects >> j & 1 == 0 {
                    continue;
                }
                let row = slots.get(j * width..(j + 1) * width).unwrap_or_default();
                match atom.test(row, now) {
                    Some(true) => bits.yes |= 1 << j,
                    Some(false) => {}
                    None => bits.unknown |= 1 << j,
                }
            }
            out.push(bits);
        }
    }
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
