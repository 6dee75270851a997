//! The BigQuery page parser (`ColumnMap::new` + `page::parse_page`) on
//! arbitrary result pages: the input is the JSON of a `getQueryResults`
//! answer (`{"schema": {"fields": […]}, "rows": [{"f": [{"v": …}]}]}`), read
//! for both table datasets (`token_transfers`, `tokens`).
//!
//! Properties: no panic, whatever the schema, the cells' JSON types or the
//! rows' lengths; a page parses exactly when each of its rows parses alone,
//! and fails with the first failing row's error, which names that row's
//! number; every parsed row is well formed and, written back as cells,
//! parses to itself (see [`crate::check_transfer_row`]).

use ethpipe_core::dataset::DecodedLogs;
use ethpipe_core::datasets::{TOKENS, TOKEN_TRANSFERS};
use ethpipe_core::{Pipeline, Row, Rows, SourceError, Token, TokenTransfer};
use ethpipe_sources::bigquery::page::{self, ColumnMap};
use gcp_bigquery_client::model::table_row::TableRow;
use gcp_bigquery_client::model::table_schema::TableSchema;
use serde_json::Value;

use crate::{check_token_row, check_transfer_row};

/// The number of the page's first row in the whole result.
const FIRST_ROW: u64 = 101;

/// One execution of the target.
pub fn run(input: &[u8]) {
    let Ok(answer) = serde_json::from_slice::<Value>(input) else {
        return;
    };
    let schema: Option<TableSchema> = answer
        .get("schema")
        .and_then(|s| serde_json::from_value(s.clone()).ok());
    let rows: Vec<TableRow> = answer
        .get("rows")
        .and_then(|r| serde_json::from_value(r.clone()).ok())
        .unwrap_or_default();
    for pipeline in [TOKEN_TRANSFERS, TOKENS] {
        if let Ok(columns) = ColumnMap::new(pipeline, schema.as_ref()) {
            check_page(pipeline, &columns, &rows);
        }
    }
}

fn check_page(pipeline: Pipeline, columns: &ColumnMap, rows: &[TableRow]) {
    let parsed = page::parse_page(pipeline, columns, rows, FIRST_ROW);
    let alone: Vec<Result<DecodedLogs, SourceError>> = rows
        .iter()
        .zip(FIRST_ROW..)
        .map(|(row, number)| page::parse_page(pipeline, columns, std::slice::from_ref(row), number))
        .collect();
    let first_error = alone.iter().find_map(|r| r.as_ref().err());
    match (&parsed, first_error) {
        (Ok(batch), None) => {
            assert_eq!(batch.rows.len(), rows.len());
            assert_eq!(batch.rows.pipeline(), pipeline);
            assert!(batch.skipped.is_empty(), "{:?}", batch.skipped);
            let singles: Vec<&Rows> = alone.iter().flatten().map(|d| &d.rows).collect();
            if pipeline == TOKEN_TRANSFERS {
                same_as_alone::<TokenTransfer>(&batch.rows, &singles, check_transfer_row);
            } else {
                same_as_alone::<Token>(&batch.rows, &singles, check_token_row);
            }
        }
        (Err(error), Some(first)) => {
            assert_eq!(error.to_string(), first.to_string());
            let SourceError::BadRow(bad) = error else {
                panic!("a table page failed without naming a row: {error}");
            };
            let end = FIRST_ROW + rows.len() as u64;
            assert!((FIRST_ROW..end).contains(&bad.row), "{error}");
        }
        (parsed, first) => panic!("the page gave {parsed:?}, its rows alone {first:?}"),
    }
}

/// Each row of the page is the one its row gave alone, and well formed.
fn same_as_alone<R: Row + PartialEq>(page: &Rows, singles: &[&Rows], check: fn(&R)) {
    let parsed = page.as_slice::<R>().expect("the dataset's own row type");
    for (row, single) in parsed.iter().zip(singles) {
        assert_eq!(single.as_slice::<R>(), Some(std::slice::from_ref(row)));
        check(row);
    }
}
