//! `ethpipe serve`: the scheduler reconciles with the ledger. A due day is
//! loaded once (a day already loaded is not due), inactive triggers never
//! run, missed days are caught up in order within `catchup_days`, failures
//! are retried within `max_attempts` per slot window without blocking other
//! triggers, two schedulers never double-run, and toggles persist in the
//! database.

mod common;

use std::time::Duration;

use chrono::{Duration as ChronoDuration, Utc};
use common::*;
use ethpipe_testkit::fixtures::day_transfers;
use ethpipe_testkit::serve::{wait_for, Replica};
use ethpipe_testkit::Faults;
use tokio_postgres::Client;

const LONG: Duration = Duration::from_secs(60);

async fn count(client: &Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

async fn wait_until(client: &Client, sql: &str, at_least: i64) {
    let what = format!("{sql} >= {at_least}");
    wait_for(&what, LONG, || async {
        count(client, sql).await >= at_least
    })
    .await;
}

/// Waits until the leader's last tick found no day due (it ran after the
/// loads the caller waited for, and found nothing left to do).
async fn wait_until_nothing_due(replica: &Replica) {
    wait_for("a tick with no day due", LONG, || async {
        replica.metric("ethpipe_scheduler_due_days").await == Some(0.0)
    })
    .await;
}

fn write_config(harness: &Harness, triggers: &str) {
    std::fs::write(harness.dir.path().join("ethpipe.toml"), triggers).unwrap();
}

fn day(n: i64) -> String {
    (Utc::now() - ChronoDuration::days(n))
        .date_naive()
        .to_string()
}

fn today() -> String {
    day(0)
}

/// Transfers of the past days `1..=days` and a few of today (data past each
/// past day's end, as a published day has).
fn publish_days(harness: &Harness, days: i64, rows_per_day: usize) {
    let mut rows = Vec::new();
    for n in 1..=days {
        rows.extend(day_transfers(&day(n), rows_per_day, 1));
    }
    rows.extend(day_transfers(&today(), 6, 1));
    harness.bigquery.set_transfers(rows);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_second_trigger_loads_its_due_day_once_and_an_inactive_one_never() {
    let harness = Harness::start().await;
    publish_days(&harness, 1, 30);
    write_config(
        &harness,
        r#"
[[triggers]]
name = "every_second"
pipeline = "token_transfers"
schedule = "* * * * * *"
active = true
day_offset = 1

[[triggers]]
name = "quiet"
pipeline = "token_transfers"
schedule = "* * * * * *"
day_offset = 1
"#,
    );
    let db = fresh_database().await;
    harness
        .ethpipe(&db.url)
        .run(&["migrate"])
        .await
        .assert_success();
    let client = db.client().await.unwrap();
    let replica = Replica::start(
        harness
            .ethpipe(&db.url)
            .env("ETHPIPE_SCHEDULER_TICK_MS", "100"),
    )
    .await;
    wait_until(
        &client,
        "SELECT count(*) FROM ethpipe.runs WHERE trigger = 'every_second' AND status = 'success'",
        1,
    )
    .await;
    wait_until_nothing_due(&replica).await;
    replica.terminate().await;

    let runs: Vec<(String, String)> = client
        .query(
            "SELECT day::text, status FROM ethpipe.runs ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        runs,
        vec![(day(1), "success".to_string())],
        "yesterday loaded once, however many slots passed; the inactive trigger never ran"
    );
    let loaded = pg_transfers(&client, "").await;
    assert_eq!(loaded.len(), 30);
    assert_eq!(on_day(&loaded, &day(1)).len(), 30, "only yesterday");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_loads_with_its_own_token_filter() {
    let harness = Harness::start().await;
    // Yesterday's rows, and a few of today's so yesterday is published.
    publish_days(&harness, 1, 60);
    let rows = day_transfers(&day(1), 60, 1);
    let mut tokens: Vec<String> = rows.iter().map(|t| t.token_address.clone()).collect();
    tokens.sort();
    tokens.dedup();
    let (own, pipelines) = (&tokens[0], &tokens[1]);
    // The trigger's own list wins over the pipeline's.
    write_config(
        &harness,
        &format!(
            r#"
[pipelines.token_transfers]
tokens = ["{pipelines}"]

[[triggers]]
name = "one_token"
pipeline = "token_transfers"
schedule = "* * * * * *"
active = true
day_offset = 1
tokens = ["{own}"]
"#
        ),
    );
    let db = fresh_database().await;
    harness
        .ethpipe(&db.url)
        .run(&["migrate"])
        .await
        .assert_success();
    let client = db.client().await.unwrap();
    let replica = Replica::start(
        harness
            .ethpipe(&db.url)
            .env("ETHPIPE_SCHEDULER_TICK_MS", "100"),
    )
    .await;
    wait_until(
        &client,
        "SELECT count(*) FROM ethpipe.runs WHERE trigger = 'one_token' AND status = 'success'",
        1,
    )
    .await;
    wait_until_nothing_due(&replica).await;
    replica.terminate().await;
    let filters: Vec<Option<String>> = client
        .query("SELECT DISTINCT token_filter FROM ethpipe.runs", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(filters, [Some(own.clone())]);
    let loaded = pg_transfers(&client, "").await;
    assert!(!loaded.is_empty());
    assert!(loaded.iter().all(|t| &t.token_address == own));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_downtime_missed_days_run_in_order_within_catchup_days() {
    let harness = Harness::start().await;
    publish_days(&harness, 4, 12);
    write_config(
        &harness,
        r#"
[[triggers]]
name = "daily"
pipeline = "token_transfers"
schedule = "@daily"
active = true
catchup_days = 2
"#,
    );
    let db = fresh_database().await;
    harness
        .ethpipe(&db.url)
        .run(&["trigger", "list"])
        .await
        .assert_success();
    let client = db.client().await.unwrap();
    // Active for a week, and the scheduler was down for three days: the
    // ledger has none of the days, but only the catch-up window is owed.
    client
        .execute(
            "UPDATE ethpipe.triggers SET active_since = now() - interval '7 days'",
            &[],
        )
        .await
        .unwrap();
    let replica = Replica::start(harness.ethpipe(&db.url)).await;
    wait_until(
        &client,
        "SELECT count(*) FROM ethpipe.runs WHERE status = 'success'",
        2,
    )
    .await;
    wait_until_nothing_due(&replica).await;
    replica.terminate().await;

    let runs: Vec<(String, String, chrono::DateTime<Utc>, chrono::DateTime<Utc>)> = client
        .query(
            "SELECT day::text, status, started_at, finished_at FROM ethpipe.runs ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    // catchup_days = 2: the midnights of yesterday and today, each loading
    // the day before, oldest first.
    let days: Vec<&str> = runs.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(days, vec![day(2), day(1)], "{runs:?}");
    assert!(runs.iter().all(|r| r.1 == "success"));
    assert!(runs[1].2 >= runs[0].3, "one at a time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_retried_per_trigger_and_do_not_block_other_triggers() {
    let harness = Harness::start().await;
    publish_days(&harness, 1, 10);
    harness
        .bigquery
        .set_tokens(ethpipe_testkit::fixtures::tokens(&[&day(1), &today()]));
    write_config(
        &harness,
        r#"
[[triggers]]
name = "flaky"
pipeline = "token_transfers"
schedule = "*/10 * * * * *"
active = true
day_offset = 1
max_attempts = 3
backoff_seconds = 0
catchup_days = 0

[[triggers]]
name = "steady"
pipeline = "tokens"
schedule = "* * * * * *"
active = true
day_offset = 1
catchup_days = 0
"#,
    );
    // token_transfers keeps failing (BigQuery 503, transient): retried, then given up.
    harness.bigquery.set_faults(Faults {
        fail_table: Some(("token_transfers".into(), 503)),
        ..Faults::default()
    });
    let db = fresh_database().await;
    harness
        .ethpipe(&db.url)
        .run(&["migrate"])
        .await
        .assert_success();
    let client = db.client().await.unwrap();
    // A fast tick: many chances to retry within one 10-second slot window.
    let replica = Replica::start(
        harness
            .ethpipe(&db.url)
            .env("ETHPIPE_SCHEDULER_TICK_MS", "50"),
    )
    .await;
    wait_until(
        &client,
        "SELECT count(*) FROM ethpipe.runs WHERE trigger = 'flaky' AND status = 'failed'",
        3,
    )
    .await;
    // tokens: the full load, then yesterday.
    wait_until(
        &client,
        "SELECT count(*) FROM ethpipe.runs WHERE trigger = 'steady' AND status = 'success'",
        2,
    )
    .await;

    // The fault clears: the next window of the flaky trigger succeeds.
    harness.bigquery.set_faults(Faults::default());
    wait_until(
        &client,
        "SELECT count(*) FROM ethpipe.runs WHERE trigger = 'flaky' AND status = 'success'",
        1,
    )
    .await;
    wait_until_nothing_due(&replica).await;
    replica.terminate().await;

    let first_attempts: Vec<(i32, String, Option<String>)> = client
        .query("SELECT attempt, status, error FROM ethpipe.runs WHERE trigger = 'flaky' ORDER BY id LIMIT 3", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        first_attempts.iter().map(|a| a.0).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(first_attempts
        .iter()
        .all(|a| a.1 == "failed" && a.2.as_deref().unwrap_or("").contains("503")));
    // No slot window (10 seconds, from a slot) saw more than max_attempts runs.
    let per_window_max = count(
        &client,
        "SELECT coalesce(max(n), 0) FROM (SELECT floor(extract(epoch FROM started_at) / 10), count(*) AS n
         FROM ethpipe.runs WHERE trigger = 'flaky' AND status = 'failed' GROUP BY 1) per_window",
    )
    .await;
    assert!(
        per_window_max <= 3,
        "at most max_attempts failures per window, saw {per_window_max}"
    );
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM ethpipe.runs WHERE trigger = 'flaky' AND status = 'success'"
        )
        .await,
        1,
        "a loaded day is not loaded again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schedulers_run_each_due_day_once() {
    let harness = Harness::start().await;
    publish_days(&harness, 1, 10);
    write_config(
        &harness,
        r#"
[[triggers]]
name = "every_second"
pipeline = "token_transfers"
schedule = "* * * * * *"
active = true
day_offset = 1
"#,
    );
    let db = fresh_database().await;
    harness
        .ethpipe(&db.url)
        .run(&["migrate"])
        .await
        .assert_success();
    let client = db.client().await.unwrap();
    let first = Replica::start(harness.ethpipe(&db.url)).await;
    let second = Replica::start(harness.ethpipe(&db.url)).await;
    wait_until(
        &client,
        "SELECT count(*) FROM ethpipe.runs WHERE status = 'success'",
        1,
    )
    .await;
    let leader = if first.is_leader().await {
        &first
    } else {
        &second
    };
    wait_until_nothing_due(leader).await;
    // While both are up, exactly one is the leader (the other polls the lock).
    let leaders = [&first, &second]
        .iter()
        .filter(|replica| replica.log().contains("scheduler: leader"))
        .count();
    assert_eq!(leaders, 1, "exactly one scheduler acts");
    let (_, _) = tokio::join!(first.terminate(), second.terminate());
    let runs = count(&client, "SELECT count(*) FROM ethpipe.runs").await;
    assert_eq!(runs, 1, "the due day ran once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_toggle_persists_in_the_database_until_the_config_changes() {
    let harness = Harness::start().await;
    let config = |active: bool| {
        format!("[[triggers]]\nname = \"nightly\"\npipeline = \"tokens\"\nschedule = \"0 5 * * *\"\nactive = {active}\n")
    };
    write_config(&harness, &config(true));
    let url = harness.sqlite_url();
    let active = |out: &ethpipe_testkit::Output| -> bool {
        let status: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        status["triggers"][0]["active"].as_bool().unwrap()
    };
    let status = harness.ethpipe(&url).run(&["status", "--json"]).await;
    assert!(active(&status));
    let status_json: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert!(status_json["triggers"][0]["next_run"]
        .as_str()
        .unwrap()
        .ends_with("05:00:00 UTC"));

    harness
        .ethpipe(&url)
        .run(&["trigger", "disable", "nightly"])
        .await
        .assert_success();
    assert!(
        !active(&harness.ethpipe(&url).run(&["status", "--json"]).await),
        "the toggle survives a config sync"
    );
    let listed = harness.ethpipe(&url).run(&["trigger", "list"]).await;
    assert!(
        listed.stdout.contains("nightly") && listed.stdout.contains("inactive"),
        "{}",
        listed.stdout
    );

    write_config(&harness, &config(false));
    harness
        .ethpipe(&url)
        .run(&["status", "--json"])
        .await
        .assert_success();
    write_config(&harness, &config(true));
    assert!(
        active(&harness.ethpipe(&url).run(&["status", "--json"]).await),
        "editing the file's value applies it"
    );

    let unknown = harness
        .ethpipe(&url)
        .run(&["trigger", "enable", "nope"])
        .await;
    assert_eq!(unknown.code, 2);
    assert!(unknown.stderr.contains("no trigger named 'nope'"));
    write_config(
        &harness,
        "[[triggers]]\nname = \"x\"\npipeline = \"tokens\"\nschedule = \"every day\"\n",
    );
    let bad = harness.ethpipe(&url).run(&["status"]).await;
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr
            .contains("trigger 'x': invalid schedule 'every day'"),
        "{}",
        bad.stderr
    );
}
