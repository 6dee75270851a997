//! The ledger's logic, written once over a [`Backend`]: which statement each
//! operation runs, what it binds, and how rows become records.

use std::collections::BTreeSet;

use async_trait::async_trait;
use chrono::Utc;
use ethpipe_core::{Day, Gate, Pipeline, Scope, TokenFilter};

use super::error::LedgerError;
use super::locks::{Lock, LockName};
use super::records::{
    self, BackfillJobRecord, DayAttempts, DayLoaded, NewBackfillJob, NewRun, RunCount, RunDuration,
    RunFilter, RunId, RunRecord, RunStatus, TriggerDef, TriggerState,
};
use super::statements::{self as sql, Record, Statement, Value};
use super::views::{timestamp, LogLine, Step};
use super::Ledger;
use crate::{Commit, StepReport};

/// What differs between the stores: running a statement, and locks.
#[async_trait]
pub(crate) trait Backend: Send + Sync {
    /// Rows affected.
    async fn execute(
        &self,
        statement: &'static Statement,
        params: Vec<Value>,
    ) -> Result<u64, LedgerError>;

    async fn query(
        &self,
        statement: &'static Statement,
        params: Vec<Value>,
    ) -> Result<Vec<Record>, LedgerError>;

    async fn lock(&self, name: LockName, wait: bool) -> Result<Option<Lock>, LedgerError>;
}

/// The one [`Ledger`] implementation; `B` is PostgreSQL or SQLite.
pub(crate) struct SqlLedger<B> {
    pub backend: B,
}

/// One statement of a committed day's bookkeeping.
pub(crate) struct Bookkeeping {
    pub statement: &'static Statement,
    pub params: Vec<Value>,
    /// Set when the statement must update exactly this run, still `running`.
    closes: Option<RunId>,
}

impl Bookkeeping {
    /// A success is recorded only over a run still `running`; anything else
    /// means another process closed it, and the day must not commit.
    pub fn check(&self, updated: u64) -> Result<(), LedgerError> {
        match self.closes {
            Some(run) if updated != 1 => Err(LedgerError::NotRunning { run }),
            _ => Ok(()),
        }
    }
}

/// What a committed day records, in this order: the run's success, then the
/// pipeline variable the commit sets (the tokens first-run flag), then, if a
/// SQL model failed (`model_failure`, its message), the run's failure. A
/// sink runs these on the day's own transaction so they commit with the rows.
pub(crate) fn commit_bookkeeping(
    commit: &Commit,
    rows: u64,
    model_failure: Option<&str>,
) -> Vec<Bookkeeping> {
    let success = Bookkeeping {
        statement: &sql::RECORD_SUCCESS,
        params: vec![
            Value::int(commit.run.0),
            Value::count(rows),
            Value::count(commit.source_rows),
            Value::count(commit.skipped_rows),
            Value::Time(Utc::now()),
        ],
        closes: Some(commit.run),
    };
    let variable = commit
        .set_variable
        .as_ref()
        .map(|(pipeline, name, value)| Bookkeeping {
            statement: &sql::SET_VARIABLE,
            params: variable_params(*pipeline, name, value),
            closes: None,
        });
    let failure = model_failure.map(|error| Bookkeeping {
        statement: &sql::FAIL_COMMITTED_RUN,
        params: vec![
            Value::int(commit.run.0),
            Value::text(error),
            Value::Time(Utc::now()),
        ],
        closes: None,
    });
    std::iter::once(success)
        .chain(variable)
        .chain(failure)
        .collect()
}

fn variable_params(pipeline: Pipeline, name: &str, value: &str) -> Vec<Value> {
    vec![
        Value::text(pipeline.name()),
        Value::text(name),
        Value::text(value),
        Value::Time(Utc::now()),
    ]
}

/// The days whose successful loads together hold every row `wanted` asks
/// for, from each day's successful filters (`loads`, ordered by day). A
/// successful load stays true after later ones (a filtered load replaces
/// only its own tokens' rows, and a day is loaded only once final), so the
/// union of a day's filters is what it holds: {A} then {B} covers {A, B},
/// and an unfiltered load covers any filter.
fn covered_days(loads: Vec<(Day, Option<String>)>, wanted: Option<&TokenFilter>) -> Vec<Day> {
    let mut days: Vec<Day> = Vec::new();
    let mut held: BTreeSet<String> = BTreeSet::new();
    let mut everything = false;
    let mut loads = loads.into_iter().peekable();
    while let Some((day, text)) = loads.next() {
        match records::parse_stored_filter(text.as_deref()) {
            None => everything = true,
            Some(filter) => held.extend(filter.addresses().iter().cloned()),
        }
        if loads.peek().is_some_and(|(next, _)| *next == day) {
            continue;
        }
        let covered =
            everything || wanted.is_some_and(|w| w.addresses().iter().all(|a| held.contains(a)));
        if covered {
            days.push(day);
        }
        held.clear();
        everything = false;
    }
    days
}

