//! `tokens`: one row per token contract deployment, as BigQuery's
//! `crypto_ethereum.tokens` holds it; from a node, contract creations checked
//! for token interfaces (docs/rpc-semantics.md, section F). Its rows move
//! between days (a token first seen in transfers moves to its creation), so
//! a load merges by the rules in [`Dataset::merge_statements`] instead of
//! replacing a day, and the first run loads the whole table.

use chrono::{DateTime, Utc};

use crate::cells::bigquery_timestamp;
use crate::dataset::{
    BigQueryExtraction, CellWriter, Column, ColumnType, Dataset, Derived, Dialect, Index, LoadMode,
    Pipeline, Row, Rows, RpcExtraction,
};
use crate::validate::{self, RowError};
use crate::Uint;

/// The registered handle.
pub const TOKENS: Pipeline = Pipeline(&Tokens);

/// One token contract deployment (`crypto_ethereum.tokens`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub address: String,
    pub symbol: Option<String>,
    pub name: Option<String>,
    pub decimals: Option<Uint>,
    pub total_supply: Option<Uint>,
    pub block_timestamp: DateTime<Utc>,
    pub block_number: i64,
    pub block_hash: String,
    /// The JSON-RPC source's row for a token address seen in transfers with
    /// no creation row: its block is where it was first seen, not created.
    pub found_in_transfers: bool,
}

const COLUMNS: &[Column] = &[
    Column::required("address", ColumnType::Text),
    Column::nullable("symbol", ColumnType::Text),
    Column::nullable("name", ColumnType::Text),
    Column::nullable("decimals", ColumnType::Uint),
    Column::nullable("total_supply", ColumnType::Uint),
    Column::required("block_timestamp", ColumnType::Timestamp),
    Column::required("block_number", ColumnType::Int),
    Column::required("block_hash", ColumnType::Text),
    Column::required("found_in_transfers", ColumnType::Bool),
];

/// BigQuery has no `found_in_transfers`: every BigQuery row is a creation.
const BIGQUERY_COLUMNS: &[&str] = &[
    "address",
    "symbol",
    "name",
    "decimals",
    "total_supply",
    "block_timestamp",
    "block_number",
    "block_hash",
];

impl Row for Token {
    fn write(&self, out: &mut dyn CellWriter) {
        out.text(Some(&self.address));
        out.text(self.symbol.as_deref());
        out.text(self.name.as_deref());
        out.uint(self.decimals.as_ref());
        out.uint(self.total_supply.as_ref());
        out.timestamp(self.block_timestamp);
        out.int(self.block_number);
        out.text(Some(&self.block_hash));
        out.boolean(self.found_in_transfers);
    }

    fn day_time(&self) -> DateTime<Utc> {
        self.block_timestamp
    }
}

pub struct Tokens;

impl Dataset for Tokens {
    fn name(&self) -> &'static str {
        "tokens"
    }

    fn description(&self) -> &'static str {
        "token contracts (ERC-20, ERC-721): address, symbol, name, decimals, total supply"
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    /// An address redeployed with CREATE2 keeps a row per deployment.
    fn key(&self) -> &'static [&'static str] {
        &["address", "block_number"]
    }

    fn filter_column(&self) -> &'static str {
        "address"
    }

    fn indexes(&self) -> &'static [Index] {
        &[Index {
            suffix: "block_timestamp_idx",
            columns: &["block_timestamp"],
        }]
    }

    fn load_mode(&self) -> LoadMode {
        LoadMode::Merge
    }

    fn full_load_first(&self) -> bool {
        true
    }

    fn bigquery(&self) -> BigQueryExtraction {
        BigQueryExtraction::Table {
            table: "tokens",
            columns: BIGQUERY_COLUMNS,
        }
    }

    fn rpc(&self) -> RpcExtraction {
        RpcExtraction::ContractCreations
    }

    fn parse_bigquery(&self, rows: &[Vec<Option<&str>>], first_row: u64) -> Result<Rows, RowError> {
        Rows::parse_cells(TOKENS, rows, first_row, from_bigquery)
    }

    fn merge_statements(&self, dialect: Dialect) -> &'static [&'static str] {
        match dialect {
            Dialect::Postgres => POSTGRES_MERGE,
            Dialect::Sqlite => SQLITE_MERGE,
        }
    }

    fn derived(&self) -> &'static [Derived] {
        &[Derived::RescaleTokenVolumes]
    }
}

