//! The inspection benchmark: a generated world served by the simulator in its own process, inspected by
//! the release binary. For the first run of a new store and a second run of the unchanged world it
//! reports wall time, CPU (user and system), peak memory and bytes written by `tenantscope` (from
//! `wait4`'s resource usage, exact), Graph requests (HTTP round trips, and as Graph counts them with
//! each `$batch` item singly) against the minimum the catalog needs, the partner's requests, 429s and
//! requests sent before a `Retry-After` elapsed; then the store's growth over repeated runs.
//!
//! `cargo bench -p tenantscope --bench inspect_world`; `TS_BENCH_SPEC` (default
//! `customers=1000,users=50..2000,seed=7`) changes the world, `TS_BENCH_REPEAT` (default 3) the number
//! of fresh stores given a first and a second run (against one simulator, for the spread), and
//! `TS_BENCH_RUNS` (default 30) the number of runs of the last store, for its growth; `TS_BENCH_ARGS`
//! adds options to `inspect`.

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{command, control, cpu_seconds};
use serde_json::Value;

/// What one `tenantscope inspect` cost, from its resource usage as the kernel accounts it.
struct Measured {
    wall: Duration,
    user: f64,
    sys: f64,
    peak_kib: u64,
    written: u64,
    /// Context switches: waits for something (a lock, a wake-up, the disk) and preemptions.
    voluntary: u64,
    involuntary: u64,
    out: Vec<u8>,
}

/// Runs a child to completion and takes its resource usage when it is reaped (`wait4`): CPU time,
/// peak resident memory and the bytes it caused to be written to storage are then exact, not sampled.
fn measure(mut child: Child) -> Measured {
    let started = Instant::now();
    let pid = child.id() as libc::pid_t;
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut buf).ok();
        buf
    });
    let mut status = 0;
    // SAFETY: an all-zero `rusage` is a valid value of the plain C struct `wait4` fills in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is this process's own child, not reaped elsewhere (`Child::wait` is never called).
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid || (r < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted) {
            break;
        }
    }
    let wall = started.elapsed();
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Measured {
        wall,
        user: secs(usage.ru_utime),
        sys: secs(usage.ru_stime),
        peak_kib: usage.ru_maxrss as u64,
        // Linux counts block output in 512-byte units of the task's `write_bytes` I/O accounting.
        written: usage.ru_oublock as u64 * 512,
        voluntary: usage.ru_nvcsw as u64,
        involuntary: usage.ru_nivcsw as u64,
        out: reader.join().unwrap_or_default(),
    }
}

/// Runs `inspect --json` over every tenant.
fn inspect(data: &Path, cloud: &str) -> Measured {
    // TS_BENCH_ARGS adds options to `inspect`, say `--concurrency 8`.
    let extra = std::env::var("TS_BENCH_ARGS").unwrap_or_default();
    let child = command(data, cloud)
        .args(["inspect", "--json"])
        .args(extra.split_whitespace())
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

/// The system's load averages over 1, 5 and 15 minutes, as `/proc/loadavg` gives them.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// One run's figures, kept for the spread.
struct Run {
    wall: f64,
    cpu: f64,
    peak_mib: f64,
    written_ratio: f64,
    db: u64,
}

/// Graph's own count, by which it throttles, takes each request inside a `$batch` as one.
fn graph_count(c: &Value) -> u64 {
    c["graph_requests"].as_u64().unwrap_or(0).saturating_sub(c["batch_requests"].as_u64().unwrap_or(0))
}

/// The store's size in bytes (the database file once checkpointed).
fn store_size(rt: &tokio::runtime::Runtime, data: &Path) -> u64 {
    let db = format!("sqlite://{}?mode=rwc", data.join("tenantscope.db").display());
    rt.block_on(async {
        let key = store::Key::from_env_or_file(data).expect("key");
        let s = store::open(&db, key).await.expect("store");
        let n = s.storage_bytes().await.expect("size");
        s.close().await;
        n
    })
}

/// Runs one inspection and prints its figures.
fn run_once(
    what: &str,
    rt: &tokio::runtime::Runtime,
    ready: &sim::ReadyInfo,
    sim: &Child,
    data: &Path,
) -> (Run, Value, Value) {
    let load = load_average();
    let db_before = if data.join("tenantscope.db").exists() { store_size(rt, data) } else { 0 };
    control(rt, ready, "POST", "counters/reset");
    let sim_cpu = cpu_seconds(sim.id()).unwrap_or(0.0);
    let m = inspect(data, &ready.cloud_file);
    let sim_used = cpu_seconds(sim.id()).unwrap_or(0.0) - sim_cpu;
    let report: Value = serde_json::from_slice(&m.out).expect("inspect --json");
    let counters = control(rt, ready, "GET", "counters");
    let db_after = store_size(rt, data);
    let tenants = report["tenants"].as_array().cloned().unwrap_or_default();
    let stats = &report["stats"];
    let minimum: u64 = tenants.iter().map(minimum_requests).sum();
    let reading: u64 = tenants.iter().filter_map(|t| t["duration_ms"].as_u64()).sum();
    let mib = |b: u64| b as f64 / 1048576.0;
    let grown = db_after.saturating_sub(db_before);
    println!("{what} (load average {load}):");
    println!(
        "  {} tenants ({} ok, {} partial, {} failed) in {:.1} s wall; tenantscope CPU {:.1} s ({:.1} s user + {:.1} s system), peak RSS {:.0} MiB; the simulator's CPU {:.1} s",
        tenants.len(),
        stats["ok"],
        stats["partial"],
        stats["failed"],
        m.wall.as_secs_f64(),
        m.user + m.sys,
        m.user,
        m.sys,
        m.peak_kib as f64 / 1024.0,
        sim_used
    );
    println!("  context switches: {} voluntary, {} involuntary", m.voluntary, m.involuntary);
    println!(
        "  wrote {:.1} MiB to storage; the database is {:.1} MiB ({:+.1} MiB), {:.2}x what it grew by",
        mib(m.written),
        mib(db_after),
        mib(grown),
        m.written as f64 / grown.max(1) as f64
    );
    println!(
        "  Graph: {} HTTP round trips ({} for the partner; {} minimum for what was read), {} requests as Graph counts them, {} $batch requests; {} answered 429, {} sent before a Retry-After elapsed",
        stats["http_requests"],
        stats["partner_requests"],
        minimum,
        graph_count(&counters),
        counters["batch_requests"],
        counters["throttled"],
        counters["early_retries"]
    );
    println!(
        "  the partner took {:.1} s; reading the customers took {:.1} s in all, the slowest {:.1} s",
        report["partner"]["duration_ms"].as_u64().unwrap_or(0) as f64 / 1000.0,
        reading as f64 / 1000.0,
        tenants.iter().filter_map(|t| t["duration_ms"].as_u64()).max().unwrap_or(0) as f64 / 1000.0
    );
    let run = Run {
        wall: m.wall.as_secs_f64(),
        cpu: m.user + m.sys,
        peak_mib: m.peak_kib as f64 / 1024.0,
        written_ratio: m.written as f64 / grown.max(1) as f64,
        db: db_after,
    };
    (run, report, counters)
}

/// Median, least and greatest of a figure over runs.
fn spread(name: &str, runs: &[Run], unit: &str, f: impl Fn(&Run) -> f64) {
    let mut v: Vec<f64> = runs.iter().map(f).collect();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return;
    }
    println!("  {name}: median {:.2}{unit}, {:.2} – {:.2}{unit}", v[v.len() / 2], v[0], v[v.len() - 1]);
}

