//! The run ledger in schema `ethpipe`: one row per run, its log lines, and
//! pipeline variables such as the tokens first-run flag.

use chrono::{DateTime, NaiveDate, Utc};
use ethpipe_core::{Day, Pipeline, Scope};
use tokio_postgres::{Client, Row};

use super::describe;
use crate::ledger::{scope_day, DayLoaded, NewRun, RunId, RunRecord, RunStatus};
use crate::{Commit, SinkError, StepReport, TriggerDef, TriggerState};

pub struct PgLedger<'a> {
    client: &'a Client,
}

fn fail(context: &str) -> impl Fn(tokio_postgres::Error) -> SinkError + '_ {
    move |e| SinkError::db(context, describe(&e))
}

impl<'a> PgLedger<'a> {
    pub fn new(client: &'a Client) -> Self {
        PgLedger { client }
    }

    pub async fn start_run(&self, run: &NewRun) -> Result<RunId, SinkError> {
        let day: Option<NaiveDate> = scope_day(run.scope).map(|d| d.naive());
        let row = self
            .client
            .query_one(
                "INSERT INTO ethpipe.runs (pipeline, day, trigger, source, status, attempt)
                 VALUES ($1, $2, $3, $4, 'running',
                         1 + (SELECT count(*) FROM ethpipe.runs
                              WHERE pipeline = $1 AND day IS NOT DISTINCT FROM $2))
                 RETURNING id",
                &[&run.pipeline.name(), &day, &run.trigger, &run.source],
            )
            .await
            .map_err(fail("recording the run's start"))?;
        Ok(RunId(row.get(0)))
    }

    pub async fn record_progress(&self, run: RunId, rows_so_far: u64) -> Result<(), SinkError> {
        self.client
            .execute(
                "UPDATE ethpipe.runs SET rows_written = $2 WHERE id = $1 AND status = 'running'",
                &[&run.0, &(rows_so_far as i64)],
            )
            .await
            .map_err(fail("recording the run's progress"))?;
        Ok(())
    }

    /// Marks a run failed unless it already committed (a lost COMMIT
    /// acknowledgement must not turn a real success into a failure).
    pub async fn fail_run(
        &self,
        run: RunId,
        error: &str,
        rows_written: u64,
        source_rows: Option<u64>,
    ) -> Result<(), SinkError> {
        self.client
            .execute(
                "UPDATE ethpipe.runs SET status = 'failed', error = $2, rows_written = $3,
                        source_rows = $4, finished_at = now()
                 WHERE id = $1 AND status = 'running'",
                &[
                    &run.0,
                    &error,
                    &(rows_written as i64),
                    &source_rows.map(|n| n as i64),
                ],
            )
            .await
            .map_err(fail("recording the run's failure"))?;
        Ok(())
    }

    pub async fn record_steps(&self, run: RunId, steps: &[StepReport]) -> Result<(), SinkError> {
        for step in steps {
            self.client
                .execute(
                    "INSERT INTO ethpipe.run_steps (run_id, position, name, status, rows, started_at, finished_at, error)
                     VALUES ($1, (SELECT coalesce(max(position), 0) + 1 FROM ethpipe.run_steps WHERE run_id = $1),
                             $2, $3, $4, $5, $6, $7)",
                    &[
                        &run.0,
                        &step.name,
                        &if step.error.is_some() { "failed" } else { "success" },
                        &(step.rows as i64),
                        &step.started_at,
                        &step.finished_at,
                        &step.error,
                    ],
                )
                .await
                .map_err(fail("recording a run step"))?;
        }
        Ok(())
    }

    pub async fn fail_committed_run(&self, run: RunId, error: &str) -> Result<(), SinkError> {
        self.client
            .execute(
                "UPDATE ethpipe.runs SET status = 'failed', error = $2, finished_at = now() WHERE id = $1",
                &[&run.0, &error],
            )
            .await
            .map_err(fail("recording the run's failure"))?;
        Ok(())
    }

    pub async fn abandon_stale_runs(
        &self,
        pipeline: Pipeline,
        scope: Scope,
    ) -> Result<u64, SinkError> {
        let day: Option<NaiveDate> = scope_day(scope).map(|d| d.naive());
        self.client
            .execute(
                "UPDATE ethpipe.runs SET status = 'failed', finished_at = now(),
                        error = 'abandoned: the process running it stopped before finishing; nothing of it was committed'
                 WHERE pipeline = $1 AND day IS NOT DISTINCT FROM $2 AND status = 'running'",
                &[&pipeline.name(), &day],
            )
            .await
            .map_err(fail("closing abandoned runs"))
    }

