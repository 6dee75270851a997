//! Test support shared by every ethpipe test: real PostgreSQL databases per
//! test, a private PostgreSQL server for tests that restart it, a BigQuery-compatible REST server, service-account keys, fixture rows,
//! a runner for the real `ethpipe` binary and `ethpipe serve` replicas, and for the JSON-RPC source: a real
//! anvil node with the test contracts, a replay server for ethereum-etl's
//! recorded mainnet responses, and a fault-injecting JSON-RPC proxy; for the
//! `erc1155_transfers` dataset, an anvil scenario and the rows it must give,
//! computed independently of ethpipe; and the Python with DuckDB that reads
//! Parquet and CSV files back.

pub mod anvil;
pub mod bigquery;
pub mod chain;
pub mod cli;
pub mod erc1155;
pub mod fixtures;
pub mod keys;
pub mod logs;
pub mod pg;
pub mod pg_cluster;
pub mod pg_tls_front;
pub mod python;
pub mod rpc_proxy;
pub mod rpc_replay;
pub mod serve;
pub mod tcp_proxy;

pub use anvil::{Anvil, AnvilOptions};
pub use bigquery::{FakeBigQuery, Faults};
pub use chain::{Arg, Artifact, Chain, Sent, Tx, TRANSFER_TOPIC};
pub use cli::{Ethpipe, Output};
pub use erc1155::{Erc1155Row, Erc1155Scenario, Expected, SkippedLog};
pub use fixtures::{FixtureToken, FixtureTransfer};
pub use keys::ServiceAccount;
pub use logs::FixtureLog;
pub use pg::TestDatabase;
pub use pg_cluster::PrivatePostgres;
pub use pg_tls_front::PgTlsFront;
pub use python::{python, run_python};
pub use rpc_proxy::{Fault, LogLimitWording, Match, RpcProxy};
pub use rpc_replay::{ReplayOptions, RpcReplay};
pub use tcp_proxy::{CutPoint, TcpProxy};
