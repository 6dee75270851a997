//! Every ledger statement, written once, and the values that cross the
//! boundary to either database.
//!
//! Statements are written in PostgreSQL's spelling (`ethpipe.runs`, `$1`); the
//! SQLite backend rewrites the two things that differ (`ethpipe_runs`, `?1`).
//! Everything else is SQL both databases accept: `IS NOT DISTINCT FROM`,
//! `CAST(… AS TEXT)`, `ON CONFLICT`, `RETURNING`, and the latest run of a day
//! as `id = (SELECT max(id) …)` rather than PostgreSQL's `DISTINCT ON`.
//! Timestamps are bound from Rust, never `now()`, so both stores agree on the
//! clock and on the statement text.

use chrono::{DateTime, NaiveDate, Utc};
use ethpipe_core::Day;

use super::error::LedgerError;

/// One SQL statement and what it does, for error messages.
pub(crate) struct Statement {
    pub sql: &'static str,
    pub context: &'static str,
}

/// A bound parameter. Each backend maps it to its own column type (a
/// PostgreSQL `date` or `timestamptz`, SQLite's fixed-width text).
#[derive(Debug, Clone)]
pub(crate) enum Value {
    Int(Option<i64>),
    Text(Option<String>),
    Bool(bool),
    Day(Option<Day>),
    Time(DateTime<Utc>),
}

impl Value {
    pub fn text(text: &str) -> Value {
        Value::Text(Some(text.to_string()))
    }

    pub fn optional_text(text: Option<&str>) -> Value {
        Value::Text(text.map(str::to_string))
    }

    pub fn int(n: i64) -> Value {
        Value::Int(Some(n))
    }

    /// A count of rows: far below `i64::MAX` in practice, saturated if not.
    pub fn count(n: u64) -> Value {
        Value::Int(Some(i64::try_from(n).unwrap_or(i64::MAX)))
    }
}

/// One column of a result row, as the database gave it.
#[derive(Debug, Clone)]
pub(crate) enum Cell {
    Null,
    Int(i64),
    Text(String),
    Bool(bool),
    Time(DateTime<Utc>),
    Date(NaiveDate),
}

/// A result row; the typed getters accept each store's representation
/// (SQLite's timestamps are text, its booleans integers).
pub(crate) struct Record {
    pub cells: Vec<Cell>,
    pub context: &'static str,
}

impl Record {
    fn cell(&self, column: usize) -> &Cell {
        self.cells.get(column).unwrap_or(&Cell::Null)
    }

    fn unexpected(&self, column: usize, expected: &'static str) -> LedgerError {
        LedgerError::Unexpected {
            context: self.context,
            column,
            found: format!("{:?}", self.cell(column)),
            expected,
        }
    }

    pub fn optional_int(&self, column: usize) -> Result<Option<i64>, LedgerError> {
        match self.cell(column) {
            Cell::Null => Ok(None),
            Cell::Int(n) => Ok(Some(*n)),
            _ => Err(self.unexpected(column, "an integer")),
        }
    }

    pub fn int(&self, column: usize) -> Result<i64, LedgerError> {
        self.optional_int(column)?
            .ok_or_else(|| self.unexpected(column, "an integer"))
    }

    pub fn int32(&self, column: usize) -> Result<i32, LedgerError> {
        i32::try_from(self.int(column)?).map_err(|_| self.unexpected(column, "a 32-bit integer"))
    }

    pub fn optional_text(&self, column: usize) -> Result<Option<String>, LedgerError> {
        match self.cell(column) {
            Cell::Null => Ok(None),
            Cell::Text(text) => Ok(Some(text.clone())),
            Cell::Date(date) => Ok(Some(date.to_string())),
            _ => Err(self.unexpected(column, "text")),
        }
    }

    pub fn text(&self, column: usize) -> Result<String, LedgerError> {
        self.optional_text(column)?
            .ok_or_else(|| self.unexpected(column, "text"))
    }

    pub fn bool(&self, column: usize) -> Result<bool, LedgerError> {
        match self.cell(column) {
            Cell::Bool(b) => Ok(*b),
            Cell::Int(n) => Ok(*n != 0),
            _ => Err(self.unexpected(column, "a boolean")),
        }
    }

    pub fn optional_time(&self, column: usize) -> Result<Option<DateTime<Utc>>, LedgerError> {
        match self.cell(column) {
            Cell::Null => Ok(None),
            Cell::Time(t) => Ok(Some(*t)),
            Cell::Text(text) => DateTime::parse_from_rfc3339(text)
                .map(|t| Some(t.with_timezone(&Utc)))
                .map_err(|_| self.unexpected(column, "an RFC 3339 timestamp")),
            _ => Err(self.unexpected(column, "a timestamp")),
        }
    }

