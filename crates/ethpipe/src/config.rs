//! Settings: command-line flags and `ETHPIPE_*` variables (already merged by
//! clap) over `ethpipe.toml`, over defaults.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use ethpipe_core::{Pipeline, TokenFilter};

use ethpipe_sinks::{DatabaseUrl, TriggerDef};
use ethpipe_sources::bigquery::{BigQueryConfig, Credentials, DEFAULT_DATASET};
use ethpipe_sources::rpc::client::RpcClientConfig;
use ethpipe_sources::rpc::finality::Finality;
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
    pub rpc_concurrency: Option<usize>,
    pub rpc_rps: Option<f64>,
    pub rpc_batch_size: Option<usize>,
    pub rpc_timeout: Option<f64>,
    pub rpc_max_addresses: Option<usize>,
    pub rpc_confirmations: Option<u64>,
    pub bigquery_project: Option<String>,
    pub bigquery_dataset: Option<String>,
    pub bigquery_endpoint: Option<String>,
    pub credentials: Option<PathBuf>,
    /// `[pipelines.token_transfers]`, `[pipelines.tokens]`.
    #[serde(default)]
    pub pipelines: BTreeMap<String, PipelineFileConfig>,
    /// `[[triggers]]`: schedules for `ethpipe serve`.
    #[serde(default)]
    pub triggers: Vec<TriggerFileConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerFileConfig {
    pub name: String,
    pub pipeline: String,
    /// Cron (5 fields, or 6 with seconds first) or @hourly/@daily/…, UTC.
    pub schedule: String,
    #[serde(default)]
    pub active: bool,
    #[serde(default = "defaults::day_offset")]
    pub day_offset: i32,
    #[serde(default = "defaults::max_attempts")]
    pub max_attempts: i32,
    #[serde(default = "defaults::backoff_seconds")]
    pub backoff_seconds: i32,
    #[serde(default = "defaults::timeout_seconds")]
    pub timeout_seconds: i32,
    #[serde(default = "defaults::catchup_days")]
    pub catchup_days: i32,
    /// Only these token contracts (else the pipeline's `tokens`, else all).
    pub tokens: Option<Vec<String>>,
}

