//! The runner end to end, in-process: the simulated cloud over real HTTPS, the `microsoft` client,
//! and a real SQLite store (in memory, or in a file when the test must reach underneath it). Time is
//! moved with a [`ManualClock`] on the product's side and the simulator's clock on the cloud's side.

use std::sync::Arc;

use chrono::{Duration, Utc};
use inspect::child::Mode;
use inspect::dataprint::Status;
use inspect::{Clock, ManualClock, RunOptions, RunReport, Runner, StoreTokens};
use microsoft::{Authenticator, GraphClient, GraphOptions};
use serde_json::json;
use store::{Key, Store, TenantId};
use test_support::SimEnv;

struct Fixture {
    env: SimEnv,
    store: Arc<dyn Store>,
    auth: Arc<Authenticator>,
    clock: Arc<ManualClock>,
}

impl Fixture {
    /// The demo world with the partner engineer signed in, on a store at `url`.
    async fn new(url: &str) -> Fixture {
        let env = SimEnv::demo().await;
        let store = store::open(url, Key::generate()).await.expect("store");
        let auth = env.partner_signed_in(Arc::new(StoreTokens { store: store.clone() })).await;
        Fixture { env, store, auth, clock: Arc::new(ManualClock::new(Utc::now())) }
    }

    async fn run(&self) -> RunReport {
        self.run_with(RunOptions::default()).await
    }

    async fn run_with(&self, options: RunOptions) -> RunReport {
        let graph = GraphClient::new(self.auth.clone(), GraphOptions::default());
        Runner::new(graph, self.store.clone(), options)
            .with_clock(self.clock.clone())
            .run()
            .await
            .expect("the run finishes")
    }

    /// Moves both clocks: the cloud's (tokens expire) and the inspection's (freshness windows).
    async fn advance(&self, hours: i64) {
        self.env.control(reqwest::Method::POST, "clock", json!({"by": format!("{hours}h")})).await;
        self.clock.advance(Duration::hours(hours));
    }

