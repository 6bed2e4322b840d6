//! `tenantscope explain --sign-in-logs FILE` on generated exports of a few thousand rows, in
//! the two formats Microsoft Entra's Sign-in logs page downloads (JSON and CSV with the
//! documented column names), and `explain` on binary input. No simulator: the command is pure.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_tenantscope");

fn run(home: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("TENANTSCOPE_DATA_DIR", home.join("data"))
        .env("TENANTSCOPE_NO_BROWSER", "1")
        .args(args)
        .output()
        .expect("binary runs")
}

/// One generated sign-in: (code, failure reason) cycles through a fixed mix, so the expected
/// counts are known: of every 10 rows, 4 succeed, 3 are wrong passwords, 2 are blocked by
/// Conditional Access and 1 is a locked account.
fn row(i: usize) -> (String, String, &'static str, String, u32, &'static str) {
    let (code, reason) = match i % 10 {
        0..=3 => (0, ""),
        4..=6 => (50126, "Error validating credentials due to invalid username or password."),
        7 | 8 => (
            53003,
            "Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.",
        ),
        _ => (
            50053,
            "Account is locked because user tried to sign in too many times with an incorrect user ID or password.",
        ),
    };
    let time = format!("2024-07-{:02}T{:02}:{:02}:00Z", 1 + (i / 1440) % 28, (i / 60) % 24, i % 60);
    let user = format!("user{}@contoso.com", i % 7);
    let app = ["Microsoft Office", "Azure Portal", "Outlook Mobile"][i % 3];
    let ip = format!("203.0.113.{}", i % 11);
    (time, user, app, ip, code, reason)
}

const ROWS: usize = 3000;

fn check_summary(v: &Value) {
    assert_eq!(v["entries"], ROWS, "{v:#}");
    assert_eq!(v["failures"], ROWS / 10 * 6);
    let causes = v["causes"].as_array().expect("causes");
    let by = |id: &str| causes.iter().find(|c| c["cause"] == id).unwrap_or_else(|| panic!("no {id} in {v:#}"));
    assert_eq!(causes[0]["cause"], "invalid_credentials");
    assert_eq!(by("invalid_credentials")["count"], ROWS / 10 * 3);
    assert_eq!(by("conditional_access_blocked")["count"], ROWS / 10 * 2);
    assert_eq!(by("account_locked")["count"], ROWS / 10);
    let ic = by("invalid_credentials");
    assert_eq!(ic["codes"][0]["value"], "50126");
    assert_eq!(ic["top_users"].as_array().map(Vec::len), Some(5));
    assert!(ic["fix"].as_array().is_some_and(|f| !f.is_empty()));
    assert!(ic["first"].as_str().is_some_and(|t| t.starts_with("2024-07-01")));
    assert!(v["last"].as_str().is_some_and(|t| t.starts_with("2024-07-03")));
}

#[test]
fn sign_in_log_exports_are_summarised_by_cause() {
    let dir = tempfile::tempdir().expect("temp dir");
    let home = dir.path();

    let entries: Vec<Value> = (0..ROWS)
        .map(|i| {
            let (time, user, app, ip, code, reason) = row(i);
            json!({
                "id": format!("id-{i}"),
                "createdDateTime": time,
                "userPrincipalName": user,
                "appDisplayName": app,
                "ipAddress": ip,
                "conditionalAccessStatus": if code == 53003 { "failure" } else { "notApplied" },
                "status": {"errorCode": code, "failureReason": if code == 0 { "Other." } else { reason }, "additionalDetails": null}
            })
        })
        .collect();
    let json_file = home.join("InteractiveSignIns.json");
    std::fs::write(&json_file, serde_json::to_vec(&entries).expect("json")).expect("write");

    let mut csv = String::from(
        "Date (UTC),Request ID,User agent,Correlation ID,User ID,User,Username,Application,Application ID,Resource,IP address,Location,Status,Sign-in error code,Failure reason,Client app,Conditional Access\n",
    );
    for i in 0..ROWS {
        let (time, user, app, ip, code, reason) = row(i);
        let status = if code == 0 { "Success" } else { "Failure" };
        let code = if code == 0 { String::new() } else { code.to_string() };
        csv.push_str(&format!(
            "{time},req-{i},Mozilla/5.0,corr-{i},uid-{i},\"User, {i}\",{user},{app},app-id,Office 365 Exchange Online,{ip},\"Paris, Ile-de-France, FR\",{status},{code},\"{reason}\",Browser,Not Applied\n"
        ));
    }
    let csv_file = home.join("InteractiveSignIns.csv");
    std::fs::write(&csv_file, csv).expect("write");

    for file in [&json_file, &csv_file] {
        let out = run(home, &["explain", "--sign-in-logs", file.to_str().expect("utf-8 path"), "--json"]);
        assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).expect("JSON summary");
        check_summary(&v);

        let out = run(home, &["explain", "--sign-in-logs", file.to_str().expect("utf-8 path")]);
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("invalid_credentials — 900 failure(s)"), "{text}");
        assert!(text.contains("fix:"), "{text}");
    }
}

#[test]
fn binary_and_malformed_input_give_clear_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let home = dir.path();
    let binary = home.join("blob.bin");
    let noise: Vec<u8> = (0..64 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&binary, &noise).expect("write");

    let out = run(home, &["explain", binary.to_str().expect("utf-8 path")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("binary"), "{}", String::from_utf8_lossy(&out.stderr));

    let out = run(home, &["explain", "--sign-in-logs", binary.to_str().expect("utf-8 path")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("binary"));

    // Windows PowerShell 5 writes UTF-16 with a BOM; that is text, not binary.
    let utf16 = home.join("error-utf16.txt");
    let mut bytes = vec![0xFF, 0xFE];
    for unit in "AADSTS50126: Error validating credentials due to invalid username or password.".encode_utf16() {
        bytes.extend_from_slice(&unit.to_le_bytes());
    }
    std::fs::write(&utf16, bytes).expect("write");
    let out = run(home, &["explain", "--json", utf16.to_str().expect("utf-8 path")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["cause"], "invalid_credentials");

    let broken = home.join("broken.json");
    std::fs::write(&broken, "[{\"status\": {\"errorCode\": 50126").expect("write");
    let out = run(home, &["explain", "--sign-in-logs", broken.to_str().expect("utf-8 path")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("JSON is not valid"));
}
