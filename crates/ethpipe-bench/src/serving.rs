//! Part `serving`: the serving pages over a year of day partitions (issue 13:
//! p99 ≤ 50 ms at 200 requests/s, 30 M rows over 365 daily partitions, for
//! token, day and address pages).
//!
//! The history is generated in SQL into its own database (the bench
//! database's name + `_year`), which is kept between runs: generating it is
//! the expensive step, so a database that already holds the same rows from
//! the same generator is reused (and says so). Each day is built like the
//! sink builds one: a fresh table with the sink's own DDL and name, rows,
//! then the key and the dataset's indexes, ANALYZE, ATTACH PARTITION with
//! the sink's bounds, its record in `ethpipe.day_partitions`, and its derived
//! rows (`token_daily_stats`, the busiest tokens' counterparties) from the
//! sink's own statements. The shape follows `day.rs`: 7,200 blocks a day, Zipf-like token
//! (40,000, skew 1.2) and address (5 M, skew 1.05) popularity, transactions
//! of two transfers, some mints from the zero address.
//!
//! Then the release `ethpipe serve` runs on it and an open loop sends 200
//! requests/s per page kind on a fixed schedule: latency is measured from the
//! time a request was due, not from when it was sent, so a stall shows up in
//! every request queued behind it (no coordinated omission).

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::NaiveDate;
use ethpipe_core::datasets::TOKEN_TRANSFERS;
use ethpipe_core::Day;
use ethpipe_sinks::ddl;
use ethpipe_sinks::postgres::partitions::DayPartition;
use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::env::Env;

/// Appended to the bench database's name for the kept year of history; a
/// `--quick` run uses its own (`…_quick`), so it never replaces the full one.
const SERVING_SUFFIX: &str = "_year";
/// The year of history ends the day before this.
const LAST_DAY: &str = "2024-02-29";
const DAYS: u32 = 365;
const BLOCKS_PER_DAY: i64 = crate::day::BLOCKS_PER_DAY as i64;
const FIRST_BLOCK: i64 = 17_000_000;
const TOKENS: i64 = 40_000;
const TOKEN_SKEW: f64 = 1.2;
const ADDRESSES: i64 = 5_000_000;
const ADDRESS_SKEW: f64 = 1.05;
/// Bumped whenever the generated rows change, so an old database is rebuilt.
const GENERATOR_VERSION: i32 = 1;
/// An address of rank below this counts as busy, at or above `RARE_RANK` as rare.
const BUSY_RANK: i64 = 1_000;
const RARE_RANK: i64 = 100_000;

#[derive(Debug, Clone, Copy)]
pub struct ServingOptions {
    pub quick: bool,
    pub rows: i64,
    pub rate: u32,
    pub seconds: u64,
    pub warmup_seconds: u64,
}

