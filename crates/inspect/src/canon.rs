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

/// How deep objects and arrays may nest: `serde_json` refuses deeper documents when it builds
/// trees, and so does this, rather than recursing without bound on a hostile answer.
const MAX_DEPTH: usize = 128;

/// One collection being written: its items' canonical bytes one after another, with their ids.
#[derive(Debug, Default)]
pub struct Keyed {
    buf: Vec<u8>,
    /// Each item's id (or `#n` for the n-th item, which has none) and where its bytes lie in `buf`.
    entries: Vec<(String, usize, usize)>,
}

impl Keyed {
    pub fn new() -> Keyed {
        Keyed::default()
    }

    /// Adds one item, given as its JSON text: an object loses the annotations
    /// [`crate::dataprint::canonical`] drops, and is keyed by its `id` when that is a string.
    pub fn push(&mut self, item: &str) -> Result<(), serde_json::Error> {
        let start = self.buf.len();
        let id = write_item(item, &mut self.buf)?;
        let id = id.unwrap_or_else(|| format!("#{}", self.entries.len()));
        self.entries.push((id, start, self.buf.len()));
        Ok(())
    }

    /// Items added so far, repeated ids counted each time.
    pub fn pushed(&self) -> usize {
        self.entries.len()
    }

    /// The collection's bytes, an object of the items by id in id order (of items with the same
    /// id, the last), and how many items it holds.
    pub fn finish(mut self) -> (Vec<u8>, usize) {
        // A stable sort keeps items with the same id in the order they came, so the last is last.
        self.entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = Vec::with_capacity(self.buf.len() + self.entries.len() * 40 + 2);
        out.push(b'{');
        let mut items = 0;
        for (i, (id, start, end)) in self.entries.iter().enumerate() {
            if self.entries.get(i + 1).is_some_and(|next| next.0 == *id) {
                continue;
            }
            if items > 0 {
                out.push(b',');
            }
            write_str(id, &mut out);
            out.push(b':');
            out.extend_from_slice(&self.buf[*start..*end]);
            items += 1;
        }
        out.push(b'}');
        (out, items)
    }
}

/// A collection written by [`Keyed`], read back as a tree whose elements that are objects keep only
/// the members named in `fields`, each whole (as the store's projection of a stored collection):
/// what the built-in metrics need of it, without building the rest.
pub fn project(json: &[u8], fields: &[String]) -> Result<serde_json::Value, serde_json::Error> {
    use serde_json::{Map, Value};
    let text = std::str::from_utf8(json).map_err(|e| de::Error::custom(format!("not UTF-8: {e}")))?;
    let items = serde_json::from_str::<Members<'_>>(text)?.0;
    let mut out = Map::new();
    for (id, item) in items {
        let item = if trim(item.get()).starts_with('{') {
            let mut kept = Map::new();
            for (name, value) in serde_json::from_str::<Members<'_>>(item.get())?.0 {
                if fields.iter().any(|f| *f == name) {
                    kept.insert(name.into_owned(), serde_json::from_str(value.get())?);
                }
            }
            Value::Object(kept)
        } else {
            serde_json::from_str(item.get())?
        };
        out.insert(id.into_owned(), item);
    }
    Ok(Value::Object(out))
}

/// Writes one item and returns its id: the `id` member of an object, when it is a string.
fn write_item(json: &str, out: &mut Vec<u8>) -> Result<Option<String>, serde_json::Error> {
    let json = trim(json);
    if !json.starts_with('{') {
        write_value(json, out, 0)?;
        return Ok(None);
    }
    let mut members = serde_json::from_str::<Members<'_>>(json)?.0;
    members.sort_by(|a, b| a.0.cmp(&b.0));
    let id = match members.iter().rev().find(|(k, _)| k == "id") {
        Some((_, v)) if v.get().starts_with('"') => Some(string_of(v.get())?.into_owned()),
        _ => None,
    };
    write_members(&members, out, crate::dataprint::DROPPED, 0)?;
    Ok(id)
}

/// Writes any JSON value as `serde_json` writes it when it is a [`serde_json::Value`].
pub fn write_value(json: &str, out: &mut Vec<u8>, depth: usize) -> Result<(), serde_json::Error> {
    let json = trim(json);
    match json.as_bytes().first() {
        Some(b'{') | Some(b'[') if depth >= MAX_DEPTH => Err(de::Error::custom("recursion limit exceeded")),
        Some(b'{') => {
            let mut members = serde_json::from_str::<Members<'_>>(json)?.0;
            members.sort_by(|a, b| a.0.cmp(&b.0));
            write_members(&members, out, &[], depth)
        }
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(json)?;
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
/// `serde_json` map keeps; leaving out those named in `dropped`.
fn write_members(
    members: &[(Cow<'_, str>, &RawValue)],
    out: &mut Vec<u8>,
    dropped: &[&str],
    depth: usize,
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
        write_value(value.get(), out, depth + 1)?;
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
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

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
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(16));
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
    use serde_json::Value;

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
        k.finish()
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
        let (bytes, _) = by_bytes(&items);
        let fields = vec!["y".to_string(), "w".to_string()];
        let tree: Value = serde_json::from_slice(&by_trees(&items)).unwrap();
        assert_eq!(project(&bytes, &fields).unwrap(), store::project_collection(tree, &fields));
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
                prop::sample::select(vec![r#""id""#, r#""a""#, r#""b""#, r#""@odata.etag""#, r#""\u0061""#])
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

    proptest! {
        #[test]
        fn bytes_are_what_trees_write(items in prop::collection::vec(json_text(), 0..8)) {
            let items: Vec<&str> = items.iter().map(String::as_str).collect();
            let (bytes, n) = by_bytes(&items);
            let trees = by_trees(&items);
            prop_assert_eq!(String::from_utf8(bytes).unwrap(), String::from_utf8(trees.clone()).unwrap());
            let tree: Value = serde_json::from_slice(&trees).unwrap();
            prop_assert_eq!(n, tree.as_object().unwrap().len());
        }
    }
}
