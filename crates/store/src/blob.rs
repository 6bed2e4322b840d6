//! Content addressing and compression of dataprints.
//!
//! A dataprint is split in two:
//!
//! - each entry of its `collections` object becomes a **blob**: the entry's
//!   JSON bytes, compressed (a zstd frame; zlib in stores written before
//!   zstd), keyed by the SHA-256 of those bytes;
//! - everything else is the **envelope**: the document with every collection
//!   replaced by a `null` placeholder, so that the position of `collections`
//!   in the document and of each name inside it is kept.
//!
//! The set of `(collection name, blob hash)` pairs of a dataprint is itself
//! content-addressed (a "collection set").
//!
//! A dataprint as a whole has a **content identity**: the hash of its
//! envelope without the top-level `run` member (where the producer puts
//! every field that changes between runs of an unchanged tenant: run id,
//! times, durations, request counts) and of its collection set. A tenant
//! whose new dataprint has the identity of its latest one stores no new
//! dataprint at all; the tenant run points at the existing one and keeps
//! its own `run` member in its per-run part (`per_run.rs`).
//!
//! On hashing: the dataprint format requires collection objects to have
//! sorted keys, so a conforming collection's bytes *are* its canonical JSON
//! and the blob key is its canonical hash. The hash is taken over the bytes
//! as given rather than over a re-sorted copy so that `get_dataprint` always
//! returns byte-for-byte what was stored, even for a producer that does not
//! sort; such a collection deduplicates only against byte-identical copies.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{Result, StoreError};
use crate::model::UnparsedCollection;

/// The key of the top-level object that holds the collections.
pub(crate) const COLLECTIONS: &str = "collections";

/// The key of the top-level object that holds what changes between runs.
pub(crate) const RUN: &str = "run";

/// Largest document or collection the store accepts, uncompressed. Far above
/// any real tenant; it exists so that a corrupt length can never make the
/// store allocate without bound.
pub(crate) const MAX_RAW_LEN: usize = 1 << 30;

/// Hex SHA-256 of some bytes.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The zstd level blobs are written at. On the benchmark fleet's 478 MiB of collections (15,395
/// blobs), level 1 stores them in 70.2 MiB in 0.7 s and inflates them in 0.19 s, where zlib-rs at
/// level 2, used before, took 82.3 MiB, 1.7 s and 0.52 s; zstd's levels 2 and 3 are slower and, on
/// blobs this size, no smaller (docs/performance.md, "Inspection", item 13).
const ZSTD_LEVEL: i32 = 1;

/// The first four bytes of a zstd frame. Blobs written before zstd are zlib streams, whose first
/// byte (CMF) has 8, deflate, as its low nibble and so is never 0x28: the two cannot be confused.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

thread_local! {
    /// One compression context per thread: making one costs more than compressing most of the
    /// store's small blobs, envelopes and results.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

fn zstd_compressor() -> std::io::Result<zstd::bulk::Compressor<'static>> {
    let mut compressor = zstd::bulk::Compressor::new(ZSTD_LEVEL)?;
    // The frame's checksum catches most corruption before the hash check does, as zlib's Adler-32
    // trailer did.
    compressor.include_checksum(true)?;
    Ok(compressor)
}

/// Compresses bytes as one zstd frame (with its content size and checksum).
///
/// zstd fails here only when it cannot allocate its context; the bytes are then written as a zlib
/// stream, which [`decompress`] reads as well, rather than failing the write.
pub(crate) fn compress(raw: &[u8]) -> Vec<u8> {
    let zstd = COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = zstd_compressor().ok();
        }
        slot.as_mut().and_then(|c| c.compress(raw).ok())
    });
    zstd.unwrap_or_else(|| zlib_compress(raw))
}

/// The format the store wrote before zstd, and its fallback.
fn zlib_compress(raw: &[u8]) -> Vec<u8> {
    let mut encoder = ZlibEncoder::new(Vec::with_capacity(raw.len() / 4 + 64), Compression::new(2));
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(raw);
    encoder.finish().unwrap_or_default()
}

