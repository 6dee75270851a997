//! The BigQuery source: partition-pruned, parameterised queries against
//! `crypto_ethereum`, read page by page into typed rows.
//!
//! Built on `gcp-bigquery-client` (see docs/architecture.md for why): its
//! service-account flow posts a JWT-bearer grant to the key's own `token_uri`,
//! it supports Application Default Credentials, and its base URL can point at
//! any BigQuery-compatible server.
//!
//! - [`query`]: the SQL and its parameters.
//! - [`page`]: turning one result page into rows.
//! - [`extract`]: the job/page loop that feeds the stream.

mod credentials;
mod extract;
pub mod page;
pub mod query;

use std::sync::Arc;
use std::time::Duration;

use ethpipe_core::{Day, Pipeline, RowStream, Slice, Source, SourceError, TokenFilter};
use gcp_bigquery_client::client_builder::ClientBuilder;
use gcp_bigquery_client::error::BQError;
use gcp_bigquery_client::Client;

use crate::retry::RetryPolicy;

pub use credentials::Credentials;

const GOOGLE_V2_URL: &str = "https://bigquery.googleapis.com/bigquery/v2";

/// The public dataset BigQuery's Ethereum tables live in.
pub const DEFAULT_DATASET: &str = "bigquery-public-data.crypto_ethereum";

#[derive(Debug, Clone)]
pub struct BigQueryConfig {
    pub credentials: Credentials,
    /// Project billed for queries; defaults to the key's `project_id`.
    pub project: Option<String>,
    /// `project.dataset` holding `token_transfers` and `tokens`.
    pub dataset: String,
    /// Base URL of a BigQuery-compatible API; Google's when `None`.
    pub endpoint: Option<String>,
    /// Rows per result page; bounds the memory of one page in flight.
    pub page_size: u32,
    pub retry: RetryPolicyConfig,
}

/// Retry knobs exposed to callers (tests shorten them).
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicyConfig {
    pub attempts: u32,
    pub base_delay: Duration,
}

impl Default for RetryPolicyConfig {
    fn default() -> Self {
        let policy = RetryPolicy::default();
        RetryPolicyConfig {
            attempts: policy.attempts,
            base_delay: policy.base_delay,
        }
    }
}

impl BigQueryConfig {
    pub fn new(credentials: Credentials) -> Self {
        BigQueryConfig {
            credentials,
            project: None,
            dataset: DEFAULT_DATASET.to_string(),
            endpoint: None,
            page_size: 20_000,
            retry: RetryPolicyConfig::default(),
        }
    }
}

/// A connected BigQuery source; cheap to share across runs.
pub struct BigQuerySource {
    shared: Arc<Shared>,
}

struct Shared {
    /// The client crate, for jobs.query.
    client: Client,
    /// Direct page requests (see `extract::fetch_page` for why).
    http: reqwest::Client,
    tokens: credentials::Tokens,
    base_url: String,
    project: String,
    dataset: query::Dataset,
    page_size: u32,
    retry: RetryPolicy,
}

impl BigQuerySource {
    /// Validates the configuration and builds the client. No request is made
    /// yet; credentials are exchanged for a token on the first query.
    pub async fn connect(config: BigQueryConfig) -> Result<Self, SourceError> {
        let dataset = query::Dataset::parse(&config.dataset)?;
        let loaded = config.credentials.load()?;
        let nothing_configured = matches!(config.credentials, Credentials::ApplicationDefault)
            && !loaded.has_gcloud_file
            && config.project.is_none()
            && loaded.project_id.is_none();
        if nothing_configured {
            return Err(SourceError::Config(format!(
                "no BigQuery credentials found: {}",
                credentials::NO_CREDENTIALS_HINT
            )));
        }
        let project = config
            .project
            .clone()
            .or(loaded.project_id.clone())
            .ok_or_else(|| {
                SourceError::Config(
                    "no BigQuery project to bill: pass --bigquery-project (or ETHPIPE_BIGQUERY_PROJECT)"
                        .to_string(),
                )
            })?;
        let base_url = match &config.endpoint {
            Some(endpoint) => v2_base_url(endpoint)?,
            None => GOOGLE_V2_URL.to_string(),
        };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300))
            .build()
            .map_err(|e| SourceError::Config(format!("cannot build the HTTP client: {e}")))?;
        let mut builder = ClientBuilder::new();
        builder.with_client(http.clone());
        builder.with_v2_base_url(base_url.clone());
        let tokens = loaded.tokens().await?;
        let client = builder
            .build_from_authenticator(Arc::new(tokens.clone()))
            .await
            .map_err(|e| classify("setting up the BigQuery client", e))?;
        Ok(BigQuerySource {
            shared: Arc::new(Shared {
                client,
                http,
                tokens,
                base_url,
                project,
                dataset,
                page_size: config.page_size.max(1),
                retry: RetryPolicy {
                    attempts: config.retry.attempts.max(1),
                    base_delay: config.retry.base_delay,
                    ..RetryPolicy::default()
                },
            }),
        })
    }
}