    fn summary<'r>(&self, report: &'r RunReport, prefix: &str) -> &'r inspect::TenantSummary {
        let id = TenantId::new(self.env.tenant_id(prefix));
        report.tenants.iter().find(|t| t.tenant_id == id).unwrap_or_else(|| panic!("{prefix} not in the report"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_inspects_the_partner_and_every_customer_and_commits_each() {
    let f = Fixture::new("sqlite::memory:").await;
    let report = f.run().await;
    let partner = report.partner.as_ref().expect("the partner is inspected");
    assert_eq!(partner.status, Status::Ok, "{partner:#?}");
    assert!(partner.requests > 0, "the partner's requests are counted");
    assert_eq!(report.stats["partner_requests"].as_u64(), Some(partner.requests));
    assert!(report.first_run);
    assert_eq!(report.new_customers.len(), report.tenants.len());
    // Every customer reached through GDAP is in the report with its result committed.
    let runs = f.store.tenant_runs(&report.run_id).await.expect("tenant runs");
    assert_eq!(runs.len(), report.tenants.len() + 1);
    let northwind = f.summary(&report, "northwindtraders");
    assert_eq!(northwind.status, Status::Ok);
    assert!(northwind.dataprint_id.is_some());
    let alpine = f.summary(&report, "alpineskihouse");
    assert_eq!(alpine.diagnosis.as_ref().map(|d| d.cause.as_str()), Some("gdap_missing"));
    assert!(alpine.dataprint_id.is_none(), "a failed tenant stores no dataprint");
    let stored = f.store.last_tenant_run(&alpine.tenant_id).await.expect("read").expect("committed");
    assert_eq!(stored.status, store::TenantRunStatus::Failed);
    assert_eq!(stored.diagnosis.as_ref().and_then(|d| d["cause"].as_str()), Some("gdap_missing"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_the_clock_decides_what_is_reused_and_what_is_read_again() {
    let f = Fixture::new("sqlite::memory:").await;
    let first = f.run().await;
    let northwind = f.summary(&first, "northwindtraders").tenant_id.clone();
    let first_requests = f.summary(&first, "northwindtraders").requests;

    // Ten minutes later everything is within its freshness window: an unchanged tenant costs one
    // round trip (its batch, with the delta checks inside) and confirms its dataprint.
    f.advance(0).await;
    f.clock.advance(Duration::minutes(10));
    let second = f.run().await;
    let again = f.summary(&second, "northwindtraders");
    assert_eq!(again.status, Status::Ok);
    assert_eq!(
        again.dataprint_id,
        f.summary(&first, "northwindtraders").dataprint_id,
        "unchanged content is confirmed"
    );
    assert!(again.requests < first_requests, "{} requests then {}", first_requests, again.requests);
    // Nothing in the world changed, so every tenant confirms its dataprint: also one whose missing
    // licence the first run learnt from Graph's refusal and the second knew without asking.
    for t in &second.tenants {
        let before = first.tenants.iter().find(|b| b.tenant_id == t.tenant_id).and_then(|b| b.dataprint_id.clone());
        if before.is_some() {
            assert_eq!(t.dataprint_id, before, "{} stored a new dataprint", t.display_name);
        }
    }
    assert!(again.collectors.iter().any(|c| c.mode == Mode::Reused), "slow collections are reused");
    // A tenant whose reused licences lack Entra ID P1 is not asked for what P1 gates: the collectors
    // are skipped up front, with no request and so no refusal to diagnose.
    let unlicensed: Vec<(&str, &str)> = second
        .tenants
        .iter()
        .flat_map(|t| t.collectors.iter().map(move |c| (t.display_name.as_str(), c)))
        .filter(|(_, c)| c.reason.as_ref().is_some_and(|r| r["kind"] == "license") && c.diagnosis.is_some())
        .map(|(t, c)| (t, c.name.as_str()))
        .collect();
    assert!(unlicensed.is_empty(), "asked again for what the licences do not cover: {unlicensed:?}");

    // Past the longest freshness window every collection is read again.
    let longest = inspect::catalog::CATALOG.iter().map(|c| i64::from(c.fresh_minutes)).max().unwrap_or(0);
    f.advance(longest / 60 + 1).await;
    let third = f.run().await;
    let later = f.summary(&third, "northwindtraders");
    assert!(later.collectors.iter().all(|c| c.mode != Mode::Reused), "{:?}", later.collectors);
    let stored = f.store.last_good_dataprint(&northwind).await.expect("read").expect("kept");
    assert_eq!(stored.0.confirmed_run_id, third.run_id);
}

/// A collection reused that neither the run nor a metric reads is never loaded: the store carries
/// it into the new dataprint from the previous one, whole, and the change history sees no change in
/// it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collections_nothing_reads_are_carried_over_unread() {
    let f = Fixture::new("sqlite::memory:").await;
    let first = f.run().await;
    let northwind = f.summary(&first, "northwindtraders").tenant_id.clone();
    let before = f.store.dataprint_for_run(&first.run_id, &northwind).await.expect("read").expect("stored");
    let unread = inspect::child::unread_from_previous(&history::builtin_metrics());
    assert!(unread.contains(&"devices") && !unread.contains(&"users"), "{unread:?}");
    assert!(unread.contains(&"userRegistrationDetails"), "read only by metrics that keep their values");

    // Security defaults change (read every run), so the tenant stores a new dataprint.
    let tenant = "northwindtraders.onmicrosoft.com";
    let enabled = before["collections"]["securityDefaults"].as_object().and_then(|m| m.values().next()).expect("read")
        ["isEnabled"]
        .as_bool()
        .expect("a flag");
    // And a user with sign-in activity is disabled, so that the delta round of users brings it back
    // while the activity is carried over unread: it keeps the activity joined to it.
    let (user, activity) = before["collections"]["users"]
        .as_object()
        .and_then(|users| {
            users.iter().find_map(|(id, u)| {
                let upn = u["userPrincipalName"].as_str()?;
                (u["accountEnabled"] == true && u["signInActivity"].is_object())
                    .then(|| (id.clone(), upn.to_string(), u["signInActivity"].clone()))
            })
        })
        .map(|(id, upn, a)| ((id, upn), a))
        .expect("an enabled user with sign-in activity");
    f.env
        .control(
            reqwest::Method::POST,
            "actions",
            json!([
                {"action": "set_security_defaults", "tenant": tenant, "enabled": !enabled},
                {"action": "set_user_enabled", "user": user.1, "enabled": false},
            ]),
        )
        .await;
    f.advance(0).await;
    f.clock.advance(Duration::minutes(10));
    let second = f.run().await;
    let again = f.summary(&second, "northwindtraders");
    assert_ne!(again.dataprint_id, f.summary(&first, "northwindtraders").dataprint_id, "the tenant changed");
    let after = f.store.dataprint_for_run(&second.run_id, &northwind).await.expect("read").expect("stored");
    let carried: Vec<&str> = again
        .collectors
        .iter()
        .filter(|c| c.mode == Mode::Reused && unread.contains(&c.name.as_str()))
        .map(|c| c.name.as_str())
        .collect();
    assert!(carried.contains(&"devices"), "{:?}", again.collectors);
    for name in &carried {
        let was = &before["collections"][*name];
        assert!(was.is_object(), "{name} was read");
        assert_eq!(&after["collections"][*name], was, "{name} is carried whole");
        let items = again.collectors.iter().find(|c| c.name == *name).and_then(|c| c.items);
        assert_eq!(items, was.as_object().map(|m| m.len()), "{name}'s item count");
    }
    assert_ne!(after["collections"]["securityDefaults"], before["collections"]["securityDefaults"]);
    assert!(carried.contains(&"signInActivity"), "{carried:?}");
    let changed = &after["collections"]["users"][&user.0];
    assert_eq!(changed["accountEnabled"], false, "the user was read again");
    assert_eq!(changed["signInActivity"], activity, "and kept its sign-in activity");

    // A delta link that expired makes the next run read every user again, still with the activity
    // carried: every user keeps its join, and the tenant is unchanged.
    f.env.control(reqwest::Method::POST, "delta/expire", json!({})).await;
    f.clock.advance(Duration::minutes(10));
    let third = f.run().await;
    let users = f.summary(&third, "northwindtraders").collectors.iter().find(|c| c.name == "users").map(|c| c.mode);
    assert_eq!(users, Some(Mode::Full), "users are read in full");
    assert_eq!(f.summary(&third, "northwindtraders").dataprint_id, again.dataprint_id, "nothing changed");
    // The figures of what was carried are those it had.
    assert!(carried.contains(&"userRegistrationDetails"), "{carried:?}");
    for name in ["mfa_registered_pct", "users_without_mfa", "admins_without_mfa"] {
        assert!(!before["summary"][name].is_null(), "{name} was computed");
        assert_eq!(after["summary"][name], before["summary"][name], "{name}");
    }
    assert_eq!(after["summary"]["security_defaults"], !enabled);
    let events = f
        .store
        .events(&store::EventFilter { tenant: Some(northwind.clone()), ..Default::default() })
        .await
        .expect("events");
    assert!(!events.is_empty(), "the change is recorded");
    for e in &events {
        let collection = e.event["collection"].as_str().unwrap_or_default();
        assert!(!carried.contains(&collection), "a change in {collection} was reported: {}", e.event);
    }
}

/// Users and groups whose delta round finds no change stay in the store, unread, and are carried
/// into the new dataprint; the metric that measures time over users is computed on what it reads
/// of them, and the metrics that only count them keep their values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_stay_unread_while_their_delta_round_finds_no_change() {
    let f = Fixture::new("sqlite::memory:").await;
    let lazy = inspect::child::lazy_from_previous(&history::builtin_metrics());
    let users_lazy = lazy.iter().find(|l| l.name == "users").expect("users can stay unread");
    assert_eq!(
        users_lazy.fields.as_deref(),
        Some(&["accountEnabled".to_string(), "createdDateTime".into(), "signInActivity".into()][..]),
        "what stale_accounts reads of a user"
    );
    let custom =
        history::Metric::new("breakglass", "length(values(collections.users)[?starts_with(userPrincipalName, 'bg')])")
            .expect("metric");
    assert!(
        inspect::child::lazy_from_previous(&[custom]).iter().all(|l| l.name != "users"),
        "a custom metric reads users whole"
    );

    let first = f.run().await;
    let northwind = f.summary(&first, "northwindtraders").tenant_id.clone();
    // A user created 91 days less five hours before now, who never signed in: not stale for the
    // next few hours, stale after that.
    let tenant = "northwindtraders.onmicrosoft.com";
    let back = 91 * 86_400 - 5 * 3_600;
    f.env.control(reqwest::Method::POST, "clock", json!({"seconds": -back})).await;
    f.env
        .control(
            reqwest::Method::POST,
            "actions",
            json!([{"action": "create_user", "tenant": tenant, "upn": format!("late.joiner@{tenant}"), "display_name": "Late Joiner"}]),
        )
        .await;
    f.env.control(reqwest::Method::POST, "clock", json!({"seconds": back})).await;

    // Ten minutes on, the users' delta round brings the new user: users are read from the store and
    // merged.
    f.clock.advance(Duration::minutes(10));
    let second = f.run().await;
    let mode = |report: &RunReport, name: &str| {
        f.summary(report, "northwindtraders").collectors.iter().find(|c| c.name == name).map(|c| (c.mode, c.items))
    };
    let stored = |report: &RunReport| {
        let f = &f;
        let northwind = northwind.clone();
        let run_id = report.run_id.clone();
        async move { f.store.dataprint_for_run(&run_id, &northwind).await.expect("read").expect("stored") }
    };
    let two = stored(&second).await;
    let users_two = two["collections"]["users"].as_object().map(|u| u.len()).expect("users");
    assert_eq!(mode(&second, "users"), Some((Mode::Delta, Some(users_two))));
    assert!(
        two["collections"]["users"].as_object().expect("users").values().any(|u| u["displayName"] == "Late Joiner")
    );

    // Six hours after the first run (sign-in activity is still fresh), nothing changed in the
    // directory: users stay unread and are carried over, and the new user is now stale.
    f.clock.advance(Duration::hours(6) - Duration::minutes(10));
    let third = f.run().await;
    assert_eq!(mode(&third, "users"), Some((Mode::Delta, Some(users_two))), "as many users as before");
    assert_eq!(mode(&third, "groups").map(|m| m.0), Some(Mode::Delta));
    let three = stored(&third).await;
    assert_eq!(three["collections"]["users"], two["collections"]["users"], "carried as they were");
    let stale = |dp: &serde_json::Value| dp["summary"]["stale_accounts"].as_u64().expect("stale_accounts");
    assert_eq!(stale(&three), stale(&two) + 1, "the new user became stale");
    for name in ["users", "enabled_users", "guest_users", "licensed_users"] {
        assert_eq!(three["summary"][name], two["summary"][name], "{name} keeps its value");
    }
    // Every figure is what the stored dataprint gives when measured whole at that time.
    let now = f.clock.now();
    for v in history::evaluate(&history::builtin_metrics(), &three, now) {
        assert_eq!(three["summary"].get(&v.name).cloned().unwrap_or_default(), v.value, "{}", v.name);
    }
    assert_ne!(
        f.summary(&third, "northwindtraders").dataprint_id,
        f.summary(&second, "northwindtraders").dataprint_id,
        "the summary changed"
    );

    // Unchanged again, minutes later: the dataprint is confirmed.
    f.clock.advance(Duration::minutes(10));
    let fourth = f.run().await;
    assert_eq!(f.summary(&fourth, "northwindtraders").dataprint_id, f.summary(&third, "northwindtraders").dataprint_id);
}

/// The large collections nothing reads as a tree are written from Graph's answers without building
/// them (`inspect::canon`). Stored, they are byte for byte what building them gives: a full run
/// that builds every tree (a custom metric may read any collection) finds every tenant unchanged,
/// and so does one that writes them unparsed again; the metrics computed on their projections are
/// those of the whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collections_written_unparsed_are_stored_as_trees_would_be() {
    let builtins = history::builtin_metrics();
    let unparsed = inspect::child::unparsed(&builtins);
    let names: Vec<&str> = unparsed.iter().map(|u| u.name).collect();
    for name in ["devices", "managedDevices", "signIns", "userRegistrationDetails", "users", "signInActivity", "groups"]
    {
        assert!(names.contains(&name), "{name} is written unparsed: {names:?}");
    }
    for name in ["servicePrincipals", "conditionalAccessPolicies", "subscribedSkus"] {
        assert!(!names.contains(&name), "the run reads {name} itself: {names:?}");
    }
    let users = unparsed.iter().find(|u| u.name == "users").expect("listed");
    let members = |u: &inspect::child::Unparsed| u.needs.as_ref().map(|n| n.keys().cloned().collect::<Vec<_>>());
    assert_eq!(
        members(users),
        Some(
            ["accountEnabled", "assignedLicenses", "createdDateTime", "signInActivity", "userType"]
                .map(String::from)
                .to_vec()
        ),
        "what the built-in metrics read of a user"
    );
    let needs = users.needs.as_ref().expect("users are projected");
    assert_eq!(needs.get("assignedLicenses"), Some(&history::Need::Shape), "licences are only counted");
    let activity = history::Metric::new("active", "length(collections.signInActivity)").expect("metric");
    let without = inspect::child::unparsed(&[activity]);
    assert!(!without.iter().any(|u| u.name == "users"), "users are joined to their activity as bytes only");
    let mfa = unparsed.iter().find(|u| u.name == "userRegistrationDetails").expect("listed");
    assert_eq!(
        members(mfa),
        Some(vec!["isAdmin".to_string(), "isMfaRegistered".into(), "userType".into()]),
        "what the MFA metrics read of a registration"
    );
    assert_eq!(unparsed.iter().find(|u| u.name == "devices").map(|u| u.needs.clone()), Some(None));
    let everything = history::Metric::new("collections", "length(keys(collections))").expect("metric");
    assert!(inspect::child::unparsed(std::slice::from_ref(&everything)).is_empty(), "a metric may read anything");
    let devices = history::Metric::new("devices", "length(collections.devices)").expect("metric");
    assert!(!inspect::child::unparsed(&[devices]).iter().any(|u| u.name == "devices"), "a custom metric reads them");

    let f = Fixture::new("sqlite::memory:").await;
    let first = f.run().await;
    let northwind = f.summary(&first, "northwindtraders").tenant_id.clone();
    let stored = f.store.dataprint_for_run(&first.run_id, &northwind).await.expect("read").expect("stored");
    for name in ["devices", "userRegistrationDetails", "signIns", "users", "signInActivity"] {
        let items = stored["collections"][name].as_object().map_or(0, |c| c.len());
        assert!(items > 0, "{name} was read and stored");
        let reported =
            f.summary(&first, "northwindtraders").collectors.iter().find(|c| c.name == name).and_then(|c| c.items);
        assert_eq!(reported, Some(items), "{name}'s item count");
    }
    // The MFA figures, computed on the projection, are those of the stored collection whole.
    let now = f.clock.now();
    for v in history::evaluate(&builtins, &stored, now) {
        assert_eq!(stored["summary"].get(&v.name).cloned().unwrap_or_default(), v.value, "{}", v.name);
    }
    assert!(stored["summary"]["users_without_mfa"].is_u64(), "{}", stored["summary"]);

    let ids = |report: &RunReport| {
        let mut ids: Vec<(String, Option<String>)> =
            report.tenants.iter().map(|t| (t.tenant_id.to_string(), t.dataprint_id.clone())).collect();
        ids.sort();
        ids
    };
    let history = inspect::run::HistoryOptions { metrics: vec![everything], rules: Vec::new(), notify: Vec::new() };
    let trees = f.run_with(RunOptions { full: true, history: Some(history), ..RunOptions::default() }).await;
    assert_eq!(ids(&trees), ids(&first), "built as trees, every tenant's dataprint is the one stored");
    let again = f.run_with(RunOptions { full: true, ..RunOptions::default() }).await;
    assert_eq!(ids(&again), ids(&first), "and written unparsed again too");
    assert!(ids(&first).iter().filter(|(_, id)| id.is_some()).count() >= 3, "{:?}", ids(&first));

    // Thirteen hours on, the collections written unparsed are read again. A user created meanwhile
    // is a change of the users and of their sign-in activity, which is read as bytes and compared as
    // a tree with the previous dataprint; the collections that did not change report nothing.
    let tenant = "northwindtraders.onmicrosoft.com";
    f.env
        .control(
            reqwest::Method::POST,
            "actions",
            json!([{"action": "create_user", "tenant": tenant, "upn": format!("new.starter@{tenant}"), "display_name": "New Starter"}]),
        )
        .await;
    f.advance(13).await;
    let later = f.run().await;
    let read_again =
        |name: &str| f.summary(&later, "northwindtraders").collectors.iter().find(|c| c.name == name).map(|c| c.mode);
    assert_eq!(read_again("devices"), Some(Mode::Paged), "read again after its window");
    let events = f
        .store
        .events(&store::EventFilter { tenant: Some(northwind.clone()), ..Default::default() })
        .await
        .expect("events");
    let changed: std::collections::BTreeSet<&str> =
        events.iter().filter_map(|e| e.event["collection"].as_str()).collect();
    // The new user's sign-in activity is read as bytes, and compared.
    assert!(changed.contains("users") && changed.contains("signInActivity"), "{changed:?}");
    for name in ["devices", "managedDevices", "signIns"] {
        assert!(!changed.contains(name), "{name} did not change: {changed:?}");
    }
}

/// Named locations matter to access only while a Conditional Access policy uses them: then every
/// run reads them (a range added to a trusted location is a way in); otherwise they keep a window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_locations_are_read_every_run_while_a_policy_uses_them() {
    let f = Fixture::new("sqlite::memory:").await;
    let tenant = "northwindtraders.onmicrosoft.com";
    let policy = |outside: Option<&str>| {
        json!([{"action": "set_ca_policy", "tenant": tenant, "policy": {
            "name": "Require MFA outside HQ", "users": "all", "exclude_service_providers": true, "grant": "mfa",
            "outside_locations": outside.map(|o| vec![o]),
        }}])
    };
    let mode = |report: &RunReport| {
        f.summary(report, "northwindtraders")
            .collectors
            .iter()
            .find(|c| c.name == "namedLocations")
            .map(|c| c.mode)
            .expect("named locations are collected")
    };
    f.env.control(reqwest::Method::POST, "actions", policy(None)).await;
    let first = f.run().await;
    assert_ne!(mode(&first), Mode::Reused);
    // No policy uses locations: minutes later they are kept, not read.
    f.advance(0).await;
    f.clock.advance(Duration::minutes(10));
    assert_eq!(mode(&f.run().await), Mode::Reused);
    // A policy that uses them makes the next run read them, as every run after it.
    f.env.control(reqwest::Method::POST, "actions", policy(Some("Northwind HQ"))).await;
    f.clock.advance(Duration::minutes(10));
    assert_ne!(mode(&f.run().await), Mode::Reused);
    f.clock.advance(Duration::minutes(10));
    assert_ne!(mode(&f.run().await), Mode::Reused);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_the_store_refuses_fails_with_a_cause_and_the_run_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    let f = Fixture::new(&format!("sqlite://{}?mode=rwc", path.display())).await;
    let tailspin = f.env.tenant_id("tailspintoys");
    // Reach underneath the store: every write of Tailspin's results fails, as a full disk or a
    // broken table would make it.
    let raw = sqlx_raw(&path).await;
    let trigger = format!(
        "CREATE TRIGGER refuse_tailspin BEFORE INSERT ON tenant_runs \
         WHEN NEW.tenant_key IN (SELECT key FROM tenant_keys WHERE tenant_id = '{tailspin}') \
         BEGIN SELECT RAISE(ABORT, 'simulated write failure'); END"
    );
    sqlx::query(sqlx::AssertSqlSafe(trigger)).execute(&raw).await.expect("trigger");
    raw.close().await;

    let report = f.run().await;
    let failed = f.summary(&report, "tailspintoys");
    assert_eq!(failed.status, Status::Failed);
    let diagnosis = failed.diagnosis.as_ref().expect("a cause");
    assert!(
        diagnosis.summary.contains("database") || diagnosis.evidence.iter().any(|e| e.value.contains("database")),
        "{diagnosis:#?}"
    );
    // The others were committed, and the run finished.
    assert_eq!(f.summary(&report, "northwindtraders").status, Status::Ok);
    let run = f.store.get_run(&report.run_id).await.expect("read").expect("run");
    assert_eq!(run.status, store::RunStatus::Partial);
    assert!(f.store.last_tenant_run(&TenantId::new(&tailspin)).await.expect("read").is_none());
}

/// Graph finishes a delta round but its answer to the last page is lost, so the client's retry
/// of that page is told to resync: the round starts again and the collection is read in full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resync_on_the_retried_last_delta_page_restarts_the_round() {
    let f = Fixture::new("sqlite::memory:").await;
    let northwind = f.env.tenant_id("northwindtraders");
    f.env.control(reqwest::Method::PUT, "faults", json!({"delta_last_page_lost": true, "tenants": [northwind]})).await;
    let report = f.run().await;
    let summary = f.summary(&report, "northwindtraders");
    assert_eq!(summary.status, Status::Ok, "{summary:#?}");
    for name in ["users", "groups"] {
        let c = summary.collectors.iter().find(|c| c.name == name).expect("collector");
        assert_eq!(c.status, inspect::child::OutcomeStatus::Ok, "{c:#?}");
        assert_eq!(c.mode, Mode::Full);
    }
    let users = summary.collectors.iter().find(|c| c.name == "users").expect("users");
    assert!(users.items.is_some_and(|n| n > 0), "{users:#?}");
}

