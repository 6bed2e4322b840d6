//! Paging with `@odata.nextLink`, delta queries with `@odata.deltaLink`, and `$batch`.

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::{Value, json};

/// Megan's Graph token at a customer, redeemed from her partner refresh token.
async fn customer_token(sim: &TestSim, customer: &str) -> String {
    let tokens = sim.device_code(&sim.tenant("lakeside"), MEGAN).await;
    let r = sim.refresh(&sim.tenant(customer), tokens["refresh_token"].as_str().unwrap(), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["access_token"].as_str().unwrap().to_string()
}

/// Follows nextLinks from `path`; returns every item and the number of pages.
async fn all_pages(sim: &TestSim, token: &str, path: &str) -> (Vec<Value>, usize) {
    let mut items = Vec::new();
    let mut next = Some(sim.url(path));
    let mut pages = 0;
    while let Some(url) = next {
        assert!(url.starts_with(sim.base()), "nextLink leaves the simulator: {url}");
        let r = sim.graph(token, &url).await;
        assert_eq!(r.status, 200, "{url}: {}", r.text);
        let body = r.json();
        items.extend(body["value"].as_array().unwrap().iter().cloned());
        next = body["@odata.nextLink"].as_str().map(str::to_string);
        pages += 1;
        assert!(pages < 1000, "paging does not end");
    }
    (items, pages)
}

fn ids(items: &[Value]) -> Vec<String> {
    items.iter().map(|v| v["id"].as_str().expect("id").to_string()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn next_links_page_through_the_whole_set_without_duplicates() {
    let sim = TestSim::demo().await;
    let token = customer_token(&sim, "tailspin").await;
    let (everything, pages) = all_pages(&sim, &token, "/v1.0/users?$top=999").await;
    assert_eq!(pages, 1);
    let total = sim.running.sim.world().resolve_tenant("tailspintoys.onmicrosoft.com").unwrap().users.len();
    assert_eq!(everything.len(), total);
    assert!(total > 100, "Tailspin needs more users than one default page");
    let (default_pages, n) = all_pages(&sim, &token, "/v1.0/users").await;
    assert_eq!(n, 2, "default page size is 100");
    assert_eq!(ids(&default_pages), ids(&everything));
    for top in [1, 7, 50] {
        let (paged, n) = all_pages(&sim, &token, &format!("/v1.0/users?$top={top}&$select=id,displayName")).await;
        assert_eq!(n, total.div_ceil(top), "$top={top}");
        let list = ids(&paged);
        let unique: BTreeSet<&String> = list.iter().collect();
        assert_eq!(unique.len(), list.len(), "duplicates with $top={top}");
        assert_eq!(list, ids(&everything), "$top={top}");
        assert_eq!(keys(&paged[0]), vec!["displayName", "id"], "$select is carried into nextLink");
    }
    // Filters are carried into the nextLink too, and pages of a filtered set add up to the filtered set.
    let (enabled, _) = all_pages(&sim, &token, "/v1.0/users?$filter=accountEnabled%20eq%20true&$top=9").await;
    let (enabled_once, _) = all_pages(&sim, &token, "/v1.0/users?$filter=accountEnabled%20eq%20true&$top=999").await;
    assert_eq!(ids(&enabled), ids(&enabled_once));
    assert!(enabled.len() < total && !enabled.is_empty());
    let r = sim.graph(&token, "/v1.0/users?$top=5").await.json();
    let next = r["@odata.nextLink"].as_str().unwrap();
    assert!(next.contains("$skiptoken=") && next.contains("$top=5"), "{next}");
    // Groups and devices page the same way.
    let (groups, _) = all_pages(&sim, &token, "/v1.0/groups?$top=1").await;
    assert_eq!(
        groups.len(),
        sim.running.sim.world().resolve_tenant("tailspintoys.onmicrosoft.com").unwrap().groups.len()
    );
    let (devices, n) = all_pages(&sim, &token, "/v1.0/devices?$top=30").await;
    assert_eq!(devices.len(), 80);
    assert_eq!(n, 3);
}

/// Runs a delta round to its end; returns the items and the deltaLink.
async fn delta_round(sim: &TestSim, token: &str, url: &str) -> (Vec<Value>, String) {
    let mut items = Vec::new();
    let mut url = url.to_string();
    loop {
        let r = sim.graph(token, &url).await;
        assert_eq!(r.status, 200, "{url}: {}", r.text);
        let body = r.json();
        items.extend(body["value"].as_array().unwrap().iter().cloned());
        if let Some(delta) = body["@odata.deltaLink"].as_str() {
            assert!(body.get("@odata.nextLink").is_none());
            assert!(delta.contains("$deltatoken="), "{delta}");
            return (items, delta.to_string());
        }
        url = body["@odata.nextLink"].as_str().expect("nextLink or deltaLink").to_string();
        assert!(url.contains("$skiptoken="), "{url}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn users_delta_reports_changes_and_removals() {
    let sim = TestSim::demo().await;
    let token = customer_token(&sim, "tailspin").await;
    let (first, delta) =
        delta_round(&sim, &token, &sim.url("/v1.0/users/delta?$select=displayName,accountEnabled&$top=40")).await;
    let total = sim.running.sim.world().resolve_tenant("tailspintoys.onmicrosoft.com").unwrap().users.len();
    assert_eq!(first.len(), total);
    // Nothing changed: an empty round.
    let (none, delta) = delta_round(&sim, &token, &delta).await;
    assert!(none.is_empty(), "{none:?}");
    let victim =
        first.iter().find(|u| u["displayName"] != "Toby Tailspin").unwrap()["id"].as_str().unwrap().to_string();
    sim.action(json!([
        {"action": "create_user", "tenant": "tailspintoys.onmicrosoft.com", "upn": "new.hire@tailspintoys.onmicrosoft.com", "display_name": "New Hire"},
        {"action": "delete_user", "user": victim},
        {"action": "set_user_enabled", "user": "admin@tailspintoys.onmicrosoft.com", "enabled": false},
    ]))
    .await;
    let (changes, delta) = delta_round(&sim, &token, &delta).await;
    assert_eq!(changes.len(), 3, "{changes:#?}");
    assert!(changes.iter().any(|c| c["displayName"] == "New Hire"));
    assert!(changes.iter().any(|c| c["displayName"] == "Toby Tailspin" && c["accountEnabled"] == false));
    let removed = changes.iter().find(|c| c.get("@removed").is_some()).expect("a removal");
    assert_eq!(removed["id"], victim.as_str());
    assert_eq!(removed["@removed"]["reason"], "deleted");
    // $deltatoken=latest starts from now, without the existing objects.
    let r = sim.graph(&token, "/v1.0/users/delta?$deltatoken=latest&$select=displayName").await;
    assert_eq!(r.status, 200);
    let body = r.json();
    assert_eq!(body["value"], json!([]));
    let latest = body["@odata.deltaLink"].as_str().unwrap().to_string();
    sim.action(json!({"action": "create_user", "tenant": "tailspintoys.onmicrosoft.com", "upn": "second.hire@tailspintoys.onmicrosoft.com", "display_name": "Second Hire"})).await;
    let (after_latest, _) = delta_round(&sim, &token, &latest).await;
    assert_eq!(after_latest.len(), 1);
    assert_eq!(after_latest[0]["displayName"], "Second Hire");
    // Expired state: the client must resync.
    let r = sim.control(reqwest::Method::POST, "/_sim/delta/expire", None).await;
    assert_eq!(r.status, 200);
    let r = sim.graph(&token, &delta).await;
    let body = assert_graph(&r, 410, "resyncRequired");
    assert!(body["error"]["message"].as_str().unwrap().starts_with("Resync required."));
}

#[tokio::test(flavor = "multi_thread")]
async fn delta_tokens_expire_with_time_and_groups_report_member_changes() {
    let sim = TestSim::demo().await;
    let token = sim.automation_token().await;
    let (groups, delta) = delta_round(&sim, &token, &sim.url("/v1.0/groups/delta?$select=displayName,members")).await;
    let helpdesk = groups.iter().find(|g| g["displayName"] == "GDAP Helpdesk").unwrap();
    assert_eq!(helpdesk["members@delta"], json!([]));
    let agents = groups.iter().find(|g| g["displayName"] == "AdminAgents").unwrap();
    assert_eq!(agents["members@delta"].as_array().unwrap().len(), 4);
    assert_eq!(agents["members@delta"][0]["@odata.type"], "#microsoft.graph.user");
    sim.action(json!({"action": "add_group_member", "tenant": "lakesideit.onmicrosoft.com", "group": "GDAP Helpdesk", "user": MEGAN})).await;
    let (changed, delta) = delta_round(&sim, &token, &delta).await;
    assert_eq!(changed.len(), 1, "{changed:#?}");
    assert_eq!(changed[0]["displayName"], "GDAP Helpdesk");
    assert_eq!(changed[0]["members@delta"].as_array().unwrap().len(), 1);
    // A delta token unused for more than a week is gone.
    sim.advance("8d").await;
    let token = sim.automation_token().await;
    let r = sim.graph(&token, &delta).await;
    assert_graph(&r, 410, "resyncRequired");
    // A delta token of one collection is not accepted by another.
    let (_, users_delta) = delta_round(&sim, &token, &sim.url("/v1.0/users/delta")).await;
    let tok = users_delta.split("$deltatoken=").nth(1).unwrap();
    let r = sim.graph(&token, &format!("/v1.0/groups/delta?$deltatoken={tok}")).await;
    assert_graph(&r, 410, "resyncRequired");
}

#[tokio::test(flavor = "multi_thread")]
async fn batches_answer_each_request_on_its_own() {
    let sim = TestSim::demo().await;
    let token = customer_token(&sim, "coho").await;
    let missing = uuid::Uuid::new_v4();
    let r = sim
        .batch(
            &token,
            &json!({"requests": [
                {"id": "users", "method": "GET", "url": "/users?$top=2"},
                {"id": "policies", "method": "GET", "url": "/identity/conditionalAccess/policies"},
                {"id": "ghost", "method": "GET", "url": format!("/users/{missing}")},
                {"id": "after-ghost", "method": "GET", "url": "/organization", "dependsOn": ["ghost"]},
                {"id": "after-users", "method": "GET", "url": "/organization", "dependsOn": ["users"]},
                {"id": "absolute", "method": "GET", "url": "/v1.0/domains"},
                {"id": "full-url", "method": "GET", "url": sim.url("/v1.0/domains")},
            ]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    let status =
        |id: &str| body["responses"].as_array().unwrap().iter().find(|x| x["id"] == id).unwrap()["status"].clone();
    assert_eq!(status("users"), 200);
    assert_eq!(status("policies"), 403);
    assert_eq!(status("ghost"), 404);
    assert_eq!(status("after-ghost"), 424);
    assert_eq!(status("after-users"), 200);
    assert_eq!(status("absolute"), 200);
    // Graph wants relative URLs in a batch; a full URL fails on its own, as at Microsoft.
    assert_eq!(status("full-url"), 400);
    let full = body["responses"].as_array().unwrap().iter().find(|x| x["id"] == "full-url").unwrap();
    assert_eq!(full["body"]["error"]["message"], "Resource not found for the segment 'https:'.");
    let failed = body["responses"].as_array().unwrap().iter().find(|x| x["id"] == "after-ghost").unwrap();
    assert_eq!(failed["body"]["error"]["code"], "FailedDependency");
    let counters = sim.counters().await;
    assert!(counters["batch_requests"].as_u64().unwrap() >= 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_limits_and_throttled_items() {
    let sim = TestSim::demo().await;
    let token = sim.automation_token().await;
    let request = |i: usize| json!({"id": i.to_string(), "method": "GET", "url": "/organization"});
    let r = sim.batch(&token, &json!({"requests": (0..21).map(request).collect::<Vec<_>>()})).await;
    let body = assert_graph(&r, 400, "BadRequest");
    assert!(body["error"]["message"].as_str().unwrap().contains("limit of 20"));
    let r = sim.batch(&token, &json!({"requests": (0..20).map(request).collect::<Vec<_>>()})).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["responses"].as_array().unwrap().len(), 20);
    let r = sim
        .batch(
            &token,
            &json!({"requests": [
                {"id": "a", "method": "GET", "url": "/organization"},
                {"id": "A", "method": "GET", "url": "/organization"},
            ]}),
        )
        .await;
    let body = assert_graph(&r, 400, "BadRequest");
    assert!(body["error"]["message"].as_str().unwrap().contains("duplicate"));
    // Each item is throttled on its own: with room for two report requests, the third gets its own 429.
    sim.set_throttle(json!({"reports_per_10s": 2.0})).await;
    let megan = sim.device_code(&sim.tenant("lakeside"), MEGAN).await["access_token"].as_str().unwrap().to_string();
    let r = sim
        .batch(&megan, &json!({"requests": (1..=3).map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/auditLogs/signIns?$top=1"})).collect::<Vec<_>>()}))
        .await;
    assert_eq!(r.status, 200);
    let body = r.json();
    let responses = body["responses"].as_array().unwrap();
    assert_eq!(responses.iter().filter(|x| x["status"] == 200).count(), 2);
    let throttled = responses.iter().find(|x| x["status"] == 429).expect("a throttled item");
    let retry: u64 = throttled["headers"]["Retry-After"].as_str().unwrap().parse().unwrap();
    assert!((1..=10).contains(&retry), "{retry}");
    assert_eq!(throttled["body"]["error"]["code"], "TooManyRequests");
    assert_eq!(throttled["headers"]["x-ms-throttle-information"], "ResourceUnitLimitExceeded");
    assert_eq!(sim.counters().await["throttled"], 1);
}
