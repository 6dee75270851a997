//! `ethpipe backfill PIPELINE --from D --to D [--parallel N] [--force] [--worker]`.

use std::sync::Arc;

use ethpipe_orch::backfill::{BackfillRequest, BackfillSummary};

use crate::args::BackfillArgs;
use crate::config::Settings;
use crate::progress::BackfillBar;
use crate::Fatal;

pub async fn backfill(settings: &Settings, args: BackfillArgs) -> Result<(), Fatal> {
    if args.from > args.to {
        return Err(Fatal::usage(format!(
            "--from {} is after --to {}; give the earlier day first",
            args.from, args.to
        )));
    }
    if args.worker && args.force && args.backfill_id.is_none() {
        return Err(Fatal::usage(
            "--worker --force needs --backfill-id ID, shared by every worker, so a day re-loaded by one counts for all",
        ));
    }
    let filter = settings.filter(args.pipeline, args.tokens.list.as_deref())?;
    let models = super::load_models(settings, args.pipeline)?;
    let source = super::open_source(settings).await?;
    let database = super::open_database(settings).await?;
    if database.one_writer_at_a_time() && args.parallel > 1 {
        return Err(Fatal::usage(
            "SQLite has one writer at a time: --parallel above 1 needs a postgres:// or parquet:// --database-url",
        ));
    }
    if args.worker && !database.is_shared() {
        return Err(Fatal::usage(
            "--worker shares a backfill through PostgreSQL's ledger: it needs a postgres:// --database-url",
        ));
    }
    let trigger = match &args.backfill_id {
        Some(id) => format!("backfill:{id}"),
        None => "backfill".to_string(),
    };
    let request = BackfillRequest {
        pipeline: args.pipeline,
        from: args.from,
        to: args.to,
        parallel: args.parallel,
        force: args.force,
        shared_force: args.backfill_id.is_some(),
        trigger,
        filter,
        models,
    };
    let bar = Arc::new(BackfillBar::new(format!(
        "{} {}..{}",
        args.pipeline, args.from, args.to
    )));
    let cancel = super::shutdown_on_signals();
    let summary =
        ethpipe_orch::backfill::backfill(Arc::new(database), source, request, bar.clone(), cancel)
            .await
            // The database answered at the start: losing it now is a failed
            // run (exit 1), not a setup problem; days already committed stay.
            .map_err(|e| {
                Fatal::run_failed(format!(
                    "backfill stopped: {e}; re-run the same command to resume"
                ))
            })?;
    bar.finish();
    report(&args, &summary)
}

fn report(args: &BackfillArgs, summary: &BackfillSummary) -> Result<(), Fatal> {
    let rows: u64 = summary.loaded.iter().map(|(_, rows)| rows).sum();
    println!(
        "backfill {} {}..{}: {} days loaded ({rows} rows), {} skipped (already loaded), {} failed{}",
        args.pipeline,
        args.from,
        args.to,
        summary.loaded.len(),
        summary.skipped.len(),
        summary.failed.len(),
        if summary.interrupted.is_empty() {
            String::new()
        } else {
            format!(", {} interrupted (rolled back or not started)", summary.interrupted.len())
        }
    );
    for (day, message) in &summary.failed {
        eprintln!("  {day}: {message}");
    }
    match (summary.failed.first(), summary.interrupted.is_empty()) {
        (Some((day, _)), _) => Err(Fatal::run_failed(format!(
            "{} of {} days failed (first: {day}); re-run the same command to resume",
            summary.failed.len(),
            summary.failed.len() + summary.loaded.len()
        ))),
        (None, false) => Err(Fatal::run_failed(
            "interrupted; re-run the same command to resume",
        )),
        (None, true) => Ok(()),
    }
}
