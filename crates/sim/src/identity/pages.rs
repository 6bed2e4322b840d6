//! The interactive sign-in: the authorize endpoint and the device-code page lead to the same HTML steps
//! (user name and password, then an authenticator code when policy asks for MFA, then consent when the
//! app is not consented), each a plain HTML form that a browser or the scripted user can submit.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::Duration;
use std::collections::HashMap;
use uuid::Uuid;

use super::issue::{check_account, check_presence, parse_scopes, requirements};
use super::token::read_form;
use super::{ClientIp, TenantSegment, resolve_segment};
use crate::catalog;
use crate::state::{AuthCode, Authn, DeviceStatus, Flow, FlowKind, SharedSim, Sim, opaque};
use crate::world::ServicePrincipal;

pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <style>body{{font-family:Segoe UI,Arial,sans-serif;max-width:440px;margin:60px auto;color:#1b1b1b}}\
         input,button{{display:block;width:100%;margin:8px 0;padding:8px;font-size:15px}}\
         .error{{color:#a80000}}.note{{color:#605e5c;font-size:13px}}</style></head>\
         <body><h2>{}</h2>{}<p class=\"note\">tenantscope simulator of Microsoft Entra ID</p></body></html>",
        esc(title),
        esc(title),
        body
    )
}

/// An error shown to the person signing in, with the AADSTS code in a machine-readable attribute.
fn error_page(code: u32, message: &str) -> Response {
    let body =
        format!("<div id=\"error\" data-code=\"{code}\"><p class=\"error\">AADSTS{code}: {}</p></div>", esc(message));
    (StatusCode::OK, Html(page("Sorry, but we're having trouble signing you in.", &body))).into_response()
}

fn login_page(flow_id: &str, hint: &str, app: &str, error: Option<(u32, &str)>) -> Response {
    let err = error
        .map(|(c, m)| format!("<p class=\"error\" id=\"error\" data-code=\"{c}\">AADSTS{c}: {}</p>", esc(m)))
        .unwrap_or_default();
    let body = format!(
        "<p>to continue to {}</p>{err}\
         <form id=\"login-form\" method=\"post\" action=\"/signin/login\">\
         <input type=\"hidden\" name=\"flow\" value=\"{}\">\
         <input type=\"email\" name=\"login\" placeholder=\"Email, phone, or Skype\" value=\"{}\" autocomplete=\"username\">\
         <input type=\"password\" name=\"passwd\" placeholder=\"Password\" autocomplete=\"current-password\">\
         <button type=\"submit\" name=\"action\" value=\"signin\">Sign in</button>\
         <button type=\"submit\" name=\"action\" value=\"cancel\">Cancel</button></form>",
        esc(app),
        esc(flow_id),
        esc(hint)
    );
    Html(page("Sign in", &body)).into_response()
}

fn mfa_page(flow_id: &str, upn: &str, error: bool) -> Response {
    let err = if error {
        "<p class=\"error\" id=\"error\" data-code=\"50074\">AADSTS50074: The code you entered is not valid. Try again.</p>"
    } else {
        ""
    };
    let body = format!(
        "<p>{}</p><p>Enter the code displayed in the authenticator app on your mobile device.</p>{err}\
         <form id=\"mfa-form\" method=\"post\" action=\"/signin/mfa\">\
         <input type=\"hidden\" name=\"flow\" value=\"{}\">\
         <input type=\"text\" name=\"otc\" inputmode=\"numeric\" autocomplete=\"one-time-code\" placeholder=\"Code\">\
         <button type=\"submit\">Verify</button></form>",
        esc(upn),
        esc(flow_id)
    );
    Html(page("Enter code", &body)).into_response()
}

fn consent_page(flow_id: &str, app: &str, tenant: &str, scopes: &[String]) -> Response {
    let items: String = scopes.iter().map(|s| format!("<li class=\"scope\">{}</li>", esc(s))).collect();
    let body = format!(
        "<p><b>{}</b> needs permission to access resources in your organization ({}) that only an admin can grant.</p>\
         <ul id=\"scopes\">{items}</ul>\
         <form id=\"consent-form\" method=\"post\" action=\"/signin/consent\">\
         <input type=\"hidden\" name=\"flow\" value=\"{}\">\
         <button type=\"submit\" name=\"action\" value=\"accept\">Accept</button>\
         <button type=\"submit\" name=\"action\" value=\"cancel\">Cancel</button></form>",
        esc(app),
        esc(tenant),
        esc(flow_id)
    );
    Html(page("Permissions requested", &body)).into_response()
}

fn registered_redirect(registered: &[String], requested: &str) -> bool {
    let Ok(req) = url::Url::parse(requested) else { return false };
    if req.fragment().is_some() {
        return false;
    }
    registered.iter().any(|r| {
        if r == requested {
            return true;
        }
        let Ok(reg) = url::Url::parse(r) else { return false };
        // Microsoft ignores the port of loopback redirect URIs, so native apps can listen on any free port.
        let loopback = matches!(req.host_str(), Some("localhost") | Some("127.0.0.1") | Some("[::1]"));
        loopback
            && req.scheme() == "http"
            && reg.scheme() == "http"
            && reg.host_str() == req.host_str()
            && reg.path() == req.path()
    })
}

pub(crate) async fn authorize(
    State(sim): State<SharedSim>,
    Path(tenant): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    ClientIp(ip): ClientIp,
) -> Response {
    if let Err(e) = resolve_segment(&sim, &tenant) {
        return error_page(e.code, &e.message);
    }
    let get = |k: &str| q.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let Some(client) = get("client_id") else {
        return error_page(900144, "The request body must contain the following parameter: 'client_id'.");
    };
    let Some(app) = Uuid::parse_str(client).ok().and_then(|id| sim.world().app(id).cloned()) else {
        return error_page(
            700016,
            &format!("Application with identifier '{}' was not found in the directory.", super::truncate(client, 64)),
        );
    };
    let Some(redirect_uri) = get("redirect_uri") else {
        return error_page(900971, "No reply address provided.");
    };
    if !registered_redirect(&app.redirect_uris, redirect_uri) {
        return error_page(
            50011,
            &format!(
                "The redirect URI '{}' specified in the request does not match the redirect URIs configured for the application '{}'.",
                super::truncate(redirect_uri, 200),
                app.client_id
            ),
        );
    }
    let state = get("state").map(str::to_string);
    let response_mode = get("response_mode").unwrap_or("query").to_string();
    let fail = |error: &str, code: u32, message: &str| {
        redirect_error(redirect_uri, &response_mode, state.as_deref(), error, code, message, &sim.base_url)
    };
    if !matches!(response_mode.as_str(), "query" | "form_post" | "fragment") {
        return fail(
            "invalid_request",
            900144,
            "The provided value for the input parameter 'response_mode' is not valid.",
        );
    }
    if get("response_type") != Some("code") {
        return fail("unsupported_response_type", 700054, "The response_type is not supported: use 'code'.");
    }
    let Some(scope) = get("scope") else {
        return fail("invalid_request", 900144, "The request body must contain the following parameter: 'scope'.");
    };
    if let Err(e) = parse_scopes(scope, &sim.base_url) {
        return fail(e.error, e.code, &e.message);
    }
    let challenge = get("code_challenge").map(str::to_string);
    let method = get("code_challenge_method").unwrap_or("plain").to_string();
    if challenge.is_some() && !matches!(method.as_str(), "S256" | "plain") {
        return fail("invalid_request", 501491, "Invalid code_challenge_method: use S256 or plain.");
    }
    let flow_id = opaque("flow-", 24);
    let scopes: Vec<String> = scope.split_whitespace().map(str::to_string).collect();
    let flow = Flow {
        kind: FlowKind::Authorize {
            client_id: app.client_id,
            redirect_uri: redirect_uri.to_string(),
            response_mode,
            state,
            nonce: get("nonce").map(str::to_string),
            code_challenge: challenge,
            code_challenge_method: method,
            scopes: scopes.clone(),
        },
        tenant,
        client_id: app.client_id,
        scopes,
        authn: None,
        password_ok: false,
        created: sim.now(),
        client_ip: ip,
    };
    insert_flow(&sim, &flow_id, flow);
    login_page(&flow_id, get("login_hint").unwrap_or(""), &app.display_name, None)
}

fn insert_flow(sim: &Sim, id: &str, flow: Flow) {
    let now = sim.now();
    let mut sessions = sim.sessions();
    if sessions.flows.len() > 10_000 {
        sessions.flows.retain(|_, f| now - f.created < Duration::hours(1));
    }
    sessions.flows.insert(id.to_string(), flow);
}

fn redirect_error(
    uri: &str,
    mode: &str,
    state: Option<&str>,
    error: &str,
    code: u32,
    message: &str,
    base: &str,
) -> Response {
    let description = format!(
        "AADSTS{code}: {message} Trace ID: {} Correlation ID: {} Timestamp: {}",
        Uuid::new_v4(),
        Uuid::new_v4(),
        chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ")
    );
    let mut params: Vec<(&str, String)> = vec![
        ("error", error.to_string()),
        ("error_description", description),
        ("error_uri", format!("{base}/error?code={code}")),
    ];
    if let Some(s) = state {
        params.push(("state", s.to_string()));
    }
    respond_to_client(uri, mode, &params)
}

/// Returns parameters to the client's redirect URI, in the response mode it asked for.
fn respond_to_client(uri: &str, mode: &str, params: &[(&str, String)]) -> Response {
    let encoded: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())))
        .finish();
    match mode {
        "form_post" => {
            let inputs: String = params
                .iter()
                .map(|(k, v)| format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">", esc(k), esc(v)))
                .collect();
            Html(format!(
                "<!doctype html><html><head><title>Working...</title></head><body onload=\"document.forms[0].submit()\">\
                 <form id=\"form_post\" method=\"post\" action=\"{}\">{inputs}<noscript><button type=\"submit\">Continue</button></noscript></form></body></html>",
                esc(uri)
            ))
            .into_response()
        }
        "fragment" => Redirect::to(&format!("{uri}#{encoded}")).into_response(),
        _ => {
            let sep = if uri.contains('?') { '&' } else { '?' };
            Redirect::to(&format!("{uri}{sep}{encoded}")).into_response()
        }
    }
}

