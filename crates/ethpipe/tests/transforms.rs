//! Transforms: `token_daily_stats` against an aggregation computed here,
//! `token_transfers_enriched.amount` for decimals 0, 6, 18 and unknown, and
//! SQL model blocks (day parameter, one step each, failures roll back their step).

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use ethpipe_testkit::fixtures::{self, day_transfers, FixtureToken, FixtureTransfer};
use tokio_postgres::Client;

const DAYS: [&str; 2] = ["2024-03-01", "2024-03-02"];

fn address(byte: &str) -> String {
    format!("0x{}", byte.repeat(20))
}

/// Four tokens (decimals 0, 6, 18, unknown) and one address with no token row.
fn tokens() -> Vec<FixtureToken> {
    let base = fixtures::tokens(&["2024-02-01"])[0].clone();
    [
        ("0a", Some("0")),
        ("0b", Some("6")),
        ("0c", Some("18")),
        ("0d", None),
    ]
    .iter()
    .enumerate()
    .map(|(i, (byte, decimals))| FixtureToken {
        address: address(byte),
        block_number: base.block_number + i as i64,
        decimals: decimals.map(str::to_string),
        symbol: Some(format!("T{byte}")),
        ..base.clone()
    })
    .collect()
}

fn transfers() -> Vec<FixtureTransfer> {
    let token_addresses: Vec<String> = ["0a", "0b", "0c", "0d", "0e"]
        .iter()
        .map(|b| address(b))
        .collect();
    let mut rows = Vec::new();
    for day in DAYS {
        for (i, mut row) in day_transfers(day, 250, 7).into_iter().enumerate() {
            row.token_address = token_addresses[i % 5].clone();
            // Repeat senders so unique counts differ from transfer counts.
            if i % 4 == 0 {
                row.from_address = Some(address("11"));
            }
            rows.push(row);
        }
    }
    rows
}

/// Independent helpers: decimal-string sum and scaling, written for the test.
fn add(a: &str, b: &str) -> String {
    let (mut a, mut b): (Vec<u8>, Vec<u8>) = (a.bytes().rev().collect(), b.bytes().rev().collect());
    a.resize(a.len().max(b.len()) + 1, b'0');
    b.resize(a.len(), b'0');
    let mut carry = 0;
    let mut out: Vec<u8> = a
        .iter()
        .zip(&b)
        .map(|(x, y)| {
            let s = (x - b'0') + (y - b'0') + carry;
            carry = s / 10;
            b'0' + s % 10
        })
        .collect();
    while out.len() > 1 && out.last() == Some(&b'0') {
        out.pop();
    }
    out.reverse();
    String::from_utf8(out).unwrap()
}

fn scale(raw: &str, decimals: usize) -> String {
    let padded = format!("{raw:0>width$}", width = decimals + 1);
    let (whole, fraction) = padded.split_at(padded.len() - decimals);
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() {
        whole.to_string()
    } else {
        format!("{whole}.{fraction}")
    }
}

type StatsRow = (String, String, i64, i64, i64, String, Option<String>);

fn expected_stats(rows: &[FixtureTransfer], tokens: &[FixtureToken]) -> Vec<StatsRow> {
    let decimals: BTreeMap<&str, Option<usize>> = tokens
        .iter()
        .map(|t| {
            (
                t.address.as_str(),
                t.decimals.as_ref().map(|d| d.parse().unwrap()),
            )
        })
        .collect();
    let mut groups: BTreeMap<(String, String), Vec<&FixtureTransfer>> = BTreeMap::new();
    for row in rows {
        let day = chrono::DateTime::from_timestamp_micros(row.block_timestamp_micros)
            .unwrap()
            .date_naive()
            .to_string();
        groups
            .entry((day, row.token_address.clone()))
            .or_default()
            .push(row);
    }
    groups
        .into_iter()
        .map(|((day, token), rows)| {
            let senders: BTreeSet<_> = rows.iter().filter_map(|r| r.from_address.clone()).collect();
            let receivers: BTreeSet<_> = rows.iter().filter_map(|r| r.to_address.clone()).collect();
            let volume = rows
                .iter()
                .filter_map(|r| r.value.as_deref())
                .fold("0".to_string(), |acc, v| add(&acc, v));
            let scaled = decimals
                .get(token.as_str())
                .copied()
                .flatten()
                .map(|d| scale(&volume, d));
            (
                day,
                token,
                rows.len() as i64,
                senders.len() as i64,
                receivers.len() as i64,
                volume,
                scaled,
            )
        })
        .collect()
}

