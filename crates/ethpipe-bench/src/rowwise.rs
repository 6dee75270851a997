//! Part 3: the row-by-row baseline (`bench/rowwise_upsert.py`): pandas reads
//! a 100,000-row slice of the same day, psycopg2's `executemany` upserts it
//! one statement per row into a table like `ethereum.token_transfers`. The
//! time is extrapolated linearly to the whole day, and labelled so.

use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::env::Env;
use crate::load::write_slice;
use crate::measure::{self, Measured};

const PINS: &[&str] = &["pandas==3.1.1", "psycopg2-binary==2.9.13"];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RowwiseResults {
    pub rows: usize,
    pub day_rows: usize,
    pub read_s: f64,
    pub upsert_s: f64,
    pub rows_per_s: f64,
    pub extrapolated_day_s: f64,
    pub process: Measured,
}

#[derive(Deserialize)]
struct ScriptOutput {
    rows: usize,
    read_s: f64,
    upsert_s: f64,
}

fn venv(env: &Env) -> anyhow::Result<std::path::PathBuf> {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    env.python_venv("pandas", &python, &PINS.join(" "), |pip| {
        let mut install = Command::new(pip);
        install.args(["install", "-q"]).args(PINS);
        measure::run(install, &env.log("pandas-pip.log"))?;
        Ok(())
    })
}

pub fn rowwise(env: &Env, rows: usize, day_rows: usize) -> anyhow::Result<RowwiseResults> {
    let venv = venv(env)?;
    env.fresh_database()?;
    measure::run(env.ethpipe(&["migrate"], &[]), &env.log("migrate.log"))?;
    let client = env.connect(&env.bench_url)?;
    env.execute(
        &client,
        // The parent of day partitions has no key of its own (each day's
        // partition carries it); the upsert's ON CONFLICT needs one.
        "CREATE SCHEMA bench_rowwise;
         CREATE TABLE bench_rowwise.token_transfers (LIKE ethereum.token_transfers INCLUDING ALL,
             PRIMARY KEY (transaction_hash, log_index));
         CHECKPOINT",
    )?;
    let slice = env.work.join(format!("slice-{rows}.csv"));
    write_slice(&slice, rows, day_rows)?;
    let log = env.log("rowwise.log");
    let mut command = Command::new(venv.join("bin").join("python"));
    command
        .arg(env.repo.join("bench").join("rowwise_upsert.py"))
        .arg(&slice)
        .arg(&env.bench_url)
        .arg("bench_rowwise.token_transfers");
    let process = measure::run(command, &log)?;
    let text = std::fs::read_to_string(&log)?;
    let output: ScriptOutput = text
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| anyhow::anyhow!("no timings in {}", log.display()))?;
    let loaded = env.column(
        &client,
        "SELECT count(*) FROM bench_rowwise.token_transfers",
    )?;
    anyhow::ensure!(
        loaded.first().map(String::as_str) == Some(&rows.to_string()) && output.rows == rows,
        "the row-by-row upsert stored {loaded:?} of {rows} rows"
    );
    let _ = std::fs::remove_file(&slice);
    let rows_per_s = output.rows as f64 / output.upsert_s;
    let results = RowwiseResults {
        rows,
        day_rows,
        read_s: output.read_s,
        upsert_s: output.upsert_s,
        rows_per_s,
        extrapolated_day_s: day_rows as f64 / rows_per_s,
        process,
    };
    eprintln!(
        "bench: row-by-row upsert: {rows} rows in {:.1} s ({rows_per_s:.0} rows/s; a day of {day_rows} ≈ {:.0} s, extrapolated)",
        output.upsert_s, results.extrapolated_day_s
    );
    env.save("rowwise", &results)?;
    Ok(results)
}
