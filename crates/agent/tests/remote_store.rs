//! An agent's run through [`RemoteStore`], its store calls carried as the agent API carries them
//! (encoded to JSON, answered by the server's `inspect::storage::dispatch` on a real SQLite store,
//! the answer encoded again) but in process: which calls a run of an unchanged world makes, and
//! that a server one minor version older, which does not know the newer calls, gets the same
//! dataprints through the older ones.

use std::sync::{Arc, Mutex};

use agent::client::{AgentError, Identity};
use agent::protocol::StoreRequest;
use agent::remote::{RemoteStore, StoreWire};
use async_trait::async_trait;
use chrono::{Duration, Utc};
use inspect::storage::Call;
use inspect::{ManualClock, RunOptions, RunReport, Runner, StoreTokens};
use microsoft::{Authenticator, GraphClient, GraphOptions};
use serde_json::{Value, json};
use store::{DataprintId, Key, Store};
use test_support::SimEnv;

/// The calls a server one minor version older than this agent does not know.
const NEWER: [&str; 6] = [
    "last_good_dataprint_unread",
    "latest_tenant_runs",
    "domains_of",
    "delta_links",
    "dataprint_collection",
    "upsert_tenants_with_domains",
];

/// The server's store endpoint, in process.
struct InProcess {
    store: Arc<dyn Store>,
    /// Plays a server that predates the newer calls: its JSON extractor refuses them as it refuses
    /// any operation it does not know (the server's own test pins that answer).
    older: bool,
    calls: Mutex<Vec<String>>,
}

#[async_trait]
impl StoreWire for InProcess {
    async fn store_call(&self, _job_id: &str, request: &StoreRequest) -> Result<Option<Value>, AgentError> {
        let name = request.call.name();
        // A collection fetched whole is told from a projection of it (what a metric that measures
        // time reads of each element, fetched every run).
        let label = match &request.call {
            Call::DataprintCollection { name: collection, fields: None, .. } => format!("{name} {collection} whole"),
            Call::DataprintCollection { name: collection, fields: Some(_), .. } => {
                format!("{name} {collection} projected")
            }
            _ => name.to_string(),
        };
        self.calls.lock().expect("calls").push(label);
        if self.older && NEWER.contains(&name) {
            return Err(AgentError::Refused {
                what: "/jobs/j/store".into(),
                status: 422,
                detail: format!(
                    "Failed to deserialize the JSON body into the target type: call: unknown variant `{name}`, expected one of `list_tenants`, `upsert_tenant`"
                ),
                code: None,
            });
        }
        let bytes = serde_json::to_vec(request).expect("the request encodes");
        let request: StoreRequest = serde_json::from_slice(&bytes).expect("the server decodes the request");
        let refused = |detail: String| AgentError::Refused { what: name.into(), status: 500, detail, code: None };
        let answer =
            inspect::storage::dispatch(self.store.as_ref(), request.call).await.map_err(|e| refused(e.to_string()))?;
        let bytes = serde_json::to_vec(&answer).map_err(|e| refused(e.to_string()))?;
        Ok(Some(serde_json::from_slice(&bytes).map_err(|e| refused(e.to_string()))?))
    }

    fn identity(&self) -> Option<&Identity> {
        None
    }
}

struct Fixture {
    env: SimEnv,
    store: Arc<dyn Store>,
    auth: Arc<Authenticator>,
    clock: Arc<ManualClock>,
}

impl Fixture {
    async fn new() -> Fixture {
        let env = SimEnv::demo().await;
        let store = store::open("sqlite::memory:", Key::generate()).await.expect("store");
        let auth = env.partner_signed_in(Arc::new(StoreTokens { store: store.clone() })).await;
        Fixture { env, store, auth, clock: Arc::new(ManualClock::new(Utc::now())) }
    }

    /// One job's run through a remote store of its own; returns the report and the calls it made.
    async fn run(&self, older: bool) -> (RunReport, Vec<String>) {
        let wire = Arc::new(InProcess { store: self.store.clone(), older, calls: Mutex::new(Vec::new()) });
        let remote = Arc::new(RemoteStore::new(wire.clone(), "job".to_string(), 1));
        let graph = GraphClient::new(self.auth.clone(), GraphOptions::default());
        let report = Runner::new(graph, remote, RunOptions::default())
            .with_clock(self.clock.clone())
            .run()
            .await
            .expect("the run finishes");
        let calls = wire.calls.lock().expect("calls").clone();
        (report, calls)
    }
}

