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

/// Tags and labels from the command line: the same checks as the API's, and the list filtered by
/// tag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_are_tagged_and_labelled_from_the_command_line() {
    let env = Env::start(WorldSource::Demo).await;
    env.login(MEGAN, &[]).await;
    env.json(&["inspect", "--json"]);
    let ok = |args: &[&str]| {
        let out = env.run(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let said = ok(&["tenants", "tag", "--tenant", "Northwind Traders", "--add", "Prod", "--add", "site:LON"]);
    assert!(said.contains("prod, site:lon"), "{said}");
    let said = ok(&["tenants", "tag", "--tenant", "Northwind Traders"]);
    assert!(said.contains("prod, site:lon"), "shown without a change: {said}");
    ok(&["tenants", "tag", "--tenant", "margiestravel.onmicrosoft.com", "--add", "prod"]);
    ok(&["tenants", "tag", "--tenant", "Northwind Traders", "--remove", "site:lon", "--add", "eu"]);
    let tagged = env.json(&["tenants", "--json", "--tag", "PROD"]);
    let mut names: Vec<(String, Value)> = tagged["tenants"]
        .as_array()
        .expect("tenants")
        .iter()
        .map(|t| (t["display_name"].as_str().unwrap_or_default().to_string(), t["tags"].clone()))
        .collect();
    names.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        names,
        vec![
            ("Margie's Travel".to_string(), serde_json::json!(["prod"])),
            ("Northwind Traders".to_string(), serde_json::json!(["eu", "prod"]))
        ]
    );
    let table = String::from_utf8_lossy(&env.run(&["tenants", "--tag", "eu"]).stdout).to_string();
    assert!(table.contains("TAGS") && table.contains("eu,prod") && !table.contains("Margie"), "{table}");

    // Labels are shown beside the tenant's name, never instead of it, and cleared.
    ok(&["tenants", "label", "--tenant", "Northwind Traders", "NW (EU)"]);
    let listed = env.json(&["tenants", "--json", "--tag", "eu"]);
    assert_eq!(listed["tenants"][0]["shown_name"], "Northwind Traders [NW (EU)]", "{listed}");
    ok(&["tenants", "label", "--tenant", "Northwind Traders", "--clear"]);
    let listed = env.json(&["tenants", "--json", "--tag", "eu"]);
    assert!(listed["tenants"][0]["label"].is_null(), "{listed}");

    // Bad input is refused with the reason, and changes nothing.
    for args in [
        &["tenants", "tag", "--tenant", "Northwind Traders", "--add", "two words"][..],
        &["tenants", "label", "--tenant", "Northwind Traders", "evil\u{1b}[2J"],
        &["tenants", "label", "--tenant", "Northwind Traders"],
        &["tenants", "tag", "--tenant", "nosuch.example", "--add", "x"],
    ] {
        let out = env.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let listed = env.json(&["tenants", "--json", "--tag", "eu"]);
    assert_eq!(listed["tenants"][0]["tags"], serde_json::json!(["eu", "prod"]));
    assert!(listed["tenants"][0]["label"].is_null());
    let none = env.run(&["tenants", "--tag", "nothing-has-this"]);
    assert!(String::from_utf8_lossy(&none.stderr).contains("No tenant is tagged"), "{none:?}");
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

/// The demo world with Woodgrove's own app healthy: a current secret and every application
/// permission the collectors need.
fn healthy_woodgrove_world(dir: &std::path::Path) -> std::path::PathBuf {
    let demo = include_str!("../../sim/src/world/demo.toml");
    let world = demo
        .replacen("start = \"-370d\"\nexpires = \"-5d\"", "start = \"-10d\"\nexpires = \"+300d\"", 1)
        .replacen(
            "\"RoleManagement.Read.Directory\", \"Application.Read.All\", \"SecurityEvents.Read.All\", \"Device.Read.All\",\n]",
            "\"RoleManagement.Read.Directory\", \"Application.Read.All\", \"SecurityEvents.Read.All\", \"Device.Read.All\",\n  \"DeviceManagementManagedDevices.Read.All\",\n]",
            1,
        );
    assert_ne!(world, demo, "the demo world changed: update this test's edit");
    let path = dir.join("world.toml");
    std::fs::write(&path, world).expect("world file");
    path
}

async fn add_woodgrove_app(env: &Env) {
    let app =
        env.sim.ready.apps.iter().find(|a| a.display_name == "Woodgrove tenantscope reader").expect("app").clone();
    let out = env
        .command()
        .args(["tenants", "add-app", "--tenant", "woodgrovebank.onmicrosoft.com", "--client-id", &app.client_id])
        .args(["--secret-env", "WOODGROVE_SECRET", "--label", "Woodgrove Bank"])
        .env("WOODGROVE_SECRET", app.client_secret.expect("secret"))
        .output()
        .expect("add-app");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_runs_the_checks_each_kind_of_access_needs_and_passes_healthy_tenants() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = Env::start(WorldSource::File(healthy_woodgrove_world(dir.path()))).await;
    env.login(MEGAN, &[]).await;
    env.login("it-admin@adatumcorp.onmicrosoft.com", &["--direct", "--tenant", "adatumcorp.onmicrosoft.com"]).await;
    add_woodgrove_app(&env).await;
    env.json(&["inspect", "--json"]);

    // A healthy tenant signed in directly, and one read with its own app, pass.
    for tenant in ["adatumcorp.onmicrosoft.com", "woodgrovebank.onmicrosoft.com", "Northwind Traders"] {
        let out = env.run(&["doctor", "--tenant", tenant, "--json"]);
        let d: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("doctor {tenant}: {e}: {}", String::from_utf8_lossy(&out.stderr)));
        assert!(out.status.success(), "doctor {tenant}: {d:#}");
        assert!(d["cause"].is_null(), "doctor {tenant}: {d:#}");
        let failed: Vec<&Value> = d["checks"].as_array().unwrap().iter().filter(|c| c["status"] == "fail").collect();
        assert!(failed.is_empty(), "doctor {tenant}: {failed:#?}");
        // A customer is never told to consent a partner-only permission.
        let permissions = d["checks"][4]["summary"].as_str().unwrap_or_default();
        assert!(!permissions.contains("DelegatedAdminRelationship.Read.All"), "doctor {tenant}: {d:#}");
    }
    let woodgrove = env.json(&["doctor", "--tenant", "woodgrovebank.onmicrosoft.com", "--json"]);
    assert_eq!(woodgrove["auth"], "app");
    assert_eq!(woodgrove["checks"][0]["status"], "skipped", "no user, no MFA: {woodgrove:#}");
    assert_eq!(woodgrove["checks"][1]["status"], "skipped", "no GDAP: {woodgrove:#}");

    // The same app without Policy.Read.All: the cause is the missing permission, and its fix is in
    // Woodgrove's own app registration, not Partner Center.
    env.control(
        "actions",
        serde_json::json!([{"action": "grant_consent", "tenant": "woodgrovebank.onmicrosoft.com", "app": "Woodgrove tenantscope reader",
            "application": ["Directory.Read.All", "Organization.Read.All", "User.Read.All", "AuditLog.Read.All",
                "RoleManagement.Read.Directory", "Application.Read.All", "SecurityEvents.Read.All", "Device.Read.All",
                "DeviceManagementManagedDevices.Read.All"]}]),
    )
    .await;
    let d = env.json(&["doctor", "--tenant", "woodgrovebank.onmicrosoft.com", "--json"]);
    assert_eq!(d["cause"], "permission_missing", "{d:#}");
    let fix = d["diagnosis"]["fix"].as_array().expect("fix");
    assert!(fix.iter().all(|s| !s.as_str().unwrap_or_default().contains("Partner Center")), "{fix:#?}");
    assert!(fix.iter().any(|s| s.as_str().unwrap_or_default().contains("own app registration")), "{fix:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_short_of_several_permissions_is_told_all_of_them_and_groups_keep_each_tenant() {
    let env = Env::start(WorldSource::Demo).await;
    env.login(MEGAN, &[]).await;
    let report = env.json(&["inspect", "--json"]);
    let margie = report["tenants"].as_array().unwrap().iter().find(|t| t["display_name"] == "Margie's Travel").unwrap();
    let summary = margie["diagnosis"]["summary"].as_str().unwrap_or_default();
    for permission in ["Policy.Read.All", "AuditLog.Read.All", "DeviceManagementManagedDevices.Read.All"] {
        assert!(summary.contains(permission), "{permission} missing from: {summary}");
    }
    assert!(summary.contains("conditionalAccessPolicies"), "the collectors each blocks: {summary}");
    // Each tenant of a cause keeps its own line; no tenant is shown another's summary.
    let text = String::from_utf8_lossy(&env.run(&["inspect"]).stdout).to_string();
    for t in report["tenants"].as_array().unwrap().iter().filter(|t| !t["diagnosis"].is_null()) {
        let line =
            format!("- {}: {}", t["display_name"].as_str().unwrap(), t["diagnosis"]["summary"].as_str().unwrap());
        assert!(text.contains(&line), "missing {line:?} in:\n{text}");
    }
    // A fix that names a tenant is shared only by that tenant.
    for group in report["causes"].as_array().unwrap() {
        let tenants = group["tenants"].as_array().unwrap();
        if tenants.len() > 1 {
            for name in tenants {
                let name = name.as_str().unwrap();
                assert!(!group["fix"].to_string().contains(name), "{name} named in a shared fix: {group:#}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_metrics_and_console_show_one_number_for_one_thing() {
    let env = Env::start(WorldSource::Demo).await;
    env.login(MEGAN, &[]).await;
    let inspect = env.json(&["inspect", "--json"]);
    // The partner's requests are counted too.
    assert!(inspect["partner"]["requests"].as_u64().is_some_and(|n| n > 0), "{:#}", inspect["partner"]);
    let total: u64 = inspect["tenants"].as_array().unwrap().iter().filter_map(|t| t["requests"].as_u64()).sum();
    assert_eq!(
        inspect["stats"]["graph_requests"].as_u64(),
        Some(total + inspect["partner"]["requests"].as_u64().unwrap())
    );

    let report = env.json(&["report", "--format", "json"]);
    let metrics = env.json(&["metrics", "--json"]);
    let by_id = |id: &Value| metrics["tenants"].as_array().unwrap().iter().find(|t| t["tenant_id"] == *id).cloned();
    let mut compared = 0;
    for t in report["tenants"].as_array().unwrap().iter().chain(std::iter::once(&report["partner"])) {
        let Some(m) = by_id(&t["id"]) else { continue };
        for (name, value) in t["figures"].as_object().unwrap() {
            assert_eq!(m["metrics"][name], *value, "{} {name}: report and metrics differ", t["name"]);
            compared += 1;
        }
    }
    assert!(compared > 100, "only {compared} figures compared");
    // Tailspin Toys, whose figures once differed between the two.
    let tailspin =
        report["tenants"].as_array().unwrap().iter().find(|t| t["name"] == "Tailspin Toys").expect("tailspin");
    assert!(tailspin["figures"]["global_admins"].is_number() && tailspin["figures"]["mfa_registered_pct"].is_number());
    // One definition of a tenant: the partner is not counted among the customers, as on the console.
    assert_eq!(report["counts"]["total"].as_u64(), inspect["stats"]["tenants"].as_u64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_html_report_shows_warnings_changes_alerts_links_and_folds_failed_tenants() {
    let env = Env::start(WorldSource::Demo).await;
    env.login(MEGAN, &[]).await;
    env.json(&["inspect", "--json"]);
    env.control(
        "actions",
        serde_json::json!([{"action": "create_user", "tenant": "northwindtraders.onmicrosoft.com",
            "upn": "eve@northwindtraders.onmicrosoft.com", "display_name": "Eve <b>Admin</b>", "roles": ["Global Administrator"]}]),
    )
    .await;
    env.json(&["inspect", "--json"]);
    let path = env.dir.path().join("r.html");
    let out = env.run(&["report", "--format", "html", "--output", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let page = std::fs::read_to_string(&path).unwrap();
    assert!(page.contains("id=\"warnings\"") && page.contains("expir"), "GDAP expiry warnings are shown");
    assert!(page.contains("id=\"changes\"") && page.contains("user_added"), "this run's changes are shown");
    assert!(page.contains("id=\"alerts\""), "open alerts are shown");
    assert!(page.contains("<a href=\"https://entra.microsoft.com"), "URLs are links");
    assert!(page.contains("<code>tenantscope "), "commands are code");
    assert!(!page.contains("`tenantscope"), "no literal backticks");
    assert!(!page.contains("<b>Admin</b>"), "tenant data is escaped");
    assert!(
        page.contains("Eve &#60;b&#62;Admin") || page.contains("Eve &lt;b&gt;Admin"),
        "the new user's name is shown, escaped"
    );
    // Alpine Ski House failed as a whole: its collectors are folded into one line.
    let alpine = page.rsplit("<b>Alpine Ski House</b>").next().unwrap_or_default();
    assert!(alpine.contains("None of its"), "failed tenant's rows are folded");
    // The report file is private.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_relevant_changes_are_seen_by_the_next_plain_inspect() {
    let env = Env::start(WorldSource::Demo).await;
    env.login(MEGAN, &[]).await;
    env.json(&["inspect", "--json"]);
    env.control(
        "actions",
        serde_json::json!([
            {"action": "create_user", "tenant": "northwindtraders.onmicrosoft.com",
             "upn": "mallory@northwindtraders.onmicrosoft.com", "display_name": "Mallory", "roles": ["Global Administrator"]},
            {"action": "set_ca_policy", "tenant": "northwindtraders.onmicrosoft.com",
             "policy": {"name": "Require MFA for administrators", "state": "disabled", "roles": ["Global Administrator", "User Administrator"],
                        "exclude_service_providers": true, "grant": "mfa"}},
            {"action": "set_security_defaults", "tenant": "wideworldimporters.onmicrosoft.com", "enabled": false},
            {"action": "grant_consent", "tenant": "northwindtraders.onmicrosoft.com", "app": "Lakeside automation",
             "application": ["Mail.ReadWrite"]},
        ]),
    )
    .await;
    // Minutes later, well inside every freshness window the catalog once had for these.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    env.json(&["inspect", "--json"]);
    let changes = env.json(&["changes", "--json"]);
    let kinds: Vec<String> = changes["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["event"]["kind"].as_str().map(String::from))
        .collect();
    for wanted in [
        "global_admin_assigned",
        "ca_policy_disabled",
        "security_defaults_disabled",
        "service_principal_with_app_permissions_added",
    ] {
        assert!(kinds.iter().any(|k| k == wanted), "{wanted} not seen: {kinds:?}");
    }
    // The application permission is named by its value, which makes it count as high privilege.
    let north = env.tenant_id("northwindtraders");
    let high = env.json(&["metrics", "--json", "--tenant", &north, "--name", "high_privilege_app_permissions"]);
    assert_eq!(high["tenants"][0]["metrics"]["high_privilege_app_permissions"], 1, "{high:#}");
    // Each collector's window is shown by permissions, and in the dataprint.
    let p = env.json(&["permissions", "--json"]);
    let ra = p["collectors"].as_array().unwrap().iter().find(|c| c["collector"] == "roleAssignments").unwrap();
    assert_eq!(ra["fresh_minutes"], 0);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_pipe_ends_the_command_quietly() {
    use std::io::Read;
    use std::process::Stdio;
    let env = Env::start(WorldSource::Demo).await;
    env.login(MEGAN, &[]).await;
    env.json(&["inspect", "--json"]);
    // `tenantscope tenants | head -0`: the reader is gone before the first line is written (the
    // command opens its database first), so every write fails with EPIPE.
    let mut child = env.command().arg("tenants").stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("runs");
    drop(child.stdout.take());
    let status = child.wait().expect("exits");
    let mut stderr = String::new();
    child.stderr.take().expect("stderr").read_to_string(&mut stderr).expect("stderr");
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dataprints_can_be_shown_queried_and_exported_and_gdap_is_listed_by_expiry() {
    let env = Env::start(WorldSource::Demo).await;
    env.login(MEGAN, &[]).await;
    env.json(&["inspect", "--json"]);
    let text =
        String::from_utf8_lossy(&env.run(&["dataprint", "show", "--tenant", "Northwind Traders"]).stdout).to_string();
    assert!(text.contains("conditionalAccessPolicies") && text.contains("every run"), "{text}");
    let upns = env.json(&[
        "dataprint",
        "show",
        "--tenant",
        "northwindtraders.onmicrosoft.com",
        "--query",
        "values(collections.users)[].userPrincipalName",
    ]);
    assert!(
        upns.as_array().is_some_and(|u| u
            .iter()
            .any(|x| x.as_str().is_some_and(|s| s.ends_with("@northwindtraders.onmicrosoft.com")))),
        "{upns}"
    );
    let bad = env.run(&["dataprint", "show", "--tenant", "Northwind Traders", "--query", "collections.["]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--query"));
    let out = env.dir.path().join("north.json");
    let export = env.run(&["dataprint", "export", "--tenant", "Northwind Traders", "--output", out.to_str().unwrap()]);
    assert!(export.status.success(), "{}", String::from_utf8_lossy(&export.stderr));
    let doc: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(doc["schema"], "tenantscope.dataprint/1");

    let gdap = env.json(&["gdap", "--json"]);
    let rels = gdap["relationships"].as_array().expect("relationships");
    assert!(rels.len() >= 10, "{gdap:#}");
    let ends: Vec<&str> = rels.iter().filter_map(|r| r["end"].as_str()).collect();
    let mut sorted = ends.clone();
    sorted.sort();
    assert_eq!(ends, sorted, "soonest to end first");
    // Fourth Coffee's helpdesk group has no tenantscope user in it, and is still named.
    let fourth = rels.iter().find(|r| r["customer"] == "Fourth Coffee").expect("fourth coffee");
    let groups = fourth["groups"].as_array().unwrap();
    assert!(
        groups.iter().any(|g| g["user_is_member"] == false && !g["name"].as_str().unwrap().contains('-')),
        "{fourth:#}"
    );
    let table = String::from_utf8_lossy(&env.run(&["gdap"]).stdout).to_string();
    assert!(table.contains("DAYS LEFT") && table.contains("Fourth Coffee"), "{table}");
}
