//! The metric evaluator reads dataprints in place instead of converting them
//! into `jmespath::Variable`s (see `src/eval.rs`). This test holds it to the
//! `jmespath` crate's semantics: on random documents, every expression of a
//! corpus that exercises each construct and standard function must give the
//! same result, or fail in both.

use history::{Metric, Query, evaluate};
use jmespath::Variable;
use proptest::prelude::*;
use serde_json::{Map, Number, Value};

const EXPRESSIONS: &[&str] = &[
    "@",
    "a",
    "a.b",
    "a.b.c",
    "a[0]",
    "a[-1]",
    "a[0][0]",
    "a[1:3]",
    "a[::-1]",
    "a[::2]",
    "a[-2:]",
    "a[*].b",
    "a[].b",
    "a[].b[]",
    "*",
    "*.b",
    "a.*",
    "a[*].*",
    "[a, b][]",
    "a[?b]",
    "a[?!b]",
    "a[?b == `1`]",
    "a[?b != 'x']",
    "a[?b > `1`]",
    "a[?b <= `1.5`]",
    "a[?b < c]",
    "a[?b == c]",
    "a[?b && c]",
    "a[?b || c]",
    "a[?b.c == `true`]",
    "a[?length(@) > `1`]",
    "a[?contains(@, 'x')]",
    "a && b",
    "a || b",
    "!a",
    "a == b",
    "a < b",
    "`[1, 2]` == a",
    "a == `2.0`",
    "[a, b]",
    "{x: a, y: b}",
    "a | b",
    "a[0].b | c",
    "values(@)[?b]",
    "length(values(@)[?b == `true`])",
    "length(a[?b])",
    "length(a[*].b)",
    "length(a)",
    "length(@)",
    "keys(@)",
    "values(@)",
    "keys(a)",
    "values(a)",
    "sort(a)",
    "sort_by(a, &b)",
    "max_by(a, &b)",
    "min_by(a, &b)",
    "max(a)",
    "min(a)",
    "sum(a)",
    "avg(a)",
    "abs(a)",
    "ceil(a)",
    "floor(a)",
    "contains(a, `1`)",
    "contains(a, 'x')",
    "starts_with(a, 'x')",
    "ends_with(a, 'y')",
    "join(',', a)",
    "map(&b, a)",
    "merge(a, b)",
    "merge(@, a, b)",
    "not_null(a, b, c)",
    "reverse(a)",
    "to_array(a)",
    "to_string(a)",
    "to_string(@)",
    "to_number(a)",
    "type(a)",
    "a[0:1:0]",
    "length(a[?!b])",
    "length(@[?!b])",
    "a[?(b || c) == `1`]",
    "a[?(b && c) == `1`]",
    "a[?(b || c) > `0`]",
    "length(a[?length(b || 'zz') > `1`])",
    "length(a[?length(b && c || 'zz') == `2`])",
    "a[?b.c || c]",
    "length(values(b)[?@ > `1`])",
    "a[?length(b || 'zz') > c]",
    "length(a[?length(@) > `0`])",
    "length(values(@)[?length(@) > `0`])",
    "a[?c < length(b || 'zz')]",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..4).prop_map(Value::from),
        prop::sample::select(vec![1.5f64, -0.5, 2.0, 1e20])
            .prop_map(|f| { Value::Number(Number::from_f64(f).unwrap()) }),
        // Strings that are not JSON documents other than numbers: the
        // crate's to_number parses any JSON, this evaluator only numbers.
        prop::sample::select(vec!["x", "y", "", "xy", "12", "yx"]).prop_map(Value::from),
    ]
}

fn document() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(prop::sample::select(vec!["a", "b", "c", "x", "y"]), inner, 0..5).prop_map(
                |m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<Map<String, Value>>())
            ),
        ]
    })
}

/// Whole floats as integers, so that `3.0` from one side equals `3`.
fn normalise(v: Value) -> Value {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
            _ => Value::Number(n),
        },
        Value::Array(a) => Value::Array(a.into_iter().map(normalise).collect()),
        Value::Object(m) => Value::Object(m.into_iter().map(|(k, v)| (k, normalise(v))).collect()),
        other => other,
    }
}

