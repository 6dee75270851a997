//! Reads of the pipeline's own state: runs, their steps and log lines,
//! triggers, and a per-pipeline summary (schema `ethpipe`; SQLite `ethpipe_*`).

use chrono::{DateTime, Utc};
use ethpipe_core::Pipeline;
use rusqlite::OptionalExtension;
use serde::Serialize;

use super::{sqlite_timestamp, timestamp, QueryError, Reader};

/// A run as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Run {
    pub id: i64,
    pub pipeline: String,
    /// `None` for a tokens full load.
    pub day: Option<String>,
    pub trigger: String,
    pub source: String,
    pub status: String,
    pub attempt: i32,
    /// Rows staged so far while running; rows committed once it succeeded.
    pub rows_written: Option<i64>,
    pub source_rows: Option<i64>,
    pub skipped_rows: Option<i64>,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// Until now while still running.
    pub duration_seconds: Option<f64>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Step {
    pub position: i32,
    pub name: String,
    pub status: String,
    pub rows: Option<i64>,
    pub started_at: String,
    pub finished_at: String,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LogLine {
    pub id: i64,
    pub at: String,
    pub level: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Trigger {
    pub name: String,
    pub pipeline: String,
    pub schedule: String,
    pub active: bool,
    pub day_offset: i32,
    pub max_attempts: i32,
    pub last_slot: Option<String>,
    /// The next slot, when active.
    pub next_run: Option<String>,
}

/// One pipeline at a glance.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PipelineSummary {
    pub pipeline: String,
    /// Days whose load succeeded (latest successful run per day).
    pub days_loaded: i64,
    pub first_day: Option<String>,
    pub last_day: Option<String>,
    /// Days between the first and last loaded day that are not loaded.
    pub gap_days: i64,
    /// Rows written by the latest successful run of each loaded day.
    pub rows_loaded: i64,
    pub running: i64,
    pub last_run: Option<Run>,
    /// Tokens only: whether the first full load has committed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub full_load_done: Option<bool>,
    pub triggers: Vec<Trigger>,
}

/// Which runs to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub pipeline: Option<Pipeline>,
    pub status: Option<&'static str>,
    pub trigger: Option<String>,
    /// Runs whose trigger starts with this (e.g. `backfill`).
    pub trigger_prefix: Option<String>,
    /// Keyset: only runs with a smaller id.
    pub before: Option<i64>,
    pub limit: u32,
}

fn duration(started: DateTime<Utc>, finished: Option<DateTime<Utc>>) -> f64 {
    let end = finished.unwrap_or_else(Utc::now);
    ((end - started).num_milliseconds().max(0) as f64) / 1000.0
}

const PG_RUN_COLUMNS: &str = "id, pipeline, day::text, trigger, source, status, attempt, rows_written, source_rows, skipped_rows, started_at, finished_at, error";

fn pg_run(row: &tokio_postgres::Row) -> Run {
    let started: DateTime<Utc> = row.get(10);
    let finished: Option<DateTime<Utc>> = row.get(11);
    Run {
        id: row.get(0),
        pipeline: row.get(1),
        day: row.get(2),
        trigger: row.get(3),
        source: row.get(4),
        status: row.get(5),
        attempt: row.get(6),
        rows_written: row.get(7),
        source_rows: row.get(8),
        skipped_rows: row.get(9),
        started_at: timestamp(started),
        finished_at: finished.map(timestamp),
        duration_seconds: Some(duration(started, finished)),
        error: row.get(12),
    }
}

const LITE_RUN_COLUMNS: &str = "id, pipeline, day, trigger, source, status, attempt, rows_written, source_rows, skipped_rows, started_at, finished_at, error";