fn run_record(row: &Record) -> Result<RunRecord, LedgerError> {
    Ok(RunRecord {
        id: RunId(row.int(0)?),
        pipeline: row.text(1)?,
        day: row.optional_text(2)?,
        trigger: row.text(3)?,
        source: row.text(4)?,
        status: RunStatus::parse(&row.text(5)?),
        attempt: row.int32(6)?,
        rows_written: row.optional_int(7)?,
        source_rows: row.optional_int(8)?,
        skipped_rows: row.optional_int(9)?,
        started_at: row.time(10)?,
        finished_at: row.optional_time(11)?,
        error: row.optional_text(12)?,
        token_filter: row.optional_text(13)?,
        gate: row.optional_text(14)?,
        gate_mark: row.optional_text(15)?,
    })
}

fn step(row: &Record) -> Result<Step, LedgerError> {
    Ok(Step {
        position: row.int32(0)?,
        name: row.text(1)?,
        status: row.text(2)?,
        rows: row.optional_int(3)?,
        started_at: timestamp(row.time(4)?),
        finished_at: timestamp(row.time(5)?),
        error: row.optional_text(6)?,
    })
}

fn trigger_state(row: &Record) -> Result<TriggerState, LedgerError> {
    Ok(TriggerState {
        def: TriggerDef {
            name: row.text(0)?,
            pipeline: row.text(1)?,
            schedule: row.text(2)?,
            active: row.bool(3)?,
            day_offset: row.int32(4)?,
            max_attempts: row.int32(5)?,
            backoff_seconds: row.int32(6)?,
            timeout_seconds: row.int32(7)?,
            catchup_days: row.int32(8)?,
        },
        active_since: row.optional_time(9)?,
    })
}

fn day_attempts(row: &Record) -> Result<DayAttempts, LedgerError> {
    Ok(DayAttempts {
        day: day_text(row, 0)?,
        succeeded: row.int(1)? > 0,
        failures_in_window: u32::try_from(row.optional_int(2)?.unwrap_or(0)).unwrap_or(u32::MAX),
        last_failure: row.optional_time(3)?,
        running: row.int(4)? > 0,
    })
}

fn backfill_job(row: &Record) -> Result<BackfillJobRecord, LedgerError> {
    let count =
        |column| -> Result<u64, LedgerError> { Ok(u64::try_from(row.int(column)?).unwrap_or(0)) };
    Ok(BackfillJobRecord {
        id: row.int(0)?,
        pipeline: row.text(1)?,
        from: day_text(row, 2)?,
        to: day_text(row, 3)?,
        parallel: u32::try_from(row.int(4)?).unwrap_or(1),
        force: row.bool(5)?,
        state: row.text(6)?,
        started_at: row.time(7)?,
        finished_at: row.optional_time(8)?,
        error: row.optional_text(9)?,
        days_loaded: count(10)?,
        rows: count(11)?,
        days_failed: count(12)?,
        days_skipped: count(13)?,
    })
}

fn day_text(row: &Record, column: usize) -> Result<Day, LedgerError> {
    let text = row.text(column)?;
    text.parse().map_err(|_| LedgerError::Unexpected {
        context: row.context,
        column,
        found: text,
        expected: "a YYYY-MM-DD day",
    })
}

fn collect<T>(
    rows: Vec<Record>,
    read: impl Fn(&Record) -> Result<T, LedgerError>,
) -> Result<Vec<T>, LedgerError> {
    rows.iter().map(read).collect()
}

#[async_trait]
impl<B: Backend> Ledger for SqlLedger<B> {
    async fn start_run(&self, run: &NewRun) -> Result<RunId, LedgerError> {
        let params = vec![
            Value::text(run.pipeline.name()),
            Value::Day(run.scope.day()),
            Value::text(&run.trigger),
            Value::text(&run.source),
            Value::Time(Utc::now()),
            Value::optional_text(run.filter.as_ref().map(TokenFilter::canonical).as_deref()),
        ];
        let rows = self.backend.query(&sql::START_RUN, params).await?;
        let id = rows.first().map(|row| row.int(0)).transpose()?;
        id.map(RunId).ok_or(LedgerError::Unexpected {
            context: sql::START_RUN.context,
            column: 0,
            found: "no row".into(),
            expected: "the new run's id",
        })
    }

