//! Part 2: JSON-RPC extraction, ethpipe against ethereum-etl on the same node.
//!
//! An anvil chain gets several days of `batchTransfer`s (StandardToken), a
//! few hundred transfers per block, then one block after the last day so
//! every day is complete. ethpipe loads the days with `ethpipe backfill
//! token_transfers --source rpc` into PostgreSQL (its defaults, with
//! `--parallel 2`, and with `--parallel 4 --rpc-concurrency 16`, whose peak
//! RSS is the memory target's); ethereum-etl exports the same block range with
//! `export_token_transfers` to CSV (the fastest of a grid of its settings). Both
//! row sets must be identical on (transaction_hash, log_index, token_address,
//! from_address, to_address, value, block_number). cryo, and ethpipe into
//! Parquet, then run against the same node and rows: [`crate::cryo`].

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use chrono::NaiveDate;
use ethpipe_testkit::chain::{day_end, day_start, encode_call};
use ethpipe_testkit::{Anvil, AnvilOptions, Arg, Tx};
use serde::{Deserialize, Serialize};

use crate::cryo::{cryo_venv, CryoResults};
use crate::day::{value, Rng};
use crate::env::Env;
use crate::measure::{self, Measured};

const FROM: &str = "2024-05-01";
/// Recipients per `batchTransfer` and transactions per block: 300 transfers a
/// block, inside anvil's 30 M block gas limit.
const RECIPIENTS_PER_TX: usize = 150;
const TXS_PER_BLOCK: usize = 2;
const TOKENS: usize = 6;
const HOLDERS: f64 = 20_000.0;

/// ethpipe's runs as (`--parallel`, `--rpc-concurrency`): its defaults, two
/// days in flight, and [`MEMORY_RUN`].
pub const ETHPIPE_RUNS: [(u32, u32); 3] = [(1, 8), (2, 8), MEMORY_RUN];
/// The run whose peak RSS is held to the memory target: the most work in
/// flight a backfill is likely to be given (issue 13).
pub const MEMORY_RUN: (u32, u32) = (4, 16);
/// ethereum-etl's settings tried on the first day (`--batch-size` blocks per
/// log filter, `--max-workers` threads); the fastest runs the whole range.
/// Its defaults are 100 and 5.
const ETL_GRID: &[(u64, u64)] = &[(10, 1), (10, 5), (10, 10), (100, 1), (100, 5), (100, 10)];
pub const ETL_VERSION: &str = "ethereum-etl==2.4.2";
const ETL_PINS: &[&str] = &["parsimonious==0.9.0", "regex==2026.11.19"];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RpcResults {
    pub days: u32,
    pub blocks: (u64, u64),
    pub transfers: usize,
    pub generation_s: f64,
    pub ethpipe: Measured,
    /// `--parallel` of the run in `ethpipe`, the faster one.
    pub ethpipe_parallel: u32,
    /// (--parallel, rows loaded, measurement) of every ethpipe run.
    pub ethpipe_runs: Vec<(u32, usize, Measured)>,
    /// The [`MEMORY_RUN`], also among `ethpipe_runs` (absent in results
    /// saved before it was measured).
    #[serde(default)]
    pub memory_run: Option<Measured>,
    pub ethpipe_rows: usize,
    pub ethpipe_per_s: f64,
    pub etl: Measured,
    pub etl_rows: usize,
    pub etl_per_s: f64,
    pub etl_batch_size: u64,
    pub etl_max_workers: u64,
    /// (batch size, max workers, transfers/s) on the first day's blocks.
    pub etl_calibration: Vec<(u64, u64, f64)>,
    pub calibration_blocks: (u64, u64),
    pub identical: bool,
    pub only_ethpipe: usize,
    pub only_etl: usize,
    pub ratio: f64,
    /// cryo and ethpipe into Parquet on the same chain (absent in results
    /// saved before they were measured).
    #[serde(default)]
    pub cryo: Option<CryoResults>,
}

/// (transaction_hash, log_index, token_address, from_address, to_address,
/// value, block_number): what the tools' rows are compared on.
pub(crate) type Key = (String, i64, String, String, String, String, i64);

