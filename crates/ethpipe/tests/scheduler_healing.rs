//! `ethpipe serve` is crash-only: a PostgreSQL restart, a SIGTERM or a
//! kill -9 of the leader mid-run, and a restart under a dashboard backfill
//! only delay days. The scheduler reconciles with the ledger, so whoever
//! leads next loads what is still due, exactly once
//! (docs/orchestration.md, docs/reliability.md faults 1, 2 and 11).

mod common;

use std::time::Duration;

use chrono::{Duration as ChronoDuration, Utc};
use common::*;
use ethpipe_testkit::fixtures::day_transfers;
use ethpipe_testkit::serve::{wait_for, Replica};
use ethpipe_testkit::{Faults, PrivatePostgres, TestDatabase};
use tokio_postgres::{Client, NoTls};

const ROWS_PER_DAY: usize = 40;
const LONG: Duration = Duration::from_secs(120);

fn day(n: i64) -> String {
    (Utc::now() - ChronoDuration::days(n))
        .date_naive()
        .to_string()
}

/// `days` past days of transfers, and a few rows of today (the dataset has
/// data past each loaded day's end, as a published day does).
fn publish_days(harness: &Harness, days: i64) {
    let mut rows = Vec::new();
    for n in 1..=days {
        rows.extend(day_transfers(&day(n), ROWS_PER_DAY, 1));
    }
    rows.extend(day_transfers(&day(0), 6, 1));
    harness.bigquery.set_transfers(rows);
}

/// Pages of 5 rows, each answered after `delay`: a day takes a while to load.
fn slow_source(harness: &Harness, delay: Duration) {
    harness.bigquery.set_faults(Faults {
        page_size_cap: Some(5),
        page_delay: Some(delay),
        ..Faults::default()
    });
}

/// A trigger every 10 seconds loading yesterday's day (offset 1).
fn every_ten_seconds(harness: &Harness, catchup_days: u32) {
    let config = format!(
        r#"
[[triggers]]
name = "every10"
pipeline = "token_transfers"
schedule = "*/10 * * * * *"
active = true
day_offset = 1
catchup_days = {catchup_days}
max_attempts = 5
backoff_seconds = 1
"#
    );
    std::fs::write(harness.dir.path().join("ethpipe.toml"), config).unwrap();
}

async fn connect(url: &str) -> Option<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.ok()?;
    tokio::spawn(connection);
    Some(client)
}