    pub fn time(&self, column: usize) -> Result<DateTime<Utc>, LedgerError> {
        self.optional_time(column)?
            .ok_or_else(|| self.unexpected(column, "a timestamp"))
    }
}

// ---- runs ----------------------------------------------------------------

/// The columns a [`super::RunRecord`] is read from, in order.
macro_rules! run_columns {
    () => {
        "id, pipeline, CAST(day AS TEXT), trigger, source, status, attempt, rows_written, \
         source_rows, skipped_rows, started_at, finished_at, error, token_filter, gate, gate_mark"
    };
}

pub(crate) const START_RUN: Statement = Statement {
    context: "recording the run's start",
    sql: "INSERT INTO ethpipe.runs (pipeline, day, trigger, source, status, attempt, started_at, token_filter)
          VALUES ($1, $2, $3, $4, 'running',
                  1 + (SELECT count(*) FROM ethpipe.runs
                       WHERE pipeline = $1 AND day IS NOT DISTINCT FROM $2),
                  $5, $6)
          RETURNING id",
};

pub(crate) const RECORD_PROGRESS: Statement = Statement {
    context: "recording the run's progress",
    sql: "UPDATE ethpipe.runs SET rows_written = $2 WHERE id = $1 AND status = 'running'",
};

/// Only a run still `running`: a lost COMMIT acknowledgement must not turn a
/// real success into a failure.
pub(crate) const FAIL_RUN: Statement = Statement {
    context: "recording the run's failure",
    sql: "UPDATE ethpipe.runs SET status = 'failed', error = $2, rows_written = $3,
                 source_rows = $4, finished_at = $5
          WHERE id = $1 AND status = 'running'",
};

/// Runs inside the day's own transaction, so success and data commit together.
pub(crate) const RECORD_SUCCESS: Statement = Statement {
    context: "recording the run's success",
    sql: "UPDATE ethpipe.runs SET status = 'success', rows_written = $2, source_rows = $3,
                 skipped_rows = $4, finished_at = $5, error = NULL
          WHERE id = $1 AND status = 'running'",
};

/// Which completeness gate the run's rows passed, before they commit.
pub(crate) const RECORD_GATE: Statement = Statement {
    context: "recording the run's completeness gate",
    sql: "UPDATE ethpipe.runs SET gate = $2, gate_mark = $3 WHERE id = $1",
};

pub(crate) const FAIL_COMMITTED_RUN: Statement = Statement {
    context: "recording the run's failure",
    sql: "UPDATE ethpipe.runs SET status = 'failed', error = $2, finished_at = $3 WHERE id = $1",
};

pub(crate) const ABANDON_STALE_RUNS: Statement = Statement {
    context: "closing abandoned runs",
    sql: "UPDATE ethpipe.runs SET status = 'failed', finished_at = $3,
                 error = 'abandoned: the process running it stopped before finishing; nothing of it was committed'
          WHERE pipeline = $1 AND day IS NOT DISTINCT FROM $2 AND status = 'running'",
};

pub(crate) const RECORD_STEP: Statement = Statement {
    context: "recording a run step",
    sql: "INSERT INTO ethpipe.run_steps (run_id, position, name, status, rows, started_at, finished_at, error)
          VALUES ($1, (SELECT coalesce(max(position), 0) + 1 FROM ethpipe.run_steps WHERE run_id = $1),
                  $2, $3, $4, $5, $6, $7)",
};

pub(crate) const LOG: Statement = Statement {
    context: "writing a run log line",
    sql: "INSERT INTO ethpipe.run_logs (run_id, at, level, message) VALUES ($1, $2, $3, $4)",
};

pub(crate) const LATEST_RUNS: Statement = Statement {
    context: "reading runs",
    sql: concat!(
        "SELECT ",
        run_columns!(),
        " FROM ethpipe.runs r
          WHERE pipeline = $1 AND day BETWEEN $2 AND $3
            AND id = (SELECT max(id) FROM ethpipe.runs s
                      WHERE s.pipeline = r.pipeline AND s.day = r.day)
          ORDER BY day"
    ),
};

/// Each day's distinct successful filters; the caller decides which days
/// they cover (`ledger::shared::covered_days`).
pub(crate) const SUCCEEDED_DAYS: Statement = Statement {
    context: "reading succeeded days",
    sql: "SELECT DISTINCT CAST(day AS TEXT), token_filter FROM ethpipe.runs
          WHERE pipeline = $1 AND day BETWEEN $2 AND $3 AND status = 'success'
            AND (CAST($4 AS TEXT) IS NULL OR trigger = $4)
          ORDER BY 1",
};

