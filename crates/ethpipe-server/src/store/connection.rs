//! How a read reaches each database, and how it fails.
//!
//! PostgreSQL reads take a pooled connection whose session is read-only
//! (`default_transaction_read_only`) and carries the `statement_timeout`, so
//! a slow query is cut off by the server and nothing a reader runs can
//! write; the data reads run as one statement each, in one round trip
//! ([`PgReader::records`]), and [`PgReader::query`] also opens an explicit
//! `READ ONLY` transaction with a transaction-local timeout. SQLite
//! reads open the file read-only (`query_only` too) on a blocking thread, and
//! a watchdog interrupts a statement that runs past the same timeout.

use std::path::PathBuf;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio_postgres::types::ToSql;

use super::sql::{postgres_record, sqlite_record, Param, Record};

type Cause = Box<dyn std::error::Error + Send + Sync>;

/// Why a read failed; the message is what the HTTP edge shows.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("the query ran past the statement timeout")]
    Timeout(#[source] Cause),
    #[error("{message}")]
    Unavailable {
        message: String,
        #[source]
        source: Cause,
    },
    #[error("{message}")]
    Failed {
        message: String,
        #[source]
        source: Cause,
    },
    /// A column did not hold what its statement promises (a bug).
    #[error("column {column} holds {found}, expected {expected}")]
    Decode {
        column: usize,
        expected: &'static str,
        found: String,
    },
}

impl QueryError {
    fn unavailable(source: impl Into<Cause>) -> QueryError {
        let source = source.into();
        QueryError::Unavailable {
            message: source.to_string(),
            source,
        }
    }
}

pub struct PgReader {
    pub(super) pool: Pool,
    /// Sessions for the window statements of address pages (`transfers.rs`):
    /// read-only, with the statement timeout, and generic plans for their
    /// prepared statements, so each runs as one round trip in its own
    /// implicit transaction.
    pub(super) windows: Pool,
    /// The ledger's reads (runs, triggers): read-only, with the same timeout.
    pub(super) ledger: std::sync::Arc<dyn ethpipe_sinks::Ledger>,
    /// `statement_timeout` in milliseconds, as the text `set_config` takes.
    pub(super) timeout_ms: String,
}

pub struct SqliteReader {
    pub(super) path: PathBuf,
    pub(super) ledger: std::sync::Arc<dyn ethpipe_sinks::Ledger>,
    pub(super) timeout: Duration,
}

impl PgReader {
    /// One statement in its own read-only transaction with the timeout set.
    pub async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, QueryError> {
        let mut client = self.pool.get().await.map_err(pool_error)?;
        let transaction = client
            .build_transaction()
            .read_only(true)
            .start()
            .await
            .map_err(classify)?;
        // set_config(…, true) is SET LOCAL with the value bound as a parameter.
        transaction
            .execute(
                "SELECT set_config('statement_timeout', $1, true)",
                &[&self.timeout_ms],
            )
            .await
            .map_err(classify)?;
        let rows = transaction.query(sql, params).await.map_err(classify)?;
        transaction.commit().await.map_err(classify)?;
        Ok(rows)
    }

    /// A connection of the window pool, held for the windows of one page.
    pub(super) async fn window_reader(&self) -> Result<WindowReader, QueryError> {
        let client = self.windows.get().await.map_err(pool_error)?;
        // Each kept statement holds its plan in the server's memory; there
        // are a dozen windows a year, so this bound only stops a slow leak.
        if client.statement_cache.size() > PREPARED_PER_CONNECTION {
            client.statement_cache.clear();
        }
        Ok(WindowReader { client })
    }

    /// One statement with [`Param`]s, rows as [`Record`]s, in one round
    /// trip: parsed, bound with the parameters' types and run as the unnamed
    /// statement (so always planned with its values, which prunes partitions
    /// at plan time), in its own implicit transaction, which the session
    /// makes read-only and time-limited. The explicit transaction and the
    /// separate prepare of [`PgReader::query`] cost four more round trips,
    /// which were most of a page's database time (docs/architecture.md).
    pub(super) async fn records(
        &self,
        sql: &str,
        params: &[Param],
    ) -> Result<Vec<Record>, QueryError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let bound: Vec<_> = params
            .iter()
            .map(|p| (p.postgres(), p.postgres_type()))
            .collect();
        let typed: Vec<(&(dyn ToSql + Sync), tokio_postgres::types::Type)> = bound
            .iter()
            .map(|(value, ty)| (value.as_ref() as &(dyn ToSql + Sync), ty.clone()))
            .collect();
        let rows = client.query_typed(sql, &typed).await.map_err(classify)?;
        rows.iter()
            .map(|row| postgres_record(row).map_err(classify))
            .collect()
    }
}

