//! Retrying transient failures: throttling, server errors and broken connections. `Retry-After` is
//! honoured and never undercut; without it, exponential backoff with jitter. Attempts and total time
//! are bounded, and a `Retry-After` beyond the remaining budget ends the retries at once instead of
//! sleeping for it.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use crate::error::Error;
use crate::http::Stats;

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Total time spent waiting between attempts.
    pub max_wait: Duration,
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 7,
            max_wait: Duration::from_secs(120),
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// A policy for tests and fast paths: the same rules with short delays.
    pub fn quick() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            max_wait: Duration::from_secs(20),
            min_delay: Duration::from_millis(20),
            max_delay: Duration::from_secs(2),
        }
    }

    fn builder(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_attempts.saturating_sub(1) as usize)
    }

    /// Runs `op` until it succeeds, fails for good, or the budget is spent.
    pub(crate) async fn run<T, F, Fut>(&self, stats: &Stats, mut op: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let mut attempts: u32 = 0;
        let mut waited = Duration::ZERO;
        let budget = self.max_wait;
        let builder = self.builder();
        let result = (|| {
            attempts += 1;
            op()
        })
        .retry(builder)
        .when(|e: &Error| e.is_transient())
        .adjust(|e: &Error, backoff: Option<Duration>| {
            let backoff = backoff?;
            let wait = match e.retry_after() {
                // Never retry earlier than the server asked; a zero still gets a short pause so that a
                // misbehaving server cannot turn the client into a busy loop.
                Some(secs) => Duration::from_secs(secs).max(Duration::from_millis(50)),
                None => backoff,
            };
            if waited + wait > budget {
                return None;
            }
            waited += wait;
            Some(wait)
        })
        .notify(|e: &Error, wait: Duration| {
            stats.retries.fetch_add(1, Ordering::Relaxed);
            if matches!(e, Error::Graph(g) if g.status == 429) || matches!(e, Error::Token(t) if t.status == 429) {
                stats.throttled.fetch_add(1, Ordering::Relaxed);
                stats.throttle_wait_ms.fetch_add(wait.as_millis() as u64, Ordering::Relaxed);
            }
            tracing::debug!(error = %e, wait_ms = wait.as_millis() as u64, "retrying");
        })
        .await;
        match result {
            Ok(v) => Ok(v),
            Err(e) if attempts > 1 && e.is_transient() => Err(Error::Exhausted { attempts, last: Box::new(e) }),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::GraphError;
    use std::sync::atomic::AtomicU32;
    use std::time::Instant;

    fn throttled(retry_after: Option<u64>) -> Error {
        Error::Graph(Box::new(GraphError {
            url: "u".into(),
            method: "GET".into(),
            status: 429,
            code: "TooManyRequests".into(),
            inner_code: None,
            message: "slow down".into(),
            request_id: None,
            client_request_id: None,
            date: None,
            www_authenticate: None,
            retry_after,
        }))
    }

    #[tokio::test]
    async fn honours_retry_after_and_succeeds() {
        let calls = AtomicU32::new(0);
        let stats = Stats::default();
        let started = Instant::now();
        let r = RetryPolicy::quick()
            .run(&stats, || async {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 { Err(throttled(Some(1))) } else { Ok(7) }
            })
            .await;
        assert_eq!(r.unwrap(), 7);
        assert!(started.elapsed() >= Duration::from_secs(1), "retried before Retry-After");
        assert_eq!(Stats::get(&stats.throttled), 1);
    }

    #[tokio::test]
    async fn huge_retry_after_gives_up_at_once() {
        let stats = Stats::default();
        let started = Instant::now();
        let r: Result<(), Error> =
            RetryPolicy::quick().run(&stats, || async { Err(throttled(Some(1_000_000_000))) }).await;
        assert!(matches!(r, Err(Error::Graph(_))));
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn permanent_errors_are_not_retried() {
        let calls = AtomicU32::new(0);
        let stats = Stats::default();
        let r: Result<(), Error> = RetryPolicy::quick()
            .run(&stats, || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(Error::Config("no".into()))
            })
            .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn attempts_are_bounded() {
        let calls = AtomicU32::new(0);
        let stats = Stats::default();
        let r: Result<(), Error> = RetryPolicy::quick()
            .run(&stats, || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(throttled(None))
            })
            .await;
        assert!(matches!(r, Err(Error::Exhausted { attempts: 5, .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 5);
    }
}
