//! Data-driven cases: every file in `tests/cases/` is an input (facts, pasted text, or the
//! input of `warnings`) with what must come out. Adding a case is adding a file.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use diagnose::{Cause, Diagnosis, Explanation, Facts, WarningInput, candidates, explain, warnings};
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    name: String,
    #[serde(default)]
    facts: Option<Facts>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    warnings: Option<WarningInput>,
    expect: Expect,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Expect {
    cause: Option<String>,
    check: Option<String>,
    evidence: Option<String>,
    evidence2: Option<String>,
    summary: Option<String>,
    fix: Option<String>,
    candidates_include: Vec<String>,
    candidates_prefix: Vec<String>,
    distinguish: Option<String>,
    distinguish2: Option<String>,
    warnings: Option<Vec<String>>,
    severity: Option<String>,
}

fn evidence_text(d: &Diagnosis) -> String {
    d.evidence.iter().map(|e| format!("{}: {}", e.name, e.value)).collect::<Vec<_>>().join("\n")
}

fn check_diagnoses(case: &Case, ranked: &[Diagnosis], explanation: Option<&Explanation>) -> Result<Cause, String> {
    let e = &case.expect;
    let first = ranked.first().ok_or("no candidate at all")?;
    let ids: Vec<&str> = ranked.iter().map(|d| d.cause.id()).collect();
    if let Some(cause) = &e.cause
        && first.cause.id() != cause
    {
        return Err(format!("expected {cause}, got {} (ranked {ids:?}; summary: {})", first.cause, first.summary));
    }
    if let Some(check) = &e.check {
        let got = serde_json::to_value(first.check).map_err(|e| e.to_string())?;
        if got.as_str() != Some(check.as_str()) {
            return Err(format!("expected check {check}, got {got}"));
        }
    }
    for needle in [&e.evidence, &e.evidence2].into_iter().flatten() {
        let text = evidence_text(first);
        if !text.contains(needle.as_str()) {
            return Err(format!("evidence lacks `{needle}`:\n{text}"));
        }
    }
    if let Some(needle) = &e.summary
        && !first.summary.contains(needle.as_str())
    {
        return Err(format!("summary lacks `{needle}`: {}", first.summary));
    }
    if let Some(needle) = &e.fix
        && !first.fix.iter().any(|s| s.contains(needle.as_str()))
    {
        return Err(format!("fix lacks `{needle}`: {:?}", first.fix));
    }
    for c in &e.candidates_include {
        if !ids.contains(&c.as_str()) {
            return Err(format!("candidates {ids:?} lack {c}"));
        }
    }
    if !e.candidates_prefix.is_empty() {
        let prefix: Vec<&str> = ids.iter().take(e.candidates_prefix.len()).copied().collect();
        let want: Vec<&str> = e.candidates_prefix.iter().map(String::as_str).collect();
        if prefix != want {
            return Err(format!("candidates start {prefix:?}, expected {want:?}"));
        }
    }
    for needle in [&e.distinguish, &e.distinguish2].into_iter().flatten() {
        let steps = explanation.map(|x| x.distinguish.join("\n")).unwrap_or_default();
        if !steps.contains(needle.as_str()) {
            return Err(format!("distinguish lacks `{needle}`:\n{steps}"));
        }
    }
    // Every diagnosis carries its docs anchor, a fix and some evidence.
    for d in ranked {
        if d.docs != format!("docs/causes.md#{}", d.cause.id())
            || d.fix.is_empty()
            || !(0.0..=1.0).contains(&d.confidence)
        {
            return Err(format!("malformed diagnosis {d:?}"));
        }
    }
    if first.evidence.is_empty() && case.facts.as_ref().is_none_or(|f| f.failure.is_some()) {
        return Err("the first diagnosis shows no evidence".into());
    }
    Ok(first.cause)
}

fn run(case: &Case) -> Result<(Option<Cause>, Vec<String>), String> {
    if let Some(input) = &case.warnings {
        let got = warnings(input);
        let mut kinds: Vec<String> = got
            .iter()
            .map(|w| serde_json::to_value(w.kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default())
            .collect();
        kinds.sort();
        let mut want = case.expect.warnings.clone().unwrap_or_default();
        want.sort();
        if kinds != want {
            return Err(format!("warnings {kinds:?}, expected {want:?}"));
        }
        if let Some(needle) = &case.expect.summary
            && !got.iter().any(|w| w.summary.contains(needle.as_str()))
        {
            return Err(format!("no warning summary contains `{needle}`"));
        }
        if let Some(sev) = &case.expect.severity {
            let first = got.first().ok_or("no warning")?;
            let s = serde_json::to_value(first.severity).map_err(|e| e.to_string())?;
            if s.as_str() != Some(sev.as_str()) {
                return Err(format!("severity {s}, expected {sev}"));
            }
        }
        if got.iter().any(|w| w.fix.is_empty() || w.summary.is_empty()) {
            return Err("a warning without summary or fix".into());
        }
        return Ok((None, kinds));
    }
    if let Some(text) = &case.text {
        let e = explain(text);
        if e.cause != e.candidates[0].cause {
            return Err("explain's cause differs from its first candidate".into());
        }
        return check_diagnoses(case, &e.candidates, Some(&e)).map(|c| (Some(c), Vec::new()));
    }
    let facts = case.facts.clone().unwrap_or_default();
    let ranked = candidates(&facts);
    let best = diagnose::diagnose(&facts);
    if best != ranked[0] {
        return Err("diagnose() differs from candidates()[0]".into());
    }
    // A diagnosis must survive the JSON output and keep the id string for the cause.
    let json = serde_json::to_value(&best).map_err(|e| e.to_string())?;
    if json["cause"].as_str() != Some(best.cause.id()) {
        return Err(format!("cause serialises as {}", json["cause"]));
    }
    check_diagnoses(case, &ranked, None).map(|c| (Some(c), Vec::new()))
}

#[test]
fn every_case_file_passes_and_covers_the_vocabulary() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .expect("tests/cases exists")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 60, "only {} case files", files.len());
    let mut failures = Vec::new();
    let mut causes = BTreeSet::new();
    let mut kinds = BTreeSet::new();
    for path in &files {
        let text = fs::read_to_string(path).expect("readable case");
        let case: Case = match serde_json::from_str(&text) {
            Ok(c) => c,
            Err(e) => {
                failures.push(format!("{}: does not parse: {e}", path.display()));
                continue;
            }
        };
        match run(&case) {
            Ok((cause, ks)) => {
                causes.extend(cause);
                kinds.extend(ks);
            }
            Err(msg) => failures.push(format!("{} ({}): {msg}", case.name, path.display())),
        }
    }
    assert!(failures.is_empty(), "{} case(s) failed:\n{}", failures.len(), failures.join("\n"));
    let missing: Vec<&str> = Cause::ALL.iter().filter(|c| !causes.contains(c)).map(|c| c.id()).collect();
    assert!(missing.is_empty(), "no case expects these causes: {missing:?}");
    for kind in [
        "gdap_expiring",
        "gdap_global_admin",
        "gdap_mlt_only",
        "partner_token_without_mfa",
        "refresh_token_inactive",
        "client_secret_expiring",
    ] {
        assert!(kinds.contains(kind), "no case expects the warning {kind}");
    }
}
