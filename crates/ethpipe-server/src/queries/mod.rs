//! Every SQL statement the server runs, for both databases, parameterised.
//!
//! [`Reader`] is the only way in. PostgreSQL reads take a pooled connection,
//! open a `READ ONLY` transaction and set a transaction-local
//! `statement_timeout` before the query, so a slow query is cut off by the
//! server and nothing a reader runs can write. SQLite reads open the file
//! read-only (`query_only` too) on a blocking thread, and a watchdog
//! interrupts a statement that runs past the same timeout.
//!
//! - [`ledger`]: pipelines, runs, steps, log lines, triggers (schema `ethpipe`).
//! - [`tokens`]: search, metadata, daily statistics, top senders/receivers.
//! - [`transfers`]: an address's transfers (keyset pages), a day's top tokens.
//! - [`stats`]: the ledger figures `/metrics` exports.

pub mod ledger;
pub mod stats;
pub mod tokens;
pub mod transfers;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use ethpipe_sinks::{DatabaseUrl, Ledger};
use tokio_postgres::types::ToSql;
use tokio_postgres::NoTls;

/// How long one read may run before the database cancels it.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);
/// PostgreSQL connections kept for reads.
pub const DEFAULT_POOL_SIZE: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("the query ran past the statement timeout")]
    Timeout,
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Failed(String),
}

/// Which database the tables are in; also picks each query's dialect.
pub enum Reader {
    Postgres(PgReader),
    Sqlite(SqliteReader),
}

pub struct PgReader {
    pool: Pool,
    /// The ledger's reads (runs, triggers): read-only, with the same timeout.
    ledger: Arc<dyn Ledger>,
    /// `statement_timeout` in milliseconds, as the text `set_config` takes.
    timeout_ms: String,
}

pub struct SqliteReader {
    path: PathBuf,
    ledger: Arc<dyn Ledger>,
    timeout: Duration,
}

impl Reader {
    /// A reader over the database `url` names. Connects lazily: an
    /// unreachable PostgreSQL shows up as 503s and a failing `/readyz`.
    pub fn open(url: &DatabaseUrl, timeout: Duration, pool_size: usize) -> Result<Reader, String> {
        let ledger =
            ethpipe_sinks::ledger::open_read_only(url, timeout).map_err(|e| e.to_string())?;
        match url {
            DatabaseUrl::Postgres { config, .. } => {
                let mut config = (**config).clone();
                // Defence in depth: even a statement outside our explicit
                // read-only transactions could not write on these connections.
                let options = match config.get_options() {
                    Some(existing) => format!("{existing} -c default_transaction_read_only=on"),
                    None => "-c default_transaction_read_only=on".to_string(),
                };
                config.options(&options);
                config.application_name("ethpipe-server");
                config.connect_timeout(Duration::from_secs(5));
                let manager = Manager::from_config(
                    config,
                    NoTls,
                    ManagerConfig {
                        recycling_method: RecyclingMethod::Fast,
                    },
                );
                let pool = Pool::builder(manager)
                    .max_size(pool_size.max(1))
                    .wait_timeout(Some(Duration::from_secs(10)))
                    .create_timeout(Some(Duration::from_secs(5)))
                    .runtime(deadpool_postgres::Runtime::Tokio1)
                    .build()
                    .map_err(|e| format!("cannot set up the PostgreSQL read pool: {e}"))?;
                Ok(Reader::Postgres(PgReader {
                    pool,
                    ledger,
                    timeout_ms: timeout.as_millis().max(1).to_string(),
                }))
            }
            DatabaseUrl::Sqlite { path } => Ok(Reader::Sqlite(SqliteReader {
                path: path.clone(),
                ledger,
                timeout,
            })),
        }
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self, Reader::Sqlite(_))
    }

    /// The ledger, for reads of runs, steps, logs and triggers.
    pub fn ledger(&self) -> &dyn Ledger {
        match self {
            Reader::Postgres(pg) => &*pg.ledger,
            Reader::Sqlite(lite) => &*lite.ledger,
        }
    }

    /// `SELECT 1` through the same path every read takes (for `/readyz`).
    pub async fn ping(&self) -> Result<(), QueryError> {
        match self {
            Reader::Postgres(pg) => pg.query("SELECT 1", &[]).await.map(|_| ()),
            Reader::Sqlite(lite) => {
                lite.read(|c| c.query_row("SELECT count(*) FROM ethpipe_runs", [], |_| Ok(())))
                    .await
            }
        }
    }
}

