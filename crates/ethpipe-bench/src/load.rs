//! Part 1 (load) and part 4 (backfill memory).
//!
//! Load: one realistic day served by the BigQuery-compatible test server
//! (`FakeBigQuery`, generating each page when asked) and loaded with
//! `ethpipe run token_transfers`, against the limit: the same rows as CSV
//! loaded with `psql \copy` into a table with only the primary key (DESIGN
//! §7). Each round times ethpipe's first load of the day (no partition for
//! it yet), its re-load (replacing that partition) and the `\copy` into the
//! emptied reference table, after a CHECKPOINT each. Then the same first
//! load and re-load with `history_rows` rows of earlier days in the table
//! (generated in SQL, as day partitions), and one ethpipe run of a 5 M-row
//! day for its peak memory.
//!
//! Backfill memory: 10 days of 200 k rows with `ethpipe backfill` against one
//! day with `ethpipe run`; peak RSS must agree within 20 %.

use std::io::Write;
use std::sync::Arc;

use anyhow::Context;
use chrono::NaiveDate;
use ethpipe_testkit::{FakeBigQuery, ServiceAccount};
use serde::{Deserialize, Serialize};

use crate::day::{csv_line, timestamp_text, RealisticDays};
use crate::env::{file_size, own_cpu_seconds, Env};
use crate::measure::{self, median, Measured};

pub const DAY: &str = "2024-03-01";
const BIG_DAY: &str = "2024-03-05";
const BACKFILL_FROM: &str = "2024-04-01";
const BACKFILL_TO: &str = "2024-04-10";
const BACKFILL_ROUNDS: usize = 3;
pub const SEED: u64 = 2024;
const COLUMNS: &str = "token_address, from_address, to_address, value, transaction_hash, log_index, block_timestamp, block_number, block_hash";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadOptions {
    pub rows: usize,
    pub big_rows: usize,
    pub rounds: usize,
    /// Rows of earlier days in the table for the history loads.
    #[serde(default)]
    pub history_rows: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EthpipeRun {
    pub measured: Measured,
    /// CPU seconds of the BigQuery-compatible server meanwhile.
    pub server_cpu_s: f64,
    /// The run's steps as the ledger recorded them (name, seconds, rows).
    pub steps: Vec<(String, f64, i64)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Round {
    pub ethpipe_first: bool,
    /// The first load of the day (no partition for it yet).
    pub ethpipe: EthpipeRun,
    /// The re-load of the loaded day.
    pub reload: EthpipeRun,
    pub psql: Measured,
}

/// The first load and the re-load with earlier days in the table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryResults {
    pub rows: i64,
    pub days: u32,
    pub generation_s: f64,
    pub first: Vec<EthpipeRun>,
    pub reload: Vec<EthpipeRun>,
    pub first_median_s: f64,
    pub reload_median_s: f64,
    /// The empty-table loads paired with the history loads: each round runs
    /// both, history detached then attached (or the other way), so the
    /// machine's drift between minutes falls on both sides. Empty in
    /// results from before the pairing (compared with the psql rounds').
    #[serde(default)]
    pub empty_first: Vec<EthpipeRun>,
    #[serde(default)]
    pub empty_reload: Vec<EthpipeRun>,
    /// Against the empty-table medians.
    pub first_vs_empty: f64,
    pub reload_vs_empty: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadResults {
    pub options: LoadOptions,
    pub day: String,
    pub csv_bytes: u64,
    pub csv_seconds: f64,
    pub indexes: Vec<String>,
    pub rounds: Vec<Round>,
    pub ethpipe_median_s: f64,
    pub psql_median_s: f64,
    pub ratio: f64,
    #[serde(default)]
    pub reload_median_s: f64,
    #[serde(default)]
    pub reload_ratio: f64,
    #[serde(default)]
    pub history: Option<HistoryResults>,
    pub peak_rss_mb: f64,
    pub big: EthpipeRun,
    /// Rows, and an order-independent checksum of every column, of both
    /// tables after the last round.
    pub ethpipe_table: (i64, String),
    pub psql_table: (i64, String),
    pub load_averages: Vec<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackfillResults {
    pub rows_per_day: usize,
    pub days: u32,
    /// (1-day run, 10-day backfill) per round.
    pub rounds: Vec<(Measured, Measured)>,
    /// Medians of the rounds' peak RSS, MB.
    pub one_day_rss: f64,
    pub backfill_rss: f64,
    pub ratio: f64,
}

/// The BigQuery-compatible server and the key that reaches it.
pub struct Server {
    pub bigquery: FakeBigQuery,
    pub key: ServiceAccount,
}

impl Server {
    pub fn start(env: &Env) -> anyhow::Result<Server> {
        let email = "ethpipe-test@test-project.iam.gserviceaccount.com";
        let bigquery = env.rt.block_on(FakeBigQuery::start(email))?;
        let key = ServiceAccount::write(&env.work, &bigquery.token_url())?;
        Ok(Server { bigquery, key })
    }

    pub fn settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("ETHPIPE_BIGQUERY_ENDPOINT", self.bigquery.endpoint()),
            (
                "GOOGLE_APPLICATION_CREDENTIALS",
                self.key.path.display().to_string(),
            ),
        ]
    }
}

/// The benchmark's day as a date.
pub fn bench_day() -> NaiveDate {
    date(DAY)
}

fn date(text: &str) -> NaiveDate {
    text.parse().expect("a valid date constant")
}

/// One `ethpipe` run against the server, with its ledger steps.
fn ethpipe_run(env: &Env, server: &Server, args: &[&str], log: &str) -> anyhow::Result<EthpipeRun> {
    let cpu_before = own_cpu_seconds();
    let measured = measure::run(env.ethpipe(args, &server.settings()), &env.log(log))?;
    let server_cpu_s = own_cpu_seconds() - cpu_before;
    let client = env.connect(&env.bench_url)?;
    let steps = env
        .rows(
            &client,
            "SELECT name, extract(epoch FROM finished_at - started_at)::float8, coalesce(rows, 0)
             FROM ethpipe.run_steps WHERE run_id = (SELECT max(id) FROM ethpipe.runs)
             ORDER BY position",
        )
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            (
                r[0].clone(),
                r[1].parse().unwrap_or(0.0),
                r[2].parse().unwrap_or(0),
            )
        })
        .collect();
    Ok(EthpipeRun {
        measured,
        server_cpu_s,
        steps,
    })
}

