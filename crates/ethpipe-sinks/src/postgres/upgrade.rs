//! The in-place upgrade of a day-replacing dataset's single table (the
//! layout before day partitions) into the partitioned layout.
//!
//! A new partitioned table (`ethereum._next_<dataset>`) is filled day by
//! day, each day copied, indexed and attached in its own transaction (the
//! same steps as a load, `partitions.rs`), so a killed upgrade resumes with
//! the days it has not moved yet. Readers and loads keep using the old table
//! meanwhile. The last transaction locks the old table against writes,
//! compares every day of both tables (row count and a checksum of every
//! row), copies again any day that changed since it was moved, then drops
//! the old table and gives the new one its name (and the views over it). No
//! row is lost or duplicated: the comparison is the proof, and the old table
//! stays until it has passed.

use std::collections::BTreeMap;

use ethpipe_core::dataset::Dialect;
use ethpipe_core::{Day, Pipeline};
use tokio_postgres::Client;

use super::partitions::{self, DayPartition};
use crate::{ddl, SinkError};

/// Told how the upgrade advances (the CLI draws a progress bar).
pub trait UpgradeProgress: Sync {
    /// `days` of `dataset` are to be moved, `done` of them already are.
    fn moving(&self, dataset: &str, days: u64, done: u64) {
        let _ = (dataset, days, done);
    }

    /// One more day moved.
    fn moved(&self, day: Day, rows: i64) {
        let _ = (day, rows);
    }

    fn finished(&self, dataset: &str) {
        let _ = dataset;
    }
}

/// Reports nothing (every command but `ethpipe migrate`).
pub struct Quiet;

impl UpgradeProgress for Quiet {}

/// Where each day-replacing dataset's partitions are recorded (their block
/// ranges keep keys unique across days, `partitions.rs`).
const DAY_PARTITIONS: &str = "
CREATE TABLE IF NOT EXISTS ethpipe.day_partitions (
    dataset     text        NOT NULL,
    day         date        NOT NULL,
    rows        bigint      NOT NULL,
    first_block bigint,
    last_block  bigint,
    loaded_at   timestamptz NOT NULL,
    PRIMARY KEY (dataset, day)
)";

/// Partitions every day-replacing dataset's table that is not yet.
pub async fn partition_tables(
    client: &Client,
    progress: &dyn UpgradeProgress,
) -> Result<(), SinkError> {
    client
        .batch_execute(DAY_PARTITIONS)
        .await
        .map_err(|e| SinkError::db("creating ethpipe.day_partitions", e))?;
    partitions::drop_orphans(client).await?;
    for pipeline in Pipeline::all() {
        if !ddl::is_partitioned(*pipeline) {
            continue;
        }
        let table = ddl::table(*pipeline, Dialect::Postgres);
        match table_kind(client, &table).await? {
            Some('p') => {}
            None => create_parent(client, *pipeline, &table).await?,
            Some(_) => upgrade_table(client, *pipeline, progress).await?,
        }
    }
    Ok(())
}

/// `relkind` of a table (`r` plain, `p` partitioned), `None` if absent.
async fn table_kind(client: &Client, table: &str) -> Result<Option<char>, SinkError> {
    let row = client
        .query_one(
            "SELECT (SELECT relkind FROM pg_class WHERE oid = to_regclass($1))",
            &[&table],
        )
        .await
        .map_err(|e| SinkError::db(format!("looking up {table}"), e))?;
    Ok(row.get::<_, Option<i8>>(0).map(|k| k as u8 as char))
}

/// Runs `work` in its own transaction.
async fn in_transaction<T, Fut>(
    client: &Client,
    what: &'static str,
    work: Fut,
) -> Result<T, SinkError>
where
    Fut: std::future::Future<Output = Result<T, SinkError>>,
{
    client
        .batch_execute("BEGIN")
        .await
        .map_err(|e| SinkError::db(what, e))?;
    match work.await {
        Ok(value) => {
            client
                .batch_execute("COMMIT")
                .await
                .map_err(|e| SinkError::db(what, e))?;
            Ok(value)
        }
        Err(error) => {
            // The error is what matters; a failed rollback leaves the same state.
            let _ = client.batch_execute("ROLLBACK").await;
            Err(error)
        }
    }
}

