//! Where ethpipe writes: the token tables and the pipeline's own ledger.
//!
//! Both databases follow one contract: a day of rows is staged while it streams
//! in, then swapped into the table in a single transaction together with the
//! ledger's "success", so readers see the old complete day or the new one, and
//! the ledger never claims a day that is not there.
//!
//! - [`postgres`]: binary `COPY` into a temporary staging table, then
//!   delete-day + insert in one transaction (`postgres::day`).
//! - [`sqlite`]: the same shape with prepared inserts, for zero-setup use.
//! - [`ledger`]: the run records both databases keep.

pub mod ledger;
pub mod locks;
pub mod models;
pub mod postgres;
pub mod schema;
pub mod sink;
pub mod sqlite;
pub mod triggers;
mod url;

use ethpipe_core::{Day, Pipeline, Rows, Scope};

pub use sink::{DayWriter, Sink};

pub use crate::url::{DatabaseUrl, UrlError};
pub use ledger::{DayLoaded, NewRun, RunId, RunRecord, RunStatus};
pub use triggers::{TriggerDef, TriggerState};

/// A database error's cause, kept for callers that inspect it (SQLSTATE codes).
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot connect to {target}: {}", cause_text(.source))]
    Connect {
        target: String,
        #[source]
        source: Cause,
    },
    #[error("{context}: {}", cause_text(.source))]
    Database {
        context: String,
        #[source]
        source: Cause,
    },
    #[error("{0}")]
    Rejected(String),
}

impl SinkError {
    pub(crate) fn db(context: impl Into<String>, error: impl Into<Cause>) -> SinkError {
        SinkError::Database {
            context: context.into(),
            source: error.into(),
        }
    }

    pub(crate) fn connect(target: impl Into<String>, error: impl Into<Cause>) -> SinkError {
        SinkError::Connect {
            target: target.into(),
            source: error.into(),
        }
    }

    /// The PostgreSQL error behind this one, if any (for its SQLSTATE).
    pub fn postgres_cause(&self) -> Option<&tokio_postgres::Error> {
        match self {
            SinkError::Connect { source, .. } | SinkError::Database { source, .. } => {
                source.downcast_ref()
            }
            SinkError::Rejected(_) => None,
        }
    }
}

/// tokio-postgres' Display for server errors is just "db error": show the
/// server's message and code instead.
fn cause_text(cause: &Cause) -> String {
    match cause.downcast_ref::<tokio_postgres::Error>() {
        Some(error) => postgres::describe(error),
        None => cause.to_string(),
    }
}

/// A source must only send rows of the dataset and day it was asked for: a
/// row outside the day would be deleted by the next load of its own day, or
/// duplicated. `rows_before` numbers the batch's rows in the run's stream.
pub(crate) fn check_batch(
    pipeline: Pipeline,
    scope: Scope,
    rows: &Rows,
    rows_before: u64,
) -> Result<(), SinkError> {
    if rows.pipeline() != pipeline {
        return Err(SinkError::Rejected(format!(
            "a batch of {} reached the {pipeline} sink",
            rows.pipeline()
        )));
    }
    for (i, row) in rows.iter().enumerate() {
        check_in_scope(scope, row.day_time(), rows_before + i as u64 + 1)?;
    }
    Ok(())
}

fn check_in_scope(
    scope: Scope,
    timestamp: chrono::DateTime<chrono::Utc>,
    row_number: u64,
) -> Result<(), SinkError> {
    match scope.day() {
        Some(day) if timestamp < day.start() || timestamp >= day.end() => {
            Err(SinkError::Rejected(format!(
            "source row {row_number} has block_timestamp {} outside the day being loaded ({scope})",
            timestamp.format("%Y-%m-%d %H:%M:%S%.6f UTC"),
        )))
        }
        _ => Ok(()),
    }
}

/// A database ethpipe loads into.
pub enum Database {
    Postgres(Box<postgres::PgDatabase>),
    Sqlite(sqlite::SqliteDatabase),
}

/// A step of a run (the load itself, the daily statistics, a SQL model) as the
/// ledger records it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepReport {
    pub name: String,
    pub rows: u64,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: chrono::DateTime<chrono::Utc>,
    pub error: Option<String>,
}

impl StepReport {
    pub fn since(name: &str, rows: u64, started_at: chrono::DateTime<chrono::Utc>) -> StepReport {
        StepReport {
            name: name.to_string(),
            rows,
            started_at,
            finished_at: chrono::Utc::now(),
            error: None,
        }
    }
}

/// What a committed load also records, atomically with the rows.
#[derive(Debug, Clone)]
pub struct Commit {
    pub run: RunId,
    pub source_rows: u64,
    pub skipped_rows: u64,
    /// A pipeline variable to set in the same transaction (the tokens first-run flag).
    pub set_variable: Option<(Pipeline, &'static str, String)>,
}

impl Database {
    /// Connects and brings the schema up to date.
    pub async fn open(url: &DatabaseUrl) -> Result<Database, SinkError> {
        let database = match url {
            DatabaseUrl::Postgres { config, shown } => Database::Postgres(Box::new(
                postgres::PgDatabase::connect((**config).clone(), shown).await?,
            )),
            DatabaseUrl::Sqlite { path } => Database::Sqlite(sqlite::SqliteDatabase::open(path)?),
        };
        database.migrate().await?;
        Ok(database)
    }