fn take_flow(sim: &Sim, id: &str) -> Option<Flow> {
    let now = sim.now();
    let sessions = sim.sessions();
    sessions.flows.get(id).filter(|f| now - f.created < Duration::hours(1)).cloned()
}

fn store_flow(sim: &Sim, id: &str, flow: Flow) {
    sim.sessions().flows.insert(id.to_string(), flow);
}

/// Ends a flow with an error: back to the client for authorize flows, on the page for device flows.
fn flow_error(sim: &Sim, id: &str, flow: &Flow, error: &str, code: u32, message: &str) -> Response {
    sim.sessions().flows.remove(id);
    match &flow.kind {
        FlowKind::Authorize { redirect_uri, response_mode, state, .. } => {
            redirect_error(redirect_uri, response_mode, state.as_deref(), error, code, message, &sim.base_url)
        }
        FlowKind::Device { .. } => error_page(code, message),
    }
}

pub(crate) async fn login(State(sim): State<SharedSim>, headers: HeaderMap, body: Body) -> Response {
    let form = match read_form(&headers, body).await {
        Ok(f) => f,
        Err(e) => return error_page(e.code, &e.message),
    };
    let Some(flow_id) = form.get("flow").map(str::to_string) else {
        return error_page(50058, "Session information is not sufficient for single-sign-on. Start the sign-in again.");
    };
    let Some(mut flow) = take_flow(&sim, &flow_id) else {
        return error_page(50058, "Your sign-in session has expired. Start the sign-in again.");
    };
    let app_name = sim.world().app(flow.client_id).map(|a| a.display_name.clone()).unwrap_or_default();
    if form.get("action") == Some("cancel") {
        if let FlowKind::Device { device_code } = &flow.kind
            && let Some(d) = sim.sessions().device_codes.get_mut(device_code)
        {
            d.status = DeviceStatus::Declined;
        }
        return flow_error(
            &sim,
            &flow_id,
            &flow,
            "access_denied",
            65004,
            "User declined to consent to access the app.",
        );
    }
    let login = form.get("login").unwrap_or("").trim().to_string();
    let password = form.get("passwd").unwrap_or("");
    let now = sim.now();
    let lookup = {
        let world = sim.world();
        world.user_by_upn(&login).map(|(t, u)| (t.id, u.clone()))
    };
    let Some((home_id, user)) = lookup else {
        return login_page(
            &flow_id,
            &login,
            &app_name,
            Some((50034, "We couldn't find an account with that username.")),
        );
    };
    if user.password != password {
        return login_page(&flow_id, &login, &app_name, Some((50126, "Your account or password is incorrect.")));
    }
    if let Err(e) = check_account(&user) {
        return flow_error(&sim, &flow_id, &flow, "access_denied", e.code, &e.message);
    }
    if user.password_expired {
        return flow_error(&sim, &flow_id, &flow, "access_denied", 50055, "The password is expired.");
    }
    let resource = match resource_of(&sim, &flow.tenant, home_id) {
        Ok(r) => r,
        Err((code, message)) => return flow_error(&sim, &flow_id, &flow, "invalid_request", code, &message),
    };
    {
        let world = sim.world();
        let (Some(res), Some(home), Some(app)) =
            (world.tenant(resource), world.tenant(home_id), world.app(flow.client_id))
        else {
            return error_page(90002, "Tenant not found.");
        };
        if let Err(e) = check_presence(&world, res, home, &user, app, now) {
            drop(world);
            return flow_error(&sim, &flow_id, &flow, "access_denied", e.code, &e.message);
        }
        let req = requirements(&world, res, home, &user, flow.client_ip, now);
        if req.block.is_some() {
            drop(world);
            return flow_error(
                &sim,
                &flow_id,
                &flow,
                "access_denied",
                53003,
                "Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.",
            );
        }
        flow.authn = Some(Authn { home_tenant: home_id, user: user.id, auth_time: now, mfa_at: None });
        flow.password_ok = true;
        if req.mfa {
            if !user.mfa_registered() {
                drop(world);
                return flow_error(
                    &sim,
                    &flow_id,
                    &flow,
                    "interaction_required",
                    50079,
                    "Due to a configuration change made by your administrator, or because you moved to a new location, you must enroll in multi-factor authentication to access this resource.",
                );
            }
            drop(world);
            store_flow(&sim, &flow_id, flow);
            return mfa_page(&flow_id, &user.upn, false);
        }
    }
    consent_or_finish(&sim, &flow_id, flow)
}