async fn create_parent(client: &Client, pipeline: Pipeline, parent: &str) -> Result<(), SinkError> {
    let sql = ddl::create_partitioned(pipeline, parent).join(";\n");
    let create = async {
        client
            .batch_execute(&sql)
            .await
            .map_err(|e| SinkError::db(format!("creating {parent}"), e))
    };
    in_transaction(client, "creating the partitioned table", create).await
}

async fn upgrade_table(
    client: &Client,
    pipeline: Pipeline,
    progress: &dyn UpgradeProgress,
) -> Result<(), SinkError> {
    let table = ddl::table(pipeline, Dialect::Postgres);
    let next = format!("ethereum._next_{}", pipeline.name());
    if table_kind(client, &next).await?.is_none() {
        create_parent(client, pipeline, &next).await?;
    }
    let days = days_of(client, pipeline, &table).await?;
    let moved = related_names(client, PARTITIONS_OF, &next).await?;
    let to_move: Vec<Day> = days
        .into_iter()
        .filter(|day| !moved.contains(&DayPartition::new(pipeline, *day).name()))
        .collect();
    let total = (to_move.len() + moved.len()) as u64;
    progress.moving(pipeline.name(), total, moved.len() as u64);
    for day in to_move {
        let copy = copy_day(client, pipeline, day, &table, &next);
        let rows = in_transaction(client, "moving a day", copy).await?;
        progress.moved(day, rows);
    }
    in_transaction(
        client,
        "replacing the table",
        finish(client, pipeline, &table, &next),
    )
    .await?;
    progress.finished(pipeline.name());
    Ok(())
}

/// Copies a day from the old table into a partition of `next` (in the
/// open transaction); returns its rows.
async fn copy_day(
    client: &Client,
    pipeline: Pipeline,
    day: Day,
    from: &str,
    next: &str,
) -> Result<i64, SinkError> {
    let partition = DayPartition::under(pipeline, day, next.to_string());
    let stage = partitions::create_stage(client, &partition).await?;
    partitions::copy_day_rows(client, &partition, from, &stage, None).await?;
    let built = partitions::build(&[client], &partition, &stage, Vec::new())
        .await?
        .built;
    partitions::swap_in(client, &partition, &stage, built).await?;
    Ok(built.rows)
}

/// The days the table holds rows of, found through its day-column index one
/// day at a time (a few hundred index probes, not a scan).
async fn days_of(client: &Client, pipeline: Pipeline, table: &str) -> Result<Vec<Day>, SinkError> {
    let column = pipeline.day_column();
    let day_of = |filter: &str| {
        format!("(SELECT (min({column}) AT TIME ZONE 'UTC')::date FROM {table} {filter})")
    };
    let sql = format!(
        "WITH RECURSIVE d(day) AS (
             SELECT {}
             UNION ALL
             SELECT {} FROM d WHERE d.day IS NOT NULL
         )
         SELECT day FROM d WHERE day IS NOT NULL",
        day_of(""),
        day_of(&format!(
            "WHERE {column} >= ((d.day + 1)::timestamp AT TIME ZONE 'UTC')"
        )),
    );
    let rows = client
        .query(&sql, &[])
        .await
        .map_err(|e| SinkError::db(format!("listing the days of {table}"), e))?;
    Ok(rows
        .iter()
        .map(|row| Day::from_naive(row.get::<_, chrono::NaiveDate>(0)))
        .collect())
}

/// The partitions of the table bound to `$1`.
const PARTITIONS_OF: &str =
    "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = to_regclass($1)";

/// The indexes of the table bound to `$1`.
const INDEXES_OF: &str =
    "SELECT c.relname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
     WHERE i.indrelid = to_regclass($1)";

