//! Faults injected on purpose, many times, with the invariants checked after
//! each: no duplicate (transaction_hash, log_index); every day absent, the old
//! complete version or the new complete version; the ledger never says
//! success for a day that is not the complete new version. Kill points are
//! random but seeded (the seed is printed; ETHPIPE_TEST_SEED replays it).

mod common;

use std::time::Duration;

use common::*;
use ethpipe_testkit::fixtures::day_transfers;
use ethpipe_testkit::{CutPoint, Faults, FixtureTransfer, TcpProxy, TestDatabase};
use rand::{Rng, SeedableRng};
use tokio_postgres::Client;

const DAY: &str = "2024-03-01";
const OLD_ROWS: usize = 150;
const NEW_ROWS: usize = 190;

fn seeded(test: &str) -> rand::rngs::StdRng {
    let seed: u64 = std::env::var("ETHPIPE_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("{test}: seed {seed} (set ETHPIPE_TEST_SEED to replay)");
    rand::rngs::StdRng::seed_from_u64(seed)
}

async fn count(client: &Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.expect("count").get(0)
}

/// Which complete version of the day the table holds.
#[derive(Debug, PartialEq)]
enum Version {
    Old,
    New,
}

/// The invariants; returns the version the day is in.
async fn check_day(
    client: &Client,
    old: &[FixtureTransfer],
    new: &[FixtureTransfer],
    context: &str,
) -> Version {
    let duplicates = count(
        client,
        "SELECT count(*) FROM (SELECT 1 FROM ethereum.token_transfers
         GROUP BY transaction_hash, log_index HAVING count(*) > 1) d",
    )
    .await;
    assert_eq!(duplicates, 0, "{context}: duplicate keys");
    let rows = pg_transfers(client, "").await;
    let version = if rows == sorted(old) {
        Version::Old
    } else if rows == sorted(new) {
        Version::New
    } else {
        panic!(
            "{context}: the day is neither version ({} rows; old {}, new {})",
            rows.len(),
            old.len(),
            new.len()
        );
    };
    let successes_since_old = count(
        client,
        "SELECT count(*) FROM ethpipe.runs WHERE status = 'success' AND id > 1",
    )
    .await;
    if version == Version::Old {
        assert_eq!(
            successes_since_old, 0,
            "{context}: the ledger says success but the old version is there"
        );
    }
    version
}

struct Scenario {
    harness: Harness,
    old: Vec<FixtureTransfer>,
    new: Vec<FixtureTransfer>,
}

impl Scenario {
    /// A BigQuery-compatible server that first serves the old version of
    /// the day, then (after [`Scenario::switch`]) a new one, slowly.
    async fn start() -> Scenario {
        let harness = Harness::start().await;
        let old = day_transfers(DAY, OLD_ROWS, 1);
        let new = day_transfers(DAY, NEW_ROWS, 2);
        harness.bigquery.set_transfers(old.clone());
        Scenario { harness, old, new }
    }

    /// A database holding the old version (run 1).
    async fn database(&self, url: Option<&str>) -> TestDatabase {
        let db = fresh_database().await;
        self.harness.bigquery.set_transfers(self.old.clone());
        self.harness.bigquery.set_faults(Faults::default());
        self.harness
            .ethpipe(url.unwrap_or(&db.url))
            .run(&["run", "token_transfers", "--date", DAY])
            .await
            .assert_success();
        db
    }

    fn switch(&self, page_delay: Duration) {
        self.harness.bigquery.set_transfers(self.new.clone());
        self.harness.bigquery.set_faults(Faults {
            page_delay: Some(page_delay),
            ..Faults::default()
        });
    }
}

/// kill -9 of `ethpipe run` at random points (40 of the suite's ≥ 50 kills;
/// `backfill::a_backfill_killed_at_random_points…` and the backfill kills
/// below make up the rest).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_runs_leave_the_old_or_the_new_day() {
    let mut rng = seeded("killed_runs_leave_the_old_or_the_new_day");
    let scenario = Scenario::start().await;
    let mut seen = (0, 0);
    for iteration in 0..40 {
        let db = scenario.database(None).await;
        let client = db.client().await.expect("client");
        scenario.switch(Duration::from_millis(2));
        let kill_after = Duration::from_millis(rng.random_range(0..220));
        let mut child = scenario
            .harness
            .ethpipe(&db.url)
            .command(&["run", "token_transfers", "--date", DAY])
            .spawn()
            .expect("spawn");
        tokio::time::sleep(kill_after).await;
        let _ = child.start_kill();
        let _ = child.wait().await;
        wait_for_other_sessions_to_end(&client).await;
        let context = format!("iteration {iteration}, killed after {kill_after:?}");
        match check_day(&client, &scenario.old, &scenario.new, &context).await {
            Version::Old => seen.0 += 1,
            Version::New => seen.1 += 1,
        }
        // The next run completes the day.
        scenario
            .harness
            .ethpipe(&db.url)
            .run(&["run", "token_transfers", "--date", DAY])
            .await
            .assert_success();
        assert_eq!(
            check_day(&client, &scenario.old, &scenario.new, &context).await,
            Version::New
        );
        assert_eq!(
            count(
                &client,
                "SELECT count(*) FROM ethpipe.runs WHERE status = 'running'"
            )
            .await,
            0,
            "{context}: the killed run is closed by the next one"
        );
    }
    println!(
        "kills that left the old day: {}, the new day: {}",
        seen.0, seen.1
    );
    assert!(
        seen.0 > 0,
        "no kill landed before the commit: the kill points are too late"
    );
}