fn resource_of(sim: &Sim, segment: &str, home: Uuid) -> Result<Uuid, (u32, String)> {
    match resolve_segment(sim, segment) {
        Ok(TenantSegment::Tenant(t)) => Ok(t),
        Ok(_) => Ok(home),
        Err(e) => Err((e.code, e.message)),
    }
}

/// Checks a TOTP code against both the simulated and the real clock, since the control API may have
/// moved the simulated one while the person's authenticator follows the real one.
fn totp_ok(secret: &str, code: &str, sim_now: chrono::DateTime<chrono::Utc>) -> bool {
    let Some(totp) = crate::signin::totp(secret) else { return false };
    let code = code.trim();
    [sim_now.timestamp(), chrono::Utc::now().timestamp()].iter().any(|t| totp.check(code, (*t).max(0) as u64).is_some())
}

pub(crate) async fn mfa(State(sim): State<SharedSim>, headers: HeaderMap, body: Body) -> Response {
    let form = match read_form(&headers, body).await {
        Ok(f) => f,
        Err(e) => return error_page(e.code, &e.message),
    };
    let flow_id = form.get("flow").unwrap_or("").to_string();
    let Some(mut flow) = take_flow(&sim, &flow_id) else {
        return error_page(50058, "Your sign-in session has expired. Start the sign-in again.");
    };
    let Some(authn) = flow.authn.clone().filter(|_| flow.password_ok) else {
        return error_page(50058, "Sign in with your password first.");
    };
    let user = sim.world().tenant(authn.home_tenant).and_then(|t| t.user(authn.user)).cloned();
    let Some(user) = user else { return error_page(50034, "The user account does not exist.") };
    let Some(secret) = &user.totp_secret else {
        return flow_error(
            &sim,
            &flow_id,
            &flow,
            "interaction_required",
            50079,
            "You must enroll in multi-factor authentication.",
        );
    };
    let now = sim.now();
    if !totp_ok(secret, form.get("otc").unwrap_or(""), now) {
        return mfa_page(&flow_id, &user.upn, true);
    }
    flow.authn = Some(Authn { mfa_at: Some(now), ..authn });
    consent_or_finish(&sim, &flow_id, flow)
}

