//! One Parquet file written batch by batch, for any dataset: the schema comes
//! from the dataset's columns, cells are buffered per column and written as
//! a row group every [`ROW_GROUP_ROWS`] rows, so memory does not grow with
//! the day.
//!
//! Types: text and uint256 are UTF8 strings (a uint256 has up to 78 digits,
//! Parquet's DECIMAL stops at 76), integers INT64, timestamps
//! `TIMESTAMP(MICROS, UTC)`, booleans BOOLEAN; nullable columns OPTIONAL.

use std::fs::File;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use ethpipe_core::dataset::{CellWriter, Column, ColumnType};
use ethpipe_core::Uint;
use parquet::basic::{Compression, LogicalType, Repetition, TimeUnit, Type as PhysicalType};
use parquet::column::writer::ColumnWriter;
use parquet::data_type::ByteArray;
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::{Type, TypePtr};

use crate::files::{DayFile, RowSink, Staged};
use crate::SinkError;

/// Rows per row group: large enough for good compression and fast scans,
/// small enough that the buffered cells stay about ten MB a day, since
/// `backfill --parallel N` writes N days' files at once (at 32,768 rows,
/// four days at once peaked at 151 MB against the 150 MB target).
pub const ROW_GROUP_ROWS: usize = 16_384;

pub struct ParquetFile {
    staged: Staged,
    writer: SerializedFileWriter<File>,
    columns: Vec<ColumnBuffer>,
    /// The column the next cell belongs to.
    next: usize,
    buffered: usize,
    rows: u64,
}

fn parquet_error(context: &str, error: ParquetError) -> SinkError {
    SinkError::Files {
        context: context.to_string(),
        source: error.into(),
    }
}

/// A column's cells since the last row group: the non-null values and, for
/// a nullable column, one definition level per row (1 present, 0 NULL).
struct ColumnBuffer {
    values: Values,
    levels: Option<Vec<i16>>,
}

enum Values {
    Bytes(Vec<ByteArray>),
    Int(Vec<i64>),
    Bool(Vec<bool>),
}

impl ColumnBuffer {
    fn new(column: &Column) -> ColumnBuffer {
        let values = match column.kind {
            ColumnType::Text | ColumnType::Uint => Values::Bytes(Vec::new()),
            ColumnType::Int | ColumnType::Timestamp => Values::Int(Vec::new()),
            ColumnType::Bool => Values::Bool(Vec::new()),
        };
        ColumnBuffer {
            values,
            levels: column.nullable.then(Vec::new),
        }
    }

    fn level(&mut self, present: bool) {
        if let Some(levels) = &mut self.levels {
            levels.push(i16::from(present));
        }
    }

    fn clear(&mut self) {
        match &mut self.values {
            Values::Bytes(values) => values.clear(),
            Values::Int(values) => values.clear(),
            Values::Bool(values) => values.clear(),
        }
        if let Some(levels) = &mut self.levels {
            levels.clear();
        }
    }

    fn write_to(&self, writer: &mut ColumnWriter<'_>) -> Result<(), ParquetError> {
        let levels = self.levels.as_deref();
        let written = match (&self.values, writer) {
            (Values::Bytes(values), ColumnWriter::ByteArrayColumnWriter(w)) => {
                w.write_batch(values, levels, None)
            }
            (Values::Int(values), ColumnWriter::Int64ColumnWriter(w)) => {
                w.write_batch(values, levels, None)
            }
            (Values::Bool(values), ColumnWriter::BoolColumnWriter(w)) => {
                w.write_batch(values, levels, None)
            }
            _ => Err(ParquetError::General(
                "a column's cells do not match its Parquet type".into(),
            )),
        };
        written.map(|_| ())
    }
}

/// The Parquet schema of a dataset's columns.
pub fn schema(columns: &[Column]) -> Result<TypePtr, ParquetError> {
    let fields = columns
        .iter()
        .map(|column| field(column).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Arc::new(
        Type::group_type_builder("schema")
            .with_fields(fields)
            .build()?,
    ))
}

fn field(column: &Column) -> Result<Type, ParquetError> {
    let (physical, logical) = match column.kind {
        ColumnType::Text | ColumnType::Uint => {
            (PhysicalType::BYTE_ARRAY, Some(LogicalType::String))
        }
        ColumnType::Int => (PhysicalType::INT64, None),
        ColumnType::Timestamp => (
            PhysicalType::INT64,
            Some(LogicalType::timestamp(true, TimeUnit::MICROS)),
        ),
        ColumnType::Bool => (PhysicalType::BOOLEAN, None),
    };
    let repetition = if column.nullable {
        Repetition::OPTIONAL
    } else {
        Repetition::REQUIRED
    };
    Type::primitive_type_builder(column.name, physical)
        .with_repetition(repetition)
        .with_logical_type(logical)
        .build()
}

