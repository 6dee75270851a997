//! Test support shared by every ethpipe test: real PostgreSQL databases per
//! test, a BigQuery-compatible REST server, service-account keys, fixture rows,
//! and a runner for the real `ethpipe` binary.

pub mod bigquery;
pub mod cli;
pub mod fixtures;
pub mod keys;
pub mod pg;

pub use bigquery::{FakeBigQuery, Faults};
pub use cli::{Ethpipe, Output};
pub use fixtures::{FixtureToken, FixtureTransfer};
pub use keys::ServiceAccount;
pub use pg::TestDatabase;
