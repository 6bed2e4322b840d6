//! The per-run part of a tenant result, kept for every run in a few dozen
//! bytes.
//!
//! An unchanged tenant produces the same dataprint content and the same
//! collector outcomes run after run, and those are stored once (see
//! `blob.rs` and `result.rs`). What differs from run to run is the
//! dataprint's `run` member (run id, times, per-collector durations, request
//! counts, fetch modes, `collected_at` times), the outcomes' `requests`
//! and `duration_ms`, and when the tenant's inspection started. This module
//! encodes exactly that, losslessly:
//!
//! - the start, as microseconds before the tenant run's `finished_at` (a
//!   column of its own, because queries order by it), in about 3 bytes
//!   where a timestamp column takes 8;
//! - the `run` member is written as a leaf-by-leaf **delta** against the
//!   `run` member of the stored dataprint the tenant run points to (the
//!   first run that produced that content). A bitmap says which leaves
//!   changed; a changed integer is the difference from the reference, a
//!   changed RFC 3339 timestamp the difference from the reference minus the
//!   shift of the previous timestamp (so a run one day later costs only the
//!   jitter), and a changed string that equals the tenant run's own run id,
//!   one of the format's documented values (fetch modes, auth kinds), or a
//!   string already written in the same delta, one byte. Anything else is
//!   written as JSON, so every document round-trips byte for byte;
//! - each outcome figure is *predicted* from this run's `run` member, where
//!   the producer writes the same figures (`run.collectors.<collector>.
//!   requests` and `.duration_ms`), and written as a zigzag varint only when
//!   there is no prediction or it is wrong.
//!
//! Layout (format 0):
//!
//! ```text
//! header    u8: bits 0-1 run kind (0 none, 1 same as reference, 2 delta,
//!           3 JSON), bit 2 JSON compressed, bit 3 every available
//!           prediction holds, bit 4 per-outcome prediction flags follow
//!           the run part; bits 5-7 zero (a later format sets them)
//! elapsed   zigzag varint: microseconds from the start to `finished_at`
//! run part  kind 2: bitmap (its length follows from the reference and its
//!           own container bits), values; kind 3: varint length and JSON
//!           text, or varint raw length, varint length and compressed data when
//!           compressed
//! [flags]   with bit 4: 2 bits per outcome (requests, duration_ms hold)
//! figures   varints for the figures not predicted
//! ```

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

use crate::blob::{compress, decompress};
use crate::error::{Result, StoreError};

const KIND_NONE: u8 = 0;
const KIND_SAME: u8 = 1;
const KIND_DELTA: u8 = 2;
const KIND_JSON: u8 = 3;
const KIND_MASK: u8 = 0b11;
const COMPRESSED: u8 = 0b100;
const ALL_PREDICTED: u8 = 0b1000;
const FLAGGED: u8 = 0b1_0000;
const KNOWN_BITS: u8 = 0b1_1111;

/// What a tenant run's `run` delta is relative to, besides the reference
/// `run` member.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context<'a> {
    /// The tenant run's run id, which the document's `run.id` normally is.
    pub run_id: &'a str,
    /// Microseconds from the reference dataprint's `taken_at` to this
    /// tenant run's `finished_at`: how far every timestamp of an unchanged
    /// run is expected to have moved.
    pub shift_micros: i64,
}

/// One outcome's per-run figures: `(requests, duration_ms)`.
pub(crate) type Numbers = (i64, i64);

/// A decoded per-run part.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Decoded {
    /// Microseconds from the tenant run's start to its `finished_at`.
    pub elapsed_micros: i64,
    /// The figures of each outcome, in outcome order.
    pub numbers: Vec<Numbers>,
    /// This run's `run` member, when one is kept.
    pub run: Option<Value>,
}

/// Whether decoding needs the reference `run` member (the stored
/// dataprint's), so that readers load the envelope only when it does.
pub(crate) fn needs_reference(bytes: &[u8]) -> bool {
    bytes.first().is_some_and(|h| matches!(h & KIND_MASK, KIND_SAME | KIND_DELTA))
}

/// Reads only the elapsed time, for listings that need a tenant run's
/// start but not its figures.
pub(crate) fn elapsed_micros(bytes: &[u8], run_id: &str) -> Result<i64> {
    let mut reader = Reader { bytes, at: 0 };
    match (reader.byte(), reader.varint()) {
        (Some(header), Some(elapsed)) if header & !KNOWN_BITS == 0 => Ok(unzigzag(elapsed)),
        _ => Err(StoreError::corrupt(format!("per-run data of run {run_id}: unknown format or truncated"))),
    }
}