/// Decompresses bytes that must inflate to exactly `raw_len` bytes: a zstd frame, or a zlib stream
/// written by an earlier version.
pub(crate) fn decompress(data: &[u8], raw_len: i64, what: &str) -> Result<Vec<u8>> {
    let expected = usize::try_from(raw_len)
        .ok()
        .filter(|len| *len <= MAX_RAW_LEN)
        .ok_or_else(|| StoreError::corrupt(format!("{what}: invalid length {raw_len}")))?;
    let raw = if data.starts_with(&ZSTD_MAGIC) {
        DECOMPRESSOR.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.is_none() {
                *slot = Some(zstd::bulk::Decompressor::new()?);
            }
            match slot.as_mut() {
                // A frame that holds more than `expected` bytes fails here rather than allocating more.
                Some(d) => d.decompress(data, expected),
                None => Err(std::io::Error::other("no decompression context")),
            }
        })
    } else {
        let mut raw = Vec::with_capacity(expected);
        ZlibDecoder::new(data).take(expected as u64 + 1).read_to_end(&mut raw).map(|_| raw)
    }
    .map_err(|err| StoreError::corrupt(format!("{what}: cannot decompress: {err}")))?;
    if raw.len() != expected {
        return Err(StoreError::corrupt(format!("{what}: decompressed to {} bytes, expected {expected}", raw.len())));
    }
    Ok(raw)
}

/// One collection of a dataprint, ready to be stored.
pub(crate) struct CollectionBlob {
    /// The collection name (`users`, `domains`...).
    pub name: String,
    /// Hex SHA-256 of `raw`.
    pub hash: String,
    /// The collection's JSON bytes; emptied once compressed (see [`prepare`]), and never held for
    /// a collection `carried` over.
    pub raw: Vec<u8>,
    /// The length of the JSON bytes.
    pub raw_len: usize,
    /// Whether the hash and length were taken from the stored blob of an earlier dataprint
    /// instead of from the bytes (see [`Known`]).
    pub carried: bool,
}

/// What the store already holds of some collections: by name, the hash and length of their
/// stored JSON bytes, for collections the producer moved unchanged from an earlier dataprint.
pub(crate) type Known = HashMap<String, (String, usize)>;

/// A dataprint split into envelope and collections.
pub(crate) struct SplitDataprint {
    /// The envelope JSON, uncompressed.
    pub envelope: Vec<u8>,
    /// The collections in document order; empty when not split.
    pub collections: Vec<CollectionBlob>,
    /// Hash of the collection set, `None` when the document has no non-empty
    /// `collections` object (then the envelope is the whole document).
    pub set_hash: Option<String>,
    /// The content identity: SHA-256 of everything but the `run` member.
    pub content_hash: Vec<u8>,
    /// The top-level `run` member, when the document is an object with one.
    pub run: Option<Value>,
}

/// Splits a dataprint into its envelope and collection blobs, and computes
/// its content identity.
#[cfg(test)]
pub(crate) fn split(doc: &Value) -> Result<SplitDataprint> {
    split_with(doc, &Known::new(), &[])
}

/// [`split`], taking the hash and length of the collections in `known` as given instead of
/// serialising and hashing them: on a large tenant whose collections are mostly reused, that is
/// most of a commit's work. Builds with debug assertions (the tests) serialise them anyway and
/// refuse a claim that does not hold, so that a producer's mistake cannot pass unseen.
///
/// A collection in `unparsed` is taken as the bytes given there; its place in the document must
/// hold `null`.
pub(crate) fn split_with(doc: &Value, known: &Known, unparsed: &[UnparsedCollection]) -> Result<SplitDataprint> {
    let run = doc.as_object().and_then(|top| top.get(RUN)).cloned();
    let places = doc.get(COLLECTIONS).and_then(Value::as_object);
    if let Some(u) = unparsed.iter().find(|u| !places.and_then(|p| p.get(&u.name)).is_some_and(Value::is_null)) {
        return Err(StoreError::InvalidInput(format!(
            "collection {:?} was given as bytes, but the dataprint has no empty place for it",
            u.name
        )));
    }
    let collections = match doc.get(COLLECTIONS) {
        Some(Value::Object(map)) if !map.is_empty() => map,
        _ => {
            let envelope = serde_json::to_vec(doc)?;
            let content_hash = content_hash(doc, None)?;
            return Ok(SplitDataprint { envelope, collections: Vec::new(), set_hash: None, content_hash, run });
        }
    };
    let mut blobs = Vec::with_capacity(collections.len());
    for (name, value) in collections {
        if let Some(json) = unparsed.iter().find(|u| u.name == *name).map(|u| u.json.as_slice()) {
            check_len(json.len(), name)?;
            // The bytes come from this process (they are never read from the network); the tests
            // check that they are JSON.
            if cfg!(debug_assertions) && serde_json::from_slice::<serde::de::IgnoredAny>(json).is_err() {
                return Err(StoreError::InvalidInput(format!(
                    "collection {name:?} was given as bytes that are not JSON"
                )));
            }
            blobs.push(CollectionBlob {
                name: name.clone(),
                hash: sha256_hex(json),
                raw: json.to_vec(),
                raw_len: json.len(),
                carried: false,
            });
            continue;
        }
        if let Some((hash, raw_len)) = known.get(name) {
            // A collection carried unread is `null` here: there is nothing to check it against.
            if cfg!(debug_assertions) && !value.is_null() {
                check_carried(name, value, hash)?;
            }
            blobs.push(CollectionBlob {
                name: name.clone(),
                hash: hash.clone(),
                raw: Vec::new(),
                raw_len: *raw_len,
                carried: true,
            });
            continue;
        }
        let raw = serde_json::to_vec(value)?;
        check_len(raw.len(), name)?;
        blobs.push(CollectionBlob {
            name: name.clone(),
            hash: sha256_hex(&raw),
            raw_len: raw.len(),
            raw,
            carried: false,
        });
    }
    // The envelope keeps every key in place; only the collection values are
    // replaced, which is cheap because serde_json clones only the envelope
    // part that we rebuild here.
    let mut envelope = serde_json::Map::with_capacity(doc.as_object().map_or(0, |m| m.len()));
    if let Some(top) = doc.as_object() {
        for (key, value) in top {
            if key == COLLECTIONS {
                let placeholders = collections.keys().map(|name| (name.clone(), Value::Null)).collect();
                envelope.insert(key.clone(), Value::Object(placeholders));
            } else {
                envelope.insert(key.clone(), value.clone());
            }
        }
    }
    let envelope = Value::Object(envelope);
    let set_hash = set_hash(blobs.iter().map(|b| (b.name.as_str(), b.hash.as_str())));
    let content_hash = content_hash(&envelope, Some(&set_hash))?;
    let envelope = serde_json::to_vec(&envelope)?;
    check_len(envelope.len(), "envelope")?;
    Ok(SplitDataprint { envelope, collections: blobs, set_hash: Some(set_hash), content_hash, run })
}

