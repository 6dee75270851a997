//! ethpipe's orchestrator: it wires a source to a sink for one (pipeline, scope)
//! and keeps the ledger honest.
//!
//! - [`runner`]: one run — ledger start, stream, reconcile counts, commit or fail.
//! - [`models`]: SQL model blocks run after a day loads.
//! - [`export`]: loaded days copied out to Parquet or CSV files.
//! - [`scheduler`]: the reconciling scheduler; [`health`]: what it reports.
//! - [`jobs`]: backfill jobs recorded in the ledger, resumed after a restart.

pub mod backfill;
pub mod cancel;
pub mod export;
pub mod health;
pub mod jobs;
pub mod models;
pub mod runner;
pub mod scheduler;
pub mod verify;

pub use cancel::{Cancel, CancelHandle};
pub use models::Model;

pub use runner::{run, FailureCause, ModelFailed, Progress, RunError, RunOutcome, RunRequest};
