//! A day read back out of SQLite, for any dataset (`ethpipe export`): one
//! query stepped row by row, in key order, each row written cell by cell
//! into a [`RowSink`].

use chrono::{DateTime, Utc};

use ethpipe_core::dataset::{ColumnType, Dialect};
use ethpipe_core::{Day, Pipeline};
use rusqlite::Connection;

use super::timestamp_text;
use crate::files::{stored_uint, RowSink};
use crate::SinkError;

pub(crate) fn read_day(
    connection: &Connection,
    pipeline: Pipeline,
    day: Day,
    out: &mut dyn RowSink,
) -> Result<u64, SinkError> {
    let fail = |e| SinkError::db("reading a day back", e);
    let names: Vec<&str> = pipeline.column_names().collect();
    let day_column = pipeline.day_column();
    let sql = format!(
        "SELECT {} FROM {} WHERE {day_column} >= ?1 AND {day_column} < ?2 ORDER BY {}",
        names.join(", "),
        crate::ddl::table(pipeline, Dialect::Sqlite),
        pipeline.key().join(", ")
    );
    let mut statement = connection.prepare(&sql).map_err(fail)?;
    let mut rows = statement
        .query([timestamp_text(day.start()), timestamp_text(day.end())])
        .map_err(fail)?;
    let mut count = 0;
    while let Some(row) = rows.next().map_err(fail)? {
        for (index, column) in pipeline.columns().iter().enumerate() {
            match column.kind {
                ColumnType::Text => {
                    let text: Option<String> = row.get(index).map_err(fail)?;
                    out.text(text.as_deref());
                }
                ColumnType::Uint => {
                    let text: Option<String> = row.get(index).map_err(fail)?;
                    out.uint(stored_uint(pipeline, column, text.as_deref())?.as_ref());
                }
                ColumnType::Int => out.int(row.get(index).map_err(fail)?),
                ColumnType::Timestamp => {
                    let text: String = row.get(index).map_err(fail)?;
                    let instant = DateTime::parse_from_rfc3339(&text).map_err(|e| {
                        SinkError::Rejected(format!(
                            "{}.{} holds '{text}', not a timestamp: {e}",
                            pipeline.name(),
                            column.name
                        ))
                    })?;
                    out.timestamp(instant.with_timezone(&Utc));
                }
                ColumnType::Bool => out.boolean(row.get(index).map_err(fail)?),
            }
        }
        out.end_row()?;
        count += 1;
    }
    Ok(count)
}