const CONSENTING_ROLES: &[&str] = &[
    catalog::GLOBAL_ADMINISTRATOR,
    catalog::PRIVILEGED_ROLE_ADMINISTRATOR,
    catalog::CLOUD_APPLICATION_ADMINISTRATOR,
    catalog::APPLICATION_ADMINISTRATOR,
];

/// The scopes the flow needs consented, when the app's current consent in the tenant does not cover them.
fn consent_needed(sim: &Sim, flow: &Flow, resource: Uuid) -> Result<Option<Vec<String>>, (u32, String)> {
    let world = sim.world();
    let app = world.app(flow.client_id).ok_or((700016, "Application not found.".to_string()))?;
    let tenant = world.tenant(resource).ok_or((90002, "Tenant not found.".to_string()))?;
    let req = parse_scopes(&flow.scopes.join(" "), &sim.base_url).map_err(|e| (e.code, e.message))?;
    // Consent to a web API's own scopes is not modelled: only Graph's are asked for.
    if req.api.is_some() {
        return Ok(None);
    }
    let wanted: Vec<String> = if req.default { app.delegated.clone() } else { req.graph.clone() };
    match tenant.service_principal(app.client_id) {
        Some(sp) if req.default || wanted.iter().all(|w| sp.delegated.iter().any(|g| g.eq_ignore_ascii_case(w))) => {
            Ok(None)
        }
        _ => Ok(Some(wanted)),
    }
}

