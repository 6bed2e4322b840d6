//! Microsoft Graph throttling for identity and access APIs: resource-unit token buckets per app and
//! tenant (sized by the tenant's user count), a global bucket per app, one request per second per tenant
//! for Conditional Access (answered without `Retry-After`, as Microsoft does), and five report requests
//! per ten seconds. A client that retries before its `Retry-After` has elapsed is throttled again and
//! counted as an early retry.
//!
//! Buckets run on the real monotonic clock, not the simulated one: `Retry-After` is a promise about how
//! long the client really has to wait.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::authz::Class;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    capacity: f64,
    tokens: f64,
    per_second: f64,
    updated: Instant,
}

impl Bucket {
    fn new(capacity: f64, window: Duration) -> Bucket {
        Bucket { capacity, tokens: capacity, per_second: capacity / window.as_secs_f64(), updated: Instant::now() }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        self.updated = now;
    }

    /// Takes `cost` tokens, or returns how long until they are available.
    fn take(&mut self, cost: f64, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= cost {
            self.tokens -= cost;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((cost - self.tokens) / self.per_second))
        }
    }

    fn used_fraction(&self) -> f64 {
        1.0 - self.tokens / self.capacity
    }
}

/// A wait as the whole seconds of `Retry-After`, rounded up and at least one.
fn whole_seconds(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

/// Why a request was throttled, and what to tell the client.
#[derive(Debug, Clone)]
pub(crate) struct Throttled {
    /// Seconds to wait; `None` where Microsoft sends no `Retry-After`.
    pub retry_after: Option<u64>,
    pub scope: String,
    pub information: &'static str,
    pub early_retry: bool,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Usage {
    pub resource_units: u32,
    /// Used share of the app-and-tenant bucket, reported above 80 %.
    pub limit_percentage: Option<f64>,
}

/// Limits per window; tests shrink them through the control API to reach throttling quickly.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
#[serde(default)]
pub(crate) struct Limits {
    pub small: f64,
    pub medium: f64,
    pub large: f64,
    pub app_global: f64,
    pub reports_per_10s: f64,
    pub conditional_access_per_second: f64,
    pub enabled: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            small: 3500.0,
            medium: 5000.0,
            large: 8000.0,
            app_global: 150_000.0,
            reports_per_10s: 5.0,
            conditional_access_per_second: 1.0,
            enabled: true,
        }
    }
}

#[derive(Default)]
struct Inner {
    tenant_app: HashMap<(Uuid, Uuid), Bucket>,
    app: HashMap<Uuid, Bucket>,
    reports: HashMap<(Uuid, Uuid), Bucket>,
    conditional_access: HashMap<Uuid, Bucket>,
    blocked: HashMap<(Uuid, Uuid, Class), Instant>,
    /// Requests that were throttled, by the client's request key, until their `Retry-After` ends. A
    /// request that comes back under the same key before then is an early retry. Requests merely in
    /// flight at the same time are throttled too, but they are not retries.
    throttled_requests: HashMap<String, Instant>,
}

#[derive(Default)]
pub(crate) struct Throttle {
    inner: Mutex<Inner>,
    limits: Mutex<Limits>,
}

impl Throttle {
    pub(crate) fn set_limits(&self, limits: Limits) {
        *self.limits.lock().unwrap_or_else(|e| e.into_inner()) = limits;
        *self.inner.lock().unwrap_or_else(|e| e.into_inner()) = Inner::default();
    }

