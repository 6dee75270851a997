//! Benchmark (not a test): `GET /api/v1/tokens/{address}/daily` — a token's
//! daily statistics — over PostgreSQL holding ≥ 30 M transfer rows, at a
//! fixed arrival rate, reporting latency percentiles.
//!
//! ```text
//! cargo run --release -p ethpipe-server --example bench_daily_stats -- \
//!     --database-url postgres://postgres@127.0.0.1:5432/ethpipe_bench \
//!     [--rows 30000000] [--days 100] [--tokens 50000] [--rate 200] [--seconds 60] [--reuse]
//! ```
//!
//! Set-up (skipped with `--reuse` when the data is already there): migrate,
//! generate `--rows` transfers spread over `--days` days and `--tokens`
//! tokens with a skewed popularity (a few tokens carry most transfers, as on
//! mainnet), then build `token_daily_stats` with the same aggregation the
//! sink runs after each day. The transfers' secondary indexes are left out of
//! the bulk insert to keep set-up in minutes; the endpoint reads
//! `token_daily_stats` through its `(token_address, day)` index only.
//!
//! Load: an open-loop generator sends `--rate` requests per second for
//! `--seconds` seconds to the real server (router, read pool, read-only
//! transactions with the statement timeout) on a loopback port. Each latency
//! is measured from the request's scheduled start, so a slow server cannot
//! hide its queueing (no coordinated omission). Tokens are drawn half from
//! the 100 busiest (long histories) and half uniformly. Figures are printed
//! and written to `$CARGO_TARGET_DIR/bench/serving_daily_stats.txt`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ethpipe_server::store::{Reader, DEFAULT_STATEMENT_TIMEOUT};
use ethpipe_server::{Server, ServerConfig};
use ethpipe_sinks::{Database, DatabaseUrl};
use rand::{Rng, SeedableRng};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn number(name: &str, default: u64) -> u64 {
    arg(name).map_or(default, |v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name} expects a number"))
    })
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
}

