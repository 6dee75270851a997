//! Backfills: a range of days, in order, at most N in flight, resumable.
//!
//! Resumable because the ledger is the state: days that already succeeded are
//! skipped (unless `force`). Safe to run from several processes at once
//! because every day is claimed with its (pipeline, day) lock before it runs:
//! a day locked by someone else is deferred, and revisited once the rest is
//! done (then waited for, and skipped if the other process finished it). That
//! makes `--worker` processes started on one range share it day by day, like
//! `SELECT … FOR UPDATE SKIP LOCKED`. A dataset that loads its whole table
//! first (tokens) does so before any day, under its `tokens:full` lock, so
//! parallel days and workers share one full load. Memory does not grow with the range: only
//! the in-flight days hold rows, each bounded by the source's page size.

use std::collections::BTreeSet;
use std::sync::Arc;

use ethpipe_core::{Day, Pipeline, Scope, Source, TokenFilter};
use ethpipe_sinks::Database;
use tokio::task::JoinSet;

use crate::runner::{ensure_full_load, run_while_locked, Progress, RunError, RunRequest};
use crate::{Cancel, Model};

#[derive(Debug, Clone)]
pub struct BackfillRequest {
    pub pipeline: Pipeline,
    pub from: Day,
    pub to: Day,
    pub parallel: usize,
    /// Re-run days that already succeeded.
    pub force: bool,
    /// The ledger trigger of these runs: `backfill`, or `backfill:<id>` for
    /// workers sharing a forced range (a day is "done" once a run with this
    /// trigger succeeded).
    pub trigger: String,
    pub shared_force: bool,
    /// Only these tokens' rows (`None`: every token's). A day counts as done
    /// when its successful loads cover the filter.
    pub filter: Option<TokenFilter>,
    pub models: Vec<Model>,
}

/// What a backfill reports as it goes.
pub trait BackfillProgress: Progress {
    fn planned(&self, _total: usize, _skipped: usize) {}
    fn day_done(&self, _day: Day, _rows: u64) {}
    fn day_failed(&self, _day: Day, _message: &str) {}
    fn day_skipped(&self, _day: Day) {}
}

impl BackfillProgress for () {}

#[derive(Debug, Default, Clone)]
pub struct BackfillSummary {
    pub loaded: Vec<(Day, u64)>,
    /// Already done before (or done by another process meanwhile).
    pub skipped: Vec<Day>,
    pub failed: Vec<(Day, String)>,
    /// Not started, or started and rolled back, because shutdown was requested.
    pub interrupted: Vec<Day>,
}

pub fn days(from: Day, to: Day) -> Vec<Day> {
    let mut days = Vec::new();
    let mut day = from;
    while day <= to {
        days.push(day);
        day = day.succ();
    }
    days
}

