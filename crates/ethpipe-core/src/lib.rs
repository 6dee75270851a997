//! The vocabulary every other ethpipe crate shares.
//!
//! - [`dataset`]: the `Dataset` contract (columns, key, day column, row type,
//!   extraction per source, derived steps) and [`Rows`], the typed batches
//!   that flow from a source to a sink; [`datasets`] holds one module per
//!   dataset and the registry.
//! - [`validate`], [`cells`], [`evm`]: edge validation of source values
//!   (addresses and hashes shape-checked and lowercased, uint256 values kept as
//!   exact decimal strings, timestamps UTC) and the log word rules.
//! - [`TokenFilter`]: the token contracts a pipeline may be limited to.
//! - [`Day`]: a UTC calendar day, the unit of work; [`Scope`]: what a run loads.
//! - [`Source`] and [`RowStream`]: the contract between an extractor and the
//!   orchestrator. A source yields bounded batches through a channel, so a day is
//!   never held in memory, and ends with the row count it promised.

pub mod cells;
pub mod dataset;
pub mod datasets;
pub mod day;
pub mod decimal;
pub mod evm;
pub mod filter;
pub mod pipeline;
pub mod source;
pub mod validate;

pub use dataset::{Dataset, Pipeline, Row, Rows};
pub use datasets::{Erc1155Transfer, Token, TokenTransfer};
pub use day::{Day, DayParseError};
pub use filter::{FilterError, TokenFilter};
pub use pipeline::{Scope, Slice};
pub use source::{
    Completeness, Gate, Recheck, RowStream, Source, SourceError, SourceEvent, SourceEventSender,
};
pub use validate::{RowError, Uint};

/// An error's message followed by each of its causes (`a: b: c`), for the
/// libraries whose own message hides the cause.
pub fn with_causes(head: String, error: &dyn std::error::Error) -> String {
    let mut text = head;
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
