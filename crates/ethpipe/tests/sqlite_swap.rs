//! A SQLite day is swapped in one transaction, including its index work
//! (while the table is small the secondary indexes are dropped and built
//! again after the insert): kill -9 inside that transaction leaves the
//! previous day whole with the same indexes, and the next run completes the day.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use ethpipe_testkit::fixtures::day_transfers;
use rusqlite::{Connection, ErrorCode};

const DAY: &str = "2024-03-01";

/// A model that never ends. Models run inside the day's transaction after
/// the rows are in and the indexes rebuilt, so it holds the run there.
const ENDLESS_MODEL: &str = "CREATE TABLE endless AS
    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n)
    SELECT count(*) AS i FROM n;";

/// token_transfers' indexes as their `CREATE INDEX` statements.
fn index_definitions(path: &Path) -> Vec<String> {
    let connection = Connection::open(path).expect("open sqlite");
    let mut statement = connection
        .prepare(
            "SELECT sql FROM sqlite_master
             WHERE type = 'index' AND tbl_name = 'token_transfers' AND sql IS NOT NULL
             ORDER BY name",
        )
        .expect("prepare");
    let rows = statement.query_map([], |r| r.get(0)).expect("query");
    rows.collect::<Result<_, _>>().expect("rows")
}

/// Whether another connection holds the database's write lock now.
fn write_locked(path: &Path) -> bool {
    let connection = Connection::open(path).expect("open sqlite");
    connection.busy_timeout(Duration::ZERO).expect("timeout");
    match connection.execute_batch("BEGIN IMMEDIATE") {
        Ok(()) => {
            connection.execute_batch("ROLLBACK").expect("rollback");
            false
        }
        Err(e) if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy) => true,
        Err(e) => panic!("probing the write lock: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_inside_the_swap_leaves_the_old_day_and_its_indexes() {
    let harness = Harness::start().await;
    let path = harness.sqlite_path();
    let url = harness.sqlite_url();
    let (old, new) = (day_transfers(DAY, 150, 1), day_transfers(DAY, 190, 2));
    harness.bigquery.set_transfers(old.clone());
    let run = ["run", "token_transfers", "--date", DAY];
    harness.ethpipe(&url).run(&run).await.assert_success();
    let indexes = index_definitions(&path);
    assert_eq!(indexes.len(), 4, "{indexes:?}");

    let dir = harness.dir.path();
    std::fs::create_dir_all(dir.join("models")).expect("models folder");
    std::fs::write(dir.join("models/010_endless.sql"), ENDLESS_MODEL).expect("model");
    let config = dir.join("ethpipe.toml");
    std::fs::write(
        &config,
        "[pipelines.token_transfers]\nmodels = \"models\"\n",
    )
    .expect("config");
    harness.bigquery.set_transfers(new.clone());
    let mut child = harness.ethpipe(&url).command(&run).spawn().expect("spawn");
    // The ledger's own writes hold the lock for a moment; the endless model
    // holds it for good, so a lock seen held across a quarter second is the
    // day's transaction.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut held = 0;
    while held < 5 {
        assert!(Instant::now() < deadline, "the run never reached its swap");
        assert!(
            child.try_wait().expect("child").is_none(),
            "the run ended before the kill"
        );
        held = if write_locked(&path) { held + 1 } else { 0 };
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.start_kill().expect("kill -9");
    assert!(!child.wait().await.expect("wait").success());

    assert_eq!(
        sqlite_transfers(&path),
        on_day(&old, DAY),
        "the old day stays"
    );
    assert_eq!(index_definitions(&path), indexes, "with its indexes");
    let connection = Connection::open(&path).expect("open sqlite");
    let check: String = connection
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity check");
    assert_eq!(check, "ok");

    std::fs::remove_file(&config).expect("drop the endless model");
    harness.ethpipe(&url).run(&run).await.assert_success();
    assert_eq!(
        sqlite_transfers(&path),
        on_day(&new, DAY),
        "the next run completes the day"
    );
    assert_eq!(index_definitions(&path), indexes);
}
