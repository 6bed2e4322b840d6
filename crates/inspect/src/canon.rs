//! A collection's stored bytes written straight from Graph's answers, without building trees.
//!
//! The store keeps each collection as the bytes `serde_json` writes for it as a
//! [`serde_json::Value`]: items keyed by id in id order, every object's keys in order, no
//! whitespace, strings and numbers as `serde_json` writes them (docs/dataprint.md). Parsing a large
//! collection into a tree of values only to write it out again and free it was most of a first
//! run's CPU (docs/performance.md, "Inspection"). A collection that nothing in the run reads as a
//! tree is therefore written here from the bytes of Graph's pages, item by item: each object is
//! read as its members' raw JSON (borrowed, no tree), its members sorted, and each member written
//! the same way, down to strings and numbers, which are copied when `serde_json` would write them
//! as they came and otherwise written by `serde_json` itself. The result is byte for byte what
//! `serde_json::to_vec(&dataprint::keyed(items))` gives, so a collection's hash does not depend on
//! which way it was made; a property test holds the two against each other.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use history::Need;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// How deep objects and arrays may nest: `serde_json` refuses deeper documents when it builds
/// trees, and so does this, rather than recursing without bound on a hostile answer.
const MAX_DEPTH: usize = 128;

/// One collection being written: its items' canonical bytes one after another, with their ids, and
/// optionally a projection of them.
#[derive(Debug, Default)]
pub struct Keyed {
    buf: Vec<u8>,
    /// Each item's id (or `#n` for the n-th item, which has none) and where its bytes lie in `buf`.
    entries: Vec<(String, usize, usize)>,
    /// What the projection keeps of each element's members, when one is made ([`Keyed::projecting`]).
    needs: Option<BTreeMap<String, Need>>,
    /// Each entry's projection, when one is made.
    projected: Vec<Value>,
    /// Room the writing of one item needs, kept from item to item.
    space: Space,
}

/// A collection's bytes, how many items it holds, and its projection when one was asked for.
pub type Written = (Vec<u8>, usize, Option<Value>);

impl Keyed {
    pub fn new() -> Keyed {
        Keyed::default()
    }

    /// A collection that is also read back as a tree whose elements that are objects keep only the
    /// members named in `needs`, each as its [`Need`] makes it ([`history::project_elements`]):
    /// what the built-in metrics need of it ([`history::Metric::element_needs`]), made while the
    /// items are written rather than by reading them again.
    pub fn projecting(needs: BTreeMap<String, Need>) -> Keyed {
        Keyed { needs: Some(needs), ..Keyed::default() }
    }

    /// Adds one item, given as its JSON text: an object loses the annotations
    /// [`crate::dataprint::canonical`] drops, and is keyed by its `id` when that is a string.
    pub fn push(&mut self, item: &str) -> Result<(), serde_json::Error> {
        self.push_round_or_not(item, None, false)
    }

    /// Adds one item of a delta round read in full: an item Graph marks removed (`@removed`) is left
    /// out, as a round built as trees leaves it; with a `join`, an object's member it names is
    /// replaced by the value it holds for the item's key, or removed when it holds none, as
    /// `child`'s join of sign-in activity does to users built as trees.
    pub fn push_round(&mut self, item: &str, join: Option<&Join<'_>>) -> Result<(), serde_json::Error> {
        self.push_round_or_not(item, join, true)
    }

    fn push_round_or_not(&mut self, item: &str, join: Option<&Join<'_>>, round: bool) -> Result<(), serde_json::Error> {
        let start = self.buf.len();
        let written = self.write_item(item, join, round);
        if written.is_err() {
            // A refused item leaves nothing behind, so the collection stays what it was.
            self.buf.truncate(start);
        }
        self.space.members.clear();
        written
    }