/// Writes the day's rows as CSV, streamed block by block.
fn write_csv(days: &RealisticDays, path: &std::path::Path) -> anyhow::Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut line = Vec::with_capacity(1 << 16);
    days.for_each_block(|rows| {
        line.clear();
        if let Some(first) = rows.first() {
            let timestamp = timestamp_text(first.block_timestamp_micros);
            for row in rows {
                csv_line(&mut line, row, &timestamp);
            }
        }
        out.write_all(&line)?;
        Ok(())
    })?;
    out.flush()?;
    Ok(())
}

/// An order-independent checksum of every column of every row.
fn table_checksum(env: &Env, table: &str) -> anyhow::Result<(i64, String)> {
    let client = env.connect(&env.bench_url)?;
    let row = env.rows(
        &client,
        &format!(
            "SELECT count(*), coalesce(sum(('x' || left(md5(t::text), 15))::bit(60)::bigint::numeric), 0)::text
             FROM {table} t"
        ),
    )?;
    let row = row.first().context("checksum row")?;
    Ok((row[0].parse().unwrap_or(-1), row[1].clone()))
}

/// Index definitions of a table, with its schema name taken out so two
/// tables' lists compare.
fn index_definitions(env: &Env, schema: &str) -> anyhow::Result<Vec<String>> {
    let client = env.connect(&env.bench_url)?;
    let mut defs: Vec<String> = env
        .column(
            &client,
            &format!(
                "SELECT regexp_replace(regexp_replace(indexdef, 'INDEX \\S+ ON ', 'INDEX ON '), '{schema}\\.', '', 'g')
                 FROM pg_indexes WHERE schemaname = '{schema}' AND tablename = 'token_transfers'"
            ),
        )?;
    defs.sort();
    Ok(defs)
}

