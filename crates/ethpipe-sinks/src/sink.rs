//! The `Sink` contract: a store that takes a day of any dataset and commits
//! it atomically. A sink knows column types, never a dataset: everything it
//! writes comes from the dataset's description ([`ethpipe_core::Dataset`]).

use async_trait::async_trait;
use ethpipe_core::{Day, Pipeline, Rows, Slice, TokenFilter};

use crate::files::RowSink;
use crate::{Commit, Committed, SinkError};

#[async_trait]
pub trait Sink: Send + Sync {
    /// Opens a staging area for one slice (dataset, scope, token filter);
    /// nothing is visible until [`DayWriter::commit`]. A day loaded with a
    /// filter replaces only the rows of the filter's tokens in that day.
    async fn begin(&self, slice: &Slice) -> Result<Box<dyn DayWriter>, SinkError>;

    /// The statements that create a dataset's table and indexes.
    fn ddl(&self, pipeline: Pipeline) -> Vec<String>;

    /// Rows of a dataset's table within a day, of the filter's tokens only
    /// when one is given (for `verify` and tests).
    async fn count_day(
        &self,
        pipeline: Pipeline,
        day: Day,
        filter: Option<&TokenFilter>,
    ) -> Result<u64, SinkError>;

    /// Streams a day's rows back out, in key order, cell by cell into `out`
    /// (`ethpipe export`). Returns the rows read.
    async fn read_day(
        &self,
        pipeline: Pipeline,
        day: Day,
        out: &mut dyn RowSink,
    ) -> Result<u64, SinkError>;
}

/// A day being loaded: rows stream into staging, then [`DayWriter::commit`]
/// swaps them in. Dropping it without committing discards everything.
#[async_trait]
pub trait DayWriter: Send {
    async fn write(&mut self, rows: &Rows) -> Result<(), SinkError>;

    fn rows_written(&self) -> u64;

    /// Replaces the day (or merges a full load), runs the dataset's derived
    /// steps and the commit's SQL models, and records the run's outcome, all
    /// in one transaction. Returns the steps it performed, for the ledger.
    async fn commit(self: Box<Self>, commit: Commit) -> Result<Committed, SinkError>;
}
