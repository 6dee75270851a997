//! Versioned SQLite schema, mirroring the PostgreSQL one.

use rusqlite::Connection;

use crate::SinkError;

const MIGRATIONS: &[(u32, &str, &str)] = &[(1, "token tables and ledger", V1)];

const V1: &str = r#"
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
        for (version, name, sql) in MIGRATIONS {
            let done: bool = connection.query_row(
                "SELECT EXISTS (SELECT 1 FROM ethpipe_schema_migrations WHERE version = ?1)",
                [version],
                |r| r.get(0),
            )?;
            if !done {
                connection.execute_batch(sql)?;
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
