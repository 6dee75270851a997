//! Where a PostgreSQL day is committed.
//!
//! `begin` opens a transaction and a binary `COPY`; batches stream in as they
//! arrive. `commit` ends the COPY, checks the count, rebuilds the day's
//! statistics and marks the run successful, all in that one transaction.
//!
//! A day of `token_transfers` is deleted first and copied straight into
//! `ethereum.token_transfers`: other sessions keep seeing the old day (MVCC)
//! until the commit, and writing the rows once (not into a staging table and
//! then again into the indexed table) is what keeps a day close to a plain
//! `COPY` (bench/RESULTS.md). Tokens, and transfers without a day, go through a
//! temporary staging table and are swapped in at commit (tokens need the
//! upsert rules below). Either way, if the process dies the server rolls the
//! transaction back and the previous version of the day stays.

use std::pin::Pin;

use bytes::{Bytes, BytesMut};
use chrono::Utc;
use ethpipe_core::{Pipeline, Rows, Scope};
use futures_util::SinkExt;
use tokio_postgres::{Client, CopyInSink};

use super::copy;
use super::describe;
use crate::{check_in_scope, Commit, SinkError, StepReport};

pub struct PgDayWriter {
    client: Client,
    pipeline: Pipeline,
    scope: Scope,
    copy: Pin<Box<CopyInSink<Bytes>>>,
    rows: u64,
    buffer: BytesMut,
    /// Rows go straight into the real table, whose day this transaction
    /// deleted in `begin`; otherwise into `ethpipe_staging`.
    direct: bool,
}

fn table(pipeline: Pipeline) -> (&'static str, &'static str) {
    match pipeline {
        Pipeline::TokenTransfers => ("ethereum.token_transfers", copy::TRANSFER_COLUMNS),
        Pipeline::Tokens => ("ethereum.tokens", copy::TOKEN_COLUMNS),
    }
}

impl PgDayWriter {
    pub async fn begin(
        client: Client,
        pipeline: Pipeline,
        scope: Scope,
    ) -> Result<Self, SinkError> {
        let (table, columns) = table(pipeline);
        let direct = pipeline == Pipeline::TokenTransfers && scope.day().is_some();
        let target = if direct {
            client
                .batch_execute("BEGIN ISOLATION LEVEL READ COMMITTED")
                .await
                .map_err(|e| SinkError::db("opening the transaction", describe(&e)))?;
            delete_day(&client, table, scope).await?;
            table
        } else {
            client
                .batch_execute(&format!(
                    "BEGIN ISOLATION LEVEL READ COMMITTED;
                     CREATE TEMP TABLE ethpipe_staging (LIKE {table}) ON COMMIT DROP;"
                ))
                .await
                .map_err(|e| SinkError::db("opening the staging table", describe(&e)))?;
            "ethpipe_staging"
        };
        let sink = client
            .copy_in(&format!(
                "COPY {target} ({columns}) FROM STDIN (FORMAT binary)"
            ))
            .await
            .map_err(|e| SinkError::db("starting COPY", describe(&e)))?;
        let mut writer = PgDayWriter {
            client,
            pipeline,
            scope,
            copy: Box::pin(sink),
            rows: 0,
            buffer: BytesMut::with_capacity(1 << 20),
            direct,
        };
        copy::header(&mut writer.buffer);
        Ok(writer)
    }

    pub fn rows_written(&self) -> u64 {
        self.rows
    }

    pub async fn write(&mut self, rows: &Rows) -> Result<(), SinkError> {
        match (self.pipeline, rows) {
            (Pipeline::TokenTransfers, Rows::TokenTransfers(rows)) => {
                for (i, row) in rows.iter().enumerate() {
                    check_in_scope(self.scope, row.block_timestamp, self.rows + i as u64 + 1)?;
                    copy::transfer(&mut self.buffer, row);
                }
            }
            (Pipeline::Tokens, Rows::Tokens(rows)) => {
                for (i, row) in rows.iter().enumerate() {
                    check_in_scope(self.scope, row.block_timestamp, self.rows + i as u64 + 1)?;
                    copy::token(&mut self.buffer, row);
                }
            }
            _ => {
                return Err(SinkError::Rejected(
                    "a batch of the wrong pipeline reached the sink".into(),
                ))
            }
        }
        self.rows += rows.len() as u64;
        let chunk = self.buffer.split().freeze();
        self.copy
            .send(chunk)
            .await
            .map_err(|e| SinkError::db("streaming rows with COPY", describe(&e)))
    }

    pub async fn commit(mut self, commit: Commit) -> Result<Vec<StepReport>, SinkError> {
        let started = Utc::now();
        copy::trailer(&mut self.buffer);
        let tail = self.buffer.split().freeze();
        self.copy
            .send(tail)
            .await
            .map_err(|e| SinkError::db("finishing COPY", describe(&e)))?;
        let copied = self
            .copy
            .as_mut()
            .finish()
            .await
            .map_err(|e| SinkError::db("finishing COPY", describe(&e)))?;
        if copied != self.rows {
            return Err(SinkError::Rejected(format!(
                "PostgreSQL staged {copied} rows but {} were sent",
                self.rows
            )));
        }
        if !self.direct {
            self.swap_in().await?;
        }
        let mut steps = vec![StepReport::since("load", self.rows, started)];
        steps.push(self.refresh_statistics().await?);
        crate::ledger::postgres::record_commit(&self.client, &commit, self.rows).await?;
        self.client
            .batch_execute("COMMIT")
            .await
            .map_err(|e| SinkError::db("committing the day", describe(&e)))?;
        Ok(steps)
    }

