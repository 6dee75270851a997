//! Where a BigQuery result page becomes rows: cells are located by the
//! response's schema (not by position), every value is validated, and the
//! dataset turns them into rows: table rows directly, `logs` rows through the
//! dataset's log decoder (the same one the JSON-RPC source uses).

use ethpipe_core::cells::bigquery_timestamp;
use ethpipe_core::dataset::{BigQueryExtraction, DecodedLogs};
use ethpipe_core::evm::Log;
use ethpipe_core::validate::{self, RowError};
use ethpipe_core::{Pipeline, SourceError};
use gcp_bigquery_client::model::table_row::TableRow;
use gcp_bigquery_client::model::table_schema::TableSchema;
use serde_json::Value;

use super::query::columns;

pub use ethpipe_core::cells::bigquery_timestamp as timestamp;

/// Positions of the expected columns within the response's rows.
#[derive(Debug, Clone)]
pub struct ColumnMap {
    positions: Vec<usize>,
}

impl ColumnMap {
    pub fn new(pipeline: Pipeline, schema: Option<&TableSchema>) -> Result<ColumnMap, SourceError> {
        let names = columns(pipeline);
        let fields: Vec<&str> = schema
            .and_then(|s| s.fields.as_ref())
            .map(|fields| fields.iter().map(|f| f.name.as_str()).collect())
            .unwrap_or_default();
        let positions = names
            .iter()
            .map(|name| {
                fields.iter().position(|f| f == name).ok_or_else(|| {
                    SourceError::Config(format!(
                        "the BigQuery result has no column '{name}' (is --bigquery-dataset a crypto_ethereum copy?)"
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(ColumnMap { positions })
    }

    /// The scalar cells of one row in the expected column order.
    fn cells<'a>(
        &self,
        row: &'a TableRow,
        row_number: u64,
    ) -> Result<Vec<Option<&'a str>>, RowError> {
        (0..self.positions.len())
            .map(|index| scalar(self.value(row, index), row_number))
            .collect()
    }

    fn value<'a>(&self, row: &'a TableRow, index: usize) -> Option<&'a Value> {
        let columns = row.columns.as_deref().unwrap_or_default();
        columns
            .get(self.positions[index])
            .and_then(|c| c.value.as_ref())
    }
}

fn scalar(value: Option<&Value>, row_number: u64) -> Result<Option<&str>, RowError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.as_str())),
        Some(_) => Err(RowError::new(
            row_number,
            "cell",
            None,
            "is not a BigQuery scalar (a JSON string or null)",
        )),
    }
}

/// A REPEATED STRING cell: `[{"v": "…"}, …]`.
fn repeated(value: Option<&Value>, row_number: u64) -> Result<Vec<String>, RowError> {
    let bad = || {
        RowError::new(
            row_number,
            "topics",
            None,
            "is not a BigQuery repeated string ([{\"v\": …}, …])",
        )
    };
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item.get("v") {
                Some(Value::String(text)) => Ok(text.clone()),
                _ => Err(bad()),
            })
            .collect(),
        Some(_) => Err(bad()),
    }
}

/// Parses one page; `first_row` is the 1-based number of the page's first row
/// in the whole result, so errors name the row. Logs the dataset's rules
/// skipped come back with the rows.
pub fn parse_page(
    pipeline: Pipeline,
    columns: &ColumnMap,
    rows: &[TableRow],
    first_row: u64,
) -> Result<DecodedLogs, SourceError> {
    let numbered = rows.iter().zip(first_row..);
    match pipeline.bigquery() {
        BigQueryExtraction::Table { .. } => {
            let cells = numbered
                .map(|(row, n)| columns.cells(row, n))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(DecodedLogs {
                rows: pipeline.parse_bigquery(&cells, first_row)?,
                skipped: Vec::new(),
            })
        }
        BigQueryExtraction::Logs { .. } => {
            let logs = numbered
                .map(|(row, n)| log_from_cells(columns, row, n))
                .collect::<Result<Vec<_>, _>>()?;
            let views: Vec<_> = logs.iter().map(Log::view).collect();
            pipeline.decode_logs(&views).map_err(|e| {
                let message = format!("BigQuery sent a malformed log: {e}");
                if e.is_permanent() {
                    SourceError::Config(message)
                } else {
                    SourceError::Transient(message)
                }
            })
        }
    }
}

/// One `crypto_ethereum.logs` row in [`super::query::LOG_COLUMNS`] order.
pub fn log_from_cells(columns: &ColumnMap, row: &TableRow, n: u64) -> Result<Log, RowError> {
    let text = |index: usize| scalar(columns.value(row, index), n);
    Ok(Log {
        address: validate::address(n, "address", text(0)?)?,
        topics: repeated(columns.value(row, 1), n)?,
        data: text(2)?.map(str::to_string),
        transaction_hash: validate::hash(n, "transaction_hash", text(3)?)?,
        log_index: validate::int64(n, "log_index", text(4)?)?,
        block_timestamp: bigquery_timestamp(n, "block_timestamp", text(5)?)?,
        block_number: validate::int64(n, "block_number", text(6)?)?,
        block_hash: validate::hash(n, "block_hash", text(7)?)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ethpipe_core::datasets::ERC1155_TRANSFERS;
    use gcp_bigquery_client::model::field_type::FieldType;
    use gcp_bigquery_client::model::table_cell::TableCell;
    use gcp_bigquery_client::model::table_field_schema::TableFieldSchema;
    use serde_json::json;

    #[test]
    fn a_logs_row_with_repeated_topics_reads_as_a_log() {
        let schema = TableSchema::new(
            super::super::query::LOG_COLUMNS
                .iter()
                .map(|name| TableFieldSchema::new(name, FieldType::String))
                .collect(),
        );
        let columns = ColumnMap::new(ERC1155_TRANSFERS, Some(&schema)).unwrap();
        let hash = format!("0x{}", "ab".repeat(32));
        let cell = |v: Value| TableCell { value: Some(v) };
        let row = TableRow {
            columns: Some(vec![
                cell(json!(format!("0x{}", "11".repeat(20)))),
                cell(json!([{"v": "0xaa"}, {"v": "0xbb"}])),
                cell(json!("0x")),
                cell(json!(hash)),
                cell(json!("4")),
                cell(json!("1709251200000000")),
                cell(json!("19000000")),
                cell(json!(hash)),
            ]),
        };
        let log = log_from_cells(&columns, &row, 1).unwrap();
        assert_eq!(log.topics, ["0xaa", "0xbb"]);
        assert_eq!((log.log_index, log.block_number), (4, 19_000_000));
        let mut bad = row.clone();
        bad.columns.as_mut().unwrap()[1] = cell(json!("0xaa"));
        let err = log_from_cells(&columns, &bad, 9).unwrap_err().to_string();
        assert!(err.starts_with("source row 9: topics"), "{err}");
    }
}
