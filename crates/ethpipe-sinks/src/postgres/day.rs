//! Where a PostgreSQL day is committed, for every dataset.
//!
//! `begin` opens a transaction and a binary `COPY`; batches stream in as they
//! arrive. `commit` ends the COPY, checks the count, runs the dataset's
//! derived steps and marks the run successful, all in that one transaction.
//!
//! A day of a [`LoadMode::ReplaceDay`] dataset is copied into a fresh table
//! that becomes the day's partition (`partitions.rs`): its indexes are built
//! after the rows are in and the old day is swapped out in one short step at
//! the end, so a day costs the same whatever the table already holds, and
//! readers see the old day until the commit. A [`LoadMode::Merge`] dataset
//! (tokens), and any full load, goes through a temporary staging table and is
//! merged in at commit. Either way, if the process dies the server rolls the
//! transaction back and the previous version of the day stays.

use std::pin::Pin;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use chrono::Utc;
use ethpipe_core::dataset::{Derived, Dialect, LoadMode};
use ethpipe_core::{Pipeline, Rows, Scope};
use futures_util::SinkExt;
use tokio_postgres::{Client, CopyInSink};

use super::copy;
use super::partitions::{self, DayPartition};
use crate::sink::DayWriter;
use crate::{check_batch, duplicate_key, Commit, SinkError, StepReport};

const STAGING: &str = "ethpipe_staging";

/// Where the rows go, and how they take their place at commit.
enum Target {
    /// A whole day of a day-partitioned dataset: a fresh table (`stage`)
    /// that replaces the day's partition.
    Partition { day: DayPartition, stage: String },
    /// The temporary staging table, merged by the dataset's rules. (A load
    /// of only some rows of a day, e.g. a token filter's, belongs here too:
    /// it deletes those rows from the day's partition and inserts the staged
    /// ones, leaving the partition in place.)
    Staged,
}

pub struct PgDayWriter {
    client: Client,
    pipeline: Pipeline,
    scope: Scope,
    copy: Pin<Box<CopyInSink<Bytes>>>,
    rows: u64,
    fields: i16,
    buffer: BytesMut,
    target: Target,
}

impl PgDayWriter {
    pub async fn begin(
        client: Client,
        pipeline: Pipeline,
        scope: Scope,
    ) -> Result<Self, SinkError> {
        let target = match (pipeline.load_mode(), scope.day()) {
            (LoadMode::ReplaceDay, Some(day)) => {
                partitions::drop_orphans(&client).await?;
                client
                    .batch_execute("BEGIN ISOLATION LEVEL READ COMMITTED")
                    .await
                    .map_err(|e| SinkError::db("opening the transaction", e))?;
                let day = DayPartition::new(pipeline, day);
                let stage = partitions::create_stage(&client, &day).await?;
                Target::Partition { day, stage }
            }
            (LoadMode::ReplaceDay, None) => {
                return Err(SinkError::Rejected(format!(
                    "{pipeline} is loaded one day at a time, not in one full load"
                )))
            }
            (LoadMode::Merge, _) => {
                let table = crate::ddl::table(pipeline, Dialect::Postgres);
                client
                    .batch_execute(&format!(
                        "BEGIN ISOLATION LEVEL READ COMMITTED;
                         CREATE TEMP TABLE {STAGING} (LIKE {table}) ON COMMIT DROP;"
                    ))
                    .await
                    .map_err(|e| SinkError::db("opening the staging table", e))?;
                Target::Staged
            }
        };
        let into = match &target {
            Target::Partition { stage, .. } => stage.as_str(),
            Target::Staged => STAGING,
        };
        let columns = pipeline.column_names().collect::<Vec<_>>().join(", ");
        let sink = client
            .copy_in(&format!(
                "COPY {into} ({columns}) FROM STDIN (FORMAT binary)"
            ))
            .await
            .map_err(|e| SinkError::db("starting COPY", e))?;
        let mut writer = PgDayWriter {
            client,
            pipeline,
            scope,
            copy: Box::pin(sink),
            rows: 0,
            fields: pipeline.columns().len() as i16,
            buffer: BytesMut::with_capacity(1 << 20),
            target,
        };
        copy::header(&mut writer.buffer);
        Ok(writer)
    }
}

#[async_trait]
impl DayWriter for PgDayWriter {
    fn rows_written(&self) -> u64 {
        self.rows
    }

    async fn write(&mut self, rows: &Rows) -> Result<(), SinkError> {
        check_batch(self.pipeline, self.scope, rows, self.rows)?;
        for row in rows.iter() {
            copy::row(&mut self.buffer, self.fields, row);
        }
        self.rows += rows.len() as u64;
        let chunk = self.buffer.split().freeze();
        self.copy
            .send(chunk)
            .await
            .map_err(|e| copy_error(self.pipeline, "streaming rows with COPY", e))
    }

