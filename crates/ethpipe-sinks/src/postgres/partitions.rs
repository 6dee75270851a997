//! Day partitions: how one day of a [`LoadMode::ReplaceDay`] dataset becomes
//! one partition of its table and replaces the day it held before.
//!
//! The day's rows go into a fresh table,
//! `ethereum._stage_<dataset>_<yyyymmdd>_<backend pid>`, whose CHECK
//! constraint matches the day's bounds. Once the rows are in, that table is
//! committed aside (it is no partition, so readers never see it) and two
//! sessions share its [`build`]: statistics, the key and indexes (sorted
//! builds, not row-by-row maintenance of ever-growing B-trees) and the
//! dataset's derived steps, which read the bare table into companion tables
//! ([`companion`]). Building on two sessions overlaps the single-threaded
//! steps with the index sorts: measured on a 1.3 M-row day with two cores,
//! docs/architecture.md ("Day partitions"). Then one transaction swaps it
//! in: lock the parent, drop the old day, rename the new table, attach it
//! (no validation scan: the CHECK already proves the bounds), with the
//! derived rows and the run's record. A kill before that commit leaves the
//! old day; the stage table it may leave behind is dropped by the next
//! load's [`drop_orphans`], which knows it by its prefix and its ended
//! session.
//!
//! The key is unique inside each day (each partition's primary key).
//! PostgreSQL cannot enforce a key across partitions unless it holds the
//! partition column; what keeps it unique is that the rows of a transaction
//! share one block and a block has one timestamp, hence one day. The swap
//! enforces the part that a source could get wrong: no two days share a block
//! ([`check_blocks`]), from each day's block range kept in
//! `ethpipe.day_partitions`.
//!
//! Every parent also has a default partition ([`ddl::default_partition`]).
//!
//! [`LoadMode::ReplaceDay`]: ethpipe_core::dataset::LoadMode::ReplaceDay

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ethpipe_core::dataset::Dialect;
use ethpipe_core::{Day, Pipeline, TokenFilter};
use futures_util::future::join_all;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use crate::ddl;
use crate::SinkError;

/// Prefix of a day's table until it is swapped in; [`drop_orphans`] knows
/// stage tables by it.
pub const STAGE_PREFIX: &str = "_stage_";

/// How long one attempt at the swap waits for its locks. A reader holding
/// the table (a long report) makes the swap wait; meanwhile new readers
/// queue behind the swap's lock request, so each attempt is kept short and
/// retried rather than left to stall every reader behind a long one.
const LOCK_TIMEOUT: &str = "200ms";

/// Retries of the swap stop after this long and the day fails (and is
/// retried by the next run); the loaded rows are rolled back.
const SWAP_PATIENCE: Duration = Duration::from_secs(300);

/// Sort memory of each build session's index builds. Smaller than
/// PostgreSQL's default (64 MB): each index is sorted in runs that fit the
/// CPU's caches and merged, which took less CPU than one large sort, and
/// leaves no room for parallel workers (PostgreSQL wants 32 MB for each):
/// the two sessions already keep two cores busy, and workers only added
/// processes competing for them. On the bench's day, alternating loads:
/// 13.3–14.1 s with 8–32 MB and no workers, 14.1–14.8 s with 256 MB and
/// workers (docs/architecture.md, "Day partitions").
const INDEX_BUILD_MEMORY: &str = "16MB";

/// One day of one dataset's partitioned table.
#[derive(Debug, Clone)]
pub struct DayPartition {
    pipeline: Pipeline,
    day: Day,
    /// The partitioned parent, schema-qualified: the dataset's table, or the
    /// table being built by the in-place upgrade.
    parent: String,
}

/// The block numbers a day's rows span (`None` for a day without rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockRange {
    pub first: i64,
    pub last: i64,
}

/// What a built day table holds, for the swap's checks and the record.
#[derive(Debug, Clone, Copy)]
pub struct BuiltDay {
    pub rows: i64,
    pub blocks: Option<BlockRange>,
}

impl DayPartition {
    pub fn new(pipeline: Pipeline, day: Day) -> DayPartition {
        DayPartition::under(pipeline, day, ddl::table(pipeline, Dialect::Postgres))
    }

    /// A day of another parent than the dataset's table (the upgrade).
    pub fn under(pipeline: Pipeline, day: Day, parent: String) -> DayPartition {
        DayPartition {
            pipeline,
            day,
            parent,
        }
    }

    /// `<dataset>_<yyyymmdd>`, in schema `ethereum`.
    pub fn name(&self) -> String {
        format!(
            "{}_{}",
            self.pipeline.name(),
            self.day.naive().format("%Y%m%d")
        )
    }

