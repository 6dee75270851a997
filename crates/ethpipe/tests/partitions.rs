//! Day partitions in PostgreSQL, against the real server and the real
//! binary: the swap is atomic for concurrent readers, a kill -9 in each
//! stage of a load (COPY, index build, swap) leaves the old day whole and,
//! after the next run, no stage table, keys stay unique across partitions, and `ethpipe migrate`
//! upgrades a single-table (v1) database in place, resuming after a kill.
//! Each kill waits for its stage to be visible in the server's own views
//! (`pg_stat_progress_copy`, `pg_stat_progress_create_index`, `pg_locks`).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use ethpipe_testkit::fixtures::day_transfers;
use ethpipe_testkit::{Faults, FixtureTransfer, TestDatabase};
use tokio_postgres::Client;

async fn count(client: &Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.expect("count").get(0)
}

/// Polls `sql` (one boolean) until it holds; panics after 60 s naming `what`.
async fn wait_until(client: &Client, sql: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let holds: bool = client.query_one(sql, &[]).await.expect(what).get(0);
        if holds {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Per day of `token_transfers` in [from, to): (rows, checksum of every row),
/// read in one statement, so one snapshot.
async fn day_sums(client: &Client, from: &str, to: &str) -> BTreeMap<String, (i64, String)> {
    let rows = client
        .query(
            &format!(
                "SELECT (block_timestamp AT TIME ZONE 'UTC')::date::text, count(*),
                        md5(string_agg(t::text, '|' ORDER BY transaction_hash, log_index))
                 FROM ethereum.token_transfers t
                 WHERE block_timestamp >= '{from}' AND block_timestamp < '{to}'
                 GROUP BY 1"
            ),
            &[],
        )
        .await
        .expect("day sums");
    rows.iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect()
}

async fn stage_tables(client: &Client) -> i64 {
    count(
        client,
        "SELECT count(*) FROM pg_class WHERE relname LIKE '\\_stage\\_%' OR relname LIKE '\\_next\\_%'",
    )
    .await
}

async fn partitions_of_the_table(client: &Client) -> i64 {
    count(
        client,
        "SELECT count(*) FROM pg_inherits WHERE inhparent = 'ethereum.token_transfers'::regclass",
    )
    .await
}

async fn duplicate_keys(client: &Client) -> i64 {
    count(
        client,
        "SELECT count(*) FROM (SELECT 1 FROM ethereum.token_transfers
         GROUP BY transaction_hash, log_index HAVING count(*) > 1) d",
    )
    .await
}

/// The binary with large pages (the days here are big for a test).
fn ethpipe(harness: &Harness, db: &TestDatabase) -> ethpipe_testkit::Ethpipe {
    harness
        .ethpipe(&db.url)
        .env("ETHPIPE_BIGQUERY_PAGE_SIZE", "5000")
}

async fn run_day(harness: &Harness, db: &TestDatabase, day: &str) {
    ethpipe(harness, db)
        .run(&["run", "token_transfers", "--date", day])
        .await
        .assert_success();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_see_the_old_or_the_new_day_while_days_are_reloaded() {
    let harness = Harness::start().await;
    let db = fresh_database().await;
    let client = db.client().await.expect("client");
    let (before, day, after) = ("2024-05-01", "2024-05-02", "2024-05-03");
    let neighbours: Vec<FixtureTransfer> = day_transfers(before, 300, 1)
        .into_iter()
        .chain(day_transfers(after, 250, 1))
        .collect();
    let versions = [day_transfers(day, 400, 1), day_transfers(day, 520, 2)];
    let serve = |version: usize| {
        let mut rows = neighbours.clone();
        rows.extend(versions[version].iter().cloned());
        harness.bigquery.set_transfers(rows);
    };
    // The expected sums of each version, as the table holds them.
    let mut expected = Vec::new();
    for version in 0..2 {
        serve(version);
        for d in [before, day, after] {
            run_day(&harness, &db, d).await;
        }
        expected.push(day_sums(&client, before, "2024-05-04").await);
    }
    assert_ne!(expected[0][day], expected[1][day]);
    assert_eq!(expected[0][before], expected[1][before]);

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        let expected = expected.clone();
        let reader = db.client().await.expect("reader client");
        tokio::spawn(async move {
            let mut seen = [0u32; 2];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let sums = day_sums(&reader, "2024-05-01", "2024-05-04").await;
                let version = expected
                    .iter()
                    .position(|e| *e == sums)
                    .unwrap_or_else(|| panic!("a reader saw neither complete version: {sums:?}"));
                seen[version] += 1;
            }
            seen
        })
    };
    for round in 0..6 {
        serve(round % 2);
        run_day(&harness, &db, day).await;
        // The neighbours are re-loaded too (same rows): their swaps must
        // not show a reader a missing day either.
        run_day(&harness, &db, if round % 2 == 0 { before } else { after }).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = reader.await.expect("the reader saw only complete days");
    println!(
        "reads of the first version: {}, of the second: {}",
        seen[0], seen[1]
    );
    assert!(
        seen[0] > 0 && seen[1] > 0,
        "the reader ran across the swaps both ways: {seen:?}"
    );
    assert_eq!(duplicate_keys(&client).await, 0);
}

/// Where a kill lands.
#[derive(Debug, Clone, Copy)]
enum Stage {
    Copy,
    IndexBuild,
    Swap,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_killed_in_each_stage_leaves_the_old_day_and_no_stage_table() {
    let harness = Harness::start().await;
    let day = "2024-06-01";
    let old = day_transfers(day, 500, 1);
    for stage in [Stage::Copy, Stage::IndexBuild, Stage::Swap] {
        // The index builds' day is big enough that five builds take a while.
        let rows = match stage {
            Stage::IndexBuild => 60_000,
            Stage::Copy | Stage::Swap => 3_000,
        };
        let new = day_transfers(day, rows, 2);
        let db = fresh_database().await;
        let client = db.client().await.expect("client");
        harness.bigquery.set_faults(Faults::default());
        harness.bigquery.set_transfers(old.clone());
        run_day(&harness, &db, day).await;
        let old_sums = day_sums(&client, day, "2024-06-02").await;

        harness.bigquery.set_transfers(new.clone());
        let mut loader = ethpipe(&harness, &db);
        if let Stage::Copy = stage {
            // Small, slow pages: the COPY stays open for seconds.
            loader = loader.env("ETHPIPE_BIGQUERY_PAGE_SIZE", "100");
            harness.bigquery.set_faults(Faults {
                page_delay: Some(Duration::from_millis(50)),
                ..Faults::default()
            });
        }
        // A reader holding the table keeps the swap waiting for its lock.
        let holder = db.client().await.expect("holder");
        if let Stage::Swap = stage {
            holder
                .batch_execute("BEGIN; LOCK TABLE ethereum.token_transfers IN ACCESS SHARE MODE")
                .await
                .expect("hold the table");
        }
        let mut child = loader
            .command(&["run", "token_transfers", "--date", day])
            .spawn()
            .expect("spawn");
        let (condition, what) = match stage {
            Stage::Copy => (
                "SELECT EXISTS (SELECT 1 FROM pg_stat_progress_copy
                 WHERE datname = current_database() AND tuples_processed > 0)",
                "a COPY in progress",
            ),
            Stage::IndexBuild => (
                "SELECT EXISTS (SELECT 1 FROM pg_stat_progress_create_index
                 WHERE datname = current_database())",
                "an index build in progress",
            ),
            Stage::Swap => (
                "SELECT EXISTS (SELECT 1 FROM pg_locks
                 WHERE relation = 'ethereum.token_transfers'::regclass AND NOT granted
                   AND mode = 'AccessExclusiveLock')",
                "the swap waiting for its lock",
            ),
        };
        wait_until(&client, condition, what).await;
        child.start_kill().expect("kill -9");
        let _ = child.wait().await;
        holder.batch_execute("COMMIT").await.expect("release");
        drop(holder);
        wait_for_other_sessions_to_end(&client).await;
        let context = format!("killed during {stage:?}");
        assert_eq!(
            day_sums(&client, day, "2024-06-02").await,
            old_sums,
            "{context}: the old day is there, whole"
        );
        match stage {
            Stage::Copy => assert_eq!(
                stage_tables(&client).await,
                0,
                "{context}: the day's table died with its transaction"
            ),
            // Once its rows are in, the day's table is committed aside to be
            // built on two sessions: it may be left, but never attached.
            Stage::IndexBuild | Stage::Swap => assert_eq!(
                partitions_of_the_table(&client).await,
                2,
                "{context}: the old day's partition and the default one, nothing else"
            ),
        }
        assert_eq!(
            count(
                &client,
                "SELECT count(*) FROM ethpipe.runs WHERE status = 'success'"
            )
            .await,
            1,
            "{context}: only the first load succeeded"
        );

        harness.bigquery.set_faults(Faults::default());
        run_day(&harness, &db, day).await;
        assert_eq!(
            pg_transfers(&client, "").await,
            sorted(&new),
            "{context}: the next run loads the new day"
        );
        assert_eq!(
            stage_tables(&client).await,
            0,
            "{context}: no stage table after the next run"
        );
        assert_eq!(
            partitions_of_the_table(&client).await,
            2,
            "{context}: one partition for the day, and the default one"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_stay_unique_across_day_partitions() {
    let harness = Harness::start().await;
    let db = fresh_database().await;
    let client = db.client().await.expect("client");
    let days = ["2024-07-01", "2024-07-02", "2024-07-03"];
    let mut rows: Vec<FixtureTransfer> = Vec::new();
    for (i, day) in days.iter().enumerate() {
        rows.extend(day_transfers(day, 200, i as u64 + 1));
    }
    harness.bigquery.set_transfers(rows.clone());
    // Loads and re-loads in any order: every key once.
    for day in days.iter().chain(days.iter().rev()).chain(&days[1..2]) {
        run_day(&harness, &db, day).await;
    }
    assert_eq!(duplicate_keys(&client).await, 0);
    assert_eq!(pg_transfers(&client, "").await, sorted(&rows));

    // A source that puts a row of day 1 (its key and its block) into day 4 too.
    let first = rows[10].clone();
    let moved = FixtureTransfer {
        block_timestamp_micros: day_transfers("2024-07-04", 6, 9)[3].block_timestamp_micros,
        ..first.clone()
    };
    let mut bad = rows.clone();
    bad.extend(day_transfers("2024-07-04", 50, 4));
    bad.push(moved);
    harness.bigquery.set_transfers(bad);
    let refused = ethpipe(&harness, &db)
        .run(&["run", "token_transfers", "--date", "2024-07-04"])
        .await;
    assert_eq!(refused.code, 1, "{}", refused.all());
    assert!(
        refused.all().contains("overlap 2024-07-01's blocks"),
        "the day is refused naming the day it clashes with: {}",
        refused.all()
    );
    assert_eq!(duplicate_keys(&client).await, 0);
    assert_eq!(
        pg_transfers(&client, "").await,
        sorted(&rows),
        "day 4 is not loaded"
    );

    // A day repeating one of its own keys is refused by its partition's key.
    let mut twice = day_transfers("2024-07-05", 30, 5);
    twice.push(twice[7].clone());
    harness.bigquery.set_transfers(twice);
    let refused = ethpipe(&harness, &db)
        .run(&["run", "token_transfers", "--date", "2024-07-05"])
        .await;
    assert_eq!(refused.code, 1, "{}", refused.all());
    assert!(refused.all().contains("duplicate"), "{}", refused.all());
    assert_eq!(duplicate_keys(&client).await, 0);
    assert_eq!(stage_tables(&client).await, 0);
}

/// The days of the v1 table: 8 days of 3,000 rows each, made in SQL, each
/// day with its own blocks, some values NULL.
const V1_ROWS: &str = "
INSERT INTO ethereum.token_transfers
SELECT '0x' || lpad(to_hex(g % 37), 40, '0'),
       CASE WHEN g % 11 = 0 THEN NULL ELSE '0x' || lpad(to_hex(g % 1013), 40, '0') END,
       '0x' || lpad(to_hex(g % 977), 40, '0'),
       CASE WHEN g % 13 = 0 THEN NULL ELSE (g::numeric * 1000000000000000000) END,
       '0x' || md5(g::text) || md5((g / 3)::text),
       g % 3,
       timestamptz '2024-02-01 00:00:00+00' + (g / 3000) * interval '1 day' + (g % 3000) * interval '28 seconds',
       19000000 + g / 2,
       '0x' || md5((g / 2)::text) || md5('b')
FROM generate_series(0, 23999) g";

async fn all_rows(client: &Client) -> Vec<String> {
    client
        .query(
            "SELECT t::text FROM ethereum.token_transfers t ORDER BY transaction_hash, log_index",
            &[],
        )
        .await
        .expect("rows")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_database_is_upgraded_in_place_and_the_upgrade_resumes_after_a_kill() {
    let harness = Harness::start().await;
    let db = fresh_database().await;
    let client = db.client().await.expect("client");
    let applied = ethpipe_sinks::postgres::migrations::apply_until(&client, 10)
        .await
        .expect("the v1 layout");
    assert_eq!(applied, (1..=10).collect::<Vec<u32>>());
    client.batch_execute(V1_ROWS).await.expect("v1 rows");
    let before = all_rows(&client).await;
    assert_eq!(before.len(), 24_000);

    let mut child = harness
        .ethpipe(&db.url)
        .command(&["migrate"])
        .spawn()
        .expect("spawn migrate");
    wait_until(
        &client,
        "SELECT count(*) >= 2 FROM pg_inherits
         WHERE inhparent = to_regclass('ethereum._next_token_transfers')",
        "the first day moved",
    )
    .await;
    // Hold the new table: the next day's swap waits, and is killed waiting.
    let holder = db.client().await.expect("holder");
    holder
        .batch_execute("BEGIN; LOCK TABLE ethereum._next_token_transfers IN ACCESS SHARE MODE")
        .await
        .expect("hold");
    wait_until(
        &client,
        "SELECT EXISTS (SELECT 1 FROM pg_locks
         WHERE relation = 'ethereum._next_token_transfers'::regclass AND NOT granted)",
        "the next day's swap",
    )
    .await;
    let moved = count(
        &client,
        "SELECT count(*) - 1 FROM pg_inherits WHERE inhparent = 'ethereum._next_token_transfers'::regclass",
    )
    .await;
    child.start_kill().expect("kill -9");
    let _ = child.wait().await;
    holder.batch_execute("COMMIT").await.expect("release");
    drop(holder);
    wait_for_other_sessions_to_end(&client).await;
    assert!(
        (1..8).contains(&moved),
        "killed half-way: {moved} of 8 days moved"
    );
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM pg_class WHERE oid = 'ethereum.token_transfers'::regclass AND relkind = 'r'"
        )
        .await,
        1,
        "the old table is in service until the upgrade ends"
    );
    assert_eq!(
        all_rows(&client).await,
        before,
        "readers still see every row"
    );

    let output = harness.ethpipe(&db.url).run(&["migrate"]).await;
    output.assert_success();
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM pg_class WHERE oid = 'ethereum.token_transfers'::regclass AND relkind = 'p'"
        )
        .await,
        1,
        "the table is partitioned"
    );
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'ethereum.token_transfers'::regclass"
        )
        .await,
        9,
        "eight day partitions and the default one"
    );
    assert_eq!(
        all_rows(&client).await,
        before,
        "every row, once, unchanged"
    );
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM ethereum.token_transfers_default"
        )
        .await,
        0
    );
    assert_eq!(
        stage_tables(&client).await,
        0,
        "no stage or half-built table left"
    );
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM ethereum.token_transfers_enriched"
        )
        .await,
        24_000,
        "views over the table are recreated over the new one"
    );
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM ethpipe.schema_migrations WHERE version = 11"
        )
        .await,
        1
    );
    // Migration 12 came after: every text column of the dataset tables, in
    // the parent and in each day, compares byte by byte.
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM pg_attribute a
             JOIN pg_class c ON c.oid = a.attrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             LEFT JOIN pg_collation k ON k.oid = a.attcollation
             WHERE n.nspname = 'ethereum' AND c.relkind IN ('r', 'p') AND a.attnum > 0
               AND a.atttypid = 'text'::regtype AND k.collname IS DISTINCT FROM 'C'"
        )
        .await,
        0,
        "text columns left in the database's collation"
    );

    // Loads work on the upgraded table.
    let day = "2024-02-09";
    let rows = day_transfers(day, 80, 1);
    harness.bigquery.set_transfers(rows.clone());
    run_day(&harness, &db, day).await;
    assert_eq!(
        pg_transfers(&client, &format!("WHERE block_timestamp >= '{day}'")).await,
        sorted(&rows)
    );
    assert_eq!(duplicate_keys(&client).await, 0);
}