async fn count(client: &Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

/// A fresh database at `url` with the schema and the triggers, and a
/// trigger that has owed days since `owed_since_days` ago.
async fn prepare(harness: &Harness, url: &str, owed_since_days: i64) -> Client {
    harness
        .ethpipe(url)
        .run(&["trigger", "list"])
        .await
        .assert_success();
    let client = connect(url).await.expect("the database answers");
    client
        .execute(
            "UPDATE ethpipe.triggers SET active_since = now() - make_interval(days => $1)",
            &[&(owed_since_days as i32)],
        )
        .await
        .unwrap();
    client
}

/// Per day: successful runs and rows in the table.
async fn loaded_days(client: &Client) -> Vec<(String, i64, i64)> {
    client
        .query(
            "SELECT d::text,
                    (SELECT count(*) FROM ethpipe.runs r WHERE r.day = d AND r.status = 'success'),
                    (SELECT count(*) FROM ethereum.token_transfers t
                      WHERE t.block_timestamp >= d AND t.block_timestamp < d + 1)
             FROM (SELECT DISTINCT day AS d FROM ethpipe.runs) days ORDER BY d",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// Every owed day loaded by exactly one successful run with all its rows,
/// and no run left `running`.
async fn assert_each_day_loaded_once(client: &Client, owed: &[String]) {
    let loaded = loaded_days(client).await;
    let expected: Vec<(String, i64, i64)> = owed
        .iter()
        .map(|d| (d.clone(), 1, ROWS_PER_DAY as i64))
        .collect();
    assert_eq!(loaded, expected, "each due day loaded exactly once");
    assert_eq!(
        count(
            client,
            "SELECT count(*) FROM ethpipe.runs WHERE status = 'running'"
        )
        .await,
        0,
        "no run left running"
    );
}

async fn all_loaded(client: &Client, days: usize) -> bool {
    count(
        client,
        "SELECT count(DISTINCT day) FROM ethpipe.runs WHERE status = 'success'",
    )
    .await
        >= days as i64
}

/// A run of the trigger is `running` and has streamed rows.
async fn mid_run(client: &Client) -> Option<i64> {
    client
        .query_opt(
            "SELECT id FROM ethpipe.runs WHERE status = 'running' AND rows_written > 0 LIMIT 1",
            &[],
        )
        .await
        .ok()
        .flatten()
        .map(|r| r.get(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_under_two_replicas_delays_days_but_loads_each_once() {
    let harness = Harness::start().await;
    publish_days(&harness, 3);
    slow_source(&harness, Duration::from_millis(150));
    every_ten_seconds(&harness, 3);
    let server = PrivatePostgres::start().expect("a private PostgreSQL");
    let url = server.create_database("healing").await.unwrap();
    // Owed since three days ago: slots on three dates, yesterday and the two before.
    let client = prepare(&harness, &url, 2).await;
    let owed = vec![day(3), day(2), day(1)];
    let replicas = [
        Replica::start(harness.ethpipe(&url)).await,
        Replica::start(harness.ethpipe(&url)).await,
    ];
    wait_for("a run in the middle of its day", LONG, || async {
        mid_run(&client).await.is_some()
    })
    .await;
    drop(client);

    server.stop().expect("PostgreSQL stops");
    for replica in &replicas {
        wait_for("/readyz to say not ready", LONG, || async {
            let (status, body) = replica.readyz().await;
            status == 503 && body["database"]["ok"] == false
        })
        .await;
    }
    server.resume().expect("PostgreSQL starts again");
    for replica in &replicas {
        wait_for("/readyz to say ready again", LONG, || async {
            replica.readyz().await.0 == 200
        })
        .await;
    }
    let client = connect(&url).await.expect("the database is back");
    wait_for("every due day loaded", LONG, || all_loaded(&client, 3)).await;
    // The run cut by the restart is closed, as failed, by whoever looked next.
    wait_for("no run left running", LONG, || async {
        count(
            &client,
            "SELECT count(*) FROM ethpipe.runs WHERE status = 'running'",
        )
        .await
            == 0
    })
    .await;
    let mut reconnects = 0.0;
    for replica in &replicas {
        reconnects += replica
            .metric("ethpipe_scheduler_reconnects_total")
            .await
            .unwrap_or(0.0);
    }
    let [first, second] = replicas;
    let (first_log, second_log) = tokio::join!(first.terminate(), second.terminate());
    assert!(
        reconnects >= 1.0,
        "the schedulers counted their reconnects: {first_log}\n{second_log}"
    );
    assert_each_day_loaded_once(&client, &owed).await;
    assert!(
        count(
            &client,
            "SELECT count(*) FROM ethpipe.runs WHERE status = 'failed'"
        )
        .await
            >= 1,
        "the run the restart cut is recorded as failed"
    );
}

/// Two replicas on the shared server; the leader is stopped by `stop` in
/// the middle of a run. The other one takes over and loads the day.
async fn leader_stops_mid_run(kill: bool) {
    let harness = Harness::start().await;
    publish_days(&harness, 1);
    slow_source(&harness, Duration::from_millis(300));
    every_ten_seconds(&harness, 1);
    let db = TestDatabase::create().await.unwrap();
    let client = prepare(&harness, &db.url, 0).await;
    let first = Replica::start(harness.ethpipe(&db.url)).await;
    let second = Replica::start(harness.ethpipe(&db.url)).await;
    wait_for("a run in the middle of its day", LONG, || async {
        mid_run(&client).await.is_some()
    })
    .await;
    let interrupted = mid_run(&client).await.expect("still running");
    let (leader, standby) = if first.is_leader().await {
        (first, second)
    } else {
        (second, first)
    };
    assert!(!standby.is_leader().await, "one leader");
    if kill {
        leader.kill().await;
    } else {
        leader.terminate().await;
    }
    wait_for("the standby to lead", LONG, || standby.is_leader()).await;
    wait_for("yesterday loaded", LONG, || all_loaded(&client, 1)).await;
    standby.terminate().await;

    let (status, error): (String, Option<String>) = client
        .query_one(
            "SELECT status, error FROM ethpipe.runs WHERE id = $1",
            &[&interrupted],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(status, "failed", "the interrupted run: {error:?}");
    let reason = error.unwrap_or_default();
    let expected = if kill { "abandoned" } else { "interrupted" };
    assert!(reason.contains(expected), "{reason}");
    assert_each_day_loaded_once(&client, &[day(1)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_of_the_leader_mid_run_hands_the_day_to_the_other_replica() {
    leader_stops_mid_run(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_leader_mid_run_hands_the_day_to_the_other_replica() {
    leader_stops_mid_run(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dashboard_backfill_survives_a_serve_restart_and_finishes_its_range() {
    let harness = Harness::start().await;
    publish_days(&harness, 4);
    slow_source(&harness, Duration::from_millis(150));
    // No triggers: only the backfill loads.
    std::fs::write(harness.dir.path().join("ethpipe.toml"), "").unwrap();
    let db = TestDatabase::create().await.unwrap();
    harness
        .ethpipe(&db.url)
        .run(&["migrate"])
        .await
        .assert_success();
    let client = connect(&db.url).await.unwrap();
    let serve = Replica::start(harness.ethpipe(&db.url)).await;
    let body = format!(
        r#"{{"pipeline":"token_transfers","from":"{}","to":"{}"}}"#,
        day(4),
        day(1)
    );
    let (status, started) = serve.post_json("/api/v1/backfills", &body).await;
    assert_eq!(status, 202, "{started}");
    let id = started["id"].as_i64().expect("the backfill's id");
    wait_for("the backfill to load a day", LONG, || async {
        all_loaded(&client, 1).await && mid_run(&client).await.is_some()
    })
    .await;
    serve.terminate().await;
    assert!(
        !all_loaded(&client, 4).await,
        "the restart came before the end of the range"
    );

    let serve = Replica::start(harness.ethpipe(&db.url)).await;
    wait_for("the resumed backfill to finish", LONG, || async {
        let state: String = client
            .query_one(
                "SELECT state FROM ethpipe.backfill_jobs WHERE id = $1",
                &[&id],
            )
            .await
            .unwrap()
            .get(0);
        state == "finished"
    })
    .await;
    let text = reqwest::get(format!("{}/api/v1/backfills/{id}", serve.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let view: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(view["state"], "finished", "{view}");
    assert_eq!(view["days_loaded"], 4, "{view}");
    assert_eq!(view["rows"], 4 * ROWS_PER_DAY, "{view}");
    serve.terminate().await;
    let owed: Vec<String> = (1..=4).rev().map(day).collect();
    assert_each_day_loaded_once(&client, &owed).await;
    let trigger = format!("backfill:{id}");
    assert_eq!(
        client
            .query_one(
                "SELECT count(*) FROM ethpipe.runs WHERE status = 'success' AND trigger <> $1",
                &[&trigger],
            )
            .await
            .unwrap()
            .get::<_, i64>(0),
        0,
        "every day was loaded by the job's runs"
    );
}
