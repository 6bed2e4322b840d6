//! Benchmark of writing a collection's stored bytes: built as `serde_json` trees and written out
//! (parse, key, serialise, free), against written straight from the items' JSON by
//! `inspect::canon`, with and without the projection the built-in metrics read.
//!
//! Run with `cargo bench -p inspect --bench canon`. The items are users and devices as Graph sends
//! them (its member order, not sorted; proptest's deterministic generator), 2,000 of each; every variant runs
//! 15 times on one thread and the median is printed with the throughput over the items' bytes.
//! Unlike the fleet benchmark this does not move with the simulator or the machine's other load as
//! much, so it shows what one change to `canon` does.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use history::Need;
use inspect::canon::Keyed;
use inspect::dataprint::keyed;
use proptest::prelude::Rng as _;
use proptest::test_runner::{RngAlgorithm, TestRng};
use serde_json::{Value, json};

/// The benchmark's generator: proptest's, seeded the same every run, so every run measures the same
/// data.
type Rng = TestRng;

/// A random id in Graph's form.
fn id(rng: &mut Rng) -> String {
    let (a, b) = (rng.next_u64(), rng.next_u64());
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

/// A user as the users delta round sends it, with the sign-in activity the run joins to it.
fn user(rng: &mut Rng, n: usize) -> String {
    let licences: Vec<Value> =
        (0..rng.next_u64() % 3).map(|_| json!({"disabledPlans": [], "skuId": id(rng)})).collect();
    // Written by hand to keep Graph's member order, which is not sorted.
    format!(
        r##"{{"@odata.type":"#microsoft.graph.user","id":"{}","displayName":"User Number {n}","userPrincipalName":"user{n}@contoso.onmicrosoft.com","accountEnabled":{},"userType":"{}","assignedLicenses":{},"createdDateTime":"2025-0{}-1{}T08:15:00Z","onPremisesSyncEnabled":null,"mail":"user{n}@contoso.com","jobTitle":"Engineer \u00e9 {n}","department":"Operations","signInActivity":{{"lastSignInDateTime":"2026-11-2{}T10:00:00Z","lastSignInRequestId":"{}","lastNonInteractiveSignInDateTime":"2026-11-30T09:00:00Z","lastNonInteractiveSignInRequestId":"{}"}}}}"##,
        id(rng),
        !rng.next_u64().is_multiple_of(10),
        if rng.next_u64().is_multiple_of(8) { "Guest" } else { "Member" },
        serde_json::to_string(&licences).unwrap_or_default(),
        1 + rng.next_u64() % 9,
        rng.next_u64() % 10,
        rng.next_u64() % 10,
        id(rng),
        id(rng),
    )
}

/// A device as the devices list sends it.
fn device(rng: &mut Rng, n: usize) -> String {
    format!(
        r#"{{"id":"{}","deviceId":"{}","displayName":"LAPTOP-{n:05}","operatingSystem":"Windows","operatingSystemVersion":"10.0.22631.{}","trustType":"AzureAd","isCompliant":{},"isManaged":true,"registrationDateTime":"2025-03-0{}T12:00:00Z","approximateLastSignInDateTime":"2026-11-2{}T07:30:00Z","accountEnabled":true}}"#,
        id(rng),
        id(rng),
        rng.next_u64() % 5000,
        !rng.next_u64().is_multiple_of(4),
        1 + rng.next_u64() % 9,
        rng.next_u64() % 10,
    )
}

/// The old way: trees parsed, keyed, written out and freed.
fn by_trees(items: &[String]) -> usize {
    let values: Vec<Value> = items.iter().filter_map(|i| serde_json::from_str(i).ok()).collect();
    let bytes = serde_json::to_vec(&keyed(values)).unwrap_or_default();
    bytes.len()
}

fn by_bytes(items: &[String], needs: Option<&BTreeMap<String, Need>>) -> usize {
    let mut k = match needs {
        Some(n) => Keyed::projecting(n.clone()),
        None => Keyed::new(),
    };
    for i in items {
        if k.push(i).is_err() {
            return 0;
        }
    }
    let (bytes, _, projection) = k.finish();
    black_box(projection);
    bytes.len()
}

fn median(mut f: impl FnMut() -> usize) -> (Duration, usize) {
    let mut times = Vec::new();
    let mut out = 0;
    for _ in 0..15 {
        let t = Instant::now();
        out = black_box(f());
        times.push(t.elapsed());
    }
    times.sort();
    (times[times.len() / 2], out)
}

fn report(what: &str, input: usize, (time, output): (Duration, usize)) {
    let mib = input as f64 / (1024.0 * 1024.0);
    println!(
        "  {what}: {:.1} ms, {:.0} MiB/s of items ({} bytes written)",
        time.as_secs_f64() * 1e3,
        mib / time.as_secs_f64(),
        output
    );
}

fn main() {
    let mut rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
    let users: Vec<String> = (0..2000).map(|n| user(&mut rng, n)).collect();
    let devices: Vec<String> = (0..2000).map(|n| device(&mut rng, n)).collect();
    // What a run projects of users for the built-in metrics, and the same members kept whole, as
    // the projection was made before item 31.
    let needs = inspect::child::unparsed(&[])
        .into_iter()
        .find(|u| u.name == "users")
        .and_then(|u| u.needs)
        .expect("the built-in metrics read users by members");
    let Need::Members { members: whole, .. } = Need::fields(needs.keys().cloned()) else {
        unreachable!("fields are members")
    };
    for (name, items, projection) in [("users", &users, Some((&needs, &whole))), ("devices", &devices, None)] {
        let input: usize = items.iter().map(String::len).sum();
        let trees = median(|| by_trees(items));
        let bytes = median(|| by_bytes(items, None));
        assert_eq!(trees.1, bytes.1, "both ways write the same bytes");
        println!("{} {name} ({:.2} MiB of JSON):", items.len(), input as f64 / (1024.0 * 1024.0));
        report("trees (parse, key, serialise, free)", input, trees);
        report("canon", input, bytes);
        if let Some((needs, whole)) = projection {
            report("canon with the metrics' projection", input, median(|| by_bytes(items, Some(needs))));
            report("canon with the same members kept whole", input, median(|| by_bytes(items, Some(whole))));
        }
    }
}
