//! The HTTP edge: routes, extractors, the one error type, and the server.
//! Handlers only translate HTTP ⇄ [`Service`] calls: [`api`] answers JSON,
//! [`pages`] renders [`crate::views`]; [`metrics`] serves `/healthz`,
//! `/readyz` and `/metrics` and times every request.

pub mod api;
pub mod error;
pub mod extract;
pub mod inputs;
pub mod metrics;
pub mod openapi;
pub mod pages;
pub mod params;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;

use crate::service::{Actions, Service};
use crate::store::Reader;
use error::BODY_LIMIT_BYTES;
use metrics::HttpMetrics;

/// Where the server listens and who may change things.
#[derive(Clone)]
pub struct ServerConfig {
    pub bind: SocketAddr,
    /// Required as `Authorization: Bearer …` on mutating endpoints when set.
    api_token: Option<String>,
}

/// A configuration the server refuses to run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("ETHPIPE_API_TOKEN is set but empty; set a long random value or unset it")]
    EmptyToken,
    #[error(
        "refusing to serve on {0} (not a loopback address) without ETHPIPE_API_TOKEN: \
         set it to a long random value, or bind to 127.0.0.1"
    )]
    PublicWithoutToken(SocketAddr),
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
    pub fn new(bind: SocketAddr, api_token: Option<String>) -> Result<ServerConfig, ConfigError> {
        if api_token.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return Err(ConfigError::EmptyToken);
        }
        if !bind.ip().is_loopback() && api_token.is_none() {
            return Err(ConfigError::PublicWithoutToken(bind));
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
    pub service: Arc<Service>,
    pub http_metrics: Arc<HttpMetrics>,
}

/// The whole application: pages, API, health and metrics.
pub fn router(state: AppState) -> Router {
    let (api, _document) = api::router();
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
        .fallback(pages::not_found)
        // Errors of everything above are HTML pages; the API's stay JSON.
        .layer(axum::middleware::map_response(error::html_error_pages))
        .nest("/api/v1", api)
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
                service: Arc::new(Service::new(reader, actions)),
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
        assert!(err.to_string().contains("ETHPIPE_API_TOKEN"), "{err}");
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
