//! Workload identity federation (issue 19): `tenants add-app` with a federated credential source (a file
//! or a command that yields the external identity provider's token), and inspections that present that
//! token as the app's client assertion, against the simulator playing GitHub Actions' issuer.

mod common;

use common::Env;
use serde_json::{Value, json};
use sim::WorldSource;

const SUBJECT: &str = "repo:lakeside/inspections:environment:prod";

async fn woodgrove_app(env: &Env) -> String {
    let app = env.sim.ready.apps.iter().find(|a| a.display_name == "Woodgrove tenantscope reader").expect("app");
    env.control(
        "actions",
        json!({"action": "add_federated_credential", "app": app.client_id, "name": "github-prod",
            "issuer": "{sim}/_idp/github", "subject": SUBJECT}),
    )
    .await;
    app.client_id.clone()
}

async fn github_token(env: &Env, subject: &str) -> String {
    env.control("idp/github/token", json!({"subject": subject, "lifetime_seconds": 3600})).await["token"]
        .as_str()
        .expect("token")
        .to_string()
}

fn woodgrove(report: &Value) -> &Value {
    report["tenants"]
        .as_array()
        .and_then(|t| {
            t.iter()
                .find(|t| t["display_name"] == "woodgrovebank.onmicrosoft.com" || t["display_name"] == "Woodgrove Bank")
        })
        .unwrap_or_else(|| panic!("no Woodgrove in {report:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_federated_token_file_or_command_reaches_the_tenant() {
    let env = Env::start(WorldSource::Demo).await;
    let client_id = woodgrove_app(&env).await;
    let token_file = env.dir.path().join("github.jwt");
    std::fs::write(&token_file, github_token(&env, SUBJECT).await).expect("token file");
    let out = env
        .command()
        .args(["tenants", "add-app", "--tenant", "woodgrovebank.onmicrosoft.com", "--client-id", &client_id])
        .arg("--federated-token-file")
        .arg(&token_file)
        .output()
        .expect("add-app");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = env.json(&["inspect", "--tenant", "woodgrovebank.onmicrosoft.com", "--json"]);
    let t = woodgrove(&report);
    // The app's secret has expired (the demo's Woodgrove case): the federated credential is what works.
    assert_ne!(t["diagnosis"]["cause"], "client_credential_expired", "{t:#}");
    assert_ne!(t["diagnosis"]["cause"], "client_credential_invalid", "{t:#}");
    let ok = t["collectors"].as_array().map_or(0, |c| c.iter().filter(|c| c["status"] == "ok").count());
    assert!(ok > 5, "collectors ran with the federated token: {t:#}");

    // A command that prints a token for another subject: 70021, read as an invalid client credential.
    let wrong = env.dir.path().join("branch.jwt");
    std::fs::write(&wrong, github_token(&env, "repo:lakeside/inspections:ref:refs/heads/main").await).unwrap();
    let out = env
        .command()
        .args(["tenants", "add-app", "--tenant", "woodgrovebank.onmicrosoft.com", "--client-id", &client_id])
        .arg("--federated-token-command")
        .arg(format!("cat '{}'", wrong.display()))
        .output()
        .expect("add-app");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The token the first credential got is still cached for this app: cleared, as after any change of
    // credential.
    let report = env.json(&["inspect", "--tenant", "woodgrovebank.onmicrosoft.com", "--clear-cache", "--json"]);
    let t = woodgrove(&report);
    assert_eq!(t["diagnosis"]["cause"], "client_credential_invalid", "{t:#}");
    assert!(t.to_string().contains("70021"), "{t:#}");
}
