//! The store's contract suite, run against SQLite and PostgreSQL.
//!
//! Every function in `cases` is run once per backend by `contract_tests!`,
//! which generates `sqlite::<case>` and `postgres::<case>` tests.

mod cases;
mod fixtures;
mod harness;
mod layouts;

use harness::Kind;

macro_rules! contract_tests {
    ($($case:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    crate::harness::run(crate::Kind::Sqlite, crate::cases::$case).await;
                }
            )+
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    crate::harness::run(crate::Kind::Postgres, crate::cases::$case).await;
                }
            )+
        }
    };
}

contract_tests!(
    backend_matches,
    tenants,
    runs,
    interrupted_runs_are_marked_on_open,
    tenant_results,
    dataprint_round_trip_is_byte_exact,
    identical_dataprints_are_stored_once,
    unchanged_dataprints_are_confirmed_not_stored,
    changed_content_stores_a_new_dataprint,
    only_changed_collections_are_added,
    last_good_dataprint_survives_failed_runs,
    dataprint_listing_and_previous,
    prune_collects_garbage,
    forget_removes_everything_about_one_tenant,
    prune_by_age_keeps_the_current_state,
    backup_copies_sqlite_and_points_postgres_to_pg_dump,
    delta_links,
    a_tenant_commits_everything_in_one_write,
    a_collection_given_as_bytes_is_stored_as_in_the_document,
    reused_collections_are_taken_from_the_earlier_dataprint,
    unread_collections_are_carried_from_the_earlier_dataprint,
    tenants_and_their_domains_are_upserted_together,
    a_commit_confirms_only_the_latest_dataprint_whatever_was_loaded_before,
    one_collection_of_a_dataprint_is_read_whole_or_projected,
    token_cache_rotation_and_deletes,
    secrets_are_encrypted_at_rest,
    tampered_or_moved_ciphertext_fails_cleanly,
    wrong_key_fails_cleanly,
    app_credentials,
    settings,
    metrics,
    metric_series_keep_only_changes,
    events,
    alerts_and_deliveries,
    baselines,
    dropped_store_keeps_committed_data,
    killed_process_loses_nothing_committed,
    corrupt_rows_are_reported,
    debug_output_redacts_secrets,
    bad_input_is_refused,
    storage_bytes_grow,
    concurrent_commits,
    schema_from_a_newer_binary_is_refused,
    tenants_resolve_by_id_domain_and_name,
    metrics_in_effect_at_a_moment,
    alerts_are_acknowledged_and_muted,
    the_alert_outbox_delivers_in_order_once,
    jobs_are_claimed_once_and_fenced,
    jobs_retry_die_and_cancel,
    concurrent_claims_never_share_a_job,
    leases_elect_one_holder,
    sessions_tokens_and_the_append_only_audit_log,
    latest_results_per_tenant,
    agents_enroll_once_and_are_revoked,
    a_lost_key_is_not_silently_replaced,
);

/// The child process of `killed_process_loses_nothing_committed`: does
/// nothing unless that test started it.
#[tokio::test]
async fn crash_child_process_entry() {
    let (Ok(url), Ok(key)) = (std::env::var("TENANTSCOPE_CRASH_URL"), std::env::var("TENANTSCOPE_CRASH_KEY")) else {
        return;
    };
    cases::crash_child(&url, &key).await;
}

/// Backend selection and file handling that only concern `open` itself.
mod open {
    use std::time::Instant;

    use store::{Backend, Key, StoreError};

    #[tokio::test]
    async fn in_memory_sqlite_works() {
        let store = store::open("sqlite::memory:", Key::generate()).await.expect("open");
        assert_eq!(store.backend(), Backend::Sqlite);
        let run = store.start_run("inspect", chrono::Utc::now()).await.expect("start");
        assert!(store.get_run(&crate::harness::rid(run.id.as_str())).await.expect("get").is_some());
        assert!(store.storage_bytes().await.expect("size") > 0);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn bare_path_creates_a_private_database() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nested/dir/tenantscope.db");
        let store = store::open(path.to_str().expect("utf-8 path"), Key::generate()).await.expect("open");
        store.setting_put("cloud", &serde_json::json!("global")).await.expect("write");
        for file in [path.clone(), path.with_extension("db-wal")] {
            let mode = std::fs::metadata(&file).expect("exists").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", file.display());
        }
        store.close().await;
        let again = store::open(&format!("sqlite://{}", path.display()), Key::generate()).await.expect("reopen by URL");
        assert_eq!(again.setting_get("cloud").await.expect("read"), Some(serde_json::json!("global")));
    }

    #[tokio::test]
    async fn unsupported_url_names_only_the_scheme() {
        let Err(err) = store::open("mysql://admin:hunter2@db.example/ts", Key::generate()).await else {
            panic!("a mysql URL must be refused");
        };
        assert!(matches!(err, StoreError::UnsupportedUrl { .. }), "{err}");
        assert!(!format!("{err} {err:?}").contains("hunter2"));
    }