/// An app credential that cannot be decrypted (its record was altered, or it was written under
/// another key) fails its own tenant with the cause and the fix; the run inspects every other one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecryptable_app_credential_fails_only_its_tenant() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    let f = Fixture::new(&format!("sqlite://{}?mode=rwc", path.display())).await;
    let woodgrove = TenantId::new(f.env.tenant_id("woodgrovebank"));
    f.store
        .credential_put(&store::AppCredential {
            tenant_id: woodgrove.clone(),
            client_id: "0b6f2c4d-7a1e-4c59-9f3e-5d1a2b3c4d5e".into(),
            kind: store::CredentialKind::Secret,
            secret: microsoft::SecretString::from("not-used".to_string()),
            certificate_pem: None,
            expires_at: None,
            label: Some("Woodgrove".into()),
            added_at: Utc::now(),
        })
        .await
        .expect("credential stored");
    let raw = sqlx_raw(&path).await;
    // Other bytes in place of the ciphertext: authenticated encryption refuses them.
    sqlx::query("UPDATE app_credentials SET secret = randomblob(length(secret))").execute(&raw).await.expect("tamper");
    raw.close().await;

    let report = f.run().await;
    let failed = f.summary(&report, "woodgrovebank");
    assert_eq!(failed.status, Status::Failed);
    let diagnosis = failed.diagnosis.as_ref().expect("a cause");
    assert_eq!(diagnosis.cause, "client_credential_invalid", "{diagnosis:#?}");
    assert!(diagnosis.fix.iter().any(|f| f.contains("tenants remove-app")), "{diagnosis:#?}");
    assert_eq!(f.summary(&report, "northwindtraders").status, Status::Ok);
    let run = f.store.get_run(&report.run_id).await.expect("read").expect("run");
    assert_eq!(run.status, store::RunStatus::Partial);
    let committed = f.store.last_tenant_run(&woodgrove).await.expect("read").expect("the failure is committed");
    assert!(committed.diagnosis.is_some_and(|d| d["cause"] == "client_credential_invalid"));
}

async fn sqlx_raw(path: &std::path::Path) -> sqlx::SqlitePool {
    let options =
        sqlx::sqlite::SqliteConnectOptions::new().filename(path).busy_timeout(std::time::Duration::from_secs(15));
    sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect_with(options).await.expect("raw connection")
}