/// Encodes the start, the figures of the outcomes (named by `collectors`,
/// in order) and this run's `run` member against `reference`.
pub(crate) fn encode(
    elapsed_micros: i64,
    numbers: &[Numbers],
    collectors: &[&str],
    run: Option<&Value>,
    reference: Option<&Value>,
    ctx: &Context<'_>,
) -> Result<Vec<u8>> {
    debug_assert_eq!(numbers.len(), collectors.len());
    let mut out = vec![0u8];
    put_varint(&mut out, zigzag(elapsed_micros));
    out[0] = match (run, reference) {
        (None, _) => KIND_NONE,
        (Some(run), Some(reference)) if serde_json::to_vec(run)? == serde_json::to_vec(reference)? => KIND_SAME,
        (Some(run), reference) => {
            let delta = match reference {
                Some(reference) => Some(encode_delta(reference, run, ctx)?),
                None => None,
            };
            // The delta wins whenever it is no longer than the plain JSON,
            // which spares compressing the member on every commit.
            let raw = serde_json::to_vec(run)?;
            match delta {
                Some(delta) if delta.len() <= raw.len() => {
                    out.extend_from_slice(&delta);
                    KIND_DELTA
                }
                _ => KIND_JSON | json_part(raw, &mut out),
            }
        }
    };

    // Which figures the run member predicts correctly.
    let predictions: Vec<(Option<i64>, Option<i64>)> = collectors.iter().map(|name| predict(run, name)).collect();
    let holds = |actual: i64, predicted: Option<i64>| predicted == Some(actual);
    let all_hold = numbers.iter().zip(&predictions).all(|(&(requests, duration), &(p_requests, p_duration))| {
        (p_requests.is_none() || holds(requests, p_requests)) && (p_duration.is_none() || holds(duration, p_duration))
    });
    let any_hold = numbers.iter().zip(&predictions).any(|(&(requests, duration), &(p_requests, p_duration))| {
        holds(requests, p_requests) || holds(duration, p_duration)
    });
    let used: Vec<(bool, bool)> = if all_hold {
        out[0] |= ALL_PREDICTED;
        predictions.iter().map(|(r, d)| (r.is_some(), d.is_some())).collect()
    } else if any_hold {
        out[0] |= FLAGGED;
        let mut flags = BitWriter::default();
        let used: Vec<(bool, bool)> = numbers
            .iter()
            .zip(&predictions)
            .map(|(&(requests, duration), &(p_requests, p_duration))| {
                (holds(requests, p_requests), holds(duration, p_duration))
            })
            .collect();
        for &(a, b) in &used {
            flags.push(a);
            flags.push(b);
        }
        out.extend_from_slice(&flags.bytes);
        used
    } else {
        vec![(false, false); numbers.len()]
    };
    for (&(requests, duration), &(requests_predicted, duration_predicted)) in numbers.iter().zip(&used) {
        if !requests_predicted {
            put_varint(&mut out, zigzag(requests));
        }
        if !duration_predicted {
            put_varint(&mut out, zigzag(duration));
        }
    }
    Ok(out)
}