    pub(crate) fn limits(&self) -> Limits {
        self.limits.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Admits or throttles one request of `cost` resource units. `request_key` identifies the logical
    /// request across retries: the client's `client-request-id`, or the method and URL without one.
    pub(crate) fn check(
        &self,
        app: Uuid,
        tenant: Uuid,
        users: usize,
        class: Class,
        cost: u32,
        request_key: &str,
    ) -> Result<Usage, Throttled> {
        let result = self.check_inner(app, tenant, users, class, cost, request_key);
        if let Err(t) = &result {
            let wait = Duration::from_secs(t.retry_after.unwrap_or(1));
            let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            if inner.throttled_requests.len() > 100_000 {
                inner.throttled_requests.retain(|_, until| *until > now);
            }
            inner.throttled_requests.insert(request_key.to_string(), now + wait);
        }
        result
    }

    fn check_inner(
        &self,
        app: Uuid,
        tenant: Uuid,
        users: usize,
        class: Class,
        cost: u32,
        request_key: &str,
    ) -> Result<Usage, Throttled> {
        let limits = self.limits();
        if !limits.enabled {
            return Ok(Usage { resource_units: cost, limit_percentage: None });
        }
        let now = Instant::now();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let scope = format!("Tenant_Application/Read/{app}/{tenant}");
        let early = inner.throttled_requests.get(request_key).is_some_and(|until| now < *until);
        if let Some(until) = inner.blocked.get(&(app, tenant, class)).copied() {
            if now < until {
                let wait = until.saturating_duration_since(now);
                // Rounded up: a client that waits exactly Retry-After seconds must find the block lifted.
                return Err(Throttled {
                    retry_after: (class != Class::ConditionalAccess).then(|| whole_seconds(wait)),
                    scope,
                    information: "ResourceUnitLimitExceeded",
                    early_retry: early,
                });
            }
            inner.blocked.remove(&(app, tenant, class));
        }
        let result = match class {
            Class::ConditionalAccess => inner
                .conditional_access
                .entry(tenant)
                .or_insert_with(|| Bucket::new(limits.conditional_access_per_second, Duration::from_secs(1)))
                .take(1.0, now),
            Class::Reports => inner
                .reports
                .entry((app, tenant))
                .or_insert_with(|| Bucket::new(limits.reports_per_10s, Duration::from_secs(10)))
                .take(1.0, now),
            Class::Directory => Ok(()),
        };
        if let Err(wait) = result {
            inner.blocked.insert((app, tenant, class), now + wait);
            return Err(Throttled {
                retry_after: (class != Class::ConditionalAccess).then(|| whole_seconds(wait)),
                scope,
                information: "ResourceUnitLimitExceeded",
                early_retry: false,
            });
        }
        let capacity = if users < 50 {
            limits.small
        } else if users <= 500 {
            limits.medium
        } else {
            limits.large
        };
        let global = inner
            .app
            .entry(app)
            .or_insert_with(|| Bucket::new(limits.app_global, Duration::from_secs(20)))
            .take(f64::from(cost), now);
        let bucket =
            inner.tenant_app.entry((app, tenant)).or_insert_with(|| Bucket::new(capacity, Duration::from_secs(10)));
        let local = bucket.take(f64::from(cost), now);
        let used = bucket.used_fraction();
        match (global, local) {
            (Ok(()), Ok(())) => Ok(Usage {
                resource_units: cost,
                limit_percentage: (used >= 0.8).then_some((used * 10.0).round() / 10.0),
            }),
            (Err(wait), _) | (_, Err(wait)) => {
                let secs = whole_seconds(wait);
                inner.blocked.insert((app, tenant, Class::Directory), now + Duration::from_secs(secs));
                Err(Throttled {
                    retry_after: Some(secs),
                    scope,
                    information: "ResourceUnitLimitExceeded",
                    early_retry: false,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_throttles_and_blocks_early_retries() {
        let t = Throttle::default();
        t.set_limits(Limits { small: 10.0, ..Limits::default() });
        let (app, tenant) = (Uuid::new_v4(), Uuid::new_v4());
        for _ in 0..5 {
            assert!(t.check(app, tenant, 10, Class::Directory, 2, "r0").is_ok());
        }
        let first = t.check(app, tenant, 10, Class::Directory, 2, "r1").unwrap_err();
        assert!(!first.early_retry);
        assert!(first.retry_after.is_some_and(|s| s >= 1));
        let other = t.check(app, tenant, 10, Class::Directory, 1, "r2").unwrap_err();
        assert!(!other.early_retry, "a different request is throttled but is not a retry");
        let again = t.check(app, tenant, 10, Class::Directory, 1, "r1").unwrap_err();
        assert!(again.early_retry);
    }

    #[test]
    fn conditional_access_has_no_retry_after() {
        let t = Throttle::default();
        let (app, tenant) = (Uuid::new_v4(), Uuid::new_v4());
        assert!(t.check(app, tenant, 10, Class::ConditionalAccess, 1, "a").is_ok());
        let err = t.check(app, tenant, 10, Class::ConditionalAccess, 1, "b").unwrap_err();
        assert_eq!(err.retry_after, None);
    }
}