/// Latency percentiles of one set of requests, milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Latency {
    pub requests: usize,
    pub errors: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PageKind {
    /// `token`, `day` or `address`.
    pub kind: String,
    pub all: Latency,
    /// By the class of the URL (busy or rare address, first or later page…).
    pub classes: Vec<(String, Latency)>,
    /// The first few failures, for the report.
    pub failures: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServingResults {
    pub rows: i64,
    pub days: u32,
    /// Day partitions of `token_transfers` (the default one not counted).
    pub partitions: i64,
    /// Seconds spent generating the history in this run; `None` when an
    /// existing database was reused.
    pub generation_s: Option<f64>,
    pub rate: u32,
    pub seconds: u64,
    pub kinds: Vec<PageKind>,
}

pub fn serving(env: &Env, options: ServingOptions) -> anyhow::Result<ServingResults> {
    let database = if options.quick {
        format!("{}{SERVING_SUFFIX}_quick", env.database)
    } else {
        format!("{}{SERVING_SUFFIX}", env.database)
    };
    let url = database_url(env, &database)?;
    let generation_s = prepare(env, &database, &url, options.rows)?;
    let client = env.connect(&url)?;
    let partitions: i64 = env
        .column(
            &client,
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'ethereum.token_transfers'::regclass
               AND inhrelid <> 'ethereum.token_transfers_default'::regclass",
        )?
        .first()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let server = ServeProcess::start(env, &url)?;
    let targets = Targets::sample(env, &client, &server)?;
    let mut kinds = Vec::new();
    for (kind, urls) in targets.kinds() {
        eprintln!(
            "bench: serving: {kind} pages, {} URLs, {} req/s for {} s (after {} s of warm-up)",
            urls.len(),
            options.rate,
            options.seconds,
            options.warmup_seconds
        );
        let client = http_client()?;
        env.rt.block_on(drive(
            &client,
            &server.base,
            &urls,
            options.rate,
            options.warmup_seconds,
        ));
        let samples = env.rt.block_on(drive(
            &client,
            &server.base,
            &urls,
            options.rate,
            options.seconds,
        ));
        let page = summarize(kind, &samples);
        eprintln!(
            "bench: serving: {kind}: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms, {} errors of {}",
            page.all.p50_ms,
            page.all.p90_ms,
            page.all.p99_ms,
            page.all.max_ms,
            page.all.errors,
            page.all.requests
        );
        for (class, latency) in &page.classes {
            eprintln!(
                "bench: serving:   {class}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} requests)",
                latency.p50_ms, latency.p99_ms, latency.max_ms, latency.requests
            );
        }
        kinds.push(page);
    }
    drop(server);
    let results = ServingResults {
        rows: options.rows,
        days: DAYS,
        partitions,
        generation_s,
        rate: options.rate,
        seconds: options.seconds,
        kinds,
    };
    env.save("serving", &results)?;
    Ok(results)
}

fn database_url(env: &Env, database: &str) -> anyhow::Result<String> {
    match env.admin_url.rsplit_once('/') {
        Some((server, _)) => Ok(format!("{server}/{database}")),
        None => anyhow::bail!("the admin URL has no database name: {}", env.admin_url),
    }
}

/// Makes sure the serving database holds `rows` rows from this generator:
/// reuses it when it does, builds it otherwise. Returns the seconds spent
/// generating, `None` when reused. `ethpipe migrate` runs either way, so a
/// reused database gets any newer migration.
fn prepare(env: &Env, database: &str, url: &str, rows: i64) -> anyhow::Result<Option<f64>> {
    let reusable = generated_rows(env, database, url)? == Some(rows);
    if !reusable {
        let admin = env.connect(&env.admin_url)?;
        env.execute(
            &admin,
            &format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"),
        )?;
        env.execute(&admin, &format!("CREATE DATABASE {database}"))?;
    }
    crate::measure::run(
        env.ethpipe(&["migrate"], &[("ETHPIPE_DATABASE_URL", url.to_string())]),
        &env.log("serving-migrate.log"),
    )?;
    if reusable {
        eprintln!(
            "bench: serving: reusing database {database} ({rows} rows over {DAYS} day partitions, generator v{GENERATOR_VERSION}); drop it to generate again"
        );
        return Ok(None);
    }
    let started = Instant::now();
    generate(env, url, rows)?;
    let seconds = started.elapsed().as_secs_f64();
    eprintln!("bench: serving: generated {rows} rows over {DAYS} day partitions in {seconds:.0} s");
    Ok(Some(seconds))
}

/// The row count recorded by a finished generation of this generator's
/// version, if the database has one.
fn generated_rows(env: &Env, database: &str, url: &str) -> anyhow::Result<Option<i64>> {
    let admin = env.connect(&env.admin_url)?;
    let exists = env.column(
        &admin,
        &format!("SELECT 1 FROM pg_database WHERE datname = '{database}'"),
    )?;
    if exists.is_empty() {
        return Ok(None);
    }
    let client = env.connect(url)?;
    let recorded = env
        .column(
            &client,
            &format!(
                "SELECT rows FROM bench_serving.generated WHERE version = {GENERATOR_VERSION} AND days = {DAYS}"
            ),
        )
        .unwrap_or_default();
    Ok(recorded.first().and_then(|n| n.parse().ok()))
}

fn last_day() -> anyhow::Result<NaiveDate> {
    LAST_DAY.parse().context("LAST_DAY is not a date")
}

fn generate(env: &Env, url: &str, rows: i64) -> anyhow::Result<()> {
    let client = env.connect(url)?;
    // As the sink does for a day's index builds; nothing here needs to
    // survive a crash before the final CHECKPOINT.
    env.execute(
        &client,
        "SET maintenance_work_mem = '256MB'; SET synchronous_commit = off",
    )?;
    env.execute(&client, &tokens_sql())?;
    // Even, so the two transfers of a transaction never straddle two days.
    let per_day = (rows / DAYS as i64) & !1;
    let first_day = last_day()? - chrono::Days::new(DAYS as u64 - 1);
    for index in 0..DAYS as i64 {
        let day = Day::from_naive(first_day + chrono::Days::new(index as u64));
        // The remainder goes to the last day so the total is exact.
        let count = if index == DAYS as i64 - 1 {
            rows - per_day * index
        } else {
            per_day
        };
        generate_day(env, &client, day, index, index * per_day, count)?;
        if (index + 1) % 30 == 0 {
            eprintln!("bench: serving: {} of {DAYS} days generated", index + 1);
        }
    }
    env.execute(
        &client,
        &format!(
            "ANALYZE ethereum.token_daily_stats; ANALYZE ethereum.tokens;
             CREATE SCHEMA IF NOT EXISTS bench_serving;
             CREATE TABLE bench_serving.generated AS
                 SELECT {rows}::bigint AS rows, {DAYS} AS days, {GENERATOR_VERSION} AS version;
             ANALYZE ethereum.token_daily_counterparties;
             CHECKPOINT"
        ),
    )
}

/// `n` ranks (0-based) drawn with weight about `1 / (rank + 1)^skew`: the
/// inverse CDF of the continuous power law, as `day.rs` draws them.
fn zipf_sql(n: i64, skew: f64) -> String {
    let a = 1.0 - skew;
    format!(
        "least(greatest(floor(power((power({n}::float8 + 1, {a}::float8) - 1) * random() + 1, {inv}::float8))::bigint, 1) - 1, {last})",
        inv = 1.0 / a,
        last = n - 1
    )
}

/// A holder's address: its rank in 8 hex digits (so the rank can be read
/// back from the address), then 32 more.
fn holder_sql(rank: &str) -> String {
    format!("'0x' || lpad(to_hex({rank}), 8, '0') || md5('h' || {rank})")
}

/// A token's address, in a rank range no holder has (from 0xf0000000).
fn token_sql(rank: &str) -> String {
    format!("'0x' || to_hex(4026531840 + {rank}) || md5('t' || {rank})")
}

fn tokens_sql() -> String {
    format!(
        "INSERT INTO ethereum.tokens (address, symbol, name, decimals, total_supply,
                                      block_timestamp, block_number, block_hash)
         SELECT {address}, 'T' || r, 'Token ' || r, CASE WHEN r % 7 = 0 THEN 6 ELSE 18 END,
                (10::numeric ^ 27)::numeric(78,0), timestamptz '2020-01-01 00:00:00+00',
                10000000 + r, '0x' || md5('k' || r) || md5('l' || r)
         FROM generate_series(0, {last}) r",
        address = token_sql("r"),
        last = TOKENS - 1
    )
}