fn main() {
    let spec = std::env::var("TS_BENCH_SPEC").unwrap_or_else(|_| "customers=1000,users=50..2000,seed=7".into());
    let runs: usize = std::env::var("TS_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(30);
    let repeat: usize = std::env::var("TS_BENCH_REPEAT").ok().and_then(|v| v.parse().ok()).unwrap_or(3).max(1);
    let mut dir = tempfile::tempdir().expect("temp dir");
    // TS_BENCH_KEEP=1 keeps the data directories, to look into the stores afterwards.
    if std::env::var_os("TS_BENCH_KEEP").is_some() {
        dir.disable_cleanup(true);
        println!("data kept in {}", dir.path().display());
    }
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

    let mut firsts = Vec::new();
    let mut seconds = Vec::new();
    let mut data = dir.path().join("data");
    for i in 0..repeat {
        data = dir.path().join(format!("data-{i}"));
        common::login(&rt, &ready, command(&data, &ready.cloud_file));
        let (first, _, counters) = run_once(&format!("first run, store {}", i + 1), &rt, &ready, &sim, &data);
        let (second, _, counters2) =
            run_once(&format!("second run of the unchanged world, store {}", i + 1), &rt, &ready, &sim, &data);
        println!(
            "  by Graph's count {} then {} requests ({:.1}x fewer)",
            graph_count(&counters),
            graph_count(&counters2),
            graph_count(&counters) as f64 / graph_count(&counters2).max(1) as f64
        );
        firsts.push(first);
        seconds.push(second);
        // Only the last store goes on to the growth runs; the others would only fill the disk.
        if i + 1 < repeat && std::env::var_os("TS_BENCH_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&data);
        }
    }
    for (name, runs) in [("first runs", &firsts), ("second runs", &seconds)] {
        println!("{name}, {} stores:", runs.len());
        spread("wall", runs, " s", |r| r.wall);
        spread("CPU", runs, " s", |r| r.cpu);
        spread("peak RSS", runs, " MiB", |r| r.peak_mib);
        spread("written / growth", runs, "x", |r| r.written_ratio);
    }

    if runs > 2 {
        let after_one = firsts.last().map_or(0, |r| r.db);
        let mut last = 0.0;
        for _ in 2..runs {
            last = inspect(&data, &ready.cloud_file).wall.as_secs_f64();
        }
        let after_all = store_size(&rt, &data);
        println!(
            "store: {:.1} MiB after 1 run, {:.1} MiB after {runs} runs ({:.2}x); the last run took {:.1} s",
            after_one as f64 / 1048576.0,
            after_all as f64 / 1048576.0,
            after_all as f64 / after_one.max(1) as f64,
            last
        );
    }
    let _ = sim.kill();
    let _ = sim.wait();
}
