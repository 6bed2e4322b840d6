//! The simulator's clock: real time plus an offset that tests move through the control API, so that
//! token expiry, refresh-token inactivity and GDAP end dates can be reached without waiting.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, Utc};

/// The offset never exceeds two centuries either way, so that `now()` stays far inside chrono's range
/// however often a test moves the clock.
const MAX_OFFSET_MS: i64 = 2 * 36_525 * 86_400 * 1000;

#[derive(Debug, Default)]
pub(crate) struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
    pub(crate) fn now(&self) -> DateTime<Utc> {
        let real = Utc::now();
        real.checked_add_signed(Duration::milliseconds(self.offset_ms.load(Ordering::Relaxed))).unwrap_or(real)
    }

    /// Moves the clock forward (or back, for negative values) and returns the new time. The total offset
    /// is clamped to two centuries.
    pub(crate) fn advance(&self, by: Duration) -> DateTime<Utc> {
        let by = by.num_milliseconds().clamp(-MAX_OFFSET_MS, MAX_OFFSET_MS);
        let _ = self.offset_ms.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |cur| {
            Some(cur.saturating_add(by).clamp(-MAX_OFFSET_MS, MAX_OFFSET_MS))
        });
        self.now()
    }

    pub(crate) fn offset(&self) -> Duration {
        Duration::milliseconds(self.offset_ms.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_now_and_is_clamped() {
        let c = Clock::default();
        let before = c.now();
        let after = c.advance(Duration::hours(2));
        assert!(after - before >= Duration::hours(2));
        assert_eq!(c.offset(), Duration::hours(2));
        c.advance(Duration::MAX);
        c.advance(Duration::MAX);
        assert_eq!(c.offset().num_milliseconds(), MAX_OFFSET_MS);
        assert!(c.now() > before);
        c.advance(Duration::MIN);
        assert_eq!(c.offset(), Duration::zero(), "each step is clamped too");
        c.advance(Duration::MIN);
        assert_eq!(c.offset().num_milliseconds(), -MAX_OFFSET_MS);
    }
}
