//! The Microsoft Graph client: GETs with automatic paging as a stream, `$batch` packing, delta queries,
//! retries that honour `Retry-After`, per-tenant concurrency and rate limits, and the host allow-list
//! that keeps the bearer token on the cloud's Graph host.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::Stream;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use http::{HeaderName, Method};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use url::Url;

use crate::auth::{AccessToken, Authenticator, Grant};
use crate::error::{Error, GraphError};
use crate::http::{Body, Request, Response, Transport};
use crate::retry::RetryPolicy;

/// Who a request is made as: a tenant and how to get its token.
#[derive(Debug, Clone)]
pub struct Target {
    pub tenant: String,
    pub grant: Grant,
}

#[derive(Debug, Clone)]
pub struct GraphOptions {
    pub version: String,
    /// Requests in flight per tenant.
    pub per_tenant_concurrency: usize,
    /// Resource units per ten seconds per tenant for directory reads: Graph's budget for an app in
    /// a small tenant (under 50 users), the smallest, since a tenant's size is not known before it is
    /// read. Each request is paced by its documented cost ([`resource_units`]).
    pub directory_units_per_10s: u32,
    /// Conditional Access allows one request per second per tenant for all apps together: a
    /// tenant's requests of that class go one at a time, each this long after the previous answer.
    pub conditional_access_period: Duration,
    /// Reports allow five requests per ten seconds per app and tenant.
    pub reports_per_10s: u32,
    pub retry: RetryPolicy,
    /// A paged read stops with an error past this many pages (a server that pages forever).
    pub max_pages: usize,
}

impl Default for GraphOptions {
    fn default() -> Self {
        GraphOptions {
            version: "v1.0".into(),
            per_tenant_concurrency: 8,
            directory_units_per_10s: 3_500,
            conditional_access_period: Duration::from_millis(1050),
            reports_per_10s: 5,
            retry: RetryPolicy::default(),
            max_pages: 100_000,
        }
    }
}

/// The resource units Graph charges for a directory read (`path` relative to the version, with its
/// query), by its documented base costs: `GET users` 2, `subscribedSkus` 3, a group's `members` 3 and
/// `transitiveMembers` 5, `applications`, `memberOf`, `licenseDetails`, `oauth2PermissionGrants`
/// and a service principal's `appRoleAssignments` 2, `contracts` 3, anything else 1; then `$select`
/// takes one off, `$expand` adds one and a `$top` under 20 takes one off, never below 1.
pub(crate) fn resource_units(path: &str) -> u32 {
    let p = path.to_ascii_lowercase();
    let (path, query) = p.split_once('?').unwrap_or((&p, ""));
    let path = path.trim_start_matches('/');
    let path = path.strip_prefix("v1.0/").or_else(|| path.strip_prefix("beta/")).unwrap_or(path);
    let segments: Vec<&str> = path.split('/').collect();
    let base: i32 = match segments.as_slice() {
        ["users"] => 2,
        ["subscribedskus"] => 3,
        ["groups", _, "members"] => 3,
        ["groups", _, "transitivemembers"] => 5,
        ["applications"] => 2,
        ["me", "memberof" | "transitivememberof" | "licensedetails"] => 2,
        ["users", _, "memberof" | "transitivememberof" | "licensedetails"] => 2,
        ["oauth2permissiongrants"] => 2,
        ["serviceprincipals", _, "approleassignments"] => 2,
        ["contracts"] => 3,
        _ => 1,
    };
    let mut adjust = 0;
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = k.replace("%24", "$");
        match k.as_str() {
            "$select" => adjust -= 1,
            "$expand" => adjust += 1,
            "$top" if v.parse::<u32>().is_ok_and(|t| t < 20) => adjust -= 1,
            _ => {}
        }
    }
    (base + adjust).max(1) as u32
}

/// The throttling class Graph applies to a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Directory,
    Reports,
    ConditionalAccess,
}

pub(crate) fn class_of(path: &str) -> Class {
    let p = path.to_ascii_lowercase();
    let p = p.trim_start_matches('/');
    let p = p.strip_prefix("v1.0/").or_else(|| p.strip_prefix("beta/")).unwrap_or(p);
    if p.starts_with("identity/conditionalaccess") {
        Class::ConditionalAccess
    } else if p.starts_with("reports/") || p.starts_with("auditlogs/") {
        Class::Reports
    } else {
        Class::Directory
    }
}

/// Whether Graph paces requests to this path at one a second per tenant (Conditional Access): a
/// tenant's second such read waits on the clock, not on work, so a caller may set the tenant's work
/// aside meanwhile.
pub fn is_paced(path: &str) -> bool {
    class_of(path) == Class::ConditionalAccess
}

/// One request at a time, each sent at least `period` after the previous one's answer arrived.
///
/// Graph admits a request before it answers it, so a request sent a period after the previous answer
/// reaches Graph at least a period after Graph admitted the previous one, however long either spent
/// on the way. Pacing by send times instead, as a token bucket does, lets a request delayed on its way
/// in (a busy machine, a slow network) arrive close behind the next one, which is then refused;
/// Conditional Access's refusals carry no `Retry-After` to recover by.
struct Pace {
    period: Duration,
    last_answer: tokio::sync::Mutex<Option<tokio::time::Instant>>,
}

/// The right to send a paced request; the answer's time is taken when it is dropped.
struct PaceGuard<'a>(tokio::sync::MutexGuard<'a, Option<tokio::time::Instant>>);

impl Drop for PaceGuard<'_> {
    fn drop(&mut self) {
        *self.0 = Some(tokio::time::Instant::now());
    }
}

impl Pace {
    fn new(period: Duration) -> Pace {
        Pace { period, last_answer: tokio::sync::Mutex::new(None) }
    }

