//! `erc1155_transfers` end to end: the testkit's ERC-1155 scenario on anvil
//! (single and batch transfers, mints, burns, a batch of 50 ids, values up to
//! 2^256−1, malformed logs, a contract emitting both ERC-20 Transfer and
//! TransferSingle), loaded by the real binary from the node and from the
//! BigQuery-compatible server's `logs` table, into PostgreSQL and SQLite. The
//! rows must equal what the testkit computes on its own from the node's
//! receipts, and the skipped logs must be counted.

mod common;

use chrono::{DateTime, NaiveDate, Utc};
use ethpipe_testkit::erc1155::{TRANSFER_BATCH_TOPIC, TRANSFER_SINGLE_TOPIC};
use ethpipe_testkit::{
    Anvil, Chain, Erc1155Row, Erc1155Scenario, Ethpipe, Expected, RpcProxy, TestDatabase,
};
use tokio_postgres::Client;

const PIPELINE: &str = "erc1155_transfers";

fn first_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 3, 1).expect("date")
}

struct Node {
    _anvil: Anvil,
    chain: Chain,
    scenario: Erc1155Scenario,
    url: String,
    dir: tempfile::TempDir,
}

impl Node {
    async fn start() -> Node {
        let (anvil, chain, scenario) = Erc1155Scenario::start(first_day())
            .await
            .expect("the ERC-1155 scenario runs on anvil");
        Node {
            url: anvil.url().to_string(),
            _anvil: anvil,
            chain,
            scenario,
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn ethpipe(&self, database_url: &str) -> Ethpipe {
        self.ethpipe_via(database_url, &self.url)
    }

    /// The binary reading the node at `rpc_url` (e.g. a recording proxy).
    fn ethpipe_via(&self, database_url: &str, rpc_url: &str) -> Ethpipe {
        Ethpipe::new(env!("CARGO_BIN_EXE_ethpipe"))
            .cwd(self.dir.path())
            .env("ETHPIPE_DATABASE_URL", database_url)
            .env("ETHPIPE_SOURCE", "rpc")
            .env("ETHPIPE_RPC_URL", rpc_url)
            // The finality gate is tested in rpc_anvil.rs.
            .env("ETHPIPE_RPC_CONFIRMATIONS", "0")
    }

    /// A BigQuery-compatible server whose `logs` table holds this node's logs.
    async fn bigquery_with_its_logs(&self) -> common::Harness {
        let harness = common::Harness::start().await;
        harness.bigquery.set_logs(
            self.scenario
                .bigquery_logs(&self.chain)
                .await
                .expect("the node's logs as crypto_ethereum.logs rows"),
        );
        harness
    }

    async fn expected(&self) -> Expected {
        self.scenario
            .expected(&self.chain)
            .await
            .expect("rows computed from the receipts")
    }
}

async fn pg_rows(client: &Client) -> Vec<Erc1155Row> {
    client
        .query(
            "SELECT token_address, operator, from_address, to_address, token_id::text, value::text,
                    transaction_hash, log_index, batch_index, block_timestamp, block_number, block_hash
             FROM ethereum.erc1155_transfers ORDER BY block_number, log_index, batch_index",
            &[],
        )
        .await
        .expect("read erc1155_transfers")
        .iter()
        .map(|r| Erc1155Row {
            token_address: r.get(0),
            operator: r.get(1),
            from_address: r.get(2),
            to_address: r.get(3),
            token_id: r.get(4),
            value: r.get(5),
            transaction_hash: r.get(6),
            log_index: r.get(7),
            batch_index: r.get(8),
            block_timestamp: r.get::<_, DateTime<Utc>>(9),
            block_number: r.get(10),
            block_hash: r.get(11),
        })
        .collect()
}

fn sqlite_rows(path: &std::path::Path) -> Vec<Erc1155Row> {
    let connection = rusqlite::Connection::open(path).expect("open sqlite");
    let mut statement = connection
        .prepare(
            "SELECT token_address, operator, from_address, to_address, token_id, value,
                    transaction_hash, log_index, batch_index, block_timestamp, block_number, block_hash
             FROM erc1155_transfers ORDER BY block_number, log_index, batch_index",
        )
        .expect("prepare");
    let rows = statement
        .query_map([], |r| {
            let timestamp: String = r.get(9)?;
            Ok(Erc1155Row {
                token_address: r.get(0)?,
                operator: r.get(1)?,
                from_address: r.get(2)?,
                to_address: r.get(3)?,
                token_id: r.get(4)?,
                value: r.get(5)?,
                transaction_hash: r.get(6)?,
                log_index: r.get(7)?,
                batch_index: r.get(8)?,
                block_timestamp: DateTime::parse_from_rfc3339(&timestamp)
                    .expect("RFC 3339")
                    .with_timezone(&Utc),
                block_number: r.get(10)?,
                block_hash: r.get(11)?,
            })
        })
        .expect("query");
    rows.collect::<Result<_, _>>().expect("rows")
}

/// (rows_written, source_rows, skipped_rows) of each successful run, by day.
async fn pg_runs(client: &Client) -> Vec<(String, i64, i64, i64)> {
    client
        .query(
            "SELECT day::text, rows_written, source_rows, skipped_rows FROM ethpipe.runs
             WHERE pipeline = $1 AND status = 'success' ORDER BY day",
            &[&PIPELINE],
        )
        .await
        .expect("runs")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

fn expected_runs(expected: &Expected, days: [NaiveDate; 2]) -> Vec<(String, i64, i64, i64)> {
    days.iter()
        .map(|day| {
            let of_day = expected.on_day(*day);
            let rows = of_day.rows.len() as i64;
            (day.to_string(), rows, rows, of_day.skipped_count() as i64)
        })
        .collect()
}

fn both_days(expected: &Expected, days: [NaiveDate; 2]) -> Vec<Erc1155Row> {
    let mut rows: Vec<Erc1155Row> = days
        .iter()
        .flat_map(|day| expected.on_day(*day).rows)
        .collect();
    rows.sort_by_key(Erc1155Row::order_key);
    rows
}

#[tokio::test]
async fn rows_from_the_node_equal_the_rows_computed_from_its_receipts() {
    let node = Node::start().await;
    let expected = node.expected().await;
    let days = node.scenario.days();
    let want = both_days(&expected, days);
    // The scenario's shapes, so a weaker scenario cannot pass unnoticed.
    assert!(
        want.iter().any(|r| r.batch_index == 49),
        "a batch of 50 ids"
    );
    assert!(want
        .iter()
        .any(|r| r.from_address == format!("0x{}", "0".repeat(40))));
    assert!(want
        .iter()
        .any(|r| r.to_address == format!("0x{}", "0".repeat(40))));
    assert!(
        expected.skipped_count() > 0,
        "malformed logs in the scenario"
    );

    let database = TestDatabase::create().await.expect("test database");
    let sqlite = node.dir.path().join("erc1155.db");
    let sqlite_url = format!("sqlite://{}", sqlite.display());
    for day in days {
        for url in [&database.url, &sqlite_url] {
            node.ethpipe(url)
                .run(&["run", PIPELINE, "--date", &day.to_string()])
                .await
                .assert_success();
        }
    }
    let client = database.client().await.expect("client");
    assert_eq!(pg_rows(&client).await, want);
    assert_eq!(sqlite_rows(&sqlite), want);
    assert_eq!(pg_runs(&client).await, expected_runs(&expected, days));

    // A re-run replaces the day: same rows, not twice as many.
    node.ethpipe(&database.url)
        .run(&["run", PIPELINE, "--date", &days[0].to_string()])
        .await
        .assert_success();
    assert_eq!(pg_rows(&client).await, want);
}

#[tokio::test]
async fn rows_from_bigquery_logs_equal_the_rows_from_the_node() {
    let node = Node::start().await;
    let expected = node.expected().await;
    let days = node.scenario.days();
    let harness = node.bigquery_with_its_logs().await;
    let database = TestDatabase::create().await.expect("test database");
    for day in days {
        for url in [database.url.clone(), harness.sqlite_url()] {
            harness
                .ethpipe(&url)
                .run(&["run", PIPELINE, "--date", &day.to_string()])
                .await
                .assert_success();
        }
    }
    let want = both_days(&expected, days);
    let client = database.client().await.expect("client");
    assert_eq!(pg_rows(&client).await, want);
    assert_eq!(sqlite_rows(&harness.sqlite_path()), want);
    assert_eq!(pg_runs(&client).await, expected_runs(&expected, days));

    // The topics are a query parameter, not text in the SQL.
    let queries = harness.bigquery.queries();
    let logs_query = queries
        .iter()
        .find(|q| q.sql().contains(".logs`"))
        .expect("a query on crypto_ethereum.logs");
    assert_eq!(
        logs_query.string_array_parameter("topics"),
        Some(vec![
            TRANSFER_SINGLE_TOPIC.to_string(),
            TRANSFER_BATCH_TOPIC.to_string()
        ])
    );
    assert!(!logs_query.sql().contains(TRANSFER_SINGLE_TOPIC));
}

/// The token contract with the most rows in the scenario: a filter on it
/// keeps some rows and leaves others out.
fn busiest_token(expected: &Expected) -> String {
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for row in &expected.rows {
        *counts.entry(row.token_address.as_str()).or_default() += 1;
    }
    let (token, _) = counts
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .expect("the scenario has rows");
    token.to_string()
}

#[tokio::test]
async fn a_token_filter_loads_exactly_its_tokens_rows_from_the_node_and_from_bigquery() {
    let node = Node::start().await;
    let expected = node.expected().await;
    let days = node.scenario.days();
    let token = busiest_token(&expected);
    let filtered = expected.of_tokens(&[&token]);
    let want = both_days(&filtered, days);
    let everything = both_days(&expected, days);
    assert!(
        !want.is_empty() && want.len() < everything.len(),
        "the filter must keep some rows and drop others"
    );
    // Checksummed spelling on the command line: the same address.
    let spelled = format!("0x{}", token[2..].to_uppercase());

    let proxy = RpcProxy::start(&node.url).await.expect("proxy");
    let database = TestDatabase::create().await.expect("test database");
    for day in days {
        node.ethpipe_via(&database.url, &proxy.url())
            .run(&[
                "run",
                PIPELINE,
                "--date",
                &day.to_string(),
                "--tokens",
                &spelled,
            ])
            .await
            .assert_success();
    }
    let client = database.client().await.expect("client");
    assert_eq!(pg_rows(&client).await, want);
    assert_eq!(pg_runs(&client).await, expected_runs(&filtered, days));
    let filters = proxy.params_of("eth_getLogs");
    assert!(!filters.is_empty());
    for params in &filters {
        assert_eq!(params[0]["address"], serde_json::json!([token]), "{params}");
    }

    let harness = node.bigquery_with_its_logs().await;
    let from_bigquery = TestDatabase::create().await.expect("test database");
    for day in days {
        harness
            .ethpipe(&from_bigquery.url)
            .env("ETHPIPE_TOKENS", &token)
            .run(&["run", PIPELINE, "--date", &day.to_string()])
            .await
            .assert_success();
    }
    let client = from_bigquery.client().await.expect("client");
    assert_eq!(pg_rows(&client).await, want);
    assert_eq!(pg_runs(&client).await, expected_runs(&filtered, days));
    let queries = harness.bigquery.queries();
    let logs_query = queries
        .iter()
        .find(|q| q.sql().contains(".logs`"))
        .expect("a query on crypto_ethereum.logs");
    assert_eq!(
        logs_query.string_array_parameter("tokens"),
        Some(vec![token.clone()])
    );
    assert!(
        logs_query.sql().contains("address IN UNNEST(@tokens)"),
        "{}",
        logs_query.sql()
    );
    assert!(!logs_query.sql().contains(&token));
}
