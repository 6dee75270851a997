//! What every part of the benchmark shares: the work folder, the release
//! binary, the benchmark database, a tokio runtime for the in-process servers
//! and database calls, and how to run `ethpipe` with a clean environment.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use tokio::runtime::Runtime;
use tokio_postgres::{Client, NoTls};

/// The database the bench creates and finally drops, unless
/// `ETHPIPE_BENCH_DATABASE` names another (two benches on one server must not
/// drop each other's).
pub const BENCH_DATABASE: &str = "ethpipe_bench";

pub struct Env {
    pub rt: Runtime,
    /// Scratch: CSV files, logs, keys, per-part results (`results/*.json`).
    pub work: PathBuf,
    /// The repository root (RESULTS.md goes to `bench/` there).
    pub repo: PathBuf,
    pub ethpipe: PathBuf,
    /// `postgres://…/postgres`, to create and drop the bench database.
    pub admin_url: String,
    /// The bench database's name: [`BENCH_DATABASE`] or `ETHPIPE_BENCH_DATABASE`.
    pub database: String,
    /// `postgres://…/<database>`.
    pub bench_url: String,
}

impl Env {
    pub fn new() -> anyhow::Result<Env> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
        let work = std::env::var_os("ETHPIPE_BENCH_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(&home).join(".cache").join("ethpipe-bench"));
        std::fs::create_dir_all(work.join("results"))?;
        std::fs::create_dir_all(work.join("logs"))?;
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .canonicalize()?;
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(&home).join(".cache").join("ethpipe-target"));
        let ethpipe = target.join("release").join("ethpipe");
        if !ethpipe.is_file() {
            anyhow::bail!(
                "{} is missing: build it with `cargo build --release -p ethpipe` (make bench does)",
                ethpipe.display()
            );
        }
        let admin_url = std::env::var("ETHPIPE_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let database = std::env::var("ETHPIPE_BENCH_DATABASE")
            .ok()
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| BENCH_DATABASE.to_string());
        // Spliced into DROP/CREATE DATABASE: an identifier, nothing to quote.
        if !database
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            anyhow::bail!(
                "ETHPIPE_BENCH_DATABASE must be lowercase letters, digits and _: {database}"
            );
        }
        let bench_url = match admin_url.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{database}"),
            None => anyhow::bail!("ETHPIPE_TEST_DATABASE_URL has no database name: {admin_url}"),
        };
        Ok(Env {
            rt,
            work,
            repo,
            ethpipe,
            admin_url,
            database,
            bench_url,
        })
    }

    pub fn log(&self, name: &str) -> PathBuf {
        self.work.join("logs").join(name)
    }

    /// The venv `bench-<name>-venv` under the tools folder, made with
    /// `python` once for `wanted` (the packages it holds, kept in a marker
    /// file; a venv made for other packages is made again). `install` runs
    /// the pip steps given the venv's `pip`; logs go to `<name>-*.log`.
    pub fn python_venv(
        &self,
        name: &str,
        python: &str,
        wanted: &str,
        install: impl FnOnce(&Path) -> anyhow::Result<()>,
    ) -> anyhow::Result<PathBuf> {
        let venv = ethpipe_testkit::anvil::tools_dir().join(format!("bench-{name}-venv"));
        let marker = venv.join(".ethpipe-bench");
        if std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted) {
            return Ok(venv);
        }
        eprintln!("bench: installing {wanted} into {}", venv.display());
        let _ = std::fs::remove_dir_all(&venv);
        let mut make = Command::new(python);
        make.args(["-m", "venv"]).arg(&venv);
        crate::measure::run(make, &self.log(&format!("{name}-venv.log")))?;
        install(&venv.join("bin").join("pip"))?;
        std::fs::write(&marker, wanted)?;
        Ok(venv)
    }

    pub fn connect(&self, url: &str) -> anyhow::Result<Client> {
        self.rt.block_on(async {
            let (client, connection) = tokio_postgres::connect(url, NoTls)
                .await
                .with_context(|| format!("connecting to {url}"))?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            Ok(client)
        })
    }

    /// Drops and creates the bench database.
    pub fn fresh_database(&self) -> anyhow::Result<()> {
        let admin = self.connect(&self.admin_url)?;
        self.rt.block_on(async {
            admin
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.database
                ))
                .await
                .context("dropping the old bench database")?;
            admin
                .batch_execute(&format!("CREATE DATABASE {}", self.database))
                .await
                .context("creating the bench database")
        })
    }

    pub fn drop_database(&self) -> anyhow::Result<()> {
        let admin = self.connect(&self.admin_url)?;
        self.rt.block_on(async {
            admin
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.database
                ))
                .await
                .context("dropping the bench database")
        })
    }

    pub fn execute(&self, client: &Client, sql: &str) -> anyhow::Result<()> {
        self.rt
            .block_on(client.batch_execute(sql))
            .with_context(|| format!("running {sql}"))
    }

    /// The first column of every row, as text.
    pub fn column(&self, client: &Client, sql: &str) -> anyhow::Result<Vec<String>> {
        let rows = self
            .rt
            .block_on(client.simple_query(sql))
            .with_context(|| format!("running {sql}"))?;
        Ok(rows
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => {
                    Some(row.get(0).unwrap_or("").to_string())
                }
                _ => None,
            })
            .collect())
    }

    /// Every row, all columns as text.
    pub fn rows(&self, client: &Client, sql: &str) -> anyhow::Result<Vec<Vec<String>>> {
        let rows = self
            .rt
            .block_on(client.simple_query(sql))
            .with_context(|| format!("running {sql}"))?;
        Ok(rows
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                    (0..row.len())
                        .map(|i| row.get(i).unwrap_or("").to_string())
                        .collect(),
                ),
                _ => None,
            })
            .collect())
    }

    /// `ethpipe ARGS…` with only the given settings (none of the caller's
    /// `ETHPIPE_*`), run in the work folder so no `ethpipe.toml` is picked up.
    pub fn ethpipe(&self, args: &[&str], settings: &[(&str, String)]) -> Command {
        let mut command = Command::new(&self.ethpipe);
        command.args(args).current_dir(&self.work);
        for (key, _) in std::env::vars() {
            if key.starts_with("ETHPIPE_") || key == "GOOGLE_APPLICATION_CREDENTIALS" {
                command.env_remove(key);
            }
        }
        command.env("ETHPIPE_DATABASE_URL", &self.bench_url);
        for (key, value) in settings {
            command.env(key, value);
        }
        command
    }

    /// Waits until no autovacuum worker is busy in the bench database (at
    /// most a minute), so background work of one step does not land in the next.
    pub fn settle(&self, client: &Client) -> anyhow::Result<()> {
        for _ in 0..120 {
            let busy = self.column(
                client,
                &format!(
                    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker' AND datname = '{}'",
                    self.database
                ),
            )?;
            if busy.first().map(String::as_str) == Some("0") {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        Ok(())
    }

    pub fn save<T: serde::Serialize>(&self, part: &str, value: &T) -> anyhow::Result<()> {
        let path = self.work.join("results").join(format!("{part}.json"));
        std::fs::write(&path, serde_json::to_vec_pretty(value)?)?;
        eprintln!("bench: {part} results in {}", path.display());
        Ok(())
    }

    pub fn load<T: serde::de::DeserializeOwned>(&self, part: &str) -> Option<T> {
        let path = self.work.join("results").join(format!("{part}.json"));
        let text = std::fs::read_to_string(path).ok()?;
        serde_json::from_str(&text).ok()
    }
}

/// CPU seconds this process has used (user + system): the in-process
/// BigQuery-compatible server's share while `ethpipe` runs.
pub fn own_cpu_seconds() -> f64 {
    // SAFETY: a zeroed rusage is valid for getrusage to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: usage points at a live local.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

pub fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Blocks until SIGINT or SIGTERM, so the caller returns and its servers
/// (and an anvil child) are dropped, not orphaned.
pub fn wait_for_signal(env: &Env) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    env.rt.block_on(async {
        let mut term = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = term.recv() => {}
            _ = interrupt.recv() => {}
        }
        Ok(())
    })
}
