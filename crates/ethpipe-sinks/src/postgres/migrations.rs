//! Versioned schema migrations. Each version runs once, in order, inside one
//! transaction that holds an advisory lock, so concurrent `ethpipe` processes
//! starting together do not race. The day-partition upgrade moves a day per
//! transaction instead (it must survive a kill half-way): it holds the same
//! lock for the whole session while it runs.

use tokio_postgres::Client;

use ethpipe_core::dataset::Dialect;

use super::upgrade::{self, UpgradeProgress};
use crate::schema::{Change, Migration, MIGRATIONS};
use crate::SinkError;

/// Arbitrary constant naming ethpipe's migration lock.
const MIGRATION_LOCK: i64 = 0x0065_7468_7069_7065;

pub(crate) const V1: &str = r#"
CREATE SCHEMA IF NOT EXISTS ethereum;

CREATE TABLE ethereum.token_transfers (
    token_address    text           NOT NULL,
    from_address     text,
    to_address       text,
    value            numeric(78,0),
    transaction_hash text           NOT NULL,
    log_index        bigint         NOT NULL,
    block_timestamp  timestamptz    NOT NULL,
    block_number     bigint         NOT NULL,
    block_hash       text           NOT NULL,
    CONSTRAINT token_transfers_pkey PRIMARY KEY (transaction_hash, log_index)
);
CREATE INDEX token_transfers_block_timestamp_idx ON ethereum.token_transfers (block_timestamp);

CREATE TABLE ethereum.tokens (
    address          text           NOT NULL,
    symbol           text,
    name             text,
    decimals         numeric(78,0),
    total_supply     numeric(78,0),
    block_timestamp  timestamptz    NOT NULL,
    block_number     bigint         NOT NULL,
    block_hash       text           NOT NULL,
    CONSTRAINT tokens_pkey PRIMARY KEY (address, block_number)
);
CREATE INDEX tokens_block_timestamp_idx ON ethereum.tokens (block_timestamp);

-- One row per address: its latest deployment (CREATE2 redeployments keep every row in tokens).
CREATE VIEW ethereum.tokens_latest AS
    SELECT DISTINCT ON (address) *
    FROM ethereum.tokens
    ORDER BY address, block_number DESC;

CREATE TABLE ethpipe.runs (
    id           bigserial   PRIMARY KEY,
    pipeline     text        NOT NULL,
    day          date,
    trigger      text        NOT NULL,
    source       text        NOT NULL,
    status       text        NOT NULL CHECK (status IN ('running', 'success', 'failed')),
    attempt      integer     NOT NULL,
    rows_written bigint,
    source_rows  bigint,
    skipped_rows bigint,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    error        text
);
CREATE INDEX runs_pipeline_day_idx ON ethpipe.runs (pipeline, day, id);

CREATE TABLE ethpipe.run_logs (
    id      bigserial   PRIMARY KEY,
    run_id  bigint      NOT NULL REFERENCES ethpipe.runs (id) ON DELETE CASCADE,
    at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    level   text        NOT NULL,
    message text        NOT NULL
);
CREATE INDEX run_logs_run_idx ON ethpipe.run_logs (run_id, id);

CREATE TABLE ethpipe.variables (
    pipeline   text        NOT NULL,
    name       text        NOT NULL,
    value      text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline, name)
);
"#;

pub(crate) const V2: &str = r#"
-- raw / 10^decimals, exact: multiplying by the numeric literal 1e-N keeps every
-- digit (numeric division would round to about 16 significant digits).
-- NULL when decimals is unknown or beyond any real token (> 255).
CREATE FUNCTION ethereum.scale_by_decimals(raw numeric, decimals numeric) RETURNS numeric
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
        SELECT CASE
            WHEN raw IS NULL OR decimals IS NULL OR decimals > 255 THEN NULL
            ELSE raw * ('1e-' || decimals::text)::numeric
        END
    $$;

CREATE VIEW ethereum.token_transfers_enriched AS
    SELECT t.*, tk.symbol, tk.decimals,
           ethereum.scale_by_decimals(t.value, tk.decimals) AS amount
    FROM ethereum.token_transfers t
    LEFT JOIN ethereum.tokens_latest tk ON tk.address = t.token_address;

-- Rebuilt for a day in the transaction that loads the day's transfers.
CREATE TABLE ethereum.token_daily_stats (
    day              date    NOT NULL,
    token_address    text    NOT NULL,
    transfer_count   bigint  NOT NULL,
    unique_senders   bigint  NOT NULL,
    unique_receivers bigint  NOT NULL,
    volume_raw       numeric NOT NULL,
    volume           numeric,
    PRIMARY KEY (day, token_address)
);
CREATE INDEX token_daily_stats_token_idx ON ethereum.token_daily_stats (token_address, day);

