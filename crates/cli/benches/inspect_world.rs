//! The inspection benchmark: a generated world served by the simulator in its own process, inspected by
//! the release binary. It measures wall time and peak memory of the first run, Graph requests against
//! the minimum the catalog needs, requests sent before a `Retry-After` elapsed, the requests of a
//! second run of the unchanged world, and the store's growth over repeated runs.
//!
//! `cargo bench -p tenantscope --bench inspect_world`; `TS_BENCH_SPEC` (default
//! `customers=1000,users=50..2000,seed=7`) and `TS_BENCH_RUNS` (default 30) change the world and the
//! number of runs.

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{command, control, cpu_seconds, peak_rss_kib};
use serde_json::Value;

/// Runs a child to completion, sampling its peak memory and CPU time until it exits.
fn measure(mut child: Child) -> (Duration, u64, Vec<u8>) {
    let started = Instant::now();
    let pid = child.id();
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut buf).ok();
        buf
    });
    let mut peak = 0;
    let mut cpu = 0.0;
    loop {
        if let Some(k) = peak_rss_kib(pid) {
            peak = peak.max(k);
        }
        if let Some(c) = cpu_seconds(pid) {
            cpu = c;
        }
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // The last sample is at most 20 ms before the exit.
    println!("  (tenantscope used {cpu:.1} s of CPU)");
    (started.elapsed(), peak, reader.join().unwrap_or_default())
}