pub fn load(env: &Env, options: LoadOptions) -> anyhow::Result<LoadResults> {
    env.fresh_database()?;
    let server = Server::start(env)?;
    let days = Arc::new(RealisticDays::new(date(DAY), 1, options.rows, SEED));
    server.bigquery.set_transfer_generator(days.clone());

    // The schema as ethpipe makes it, then the reference: the same columns,
    // the primary key only.
    measure::run(env.ethpipe(&["migrate"], &[]), &env.log("migrate.log"))?;
    let client = env.connect(&env.bench_url)?;
    env.execute(
        &client,
        "CREATE SCHEMA bench_copy;
         CREATE TABLE bench_copy.token_transfers (LIKE ethereum.token_transfers,
             PRIMARY KEY (transaction_hash, log_index));",
    )?;
    let indexes = index_definitions(env, "ethereum")?;

    let csv = env.work.join(format!("day-{}.csv", options.rows));
    let started = std::time::Instant::now();
    write_csv(&days, &csv)?;
    let csv_seconds = started.elapsed().as_secs_f64();
    let csv_bytes = file_size(&csv);
    eprintln!(
        "bench: {} rows as CSV ({:.0} MB) in {csv_seconds:.1} s",
        options.rows,
        file_size(&csv) as f64 / 1e6
    );

    let copy_command = |round: usize| {
        let mut command = std::process::Command::new("psql");
        command.args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            &env.bench_url,
            "-c",
            &format!(
                "\\copy bench_copy.token_transfers ({COLUMNS}) FROM '{}' WITH (FORMAT csv)",
                csv.display()
            ),
        ]);
        (command, env.log(&format!("psql-{round}.log")))
    };

    let mut rounds = Vec::new();
    let mut load_averages = Vec::new();
    for round in 1..=options.rounds {
        let ethpipe_first = round % 2 == 1;
        let mut loads = None;
        let mut psql = None;
        for step in 0..2 {
            let ethpipe_turn = (step == 0) == ethpipe_first;
            if ethpipe_turn {
                loads = Some(first_and_reload(
                    env,
                    &server,
                    &client,
                    &format!("{round}"),
                )?);
                load_averages.push(measure::load_average());
            } else {
                env.execute(&client, "TRUNCATE bench_copy.token_transfers; CHECKPOINT")?;
                env.settle(&client)?;
                load_averages.push(measure::load_average());
                let (command, log) = copy_command(round);
                let run = measure::run(command, &log)?;
                eprintln!("bench: round {round}: psql \\copy {:.2} s", run.wall_s);
                psql = Some(run);
            }
        }
        let (first, reload) = loads.context("ethpipe steps")?;
        rounds.push(Round {
            ethpipe_first,
            ethpipe: first,
            reload,
            psql: psql.context("psql step")?,
        });
    }
    let ethpipe_table = table_checksum(env, "ethereum.token_transfers")?;
    let psql_table = table_checksum(env, "bench_copy.token_transfers")?;
    anyhow::ensure!(
        ethpipe_table == psql_table && ethpipe_table.0 == options.rows as i64,
        "the two tables differ after loading the same rows: ethpipe {ethpipe_table:?}, psql {psql_table:?}"
    );
    let ethpipe_median_s = median(
        &rounds
            .iter()
            .map(|r| r.ethpipe.measured.wall_s)
            .collect::<Vec<_>>(),
    );
    let psql_median_s = median(&rounds.iter().map(|r| r.psql.wall_s).collect::<Vec<_>>());
    let reload_median_s = median(
        &rounds
            .iter()
            .map(|r| r.reload.measured.wall_s)
            .collect::<Vec<_>>(),
    );
    let history = with_history(env, &server, &client, &options)?;
    let peak_rss_mb = rounds
        .iter()
        .map(|r| r.ethpipe.measured.peak_rss_mb)
        .fold(0.0, f64::max);

    // The 5 M-row day: peak memory (and time, for the record).
    env.execute(
        &client,
        &format!(
            "{DROP_DAYS}; TRUNCATE ethereum.token_daily_stats, bench_copy.token_transfers; CHECKPOINT"
        ),
    )?;
    server
        .bigquery
        .set_transfer_generator(Arc::new(RealisticDays::new(
            date(BIG_DAY),
            1,
            options.big_rows,
            SEED,
        )));
    env.settle(&client)?;
    let big = ethpipe_run(
        env,
        &server,
        &["run", "token_transfers", "--date", BIG_DAY],
        "ethpipe-big.log",
    )?;
    eprintln!(
        "bench: {} rows: ethpipe {:.1} s, peak RSS {:.1} MB",
        options.big_rows, big.measured.wall_s, big.measured.peak_rss_mb
    );
    env.execute(
        &client,
        &format!("{DROP_DAYS}; TRUNCATE ethereum.token_daily_stats"),
    )?;
    let _ = std::fs::remove_file(&csv);

    let results = LoadResults {
        day: DAY.into(),
        csv_bytes,
        csv_seconds,
        indexes,
        ratio: ethpipe_median_s / psql_median_s,
        reload_ratio: reload_median_s / psql_median_s,
        reload_median_s,
        history,
        ethpipe_median_s,
        psql_median_s,
        peak_rss_mb,
        big,
        ethpipe_table,
        psql_table,
        load_averages,
        rounds,
        options,
    };
    env.save("load", &results)?;
    Ok(results)
}