    pub async fn migrate(&self) -> Result<Vec<u32>, SinkError> {
        match self {
            Database::Postgres(db) => db.migrate().await,
            Database::Sqlite(db) => db.migrate(),
        }
    }

    /// The data side: where days of every dataset are written.
    pub fn sink(&self) -> &dyn Sink {
        match self {
            Database::Postgres(db) => db.as_ref(),
            Database::Sqlite(db) => db,
        }
    }

    /// Opens a staging area for one (pipeline, scope); nothing is visible until commit.
    pub async fn begin_load(
        &self,
        pipeline: Pipeline,
        scope: Scope,
    ) -> Result<Box<dyn DayWriter>, SinkError> {
        self.sink().begin(pipeline, scope).await
    }

    pub async fn start_run(&self, run: &NewRun) -> Result<RunId, SinkError> {
        match self {
            Database::Postgres(db) => db.ledger().start_run(run).await,
            Database::Sqlite(db) => db.ledger(|l| l.start_run(run)),
        }
    }

    /// Rows staged so far by a run still `running` (the ledger's live count;
    /// the final count is written with the commit or the failure).
    pub async fn record_progress(&self, run: RunId, rows_so_far: u64) -> Result<(), SinkError> {
        match self {
            Database::Postgres(db) => db.ledger().record_progress(run, rows_so_far).await,
            Database::Sqlite(db) => db.ledger(|l| l.record_progress(run, rows_so_far)),
        }
    }

    pub async fn fail_run(
        &self,
        run: RunId,
        error: &str,
        rows_written: u64,
        source_rows: Option<u64>,
    ) -> Result<(), SinkError> {
        match self {
            Database::Postgres(db) => {
                db.ledger()
                    .fail_run(run, error, rows_written, source_rows)
                    .await
            }
            Database::Sqlite(db) => {
                db.ledger(|l| l.fail_run(run, error, rows_written, source_rows))
            }
        }
    }

    /// The one-writer lock for a (pipeline, scope). With `wait` false, `None`
    /// means another process holds it. SQLite has one lock per file.
    pub async fn lock_day(
        &self,
        pipeline: Pipeline,
        scope: Scope,
        wait: bool,
    ) -> Result<Option<locks::Lock>, SinkError> {
        match self {
            Database::Postgres(db) => {
                let client = db.new_client().await?;
                locks::pg_lock(client, &locks::day_lock_name(pipeline, scope), wait).await
            }
            Database::Sqlite(db) => locks::sqlite_lock(db.path(), wait),
        }
    }

    /// The scheduler's leader lock: only its holder runs triggers.
    pub async fn lock_leader(&self, wait: bool) -> Result<Option<locks::Lock>, SinkError> {
        match self {
            Database::Postgres(db) => {
                let client = db.new_client().await?;
                locks::pg_lock(client, "ethpipe:scheduler-leader", wait).await
            }
            Database::Sqlite(db) => {
                let mut path = db.path().as_os_str().to_owned();
                path.push(".scheduler");
                locks::sqlite_lock(std::path::Path::new(&path), wait)
            }
        }
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self, Database::Sqlite(_))
    }

    /// Marks runs of a (pipeline, scope) still `running` as failed: their
    /// process died. Call only while holding that day's lock.
    pub async fn abandon_stale_runs(
        &self,
        pipeline: Pipeline,
        scope: Scope,
    ) -> Result<u64, SinkError> {
        match self {
            Database::Postgres(db) => db.ledger().abandon_stale_runs(pipeline, scope).await,
            Database::Sqlite(db) => db.ledger(|l| l.abandon_stale_runs(pipeline, scope)),
        }
    }

    /// The latest run of each day in `[from, to]` (for backfill and verify).
    pub async fn latest_runs(
        &self,
        pipeline: Pipeline,
        from: Day,
        to: Day,
    ) -> Result<Vec<RunRecord>, SinkError> {
        match self {
            Database::Postgres(db) => db.ledger().latest_runs(pipeline, from, to).await,
            Database::Sqlite(db) => db.ledger(|l| l.latest_runs(pipeline, from, to)),
        }
    }

    /// Days in `[from, to]` with a successful run (of `trigger`, if given).
    pub async fn succeeded_days(
        &self,
        pipeline: Pipeline,
        from: Day,
        to: Day,
        trigger: Option<&str>,
    ) -> Result<Vec<Day>, SinkError> {
        match self {
            Database::Postgres(db) => {
                db.ledger()
                    .succeeded_days(pipeline, from, to, trigger)
                    .await
            }
            Database::Sqlite(db) => db.ledger(|l| l.succeeded_days(pipeline, from, to, trigger)),
        }
    }

