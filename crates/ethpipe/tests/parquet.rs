//! The Parquet store and `ethpipe export`, read back with DuckDB (the Python
//! package `make python-tools` installs), an independent reader:
//!
//! - days from anvil (a token with 2^256−1 amounts and supply, the ERC-1155
//!   scenario) backfilled into `parquet://` (three days at once) equal the same days backfilled
//!   into PostgreSQL, every column of every row, with the Parquet types the
//!   docs promise; `verify` and `status` work over the files;
//! - `export --format parquet|csv` of days loaded into PostgreSQL and into
//!   SQLite gives files equal to the database's rows;
//! - kill -9 during a file write leaves the previous file intact and no
//!   partial file visible to `*.parquet`; the next run completes the day;
//! - a filtered load (`--tokens`) replaces only its tokens' rows in the
//!   day's file and carries the other tokens' rows over.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use common::*;
use ethpipe_core::dataset::ColumnType;
use ethpipe_core::Pipeline;
use ethpipe_testkit::chain::encode_call;
use ethpipe_testkit::fixtures::day_transfers;
use ethpipe_testkit::{run_python, Anvil, Arg, Chain, Erc1155Scenario, Ethpipe, Faults};
use tokio_postgres::Client;

const MAX_UINT: &str =
    "115792089237316195423570985008687907853269984665640564039457584007913129639935";
const PIPELINES: [&str; 3] = ["tokens", "token_transfers", "erc1155_transfers"];

/// Every cell of every row as text (NULL as `None`), rows sorted.
type Table = Vec<Vec<Option<String>>>;

fn pipeline(name: &str) -> Pipeline {
    name.parse().expect("a registered pipeline")
}

/// PostgreSQL's rows of `[from, to]`, each cell in the one text form both
/// readers can give: uint256 and integers as decimals, timestamps as
/// microseconds since the epoch, booleans as 0/1.
async fn pg_rows(client: &Client, name: &str, from: NaiveDate, to: NaiveDate) -> Table {
    let pipeline = pipeline(name);
    let cells: Vec<String> = pipeline
        .columns()
        .iter()
        .map(|c| match c.kind {
            ColumnType::Timestamp => format!(
                "((extract(epoch FROM {0}) * 1000000)::bigint)::text",
                c.name
            ),
            ColumnType::Bool => format!("({0}::int)::text", c.name),
            _ => format!("{0}::text", c.name),
        })
        .collect();
    let day = pipeline.day_column();
    let sql = format!(
        "SELECT {} FROM ethereum.{name} WHERE {day} >= '{from}' AND {day} < '{}'",
        cells.join(", "),
        to.succ_opt().expect("next day")
    );
    let mut rows: Table = client
        .query(&sql, &[])
        .await
        .expect("read PostgreSQL rows")
        .iter()
        .map(|row| (0..row.len()).map(|i| row.get(i)).collect())
        .collect();
    rows.sort();
    rows
}

/// The rows DuckDB reads from `source` (`read_parquet(…)` or `read_csv(…)`),
/// in the same text form as [`pg_rows`].
async fn duckdb_rows(name: &str, source: &str) -> Table {
    let cells: Vec<String> = pipeline(name)
        .columns()
        .iter()
        .map(|c| match c.kind {
            ColumnType::Timestamp => {
                format!(
                    "CAST(epoch_us(CAST({0} AS TIMESTAMPTZ)) AS VARCHAR)",
                    c.name
                )
            }
            ColumnType::Bool => format!(
                "CAST(CAST(CAST({0} AS BOOLEAN) AS INTEGER) AS VARCHAR)",
                c.name
            ),
            _ => format!("CAST({0} AS VARCHAR)", c.name),
        })
        .collect();
    let mut rows: Table = duckdb(&format!("SELECT {} FROM {source}", cells.join(", "))).await;
    rows.sort();
    rows
}

/// Runs one DuckDB query and returns its rows as text.
async fn duckdb(sql: &str) -> Table {
    const SCRIPT: &str = "import duckdb, json, sys\n\
        rows = duckdb.sql(sys.argv[1]).fetchall()\n\
        print(json.dumps([[None if v is None else str(v) for v in row] for row in rows]))";
    let out = run_python(SCRIPT, &[sql])
        .await
        .unwrap_or_else(|e| panic!("DuckDB query failed: {e:#}\n{sql}"));
    serde_json::from_str(&out).expect("DuckDB's rows as JSON")
}

fn parquet_glob(dir: &Path, name: &str) -> String {
    format!(
        "read_parquet('{}/{name}/date=*/*.parquet', hive_partitioning = false)",
        dir.display()
    )
}

fn csv_glob(dir: &Path, name: &str) -> String {
    format!(
        "read_csv('{}/{name}/date=*/*.csv', header = true, all_varchar = true, allow_quoted_nulls = false)",
        dir.display()
    )
}