    /// Waits for the previous paced request's answer and then for the period after it.
    async fn turn(&self) -> PaceGuard<'_> {
        let last = self.last_answer.lock().await;
        if let Some(at) = *last {
            tokio::time::sleep_until(at + self.period).await;
        }
        PaceGuard(last)
    }
}

struct TenantLimits {
    in_flight: Semaphore,
    directory: DefaultDirectRateLimiter,
    conditional_access: Pace,
    reports: DefaultDirectRateLimiter,
    /// No request goes to the tenant before this instant: the last `Retry-After` it was given.
    blocked_until: Mutex<Option<Instant>>,
    /// HTTP requests sent to Graph for this tenant, retries included.
    requests: std::sync::atomic::AtomicU64,
}

impl TenantLimits {
    fn new(o: &GraphOptions) -> TenantLimits {
        let nz = |n: u32| NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN);
        TenantLimits {
            in_flight: Semaphore::new(o.per_tenant_concurrency.max(1)),
            // The whole ten-second budget may go at once, as Graph's token bucket allows: a partner's
            // thousand GDAP access-assignment reads then go in a few seconds, not at a fixed rate.
            directory: RateLimiter::direct(
                Quota::with_period(Duration::from_micros(10_000_000 / u64::from(o.directory_units_per_10s.max(1))))
                    .unwrap_or(Quota::per_second(nz(350)))
                    .allow_burst(nz(o.directory_units_per_10s)),
            ),
            conditional_access: Pace::new(o.conditional_access_period),
            reports: RateLimiter::direct(
                // Graph allows the five requests of a ten-second window at once; spacing them two
                // seconds apart would make every tenant wait for its second report.
                Quota::with_period(Duration::from_millis(10_000 / u64::from(o.reports_per_10s.max(1))))
                    .unwrap_or(Quota::per_second(nz(1)))
                    .allow_burst(nz(o.reports_per_10s)),
            ),
            blocked_until: Mutex::new(None),
            requests: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Waits until the tenant's directory budget has `units` resource units.
    async fn take_units(&self, units: u32) {
        let n = NonZeroU32::new(units.max(1)).unwrap_or(NonZeroU32::MIN);
        // A cost above the whole budget cannot be waited for; such a request goes when the budget is
        // full, as it would in Graph, and is answered with a 429 if it is too much.
        if self.directory.until_n_ready(n).await.is_err() {
            self.directory.until_ready().await;
        }
    }

    async fn wait_gate(&self, stats: &crate::http::Stats) {
        loop {
            let until = *self.blocked_until.lock().unwrap_or_else(|e| e.into_inner());
            match until {
                Some(t) if t > Instant::now() => {
                    let wait = t - Instant::now();
                    stats.throttle_wait_ms.fetch_add(wait.as_millis() as u64, Ordering::Relaxed);
                    tokio::time::sleep(wait).await;
                }
                _ => return,
            }
        }
    }

    /// Holds the tenant's requests for `secs`, unless that is longer than `limit`, the longest
    /// wait the retry policy accepts: a `Retry-After` the client will not honour must not stall
    /// every later request of the tenant either (a hostile or broken answer of years would).
    fn block_for(&self, secs: u64, limit: Duration) {
        let wait = Duration::from_secs(secs);
        if wait > limit {
            return;
        }
        let Some(until) = Instant::now().checked_add(wait) else { return };
        let mut b = self.blocked_until.lock().unwrap_or_else(|e| e.into_inner());
        if b.is_none_or(|cur| cur < until) {
            *b = Some(until);
        }
    }
}

/// One page of a collection.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub items: Vec<Value>,
    pub next_link: Option<String>,
    pub delta_link: Option<String>,
    pub count: Option<u64>,
}

/// One page of a collection as Graph sent it: the body, and where in it each item's JSON lies.
/// Checked as a page (an object with a `value` array) and each item as JSON, but not parsed into
/// trees.
#[derive(Debug, Clone, Default)]
pub struct RawPage {
    body: bytes::Bytes,
    items: Vec<std::ops::Range<usize>>,
    pub next_link: Option<String>,
    pub delta_link: Option<String>,
}

/// A delta round's pages as Graph sent them ([`RawPage`]), and the link for next time. Items Graph
/// marks `@removed` are among the pages' items, for the caller to tell apart.
#[derive(Debug, Clone, Default)]
pub struct RawDelta {
    pub pages: Vec<RawPage>,
    pub delta_link: String,
}

impl RawPage {
    /// Each item's JSON text, in the order of the page.
    pub fn items(&self) -> impl Iterator<Item = &str> {
        // The body was checked to be UTF-8 when it was parsed, and each range lies on a value's
        // boundaries in it.
        let text = std::str::from_utf8(&self.body).unwrap_or_default();
        self.items.iter().filter_map(move |r| text.get(r.clone()))
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// The size of the page's body.
    pub fn body_len(&self) -> usize {
        self.body.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn parse(resp: &Response) -> Result<RawPage, Error> {
        let protocol = |message: String| Error::Protocol { url: resp.url.clone(), message };
        let text = std::str::from_utf8(&resp.body)
            .map_err(|e| protocol(format!("the response is not JSON (not UTF-8: {e})")))?;
        let page: PageParts<'_> = match serde_json::from_str(text) {
            Ok(page) => page,
            Err(e) if e.is_data() => return Err(protocol("a collection page is not a JSON object".into())),
            Err(e) => return Err(protocol(format!("the response is not JSON ({e})"))),
        };
        let items = match page.value {
            Some(Some(items)) => items,
            Some(None) => return Err(protocol("'value' is not an array".into())),
            None => return Err(protocol("the page has no 'value'".into())),
        };
        // Each item borrows from `text`: its place in the body is its address's offset from the body's.
        let base = text.as_ptr() as usize;
        let items = items
            .iter()
            .map(|item| {
                let start = item.get().as_ptr() as usize - base;
                start..start + item.get().len()
            })
            .collect();
        let link = |l: Option<&RawValue>| l.and_then(|l| serde_json::from_str::<String>(l.get()).ok());
        Ok(RawPage {
            body: resp.body.clone(),
            items,
            next_link: link(page.next_link),
            delta_link: link(page.delta_link),
        })
    }
}

/// What [`RawPage::parse`] reads of a page, in one pass over it: each item of `value` as its raw
/// JSON (`Some(None)` when `value` is not an array), and the links as they came. Of a member sent
/// twice, the last counts, as it would in a map; other members are read past.
struct PageParts<'a> {
    value: Option<Option<Vec<&'a RawValue>>>,
    next_link: Option<&'a RawValue>,
    delta_link: Option<&'a RawValue>,
}

