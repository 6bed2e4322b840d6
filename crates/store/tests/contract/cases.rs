//! The contract every backend must meet: one async function per behaviour,
//! each taking the store under test (and its database, for the few checks
//! that must look underneath the store or reopen it).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use serde_json::{Value, json};
use sha2::Digest;
use store::{
    AlertRecord, AppCredential, Backend, CacheRecord, CollectorOutcomeRecord, CredentialKind, DataprintId, EventFilter,
    ExposeSecret, Key, OutcomeStatus, RunStatus, SecretString, Severity, Store, StoreError, TenantAuth, TenantRecord,
    TenantRole, TenantRunRecord, TenantRunStatus,
};
use tokio::io::AsyncBufReadExt;

use crate::fixtures;
use crate::harness::{Kind, TestDb, opt_tid, rid, tid};

type S = Arc<dyn Store>;
type Db = Arc<TestDb>;

fn ts(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).expect("test timestamp").with_timezone(&Utc)
}

fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn tenant(id: &str, domain: Option<&str>, name: &str) -> TenantRecord {
    TenantRecord {
        id: tid(id),
        domain: domain.map(str::to_owned),
        display_name: name.to_owned(),
        role: TenantRole::Customer,
        auth: TenantAuth::Gdap,
        first_seen: ts("2026-01-01T00:00:00.123456Z"),
        last_seen: ts("2026-11-28T12:00:00Z"),
        gone_since: None,
        gdap: Some(json!({"status": "active", "roles": ["Global Reader"], "endDateTime": "2027-01-01T00:00:00Z"})),
        label: None,
    }
}

fn tenant_run(
    run_id: &(impl AsRef<str> + ?Sized),
    tenant_id: &(impl AsRef<str> + ?Sized),
    status: TenantRunStatus,
    finished_at: DateTime<Utc>,
) -> TenantRunRecord {
    TenantRunRecord {
        run_id: rid(run_id),
        tenant_id: tid(tenant_id),
        status,
        started_at: finished_at - TimeDelta::seconds(7),
        finished_at,
        diagnosis: (status == TenantRunStatus::Failed)
            .then(|| json!({"cause": "gdap_expired", "summary": "The GDAP relationship ended"})),
        error: (status == TenantRunStatus::Failed).then(|| json!({"kind": "token", "code": "AADSTS50020"})),
        dataprint_id: None,
    }
}

fn outcome(
    run_id: &(impl AsRef<str> + ?Sized),
    tenant_id: &(impl AsRef<str> + ?Sized),
    collector: &str,
    status: OutcomeStatus,
) -> CollectorOutcomeRecord {
    CollectorOutcomeRecord {
        run_id: rid(run_id),
        tenant_id: tid(tenant_id),
        collector: collector.to_owned(),
        status,
        items: (status == OutcomeStatus::Ok).then_some(412),
        reason: (status == OutcomeStatus::Skipped)
            .then(|| json!({"kind": "license", "detail": "Entra ID P1 is required"})),
        error: (status == OutcomeStatus::Failed).then(|| json!({"status": 403, "code": "Authorization_RequestDenied"})),
        diagnosis: (status == OutcomeStatus::Failed).then(|| json!({"cause": "permission_missing"})),
        requests: 3,
        duration_ms: 180,
    }
}

/// Commits a tenant result with a standard set of outcomes.
async fn commit(
    store: &S,
    run_id: &(impl AsRef<str> + ?Sized),
    tenant_id: &(impl AsRef<str> + ?Sized),
    status: TenantRunStatus,
    at: DateTime<Utc>,
    doc: Option<&Value>,
) -> Option<DataprintId> {
    let outcomes = vec![
        outcome(run_id, tenant_id, "users", OutcomeStatus::Ok),
        outcome(run_id, tenant_id, "signIns", OutcomeStatus::Skipped),
    ];
    store
        .commit_tenant_result(&tenant_run(run_id, tenant_id, status, at), &outcomes, doc)
        .await
        .expect("commit tenant result")
}

/// Commits a tenant's dataprint as the inspection engine does: the outcomes
/// come from the document, their figures from its `run` member.
async fn commit_doc(
    store: &S,
    run_id: &(impl AsRef<str> + ?Sized),
    tenant_id: &(impl AsRef<str> + ?Sized),
    status: TenantRunStatus,
    at: DateTime<Utc>,
    doc: &Value,
) -> Option<DataprintId> {
    let outcomes = fixtures::outcomes(run_id.as_ref(), tenant_id.as_ref(), doc);
    store
        .commit_tenant_result(&tenant_run(run_id, tenant_id, status, at), &outcomes, Some(doc))
        .await
        .expect("commit tenant result")
}

fn cache_record(key: &str, tenant_id: &str, kind: &str, secret: &str) -> CacheRecord {
    CacheRecord {
        key: key.to_owned(),
        tenant_id: tenant_id.into(),
        kind: kind.to_owned(),
        client_id: "11111111-2222-3333-4444-555555555555".to_owned(),
        home_account: Some("uid.utid".to_owned()),
        scopes: "https://graph.microsoft.com/.default offline_access".to_owned(),
        secret: SecretString::from(secret.to_owned()),
        issued_at: Some(ts("2026-11-28T12:00:00Z")),
        expires_at: Some(ts("2026-11-28T13:00:00Z")),
        claims: Some(json!({"amr": ["pwd", "mfa"], "tid": tenant_id})),
        updated_at: ts("2026-11-28T12:00:01Z"),
    }
}

fn credential(tenant_id: &str, kind: CredentialKind, secret: &str) -> AppCredential {
    AppCredential {
        tenant_id: tid(tenant_id),
        client_id: "99999999-8888-7777-6666-555555555555".to_owned(),
        kind,
        secret: SecretString::from(secret.to_owned()),
        certificate_pem: (kind == CredentialKind::Certificate)
            .then(|| "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".to_owned()),
        expires_at: Some(ts("2027-06-30T00:00:00Z")),
        label: Some("reader app".to_owned()),
        added_at: ts("2026-11-01T09:00:00Z"),
    }
}