    async fn record_progress(&self, run: RunId, rows_so_far: u64) -> Result<(), LedgerError> {
        let params = vec![Value::int(run.0), Value::count(rows_so_far)];
        self.backend.execute(&sql::RECORD_PROGRESS, params).await?;
        Ok(())
    }

    async fn fail_run(
        &self,
        run: RunId,
        error: &str,
        rows_written: u64,
        source_rows: Option<u64>,
    ) -> Result<(), LedgerError> {
        let params = vec![
            Value::int(run.0),
            Value::text(error),
            Value::count(rows_written),
            source_rows.map_or(Value::Int(None), Value::count),
            Value::Time(Utc::now()),
        ];
        self.backend.execute(&sql::FAIL_RUN, params).await?;
        Ok(())
    }

    async fn record_commit(&self, commit: &Commit, rows: u64) -> Result<(), LedgerError> {
        for step in commit_bookkeeping(commit, rows, None) {
            let updated = self
                .backend
                .execute(step.statement, step.params.clone())
                .await?;
            step.check(updated)?;
        }
        Ok(())
    }

    async fn abandon_stale_runs(
        &self,
        pipeline: Pipeline,
        scope: Scope,
    ) -> Result<u64, LedgerError> {
        let params = vec![
            Value::text(pipeline.name()),
            Value::Day(scope.day()),
            Value::Time(Utc::now()),
        ];
        self.backend.execute(&sql::ABANDON_STALE_RUNS, params).await
    }

    async fn record_steps(&self, run: RunId, steps: &[StepReport]) -> Result<(), LedgerError> {
        for step in steps {
            let status = if step.error.is_some() {
                "failed"
            } else {
                "success"
            };
            let params = vec![
                Value::int(run.0),
                Value::text(&step.name),
                Value::text(status),
                Value::count(step.rows),
                Value::Time(step.started_at),
                Value::Time(step.finished_at),
                Value::optional_text(step.error.as_deref()),
            ];
            self.backend.execute(&sql::RECORD_STEP, params).await?;
        }
        Ok(())
    }

    async fn record_gate(&self, run: RunId, gate: &Gate) -> Result<(), LedgerError> {
        let params = vec![
            Value::int(run.0),
            Value::text(gate.name),
            Value::text(&gate.mark),
        ];
        self.backend.execute(&sql::RECORD_GATE, params).await?;
        Ok(())
    }

    async fn fail_committed_run(&self, run: RunId, error: &str) -> Result<(), LedgerError> {
        let params = vec![
            Value::int(run.0),
            Value::text(error),
            Value::Time(Utc::now()),
        ];
        self.backend
            .execute(&sql::FAIL_COMMITTED_RUN, params)
            .await?;
        Ok(())
    }

    async fn log(&self, run: RunId, level: &str, message: &str) -> Result<(), LedgerError> {
        let params = vec![
            Value::int(run.0),
            Value::Time(Utc::now()),
            Value::text(level),
            Value::text(message),
        ];
        self.backend.execute(&sql::LOG, params).await?;
        Ok(())
    }

    async fn variable(
        &self,
        pipeline: Pipeline,
        name: &str,
    ) -> Result<Option<String>, LedgerError> {
        let params = vec![Value::text(pipeline.name()), Value::text(name)];
        let rows = self.backend.query(&sql::VARIABLE, params).await?;
        rows.first().map(|row| row.text(0)).transpose()
    }

    async fn set_variable(
        &self,
        pipeline: Pipeline,
        name: &str,
        value: &str,
    ) -> Result<(), LedgerError> {
        let params = variable_params(pipeline, name, value);
        self.backend.execute(&sql::SET_VARIABLE, params).await?;
        Ok(())
    }

    async fn latest_runs(
        &self,
        pipeline: Pipeline,
        from: Day,
        to: Day,
    ) -> Result<Vec<RunRecord>, LedgerError> {
        let params = vec![
            Value::text(pipeline.name()),
            Value::Day(Some(from)),
            Value::Day(Some(to)),
        ];
        let rows = self.backend.query(&sql::LATEST_RUNS, params).await?;
        collect(rows, run_record)
    }

