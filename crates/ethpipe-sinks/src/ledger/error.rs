//! What can go wrong in the ledger, with the database's own error kept as the source.

use crate::postgres::describe;
use crate::RunId;

/// A ledger operation that failed. The message names what was being done and
/// the database's reason; [`std::error::Error::source`] is the driver's error.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("cannot connect to {target}: {}", describe(source))]
    PostgresConnect {
        target: String,
        #[source]
        source: tokio_postgres::Error,
    },
    /// No connection could be had from the pool (it timed out or is closed).
    #[error("cannot connect to {target}: {source}")]
    Pool {
        target: String,
        #[source]
        source: deadpool_postgres::PoolError,
    },
    #[error("cannot set up the PostgreSQL ledger pool: {source}")]
    PoolSetup {
        #[source]
        source: deadpool_postgres::BuildError,
    },
    #[error("cannot open {target}: {source}")]
    SqliteOpen {
        target: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{context}: {}", describe(source))]
    Postgres {
        context: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("{context}: {source}")]
    Sqlite {
        context: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    /// The SQLite writer lock files.
    #[error("{context} {path}: {source}")]
    LockFile {
        context: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The run was closed meanwhile (abandoned by another process, failed):
    /// committing its day now would contradict the ledger.
    #[error("run {run} is no longer 'running' in the ledger; not committing")]
    NotRunning { run: RunId },
    #[error("{context}: column {column} holds {found}, not {expected}")]
    Unexpected {
        context: &'static str,
        column: usize,
        found: String,
        expected: &'static str,
    },
    /// A blocking SQLite task panicked or was cancelled.
    #[error("{context}: {source}")]
    Task {
        context: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
}

/// How a caller should treat a failure (the server maps these to 504, 503, 500).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The database cancelled the statement at its time limit.
    Timeout,
    /// The database could not be reached, or went away.
    Unavailable,
    Failed,
}

impl LedgerError {
    pub fn kind(&self) -> FailureKind {
        match self {
            LedgerError::PostgresConnect { .. }
            | LedgerError::Pool { .. }
            | LedgerError::SqliteOpen { .. } => FailureKind::Unavailable,
            LedgerError::Postgres { source, .. } => postgres_kind(source),
            LedgerError::Sqlite { source, .. } => sqlite_kind(source),
            _ => FailureKind::Failed,
        }
    }
}

/// SQLSTATE 57014 is a cancelled statement; class 08 (connection) and the
/// rest of 57 (operator intervention, e.g. a shutdown) mean the server is gone.
fn postgres_kind(error: &tokio_postgres::Error) -> FailureKind {
    let Some(state) = error.code().map(|c| c.code()) else {
        return if error.is_closed() || error.as_db_error().is_none() {
            FailureKind::Unavailable
        } else {
            FailureKind::Failed
        };
    };
    if state == "57014" {
        FailureKind::Timeout
    } else if state.starts_with("08") || state.starts_with("57") {
        FailureKind::Unavailable
    } else {
        FailureKind::Failed
    }
}

fn sqlite_kind(error: &rusqlite::Error) -> FailureKind {
    use rusqlite::ErrorCode;
    match error.sqlite_error_code() {
        Some(ErrorCode::OperationInterrupted) => FailureKind::Timeout,
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked | ErrorCode::CannotOpen) => {
            FailureKind::Unavailable
        }
        _ => FailureKind::Failed,
    }
}
