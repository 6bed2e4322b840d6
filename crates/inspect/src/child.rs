//! Inspecting one customer tenant: a token, then every collector of the catalog (skipped up front when
//! its licence or permission is known to be missing), small reads batched, large lists streamed, users
//! and groups by delta, and the dataprint assembled from it all.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use microsoft::graph::{BatchItem, GraphClient, Target};
use microsoft::{AccessToken, Error, Grant};
use serde::Serialize;
use serde_json::{Map, Value, json};
use store::TenantId;

use crate::catalog::{self, Collector, Fetch, Side};
use crate::clock::Clock;
use crate::dataprint::{self, Status, canonical, keyed};
use crate::facts::{self, GdapView, Situation};

/// Microsoft's own tenant: first-party service principals belong to it.
const MICROSOFT_TENANT: &str = "f8cdef31-a31e-4b4a-93e4-5f571e91255a";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    Gdap,
    App,
    Direct,
    Partner,
}

impl AuthMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Gdap => "gdap",
            AuthMode::App => "app",
            AuthMode::Direct => "direct",
            AuthMode::Partner => "partner",
        }
    }

    pub fn diagnose(self) -> diagnose::Auth {
        match self {
            AuthMode::Gdap => diagnose::Auth::Gdap,
            AuthMode::App => diagnose::Auth::App,
            AuthMode::Direct => diagnose::Auth::Direct,
            AuthMode::Partner => diagnose::Auth::Partner,
        }
    }
}

/// A tenant to inspect and how to reach it.
#[derive(Debug, Clone)]
pub struct TenantTarget {
    pub tenant_id: TenantId,
    pub display_name: String,
    /// The engineer's label for the tenant, shown beside its name.
    pub label: Option<String>,
    pub domain: Option<String>,
    pub auth: AuthMode,
    pub grant: Grant,
    pub gdap: Option<GdapView>,
    pub partner_tenant_id: Option<TenantId>,
    /// The claims of the account whose refresh token reaches this tenant, for diagnosis.
    pub sign_in: Option<microsoft::Claims>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutcomeStatus {
    Ok,
    Skipped,
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Batch,
    Paged,
    Full,
    Delta,
    Reused,
    None,
}

#[derive(Debug, Clone, Serialize)]
pub struct Reason {
    pub kind: &'static str,
    pub detail: String,
}

/// What happened to one collector.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub name: &'static str,
    pub status: OutcomeStatus,
    pub items: Option<usize>,
    pub reason: Option<Reason>,
    #[serde(skip)]
    pub error: Option<Error>,
    pub diagnosis: Option<diagnose::Diagnosis>,
    pub mode: Mode,
    pub requests: u64,
    pub duration_ms: u64,
    pub collected_at: Option<DateTime<Utc>>,
    /// The collection is the previous dataprint's, unchanged: a delta round that brought no
    /// change. (A collection reused as it was has [`Mode::Reused`] instead.)
    #[serde(skip)]
    pub unchanged: bool,
}

impl Outcome {
    fn new(c: &Collector) -> Outcome {
        Outcome {
            name: c.name,
            status: OutcomeStatus::Ok,
            items: None,
            reason: None,
            error: None,
            diagnosis: None,
            mode: Mode::None,
            requests: 0,
            duration_ms: 0,
            collected_at: None,
            unchanged: false,
        }
    }

    /// Whether this outcome is an access problem worth a diagnosis (not a licence the tenant lacks).
    pub fn is_access_problem(&self) -> bool {
        match self.status {
            OutcomeStatus::Failed => true,
            OutcomeStatus::Skipped => {
                self.reason.as_ref().is_some_and(|r| matches!(r.kind, "permission" | "role" | "no_token"))
            }
            OutcomeStatus::Ok => false,
        }
    }
}

/// The result of inspecting one tenant.
#[derive(Debug, Clone)]
pub struct TenantResult {
    pub target: TenantTarget,
    pub status: Status,
    pub outcomes: Vec<Outcome>,
    pub dataprint: Option<Value>,
    /// The built-in metrics of the dataprint, as its summary holds them.
    pub metrics: Vec<history::MetricValue>,
    pub diagnosis: Option<diagnose::Diagnosis>,
    pub token_error: Option<Error>,
    pub token: Option<AccessToken>,
    pub delta_links: Vec<(String, String)>,
    /// The collections moved unchanged from the previous dataprint into this one, which the store
    /// then need not serialise and hash again.
    pub reused: Vec<String>,
    /// Of `reused`, those never read from the store: `null` in the dataprint, their content the
    /// previous dataprint's (see [`READ_FROM_PREVIOUS`]).
    pub unread: Vec<String>,
    /// Collections read this run and written from Graph's answers without being read as trees
    /// (see [`unparsed`]): `null` in the dataprint, their bytes here.
    pub unparsed: Vec<store::UnparsedCollection>,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    pub requests: u64,
}

/// The collections a run reads from the previous dataprint itself, whatever the metrics: the bases
/// of delta rounds are every [`Fetch::Delta`] collector's, and besides them the licences a run falls
/// back on when it cannot read them, the organization that names a tenant known only by id, the
/// domains recorded with the tenant, what names application permissions, what decides whether
/// named locations are read every run, and what the summary shows besides the metrics
/// (`dataprint::summarize`).
const READ_FROM_PREVIOUS: &[&str] = &[
    "subscribedSkus",
    "secureScores",
    "organization",
    "domains",
    "servicePrincipals",
    "appRoleAssignments",
    "conditionalAccessPolicies",
];

/// The customer collections a run can leave unread when it loads the previous dataprint: those
/// neither the run itself nor any of `metrics` reads, nor any built-in metric (which the summary
/// always computes) but one that reads that collection alone and not the time: such a metric keeps
/// its value while the collection is reused ([`dataprint::summarize`]). A collection the run then
/// reuses is carried over by the store as it is stored, never inflated or parsed. Empty when a
/// metric may read collections it does not name.
pub fn unread_from_previous(metrics: &[history::Metric]) -> Vec<&'static str> {
    let builtins = dataprint::builtins();
    let Some(mut read) = read_by(builtins.iter().filter(|m| !dataprint::keeps_value(m)).chain(custom(metrics))) else {
        return Vec::new();
    };
    read.extend(READ_FROM_PREVIOUS.iter().map(|s| s.to_string()));
    catalog::customer_collectors()
        .filter(|c| c.fetch != Fetch::Delta && !read.contains(c.name))
        .map(|c| c.name)
        .collect()
}

/// The metrics of the configuration that are not built in.
fn custom(metrics: &[history::Metric]) -> impl Iterator<Item = &history::Metric> {
    let builtins = dataprint::builtins();
    metrics.iter().filter(|m| !builtins.iter().any(|b| b.name() == m.name()))
}

/// Every collection `metrics` read or require, or `None` when one may read collections it does not
/// name.
fn read_by<'m>(metrics: impl Iterator<Item = &'m history::Metric>) -> Option<std::collections::BTreeSet<String>> {
    let mut read = std::collections::BTreeSet::new();
    for m in metrics {
        read.extend(m.reads()?);
        // A metric is evaluated only when the collections it requires are there, which it may
        // state apart from what its expression reads.
        read.extend(m.requires().iter().flat_map(|r| r.split('|').map(str::to_string)));
    }
    Some(read)
}

/// A collection the run may leave unread in the store while its delta round finds no change,
/// loading it only when one does ([`Previous::with_loader`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lazy {
    pub name: &'static str,
    /// The members of its elements that the built-in metrics measuring time read
    /// ([`history::Metric::element_fields`]): loaded, with only these, to compute them while the
    /// collection stays unread. `None` when no such metric reads it.
    pub fields: Option<Vec<String>>,
}

/// The delta collections a run can leave unread when it loads the previous dataprint: those no
/// custom metric reads, and that each built-in metric reads either only to count them (it keeps its
/// value while the collection is unchanged, [`dataprint::keeps_value`]) or by members of their
/// elements ([`history::Metric::element_fields`]). Empty when a metric may read collections it does
/// not name.
pub fn lazy_from_previous(metrics: &[history::Metric]) -> Vec<Lazy> {
    let builtins = dataprint::builtins();
    let Some(read_by_custom) = read_by(custom(metrics)) else { return Vec::new() };
    let mut lazy = Vec::new();
    for c in catalog::customer_collectors().filter(|c| c.fetch == Fetch::Delta) {
        if read_by_custom.contains(c.name) {
            continue;
        }
        match element_reads(builtins.iter().filter(|m| !dataprint::keeps_value(m)), c.name, false) {
            None => return Vec::new(),
            Some(ElementReads::Whole) => {}
            Some(ElementReads::Members(needs)) => {
                lazy.push(Lazy { name: c.name, fields: needs.map(|n| n.into_keys().collect()) })
            }
        }
    }
    lazy
}