    pub async fn latest_runs(
        &self,
        pipeline: Pipeline,
        from: Day,
        to: Day,
    ) -> Result<Vec<RunRecord>, SinkError> {
        let rows = self
            .client
            .query(
                "SELECT DISTINCT ON (day) id, pipeline, day::text, trigger, source, status, attempt, rows_written,
                        source_rows, skipped_rows, started_at, finished_at, error
                 FROM ethpipe.runs WHERE pipeline = $1 AND day BETWEEN $2 AND $3
                 ORDER BY day, id DESC",
                &[&pipeline.name(), &from.naive(), &to.naive()],
            )
            .await
            .map_err(fail("reading runs"))?;
        Ok(rows.iter().map(run_record).collect())
    }

    pub async fn succeeded_days(
        &self,
        pipeline: Pipeline,
        from: Day,
        to: Day,
        trigger: Option<&str>,
    ) -> Result<Vec<Day>, SinkError> {
        let rows = self
            .client
            .query(
                "SELECT DISTINCT day FROM ethpipe.runs
                 WHERE pipeline = $1 AND day BETWEEN $2 AND $3 AND status = 'success'
                   AND ($4::text IS NULL OR trigger = $4)
                 ORDER BY day",
                &[&pipeline.name(), &from.naive(), &to.naive(), &trigger],
            )
            .await
            .map_err(fail("reading succeeded days"))?;
        Ok(rows.iter().map(|r| Day::from_naive(r.get(0))).collect())
    }

    pub async fn sync_triggers(&self, defs: &[TriggerDef]) -> Result<(), SinkError> {
        for d in defs {
            self.client
                .execute(
                    "INSERT INTO ethpipe.triggers (name, pipeline, schedule, active, config_active, day_offset,
                                                   max_attempts, backoff_seconds, timeout_seconds, catchup_days)
                     VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8, $9)
                     ON CONFLICT (name) DO UPDATE SET
                         pipeline = EXCLUDED.pipeline, schedule = EXCLUDED.schedule,
                         active = CASE WHEN ethpipe.triggers.config_active = EXCLUDED.config_active
                                       THEN ethpipe.triggers.active ELSE EXCLUDED.active END,
                         config_active = EXCLUDED.config_active, day_offset = EXCLUDED.day_offset,
                         max_attempts = EXCLUDED.max_attempts, backoff_seconds = EXCLUDED.backoff_seconds,
                         timeout_seconds = EXCLUDED.timeout_seconds, catchup_days = EXCLUDED.catchup_days,
                         updated_at = now()",
                    &[
                        &d.name, &d.pipeline, &d.schedule, &d.active, &d.day_offset,
                        &d.max_attempts, &d.backoff_seconds, &d.timeout_seconds, &d.catchup_days,
                    ],
                )
                .await
                .map_err(fail("saving a trigger"))?;
        }
        Ok(())
    }

    pub async fn triggers(&self) -> Result<Vec<TriggerState>, SinkError> {
        let rows = self
            .client
            .query(
                "SELECT name, pipeline, schedule, active, day_offset, max_attempts, backoff_seconds,
                        timeout_seconds, catchup_days, last_slot
                 FROM ethpipe.triggers ORDER BY name",
                &[],
            )
            .await
            .map_err(fail("reading triggers"))?;
        Ok(rows
            .iter()
            .map(|r| TriggerState {
                def: TriggerDef {
                    name: r.get(0),
                    pipeline: r.get(1),
                    schedule: r.get(2),
                    active: r.get(3),
                    day_offset: r.get(4),
                    max_attempts: r.get(5),
                    backoff_seconds: r.get(6),
                    timeout_seconds: r.get(7),
                    catchup_days: r.get(8),
                },
                last_slot: r.get(9),
            })
            .collect())
    }

    pub async fn set_trigger_active(&self, name: &str, active: bool) -> Result<bool, SinkError> {
        let updated = self
            .client
            .execute(
                // Turning a trigger on starts it from now: the time it was off is not downtime to catch up.
                "UPDATE ethpipe.triggers SET active = $2, updated_at = now(),
                        last_slot = CASE WHEN $2 AND NOT active THEN now() ELSE last_slot END
                 WHERE name = $1",
                &[&name, &active],
            )
            .await
            .map_err(fail("toggling a trigger"))?;
        Ok(updated == 1)
    }

    pub async fn set_last_slot(&self, name: &str, slot: DateTime<Utc>) -> Result<(), SinkError> {
        self.client
            .execute(
                "UPDATE ethpipe.triggers SET last_slot = greatest(last_slot, $2) WHERE name = $1",
                &[&name, &slot],
            )
            .await
            .map_err(fail("recording a trigger's slot"))?;
        Ok(())
    }

    pub async fn claim_fire(
        &self,
        name: &str,
        slot: DateTime<Utc>,
        day: Day,
    ) -> Result<bool, SinkError> {
        let inserted = self
            .client
            .execute(
                "INSERT INTO ethpipe.trigger_fires (trigger, slot, day) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
                &[&name, &slot, &day.naive()],
            )
            .await
            .map_err(fail("recording a trigger firing"))?;
        Ok(inserted == 1)
    }

    pub async fn log(&self, run: RunId, level: &str, message: &str) -> Result<(), SinkError> {
        self.client
            .execute(
                "INSERT INTO ethpipe.run_logs (run_id, level, message) VALUES ($1, $2, $3)",
                &[&run.0, &level, &message],
            )
            .await
            .map_err(fail("writing a run log line"))?;
        Ok(())
    }

    pub async fn variable(
        &self,
        pipeline: Pipeline,
        name: &str,
    ) -> Result<Option<String>, SinkError> {
        let row = self
            .client
            .query_opt(
                "SELECT value FROM ethpipe.variables WHERE pipeline = $1 AND name = $2",
                &[&pipeline.name(), &name],
            )
            .await
            .map_err(fail("reading a pipeline variable"))?;
        Ok(row.map(|r| r.get(0)))
    }

    pub async fn recent_runs(
        &self,
        pipeline: Pipeline,
        limit: u32,
    ) -> Result<Vec<RunRecord>, SinkError> {
        let rows = self
            .client
            .query(
                "SELECT id, pipeline, day::text, trigger, source, status, attempt, rows_written,
                        source_rows, skipped_rows, started_at, finished_at, error
                 FROM ethpipe.runs WHERE pipeline = $1 ORDER BY id DESC LIMIT $2",
                &[&pipeline.name(), &i64::from(limit)],
            )
            .await
            .map_err(fail("reading runs"))?;
        Ok(rows.iter().map(run_record).collect())
    }

    pub async fn days_loaded(&self, pipeline: Pipeline) -> Result<Vec<DayLoaded>, SinkError> {
        let rows = self
            .client
            .query(
                "SELECT DISTINCT ON (day) day::text, rows_written FROM ethpipe.runs
                 WHERE pipeline = $1 AND status = 'success' AND day IS NOT NULL
                 ORDER BY day, id DESC",
                &[&pipeline.name()],
            )
            .await
            .map_err(fail("reading loaded days"))?;
        Ok(rows
            .iter()
            .map(|r| DayLoaded {
                day: r.get(0),
                rows: r.get::<_, Option<i64>>(1).unwrap_or(0),
            })
            .collect())
    }
}

