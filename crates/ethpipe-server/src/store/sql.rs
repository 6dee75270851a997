//! What lets one statement serve both stores: the [`Dialect`] that turns a
//! statement written in PostgreSQL's spelling into SQLite's, the [`Param`]s
//! bound to it (each store binds them as its own types), and the rows read
//! back as owned [`Record`]s, so each row is mapped to its type once.

use chrono::{DateTime, NaiveDate, Utc};
use ethpipe_core::Day;

use super::{sqlite_timestamp, timestamp, QueryError};

/// Which database a statement runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

impl Dialect {
    /// `sql` as this database spells it. Statements are written once, for
    /// PostgreSQL: tables in schema `ethereum.` and `$n` placeholders. SQLite
    /// keeps the same tables without a schema and numbers its placeholders
    /// `?n`. Everything else a shared statement uses (`CAST(… AS TEXT)`, row
    /// comparisons, correlated subqueries, `LIKE … ESCAPE`) means the same in
    /// both.
    pub fn statement(self, sql: &str) -> String {
        match self {
            Dialect::Postgres => sql.to_string(),
            Dialect::Sqlite => sql.replace("ethereum.", "").replace('$', "?"),
        }
    }
}

/// A value bound to a statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Text(Option<String>),
    Int(Option<i64>),
    Bool(bool),
    /// PostgreSQL `date`; SQLite `YYYY-MM-DD` text.
    Date(Option<Day>),
    /// PostgreSQL `timestamptz`; SQLite the sink's RFC 3339 text.
    Instant(DateTime<Utc>),
}

impl Param {
    pub fn text(value: impl Into<String>) -> Param {
        Param::Text(Some(value.into()))
    }

    pub fn int(value: impl Into<i64>) -> Param {
        Param::Int(Some(value.into()))
    }

    /// As PostgreSQL binds it; the types match the columns compared with.
    pub(super) fn postgres(&self) -> Box<dyn tokio_postgres::types::ToSql + Sync + Send> {
        match self {
            Param::Text(v) => Box::new(v.clone()),
            Param::Int(v) => Box::new(*v),
            Param::Bool(v) => Box::new(*v),
            Param::Date(v) => Box::new(v.map(Day::naive)),
            Param::Instant(v) => Box::new(*v),
        }
    }

    /// The PostgreSQL type it is bound as, given with the statement so that
    /// parsing and running it take one round trip.
    pub(super) fn postgres_type(&self) -> tokio_postgres::types::Type {
        use tokio_postgres::types::Type;
        match self {
            Param::Text(_) => Type::TEXT,
            Param::Int(_) => Type::INT8,
            Param::Bool(_) => Type::BOOL,
            Param::Date(_) => Type::DATE,
            Param::Instant(_) => Type::TIMESTAMPTZ,
        }
    }

    /// As SQLite binds it: dates and instants in the text the sink stores.
    pub(super) fn sqlite(&self) -> rusqlite::types::Value {
        use rusqlite::types::Value;
        match self {
            Param::Text(v) => v.clone().map_or(Value::Null, Value::Text),
            Param::Int(v) => v.map_or(Value::Null, Value::Integer),
            Param::Bool(v) => Value::Integer(i64::from(*v)),
            Param::Date(v) => v.map_or(Value::Null, |d| Value::Text(d.to_string())),
            Param::Instant(v) => Value::Text(ethpipe_sinks::sqlite::timestamp_text(*v)),
        }
    }
}

/// One column value, owned, whichever database it came from.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Bool(bool),
    Instant(DateTime<Utc>),
    Date(NaiveDate),
}

/// One row of a result.
#[derive(Debug, Clone, PartialEq)]
pub struct Record(pub Vec<Cell>);

impl Record {
    fn cell(&self, column: usize) -> &Cell {
        self.0.get(column).unwrap_or(&Cell::Null)
    }

    fn mismatch(&self, column: usize, expected: &'static str) -> QueryError {
        QueryError::Decode {
            column,
            expected,
            found: format!("{:?}", self.cell(column)),
        }
    }

    pub fn opt_text(&self, column: usize) -> Result<Option<String>, QueryError> {
        match self.cell(column) {
            Cell::Null => Ok(None),
            Cell::Text(text) => Ok(Some(text.clone())),
            Cell::Date(date) => Ok(Some(date.to_string())),
            _ => Err(self.mismatch(column, "text")),
        }
    }

    pub fn text(&self, column: usize) -> Result<String, QueryError> {
        self.opt_text(column)?
            .ok_or_else(|| self.mismatch(column, "text"))
    }

    pub fn opt_int(&self, column: usize) -> Result<Option<i64>, QueryError> {
        match self.cell(column) {
            Cell::Null => Ok(None),
            Cell::Int(n) => Ok(Some(*n)),
            _ => Err(self.mismatch(column, "an integer")),
        }
    }

