//! The `Dataset` contract: what one table ethpipe loads is, in one place.
//!
//! A dataset owns its name, its columns (name, type, nullability), its key,
//! its day column, its row type and how each row writes its cells, how each
//! source extracts it and which derived steps follow a load. Everything
//! downstream (sinks, the orchestrator, the CLI, the server) works from this
//! description and never matches on a dataset, so adding one is one module in
//! [`crate::datasets`] plus one registry line.
//!
//! Rows travel as [`Rows`]: a batch of one dataset's typed rows behind a trait
//! object. A sink asks each row to [`Row::write`] its cells, in column order,
//! into a [`CellWriter`] (the PostgreSQL COPY encoder, the SQLite binder), so a
//! store is written once over the column types, not once per dataset.

use std::any::Any;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::evm::{DecodeError, LogRef};
use crate::{RowError, Uint};

/// The type of a column, as every store maps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// Text (addresses and hashes are `0x` + lowercase hex).
    Text,
    /// An exact uint256: PostgreSQL `numeric(78,0)`, SQLite decimal TEXT.
    Uint,
    /// A signed 64-bit integer.
    Int,
    /// A UTC instant with microseconds.
    Timestamp,
    Bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub kind: ColumnType,
    pub nullable: bool,
}

impl Column {
    pub const fn required(name: &'static str, kind: ColumnType) -> Column {
        Column {
            name,
            kind,
            nullable: false,
        }
    }

    pub const fn nullable(name: &'static str, kind: ColumnType) -> Column {
        Column {
            name,
            kind,
            nullable: true,
        }
    }
}

/// A secondary index the serving layer relies on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Index {
    /// Appended to the table's name: `<table>_<suffix>`.
    pub suffix: &'static str,
    pub columns: &'static [&'static str],
}

/// How a loaded scope replaces what the table held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadMode {
    /// The day's rows are deleted and the new ones inserted: the day is the
    /// unit of storage.
    ReplaceDay,
    /// Rows are merged by the dataset's own rules ([`Dataset::merge_statements`]),
    /// e.g. tokens, whose rows move between days.
    Merge,
}

/// Where BigQuery holds a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BigQueryExtraction {
    /// A `crypto_ethereum` table with these columns, parsed by
    /// [`Dataset::parse_bigquery`].
    Table {
        table: &'static str,
        columns: &'static [&'static str],
    },
    /// `crypto_ethereum.logs` whose first topic is one of these, decoded by
    /// [`Dataset::decode_logs`] (the same decoder as the JSON-RPC source).
    Logs { topics: &'static [&'static str] },
}

/// How a JSON-RPC node yields a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpcExtraction {
    /// `eth_getLogs` on these first topics, decoded by [`Dataset::decode_logs`].
    Logs { topics: &'static [&'static str] },
    /// Contract creations found in traces or receipts, checked for token
    /// interfaces and asked for their metadata (the tokens dataset).
    ContractCreations,
}

/// A step that follows a committed load, in the same transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Derived {
    /// Rebuild `token_daily_stats` for the loaded day from its transfers.
    TokenDailyStats,
    /// Re-scale the daily volumes of the tokens a load touched (their
    /// decimals may have changed).
    RescaleTokenVolumes,
}

/// The SQL dialect a dataset's merge rules are written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