fn json_string(value: &Value) -> String {
    serde_json::to_string(value).expect("serialize")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

// ---------------------------------------------------------------------------

pub async fn backend_matches(store: S, db: Db) {
    let expected = match db.kind {
        Kind::Sqlite => Backend::Sqlite,
        Kind::Postgres => Backend::Postgres,
    };
    assert_eq!(store.backend(), expected);
}

pub async fn tenants(store: S, _db: Db) {
    let north = tenant("0F3C2A55-0000-4000-8000-000000000001", Some("Northwind.onmicrosoft.com"), "Northwind Traders");
    store.upsert_tenant(&north).await.expect("upsert");
    assert_eq!(store.find_tenant(north.id.as_str()).await.expect("get"), Some(north.clone()));
    let by_domain = store.find_tenant("NORTHWIND.ONMICROSOFT.COM").await.expect("get").expect("found");
    assert_eq!(by_domain.id, north.id);
    let by_lower_id = store.find_tenant(&north.id.as_str().to_uppercase()).await.expect("get").expect("found");
    assert_eq!(by_lower_id.id, north.id);
    assert_eq!(store.find_tenant("nobody.example").await.expect("get"), None);

    // An upsert keeps first_seen and takes everything else.
    let mut renamed = north.clone();
    renamed.first_seen = ts("2026-06-01T00:00:00Z");
    renamed.last_seen = ts("2026-11-29T00:00:00Z");
    renamed.display_name = "Northwind Traders Ltd".into();
    renamed.auth = TenantAuth::App;
    renamed.gdap = None;
    store.upsert_tenant(&renamed).await.expect("upsert again");
    let back = store.find_tenant(north.id.as_str()).await.expect("get").expect("found");
    assert_eq!(back.first_seen, north.first_seen);
    assert_eq!(back.display_name, "Northwind Traders Ltd");
    assert_eq!(back.auth, TenantAuth::App);
    assert_eq!(back.last_seen, renamed.last_seen);
    assert_eq!(back.gdap, None);
    // The same record seen again later: only `last_seen` moves (the store skips rewriting the
    // rest), and a record that differs only in `gone_since` is still written.
    let mut seen_again = renamed.clone();
    seen_again.last_seen = ts("2026-11-30T00:00:00Z");
    store.upsert_tenant(&seen_again).await.expect("upsert unchanged");
    assert_eq!(
        store.find_tenant(north.id.as_str()).await.expect("get").expect("found"),
        TenantRecord { first_seen: north.first_seen, ..seen_again.clone() }
    );
    let mut gone = seen_again.clone();
    gone.gone_since = Some(ts("2026-11-30T00:00:00Z"));
    store.upsert_tenant(&gone).await.expect("upsert gone");
    assert_eq!(store.find_tenant(north.id.as_str()).await.expect("get").expect("found").gone_since, gone.gone_since);
    store.upsert_tenant(&seen_again).await.expect("upsert back");
    assert_eq!(store.find_tenant(north.id.as_str()).await.expect("get").expect("found").gone_since, None);

    let mut partner = tenant("partner-0001", Some("msp.onmicrosoft.com"), "Alpha MSP");
    partner.role = TenantRole::Partner;
    partner.auth = TenantAuth::Partner;
    store.upsert_tenant(&partner).await.expect("upsert partner");
    let names: Vec<String> = store.list_tenants().await.expect("list").into_iter().map(|t| t.display_name).collect();
    assert_eq!(names, vec!["Alpha MSP".to_owned(), "Northwind Traders Ltd".to_owned()]);

    // mark_gone keeps the earliest date and reports unknown tenants.
    assert!(store.mark_gone(&tid(north.id.as_str()), ts("2026-12-01T00:00:00Z")).await.expect("gone"));
    assert!(store.mark_gone(&tid(north.id.as_str()), ts("2026-12-05T00:00:00Z")).await.expect("gone"));
    let gone = store.find_tenant(north.id.as_str()).await.expect("get").expect("found");
    assert_eq!(gone.gone_since, Some(ts("2026-12-01T00:00:00Z")));
    assert!(!store.mark_gone(&tid("unknown-tenant"), now()).await.expect("gone"));

    // A domain reused by a new tenant resolves to the present one.
    let successor =
        tenant("0f3c2a55-0000-4000-8000-000000000002", Some("northwind.onmicrosoft.com"), "Northwind (new)");
    store.upsert_tenant(&successor).await.expect("upsert successor");
    let resolved = store.find_tenant("northwind.onmicrosoft.com").await.expect("get").expect("found");
    assert_eq!(resolved.id, successor.id);
}

pub async fn runs(store: S, _db: Db) {
    let t0 = ts("2026-11-28T12:00:00.5Z");
    let run = store.start_run("inspect", t0).await.expect("start");
    let uuid = uuid::Uuid::parse_str(run.id.as_str()).expect("run id is a uuid");
    assert_eq!(uuid.get_version_num(), 7);
    assert_eq!(run.status, RunStatus::Running);
    assert_eq!(store.get_run(&rid(run.id.as_str())).await.expect("get"), Some(run.clone()));

    let stats = json!({"tenants": 12, "ok": 11, "failed": 1, "requests": 840});
    store
        .finish_run(&rid(run.id.as_str()), RunStatus::Partial, ts("2026-11-28T12:03:00Z"), &stats)
        .await
        .expect("finish");
    let done = store.get_run(&rid(run.id.as_str())).await.expect("get").expect("found");
    assert_eq!(done.status, RunStatus::Partial);
    assert_eq!(done.finished_at, Some(ts("2026-11-28T12:03:00Z")));
    assert_eq!(json_string(&done.stats), json_string(&stats));

    let later = store.start_run("doctor", ts("2026-11-28T13:00:00Z")).await.expect("start");
    let listed = store.list_runs(10).await.expect("list");
    assert_eq!(listed.iter().map(|r| r.id.clone()).collect::<Vec<_>>(), vec![later.id.clone(), run.id.clone()]);
    assert_eq!(store.list_runs(1).await.expect("list").len(), 1);

    let err =
        store.finish_run(&rid(later.id.as_str()), RunStatus::Running, now(), &Value::Null).await.expect_err("refused");
    assert!(matches!(err, StoreError::InvalidInput(_)), "{err}");
    let err = store.finish_run(&rid("no-such-run"), RunStatus::Ok, now(), &Value::Null).await.expect_err("refused");
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    let err = store.heartbeat_run(&rid("no-such-run")).await.expect_err("refused");
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    store.heartbeat_run(&rid(later.id.as_str())).await.expect("heartbeat");
    assert_eq!(store.get_run(&rid("no-such-run")).await.expect("get"), None);
}

pub async fn interrupted_runs_are_marked_on_open(store: S, db: Db) {
    let run = store.start_run("inspect", now()).await.expect("start");
    let doc = fixtures::dataprint("crashco", run.id.as_str(), 20);
    commit(&store, run.id.as_str(), "crashco", TenantRunStatus::Ok, now(), Some(&doc)).await;

    // A second process opening the database while the first is alive must
    // not interrupt its run.
    let other = db.open().await;
    assert_eq!(other.get_run(&rid(run.id.as_str())).await.expect("get").expect("found").status, RunStatus::Running);
    drop(other);

    // The owner dies without finishing the run.
    drop(store);
    let reopened = db.open().await;
    let interrupted = reopened.get_run(&rid(run.id.as_str())).await.expect("get").expect("found");
    assert_eq!(interrupted.status, RunStatus::Interrupted);
    assert!(interrupted.finished_at.is_some());
    // What it committed is intact.
    let (_, last) = reopened.last_good_dataprint(&tid("crashco")).await.expect("last").expect("kept");
    assert_eq!(json_string(&last), json_string(&doc));

    // The next run completes normally.
    let next = reopened.start_run("inspect", now()).await.expect("start");
    commit(&reopened, &next.id, "crashco", TenantRunStatus::Ok, now(), Some(&doc)).await;
    reopened.finish_run(&rid(&next.id), RunStatus::Ok, now(), &json!({"tenants": 1})).await.expect("finish");
    drop(reopened);
    let again = db.open().await;
    assert_eq!(again.get_run(&rid(&next.id)).await.expect("get").expect("found").status, RunStatus::Ok);
    assert_eq!(again.get_run(&rid(run.id.as_str())).await.expect("get").expect("found").status, RunStatus::Interrupted);
    assert_eq!(again.recover_interrupted_runs().await.expect("recover"), 0);
}

pub async fn tenant_results(store: S, _db: Db) {
    let run = store.start_run("inspect", now()).await.expect("start");
    let at = now();
    let outcomes = vec![
        outcome(run.id.as_str(), "t1", "users", OutcomeStatus::Ok),
        outcome(run.id.as_str(), "t1", "signIns", OutcomeStatus::Skipped),
        outcome(run.id.as_str(), "t1", "conditionalAccessPolicies", OutcomeStatus::Failed),
    ];
    let tr = tenant_run(run.id.as_str(), "t1", TenantRunStatus::Partial, at);
    let doc = fixtures::dataprint("t1", run.id.as_str(), 10);
    let id = store.commit_tenant_result(&tr, &outcomes, Some(&doc)).await.expect("commit").expect("dataprint stored");
    let mut expected = tr.clone();
    expected.dataprint_id = Some(id.clone());
    assert_eq!(store.tenant_runs(&rid(run.id.as_str())).await.expect("runs"), vec![expected.clone()]);
    assert_eq!(store.collector_outcomes(&rid(run.id.as_str()), &tid("t1")).await.expect("outcomes"), outcomes);
    assert_eq!(store.last_tenant_run(&tid("t1")).await.expect("last"), Some(expected));
    let meta = store.dataprint_meta(&id).await.expect("meta").expect("found");
    assert_eq!(
        (meta.run_id.as_str(), meta.tenant_id.as_str(), meta.taken_at, meta.status),
        (run.id.as_str(), "t1", at, TenantRunStatus::Partial)
    );

    // Committing the same tenant again replaces its result.
    let retry = tenant_run(run.id.as_str(), "t1", TenantRunStatus::Ok, at + TimeDelta::seconds(30));
    let retry_outcomes = vec![outcome(run.id.as_str(), "t1", "users", OutcomeStatus::Ok)];
    let id2 = store.commit_tenant_result(&retry, &retry_outcomes, Some(&doc)).await.expect("recommit").expect("stored");
    assert_ne!(id, id2);
    assert_eq!(store.tenant_runs(&rid(run.id.as_str())).await.expect("runs").len(), 1);
    assert_eq!(store.collector_outcomes(&rid(run.id.as_str()), &tid("t1")).await.expect("outcomes"), retry_outcomes);
    assert_eq!(store.dataprint_meta(&id).await.expect("meta"), None);
    assert_eq!(store.get_dataprint(&id).await.expect("get"), None);

    // A failed tenant stores no dataprint even when given one.
    let failed = tenant_run(run.id.as_str(), "t2", TenantRunStatus::Failed, at);
    let none = store.commit_tenant_result(&failed, &[], Some(&doc)).await.expect("commit failed");
    assert_eq!(none, None);
    assert_eq!(store.last_good_dataprint(&tid("t2")).await.expect("last"), None);
    assert_eq!(store.last_tenant_run(&tid("t2")).await.expect("last").expect("found").status, TenantRunStatus::Failed);

    // Bad input is refused before anything is written.
    let wrong = vec![outcome(run.id.as_str(), "other-tenant", "users", OutcomeStatus::Ok)];
    let err = store
        .commit_tenant_result(&tenant_run(run.id.as_str(), "t3", TenantRunStatus::Ok, at), &wrong, None)
        .await
        .expect_err("refused");
    assert!(matches!(err, StoreError::InvalidInput(_)), "{err}");
    let twice = vec![
        outcome(run.id.as_str(), "t3", "users", OutcomeStatus::Ok),
        outcome(run.id.as_str(), "t3", "users", OutcomeStatus::Ok),
    ];
    let err = store
        .commit_tenant_result(&tenant_run(run.id.as_str(), "t3", TenantRunStatus::Ok, at), &twice, None)
        .await
        .expect_err("refused");
    assert!(matches!(err, StoreError::InvalidInput(_)), "{err}");
    let err = store
        .commit_tenant_result(&tenant_run("no-such-run", "t3", TenantRunStatus::Ok, at), &[], Some(&doc))
        .await
        .expect_err("refused");
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    assert_eq!(store.last_tenant_run(&tid("t3")).await.expect("last"), None);
    assert_eq!(store.tenant_runs(&rid("no-such-run")).await.expect("runs"), vec![]);
}

pub async fn dataprint_round_trip_is_byte_exact(store: S, _db: Db) {
    let run = store.start_run("inspect", now()).await.expect("start");
    // Unsorted keys inside collections, Unicode, escapes, extreme numbers,
    // empty and null collections, and keys after `collections`.
    let doc = json!({
        "schema": "tenantscope.dataprint/1",
        "tenant": {"id": "t-rt", "display_name": "Zürich \"Quotes\" \\ Ltd ☃", "role": "customer"},
        "status": "ok",
        "collections": {
            "users": {
                "b-id": {"id": "b-id", "displayName": "Bé", "zeta": [1, 2, 3], "alpha": {"y": 1, "x": 2}},
                "a-id": {"userPrincipalName": "a@x", "id": "a-id", "n": 0.1, "big": 18446744073709551615u64, "neg": -9223372036854775808i64, "tiny": 1e-300, "huge": 1.7976931348623157e308, "negzero": -0.0},
            },
            "empty": {},
            "nothing": null,
            "list": [3, 1, 2],
            "control": {"x": "line\nbreak\ttab\u{0001}"},
        },
        "after": {"z": 1, "a": 2},
    });
    let id = commit(&store, run.id.as_str(), "t-rt", TenantRunStatus::Ok, now(), Some(&doc)).await.expect("stored");
    let back = store.get_dataprint(&id).await.expect("get").expect("found");
    assert_eq!(json_string(&back), json_string(&doc));
    let (meta, last) = store.last_good_dataprint(&tid("t-rt")).await.expect("last").expect("found");
    assert_eq!(meta.id, id);
    assert_eq!(json_string(&last), json_string(&doc));
    // Some collections only: the others are left out, the rest of the document is whole.
    let (meta, part) =
        store.last_good_collections(&tid("t-rt"), &["list", "empty", "absent"]).await.expect("part").expect("found");
    assert_eq!(meta.id, id);
    let mut expected = doc.clone();
    expected["collections"] = json!({"empty": {}, "list": [3, 1, 2]});
    assert_eq!(json_string(&part), json_string(&expected));

    // Documents with nothing to split are stored whole.
    for (tenant_id, doc) in [
        ("t-none", json!({"schema": "tenantscope.dataprint/1", "status": "partial", "collectors": {}})),
        ("t-empty", json!({"collections": {}, "status": "ok"})),
        ("t-array", json!([1, "two", {"three": 3}])),
    ] {
        let id = commit(&store, run.id.as_str(), tenant_id, TenantRunStatus::Partial, now(), Some(&doc))
            .await
            .expect("stored");
        let back = store.get_dataprint(&id).await.expect("get").expect("found");
        assert_eq!(json_string(&back), json_string(&doc));
    }

    // A realistic document round-trips too.
    let big = fixtures::dataprint("roundtrip", run.id.as_str(), 300);
    let id =
        commit(&store, run.id.as_str(), "roundtrip", TenantRunStatus::Ok, now(), Some(&big)).await.expect("stored");
    assert_eq!(json_string(&store.get_dataprint(&id).await.expect("get").expect("found")), json_string(&big));
    assert_eq!(store.get_dataprint(&DataprintId::new("missing")).await.expect("get"), None);
}

pub async fn identical_dataprints_are_stored_once(store: S, db: Db) {
    let doc = fixtures::dataprint("contoso", "same-run-id", 2000);
    let mut first_size = 0;
    let mut first_blobs = 0;
    let mut ids = Vec::new();
    let t0 = ts("2026-11-01T00:00:00Z");
    for i in 0..30 {
        let at = t0 + TimeDelta::days(i);
        let run = store.start_run("inspect", at).await.expect("start");
        let id = commit(&store, run.id.as_str(), "contoso", TenantRunStatus::Ok, at, Some(&doc)).await.expect("stored");
        store.finish_run(&rid(run.id.as_str()), RunStatus::Ok, at, &json!({"tenants": 1})).await.expect("finish");
        ids.push(id);
        let blobs = db.count("SELECT COUNT(*) FROM blobs").await;
        if i == 0 {
            first_size = store.storage_bytes().await.expect("size");
            first_blobs = blobs;
            assert_eq!(blobs, 13, "one blob per collection");
        } else {
            assert_eq!(blobs, first_blobs, "an unchanged collection is stored once");
            assert_eq!(ids[i as usize], ids[0], "identical content keeps its dataprint");
        }
    }
    assert_eq!(db.count("SELECT COUNT(*) FROM collection_sets").await, 1);
    assert_eq!(db.count("SELECT COUNT(*) FROM dataprints").await, 1);
    assert_eq!(db.count("SELECT COUNT(*) FROM results").await, 1, "the same outcomes are stored once");
    assert_eq!(db.count("SELECT COUNT(*) FROM tenant_runs").await, 30);
    let meta = store.dataprint_meta(&ids[0]).await.expect("meta").expect("found");
    assert_eq!((meta.taken_at, meta.confirmed_at), (t0, t0 + TimeDelta::days(29)));
    let last_size = store.storage_bytes().await.expect("size");
    let ratio = last_size as f64 / first_size as f64;
    eprintln!("{:?}: 30 identical 2,000-user dataprints: {first_size} -> {last_size} bytes, ratio {ratio:.3}", db.kind);
    assert!(ratio <= 1.2, "size grew from {first_size} to {last_size} bytes (ratio {ratio:.3})");
    let back = store.get_dataprint(&ids[29]).await.expect("get").expect("found");
    assert_eq!(json_string(&back), json_string(&doc));
}

/// Runs of an unchanged tenant, each with its own `run` member as the
/// engine writes it, confirm one dataprint; every run's document and
/// outcomes still come back exactly as committed.
pub async fn unchanged_dataprints_are_confirmed_not_stored(store: S, db: Db) {
    let collections = fixtures::collections("steady", 120);
    let t0 = ts("2026-11-01T06:00:00Z");
    let mut runs = Vec::new();
    for day in 0..6 {
        let at = t0 + TimeDelta::days(day);
        let run = store.start_run("inspect", at).await.expect("start");
        // The first run reads everything in full; later ones read by delta
        // where they can, with durations and times that differ every run.
        let info = fixtures::RunInfo { id: run.id.to_string(), started_at: at, seed: day as u64 * 7919 };
        let doc = fixtures::dataprint_in_run("steady", &info, collections.clone());
        let finished = at + TimeDelta::seconds(9);
        let id =
            commit_doc(&store, run.id.as_str(), "steady", TenantRunStatus::Ok, finished, &doc).await.expect("stored");
        store.finish_run(&rid(run.id.as_str()), RunStatus::Ok, finished, &json!({})).await.expect("finish");
        runs.push((run.id, doc, finished, id));
    }
    let (first_run, first_doc, first_at, first_id) = runs[0].clone();
    for (run_id, _, finished, id) in &runs {
        assert_eq!(id, &first_id, "unchanged content keeps its dataprint");
        let result = store.tenant_runs(&rid(run_id)).await.expect("results").pop().expect("one result");
        assert_eq!(result.dataprint_id.as_ref(), Some(&first_id));
        assert_eq!(result.finished_at, *finished);
    }
    assert_eq!(db.count("SELECT COUNT(*) FROM dataprints").await, 1);

    // The meta tells when the content was first and last seen.
    let (last_run, _, last_at, _) = runs.last().cloned().expect("runs");
    let meta = store.dataprint_meta(&first_id).await.expect("meta").expect("found");
    assert_eq!((meta.run_id.as_str(), meta.taken_at), (first_run.as_str(), first_at));
    assert_eq!((meta.confirmed_run_id.as_str(), meta.confirmed_at), (last_run.as_str(), last_at));

    // get_dataprint gives the document as first stored, last_good_dataprint
    // as the last run produced it, and dataprint_for_run each run's own.
    assert_eq!(
        json_string(&store.get_dataprint(&first_id).await.expect("get").expect("found")),
        json_string(&first_doc)
    );
    let (last_meta, last_doc) = store.last_good_dataprint(&tid("steady")).await.expect("last").expect("found");
    assert_eq!(last_meta, meta);
    let last_run_doc = &runs.last().expect("runs").1;
    assert_eq!(json_string(&last_doc), json_string(last_run_doc));
    assert_ne!(json_string(&last_doc), json_string(&first_doc), "the runs' members differ");
    for (run_id, doc, _, _) in &runs {
        let back = store.dataprint_for_run(&rid(run_id), &tid("steady")).await.expect("for run").expect("found");
        assert_eq!(json_string(&back), json_string(doc), "run {run_id}");
        let outcomes = store.collector_outcomes(&rid(run_id), &tid("steady")).await.expect("outcomes");
        assert_eq!(outcomes, fixtures::outcomes(run_id.as_str(), "steady", doc), "run {run_id}");
        assert_eq!(outcomes.len(), 14);
    }
    assert_eq!(store.dataprint_for_run(&rid("no-such-run"), &tid("steady")).await.expect("for run"), None);
    assert_eq!(store.dataprint_for_run(&rid(&first_run), &tid("nobody")).await.expect("for run"), None);

    // Listing walks distinct content; a dataprint still current counts as
    // taken since any time up to its last confirmation.
    assert_eq!(store.dataprints(&tid("steady"), None).await.expect("list"), vec![meta.clone()]);
    assert_eq!(store.dataprints(&tid("steady"), Some(last_at)).await.expect("list").len(), 1);
    assert!(store.dataprints(&tid("steady"), Some(last_at + TimeDelta::seconds(1))).await.expect("list").is_empty());
    assert_eq!(store.previous_dataprint(&tid("steady"), &first_id).await.expect("previous"), None);

    // What an unchanged run costs: its per-run part is a few dozen bytes.
    let largest = db.count("SELECT CAST(MAX(LENGTH(per_run)) AS BIGINT) FROM tenant_runs").await;
    eprintln!("{:?}: largest per-run part {largest} bytes", db.kind);
    assert!(largest < 120, "{largest} bytes");
}

/// Changed content, a return to earlier content, and a change of status
/// each store a new dataprint; the listing then walks exactly those changes.
pub async fn changed_content_stores_a_new_dataprint(store: S, db: Db) {
    let a = fixtures::collections("chg", 30);
    let mut b = a.clone();
    let users = b["users"].as_object_mut().expect("users");
    let first = users.keys().next().expect("a user").clone();
    users[&first]["displayName"] = json!("Renamed User");
    let steps = [
        (&a, TenantRunStatus::Ok),
        (&a, TenantRunStatus::Ok),
        (&b, TenantRunStatus::Ok),
        (&b, TenantRunStatus::Ok),
        (&a, TenantRunStatus::Ok),
        (&a, TenantRunStatus::Partial),
    ];
    let t0 = ts("2026-11-01T00:00:00Z");
    let mut ids = Vec::new();
    let mut times = Vec::new();
    for (day, (collections, status)) in steps.iter().enumerate() {
        let at = t0 + TimeDelta::days(day as i64);
        let run = store.start_run("inspect", at).await.expect("start");
        let info = fixtures::RunInfo { id: run.id.to_string(), started_at: at, seed: day as u64 };
        let doc = fixtures::dataprint_in_run("chg", &info, (*collections).clone());
        ids.push(commit_doc(&store, run.id.as_str(), "chg", *status, at, &doc).await.expect("stored"));
        times.push(at);
    }
    assert_eq!(ids[1], ids[0], "unchanged");
    assert_ne!(ids[2], ids[0], "changed");
    assert_eq!(ids[3], ids[2], "unchanged");
    assert!(ids[4] != ids[0] && ids[4] != ids[2], "back to the first content is a change too");
    assert_ne!(ids[5], ids[4], "same content, other status");
    assert_eq!(db.count("SELECT COUNT(*) FROM dataprints").await, 4);
    assert_eq!(db.count("SELECT COUNT(*) FROM collection_sets").await, 2, "returning content reuses its set");

    let listed = store.dataprints(&tid("chg"), None).await.expect("list");
    let distinct = vec![ids[0].clone(), ids[2].clone(), ids[4].clone(), ids[5].clone()];
    assert_eq!(listed.iter().map(|m| m.id.clone()).collect::<Vec<_>>(), distinct);
    assert_eq!((listed[0].taken_at, listed[0].confirmed_at), (times[0], times[1]));
    assert_eq!((listed[3].status, listed[3].confirmed_at), (TenantRunStatus::Partial, times[5]));
    // Since the second day: the first content was still current then.
    let since = store.dataprints(&tid("chg"), Some(times[1])).await.expect("list");
    assert_eq!(since.len(), 4);
    let since = store.dataprints(&tid("chg"), Some(times[2])).await.expect("list");
    assert_eq!(since.iter().map(|m| m.id.clone()).collect::<Vec<_>>(), distinct[1..].to_vec());

    let (previous, doc) = store.previous_dataprint(&tid("chg"), &ids[4]).await.expect("previous").expect("found");
    assert_eq!(previous.id, ids[2]);
    assert_eq!(doc["collections"]["users"][&first]["displayName"], json!("Renamed User"));
    let (last, _) = store.last_good_dataprint(&tid("chg")).await.expect("last").expect("found");
    assert_eq!(last.id, ids[5]);
}

pub async fn only_changed_collections_are_added(store: S, db: Db) {
    let run = store.start_run("inspect", now()).await.expect("start");
    let a = fixtures::dataprint("fabrikam", run.id.as_str(), 50);
    commit(&store, run.id.as_str(), "fabrikam", TenantRunStatus::Ok, ts("2026-11-01T00:00:00Z"), Some(&a)).await;
    let blobs = db.count("SELECT COUNT(*) FROM blobs").await;

    // One user renamed: one new blob (users), one new set.
    let mut b = a.clone();
    let users = b["collections"]["users"].as_object_mut().expect("users");
    let first = users.keys().next().expect("a user").clone();
    users[&first]["displayName"] = json!("Renamed User");
    let run2 = store.start_run("inspect", now()).await.expect("start");
    let id_b = commit(&store, run2.id.as_str(), "fabrikam", TenantRunStatus::Ok, ts("2026-11-02T00:00:00Z"), Some(&b))
        .await
        .expect("stored");
    assert_eq!(db.count("SELECT COUNT(*) FROM blobs").await, blobs + 1);
    assert_eq!(db.count("SELECT COUNT(*) FROM collection_sets").await, 2);

    // Back to the first state: nothing new at all.
    let run3 = store.start_run("inspect", now()).await.expect("start");
    commit(&store, run3.id.as_str(), "fabrikam", TenantRunStatus::Ok, ts("2026-11-03T00:00:00Z"), Some(&a)).await;
    assert_eq!(db.count("SELECT COUNT(*) FROM blobs").await, blobs + 1);
    assert_eq!(db.count("SELECT COUNT(*) FROM collection_sets").await, 2);
    assert_eq!(json_string(&store.get_dataprint(&id_b).await.expect("get").expect("found")), json_string(&b));

    // Another tenant with an identical collection: blobs are looked up among the committing
    // tenant's and the shared ones (so that a commit's new blobs land together in the index), and
    // content another tenant stored before is stored once more, as shared, for the tenants after.
    let mut c = fixtures::dataprint("other", run3.id.as_str(), 5);
    c["collections"]["securityDefaults"] = a["collections"]["securityDefaults"].clone();
    let before = db.count("SELECT COUNT(*) FROM blobs").await;
    commit(&store, run3.id.as_str(), "other", TenantRunStatus::Ok, now(), Some(&c)).await;
    let added = db.count("SELECT COUNT(*) FROM blobs").await - before;
    assert_eq!(added, 13, "13 collections, none found among other's blobs or the shared ones");
    assert_eq!(db.count("SELECT COUNT(*) FROM blobs WHERE owner = 0").await, 1, "securityDefaults is shared");
    let mut third = fixtures::dataprint("third", run3.id.as_str(), 6);
    third["collections"]["securityDefaults"] = a["collections"]["securityDefaults"].clone();
    let before = db.count("SELECT COUNT(*) FROM blobs").await;
    let id_third =
        commit(&store, run3.id.as_str(), "third", TenantRunStatus::Ok, now(), Some(&third)).await.expect("stored");
    let added = db.count("SELECT COUNT(*) FROM blobs").await - before;
    assert_eq!(added, 12, "13 collections, one found among the shared blobs");
    assert_eq!(json_string(&store.get_dataprint(&id_third).await.expect("get").expect("found")), json_string(&third));

    // Two collections of one dataprint with the same content share one blob, and both read back.
    let mut d = fixtures::dataprint("twins", run3.id.as_str(), 4);
    d["collections"]["usersAgain"] = d["collections"]["users"].clone();
    let id_d = commit(&store, run3.id.as_str(), "twins", TenantRunStatus::Ok, now(), Some(&d)).await.expect("stored");
    let members = d["collections"].as_object().map_or(0, |m| m.len()) as i64;
    let (all, distinct) = (
        "SELECT COUNT(*) FROM collection_set_members \
         WHERE set_id = (SELECT set_id FROM dataprints WHERE key = (SELECT MAX(key) FROM dataprints))",
        "SELECT COUNT(DISTINCT blob_id) FROM collection_set_members \
         WHERE set_id = (SELECT set_id FROM dataprints WHERE key = (SELECT MAX(key) FROM dataprints))",
    );
    assert_eq!(db.count(all).await, members);
    assert_eq!(db.count(distinct).await, members - 1, "the twins share a blob");
    assert_eq!(json_string(&store.get_dataprint(&id_d).await.expect("get").expect("found")), json_string(&d));
}

pub async fn last_good_dataprint_survives_failed_runs(store: S, _db: Db) {
    let run1 = store.start_run("inspect", ts("2026-11-01T00:00:00Z")).await.expect("start");
    let doc1 = fixtures::dataprint("lg", run1.id.as_str(), 20);
    let id1 = commit(&store, run1.id.as_str(), "lg", TenantRunStatus::Ok, ts("2026-11-01T00:00:10Z"), Some(&doc1))
        .await
        .expect("stored");
    store
        .finish_run(&rid(run1.id.as_str()), RunStatus::Ok, ts("2026-11-01T00:01:00Z"), &Value::Null)
        .await
        .expect("finish");

    let run2 = store.start_run("inspect", ts("2026-11-02T00:00:00Z")).await.expect("start");
    let mut doc2 = fixtures::dataprint("lg", run2.id.as_str(), 0);
    doc2["status"] = json!("failed");
    let none =
        commit(&store, run2.id.as_str(), "lg", TenantRunStatus::Failed, ts("2026-11-02T00:00:10Z"), Some(&doc2)).await;
    assert_eq!(none, None);
    store
        .finish_run(&rid(run2.id.as_str()), RunStatus::Failed, ts("2026-11-02T00:01:00Z"), &Value::Null)
        .await
        .expect("finish");

    let (meta, doc) = store.last_good_dataprint(&tid("lg")).await.expect("last").expect("kept");
    assert_eq!(meta.id, id1);
    assert_eq!(meta.run_id, run1.id);
    assert_eq!(json_string(&doc), json_string(&doc1));
    let last = store.last_tenant_run(&tid("lg")).await.expect("last").expect("found");
    assert_eq!((last.run_id, last.status, last.dataprint_id), (run2.id.clone(), TenantRunStatus::Failed, None));
    assert_eq!(store.dataprint_for_run(&rid(run2.id.as_str()), &tid("lg")).await.expect("for run"), None);
    assert_eq!(store.collector_outcomes(&rid(run2.id.as_str()), &tid("lg")).await.expect("outcomes").len(), 2);

    // An unchanged run after the failure confirms the last good dataprint:
    // the failure neither replaced it nor broke the chain of confirmations.
    let run2b = store.start_run("inspect", ts("2026-11-02T12:00:00Z")).await.expect("start");
    let doc2b = fixtures::dataprint("lg", run2b.id.as_str(), 20);
    let id2b =
        commit(&store, run2b.id.as_str(), "lg", TenantRunStatus::Ok, ts("2026-11-02T12:00:10Z"), Some(&doc2b)).await;
    assert_eq!(id2b.as_ref(), Some(&id1));
    let (meta, doc) = store.last_good_dataprint(&tid("lg")).await.expect("last").expect("kept");
    assert_eq!((meta.id.clone(), meta.confirmed_at), (id1.clone(), ts("2026-11-02T12:00:10Z")));
    // It comes with the `run` member of the run that confirmed it.
    assert_eq!(json_string(&doc), json_string(&doc2b));
    let doc = store.dataprint_for_run(&rid(run2b.id.as_str()), &tid("lg")).await.expect("for run").expect("found");
    assert_eq!(json_string(&doc), json_string(&doc2b));

    // A partial result is good enough to become the last good dataprint.
    let run3 = store.start_run("inspect", ts("2026-11-03T00:00:00Z")).await.expect("start");
    let doc3 = fixtures::dataprint("lg", run3.id.as_str(), 21);
    let id3 = commit(&store, run3.id.as_str(), "lg", TenantRunStatus::Partial, ts("2026-11-03T00:00:10Z"), Some(&doc3))
        .await
        .expect("stored");
    let (meta, _) = store.last_good_dataprint(&tid("lg")).await.expect("last").expect("found");
    assert_eq!((meta.id, meta.status), (id3, TenantRunStatus::Partial));
}

pub async fn dataprint_listing_and_previous(store: S, _db: Db) {
    let run = store.start_run("inspect", now()).await.expect("start");
    let times = ["2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z"];
    let mut ids = Vec::new();
    for (i, at) in times.iter().enumerate() {
        let run_i = store.start_run("inspect", ts(at)).await.expect("start");
        let doc = fixtures::dataprint("lst", run_i.id.as_str(), 5 + i);
        ids.push(
            commit(&store, run_i.id.as_str(), "lst", TenantRunStatus::Ok, ts(at), Some(&doc)).await.expect("stored"),
        );
    }
    commit(
        &store,
        run.id.as_str(),
        "unrelated",
        TenantRunStatus::Ok,
        ts(times[1]),
        Some(&fixtures::dataprint("u", run.id.as_str(), 1)),
    )
    .await;

    let all = store.dataprints(&tid("lst"), None).await.expect("list");
    assert_eq!(all.iter().map(|m| m.id.clone()).collect::<Vec<_>>(), ids);
    assert_eq!(all[1].taken_at, ts(times[1]));
    let since = store.dataprints(&tid("lst"), Some(ts(times[1]))).await.expect("list");
    assert_eq!(since.iter().map(|m| m.id.clone()).collect::<Vec<_>>(), ids[1..].to_vec());

    let (prev, doc) = store.previous_dataprint(&tid("lst"), &ids[2]).await.expect("prev").expect("found");
    assert_eq!(prev.id, ids[1]);
    assert_eq!(doc["collections"]["users"].as_object().map(|m| m.len()), Some(6));
    assert_eq!(store.previous_dataprint(&tid("lst"), &ids[0]).await.expect("prev"), None);
    assert_eq!(store.previous_dataprint(&tid("lst"), &DataprintId::new("nope")).await.expect("prev"), None);
    assert_eq!(store.dataprints(&tid("nobody"), None).await.expect("list"), vec![]);
}

pub async fn prune_collects_garbage(store: S, db: Db) {
    let mut ids = Vec::new();
    // The last day's dataprint as the run that confirmed it produced it.
    let mut confirmed_doc = Value::Null;
    let mut pruned_runs = Vec::new();
    for day in 1..=4 {
        // Users change every day; every other collection stays the same.
        let mut collections = fixtures::collections("pr", 30);
        collections["users"] = json!({ format!("u{day}"): {"id": format!("u{day}")} });
        // Two runs a day: the second confirms the first's dataprint.
        for hour in [0, 12] {
            let at = ts(&format!("2026-11-0{day}T{hour:02}:00:00Z"));
            let run = store.start_run("inspect", at).await.expect("start");
            let info = fixtures::RunInfo { id: run.id.to_string(), started_at: at, seed: hour + 1 };
            let doc = fixtures::dataprint_in_run("pr", &info, collections.clone());
            let id = commit_doc(&store, run.id.as_str(), "pr", TenantRunStatus::Ok, at, &doc).await.expect("stored");
            if day <= 2 {
                pruned_runs.push((run.id.clone(), fixtures::outcomes(run.id.as_str(), "pr", &doc)));
            }
            if hour == 0 {
                ids.push((id, doc));
            } else {
                assert_eq!(id, ids.last().expect("first run of the day").0);
                confirmed_doc = doc;
            }
        }
    }
    let run = store.start_run("inspect", now()).await.expect("start");
    let keep_doc = fixtures::dataprint("solo", run.id.as_str(), 3);
    let solo =
        commit(&store, run.id.as_str(), "solo", TenantRunStatus::Ok, now(), Some(&keep_doc)).await.expect("stored");
    let blobs_before = db.count("SELECT COUNT(*) FROM blobs").await;

    let report = store.prune(2).await.expect("prune");
    assert_eq!(report.dataprints_deleted, 2);
    assert_eq!(report.sets_deleted, 2);
    assert_eq!(report.blobs_deleted, 2, "only the two old users collections");
    assert_eq!(db.count("SELECT COUNT(*) FROM blobs").await, blobs_before - 2);
    for (id, _) in &ids[..2] {
        assert_eq!(store.get_dataprint(id).await.expect("get"), None);
    }
    for (id, doc) in &ids[2..] {
        assert_eq!(json_string(&store.get_dataprint(id).await.expect("get").expect("kept")), json_string(doc));
    }
    assert!(store.get_dataprint(&solo).await.expect("get").is_some());
    // The tenant results of pruned dataprints remain, without a dataprint
    // but with their complete outcomes.
    let detached = db.count("SELECT COUNT(*) FROM tenant_runs WHERE dataprint_key IS NULL").await;
    assert_eq!(detached, 4);
    for (run_id, outcomes) in &pruned_runs {
        assert_eq!(&store.collector_outcomes(&rid(run_id), &tid("pr")).await.expect("outcomes"), outcomes);
        assert_eq!(store.dataprint_for_run(&rid(run_id), &tid("pr")).await.expect("for run"), None);
        let result = store.tenant_runs(&rid(run_id)).await.expect("results").pop().expect("kept");
        assert_eq!(result.dataprint_id, None);
    }

    // Keeping zero still keeps the last good dataprint of every tenant.
    let report = store.prune(0).await.expect("prune");
    assert_eq!(report.dataprints_deleted, 1);
    let (meta, doc) = store.last_good_dataprint(&tid("pr")).await.expect("last").expect("kept");
    assert_eq!(meta.id, ids[3].0);
    assert_eq!(json_string(&doc), json_string(&confirmed_doc));
    assert!(store.last_good_dataprint(&tid("solo")).await.expect("last").is_some());
}

pub async fn delta_links(store: S, _db: Db) {
    assert_eq!(store.get_delta_link(&tid("t1"), "users").await.expect("get"), None);
    let link = "https://graph.microsoft.com/v1.0/users/delta?$deltatoken=abc";
    store.set_delta_link(&tid("t1"), "users", link).await.expect("set");
    store
        .set_delta_link(&tid("t1"), "groups", "https://graph.microsoft.com/v1.0/groups/delta?$deltatoken=g")
        .await
        .expect("set");
    store
        .set_delta_link(&tid("t2"), "users", "https://graph.microsoft.com/v1.0/users/delta?$deltatoken=t2")
        .await
        .expect("set");
    assert_eq!(store.get_delta_link(&tid("t1"), "users").await.expect("get").as_deref(), Some(link));
    store
        .set_delta_link(&tid("t1"), "users", "https://graph.microsoft.com/v1.0/users/delta?$deltatoken=def")
        .await
        .expect("replace");
    assert!(store.get_delta_link(&tid("t1"), "users").await.expect("get").expect("set").ends_with("def"));
    assert_eq!(store.clear_delta_links(&tid("t1")).await.expect("clear"), 2);
    assert_eq!(store.get_delta_link(&tid("t1"), "users").await.expect("get"), None);
    assert!(store.get_delta_link(&tid("t2"), "users").await.expect("get").is_some());
    assert_eq!(store.delta_links(&tid("t1")).await.expect("links"), vec![]);
    assert_eq!(store.delta_links(&tid("t2")).await.expect("links").len(), 1);
}

/// A collection given as its bytes (written from Graph's answers without building it) is stored as
/// the same collection in the document would be: read back whole, and the same document committed
/// whole later is the same dataprint.
pub async fn a_collection_given_as_bytes_is_stored_as_in_the_document(store: S, _db: Db) {
    let run = store.start_run("inspect", now()).await.expect("start");
    let doc = fixtures::dataprint("t1", run.id.as_str(), 40);
    let outcomes = fixtures::outcomes(run.id.as_str(), "t1", &doc);
    let users = serde_json::to_vec(&doc["collections"]["users"]).expect("users");
    let mut holed = doc.clone();
    holed["collections"]["users"] = Value::Null;
    let with = store::WithResult {
        unparsed: vec![store::UnparsedCollection { name: "users".into(), json: users.into() }],
        ..store::WithResult::default()
    };
    let at = now();
    let id = store
        .commit_tenant_result_with(&tenant_run(&run.id, "t1", TenantRunStatus::Ok, at), &outcomes, Some(&holed), &with)
        .await
        .expect("commit")
        .expect("a dataprint");
    assert_eq!(store.get_dataprint(&id).await.expect("read").expect("stored"), doc);

    let run2 = store.start_run("inspect", now()).await.expect("start");
    let again = store
        .commit_tenant_result_with(
            &tenant_run(&run2.id, "t1", TenantRunStatus::Ok, now()),
            &fixtures::outcomes(run2.id.as_str(), "t1", &doc),
            Some(&doc),
            &store::WithResult::default(),
        )
        .await
        .expect("commit")
        .expect("a dataprint");
    assert_eq!(again, id, "the same content, built as a tree, is the dataprint stored");

    // Bytes without an empty place in the document are refused, and nothing is stored.
    let run3 = store.start_run("inspect", now()).await.expect("start");
    let stray = store::WithResult {
        unparsed: vec![store::UnparsedCollection { name: "nowhere".into(), json: b"{}".to_vec().into() }],
        ..store::WithResult::default()
    };
    let refused = store
        .commit_tenant_result_with(
            &tenant_run(&run3.id, "t1", TenantRunStatus::Ok, now()),
            &fixtures::outcomes(run3.id.as_str(), "t1", &doc),
            Some(&doc),
            &stray,
        )
        .await;
    assert!(matches!(refused, Err(StoreError::InvalidInput(_))), "{refused:?}");
    assert_eq!(store.last_good_dataprint(&tid("t1")).await.expect("read").expect("stored").0.id, id);
}

pub async fn a_tenant_commits_everything_in_one_write(store: S, _db: Db) {
    let run = store.start_run("inspect", now()).await.expect("start");
    let t = tid("t1");
    let doc = fixtures::dataprint("t1", run.id.as_str(), 40);
    let outcomes = fixtures::outcomes(run.id.as_str(), "t1", &doc);
    let at = now();
    let with = store::WithResult {
        tenant: Some(tenant("t1", Some("contoso.example"), "Contoso")),
        domains: Some(store::DomainsOf {
            source: "dataprint".into(),
            domains: vec!["Contoso.example".into(), "contoso.onmicrosoft.example".into()],
        }),
        metrics: Some(store::MetricsAt {
            at,
            values: vec![("users.total".into(), json!(40)), ("mfa.coverage".into(), json!(0.5))],
        }),
        delta_links: vec![
            ("users".into(), "https://graph.example/v1.0/users/delta?$deltatoken=a".into()),
            ("groups".into(), "https://graph.example/v1.0/groups/delta?$deltatoken=g".into()),
        ],
        reused: None,
        unparsed: Vec::new(),
    };
    let id = store
        .commit_tenant_result_with(&tenant_run(&run.id, "t1", TenantRunStatus::Ok, at), &outcomes, Some(&doc), &with)
        .await
        .expect("commit with everything")
        .expect("a dataprint");
    assert_eq!(store.get_tenant(&t).await.expect("tenant").expect("upserted").display_name, "Contoso");
    assert_eq!(
        store.tenant_domains(&t).await.expect("domains"),
        vec!["contoso.example".to_string(), "contoso.onmicrosoft.example".to_string()]
    );
    let mut latest = store.latest_metrics(&t).await.expect("metrics");
    latest.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(
        latest.iter().map(|p| (p.name.as_str(), p.value.clone(), p.at)).collect::<Vec<_>>(),
        vec![("mfa.coverage", json!(0.5), at), ("users.total", json!(40), at)]
    );
    assert!(store.get_delta_link(&t, "users").await.expect("link").expect("saved").ends_with("=a"));
    assert_eq!(
        store.delta_links(&t).await.expect("links"),
        vec![
            ("groups".to_string(), "https://graph.example/v1.0/groups/delta?$deltatoken=g".to_string()),
            ("users".to_string(), "https://graph.example/v1.0/users/delta?$deltatoken=a".to_string()),
        ]
    );
    let all = store.all_tenant_domains().await.expect("all domains");
    assert_eq!(all.get(&t), Some(&store.tenant_domains(&t).await.expect("domains")));
    assert_eq!(store.last_good_dataprint(&t).await.expect("read").expect("stored").0.id, id);

    // A result without a dataprint keeps the tenant's metrics and delta links as they were: the
    // links lead on from data that this result does not hold.
    let run2 = store.start_run("inspect", now()).await.expect("start");
    let failed = links_and_metrics("b", 41);
    let none = store
        .commit_tenant_result_with(&tenant_run(&run2.id, "t1", TenantRunStatus::Failed, now()), &[], None, &failed)
        .await
        .expect("commit a failure");
    assert_eq!(none, None);
    assert!(store.get_delta_link(&t, "users").await.expect("link").expect("kept").ends_with("=a"));
    assert!(store.latest_metrics(&t).await.expect("metrics").iter().all(|p| p.at == at));

    // All or nothing: a part the store refuses leaves the result uncommitted as well.
    let run3 = store.start_run("inspect", now()).await.expect("start");
    let mut bad = links_and_metrics("c", 42);
    bad.domains = Some(store::DomainsOf { source: String::new(), domains: vec!["x.example".into()] });
    let doc3 = fixtures::dataprint("t1", run3.id.as_str(), 41);
    let refused = store
        .commit_tenant_result_with(
            &tenant_run(&run3.id, "t1", TenantRunStatus::Ok, now()),
            &fixtures::outcomes(run3.id.as_str(), "t1", &doc3),
            Some(&doc3),
            &bad,
        )
        .await;
    assert!(matches!(refused, Err(StoreError::InvalidInput(_))), "{refused:?}");
    assert!(store.tenant_runs(&run3.id).await.expect("runs").is_empty());
    assert!(store.get_delta_link(&t, "users").await.expect("link").expect("kept").ends_with("=a"));
    assert!(store.latest_metrics(&t).await.expect("metrics").iter().all(|p| p.at == at));

    // Another tenant's record cannot ride along with this tenant's result.
    let other = store::WithResult { tenant: Some(tenant("t2", None, "Other")), ..store::WithResult::default() };
    let refused = store
        .commit_tenant_result_with(&tenant_run(&run3.id, "t1", TenantRunStatus::Failed, now()), &[], None, &other)
        .await;
    assert!(matches!(refused, Err(StoreError::InvalidInput(_))), "{refused:?}");
    assert_eq!(store.get_tenant(&tid("t2")).await.expect("read"), None);
}

pub async fn reused_collections_are_taken_from_the_earlier_dataprint(store: S, _db: Db) {
    let run1 = store.start_run("inspect", now()).await.expect("start");
    let doc1 = fixtures::dataprint("t1", run1.id.as_str(), 30);
    let commit = |run: &store::RunRecord, doc: &Value, with: store::WithResult| {
        let (store, run, doc) = (store.clone(), run.clone(), doc.clone());
        async move {
            let outcomes = fixtures::outcomes(run.id.as_str(), "t1", &doc);
            store
                .commit_tenant_result_with(
                    &tenant_run(&run.id, "t1", TenantRunStatus::Ok, now()),
                    &outcomes,
                    Some(&doc),
                    &with,
                )
                .await
        }
    };
    let first = commit(&run1, &doc1, store::WithResult::default()).await.expect("commit").expect("a dataprint");
    let names: Vec<String> =
        doc1["collections"].as_object().expect("collections").keys().filter(|n| *n != "domains").cloned().collect();

    // Every collection but `domains` moved unchanged; `domains` changed.
    let run2 = store.start_run("inspect", now()).await.expect("start");
    let mut doc2 = fixtures::dataprint("t1", run2.id.as_str(), 30);
    doc2["collections"]["domains"] = json!({"d-new": {"id": "d-new", "isVerified": true}});
    let reused = |collections: Vec<String>| store::WithResult {
        reused: Some(store::ReusedFrom { dataprint: first.clone(), collections, unread: vec![] }),
        ..store::WithResult::default()
    };
    let second = commit(&run2, &doc2, reused(names.clone())).await.expect("commit").expect("a dataprint");
    assert_ne!(second, first);
    assert_eq!(store.get_dataprint(&second).await.expect("read").expect("stored"), doc2);

    // A claim that does not hold is refused where it can be checked (builds with debug assertions:
    // the tests) rather than storing the earlier content.
    let run3 = store.start_run("inspect", now()).await.expect("start");
    let mut doc3 = fixtures::dataprint("t1", run3.id.as_str(), 30);
    doc3["collections"]["domains"] = json!({"d-3": {"id": "d-3"}});
    let wrong = commit(&run3, &doc3, reused(vec!["domains".into()])).await;
    if cfg!(debug_assertions) {
        assert!(matches!(wrong, Err(StoreError::InvalidInput(_))), "{wrong:?}");
        assert!(store.tenant_runs(&run3.id).await.expect("runs").is_empty());
    }

    // Another tenant's dataprint, an unknown one, and collections it does not hold are no help:
    // the collections are stored from the document.
    let run4 = store.start_run("inspect", now()).await.expect("start");
    let other = fixtures::dataprint("t2", run4.id.as_str(), 30);
    let outcomes = fixtures::outcomes(run4.id.as_str(), "t2", &other);
    let theirs = store
        .commit_tenant_result_with(
            &tenant_run(&run4.id, "t2", TenantRunStatus::Ok, now()),
            &outcomes,
            Some(&other),
            &reused(names.clone()),
        )
        .await
        .expect("commit")
        .expect("a dataprint");
    assert_eq!(store.get_dataprint(&theirs).await.expect("read").expect("stored"), other);
    let run5 = store.start_run("inspect", now()).await.expect("start");
    let mut doc5 = fixtures::dataprint("t1", run5.id.as_str(), 31);
    doc5["collections"]["nothingLikeIt"] = json!({});
    let with = store::WithResult {
        reused: Some(store::ReusedFrom {
            dataprint: store::DataprintId::from("no-such-dataprint".to_string()),
            collections: vec!["users".into(), "nothingLikeIt".into()],
            unread: vec![],
        }),
        ..store::WithResult::default()
    };
    let fifth = commit(&run5, &doc5, with).await.expect("commit").expect("a dataprint");
    assert_eq!(store.get_dataprint(&fifth).await.expect("read").expect("stored"), doc5);
    let partial = commit(&run5, &doc5, reused(vec!["nothingLikeIt".into(), "users".into()])).await;
    // `users` differs in size from the first dataprint's: refused in debug builds, as above.
    if cfg!(debug_assertions) {
        assert!(matches!(partial, Err(StoreError::InvalidInput(_))), "{partial:?}");
    }
}

pub async fn tenants_and_their_domains_are_upserted_together(store: S, _db: Db) {
    let north = tenant("t1", Some("north.example"), "North");
    let south = tenant("t2", None, "South");
    let batch = vec![(north.clone(), vec!["north.example".to_string(), "n.example".into()]), (south.clone(), vec![])];
    store.upsert_tenants_with_domains(&batch, "partner").await.expect("upsert");
    assert_eq!(store.get_tenant(&tid("t1")).await.expect("read").map(|t| t.display_name), Some("North".into()));
    assert_eq!(store.get_tenant(&tid("t2")).await.expect("read").map(|t| t.display_name), Some("South".into()));
    assert_eq!(store.tenant_domains(&tid("t1")).await.expect("read"), ["n.example", "north.example"]);
    assert_eq!(store.resolve_tenants("n.example").await.expect("resolve").len(), 1);
    let all = store.all_tenant_domains().await.expect("all domains");
    assert_eq!(all.get(&tid("t1")).map(Vec::as_slice), Some(&["n.example".to_string(), "north.example".into()][..]));
    assert_eq!(all.get(&tid("t2")), None);

    // One bad record and nothing of the batch is written.
    let renamed = TenantRecord { display_name: "North Renamed".into(), ..north };
    let bad = vec![(renamed, vec![]), (tenant("", None, "Nobody"), vec![]), (tenant("t3", None, "Third"), vec![])];
    let refused = store.upsert_tenants_with_domains(&bad, "partner").await;
    assert!(matches!(refused, Err(StoreError::InvalidInput(_))), "{refused:?}");
    assert_eq!(store.get_tenant(&tid("t1")).await.expect("read").map(|t| t.display_name), Some("North".into()));
    assert_eq!(store.tenant_domains(&tid("t1")).await.expect("read"), ["n.example", "north.example"]);
    assert_eq!(store.get_tenant(&tid("t3")).await.expect("read"), None);
}

pub async fn unread_collections_are_carried_from_the_earlier_dataprint(store: S, _db: Db) {
    let run1 = store.start_run("inspect", now()).await.expect("start");
    let doc1 = fixtures::dataprint("t1", run1.id.as_str(), 30);
    let commit = |tenant: &'static str, run: &store::RunRecord, doc: &Value, with: store::WithResult| {
        let (store, run, doc) = (store.clone(), run.clone(), doc.clone());
        async move {
            let outcomes = fixtures::outcomes(run.id.as_str(), tenant, &doc);
            store
                .commit_tenant_result_with(
                    &tenant_run(&run.id, tenant, TenantRunStatus::Ok, now()),
                    &outcomes,
                    Some(&doc),
                    &with,
                )
                .await
        }
    };
    let first = commit("t1", &run1, &doc1, store::WithResult::default()).await.expect("commit").expect("a dataprint");
    let skip = ["devices", "signIns"];
    for name in skip {
        assert!(doc1["collections"][name].is_object(), "the fixture has {name}");
    }

    // Read with two collections left unread: they are there, as null; the rest is as stored.
    let (meta, loaded) = store.last_good_dataprint_unread(&tid("t1"), &skip).await.expect("read").expect("stored");
    assert_eq!(meta.id, first);
    let mut expected = store.last_good_dataprint(&tid("t1")).await.expect("read").expect("stored").1;
    for name in skip {
        expected["collections"][name] = Value::Null;
    }
    assert_eq!(loaded, expected);

    // Committed again with users changed and the two carried unread: stored whole, with the earlier
    // content of the two.
    let run2 = store.start_run("inspect", now()).await.expect("start");
    let mut doc2 = fixtures::dataprint("t1", run2.id.as_str(), 30);
    doc2["collections"]["users"] = json!({"u-new": {"id": "u-new", "accountEnabled": true}});
    let mut sent = doc2.clone();
    for name in skip {
        sent["collections"][name] = Value::Null;
    }
    let carried = |dataprint: &store::DataprintId, unread: &[&str]| store::WithResult {
        reused: Some(store::ReusedFrom {
            dataprint: dataprint.clone(),
            collections: vec![],
            unread: unread.iter().map(|n| n.to_string()).collect(),
        }),
        ..store::WithResult::default()
    };
    let second = commit("t1", &run2, &sent, carried(&first, &skip)).await.expect("commit").expect("a dataprint");
    assert_ne!(second, first);
    assert_eq!(store.get_dataprint(&second).await.expect("read").expect("stored"), doc2);

    // Carrying what cannot be carried is refused, and nothing is stored: a collection the earlier
    // dataprint lacks, an unknown dataprint, another tenant's.
    let run3 = store.start_run("inspect", now()).await.expect("start");
    let mut doc3 = fixtures::dataprint("t1", run3.id.as_str(), 31);
    doc3["collections"]["nothingLikeIt"] = Value::Null;
    let missing = commit("t1", &run3, &doc3, carried(&second, &["nothingLikeIt"])).await;
    assert!(matches!(missing, Err(StoreError::InvalidInput(_))), "{missing:?}");
    let unknown = store::DataprintId::from("no-such-dataprint".to_string());
    let mut doc4 = fixtures::dataprint("t1", run3.id.as_str(), 31);
    doc4["collections"]["devices"] = Value::Null;
    let refused = commit("t1", &run3, &doc4, carried(&unknown, &["devices"])).await;
    assert!(matches!(refused, Err(StoreError::InvalidInput(_))), "{refused:?}");
    let mut theirs = fixtures::dataprint("t2", run3.id.as_str(), 31);
    theirs["collections"]["devices"] = Value::Null;
    let refused = commit("t2", &run3, &theirs, carried(&second, &["devices"])).await;
    assert!(matches!(refused, Err(StoreError::InvalidInput(_))), "{refused:?}");
    assert!(store.tenant_runs(&run3.id).await.expect("runs").is_empty());
}