impl<'de> serde::Deserialize<'de> for PageParts<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(PagePartsVisitor)
    }
}

struct PagePartsVisitor;

impl<'de> serde::de::Visitor<'de> for PagePartsVisitor {
    type Value = PageParts<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a collection page")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<PageParts<'de>, A::Error> {
        let mut parts = PageParts { value: None, next_link: None, delta_link: None };
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "value" => parts.value = Some(map.next_value::<ItemsOrNot<'de>>()?.0),
                "@odata.nextLink" => parts.next_link = Some(map.next_value()?),
                "@odata.deltaLink" => parts.delta_link = Some(map.next_value()?),
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(parts)
    }
}

/// An array's elements as their raw JSON, or `None` for any other value (read past).
struct ItemsOrNot<'a>(Option<Vec<&'a RawValue>>);

impl<'de> serde::Deserialize<'de> for ItemsOrNot<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ItemsOrNotVisitor)
    }
}

struct ItemsOrNotVisitor;

impl<'de> serde::de::Visitor<'de> for ItemsOrNotVisitor {
    type Value = ItemsOrNot<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<ItemsOrNot<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element::<&'de RawValue>()? {
            items.push(item);
        }
        Ok(ItemsOrNot(Some(items)))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<ItemsOrNot<'de>, A::Error> {
        while map.next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?.is_some() {}
        Ok(ItemsOrNot(None))
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<ItemsOrNot<'de>, E> {
        Ok(ItemsOrNot(None))
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<ItemsOrNot<'de>, E> {
        Ok(ItemsOrNot(None))
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<ItemsOrNot<'de>, E> {
        Ok(ItemsOrNot(None))
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<ItemsOrNot<'de>, E> {
        Ok(ItemsOrNot(None))
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<ItemsOrNot<'de>, E> {
        Ok(ItemsOrNot(None))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<ItemsOrNot<'de>, E> {
        Ok(ItemsOrNot(None))
    }
}

/// What a delta round returned: objects added or changed, ids removed, and the link for next time.
#[derive(Debug, Clone, Default)]
pub struct Delta {
    pub changed: Vec<Value>,
    pub removed: Vec<String>,
    pub delta_link: String,
    pub pages: usize,
}

impl Delta {
    fn absorb(&mut self, page: Page) {
        self.pages += 1;
        for item in page.items {
            if item.get("@removed").is_some() {
                if let Some(id) = item.get("id").and_then(Value::as_str) {
                    self.removed.push(id.to_string());
                }
            } else {
                self.changed.push(item);
            }
        }
        if let Some(link) = page.delta_link {
            self.delta_link = link;
        }
    }

    fn finish(self, started_from: &str) -> Result<Delta, Error> {
        if self.delta_link.is_empty() {
            return Err(Error::Protocol {
                url: started_from.to_string(),
                message: "the delta round ended without a deltaLink".into(),
            });
        }
        Ok(self)
    }
}

/// One request of a `$batch`.
#[derive(Debug, Clone)]
pub struct BatchItem {
    pub id: String,
    /// A path relative to the version, e.g. `policies/authorizationPolicy`.
    pub path: String,
    pub headers: Vec<(String, String)>,
}

#[derive(Clone)]
pub struct GraphClient {
    pub auth: Arc<Authenticator>,
    pub transport: Transport,
    pub options: GraphOptions,
    tenants: Arc<Mutex<HashMap<String, Arc<TenantLimits>>>>,
}

/// Parses a Graph error response: `{"error":{"code","message","innerError":{...}}}`.
pub(crate) fn graph_error(method: &str, resp: &Response) -> GraphError {
    let v: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
    let err = v.get("error");
    let inner = err.and_then(|e| e.get("innerError").or_else(|| e.get("innererror")));
    let text = |o: Option<&Value>, k: &str| o.and_then(|o| o.get(k)).and_then(Value::as_str).map(str::to_string);
    let message = text(err, "message").unwrap_or_else(|| {
        let snippet: String = String::from_utf8_lossy(&resp.body).chars().take(200).collect();
        if snippet.trim().is_empty() {
            format!("HTTP {} with an empty body", resp.status)
        } else {
            format!("HTTP {} without a Graph error body: {snippet}", resp.status)
        }
    });
    GraphError {
        url: resp.url.clone(),
        method: method.to_string(),
        status: resp.status,
        code: text(err, "code").unwrap_or_default(),
        inner_code: text(inner, "code"),
        message,
        request_id: text(inner, "request-id").or_else(|| resp.request_id.clone()),
        client_request_id: text(inner, "client-request-id").or_else(|| Some(resp.client_request_id.clone())),
        date: text(inner, "date"),
        www_authenticate: resp.header("www-authenticate").map(str::to_string),
        retry_after: resp.retry_after(),
    }
}

impl GraphClient {
    pub fn new(auth: Arc<Authenticator>, options: GraphOptions) -> GraphClient {
        let transport = auth.oauth.transport.clone();
        GraphClient { auth, transport, options, tenants: Arc::new(Mutex::new(HashMap::new())) }
    }