/// Decodes what [`encode`] wrote, given the same outcome collectors,
/// reference and context.
pub(crate) fn decode(
    bytes: &[u8],
    collectors: &[&str],
    reference: Option<&Value>,
    ctx: &Context<'_>,
) -> Result<Decoded> {
    let corrupt = |what: &str| StoreError::corrupt(format!("per-run data of run {}: {what}", ctx.run_id));
    let mut reader = Reader { bytes, at: 0 };
    let header = reader.byte().ok_or_else(|| corrupt("empty"))?;
    if header & !KNOWN_BITS != 0 || header & (ALL_PREDICTED | FLAGGED) == (ALL_PREDICTED | FLAGGED) {
        return Err(corrupt("unknown format"));
    }
    let elapsed_micros = unzigzag(reader.varint().ok_or_else(|| corrupt("truncated"))?);
    let run = match header & KIND_MASK {
        KIND_NONE => None,
        KIND_SAME => Some(reference.cloned().ok_or_else(|| corrupt("the reference run member is missing"))?),
        KIND_DELTA => {
            let reference = reference.ok_or_else(|| corrupt("the reference run member is missing"))?;
            Some(decode_delta(reference, &mut reader, ctx).map_err(|what| corrupt(&what))?)
        }
        _ => {
            let json = if header & COMPRESSED != 0 {
                let raw_len = reader.varint().ok_or_else(|| corrupt("truncated"))?;
                let raw_len = i64::try_from(raw_len).map_err(|_| corrupt("invalid length"))?;
                let data = reader.sized().ok_or_else(|| corrupt("truncated"))?;
                decompress(data, raw_len, &format!("run member of run {}", ctx.run_id))?
            } else {
                reader.sized().ok_or_else(|| corrupt("truncated"))?.to_vec()
            };
            Some(serde_json::from_slice(&json).map_err(|err| corrupt(&format!("invalid JSON: {err}")))?)
        }
    };
    let predictions: Vec<(Option<i64>, Option<i64>)> =
        collectors.iter().map(|name| predict(run.as_ref(), name)).collect();
    let used: Vec<(bool, bool)> = if header & ALL_PREDICTED != 0 {
        predictions.iter().map(|(r, d)| (r.is_some(), d.is_some())).collect()
    } else if header & FLAGGED != 0 {
        let flags = reader.take((collectors.len() * 2).div_ceil(8)).ok_or_else(|| corrupt("truncated flags"))?;
        let flag = |index: usize| flags[index / 8] & (1 << (index % 8)) != 0;
        (0..collectors.len()).map(|i| (flag(2 * i), flag(2 * i + 1))).collect()
    } else {
        vec![(false, false); collectors.len()]
    };
    let mut numbers = Vec::with_capacity(collectors.len());
    for (&(p_requests, p_duration), &(requests_predicted, duration_predicted)) in predictions.iter().zip(&used) {
        let mut figure = |predicted: bool, prediction: Option<i64>| -> Result<i64> {
            if predicted {
                prediction.ok_or_else(|| corrupt("a predicted figure is not in the run member"))
            } else {
                reader.varint().map(unzigzag).ok_or_else(|| corrupt("truncated figures"))
            }
        };
        let requests = figure(requests_predicted, p_requests)?;
        let duration = figure(duration_predicted, p_duration)?;
        numbers.push((requests, duration));
    }
    if reader.at != bytes.len() {
        return Err(corrupt("trailing bytes"));
    }
    Ok(Decoded { elapsed_micros, numbers, run })
}

/// The figures the `run` member gives for a collector, where the producer
/// writes them: `run.collectors.<name>.requests` and `.duration_ms`.
fn predict(run: Option<&Value>, collector: &str) -> (Option<i64>, Option<i64>) {
    let entry = run.and_then(|r| r.get("collectors")).and_then(|c| c.get(collector));
    let get = |key: &str| entry.and_then(|e| e.get(key)).and_then(Value::as_i64);
    (get("requests"), get("duration_ms"))
}

/// Writes the run member as JSON, compressed when that is smaller; returns
/// the header bits to add.
fn json_part(raw: Vec<u8>, out: &mut Vec<u8>) -> u8 {
    let packed = compress(&raw);
    if packed.len() + 4 < raw.len() {
        put_varint(out, raw.len() as u64);
        put_varint(out, packed.len() as u64);
        out.extend_from_slice(&packed);
        COMPRESSED
    } else {
        put_varint(out, raw.len() as u64);
        out.extend_from_slice(&raw);
        0
    }
}

// ---- the leaf delta --------------------------------------------------------

/// A non-empty object or array: the nodes the delta descends into.
fn is_container(value: &Value) -> bool {
    match value {
        Value::Object(map) => !map.is_empty(),
        Value::Array(items) => !items.is_empty(),
        _ => false,
    }
}

/// Whether `new` has the same keys (in the same order) or the same length
/// as the container `reference`, so the delta can descend into both.
fn same_container(reference: &Value, new: &Value) -> bool {
    match (reference, new) {
        (Value::Object(a), Value::Object(b)) => a.len() == b.len() && a.keys().zip(b.keys()).all(|(x, y)| x == y),
        (Value::Array(a), Value::Array(b)) => a.len() == b.len(),
        _ => false,
    }
}

fn children<'a>(reference: &'a Value, new: &'a Value) -> Vec<(&'a Value, &'a Value)> {
    match (reference, new) {
        (Value::Object(a), Value::Object(b)) => a.values().zip(b.values()).collect(),
        (Value::Array(a), Value::Array(b)) => a.iter().zip(b.iter()).collect(),
        _ => Vec::new(),
    }
}

fn shapes_match(reference: &Value, new: &Value) -> bool {
    if !is_container(reference) {
        return true;
    }
    same_container(reference, new) && children(reference, new).into_iter().all(|(r, n)| shapes_match(r, n))
}

/// How a changed leaf is coded, chosen from the reference leaf alone so
/// that the decoder makes the same choice.
enum LeafClass {
    /// An integer: the new value is written as its difference.
    Int(i64),
    /// A UTC RFC 3339 timestamp in a known rendering.
    Time(TimeFormat, i128),
    /// Any other string.
    Str,
    /// Anything else: the new value is written as JSON.
    Other,
}

