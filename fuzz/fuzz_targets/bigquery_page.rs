//! The BigQuery page parser (`ColumnMap::new` + `page::parse_page`) on
//! arbitrary result pages: the input is the JSON of a `getQueryResults`
//! answer (`{"schema": {"fields": […]}, "rows": [{"f": [{"v": …}]}]}`), read
//! for both pipelines.
//!
//! Properties: no panic, whatever the schema, the cells' JSON types or the
//! rows' lengths; a page parses exactly when each of its rows parses alone,
//! and fails with the first failing row's error, which names that row's
//! number; every parsed row is well formed and, written back as cells,
//! parses to itself (see `ethpipe_fuzz::check_transfer_row`).
#![no_main]

use ethpipe_core::{Pipeline, Rows};
use ethpipe_fuzz::{check_token_row, check_transfer_row};
use ethpipe_sources::bigquery::page::{self, ColumnMap};
use gcp_bigquery_client::model::table_row::TableRow;
use gcp_bigquery_client::model::table_schema::TableSchema;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// The number of the page's first row in the whole result.
const FIRST_ROW: u64 = 101;

fuzz_target!(|input: &[u8]| {
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
    for pipeline in [Pipeline::TokenTransfers, Pipeline::Tokens] {
        if let Ok(columns) = ColumnMap::new(pipeline, schema.as_ref()) {
            check_page(pipeline, &columns, &rows);
        }
    }
});

fn check_page(pipeline: Pipeline, columns: &ColumnMap, rows: &[TableRow]) {
    let parsed = page::parse_page(pipeline, columns, rows, FIRST_ROW);
    let alone = rows.iter().zip(FIRST_ROW..).map(|(row, number)| {
        page::parse_page(pipeline, columns, std::slice::from_ref(row), number)
    });
    let first_error = alone.clone().find_map(Result::err);
    match (&parsed, first_error) {
        (Ok(batch), None) => {
            assert_eq!(batch.len(), rows.len());
            let singles: Vec<String> = alone.map(|r| format!("{:?}", r.ok())).collect();
            match batch {
                Rows::TokenTransfers(parsed) => {
                    for (row, single) in parsed.iter().zip(&singles) {
                        assert_eq!(
                            &format!("{:?}", Some(Rows::TokenTransfers(vec![row.clone()]))),
                            single
                        );
                        check_transfer_row(row);
                    }
                }
                Rows::Tokens(parsed) => {
                    for (row, single) in parsed.iter().zip(&singles) {
                        assert_eq!(
                            &format!("{:?}", Some(Rows::Tokens(vec![row.clone()]))),
                            single
                        );
                        check_token_row(row);
                    }
                }
            }
        }
        (Err(error), Some(first)) => {
            assert_eq!(error.to_string(), first.to_string());
            let end = FIRST_ROW + rows.len() as u64;
            assert!((FIRST_ROW..end).contains(&error.row), "{error}");
        }
        (parsed, first) => panic!("the page gave {parsed:?}, its rows alone {first:?}"),
    }
}