/// Drops every day partition of `token_transfers` (the next load of a day
/// is a first load) and their records.
const DROP_DAYS: &str = "DO $$ DECLARE p regclass; BEGIN
     FOR p IN SELECT inhrelid::regclass FROM pg_inherits
              WHERE inhparent = 'ethereum.token_transfers'::regclass
                AND inhrelid <> 'ethereum.token_transfers_default'::regclass LOOP
         EXECUTE 'DROP TABLE ' || p;
     END LOOP;
     DELETE FROM ethpipe.day_partitions;
 END $$";

/// The day's first load (its partition dropped first) and its re-load.
fn first_and_reload(
    env: &Env,
    server: &Server,
    client: &tokio_postgres::Client,
    label: &str,
) -> anyhow::Result<(EthpipeRun, EthpipeRun)> {
    let day_partition = format!("ethereum.token_transfers_{}", DAY.replace('-', ""));
    env.execute(
        client,
        &format!(
            "DROP TABLE IF EXISTS {day_partition}; DELETE FROM ethpipe.day_partitions WHERE day = '{DAY}';
             DELETE FROM ethereum.token_daily_stats WHERE day = '{DAY}'; CHECKPOINT"
        ),
    )?;
    env.settle(client)?;
    let mut runs = Vec::new();
    for (kind, what) in [("first", "first load"), ("reload", "re-load")] {
        if kind == "reload" {
            env.execute(client, "CHECKPOINT")?;
            env.settle(client)?;
        }
        let run = ethpipe_run(
            env,
            server,
            &["run", "token_transfers", "--date", DAY],
            &format!("ethpipe-{kind}-{label}.log"),
        )?;
        eprintln!(
            "bench: {label}: ethpipe {what} {:.2} s, peak RSS {:.1} MB",
            run.measured.wall_s, run.measured.peak_rss_mb
        );
        runs.push(run);
    }
    let reload = runs.pop().context("re-load")?;
    let first = runs.pop().context("first load")?;
    Ok((first, reload))
}

/// Days of history before the benchmark day, one partition each.
const HISTORY_DAYS: u32 = 15;