/// Cells in [`BIGQUERY_COLUMNS`] order.
pub fn from_bigquery(cells: &[Option<&str>], row: u64) -> Result<Token, RowError> {
    Ok(Token {
        address: validate::address(row, "address", cells[0])?,
        symbol: validate::text(cells[1]),
        name: validate::text(cells[2]),
        decimals: validate::lenient_uint(cells[3]),
        total_supply: validate::lenient_uint(cells[4]),
        block_timestamp: bigquery_timestamp(row, "block_timestamp", cells[5])?,
        block_number: validate::int64(row, "block_number", cells[6])?,
        block_hash: validate::hash(row, "block_hash", cells[7])?,
        found_in_transfers: false,
    })
}

// The merge rules, in each dialect: created tokens are upserted (BigQuery's
// tokens table has exact duplicate rows: one per key is kept); a creation row
// replaces any row found in transfers for the same address; a row found in
// transfers goes in only for an address with no row at all, and moves to the
// earliest day it was seen. PostgreSQL needs `DISTINCT ON` because one INSERT
// may not update a row twice; SQLite applies rows one by one.
//
// Two loads of different days may merge at once. Under READ COMMITTED each
// would see no row for a token both found in transfers and both insert one,
// so on PostgreSQL every merge first takes one transaction-scoped advisory
// lock: merges of tokens run one after the other, each seeing what the
// previous committed (SQLite's `BEGIN IMMEDIATE` already serialises them). A
// partial unique index (migration 7) keeps "one found row per address" true
// whatever the interleaving.

/// The lock key is FNV-1a of `ethpipe:tokens:merge`, like the day locks.
const POSTGRES_MERGE: &[&str] = &[
    "SELECT pg_advisory_xact_lock(-6864165656802136746)",
    "INSERT INTO {table}
     SELECT DISTINCT ON (address, block_number) * FROM {staging}
     WHERE NOT found_in_transfers
     ORDER BY address, block_number, symbol NULLS LAST, name NULLS LAST
     ON CONFLICT (address, block_number) DO UPDATE SET
         symbol = EXCLUDED.symbol, name = EXCLUDED.name,
         decimals = EXCLUDED.decimals, total_supply = EXCLUDED.total_supply,
         block_timestamp = EXCLUDED.block_timestamp, block_hash = EXCLUDED.block_hash,
         found_in_transfers = EXCLUDED.found_in_transfers",
    "DELETE FROM {table} t USING {staging} s
     WHERE t.found_in_transfers AND NOT s.found_in_transfers AND t.address = s.address",
    "DELETE FROM {table} t USING {staging} s
     WHERE t.found_in_transfers AND s.found_in_transfers
       AND t.address = s.address AND s.block_number < t.block_number",
    "INSERT INTO {table}
     SELECT DISTINCT ON (address) * FROM {staging} s
     WHERE s.found_in_transfers
       AND NOT EXISTS (SELECT 1 FROM {table} t WHERE t.address = s.address)
     ORDER BY address, block_number",
];

const SQLITE_MERGE: &[&str] = &[
    "INSERT INTO {table} SELECT * FROM {staging} WHERE NOT found_in_transfers
     ON CONFLICT (address, block_number) DO UPDATE SET
         symbol = excluded.symbol, name = excluded.name, decimals = excluded.decimals,
         total_supply = excluded.total_supply, block_timestamp = excluded.block_timestamp,
         block_hash = excluded.block_hash, found_in_transfers = excluded.found_in_transfers",
    "DELETE FROM {table} WHERE found_in_transfers AND address IN
         (SELECT address FROM {staging} WHERE NOT found_in_transfers)",
    "DELETE FROM {table} WHERE found_in_transfers AND EXISTS
         (SELECT 1 FROM {staging} s WHERE s.found_in_transfers
             AND s.address = {table}.address AND s.block_number < {table}.block_number)",
    "INSERT INTO {table} SELECT * FROM {staging} s WHERE s.found_in_transfers
         AND NOT EXISTS (SELECT 1 FROM {table} t WHERE t.address = s.address)",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::ColumnCheck;

    #[test]
    fn the_row_writes_its_columns() {
        let row = Token {
            address: format!("0x{}", "a".repeat(40)),
            symbol: None,
            name: None,
            decimals: None,
            total_supply: None,
            block_timestamp: DateTime::<Utc>::UNIX_EPOCH,
            block_number: 1,
            block_hash: format!("0x{}", "b".repeat(64)),
            found_in_transfers: false,
        };
        assert_eq!(ColumnCheck::check(COLUMNS, &row), Ok(()));
    }
}
