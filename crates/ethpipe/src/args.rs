//! Command-line arguments. Every global option has an `ETHPIPE_*` variable and
//! a key in `ethpipe.toml`; precedence is flag > env > file > default, merged in
//! `config.rs` (options here are `Option`s so "not given" is visible).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use ethpipe_core::{Day, Pipeline};

#[derive(Debug, Parser)]
#[command(
    name = "ethpipe",
    version,
    about = "Ethereum token data (tokens, token_transfers) into a database you own",
    long_about = "ethpipe loads BigQuery's crypto_ethereum tokens and token_transfers tables into PostgreSQL \
                  or SQLite, one UTC day at a time, atomically and idempotently; or, with --source rpc, \
                  builds the same rows from any Ethereum JSON-RPC node with ethereum-etl's rules.\n\n\
                  Options can also be set with ETHPIPE_* environment variables or in ethpipe.toml \
                  (flag > env > file > default)."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Database to load into: postgres://USER[:PASS]@HOST[:PORT]/DB, sqlite://PATH or parquet://DIR (files) [default: sqlite://ethpipe.db]
    #[arg(
        long,
        env = "ETHPIPE_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    pub database_url: Option<String>,

    /// Where rows come from: bigquery or rpc [default: bigquery]
    #[arg(long, env = "ETHPIPE_SOURCE", global = true, hide_env_values = true)]
    pub source: Option<String>,

    /// Ethereum JSON-RPC endpoint (with --source rpc)
    #[arg(long, env = "ETHPIPE_RPC_URL", global = true, hide_env_values = true)]
    pub rpc_url: Option<String>,

    /// JSON-RPC requests in flight at once (with --source rpc) [default: 8]
    #[arg(long, env = "ETHPIPE_RPC_CONCURRENCY", global = true)]
    pub rpc_concurrency: Option<usize>,

    /// At most this many JSON-RPC requests per second (with --source rpc) [default: no limit]
    #[arg(long, env = "ETHPIPE_RPC_RPS", global = true)]
    pub rpc_rps: Option<f64>,

    /// Calls per JSON-RPC batch; many nodes cap it at 100 (with --source rpc) [default: 100]
    #[arg(long, env = "ETHPIPE_RPC_BATCH_SIZE", global = true)]
    pub rpc_batch_size: Option<usize>,

    /// Seconds before a JSON-RPC request times out (then it is retried) [default: 60]
    #[arg(long, env = "ETHPIPE_RPC_TIMEOUT", global = true)]
    pub rpc_timeout: Option<f64>,

    /// Token addresses per eth_getLogs request; a longer --tokens list is split (with --source rpc) [default: 1000]
    #[arg(long, env = "ETHPIPE_RPC_MAX_ADDRESSES", global = true)]
    pub rpc_max_addresses: Option<usize>,
    /// Treat blocks this many below latest as final, for nodes without the
    /// `finalized` block tag (with --source rpc) [default: the node's finalized block]
    #[arg(long, env = "ETHPIPE_RPC_CONFIRMATIONS", global = true)]
    pub rpc_confirmations: Option<u64>,

    /// BigQuery project billed for queries [default: the credentials' project]
    #[arg(
        long,
        env = "ETHPIPE_BIGQUERY_PROJECT",
        global = true,
        hide_env_values = true
    )]
    pub bigquery_project: Option<String>,

    /// Dataset holding token_transfers and tokens [default: bigquery-public-data.crypto_ethereum]
    #[arg(
        long,
        env = "ETHPIPE_BIGQUERY_DATASET",
        global = true,
        hide_env_values = true
    )]
    pub bigquery_dataset: Option<String>,

    /// Base URL of a BigQuery-compatible API (emulators, tests) [default: Google's]
    #[arg(
        long,
        env = "ETHPIPE_BIGQUERY_ENDPOINT",
        global = true,
        hide_env_values = true
    )]
    pub bigquery_endpoint: Option<String>,

    /// Service-account key file [default: Application Default Credentials]
    #[arg(
        long,
        env = "GOOGLE_APPLICATION_CREDENTIALS",
        global = true,
        hide_env_values = true
    )]
    pub credentials: Option<PathBuf>,

    /// Config file [default: ./ethpipe.toml if present]
    #[arg(long, env = "ETHPIPE_CONFIG", global = true, hide_env_values = true)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load one UTC day of a pipeline (replacing that day atomically), or the whole tokens table
    Run(RunArgs),
    /// Load a range of days in order, skipping days already loaded; resumable
    Backfill(BackfillArgs),
    /// Reconcile the database against the source for a range of days
    Verify(VerifyArgs),
    /// Run the dashboard, the serving API and the scheduler (Ctrl-C/SIGTERM stops them)
    Serve(ServeArgs),
    /// List triggers, or turn one on or off (the toggle is stored in the database)
    Trigger(TriggerArgs),
    /// Create or upgrade the database schema (also done implicitly by every command)
    Migrate,
    /// Show pipelines, last runs and the days loaded, with gaps
    Status(StatusArgs),
    /// Copy days already loaded in the database to Parquet or CSV files (DIR/<dataset>/date=D/)
    Export(ExportArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// token_transfers, tokens or erc1155_transfers
    #[arg(value_parser = parse_pipeline)]
    pub pipeline: Pipeline,

    /// The UTC day to load, YYYY-MM-DD
    #[arg(long, value_parser = parse_day, required_unless_present = "full", conflicts_with = "full")]
    pub date: Option<Day>,

    /// Load the whole table (tokens only; the first tokens run does this by itself)
    #[arg(long)]
    pub full: bool,

    #[command(flatten)]
    pub tokens: TokensArg,
}

