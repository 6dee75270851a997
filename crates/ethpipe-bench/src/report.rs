//! Machine facts, and `bench/RESULTS.md` from the parts' saved figures.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::cryo::CryoResults;
use crate::env::Env;
use crate::load::{BackfillResults, LoadResults};
use crate::measure::{load_average, median};
use crate::rowwise::RowwiseResults;
use crate::rpc::RpcResults;
use crate::serving::ServingResults;
use crate::sqlite::SqliteResults;

const LOAD_TARGET: f64 = 1.5;
/// A load with history in the table, against the same load into an empty one.
const HISTORY_TARGET: f64 = 1.1;
const MEMORY_TARGET_MB: f64 = 150.0;
const RPC_TARGET: f64 = 10.0;
/// ethpipe's whole `backfill` against cryo's whole run over the same blocks:
/// into PostgreSQL, and into Parquet files.
const CRYO_POSTGRES_TARGET: f64 = 2.0;
const CRYO_PARQUET_TARGET: f64 = 1.0;
/// ethpipe into SQLite against `sqlite3 .import` into the same table (issue 13).
const SQLITE_TARGET: f64 = 1.5;
const BACKFILL_TOLERANCE: f64 = 0.20;
/// Serving pages over a year of day partitions, p99 (DESIGN §7, issue 13).
const SERVING_P99_TARGET_MS: f64 = 50.0;

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Meta {
    pub date: String,
    pub quick: bool,
    pub cpu: String,
    pub cores: usize,
    pub memory_gb: f64,
    pub kernel: String,
    pub postgres_version: String,
    pub postgres_settings: Vec<(String, String)>,
    pub ethpipe_version: String,
    pub commit: String,
    pub rustc: String,
    pub load_average_start: f64,
    pub load_average_end: f64,
    pub part_seconds: Vec<(String, f64)>,
    pub total_seconds: f64,
    /// When and at which commit each part's figures were taken: a part run
    /// alone keeps the other parts' figures of earlier runs.
    #[serde(default)]
    pub part_runs: Vec<PartRun>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRun {
    pub part: String,
    pub date: String,
    pub commit: String,
}

fn command_text(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

impl Meta {
    pub fn collect(env: &Env, quick: bool) -> anyhow::Result<Meta> {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
            .unwrap_or_default();
        let memory_kib: f64 = std::fs::read_to_string("/proc/meminfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0);
        let admin = env.connect(&env.admin_url)?;
        let postgres_version = env
            .column(&admin, "SELECT version()")?
            .pop()
            .unwrap_or_default();
        let mut postgres_settings = Vec::new();
        for name in [
            "shared_buffers",
            "synchronous_commit",
            "wal_level",
            "max_wal_size",
            "checkpoint_timeout",
            "fsync",
            "full_page_writes",
            "wal_compression",
            "work_mem",
            "maintenance_work_mem",
            "temp_buffers",
            "autovacuum",
        ] {
            let value = env
                .column(&admin, &format!("SHOW {name}"))?
                .pop()
                .unwrap_or_default();
            postgres_settings.push((name.to_string(), value));
        }
        let dirty = !command_text(
            "git",
            &[
                "-C",
                &env.repo.display().to_string(),
                "status",
                "--porcelain",
            ],
        )
        .is_empty();
        let commit = format!(
            "{}{}",
            command_text(
                "git",
                &[
                    "-C",
                    &env.repo.display().to_string(),
                    "rev-parse",
                    "--short",
                    "HEAD"
                ]
            ),
            if dirty {
                " (with uncommitted changes)"
            } else {
                ""
            }
        );
        Ok(Meta {
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            quick,
            cpu,
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory_gb: memory_kib * 1024.0 / 1e9,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
            postgres_version,
            postgres_settings,
            ethpipe_version: command_text(&env.ethpipe.display().to_string(), &["--version"]),
            commit,
            rustc: command_text("rustc", &["--version"]),
            load_average_start: load_average(),
            load_average_end: 0.0,
            part_seconds: Vec::new(),
            total_seconds: 0.0,
            part_runs: Vec::new(),
        })
    }

    /// Records that `part` ran now, in this run.
    pub fn ran(&mut self, part: &str, seconds: f64) {
        self.part_seconds.push((part.to_string(), seconds));
        self.part_runs.push(PartRun {
            part: part.to_string(),
            date: self.date.clone(),
            commit: self.commit.clone(),
        });
    }

    /// Keeps `previous`'s figures of the parts this run did not run.
    pub fn keep_other_parts(&mut self, previous: &Meta) {
        for (part, seconds) in &previous.part_seconds {
            if self.part_seconds.iter().any(|(p, _)| p == part) {
                continue;
            }
            self.part_seconds.push((part.clone(), *seconds));
            let run = previous
                .part_runs
                .iter()
                .find(|r| &r.part == part)
                .cloned()
                // Saved before runs were recorded per part: the run that saved it.
                .unwrap_or_else(|| PartRun {
                    part: part.clone(),
                    date: previous.date.clone(),
                    commit: previous.commit.clone(),
                });
            self.part_runs.push(run);
        }
    }

    /// The header's sentence on where the figures come from.
    fn provenance(&self) -> String {
        let mut runs: Vec<(&str, &str, Vec<&str>)> = Vec::new();
        for run in &self.part_runs {
            match runs
                .iter_mut()
                .find(|(date, commit, _)| *date == run.date && *commit == run.commit)
            {
                Some((_, _, parts)) => parts.push(&run.part),
                None => runs.push((&run.date, &run.commit, vec![&run.part])),
            }
        }
        if runs.len() <= 1 {
            return format!(
                "Written by `make bench` (`crates/ethpipe-bench`) on {}, `{}` at commit {}. \
                 Every figure below comes from that run; nothing is edited by hand.",
                self.date, self.ethpipe_version, self.commit
            );
        }
        let listed: Vec<String> = runs
            .iter()
            .map(|(date, commit, parts)| {
                let parts: Vec<String> = parts.iter().map(|p| format!("`{p}`")).collect();
                format!("{} on {date} at commit {commit}", parts.join(", "))
            })
            .collect();
        format!(
            "Written by `make bench` (`crates/ethpipe-bench`) on {}, `{}`. The parts come from \
             more than one run (a part run alone keeps the others' figures): {}. Each figure \
             comes from its part's run; nothing is edited by hand.",
            self.date,
            self.ethpipe_version,
            listed.join("; ")
        )
    }
}

fn verdict(met: bool) -> &'static str {
    if met {
        "**met**"
    } else {
        "**missed**"
    }
}

fn secs(s: f64) -> String {
    if s >= 100.0 {
        format!("{s:.0} s")
    } else {
        format!("{s:.2} s")
    }
}

fn thousands(n: f64) -> String {
    let digits = format!("{:.0}", n.round());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Writes `bench/RESULTS.md` from the saved parts; returns its path.
pub fn write(env: &Env) -> anyhow::Result<PathBuf> {
    let meta: Meta = env.load("meta").unwrap_or_default();
    let load: Option<LoadResults> = env.load("load");
    let backfill: Option<BackfillResults> = env.load("backfill");
    let rpc: Option<RpcResults> = env.load("rpc");
    let rowwise: Option<RowwiseResults> = env.load("rowwise");
    let sqlite: Option<SqliteResults> = env.load("sqlite");
    let serving: Option<ServingResults> = env.load("serving");
    let mut md = String::new();
    let w = &mut md;

    let _ = writeln!(w, "# ethpipe benchmarks\n");
    let _ = writeln!(
        w,
        "{} How the benchmark works and what was profiled: [README.md](README.md).\n",
        meta.provenance()
    );
    if meta.quick {
        let _ = writeln!(
            w,
            "> **Quick mode** (`--quick`): small sizes for a smoke run. These are not measurements.\n"
        );
    }

    // Summary.
    let _ = writeln!(w, "## Summary\n");
    let _ = writeln!(
        w,
        "| what | figure | target (DESIGN §7) | |\n|---|---|---|---|"
    );
    if let Some(l) = &load {
        let _ = writeln!(
            w,
            "| first load of one day ({} rows) into PostgreSQL, ethpipe / `psql \\copy` into a primary-key-only table (medians of {} alternating rounds) | **{:.2} ×** ({} vs {}) | ≤ {LOAD_TARGET} × | {} |",
            thousands(l.options.rows as f64),
            l.rounds.len(),
            l.ratio,
            secs(l.ethpipe_median_s),
            secs(l.psql_median_s),
            verdict(l.ratio <= LOAD_TARGET)
        );
        let _ = writeln!(
            w,
            "| re-load of the loaded day, ethpipe / the same `psql \\copy` | **{:.2} ×** ({} vs {}) | ≤ {LOAD_TARGET} × | {} |",
            l.reload_ratio,
            secs(l.reload_median_s),
            secs(l.psql_median_s),
            verdict(l.reload_ratio <= LOAD_TARGET)
        );
        if let Some(h) = &l.history {
            let _ = writeln!(
                w,
                "| first load / re-load with {} rows of earlier days in the table, against the empty-table times | **{:.2} × / {:.2} ×** ({} / {}) | ≤ {HISTORY_TARGET} × | {} |",
                thousands(h.rows as f64),
                h.first_vs_empty,
                h.reload_vs_empty,
                secs(h.first_median_s),
                secs(h.reload_median_s),
                verdict(h.first_vs_empty <= HISTORY_TARGET && h.reload_vs_empty <= HISTORY_TARGET)
            );
        }
        let _ = writeln!(
            w,
            "| peak RSS of ethpipe, {} rows (highest of the rounds) | **{:.0} MB** | ≤ {MEMORY_TARGET_MB:.0} MB | {} |",
            thousands(l.options.rows as f64),
            l.peak_rss_mb,
            verdict(l.peak_rss_mb <= MEMORY_TARGET_MB)
        );
        let _ = writeln!(
            w,
            "| peak RSS of ethpipe, {} rows | **{:.0} MB** | ≤ {MEMORY_TARGET_MB:.0} MB, same as at {} | {} |",
            thousands(l.options.big_rows as f64),
            l.big.measured.peak_rss_mb,
            thousands(l.options.rows as f64),
            verdict(l.big.measured.peak_rss_mb <= MEMORY_TARGET_MB)
        );
    }
    if let Some(r) = &rpc {
        let _ = writeln!(
            w,
            "| JSON-RPC extraction, ethpipe (`--parallel {}`) / ethereum-etl transfers per second ({} transfers), each at its best settings | **{:.1} ×** ({} vs {} /s), rows {} | ≥ {RPC_TARGET} ×, identical rows | {} |",
            r.ethpipe_parallel,
            thousands(r.transfers as f64),
            r.ratio,
            thousands(r.ethpipe_per_s),
            thousands(r.etl_per_s),
            if r.identical { "identical" } else { "**differ**" },
            verdict(r.ratio >= RPC_TARGET && r.identical)
        );
    }
    if let Some(c) = rpc.as_ref().and_then(|r| r.cryo.as_ref()) {
        let rows = if c.identical && c.parquet_identical {
            "identical"
        } else {
            "**differ**"
        };
        let _ = writeln!(
            w,
            "| JSON-RPC extraction into PostgreSQL, ethpipe / cryo {} `erc20_transfers` wall time ({} transfers; cryo writes Parquet), each at its best settings, medians of {} alternating rounds | **{:.2} ×** ({} vs {}), rows {rows} | ≤ {CRYO_POSTGRES_TARGET} × | {} |",
            crate::cryo::CRYO_VERSION.trim_start_matches("cryo=="),
            thousands(c.rows as f64),
            c.rounds.len().max(1),
            c.postgres_ratio,
            secs(c.postgres_s),
            secs(c.cryo.wall_s),
            verdict(c.postgres_ratio <= CRYO_POSTGRES_TARGET && c.identical)
        );
        let _ = writeln!(
            w,
            "| JSON-RPC extraction into Parquet, ethpipe / cryo wall time | **{:.2} ×** ({} vs {}), rows {rows} | ≤ {CRYO_PARQUET_TARGET} × | {} |",
            c.parquet_ratio,
            secs(c.parquet.wall_s),
            secs(c.cryo.wall_s),
            verdict(c.parquet_ratio <= CRYO_PARQUET_TARGET && c.identical && c.parquet_identical)
        );
    }
    if let Some(c) = rpc.as_ref().and_then(|r| r.cryo.as_ref()) {
        // DESIGN §7's memory target holds for any backfill, into files too:
        // the single runs and the rounds (at the rounds' settings).
        let mut runs: Vec<(u32, u32, f64)> = c
            .parquet_runs
            .iter()
            .map(|(parallel, concurrency, _, run)| (*parallel, *concurrency, run.peak_rss_mb))
            .collect();
        runs.push((
            c.parquet_parallel,
            c.parquet_concurrency,
            c.parquet_rounds_peak_rss_mb,
        ));
        if let Some((parallel, concurrency, peak)) =
            runs.into_iter().max_by(|a, b| a.2.total_cmp(&b.2))
        {
            let _ = writeln!(
                w,
                "| peak RSS, JSON-RPC `backfill --parallel {parallel} --rpc-concurrency {concurrency}` into `parquet://` (highest of its single runs and rounds) | **{peak:.0} MB** | ≤ {MEMORY_TARGET_MB:.0} MB | {} |",
                verdict(peak <= MEMORY_TARGET_MB)
            );
        }
    }
    if let Some(m) = rpc.as_ref().and_then(|r| r.memory_run.as_ref()) {
        let (parallel, concurrency) = crate::rpc::MEMORY_RUN;
        let _ = writeln!(
            w,
            "| peak RSS, JSON-RPC `backfill --parallel {parallel} --rpc-concurrency {concurrency}` | **{:.0} MB** | ≤ {MEMORY_TARGET_MB:.0} MB | {} |",
            m.peak_rss_mb,
            verdict(m.peak_rss_mb <= MEMORY_TARGET_MB)
        );
    }
    if let Some(b) = &backfill {
        let _ = writeln!(
            w,
            "| peak RSS, `backfill` of {} days / `run` of 1 day ({} rows a day; medians of {} rounds) | **{:.2}** ({:.0} MB vs {:.0} MB) | within ±{:.0} % | {} |",
            b.days,
            thousands(b.rows_per_day as f64),
            b.rounds.len(),
            b.ratio,
            b.backfill_rss,
            b.one_day_rss,
            BACKFILL_TOLERANCE * 100.0,
            verdict((b.ratio - 1.0).abs() <= BACKFILL_TOLERANCE)
        );
    }
    if let Some(s) = &sqlite {
        let _ = writeln!(
            w,
            "| load one day ({} rows) into SQLite, ethpipe / `sqlite3 .import` into the same table (medians of {} rounds) | **{:.2} ×** ({} vs {}; `.import` into a primary-key-only table: {}) | ≤ {SQLITE_TARGET} × | {} |",
            thousands(s.rows as f64),
            s.rounds.len(),
            s.ratio,
            secs(s.ethpipe_median_s),
            secs(s.import_same_median_s),
            secs(s.import_key_only_median_s),
            verdict(s.ratio <= SQLITE_TARGET)
        );
    }
    if let Some(s) = &serving {
        let figures: Vec<String> = s
            .kinds
            .iter()
            .map(|k| {
                format!(
                    "{} {:.1} ms ({} errors)",
                    k.kind, k.all.p99_ms, k.all.errors
                )
            })
            .collect();
        let _ = writeln!(
            w,
            "| serving p99, open loop at {} requests/s for {} s per page kind, {} rows over {} day partitions (latency from each request's due time) | **{}** | ≤ {SERVING_P99_TARGET_MS:.0} ms for token, day and address pages | {} |",
            s.rate,
            s.seconds,
            thousands(s.rows as f64),
            s.partitions,
            figures.join(", "),
            verdict(serving_within(s))
        );
    }
    if let (Some(r), Some(l)) = (&rowwise, &load) {
        let _ = writeln!(
            w,
            "| row-by-row upsert (pandas + psycopg2 `executemany`), one day | **≈ {} (extrapolated** from {} rows) = {:.0} × ethpipe | for context | |",
            secs(r.extrapolated_day_s),
            thousands(r.rows as f64),
            r.extrapolated_day_s / l.ethpipe_median_s
        );
    }
    let _ = writeln!(w);

    // Machine.
    let _ = writeln!(w, "## Machine\n");
    let _ = writeln!(w, "| | |\n|---|---|");
    let _ = writeln!(w, "| CPU | {} × {} |", meta.cores, meta.cpu);
    let _ = writeln!(w, "| memory | {:.1} GB |", meta.memory_gb);
    let _ = writeln!(w, "| kernel | {} |", meta.kernel);
    let _ = writeln!(
        w,
        "| PostgreSQL | {} (local, TCP 127.0.0.1) |",
        meta.postgres_version
    );
    let settings: Vec<String> = meta
        .postgres_settings
        .iter()
        .map(|(k, v)| format!("`{k}` = {v}"))
        .collect();
    let _ = writeln!(
        w,
        "| PostgreSQL settings (as found; the bench changes none) | {} |",
        settings.join(", ")
    );
    let _ = writeln!(w, "| Rust | {} (release build) |", meta.rustc);
    let _ = writeln!(
        w,
        "| 1-minute load average | {:.2} at the start, {:.2} at the end (2 cores; the machine is shared) |",
        meta.load_average_start, meta.load_average_end
    );
    let parts: Vec<String> = meta
        .part_seconds
        .iter()
        .map(|(p, s)| format!("{p} {s:.0} s"))
        .collect();
    let _ = writeln!(
        w,
        "| duration of the run | {:.0} s ({}) |\n",
        meta.total_seconds,
        parts.join(", ")
    );

    if let Some(l) = &load {
        write_load(w, l);
    }
    if let Some(b) = &backfill {
        write_backfill(w, b);
    }
    if let Some(r) = &rpc {
        write_rpc(w, r);
        if let Some(c) = &r.cryo {
            write_cryo(w, r, c);
        }
    }
    if let Some(r) = &rowwise {
        write_rowwise(w, r, load.as_ref());
    }
    if let Some(s) = &sqlite {
        write_sqlite(w, s);
    }
    if let Some(s) = &serving {
        write_serving(w, s);
    }

    let _ = writeln!(w, "## How to reproduce\n");
    let _ = writeln!(
        w,
        "```sh\nmake tools        # anvil and the compiled test contracts (once)\nmake bench        # everything: ~{} min on this machine; writes this file\n\
         # one part, then the report from the saved parts:\n\
         $CARGO_TARGET_DIR/release/ethpipe-bench load|backfill|rpc|rowwise|sqlite|serving\n\
         $CARGO_TARGET_DIR/release/ethpipe-bench report\n```\n",
        (meta.total_seconds / 60.0).ceil().max(1.0)
    );
    let _ = writeln!(
        w,
        "Needs PostgreSQL at `ETHPIPE_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`; \
         the bench creates and finally drops the database `ethpipe_bench`, or `ETHPIPE_BENCH_DATABASE`), `psql`, \
         Python 3 (ethereum-etl, cryo with DuckDB, and pandas/psycopg2 are installed by the bench into venvs under \
         `~/.cache/ethpipe-tools`; cryo's only wheel is for CPython 3.11: `python3.11` if on the PATH, or `PYTHON`), and `make tools`. \
         Scratch files (CSV, logs, per-part JSON) go to `~/.cache/ethpipe-bench` (`ETHPIPE_BENCH_DIR`). \
         The bench waits (up to 20 minutes) for a 1-minute load average below 1.0 and no compiler running before it starts."
    );

    let path = env.repo.join("bench").join("RESULTS.md");
    std::fs::write(&path, md)?;
    Ok(path)
}

fn write_load(w: &mut String, l: &LoadResults) {
    let _ = writeln!(
        w,
        "## 1. Load: one day into PostgreSQL, ethpipe against `psql \\copy`\n"
    );
    let _ = writeln!(
        w,
        "The day ({}, {} rows, 7,200 blocks; CSV {:.0} MB) is generated deterministically by \
         `crates/ethpipe-bench/src/day.rs` (Zipf-like token and address popularity, mainnet's value lengths, \
         1–60 transfers per transaction). The same rows reach both sides:\n",
        l.day,
        thousands(l.options.rows as f64),
        l.csv_bytes as f64 / 1e6
    );
    let _ = writeln!(
        w,
        "- **ethpipe**: `ethpipe run token_transfers --date {}` (release build, default settings: 20,000-row pages) \
         reads the day from the BigQuery-compatible test server (`FakeBigQuery`, BigQuery's REST wire format, \
         pages generated on request), parses and validates every row, streams the rows with binary `COPY` \
         into a fresh table for the day and checks the count against BigQuery's `totalRows`; then, on two \
         sessions, `ANALYZE`s the table, **aggregates that day's `ethereum.token_daily_stats` and its busiest \
         tokens' top counterparties** (for the token page) and builds the primary key and the serving \
         indexes; then, in **one transaction**, replaces the day's derived rows, swaps the table in as the \
         day's partition of `ethereum.token_transfers` and records the run in the ledger \
         (docs/architecture.md, \"Day partitions\"). The first load has no partition for the day yet; the \
         re-load replaces it. Time is the whole process, start to exit.",
        l.day
    );
    let _ = writeln!(
        w,
        "- **psql**: `psql -c \"\\copy bench_copy.token_transfers (…) FROM 'day.csv' WITH (FORMAT csv)\"`: \
         one `COPY` of the CSV file into a table with the same columns and types and **only the primary key** \
         (the limit for this table, DESIGN §7) and nothing else (no secondary index, no statistics, no ledger, \
         no validation). The file is already on disk; writing it is not timed.\n"
    );
    let _ = writeln!(
        w,
        "Indexes of ethpipe's table (the psql table has the primary key only):\n"
    );
    for index in &l.indexes {
        let _ = writeln!(w, "- `{index}`");
    }
    let _ = writeln!(
        w,
        "\nBefore each step its target table is emptied (`TRUNCATE`), a `CHECKPOINT` is taken and the bench waits \
         for autovacuum to be idle; the two sides alternate (ethpipe first in odd rounds). After the last round both \
         tables hold {} rows with the same checksum over every column ({}).\n",
        thousands(l.ethpipe_table.0 as f64),
        if l.ethpipe_table == l.psql_table { "verified" } else { "**they differ**" }
    );
    let _ = writeln!(
        w,
        "| round | first | ethpipe first load | ethpipe re-load | psql `\\copy` | first / psql | re-load / psql | ethpipe peak RSS | ethpipe CPU | server CPU | machine CPU, ethpipe first load / psql step |\n|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for (i, r) in l.rounds.iter().enumerate() {
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.0} MB | {:.1} s | {:.1} s | {:.1} s / {:.1} s |",
            i + 1,
            if r.ethpipe_first { "ethpipe" } else { "psql" },
            secs(r.ethpipe.measured.wall_s),
            secs(r.reload.measured.wall_s),
            secs(r.psql.wall_s),
            r.ethpipe.measured.wall_s / r.psql.wall_s,
            r.reload.measured.wall_s / r.psql.wall_s,
            r.ethpipe.measured.peak_rss_mb,
            r.ethpipe.measured.cpu_s,
            r.ethpipe.server_cpu_s,
            r.ethpipe.measured.machine_cpu_s,
            r.psql.machine_cpu_s
        );
    }
    let _ = writeln!(
        w,
        "| **median** | | **{}** | **{}** | **{}** | **{:.2}** | **{:.2}** | | | | |\n",
        secs(l.ethpipe_median_s),
        secs(l.reload_median_s),
        secs(l.psql_median_s),
        l.ratio,
        l.reload_ratio
    );
    if let Some(h) = &l.history {
        let _ = writeln!(
            w,
            "With history: {} rows in {} earlier day partitions (generated in SQL in {}, each built like a \
             loaded day), then the same first load and re-load of the day: medians {} and {}, **{:.2} ×** and \
             **{:.2} ×** the empty-table times (target ≤ {HISTORY_TARGET} ×).\n",
            thousands(h.rows as f64),
            h.days,
            secs(h.generation_s),
            secs(h.first_median_s),
            secs(h.reload_median_s),
            h.first_vs_empty,
            h.reload_vs_empty
        );
        if !h.empty_first.is_empty() {
            let walls = |runs: &[crate::load::EthpipeRun]| {
                runs.iter()
                    .map(|r| secs(r.measured.wall_s))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(
                w,
                "The empty-table times here are their own rounds, paired with the history rounds: each round \
                 loads the day (first load, then re-load) with the history attached and with it detached (a \
                 catalog change; attaching it again scans nothing, each table's CHECK proves its bounds), in \
                 alternating order, so the machine's drift over minutes falls on both sides. First loads with \
                 history {}, without {}; re-loads with history {}, without {}.\n",
                walls(&h.first),
                walls(&h.empty_first),
                walls(&h.reload),
                walls(&h.empty_reload)
            );
        }
    }
    // Steps of the ethpipe runs, medians.
    if let Some(first) = l.rounds.first() {
        let names: Vec<&String> = first.ethpipe.steps.iter().map(|(n, _, _)| n).collect();
        if !names.is_empty() {
            let mut parts = Vec::new();
            let mut stepped = 0.0;
            for name in names {
                let times: Vec<f64> = l
                    .rounds
                    .iter()
                    .filter_map(|r| r.ethpipe.steps.iter().find(|(n, _, _)| n == name))
                    .map(|(_, s, _)| *s)
                    .collect();
                let m = median(&times);
                // token_daily_stats runs inside `index`, on both sessions.
                if name != "token_daily_stats" {
                    stepped += m;
                }
                parts.push(format!("`{name}` {}", secs(m)));
            }
            let _ = writeln!(
                w,
                "Where ethpipe's time goes (medians; the ledger's steps): streaming the day from the server into the \
                 day's fresh table (no index yet), ≈ {} (the rest of the run); then: {}. \
                 `load` is the end of the `COPY` (PostgreSQL finishing the last rows); `index` builds the \
                 primary key and the serving indexes (psql's table maintains only the key) on two sessions, \
                 which also aggregate `token_daily_stats` and the busiest tokens' counterparties (work psql \
                 does not do at all; the statistics' time is inside `index`'s, plus their insert at the swap); \
                 `swap` puts the day in place.\n",
                secs(l.ethpipe_median_s - stepped),
                parts.join(", ")
            );
        }
    }
    let _ = writeln!(
        w,
        "\"server CPU\" is the BigQuery-compatible server (in the bench process) generating and serialising \
         the pages; on Google's service that work happens elsewhere, here it shares the 2 cores with ethpipe \
         and PostgreSQL. \"machine CPU\" is all busy CPU time on the machine during the step (ethpipe, \
         the server, psql and PostgreSQL's backends, WAL writer, checkpointer).\n"
    );
    let _ = writeln!(
        w,
        "## 2. Memory: peak RSS at {} and {} rows\n",
        thousands(l.options.rows as f64),
        thousands(l.options.big_rows as f64)
    );
    let _ = writeln!(
        w,
        "Peak resident set size of the `ethpipe` process (the kernel's `ru_maxrss`, from `wait4`):\n\n\
         | rows in the day | peak RSS | wall time |\n|---|---|---|\n| {} | {:.0} MB (highest of {} rounds: {}) | {} (median) |\n| {} | {:.0} MB | {} |\n",
        thousands(l.options.rows as f64),
        l.peak_rss_mb,
        l.rounds.len(),
        l.rounds
            .iter()
            .map(|r| format!("{:.0}", r.ethpipe.measured.peak_rss_mb))
            .collect::<Vec<_>>()
            .join(", "),
        secs(l.ethpipe_median_s),
        thousands(l.options.big_rows as f64),
        l.big.measured.peak_rss_mb,
        secs(l.big.measured.wall_s)
    );
    let _ = writeln!(
        w,
        "Memory is bounded by the page size (`ETHPIPE_BIGQUERY_PAGE_SIZE`, 20,000 rows) and the two batches \
         the source may run ahead of the sink, not by the size of the day.\n"
    );
}

fn write_backfill(w: &mut String, b: &BackfillResults) {
    let _ = writeln!(w, "## 3. Memory of a backfill\n");
    let _ = writeln!(
        w,
        "`ethpipe backfill token_transfers` over {} days of {} rows from the BigQuery-compatible server \
         (`--force`, `--parallel 1`) against `ethpipe run token_transfers` of the first of those days, {} rounds:\n\n\
         | round | `run` (1 day): wall, peak RSS | `backfill` ({} days, {} rows): wall, peak RSS | ratio |\n|---|---|---|---|",
        b.days,
        thousands(b.rows_per_day as f64),
        b.rounds.len(),
        b.days,
        thousands((b.rows_per_day * b.days as usize) as f64),
    );
    for (i, (one, all)) in b.rounds.iter().enumerate() {
        let _ = writeln!(
            w,
            "| {} | {}, {:.0} MB | {}, {:.0} MB | {:.2} |",
            i + 1,
            secs(one.wall_s),
            one.peak_rss_mb,
            secs(all.wall_s),
            all.peak_rss_mb,
            all.peak_rss_mb / one.peak_rss_mb
        );
    }
    let _ = writeln!(
        w,
        "| **median** | **{:.0} MB** | **{:.0} MB** | **{:.2}** |\n\n\
         Ratio of the medians {:.2}: {} (acceptance: within ±{:.0} %). Peak RSS varies by several MB from run \
         to run with where glibc's per-thread arenas hold freed page buffers; see README.md.\n",
        b.one_day_rss,
        b.backfill_rss,
        b.ratio,
        b.ratio,
        verdict((b.ratio - 1.0).abs() <= BACKFILL_TOLERANCE),
        BACKFILL_TOLERANCE * 100.0
    );
}

fn write_rpc(w: &mut String, r: &RpcResults) {
    let _ = writeln!(
        w,
        "## 4. JSON-RPC: ethpipe against ethereum-etl on the same node\n"
    );
    let _ = writeln!(
        w,
        "An anvil node (npm `@foundry-rs/anvil`) with {} days of StandardToken `batchTransfer`s \
         (6 tokens, 150 recipients per transaction, 2 transactions per block, mainnet's value lengths): blocks \
         {}–{}, {} transfers (generated in {}). Both tools read the same node over the same blocks:\n",
        r.days,
        r.blocks.0,
        r.blocks.1,
        thousands(r.transfers as f64),
        secs(r.generation_s)
    );
    let _ = writeln!(
        w,
        "- **ethpipe**: `ethpipe backfill token_transfers --from … --to … --source rpc --force --parallel P` \
         (`--rpc-batch-size 100`, `eth_getLogs` ranges from 100 blocks, growing and cut to the in-flight \
         budget: the defaults), with `--parallel 1 --rpc-concurrency 8` (the defaults), `--parallel 2 \
         --rpc-concurrency 8` and `--parallel 4 --rpc-concurrency 16` (the memory target's run); the fastest \
         counts and all are listed. Per day it finds the day's blocks, reads the Transfer logs, fetches the block headers \
         (timestamp, hash), decodes, and commits the day into PostgreSQL (five indexes) with its statistics and \
         the ledger. Time is the whole process.\n\
         - **ethereum-etl** {}: `ethereumetl export_token_transfers --start-block {} --end-block {} \
         --batch-size {} --max-workers {}` to a CSV file (it does not fetch headers and writes no database). \
         Its settings are the fastest of a grid tried first on the first day's blocks ({}–{}; its defaults are \
         `--batch-size 100 --max-workers 5`):\n",
        crate::rpc::ETL_VERSION.trim_start_matches("ethereum-etl=="),
        r.blocks.0,
        r.blocks.1,
        r.etl_batch_size,
        r.etl_max_workers,
        r.calibration_blocks.0,
        r.calibration_blocks.1
    );
    let _ = writeln!(
        w,
        "| `--batch-size` | `--max-workers` | transfers/s (first day) |\n|---|---|---|"
    );
    for (batch, workers, per_s) in &r.etl_calibration {
        let chosen = *batch == r.etl_batch_size && *workers == r.etl_max_workers;
        let _ = writeln!(
            w,
            "| {batch} | {workers} | {}{} |",
            thousands(*per_s),
            if chosen { " (chosen)" } else { "" }
        );
    }
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "| tool | transfers | wall time | transfers/s | peak RSS | CPU |\n|---|---|---|---|---|---|"
    );
    for (parallel, rows, run) in &r.ethpipe_runs {
        let chosen = if *parallel == r.ethpipe_parallel {
            "**"
        } else {
            ""
        };
        let (memory_parallel, memory_concurrency) = crate::rpc::MEMORY_RUN;
        let concurrency = if *parallel == memory_parallel {
            format!(" --rpc-concurrency {memory_concurrency}")
        } else {
            String::new()
        };
        let _ = writeln!(
            w,
            "| ethpipe `--parallel {parallel}{concurrency}`{} | {} | {} | {chosen}{}{chosen} | {:.0} MB | {:.1} s |",
            if *parallel == 1 { " (default)" } else { "" },
            thousands(*rows as f64),
            secs(run.wall_s),
            thousands(*rows as f64 / run.wall_s),
            run.peak_rss_mb,
            run.cpu_s
        );
    }
    let default_ratio = r
        .ethpipe_runs
        .iter()
        .find(|(p, _, _)| *p == 1)
        .map(|(_, rows, run)| *rows as f64 / run.wall_s / r.etl_per_s);
    let _ = writeln!(
        w,
        "| ethereum-etl `-b {} -w {}` | {} | {} | **{}** | {:.0} MB | {:.1} s |\n",
        r.etl_batch_size,
        r.etl_max_workers,
        thousands(r.etl_rows as f64),
        secs(r.etl.wall_s),
        thousands(r.etl_per_s),
        r.etl.peak_rss_mb,
        r.etl.cpu_s
    );
    if let Some(ratio) = default_ratio {
        let _ = writeln!(
            w,
            "With ethpipe's defaults (`--parallel 1`) the ratio is {ratio:.1} ×. ethpipe's speed here is bounded by \
             PostgreSQL (each day's `COPY` into a table with five indexes), not by the node: see README.md.\n"
        );
    }
    let _ = writeln!(
        w,
        "Ratio **{:.1} ×** (target ≥ {RPC_TARGET} ×): {}. Rows compared on (transaction_hash, log_index, \
         token_address, from_address, to_address, value, block_number): {} ({} only in ethpipe's, {} only in \
         ethereum-etl's).\n",
        r.ratio,
        verdict(r.ratio >= RPC_TARGET && r.identical),
        if r.identical { "**identical**" } else { "**they differ**" },
        r.only_ethpipe,
        r.only_etl
    );
}

fn write_cryo(w: &mut String, r: &RpcResults, c: &CryoResults) {
    let version = crate::cryo::CRYO_VERSION.trim_start_matches("cryo==");
    let _ = writeln!(
        w,
        "### 4b. JSON-RPC: ethpipe against cryo on the same node\n"
    );
    let d = crate::cryo::CRYO_DEFAULTS;
    let _ = writeln!(
        w,
        "The same node and blocks as above. Every time is the whole process, start to exit. After the \
         settings are chosen, cryo, ethpipe into PostgreSQL and ethpipe into Parquet run in {} alternating \
         rounds over the whole range (cryo first in odd rounds, last in even ones); the medians count.\n\n\
         - **cryo** {version} (PyPI wheel, its Rust engine; the wheel has no CLI, so `python -c \"cryo.freeze('erc20_transfers', \
         start_block={}, end_block={}, chunk_size={}, inner_request_size={}, max_concurrent_chunks={})\"`, end block \
         exclusive, then `os._exit(0)`: in Python's finalization its engine threads can make Python abort after a complete run) into Parquet files in a fresh folder. It reads the Transfer logs and writes them; it keeps **only** \
         the ERC-20 shape (three topics and one 32-byte word: ERC-721 transfers, and the other shapes ethpipe decodes \
         such as CryptoKitties' unindexed Transfer, are dropped), fetches no block headers (no timestamps, no days) and \
         keeps no ledger; requests in flight and per second unlimited (its defaults). Its settings are the fastest, of those that \
         returned every transfer, of a grid tried first on the first day's blocks ({}–{}, {} transfers; its defaults \
         are `chunk_size={}, inner_request_size={}, max_concurrent_chunks={}`):\n",
        c.rounds.len().max(1),
        r.blocks.0,
        r.blocks.1 + 1,
        c.settings.chunk_size,
        c.settings.inner_request_size,
        c.settings.max_concurrent_chunks,
        r.calibration_blocks.0,
        r.calibration_blocks.1,
        thousands(c.calibration_rows_expected as f64),
        d.chunk_size,
        d.inner_request_size,
        d.max_concurrent_chunks
    );
    let _ = writeln!(
        w,
        "| `chunk_size` (blocks a file) | `inner_request_size` (blocks an `eth_getLogs`) | `max_concurrent_chunks` | transfers | wall time (first day) |\n|---|---|---|---|---|"
    );
    for (s, rows, wall_s) in &c.calibration {
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {}{} |",
            s.chunk_size,
            s.inner_request_size,
            s.max_concurrent_chunks,
            thousands(*rows as f64),
            secs(*wall_s),
            if *s == c.settings { " (chosen)" } else { "" }
        );
    }
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "- **ethpipe into PostgreSQL**: the settings of the fastest run of section 4 (`--parallel {}`), whole days, \
         with headers, statistics and the ledger.\n\
         - **ethpipe into Parquet**: the same `backfill` with `--database-url parquet://DIR` (one file per day, \
         ledger in `DIR/_ethpipe.db`, a fresh folder each run), with the (`--parallel`, `--rpc-concurrency`) \
         settings {}, once each; the fastest goes into the rounds.\n",
        r.ethpipe_parallel,
        c.parquet_runs
            .iter()
            .map(|(parallel, concurrency, _, _)| format!("({parallel}, {concurrency})"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !c.rounds.is_empty() {
        let _ = writeln!(
            w,
            "| round | cryo | ethpipe into PostgreSQL | ethpipe into Parquet |\n|---|---|---|---|"
        );
        for (i, (cryo_s, postgres_s, parquet_s)) in c.rounds.iter().enumerate() {
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} |",
                i + 1,
                secs(*cryo_s),
                secs(*postgres_s),
                secs(*parquet_s)
            );
        }
        let _ = writeln!(w);
    }
    let _ = writeln!(
        w,
        "| tool (median round, or a single run) | transfers | wall time | × cryo | peak RSS | CPU |\n|---|---|---|---|---|---|"
    );
    let _ = writeln!(
        w,
        "| cryo `chunk_size={} inner_request_size={} max_concurrent_chunks={}` | {} | **{}** | 1 | {:.0} MB | {:.1} s |",
        c.settings.chunk_size,
        c.settings.inner_request_size,
        c.settings.max_concurrent_chunks,
        thousands(c.rows as f64),
        secs(c.cryo.wall_s),
        c.cryo.peak_rss_mb,
        c.cryo.cpu_s
    );
    let _ = writeln!(
        w,
        "| ethpipe into PostgreSQL `--parallel {} --rpc-concurrency {}` | {} | **{}** | {:.2} | {:.0} MB | {:.1} s |",
        r.ethpipe_parallel,
        crate::rpc::ETHPIPE_RUNS
            .iter()
            .find(|(parallel, _)| *parallel == r.ethpipe_parallel)
            .map_or(8, |(_, concurrency)| *concurrency),
        thousands(r.ethpipe_rows as f64),
        secs(c.postgres_s),
        c.postgres_ratio,
        c.postgres.as_ref().unwrap_or(&r.ethpipe).peak_rss_mb,
        c.postgres.as_ref().unwrap_or(&r.ethpipe).cpu_s
    );
    if !c.rounds.is_empty() {
        let _ = writeln!(
            w,
            "| ethpipe into Parquet `--parallel {} --rpc-concurrency {}` (rounds) | {} | **{}** | {:.2} | {:.0} MB | {:.1} s |",
            c.parquet_parallel,
            c.parquet_concurrency,
            thousands(r.ethpipe_rows as f64),
            secs(c.parquet.wall_s),
            c.parquet_ratio,
            c.parquet.peak_rss_mb,
            c.parquet.cpu_s
        );
    }
    for (parallel, concurrency, rows, run) in &c.parquet_runs {
        // Results saved before the rounds have only these runs.
        let chosen = if (*parallel, *concurrency) == (c.parquet_parallel, c.parquet_concurrency)
            && c.rounds.is_empty()
        {
            "**"
        } else {
            ""
        };
        let _ = writeln!(
            w,
            "| ethpipe into Parquet `--parallel {parallel} --rpc-concurrency {concurrency}` (single run) | {} | {chosen}{}{chosen} | {:.2} | {:.0} MB | {:.1} s |",
            thousands(*rows as f64),
            secs(run.wall_s),
            run.wall_s / c.cryo.wall_s,
            run.peak_rss_mb,
            run.cpu_s
        );
    }
    let _ = writeln!(w);
    if !c.failures.is_empty() {
        let runs: Vec<String> = c
            .failures
            .iter()
            .map(|(log, status)| format!("`{log}` ({status})"))
            .collect();
        let _ = writeln!(
            w,
            "cryo failed {} time(s) and the run was repeated (exit 134 is SIGABRT: cryo {version}'s engine threads \
             can release the GIL while Python finalizes; the bench's script leaves with `os._exit(0)` once \
             `cryo.freeze` has returned to avoid it); failed runs' times are not used: {}.\n",
            c.failures.len(),
            runs.join(", ")
        );
    }
    let _ = writeln!(
        w,
        "Into PostgreSQL **{:.2} ×** cryo's time (target ≤ {CRYO_POSTGRES_TARGET} ×): {}. Into Parquet **{:.2} ×** \
         (target ≤ {CRYO_PARQUET_TARGET} ×): {}. Rows compared on (transaction_hash, log_index, token_address, \
         from_address, to_address, value, block_number), cryo's binary hashes and addresses as 0x-hex and its \
         `value_string` as the value: {} ({} only in ethpipe's, {} only in cryo's); ethpipe's Parquet rows against \
         its PostgreSQL rows: {}. The chain has only standard ERC-20 tokens, so what cryo skips removes no row here.\n",
        c.postgres_ratio,
        verdict(c.postgres_ratio <= CRYO_POSTGRES_TARGET && c.identical),
        c.parquet_ratio,
        verdict(c.parquet_ratio <= CRYO_PARQUET_TARGET && c.identical && c.parquet_identical),
        if c.identical { "**identical**" } else { "**they differ**" },
        c.only_ethpipe,
        c.only_cryo,
        if c.parquet_identical { "identical" } else { "**they differ**" }
    );
}