pub async fn a_commit_confirms_only_the_latest_dataprint_whatever_was_loaded_before(store: S, db: Db) {
    let run1 = store.start_run("inspect", now()).await.expect("start");
    let doc1 = fixtures::dataprint("t1", run1.id.as_str(), 30);
    let first = commit_doc(&store, &run1.id, "t1", TenantRunStatus::Ok, now(), &doc1).await.expect("a dataprint");

    // This store loads the tenant's latest dataprint, as a run does before building on it; then
    // another process stores a different one.
    assert_eq!(store.last_good_dataprint(&tid("t1")).await.expect("read").expect("stored").0.id, first);
    let other = db.open().await;
    let run2 = other.start_run("inspect", now()).await.expect("start");
    let doc2 = fixtures::dataprint("t1", run2.id.as_str(), 31);
    let second = commit_doc(&other, &run2.id, "t1", TenantRunStatus::Ok, now(), &doc2).await.expect("a dataprint");
    assert_ne!(second, first);

    // The first content again is a change from the latest, and is stored anew rather than taken as
    // a confirmation of the dataprint loaded earlier.
    let run3 = store.start_run("inspect", now()).await.expect("start");
    let third = commit_doc(
        &store,
        &run3.id,
        "t1",
        TenantRunStatus::Ok,
        now(),
        &fixtures::dataprint("t1", run3.id.as_str(), 30),
    )
    .await
    .expect("a dataprint");
    assert_ne!(third, first);
    assert_ne!(third, second);
    assert_eq!(store.last_good_dataprint(&tid("t1")).await.expect("read").expect("stored").0.id, third);

    // Loaded, and committed unchanged: confirmed.
    let run4 = store.start_run("inspect", now()).await.expect("start");
    let fourth = commit_doc(
        &store,
        &run4.id,
        "t1",
        TenantRunStatus::Ok,
        now(),
        &fixtures::dataprint("t1", run4.id.as_str(), 30),
    )
    .await
    .expect("a dataprint");
    assert_eq!(fourth, third);
}