    async fn succeeded_days(
        &self,
        pipeline: Pipeline,
        from: Day,
        to: Day,
        trigger: Option<&str>,
        filter: Option<&TokenFilter>,
    ) -> Result<Vec<Day>, LedgerError> {
        let params = vec![
            Value::text(pipeline.name()),
            Value::Day(Some(from)),
            Value::Day(Some(to)),
            Value::optional_text(trigger),
        ];
        let rows = self.backend.query(&sql::SUCCEEDED_DAYS, params).await?;
        let loads = collect(rows, |row| Ok((day_text(row, 0)?, row.optional_text(1)?)))?;
        Ok(covered_days(loads, filter))
    }

    async fn days_loaded(&self, pipeline: Pipeline) -> Result<Vec<DayLoaded>, LedgerError> {
        let rows = self
            .backend
            .query(&sql::DAYS_LOADED, vec![Value::text(pipeline.name())])
            .await?;
        collect(rows, |row| {
            Ok(DayLoaded {
                day: row.text(0)?,
                rows: row.optional_int(1)?.unwrap_or(0),
                token_filter: row.optional_text(2)?,
            })
        })
    }

    async fn runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, LedgerError> {
        let params = vec![
            Value::optional_text(filter.pipeline.map(Pipeline::name)),
            Value::optional_text(filter.status),
            Value::optional_text(filter.trigger.as_deref()),
            Value::optional_text(filter.trigger_prefix.as_deref()),
            Value::Int(filter.before),
            Value::int(i64::from(filter.limit)),
        ];
        let rows = self.backend.query(&sql::RUNS, params).await?;
        collect(rows, run_record)
    }

    async fn run(&self, id: RunId) -> Result<Option<RunRecord>, LedgerError> {
        let rows = self
            .backend
            .query(&sql::RUN, vec![Value::int(id.0)])
            .await?;
        rows.first().map(run_record).transpose()
    }

    async fn steps(&self, run: RunId) -> Result<Vec<Step>, LedgerError> {
        let rows = self
            .backend
            .query(&sql::STEPS, vec![Value::int(run.0)])
            .await?;
        collect(rows, step)
    }