CREATE TABLE ethpipe.run_steps (
    run_id      bigint      NOT NULL REFERENCES ethpipe.runs (id) ON DELETE CASCADE,
    position    integer     NOT NULL,
    name        text        NOT NULL,
    status      text        NOT NULL CHECK (status IN ('success', 'failed')),
    rows        bigint,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz NOT NULL,
    error       text,
    PRIMARY KEY (run_id, position)
);
"#;

pub(crate) const V3: &str = r#"
CREATE TABLE ethpipe.triggers (
    name            text        PRIMARY KEY,
    pipeline        text        NOT NULL,
    schedule        text        NOT NULL,
    -- The toggle; config_active is the config file's value when last synced,
    -- so a toggle persists until the file's own value changes.
    active          boolean     NOT NULL,
    config_active   boolean     NOT NULL,
    day_offset      integer     NOT NULL,
    max_attempts    integer     NOT NULL,
    backoff_seconds integer     NOT NULL,
    timeout_seconds integer     NOT NULL,
    catchup_days    integer     NOT NULL,
    last_slot       timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- One row per slot a trigger fired for: the primary key makes a slot fire once,
-- even if two schedulers ever acted at the same time.
CREATE TABLE ethpipe.trigger_fires (
    trigger  text        NOT NULL REFERENCES ethpipe.triggers (name) ON DELETE CASCADE,
    slot     timestamptz NOT NULL,
    day      date        NOT NULL,
    fired_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (trigger, slot)
);
"#;

/// The JSON-RPC source adds a token row for each token address seen in
/// transfers that has no creation row (docs/rpc-semantics.md, "Tokens found in
/// transfers"); this flag tells those rows apart.
pub(crate) const V4: &str = r#"
ALTER TABLE ethereum.tokens ADD COLUMN found_in_transfers boolean NOT NULL DEFAULT false;
CREATE OR REPLACE VIEW ethereum.tokens_latest AS
    SELECT DISTINCT ON (address) *
    FROM ethereum.tokens
    ORDER BY address, block_number DESC;
"#;

/// The serving API's reads: an address's transfers newest first (in and out
/// separately, merged by the query), and one token's transfers of one day
/// (top senders and receivers).
pub(crate) const V5: &str = r#"
CREATE INDEX token_transfers_from_idx ON ethereum.token_transfers (from_address, block_number);
CREATE INDEX token_transfers_to_idx ON ethereum.token_transfers (to_address, block_number);
CREATE INDEX token_transfers_token_time_idx ON ethereum.token_transfers (token_address, block_timestamp);
"#;

/// Concurrent tokens loads could each add a row found in transfers for one
/// address (docs/reliability.md): keep the earliest, then let the database
/// refuse a second one.
pub(crate) const V7: &str = r#"
DELETE FROM ethereum.tokens t USING ethereum.tokens u
WHERE t.found_in_transfers AND u.found_in_transfers
  AND t.address = u.address AND u.block_number < t.block_number;
CREATE UNIQUE INDEX tokens_found_in_transfers_once ON ethereum.tokens (address) WHERE found_in_transfers;
"#;

/// The token filter each run loaded (its canonical text: sorted addresses,
/// comma-joined); NULL for every token, as every run before it did.
pub(crate) const V8: &str = r#"
ALTER TABLE ethpipe.runs ADD COLUMN token_filter text;
"#;

/// Which completeness gate a run passed, and at what block or timestamp
/// (docs/reliability.md, "Loaded means complete").
pub(crate) const V9: &str = r#"
ALTER TABLE ethpipe.runs ADD COLUMN gate text, ADD COLUMN gate_mark text;
"#;

/// The scheduler reconciles with the ledger instead of remembering slots
/// (docs/orchestration.md): a trigger keeps only when it became active (the
/// start of what it owes), `trigger_fires` goes, and dashboard backfills are
/// recorded so the next leader resumes them after a restart.
pub(crate) const V10: &str = r#"
ALTER TABLE ethpipe.triggers RENAME COLUMN last_slot TO active_since;
UPDATE ethpipe.triggers SET active_since = coalesce(active_since, updated_at);
DROP TABLE ethpipe.trigger_fires;

CREATE TABLE ethpipe.backfill_jobs (
    id          bigserial   PRIMARY KEY,
    pipeline    text        NOT NULL,
    from_day    date        NOT NULL,
    to_day      date        NOT NULL,
    parallel    integer     NOT NULL,
    forced      boolean     NOT NULL,
    state       text        NOT NULL CHECK (state IN ('running', 'finished', 'failed')),
    started_at  timestamptz NOT NULL,
    finished_at timestamptz,
    error       text
);
CREATE INDEX runs_trigger_day_idx ON ethpipe.runs (trigger, day, id);
"#;

/// The datasets' text compares byte by byte (`COLLATE "C"`). Addresses and
/// hashes are ASCII hex, so their order is the same as under any locale, but
/// sorting them no longer goes through the locale's string comparison: a
/// day's index builds take about 40 % less time, and `LIKE 'prefix%'` can use
/// an index. Token symbols and names sort by byte too (upper case first).
/// The views over the columns are dropped and made again (PostgreSQL cannot
/// change a column a view reads); every index of the tables is rebuilt.
pub(crate) const V12: &str = r#"
DROP VIEW ethereum.token_transfers_enriched;
DROP VIEW ethereum.tokens_latest;
ALTER TABLE ethereum.token_transfers
    ALTER COLUMN token_address TYPE text COLLATE "C",
    ALTER COLUMN from_address TYPE text COLLATE "C",
    ALTER COLUMN to_address TYPE text COLLATE "C",
    ALTER COLUMN transaction_hash TYPE text COLLATE "C",
    ALTER COLUMN block_hash TYPE text COLLATE "C";
ALTER TABLE ethereum.erc1155_transfers
    ALTER COLUMN token_address TYPE text COLLATE "C",
    ALTER COLUMN operator TYPE text COLLATE "C",
    ALTER COLUMN from_address TYPE text COLLATE "C",
    ALTER COLUMN to_address TYPE text COLLATE "C",
    ALTER COLUMN transaction_hash TYPE text COLLATE "C",
    ALTER COLUMN block_hash TYPE text COLLATE "C";
ALTER TABLE ethereum.tokens
    ALTER COLUMN address TYPE text COLLATE "C",
    ALTER COLUMN symbol TYPE text COLLATE "C",
    ALTER COLUMN name TYPE text COLLATE "C",
    ALTER COLUMN block_hash TYPE text COLLATE "C";
ALTER TABLE ethereum.token_daily_stats
    ALTER COLUMN token_address TYPE text COLLATE "C";
CREATE VIEW ethereum.tokens_latest AS
    SELECT DISTINCT ON (address) *
    FROM ethereum.tokens
    ORDER BY address, block_number DESC;
CREATE VIEW ethereum.token_transfers_enriched AS
    SELECT t.*, tk.symbol, tk.decimals,
           ethereum.scale_by_decimals(t.value, tk.decimals) AS amount
    FROM ethereum.token_transfers t
    LEFT JOIN ethereum.tokens_latest tk ON tk.address = t.token_address;
"#;

/// Built in the transaction that loads a day's transfers, for the tokens
/// with more than [`COUNTERPARTY_TOKEN_MIN_TRANSFERS`] transfers that day:
/// summing those tokens' raw rows on each token page is what made it slow
/// (docs/architecture.md, "Serving over a year of days"). Keyed by day first,
/// so a load appends at the end of the key and its `DELETE` reads one range.
/// Days loaded before this migration have no rows here; the server then sums
/// their raw rows, as it always did.
///
/// [`COUNTERPARTY_TOKEN_MIN_TRANSFERS`]: super::day::COUNTERPARTY_TOKEN_MIN_TRANSFERS
pub(crate) const V13: &str = r#"
CREATE TABLE ethereum.token_daily_counterparties (
    day           date    NOT NULL,
    token_address text    COLLATE "C" NOT NULL,
    side          text    COLLATE "C" NOT NULL CHECK (side IN ('sender', 'receiver')),
    rank          integer NOT NULL,
    address       text    COLLATE "C" NOT NULL,
    transfers     bigint  NOT NULL,
    volume_raw    numeric NOT NULL,
    PRIMARY KEY (day, token_address, side, rank)
);
"#;

/// The day page's ranking (the day's tokens by transfers, most first, ties
/// by address) read from the index instead of sorting every token of the
/// day on each request. Its key leads with the day, so a load's rows go to
/// one end of it.
pub(crate) const V14: &str = r#"
CREATE INDEX token_daily_stats_day_rank_idx
    ON ethereum.token_daily_stats (day, transfer_count DESC, token_address);
"#;

/// The token page reads a year of one token's statistics: one row a day,
/// each on another page of the table, so 365 page reads a page view. With
/// the columns in the index they are a few adjacent index pages (an
/// index-only scan, once vacuum has marked the pages all-visible). It
/// replaces the index of the same key, so a load inserts as many entries as
/// before.
pub(crate) const V15: &str = r#"
CREATE INDEX token_daily_stats_token_days_idx ON ethereum.token_daily_stats (token_address, day)
    INCLUDE (transfer_count, unique_senders, unique_receivers, volume_raw, volume);
DROP INDEX ethereum.token_daily_stats_token_idx;
"#;

/// Applies pending migrations; returns the versions applied now.
pub async fn apply(client: &Client, progress: &dyn UpgradeProgress) -> Result<Vec<u32>, SinkError> {
    let mut applied = Vec::new();
    loop {
        let (now, upgrade) = apply_in_transaction(client, u32::MAX).await?;
        applied.extend(now);
        let Some((version, name)) = upgrade else {
            return Ok(applied);
        };
        client
            .batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
            .await
            .map_err(|e| SinkError::db("migrating the schema (lock)", e))?;
        let result = partition_once(client, version, name, progress).await;
        let unlocked = client
            .batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
            .await
            .map_err(|e| SinkError::db("migrating the schema (unlock)", e));
        if result? {
            applied.push(version);
        }
        unlocked?;
    }
}

/// Applies the migrations up to `last` only, leaving the schema as that
/// version had it (tests of the upgrade build an old database with it).
pub async fn apply_until(client: &Client, last: u32) -> Result<Vec<u32>, SinkError> {
    let (applied, _) = apply_in_transaction(client, last).await?;
    Ok(applied)
}

/// Runs the day-partition upgrade unless another process has finished it
/// meanwhile; true when this call did.
async fn partition_once(
    client: &Client,
    version: u32,
    name: &str,
    progress: &dyn UpgradeProgress,
) -> Result<bool, SinkError> {
    if applied_versions(client).await?.contains(&(version as i32)) {
        return Ok(false);
    }
    upgrade::partition_tables(client, progress).await?;
    record(client, version, name).await?;
    Ok(true)
}

/// The SQL migrations up to `last` in one locked transaction, stopping
/// before a day-partition upgrade; returns the versions applied and the
/// upgrade that is due, if one is.
async fn apply_in_transaction(
    client: &Client,
    last: u32,
) -> Result<(Vec<u32>, Option<(u32, &'static str)>), SinkError> {
    let fail = |what: &str, e: tokio_postgres::Error| {
        SinkError::db(format!("migrating the schema ({what})"), e)
    };
    client
        .batch_execute(&format!(
            "BEGIN;
             SELECT pg_advisory_xact_lock({MIGRATION_LOCK});
             CREATE SCHEMA IF NOT EXISTS ethpipe;
             CREATE TABLE IF NOT EXISTS ethpipe.schema_migrations (
                 version    integer     PRIMARY KEY,
                 name       text        NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             );"
        ))
        .await
        .map_err(|e| fail("lock", e))?;
    let result = apply_locked(client, last).await;
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    client
        .batch_execute(end)
        .await
        .map_err(|e| fail("commit", e))?;
    result
}

async fn applied_versions(client: &Client) -> Result<Vec<i32>, SinkError> {
    Ok(client
        .query("SELECT version FROM ethpipe.schema_migrations", &[])
        .await
        .map_err(|e| SinkError::db("reading applied migrations", e))?
        .iter()
        .map(|row| row.get(0))
        .collect())
}

async fn record(client: &Client, version: u32, name: &str) -> Result<(), SinkError> {
    client
        .execute(
            "INSERT INTO ethpipe.schema_migrations (version, name) VALUES ($1, $2)",
            &[&(version as i32), &name],
        )
        .await
        .map_err(|e| SinkError::db("recording a migration", e))?;
    Ok(())
}

async fn apply_locked(
    client: &Client,
    last: u32,
) -> Result<(Vec<u32>, Option<(u32, &'static str)>), SinkError> {
    let applied = applied_versions(client).await?;
    let mut now_applied = Vec::new();
    for Migration {
        version,
        name,
        change,
    } in MIGRATIONS
    {
        if *version > last {
            break;
        }
        if applied.contains(&(*version as i32)) {
            continue;
        }
        let sql = match change {
            Change::Sql { postgres, .. } => postgres.to_string(),
            Change::CreateDataset(pipeline) => {
                crate::ddl::create(*pipeline, Dialect::Postgres).join(";\n")
            }
            Change::PartitionByDay => return Ok((now_applied, Some((*version, name)))),
        };
        client
            .batch_execute(&sql)
            .await
            .map_err(|e| SinkError::db(format!("applying migration {version} ({name})"), e))?;
        record(client, *version, name).await?;
        now_applied.push(*version);
    }
    Ok((now_applied, None))
}
