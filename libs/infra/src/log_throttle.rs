//! One log line per interval for errors that come per request.
//!
//! When a dependency is down, every request fails the same way: a line each would write
//! thousands of identical lines a second, costing CPU when the instance can least afford it
//! and burying everything else in the logs. [`LogThrottle`] lets the first line of each
//! interval through and counts the rest, which the next line reports.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Admits one log line per `interval_ms` milliseconds, across threads, without a lock.
#[derive(Debug)]
pub struct LogThrottle {
    interval_ms: u64,
    /// Wall-clock millisecond from which the next line may go out.
    next_ms: AtomicU64,
    /// Lines held back since the last one admitted.
    held_back: AtomicU64,
}

impl LogThrottle {
    /// A throttle letting one line through per `interval_ms` milliseconds.
    pub const fn new(interval_ms: u64) -> Self {
        Self {
            interval_ms,
            next_ms: AtomicU64::new(0),
            held_back: AtomicU64::new(0),
        }
    }

    /// `Some(n)` if a line may be written now, `n` being how many were held back since the
    /// previous one (to log with it); `None` if this one must be dropped.
    pub fn admit(&self) -> Option<u64> {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as u64);
        self.admit_at(now_ms)
    }

    fn admit_at(&self, now_ms: u64) -> Option<u64> {
        let next = self.next_ms.load(Ordering::Relaxed);
        if now_ms >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now_ms + self.interval_ms,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return Some(self.held_back.swap(0, Ordering::Relaxed));
        }
        self.held_back.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_and_the_next_counts_the_rest() {
        let throttle = LogThrottle::new(1_000);
        assert_eq!(throttle.admit_at(10_000), Some(0));
        assert_eq!(throttle.admit_at(10_001), None);
        assert_eq!(throttle.admit_at(10_999), None);
        assert_eq!(throttle.admit_at(11_000), Some(2));
        assert_eq!(throttle.admit_at(11_500), None);
        assert_eq!(throttle.admit_at(20_000), Some(1));
    }
}
