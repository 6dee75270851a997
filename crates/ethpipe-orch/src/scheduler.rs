//! The scheduler behind `ethpipe serve`. It reconciles instead of
//! remembering: each tick, the leader computes the days every active trigger
//! owes (its slots within the catch-up window, minus `day_offset`), asks the
//! ledger which of them have no successful load, and runs the oldest one it
//! may (within `max_attempts` per window and `backoff_seconds`, both read
//! from the ledger). A crash, a SIGTERM or a lost leader therefore only
//! delays a day: the next tick of whoever leads sees it still due.
//!
//! Only the holder of the leader lock acts. A standby tries the lock every
//! tick; the leader checks every tick that its lock's connection still
//! answers, and after losing it (a database restart) stops its runs and
//! queues for the lock again, with backoff while the database is down.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use croner::errors::CronError;
use croner::Cron;
use ethpipe_core::{Day, Pipeline, Scope, Source, TokenFilter};
use ethpipe_sinks::ledger::{DayAttempts, Lock, RunFilter};
use ethpipe_sinks::{Database, LedgerError, TriggerDef, TriggerState};
use tokio::task::JoinSet;

use crate::health::Health;
use crate::runner::{run, RunError, RunRequest};
use crate::{jobs, Cancel, Model};

/// How often the leader reconciles when nobody says otherwise.
pub const DEFAULT_TICK: Duration = Duration::from_secs(1);
/// Backoff between attempts to reach the database, doubling up to the cap.
const RECONNECT_FIRST: Duration = Duration::from_millis(250);
const RECONNECT_CAP: Duration = Duration::from_secs(10);

/// Parses a schedule: 5-field cron, 6-field cron with seconds first, or
/// `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`. Times are UTC.
pub fn parse_schedule(text: &str) -> Result<Cron, ScheduleError> {
    Cron::new(text)
        .with_seconds_optional()
        .parse()
        .map_err(|source| ScheduleError {
            text: text.to_string(),
            source,
        })
}

/// A schedule that is not cron.
#[derive(Debug, thiserror::Error)]
#[error("invalid schedule '{text}': {source} (use cron like \"0 5 * * *\" or @daily)")]
pub struct ScheduleError {
    pub text: String,
    #[source]
    pub source: CronError,
}

/// The next slot strictly after `after`.
pub fn next_slot(cron: &Cron, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_next_occurrence(&after, false).ok()
}

/// The latest slot at or before `now`, looking back at most `horizon`.
/// croner only searches forward, so this widens a look-back window tenfold
/// until it holds a slot, then walks forward to the last one.
pub fn latest_slot(
    cron: &Cron,
    now: DateTime<Utc>,
    horizon: chrono::Duration,
) -> Option<DateTime<Utc>> {
    let mut width = chrono::Duration::seconds(1);
    loop {
        let width_now = width.min(horizon);
        let mut cursor = now - width_now;
        let mut latest = None;
        while let Some(slot) = next_slot(cron, cursor).filter(|slot| *slot <= now) {
            latest = Some(slot);
            cursor = slot;
        }
        if latest.is_some() || width_now >= horizon {
            return latest;
        }
        width = width * 10;
    }
}

/// The days a trigger owes at `now`, oldest first: for each slot in
/// `(window start, now]`, the slot's UTC date minus `day_offset`. The window
/// starts `catchup_days` (at least 1) before now, or when the trigger became
/// active if that is later: a new trigger owes nothing from before it existed.
pub fn owed_days(
    cron: &Cron,
    active_since: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    catchup_days: i32,
    day_offset: i32,
) -> Vec<Day> {
    let window = now - chrono::Duration::days(i64::from(catchup_days.max(1)));
    let start = active_since.map_or(window, |since| since.max(window));
    let mut owed = BTreeSet::new();
    let mut cursor = start;
    while let Some(slot) = next_slot(cron, cursor).filter(|slot| *slot <= now) {
        let slot_day = Day::containing(slot);
        owed.insert((0..day_offset.max(0)).fold(slot_day, |day, _| day.pred()));
        // One slot per day is enough: jump to the day's last second.
        cursor = (slot_day.end() - chrono::Duration::seconds(1)).max(slot);
    }
    owed.into_iter().collect()
}

/// How a trigger retries a day.
#[derive(Debug, Clone, Copy)]
pub struct RetryRules {
    /// Failed runs allowed per day within one attempt window.
    pub max_attempts: u32,
    /// Time after a day's last failure before it is tried again.
    pub backoff: chrono::Duration,
}