/// One day's partition: `count` rows numbered from `first_row` (global, so
/// transaction hashes are unique across days), built as the sink builds one.
fn generate_day(
    env: &Env,
    client: &Client,
    day: Day,
    index: i64,
    first_row: i64,
    count: i64,
) -> anyhow::Result<()> {
    let table = format!(
        "ethereum.{}",
        DayPartition::new(TOKEN_TRANSFERS, day).name()
    );
    let (start, end) = ddl::day_bounds(day);
    let day_first_block = FIRST_BLOCK + index * BLOCKS_PER_DAY;
    // Both rows of a transaction (g / 2) get the same block, spread evenly
    // over the day's 7,200 blocks; a block's timestamp is 12 s per block.
    let insert = format!(
        "INSERT INTO {table} (token_address, from_address, to_address, value, transaction_hash,
                              log_index, block_timestamp, block_number, block_hash)
         SELECT {token}, CASE WHEN random() < 0.02 THEN '0x' || repeat('0', 40) ELSE {from} END,
                {to}, CASE WHEN random() < 0.05 THEN 0 ELSE floor(random() * 1e21)::numeric END,
                '0x' || md5('x' || (g / 2)) || md5('y' || (g / 2)), (g - {first_row}) % 1000,
                timestamptz '{day} 00:00:00+00' + (b - {day_first_block}) * interval '12 seconds',
                b, '0x' || md5('b' || b) || md5('c' || b)
         FROM (SELECT g, {day_first_block} + ((g - {first_row}) / 2 * 2) * {BLOCKS_PER_DAY} / {count} AS b,
                      {token_rank} AS token_rank, {from_rank} AS from_rank, {to_rank} AS to_rank
               FROM generate_series({first_row}, {first_row} + {count} - 1) g) AS r",
        token = token_sql("token_rank"),
        from = holder_sql("from_rank"),
        to = holder_sql("to_rank"),
        token_rank = zipf_sql(TOKENS, TOKEN_SKEW),
        from_rank = zipf_sql(ADDRESSES, ADDRESS_SKEW),
        to_rank = zipf_sql(ADDRESSES, ADDRESS_SKEW),
    );
    let mut statements = vec![ddl::create_day_table(TOKEN_TRANSFERS, &table, day), insert];
    statements.extend(ddl::day_table_indexes(TOKEN_TRANSFERS, &table));
    statements.push(format!("ANALYZE {table}"));
    statements.push(format!(
        "ALTER TABLE ethereum.token_transfers ATTACH PARTITION {table} FOR VALUES FROM ({start}) TO ({end})"
    ));
    statements.push(format!(
        "INSERT INTO ethpipe.day_partitions (dataset, day, rows, first_block, last_block, loaded_at)
         SELECT 'token_transfers', DATE '{day}', count(*), min(block_number), max(block_number), now()
         FROM {table}"
    ));
    let mut batch = String::from("BEGIN;\n");
    for statement in statements {
        batch.push_str(&statement);
        batch.push_str(";\n");
    }
    batch.push_str("COMMIT;");
    env.execute(client, &batch)?;
    // The day's derived rows, with the sink's own statements.
    let (aggregate, statements) = ethpipe_sinks::postgres::day::daily_statements(&table);
    let derive = async {
        client.batch_execute("BEGIN").await?;
        client.batch_execute(&aggregate).await?;
        for statement in &statements {
            client.execute(statement, &[&day.naive()]).await?;
        }
        client.batch_execute("COMMIT").await
    };
    env.rt
        .block_on(derive)
        .with_context(|| format!("deriving {day}'s statistics"))?;
    Ok(())
}

