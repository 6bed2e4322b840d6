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
use std::fmt;

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
    /// The members of each element to keep in the projection, when one is made ([`Keyed::projecting`]).
    fields: Option<Vec<String>>,
    /// Each entry's projection, when one is made.
    projected: Vec<Value>,
}

/// A collection's bytes, how many items it holds, and its projection when one was asked for.
pub type Written = (Vec<u8>, usize, Option<Value>);

impl Keyed {
    pub fn new() -> Keyed {
        Keyed::default()
    }

    /// A collection that is also read back as a tree whose elements that are objects keep only the
    /// members named in `fields`, each whole (as the store's projection of a stored collection):
    /// what the built-in metrics need of it, made while the items are written rather than by
    /// reading them again.
    pub fn projecting(fields: Vec<String>) -> Keyed {
        Keyed { fields: Some(fields), ..Keyed::default() }
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
        let json = trim(item);
        let start = self.buf.len();
        if !json.starts_with('{') {
            write_value(json, &mut self.buf, 0)?;
            if self.fields.is_some() {
                self.projected.push(serde_json::from_str(json)?);
            }
            self.entries.push((format!("#{}", self.entries.len()), start, self.buf.len()));
            return Ok(());
        }
        let mut members = serde_json::from_str::<Members<'_>>(json)?.0;
        if round && members.iter().any(|(k, _)| k == "@removed") {
            return Ok(());
        }
        members.sort_by(|a, b| a.0.cmp(&b.0));
        let key = match members.iter().rev().find(|(k, _)| k == "id") {
            Some((_, v)) if v.get().starts_with('"') => string_of(v.get())?.into_owned(),
            _ => format!("#{}", self.entries.len()),
        };
        if let Some(join) = join {
            members.retain(|(k, _)| k != join.member);
            if let Some(value) = join.values.get(key.as_str()) {
                let at = members.partition_point(|(k, _)| k.as_ref() < join.member);
                members.insert(at, (Cow::Borrowed(join.member), *value));
            }
        }
        let joined = join.map(|j| j.member);
        write_members(&members, &mut self.buf, crate::dataprint::DROPPED, 0, joined)?;
        if let Some(fields) = &self.fields {
            self.projected.push(project_members(&members, fields, joined)?);
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
        let Keyed { buf, entries, fields, projected } = self;
        let mut order: Vec<usize> = (0..entries.len()).collect();
        // A stable sort keeps items with the same id in the order they came, so the last is last.
        order.sort_by(|a, b| entries[*a].0.cmp(&entries[*b].0));
        let mut out = Vec::with_capacity(buf.len() + entries.len() * 40 + 2);
        let mut projection = fields.as_ref().map(|_| Map::new());
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

/// The projection of one object's members (sorted, the last of a repeated key kept): those named in
/// `fields`, each whole, except the annotations an item drops; `joined` is canonical as an item.
fn project_members(
    members: &[(Cow<'_, str>, &RawValue)],
    fields: &[String],
    joined: Option<&str>,
) -> Result<Value, serde_json::Error> {
    let mut kept = Map::new();
    for (i, (key, value)) in members.iter().enumerate() {
        if members.get(i + 1).is_some_and(|next| next.0 == *key)
            || crate::dataprint::DROPPED.contains(&key.as_ref())
            || !fields.iter().any(|f| f == key)
        {
            continue;
        }
        let mut value: Value = serde_json::from_str(value.get())?;
        if joined == Some(key.as_ref()) {
            value = crate::dataprint::canonical(value);
        }
        kept.insert(key.to_string(), value);
    }
    Ok(Value::Object(kept))
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

/// Writes any JSON value as `serde_json` writes it when it is a [`serde_json::Value`].
fn write_value(json: &str, out: &mut Vec<u8>, depth: usize) -> Result<(), serde_json::Error> {
    let json = trim(json);
    match json.as_bytes().first() {
        Some(b'{') | Some(b'[') if depth >= MAX_DEPTH => Err(de::Error::custom("recursion limit exceeded")),
        // Empty ones, common in Graph's items, need no reading.
        Some(b'{') | Some(b'[') if json == "{}" || json == "[]" => {
            out.extend_from_slice(json.as_bytes());
            Ok(())
        }
        Some(b'{') => {
            let mut members = serde_json::from_str::<Members<'_>>(json)?.0;
            members.sort_by(|a, b| a.0.cmp(&b.0));
            write_members(&members, out, &[], depth, None)
        }
        Some(b'[') => {
            let items = serde_json::from_str::<Items<'_>>(json)?.0;
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item.get(), out, depth + 1)?;
            }
            out.push(b']');
            Ok(())
        }
        // A string without escapes is written as it came: JSON forbids the control characters
        // `serde_json` would escape, so nothing in it needs escaping.
        Some(b'"') if !json.contains('\\') => {
            out.extend_from_slice(json.as_bytes());
            Ok(())
        }
        Some(b'"') => {
            let s: String = serde_json::from_str(json)?;
            serde_json::to_writer(&mut *out, &s)
        }
        // Up to 19 digits always fit a u64, which `serde_json` writes back digit for digit (JSON
        // allows no leading zero).
        Some(b'0'..=b'9') if json.len() <= 19 && json.bytes().all(|b| b.is_ascii_digit()) => {
            out.extend_from_slice(json.as_bytes());
            Ok(())
        }
        Some(b't') | Some(b'f') | Some(b'n') => match json {
            "true" | "false" | "null" => {
                out.extend_from_slice(json.as_bytes());
                Ok(())
            }
            _ => Err(de::Error::custom(format!("not a JSON value: {json:.16}"))),
        },
        // Other numbers (negative, fractional, exponent, beyond a u64) go through `serde_json`'s
        // own number, which decides between integer and float as its trees do.
        _ => {
            let n: serde_json::Number = serde_json::from_str(json)?;
            serde_json::to_writer(&mut *out, &n)
        }
    }
}

/// Writes an object's members, sorted by key; of members with the same key the last, as a
/// `serde_json` map keeps; leaving out those named in `dropped`. The member named `joined` is
/// written as an item is, without the annotations an item drops.
fn write_members(
    members: &[(Cow<'_, str>, &RawValue)],
    out: &mut Vec<u8>,
    dropped: &[&str],
    depth: usize,
    joined: Option<&str>,
) -> Result<(), serde_json::Error> {
    out.push(b'{');
    let mut written = 0;
    for (i, (key, value)) in members.iter().enumerate() {
        if members.get(i + 1).is_some_and(|next| next.0 == *key) || dropped.contains(&key.as_ref()) {
            continue;
        }
        if written > 0 {
            out.push(b',');
        }
        write_str(key, out);
        out.push(b':');
        let value = trim(value.get());
        if joined == Some(key.as_ref()) && value.starts_with('{') && depth + 1 < MAX_DEPTH {
            let mut members = serde_json::from_str::<Members<'_>>(value)?.0;
            members.sort_by(|a, b| a.0.cmp(&b.0));
            write_members(&members, out, crate::dataprint::DROPPED, depth + 1, None)?;
        } else {
            write_value(value, out, depth + 1)?;
        }
        written += 1;
    }
    out.push(b'}');
    Ok(())
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

/// An array's elements as their raw JSON, a few kept on the stack.
struct Items<'a>(smallvec::SmallVec<[&'a RawValue; 8]>);

impl<'de> Deserialize<'de> for Items<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_seq(ItemsVisitor)
    }
}

struct ItemsVisitor;

impl<'de> Visitor<'de> for ItemsVisitor {
    type Value = Items<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array")
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Items<'de>, A::Error> {
        let mut items = smallvec::SmallVec::new();
        while let Some(item) = seq.next_element::<&'de RawValue>()? {
            items.push(item);
        }
        Ok(Items(items))
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

    /// The members the projections of the tests keep.
    fn fields() -> Vec<String> {
        ["a", "id", "signInActivity", "@odata.etag"].map(String::from).to_vec()
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
    fn a_projection_keeps_the_named_members_as_the_stores_does() {
        let items = [r#"{"id":"a","x":1,"y":{"z":[1]},"w":"no"}"#, r#"{"id":"b","w":2}"#, r#""s""#];
        let fields = vec!["y".to_string(), "w".to_string()];
        let mut k = Keyed::projecting(fields.clone());
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
        let mut k = Keyed::projecting(fields());
        for u in users {
            k.push_round(u, join.as_ref()).unwrap();
        }
        let (bytes, n, projection) = k.finish();
        let tree: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(projection, Some(store::project_collection(tree, &fields())), "the projection is the bytes'");
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

        #[test]
        fn bytes_are_what_trees_write(items in prop::collection::vec(json_text(), 0..8)) {
            let items: Vec<&str> = items.iter().map(String::as_str).collect();
            let (bytes, n) = by_bytes(&items);
            let trees = by_trees(&items);
            let mut k = Keyed::projecting(fields());
            for i in &items {
                k.push(i).unwrap();
            }
            let (projected_bytes, _, projection) = k.finish();
            prop_assert_eq!(&projected_bytes, &bytes);
            let tree: Value = serde_json::from_slice(&trees).unwrap();
            prop_assert_eq!(projection, Some(store::project_collection(tree, &fields())));
            prop_assert_eq!(String::from_utf8(bytes).unwrap(), String::from_utf8(trees.clone()).unwrap());
            let tree: Value = serde_json::from_slice(&trees).unwrap();
            prop_assert_eq!(n, tree.as_object().unwrap().len());
        }
    }
}