fn reference(expr: &str, doc: &Value) -> Result<Value, String> {
    let compiled = jmespath::compile(expr).map_err(|e| e.to_string())?;
    let data = Variable::try_from(doc).map_err(|e| e.to_string())?;
    let result = compiled.search(data).map_err(|e| e.to_string())?;
    serde_json::to_value(&*result).map_err(|e| e.to_string())
}

fn ours(expr: &str, doc: &Value) -> Result<Value, String> {
    Query::new(expr)?.search(doc, None)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn same_results_as_the_jmespath_crate(doc in document()) {
        for expr in EXPRESSIONS {
            let want = reference(expr, &doc).map(normalise);
            let got = ours(expr, &doc).map(normalise);
            match (&want, &got) {
                (Ok(w), Ok(g)) => prop_assert_eq!(w, g, "{} on {}", expr, doc),
                (Err(_), Err(_)) => {}
                _ => prop_assert!(false, "{expr} on {doc}: crate {want:?}, ours {got:?}"),
            }
        }
    }
}

/// Documents written to hit every branch of the corpus at least once.
fn fixed_documents() -> Vec<Value> {
    let texts = [
        r#"{"a": [{"b": 1, "c": 1}, {"b": 1.5, "c": 2}, {"b": "x", "c": "x"}, {"b": null}, {"b": true, "c": {"a": 1}}, {}], "b": 2, "c": [1, 2]}"#,
        r#"{"a": [3, 1, 2.5, -1], "b": [1, 2], "c": null}"#,
        r#"{"a": ["y", "x", "xy", ""], "b": {"a": 1}, "c": "x"}"#,
        r#"{"a": {"b": {"c": true}, "c": 2}, "b": {"c": false}, "x": [[1, 2], [3], 4]}"#,
        r#"{"a": [{"b": 2}, {"b": 1}, {"b": 3}], "b": {"x": 1, "a": 2}}"#,
        r#"{"a": [{"b": "y"}, {"b": "x"}], "b": [1, 2], "c": 1}"#,
        r#"{"a": [[{"b": 1}], [{"b": 2}, 3]], "b": 2.0, "c": 2}"#,
        r#"{"a": 2.0, "b": 2, "c": "12"}"#,
        r#"{"a": "xyz", "b": "y"}"#,
        r#"{"a": [], "b": {}, "c": ""}"#,
        r#"[1, "x", null, {"a": 1}]"#,
        r#"null"#,
        r#"{"a": [null, {"b": false}, {"b": null, "c": 1}, {"b": 0, "c": 1}, {"b": "xy", "c": "zz"}], "b": {"x": 2, "y": 1}}"#,
        r#"{"a": [{"b": {"c": 1}, "c": 1}, {"b": [1, 2], "c": true}, {"b": "", "c": 1}], "b": {"x": 1, "y": 3}}"#,
    ];
    texts.iter().map(|t| serde_json::from_str(t).unwrap()).collect()
}

