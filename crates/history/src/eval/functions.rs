//! The functions of the evaluator: the name table, the arity and argument
//! type checks that mirror the `jmespath` crate's signatures, and the calls
//! themselves, including the extras (see [`EXTRA_FUNCTIONS`]) and the fast
//! reading of Graph's times they rely on.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};

use serde_json::{Number, Value};

use super::compile::Node;
use super::values::{Kind, Val, equal, object_entries, order};
use super::{Ctx, EvalError};
use crate::dataprint::parse_time;

/// The functions this crate adds to standard JMESPath.
pub const EXTRA_FUNCTIONS: &[&str] =
    &["days_since", "days_until", "to_epoch", "unique", "add", "sub", "mul", "div", "round", "split"];

const SECONDS_PER_DAY: i64 = 86_400;

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
    /// The function of a name, if there is one.
    pub(super) fn from_name(name: &str) -> Option<Func> {
        FUNCTIONS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
    }

    fn name(self) -> &'static str {
        FUNCTIONS.iter().find(|(_, f)| *f == self).map_or("?", |(n, _)| n)
    }

    /// The number of arguments: fixed, or at least one for the variadic
    /// `merge` and `not_null`.
    pub(super) fn arity(self) -> (usize, bool) {
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

impl Ctx {
    /// Calls a function with its evaluated arguments: the first two, then
    /// the rest of a variadic call.
    #[inline(never)]
    pub(super) fn call<'a>(
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

pub(super) fn type_error(func: Func, position: usize, expected: &str, got: &Val<'_>) -> EvalError {
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

/// `length()` of a document value, or `None` for a value that has none
/// (an error the evaluator reports).
pub(super) fn length_of(v: &Value) -> Option<f64> {
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
pub(super) fn days_between(func: Func, text: &str, now: Option<i64>) -> Option<f64> {
    epoch_seconds(text).zip(now).map(|(t, now)| {
        let seconds = if func == Func::DaysSince { now - t } else { t - now };
        #[allow(clippy::cast_precision_loss)]
        let days = seconds.div_euclid(SECONDS_PER_DAY) as f64;
        days
    })
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