/// Runs `inspect --json` over every tenant: its time, peak memory and report.
fn inspect(data: &Path, cloud: &str) -> (Duration, u64, Vec<u8>) {
    let child = command(data, cloud)
        .args(["inspect", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("inspect");
    measure(child)
}

/// The fewest Graph requests the catalog could have made for what a tenant returned: one batch, and
/// each paged collection's pages at the largest page size Graph allows.
fn minimum_requests(tenant: &Value) -> u64 {
    let mut n = 0;
    let mut batched = false;
    for c in tenant["collectors"].as_array().cloned().unwrap_or_default() {
        let items = c["items"].as_u64().unwrap_or(0);
        let pages = |size: u64| items.div_ceil(size).max(1);
        match c["mode"].as_str() {
            Some("batch") => batched = true,
            Some("paged") => n += pages(if c["name"] == "signIns" { 1000 } else { 999 }),
            Some("full") => n += pages(200),
            // A delta round from a saved link rides in the tenant's batch; its further pages cost one each.
            Some("delta") => {
                batched = true;
                n += c["requests"].as_u64().unwrap_or(1).saturating_sub(1);
            }
            _ => {}
        }
    }
    n + u64::from(batched)
}

fn main() {
    let spec = std::env::var("TS_BENCH_SPEC").unwrap_or_else(|_| "customers=1000,users=50..2000,seed=7".into());
    let runs: usize = std::env::var("TS_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(30);
    let mut dir = tempfile::tempdir().expect("temp dir");
    // TS_BENCH_KEEP=1 keeps the data directory, to look into the store afterwards.
    if std::env::var_os("TS_BENCH_KEEP").is_some() {
        dir.disable_cleanup(true);
        println!("data kept in {}", dir.path().display());
    }
    let data = dir.path().join("data");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (mut sim, ready, world_ready) = common::start_sim(dir.path(), &spec);
    let world = control(&rt, &ready, "GET", "world");
    let users: u64 =
        world["tenants"].as_array().map(|t| t.iter().filter_map(|x| x["users"].as_u64()).sum()).unwrap_or(0);
    println!(
        "world {spec}: {} tenants, {users} users, simulator ready in {:.1} s",
        world["tenants"].as_array().map_or(0, Vec::len),
        world_ready.as_secs_f64()
    );

    common::login(&rt, &ready, command(&data, &ready.cloud_file));
    control(&rt, &ready, "POST", "counters/reset");

    let sim_cpu = cpu_seconds(sim.id()).unwrap_or(0.0);
    let (elapsed, peak_kib, out) = inspect(&data, &ready.cloud_file);
    println!("  (the simulator used {:.1} s of CPU)", cpu_seconds(sim.id()).unwrap_or(0.0) - sim_cpu);
    let report: Value = serde_json::from_slice(&out).expect("inspect --json");
    let counters = control(&rt, &ready, "GET", "counters");
    let tenants = report["tenants"].as_array().cloned().unwrap_or_default();
    let sent: u64 = tenants.iter().filter_map(|t| t["requests"].as_u64()).sum();
    // Reading tenants, without committing them: with 16 in flight, the run cannot be shorter than
    // this sum over 16; the rest of the wall time is committing and waiting for the writer.
    let reading: u64 = tenants.iter().filter_map(|t| t["duration_ms"].as_u64()).sum();
    println!(
        "  (the partner took {:.1} s before the customers could start)",
        report["partner"]["duration_ms"].as_u64().unwrap_or(0) as f64 / 1000.0
    );
    println!(
        "  (reading the tenants took {:.1} s in all, {:.1} s over 16 at a time; the slowest {:.1} s)",
        reading as f64 / 1000.0,
        reading as f64 / 16000.0,
        tenants.iter().filter_map(|t| t["duration_ms"].as_u64()).max().unwrap_or(0) as f64 / 1000.0
    );
    let minimum: u64 = tenants.iter().map(minimum_requests).sum();
    println!(
        "first run: {} tenants ({} ok, {} partial, {} failed) in {:.1} s, peak RSS {:.0} MiB",
        tenants.len(),
        report["stats"]["ok"],
        report["stats"]["partial"],
        report["stats"]["failed"],
        elapsed.as_secs_f64(),
        peak_kib as f64 / 1024.0
    );
    println!(
        "graph requests: {sent} sent, {minimum} minimum for what was read ({:.2}x); simulator saw {} HTTP requests and batch items, {} of them $batch requests, throttled {}, early retries {}",
        sent as f64 / minimum.max(1) as f64,
        counters["graph_requests"],
        counters["batch_requests"],
        counters["throttled"],
        counters["early_retries"]
    );

    let db = format!("sqlite://{}?mode=rwc", data.join("tenantscope.db").display());
    let size = || {
        rt.block_on(async {
            let key = store::Key::from_env_or_file(&data).expect("key");
            let s = store::open(&db, key).await.expect("store");
            let n = s.storage_bytes().await.expect("size");
            s.close().await;
            n
        })
    };
    let after_one = size();

    control(&rt, &ready, "POST", "counters/reset");
    let sim_cpu = cpu_seconds(sim.id()).unwrap_or(0.0);
    let (elapsed2, peak2, out2) = inspect(&data, &ready.cloud_file);
    println!("  (the simulator used {:.1} s of CPU)", cpu_seconds(sim.id()).unwrap_or(0.0) - sim_cpu);
    let report2: Value = serde_json::from_slice(&out2).expect("json");
    let counters2 = control(&rt, &ready, "GET", "counters");
    let sent2: u64 =
        report2["tenants"].as_array().map(|t| t.iter().filter_map(|x| x["requests"].as_u64()).sum()).unwrap_or(0);
    // Graph's own count, by which it throttles, takes each request inside a `$batch` as one.
    let graph_count =
        |c: &Value| c["graph_requests"].as_u64().unwrap_or(0).saturating_sub(c["batch_requests"].as_u64().unwrap_or(0));
    println!(
        "second run (unchanged world): {sent2} HTTP requests ({:.1}x fewer) in {:.1} s, peak RSS {:.0} MiB; Graph requests with batch items counted singly: {} then {} ({:.1}x fewer)",
        sent as f64 / sent2.max(1) as f64,
        elapsed2.as_secs_f64(),
        peak2 as f64 / 1024.0,
        graph_count(&counters),
        graph_count(&counters2),
        graph_count(&counters) as f64 / graph_count(&counters2).max(1) as f64,
    );

    let mut last = elapsed2;
    for _ in 2..runs {
        last = inspect(&data, &ready.cloud_file).0;
    }
    let after_all = size();
    println!(
        "store: {:.1} MiB after 1 run, {:.1} MiB after {runs} runs ({:.2}x); the last run took {:.1} s",
        after_one as f64 / 1048576.0,
        after_all as f64 / 1048576.0,
        after_all as f64 / after_one.max(1) as f64,
        last.as_secs_f64()
    );
    let _ = sim.kill();
    let _ = sim.wait();
}