mod defaults {
    pub fn day_offset() -> i32 {
        1
    }
    pub fn max_attempts() -> i32 {
        3
    }
    pub fn backoff_seconds() -> i32 {
        60
    }
    pub fn timeout_seconds() -> i32 {
        3600
    }
    pub fn catchup_days() -> i32 {
        3
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineFileConfig {
    /// Folder of `.sql` model files run after each day loads (relative to the config file).
    pub models: Option<PathBuf>,
    /// Only these token contracts, unless `--tokens`/`ETHPIPE_TOKENS` says otherwise.
    pub tokens: Option<Vec<String>>,
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
    /// Client settings for `--source rpc` (the URL is `rpc_url`).
    pub rpc: RpcClientConfig,
    /// How `--source rpc` judges a day final (`--rpc-confirmations`).
    pub rpc_finality: Finality,
    pub bigquery: BigQueryConfig,
    /// Model folders per pipeline, resolved against the config file's folder.
    pub model_folders: HashMap<Pipeline, PathBuf>,
    pub triggers: Vec<TriggerDef>,
    /// `tokens` of `[pipelines.NAME]`.
    pub pipeline_filters: HashMap<Pipeline, TokenFilter>,
    /// Each trigger's filter: its own `tokens`, else its pipeline's.
    pub trigger_filters: HashMap<String, TokenFilter>,
    /// Addresses per `eth_getLogs` request.
    pub rpc_max_addresses: Option<usize>,
}

impl Settings {
    pub fn resolve(args: &GlobalArgs) -> Result<Settings, Fatal> {
        let (file, config_dir) = load_file(args.config.as_deref())?;
        let rpc = rpc_client_config(args, &file)?;
        let mut model_folders = HashMap::new();
        let mut pipeline_filters = HashMap::new();
        for (name, pipeline_config) in &file.pipelines {
            let pipeline: Pipeline = name.parse().map_err(|e| {
                Fatal::usage(format!("in the config file: [pipelines.{name}]: {e}"))
            })?;
            if let Some(folder) = &pipeline_config.models {
                model_folders.insert(pipeline, config_dir.join(folder));
            }
            if let Some(tokens) = &pipeline_config.tokens {
                let filter = file_filter(tokens).map_err(|e| {
                    Fatal::usage(format!(
                        "in the config file: [pipelines.{name}] tokens: {e}"
                    ))
                })?;
                pipeline_filters.insert(pipeline, filter);
            }
        }
        let mut trigger_filters = HashMap::new();
        for trigger in &file.triggers {
            let own = trigger
                .tokens
                .as_deref()
                .map(file_filter)
                .transpose()
                .map_err(|e| {
                    Fatal::usage(format!(
                        "in the config file: trigger '{}': tokens: {e}",
                        trigger.name
                    ))
                })?;
            let inherited = trigger
                .pipeline
                .parse::<Pipeline>()
                .ok()
                .and_then(|p| pipeline_filters.get(&p).cloned());
            if let Some(filter) = own.or(inherited) {
                trigger_filters.insert(trigger.name.clone(), filter);
            }
        }
        let rpc_max_addresses = args.rpc_max_addresses.or(file.rpc_max_addresses);
        if rpc_max_addresses == Some(0) {
            return Err(Fatal::usage(
                "invalid --rpc-max-addresses 0: expected 1 or more addresses per request",
            ));
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
        let triggers = file
            .triggers
            .iter()
            .map(trigger_def)
            .collect::<Result<Vec<_>, _>>()?;
        let mut names = std::collections::BTreeSet::new();
        if let Some(duplicate) = triggers.iter().find(|t| !names.insert(t.name.clone())) {
            return Err(Fatal::usage(format!(
                "in the config file: two triggers are named '{}'; names must be unique",
                duplicate.name
            )));
        }
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
        let mut rpc = rpc;
        rpc.retry.attempts = bigquery.retry.attempts;
        Ok(Settings {
            database_url,
            source,
            rpc,
            rpc_finality: args
                .rpc_confirmations
                .or(file.rpc_confirmations)
                .map_or(Finality::FinalizedTag, Finality::Confirmations),
            rpc_url: args.rpc_url.clone().or(file.rpc_url),
            bigquery,
            model_folders,
            triggers,
            pipeline_filters,
            trigger_filters,
            rpc_max_addresses,
        })
    }

    /// The token filter of a command on `pipeline`: `--tokens` (or
    /// `ETHPIPE_TOKENS`, which clap already merged), else the pipeline's
    /// `tokens` in the config file, else none (every token).
    pub fn filter(
        &self,
        pipeline: Pipeline,
        flag: Option<&str>,
    ) -> Result<Option<TokenFilter>, Fatal> {
        match flag {
            Some(text) => TokenFilter::parse_list(text)
                .map(Some)
                .map_err(|e| Fatal::usage(format!("invalid --tokens: {e}"))),
            None => Ok(self.pipeline_filters.get(&pipeline).cloned()),
        }
    }
}

/// A `tokens = [...]` list of the config file.
fn file_filter(tokens: &[String]) -> Result<TokenFilter, ethpipe_core::FilterError> {
    TokenFilter::new(tokens.iter().map(String::as_str))
}

fn rpc_client_config(args: &GlobalArgs, file: &FileConfig) -> Result<RpcClientConfig, Fatal> {
    let mut config = RpcClientConfig::default();
    if let Some(n) = args.rpc_concurrency.or(file.rpc_concurrency) {
        if n == 0 {
            return Err(Fatal::usage(
                "invalid --rpc-concurrency 0: expected 1 or more requests in flight",
            ));
        }
        config.concurrency = n;
    }
    if let Some(n) = args.rpc_batch_size.or(file.rpc_batch_size) {
        if n == 0 {
            return Err(Fatal::usage(
                "invalid --rpc-batch-size 0: expected 1 or more calls per batch",
            ));
        }
        config.batch_size = n;
    }
    if let Some(seconds) = args.rpc_timeout.or(file.rpc_timeout) {
        if !(seconds.is_finite() && seconds > 0.0) {
            return Err(Fatal::usage(format!(
                "invalid --rpc-timeout {seconds}: expected a positive number of seconds"
            )));
        }
        config.timeout = std::time::Duration::from_secs_f64(seconds);
    }
    if let Some(rps) = args.rpc_rps.or(file.rpc_rps) {
        if !(rps.is_finite() && rps > 0.0) {
            return Err(Fatal::usage(format!(
                "invalid --rpc-rps {rps}: expected a positive number of requests per second"
            )));
        }
        config.requests_per_second = Some(rps);
    }
    Ok(config)
}

fn trigger_def(t: &TriggerFileConfig) -> Result<TriggerDef, Fatal> {
    let problem =
        |what: String| Fatal::usage(format!("in the config file: trigger '{}': {what}", t.name));
    let pipeline: Pipeline = t
        .pipeline
        .parse()
        .map_err(|e: ethpipe_core::dataset::UnknownPipeline| problem(e.to_string()))?;
    ethpipe_orch::scheduler::parse_schedule(&t.schedule).map_err(|e| problem(e.to_string()))?;
    let checks = [
        (t.name.trim().is_empty(), "name is empty"),
        (t.day_offset < 0, "day_offset must be 0 or more"),
        (t.max_attempts < 1, "max_attempts must be 1 or more"),
        (t.backoff_seconds < 0, "backoff_seconds must be 0 or more"),
        (t.timeout_seconds < 1, "timeout_seconds must be 1 or more"),
        (t.catchup_days < 0, "catchup_days must be 0 or more"),
    ];
    if let Some((_, what)) = checks.iter().find(|(bad, _)| *bad) {
        return Err(problem(what.to_string()));
    }
    Ok(TriggerDef {
        name: t.name.clone(),
        pipeline: pipeline.name().to_string(),
        schedule: t.schedule.clone(),
        active: t.active,
        day_offset: t.day_offset,
        max_attempts: t.max_attempts,
        backoff_seconds: t.backoff_seconds,
        timeout_seconds: t.timeout_seconds,
        catchup_days: t.catchup_days,
    })
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
