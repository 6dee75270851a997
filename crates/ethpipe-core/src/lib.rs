//! The vocabulary every other ethpipe crate shares.
//!
//! - [`TokenTransfer`] and [`Token`]: the rows, typed once and validated at the
//!   edge by the parsers in [`validate`] (addresses and hashes shape-checked and
//!   lowercased, uint256 values kept as exact decimal strings, timestamps UTC).
//! - [`Day`]: a UTC calendar day, the unit of work.
//! - [`Pipeline`] and [`Scope`]: what a run loads.
//! - [`Source`] and [`RowStream`]: the contract between an extractor and the
//!   orchestrator. A source yields bounded batches through a channel, so a day is
//!   never held in memory, and ends with the row count it promised.

pub mod day;
pub mod decimal;
pub mod pipeline;
pub mod rows;
pub mod source;
pub mod validate;

pub use day::{Day, DayParseError};
pub use pipeline::{Pipeline, Scope};
pub use rows::{Rows, Token, TokenTransfer};
pub use source::{RowStream, Source, SourceError, SourceEvent, SourceEventSender};
pub use validate::{RowError, Uint};