/// The files' Parquet types are the documented ones: strings for text and
/// uint256, INT64, TIMESTAMP(MICROS, UTC), BOOLEAN; OPTIONAL exactly where
/// the column is nullable.
async fn assert_parquet_types(file: &Path, name: &str) {
    let described = duckdb(&format!(
        "SELECT column_name, column_type FROM \
         (DESCRIBE SELECT * FROM read_parquet('{}', hive_partitioning = false))",
        file.display()
    ))
    .await;
    let repetition = duckdb(&format!(
        "SELECT name, repetition_type FROM parquet_schema('{}') WHERE type IS NOT NULL",
        file.display()
    ))
    .await;
    let expected_types: Table = pipeline(name)
        .columns()
        .iter()
        .map(|c| {
            let kind = match c.kind {
                ColumnType::Text | ColumnType::Uint => "VARCHAR",
                ColumnType::Int => "BIGINT",
                ColumnType::Timestamp => "TIMESTAMP WITH TIME ZONE",
                ColumnType::Bool => "BOOLEAN",
            };
            vec![Some(c.name.to_string()), Some(kind.to_string())]
        })
        .collect();
    assert_eq!(described, expected_types, "{name}: column types");
    let expected_repetition: Table = pipeline(name)
        .columns()
        .iter()
        .map(|c| {
            let repetition = if c.nullable { "OPTIONAL" } else { "REQUIRED" };
            vec![Some(c.name.to_string()), Some(repetition.to_string())]
        })
        .collect();
    assert_eq!(repetition, expected_repetition, "{name}: nullability");
}

/// A chain whose days hold a token with 2^256−1 transfers and supply
/// (the day before the scenario) and the ERC-1155 scenario's two days.
struct Node {
    _anvil: Anvil,
    url: String,
    days: [NaiveDate; 3],
    dir: tempfile::TempDir,
}