fn lite_run(row: &rusqlite::Row<'_>) -> rusqlite::Result<Run> {
    let started = sqlite_timestamp(row.get(10)?).unwrap_or_default();
    let finished = sqlite_timestamp(row.get(11)?);
    Ok(Run {
        id: row.get(0)?,
        pipeline: row.get(1)?,
        day: row.get(2)?,
        trigger: row.get(3)?,
        source: row.get(4)?,
        status: row.get(5)?,
        attempt: row.get(6)?,
        rows_written: row.get(7)?,
        source_rows: row.get(8)?,
        skipped_rows: row.get(9)?,
        started_at: timestamp(started),
        finished_at: finished.map(timestamp),
        duration_seconds: Some(duration(started, finished)),
        error: row.get(12)?,
    })
}

pub async fn runs(reader: &Reader, filter: &RunFilter) -> Result<Vec<Run>, QueryError> {
    let pipeline = filter.pipeline.map(|p| p.name().to_string());
    let prefix = filter.trigger_prefix.as_deref().map(super::prefix_pattern);
    match reader {
        Reader::Postgres(pg) => {
            let sql = format!(
                "SELECT {PG_RUN_COLUMNS} FROM ethpipe.runs
                 WHERE ($1::text IS NULL OR pipeline = $1) AND ($2::text IS NULL OR status = $2)
                   AND ($3::text IS NULL OR trigger = $3) AND ($4::text IS NULL OR trigger LIKE $4)
                   AND ($5::bigint IS NULL OR id < $5)
                 ORDER BY id DESC LIMIT $6"
            );
            let rows = pg
                .query(
                    &sql,
                    &[
                        &pipeline,
                        &filter.status,
                        &filter.trigger,
                        &prefix,
                        &filter.before,
                        &i64::from(filter.limit),
                    ],
                )
                .await?;
            Ok(rows.iter().map(pg_run).collect())
        }
        Reader::Sqlite(lite) => {
            let (status, trigger, before, limit) = (
                filter.status,
                filter.trigger.clone(),
                filter.before,
                filter.limit,
            );
            lite.read(move |c| {
                let sql = format!(
                    "SELECT {LITE_RUN_COLUMNS} FROM ethpipe_runs
                     WHERE (?1 IS NULL OR pipeline = ?1) AND (?2 IS NULL OR status = ?2)
                       AND (?3 IS NULL OR trigger = ?3) AND (?4 IS NULL OR trigger LIKE ?4 ESCAPE '\\')
                       AND (?5 IS NULL OR id < ?5)
                     ORDER BY id DESC LIMIT ?6"
                );
                let mut statement = c.prepare(&sql)?;
                let rows = statement.query_map(
                    rusqlite::params![pipeline, status, trigger, prefix, before, limit],
                    lite_run,
                )?;
                rows.collect()
            })
            .await
        }
    }
}