pub async fn backfill(
    database: Arc<Database>,
    source: Arc<dyn Source>,
    request: BackfillRequest,
    progress: Arc<dyn BackfillProgress>,
    cancel: Cancel,
) -> Result<BackfillSummary, RunError> {
    // Before any day: a first tokens run's full load, once across every
    // process sharing the range (each waits on the `tokens:full` lock).
    let template = RunRequest {
        pipeline: request.pipeline,
        scope: Scope::Day(request.from),
        trigger: request.trigger.clone(),
        filter: request.filter.clone(),
        models: request.models.clone(),
    };
    ensure_full_load(&database, source.as_ref(), &template, &*progress, &cancel).await?;
    let all = days(request.from, request.to);
    let done = done_days(&database, &request).await?;
    let mut summary = BackfillSummary::default();
    let pending: Vec<Day> = all.iter().copied().filter(|d| !done.contains(d)).collect();
    summary.skipped = all.iter().copied().filter(|d| done.contains(d)).collect();
    progress.planned(pending.len(), summary.skipped.len());

    let mut deferred = Vec::new();
    let mut in_flight = JoinSet::new();
    let parallel = request.parallel.max(1);
    for (round, queue) in [pending, Vec::new()].into_iter().enumerate() {
        // Round 0: claim what is free. Round 1: wait for days others were holding.
        let queue = if round == 0 {
            queue
        } else {
            std::mem::take(&mut deferred)
        };
        for day in queue {
            if cancel.is_cancelled() {
                summary.interrupted.push(day);
                continue;
            }
            while in_flight.len() >= parallel {
                collect(in_flight.join_next().await, &mut summary, &*progress);
            }
            let wait = round == 1;
            let scope = Scope::Day(day);
            let lock = database
                .ledger()
                .lock_day(request.pipeline, scope, wait)
                .await
                .map_err(|e| RunError::Ledger(e.into()))?;
            let Some(lock) = lock else {
                deferred.push(day);
                continue;
            };
            // Someone may have finished it between our plan and our claim.
            if done_days_between(&database, &request, day).await? {
                summary.skipped.push(day);
                progress.day_skipped(day);
                continue;
            }
            let (database, source, progress, cancel) = (
                Arc::clone(&database),
                Arc::clone(&source),
                Arc::clone(&progress),
                cancel.clone(),
            );
            let run_request = RunRequest {
                pipeline: request.pipeline,
                scope,
                trigger: request.trigger.clone(),
                filter: request.filter.clone(),
                models: request.models.clone(),
            };
            in_flight.spawn(async move {
                let result =
                    run_while_locked(&database, source.as_ref(), run_request, &*progress, &cancel)
                        .await;
                lock.release().await;
                (day, result)
            });
        }
        while let Some(joined) = in_flight.join_next().await {
            collect(Some(joined), &mut summary, &*progress);
        }
    }
    summary.loaded.sort();
    summary.skipped.sort();
    summary.failed.sort_by_key(|(day, _)| *day);
    summary.interrupted.sort();
    Ok(summary)
}

type Joined = Result<(Day, Result<crate::RunOutcome, RunError>), tokio::task::JoinError>;

fn collect(joined: Option<Joined>, summary: &mut BackfillSummary, progress: &dyn BackfillProgress) {
    match joined {
        Some(Ok((day, Ok(outcome)))) => {
            progress.day_done(day, outcome.rows);
            summary.loaded.push((day, outcome.rows));
        }
        Some(Ok((
            day,
            Err(RunError::Failed {
                interrupted: true, ..
            }),
        ))) => {
            summary.interrupted.push(day);
        }
        Some(Ok((day, Err(error)))) => {
            let message = error.to_string();
            progress.day_failed(day, &message);
            summary.failed.push((day, message));
        }
        Some(Err(join_error)) => {
            tracing::error!("a backfill task panicked: {join_error}");
        }
        None => {}
    }
}

async fn done_days(
    database: &Database,
    request: &BackfillRequest,
) -> Result<BTreeSet<Day>, RunError> {
    if request.force && !request.shared_force {
        return Ok(BTreeSet::new());
    }
    let trigger = request.force.then_some(request.trigger.as_str());
    let days = database
        .ledger()
        .succeeded_days(
            request.pipeline,
            request.from,
            request.to,
            trigger,
            request.filter.as_ref(),
        )
        .await
        .map_err(|e| RunError::Ledger(e.into()))?;
    Ok(days.into_iter().collect())
}

async fn done_days_between(
    database: &Database,
    request: &BackfillRequest,
    day: Day,
) -> Result<bool, RunError> {
    if request.force && !request.shared_force {
        // A private forced backfill re-runs every day once; only a run of this
        // very process would count, and the lock guarantees there is none.
        return Ok(false);
    }
    let trigger = request.force.then_some(request.trigger.as_str());
    let days = database
        .ledger()
        .succeeded_days(request.pipeline, day, day, trigger, request.filter.as_ref())
        .await
        .map_err(|e| RunError::Ledger(e.into()))?;
    Ok(!days.is_empty())
}