/// Everything ethpipe knows about one dataset. Implemented once per module in
/// [`crate::datasets`].
pub trait Dataset: Send + Sync + 'static {
    /// Its name in the CLI, the ledger and the API; also its table's name.
    fn name(&self) -> &'static str;

    /// One line for `--help` and the dashboard.
    fn description(&self) -> &'static str;

    /// In the order [`Row::write`] writes them.
    fn columns(&self) -> &'static [Column];

    /// Unique after any sequence of runs.
    fn key(&self) -> &'static [&'static str];

    /// The UTC timestamp column whose date is the row's day.
    fn day_column(&self) -> &'static str {
        "block_timestamp"
    }

    /// The block number column. A block has one timestamp, so it belongs
    /// to one day: the PostgreSQL sink keeps every day's block range apart
    /// from the others', which is what keeps the key unique across day
    /// partitions (docs/architecture.md, "Day partitions").
    fn block_column(&self) -> &'static str {
        "block_number"
    }

    /// The column a token filter ([`crate::TokenFilter`]) applies to: the
    /// token contract's address.
    fn filter_column(&self) -> &'static str {
        "token_address"
    }

    fn indexes(&self) -> &'static [Index] {
        &[]
    }

    fn load_mode(&self) -> LoadMode {
        LoadMode::ReplaceDay
    }

    /// Whether the first run loads the whole table at once, where the source
    /// has one (the seed's `is_tokens_first_run`).
    fn full_load_first(&self) -> bool {
        false
    }

    fn bigquery(&self) -> BigQueryExtraction;

    fn rpc(&self) -> RpcExtraction;

    /// Rows from BigQuery cells in [`BigQueryExtraction::Table`]'s column
    /// order; `first_row` numbers them for errors.
    fn parse_bigquery(&self, rows: &[Vec<Option<&str>>], first_row: u64) -> Result<Rows, RowError> {
        let _ = (rows, first_row);
        Err(RowError::new(
            first_row,
            "row",
            None,
            "belongs to a dataset that is not read from a BigQuery table",
        ))
    }

    /// Rows from logs (both sources), with the logs the rules skipped.
    fn decode_logs(&self, logs: &[LogRef<'_>]) -> Result<DecodedLogs, DecodeError> {
        let _ = logs;
        Err(DecodeError::field(
            "topics",
            self.name(),
            "a dataset decoded from logs",
        ))
    }

    /// The statements that merge the staged rows (`{staging}`) into the
    /// table (`{table}`), for [`LoadMode::Merge`] datasets.
    fn merge_statements(&self, dialect: Dialect) -> &'static [&'static str] {
        let _ = dialect;
        &[]
    }

    fn derived(&self) -> &'static [Derived] {
        &[]
    }
}

/// What a batch of logs decoded into.
#[derive(Debug)]
pub struct DecodedLogs {
    pub rows: Rows,
    /// One warning per log the rules skipped (never silently dropped).
    pub skipped: Vec<String>,
}

/// A registered dataset: cheap to copy, compared and hashed by name.
#[derive(Clone, Copy)]
pub struct Pipeline(pub &'static dyn Dataset);

impl Pipeline {
    /// Every registered dataset ([`crate::datasets::ALL`]).
    pub const ALL: &'static [Pipeline] = crate::datasets::ALL;

    pub fn name(self) -> &'static str {
        self.0.name()
    }

    pub fn dataset(self) -> &'static dyn Dataset {
        self.0
    }

    /// Every registered dataset, in the order status and the dashboard show them.
    pub fn all() -> &'static [Pipeline] {
        crate::datasets::ALL
    }

    pub fn column_names(self) -> impl Iterator<Item = &'static str> {
        self.0.columns().iter().map(|c| c.name)
    }
}

impl std::ops::Deref for Pipeline {
    type Target = dyn Dataset;

    fn deref(&self) -> &Self::Target {
        self.0
    }
}

impl PartialEq for Pipeline {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for Pipeline {}

impl Hash for Pipeline {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name().hash(state);
    }
}

impl PartialOrd for Pipeline {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pipeline {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.name().cmp(other.name())
    }
}

impl fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pipeline({})", self.name())
    }
}

impl fmt::Display for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown pipeline '{given}': expected one of {}", known())]
pub struct UnknownPipeline {
    pub given: String,
}

fn known() -> String {
    Pipeline::all()
        .iter()
        .map(|p| p.name())
        .collect::<Vec<_>>()
        .join(", ")
}

impl FromStr for Pipeline {
    type Err = UnknownPipeline;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Pipeline::all()
            .iter()
            .copied()
            .find(|p| p.name() == s)
            .ok_or_else(|| UnknownPipeline {
                given: s.to_string(),
            })
    }
}

/// Receives one row's cells, in the dataset's column order.
pub trait CellWriter {
    fn text(&mut self, value: Option<&str>);
    fn uint(&mut self, value: Option<&Uint>);
    fn int(&mut self, value: i64);
    fn timestamp(&mut self, value: DateTime<Utc>);
    fn boolean(&mut self, value: bool);
}

/// One typed row of a dataset.
pub trait Row: Send + Sync + fmt::Debug + 'static {
    /// Writes every cell in the dataset's column order.
    fn write(&self, out: &mut dyn CellWriter);

    /// The value of the dataset's day column.
    fn day_time(&self) -> DateTime<Utc>;
}

