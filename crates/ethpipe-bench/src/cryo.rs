//! Part 2, continued: the same anvil chain against cryo (PyPI `cryo`, its
//! `erc20_transfers` dataset), and ethpipe into Parquet beside it.
//!
//! cryo writes Parquet files for a block range and nothing else: it skips
//! ERC-721 transfers (same topic, one more indexed argument, no data) and
//! every other Transfer shape but ERC-20's three topics and one word, and
//! fetches no block headers, so it has no timestamps and knows no days.
//! ethpipe's times against it are the whole `backfill` process over the days
//! covering the same blocks: into PostgreSQL (the settings of the fastest run
//! of [`crate::rpc`]) and into `parquet://DIR` (the faster of two settings
//! here). cryo's settings are the fastest of a grid tried on the first day's
//! blocks, as for ethereum-etl. Then the three run in [`ROUNDS`] alternating
//! rounds and the medians count; rows must be identical to ethpipe's for the
//! figures to count.
//!
//! cryo's Parquet has binary hashes and addresses and the value as
//! `value_string` (decimal) beside `value_binary`; DuckDB, in cryo's venv,
//! turns both tools' files into the same CSV as ethereum-etl's for comparing.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::env::Env;
use crate::measure::{self, Measured};
use crate::rpc::{read_transfers_csv, Key};

pub const CRYO_VERSION: &str = "cryo==0.3.2";
/// DuckDB reads both tools' Parquet for the row check (cryo's wheel needs
/// nothing else to write it); the pin of `scripts/ensure-python-tools.sh`.
const CRYO_PINS: &[&str] = &["duckdb==1.5.6"];

/// One setting of cryo's: blocks per chunk (a chunk is one file, and the
/// unit of its parallelism), blocks per `eth_getLogs` request, chunks in
/// flight. Requests in flight and per second stay unlimited (its defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CryoSettings {
    pub chunk_size: u64,
    pub inner_request_size: u64,
    pub max_concurrent_chunks: u64,
}

const fn settings(
    chunk_size: u64,
    inner_request_size: u64,
    max_concurrent_chunks: u64,
) -> CryoSettings {
    CryoSettings {
        chunk_size,
        inner_request_size,
        max_concurrent_chunks,
    }
}

/// cryo 0.3.2's defaults: 1000 blocks a chunk, one block a log request, 4
/// chunks at once.
pub const CRYO_DEFAULTS: CryoSettings = settings(1000, 1, 4);
/// Tried on the first day's blocks (~200 in the full run, 300 transfers a
/// block); the fastest with every row runs the whole range. Small chunks won
/// the first full run (more of them in flight on anvil), so the grid goes
/// down to 5 blocks to bracket the best.
const CRYO_GRID: &[CryoSettings] = &[
    CRYO_DEFAULTS,
    settings(1000, 10, 4),
    settings(50, 1, 4),
    settings(50, 10, 4),
    settings(10, 1, 4),
    settings(10, 10, 4),
    settings(10, 1, 16),
    settings(10, 10, 16),
    settings(5, 1, 4),
    settings(5, 1, 16),
];

/// ethpipe into Parquet as (`--parallel`, `--rpc-concurrency`): one day at
/// a time (the default), and four (the chain's days) with the default and a
/// wider request limit.
const PARQUET_RUNS: [(u32, u32); 3] = [(1, 8), (4, 8), (4, 16)];

/// Alternating rounds of cryo, ethpipe into PostgreSQL and ethpipe into
/// Parquet at their chosen settings; medians count. One run each swung by 2 ×
/// on this shared 2-core machine (cryo keeps both cores busy).
pub const ROUNDS: usize = 3;

