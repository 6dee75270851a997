//! PostgreSQL reads of a year of day partitions: an address's pages read a
//! window of days at a time, and a busy token's top counterparties come from
//! what its day's load kept. Both must answer exactly what one scan of the
//! whole table answers.

mod common;

use common::*;
use serde_json::Value;

/// Days in three different 30-day windows, with empty windows between them.
const SPREAD: [&str; 3] = ["2024-01-05", "2024-03-02", "2024-06-20"];

/// Rows a day: the fixture gives its third token 4 in 10 of them, 520, more
/// than the 500 above which a load keeps a token's counterparties.
const ROWS_PER_DAY: usize = 1300;

/// A transfer of the whale written straight into the parent table at
/// `at` (a day without a partition, so it lands in the default partition).
async fn insert_outside_the_days(client: &tokio_postgres::Client, at: &str, n: i64) {
    client
        .execute(
            "INSERT INTO ethereum.token_transfers (token_address, from_address, to_address, value,
                 transaction_hash, log_index, block_timestamp, block_number, block_hash)
             VALUES ($1, $2, $3, 5, '0x' || lpad(to_hex($4::bigint), 64, '0'), 0,
                     CAST(CAST($5 AS TEXT) AS timestamptz),
                     CAST(extract(epoch FROM CAST(CAST($5 AS TEXT) AS timestamptz)) AS bigint) / 12,
                     '0x' || lpad('1', 64, '0'))",
            &[
                &token_addresses()[1],
                &whale(),
                &format!("0x{}", "c3".repeat(20)),
                &n,
                &at,
            ],
        )
        .await
        .unwrap();
}

async fn assert_whale_pages_match(env: &Env, client: &tokio_postgres::Client, what: &str) {
    let (rows, _) = pg_rows(client).await;
    for direction in ["both", "in", "out"] {
        let expected = expected_transfers(&rows, &whale(), direction);
        let seen = page_all(env, &whale(), direction, 7, |_: &Value| {}).await;
        assert_eq!(seen, expected, "{what}, direction {direction}");
        // Pages as large as the API allows cross every window in one page.
        let seen = page_all(env, &whale(), direction, 100, |_: &Value| {}).await;
        assert_eq!(seen, expected, "{what}, direction {direction}, limit 100");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn address_pages_cross_windows_and_gaps_like_one_scan() {
    let env = Env::start(Options {
        rows_per_day: ROWS_PER_DAY,
        days: &SPREAD,
        ..Options::default()
    })
    .await;
    let client = env.pg().await;
    assert_whale_pages_match(&env, &client, "only loaded days").await;

    // Rows of days without a partition: in an empty window between loaded
    // ones, before the oldest and after the newest loaded day.
    for (n, at) in [
        "2024-04-15 10:00:00+00",
        "2023-11-01 00:00:00+00",
        "2024-06-21 08:00:00+00",
        "2024-09-30 23:59:59+00",
    ]
    .into_iter()
    .enumerate()
    {
        insert_outside_the_days(&client, at, n as i64 + 1).await;
    }
    let default_rows: i64 = client
        .query_one("SELECT count(*) FROM ethereum.token_transfers_default", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(default_rows, 4);
    assert_whale_pages_match(&env, &client, "rows in the default partition").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_tokens_top_counterparties_come_from_its_load_and_match_its_rows() {
    let env = Env::start(Options {
        rows_per_day: ROWS_PER_DAY,
        days: &SPREAD[..1],
        ..Options::default()
    })
    .await;
    let client = env.pg().await;
    let (rows, _) = pg_rows(&client).await;
    let day = SPREAD[0];
    let busy = &token_addresses()[2];
    let quiet = &token_addresses()[0];
    let kept = |token: &String| {
        let client = &client;
        let token = token.clone();
        async move {
            client
                .query_one(
                    "SELECT count(*) FROM ethereum.token_daily_counterparties
                     WHERE day = CAST(CAST($1 AS TEXT) AS date) AND token_address = $2",
                    &[&day, &token],
                )
                .await
                .unwrap()
                .get::<_, i64>(0)
        }
    };
    assert!(rows.iter().filter(|r| &r.token == busy).count() > 500);
    assert!(kept(busy).await > 0, "the load keeps the busy token's");
    assert!(rows.iter().filter(|r| &r.token == quiet).count() <= 500);
    assert_eq!(kept(quiet).await, 0, "and only the busy token's");

    for token in [busy, quiet] {
        for limit in [5, 100] {
            let body = env
                .get(
                    &format!("/api/v1/tokens/{token}/top?day={day}&limit={limit}"),
                    200,
                )
                .await;
            for (key, senders) in [("senders", true), ("receivers", false)] {
                let got: Vec<(String, i64, String)> = body[key]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|g| {
                        (
                            g["address"].as_str().unwrap().to_string(),
                            g["transfers"].as_i64().unwrap(),
                            g["volume_raw"].as_str().unwrap().to_string(),
                        )
                    })
                    .collect();
                let expected = expected_top(&rows, token, day, senders, limit);
                assert!(!expected.is_empty());
                assert_eq!(got, expected, "{token} {key} limit {limit}");
            }
        }
    }

    // A day loaded before the table existed has no kept rows: the page sums
    // the day's rows instead, with the same answer.
    client
        .execute("DELETE FROM ethereum.token_daily_counterparties", &[])
        .await
        .unwrap();
    let body = env
        .get(&format!("/api/v1/tokens/{busy}/top?day={day}&limit=5"), 200)
        .await;
    let first = &body["senders"][0];
    let expected = expected_top(&rows, busy, day, true, 1);
    assert_eq!(first["address"].as_str(), Some(expected[0].0.as_str()));
    assert_eq!(first["transfers"].as_i64(), Some(expected[0].1));
}
