//! The JSON API on real PostgreSQL (and SQLite) loaded through the real
//! runner: each endpoint's answer is checked against figures computed here
//! from the rows read straight out of the tables, and bad input gets a 400
//! with a message.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use common::*;
use serde_json::Value;

fn s(value: &Value) -> Option<String> {
    value.as_str().map(str::to_string)
}

/// Expected day overview: (token, transfers, senders, receivers) ranked.
fn expected_day(rows: &[Row], day: &str) -> Vec<(String, i64, i64, i64, String)> {
    let mut per_token: BTreeMap<String, (i64, BTreeSet<String>, BTreeSet<String>, String)> =
        BTreeMap::new();
    for r in rows.iter().filter(|r| r.day == day) {
        let e = per_token
            .entry(r.token.clone())
            .or_insert_with(|| (0, BTreeSet::new(), BTreeSet::new(), "0".into()));
        e.0 += 1;
        if let Some(f) = &r.from {
            e.1.insert(f.clone());
        }
        if let Some(t) = &r.to {
            e.2.insert(t.clone());
        }
        if let Some(v) = &r.value {
            e.3 = add(&e.3, v);
        }
    }
    let mut ranked: Vec<_> = per_token
        .into_iter()
        .map(|(token, (n, senders, receivers, volume))| {
            (
                token,
                n,
                senders.len() as i64,
                receivers.len() as i64,
                volume,
            )
        })
        .collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    ranked
}

