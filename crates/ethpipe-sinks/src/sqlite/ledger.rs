//! The run ledger in SQLite (`ethpipe_runs`, `ethpipe_run_logs`, `ethpipe_variables`).

use chrono::{DateTime, Utc};
use ethpipe_core::{Day, Pipeline, Scope};
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::ledger::{scope_day, DayLoaded, NewRun, RunId, RunRecord, RunStatus};
use crate::{Commit, SinkError, StepReport, TriggerDef, TriggerState};

pub struct SqliteLedger<'a> {
    connection: &'a Connection,
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn fail(context: &'static str) -> impl Fn(rusqlite::Error) -> SinkError {
    move |e| SinkError::db(context, e)
}

impl<'a> SqliteLedger<'a> {
    pub fn new(connection: &'a Connection) -> Self {
        SqliteLedger { connection }
    }

    pub fn start_run(&self, run: &NewRun) -> Result<RunId, SinkError> {
        let day = scope_day(run.scope).map(|d| d.to_string());
        self.connection
            .query_row(
                "INSERT INTO ethpipe_runs (pipeline, day, trigger, source, status, attempt, started_at)
                 VALUES (?1, ?2, ?3, ?4, 'running',
                         1 + (SELECT count(*) FROM ethpipe_runs WHERE pipeline = ?1 AND day IS ?2), ?5)
                 RETURNING id",
                params![run.pipeline.name(), day, run.trigger, run.source, now()],
                |r| r.get(0),
            )
            .map(RunId)
            .map_err(fail("recording the run's start"))
    }

    pub fn record_progress(&self, run: RunId, rows_so_far: u64) -> Result<(), SinkError> {
        self.connection
            .execute(
                "UPDATE ethpipe_runs SET rows_written = ?2 WHERE id = ?1 AND status = 'running'",
                params![run.0, rows_so_far as i64],
            )
            .map_err(fail("recording the run's progress"))?;
        Ok(())
    }

    pub fn fail_run(
        &self,
        run: RunId,
        error: &str,
        rows_written: u64,
        source_rows: Option<u64>,
    ) -> Result<(), SinkError> {
        self.connection
            .execute(
                "UPDATE ethpipe_runs SET status = 'failed', error = ?2, rows_written = ?3, source_rows = ?4,
                        finished_at = ?5
                 WHERE id = ?1 AND status = 'running'",
                params![run.0, error, rows_written as i64, source_rows.map(|n| n as i64), now()],
            )
            .map_err(fail("recording the run's failure"))?;
        Ok(())
    }

    pub fn record_steps(&self, run: RunId, steps: &[StepReport]) -> Result<(), SinkError> {
        let micros = |t: &DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        for step in steps {
            self.connection
                .execute(
                    "INSERT INTO ethpipe_run_steps (run_id, position, name, status, rows, started_at, finished_at, error)
                     VALUES (?1, (SELECT coalesce(max(position), 0) + 1 FROM ethpipe_run_steps WHERE run_id = ?1),
                             ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        run.0,
                        step.name,
                        if step.error.is_some() { "failed" } else { "success" },
                        step.rows as i64,
                        micros(&step.started_at),
                        micros(&step.finished_at),
                        step.error
                    ],
                )
                .map_err(fail("recording a run step"))?;
        }
        Ok(())
    }

    pub fn fail_committed_run(&self, run: RunId, error: &str) -> Result<(), SinkError> {
        self.connection
            .execute(
                "UPDATE ethpipe_runs SET status = 'failed', error = ?2, finished_at = ?3 WHERE id = ?1",
                params![run.0, error, now()],
            )
            .map_err(fail("recording the run's failure"))?;
        Ok(())
    }

    pub fn abandon_stale_runs(&self, pipeline: Pipeline, scope: Scope) -> Result<u64, SinkError> {
        let day = scope_day(scope).map(|d| d.to_string());
        self.connection
            .execute(
                "UPDATE ethpipe_runs SET status = 'failed', finished_at = ?3,
                        error = 'abandoned: the process running it stopped before finishing; nothing of it was committed'
                 WHERE pipeline = ?1 AND day IS ?2 AND status = 'running'",
                params![pipeline.name(), day, now()],
            )
            .map(|n| n as u64)
            .map_err(fail("closing abandoned runs"))
    }

    pub fn latest_runs(
        &self,
        pipeline: Pipeline,
        from: Day,
        to: Day,
    ) -> Result<Vec<RunRecord>, SinkError> {
        let mut statement = self
            .connection
            .prepare(
                "SELECT id, pipeline, day, trigger, source, status, attempt, rows_written, source_rows,
                        skipped_rows, started_at, finished_at, error
                 FROM ethpipe_runs r
                 WHERE pipeline = ?1 AND day BETWEEN ?2 AND ?3
                   AND id = (SELECT max(id) FROM ethpipe_runs s WHERE s.pipeline = r.pipeline AND s.day = r.day)
                 ORDER BY day",
            )
            .map_err(fail("reading runs"))?;
        let rows = statement
            .query_map(
                params![pipeline.name(), from.to_string(), to.to_string()],
                run_record,
            )
            .map_err(fail("reading runs"))?;
        rows.collect::<Result<_, _>>().map_err(fail("reading runs"))
    }

