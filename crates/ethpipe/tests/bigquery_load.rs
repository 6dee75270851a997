//! One day from the BigQuery-compatible server into real PostgreSQL and
//! SQLite: exact rows, idempotent re-runs, failures that keep the previous
//! version of a day, tokens' first-run full load, and the query's shape.

mod common;

use common::*;
use ethpipe_testkit::fixtures::{self, day_transfers};
use ethpipe_testkit::Faults;

const DAY: &str = "2024-03-01";
const NEXT_DAY: &str = "2024-03-02";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_page_day_loads_exactly_into_postgres() {
    let harness = Harness::start().await;
    let db = fresh_database().await;
    let mut rows = day_transfers(DAY, 300, 1);
    rows.extend(day_transfers(NEXT_DAY, 50, 1));
    // Rows of the neighbouring days at the exact boundaries must stay out.
    rows.extend(day_transfers("2024-02-29", 6, 1));
    harness.bigquery.set_transfers(rows.clone());

    let out = harness
        .ethpipe(&db.url)
        .run(&["run", "token_transfers", "--date", DAY])
        .await;
    out.assert_success();
    assert!(out.stdout.contains("300 rows committed"), "{}", out.stdout);

    let client = db.client().await.unwrap();
    let loaded = pg_transfers(&client, "").await;
    assert_eq!(loaded, on_day(&rows, DAY));
    // The edge cases survived exactly.
    assert!(loaded.iter().any(|t| t.from_address.is_none()));
    assert!(loaded.iter().any(|t| t.to_address.is_none()));
    assert!(loaded
        .iter()
        .any(|t| t.value.as_deref() == Some(fixtures::UINT256_MAX)));
    assert!(loaded.iter().any(|t| t.value.as_deref() == Some("0")));
    let start = fixtures::day_start_micros(DAY);
    assert!(loaded.iter().any(|t| t.block_timestamp_micros == start));
    assert!(loaded
        .iter()
        .any(|t| t.block_timestamp_micros == start + 86_400_000_000 - 1));
    // Several pages were read (64 rows each).
    assert!(
        harness
            .bigquery
            .page_requests()
            .iter()
            .filter(|p| p.contains_key("pageToken"))
            .count()
            >= 4
    );
    assert_eq!(
        pg_runs(&client).await,
        vec![("success".into(), Some(300), Some(300), None)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_page_day_loads_exactly_into_sqlite() {
    let harness = Harness::start().await;
    let mut rows = day_transfers(DAY, 300, 1);
    rows.extend(day_transfers(NEXT_DAY, 40, 1));
    harness.bigquery.set_transfers(rows.clone());

    harness
        .ethpipe(&harness.sqlite_url())
        .run(&["run", "token_transfers", "--date", DAY])
        .await
        .assert_success();
    assert_eq!(sqlite_transfers(&harness.sqlite_path()), on_day(&rows, DAY));

    // Same day again: identical; the next day does not touch the first.
    harness
        .ethpipe(&harness.sqlite_url())
        .run(&["run", "token_transfers", "--date", DAY])
        .await
        .assert_success();
    assert_eq!(sqlite_transfers(&harness.sqlite_path()), on_day(&rows, DAY));
    harness
        .ethpipe(&harness.sqlite_url())
        .run(&["run", "token_transfers", "--date", NEXT_DAY])
        .await
        .assert_success();
    assert_eq!(sqlite_transfers(&harness.sqlite_path()), sorted(&rows));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_database_is_sqlite_in_the_working_directory() {
    let harness = Harness::start().await;
    harness.bigquery.set_transfers(day_transfers(DAY, 10, 1));
    let out = ethpipe_testkit::Ethpipe::new(env!("CARGO_BIN_EXE_ethpipe"))
        .cwd(harness.dir.path())
        .env("ETHPIPE_BIGQUERY_ENDPOINT", harness.bigquery.endpoint())
        .env(
            "GOOGLE_APPLICATION_CREDENTIALS",
            harness.account.path.display().to_string(),
        )
        .run(&["run", "token_transfers", "--date", DAY])
        .await;
    out.assert_success();
    assert_eq!(
        sqlite_transfers(&harness.dir.path().join("ethpipe.db")).len(),
        10
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerunning_a_day_is_identical_and_the_next_day_leaves_it_alone() {
    let harness = Harness::start().await;
    let db = fresh_database().await;
    let mut rows = day_transfers(DAY, 200, 1);
    rows.extend(day_transfers(NEXT_DAY, 120, 1));
    harness.bigquery.set_transfers(rows.clone());
    let client = db.client().await.unwrap();
    let order = "transaction_hash, log_index";

    harness
        .ethpipe(&db.url)
        .run(&["run", "token_transfers", "--date", DAY])
        .await
        .assert_success();
    let first = pg_checksum(&client, "ethereum.token_transfers", order).await;
    harness
        .ethpipe(&db.url)
        .run(&["run", "token_transfers", "--date", DAY])
        .await
        .assert_success();
    assert_eq!(
        pg_checksum(&client, "ethereum.token_transfers", order).await,
        first
    );
    assert_eq!(pg_transfers(&client, "").await.len(), 200);

    harness
        .ethpipe(&db.url)
        .run(&["run", "token_transfers", "--date", NEXT_DAY])
        .await
        .assert_success();
    let day_only = format!("WHERE block_timestamp < '{NEXT_DAY}T00:00:00Z'");
    assert_eq!(pg_transfers(&client, &day_only).await, on_day(&rows, DAY));
    assert_eq!(pg_transfers(&client, "").await, sorted(&rows));
    let duplicates: i64 = client
        .query_one(
            "SELECT count(*) FROM (SELECT 1 FROM ethereum.token_transfers GROUP BY transaction_hash, log_index HAVING count(*) > 1) d",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(duplicates, 0);
    let attempts: Vec<i32> = client
        .query("SELECT attempt FROM ethpipe.runs ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(attempts, vec![1, 2, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_mid_day_keeps_the_previous_version() {
    let harness = Harness::start().await;
    let db = fresh_database().await;
    let client = db.client().await.unwrap();
    let version_one = day_transfers(DAY, 300, 1);
    let version_two = day_transfers(DAY, 280, 2);
    assert_ne!(sorted(&version_one), sorted(&version_two));

    harness.bigquery.set_transfers(version_one.clone());
    harness
        .ethpipe(&db.url)
        .run(&["run", "token_transfers", "--date", DAY])
        .await
        .assert_success();

    // The source now has a new version of the day but cuts every answer for page 3.
    harness.bigquery.set_transfers(version_two.clone());
    harness.bigquery.set_faults(Faults {
        drop_connection_on_page: Some((3, u32::MAX)),
        ..Faults::default()
    });
    let out = harness
        .ethpipe(&db.url)
        .run(&["run", "token_transfers", "--date", DAY])
        .await;
    assert_eq!(out.code, 1, "{out:?}");
    let error_lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(error_lines.len(), 1, "one error line: {}", out.stderr);
    assert_eq!(
        out.stderr.trim_end().lines().last(),
        error_lines.first().copied()
    );
    assert!(
        out.stderr.contains("token_transfers 2024-03-01 failed"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("page 3") && out.stderr.contains("after 3 attempts"),
        "{}",
        out.stderr
    );
    assert_eq!(pg_transfers(&client, "").await, sorted(&version_one));
    let runs = pg_runs(&client).await;
    assert_eq!(runs[1].0, "failed");
    assert!(runs[1].3.as_deref().unwrap_or_default().contains("page 3"));

    // The fault clears: the re-run completes with the new version.
    harness.bigquery.set_faults(Faults::default());
    harness
        .ethpipe(&db.url)
        .run(&["run", "token_transfers", "--date", DAY])
        .await
        .assert_success();
    assert_eq!(pg_transfers(&client, "").await, sorted(&version_two));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_faults_are_retried_and_unfinished_jobs_are_polled() {
    let harness = Harness::start().await;
    let db = fresh_database().await;
    let rows = day_transfers(DAY, 200, 1);
    harness.bigquery.set_transfers(rows.clone());
    harness.bigquery.set_faults(Faults {
        drop_connection_on_page: Some((2, 1)),
        status_on_page: Some((3, 429, 1)),
        incomplete_polls: 2,
        ..Faults::default()
    });
    harness
        .ethpipe(&db.url)
        .run(&["run", "token_transfers", "--date", DAY])
        .await
        .assert_success();
    let client = db.client().await.unwrap();
    assert_eq!(pg_transfers(&client, "").await, sorted(&rows));
    // jobs.query answered "not complete", then two polls without a page token.
    let polls = harness
        .bigquery
        .page_requests()
        .iter()
        .filter(|p| !p.contains_key("pageToken"))
        .count();
    assert_eq!(polls, 2);

    harness.bigquery.set_faults(Faults {
        status_on_page: Some((2, 500, 1)),
        ..Faults::default()
    });
    harness
        .ethpipe(&db.url)
        .run(&["run", "token_transfers", "--date", DAY])
        .await
        .assert_success();
    assert_eq!(pg_transfers(&client, "").await, sorted(&rows));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_filters_the_partition_column_with_a_day_parameter() {
    let harness = Harness::start().await;
    let db = fresh_database().await;
    harness.bigquery.set_transfers(day_transfers(DAY, 10, 1));
    harness
        .ethpipe(&db.url)
        .run(&["run", "token_transfers", "--date", DAY])
        .await
        .assert_success();

    let queries = harness.bigquery.queries();
    assert_eq!(queries.len(), 1);
    let body = &queries[0].body;
    let sql = body["query"].as_str().unwrap();
    assert!(
        !sql.contains(DAY),
        "the day must not be formatted into the SQL: {sql}"
    );
    assert!(
        sql.contains("WHERE block_timestamp >= TIMESTAMP(@day)"),
        "{sql}"
    );
    assert!(
        sql.contains("block_timestamp < TIMESTAMP_ADD(TIMESTAMP(@day), INTERVAL 1 DAY)"),
        "{sql}"
    );
    assert!(
        sql.contains("`bigquery-public-data.crypto_ethereum.token_transfers`"),
        "{sql}"
    );
    assert_eq!(body["useLegacySql"], serde_json::json!(false));
    assert_eq!(body["parameterMode"], "NAMED");
    assert_eq!(body["queryParameters"][0]["name"], "day");
    assert_eq!(body["queryParameters"][0]["parameterType"]["type"], "DATE");
    assert_eq!(body["queryParameters"][0]["parameterValue"]["value"], DAY);
    assert_eq!(body["formatOptions"]["useInt64Timestamp"], true);
    // The key was exchanged at its token_uri with a signed JWT.
    assert_eq!(harness.bigquery.token_exchanges(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_load_the_whole_table_first_then_one_day_per_run() {
    let harness = Harness::start().await;
    let db = fresh_database().await;
    let client = db.client().await.unwrap();
    let days = ["2024-02-27", "2024-02-28", "2024-02-29"];
    let all = fixtures::tokens(&days);
    harness.bigquery.set_tokens(all.clone());

    // First run, whatever the day: the full load.
    let out = harness
        .ethpipe(&db.url)
        .run(&["run", "tokens", "--date", "2024-02-28"])
        .await;
    out.assert_success();
    assert!(out.stdout.contains("full load"), "{}", out.stdout);
    let expected: Vec<_> = sorted(&all.iter().map(|t| t.expected()).collect::<Vec<_>>());
    assert_eq!(pg_tokens(&client, "ethereum.tokens").await, expected);
    let flag: String = client
        .query_one("SELECT value FROM ethpipe.variables WHERE pipeline = 'tokens' AND name = 'full_load_done'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(flag, "true");
    assert!(harness.bigquery.queries()[0]
        .body
        .get("queryParameters")
        .is_none_or(|p| p.as_array().is_some_and(|a| a.is_empty())));

    // A redeployed address keeps both rows; tokens_latest has one per address.
    let redeployed = &all[0].address;
    let both = pg_tokens(&client, "ethereum.tokens")
        .await
        .into_iter()
        .filter(|t| &t.address == redeployed)
        .count();
    assert_eq!(both, 2);
    let latest = pg_tokens(&client, "ethereum.tokens_latest").await;
    let addresses: std::collections::BTreeSet<_> = all.iter().map(|t| t.address.clone()).collect();
    assert_eq!(latest.len(), addresses.len());
    let latest_redeployed = latest.iter().find(|t| &t.address == redeployed).unwrap();
    assert_eq!(latest_redeployed.symbol.as_deref(), Some("TK0v2"));

    // Later runs load one day: a new token on 2024-03-01 arrives, the rest is untouched.
    let mut with_new = all.clone();
    let mut new_token = fixtures::tokens(&["2024-03-01"])[0].clone();
    new_token.address = format!("0x{}", "ab".repeat(20));
    with_new.push(new_token.clone());
    harness.bigquery.set_tokens(with_new.clone());
    harness
        .ethpipe(&db.url)
        .run(&["run", "tokens", "--date", "2024-03-01"])
        .await
        .assert_success();
    let second = &harness.bigquery.queries()[1].body;
    assert_eq!(
        second["queryParameters"][0]["parameterValue"]["value"],
        "2024-03-01"
    );
    let mut expected_after = expected.clone();
    expected_after.push(new_token.expected());
    assert_eq!(
        pg_tokens(&client, "ethereum.tokens").await,
        sorted(&expected_after)
    );
    let days_in_ledger: Vec<Option<String>> = client
        .query("SELECT day::text FROM ethpipe.runs ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(days_in_ledger, vec![None, Some("2024-03-01".to_string())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_full_load_leaves_the_first_run_flag_unset() {
    let harness = Harness::start().await;
    let db = fresh_database().await;
    let client = db.client().await.unwrap();
    harness
        .bigquery
        .set_tokens(fixtures::tokens(&["2024-02-27", "2024-02-28"]));
    harness.bigquery.set_faults(Faults {
        status_on_page: Some((1, 503, u32::MAX)),
        page_size_cap: Some(2),
        ..Faults::default()
    });
    let out = harness
        .ethpipe(&db.url)
        .run(&["run", "tokens", "--full"])
        .await;
    assert_eq!(out.code, 1, "{out:?}");
    let flag = client
        .query_opt(
            "SELECT value FROM ethpipe.variables WHERE name = 'full_load_done'",
            &[],
        )
        .await
        .unwrap();
    assert!(flag.is_none());
    assert!(pg_tokens(&client, "ethereum.tokens").await.is_empty());

    harness.bigquery.set_faults(Faults::default());
    harness
        .ethpipe(&db.url)
        .run(&["run", "tokens", "--date", "2024-02-28"])
        .await
        .assert_success();
    assert_eq!(pg_tokens(&client, "ethereum.tokens").await.len(), 4);
}
