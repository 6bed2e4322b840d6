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