async fn pg_stats(client: &Client) -> Vec<StatsRow> {
    client
        .query(
            "SELECT day::text, token_address, transfer_count, unique_senders, unique_receivers,
                    volume_raw::text, trim_scale(volume)::text
             FROM ethereum.token_daily_stats ORDER BY day, token_address",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.get(0),
                r.get(1),
                r.get(2),
                r.get(3),
                r.get(4),
                r.get(5),
                r.get(6),
            )
        })
        .collect()
}

fn sqlite_stats(path: &std::path::Path) -> Vec<StatsRow> {
    let connection = rusqlite::Connection::open(path).unwrap();
    let mut statement = connection
        .prepare("SELECT * FROM token_daily_stats ORDER BY day, token_address")
        .unwrap();
    let rows = statement
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })
        .unwrap();
    rows.collect::<Result<_, _>>().unwrap()
}

/// (transaction_hash, log_index) → amount as text, trailing zeros trimmed.
async fn pg_amounts(client: &Client) -> BTreeMap<(String, i64), Option<String>> {
    client
        .query("SELECT transaction_hash, log_index, trim_scale(amount)::text FROM ethereum.token_transfers_enriched", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| ((r.get(0), r.get(1)), r.get(2)))
        .collect()
}

fn sqlite_amounts(path: &std::path::Path) -> BTreeMap<(String, i64), Option<String>> {
    let connection = rusqlite::Connection::open(path).unwrap();
    let mut statement = connection
        .prepare("SELECT transaction_hash, log_index, amount FROM token_transfers_enriched")
        .unwrap();
    let rows = statement
        .query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))
        .unwrap();
    rows.collect::<Result<_, _>>().unwrap()
}

fn expected_amounts(
    rows: &[FixtureTransfer],
    tokens: &[FixtureToken],
) -> BTreeMap<(String, i64), Option<String>> {
    let decimals: BTreeMap<&str, Option<usize>> = tokens
        .iter()
        .map(|t| {
            (
                t.address.as_str(),
                t.decimals.as_ref().map(|d| d.parse().unwrap()),
            )
        })
        .collect();
    rows.iter()
        .map(|r| {
            let d = decimals.get(r.token_address.as_str()).copied().flatten();
            (
                (r.transaction_hash.clone(), r.log_index),
                d.and_then(|d| r.value.as_deref().map(|v| scale(v, d))),
            )
        })
        .collect()
}