fn one_day_at_a_time() -> u32 {
    1
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CryoResults {
    /// cryo's median round over the whole range with
    /// [`CryoResults::settings`].
    pub cryo: Measured,
    pub rows: usize,
    pub settings: CryoSettings,
    /// (settings, rows, wall seconds) on the calibration blocks.
    pub calibration: Vec<(CryoSettings, usize, f64)>,
    pub calibration_rows_expected: usize,
    /// Rows only in ethpipe's / only in cryo's, summed over the rounds.
    pub only_ethpipe: usize,
    pub only_cryo: usize,
    pub identical: bool,
    /// ethpipe into PostgreSQL at the fastest settings of [`crate::rpc`]:
    /// the median round's wall time, and over cryo's median.
    pub postgres_s: f64,
    pub postgres_ratio: f64,
    /// That median round into PostgreSQL.
    #[serde(default)]
    pub postgres: Option<Measured>,
    /// (--parallel, --rpc-concurrency, rows, measurement) into Parquet: the
    /// settings tried once each, before the rounds.
    pub parquet_runs: Vec<(u32, u32, usize, Measured)>,
    /// ethpipe into Parquet's median round.
    pub parquet: Measured,
    /// The highest peak RSS of ethpipe's Parquet rounds (0 in results from
    /// before it was kept).
    #[serde(default)]
    pub parquet_rounds_peak_rss_mb: f64,
    /// The `--parallel` of the rounds into Parquet (1 in results from before
    /// `parquet://` could write days at once).
    #[serde(default = "one_day_at_a_time")]
    pub parquet_parallel: u32,
    pub parquet_concurrency: u32,
    /// Every Parquet run's rows equal ethpipe's PostgreSQL rows.
    pub parquet_identical: bool,
    pub parquet_ratio: f64,
    /// Wall seconds of (cryo, ethpipe into PostgreSQL, into Parquet) per round.
    #[serde(default)]
    pub rounds: Vec<(f64, f64, f64)>,
    /// cryo runs that failed and were repeated: (log, exit status).
    #[serde(default)]
    pub failures: Vec<(String, String)>,
}

/// The venv with cryo (and DuckDB), made once under the tools folder. cryo
/// 0.3.2 ships a CPython 3.11 wheel only: `PYTHON` picks the interpreter,
/// else `python3.11` if on the PATH, else `python3`.
pub fn cryo_venv(env: &Env) -> anyhow::Result<PathBuf> {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| {
        let has_311 = Command::new("python3.11")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if has_311 { "python3.11" } else { "python3" }.to_string()
    });
    let wanted = format!("{CRYO_VERSION} {}", CRYO_PINS.join(" "));
    env.python_venv("cryo", &python, &wanted, |pip| {
        let mut install = Command::new(pip);
        // Wheels only: a source build of cryo would need a Rust toolchain and
        // minutes, and would not be the published package.
        install
            .args(["install", "-q", "--only-binary=:all:", CRYO_VERSION])
            .args(CRYO_PINS);
        measure::run(install, &env.log("cryo-pip.log")).context(
            "installing cryo (its only wheel is for CPython 3.11: set PYTHON to a python3.11)",
        )?;
        Ok(())
    })
}

/// `cryo.freeze('erc20_transfers', **kwargs)`: cryo's Python entry point
/// (the wheel has no CLI), which runs its Rust engine to Parquet files. Once
/// it has returned, the files are written and the process leaves without
/// Python's finalization: cryo 0.3.2's engine threads sometimes release the
/// GIL while the interpreter finalizes, and Python aborts ("Fatal Python
/// error: PyGILState_Release", SIGABRT) after a complete run.
const FREEZE: &str = "import json, os, sys, cryo\n\
                      cryo.freeze('erc20_transfers', **json.loads(sys.argv[1]))\n\
                      sys.stdout.flush(); sys.stderr.flush(); os._exit(0)\n";

/// `COPY (query) TO csv` with DuckDB.
const DUMP: &str = "import sys, duckdb\n\
                    duckdb.connect().execute(\"COPY (\" + sys.argv[1] + \") TO '\" + sys.argv[2] + \"' (HEADER)\")\n";

