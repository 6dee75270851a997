//! The scheduler behind `ethpipe serve`: runs due triggers, catches up after
//! downtime, retries, and stops cleanly.
//!
//! Only the holder of the leader lock acts, so two replicas never double-run;
//! a standby blocks on the lock and takes over when the leader's connection
//! goes away. Each slot is also claimed in `trigger_fires` (primary key
//! trigger + slot) before it runs, so a slot fires once even if two leaders
//! ever overlapped. Each trigger has its own task: one trigger waiting out a
//! retry backoff never delays another.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use croner::errors::CronError;
use croner::Cron;
use ethpipe_core::{Day, Pipeline, Scope, Source, TokenFilter};
use ethpipe_sinks::{Database, TriggerDef, TriggerState};

use crate::runner::{run, RunError, RunRequest};
use crate::{Cancel, Model};

/// How often a trigger re-reads its state (toggle) while idle.
const IDLE_TICK: Duration = Duration::from_millis(500);

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

pub struct Scheduler {
    pub database: Arc<Database>,
    pub source: Arc<dyn Source>,
    pub triggers: Vec<TriggerDef>,
    pub models: HashMap<Pipeline, Vec<Model>>,
    /// The token filter of each trigger that has one (by trigger name: the
    /// trigger's own `tokens`, else its pipeline's).
    pub filters: HashMap<String, TokenFilter>,
}

impl Scheduler {
    /// Runs until `cancel` fires. Returns once every trigger task has stopped
    /// (an in-flight run rolls back and is marked interrupted).
    pub async fn serve(self, cancel: Cancel) -> Result<(), RunError> {
        self.database
            .ledger()
            .sync_triggers(&self.triggers)
            .await
            .map_err(|e| RunError::Ledger(e.into()))?;
        let lock = tokio::select! {
            lock = self.database.ledger().lock_leader(true) => lock.map_err(|e| RunError::Ledger(e.into()))?,
            () = cancel.cancelled() => return Ok(()),
        };
        tracing::info!(
            "scheduler: leader; {} trigger(s) configured",
            self.triggers.len()
        );
        let shared = Arc::new(self);
        let mut tasks = tokio::task::JoinSet::new();
        for def in &shared.triggers {
            let (shared, name, cancel) = (Arc::clone(&shared), def.name.clone(), cancel.clone());
            tasks.spawn(async move { shared.trigger_loop(&name, &cancel).await });
        }
        while let Some(joined) = tasks.join_next().await {
            if let Err(e) = joined {
                tracing::error!("a trigger task failed: {e}");
            }
        }
        drop(lock);
        Ok(())
    }

    async fn state(&self, name: &str) -> Option<TriggerState> {
        match self.database.ledger().triggers().await {
            Ok(all) => all.into_iter().find(|t| t.def.name == name),
            Err(e) => {
                tracing::warn!("trigger {name}: cannot read its state: {e}");
                None
            }
        }
    }

    async fn trigger_loop(&self, name: &str, cancel: &Cancel) {
        loop {
            if cancel.is_cancelled() {
                return;
            }
            let Some(state) = self.state(name).await else {
                sleep_or_cancel(IDLE_TICK, cancel).await;
                continue;
            };
            let cron = match parse_schedule(&state.def.schedule) {
                Ok(cron) => cron,
                Err(e) => {
                    tracing::error!("trigger {name}: {e}; not scheduling it");
                    return;
                }
            };
            if !state.def.active {
                sleep_or_cancel(IDLE_TICK, cancel).await;
                continue;
            }
            let now = Utc::now();
            let Some(last) = state.last_slot else {
                // Newly active: start from now, not from the beginning of time.
                let _ = self.database.ledger().set_last_slot(name, now).await;
                continue;
            };
            let due = due_slots(&cron, last, now, state.def.catchup_days);
            if due.is_empty() {
                let wake = next_slot(&cron, now).map_or(IDLE_TICK, |next| {
                    (next - now).to_std().unwrap_or_default().min(IDLE_TICK)
                });
                sleep_or_cancel(wake, cancel).await;
                continue;
            }
            for slot in due {
                if cancel.is_cancelled() {
                    return;
                }
                self.fire(&state.def, slot, cancel).await;
                if let Err(e) = self.database.ledger().set_last_slot(name, slot).await {
                    tracing::warn!("trigger {name}: cannot record slot {slot}: {e}");
                }
            }
        }
    }

