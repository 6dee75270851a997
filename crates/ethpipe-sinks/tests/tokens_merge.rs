//! Two tokens loads merging at once must not leave two rows "found in
//! transfers" for one address (issue 14, fault 10). The test plays the first
//! loader by hand, in the middle of its merge (lock taken, row inserted, not
//! yet committed), and commits only once ethpipe's merge is waiting for it.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use ethpipe_core::datasets::TOKENS;
use ethpipe_core::{Day, Rows, Scope, Slice, Token};
use ethpipe_sinks::{Commit, Database, DatabaseUrl, NewRun};
use ethpipe_testkit::TestDatabase;

const ADDRESS: &str = "0x1111111111111111111111111111111111111111";

fn found(day: &str, block_number: i64) -> Token {
    let day: Day = day.parse().expect("day");
    Token {
        address: ADDRESS.into(),
        symbol: None,
        name: None,
        decimals: None,
        total_supply: None,
        block_timestamp: day.start() + chrono::Duration::hours(1),
        block_number,
        block_hash: format!("0x{}", "ab".repeat(32)),
        found_in_transfers: true,
    }
}

/// Waits (on the condition, bounded) until some session waits for an
/// advisory lock.
async fn until_someone_waits_for_the_merge_lock(client: &tokio_postgres::Client) -> bool {
    for _ in 0..200 {
        let waiting: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
                &[],
            )
            .await
            .expect("pg_locks")
            .get(0);
        if waiting > 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

#[tokio::test]
async fn concurrent_merges_keep_one_found_row_per_address() {
    let pg = TestDatabase::create().await.expect("database");
    let url: DatabaseUrl = pg.url.parse().expect("url");
    let database = Database::open(&url).await.expect("open");

    // The other loader, mid-merge: it holds the merge lock (as every merge
    // takes it first) and has inserted its row for the address, uncommitted.
    let other = pg.client().await.expect("client");
    other.batch_execute("BEGIN").await.expect("begin");
    let first_statement = TOKENS.merge_statements(ethpipe_core::dataset::Dialect::Postgres)[0];
    other
        .batch_execute(first_statement)
        .await
        .expect("merge lock");
    other
        .execute(
            "INSERT INTO ethereum.tokens (address, block_timestamp, block_number, block_hash, found_in_transfers)
             VALUES ($1, $2, 5, $3, true)",
            &[
                &ADDRESS,
                &Utc.with_ymd_and_hms(2024, 3, 1, 1, 0, 0).unwrap(),
                &format!("0x{}", "cd".repeat(32)),
            ],
        )
        .await
        .expect("insert");

    // ethpipe loads another day in which the same token is found.
    let scope = Scope::Day("2024-03-02".parse().expect("day"));
    let run = database
        .ledger()
        .start_run(&NewRun {
            pipeline: TOKENS,
            scope,
            trigger: "manual".into(),
            source: "rpc".into(),
            filter: None,
        })
        .await
        .expect("run");
    let mut writer = database
        .begin_load(&Slice::all(TOKENS, scope))
        .await
        .expect("begin");
    writer
        .write(&Rows::new(TOKENS, vec![found("2024-03-02", 9)]))
        .await
        .expect("write");
    let commit = tokio::spawn(async move {
        writer
            .commit(Commit {
                run,
                source_rows: 1,
                skipped_rows: 0,
                set_variable: None,
                models: Vec::new(),
            })
            .await
    });
    let waited = until_someone_waits_for_the_merge_lock(&pg.client().await.expect("client")).await;
    other.batch_execute("COMMIT").await.expect("commit");
    let committed = commit.await.expect("task");
    assert!(waited, "ethpipe's merge did not wait for the other merge");
    committed.expect("ethpipe's merge commits once the other has");

    let rows: Vec<i64> = pg
        .client()
        .await
        .expect("client")
        .query(
            "SELECT block_number FROM ethereum.tokens WHERE address = $1 AND found_in_transfers",
            &[&ADDRESS],
        )
        .await
        .expect("tokens")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        rows,
        [5],
        "one row found in transfers, at the earliest block"
    );
}

#[tokio::test]
async fn the_database_refuses_a_second_found_row_for_an_address() {
    let pg = TestDatabase::create().await.expect("database");
    let url: DatabaseUrl = pg.url.parse().expect("url");
    Database::open(&url).await.expect("open");
    let client = pg.client().await.expect("client");
    let insert = "INSERT INTO ethereum.tokens (address, block_timestamp, block_number, block_hash, found_in_transfers)
                  VALUES ($1, now(), $2, 'h', true)";
    client
        .execute(insert, &[&ADDRESS, &5i64])
        .await
        .expect("first");
    let second = client.execute(insert, &[&ADDRESS, &9i64]).await;
    assert!(second.is_err(), "a second found row must be refused");
}
