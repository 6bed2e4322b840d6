//! Microsoft's own client libraries against the simulator: MSAL Python, azure-identity and msgraph-sdk
//! from PyPI, and @azure/msal-node from npm, configured only with the simulator's authority (instance
//! discovery off) and CA bundle. The scripts live in `tests/clients/`; each prints JSON lines (device
//! codes to approve, then one result) that these tests act on and check.
//!
//! The libraries must be installed (CI does it; see docs/simulator.md):
//! `python3 -m pip install -r crates/sim/tests/clients/requirements.txt` and
//! `npm ci --prefix crates/sim/tests/clients`. A missing library fails the test, it does not skip it.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

fn clients_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// Runs a client script against `sim`, approving the device codes it announces with the scripted user,
/// and returns its result line.
async fn run_client(sim: &TestSim, program: &str, script: &str) -> Value {
    let ca = &sim.running.ready.ca_cert;
    let mut child = Command::new(program)
        .arg(clients_dir().join(script))
        .current_dir(clients_dir())
        .env("SIM_READY", &sim.ready_path)
        .env("REQUESTS_CA_BUNDLE", ca)
        .env("SSL_CERT_FILE", ca)
        .env("NODE_EXTRA_CA_CERTS", ca)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program} {script}: {e}"));
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let browser = sim.browser();
    let mut result = None;
    let mut lines = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(150);
    loop {
        let line = match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(l)) => l,
            Ok(None) => break,
            Err(_) => {
                let _ = child.kill();
                panic!("{script} timed out; output so far:\n{}", lines.join("\n"));
            }
        };
        lines.push(line.clone());
        let Ok(event) = serde_json::from_str::<Value>(&line) else { continue };
        match event["event"].as_str() {
            Some("device_code") => {
                let upn = event["upn"].as_str().expect("upn");
                let code = event["user_code"].as_str().expect("user_code");
                browser.approve_device_code(code, &sim.person(upn)).await.unwrap_or_else(|e| panic!("{upn}: {e}"));
            }
            Some("result") => result = Some(event),
            _ => {}
        }
    }
    let status = child.wait().expect("wait for the client");

    let errors = err_reader.join().unwrap_or_default();
    // Shown only when the test fails: what the library logged on its way.
    eprintln!("{script} stderr:\n{errors}");
    assert!(status.success(), "{script} failed ({status}):\nstdout:\n{}\nstderr:\n{errors}", lines.join("\n"));
    result.unwrap_or_else(|| panic!("{script} printed no result:\n{}\n{errors}", lines.join("\n")))
}

