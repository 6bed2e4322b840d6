//! Graph responses compared with the payloads Microsoft documents (copied from the protocol reference into
//! `tests/fixtures/payloads`): every key of a representative documented object must exist in the
//! simulator's object with the same JSON type (null matches anything), recursively; keys the simulator
//! adds beyond the documented example must be real properties listed here.

mod common;

use common::*;
use serde_json::{Value, json};

/// Compares `doc` (Microsoft's example) with `ours`, collecting differences under `path`.
fn compare(path: &str, doc: &Value, ours: &Value, extra_ok: &[&str], out: &mut Vec<String>) {
    match (doc, ours) {
        (Value::Null, _) | (_, Value::Null) => {}
        (Value::Object(d), Value::Object(o)) => {
            for (k, dv) in d {
                match o.get(k) {
                    None => out.push(format!("{path}.{k} is missing")),
                    Some(ov) => compare(&format!("{path}.{k}"), dv, ov, extra_ok, out),
                }
            }
            for k in o.keys() {
                if !d.contains_key(k) && !extra_ok.contains(&k.as_str()) {
                    out.push(format!("{path}.{k} is not in Microsoft's example"));
                }
            }
        }
        (Value::Array(d), Value::Array(o)) => {
            if let (Some(dv), Some(ov)) = (d.first(), o.first()) {
                compare(&format!("{path}[0]"), dv, ov, extra_ok, out);
            }
        }
        (d, o) if kind(d) != kind(o) => out.push(format!("{path}: {} in the example, {} here", kind(d), kind(o))),
        _ => {}
    }
}

fn assert_shape(name: &str, doc: &Value, ours: &Value, extra_ok: &[&str]) {
    let mut diffs = Vec::new();
    compare(name, doc, ours, extra_ok, &mut diffs);
    assert!(diffs.is_empty(), "{name} differs from Microsoft's shape:\n{}\nours: {ours:#}", diffs.join("\n"));
}

fn first_item(body: &Value) -> &Value {
    body["value"].as_array().and_then(|v| v.first()).unwrap_or_else(|| panic!("no items in {body}"))
}

fn doc_body(file: &str) -> Value {
    let p = payload(file);
    if let Some(b) = p.get("body") {
        return b.clone();
    }
    p["examples"][0]["body"].clone()
}

/// Megan at home (Global Reader, MFA): she may read everything in the partner tenant.
async fn megan(sim: &TestSim) -> String {
    let t = sim.device_code(&sim.tenant("lakeside"), MEGAN).await;
    t["access_token"].as_str().unwrap().to_string()
}

async fn ok_json(sim: &TestSim, token: &str, path: &str) -> Value {
    let r = sim.graph(token, path).await;
    assert_eq!(r.status, 200, "{path}: {}", r.text);
    assert!(r.header("content-type").unwrap().starts_with("application/json;odata.metadata=minimal"));
    assert_eq!(r.header("odata-version"), Some("4.0"));
    assert!(r.header("x-ms-resource-unit").is_some(), "{path} lacks x-ms-resource-unit");
    r.json()
}

