//! Replicas of the server on one PostgreSQL database: exactly one scheduler fires per tick, and
//! a tenant that is due is queued once, however many replicas tick at the same moment.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use chrono::Utc;
use server::config::ScheduleConfig;
use server::scheduler::Scheduler;
use store::{Store, TenantAuth, TenantId, TenantRecord, TenantRole};

fn tenant(id: &str) -> TenantRecord {
    let now = Utc::now();
    TenantRecord {
        id: TenantId::new(id),
        domain: None,
        display_name: id.to_string(),
        role: if id == "partner" { TenantRole::Partner } else { TenantRole::Customer },
        auth: if id == "partner" { TenantAuth::Partner } else { TenantAuth::Gdap },
        first_seen: now,
        last_seen: now,
        gone_since: None,
        gdap: None,
        label: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_scheduler_fires_across_replicas_on_postgres() {
    let Some(url) = test_support::postgres_database("server_replicas").await else { return };
    let key = store::Key::generate();
    let mut replicas: Vec<Arc<dyn Store>> = Vec::new();
    for _ in 0..3 {
        replicas.push(store::open(&url, key.clone()).await.expect("open"));
    }
    for id in ["partner", "t1", "t2", "t3"] {
        replicas[0].upsert_tenant(&tenant(id)).await.expect("tenant");
    }
    let schedulers: Vec<Scheduler> = replicas
        .iter()
        .enumerate()
        .map(|(i, store)| Scheduler {
            store: store.clone(),
            config: ScheduleConfig::default(),
            owner: format!("replica-{i}"),
            pool: "local".into(),
            max_attempts: 3,
            held: Arc::new(AtomicBool::new(false)),
        })
        .collect();

    // All replicas tick at the same moment, several times: one job, from one replica.
    let now = Utc::now();
    for round in 0..5 {
        let at = now + chrono::Duration::seconds(round);
        let ticks = futures::future::join_all(schedulers.iter().map(|s| s.tick(at))).await;
        let fired: Vec<String> = ticks.into_iter().flat_map(|t| t.expect("tick")).collect();
        assert!(fired.len() <= 1, "round {round}: {fired:?}");
    }
    let jobs = replicas[1].list_jobs(&store::JobFilter { limit: 100, ..Default::default() }).await.expect("jobs");
    assert_eq!(jobs.len(), 1, "one inspection for the due tenants: {jobs:?}");
    assert_eq!(jobs[0].params["tenants"], serde_json::json!([]), "every tenant was due: one inspection of all");
    let holders = schedulers.iter().filter(|s| s.held.load(std::sync::atomic::Ordering::Relaxed)).count();
    assert_eq!(holders, 1);

    // Each tenant is next due about four hours later, spread by jitter.
    let due: HashMap<TenantId, chrono::DateTime<Utc>> =
        replicas[2].schedule_state().await.expect("state").into_iter().collect();
    assert_eq!(due.len(), 4);
    for at in due.values() {
        let hours = (*at - now).num_minutes() as f64 / 60.0;
        assert!((3.5..=4.5).contains(&hours), "{hours}");
    }

    // The holder dies (stops renewing): after its lease expires another replica takes over, and
    // after downtime longer than several intervals each tenant runs once, not once per missed slot.
    // While that inspection is still queued, nothing it covers is queued again.
    let early = now + chrono::Duration::hours(5);
    let ticks = futures::future::join_all(schedulers.iter().map(|s| s.tick(early))).await;
    assert!(ticks.into_iter().all(|t| t.expect("tick").is_empty()), "the queued inspection covers every tenant");
    // It ran (here: it is cancelled, which ends it as well).
    replicas[0].cancel_job(&jobs[0].id, now).await.expect("cancel");
    let much_later = now + chrono::Duration::hours(13);
    let ticks = futures::future::join_all(schedulers[1..].iter().map(|s| s.tick(much_later))).await;
    let fired: Vec<String> = ticks.into_iter().flat_map(|t| t.expect("tick")).collect();
    assert_eq!(fired.len(), 1, "{fired:?}");
    let jobs = replicas[0].list_jobs(&store::JobFilter { limit: 100, ..Default::default() }).await.expect("jobs");
    assert_eq!(jobs.len(), 2);
    let again =
        futures::future::join_all(schedulers[1..].iter().map(|s| s.tick(much_later + chrono::Duration::seconds(1))))
            .await;
    assert!(again.into_iter().all(|t| t.expect("tick").is_empty()), "nothing is due any more");
}

/// Due tenants are queued per pool of agents: each pool's job names its own tenants, and the
/// default pool's job no longer means "every tenant" once some are elsewhere.
async fn queued_per_pool(tenants_per_job: usize) -> Vec<(String, Vec<String>)> {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display());
    let store = store::open(&url, store::Key::generate()).await.expect("open");
    for id in ["partner", "t1", "t2", "t3"] {
        store.upsert_tenant(&tenant(id)).await.expect("tenant");
    }
    store.set_tenant_pool(&TenantId::new("t2"), Some("dc1")).await.expect("pool");
    store.set_tenant_pool(&TenantId::new("t3"), Some("dc1")).await.expect("pool");
    let scheduler = Scheduler {
        store: store.clone(),
        config: ScheduleConfig { tenants_per_job, ..ScheduleConfig::default() },
        owner: "replica".into(),
        pool: "local".into(),
        max_attempts: 3,
        held: Arc::new(AtomicBool::new(false)),
    };
    let queued = scheduler.tick(Utc::now()).await.expect("tick");
    let mut jobs: Vec<(String, Vec<String>)> = Vec::new();
    for id in queued {
        let job = store.get_job(&id).await.expect("get").expect("job");
        let mut names: Vec<String> = job.params["tenants"]
            .as_array()
            .expect("named")
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        names.sort();
        jobs.push((job.pool, names));
    }
    jobs.sort();
    jobs
}

#[tokio::test]
async fn due_tenants_are_queued_per_pool() {
    assert_eq!(
        queued_per_pool(0).await,
        vec![
            ("dc1".to_string(), vec!["t2".to_string(), "t3".to_string()]),
            ("local".to_string(), vec!["partner".to_string(), "t1".to_string()]),
        ]
    );
}

/// Split into shares, a pool's agents can work on one inspection at the same time.
#[tokio::test]
async fn due_tenants_are_split_into_shares_of_a_pool() {
    let jobs = queued_per_pool(1).await;
    let one = |pool: &str, t: &str| (pool.to_string(), vec![t.to_string()]);
    assert_eq!(jobs, vec![one("dc1", "t2"), one("dc1", "t3"), one("local", "partner"), one("local", "t1")]);
}