async fn set_up(url: &str, rows: u64, days: u64, tokens: u64) {
    let database_url: DatabaseUrl = url.parse().expect("a postgres:// URL");
    Database::open(&database_url).await.expect("migrate");
    let client = connect(url).await;
    let step = |what: &str| eprintln!("[{}] {what}", chrono::Utc::now().format("%H:%M:%S"));
    step("emptying the tables, dropping the transfers' indexes for the bulk insert");
    client
        .batch_execute(
            "TRUNCATE ethereum.token_transfers, ethereum.tokens, ethereum.token_daily_stats;
             ALTER TABLE ethereum.token_transfers DROP CONSTRAINT IF EXISTS token_transfers_pkey;
             DROP INDEX IF EXISTS ethereum.token_transfers_block_timestamp_idx;
             DROP INDEX IF EXISTS ethereum.token_transfers_from_idx;
             DROP INDEX IF EXISTS ethereum.token_transfers_to_idx;
             DROP INDEX IF EXISTS ethereum.token_transfers_token_time_idx;",
        )
        .await
        .expect("prepare tables");
    step(&format!("{tokens} tokens"));
    client
        .execute(
            "INSERT INTO ethereum.tokens (address, symbol, name, decimals, total_supply, block_timestamp, block_number, block_hash)
             SELECT '0x' || lpad(to_hex(t), 40, '0'), 'T' || t, 'Token ' || t,
                    (ARRAY[18, 6, 0, 8])[1 + t % 4], 1000000000000000000000000,
                    timestamptz '2023-01-01', 16000000 + t, '0x' || lpad(to_hex(t), 64, '0')
             FROM generate_series(1, $1::bigint) t",
            &[&(tokens as i64)],
        )
        .await
        .expect("tokens");
    let per_day = rows / days;
    let first = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
    for d in 0..days {
        let day = first + chrono::Days::new(d);
        let start = (d * per_day) as i64;
        // Token popularity: t = 1 + tokens * u^4 for uniform u, so low ids are busy.
        client
            .execute(
                "INSERT INTO ethereum.token_transfers
                 SELECT '0x' || lpad(to_hex(1 + floor($4::float8 * power(random(), 4))::bigint), 40, '0'),
                        '0x' || lpad(to_hex(floor(random() * 2000000)::bigint), 40, '0'),
                        '0x' || lpad(to_hex(floor(random() * 2000000)::bigint), 40, '0'),
                        floor(random() * 1e21)::numeric,
                        '0x' || lpad(to_hex(g), 64, '0'), 0,
                        ($1::date::timestamp AT TIME ZONE 'UTC') + make_interval(secs => ((g - $2) * 86400.0 / $3)::float8),
                        19000000 + g / 200, '0x' || lpad(to_hex(g / 200), 64, '0')
                 FROM generate_series($2::bigint, $2::bigint + $3::bigint - 1) g",
                &[&day, &start, &(per_day as i64), &(tokens as f64)],
            )
            .await
            .expect("transfers");
        if d % 10 == 9 || d + 1 == days {
            step(&format!(
                "{} of {days} days of transfers ({} rows)",
                d + 1,
                (d + 1) * per_day
            ));
        }
    }
    step("building token_daily_stats (the sink's aggregation)");
    client
        .batch_execute(
            "SET work_mem = '256MB';
             INSERT INTO ethereum.token_daily_stats
                 (day, token_address, transfer_count, unique_senders, unique_receivers, volume_raw, volume)
             SELECT s.day, s.token_address, s.transfer_count, s.unique_senders, s.unique_receivers,
                    s.volume_raw, ethereum.scale_by_decimals(s.volume_raw, tk.decimals)
             FROM (SELECT (block_timestamp AT TIME ZONE 'UTC')::date AS day, token_address,
                          count(*) AS transfer_count, count(DISTINCT from_address) AS unique_senders,
                          count(DISTINCT to_address) AS unique_receivers, coalesce(sum(value), 0) AS volume_raw
                   FROM ethereum.token_transfers GROUP BY 1, 2) s
             LEFT JOIN ethereum.tokens_latest tk ON tk.address = s.token_address;
             ANALYZE ethereum.token_daily_stats; ANALYZE ethereum.tokens;",
        )
        .await
        .expect("token_daily_stats");
    step("set-up done");
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() {
    let url = arg("--database-url").expect("--database-url postgres://…");
    let rows = number("--rows", 30_000_000);
    let days = number("--days", 100);
    let tokens = number("--tokens", 50_000);
    let rate = number("--rate", 200);
    let seconds = number("--seconds", 60);
    if !std::env::args().any(|a| a == "--reuse") {
        set_up(&url, rows, days, tokens).await;
    }
    let client = connect(&url).await;
    let facts = client
        .query_one(
            "SELECT (SELECT count(*) FROM ethereum.token_transfers),
                    (SELECT count(*) FROM ethereum.token_daily_stats),
                    (SELECT count(DISTINCT token_address) FROM ethereum.token_daily_stats)",
            &[],
        )
        .await
        .expect("counts");
    let (transfers, stats_rows, stat_tokens): (i64, i64, i64) =
        (facts.get(0), facts.get(1), facts.get(2));
    let busiest: Vec<String> = client
        .query(
            "SELECT token_address FROM ethereum.token_daily_stats GROUP BY 1 ORDER BY sum(transfer_count) DESC LIMIT 100",
            &[],
        )
        .await
        .expect("busiest")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let all: Vec<String> = client
        .query(
            "SELECT DISTINCT token_address FROM ethereum.token_daily_stats",
            &[],
        )
        .await
        .expect("tokens")
        .iter()
        .map(|r| r.get(0))
        .collect();

    let database_url: DatabaseUrl = url.parse().unwrap();
    let reader = Reader::open(
        &database_url,
        DEFAULT_STATEMENT_TIMEOUT,
        ethpipe_server::store::DEFAULT_POOL_SIZE,
    )
    .expect("reader");
    let config = ServerConfig::new("127.0.0.1:0".parse().unwrap(), None).unwrap();
    let server = Server::bind(config, reader, None).await.expect("bind");
    let base = format!("http://{}", server.local_addr().unwrap());
    tokio::spawn(server.run(std::future::pending()));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .unwrap();
    // Warm-up: a second of requests, not measured.
    for token in busiest.iter().take(50) {
        let _ = http
            .get(format!("{base}/api/v1/tokens/{token}/daily"))
            .send()
            .await;
    }

    let total = rate * seconds;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let days_returned = Arc::new(std::sync::atomic::AtomicU64::new(0));
    for i in 0..total {
        let scheduled = started + interval * i as u32;
        tokio::time::sleep_until(tokio::time::Instant::from_std(scheduled)).await;
        let token = if rng.random_bool(0.5) {
            busiest[rng.random_range(0..busiest.len())].clone()
        } else {
            all[rng.random_range(0..all.len())].clone()
        };
        let (http, url, errors, days_returned) = (
            http.clone(),
            format!("{base}/api/v1/tokens/{token}/daily"),
            Arc::clone(&errors),
            Arc::clone(&days_returned),
        );
        tasks.push(tokio::spawn(async move {
            let ok = match http.get(&url).send().await {
                Ok(response) if response.status().is_success() => {
                    match response.json::<serde_json::Value>().await {
                        Ok(body) => {
                            let n = body["days"].as_array().map_or(0, Vec::len) as u64;
                            days_returned.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                            true
                        }
                        Err(_) => false,
                    }
                }
                _ => false,
            };
            if !ok {
                errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            scheduled.elapsed()
        }));
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    for task in tasks {
        latencies.push(task.await.unwrap());
    }
    let wall = started.elapsed();
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let report = format!(
        "serving benchmark: GET /api/v1/tokens/{{address}}/daily (PostgreSQL)\n\
         data: {transfers} transfer rows, {stats_rows} token_daily_stats rows, {stat_tokens} tokens, {days} days\n\
         load: {total} requests at {rate}/s (open loop) in {:.1}s, {:.1} req/s achieved, {} errors, {:.1} days per answer\n\
         latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}\n\
         target: p99 <= 50 ms at 200 req/s -> {}\n",
        wall.as_secs_f64(),
        total as f64 / wall.as_secs_f64(),
        errors.load(std::sync::atomic::Ordering::Relaxed),
        days_returned.load(std::sync::atomic::Ordering::Relaxed) as f64 / total.max(1) as f64,
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 90.0)),
        ms(percentile(&latencies, 99.0)),
        ms(percentile(&latencies, 99.9)),
        ms(*latencies.last().unwrap_or(&Duration::ZERO)),
        if ms(percentile(&latencies, 99.0)) <= 50.0 && rate >= 200 { "met" } else { "NOT met" },
    );
    print!("{report}");
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let dir = std::path::Path::new(&target).join("bench");
    let _ = std::fs::create_dir_all(&dir);
    let file = dir.join("serving_daily_stats.txt");
    std::fs::write(&file, &report).expect("write the results file");
    eprintln!("written to {}", file.display());
}