    pub fn day(&self) -> Day {
        self.day
    }

    fn stage_name(&self, backend_pid: i32) -> String {
        format!("{STAGE_PREFIX}{}_{backend_pid}", self.name())
    }

    fn default_partition(&self) -> String {
        ddl::default_partition(&self.parent)
    }
}

/// Creates the empty table for a day's rows (in the open transaction) and
/// returns its schema-qualified name.
pub async fn create_stage(client: &Client, day: &DayPartition) -> Result<String, SinkError> {
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .map_err(|e| SinkError::db("reading the session's id", e))?
        .get(0);
    let stage = format!("ethereum.{}", day.stage_name(pid));
    client
        .batch_execute(&ddl::create_day_table(day.pipeline, &stage, day.day))
        .await
        .map_err(|e| SinkError::db(format!("creating the table for {}", day.day), e))?;
    Ok(stage)
}

/// Copies the day's rows of every token outside `filter` into the stage
/// table, so that a filtered load replaces only its tokens' rows when the
/// stage becomes the day. Returns how many rows were kept.
pub async fn keep_others(
    client: &Client,
    day: &DayPartition,
    stage: &str,
    filter: &TokenFilter,
) -> Result<u64, SinkError> {
    copy_day_rows(client, day, &day.parent, stage, Some(filter)).await
}

/// Copies the day's rows of `from` into the stage table (in the open
/// transaction), leaving out `except`'s tokens if given. Returns the rows
/// copied.
pub async fn copy_day_rows(
    client: &Client,
    day: &DayPartition,
    from: &str,
    stage: &str,
    except: Option<&TokenFilter>,
) -> Result<u64, SinkError> {
    let column = day.pipeline.day_column();
    let columns = day.pipeline.column_names().collect::<Vec<_>>().join(", ");
    let tokens = except.map(|f| f.addresses().to_vec());
    client
        .execute(
            &format!(
                "INSERT INTO {stage} ({columns}) SELECT {columns} FROM {from}
                 WHERE {column} >= $1 AND {column} < $2
                   AND (CAST($3 AS text[]) IS NULL OR {} <> ALL($3))",
                day.pipeline.filter_column()
            ),
            &[&day.day.start(), &day.day.end(), &tokens],
        )
        .await
        .map_err(|e| SinkError::db(format!("copying {}'s rows from {from}", day.day), e))
}

/// Work on a day's table that runs on any free session, alongside the
/// built-in work of [`build`] (statistics, key, indexes, block range): a
/// dataset's derived step that reads the day, say.
pub struct BuildTask {
    /// The ledger step the task belongs to.
    pub step: &'static str,
    pub sql: String,
}

/// When one task of a build ran.
#[derive(Debug, Clone)]
pub struct TaskRun {
    pub step: &'static str,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
}

/// What a build did: what the table holds, and when each task ran.
pub struct Build {
    pub built: BuiltDay,
    pub runs: Vec<TaskRun>,
}

enum Task {
    Statement(BuildTask),
    /// Reads the row count and block range into [`BuiltDay`].
    ReadRange,
}

/// Builds the stage table's key and indexes, gathers its statistics, runs
/// `extra` and reads what the table holds, spreading the work over
/// `sessions`: each takes the next task when it is free. A duplicate key in
/// the day fails the build here.
///
/// With more than one session the stage table must be committed (the other
/// sessions cannot see it otherwise); with one, everything runs in the
/// caller's open transaction.
pub async fn build(
    sessions: &[&Client],
    day: &DayPartition,
    stage: &str,
    extra: Vec<BuildTask>,
) -> Result<Build, SinkError> {
    for client in sessions {
        client
            .batch_execute(&format!(
                "SET maintenance_work_mem = '{INDEX_BUILD_MEMORY}';
                 SET max_parallel_maintenance_workers = 0"
            ))
            .await
            .map_err(|e| SinkError::db("setting the index build memory", e))?;
    }
    let tasks = build_tasks(day, stage, extra);
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let work = sessions.iter().map(|client| async {
        let mut done = Vec::new();
        while !failed.load(Ordering::Relaxed) {
            let Some(task) = tasks.get(next.fetch_add(1, Ordering::Relaxed)) else {
                break;
            };
            let started = Utc::now();
            let outcome = run_task(client, day, stage, task).await;
            if outcome.is_err() {
                failed.store(true, Ordering::Relaxed);
            }
            done.push((outcome, started, Utc::now(), task));
        }
        done
    });
    // Every session finishes the statement it is in before this returns, so
    // a failed build leaves nothing running on the table.
    let mut built = None;
    let mut runs = Vec::new();
    for (outcome, started, finished, task) in join_all(work).await.into_iter().flatten() {
        if let Some(range) = outcome? {
            built = Some(range);
        }
        let step = match task {
            Task::Statement(statement) => statement.step,
            Task::ReadRange => "index",
        };
        runs.push(TaskRun {
            step,
            started,
            finished,
        });
    }
    let built = built.ok_or_else(|| {
        SinkError::Rejected(format!("the build of {} did not read its rows", day.day))
    })?;
    sessions[0]
        .batch_execute(&ddl::day_table_key(stage))
        .await
        .map_err(|e| SinkError::db(format!("making {}'s key", day.day), e))?;
    Ok(Build { built, runs })
}