/// What some metrics read of a collection's elements (see [`element_reads`]).
enum ElementReads {
    /// The elements whole, or the collection some other way.
    Whole,
    /// Only these members of each element, as much of each as its need says, or (`None`) nothing of
    /// them.
    Members(Option<BTreeMap<String, history::Need>>),
}

/// What `metrics` read of the elements of `collection`, by [`history::Metric::element_fields`];
/// with `required`, a metric that only requires the collection reads no member of its elements but
/// needs it there. `None` when a metric may read collections it does not name.
fn element_reads<'m>(
    metrics: impl Iterator<Item = &'m history::Metric>,
    collection: &str,
    required: bool,
) -> Option<ElementReads> {
    let mut needs: Option<history::Need> = None;
    for m in metrics {
        let reads = m.reads()?;
        if !reads.contains(collection) {
            if required && m.requires().iter().any(|r| r.split('|').any(|n| n == collection)) {
                needs.get_or_insert_with(history::Need::nothing);
            }
            continue;
        }
        match m.element_needs(collection) {
            Some(members) => {
                let mine = history::Need::Members { members, truth: false };
                needs = Some(match needs.take() {
                    Some(n) => n.join(mine),
                    None => mine,
                });
            }
            None => return Some(ElementReads::Whole),
        }
    }
    Some(match needs {
        None => ElementReads::Members(None),
        Some(history::Need::Members { members, .. }) => ElementReads::Members(Some(members)),
        // Needs of members join as members; anything else is the elements whole.
        Some(_) => ElementReads::Whole,
    })
}

/// A collection a run writes from Graph's answers without reading it as a tree ([`crate::canon`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unparsed {
    pub name: &'static str,
    /// What built-in metrics read of its elements' members ([`history::Metric::element_needs`]): the
    /// summary is computed on a copy of the collection whose elements keep only that. `None` when no
    /// built-in metric reads or requires it.
    pub needs: Option<BTreeMap<String, history::Need>>,
}

/// The collections a run can write straight from Graph's answers to the store, never building
/// their trees: those read by pages ([`Fetch::List`]) or by delta rounds (when a round is read in
/// full with no previous collection to merge into) that neither the run itself nor any custom
/// metric reads, and that every built-in metric reads only by members of their elements
/// ([`history::Metric::element_fields`]), or not at all. Users qualify only with their sign-in
/// activity, which is joined to them as bytes. The largest collections of a tenant (users, sign-in
/// activity, devices, managed devices, sign-in logs, MFA registration) are among them, and building
/// their trees only to write them out again was most of a first run's CPU. Empty when a metric may
/// read collections it does not name.
pub fn unparsed(metrics: &[history::Metric]) -> Vec<Unparsed> {
    let builtins = dataprint::builtins();
    let Some(read_by_custom) = read_by(custom(metrics)) else { return Vec::new() };
    let mut out = Vec::new();
    for c in catalog::customer_collectors().filter(|c| matches!(c.fetch, Fetch::List | Fetch::Delta)) {
        if read_by_custom.contains(c.name) || READ_FROM_PREVIOUS.contains(&c.name) {
            continue;
        }
        match element_reads(builtins.iter(), c.name, true) {
            None => return Vec::new(),
            Some(ElementReads::Whole) => {}
            Some(ElementReads::Members(needs)) => out.push(Unparsed { name: c.name, needs }),
        }
    }
    if !out.iter().any(|u| u.name == SIGN_IN_ACTIVITY) {
        out.retain(|u| u.name != "users");
    }
    out
}

/// The collection of users' sign-in activity, and the member of a user it is joined as.
const SIGN_IN_ACTIVITY: &str = "signInActivity";

/// What a phase-two read brought.
enum Collected {
    /// Items keyed by id, or `null`: left unread and unchanged.
    Tree(Value),
    /// The collection's bytes ([`crate::canon`]), how many items it holds, and the projection the
    /// built-in metrics read ([`Unparsed::needs`]).
    Bytes(crate::canon::Written),
    /// A delta round read in full, as Graph sent it, to be written as bytes once what is joined to
    /// its items is known (sign-in activity to users).
    Round(microsoft::RawDelta),
}

/// Reads a collection of the previous dataprint from the store when the run needs it after all
/// (see [`Lazy`]).
#[async_trait::async_trait]
pub trait LoadPrevious: Send + Sync {
    /// The collection, whole, or with each element keeping only `fields`.
    async fn load(&self, name: &str, fields: Option<&[String]>) -> Result<Option<Value>, String>;
}

/// What a previous run left that this one may build on.
///
/// Its collections are moved, not copied, into the run that reuses them (a fresh collection, or the
/// base a delta round is merged into): the previous and the current dataprint of a large tenant are
/// never both in memory. The change history re-reads the previous dataprint from the store when, and
/// only when, the tenant changed.
#[derive(Debug, Default)]
pub struct Previous {
    collections: std::sync::Mutex<Map<String, Value>>,
    /// Per collector: whether it succeeded, when its collection was last read from Graph, and how
    /// many items it held.
    collectors: HashMap<String, PreviousCollector>,
    pub taken_at: Option<DateTime<Utc>>,
    pub delta_links: HashMap<String, String>,
    /// The previous dataprint's summary: the values of the metrics computed on it.
    summary: Map<String, Value>,
    /// The collections left unread that the run may load when it needs them, and how.
    lazy: Vec<Lazy>,
    loader: Option<std::sync::Arc<dyn LoadPrevious>>,
}

impl std::fmt::Debug for dyn LoadPrevious {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoadPrevious")
    }
}

/// What a previous collector reported.
#[derive(Debug)]
struct PreviousCollector {
    ok: bool,
    at: Option<DateTime<Utc>>,
    items: Option<usize>,
}

impl Previous {
    /// Takes a stored dataprint apart, keeping its collections and what its collectors reported.
    pub fn new(mut dataprint: Value, taken_at: DateTime<Utc>) -> Previous {
        let collections = match dataprint.get_mut("collections").map(Value::take) {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        let mut collectors = HashMap::new();
        if let Some(stable) = dataprint.get("collectors").and_then(Value::as_object) {
            for (name, c) in stable {
                let ok = c.get("status").and_then(Value::as_str) == Some("ok");
                let at = dataprint
                    .pointer(&format!("/run/collectors/{name}/collected_at"))
                    .and_then(Value::as_str)
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.with_timezone(&Utc))
                    .or(Some(taken_at));
                let items = c.get("items").and_then(Value::as_u64).and_then(|n| usize::try_from(n).ok());
                collectors.insert(name.clone(), PreviousCollector { ok, at, items });
            }
        }
        let summary = match dataprint.get_mut("summary").map(Value::take) {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        Previous {
            collections: std::sync::Mutex::new(collections),
            collectors,
            taken_at: Some(taken_at),
            delta_links: HashMap::new(),
            summary,
            lazy: Vec::new(),
            loader: None,
        }
    }

    /// Lets the run load the collections of `lazy` that the store left unread (`null`) when it
    /// needs them, with `loader`. Only a collection its collector read well counts: another is read
    /// again in full, as when it was loaded.
    #[must_use]
    pub fn with_loader(mut self, lazy: &[Lazy], loader: std::sync::Arc<dyn LoadPrevious>) -> Previous {
        let collections = self.collections.lock().unwrap_or_else(|e| e.into_inner());
        let unread: Vec<Lazy> = lazy
            .iter()
            .filter(|l| collections.get(l.name).is_some_and(Value::is_null) && self.was_ok(l.name))
            .cloned()
            .collect();
        drop(collections);
        self.lazy = unread;
        self.loader = Some(loader);
        self
    }

    /// Whether a collection was left unread, to be loaded when needed (see [`Lazy`]).
    fn is_lazy(&self, name: &str) -> bool {
        self.loader.is_some() && self.lazy.iter().any(|l| l.name == name)
    }

    /// A collection left unread, loaded now: whole, or with `fields` of each element.
    async fn load(&self, name: &str, fields: Option<&[String]>) -> Result<Map<String, Value>, String> {
        let Some(loader) = &self.loader else {
            return Err(format!("the previous {name} were not kept"));
        };
        match loader.load(name, fields).await? {
            Some(Value::Object(m)) => Ok(m),
            Some(_) | None => Err(format!("the previous dataprint holds no {name}")),
        }
    }

    /// Moves a collection out; each collector asks for its own at most once.
    fn take(&self, name: &str) -> Option<Map<String, Value>> {
        match self.collections.lock().unwrap_or_else(|e| e.into_inner()).remove(name)? {
            Value::Object(m) => Some(m),
            _ => None,
        }
    }

    /// Moves out a collection the store left unread (`null`, see
    /// [`crate::storage::InspectStore::last_good_dataprint_unread`]), and says whether there was one.
    fn take_unread(&self, name: &str) -> bool {
        let mut collections = self.collections.lock().unwrap_or_else(|e| e.into_inner());
        if collections.get(name).is_some_and(Value::is_null) {
            collections.remove(name);
            return true;
        }
        false
    }

    fn has(&self, name: &str) -> bool {
        self.collections.lock().unwrap_or_else(|e| e.into_inner()).get(name).is_some_and(Value::is_object)
    }

    /// The service plans of the previous licences, for a run that could not read them.
    fn service_plans(&self) -> Option<Vec<String>> {
        service_plans(self.collections.lock().unwrap_or_else(|e| e.into_inner()).get("subscribedSkus"))
    }

    /// When a collection was last read from Graph (carried through reuses).
    fn collected_at(&self, name: &str) -> Option<DateTime<Utc>> {
        self.collectors.get(name).and_then(|c| c.at)
    }

    fn was_ok(&self, name: &str) -> bool {
        self.collectors.get(name).is_some_and(|c| c.ok)
    }

    /// How many items a collection held, as its collector reported.
    fn items(&self, name: &str) -> Option<usize> {
        self.collectors.get(name).and_then(|c| c.items)
    }
}

#[derive(Debug, Clone, Default)]
pub struct ChildOptions {
    /// Read everything again, ignoring freshness and delta links.
    pub full: bool,
    /// Forget the tenant's cached access tokens before starting.
    pub clear_cache: bool,
    pub cloud: Option<String>,
    /// The collections to write from Graph's answers without reading them as trees ([`unparsed`]).
    pub unparsed: Vec<Unparsed>,
}

/// The Graph error code of a read that needs a premium licence the tenant lacks.
const NON_PREMIUM: &str = "Authentication_RequestFromNonPremiumTenantOrB2CTenant";

/// A collector skipped because the tenant lacks its licence.
fn unlicensed(c: &Collector, l: catalog::Licence) -> Outcome {
    Outcome {
        status: OutcomeStatus::Skipped,
        reason: reason("license", format!("{} is not licensed in this tenant", l.label())),
        ..Outcome::new(c)
    }
}

fn reason(kind: &'static str, detail: impl Into<String>) -> Option<Reason> {
    Some(Reason { kind, detail: detail.into() })
}

fn graph_code(e: &Error) -> Option<&str> {
    match e.root() {
        Error::Graph(g) => Some(g.code.as_str()),
        _ => None,
    }
}

/// How many times a full delta round that Graph tells to resync is started again.
const MAX_DELTA_RESTARTS: u32 = 2;

fn is_resync(e: &Error) -> bool {
    match e.root() {
        Error::Graph(g) => {
            g.status == 410 || matches!(g.code.as_str(), "resyncRequired" | "syncStateNotFound" | "SyncStateNotFound")
        }
        _ => false,
    }
}

pub struct Child<'a> {
    pub graph: &'a GraphClient,
    pub clock: &'a dyn Clock,
    pub target: &'a TenantTarget,
    pub previous: &'a Previous,
    pub options: &'a ChildOptions,
    /// The tenant's work permit, set aside while it waits on Graph's pacing; none runs unbounded.
    pub turn: Option<&'a crate::turn::Turn>,
}