/// The JSON bytes of a collection said to be carried over with `hash`, refused when they are not
/// the bytes of that hash.
fn check_carried(name: &str, value: &Value, hash: &str) -> Result<Vec<u8>> {
    let raw = serde_json::to_vec(value)?;
    if sha256_hex(&raw) != hash {
        return Err(StoreError::InvalidInput(format!(
            "collection {name:?} was said to be reused unchanged from an earlier dataprint, but it differs from it"
        )));
    }
    Ok(raw)
}

/// The content identity of a dataprint: its envelope without the `run`
/// member, where that member was (the workspace's maps are sorted, so the
/// position only matters if a caller ever builds with `preserve_order`;
/// hashing it keeps every stored document rebuildable exactly), and its
/// collection set.
fn content_hash(envelope: &Value, set_hash: Option<&str>) -> Result<Vec<u8>> {
    let mut hasher = Sha256::new();
    hasher.update(b"tenantscope.dataprint-content/v1\n");
    let (without_run, position) = match envelope.as_object() {
        Some(top) if top.contains_key(RUN) => {
            let position = top.keys().position(|k| k == RUN).unwrap_or_default() as u64;
            let rest: serde_json::Map<String, Value> =
                top.iter().filter(|(k, _)| *k != RUN).map(|(k, v)| (k.clone(), v.clone())).collect();
            (serde_json::to_vec(&Value::Object(rest))?, position)
        }
        _ => (serde_json::to_vec(envelope)?, u64::MAX),
    };
    hasher.update((without_run.len() as u64).to_be_bytes());
    hasher.update(&without_run);
    hasher.update(position.to_be_bytes());
    match set_hash {
        Some(set) => {
            hasher.update([1]);
            hasher.update(set.as_bytes());
        }
        None => hasher.update([0]),
    }
    Ok(hasher.finalize().to_vec())
}

/// The `run` member of a stored envelope, decompressed and parsed: the
/// reference that per-run deltas are relative to.
pub(crate) fn envelope_run(envelope_z: &[u8], envelope_len: i64, dataprint_id: &str) -> Result<Option<Value>> {
    let raw = decompress(envelope_z, envelope_len, &format!("dataprint {dataprint_id} envelope"))?;
    let mut doc: Value = serde_json::from_slice(&raw)
        .map_err(|err| StoreError::corrupt(format!("dataprint {dataprint_id}: invalid envelope JSON: {err}")))?;
    Ok(doc.as_object_mut().and_then(|top| top.remove(RUN)))
}

fn check_len(len: usize, what: &str) -> Result<()> {
    if len > MAX_RAW_LEN {
        return Err(StoreError::InvalidInput(format!(
            "dataprint part {what:?} is {len} bytes, more than the {MAX_RAW_LEN} the store accepts"
        )));
    }
    Ok(())
}

