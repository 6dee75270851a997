//! One writer per (pipeline, day), across processes and machines.
//!
//! PostgreSQL: a session advisory lock on a connection of its own, keyed by a
//! stable hash of the pipeline and day. The server releases it when the
//! connection ends, so a killed process never leaves a stale lock.
//!
//! SQLite: one writer per database file, full stop. An exclusive OS file lock
//! on `<database>.lock` is held while a process writes; a second writer gets a
//! clear error instead of waiting on SQLite's busy timeout.

use std::fs::File;
use std::path::Path;

use ethpipe_core::{Day, Pipeline, Scope};
use tokio_postgres::Client;

use crate::SinkError;

/// A held lock; released on drop.
pub enum Lock {
    Postgres(Client),
    Sqlite(File),
}

/// FNV-1a: stable across builds and platforms (std's hasher is not).
pub(crate) fn lock_key(name: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash as i64
}

pub(crate) fn day_lock_name(pipeline: Pipeline, scope: Scope) -> String {
    match scope.day() {
        Some(day) => format!("ethpipe:{pipeline}:{day}"),
        None => format!("ethpipe:{pipeline}:full"),
    }
}

/// Tries (or, with `wait`, waits) for the advisory lock `name` on `client`.
pub(crate) async fn pg_lock(
    client: Client,
    name: &str,
    wait: bool,
) -> Result<Option<Lock>, SinkError> {
    let key = lock_key(name);
    let fail = |e: tokio_postgres::Error| {
        SinkError::db(
            format!("taking the lock {name}"),
            super::postgres::describe(&e),
        )
    };
    if wait {
        client
            .execute("SELECT pg_advisory_lock($1)", &[&key])
            .await
            .map_err(fail)?;
        return Ok(Some(Lock::Postgres(client)));
    }
    let row = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
        .await
        .map_err(fail)?;
    Ok(row.get::<_, bool>(0).then_some(Lock::Postgres(client)))
}

/// The SQLite writer lock for `database`.
pub(crate) fn sqlite_lock(database: &Path, wait: bool) -> Result<Option<Lock>, SinkError> {
    let mut lock_path = database.as_os_str().to_owned();
    lock_path.push(".lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| {
            SinkError::db(
                format!("opening the lock file {}", Path::new(&lock_path).display()),
                e,
            )
        })?;
    if wait {
        file.lock()
            .map_err(|e| SinkError::db("waiting for the SQLite writer lock", e))?;
        return Ok(Some(Lock::Sqlite(file)));
    }
    match file.try_lock() {
        Ok(()) => Ok(Some(Lock::Sqlite(file))),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(SinkError::db("taking the SQLite writer lock", e))
        }
    }
}

/// For messages: which day a lock guards.
pub fn describe_scope(pipeline: Pipeline, day: Option<Day>) -> String {
    match day {
        Some(day) => format!("{pipeline} {day}"),
        None => format!("{pipeline} full load"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_and_distinct() {
        assert_eq!(
            lock_key("ethpipe:tokens:2024-03-01"),
            lock_key("ethpipe:tokens:2024-03-01")
        );
        assert_ne!(
            lock_key("ethpipe:tokens:2024-03-01"),
            lock_key("ethpipe:tokens:2024-03-02")
        );
        assert_ne!(
            lock_key("ethpipe:tokens:2024-03-01"),
            lock_key("ethpipe:token_transfers:2024-03-01")
        );
        // FNV-1a of the empty string is its offset basis.
        assert_eq!(lock_key("") as u64, 0xcbf2_9ce4_8422_2325);
    }
}