    pub fn succeeded_days(
        &self,
        pipeline: Pipeline,
        from: Day,
        to: Day,
        trigger: Option<&str>,
    ) -> Result<Vec<Day>, SinkError> {
        let mut statement = self
            .connection
            .prepare(
                "SELECT DISTINCT day FROM ethpipe_runs
                 WHERE pipeline = ?1 AND day BETWEEN ?2 AND ?3 AND status = 'success'
                   AND (?4 IS NULL OR trigger = ?4)
                 ORDER BY day",
            )
            .map_err(fail("reading succeeded days"))?;
        let rows = statement
            .query_map(
                params![pipeline.name(), from.to_string(), to.to_string(), trigger],
                |r| r.get::<_, String>(0),
            )
            .map_err(fail("reading succeeded days"))?;
        let mut days = Vec::new();
        for row in rows {
            let text = row.map_err(fail("reading succeeded days"))?;
            if let Ok(day) = text.parse::<Day>() {
                days.push(day);
            }
        }
        Ok(days)
    }

    pub fn sync_triggers(&self, defs: &[TriggerDef]) -> Result<(), SinkError> {
        for d in defs {
            self.connection
                .execute(
                    "INSERT INTO ethpipe_triggers (name, pipeline, schedule, active, config_active, day_offset,
                                                   max_attempts, backoff_seconds, timeout_seconds, catchup_days, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                     ON CONFLICT (name) DO UPDATE SET
                         pipeline = excluded.pipeline, schedule = excluded.schedule,
                         active = CASE WHEN ethpipe_triggers.config_active = excluded.config_active
                                       THEN ethpipe_triggers.active ELSE excluded.active END,
                         config_active = excluded.config_active, day_offset = excluded.day_offset,
                         max_attempts = excluded.max_attempts, backoff_seconds = excluded.backoff_seconds,
                         timeout_seconds = excluded.timeout_seconds, catchup_days = excluded.catchup_days,
                         updated_at = excluded.updated_at",
                    params![
                        d.name, d.pipeline, d.schedule, d.active, d.day_offset, d.max_attempts,
                        d.backoff_seconds, d.timeout_seconds, d.catchup_days, now()
                    ],
                )
                .map_err(fail("saving a trigger"))?;
        }
        Ok(())
    }

    pub fn triggers(&self) -> Result<Vec<TriggerState>, SinkError> {
        let mut statement = self
            .connection
            .prepare(
                "SELECT name, pipeline, schedule, active, day_offset, max_attempts, backoff_seconds,
                        timeout_seconds, catchup_days, last_slot
                 FROM ethpipe_triggers ORDER BY name",
            )
            .map_err(fail("reading triggers"))?;
        let rows = statement
            .query_map([], |r| {
                Ok(TriggerState {
                    def: TriggerDef {
                        name: r.get(0)?,
                        pipeline: r.get(1)?,
                        schedule: r.get(2)?,
                        active: r.get(3)?,
                        day_offset: r.get(4)?,
                        max_attempts: r.get(5)?,
                        backoff_seconds: r.get(6)?,
                        timeout_seconds: r.get(7)?,
                        catchup_days: r.get(8)?,
                    },
                    last_slot: parse_time(r.get(9)?),
                })
            })
            .map_err(fail("reading triggers"))?;
        rows.collect::<Result<_, _>>()
            .map_err(fail("reading triggers"))
    }

    pub fn set_trigger_active(&self, name: &str, active: bool) -> Result<bool, SinkError> {
        let updated = self
            .connection
            .execute(
                "UPDATE ethpipe_triggers SET active = ?2, updated_at = ?3,
                        last_slot = CASE WHEN ?2 AND NOT active THEN ?3 ELSE last_slot END
                 WHERE name = ?1",
                params![name, active, now()],
            )
            .map_err(fail("toggling a trigger"))?;
        Ok(updated == 1)
    }

    pub fn set_last_slot(&self, name: &str, slot: DateTime<Utc>) -> Result<(), SinkError> {
        let slot = slot.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        self.connection
            .execute(
                "UPDATE ethpipe_triggers SET last_slot = max(coalesce(last_slot, ''), ?2) WHERE name = ?1",
                params![name, slot],
            )
            .map_err(fail("recording a trigger's slot"))?;
        Ok(())
    }