fn write_rowwise(w: &mut String, r: &RowwiseResults, load: Option<&LoadResults>) {
    let _ = writeln!(
        w,
        "## 5. Row-by-row baseline: pandas + psycopg2 `executemany` upsert\n"
    );
    let _ = writeln!(
        w,
        "`bench/rowwise_upsert.py`: pandas reads the first {} rows of the same day from CSV, then \
         `cursor.executemany(\"INSERT … ON CONFLICT (transaction_hash, log_index) DO UPDATE SET …\", rows)` \
         — one statement and one round trip per row, as the seed pipeline's Mage.ai PostgreSQL exporter \
         does — into a table like `ethereum.token_transfers` (same indexes), one commit at the end.\n",
        thousands(r.rows as f64)
    );
    let _ = writeln!(
        w,
        "| | |\n|---|---|\n| rows | {} |\n| pandas read | {} |\n| upsert | {} ({} rows/s) |\n\
         | **one day of {} rows, extrapolated** (linear from the slice) | **≈ {} ≈ {:.1} min** |\n",
        thousands(r.rows as f64),
        secs(r.read_s),
        secs(r.upsert_s),
        thousands(r.rows_per_s),
        thousands(r.day_rows as f64),
        secs(r.extrapolated_day_s),
        r.extrapolated_day_s / 60.0
    );
    if let Some(l) = load {
        let _ = writeln!(
            w,
            "ethpipe loads the whole day in {} (median above): {:.0} × faster than the extrapolated row-by-row upsert. \
             The extrapolation is optimistic for the upsert: its slice goes into an almost empty table, whose indexes \
             are smaller than a full day's.\n",
            secs(l.ethpipe_median_s),
            r.extrapolated_day_s / l.ethpipe_median_s
        );
    }
}