fn classify(reference: &Value) -> LeafClass {
    match reference {
        Value::Number(n) => n.as_i64().map_or(LeafClass::Other, LeafClass::Int),
        Value::String(s) => match parse_time(s) {
            Some((format, t)) => LeafClass::Time(format, t),
            None => LeafClass::Str,
        },
        _ => LeafClass::Other,
    }
}

/// The rendering of a timestamp: digits after the seconds and the zone
/// suffix. Only renderings that chrono reproduces exactly are recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TimeFormat {
    digits: SecondsFormat,
    z: bool,
}

impl TimeFormat {
    /// Nanoseconds per unit of the rendering's precision.
    fn unit_nanos(self) -> i128 {
        match self.digits {
            SecondsFormat::Secs => 1_000_000_000,
            SecondsFormat::Millis => 1_000_000,
            SecondsFormat::Micros => 1_000,
            _ => 1,
        }
    }

    fn render(self, t: i128) -> Option<String> {
        let t = i64::try_from(t).ok()?;
        let at = match self.digits {
            SecondsFormat::Secs => DateTime::<Utc>::from_timestamp(t, 0),
            SecondsFormat::Millis => DateTime::<Utc>::from_timestamp_millis(t),
            SecondsFormat::Micros => DateTime::<Utc>::from_timestamp_micros(t),
            _ => Some(DateTime::<Utc>::from_timestamp_nanos(t)),
        }?;
        Some(at.to_rfc3339_opts(self.digits, self.z))
    }
}

/// Reads a UTC timestamp and its rendering, in units of that rendering's
/// precision; `None` unless rendering it again gives the same text.
fn parse_time(text: &str) -> Option<(TimeFormat, i128)> {
    // Cheap rejection first: most strings are not timestamps.
    let bytes = text.as_bytes();
    if !(20..=35).contains(&bytes.len()) || bytes.get(4) != Some(&b'-') || bytes.get(10) != Some(&b'T') {
        return None;
    }
    let at = DateTime::parse_from_rfc3339(text).ok()?;
    if at.offset().local_minus_utc() != 0 {
        return None;
    }
    let at = at.with_timezone(&Utc);
    let z = text.ends_with('Z');
    for digits in [SecondsFormat::Secs, SecondsFormat::Millis, SecondsFormat::Micros, SecondsFormat::Nanos] {
        let format = TimeFormat { digits, z };
        let t = match digits {
            SecondsFormat::Secs => i128::from(at.timestamp()),
            SecondsFormat::Millis => i128::from(at.timestamp_millis()),
            SecondsFormat::Micros => i128::from(at.timestamp_micros()),
            _ => i128::from(at.timestamp_nanos_opt()?),
        };
        // The round trip also rejects leap seconds and truncated digits.
        if format.render(t).as_deref() == Some(text) {
            return Some((format, t));
        }
    }
    None
}

/// The running timestamp shift, in nanoseconds, shared by encoder and
/// decoder: each timestamp is coded relative to the reference plus the
/// shift of the previous one.
struct Shift(i128);

impl Shift {
    fn expected(&self, format: TimeFormat) -> i128 {
        self.0.div_euclid(format.unit_nanos())
    }

    fn record(&mut self, format: TimeFormat, moved: i128) {
        self.0 = moved * format.unit_nanos();
    }
}

/// The delta is self-delimiting: the decoder knows where it ends from the
/// bit count and the values it reads.
fn encode_delta<'a>(reference: &'a Value, new: &'a Value, ctx: &Context<'a>) -> Result<Vec<u8>> {
    let all_match = shapes_match(reference, new);
    let mut enc = DeltaEncoder {
        bits: BitWriter::default(),
        values: Vec::new(),
        shift: Shift(i128::from(ctx.shift_micros) * 1_000),
        all_match,
        run_id: ctx.run_id,
        strings: KNOWN_STRINGS.to_vec(),
    };
    enc.bits.push(all_match);
    enc.node(reference, new)?;
    let mut out = Vec::with_capacity(enc.bits.bytes.len() + enc.values.len());
    out.extend_from_slice(&enc.bits.bytes);
    out.extend_from_slice(&enc.values);
    Ok(out)
}

struct DeltaEncoder<'a> {
    bits: BitWriter,
    values: Vec<u8>,
    shift: Shift,
    all_match: bool,
    run_id: &'a str,
    /// Strings written so far, which a later leaf can repeat by index.
    strings: Vec<&'a str>,
}

