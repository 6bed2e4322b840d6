//! `explain` on 1 MB inputs must answer within 50 ms (issue #18). A plain `Instant` loop: the
//! first call, which also builds the tables' automata and compiles the patterns (once per
//! process), is timed on its own; then each input is explained several times and the slowest
//! run is reported, so that the figure is an upper bound rather than a mean.
//! Run with `cargo bench -p diagnose --bench explain`.

use std::time::{Duration, Instant};

use diagnose::{explain, summarize_sign_in_logs};

const MB: usize = 1024 * 1024;
const RUNS: usize = 10;
const BUDGET: Duration = Duration::from_millis(50);

/// Realistic lines of error output, repeated to 1 MB.
fn mixed_text() -> String {
    let lines = [
        "2024-07-23 15:19:52 ERROR Graph call failed: Response status code does not indicate success: 403 (Forbidden).",
        "Get-PartnerCustomer : 1002 Authorization Failed",
        "<prtg><error>1</error><text>Error getting MS Graph Token</text></prtg>",
        "System.Net.WebException: Der Remoteserver hat einen Fehler zurückgegeben: (401) Nicht autorisiert.",
        "   at System.Net.HttpWebRequest.GetResponse()",
        "WARNING: Exceeded max number of connections. Waiting 60 seconds",
        "requests.exceptions.ConnectionError: HTTPSConnectionPool(host='graph.microsoft.com', port=443)",
    ];
    let mut s = String::with_capacity(MB + 256);
    let mut i = 0;
    while s.len() < MB {
        s.push_str(lines[i % lines.len()]);
        s.push('\n');
        i += 1;
    }
    s.push_str("AADSTS50076: Due to a configuration change made by your administrator, you must use multi-factor authentication.");
    s
}

/// One huge JSON document: a Graph error whose details array runs to 1 MB.
fn huge_json() -> String {
    let mut s = String::from(
        r#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges to complete the operation.","details":["#,
    );
    let item = r#"{"code":"x","message":"padding padding padding padding padding padding"},"#;
    while s.len() < MB {
        s.push_str(item);
    }
    s.push_str(r#"{"code":"y"}]}}"#);
    s
}

/// 1 MB of deterministic noise, read lossily as the CLI would before refusing it.
fn binary_noise() -> String {
    let bytes: Vec<u8> = (0..MB as u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A sign-in log export of about 1 MB.
fn sign_in_export() -> String {
    let mut s = String::from("[");
    let mut i = 0u32;
    while s.len() < MB {
        let code = [0, 50126, 53003, 50053, 50076][i as usize % 5];
        s.push_str(&format!(
            r#"{{"createdDateTime":"2024-07-23T15:{:02}:{:02}Z","userPrincipalName":"user{}@contoso.com","appDisplayName":"Outlook","ipAddress":"203.0.113.{}","status":{{"errorCode":{code},"failureReason":"Other."}}}},"#,
            (i / 60) % 60,
            i % 60,
            i % 17,
            i % 200
        ));
        i += 1;
    }
    s.pop();
    s.push(']');
    s
}

fn slowest<F: FnMut()>(mut f: F) -> Duration {
    (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .max()
        .unwrap_or_default()
}

fn main() {
    let start = Instant::now();
    std::hint::black_box(explain("AADSTS50076: warm-up"));
    println!("first call (builds the tables' automata and patterns): {:.2} ms", start.elapsed().as_secs_f64() * 1e3);
    let mut over = Vec::new();
    for (name, input) in [("mixed text", mixed_text()), ("huge JSON", huge_json()), ("binary noise", binary_noise())] {
        let t = slowest(|| {
            std::hint::black_box(explain(std::hint::black_box(&input)));
        });
        println!("explain, {name} ({} bytes): slowest of {RUNS} runs {:.2} ms", input.len(), t.as_secs_f64() * 1e3);
        if t > BUDGET {
            over.push(name);
        }
    }
    let export = sign_in_export();
    let t = slowest(|| {
        let _ = std::hint::black_box(summarize_sign_in_logs(std::hint::black_box(export.as_bytes())));
    });
    println!(
        "summarize_sign_in_logs, JSON export ({} bytes): slowest of {RUNS} runs {:.2} ms",
        export.len(),
        t.as_secs_f64() * 1e3
    );
    if !over.is_empty() {
        eprintln!("over the 50 ms budget: {}", over.join(", "));
        std::process::exit(1);
    }
}
