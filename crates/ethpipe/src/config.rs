//! Settings: command-line flags and `ETHPIPE_*` variables (already merged by
//! clap) over `ethpipe.toml`, over defaults.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use ethpipe_core::Pipeline;

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
    /// `[pipelines.token_transfers]`, `[pipelines.tokens]`.
    #[serde(default)]
    pub pipelines: BTreeMap<String, PipelineFileConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineFileConfig {
    /// Folder of `.sql` model files run after each day loads (relative to the config file).
    pub models: Option<PathBuf>,
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
    /// Model folders per pipeline, resolved against the config file's folder.
    pub model_folders: HashMap<Pipeline, PathBuf>,
}

impl Settings {
    pub fn resolve(args: &GlobalArgs) -> Result<Settings, Fatal> {
        let (file, config_dir) = load_file(args.config.as_deref())?;
        let mut model_folders = HashMap::new();
        for (name, pipeline_config) in &file.pipelines {
            let pipeline: Pipeline = name.parse().map_err(|e| {
                Fatal::usage(format!("in the config file: [pipelines.{name}]: {e}"))
            })?;
            if let Some(folder) = &pipeline_config.models {
                model_folders.insert(pipeline, config_dir.join(folder));
            }
        }
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
            model_folders,
        })
    }
}

/// The parsed file and the folder relative paths in it are resolved against.
fn load_file(explicit: Option<&Path>) -> Result<(FileConfig, PathBuf), Fatal> {
    let path = match explicit {
        Some(path) => path.to_path_buf(),
        None if Path::new(DEFAULT_CONFIG_FILE).is_file() => PathBuf::from(DEFAULT_CONFIG_FILE),
        None => return Ok((FileConfig::default(), PathBuf::from("."))),
    };
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Fatal::usage(format!(
            "cannot read the config file {}: {e}",
            path.display()
        ))
    })?;
    let parsed: FileConfig = toml::from_str(&text).map_err(|e| {
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
    })?;
    Ok((parsed, dir))
}
