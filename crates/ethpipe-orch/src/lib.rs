//! ethpipe's orchestrator: it wires a source to a sink for one (pipeline, scope)
//! and keeps the ledger honest.
//!
//! - [`runner`]: one run — ledger start, stream, reconcile counts, commit or fail.

pub mod runner;

pub use runner::{run, Progress, RunError, RunOutcome, RunRequest};