#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// token_transfers, tokens or erc1155_transfers
    #[arg(value_parser = parse_pipeline)]
    pub pipeline: Pipeline,

    /// First UTC day, YYYY-MM-DD
    #[arg(long, value_parser = parse_day)]
    pub from: Day,

    /// Last UTC day (inclusive), YYYY-MM-DD
    #[arg(long, value_parser = parse_day)]
    pub to: Day,

    /// Days in flight at once (PostgreSQL only; SQLite has one writer)
    #[arg(long, default_value_t = 1, value_parser = parse_parallel, allow_hyphen_values = true)]
    pub parallel: usize,

    /// Re-load days that already succeeded
    #[arg(long)]
    pub force: bool,

    /// Share the range with other processes started on it (e.g. Kubernetes Job pods):
    /// each claims the next free day
    #[arg(long)]
    pub worker: bool,

    /// With --worker --force: an id shared by the workers, so a day re-loaded by one counts for all
    #[arg(long, requires = "worker")]
    pub backfill_id: Option<String>,

    #[command(flatten)]
    pub tokens: TokensArg,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// token_transfers, tokens or erc1155_transfers [default: token_transfers]
    #[arg(long, value_parser = parse_pipeline, default_value = "token_transfers")]
    pub pipeline: Pipeline,

    /// First UTC day, YYYY-MM-DD
    #[arg(long, value_parser = parse_day)]
    pub from: Day,

    /// Last UTC day (inclusive), YYYY-MM-DD
    #[arg(long, value_parser = parse_day)]
    pub to: Day,

    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub tokens: TokensArg,
}

/// `--tokens` of the commands that load or check days.
#[derive(Debug, Args)]
pub struct TokensArg {
    /// Only these token contracts: ADDR,ADDR,… (0x + 40 hex each) [default: the
    /// pipeline's `tokens` in ethpipe.toml, else every token]
    #[arg(
        long = "tokens",
        env = "ETHPIPE_TOKENS",
        value_name = "ADDR,…",
        hide_env_values = true
    )]
    pub list: Option<String>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// token_transfers, tokens or erc1155_transfers
    #[arg(value_parser = parse_pipeline, default_value = "token_transfers")]
    pub pipeline: Pipeline,

    /// File format: parquet or csv
    #[arg(long, value_enum)]
    pub format: ExportFormat,

    /// First UTC day, YYYY-MM-DD
    #[arg(long, value_parser = parse_day)]
    pub from: Day,

    /// Last UTC day (inclusive), YYYY-MM-DD
    #[arg(long, value_parser = parse_day)]
    pub to: Day,

    /// Folder for the files, laid out as DIR/<dataset>/date=YYYY-MM-DD/data.<format>
    #[arg(long)]
    pub out_dir: PathBuf,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ExportFormat {
    Parquet,
    Csv,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address for the dashboard and API (HOST:PORT; port 0 picks a free one).
    /// Beyond loopback, ETHPIPE_API_TOKEN is required
    #[arg(
        long,
        env = "ETHPIPE_BIND",
        default_value = "127.0.0.1:6789",
        hide_env_values = true
    )]
    pub bind: String,

    /// Bearer token required by mutating API calls (run, backfill, trigger toggle);
    /// prefer the environment variable, which `ps` does not show
    #[arg(long, env = "ETHPIPE_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
}

#[derive(Debug, Args)]
pub struct TriggerArgs {
    #[command(subcommand)]
    pub action: TriggerAction,
}

#[derive(Debug, Subcommand)]
pub enum TriggerAction {
    /// Show every trigger with its state and next run
    List,
    /// Turn a trigger on (it starts from now; the time it was off is not caught up)
    Enable { name: String },
    /// Turn a trigger off
    Disable { name: String },
}

fn parse_parallel(text: &str) -> Result<usize, String> {
    match text.parse::<i64>() {
        Ok(n) if (1..=64).contains(&n) => Ok(n as usize),
        Ok(n) => Err(format!("--parallel must be between 1 and 64, got {n}")),
        Err(_) => Err(format!(
            "--parallel must be a whole number between 1 and 64, got '{text}'"
        )),
    }
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

fn parse_pipeline(text: &str) -> Result<Pipeline, String> {
    text.parse()
        .map_err(|e: ethpipe_core::dataset::UnknownPipeline| e.to_string())
}

fn parse_day(text: &str) -> Result<Day, String> {
    text.parse()
        .map_err(|e: ethpipe_core::DayParseError| e.to_string())
}

/// Help and version go to stdout as usual; usage errors become one line on
/// stderr with exit code 2.
pub fn exit_on_clap_error(error: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = error.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = error.print();
            ExitCode::from(crate::EXIT_USAGE)
        }
        _ => {
            // clap's message may span lines ("…not provided:\n  --date <DATE>"); fold it.
            let rendered = error.render().to_string();
            let first = rendered
                .lines()
                .map(str::trim)
                .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
                .filter(|l| !l.is_empty() && !l.starts_with("tip:"))
                .collect::<Vec<_>>()
                .join(" ");
            let first = first.trim_start_matches("error: ");
            eprintln!("error: {first} (see ethpipe --help)");
            ExitCode::from(crate::EXIT_USAGE)
        }
    }
}
