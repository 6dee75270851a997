//! ethpipe's HTTP side, served by `ethpipe serve` next to the scheduler.
//!
//! - The **dashboard** (`/`, `/runs`, `/runs/{id}`): pipelines, triggers, run
//!   history and logs, "run now" and backfills, with runs in progress polled
//!   live. Pages are rendered on the server ([`pages`]); a small script
//!   (`assets/app.js`, compiled into the binary) only polls and posts.
//! - The **serving pages** (`/tokens`, `/tokens/{address}`,
//!   `/addresses/{address}`, `/days/{day}`) over `ethereum.*`, with charts
//!   drawn as SVG on the server ([`charts`]).
//! - The **JSON API** under `/api/v1` ([`api`]) for everything the pages
//!   show, described by `/api/v1/openapi.json` ([`openapi`]).
//! - `/healthz`, `/readyz` and `/metrics` ([`metrics`]).
//!
//! Every read goes through [`queries::Reader`]: PostgreSQL reads run in
//! read-only transactions with a statement timeout on a small pool; SQLite
//! reads open the file read-only. All SQL lives in [`queries`] and is
//! parameterised. Mutations (run, backfill, trigger toggle) go through
//! [`jobs::Actions`], which calls the orchestrator in this process.
//!
//! ```no_run
//! # async fn example(reader: ethpipe_server::queries::Reader) -> Result<(), String> {
//! use ethpipe_server::{Server, ServerConfig};
//! let config = ServerConfig::new("127.0.0.1:6789".parse().unwrap(), None)?;
//! let server = Server::bind(config, reader, None).await.map_err(|e| e.to_string())?;
//! server.run(std::future::pending()).await.map_err(|e| e.to_string())?;
//! # Ok(()) }
//! ```

pub mod api;
pub mod charts;
pub mod error;
pub mod jobs;
pub mod metrics;
pub mod openapi;
pub mod pages;
pub mod params;
pub mod queries;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, put};
use axum::Router;

use crate::jobs::Actions;
use crate::metrics::HttpMetrics;
use crate::queries::Reader;

/// Largest request body accepted: mutations take a few small JSON fields.
pub const BODY_LIMIT_BYTES: usize = 16 * 1024;

/// Where the server listens and who may change things.
#[derive(Clone)]
pub struct ServerConfig {
    pub bind: SocketAddr,
    /// Required as `Authorization: Bearer …` on mutating endpoints when set.
    api_token: Option<String>,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token never appears in logs or messages.
        f.debug_struct("ServerConfig")
            .field("bind", &self.bind)
            .field("api_token", &self.api_token.as_ref().map(|_| "***"))
            .finish()
    }
}

impl ServerConfig {
    /// Refuses a non-loopback address without a token: anyone who can reach
    /// the port could otherwise start loads.
    pub fn new(bind: SocketAddr, api_token: Option<String>) -> Result<ServerConfig, String> {
        let api_token = match api_token {
            Some(token) if token.trim().is_empty() => {
                return Err(
                    "ETHPIPE_API_TOKEN is set but empty; set a long random value or unset it"
                        .into(),
                )
            }
            other => other,
        };
        if !bind.ip().is_loopback() && api_token.is_none() {
            return Err(format!(
                "refusing to serve on {bind} (not a loopback address) without ETHPIPE_API_TOKEN: \
                 set it to a long random value, or bind to 127.0.0.1"
            ));
        }
        Ok(ServerConfig { bind, api_token })
    }

    /// Whether mutating endpoints require the bearer token.
    pub fn token_required(&self) -> bool {
        self.api_token.is_some()
    }

    /// Constant-time comparison, so response timing does not reveal how much
    /// of a guessed token was right.
    pub fn token_matches(&self, presented: &str) -> bool {
        let Some(expected) = &self.api_token else {
            return true;
        };
        let (a, b) = (expected.as_bytes(), presented.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<ServerConfig>,
    pub reader: Arc<Reader>,
    /// `None` when the server was started without a source (reads only).
    pub actions: Option<Arc<Actions>>,
    pub http_metrics: Arc<HttpMetrics>,
}

/// The whole application: pages, API, health and metrics.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/openapi.json", get(api::openapi))
        .route("/pipelines", get(api::pipelines))
        .route("/triggers", get(api::triggers))
        .route("/triggers/{name}/active", put(api::set_trigger_active))
        .route("/runs", get(api::runs).post(api::start_run))
        .route("/runs/{id}", get(api::run))
        .route("/runs/{id}/logs", get(api::run_logs))
        .route("/backfills", get(api::backfills).post(api::start_backfill))
        .route("/backfills/{id}", get(api::backfill))
        .route("/tokens", get(api::search_tokens))
        .route("/tokens/{address}", get(api::token))
        .route("/tokens/{address}/daily", get(api::token_daily))
        .route("/tokens/{address}/top", get(api::token_top))
        .route(
            "/addresses/{address}/transfers",
            get(api::address_transfers),
        )
        .route("/days/{day}", get(api::day))
        .fallback(api::not_found);
    Router::new()
        .route("/", get(pages::dashboard))
        .route("/runs", get(pages::runs))
        .route("/runs/{id}", get(pages::run))
        .route("/tokens", get(pages::token_search))
        .route("/tokens/{address}", get(pages::token))
        .route("/addresses/{address}", get(pages::address))
        .route("/days", get(pages::days))
        .route("/days/{day}", get(pages::day))
        .route("/assets/app.js", get(pages::script))
        .route("/assets/app.css", get(pages::stylesheet))
        .route("/healthz", get(metrics::healthz))
        .route("/readyz", get(metrics::readyz))
        .route("/metrics", get(metrics::metrics))
        .nest("/api/v1", api)
        .fallback(pages::not_found)
        // Unused verbs on known paths get 405 from axum; bodies beyond the
        // limit get 413 before any handler runs.
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track_requests,
        ))
        .with_state(state)
}

/// A bound, not yet running server.
pub struct Server {
    listener: tokio::net::TcpListener,
    state: AppState,
}

impl Server {
    /// Binds the listening socket; `--bind 127.0.0.1:0` picks a free port
    /// (see [`Server::local_addr`]).
    pub async fn bind(
        config: ServerConfig,
        reader: Reader,
        actions: Option<Arc<Actions>>,
    ) -> std::io::Result<Server> {
        let listener = tokio::net::TcpListener::bind(config.bind).await?;
        Ok(Server {
            listener,
            state: AppState {
                config: Arc::new(config),
                reader: Arc::new(reader),
                actions,
                http_metrics: Arc::new(HttpMetrics::default()),
            },
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then finishes the requests in flight.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(self.listener, router(self.state))
            .with_graceful_shutdown(shutdown)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_loopback_needs_a_token() {
        let public: SocketAddr = "0.0.0.0:6789".parse().unwrap();
        let err = ServerConfig::new(public, None).unwrap_err();
        assert!(err.contains("ETHPIPE_API_TOKEN"), "{err}");
        assert!(ServerConfig::new(public, Some("  ".into())).is_err());
        let config = ServerConfig::new(public, Some("s3cret".into())).unwrap();
        assert!(config.token_required());
        assert!(config.token_matches("s3cret"));
        assert!(!config.token_matches("s3cre"));
        assert!(!config.token_matches("s3creT"));
        assert!(!format!("{config:?}").contains("s3cret"));

        let local = ServerConfig::new("127.0.0.1:6789".parse().unwrap(), None).unwrap();
        assert!(!local.token_required());
        assert!(ServerConfig::new("[::1]:6789".parse().unwrap(), None).is_ok());
    }
}
