//! The platform's benchmark: API latency at 1,000 customers over HTTP on loopback, 200 concurrent
//! Server-Sent Events listeners on one job, and job claims per second on SQLite and PostgreSQL.
//!
//! `cargo bench -p server --bench api`. `TS_BENCH_TENANTS` (default 1000) changes the fleet;
//! PostgreSQL is at `TENANTSCOPE_TEST_DATABASE_URL` (default the test server's `test` database),
//! skipped with `TENANTSCOPE_SKIP_PG=1`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::json;
use sqlx::Connection as _;
use sqlx::Executor as _;
use store::{Store, TenantAuth, TenantId, TenantRecord, TenantRole, TenantRunRecord, TenantRunStatus};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// A fleet of `n` customers, each with a result in one run; one in ten failed with a cause.
async fn fleet(store: &Arc<dyn Store>, n: usize) -> Vec<TenantId> {
    let now = Utc::now();
    let run = store.start_run("inspect", now).await.expect("run");
    let mut ids = Vec::new();
    for i in 0..n {
        let id = TenantId::new(uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("t{i}").as_bytes()).to_string());
        store
            .upsert_tenant(&TenantRecord {
                id: id.clone(),
                domain: Some(format!("customer{i}.onmicrosoft.com")),
                display_name: format!("Customer {i:04}"),
                role: TenantRole::Customer,
                auth: TenantAuth::Gdap,
                first_seen: now,
                last_seen: now,
                gone_since: None,
                gdap: Some(json!({"relationships": [{"id": format!("rel-{i}"), "status": "active"}]})),
                label: (i % 7 == 0).then(|| "vip".to_string()),
            })
            .await
            .expect("tenant");
        let failed = i % 10 == 0;
        store
            .commit_tenant_result(
                &TenantRunRecord {
                    run_id: run.id.clone(),
                    tenant_id: id.clone(),
                    status: if failed { TenantRunStatus::Failed } else { TenantRunStatus::Ok },
                    started_at: now - chrono::Duration::seconds(5),
                    finished_at: now,
                    diagnosis: failed.then(|| {
                        json!({"cause": "gdap_expired", "summary": format!("The GDAP relationship with Customer {i:04} ended"), "fix": ["Renew it"]})
                    }),
                    error: None,
                    dataprint_id: None,
                },
                &[],
                None,
            )
            .await
            .expect("result");
        ids.push(id);
    }
    ids
}

async fn latency(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    rounds: usize,
) -> (Duration, Duration, Duration, usize) {
    let mut times = Vec::with_capacity(rounds);
    let mut bytes = 0;
    for _ in 0..rounds {
        let started = Instant::now();
        let resp = client.get(url).bearer_auth(token).send().await.expect("request");
        assert!(resp.status().is_success(), "{url}: {}", resp.status());
        bytes = resp.bytes().await.expect("body").len();
        times.push(started.elapsed());
    }
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99), *times.last().expect("rounds"), bytes)
}

async fn claims_per_second(store: Arc<dyn Store>, jobs: usize, workers: usize) -> f64 {
    let now = Utc::now();
    for _ in 0..jobs {
        store
            .enqueue_job(
                &store::NewJob {
                    kind: "inspect".into(),
                    params: json!({}),
                    pool: "bench".into(),
                    max_attempts: 3,
                    not_before: now,
                    created_by: "bench".into(),
                },
                now,
            )
            .await
            .expect("enqueue");
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0usize;
            while store
                .claim_job(&format!("w{w}"), "bench", Utc::now(), chrono::Duration::seconds(60))
                .await
                .expect("claim")
                .is_some()
            {
                n += 1;
            }
            n
        }));
    }
    let mut claimed = 0;
    for t in tasks {
        claimed += t.await.expect("worker");
    }
    assert_eq!(claimed, jobs, "every job claimed once");
    claimed as f64 / started.elapsed().as_secs_f64()
}

async fn postgres_url() -> Option<String> {
    if std::env::var("TENANTSCOPE_SKIP_PG").is_ok_and(|v| v.trim() == "1") {
        return None;
    }
    let admin = std::env::var("TENANTSCOPE_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_string());
    let mut conn = sqlx::PgConnection::connect(&admin).await.ok()?;
    let name = format!("tenantscope_bench_{}", uuid::Uuid::new_v4().simple());
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\""))).await.ok()?;
    let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap_or(admin);
    Some(format!("{base}/{name}"))
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(bench());
}

