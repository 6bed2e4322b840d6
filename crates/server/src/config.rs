//! The server's configuration: where it listens, how it schedules, who may sign in.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Everything `tenantscope serve` is told, from its flags and the `[server]` table of the
/// configuration file.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// The address people and agents use (behind a reverse proxy, the proxy's); links and
    /// redirect URIs are built from it.
    pub public_url: String,
    /// PEM certificate chain and private key; without them the server speaks plain HTTP and
    /// expects a TLS-terminating reverse proxy in front (it says so when it starts).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Where debug traces are kept.
    pub data_dir: PathBuf,
    pub schedule: ScheduleConfig,
    pub worker: WorkerConfig,
    pub access: AccessConfig,
    /// How long SIGTERM waits for in-flight work before the server exits.
    pub drain: Duration,
    /// How often the notification deliverer looks at the outbox.
    pub deliver_every: Duration,
    /// How long debug traces are kept.
    pub trace_retention: Duration,
    /// An agent without a heartbeat for this long is offline.
    pub agent_offline: Duration,
    /// How long inspection history is kept (`prune --older-than`, daily); `None` keeps it all.
    pub retention: Option<Duration>,
}

impl ServerConfig {
    /// The defaults for a server listening on `listen`.
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> ServerConfig {
        ServerConfig {
            listen,
            public_url: format!("http://{listen}"),
            tls: None,
            data_dir,
            schedule: ScheduleConfig::default(),
            worker: WorkerConfig::default(),
            access: AccessConfig::default(),
            drain: Duration::from_secs(30),
            deliver_every: Duration::from_secs(30),
            trace_retention: Duration::from_secs(7 * 24 * 3600),
            agent_offline: Duration::from_secs(90),
            retention: None,
        }
    }
}

/// When tenants are inspected.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    /// Whether the scheduler runs at all (a replica that only serves the API can turn it off).
    pub enabled: bool,
    /// Every tenant is inspected this often, in minutes...
    pub every_minutes: u64,
    /// ...give or take this fraction of it, so that a thousand tenants do not all fall due at the
    /// same second.
    pub jitter: f64,
    /// Other intervals for tenants with a label (`tenants label`), in minutes.
    pub per_label: HashMap<String, u64>,
    /// Other intervals for single tenants (by tenant id), in minutes; 0 turns a tenant's schedule
    /// off.
    pub per_tenant: HashMap<String, u64>,
    /// How often the scheduler looks for tenants that are due, in seconds.
    pub tick_seconds: u64,
    /// Split an inspection of many tenants into jobs of at most this many tenants, so that the
    /// agents of a pool share it; 0 (the default) queues one job per pool.
    pub tenants_per_job: usize,
}

impl ScheduleConfig {
    /// Refuses settings the scheduler cannot honour.
    pub fn check(&self) -> Result<(), String> {
        if self.every_minutes < 5 {
            return Err("every_minutes must be at least 5".into());
        }
        if !(0.0..=0.5).contains(&self.jitter) {
            return Err("jitter must be between 0 and 0.5".into());
        }
        if self.tick_seconds == 0 || self.tick_seconds > 3600 {
            return Err("tick_seconds must be between 1 and 3600".into());
        }
        if self.tenants_per_job > 100_000 {
            return Err("tenants_per_job must be at most 100000 (0 for one job per pool)".into());
        }
        if let Some((label, _)) = self.per_label.iter().find(|(_, m)| **m != 0 && **m < 5) {
            return Err(format!("per_label.{label}: at least 5 minutes, or 0 for off"));
        }
        if let Some((tenant, _)) = self.per_tenant.iter().find(|(_, m)| **m != 0 && **m < 5) {
            return Err(format!("per_tenant.{tenant}: at least 5 minutes, or 0 for off"));
        }
        Ok(())
    }
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            enabled: true,
            every_minutes: 240,
            jitter: 0.1,
            per_label: HashMap::new(),
            per_tenant: HashMap::new(),
            tick_seconds: 30,
            tenants_per_job: 0,
        }
    }
}

