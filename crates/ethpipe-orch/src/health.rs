//! What the scheduler tells `/readyz` and `/metrics` about itself: whether it
//! leads, how often it had to reconnect, how many days are due. Counters are
//! this process's own (since it started), as Prometheus expects of counters.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct Health {
    leader: AtomicBool,
    leader_changes: AtomicU64,
    reconnects: AtomicU64,
    abandoned_runs: AtomicU64,
    due_days: AtomicU64,
    /// The scheduler's last database error, while it has not got through since.
    database_error: Mutex<Option<String>>,
}

/// A copy of the figures, for one scrape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthFigures {
    pub leader: bool,
    pub leader_changes: u64,
    pub reconnects: u64,
    pub abandoned_runs: u64,
    pub due_days: u64,
    pub database_error: Option<String>,
}

impl Health {
    pub fn figures(&self) -> HealthFigures {
        HealthFigures {
            leader: self.leader.load(Ordering::Relaxed),
            leader_changes: self.leader_changes.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            abandoned_runs: self.abandoned_runs.load(Ordering::Relaxed),
            due_days: self.due_days.load(Ordering::Relaxed),
            database_error: self.database_error().clone(),
        }
    }

    fn database_error(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.database_error
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn set_leader(&self, leader: bool) {
        if self.leader.swap(leader, Ordering::Relaxed) != leader {
            self.leader_changes.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The database failed the scheduler; it retries with backoff.
    pub(crate) fn database_failed(&self, error: &dyn std::fmt::Display) {
        *self.database_error() = Some(error.to_string());
    }

    /// The database answered again; counts a reconnect if it had failed.
    pub(crate) fn database_answered(&self) {
        if self.database_error().take().is_some() {
            self.reconnects.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn abandoned(&self, runs: u64) {
        self.abandoned_runs.fetch_add(runs, Ordering::Relaxed);
    }

    pub(crate) fn set_due_days(&self, days: u64) {
        self.due_days.store(days, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reconnect_counts_once_per_outage_and_leadership_changes_count_both_ways() {
        let health = Health::default();
        health.database_answered();
        assert_eq!(health.figures().reconnects, 0);
        health.database_failed(&"connection refused");
        health.database_failed(&"connection refused");
        assert_eq!(
            health.figures().database_error.as_deref(),
            Some("connection refused")
        );
        health.database_answered();
        health.database_answered();
        let figures = health.figures();
        assert_eq!((figures.reconnects, figures.database_error), (1, None));
        health.set_leader(true);
        health.set_leader(true);
        health.set_leader(false);
        assert_eq!(health.figures().leader_changes, 2);
    }
}
