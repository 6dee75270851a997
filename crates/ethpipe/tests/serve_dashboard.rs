//! `ethpipe serve` with its dashboard: a real headless Chromium (Debian's
//! `chromium`, driven by npm `playwright-core`) opens the dashboard, starts a
//! run for a day, watches it reach "success", and opens a token page with its
//! chart; it reads what a person would (durations, the tokens row after a
//! full load, rounded amounts with the exact value on hover) and the test
//! checks that against the database. A server without a source serves a
//! read-only dashboard that says why runs cannot start. Screenshots land in
//! this test's output folder (printed). Also: serve refuses to listen beyond
//! loopback without a token, and stops on SIGTERM.

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
    serve_with(&ethpipe).await
}

/// Starts `ethpipe serve` as `ethpipe` is configured, on a free port.
async fn serve_with(ethpipe: &ethpipe_testkit::Ethpipe) -> (Child, String) {
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
    harness.bigquery.set_tokens(tokens.clone());
    let db = fresh_database().await;
    // Earlier days come from the CLI; the browser loads DAY.
    let ethpipe = harness.ethpipe(&db.url);
    ethpipe
        .run(&["run", "tokens", "--full"])
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
    // Two pipelines limited to some tokens: the table shows each filter.
    let (one, two) = (tokens[0].address.clone(), tokens[1].address.clone());
    let config = harness.dir.path().join("filters.toml");
    std::fs::write(
        &config,
        format!(
            "[pipelines.erc1155_transfers]\ntokens = [\"{two}\", \"{one}\"]\n\n[pipelines.tokens]\ntokens = [\"{one}\"]\n"
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    let (child, base) = serve(&harness, &db.url, &[("ETHPIPE_CONFIG", config.as_str())]).await;

    let out = output_folder("serve_dashboard");
    let seen = browser(
        &playwright,
        "dashboard.cjs",
        &[base.as_str(), DAY, token.as_str()],
        &out,
    )
    .await;

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
    assert_durations_shown(&seen, &client).await;
    assert_tokens_row_after_full_load(&seen, &client).await;
    assert_amounts_rounded_with_exact_value_on_hover(&seen);
    let day_titles: Vec<&serde_json::Value> = seen["dayAmounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["title"])
        .collect();
    let day_exact: Vec<&serde_json::Value> =
        seen["dayApiVolumes"].as_array().unwrap().iter().collect();
    assert!(!day_exact.is_empty(), "the day has tokens with decimals");
    assert_eq!(
        day_titles, day_exact,
        "the day page keeps each exact volume (and unit) on hover"
    );
    assert_filters_shown(&seen, &one, &two);
    assert_screenshots(&seen);
    stop(child).await;
}

/// Each pipeline's token filter as the dashboard shows it: "all tokens",
/// the address of a one-token filter, "2 tokens" with both addresses on
/// hover; and the API gives the addresses, sorted.
fn assert_filters_shown(seen: &serde_json::Value, one: &str, two: &str) {
    let row = |name: &str| {
        seen["pipelines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["pipeline"] == name)
            .unwrap_or_else(|| panic!("no {name} row in {seen}"))
            .clone()
    };
    let mut both = [one.to_string(), two.to_string()];
    both.sort();
    assert_eq!(row("token_transfers")["filter"], "all tokens");
    assert_eq!(row("tokens")["filter"], one);
    assert_eq!(row("erc1155_transfers")["filter"], "2 tokens");
    assert_eq!(row("erc1155_transfers")["filterTitle"], both.join("\n"));
    assert_eq!(
        seen["apiTokens"]["token_transfers"],
        serde_json::Value::Null
    );
    assert_eq!(seen["apiTokens"]["tokens"], serde_json::json!([one]));
    assert_eq!(
        seen["apiTokens"]["erc1155_transfers"],
        serde_json::json!(both)
    );
    assert_eq!(seen["filterHovered"], true);
}

/// Durations are real (milliseconds on): no finished run reads as zero, and
/// the ledger's own times agree that each took time.
async fn assert_durations_shown(seen: &serde_json::Value, client: &tokio_postgres::Client) {
    let shown: Vec<&str> = seen["durations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    let finished: i64 = client
        .query_one(
            "SELECT count(*) FROM ethpipe.runs WHERE finished_at IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        shown.len() as i64,
        finished,
        "one duration per finished run: {shown:?}"
    );
    for text in shown
        .iter()
        .copied()
        .chain([seen["runDuration"].as_str().unwrap()])
    {
        assert!(
            text.ends_with(" ms") || text.ends_with(" s"),
            "a duration in ms or s: {text:?}"
        );
        let figure: f64 = text.split(' ').next().unwrap().parse().unwrap_or(0.0);
        assert!(figure > 0.0, "a non-zero duration: {text:?}");
    }
    let zero: i64 = client
        .query_one(
            "SELECT count(*) FROM ethpipe.runs WHERE finished_at IS NOT NULL AND finished_at <= started_at",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(zero, 0, "the ledger keeps sub-second times");
}

/// After `run tokens --full` the tokens row shows the full load's rows and
/// the creation days its tokens cover.
async fn assert_tokens_row_after_full_load(
    seen: &serde_json::Value,
    client: &tokio_postgres::Client,
) {
    let row = seen["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pipeline"] == "tokens")
        .expect("a tokens row");
    let full_load = client
        .query_one(
            "SELECT rows_written FROM ethpipe.runs WHERE pipeline = 'tokens' AND day IS NULL AND status = 'success'",
            &[],
        )
        .await
        .unwrap();
    let rows: i64 = full_load.get::<_, Option<i64>>(0).unwrap();
    assert!(rows > 0);
    let range = client
        .query_one(
            "SELECT min((block_timestamp AT TIME ZONE 'UTC')::date)::text, max((block_timestamp AT TIME ZONE 'UTC')::date)::text,
                    max((block_timestamp AT TIME ZONE 'UTC')::date) - min((block_timestamp AT TIME ZONE 'UTC')::date) + 1
             FROM ethereum.tokens",
            &[],
        )
        .await
        .unwrap();
    let (first, last, days): (String, String, i32) = (range.get(0), range.get(1), range.get(2));
    assert_eq!(row["rows"], rows.to_string(), "{row}");
    assert_eq!(row["range"], format!("{first} … {last}"), "{row}");
    assert_eq!(row["days"], days.to_string(), "{row}");
}

/// Amounts are rounded and grouped (`12,345,678.9`), the exact value is the
/// element's title, and it is the API's exact value.
fn assert_amounts_rounded_with_exact_value_on_hover(seen: &serde_json::Value) {
    let amounts = seen["amounts"].as_array().unwrap();
    let api: Vec<&str> = seen["apiVolumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().expect("the token has decimals: a scaled volume"))
        .collect();
    assert_eq!(amounts.len(), api.len(), "one amount per API volume");
    let mut grouped = 0;
    for (amount, exact) in amounts.iter().zip(&api) {
        let (text, title) = (
            amount["text"].as_str().unwrap(),
            amount["title"].as_str().unwrap(),
        );
        assert_eq!(title, *exact, "the exact value on hover");
        let shown = text.replace(',', "");
        let (whole, cents) = shown.split_once('.').unwrap_or((&shown, ""));
        let (exact_whole, exact_fraction) = exact.split_once('.').unwrap_or((exact, ""));
        assert!(cents.len() <= 2, "rounded to two decimals: {text}");
        // Rounded, not cut: within half a cent of the exact value.
        let exact_cents = format!(
            "{exact_whole}{:0<2}",
            &exact_fraction[..exact_fraction.len().min(2)]
        );
        let shown_cents = format!("{whole}{cents:0<2}");
        let (a, b): (u128, u128) = (exact_cents.parse().unwrap(), shown_cents.parse().unwrap());
        assert!(b == a || b == a + 1, "{text} is {exact} rounded");
        assert!(
            text.split(',')
                .skip(1)
                .all(|group| group.len() >= 3 && group[..3].bytes().all(|b| b.is_ascii_digit())),
            "groups of three: {text}"
        );
        grouped += usize::from(text.contains(','));
    }
    assert!(
        grouped > 0,
        "some amount is large enough to be grouped: {amounts:?}"
    );
}

fn assert_screenshots(seen: &serde_json::Value) {
    for shot in seen["screenshots"].as_array().unwrap() {
        let bytes = std::fs::read(shot.as_str().unwrap()).unwrap();
        assert!(bytes.len() > 5_000, "{shot} is too small to be a page");
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{shot} is a PNG");
    }
}

/// This test's own folder of screenshots, emptied.
fn output_folder(name: &str) -> PathBuf {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    eprintln!("screenshots in {}", out.display());
    out
}

/// Runs a script of tests/browser with `args` and the output folder, and
/// returns the JSON line it prints.
async fn browser(playwright: &Path, script: &str, args: &[&str], out: &Path) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/browser")
        .join(script);
    let result = tokio::time::timeout(
        Duration::from_secs(240),
        tokio::process::Command::new("node")
            .arg(&script)
            .args(args)
            .arg(out)
            .env("ETHPIPE_PLAYWRIGHT_CORE", playwright)
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
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_source_serve_is_a_read_only_dashboard_that_says_how_to_run() {
    let playwright = browser_tools();
    let db = fresh_database().await;
    let home = tempfile::tempdir().unwrap();
    // Only a database: no BigQuery key, no RPC URL, and a HOME without gcloud's files.
    let ethpipe = ethpipe_testkit::Ethpipe::new(env!("CARGO_BIN_EXE_ethpipe"))
        .cwd(home.path())
        .env("HOME", home.path().display().to_string())
        .env("ETHPIPE_DATABASE_URL", db.url.as_str());
    let cli = ethpipe
        .run(&["run", "token_transfers", "--date", DAY])
        .await;
    assert_eq!(cli.code, 2, "{}", cli.all());
    let cli_message = cli.stderr.trim().to_string();
    assert!(
        cli_message.contains("no BigQuery credentials found"),
        "{cli_message}"
    );

    let (child, base) = serve_with(&ethpipe).await;
    let (status, body) = http_post(&base, "/api/v1/runs", None).await;
    assert_eq!(status, 503, "{body}");
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    let message = error["error"].as_str().unwrap();
    let reason = cli_message.trim_start_matches("error: ");
    assert!(
        message.contains(reason),
        "the CLI's message {reason:?} in {message:?}"
    );

    let out = output_folder("serve_dashboard_read_only");
    let seen = browser(&playwright, "readonly.cjs", &[base.as_str(), DAY], &out).await;
    assert!(seen["reason"].as_str().unwrap().contains(reason), "{seen}");
    let notice = seen["notice"].as_str().unwrap();
    assert!(
        notice.contains("--source rpc --rpc-url URL"),
        "how to give a source: {notice}"
    );
    let run_message = seen["runMessage"].as_str().unwrap();
    assert!(
        run_message.starts_with("Not started: this server cannot start runs"),
        "{run_message}"
    );
    assert!(run_message.contains(reason), "{run_message}");
    assert!(
        seen["emptyRuns"]
            .as_str()
            .unwrap()
            .contains("ethpipe run token_transfers --date"),
        "the empty run table says what to run: {seen}"
    );
    assert!(
        seen["pipelines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|row| row.as_str().unwrap().contains("ethpipe run tokens --full")),
        "the tokens row says how to load tokens: {seen}"
    );
    let client = db.client().await.unwrap();
    let runs: i64 = client
        .query_one("SELECT count(*) FROM ethpipe.runs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(runs, 0, "nothing was run");
    assert_screenshots(&seen);
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
    let (status, _) = http_post(&base, "/api/v1/runs", None).await;
    assert_eq!(status, 401);
    stop(child).await;
}

/// A tiny HTTP/1.1 POST over a TCP socket (this crate has no HTTP client):
/// the status and the body.
async fn http_post(base: &str, path: &str, token: Option<&str>) -> (u16, String) {
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
    let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body)
        .to_string();
    (status, body)
}
