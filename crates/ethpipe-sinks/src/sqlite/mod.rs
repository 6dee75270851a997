//! The SQLite sink: the same tables as PostgreSQL (no schemas; ledger tables
//! prefixed `ethpipe_`), uint256 values as decimal TEXT so nothing is rounded,
//! timestamps as fixed-width ISO-8601 TEXT so they sort and compare as text.
//!
//! SQLite allows one writer at a time: a day is staged in a TEMP table (which
//! takes no lock on the main database) and swapped in with one short
//! `BEGIN IMMEDIATE` transaction.

pub mod day;
mod indexes;
pub(crate) mod migrations;
mod read;
mod statistics;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ethpipe_core::dataset::Dialect;
use ethpipe_core::{Day, Pipeline, Slice, TokenFilter};
use rusqlite::Connection;

use crate::files::RowSink;
use crate::sink::{DayWriter, Sink};
use crate::SinkError;

pub struct SqliteDatabase {
    path: PathBuf,
    /// Connection for short ledger statements; loads get their own.
    connection: Mutex<Connection>,
}

/// The text form both the writer and the queries use: `2024-03-01T00:00:00.000000Z`.
pub fn timestamp_text(instant: DateTime<Utc>) -> String {
    instant.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

pub(crate) fn open_connection(path: &Path) -> Result<Connection, SinkError> {
    let target = format!("sqlite://{}", path.display());
    let connection = Connection::open(path).map_err(|e| SinkError::connect(&target, e))?;
    connection
        .busy_timeout(Duration::from_secs(60))
        .and_then(|_| connection.pragma_update(None, "journal_mode", "WAL"))
        .and_then(|_| connection.pragma_update(None, "synchronous", "NORMAL"))
        .and_then(|_| connection.pragma_update(None, "foreign_keys", "ON"))
        .map_err(|e| SinkError::connect(target, e))?;
    Ok(connection)
}

impl SqliteDatabase {
    pub fn open(path: &Path) -> Result<SqliteDatabase, SinkError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !parent.is_dir() {
                return Err(SinkError::connect(
                    format!("sqlite://{}", path.display()),
                    format!("the folder {} does not exist", parent.display()),
                ));
            }
        }
        Ok(SqliteDatabase {
            connection: Mutex::new(open_connection(path)?),
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn migrate(&self) -> Result<Vec<u32>, SinkError> {
        self.with_connection(migrations::apply)
    }

    fn with_connection<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, SinkError>,
    ) -> Result<T, SinkError> {
        let guard = self
            .connection
            .lock()
            .map_err(|_| SinkError::Rejected("the SQLite connection is poisoned".into()))?;
        f(&guard)
    }
}

#[async_trait]
impl Sink for SqliteDatabase {
    async fn begin(&self, slice: &Slice) -> Result<Box<dyn DayWriter>, SinkError> {
        let connection = open_connection(&self.path)?;
        Ok(Box::new(day::SqliteDayWriter::begin(
            connection,
            slice.clone(),
        )?))
    }

    fn ddl(&self, pipeline: Pipeline) -> Vec<String> {
        crate::ddl::create(pipeline, Dialect::Sqlite)
    }

    async fn count_day(
        &self,
        pipeline: Pipeline,
        day: Day,
        filter: Option<&TokenFilter>,
    ) -> Result<u64, SinkError> {
        let column = pipeline.day_column();
        let sql = format!(
            "SELECT count(*) FROM {} WHERE {column} >= ?1 AND {column} < ?2 AND {}",
            crate::ddl::table(pipeline, Dialect::Sqlite),
            day::in_filter(pipeline, 3)
        );
        self.with_connection(|c| {
            c.query_row(
                &sql,
                rusqlite::params![
                    timestamp_text(day.start()),
                    timestamp_text(day.end()),
                    day::filter_json(filter)
                ],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(|e| SinkError::db("counting a day's rows", e))
        })
    }

    /// Steps through the rows synchronously, as the SQLite writer stages
    /// them: rusqlite has no async interface.
    async fn read_day(
        &self,
        pipeline: Pipeline,
        day: Day,
        out: &mut dyn RowSink,
    ) -> Result<u64, SinkError> {
        let connection = open_connection(&self.path)?;
        read::read_day(&connection, pipeline, day, out)
    }
}

/// Runs one SQL model's statements on `connection`, inside the transaction
/// the caller holds open; every parameter (`:day`, `$1`, `?1`) is the day.
/// Returns the rows the statements affected.
pub(crate) fn execute_model(
    connection: &Connection,
    statements: &[String],
    day: Day,
) -> Result<u64, SinkError> {
    let fail = |e: rusqlite::Error| SinkError::Rejected(e.to_string());
    let day_text = day.to_string();
    let mut rows = 0;
    for statement in statements {
        let mut prepared = connection.prepare(statement).map_err(fail)?;
        for index in 1..=prepared.parameter_count() {
            prepared
                .raw_bind_parameter(index, &day_text)
                .map_err(fail)?;
        }
        rows += prepared.raw_execute().map_err(fail)? as u64;
    }
    Ok(rows)
}
