//! The run ledger: runs, their steps and log lines, pipeline variables,
//! triggers and locks, behind one [`Ledger`] contract. It is the only code
//! that knows the ledger's tables (`ethpipe.runs` …, SQLite `ethpipe_runs` …).
//!
//! - [`statements`]: every statement, written once, and the bound values.
//! - [`shared`]: the operations, written once over a backend.
//! - [`views`]: records as the dashboard and the API show them.
//! - `postgres`, `sqlite`: only what differs — connecting, binding,
//!   reading columns, locks.
//!
//! A ledger is opened from a [`DatabaseUrl`] of its own, so it may live in
//! another database than the data. When it shares the data's database, a
//! sink records a run's success inside the day's transaction with
//! `postgres::record_commit` / `sqlite::record_commit`.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use ethpipe_sinks::ledger;
//! let url = "sqlite://ethpipe.db".parse()?;
//! let ledger = ledger::open(&url)?;
//! for trigger in ledger.triggers().await? {
//!     println!("{} {}", trigger.def.name, trigger.def.active);
//! }
//! # Ok(())
//! # }
//! ```

mod error;
mod locks;
pub(crate) mod postgres;
mod records;
mod shared;
pub(crate) mod sqlite;
mod statements;
pub mod views;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ethpipe_core::{Day, Gate, Pipeline, Scope, TokenFilter};

pub use error::{FailureKind, LedgerError};
pub use locks::Lock;
pub use records::{
    backfill_job_trigger, BackfillJobRecord, DayAttempts, DayLoaded, NewBackfillJob, NewRun,
    RunCount, RunDuration, RunFilter, RunId, RunRecord, RunStatus, TriggerDef, TriggerState,
};
pub use views::{LogLine, Run, Step, Trigger};

use crate::{Commit, DatabaseUrl, StepReport};

/// Everything ethpipe records about its own work.
#[async_trait]
pub trait Ledger: Send + Sync {
    // ---- runs ----

    /// Records a run as `running`; its attempt number counts earlier runs of the day.
    async fn start_run(&self, run: &NewRun) -> Result<RunId, LedgerError>;

    /// Rows staged so far by a run still `running` (the ledger's live count;
    /// the final count is written with the commit or the failure).
    async fn record_progress(&self, run: RunId, rows_so_far: u64) -> Result<(), LedgerError>;

    /// Marks a run failed unless it already committed.
    async fn fail_run(
        &self,
        run: RunId,
        error: &str,
        rows_written: u64,
        source_rows: Option<u64>,
    ) -> Result<(), LedgerError>;

    /// Records a committed day — the run's success, and the variable the
    /// commit sets — outside the day's transaction (a ledger kept in another
    /// database than the data). Fails if the run is no longer `running`.
    async fn record_commit(&self, commit: &Commit, rows: u64) -> Result<(), LedgerError>;

    /// Marks runs of a (pipeline, scope) still `running` as failed: their
    /// process died. Call only while holding that day's lock.
    async fn abandon_stale_runs(
        &self,
        pipeline: Pipeline,
        scope: Scope,
    ) -> Result<u64, LedgerError>;

    /// Appends steps to a run's record, after those already there.
    async fn record_steps(&self, run: RunId, steps: &[StepReport]) -> Result<(), LedgerError>;

    /// Records the completeness gate a run's rows passed (before its commit).
    async fn record_gate(&self, run: RunId, gate: &Gate) -> Result<(), LedgerError>;

    /// Marks a committed run failed because a later step (a SQL model) failed.
    async fn fail_committed_run(&self, run: RunId, error: &str) -> Result<(), LedgerError>;

    async fn log(&self, run: RunId, level: &str, message: &str) -> Result<(), LedgerError>;

    // ---- pipeline variables ----

    async fn variable(&self, pipeline: Pipeline, name: &str)
        -> Result<Option<String>, LedgerError>;

    async fn set_variable(
        &self,
        pipeline: Pipeline,
        name: &str,
        value: &str,
    ) -> Result<(), LedgerError>;

    // ---- reading runs ----

    /// The latest run of each day in `[from, to]` (for backfill and verify).
    async fn latest_runs(
        &self,
        pipeline: Pipeline,
        from: Day,
        to: Day,
    ) -> Result<Vec<RunRecord>, LedgerError>;

    /// Days in `[from, to]` whose successful runs (of `trigger`, if given)
    /// loaded every row of `filter`'s tokens (`None`: of every token): an
    /// unfiltered success, or filtered ones whose union covers the filter.
    async fn succeeded_days(
        &self,
        pipeline: Pipeline,
        from: Day,
        to: Day,
        trigger: Option<&str>,
        filter: Option<&TokenFilter>,
    ) -> Result<Vec<Day>, LedgerError>;

    /// Days whose latest successful run wrote these rows, oldest first.
    async fn days_loaded(&self, pipeline: Pipeline) -> Result<Vec<DayLoaded>, LedgerError>;

