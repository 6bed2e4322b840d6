//! `tenantscope demo`: the built-in simulated MSP, end to end. It starts the simulator, signs the
//! partner in through the device-code flow (approved by the simulator's scripted user), adds the other
//! ways customers are reached (two direct sign-ins and one app credential), lets the tenants change as
//! they do in real life, and runs the same inspection a real MSP runs, into a fresh data directory.

use std::process::ExitCode;

use anyhow::{Context as _, anyhow};
use clap::Args;
use inspect::{RunOptions, Runner};
use microsoft::AccountRole;
use sim::signin::{Browser, Person};
use sim::{ReadyInfo, SimConfig, WorldSource};

use super::Global;
use super::output::Progress;
use crate::context::Ctx;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Print the inspection result as JSON instead of the summary.
    #[arg(long)]
    pub json: bool,
    /// Keep the simulator running after the demo, so that other commands can be tried against it.
    #[arg(long)]
    pub keep_running: bool,
    /// Then run the platform on the demo's data: the dashboard, the API, the scheduler and a
    /// worker, with a one-time sign-in link for a demo operator (until Ctrl-C).
    #[arg(long)]
    pub serve: bool,
    /// Where the platform listens with --serve.
    #[arg(long, default_value = "127.0.0.1:8787", requires = "serve")]
    pub listen: std::net::SocketAddr,
}

const PARTNER_USER: &str = "megan@lakesideit.onmicrosoft.com";
const DIRECT_USERS: &[&str] = &["it-admin@adatumcorp.onmicrosoft.com", "it-admin@fabrikamresidences.onmicrosoft.com"];
const APP_TENANT: &str = "woodgrovebank.onmicrosoft.com";
const APP_NAME: &str = "Woodgrove tenantscope reader";
const CLIENT_APP: &str = "tenantscope (Lakeside IT)";

fn person(ready: &ReadyInfo, upn: &str) -> anyhow::Result<Person> {
    let u = ready
        .users
        .iter()
        .find(|u| u.upn.eq_ignore_ascii_case(upn))
        .with_context(|| format!("the demo world has no user {upn}"))?;
    Ok(Person {
        upn: u.upn.clone(),
        password: u.password.clone(),
        totp_secret: u.totp_secret.clone(),
        accept_consent: true,
    })
}

async fn sign_in(
    auth: &microsoft::Authenticator,
    browser: &Browser,
    person: Person,
    tenant: &str,
    role: AccountRole,
) -> anyhow::Result<microsoft::Account> {
    let (tx, rx) = tokio::sync::oneshot::channel::<String>();
    let upn = person.upn.clone();
    let approver = async move {
        let code = rx.await.map_err(|_| anyhow!("no device code was shown"))?;
        browser
            .approve_device_code(&code, &person)
            .await
            .map_err(|e| anyhow!("the scripted user could not sign in: {e}"))
    };
    let mut tx = Some(tx);
    let login = auth.login_device_code(tenant, role, |dc| {
        eprintln!("  {}", dc.message);
        eprintln!("  (the simulator's scripted user enters the code and signs in as {upn})");
        if let Some(tx) = tx.take() {
            let _ = tx.send(dc.user_code.clone());
        }
    });
    let (account, approved) = tokio::join!(login, approver);
    approved?;
    account.map_err(|e| anyhow!("sign-in failed: {e}"))
}

