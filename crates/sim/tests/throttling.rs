//! Microsoft Graph throttling: resource units per app and tenant, Conditional Access at one request per
//! second per tenant without `Retry-After`, reports at five per ten seconds, and early retries.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

fn retry_after(r: &Resp) -> Option<u64> {
    r.header("retry-after").map(|v| v.parse().expect("Retry-After is whole seconds"))
}

#[tokio::test(flavor = "multi_thread")]
async fn resource_units_are_reported_and_counted_per_app_and_tenant() {
    let sim = TestSim::demo().await;
    let token = sim.automation_token().await;
    // Base costs: users 2, subscribedSkus 3, organization 1; $select -1; $top below 20 -1; $expand +1.
    for (path, cost) in [
        ("/v1.0/users", "2"),
        ("/v1.0/users?$select=displayName", "1"),
        ("/v1.0/users?$select=displayName&$top=5", "1"),
        ("/v1.0/subscribedSkus", "3"),
        ("/v1.0/organization", "1"),
        ("/v1.0/groups?$expand=members", "3"),
    ] {
        let r = sim.graph(&token, path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        assert_eq!(r.header("x-ms-resource-unit"), Some(cost), "{path}");
    }
    // Ten resource units per ten seconds: five user lists fit, the sixth is throttled.
    sim.set_throttle(json!({"small": 10.0})).await;
    for i in 0..5 {
        let r = sim.graph(&token, "/v1.0/users").await;
        assert_eq!(r.status, 200, "request {i}: {}", r.text);
        // Above 80 % of the bucket Graph says how full it is (the bucket refills while the test runs).
        let used: Option<f64> = r.header("x-ms-throttle-limit-percentage").map(|p| p.parse().unwrap());
        match i {
            0 | 1 => assert_eq!(used, None, "request {i}"),
            4 => assert!(used.is_some_and(|u| u >= 0.8), "request {i}: {used:?}"),
            _ => {}
        }
    }
    let r = sim.graph(&token, "/v1.0/users").await;
    assert_graph(&r, 429, "TooManyRequests");
    let lakeside = sim.tenant("lakeside");
    assert_eq!(
        r.header("x-ms-throttle-scope"),
        Some(format!("Tenant_Application/Read/{AUTOMATION}/{lakeside}").as_str())
    );
    assert_eq!(r.header("x-ms-throttle-information"), Some("ResourceUnitLimitExceeded"));
    let wait = retry_after(&r).expect("Retry-After");
    assert!((1..=3).contains(&wait), "{wait}");
    assert!(r.header("x-ms-resource-unit").is_none());
    // Retrying early is throttled again and counted as an early retry.
    let again = sim.graph(&token, "/v1.0/users").await;
    assert_eq!(again.status, 429);
    let counters = sim.counters().await;
    assert_eq!(counters["throttled"], 2);
    assert_eq!(counters["early_retries"], 1);
    assert_eq!(counters["tenants"][&lakeside]["early_retries"], 1);
    // Waiting as told is enough.
    tokio::time::sleep(Duration::from_secs(retry_after(&again).unwrap_or(wait))).await;
    let r = sim.graph(&token, "/v1.0/users").await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Another tenant has its own bucket: Megan at Northwind is not throttled by the partner's usage.
    let tokens = sim.device_code(&lakeside, MEGAN).await;
    let north = sim.refresh(&sim.tenant("northwind"), tokens["refresh_token"].as_str().unwrap(), None).await;
    let north = north.json()["access_token"].as_str().unwrap().to_string();
    assert_eq!(sim.graph(&north, "/v1.0/users?$select=id").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn conditional_access_allows_one_request_per_second_per_tenant_without_retry_after() {
    let sim = TestSim::demo().await;
    let app = sim.automation_token().await;
    let megan = sim.device_code(&sim.tenant("lakeside"), MEGAN).await["access_token"].as_str().unwrap().to_string();
    let path = "/v1.0/identity/conditionalAccess/policies";
    assert_eq!(sim.graph(&app, path).await.status, 200);
    // The limit is per tenant for all apps: Megan's app is throttled by the automation app's request.
    let r = sim.graph(&megan, path).await;
    assert_graph(&r, 429, "TooManyRequests");
    assert_eq!(retry_after(&r), None, "Conditional Access sends no Retry-After");
    assert!(r.header("x-ms-throttle-scope").is_some());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(sim.graph(&megan, path).await.status, 200);
    // Named locations share the same limit.
    let r = sim.graph(&app, "/v1.0/identity/conditionalAccess/namedLocations").await;
    assert_eq!(r.status, 429);
}

#[tokio::test(flavor = "multi_thread")]
async fn reports_allow_five_requests_per_ten_seconds() {
    let sim = TestSim::demo().await;
    let megan = sim.device_code(&sim.tenant("lakeside"), MEGAN).await["access_token"].as_str().unwrap().to_string();
    for i in 0..5 {
        let path = if i % 2 == 0 {
            "/v1.0/auditLogs/signIns"
        } else {
            "/v1.0/reports/authenticationMethods/userRegistrationDetails"
        };
        assert_eq!(sim.graph(&megan, path).await.status, 200, "request {i}");
    }
    let r = sim.graph(&megan, "/v1.0/auditLogs/signIns").await;
    assert_graph(&r, 429, "TooManyRequests");
    let wait = retry_after(&r).expect("reports send Retry-After");
    assert!((1..=10).contains(&wait), "{wait}");
    // Directory reads are not affected by the reports limit.
    assert_eq!(sim.graph(&megan, "/v1.0/users?$top=1").await.status, 200);
    let r = sim.graph(&megan, "/v1.0/auditLogs/signIns").await;
    assert_eq!(r.status, 429);
    assert_eq!(sim.counters().await["early_retries"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_can_be_turned_off_and_limits_read_back() {
    let sim = TestSim::demo().await;
    let limits = sim.control(reqwest::Method::GET, "/_sim/throttle", None).await.json();
    assert_eq!(limits["reports_per_10s"], 5.0);
    assert_eq!(limits["conditional_access_per_second"], 1.0);
    assert_eq!(limits["small"], 3500.0);
    sim.set_throttle(json!({"enabled": false})).await;
    let app = sim.automation_token().await;
    for _ in 0..5 {
        assert_eq!(sim.graph(&app, "/v1.0/identity/conditionalAccess/policies").await.status, 200);
    }
    assert_eq!(sim.counters().await["throttled"], 0);
}
