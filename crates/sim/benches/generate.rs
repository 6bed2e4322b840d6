//! Generating the large world `customers=1000,users=50..2000,seed=7`: wall time and peak memory (the
//! process's high-water resident set, VmHWM), against the limits of 10 s and 2 GiB. Also the time for a
//! simulator with that world to be ready to serve. Run with `cargo bench -p sim --bench generate`; it
//! exits non-zero when a limit is exceeded.

use std::time::{Duration, Instant};

use sim::world::generate::{Spec, generate};

const SPEC: &str = "customers=1000,users=50..2000,seed=7";

/// A field of /proc/self/status in bytes (Linux), such as `VmHWM` or `VmRSS`.
fn proc_status(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}

fn main() {
    // `cargo test --all-targets` runs bench targets too, without `--bench`: do not load the machine there.
    if !std::env::args().any(|a| a == "--bench") {
        println!("benchmark skipped: run it with cargo bench -p sim");
        return;
    }
    let spec = Spec::parse(SPEC).expect("spec");
    let before = proc_status("VmHWM").unwrap_or(0);
    let started = Instant::now();
    let world = generate(&spec, chrono::Utc::now());
    let took = started.elapsed();
    let peak = proc_status("VmHWM").unwrap_or(0);
    let users: usize = world.tenants.iter().map(|t| t.users.len()).sum();
    let devices: usize = world.tenants.iter().map(|t| t.devices.len()).sum();
    println!(
        "generate {SPEC}: {} tenants, {users} users, {devices} devices, {} GDAP relationships",
        world.tenants.len(),
        world.gdap.len()
    );
    println!(
        "  {:.2} s, peak resident {:.2} GiB (baseline {:.2} GiB before generating)",
        took.as_secs_f64(),
        gib(peak),
        gib(before)
    );
    drop(world);
    // The same world behind a running simulator, from start to accepting connections.
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    let ready = rt.block_on(async {
        let mut config = sim::SimConfig::new(dir.path());
        config.world = sim::WorldSource::Generate(SPEC.into());
        let running = sim::start(config).await.expect("start");
        let took = started.elapsed();
        running.stop().await;
        took
    });
    let peak_serving = proc_status("VmHWM").unwrap_or(0);
    println!("  simulator ready in {:.2} s; process peak resident {:.2} GiB", ready.as_secs_f64(), gib(peak_serving));
    let within = took <= Duration::from_secs(10) && peak <= 2 * (1u64 << 30);
    println!("limits (10 s, 2 GiB): {}", if within { "met" } else { "EXCEEDED" });
    if !within {
        std::process::exit(1);
    }
}