    async fn log_lines(
        &self,
        run: RunId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<LogLine>, LedgerError> {
        let params = vec![
            Value::int(run.0),
            Value::int(after),
            Value::int(i64::from(limit)),
        ];
        let rows = self.backend.query(&sql::LOG_LINES, params).await?;
        collect(rows, |row| {
            Ok(LogLine {
                id: row.int(0)?,
                at: timestamp(row.time(1)?),
                level: row.text(2)?,
                message: row.text(3)?,
            })
        })
    }

    async fn run_counts(&self) -> Result<Vec<RunCount>, LedgerError> {
        let rows = self.backend.query(&sql::RUN_COUNTS, Vec::new()).await?;
        collect(rows, |row| {
            Ok(RunCount {
                pipeline: row.text(0)?,
                status: row.text(1)?,
                runs: row.int(2)?,
                rows: row.int(3)?,
            })
        })
    }

    async fn run_durations(&self) -> Result<Vec<RunDuration>, LedgerError> {
        let rows = self
            .backend
            .query(&sql::FINISHED_RUN_TIMES, Vec::new())
            .await?;
        collect(rows, |row| {
            let elapsed = row.time(3)? - row.time(2)?;
            let micros = elapsed.num_microseconds().unwrap_or(0);
            Ok(RunDuration {
                pipeline: row.text(0)?,
                status: row.text(1)?,
                seconds: (micros as f64 / 1e6).max(0.0),
            })
        })
    }

    async fn sync_triggers(&self, defs: &[TriggerDef]) -> Result<(), LedgerError> {
        for def in defs {
            let params = vec![
                Value::text(&def.name),
                Value::text(&def.pipeline),
                Value::text(&def.schedule),
                Value::Bool(def.active),
                Value::int(def.day_offset.into()),
                Value::int(def.max_attempts.into()),
                Value::int(def.backoff_seconds.into()),
                Value::int(def.timeout_seconds.into()),
                Value::int(def.catchup_days.into()),
                Value::Time(Utc::now()),
            ];
            self.backend.execute(&sql::SYNC_TRIGGER, params).await?;
        }
        Ok(())
    }

    async fn triggers(&self) -> Result<Vec<TriggerState>, LedgerError> {
        let rows = self.backend.query(&sql::TRIGGERS, Vec::new()).await?;
        collect(rows, trigger_state)
    }

    async fn set_trigger_active(&self, name: &str, active: bool) -> Result<bool, LedgerError> {
        let params = vec![
            Value::text(name),
            Value::Bool(active),
            Value::Time(Utc::now()),
        ];
        let updated = self
            .backend
            .execute(&sql::SET_TRIGGER_ACTIVE, params)
            .await?;
        Ok(updated == 1)
    }

    async fn day_attempts(
        &self,
        pipeline: Pipeline,
        from: Day,
        to: Day,
        window_start: chrono::DateTime<Utc>,
    ) -> Result<Vec<DayAttempts>, LedgerError> {
        let params = vec![
            Value::text(pipeline.name()),
            Value::Day(Some(from)),
            Value::Day(Some(to)),
            Value::Time(window_start),
        ];
        let rows = self.backend.query(&sql::DAY_ATTEMPTS, params).await?;
        collect(rows, day_attempts)
    }

    async fn create_backfill_job(&self, job: &NewBackfillJob) -> Result<i64, LedgerError> {
        let params = vec![
            Value::text(job.pipeline.name()),
            Value::Day(Some(job.from)),
            Value::Day(Some(job.to)),
            Value::int(job.parallel.into()),
            Value::Bool(job.force),
            Value::Time(Utc::now()),
        ];
        let rows = self
            .backend
            .query(&sql::CREATE_BACKFILL_JOB, params)
            .await?;
        let id = rows.first().map(|row| row.int(0)).transpose()?;
        id.ok_or(LedgerError::Unexpected {
            context: sql::CREATE_BACKFILL_JOB.context,
            column: 0,
            found: "no row".into(),
            expected: "the new job's id",
        })
    }

    async fn finish_backfill_job(
        &self,
        id: i64,
        state: &str,
        error: Option<&str>,
    ) -> Result<(), LedgerError> {
        let params = vec![
            Value::int(id),
            Value::text(state),
            Value::optional_text(error),
            Value::Time(Utc::now()),
        ];
        self.backend
            .execute(&sql::FINISH_BACKFILL_JOB, params)
            .await?;
        Ok(())
    }

    async fn backfill_jobs(
        &self,
        unfinished_only: bool,
        limit: u32,
    ) -> Result<Vec<BackfillJobRecord>, LedgerError> {
        let params = vec![Value::Bool(unfinished_only), Value::int(limit.into())];
        let rows = self.backend.query(&sql::BACKFILL_JOBS, params).await?;
        collect(rows, backfill_job)
    }

    async fn lock_day(
        &self,
        pipeline: Pipeline,
        scope: Scope,
        wait: bool,
    ) -> Result<Option<Lock>, LedgerError> {
        self.backend
            .lock(LockName::Day(pipeline, scope), wait)
            .await
    }

    async fn lock_leader(&self, wait: bool) -> Result<Option<Lock>, LedgerError> {
        self.backend.lock(LockName::Leader, wait).await
    }

    async fn lock_backfill_job(&self, id: i64) -> Result<Option<Lock>, LedgerError> {
        self.backend.lock(LockName::BackfillJob(id), false).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0x1111111111111111111111111111111111111111";
    const B: &str = "0x2222222222222222222222222222222222222222";

    fn day(text: &str) -> Day {
        text.parse().expect("a day")
    }

    fn filter(text: &str) -> TokenFilter {
        TokenFilter::parse_list(text).expect("a filter")
    }

    #[test]
    fn a_day_is_loaded_for_the_filters_its_successful_loads_cover() {
        let ab = format!("{A},{B}");
        let loads = vec![
            (day("2024-03-01"), Some(A.to_string())),
            (day("2024-03-02"), Some(A.to_string())),
            (day("2024-03-02"), Some(B.to_string())),
            (day("2024-03-03"), None),
            (day("2024-03-03"), Some(A.to_string())),
            (day("2024-03-04"), Some(ab.clone())),
        ];
        let covered = |wanted: Option<&TokenFilter>| covered_days(loads.clone(), wanted);
        let days = |list: &[&str]| list.iter().map(|d| day(d)).collect::<Vec<_>>();
        assert_eq!(covered(None), days(&["2024-03-03"]));
        assert_eq!(
            covered(Some(&filter(A))),
            days(&["2024-03-01", "2024-03-02", "2024-03-03", "2024-03-04"])
        );
        assert_eq!(
            covered(Some(&filter(&ab))),
            days(&["2024-03-02", "2024-03-03", "2024-03-04"])
        );
        assert_eq!(
            covered(Some(&filter(B))),
            days(&["2024-03-02", "2024-03-03", "2024-03-04"])
        );
    }
}
