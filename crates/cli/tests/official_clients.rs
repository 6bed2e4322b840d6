//! Microsoft's own client libraries signed in through the binary: MSAL Python and @azure/msal-node run
//! their device-code flows against the simulator, and `tenantscope sim sign-in` approves each code on
//! the simulator's pages, as a person would. The libraries' other flows are checked in
//! `crates/sim/tests/clients.rs`, which also says how to install them.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use serde_json::{Value, json};
use sim::WorldSource;

fn clients_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sim/tests/clients")
}

/// Runs a client script, approving every device code it announces with `tenantscope sim sign-in`, and
/// returns its result line.
fn run_client(env: &Env, ready: &Path, program: &str, script: &str) -> Value {
    let ca = &env.sim.ready.ca_cert;
    let mut child = Command::new(program)
        .arg(clients_dir().join(script))
        .current_dir(clients_dir())
        .env("SIM_READY", ready)
        .env("REQUESTS_CA_BUNDLE", ca)
        .env("SSL_CERT_FILE", ca)
        .env("NODE_EXTRA_CA_CERTS", ca)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program} {script}: {e}"));
    let mut stderr = child.stderr.take().expect("stderr");
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut lines = Vec::new();
    let mut result = None;
    let mut approvals = 0;
    for line in BufReader::new(child.stdout.take().expect("stdout")).lines().map_while(Result::ok) {
        lines.push(line.clone());
        let Ok(event) = serde_json::from_str::<Value>(&line) else { continue };
        match event["event"].as_str() {
            Some("device_code") => {
                let out = env
                    .command()
                    .args(["sim", "sign-in", "--user"])
                    .arg(event["upn"].as_str().expect("upn"))
                    .arg("--device-code")
                    .arg(event["user_code"].as_str().expect("user_code"))
                    .arg("--ready-file")
                    .arg(ready)
                    .output()
                    .expect("tenantscope sim sign-in runs");
                assert!(out.status.success(), "sim sign-in: {}", String::from_utf8_lossy(&out.stderr));
                approvals += 1;
            }
            Some("result") => result = Some(event),
            _ => {}
        }
    }
    let status = child.wait().expect("wait for the client");
    let errors = errors.join().unwrap_or_default();
    assert!(status.success(), "{script} failed ({status}):\n{}\n{errors}", lines.join("\n"));
    assert!(approvals >= 1, "{script} asked for no device-code approval");
    result.unwrap_or_else(|| panic!("{script} printed no result:\n{}\n{errors}", lines.join("\n")))
}

async fn demo() -> (Env, PathBuf) {
    let env = Env::start(WorldSource::Demo).await;
    let ready = env.dir.path().join("ready.json");
    env.sim.write_ready_file(&ready).expect("ready file");
    (env, ready)
}

#[tokio::test(flavor = "multi_thread")]
async fn msal_python_device_code_is_approved_by_sim_sign_in() {
    let (env, ready) = demo().await;
    let python = std::env::var("TENANTSCOPE_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let (r, _env) = tokio::task::spawn_blocking(move || (run_client(&env, &ready, &python, "msal_python.py"), env))
        .await
        .expect("join");
    assert_eq!(r["device_code"]["ok"], true, "{r:#}");
    assert_eq!(r["device_code"]["amr"], json!(["pwd", "mfa"]));
    assert_eq!(r["device_code"]["id_token_username"], MEGAN);
    assert_eq!(r["silent"]["token_requests"], 0, "{r:#}");
    assert_eq!(r["mfa_required"]["refresh"]["error"], "interaction_required", "{r:#}");
    assert_eq!(r["mfa_required"]["refresh"]["error_codes"], json!([50076]));
}

#[tokio::test(flavor = "multi_thread")]
async fn msal_node_device_code_is_approved_by_sim_sign_in() {
    let (env, ready) = demo().await;
    let node = std::env::var("TENANTSCOPE_TEST_NODE").unwrap_or_else(|_| "node".into());
    let (r, _env) = tokio::task::spawn_blocking(move || (run_client(&env, &ready, &node, "msal_node.mjs"), env))
        .await
        .expect("join");
    assert_eq!(r["device_code"]["username"], MEGAN, "{r:#}");
    assert_eq!(r["device_code"]["amr"], json!(["pwd", "mfa"]));
    assert_eq!(r["silent"]["token_requests"], 0, "{r:#}");
}