    #[tokio::test]
    async fn unreachable_postgres_fails_without_leaking_the_password() {
        let started = Instant::now();
        let Err(err) = store::open("postgres://ts:hunter2@127.0.0.1:9/ts", Key::generate()).await else {
            panic!("nothing listens on port 9");
        };
        assert!(matches!(err, StoreError::Database(_)), "{err}");
        assert!(!format!("{err} {err:?}").contains("hunter2"));
        eprintln!("refused after {:?}: {err}", started.elapsed());
        assert!(started.elapsed().as_secs() < 10, "a refused connection is reported at once");
    }
}

/// A full disk, simulated with a file-size limit on a child process: the
/// commit that does not fit fails with an error, and everything committed
/// before it is intact.
#[cfg(target_os = "linux")]
mod full_disk {
    use std::time::Duration;

    use store::{ExposeSecret, Key, TenantRunStatus};
    use tokio::io::AsyncBufReadExt;

    use crate::fixtures;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn full_disk_surfaces_as_an_error_and_loses_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("full.db").display());
        let key = Key::generate();
        let store = store::open(&url, key.clone()).await.expect("create");
        store.close().await;
        drop(store);

        // SIGXFSZ is ignored so that writes past the limit fail with EFBIG,
        // which SQLite reports like a full disk. The limit is 6,000 blocks
        // (3 MB with dash's 512-byte blocks, 6 MB with bash's 1 KiB ones).
        let exe = std::env::current_exe().expect("test binary");
        let mut child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg("trap '' XFSZ; ulimit -f 6000; exec \"$0\" full_disk::full_disk_child_entry --exact --nocapture --test-threads=1")
            .arg(exe)
            .env("TENANTSCOPE_FULL_URL", &url)
            .env("TENANTSCOPE_FULL_KEY", key.to_base64().expose_secret())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let mut committed = Vec::new();
        let mut error = None;
        let mut read_back = false;
        let reading = async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some((_, name)) = line.split_once("FULL-COMMITTED ") {
                    committed.push(name.trim().to_owned());
                } else if let Some((_, message)) = line.split_once("FULL-ERROR ") {
                    error = Some(message.to_owned());
                } else if line.contains("FULL-READBACK ok") {
                    read_back = true;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(600), reading).await.expect("child finished in time");
        let status = child.wait().await.expect("wait");
        assert!(status.success(), "child failed: {status}");
        let error = error.expect("the child hit the size limit");
        eprintln!("after {} commits: {error}", committed.len());
        assert!(committed.len() >= 3, "{} commits before the limit", committed.len());
        assert!(read_back, "committed data readable after the failure");

        let store = store::open(&url, key).await.expect("reopen without the limit");
        let run_id = store.list_runs(1).await.expect("runs").first().map(|r| r.id.clone()).expect("the child's run");
        for name in &committed {
            let (meta, doc) = store
                .last_good_dataprint(&crate::harness::tid(name))
                .await
                .expect("read")
                .expect("committed dataprint kept");
            assert_eq!(meta.run_id, run_id);
            assert_eq!(doc, fixtures::dataprint(name, run_id.as_str(), 300));
        }
        assert_eq!(
            store.tenant_runs(&crate::harness::rid(&run_id)).await.expect("results").len(),
            committed.len(),
            "the failed commit left nothing behind"
        );
    }

    /// The child: commits until the size limit stops it, then checks that
    /// the store still reads what it committed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn full_disk_child_entry() {
        let (Ok(url), Ok(key)) = (std::env::var("TENANTSCOPE_FULL_URL"), std::env::var("TENANTSCOPE_FULL_KEY")) else {
            return;
        };
        let key = Key::parse(&key, "TENANTSCOPE_FULL_KEY").expect("key");
        let store = store::open(&url, key).await.expect("open");
        let run = store.start_run("inspect", chrono::Utc::now()).await.expect("start");
        let mut last = None;
        for i in 0..2_000 {
            let name = format!("full-{i}");
            let doc = fixtures::dataprint(&name, run.id.as_str(), 300);
            let result = store::TenantRunRecord {
                run_id: run.id.clone(),
                tenant_id: name.as_str().into(),
                status: TenantRunStatus::Ok,
                started_at: chrono::Utc::now(),
                finished_at: chrono::Utc::now(),
                diagnosis: None,
                error: None,
                dataprint_id: None,
            };
            match store.commit_tenant_result(&result, &[], Some(&doc)).await {
                Ok(_) => {
                    println!("FULL-COMMITTED {name}");
                    last = Some(name);
                }
                Err(err) => {
                    assert!(matches!(err, store::StoreError::Database(_)), "{err}");
                    println!("FULL-ERROR {err}");
                    break;
                }
            }
        }
        let last = last.expect("committed something before the limit");
        let kept = store.last_good_dataprint(&crate::harness::tid(&last)).await.expect("read after failure");
        assert!(kept.is_some());
        println!("FULL-READBACK ok");
    }
}
