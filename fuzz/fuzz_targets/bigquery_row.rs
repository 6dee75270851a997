//! The BigQuery row parser (`bigquery::page`) on arbitrary cells. The input
//! is text: a header line `token_transfers [N]` or `tokens [N]`, then one cell
//! a line in the pipeline's column order (`\N` is NULL).
//!
//! Properties: no panic; the same cells sent as a one-row result page whose
//! schema lists the columns rotated by N (and, for odd N, an extra column
//! first) parse to the same row or the same error, naming the row; a parsed
//! row is well formed (lowercase addresses and hashes, canonical uint256s, no
//! NUL in texts) and, written back as cells with an int64 or a legacy
//! float-seconds timestamp, parses to itself.
#![no_main]

use ethpipe_core::{Pipeline, Rows};
use ethpipe_fuzz::{cells_from_lines, check_token_row, check_transfer_row};
use ethpipe_sources::bigquery::page::{self, ColumnMap};
use ethpipe_sources::bigquery::query::{TOKEN_COLUMNS, TRANSFER_COLUMNS};
use gcp_bigquery_client::model::table_row::TableRow;
use gcp_bigquery_client::model::table_schema::TableSchema;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

/// The row number errors must name.
const ROW: u64 = 7;

fuzz_target!(|input: &[u8]| {
    let text = String::from_utf8_lossy(input);
    let mut lines = text.split('\n');
    let header = lines.next().unwrap_or_default();
    let (name, rotation) = header.split_once(' ').unwrap_or((header, ""));
    let rotation: usize = rotation.parse().unwrap_or(0);
    let (pipeline, columns): (Pipeline, &[&str]) = match name {
        "tokens" => (Pipeline::Tokens, &TOKEN_COLUMNS),
        _ => (Pipeline::TokenTransfers, &TRANSFER_COLUMNS),
    };
    let cells = cells_from_lines(lines, columns.len());

    let direct = match pipeline {
        Pipeline::TokenTransfers => {
            page::transfer(&cells, ROW).map(|r| Rows::TokenTransfers(vec![r]))
        }
        Pipeline::Tokens => page::token(&cells, ROW).map(|r| Rows::Tokens(vec![r])),
    };

    let mut order: Vec<usize> = (0..columns.len()).collect();
    order.rotate_left(rotation % columns.len());
    let mut fields = Vec::new();
    let mut row = Vec::new();
    if rotation % 2 == 1 {
        fields.push(json!({"name": "item_id", "type": "STRING"}));
        row.push(json!({"v": "not a column ethpipe reads"}));
    }
    for i in order {
        fields.push(json!({"name": columns[i], "type": "STRING", "mode": "NULLABLE"}));
        row.push(json!({"v": cells[i].map_or(Value::Null, |c| Value::from(c))}));
    }
    let schema: TableSchema = serde_json::from_value(json!({ "fields": fields })).expect("schema");
    let row: TableRow = serde_json::from_value(json!({ "f": row })).expect("row");
    let map = ColumnMap::new(pipeline, Some(&schema)).expect("every column is in the schema");
    let paged = page::parse_page(pipeline, &map, std::slice::from_ref(&row), ROW);

    match (&direct, &paged) {
        (Ok(direct), Ok(paged)) => assert_eq!(format!("{direct:?}"), format!("{paged:?}")),
        (Err(direct), Err(paged)) => {
            assert_eq!(direct.to_string(), paged.to_string());
            assert_eq!(paged.row, ROW);
        }
        _ => panic!("cells gave {direct:?}, the page gave {paged:?}"),
    }
    match direct {
        Ok(Rows::TokenTransfers(rows)) => rows.iter().for_each(check_transfer_row),
        Ok(Rows::Tokens(rows)) => rows.iter().for_each(check_token_row),
        Err(_) => {}
    }
});
