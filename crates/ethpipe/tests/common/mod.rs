//! Shared set-up for the integration tests: a BigQuery-compatible server with
//! a service-account key, a fresh PostgreSQL database, and readers that pull
//! the loaded rows back out for comparison.

#![allow(dead_code)]

use chrono::DateTime;
use ethpipe_testkit::{
    Ethpipe, FakeBigQuery, FixtureToken, FixtureTransfer, ServiceAccount, TestDatabase,
};
use tempfile::TempDir;
use tokio_postgres::Client;

pub struct Harness {
    pub bigquery: FakeBigQuery,
    pub account: ServiceAccount,
    pub dir: TempDir,
}

impl Harness {
    pub async fn start() -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let email = "ethpipe-test@test-project.iam.gserviceaccount.com";
        let bigquery = FakeBigQuery::start(email)
            .await
            .expect("fake BigQuery starts");
        let account = ServiceAccount::write(dir.path(), &bigquery.token_url()).expect("key file");
        assert_eq!(account.client_email, email);
        Harness {
            bigquery,
            account,
            dir,
        }
    }

    /// The binary, pointed at the fake BigQuery with the test key and `database_url`.
    pub fn ethpipe(&self, database_url: &str) -> Ethpipe {
        Ethpipe::new(env!("CARGO_BIN_EXE_ethpipe"))
            .cwd(self.dir.path())
            .env("ETHPIPE_DATABASE_URL", database_url)
            .env("ETHPIPE_BIGQUERY_ENDPOINT", self.bigquery.endpoint())
            .env(
                "GOOGLE_APPLICATION_CREDENTIALS",
                self.account.path.display().to_string(),
            )
            .env("ETHPIPE_BIGQUERY_PAGE_SIZE", "64")
    }

    pub fn sqlite_path(&self) -> std::path::PathBuf {
        self.dir.path().join("ethpipe.db")
    }

    pub fn sqlite_url(&self) -> String {
        format!("sqlite://{}", self.sqlite_path().display())
    }
}

pub async fn fresh_database() -> TestDatabase {
    TestDatabase::create().await.expect("test database")
}

const TRANSFER_SELECT: &str =
    "SELECT transaction_hash, log_index, token_address, from_address, to_address, value::text,
        (extract(epoch FROM block_timestamp) * 1000000)::bigint, block_number, block_hash
     FROM ethereum.token_transfers";

pub async fn pg_transfers(client: &Client, where_clause: &str) -> Vec<FixtureTransfer> {
    let rows = client
        .query(
            &format!("{TRANSFER_SELECT} {where_clause} ORDER BY transaction_hash, log_index"),
            &[],
        )
        .await
        .expect("read transfers");
    rows.iter()
        .map(|r| FixtureTransfer {
            transaction_hash: r.get(0),
            log_index: r.get(1),
            token_address: r.get(2),
            from_address: r.get(3),
            to_address: r.get(4),
            value: r.get(5),
            block_timestamp_micros: r.get(6),
            block_number: r.get(7),
            block_hash: r.get(8),
        })
        .collect()
}

/// A checksum over every column of every row of the table, in key order.
pub async fn pg_checksum(client: &Client, table: &str, order: &str) -> String {
    client
        .query_one(
            &format!("SELECT coalesce(md5(string_agg(t::text, '|' ORDER BY {order})), 'empty') FROM {table} t"),
            &[],
        )
        .await
        .expect("checksum")
        .get(0)
}

pub fn sqlite_transfers(path: &std::path::Path) -> Vec<FixtureTransfer> {
    let connection = rusqlite::Connection::open(path).expect("open sqlite");
    let mut statement = connection
        .prepare(
            "SELECT transaction_hash, log_index, token_address, from_address, to_address, value,
                    block_timestamp, block_number, block_hash
             FROM token_transfers ORDER BY transaction_hash, log_index",
        )
        .expect("prepare");
    let rows = statement
        .query_map([], |r| {
            let timestamp: String = r.get(6)?;
            Ok(FixtureTransfer {
                transaction_hash: r.get(0)?,
                log_index: r.get(1)?,
                token_address: r.get(2)?,
                from_address: r.get(3)?,
                to_address: r.get(4)?,
                value: r.get(5)?,
                block_timestamp_micros: DateTime::parse_from_rfc3339(&timestamp)
                    .expect("sqlite timestamps are RFC 3339")
                    .timestamp_micros(),
                block_number: r.get(7)?,
                block_hash: r.get(8)?,
            })
        })
        .expect("query");
    rows.collect::<Result<_, _>>().expect("rows")
}

pub async fn pg_tokens(client: &Client, relation: &str) -> Vec<FixtureToken> {
    let rows = client
        .query(
            &format!(
                "SELECT address, block_number, symbol, name, decimals::text, total_supply::text,
                        (extract(epoch FROM block_timestamp) * 1000000)::bigint, block_hash
                 FROM {relation} ORDER BY address, block_number"
            ),
            &[],
        )
        .await
        .expect("read tokens");
    rows.iter()
        .map(|r| FixtureToken {
            address: r.get(0),
            block_number: r.get(1),
            symbol: r.get(2),
            name: r.get(3),
            decimals: r.get(4),
            total_supply: r.get(5),
            block_timestamp_micros: r.get(6),
            block_hash: r.get(7),
        })
        .collect()
}

pub fn sorted<T: Ord + Clone>(rows: &[T]) -> Vec<T> {
    let mut rows = rows.to_vec();
    rows.sort();
    rows
}

/// Rows of `rows` whose timestamp falls in `day`.
pub fn on_day(rows: &[FixtureTransfer], day: &str) -> Vec<FixtureTransfer> {
    let start = ethpipe_testkit::fixtures::day_start_micros(day);
    sorted(
        &rows
            .iter()
            .filter(|t| {
                t.block_timestamp_micros >= start
                    && t.block_timestamp_micros < start + 86_400_000_000
            })
            .cloned()
            .collect::<Vec<_>>(),
    )
}

/// (status, rows_written, source_rows, error) of every run, oldest first.
pub async fn pg_runs(client: &Client) -> Vec<(String, Option<i64>, Option<i64>, Option<String>)> {
    client
        .query(
            "SELECT status, rows_written, source_rows, error FROM ethpipe.runs ORDER BY id",
            &[],
        )
        .await
        .expect("runs")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

pub async fn schema_exists(client: &Client, schema: &str) -> bool {
    client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
            &[&schema],
        )
        .await
        .expect("catalog")
        .get(0)
}

/// Waits (on a condition, bounded) until this client is the only session on
/// its database: a COMMIT sent by a process just killed still lands, so the
/// ledger is read only once that process's sessions are gone.
pub async fn wait_for_other_sessions_to_end(client: &Client) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let others: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .expect("pg_stat_activity")
            .get(0);
        if others == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{others} sessions of a killed process are still open"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
