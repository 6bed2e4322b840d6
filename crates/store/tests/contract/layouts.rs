//! Databases written by earlier layouts of the store (see `tests/data/README.md`) open, migrate in
//! place and read back exactly what was written; a database from a newer tenantscope is refused.

use std::process::Command;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;
use store::{ExposeSecret, Key, RunStatus, Store, StoreError, TenantId};

use crate::fixtures;
use crate::harness::{Kind, TestDb};

/// The key the layout fixtures were written with.
fn fixture_key() -> Key {
    Key::from_bytes([42u8; 32])
}

/// Checks everything the fixture holds, then that the migrated store keeps working.
async fn check_v1_content(store: &dyn Store) {
    let contoso = TenantId::new(fixtures::guid("contoso"));
    let fabrikam = TenantId::new(fixtures::guid("fabrikam"));
    let t0: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 11, 1, 8, 0, 0).single().expect("time");

    let tenants = store.list_tenants().await.expect("tenants");
    let names: Vec<&str> = tenants.iter().map(|t| t.display_name.as_str()).collect();
    assert_eq!(names, ["CONTOSO Ltd", "FABRIKAM Ltd"]);
    assert_eq!(
        store.find_tenant("FABRIKAM.onmicrosoft.com").await.expect("find").map(|t| t.id),
        Some(fabrikam.clone())
    );

    let mut runs = store.list_runs(10).await.expect("runs");
    runs.reverse();
    assert_eq!(runs.len(), 3);
    for (seed, run) in runs.iter().enumerate() {
        assert_eq!(run.status, RunStatus::Ok);
        assert_eq!(run.stats, json!({"tenants": 2}));
        assert_eq!(run.started_at, t0 + chrono::TimeDelta::hours(seed as i64));
        for (name, tenant) in [("contoso", &contoso), ("fabrikam", &fabrikam)] {
            let users = if seed == 2 && name == "fabrikam" { 12 } else { 10 };
            let info = fixtures::RunInfo { id: run.id.to_string(), started_at: run.started_at, seed: seed as u64 };
            let expected = fixtures::dataprint_in_run(tenant.as_str(), &info, fixtures::collections(name, users));
            let doc = store.dataprint_for_run(&run.id, tenant).await.expect("read").expect("dataprint");
            assert_eq!(doc, expected, "{name} in run {seed}");
            let outcomes = store.collector_outcomes(&run.id, tenant).await.expect("outcomes");
            assert_eq!(outcomes, fixtures::outcomes(run.id.as_str(), tenant.as_str(), &expected));
        }
    }
    // Content changed only for Fabrikam's third run, so it has two distinct dataprints.
    assert_eq!(store.dataprints(&contoso, None).await.expect("list").len(), 1);
    assert_eq!(store.dataprints(&fabrikam, None).await.expect("list").len(), 2);

    let cached = store.cache_get("rt/partner").await.expect("cache").expect("entry");
    assert_eq!(cached.secret.expose_secret(), "refresh-token-secret-v1");
    let credential = store.credential_get(&fabrikam).await.expect("credential").expect("entry");
    assert_eq!(credential.secret.expose_secret(), "client-secret-v1");
    assert_eq!(credential.label.as_deref(), Some("Fabrikam reader"));
    assert_eq!(
        store.get_delta_link(&fabrikam, "users").await.expect("link").as_deref(),
        Some("https://graph.example/v1.0/users/delta?$deltatoken=abc")
    );
    assert_eq!(store.setting_get("client_id").await.expect("setting"), Some(json!("app")));
    assert_eq!(store.baseline_get("gold").await.expect("baseline"), Some(json!({"policies": 3})));
    let latest = store.latest_metrics(&fabrikam).await.expect("metrics");
    assert_eq!(latest.iter().find(|p| p.name == "users").map(|p| p.value.clone()), Some(json!(12)));
    assert_eq!(store.events(&Default::default()).await.expect("events").len(), 1);
    let alerts = store.open_alerts(Some(&fabrikam)).await.expect("alerts");
    assert_eq!(alerts.len(), 1);
    assert_eq!(store.deliveries(&alerts[0].key).await.expect("deliveries").len(), 1);

    // The migrated database takes new runs, and they confirm the stored content.
    let run = store.start_run("inspect", Utc::now()).await.expect("new run");
    let info = fixtures::RunInfo { id: run.id.to_string(), started_at: run.started_at, seed: 9 };
    let doc = fixtures::dataprint_in_run(fabrikam.as_str(), &info, fixtures::collections("fabrikam", 12));
    let outcomes = fixtures::outcomes(run.id.as_str(), fabrikam.as_str(), &doc);
    let record = store::TenantRunRecord {
        run_id: run.id.clone(),
        tenant_id: fabrikam.clone(),
        status: store::TenantRunStatus::Ok,
        started_at: run.started_at,
        finished_at: Utc::now(),
        diagnosis: None,
        error: None,
        dataprint_id: None,
    };
    store.commit_tenant_result(&record, &outcomes, Some(&doc)).await.expect("commit");
    assert_eq!(store.dataprints(&fabrikam, None).await.expect("list").len(), 2, "unchanged content is confirmed");
    assert_eq!(store.dataprint_for_run(&run.id, &fabrikam).await.expect("read"), Some(doc));
}

