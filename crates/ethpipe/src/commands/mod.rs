//! One module per subcommand; each turns resolved settings into calls on the
//! library crates and prints the result.

mod migrate;
mod run;
mod status;

use std::sync::Arc;

use ethpipe_core::Source;
use ethpipe_sinks::Database;
use ethpipe_sources::BigQuerySource;

use crate::args::{Cli, Command};
use crate::config::{Settings, SourceKind};
use crate::Fatal;

pub async fn dispatch(cli: Cli) -> Result<(), Fatal> {
    let settings = Settings::resolve(&cli.global)?;
    match cli.command {
        Command::Run(args) => run::run(&settings, args).await,
        Command::Migrate => migrate::migrate(&settings).await,
        Command::Status(args) => status::status(&settings, args).await,
    }
}

/// Connects to the database and applies migrations; failures are setup errors.
pub async fn open_database(settings: &Settings) -> Result<Database, Fatal> {
    Database::open(&settings.database_url)
        .await
        .map_err(Fatal::usage)
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
        SourceKind::Rpc if settings.rpc_url.is_none() => Err(Fatal::usage(
            "--source rpc needs --rpc-url URL (or ETHPIPE_RPC_URL)",
        )),
        SourceKind::Rpc => Err(Fatal::usage(
            "--source rpc is not available in this version yet; use --source bigquery",
        )),
    }
}
