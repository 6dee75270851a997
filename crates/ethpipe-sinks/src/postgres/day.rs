//! Where a PostgreSQL day is committed, for every dataset.
//!
//! `begin` opens a transaction and a binary `COPY`; batches stream in as they
//! arrive. `commit` ends the COPY, checks the count, runs the dataset's
//! derived steps and the SQL models and records the run, all in the day's
//! one transaction.
//!
//! A day of a [`LoadMode::ReplaceDay`] dataset is copied into a fresh table
//! that becomes the day's partition (`partitions.rs`): the table is
//! committed aside once the rows are in, its indexes are built on two
//! sessions, and the old day is swapped out in one short transaction at the
//! end, so a day costs the same whatever the table already holds, and
//! readers see the old day until that commit. A [`LoadMode::Merge`] dataset
//! (tokens), and any full load, goes through a temporary staging table and
//! is merged in at commit. Either way, if the process dies before the day's
//! commit, the previous version of the day stays. A day loaded
//! with a token filter replaces only the filter's tokens' rows: the day's
//! other rows are copied into the new table first ([`partitions::keep_others`]).

use std::pin::Pin;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use chrono::Utc;
use ethpipe_core::dataset::{Derived, Dialect, LoadMode};
use ethpipe_core::{Pipeline, Rows, Scope, Slice, TokenFilter};
use futures_util::SinkExt;
use tokio_postgres::{Client, CopyInSink};

use super::copy;
use super::partitions::{self, DayPartition};
use super::Connector;
use crate::models::Model;
use crate::sink::DayWriter;
use crate::{
    check_batch, duplicate_key, model_outcome, Commit, Committed, ModelFailure, SinkError,
    StepReport,
};

const STAGING: &str = "ethpipe_staging";

/// Where the rows go, and how they take their place at commit.
enum Target {
    /// A whole day of a day-partitioned dataset: a fresh table (`stage`)
    /// that replaces the day's partition.
    /// `kept` rows of the old day (other tokens' than a filter's) were
    /// copied into it before the new rows.
    Partition {
        day: DayPartition,
        stage: String,
        kept: u64,
    },
    /// The temporary staging table, merged by the dataset's rules.
    Staged,
}

pub struct PgDayWriter {
    client: Client,
    /// Opens the second session that builds half of a day's indexes.
    connector: Connector,
    pipeline: Pipeline,
    scope: Scope,
    /// Only these tokens' rows of the day are replaced.
    filter: Option<TokenFilter>,
    copy: Pin<Box<CopyInSink<Bytes>>>,
    rows: u64,
    fields: i16,
    buffer: BytesMut,
    target: Target,
}

