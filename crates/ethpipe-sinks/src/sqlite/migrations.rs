//! Versioned SQLite schema, mirroring the PostgreSQL one.

use rusqlite::Connection;

use ethpipe_core::dataset::Dialect;

use crate::schema::{Change, Migration, MIGRATIONS};
use crate::SinkError;

/// See the PostgreSQL migration of the same number.
pub(crate) const V8: &str = "ALTER TABLE ethpipe_runs ADD COLUMN token_filter TEXT;";

/// See the PostgreSQL migration of the same number.
pub(crate) const V7: &str = "
DELETE FROM tokens WHERE found_in_transfers AND EXISTS
    (SELECT 1 FROM tokens u WHERE u.found_in_transfers
        AND u.address = tokens.address AND u.block_number < tokens.block_number);
CREATE UNIQUE INDEX tokens_found_in_transfers_once ON tokens (address) WHERE found_in_transfers;
";

/// See the PostgreSQL migration of the same number.
pub(crate) const V9: &str = "
ALTER TABLE ethpipe_runs ADD COLUMN gate TEXT;
ALTER TABLE ethpipe_runs ADD COLUMN gate_mark TEXT;
";

/// See the PostgreSQL migration of the same number.
pub(crate) const V10: &str = "
ALTER TABLE ethpipe_triggers RENAME COLUMN last_slot TO active_since;
UPDATE ethpipe_triggers SET active_since = coalesce(active_since, updated_at);
DROP TABLE ethpipe_trigger_fires;

CREATE TABLE ethpipe_backfill_jobs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    pipeline    TEXT    NOT NULL,
    from_day    TEXT    NOT NULL,
    to_day      TEXT    NOT NULL,
    parallel    INTEGER NOT NULL,
    forced      INTEGER NOT NULL,
    state       TEXT    NOT NULL CHECK (state IN ('running', 'finished', 'failed')),
    started_at  TEXT    NOT NULL,
    finished_at TEXT,
    error       TEXT
);
CREATE INDEX ethpipe_runs_trigger_day_idx ON ethpipe_runs (trigger, day, id);
";

/// See the PostgreSQL migration of the same number.
pub(crate) const V5: &str = "
CREATE INDEX token_transfers_from_idx ON token_transfers (from_address, block_number);
CREATE INDEX token_transfers_to_idx ON token_transfers (to_address, block_number);
CREATE INDEX token_transfers_token_time_idx ON token_transfers (token_address, block_timestamp);
";

/// See the PostgreSQL migration of the same number.
pub(crate) const V4: &str =
    "ALTER TABLE tokens ADD COLUMN found_in_transfers INTEGER NOT NULL DEFAULT 0;";

pub(crate) const V1: &str = r#"
CREATE TABLE token_transfers (
    token_address    TEXT    NOT NULL,
    from_address     TEXT,
    to_address       TEXT,
    value            TEXT,
    transaction_hash TEXT    NOT NULL,
    log_index        INTEGER NOT NULL,
    block_timestamp  TEXT    NOT NULL,
    block_number     INTEGER NOT NULL,
    block_hash       TEXT    NOT NULL,
    PRIMARY KEY (transaction_hash, log_index)
);
CREATE INDEX token_transfers_block_timestamp_idx ON token_transfers (block_timestamp);

CREATE TABLE tokens (
    address          TEXT    NOT NULL,
    symbol           TEXT,
    name             TEXT,
    decimals         TEXT,
    total_supply     TEXT,
    block_timestamp  TEXT    NOT NULL,
    block_number     INTEGER NOT NULL,
    block_hash       TEXT    NOT NULL,
    PRIMARY KEY (address, block_number)
);
CREATE INDEX tokens_block_timestamp_idx ON tokens (block_timestamp);

CREATE VIEW tokens_latest AS
    SELECT t.* FROM tokens t
    WHERE t.block_number = (SELECT max(u.block_number) FROM tokens u WHERE u.address = t.address);

CREATE TABLE ethpipe_runs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    pipeline     TEXT    NOT NULL,
    day          TEXT,
    trigger      TEXT    NOT NULL,
    source       TEXT    NOT NULL,
    status       TEXT    NOT NULL CHECK (status IN ('running', 'success', 'failed')),
    attempt      INTEGER NOT NULL,
    rows_written INTEGER,
    source_rows  INTEGER,
    skipped_rows INTEGER,
    started_at   TEXT    NOT NULL,
    finished_at  TEXT,
    error        TEXT
);
CREATE INDEX ethpipe_runs_pipeline_day_idx ON ethpipe_runs (pipeline, day, id);

CREATE TABLE ethpipe_run_logs (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id  INTEGER NOT NULL REFERENCES ethpipe_runs (id) ON DELETE CASCADE,
    at      TEXT    NOT NULL,
    level   TEXT    NOT NULL,
    message TEXT    NOT NULL
);

CREATE TABLE ethpipe_variables (
    pipeline   TEXT NOT NULL,
    name       TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (pipeline, name)
);
"#;