/// The server's built-in worker: an agent of the `local` pool that runs in-process.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    pub enabled: bool,
    pub pool: String,
    /// Tenants inspected at the same time by one job.
    pub concurrency: usize,
    /// How long a claim lasts without a heartbeat, in seconds.
    pub lease_seconds: u64,
    /// How often a running job's lease is renewed and its progress saved, in seconds.
    pub heartbeat_seconds: u64,
    /// How often an idle worker looks for a job, in milliseconds.
    pub poll_millis: u64,
    /// Tries before a job is dead.
    pub max_attempts: i64,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            enabled: true,
            pool: "local".into(),
            concurrency: 16,
            lease_seconds: 60,
            heartbeat_seconds: 10,
            poll_millis: 1000,
            max_attempts: 3,
        }
    }
}

/// Who may sign in, besides API tokens.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessConfig {
    /// A local administrator for when Microsoft's sign-in is unreachable; off unless configured.
    pub break_glass: Option<BreakGlass>,
    /// How long a session lasts, in hours (default 12).
    pub session_hours: Option<u64>,
    /// Operators sign in with Microsoft (OpenID Connect) through this app registration.
    pub oidc: Option<OidcConfig>,
}

/// Operator sign-in with Microsoft: the server's app registration in the MSP's tenant, and how
/// the ID token's app roles and groups map to tenantscope's roles.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The MSP's tenant: its id or a verified domain.
    pub tenant: String,
    /// The app registration (a web app whose redirect URI is `PUBLIC_URL/auth/callback`).
    pub client_id: String,
    /// The environment variable holding the app's client secret.
    #[serde(default = "default_secret_env")]
    pub client_secret_env: String,
    /// App role values (the ID token's `roles`) and the tenantscope role each gives.
    #[serde(default)]
    pub app_roles: HashMap<String, crate::auth::Role>,
    /// Group object ids (the ID token's `groups`) and the tenantscope role each gives.
    #[serde(default)]
    pub groups: HashMap<String, crate::auth::Role>,
}

fn default_secret_env() -> String {
    "TENANTSCOPE_OIDC_SECRET".to_string()
}

/// The break-glass administrator: a name and an argon2 hash of its password (PHC string, as
/// `tenantscope serve hash-password` prints it).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakGlass {
    pub user: String,
    pub password_hash: String,
}

/// The `[server]` table of the configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    pub schedule: Option<ScheduleConfig>,
    pub worker: Option<WorkerConfig>,
    pub access: Option<AccessConfig>,
    pub public_url: Option<String>,
    pub drain_seconds: Option<u64>,
    /// Seconds without a heartbeat after which an agent is offline (default 90).
    pub agent_offline_seconds: Option<u64>,
    /// Days of inspection history to keep; older results, dataprints, metric points, events and
    /// resolved alerts are pruned daily (each tenant's latest state always stays). Unset keeps
    /// everything.
    pub retention_days: Option<u64>,
}

impl ServerConfig {
    /// Applies the `[server]` table of a configuration file.
    pub fn apply(&mut self, file: FileConfig) {
        if let Some(s) = file.schedule {
            self.schedule = s;
        }
        if let Some(w) = file.worker {
            self.worker = w;
        }
        if let Some(a) = file.access {
            self.access = a;
        }
        if let Some(u) = file.public_url {
            self.public_url = u;
        }
        if let Some(d) = file.drain_seconds {
            self.drain = Duration::from_secs(d);
        }
        if let Some(s) = file.agent_offline_seconds {
            self.agent_offline = Duration::from_secs(s.max(1));
        }
        if let Some(days) = file.retention_days {
            self.retention = Some(Duration::from_secs(days.max(1).saturating_mul(24 * 3600)));
        }
    }
}

/// Reads the `[server]` table of a configuration file's text (other tables belong to other parts).
pub fn parse_file(text: &str) -> Result<FileConfig, String> {
    #[derive(Deserialize)]
    struct Outer {
        #[serde(default)]
        server: Option<FileConfig>,
    }
    let outer: Outer = toml_from_str(text)?;
    Ok(outer.server.unwrap_or_default())
}

fn toml_from_str<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    toml::from_str(text).map_err(|e| e.to_string())
}