    fn write_item(&mut self, item: &str, join: Option<&Join<'_>>, round: bool) -> Result<(), serde_json::Error> {
        let start = self.buf.len();
        // `push_round_or_not` leaves the list of members empty after every item.
        let mut scan = Scan { src: item, pos: 0, out: &mut self.buf, space: &mut self.space };
        scan.ws();
        if scan.peek() != Some(b'{') {
            scan.value(0)?;
            scan.end()?;
            if self.needs.is_some() {
                self.projected.push(serde_json::from_slice(&self.buf[start..])?);
            }
            self.entries.push((format!("#{}", self.entries.len()), start, self.buf.len()));
            return Ok(());
        }
        let mut sorted = scan.members(0)?;
        scan.end()?;
        let src = scan.src;
        if round && scan.space.members.iter().any(|m| m.key.text(src) == "@removed") {
            scan.out.truncate(start);
            return Ok(());
        }
        let key = match scan.space.members.iter().rev().find(|m| m.key.text(src) == "id") {
            Some(m) if scan.out[m.value] == b'"' => {
                let id = std::str::from_utf8(&scan.out[m.value..m.end]).map_err(de::Error::custom)?;
                string_of(id)?.into_owned()
            }
            _ => format!("#{}", self.entries.len()),
        };
        if let Some(join) = join {
            // The item's own member goes; the one joined to it is written after the others and put
            // in its place by the sort below.
            scan.space.members.retain(|m| m.key.text(src) != join.member);
            sorted = false;
            if let Some(value) = join.values.get(key.as_str()) {
                let at = scan.out.len();
                write_str(join.member, scan.out);
                scan.out.push(b':');
                let value_at = scan.out.len();
                let mut joined = Scan { src: value.get(), pos: 0, out: &mut *scan.out, space: &mut *scan.space };
                joined.ws();
                if joined.peek() == Some(b'{') {
                    let base = joined.space.members.len();
                    let object_at = joined.out.len();
                    let sorted = joined.members(1)?;
                    joined.close(base, object_at, sorted, crate::dataprint::DROPPED);
                    joined.space.members.truncate(base);
                } else {
                    joined.value(1)?;
                }
                joined.end()?;
                let end = scan.out.len();
                scan.space.members.push(Member { key: KeyText::Static(join.member), start: at, value: value_at, end });
            }
        }
        scan.close(0, start, sorted, crate::dataprint::DROPPED);
        if let Some(needs) = &self.needs {
            let mut kept = Map::new();
            for m in &self.space.members {
                let name = m.key.text(src);
                if let Some(need) = needs.get(name) {
                    kept.insert(name.to_string(), project(&self.buf[m.value..m.end], need)?);
                }
            }
            self.projected.push(Value::Object(kept));
        }
        self.entries.push((key, start, self.buf.len()));
        Ok(())
    }

    /// Makes room for about `bytes` more of items, as Graph sent them, so that a large collection's
    /// buffer is not copied as it grows.
    pub fn reserve(&mut self, bytes: usize) {
        self.buf.reserve(bytes);
    }

    /// Items added so far, repeated ids counted each time.
    pub fn pushed(&self) -> usize {
        self.entries.len()
    }

    /// The collection's bytes, an object of the items by id in id order (of items with the same
    /// id, the last), how many items it holds, and its projection when one was asked for.
    pub fn finish(self) -> Written {
        let Keyed { buf, entries, needs, projected, .. } = self;
        let mut order: Vec<usize> = (0..entries.len()).collect();
        // A stable sort keeps items with the same id in the order they came, so the last is last.
        order.sort_by(|a, b| entries[*a].0.cmp(&entries[*b].0));
        let mut out = Vec::with_capacity(buf.len() + entries.len() * 40 + 2);
        let mut projection = needs.as_ref().map(|_| Map::new());
        let mut projected: Vec<Option<Value>> = projected.into_iter().map(Some).collect();
        out.push(b'{');
        let mut items = 0;
        for (i, n) in order.iter().enumerate() {
            let (id, start, end) = &entries[*n];
            if order.get(i + 1).is_some_and(|next| entries[*next].0 == *id) {
                continue;
            }
            if items > 0 {
                out.push(b',');
            }
            write_str(id, &mut out);
            out.push(b':');
            out.extend_from_slice(&buf[*start..*end]);
            if let (Some(p), Some(v)) = (projection.as_mut(), projected.get_mut(*n).and_then(Option::take)) {
                p.insert(id.clone(), v);
            }
            items += 1;
        }
        out.push(b'}');
        (out, items, projection.map(Value::Object))
    }
}