fn consent_or_finish(sim: &Sim, flow_id: &str, flow: Flow) -> Response {
    let Some(authn) = flow.authn.clone() else { return error_page(50058, "Sign in first.") };
    let resource = match resource_of(sim, &flow.tenant, authn.home_tenant) {
        Ok(r) => r,
        Err((code, message)) => return flow_error(sim, flow_id, &flow, "invalid_request", code, &message),
    };
    match consent_needed(sim, &flow, resource) {
        Err((code, message)) => flow_error(sim, flow_id, &flow, "invalid_request", code, &message),
        Ok(None) => finish(sim, flow_id, flow, resource),
        Ok(Some(scopes)) => {
            let world = sim.world();
            let foreign = resource != authn.home_tenant;
            let app = world.app(flow.client_id).cloned();
            let tenant = world.tenant(resource);
            let user = world.tenant(authn.home_tenant).and_then(|t| t.user(authn.user));
            let (Some(app), Some(tenant), Some(user)) = (app, tenant, user) else {
                return error_page(90002, "Tenant not found.");
            };
            if foreign {
                let msg = format!(
                    "The application '{}' ({}) has not been authorized in the tenant '{}'. Applications must be authorized to access the customer tenant before partner delegated administrators can use them. Provide pre-consent or execute the appropriate Partner Center API to authorize the application.",
                    app.client_id, app.display_name, tenant.id
                );
                drop(world);
                return flow_error(sim, flow_id, &flow, "invalid_client", 90099, &msg);
            }
            let may_consent =
                tenant.user_consent_allowed || user.roles.iter().any(|r| CONSENTING_ROLES.contains(&r.as_str()));
            if !may_consent {
                let msg = format!(
                    "Need admin approval: {} needs permission to access resources in your organization that only an admin can grant.",
                    app.display_name
                );
                drop(world);
                return flow_error(sim, flow_id, &flow, "access_denied", 90094, &msg);
            }
            let name = tenant.display_name.clone();
            drop(world);
            store_flow(sim, flow_id, flow);
            consent_page(flow_id, &app.display_name, &name, &scopes)
        }
    }
}

