//! Jobs and the worker that runs them.
//!
//! A job is a row in the store ([`store::JobStore`]); any worker of its pool may claim it. The
//! worker renews its lease while it works and saves its progress with each renewal; when the lease
//! is lost (the worker stalled and another claimed the job) or an operator cancels the job, the
//! work is dropped at once. A job's tenant results are fenced by the store, so a worker that lost
//! its lease cannot commit anything, and a later attempt skips the tenants already committed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use microsoft::har::HarRecorder;
use serde_json::Value;
use store::{JobOutcome, JobRecord, NewJob, Store};
use tokio::sync::watch;

pub use agent::execute::{DoctorParams, Executor, InspectParams, KINDS, Microsoft, Progress, validate};

/// A job to queue with the worker's defaults.
pub fn new_job(kind: &str, params: Value, pool: &str, max_attempts: i64, created_by: &str) -> NewJob {
    NewJob {
        kind: kind.to_string(),
        params,
        pool: pool.to_string(),
        max_attempts,
        not_before: Utc::now(),
        created_by: created_by.to_string(),
    }
}

/// Where a job's debug trace is kept.
pub fn trace_path(data_dir: &std::path::Path, job_id: &str) -> Option<PathBuf> {
    // The id comes from the store, but it names a file: anything but a UUID is refused.
    uuid::Uuid::parse_str(job_id).ok()?;
    Some(data_dir.join("debug").join(format!("job-{job_id}.har")))
}

/// The client id of a server that has no app configured yet.
pub const NO_APP: &str = "00000000-0000-0000-0000-000000000000";

/// The token cache of the server's own partner connection: the store's.
pub fn local_tokens(store: &Arc<dyn Store>) -> Arc<dyn microsoft::cache::TokenStore> {
    Arc::new(inspect::StoreTokens { store: store.clone() })
}

/// Writes a job's debug trace where the API serves it from, and says so in the job's result.
pub fn keep_trace(data_dir: &std::path::Path, job_id: &str, har: &HarRecorder, result: &mut Value) {
    let written = match trace_path(data_dir, job_id) {
        Some(path) => path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| har.write(&path))
            .map_err(|e| format!("the debug trace could not be written to {}: {e}", path.display())),
        None => Err(format!("{job_id:?} is not a job id")),
    };
    result["trace"] = agent::execute::trace_summary(job_id, written, har.len());
}

/// How long to wait before retrying a job that failed `attempts` times: 30 s, doubling, at most
/// 30 minutes.
pub fn backoff(attempts: i64) -> chrono::Duration {
    let exponent = attempts.clamp(1, 7) - 1;
    chrono::Duration::seconds((30i64 << exponent).min(1800))
}

/// The worker: claims jobs of its pool one at a time and runs them.
pub struct Worker {
    pub executor: Executor<dyn Store>,
    /// Where debug traces are kept.
    pub data_dir: PathBuf,
    pub owner: String,
    pub pool: String,
    pub lease: Duration,
    pub heartbeat: Duration,
    pub poll: Duration,
}

impl Worker {
    /// Claims and runs jobs until `stop` turns true; then lets the job in hand run for at most
    /// `drain` before dropping it (its lease then expires and another worker resumes it).
    pub async fn run(self, mut stop: watch::Receiver<bool>, drain: Duration) {
        loop {
            if *stop.borrow() {
                return;
            }
            let lease = chrono::Duration::from_std(self.lease).unwrap_or(chrono::Duration::seconds(60));
            let claimed = self.executor.store.claim_job(&self.owner, &self.pool, Utc::now(), lease).await;
            match claimed {
                Ok(Some(job)) => self.run_job(job, stop.clone(), drain).await,
                Ok(None) => {
                    tokio::select! {
                        _ = tokio::time::sleep(self.poll) => {}
                        _ = stop.changed() => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the worker could not claim a job; it tries again shortly");
                    tokio::select! {
                        _ = tokio::time::sleep(self.poll.max(Duration::from_secs(1))) => {}
                        _ = stop.changed() => {}
                    }
                }
            }
        }
    }

    async fn run_job(&self, job: JobRecord, mut stop: watch::Receiver<bool>, drain: Duration) {
        let Some(lease) = job.lease() else { return };
        tracing::info!(job = %job.id, kind = %job.kind, attempt = job.attempts, "job claimed");
        let progress = Arc::new(Progress::default());
        let spec = agent::execute::Job {
            id: job.id.clone(),
            kind: job.kind.clone(),
            params: job.params.clone(),
            lease: lease.clone(),
        };
        let work = async {
            let executed = self.executor.execute(&spec, progress.clone()).await;
            match (executed.result, executed.trace) {
                (Ok(mut value), Some(har)) => {
                    keep_trace(&self.data_dir, &job.id, &har, &mut value);
                    Ok(value)
                }
                (result, _) => result,
            }
        };
        tokio::pin!(work);
        let lease_for = chrono::Duration::from_std(self.lease).unwrap_or(chrono::Duration::seconds(60));
        let mut ticker = tokio::time::interval(self.heartbeat);
        ticker.tick().await;
        let mut deadline: Option<tokio::time::Instant> = None;
        let outcome = loop {
            let drain_at = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                result = &mut work => {
                    break Some(match result {
                        Ok(value) => JobOutcome::Succeeded(value),
                        Err(error) => JobOutcome::Failed { error, retry_at: Utc::now() + backoff(job.attempts) },
                    });
                }
                _ = ticker.tick() => {
                    let value = progress.value();
                    match self.executor.store.heartbeat_job(&lease, Utc::now(), lease_for, Some(&value)).await {
                        Ok(current) if current.cancel_requested_at.is_some() => {
                            tracing::info!(job = %job.id, "job cancelled by an operator");
                            break Some(JobOutcome::Cancelled);
                        }
                        Ok(_) => {}
                        Err(store::StoreError::Fenced { .. }) => {
                            tracing::warn!(job = %job.id, "this worker lost the job's lease; its work is dropped");
                            break None;
                        }
                        Err(e) => tracing::warn!(job = %job.id, error = %e, "the job's lease could not be renewed"),
                    }
                }
                _ = stop.changed(), if deadline.is_none() => {
                    tracing::info!(job = %job.id, seconds = drain.as_secs(), "shutting down: the job in hand may finish first");
                    deadline = Some(tokio::time::Instant::now() + drain);
                }
                _ = drain_at => {
                    tracing::warn!(job = %job.id, "shutting down: the job did not finish in time; its lease will expire and another worker resumes it");
                    break None;
                }
            }
        };
        let Some(outcome) = outcome else { return };
        match self.executor.store.finish_job(&lease, &outcome, Utc::now()).await {
            Ok(done) => tracing::info!(job = %done.id, status = %done.status, "job finished"),
            Err(e) => tracing::warn!(job = %job.id, error = %e, "the job's end could not be recorded"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_stops_at_half_an_hour() {
        assert_eq!(backoff(1), chrono::Duration::seconds(30));
        assert_eq!(backoff(2), chrono::Duration::seconds(60));
        assert_eq!(backoff(7), chrono::Duration::seconds(1800));
        assert_eq!(backoff(100), chrono::Duration::seconds(1800));
        assert_eq!(backoff(-3), chrono::Duration::seconds(30));
    }

    #[test]
    fn trace_paths_only_name_job_ids() {
        let dir = std::path::Path::new("/data");
        assert!(trace_path(dir, "../../etc/passwd").is_none());
        let id = uuid::Uuid::now_v7().to_string();
        assert_eq!(trace_path(dir, &id), Some(dir.join("debug").join(format!("job-{id}.har"))));
    }
}