/// The venv with ethereum-etl, made once under the tools folder.
pub fn etl_venv(env: &Env) -> anyhow::Result<PathBuf> {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let wanted = format!("{ETL_VERSION} {}", ETL_PINS.join(" "));
    env.python_venv("etl", &python, &wanted, |pip| {
        let mut install = Command::new(pip);
        install.args(["install", "-q", ETL_VERSION]);
        measure::run(install, &env.log("etl-pip.log"))?;
        // eth-abi 2.2 asks for parsimonious < 0.9, whose 0.8 no longer imports;
        // 0.9.0 works and needs regex, so both go in without the resolver.
        let mut pin = Command::new(pip);
        pin.args(["install", "-q", "--no-deps"]).args(ETL_PINS);
        measure::run(pin, &env.log("etl-pip-pins.log"))?;
        Ok(())
    })
}

fn date(text: &str) -> NaiveDate {
    text.parse().expect("a valid date constant")
}

/// Fills the node: tokens, then `days` days of batch transfers, then a
/// closing block. Returns (first block of the first day, last block of the
/// last day).
async fn generate(anvil: &Anvil, transfers: usize, days: u32) -> anyhow::Result<(u64, u64, u64)> {
    let chain = anvil.chain().await?;
    let from = date(FROM);
    chain.set_next_block_timestamp(day_start(from) + 30).await?;
    let mut tokens = Vec::new();
    for i in 0..TOKENS {
        let args = [
            Arg::string(&format!("Bench Token {i}")),
            Arg::string(&format!("BT{i}")),
            Arg::uint([18, 6, 0][i % 3]),
            Arg::max_uint(),
        ];
        tokens.push(chain.deploy("StandardToken", &args).await?);
    }
    let first = chain.block_number().await? - TOKENS as u64 + 1;
    chain.set_automine(false).await?;
    let per_block = RECIPIENTS_PER_TX * TXS_PER_BLOCK;
    let blocks_per_day = transfers.div_ceil(per_block * days as usize).max(1);
    let spacing = (86_400 - 3_600) / blocks_per_day as u64;
    let mut rng = Rng::new(7);
    let mut sent = 0;
    let mut first_day_last = first;
    for d in 0..days {
        let day = from + chrono::Days::new(u64::from(d));
        for b in 0..blocks_per_day {
            for _ in 0..TXS_PER_BLOCK {
                let token = &tokens[rng.zipf(TOKENS as f64, 1.0) as usize];
                let recipients: Vec<String> = (0..RECIPIENTS_PER_TX)
                    .map(|_| {
                        format!(
                            "0x{:040x}",
                            0xbe_0000_0000u64 + rng.zipf(HOLDERS, 1.05) * 7919
                        )
                    })
                    .collect();
                let refs: Vec<&str> = recipients.iter().map(String::as_str).collect();
                let values: Vec<Arg> = (0..RECIPIENTS_PER_TX)
                    .map(|_| {
                        // Mainnet's mix of value lengths, capped at 70 digits so
                        // the sender's 2^256−1 lasts.
                        let mut v = value(&mut rng);
                        v.truncate(70);
                        Arg::uint_dec(&v)
                    })
                    .collect();
                let data = encode_call(
                    "batchTransfer(address[],uint256[])",
                    &[Arg::addresses(&refs), Arg::Array(values)],
                );
                chain
                    .submit(Tx {
                        to: Some(token.clone()),
                        data,
                        gas: Some(14_000_000),
                        ..Tx::default()
                    })
                    .await?;
                sent += RECIPIENTS_PER_TX;
            }
            chain
                .mine(day_start(day) + 3_600 + b as u64 * spacing)
                .await?;
        }
        if d == 0 {
            first_day_last = chain.block_number().await?;
        }
        eprintln!("bench: chain day {day}: {sent} transfers so far");
    }
    let last_day = from + chrono::Days::new(u64::from(days - 1));
    let last = chain.block_number().await?;
    chain.set_automine(true).await?;
    chain.mine(day_end(last_day) + 60).await?;
    Ok((first, last, first_day_last))
}