    async fn fire(&self, def: &TriggerDef, slot: DateTime<Utc>, cancel: &Cancel) {
        let Ok(pipeline) = def.pipeline.parse::<Pipeline>() else {
            return;
        };
        let day = Day::containing(slot);
        let day = (0..def.day_offset.max(0)).fold(day, |d, _| d.pred());
        match self
            .database
            .ledger()
            .claim_fire(&def.name, slot, day)
            .await
        {
            Ok(true) => {}
            Ok(false) => return, // this slot already fired
            Err(e) => {
                tracing::warn!("trigger {}: cannot claim slot {slot}: {e}", def.name);
                return;
            }
        }
        tracing::info!("trigger {}: slot {slot} → {pipeline} {day}", def.name);
        let attempts = def.max_attempts.max(1);
        for attempt in 1..=attempts {
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
            let retry = match &result {
                Ok(outcome) => {
                    tracing::info!(
                        "trigger {}: {pipeline} {day} loaded {} rows",
                        def.name,
                        outcome.rows
                    );
                    return;
                }
                Err(RunError::Failed {
                    interrupted: true, ..
                }) if cancel.is_cancelled() => return,
                Err(RunError::Failed {
                    permanent: true, ..
                }) => false,
                Err(_) => true,
            };
            if let Err(e) = &result {
                tracing::warn!(
                    "trigger {}: attempt {attempt}/{attempts} failed: {e}",
                    def.name
                );
            }
            if !retry || attempt == attempts {
                tracing::error!(
                    "trigger {}: {pipeline} {day} failed; giving up on slot {slot}",
                    def.name
                );
                return;
            }
            let backoff = Duration::from_secs(def.backoff_seconds.max(0) as u64);
            sleep_or_cancel(backoff, cancel).await;
            if cancel.is_cancelled() {
                return;
            }
        }
    }
}

/// Slots in `(last, now]`, keeping only the newest `catchup` (at least one),
/// oldest first: after downtime, missed days run one at a time, in order.
pub fn due_slots(
    cron: &Cron,
    last: DateTime<Utc>,
    now: DateTime<Utc>,
    catchup: i32,
) -> Vec<DateTime<Utc>> {
    let keep = catchup.max(1) as usize;
    let mut due = std::collections::VecDeque::with_capacity(keep + 1);
    let mut cursor = last;
    while let Some(slot) = next_slot(cron, cursor) {
        if slot > now {
            break;
        }
        due.push_back(slot);
        if due.len() > keep {
            due.pop_front();
        }
        cursor = slot;
    }
    due.into()
}

async fn sleep_or_cancel(duration: Duration, cancel: &Cancel) {
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

    #[test]
    fn catch_up_keeps_the_newest_slots_in_order() {
        let daily = parse_schedule("@daily").unwrap();
        let due = due_slots(
            &daily,
            at("2024-03-01T00:00:00Z"),
            at("2024-03-04T10:00:00Z"),
            2,
        );
        assert_eq!(
            due,
            vec![at("2024-03-03T00:00:00Z"), at("2024-03-04T00:00:00Z")]
        );
        let all = due_slots(
            &daily,
            at("2024-03-01T00:00:00Z"),
            at("2024-03-04T10:00:00Z"),
            10,
        );
        assert_eq!(all.len(), 3);
        assert!(due_slots(
            &daily,
            at("2024-03-04T00:00:00Z"),
            at("2024-03-04T10:00:00Z"),
            3
        )
        .is_empty());
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
