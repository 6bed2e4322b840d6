//! Alert notifications: from the store's outbox to each webhook, durably.
//!
//! A run (or the server) records every alert transition in the store together with one outbox item
//! per notification target (`AlertStore::record_transition`), in the tenant's commit. A
//! [`Deliverer`] then claims due items with a lease, sends them, and settles each: delivered, retried
//! later with backoff, or expired. Items of one alert and target go out in the order they were
//! queued; a claimed item is not sent by another deliverer; a deliverer that lost its lease cannot
//! settle an item. So an alert whose webhook was down, whose signing secret was not set, or whose
//! run was killed before it could send, is delivered by the next run or by the server.
//!
//! This is the only network IO of tenantscope that is neither Microsoft (the `microsoft` crate) nor
//! the database.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use history::{Alert, WebhookFormat};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use store::{AlertStore, DeliveryOutcome, OutboxItem};
use vocab::Severity;

/// A webhook alerts are posted to (`[[webhook]]` in the configuration file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// The name outbox items refer to; the URL when none is given.
    #[serde(default)]
    pub name: Option<String>,
    /// Where to POST. Teams and Slack URLs are secrets of their own: keep them out of shared files
    /// with `url_env`.
    #[serde(default)]
    pub url: Option<String>,
    /// The environment variable holding the URL, instead of `url`.
    #[serde(default)]
    pub url_env: Option<String>,
    /// `generic` (signed JSON, the default), `teams` or `slack`.
    #[serde(default)]
    pub format: WebhookFormat,
    /// The environment variable holding the signing secret of the generic format.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// Only alerts at least this severe.
    #[serde(default)]
    pub min_severity: Option<Severity>,
}

impl Target {
    /// The name outbox items use.
    pub fn key(&self) -> String {
        self.name
            .clone()
            .or_else(|| self.url.clone())
            .or_else(|| self.url_env.as_ref().map(|v| format!("${v}")))
            .unwrap_or_else(|| "webhook".into())
    }

    /// Whether an alert of this severity goes to this target.
    pub fn wants(&self, severity: Severity) -> bool {
        self.min_severity.is_none_or(|m| severity >= m)
    }

    fn url(&self) -> Result<String, String> {
        match (&self.url, &self.url_env) {
            (Some(url), _) => Ok(url.clone()),
            (None, Some(var)) => {
                std::env::var(var).map_err(|_| format!("the environment variable {var} with its URL is not set"))
            }
            (None, None) => Err("no url or url_env".into()),
        }
    }

    fn secret(&self) -> Result<String, String> {
        match &self.secret_env {
            Some(var) => std::env::var(var)
                .map_err(|_| format!("the environment variable {var} with its signing secret is not set")),
            None => Ok(String::new()),
        }
    }
}

/// Why a configuration's webhooks are wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("[[webhook]] entries: {0}")]
    Invalid(String),
}

/// The `[[webhook]]` entries of a configuration file's text.
pub fn targets_from_config(text: &str) -> Result<Vec<Target>, ConfigError> {
    #[derive(Deserialize)]
    struct Hooks {
        #[serde(default)]
        webhook: Vec<Target>,
    }
    let table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Invalid(e.to_string()))?;
    let hooks: Hooks =
        toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| ConfigError::Invalid(e.to_string()))?;
    for t in &hooks.webhook {
        if t.url.is_none() && t.url_env.is_none() {
            return Err(ConfigError::Invalid(format!("webhook {} needs url or url_env", t.key())));
        }
    }
    let mut names: Vec<String> = hooks.webhook.iter().map(Target::key).collect();
    names.sort();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(ConfigError::Invalid(format!("two webhooks are named {}", w[0])));
    }
    Ok(hooks.webhook)
}

