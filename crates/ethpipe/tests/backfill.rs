//! Backfills against real PostgreSQL: killed at random points and resumed,
//! overlapping processes and workers sharing a range, SIGTERM, and `verify`.

mod common;

use std::time::Duration;

use common::*;
use ethpipe_testkit::fixtures::day_transfers;
use ethpipe_testkit::{Faults, FixtureTransfer, Output};
use tokio_postgres::Client;

const FROM: &str = "2024-03-01";
const TO: &str = "2024-03-10";
const ROWS_PER_DAY: usize = 120;

fn ten_days() -> (Vec<String>, Vec<FixtureTransfer>) {
    let days: Vec<String> = (1..=10).map(|d| format!("2024-03-{d:02}")).collect();
    let rows = days
        .iter()
        .flat_map(|d| day_transfers(d, ROWS_PER_DAY, 1))
        .collect();
    (days, rows)
}

/// A slow server (16-row pages, a delay per page) so kills land mid-day.
fn slow(harness: &Harness) {
    harness.bigquery.set_faults(Faults {
        page_delay: Some(Duration::from_millis(4)),
        ..Faults::default()
    });
}

async fn count(client: &Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

/// Polls until `sql` returns at least `at_least` (the condition a test waits on).
async fn wait_until(client: &Client, sql: &str, at_least: i64) {
    for _ in 0..3000 {
        if count(client, sql).await >= at_least {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for {sql} >= {at_least}");
}

/// Every day complete exactly once; the ledger has one success per day and no run left `running`.
async fn assert_all_days_loaded_once(client: &Client, rows: &[FixtureTransfer], context: &str) {
    assert_eq!(
        pg_transfers(client, "").await,
        sorted(rows),
        "{context}: table = fixture"
    );
    let per_day: Vec<(String, i64)> = client
        .query(
            "SELECT day::text, count(*) FROM ethpipe.runs WHERE status = 'success' GROUP BY day ORDER BY day",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(per_day.len(), 10, "{context}: {per_day:?}");
    assert!(
        per_day.iter().all(|(_, n)| *n == 1),
        "{context}: a day succeeded twice: {per_day:?}"
    );
    assert_eq!(
        count(
            client,
            "SELECT count(*) FROM ethpipe.runs WHERE status = 'running'"
        )
        .await,
        0,
        "{context}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_killed_at_random_points_resumes_without_redoing_or_duplicating() {
    let seed: u64 = std::env::var("ETHPIPE_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("kill-point seed: {seed} (set ETHPIPE_TEST_SEED to replay)");
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
    let harness = Harness::start().await;
    let (_, rows) = ten_days();
    harness.bigquery.set_transfers(rows.clone());
    slow(&harness);

    for iteration in 0..5 {
        let db = fresh_database().await;
        let client = {
            harness
                .ethpipe(&db.url)
                .run(&["migrate"])
                .await
                .assert_success();
            db.client().await.unwrap()
        };
        // Kill once k days have committed, k random, plus a random extra delay.
        let k = rand::Rng::random_range(&mut rng, 0..9);
        let extra = rand::Rng::random_range(&mut rng, 0..40);
        let mut child = harness
            .ethpipe(&db.url)
            .command(&["backfill", "token_transfers", "--from", FROM, "--to", TO])
            .spawn()
            .unwrap();
        wait_until(
            &client,
            "SELECT count(*) FROM ethpipe.runs WHERE status = 'success'",
            k,
        )
        .await;
        tokio::time::sleep(Duration::from_millis(extra)).await;
        child.start_kill().unwrap();
        child.wait().await.unwrap();
        // A COMMIT the process sent just before dying still completes on the
        // server: read the ledger once its sessions are gone.
        wait_for_other_sessions_to_end(&client).await;
        let done_before: Vec<String> = client
            .query(
                "SELECT day::text FROM ethpipe.runs WHERE status = 'success' ORDER BY day",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let context =
            format!("seed {seed}, iteration {iteration}, killed after {k} days + {extra} ms");
        // Whatever was committed is complete: each committed day has all its rows.
        for day in &done_before {
            let on_day =
                pg_transfers(&client, &format!("WHERE block_timestamp::date = '{day}'")).await;
            assert_eq!(on_day.len(), ROWS_PER_DAY, "{context}: day {day}");
        }

        let out = harness
            .ethpipe(&db.url)
            .run(&["backfill", "token_transfers", "--from", FROM, "--to", TO])
            .await;
        out.assert_success();
        assert!(
            out.stdout
                .contains(&format!("{} skipped", done_before.len())),
            "{context}: {}",
            out.stdout
        );
        assert_all_days_loaded_once(&client, &rows, &context).await;
        // Only unfinished days were re-done: each day done before has exactly one run.
        for day in &done_before {
            let runs = count(
                &client,
                &format!("SELECT count(*) FROM ethpipe.runs WHERE day = '{day}'"),
            )
            .await;
            assert_eq!(runs, 1, "{context}: day {day} was run again");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_backfills_and_workers_never_do_a_day_twice() {
    let harness = Harness::start().await;
    let (_, rows) = ten_days();
    harness.bigquery.set_transfers(rows.clone());
    slow(&harness);

    // Two plain backfills on overlapping ranges, in parallel.
    let db = fresh_database().await;
    harness
        .ethpipe(&db.url)
        .run(&["migrate"])
        .await
        .assert_success();
    let first = harness
        .ethpipe(&db.url)
        .command(&[
            "backfill",
            "token_transfers",
            "--from",
            FROM,
            "--to",
            "2024-03-07",
            "--parallel",
            "2",
        ])
        .output();
    let second = harness
        .ethpipe(&db.url)
        .command(&[
            "backfill",
            "token_transfers",
            "--from",
            "2024-03-04",
            "--to",
            TO,
            "--parallel",
            "2",
        ])
        .output();
    let (first, second) = tokio::join!(first, second);
    assert!(first.unwrap().status.success() && second.unwrap().status.success());
    let client = db.client().await.unwrap();
    assert_all_days_loaded_once(&client, &rows, "two overlapping backfills").await;

    // Three workers on one range share it.
    let db = fresh_database().await;
    harness
        .ethpipe(&db.url)
        .run(&["migrate"])
        .await
        .assert_success();
    let args = [
        "backfill",
        "token_transfers",
        "--from",
        FROM,
        "--to",
        TO,
        "--worker",
    ];
    let workers = (0..3).map(|_| harness.ethpipe(&db.url).command(&args).output());
    let outputs = futures_util::future::join_all(workers).await;
    let mut loaded_by_each = Vec::new();
    for output in outputs {
        let output = output.unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout).to_string();
        let loaded: usize = stdout
            .split(": ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap();
        loaded_by_each.push(loaded);
    }
    assert_eq!(
        loaded_by_each.iter().sum::<usize>(),
        10,
        "each day loaded by exactly one worker: {loaded_by_each:?}"
    );
    let client = db.client().await.unwrap();
    assert_all_days_loaded_once(&client, &rows, "three workers").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_rolls_back_in_flight_days_and_says_so() {
    let harness = Harness::start().await;
    let (_, rows) = ten_days();
    harness.bigquery.set_transfers(rows.clone());
    slow(&harness);
    let db = fresh_database().await;
    harness
        .ethpipe(&db.url)
        .run(&["migrate"])
        .await
        .assert_success();
    let client = db.client().await.unwrap();
    let child = harness
        .ethpipe(&db.url)
        .command(&[
            "backfill",
            "token_transfers",
            "--from",
            FROM,
            "--to",
            TO,
            "--parallel",
            "2",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(
        &client,
        "SELECT count(*) FROM ethpipe.runs WHERE status = 'success'",
        2,
    )
    .await;
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let output = child.wait_with_output().await.unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("interrupted; re-run the same command to resume"),
        "{stderr}"
    );

    // Every day is either committed and complete, or failed as interrupted with no rows.
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM ethpipe.runs WHERE status = 'running'"
        )
        .await,
        0
    );
    let interrupted = count(
        &client,
        "SELECT count(*) FROM ethpipe.runs WHERE status = 'failed' AND error LIKE 'interrupted%'",
    )
    .await;
    let succeeded: Vec<String> = client
        .query(
            "SELECT day::text FROM ethpipe.runs WHERE status = 'success'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        interrupted >= 1 || succeeded.len() == 10,
        "in-flight days are marked interrupted"
    );
    let loaded = pg_transfers(&client, "").await;
    assert_eq!(loaded.len(), succeeded.len() * ROWS_PER_DAY);

    harness
        .ethpipe(&db.url)
        .run(&["backfill", "token_transfers", "--from", FROM, "--to", TO])
        .await
        .assert_success();
    assert_eq!(pg_transfers(&client, "").await, sorted(&rows));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reports_deleted_days_and_tampered_counts() {
    let harness = Harness::start().await;
    let (_, rows) = ten_days();
    harness.bigquery.set_transfers(rows);
    let db = fresh_database().await;
    let range = ["--from", FROM, "--to", "2024-03-05"];
    harness
        .ethpipe(&db.url)
        .run(&[
            "backfill",
            "token_transfers",
            range[0],
            range[1],
            range[2],
            range[3],
            "--parallel",
            "3",
        ])
        .await
        .assert_success();
    let verify = [
        "verify",
        "--pipeline",
        "token_transfers",
        range[0],
        range[1],
        range[2],
        range[3],
    ];
    let clean = harness.ethpipe(&db.url).run(&verify).await;
    clean.assert_success();
    assert_eq!(clean.stdout.matches(" ok ").count(), 5, "{}", clean.stdout);

    let client = db.client().await.unwrap();
    client
        .execute(
            "DELETE FROM ethereum.token_transfers WHERE block_timestamp::date = '2024-03-02'",
            &[],
        )
        .await
        .unwrap();
    client
        .execute(
            "UPDATE ethpipe.runs SET rows_written = rows_written + 1 WHERE day = '2024-03-04'",
            &[],
        )
        .await
        .unwrap();
    let mut json_args = verify.to_vec();
    json_args.push("--json");
    let out = harness.ethpipe(&db.url).run(&json_args).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .contains("2 of 5 days are missing or mismatched: 2024-03-02, 2024-03-04"),
        "{}",
        out.stderr
    );
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        report["gaps"],
        serde_json::json!(["2024-03-02", "2024-03-04"])
    );
    assert_eq!(report["days"][1]["state"], "missing");
    assert_eq!(report["days"][1]["source_rows"], ROWS_PER_DAY);
    assert_eq!(report["days"][3]["state"], "mismatch");
    assert_eq!(report["days"][0]["state"], "ok");
    // The source count was a partition-pruned COUNT(*) with the day parameter.
    let counts: Vec<_> = harness
        .bigquery
        .queries()
        .into_iter()
        .filter(|q| q.body["query"].as_str().unwrap().contains("COUNT(*)"))
        .collect();
    assert_eq!(counts.len(), 10);
    assert!(counts
        .iter()
        .all(|q| q.body["queryParameters"][0]["name"] == "day"));
}

/// `ethpipe backfill token_transfers --from FROM --to TO`, then `extra`,
/// into `url`.
async fn backfill_range(harness: &Harness, url: &str, extra: &[&str]) -> Output {
    let mut args = vec!["backfill", "token_transfers", "--from", FROM, "--to", TO];
    args.extend_from_slice(extra);
    harness.ethpipe(url).run(&args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_input_errors() {
    let harness = Harness::start().await;
    let reversed = harness
        .ethpipe(&harness.sqlite_url())
        .run(&["backfill", "token_transfers", "--from", TO, "--to", FROM])
        .await;
    assert_eq!(reversed.code, 2);
    assert!(
        reversed
            .stderr
            .contains("--from 2024-03-10 is after --to 2024-03-01"),
        "{}",
        reversed.stderr
    );
    for bad in ["0", "-2", "many"] {
        let out = backfill_range(&harness, &harness.sqlite_url(), &["--parallel", bad]).await;
        assert_eq!(out.code, 2, "{bad}");
        assert!(out.stderr.contains("--parallel must be"), "{}", out.stderr);
    }
    let sqlite_parallel =
        backfill_range(&harness, &harness.sqlite_url(), &["--parallel", "2"]).await;
    assert_eq!(sqlite_parallel.code, 2);
    assert!(
        sqlite_parallel
            .stderr
            .contains("SQLite has one writer at a time"),
        "{}",
        sqlite_parallel.stderr
    );
    let files = harness.dir.path().join("files");
    let parquet_url = format!("parquet://{}", files.display());
    let parquet_worker = backfill_range(&harness, &parquet_url, &["--worker"]).await;
    assert_eq!(parquet_worker.code, 2, "{}", parquet_worker.stderr);
    assert!(
        parquet_worker
            .stderr
            .contains("--worker shares a backfill through PostgreSQL"),
        "{}",
        parquet_worker.stderr
    );
    assert!(harness.bigquery.queries().is_empty());
}

/// Runs of tokens, as (day or `full`, status), oldest first.
async fn token_runs(client: &Client) -> Vec<(String, String)> {
    client
        .query(
            "SELECT coalesce(day::text, 'full'), status FROM ethpipe.runs
             WHERE pipeline = 'tokens' ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// A first tokens run shared by parallel days or by workers makes one full
/// load, taken under the `tokens:full` lock before any day, and no day fails.
async fn assert_one_full_load_and_no_failed_day(client: &Client, case: &str) {
    let runs = token_runs(client).await;
    let full: Vec<_> = runs.iter().filter(|(day, _)| day == "full").collect();
    assert_eq!(full.len(), 1, "{case}: one full load: {runs:?}");
    assert_eq!(full[0].1, "success", "{case}: {runs:?}");
    assert!(
        runs.iter().all(|(_, status)| status == "success"),
        "{case}: no failed run: {runs:?}"
    );
    let loaded_days: std::collections::BTreeSet<_> = runs
        .iter()
        .filter(|(day, _)| day != "full")
        .map(|(day, _)| day.clone())
        .collect();
    assert_eq!(loaded_days.len(), 4, "{case}: {runs:?}");
    assert_eq!(
        runs.len(),
        5,
        "{case}: each day once, after the full load: {runs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_tokens_backfill_makes_one_full_load_in_parallel_and_across_workers() {
    let harness = Harness::start().await;
    let days = ["2024-03-01", "2024-03-02", "2024-03-03", "2024-03-04"];
    harness
        .bigquery
        .set_tokens(ethpipe_testkit::fixtures::tokens(&days));
    // Every query takes a while, so the days and the workers overlap.
    harness.bigquery.set_faults(Faults {
        incomplete_polls: 1,
        page_delay: Some(Duration::from_millis(300)),
        ..Faults::default()
    });
    let range = ["backfill", "tokens", "--from", days[0], "--to", days[3]];

    let db = fresh_database().await;
    let mut args = range.to_vec();
    args.extend(["--parallel", "4"]);
    harness.ethpipe(&db.url).run(&args).await.assert_success();
    let client = db.client().await.unwrap();
    assert_one_full_load_and_no_failed_day(&client, "--parallel 4").await;

    let db = fresh_database().await;
    harness
        .ethpipe(&db.url)
        .run(&["migrate"])
        .await
        .assert_success();
    let mut args = range.to_vec();
    args.push("--worker");
    let workers = (0..4).map(|_| harness.ethpipe(&db.url).command(&args).output());
    for output in futures_util::future::join_all(workers).await {
        let output = output.unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let client = db.client().await.unwrap();
    assert_one_full_load_and_no_failed_day(&client, "four workers").await;
}