/// Fills `HISTORY_DAYS` day partitions before the day with `rows` rows in
/// SQL (each built like ethpipe builds a day: rows, then key and indexes,
/// then attached), then times first loads and re-loads of the day with that
/// history in the table and without it, in pairs: each round detaches the
/// history (a catalog change) for its empty-table loads and attaches it
/// again (no scan: each table's CHECK proves its bounds) for the others,
/// in alternating order.
fn with_history(
    env: &Env,
    server: &Server,
    client: &tokio_postgres::Client,
    options: &LoadOptions,
) -> anyhow::Result<Option<HistoryResults>> {
    if options.history_rows == 0 {
        return Ok(None);
    }
    let started = std::time::Instant::now();
    let per_day = (options.history_rows / HISTORY_DAYS as usize) as i64;
    let last = date(DAY);
    let mut attach = Vec::new();
    let mut detach = Vec::new();
    let mut drop = Vec::new();
    for d in 1..=HISTORY_DAYS {
        let day = last - chrono::Days::new(d as u64);
        let name = format!("ethereum.token_transfers_{}", day.format("%Y%m%d"));
        let bounds = format!(
            "FROM ('{day} 00:00:00+00') TO ('{} 00:00:00+00')",
            day + chrono::Days::new(1)
        );
        let first_row = d as i64 * per_day;
        env.execute(
            client,
            &format!(
                "CREATE TABLE {name} (LIKE ethereum.token_transfers,
                     CHECK (block_timestamp >= '{day} 00:00:00+00' AND block_timestamp < '{} 00:00:00+00'));
                 INSERT INTO {name}
                 SELECT '0x' || lpad(to_hex(1 + floor(5000 * power(random(), 4))::bigint), 40, '0'),
                        '0x' || lpad(to_hex(floor(random() * 2000000)::bigint), 40, '0'),
                        '0x' || lpad(to_hex(floor(random() * 2000000)::bigint), 40, '0'),
                        floor(random() * 1e21)::numeric,
                        md5(g::text) || md5((g + 1)::text), 0,
                        timestamptz '{day} 00:00:00+00' + ((g - {first_row}) * 86399.0 / {per_day}) * interval '1 second',
                        1000000 + g / 100, '0x' || md5((g / 100)::text)
                 FROM generate_series({first_row}, {first_row} + {per_day} - 1) g;
                 ALTER TABLE {name} ADD PRIMARY KEY (transaction_hash, log_index);
                 CREATE INDEX ON {name} (block_timestamp);
                 CREATE INDEX ON {name} (from_address, block_number);
                 CREATE INDEX ON {name} (to_address, block_number);
                 CREATE INDEX ON {name} (token_address, block_timestamp);
                 ANALYZE {name};
                 ALTER TABLE ethereum.token_transfers ATTACH PARTITION {name} FOR VALUES {bounds};",
                day + chrono::Days::new(1)
            ),
        )?;
        attach.push(format!(
            "ALTER TABLE ethereum.token_transfers ATTACH PARTITION {name} FOR VALUES {bounds}"
        ));
        detach.push(format!(
            "ALTER TABLE ethereum.token_transfers DETACH PARTITION {name}"
        ));
        drop.push(format!("DROP TABLE {name}"));
    }
    let generation_s = started.elapsed().as_secs_f64();
    let rows = per_day * HISTORY_DAYS as i64;
    eprintln!(
        "bench: {rows} rows of history in {HISTORY_DAYS} day partitions in {generation_s:.0} s"
    );
    let (mut first, mut reload) = (Vec::new(), Vec::new());
    let (mut empty_first, mut empty_reload) = (Vec::new(), Vec::new());
    let mut attached = true;
    for round in 1..=options.rounds {
        let sides = if round % 2 == 1 {
            [true, false]
        } else {
            [false, true]
        };
        for with_history in sides {
            let (label, change) = if with_history {
                (format!("history-{round}"), &attach)
            } else {
                (format!("history-{round}-empty"), &detach)
            };
            if with_history != attached {
                env.execute(client, &change.join(";\n"))?;
                attached = with_history;
            }
            let (f, r) = first_and_reload(env, server, client, &label)?;
            let (firsts, reloads) = if with_history {
                (&mut first, &mut reload)
            } else {
                (&mut empty_first, &mut empty_reload)
            };
            firsts.push(f);
            reloads.push(r);
        }
    }
    if !attached {
        env.execute(client, &attach.join(";\n"))?;
    }
    env.execute(client, &drop.join(";\n"))?;
    let wall =
        |runs: &[EthpipeRun]| median(&runs.iter().map(|r| r.measured.wall_s).collect::<Vec<_>>());
    let (first_median_s, reload_median_s) = (wall(&first), wall(&reload));
    Ok(Some(HistoryResults {
        rows,
        days: HISTORY_DAYS,
        generation_s,
        first_vs_empty: first_median_s / wall(&empty_first),
        reload_vs_empty: reload_median_s / wall(&empty_reload),
        first,
        reload,
        empty_first,
        empty_reload,
        first_median_s,
        reload_median_s,
    }))
}

/// Writes the first `rows` lines of the day's CSV for the row-by-row baseline.
pub fn write_slice(path: &std::path::Path, rows: usize, day_rows: usize) -> anyhow::Result<()> {
    let days = RealisticDays::new(date(DAY), 1, day_rows, SEED);
    let file = std::fs::File::create(path)?;
    let mut out = std::io::BufWriter::new(file);
    let mut written = 0;
    let mut line = Vec::new();
    days.for_each_block(|block| {
        if written >= rows {
            return Ok(());
        }
        let timestamp = block
            .first()
            .map(|r| timestamp_text(r.block_timestamp_micros))
            .unwrap_or_default();
        for row in block.iter().take(rows - written) {
            line.clear();
            csv_line(&mut line, row, &timestamp);
            out.write_all(&line)?;
            written += 1;
        }
        Ok(())
    })?;
    out.flush()?;
    Ok(())
}

