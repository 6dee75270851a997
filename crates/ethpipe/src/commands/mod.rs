//! One module per subcommand; each turns resolved settings into calls on the
//! library crates and prints the result.

mod backfill;
mod export;
mod migrate;
mod run;
mod serve;
mod status;
mod trigger;
mod verify;

use std::sync::Arc;

use ethpipe_core::Source;
use ethpipe_sinks::Database;
use ethpipe_sources::rpc::{RpcConfig, RpcSource};
use ethpipe_sources::BigQuerySource;

use crate::args::{Cli, Command};
use crate::config::{Settings, SourceKind};
use crate::Fatal;

pub async fn dispatch(cli: Cli) -> Result<(), Fatal> {
    let settings = Settings::resolve(&cli.global)?;
    match cli.command {
        Command::Run(args) => run::run(&settings, args).await,
        Command::Backfill(args) => backfill::backfill(&settings, args).await,
        Command::Verify(args) => verify::verify(&settings, args).await,
        Command::Serve(args) => serve::serve(&settings, args).await,
        Command::Trigger(args) => trigger::trigger(&settings, args).await,
        Command::Migrate => migrate::migrate(&settings).await,
        Command::Status(args) => status::status(&settings, args).await,
        Command::Export(args) => export::export(&settings, args).await,
    }
}

/// Connects to the database, applies migrations and saves the configured
/// triggers; failures are setup errors.
pub async fn open_database(settings: &Settings) -> Result<Database, Fatal> {
    open_database_reporting(settings, &ethpipe_sinks::postgres::upgrade::Quiet).await
}

/// [`open_database`], telling `progress` how a long schema upgrade advances.
pub async fn open_database_reporting(
    settings: &Settings,
    progress: &dyn ethpipe_sinks::postgres::upgrade::UpgradeProgress,
) -> Result<Database, Fatal> {
    let database = Database::open_reporting(&settings.database_url, progress)
        .await
        .map_err(Fatal::usage)?;
    if !settings.triggers.is_empty() {
        database
            .ledger()
            .sync_triggers(&settings.triggers)
            .await
            .map_err(Fatal::usage)?;
    }
    Ok(database)
}

/// Ctrl-C / SIGTERM: the first asks running work to stop (in-flight days roll
/// back and are marked failed), the second exits at once.
pub fn shutdown_on_signals() -> ethpipe_orch::Cancel {
    let (handle, cancel) = ethpipe_orch::Cancel::new();
    tokio::spawn(async move {
        let mut count = 0;
        loop {
            wait_for_signal().await;
            count += 1;
            if count == 1 {
                eprintln!("stopping: in-flight days roll back (press Ctrl-C again to exit now)");
                handle.cancel("shutdown requested");
            } else {
                std::process::exit(130);
            }
        }
    });
    cancel
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Reads a pipeline's SQL models, if it has a folder configured.
pub fn load_models(
    settings: &Settings,
    pipeline: ethpipe_core::Pipeline,
) -> Result<Vec<ethpipe_orch::Model>, Fatal> {
    match settings.model_folders.get(&pipeline) {
        Some(folder) => ethpipe_orch::models::load_folder(folder).map_err(Fatal::usage),
        None => Ok(Vec::new()),
    }
}

/// Builds the configured source. Nothing is sent over the network yet.
pub async fn open_source(settings: &Settings) -> Result<Arc<dyn Source>, Fatal> {
    match settings.source {
        SourceKind::BigQuery => {
            let source = BigQuerySource::connect(settings.bigquery.clone())
                .await
                .map_err(Fatal::usage)?;
            Ok(Arc::new(source))
        }
        SourceKind::Rpc => {
            let url = settings.rpc_url.as_deref().ok_or_else(|| {
                Fatal::usage("--source rpc needs --rpc-url URL (or ETHPIPE_RPC_URL)")
            })?;
            let mut config = RpcConfig::new(url);
            config.client = settings.rpc.clone();
            if let Some(max) = settings.rpc_max_addresses {
                config.max_addresses = max;
            }
            config.finality = settings.rpc_finality;
            Ok(Arc::new(RpcSource::connect(config).map_err(Fatal::usage)?))
        }
    }
}