pub async fn one_collection_of_a_dataprint_is_read_whole_or_projected(store: S, _db: Db) {
    let run = store.start_run("inspect", now()).await.expect("start");
    let doc = fixtures::dataprint("t1", run.id.as_str(), 30);
    let id = commit_doc(&store, &run.id, "t1", TenantRunStatus::Ok, now(), &doc).await.expect("a dataprint");
    let users = doc["collections"]["users"].clone();
    assert!(users.as_object().is_some_and(|u| u.len() == 30), "the fixture has users");
    assert_eq!(store.dataprint_collection(&id, "users", None).await.expect("read"), Some(users.clone()));
    let fields = vec!["accountEnabled".to_string(), "userType".to_string()];
    let projected = store.dataprint_collection(&id, "users", Some(&fields)).await.expect("read").expect("there");
    assert_eq!(projected, store::project_collection(users, &fields));
    assert!(projected.as_object().expect("users").values().all(|u| u.as_object().is_some_and(|u| u.len() <= 2)));
    assert_eq!(store.dataprint_collection(&id, "noSuchCollection", None).await.expect("read"), None);
    let unknown = store::DataprintId::from("no-such-dataprint".to_string());
    assert_eq!(store.dataprint_collection(&unknown, "users", None).await.expect("read"), None);
}

/// A delta link and a metric value to commit with a tenant's result.
fn links_and_metrics(token: &str, users: i64) -> store::WithResult {
    store::WithResult {
        metrics: Some(store::MetricsAt { at: now(), values: vec![("users.total".into(), json!(users))] }),
        delta_links: vec![("users".into(), format!("https://graph.example/v1.0/users/delta?$deltatoken={token}"))],
        ..store::WithResult::default()
    }
}

pub async fn token_cache_rotation_and_deletes(store: S, _db: Db) {
    store.cache_put(&cache_record("at-a", "tenant-a", "access", "eyJ.access.a")).await.expect("put");
    store.cache_put(&cache_record("rt-a", "tenant-a", "refresh", "0.refresh.a.v1")).await.expect("put");
    store.cache_put(&cache_record("rt-b", "tenant-b", "refresh", "0.refresh.b")).await.expect("put");

    let got = store.cache_get("rt-a").await.expect("get").expect("found");
    assert_eq!(got.secret.expose_secret(), "0.refresh.a.v1");
    assert_eq!(got.claims, Some(json!({"amr": ["pwd", "mfa"], "tid": "tenant-a"})));
    assert_eq!(
        (got.kind.as_str(), got.issued_at, got.expires_at),
        ("refresh", Some(ts("2026-11-28T12:00:00Z")), Some(ts("2026-11-28T13:00:00Z")))
    );

    // Rotation: the new refresh token replaces the old one atomically.
    let mut rotated = cache_record("rt-a", "tenant-a", "refresh", "0.refresh.a.v2");
    rotated.updated_at = ts("2026-11-28T12:30:00Z");
    rotated.expires_at = None;
    store.cache_put(&rotated).await.expect("rotate");
    let got = store.cache_get("rt-a").await.expect("get").expect("found");
    assert_eq!(got.secret.expose_secret(), "0.refresh.a.v2");
    assert_eq!((got.updated_at, got.expires_at), (ts("2026-11-28T12:30:00Z"), None));

    let list = store.cache_list().await.expect("list");
    assert_eq!(list.iter().map(|m| m.key.as_str()).collect::<Vec<_>>(), vec!["at-a", "rt-a", "rt-b"]);
    let listed = serde_json::to_string(&list).expect("json");
    assert!(!listed.contains("refresh.a"), "listing carries no secret: {listed}");

    assert!(store.cache_delete("at-a").await.expect("delete"));
    assert!(!store.cache_delete("at-a").await.expect("delete"));
    store.cache_put(&cache_record("id-a", "tenant-a", "id", "eyJ.id.a")).await.expect("put");
    assert_eq!(store.cache_delete_tenant("tenant-a").await.expect("delete tenant"), 2);
    assert_eq!(store.cache_get("rt-a").await.expect("get").map(|r| r.key), None);
    assert!(store.cache_get("rt-b").await.expect("get").is_some());
    assert_eq!(store.cache_clear().await.expect("clear"), 1);
    assert!(store.cache_list().await.expect("list").is_empty());
}

pub async fn secrets_are_encrypted_at_rest(store: S, db: Db) {
    let refresh = "0.AXoAplaintext-refresh-token-7f3e9c1b";
    let access = "eyJ0eXAiOiJKV1QiplaintextAccessTokenBody";
    let client_secret = "Zx8Q~client-secret-plaintext-value";
    let private_key = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7plaintextkey\n-----END PRIVATE KEY-----\n";
    let mut marked = cache_record("rt-1", "tenant-enc", "refresh", refresh);
    marked.scopes = "Directory.Read.All marker-scope-visible".into();
    store.cache_put(&marked).await.expect("put");
    store.cache_put(&cache_record("at-1", "tenant-enc", "access", access)).await.expect("put");
    store.credential_put(&credential("tenant-enc", CredentialKind::Secret, client_secret)).await.expect("put");
    store.credential_put(&credential("tenant-cert", CredentialKind::Certificate, private_key)).await.expect("put");
    // Rotation leaves no old plaintext either.
    store.cache_put(&cache_record("rt-1", "tenant-enc", "refresh", &format!("{refresh}-v2"))).await.expect("rotate");
    store.close().await;

    let dump = db.dump().await;
    assert!(contains(&dump, b"marker-scope-visible") || contains(&dump, b"tenant-enc"), "the dump sees stored data");
    for secret in [refresh, access, client_secret, "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7plaintextkey"] {
        assert!(!contains(&dump, secret.as_bytes()), "plaintext secret found in the {:?} database", db.kind);
        assert!(
            !contains(&dump, hex::encode(secret).as_bytes()),
            "hex of a secret found in the {:?} database",
            db.kind
        );
    }

    let reopened = db.open().await;
    assert_eq!(
        reopened.cache_get("rt-1").await.expect("get").expect("found").secret.expose_secret(),
        format!("{refresh}-v2")
    );
    assert_eq!(
        reopened.credential_get(&tid("tenant-cert")).await.expect("get").expect("found").secret.expose_secret(),
        private_key
    );
}

pub async fn tampered_or_moved_ciphertext_fails_cleanly(store: S, db: Db) {
    for (key, tenant_id) in
        [("k1", "tenant-a"), ("k2", "tenant-b"), ("k3", "tenant-c"), ("k4", "tenant-d"), ("k5", "tenant-e")]
    {
        store.cache_put(&cache_record(key, tenant_id, "refresh", &format!("secret-of-{key}"))).await.expect("put");
    }
    store.credential_put(&credential("tenant-a", CredentialKind::Secret, "client-secret-a")).await.expect("put");
    store.credential_put(&credential("tenant-b", CredentialKind::Secret, "client-secret-b")).await.expect("put");

    // Swap the ciphertexts of k1 and k2.
    let c1 = db.fetch_bytes("SELECT secret FROM token_cache WHERE key = $1", "k1").await;
    let c2 = db.fetch_bytes("SELECT secret FROM token_cache WHERE key = $1", "k2").await;
    assert_eq!(db.set_bytes("UPDATE token_cache SET secret = $1 WHERE key = $2", &c2, "k1").await, 1);
    assert_eq!(db.set_bytes("UPDATE token_cache SET secret = $1 WHERE key = $2", &c1, "k2").await, 1);
    // Flip one bit of k3, truncate k4.
    let mut c3 = db.fetch_bytes("SELECT secret FROM token_cache WHERE key = $1", "k3").await;
    let middle = c3.len() / 2;
    c3[middle] ^= 0x01;
    db.set_bytes("UPDATE token_cache SET secret = $1 WHERE key = $2", &c3, "k3").await;
    db.set_bytes("UPDATE token_cache SET secret = $1 WHERE key = $2", &[1u8, 2, 3], "k4").await;
    // Point k5 at another tenant without touching its ciphertext.
    assert_eq!(db.exec("UPDATE token_cache SET tenant_id = 'tenant-evil' WHERE key = $1", &["k5"]).await, 1);

    for key in ["k1", "k2", "k3", "k4", "k5"] {
        let err = store.cache_get(key).await.expect_err("must fail");
        match &err {
            StoreError::Crypto { record } => assert!(record.contains(key), "{record}"),
            other => panic!("expected a crypto error for {key}, got {other}"),
        }
        let message = format!("{err} {err:?}");
        assert!(!message.contains("secret-of-"), "{message}");
    }
    // Listing needs no decryption and still works.
    assert_eq!(store.cache_list().await.expect("list").len(), 5);

    // Credentials moved between tenants fail too.
    let a = db.fetch_bytes("SELECT secret FROM app_credentials WHERE tenant_id = $1", "tenant-a").await;
    db.set_bytes("UPDATE app_credentials SET secret = $1 WHERE tenant_id = $2", &a, "tenant-b").await;
    let err = store.credential_get(&tid("tenant-b")).await.expect_err("must fail");
    assert!(matches!(err, StoreError::Crypto { .. }), "{err}");
    assert_eq!(
        store.credential_get(&tid("tenant-a")).await.expect("get").expect("found").secret.expose_secret(),
        "client-secret-a"
    );

    // A rewritten entry is readable again.
    store.cache_put(&cache_record("k1", "tenant-a", "refresh", "fresh")).await.expect("put");
    assert_eq!(store.cache_get("k1").await.expect("get").expect("found").secret.expose_secret(), "fresh");
}