pub(crate) async fn consent(State(sim): State<SharedSim>, headers: HeaderMap, body: Body) -> Response {
    let form = match read_form(&headers, body).await {
        Ok(f) => f,
        Err(e) => return error_page(e.code, &e.message),
    };
    let flow_id = form.get("flow").unwrap_or("").to_string();
    let Some(flow) = take_flow(&sim, &flow_id) else {
        return error_page(50058, "Your sign-in session has expired. Start the sign-in again.");
    };
    let Some(authn) = flow.authn.clone() else { return error_page(50058, "Sign in first.") };
    if form.get("action") != Some("accept") {
        return flow_error(
            &sim,
            &flow_id,
            &flow,
            "access_denied",
            65004,
            "User declined to consent to access the app.",
        );
    }
    let resource = match resource_of(&sim, &flow.tenant, authn.home_tenant) {
        Ok(r) => r,
        Err((code, message)) => return flow_error(&sim, &flow_id, &flow, "invalid_request", code, &message),
    };
    let scopes = match consent_needed(&sim, &flow, resource) {
        Ok(Some(s)) => s,
        Ok(None) => Vec::new(),
        Err((code, message)) => return flow_error(&sim, &flow_id, &flow, "invalid_request", code, &message),
    };
    let now = sim.now();
    {
        let mut world = sim.world_mut();
        let app = world.app(flow.client_id).cloned();
        if let (Some(app), Some(t)) = (app, world.tenant_mut(resource)) {
            match t.service_principals.iter_mut().find(|sp| sp.app_id == app.client_id) {
                Some(sp) => {
                    for s in scopes {
                        if !sp.delegated.contains(&s) {
                            sp.delegated.push(s);
                        }
                    }
                    sp.consent_changed = now;
                }
                None => t.service_principals.push(ServicePrincipal {
                    id: Uuid::new_v4(),
                    app_id: app.client_id,
                    display_name: app.display_name.clone(),
                    delegated: scopes,
                    application: Vec::new(),
                    created: now,
                    consent_changed: now,
                }),
            }
        }
    }
    finish(&sim, &flow_id, flow, resource)
}