/// The release `ethpipe serve` on the serving database, stopped on drop.
struct ServeProcess {
    child: Child,
    base: String,
}

impl ServeProcess {
    fn start(env: &Env, url: &str) -> anyhow::Result<ServeProcess> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log = std::fs::File::create(env.log("serving-serve.log"))?;
        let mut command: Command = env.ethpipe(
            &["serve", "--bind", &format!("127.0.0.1:{port}")],
            &[("ETHPIPE_DATABASE_URL", url.to_string())],
        );
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = command.spawn().context("starting ethpipe serve")?;
        let server = ServeProcess {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        server.wait_ready(env)?;
        Ok(server)
    }

    fn wait_ready(&self, env: &Env) -> anyhow::Result<()> {
        let client = http_client()?;
        let url = format!("{}/readyz", self.base);
        env.rt.block_on(async {
            for _ in 0..600 {
                if let Ok(response) = client.get(&url).send().await {
                    if response.status().is_success() {
                        return Ok(());
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            anyhow::bail!(
                "ethpipe serve did not become ready in 60 s; see {}",
                env.log("serving-serve.log").display()
            )
        })
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        // SIGTERM lets it finish the requests in flight and close its pool.
        // SAFETY: the pid is our own child's.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn http_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(256)
        .build()?)
}

/// A request path and the class it is reported under.
#[derive(Debug, Clone)]
struct Target {
    class: &'static str,
    path: String,
}

/// The URLs of each page kind, drawn from the data.
struct Targets {
    tokens: Vec<Target>,
    days: Vec<Target>,
    addresses: Vec<Target>,
}

impl Targets {
    fn sample(env: &Env, client: &Client, server: &ServeProcess) -> anyhow::Result<Targets> {
        let last = env
            .column(client, "SELECT max(day) FROM ethereum.token_daily_stats")?
            .pop()
            .unwrap_or_default();
        let days = env
            .column(
                client,
                "SELECT DISTINCT day FROM ethereum.token_daily_stats ORDER BY 1",
            )?
            .into_iter()
            .map(|d| Target {
                class: "any day",
                path: format!("/days/{d}"),
            })
            .collect();
        let busy_tokens = env.column(
            client,
            &format!(
                "SELECT token_address FROM ethereum.token_daily_stats WHERE day = '{last}'
                 ORDER BY transfer_count DESC LIMIT 50"
            ),
        )?;
        let any_tokens = env.column(
            client,
            "SELECT token_address FROM ethereum.token_daily_stats TABLESAMPLE BERNOULLI (1) REPEATABLE (7)
             ORDER BY md5(token_address || day) LIMIT 150",
        )?;
        let tokens = interleave(&[
            ("busiest token", busy_tokens),
            ("any active token", any_tokens),
        ]);
        let addresses = sample_addresses(env, client, server)?;
        Ok(Targets {
            tokens: tokens
                .into_iter()
                .map(|t| Target {
                    class: t.class,
                    path: format!("/tokens/{}", t.path),
                })
                .collect(),
            days,
            addresses,
        })
    }

    fn kinds(&self) -> [(&'static str, Vec<Target>); 3] {
        [
            ("token", self.tokens.clone()),
            ("day", self.days.clone()),
            ("address", self.addresses.clone()),
        ]
    }
}

/// Addresses of sampled rows, as busy (rank below `BUSY_RANK`) and rare
/// (rank `RARE_RANK` or more; a few transfers a year), and the second page
/// of busy ones (with the cursor their first page links to).
fn sample_addresses(
    env: &Env,
    client: &Client,
    server: &ServeProcess,
) -> anyhow::Result<Vec<Target>> {
    let sampled = env.column(
        client,
        "SELECT a FROM (SELECT from_address AS a, to_address AS b
                         FROM ethereum.token_transfers TABLESAMPLE SYSTEM (0.2) REPEATABLE (7)) s,
                LATERAL (VALUES (a), (b)) AS v(x)
         WHERE a IS NOT NULL",
    )?;
    let rank = |address: &str| i64::from_str_radix(address.get(2..10).unwrap_or(""), 16).ok();
    let mut busy = BTreeMap::new();
    let mut rare = BTreeMap::new();
    for address in sampled {
        match rank(&address) {
            Some(r) if r < BUSY_RANK => busy.insert(address, ()),
            Some(r) if r >= RARE_RANK => rare.insert(address, ()),
            _ => None,
        };
    }
    let busy: Vec<String> = busy.into_keys().take(100).collect();
    let rare: Vec<String> = rare.into_keys().take(100).collect();
    anyhow::ensure!(
        !busy.is_empty() && !rare.is_empty(),
        "the sample found {} busy and {} rare addresses",
        busy.len(),
        rare.len()
    );
    let second_pages = env
        .rt
        .block_on(second_pages(&server.base, &busy[..busy.len().min(50)]))?;
    let mut targets = interleave(&[
        ("busy address", busy),
        ("rare address", rare),
        ("busy address, 2nd page", second_pages),
    ]);
    for target in &mut targets {
        if !target.path.contains('?') {
            target.path = format!("/addresses/{}", target.path);
        }
    }
    Ok(targets)
}

/// The second-page paths of `addresses`: the "older" link of each first page.
async fn second_pages(base: &str, addresses: &[String]) -> anyhow::Result<Vec<String>> {
    let client = http_client()?;
    let mut pages = Vec::new();
    for address in addresses {
        let body = client
            .get(format!("{base}/addresses/{address}"))
            .send()
            .await?
            .text()
            .await?;
        let Some(start) = body.find("&amp;cursor=").map(|i| i + "&amp;cursor=".len()) else {
            continue;
        };
        let cursor: String = body[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        pages.push(format!(
            "/addresses/{address}?direction=both&cursor={cursor}"
        ));
    }
    Ok(pages)
}

/// Round-robin over the classes, so every stretch of the run mixes them.
fn interleave(classes: &[(&'static str, Vec<String>)]) -> Vec<Target> {
    let longest = classes.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
    let mut out = Vec::new();
    for i in 0..longest {
        for (class, values) in classes {
            if let Some(value) = values.get(i) {
                out.push(Target {
                    class,
                    path: value.clone(),
                });
            }
        }
    }
    out
}

/// One answered (or failed) request.
struct Sample {
    class: &'static str,
    latency_ms: f64,
    failure: Option<String>,
}

/// An open loop: request `i` is due at `start + i / rate` whatever happened
/// to the ones before; its latency counts from then.
async fn drive(
    client: &reqwest::Client,
    base: &str,
    targets: &[Target],
    rate: u32,
    seconds: u64,
) -> Vec<Sample> {
    let total = rate as u64 * seconds;
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let interval = Duration::from_secs(1) / rate;
    let targets = Arc::new(targets.to_vec());
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = start + interval * i as u32;
        let target = targets[i as usize % targets.len()].clone();
        let client = client.clone();
        let url = format!("{base}{}", target.path);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(due).await;
            let failure = fetch(&client, &url).await.err();
            Sample {
                class: target.class,
                latency_ms: due.elapsed().as_secs_f64() * 1e3,
                failure: failure.map(|e| format!("{url}: {e:#}")),
            }
        }));
    }
    let mut samples = Vec::with_capacity(tasks.len());
    for task in tasks {
        if let Ok(sample) = task.await {
            samples.push(sample);
        }
    }
    samples
}

/// The whole body of a 200 answer, or why not.
async fn fetch(client: &reqwest::Client, url: &str) -> anyhow::Result<()> {
    let response = client.get(url).send().await?;
    let status = response.status();
    response.bytes().await?;
    anyhow::ensure!(status.is_success(), "status {status}");
    Ok(())
}

fn summarize(kind: &str, samples: &[Sample]) -> PageKind {
    let mut classes: BTreeMap<&str, Vec<&Sample>> = BTreeMap::new();
    for sample in samples {
        classes.entry(sample.class).or_default().push(sample);
    }
    PageKind {
        kind: kind.to_string(),
        all: latency(samples.iter()),
        classes: classes
            .into_iter()
            .map(|(class, s)| (class.to_string(), latency(s.into_iter())))
            .collect(),
        failures: samples
            .iter()
            .filter_map(|s| s.failure.clone())
            .take(5)
            .collect(),
    }
}

fn latency<'a>(samples: impl Iterator<Item = &'a Sample>) -> Latency {
    let mut errors = 0;
    let mut millis = Vec::new();
    for sample in samples {
        if sample.failure.is_some() {
            errors += 1;
        }
        // A failed request still took its time; it counts in the latencies.
        millis.push(sample.latency_ms);
    }
    millis.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let rank = ((q * millis.len() as f64).ceil() as usize).clamp(1, millis.len().max(1));
        millis.get(rank - 1).copied().unwrap_or(0.0)
    };
    Latency {
        requests: millis.len(),
        errors,
        p50_ms: at(0.50),
        p90_ms: at(0.90),
        p99_ms: at(0.99),
        max_ms: millis.last().copied().unwrap_or(0.0),
    }
}