pub async fn wrong_key_fails_cleanly(store: S, db: Db) {
    store.cache_put(&cache_record("rt", "tenant-a", "refresh", "the-refresh-token")).await.expect("put");
    store.credential_put(&credential("tenant-a", CredentialKind::Secret, "the-client-secret")).await.expect("put");
    store.upsert_tenant(&tenant("tenant-a", Some("a.example"), "A")).await.expect("tenant");
    store.close().await;
    drop(store);

    // Another key is refused at open, before anything could be written under it, and the error
    // names no secret.
    let err = db.open_with(Key::generate()).await.err().expect("another key is refused");
    assert!(matches!(&err, StoreError::WrongKey { secrets: 2, .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("key") && !text.contains("the-refresh-token") && !text.contains("the-client-secret"),
        "{text}"
    );
    // The right key still reads everything.
    let same = db.open_with(db.key.clone()).await.expect("the right key");
    assert!(same.cache_get("rt").await.expect("token").is_some());
    assert_eq!(same.list_tenants().await.expect("tenants").len(), 1);
}

pub async fn app_credentials(store: S, _db: Db) {
    store.credential_put(&credential("tenant-b", CredentialKind::Secret, "secret-b")).await.expect("put");
    let pem = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n";
    store.credential_put(&credential("tenant-a", CredentialKind::Certificate, pem)).await.expect("put");
    let got = store.credential_get(&tid("tenant-a")).await.expect("get").expect("found");
    assert_eq!(got.kind, CredentialKind::Certificate);
    assert_eq!(got.secret.expose_secret(), pem);
    assert!(got.certificate_pem.as_deref().is_some_and(|c| c.contains("BEGIN CERTIFICATE")));
    assert_eq!(
        (got.expires_at, got.added_at, got.label.as_deref()),
        (Some(ts("2027-06-30T00:00:00Z")), ts("2026-11-01T09:00:00Z"), Some("reader app"))
    );

    let list = store.credential_list().await.expect("list");
    assert_eq!(list.iter().map(|c| c.tenant_id.as_str()).collect::<Vec<_>>(), vec!["tenant-a", "tenant-b"]);
    assert!(!serde_json::to_string(&list).expect("json").contains("secret-b"));

    // Replacing a credential (a rotated client secret).
    store.credential_put(&credential("tenant-b", CredentialKind::Secret, "secret-b2")).await.expect("replace");
    assert_eq!(
        store.credential_get(&tid("tenant-b")).await.expect("get").expect("found").secret.expose_secret(),
        "secret-b2"
    );
    assert!(store.credential_delete(&tid("tenant-b")).await.expect("delete"));
    assert!(!store.credential_delete(&tid("tenant-b")).await.expect("delete"));
    assert!(store.credential_get(&tid("tenant-b")).await.expect("get").is_none());
}

pub async fn settings(store: S, _db: Db) {
    assert_eq!(store.setting_get("partner_account").await.expect("get"), None);
    let account = json!({"upn": "admin@msp.example", "tenant": "partner-0001", "z": 1, "a": 2});
    store.setting_put("partner_account", &account).await.expect("put");
    store.setting_put("cloud", &json!("global")).await.expect("put");
    assert_eq!(
        json_string(&store.setting_get("partner_account").await.expect("get").expect("set")),
        json_string(&account)
    );
    store.setting_put("cloud", &json!("usgov")).await.expect("overwrite");
    assert_eq!(store.setting_get("cloud").await.expect("get"), Some(json!("usgov")));
}

pub async fn metrics(store: S, _db: Db) {
    let (t1, t2) = (ts("2026-11-01T00:00:00Z"), ts("2026-11-02T00:00:00Z"));
    store
        .put_metrics(
            &rid("run-1"),
            &tid("tenant-a"),
            t1,
            &[("users".into(), json!(10)), ("mfa_pct".into(), json!(75.5))],
        )
        .await
        .expect("put");
    store.put_metrics(&rid("run-2"), &tid("tenant-a"), t2, &[("users".into(), json!(12))]).await.expect("put");
    store.put_metrics(&rid("run-1"), &tid("tenant-b"), t1, &[("users".into(), json!(3))]).await.expect("put");
    // Re-putting the same run's value replaces it.
    store.put_metrics(&rid("run-1"), &tid("tenant-b"), t1, &[("users".into(), json!(4))]).await.expect("replace");

    let series = store.metric_series(opt_tid(Some("tenant-a")).as_ref(), Some("users"), None).await.expect("series");
    assert_eq!(series.iter().map(|p| p.value.clone()).collect::<Vec<_>>(), vec![json!(10), json!(12)]);
    assert_eq!(series[1].run_id, "run-2");
    assert_eq!(series[1].at, t2);
    let since = store.metric_series(opt_tid(Some("tenant-a")).as_ref(), None, Some(t2)).await.expect("series");
    assert_eq!(since.len(), 1);
    let all_users = store.metric_series(None, Some("users"), None).await.expect("series");
    assert_eq!(all_users.len(), 3);
    assert!(all_users.iter().any(|p| p.tenant_id == "tenant-b" && p.value == json!(4)));
    assert_eq!(store.metric_series(None, None, None).await.expect("series").len(), 4);

    let latest = store.latest_metrics(&tid("tenant-a")).await.expect("latest");
    let summary: Vec<(String, Value)> = latest.into_iter().map(|p| (p.name, p.value)).collect();
    assert_eq!(summary, vec![("mfa_pct".to_owned(), json!(75.5)), ("users".to_owned(), json!(12))]);
    assert!(store.latest_metrics(&tid("nobody")).await.expect("latest").is_empty());

    // Values of every JSON kind, and names a statement would have to quote, read back as put (a
    // tenant's new points are written in one statement).
    let odd: Vec<(String, Value)> = vec![
        ("security_defaults".into(), json!(false)),
        ("note".into(), json!("O'Brien said \"no\" \\ ✓")),
        ("nothing".into(), Value::Null),
        ("list".into(), json!([1, "two", {"three": 3}])),
        ("quote'd \"name\"".into(), json!(-1.25e-7)),
    ];
    store.put_metrics(&rid("run-1"), &tid("tenant-c"), t1, &odd).await.expect("put");
    let mut back: Vec<(String, Value)> =
        store.latest_metrics(&tid("tenant-c")).await.expect("latest").into_iter().map(|p| (p.name, p.value)).collect();
    let mut expected = odd.clone();
    back.sort_by(|a, b| a.0.cmp(&b.0));
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(back, expected);
}

/// Metric series keep only their change points, and stay minimal when a
/// run's value is replaced or a point arrives out of order.
pub async fn metric_series_keep_only_changes(store: S, db: Db) {
    let day = |d: u32| ts(&format!("2026-11-{d:02}T00:00:00Z"));
    for d in 1..=10 {
        let users = match d {
            1..=3 => 10,
            4..=7 => 12,
            _ => 10,
        };
        let values = [("users".to_owned(), json!(users)), ("score".to_owned(), json!(41.5))];
        store.put_metrics(&rid(&format!("run-{d:02}")), &tid("t"), day(d), &values).await.expect("put");
    }
    let points = |series: Vec<store::MetricPoint>| -> Vec<(String, DateTime<Utc>, Value)> {
        series.into_iter().map(|p| (p.run_id.to_string(), p.at, p.value)).collect()
    };
    let users = store.metric_series(opt_tid(Some("t")).as_ref(), Some("users"), None).await.expect("series");
    assert_eq!(
        points(users),
        vec![
            ("run-01".into(), day(1), json!(10)),
            ("run-04".into(), day(4), json!(12)),
            ("run-08".into(), day(8), json!(10))
        ]
    );
    let score = store.metric_series(opt_tid(Some("t")).as_ref(), Some("score"), None).await.expect("series");
    assert_eq!(points(score), vec![("run-01".into(), day(1), json!(41.5))]);
    assert_eq!(db.count("SELECT COUNT(*) FROM metrics").await, 4, "ten runs, four changes");
    // 41.5 and 41.50 are the same JSON number; 10 and 10.0 are not.
    store.put_metrics(&rid("run-11"), &tid("t"), day(11), &[("score".into(), json!(41.50))]).await.expect("put");
    store.put_metrics(&rid("run-11"), &tid("t"), day(11), &[("users".into(), json!(10.0))]).await.expect("put");
    assert_eq!(db.count("SELECT COUNT(*) FROM metrics").await, 5);

    let latest: Vec<(String, String, Value)> = store
        .latest_metrics(&tid("t"))
        .await
        .expect("latest")
        .into_iter()
        .map(|p| (p.name, p.run_id.to_string(), p.value))
        .collect();
    assert_eq!(
        latest,
        vec![("score".into(), "run-01".into(), json!(41.5)), ("users".into(), "run-11".into(), json!(10.0))]
    );

    // Re-putting the latest run's value replaces it; back to the value in
    // effect before, the point disappears.
    store.put_metrics(&rid("run-11"), &tid("t"), day(11), &[("users".into(), json!(10))]).await.expect("replace");
    let users = store.metric_series(opt_tid(Some("t")).as_ref(), Some("users"), None).await.expect("series");
    assert_eq!(users.last().map(|p| p.run_id.as_str()), Some("run-08"));
    assert_eq!(users.len(), 3);

    // A point before the series starts takes over its first point when the
    // value is the same.
    store
        .put_metrics(&rid("run-00"), &tid("t"), ts("2026-10-31T00:00:00Z"), &[("users".into(), json!(10))])
        .await
        .expect("put");
    let users = store.metric_series(opt_tid(Some("t")).as_ref(), Some("users"), None).await.expect("series");
    assert_eq!(users.iter().map(|p| p.run_id.as_str()).collect::<Vec<_>>(), vec!["run-00", "run-04", "run-08"]);
    // And `since` narrows to the changes at or after it.
    let recent = store.metric_series(opt_tid(Some("t")).as_ref(), Some("users"), Some(day(5))).await.expect("series");
    assert_eq!(points(recent), vec![("run-08".into(), day(8), json!(10))]);
    // Of two values with the same name in one put, the last counts: here the value already in effect.
    let twice = [("users".to_owned(), json!(11)), ("users".to_owned(), json!(10))];
    store.put_metrics(&rid("run-12"), &tid("t"), day(12), &twice).await.expect("put");
    let users = store.metric_series(opt_tid(Some("t")).as_ref(), Some("users"), None).await.expect("series");
    assert_eq!(users.iter().map(|p| p.run_id.as_str()).collect::<Vec<_>>(), vec!["run-00", "run-04", "run-08"]);
}

pub async fn events(store: S, _db: Db) {
    let (t1, t2) = (ts("2026-11-01T00:00:00Z"), ts("2026-11-02T00:00:00Z"));
    store
        .put_events(
            &rid("run-1"),
            &tid("tenant-a"),
            t1,
            &[
                json!({"kind": "user_added", "object": "u1"}),
                json!({"kind": "ca_policy_disabled", "severity": "high", "z": 1, "a": 2}),
                json!({"kind": "global_admin_added", "severity": "critical"}),
            ],
        )
        .await
        .expect("put");
    store
        .put_events(
            &rid("run-2"),
            &tid("tenant-b"),
            t2,
            &[json!({"kind": "licence_change", "severity": "low"}), json!({"kind": "mfa_drop", "severity": "Medium"})],
        )
        .await
        .expect("put");

    let all = store.events(&EventFilter::default()).await.expect("events");
    assert_eq!(all.len(), 5);
    assert_eq!(all[0].at, t2, "newest first");
    assert!(all.windows(2).all(|w| w[0].id > w[1].id));
    let by_tenant =
        store.events(&EventFilter { tenant: Some("tenant-a".into()), ..Default::default() }).await.expect("events");
    assert_eq!(by_tenant.len(), 3);
    assert_eq!(by_tenant.iter().find(|e| e.event["kind"] == "user_added").map(|e| e.severity), Some(Severity::Info));
    let high =
        store.events(&EventFilter { min_severity: Some(Severity::High), ..Default::default() }).await.expect("events");
    assert_eq!(high.iter().map(|e| e.severity).collect::<Vec<_>>(), vec![Severity::Critical, Severity::High]);
    let policy = high.iter().find(|e| e.severity == Severity::High).expect("high event");
    assert_eq!(json_string(&policy.event), r#"{"a":2,"kind":"ca_policy_disabled","severity":"high","z":1}"#);
    let since = store.events(&EventFilter { since: Some(t2), ..Default::default() }).await.expect("events");
    assert_eq!(since.len(), 2);
    assert!(since.iter().any(|e| e.severity == Severity::Medium));
    let limited = store.events(&EventFilter { limit: Some(1), ..Default::default() }).await.expect("events");
    assert_eq!(limited.len(), 1);
    assert_eq!(limited[0].tenant_id, "tenant-b");

    // An unknown severity is refused, and nothing of that batch is stored.
    let err = store
        .put_events(
            &rid("run-3"),
            &tid("tenant-a"),
            t2,
            &[json!({"kind": "ok"}), json!({"kind": "x", "severity": "urgent"})],
        )
        .await
        .expect_err("refused");
    assert!(matches!(err, StoreError::InvalidInput(_)), "{err}");
    assert_eq!(store.events(&EventFilter::default()).await.expect("events").len(), 5);
}

pub async fn alerts_and_deliveries(store: S, _db: Db) {
    let alert = |key: &str, tenant_id: &str, opened: &str, resolved: Option<&str>| AlertRecord {
        key: key.to_owned(),
        rule: "admins_without_mfa > 0".to_owned(),
        tenant_id: tenant_id.into(),
        severity: Severity::High,
        opened_at: ts(opened),
        resolved_at: resolved.map(ts),
        payload: json!({"value": 2, "threshold": 0}),
        acked_at: None,
        acked_by: None,
        ack_reason: None,
    };
    store.upsert_alert(&alert("a1", "tenant-a", "2026-11-01T00:00:00Z", None)).await.expect("upsert");
    store.upsert_alert(&alert("a2", "tenant-b", "2026-11-02T00:00:00Z", None)).await.expect("upsert");
    store
        .upsert_alert(&alert("a3", "tenant-a", "2026-10-01T00:00:00Z", Some("2026-10-02T00:00:00Z")))
        .await
        .expect("upsert");

    let open: Vec<String> = store.open_alerts(None).await.expect("open").into_iter().map(|a| a.key).collect();
    assert_eq!(open, vec!["a2", "a1"]);
    let open_a = store.open_alerts(opt_tid(Some("tenant-a")).as_ref()).await.expect("open");
    assert_eq!(open_a, vec![alert("a1", "tenant-a", "2026-11-01T00:00:00Z", None)]);
    assert_eq!(store.list_alerts(false).await.expect("all").len(), 3);
    assert_eq!(store.list_alerts(true).await.expect("open").len(), 2);

    store
        .upsert_alert(&alert("a1", "tenant-a", "2026-11-01T00:00:00Z", Some("2026-11-03T00:00:00Z")))
        .await
        .expect("resolve");
    assert_eq!(store.open_alerts(None).await.expect("open").len(), 1);

    store.record_delivery("a1", "webhook:ops", 1, "failed: 502", ts("2026-11-01T00:00:05Z")).await.expect("delivery");
    store.record_delivery("a1", "webhook:ops", 2, "sent", ts("2026-11-01T00:01:05Z")).await.expect("delivery");
    let deliveries = store.deliveries("a1").await.expect("deliveries");
    assert_eq!(
        deliveries.iter().map(|d| (d.attempt, d.status.as_str())).collect::<Vec<_>>(),
        vec![(1, "failed: 502"), (2, "sent")]
    );
    let err = store.record_delivery("nope", "webhook:ops", 1, "sent", now()).await.expect_err("refused");
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
}

pub async fn baselines(store: S, _db: Db) {
    assert_eq!(store.baseline_get("cis-l1").await.expect("get"), None);
    let baseline = json!({"security_defaults": true, "ca_policies_enabled": {">=": 3}});
    store.baseline_put("cis-l1", &baseline).await.expect("put");
    store.baseline_put("msp-standard", &json!({"mfa_registered_pct": 95})).await.expect("put");
    assert_eq!(json_string(&store.baseline_get("cis-l1").await.expect("get").expect("set")), json_string(&baseline));
    let names: Vec<String> = store.baseline_list().await.expect("list").into_iter().map(|b| b.name).collect();
    assert_eq!(names, vec!["cis-l1", "msp-standard"]);
    store.baseline_put("cis-l1", &json!({"v": 2})).await.expect("overwrite");
    assert_eq!(store.baseline_get("cis-l1").await.expect("get"), Some(json!({"v": 2})));
}

pub async fn dropped_store_keeps_committed_data(store: S, db: Db) {
    let run = store.start_run("inspect", now()).await.expect("start");
    let mut docs = Vec::new();
    for i in 0..5 {
        let name = format!("crash-{i}");
        let doc = fixtures::dataprint(&name, run.id.as_str(), 40);
        commit(&store, run.id.as_str(), &name, TenantRunStatus::Ok, now(), Some(&doc)).await;
        docs.push((name, doc));
    }
    // Simulated crash: no finish_run, no close.
    drop(store);

    let reopened = db.open().await;
    assert_eq!(
        reopened.get_run(&rid(run.id.as_str())).await.expect("get").expect("found").status,
        RunStatus::Interrupted
    );
    assert_eq!(reopened.tenant_runs(&rid(run.id.as_str())).await.expect("tenant runs").len(), 5);
    for (name, doc) in &docs {
        let (_, back) = reopened.last_good_dataprint(&tid(name)).await.expect("last").expect("kept");
        assert_eq!(json_string(&back), json_string(doc));
        assert_eq!(reopened.collector_outcomes(&rid(run.id.as_str()), &tid(name)).await.expect("outcomes").len(), 2);
    }
    let next = reopened.start_run("inspect", now()).await.expect("start");
    reopened.finish_run(&rid(&next.id), RunStatus::Ok, now(), &Value::Null).await.expect("finish");
}

/// Runs the child half of the kill -9 test in another process: commits
/// tenant after tenant, printing each commit, until it is killed.
pub async fn killed_process_loses_nothing_committed(_store: S, db: Db) {
    let exe = std::env::current_exe().expect("test binary");
    let mut child = tokio::process::Command::new(exe)
        .args(["crash_child_process_entry", "--exact", "--nocapture", "--test-threads=1"])
        .env("TENANTSCOPE_CRASH_URL", &db.url)
        .env("TENANTSCOPE_CRASH_KEY", db.key.to_base64().expose_secret())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let mut run_id = None;
    let mut steady_run = None;
    let mut committed = 0usize;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    while committed < 4 {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .expect("child made progress in time")
            .expect("read child output")
            .expect("child exited early");
        // libtest may print "test ... " on the same line before the child's
        // own output, so the markers are searched, not anchored.
        if let Some((_, id)) = line.split_once("CRASH-RUN ") {
            run_id = Some(id.trim().to_owned());
        } else if let Some((_, id)) = line.split_once("CRASH-STEADY ") {
            steady_run = Some(id.trim().to_owned());
        } else if line.contains("CRASH-COMMITTED ") {
            committed += 1;
        }
    }
    // SIGKILL in the middle of the next commit, then reap the process so
    // its PID is really gone.
    child.start_kill().expect("kill child");
    let status = child.wait().await.expect("wait child");
    assert!(!status.success());
    let run_id = run_id.expect("child reported its run");

    let store = db.open().await;
    assert_eq!(store.get_run(&rid(&run_id)).await.expect("get").expect("found").status, RunStatus::Interrupted);
    let results = store.tenant_runs(&rid(&run_id)).await.expect("tenant runs");
    assert!(results.len() >= committed, "{} results, {committed} reported", results.len());
    // Whatever is there is whole: every result has its outcomes and an
    // intact dataprint; a tenant caught mid-commit is absent entirely. The
    // steady tenant, re-committed (replaced) with every step, confirms the
    // dataprint of its first run and keeps this run's `run` member.
    let steady_run = steady_run.expect("child reported its steady run");
    for result in &results {
        let id = result.dataprint_id.clone().expect("dataprint");
        let doc = store.get_dataprint(&id).await.expect("get").expect("found");
        if result.tenant_id == "steady" {
            assert_eq!(json_string(&doc), json_string(&fixtures::dataprint("steady", &steady_run, 50)));
            let own = store.dataprint_for_run(&rid(&run_id), &tid("steady")).await.expect("for run").expect("found");
            assert_eq!(json_string(&own), json_string(&fixtures::dataprint("steady", &run_id, 50)));
        } else {
            assert_eq!(
                json_string(&doc),
                json_string(&fixtures::dataprint(result.tenant_id.as_str(), run_id.as_str(), 200))
            );
        }
        assert_eq!(store.collector_outcomes(&rid(&run_id), &tid(&result.tenant_id)).await.expect("outcomes").len(), 2);
    }
    assert_eq!(store.dataprints(&tid("steady"), None).await.expect("list").len(), 1);
    let next = store.start_run("inspect", now()).await.expect("start");
    store.finish_run(&rid(&next.id), RunStatus::Ok, now(), &Value::Null).await.expect("finish");
}

/// The child side of [`killed_process_loses_nothing_committed`].
pub async fn crash_child(url: &str, key: &str) {
    let key = Key::parse(key, "TENANTSCOPE_CRASH_KEY").expect("key");
    let store = store::open(url, key).await.expect("open");
    let steady = store.start_run("inspect", now()).await.expect("start");
    let doc = fixtures::dataprint("steady", steady.id.as_str(), 50);
    commit(&store, steady.id.as_str(), "steady", TenantRunStatus::Ok, now(), Some(&doc)).await;
    store.finish_run(&rid(steady.id.as_str()), RunStatus::Ok, now(), &Value::Null).await.expect("finish");
    println!("CRASH-STEADY {}", steady.id);
    let run = store.start_run("inspect", now()).await.expect("start");
    println!("CRASH-RUN {}", run.id);
    let steady_doc = fixtures::dataprint("steady", run.id.as_str(), 50);
    for i in 0..10_000 {
        let name = format!("kill-{i}");
        let doc = fixtures::dataprint(&name, run.id.as_str(), 200);
        commit(&store, run.id.as_str(), &name, TenantRunStatus::Ok, now(), Some(&doc)).await;
        commit(&store, run.id.as_str(), "steady", TenantRunStatus::Ok, now(), Some(&steady_doc)).await;
        println!("CRASH-COMMITTED {name}");
    }
}

pub async fn corrupt_rows_are_reported(store: S, db: Db) {
    let run = store.start_run("inspect", now()).await.expect("start");
    let doc = fixtures::dataprint("corrupt", run.id.as_str(), 10);
    let id = commit(&store, run.id.as_str(), "corrupt", TenantRunStatus::Ok, now(), Some(&doc)).await.expect("stored");
    let other = fixtures::dataprint("healthy", run.id.as_str(), 3);
    let healthy =
        commit(&store, run.id.as_str(), "healthy", TenantRunStatus::Ok, now(), Some(&other)).await.expect("stored");
    store.setting_put("cloud", &json!("global")).await.expect("put");
    store.upsert_tenant(&tenant("corrupt", None, "Corrupt")).await.expect("tenant");

    let is_corrupt = |result: store::Result<_>, what: &str| match result {
        Err(StoreError::Corrupt { what: detail }) => assert!(detail.contains(what), "{detail}"),
        Err(other) => panic!("expected corruption naming {what}, got {other}"),
        Ok(_) => panic!("expected corruption naming {what}, got a value"),
    };

    db.exec("UPDATE runs SET status = 'exploded' WHERE id = $1", &[run.id.as_str()]).await;
    is_corrupt(store.get_run(&rid(run.id.as_str())).await.map(|_| ()), "status");
    is_corrupt(store.list_runs(5).await.map(|_| ()), "status");
    db.exec("UPDATE settings SET value = 'not json{' WHERE key = $1", &["cloud"]).await;
    is_corrupt(store.setting_get("cloud").await.map(|_| ()), "value");
    db.exec("UPDATE tenants SET role = 'alien' WHERE id = $1", &["corrupt"]).await;
    is_corrupt(store.find_tenant("corrupt").await.map(|_| ()), "role");
    // A damaged per-run part, then a damaged result (status, diagnosis and
    // outcomes, which both tenants share because they are equal).
    db.set_bytes(
        "UPDATE tenant_runs SET per_run = $1 WHERE tenant_key = (SELECT key FROM tenant_keys WHERE tenant_id = $2)",
        b"\xff",
        "healthy",
    )
    .await;
    is_corrupt(store.collector_outcomes(&rid(run.id.as_str()), &tid("healthy")).await.map(|_| ()), "per-run");
    assert_eq!(store.collector_outcomes(&rid(run.id.as_str()), &tid("corrupt")).await.expect("intact").len(), 2);
    db.set_bytes(
        "UPDATE results SET data = $1 WHERE key = (SELECT result_key FROM tenant_runs \
         WHERE tenant_key = (SELECT key FROM tenant_keys WHERE tenant_id = $2))",
        b"\x78\x9cgarbage",
        "corrupt",
    )
    .await;
    is_corrupt(store.last_tenant_run(&tid("corrupt")).await.map(|_| ()), "tenant result");
    is_corrupt(store.collector_outcomes(&rid(run.id.as_str()), &tid("corrupt")).await.map(|_| ()), "tenant result");

    // A blob whose bytes were altered: the dataprint that uses it is
    // reported corrupt; other dataprints are unaffected.
    let users = serde_json::to_vec(&doc["collections"]["users"]).expect("json");
    let users_hash = hex::encode(sha2::Sha256::digest(&users));
    assert_eq!(db.set_bytes("UPDATE blobs SET data = $1 WHERE hash = $2", b"\x78\x9cgarbage", &users_hash).await, 1);
    is_corrupt(store.get_dataprint(&id).await.map(|_| ()), &users_hash);
    assert!(store.get_dataprint(&healthy).await.expect("healthy").is_some());

    // Valid compressed data of the right length that is not what the hash
    // says.
    let mut tweaked = users.clone();
    let at = tweaked.iter().position(|b| *b == b'U').expect("a capital U in the users JSON");
    tweaked[at] = b'V';
    let impostor = {
        use std::io::Write;
        let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(&tweaked).expect("compress");
        encoder.finish().expect("compress")
    };
    db.set_bytes("UPDATE blobs SET data = $1 WHERE hash = $2", &impostor, &users_hash).await;
    is_corrupt(store.get_dataprint(&id).await.map(|_| ()), "does not match its hash");

    // A missing member and a broken envelope.
    db.exec(
        "DELETE FROM collection_set_members WHERE name = $1 AND set_id = (SELECT set_id FROM dataprints WHERE id = $2)",
        &["domains", healthy.as_str()],
    )
    .await;
    is_corrupt(store.get_dataprint(&healthy).await.map(|_| ()), healthy.as_str());
    db.set_bytes("UPDATE dataprints SET envelope = $1 WHERE id = $2", b"nope", healthy.as_str()).await;
    is_corrupt(store.get_dataprint(&healthy).await.map(|_| ()), "envelope");
}

pub async fn debug_output_redacts_secrets(store: S, _db: Db) {
    store.cache_put(&cache_record("rt", "tenant-a", "refresh", "debug-visible-token")).await.expect("put");
    store.credential_put(&credential("tenant-a", CredentialKind::Secret, "debug-visible-secret")).await.expect("put");
    let record = store.cache_get("rt").await.expect("get").expect("found");
    let cred = store.credential_get(&tid("tenant-a")).await.expect("get").expect("found");
    let shown = format!("{record:?} {cred:?} {:?}", Key::generate());
    assert!(!shown.contains("debug-visible"), "{shown}");
    assert!(shown.contains("rt") && shown.contains("tenant-a"));
}

pub async fn bad_input_is_refused(store: S, _db: Db) {
    let invalid = |result: store::Result<()>| match result {
        Err(StoreError::InvalidInput(_)) => {}
        other => panic!("expected invalid input, got {other:?}"),
    };
    invalid(store.upsert_tenant(&tenant(" ", None, "blank")).await);
    invalid(store.start_run("", now()).await.map(|_| ()));
    let far = chrono::TimeZone::with_ymd_and_hms(&Utc, 10000, 1, 1, 0, 0, 0).single().expect("a valid far date");
    invalid(store.start_run("inspect", far).await.map(|_| ()));
    invalid(store.cache_put(&cache_record("", "t", "access", "x")).await);
    invalid(store.setting_put("", &json!(1)).await);
    invalid(store.baseline_put("", &json!(1)).await);
    invalid(store.put_events(&rid("r"), &tid("t"), now(), &[json!({"severity": 3})]).await);
}

pub async fn storage_bytes_grow(store: S, _db: Db) {
    let empty = store.storage_bytes().await.expect("size");
    assert!(empty > 0);
    let run = store.start_run("inspect", now()).await.expect("start");
    let doc = fixtures::dataprint("sizer", run.id.as_str(), 1000);
    commit(&store, run.id.as_str(), "sizer", TenantRunStatus::Ok, now(), Some(&doc)).await;
    let full = store.storage_bytes().await.expect("size");
    assert!(full > empty + 50_000, "{empty} -> {full}");
}

pub async fn concurrent_commits(store: S, db: Db) {
    let run = store.start_run("inspect", now()).await.expect("start");
    // Sixteen tenants at once, half of them with identical new content so
    // that concurrent inserts of the same blobs meet.
    let shared = fixtures::collections("shared", 60);
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = store.clone();
        let run_id = run.id.clone();
        let collections = if i % 2 == 0 { shared.clone() } else { fixtures::collections(&format!("own-{i}"), 60) };
        tasks.push(tokio::spawn(async move {
            let name = format!("conc-{i}");
            let doc = fixtures::dataprint_with(&name, run_id.as_str(), collections);
            let id = commit(&store, &run_id, &name, TenantRunStatus::Ok, now(), Some(&doc)).await.expect("stored");
            (id, doc)
        }));
    }
    let mut stored = Vec::new();
    for task in tasks {
        stored.push(task.await.expect("task"));
    }
    assert_eq!(store.tenant_runs(&rid(run.id.as_str())).await.expect("runs").len(), 16);
    for (id, doc) in &stored {
        assert_eq!(json_string(&store.get_dataprint(id).await.expect("get").expect("found")), json_string(doc));
    }
    // 13 shared collections once, plus 13 for each of the 8 other tenants
    // (a few tiny singletons coincide across tenants, so at most that).
    let blobs = db.count("SELECT COUNT(*) FROM blobs").await;
    assert!(blobs <= 13 * 9, "{blobs} blobs");
    assert_eq!(db.count("SELECT COUNT(*) FROM collection_sets").await, 9);
}

pub use crate::layouts::schema_from_a_newer_binary_is_refused;

/// `--tenant` finds a tenant by id, by any verified domain or by display name, ignoring case; a name
/// shared by two tenants returns both; labels are kept beside the name and survive upserts.
pub async fn tenants_resolve_by_id_domain_and_name(store: S, _db: Db) {
    let north = tenant("AAAAAAAA-0000-4000-8000-000000000001", Some("northwind.onmicrosoft.com"), "Northwind Traders");
    let twin_a = tenant("aaaaaaaa-0000-4000-8000-000000000002", None, "Contoso");
    let twin_b = tenant("aaaaaaaa-0000-4000-8000-000000000003", None, "contoso");
    for t in [&north, &twin_a, &twin_b] {
        store.upsert_tenant(t).await.expect("upsert");
    }
    store
        .set_tenant_domains(
            &north.id,
            "dataprint",
            &["northwindtraders.com".into(), "NW.example".into(), "nw.example".into()],
        )
        .await
        .expect("domains");
    let ids = |v: Vec<store::TenantRecord>| v.into_iter().map(|t| t.id.to_string()).collect::<Vec<_>>();
    for q in [
        "aaaaaaaa-0000-4000-8000-000000000001",
        " Northwind Traders ",
        "NORTHWIND.onmicrosoft.com",
        "nw.EXAMPLE",
        "northwindtraders.com",
    ] {
        assert_eq!(ids(store.resolve_tenants(q).await.expect("resolve")), [north.id.to_string()], "{q}");
    }
    assert_eq!(store.resolve_tenants("CONTOSO").await.expect("resolve").len(), 2);
    assert!(store.resolve_tenants("fabrikam.com").await.expect("resolve").is_empty());
    assert!(store.resolve_tenants("  ").await.expect("resolve").is_empty());
    assert_eq!(
        store.tenant_domains(&north.id).await.expect("domains"),
        ["northwind.onmicrosoft.com", "northwindtraders.com", "nw.example"]
    );
    // Replacing one source's domains leaves the other's.
    store.set_tenant_domains(&north.id, "partner", &["partner-view.example".into()]).await.expect("domains");
    store.set_tenant_domains(&north.id, "dataprint", &["northwindtraders.com".into()]).await.expect("domains");
    assert_eq!(
        store.tenant_domains(&north.id).await.expect("domains"),
        ["northwind.onmicrosoft.com", "northwindtraders.com", "partner-view.example"]
    );
    assert!(store.resolve_tenants("nw.example").await.expect("resolve").is_empty());
    // A label is kept beside the name; a later upsert from an inspection does not clear it.
    assert!(store.set_tenant_label(&north.id, Some("VIP")).await.expect("label"));
    store.upsert_tenant(&north).await.expect("upsert again");
    let back = store.get_tenant(&north.id).await.expect("get").expect("found");
    assert_eq!((back.display_name.as_str(), back.label.as_deref()), ("Northwind Traders", Some("VIP")));
    assert!(!store.set_tenant_label(&tid("unknown"), Some("x")).await.expect("label"));
    // Tags: trimmed, lower case, without repeats; replaced as a whole; unknown tenants refused.
    let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(store.set_tenant_tags(&north.id, &tags(&[" Gold ", "eu", "gold", ""])).await.expect("tags"));
    assert_eq!(
        store.tenant_tags().await.expect("tags"),
        [(north.id.clone(), "eu".to_string()), (north.id.clone(), "gold".to_string())]
    );
    assert!(store.set_tenant_tags(&north.id, &tags(&["silver"])).await.expect("tags"));
    assert_eq!(store.tenant_tags().await.expect("tags"), [(north.id.clone(), "silver".to_string())]);
    assert!(!store.set_tenant_tags(&tid("unknown"), &tags(&["x"])).await.expect("tags"));
    assert!(store.tenant_tags().await.expect("tags").iter().all(|(t, _)| *t == north.id));
}

/// `metrics_at` gives, for every tenant and metric, the value in effect at a moment.
pub async fn metrics_in_effect_at_a_moment(store: S, _db: Db) {
    let r1 = store.start_run("inspect", ts("2026-11-01T00:00:00Z")).await.expect("run");
    let r2 = store.start_run("inspect", ts("2026-11-02T00:00:00Z")).await.expect("run");
    for (run, at, a, b) in [(&r1, "2026-11-01T00:00:00Z", 10, 1), (&r2, "2026-11-02T00:00:00Z", 12, 1)] {
        store
            .put_metrics(&run.id, &tid("a"), ts(at), &[("users".into(), json!(a)), ("admins".into(), json!(b))])
            .await
            .expect("put");
        store.put_metrics(&run.id, &tid("b"), ts(at), &[("users".into(), json!(a * 2))]).await.expect("put");
    }
    let at = |t: &str| {
        let store = store.clone();
        let t = ts(t);
        async move {
            let mut v: Vec<(String, String, Value)> = store
                .metrics_at(t)
                .await
                .expect("metrics at")
                .into_iter()
                .map(|p| (p.tenant_id.to_string(), p.name, p.value))
                .collect();
            v.sort_by(|x, y| (&x.0, &x.1).cmp(&(&y.0, &y.1)));
            v
        }
    };
    assert!(at("2026-10-31T00:00:00Z").await.is_empty());
    assert_eq!(
        at("2026-11-01T12:00:00Z").await,
        [
            ("a".into(), "admins".into(), json!(1)),
            ("a".into(), "users".into(), json!(10)),
            ("b".into(), "users".into(), json!(20))
        ]
    );
    // Admins did not change, so its point is still the first run's.
    assert_eq!(
        at("2026-11-03T00:00:00Z").await,
        [
            ("a".into(), "admins".into(), json!(1)),
            ("a".into(), "users".into(), json!(12)),
            ("b".into(), "users".into(), json!(24))
        ]
    );
    // One metric alone: the same values, the other metrics left out.
    let mut users: Vec<(String, Value)> = store
        .metric_at(ts("2026-11-03T00:00:00Z"), "users")
        .await
        .expect("metric at")
        .into_iter()
        .map(|p| (p.tenant_id.to_string(), p.value))
        .collect();
    users.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(users, [("a".into(), json!(12)), ("b".into(), json!(24))]);
    assert!(store.metric_at(ts("2026-11-03T00:00:00Z"), "nothing").await.expect("none").is_empty());
    // Only the tenants that have the metric, each with its own point in effect, and none before
    // its first point.
    let admins = store.metric_at(ts("2026-11-03T00:00:00Z"), "admins").await.expect("metric at");
    assert_eq!(
        admins.iter().map(|p| (p.tenant_id.to_string(), p.value.clone(), p.run_id.clone())).collect::<Vec<_>>(),
        [("a".to_string(), json!(1), r1.id.clone())]
    );
    let early = store.metric_at(ts("2026-11-01T12:00:00Z"), "users").await.expect("metric at");
    let mut early: Vec<(String, Value)> = early.into_iter().map(|p| (p.tenant_id.to_string(), p.value)).collect();
    early.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(early, [("a".into(), json!(10)), ("b".into(), json!(20))]);
    assert!(store.metric_at(ts("2026-10-31T00:00:00Z"), "users").await.expect("none").is_empty());
}

fn open_alert(key: &str, opened: &str) -> AlertRecord {
    AlertRecord {
        key: key.to_owned(),
        rule: "new_global_admin".to_owned(),
        tenant_id: tid("tenant-a"),
        severity: Severity::Critical,
        opened_at: ts(opened),
        resolved_at: None,
        payload: json!({"summary": "Global Administrator assigned"}),
        acked_at: None,
        acked_by: None,
        ack_reason: None,
    }
}

/// Acknowledging keeps who, when and why; a new occurrence of the same key starts unacknowledged;
/// mutes are kept per tenant and rule.
pub async fn alerts_are_acknowledged_and_muted(store: S, _db: Db) {
    store.upsert_alert(&open_alert("k", "2026-11-01T00:00:00Z")).await.expect("upsert");
    let acked = store
        .ack_alert("k", "megan@lakesideit.example", Some("expected change"), ts("2026-11-01T01:00:00Z"), false)
        .await
        .expect("ack")
        .expect("exists");
    assert_eq!(acked.acked_by.as_deref(), Some("megan@lakesideit.example"));
    assert_eq!(acked.ack_reason.as_deref(), Some("expected change"));
    assert!(acked.resolved_at.is_none(), "acknowledged, still open");
    // The run upserts it again, unchanged: the acknowledgement stays.
    store.upsert_alert(&open_alert("k", "2026-11-01T00:00:00Z")).await.expect("upsert");
    assert!(store.get_alert("k").await.expect("get").expect("exists").acked_at.is_some());
    // Acknowledging with resolve closes an event alert.
    let closed =
        store.ack_alert("k", "megan", None, ts("2026-11-01T02:00:00Z"), true).await.expect("ack").expect("exists");
    assert_eq!(closed.resolved_at, Some(ts("2026-11-01T02:00:00Z")));
    // A new occurrence under the same key starts unacknowledged.
    store.upsert_alert(&open_alert("k", "2026-11-05T00:00:00Z")).await.expect("reopen");
    let again = store.get_alert("k").await.expect("get").expect("exists");
    assert!(again.acked_at.is_none() && again.resolved_at.is_none());
    assert!(store.ack_alert("missing", "megan", None, now(), false).await.expect("ack").is_none());

    let mute = store::MuteRecord {
        tenant_id: tid("tenant-a"),
        rule: "new_global_admin".into(),
        until: ts("2026-12-01T00:00:00Z"),
        created_at: ts("2026-11-01T00:00:00Z"),
        created_by: "megan".into(),
        reason: Some("migration week".into()),
    };
    store.set_mute(&mute).await.expect("mute");
    store.set_mute(&store::MuteRecord { until: ts("2026-12-08T00:00:00Z"), ..mute.clone() }).await.expect("extend");
    let mutes = store.mutes().await.expect("mutes");
    assert_eq!(mutes.len(), 1);
    assert_eq!(mutes[0].until, ts("2026-12-08T00:00:00Z"));
    assert!(store.delete_mute(&tid("tenant-a"), "new_global_admin").await.expect("unmute"));
    assert!(!store.delete_mute(&tid("tenant-a"), "new_global_admin").await.expect("unmute"));
}

/// The outbox delivers each alert's notifications in order per target, never twice, and a
/// deliverer that lost its lease cannot settle an item.
pub async fn the_alert_outbox_delivers_in_order_once(store: S, _db: Db) {
    let t0 = ts("2026-11-01T00:00:00Z");
    let a = open_alert("a", "2026-11-01T00:00:00Z");
    let targets =
        |t: &str| vec![("ops".to_string(), json!({"transition": t})), ("teams".to_string(), json!({"transition": t}))];
    store.record_transition(&a, "opened", &targets("opened")).await.expect("opened");
    store
        .record_transition(&AlertRecord { resolved_at: Some(t0), ..a.clone() }, "resolved", &targets("resolved"))
        .await
        .expect("resolved");
    assert!(store.get_alert("a").await.expect("get").expect("exists").resolved_at.is_some());
    let now = Utc::now();
    let lease = chrono::Duration::seconds(60);
    // Only the first transition of each target is due: the second waits for it.
    let first = store.claim_deliveries("d1", now, lease, 10).await.expect("claim");
    assert_eq!(
        first.iter().map(|i| (i.target.as_str(), i.transition.as_str())).collect::<Vec<_>>(),
        [("ops", "opened"), ("teams", "opened")]
    );
    // Claimed items are not claimed again by another deliverer while the lease lives.
    assert!(store.claim_deliveries("d2", now, lease, 10).await.expect("claim").is_empty());
    // ops is delivered; teams fails and is retried later.
    assert!(
        store
            .finish_delivery(first[0].id, "d1", &store::DeliveryOutcome::Delivered, first[0].attempts + 1, now)
            .await
            .expect("finish")
    );
    let later = now + chrono::Duration::seconds(30);
    assert!(
        store
            .finish_delivery(
                first[1].id,
                "d1",
                &store::DeliveryOutcome::Retry { error: "http 502".into(), at: later },
                first[1].attempts + 1,
                now
            )
            .await
            .expect("finish")
    );
    // A deliverer without the lease cannot settle it.
    assert!(
        !store
            .finish_delivery(first[1].id, "d2", &store::DeliveryOutcome::Delivered, first[1].attempts + 1, now)
            .await
            .expect("fenced")
    );
    let next = store.claim_deliveries("d2", now, lease, 10).await.expect("claim");
    assert_eq!(
        next.iter().map(|i| (i.target.as_str(), i.transition.as_str())).collect::<Vec<_>>(),
        [("ops", "resolved")]
    );
    assert!(
        store
            .finish_delivery(next[0].id, "d2", &store::DeliveryOutcome::Delivered, next[0].attempts + 1, now)
            .await
            .expect("finish")
    );
    // The failed teams item is due after its backoff, still before the resolved one; an operator
    // can make it due at once.
    assert!(store.claim_deliveries("d3", now, lease, 10).await.expect("claim").is_empty());
    assert_eq!(store.retry_deliveries(now).await.expect("retry"), 1);
    let retry = store.claim_deliveries("d3", now, lease, 10).await.expect("claim");
    assert_eq!(
        retry.iter().map(|i| (i.target.as_str(), i.transition.as_str(), i.attempts)).collect::<Vec<_>>(),
        [("teams", "opened", 1)]
    );
    assert!(
        store
            .finish_delivery(
                retry[0].id,
                "d3",
                &store::DeliveryOutcome::Expired { error: "gone".into() },
                retry[0].attempts + 1,
                later
            )
            .await
            .expect("finish")
    );
    let last = store.claim_deliveries("d3", later, lease, 10).await.expect("claim");
    assert_eq!(
        last.iter().map(|i| (i.target.as_str(), i.transition.as_str())).collect::<Vec<_>>(),
        [("teams", "resolved")]
    );
    // A lease that ran out lets another deliverer take over, and the old one is fenced out.
    let much_later = later + chrono::Duration::seconds(120);
    let taken = store.claim_deliveries("d4", much_later, lease, 10).await.expect("claim");
    assert_eq!(taken.len(), 1);
    assert!(
        !store
            .finish_delivery(last[0].id, "d3", &store::DeliveryOutcome::Delivered, last[0].attempts + 1, much_later)
            .await
            .expect("fenced")
    );
    assert!(
        store
            .finish_delivery(taken[0].id, "d4", &store::DeliveryOutcome::Delivered, taken[0].attempts + 1, much_later)
            .await
            .expect("finish")
    );
    let all = store.outbox(Some("a"), 10).await.expect("outbox");
    assert_eq!(all.len(), 4);
    assert_eq!(all.iter().filter(|i| i.status == store::OutboxStatus::Delivered).count(), 3);
    assert!(store.claim_deliveries("d5", much_later, lease, 10).await.expect("claim").is_empty());
}

fn new_job(kind: &str, pool: &str, max_attempts: i64, not_before: DateTime<Utc>) -> store::NewJob {
    store::NewJob {
        kind: kind.into(),
        params: json!({"tenants": []}),
        pool: pool.into(),
        max_attempts,
        not_before,
        created_by: "tester".into(),
    }
}

pub async fn jobs_are_claimed_once_and_fenced(store: S, _db: Db) {
    use store::{JobOutcome, JobStatus};
    let t0 = now();
    let lease = TimeDelta::seconds(30);
    let a = store.enqueue_job(&new_job("inspect", "local", 2, t0), t0).await.expect("enqueue");
    let b = store.enqueue_job(&new_job("doctor", "local", 1, t0 + TimeDelta::seconds(60)), t0).await.expect("enqueue");
    store.enqueue_job(&new_job("inspect", "branch-office", 1, t0), t0).await.expect("enqueue");
    assert_eq!((a.status, a.attempts, a.fence), (JobStatus::Queued, 0, 0));
    assert!(a.id < b.id, "ids sort by creation");

    // The oldest due job of the pool is claimed, once; a job not yet due and other pools' are not.
    let claimed = store.claim_job("w1", "local", t0, lease).await.expect("claim").expect("a job");
    assert_eq!(
        (claimed.id.as_str(), claimed.status, claimed.attempts, claimed.fence),
        (a.id.as_str(), JobStatus::Running, 1, 1)
    );
    assert_eq!(claimed.lease_owner.as_deref(), Some("w1"));
    assert!(store.claim_job("w2", "local", t0, lease).await.expect("claim").is_none());
    let w1 = claimed.lease().expect("lease");

    // A run of the job commits while the lease holds, each tenant once per job.
    let run = store.start_job_run(&w1, "inspect", t0).await.expect("job run");
    let tr = tenant_run(run.id.as_str(), "t1", TenantRunStatus::Ok, t0);
    store.commit_tenant_result(&tr, &[], Some(&fixtures::dataprint("t1", run.id.as_str(), 3))).await.expect("commit");
    assert_eq!(store.job_tenants(&a.id).await.expect("tenants"), vec![tid("t1")]);
    let progress = json!({"done": 1});
    let beat = store.heartbeat_job(&w1, t0, lease, Some(&progress)).await.expect("heartbeat");
    assert_eq!(beat.progress, Some(progress));

    // The lease expires without a heartbeat: another worker claims the job, and the first one's
    // writes are refused from then on.
    let later = t0 + TimeDelta::seconds(31);
    let again = store.claim_job("w2", "local", later, lease).await.expect("claim").expect("the expired job");
    assert_eq!((again.id.as_str(), again.attempts, again.fence), (a.id.as_str(), 2, 2));
    let w2 = again.lease().expect("lease");
    let late = tenant_run(run.id.as_str(), "t2", TenantRunStatus::Ok, later);
    assert!(matches!(store.commit_tenant_result(&late, &[], None).await, Err(StoreError::Fenced { .. })));
    assert!(matches!(store.heartbeat_job(&w1, later, lease, None).await, Err(StoreError::Fenced { .. })));
    assert!(matches!(
        store.finish_job(&w1, &JobOutcome::Succeeded(json!({})), later).await,
        Err(StoreError::Fenced { .. })
    ));
    assert!(matches!(store.start_job_run(&w1, "inspect", later).await, Err(StoreError::Fenced { .. })));
    assert_eq!(store.last_tenant_run(&tid("t2")).await.expect("last"), None, "nothing of the late worker landed");

    // The new attempt's run may not commit a tenant the job already committed.
    let run2 = store.start_job_run(&w2, "inspect", later).await.expect("job run");
    let twice = tenant_run(run2.id.as_str(), "t1", TenantRunStatus::Ok, later);
    assert!(matches!(store.commit_tenant_result(&twice, &[], None).await, Err(StoreError::AlreadyCommitted { .. })));
    let t2 = tenant_run(run2.id.as_str(), "t2", TenantRunStatus::Ok, later);
    store.commit_tenant_result(&t2, &[], None).await.expect("commit t2");
    assert_eq!(store.job_tenants(&a.id).await.expect("tenants"), vec![tid("t1"), tid("t2")]);
    assert_eq!(store.job_runs(&a.id).await.expect("runs").len(), 2);
    // Each run knows the job that started it; a run made outside the queue knows none.
    let outside = store.start_run("inspect", later).await.expect("a command-line run");
    let listed = store.runs_with_jobs(10).await.expect("runs with jobs");
    assert_eq!(listed.iter().filter(|(_, j)| j.as_deref() == Some(a.id.as_str())).count(), 2, "{listed:?}");
    assert!(listed.iter().any(|(r, j)| r.id == outside.id && j.is_none()), "{listed:?}");

    let done = store.finish_job(&w2, &JobOutcome::Succeeded(json!({"ok": 2})), later).await.expect("finish");
    assert_eq!((done.status, done.result.clone()), (JobStatus::Succeeded, Some(json!({"ok": 2}))));
    assert!(done.lease_owner.is_none());
    assert_eq!(store.get_job(&a.id).await.expect("get"), Some(done));

    // The doctor job (one attempt) fails: it is dead with its reason, not retried.
    let due = t0 + TimeDelta::seconds(61);
    let d = store.claim_job("w1", "local", due, lease).await.expect("claim").expect("doctor");
    let dead = store
        .finish_job(&d.lease().expect("lease"), &JobOutcome::Failed { error: "boom".into(), retry_at: due }, due)
        .await
        .expect("finish");
    assert_eq!((dead.status, dead.last_error.as_deref()), (JobStatus::Dead, Some("boom")));
    assert!(store.claim_job("w1", "local", due + TimeDelta::hours(1), lease).await.expect("claim").is_none());

    let listed = store.list_jobs(&store::JobFilter { limit: 10, ..Default::default() }).await.expect("list");
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[2].id, a.id, "newest first");
    let dead_only = store
        .list_jobs(&store::JobFilter { status: Some(JobStatus::Dead), limit: 10, ..Default::default() })
        .await
        .expect("list");
    assert_eq!(dead_only.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), [d.id.as_str()]);
}

