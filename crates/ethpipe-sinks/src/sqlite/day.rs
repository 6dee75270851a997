//! Where a SQLite day is committed, for every dataset: rows go into a TEMP
//! staging table batch by batch through one prepared insert, then one
//! `BEGIN IMMEDIATE` transaction replaces the day (or merges the rows by the
//! dataset's rules; while the table is small its secondary indexes are built
//! after the insert, `indexes.rs`), runs its derived steps and the SQL models
//! and records the run.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ethpipe_core::dataset::{CellWriter, Dialect, LoadMode};
use ethpipe_core::{Pipeline, Rows, Scope, Slice, TokenFilter, Uint};
use rusqlite::{Connection, Statement};

use super::{indexes, statistics, timestamp_text};
use crate::ledger::sqlite as ledger;
use crate::models::Model;
use crate::sink::DayWriter;
use crate::{
    check_batch, duplicate_key, model_outcome, Commit, Committed, ModelFailure, SinkError,
    StepReport,
};

const STAGING: &str = "temp.ethpipe_staging";

pub struct SqliteDayWriter {
    connection: Connection,
    pipeline: Pipeline,
    scope: Scope,
    /// Only these tokens' rows of the day are replaced.
    filter: Option<TokenFilter>,
    rows: u64,
}

/// The condition that keeps a filter's tokens' rows, the filter bound as a
/// JSON array (NULL: every row) at parameter `?{index}`.
pub(super) fn in_filter(pipeline: Pipeline, index: usize) -> String {
    in_filter_column(pipeline.filter_column(), index)
}

pub(super) fn in_filter_column(column: &str, index: usize) -> String {
    format!("(?{index} IS NULL OR {column} IN (SELECT value FROM json_each(?{index})))")
}

/// A filter as the JSON array [`in_filter`] binds.
pub(super) fn filter_json(filter: Option<&TokenFilter>) -> Option<String> {
    filter.map(|f| serde_json::Value::from(f.addresses().to_vec()).to_string())
}

fn fail(context: &'static str) -> impl Fn(rusqlite::Error) -> SinkError {
    move |e| SinkError::db(context, e)
}

impl SqliteDayWriter {
    pub fn begin(connection: Connection, slice: Slice) -> Result<Self, SinkError> {
        let Slice {
            pipeline,
            scope,
            filter,
        } = slice;
        connection
            .execute_batch(&format!(
                "CREATE TEMP TABLE ethpipe_staging AS SELECT * FROM {} WHERE 0",
                crate::ddl::table(pipeline, Dialect::Sqlite)
            ))
            .map_err(fail("opening the staging table"))?;
        Ok(SqliteDayWriter {
            connection,
            pipeline,
            scope,
            filter,
            rows: 0,
        })
    }

    fn stage(&mut self, rows: &Rows) -> Result<(), SinkError> {
        let tx = self
            .connection
            .transaction()
            .map_err(fail("staging rows"))?;
        {
            let placeholders: Vec<String> = (1..=self.pipeline.columns().len())
                .map(|i| format!("?{i}"))
                .collect();
            let mut insert = tx
                .prepare_cached(&format!(
                    "INSERT INTO {STAGING} VALUES ({})",
                    placeholders.join(", ")
                ))
                .map_err(fail("staging rows"))?;
            for row in rows.iter() {
                let mut binder = Binder {
                    statement: &mut insert,
                    next: 1,
                    error: None,
                };
                row.write(&mut binder);
                if let Some(error) = binder.error {
                    return Err(fail("staging rows")(error));
                }
                insert.raw_execute().map_err(fail("staging rows"))?;
            }
        }
        tx.commit().map_err(fail("staging rows"))
    }

    fn swap_in(
        &self,
        commit: &Commit,
        steps: &mut Vec<StepReport>,
    ) -> Result<Option<ModelFailure>, SinkError> {
        let started = Utc::now();
        let connection = &self.connection;
        let table = crate::ddl::table(self.pipeline, Dialect::Sqlite);
        if self.pipeline.load_mode() == LoadMode::Merge {
            for statement in self.pipeline.merge_statements(Dialect::Sqlite) {
                let sql = statement
                    .replace("{table}", &table)
                    .replace("{staging}", STAGING);
                connection
                    .execute(&sql, [])
                    .map_err(fail("merging the rows"))?;
            }
        } else {
            if let Some(day) = self.scope.day() {
                let column = self.pipeline.day_column();
                connection
                    .execute(
                        &format!(
                            "DELETE FROM {table} WHERE {column} >= ?1 AND {column} < ?2 AND {}",
                            in_filter(self.pipeline, 3)
                        ),
                        rusqlite::params![
                            timestamp_text(day.start()),
                            timestamp_text(day.end()),
                            filter_json(self.filter.as_ref())
                        ],
                    )
                    .map_err(fail("replacing the day"))?;
            }
            let set_aside =
                indexes::set_aside_when_cheaper(connection, self.pipeline.name(), self.rows)?;
            connection
                .execute(&format!("INSERT INTO {table} SELECT * FROM {STAGING}"), [])
                .map_err(|e| match e.sqlite_error_code() {
                    Some(rusqlite::ErrorCode::ConstraintViolation) => duplicate_key(
                        self.pipeline,
                        self.duplicated_key().unwrap_or(e.to_string()),
                    ),
                    _ => fail("inserting the day")(e),
                })?;
            if let Some(set_aside) = set_aside {
                set_aside.rebuild(connection)?;
            }
        }
        steps.push(StepReport::since("load", self.rows, started));
        for derived in self.pipeline.derived() {
            steps.push(statistics::derive(
                connection,
                *derived,
                self.scope,
                self.filter.as_ref(),
            )?);
        }
        let model_failure = self.run_models(&commit.models, steps)?;
        let failure_message = model_failure.as_ref().map(ModelFailure::message);
        ledger::record_commit(connection, commit, self.rows, failure_message.as_deref())?;
        Ok(model_failure)
    }