pub fn backfill_memory(env: &Env, rows_per_day: usize) -> anyhow::Result<BackfillResults> {
    env.fresh_database()?;
    let server = Server::start(env)?;
    let days = 10;
    server
        .bigquery
        .set_transfer_generator(Arc::new(RealisticDays::new(
            date(BACKFILL_FROM),
            days,
            rows_per_day,
            SEED,
        )));
    measure::run(env.ethpipe(&["migrate"], &[]), &env.log("migrate.log"))?;
    let client = env.connect(&env.bench_url)?;
    // Peak RSS moves by some MB from run to run (where glibc's arenas happen
    // to hold freed pages), so the pair is measured ROUNDS times, medians compared.
    let mut rounds = Vec::new();
    for round in 1..=BACKFILL_ROUNDS {
        env.execute(
            &client,
            "TRUNCATE ethereum.token_transfers, ethereum.token_daily_stats; CHECKPOINT",
        )?;
        let one_day = ethpipe_run(
            env,
            &server,
            &["run", "token_transfers", "--date", BACKFILL_FROM],
            &format!("ethpipe-one-day-{round}.log"),
        )?;
        eprintln!(
            "bench: round {round}: 1 day × {rows_per_day}: ethpipe run {:.1} s, peak RSS {:.1} MB",
            one_day.measured.wall_s, one_day.measured.peak_rss_mb
        );
        env.execute(
            &client,
            "TRUNCATE ethereum.token_transfers, ethereum.token_daily_stats; CHECKPOINT",
        )?;
        let backfill = ethpipe_run(
            env,
            &server,
            &[
                "backfill",
                "token_transfers",
                "--from",
                BACKFILL_FROM,
                "--to",
                BACKFILL_TO,
                "--force",
            ],
            &format!("ethpipe-backfill-{round}.log"),
        )?;
        eprintln!(
            "bench: round {round}: {days} days × {rows_per_day}: ethpipe backfill {:.1} s, peak RSS {:.1} MB",
            backfill.measured.wall_s, backfill.measured.peak_rss_mb
        );
        let loaded = env.column(&client, "SELECT count(*) FROM ethereum.token_transfers")?;
        anyhow::ensure!(
            loaded.first().map(String::as_str) == Some(&(rows_per_day * days as usize).to_string()),
            "the backfill loaded {loaded:?} rows"
        );
        rounds.push((one_day.measured, backfill.measured));
    }
    env.execute(
        &client,
        "TRUNCATE ethereum.token_transfers, ethereum.token_daily_stats",
    )?;
    let one_day_rss = median(&rounds.iter().map(|r| r.0.peak_rss_mb).collect::<Vec<_>>());
    let backfill_rss = median(&rounds.iter().map(|r| r.1.peak_rss_mb).collect::<Vec<_>>());
    let results = BackfillResults {
        rows_per_day,
        days,
        ratio: backfill_rss / one_day_rss,
        one_day_rss,
        backfill_rss,
        rounds,
    };
    env.save("backfill", &results)?;
    Ok(results)
}

/// Serves the benchmark day and prints the settings that reach it, until
/// killed: for running and profiling `ethpipe` by hand.
pub fn serve(env: &Env, rows: usize) -> anyhow::Result<()> {
    let server = Server::start(env)?;
    server
        .bigquery
        .set_transfer_generator(Arc::new(RealisticDays::new(date(DAY), 1, rows, SEED)));
    for (key, value) in server.settings() {
        println!("export {key}={value}");
    }
    println!("# then: ethpipe run token_transfers --date {DAY}");
    crate::env::wait_for_signal(env)
}

/// The benchmark day as CSV at `path` (what `psql \\copy` loads).
pub fn write_day_csv(rows: usize, path: &std::path::Path) -> anyhow::Result<()> {
    write_csv(&RealisticDays::new(date(DAY), 1, rows, SEED), path)
}