    /// Keeps `token_daily_stats` in step with what this transaction commits:
    /// a transfers day rebuilds that day's rows; tokens refresh the scaled
    /// volume of the addresses they touch (their decimals may have changed).
    async fn refresh_statistics(&self) -> Result<StepReport, SinkError> {
        let started = Utc::now();
        let fail =
            |e: tokio_postgres::Error| SinkError::db("rebuilding token_daily_stats", describe(&e));
        let rows = match (self.pipeline, self.scope.day()) {
            (Pipeline::TokenTransfers, Some(day)) => {
                let (start, end) = (day.start(), day.end());
                let day = day.naive();
                self.client
                    .execute("DELETE FROM ethereum.token_daily_stats WHERE day = $1", &[&day])
                    .await
                    .map_err(fail)?;
                // A transfers day is written directly (see `begin`): its rows
                // are the table's rows of the day, as this transaction sees them.
                self.client
                    .execute(
                        "INSERT INTO ethereum.token_daily_stats
                             (day, token_address, transfer_count, unique_senders, unique_receivers, volume_raw, volume)
                         SELECT $1, s.token_address, s.transfer_count, s.unique_senders, s.unique_receivers,
                                s.volume_raw, ethereum.scale_by_decimals(s.volume_raw, tk.decimals)
                         FROM (SELECT token_address, count(*) AS transfer_count,
                                      count(DISTINCT from_address) AS unique_senders,
                                      count(DISTINCT to_address) AS unique_receivers,
                                      coalesce(sum(value), 0) AS volume_raw
                               FROM ethereum.token_transfers
                               WHERE block_timestamp >= $2 AND block_timestamp < $3
                               GROUP BY token_address) s
                         LEFT JOIN ethereum.tokens_latest tk ON tk.address = s.token_address",
                        &[&day, &start, &end],
                    )
                    .await
                    .map_err(fail)?
            }
            (Pipeline::Tokens, _) => self
                .client
                .execute(
                    "UPDATE ethereum.token_daily_stats s
                     SET volume = ethereum.scale_by_decimals(s.volume_raw, tk.decimals)
                     FROM ethereum.tokens_latest tk
                     WHERE tk.address = s.token_address
                       AND s.token_address IN (SELECT address FROM ethpipe_staging)
                       AND s.volume IS DISTINCT FROM ethereum.scale_by_decimals(s.volume_raw, tk.decimals)",
                    &[],
                )
                .await
                .map_err(fail)?,
            (Pipeline::TokenTransfers, None) => 0,
        };
        Ok(StepReport::since("token_daily_stats", rows, started))
    }

    async fn swap_in(&self) -> Result<(), SinkError> {
        let (table, _) = table(self.pipeline);
        delete_day(&self.client, table, self.scope).await?;
        let statements: &[&str] = match self.pipeline {
            Pipeline::TokenTransfers => {
                &["INSERT INTO ethereum.token_transfers SELECT * FROM ethpipe_staging"]
            }
            Pipeline::Tokens => TOKEN_SWAP,
        };
        for statement in statements {
            self.client.execute(*statement, &[]).await.map_err(|e| {
                SinkError::db(
                    format!("inserting {} into {table}", self.scope),
                    describe(&e),
                )
            })?;
        }
        Ok(())
    }
}

/// Deletes the scope's day (if it is one) from `table`, in the open transaction.
async fn delete_day(client: &Client, table: &str, scope: Scope) -> Result<(), SinkError> {
    let Some(day) = scope.day() else {
        return Ok(());
    };
    client
        .execute(
            &format!("DELETE FROM {table} WHERE block_timestamp >= $1 AND block_timestamp < $2"),
            &[&day.start(), &day.end()],
        )
        .await
        .map_err(|e| SinkError::db(format!("replacing {scope} in {table}"), describe(&e)))?;
    Ok(())
}

/// Created tokens are upserted (BigQuery's tokens table has exact duplicate
/// rows: one per key is kept); a creation row replaces any row found in
/// transfers for the same address; a row found in transfers goes in only for
/// an address with no row at all, and moves to the earliest day it was seen.
const TOKEN_SWAP: &[&str] = &[
    "INSERT INTO ethereum.tokens
     SELECT DISTINCT ON (address, block_number) * FROM ethpipe_staging
     WHERE NOT found_in_transfers
     ORDER BY address, block_number, symbol NULLS LAST, name NULLS LAST
     ON CONFLICT (address, block_number) DO UPDATE SET
         symbol = EXCLUDED.symbol, name = EXCLUDED.name,
         decimals = EXCLUDED.decimals, total_supply = EXCLUDED.total_supply,
         block_timestamp = EXCLUDED.block_timestamp, block_hash = EXCLUDED.block_hash,
         found_in_transfers = EXCLUDED.found_in_transfers",
    "DELETE FROM ethereum.tokens t USING ethpipe_staging s
     WHERE t.found_in_transfers AND NOT s.found_in_transfers AND t.address = s.address",
    "DELETE FROM ethereum.tokens t USING ethpipe_staging s
     WHERE t.found_in_transfers AND s.found_in_transfers
       AND t.address = s.address AND s.block_number < t.block_number",
    "INSERT INTO ethereum.tokens
     SELECT DISTINCT ON (address) * FROM ethpipe_staging s
     WHERE s.found_in_transfers
       AND NOT EXISTS (SELECT 1 FROM ethereum.tokens t WHERE t.address = s.address)
     ORDER BY address, block_number",
];