/// kill -9 of a parallel backfill at random times (not only between days).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_backfills_resume_without_duplicates() {
    let mut rng = seeded("killed_backfills_resume_without_duplicates");
    let harness = Harness::start().await;
    let days: Vec<String> = (1..=6).map(|d| format!("2024-04-{d:02}")).collect();
    let rows: Vec<FixtureTransfer> = days.iter().flat_map(|d| day_transfers(d, 60, 3)).collect();
    harness.bigquery.set_transfers(rows.clone());
    harness.bigquery.set_faults(Faults {
        page_delay: Some(Duration::from_millis(2)),
        ..Faults::default()
    });
    let args = [
        "backfill",
        "token_transfers",
        "--from",
        "2024-04-01",
        "--to",
        "2024-04-06",
        "--parallel",
        "2",
    ];
    for iteration in 0..10 {
        let db = fresh_database().await;
        harness
            .ethpipe(&db.url)
            .run(&["migrate"])
            .await
            .assert_success();
        let client = db.client().await.expect("client");
        let kill_after = Duration::from_millis(rng.random_range(20..400));
        let mut child = harness
            .ethpipe(&db.url)
            .command(&args)
            .spawn()
            .expect("spawn");
        tokio::time::sleep(kill_after).await;
        let _ = child.start_kill();
        let _ = child.wait().await;
        wait_for_other_sessions_to_end(&client).await;
        let context = format!("iteration {iteration}, killed after {kill_after:?}");
        // Each day in the table is complete and has a success in the ledger.
        let per_day: Vec<(String, i64)> = client
            .query(
                "SELECT block_timestamp::date::text, count(*) FROM ethereum.token_transfers GROUP BY 1",
                &[],
            )
            .await
            .expect("per day")
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        for (day, n) in &per_day {
            assert_eq!(*n, 60, "{context}: day {day} is partial");
            let ok = count(
                &client,
                &format!(
                    "SELECT count(*) FROM ethpipe.runs WHERE day = '{day}' AND status = 'success'"
                ),
            )
            .await;
            assert_eq!(
                ok, 1,
                "{context}: day {day} in the table without one success"
            );
        }
        let successes = count(
            &client,
            "SELECT count(*) FROM ethpipe.runs WHERE status = 'success'",
        )
        .await;
        assert_eq!(
            successes as usize,
            per_day.len(),
            "{context}: a success without its day"
        );
        harness.ethpipe(&db.url).run(&args).await.assert_success();
        assert_eq!(pg_transfers(&client, "").await, sorted(&rows), "{context}");
    }
}

async fn wait_for_running(client: &Client) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while count(
        client,
        "SELECT count(*) FROM ethpipe.runs WHERE status = 'running'",
    )
    .await
        == 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the run never started"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Plain text (`sslmode=disable`): the proxy watches the client's bytes for
/// the day's `COMMIT`, which TLS would hide.
fn proxied_url(db: &TestDatabase, proxy: &TcpProxy) -> String {
    let url = db.url.replace(":5432/", &format!(":{}/", proxy.port()));
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}sslmode=disable")
}