/// The hash of a collection set: independent of the order of the pairs
/// (the envelope keeps the order), unambiguous through length prefixes.
pub(crate) fn set_hash<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut pairs: Vec<(&str, &str)> = pairs.collect();
    pairs.sort_unstable();
    let mut hasher = Sha256::new();
    hasher.update(b"tenantscope.collection-set/v1");
    for (name, hash) in pairs {
        hasher.update((name.len() as u64).to_be_bytes());
        hasher.update(name.as_bytes());
        hasher.update((hash.len() as u64).to_be_bytes());
        hasher.update(hash.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// Checks that a decompressed blob matches its hash and parses it.
pub(crate) fn parse_blob(raw: &[u8], hash: &str) -> Result<Value> {
    if sha256_hex(raw) != hash {
        return Err(StoreError::corrupt(format!("blob {hash}: content does not match its hash")));
    }
    serde_json::from_slice(raw).map_err(|err| StoreError::corrupt(format!("blob {hash}: invalid JSON: {err}")))
}

/// A collection (an object of elements by id) with each element that is an object keeping only the
/// members named in `fields`, each whole; what is not an object stays as it is.
pub fn project_collection(mut collection: Value, fields: &[String]) -> Value {
    if let Some(elements) = collection.as_object_mut() {
        for element in elements.values_mut() {
            if let Some(members) = element.as_object_mut() {
                members.retain(|name, _| fields.iter().any(|f| f == name));
            }
        }
    }
    collection
}

/// Checks that a decompressed collection matches its hash and parses it with each element that is
/// an object keeping only the members named in `fields` ([`project_collection`]): the
/// members left out are read past, never built.
pub(crate) fn parse_projected(raw: &[u8], hash: &str, fields: &[String]) -> Result<Value> {
    use serde::de::DeserializeSeed;
    if sha256_hex(raw) != hash {
        return Err(StoreError::corrupt(format!("blob {hash}: content does not match its hash")));
    }
    let invalid = |err: serde_json::Error| StoreError::corrupt(format!("blob {hash}: invalid JSON: {err}"));
    let mut de = serde_json::Deserializer::from_slice(raw);
    let value = Projected { fields, depth: 0 }.deserialize(&mut de).map_err(invalid)?;
    de.end().map_err(invalid)?;
    Ok(value)
}

/// A value parsed as [`parse_projected`] parses a collection: at depth 0 the collection, at depth 1
/// an element (projected when it is an object), deeper a value kept whole.
struct Projected<'f> {
    fields: &'f [String],
    depth: u8,
}

impl<'de> serde::de::DeserializeSeed<'de> for Projected<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> std::result::Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Projected<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> std::result::Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> std::result::Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> std::result::Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> std::result::Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Value>()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> std::result::Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        if self.depth == 0 {
            // Elements, under their ids.
            while let Some(key) = map.next_key::<String>()? {
                let element = map.next_value_seed(Projected { fields: self.fields, depth: 1 })?;
                out.insert(key, element);
            }
        } else {
            // An element's members: a name is compared where it lies in the input, and owned only
            // when the member is kept.
            while let Some(key) = map.next_key_seed(Member(self.fields))? {
                match key {
                    Some(key) => {
                        out.insert(key, map.next_value::<Value>()?);
                    }
                    None => {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
            }
        }
        Ok(Value::Object(out))
    }
}

/// A member's name in [`parse_projected`]: the name when it is one of the fields kept.
struct Member<'f>(&'f [String]);