#[tokio::test(flavor = "multi_thread")]
async fn directory_objects_have_microsofts_shapes() {
    let sim = TestSim::demo().await;
    let token = megan(&sim).await;
    let cases: &[(&str, &str, &[&str])] = &[
        ("/v1.0/users", "graph_users_list.json", &[]),
        ("/v1.0/organization", "graph_organization_list.json", &[]),
        ("/v1.0/subscribedSkus", "graph_subscribedSkus_list.json", &[]),
        // templateId and the authentication-strength and context members exist in v1.0 since 2023.
        (
            "/v1.0/identity/conditionalAccess/policies",
            "graph_conditionalAccess_policies_list.json",
            &[
                "templateId",
                "userRiskLevels",
                "devices",
                "includeAuthenticationContextClassReferences",
                "includeGuestsOrExternalUsers",
                "excludeGuestsOrExternalUsers",
                "authenticationStrength",
            ],
        ),
        ("/v1.0/reports/authenticationMethods/userRegistrationDetails", "graph_userRegistrationDetails_list.json", &[]),
        ("/v1.0/tenantRelationships/delegatedAdminRelationships", "graph_delegatedAdminRelationships_list.json", &[]),
        ("/v1.0/tenantRelationships/delegatedAdminCustomers", "graph_delegatedAdminCustomers_list.json", &[]),
    ];
    for (path, file, extra) in cases {
        let body = ok_json(&sim, &token, path).await;
        let doc = doc_body(file);
        assert_eq!(
            keys(&doc).into_iter().filter(|k| k != "@odata.nextLink").collect::<Vec<_>>(),
            keys(&body).into_iter().filter(|k| k != "@odata.nextLink").collect::<Vec<_>>(),
            "{path} envelope"
        );
        assert!(body["@odata.context"].as_str().unwrap().contains("/$metadata#"), "{path}");
        assert_shape(path, first_item(&doc), first_item(&body), extra);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn gdap_child_resources_have_microsofts_shapes() {
    let sim = TestSim::demo().await;
    let token = megan(&sim).await;
    let rels = ok_json(&sim, &token, "/v1.0/tenantRelationships/delegatedAdminRelationships").await;
    let rel = rels["value"].as_array().unwrap().iter().find(|r| r["displayName"] == "Northwind read-only").unwrap();
    let id = rel["id"].as_str().unwrap();
    assert_eq!(rel["status"], "active");
    assert_eq!(rel["autoExtendDuration"], "P180D");
    let body =
        ok_json(&sim, &token, &format!("/v1.0/tenantRelationships/delegatedAdminRelationships/{id}/accessAssignments"))
            .await;
    let doc = doc_body("graph_delegatedAdmin_accessAssignments_list.json");
    assert_shape("accessAssignments", first_item(&doc), first_item(&body), &[]);
    assert_eq!(first_item(&body)["accessContainer"]["accessContainerType"], "securityGroup");
    let northwind = sim.tenant("northwind");
    let body = ok_json(
        &sim,
        &token,
        &format!("/v1.0/tenantRelationships/delegatedAdminCustomers/{northwind}/serviceManagementDetails"),
    )
    .await;
    let doc = doc_body("graph_delegatedAdminCustomer_serviceManagementDetails_list.json");
    assert_shape("serviceManagementDetails", first_item(&doc), first_item(&body), &[]);
    // The expired relationship reads as expired, and its customer is still listed as a customer.
    let bellows = rels["value"].as_array().unwrap().iter().find(|r| r["displayName"] == "Bellows read-only").unwrap();
    assert_eq!(bellows["status"], "expired");
}

#[tokio::test(flavor = "multi_thread")]
async fn error_bodies_match_the_documented_errors() {
    let sim = TestSim::demo().await;
    let lakeside = sim.tenant("lakeside");
    let tokens = sim.device_code(&lakeside, MEGAN).await;
    let rt = tokens["refresh_token"].as_str().unwrap();
    let margie =
        sim.refresh(&sim.tenant("margie"), rt, None).await.json()["access_token"].as_str().unwrap().to_string();
    let r = sim.graph(&margie, "/v1.0/identity/conditionalAccess/policies").await;
    let body = assert_graph(&r, 403, "Authorization_RequestDenied");
    let doc = payload("graph_error_403_Authorization_RequestDenied.json")["body"].clone();
    assert_shape("403", &doc, &body, &[]);
    assert_eq!(body["error"]["message"], doc["error"]["message"]);
    let wide =
        sim.refresh(&sim.tenant("wideworld"), rt, None).await.json()["access_token"].as_str().unwrap().to_string();
    let r = sim.graph(&wide, "/v1.0/auditLogs/signIns").await;
    let body = assert_graph(&r, 403, "Authentication_RequestFromNonPremiumTenantOrB2CTenant");
    let doc = payload("graph_error_403_nonpremium.json")["body"].clone();
    assert_shape("403 nonpremium", &doc, &body, &[]);
    // Throttling: shrink the reports limit to one request and ask twice.
    sim.set_throttle(json!({"reports_per_10s": 1.0})).await;
    let home = tokens["access_token"].as_str().unwrap();
    assert_eq!(sim.graph(home, "/v1.0/auditLogs/signIns").await.status, 200);
    let r = sim.graph(home, "/v1.0/auditLogs/signIns").await;
    let body = assert_graph(&r, 429, "TooManyRequests");
    let doc = payload("graph_error_429_throttled.json");
    // The documented 429 sample predates the client-request-id member that every other error carries.
    assert_shape("429", &doc["body"], &body, &["client-request-id"]);
    assert_eq!(body["error"]["innerError"]["status"], "429");
    assert_eq!(body["error"]["message"], doc["body"]["error"]["message"]);
    assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_responses_have_microsofts_shape() {
    let sim = TestSim::demo().await;
    let token = megan(&sim).await;
    let r = sim
        .batch(
            &token,
            &json!({"requests": [
                {"id": "1", "method": "GET", "url": "/me/memberOf"},
                {"id": "2", "method": "DELETE", "url": "/groups/0e226165-c685-41ce-8bfc-df8360ab325d"},
                {"id": "3", "method": "GET", "url": "users?$select=id,displayName,userPrincipalName&$count=true",
                    "headers": {"ConsistencyLevel": "eventual"}},
            ]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    let doc = payload("graph_batch_request_response.json")["body"].clone();
    assert_eq!(keys(&body), keys(&doc));
    let find = |id: &str| body["responses"].as_array().unwrap().iter().find(|x| x["id"] == id).unwrap().clone();
    let doc_find = |id: &str| doc["responses"].as_array().unwrap().iter().find(|x| x["id"] == id).unwrap().clone();
    let ok = find("1");
    assert_eq!(ok["status"], 200);
    // Compare the envelope and headers, then Megan's directory role with the documented one.
    let mut envelope = ok.clone();
    let mut doc_envelope = doc_find("1");
    let role = ok["body"]["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["@odata.type"] == "#microsoft.graph.directoryRole")
        .expect("Megan's Global Reader role")
        .clone();
    assert_shape("batch directoryRole", &doc_envelope["body"]["value"][0], &role, &[]);
    envelope["body"] = json!({});
    doc_envelope["body"] = json!({});
    assert_shape("batch 200", &doc_envelope, &envelope, &[]);
    let not_allowed = find("2");
    assert_eq!(not_allowed["status"], 405);
    assert_shape("batch 405", &doc_find("4"), &not_allowed, &[]);
    let counted = find("3");
    assert_eq!(counted["status"], 200);
    let users = sim.running.sim.world().resolve_tenant("lakesideit.onmicrosoft.com").unwrap().users.len();
    assert_eq!(counted["body"]["@odata.count"], users);
    assert_eq!(keys(&counted["body"]["value"][0]), vec!["displayName", "id", "userPrincipalName"]);
}