#[test]
fn same_results_on_fixed_documents() {
    let mut failures = Vec::new();
    for doc in fixed_documents() {
        for expr in EXPRESSIONS {
            let want = reference(expr, &doc).map(normalise);
            let got = ours(expr, &doc).map(normalise);
            let same = match (&want, &got) {
                (Ok(w), Ok(g)) => w == g,
                (Err(_), Err(_)) => true,
                _ => false,
            };
            if !same {
                failures.push(format!("{expr} on {doc}: crate {want:?}, ours {got:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// Metrics over collections: `evaluate` counts these in one pass per
/// collection, which must not change any result or error.
const METRICS: &[&str] = &[
    "length(values(collections.c1)[?b])",
    "length(values(collections.c1)[?!b])",
    "length(values(collections.c1)[?b == `1`])",
    "length(values(collections.c1)[?b > `0` && c])",
    "length(values(collections.c1)[?length(@) > `1`])",
    "length(values(collections.c1)[?length(b || 'zz') >= `2`])",
    "length(values(collections.c1)[*].b)",
    "length(values(collections.c2)[?a || b])",
    "sum([length(values(collections.c1)[?a]), length(values(collections.c2)[?a])])",
    "length(values(collections.c1)[?a]) > `1` && length(values(collections.c2)[?b])",
    "[length(values(collections.c1)[?c]), length(values(collections.c2)[?c])]",
];

fn dataprint() -> impl Strategy<Value = Value> {
    let collection = || {
        prop::collection::btree_map("[a-d]", document(), 0..6)
            .prop_map(|m| Value::Object(m.into_iter().collect::<Map<String, Value>>()))
    };
    (collection(), collection()).prop_map(|(c1, c2)| {
        serde_json::json!({
            "schema": "tenantscope.dataprint/1",
            "tenant": {"id": "t"},
            "collections": {"c1": c1, "c2": c2}
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn metric_evaluation_matches_the_jmespath_crate(dp in dataprint()) {
        let now: chrono::DateTime<chrono::Utc> = "2026-11-28T12:00:00Z".parse().unwrap();
        let metrics: Vec<Metric> = METRICS
            .iter()
            .enumerate()
            .map(|(i, q)| Metric::new(&format!("m{i}"), q).unwrap())
            .collect();
        let values = evaluate(&metrics, &dp, now);
        let mut doc = dp.clone();
        doc["now"] = Value::from("2026-11-28T12:00:00Z");
        for (q, got) in METRICS.iter().zip(&values) {
            let want = reference(q, &doc).map(normalise);
            match (&want, &got.error) {
                (Ok(w), None) => prop_assert_eq!(w, &normalise(got.value.clone()), "{} on {}", q, dp),
                (Err(_), Some(_)) => {}
                _ => prop_assert!(false, "{q} on {dp}: crate {want:?}, ours {got:?}"),
            }
        }
    }
}

#[test]
fn corpus_compiles() {
    for expr in EXPRESSIONS {
        assert!(Query::new(expr).is_ok(), "{expr}");
    }
}

#[test]
fn compile_errors_are_reported() {
    assert!(Query::new("a[").is_err());
    assert!(Query::new("no_such_function(@)").is_err());
    assert!(Query::new("length(a, b)").is_err());
}

/// Filters that `evaluate` decides from each element's fields looked up
/// once (see `src/eval/row.rs`), beyond the built-in metrics: shared tests,
/// nested paths, `||` and `&&` of values, every comparison, dates.
const ONE_PASS: &[&str] = &[
    "length(values(collections.users)[?accountEnabled == `true` || userType == 'Guest'])",
    "length(values(collections.users)[?!accountEnabled && userType != 'Guest'])",
    "length(values(collections.users)[?signInActivity.lastSignInDateTime])",
    "length(values(collections.users)[?(signInActivity.lastSignInDateTime && accountEnabled) == `true`])",
    "length(values(collections.users)[?days_until(createdDateTime) < `0`])",
    "length(values(collections.users)[?days_since(signInActivity.lastSignInDateTime) == days_since(createdDateTime)])",
    "length(values(collections.users)[?length(assignedLicenses) >= length(userType)])",
    "length(values(collections.users)[?assignedLicenses == `[]`])",
    "length(values(collections.users)[?userType < 'Member'])",
    "length(values(collections.users)[?accountEnabled != `null`])",
    "length(values(collections.users)[?createdDateTime > `1`])",
    "length(values(collections.users)[?contains(`[\"Guest\", 1, true]`, userType)])",
    "length(values(collections.users)[?contains(userType, 'ue') || contains(assignedLicenses, `2`)])",
    "length(values(collections.users)[?`false` != accountEnabled])",
];

/// A user as a dataprint holds it, with every field sometimes missing or of
/// another type, and now and then an element that is not an object.
fn odd_user() -> impl Strategy<Value = Value> {
    let date = || {
        prop::sample::select(vec![
            Value::from("2026-11-01T00:00:00Z"),
            Value::from("2025-01-01T10:00:00.1234567Z"),
            Value::from("2026-11-28T12:00:00+01:00"),
            Value::from("2026-02-30T00:00:00Z"),
            Value::from("not a date"),
            Value::Null,
            Value::from(3),
        ])
    };
    let field = |values: Vec<Value>| prop::option::weighted(0.85, prop::sample::select(values));
    let user = (
        field(vec![Value::Bool(true), Value::Bool(false), Value::Null, Value::from("true")]),
        field(vec![Value::from("Member"), Value::from("Guest"), Value::from(1)]),
        field(vec![
            serde_json::json!([]),
            serde_json::json!([{"skuId": "s"}]),
            Value::Null,
            Value::from(2),
            Value::from("x"),
        ]),
        prop::option::weighted(
            0.8,
            prop_oneof![
                date().prop_map(|d| serde_json::json!({"lastSignInDateTime": d})),
                Just(Value::from(5)),
                Just(serde_json::json!({}))
            ],
        ),
        prop::option::weighted(0.9, date()),
    )
        .prop_map(|(enabled, kind, licences, activity, created)| {
            let mut m = Map::new();
            for (k, v) in [
                ("accountEnabled", enabled),
                ("userType", kind),
                ("assignedLicenses", licences),
                ("signInActivity", activity),
                ("createdDateTime", created),
            ] {
                if let Some(v) = v {
                    m.insert(k.to_owned(), v);
                }
            }
            Value::Object(m)
        });
    prop_oneof![20 => user, 1 => Just(Value::Null), 1 => Just(Value::from(7))]
}

fn odd_registration() -> impl Strategy<Value = Value> {
    let flag =
        || prop::option::weighted(0.85, prop::sample::select(vec![Value::Bool(true), Value::Bool(false), Value::Null]));
    (flag(), flag(), prop::option::of(prop::sample::select(vec!["member", "guest"]))).prop_map(|(mfa, admin, kind)| {
        let mut m = Map::new();
        if let Some(v) = mfa {
            m.insert("isMfaRegistered".to_owned(), v);
        }
        if let Some(v) = admin {
            m.insert("isAdmin".to_owned(), v);
        }
        if let Some(v) = kind {
            m.insert("userType".to_owned(), Value::from(v));
        }
        Value::Object(m)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// `evaluate` counts filters over a collection in one pass, in batches,
    /// with each element's fields looked up once; a query's `search` walks
    /// the expression as written. Both must give the same values and the
    /// same errors, on collections larger than a batch.
    #[test]
    fn one_pass_counts_match_plain_evaluation(
        users in prop::collection::vec(odd_user(), 0..60),
        registrations in prop::collection::vec(odd_registration(), 0..40),
    ) {
        let keyed = |items: Vec<Value>| -> Value {
            Value::Object(items.into_iter().enumerate().map(|(i, v)| (format!("{i:04}"), v)).collect())
        };
        let dp = serde_json::json!({
            "schema": "tenantscope.dataprint/1",
            "tenant": {"id": "t"},
            "collections": {
                "users": keyed(users),
                "userRegistrationDetails": keyed(registrations),
                "directoryRoles": {},
                "roleAssignments": {}
            }
        });
        let now: chrono::DateTime<chrono::Utc> = "2026-11-28T12:00:00Z".parse().unwrap();
        let mut metrics = history::builtin_metrics();
        for (i, q) in ONE_PASS.iter().enumerate() {
            metrics.push(Metric::new(&format!("one_pass_{i}"), q).unwrap());
        }
        let values = evaluate(&metrics, &dp, now);
        let mut doc = dp.clone();
        doc["now"] = Value::from("2026-11-28T12:00:00Z");
        for (metric, got) in metrics.iter().zip(&values) {
            // A metric whose collections are absent is null without error,
            // whatever its query would say.
            let present = metric.requires().iter().all(|r| r.split('|').any(|c| dp["collections"].get(c).is_some()));
            if !present {
                prop_assert_eq!(&got.value, &Value::Null);
                continue;
            }
            let want = Query::new(metric.query()).unwrap().search(&doc, Some(now));
            match (&want, &got.error) {
                (Ok(w), None) => prop_assert_eq!(w, &got.value, "{}", metric.query()),
                (Err(w), Some(g)) => prop_assert_eq!(w, g, "{}", metric.query()),
                _ => prop_assert!(false, "{}: plain {want:?}, one pass {got:?}", metric.query()),
            }
        }
    }
}