pub async fn run(args: DemoArgs, g: &Global) -> anyhow::Result<ExitCode> {
    let base = g.data_dir.clone().unwrap_or_else(crate::commands::default_data_dir).join("demo");
    if base.exists() {
        std::fs::remove_dir_all(&base)
            .with_context(|| format!("cannot clear the previous demo in {}", base.display()))?;
    }
    crate::context::private_dir(&base)?;
    eprintln!("tenantscope demo: a simulated MSP (Lakeside IT Partners) and its customers\n");
    let running = sim::start(SimConfig { world: WorldSource::Demo, ..SimConfig::new(base.join("simulator")) })
        .await
        .context("cannot start the simulator")?;
    let ready = running.ready.clone();
    eprintln!("1. The simulated Microsoft cloud listens on {} ({} tenants).", ready.base_url, ready.tenants.len());

    let global = Global {
        cloud: Some(ready.cloud_file.clone()),
        ca_file: None,
        data_dir: Some(base.join("data")),
        database_url: None,
        verbose: g.verbose,
    };
    let ctx = Ctx::open(&global).await?;
    let client_id = ready
        .apps
        .iter()
        .find(|a| a.display_name == CLIENT_APP)
        .map(|a| a.client_id.clone())
        .context("the demo world has no tenantscope app")?;
    ctx.remember(&client_id).await?;
    let auth = ctx.auth(&client_id, None)?;
    let ca = std::fs::read_to_string(&ready.ca_cert).with_context(|| format!("cannot read {}", ready.ca_cert))?;
    let browser = Browser::new(&ready.base_url, &ca)?;

    eprintln!("2. The partner engineer signs in (device code, with MFA):");
    let account =
        sign_in(&auth, &browser, person(&ready, PARTNER_USER)?, "organizations", AccountRole::Partner).await?;
    eprintln!(
        "   signed in as {} ({})",
        account.upn.as_deref().unwrap_or(""),
        if account.claims.as_ref().is_some_and(|c| c.has_mfa()) { "MFA claim present" } else { "no MFA claim" }
    );
    eprintln!("3. Two customers are inspected directly by their own admins:");
    for upn in DIRECT_USERS {
        let domain = upn.split_once('@').map(|(_, d)| d).unwrap_or("organizations");
        sign_in(&auth, &browser, person(&ready, upn)?, domain, AccountRole::Direct).await?;
    }
    eprintln!("4. One customer is read app-only with its own app registration.");
    let app = ready.apps.iter().find(|a| a.display_name == APP_NAME).context("the demo world has no Woodgrove app")?;
    let tenant = ready.tenants.iter().find(|t| t.domain == APP_TENANT).context("the demo world has no Woodgrove")?;
    ctx.store
        .credential_put(&store::AppCredential {
            tenant_id: tenant.id.as_str().into(),
            client_id: app.client_id.clone(),
            kind: store::CredentialKind::Secret,
            secret: store::SecretString::from(app.client_secret.clone().unwrap_or_default()),
            certificate_pem: None,
            expires_at: None,
            label: Some(tenant.display_name.clone()),
            added_at: chrono::Utc::now(),
        })
        .await?;
    // As `tenants add-app --tenant <domain> --label <name>` records it: its own name is read at its
    // first inspection; the label is shown beside it.
    let now = chrono::Utc::now();
    let woodgrove = store::TenantId::new(&tenant.id);
    ctx.store
        .upsert_tenant(&store::TenantRecord {
            id: woodgrove.clone(),
            domain: Some(tenant.domain.clone()),
            display_name: tenant.domain.clone(),
            role: store::TenantRole::Customer,
            auth: store::TenantAuth::App,
            first_seen: now,
            last_seen: now,
            gone_since: None,
            gdap: None,
            label: None,
        })
        .await?;
    ctx.store.set_tenant_label(&woodgrove, Some(&tenant.display_name)).await?;
    eprintln!("5. Two hours later: Adatum's admin has changed password, Fabrikam's admin was disabled, and the");
    eprintln!("   access tokens cached at sign-in have expired.");
    let control =
        reqwest::Client::builder().add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes())?).build()?;
    for (path, body) in [("scenarios/after-sign-in", serde_json::json!({})), ("clock", serde_json::json!({"by": "2h"}))]
    {
        let resp = control
            .post(format!("{}/_sim/{path}", ready.base_url))
            .bearer_auth(&ready.control_token)
            .json(&body)
            .send()
            .await?;
        if !resp.status().is_success() {
            return Err(anyhow!("the simulator refused {path}: {}", resp.status()));
        }
    }
    eprintln!("6. Inspecting the partner and every customer:\n");
    let graph = ctx.graph(auth.clone());
    let progress = Progress::new(!args.json);
    progress.watch(graph.transport.stats.clone());
    let runner = Runner::new(
        graph,
        ctx.store.clone(),
        RunOptions {
            cloud: Some(ctx.cloud.name.clone()),
            history: Some(crate::commands::history::run_history(&ctx)?),
            ..RunOptions::default()
        },
    )
    .with_observer(progress.clone());
    let report = runner.run().await;
    progress.finish();
    let report = report?;
    crate::commands::history::after_run(&ctx, &report).await?;
    let view = render::report_view(ctx.store.as_ref(), Some(&report.run_id), chrono::Utc::now()).await?;
    let html_path = base.join("report.html");
    super::report::write_atomically(&html_path, &render::report_html(&view)?)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&super::inspect::json_report(&report))?);
    } else {
        print!("{}", super::inspect::text_report(&report));
        println!("\nHTML report: {}", html_path.display());
        println!("Try next (against the same data):");
        let dd = base.join("data");
        println!("  tenantscope --data-dir {} tenants", dd.display());
        if args.keep_running {
            println!(
                "  tenantscope --data-dir {} --cloud {} doctor --tenant cohowinery.onmicrosoft.com",
                dd.display(),
                ready.cloud_file
            );
        } else {
            // doctor talks to the cloud, which stops with this command.
            println!("  tenantscope demo --keep-running   (keeps the simulated cloud up for doctor and inspect)");
        }
        println!(
            "  echo 'AADSTS50076: Due to a configuration change made by your administrator...' | tenantscope explain"
        );
    }
    if args.serve {
        serve_demo(&ctx, &client_id, args.listen).await?;
    } else if args.keep_running {
        eprintln!(
            "\nThe simulator keeps running at {} (cloud file {}); press Ctrl-C to stop.",
            ready.base_url, ready.cloud_file
        );
        let _ = tokio::signal::ctrl_c().await;
    }
    running.stop().await;
    Ok(ExitCode::SUCCESS)
}

/// The platform on the demo's data, until Ctrl-C, with a one-time sign-in link for a demo
/// operator (an engineer), so that the dashboard opens full of the demo's customers.
async fn serve_demo(ctx: &Ctx, client_id: &str, listen: std::net::SocketAddr) -> anyhow::Result<()> {
    let now = chrono::Utc::now();
    let (link, record) = server::ui::new_sign_in_link("Demo engineer", server::auth::Role::Engineer, now)
        .map_err(|p| anyhow!("{}", p.detail.unwrap_or_default()))?;
    ctx.store.token_put(&record).await?;
    let mut config = server::ServerConfig::new(listen, ctx.data_dir.clone());
    config.public_url = format!("http://{listen}");
    let executor = super::serve::executor(ctx, Some(client_id.to_string()), config.worker.concurrency)?;
    server::serve(
        ctx.store.clone(),
        config,
        server::Services { executor: Some(executor), targets: Vec::new() },
        super::sim::wait_for_shutdown(),
        move |addr| {
            println!("\nThe platform runs on the demo's data: http://{addr}/");
            println!("Open the dashboard, signed in as a demo engineer (the link works once, within an hour):");
            println!("  http://{addr}/signin/link?token={link}");
            println!("Press Ctrl-C to stop.");
        },
    )
    .await
    .map_err(|e| anyhow!("the platform stopped: {e}"))?;
    Ok(())
}
