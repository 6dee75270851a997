//! Settings: command-line flags and `ETHPIPE_*` variables (already merged by
//! clap) over `ethpipe.toml`, over defaults.

use std::path::{Path, PathBuf};

use ethpipe_sinks::DatabaseUrl;
use ethpipe_sources::bigquery::{BigQueryConfig, Credentials, DEFAULT_DATASET};
use serde::Deserialize;

use crate::args::GlobalArgs;
use crate::Fatal;

pub const DEFAULT_DATABASE_URL: &str = "sqlite://ethpipe.db";
const DEFAULT_CONFIG_FILE: &str = "ethpipe.toml";

/// The keys `ethpipe.toml` may hold; unknown keys are an error, so a typo is
/// caught instead of silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub database_url: Option<String>,
    pub source: Option<String>,
    pub rpc_url: Option<String>,
    pub bigquery_project: Option<String>,
    pub bigquery_dataset: Option<String>,
    pub bigquery_endpoint: Option<String>,
    pub credentials: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    BigQuery,
    Rpc,
}

/// Everything a command needs, resolved.
#[derive(Debug)]
pub struct Settings {
    pub database_url: DatabaseUrl,
    pub source: SourceKind,
    pub rpc_url: Option<String>,
    pub bigquery: BigQueryConfig,
}

impl Settings {
    pub fn resolve(args: &GlobalArgs) -> Result<Settings, Fatal> {
        let file = load_file(args.config.as_deref())?;
        let database_url = args
            .database_url
            .clone()
            .or(file.database_url)
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_string());
        let database_url: DatabaseUrl = database_url.parse().map_err(Fatal::usage)?;
        let source = match args.source.clone().or(file.source).as_deref() {
            None | Some("bigquery") => SourceKind::BigQuery,
            Some("rpc") => SourceKind::Rpc,
            Some(other) => {
                return Err(Fatal::usage(format!(
                    "unknown --source '{other}': expected bigquery or rpc"
                )))
            }
        };
        let credentials = match args.credentials.clone().or(file.credentials) {
            Some(path) => Credentials::KeyFile(path),
            None => Credentials::ApplicationDefault,
        };
        let mut bigquery = BigQueryConfig::new(credentials);
        bigquery.project = args.bigquery_project.clone().or(file.bigquery_project);
        bigquery.dataset = args
            .bigquery_dataset
            .clone()
            .or(file.bigquery_dataset)
            .unwrap_or_else(|| DEFAULT_DATASET.to_string());
        bigquery.endpoint = args.bigquery_endpoint.clone().or(file.bigquery_endpoint);
        if let Ok(size) = std::env::var("ETHPIPE_BIGQUERY_PAGE_SIZE") {
            bigquery.page_size = size.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                Fatal::usage(format!(
                    "invalid ETHPIPE_BIGQUERY_PAGE_SIZE '{size}': expected a positive integer"
                ))
            })?;
        }
        if let Ok(attempts) = std::env::var("ETHPIPE_RETRY_ATTEMPTS") {
            bigquery.retry.attempts =
                attempts.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    Fatal::usage(format!(
                        "invalid ETHPIPE_RETRY_ATTEMPTS '{attempts}': expected a positive integer"
                    ))
                })?;
        }
        Ok(Settings {
            database_url,
            source,
            rpc_url: args.rpc_url.clone().or(file.rpc_url),
            bigquery,
        })
    }
}

fn load_file(explicit: Option<&Path>) -> Result<FileConfig, Fatal> {
    let path = match explicit {
        Some(path) => path.to_path_buf(),
        None if Path::new(DEFAULT_CONFIG_FILE).is_file() => PathBuf::from(DEFAULT_CONFIG_FILE),
        None => return Ok(FileConfig::default()),
    };
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Fatal::usage(format!(
            "cannot read the config file {}: {e}",
            path.display()
        ))
    })?;
    toml::from_str(&text).map_err(|e| {
        let problem = e.message().to_string();
        let line = e
            .span()
            .map(|span| text[..span.start].lines().count().max(1))
            .map(|n| format!(" at line {n}"))
            .unwrap_or_default();
        Fatal::usage(format!(
            "invalid config file {}{line}: {problem}",
            path.display()
        ))
    })
}