impl<'a> DeltaEncoder<'a> {
    fn node(&mut self, reference: &'a Value, new: &'a Value) -> Result<()> {
        if is_container(reference) {
            if !self.all_match {
                let same = same_container(reference, new);
                self.bits.push(!same);
                if !same {
                    return self.json(new);
                }
            }
            for (r, n) in children(reference, new) {
                self.node(r, n)?;
            }
            return Ok(());
        }
        // Scalars compare by value, which for serde_json numbers includes
        // their kind, so equal leaves serialize identically.
        if leaf_equal(reference, new) {
            self.bits.push(false);
            return Ok(());
        }
        self.bits.push(true);
        match classify(reference) {
            // Heads of integers and timestamps: 0 the escape, n + 1 the
            // zigzagged difference n.
            LeafClass::Int(r) => match new.as_i64().and_then(|n| tagged(i128::from(n) - i128::from(r))) {
                Some(head) => put_varint(&mut self.values, head),
                None => self.escape(new)?,
            },
            LeafClass::Time(format, r) => {
                let parsed = new.as_str().and_then(parse_time).filter(|(f, _)| *f == format);
                match parsed {
                    Some((_, n)) => match tagged(n - r - self.shift.expected(format)) {
                        Some(head) => {
                            put_varint(&mut self.values, head);
                            self.shift.record(format, n - r);
                        }
                        None => self.escape(new)?,
                    },
                    None => self.escape(new)?,
                }
            }
            // Heads: 0 the run id, 1 the escape, 2 + 2n a new string of n
            // bytes, 3 + 2k the k-th string written before.
            LeafClass::Str => match new {
                Value::String(s) if s == self.run_id => put_varint(&mut self.values, 0),
                Value::String(s) => match self.strings.iter().position(|seen| seen == s) {
                    Some(k) => put_varint(&mut self.values, 3 + 2 * k as u64),
                    None => {
                        put_varint(&mut self.values, 2 + 2 * s.len() as u64);
                        self.values.extend_from_slice(s.as_bytes());
                        self.strings.push(s);
                    }
                },
                other => {
                    put_varint(&mut self.values, 1);
                    self.json(other)?;
                }
            },
            LeafClass::Other => self.json(new)?,
        }
        Ok(())
    }

    /// The escape code of an integer or timestamp leaf, then the value as
    /// JSON.
    fn escape(&mut self, value: &Value) -> Result<()> {
        put_varint(&mut self.values, 0);
        self.json(value)
    }

    fn json(&mut self, value: &Value) -> Result<()> {
        let text = serde_json::to_vec(value)?;
        put_varint(&mut self.values, text.len() as u64);
        self.values.extend_from_slice(&text);
        Ok(())
    }
}

/// Equality that distinguishes `{}` from `[]` and compares scalars exactly.
fn leaf_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => x.is_empty() && y.is_empty(),
        (Value::Array(x), Value::Array(y)) => x.is_empty() && y.is_empty(),
        _ => a == b,
    }
}

/// A difference as a varint head (0 is the escape), or `None` when it
/// does not fit.
fn tagged(diff: i128) -> Option<u64> {
    let diff = i64::try_from(diff).ok()?;
    zigzag(diff).checked_add(1)
}

/// Values of the dataprint format's `run` member that a changed leaf often
/// takes (fetch modes, auth kinds): the string table starts with them, so
/// such a value costs one byte even the first time. Part of the format:
/// changing the list changes how stored deltas decode.
const KNOWN_STRINGS: &[&str] = &["full", "delta", "gdap", "app", "direct", "partner"];

/// How many bits the bitmap of a delta against `reference` holds: one per
/// leaf, and one per container unless all shapes match (the first bit),
/// without descending into a container marked as replaced.
fn bitmap_len(reference: &Value, bits: &mut BitReader<'_>) -> Option<usize> {
    fn walk(node: &Value, all_match: bool, bits: &mut BitReader<'_>) -> Option<()> {
        if is_container(node) {
            if !all_match && bits.next()? {
                return Some(());
            }
            match node {
                Value::Object(map) => map.values().try_for_each(|v| walk(v, all_match, bits)),
                Value::Array(items) => items.iter().try_for_each(|v| walk(v, all_match, bits)),
                _ => Some(()),
            }
        } else {
            bits.next().map(|_| ())
        }
    }
    let all_match = bits.next()?;
    walk(reference, all_match, bits)?;
    Some(bits.at)
}