/// The database connection cut while rows stream in with COPY.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_lost_mid_copy_keeps_the_old_day() {
    let scenario = Scenario::start().await;
    let db = scenario.database(None).await;
    let client = db.client().await.expect("client");
    let proxy = TcpProxy::start("127.0.0.1:5432").await.expect("proxy");
    let url = proxied_url(&db, &proxy);
    scenario.switch(Duration::from_millis(20));
    let child = scenario
        .harness
        .ethpipe(&url)
        .command(&["run", "token_transfers", "--date", DAY])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // Wait until the run is in the ledger and COPY has started streaming.
    wait_for_running(&client).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let started = proxy.client_bytes();
    while proxy.client_bytes() < started + 2_000 {
        assert!(std::time::Instant::now() < deadline, "COPY never streamed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    proxy.cut();
    let out = child.wait_with_output().await.expect("exit");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    wait_for_other_sessions_to_end(&client).await;
    assert_eq!(
        check_day(&client, &scenario.old, &scenario.new, "cut mid-COPY").await,
        Version::Old
    );
    // With the connection back, the next run loads the new day.
    scenario
        .harness
        .ethpipe(&url)
        .run(&["run", "token_transfers", "--date", DAY])
        .await
        .assert_success();
    assert_eq!(
        check_day(&client, &scenario.old, &scenario.new, "after the cut").await,
        Version::New
    );
}

/// The connection cut exactly at COMMIT: before the server gets it (the day
/// rolls back) and after (the day commits, the client never hears).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_lost_at_commit_leaves_one_complete_version() {
    for (point, expected) in [
        (CutPoint::Before, Version::Old),
        (CutPoint::After, Version::New),
    ] {
        let scenario = Scenario::start().await;
        let db = scenario.database(None).await;
        let client = db.client().await.expect("client");
        let proxy = TcpProxy::start("127.0.0.1:5432").await.expect("proxy");
        scenario.switch(Duration::from_millis(50));
        let child = scenario
            .harness
            .ethpipe(&proxied_url(&db, &proxy))
            .command(&["run", "token_transfers", "--date", DAY])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        // Armed once the run has started, so the migrations' own COMMIT is
        // past. The next simple-query `COMMIT` puts the day's rows aside
        // (a table no reader sees); the one after it is the day's.
        wait_for_running(&client).await;
        proxy.cut_on_client_bytes(b"COMMIT\0", 1, point);
        let out = child.wait_with_output().await.expect("exit");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            proxy.pattern_hits(),
            1,
            "{point:?}: the day's COMMIT went through the proxy"
        );
        assert_eq!(out.status.code(), Some(1), "{point:?}: {stderr}");
        wait_for_other_sessions_to_end(&client).await;
        let context = format!("cut {point:?} COMMIT");
        assert_eq!(
            check_day(&client, &scenario.old, &scenario.new, &context).await,
            expected
        );
        // Whatever the ledger says, a re-run ends with the new day, once.
        scenario
            .harness
            .ethpipe(&db.url)
            .run(&["run", "token_transfers", "--date", DAY])
            .await
            .assert_success();
        assert_eq!(
            check_day(&client, &scenario.old, &scenario.new, &context).await,
            Version::New
        );
    }
}

/// A stalled connection that comes back: the run just takes longer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_connection_that_resumes_loads_the_day() {
    let scenario = Scenario::start().await;
    let db = scenario.database(None).await;
    let client = db.client().await.expect("client");
    let proxy = TcpProxy::start("127.0.0.1:5432").await.expect("proxy");
    scenario.switch(Duration::from_millis(5));
    let child = scenario
        .harness
        .ethpipe(&proxied_url(&db, &proxy))
        .command(&["run", "token_transfers", "--date", DAY])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_for_running(&client).await;
    proxy.stall();
    let held_at = proxy.client_bytes();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM ethpipe.runs WHERE status = 'success' AND id > 1"
        )
        .await,
        0,
        "nothing commits while the connection is stalled"
    );
    proxy.resume();
    let out = child.wait_with_output().await.expect("exit");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(proxy.client_bytes() > held_at);
    assert_eq!(
        check_day(&client, &scenario.old, &scenario.new, "stall").await,
        Version::New
    );
}

/// A real server restart in the middle of a parallel backfill: in-flight
/// days fail cleanly (or had committed), the re-run completes the range.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_during_a_backfill_loses_and_duplicates_nothing() {
    let cluster = ethpipe_testkit::PrivatePostgres::start().expect("a private PostgreSQL");
    let harness = Harness::start().await;
    let days: Vec<String> = (1..=8).map(|d| format!("2024-05-{d:02}")).collect();
    let rows: Vec<FixtureTransfer> = days.iter().flat_map(|d| day_transfers(d, 90, 4)).collect();
    harness.bigquery.set_transfers(rows.clone());
    harness.bigquery.set_faults(Faults {
        page_delay: Some(Duration::from_millis(30)),
        ..Faults::default()
    });
    let args = [
        "backfill",
        "token_transfers",
        "--from",
        "2024-05-01",
        "--to",
        "2024-05-08",
        "--parallel",
        "2",
    ];
    let url = cluster.url("postgres");
    harness
        .ethpipe(&url)
        .run(&["migrate"])
        .await
        .assert_success();
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    let child = harness
        .ethpipe(&url)
        .command(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while count(
        &client,
        "SELECT count(*) FROM ethpipe.runs WHERE status = 'success'",
    )
    .await
        < 2
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the backfill never got going"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(client);
    cluster.restart().expect("PostgreSQL restarts");
    let out = child.wait_with_output().await.expect("exit");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    // Days in flight fail (exit 1, "re-run to resume"), or none was hit (0);
    // losing the server mid-run is never reported as a setup error (2).
    assert!(
        matches!(out.status.code(), Some(0) | Some(1)),
        "exit {:?}: {stderr}",
        out.status.code()
    );
    if out.status.code() == Some(1) {
        assert!(
            stderr.contains("re-run the same command to resume"),
            "{stderr}"
        );
    }

    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("reconnect");
    tokio::spawn(connection);
    for (day, n) in client
        .query(
            "SELECT block_timestamp::date::text, count(*) FROM ethereum.token_transfers GROUP BY 1",
            &[],
        )
        .await
        .expect("per day")
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
    {
        assert_eq!(n, 90, "day {day} is partial after the restart");
    }
    harness.ethpipe(&url).run(&args).await.assert_success();
    assert_eq!(pg_transfers(&client, "").await, sorted(&rows));
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM ethpipe.runs WHERE status = 'running'"
        )
        .await,
        0,
        "runs cut by the restart are closed"
    );
}
