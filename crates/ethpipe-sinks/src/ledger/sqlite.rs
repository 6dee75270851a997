//! The ledger on SQLite (tables `ethpipe_runs`, `ethpipe_triggers`, …):
//! the statement rewrite, how values bind and columns read, and file locks.
//!
//! Timestamps are stored as fixed-width RFC 3339 text
//! ([`crate::sqlite::timestamp_text`]) so they sort and compare as text, days
//! as `YYYY-MM-DD`, booleans as integers. Statements run on a blocking thread
//! over one connection; a read-only ledger (the server's) opens the file
//! read-only and interrupts a statement that runs past its time limit.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{CachedStatement, Connection, OpenFlags};

use super::error::LedgerError;
use super::locks::{Lock, LockName};
use super::shared::{self, Backend};
use super::statements::{Cell, Record, Statement, Value};
use crate::sqlite::timestamp_text;
use crate::Commit;

pub(crate) struct SqliteBackend {
    path: PathBuf,
    writers: Writers,
    /// Opened on first use; one statement at a time.
    connection: Arc<Mutex<Option<Connection>>>,
    /// `Some` for a read-only ledger: each statement's time limit.
    read_only: Option<Duration>,
}

/// What one writer lock covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Writers {
    /// The whole file: an SQLite store, whose day holds the file's one
    /// write lock from its first row to its commit.
    OnePerFile,
    /// One (pipeline, day): the ledger of a `parquet://` store, whose days
    /// are files of their own and whose ledger writes are short.
    OnePerDay,
}

impl SqliteBackend {
    pub fn new(path: &Path, writers: Writers, read_only: Option<Duration>) -> SqliteBackend {
        SqliteBackend {
            path: path.to_path_buf(),
            writers,
            connection: Arc::new(Mutex::new(None)),
            read_only,
        }
    }

    /// Runs `work` on the connection, on a blocking thread.
    async fn with_connection<T: Send + 'static>(
        &self,
        context: &'static str,
        work: impl FnOnce(&Connection) -> Result<T, LedgerError> + Send + 'static,
    ) -> Result<T, LedgerError> {
        let (shared, path, limit) = (
            Arc::clone(&self.connection),
            self.path.clone(),
            self.read_only,
        );
        let runtime = tokio::runtime::Handle::current();
        let task = tokio::task::spawn_blocking(move || {
            // Taken out while in use: if `work` panics, the next call opens afresh.
            let mut slot = shared.lock().unwrap_or_else(PoisonError::into_inner);
            let connection = match slot.take() {
                Some(connection) => connection,
                None => open(&path, limit.is_some())?,
            };
            let watchdog = limit.map(|limit| {
                let interrupt = connection.get_interrupt_handle();
                runtime.spawn(async move {
                    tokio::time::sleep(limit).await;
                    interrupt.interrupt();
                })
            });
            let result = work(&connection);
            if let Some(watchdog) = watchdog {
                watchdog.abort();
            }
            *slot = Some(connection);
            result
        });
        task.await
            .map_err(|source| LedgerError::Task { context, source })?
    }
}

fn open(path: &Path, read_only: bool) -> Result<Connection, LedgerError> {
    let opened = if read_only {
        Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
    } else {
        Connection::open(path)
    };
    let failed = |source| LedgerError::SqliteOpen {
        target: format!("sqlite://{}", path.display()),
        source,
    };
    let connection = opened.map_err(failed)?;
    // Wait out another process's write transaction (a day's swap) rather
    // than fail; a reader waits less, its caller has a page to answer.
    let busy = Duration::from_secs(if read_only { 5 } else { 60 });
    connection.busy_timeout(busy).map_err(failed)?;
    let setting = if read_only {
        "query_only"
    } else {
        "foreign_keys"
    };
    connection
        .pragma_update(None, setting, true)
        .map_err(failed)?;
    Ok(connection)
}