fn python() -> String {
    std::env::var("TENANTSCOPE_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn node() -> String {
    std::env::var("TENANTSCOPE_TEST_NODE").unwrap_or_else(|_| "node".into())
}

#[tokio::test(flavor = "multi_thread")]
async fn msal_python_completes_every_flow() {
    let sim = TestSim::demo().await;
    let r = run_client(&sim, &python(), "msal_python.py").await;
    let cc = &r["client_credentials"];
    assert_eq!(cc["ok"], true, "{r:#}");
    assert_eq!(cc["tid"], sim.tenant("lakeside").as_str());
    assert_eq!(cc["roles"], json!(["Directory.Read.All", "Organization.Read.All", "User.Read.All", "Policy.Read.All"]));
    assert_eq!(cc["cached_token_requests"], 0, "the second client-credentials call is served from MSAL's cache");
    assert_eq!(cc["cached_source"], "cache");
    assert_eq!(cc["same_token"], true);
    let dc = &r["device_code"];
    assert_eq!(dc["ok"], true, "{r:#}");
    assert_eq!(dc["amr"], json!(["pwd", "mfa"]));
    assert_eq!(dc["id_token_username"], MEGAN);
    assert_eq!(dc["has_refresh_token"], true);
    let silent = &r["silent"];
    assert_eq!(silent["ok"], true);
    assert_eq!(silent["token_requests"], 0, "silent acquisition made no token request");
    assert_eq!(silent["source"], "cache");
    assert_eq!(silent["same_token"], true);
    let refresh = &r["refresh"];
    assert_eq!(refresh["ok"], true, "{r:#}");
    assert_eq!(refresh["new_token"], true);
    assert_eq!(refresh["customer_tid"], sim.tenant("northwind").as_str(), "{r:#}");
    assert_eq!(refresh["token_requests"], 3, "home refresh, Northwind and Litware");
    assert_eq!(refresh["litware_error"]["error_codes"], json!([90099]));
    let mfa = &r["mfa_required"];
    assert_eq!(mfa["ops_signed_in"], true);
    assert_eq!(mfa["ops_amr"], json!(["pwd"]));
    assert_eq!(mfa["refresh"]["error"], "interaction_required", "{r:#}");
    assert_eq!(mfa["refresh"]["error_codes"], json!([50076]));
    assert_eq!(mfa["refresh"]["suberror"], "basic_action");
    // Per-user MFA is not a Conditional Access policy, so no policy claims are sent.
    assert_eq!(mfa["refresh"]["claims"], Value::Null);
}

#[tokio::test(flavor = "multi_thread")]
async fn azure_identity_completes_every_flow() {
    let sim = TestSim::demo().await;
    let r = run_client(&sim, &python(), "azure_identity_python.py").await;
    let cc = &r["client_credentials"];
    assert_eq!(cc["tid"], sim.tenant("lakeside").as_str(), "{r:#}");
    assert_eq!(cc["idtyp"], "app");
    assert_eq!(cc["cached_token_requests"], 0);
    assert_eq!(cc["same_token"], true);
    assert_eq!(r["device_code"]["username"], MEGAN);
    assert_eq!(r["device_code"]["tenant_id"], sim.tenant("lakeside").as_str());
    assert_eq!(r["device_code"]["amr"], json!(["pwd", "mfa"]));
    assert_eq!(r["silent"]["token_requests"], 0, "silent acquisition made no token request");
    assert_eq!(r["refresh"]["token_requests"], 1);
    assert_eq!(r["refresh"]["customer_tid"], sim.tenant("northwind").as_str());
    assert_eq!(r["refresh"]["customer_idp"], format!("https://sts.windows.net/{}/", sim.tenant("lakeside")));
    let mfa = &r["mfa_required"];
    assert_eq!(mfa["raised"], "AuthenticationRequiredError", "{r:#}");
    assert_eq!(mfa["status"], 400);
    assert_eq!(mfa["error"], "interaction_required");
    assert_eq!(mfa["error_codes"], json!([50076]));
    assert_eq!(mfa["suberror"], "basic_action");
}

/// Issue 19: Python's certificate credentials send padded base64url thumbprints and float dates, which Entra
/// accepts (MSALPY `oauth2cli/assertion.py`: `base64.urlsafe_b64encode` and `time.time()`).
#[tokio::test(flavor = "multi_thread")]
async fn python_certificate_credentials_sign_in() {
    let sim = TestSim::demo().await;
    let r = run_client(&sim, &python(), "certificate_python.py").await;
    let lakeside = sim.tenant("lakeside");
    assert_eq!(r["azure_identity"]["ok"], true, "{r:#}");
    assert_eq!(r["azure_identity"]["tid"], lakeside.as_str());
    assert_eq!(r["azure_identity"]["appidacr"], "2", "a certificate, not a secret");
    let sha256 = &r["msal_sha256"];
    assert_eq!(sha256["ok"], true, "{r:#}");
    assert_eq!(sha256["appidacr"], "2");
    assert_eq!(
        sha256["assertion"],
        json!({"alg": "PS256", "x5t_padded": false, "x5t_s256_padded": true, "has_x5c": true, "exp_is_float": true})
    );
    let sha1 = &r["msal_sha1"];
    assert_eq!(sha1["ok"], true, "{r:#}");
    assert_eq!(
        sha1["assertion"],
        json!({"alg": "RS256", "x5t_padded": true, "x5t_s256_padded": false, "has_x5c": false, "exp_is_float": true})
    );
}

/// Issue 19: the on-behalf-of grant through MSAL Python's `acquire_token_on_behalf_of`.
#[tokio::test(flavor = "multi_thread")]
async fn msal_python_acts_on_behalf_of_a_user() {
    let sim = TestSim::demo().await;
    let r = run_client(&sim, &python(), "obo_python.py").await;
    assert_eq!(r["api_token"]["ok"], true, "{r:#}");
    assert_eq!(r["api_token"]["aud"], AUTOMATION);
    assert_eq!(
        r["without_consent"],
        json!({"error": "invalid_grant", "error_codes": [65001], "suberror": "consent_required"})
    );
    let granted = &r["granted"];
    assert_eq!(granted["ok"], true, "{r:#}");
    assert_eq!(granted["appid"], AUTOMATION);
    assert_eq!(granted["upn"], MEGAN);
    assert_eq!(granted["scp"], "User.Read");
    assert_eq!(granted["amr"], json!(["pwd", "mfa"]));
}

/// Issue 19: workload identity federation through azure-identity (ClientAssertionCredential,
/// WorkloadIdentityCredential) and MSAL Python (`client_assertion`).
#[tokio::test(flavor = "multi_thread")]
async fn python_clients_sign_in_with_a_federated_credential() {
    let sim = TestSim::demo().await;
    let r = run_client(&sim, &python(), "federated_python.py").await;
    let lakeside = sim.tenant("lakeside");
    for case in ["client_assertion_credential", "workload_identity_credential", "msal"] {
        assert_eq!(r[case]["ok"], true, "{case}: {r:#}");
        assert_eq!(r[case]["appid"], AUTOMATION, "{case}");
        assert_eq!(r[case]["tid"], lakeside.as_str(), "{case}");
        assert_eq!(r[case]["appidacr"], "2", "{case}");
    }
    assert_eq!(r["wrong_subject"], json!({"error": "unauthorized_client", "error_codes": [70021]}));
}

#[tokio::test(flavor = "multi_thread")]
async fn msgraph_sdk_pages_batches_and_raises_odata_errors() {
    let sim = TestSim::demo().await;
    let r = run_client(&sim, &python(), "msgraph_python.py").await;
    let users = sim.running.sim.world().resolve_tenant("lakesideit.onmicrosoft.com").unwrap().users.len();
    assert_eq!(r["users"]["total"], users, "{r:#}");
    assert_eq!(r["users"]["unique"], users);
    assert_eq!(r["users"]["first_page_size"], 5);
    assert_eq!(r["users"]["first_has_next"], true);
    assert_eq!(r["users"]["pages"], users.div_ceil(5));
    assert_eq!(r["batch"]["absolute_urls"], true, "msgraph-core still sends absolute URLs: {r:#}");
    assert_eq!(r["batch"]["absolute_statuses"], json!([400, 400, 400]));
    assert_eq!(r["batch"]["ids_match"], true, "{r:#}");
    assert_eq!(r["batch"]["statuses"], json!([200, 200, 404]));
    assert_eq!(r["batch"]["organization_status"], 200);
    assert_eq!(r["batch"]["missing_status"], 404);
    let denied = &r["denied"];
    assert_eq!(denied["raised"], "ODataError", "{r:#}");
    assert_eq!(denied["status"], 403);
    assert_eq!(denied["code"], "Authorization_RequestDenied");
    assert_eq!(denied["message"], "Insufficient privileges to complete the operation.");
    let margie = sim.running.sim.world().resolve_tenant("margiestravel.onmicrosoft.com").unwrap().users.len();
    assert_eq!(r["margie_users"], margie.min(100));
}

#[tokio::test(flavor = "multi_thread")]
async fn msal_node_completes_every_flow() {
    assert!(
        clients_dir().join("node_modules/@azure/msal-node").exists(),
        "@azure/msal-node is not installed: run `npm ci --prefix crates/sim/tests/clients`"
    );
    let sim = TestSim::demo().await;
    let r = run_client(&sim, &node(), "msal_node.mjs").await;
    let cc = &r["client_credentials"];
    assert_eq!(cc["tid"], sim.tenant("lakeside").as_str(), "{r:#}");
    assert_eq!(cc["fromCache"], json!([false, true]));
    assert_eq!(cc["cached_token_requests"], 0);
    assert_eq!(r["device_code"]["username"], MEGAN);
    assert_eq!(r["device_code"]["amr"], json!(["pwd", "mfa"]));
    assert_eq!(r["device_code"]["tid"], sim.tenant("lakeside").as_str());
    assert_eq!(r["silent"]["fromCache"], true, "{r:#}");
    assert_eq!(r["silent"]["token_requests"], 0, "silent acquisition made no token request");
    assert_eq!(r["silent"]["same_token"], true);
    assert_eq!(r["refresh"]["fromCache"], false);
    assert_eq!(r["refresh"]["new_token"], true);
    assert_eq!(r["refresh"]["customer_tid"], sim.tenant("northwind").as_str(), "{r:#}");
    assert_eq!(r["refresh"]["token_requests"], 2);
    for case in ["ropc", "refresh_mfa"] {
        let e = &r[case];
        assert_eq!(e["name"], "InteractionRequiredAuthError", "{case}: {r:#}");
        assert_eq!(e["isInteractionRequired"], true, "{case}");
        // The password grant answers `invalid_grant` (protocol reference §2.1, 50076 row); msal-node still
        // raises InteractionRequiredAuthError for its `basic_action` suberror.
        let error = if case == "ropc" { "invalid_grant" } else { "interaction_required" };
        assert_eq!(e["errorCode"], error, "{case}");
        assert_eq!(e["subError"], "basic_action", "{case}");
        assert_eq!(e["errorNo"], 50076, "{case}");
        assert_eq!(e["message"], "AADSTS50076:", "{case}");
    }
    assert_eq!(r["ropc"]["hasClaims"], false, "the password grant sends no claims");
    assert_eq!(r["refresh_mfa"]["hasClaims"], false, "per-user MFA names none");
}