/// A batch of one dataset's rows, the unit that flows from source to sink.
pub struct Rows {
    pipeline: Pipeline,
    batch: Box<dyn Batch>,
}

trait Batch: Send + Sync {
    fn len(&self) -> usize;
    fn row(&self, index: usize) -> &dyn Row;
    fn split_off(&mut self, at: usize) -> Box<dyn Batch>;
    fn as_any(&self) -> &dyn Any;
}

impl<R: Row> Batch for Vec<R> {
    fn len(&self) -> usize {
        Vec::len(self)
    }

    fn row(&self, index: usize) -> &dyn Row {
        &self[index]
    }

    fn split_off(&mut self, at: usize) -> Box<dyn Batch> {
        Box::new(Vec::split_off(self, at))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Rows {
    pub fn new<R: Row>(pipeline: Pipeline, rows: Vec<R>) -> Rows {
        Rows {
            pipeline,
            batch: Box::new(rows),
        }
    }

    /// Parses BigQuery table rows one by one with `parse`, numbering them
    /// from `first_row` so an error names its row.
    pub fn parse_cells<R: Row>(
        pipeline: Pipeline,
        rows: &[Vec<Option<&str>>],
        first_row: u64,
        parse: impl Fn(&[Option<&str>], u64) -> Result<R, RowError>,
    ) -> Result<Rows, RowError> {
        let parsed = rows
            .iter()
            .zip(first_row..)
            .map(|(cells, n)| parse(cells, n))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Rows::new(pipeline, parsed))
    }

    pub fn pipeline(&self) -> Pipeline {
        self.pipeline
    }

    pub fn len(&self) -> usize {
        self.batch.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = &dyn Row> + '_ {
        (0..self.batch.len()).map(|i| self.batch.row(i))
    }

    /// The rows as their concrete type, when they are of type `R`.
    pub fn as_slice<R: Row>(&self) -> Option<&[R]> {
        self.batch
            .as_any()
            .downcast_ref::<Vec<R>>()
            .map(Vec::as_slice)
    }

    /// Splits into batches of at most `size` rows, in order.
    pub fn into_chunks(mut self, size: usize) -> Vec<Rows> {
        let size = size.max(1);
        let mut chunks = Vec::with_capacity(self.len() / size + 1);
        while self.len() > size {
            let rest = self.batch.split_off(size);
            let head = std::mem::replace(&mut self.batch, rest);
            chunks.push(Rows {
                pipeline: self.pipeline,
                batch: head,
            });
        }
        if !self.is_empty() {
            chunks.push(self);
        }
        chunks
    }
}

impl fmt::Debug for Rows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Rows({}, {} rows)", self.pipeline, self.len())
    }
}

/// A [`CellWriter`] that checks a row against its dataset's columns: used by
/// each dataset's tests so a row type and its column list cannot drift.
#[derive(Debug, Default)]
pub struct ColumnCheck {
    pub cells: Vec<(ColumnType, bool)>,
}

impl ColumnCheck {
    /// The mismatch between what `row` wrote and `columns`, if any.
    pub fn check(columns: &[Column], row: &dyn Row) -> Result<(), String> {
        let mut check = ColumnCheck::default();
        row.write(&mut check);
        if check.cells.len() != columns.len() {
            return Err(format!(
                "the row wrote {} cells for {} columns",
                check.cells.len(),
                columns.len()
            ));
        }
        for (column, (kind, is_null)) in columns.iter().zip(&check.cells) {
            if column.kind != *kind {
                return Err(format!(
                    "column {} is {:?} but the row wrote {kind:?}",
                    column.name, column.kind
                ));
            }
            if *is_null && !column.nullable {
                return Err(format!(
                    "column {} is required but the row wrote NULL",
                    column.name
                ));
            }
        }
        Ok(())
    }
}

impl CellWriter for ColumnCheck {
    fn text(&mut self, value: Option<&str>) {
        self.cells.push((ColumnType::Text, value.is_none()));
    }

    fn uint(&mut self, value: Option<&Uint>) {
        self.cells.push((ColumnType::Uint, value.is_none()));
    }

    fn int(&mut self, _value: i64) {
        self.cells.push((ColumnType::Int, false));
    }

    fn timestamp(&mut self, _value: DateTime<Utc>) {
        self.cells.push((ColumnType::Timestamp, false));
    }

    fn boolean(&mut self, _value: bool) {
        self.cells.push((ColumnType::Bool, false));
    }
}