impl Node {
    async fn start() -> Node {
        let first_day = NaiveDate::from_ymd_opt(2024, 3, 1).expect("date");
        let anvil = Anvil::start_at(Erc1155Scenario::genesis_timestamp(first_day))
            .await
            .expect("anvil starts");
        let chain = anvil.chain().await.expect("chain");
        max_uint_token(&chain).await;
        let scenario = Erc1155Scenario::run(&chain, first_day)
            .await
            .expect("the ERC-1155 scenario runs");
        let day_before = first_day.pred_opt().expect("date");
        Node {
            url: anvil.url().to_string(),
            _anvil: anvil,
            days: [day_before, scenario.first_day, scenario.second_day],
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn ethpipe(&self, database_url: &str) -> Ethpipe {
        Ethpipe::new(env!("CARGO_BIN_EXE_ethpipe"))
            .cwd(self.dir.path())
            .env("ETHPIPE_DATABASE_URL", database_url)
            .env("ETHPIPE_SOURCE", "rpc")
            .env("ETHPIPE_RPC_URL", &self.url)
            // The finality gate is tested in rpc_anvil.rs.
            .env("ETHPIPE_RPC_CONFIRMATIONS", "0")
    }

    fn range(&self) -> (String, String) {
        (self.days[0].to_string(), self.days[2].to_string())
    }

    async fn backfill_all(&self, database_url: &str, parallel: &str) {
        let (from, to) = self.range();
        for name in PIPELINES {
            self.ethpipe(database_url)
                .run(&[
                    "backfill",
                    name,
                    "--from",
                    &from,
                    "--to",
                    &to,
                    "--parallel",
                    parallel,
                ])
                .await
                .assert_success();
        }
    }

    async fn export(&self, database_url: &str, format: &str, out: &Path) {
        let (from, to) = self.range();
        let out = out.display().to_string();
        for name in PIPELINES {
            self.ethpipe(database_url)
                .run(&[
                    "export",
                    name,
                    "--format",
                    format,
                    "--from",
                    &from,
                    "--to",
                    &to,
                    "--out-dir",
                    &out,
                ])
                .await
                .assert_success();
        }
    }
}

/// Deploys a token with no supply, mints 2^256−1 and moves it on.
async fn max_uint_token(chain: &Chain) {
    let token = chain
        .deploy(
            "StandardToken",
            &[
                Arg::string("Max token"),
                Arg::string("MAX"),
                Arg::uint(18),
                Arg::uint(0),
            ],
        )
        .await
        .expect("deploy StandardToken");
    let sender = chain.sender().to_string();
    let calls = [
        encode_call(
            "mint(address,uint256)",
            &[Arg::address(&sender), Arg::max_uint()],
        ),
        encode_call(
            "transfer(address,uint256)",
            &[
                Arg::address("0x00000000000000000000000000000000000000b0"),
                Arg::max_uint(),
            ],
        ),
    ];
    for call in calls {
        let sent = chain.send(&token, &call).await.expect("send");
        assert!(sent.succeeded(), "the max-value token call succeeds");
    }
}

fn day_files(dir: &Path, name: &str, days: &[NaiveDate], extension: &str) -> Vec<PathBuf> {
    days.iter()
        .map(|day| dir.join(format!("{name}/date={day}/data.{extension}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parquet_backfill_equals_the_postgresql_load_and_exports_equal_the_databases() {
    let node = Node::start().await;
    let database = fresh_database().await;
    let client = database.client().await.expect("client");
    let files = node.dir.path().join("data");
    let parquet_url = format!("parquet://{}", files.display());
    let sqlite_url = format!("sqlite://{}", node.dir.path().join("loaded.db").display());
    node.backfill_all(&database.url, "1").await;
    // Files lock per day, so their days are written at once.
    node.backfill_all(&parquet_url, "3").await;
    node.backfill_all(&sqlite_url, "1").await;
    let (first, last) = (node.days[0], node.days[2]);

    for name in PIPELINES {
        let expected = pg_rows(&client, name, first, last).await;
        assert!(!expected.is_empty(), "{name}: the chain has rows");
        let from_files = duckdb_rows(name, &parquet_glob(&files, name)).await;
        assert_eq!(from_files, expected, "{name}: Parquet store vs PostgreSQL");
        for file in day_files(&files, name, &node.days, "parquet") {
            assert!(
                file.is_file(),
                "{} exists (an empty day too)",
                file.display()
            );
            assert_parquet_types(&file, name).await;
        }
    }
    for name in ["token_transfers", "erc1155_transfers"] {
        let rows = pg_rows(&client, name, first, last).await;
        assert!(
            rows.iter()
                .flatten()
                .any(|cell| cell.as_deref() == Some(MAX_UINT)),
            "{name} holds 2^256-1"
        );
    }
    let tokens = pg_rows(&client, "tokens", first, last).await;
    assert!(tokens
        .iter()
        .flatten()
        .any(|c| c.as_deref() == Some(MAX_UINT)));
    assert!(
        files.join("_ethpipe.db").is_file(),
        "the ledger is beside the files"
    );

    // verify and status go through the Sink and Ledger contracts unchanged.
    let (from, to) = node.range();
    node.ethpipe(&parquet_url)
        .run(&[
            "verify",
            "--pipeline",
            "token_transfers",
            "--from",
            &from,
            "--to",
            &to,
        ])
        .await
        .assert_success();
    let status = node.ethpipe(&parquet_url).run(&["status", "--json"]).await;
    status.assert_success();
    assert!(
        status.stdout.contains("erc1155_transfers"),
        "{}",
        status.stdout
    );

    // export: from PostgreSQL and from SQLite, as Parquet and as CSV.
    for (label, url) in [("postgres", &database.url), ("sqlite", &sqlite_url)] {
        for format in ["parquet", "csv"] {
            let out = node.dir.path().join(format!("export-{label}-{format}"));
            node.export(url, format, &out).await;
            for name in PIPELINES {
                let expected = pg_rows(&client, name, first, last).await;
                let source = match format {
                    "parquet" => parquet_glob(&out, name),
                    _ => csv_glob(&out, name),
                };
                assert_eq!(
                    duckdb_rows(name, &source).await,
                    expected,
                    "{name}: export from {label} as {format}"
                );
                for file in day_files(&out, name, &node.days, format) {
                    assert!(file.is_file(), "{} exists", file.display());
                }
            }
        }
    }
}

const DAY: &str = "2024-03-01";

/// Names in a day's folder other than the finished file.
fn others_in(folder: &Path) -> Vec<String> {
    std::fs::read_dir(folder)
        .expect("day folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name != "data.parquet")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_file_write_leaves_the_previous_file() {
    let harness = Harness::start().await;
    let files = harness.dir.path().join("data");
    let url = format!("parquet://{}", files.display());
    let folder = files.join(format!("token_transfers/date={DAY}"));
    let file = folder.join("data.parquet");
    let (old, new) = (day_transfers(DAY, 150, 1), day_transfers(DAY, 190, 2));

    harness.bigquery.set_transfers(old.clone());
    harness
        .ethpipe(&url)
        .run(&["run", "token_transfers", "--date", DAY])
        .await
        .assert_success();
    let before = std::fs::read(&file).expect("the first file");
    let glob = parquet_glob(&files, "token_transfers");
    let count = || async { duckdb(&format!("SELECT count(*) FROM {glob}")).await[0][0].clone() };
    assert_eq!(count().await.as_deref(), Some("150"));

    // A slow server keeps the run inside the write; the kill lands once its
    // temporary file is there.
    harness.bigquery.set_transfers(new.clone());
    harness.bigquery.set_faults(Faults {
        page_delay: Some(Duration::from_millis(200)),
        ..Faults::default()
    });
    let mut child = harness
        .ethpipe(&url)
        .command(&["run", "token_transfers", "--date", DAY])
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(30);
    while others_in(&folder).is_empty() {
        assert!(Instant::now() < deadline, "the run never started its file");
        assert!(
            child.try_wait().expect("child").is_none(),
            "the run ended before the kill"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.start_kill().expect("kill -9");
    let status = child.wait().await.expect("wait");
    assert!(!status.success(), "killed, not finished");

    assert_eq!(
        std::fs::read(&file).expect("the old file"),
        before,
        "the previous file is intact"
    );
    let left = others_in(&folder);
    assert!(
        !left.is_empty()
            && left
                .iter()
                .all(|n| n.starts_with('.') && !n.ends_with(".parquet")),
        "only a hidden temporary file is left, invisible to *.parquet: {left:?}"
    );
    assert_eq!(
        count().await.as_deref(),
        Some("150"),
        "readers see the old day"
    );

    harness.bigquery.set_faults(Faults::default());
    harness
        .ethpipe(&url)
        .run(&["run", "token_transfers", "--date", DAY])
        .await
        .assert_success();
    assert_eq!(
        count().await.as_deref(),
        Some("190"),
        "the next run completes the day"
    );
    assert_eq!(
        others_in(&folder),
        Vec::<String>::new(),
        "no temporary file is left"
    );
    let ledger = rusqlite::Connection::open(files.join("_ethpipe.db")).expect("ledger");
    let statuses: Vec<String> = ledger
        .prepare("SELECT status FROM ethpipe_runs ORDER BY id")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(
        statuses,
        ["success", "failed", "success"],
        "the killed run is closed as failed"
    );
}

/// The day's (token, transaction hash, log index) keys of `rows`, sorted.
fn keys_of(rows: &[ethpipe_testkit::FixtureTransfer], tokens: &[&str]) -> Table {
    let mut keys: Table = rows
        .iter()
        .filter(|t| tokens.contains(&t.token_address.as_str()))
        .map(|t| {
            vec![
                Some(t.token_address.clone()),
                Some(t.transaction_hash.clone()),
                Some(t.log_index.to_string()),
            ]
        })
        .collect();
    keys.sort();
    keys
}

/// The (token, transaction hash, log index) keys DuckDB reads from the
/// token_transfers files, sorted.
async fn file_keys(files: &Path) -> Table {
    let mut keys = duckdb(&format!(
        "SELECT token_address, transaction_hash, CAST(log_index AS VARCHAR) FROM {}",
        parquet_glob(files, "token_transfers")
    ))
    .await;
    keys.sort();
    keys
}

/// `ethpipe run token_transfers --date DAY --tokens TOKENS` (a run always
/// loads its day, loaded or not).
async fn load_filtered(harness: &Harness, url: &str, tokens: &str) {
    harness
        .ethpipe(url)
        .run(&["run", "token_transfers", "--date", DAY, "--tokens", tokens])
        .await
        .assert_success();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_load_replaces_only_its_tokens_rows_in_the_days_file() {
    let harness = Harness::start().await;
    let files = harness.dir.path().join("data");
    let url = format!("parquet://{}", files.display());
    let mut rows = day_transfers(DAY, 150, 1);
    let tokens: Vec<String> = rows
        .iter()
        .map(|t| t.token_address.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert!(tokens.len() >= 3, "the fixture day has several tokens");
    let (a, b) = (tokens[0].as_str(), tokens[1].as_str());
    harness.bigquery.set_transfers(rows.clone());
    load_filtered(&harness, &url, a).await;
    assert_eq!(
        file_keys(&files).await,
        keys_of(&rows, &[a]),
        "only A's rows"
    );

    load_filtered(&harness, &url, b).await;
    assert_eq!(
        file_keys(&files).await,
        keys_of(&rows, &[a, b]),
        "B's rows added, A's carried over from the old file"
    );

    // The source now has fewer rows of A: loading A again replaces A's rows
    // and keeps B's.
    let mut dropped = 0;
    rows.retain(|t| {
        let drop = t.token_address == a && dropped < 3;
        dropped += usize::from(drop);
        !drop
    });
    assert_eq!(dropped, 3, "A had rows to drop");
    harness.bigquery.set_transfers(rows.clone());
    load_filtered(&harness, &url, a).await;
    assert_eq!(
        file_keys(&files).await,
        keys_of(&rows, &[a, b]),
        "A replaced, B kept, nothing twice"
    );
}