/// cryo over `blocks` (both ends included) into `output`.
fn cryo_command(
    venv: &Path,
    url: &str,
    blocks: (u64, u64),
    s: CryoSettings,
    output: &Path,
) -> Command {
    let kwargs = serde_json::json!({
        "rpc": url,
        "start_block": blocks.0,
        // cryo's end block is exclusive.
        "end_block": blocks.1 + 1,
        "output_dir": output.to_string_lossy(),
        "chunk_size": s.chunk_size,
        "inner_request_size": s.inner_request_size,
        "max_concurrent_chunks": s.max_concurrent_chunks,
    });
    let mut command = Command::new(venv.join("bin").join("python"));
    command.args(["-c", FREEZE, &kwargs.to_string()]);
    command
}

/// The rows of the Parquet files matching `glob`, through `select` (which
/// reads `{files}`), as ethereum-etl-style CSV keys.
fn parquet_keys(
    env: &Env,
    venv: &Path,
    select: &str,
    glob: &Path,
    name: &str,
) -> anyhow::Result<Vec<Key>> {
    let csv = env.work.join(format!("{name}.csv"));
    let query = select.replace(
        "{files}",
        &format!("read_parquet('{}')", glob.to_string_lossy()),
    );
    let mut dump = Command::new(venv.join("bin").join("python"));
    dump.args(["-c", DUMP, &query]).arg(&csv);
    measure::run(dump, &env.log(&format!("{name}-dump.log")))?;
    let keys = read_transfers_csv(&csv)?;
    let _ = std::fs::remove_file(&csv);
    Ok(keys)
}

/// cryo's columns as ethpipe's: 0x-hex of the binary hashes and addresses,
/// the decimal value.
const CRYO_SELECT: &str = "SELECT '0x' || lower(hex(transaction_hash)) AS transaction_hash, log_index, \
     '0x' || lower(hex(erc20)) AS token_address, '0x' || lower(hex(from_address)) AS from_address, \
     '0x' || lower(hex(to_address)) AS to_address, value_string AS value, block_number FROM {files}";
const ETHPIPE_SELECT: &str = "SELECT transaction_hash, log_index, token_address, from_address, \
     to_address, value, block_number FROM {files}";

/// (keys only in `ours`, keys only in `theirs`), counting duplicates as
/// differences.
fn differences(ours: &[Key], theirs: &[Key]) -> (usize, usize) {
    let a: HashSet<&Key> = ours.iter().collect();
    let b: HashSet<&Key> = theirs.iter().collect();
    (
        a.difference(&b).count() + (ours.len() - a.len()),
        b.difference(&a).count() + (theirs.len() - b.len()),
    )
}

/// What [`cryo`] compares with: the chain and ethpipe's PostgreSQL run.
pub struct Chain<'a> {
    pub url: &'a str,
    /// The days ethpipe backfills, as `--from`/`--to`.
    pub days: (&'a str, String),
    pub blocks: (u64, u64),
    pub calibration_blocks: (u64, u64),
    /// ethpipe's rows from PostgreSQL, all in `blocks`.
    pub ethpipe_keys: &'a [Key],
    /// One ethpipe run into PostgreSQL at its fastest settings (the
    /// argument numbers the round, for the log's name).
    pub postgres: &'a dyn Fn(usize) -> anyhow::Result<Measured>,
}

