//! `ethpipe run PIPELINE --date D | --full`.

use ethpipe_core::Scope;
use ethpipe_orch::{RunError, RunRequest};

use crate::args::RunArgs;
use crate::config::Settings;
use crate::progress::RowsBar;
use crate::Fatal;

pub async fn run(settings: &Settings, args: RunArgs) -> Result<(), Fatal> {
    let scope = match (args.date, args.full) {
        (Some(day), false) => Scope::Day(day),
        (None, true) if args.pipeline.full_load_first() => Scope::Full,
        (None, true) => {
            return Err(Fatal::usage(format!(
                "--full applies to tokens only; load {} one day at a time with --date YYYY-MM-DD",
                args.pipeline
            )))
        }
        _ => return Err(Fatal::usage("give either --date YYYY-MM-DD or --full")),
    };
    let filter = settings.filter(args.pipeline, args.tokens.list.as_deref())?;
    let models = super::load_models(settings, args.pipeline)?;
    // Source first: a bad key or endpoint must fail before anything is written.
    let source = super::open_source(settings).await?;
    if scope == Scope::Full && !source.supports_full_load() {
        return Err(Fatal::usage(ethpipe_sources::rpc::FULL_LOAD_UNSUPPORTED));
    }
    let database = super::open_database(settings).await?;
    let bar = RowsBar::new();
    let request = RunRequest {
        pipeline: args.pipeline,
        scope,
        trigger: "manual".to_string(),
        filter: filter.clone(),
        models,
    };
    let cancel = super::shutdown_on_signals();
    let result = ethpipe_orch::run(&database, source.as_ref(), request, &bar, &cancel).await;
    bar.finish();
    match result {
        Ok(outcome) => {
            let secs = outcome.elapsed.as_secs_f64();
            let tokens = filter.map(|f| format!(" ({f})")).unwrap_or_default();
            println!(
                "{} {}{tokens}: {} rows committed in {:.1}s ({:.0} rows/s, run {})",
                args.pipeline,
                outcome.scope,
                outcome.rows,
                secs,
                outcome.rows as f64 / secs.max(1e-9),
                outcome.run
            );
            Ok(())
        }
        Err(RunError::Ledger(e)) => Err(Fatal::usage(e)),
        Err(failed) => Err(Fatal::run_failed(failed)),
    }
}
