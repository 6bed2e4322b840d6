//! The simulator's clock: real time plus an offset that tests move through the control API, so that
//! token expiry, refresh-token inactivity and GDAP end dates can be reached without waiting.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, Utc};

#[derive(Debug, Default)]
pub struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + Duration::milliseconds(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Moves the clock forward (or back, for negative values) and returns the new time.
    pub fn advance(&self, by: Duration) -> DateTime<Utc> {
        self.offset_ms.fetch_add(by.num_milliseconds(), Ordering::Relaxed);
        self.now()
    }

    pub fn offset(&self) -> Duration {
        Duration::milliseconds(self.offset_ms.load(Ordering::Relaxed))
    }
}
