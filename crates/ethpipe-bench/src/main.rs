//! `make bench`: ethpipe measured against the database's own bulk path
//! (`psql \copy`), against ethereum-etl and cryo on the same node, and against a
//! row-by-row upsert; figures and ratios go to `bench/RESULTS.md`.
//!
//! usage: ethpipe-bench [all|load|backfill|rpc|rowwise|sqlite|serving|report|serve [--rows N]|serve-chain|csv] [--quick] [--no-wait]
//!
//! Each part saves its figures to `~/.cache/ethpipe-bench/results/PART.json`;
//! `report` (run last by `all`) writes RESULTS.md from whatever parts exist.
//! `serving` keeps its generated year of partitions in its own database
//! between runs (see `serving.rs`).
//! `serve [--rows N]` only serves the benchmark day, `serve-chain` only makes
//! the benchmark chain and keeps its node up, `csv` writes the day as CSV (to
//! profile ethpipe and PostgreSQL by hand).
//! `--quick` shrinks every size (a smoke run, not a measurement); it and
//! `--no-wait` skip waiting for a quiet machine.

mod cryo;
mod day;
mod env;
mod load;
mod measure;
mod report;
mod rowwise;
mod rpc;
mod serving;
mod sqlite;

use std::time::{Duration, Instant};

use env::Env;

#[derive(Debug, Clone, Copy)]
struct Sizes {
    day_rows: usize,
    big_rows: usize,
    rounds: usize,
    history_rows: usize,
    backfill_rows: usize,
    rpc_transfers: usize,
    rpc_days: u32,
    rowwise_rows: usize,
    serving_rows: i64,
    serving_seconds: u64,
}

const FULL: Sizes = Sizes {
    day_rows: 1_300_000,
    big_rows: 5_000_000,
    rounds: 3,
    history_rows: 20_000_000,
    backfill_rows: 200_000,
    rpc_transfers: 240_000,
    rpc_days: 4,
    rowwise_rows: 100_000,
    serving_rows: 30_000_000,
    serving_seconds: 30,
};

const QUICK: Sizes = Sizes {
    day_rows: 60_000,
    big_rows: 120_000,
    rounds: 3,
    history_rows: 300_000,
    backfill_rows: 10_000,
    rpc_transfers: 12_000,
    rpc_days: 2,
    rowwise_rows: 5_000,
    serving_rows: 300_000,
    serving_seconds: 5,
};

fn main() -> std::process::ExitCode {
    // A measured program's launcher (measure::run), before anything else so
    // it stays small.
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|a| a == measure::LAUNCH) {
        return measure::launch(&args[1..]);
    }
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench failed: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let no_wait = quick || args.iter().any(|a| a == "--no-wait");
    let part = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map(String::as_str)
        .unwrap_or("all");
    let sizes = if quick { QUICK } else { FULL };
    let env = Env::new()?;
    if part == "serve" {
        let rows = args
            .iter()
            .position(|a| a == "--rows")
            .and_then(|i| args.get(i + 1)?.parse().ok())
            .unwrap_or(sizes.day_rows);
        return load::serve(&env, rows);
    }
    if part == "csv" {
        let path = env.work.join(format!("day-{}.csv", sizes.day_rows));
        load::write_day_csv(sizes.day_rows, &path)?;
        println!("{}", path.display());
        return Ok(());
    }
    if part == "serve-chain" {
        return rpc::serve_chain(&env, sizes.rpc_transfers, sizes.rpc_days);
    }
    let started = Instant::now();
    let parts: Vec<&str> = match part {
        "all" => vec!["load", "backfill", "rpc", "rowwise", "sqlite", "serving"],
        "load" | "backfill" | "rpc" | "rowwise" | "sqlite" | "serving" => vec![part],
        "report" => vec![],
        other => {
            anyhow::bail!(
                "unknown part '{other}': use all, load, backfill, rpc, rowwise, sqlite, serving or report"
            )
        }
    };
    // A smoke run does not wait for a quiet machine; a measurement does.
    if !parts.is_empty() && !no_wait {
        let load = measure::wait_for_quiet(1.0, Duration::from_secs(20 * 60));
        eprintln!("bench: starting at load average {load:.2}");
    }
    let mut meta = report::Meta::collect(&env, quick)?;
    for part in &parts {
        let part_started = Instant::now();
        match *part {
            "load" => {
                load::load(
                    &env,
                    load::LoadOptions {
                        rows: sizes.day_rows,
                        big_rows: sizes.big_rows,
                        rounds: sizes.rounds,
                        history_rows: sizes.history_rows,
                    },
                )?;
            }
            "backfill" => {
                load::backfill_memory(&env, sizes.backfill_rows)?;
            }
            "rpc" => {
                rpc::rpc(&env, sizes.rpc_transfers, sizes.rpc_days)?;
            }
            "rowwise" => {
                rowwise::rowwise(&env, sizes.rowwise_rows, sizes.day_rows)?;
            }
            "sqlite" => {
                sqlite::sqlite(&env, sizes.day_rows, sizes.rounds)?;
            }
            "serving" => {
                serving::serving(
                    &env,
                    serving::ServingOptions {
                        quick,
                        rows: sizes.serving_rows,
                        rate: 200,
                        seconds: sizes.serving_seconds,
                        warmup_seconds: if quick { 1 } else { 5 },
                    },
                )?;
            }
            _ => unreachable!(),
        }
        meta.ran(part, part_started.elapsed().as_secs_f64());
    }
    if !parts.is_empty() {
        // The sqlite and serving parts never open the bench database (serving
        // keeps its own): run alone, they leave it to whichever other part's
        // run may be using it.
        if parts
            .iter()
            .any(|part| !matches!(*part, "sqlite" | "serving"))
        {
            env.drop_database()?;
        }
        meta.load_average_end = measure::load_average();
        if part == "all" {
            meta.total_seconds = started.elapsed().as_secs_f64();
        } else {
            // One part re-run: the others keep their figures of earlier runs.
            if let Some(previous) = env.load::<report::Meta>("meta") {
                meta.keep_other_parts(&previous);
            }
            meta.total_seconds = meta.part_seconds.iter().map(|(_, s)| s).sum();
        }
        env.save("meta", &meta)?;
    }
    let path = report::write(&env)?;
    eprintln!(
        "bench: done in {:.0} s; results in {}",
        started.elapsed().as_secs_f64(),
        path.display()
    );
    Ok(())
}
