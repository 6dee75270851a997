//! "Loaded means complete" with BigQuery: a day the dataset has not
//! published yet (a partial day, nothing after it) is never recorded
//! `success`, by `run` or by `serve`'s scheduler, and loads whole once the
//! dataset publishes it.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use ethpipe_testkit::fixtures::{day_start_micros, day_transfers};
use tokio_postgres::Client;

const DAY: &str = "2024-03-01";
const HOUR_MICROS: i64 = 3_600_000_000;

async fn count(client: &Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.expect("count").get(0)
}

/// Waits until `sql` counts at least `at_least`, for at most a minute.
async fn wait_until(client: &Client, sql: &str, at_least: i64) {
    let started = Instant::now();
    while count(client, sql).await < at_least {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "timed out waiting for {sql} >= {at_least}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpublished_day_is_refused_by_run_and_loads_whole_once_published() {
    let harness = Harness::start().await;
    let db = fresh_database().await;
    let rows = day_transfers(DAY, 150, 1);
    harness.bigquery.set_transfers(rows.clone());
    // Published up to noon: a partial day, and nothing after it.
    harness
        .bigquery
        .publish_through(day_start_micros(DAY) + 12 * HOUR_MICROS);

    let out = harness
        .ethpipe(&db.url)
        .run(&["run", "token_transfers", "--date", DAY])
        .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("not published yet"), "{}", out.stderr);
    let client = db.client().await.expect("client");
    assert!(pg_transfers(&client, "").await.is_empty());
    let runs = pg_runs(&client).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].0, "failed");
    assert!(runs[0]
        .3
        .as_deref()
        .unwrap_or_default()
        .contains("not published yet"));
    // The check is one query on the next day's partition, the day a parameter.
    let checks = harness.bigquery.publication_checks();
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].scalar_parameter("day"), Some(("DATE", DAY)));
    assert!(!checks[0].sql().contains(DAY));

    harness.bigquery.publish_all();
    harness
        .ethpipe(&db.url)
        .run(&["run", "token_transfers", "--date", DAY])
        .await
        .assert_success();
    assert_eq!(pg_transfers(&client, "").await, sorted(&rows));
    let status = harness.ethpipe(&db.url).run(&["status", "--json"]).await;
    status.assert_success();
    let json: serde_json::Value = serde_json::from_str(&status.stdout).expect("json");
    let runs = json["pipelines"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["pipeline"] == "token_transfers"))
        .map(|p| p["recent_runs"].clone())
        .expect("token_transfers status");
    assert_eq!(runs[0]["status"], "success");
    assert_eq!(runs[0]["gate"], "published");
    assert_eq!(runs[0]["gate_mark"], "data at 2024-03-02 00:00:00 UTC");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_never_records_an_unpublished_day_and_loads_it_once_published() {
    let harness = Harness::start().await;
    let today = chrono::Utc::now().date_naive().to_string();
    let rows = day_transfers(&today, 60, 1);
    harness.bigquery.set_transfers(rows.clone());
    harness
        .bigquery
        .publish_through(day_start_micros(&today) + 6 * HOUR_MICROS);
    std::fs::write(
        harness.dir.path().join("ethpipe.toml"),
        r#"
[[triggers]]
name = "every_second"
pipeline = "token_transfers"
schedule = "* * * * * *"
active = true
day_offset = 0
backoff_seconds = 0
"#,
    )
    .expect("config");
    let db = fresh_database().await;
    harness
        .ethpipe(&db.url)
        .run(&["migrate"])
        .await
        .assert_success();
    let client = db.client().await.expect("client");
    let mut serve = harness
        .ethpipe(&db.url)
        .command(&["serve"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");

    wait_until(
        &client,
        "SELECT count(*) FROM ethpipe.runs WHERE status = 'failed' AND error LIKE '%not published yet%'",
        2,
    )
    .await;
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM ethpipe.runs WHERE status = 'success'"
        )
        .await,
        0
    );
    assert!(pg_transfers(&client, "").await.is_empty());

    harness.bigquery.publish_all();
    wait_until(
        &client,
        "SELECT count(*) FROM ethpipe.runs WHERE status = 'success'",
        1,
    )
    .await;
    serve.kill().await.expect("stop serve");
    assert_eq!(pg_transfers(&client, "").await, sorted(&rows));
    let unpublished_successes = count(
        &client,
        "SELECT count(*) FROM ethpipe.runs WHERE status = 'success' AND rows_written <> 60",
    )
    .await;
    assert_eq!(unpublished_successes, 0);
}
