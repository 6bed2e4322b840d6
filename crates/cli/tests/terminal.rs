//! Tenant data is hostile: names with terminal escape sequences and bidirectional overrides must not
//! reach the operator's terminal as themselves, in tables, cause lines or JSON.

mod common;

use common::{Env, MEGAN};
use serde_json::{Value, json};
use sim::WorldSource;

const DANGEROUS: &[char] = &['\u{1b}', '\u{7}', '\u{0}', '\u{202E}', '\u{202C}'];

fn assert_clean(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    for c in DANGEROUS {
        assert!(!text.contains(*c), "{what} printed {c:?} raw:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_are_neutralised_in_every_kind_of_output() {
    let env = Env::start(WorldSource::Demo).await;
    env.login(MEGAN, &[]).await;
    env.control_with(reqwest::Method::PUT, "faults", json!({"unusual_unicode": true})).await;

    let inspect = env.run(&["inspect"]);
    assert_clean("inspect", &inspect.stdout);
    assert_clean("inspect (stderr)", &inspect.stderr);
    // The hostile names were really there to print: the escaped form shows.
    let tables = format!(
        "{}{}",
        String::from_utf8_lossy(&inspect.stdout),
        String::from_utf8_lossy(&env.run(&["tenants"]).stdout)
    );
    assert!(tables.contains("\\u202e"), "the names were printed, escaped:\n{tables}");
    assert_clean("tenants", &env.run(&["tenants"]).stdout);
    assert_clean("gdap", &env.run(&["gdap"]).stdout);

    // JSON output stays exact: the escape is JSON's own, so the data parses back unchanged.
    let out = env.run(&[
        "dataprint",
        "show",
        "--tenant",
        "northwindtraders.onmicrosoft.com",
        "--query",
        "collections.users.*.displayName",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_clean("dataprint show", &out.stdout);
    let names: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let names: Vec<&str> = names.as_array().expect("names").iter().filter_map(Value::as_str).collect();
    assert!(!names.is_empty() && names.iter().all(|n| n.contains('\u{202E}') && n.contains('\u{1b}')), "{names:?}");

    let explain = env
        .command()
        .args(["explain", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("explain");
    let mut child = explain;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(b"AADSTS50076: \x1b]0;owned\x07Due to a configuration change \xe2\x80\xae made by your administrator, you must use multi-factor authentication.")
            .expect("write");
    }
    let out = child.wait_with_output().expect("explain runs");
    assert_clean("explain", &out.stdout);
    assert_clean("explain (stderr)", &out.stderr);
}