pub async fn run(reader: &Reader, id: i64) -> Result<Option<(Run, Vec<Step>)>, QueryError> {
    match reader {
        Reader::Postgres(pg) => {
            let sql = format!("SELECT {PG_RUN_COLUMNS} FROM ethpipe.runs WHERE id = $1");
            let Some(run) = pg.query(&sql, &[&id]).await?.first().map(pg_run) else {
                return Ok(None);
            };
            let steps = pg
                .query(
                    "SELECT position, name, status, rows, started_at, finished_at, error
                     FROM ethpipe.run_steps WHERE run_id = $1 ORDER BY position",
                    &[&id],
                )
                .await?
                .iter()
                .map(|r| Step {
                    position: r.get(0),
                    name: r.get(1),
                    status: r.get(2),
                    rows: r.get(3),
                    started_at: timestamp(r.get(4)),
                    finished_at: timestamp(r.get(5)),
                    error: r.get(6),
                })
                .collect();
            Ok(Some((run, steps)))
        }
        Reader::Sqlite(lite) => {
            lite.read(move |c| {
                let sql = format!("SELECT {LITE_RUN_COLUMNS} FROM ethpipe_runs WHERE id = ?1");
                let Some(run) = c.query_row(&sql, [id], lite_run).optional()? else {
                    return Ok(None);
                };
                let mut statement = c.prepare(
                    "SELECT position, name, status, rows, started_at, finished_at, error
                     FROM ethpipe_run_steps WHERE run_id = ?1 ORDER BY position",
                )?;
                let steps = statement
                    .query_map([id], |r| {
                        Ok(Step {
                            position: r.get(0)?,
                            name: r.get(1)?,
                            status: r.get(2)?,
                            rows: r.get(3)?,
                            started_at: sqlite_timestamp(r.get(4)?)
                                .map(timestamp)
                                .unwrap_or_default(),
                            finished_at: sqlite_timestamp(r.get(5)?)
                                .map(timestamp)
                                .unwrap_or_default(),
                            error: r.get(6)?,
                        })
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(Some((run, steps)))
            })
            .await
        }
    }
}

/// Log lines of a run after the line `after` (0: from the start), oldest first.
pub async fn logs(
    reader: &Reader,
    run: i64,
    after: i64,
    limit: u32,
) -> Result<Vec<LogLine>, QueryError> {
    match reader {
        Reader::Postgres(pg) => Ok(pg
            .query(
                "SELECT id, at, level, message FROM ethpipe.run_logs
                 WHERE run_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                &[&run, &after, &i64::from(limit)],
            )
            .await?
            .iter()
            .map(|r| LogLine {
                id: r.get(0),
                at: timestamp(r.get(1)),
                level: r.get(2),
                message: r.get(3),
            })
            .collect()),
        Reader::Sqlite(lite) => {
            lite.read(move |c| {
                let mut statement = c.prepare(
                    "SELECT id, at, level, message FROM ethpipe_run_logs
                     WHERE run_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
                )?;
                let rows = statement.query_map(rusqlite::params![run, after, limit], |r| {
                    Ok(LogLine {
                        id: r.get(0)?,
                        at: sqlite_timestamp(r.get(1)?)
                            .map(timestamp)
                            .unwrap_or_default(),
                        level: r.get(2)?,
                        message: r.get(3)?,
                    })
                })?;
                rows.collect()
            })
            .await
        }
    }
}

fn next_run(schedule: &str, active: bool) -> Option<String> {
    if !active {
        return None;
    }
    let cron = ethpipe_orch::scheduler::parse_schedule(schedule).ok()?;
    ethpipe_orch::scheduler::next_slot(&cron, Utc::now()).map(timestamp)
}

/// name, pipeline, schedule, active, day_offset, max_attempts, last_slot.
type TriggerColumns = (
    String,
    String,
    String,
    bool,
    i32,
    i32,
    Option<DateTime<Utc>>,
);

pub async fn triggers(reader: &Reader) -> Result<Vec<Trigger>, QueryError> {
    let raw: Vec<TriggerColumns> = match reader {
        Reader::Postgres(pg) => pg
            .query(
                "SELECT name, pipeline, schedule, active, day_offset, max_attempts, last_slot
                 FROM ethpipe.triggers ORDER BY name",
                &[],
            )
            .await?
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    r.get(1),
                    r.get(2),
                    r.get(3),
                    r.get(4),
                    r.get(5),
                    r.get(6),
                )
            })
            .collect(),
        Reader::Sqlite(lite) => {
            lite.read(|c| {
                let mut statement = c.prepare(
                    "SELECT name, pipeline, schedule, active, day_offset, max_attempts, last_slot
                     FROM ethpipe_triggers ORDER BY name",
                )?;
                let rows = statement.query_map([], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        sqlite_timestamp(r.get(6)?),
                    ))
                })?;
                rows.collect()
            })
            .await?
        }
    };
    Ok(raw
        .into_iter()
        .map(
            |(name, pipeline, schedule, active, day_offset, max_attempts, last_slot)| Trigger {
                next_run: next_run(&schedule, active),
                name,
                pipeline,
                schedule,
                active,
                day_offset,
                max_attempts,
                last_slot: last_slot.map(timestamp),
            },
        )
        .collect())
}