/// Accepts `http://host:port` or a full `…/bigquery/v2` base URL.
fn v2_base_url(endpoint: &str) -> Result<String, SourceError> {
    let trimmed = endpoint.trim_end_matches('/');
    let valid = (trimmed.starts_with("http://") || trimmed.starts_with("https://"))
        && trimmed.len() > "https://".len();
    if !valid {
        return Err(SourceError::Config(format!(
            "invalid --bigquery-endpoint '{endpoint}': expected an http(s) URL such as https://bigquery.googleapis.com"
        )));
    }
    Ok(if trimmed.ends_with("/bigquery/v2") {
        trimmed.to_string()
    } else {
        format!("{trimmed}/bigquery/v2")
    })
}

impl Source for BigQuerySource {
    fn name(&self) -> &'static str {
        "bigquery"
    }

    fn extract(&self, slice: Slice) -> RowStream {
        let (sender, stream) = RowStream::channel();
        let shared = Arc::clone(&self.shared);
        tokio::spawn(async move {
            if let Err(error) = extract::run(&shared, &slice, &sender).await {
                // The receiver may be gone (run cancelled); nothing else to tell.
                let _ = sender.send(Err(error)).await;
            }
        });
        stream
    }

    fn count(
        &self,
        pipeline: Pipeline,
        day: Day,
        filter: Option<TokenFilter>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<u64, SourceError>> + Send + '_>>
    {
        Box::pin(extract::count(&self.shared, pipeline, day, filter))
    }
}

/// Sorts a client error into "retry may help" and "fix your setup".
fn classify(context: &str, error: BQError) -> SourceError {
    match error {
        BQError::ResponseError { error } => {
            let body = error.error;
            let reason = body.errors.first().and_then(|e| e.get("reason").cloned());
            let status = u16::try_from(body.code).unwrap_or(0);
            let message = format!(
                "{context}: BigQuery answered {} {}: {}",
                body.code,
                reason.as_deref().unwrap_or(&body.status),
                body.message
            );
            answer_error(message, reason.as_deref(), status)
        }
        BQError::RequestError(e) => {
            SourceError::Transient(format!("{context}: {}", describe_reqwest(&e)))
        }
        BQError::AuthError(e) => SourceError::Config(format!(
            "{context}: could not obtain a BigQuery access token: {e} ({})",
            credentials::NO_CREDENTIALS_HINT
        )),
        BQError::YupAuthError(e) => SourceError::Config(format!(
            "{context}: could not obtain a BigQuery access token: {e} ({})",
            credentials::NO_CREDENTIALS_HINT
        )),
        other => SourceError::Transient(format!("{context}: {other}")),
    }
}

/// What an error answer means, from its `reason` when BigQuery gave one and
/// from the HTTP status otherwise: transient answers are retried with backoff
/// (`RetryPolicy`), the others fail at once with a hint on what to fix.
fn answer_error(message: String, reason: Option<&str>, status: u16) -> SourceError {
    if retry_may_help(reason, status) {
        return SourceError::Transient(message);
    }
    match fix_hint(reason, status) {
        Some(hint) => SourceError::Config(format!("{message} ({hint})")),
        None => SourceError::Config(message),
    }
}

