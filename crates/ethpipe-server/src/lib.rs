//! ethpipe's HTTP side, served by `ethpipe serve` next to the scheduler.
//!
//! - The **dashboard** (`/`, `/runs`, `/runs/{id}`): pipelines, triggers, run
//!   history and logs, "run now" and backfills, with runs in progress polled
//!   live. Pages are rendered on the server ([`views`]); a small script
//!   (`assets/app.js`, compiled into the binary) only polls and posts.
//! - The **serving pages** (`/tokens`, `/tokens/{address}`,
//!   `/addresses/{address}`, `/days/{day}`) over `ethereum.*`, with charts
//!   drawn as SVG on the server ([`views::charts`]).
//! - The **JSON API** under `/api/v1` ([`http::api`]) for everything the
//!   pages show, described by `/api/v1/openapi.json`, generated from the
//!   handlers and their types ([`http::openapi`]).
//! - `/healthz`, `/readyz` and `/metrics` ([`http::metrics`]).
//!
//! Dependencies point one way: [`http`] (handlers, extractors, the one
//! `AppError`) → [`service`] (the operations both the API and the pages
//! call) → [`store`] (the data reads, one trait with a PostgreSQL and a
//! SQLite implementation) and [`queries`] (the ledger reads); [`http`] renders
//! [`views`]; [`error`] is at the bottom. Mutations (run, backfill, trigger
//! toggle) go through [`service::Actions`], which calls the orchestrator in
//! this process.
//!
//! ```no_run
//! # async fn example(reader: ethpipe_server::store::Reader) -> Result<(), Box<dyn std::error::Error>> {
//! use ethpipe_server::{Server, ServerConfig};
//! let config = ServerConfig::new("127.0.0.1:6789".parse()?, None)?;
//! let server = Server::bind(config, reader, None).await?;
//! server.run(std::future::pending()).await?;
//! # Ok(()) }
//! ```

pub mod error;
pub mod http;
pub mod queries;
pub mod service;
pub mod store;
pub mod views;

pub use http::{router, AppState, ConfigError, Server, ServerConfig};
