//! The schema's versions, one list for every store. A version is SQL written
//! per store (the history) or a dataset's table created from its description
//! (what adding a dataset takes), applied once, in order.

use ethpipe_core::datasets::ERC1155_TRANSFERS;
use ethpipe_core::Pipeline;

use crate::{postgres, sqlite};

pub enum Change {
    Sql {
        postgres: &'static str,
        sqlite: &'static str,
    },
    /// The dataset's table and indexes, from `Sink::ddl`.
    CreateDataset(Pipeline),
    /// PostgreSQL: every day-replacing dataset's table becomes partitioned
    /// by day, moved in place a day per transaction (resumable, so it runs
    /// outside the one migration transaction; `postgres/upgrade.rs`).
    /// SQLite: nothing.
    PartitionByDay,
}

pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub change: Change,
}

const fn sql(
    version: u32,
    name: &'static str,
    postgres: &'static str,
    sqlite: &'static str,
) -> Migration {
    Migration {
        version,
        name,
        change: Change::Sql { postgres, sqlite },
    }
}

pub const MIGRATIONS: &[Migration] = &[
    sql(
        1,
        "token tables and ledger",
        postgres::migrations::V1,
        sqlite::migrations::V1,
    ),
    sql(
        2,
        "transforms: enriched transfers, daily token statistics, run steps",
        postgres::migrations::V2,
        sqlite::migrations::V2,
    ),
    sql(
        3,
        "triggers and their fired slots",
        postgres::migrations::V3,
        sqlite::migrations::V3,
    ),
    sql(
        4,
        "tokens found in transfers (JSON-RPC source)",
        postgres::migrations::V4,
        sqlite::migrations::V4,
    ),
    sql(
        5,
        "indexes for the serving API (address and token pages)",
        postgres::migrations::V5,
        sqlite::migrations::V5,
    ),
    Migration {
        version: 6,
        name: "erc1155_transfers",
        change: Change::CreateDataset(ERC1155_TRANSFERS),
    },
    sql(
        7,
        "one token row found in transfers per address",
        postgres::migrations::V7,
        sqlite::migrations::V7,
    ),
    sql(
        8,
        "the token filter of each run",
        postgres::migrations::V8,
        sqlite::migrations::V8,
    ),
    sql(
        9,
        "the completeness gate each run passed",
        postgres::migrations::V9,
        sqlite::migrations::V9,
    ),
    sql(
        10,
        "reconciling scheduler: trigger activation time, recorded backfill jobs",
        postgres::migrations::V10,
        sqlite::migrations::V10,
    ),
    Migration {
        version: 11,
        name: "day partitions for the datasets that replace a day",
        change: Change::PartitionByDay,
    },
    sql(
        12,
        "addresses and hashes compare byte by byte (COLLATE \"C\")",
        postgres::migrations::V12,
        "",
    ),
    sql(
        13,
        "the top senders and receivers of each day's busiest tokens",
        postgres::migrations::V13,
        "",
    ),
    sql(
        14,
        "a day's tokens ranked by transfers, from an index",
        postgres::migrations::V14,
        sqlite::migrations::V14,
    ),
    sql(
        15,
        "a token's daily statistics from its index alone",
        postgres::migrations::V15,
        "",
    ),
];