async fn load_everything(harness: &Harness, url: &str) {
    harness
        .ethpipe(url)
        .run(&["run", "tokens", "--full"])
        .await
        .assert_success();
    for day in DAYS {
        harness
            .ethpipe(url)
            .run(&["run", "token_transfers", "--date", day])
            .await
            .assert_success();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_stats_and_amounts_match_an_independent_computation_in_postgres() {
    let harness = Harness::start().await;
    let db = fresh_database().await;
    let (tokens, rows) = (tokens(), transfers());
    harness.bigquery.set_tokens(tokens.clone());
    harness.bigquery.set_transfers(rows.clone());
    load_everything(&harness, &db.url).await;
    let client = db.client().await.unwrap();

    let expected = expected_stats(&rows, &tokens);
    assert_eq!(expected.len(), 10, "5 tokens x 2 days");
    assert_eq!(pg_stats(&client).await, expected);
    let amounts = pg_amounts(&client).await;
    assert_eq!(amounts, expected_amounts(&rows, &tokens));
    // Each decimals class is present: 0, 6, 18 scale; unknown and missing are NULL.
    let classes: BTreeSet<usize> = rows
        .iter()
        .map(|r| r.token_address.as_bytes()[3] as usize)
        .collect();
    assert_eq!(classes.len(), 5);
    assert!(amounts
        .values()
        .any(|a| a.as_deref().is_some_and(|a| a.contains('.'))));
    assert!(amounts.values().filter(|a| a.is_none()).count() >= 2 * 2 * 50);

    // Re-running a day leaves the statistics identical.
    let before = pg_checksum(&client, "ethereum.token_daily_stats", "day, token_address").await;
    harness
        .ethpipe(&db.url)
        .run(&["run", "token_transfers", "--date", DAYS[0]])
        .await
        .assert_success();
    assert_eq!(
        pg_checksum(&client, "ethereum.token_daily_stats", "day, token_address").await,
        before
    );

    // Steps are in the ledger for every run.
    let steps: Vec<(String, String)> = client
        .query("SELECT name, status FROM ethpipe.run_steps WHERE run_id = (SELECT max(id) FROM ethpipe.runs) ORDER BY position", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        steps,
        vec![
            ("load".into(), "success".into()),
            ("token_daily_stats".into(), "success".into()),
            ("index".into(), "success".into()),
            ("swap".into(), "success".into())
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_stats_and_amounts_match_an_independent_computation_in_sqlite() {
    let harness = Harness::start().await;
    let (tokens, rows) = (tokens(), transfers());
    harness.bigquery.set_tokens(tokens.clone());
    harness.bigquery.set_transfers(rows.clone());
    load_everything(&harness, &harness.sqlite_url()).await;
    assert_eq!(
        sqlite_stats(&harness.sqlite_path()),
        expected_stats(&rows, &tokens)
    );
    assert_eq!(
        sqlite_amounts(&harness.sqlite_path()),
        expected_amounts(&rows, &tokens)
    );
    harness
        .ethpipe(&harness.sqlite_url())
        .run(&["run", "token_transfers", "--date", DAYS[1]])
        .await
        .assert_success();
    assert_eq!(
        sqlite_stats(&harness.sqlite_path()),
        expected_stats(&rows, &tokens)
    );
}

const DAILY_COUNTS: &str = "
CREATE TABLE IF NOT EXISTS public.daily_counts (day date, token_address text, transfers bigint);
-- Idempotent per day: replace this day's rows.
DELETE FROM public.daily_counts WHERE day = :day;
INSERT INTO public.daily_counts
    SELECT :day, token_address, count(*) FROM ethereum.token_transfers
    WHERE block_timestamp >= :day AND block_timestamp < :day + 1
    GROUP BY token_address;
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_models_run_per_day_and_a_failing_model_rolls_back_only_its_step() {
    let harness = Harness::start().await;
    let db = fresh_database().await;
    let client = db.client().await.unwrap();
    let rows = transfers();
    harness.bigquery.set_tokens(tokens());
    harness.bigquery.set_transfers(rows.clone());
    let dir = harness.dir.path();
    std::fs::create_dir_all(dir.join("models/good")).unwrap();
    std::fs::create_dir_all(dir.join("models/bad")).unwrap();
    std::fs::write(dir.join("models/good/010_daily_counts.sql"), DAILY_COUNTS).unwrap();
    std::fs::write(dir.join("models/bad/010_daily_counts.sql"), DAILY_COUNTS).unwrap();
    std::fs::write(
        dir.join("models/bad/020_broken.sql"),
        "INSERT INTO public.daily_counts VALUES (:day, 'marker', 1);\nSELECT 1 / 0;\n",
    )
    .unwrap();
    std::fs::write(dir.join("models/bad/README.txt"), "not a model").unwrap();

    std::fs::write(
        dir.join("ethpipe.toml"),
        "[pipelines.token_transfers]\nmodels = \"models/bad\"\n",
    )
    .unwrap();
    let out = harness
        .ethpipe(&db.url)
        .run(&["run", "token_transfers", "--date", DAYS[0]])
        .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .contains("model 020_broken.sql failed: division by zero"),
        "{}",
        out.stderr
    );
    // The day and the first model committed; the failing model's insert did not.
    assert_eq!(pg_transfers(&client, "").await.len(), 250);
    let markers: i64 = client
        .query_one(
            "SELECT count(*) FROM public.daily_counts WHERE token_address = 'marker'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(markers, 0);
    let steps: Vec<(String, String, Option<String>)> = client
        .query(
            "SELECT name, status, error FROM ethpipe.run_steps ORDER BY position",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let names: Vec<&str> = steps.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "load",
            "token_daily_stats",
            "index",
            "swap",
            "010_daily_counts.sql",
            "020_broken.sql"
        ]
    );
    assert_eq!(steps[4].1, "success");
    assert_eq!(steps[5].1, "failed");
    assert!(steps[5].2.as_deref().unwrap().contains("division by zero"));
    let run: (String, String) = client
        .query_one("SELECT status, error FROM ethpipe.runs", &[])
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(run.0, "failed");
    assert!(run.1.contains("020_broken.sql"));

    // The good model alone, over both days and a re-run: one day's rows per run.
    std::fs::write(
        dir.join("ethpipe.toml"),
        "[pipelines.token_transfers]\nmodels = \"models/good\"\n",
    )
    .unwrap();
    for day in [DAYS[0], DAYS[1], DAYS[0]] {
        harness
            .ethpipe(&db.url)
            .run(&["run", "token_transfers", "--date", day])
            .await
            .assert_success();
    }
    let counts: Vec<(String, i64, i64)> = client
        .query(
            "SELECT day::text, count(*), sum(transfers)::bigint FROM public.daily_counts GROUP BY day ORDER BY day",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        counts,
        vec![(DAYS[0].to_string(), 5, 250), (DAYS[1].to_string(), 5, 250)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_models_run_on_sqlite_with_the_day_bound() {
    let harness = Harness::start().await;
    harness.bigquery.set_tokens(tokens());
    harness.bigquery.set_transfers(transfers());
    let dir = harness.dir.path();
    std::fs::create_dir_all(dir.join("models")).unwrap();
    std::fs::write(
        dir.join("models/010_counts.sql"),
        "CREATE TABLE IF NOT EXISTS daily_counts (day TEXT, token_address TEXT, transfers INTEGER);
         DELETE FROM daily_counts WHERE day = :day;
         INSERT INTO daily_counts SELECT :day, token_address, count(*) FROM token_transfers
             WHERE substr(block_timestamp, 1, 10) = :day GROUP BY token_address;",
    )
    .unwrap();
    std::fs::write(
        dir.join("ethpipe.toml"),
        "[pipelines.token_transfers]\nmodels = \"models\"\n",
    )
    .unwrap();
    for day in [DAYS[0], DAYS[1], DAYS[1]] {
        harness
            .ethpipe(&harness.sqlite_url())
            .run(&["run", "token_transfers", "--date", day])
            .await
            .assert_success();
    }
    let connection = rusqlite::Connection::open(harness.sqlite_path()).unwrap();
    let counts: Vec<(String, i64, i64)> = connection
        .prepare("SELECT day, count(*), sum(transfers) FROM daily_counts GROUP BY day ORDER BY day")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        counts,
        vec![(DAYS[0].to_string(), 5, 250), (DAYS[1].to_string(), 5, 250)]
    );
}

/// Waits until `sql` is true, for at most a minute.
async fn wait_for(client: &Client, sql: &str) {
    let started = std::time::Instant::now();
    while !client.query_one(sql, &[]).await.unwrap().get::<_, bool>(0) {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "timed out waiting for {sql}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_during_a_model_never_leaves_the_day_loaded_without_it() {
    let harness = Harness::start().await;
    let db = fresh_database().await;
    let client = db.client().await.unwrap();
    harness.bigquery.set_tokens(tokens());
    harness.bigquery.set_transfers(transfers());
    let dir = harness.dir.path();
    std::fs::create_dir_all(dir.join("models")).unwrap();
    // The model sleeps while the switch table exists (after its effect).
    std::fs::write(
        dir.join("models/010_daily_counts.sql"),
        format!(
            "{DAILY_COUNTS}\nSELECT pg_sleep(CASE WHEN to_regclass('public.slow_models') IS NULL THEN 0 ELSE 4 END);\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("ethpipe.toml"),
        "[pipelines.token_transfers]\nmodels = \"models\"\n",
    )
    .unwrap();
    harness
        .ethpipe(&db.url)
        .run(&["migrate"])
        .await
        .assert_success();
    client
        .batch_execute("CREATE TABLE public.slow_models ()")
        .await
        .unwrap();

    let mut run = harness
        .ethpipe(&db.url)
        .command(&["run", "token_transfers", "--date", DAYS[0]])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        &client,
        &format!(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = '{}'
                            AND pid <> pg_backend_pid() AND state = 'active'
                            AND query LIKE '%pg_sleep(CASE%')",
            db.name
        ),
    )
    .await;
    run.kill().await.unwrap(); // SIGKILL, mid-model

    // The day is not recorded loaded, and neither its rows nor the model's show.
    let successes: i64 = client
        .query_one(
            "SELECT count(*) FROM ethpipe.runs WHERE status = 'success'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(successes, 0);
    assert!(pg_transfers(&client, "").await.is_empty());
    let model_table: Option<String> = client
        .query_one("SELECT to_regclass('public.daily_counts')::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        model_table, None,
        "the model's table rolled back with the day"
    );

    // The next run completes the day and its model.
    client
        .batch_execute("DROP TABLE public.slow_models")
        .await
        .unwrap();
    harness
        .ethpipe(&db.url)
        .run(&["run", "token_transfers", "--date", DAYS[0]])
        .await
        .assert_success();
    assert_eq!(pg_transfers(&client, "").await.len(), 250);
    let counted: i64 = client
        .query_one(
            "SELECT sum(transfers)::bigint FROM public.daily_counts WHERE day = $1::text::date",
            &[&DAYS[0]],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(counted, 250);
    let statuses: Vec<String> = pg_runs(&client).await.into_iter().map(|r| r.0).collect();
    assert_eq!(statuses.last().map(String::as_str), Some("success"));
    assert!(!statuses.contains(&"running".to_string()), "{statuses:?}");
}