#[async_trait]
impl Backend for SqliteBackend {
    async fn execute(
        &self,
        statement: &'static Statement,
        params: Vec<Value>,
    ) -> Result<u64, LedgerError> {
        self.with_connection(statement.context, move |c| execute(c, statement, &params))
            .await
    }

    async fn query(
        &self,
        statement: &'static Statement,
        params: Vec<Value>,
    ) -> Result<Vec<Record>, LedgerError> {
        self.with_connection(statement.context, move |c| query(c, statement, &params))
            .await
    }

    /// [`Writers::OnePerFile`]: the day lock is `<db>.lock`;
    /// [`Writers::OnePerDay`]: `<db>.locks/<pipeline>-<day or full>.lock`.
    /// The scheduler's is `<db>.scheduler.lock`.
    async fn lock(&self, name: LockName, wait: bool) -> Result<Option<Lock>, LedgerError> {
        let path = lock_path(&self.path, self.writers, name);
        let task = tokio::task::spawn_blocking(move || lock_file(&path, wait));
        task.await.map_err(|source| LedgerError::Task {
            context: "taking the SQLite writer lock",
            source,
        })?
    }
}

fn lock_path(database: &Path, writers: Writers, name: LockName) -> PathBuf {
    let mut path = database.as_os_str().to_owned();
    match name {
        LockName::Leader => path.push(".scheduler"),
        LockName::BackfillJob(id) => path.push(format!(".backfill-{id}")),
        LockName::Day(pipeline, scope) if writers == Writers::OnePerDay => {
            path.push(".locks");
            let day = scope
                .day()
                .map_or("full".to_string(), |day| day.to_string());
            return PathBuf::from(path).join(format!("{pipeline}-{day}.lock"));
        }
        LockName::Day(..) => {}
    }
    path.push(".lock");
    PathBuf::from(path)
}

fn lock_file(path: &Path, wait: bool) -> Result<Option<Lock>, LedgerError> {
    let failed = |context, source| LedgerError::LockFile {
        context,
        path: path.display().to_string(),
        source,
    };
    if let Some(folder) = path.parent() {
        std::fs::create_dir_all(folder).map_err(|e| failed("creating the lock folder", e))?;
    }
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| failed("opening the lock file", e))?;
    if wait {
        file.lock()
            .map_err(|e| failed("waiting for the SQLite writer lock", e))?;
        return Ok(Some(Lock::Sqlite(file)));
    }
    match file.try_lock() {
        Ok(()) => Ok(Some(Lock::Sqlite(file))),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(failed("taking the SQLite writer lock", e)),
    }
}

/// Records a committed day's bookkeeping (the run's success, the variable it
/// sets) on the day's own connection, inside its open transaction, so it
/// commits together with the rows.
pub(crate) fn record_commit(
    connection: &Connection,
    commit: &Commit,
    rows: u64,
    model_failure: Option<&str>,
) -> Result<(), LedgerError> {
    for step in shared::commit_bookkeeping(commit, rows, model_failure) {
        step.check(execute(connection, step.statement, &step.params)?)?;
    }
    Ok(())
}