pub async fn jobs_retry_die_and_cancel(store: S, _db: Db) {
    use store::{JobOutcome, JobStatus};
    let t0 = now();
    let lease = TimeDelta::seconds(10);
    let job = store.enqueue_job(&new_job("inspect", "local", 2, t0), t0).await.expect("enqueue");
    // A failed attempt is queued again for its retry time.
    let c1 = store.claim_job("w", "local", t0, lease).await.expect("claim").expect("job");
    let retry_at = t0 + TimeDelta::seconds(30);
    let q = store
        .finish_job(&c1.lease().expect("lease"), &JobOutcome::Failed { error: "timeout".into(), retry_at }, t0)
        .await
        .expect("finish");
    assert_eq!((q.status, q.not_before, q.last_error.as_deref()), (JobStatus::Queued, retry_at, Some("timeout")));
    assert!(store.claim_job("w", "local", t0 + TimeDelta::seconds(29), lease).await.expect("claim").is_none());
    // The second and last attempt's worker dies: the job is dead once its lease has expired.
    let c2 = store.claim_job("w", "local", retry_at, lease).await.expect("claim").expect("retry");
    assert_eq!(c2.attempts, 2);
    assert!(store.claim_job("w", "local", retry_at + TimeDelta::seconds(11), lease).await.expect("claim").is_none());
    let dead = store.get_job(&job.id).await.expect("get").expect("job");
    assert_eq!(dead.status, JobStatus::Dead);
    assert!(dead.last_error.expect("reason").contains("lease"));

    // Cancelling: a queued job at once; a running one at its next heartbeat; a final one not at all.
    let queued = store.enqueue_job(&new_job("inspect", "local", 3, t0), t0).await.expect("enqueue");
    let cancelled = store.cancel_job(&queued.id, t0).await.expect("cancel").expect("job");
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    let running = store.enqueue_job(&new_job("inspect", "local", 3, t0), t0).await.expect("enqueue");
    let claimed = store.claim_job("w", "local", t0, lease).await.expect("claim").expect("job");
    assert_eq!(claimed.id, running.id);
    let asked = store.cancel_job(&running.id, t0).await.expect("cancel").expect("job");
    assert_eq!(asked.status, JobStatus::Running);
    let beat = store.heartbeat_job(&claimed.lease().expect("lease"), t0, lease, None).await.expect("heartbeat");
    assert!(beat.cancel_requested_at.is_some());
    let ended = store.finish_job(&claimed.lease().expect("lease"), &JobOutcome::Cancelled, t0).await.expect("finish");
    assert_eq!(ended.status, JobStatus::Cancelled);
    assert_eq!(store.cancel_job(&job.id, t0).await.expect("cancel").expect("job").status, JobStatus::Dead);
    assert_eq!(store.cancel_job("no-such-job", t0).await.expect("cancel"), None);
    // Bad jobs are refused.
    assert!(store.enqueue_job(&new_job("", "local", 1, t0), t0).await.is_err());
    assert!(store.enqueue_job(&new_job("inspect", "local", 0, t0), t0).await.is_err());
}