/// What `need` keeps of a value, given as its canonical bytes: [`Need::apply`] on its tree, built
/// only as far as the need reads (an array whose elements are not read is counted, not built).
fn project(json: &[u8], need: &Need) -> Result<Value, serde_json::Error> {
    match (need, json.first()) {
        (Need::Truth | Need::Shape, Some(b'[')) => {
            let items = serde_json::from_slice::<Vec<de::IgnoredAny>>(json)?;
            Ok(Value::Array(vec![Value::Null; items.len()]))
        }
        (Need::Members { members: needed, truth }, Some(b'{')) => {
            let text = std::str::from_utf8(json).map_err(de::Error::custom)?;
            // Canonical bytes hold each key once, in order.
            let members = serde_json::from_str::<Members<'_>>(text)?.0;
            let mut kept = Map::new();
            for (name, value) in &members {
                if let Some(need) = needed.get(name.as_ref()) {
                    kept.insert(name.to_string(), project(value.get().as_bytes(), need)?);
                }
            }
            if let (true, true, Some((first, _))) = (*truth, kept.is_empty(), members.first()) {
                kept.insert(first.to_string(), Value::Null);
            }
            Ok(Value::Object(kept))
        }
        _ => serde_json::from_slice(json),
    }
}

/// A member joined to the items of another collection by their keys ([`Keyed::push_round`]).
pub struct Join<'a> {
    member: &'static str,
    values: std::collections::HashMap<Cow<'a, str>, &'a RawValue>,
}

impl<'a> Join<'a> {
    /// Nothing to join: every item loses the member.
    pub fn none(member: &'static str) -> Join<'a> {
        Join { member, values: Default::default() }
    }

    /// The member of each element of a collection written by [`Keyed`] (an object of elements by
    /// key), by the element's key.
    pub fn from_collection(member: &'static str, json: &'a [u8]) -> Result<Join<'a>, serde_json::Error> {
        let text = std::str::from_utf8(json).map_err(|e| de::Error::custom(format!("not UTF-8: {e}")))?;
        let mut values = std::collections::HashMap::new();
        for (key, element) in serde_json::from_str::<Members<'a>>(text)?.0 {
            if !trim(element.get()).starts_with('{') {
                continue;
            }
            let members = serde_json::from_str::<Members<'a>>(element.get())?.0;
            if let Some((_, value)) = members.into_iter().rev().find(|(k, _)| k == member) {
                values.insert(key, value);
            }
        }
        Ok(Join { member, values })
    }
}

/// What writing an item needs besides its output, kept between items so that it is allocated once.
#[derive(Debug, Default)]
struct Space {
    /// The members of the objects being written, innermost last: each object's members from where
    /// the list stood when it began.
    members: Vec<Member>,
    /// A copy of an object's members while they are written again in order.
    scratch: Vec<u8>,
}

/// One member of an object being written: its key, and where the member (key, colon and value)
/// and its value lie in the output.
#[derive(Debug)]
struct Member {
    key: KeyText,
    start: usize,
    value: usize,
    end: usize,
}

#[derive(Debug)]
enum KeyText {
    /// A key without escapes: its text is in the source, between these offsets.
    At(usize, usize),
    /// A key with escapes, decoded.
    Owned(Box<str>),
    /// The member a join adds.
    Static(&'static str),
}

impl KeyText {
    fn text<'a>(&'a self, src: &'a str) -> &'a str {
        match self {
            KeyText::At(start, end) => src.get(*start..*end).unwrap_or_default(),
            KeyText::Owned(key) => key,
            KeyText::Static(key) => key,
        }
    }
}

/// One pass over an item's JSON text that writes its canonical bytes as it reads.
///
/// Every value is read once: strings and numbers are copied (or decoded and written by
/// `serde_json` where their text is not what it would write), arrays written as they come, and an
/// object's members written in the order they came while their keys are noted; an object whose keys
/// did not come sorted, came more than once, or include one to drop is then written again from a
/// copy of its members, in key order. So a byte of an item is read once and copied once per object
/// around it whose members were out of order, where reading each object's members as raw JSON and
/// each nested object again read it once per level. The grammar is JSON's, as strictly as
/// `serde_json` reads it: what it refuses, this refuses.
struct Scan<'s, 'w> {
    src: &'s str,
    pos: usize,
    out: &'w mut Vec<u8>,
    space: &'w mut Space,
}

impl Scan<'_, '_> {
    fn peek(&self) -> Option<u8> {
        self.src.as_bytes().get(self.pos).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn fail(&self, what: &str) -> serde_json::Error {
        de::Error::custom(format!("{what} at byte {} of an item", self.pos))
    }

    /// Nothing but whitespace may follow the item.
    fn end(&mut self) -> Result<(), serde_json::Error> {
        self.ws();
        if self.pos == self.src.len() { Ok(()) } else { Err(self.fail("trailing characters")) }
    }

    fn expect(&mut self, byte: u8) -> Result<(), serde_json::Error> {
        self.ws();
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.fail(&format!("expected `{}`", byte as char)))
        }
    }