/// `ethereumetl export_token_transfers` over `blocks` with these settings.
fn etl_command(
    venv: &Path,
    url: &str,
    blocks: (u64, u64),
    batch: u64,
    workers: u64,
    output: &Path,
) -> Command {
    let mut command = Command::new(venv.join("bin").join("ethereumetl"));
    command.args([
        "export_token_transfers",
        "--start-block",
        &blocks.0.to_string(),
        "--end-block",
        &blocks.1.to_string(),
        "--batch-size",
        &batch.to_string(),
        "--max-workers",
        &workers.to_string(),
        "--provider-uri",
        url,
        "--output",
    ]);
    command.arg(output);
    command
}

/// ethereum-etl's CSV, or any with its column names (cryo's and ethpipe's
/// Parquet are dumped so by [`crate::cryo`]).
pub(crate) fn read_transfers_csv(path: &Path) -> anyhow::Result<Vec<Key>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let at = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .with_context(|| format!("ethereum-etl's CSV has no {name} column: {header:?}"))
    };
    let (tx, li, token, from, to, value, block) = (
        at("transaction_hash")?,
        at("log_index")?,
        at("token_address")?,
        at("from_address")?,
        at("to_address")?,
        at("value")?,
        at("block_number")?,
    );
    lines
        .filter(|l| !l.is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            Ok((
                f[tx].to_string(),
                f[li].parse()?,
                f[token].to_string(),
                f[from].to_string(),
                f[to].to_string(),
                f[value].to_string(),
                f[block].parse()?,
            ))
        })
        .collect()
}

/// `ethpipe backfill token_transfers --force` of the days `from`..=`to` from
/// the node at `url` (no confirmations: the chain is final), with
/// (`--parallel`, `--rpc-concurrency`), into `database` (the bench's own
/// database if `None`).
pub fn rpc_backfill(
    env: &Env,
    url: &str,
    (from, to): (&str, &str),
    (parallel, concurrency): (u32, u32),
    database: Option<String>,
) -> std::process::Command {
    let mut settings = vec![
        ("ETHPIPE_SOURCE", "rpc".to_string()),
        ("ETHPIPE_RPC_URL", url.to_string()),
        ("ETHPIPE_RPC_CONFIRMATIONS", "0".to_string()),
    ];
    settings.extend(database.map(|url| ("ETHPIPE_DATABASE_URL", url)));
    env.ethpipe(
        &[
            "backfill",
            "token_transfers",
            "--from",
            from,
            "--to",
            to,
            "--force",
            "--parallel",
            &parallel.to_string(),
            "--rpc-concurrency",
            &concurrency.to_string(),
        ],
        &settings,
    )
}

/// `ethpipe backfill token_transfers --source rpc` of the days from [`FROM`]
/// to `last_day` into emptied tables, with (`--parallel`,
/// `--rpc-concurrency`); returns the rows loaded and the measurement.
fn backfill_into_postgres(
    env: &Env,
    client: &tokio_postgres::Client,
    url: &str,
    last_day: &str,
    (parallel, concurrency): (u32, u32),
    log: &str,
) -> anyhow::Result<(usize, Measured)> {
    env.execute(
        client,
        "TRUNCATE ethereum.token_transfers, ethereum.token_daily_stats; CHECKPOINT",
    )?;
    let run = measure::run(
        rpc_backfill(env, url, (FROM, last_day), (parallel, concurrency), None),
        &env.log(log),
    )?;
    let rows = env
        .column(client, "SELECT count(*) FROM ethereum.token_transfers")?
        .first()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Ok((rows, run))
}