    /// Runs the models in order inside the day's transaction, each behind a
    /// savepoint: a failing model is rolled back alone and stops the rest.
    fn run_models(
        &self,
        models: &[Model],
        steps: &mut Vec<StepReport>,
    ) -> Result<Option<ModelFailure>, SinkError> {
        let Some(day) = self.scope.day() else {
            return Ok(None);
        };
        let savepoint = |sql: &str| {
            self.connection
                .execute_batch(sql)
                .map_err(fail("running the SQL models"))
        };
        for model in models {
            let started = Utc::now();
            savepoint("SAVEPOINT ethpipe_model")?;
            let outcome = super::execute_model(&self.connection, &model.statements, day);
            if outcome.is_err() {
                savepoint("ROLLBACK TO SAVEPOINT ethpipe_model")?;
            }
            savepoint("RELEASE SAVEPOINT ethpipe_model")?;
            if let Some(failure) = model_outcome(model, started, outcome, steps) {
                return Ok(Some(failure));
            }
        }
        Ok(None)
    }
}

impl SqliteDayWriter {
    /// A staged key that appears twice, spelled as PostgreSQL reports one.
    fn duplicated_key(&self) -> Option<String> {
        let key = self.pipeline.key().join(", ");
        let values = self
            .pipeline
            .key()
            .iter()
            .map(|column| format!("CAST({column} AS TEXT)"))
            .collect::<Vec<_>>()
            .join(" || ', ' || ");
        let sql =
            format!("SELECT {values} FROM {STAGING} GROUP BY {key} HAVING count(*) > 1 LIMIT 1");
        let found: String = self.connection.query_row(&sql, [], |row| row.get(0)).ok()?;
        Some(format!("Key ({key})=({found}) appears more than once"))
    }
}

#[async_trait]
impl DayWriter for SqliteDayWriter {
    fn rows_written(&self) -> u64 {
        self.rows
    }

    async fn write(&mut self, rows: &Rows) -> Result<(), SinkError> {
        check_batch(
            self.pipeline,
            self.scope,
            self.filter.as_ref(),
            rows,
            self.rows,
        )?;
        self.stage(rows)?;
        self.rows += rows.len() as u64;
        Ok(())
    }

    async fn commit(self: Box<Self>, commit: Commit) -> Result<Committed, SinkError> {
        let mut steps = Vec::new();
        self.connection
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(fail("locking the database for the day's swap"))?;
        match self.swap_in(&commit, &mut steps) {
            Ok(model_failure) => {
                self.connection
                    .execute_batch("COMMIT")
                    .map_err(fail("committing the day"))?;
                Ok(Committed {
                    steps,
                    model_failure,
                })
            }
            Err(e) => {
                let _ = self.connection.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }
}

/// Binds a row's cells to the prepared insert's parameters, in order.
struct Binder<'a, 'c> {
    statement: &'a mut Statement<'c>,
    next: usize,
    /// The first bind error; the row is not inserted.
    error: Option<rusqlite::Error>,
}

impl Binder<'_, '_> {
    fn bind<T: rusqlite::ToSql>(&mut self, value: T) {
        if self.error.is_none() {
            if let Err(e) = self.statement.raw_bind_parameter(self.next, value) {
                self.error = Some(e);
            }
        }
        self.next += 1;
    }
}

impl CellWriter for Binder<'_, '_> {
    fn text(&mut self, value: Option<&str>) {
        self.bind(value);
    }

    fn uint(&mut self, value: Option<&Uint>) {
        self.bind(value.map(Uint::as_str));
    }

    fn int(&mut self, value: i64) {
        self.bind(value);
    }

    fn timestamp(&mut self, value: DateTime<Utc>) {
        self.bind(timestamp_text(value));
    }

    fn boolean(&mut self, value: bool) {
        self.bind(value);
    }
}