/// (days loaded, first day, last day, rows) from the latest successful run of each day.
type Loaded = (i64, Option<String>, Option<String>, i64);

pub async fn pipeline_summary(
    reader: &Reader,
    pipeline: Pipeline,
    triggers: &[Trigger],
) -> Result<PipelineSummary, QueryError> {
    let name = pipeline.name().to_string();
    let (loaded, running, full_load_done): (Loaded, i64, Option<String>) = match reader {
        Reader::Postgres(pg) => {
            let loaded = pg
                .query(
                    "SELECT count(*), min(day)::text, max(day)::text, coalesce(sum(rows_written), 0)::bigint
                     FROM (SELECT DISTINCT ON (day) day, rows_written FROM ethpipe.runs
                           WHERE pipeline = $1 AND status = 'success' AND day IS NOT NULL
                           ORDER BY day, id DESC) d",
                    &[&name],
                )
                .await?;
            let loaded = loaded
                .first()
                .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
                .unwrap_or((0, None, None, 0));
            let running = pg
                .query(
                    "SELECT count(*) FROM ethpipe.runs WHERE pipeline = $1 AND status = 'running'",
                    &[&name],
                )
                .await?
                .first()
                .map_or(0, |r| r.get(0));
            let flag = pg
                .query(
                    "SELECT value FROM ethpipe.variables WHERE pipeline = $1 AND name = $2",
                    &[&name, &ethpipe_orch::runner::TOKENS_FULL_LOAD_DONE],
                )
                .await?
                .first()
                .map(|r| r.get(0));
            (loaded, running, flag)
        }
        Reader::Sqlite(lite) => {
            let name = name.clone();
            lite.read(move |c| {
                let loaded = c.query_row(
                    "SELECT count(*), min(day), max(day), coalesce(sum(rows_written), 0)
                     FROM ethpipe_runs r
                     WHERE pipeline = ?1 AND status = 'success' AND day IS NOT NULL
                       AND id = (SELECT max(id) FROM ethpipe_runs s
                                 WHERE s.pipeline = r.pipeline AND s.day = r.day AND s.status = 'success')",
                    [&name],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )?;
                let running = c.query_row(
                    "SELECT count(*) FROM ethpipe_runs WHERE pipeline = ?1 AND status = 'running'",
                    [&name],
                    |r| r.get(0),
                )?;
                let flag = c
                    .query_row(
                        "SELECT value FROM ethpipe_variables WHERE pipeline = ?1 AND name = ?2",
                        [name.as_str(), ethpipe_orch::runner::TOKENS_FULL_LOAD_DONE],
                        |r| r.get(0),
                    )
                    .optional()?;
                Ok((loaded, running, flag))
            })
            .await?
        }
    };
    let last_run = runs(
        reader,
        &RunFilter {
            pipeline: Some(pipeline),
            limit: 1,
            ..RunFilter::default()
        },
    )
    .await?
    .into_iter()
    .next();
    let (days_loaded, first_day, last_day, rows_loaded) = loaded;
    let span = match (&first_day, &last_day) {
        (Some(a), Some(b)) => match (
            a.parse::<ethpipe_core::Day>(),
            b.parse::<ethpipe_core::Day>(),
        ) {
            (Ok(a), Ok(b)) => (b.naive() - a.naive()).num_days() + 1,
            _ => days_loaded,
        },
        _ => 0,
    };
    Ok(PipelineSummary {
        pipeline: name.clone(),
        days_loaded,
        first_day,
        last_day,
        gap_days: (span - days_loaded).max(0),
        rows_loaded,
        running,
        last_run,
        full_load_done: pipeline
            .full_load_first()
            .then(|| full_load_done.as_deref() == Some("true")),
        triggers: triggers
            .iter()
            .filter(|t| t.pipeline == name)
            .cloned()
            .collect(),
    })
}
