//! Tenants at work and tenants in flight.
//!
//! A run works on a bounded number of tenants at once: each holds a work permit while it reads,
//! parses, assembles and commits, which bounds the run's CPU and memory. A tenant that only waits on
//! Graph's pacing (Conditional Access allows one request per second per tenant) sets its permit
//! aside meanwhile, holding little memory, so that another tenant works; the number of tenants in
//! flight thereby adapts to how many are waiting, up to the run's cap on tenants in flight.

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The work permits of a run.
#[derive(Clone)]
pub struct Workers(Arc<Semaphore>);

impl Workers {
    /// `n` tenants may work at once (at least one).
    pub fn new(n: usize) -> Workers {
        Workers(Arc::new(Semaphore::new(n.max(1))))
    }

    /// Waits for a work permit and gives a tenant its turn.
    pub async fn turn(&self) -> Turn {
        Turn { workers: self.0.clone(), permit: Mutex::new(acquire(&self.0).await) }
    }
}

/// The semaphore is never closed, so acquiring fails only if that changes; a tenant then goes on
/// without a permit rather than stopping the run.
async fn acquire(workers: &Arc<Semaphore>) -> Option<OwnedSemaphorePermit> {
    workers.clone().acquire_owned().await.ok()
}

/// One tenant's hold on a work permit.
pub struct Turn {
    workers: Arc<Semaphore>,
    permit: Mutex<Option<OwnedSemaphorePermit>>,
}

impl Turn {
    /// Runs `wait` with the permit set aside, and takes a permit again before returning: for reads
    /// that wait on Graph's clock rather than on work.
    pub async fn aside<F: Future>(&self, wait: F) -> F::Output {
        drop(self.permit.lock().unwrap_or_else(|e| e.into_inner()).take());
        let out = wait.await;
        let permit = acquire(&self.workers).await;
        *self.permit.lock().unwrap_or_else(|e| e.into_inner()) = permit;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn available(workers: &Workers) -> usize {
        workers.0.available_permits()
    }

    fn holds(turn: &Turn) -> bool {
        turn.permit.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    #[tokio::test]
    async fn a_tenant_waiting_aside_lets_another_work() {
        let workers = Workers::new(1);
        let first = workers.turn().await;
        assert!(holds(&first));
        assert_eq!(available(&workers), 0);
        // While the first tenant waits aside, the second gets the only permit; the first gets it back
        // only once the second is done.
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let second = {
            let workers = workers.clone();
            tokio::spawn(async move {
                let turn = workers.turn().await;
                let _ = rx.await;
                drop(turn);
            })
        };
        let waited = first.aside(async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert_eq!(available(&workers), 0, "the second tenant holds the permit while the first waits");
            let _ = tx.send(());
            7
        });
        assert_eq!(waited.await, 7);
        assert!(holds(&first));
        second.await.expect("second tenant");
        assert_eq!(available(&workers), 0);
        drop(first);
        assert_eq!(available(&workers), 1);
    }
}
