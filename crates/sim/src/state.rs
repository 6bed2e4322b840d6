//! The simulator's shared state: the world, the clock, the keys, and the server-side state of sign-in
//! flows, codes and refresh tokens.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::clock::Clock;
use crate::faults::FaultDice;
use crate::graph::throttle::Throttle;
use crate::keys::Keys;
use crate::world::World;

/// Who signed in, and how strongly: the facts that every token descending from a sign-in carries.
#[derive(Debug, Clone)]
pub(crate) struct Authn {
    pub(crate) home_tenant: Uuid,
    pub(crate) user: Uuid,
    /// When the user authenticated (password), for sign-in frequency.
    pub(crate) auth_time: DateTime<Utc>,
    /// When MFA was performed in this session, if it was.
    pub(crate) mfa_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub(crate) enum FlowKind {
    Authorize {
        client_id: Uuid,
        redirect_uri: String,
        response_mode: String,
        state: Option<String>,
        nonce: Option<String>,
        code_challenge: Option<String>,
        code_challenge_method: String,
        scopes: Vec<String>,
    },
    Device {
        device_code: String,
    },
}

/// An interactive sign-in in progress on the simulator's HTML pages.
#[derive(Debug, Clone)]
pub(crate) struct Flow {
    pub(crate) kind: FlowKind,
    /// The tenant segment of the request: an id, a domain, `common` or `organizations`.
    pub(crate) tenant: String,
    pub(crate) client_id: Uuid,
    pub(crate) scopes: Vec<String>,
    pub(crate) authn: Option<Authn>,
    pub(crate) password_ok: bool,
    pub(crate) created: DateTime<Utc>,
    pub(crate) client_ip: IpAddr,
}

#[derive(Debug, Clone)]
pub(crate) struct AuthCode {
    pub(crate) client_id: Uuid,
    pub(crate) redirect_uri: String,
    pub(crate) code_challenge: Option<String>,
    pub(crate) code_challenge_method: String,
    pub(crate) resource_tenant: Uuid,
    pub(crate) scopes: Vec<String>,
    pub(crate) nonce: Option<String>,
    pub(crate) authn: Authn,
    pub(crate) issued: DateTime<Utc>,
    pub(crate) redeemed: bool,
}

#[derive(Debug, Clone)]
pub(crate) enum DeviceStatus {
    Pending,
    Approved { authn: Authn, resource_tenant: Uuid },
    Declined,
    Redeemed,
}

#[derive(Debug, Clone)]
pub(crate) struct DeviceCode {
    pub(crate) client_id: Uuid,
    pub(crate) scopes: Vec<String>,
    pub(crate) tenant: String,
    pub(crate) expires: DateTime<Utc>,
    pub(crate) status: DeviceStatus,
}

#[derive(Debug, Clone)]
pub(crate) struct RefreshState {
    pub(crate) client_id: Uuid,
    pub(crate) authn: Authn,
    pub(crate) scopes: Vec<String>,
    pub(crate) issued: DateTime<Utc>,
    pub(crate) last_used: DateTime<Utc>,
}

#[derive(Default)]
pub(crate) struct Sessions {
    pub(crate) flows: HashMap<String, Flow>,
    pub(crate) codes: HashMap<String, AuthCode>,
    pub(crate) device_codes: HashMap<String, DeviceCode>,
    pub(crate) user_codes: HashMap<String, String>,
    pub(crate) refresh_tokens: HashMap<String, RefreshState>,
    /// The sign-in behind each access token issued for a web API of the world, by its `uti`, with the
    /// token's expiry: what an on-behalf-of request presenting that token continues.
    pub(crate) api_tokens: HashMap<String, (Authn, DateTime<Utc>)>,
}

/// How many distinct Graph paths the counters keep apart.
pub(crate) const MAX_COUNTED_PATHS: usize = 4096;

/// Request counters, readable through the control API.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) token_requests: AtomicU64,
    pub(crate) token_errors: AtomicU64,
    pub(crate) graph_requests: AtomicU64,
    pub(crate) graph_errors: AtomicU64,
    pub(crate) throttled: AtomicU64,
    pub(crate) early_retries: AtomicU64,
    pub(crate) batch_requests: AtomicU64,
    pub(crate) faults_injected: AtomicU64,
    pub(crate) per_tenant: Mutex<HashMap<Uuid, TenantCounters>>,
    pub(crate) per_path: Mutex<HashMap<String, u64>>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub(crate) struct TenantCounters {
    pub(crate) graph_requests: u64,
    pub(crate) throttled: u64,
    pub(crate) early_retries: u64,
    pub(crate) token_requests: u64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn tenant(&self, tenant: Uuid, f: impl FnOnce(&mut TenantCounters)) {
        let mut map = self.per_tenant.lock().unwrap_or_else(|e| e.into_inner());
        f(map.entry(tenant).or_default());
    }

    pub(crate) fn path(&self, path: &str) {
        let mut map = self.per_path.lock().unwrap_or_else(|e| e.into_inner());
        // Paths come from clients; past a few thousand distinct ones the rest are counted together so that
        // a client probing random paths cannot grow the map without bound.
        let key = if map.len() >= MAX_COUNTED_PATHS && !map.contains_key(path) { "{other}" } else { path };
        match map.get_mut(key) {
            Some(n) => *n += 1,
            None => {
                map.insert(key.to_string(), 1);
            }
        }
    }

    pub(crate) fn snapshot(&self) -> serde_json::Value {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let tenants = self.per_tenant.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let paths = self.per_path.lock().unwrap_or_else(|e| e.into_inner()).clone();
        serde_json::json!({
            "token_requests": load(&self.token_requests),
            "token_errors": load(&self.token_errors),
            "graph_requests": load(&self.graph_requests),
            "graph_errors": load(&self.graph_errors),
            "throttled": load(&self.throttled),
            "early_retries": load(&self.early_retries),
            "batch_requests": load(&self.batch_requests),
            "faults_injected": load(&self.faults_injected),
            "tenants": tenants.into_iter().map(|(k, v)| (k.to_string(), v)).collect::<std::collections::BTreeMap<_, _>>(),
            "paths": paths.into_iter().collect::<std::collections::BTreeMap<_, _>>(),
        })
    }

    pub(crate) fn reset(&self) {
        for c in [
            &self.token_requests,
            &self.token_errors,
            &self.graph_requests,
            &self.graph_errors,
            &self.throttled,
            &self.early_retries,
            &self.batch_requests,
            &self.faults_injected,
        ] {
            c.store(0, Ordering::Relaxed);
        }
        self.per_tenant.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.per_path.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// The decoded, verified claims of a Graph access token.
#[derive(Debug, Clone)]
pub struct AccessClaims {
    pub(crate) tid: Uuid,
    pub(crate) appid: Uuid,
    pub(crate) oid: Option<Uuid>,
    pub(crate) scp: Vec<String>,
    pub(crate) roles: Vec<String>,
    pub(crate) amr: Vec<String>,
    pub(crate) nbf: i64,
    pub(crate) exp: i64,
    /// The home tenant of the user when it differs from `tid` (a partner user through GDAP).
    pub(crate) home_tid: Option<Uuid>,
    pub(crate) iat: i64,
    /// The client declared the `cp1` capability (`xms_cc`): Graph evaluates the token continuously and
    /// answers a revoked session or a disallowed location with a claims challenge.
    pub(crate) cae: bool,
}

impl AccessClaims {
    pub(crate) fn is_app_only(&self) -> bool {
        self.oid.is_none() || (self.scp.is_empty() && !self.roles.is_empty())
    }
}

pub struct Sim {
    pub(crate) base_url: String,
    pub(crate) control_token: String,
    pub(crate) world: RwLock<World>,
    pub(crate) clock: Clock,
    pub keys: Keys,
    pub(crate) sessions: Mutex<Sessions>,
    pub(crate) counters: Counters,
    pub(crate) throttle: Throttle,
    pub(crate) dice: FaultDice,
    /// Access tokens already verified, so that the signature check runs once per token.
    pub(crate) verified: Mutex<HashMap<String, Arc<AccessClaims>>>,
    pub(crate) delta: Mutex<crate::graph::delta::DeltaStore>,
}

pub(crate) type SharedSim = Arc<Sim>;

impl Sim {
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub fn world(&self) -> std::sync::RwLockReadGuard<'_, World> {
        self.world.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn world_mut(&self) -> std::sync::RwLockWriteGuard<'_, World> {
        self.world.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The key that signs tokens now, honouring the world's `key_rotation_minutes`.
    pub(crate) fn signing_key(&self) -> Option<Arc<crate::keys::SigningKey>> {
        let minutes = self.world().settings.key_rotation_minutes;
        self.signing_key_at(self.now(), minutes)
    }

    /// The key that signs tokens at `now`, rotating first when the active key is `rotate_minutes` old. A
    /// failed rotation keeps signing with the current key.
    pub(crate) fn signing_key_at(
        &self,
        now: DateTime<Utc>,
        rotate_minutes: u64,
    ) -> Option<Arc<crate::keys::SigningKey>> {
        if self.keys.rotation_due(now, rotate_minutes) {
            let _ = self.rotate_keys();
        }
        self.keys.active()
    }

    /// Rotates the signing key. Verified tokens are forgotten, so that tokens signed by a key that is no
    /// longer published stop validating, as at Microsoft.
    pub(crate) fn rotate_keys(&self) -> Result<String, crate::tls::TlsError> {
        let kid = self.keys.rotate()?;
        self.verified.lock().unwrap_or_else(|e| e.into_inner()).clear();
        Ok(kid)
    }

    pub(crate) fn sessions(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A random opaque token of `bytes` random bytes, base64url encoded with a prefix.
pub(crate) fn opaque(prefix: &str, bytes: usize) -> String {
    use base64::Engine;
    use rand::RngExt;
    let mut rng = rand::rng();
    let data: Vec<u8> = (0..bytes).map(|_| rng.random::<u8>()).collect();
    format!("{prefix}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data))
}