/// Names of the relations `sql` finds for `table` (bound to `$1`).
async fn related_names(client: &Client, sql: &str, table: &str) -> Result<Vec<String>, SinkError> {
    let rows = client
        .query(sql, &[&table])
        .await
        .map_err(|e| SinkError::db(format!("looking up the relations of {table}"), e))?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// Per day: (rows, checksum of every row's text).
type DaySums = BTreeMap<chrono::NaiveDate, (i64, String)>;

async fn day_sums(client: &Client, pipeline: Pipeline, table: &str) -> Result<DaySums, SinkError> {
    let columns = pipeline.column_names().collect::<Vec<_>>().join(", ");
    let column = pipeline.day_column();
    let rows = client
        .query(
            &format!(
                "SELECT ({column} AT TIME ZONE 'UTC')::date, count(*),
                        sum(hashtextextended(ROW({columns})::text, 0))::text
                 FROM {table} GROUP BY 1"
            ),
            &[],
        )
        .await
        .map_err(|e| SinkError::db(format!("comparing the days of {table}"), e))?;
    Ok(rows
        .iter()
        .map(|row| (row.get(0), (row.get(1), row.get(2))))
        .collect())
}

/// Checks every day of the new table against the old one (writes to the
/// old one are locked out from here to the commit), moves again the days
/// that changed, and puts the new table in the old one's place.
async fn finish(
    client: &Client,
    pipeline: Pipeline,
    table: &str,
    next: &str,
) -> Result<(), SinkError> {
    client
        .batch_execute(&format!("LOCK TABLE {table} IN SHARE MODE"))
        .await
        .map_err(|e| SinkError::db(format!("locking {table}"), e))?;
    let old = day_sums(client, pipeline, table).await?;
    let new = day_sums(client, pipeline, next).await?;
    for (day, sums) in &old {
        if new.get(day) != Some(sums) {
            copy_day(client, pipeline, Day::from_naive(*day), table, next).await?;
        }
    }
    let new = day_sums(client, pipeline, next).await?;
    if new != old {
        return Err(SinkError::Rejected(format!(
            "the partitioned copy of {table} differs from it after moving every day; \
             the old table is kept"
        )));
    }
    let views = dependent_views(client, table).await?;
    let default_indexes = related_names(client, INDEXES_OF, &ddl::default_partition(next)).await?;
    let name = pipeline.name();
    let mut sql: Vec<String> = views
        .iter()
        .map(|(view, _)| format!("DROP VIEW {view}"))
        .collect();
    sql.push(format!("DROP TABLE {table}"));
    sql.push(format!("ALTER TABLE {next} RENAME TO {name}"));
    sql.push(format!(
        "ALTER TABLE {} RENAME TO {name}_default",
        ddl::default_partition(next)
    ));
    let next_name = next.rsplit('.').next().unwrap_or(next);
    sql.extend(pipeline.indexes().iter().map(|index| {
        format!(
            "ALTER INDEX ethereum.{next_name}_{suffix} RENAME TO {name}_{suffix}",
            suffix = index.suffix
        )
    }));
    // The default partition's indexes were named by PostgreSQL after it.
    sql.extend(default_indexes.iter().map(|index| {
        format!(
            "ALTER INDEX ethereum.{index} RENAME TO {}",
            index.replacen(next_name, name, 1)
        )
    }));
    sql.extend(
        views
            .iter()
            .map(|(view, definition)| format!("CREATE VIEW {view} AS {definition}")),
    );
    client
        .batch_execute(&sql.join(";\n"))
        .await
        .map_err(|e| SinkError::db(format!("putting the partitioned {name} in place"), e))
}

/// Views that read the table directly: (name, definition), recreated over
/// the new table.
async fn dependent_views(client: &Client, table: &str) -> Result<Vec<(String, String)>, SinkError> {
    let rows = client
        .query(
            "SELECT DISTINCT v.oid::regclass::text, pg_get_viewdef(v.oid)
             FROM pg_depend d
             JOIN pg_rewrite r ON r.oid = d.objid
             JOIN pg_class v ON v.oid = r.ev_class
             WHERE d.classid = 'pg_rewrite'::regclass
               AND d.refobjid = to_regclass($1) AND v.oid <> to_regclass($1)",
            &[&table],
        )
        .await
        .map_err(|e| SinkError::db(format!("listing the views over {table}"), e))?;
    Ok(rows
        .iter()
        .map(|row| {
            let definition: String = row.get(1);
            (row.get(0), definition.trim_end_matches(';').to_string())
        })
        .collect())
}