#[tokio::test]
async fn sqlite_database_of_layout_v1_is_migrated_in_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("old.db");
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/layout-v1.sqlite"), &path).expect("copy fixture");
    let store = store::open(&format!("sqlite://{}", path.display()), fixture_key()).await.expect("open and migrate");
    check_v1_content(store.as_ref()).await;
    // Migration 0012 rebuilt the blobs table with foreign keys off: every member still finds its blob.
    assert_eq!(store.integrity_problems().await.expect("check"), Vec::<String>::new());
    store.close().await;
    let db = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.expect("reopen");
    let unowned: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM blobs b WHERE b.owner <> (SELECT CASE WHEN count(DISTINCT d.tenant_key) = 1 \
         THEN min(d.tenant_key) ELSE 0 END FROM collection_set_members m JOIN dataprints d ON d.set_id = m.set_id \
         WHERE m.blob_id = b.id)",
    )
    .fetch_one(&db)
    .await
    .expect("count");
    assert_eq!(unowned, 0, "a blob belongs to the one tenant whose dataprints use it, else it is shared");
    db.close().await;
}

#[tokio::test]
async fn postgres_database_of_layout_v1_is_migrated_in_place() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let restored = Command::new("psql")
        .args(["--quiet", "--no-psqlrc", "-v", "ON_ERROR_STOP=1", "--dbname", &db.url, "--file"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/layout-v1.postgres.sql"))
        .output()
        .expect("psql runs");
    assert!(restored.status.success(), "restore failed: {}", String::from_utf8_lossy(&restored.stderr));
    let store = store::open(&db.url, fixture_key()).await.expect("open and migrate");
    check_v1_content(store.as_ref()).await;
    let unowned = db
        .count(
            "SELECT COUNT(*) FROM blobs b WHERE b.owner <> (SELECT CASE WHEN count(DISTINCT d.tenant_key) = 1 \
             THEN min(d.tenant_key) ELSE 0 END FROM collection_set_members m JOIN dataprints d \
             ON d.set_id = m.set_id WHERE m.blob_id = b.id)",
        )
        .await;
    assert_eq!(unowned, 0, "a blob belongs to the one tenant whose dataprints use it, else it is shared");
    // Every key is 64-bit after the migration, identity sequences included.
    let narrow = db
        .count(
            "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = current_schema() \
             AND data_type = 'integer' AND (column_name = 'key' OR column_name LIKE '%\\_key')",
        )
        .await;
    assert_eq!(narrow, 0, "integer keys left");
    let narrow_sequences = db
        .count("SELECT COUNT(*) FROM information_schema.sequences WHERE sequence_schema = current_schema() AND data_type <> 'bigint'")
        .await;
    assert_eq!(narrow_sequences, 0, "integer identity sequences left");
    store.close().await;
    db.drop_database().await;
}

/// A database migrated by a newer tenantscope is refused before anything is read or written.
pub async fn schema_from_a_newer_binary_is_refused(store: std::sync::Arc<dyn Store>, db: std::sync::Arc<TestDb>) {
    store.setting_put("probe", &json!(1)).await.expect("write");
    store.close().await;
    drop(store);
    let sql = match db.kind {
        Kind::Sqlite => {
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (9999, 'from the future', TRUE, X'00', 0)"
        }
        Kind::Postgres => {
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (9999, 'from the future', TRUE, '\\x00'::bytea, 0)"
        }
    };
    assert_eq!(db.exec(sql, &[]).await, 1);
    let Err(err) = db.open_with(db.key.clone()).await else {
        panic!("a database with an unknown newer migration must be refused");
    };
    assert!(matches!(err, StoreError::SchemaTooNew { found: 9999, .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("newer tenantscope") && text.contains("9999") && text.contains("upgrade"), "{text}");
}
