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
//! - [`parquet`]: Parquet files, one per dataset and day, each renamed into
//!   place before the run's success is recorded in the SQLite ledger beside
//!   them ([`files`]: the layout and the atomic replace, also used by export).
//! - [`ledger`]: runs, steps, logs, variables, triggers and locks, behind the
//!   [`Ledger`] contract, in the same database or another one.

pub mod csv;
pub mod ddl;
pub mod files;
pub mod ledger;
pub mod models;
pub mod parquet;
pub mod postgres;
pub mod schema;
pub mod sink;
pub mod sqlite;
pub mod tls;
mod url;

use std::sync::Arc;

use ethpipe_core::{Day, Pipeline, Rows, Scope, Slice, TokenFilter};

pub use sink::{DayWriter, Sink};

pub use crate::url::{DatabaseUrl, UrlError};
pub use ledger::{
    DayLoaded, Ledger, LedgerError, NewRun, RunId, RunRecord, RunStatus, TriggerDef, TriggerState,
};

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
    /// Reading or writing files (the Parquet store, export).
    #[error("{context}: {source}")]
    Files {
        context: String,
        #[source]
        source: Cause,
    },
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
            SinkError::Ledger(error) => {
                std::error::Error::source(error).and_then(|source| source.downcast_ref())
            }
            SinkError::Rejected(_) | SinkError::Files { .. } => None,
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
/// Checks a batch before it is written: its dataset, that every row is in
/// the slice's day, and (with a token filter) that every row is one of the
/// filter's tokens, since only those rows of the day are replaced.
pub(crate) fn check_batch(
    pipeline: Pipeline,
    scope: Scope,
    filter: Option<&TokenFilter>,
    rows: &Rows,
    rows_before: u64,
) -> Result<(), SinkError> {
    if rows.pipeline() != pipeline {
        return Err(SinkError::Rejected(format!(
            "a batch of {} reached the {pipeline} sink",
            rows.pipeline()
        )));
    }
    let token_column = pipeline
        .column_names()
        .position(|name| name == pipeline.filter_column());
    for (i, row) in rows.iter().enumerate() {
        let row_number = rows_before + i as u64 + 1;
        check_in_scope(scope, row.day_time(), row_number)?;
        if let (Some(filter), Some(column)) = (filter, token_column) {
            let token = text_cell(row, column);
            if !token.as_deref().is_some_and(|t| filter.contains(t)) {
                return Err(SinkError::Rejected(format!(
                    "source row {row_number} is of token {} outside the filter being loaded ({filter})",
                    token.as_deref().unwrap_or("NULL")
                )));
            }
        }
    }
    Ok(())
}

/// The text cell a row writes at `column`.
fn text_cell(row: &dyn ethpipe_core::Row, column: usize) -> Option<String> {
    struct CellAt {
        wanted: usize,
        next: usize,
        value: Option<String>,
    }
    impl CellAt {
        fn skip(&mut self) {
            self.next += 1;
        }
    }
    impl ethpipe_core::dataset::CellWriter for CellAt {
        fn text(&mut self, value: Option<&str>) {
            if self.next == self.wanted {
                self.value = value.map(str::to_string);
            }
            self.skip();
        }
        fn uint(&mut self, _: Option<&ethpipe_core::Uint>) {
            self.skip();
        }
        fn int(&mut self, _: i64) {
            self.skip();
        }
        fn timestamp(&mut self, _: chrono::DateTime<chrono::Utc>) {
            self.skip();
        }
        fn boolean(&mut self, _: bool) {
            self.skip();
        }
    }
    let mut cell = CellAt {
        wanted: column,
        next: 0,
        value: None,
    };
    row.write(&mut cell);
    cell.value
}