/// Prepares `statement` in SQLite's spelling (cached per connection) and
/// hands it to `work`; any failure is reported with what the statement does.
fn with_statement<T>(
    connection: &Connection,
    statement: &Statement,
    work: impl FnOnce(&mut CachedStatement<'_>) -> rusqlite::Result<T>,
) -> Result<T, LedgerError> {
    connection
        .prepare_cached(&dialect(statement.sql))
        .and_then(|mut prepared| work(&mut prepared))
        .map_err(|source| LedgerError::Sqlite {
            context: statement.context,
            source,
        })
}

fn execute(
    connection: &Connection,
    statement: &'static Statement,
    params: &[Value],
) -> Result<u64, LedgerError> {
    let changed = with_statement(connection, statement, |prepared| {
        prepared.execute(rusqlite::params_from_iter(params))
    })?;
    Ok(changed as u64)
}

fn query(
    connection: &Connection,
    statement: &'static Statement,
    params: &[Value],
) -> Result<Vec<Record>, LedgerError> {
    let rows = with_statement(connection, statement, |prepared| {
        let columns = prepared.column_count();
        let mut rows = prepared.query(rusqlite::params_from_iter(params))?;
        let mut all = Vec::new();
        while let Some(row) = rows.next()? {
            let cells = (0..columns).map(|i| row.get_ref(i).map(cell));
            all.push(cells.collect::<rusqlite::Result<Vec<_>>>()?);
        }
        Ok(all)
    })?;
    let records = rows.into_iter().map(|cells| Record {
        cells,
        context: statement.context,
    });
    Ok(records.collect())
}

/// PostgreSQL's spelling to SQLite's: `ethpipe.runs` → `ethpipe_runs`
/// (SQLite has no schemas) and `$1` → `?1` (SQLite reads `$1` as a name,
/// numbered by first appearance, not by its digits).
fn dialect(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        let next_is_digit = chars.peek().is_some_and(char::is_ascii_digit);
        out.push(if c == '$' && next_is_digit { '?' } else { c });
    }
    out.replace("ethpipe.", "ethpipe_")
}

fn cell(value: ValueRef<'_>) -> Cell {
    match value {
        ValueRef::Null => Cell::Null,
        ValueRef::Integer(n) => Cell::Int(n),
        // The ledger has no REAL columns; kept readable for error messages.
        ValueRef::Real(x) => Cell::Text(x.to_string()),
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
            Cell::Text(String::from_utf8_lossy(bytes).into_owned())
        }
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Int(n) => n.map_or(ToSqlOutput::from(rusqlite::types::Null), ToSqlOutput::from),
            Value::Text(text) => match text {
                Some(text) => ToSqlOutput::from(text.as_str()),
                None => ToSqlOutput::from(rusqlite::types::Null),
            },
            Value::Bool(b) => ToSqlOutput::from(*b),
            Value::Day(day) => match day {
                Some(day) => ToSqlOutput::from(day.to_string()),
                None => ToSqlOutput::from(rusqlite::types::Null),
            },
            Value::Time(instant) => ToSqlOutput::from(timestamp_text(*instant)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ethpipe_core::datasets::TOKEN_TRANSFERS;
    use ethpipe_core::Scope;

    #[tokio::test]
    async fn a_parquet_ledger_locks_each_day_and_an_sqlite_one_the_whole_file() {
        let folder = tempfile::tempdir().expect("temp dir");
        let path = folder.path().join("ledger.db");
        let day = |d: &str| LockName::Day(TOKEN_TRANSFERS, Scope::Day(d.parse().expect("day")));
        let per_day = SqliteBackend::new(&path, Writers::OnePerDay, None);
        let first = per_day.lock(day("2024-05-01"), false).await.expect("lock");
        assert!(first.is_some(), "a free day is taken");
        let second = per_day.lock(day("2024-05-02"), false).await.expect("lock");
        assert!(second.is_some(), "another day is taken beside it");
        let again = per_day.lock(day("2024-05-01"), false).await.expect("lock");
        assert!(again.is_none(), "a held day is refused");
        drop(first);
        let after = per_day.lock(day("2024-05-01"), false).await.expect("lock");
        assert!(after.is_some(), "a released day is free again");

        let per_file = SqliteBackend::new(&path, Writers::OnePerFile, None);
        let held = per_file.lock(day("2024-05-01"), false).await.expect("lock");
        assert!(held.is_some());
        let other = per_file.lock(day("2024-05-03"), false).await.expect("lock");
        assert!(
            other.is_none(),
            "an SQLite store has one writer, whatever the day"
        );
    }

    #[test]
    fn statements_are_rewritten_to_sqlite_spelling() {
        assert_eq!(
            dialect("SELECT $1, $12 FROM ethpipe.runs WHERE ethpipe.runs.id = $2 AND x = '$'"),
            "SELECT ?1, ?12 FROM ethpipe_runs WHERE ethpipe_runs.id = ?2 AND x = '$'"
        );
    }
}