/// Google's documented error reasons
/// (https://cloud.google.com/bigquery/docs/error-messages) sorted by whether
/// asking again can succeed. A reason missing from the list falls back on the
/// status: 429 and 5xx (but 501, "not implemented") are worth a retry.
fn retry_may_help(reason: Option<&str>, status: u16) -> bool {
    match reason {
        // Throttling arrives as 403. A daily quotaExceeded may outlast the
        // retry bound; the run then fails as transient and a later run (the
        // scheduler's next tick) tries again, which is what the quota needs.
        Some("rateLimitExceeded" | "quotaExceeded" | "jobRateLimitExceeded") => true,
        // Server-side faults; Google asks for a retry with exponential backoff.
        Some(
            "backendError" | "internalError" | "jobBackendError" | "jobInternalError"
            | "tableUnavailable",
        ) => true,
        // The credentials, billing, dataset or query must change, or the job
        // was cancelled or outgrew a limit that the same query will hit again.
        Some(
            "accessDenied"
            | "billingNotEnabled"
            | "billingTierLimitExceeded"
            | "blocked"
            | "invalid"
            | "invalidQuery"
            | "invalidUser"
            | "badRequest"
            | "attributeError"
            | "notFound"
            | "duplicate"
            | "notImplemented"
            | "proxyAuthenticationRequired"
            | "resourceInUse"
            | "resourcesExceeded"
            | "responseTooLarge"
            | "stopped"
            | "timeout"
            | "authError",
        ) => false,
        _ => status == 429 || (status >= 500 && status != 501),
    }
}

/// What the user should look at for a permanent error.
fn fix_hint(reason: Option<&str>, status: u16) -> Option<&'static str> {
    match (reason, status) {
        (Some("billingNotEnabled"), _) => Some("enable billing for the billed project"),
        (Some("notFound"), _) | (None, 404) => {
            Some("check --bigquery-dataset and --bigquery-project")
        }
        (Some("accessDenied" | "blocked" | "authError"), _) | (_, 401 | 403) => {
            Some("check that the credentials' account may run BigQuery jobs in the billed project")
        }
        _ => None,
    }
}

/// reqwest's Display hides the cause ("error sending request"); walk the chain.
fn describe_reqwest(error: &reqwest::Error) -> String {
    ethpipe_core::with_causes(error.without_url_ref_string(), error)
}

trait WithoutUrl {
    fn without_url_ref_string(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_ref_string(&self) -> String {
        if self.is_timeout() {
            "the request timed out".to_string()
        } else if self.is_connect() {
            "could not connect".to_string()
        } else if self.is_decode() {
            "the response was cut off or is not valid JSON".to_string()
        } else {
            "the request failed".to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_gets_the_v2_path_once() {
        assert_eq!(
            v2_base_url("http://127.0.0.1:9050").unwrap(),
            "http://127.0.0.1:9050/bigquery/v2"
        );
        assert_eq!(
            v2_base_url("https://bq.example/bigquery/v2/").unwrap(),
            "https://bq.example/bigquery/v2"
        );
        assert!(v2_base_url("bq.example").is_err());
    }

    fn answer(reason: Option<&str>, status: u16) -> SourceError {
        answer_error(format!("HTTP {status}"), reason, status)
    }

    #[test]
    fn throttling_and_server_faults_are_transient_whatever_the_status() {
        for (reason, status) in [
            ("rateLimitExceeded", 403),
            ("quotaExceeded", 403),
            ("rateLimitExceeded", 429),
            ("backendError", 500),
            ("backendError", 503),
            ("internalError", 500),
            ("jobInternalError", 400),
            ("tableUnavailable", 400),
        ] {
            assert!(
                matches!(answer(Some(reason), status), SourceError::Transient(_)),
                "{reason} {status}"
            );
        }
    }

    #[test]
    fn permissions_billing_and_bad_queries_fail_at_once_with_a_hint() {
        for (reason, status, hint) in [
            ("accessDenied", 403, "may run BigQuery jobs"),
            ("billingNotEnabled", 403, "enable billing"),
            ("notFound", 404, "--bigquery-dataset"),
            ("invalidQuery", 400, ""),
            ("responseTooLarge", 403, "may run BigQuery jobs"),
            ("resourcesExceeded", 400, ""),
            ("notImplemented", 501, ""),
        ] {
            match answer(Some(reason), status) {
                SourceError::Config(message) => assert!(message.contains(hint), "{message}"),
                other => panic!("{reason} {status} gave {other:?}"),
            }
        }
    }

    #[test]
    fn without_a_known_reason_the_status_decides() {
        assert!(matches!(answer(None, 503), SourceError::Transient(_)));
        assert!(matches!(answer(None, 429), SourceError::Transient(_)));
        assert!(matches!(
            answer(Some("somethingNew"), 502),
            SourceError::Transient(_)
        ));
        assert!(matches!(answer(None, 501), SourceError::Config(_)));
        assert!(matches!(answer(None, 403), SourceError::Config(_)));
        assert!(matches!(
            answer(Some("somethingNew"), 400),
            SourceError::Config(_)
        ));
    }
}