/// How hard a deliverer tries.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Attempts of one item within one pass, with `quick_delay` doubling between them.
    pub quick_attempts: u32,
    pub quick_delay: Duration,
    /// After a pass fails, the next one is due this long after, doubling per attempt so far...
    pub backoff: chrono::Duration,
    /// ...up to this.
    pub max_backoff: chrono::Duration,
    /// An item still undelivered after this many attempts, or this long after it was queued,
    /// expires.
    pub max_attempts: i64,
    pub max_age: chrono::Duration,
    /// How long a claim lasts; a pass that takes longer loses its items to another deliverer.
    pub lease: chrono::Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            quick_attempts: 4,
            quick_delay: Duration::from_millis(500),
            backoff: chrono::Duration::minutes(1),
            max_backoff: chrono::Duration::hours(1),
            max_attempts: 40,
            max_age: chrono::Duration::hours(48),
            lease: chrono::Duration::minutes(2),
        }
    }
}

/// What a pass did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PassReport {
    pub delivered: usize,
    /// Items left for a later pass, with why.
    pub postponed: Vec<(String, String)>,
    /// Items given up, with why.
    pub expired: Vec<(String, String)>,
}

/// How an item is named to an operator: the alert's rule, tenant and transition, and where it goes.
fn label(item: &OutboxItem) -> String {
    let alert = item.payload.get("alert");
    let field = |pointer: &str| alert.and_then(|a| a.pointer(pointer)).and_then(Value::as_str);
    match (field("/rule"), field("/tenant/display_name")) {
        (Some(rule), Some(tenant)) => format!("{} {rule} for {tenant} to {}", item.transition, item.target),
        _ => format!("{} {} to {}", item.transition, item.alert_key, item.target),
    }
}

/// Sends the outbox's due items.
pub struct Deliverer {
    store: Arc<dyn AlertStore>,
    targets: Vec<Target>,
    client: reqwest::Client,
    owner: String,
    policy: Policy,
}

impl Deliverer {
    /// A deliverer for the configured targets. `owner` names it in leases (a process, a server
    /// replica); it is made unique.
    pub fn new(
        store: Arc<dyn AlertStore>,
        targets: Vec<Target>,
        owner: &str,
        policy: Policy,
    ) -> Result<Deliverer, String> {
        let client = http_client()?;
        Ok(Deliverer { store, targets, client, owner: format!("{owner}/{}", uuid::Uuid::new_v4()), policy })
    }

    /// Delivers every item due now, in order per alert and target, until none is due.
    pub async fn deliver_due(&self) -> Result<PassReport, store::StoreError> {
        let mut report = PassReport::default();
        // Each claim returns the head item of every alert and target; delivering it makes the next
        // one due. The bound keeps a pass finite whatever the outbox holds.
        for _ in 0..100 {
            let items = self.store.claim_deliveries(&self.owner, Utc::now(), self.policy.lease, 50).await?;
            if items.is_empty() {
                break;
            }
            let mut progressed = false;
            for item in items {
                let (outcome, attempts) = self.attempt(&item).await;
                let settled = self.store.finish_delivery(item.id, &self.owner, &outcome, attempts, Utc::now()).await?;
                let label = label(&item);
                match outcome {
                    _ if !settled => {
                        tracing::warn!(item = item.id, "the delivery's lease was lost; another deliverer has it")
                    }
                    DeliveryOutcome::Delivered => {
                        report.delivered += 1;
                        progressed = true;
                    }
                    DeliveryOutcome::Retry { error, .. } => report.postponed.push((label, error)),
                    DeliveryOutcome::Expired { error } => {
                        report.expired.push((label, error));
                        progressed = true;
                    }
                }
            }
            if !progressed {
                break;
            }
        }
        Ok(report)
    }