    async fn commit(mut self: Box<Self>, commit: Commit) -> Result<Vec<StepReport>, SinkError> {
        let started = Utc::now();
        copy::trailer(&mut self.buffer);
        let tail = self.buffer.split().freeze();
        self.copy
            .send(tail)
            .await
            .map_err(|e| copy_error(self.pipeline, "finishing COPY", e))?;
        let copied = self
            .copy
            .as_mut()
            .finish()
            .await
            .map_err(|e| copy_error(self.pipeline, "finishing COPY", e))?;
        if copied != self.rows {
            return Err(SinkError::Rejected(format!(
                "PostgreSQL staged {copied} rows but {} were sent",
                self.rows
            )));
        }
        let mut steps = vec![StepReport::since("load", self.rows, started)];
        match &self.target {
            Target::Partition { day, stage } => {
                let indexing = Utc::now();
                let built = partitions::build(&self.client, day, stage).await?;
                if built.rows as u64 != self.rows {
                    return Err(SinkError::Rejected(format!(
                        "the day's table holds {} rows but {} were sent",
                        built.rows, self.rows
                    )));
                }
                steps.push(StepReport::since("index", self.rows, indexing));
                // Derived steps read the new day from its own table, before
                // the swap, so readers wait only for the swap itself.
                for derived in self.pipeline.derived() {
                    steps.push(self.derive(*derived, stage).await?);
                }
                let swapping = Utc::now();
                partitions::swap_in(&self.client, day, stage, built).await?;
                steps.push(StepReport::since("swap", self.rows, swapping));
            }
            Target::Staged => {
                self.merge_staged().await?;
                for derived in self.pipeline.derived() {
                    steps.push(self.derive(*derived, STAGING).await?);
                }
            }
        }
        crate::ledger::postgres::record_commit(&self.client, &commit, self.rows).await?;
        self.client
            .batch_execute("COMMIT")
            .await
            .map_err(|e| SinkError::db("committing the day", e))?;
        Ok(steps)
    }
}

impl PgDayWriter {
    /// Keeps `token_daily_stats` in step with what this transaction commits:
    /// a transfers day rebuilds that day's rows from `rows` (the day's new
    /// table); tokens refresh the scaled volume of the addresses they touch
    /// (their decimals may have changed).
    async fn derive(&self, derived: Derived, rows: &str) -> Result<StepReport, SinkError> {
        let started = Utc::now();
        let fail = |e| SinkError::db("rebuilding token_daily_stats", e);
        let rows = match (derived, self.scope.day()) {
            (Derived::TokenDailyStats, Some(day)) => {
                let day = day.naive();
                self.client
                    .execute("DELETE FROM ethereum.token_daily_stats WHERE day = $1", &[&day])
                    .await
                    .map_err(fail)?;
                self.client
                    .execute(
                        &format!("INSERT INTO ethereum.token_daily_stats
                             (day, token_address, transfer_count, unique_senders, unique_receivers, volume_raw, volume)
                         SELECT $1, s.token_address, s.transfer_count, s.unique_senders, s.unique_receivers,
                                s.volume_raw, ethereum.scale_by_decimals(s.volume_raw, tk.decimals)
                         FROM (SELECT token_address, count(*) AS transfer_count,
                                      count(DISTINCT from_address) AS unique_senders,
                                      count(DISTINCT to_address) AS unique_receivers,
                                      coalesce(sum(value), 0) AS volume_raw
                               FROM {rows}
                               GROUP BY token_address) s
                         LEFT JOIN ethereum.tokens_latest tk ON tk.address = s.token_address"),
                        &[&day],
                    )
                    .await
                    .map_err(fail)?
            }
            (Derived::TokenDailyStats, None) => 0,
            (Derived::RescaleTokenVolumes, _) => self
                .client
                .execute(
                    &format!("UPDATE ethereum.token_daily_stats s
                     SET volume = ethereum.scale_by_decimals(s.volume_raw, tk.decimals)
                     FROM ethereum.tokens_latest tk
                     WHERE tk.address = s.token_address
                       AND s.token_address IN (SELECT address FROM {rows})
                       AND s.volume IS DISTINCT FROM ethereum.scale_by_decimals(s.volume_raw, tk.decimals)"),
                    &[],
                )
                .await
                .map_err(fail)?,
        };
        Ok(StepReport::since("token_daily_stats", rows, started))
    }

    /// Merges the staged rows by the dataset's own rules.
    async fn merge_staged(&self) -> Result<(), SinkError> {
        let table = crate::ddl::table(self.pipeline, Dialect::Postgres);
        let fail = |e| SinkError::db(format!("inserting {} into {table}", self.scope), e);
        for statement in self.pipeline.merge_statements(Dialect::Postgres) {
            let sql = statement
                .replace("{table}", &table)
                .replace("{staging}", STAGING);
            self.client.execute(&sql, &[]).await.map_err(fail)?;
        }
        Ok(())
    }
}

/// A unique violation while rows go in is the source's duplicate key;
/// anything else is the database's trouble (and may pass).
fn copy_error(
    pipeline: Pipeline,
    context: &'static str,
    error: tokio_postgres::Error,
) -> SinkError {
    match error.as_db_error() {
        Some(db) if *db.code() == tokio_postgres::error::SqlState::UNIQUE_VIOLATION => {
            duplicate_key(pipeline, db.detail().unwrap_or(db.message()))
        }
        _ => SinkError::db(context, error),
    }
}