pub(crate) fn duplicate_key(pipeline: Pipeline, detail: impl std::fmt::Display) -> SinkError {
    SinkError::Rejected(format!(
        "source day has duplicate ({}): {detail}; the source holds that key twice, a retry cannot help",
        pipeline.key().join(", ")
    ))
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

/// A database ethpipe loads into, and the ledger that records its runs.
pub struct Database {
    store: Store,
    ledger: Arc<dyn Ledger>,
}

enum Store {
    Postgres(Box<postgres::PgDatabase>),
    Sqlite(sqlite::SqliteDatabase),
    Parquet {
        files: parquet::ParquetStore,
        /// The SQLite file holding the ledger, for its migrations.
        ledger_file: sqlite::SqliteDatabase,
    },
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
    /// SQL models to run on the day, in order, inside its transaction (a day
    /// scope only): a kill during a model rolls the day back with it, so a
    /// day is never recorded loaded without its models. A model that fails
    /// is rolled back to its savepoint and stops the rest; the day commits
    /// with the run marked failed, naming the model.
    pub models: Vec<models::Model>,
}

/// What a commit did.
#[derive(Debug)]
pub struct Committed {
    /// The load, the derived steps and each model run, for the ledger.
    pub steps: Vec<StepReport>,
    /// The model that failed, if one did (the run is recorded failed).
    pub model_failure: Option<ModelFailure>,
}

/// A SQL model that failed inside the day's transaction.
#[derive(Debug)]
pub struct ModelFailure {
    /// The model's file name.
    pub model: String,
    pub error: SinkError,
}

impl ModelFailure {
    /// The run's error message.
    pub fn message(&self) -> String {
        format!("model {} failed: {}", self.model, self.error)
    }
}

/// Records one model's outcome as a step; its failure, if it failed.
pub(crate) fn model_outcome(
    model: &models::Model,
    started: chrono::DateTime<chrono::Utc>,
    outcome: Result<u64, SinkError>,
    steps: &mut Vec<StepReport>,
) -> Option<ModelFailure> {
    let mut step = StepReport::since(&model.name, *outcome.as_ref().unwrap_or(&0), started);
    let failure = outcome.err().map(|error| {
        step.error = Some(error.to_string());
        ModelFailure {
            model: model.name.clone(),
            error,
        }
    });
    steps.push(step);
    failure
}

impl Database {
    /// Connects and brings the schema up to date.
    pub async fn open(url: &DatabaseUrl) -> Result<Database, SinkError> {
        Database::open_reporting(url, &postgres::upgrade::Quiet).await
    }

    /// [`Database::open`], telling `progress` how a long upgrade advances.
    pub async fn open_reporting(
        url: &DatabaseUrl,
        progress: &dyn postgres::upgrade::UpgradeProgress,
    ) -> Result<Database, SinkError> {
        let ledger = ledger::open(url)?;
        let store = match url {
            DatabaseUrl::Postgres { config, tls, shown } => Store::Postgres(Box::new(
                postgres::PgDatabase::connect((**config).clone(), tls.clone(), shown).await?,
            )),
            DatabaseUrl::Sqlite { path } => Store::Sqlite(sqlite::SqliteDatabase::open(path)?),
            DatabaseUrl::Parquet { dir } => {
                let files = parquet::ParquetStore::open(dir, Arc::clone(&ledger))?;
                let ledger_file = sqlite::SqliteDatabase::open(&files.ledger_path())?;
                Store::Parquet { files, ledger_file }
            }
        };
        let database = Database { store, ledger };
        database.migrate_reporting(progress).await?;
        Ok(database)
    }

    /// Where this database's runs are recorded.
    pub fn ledger(&self) -> &dyn Ledger {
        &*self.ledger
    }

    pub async fn migrate(&self) -> Result<Vec<u32>, SinkError> {
        self.migrate_reporting(&postgres::upgrade::Quiet).await
    }

    async fn migrate_reporting(
        &self,
        progress: &dyn postgres::upgrade::UpgradeProgress,
    ) -> Result<Vec<u32>, SinkError> {
        match &self.store {
            Store::Postgres(db) => db.migrate(progress).await,
            Store::Sqlite(db) => db.migrate(),
            Store::Parquet { ledger_file, .. } => ledger_file.migrate(),
        }
    }

    /// The data side: where days of every dataset are written.
    pub fn sink(&self) -> &dyn Sink {
        match &self.store {
            Store::Postgres(db) => db.as_ref(),
            Store::Sqlite(db) => db,
            Store::Parquet { files, .. } => files,
        }
    }

    /// Opens a staging area for one (pipeline, scope); nothing is visible until commit.
    pub async fn begin_load(&self, slice: &Slice) -> Result<Box<dyn DayWriter>, SinkError> {
        self.sink().begin(slice).await
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self.store, Store::Sqlite(_))
    }

    /// Whether one day is written at a time: the data is an SQLite file,
    /// which has one writer (and one lock) per file. A `parquet://` store
    /// writes each day's file on its own and locks per day.
    pub fn one_writer_at_a_time(&self) -> bool {
        matches!(self.store, Store::Sqlite(_))
    }

    /// Whether processes on several machines can share the work (`backfill
    /// --worker`): only PostgreSQL's ledger is reachable from all of them.
    pub fn is_shared(&self) -> bool {
        matches!(self.store, Store::Postgres(_))
    }

    /// Rows of a pipeline's table within a day (for `verify` and tests).
    pub async fn count_day(
        &self,
        pipeline: Pipeline,
        day: Day,
        filter: Option<&TokenFilter>,
    ) -> Result<u64, SinkError> {
        self.sink().count_day(pipeline, day, filter).await
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