/// What a trigger should do now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DuePlan {
    /// Owed days without a successful load, oldest first.
    pub due: Vec<Day>,
    /// The oldest due day that may run now: not running, attempts left in
    /// the window, its backoff over.
    pub next: Option<Day>,
}

/// Compares what a trigger owes with what the ledger says of those days.
pub fn plan(
    owed: &[Day],
    attempts: &[DayAttempts],
    rules: RetryRules,
    now: DateTime<Utc>,
) -> DuePlan {
    let by_day: HashMap<Day, &DayAttempts> = attempts.iter().map(|a| (a.day, a)).collect();
    let mut plan = DuePlan::default();
    for &day in owed {
        let record = by_day.get(&day);
        if record.is_some_and(|r| r.succeeded) {
            continue;
        }
        plan.due.push(day);
        let may_run = record.is_none_or(|r| {
            !r.running
                && r.failures_in_window < rules.max_attempts.max(1)
                && r.last_failure.is_none_or(|at| now - at >= rules.backoff)
        });
        if may_run && plan.next.is_none() {
            plan.next = Some(day);
        }
    }
    plan
}

/// Marks `running` runs whose holder is gone (their day lock is free) as
/// failed: abandoned. Returns how many it closed.
pub async fn close_abandoned_runs(database: &Database) -> Result<u64, LedgerError> {
    let running = database
        .ledger()
        .runs(&RunFilter {
            status: Some("running"),
            limit: 1000,
            ..RunFilter::default()
        })
        .await?;
    let mut checked = HashSet::new();
    let mut closed = 0;
    for record in running {
        let Ok(pipeline) = record.pipeline.parse::<Pipeline>() else {
            continue;
        };
        let scope = match record.day.as_deref().map(str::parse::<Day>) {
            None => Scope::Full,
            Some(Ok(day)) => Scope::Day(day),
            Some(Err(_)) => continue,
        };
        if !checked.insert((pipeline.name(), scope.day())) {
            continue;
        }
        let Some(lock) = database.ledger().lock_day(pipeline, scope, false).await? else {
            continue; // its holder is alive
        };
        let abandoned = database.ledger().abandon_stale_runs(pipeline, scope).await;
        lock.release().await;
        let abandoned = abandoned?;
        if abandoned > 0 {
            tracing::info!("{pipeline} {scope}: closed {abandoned} abandoned run(s)");
        }
        closed += abandoned;
    }
    Ok(closed)
}

pub struct Scheduler {
    pub database: Arc<Database>,
    pub source: Arc<dyn Source>,
    pub triggers: Vec<TriggerDef>,
    pub models: HashMap<Pipeline, Vec<Model>>,
    /// The token filter of each trigger that has one (by trigger name: the
    /// trigger's own `tokens`, else its pipeline's).
    pub filters: HashMap<String, TokenFilter>,
    /// Each pipeline's configured token filter: what a resumed dashboard
    /// backfill of that pipeline loads with.
    pub pipeline_filters: HashMap<Pipeline, TokenFilter>,
    pub health: Arc<Health>,
    /// How often the leader reconciles.
    pub tick: Duration,
}

/// Work the leader has in flight, by name (a trigger, or `backfill:<id>`).
type InFlight = JoinSet<String>;

impl Scheduler {
    /// Runs until `cancel` fires; database outages are waited out, never
    /// returned. Returns once every run it started has stopped (an in-flight
    /// run rolls back and is marked interrupted).
    pub async fn serve(self, cancel: Cancel) -> Result<(), RunError> {
        let shared = Arc::new(self);
        let mut backoff = RECONNECT_FIRST;
        while let Err(e) = shared
            .database
            .ledger()
            .sync_triggers(&shared.triggers)
            .await
        {
            shared.database_failed("saving the triggers", &e);
            if !wait_backoff(&mut backoff, &cancel).await {
                return Ok(());
            }
        }
        shared.health.database_answered();
        loop {
            // A standby polls (rather than blocking in the server on the
            // lock), so it notices an outage and its end like the leader does.
            let lock = match shared.database.ledger().lock_leader(false).await {
                Ok(Some(lock)) => lock,
                Ok(None) => {
                    backoff = RECONNECT_FIRST;
                    shared.health.database_answered();
                    sleep_or_cancel(shared.tick, &cancel).await;
                    if cancel.is_cancelled() {
                        return Ok(());
                    }
                    continue;
                }
                Err(e) => {
                    shared.database_failed("taking the leader lock", &e);
                    if !wait_backoff(&mut backoff, &cancel).await {
                        return Ok(());
                    }
                    continue;
                }
            };
            backoff = RECONNECT_FIRST;
            shared.health.database_answered();
            shared.health.set_leader(true);
            tracing::info!(
                "scheduler: leader; {} trigger(s) configured",
                shared.triggers.len()
            );
            Arc::clone(&shared).lead(&lock, &cancel).await;
            shared.health.set_leader(false);
            lock.release().await;
            if cancel.is_cancelled() {
                return Ok(());
            }
            let lost = "lost the leader lock (its database connection ended)";
            tracing::warn!("scheduler: {lost}; queueing for it again");
            shared.health.database_failed(&lost);
        }
    }