    /// Refuses a container at `depth` (the item itself is at 0) that `serde_json` would refuse: it
    /// counts [`MAX_DEPTH`] down as containers open and refuses the one that reaches zero, so 127
    /// of them nest.
    fn enter(&self, depth: usize) -> Result<(), serde_json::Error> {
        if depth + 1 >= MAX_DEPTH { Err(self.fail("recursion limit exceeded")) } else { Ok(()) }
    }

    fn value(&mut self, depth: usize) -> Result<(), serde_json::Error> {
        self.ws();
        match self.peek() {
            Some(b'{') => {
                let base = self.space.members.len();
                let start = self.out.len();
                let sorted = self.members(depth)?;
                self.close(base, start, sorted, &[]);
                self.space.members.truncate(base);
                Ok(())
            }
            Some(b'[') => self.array(depth),
            Some(b'"') => {
                let (start, end, escaped) = self.string_span()?;
                let raw = &self.src[start..end];
                if escaped {
                    let s: String = serde_json::from_str(raw)?;
                    serde_json::to_writer(&mut *self.out, &s)
                } else {
                    self.out.extend_from_slice(raw.as_bytes());
                    Ok(())
                }
            }
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b't') => self.literal("true"),
            Some(b'f') => self.literal("false"),
            Some(b'n') => self.literal("null"),
            _ => Err(self.fail("expected a JSON value")),
        }
    }

    fn literal(&mut self, word: &str) -> Result<(), serde_json::Error> {
        if self.src[self.pos..].starts_with(word) {
            self.pos += word.len();
            self.out.extend_from_slice(word.as_bytes());
            Ok(())
        } else {
            Err(self.fail("expected a JSON value"))
        }
    }

    fn number(&mut self) -> Result<(), serde_json::Error> {
        let start = self.pos;
        while let Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') = self.peek() {
            self.pos += 1;
        }
        let text = &self.src[start..self.pos];
        // Up to 19 digits without a leading zero always fit a u64, which `serde_json` writes back
        // digit for digit.
        if text.len() <= 19 && text.bytes().all(|b| b.is_ascii_digit()) && (text.len() == 1 || !text.starts_with('0')) {
            self.out.extend_from_slice(text.as_bytes());
            Ok(())
        } else {
            // Other numbers (negative, fractional, exponent, beyond a u64) go through `serde_json`'s
            // own number, which decides between integer and float as its trees do, and refuses
            // what is not a number.
            let n: serde_json::Number = serde_json::from_str(text)?;
            serde_json::to_writer(&mut *self.out, &n)
        }
    }

    /// Where the string at the cursor starts and ends (quotes included), and whether it holds an
    /// escape; the cursor moves past it.
    fn string_span(&mut self) -> Result<(usize, usize, bool), serde_json::Error> {
        let bytes = self.src.as_bytes();
        let start = self.pos;
        let mut at = start + 1;
        let mut escaped = false;
        loop {
            let Some(found) = bytes.get(at..).and_then(|rest| memchr::memchr2(b'"', b'\\', rest)) else {
                return Err(self.fail("unterminated string"));
            };
            if bytes[at + found] == b'"' {
                at += found + 1;
                break;
            }
            escaped = true;
            // The escaped character cannot end the string; what it is, `serde_json` checks when it
            // decodes the string.
            at += found + 2;
        }
        // JSON forbids control characters in strings; a string with escapes is checked as
        // `serde_json` decodes it.
        if !escaped && bytes[start + 1..at - 1].iter().any(|b| *b < 0x20) {
            return Err(self.fail("control character in a string"));
        }
        self.pos = at;
        Ok((start, at, escaped))
    }

    fn array(&mut self, depth: usize) -> Result<(), serde_json::Error> {
        self.enter(depth)?;
        self.pos += 1;
        self.out.push(b'[');
        self.ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            self.out.push(b']');
            return Ok(());
        }
        loop {
            self.value(depth + 1)?;
            self.ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.out.push(b',');
                }
                Some(b']') => {
                    self.pos += 1;
                    self.out.push(b']');
                    return Ok(());
                }
                _ => return Err(self.fail("expected `,` or `]`")),
            }
        }
    }

    /// Reads the object at the cursor and writes its members in the order they came, noting each in
    /// `space.members`; says whether their keys came strictly in order (sorted, none repeated).
    /// [`Scan::close`] finishes the object.
    fn members(&mut self, depth: usize) -> Result<bool, serde_json::Error> {
        self.enter(depth)?;
        self.pos += 1;
        self.out.push(b'{');
        let base = self.space.members.len();
        let mut sorted = true;
        self.ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(true);
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(self.fail("expected a key"));
            }
            if self.space.members.len() > base {
                self.out.push(b',');
            }
            let start = self.out.len();
            let (key_start, key_end, escaped) = self.string_span()?;
            let key = if escaped {
                let key: String = serde_json::from_str(&self.src[key_start..key_end])?;
                write_str(&key, self.out);
                KeyText::Owned(key.into_boxed_str())
            } else {
                self.out.extend_from_slice(&self.src.as_bytes()[key_start..key_end]);
                KeyText::At(key_start + 1, key_end - 1)
            };
            self.expect(b':')?;
            self.out.push(b':');
            let value = self.out.len();
            self.value(depth + 1)?;
            if let Some(previous) = self.space.members[base..].last() {
                sorted &= previous.key.text(self.src) < key.text(self.src);
            }
            self.space.members.push(Member { key, start, value, end: self.out.len() });
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(sorted);
                }
                _ => return Err(self.fail("expected `,` or `}`")),
            }
        }
    }

    /// Finishes the object whose `{` was written at `start` and whose members are
    /// `space.members[base..]`: when they came out of order, or repeated, or `dropped` names one,
    /// they are written again sorted by key, the last of a repeated key kept, those named in
    /// `dropped` left out. Afterwards `space.members[base..]` are the members written, where they
    /// now lie.
    fn close(&mut self, base: usize, start: usize, sorted: bool, dropped: &[&str]) {
        let src = self.src;
        let Space { members, scratch } = &mut *self.space;
        if sorted && !members[base..].iter().any(|m| dropped.contains(&m.key.text(src))) {
            self.out.push(b'}');
            return;
        }
        scratch.clear();
        scratch.extend_from_slice(&self.out[start..]);
        self.out.truncate(start + 1);
        // A stable sort keeps members with the same key in the order they came, so the last is last.
        members[base..].sort_by(|a, b| a.key.text(src).cmp(b.key.text(src)));
        let mut kept = base;
        for i in base..members.len() {
            let key = members[i].key.text(src);
            if members.get(i + 1).is_some_and(|next| next.key.text(src) == key) || dropped.contains(&key) {
                continue;
            }
            if kept > base {
                self.out.push(b',');
            }
            let at = self.out.len();
            let m = &mut members[i];
            self.out.extend_from_slice(&scratch[m.start - start..m.end - start]);
            m.value = at + (m.value - m.start);
            m.start = at;
            m.end = self.out.len();
            members.swap(kept, i);
            kept += 1;
        }
        members.truncate(kept);
        self.out.push(b'}');
    }
}

