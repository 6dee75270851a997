//! The BigQuery row parser (`Dataset::parse_bigquery`) on arbitrary cells.
//! The input is text: a header line `token_transfers [N]` or `tokens [N]`,
//! then one cell a line in the dataset's column order (`\N` is NULL).
//!
//! Properties: no panic; the same cells sent as a one-row result page whose
//! schema lists the columns rotated by N (and, for odd N, an extra column
//! first) parse to the same row or the same error, naming the row; a parsed
//! row is well formed (lowercase addresses and hashes, canonical uint256s, no
//! NUL in texts) and, written back as cells with an int64 or a legacy
//! float-seconds timestamp, parses to itself.

use ethpipe_core::datasets::{TOKENS, TOKEN_TRANSFERS};
use ethpipe_core::{Row, Rows, SourceError, Token, TokenTransfer};
use ethpipe_sources::bigquery::page::{self, ColumnMap};
use ethpipe_sources::bigquery::query;
use gcp_bigquery_client::model::table_row::TableRow;
use gcp_bigquery_client::model::table_schema::TableSchema;
use serde_json::{json, Value};

use crate::{cells_from_lines, check_token_row, check_transfer_row};

/// The row number errors must name.
const ROW: u64 = 7;

/// One execution of the target.
pub fn run(input: &[u8]) {
    let text = String::from_utf8_lossy(input);
    let mut lines = text.split('\n');
    let header = lines.next().unwrap_or_default();
    let (name, rotation) = header.split_once(' ').unwrap_or((header, ""));
    let rotation: usize = rotation.parse().unwrap_or(0);
    let pipeline = match name {
        "tokens" => TOKENS,
        _ => TOKEN_TRANSFERS,
    };
    let columns = query::columns(pipeline);
    let cells = cells_from_lines(lines, columns.len());

    let direct = pipeline.parse_bigquery(std::slice::from_ref(&cells), ROW);

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
        row.push(json!({"v": cells[i].map_or(Value::Null, Value::from)}));
    }
    let schema: TableSchema = serde_json::from_value(json!({ "fields": fields })).expect("schema");
    let row: TableRow = serde_json::from_value(json!({ "f": row })).expect("row");
    let map = ColumnMap::new(pipeline, Some(&schema)).expect("every column is in the schema");
    let paged = page::parse_page(pipeline, &map, std::slice::from_ref(&row), ROW);

    match (&direct, &paged) {
        (Ok(direct), Ok(paged)) => {
            assert!(paged.skipped.is_empty(), "{:?}", paged.skipped);
            if pipeline == TOKEN_TRANSFERS {
                same_rows::<TokenTransfer>(direct, &paged.rows, check_transfer_row);
            } else {
                same_rows::<Token>(direct, &paged.rows, check_token_row);
            }
        }
        (Err(direct), Err(paged)) => {
            assert_eq!(direct.to_string(), paged.to_string());
            assert_eq!(direct.row, ROW);
            let SourceError::BadRow(bad) = paged else {
                panic!("a table row failed without naming it: {paged}");
            };
            assert_eq!(bad.row, ROW);
        }
        _ => panic!("cells gave {direct:?}, the page gave {paged:?}"),
    }
}

/// Both batches are the same one row, well formed.
fn same_rows<R: Row + PartialEq>(direct: &Rows, paged: &Rows, check: fn(&R)) {
    let rows = direct.as_slice::<R>().expect("the dataset's own row type");
    assert_eq!(rows.len(), 1, "{direct:?}");
    assert_eq!(paged.as_slice::<R>(), Some(rows));
    rows.iter().for_each(check);
}