    fn database_failed(&self, doing: &str, error: &LedgerError) {
        tracing::warn!("scheduler: {doing}: {error}; retrying");
        self.health.database_failed(error);
    }

    /// Reconciles every tick while `lock` holds; then stops what it started.
    async fn lead(self: Arc<Self>, lock: &Lock, cancel: &Cancel) {
        let (stop, lead_cancel) = cancel.child();
        let mut in_flight = InFlight::new();
        let mut busy = HashSet::new();
        loop {
            while let Some(done) = in_flight.try_join_next() {
                match done {
                    Ok(name) => {
                        busy.remove(&name);
                    }
                    Err(e) => tracing::error!("a scheduled task failed: {e}"),
                }
            }
            if cancel.is_cancelled() || !lock.is_held().await {
                break;
            }
            match self
                .reconcile(&mut in_flight, &mut busy, &lead_cancel)
                .await
            {
                Ok(()) => self.health.database_answered(),
                Err(e) => self.database_failed("reconciling with the ledger", &e),
            }
            sleep_or_cancel(self.tick, cancel).await;
        }
        stop.cancel(
            cancel
                .reason()
                .unwrap_or_else(|| "this scheduler lost its leader lock".into()),
        );
        while in_flight.join_next().await.is_some() {}
    }

    /// One tick: close abandoned runs, then start the next due day of every
    /// idle trigger and every orphaned backfill job.
    async fn reconcile(
        self: &Arc<Self>,
        in_flight: &mut InFlight,
        busy: &mut HashSet<String>,
        cancel: &Cancel,
    ) -> Result<(), LedgerError> {
        self.health
            .abandoned(close_abandoned_runs(&self.database).await?);
        let now = Utc::now();
        let mut due_days = 0;
        for state in self.database.ledger().triggers().await? {
            if !state.def.active {
                continue;
            }
            let Some((pipeline, plan)) = self.plan_trigger(&state, now).await? else {
                continue;
            };
            due_days += plan.due.len() as u64;
            let Some(day) = plan.next else { continue };
            if busy.insert(state.def.name.clone()) {
                let (shared, def, cancel) = (Arc::clone(self), state.def.clone(), cancel.clone());
                in_flight.spawn(async move {
                    shared.fire(&def, pipeline, day, &cancel).await;
                    def.name
                });
            }
        }
        self.health.set_due_days(due_days);
        jobs::resume_orphaned(self, in_flight, busy, cancel).await
    }

