//! A day read back out of PostgreSQL, for any dataset (`ethpipe export`):
//! rows stream from the server as the consumer takes them, in key order,
//! each written cell by cell into a [`RowSink`].

use chrono::{DateTime, Utc};
use ethpipe_core::dataset::{ColumnType, Dialect};
use ethpipe_core::{Day, Pipeline};
use futures_util::TryStreamExt;
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

use crate::files::{stored_uint, RowSink};
use crate::SinkError;

pub(crate) async fn read_day(
    client: &Client,
    pipeline: Pipeline,
    day: Day,
    out: &mut dyn RowSink,
) -> Result<u64, SinkError> {
    let fail = |e| SinkError::db("reading a day back", e);
    let select: Vec<String> = pipeline
        .columns()
        .iter()
        .map(|column| match column.kind {
            ColumnType::Uint => format!("{0}::text", column.name),
            _ => column.name.to_string(),
        })
        .collect();
    let day_column = pipeline.day_column();
    let sql = format!(
        "SELECT {} FROM {} WHERE {day_column} >= $1 AND {day_column} < $2 ORDER BY {}",
        select.join(", "),
        crate::ddl::table(pipeline, Dialect::Postgres),
        pipeline.key().join(", ")
    );
    let (start, end) = (day.start(), day.end());
    let params: [&(dyn ToSql + Sync); 2] = [&start, &end];
    let rows = client.query_raw(&sql, params).await.map_err(fail)?;
    futures_util::pin_mut!(rows);
    let mut count = 0;
    while let Some(row) = rows.try_next().await.map_err(fail)? {
        for (index, column) in pipeline.columns().iter().enumerate() {
            match column.kind {
                ColumnType::Text => out.text(row.try_get(index).map_err(fail)?),
                ColumnType::Uint => {
                    let text: Option<&str> = row.try_get(index).map_err(fail)?;
                    out.uint(stored_uint(pipeline, column, text)?.as_ref());
                }
                ColumnType::Int => out.int(row.try_get(index).map_err(fail)?),
                ColumnType::Timestamp => {
                    out.timestamp(row.try_get::<_, DateTime<Utc>>(index).map_err(fail)?)
                }
                ColumnType::Bool => out.boolean(row.try_get(index).map_err(fail)?),
            }
        }
        out.end_row()?;
        count += 1;
    }
    Ok(count)
}
