//! The secret scan, a standing defence: after the demo, a clear-cache run with a debug trace,
//! `-vv` logs, a doctor, the token's claims and every report format, no secret of the simulated world (passwords,
//! authenticator seeds, app secrets), no token (access, ID, refresh, a client assertion) and no
//! authorization header appears anywhere tenantscope wrote or printed: the data directory
//! (every file, and every value of every table of the database with compressed values inflated),
//! the HAR traces, the reports, the logs and the output.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::{BIN, Killed};
use sqlx::{Column, Row, TypeInfo};

/// Text that may appear in nothing tenantscope writes, with what it is.
fn needles(world: &sim::ReadyInfo) -> Vec<(String, String)> {
    let mut out = vec![
        // JWT headers as base64url: any access token, ID token or client assertion.
        ("eyJ0eXAi".to_string(), "a JWT".to_string()),
        ("eyJhbGci".to_string(), "a JWT".to_string()),
        ("eyJraWQi".to_string(), "a JWT".to_string()),
        // The simulator's refresh tokens and authorization codes.
        ("1.AXsim".to_string(), "a refresh token or authorization code".to_string()),
        ("Bearer ey".to_string(), "an authorization header".to_string()),
        ("client_assertion=ey".to_string(), "a client assertion".to_string()),
    ];
    for u in &world.users {
        out.push((u.password.clone(), format!("the password of {}", u.upn)));
        if let Some(t) = &u.totp_secret {
            out.push((t.clone(), format!("the authenticator seed of {}", u.upn)));
        }
    }
    for a in &world.apps {
        if let Some(s) = &a.client_secret {
            out.push((s.clone(), format!("the secret of app {}", a.display_name)));
        }
    }
    out
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// A value, and its inflation when it is a zstd frame (what the store writes), or zlib- (what it
/// wrote before) or gzip-compressed.
fn expand(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    if let Ok(decoded) = zstd::decode_all(bytes)
        && !decoded.is_empty()
    {
        out.extend_from_slice(b"\n");
        out.extend_from_slice(&decoded);
    }
    let mut inflated = Vec::new();
    if flate2::read::ZlibDecoder::new(bytes).read_to_end(&mut inflated).is_ok() && !inflated.is_empty() {
        out.extend_from_slice(b"\n");
        out.extend_from_slice(&inflated);
    }
    let mut gunzipped = Vec::new();
    if flate2::read::GzDecoder::new(bytes).read_to_end(&mut gunzipped).is_ok() && !gunzipped.is_empty() {
        out.extend_from_slice(b"\n");
        out.extend_from_slice(&gunzipped);
    }
    out
}

/// Every value of every table, compressed values inflated.
async fn database_values(path: &Path) -> Vec<(String, Vec<u8>)> {
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path).read_only(true);
    let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect_with(options).await.expect("db");
    let tables: Vec<String> = sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
        .fetch_all(&pool)
        .await
        .expect("tables");
    let mut out = Vec::new();
    for table in tables {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT * FROM \"{table}\"")))
            .fetch_all(&pool)
            .await
            .expect("rows");
        for row in &rows {
            for (i, column) in row.columns().iter().enumerate() {
                let bytes: Option<Vec<u8>> = match column.type_info().name() {
                    "BLOB" => row.try_get::<Option<Vec<u8>>, _>(i).ok().flatten(),
                    _ => row.try_get::<Option<String>, _>(i).ok().flatten().map(String::into_bytes),
                };
                if let Some(b) = bytes {
                    out.push((format!("{table}.{}", column.name()), expand(&b)));
                }
            }
        }
    }
    pool.close().await;
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_anything_tenantscope_writes_or_prints() {
    // The demo world is deterministic: a simulator of the same world knows the demo's secrets.
    let reference = test_support::SimEnv::demo().await;
    let needles = needles(reference.ready());
    assert!(needles.len() > 10, "the world's secrets are known");

    let root = tempfile::tempdir().expect("tempdir");
    // Killed if the test panics before it stops the demo as a user would.
    let mut demo = Killed(
        std::process::Command::new(BIN)
            .args(["--data-dir", root.path().to_str().expect("utf-8"), "demo", "--keep-running"])
            .env("TENANTSCOPE_NO_BROWSER", "1")
            .env_remove("TENANTSCOPE_DATA_DIR")
            .env_remove("TENANTSCOPE_CLOUD")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the demo starts"),
    );
    let stdout = demo.0.stdout.take().expect("stdout");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = BufReader::new(stdout).read_to_string(&mut s);
        s
    });
    let mut demo_err = String::new();
    let mut cloud = None;
    for line in BufReader::new(demo.0.stderr.take().expect("stderr")).lines() {
        let line = line.expect("line");
        demo_err.push_str(&line);
        demo_err.push('\n');
        if let Some(rest) = line.split("(cloud file ").nth(1) {
            cloud = rest.split(')').next().map(str::to_string);
            break;
        }
    }
    let cloud = cloud.unwrap_or_else(|| panic!("the demo did not keep running: {demo_err}"));
    let data = root.path().join("demo").join("data");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(BIN)
            .args(["--data-dir", data.to_str().expect("utf-8"), "--cloud", &cloud])
            .args(args)
            .env_remove("TENANTSCOPE_DATA_DIR")
            .env_remove("TENANTSCOPE_CLOUD")
            .output()
            .expect("runs");
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    };
    let har = root.path().join("inspect.har");
    let mut printed = Vec::new();
    printed.push(run(&["-vv", "inspect", "--clear-cache", &format!("--debug={}", har.display())]));
    printed.push(run(&["-vv", "doctor", "--tenant", "cohowinery.onmicrosoft.com"]));
    let html = root.path().join("report.html");
    printed.push(run(&["report", "--format", "html", "--output", html.to_str().expect("utf-8")]));
    printed.push(run(&["report", "--format", "json"]));
    printed.push(run(&["report", "--format", "csv"]));
    printed.push(run(&["-vv", "tenants", "--json"]));
    printed.push(run(&["-vv", "token", "--tenant", "northwindtraders.onmicrosoft.com", "--json"]));
    // The demo stops on Ctrl-C, as its user would stop it.
    unsafe { libc::kill(demo.0.id() as i32, libc::SIGINT) };
    let _ = demo.0.wait();
    printed.push(demo_err);
    printed.push(out_reader.join().expect("stdout reader"));
    assert!(har.exists(), "no HAR trace: {}", printed[0].lines().last().unwrap_or_default());
    assert!(html.exists(), "no HTML report: {}", printed[2]);

    let mut haystacks: Vec<(String, Vec<u8>)> =
        printed.into_iter().enumerate().map(|(i, p)| (format!("output {i}"), p.into_bytes())).collect();
    for f in files(&data).into_iter().chain([har, html]) {
        let bytes = std::fs::read(&f).unwrap_or_default();
        haystacks.push((f.display().to_string(), expand(&bytes)));
    }
    let db = data.join("tenantscope.db");
    assert!(db.exists());
    let values = database_values(&db).await;
    assert!(values.iter().any(|(c, _)| c == "token_cache.secret"), "the token cache was read");
    // The scan sees inside compressed values: a user's name, stored only in compressed
    // collections, is found there.
    assert!(
        values.iter().any(|(c, v)| c == "blobs.data" && contains(v, b"Megan Bowen")),
        "the compressed collections were inflated and searched"
    );
    haystacks.extend(values);
    let mut found = Vec::new();
    for (name, bytes) in &haystacks {
        for (needle, what) in &needles {
            if contains(bytes, needle.as_bytes()) {
                found.push(format!("{what} in {name}"));
            }
        }
    }
    assert!(found.is_empty(), "secrets found:\n{}", found.join("\n"));
}