    /// The trigger's pipeline and due days; `None` for a trigger that cannot
    /// be scheduled (said in the log).
    async fn plan_trigger(
        &self,
        state: &TriggerState,
        now: DateTime<Utc>,
    ) -> Result<Option<(Pipeline, DuePlan)>, LedgerError> {
        let def = &state.def;
        let (cron, pipeline) = match (
            parse_schedule(&def.schedule),
            def.pipeline.parse::<Pipeline>(),
        ) {
            (Ok(cron), Ok(pipeline)) => (cron, pipeline),
            (Err(e), _) => {
                tracing::debug!("trigger {}: {e}; not scheduling it", def.name);
                return Ok(None);
            }
            (_, Err(_)) => {
                tracing::debug!("trigger {}: unknown pipeline {}", def.name, def.pipeline);
                return Ok(None);
            }
        };
        let owed = owed_days(
            &cron,
            state.active_since,
            now,
            def.catchup_days,
            def.day_offset,
        );
        let (Some(first), Some(last)) = (owed.first(), owed.last()) else {
            return Ok(Some((pipeline, DuePlan::default())));
        };
        // Each new slot opens a new window: a day that used up its attempts
        // gets a fresh budget at the trigger's next slot.
        let horizon = chrono::Duration::days(i64::from(def.catchup_days.max(1)));
        let window_start = latest_slot(&cron, now, horizon).unwrap_or(now);
        let mut attempts = self
            .database
            .ledger()
            .day_attempts(pipeline, *first, *last, window_start)
            .await?;
        // "Loaded" is per token filter: a day counts only when its successful
        // runs' filters cover this trigger's (docs/orchestration.md).
        let filter = self.filters.get(&def.name);
        let loaded: HashSet<Day> = self
            .database
            .ledger()
            .succeeded_days(pipeline, *first, *last, None, filter)
            .await?
            .into_iter()
            .collect();
        for day in &mut attempts {
            day.succeeded = loaded.contains(&day.day);
        }
        let rules = RetryRules {
            max_attempts: u32::try_from(def.max_attempts).unwrap_or(1),
            backoff: chrono::Duration::seconds(i64::from(def.backoff_seconds.max(0))),
        };
        Ok(Some((pipeline, plan(&owed, &attempts, rules, now))))
    }

    /// One attempt at one day; the ledger records how it went.
    async fn fire(&self, def: &TriggerDef, pipeline: Pipeline, day: Day, cancel: &Cancel) {
        tracing::info!("trigger {}: {pipeline} {day} is due", def.name);
        let request = RunRequest {
            pipeline,
            scope: Scope::Day(day),
            trigger: def.name.clone(),
            filter: self.filters.get(&def.name).cloned(),
            models: self.models.get(&pipeline).cloned().unwrap_or_default(),
        };
        let (timeout_handle, run_cancel) = cancel.child();
        let timeout = Duration::from_secs(def.timeout_seconds.max(1) as u64);
        let timer = tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            timeout_handle.cancel(format!("run timeout of {}s reached", timeout.as_secs()));
        });
        let result = run(
            &self.database,
            self.source.as_ref(),
            request,
            &(),
            &run_cancel,
        )
        .await;
        timer.abort();
        match result {
            Ok(outcome) => tracing::info!(
                "trigger {}: {pipeline} {day} loaded {} rows",
                def.name,
                outcome.rows
            ),
            Err(RunError::Busy { .. }) => {
                tracing::debug!(
                    "trigger {}: {pipeline} {day} is being loaded by another process",
                    def.name
                )
            }
            Err(e) => tracing::warn!("trigger {}: {e}", def.name),
        }
    }
}

/// Waits out one reconnect backoff (doubling it); false if cancelled.
async fn wait_backoff(backoff: &mut Duration, cancel: &Cancel) -> bool {
    sleep_or_cancel(*backoff, cancel).await;
    *backoff = (*backoff * 2).min(RECONNECT_CAP);
    !cancel.is_cancelled()
}