impl<'de> serde::de::DeserializeSeed<'de> for Member<'_> {
    type Value = Option<String>;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> std::result::Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Member<'_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a member's name")
    }

    fn visit_str<E>(self, v: &str) -> std::result::Result<Option<String>, E> {
        Ok(self.0.iter().any(|f| f == v).then(|| v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> std::result::Result<Option<String>, E> {
        Ok(self.0.contains(&v).then_some(v))
    }
}

/// Rebuilds a dataprint from its envelope and, when it was split, the
/// parsed collections by name.
pub(crate) fn reassemble(
    dataprint_id: &str,
    envelope_raw: &[u8],
    members: Option<HashMap<String, Value>>,
) -> Result<Value> {
    let mut doc: Value = serde_json::from_slice(envelope_raw)
        .map_err(|err| StoreError::corrupt(format!("dataprint {dataprint_id}: invalid envelope JSON: {err}")))?;
    let Some(mut members) = members else {
        return Ok(doc);
    };
    let corrupt = |what: String| StoreError::corrupt(format!("dataprint {dataprint_id}: {what}"));
    let slots = doc
        .get_mut(COLLECTIONS)
        .and_then(Value::as_object_mut)
        .ok_or_else(|| corrupt("envelope has no collections object".into()))?;
    if slots.len() != members.len() {
        return Err(corrupt(format!("envelope names {} collections but {} are stored", slots.len(), members.len())));
    }
    for (name, slot) in slots.iter_mut() {
        let value = members.remove(name).ok_or_else(|| corrupt(format!("collection {name:?} is missing")))?;
        *slot = value;
    }
    Ok(doc)
}

/// Reassembles a document from its envelope and some of its collections: the slots of the
/// collections not given are removed, so that the document says nothing about them.
pub(crate) fn reassemble_partial(
    dataprint_id: &str,
    envelope_raw: &[u8],
    mut members: HashMap<String, Value>,
) -> Result<Value> {
    let mut doc: Value = serde_json::from_slice(envelope_raw)
        .map_err(|err| StoreError::corrupt(format!("dataprint {dataprint_id}: invalid envelope JSON: {err}")))?;
    let slots = doc
        .get_mut(COLLECTIONS)
        .and_then(Value::as_object_mut)
        .ok_or_else(|| StoreError::corrupt(format!("dataprint {dataprint_id}: envelope has no collections object")))?;
    slots.retain(|name, _| members.contains_key(name));
    for (name, slot) in slots.iter_mut() {
        if let Some(value) = members.remove(name) {
            *slot = value;
        }
    }
    Ok(doc)
}

/// Reassembles a document from its envelope and all its collections but the `unread` ones, whose
/// slots stay `null`; any other collection missing is corruption, as in [`reassemble`].
pub(crate) fn reassemble_unread(
    dataprint_id: &str,
    envelope_raw: &[u8],
    mut members: HashMap<String, Value>,
    unread: &[String],
) -> Result<Value> {
    let mut doc: Value = serde_json::from_slice(envelope_raw)
        .map_err(|err| StoreError::corrupt(format!("dataprint {dataprint_id}: invalid envelope JSON: {err}")))?;
    let corrupt = |what: String| StoreError::corrupt(format!("dataprint {dataprint_id}: {what}"));
    let slots = doc
        .get_mut(COLLECTIONS)
        .and_then(Value::as_object_mut)
        .ok_or_else(|| corrupt("envelope has no collections object".into()))?;
    for (name, slot) in slots.iter_mut() {
        match members.remove(name) {
            Some(value) => *slot = value,
            None if unread.contains(name) => *slot = Value::Null,
            None => return Err(corrupt(format!("collection {name:?} is missing"))),
        }
    }
    if let Some(name) = members.keys().next() {
        return Err(corrupt(format!("collection {name:?} is stored but not named in the envelope")));
    }
    Ok(doc)
}

/// A dataprint ready to be committed: split, with its envelope compressed
/// and the collections the database lacks compressed too.
pub(crate) struct PreparedDataprint {
    /// The split document.
    pub split: SplitDataprint,
    /// The compressed envelope.
    pub envelope_z: Vec<u8>,
    /// Compressed bytes of the collections found absent, by hash.
    pub compressed: HashMap<String, Vec<u8>>,
}

impl PreparedDataprint {
    /// The compressed bytes of a collection: prepared ones if any, else
    /// compressed now (a blob that was pruned between the check and the
    /// transaction). A carried collection has no bytes of its own: it is serialised from `doc`,
    /// the document being committed, and must still have its claimed hash.
    pub(crate) fn compressed(&self, blob: &CollectionBlob, doc: Option<&Value>) -> Result<Vec<u8>> {
        if let Some(bytes) = self.compressed.get(&blob.hash) {
            return Ok(bytes.clone());
        }
        if !blob.carried {
            return Ok(compress(&blob.raw));
        }
        let value = doc
            .and_then(|d| d.get(COLLECTIONS))
            .and_then(|c| c.get(&blob.name))
            .ok_or_else(|| StoreError::Internal(format!("collection {:?} is not in the document", blob.name)))?;
        if value.is_null() {
            return Err(StoreError::InvalidInput(format!(
                "collection {:?} was carried unread from an earlier dataprint whose blob is gone (pruned \
                 meanwhile); inspect the tenant again",
                blob.name
            )));
        }
        Ok(compress(&check_carried(&blob.name, value, &blob.hash)?))
    }
}

/// Compresses the envelope and the named collections on the blocking pool,
/// so that a large tenant does not stall the async workers (and, in SQLite,
/// so the work is done before the write lock is taken).
pub(crate) async fn prepare(mut split: SplitDataprint, missing: Vec<String>) -> Result<PreparedDataprint> {
    tokio::task::spawn_blocking(move || {
        let envelope_z = compress(&split.envelope);
        let mut compressed = HashMap::with_capacity(missing.len());
        for hash in missing {
            // A carried collection's blob is stored; one pruned meanwhile is serialised again from
            // the document when it is inserted.
            if let Some(blob) = split.collections.iter_mut().find(|c| c.hash == hash && !c.carried) {
                compressed.insert(hash, compress(&blob.raw));
                // Only the compressed bytes are written; a large tenant's JSON would otherwise be held
                // twice until its transaction ends, by every tenant waiting for the writer.
                blob.raw = Vec::new();
            }
        }
        PreparedDataprint { split, envelope_z, compressed }
    })
    .await
    .map_err(|err| StoreError::Internal(format!("compression task failed: {err}")))
}

/// Compresses just the envelope, on the current thread; collections are
/// compressed on demand by [`PreparedDataprint::compressed`]. For the rare
/// commit that finds, inside its transaction, that it must store a
/// dataprint it expected to confirm.
pub(crate) fn prepare_now(split: SplitDataprint) -> PreparedDataprint {
    let envelope_z = compress(&split.envelope);
    PreparedDataprint { split, envelope_z, compressed: HashMap::new() }
}

/// A stored collection as read from the database.
pub(crate) struct StoredMember {
    /// Collection name.
    pub name: String,
    /// Blob hash.
    pub hash: String,
    /// Uncompressed length.
    pub raw_len: i64,
    /// Compressed bytes.
    pub data: Vec<u8>,
}

/// A stored dataprint as read from the database.
pub(crate) struct StoredDataprint {
    /// Its id, for error messages.
    pub id: String,
    /// The compressed envelope.
    pub envelope_z: Vec<u8>,
    /// The envelope's uncompressed length.
    pub envelope_len: i64,
    /// The collections, when the document was split.
    pub members: Option<Vec<StoredMember>>,
}

/// Which collections [`load`] was given, and what it does with the slots of the others.
#[derive(Debug, Clone)]
pub(crate) enum Pick {
    All,
    /// Only these were read; the other slots are removed, also when the document was stored whole.
    Only(Vec<String>),
    /// These were not read; their slots stay `null`.
    Unread(Vec<String>),
}

/// Decompresses, verifies and reassembles a stored dataprint on the blocking pool, with the
/// collections `pick` says were read.
pub(crate) async fn load(stored: StoredDataprint, pick: Pick) -> Result<Value> {
    tokio::task::spawn_blocking(move || {
        let envelope =
            decompress(&stored.envelope_z, stored.envelope_len, &format!("dataprint {} envelope", stored.id))?;
        let members = match stored.members {
            None => None,
            Some(list) => {
                let mut map = HashMap::with_capacity(list.len());
                for member in list {
                    let what = format!("blob {}", member.hash);
                    let raw = decompress(&member.data, member.raw_len, &what)?;
                    map.insert(member.name, parse_blob(&raw, &member.hash)?);
                }
                Some(map)
            }
        };
        match (pick, members) {
            (Pick::Only(_), Some(members)) => reassemble_partial(&stored.id, &envelope, members),
            (Pick::Unread(names), Some(members)) => reassemble_unread(&stored.id, &envelope, members, &names),
            (Pick::Only(names), None) => {
                let mut doc = reassemble(&stored.id, &envelope, None)?;
                if let Some(all) = doc.get_mut(COLLECTIONS).and_then(Value::as_object_mut) {
                    all.retain(|name, _| names.contains(name));
                }
                Ok(doc)
            }
            // A document stored whole has its collections in its envelope, read already.
            (Pick::All | Pick::Unread(_), members) => reassemble(&stored.id, &envelope, members),
        }
    })
    .await
    .map_err(|err| StoreError::Internal(format!("decompression task failed: {err}")))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn compression_round_trip_and_length_check() {
        let raw = b"{\"a\":1,\"b\":[1,2,3]}".repeat(100);
        let packed = compress(&raw);
        assert!(packed.len() < raw.len());
        assert_eq!(decompress(&packed, raw.len() as i64, "t").expect("ok"), raw);
        assert!(decompress(&packed, raw.len() as i64 - 1, "t").is_err());
        assert!(decompress(&packed, -1, "t").is_err());
        assert!(decompress(b"garbage", 7, "t").is_err());
        assert!(packed.starts_with(&ZSTD_MAGIC));
        // A frame cut short, or with a byte flipped, is refused (the frame's checksum), never
        // returned as other content.
        assert!(decompress(&packed[..packed.len() - 1], raw.len() as i64, "t").is_err());
        let mut flipped = packed.clone();
        let middle = flipped.len() / 2;
        flipped[middle] ^= 0x40;
        assert!(decompress(&flipped, raw.len() as i64, "t").is_err());
        // A frame that holds more than the stored length says is refused without inflating it all.
        assert!(decompress(&compress(&vec![b' '; 1 << 20]), 10, "t").is_err());
        // Empty content round-trips.
        assert_eq!(decompress(&compress(b""), 0, "t").expect("empty"), b"");
    }

    #[test]
    fn blobs_written_with_zlib_before_zstd_still_read() {
        let raw = b"{\"id\":\"u1\",\"displayName\":\"Adele\"}".repeat(50);
        let old = zlib_compress(&raw);
        assert!(!old.starts_with(&ZSTD_MAGIC));
        assert_eq!(decompress(&old, raw.len() as i64, "t").expect("zlib"), raw);
        assert!(decompress(&old, raw.len() as i64 + 1, "t").is_err());
        assert!(decompress(&old[..old.len() - 2], raw.len() as i64, "t").is_err());
    }

    #[test]
    fn a_carried_collection_keeps_its_identity_and_is_serialised_only_when_missing() {
        let doc = json!({
            "collections": {"users": {"b": {"displayName": "B", "id": "b"}}, "domains": {"d": {"id": "d"}}},
            "run": {"id": "r1"},
        });
        let plain = split(&doc).expect("split");
        let users = plain.collections.iter().find(|c| c.name == "users").expect("users");
        let known: Known = [("users".to_string(), (users.hash.clone(), users.raw_len))].into();
        let carried = split_with(&doc, &known, &[]).expect("split");
        assert_eq!(carried.content_hash, plain.content_hash);
        assert_eq!(carried.set_hash, plain.set_hash);
        let prepared = prepare_now(carried);
        let blob = prepared.split.collections.iter().find(|c| c.name == "users").expect("users");
        assert!(blob.carried && blob.raw.is_empty() && blob.raw_len == users.raw_len);

        // A carried blob pruned before its commit is serialised again from the document, and must
        // still be what was claimed.
        let packed = prepared.compressed(blob, Some(&doc)).expect("compressed");
        assert_eq!(decompress(&packed, users.raw_len as i64, "t").expect("inflate"), users.raw);
        let mut changed = doc.clone();
        changed["collections"]["users"]["b"]["displayName"] = json!("C");
        assert!(matches!(prepared.compressed(blob, Some(&changed)), Err(StoreError::InvalidInput(_))));
        assert!(prepared.compressed(blob, None).is_err());

        // A claim that does not hold is refused when debug assertions check it.
        let wrong: Known = [("domains".to_string(), (users.hash.clone(), users.raw_len))].into();
        assert_eq!(split_with(&doc, &wrong, &[]).is_err(), cfg!(debug_assertions));
    }

    #[test]
    fn a_collection_given_as_bytes_splits_as_it_would_in_the_document() {
        let doc = json!({"schema": "s", "collections": {"users": {"b": {"id": "b"}}, "devices": {"d": {"id": "d"}}}});
        let whole = split(&doc).expect("split");
        let mut holed = doc.clone();
        holed["collections"]["devices"] = Value::Null;
        let bytes =
            |name: &str, json: &str| UnparsedCollection { name: name.into(), json: json.as_bytes().to_vec().into() };
        let given = split_with(&holed, &Known::new(), &[bytes("devices", r#"{"d":{"id":"d"}}"#)]).expect("split");
        assert_eq!(given.content_hash, whole.content_hash);
        assert_eq!(given.envelope, whole.envelope);
        let pairs = |s: &SplitDataprint| {
            s.collections.iter().map(|c| (c.name.clone(), c.hash.clone(), c.raw.clone())).collect::<Vec<_>>()
        };
        assert_eq!(pairs(&given), pairs(&whole));
        // Bytes with no empty place for them, or a place that holds the collection, are refused.
        for name in ["groups", "users"] {
            let err = split_with(&holed, &Known::new(), &[bytes(name, "{}")]).err();
            assert!(matches!(err, Some(StoreError::InvalidInput(_))), "{name}: {err:?}");
        }
        let not_json = split_with(&holed, &Known::new(), &[bytes("devices", "{")]).err();
        assert_eq!(matches!(not_json, Some(StoreError::InvalidInput(_))), cfg!(debug_assertions));
    }

    #[test]
    fn split_and_reassemble_is_byte_exact() {
        let doc = json!({
            "schema": "tenantscope.dataprint/1",
            "collections": {"users": {"b": {"id": "b", "displayName": "B"}}, "domains": {}},
            "zz_after": [1, 2.5, "x"],
        });
        let split = split(&doc).expect("split");
        assert_eq!(split.collections.len(), 2);
        let members =
            split.collections.iter().map(|c| (c.name.clone(), parse_blob(&c.raw, &c.hash).expect("blob"))).collect();
        let back = reassemble("d", &split.envelope, Some(members)).expect("reassemble");
        assert_eq!(serde_json::to_string(&back).expect("json"), serde_json::to_string(&doc).expect("json"));
    }

    #[test]
    fn sorted_collection_hashes_as_its_canonical_json() {
        let doc = json!({"collections": {"users": {"a": {"id": "a", "x": 1}}}});
        let split = split(&doc).expect("split");
        assert_eq!(split.collections[0].hash, sha256_hex(br#"{"a":{"id":"a","x":1}}"#));
    }

    #[test]
    fn documents_without_collections_are_kept_whole() {
        for doc in [json!({"status": "failed"}), json!({"collections": {}}), json!([1, 2])] {
            let split = split(&doc).expect("split");
            assert!(split.set_hash.is_none());
            let back = reassemble("d", &split.envelope, None).expect("back");
            assert_eq!(back, doc);
        }
    }

    #[test]
    fn content_identity_ignores_only_the_run_member() {
        let a = json!({"schema": "s", "run": {"id": "1"}, "status": "ok", "collections": {"users": {"u": {}}}});
        let b = json!({"schema": "s", "run": {"id": "2", "extra": [1]}, "status": "ok", "collections": {"users": {"u": {}}}});
        let other = json!({"schema": "s", "run": {"id": "1"}, "status": "ok", "collections": {"users": {"v": {}}}});
        let no_run = json!({"schema": "s", "status": "ok", "collections": {"users": {"u": {}}}});
        let hash = |doc: &Value| split(doc).expect("split").content_hash;
        assert_eq!(hash(&a), hash(&b));
        assert_eq!(split(&a).expect("split").run, Some(json!({"id": "1"})));
        for different in [&other, &no_run] {
            assert_ne!(hash(&a), hash(different));
        }
        assert_eq!(hash(&json!({"run": 1})), hash(&json!({"run": 2})));
        assert_ne!(hash(&json!([1])), hash(&json!([2])));
        let split_a = split(&a).expect("split");
        let run = envelope_run(&compress(&split_a.envelope), split_a.envelope.len() as i64, "d").expect("run");
        assert_eq!(run, Some(json!({"id": "1"})));
    }

    #[test]
    fn set_hash_ignores_order_but_not_content() {
        let a = set_hash([("u", "1"), ("d", "2")].into_iter());
        let b = set_hash([("d", "2"), ("u", "1")].into_iter());
        let c = set_hash([("d", "2"), ("u", "3")].into_iter());
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn a_projected_collection_keeps_only_the_named_members_of_each_element() {
        let collection = json!({
            "u1": {"id": "u1", "accountEnabled": true, "signInActivity": {"lastSignInDateTime": "x"}, "big": [1, {"a": 2}]},
            "u2": {"id": "u2", "displayName": "Two", "accountEnabled": false, "accountEnabled2": 1},
            "odd": [1, {"accountEnabled": 2, "other": 3}],
            "none": null,
            "n": -3.5,
            "s": "text é \"quoted\""
        });
        let fields = vec!["accountEnabled".to_string(), "signInActivity".to_string()];
        let raw = serde_json::to_vec(&collection).expect("json");
        let parsed = parse_projected(&raw, &sha256_hex(&raw), &fields).expect("parsed");
        assert_eq!(parsed, project_collection(collection.clone(), &fields));
        assert_eq!(
            parsed,
            json!({
                "u1": {"accountEnabled": true, "signInActivity": {"lastSignInDateTime": "x"}},
                "u2": {"accountEnabled": false},
                "odd": [1, {"accountEnabled": 2, "other": 3}],
                "none": null,
                "n": -3.5,
                "s": "text é \"quoted\""
            })
        );
        // Without fields, every element is an empty object; what is not a collection is kept whole.
        assert_eq!(
            parse_projected(b"{\"u\": {\"a\": 1}}", &sha256_hex(b"{\"u\": {\"a\": 1}}"), &[]).expect("parsed"),
            json!({"u": {}})
        );
        assert_eq!(parse_projected(b"[1, 2]", &sha256_hex(b"[1, 2]"), &fields).expect("parsed"), json!([1, 2]));
        // Another hash, JSON cut short, or something after it: corrupt, as a whole parse says.
        assert!(matches!(parse_projected(&raw, "00", &fields), Err(StoreError::Corrupt { .. })));
        for bad in [&b"{\"u1\": {\"a\": 1"[..], b"{} x", b"{\"u1\": {\"a\": tru}}"] {
            assert!(
                matches!(parse_projected(bad, &sha256_hex(bad), &fields), Err(StoreError::Corrupt { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn tampered_blob_is_corrupt() {
        let raw = br#"{"a":1}"#;
        let hash = sha256_hex(raw);
        assert!(parse_blob(br#"{"a":2}"#, &hash).is_err());
        assert!(reassemble("d", b"not json", None).is_err());
    }
}
