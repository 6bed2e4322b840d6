//! The demo world end to end: Megan signs in once by device code through the scripted user, and her
//! refresh token is redeemed at every customer, each of which shows the failure the docs promise.

mod common;

use common::*;

async fn redeem(sim: &TestSim, customer: &str, rt: &str) -> Resp {
    sim.refresh(&sim.tenant(customer), rt, None).await
}

async fn token_at(sim: &TestSim, customer: &str, rt: &str) -> String {
    let r = redeem(sim, customer, rt).await;
    assert_eq!(r.status, 200, "{customer}: {}", r.text);
    let token = r.json()["access_token"].as_str().unwrap().to_string();
    let c = claims(&token);
    assert_eq!(c["tid"], sim.tenant(customer).as_str(), "{customer}");
    assert_eq!(c["idp"], format!("https://sts.windows.net/{}/", sim.tenant("lakeside")), "{customer}");
    assert_eq!(c["amr"], serde_json::json!(["pwd", "mfa"]));
    // Every customer that issues a token also answers a basic read with it.
    let org = sim.graph(&token, "/v1.0/organization").await;
    assert_eq!(org.status, 200, "{customer}: {}", org.text);
    assert_eq!(org.json()["value"][0]["id"], sim.tenant(customer).as_str());
    token
}

/// Signs a customer's own administrator in directly (by device code at that tenant); returns the refresh token.
async fn direct_sign_in(sim: &TestSim, customer: &str, upn: &str) -> String {
    let tokens = sim.device_code(&sim.tenant(customer), upn).await;
    assert_eq!(claims(tokens["access_token"].as_str().unwrap())["tid"], sim.tenant(customer).as_str());
    tokens["refresh_token"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_demo_customer_shows_its_failure() {
    let sim = TestSim::demo().await;
    let tokens = sim.device_code(&sim.tenant("lakeside"), MEGAN).await;
    let rt = tokens["refresh_token"].as_str().unwrap().to_string();
    let rt = rt.as_str();

    // Healthy customers.
    for customer in ["northwind", "tailspin"] {
        let token = token_at(&sim, customer, rt).await;
        assert_eq!(sim.graph(&token, "/v1.0/identity/conditionalAccess/policies").await.status, 200, "{customer}");
    }
    // No GDAP presence: a contract only (Alpine), an expired relationship (Bellows), an assignment to a
    // group Megan is not in (Fourth Coffee), and the directly managed tenants.
    for customer in ["alpine", "bellows", "fourth", "woodgrove", "adatum", "fabrikam"] {
        assert_aad(&redeem(&sim, customer, rt).await, 400, "invalid_grant", 50020);
    }
    // Coho (Directory Readers only) and Margie's (consent without Policy.Read.All) issue tokens, but deny policies.
    for customer in ["coho", "margie"] {
        let token = token_at(&sim, customer, rt).await;
        let r = sim.graph(&token, "/v1.0/identity/conditionalAccess/policies").await;
        assert_graph(&r, 403, "Authorization_RequestDenied");
    }
    // Litware never authorized the app for partner admins.
    assert_aad(&redeem(&sim, "litware", rt).await, 400, "invalid_grant", 90099);
    // Proseware blocks sign-ins from outside its office, service providers included.
    assert_aad(&redeem(&sim, "proseware", rt).await, 400, "invalid_grant", 53003);
    // Wide World has no Entra ID P1: the token works, sign-in logs are premium.
    let wide = token_at(&sim, "wideworld", rt).await;
    let r = sim.graph(&wide, "/v1.0/auditLogs/signIns").await;
    assert_graph(&r, 403, "Authentication_RequestFromNonPremiumTenantOrB2CTenant");
    // Woodgrove reads itself with its own app, whose secret has expired.
    let r = sim.client_credentials(&sim.tenant("woodgrove"), WOODGROVE_READER, WOODGROVE_SECRET).await;
    assert_aad(&r, 401, "invalid_client", 7000222);
    // Jordan is risky in the partner tenant: blocked as a delegated admin everywhere.
    let jordan = sim.device_code(&sim.tenant("lakeside"), JORDAN).await;
    for customer in ["northwind", "tailspin", "trey"] {
        let r = redeem(&sim, customer, jordan["refresh_token"].as_str().unwrap()).await;
        assert_aad(&r, 400, "invalid_grant", 530034);
    }
    // Adatum's and Fabrikam's own admins sign in, then the after-sign-in scenario changes Adatum's password
    // and disables Fabrikam's admin.
    let adatum = direct_sign_in(&sim, "adatum", "it-admin@adatumcorp.onmicrosoft.com").await;
    let fabrikam = direct_sign_in(&sim, "fabrikam", "it-admin@fabrikamresidences.onmicrosoft.com").await;
    token_at_home(&sim, "adatum", &adatum).await;
    token_at_home(&sim, "fabrikam", &fabrikam).await;
    sim.scenario("after-sign-in").await;
    assert_aad(&redeem(&sim, "adatum", &adatum).await, 400, "invalid_grant", 50173);
    assert_aad(&redeem(&sim, "fabrikam", &fabrikam).await, 400, "invalid_grant", 50057);
    // Trey works until its one-hour sign-in frequency has passed since Megan's MFA.
    token_at(&sim, "trey", rt).await;
    sim.advance("61m").await;
    let r = redeem(&sim, "trey", rt).await;
    let body = assert_aad(&r, 400, "interaction_required", 50078);
    assert_eq!(body["suberror"], "basic_action");
    // The other healthy customers do not care how old the MFA is.
    assert_eq!(redeem(&sim, "northwind", rt).await.status, 200);
}

async fn token_at_home(sim: &TestSim, customer: &str, rt: &str) {
    let r = redeem(sim, customer, rt).await;
    assert_eq!(r.status, 200, "{customer}: {}", r.text);
}