pub(crate) async fn sleep_or_cancel(duration: Duration, cancel: &Cancel) {
    tokio::select! {
        () = tokio::time::sleep(duration) => {}
        () = cancel.cancelled() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn day(text: &str) -> Day {
        text.parse().unwrap()
    }

    fn days(texts: &[&str]) -> Vec<Day> {
        texts.iter().map(|t| day(t)).collect()
    }

    fn attempts(text: &str, failures: u32, last_failure: Option<&str>) -> DayAttempts {
        DayAttempts {
            day: day(text),
            succeeded: false,
            failures_in_window: failures,
            last_failure: last_failure.map(at),
            running: false,
        }
    }

    const RULES: RetryRules = RetryRules {
        max_attempts: 3,
        backoff: chrono::Duration::seconds(60),
    };

    #[test]
    fn the_catch_up_window_bounds_the_owed_days_and_day_offset_shifts_them() {
        let daily = parse_schedule("@daily").unwrap();
        let now = at("2024-03-04T10:00:00Z");
        assert_eq!(
            owed_days(&daily, None, now, 2, 1),
            days(&["2024-03-02", "2024-03-03"]),
            "midnights of the 3rd and 4th, each owing the day before"
        );
        assert_eq!(
            owed_days(&daily, None, now, 10, 0).len(),
            10,
            "ten midnights in ten days"
        );
        assert_eq!(
            owed_days(&daily, None, now, 0, 1),
            days(&["2024-03-03"]),
            "a window of at least one day"
        );
        let every_ten_seconds = parse_schedule("*/10 * * * * *").unwrap();
        assert_eq!(
            owed_days(&every_ten_seconds, None, now, 2, 0),
            days(&["2024-03-02", "2024-03-03", "2024-03-04"]),
            "frequent slots owe each day once"
        );
    }

    #[test]
    fn a_trigger_owes_nothing_from_before_it_became_active() {
        let daily = parse_schedule("@daily").unwrap();
        let now = at("2024-03-04T10:00:00Z");
        let created = Some(at("2024-03-04T09:00:00Z"));
        assert!(owed_days(&daily, created, now, 30, 1).is_empty());
        let tomorrow = at("2024-03-05T00:00:30Z");
        assert_eq!(
            owed_days(&daily, created, tomorrow, 30, 1),
            days(&["2024-03-04"])
        );
        let long_ago = Some(at("2020-01-01T00:00:00Z"));
        assert_eq!(owed_days(&daily, long_ago, now, 3, 1).len(), 3);
    }

    #[test]
    fn succeeded_days_are_not_due_and_the_oldest_runnable_day_goes_first() {
        let now = at("2024-03-04T10:00:00Z");
        let owed = days(&["2024-03-01", "2024-03-02", "2024-03-03"]);
        let mut loaded = attempts("2024-03-02", 0, None);
        loaded.succeeded = true;
        let plan = plan(&owed, &[loaded], RULES, now);
        assert_eq!(plan.due, days(&["2024-03-01", "2024-03-03"]));
        assert_eq!(plan.next, Some(day("2024-03-01")));
    }

    #[test]
    fn attempts_and_backoff_hold_a_day_back_without_blocking_later_days() {
        let now = at("2024-03-04T10:00:00Z");
        let owed = days(&["2024-03-01", "2024-03-02", "2024-03-03"]);
        let records = [
            attempts("2024-03-01", 3, Some("2024-03-04T09:00:00Z")),
            attempts("2024-03-02", 1, Some("2024-03-04T09:59:30Z")),
        ];
        let plan1 = plan(&owed, &records, RULES, now);
        assert_eq!(plan1.due.len(), 3, "an exhausted day is still due");
        assert_eq!(
            plan1.next,
            Some(day("2024-03-03")),
            "the 1st is out of attempts, the 2nd in its backoff"
        );
        let later = at("2024-03-04T10:00:30Z");
        assert_eq!(
            plan(&owed, &records, RULES, later).next,
            Some(day("2024-03-02")),
            "the backoff is over"
        );
        let fresh_window = [attempts("2024-03-01", 0, Some("2024-03-04T09:00:00Z"))];
        assert_eq!(
            plan(&owed, &fresh_window, RULES, now).next,
            Some(day("2024-03-01")),
            "a new window gives the day a fresh budget"
        );
        let mut running = attempts("2024-03-01", 0, None);
        running.running = true;
        assert_eq!(
            plan(&owed, &[running], RULES, now).next,
            Some(day("2024-03-02")),
            "a day someone is loading is left to them"
        );
    }

    #[test]
    fn the_latest_slot_is_found_looking_back() {
        let daily = parse_schedule("@daily").unwrap();
        let horizon = chrono::Duration::days(3);
        assert_eq!(
            latest_slot(&daily, at("2024-03-04T10:00:00Z"), horizon),
            Some(at("2024-03-04T00:00:00Z"))
        );
        let every_ten_seconds = parse_schedule("*/10 * * * * *").unwrap();
        assert_eq!(
            latest_slot(&every_ten_seconds, at("2024-03-04T10:00:25Z"), horizon),
            Some(at("2024-03-04T10:00:20Z"))
        );
        let yearly = parse_schedule("@yearly").unwrap();
        assert_eq!(
            latest_slot(&yearly, at("2024-03-04T10:00:00Z"), horizon),
            None,
            "nothing within the horizon"
        );
    }

    #[test]
    fn schedules_parse_with_or_without_seconds() {
        let every_second = parse_schedule("* * * * * *").unwrap();
        let slot = next_slot(&every_second, at("2024-03-01T00:00:00Z")).unwrap();
        assert_eq!(slot, at("2024-03-01T00:00:01Z"));
        assert!(parse_schedule("0 5 * * *").is_ok());
        assert!(parse_schedule("every day")
            .unwrap_err()
            .to_string()
            .contains("invalid schedule 'every day'"));
    }
}