async fn bench() {
    let n: usize = std::env::var("TS_BENCH_TENANTS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let dir = tempfile::tempdir().expect("dir");
    let store =
        store::open(&format!("sqlite://{}?mode=rwc", dir.path().join("db.sqlite").display()), store::Key::generate())
            .await
            .expect("store");
    let started = Instant::now();
    let ids = fleet(&store, n).await;
    println!("fleet: {n} customers with a result each, stored in {:.1} s", started.elapsed().as_secs_f64());
    let now = Utc::now();
    let (token, record) =
        server::auth::new_api_token("bench", server::auth::Role::Admin, "bench", now, now + chrono::Duration::days(1))
            .expect("token");
    store.token_put(&record).await.expect("token");

    let mut config = server::ServerConfig::new("127.0.0.1:0".parse().expect("address"), dir.path().to_path_buf());
    config.schedule.enabled = false;
    config.worker.enabled = false;
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server_store = store.clone();
    let server = tokio::spawn(async move {
        server::serve(
            server_store,
            config,
            server::Services { executor: None, targets: Vec::new() },
            async {
                let _ = stop_rx.await;
            },
            move |addr| {
                let _ = addr_tx.send(addr);
            },
        )
        .await
        .expect("serve");
    });
    let addr = addr_rx.await.expect("address");
    let base = format!("http://{addr}/api/v1");
    let client = reqwest::Client::new();

    let (p50, p99, max, bytes) = latency(&client, &format!("{base}/tenants?limit=1000"), &token, 200).await;
    println!(
        "GET /tenants?limit=1000 ({n} customers, {} KiB): p50 {}, p99 {}, max {}",
        bytes / 1024,
        ms(p50),
        ms(p99),
        ms(max)
    );
    let (p50, p99, max, _) =
        latency(&client, &format!("{base}/tenants?status=failed&sort=-name&limit=50"), &token, 200).await;
    println!("GET /tenants?status=failed&sort=-name&limit=50: p50 {}, p99 {}, max {}", ms(p50), ms(p99), ms(max));
    let one = &ids[ids.len() / 2];
    let (p50, p99, max, _) = latency(&client, &format!("{base}/tenants/{one}"), &token, 200).await;
    println!("GET /tenants/{{id}}: p50 {}, p99 {}, max {}", ms(p50), ms(p99), ms(max));

    // 200 listeners on one job: how long from the job's end until every one of them has it.
    let job = store
        .enqueue_job(
            &store::NewJob {
                kind: "inspect".into(),
                params: json!({}),
                pool: "sse".into(),
                max_attempts: 1,
                not_before: Utc::now(),
                created_by: "bench".into(),
            },
            Utc::now(),
        )
        .await
        .expect("job");
    let listeners = 200;
    let mut tasks = Vec::new();
    for _ in 0..listeners {
        let client = client.clone();
        let url = format!("{base}/jobs/{}/events", job.id);
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            let text = client.get(url).bearer_auth(token).send().await.expect("events").text().await.expect("stream");
            (Instant::now(), text.contains("event: end"))
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let claimed =
        store.claim_job("bench", "sse", Utc::now(), chrono::Duration::seconds(60)).await.expect("claim").expect("job");
    let lease = claimed.lease().expect("lease");
    for done in 1..=5 {
        store
            .heartbeat_job(&lease, Utc::now(), chrono::Duration::seconds(60), Some(&json!({"done": done})))
            .await
            .expect("beat");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ended = Instant::now();
    store.finish_job(&lease, &store::JobOutcome::Succeeded(json!({})), Utc::now()).await.expect("finish");
    let mut last = Duration::ZERO;
    let mut complete = 0;
    for t in tasks {
        let (at, got_end) = t.await.expect("listener");
        last = last.max(at.saturating_duration_since(ended));
        complete += usize::from(got_end);
    }
    println!("{listeners} SSE listeners on one job: {complete} received its end, the last {} after it ended", ms(last));
    let _ = stop_tx.send(());
    let _ = server.await;

    let sqlite = store::open(
        &format!("sqlite://{}?mode=rwc", dir.path().join("claims.sqlite").display()),
        store::Key::generate(),
    )
    .await
    .expect("store");
    println!("job claims, SQLite, 4 workers: {:.0}/s", claims_per_second(sqlite, 5000, 4).await);
    match postgres_url().await {
        Some(url) => {
            let pg = store::open(&url, store::Key::generate()).await.expect("PostgreSQL store");
            println!("job claims, PostgreSQL, 8 workers: {:.0}/s", claims_per_second(pg, 10000, 8).await);
        }
        None => println!("job claims, PostgreSQL: skipped (no server, or TENANTSCOPE_SKIP_PG=1)"),
    }
}
