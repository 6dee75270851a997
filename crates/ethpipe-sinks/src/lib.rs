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
//! - [`ledger`]: runs, steps, logs, variables, triggers and locks, behind the
//!   [`Ledger`] contract, in the same database or another one.

pub mod ledger;
pub mod models;
pub mod postgres;
pub mod sqlite;
mod url;

use std::sync::Arc;

use ethpipe_core::{Day, Pipeline, Rows, Scope};

pub use crate::url::{DatabaseUrl, UrlError};
pub use ledger::{
    DayLoaded, Ledger, LedgerError, NewRun, RunId, RunRecord, RunStatus, TriggerDef, TriggerState,
};

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot connect to {target}: {message}")]
    Connect { target: String, message: String },
    #[error("{context}: {message}")]
    Database { context: String, message: String },
    #[error("{0}")]
    Rejected(String),
    #[error(transparent)]
    Ledger(LedgerError),
}

impl From<LedgerError> for SinkError {
    /// A run closed meanwhile is a rejection like any other: retrying the
    /// same run cannot help.
    fn from(error: LedgerError) -> Self {
        match error {
            LedgerError::NotRunning { .. } => SinkError::Rejected(error.to_string()),
            error => SinkError::Ledger(error),
        }
    }
}

impl SinkError {
    pub(crate) fn db(context: impl Into<String>, error: impl std::fmt::Display) -> SinkError {
        SinkError::Database {
            context: context.into(),
            message: error.to_string(),
        }
    }
}

/// A source must only send rows of the day it was asked for: a row outside it
/// would be deleted by the next load of its own day, or duplicated.
pub(crate) fn check_in_scope(
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

/// A database ethpipe loads into, and the ledger that records its runs.
pub struct Database {
    store: Store,
    ledger: Arc<dyn Ledger>,
}

enum Store {
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
        let store = match url {
            DatabaseUrl::Postgres { config, shown } => Store::Postgres(Box::new(
                postgres::PgDatabase::connect((**config).clone(), shown).await?,
            )),
            DatabaseUrl::Sqlite { path } => Store::Sqlite(sqlite::SqliteDatabase::open(path)?),
        };
        let database = Database {
            store,
            ledger: ledger::open(url)?,
        };
        database.migrate().await?;
        Ok(database)
    }

    /// Where this database's runs are recorded.
    pub fn ledger(&self) -> &dyn Ledger {
        &*self.ledger
    }

    pub async fn migrate(&self) -> Result<Vec<u32>, SinkError> {
        match &self.store {
            Store::Postgres(db) => db.migrate().await,
            Store::Sqlite(db) => db.migrate(),
        }
    }

    /// Opens a staging area for one (pipeline, scope); nothing is visible until commit.
    pub async fn begin_load(
        &self,
        pipeline: Pipeline,
        scope: Scope,
    ) -> Result<DayWriter, SinkError> {
        Ok(match &self.store {
            Store::Postgres(db) => DayWriter::Postgres(db.begin_load(pipeline, scope).await?),
            Store::Sqlite(db) => DayWriter::Sqlite(db.begin_load(pipeline, scope)?),
        })
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self.store, Store::Sqlite(_))
    }

    /// Runs one SQL model (its statements, in one transaction) with `day`
    /// bound to every parameter. Returns the rows the statements affected.
    pub async fn run_model(&self, statements: &[String], day: Day) -> Result<u64, SinkError> {
        match &self.store {
            Store::Postgres(db) => db.run_model(statements, day).await,
            Store::Sqlite(db) => db.run_model(statements, day),
        }
    }

    /// Rows of a pipeline's table within a day (for `verify` and tests).
    pub async fn count_day(&self, pipeline: Pipeline, day: Day) -> Result<u64, SinkError> {
        match &self.store {
            Store::Postgres(db) => db.count_day(pipeline, day).await,
            Store::Sqlite(db) => db.count_day(pipeline, day),
        }
    }
}

/// A day being loaded: rows stream into staging, then [`DayWriter::commit`]
/// swaps them in. Dropping it without committing discards everything.
pub enum DayWriter {
    Postgres(postgres::day::PgDayWriter),
    Sqlite(sqlite::day::SqliteDayWriter),
}

impl DayWriter {
    pub async fn write(&mut self, rows: &Rows) -> Result<(), SinkError> {
        match self {
            DayWriter::Postgres(w) => w.write(rows).await,
            DayWriter::Sqlite(w) => w.write(rows),
        }
    }

    pub fn rows_written(&self) -> u64 {
        match self {
            DayWriter::Postgres(w) => w.rows_written(),
            DayWriter::Sqlite(w) => w.rows_written(),
        }
    }

    /// Replaces the day (or upserts a full load), rebuilds the day's statistics
    /// and records the run's success, all in one transaction. Returns the steps
    /// it performed, for the ledger.
    pub async fn commit(self, commit: Commit) -> Result<Vec<StepReport>, SinkError> {
        match self {
            DayWriter::Postgres(w) => w.commit(commit).await,
            DayWriter::Sqlite(w) => w.commit(commit),
        }
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