fn run_record(row: &Row) -> RunRecord {
    RunRecord {
        id: RunId(row.get(0)),
        pipeline: row.get(1),
        day: row.get(2),
        trigger: row.get(3),
        source: row.get(4),
        status: RunStatus::parse(row.get(5)),
        attempt: row.get(6),
        rows_written: row.get(7),
        source_rows: row.get(8),
        skipped_rows: row.get(9),
        started_at: row.get::<_, DateTime<Utc>>(10),
        finished_at: row.get(11),
        error: row.get(12),
    }
}

/// Called inside the day's transaction, so success and data commit together.
pub(super) async fn record_success(
    client: &Client,
    commit: &Commit,
    rows: u64,
) -> Result<(), SinkError> {
    let updated = client
        .execute(
            // clock_timestamp(): now() would be the start of the day's
            // transaction, making every run look instantaneous.
            "UPDATE ethpipe.runs SET status = 'success', rows_written = $2, source_rows = $3,
                    skipped_rows = $4, finished_at = clock_timestamp(), error = NULL
             WHERE id = $1 AND status = 'running'",
            &[
                &commit.run.0,
                &(rows as i64),
                &(commit.source_rows as i64),
                &(commit.skipped_rows as i64),
            ],
        )
        .await
        .map_err(fail("recording the run's success"))?;
    if updated != 1 {
        return Err(SinkError::Rejected(format!(
            "run {} is no longer 'running' in the ledger; not committing",
            commit.run
        )));
    }
    Ok(())
}

pub(super) async fn set_variable(
    client: &Client,
    pipeline: Pipeline,
    name: &str,
    value: &str,
) -> Result<(), SinkError> {
    client
        .execute(
            "INSERT INTO ethpipe.variables (pipeline, name, value) VALUES ($1, $2, $3)
             ON CONFLICT (pipeline, name) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
            &[&pipeline.name(), &name, &value],
        )
        .await
        .map_err(fail("setting a pipeline variable"))?;
    Ok(())
}