/// A pooled session that keeps statements prepared and runs them with
/// their generic plan: made once per session, again only after the tables
/// they read change. For statements whose partitions are fixed by literal
/// bounds in their text, whose planning would otherwise cost more than
/// running them.
pub(super) struct WindowReader {
    client: deadpool_postgres::Object,
}

impl WindowReader {
    /// One statement with [`Param`]s, outside an explicit transaction: its
    /// locks are released as soon as it ends.
    pub(super) async fn records(
        &self,
        sql: &str,
        params: &[Param],
    ) -> Result<Vec<Record>, QueryError> {
        let rows = self.rows(sql, params).await?;
        rows.iter()
            .map(|row| postgres_record(row).map_err(classify))
            .collect()
    }

    pub(super) async fn rows(
        &self,
        sql: &str,
        params: &[Param],
    ) -> Result<Vec<tokio_postgres::Row>, QueryError> {
        let bound: Vec<_> = params.iter().map(Param::postgres).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = bound
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let statement = self.client.prepare_cached(sql).await.map_err(classify)?;
        self.client.query(&statement, &refs).await.map_err(classify)
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
            .map_err(QueryError::unavailable)?;
            connection
                .busy_timeout(Duration::from_secs(5))
                .and_then(|_| connection.pragma_update(None, "query_only", true))
                .map_err(QueryError::unavailable)?;
            // A watchdog interrupts the statement once the timeout has passed.
            let interrupt = connection.get_interrupt_handle();
            let watchdog = tokio::runtime::Handle::current().spawn(async move {
                tokio::time::sleep(timeout).await;
                interrupt.interrupt();
            });
            let result = connection
                .execute_batch("BEGIN")
                .and_then(|()| read(&connection))
                .map_err(classify_sqlite);
            watchdog.abort();
            let _ = connection.execute_batch("COMMIT");
            result
        })
        .await;
        joined.map_err(|e| QueryError::Failed {
            message: format!("a read task failed: {e}"),
            source: Box::new(e),
        })?
    }

    /// One statement (SQLite's spelling) with [`Param`]s, rows as [`Record`]s.
    pub(super) async fn records(
        &self,
        sql: String,
        params: &[Param],
    ) -> Result<Vec<Record>, QueryError> {
        let values: Vec<rusqlite::types::Value> = params.iter().map(Param::sqlite).collect();
        self.read(move |c| {
            let mut statement = c.prepare(&sql)?;
            let columns = statement.column_count();
            let rows = statement.query_map(rusqlite::params_from_iter(values), |row| {
                sqlite_record(row, columns)
            })?;
            rows.collect()
        })
        .await
    }
}

/// Statements a window session keeps prepared before it drops them all.
const PREPARED_PER_CONNECTION: usize = 128;

fn pool_error(error: deadpool_postgres::PoolError) -> QueryError {
    match error {
        deadpool_postgres::PoolError::Backend(e) => QueryError::Unavailable {
            message: ethpipe_sinks::postgres::describe(&e),
            source: Box::new(e),
        },
        other => QueryError::unavailable(other),
    }
}

fn classify_sqlite(error: rusqlite::Error) -> QueryError {
    match error.sqlite_error_code() {
        Some(rusqlite::ErrorCode::OperationInterrupted) => QueryError::Timeout(Box::new(error)),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::CannotOpen) => {
            QueryError::unavailable(error)
        }
        _ => QueryError::Failed {
            message: error.to_string(),
            source: Box::new(error),
        },
    }
}

/// Cancelled by `statement_timeout` is SQLSTATE 57014; connection trouble is
/// "unavailable"; anything else is a bug worth a 500.
pub(super) fn classify(error: tokio_postgres::Error) -> QueryError {
    let message = ethpipe_sinks::postgres::describe(&error);
    let unavailable = match error.code().map(|c| c.code()) {
        Some("57014") => return QueryError::Timeout(Box::new(error)),
        Some(code) => code.starts_with("08") || code.starts_with("57"),
        None => error.is_closed() || error.as_db_error().is_none(),
    };
    let source = Box::new(error);
    if unavailable {
        QueryError::Unavailable { message, source }
    } else {
        QueryError::Failed { message, source }
    }
}