/// The latest successful run of each day.
pub(crate) const DAYS_LOADED: Statement = Statement {
    context: "reading loaded days",
    sql: "SELECT CAST(day AS TEXT), rows_written, token_filter FROM ethpipe.runs r
          WHERE pipeline = $1 AND status = 'success' AND day IS NOT NULL
            AND id = (SELECT max(id) FROM ethpipe.runs s
                      WHERE s.pipeline = r.pipeline AND s.day = r.day AND s.status = 'success')
          ORDER BY day",
};

/// A prefix is compared with `substr`, not `LIKE`, so no character in it is a wildcard.
pub(crate) const RUNS: Statement = Statement {
    context: "reading runs",
    sql: concat!(
        "SELECT ",
        run_columns!(),
        " FROM ethpipe.runs
          WHERE (CAST($1 AS TEXT) IS NULL OR pipeline = $1)
            AND (CAST($2 AS TEXT) IS NULL OR status = $2)
            AND (CAST($3 AS TEXT) IS NULL OR trigger = $3)
            AND (CAST($4 AS TEXT) IS NULL OR substr(trigger, 1, length(CAST($4 AS TEXT))) = $4)
            AND (CAST($5 AS BIGINT) IS NULL OR id < $5)
          ORDER BY id DESC LIMIT $6"
    ),
};

pub(crate) const RUN: Statement = Statement {
    context: "reading a run",
    sql: concat!(
        "SELECT ",
        run_columns!(),
        " FROM ethpipe.runs WHERE id = $1"
    ),
};

pub(crate) const STEPS: Statement = Statement {
    context: "reading a run's steps",
    sql: "SELECT position, name, status, rows, started_at, finished_at, error
          FROM ethpipe.run_steps WHERE run_id = $1 ORDER BY position",
};

pub(crate) const LOG_LINES: Statement = Statement {
    context: "reading a run's log",
    sql: "SELECT id, at, level, message FROM ethpipe.run_logs
          WHERE run_id = $1 AND id > $2 ORDER BY id LIMIT $3",
};

pub(crate) const RUN_COUNTS: Statement = Statement {
    context: "counting runs",
    sql: "SELECT pipeline, status, count(*), CAST(coalesce(sum(rows_written), 0) AS BIGINT)
          FROM ethpipe.runs GROUP BY pipeline, status ORDER BY pipeline, status",
};

pub(crate) const FINISHED_RUN_TIMES: Statement = Statement {
    context: "reading run durations",
    sql: "SELECT pipeline, status, started_at, finished_at FROM ethpipe.runs
          WHERE finished_at IS NOT NULL",
};

// ---- variables -------------------------------------------------------------

pub(crate) const VARIABLE: Statement = Statement {
    context: "reading a pipeline variable",
    sql: "SELECT value FROM ethpipe.variables WHERE pipeline = $1 AND name = $2",
};

pub(crate) const SET_VARIABLE: Statement = Statement {
    context: "setting a pipeline variable",
    sql: "INSERT INTO ethpipe.variables (pipeline, name, value, updated_at) VALUES ($1, $2, $3, $4)
          ON CONFLICT (pipeline, name) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at",
};

// ---- triggers --------------------------------------------------------------

/// The stored toggle wins unless the file's own value changed since the last
/// sync. A trigger owes days only from when it became active: a new one, or
/// one the file turns on, starts now.
pub(crate) const SYNC_TRIGGER: Statement = Statement {
    context: "saving a trigger",
    sql: "INSERT INTO ethpipe.triggers (name, pipeline, schedule, active, config_active, day_offset,
                                        max_attempts, backoff_seconds, timeout_seconds, catchup_days,
                                        active_since, updated_at)
          VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8, $9, $10, $10)
          ON CONFLICT (name) DO UPDATE SET
              pipeline = EXCLUDED.pipeline, schedule = EXCLUDED.schedule,
              active = CASE WHEN ethpipe.triggers.config_active = EXCLUDED.config_active
                            THEN ethpipe.triggers.active ELSE EXCLUDED.active END,
              active_since = CASE WHEN ethpipe.triggers.config_active <> EXCLUDED.config_active
                                       AND EXCLUDED.active AND NOT ethpipe.triggers.active
                                  THEN EXCLUDED.updated_at ELSE ethpipe.triggers.active_since END,
              config_active = EXCLUDED.config_active, day_offset = EXCLUDED.day_offset,
              max_attempts = EXCLUDED.max_attempts, backoff_seconds = EXCLUDED.backoff_seconds,
              timeout_seconds = EXCLUDED.timeout_seconds, catchup_days = EXCLUDED.catchup_days,
              updated_at = EXCLUDED.updated_at",
};