/// SQLite has no exact wide decimal type, so `amount` is computed as text:
/// the raw value left-padded with zeros, a point inserted `decimals` places
/// from the right, trailing zeros trimmed. NULL when decimals is unknown or > 255.
pub(crate) const V2: &str = r#"
CREATE VIEW token_transfers_enriched AS
    SELECT token_address, from_address, to_address, value, transaction_hash, log_index,
           block_timestamp, block_number, block_hash, symbol, decimals,
           CASE
               WHEN value IS NULL OR d IS NULL OR d > 255 THEN NULL
               WHEN d = 0 THEN value
               ELSE rtrim(rtrim(substr(p, 1, length(p) - d) || '.' || substr(p, length(p) - d + 1), '0'), '.')
           END AS amount
    FROM (
        SELECT t.*, tk.symbol, tk.decimals,
               CAST(tk.decimals AS INTEGER) AS d,
               substr(hex(zeroblob(CAST(tk.decimals AS INTEGER) + 1)), 1,
                      max(0, CAST(tk.decimals AS INTEGER) + 1 - length(t.value))) || t.value AS p
        FROM token_transfers t
        LEFT JOIN tokens_latest tk ON tk.address = t.token_address
    );

CREATE TABLE token_daily_stats (
    day              TEXT    NOT NULL,
    token_address    TEXT    NOT NULL,
    transfer_count   INTEGER NOT NULL,
    unique_senders   INTEGER NOT NULL,
    unique_receivers INTEGER NOT NULL,
    volume_raw       TEXT    NOT NULL,
    volume           TEXT,
    PRIMARY KEY (day, token_address)
);
CREATE INDEX token_daily_stats_token_idx ON token_daily_stats (token_address, day);

CREATE TABLE ethpipe_run_steps (
    run_id      INTEGER NOT NULL REFERENCES ethpipe_runs (id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    name        TEXT    NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN ('success', 'failed')),
    rows        INTEGER,
    started_at  TEXT    NOT NULL,
    finished_at TEXT    NOT NULL,
    error       TEXT,
    PRIMARY KEY (run_id, position)
);
"#;

pub(crate) const V3: &str = r#"
CREATE TABLE ethpipe_triggers (
    name            TEXT    PRIMARY KEY,
    pipeline        TEXT    NOT NULL,
    schedule        TEXT    NOT NULL,
    active          INTEGER NOT NULL,
    config_active   INTEGER NOT NULL,
    day_offset      INTEGER NOT NULL,
    max_attempts    INTEGER NOT NULL,
    backoff_seconds INTEGER NOT NULL,
    timeout_seconds INTEGER NOT NULL,
    catchup_days    INTEGER NOT NULL,
    last_slot       TEXT,
    updated_at      TEXT    NOT NULL
);

CREATE TABLE ethpipe_trigger_fires (
    trigger  TEXT NOT NULL REFERENCES ethpipe_triggers (name) ON DELETE CASCADE,
    slot     TEXT NOT NULL,
    day      TEXT NOT NULL,
    fired_at TEXT NOT NULL,
    PRIMARY KEY (trigger, slot)
);
"#;

/// See the PostgreSQL migration of the same number.
pub(crate) const V14: &str = "
CREATE INDEX token_daily_stats_day_rank_idx
    ON token_daily_stats (day, transfer_count DESC, token_address);
";

pub fn apply(connection: &Connection) -> Result<Vec<u32>, SinkError> {
    let fail = |e: rusqlite::Error| SinkError::db("migrating the SQLite schema", e);
    // IMMEDIATE takes the write lock first, so two processes cannot both migrate.
    connection.execute_batch("BEGIN IMMEDIATE").map_err(fail)?;
    let result = (|| {
        connection.execute_batch(
            "CREATE TABLE IF NOT EXISTS ethpipe_schema_migrations (
                 version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
        )?;
        let mut applied_now = Vec::new();
        for Migration {
            version,
            name,
            change,
        } in MIGRATIONS
        {
            let done: bool = connection.query_row(
                "SELECT EXISTS (SELECT 1 FROM ethpipe_schema_migrations WHERE version = ?1)",
                [version],
                |r| r.get(0),
            )?;
            if !done {
                let sql = match change {
                    Change::Sql { sqlite, .. } => sqlite.to_string(),
                    Change::CreateDataset(pipeline) => {
                        crate::ddl::create(*pipeline, Dialect::Sqlite).join(";\n")
                    }
                    // SQLite tables are not partitioned.
                    Change::PartitionByDay => String::new(),
                };
                connection.execute_batch(&sql)?;
                connection.execute(
                    "INSERT INTO ethpipe_schema_migrations VALUES (?1, ?2, strftime('%Y-%m-%dT%H:%M:%fZ','now'))",
                    rusqlite::params![version, name],
                )?;
                applied_now.push(*version);
            }
        }
        Ok(applied_now)
    })();
    match result {
        Ok(applied) => {
            connection.execute_batch("COMMIT").map_err(fail)?;
            Ok(applied)
        }
        Err(e) => {
            let _ = connection.execute_batch("ROLLBACK");
            Err(fail(e))
        }
    }
}