pub fn cryo(env: &Env, venv: &Path, chain: &Chain) -> anyhow::Result<CryoResults> {
    let output = env.work.join("cryo-out");
    let files = output.join("*.parquet");

    // cryo's best settings on this node and machine, from the grid: the
    // fastest of those that return every transfer of the blocks.
    let (c0, c1) = chain.calibration_blocks;
    let calibration_rows_expected = chain
        .ethpipe_keys
        .iter()
        .filter(|k| (c0..=c1).contains(&(k.6 as u64)))
        .count();
    let mut failures = Vec::new();
    let mut calibration = Vec::new();
    for &s in CRYO_GRID {
        let name = format!(
            "cryo-c{}-i{}-k{}",
            s.chunk_size, s.inner_request_size, s.max_concurrent_chunks
        );
        let run = run_cryo(
            env,
            &mut failures,
            || cryo_command(venv, chain.url, chain.calibration_blocks, s, &output),
            &name,
            &output,
        )?;
        let rows = parquet_keys(env, venv, CRYO_SELECT, &files, &name)?.len();
        eprintln!(
            "bench: cryo --chunk-size {} --inner-request-size {} --max-concurrent-chunks {}: {rows} of the first day's {calibration_rows_expected} transfers in {:.2} s",
            s.chunk_size, s.inner_request_size, s.max_concurrent_chunks, run.wall_s
        );
        calibration.push((s, rows, run.wall_s));
    }
    let &(settings, _, _) = calibration
        .iter()
        .filter(|(_, rows, _)| *rows == calibration_rows_expected)
        .min_by(|a, b| a.2.total_cmp(&b.2))
        .context("no cryo setting returned all of the first day's transfers")?;

    // ethpipe into Parquet files over the same days, each run into a fresh
    // folder (its ledger is in there too); the fastest settings go on.
    let store = env.work.join("ethpipe-parquet");
    let store_files = store
        .join("token_transfers")
        .join("date=*")
        .join("*.parquet");
    let into_parquet = |(parallel, concurrency): (u32, u32), name: &str| {
        let _ = std::fs::remove_dir_all(&store);
        let run = measure::run(
            crate::rpc::rpc_backfill(
                env,
                chain.url,
                (chain.days.0, &chain.days.1),
                (parallel, concurrency),
                Some(format!("parquet://{}", store.display())),
            ),
            &env.log(&format!("{name}.log")),
        )?;
        let keys = parquet_keys(env, venv, ETHPIPE_SELECT, &store_files, name)?;
        let _ = std::fs::remove_dir_all(&store);
        let (only_pg, only_parquet) = differences(chain.ethpipe_keys, &keys);
        eprintln!(
            "bench: ethpipe (rpc) into Parquet --parallel {parallel} --rpc-concurrency {concurrency}: {} transfers in {:.2} s, peak RSS {:.0} MB ({only_pg} only in PostgreSQL's, {only_parquet} only in Parquet)",
            keys.len(),
            run.wall_s,
            run.peak_rss_mb
        );
        anyhow::Ok((keys.len(), only_pg + only_parquet == 0, run))
    };
    let mut parquet_runs = Vec::new();
    let mut parquet_identical = true;
    for (parallel, concurrency) in PARQUET_RUNS {
        let (rows, same, run) = into_parquet(
            (parallel, concurrency),
            &format!("ethpipe-parquet-parallel-{parallel}-c{concurrency}"),
        )?;
        parquet_identical &= same;
        parquet_runs.push((parallel, concurrency, rows, run));
    }
    let &(parquet_parallel, parquet_concurrency, _, _) = parquet_runs
        .iter()
        .min_by(|a, b| a.3.wall_s.total_cmp(&b.3.wall_s))
        .context("no ethpipe run into Parquet")?;

    // The rounds: the three sides alternate their order, each over the
    // whole range, and cryo's rows are checked every time.
    let mut cryo_runs = Vec::new();
    let mut postgres_runs = Vec::new();
    let mut parquet_rounds = Vec::new();
    let (mut only_ethpipe, mut only_cryo, mut rows) = (0, 0, 0);
    for round in 1..=ROUNDS {
        let mut cryo_side = || -> anyhow::Result<()> {
            let run = run_cryo(
                env,
                &mut failures,
                || cryo_command(venv, chain.url, chain.blocks, settings, &output),
                &format!("cryo-round-{round}"),
                &output,
            )?;
            let keys = parquet_keys(env, venv, CRYO_SELECT, &files, "cryo")?;
            let _ = std::fs::remove_dir_all(&output);
            let (ours, theirs) = differences(chain.ethpipe_keys, &keys);
            eprintln!(
                "bench: round {round}: cryo {} transfers in {:.2} s ({ours} only in ethpipe's, {theirs} only in cryo's)",
                keys.len(),
                run.wall_s
            );
            only_ethpipe += ours;
            only_cryo += theirs;
            rows = keys.len();
            cryo_runs.push(run);
            Ok(())
        };
        if round % 2 == 1 {
            cryo_side()?;
        }
        let postgres = (chain.postgres)(round)?;
        eprintln!(
            "bench: round {round}: ethpipe into PostgreSQL in {:.2} s",
            postgres.wall_s
        );
        postgres_runs.push(postgres);
        let (_, same, parquet) = into_parquet(
            (parquet_parallel, parquet_concurrency),
            &format!("ethpipe-parquet-round-{round}"),
        )?;
        parquet_identical &= same;
        parquet_rounds.push(parquet);
        if round % 2 == 0 {
            cryo_side()?;
        }
    }
    let rounds = (0..ROUNDS)
        .map(|i| {
            (
                cryo_runs[i].wall_s,
                postgres_runs[i].wall_s,
                parquet_rounds[i].wall_s,
            )
        })
        .collect();
    let cryo = median_run(&cryo_runs);
    let postgres = median_run(&postgres_runs);
    let parquet = median_run(&parquet_rounds);
    let parquet_rounds_peak_rss_mb = parquet_rounds
        .iter()
        .map(|run| run.peak_rss_mb)
        .fold(0.0, f64::max);
    Ok(CryoResults {
        parquet_rounds_peak_rss_mb,
        rows,
        settings,
        calibration,
        calibration_rows_expected,
        only_ethpipe,
        only_cryo,
        identical: only_ethpipe == 0 && only_cryo == 0,
        postgres_s: postgres.wall_s,
        postgres_ratio: postgres.wall_s / cryo.wall_s,
        postgres: Some(postgres),
        parquet_ratio: parquet.wall_s / cryo.wall_s,
        cryo,
        parquet_runs,
        parquet,
        parquet_parallel,
        parquet_concurrency,
        parquet_identical,
        rounds,
        failures,
    })
}

