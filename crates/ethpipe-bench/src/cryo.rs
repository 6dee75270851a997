//! Part 2, continued: the same anvil chain against cryo (PyPI `cryo`, its
//! `erc20_transfers` dataset), and ethpipe into Parquet beside it.
//!
//! cryo writes Parquet files for a block range and nothing else: it skips
//! ERC-721 transfers (same topic, one more indexed argument) and fetches no
//! block headers, so it has no timestamps and knows no days. ethpipe's times
//! against it are the whole `backfill` process over the days covering the
//! same blocks: into PostgreSQL (the best run of [`crate::rpc`]) and into
//! `parquet://DIR` (its own small grid here). cryo's settings are the fastest
//! of a grid tried on the first day's blocks, as for ethereum-etl; rows must
//! be identical to ethpipe's for the figures to count.
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

/// ethpipe into Parquet as (`--parallel`, `--rpc-concurrency`): a
/// `parquet://` ledger is SQLite, which takes one day at a time.
const PARQUET_RUNS: [(u32, u32); 2] = [(1, 8), (1, 16)];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CryoResults {
    /// cryo over the whole range with [`CryoResults::settings`].
    pub cryo: Measured,
    pub rows: usize,
    pub settings: CryoSettings,
    /// (settings, rows, wall seconds) on the calibration blocks.
    pub calibration: Vec<(CryoSettings, usize, f64)>,
    pub calibration_rows_expected: usize,
    pub only_ethpipe: usize,
    pub only_cryo: usize,
    pub identical: bool,
    /// The best ethpipe run into PostgreSQL (of [`crate::rpc`]), its wall time
    /// over cryo's.
    pub postgres_s: f64,
    pub postgres_ratio: f64,
    /// (--parallel, --rpc-concurrency, rows, measurement) into Parquet.
    pub parquet_runs: Vec<(u32, u32, usize, Measured)>,
    pub parquet: Measured,
    pub parquet_concurrency: u32,
    /// Every Parquet run's rows equal ethpipe's PostgreSQL rows.
    pub parquet_identical: bool,
    pub parquet_ratio: f64,
}

/// The venv with cryo (and DuckDB), made once under the tools folder. cryo
/// 0.3.2 ships a CPython 3.11 wheel only: `PYTHON` picks the interpreter.
pub fn cryo_venv(env: &Env) -> anyhow::Result<PathBuf> {
    let venv = ethpipe_testkit::anvil::tools_dir().join("bench-cryo-venv");
    let marker = venv.join(".ethpipe-bench");
    let wanted = format!("{CRYO_VERSION} {}", CRYO_PINS.join(" "));
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(venv);
    }
    eprintln!("bench: installing {wanted} into {}", venv.display());
    let _ = std::fs::remove_dir_all(&venv);
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let mut make = Command::new(&python);
    make.args(["-m", "venv"]).arg(&venv);
    measure::run(make, &env.log("cryo-venv.log"))?;
    let mut install = Command::new(venv.join("bin").join("pip"));
    // Wheels only: a source build of cryo would need a Rust toolchain and
    // minutes, and would not be the published package.
    install
        .args(["install", "-q", "--only-binary=:all:", CRYO_VERSION])
        .args(CRYO_PINS);
    measure::run(install, &env.log("cryo-pip.log")).context(
        "installing cryo (its only wheel is for CPython 3.11: set PYTHON to a python3.11)",
    )?;
    std::fs::write(&marker, wanted)?;
    Ok(venv)
}

/// `cryo.freeze('erc20_transfers', **kwargs)`: cryo's Python entry point
/// (the wheel has no CLI), which runs its Rust engine to Parquet files.
const FREEZE: &str = "import json, sys, cryo\n\
                      cryo.freeze('erc20_transfers', **json.loads(sys.argv[1]))\n";

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
    /// The best ethpipe run into PostgreSQL.
    pub postgres: &'a Measured,
}

