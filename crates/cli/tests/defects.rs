//! Defects found trying tenantscope as an MSP engineer would (issue 13), each held by a test that
//! failed before its fix: the binary against the simulator over HTTPS.

mod common;

use common::{Env, MEGAN};
use serde_json::Value;
use sim::WorldSource;

fn names(report: &Value) -> Vec<String> {
    report["tenants"]
        .as_array()
        .map(|t| t.iter().filter_map(|x| x["display_name"].as_str().map(String::from)).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_are_found_by_id_domain_or_name_in_every_command() {
    let env = Env::start(WorldSource::Demo).await;
    env.login(MEGAN, &[]).await;
    env.json(&["inspect", "--json"]);

    // A verified domain read from the customer's own dataprint.
    let one = env.json(&["inspect", "--json", "--tenant", "MARGIESTRAVEL.onmicrosoft.com"]);
    assert_eq!(names(&one), ["Margie's Travel"], "{one:#}");
    // A customer whose own data cannot be read is found by its domain through discovery, and doctor
    // names its real cause.
    for query in ["fourthcoffee.onmicrosoft.com", "Fourth Coffee", &env.tenant_id("fourthcoffee").to_uppercase()] {
        let d = env.json(&["doctor", "--tenant", query, "--json"]);
        assert_eq!(d["cause"], "user_not_in_tenant", "doctor --tenant {query}: {d:#}");
        assert_eq!(d["display_name"], "Fourth Coffee");
    }
    for args in [
        ["token", "--tenant", "Northwind Traders", "--json"],
        ["permissions", "--tenant", "northwindtraders.onmicrosoft.com", "--json"],
        ["changes", "--tenant", "northwind traders", "--json"],
        ["metrics", "--tenant", "NorthwindTraders.onmicrosoft.com", "--json"],
    ] {
        let out = env.run(&args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    // A value that names no tenant is an error, exit status 2, never a silent success.
    for command in ["inspect", "doctor", "token", "permissions", "changes"] {
        let out = env.run(&[command, "--tenant", "nosuch.example"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
        assert!(stderr.contains("no tenant matches 'nosuch.example'"), "{command}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissions_recommend_read_only_roles_and_name_each_tenants_gaps() {
    let env = Env::start(WorldSource::Demo).await;
    // Without a tenant, no sign-in is needed.
    let p = env.json(&["permissions", "--json"]);
    let roles: Vec<&str> =
        p["gdap_roles"].as_array().unwrap().iter().filter_map(|r| r["displayName"].as_str()).collect();
    assert_eq!(roles, ["Global Reader"], "{p:#}");
    let text = String::from_utf8_lossy(&env.run(&["permissions"]).stdout).to_string();
    assert!(text.contains("GDAP role to ask customers for: Global Reader"), "{text}");
    assert!(text.contains("It alone covers every collector"), "{text}");
    assert!(!text.lines().any(|l| l.contains("ask customers for") && l.contains("Global Administrator")), "{text}");
    let users = p["collectors"].as_array().unwrap().iter().find(|c| c["collector"] == "users").unwrap();
    assert_eq!(users["least_role"], "Directory Readers");

    // Coho's relationship gives only Directory Readers: what that leaves out is listed per collector.
    env.login(MEGAN, &[]).await;
    env.json(&["inspect", "--json"]);
    let coho = env.json(&["permissions", "--tenant", "Coho Winery", "--json"]);
    assert_eq!(coho["tenant"]["roles_held"], serde_json::json!(["Directory Readers"]), "{coho:#}");
    let blocked = coho["tenant"]["blocked_collectors"].as_array().expect("blocked");
    let ca = blocked.iter().find(|b| b["collector"] == "conditionalAccessPolicies").expect("CA is blocked");
    assert!(ca["needs_role"].as_array().is_some_and(|r| r.iter().any(|x| x == "Security Reader")), "{ca:#}");
    assert!(!blocked.iter().any(|b| b["collector"] == "users"), "Directory Readers reads users");
    let text = String::from_utf8_lossy(&env.run(&["permissions", "--tenant", "Coho Winery"]).stdout).to_string();
    assert!(!text.contains("missing: nothing"), "{text}");
    assert!(text.contains("conditionalAccessPolicies"), "{text}");
}