pub fn rpc(env: &Env, transfers: usize, days: u32) -> anyhow::Result<RpcResults> {
    let venv = etl_venv(env)?;
    let cryo_venv = cryo_venv(env)?;
    env.fresh_database()?;
    let from = date(FROM);
    let anvil = env.rt.block_on(Anvil::start_with(AnvilOptions {
        genesis_timestamp: Some(day_start(from) - 3_600),
        ..AnvilOptions::default()
    }))?;
    let started = std::time::Instant::now();
    let (first, last, first_day_last) = env.rt.block_on(generate(&anvil, transfers, days))?;
    let generation_s = started.elapsed().as_secs_f64();
    eprintln!(
        "bench: chain of blocks {first}–{last} generated in {generation_s:.0} s at {}",
        anvil.url()
    );
    measure::run(env.ethpipe(&["migrate"], &[]), &env.log("migrate.log"))?;
    let client = env.connect(&env.bench_url)?;
    env.execute(&client, "CHECKPOINT")?;

    let last_day = from + chrono::Days::new(u64::from(days - 1));
    // ethpipe with its defaults, then with more days and requests in flight
    // (`--parallel`, `--rpc-concurrency`); the fastest counts, all are reported.
    let mut ethpipe_runs = Vec::new();
    let mut memory_run = None;
    let backfill = |parallel: u32, concurrency: u32, log: &str| {
        backfill_into_postgres(
            env,
            &client,
            anvil.url(),
            &last_day.to_string(),
            (parallel, concurrency),
            log,
        )
    };
    for (parallel, concurrency) in ETHPIPE_RUNS {
        let (rows, run) = backfill(
            parallel,
            concurrency,
            &format!("ethpipe-rpc-parallel-{parallel}.log"),
        )?;
        eprintln!(
            "bench: ethpipe (rpc) --parallel {parallel} --rpc-concurrency {concurrency}: {rows} transfers in {:.1} s, peak RSS {:.0} MB",
            run.wall_s, run.peak_rss_mb
        );
        if (parallel, concurrency) == MEMORY_RUN {
            memory_run = Some(run.clone());
        }
        ethpipe_runs.push((parallel, rows, run));
    }
    let (ethpipe_parallel, _, ethpipe) = ethpipe_runs
        .iter()
        .min_by(|a, b| a.2.wall_s.total_cmp(&b.2.wall_s))
        .cloned()
        .context("no ethpipe run")?;
    let ethpipe_keys: Vec<Key> = env
        .rows(
            &client,
            "SELECT transaction_hash, log_index, token_address, from_address, to_address, value::text, block_number
             FROM ethereum.token_transfers",
        )?
        .into_iter()
        .map(|r| {
            (
                r[0].clone(),
                r[1].parse().unwrap_or(-1),
                r[2].clone(),
                r[3].clone(),
                r[4].clone(),
                r[5].clone(),
                r[6].parse().unwrap_or(-1),
            )
        })
        .collect();
    eprintln!(
        "bench: ethpipe (rpc): {} transfers in {:.1} s",
        ethpipe_keys.len(),
        ethpipe.wall_s
    );

    // ethereum-etl's best settings on this node and machine, from the grid.
    let output = env.work.join("etl-token-transfers.csv");
    let calibration_blocks = (first, first_day_last);
    let mut etl_calibration = Vec::new();
    for &(batch, workers) in ETL_GRID {
        let run = measure::run(
            etl_command(
                &venv,
                anvil.url(),
                calibration_blocks,
                batch,
                workers,
                &output,
            ),
            &env.log(&format!("etl-b{batch}-w{workers}.log")),
        )?;
        let rows = read_transfers_csv(&output)?.len();
        let per_s = rows as f64 / run.wall_s;
        eprintln!("bench: ethereum-etl --batch-size {batch} --max-workers {workers}: {rows} transfers of the first day, {per_s:.0}/s");
        etl_calibration.push((batch, workers, per_s));
    }
    let &(etl_batch_size, etl_max_workers, _) = etl_calibration
        .iter()
        .max_by(|a, b| a.2.total_cmp(&b.2))
        .context("the calibration grid is empty")?;
    let etl = measure::run(
        etl_command(
            &venv,
            anvil.url(),
            (first, last),
            etl_batch_size,
            etl_max_workers,
            &output,
        ),
        &env.log("etl.log"),
    )?;
    let etl_keys = read_transfers_csv(&output)?;
    eprintln!(
        "bench: ethereum-etl: {} transfers in {:.1} s",
        etl_keys.len(),
        etl.wall_s
    );

    let ours: HashSet<&Key> = ethpipe_keys.iter().collect();
    let theirs: HashSet<&Key> = etl_keys.iter().collect();
    let only_ethpipe = ours.difference(&theirs).count();
    let only_etl = theirs.difference(&ours).count();
    let identical = only_ethpipe == 0
        && ethpipe_runs
            .iter()
            .all(|(_, rows, _)| *rows == ethpipe_keys.len())
        && only_etl == 0
        && ours.len() == ethpipe_keys.len()
        && theirs.len() == etl_keys.len();
    let cryo = crate::cryo::cryo(
        env,
        &cryo_venv,
        &crate::cryo::Chain {
            url: anvil.url(),
            days: (FROM, last_day.to_string()),
            blocks: (first, last),
            calibration_blocks,
            ethpipe_keys: &ethpipe_keys,
            postgres: &|round| {
                let settings = ETHPIPE_RUNS
                    .into_iter()
                    .find(|(parallel, _)| *parallel == ethpipe_parallel)
                    .context("the fastest run is one of ETHPIPE_RUNS")?;
                let (rows, run) = backfill(
                    settings.0,
                    settings.1,
                    &format!("ethpipe-rpc-cryo-round-{round}.log"),
                )?;
                anyhow::ensure!(
                    rows == ethpipe_keys.len(),
                    "round {round} into PostgreSQL loaded {rows} transfers, not {}",
                    ethpipe_keys.len()
                );
                Ok(run)
            },
        },
    )?;
    let ethpipe_per_s = ethpipe_keys.len() as f64 / ethpipe.wall_s;
    let etl_per_s = etl_keys.len() as f64 / etl.wall_s;
    let results = RpcResults {
        days,
        blocks: (first, last),
        transfers: ethpipe_keys.len(),
        generation_s,
        ethpipe_rows: ethpipe_keys.len(),
        ethpipe_parallel,
        ethpipe_runs: ethpipe_runs.clone(),
        memory_run,
        etl_rows: etl_keys.len(),
        ethpipe,
        ethpipe_per_s,
        etl,
        etl_per_s,
        etl_batch_size,
        etl_max_workers,
        etl_calibration,
        calibration_blocks,
        identical,
        only_ethpipe,
        only_etl,
        ratio: ethpipe_per_s / etl_per_s,
        cryo: Some(cryo.clone()),
    };
    let _ = std::fs::remove_file(&output);
    env.save("rpc", &results)?;
    anyhow::ensure!(
        identical,
        "ethpipe and ethereum-etl disagree: {only_ethpipe} rows only in ethpipe's, {only_etl} only in ethereum-etl's"
    );
    anyhow::ensure!(
        cryo.identical,
        "ethpipe and cryo disagree: {} rows only in ethpipe's, {} only in cryo's",
        cryo.only_ethpipe,
        cryo.only_cryo
    );
    anyhow::ensure!(
        cryo.parquet_identical,
        "ethpipe's Parquet files and its PostgreSQL rows disagree (see the log)"
    );
    Ok(results)
}

/// Generates the benchmark chain and keeps the node up, until killed: for
/// running and profiling `ethpipe --source rpc` by hand.
pub fn serve_chain(env: &Env, transfers: usize, days: u32) -> anyhow::Result<()> {
    let from = date(FROM);
    let anvil = env.rt.block_on(Anvil::start_with(AnvilOptions {
        genesis_timestamp: Some(day_start(from) - 3_600),
        ..AnvilOptions::default()
    }))?;
    let (first, last, _) = env.rt.block_on(generate(&anvil, transfers, days))?;
    let last_day = from + chrono::Days::new(u64::from(days - 1));
    println!("export ETHPIPE_SOURCE=rpc ETHPIPE_RPC_URL={}", anvil.url());
    println!("# blocks {first}-{last}; then: ethpipe backfill token_transfers --from {FROM} --to {last_day}");
    crate::env::wait_for_signal(env)
}
