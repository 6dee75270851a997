//! Token filters end to end (`--tokens`, `ETHPIPE_TOKENS`, `tokens = [...]`):
//! a filtered day is exactly the unfiltered day's rows of those tokens, from
//! the BigQuery-compatible server and from anvil; the filter travels in the
//! requests; a filtered load replaces only its tokens' rows; the ledger
//! records each day's filter, so widening loads what is missing and an
//! unfiltered load covers any filter; verify counts the filter's rows only.

mod common;

use std::collections::BTreeSet;

use common::*;
use ethpipe_testkit::fixtures::day_transfers;
use ethpipe_testkit::FixtureTransfer;
use tokio_postgres::Client;

const DAY: &str = "2024-03-01";
const NEXT_DAY: &str = "2024-03-02";

/// Two days of transfers over the same five token contracts (the fixture
/// draws new contracts per day; the second day reuses the first day's).
fn two_days() -> (Vec<FixtureTransfer>, Vec<String>) {
    let mut rows = day_transfers(DAY, 150, 1);
    let tokens: Vec<String> = rows
        .iter()
        .map(|t| t.token_address.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert!(tokens.len() >= 3, "the fixture day has several tokens");
    let mut next = day_transfers(NEXT_DAY, 90, 1);
    for (i, row) in next.iter_mut().enumerate() {
        row.token_address = tokens[i % tokens.len()].clone();
    }
    rows.extend(next);
    (rows, tokens)
}

fn of_tokens(rows: &[FixtureTransfer], tokens: &[&str]) -> Vec<FixtureTransfer> {
    sorted(
        &rows
            .iter()
            .filter(|t| tokens.contains(&t.token_address.as_str()))
            .cloned()
            .collect::<Vec<_>>(),
    )
}

/// The rows of every token but `token` (a token gone from the source).
fn without(rows: &[FixtureTransfer], token: &str) -> Vec<FixtureTransfer> {
    rows.iter()
        .filter(|t| t.token_address != token)
        .cloned()
        .collect()
}

fn in_list(tokens: &[&str]) -> String {
    let quoted: Vec<String> = tokens.iter().map(|t| format!("'{t}'")).collect();
    format!("WHERE token_address IN ({})", quoted.join(", "))
}

/// The rows `pg_transfers` reads, sorted like the fixtures.
async fn loaded(client: &Client, where_clause: &str) -> Vec<FixtureTransfer> {
    sorted(&pg_transfers(client, where_clause).await)
}

/// (day, token_address) of `token_daily_stats`, and the same pairs the
/// table's rows hold: the statistics must describe the table.
async fn stats_match_the_table(client: &Client) {
    let pairs = |sql: &'static str| async move {
        client
            .query(sql, &[])
            .await
            .expect("pairs")
            .iter()
            .map(|r| {
                (
                    r.get::<_, String>(0),
                    r.get::<_, String>(1),
                    r.get::<_, i64>(2),
                )
            })
            .collect::<Vec<_>>()
    };
    let stats = pairs(
        "SELECT day::text, token_address, transfer_count FROM ethereum.token_daily_stats ORDER BY 1, 2",
    )
    .await;
    let table = pairs(
        "SELECT (block_timestamp AT TIME ZONE 'UTC')::date::text, token_address, count(*)
         FROM ethereum.token_transfers GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .await;
    assert_eq!(stats, table);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_bigquery_day_is_the_unfiltered_day_of_its_tokens() {
    let harness = Harness::start().await;
    let (rows, tokens) = two_days();
    harness.bigquery.set_transfers(rows.clone());
    let (a, b) = (tokens[0].as_str(), tokens[1].as_str());
    let everything = fresh_database().await;
    let filtered = fresh_database().await;

    harness
        .ethpipe(&everything.url)
        .run(&["run", "token_transfers", "--date", DAY])
        .await
        .assert_success();
    // Any order, any case: the same filter.
    let spelled = format!("0x{},{a}", b[2..].to_uppercase());
    let out = harness
        .ethpipe(&filtered.url)
        .run(&[
            "run",
            "token_transfers",
            "--date",
            DAY,
            "--tokens",
            &spelled,
        ])
        .await;
    out.assert_success();
    assert!(out.stdout.contains("(2 tokens)"), "{}", out.stdout);

    let all = everything.client().await.unwrap();
    let some = filtered.client().await.unwrap();
    let want = loaded(&all, &in_list(&[a, b])).await;
    assert!(!want.is_empty() && want.len() < on_day(&rows, DAY).len());
    assert_eq!(want, of_tokens(&on_day(&rows, DAY), &[a, b]));
    assert_eq!(loaded(&some, "").await, want);

    // The filter is a query parameter on the token column, never SQL text.
    let queries = harness.bigquery.queries();
    let query = queries.last().expect("the filtered query");
    assert_eq!(
        query.string_array_parameter("tokens"),
        Some(vec![a.to_string(), b.to_string()])
    );
    assert!(query.sql().contains("token_address IN UNNEST(@tokens)"));
    assert!(!query.sql().contains(a));

    // Reconciliation counted the filter's rows only, and the ledger says
    // which filter the day was loaded with.
    let n = want.len() as i64;
    assert_eq!(
        pg_runs(&some).await,
        vec![("success".into(), Some(n), Some(n), None)]
    );
    let recorded: Option<String> = some
        .query_one("SELECT token_filter FROM ethpipe.runs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(recorded, Some(format!("{a},{b}")));

    // verify counts both sides with the filter: clean.
    let out = harness
        .ethpipe(&filtered.url)
        .run(&[
            "verify", "--from", DAY, "--to", DAY, "--json", "--tokens", &spelled,
        ])
        .await;
    out.assert_success();
    let report: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(report["days"][0]["state"], "ok", "{report}");
    assert_eq!(report["days"][0]["source_rows"], n);
    assert_eq!(report["days"][0]["database_rows"], n);
    let count = harness.bigquery.queries();
    let count = count.last().expect("the count query");
    assert!(count.sql().contains("COUNT(*)"), "{}", count.sql());
    assert_eq!(
        count.string_array_parameter("tokens"),
        Some(vec![a.to_string(), b.to_string()])
    );
    // Unfiltered, the same database is missing the other tokens' rows.
    let out = harness
        .ethpipe(&filtered.url)
        .run(&["verify", "--from", DAY, "--to", DAY])
        .await;
    assert_eq!(out.code, 1, "{out:?}");
}

async fn backfill_both_days(
    harness: &Harness,
    url: &str,
    filter: Option<String>,
) -> ethpipe_testkit::Output {
    let mut args = vec![
        "backfill",
        "token_transfers",
        "--from",
        DAY,
        "--to",
        NEXT_DAY,
    ];
    if let Some(filter) = &filter {
        args.extend(["--tokens", filter.as_str()]);
    }
    harness.ethpipe(url).run(&args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn widening_narrowing_and_unfiltered_loads_follow_the_ledger() {
    let harness = Harness::start().await;
    let (rows, tokens) = two_days();
    harness.bigquery.set_transfers(rows.clone());
    let (a, b, c) = (tokens[0].as_str(), tokens[1].as_str(), tokens[2].as_str());
    let db = fresh_database().await;
    let client = db.client().await.unwrap();
    let backfill = |filter: Option<String>| backfill_both_days(&harness, &db.url, filter);

    let out = backfill(Some(a.to_string())).await;
    out.assert_success();
    assert!(out.stdout.contains("2 days loaded"), "{}", out.stdout);
    assert_eq!(loaded(&client, "").await, of_tokens(&rows, &[a]));

    // Widening: {A} does not cover {A, B}; both days load again.
    let ab = format!("{a},{b}");
    let out = backfill(Some(ab.clone())).await;
    out.assert_success();
    assert!(out.stdout.contains("2 days loaded"), "{}", out.stdout);
    assert_eq!(loaded(&client, "").await, of_tokens(&rows, &[a, b]));
    stats_match_the_table(&client).await;
    let status = harness.ethpipe(&db.url).run(&["status", "--json"]).await;
    status.assert_success();
    let status: serde_json::Value = serde_json::from_str(&status.stdout).expect("JSON");
    let filtered_days = &status["pipelines"][0]["filtered_days"];
    assert_eq!(filtered_days[0]["day"], DAY, "{status}");
    assert_eq!(filtered_days[1]["tokens"], serde_json::json!([a, b]));
    assert_eq!(
        status["pipelines"][0]["recent_runs"][0]["token_filter"],
        ab.as_str()
    );

    // Narrowing: {A, B} covers {A}; nothing to do.
    let out = backfill(Some(a.to_string())).await;
    out.assert_success();
    assert!(
        out.stdout.contains("0 days loaded (0 rows), 2 skipped"),
        "{}",
        out.stdout
    );

    // Re-loading {A} replaces A's rows only: with B gone from the source,
    // B's rows stay, and so do their statistics.
    let before_b = loaded(&client, &in_list(&[b])).await;
    harness.bigquery.set_transfers(without(&rows, b));
    harness
        .ethpipe(&db.url)
        .run(&["run", "token_transfers", "--date", DAY, "--tokens", a])
        .await
        .assert_success();
    assert_eq!(loaded(&client, &in_list(&[b])).await, before_b);
    assert_eq!(loaded(&client, "").await, of_tokens(&rows, &[a, b]));
    stats_match_the_table(&client).await;
    harness.bigquery.set_transfers(rows.clone());

    // A filtered day is not loaded for every token; an unfiltered load is
    // loaded for any filter.
    let out = backfill(None).await;
    out.assert_success();
    assert!(out.stdout.contains("2 days loaded"), "{}", out.stdout);
    assert_eq!(loaded(&client, "").await, sorted(&rows));
    stats_match_the_table(&client).await;
    let out = backfill(Some(format!("{a},{b},{c}"))).await;
    out.assert_success();
    assert!(out.stdout.contains("2 skipped"), "{}", out.stdout);

    for filter in [Some(ab.as_str()), Some(c), None] {
        let mut args = vec!["verify", "--from", DAY, "--to", NEXT_DAY];
        if let Some(filter) = filter {
            args.extend(["--tokens", filter]);
        }
        let out = harness.ethpipe(&db.url).run(&args).await;
        out.assert_success();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_replaces_only_the_filtered_tokens_and_their_statistics() {
    let harness = Harness::start().await;
    let (rows, tokens) = two_days();
    harness.bigquery.set_transfers(rows.clone());
    let (a, b) = (tokens[0].as_str(), tokens[1].as_str());
    let url = harness.sqlite_url();
    harness
        .ethpipe(&url)
        .run(&["run", "token_transfers", "--date", DAY])
        .await
        .assert_success();
    let stats = || {
        let connection = rusqlite::Connection::open(harness.sqlite_path()).expect("open");
        let mut statement = connection
            .prepare("SELECT token_address, transfer_count FROM token_daily_stats WHERE day = ?1 ORDER BY 1")
            .expect("prepare");
        let rows = statement
            .query_map([DAY], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .expect("query");
        rows.collect::<Result<Vec<_>, _>>().expect("rows")
    };
    let before = stats();
    assert!(before.iter().any(|(token, _)| token == b));

    // B disappears from the source; a load of {A} must not notice.
    harness.bigquery.set_transfers(without(&rows, b));
    harness
        .ethpipe(&url)
        .env("ETHPIPE_TOKENS", a)
        .run(&["run", "token_transfers", "--date", DAY])
        .await
        .assert_success();
    assert_eq!(
        sorted(&sqlite_transfers(&harness.sqlite_path())),
        on_day(&rows, DAY)
    );
    assert_eq!(stats(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_config_file_filter_applies_unless_the_flag_overrides_it() {
    let harness = Harness::start().await;
    let (rows, tokens) = two_days();
    harness.bigquery.set_transfers(rows.clone());
    let (a, b) = (tokens[0].as_str(), tokens[1].as_str());
    let config = harness.dir.path().join("filtered.toml");
    std::fs::write(
        &config,
        format!("[pipelines.token_transfers]\ntokens = [\"{a}\"]\n"),
    )
    .unwrap();
    let db = fresh_database().await;
    let client = db.client().await.unwrap();
    let ethpipe = || {
        harness
            .ethpipe(&db.url)
            .env("ETHPIPE_CONFIG", config.display().to_string())
    };
    ethpipe()
        .run(&["run", "token_transfers", "--date", DAY])
        .await
        .assert_success();
    assert_eq!(
        loaded(&client, "").await,
        of_tokens(&on_day(&rows, DAY), &[a])
    );
    ethpipe()
        .env("ETHPIPE_TOKENS", b)
        .run(&["run", "token_transfers", "--date", DAY])
        .await
        .assert_success();
    ethpipe()
        .env(
            "ETHPIPE_TOKENS",
            "0x0000000000000000000000000000000000000001",
        )
        .run(&["run", "token_transfers", "--date", DAY, "--tokens", b])
        .await
        .assert_success();
    assert_eq!(
        loaded(&client, "").await,
        of_tokens(&on_day(&rows, DAY), &[a, b])
    );
    let status = ethpipe().run(&["status", "--json"]).await;
    status.assert_success();
    let status: serde_json::Value = serde_json::from_str(&status.stdout).expect("JSON");
    assert_eq!(status["pipelines"][0]["tokens"], serde_json::json!([a]));
}