pub async fn concurrent_claims_never_share_a_job(store: S, _db: Db) {
    let t0 = now();
    for _ in 0..40 {
        store.enqueue_job(&new_job("inspect", "local", 1, t0), t0).await.expect("enqueue");
    }
    let mut tasks = Vec::new();
    for w in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while let Some(job) =
                store.claim_job(&format!("w{w}"), "local", t0, TimeDelta::seconds(60)).await.expect("claim")
            {
                mine.push(job.id);
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("worker"));
    }
    let distinct: std::collections::HashSet<_> = all.iter().collect();
    assert_eq!((all.len(), distinct.len()), (40, 40));
}

pub async fn leases_elect_one_holder(store: S, _db: Db) {
    let t0 = now();
    let until = t0 + TimeDelta::seconds(30);
    assert!(store.acquire_lease("scheduler", "a", t0, until).await.expect("acquire"));
    assert!(!store.acquire_lease("scheduler", "b", t0, until).await.expect("acquire"));
    assert!(store.acquire_lease("scheduler", "a", t0 + TimeDelta::seconds(10), until).await.expect("renew"));
    // Expired: another replica takes over.
    let later = t0 + TimeDelta::seconds(31);
    assert!(store.acquire_lease("scheduler", "b", later, later + TimeDelta::seconds(30)).await.expect("take over"));
    assert!(!store.acquire_lease("scheduler", "a", later, later + TimeDelta::seconds(30)).await.expect("acquire"));
    store.release_lease("scheduler", "a").await.expect("release by a non-holder is a no-op");
    assert!(!store.acquire_lease("scheduler", "a", later, later).await.expect("acquire"));
    store.release_lease("scheduler", "b").await.expect("release");
    assert!(store.acquire_lease("scheduler", "a", later, later + TimeDelta::seconds(1)).await.expect("acquire"));

    store.set_schedule(&[(tid("t1"), t0), (tid("t2"), later)], Some("job-1")).await.expect("schedule");
    store.set_schedule(&[(tid("t1"), later + TimeDelta::hours(4))], None).await.expect("schedule");
    assert_eq!(
        store.schedule_state().await.expect("state"),
        vec![(tid("t2"), later), (tid("t1"), later + TimeDelta::hours(4))]
    );
}