/// Writes a string as `serde_json` does: copied between quotes when nothing in it needs escaping.
fn write_str(s: &str, out: &mut Vec<u8>) {
    if s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        // Writing a string into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    } else {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
}

/// The text of a JSON string, borrowed when it has no escapes.
fn string_of(json: &str) -> Result<Cow<'_, str>, serde_json::Error> {
    match json.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(inner) if !json.contains('\\') => Ok(Cow::Borrowed(inner)),
        _ => serde_json::from_str::<String>(json).map(Cow::Owned),
    }
}

fn trim(json: &str) -> &str {
    json.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'))
}

/// An object's members in the order they came: keys decoded (borrowed when they have no escapes),
/// values as their raw JSON.
struct Members<'a>(MemberList<'a>);

/// An object's members: most objects of Graph's items have a few, kept on the stack rather than
/// allocated for each of millions of objects.
type MemberList<'a> = smallvec::SmallVec<[(Cow<'a, str>, &'a RawValue); 16]>;

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(MembersVisitor)
    }
}

struct MembersVisitor;

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = Members<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
        let mut members = MemberList::new();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let value: &'de RawValue = map.next_value()?;
            members.push((key, value));
        }
        Ok(Members(members))
    }
}

struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v.to_string())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v)))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::dataprint::keyed;

    /// What the tree path writes for the same items.
    fn by_trees(items: &[&str]) -> Vec<u8> {
        let values: Vec<Value> = items.iter().map(|i| serde_json::from_str(i).unwrap()).collect();
        serde_json::to_vec(&keyed(values)).unwrap()
    }

    fn by_bytes(items: &[&str]) -> (Vec<u8>, usize) {
        let mut k = Keyed::new();
        for i in items {
            k.push(i).unwrap();
        }
        let (bytes, n, projection) = k.finish();
        assert!(projection.is_none());
        (bytes, n)
    }

    /// What the projections of the tests keep: members whole, counted, tested for truth, and read
    /// by their own members (the last with and without the object's emptiness).
    fn needs() -> BTreeMap<String, Need> {
        let some = |truth| Need::Members {
            members: BTreeMap::from([("a".to_string(), Need::Whole), ("b".to_string(), Need::Shape)]),
            truth,
        };
        BTreeMap::from([
            ("a".to_string(), Need::Shape),
            ("b".to_string(), Need::Truth),
            ("id".to_string(), Need::Whole),
            ("signInActivity".to_string(), some(true)),
            ("é日本".to_string(), some(false)),
            ("@odata.etag".to_string(), Need::Whole),
        ])
    }

    /// What the tree path's projection is.
    fn project_tree(tree: Value) -> Value {
        history::project_elements(tree, &Need::Members { members: needs(), truth: false })
    }

    fn same(items: &[&str]) {
        let (bytes, _) = by_bytes(items);
        assert_eq!(String::from_utf8(bytes).unwrap(), String::from_utf8(by_trees(items)).unwrap(), "{items:?}");
    }

    #[test]
    fn items_are_keyed_sorted_and_stripped_like_trees() {
        same(&[
            r##"{"id":"b","z":1,"a":[3,{"y":true,"x":null}],"@odata.etag":"W/1","@odata.type":"#t"}"##,
            r#" { "id" : "a" , "n" : -0 , "f" : 1.50, "e": 1E3, "big": 18446744073709551616, "neg": -12 } "#,
            r#"{"x":"no id"}"#,
            r#""a string item""#,
            r#"{"id":"\u0061\/b","s":"caf\u00e9 \"q\" \n","k\u00e9y":2}"#,
        ]);
    }

    #[test]
    fn the_last_of_a_repeated_id_or_key_wins() {
        same(&[r#"{"id":"a","n":1}"#, r#"{"x":0}"#, r#"{"id":"a","n":2,"n":3}"#]);
        same(&[r#"{"id":"a","id":7}"#, r#"{"id":7,"id":"a"}"#]);
        let (_, n) = by_bytes(&[r#"{"id":"a"}"#, r#"{"id":"a"}"#, r#"{"id":"b"}"#]);
        assert_eq!(n, 2);
    }

    #[test]
    fn an_empty_collection_is_an_empty_object() {
        same(&[]);
    }

    #[test]
    fn nesting_deeper_than_serde_json_allows_is_refused_not_overflowed() {
        let deep = format!("{{\"id\":\"a\",\"v\":{}1{}}}", "[".repeat(5000), "]".repeat(5000));
        assert!(serde_json::from_str::<Value>(&deep).is_err());
        assert!(Keyed::new().push(&deep).is_err());
    }

    #[test]
    fn nesting_is_refused_exactly_where_serde_json_refuses_it() {
        for n in 120..=132 {
            for (open, close) in [("[", "]"), ("{\"k\":", "}")] {
                let item = format!("{{\"id\":\"a\",\"v\":{}1{}}}", open.repeat(n), close.repeat(n));
                let trees = serde_json::from_str::<Value>(&item).is_ok();
                assert_eq!(Keyed::new().push(&item).is_ok(), trees, "{n} levels of {open}");
                if trees {
                    same(&[&item]);
                }
            }
        }
    }

    #[test]
    fn what_serde_json_refuses_is_refused() {
        for bad in [
            r#"{"id":"a",}"#,
            r#"{"id":"a" "b":1}"#,
            r#"{"id" "a"}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":-}"#,
            r#"{"a":1e}"#,
            r#"{"a":tru}"#,
            r#"{"a":truex}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":[1 2]}"#,
            r#"{"a":"\x"}"#,
            r#"{"a":"\ud800"}"#,
            "{\"a\":\"tab\there\"}",
            r#"{"a":"unterminated}"#,
            r#"{"a":1}}"#,
            r#"{"a":1} x"#,
            r#"{a:1}"#,
            r#"{"a":1e400}"#,
            "{\"a\":1}\u{a0}",
            "",
            "   ",
        ] {
            assert!(serde_json::from_str::<Value>(bad).is_err(), "{bad}");
            assert!(Keyed::new().push(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_projection_keeps_the_named_members_as_the_stores_does() {
        let items = [r#"{"id":"a","x":1,"y":{"z":[1]},"w":"no"}"#, r#"{"id":"b","w":2}"#, r#""s""#];
        let fields = vec!["y".to_string(), "w".to_string()];
        let Need::Members { members, .. } = Need::fields(fields.clone()) else { unreachable!() };
        let mut k = Keyed::projecting(members);
        for i in items {
            k.push(i).unwrap();
        }
        let (bytes, _, projection) = k.finish();
        assert_eq!(bytes, by_trees(&items));
        let tree: Value = serde_json::from_slice(&by_trees(&items)).unwrap();
        assert_eq!(projection, Some(store::project_collection(tree, &fields)));
    }

    /// JSON text with the liberties Graph or a hostile tenant may take: whitespace, keys in any order
    /// and repeated, escapes, numbers in every form.
    fn json_text() -> impl Strategy<Value = String> {
        let ws = prop::sample::select(vec!["", " ", "\n  ", "\t"]);
        let number = prop::sample::select(vec![
            "0",
            "7",
            "-0",
            "-1",
            "12.50",
            "1e3",
            "1E-2",
            "-3.25e+2",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-9223372036854775809",
            "0.1",
            "1.0",
            "123456789012345678901234567890",
            "5e-324",
            "1.7976931348623157e308",
        ]);
        let string = prop::sample::select(vec![
            r#""""#,
            r#""id""#,
            r#""plain text""#,
            r#""caf\u00e9""#,
            r#""a\/b""#,
            r#""tab\there""#,
            r#""quote\"d""#,
            r#""\ud83d\ude00""#,
            r#""é日本""#,
            r#""\u0000\u001f""#,
            r#""back\\slash""#,
        ]);
        let leaf = prop_oneof![
            number.prop_map(str::to_string),
            string.clone().prop_map(str::to_string),
            prop::sample::select(vec!["true", "false", "null"]).prop_map(str::to_string),
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            let ws = ws.clone();
            let key = prop_oneof![
                prop::sample::select(vec![
                    r#""id""#,
                    r#""a""#,
                    r#""b""#,
                    r#""@odata.etag""#,
                    r#""\u0061""#,
                    r#""signInActivity""#,
                    r#""@removed""#,
                ])
                .prop_map(str::to_string),
                string.clone().prop_map(str::to_string),
            ];
            prop_oneof![
                (prop::collection::vec(inner.clone(), 0..5), ws.clone())
                    .prop_map(|(items, w)| format!("[{w}{}{w}]", items.join(&format!("{w},{w}")))),
                (prop::collection::vec((key, inner), 0..6), ws).prop_map(|(members, w)| {
                    let members: Vec<String> = members.into_iter().map(|(k, v)| format!("{k}{w}:{w}{v}")).collect();
                    format!("{{{w}{}{w}}}", members.join(","))
                }),
            ]
        })
    }

    /// What a round built as trees and joined with sign-in activity gives: `activity` read (`Some`),
    /// or not read (`None`); `carried` leaves the users as they are.
    fn round_by_trees(users: &[String], activity: Option<&[String]>, carried: bool) -> Vec<u8> {
        let changed: Vec<Value> = users
            .iter()
            .map(|u| serde_json::from_str::<Value>(u).unwrap())
            .filter(|u| u.get("@removed").is_none())
            .collect();
        let mut tree = keyed(changed);
        let activity = activity.map(|a| keyed(a.iter().map(|i| serde_json::from_str::<Value>(i).unwrap())));
        if !carried {
            for (id, user) in tree.as_object_mut().unwrap() {
                let Some(user) = user.as_object_mut() else { continue };
                match activity.as_ref().and_then(|a| a.get(id)).and_then(|a| a.get("signInActivity")) {
                    Some(a) => {
                        user.insert("signInActivity".into(), crate::dataprint::canonical(a.clone()));
                    }
                    None => {
                        user.remove("signInActivity");
                    }
                }
            }
        }
        serde_json::to_vec(&tree).unwrap()
    }

    fn round_by_bytes(users: &[String], activity: Option<&[String]>, carried: bool) -> (Vec<u8>, usize) {
        let activity = activity.map(|a| by_bytes(&a.iter().map(String::as_str).collect::<Vec<_>>()).0);
        let join = match (&activity, carried) {
            (_, true) => None,
            (Some(a), false) => Some(Join::from_collection("signInActivity", a).unwrap()),
            (None, false) => Some(Join::none("signInActivity")),
        };
        let mut k = Keyed::projecting(needs());
        for u in users {
            k.push_round(u, join.as_ref()).unwrap();
        }
        let (bytes, n, projection) = k.finish();
        let tree: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(projection, Some(project_tree(tree)), "the projection is the bytes'");
        (bytes, n)
    }

    #[test]
    fn a_round_joined_as_bytes_is_what_trees_give() {
        let users: Vec<String> = [
            r#"{"id":"a","displayName":"A","signInActivity":{"old":1}}"#,
            r#"{"id":"b","@removed":{"reason":"deleted"}}"#,
            r#"{"displayName":"no id"}"#,
            r#"{"id":"c","@odata.etag":"x"}"#,
        ]
        .map(String::from)
        .to_vec();
        let activity: Vec<String> = [
            r##"{"id":"a","signInActivity":{"lastSignInDateTime":"2026-01-01T00:00:00Z","@odata.type":"#x","@odata.etag":"e"}}"##,
            r##"{"id":"#1","signInActivity":null}"##,
            r#"{"id":"zz","signInActivity":{}}"#,
        ]
        .map(String::from)
        .to_vec();
        for (a, carried) in [(Some(&activity[..]), false), (None, false), (Some(&activity[..]), true)] {
            let (bytes, n) = round_by_bytes(&users, a, carried);
            assert_eq!(
                String::from_utf8(bytes).unwrap(),
                String::from_utf8(round_by_trees(&users, a, carried)).unwrap()
            );
            assert_eq!(n, 3, "the removed user is left out");
        }
    }

    proptest! {
        #[test]
        fn rounds_joined_as_bytes_are_what_trees_give(
            users in prop::collection::vec(json_text(), 0..8),
            activity in prop::collection::vec(json_text(), 0..8),
            read in any::<bool>(),
            carried in any::<bool>(),
        ) {
            let activity = read.then_some(&activity[..]);
            let (bytes, _) = round_by_bytes(&users, activity, carried);
            prop_assert_eq!(String::from_utf8(bytes).unwrap(), String::from_utf8(round_by_trees(&users, activity, carried)).unwrap());
        }

        /// Text damaged anywhere (a character removed or one added) is refused exactly when
        /// `serde_json` refuses it, and written as its trees would be when it is not.
        #[test]
        fn damaged_text_is_refused_as_serde_json_refuses_it(
            item in json_text(),
            at in any::<prop::sample::Index>(),
            insert in prop::option::of(prop::sample::select(vec![',', ':', '{', '}', '[', ']', '"', '\\', 'x', '0', '-', '.', 'e', ' ', '\u{1}', 'é'])),
        ) {
            let mut chars: Vec<char> = item.chars().collect();
            let at = at.index(chars.len() + 1);
            match insert {
                Some(c) => chars.insert(at, c),
                None if at < chars.len() => {
                    chars.remove(at);
                }
                None => {}
            }
            let damaged: String = chars.into_iter().collect();
            let trees = serde_json::from_str::<Value>(&damaged);
            let mut k = Keyed::new();
            let pushed = k.push(&damaged);
            prop_assert_eq!(pushed.is_ok(), trees.is_ok(), "{}: {:?} against {:?}", damaged, pushed, trees);
            if let Ok(tree) = trees {
                prop_assert_eq!(k.finish().0, serde_json::to_vec(&keyed([tree])).unwrap());
            }
        }

        #[test]
        fn bytes_are_what_trees_write(items in prop::collection::vec(json_text(), 0..8)) {
            let items: Vec<&str> = items.iter().map(String::as_str).collect();
            let (bytes, n) = by_bytes(&items);
            let trees = by_trees(&items);
            let mut k = Keyed::projecting(needs());
            for i in &items {
                k.push(i).unwrap();
            }
            let (projected_bytes, _, projection) = k.finish();
            prop_assert_eq!(&projected_bytes, &bytes);
            let tree: Value = serde_json::from_slice(&trees).unwrap();
            prop_assert_eq!(projection, Some(project_tree(tree)));
            prop_assert_eq!(String::from_utf8(bytes).unwrap(), String::from_utf8(trees.clone()).unwrap());
            let tree: Value = serde_json::from_slice(&trees).unwrap();
            prop_assert_eq!(n, tree.as_object().unwrap().len());
        }
    }
}
