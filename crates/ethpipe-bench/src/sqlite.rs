//! SQLite: one day into `sqlite://` against the SQLite shell's own bulk path,
//! `sqlite3 .import` of the same rows as CSV — into a table of the same
//! definition (primary key and the dataset's indexes, made by `ethpipe
//! migrate`) and, for reference, into a primary-key-only table.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::day::{sqlite_csv_line, RealisticDays};
use crate::env::{file_size, Env};
use crate::load::{bench_day, Server, SEED};
use crate::measure::{self, median, Measured};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SqliteRound {
    pub ethpipe: Measured,
    /// `.import` into the table `ethpipe migrate` creates.
    pub import_same: Measured,
    /// `.import` into a table with only the primary key.
    pub import_key_only: Measured,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SqliteResults {
    pub rows: usize,
    pub csv_bytes: u64,
    pub rounds: Vec<SqliteRound>,
    pub ethpipe_median_s: f64,
    pub import_same_median_s: f64,
    pub import_key_only_median_s: f64,
    /// ethpipe / `.import` into the same definition (the target's ratio).
    pub ratio: f64,
    pub peak_rss_mb: f64,
    /// Rows in ethpipe's table and the `.import` table after the last round.
    pub counts: (i64, i64),
}

/// The primary-key-only table: token_transfers' columns and key, no index.
const KEY_ONLY_TABLE: &str = "CREATE TABLE token_transfers (
    token_address TEXT NOT NULL, from_address TEXT, to_address TEXT, value TEXT,
    transaction_hash TEXT NOT NULL, log_index INTEGER NOT NULL,
    block_timestamp TEXT NOT NULL, block_number INTEGER NOT NULL, block_hash TEXT NOT NULL,
    CONSTRAINT token_transfers_pkey PRIMARY KEY (transaction_hash, log_index))";

pub fn sqlite(env: &Env, rows: usize, rounds: usize) -> anyhow::Result<SqliteResults> {
    let server = Server::start(env)?;
    let days = Arc::new(RealisticDays::new(bench_day(), 1, rows, SEED));
    server.bigquery.set_transfer_generator(days.clone());
    let folder = env.work.join("sqlite");
    std::fs::create_dir_all(&folder)?;
    let csv = folder.join(format!("day-{rows}.csv"));
    write_sqlite_csv(&days, &csv)?;
    eprintln!(
        "bench: sqlite: {rows} rows as CSV ({:.0} MB)",
        file_size(&csv) as f64 / 1e6
    );

    let mut results = Vec::with_capacity(rounds);
    for round in 1..=rounds {
        let ethpipe_db = fresh_file(&folder, "ethpipe.db")?;
        let url = format!("sqlite://{}", ethpipe_db.display());
        let mut settings = server.settings();
        settings.push(("ETHPIPE_DATABASE_URL", url));
        measure::run(
            env.ethpipe(&["migrate"], &settings),
            &env.log("sqlite-migrate.log"),
        )?;
        flush_caches_of(&ethpipe_db);
        let ethpipe = measure::run(
            env.ethpipe(
                &["run", "token_transfers", "--date", crate::load::DAY],
                &settings,
            ),
            &env.log(&format!("sqlite-ethpipe-{round}.log")),
        )?;

        // The same definition, made by the same migrations, then emptied of
        // everything but the table the import fills.
        let same_db = fresh_file(&folder, "import-same.db")?;
        let mut same_settings = server.settings();
        same_settings.push((
            "ETHPIPE_DATABASE_URL",
            format!("sqlite://{}", same_db.display()),
        ));
        measure::run(
            env.ethpipe(&["migrate"], &same_settings),
            &env.log("sqlite-migrate-same.log"),
        )?;
        let import_same = import(
            &same_db,
            &csv,
            &env.log(&format!("sqlite-import-{round}.log")),
        )?;

        let key_only_db = fresh_file(&folder, "import-key-only.db")?;
        sqlite3(&key_only_db, &[KEY_ONLY_TABLE])?;
        let import_key_only = import(
            &key_only_db,
            &csv,
            &env.log(&format!("sqlite-import-key-only-{round}.log")),
        )?;
        eprintln!(
            "bench: sqlite round {round}: ethpipe {:.2} s (RSS {:.0} MB), .import same table {:.2} s, key-only {:.2} s",
            ethpipe.wall_s, ethpipe.peak_rss_mb, import_same.wall_s, import_key_only.wall_s
        );
        results.push(SqliteRound {
            ethpipe,
            import_same,
            import_key_only,
        });
    }
    let last = folder.join("ethpipe.db");
    let counts = (count(&last)?, count(&folder.join("import-same.db"))?);
    anyhow::ensure!(
        counts.0 == rows as i64 && counts.1 == rows as i64,
        "row counts differ from {rows}: ethpipe {} vs .import {}",
        counts.0,
        counts.1
    );
    let pick = |f: fn(&SqliteRound) -> f64| median(&results.iter().map(f).collect::<Vec<_>>());
    let ethpipe_median_s = pick(|r| r.ethpipe.wall_s);
    let import_same_median_s = pick(|r| r.import_same.wall_s);
    let sqlite_results = SqliteResults {
        rows,
        csv_bytes: file_size(&csv),
        ethpipe_median_s,
        import_same_median_s,
        import_key_only_median_s: pick(|r| r.import_key_only.wall_s),
        ratio: ethpipe_median_s / import_same_median_s,
        peak_rss_mb: results
            .iter()
            .map(|r| r.ethpipe.peak_rss_mb)
            .fold(0.0, f64::max),
        rounds: results,
        counts,
    };
    env.save("sqlite", &sqlite_results)?;
    Ok(sqlite_results)
}