    /// Creates or updates triggers from the config file. A trigger's `active`
    /// toggle is kept unless the file's own value changed since the last sync.
    pub async fn sync_triggers(&self, defs: &[TriggerDef]) -> Result<(), SinkError> {
        match self {
            Database::Postgres(db) => db.ledger().sync_triggers(defs).await,
            Database::Sqlite(db) => db.ledger(|l| l.sync_triggers(defs)),
        }
    }

    pub async fn triggers(&self) -> Result<Vec<TriggerState>, SinkError> {
        match self {
            Database::Postgres(db) => db.ledger().triggers().await,
            Database::Sqlite(db) => db.ledger(|l| l.triggers()),
        }
    }

    /// Turns a trigger on or off; false when no such trigger exists.
    pub async fn set_trigger_active(&self, name: &str, active: bool) -> Result<bool, SinkError> {
        match self {
            Database::Postgres(db) => db.ledger().set_trigger_active(name, active).await,
            Database::Sqlite(db) => db.ledger(|l| l.set_trigger_active(name, active)),
        }
    }

    pub async fn set_last_slot(
        &self,
        name: &str,
        slot: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), SinkError> {
        match self {
            Database::Postgres(db) => db.ledger().set_last_slot(name, slot).await,
            Database::Sqlite(db) => db.ledger(|l| l.set_last_slot(name, slot)),
        }
    }

    /// Records that `name` fires for `slot`; false if that slot already fired.
    pub async fn claim_fire(
        &self,
        name: &str,
        slot: chrono::DateTime<chrono::Utc>,
        day: Day,
    ) -> Result<bool, SinkError> {
        match self {
            Database::Postgres(db) => db.ledger().claim_fire(name, slot, day).await,
            Database::Sqlite(db) => db.ledger(|l| l.claim_fire(name, slot, day)),
        }
    }

    /// Appends steps to a run's record, after those already there.
    pub async fn record_steps(&self, run: RunId, steps: &[StepReport]) -> Result<(), SinkError> {
        match self {
            Database::Postgres(db) => db.ledger().record_steps(run, steps).await,
            Database::Sqlite(db) => db.ledger(|l| l.record_steps(run, steps)),
        }
    }

    /// Marks a committed run failed because a later step (a SQL model) failed.
    pub async fn fail_committed_run(&self, run: RunId, error: &str) -> Result<(), SinkError> {
        match self {
            Database::Postgres(db) => db.ledger().fail_committed_run(run, error).await,
            Database::Sqlite(db) => db.ledger(|l| l.fail_committed_run(run, error)),
        }
    }

    /// Runs one SQL model (its statements, in one transaction) with `day`
    /// bound to every parameter. Returns the rows the statements affected.
    pub async fn run_model(&self, statements: &[String], day: Day) -> Result<u64, SinkError> {
        self.sink().run_model(statements, day).await
    }

    pub async fn log(&self, run: RunId, level: &str, message: &str) -> Result<(), SinkError> {
        match self {
            Database::Postgres(db) => db.ledger().log(run, level, message).await,
            Database::Sqlite(db) => db.ledger(|l| l.log(run, level, message)),
        }
    }

    pub async fn variable(
        &self,
        pipeline: Pipeline,
        name: &str,
    ) -> Result<Option<String>, SinkError> {
        match self {
            Database::Postgres(db) => db.ledger().variable(pipeline, name).await,
            Database::Sqlite(db) => db.ledger(|l| l.variable(pipeline, name)),
        }
    }

    pub async fn recent_runs(
        &self,
        pipeline: Pipeline,
        limit: u32,
    ) -> Result<Vec<RunRecord>, SinkError> {
        match self {
            Database::Postgres(db) => db.ledger().recent_runs(pipeline, limit).await,
            Database::Sqlite(db) => db.ledger(|l| l.recent_runs(pipeline, limit)),
        }
    }

    /// Days whose latest run succeeded, with the rows that run wrote.
    pub async fn days_loaded(&self, pipeline: Pipeline) -> Result<Vec<DayLoaded>, SinkError> {
        match self {
            Database::Postgres(db) => db.ledger().days_loaded(pipeline).await,
            Database::Sqlite(db) => db.ledger(|l| l.days_loaded(pipeline)),
        }
    }

    /// Rows of a pipeline's table within a day (for `verify` and tests).
    pub async fn count_day(&self, pipeline: Pipeline, day: Day) -> Result<u64, SinkError> {
        self.sink().count_day(pipeline, day).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_outside_the_day_are_rejected_naming_the_row() {
        let day: Day = "2024-03-01".parse().unwrap();
        let scope = Scope::Day(day);
        assert!(check_in_scope(scope, day.start(), 1).is_ok());
        assert!(check_in_scope(scope, day.end() - chrono::Duration::microseconds(1), 2).is_ok());
        let err = check_in_scope(scope, day.end(), 3).unwrap_err().to_string();
        assert!(
            err.starts_with("source row 3 has block_timestamp 2024-03-02 00:00:00.000000 UTC"),
            "{err}"
        );
        assert!(check_in_scope(Scope::Full, day.end(), 4).is_ok());
    }
}