/// ANALYZE first: it conflicts with the index builds' locks, so it runs
/// while the other session does `extra` (which reads only). Then the key
/// and the widest indexes, whose sorts take longest, so the short ones fill
/// the end.
fn build_tasks(day: &DayPartition, stage: &str, extra: Vec<BuildTask>) -> Vec<Task> {
    let statement = |step, sql| Task::Statement(BuildTask { step, sql });
    let mut indexes = ddl::day_table_indexes(day.pipeline, stage);
    let key = indexes.remove(0);
    let mut widths: Vec<(usize, String)> = day
        .pipeline
        .indexes()
        .iter()
        .map(|index| index.columns.len())
        .zip(indexes)
        .collect();
    widths.sort_by_key(|(columns, _)| std::cmp::Reverse(*columns));
    let analyzed = analyzed_columns(day.pipeline).join(", ");
    let mut tasks = vec![statement("index", format!("ANALYZE {stage} ({analyzed})"))];
    tasks.extend(extra.into_iter().map(Task::Statement));
    tasks.push(statement("index", key));
    tasks.extend(widths.into_iter().map(|(_, sql)| statement("index", sql)));
    tasks.push(Task::ReadRange);
    tasks
}

/// The columns a day's `ANALYZE` gathers statistics on: those of the key
/// and the indexes, the ones queries select rows by. Sampling the rest (a
/// transfer's value and block hash) cost ANALYZE's fixed sample as much
/// again on a small day, for estimates no index choice depends on.
fn analyzed_columns(pipeline: Pipeline) -> Vec<&'static str> {
    let mut columns: Vec<&'static str> = pipeline.key().to_vec();
    for index in pipeline.indexes() {
        for column in index.columns {
            if !columns.contains(column) {
                columns.push(column);
            }
        }
    }
    columns
}

async fn run_task(
    client: &Client,
    day: &DayPartition,
    stage: &str,
    task: &Task,
) -> Result<Option<BuiltDay>, SinkError> {
    match task {
        Task::Statement(task) => {
            client
                .batch_execute(&task.sql)
                .await
                .map_err(|e| match e.as_db_error() {
                    Some(db) if *db.code() == SqlState::UNIQUE_VIOLATION => {
                        crate::duplicate_key(day.pipeline, db.detail().unwrap_or(db.message()))
                    }
                    _ => SinkError::db(format!("building {} ({})", day.day, task.step), e),
                })?;
            Ok(None)
        }
        Task::ReadRange => read_range(client, day, stage).await.map(Some),
    }
}

async fn read_range(
    client: &Client,
    day: &DayPartition,
    stage: &str,
) -> Result<BuiltDay, SinkError> {
    let block = day.pipeline.block_column();
    let row = client
        .query_one(
            &format!("SELECT count(*), min({block}), max({block}) FROM {stage}"),
            &[],
        )
        .await
        .map_err(|e| SinkError::db(format!("reading {}'s block range", day.day), e))?;
    let blocks = match (row.get::<_, Option<i64>>(1), row.get::<_, Option<i64>>(2)) {
        (Some(first), Some(last)) => Some(BlockRange { first, last }),
        _ => None,
    };
    Ok(BuiltDay {
        rows: row.get(0),
        blocks,
    })
}

/// A companion table of a stage table (`what` names it), known to
/// [`drop_orphans`] by the same prefix and session id.
pub fn companion(stage: &str, what: &str) -> String {
    stage.replacen(STAGE_PREFIX, &format!("{STAGE_PREFIX}{what}_"), 1)
}

/// Drops a day's stage table and its companions after a failed load whose
/// stage table was already committed. Best effort: what is left is an
/// orphan that [`drop_orphans`] removes later.
pub async fn discard(client: &Client, tables: &[String]) {
    let sql = format!("ROLLBACK; DROP TABLE IF EXISTS {}", tables.join(", "));
    if let Err(error) = client.batch_execute(&sql).await {
        tracing::warn!("could not drop the failed day's tables: {error}");
    }
}

