//! `ethpipe serve`: triggers fire once per slot, inactive ones never, missed
//! days are caught up in order within `catchup_days`, failures are retried
//! per trigger without blocking other triggers, two schedulers never
//! double-run, and toggles persist in the database.

mod common;

use std::process::Stdio;
use std::time::Duration;

use chrono::{Duration as ChronoDuration, Utc};
use common::*;
use ethpipe_testkit::fixtures::day_transfers;
use ethpipe_testkit::Faults;
use tokio::process::Child;
use tokio_postgres::Client;

async fn count(client: &Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

async fn wait_until(client: &Client, sql: &str, at_least: i64) {
    for _ in 0..2000 {
        if count(client, sql).await >= at_least {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {sql} >= {at_least}");
}

fn serve(harness: &Harness, url: &str) -> Child {
    harness
        .ethpipe(url)
        .env("ETHPIPE_LOG", "info")
        .command(&["serve"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// SIGTERM, then the process must exit 0 (graceful shutdown).
async fn stop(child: Child) -> String {
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let output = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(
        output.status.code(),
        Some(0),
        "serve exits cleanly on SIGTERM: {stderr}"
    );
    stderr
}

/// Collects a child's stderr as it is written.
fn follow_stderr(child: &mut Child) -> std::sync::Arc<std::sync::Mutex<String>> {
    use tokio::io::AsyncBufReadExt;
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let stderr = child.stderr.take().unwrap();
    let sink = std::sync::Arc::clone(&log);
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut log = sink.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    log
}

fn write_config(harness: &Harness, triggers: &str) {
    std::fs::write(harness.dir.path().join("ethpipe.toml"), triggers).unwrap();
}

fn today() -> String {
    Utc::now().date_naive().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_second_trigger_fires_once_per_slot_and_an_inactive_one_never() {
    let harness = Harness::start().await;
    harness
        .bigquery
        .set_transfers(day_transfers(&today(), 30, 1));
    write_config(
        &harness,
        r#"
[[triggers]]
name = "every_second"
pipeline = "token_transfers"
schedule = "* * * * * *"
active = true
day_offset = 0

[[triggers]]
name = "quiet"
pipeline = "token_transfers"
schedule = "* * * * * *"
day_offset = 0
"#,
    );
    let db = fresh_database().await;
    harness
        .ethpipe(&db.url)
        .run(&["migrate"])
        .await
        .assert_success();
    let client = db.client().await.unwrap();
    let child = serve(&harness, &db.url);
    wait_until(
        &client,
        "SELECT count(*) FROM ethpipe.runs WHERE trigger = 'every_second' AND status = 'success'",
        3,
    )
    .await;
    stop(child).await;

    let slots: Vec<chrono::DateTime<Utc>> = client
        .query(
            "SELECT slot FROM ethpipe.trigger_fires WHERE trigger = 'every_second' ORDER BY slot",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(slots.len() >= 3);
    assert!(
        slots.windows(2).all(|w| w[1] > w[0]),
        "distinct, increasing slots"
    );
    assert!(
        slots.iter().all(|s| s.timestamp_subsec_micros() == 0),
        "slots are whole seconds"
    );
    let runs = count(
        &client,
        "SELECT count(*) FROM ethpipe.runs WHERE trigger = 'every_second'",
    )
    .await;
    assert_eq!(runs, slots.len() as i64, "one run per fired slot");
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM ethpipe.trigger_fires WHERE trigger = 'quiet'"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM ethpipe.runs WHERE trigger = 'quiet'"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM ethpipe.runs WHERE status = 'running'"
        )
        .await,
        0
    );
    assert_eq!(pg_transfers(&client, "").await.len(), 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_loads_with_its_own_token_filter() {
    let harness = Harness::start().await;
    let rows = day_transfers(&today(), 60, 1);
    harness.bigquery.set_transfers(rows.clone());
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
day_offset = 0
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
    let child = serve(&harness, &db.url);
    wait_until(
        &client,
        "SELECT count(*) FROM ethpipe.runs WHERE trigger = 'one_token' AND status = 'success'",
        1,
    )
    .await;
    stop(child).await;
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
    let now = Utc::now();
    let day = |n: i64| (now - ChronoDuration::days(n)).date_naive().to_string();
    let mut rows = Vec::new();
    for n in 1..=4 {
        rows.extend(day_transfers(&day(n), 12, 1));
    }
    harness.bigquery.set_transfers(rows);
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
    // The scheduler was down for three days: its last handled slot is three midnights ago.
    client
        .execute("UPDATE ethpipe.triggers SET last_slot = date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' - interval '3 days'", &[])
        .await
        .unwrap();
    let child = serve(&harness, &db.url);
    wait_until(
        &client,
        "SELECT count(*) FROM ethpipe.triggers WHERE last_slot = date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
        1,
    )
    .await;
    stop(child).await;

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
    // Three slots were missed; catchup_days = 2 runs the newest two, oldest first, daily runs load yesterday.
    let days: Vec<&str> = runs.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(days, vec![day(2), day(1)], "{runs:?}");
    assert!(runs.iter().all(|r| r.1 == "success"));
    assert!(runs[1].2 >= runs[0].3, "one at a time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_retried_per_trigger_and_do_not_block_other_triggers() {
    let harness = Harness::start().await;
    harness
        .bigquery
        .set_transfers(day_transfers(&today(), 10, 1));
    harness
        .bigquery
        .set_tokens(ethpipe_testkit::fixtures::tokens(&[&today()]));
    write_config(
        &harness,
        r#"
[[triggers]]
name = "flaky"
pipeline = "token_transfers"
schedule = "* * * * * *"
active = true
day_offset = 0
max_attempts = 3
backoff_seconds = 0
catchup_days = 0

[[triggers]]
name = "steady"
pipeline = "tokens"
schedule = "* * * * * *"
active = true
day_offset = 0
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
    let child = serve(&harness, &db.url);
    wait_until(
        &client,
        "SELECT count(*) FROM ethpipe.runs WHERE trigger = 'flaky' AND status = 'failed'",
        3,
    )
    .await;
    wait_until(
        &client,
        "SELECT count(*) FROM ethpipe.runs WHERE trigger = 'steady' AND status = 'success'",
        2,
    )
    .await;

    // The fault clears: the next slot of the flaky trigger succeeds.
    harness.bigquery.set_faults(Faults::default());
    wait_until(
        &client,
        "SELECT count(*) FROM ethpipe.runs WHERE trigger = 'flaky' AND status = 'success'",
        1,
    )
    .await;
    stop(child).await;

    let first_slot_attempts: Vec<(i32, String, Option<String>)> = client
        .query("SELECT attempt, status, error FROM ethpipe.runs WHERE trigger = 'flaky' ORDER BY id LIMIT 3", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        first_slot_attempts.iter().map(|a| a.0).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(first_slot_attempts
        .iter()
        .all(|a| a.1 == "failed" && a.2.as_deref().unwrap_or("").contains("503")));
    // No slot was run more than max_attempts times.
    let per_slot_max = count(
        &client,
        "SELECT coalesce(max(n), 0) FROM (SELECT f.slot, count(r.id) AS n FROM ethpipe.trigger_fires f
         JOIN ethpipe.runs r ON r.trigger = f.trigger AND r.started_at >= f.fired_at
              AND r.started_at < coalesce((SELECT min(g.fired_at) FROM ethpipe.trigger_fires g WHERE g.trigger = f.trigger AND g.slot > f.slot), 'infinity')
         WHERE f.trigger = 'flaky' GROUP BY f.slot) per_slot",
    )
    .await;
    assert!(
        per_slot_max <= 3,
        "at most max_attempts runs per slot, saw {per_slot_max}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schedulers_run_each_due_slot_once() {
    let harness = Harness::start().await;
    harness
        .bigquery
        .set_transfers(day_transfers(&today(), 10, 1));
    write_config(
        &harness,
        r#"
[[triggers]]
name = "every_second"
pipeline = "token_transfers"
schedule = "* * * * * *"
active = true
day_offset = 0
"#,
    );
    let db = fresh_database().await;
    harness
        .ethpipe(&db.url)
        .run(&["migrate"])
        .await
        .assert_success();
    let client = db.client().await.unwrap();
    let (mut first, mut second) = (serve(&harness, &db.url), serve(&harness, &db.url));
    let first_log = follow_stderr(&mut first);
    let second_log = follow_stderr(&mut second);
    wait_until(
        &client,
        "SELECT count(*) FROM ethpipe.runs WHERE status = 'success'",
        4,
    )
    .await;
    // While both are up, exactly one is the leader (the other waits on the lock).
    let leaders = [&first_log, &second_log]
        .iter()
        .filter(|log| log.lock().unwrap().contains("scheduler: leader"))
        .count();
    assert_eq!(leaders, 1, "exactly one scheduler acts");
    let (_, _) = tokio::join!(stop(first), stop(second));
    let fires = count(&client, "SELECT count(*) FROM ethpipe.trigger_fires").await;
    let runs = count(&client, "SELECT count(*) FROM ethpipe.runs").await;
    assert_eq!(runs, fires, "each fired slot ran once");
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