pub(crate) const TRIGGERS: Statement = Statement {
    context: "reading triggers",
    sql: "SELECT name, pipeline, schedule, active, day_offset, max_attempts, backoff_seconds,
                 timeout_seconds, catchup_days, active_since
          FROM ethpipe.triggers ORDER BY name",
};

/// Turning a trigger on starts it from now: the time it was off is not downtime to catch up.
pub(crate) const SET_TRIGGER_ACTIVE: Statement = Statement {
    context: "toggling a trigger",
    sql: "UPDATE ethpipe.triggers SET active = $2, updated_at = $3,
                 active_since = CASE WHEN $2 AND NOT active THEN $3 ELSE active_since END
          WHERE name = $1",
};

// ---- the scheduler's reconciliation ----------------------------------------

/// Per day of a pipeline with any run: whether one succeeded, the failures
/// since `$4` (the attempt window), when the last failure ended, and whether
/// a run is still `running`.
pub(crate) const DAY_ATTEMPTS: Statement = Statement {
    context: "reading the attempts of days",
    sql: "SELECT CAST(day AS TEXT),
                 max(CASE WHEN status = 'success' THEN 1 ELSE 0 END),
                 sum(CASE WHEN status = 'failed' AND started_at >= $4 THEN 1 ELSE 0 END),
                 max(CASE WHEN status = 'failed' THEN finished_at END),
                 max(CASE WHEN status = 'running' THEN 1 ELSE 0 END)
          FROM ethpipe.runs
          WHERE pipeline = $1 AND day BETWEEN $2 AND $3
          GROUP BY day ORDER BY day",
};

// ---- backfill jobs ---------------------------------------------------------

pub(crate) const CREATE_BACKFILL_JOB: Statement = Statement {
    context: "recording a backfill job",
    sql: "INSERT INTO ethpipe.backfill_jobs (pipeline, from_day, to_day, parallel, forced, state, started_at)
          VALUES ($1, $2, $3, $4, $5, 'running', $6)
          RETURNING id",
};

pub(crate) const FINISH_BACKFILL_JOB: Statement = Statement {
    context: "recording a backfill job's end",
    sql: "UPDATE ethpipe.backfill_jobs SET state = $2, error = $3, finished_at = $4
          WHERE id = $1 AND state = 'running'",
};

/// A job's progress is its runs (trigger `backfill:<id>`): the days they
/// loaded and the rows, the days whose latest attempt failed, and (unless
/// forced) the days another run had already loaded.
pub(crate) const BACKFILL_JOBS: Statement = Statement {
    context: "reading backfill jobs",
    sql: "SELECT j.id, j.pipeline, CAST(j.from_day AS TEXT), CAST(j.to_day AS TEXT), j.parallel,
                 j.forced, j.state, j.started_at, j.finished_at, j.error,
                 (SELECT count(DISTINCT r.day) FROM ethpipe.runs r
                   WHERE r.trigger = 'backfill:' || CAST(j.id AS TEXT) AND r.status = 'success'),
                 (SELECT CAST(coalesce(sum(r.rows_written), 0) AS BIGINT) FROM ethpipe.runs r
                   WHERE r.trigger = 'backfill:' || CAST(j.id AS TEXT) AND r.status = 'success'),
                 (SELECT count(*) FROM ethpipe.runs r
                   WHERE r.trigger = 'backfill:' || CAST(j.id AS TEXT) AND r.status = 'failed'
                     AND r.id = (SELECT max(s.id) FROM ethpipe.runs s
                                 WHERE s.trigger = r.trigger AND s.day = r.day)),
                 CASE WHEN j.forced THEN 0 ELSE
                 (SELECT count(DISTINCT r.day) FROM ethpipe.runs r
                   WHERE r.pipeline = j.pipeline AND r.day BETWEEN j.from_day AND j.to_day
                     AND r.status = 'success' AND r.trigger <> 'backfill:' || CAST(j.id AS TEXT)
                     AND NOT EXISTS (SELECT 1 FROM ethpipe.runs s
                                     WHERE s.trigger = 'backfill:' || CAST(j.id AS TEXT)
                                       AND s.day = r.day AND s.status = 'success')) END
          FROM ethpipe.backfill_jobs j
          WHERE ($1 = FALSE OR j.state = 'running')
          ORDER BY j.id DESC LIMIT $2",
};