fn decode_delta(reference: &Value, reader: &mut Reader<'_>, ctx: &Context<'_>) -> std::result::Result<Value, String> {
    let rest = &reader.bytes[reader.at..];
    let bit_count =
        bitmap_len(reference, &mut BitReader { bytes: rest, at: 0, len: rest.len() * 8 }).ok_or("truncated bitmap")?;
    let bitmap = reader.take(bit_count.div_ceil(8)).ok_or("truncated bitmap")?;
    let mut dec = DeltaDecoder {
        bits: BitReader { bytes: bitmap, at: 0, len: bit_count },
        values: Reader { bytes: reader.bytes, at: reader.at },
        shift: Shift(i128::from(ctx.shift_micros) * 1_000),
        all_match: false,
        run_id: ctx.run_id,
        strings: KNOWN_STRINGS.iter().map(|s| (*s).to_owned()).collect(),
    };
    dec.all_match = dec.bits.next().ok_or("empty bitmap")?;
    let value = dec.node(reference)?;
    debug_assert_eq!(dec.bits.at, bit_count);
    reader.at = dec.values.at;
    Ok(value)
}

struct DeltaDecoder<'a> {
    bits: BitReader<'a>,
    values: Reader<'a>,
    shift: Shift,
    all_match: bool,
    run_id: &'a str,
    strings: Vec<String>,
}

impl DeltaDecoder<'_> {
    fn node(&mut self, reference: &Value) -> std::result::Result<Value, String> {
        if is_container(reference) {
            if !self.all_match && self.bits.next().ok_or("truncated bitmap")? {
                return self.json();
            }
            return Ok(match reference {
                Value::Object(map) => {
                    let mut out = Map::with_capacity(map.len());
                    for (key, value) in map {
                        out.insert(key.clone(), self.node(value)?);
                    }
                    Value::Object(out)
                }
                Value::Array(items) => Value::Array(items.iter().map(|v| self.node(v)).collect::<Result<_, _>>()?),
                _ => unreachable!("is_container accepts only objects and arrays"),
            });
        }
        if !self.bits.next().ok_or("truncated bitmap")? {
            return Ok(reference.clone());
        }
        match classify(reference) {
            LeafClass::Int(r) => {
                let head = self.values.varint().ok_or("truncated value")?;
                if head == 0 {
                    return self.json();
                }
                let n = i128::from(r) + i128::from(unzigzag(head - 1));
                Ok(Value::from(i64::try_from(n).map_err(|_| "integer out of range")?))
            }
            LeafClass::Time(format, r) => {
                let head = self.values.varint().ok_or("truncated value")?;
                if head == 0 {
                    return self.json();
                }
                let moved = i128::from(unzigzag(head - 1)) + self.shift.expected(format);
                self.shift.record(format, moved);
                Ok(Value::String(format.render(r + moved).ok_or("timestamp out of range")?))
            }
            LeafClass::Str => match self.values.varint().ok_or("truncated value")? {
                0 => Ok(Value::String(self.run_id.to_owned())),
                1 => self.json(),
                head if head % 2 == 1 => {
                    let index = usize::try_from((head - 3) / 2).map_err(|_| "invalid string index")?;
                    Ok(Value::String(self.strings.get(index).ok_or("invalid string index")?.clone()))
                }
                head => {
                    let len = usize::try_from((head - 2) / 2).map_err(|_| "invalid length")?;
                    let raw = self.values.take(len).ok_or("truncated string")?;
                    let text = String::from_utf8(raw.to_vec()).map_err(|_| "invalid UTF-8")?;
                    self.strings.push(text.clone());
                    Ok(Value::String(text))
                }
            },
            LeafClass::Other => self.json(),
        }
    }

    fn json(&mut self) -> std::result::Result<Value, String> {
        let raw = self.values.sized().ok_or("truncated value")?;
        serde_json::from_slice(raw).map_err(|err| format!("invalid JSON: {err}"))
    }
}

// ---- bits and varints ------------------------------------------------------

#[derive(Default)]
struct BitWriter {
    bytes: Vec<u8>,
    len: usize,
}

impl BitWriter {
    fn push(&mut self, bit: bool) {
        if self.len.is_multiple_of(8) {
            self.bytes.push(0);
        }
        if bit {
            let last = self.bytes.len() - 1;
            self.bytes[last] |= 1 << (self.len % 8);
        }
        self.len += 1;
    }
}

struct BitReader<'a> {
    bytes: &'a [u8],
    at: usize,
    len: usize,
}

