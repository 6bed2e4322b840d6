//! Keeps `docs/history.md` true to the code: every event kind, built-in
//! metric (with its exact expression) and extra function is documented, every
//! TOML example parses, and every `--where` example compiles and evaluates.

use std::fs;
use std::path::Path;

use history::{EVENT_KINDS, EXTRA_FUNCTIONS, WhereFilter, builtin_metrics, parse_config};
use serde_json::Value;

fn doc() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/history.md");
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The contents of the fenced blocks of a language.
fn blocks(doc: &str, language: &str) -> Vec<String> {
    let fence = format!("```{language}\n");
    doc.split(&fence).skip(1).map(|rest| rest.split("```").next().unwrap().to_owned()).collect()
}

#[test]
fn every_event_kind_is_documented() {
    let doc = doc();
    for kind in EVENT_KINDS {
        assert!(doc.contains(&format!("| `{kind}` |")), "{kind} has no row in docs/history.md");
    }
}

#[test]
fn every_builtin_metric_is_documented_with_its_expression() {
    let doc = doc();
    for m in builtin_metrics() {
        let row = doc
            .lines()
            .find(|l| l.starts_with(&format!("| `{}` |", m.name())))
            .unwrap_or_else(|| panic!("{} has no row in docs/history.md", m.name()));
        let query = m.query().replace('|', "\\|");
        assert!(row.contains(&query), "the documented expression of {} differs from the code", m.name());
    }
}

#[test]
fn every_extra_function_is_documented() {
    let doc = doc();
    for f in EXTRA_FUNCTIONS {
        assert!(doc.contains(&format!("`{f}(")), "{f} is not documented");
    }
}

#[test]
fn toml_examples_parse() {
    let toml = blocks(&doc(), "toml");
    assert!(toml.len() >= 2);
    for block in toml {
        if let Err(e) = parse_config(&block) {
            panic!("{e}\n{block}");
        }
    }
}

#[test]
fn where_examples_compile_and_evaluate() {
    let doc = doc();
    let object: Value = blocks(&doc, "json")
        .into_iter()
        .find(|b| b.contains("\"global_admins\""))
        .map(|b| serde_json::from_str(&b).unwrap())
        .expect("the metric object example");
    let section = doc.split("### Selecting tenants").nth(1).unwrap().split("## Alerts").next().unwrap();
    let mut count = 0;
    for line in section.lines().filter(|l| l.starts_with("| ") && l.contains("| `` ")) {
        let expr = line.rsplit("| `` ").next().unwrap().trim_end_matches(" |").trim_end_matches(" ``");
        let expr = expr.replace("\\|", "|");
        let filter = WhereFilter::new(&expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        filter.matches(&object).unwrap_or_else(|e| panic!("{expr}: {e}"));
        count += 1;
    }
    assert!(count >= 6, "found {count} --where examples");
    // The headline question, on the documented object: security defaults
    // are off but two CA policies are enabled, so the tenant is not selected.
    let headline = WhereFilter::new("security_defaults == `false` && ca_policies_enabled == `0`").unwrap();
    assert!(!headline.matches(&object).unwrap());
}