impl ParquetFile {
    pub fn create(mut staged: Staged, columns: &[Column]) -> Result<ParquetFile, SinkError> {
        let file = staged
            .take_file()
            .ok_or_else(|| SinkError::Rejected("a staged file was used twice".into()))?;
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_created_by(format!("ethpipe {}", env!("CARGO_PKG_VERSION")))
            .build();
        let schema =
            schema(columns).map_err(|e| parquet_error("building the Parquet schema", e))?;
        let writer = SerializedFileWriter::new(file, schema, Arc::new(properties))
            .map_err(|e| parquet_error("starting a Parquet file", e))?;
        Ok(ParquetFile {
            staged,
            writer,
            columns: columns.iter().map(ColumnBuffer::new).collect(),
            next: 0,
            buffered: 0,
            rows: 0,
        })
    }

    /// The buffer of the next cell's column; cells past the last column
    /// (a row writing too many) are caught at the end of the row.
    fn cell(&mut self) -> Option<&mut ColumnBuffer> {
        let index = self.next;
        self.next += 1;
        self.columns.get_mut(index)
    }

    fn write_row_group(&mut self) -> Result<(), SinkError> {
        if self.buffered == 0 {
            return Ok(());
        }
        let fail = |e| parquet_error("writing a Parquet row group", e);
        let mut group = self.writer.next_row_group().map_err(fail)?;
        for buffer in &self.columns {
            let Some(mut column) = group.next_column().map_err(fail)? else {
                break;
            };
            buffer.write_to(column.untyped()).map_err(fail)?;
            column.close().map_err(fail)?;
        }
        group.close().map_err(fail)?;
        for buffer in &mut self.columns {
            buffer.clear();
        }
        self.buffered = 0;
        Ok(())
    }
}

impl CellWriter for ParquetFile {
    fn text(&mut self, value: Option<&str>) {
        if let Some(buffer) = self.cell() {
            buffer.level(value.is_some());
            if let (Values::Bytes(values), Some(text)) = (&mut buffer.values, value) {
                values.push(ByteArray::from(text));
            }
        }
    }

    fn uint(&mut self, value: Option<&Uint>) {
        self.text(value.map(Uint::as_str));
    }

    fn int(&mut self, value: i64) {
        if let Some(buffer) = self.cell() {
            buffer.level(true);
            if let Values::Int(values) = &mut buffer.values {
                values.push(value);
            }
        }
    }

    fn timestamp(&mut self, value: DateTime<Utc>) {
        self.int(value.timestamp_micros());
    }

    fn boolean(&mut self, value: bool) {
        if let Some(buffer) = self.cell() {
            buffer.level(true);
            if let Values::Bool(values) = &mut buffer.values {
                values.push(value);
            }
        }
    }
}

impl RowSink for ParquetFile {
    fn cells(&mut self) -> &mut dyn CellWriter {
        self
    }

    fn end_row(&mut self) -> Result<(), SinkError> {
        if self.next != self.columns.len() {
            return Err(SinkError::Rejected(format!(
                "a row wrote {} cells for {} columns",
                self.next,
                self.columns.len()
            )));
        }
        self.next = 0;
        self.buffered += 1;
        self.rows += 1;
        if self.buffered >= ROW_GROUP_ROWS {
            self.write_row_group()?;
        }
        Ok(())
    }
}

impl DayFile for ParquetFile {
    fn rows(&mut self) -> &mut dyn RowSink {
        self
    }

    fn finish(mut self: Box<Self>) -> Result<u64, SinkError> {
        self.write_row_group()?;
        let ParquetFile {
            staged,
            writer,
            rows,
            ..
        } = *self;
        let file = writer
            .into_inner()
            .map_err(|e| parquet_error("writing the Parquet footer", e))?;
        staged.publish(file)?;
        Ok(rows)
    }
}

/// The rows a Parquet file holds, from its footer.
pub fn row_count(path: &std::path::Path) -> Result<u64, SinkError> {
    use parquet::file::reader::FileReader;
    use parquet::file::serialized_reader::SerializedFileReader;
    let file = File::open(path)
        .map_err(|e| crate::files::file_error(format!("cannot open {}", path.display()), e))?;
    let reader = SerializedFileReader::new(file)
        .map_err(|e| parquet_error(&format!("cannot read the footer of {}", path.display()), e))?;
    Ok(reader.metadata().file_metadata().num_rows().max(0) as u64)
}