/// The day as CSV in ethpipe's SQLite text forms (ISO-8601 timestamps), so
/// both sides store the same bytes.
fn write_sqlite_csv(days: &RealisticDays, path: &Path) -> anyhow::Result<()> {
    use std::io::Write;
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut lines = Vec::with_capacity(1 << 16);
    days.for_each_block(|rows| {
        lines.clear();
        for row in rows {
            sqlite_csv_line(&mut lines, row);
        }
        out.write_all(&lines)?;
        Ok(())
    })?;
    out.flush()?;
    Ok(())
}

/// `path` with any earlier database file (and its WAL) removed.
fn fresh_file(folder: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let path = folder.join(name);
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        if file.exists() {
            std::fs::remove_file(&file).with_context(|| format!("removing {}", file.display()))?;
        }
    }
    Ok(path)
}

/// Writes the file's dirty pages out before a timed step, so one step's
/// writeback does not land in the next.
fn flush_caches_of(path: &Path) {
    if let Ok(file) = std::fs::File::open(path) {
        let _ = file.sync_all();
    }
}

/// `sqlite3 DB ".import --csv CSV token_transfers"`: the shell wraps the
/// import in one transaction, as ethpipe's swap does.
fn import(db: &Path, csv: &Path, log: &Path) -> anyhow::Result<Measured> {
    flush_caches_of(db);
    let mut command = Command::new("sqlite3");
    command
        .arg(db)
        .arg(format!(".import --csv {} token_transfers", csv.display()));
    measure::run(command, log)
}

fn sqlite3(db: &Path, statements: &[&str]) -> anyhow::Result<()> {
    let status = Command::new("sqlite3")
        .arg(db)
        .args(statements)
        .status()
        .context("running sqlite3 (apt install sqlite3)")?;
    anyhow::ensure!(status.success(), "sqlite3 {} failed", db.display());
    Ok(())
}

fn count(db: &Path) -> anyhow::Result<i64> {
    let output = Command::new("sqlite3")
        .arg(db)
        .arg("SELECT count(*) FROM token_transfers")
        .output()
        .context("running sqlite3")?;
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .with_context(|| format!("counting rows of {}", db.display()))
}
