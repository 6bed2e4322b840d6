//! `docs/causes.md` documents every cause and carries the AADSTS table generated from the
//! crate's mapping; these tests keep the two in step.

use std::fs;
use std::path::PathBuf;

use diagnose::Cause;
use diagnose::aadsts::{MAPPING, markdown_table};

const START: &str = "<!-- aadsts-table:start -->\n";
const END: &str = "<!-- aadsts-table:end -->";

fn doc_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/causes.md")
}

fn read_doc() -> String {
    fs::read_to_string(doc_path()).expect("docs/causes.md exists")
}

#[test]
fn every_cause_has_a_section() {
    let doc = read_doc();
    for cause in Cause::ALL {
        let heading = format!("\n## {}\n", cause.id());
        assert!(doc.contains(&heading), "docs/causes.md has no section `## {}`", cause.id());
    }
}

#[test]
fn the_aadsts_table_matches_the_mapping() {
    let doc = read_doc();
    let start = doc.find(START).expect("table start marker") + START.len();
    let end = doc.find(END).expect("table end marker");
    assert_eq!(
        &doc[start..end],
        markdown_table(),
        "docs/causes.md is out of date: run `cargo test -p diagnose --test docs -- --ignored`"
    );
}

/// The text of the `## <id>` section of a cause.
fn section<'a>(doc: &'a str, id: &str) -> &'a str {
    let heading = format!("\n## {id}\n");
    let start = doc.find(&heading).map(|i| i + heading.len()).unwrap_or(doc.len());
    let end = doc[start..].find("\n## ").map(|i| start + i).unwrap_or(doc.len());
    &doc[start..end]
}

/// Whether `code` appears in `text` as a whole number (possibly right after `AADSTS`).
fn mentions(text: &str, code: u32) -> bool {
    let needle = code.to_string();
    text.match_indices(&needle).any(|(i, _)| {
        let before = text[..i].chars().next_back().is_none_or(|c| !c.is_ascii_digit());
        let after = text[i + needle.len()..].chars().next().is_none_or(|c| !c.is_ascii_digit());
        before && after
    })
}

#[test]
fn each_section_names_the_codes_that_give_its_cause() {
    let doc = read_doc();
    for rule in MAPPING.iter().filter(|r| r.cause != Cause::Unknown) {
        assert!(
            mentions(section(&doc, rule.cause.id()), rule.code),
            "the section `{}` of docs/causes.md does not mention AADSTS{}",
            rule.cause.id(),
            rule.code
        );
    }
}

/// Rewrites the generated table in docs/causes.md.
#[test]
#[ignore]
fn regenerate_the_aadsts_table() {
    let doc = read_doc();
    let start = doc.find(START).expect("table start marker") + START.len();
    let end = doc.find(END).expect("table end marker");
    let updated = format!("{}{}{}", &doc[..start], markdown_table(), &doc[end..]);
    fs::write(doc_path(), updated).expect("docs/causes.md is writable");
}