impl PgDayWriter {
    pub async fn begin(
        client: Client,
        connector: Connector,
        slice: Slice,
    ) -> Result<Self, SinkError> {
        let Slice {
            pipeline,
            scope,
            filter,
        } = slice;
        let target = match (pipeline.load_mode(), scope.day()) {
            (LoadMode::ReplaceDay, Some(day)) => {
                partitions::drop_orphans(&client).await?;
                client
                    .batch_execute("BEGIN ISOLATION LEVEL READ COMMITTED")
                    .await
                    .map_err(|e| SinkError::db("opening the transaction", e))?;
                let day = DayPartition::new(pipeline, day);
                let stage = partitions::create_stage(&client, &day).await?;
                if pipeline.derived().contains(&Derived::TokenDailyStats) {
                    client
                        .batch_execute(&companions(&stage).create(Tables::Companions))
                        .await
                        .map_err(|e| SinkError::db("creating the day's statistics tables", e))?;
                }
                let kept = match &filter {
                    Some(filter) => partitions::keep_others(&client, &day, &stage, filter).await?,
                    None => 0,
                };
                Target::Partition { day, stage, kept }
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
            connector,
            pipeline,
            scope,
            filter,
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
        check_batch(
            self.pipeline,
            self.scope,
            self.filter.as_ref(),
            rows,
            self.rows,
        )?;
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

    async fn commit(mut self: Box<Self>, commit: Commit) -> Result<Committed, SinkError> {
        let started = Utc::now();
        self.finish_copy().await?;
        let steps = vec![StepReport::since("load", self.rows, started)];
        let Target::Partition { stage, .. } = &self.target else {
            return self.finish(commit, steps).await;
        };
        // The day's table is committed aside (readers cannot see it: it is
        // no partition yet) so that a second session can build half of its
        // indexes; a failure from here on drops it, and if the process dies,
        // the next load's `drop_orphans` does.
        let tables = [
            stage.clone(),
            partitions::companion(stage, STATS),
            partitions::companion(stage, COUNTERPARTIES),
        ];
        self.client
            .batch_execute("COMMIT")
            .await
            .map_err(|e| SinkError::db("committing the day's rows aside", e))?;
        let finished = self.finish(commit, steps).await;
        if finished.is_err() {
            partitions::discard(&self.client, &tables).await;
        }
        finished
    }
}

/// Companions of a day's stage table holding its per-token statistics and
/// its busy tokens' top counterparties until the swap.
const STATS: &str = "stats";
const COUNTERPARTIES: &str = "kept";

fn companions(stage: &str) -> DailyRows {
    DailyRows {
        stats: partitions::companion(stage, STATS),
        counterparties: partitions::companion(stage, COUNTERPARTIES),
    }
}

impl PgDayWriter {
    async fn finish_copy(&mut self) -> Result<(), SinkError> {
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
        Ok(())
    }

    /// Everything after the rows are in, up to the day's commit.
    async fn finish(
        &self,
        commit: Commit,
        mut steps: Vec<StepReport>,
    ) -> Result<Committed, SinkError> {
        match &self.target {
            Target::Partition { day, stage, kept } => {
                self.build_and_swap(day, stage, *kept, &mut steps).await?;
            }
            Target::Staged => {
                self.merge_staged().await?;
                for derived in self.pipeline.derived() {
                    let started = Utc::now();
                    let daily = temporary_daily_rows();
                    if *derived == Derived::TokenDailyStats && self.scope.day().is_some() {
                        self.client
                            .batch_execute(&daily.aggregate_into_temporary(STAGING))
                            .await
                            .map_err(|e| SinkError::db("aggregating token_daily_stats", e))?;
                    }
                    let mut step = self.derive(*derived, STAGING, &daily).await?;
                    step.started_at = started;
                    steps.push(step);
                }
            }
        }
        let model_failure = self.run_models(&commit.models, &mut steps).await?;
        let failure_message = model_failure.as_ref().map(ModelFailure::message);
        crate::ledger::postgres::record_commit(
            &self.client,
            &commit,
            self.rows,
            failure_message.as_deref(),
        )
        .await?;
        self.client
            .batch_execute("COMMIT")
            .await
            .map_err(|e| SinkError::db("committing the day", e))?;
        Ok(Committed {
            steps,
            model_failure,
        })
    }

    /// Builds the committed stage table on two sessions, then opens the
    /// day's transaction and swaps it in. The derived steps read the new
    /// day before its indexes exist, in one sequential pass (with the token
    /// index, the planner visited the rows in index order: about 2 × slower),
    /// into a companion table; the transaction only copies their result.
    async fn build_and_swap(
        &self,
        day: &DayPartition,
        stage: &str,
        others: u64,
        steps: &mut Vec<StepReport>,
    ) -> Result<(), SinkError> {
        let daily = companions(stage);
        let extra = if self.pipeline.derived().contains(&Derived::TokenDailyStats) {
            daily
                .aggregate(stage)
                .into_iter()
                .map(|sql| partitions::BuildTask {
                    step: "token_daily_stats",
                    sql,
                })
                .collect()
        } else {
            Vec::new()
        };
        let indexing = Utc::now();
        let helper = self.connector.open().await?;
        let build = partitions::build(&[&self.client, &helper], day, stage, extra).await?;
        drop(helper);
        let built = build.built;
        if built.rows as u64 != self.rows + others {
            return Err(SinkError::Rejected(format!(
                "the day's table holds {} rows but {} were sent and {others} kept",
                built.rows, self.rows
            )));
        }
        self.client
            .batch_execute("BEGIN ISOLATION LEVEL READ COMMITTED")
            .await
            .map_err(|e| SinkError::db("opening the day's transaction", e))?;
        let mut derived_steps = Vec::new();
        for derived in self.pipeline.derived() {
            let mut step = self.derive(*derived, stage, &daily).await?;
            // The step's time is its aggregates (during the build, on
            // either session) plus its inserts (here), not the whole build.
            let runs = build.runs.iter().filter(|r| r.step == step.name);
            let started = runs.clone().map(|r| r.started).min();
            if let (Some(started), Some(finished)) = (started, runs.map(|r| r.finished).max()) {
                step.finished_at = finished + (step.finished_at - step.started_at);
                step.started_at = started;
            }
            derived_steps.push(step);
        }
        if !derived_steps.is_empty() {
            let DailyRows {
                stats,
                counterparties,
            } = &daily;
            self.client
                .batch_execute(&format!("DROP TABLE IF EXISTS {stats}, {counterparties}"))
                .await
                .map_err(|e| SinkError::db("dropping the day's statistics tables", e))?;
        }
        steps.extend(derived_steps);
        steps.push(StepReport::since("index", self.rows, indexing));
        let swapping = Utc::now();
        partitions::swap_in(&self.client, day, stage, built).await?;
        steps.push(StepReport::since("swap", self.rows, swapping));
        Ok(())
    }
}

impl PgDayWriter {
    /// Runs the models in order inside the day's transaction, each behind a
    /// savepoint: a failing model is rolled back alone and stops the rest.
    /// Only a database fault outside a model's own statements is an error.
    async fn run_models(
        &self,
        models: &[Model],
        steps: &mut Vec<StepReport>,
    ) -> Result<Option<ModelFailure>, SinkError> {
        let Some(day) = self.scope.day() else {
            return Ok(None);
        };
        let savepoint = |sql: &'static str| async move {
            self.client
                .batch_execute(sql)
                .await
                .map_err(|e| SinkError::db("running the SQL models", e))
        };
        for model in models {
            let started = Utc::now();
            savepoint("SAVEPOINT ethpipe_model").await?;
            let outcome = super::execute_model(&self.client, &model.statements, day).await;
            savepoint(match outcome {
                Ok(_) => "RELEASE SAVEPOINT ethpipe_model",
                Err(_) => "ROLLBACK TO SAVEPOINT ethpipe_model",
            })
            .await?;
            if let Some(failure) = model_outcome(model, started, outcome, steps) {
                return Ok(Some(failure));
            }
        }
        Ok(None)
    }
}

impl PgDayWriter {
    /// Keeps `token_daily_stats` and `token_daily_counterparties` in step
    /// with what this transaction commits: a transfers day replaces that
    /// day's rows by `daily` (its aggregates); tokens refresh the scaled
    /// volume of the addresses they touch in `rows` (their decimals may have
    /// changed).
    async fn derive(
        &self,
        derived: Derived,
        rows: &str,
        daily: &DailyRows,
    ) -> Result<StepReport, SinkError> {
        let started = Utc::now();
        let fail = |e| SinkError::db("rebuilding token_daily_stats", e);
        let rows = match (derived, self.scope.day()) {
            (Derived::TokenDailyStats, Some(day)) => {
                let day = day.naive();
                let [clear_stats, stats, clear_kept, kept] = daily.statements();
                let client = &self.client;
                client.execute(&clear_stats, &[&day]).await.map_err(fail)?;
                let written = client.execute(&stats, &[&day]).await.map_err(fail)?;
                client.execute(&clear_kept, &[&day]).await.map_err(fail)?;
                client.execute(&kept, &[&day]).await.map_err(fail)?;
                // The step counts the statistics, as it did before the
                // counterparties were kept.
                written
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

/// A token has its day's top senders and receivers kept in
/// `ethereum.token_daily_counterparties` when it has more transfers than this
/// that day. Below it, summing the token's rows of the day on request reads
/// at most this many rows a side (about a millisecond); above it, the load
/// sums them once. A 1.3 M-row day holds at most 1.3 M / 500 such tokens, so
/// the table gains at most 2 × 100 rows for each: bounded by the day's own
/// size, whatever the history holds.
pub const COUNTERPARTY_TOKEN_MIN_TRANSFERS: i64 = 500;

/// Senders and receivers kept per busy token and day: the serving API's
/// largest page.
pub const COUNTERPARTIES_KEPT: i64 = 100;

/// The session's temporary table of one side's (token, address) groups.
const GROUPS: &str = "ethpipe_day_groups";

/// What kind of tables [`DailyRows::create`] makes.
#[derive(Clone, Copy)]
enum Tables {
    /// Companions of a stage table, committed with it: both build sessions
    /// write into them and the swap reads them.
    Companions,
    /// Temporary tables of the open transaction, dropped at its commit.
    Temporary,
}

/// A side of a transfer, as `token_daily_counterparties` names it, with its
/// column.
const SIDES: [(&str, &str); 2] = [("sender", "from_address"), ("receiver", "to_address")];

/// The tables a day's derived rows are aggregated into before they replace
/// that day's rows of `token_daily_stats` and `token_daily_counterparties`:
/// per token and side, its transfers, distinct addresses and volume
/// (`stats`), and the busy tokens' top addresses of each side
/// (`counterparties`).
struct DailyRows {
    stats: String,
    counterparties: String,
}

impl DailyRows {
    /// The empty tables, created before [`DailyRows::aggregate`] fills them.
    fn create(&self, tables: Tables) -> String {
        let DailyRows {
            stats,
            counterparties,
        } = self;
        let (create, on_commit) = match tables {
            Tables::Companions => ("CREATE TABLE", ""),
            Tables::Temporary => ("CREATE TEMP TABLE", " ON COMMIT DROP"),
        };
        format!(
            "{create} {stats} (token_address text COLLATE \"C\" NOT NULL, side text NOT NULL,
                 transfers bigint NOT NULL, addresses bigint NOT NULL, volume_raw numeric NOT NULL){on_commit};
             {create} {counterparties} (token_address text COLLATE \"C\" NOT NULL, side text NOT NULL,
                 rank bigint NOT NULL, address text COLLATE \"C\" NOT NULL,
                 transfers bigint NOT NULL, volume_raw numeric NOT NULL){on_commit};"
        )
    }

    /// One batch per side, without parameters, that fills both tables'
    /// rows of that side from `rows` (a table of the day's transfers). The
    /// two are independent, so the build runs them on its two sessions.
    ///
    /// A side's rows are grouped once by (token, address): the statistics
    /// add up the groups (a token's distinct senders are its non-null sender
    /// groups) and the counterparties rank them. On a 1.3 M-row day the
    /// groups are 1.5 M, nearly one per row, so grouping is the cost: once
    /// for both tables took 6.2 s of CPU where a `count(DISTINCT …)`
    /// aggregate and a separate ranking query took 7.7 s
    /// (docs/architecture.md, "Day partitions").
    ///
    /// Only groups that can make a token's top [`COUNTERPARTIES_KEPT`] are
    /// sorted: a histogram of the busy tokens' group sizes gives the
    /// smallest size that still has that many groups at or above it.
    /// Parallel workers are off: the build already keeps two sessions busy,
    /// and the workers' partial groups, nearly as many as the rows, were
    /// grouped again by the leader (1.5 × the CPU).
    fn aggregate(&self, rows: &str) -> [String; 2] {
        let DailyRows {
            stats,
            counterparties,
        } = self;
        SIDES.map(|(side, column)| {
            format!(
                "SET max_parallel_workers_per_gather = 0;
                 CREATE TEMP TABLE {GROUPS} AS
                     SELECT token_address, {column} AS address,
                            count(*) AS transfers, coalesce(sum(value), 0) AS volume_raw
                     FROM {rows} GROUP BY token_address, {column};
                 INSERT INTO {stats} (token_address, side, transfers, addresses, volume_raw)
                     SELECT token_address, '{side}', sum(transfers), count(address), sum(volume_raw)
                     FROM {GROUPS} GROUP BY token_address;
                 INSERT INTO {counterparties} (token_address, side, rank, address, transfers, volume_raw)
                     WITH candidates AS (
                         SELECT * FROM {GROUPS}
                         WHERE address IS NOT NULL
                           AND token_address IN (
                               SELECT token_address FROM {stats}
                               WHERE side = '{side}' AND transfers > {COUNTERPARTY_TOKEN_MIN_TRANSFERS})),
                     sizes AS (
                         SELECT token_address, transfers, count(*) AS groups
                         FROM candidates GROUP BY token_address, transfers),
                     cutoffs AS (
                         SELECT token_address, max(transfers) AS least_kept
                         FROM (SELECT token_address, transfers,
                                      sum(groups) OVER (PARTITION BY token_address
                                                        ORDER BY transfers DESC) AS at_least
                               FROM sizes) AS cumulative
                         WHERE at_least >= {COUNTERPARTIES_KEPT}
                         GROUP BY token_address)
                     SELECT token_address, '{side}', rank, address, transfers, volume_raw
                     FROM (SELECT c.token_address, c.address, c.transfers, c.volume_raw,
                                  row_number() OVER (PARTITION BY c.token_address
                                                     ORDER BY c.transfers DESC, c.address) AS rank
                           FROM candidates c LEFT JOIN cutoffs USING (token_address)
                           WHERE c.transfers >= coalesce(cutoffs.least_kept, 0)) AS ranked
                     WHERE rank <= {COUNTERPARTIES_KEPT};
                 DROP TABLE {GROUPS};
                 RESET max_parallel_workers_per_gather;"
            )
        })
    }

    /// Creates both tables as temporary ones and fills them from `rows`,
    /// both sides in one batch (for a caller in an open transaction).
    fn aggregate_into_temporary(&self, rows: &str) -> String {
        let mut batch = self.create(Tables::Temporary);
        for side in self.aggregate(rows) {
            batch.push_str(&side);
        }
        batch
    }

    /// The statements that replace the day's derived rows (`$1` is the
    /// day), in order: clear and fill `token_daily_stats`, clear and fill
    /// `token_daily_counterparties`. The counterparties are ranked as the
    /// server ranks a summed day: most transfers first, ties by address.
    fn statements(&self) -> [String; 4] {
        let DailyRows {
            stats,
            counterparties,
        } = self;
        [
            "DELETE FROM ethereum.token_daily_stats WHERE day = $1".to_string(),
            format!(
                "INSERT INTO ethereum.token_daily_stats
                     (day, token_address, transfer_count, unique_senders, unique_receivers, volume_raw, volume)
                 SELECT $1, s.token_address, s.transfer_count, s.unique_senders, s.unique_receivers,
                        s.volume_raw, ethereum.scale_by_decimals(s.volume_raw, tk.decimals)
                 FROM (SELECT token_address,
                              max(transfers) FILTER (WHERE side = 'sender') AS transfer_count,
                              max(addresses) FILTER (WHERE side = 'sender') AS unique_senders,
                              max(addresses) FILTER (WHERE side = 'receiver') AS unique_receivers,
                              max(volume_raw) FILTER (WHERE side = 'sender') AS volume_raw
                       FROM {stats} GROUP BY token_address) AS s
                 LEFT JOIN ethereum.tokens_latest tk ON tk.address = s.token_address"
            ),
            "DELETE FROM ethereum.token_daily_counterparties WHERE day = $1".to_string(),
            format!(
                "INSERT INTO ethereum.token_daily_counterparties
                     (day, token_address, side, rank, address, transfers, volume_raw)
                 SELECT $1, c.token_address, c.side, c.rank, c.address, c.transfers, c.volume_raw
                 FROM {counterparties} c"
            ),
        ]
    }
}

/// The temporary tables of [`daily_statements`].
fn temporary_daily_rows() -> DailyRows {
    DailyRows {
        stats: "ethpipe_daily_stats".to_string(),
        counterparties: "ethpipe_daily_counterparties".to_string(),
    }
}

/// What a load does to rebuild one day's derived rows from `rows` (that
/// day's transfers), for a caller in an open transaction: a batch without
/// parameters that aggregates the day into temporary tables (dropped at
/// commit), then the statements that replace the day's rows (`$1` is the
/// day). The bench builds its generated days with these.
pub fn daily_statements(rows: &str) -> (String, [String; 4]) {
    let daily = temporary_daily_rows();
    (daily.aggregate_into_temporary(rows), daily.statements())
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