fn write_sqlite(w: &mut String, s: &SqliteResults) {
    let _ = writeln!(
        w,
        "## 6. SQLite: one day, ethpipe against `sqlite3 .import`\n"
    );
    let _ = writeln!(
        w,
        "The same generated day ({} rows) as section 1, served by the BigQuery-compatible server to \
         `ethpipe run token_transfers --database-url sqlite://…` (a fresh file each round, schema made by \
         `ethpipe migrate`), against the SQLite shell loading the same rows from CSV ({:.0} MB, in ethpipe's \
         text forms) with `.import --csv` — one transaction — into (a) a file made by the same `ethpipe migrate`, \
         so the same table, primary key and indexes, and (b) a table with only the primary key.\n",
        thousands(s.rows as f64),
        s.csv_bytes as f64 / 1e6
    );
    let _ = writeln!(
        w,
        "| round | ethpipe | ethpipe CPU | ethpipe peak RSS | `.import`, same table | ethpipe / `.import` | `.import`, key only |\n|---|---|---|---|---|---|---|"
    );
    for (i, r) in s.rounds.iter().enumerate() {
        let _ = writeln!(
            w,
            "| {} | {} | {:.1} s | {:.0} MB | {} | {:.2} | {} |",
            i + 1,
            secs(r.ethpipe.wall_s),
            r.ethpipe.cpu_s,
            r.ethpipe.peak_rss_mb,
            secs(r.import_same.wall_s),
            r.ethpipe.wall_s / r.import_same.wall_s,
            secs(r.import_key_only.wall_s)
        );
    }
    let _ = writeln!(
        w,
        "| **median** | **{}** | | | **{}** | **{:.2}** | **{}** |\n",
        secs(s.ethpipe_median_s),
        secs(s.import_same_median_s),
        s.ratio,
        secs(s.import_key_only_median_s)
    );
    let _ = writeln!(
        w,
        "Ratio **{:.2} ×** (target ≤ {SQLITE_TARGET} ×): {}. Both tables hold {} rows after the last round.\n",
        s.ratio,
        verdict(s.ratio <= SQLITE_TARGET),
        thousands(s.counts.0 as f64)
    );
}

