//! The in-flight budget of one process's log scans: how many blocks and how
//! many bytes of node answers they may hold at once, shared by every day a
//! backfill runs in parallel, so memory does not grow with `--parallel` or
//! `--rpc-concurrency`.
//!
//! A range of blocks reserves its cost before its request is sent and
//! keeps it until its rows have gone downstream. Reservations are granted
//! in the order they were asked for: a day asks for its ranges one after
//! another, so the oldest range of every day either holds a reservation or
//! is first in line, and a day never waits on room that only its own later
//! ranges could free (no deadlock, whatever the number of days).

use std::sync::Mutex;

use tokio::sync::Notify;

/// Blocks and answer bytes; the unit the budget counts in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cost {
    pub blocks: u64,
    pub bytes: u64,
}

impl Cost {
    fn fits_beside(self, held: Cost, limit: Cost) -> bool {
        held.blocks + self.blocks <= limit.blocks && held.bytes + self.bytes <= limit.bytes
    }

    /// Each dimension cut to `limit`'s, so one range alone always fits.
    fn at_most(self, limit: Cost) -> Cost {
        Cost {
            blocks: self.blocks.min(limit.blocks),
            bytes: self.bytes.min(limit.bytes),
        }
    }

    fn max(self, other: Cost) -> Cost {
        Cost {
            blocks: self.blocks.max(other.blocks),
            bytes: self.bytes.max(other.bytes),
        }
    }
}

/// What a budget saw, for tests and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BudgetStats {
    pub limit: Cost,
    /// The most held at once, per dimension.
    pub peak: Cost,
    pub held: Cost,
    /// Reservations that had to wait for room (the bound at work).
    pub waits: u64,
    /// Reservations granted in all.
    pub granted: u64,
    /// Answers that turned out larger than their range's reservation and
    /// were not read whole (the range was fetched again, in halves).
    pub oversized: u64,
}

pub struct InFlightBudget {
    limit: Cost,
    usage: Mutex<BudgetStats>,
    /// Held while waiting for room: waiters are served first come, first
    /// served (tokio's mutex is fair), which the no-deadlock argument needs.
    line: tokio::sync::Mutex<()>,
    released: Notify,
}

impl InFlightBudget {
    pub fn new(limit: Cost) -> InFlightBudget {
        let limit = Cost {
            blocks: limit.blocks.max(1),
            bytes: limit.bytes.max(1),
        };
        InFlightBudget {
            limit,
            usage: Mutex::new(BudgetStats {
                limit,
                ..BudgetStats::default()
            }),
            line: tokio::sync::Mutex::new(()),
            released: Notify::new(),
        }
    }

    pub fn limit(&self) -> Cost {
        self.limit
    }

    pub fn stats(&self) -> BudgetStats {
        *self.usage()
    }

    /// Waits, in line, until `want` (cut to the limit) fits beside what is
    /// held, and holds it until the reservation is dropped.
    pub async fn reserve(&self, want: Cost) -> Reservation<'_> {
        let want = want.at_most(self.limit);
        let _turn = self.line.lock().await;
        let mut waited = false;
        loop {
            // Registered before the check, so a release in between still wakes us.
            let released = self.released.notified();
            if self.try_hold(want, waited) {
                return Reservation {
                    budget: self,
                    cost: want,
                };
            }
            waited = true;
            released.await;
        }
    }

    /// Counts an answer larger than its reservation (see [`BudgetStats`]).
    pub fn count_oversized(&self) {
        self.usage().oversized += 1;
    }

    fn try_hold(&self, want: Cost, waited: bool) -> bool {
        let mut usage = self.usage();
        if !want.fits_beside(usage.held, self.limit) {
            return false;
        }
        usage.held.blocks += want.blocks;
        usage.held.bytes += want.bytes;
        usage.peak = usage.peak.max(usage.held);
        usage.granted += 1;
        usage.waits += u64::from(waited);
        true
    }

    fn usage(&self) -> std::sync::MutexGuard<'_, BudgetStats> {
        self.usage.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn release(&self, cost: Cost) {
        {
            let mut usage = self.usage();
            usage.held.blocks -= cost.blocks;
            usage.held.bytes -= cost.bytes;
        }
        self.released.notify_waiters();
    }
}

/// Room held in an [`InFlightBudget`]; given back when dropped.
pub struct Reservation<'a> {
    budget: &'a InFlightBudget,
    cost: Cost,
}

impl Reservation<'_> {
    pub fn cost(&self) -> Cost {
        self.cost
    }

    /// More bytes without waiting, for the one case that cannot wait: a
    /// single block whose answer alone is larger than its reservation (it
    /// cannot be split, and waiting while holding could deadlock). The
    /// budget's peak shows it if it ever goes past the limit.
    pub fn extend_bytes(&mut self, bytes: u64) {
        let extra = bytes.saturating_sub(self.cost.bytes);
        if extra == 0 {
            return;
        }
        let mut usage = self.budget.usage();
        usage.held.bytes += extra;
        usage.peak = usage.peak.max(usage.held);
        self.cost.bytes += extra;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.budget.release(self.cost);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    fn cost(blocks: u64, bytes: u64) -> Cost {
        Cost { blocks, bytes }
    }

    #[tokio::test]
    async fn a_reservation_waits_until_room_is_given_back() {
        let budget = InFlightBudget::new(cost(10, 100));
        let first = budget.reserve(cost(5, 80)).await;
        let waiting = budget.reserve(cost(5, 30));
        tokio::pin!(waiting);
        let too_early = waiting.as_mut().now_or_never();
        assert!(too_early.is_none(), "80 + 30 bytes must not fit in 100");
        drop(first);
        let second = waiting.await;
        let stats = budget.stats();
        assert_eq!((stats.peak, stats.held), (cost(5, 80), cost(5, 30)));
        assert_eq!((stats.waits, stats.granted), (1, 2));
        drop(second);
        assert_eq!(budget.stats().held, Cost::default());
    }

    #[tokio::test]
    async fn a_range_larger_than_the_budget_goes_alone() {
        let budget = InFlightBudget::new(cost(10, 100));
        let huge = budget.reserve(cost(50, 5_000)).await;
        assert_eq!(huge.cost(), cost(10, 100));
        assert_eq!(budget.stats().peak, cost(10, 100));
    }
}
