//! PostgreSQL reads of a year of day partitions: a busy token's top
//! counterparties come from what its day's load kept, and must answer
//! exactly what summing the day's rows answers.

mod common;

use common::*;

/// Days far apart.
const SPREAD: [&str; 3] = ["2024-01-05", "2024-03-02", "2024-06-20"];

/// Rows a day: the fixture gives its third token 4 in 10 of them, 520, more
/// than the 500 above which a load keeps a token's counterparties.
const ROWS_PER_DAY: usize = 1300;

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