    /// Runs matching `filter`, newest first.
    async fn runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, LedgerError>;

    async fn recent_runs(
        &self,
        pipeline: Pipeline,
        limit: u32,
    ) -> Result<Vec<RunRecord>, LedgerError> {
        let filter = RunFilter {
            pipeline: Some(pipeline),
            limit,
            ..RunFilter::default()
        };
        self.runs(&filter).await
    }

    async fn run(&self, id: RunId) -> Result<Option<RunRecord>, LedgerError>;

    async fn steps(&self, run: RunId) -> Result<Vec<Step>, LedgerError>;

    /// A run's log lines after the line `after` (0: from the start), oldest first.
    async fn log_lines(
        &self,
        run: RunId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<LogLine>, LedgerError>;

    /// Runs and rows per (pipeline, status), for metrics.
    async fn run_counts(&self) -> Result<Vec<RunCount>, LedgerError>;

    /// The duration of every finished run. Runs are per day and pipeline, so
    /// even years of history are a few thousand rows.
    async fn run_durations(&self) -> Result<Vec<RunDuration>, LedgerError>;

    // ---- triggers ----

    /// Creates or updates triggers from the config file. A trigger's `active`
    /// toggle is kept unless the file's own value changed since the last sync.
    async fn sync_triggers(&self, defs: &[TriggerDef]) -> Result<(), LedgerError>;

    async fn triggers(&self) -> Result<Vec<TriggerState>, LedgerError>;

    /// Turns a trigger on or off; false when no such trigger exists.
    async fn set_trigger_active(&self, name: &str, active: bool) -> Result<bool, LedgerError>;

    // ---- the scheduler's reconciliation ----

    /// The days in `[from, to]` that have runs, with what their runs say;
    /// failures count only for runs started at or after `window_start`.
    async fn day_attempts(
        &self,
        pipeline: Pipeline,
        from: Day,
        to: Day,
        window_start: DateTime<Utc>,
    ) -> Result<Vec<DayAttempts>, LedgerError>;

    // ---- backfill jobs ----

    /// Records a backfill as `running`; returns its id.
    async fn create_backfill_job(&self, job: &NewBackfillJob) -> Result<i64, LedgerError>;

    /// Ends a job (`finished` or `failed`); a job left `running` is resumed.
    async fn finish_backfill_job(
        &self,
        id: i64,
        state: &str,
        error: Option<&str>,
    ) -> Result<(), LedgerError>;

    /// Jobs, newest first (only the unfinished ones, if asked), with their progress.
    async fn backfill_jobs(
        &self,
        unfinished_only: bool,
        limit: u32,
    ) -> Result<Vec<BackfillJobRecord>, LedgerError>;

    // ---- locks ----

    /// The one-writer lock for a (pipeline, scope). With `wait` false, `None`
    /// means another process holds it. SQLite has one lock per file.
    async fn lock_day(
        &self,
        pipeline: Pipeline,
        scope: Scope,
        wait: bool,
    ) -> Result<Option<Lock>, LedgerError>;

    /// The scheduler's leader lock: only its holder runs triggers.
    async fn lock_leader(&self, wait: bool) -> Result<Option<Lock>, LedgerError>;

    /// Held by whoever runs a recorded backfill job; free means nobody does.
    async fn lock_backfill_job(&self, id: i64) -> Result<Option<Lock>, LedgerError>;
}

/// Opens the ledger of the database `url` names (for `parquet://DIR`, the
/// SQLite file inside DIR). PostgreSQL connects on first use; the schema is
/// created by the sink's migrations.
pub fn open(url: &DatabaseUrl) -> Result<Arc<dyn Ledger>, LedgerError> {
    open_with(url, None)
}

/// A ledger that can only read, each statement cut off after
/// `statement_timeout` (the server's dashboard and API). Connects on first use.
pub fn open_read_only(
    url: &DatabaseUrl,
    statement_timeout: Duration,
) -> Result<Arc<dyn Ledger>, LedgerError> {
    open_with(url, Some(statement_timeout))
}

fn open_with(
    url: &DatabaseUrl,
    read_only: Option<Duration>,
) -> Result<Arc<dyn Ledger>, LedgerError> {
    let sqlite_ledger = |path: &std::path::Path, writers| -> Arc<dyn Ledger> {
        Arc::new(shared::SqlLedger {
            backend: sqlite::SqliteBackend::new(path, writers, read_only),
        })
    };
    Ok(match url {
        DatabaseUrl::Postgres { config, tls, shown } => Arc::new(shared::SqlLedger {
            backend: postgres::PgBackend::new((**config).clone(), tls, shown, read_only)?,
        }),
        DatabaseUrl::Sqlite { path } => sqlite_ledger(path, sqlite::Writers::OnePerFile),
        DatabaseUrl::Parquet { dir } => sqlite_ledger(
            &DatabaseUrl::parquet_ledger(dir),
            sqlite::Writers::OnePerDay,
        ),
    })
}
