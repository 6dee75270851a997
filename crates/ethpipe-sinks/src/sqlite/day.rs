//! Where a SQLite day is committed: rows go into a TEMP staging table batch by
//! batch, then one `BEGIN IMMEDIATE` transaction replaces the day and records
//! the run's success.

use ethpipe_core::{Pipeline, Rows, Scope};
use rusqlite::{params, Connection};

use chrono::Utc;

use super::{statistics, timestamp_text};
use crate::ledger::sqlite as ledger;
use crate::{check_in_scope, Commit, SinkError, StepReport};

pub struct SqliteDayWriter {
    connection: Connection,
    pipeline: Pipeline,
    scope: Scope,
    rows: u64,
}

fn table(pipeline: Pipeline) -> &'static str {
    match pipeline {
        Pipeline::TokenTransfers => "token_transfers",
        Pipeline::Tokens => "tokens",
    }
}

fn fail(context: &'static str) -> impl Fn(rusqlite::Error) -> SinkError {
    move |e| SinkError::db(context, e)
}

impl SqliteDayWriter {
    pub fn begin(
        connection: Connection,
        pipeline: Pipeline,
        scope: Scope,
    ) -> Result<Self, SinkError> {
        connection
            .execute_batch(&format!(
                "CREATE TEMP TABLE ethpipe_staging AS SELECT * FROM main.{} WHERE 0",
                table(pipeline)
            ))
            .map_err(fail("opening the staging table"))?;
        Ok(SqliteDayWriter {
            connection,
            pipeline,
            scope,
            rows: 0,
        })
    }

    pub fn rows_written(&self) -> u64 {
        self.rows
    }

    pub fn write(&mut self, rows: &Rows) -> Result<(), SinkError> {
        let tx = self
            .connection
            .transaction()
            .map_err(fail("staging rows"))?;
        match (self.pipeline, rows) {
            (Pipeline::TokenTransfers, Rows::TokenTransfers(rows)) => {
                let mut insert = tx
                    .prepare_cached("INSERT INTO temp.ethpipe_staging VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)")
                    .map_err(fail("staging rows"))?;
                for (i, r) in rows.iter().enumerate() {
                    check_in_scope(self.scope, r.block_timestamp, self.rows + i as u64 + 1)?;
                    insert
                        .execute(params![
                            r.token_address,
                            r.from_address,
                            r.to_address,
                            r.value.as_ref().map(|v| v.as_str()),
                            r.transaction_hash,
                            r.log_index,
                            timestamp_text(r.block_timestamp),
                            r.block_number,
                            r.block_hash
                        ])
                        .map_err(fail("staging rows"))?;
                }
            }
            (Pipeline::Tokens, Rows::Tokens(rows)) => {
                let mut insert = tx
                    .prepare_cached(
                        "INSERT INTO temp.ethpipe_staging VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    )
                    .map_err(fail("staging rows"))?;
                for (i, r) in rows.iter().enumerate() {
                    check_in_scope(self.scope, r.block_timestamp, self.rows + i as u64 + 1)?;
                    insert
                        .execute(params![
                            r.address,
                            r.symbol,
                            r.name,
                            r.decimals.as_ref().map(|v| v.as_str()),
                            r.total_supply.as_ref().map(|v| v.as_str()),
                            timestamp_text(r.block_timestamp),
                            r.block_number,
                            r.block_hash,
                            r.found_in_transfers
                        ])
                        .map_err(fail("staging rows"))?;
                }
            }
            _ => {
                return Err(SinkError::Rejected(
                    "a batch of the wrong pipeline reached the sink".into(),
                ))
            }
        }
        tx.commit().map_err(fail("staging rows"))?;
        self.rows += rows.len() as u64;
        Ok(())
    }

    pub fn commit(self, commit: Commit) -> Result<Vec<StepReport>, SinkError> {
        let started = Utc::now();
        let mut steps = Vec::new();
        let table = table(self.pipeline);
        let connection = &self.connection;
        connection
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(fail("locking the database for the day's swap"))?;
        let mut swapped = || -> Result<(), SinkError> {
            if let Some(day) = self.scope.day() {
                connection
                    .execute(
                        &format!("DELETE FROM main.{table} WHERE block_timestamp >= ?1 AND block_timestamp < ?2"),
                        [timestamp_text(day.start()), timestamp_text(day.end())],
                    )
                    .map_err(fail("replacing the day"))?;
            }
            let statements: &[&str] = match self.pipeline {
                Pipeline::TokenTransfers => {
                    &["INSERT INTO main.token_transfers SELECT * FROM temp.ethpipe_staging"]
                }
                Pipeline::Tokens => TOKEN_SWAP,
            };
            for statement in statements {
                connection
                    .execute(statement, [])
                    .map_err(fail("inserting the day"))?;
            }
            steps.push(StepReport::since("load", self.rows, started));
            steps.push(statistics::refresh(connection, self.pipeline, self.scope)?);
            ledger::record_commit(connection, &commit, self.rows)?;
            Ok(())
        };
        match swapped() {
            Ok(()) => {
                connection
                    .execute_batch("COMMIT")
                    .map_err(fail("committing the day"))?;
                Ok(steps)
            }
            Err(e) => {
                let _ = connection.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }
}

/// Created tokens are upserted; a creation row replaces any row found in
/// transfers for the same address; a row found in transfers goes in only for
/// an address with no row at all, and moves to the earliest day it was seen.
const TOKEN_SWAP: &[&str] = &[
    "INSERT INTO main.tokens SELECT * FROM temp.ethpipe_staging WHERE NOT found_in_transfers
     ON CONFLICT (address, block_number) DO UPDATE SET
         symbol = excluded.symbol, name = excluded.name, decimals = excluded.decimals,
         total_supply = excluded.total_supply, block_timestamp = excluded.block_timestamp,
         block_hash = excluded.block_hash, found_in_transfers = excluded.found_in_transfers",
    "DELETE FROM main.tokens WHERE found_in_transfers AND address IN
         (SELECT address FROM temp.ethpipe_staging WHERE NOT found_in_transfers)",
    "DELETE FROM main.tokens WHERE found_in_transfers AND EXISTS
         (SELECT 1 FROM temp.ethpipe_staging s WHERE s.found_in_transfers
             AND s.address = main.tokens.address AND s.block_number < main.tokens.block_number)",
    "INSERT INTO main.tokens SELECT * FROM temp.ethpipe_staging s WHERE s.found_in_transfers
         AND NOT EXISTS (SELECT 1 FROM main.tokens t WHERE t.address = s.address)",
];