impl Child<'_> {
    fn gtarget(&self) -> Target {
        Target { tenant: self.target.tenant_id.to_string(), grant: self.target.grant.clone() }
    }

    fn situation<'s>(
        &'s self,
        collector: Option<&'s Collector>,
        token: Option<&'s AccessToken>,
        plans: Option<&'s [String]>,
    ) -> Situation<'s> {
        Situation {
            tenant_id: self.target.tenant_id.as_str(),
            tenant_name: Some(&self.target.display_name),
            partner_tenant_id: self.target.partner_tenant_id.as_ref().map(TenantId::as_str),
            auth: self.target.auth.diagnose(),
            collector,
            token,
            sign_in: self.target.sign_in.as_ref(),
            gdap: self.target.gdap.as_ref(),
            service_plans: plans,
            cloud: self.options.cloud.as_deref(),
            now: self.clock.now(),
        }
    }

    pub async fn run(&self) -> TenantResult {
        let started = self.clock.now();
        let requests_before = self.graph.requests_for(self.target.tenant_id.as_str());
        if self.options.clear_cache {
            let _ = self.graph.auth.clear_tenant_tokens(self.target.tenant_id.as_str()).await;
        }
        let collectors: Vec<&'static Collector> = catalog::customer_collectors().collect();
        let token = match self.graph.auth.access_token(self.target.tenant_id.as_str(), &self.target.grant).await {
            Ok(t) => t,
            Err(e) => {
                let diagnosis = facts::diagnose(&e, &self.situation(None, None, None));
                let outcomes = collectors
                    .iter()
                    .map(|c| Outcome {
                        status: OutcomeStatus::Skipped,
                        reason: reason("no_token", format!("no token for this tenant: {}", diagnosis.summary)),
                        ..Outcome::new(c)
                    })
                    .collect();
                return TenantResult {
                    target: self.target.clone(),
                    status: Status::Failed,
                    outcomes,
                    dataprint: None,
                    metrics: Vec::new(),
                    diagnosis: Some(diagnosis),
                    token_error: Some(e),
                    token: None,
                    delta_links: Vec::new(),
                    reused: Vec::new(),
                    unread: Vec::new(),
                    unparsed: Vec::new(),
                    started,
                    finished: self.clock.now(),
                    requests: self.graph.requests_for(self.target.tenant_id.as_str()).saturating_sub(requests_before),
                };
            }
        };
        let app_only = matches!(self.target.grant, Grant::App { .. });
        let granted: Vec<String> =
            token.claims.as_ref().map(|c| if app_only { c.roles.clone() } else { c.scp.clone() }).unwrap_or_default();
        let claims_known = token.claims.is_some();
        let mut outcomes: BTreeMap<&'static str, Outcome> = BTreeMap::new();
        let mut collections: Map<String, Value> = Map::new();
        let mut delta_links = Vec::new();
        let now = self.clock.now();

        // Decide, for each collector, whether it is skipped, reused or read.
        let mut to_read: Vec<&'static Collector> = Vec::new();
        for c in &collectors {
            let needed = if app_only { c.application } else { c.delegated };
            if claims_known && !catalog::allowed(&granted, needed) {
                let detail = format!(
                    "the {} for this tenant grants none of {} (it grants {})",
                    if app_only { "app's token" } else { "token" },
                    needed.join(", "),
                    if granted.is_empty() { "nothing".to_string() } else { granted.join(" ") }
                );
                let mut o =
                    Outcome { status: OutcomeStatus::Skipped, reason: reason("permission", detail), ..Outcome::new(c) };
                o.diagnosis =
                    Some(diagnose::diagnose(&facts::facts(None, &self.situation(Some(c), Some(&token), None))));
                outcomes.insert(c.name, o);
                continue;
            }
            // A collection read every run under a condition is decided after the batch, on this
            // run's reads.
            if c.every_run_while.is_none() && self.reuse(c, now, &mut outcomes, &mut collections) {
                continue;
            }
            to_read.push(c);
        }

        // Phase one: the batch of small reads, which includes the licences that gate phase two. A
        // licence-gated read joins it unless the last good dataprint shows the licence missing.
        // The licences this run reuses are already in `collections` (moved out of the previous
        // dataprint); a tenant whose licences are read again falls back on the previous ones.
        let known_plans = service_plans(collections.get("subscribedSkus")).or_else(|| self.previous.service_plans());
        let mut batch: Vec<&'static Collector> = Vec::new();
        for c in to_read.iter().copied().filter(|c| c.fetch.batched()) {
            if let (Some(l), Some(plans)) = (c.licence, &known_plans)
                && !plans.iter().any(|p| p == l.service_plan())
            {
                outcomes.insert(c.name, unlicensed(c, l));
                continue;
            }
            batch.push(c);
        }
        // A delta round that continues from a saved link starts in the same batch: on an unchanged
        // tenant its first page is also its last, so checking users and groups for changes costs no
        // request of its own.
        let deltas: Vec<(&'static Collector, String, String)> = if self.options.full {
            Vec::new()
        } else {
            to_read
                .iter()
                .copied()
                .filter(|c| c.fetch == Fetch::Delta && (self.previous.has(c.name) || self.previous.is_lazy(c.name)))
                .filter_map(|c| {
                    let link = self.previous.delta_links.get(c.name)?;
                    let path = self.graph.batch_path(link).ok()?;
                    Some((c, link.clone(), path))
                })
                .collect()
        };
        let mut first_pages: HashMap<&'static str, (String, Result<Value, Error>)> = HashMap::new();
        if !batch.is_empty() || !deltas.is_empty() {
            let t0 = Instant::now();
            let items: Vec<BatchItem> = batch
                .iter()
                .flat_map(|c| batch_items(c))
                .chain(deltas.iter().map(|(c, _, path)| BatchItem {
                    id: c.name.to_string(),
                    path: path.clone(),
                    headers: vec![],
                }))
                .collect();
            let mut results: HashMap<String, Result<Value, Error>> =
                self.graph.batch(&self.gtarget(), items).await.into_iter().collect();
            let per = t0.elapsed().as_millis() as u64 / results.len().max(1) as u64;
            for (c, link, _) in deltas {
                if let Some(result) = results.remove(c.name) {
                    first_pages.insert(c.name, (link, result));
                }
            }
            for c in &batch {
                let mut o = Outcome { mode: Mode::Batch, duration_ms: per, collected_at: Some(now), ..Outcome::new(c) };
                let read = if c.fetch == Fetch::PerResource {
                    self.per_resource(c, &mut results).await
                } else {
                    let result = results.remove(c.name).unwrap_or_else(|| Err(missing_answer(c.name)));
                    self.follow(result, c.fetch == Fetch::Batch).await
                };
                match read {
                    Ok(items) => {
                        o.items = Some(items.len());
                        collections.insert(c.name.to_string(), keyed(items));
                    }
                    Err(e) if graph_code(&e) == Some(NON_PREMIUM) => {
                        o = Outcome {
                            diagnosis: Some(facts::diagnose(&e, &self.situation(Some(c), Some(&token), None))),
                            ..unlicensed(c, c.licence.unwrap_or(catalog::Licence::P1))
                        };
                    }
                    Err(e) => self.fail(&mut o, c, e, &token, None),
                }
                outcomes.insert(c.name, o);
            }
        }
        // Licences come from this run's read, or the last good one when this run could not read them.
        let plans = service_plans(collections.get("subscribedSkus")).or_else(|| self.previous.service_plans());

        // Phase two: licence-gated and large reads, concurrently (the Graph client keeps each tenant
        // within its limits). Conditional Access allows one request per second per tenant, so reading
        // one collector after another would make every tenant wait on it.
        let mut reads = Vec::new();
        let mut paced = Vec::new();
        for c in to_read.iter().copied().filter(|c| !c.fetch.batched()) {
            // Once the token endpoint refused this tenant (say, a revoked refresh token found while
            // replacing an expired access token), every further read would fail the same way.
            if let Some(d) = outcomes
                .values()
                .find(|o| o.error.as_ref().is_some_and(|e| matches!(e.root(), Error::Token(_))))
                .and_then(|o| o.diagnosis.clone())
            {
                outcomes.insert(
                    c.name,
                    Outcome {
                        status: OutcomeStatus::Skipped,
                        reason: reason("no_token", format!("no token for this tenant: {}", d.summary)),
                        diagnosis: Some(d),
                        ..Outcome::new(c)
                    },
                );
                continue;
            }
            if let (Some(l), Some(plans)) = (c.licence, &plans)
                && !plans.iter().any(|p| p == l.service_plan())
            {
                outcomes.insert(c.name, unlicensed(c, l));
                continue;
            }
            if let Some(condition) = c.every_run_while
                && !condition.holds(&collections)
                && self.reuse(c, now, &mut outcomes, &mut collections)
            {
                continue;
            }
            let first = first_pages.remove(c.name);
            let read = self.read(c, now, &token, plans.as_deref(), first);
            if microsoft::graph::is_paced(c.path) { paced.push(read) } else { reads.push(read) }
        }
        // The paced reads go first: they wait on Graph's clock. A tenant inspected for the first time
        // holds only its batch's small answers until its large reads begin, so it sets its work
        // permit aside meanwhile; one built on a previous dataprint holds that dataprint's
        // collections, and keeps its permit, so that the run's memory stays bounded by its workers.
        let paced = match self.turn {
            Some(turn) if !paced.is_empty() && self.previous.taken_at.is_none() => {
                turn.aside(futures::future::join_all(paced)).await
            }
            _ => futures::future::join_all(paced).await,
        };
        let read = futures::future::join_all(reads).await;
        let mut unparsed: Vec<store::UnparsedCollection> = Vec::new();
        let mut projections: Vec<(&'static str, Value)> = Vec::new();
        let mut rounds = Vec::new();
        for (c, o, items, links) in paced.into_iter().chain(read) {
            match items {
                Some(Collected::Tree(items)) => {
                    collections.insert(c.name.to_string(), items);
                }
                // Its place in the dataprint stays empty; the store takes the bytes.
                Some(Collected::Bytes((json, _, projection))) => {
                    collections.insert(c.name.to_string(), Value::Null);
                    unparsed.push(store::UnparsedCollection { name: c.name.to_string(), json: json.into() });
                    projections.extend(projection.map(|p| (c.name, p)));
                }
                Some(Collected::Round(round)) => {
                    collections.insert(c.name.to_string(), Value::Null);
                    rounds.push((c, round));
                }
                None => {}
            }
            delta_links.extend(links);
            outcomes.insert(c.name, o);
        }
        // Delta rounds read in full are written now that this run's sign-in activity, joined to the
        // users, is known. One that cannot be is a failed read: no collection, and no link to lead
        // on from it.
        for (c, round) in rounds {
            match write_round(c, &round, &collections, &unparsed, self.needs(c)) {
                Ok((json, n, projection)) => {
                    if let Some(o) = outcomes.get_mut(c.name) {
                        o.items = Some(n);
                    }
                    unparsed.push(store::UnparsedCollection { name: c.name.to_string(), json: json.into() });
                    projections.extend(projection.map(|p| (c.name, p)));
                }
                Err(e) => {
                    collections.remove(c.name);
                    delta_links.retain(|(name, _)| name != c.name);
                    if let Some(o) = outcomes.get_mut(c.name) {
                        self.fail(o, c, e, &token, plans.as_deref());
                    }
                }
            }
        }
        // Sign-in activity written unparsed is joined as a tree to users that are trees, or left
        // unread and to be loaded for it, and is then left to the store as bytes again.
        let mut activity_lent = false;
        if !unparsed.iter().any(|u| u.name == "users")
            && collections.contains_key("users")
            && let Some(u) = unparsed.iter().find(|u| u.name == SIGN_IN_ACTIVITY)
        {
            match serde_json::from_slice::<Value>(&u.json) {
                Ok(tree) => {
                    collections.insert(SIGN_IN_ACTIVITY.into(), tree);
                    activity_lent = true;
                }
                Err(e) => {
                    tracing::warn!(tenant = %self.target.tenant_id, error = %e, "the sign-in activity read cannot be joined to the users")
                }
            }
        }
        // Application permissions are named, and Microsoft's own apps left out, with the service
        // principals read in the same batch.
        if let Some(n) = name_app_permissions(&mut collections)
            && let Some(o) = outcomes.get_mut("appRoleAssignments")
        {
            o.items = Some(n);
        }

        // Users left unread are loaded to join sign-in activity read afresh.
        if collections.get("users").is_some_and(Value::is_null)
            && collections.get("signInActivity").is_some_and(Value::is_object)
        {
            match self.previous.load("users", None).await {
                Ok(users) => {
                    collections.insert("users".into(), Value::Object(users));
                }
                // The users stay as stored, joined with the activity of an earlier read, which the
                // next run joins again; the activity read now is stored as read.
                Err(e) => {
                    tracing::warn!(tenant = %self.target.tenant_id, error = %e, "the previous users could not be loaded to join sign-in activity")
                }
            }
        }
        // Sign-in activity is not available through delta, so it is read apart and joined to users.
        if merge_sign_in_activity(&mut collections)
            && let Some(o) = outcomes.get_mut("users")
        {
            o.unchanged = false;
        }
        if activity_lent {
            collections.insert(SIGN_IN_ACTIVITY.into(), Value::Null);
        }

        let unread: Vec<String> = collections
            .iter()
            .filter(|(k, v)| v.is_null() && !unparsed.iter().any(|u| u.name == **k))
            .map(|(k, _)| k.clone())
            .collect();
        let ordered: Vec<Outcome> = collectors.iter().filter_map(|c| outcomes.remove(c.name)).collect();
        let any_data = ordered.iter().any(|o| o.status == OutcomeStatus::Ok);
        let any_problem = ordered.iter().any(Outcome::is_access_problem);
        let status = if !any_data {
            Status::Failed
        } else if any_problem {
            Status::Partial
        } else {
            Status::Ok
        };
        let diagnosis = tenant_diagnosis_for(&ordered, Some(self.target), Side::Customer);
        let finished = self.clock.now();
        let mut dataprint = any_data.then(|| self.dataprint(status, &ordered, collections, started, finished, &token));
        // A collection left unread that a metric measuring time reads is loaded with only what that
        // metric reads of each element while the summary is computed, and left unread again.
        let mut projected = Vec::new();
        if let Some(d) = dataprint.as_mut() {
            for l in self.previous.lazy.iter().filter(|l| unread.iter().any(|u| u == l.name)) {
                let Some(fields) = &l.fields else { continue };
                match self.previous.load(l.name, Some(fields)).await {
                    Ok(collection) => {
                        if let Some(slot) = d.get_mut("collections").and_then(|c| c.get_mut(l.name)) {
                            *slot = Value::Object(collection);
                            projected.push(l.name);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(tenant = %self.target.tenant_id, collection = l.name, error = %e, "the metrics that measure time on a collection left unread are not computed")
                    }
                }
            }
        }
        // A collection written unparsed that built-in metrics read is there for them the same way,
        // projected as it was written.
        if let Some(d) = dataprint.as_mut() {
            for (name, collection) in projections {
                if let Some(slot) = d.get_mut("collections").and_then(|c| c.get_mut(name)) {
                    *slot = collection;
                    projected.push(name);
                }
            }
        }
        // The metrics that only count it keep their earlier values, as for any collection left
        // unread (`Kept`); those that measure time are computed on the projection.
        let kept = dataprint::Kept { unread: &unread, previous: &self.previous.summary };
        let metrics = dataprint.as_mut().map(|d| dataprint::summarize(d, finished, Some(kept))).unwrap_or_default();
        if let Some(d) = dataprint.as_mut() {
            for name in &projected {
                if let Some(slot) = d.get_mut("collections").and_then(|c| c.get_mut(*name)) {
                    *slot = Value::Null;
                }
            }
        }
        let reused = match &dataprint {
            Some(_) => ordered
                .iter()
                .filter(|o| o.status == OutcomeStatus::Ok && (o.mode == Mode::Reused || o.unchanged))
                .map(|o| o.name.to_string())
                .collect(),
            None => Vec::new(),
        };
        let unread = if dataprint.is_some() { unread } else { Vec::new() };
        let unparsed = if dataprint.is_some() { unparsed } else { Vec::new() };
        TenantResult {
            target: self.target.clone(),
            status,
            outcomes: ordered,
            dataprint,
            metrics,
            diagnosis,
            token_error: None,
            token: Some(token),
            delta_links,
            reused,
            unread,
            unparsed,
            started,
            finished,
            requests: self.graph.requests_for(self.target.tenant_id.as_str()).saturating_sub(requests_before),
        }
    }

    /// One phase-two read: its outcome, its items keyed by id when it succeeded, and the delta links
    /// it got.
    async fn read<'c>(
        &self,
        c: &'c Collector,
        now: DateTime<Utc>,
        token: &AccessToken,
        plans: Option<&[String]>,
        first_page: Option<(String, Result<Value, Error>)>,
    ) -> (&'c Collector, Outcome, Option<Collected>, Vec<(String, String)>) {
        let t0 = Instant::now();
        let mut o = Outcome { collected_at: Some(now), ..Outcome::new(c) };
        let mut links = Vec::new();
        let result = match c.fetch {
            Fetch::Delta => self.delta(c, &mut o, &mut links, first_page).await,
            Fetch::List => {
                o.mode = Mode::Paged;
                let cap = if c.name == "signIns" { Some(1000) } else { None };
                if self.options.unparsed.iter().any(|u| u.name == c.name) {
                    self.list_unparsed(c, cap).await
                } else {
                    self.list(c.path, cap).await.map(keyed).map(Collected::Tree)
                }
            }
            Fetch::Batch | Fetch::Latest | Fetch::PerResource | Fetch::PerRelationship => {
                Ok(Collected::Tree(Value::Object(Map::new())))
            }
        };
        o.duration_ms = t0.elapsed().as_millis() as u64;
        let mut items = None;
        match result {
            // Left unread and unchanged: as many items as before.
            Ok(Collected::Tree(Value::Null)) => {
                o.items = self.previous.items(c.name);
                items = Some(Collected::Tree(Value::Null));
            }
            Ok(Collected::Tree(read)) => {
                o.items = Some(read.as_object().map_or(0, Map::len));
                items = Some(Collected::Tree(read));
            }
            Ok(Collected::Bytes(written)) => {
                o.items = Some(written.1);
                items = Some(Collected::Bytes(written));
            }
            // Counted once written (`write_round`).
            Ok(Collected::Round(round)) => items = Some(Collected::Round(round)),
            Err(e) if graph_code(&e) == Some(NON_PREMIUM) => {
                o.status = OutcomeStatus::Skipped;
                o.reason = reason(
                    "license",
                    format!(
                        "{} is not licensed in this tenant (Graph said so)",
                        c.licence.map_or("A premium licence", |l| l.label())
                    ),
                );
                o.diagnosis = Some(facts::diagnose(&e, &self.situation(Some(c), Some(token), plans)));
            }
            Err(e) => self.fail(&mut o, c, e, token, plans),
        }
        (c, o, items, links)
    }

    fn fail(&self, o: &mut Outcome, c: &Collector, e: Error, token: &AccessToken, plans: Option<&[String]>) {
        o.status = OutcomeStatus::Failed;
        o.diagnosis = Some(facts::diagnose(&e, &self.situation(Some(c), Some(token), plans)));
        o.error = Some(e);
    }

    /// The items of a batch answer, following its nextLink when the collection has more pages and
    /// `more` asks for them.
    async fn follow(&self, result: Result<Value, Error>, more: bool) -> Result<Vec<Value>, Error> {
        let mut body = result?;
        // The items are moved out of the answer, not copied; an answer that is not a page is one item.
        let mut items = match body.get_mut("value") {
            Some(Value::Array(items)) => std::mem::take(items),
            _ => return Ok(vec![body]),
        };
        if more && let Some(next) = body.get("@odata.nextLink").and_then(Value::as_str) {
            items.extend(self.graph.list(&self.gtarget(), next, Vec::new()).await?);
        }
        Ok(items)
    }

    async fn list(&self, path: &str, cap: Option<usize>) -> Result<Vec<Value>, Error> {
        use futures::StreamExt;
        let target = self.gtarget();
        let mut pages = std::pin::pin!(self.graph.pages(&target, path, Vec::new()));
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            out.extend(page?.items);
            if cap.is_some_and(|c| out.len() >= c) {
                out.truncate(cap.unwrap_or(usize::MAX));
                break;
            }
        }
        Ok(out)
    }

    /// What the built-in metrics read of a collection written unparsed ([`Unparsed::needs`]).
    fn needs(&self, c: &Collector) -> Option<&BTreeMap<String, history::Need>> {
        self.options.unparsed.iter().find(|u| u.name == c.name).and_then(|u| u.needs.as_ref())
    }

    /// [`Child::list`], written as the collection's bytes without building trees ([`crate::canon`]).
    async fn list_unparsed(&self, c: &Collector, cap: Option<usize>) -> Result<Collected, Error> {
        use futures::StreamExt;
        let target = self.gtarget();
        let mut pages = std::pin::pin!(self.graph.raw_pages(&target, c.path, Vec::new()));
        let mut keyed = keyed_for(self.needs(c));
        let full = |k: &crate::canon::Keyed| cap.is_some_and(|c| k.pushed() >= c);
        while let Some(page) = pages.next().await {
            let page = page?;
            keyed.reserve(page.body_len());
            for item in page.items() {
                if full(&keyed) {
                    break;
                }
                keyed.push(item).map_err(|e| Error::Protocol {
                    url: c.path.to_string(),
                    message: format!("an item of the collection cannot be read ({e})"),
                })?;
            }
            if full(&keyed) {
                break;
            }
        }
        Ok(Collected::Bytes(keyed.finish()))
    }

    /// A delta round from the saved link, merged into the previous collection; a full round when there
    /// is no link, no previous collection, or the link has expired. Either way the collection keyed
    /// by id.
    async fn delta(
        &self,
        c: &Collector,
        o: &mut Outcome,
        links: &mut Vec<(String, String)>,
        first_page: Option<(String, Result<Value, Error>)>,
    ) -> Result<Collected, Error> {
        let target = self.gtarget();
        let link = if self.options.full { None } else { self.previous.delta_links.get(c.name) };
        let lazy = self.previous.is_lazy(c.name);
        // With nothing to merge into or keep from, a round read in full can be written unparsed.
        let unparsed = self.options.unparsed.iter().any(|u| u.name == c.name) && !lazy && !self.previous.has(c.name);
        if let Some(link) = link
            && (self.previous.has(c.name) || lazy)
        {
            let round = match first_page {
                Some((link, Ok(page))) => self.graph.delta_from_page(&target, &link, page).await,
                Some((_, Err(e))) => Err(e),
                None => self.graph.delta(&target, link).await,
            };
            match round {
                // Left unread and unchanged, the collection stays unread: the store carries it over.
                Ok(d) if lazy && d.removed.is_empty() && d.changed.is_empty() => {
                    o.mode = Mode::Delta;
                    o.unchanged = true;
                    links.push((c.name.to_string(), d.delta_link));
                    return Ok(Collected::Tree(Value::Null));
                }
                Ok(d) => {
                    // Left unread, it is loaded now to merge the changes into; when it cannot be,
                    // the full round below reads it again.
                    let base = if lazy {
                        self.previous
                            .load(c.name, None)
                            .await
                            .inspect_err(|e| tracing::warn!(tenant = %self.target.tenant_id, collection = c.name, error = %e, "the previous collection could not be loaded; reading it in full"))
                            .ok()
                    } else {
                        Some(self.previous.take(c.name).unwrap_or_default())
                    };
                    // The previous collection is changed in place rather than rebuilt as a tree twice
                    // (once to merge, once to key it again).
                    if let Some(mut merged) = base {
                        o.mode = Mode::Delta;
                        // Sign-in activity is joined again from this run's read, and may still change
                        // the users (`merge_sign_in_activity`).
                        o.unchanged = d.removed.is_empty() && d.changed.is_empty();
                        for id in &d.removed {
                            merged.remove(id);
                        }
                        for item in d.changed {
                            if let Some(id) = item.get("id").and_then(Value::as_str) {
                                let id = id.to_string();
                                let mut item = canonical(item);
                                keep_sign_in_activity(&mut item, merged.get(&id));
                                merged.insert(id, item);
                            }
                        }
                        links.push((c.name.to_string(), d.delta_link));
                        return Ok(Collected::Tree(Value::Object(merged)));
                    }
                }
                Err(e) if is_resync(&e) => {
                    tracing::info!(tenant = %self.target.tenant_id, collection = c.name, "delta link expired; reading in full")
                }
                Err(e) => return Err(e),
            }
        }
        o.mode = Mode::Full;
        if unparsed {
            let d = self.full_round(c, || self.graph.delta_raw(&target, c.path)).await?;
            links.push((c.name.to_string(), d.delta_link.clone()));
            return Ok(Collected::Round(d));
        }
        let d = self.full_round(c, || self.graph.delta(&target, c.path)).await?;
        links.push((c.name.to_string(), d.delta_link));
        let mut items = keyed(d.changed);
        // Left unread, the previous collection is loaded with only what a user keeps from it.
        let before = if lazy {
            self.previous.load(c.name, Some(&["signInActivity".to_string()])).await.ok()
        } else {
            self.previous.take(c.name)
        };
        if let (Some(fresh), Some(before)) = (items.as_object_mut(), before) {
            for (id, item) in fresh.iter_mut() {
                keep_sign_in_activity(item, before.get(id));
            }
        }
        Ok(Collected::Tree(items))
    }

    /// A full delta round, `round`. It can itself be told to resync: Graph loses the sync state of a
    /// round in progress, or a retried last page meets a state it already consumed. The round starts
    /// again from the beginning, a bounded number of times, before the collector fails.
    async fn full_round<T, F: std::future::Future<Output = Result<T, Error>>>(
        &self,
        c: &Collector,
        round: impl Fn() -> F,
    ) -> Result<T, Error> {
        let mut restarts = 0;
        loop {
            match round().await {
                Err(e) if is_resync(&e) && restarts < MAX_DELTA_RESTARTS => {
                    restarts += 1;
                    tracing::info!(tenant = %self.target.tenant_id, collection = c.name, restarts, "delta round told to resync; starting it again");
                }
                other => return other,
            }
        }
    }

    /// Reuses the previous run's collection when it was read well and inside its window; says
    /// whether it did.
    fn reuse(
        &self,
        c: &'static Collector,
        now: DateTime<Utc>,
        outcomes: &mut BTreeMap<&'static str, Outcome>,
        collections: &mut Map<String, Value>,
    ) -> bool {
        if !self.options.full
            && c.fresh_minutes > 0
            && self.previous.was_ok(c.name)
            && let Some(at) = self.previous.collected_at(c.name)
            && now - at < Duration::minutes(i64::from(c.fresh_minutes))
        {
            let (value, items) = if self.previous.take_unread(c.name) {
                // Nothing in this run reads it: it stays `null`, and the store carries it over from
                // the previous dataprint (`TenantResult::unread`).
                (Value::Null, self.previous.items(c.name))
            } else if let Some(prev) = self.previous.take(c.name) {
                let n = prev.len();
                (Value::Object(prev), Some(n))
            } else {
                return false;
            };
            outcomes.insert(c.name, Outcome { items, mode: Mode::Reused, collected_at: Some(at), ..Outcome::new(c) });
            collections.insert(c.name.to_string(), value);
            return true;
        }
        false
    }

    /// What was granted of each API in [`catalog::PERMISSION_RESOURCES`], from the batch's answers.
    /// An API without a service principal in the tenant answers 404 and granted nothing; any other
    /// failure fails the collector, so that a partial list is never taken for the whole.
    async fn per_resource(
        &self,
        c: &Collector,
        results: &mut HashMap<String, Result<Value, Error>>,
    ) -> Result<Vec<Value>, Error> {
        let mut out = Vec::new();
        for item in batch_items(c) {
            let result = results.remove(&item.id).unwrap_or_else(|| Err(missing_answer(&item.id)));
            match self.follow(result, true).await {
                Ok(items) => out.extend(items),
                Err(e) if graph_code(&e) == Some("Request_ResourceNotFound") => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    fn dataprint(
        &self,
        status: Status,
        outcomes: &[Outcome],
        collections: Map<String, Value>,
        started: DateTime<Utc>,
        finished: DateTime<Utc>,
        token: &AccessToken,
    ) -> Value {
        let mut stable = Map::new();
        let mut volatile = Map::new();
        for o in outcomes {
            let mut s = json!({ "status": o.status });
            if let Some(n) = o.items {
                s["items"] = json!(n);
            }
            // How long the collection stays fresh before a run reads it again (0: every run), so
            // that a reader of the dataprint knows how old each collection may be.
            if let Some(c) = catalog::find(Side::Customer, o.name) {
                s["fresh_minutes"] = json!(c.fresh_minutes);
                if let Some(condition) = c.every_run_while {
                    s["every_run_while"] = json!(condition);
                }
            }
            if let Some(r) = &o.reason {
                s["reason"] = json!({ "kind": r.kind, "detail": r.detail });
            }
            // A collector skipped for a missing licence is skipped alike whether the run learnt it
            // from Graph's refusal or from the licences it knew already; only a refusal comes with a
            // diagnosis, which is therefore the run's, not the tenant's. In the stable part it made
            // the first run after a refusal store a new dataprint of an unchanged tenant.
            let learnt = o.reason.as_ref().is_some_and(|r| r.kind == "license");
            let diagnosis = o
                .diagnosis
                .as_ref()
                .map(|d| json!({ "cause": d.cause, "summary": d.summary, "fix": d.fix, "check": d.check }));
            if let Some(d) = diagnosis.clone().filter(|_| !learnt) {
                s["diagnosis"] = d;
            }
            if let Some(e) = &o.error {
                s["error"] = stable_error(e);
            }
            stable.insert(o.name.to_string(), s);
            let mut v = json!({ "mode": o.mode, "requests": o.requests, "duration_ms": o.duration_ms });
            if let Some(at) = o.collected_at {
                v["collected_at"] = json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            }
            if let Some(e) = &o.error {
                v["error"] = serde_json::to_value(e).unwrap_or(Value::Null);
            }
            if let Some(d) = &o.diagnosis {
                v["evidence"] = serde_json::to_value(&d.evidence).unwrap_or(Value::Null);
            }
            if let Some(d) = diagnosis.filter(|_| learnt) {
                v["diagnosis"] = d;
            }
            volatile.insert(o.name.to_string(), v);
        }
        // `json!` serializes the values it is given, a deep copy; the collections, the bulk of a
        // dataprint, are moved in afterwards instead.
        let mut dataprint = json!({
            "schema": dataprint::SCHEMA,
            "tenant": {
                "id": self.target.tenant_id,
                "display_name": self.target.display_name,
                "domain": self.target.domain,
                "role": "customer",
            },
            "auth": self.target.auth.as_str(),
            "status": status.as_str(),
            "collectors": Value::Object(stable),
            "summary": null,
            "collections": null,
            "run": {
                "started_at": started.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "finished_at": finished.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "token_issued_at": token.issued_at,
                "collectors": Value::Object(volatile),
            },
        });
        dataprint["collections"] = Value::Object(collections);
        dataprint
    }
}

/// The parts of an error that identify the failure, without the ids and times that change per request.
pub fn stable_error(e: &Error) -> Value {
    match e.root() {
        Error::Token(t) => json!({ "kind": "token", "status": t.status, "error": t.error, "codes": t.error_codes }),
        Error::Graph(g) => {
            json!({ "kind": "graph", "status": g.status, "code": g.code, "inner_code": g.inner_code, "message": g.message })
        }
        Error::Transport(t) => json!({ "kind": "transport", "transport": t.kind }),
        Error::HostNotAllowed { .. } => json!({ "kind": "host_not_allowed" }),
        Error::Protocol { message, .. } => json!({ "kind": "protocol", "message": message }),
        other => json!({ "kind": "other", "message": other.to_string() }),
    }
}

/// The service plan names of a `subscribedSkus` collection.
pub fn service_plans(skus: Option<&Value>) -> Option<Vec<String>> {
    let skus = skus?.as_object()?;
    let mut plans: Vec<String> = skus
        .values()
        .flat_map(|s| s.get("servicePlans").and_then(Value::as_array).cloned().unwrap_or_default())
        .filter_map(|p| p.get("servicePlanName").and_then(Value::as_str).map(str::to_string))
        .collect();
    plans.sort();
    plans.dedup();
    Some(plans)
}

/// The batch items of a batched collector: one, or one per API for [`Fetch::PerResource`].
fn batch_items(c: &Collector) -> Vec<BatchItem> {
    if c.fetch == Fetch::PerResource {
        catalog::PERMISSION_RESOURCES
            .iter()
            .map(|(app_id, _)| BatchItem {
                id: format!("{}/{app_id}", c.name),
                path: c.path.replace("{appId}", app_id),
                headers: vec![],
            })
            .collect()
    } else {
        vec![BatchItem { id: c.name.to_string(), path: c.path.to_string(), headers: vec![] }]
    }
}

/// A batch answer that never came (the response left an item out).
fn missing_answer(id: &str) -> Error {
    Error::Protocol { url: "$batch".into(), message: format!("the batch response has no answer for {id}") }
}

/// Keeps, of the application permissions read, those held by service principals (app roles can also
/// be granted to users and groups, which is not an application permission) of apps not published by
/// Microsoft, and names each by its value (`User.Read.All`) from the resource's app roles. Returns how
/// many remain, or `None` when they were not read.
fn name_app_permissions(collections: &mut Map<String, Value>) -> Option<usize> {
    // The service principals are lifted out while the assignments are changed, rather than copied.
    let principals = collections.remove("servicePrincipals");
    let named = name_with(collections, principals.as_ref().and_then(Value::as_object));
    if let Some(principals) = principals {
        collections.insert("servicePrincipals".into(), principals);
    }
    named
}

/// [`name_app_permissions`] with the service principals apart from the collections.
fn name_with(collections: &mut Map<String, Value>, sps: Option<&Map<String, Value>>) -> Option<usize> {
    let empty = Map::new();
    let sps = sps.unwrap_or(&empty);
    let roles: HashMap<(&str, &str), &str> = sps
        .iter()
        .flat_map(|(id, sp)| {
            sp.get("appRoles")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(move |r| Some(((id.as_str(), r.get("id")?.as_str()?), r.get("value")?.as_str()?)))
        })
        .collect();
    let assignments = collections.get_mut("appRoleAssignments")?.as_object_mut()?;
    assignments.retain(|_, a| {
        let principal = a.get("principalId").and_then(Value::as_str).and_then(|p| sps.get(p));
        let owner = principal.and_then(|p| p.get("appOwnerOrganizationId")).and_then(Value::as_str);
        a.get("principalType").and_then(Value::as_str).is_none_or(|t| t == "ServicePrincipal")
            && owner != Some(MICROSOFT_TENANT)
    });
    for a in assignments.values_mut() {
        let key = (
            a.get("resourceId").and_then(Value::as_str).unwrap_or_default(),
            a.get("appRoleId").and_then(Value::as_str).unwrap_or_default(),
        );
        if let Some(value) = roles.get(&key).map(|v| v.to_string()) {
            a["appRoleValue"] = json!(value);
            *a = canonical(a.take());
        }
    }
    Some(assignments.len())
}

/// Gives a user read again from Graph (which reads users without their sign-in activity) the
/// activity joined to it before, until [`merge_sign_in_activity`] joins this run's.
/// A delta round read in full written as the collection's bytes: the items Graph did not mark
/// removed, and for users the sign-in activity of this run joined to each, as
/// [`merge_sign_in_activity`] joins it to users built as trees: none when the activity was not read,
/// what each user holds when it was carried over unread.
fn write_round(
    c: &Collector,
    round: &microsoft::RawDelta,
    collections: &Map<String, Value>,
    unparsed: &[store::UnparsedCollection],
    needs: Option<&BTreeMap<String, history::Need>>,
) -> Result<crate::canon::Written, Error> {
    let protocol = |e: serde_json::Error| Error::Protocol {
        url: c.path.to_string(),
        message: format!("an item of the collection cannot be read ({e})"),
    };
    let from_tree: Vec<u8>;
    let join = match (c.name, unparsed.iter().find(|u| u.name == SIGN_IN_ACTIVITY), collections.get(SIGN_IN_ACTIVITY)) {
        ("users", Some(u), _) => {
            Some(crate::canon::Join::from_collection(SIGN_IN_ACTIVITY, &u.json).map_err(protocol)?)
        }
        ("users", None, None) => Some(crate::canon::Join::none(SIGN_IN_ACTIVITY)),
        ("users", None, Some(activity)) if !activity.is_null() => {
            from_tree = serde_json::to_vec(activity).map_err(protocol)?;
            Some(crate::canon::Join::from_collection(SIGN_IN_ACTIVITY, &from_tree).map_err(protocol)?)
        }
        _ => None,
    };
    let mut keyed = keyed_for(needs);
    keyed.reserve(round.pages.iter().map(microsoft::RawPage::body_len).sum());
    for page in &round.pages {
        for item in page.items() {
            keyed.push_round(item, join.as_ref()).map_err(protocol)?;
        }
    }
    Ok(keyed.finish())
}

/// A collection to write unparsed, projected for the built-in metrics when they read it.
fn keyed_for(needs: Option<&BTreeMap<String, history::Need>>) -> crate::canon::Keyed {
    match needs {
        Some(needs) => crate::canon::Keyed::projecting(needs.clone()),
        None => crate::canon::Keyed::new(),
    }
}

fn keep_sign_in_activity(item: &mut Value, before: Option<&Value>) {
    if let (Some(a), Some(u)) = (before.and_then(|b| b.get("signInActivity")), item.as_object_mut())
        && !u.contains_key("signInActivity")
    {
        u.insert("signInActivity".into(), a.clone());
    }
}

/// Joins each user's sign-in activity of this run to the users, and says whether that changed any.
///
/// Activity carried over unread (`null`, see [`unread_from_previous`]) is the collection the
/// previous users were joined with, and each user read again kept its join from them
/// ([`keep_sign_in_activity`]): the join stands as it is.
fn merge_sign_in_activity(collections: &mut Map<String, Value>) -> bool {
    if collections.get("signInActivity").is_some_and(Value::is_null) {
        return false;
    }
    // The activity collection is lifted out while the users are changed, rather than copied: on a large
    // tenant it holds an object per user.
    let activity = collections.remove("signInActivity");
    let by_id = activity.as_ref().and_then(Value::as_object);
    let mut changed = false;
    if let Some(users) = collections.get_mut("users").and_then(Value::as_object_mut) {
        for (id, user) in users.iter_mut() {
            let Some(u) = user.as_object_mut() else { continue };
            // A user keeps the activity of this run's read, or none: an unchanged user of a delta
            // round still holds the previous run's join, which is compared rather than rebuilt so
            // that an unchanged tenant's users are known to be unchanged.
            match by_id.and_then(|m| m.get(id)).and_then(|a| a.get("signInActivity")) {
                Some(a) => {
                    let a = canonical(a.clone());
                    if u.get("signInActivity") != Some(&a) {
                        u.insert("signInActivity".into(), a);
                        changed = true;
                    }
                }
                None => changed |= u.remove("signInActivity").is_some(),
            }
        }
    }
    if let Some(activity) = activity {
        collections.insert("signInActivity".into(), activity);
    }
    changed
}

/// The tenant's diagnosis: the cause most of its failing collectors share. Its summary says what
/// the tenant lacks as a whole: for missing permissions and roles, every one of them, each with the
/// collectors it blocks, not only the first collector's.
pub fn tenant_diagnosis(outcomes: &[Outcome]) -> Option<diagnose::Diagnosis> {
    tenant_diagnosis_for(outcomes, None, Side::Customer)
}

/// [`tenant_diagnosis`], knowing how the tenant is reached (`app_only`) and its name, so that the
/// aggregated summary names the right permissions.
pub fn tenant_diagnosis_for(
    outcomes: &[Outcome],
    target: Option<&TenantTarget>,
    side: Side,
) -> Option<diagnose::Diagnosis> {
    let problems: Vec<(&Outcome, &diagnose::Diagnosis)> =
        outcomes.iter().filter(|o| o.is_access_problem()).filter_map(|o| Some((o, o.diagnosis.as_ref()?))).collect();
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    for (_, d) in &problems {
        *counts.entry(d.cause.id()).or_default() += 1;
    }
    let best = counts.iter().max_by_key(|(_, n)| **n).map(|(c, _)| *c)?;
    let sharing: Vec<&Outcome> = problems.iter().filter(|(_, d)| d.cause.id() == best).map(|(o, _)| *o).collect();
    let mut d = problems.iter().find(|(_, d)| d.cause.id() == best).map(|(_, d)| (*d).clone())?;
    let app_only = target.is_some_and(|t| matches!(t.grant, Grant::App { .. }));
    let tenant = target.map_or_else(|| "this tenant".to_string(), |t| t.display_name.clone());
    // What each blocked collector lacks, grouped: permission -> collectors, or role -> collectors.
    let mut lacks: Vec<(String, Vec<&'static str>)> = Vec::new();
    let mut add = |what: String, collector: &'static str| match lacks.iter_mut().find(|(w, _)| *w == what) {
        Some((_, names)) => names.push(collector),
        None => lacks.push((what, vec![collector])),
    };
    match best {
        "permission_missing" | "token_cache_stale" => {
            for o in &sharing {
                if let Some(c) = catalog::find(side, o.name)
                    && let Some(p) = (if app_only { c.application } else { c.delegated }).first()
                {
                    add(p.to_string(), c.name);
                }
            }
        }
        "gdap_role_missing" => {
            for o in &sharing {
                if let Some(c) = catalog::find(side, o.name)
                    && let Some(r) = c.roles.iter().find(|r| vocab::role(r).is_some_and(|x| x.read_only))
                {
                    add(catalog::roles::name(r).to_string(), c.name);
                }
            }
        }
        _ => {}
    }
    if !lacks.is_empty() {
        let parts: Vec<String> = lacks.iter().map(|(what, names)| format!("{what} ({})", names.join(", "))).collect();
        let list = match parts.as_slice() {
            [one] => one.clone(),
            [init @ .., last] => format!("{} and {last}", init.join(", ")),
            [] => String::new(),
        };
        d.summary = match best {
            "gdap_role_missing" => {
                format!("The partner user's GDAP roles in {tenant} do not include the role these reads need: {list}.")
            }
            "token_cache_stale" => format!(
                "The cached token for {tenant} was issued before its consent changed and lacks {list}; a fresh token carries them."
            ),
            _ if app_only => format!("{tenant}'s own app is not granted {list}."),
            _ => format!("The consent of tenantscope's app in {tenant} lacks {list}."),
        };
        let name = if best == "gdap_role_missing" {
            "missing roles (collectors they block)"
        } else {
            "missing permissions (collectors they block)"
        };
        d.evidence.retain(|e| e.name != name);
        d.evidence.insert(0, diagnose::Evidence::new(name, parts.join("; ")));
    }
    Some(d)
}

/// Collectors of the catalog on one side, for `permissions` and reports.
pub fn collectors(side: Side) -> Vec<&'static Collector> {
    catalog::CATALOG.iter().filter(|c| c.side == side).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored() -> Value {
        json!({
            "collectors": {
                "users": {"status": "ok"},
                "groups": {"status": "failed"},
                "domains": {"status": "ok"},
            },
            "collections": {
                "users": {"u1": {"id": "u1"}, "u2": {"id": "u2"}},
                "domains": {"contoso.com": {"id": "contoso.com"}},
                "subscribedSkus": {"s": {"servicePlans": [{"servicePlanName": "AAD_PREMIUM"}]}},
            },
            "run": {"collectors": {"users": {"collected_at": "2026-11-01T10:00:00.000Z"}}},
        })
    }

    /// Answers every load with the collection it was given, projected as asked, and counts them.
    struct Loader(Value, std::sync::atomic::AtomicUsize);

    #[async_trait::async_trait]
    impl LoadPrevious for Loader {
        async fn load(&self, name: &str, fields: Option<&[String]>) -> Result<Option<Value>, String> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let c = self.0.get(name).cloned();
            Ok(match fields {
                Some(f) => c.map(|c| store::project_collection(c, f)),
                None => c,
            })
        }
    }

    #[tokio::test]
    async fn only_a_collection_read_well_and_left_unread_is_loaded_later() {
        let mut left = stored();
        for name in ["users", "groups"] {
            left["collections"][name] = Value::Null;
        }
        let whole = stored()["collections"].clone();
        let loader = std::sync::Arc::new(Loader(whole, Default::default()));
        let lazy = vec![
            Lazy { name: "users", fields: Some(vec!["id".into()]) },
            Lazy { name: "groups", fields: None },
            Lazy { name: "devices", fields: None },
        ];
        let previous = Previous::new(left, Utc::now()).with_loader(&lazy, loader.clone());
        assert!(previous.is_lazy("users"), "read well, and left unread");
        assert!(!previous.is_lazy("groups"), "its collector failed: read again in full");
        assert!(!previous.is_lazy("devices"), "not in the dataprint");
        assert!(!previous.has("users"));
        assert_eq!(previous.load("users", None).await.map(|u| u.len()), Ok(2));
        assert_eq!(
            previous.load("users", Some(&["nothing".to_string()])).await,
            Ok(serde_json::from_value(json!({"u1": {}, "u2": {}})).unwrap_or_default())
        );
        assert!(previous.load("devices", None).await.is_err(), "nothing to load");
        assert_eq!(loader.1.load(std::sync::atomic::Ordering::SeqCst), 3);
        // A previous dataprint without a loader has nothing to load.
        assert!(!Previous::new(stored(), Utc::now()).is_lazy("users"));
    }

    #[test]
    fn previous_keeps_outcomes_and_moves_collections_out_once() {
        let taken = DateTime::parse_from_rfc3339("2026-11-02T10:00:00Z").map(|t| t.with_timezone(&Utc)).ok();
        let previous = Previous::new(stored(), taken.unwrap_or_default());
        assert!(previous.was_ok("users") && !previous.was_ok("groups") && !previous.was_ok("devices"));
        // A collection carried through reuses keeps the time it was read; others date from the run.
        assert_eq!(
            previous.collected_at("users").map(|t| t.to_rfc3339()).as_deref(),
            Some("2026-11-01T10:00:00+00:00")
        );
        assert_eq!(previous.collected_at("domains"), taken);
        assert_eq!(previous.collected_at("devices"), None);
        assert_eq!(previous.service_plans(), Some(vec!["AAD_PREMIUM".to_string()]));
        assert!(previous.has("users"));
        assert_eq!(previous.take("users").map(|m| m.len()), Some(2));
        assert!(!previous.has("users") && previous.take("users").is_none());
        assert!(previous.has("domains"));
    }

    #[test]
    fn previous_of_a_malformed_dataprint_is_empty() {
        let previous = Previous::new(json!({"collections": [1, 2], "collectors": "x"}), Utc::now());
        assert!(!previous.has("users") && !previous.was_ok("users") && previous.service_plans().is_none());
    }

    #[test]
    fn what_a_run_leaves_unread_follows_the_metrics() {
        let metric = |q: &str, requires: Value| -> history::Metric {
            serde_json::from_value(
                json!({"name": "x", "query": q, "description": "", "unit": null, "requires": requires}),
            )
            .expect("a metric")
        };
        let builtin_only = unread_from_previous(&[]);
        for name in ["devices", "managedDevices", "signIns", "userRegistrationDetails", "signInActivity"] {
            assert!(builtin_only.contains(&name), "{name}: {builtin_only:?}");
        }
        for name in ["users", "groups", "subscribedSkus", "conditionalAccessPolicies", "directoryRoles"] {
            assert!(!builtin_only.contains(&name), "{name}: {builtin_only:?}");
        }
        // What a custom metric reads or requires is loaded; one that may read anything loads all.
        let named = unread_from_previous(&[metric("length(collections.devices)", json!([["devices"]]))]);
        assert!(!named.contains(&"devices") && named.contains(&"signIns"), "{named:?}");
        let required = unread_from_previous(&[metric("summary.users", json!([["signIns", "managedDevices"]]))]);
        assert!(!required.contains(&"signIns") && !required.contains(&"managedDevices"), "{required:?}");
        assert!(unread_from_previous(&[metric("length(keys(collections))", json!([]))]).is_empty());
    }

    #[test]
    fn sign_in_activity_is_merged_into_users_and_kept() {
        let mut collections = Map::new();
        collections.insert("users".into(), json!({"u1": {"id": "u1"}, "u2": {"id": "u2"}}));
        collections.insert(
            "signInActivity".into(),
            json!({"u1": {"id": "u1", "signInActivity": {"lastSignInDateTime": "2026-11-01T00:00:00Z"}}}),
        );
        assert!(merge_sign_in_activity(&mut collections));
        assert_eq!(collections["users"]["u1"]["signInActivity"]["lastSignInDateTime"], "2026-11-01T00:00:00Z");
        assert!(collections["users"]["u2"].get("signInActivity").is_none());
        assert!(collections.contains_key("signInActivity"));

        // The same activity joined again (the users of a delta round that brought no change) changes
        // nothing; a user whose activity is gone loses it.
        let joined = collections["users"].clone();
        assert!(!merge_sign_in_activity(&mut collections));
        assert_eq!(collections["users"], joined);
        collections.insert("signInActivity".into(), json!({}));
        assert!(merge_sign_in_activity(&mut collections));
        assert!(collections["users"]["u1"].get("signInActivity").is_none());
        collections.remove("signInActivity");
        assert!(!merge_sign_in_activity(&mut collections));
    }
}