pub async fn sessions_tokens_and_the_append_only_audit_log(store: S, db: Db) {
    let t0 = now();
    let session = store::SessionRecord {
        id_hash: "h1".into(),
        subject: "oid-1".into(),
        name: "Megan".into(),
        role: "engineer".into(),
        csrf: "c1".into(),
        created_at: t0,
        expires_at: t0 + TimeDelta::hours(12),
        last_seen_at: t0,
        address: Some("192.0.2.1".into()),
        revoked_at: None,
    };
    store.session_put(&session).await.expect("put");
    assert_eq!(store.session_get("h1").await.expect("get"), Some(session.clone()));
    store.session_touch("h1", t0 + TimeDelta::minutes(5)).await.expect("touch");
    assert!(store.session_revoke("h1", t0).await.expect("revoke"));
    assert!(!store.session_revoke("h1", t0).await.expect("revoke twice"));
    assert!(store.session_get("h1").await.expect("get").expect("kept").revoked_at.is_some());

    let token = store::ApiTokenRecord {
        id: "tok-1".into(),
        name: "ci".into(),
        hash: "ab".repeat(32),
        role: "viewer".into(),
        created_at: t0,
        created_by: "admin".into(),
        expires_at: t0 + TimeDelta::days(90),
        revoked_at: None,
        last_used_at: None,
    };
    store.token_put(&token).await.expect("put");
    assert_eq!(store.token_by_hash(&"ab".repeat(32)).await.expect("get"), Some(token.clone()));
    assert!(store.token_put(&token).await.is_err(), "ids and hashes are unique");
    store.token_touch("tok-1", t0).await.expect("touch");
    assert!(store.token_revoke("tok-1", t0).await.expect("revoke"));
    let listed = store.token_list().await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].last_used_at, listed[0].revoked_at), (Some(t0), Some(t0)));

    let mut ids = Vec::new();
    for (actor, action) in [("a", "job.create"), ("b", "token.create"), ("a", "alert.ack")] {
        ids.push(
            store
                .audit_append(&store::AuditEntry {
                    id: 0,
                    at: t0,
                    actor: actor.into(),
                    action: action.into(),
                    target: Some("x".into()),
                    address: None,
                    detail: json!({"k": 1}),
                })
                .await
                .expect("append"),
        );
    }
    assert!(ids[0] < ids[1] && ids[1] < ids[2]);
    let all = store.audit_list(&store::AuditFilter { limit: 10, ..Default::default() }).await.expect("list");
    assert_eq!(all.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), ["alert.ack", "token.create", "job.create"]);
    let by_a = store
        .audit_list(&store::AuditFilter {
            actor: Some("a".into()),
            before: Some(ids[2]),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(by_a.iter().map(|e| e.id).collect::<Vec<_>>(), [ids[0]]);
    // The database itself refuses to rewrite the log.
    assert!(db.execute_raw("UPDATE audit_log SET actor = 'mallory'").await.is_err());
    assert!(db.execute_raw("DELETE FROM audit_log").await.is_err());
    assert_eq!(store.audit_list(&store::AuditFilter { limit: 10, ..Default::default() }).await.expect("list").len(), 3);
}

pub async fn latest_results_per_tenant(store: S, _db: Db) {
    let r1 = store.start_run("inspect", now()).await.expect("start");
    let at = now();
    for t in ["t1", "t2"] {
        store
            .commit_tenant_result(&tenant_run(r1.id.as_str(), t, TenantRunStatus::Ok, at), &[], None)
            .await
            .expect("commit");
    }
    let r2 = store.start_run("inspect", now()).await.expect("start");
    let later = at + TimeDelta::seconds(5);
    store
        .commit_tenant_result(&tenant_run(r2.id.as_str(), "t1", TenantRunStatus::Failed, later), &[], None)
        .await
        .expect("commit");
    let mut latest = store.latest_tenant_runs().await.expect("latest");
    latest.sort_by(|a, b| a.tenant_id.cmp(&b.tenant_id));
    assert_eq!(
        latest.iter().map(|r| (r.tenant_id.as_str(), r.status, r.run_id.as_str())).collect::<Vec<_>>(),
        [("t1", TenantRunStatus::Failed, r2.id.as_str()), ("t2", TenantRunStatus::Ok, r1.id.as_str())]
    );
}

/// An enrollment token is spent once, only before it expires; agents are revoked and seen; tenants
/// move between pools.
pub async fn agents_enroll_once_and_are_revoked(store: S, _db: Db) {
    let t0 = now();
    let enrollment = |id: &str, hash: &str, expires_at| store::EnrollmentRecord {
        id: id.into(),
        hash: hash.into(),
        name: "dc1-agent".into(),
        pool: "dc1".into(),
        created_at: t0,
        created_by: "admin@lakeside".into(),
        expires_at,
        used_at: None,
        agent_id: None,
    };
    store.enrollment_put(&enrollment("e1", &"a1".repeat(32), t0 + TimeDelta::hours(1))).await.expect("put");
    store.enrollment_put(&enrollment("e2", &"b2".repeat(32), t0 - TimeDelta::seconds(1))).await.expect("put");
    let agent = |id: &str, name: Option<&str>| store::NewAgent {
        id: id.into(),
        name: name.map(str::to_string),
        signing_key: format!("sign-{id}"),
        sealing_key: format!("seal-{id}"),
        version: "0.1.0".into(),
    };
    // An unknown token, and an expired one, enroll nothing.
    assert!(store.enroll_agent(&"cc".repeat(32), &agent("x", None), t0).await.expect("enroll").is_none());
    assert!(store.enroll_agent(&"b2".repeat(32), &agent("x", None), t0).await.expect("enroll").is_none());
    assert!(store.agent_get("x").await.expect("get").is_none());
    // The token's pool and name; then the token is spent.
    let enrolled =
        store.enroll_agent(&"a1".repeat(32), &agent("a-1", None), t0).await.expect("enroll").expect("enrolled");
    assert_eq!((enrolled.name.as_str(), enrolled.pool.as_str()), ("dc1-agent", "dc1"));
    assert_eq!(enrolled.enrolled_by, "admin@lakeside");
    assert!(store.enroll_agent(&"a1".repeat(32), &agent("a-2", Some("other")), t0).await.expect("enroll").is_none());
    assert!(store.agent_get("a-2").await.expect("get").is_none());
    let listed = store.enrollment_list().await.expect("list");
    let spent = listed.iter().find(|e| e.id == "e1").expect("listed");
    assert_eq!((spent.used_at.is_some(), spent.agent_id.as_deref()), (true, Some("a-1")));

    store.agent_seen("a-1", t0 + TimeDelta::seconds(5), "0.2.0", &json!({"egress": "192.0.2.7"})).await.expect("seen");
    let seen = store.agent_get("a-1").await.expect("get").expect("agent");
    assert_eq!(seen.version, "0.2.0");
    assert_eq!(seen.health, Some(json!({"egress": "192.0.2.7"})));
    assert_eq!(store.agent_list().await.expect("list").len(), 1);
    assert!(store.agent_revoke("a-1", t0).await.expect("revoke"));
    assert!(!store.agent_revoke("a-1", t0).await.expect("revoke twice"));
    assert!(store.agent_get("a-1").await.expect("get").expect("kept").revoked_at.is_some());

    store.set_tenant_pool(&tid("t1"), Some("dc1")).await.expect("pool");
    store.set_tenant_pool(&tid("t2"), Some("dc1")).await.expect("pool");
    store.set_tenant_pool(&tid("t1"), Some("dc2")).await.expect("move");
    assert_eq!(
        store.tenant_pools().await.expect("pools"),
        vec![(tid("t1"), "dc2".to_string()), (tid("t2"), "dc1".to_string())]
    );
    store.set_tenant_pool(&tid("t1"), None).await.expect("default");
    assert_eq!(store.tenant_pools().await.expect("pools"), vec![(tid("t2"), "dc1".to_string())]);
    assert!(store.set_tenant_pool(&tid("t3"), Some(" ")).await.is_err(), "an empty pool is refused");
}

/// Another key than the one the stored secrets were encrypted with is refused (a lost key file is
/// not silently replaced); a store without secrets adopts the key; after the old key is lost,
/// its secrets can be discarded and everything else is kept.
pub async fn a_lost_key_is_not_silently_replaced(store: S, db: Db) {
    store.upsert_tenant(&tenant("t-key", None, "Keyed")).await.expect("tenant");
    store.credential_put(&credential("t-key", CredentialKind::Secret, "s3cret")).await.expect("credential");
    store.close().await;
    let other = store::Key::generate();
    let refused = store::open(&db.url, other.clone()).await.err().expect("another key is refused");
    match &refused {
        store::StoreError::WrongKey { expected, found, secrets } => {
            assert_eq!(
                (expected.as_str(), found.as_str(), *secrets),
                (db.key.fingerprint().as_str(), other.fingerprint().as_str(), 1)
            );
        }
        e => panic!("unexpected error: {e}"),
    }
    assert!(refused.to_string().contains("key reset"), "the message says how to recover: {refused}");
    // The right key still opens it, with the secret intact.
    let again = store::open(&db.url, db.key.clone()).await.expect("the right key opens it");
    assert!(again.credential_get(&tid("t-key")).await.expect("credential").is_some());
    again.close().await;
    // The old key is lost: its secret goes, the tenant stays, and the new key is adopted.
    let (reset, removed) = store::open_discarding_secrets(&db.url, other.clone()).await.expect("reset");
    assert_eq!(removed, 1);
    assert!(reset.credential_list().await.expect("list").is_empty());
    assert!(reset.get_tenant(&tid("t-key")).await.expect("tenant").is_some());
    reset.close().await;
    let adopted = store::open(&db.url, other).await.expect("the new key is the store's now");
    adopted.close().await;
    // Without secrets, a store adopts whatever key it is given.
    let fresh = store::Key::generate();
    let (s, removed) = store::open_discarding_secrets(&db.url, fresh.clone()).await.expect("open");
    assert_eq!(removed, 0);
    s.close().await;
    store::open(&db.url, fresh).await.expect("adopted").close().await;
}

/// Forgetting a tenant removes every row about it, and nothing about any other tenant: their
/// dataprints still read back exactly, shared runs stay with the forgotten tenant's warnings
/// removed.
pub async fn forget_removes_everything_about_one_tenant(store: S, db: Db) {
    let (gone, kept) = ("forget-me", "keep-me");
    store.upsert_tenant(&tenant(gone, Some("gone.example"), "Gone Ltd")).await.expect("tenant");
    store.upsert_tenant(&tenant(kept, Some("kept.example"), "Kept Ltd")).await.expect("tenant");
    store.set_tenant_domains(&tid(gone), "partner", &["gone.example".to_owned()]).await.expect("domains");
    let mut kept_docs = Vec::new();
    for day in 1..=2 {
        let at = ts(&format!("2026-11-0{day}T00:00:00Z"));
        let run = store.start_run("inspect", at).await.expect("start");
        for t in [gone, kept] {
            let doc = fixtures::dataprint(t, run.id.as_str(), 5 + day);
            let id = commit(&store, run.id.as_str(), t, TenantRunStatus::Ok, at, Some(&doc)).await.expect("stored");
            if t == kept {
                kept_docs.push((id, doc));
            }
            store.put_metrics(&run.id, &tid(t), at, &[("users".into(), json!(day))]).await.expect("metrics");
            store.put_events(&run.id, &tid(t), at, &[json!({"kind": "user_added", "tenant": t})]).await.expect("ev");
        }
        let stats = json!({"warnings": [
            {"kind": "gdap_expiring", "tenant_id": gone, "tenant": "Gone Ltd"},
            {"kind": "gdap_expiring", "tenant_id": kept, "tenant": "Kept Ltd"},
        ]});
        store.finish_run(&run.id, RunStatus::Ok, at, &stats).await.expect("finish");
    }
    let alert = AlertRecord {
        key: "gone-alert".into(),
        tenant_id: tid(gone),
        ..open_alert("gone-alert", "2026-11-02T00:00:00Z")
    };
    store.record_transition(&alert, "opened", &[("ops".to_string(), json!({"t": "opened"}))]).await.expect("alert");
    let other = AlertRecord {
        key: "kept-alert".into(),
        tenant_id: tid(kept),
        ..open_alert("kept-alert", "2026-11-02T00:00:00Z")
    };
    store.record_transition(&other, "opened", &[("ops".to_string(), json!({"t": "opened"}))]).await.expect("alert");
    store.cache_put(&cache_record("gone-token", gone, "access", "s3cret-gone")).await.expect("token");
    store.cache_put(&cache_record("kept-token", kept, "access", "s3cret-kept")).await.expect("token");
    store.credential_put(&credential(gone, CredentialKind::Secret, "app-secret")).await.expect("credential");
    store
        .set_delta_link(&tid(gone), "users", "https://graph.microsoft.com/v1.0/users/delta?$deltatoken=x")
        .await
        .expect("link");
    store.baseline_put("gold", &json!({"name": "gold", "source_tenant_id": gone})).await.expect("baseline");
    store.baseline_put("silver", &json!({"name": "silver", "source_tenant_id": kept})).await.expect("baseline");
    store.set_tenant_tags(&tid(gone), &["gold".to_string()]).await.expect("tags");
    store.set_tenant_tags(&tid(kept), &["gold".to_string()]).await.expect("tags");

    let report = store.forget_tenant(&tid(gone)).await.expect("forget");
    assert!(report.tenant);
    assert_eq!((report.dataprints, report.tenant_runs), (2, 2), "{report:?}");
    assert!(report.blobs > 0, "{report:?}");
    assert_eq!((report.metrics, report.events, report.alerts), (2, 2, 1), "{report:?}");
    assert_eq!((report.notifications, report.tokens, report.credentials), (1, 1, 1), "{report:?}");
    assert_eq!((report.delta_links, report.domains), (1, 1), "{report:?}");
    assert_eq!(report.baselines, vec!["gold".to_string()]);
    assert_eq!(report.runs_scrubbed, 2);

    // Nothing about it is left, in any table.
    assert!(store.get_tenant(&tid(gone)).await.expect("get").is_none());
    assert!(store.last_tenant_run(&tid(gone)).await.expect("get").is_none());
    assert!(store.latest_metrics(&tid(gone)).await.expect("metrics").is_empty());
    assert!(store.cache_get("gone-token").await.expect("get").is_none());
    assert!(store.credential_get(&tid(gone)).await.expect("get").is_none());
    for sql in [
        "SELECT COUNT(*) FROM tenant_keys WHERE tenant_id = 'forget-me'",
        "SELECT COUNT(*) FROM events WHERE tenant_id = 'forget-me'",
        "SELECT COUNT(*) FROM alerts WHERE tenant_id = 'forget-me'",
        "SELECT COUNT(*) FROM alert_outbox WHERE alert_key = 'gone-alert'",
        "SELECT COUNT(*) FROM tenant_domains WHERE tenant_id = 'forget-me'",
        "SELECT COUNT(*) FROM delta_links WHERE tenant_id = 'forget-me'",
        "SELECT COUNT(*) FROM tenant_tags WHERE tenant_id = 'forget-me'",
        "SELECT COUNT(*) FROM runs WHERE stats LIKE '%forget-me%'",
        "SELECT COUNT(*) FROM blobs WHERE NOT EXISTS (SELECT 1 FROM collection_set_members m WHERE m.blob_id = blobs.id)",
    ] {
        assert_eq!(db.count(sql).await, 0, "{sql}");
    }
    // The other tenant is untouched.
    for (id, doc) in &kept_docs {
        assert_eq!(json_string(&store.get_dataprint(id).await.expect("get").expect("kept")), json_string(doc));
    }
    assert!(store.cache_get("kept-token").await.expect("get").is_some());
    assert!(store.get_alert("kept-alert").await.expect("get").is_some());
    assert_eq!(store.latest_metrics(&tid(kept)).await.expect("metrics").len(), 1);
    assert!(store.baseline_get("silver").await.expect("get").is_some());
    assert_eq!(store.tenant_tags().await.expect("tags"), [(tid(kept), "gold".to_string())]);
    assert_eq!(db.count("SELECT COUNT(*) FROM runs WHERE stats LIKE '%keep-me%'").await, 2);
    assert!(store.integrity_problems().await.expect("check").is_empty());
    // Forgetting again finds nothing.
    assert_eq!(store.forget_tenant(&tid(gone)).await.expect("again"), store::ForgetReport::default());
}

/// Pruning by age removes what is older than the cutoff but each tenant's current state: its
/// latest result and last good dataprint, and the metric value in effect at the cutoff.
pub async fn prune_by_age_keeps_the_current_state(store: S, db: Db) {
    let mut last = None;
    for day in 1..=6 {
        let at = ts(&format!("2026-10-0{day}T00:00:00Z"));
        let run = store.start_run("inspect", at).await.expect("start");
        // Day 6 fails: the last good dataprint is day 5's.
        let status = if day == 6 { TenantRunStatus::Failed } else { TenantRunStatus::Ok };
        let doc = fixtures::dataprint("aged", run.id.as_str(), 5 + day);
        let id = commit(&store, run.id.as_str(), "aged", status, at, (day < 6).then_some(&doc)).await;
        if day == 5 {
            last = id;
        }
        // The metric changes on day 2 only.
        store
            .put_metrics(&run.id, &tid("aged"), at, &[("mfa".into(), json!(if day >= 2 { 90 } else { 80 }))])
            .await
            .expect("metrics");
        store.put_events(&run.id, &tid("aged"), at, &[json!({"kind": "x", "day": day})]).await.expect("events");
        store.finish_run(&run.id, RunStatus::Ok, at, &json!({})).await.expect("finish");
    }
    let resolved = AlertRecord {
        resolved_at: Some(ts("2026-10-02T00:00:00Z")),
        tenant_id: tid("aged"),
        ..open_alert("old", "2026-10-01T00:00:00Z")
    };
    store.upsert_alert(&resolved).await.expect("alert");
    let open = AlertRecord { tenant_id: tid("aged"), ..open_alert("open", "2026-10-01T00:00:00Z") };
    store.upsert_alert(&open).await.expect("alert");
    let empty_run = store.start_run("inspect", ts("2026-09-01T00:00:00Z")).await.expect("start");
    store.finish_run(&empty_run.id, RunStatus::Failed, ts("2026-09-01T00:00:01Z"), &json!({})).await.expect("finish");

    // Everything is older than the cutoff.
    let report = store.prune_older_than(ts("2026-11-01T00:00:00Z")).await.expect("prune");
    assert_eq!(report.tenant_runs, 4, "days 1 to 4 go; day 5 (last good) and day 6 (latest) stay: {report:?}");
    assert_eq!(report.dataprints_deleted, 4, "{report:?}");
    assert_eq!(report.metrics_deleted, 1, "the value of day 1 was superseded on day 2: {report:?}");
    assert_eq!(report.events_deleted, 6, "{report:?}");
    assert_eq!(report.alerts_deleted, 1, "only the resolved alert: {report:?}");
    assert_eq!(report.runs_deleted, 5, "days 1 to 4 and the empty run: {report:?}");
    let (meta, _) = store.last_good_dataprint(&tid("aged")).await.expect("last good").expect("kept");
    assert_eq!(Some(meta.id), last);
    assert_eq!(
        store.last_tenant_run(&tid("aged")).await.expect("latest").expect("kept").status,
        TenantRunStatus::Failed
    );
    let series = store.metric_series(Some(&tid("aged")), Some("mfa"), None).await.expect("series");
    assert_eq!(series.len(), 1, "the value in effect at the cutoff stays");
    assert_eq!(series[0].value, json!(90));
    assert!(store.get_alert("open").await.expect("get").is_some(), "open alerts stay whatever their age");
    assert_eq!(db.count("SELECT COUNT(*) FROM runs").await, 2);
    assert!(store.integrity_problems().await.expect("check").is_empty());
    // A second prune has nothing left to do.
    let again = store.prune_older_than(ts("2026-11-01T00:00:00Z")).await.expect("again");
    assert_eq!(again, store::PruneReport::default());
}

/// SQLite writes a consistent copy into an empty file; PostgreSQL says how to use pg_dump.
pub async fn backup_copies_sqlite_and_points_postgres_to_pg_dump(store: S, db: Db) {
    let run = store.start_run("inspect", now()).await.expect("start");
    let doc = fixtures::dataprint("bk", run.id.as_str(), 4);
    commit(&store, run.id.as_str(), "bk", TenantRunStatus::Ok, now(), Some(&doc)).await.expect("stored");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("backup.db");
    std::fs::File::create(&path).expect("empty file");
    let result = store.backup(&path).await;
    match db.kind {
        Kind::Sqlite => {
            result.expect("backup");
            let bytes = std::fs::read(&path).expect("read");
            assert!(bytes.starts_with(b"SQLite format 3\0"), "a whole SQLite database");
        }
        Kind::Postgres => {
            let err = result.expect_err("PostgreSQL is backed up with its own tools").to_string();
            assert!(err.contains("pg_dump") && err.contains("pg_restore"), "{err}");
        }
    }
    assert!(store.integrity_problems().await.expect("check").is_empty());
}
