//! `ethpipe serve` with its dashboard: a real headless Chromium (Debian's
//! `chromium`, driven by npm `playwright-core`) opens the dashboard, starts a
//! run for a day, watches it reach "success", and opens a token page with its
//! chart; screenshots land in this test's output folder. Also: serve refuses
//! to listen beyond loopback without a token, and stops on SIGTERM.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use ethpipe_testkit::fixtures::{self, day_transfers};
use tokio::io::AsyncBufReadExt;
use tokio::process::Child;

const DAY: &str = "2024-03-05";

/// Installs Chromium and playwright-core if missing (scripts/ensure-browser.sh,
/// the same step as `make browser`) and returns playwright-core's folder.
fn browser_tools() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let status = std::process::Command::new("bash")
        .arg(root.join("scripts/ensure-browser.sh"))
        .status()
        .expect("bash runs scripts/ensure-browser.sh");
    assert!(
        status.success(),
        "scripts/ensure-browser.sh failed: the browser test needs /usr/bin/chromium and playwright-core (run `make browser` as root)"
    );
    let tools = std::env::var("ETHPIPE_TOOLS_DIR").map_or_else(
        |_| PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/ethpipe-tools"),
        PathBuf::from,
    );
    let module = tools.join("browser/node_modules/playwright-core");
    assert!(module.is_dir(), "{} is missing", module.display());
    module
}

/// Starts `ethpipe serve` on a free port and returns it with its base URL.
async fn serve(harness: &Harness, url: &str, extra_env: &[(&str, &str)]) -> (Child, String) {
    let mut ethpipe = harness.ethpipe(url);
    for (key, value) in extra_env {
        ethpipe = ethpipe.env(key, *value);
    }
    let mut child = ethpipe
        .command(&["serve", "--bind", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ethpipe serve starts");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let base = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.split("dashboard and API on ").nth(1) {
                return rest
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .trim_end_matches('/')
                    .to_string();
            }
        }
        panic!("ethpipe serve ended without announcing its address");
    })
    .await
    .expect("ethpipe serve announces its address");
    // Keep draining stderr so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, base)
}

async fn stop(child: Child) {
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("serve stops after SIGTERM")
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "serve exits 0 on SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_runs_a_day_in_chromium_and_shows_the_token_chart() {
    let playwright = browser_tools();
    let harness = Harness::start().await;
    let tokens = fixtures::tokens(&["2024-02-01", "2024-02-02"]);
    let token = tokens[1].address.clone();
    let mut transfers = Vec::new();
    for day in ["2024-03-03", "2024-03-04", DAY] {
        for (i, mut row) in day_transfers(day, 300, 1).into_iter().enumerate() {
            row.token_address = if i % 3 == 0 {
                token.clone()
            } else {
                tokens[0].address.clone()
            };
            transfers.push(row);
        }
    }
    harness.bigquery.set_transfers(transfers);
    harness.bigquery.set_tokens(tokens);
    let db = fresh_database().await;
    // Earlier days come from the CLI; the browser loads DAY.
    let ethpipe = harness.ethpipe(&db.url);
    ethpipe
        .run(&["run", "tokens", "--date", "2024-02-01"])
        .await
        .assert_success();
    for day in ["2024-03-03", "2024-03-04"] {
        ethpipe
            .run(&["run", "token_transfers", "--date", day])
            .await
            .assert_success();
    }
    // Slow pages, so the run is seen running before it succeeds.
    harness.bigquery.set_faults(ethpipe_testkit::Faults {
        page_delay: Some(Duration::from_millis(200)),
        ..Default::default()
    });
    let (child, base) = serve(&harness, &db.url, &[]).await;

    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("serve_dashboard");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/dashboard.cjs");
    let result = tokio::time::timeout(
        Duration::from_secs(240),
        tokio::process::Command::new("node")
            .arg(&script)
            .args([base.as_str(), DAY, token.as_str()])
            .arg(&out)
            .env("ETHPIPE_PLAYWRIGHT_CORE", &playwright)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser script finishes")
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(
        result.status.success(),
        "browser script failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let seen: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    eprintln!("screenshots in {}", out.display());

    // What the browser saw agrees with the ledger and the tables.
    let client = db.client().await.unwrap();
    let run_id = seen["runId"].as_i64().unwrap();
    let row = client
        .query_one(
            "SELECT status, trigger, day::text, rows_written FROM ethpipe.runs WHERE id = $1",
            &[&run_id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "success");
    assert_eq!(row.get::<_, String>(1), "dashboard");
    assert_eq!(row.get::<_, String>(2), DAY);
    assert_eq!(row.get::<_, Option<i64>>(3), Some(300));
    assert_eq!(seen["rows"], "300");
    let days_with_token: i64 = client
        .query_one(
            "SELECT count(DISTINCT (block_timestamp AT TIME ZONE 'UTC')::date) FROM ethereum.token_transfers WHERE token_address = $1",
            &[&token],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(days_with_token, 3);
    assert_eq!(
        seen["bars"], days_with_token,
        "one bar per day of the token"
    );
    let chart_text = seen["chartText"].as_str().unwrap();
    for expected in [
        "Transfers per day",
        "Volume per day (TK1)",
        "2024-03-03",
        DAY,
    ] {
        assert!(
            chart_text.contains(expected),
            "chart lacks {expected}: {chart_text}"
        );
    }
    assert!(seen["logLines"].as_i64().unwrap() >= 1);
    for shot in seen["screenshots"].as_array().unwrap() {
        let bytes = std::fs::read(shot.as_str().unwrap()).unwrap();
        assert!(bytes.len() > 5_000, "{shot} is too small to be a page");
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{shot} is a PNG");
    }
    stop(child).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_to_listen_beyond_loopback_without_a_token() {
    let harness = Harness::start().await;
    let db = fresh_database().await;
    let output = harness
        .ethpipe(&db.url)
        .run(&["serve", "--bind", "0.0.0.0:0"])
        .await;
    assert_eq!(output.code, 2, "{}", output.all());
    assert!(
        output.stderr.contains("ETHPIPE_API_TOKEN"),
        "{}",
        output.stderr
    );
    assert_eq!(
        output.stderr.trim().lines().count(),
        1,
        "one line: {}",
        output.stderr
    );
    let client = db.client().await.unwrap();
    assert!(
        !schema_exists(&client, "ethpipe").await,
        "nothing was written"
    );

    // With a token it serves, and answers mutations only with it.
    let (child, base) = serve(&harness, &db.url, &[("ETHPIPE_API_TOKEN", "t0ken")]).await;
    let http = reqwest_like_post(&base, "/api/v1/runs", None).await;
    assert_eq!(http, 401);
    stop(child).await;
}

/// A tiny HTTP/1.1 POST over a TCP socket (this crate has no HTTP client).
async fn reqwest_like_post(base: &str, path: &str, token: Option<&str>) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let body = r#"{"pipeline":"tokens","day":"2024-03-01"}"#;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response.split_whitespace().nth(1).unwrap().parse().unwrap()
}