    pub fn claim_fire(&self, name: &str, slot: DateTime<Utc>, day: Day) -> Result<bool, SinkError> {
        let inserted = self
            .connection
            .execute(
                "INSERT INTO ethpipe_trigger_fires (trigger, slot, day, fired_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT DO NOTHING",
                params![name, slot.to_rfc3339_opts(chrono::SecondsFormat::Micros, true), day.to_string(), now()],
            )
            .map_err(fail("recording a trigger firing"))?;
        Ok(inserted == 1)
    }

    pub fn log(&self, run: RunId, level: &str, message: &str) -> Result<(), SinkError> {
        self.connection
            .execute(
                "INSERT INTO ethpipe_run_logs (run_id, at, level, message) VALUES (?1, ?2, ?3, ?4)",
                params![run.0, now(), level, message],
            )
            .map_err(fail("writing a run log line"))?;
        Ok(())
    }

    pub fn variable(&self, pipeline: Pipeline, name: &str) -> Result<Option<String>, SinkError> {
        self.connection
            .query_row(
                "SELECT value FROM ethpipe_variables WHERE pipeline = ?1 AND name = ?2",
                params![pipeline.name(), name],
                |r| r.get(0),
            )
            .optional()
            .map_err(fail("reading a pipeline variable"))
    }

    pub fn recent_runs(&self, pipeline: Pipeline, limit: u32) -> Result<Vec<RunRecord>, SinkError> {
        let mut statement = self
            .connection
            .prepare(
                "SELECT id, pipeline, day, trigger, source, status, attempt, rows_written, source_rows,
                        skipped_rows, started_at, finished_at, error
                 FROM ethpipe_runs WHERE pipeline = ?1 ORDER BY id DESC LIMIT ?2",
            )
            .map_err(fail("reading runs"))?;
        let rows = statement
            .query_map(params![pipeline.name(), limit], run_record)
            .map_err(fail("reading runs"))?;
        rows.collect::<Result<_, _>>().map_err(fail("reading runs"))
    }

    pub fn days_loaded(&self, pipeline: Pipeline) -> Result<Vec<DayLoaded>, SinkError> {
        let mut statement = self
            .connection
            .prepare(
                "SELECT day, rows_written FROM ethpipe_runs r
                 WHERE pipeline = ?1 AND status = 'success' AND day IS NOT NULL
                   AND id = (SELECT max(id) FROM ethpipe_runs s
                             WHERE s.pipeline = r.pipeline AND s.day = r.day AND s.status = 'success')
                 ORDER BY day",
            )
            .map_err(fail("reading loaded days"))?;
        let rows = statement
            .query_map(params![pipeline.name()], |r| {
                Ok(DayLoaded {
                    day: r.get(0)?,
                    rows: r.get::<_, Option<i64>>(1)?.unwrap_or(0),
                })
            })
            .map_err(fail("reading loaded days"))?;
        rows.collect::<Result<_, _>>()
            .map_err(fail("reading loaded days"))
    }
}

fn parse_time(text: Option<String>) -> Option<DateTime<Utc>> {
    text.and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn run_record(row: &Row<'_>) -> rusqlite::Result<RunRecord> {
    Ok(RunRecord {
        id: RunId(row.get(0)?),
        pipeline: row.get(1)?,
        day: row.get(2)?,
        trigger: row.get(3)?,
        source: row.get(4)?,
        status: RunStatus::parse(&row.get::<_, String>(5)?),
        attempt: row.get(6)?,
        rows_written: row.get(7)?,
        source_rows: row.get(8)?,
        skipped_rows: row.get(9)?,
        started_at: parse_time(row.get(10)?).unwrap_or_default(),
        finished_at: parse_time(row.get(11)?),
        error: row.get(12)?,
    })
}

pub(super) fn record_success(
    connection: &Connection,
    commit: &Commit,
    rows: u64,
) -> Result<(), SinkError> {
    let updated = connection
        .execute(
            "UPDATE ethpipe_runs SET status = 'success', rows_written = ?2, source_rows = ?3, skipped_rows = ?4,
                    finished_at = ?5, error = NULL
             WHERE id = ?1 AND status = 'running'",
            params![commit.run.0, rows as i64, commit.source_rows as i64, commit.skipped_rows as i64, now()],
        )
        .map_err(fail("recording the run's success"))?;
    if updated != 1 {
        return Err(SinkError::Rejected(format!(
            "run {} is no longer 'running' in the ledger; not committing",
            commit.run
        )));
    }
    Ok(())
}

pub(super) fn set_variable(
    connection: &Connection,
    pipeline: Pipeline,
    name: &str,
    value: &str,
) -> Result<(), SinkError> {
    connection
        .execute(
            "INSERT INTO ethpipe_variables (pipeline, name, value, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (pipeline, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            params![pipeline.name(), name, value, now()],
        )
        .map_err(fail("setting a pipeline variable"))?;
    Ok(())
}