/// What a filtered load keeps of a day's old file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Rows whose filter column is one of the filter's tokens.
    Matching,
    /// Every other row: a filtered load replaces only its tokens' rows.
    Others,
}

/// Reads the Parquet file at `path` row by row and hands the rows `keep`
/// selects (by `column`, the dataset's filter column, against `filter`) to
/// `visit`. Returns how many were selected.
pub fn select_rows(
    path: &std::path::Path,
    column: &str,
    filter: &ethpipe_core::TokenFilter,
    keep: Keep,
    mut visit: impl FnMut(&parquet::record::Row) -> Result<(), SinkError>,
) -> Result<u64, SinkError> {
    use parquet::file::reader::FileReader;
    use parquet::file::serialized_reader::SerializedFileReader;
    use parquet::record::RowAccessor;
    let file = File::open(path)
        .map_err(|e| crate::files::file_error(format!("cannot open {}", path.display()), e))?;
    let reader = SerializedFileReader::new(file)
        .map_err(|e| parquet_error(&format!("cannot read {}", path.display()), e))?;
    // Every row of the file has the schema's columns in the schema's order,
    // so the filter column's position is found once.
    let position = reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .root_schema()
        .get_fields()
        .iter()
        .position(|field| field.name() == column);
    let rows = reader
        .get_row_iter(None)
        .map_err(|e| parquet_error(&format!("cannot read {}", path.display()), e))?;
    let mut selected = 0;
    for row in rows {
        let row = row.map_err(|e| parquet_error(&format!("cannot read {}", path.display()), e))?;
        let token = position.and_then(|at| row.get_string(at).ok());
        let matches = token.is_some_and(|t| filter.contains(t));
        if matches == (keep == Keep::Matching) {
            visit(&row)?;
            selected += 1;
        }
    }
    Ok(selected)
}

/// Writes a row read back from a Parquet file into `out`, cell by cell in
/// `columns`' order.
pub fn write_row(
    row: &parquet::record::Row,
    columns: &[Column],
    out: &mut dyn RowSink,
) -> Result<(), SinkError> {
    use parquet::record::Field;
    let unexpected = |name: &str, field: &Field| {
        SinkError::Rejected(format!(
            "a Parquet file's column {name} holds {field}, not what the dataset declares"
        ))
    };
    for (column, (name, field)) in columns.iter().zip(row.get_column_iter()) {
        match (column.kind, field) {
            (ColumnType::Text, Field::Str(text)) => out.text(Some(text)),
            (ColumnType::Uint, Field::Str(text)) => {
                let value = Uint::parse_decimal(text).ok_or_else(|| unexpected(name, field))?;
                out.uint(Some(&value));
            }
            (ColumnType::Text, Field::Null) => out.text(None),
            (ColumnType::Uint, Field::Null) => out.uint(None),
            (ColumnType::Int, Field::Long(value)) => out.int(*value),
            (ColumnType::Bool, Field::Bool(value)) => out.boolean(*value),
            (ColumnType::Timestamp, Field::TimestampMicros(micros)) => {
                let instant = DateTime::<Utc>::from_timestamp_micros(*micros)
                    .ok_or_else(|| unexpected(name, field))?;
                out.timestamp(instant);
            }
            _ => return Err(unexpected(name, field)),
        }
    }
    out.end_row()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const COLUMNS: [Column; 3] = [
        Column::required("n", ColumnType::Int),
        Column::nullable("value", ColumnType::Uint),
        Column::required("at", ColumnType::Timestamp),
    ];

    fn create(dir: &std::path::Path) -> Box<ParquetFile> {
        let staged = Staged::create(&dir.join("data.parquet")).unwrap();
        Box::new(ParquetFile::create(staged, &COLUMNS).unwrap())
    }

    #[test]
    fn rows_across_row_groups_are_counted_in_the_footer() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = create(dir.path());
        let at = Utc.timestamp_opt(1_709_251_200, 0).unwrap();
        let rows = ROW_GROUP_ROWS as i64 + 5;
        for n in 0..rows {
            file.int(n);
            let value = Uint::from_u64(n as u64);
            file.uint((n % 2 == 0).then_some(&value));
            file.timestamp(at);
            file.end_row().unwrap();
        }
        assert_eq!(file.finish().unwrap(), rows as u64);
        assert_eq!(
            row_count(&dir.path().join("data.parquet")).unwrap(),
            rows as u64
        );
    }

    #[test]
    fn a_row_with_missing_cells_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = create(dir.path());
        file.int(1);
        let error = file.end_row().unwrap_err().to_string();
        assert_eq!(error, "a row wrote 1 cells for 3 columns");
    }
}