fn finish(sim: &Sim, flow_id: &str, flow: Flow, resource: Uuid) -> Response {
    let Some(authn) = flow.authn.clone() else { return error_page(50058, "Sign in first.") };
    let now = sim.now();
    let mut sessions = sim.sessions();
    sessions.flows.remove(flow_id);
    match flow.kind {
        FlowKind::Authorize {
            client_id,
            redirect_uri,
            response_mode,
            state,
            nonce,
            code_challenge,
            code_challenge_method,
            scopes,
        } => {
            let code = opaque("1.AXsimcode", 64);
            sessions.codes.retain(|_, c| now - c.issued < Duration::minutes(15));
            sessions.codes.insert(
                code.clone(),
                AuthCode {
                    client_id,
                    redirect_uri: redirect_uri.clone(),
                    code_challenge,
                    code_challenge_method,
                    resource_tenant: resource,
                    scopes,
                    nonce,
                    authn,
                    issued: now,
                    redeemed: false,
                },
            );
            drop(sessions);
            let mut params = vec![("code", code)];
            if let Some(s) = state {
                params.push(("state", s));
            }
            params.push(("session_state", Uuid::new_v4().to_string()));
            respond_to_client(&redirect_uri, &response_mode, &params)
        }
        FlowKind::Device { device_code } => {
            if let Some(d) = sessions.device_codes.get_mut(&device_code) {
                d.status = DeviceStatus::Approved { authn, resource_tenant: resource };
            }
            drop(sessions);
            Html(page(
                "You have signed in",
                "<div id=\"done\"><p>You have signed in to the application on your device. You may now close this window.</p></div>",
            ))
            .into_response()
        }
    }
}

pub(crate) async fn device_page() -> Response {
    let body = "<p>Enter the code displayed on your app or device.</p>\
        <form id=\"device-form\" method=\"post\" action=\"/devicelogin\">\
        <input type=\"text\" name=\"code\" placeholder=\"Code\" autocomplete=\"off\">\
        <button type=\"submit\" name=\"action\" value=\"next\">Next</button></form>";
    let mut resp = Html(page("Enter code", body)).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    resp
}

pub(crate) async fn device_code_entered(
    State(sim): State<SharedSim>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let form = match read_form(&headers, body).await {
        Ok(f) => f,
        Err(e) => return error_page(e.code, &e.message),
    };
    let raw = form.get("code").unwrap_or("");
    let code: String = raw.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_uppercase();
    if code.is_empty() {
        return error_page(90119, "The user code is null or empty.");
    }
    let now = sim.now();
    let found = {
        let sessions = sim.sessions();
        sessions.user_codes.get(&code).and_then(|dc| sessions.device_codes.get(dc).map(|d| (dc.clone(), d.clone())))
    };
    let Some((device_code, entry)) = found else {
        return error_page(
            70018,
            "Invalid verification code. The code you entered is not valid; check it and try again.",
        );
    };
    if now > entry.expires {
        return error_page(70019, "Verification code expired.");
    }
    if !matches!(entry.status, DeviceStatus::Pending) {
        return error_page(90120, "The code has already been used to sign in or was declined.");
    }
    let app_name = sim.world().app(entry.client_id).map(|a| a.display_name.clone()).unwrap_or_default();
    let flow_id = opaque("flow-", 24);
    insert_flow(
        &sim,
        &flow_id,
        Flow {
            kind: FlowKind::Device { device_code },
            tenant: entry.tenant.clone(),
            client_id: entry.client_id,
            scopes: entry.scopes.clone(),
            authn: None,
            password_ok: false,
            created: now,
            client_ip: ip,
        },
    );
    login_page(&flow_id, "", &app_name, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_redirects_match_on_any_port() {
        let reg = vec!["http://localhost".to_string(), "https://app.example/callback".to_string()];
        assert!(registered_redirect(&reg, "http://localhost:51234"));
        assert!(registered_redirect(&reg, "http://localhost:51234/"));
        assert!(!registered_redirect(&reg, "http://localhost:51234/other"));
        assert!(!registered_redirect(&reg, "http://127.0.0.1:51234/"));
        assert!(registered_redirect(&reg, "https://app.example/callback"));
        assert!(!registered_redirect(&reg, "https://app.example:444/callback"));
        assert!(!registered_redirect(&reg, "https://evil.example/callback"));
        assert!(!registered_redirect(&reg, "not a url"));
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(esc("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }
}