/// Replaces the day's partition with the stage table, in the open
/// transaction. Waits for the locks at most [`LOCK_TIMEOUT`] per attempt and
/// retries (rolling back to a savepoint, so the built day is kept) until
/// [`SWAP_PATIENCE`] runs out.
pub async fn swap_in(
    client: &Client,
    day: &DayPartition,
    stage: &str,
    built: BuiltDay,
) -> Result<(), SinkError> {
    let deadline = Instant::now() + SWAP_PATIENCE;
    let mut pause = Duration::from_millis(20);
    let savepoint = |sql: &'static str| async move {
        client
            .batch_execute(sql)
            .await
            .map_err(|e| SinkError::db("swapping the day in", e))
    };
    loop {
        savepoint("SAVEPOINT day_swap").await?;
        match attempt_swap(client, day, stage, built).await? {
            Attempt::Done => return savepoint("RELEASE SAVEPOINT day_swap").await,
            Attempt::Busy if Instant::now() < deadline => {
                savepoint("ROLLBACK TO SAVEPOINT day_swap").await?;
                tracing::debug!("{}: the table is busy, retrying the swap", day.day);
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            Attempt::Busy => {
                return Err(SinkError::Rejected(format!(
                    "could not swap {} in: readers held {} for {}s",
                    day.day,
                    day.parent,
                    SWAP_PATIENCE.as_secs()
                )))
            }
        }
    }
}

enum Attempt {
    Done,
    /// A lock was not granted within [`LOCK_TIMEOUT`].
    Busy,
}

async fn attempt_swap(
    client: &Client,
    day: &DayPartition,
    stage: &str,
    built: BuiltDay,
) -> Result<Attempt, SinkError> {
    let parent = &day.parent;
    // The parent first, as every reader locks it first: one fixed order.
    let locked = client
        .batch_execute(&format!(
            "SET LOCAL lock_timeout = '{LOCK_TIMEOUT}';
             LOCK TABLE {parent} IN ACCESS EXCLUSIVE MODE"
        ))
        .await;
    if let Some(attempt) = busy_or_fail(locked, "locking the table for the swap")? {
        return Ok(attempt);
    }
    check_blocks(client, day, built.blocks).await?;
    let replaced = client.batch_execute(&replace_statements(day, stage)).await;
    if let Some(attempt) = busy_or_fail(replaced, "swapping the day in")? {
        return Ok(attempt);
    }
    record(client, day, built).await?;
    client
        .batch_execute("SET LOCAL lock_timeout = 0")
        .await
        .map_err(|e| SinkError::db("swapping the day in", e))?;
    Ok(Attempt::Done)
}

/// `Ok(None)` when the statement succeeded, `Ok(Some(Busy))` when it gave up
/// waiting for a lock.
fn busy_or_fail(
    result: Result<(), tokio_postgres::Error>,
    context: &'static str,
) -> Result<Option<Attempt>, SinkError> {
    match result {
        Ok(()) => Ok(None),
        Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => Ok(Some(Attempt::Busy)),
        Err(e) => Err(SinkError::db(context, e)),
    }
}

/// Drop the old day (and any of its rows that reached the default
/// partition), give the stage table the day's names, attach it.
fn replace_statements(day: &DayPartition, stage: &str) -> String {
    let name = day.name();
    let stage_name = stage.rsplit('.').next().unwrap_or(stage);
    let column = day.pipeline.day_column();
    let (start, end) = ddl::day_bounds(day.day);
    let mut sql = vec![
        format!("DROP TABLE IF EXISTS ethereum.{name}"),
        format!(
            "DELETE FROM {} WHERE {column} >= {start} AND {column} < {end}",
            day.default_partition()
        ),
        format!("ALTER TABLE {stage} RENAME TO {name}"),
        format!("ALTER TABLE ethereum.{name} RENAME CONSTRAINT {stage_name}_pkey TO {name}_pkey"),
        format!(
            "ALTER TABLE ethereum.{name} RENAME CONSTRAINT {stage_name}_bounds TO {name}_bounds"
        ),
    ];
    sql.extend(day.pipeline.indexes().iter().map(|index| {
        format!(
            "ALTER INDEX ethereum.{stage_name}_{suffix} RENAME TO {name}_{suffix}",
            suffix = index.suffix
        )
    }));
    sql.push(format!(
        "ALTER TABLE {} ATTACH PARTITION ethereum.{name} FOR VALUES FROM ({start}) TO ({end})",
        day.parent
    ));
    sql.join(";\n")
}