    pub fn int(&self, column: usize) -> Result<i64, QueryError> {
        self.opt_int(column)?
            .ok_or_else(|| self.mismatch(column, "an integer"))
    }

    /// PostgreSQL `boolean`, SQLite 0 or 1.
    pub fn bool(&self, column: usize) -> Result<bool, QueryError> {
        match self.cell(column) {
            Cell::Bool(b) => Ok(*b),
            Cell::Int(n) => Ok(*n != 0),
            _ => Err(self.mismatch(column, "a boolean")),
        }
    }

    /// An instant in the API's one format (RFC 3339, UTC, seconds):
    /// PostgreSQL `timestamptz`, SQLite the sink's RFC 3339 text.
    pub fn instant(&self, column: usize) -> Result<String, QueryError> {
        match self.cell(column) {
            Cell::Instant(at) => Ok(timestamp(*at)),
            Cell::Text(text) => sqlite_timestamp(Some(text.clone()))
                .map(timestamp)
                .ok_or_else(|| self.mismatch(column, "an RFC 3339 timestamp")),
            _ => Err(self.mismatch(column, "a timestamp")),
        }
    }
}

/// A PostgreSQL row as owned cells, by each column's type.
pub(super) fn postgres_record(row: &tokio_postgres::Row) -> Result<Record, tokio_postgres::Error> {
    use tokio_postgres::types::Type;
    let mut cells = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let ty = column.type_();
        let cell = if *ty == Type::INT8 {
            row.try_get::<_, Option<i64>>(i)?
                .map_or(Cell::Null, Cell::Int)
        } else if *ty == Type::INT4 {
            row.try_get::<_, Option<i32>>(i)?
                .map_or(Cell::Null, |n| Cell::Int(n.into()))
        } else if *ty == Type::INT2 {
            row.try_get::<_, Option<i16>>(i)?
                .map_or(Cell::Null, |n| Cell::Int(n.into()))
        } else if *ty == Type::BOOL {
            row.try_get::<_, Option<bool>>(i)?
                .map_or(Cell::Null, Cell::Bool)
        } else if *ty == Type::FLOAT8 {
            row.try_get::<_, Option<f64>>(i)?
                .map_or(Cell::Null, Cell::Real)
        } else if *ty == Type::TIMESTAMPTZ {
            row.try_get::<_, Option<DateTime<Utc>>>(i)?
                .map_or(Cell::Null, Cell::Instant)
        } else if *ty == Type::DATE {
            row.try_get::<_, Option<NaiveDate>>(i)?
                .map_or(Cell::Null, Cell::Date)
        } else {
            // Text, and anything a statement did not cast (a bug the decode reports).
            row.try_get::<_, Option<String>>(i)?
                .map_or(Cell::Null, Cell::Text)
        };
        cells.push(cell);
    }
    Ok(Record(cells))
}

/// A SQLite row as owned cells, by each value's storage class.
pub(super) fn sqlite_record(row: &rusqlite::Row<'_>, columns: usize) -> rusqlite::Result<Record> {
    use rusqlite::types::ValueRef;
    let mut cells = Vec::with_capacity(columns);
    for i in 0..columns {
        cells.push(match row.get_ref(i)? {
            ValueRef::Null => Cell::Null,
            ValueRef::Integer(n) => Cell::Int(n),
            ValueRef::Real(x) => Cell::Real(x),
            ValueRef::Text(bytes) => Cell::Text(String::from_utf8_lossy(bytes).into_owned()),
            ValueRef::Blob(_) => Cell::Null,
        });
    }
    Ok(Record(cells))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_spelling_drops_the_schema_and_numbers_placeholders() {
        let sql = "SELECT x FROM ethereum.tokens WHERE a = $1 AND b < $12";
        assert_eq!(Dialect::Postgres.statement(sql), sql);
        assert_eq!(
            Dialect::Sqlite.statement(sql),
            "SELECT x FROM tokens WHERE a = ?1 AND b < ?12"
        );
    }

    #[test]
    fn records_decode_both_stores_spellings() {
        let record = Record(vec![
            Cell::Int(1),
            Cell::Text("2024-03-01T00:00:05.000000Z".into()),
            Cell::Null,
            Cell::Date(NaiveDate::from_ymd_opt(2024, 3, 1).unwrap()),
        ]);
        assert!(record.bool(0).unwrap());
        assert_eq!(record.instant(1).unwrap(), "2024-03-01T00:00:05Z");
        assert_eq!(record.opt_text(2).unwrap(), None);
        assert_eq!(record.text(3).unwrap(), "2024-03-01");
        assert!(matches!(
            record.int(1),
            Err(QueryError::Decode { column: 1, .. })
        ));
    }
}
