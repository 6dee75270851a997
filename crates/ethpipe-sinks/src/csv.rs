//! A day as a CSV file (RFC 4180): a header row of the dataset's column
//! names, then one line per row. NULL is an empty field and an empty string
//! is `""`; uint256 values are exact decimals, timestamps
//! `YYYY-MM-DDTHH:MM:SS.ffffffZ`, booleans `true`/`false`.

use std::fs::File;
use std::io::{BufWriter, Write};

use chrono::{DateTime, Utc};
use ethpipe_core::dataset::{CellWriter, Column};
use ethpipe_core::Uint;

use crate::files::{file_error, DayFile, RowSink, Staged};
use crate::sqlite::timestamp_text;
use crate::SinkError;

pub struct CsvFile {
    staged: Staged,
    out: BufWriter<File>,
    /// No separator before the row's first cell.
    at_row_start: bool,
    rows: u64,
    /// The first write error; reported at the end of the row.
    error: Option<std::io::Error>,
}

impl CsvFile {
    pub fn create(mut staged: Staged, columns: &[Column]) -> Result<CsvFile, SinkError> {
        let file = staged
            .take_file()
            .ok_or_else(|| SinkError::Rejected("a staged file was used twice".into()))?;
        let mut csv = CsvFile {
            staged,
            out: BufWriter::new(file),
            at_row_start: true,
            rows: 0,
            error: None,
        };
        for column in columns {
            csv.field(Some(column.name), true);
        }
        csv.line_end()?;
        Ok(csv)
    }

    fn field(&mut self, value: Option<&str>, quote_empty: bool) {
        let separator = if self.at_row_start { "" } else { "," };
        self.at_row_start = false;
        let result = match value {
            None => write!(self.out, "{separator}"),
            Some(text) if needs_quotes(text) || (quote_empty && text.is_empty()) => {
                write!(self.out, "{separator}\"{}\"", text.replace('"', "\"\""))
            }
            Some(text) => write!(self.out, "{separator}{text}"),
        };
        if let Err(e) = result {
            self.error.get_or_insert(e);
        }
    }

    fn line_end(&mut self) -> Result<(), SinkError> {
        self.at_row_start = true;
        if let Err(e) = self.out.write_all(b"\n") {
            self.error.get_or_insert(e);
        }
        match self.error.take() {
            Some(e) => Err(file_error("cannot write a CSV row", e)),
            None => Ok(()),
        }
    }
}

fn needs_quotes(text: &str) -> bool {
    text.contains([',', '"', '\n', '\r'])
}

impl CellWriter for CsvFile {
    fn text(&mut self, value: Option<&str>) {
        self.field(value, true);
    }

    fn uint(&mut self, value: Option<&Uint>) {
        self.field(value.map(Uint::as_str), false);
    }

    fn int(&mut self, value: i64) {
        self.field(Some(&value.to_string()), false);
    }

    fn timestamp(&mut self, value: DateTime<Utc>) {
        self.field(Some(&timestamp_text(value)), false);
    }

    fn boolean(&mut self, value: bool) {
        self.field(Some(if value { "true" } else { "false" }), false);
    }
}

impl RowSink for CsvFile {
    fn cells(&mut self) -> &mut dyn CellWriter {
        self
    }

    fn end_row(&mut self) -> Result<(), SinkError> {
        self.rows += 1;
        self.line_end()
    }
}

impl DayFile for CsvFile {
    fn rows(&mut self) -> &mut dyn RowSink {
        self
    }

    fn finish(self: Box<Self>) -> Result<u64, SinkError> {
        let CsvFile {
            staged, out, rows, ..
        } = *self;
        let file = out
            .into_inner()
            .map_err(|e| file_error("cannot write the CSV file", e.into_error()))?;
        staged.publish(file)?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ethpipe_core::dataset::ColumnType;

    #[test]
    fn fields_are_quoted_only_when_they_must_be() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("data.csv");
        let columns = [
            Column::nullable("name", ColumnType::Text),
            Column::nullable("value", ColumnType::Uint),
            Column::required("n", ColumnType::Int),
        ];
        let mut csv =
            Box::new(CsvFile::create(Staged::create(&target).unwrap(), &columns).unwrap());
        csv.text(Some("a, \"b\""));
        csv.uint(None);
        csv.int(-3);
        csv.end_row().unwrap();
        csv.text(Some(""));
        csv.uint(Some(&Uint::from_u64(1)));
        csv.int(4);
        csv.end_row().unwrap();
        assert_eq!(csv.finish().unwrap(), 2);
        assert_eq!(
            std::fs::read_to_string(&target).unwrap(),
            "name,value,n\n\"a, \"\"b\"\"\",,-3\n\"\",1,4\n"
        );
    }
}