/// Checks the serving endpoints against `rows` and `tokens` (either database).
async fn check_serving_endpoints(env: &Env, rows: &[Row], tokens: &[TokenRow]) {
    let latest = latest_tokens(tokens);
    let addresses = token_addresses();
    let decimals_of = |token: &str| latest.get(token).and_then(|t| t.decimals.clone());

    // Day overview: ranking, counts and scaled volume.
    for day in DAYS {
        let body = env.get(&format!("/api/v1/days/{day}?limit=4"), 200).await;
        let expected = expected_day(rows, day);
        assert_eq!(body["tokens"], expected.len() as i64, "{day}");
        assert_eq!(
            body["transfers"],
            rows.iter().filter(|r| r.day == day).count() as i64
        );
        let top = body["top_tokens"].as_array().unwrap();
        assert_eq!(top.len(), 4);
        for (got, (token, n, senders, receivers, volume)) in top.iter().zip(&expected) {
            assert_eq!(s(&got["token_address"]).as_deref(), Some(token.as_str()));
            assert_eq!(got["transfer_count"], *n);
            assert_eq!(got["unique_senders"], *senders);
            assert_eq!(got["unique_receivers"], *receivers);
            let decimals = decimals_of(token);
            assert_eq!(
                s(&got["volume"]),
                scale(volume, decimals.as_deref()),
                "volume of {token}"
            );
            assert_eq!(
                s(&got["symbol"]),
                latest.get(token).and_then(|t| t.symbol.clone())
            );
        }
    }

    // Daily statistics of each token, oldest first.
    for token in &addresses {
        let body = env.get(&format!("/api/v1/tokens/{token}/daily"), 200).await;
        let days = body["days"].as_array().unwrap();
        let expected: Vec<(String, i64, String)> = DAYS
            .iter()
            .filter_map(|day| {
                expected_day(rows, day)
                    .into_iter()
                    .find(|e| &e.0 == token)
                    .map(|e| (day.to_string(), e.1, e.4))
            })
            .collect();
        assert_eq!(days.len(), expected.len(), "{token}");
        for (got, (day, n, volume)) in days.iter().zip(&expected) {
            assert_eq!(s(&got["day"]).as_deref(), Some(day.as_str()));
            assert_eq!(got["transfer_count"], *n);
            assert_eq!(s(&got["volume_raw"]).as_deref(), Some(volume.as_str()));
            assert_eq!(
                s(&got["volume"]),
                scale(volume, decimals_of(token).as_deref())
            );
        }
        // A bounded range keeps only its days.
        let one = env
            .get(
                &format!("/api/v1/tokens/{token}/daily?from={0}&to={0}", DAYS[1]),
                200,
            )
            .await;
        assert_eq!(one["days"].as_array().unwrap().len(), 1);
    }

    // Top senders and receivers.
    let token = &addresses[1];
    let body = env
        .get(
            &format!("/api/v1/tokens/{token}/top?day={}&limit=5", DAYS[1]),
            200,
        )
        .await;
    assert_eq!(s(&body["day"]).as_deref(), Some(DAYS[1]));
    for (key, senders) in [("senders", true), ("receivers", false)] {
        let got = body[key].as_array().unwrap();
        let expected = expected_top(rows, token, DAYS[1], senders, 5);
        assert_eq!(got.len(), expected.len(), "{key}");
        for (g, (address, n, volume)) in got.iter().zip(&expected) {
            assert_eq!(s(&g["address"]).as_deref(), Some(address.as_str()), "{key}");
            assert_eq!(g["transfers"], *n);
            assert_eq!(s(&g["volume_raw"]).as_deref(), Some(volume.as_str()));
            assert_eq!(s(&g["volume"]), scale(volume, Some("6")));
        }
    }
    // Without a day: the token's latest day.
    let latest_day = env.get(&format!("/api/v1/tokens/{token}/top"), 200).await;
    assert_eq!(s(&latest_day["day"]).as_deref(), Some(DAYS[2]));

    // An address's transfers, paged with the keyset, in each direction.
    let whale = whale();
    for direction in ["both", "in", "out"] {
        let seen = page_all(env, &whale, direction, 7, |t| {
            let dir = t["direction"].as_str().unwrap();
            match direction {
                "in" => assert!(dir == "in" || dir == "self"),
                "out" => assert!(dir == "out" || dir == "self"),
                _ => {}
            }
            let value = s(&t["value"]);
            let decimals = decimals_of(t["token_address"].as_str().unwrap());
            assert_eq!(
                s(&t["amount"]),
                value.as_deref().and_then(|v| scale(v, decimals.as_deref()))
            );
        })
        .await;
        let expected = expected_transfers(rows, &whale, direction);
        assert!(
            expected.len() > 14,
            "the fixture gives the whale several pages"
        );
        assert_eq!(seen, expected, "direction {direction}");
    }
    let upper = whale.to_uppercase().replacen("0X", "0x", 1);
    let page = env
        .get(&format!("/api/v1/addresses/{upper}/transfers?limit=3"), 200)
        .await;
    assert_eq!(
        s(&page["address"]),
        Some(whale.clone()),
        "addresses are case-insensitive"
    );

    // Token metadata: the latest deployment of a redeployed address.
    let redeployed = &addresses[0];
    let token_body = env.get(&format!("/api/v1/tokens/{redeployed}"), 200).await;
    let expected = &latest[redeployed];
    assert_eq!(s(&token_body["symbol"]), expected.symbol);
    assert_eq!(token_body["block_number"], expected.block_number);
    assert_eq!(
        token_body["deployments"],
        tokens.iter().filter(|t| &t.address == redeployed).count() as i64
    );
    assert_eq!(token_body["deployments"], 2);
    env.get(&format!("/api/v1/tokens/{}", unknown_token()), 404)
        .await;

    // Search: by symbol or name (any case), exact symbol first; by address prefix.
    let body = env.get("/api/v1/tokens?q=tk1", 200).await;
    let hits = body["tokens"].as_array().unwrap();
    assert_eq!(s(&hits[0]["symbol"]).as_deref(), Some("TK1"));
    let body = env.get("/api/v1/tokens?q=token&limit=100", 200).await;
    let found: BTreeSet<String> = body["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| s(&t["address"]).unwrap())
        .collect();
    let expected: BTreeSet<String> = tokens
        .iter()
        .filter(|t| {
            let has = |v: &Option<String>| {
                v.as_deref()
                    .is_some_and(|v| v.to_lowercase().contains("token"))
            };
            has(&t.symbol) || has(&t.name)
        })
        .map(|t| t.address.clone())
        .collect();
    assert_eq!(found, expected);
    let prefix = &addresses[2][..10];
    let body = env.get(&format!("/api/v1/tokens?q={prefix}"), 200).await;
    let found: Vec<String> = body["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| s(&t["address"]).unwrap())
        .collect();
    let expected: BTreeSet<&String> = latest.keys().filter(|a| a.starts_with(prefix)).collect();
    assert_eq!(found.iter().collect::<BTreeSet<_>>(), expected);
    let body = env.get("/api/v1/tokens?q=%25", 200).await;
    assert!(
        body["tokens"].as_array().unwrap().is_empty(),
        "% is a literal, not a wildcard"
    );
}

async fn check_bad_inputs(env: &Env) {
    let token = &token_addresses()[0];
    let cases = [
        ("/api/v1/tokens/0x123".to_string(), "invalid address"),
        (
            "/api/v1/tokens/nothex0000000000000000000000000000000000000".to_string(),
            "invalid address",
        ),
        (
            format!("/api/v1/tokens/{token}/daily?from=2024-13-01"),
            "invalid from",
        ),
        (
            format!("/api/v1/tokens/{token}/daily?from=2024-03-02&to=2024-03-01"),
            "is after",
        ),
        (
            format!("/api/v1/tokens/{token}/daily?from=1990-01-01&to=2024-03-01"),
            "at most",
        ),
        (
            format!("/api/v1/tokens/{token}/daily?limit=0"),
            "invalid limit",
        ),
        (
            format!("/api/v1/tokens/{token}/top?day=yesterday"),
            "invalid day",
        ),
        (
            format!("/api/v1/tokens/{token}/top?limit=101"),
            "invalid limit",
        ),
        ("/api/v1/tokens".to_string(), "invalid q"),
        (format!("/api/v1/tokens?q={}", "x".repeat(101)), "invalid q"),
        (
            format!("/api/v1/addresses/{token}/transfers?limit=1000"),
            "invalid limit",
        ),
        (
            format!("/api/v1/addresses/{token}/transfers?limit=-5"),
            "invalid limit",
        ),
        (
            format!("/api/v1/addresses/{token}/transfers?cursor=abc"),
            "invalid cursor",
        ),
        (
            format!("/api/v1/addresses/{token}/transfers?direction=sideways"),
            "invalid direction",
        ),
        ("/api/v1/days/2024-02-30".to_string(), "invalid day"),
        (
            "/api/v1/runs?pipeline=blocks".to_string(),
            "unknown pipeline",
        ),
        ("/api/v1/runs?status=done".to_string(), "invalid status"),
        ("/api/v1/runs?before=0".to_string(), "invalid before"),
        ("/api/v1/runs/abc".to_string(), "invalid run id"),
        ("/api/v1/runs/1/logs?after=-1".to_string(), "invalid after"),
    ];
    for (path, message) in cases {
        let body = env.get(&path, 400).await;
        let error = body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{path}: {body}"));
        assert!(error.contains(message), "{path}: {error}");
    }
    let mutations = [
        (
            "POST",
            "/api/v1/runs",
            r#"{"pipeline":"blocks","day":"2024-03-01"}"#,
            "unknown pipeline",
        ),
        (
            "POST",
            "/api/v1/runs",
            r#"{"pipeline":"tokens","day":"03/01/2024"}"#,
            "invalid day",
        ),
        (
            "POST",
            "/api/v1/runs",
            r#"{"pipeline":"tokens"}"#,
            "invalid JSON body",
        ),
        (
            "POST",
            "/api/v1/runs",
            r#"{"pipeline":"tokens","day":"2024-03-01","x":1}"#,
            "invalid JSON body",
        ),
        ("POST", "/api/v1/runs", "not json", "invalid JSON body"),
        (
            "POST",
            "/api/v1/backfills",
            r#"{"pipeline":"tokens","from":"2024-03-05","to":"2024-03-01"}"#,
            "is after",
        ),
        (
            "POST",
            "/api/v1/backfills",
            r#"{"pipeline":"tokens","from":"2024-03-01","to":"2024-03-02","parallel":99}"#,
            "invalid parallel",
        ),
        (
            "POST",
            "/api/v1/backfills",
            r#"{"pipeline":"tokens","from":"2024-03-01","to":"2024-03-02","parallel":"two"}"#,
            "invalid JSON body",
        ),
        (
            "PUT",
            "/api/v1/triggers/daily/active",
            r#"{"active":"yes"}"#,
            "invalid JSON body",
        ),
    ];
    for (method, path, body, message) in mutations {
        let (code, answer) = env.send(method, path, body, None).await;
        assert_eq!(code, 400, "{method} {path} {body}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(message),
            "{body}: {answer}"
        );
    }
    // Not JSON at all, and too large.
    let response = env
        .http
        .post(format!("{}/api/v1/runs", env.base))
        .header("content-type", "text/plain")
        .body("pipeline=tokens")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 415);
    let big = format!(r#"{{"pipeline":"tokens","day":"{}"}}"#, "9".repeat(20_000));
    let (code, _) = env.send("POST", "/api/v1/runs", &big, None).await;
    assert_eq!(code, 413);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serving_endpoints_match_the_tables_on_postgres() {
    let env = Env::start(Options::default()).await;
    let client = env.pg().await;
    let (rows, tokens) = pg_rows(&client).await;
    assert_eq!(rows.len(), 3 * 240);
    check_serving_endpoints(&env, &rows, &tokens).await;
    check_bad_inputs(&env).await;
}

/// The full load's rows, and the first and last day tokens were created
/// (SQLite's spelling; the PostgreSQL test rewrites them).
const FULL_LOAD_ROWS: &str =
    "SELECT CAST(rows_written AS TEXT) FROM ethpipe_runs WHERE pipeline = 'tokens' AND day IS NULL AND status = 'success'";
const FIRST_CREATION_DAY: &str = "SELECT substr(min(block_timestamp), 1, 10) FROM tokens";
const LAST_CREATION_DAY: &str = "SELECT substr(max(block_timestamp), 1, 10) FROM tokens";

/// Every finished run has a duration above zero (milliseconds are kept),
/// and the tokens row counts its full load: the rows it wrote and the
/// creation days its tokens cover.
fn assert_durations_and_full_load(
    pipelines: &Value,
    runs: &Value,
    answer: impl Fn(&str) -> String,
) {
    for run in runs["runs"].as_array().unwrap() {
        assert!(run["duration_seconds"].as_f64().unwrap() > 0.0, "{run}");
    }
    let tokens = pipelines["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pipeline"] == "tokens")
        .unwrap();
    assert_eq!(tokens["full_load_done"], true, "{tokens}");
    assert_eq!(
        tokens["rows_loaded"].as_i64().unwrap().to_string(),
        answer(FULL_LOAD_ROWS),
        "{tokens}"
    );
    let (first, last) = (answer(FIRST_CREATION_DAY), answer(LAST_CREATION_DAY));
    assert_eq!(tokens["first_day"], first.as_str(), "{tokens}");
    assert_eq!(tokens["last_day"], last.as_str(), "{tokens}");
    let span = (last.parse::<chrono::NaiveDate>().unwrap()
        - first.parse::<chrono::NaiveDate>().unwrap())
    .num_days()
        + 1;
    assert_eq!(tokens["days_loaded"], span, "{tokens}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serving_endpoints_match_the_tables_on_sqlite() {
    let env = Env::start(Options {
        backend: Backend::Sqlite,
        ..Options::default()
    })
    .await;
    let (rows, tokens) = sqlite_rows(&env.sqlite_path());
    assert_eq!(rows.len(), 3 * 240);
    check_serving_endpoints(&env, &rows, &tokens).await;
    // The dashboard's reads work on SQLite too.
    let pipelines = env.get("/api/v1/pipelines", 200).await;
    assert_eq!(pipelines["pipelines"][0]["days_loaded"], 3);
    assert_eq!(pipelines["pipelines"][0]["rows_loaded"], 720);
    let runs = env.get("/api/v1/runs?limit=100", 200).await;
    assert_eq!(runs["runs"].as_array().unwrap().len(), 4);
    assert_durations_and_full_load(&pipelines, &runs, |sql| {
        let c = rusqlite::Connection::open(env.sqlite_path()).unwrap();
        c.query_row(sql, [], |r| r.get::<_, String>(0)).unwrap()
    });
    for page in [
        "/",
        "/runs",
        "/runs/1",
        "/days/2024-03-02",
        &format!("/tokens/{}", token_addresses()[1]),
    ] {
        let (code, html) = env.get_text(page).await;
        assert_eq!(code, 200, "{page}: {html}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_endpoints_match_the_ledger() {
    let env = Env::start(Options::default()).await;
    let client = env.pg().await;
    env.database
        .ledger()
        .sync_triggers(&[ethpipe_sinks::TriggerDef {
            name: "daily_transfers".into(),
            pipeline: "token_transfers".into(),
            schedule: "0 1 * * *".into(),
            active: false,
            day_offset: 1,
            max_attempts: 3,
            backoff_seconds: 60,
            timeout_seconds: 3600,
            catchup_days: 3,
        }])
        .await
        .unwrap();

    // Durations and the tokens full load, as the dashboard shows them.
    let pipelines = env.get("/api/v1/pipelines", 200).await;
    let all_runs = env.get("/api/v1/runs?limit=100", 200).await;
    let mut answers = std::collections::HashMap::new();
    for sql in [FULL_LOAD_ROWS, FIRST_CREATION_DAY, LAST_CREATION_DAY] {
        let postgres = sql
            .replace("ethpipe_runs", "ethpipe.runs")
            .replace("FROM tokens", "FROM ethereum.tokens")
            .replace(
                "substr(min(block_timestamp), 1, 10)",
                "min((block_timestamp AT TIME ZONE 'UTC')::date)::text",
            )
            .replace(
                "substr(max(block_timestamp), 1, 10)",
                "max((block_timestamp AT TIME ZONE 'UTC')::date)::text",
            );
        let answer: String = client.query_one(&postgres, &[]).await.unwrap().get(0);
        answers.insert(sql, answer);
    }
    assert_durations_and_full_load(&pipelines, &all_runs, |sql| answers[sql].clone());

    // Runs, newest first, paged by id.
    let ids: Vec<i64> = client
        .query("SELECT id FROM ethpipe.runs ORDER BY id DESC", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids.len(), 4);
    let first = env.get("/api/v1/runs?limit=3", 200).await;
    let got: Vec<i64> = first["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(got, ids[..3]);
    assert_eq!(first["next_before"], ids[2]);
    let second = env
        .get(&format!("/api/v1/runs?limit=3&before={}", ids[2]), 200)
        .await;
    assert_eq!(second["runs"].as_array().unwrap().len(), 1);
    assert!(second["next_before"].is_null());
    let tokens_runs = env.get("/api/v1/runs?pipeline=tokens", 200).await;
    assert_eq!(tokens_runs["runs"].as_array().unwrap().len(), 1);
    assert!(env.get("/api/v1/runs?status=failed", 200).await["runs"]
        .as_array()
        .unwrap()
        .is_empty());

    // One run, its steps and log lines.
    let run_id = ids[0];
    let body = env.get(&format!("/api/v1/runs/{run_id}"), 200).await;
    let row = client
        .query_one(
            "SELECT status, rows_written, source_rows, day::text FROM ethpipe.runs WHERE id = $1",
            &[&run_id],
        )
        .await
        .unwrap();
    assert_eq!(body["run"]["status"], row.get::<_, String>(0));
    assert_eq!(
        body["run"]["rows_written"],
        row.get::<_, Option<i64>>(1).unwrap()
    );
    assert_eq!(
        body["run"]["source_rows"],
        row.get::<_, Option<i64>>(2).unwrap()
    );
    assert_eq!(s(&body["run"]["day"]), row.get::<_, Option<String>>(3));
    let steps: Vec<String> = client
        .query(
            "SELECT name FROM ethpipe.run_steps WHERE run_id = $1 ORDER BY position",
            &[&run_id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let got: Vec<String> = body["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, steps);
    assert!(!steps.is_empty());
    let logs: Vec<(i64, String)> = client
        .query(
            "SELECT id, message FROM ethpipe.run_logs WHERE run_id = $1 ORDER BY id",
            &[&run_id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let body = env.get(&format!("/api/v1/runs/{run_id}/logs"), 200).await;
    let got: Vec<(i64, String)> = body["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["id"].as_i64().unwrap(), s(&l["message"]).unwrap()))
        .collect();
    assert_eq!(got, logs);
    assert!(!logs.is_empty());
    let after = env
        .get(
            &format!("/api/v1/runs/{run_id}/logs?after={}", logs[0].0),
            200,
        )
        .await;
    assert_eq!(after["logs"].as_array().unwrap().len(), logs.len() - 1);
    env.get("/api/v1/runs/999999", 404).await;
    env.get("/api/v1/runs/999999/logs", 404).await;

    // Pipelines: days and rows loaded, last run, triggers.
    let body = env.get("/api/v1/pipelines", 200).await;
    let transfers = &body["pipelines"][0];
    assert_eq!(transfers["pipeline"], "token_transfers");
    let (count, rows): (i64, i64) = {
        let r = client
            .query_one(
                "SELECT count(DISTINCT day), sum(rows_written)::bigint FROM ethpipe.runs
                 WHERE pipeline = 'token_transfers' AND status = 'success'",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(transfers["days_loaded"], count);
    assert_eq!(transfers["rows_loaded"], rows);
    let table_rows: i64 = client
        .query_one("SELECT count(*) FROM ethereum.token_transfers", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, table_rows);
    assert_eq!(transfers["first_day"], DAYS[0]);
    assert_eq!(transfers["last_day"], DAYS[2]);
    assert_eq!(transfers["gap_days"], 0);
    assert_eq!(transfers["last_run"]["id"], ids[0]);
    assert_eq!(transfers["triggers"][0]["name"], "daily_transfers");
    assert_eq!(body["pipelines"][1]["full_load_done"], true);

    // Toggling a trigger is stored in the database.
    let (code, answer) = env
        .send(
            "PUT",
            "/api/v1/triggers/daily_transfers/active",
            r#"{"active":true}"#,
            None,
        )
        .await;
    assert_eq!(code, 200, "{answer}");
    let active: bool = client
        .query_one(
            "SELECT active FROM ethpipe.triggers WHERE name = 'daily_transfers'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(active);
    let triggers = env.get("/api/v1/triggers", 200).await;
    assert_eq!(triggers["triggers"][0]["active"], true);
    assert!(triggers["triggers"][0]["next_run"].is_string());
    let (code, _) = env
        .send(
            "PUT",
            "/api/v1/triggers/nope/active",
            r#"{"active":true}"#,
            None,
        )
        .await;
    assert_eq!(code, 404);

    // Without a token, a non-loopback Host (DNS rebinding) cannot change anything.
    for host in ["rebind.example", "rebind.example:6789", "192.0.2.1:6789"] {
        let response = env
            .http
            .put(format!(
                "{}/api/v1/triggers/daily_transfers/active",
                env.base
            ))
            .header("host", host)
            .header("content-type", "application/json")
            .body(r#"{"active":false}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 403, "Host {host}");
    }
    for host in ["localhost:1234", "[::1]:1", "127.0.0.2"] {
        let response = env
            .http
            .put(format!(
                "{}/api/v1/triggers/daily_transfers/active",
                env.base
            ))
            .header("host", host)
            .header("content-type", "application/json")
            .body(r#"{"active":true}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "Host {host}");
    }
    let still: bool = client
        .query_one(
            "SELECT active FROM ethpipe.triggers WHERE name = 'daily_transfers'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(still, "the refused requests changed nothing");

    // Metrics: the ledger's figures.
    let (code, metrics) = env.get_text("/metrics").await;
    assert_eq!(code, 200);
    assert!(
        metrics.contains("ethpipe_runs{pipeline=\"token_transfers\",status=\"success\"} 3\n"),
        "{metrics}"
    );
    assert!(metrics.contains(&format!(
        "ethpipe_rows_loaded_total{{pipeline=\"token_transfers\"}} {rows}\n"
    )));
    assert!(metrics.contains(
        "ethpipe_run_duration_seconds_count{pipeline=\"token_transfers\",status=\"success\"} 3\n"
    ));
    assert!(metrics.contains("ethpipe_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/runs\",le=\"+Inf\"}"));
    assert!(metrics.contains("ethpipe_http_requests_total{method=\"PUT\",route=\"/api/v1/triggers/{name}/active\",status=\"404\"} 1\n"));
    assert_eq!(env.get_text("/healthz").await.0, 200);
    let (code, ready) = env.get_text("/readyz").await;
    assert_eq!(code, 200, "{ready}");
    let ready: serde_json::Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(ready["ready"], true, "{ready}");
    assert_eq!(ready["database"]["ok"], true, "{ready}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_and_backfills_start_in_process_and_show_rows_so_far() {
    let env = Env::start(Options {
        rows_per_day: 600,
        ..Options::default()
    })
    .await;
    let client = env.pg().await;
    // A slow source: each page of 64 rows takes 150 ms, so the run is seen running.
    env.bigquery.set_faults(ethpipe_testkit::Faults {
        page_delay: Some(std::time::Duration::from_millis(150)),
        ..Default::default()
    });
    let (code, body) = env
        .send(
            "POST",
            "/api/v1/runs",
            r#"{"pipeline":"token_transfers","day":"2024-03-02"}"#,
            None,
        )
        .await;
    assert_eq!(code, 202, "{body}");
    let run_id = body["run_id"].as_i64().unwrap();
    assert_eq!(body["url"], format!("/runs/{run_id}"));
    let running = env
        .wait_for(
            &format!("/api/v1/runs/{run_id}"),
            "rows so far while running",
            |b| {
                b["run"]["status"] == "running"
                    && b["run"]["rows_written"].as_i64().unwrap_or(0) > 0
            },
        )
        .await;
    let so_far = running["run"]["rows_written"].as_i64().unwrap();
    assert!(so_far > 0 && so_far < 600, "{so_far}");
    // A second run of the same day is refused while the first holds it.
    let (code, busy) = env
        .send(
            "POST",
            "/api/v1/runs",
            r#"{"pipeline":"token_transfers","day":"2024-03-02"}"#,
            None,
        )
        .await;
    assert_eq!(code, 409, "{busy}");
    let done = env
        .wait_for(&format!("/api/v1/runs/{run_id}"), "success", |b| {
            b["run"]["status"] != "running"
        })
        .await;
    assert_eq!(done["run"]["status"], "success", "{done}");
    assert_eq!(done["run"]["rows_written"], 600);
    assert_eq!(done["run"]["trigger"], "dashboard");
    // Ten pages of 150 ms: the recorded duration is the real one.
    let seconds = done["run"]["duration_seconds"].as_f64().unwrap();
    assert!(seconds >= 1.0, "duration {seconds}s");
    let in_table: i64 = client
        .query_one(
            "SELECT count(*) FROM ethereum.token_transfers
             WHERE block_timestamp >= '2024-03-02' AND block_timestamp < '2024-03-03'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(in_table, 600);
    env.bigquery.set_faults(ethpipe_testkit::Faults::default());

    // A backfill over loaded days skips them; forced, it loads them again.
    let (code, job) = env
        .send(
            "POST",
            "/api/v1/backfills",
            r#"{"pipeline":"token_transfers","from":"2024-03-01","to":"2024-03-03"}"#,
            None,
        )
        .await;
    assert_eq!(code, 202, "{job}");
    let id = job["id"].as_i64().unwrap();
    let finished = env
        .wait_for(
            &format!("/api/v1/backfills/{id}"),
            "the backfill to end",
            |b| b["state"] != "running",
        )
        .await;
    assert_eq!(finished["state"], "finished");
    assert_eq!(finished["days_skipped"], 3);
    assert_eq!(finished["days_loaded"], 0);
    let before: i64 = client
        .query_one("SELECT count(*) FROM ethpipe.runs", &[])
        .await
        .unwrap()
        .get(0);
    let (code, job) = env
        .send(
            "POST",
            "/api/v1/backfills",
            r#"{"pipeline":"token_transfers","from":"2024-03-01","to":"2024-03-03","force":true,"parallel":2}"#,
            None,
        )
        .await;
    assert_eq!(code, 202, "{job}");
    let id = job["id"].as_i64().unwrap();
    let finished = env
        .wait_for(
            &format!("/api/v1/backfills/{id}"),
            "the forced backfill",
            |b| b["state"] != "running",
        )
        .await;
    assert_eq!(finished["state"], "finished", "{finished}");
    assert_eq!(finished["days_loaded"], 3);
    assert_eq!(finished["rows"], 1800);
    // A dashboard backfill's runs carry its id: `backfill:<id>`.
    let after: i64 = client
        .query_one(
            "SELECT count(*) FROM ethpipe.runs WHERE trigger = $1 AND status = 'success'",
            &[&format!("backfill:{id}")],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(after, 3);
    let total: i64 = client
        .query_one("SELECT count(*) FROM ethpipe.runs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(total, before + 3);
    let listed = env.get("/api/v1/backfills", 200).await;
    assert_eq!(listed["backfills"].as_array().unwrap().len(), 2);
    assert_eq!(listed["recent_runs"].as_array().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_loopback_mutations_need_the_token() {
    let env = Env::start(Options {
        bind: "0.0.0.0:0",
        token: Some("correct-horse-battery-staple"),
        ..Options::default()
    })
    .await;
    let body = r#"{"pipeline":"token_transfers","day":"2024-03-01"}"#;
    let checks: [(&str, &str, &str); 3] = [
        ("POST", "/api/v1/runs", body),
        (
            "POST",
            "/api/v1/backfills",
            r#"{"pipeline":"token_transfers","from":"2024-03-01","to":"2024-03-01"}"#,
        ),
        ("PUT", "/api/v1/triggers/any/active", r#"{"active":true}"#),
    ];
    for (method, path, body) in checks {
        for token in [None, Some("wrong"), Some("correct-horse-battery-stapl")] {
            let (code, answer) = env.send(method, path, body, token).await;
            assert_eq!(code, 401, "{method} {path} with {token:?}: {answer}");
            assert!(answer["error"].as_str().unwrap().contains("Bearer"));
        }
        // Even a malformed body is refused for the token first.
        let (code, _) = env.send(method, path, "{", None).await;
        assert_eq!(code, 401);
    }
    let response = env
        .http
        .post(format!("{}/api/v1/runs", env.base))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"ethpipe\""
    );

    // With the token: accepted.
    let (code, answer) = env
        .send(
            "POST",
            "/api/v1/runs",
            body,
            Some("correct-horse-battery-staple"),
        )
        .await;
    assert_eq!(code, 202, "{answer}");
    let run = answer["run_id"].as_i64().unwrap();
    env.wait_for(&format!("/api/v1/runs/{run}"), "success", |b| {
        b["run"]["status"] == "success"
    })
    .await;
    let (code, answer) = env
        .send(
            "POST",
            "/api/v1/backfills",
            checks[1].2,
            Some("correct-horse-battery-staple"),
        )
        .await;
    assert_eq!(code, 202, "{answer}");
    let (code, _) = env
        .send(
            "PUT",
            "/api/v1/triggers/any/active",
            r#"{"active":true}"#,
            Some("correct-horse-battery-staple"),
        )
        .await;
    assert_eq!(code, 404, "authorised, and there is no such trigger");
    // Reads need no token.
    env.get("/api/v1/pipelines", 200).await;
    let (code, _) = env.get_text("/").await;
    assert_eq!(code, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_read_only_and_time_limited_and_readyz_sees_the_database() {
    let db = ethpipe_testkit::TestDatabase::create().await.unwrap();
    let url: ethpipe_sinks::DatabaseUrl = db.url.parse().unwrap();
    ethpipe_sinks::Database::open(&url).await.unwrap();
    let reader =
        ethpipe_server::store::Reader::open(&url, std::time::Duration::from_millis(200), 2)
            .unwrap();
    let ethpipe_server::store::Reader::Postgres(pg) = &reader else {
        panic!("a PostgreSQL reader");
    };
    let write = pg
        .query("CREATE TABLE public.x (a int)", &[])
        .await
        .unwrap_err();
    assert!(
        matches!(&write, ethpipe_server::store::QueryError::Failed { message, .. } if message.contains("read-only")),
        "{write:?}"
    );
    let slow = pg.query("SELECT pg_sleep(2)", &[]).await.unwrap_err();
    assert!(
        matches!(slow, ethpipe_server::store::QueryError::Timeout(_)),
        "{slow:?}"
    );
    // The pooled connection is clean after a failed read.
    assert_eq!(pg.query("SELECT 1", &[]).await.unwrap().len(), 1);

    // A server whose database is gone: /readyz fails, /healthz still answers.
    let gone: ethpipe_sinks::DatabaseUrl =
        "postgres://postgres@127.0.0.1:1/nothing".parse().unwrap();
    let reader =
        ethpipe_server::store::Reader::open(&gone, std::time::Duration::from_secs(1), 1).unwrap();
    let config = ethpipe_server::ServerConfig::new("127.0.0.1:0".parse().unwrap(), None).unwrap();
    let server = ethpipe_server::Server::bind(config, reader, None)
        .await
        .unwrap();
    let base = format!("http://{}", server.local_addr().unwrap());
    tokio::spawn(server.run(std::future::pending()));
    let http = reqwest::Client::new();
    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    assert!(ready.text().await.unwrap().contains("not reachable"));
    assert_eq!(
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    let api = http
        .get(format!("{base}/api/v1/runs"))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status().as_u16(), 503);
    let (code, _) = (
        http.post(format!("{base}/api/v1/runs"))
            .header("content-type", "application/json")
            .body(r#"{"pipeline":"tokens","day":"2024-03-01"}"#)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        (),
    );
    assert_eq!(code, 503, "no source: runs cannot start");
    let _ = HashMap::<(), ()>::new();
}