    /// One item: up to the policy's quick attempts, each recorded on the alert.
    async fn attempt(&self, item: &OutboxItem) -> (DeliveryOutcome, i64) {
        let age = Utc::now() - item.created_at;
        let Some(target) = self.targets.iter().find(|t| t.key() == item.target) else {
            let error = format!("the webhook {} is no longer configured", item.target);
            return (DeliveryOutcome::Expired { error }, item.attempts);
        };
        let alert: Alert = match serde_json::from_value(item.payload.get("alert").cloned().unwrap_or(Value::Null)) {
            Ok(a) => a,
            Err(e) => {
                return (
                    DeliveryOutcome::Expired { error: format!("the queued alert cannot be read: {e}") },
                    item.attempts,
                );
            }
        };
        let tenant_name = item.payload.get("tenant_name").and_then(Value::as_str);
        let mut last = String::new();
        let mut attempts = item.attempts;
        for quick in 0..self.policy.quick_attempts.max(1) {
            if quick > 0 {
                tokio::time::sleep(self.policy.quick_delay * (1 << (quick - 1).min(6))).await;
            }
            attempts += 1;
            let status = match self.send(target, &alert, tenant_name).await {
                Ok(()) => "delivered".to_string(),
                Err(e) => e,
            };
            if let Err(e) =
                self.store.record_delivery(&item.alert_key, &item.target, attempts, &status, Utc::now()).await
            {
                tracing::warn!(error = %e, "a delivery attempt could not be recorded");
            }
            if status == "delivered" {
                return (DeliveryOutcome::Delivered, attempts);
            }
            last = status;
            // A missing URL or secret will not appear between quick attempts.
            if last.contains("is not set") {
                break;
            }
        }
        if attempts >= self.policy.max_attempts || age >= self.policy.max_age {
            return (
                DeliveryOutcome::Expired { error: format!("{last} (gave up after {attempts} attempts)") },
                attempts,
            );
        }
        let exp = 1i32 << (attempts.clamp(1, 16) - 1) as u32;
        let wait = (self.policy.backoff * exp).min(self.policy.max_backoff);
        (DeliveryOutcome::Retry { error: last, at: Utc::now() + wait }, attempts)
    }

    async fn send(&self, target: &Target, alert: &Alert, tenant_name: Option<&str>) -> Result<(), String> {
        post(&self.client, target, alert, tenant_name).await
    }
}

/// The client every webhook is posted with: no redirects (a webhook that moved must be
/// reconfigured, not followed), a timeout, and tenantscope's user agent.
fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("tenantscope/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

async fn post(
    client: &reqwest::Client,
    target: &Target,
    alert: &Alert,
    tenant_name: Option<&str>,
) -> Result<(), String> {
    let url = target.url()?;
    let secret = target.secret()?;
    let req = history::build_for(target.format, alert, tenant_name, secret.as_bytes(), Utc::now());
    let mut r = client.post(&url).body(req.body);
    for (k, v) in &req.headers {
        r = r.header(k, v);
    }
    match r.send().await {
        Ok(resp) if resp.status().is_success() => Ok(()),
        Ok(resp) => Err(format!("http {}", resp.status().as_u16())),
        Err(e) => Err(format!(
            "error: {}",
            if e.is_timeout() {
                "timeout"
            } else if e.is_connect() {
                "connect"
            } else {
                "request"
            }
        )),
    }
}

/// Sends a test alert to `target` at once, outside the outbox (the dashboard's "Send test"), and
/// says whether the webhook took it.
pub async fn send_test(target: &Target, now: chrono::DateTime<Utc>) -> Result<(), String> {
    let alert = Alert {
        id: format!("test-{}", uuid::Uuid::new_v4()),
        rule: "tenantscope_test".into(),
        tenant_id: "00000000-0000-0000-0000-000000000000".into(),
        subject: "test".into(),
        severity: Severity::Info,
        status: history::AlertStatus::Open,
        summary: "A test notification from tenantscope: this webhook receives alerts.".into(),
        opened_at: now,
        resolved_at: None,
        metric: None,
        value: None,
        previous_value: None,
        event: None,
    };
    post(&http_client()?, target, &alert, Some("tenantscope test")).await
}