pub fn cryo(env: &Env, venv: &Path, chain: &Chain) -> anyhow::Result<CryoResults> {
    let output = env.work.join("cryo-out");
    let files = output.join("*.parquet");
    let fresh = |dir: &Path| -> anyhow::Result<()> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
    };

    // cryo's best settings on this node and machine, from the grid: the
    // fastest of those that return every transfer of the blocks.
    let (c0, c1) = chain.calibration_blocks;
    let calibration_rows_expected = chain
        .ethpipe_keys
        .iter()
        .filter(|k| (c0..=c1).contains(&(k.6 as u64)))
        .count();
    let mut calibration = Vec::new();
    for &s in CRYO_GRID {
        fresh(&output)?;
        let name = format!(
            "cryo-c{}-i{}-k{}",
            s.chunk_size, s.inner_request_size, s.max_concurrent_chunks
        );
        let run = measure::run(
            cryo_command(venv, chain.url, chain.calibration_blocks, s, &output),
            &env.log(&format!("{name}.log")),
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

    fresh(&output)?;
    let cryo = measure::run(
        cryo_command(venv, chain.url, chain.blocks, settings, &output),
        &env.log("cryo.log"),
    )?;
    let cryo_keys = parquet_keys(env, venv, CRYO_SELECT, &files, "cryo")?;
    let (only_ethpipe, only_cryo) = differences(chain.ethpipe_keys, &cryo_keys);
    let identical = only_ethpipe == 0 && only_cryo == 0;
    eprintln!(
        "bench: cryo: {} transfers in {:.2} s ({only_ethpipe} only in ethpipe's, {only_cryo} only in cryo's)",
        cryo_keys.len(),
        cryo.wall_s
    );
    let _ = std::fs::remove_dir_all(&output);

    // ethpipe into Parquet files, over the same days, each run into a fresh
    // folder (its ledger is in there too).
    let store = env.work.join("ethpipe-parquet");
    let mut parquet_runs = Vec::new();
    let mut parquet_identical = true;
    for (parallel, concurrency) in PARQUET_RUNS {
        let _ = std::fs::remove_dir_all(&store);
        let run = measure::run(
            env.ethpipe(
                &[
                    "backfill",
                    "token_transfers",
                    "--from",
                    chain.days.0,
                    "--to",
                    &chain.days.1,
                    "--force",
                    "--parallel",
                    &parallel.to_string(),
                    "--rpc-concurrency",
                    &concurrency.to_string(),
                ],
                &[
                    ("ETHPIPE_SOURCE", "rpc".to_string()),
                    ("ETHPIPE_RPC_URL", chain.url.to_string()),
                    ("ETHPIPE_RPC_CONFIRMATIONS", "0".to_string()),
                    (
                        "ETHPIPE_DATABASE_URL",
                        format!("parquet://{}", store.display()),
                    ),
                ],
            ),
            &env.log(&format!(
                "ethpipe-parquet-parallel-{parallel}-c{concurrency}.log"
            )),
        )?;
        let keys = parquet_keys(
            env,
            venv,
            ETHPIPE_SELECT,
            &store
                .join("token_transfers")
                .join("date=*")
                .join("*.parquet"),
            &format!("ethpipe-parquet-c{concurrency}"),
        )?;
        let (only_pg, only_parquet) = differences(chain.ethpipe_keys, &keys);
        parquet_identical &= only_pg == 0 && only_parquet == 0;
        eprintln!(
            "bench: ethpipe (rpc) into Parquet --parallel {parallel} --rpc-concurrency {concurrency}: {} transfers in {:.2} s, peak RSS {:.0} MB ({only_pg} only in PostgreSQL's, {only_parquet} only in Parquet)",
            keys.len(),
            run.wall_s,
            run.peak_rss_mb
        );
        parquet_runs.push((parallel, concurrency, keys.len(), run));
    }
    let _ = std::fs::remove_dir_all(&store);
    let (_, parquet_concurrency, _, parquet) = parquet_runs
        .iter()
        .min_by(|a, b| a.3.wall_s.total_cmp(&b.3.wall_s))
        .cloned()
        .context("no ethpipe run into Parquet")?;

    Ok(CryoResults {
        rows: cryo_keys.len(),
        settings,
        calibration,
        calibration_rows_expected,
        only_ethpipe,
        only_cryo,
        identical,
        postgres_s: chain.postgres.wall_s,
        postgres_ratio: chain.postgres.wall_s / cryo.wall_s,
        parquet_ratio: parquet.wall_s / cryo.wall_s,
        cryo,
        parquet_runs,
        parquet,
        parquet_concurrency,
        parquet_identical,
    })
}
