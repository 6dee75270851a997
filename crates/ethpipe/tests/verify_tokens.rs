//! `verify` over tokens (issue 14, fault 6): days covered by the full load
//! are loaded, not missing; a source day with exact duplicate rows (BigQuery's
//! tokens table has them; one row per key is kept) is not a mismatch; a day
//! really missing from the table still is one.

mod common;

use common::*;
use ethpipe_testkit::fixtures;

const DAYS: [&str; 3] = ["2024-03-01", "2024-03-02", "2024-03-03"];

fn states(stdout: &str) -> Vec<(String, String)> {
    let report: serde_json::Value = serde_json::from_str(stdout).expect("verify --json");
    report["days"]
        .as_array()
        .expect("days")
        .iter()
        .map(|d| {
            (
                d["day"].as_str().unwrap_or_default().to_string(),
                d["state"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn days_of_the_full_load_and_duplicate_source_rows_verify_clean() {
    let harness = Harness::start().await;
    let mut tokens = fixtures::tokens(&DAYS);
    // An exact duplicate row on the second day, as in BigQuery's table.
    let duplicate = tokens
        .iter()
        .find(|t| t.block_timestamp_micros >= fixtures::day_start_micros(DAYS[1]))
        .expect("a token on the second day")
        .clone();
    tokens.push(duplicate);
    harness.bigquery.set_tokens(tokens);
    let db = fresh_database().await;
    harness
        .ethpipe(&db.url)
        .run(&["run", "tokens", "--full"])
        .await
        .assert_success();

    let verify = [
        "verify",
        "--pipeline",
        "tokens",
        "--from",
        DAYS[0],
        "--to",
        DAYS[2],
        "--json",
    ];
    let clean = harness.ethpipe(&db.url).run(&verify).await;
    clean.assert_success();
    let ok: Vec<(String, String)> = DAYS.iter().map(|d| (d.to_string(), "ok".into())).collect();
    assert_eq!(states(&clean.stdout), ok, "{}", clean.stdout);

    // A day whose rows are gone is still reported.
    let client = db.client().await.expect("client");
    client
        .execute(
            "DELETE FROM ethereum.tokens WHERE block_timestamp >= $1::date AND block_timestamp < $1::date + 1",
            &[&DAYS[2].parse::<chrono::NaiveDate>().expect("day")],
        )
        .await
        .expect("delete a day");
    let gap = harness.ethpipe(&db.url).run(&verify).await;
    assert_eq!(gap.code, 1, "{gap:?}");
    assert_eq!(
        states(&gap.stdout).last(),
        Some(&(DAYS[2].to_string(), "missing".to_string())),
        "{}",
        gap.stdout
    );
}