    fn limits(&self, tenant: &str) -> Arc<TenantLimits> {
        self.tenants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(tenant.to_ascii_lowercase())
            .or_insert_with(|| Arc::new(TenantLimits::new(&self.options)))
            .clone()
    }

    /// HTTP requests sent to Graph for a tenant so far, retries included.
    pub fn requests_for(&self, tenant: &str) -> u64 {
        self.limits(tenant).requests.load(Ordering::Relaxed)
    }

    /// The absolute URL of a path relative to the version, or an absolute link as given.
    pub(crate) fn url(&self, path_or_url: &str) -> Result<Url, Error> {
        let text = if path_or_url.starts_with("https://") || path_or_url.starts_with("http://") {
            path_or_url.to_string()
        } else {
            self.auth.cloud.graph(&self.options.version, path_or_url)
        };
        Url::parse(&text).map_err(|e| Error::Protocol { url: text.clone(), message: format!("not a URL: {e}") })
    }

    fn check_host(&self, url: &Url) -> Result<(), Error> {
        if self.auth.cloud.is_graph_url(url) {
            Ok(())
        } else {
            Err(Error::HostNotAllowed {
                url: url.to_string(),
                reason: format!("the cloud's Graph host is {}", self.auth.cloud.graph_url.host_str().unwrap_or("")),
            })
        }
    }