/// Tries of one cryo run before the bench gives up.
const CRYO_TRIES: usize = 3;

/// A cryo run into a fresh `output`, tried again when it fails (before
/// [`FREEZE`] skipped Python's finalization, about one run in thirty died of
/// SIGABRT there). Each failure is kept (log name, error) and reported; a
/// failed run's time is not used.
fn run_cryo(
    env: &Env,
    failures: &mut Vec<(String, String)>,
    command: impl Fn() -> Command,
    name: &str,
    output: &Path,
) -> anyhow::Result<Measured> {
    let mut tries = 0;
    loop {
        tries += 1;
        let _ = std::fs::remove_dir_all(output);
        std::fs::create_dir_all(output)
            .with_context(|| format!("creating {}", output.display()))?;
        let log = format!("{name}-try-{tries}.log");
        match measure::run(command(), &env.log(&log)) {
            Ok(run) => return Ok(run),
            Err(error) if tries < CRYO_TRIES => {
                // measure::run's "… failed (status exit N); …": N is 128 +
                // the signal if one killed it, 134 for SIGABRT.
                let text = format!("{error:#}");
                let status = text
                    .split_once("(status ")
                    .and_then(|(_, rest)| rest.split_once(')'))
                    .map(|(n, _)| n.to_string())
                    .unwrap_or_else(|| "an error".into());
                eprintln!("bench: cryo failed ({status}), see {log}; once more");
                failures.push((log, status));
            }
            Err(error) => return Err(error),
        }
    }
}

/// The run of median wall time (the upper one of an even count).
fn median_run(runs: &[Measured]) -> Measured {
    let mut sorted = runs.to_vec();
    sorted.sort_by(|a, b| a.wall_s.total_cmp(&b.wall_s));
    sorted[sorted.len() / 2].clone()
}