fn count(calls: &[String], name: &str) -> usize {
    calls.iter().filter(|c| c.as_str() == name || c.starts_with(&format!("{name} "))).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_tenant_costs_the_newer_calls_and_an_older_server_gets_the_same_dataprints() {
    for older in [false, true] {
        let f = Fixture::new().await;
        let (first, _) = f.run(older).await;
        let customers = first.tenants.len();
        assert!(customers > 3, "the demo world's customers were inspected");
        f.clock.advance(Duration::minutes(10));
        let (second, calls) = f.run(older).await;
        // Nothing changed: every customer's dataprint is confirmed, whichever calls brought it.
        for (one, two) in first.tenants.iter().zip(&second.tenants) {
            assert_eq!(one.tenant_id, two.tenant_id);
            assert_eq!(one.dataprint_id, two.dataprint_id, "{} (older server: {older})", one.display_name);
        }
        if older {
            // The first newer call is refused, and the job makes do with the older ones after it.
            let refused: usize = NEWER.iter().map(|n| count(&calls, n)).sum();
            assert_eq!(refused, 1, "{calls:?}");
            assert!(count(&calls, "last_good_dataprint") >= customers - 1, "{calls:?}");
            continue;
        }
        assert_eq!(count(&calls, "latest_tenant_runs"), 1, "{calls:?}");
        assert_eq!(count(&calls, "upsert_tenants_with_domains"), 1, "{calls:?}");
        assert_eq!(count(&calls, "domains_of"), 1, "{calls:?}");
        assert!(count(&calls, "last_good_dataprint_unread") >= customers - 1, "{calls:?}");
        // The partner's own inspection reads its previous dataprint whole, once; no customer's does.
        assert_eq!(count(&calls, "last_good_dataprint"), 1, "{calls:?}");
        for older_call in ["get_dataprint", "get_delta_link", "tenant_domains", "set_tenant_domains"] {
            assert_eq!(count(&calls, older_call), 0, "{older_call}: {calls:?}");
        }
        // The directory is unchanged, so the delta rounds find nothing and users and groups are
        // never fetched whole; the users' projection that `stale_accounts` measures is.
        for collection in ["users", "groups"] {
            assert_eq!(count(&calls, &format!("dataprint_collection {collection} whole")), 0, "{calls:?}");
        }
        assert!(count(&calls, "dataprint_collection users projected") >= 1, "{calls:?}");

        // A user is added: the users' delta round brings it, and only then are users fetched, to
        // merge into.
        let tenant = "northwindtraders.onmicrosoft.com";
        f.env
            .control(
                reqwest::Method::POST,
                "actions",
                json!([{"action": "create_user", "tenant": tenant, "upn": format!("new.hire@{tenant}"), "display_name": "New Hire"}]),
            )
            .await;
        f.clock.advance(Duration::minutes(10));
        let (third, calls) = f.run(older).await;
        assert_eq!(count(&calls, "dataprint_collection users whole"), 1, "{calls:?}");
        let northwind = third
            .tenants
            .iter()
            .find(|t| t.domain.as_deref() == Some(tenant))
            .or_else(|| third.tenants.iter().find(|t| t.display_name.contains("Northwind")))
            .expect("Northwind in the report");
        let id = northwind.dataprint_id.clone().expect("a dataprint");
        let stored = f.store.get_dataprint(&DataprintId::new(id)).await.expect("read").expect("stored");
        let users = stored["collections"]["users"].as_object().expect("users, whole");
        assert!(users.values().any(|u| u["displayName"] == "New Hire"), "the new user is merged in");
        let before = second.tenants.iter().find(|t| t.tenant_id == northwind.tenant_id).expect("northwind before");
        let before = DataprintId::new(before.dataprint_id.clone().expect("id"));
        let before = f.store.get_dataprint(&before).await.expect("read").expect("stored");
        assert_eq!(users.len(), before["collections"]["users"].as_object().expect("users").len() + 1);
    }
}
