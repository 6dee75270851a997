//! Where ethpipe reads token data from.
//!
//! Each source implements [`ethpipe_core::Source`]: given a pipeline and a day it
//! spawns the extraction and streams typed, validated batches to the caller.
//!
//! - [`bigquery`]: Google BigQuery's public `crypto_ethereum` dataset (or any
//!   BigQuery-compatible REST endpoint).

pub mod bigquery;
pub mod retry;
pub mod rpc;

pub use bigquery::{BigQueryConfig, BigQuerySource, Credentials};