    /// Sends one request with retries; returns the successful response.
    async fn send(
        &self,
        target: &Target,
        method: Method,
        url: Url,
        body: Option<Value>,
        headers: &[(String, String)],
    ) -> Result<Response, Error> {
        self.check_host(&url)?;
        let limits = self.limits(&target.tenant);
        let class = class_of(url.path());
        let units = resource_units(&match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        });
        let stats = self.transport.stats.clone();
        let client_request_id = uuid::Uuid::new_v4().to_string();
        self.options
            .retry
            .run(&stats, || {
                let url = url.clone();
                let body = body.clone();
                let method = method.clone();
                let limits = limits.clone();
                let stats = stats.clone();
                let client_request_id = client_request_id.clone();
                async move {
                    limits.wait_gate(&stats).await;
                    // Held until this attempt's answer is in (or it failed).
                    let mut _paced = None;
                    match class {
                        Class::Directory => limits.take_units(units).await,
                        Class::ConditionalAccess => _paced = Some(limits.conditional_access.turn().await),
                        Class::Reports => limits.reports.until_ready().await,
                    }
                    let _permit = limits
                        .in_flight
                        .acquire()
                        .await
                        .map_err(|_| Error::Config("the client is shutting down".into()))?;
                    let mut token = self.auth.access_token(&target.tenant, &target.grant).await?;
                    let mut refreshed = false;
                    let mut challenged = false;
                    let mut current = url.clone();
                    let mut redirects = 0;
                    loop {
                        let req = Request {
                            method: method.clone(),
                            url: current.clone(),
                            headers: headers
                                .iter()
                                .filter_map(|(k, v)| HeaderName::from_bytes(k.as_bytes()).ok().map(|n| (n, v.clone())))
                                .collect(),
                            body: match &body {
                                Some(v) => Body::Json(v.clone()),
                                None => Body::Empty,
                            },
                            bearer: Some(&token.secret),
                            client_request_id: Some(client_request_id.clone()),
                        };
                        limits.requests.fetch_add(1, Ordering::Relaxed);
                        let resp = self.transport.send(req).await?;
                        match resp.status {
                            200..=299 => return Ok(resp),
                            301 | 302 | 303 | 307 | 308 => {
                                let location = resp.header("location").ok_or_else(|| Error::Protocol {
                                    url: resp.url.clone(),
                                    message: "a redirect without a location".into(),
                                })?;
                                let next = current.join(location).map_err(|e| Error::Protocol {
                                    url: resp.url.clone(),
                                    message: format!("a redirect to an invalid location: {e}"),
                                })?;
                                self.check_host(&next)?;
                                redirects += 1;
                                if redirects > 3 {
                                    return Err(Error::Protocol {
                                        url: resp.url.clone(),
                                        message: "too many redirects".into(),
                                    });
                                }
                                current = next;
                            }
                            _ => {
                                let err = graph_error(method.as_str(), &resp);
                                if err.status == 429
                                    && let Some(secs) = err.retry_after
                                {
                                    limits.block_for(secs, self.options.retry.max_wait);
                                }
                                // A claims challenge (continuous access evaluation) is met once with a token
                                // that satisfies it; if the token endpoint refuses one, that refusal is the error.
                                if err.status == 401
                                    && !challenged
                                    && let Some(claims) = err.www_authenticate.as_deref().and_then(challenge_claims)
                                {
                                    challenged = true;
                                    token = self.auth.token_for_claims(&target.tenant, &target.grant, &claims).await?;
                                    continue;
                                }
                                // A cached token the service rejects as invalid gets one fresh replacement.
                                if err.status == 401
                                    && err.code == "InvalidAuthenticationToken"
                                    && token.from_cache
                                    && !refreshed
                                {
                                    refreshed = true;
                                    token = self.auth.fresh_token(&target.tenant, &target.grant).await?;
                                    continue;
                                }
                                return Err(Error::Graph(Box::new(err)));
                            }
                        }
                    }
                }
            })
            .await
    }

    /// GET a JSON object.
    pub async fn get(&self, target: &Target, path_or_url: &str, headers: &[(String, String)]) -> Result<Value, Error> {
        let url = self.url(path_or_url)?;
        let resp = self.send(target, Method::GET, url, None, headers).await?;
        parse_json(&resp)
    }

    /// One GET with a given access token instead of the cache's, once, without retries: `doctor`
    /// compares a token it found in the cache with a fresh one. The host allow-list applies as to
    /// every request, and the request counts towards the token's tenant.
    pub async fn get_with_token(&self, token: &AccessToken, path_or_url: &str) -> Result<Value, Error> {
        let url = self.url(path_or_url)?;
        self.check_host(&url)?;
        if let Some(tid) = token.claims.as_ref().and_then(|c| c.tid.as_deref()) {
            self.limits(tid).requests.fetch_add(1, Ordering::Relaxed);
        }
        let req = Request { bearer: Some(&token.secret), ..Request::get(url) };
        let resp = self.transport.send(req).await?;
        match resp.status {
            200..=299 => parse_json(&resp),
            _ => Err(Error::Graph(Box::new(graph_error("GET", &resp)))),
        }
    }

    /// The pages of a collection, fetched one at a time as the stream is read, so memory stays bounded
    /// by one page. Headers (such as `ConsistencyLevel`) are sent with every page.
    pub fn pages<'a>(
        &'a self,
        target: &'a Target,
        path_or_url: &str,
        headers: Vec<(String, String)>,
    ) -> impl Stream<Item = Result<Page, Error>> + 'a {
        self.pages_with(target, path_or_url, headers, parse_page, |p| p.next_link.as_deref())
    }

    /// [`GraphClient::pages`], each page as Graph sent it ([`RawPage`]): for a caller that writes the
    /// items out without reading them as trees.
    pub fn raw_pages<'a>(
        &'a self,
        target: &'a Target,
        path_or_url: &str,
        headers: Vec<(String, String)>,
    ) -> impl Stream<Item = Result<RawPage, Error>> + 'a {
        self.pages_with(target, path_or_url, headers, RawPage::parse, |p| p.next_link.as_deref())
    }

    /// The paging loop of [`GraphClient::pages`], for pages parsed by `parse` whose next link `next`
    /// gives.
    fn pages_with<'a, P: 'a>(
        &'a self,
        target: &'a Target,
        path_or_url: &str,
        headers: Vec<(String, String)>,
        parse: fn(&Response) -> Result<P, Error>,
        next: fn(&P) -> Option<&str>,
    ) -> impl Stream<Item = Result<P, Error>> + 'a {
        let first = self.url(path_or_url);
        let state = (Some(first), HashSet::<String>::new(), 0usize, headers);
        futures::stream::unfold(state, move |(next_url, mut seen, n, headers)| async move {
            let url = match next_url? {
                Ok(u) => u,
                Err(e) => return Some((Err(e), (None, seen, n, headers))),
            };
            if n >= self.options.max_pages {
                let e = Error::Protocol {
                    url: url.to_string(),
                    message: format!("more than {} pages: stopping", self.options.max_pages),
                };
                return Some((Err(e), (None, seen, n, headers)));
            }
            if !seen.insert(url.to_string()) {
                let e = Error::Protocol {
                    url: url.to_string(),
                    message: "the nextLink points to a page already read (a paging loop)".into(),
                };
                return Some((Err(e), (None, seen, n, headers)));
            }
            let result = async {
                let resp = self.send(target, Method::GET, url.clone(), None, &headers).await?;
                parse(&resp)
            }
            .await;
            match result {
                Ok(page) => {
                    let next_url = next(&page).map(|l| {
                        Url::parse(l).map_err(|e| Error::Protocol {
                            url: l.to_string(),
                            message: format!("the nextLink is not a URL: {e}"),
                        })
                    });
                    Some((Ok(page), (next_url, seen, n + 1, headers)))
                }
                Err(e) => Some((Err(e), (None, seen, n + 1, headers))),
            }
        })
    }

    /// Reads every page of a collection.
    pub async fn list(
        &self,
        target: &Target,
        path_or_url: &str,
        headers: Vec<(String, String)>,
    ) -> Result<Vec<Value>, Error> {
        use futures::StreamExt;
        let mut out = Vec::new();
        let mut pages = std::pin::pin!(self.pages(target, path_or_url, headers));
        while let Some(page) = pages.next().await {
            out.extend(page?.items);
        }
        Ok(out)
    }

    /// Runs a delta round from a path (a full read) or a saved delta link, to its new delta link.
    pub async fn delta(&self, target: &Target, path_or_link: &str) -> Result<Delta, Error> {
        let mut delta = Delta::default();
        self.delta_pages(target, path_or_link, &mut delta).await?;
        delta.finish(path_or_link)
    }

    /// [`GraphClient::delta`] from a path, a full round, with its pages as Graph sent them.
    pub async fn delta_raw(&self, target: &Target, path: &str) -> Result<RawDelta, Error> {
        use futures::StreamExt;
        let mut delta = RawDelta::default();
        let mut pages = std::pin::pin!(self.raw_pages(target, path, Vec::new()));
        while let Some(page) = pages.next().await {
            let page = page?;
            if let Some(link) = &page.delta_link {
                delta.delta_link = link.clone();
            }
            delta.pages.push(page);
        }
        if delta.delta_link.is_empty() {
            return Err(Error::Protocol {
                url: path.to_string(),
                message: "the delta round ended without a deltaLink".into(),
            });
        }
        Ok(delta)
    }

    /// Finishes a delta round whose first page came back in a `$batch` (see [`GraphClient::batch_path`]):
    /// the page's changes, then the pages its nextLink leads to, to the new delta link.
    pub async fn delta_from_page(&self, target: &Target, link: &str, first: Value) -> Result<Delta, Error> {
        let mut delta = Delta::default();
        let page = page_of(first, link)?;
        let next = page.next_link.clone();
        delta.absorb(page);
        if let Some(next) = next {
            self.delta_pages(target, &next, &mut delta).await?;
        }
        delta.finish(link)
    }

    async fn delta_pages(&self, target: &Target, path_or_link: &str, delta: &mut Delta) -> Result<(), Error> {
        use futures::StreamExt;
        let mut pages = std::pin::pin!(self.pages(target, path_or_link, Vec::new()));
        while let Some(page) = pages.next().await {
            delta.absorb(page?);
        }
        Ok(())
    }

    /// A link Graph gave (a nextLink or deltaLink) as the version-relative path a `$batch` item takes.
    /// Only links to the cloud's Graph host and this client's version qualify.
    pub fn batch_path(&self, link: &str) -> Result<String, Error> {
        let url = self.url(link)?;
        self.check_host(&url)?;
        let prefix = format!("/{}/", self.options.version);
        let rest = url.path().strip_prefix(&prefix).ok_or_else(|| Error::Protocol {
            url: link.to_string(),
            message: format!("the link is not under {prefix}"),
        })?;
        Ok(match url.query() {
            Some(q) => format!("{rest}?{q}"),
            None => rest.to_string(),
        })
    }

    /// Sends GETs in `$batch` requests of at most 20, retrying throttled items after their
    /// `Retry-After`. Results come back in the order of `items`.
    ///
    /// Graph throttles every item of a batch as a request of its own, so each item waits for its
    /// class's limit of the tenant before the batch goes, and a batch carries at most one Conditional
    /// Access item: that class allows one request per second per tenant and its 429s say nothing of
    /// when to come back, so a second one in the same batch would be refused. Limits known in advance
    /// are kept, not discovered.
    pub async fn batch(&self, target: &Target, items: Vec<BatchItem>) -> Vec<(String, Result<Value, Error>)> {
        let mut results: HashMap<String, Result<Value, Error>> = HashMap::new();
        let order: Vec<String> = items.iter().map(|i| i.id.clone()).collect();
        let limits = self.limits(&target.tenant);
        let mut chunks: Vec<Vec<BatchItem>> = Vec::new();
        for item in items {
            let ca = class_of(&item.path) == Class::ConditionalAccess;
            let fits = |c: &Vec<BatchItem>| {
                c.len() < 20 && !(ca && c.iter().any(|x| class_of(&x.path) == Class::ConditionalAccess))
            };
            match chunks.iter_mut().find(|c| fits(c)) {
                Some(chunk) => chunk.push(item),
                None => chunks.push(vec![item]),
            }
        }
        for chunk in chunks {
            // A chunk holds at most one Conditional Access item; its pace is held until the chunk's
            // answers are in, retries included.
            let mut _paced = None;
            for item in &chunk {
                match class_of(&item.path) {
                    Class::ConditionalAccess => _paced = Some(limits.conditional_access.turn().await),
                    Class::Reports => limits.reports.until_ready().await,
                    Class::Directory => limits.take_units(resource_units(&item.path)).await,
                }
            }
            let mut pending: Vec<BatchItem> = chunk;
            let mut attempt = 0u32;
            while !pending.is_empty() {
                attempt += 1;
                let body = json!({
                    "requests": pending.iter().map(|i| {
                        let mut r = json!({ "id": i.id, "method": "GET", "url": format!("/{}", i.path.trim_start_matches('/')) });
                        if !i.headers.is_empty() {
                            r["headers"] = Value::Object(i.headers.iter().map(|(k, v)| (k.clone(), json!(v))).collect());
                        }
                        r
                    }).collect::<Vec<_>>()
                });
                let url = match self.url("$batch") {
                    Ok(u) => u,
                    Err(e) => {
                        for i in &pending {
                            results.insert(i.id.clone(), Err(e.clone()));
                        }
                        break;
                    }
                };
                let outcome =
                    self.send(target, Method::POST, url.clone(), Some(body), &[]).await.and_then(|r| parse_json(&r));
                // The answers are taken out of the parsed response rather than copied: the bodies of
                // a tenant's small collections are most of it.
                let mut responses = match outcome {
                    Ok(mut v) => match v.get_mut("responses").map(Value::take) {
                        Some(Value::Array(responses)) => responses,
                        _ => Vec::new(),
                    },
                    Err(e) => {
                        for i in &pending {
                            results.insert(i.id.clone(), Err(e.clone()));
                        }
                        break;
                    }
                };
                let mut retry: Vec<BatchItem> = Vec::new();
                let mut wait = 0u64;
                for item in &pending {
                    let Some(r) =
                        responses.iter_mut().find(|r| r.get("id").and_then(Value::as_str) == Some(item.id.as_str()))
                    else {
                        results.insert(
                            item.id.clone(),
                            Err(Error::Protocol {
                                url: url.to_string(),
                                message: format!("the batch response has no answer for request {}", item.id),
                            }),
                        );
                        continue;
                    };
                    let status = r.get("status").and_then(Value::as_u64).unwrap_or(0) as u16;
                    let body = r.get_mut("body").map(Value::take).unwrap_or(Value::Null);
                    if (200..300).contains(&status) {
                        results.insert(item.id.clone(), Ok(body));
                        continue;
                    }
                    let headers = r.get_mut("headers").map(Value::take).unwrap_or(Value::Null);
                    let header = |k: &str| {
                        headers
                            .as_object()
                            .and_then(|h| h.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)))
                            .and_then(|(_, v)| v.as_str().map(str::to_string))
                    };
                    let retry_after =
                        header("retry-after").and_then(|v| v.parse::<i64>().ok()).filter(|n| *n >= 0).map(|n| n as u64);
                    let sub_url = self.auth.cloud.graph(&self.options.version, &item.path);
                    let err = GraphError {
                        url: sub_url,
                        method: "GET".into(),
                        status,
                        code: body.pointer("/error/code").and_then(Value::as_str).unwrap_or_default().to_string(),
                        inner_code: body.pointer("/error/innerError/code").and_then(Value::as_str).map(str::to_string),
                        message: body.pointer("/error/message").and_then(Value::as_str).unwrap_or_default().to_string(),
                        request_id: body
                            .pointer("/error/innerError/request-id")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                        client_request_id: body
                            .pointer("/error/innerError/client-request-id")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                        date: body.pointer("/error/innerError/date").and_then(Value::as_str).map(str::to_string),
                        www_authenticate: header("www-authenticate"),
                        retry_after,
                    };
                    let transient = matches!(status, 429 | 500 | 502 | 503 | 504);
                    if transient && attempt < self.options.retry.max_attempts {
                        wait = wait.max(retry_after.unwrap_or(1 << attempt.min(5)));
                        retry.push(item.clone());
                        results.insert(item.id.clone(), Err(Error::Graph(Box::new(err))));
                    } else {
                        results.insert(item.id.clone(), Err(Error::Graph(Box::new(err))));
                    }
                }
                if !retry.is_empty() {
                    if Duration::from_secs(wait) > self.options.retry.max_wait {
                        break;
                    }
                    self.transport.stats.retries.fetch_add(retry.len() as u64, Ordering::Relaxed);
                    self.transport.stats.throttled.fetch_add(1, Ordering::Relaxed);
                    limits.block_for(wait, self.options.retry.max_wait);
                    limits.wait_gate(&self.transport.stats).await;
                }
                pending = retry;
            }
        }
        order
            .into_iter()
            .map(|id| {
                let r = results.remove(&id).unwrap_or_else(|| {
                    Err(Error::Protocol { url: "$batch".into(), message: format!("no result for {id}") })
                });
                (id, r)
            })
            .collect()
    }
}