impl PgReader {
    /// One statement in its own read-only transaction with the timeout set.
    pub async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, QueryError> {
        let mut client = self.pool.get().await.map_err(|e| {
            QueryError::Unavailable(match e {
                deadpool_postgres::PoolError::Backend(e) => describe(&e),
                other => other.to_string(),
            })
        })?;
        let transaction = client
            .build_transaction()
            .read_only(true)
            .start()
            .await
            .map_err(|e| classify(&e))?;
        // set_config(…, true) is SET LOCAL with the value bound as a parameter.
        transaction
            .execute(
                "SELECT set_config('statement_timeout', $1, true)",
                &[&self.timeout_ms],
            )
            .await
            .map_err(|e| classify(&e))?;
        let rows = transaction
            .query(sql, params)
            .await
            .map_err(|e| classify(&e))?;
        transaction.commit().await.map_err(|e| classify(&e))?;
        Ok(rows)
    }
}

impl SqliteReader {
    /// Runs `read` on a fresh read-only connection in one transaction, on a
    /// blocking thread.
    pub async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, QueryError> {
        let (path, timeout) = (self.path.clone(), self.timeout);
        let joined = tokio::task::spawn_blocking(move || {
            use rusqlite::OpenFlags;
            let connection = rusqlite::Connection::open_with_flags(
                &path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(|e| QueryError::Unavailable(e.to_string()))?;
            let setup = connection
                .busy_timeout(Duration::from_secs(5))
                .and_then(|_| connection.pragma_update(None, "query_only", true));
            setup.map_err(|e| QueryError::Unavailable(e.to_string()))?;
            // A watchdog interrupts the statement once the timeout has passed.
            let interrupt = connection.get_interrupt_handle();
            let watchdog = tokio::runtime::Handle::current().spawn(async move {
                tokio::time::sleep(timeout).await;
                interrupt.interrupt();
            });
            let fail = |e: rusqlite::Error| match e.sqlite_error_code() {
                Some(rusqlite::ErrorCode::OperationInterrupted) => QueryError::Timeout,
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::CannotOpen) => {
                    QueryError::Unavailable(e.to_string())
                }
                _ => QueryError::Failed(e.to_string()),
            };
            let result = connection
                .execute_batch("BEGIN")
                .and_then(|()| read(&connection))
                .map_err(fail);
            watchdog.abort();
            let _ = connection.execute_batch("COMMIT");
            result
        })
        .await;
        joined.map_err(|e| QueryError::Failed(format!("a read task failed: {e}")))?
    }
}

/// Cancelled by `statement_timeout` is SQLSTATE 57014; connection trouble is
/// "unavailable"; anything else is a bug worth a 500.
fn classify(error: &tokio_postgres::Error) -> QueryError {
    match error.code() {
        Some(code) if code.code() == "57014" => QueryError::Timeout,
        Some(code) if code.code().starts_with("08") || code.code().starts_with("57") => {
            QueryError::Unavailable(describe(error))
        }
        Some(_) => QueryError::Failed(describe(error)),
        None if error.is_closed() || error.as_db_error().is_none() => {
            QueryError::Unavailable(describe(error))
        }
        None => QueryError::Failed(describe(error)),
    }
}

fn describe(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// RFC 3339 in UTC with seconds, the one timestamp format the API returns.
pub fn timestamp(instant: chrono::DateTime<chrono::Utc>) -> String {
    instant.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// SQLite stores timestamps as RFC 3339 text; the API re-formats them.
pub(crate) fn sqlite_timestamp(text: Option<String>) -> Option<chrono::DateTime<chrono::Utc>> {
    text.and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// Raw integer amount scaled by the token's decimals, exactly (decimal text).
pub fn scaled(raw: Option<&str>, decimals: Option<&str>) -> Option<String> {
    let decimals: u32 = decimals?.parse().ok()?;
    ethpipe_core::decimal::scale(raw?, decimals)
}

/// A LIKE pattern matching `text` anywhere, with LIKE's wildcards escaped
/// (the pattern is a bound parameter; the escape character is `\`).
pub(crate) fn contains_pattern(text: &str) -> String {
    format!("%{}%", escape_like(text))
}

pub(crate) fn prefix_pattern(text: &str) -> String {
    format!("{}%", escape_like(text))
}

fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(contains_pattern("a%b_c\\"), "%a\\%b\\_c\\\\%");
        assert_eq!(prefix_pattern("0xab"), "0xab%");
    }

    #[test]
    fn amounts_scale_exactly_or_not_at_all() {
        assert_eq!(scaled(Some("1500000"), Some("6")).as_deref(), Some("1.5"));
        assert_eq!(scaled(Some("1500000"), None), None);
        assert_eq!(scaled(Some("1"), Some("300")), None);
        assert_eq!(scaled(None, Some("6")), None);
    }
}
