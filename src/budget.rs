//! The work budget of judging one text: a deadline, a cap on the spans found, and a cancel
//! switch, checked cooperatively inside the loops that could otherwise run on (the span search,
//! provenance, near-verbatim chaining, the probe between windows).
//!
//! Whatever a text holds, judging it stops when its budget does: the caller gets what was found
//! up to that point and an [`Incomplete`] saying how far the text was checked and why. On HTTP
//! the request's deadline cancels the budget, so the work stops and its slot is free when the
//! client is answered 503; on Kafka the text gets a verdict marked incomplete, never a stalled
//! partition.

use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// Why work on a text stopped before the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// The text's time was up (`limits.text_seconds`).
    Deadline,
    /// More spans than `limits.max_spans` were found.
    Spans,
    /// The caller gave up on it (an HTTP request answered 503 at its deadline, shutdown).
    Cancelled,
}

impl Stop {
    /// The name used in verdicts and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            Stop::Deadline => "deadline",
            Stop::Spans => "spans",
            Stop::Cancelled => "cancelled",
        }
    }

    fn code(self) -> u8 {
        match self {
            Stop::Deadline => 1,
            Stop::Spans => 2,
            Stop::Cancelled => 3,
        }
    }

    fn from_code(c: u8) -> Option<Stop> {
        match c {
            1 => Some(Stop::Deadline),
            2 => Some(Stop::Spans),
            3 => Some(Stop::Cancelled),
            _ => None,
        }
    }
}

/// A text checked only in part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Incomplete {
    /// Characters from the text's start that were checked whole; spans found past them are
    /// reported too, but some there may be missing.
    pub checked_chars: usize,
    /// Why it stopped.
    pub reason: Stop,
}

/// The budget of one text. Shared by reference with the loops that spend it, and with whoever
/// may cancel it (another thread).
#[derive(Debug)]
pub struct Budget {
    deadline: Option<Instant>,
    max_spans: usize,
    cancelled: AtomicBool,
    /// The first reason work stopped ([`Stop::code`]; 0 while it goes on).
    stopped: AtomicU8,
}

impl Default for Budget {
    fn default() -> Self {
        Budget::unlimited()
    }
}

impl Budget {
    /// No deadline, no cap: only [`Budget::cancel`] stops the work.
    pub const fn unlimited() -> Budget {
        Budget {
            deadline: None,
            max_spans: usize::MAX,
            cancelled: AtomicBool::new(false),
            stopped: AtomicU8::new(0),
        }
    }

    /// A budget of `time` from now (none: no deadline) and at most `max_spans` spans.
    pub fn new(time: Option<Duration>, max_spans: usize) -> Budget {
        Budget {
            deadline: time.map(|t| Instant::now() + t),
            max_spans: max_spans.max(1),
            cancelled: AtomicBool::new(false),
            stopped: AtomicU8::new(0),
        }
    }

    /// Stops the work at its next check (from any thread).
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    /// The most spans a text may yield.
    pub fn max_spans(&self) -> usize {
        self.max_spans
    }

    /// Whether there is time left (not past the deadline, not cancelled); once there is not,
    /// there never is again. Cheap (a clock read): called once per search step. The span cap
    /// does not stop this: the spans found before it still get their provenance.
    #[inline]
    pub fn go(&self) -> bool {
        let s = self.stopped.load(Ordering::Relaxed);
        if s == Stop::Deadline.code() || s == Stop::Cancelled.code() {
            return false;
        }
        if self.cancelled.load(Ordering::Relaxed) {
            self.stop(Stop::Cancelled);
            return false;
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            self.stop(Stop::Deadline);
            return false;
        }
        true
    }

    /// Whether `found` spans are still within the cap (stops the budget when not).
    #[inline]
    pub fn spans_ok(&self, found: usize) -> bool {
        if found > self.max_spans {
            self.stop(Stop::Spans);
            return false;
        }
        true
    }

    /// Records why work stopped (the first reason wins).
    pub fn stop(&self, why: Stop) {
        let _ = self
            .stopped
            .compare_exchange(0, why.code(), Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Why the work stopped, if it did.
    pub fn stopped(&self) -> Option<Stop> {
        Stop::from_code(self.stopped.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_stops_for_the_first_reason_and_stays_stopped() {
        let b = Budget::unlimited();
        assert!(b.go() && b.spans_ok(1_000_000));
        b.cancel();
        assert!(!b.go());
        assert_eq!(b.stopped(), Some(Stop::Cancelled));

        let b = Budget::new(Some(Duration::ZERO), 10);
        assert!(b.spans_ok(10));
        assert!(!b.spans_ok(11));
        assert_eq!(b.stopped(), Some(Stop::Spans));
        assert!(!b.go(), "past the deadline");
        assert_eq!(b.stopped(), Some(Stop::Spans), "the first reason wins");

        let b = Budget::new(Some(Duration::ZERO), 10);
        assert!(!b.go());
        assert_eq!(b.stopped(), Some(Stop::Deadline));
    }
}