/// The claims a `WWW-Authenticate` claims challenge asks for (`error="insufficient_claims"`, `claims` in
/// base64), decoded to their JSON text; `None` for any other 401.
pub(crate) fn challenge_claims(www_authenticate: &str) -> Option<String> {
    use base64::Engine;
    if !www_authenticate.to_ascii_lowercase().contains("insufficient_claims") {
        return None;
    }
    let start = www_authenticate.find("claims=\"")? + "claims=\"".len();
    let encoded = www_authenticate[start..].split('"').next()?.trim_end_matches('=');
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(encoded)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded))
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    serde_json::from_str::<Value>(&text).ok().filter(Value::is_object).map(|_| text)
}

fn parse_json(resp: &Response) -> Result<Value, Error> {
    serde_json::from_slice(&resp.body)
        .map_err(|e| Error::Protocol { url: resp.url.clone(), message: format!("the response is not JSON ({e})") })
}

fn parse_page(resp: &Response) -> Result<Page, Error> {
    page_of(parse_json(resp)?, &resp.url)
}

/// A collection page from its JSON body (a response's, or a `$batch` item's).
fn page_of(v: Value, url: &str) -> Result<Page, Error> {
    let protocol = |message: &str| Error::Protocol { url: url.to_string(), message: message.into() };
    let Value::Object(mut map) = v else {
        return Err(protocol("a collection page is not a JSON object"));
    };
    let items = match map.remove("value") {
        Some(Value::Array(a)) => a,
        Some(_) => return Err(protocol("'value' is not an array")),
        None => return Err(protocol("the page has no 'value'")),
    };
    let link = |k: &str| map.get(k).and_then(Value::as_str).map(str::to_string);
    Ok(Page {
        items,
        next_link: link("@odata.nextLink"),
        delta_link: link("@odata.deltaLink"),
        count: map.get("@odata.count").and_then(Value::as_u64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn paced_requests_go_one_at_a_time_a_period_after_the_previous_answer() {
        use tokio::time::{Instant, sleep};
        let period = Duration::from_millis(200);
        let pace = Pace::new(period);
        let first = pace.turn().await;
        // The first answer takes 50 ms; a second request asked for meanwhile waits for the answer
        // and then for a whole period after it, not after the first was sent.
        let second = async {
            let _turn = pace.turn().await;
            Instant::now()
        };
        let answer = async {
            sleep(Duration::from_millis(50)).await;
            drop(first);
            Instant::now()
        };
        let (sent, answered) = tokio::join!(second, answer);
        assert!(sent >= answered + period, "sent {:?} after the answer", sent - answered);
        // The second's answer came when its turn ended, after `sent`; with nothing in flight, the
        // third waits for what is left of the period after it.
        sleep(Duration::from_millis(80)).await;
        drop(pace.turn().await);
        assert!(Instant::now() >= sent + period);
    }

    #[test]
    fn requests_cost_the_resource_units_graph_documents() {
        for (path, units) in [
            ("users", 2),
            ("/v1.0/users?$select=id,displayName", 1),
            ("subscribedSkus", 3),
            ("groups/abc/transitiveMembers", 5),
            ("groups/abc/members?$top=5", 2),
            ("me/memberOf?%24select=id", 1),
            ("directoryRoles?$expand=members", 2),
            ("contracts?$top=999", 3),
            ("servicePrincipals/x/appRoleAssignments", 2),
            ("organization?$select=id", 1),
            ("tenantRelationships/delegatedAdminRelationships/r/accessAssignments", 1),
        ] {
            assert_eq!(resource_units(path), units, "{path}");
        }
    }

    #[test]
    fn a_page_body_needs_a_value_array() {
        let page = page_of(
            json!({"value": [{"id": "a"}, {"id": "b", "@removed": {"reason": "deleted"}}], "@odata.deltaLink": "https://g/v1.0/users/delta?$deltatoken=x"}),
            "u",
        )
        .map_err(|e| e.to_string());
        let Ok(page) = page else { panic!("{page:?}") };
        let mut delta = Delta::default();
        delta.absorb(page);
        assert_eq!((delta.changed.len(), delta.removed.clone(), delta.pages), (1, vec!["b".to_string()], 1));
        assert!(delta.finish("u").is_ok());
        assert!(page_of(json!({"value": {}}), "u").is_err());
        assert!(page_of(json!([1]), "u").is_err());
        assert!(Delta::default().finish("u").is_err(), "a round without a deltaLink is an error");
    }

    #[test]
    fn classes_follow_the_path() {
        assert_eq!(class_of("/v1.0/identity/conditionalAccess/policies"), Class::ConditionalAccess);
        assert_eq!(class_of("reports/authenticationMethods/userRegistrationDetails"), Class::Reports);
        assert_eq!(class_of("/beta/auditLogs/signIns"), Class::Reports);
        assert_eq!(class_of("users"), Class::Directory);
    }

    #[test]
    fn graph_errors_are_parsed_even_when_odd() {
        let ok = Response {
            status: 403,
            headers: Default::default(),
            body: bytes::Bytes::from(
                r#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges to complete the operation.","innerError":{"date":"2026-01-01T00:00:00","request-id":"r1","client-request-id":"c1"}}}"#,
            ),
            url: "https://graph/v1.0/x".into(),
            request_id: None,
            client_request_id: "c0".into(),
        };
        let e = graph_error("GET", &ok);
        assert_eq!(e.code, "Authorization_RequestDenied");
        assert_eq!(e.request_id.as_deref(), Some("r1"));
        let odd = Response { body: bytes::Bytes::from("<html>gateway</html>"), status: 502, ..ok };
        let e = graph_error("GET", &odd);
        assert!(e.message.contains("HTTP 502"));
        assert_eq!(e.code, "");
    }

    #[test]
    fn claims_challenges_are_decoded() {
        // `payloads/graph_claims_challenge_cae.json`, `cae_revocation_example`.
        let www = r#"Bearer authorization_uri="https://login.windows.net/common/oauth2/authorize", error="insufficient_claims", claims="eyJhY2Nlc3NfdG9rZW4iOnsibmJmIjp7ImVzc2VudGlhbCI6dHJ1ZSwgInZhbHVlIjoiMTYwNDEwNjY1MSJ9fX0=""#;
        let claims = challenge_claims(www).expect("a challenge");
        let v: Value = serde_json::from_str(&claims).unwrap();
        assert_eq!(v["access_token"]["nbf"]["value"], "1604106651");
        assert_eq!(challenge_claims(r#"Bearer realm="", error="invalid_token""#), None);
        assert_eq!(challenge_claims(r#"Bearer error="insufficient_claims", claims="!!!""#), None);
        let merged: Value = serde_json::from_str(&crate::oauth::request_claims(Some(&claims))).unwrap();
        assert_eq!(merged["access_token"]["xms_cc"]["values"][0], "cp1");
        assert_eq!(merged["access_token"]["nbf"]["value"], "1604106651");
    }

    /// A 200 answer with `body`.
    fn resp(body: &str) -> Response {
        Response {
            status: 200,
            headers: Default::default(),
            body: bytes::Bytes::from(body.to_string()),
            url: "u".into(),
            request_id: None,
            client_request_id: "c".into(),
        }
    }

    #[test]
    fn pages_must_be_objects_with_values() {
        assert!(parse_page(&resp("[]")).is_err());
        assert!(parse_page(&resp(r#"{"value": 3}"#)).is_err());
        assert!(parse_page(&resp("{\"value\": [1,")).is_err());
        let p = parse_page(&resp(r#"{"@odata.nextLink":"https://g/v1.0/users?$skiptoken=x","value":[{"id":"1"}]}"#))
            .unwrap();
        assert_eq!(p.items.len(), 1);
        assert!(p.next_link.is_some());
    }

    #[test]
    fn a_raw_page_is_checked_as_a_page_and_gives_each_item_as_sent() {
        let message = |body: &str| match RawPage::parse(&resp(body)) {
            Err(Error::Protocol { message, .. }) => message,
            other => panic!("{body}: {other:?}"),
        };
        assert_eq!(message("[]"), "a collection page is not a JSON object");
        assert_eq!(message(r#"{"value": 3}"#), "'value' is not an array");
        assert_eq!(message(r#"{"values": []}"#), "the page has no 'value'");
        for not_an_array in ["null", "{\"a\": [1]}", "\"s\"", "true", "-1.5"] {
            assert_eq!(
                message(&format!(r#"{{"value": {not_an_array}}}"#)),
                "'value' is not an array",
                "{not_an_array}"
            );
        }
        assert!(message("{\"value\": [1,").starts_with("the response is not JSON"));
        assert!(message("{\"value\": [{\"id\":\"a\" \"b\"}]}").starts_with("the response is not JSON"));
        let body = r#"{"@odata.context":"x", "value": [ {"id":"1", "n": [1, 2]} ,"s", 3.5 ],
            "@odata.nextLink":"https://g/v1.0/devices?$skiptoken=x"}"#;
        let p = RawPage::parse(&resp(body)).unwrap();
        assert_eq!(p.items().collect::<Vec<_>>(), vec![r#"{"id":"1", "n": [1, 2]}"#, r#""s""#, "3.5"]);
        assert_eq!(p.len(), 3);
        assert_eq!(p.next_link.as_deref(), Some("https://g/v1.0/devices?$skiptoken=x"));
        // What the tree parser reads from the same page.
        let tree = parse_page(&resp(body)).unwrap();
        let raw: Vec<Value> = p.items().map(|i| serde_json::from_str(i).unwrap()).collect();
        assert_eq!(raw, tree.items);
        assert!(RawPage::parse(&resp(r#"{"value":[]}"#)).unwrap().is_empty());
        // Of a member sent twice the last counts, as in the tree; a link that is not a string is none.
        let twice = r#"{"value":[1],"@odata.nextLink":7,"value":[2,3],"@odata.deltaLink":"d"}"#;
        let p = RawPage::parse(&resp(twice)).unwrap();
        assert_eq!(p.items().collect::<Vec<_>>(), vec!["2", "3"]);
        assert_eq!((p.next_link, p.delta_link.as_deref()), (None, Some("d")));
        assert_eq!(parse_page(&resp(twice)).unwrap().items, vec![json!(2), json!(3)]);
    }
}