/// Refuses a day whose blocks overlap another day's: a block has one
/// timestamp, so a source that puts one block in two days is wrong, and such
/// a day could repeat another day's keys.
async fn check_blocks(
    client: &Client,
    day: &DayPartition,
    blocks: Option<BlockRange>,
) -> Result<(), SinkError> {
    let Some(blocks) = blocks else {
        return Ok(());
    };
    let clash = client
        .query_opt(
            "SELECT day, first_block, last_block FROM ethpipe.day_partitions
             WHERE dataset = $1 AND day <> $2 AND first_block <= $4 AND last_block >= $3
             ORDER BY day LIMIT 1",
            &[
                &day.pipeline.name(),
                &day.day.naive(),
                &blocks.first,
                &blocks.last,
            ],
        )
        .await
        .map_err(|e| SinkError::db("checking the day's block range", e))?;
    match clash {
        None => Ok(()),
        Some(row) => Err(SinkError::Rejected(format!(
            "{} of {} spans blocks {}..={}, which overlap {}'s blocks {}..={}: a block belongs to one day, \
             so the source is inconsistent (its rows could repeat keys of that day)",
            day.day,
            day.pipeline.name(),
            blocks.first,
            blocks.last,
            row.get::<_, chrono::NaiveDate>(0),
            row.get::<_, i64>(1),
            row.get::<_, i64>(2)
        ))),
    }
}

async fn record(client: &Client, day: &DayPartition, built: BuiltDay) -> Result<(), SinkError> {
    let (first, last) = built
        .blocks
        .map_or((None, None), |b| (Some(b.first), Some(b.last)));
    client
        .execute(
            "INSERT INTO ethpipe.day_partitions (dataset, day, rows, first_block, last_block, loaded_at)
             VALUES ($1, $2, $3, $4, $5, now())
             ON CONFLICT (dataset, day) DO UPDATE
             SET rows = excluded.rows, first_block = excluded.first_block,
                 last_block = excluded.last_block, loaded_at = excluded.loaded_at",
            &[
                &day.pipeline.name(),
                &day.day.naive(),
                &built.rows,
                &first,
                &last,
            ],
        )
        .await
        .map_err(|e| SinkError::db("recording the day's partition", e))?;
    Ok(())
}

/// Drops stage tables whose session has ended (a stage table lives inside
/// its load's transaction, so normally none is ever left). Returns their
/// names.
pub async fn drop_orphans(client: &Client) -> Result<Vec<String>, SinkError> {
    let fail = |e| SinkError::db("dropping stage tables left by ended sessions", e);
    let rows = client
        .query(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'ethereum' AND c.relkind = 'r' AND c.relname LIKE $1
               AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a
                               WHERE c.relname LIKE '%\\_' || a.pid)",
            &[&format!("{}%", STAGE_PREFIX.replace('_', "\\_"))],
        )
        .await
        .map_err(fail)?;
    let mut dropped = Vec::new();
    for row in rows {
        let name: String = row.get(0);
        client
            .batch_execute(&format!("DROP TABLE IF EXISTS ethereum.\"{name}\""))
            .await
            .map_err(fail)?;
        dropped.push(name);
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ethpipe_core::datasets::TOKEN_TRANSFERS;

    #[test]
    fn the_swap_drops_the_old_day_and_attaches_the_new_one_under_the_days_names() {
        let day = DayPartition::new(TOKEN_TRANSFERS, "2024-03-01".parse().unwrap());
        assert_eq!(day.name(), "token_transfers_20240301");
        let stage = format!("ethereum.{}", day.stage_name(42));
        assert_eq!(stage, "ethereum._stage_token_transfers_20240301_42");
        let sql = replace_statements(&day, &stage);
        let statements: Vec<&str> = sql.split(";\n").collect();
        assert_eq!(
            statements[0],
            "DROP TABLE IF EXISTS ethereum.token_transfers_20240301"
        );
        assert!(statements[1].starts_with("DELETE FROM ethereum.token_transfers_default"));
        assert!(sql.contains(
            "ALTER INDEX ethereum._stage_token_transfers_20240301_42_from_idx RENAME TO token_transfers_20240301_from_idx"
        ));
        assert_eq!(
            *statements.last().unwrap(),
            "ALTER TABLE ethereum.token_transfers ATTACH PARTITION ethereum.token_transfers_20240301 \
             FOR VALUES FROM ('2024-03-01 00:00:00+00') TO ('2024-03-02 00:00:00+00')"
        );
    }
}
