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

use ethpipe_core::{Pipeline, Scope};
use tokio_postgres::Client;

/// A held lock; released on drop.
pub enum Lock {
    Postgres(Client),
    Sqlite(File),
}

/// How long a held lock's connection may take to answer before the lock is
/// taken for lost.
const ALIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

impl Lock {
    /// Whether the lock is still held: its connection still answers. After a
    /// database restart or a killed connection the server has already freed
    /// it, and another process may hold it now.
    pub async fn is_held(&self) -> bool {
        match self {
            Lock::Postgres(client) => {
                let ping = client.simple_query("SELECT 1");
                matches!(tokio::time::timeout(ALIVE_TIMEOUT, ping).await, Ok(Ok(_)))
            }
            Lock::Sqlite(_) => true,
        }
    }

    /// Releases the lock and waits until the server has done so. Dropping
    /// also releases it, but only once the server notices the closed
    /// connection: a process that exits right after its run could otherwise
    /// leave the next process (started at once) to find the day still locked.
    pub async fn release(self) {
        if let Lock::Postgres(client) = self {
            if let Err(error) = client.execute("SELECT pg_advisory_unlock_all()", &[]).await {
                tracing::debug!("releasing an advisory lock: {error}; the server frees it when the connection closes");
            }
        }
    }
}

/// Which lock: one (pipeline, day), or the scheduler's leadership.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LockName {
    Day(Pipeline, Scope),
    Leader,
    BackfillJob(i64),
}

impl LockName {
    /// The advisory lock's name; its key is [`lock_key`] of it.
    pub fn text(self) -> String {
        match self {
            LockName::Day(pipeline, scope) => day_lock_name(pipeline, scope),
            LockName::Leader => "ethpipe:scheduler-leader".to_string(),
            LockName::BackfillJob(id) => format!("ethpipe:backfill-job:{id}"),
        }
    }
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