impl BitReader<'_> {
    fn next(&mut self) -> Option<bool> {
        if self.at >= self.len {
            return None;
        }
        let bit = self.bytes[self.at / 8] & (1 << (self.at % 8)) != 0;
        self.at += 1;
        Some(bit)
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(len)?;
        let slice = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(slice)
    }

    /// A varint length, then that many bytes.
    fn sized(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.varint()?).ok()?;
        self.take(len)
    }

    /// An unsigned LEB128 varint of at most ten bytes.
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CTX: Context<'static> =
        Context { run_id: "01900000-0000-7000-8000-00000000000b", shift_micros: 86_400_000_000 };

    fn run_member(id: &str, day: u32, jitter: i64) -> Value {
        let at = |ms: i64| {
            let base = DateTime::parse_from_rfc3339(&format!("2026-11-{day:02}T12:00:00.000Z")).expect("ts");
            (base + chrono::TimeDelta::milliseconds(ms))
                .with_timezone(&Utc)
                .to_rfc3339_opts(SecondsFormat::Millis, true)
        };
        json!({
            "id": id,
            "started_at": at(0),
            "finished_at": at(7_000 + jitter),
            "auth": "gdap",
            "collectors": {
                "users": {"collected_at": at(180 + jitter), "duration_ms": 180 + jitter, "mode": "delta", "requests": 1},
                "groups": {"collected_at": at(400 + 2 * jitter), "duration_ms": 220 + jitter, "mode": "full", "requests": 2},
            }
        })
    }

    fn round_trip(numbers: &[Numbers], collectors: &[&str], run: Option<&Value>, reference: Option<&Value>) -> usize {
        // Negative when a caller's clock went backwards; kept as given.
        let elapsed = 7_123_456 - numbers.len() as i64 * 3_000_000;
        let bytes = encode(elapsed, numbers, collectors, run, reference, &CTX).expect("encode");
        let back = decode(&bytes, collectors, reference, &CTX).expect("decode");
        assert_eq!(elapsed_micros(&bytes, "r").expect("elapsed"), elapsed);
        assert_eq!(back.elapsed_micros, elapsed);
        assert_eq!(back.numbers, numbers);
        assert_eq!(
            back.run.as_ref().map(|v| serde_json::to_string(v).expect("json")),
            run.map(|v| serde_json::to_string(v).expect("json"))
        );
        bytes.len()
    }

    #[test]
    fn varints_and_zigzag() {
        for value in [0i64, 1, -1, 63, -64, 64, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            put_varint(&mut out, zigzag(value));
            assert_eq!(unzigzag(Reader { bytes: &out, at: 0 }.varint().expect("varint")), value);
        }
        assert_eq!(Reader { bytes: &[0x80; 11], at: 0 }.varint(), None);
    }

    #[test]
    fn timestamps_are_recognised_only_when_exact() {
        assert_eq!(parse_time("2026-11-28T12:00:00Z").map(|(f, _)| f.digits), Some(SecondsFormat::Secs));
        assert_eq!(parse_time("2026-11-28T12:00:00.120Z").map(|(f, _)| f.digits), Some(SecondsFormat::Millis));
        assert_eq!(parse_time("2026-11-28T12:00:00.123456789+00:00").map(|(f, _)| f.z), Some(false));
        for text in ["2026-11-28T12:00:00.1Z", "2026-11-28T12:00:00-00:00", "2026-11-28T13:00:00+01:00", "x"] {
            assert_eq!(parse_time(text), None, "{text}");
        }
    }

    #[test]
    fn an_unchanged_run_costs_a_few_dozen_bytes() {
        let reference = run_member("01900000-0000-7000-8000-00000000000a", 27, 0);
        let run = run_member(CTX.run_id, 28, 37);
        let collectors = ["users", "groups", "signIns"];
        let numbers = [(1, 217), (2, 257), (0, 0)];
        let with_reference = round_trip(&numbers, &collectors, Some(&run), Some(&reference));
        eprintln!("a changed run member with two collectors: {with_reference} bytes");
        assert!(with_reference < 30, "{with_reference} bytes");
        // The first run points at its own member: a header, the elapsed
        // time (4 bytes for seconds in microseconds) and the two figures
        // `signIns` has no prediction for.
        assert_eq!(round_trip(&numbers, &collectors, Some(&run), Some(&run)), 7);
        // A wrong prediction costs flags and the figure.
        round_trip(&[(1, 216), (2, 257), (0, 0)], &collectors, Some(&run), Some(&reference));
        round_trip(&[(9, 9), (9, 9), (0, 0)], &collectors, Some(&run), Some(&reference));
        round_trip(&numbers, &collectors, None, Some(&reference));
        round_trip(&numbers, &collectors, Some(&run), None);
        round_trip(&[], &[], None, None);
    }

    #[test]
    fn any_document_round_trips() {
        let reference = run_member("a", 27, 0);
        let cases = [
            json!({"id": 5, "started_at": null, "auth": ["x"], "collectors": {}}),
            json!({"collectors": {"users": {"duration_ms": 1.5}}, "id": "a"}),
            json!({"id": "x", "started_at": "s", "finished_at": "s", "auth": "x", "collectors": {
                "users": {"collected_at": "s", "duration_ms": 1, "mode": "x", "requests": 1},
                "groups": {"collected_at": "2026-11-28T12:00:00Z", "duration_ms": 1, "mode": "x", "requests": 1}}}),
            json!([1, 2, 3]),
            json!("just a string"),
            json!({"id": "a", "started_at": "2026-11-28T12:00:00Z", "finished_at": "2026-11-28T12:00:07.000+00:00",
                   "auth": "app", "collectors": {"users": {"collected_at": 3, "duration_ms": -9_223_372_036_854_775_808i64,
                   "mode": {"k": "v"}, "requests": 18_446_744_073_709_551_615u64},
                   "groups": {"collected_at": "9999-12-31T23:59:59.999Z", "duration_ms": 0, "mode": "", "requests": 2}}}),
        ];
        for run in &cases {
            round_trip(&[(i64::MIN, i64::MAX)], &["users"], Some(run), Some(&reference));
        }
        // An unusual reference (an empty object, scalars) works too.
        for reference in [json!({}), json!(null), json!([[]]), json!({"a": {}})] {
            round_trip(&[], &[], Some(&json!({"a": [1]})), Some(&reference));
        }
    }

    /// A tiny deterministic generator, so the randomized test needs no
    /// extra dependency and fails reproducibly.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            self.0 >> 33
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn random_leaf(rng: &mut Rng) -> Value {
        match rng.below(11) {
            0 => Value::Null,
            1 => json!(rng.below(2) == 0),
            2 => json!(rng.below(200) as i64 - 100),
            3 => json!(u64::MAX - rng.below(3)),
            4 => json!(i64::MIN + rng.below(3) as i64),
            5 => json!(rng.below(1000) as f64 / 7.0),
            6 => json!(CTX.run_id),
            7 => json!(KNOWN_STRINGS[rng.below(KNOWN_STRINGS.len() as u64) as usize]),
            8 => json!(format!("s{}", rng.below(4))),
            9 => {
                let digits = [SecondsFormat::Secs, SecondsFormat::Millis, SecondsFormat::Micros, SecondsFormat::Nanos];
                let at = DateTime::<Utc>::from_timestamp_nanos(1_790_000_000_000_000_000 + rng.next() as i64 * 1_000);
                json!(at.to_rfc3339_opts(digits[rng.below(4) as usize], rng.below(2) == 0))
            }
            _ => json!({"k": rng.below(3)}),
        }
    }

    /// Changes a value at random: its leaves, its keys and their order,
    /// the length of its arrays, or the whole value.
    fn mutate(value: &Value, rng: &mut Rng) -> Value {
        if rng.below(12) == 0 {
            return random_leaf(rng);
        }
        match value {
            Value::Object(map) => {
                let mut entries: Vec<(String, Value)> = map.iter().map(|(k, v)| (k.clone(), mutate(v, rng))).collect();
                match rng.below(10) {
                    0 => entries.reverse(),
                    1 => {
                        entries.pop();
                    }
                    2 => entries.push((format!("new{}", rng.below(3)), random_leaf(rng))),
                    _ => {}
                }
                Value::Object(entries.into_iter().collect())
            }
            Value::Array(items) => {
                let mut items: Vec<Value> = items.iter().map(|v| mutate(v, rng)).collect();
                if rng.below(8) == 0 {
                    items.push(random_leaf(rng));
                }
                Value::Array(items)
            }
            _ if rng.below(3) == 0 => random_leaf(rng),
            other => other.clone(),
        }
    }

    #[test]
    fn random_changes_round_trip() {
        let mut rng = Rng(42);
        let mut reference = run_member("01900000-0000-7000-8000-00000000000a", 27, 0);
        reference["extra"] = json!([1, "x", {"a": null}, [], {}]);
        for _ in 0..3_000 {
            let run = mutate(&reference, &mut rng);
            let figures = [(rng.below(4) as i64, rng.below(300) as i64), (1, 217)];
            round_trip(&figures, &["users", "groups"], Some(&run), Some(&reference));
            let other_reference = mutate(&reference, &mut rng);
            round_trip(&figures, &["users", "groups"], Some(&run), Some(&other_reference));
        }
    }

    #[test]
    fn damaged_bytes_are_corrupt_not_panics() {
        let reference = run_member("a", 27, 0);
        let run = run_member(CTX.run_id, 28, 5);
        let bytes = encode(9, &[(1, 2)], &["users"], Some(&run), Some(&reference), &CTX).expect("encode");
        for cut in 0..bytes.len() {
            let _ = decode(&bytes[..cut], &["users"], Some(&reference), &CTX);
        }
        assert!(decode(&[0xf0], &[], None, &CTX).is_err());
        assert!(decode(&bytes, &["users"], None, &CTX).is_err());
    }
}