/// Every page kind measured, each within the p99 target without errors.
fn serving_within(s: &ServingResults) -> bool {
    !s.kinds.is_empty()
        && s.kinds
            .iter()
            .all(|k| k.all.p99_ms <= SERVING_P99_TARGET_MS && k.all.errors == 0)
}

fn write_serving(w: &mut String, s: &ServingResults) {
    let _ = writeln!(w, "## 7. Serving over a year of day partitions\n");
    let generated = match s.generation_s {
        Some(seconds) => format!("generated in this run in {}", secs(seconds)),
        None => "kept from an earlier run of the same generator".to_string(),
    };
    let _ = writeln!(
        w,
        "The release `ethpipe serve` on {} transfers over {} day partitions ({generated}; see \
         bench/README.md for their shape). Per page kind, after a warm-up, an open loop sends {} \
         requests/s for {} s; each latency counts from the request's due time.\n",
        thousands(s.rows as f64),
        s.partitions,
        s.rate,
        s.seconds
    );
    let _ = writeln!(
        w,
        "| page | requests | class | p50 | p90 | p99 | max | errors |\n|---|---|---|---|---|---|---|---|"
    );
    let row = |w: &mut String, kind: &str, class: &str, l: &crate::serving::Latency| {
        let _ = writeln!(
            w,
            "| {kind} | {} | {class} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {} |",
            l.requests, l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms, l.errors
        );
    };
    for k in &s.kinds {
        row(w, &format!("**{}**", k.kind), "all", &k.all);
        for (class, latency) in &k.classes {
            row(w, "", class, latency);
        }
    }
    let _ = writeln!(
        w,
        "\np99 target ≤ {SERVING_P99_TARGET_MS:.0} ms per page kind, without errors: {}.\n",
        verdict(serving_within(s))
    );
    let failures: Vec<&String> = s.kinds.iter().flat_map(|k| &k.failures).collect();
    if !failures.is_empty() {
        let _ = writeln!(w, "First failures:\n");
        for failure in failures {
            let _ = writeln!(w, "- `{failure}`");
        }
        let _ = writeln!(w);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(date: &str, commit: &str) -> Meta {
        Meta {
            date: date.into(),
            commit: commit.into(),
            ethpipe_version: "ethpipe 0.1.0".into(),
            ..Meta::default()
        }
    }

    #[test]
    fn a_part_run_alone_names_the_runs_the_other_figures_come_from() {
        let mut full = meta("day 1", "aaa");
        for part in ["load", "rpc", "sqlite"] {
            full.ran(part, 1.0);
        }
        assert!(full
            .provenance()
            .contains("at commit aaa. Every figure below comes from that run"));

        let mut alone = meta("day 2", "bbb");
        alone.ran("load", 2.0);
        alone.keep_other_parts(&full);
        let text = alone.provenance();
        assert!(text.contains("`load` on day 2 at commit bbb"), "{text}");
        assert!(
            text.contains("`rpc`, `sqlite` on day 1 at commit aaa"),
            "{text}"
        );
        assert!(
            !text.contains("Every figure below comes from that run"),
            "{text}"
        );
        assert_eq!(alone.part_seconds.len(), 3);

        // Saved before runs were recorded per part: the saving run is named.
        let mut old = meta("day 0", "ccc");
        old.part_seconds.push(("rowwise".into(), 3.0));
        let mut next = meta("day 3", "ddd");
        next.ran("load", 1.0);
        next.keep_other_parts(&old);
        assert!(next
            .provenance()
            .contains("`rowwise` on day 0 at commit ccc"));
    }
}
