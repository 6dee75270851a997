//! The ledger figures `/metrics` exports. They are read from the database at
//! scrape time, so they count every run (this process's, the CLI's, other
//! replicas') and survive restarts.

use super::{sqlite_timestamp, QueryError, Reader};

/// Runs of one (pipeline, status) and the rows they wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct RunCount {
    pub pipeline: String,
    pub status: String,
    pub runs: i64,
    pub rows: i64,
}

pub async fn run_counts(reader: &Reader) -> Result<Vec<RunCount>, QueryError> {
    let sql_pg = "SELECT pipeline, status, count(*), coalesce(sum(rows_written), 0)::bigint
                  FROM ethpipe.runs GROUP BY pipeline, status ORDER BY pipeline, status";
    match reader {
        Reader::Postgres(pg) => Ok(pg
            .query(sql_pg, &[])
            .await?
            .iter()
            .map(|r| RunCount {
                pipeline: r.get(0),
                status: r.get(1),
                runs: r.get(2),
                rows: r.get(3),
            })
            .collect()),
        Reader::Sqlite(lite) => {
            lite.read(|c| {
                let mut statement = c.prepare(
                    "SELECT pipeline, status, count(*), coalesce(sum(rows_written), 0)
                     FROM ethpipe_runs GROUP BY pipeline, status ORDER BY pipeline, status",
                )?;
                let rows = statement.query_map([], |r| {
                    Ok(RunCount {
                        pipeline: r.get(0)?,
                        status: r.get(1)?,
                        runs: r.get(2)?,
                        rows: r.get(3)?,
                    })
                })?;
                rows.collect()
            })
            .await
        }
    }
}

/// (pipeline, status, seconds) of every finished run. Runs are per day and
/// pipeline, so even years of history are a few thousand rows.
pub async fn run_durations(reader: &Reader) -> Result<Vec<(String, String, f64)>, QueryError> {
    match reader {
        Reader::Postgres(pg) => Ok(pg
            .query(
                "SELECT pipeline, status, extract(epoch FROM finished_at - started_at)::float8
                 FROM ethpipe.runs WHERE finished_at IS NOT NULL",
                &[],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get::<_, f64>(2).max(0.0)))
            .collect()),
        Reader::Sqlite(lite) => {
            lite.read(|c| {
                let mut statement = c.prepare(
                    "SELECT pipeline, status, started_at, finished_at FROM ethpipe_runs
                     WHERE finished_at IS NOT NULL",
                )?;
                let rows = statement.query_map([], |r| {
                    let started = sqlite_timestamp(r.get(2)?);
                    let finished = sqlite_timestamp(r.get(3)?);
                    let seconds = match (started, finished) {
                        (Some(s), Some(f)) => (f - s).num_microseconds().unwrap_or(0) as f64 / 1e6,
                        _ => 0.0,
                    };
                    Ok((r.get(0)?, r.get(1)?, seconds.max(0.0)))
                })?;
                rows.collect()
            })
            .await
        }
    }
}
