//! The ledger reads: runs, steps, log lines, triggers and pipeline summaries
//! ([`ledger`]), and the figures `/metrics` exports ([`stats`]). They go
//! through the same [`Reader`] as the data reads in [`crate::store`].

pub mod ledger;
pub mod stats;

pub(crate) use crate::store::{timestamp, QueryError, Reader};
