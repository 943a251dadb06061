//! Redpanda's restart backoff for a transform's processor
//! (`src/v/transform/transform_manager.cc`, `processor_backoff`): 1 s after
//! a failure, doubling up to 30 s, and 1 s again once a start has run
//! healthy for 10 s.

use std::time::{Duration, Instant};

const FIRST_DELAY: Duration = Duration::from_secs(1);
const MAX_DELAY: Duration = Duration::from_secs(30);
/// A failure this long after a start attempt starts the backoff over.
const HEALTHY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    next: Duration,
    attempt: Instant,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            next: FIRST_DELAY,
            attempt: Instant::now(),
        }
    }
}

impl Backoff {
    /// A start is attempted (`mark_start_attempt`).
    pub fn started(&mut self) {
        self.attempt = Instant::now();
    }

    /// It failed: how long to wait before the next start.
    pub fn failed(&mut self) -> Duration {
        if self.attempt.elapsed() >= HEALTHY {
            self.next = FIRST_DELAY;
        }
        let delay = self.next;
        self.next = (self.next * 2).min(MAX_DELAY);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `transform_manager_test.cc` checks 1, 2, 4, 8 and 16 s.
    #[test]
    fn delays_double_to_thirty_seconds() {
        let mut backoff = Backoff::default();
        let delays: Vec<u64> = (0..7).map(|_| backoff.failed().as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
    }

    #[test]
    fn a_healthy_run_starts_over() {
        let mut backoff = Backoff::default();
        backoff.failed();
        backoff.failed();
        backoff.attempt = Instant::now() - HEALTHY;
        assert_eq!(backoff.failed(), FIRST_DELAY);
    }
}
