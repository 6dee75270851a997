//! Backfill jobs recorded in the ledger (the dashboard's backfills). A job is
//! a row in `backfill_jobs` plus its runs (trigger `backfill:<id>`), so its
//! progress survives the process. Whoever runs a job holds its lock; a job
//! still `running` whose lock is free was left behind by a process that
//! stopped, and the leader resumes it on its next tick. Resuming is an
//! ordinary backfill of the job's range: the days its runs (or, unless
//! forced, any run) already loaded are skipped.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use ethpipe_core::{Pipeline, Source, TokenFilter};
use ethpipe_sinks::ledger::{BackfillJobRecord, Lock};
use ethpipe_sinks::{Database, LedgerError};
use tokio::task::JoinSet;

use crate::backfill::{backfill, BackfillProgress, BackfillRequest, BackfillSummary};
use crate::scheduler::Scheduler;
use crate::{Cancel, Model, RunError};

/// Unfinished jobs the leader looks at per tick.
const RESUME_BATCH: u32 = 100;

/// What a job's runs take from the configuration, per pipeline.
#[derive(Clone, Copy)]
pub struct Configured<'a> {
    pub models: &'a HashMap<Pipeline, Vec<Model>>,
    pub filters: &'a HashMap<Pipeline, TokenFilter>,
}

/// Runs a recorded job to its end, holding `lock` (its job lock), and records
/// how it ended. A job stopped by shutdown stays `running`, to be resumed.
pub async fn run_job(
    database: Arc<Database>,
    source: Arc<dyn Source>,
    job: BackfillJobRecord,
    lock: Lock,
    configured: Configured<'_>,
    progress: Arc<dyn BackfillProgress>,
    cancel: Cancel,
) {
    let Ok(pipeline) = job.pipeline.parse::<Pipeline>() else {
        let message = format!("unknown pipeline {}", job.pipeline);
        record_end(&database, &job, "failed", Some(&message)).await;
        lock.release().await;
        return;
    };
    let request = BackfillRequest {
        pipeline,
        from: job.from,
        to: job.to,
        parallel: job.parallel.max(1) as usize,
        force: job.force,
        trigger: job.trigger(),
        // A forced job resumed elsewhere counts the days its own runs loaded.
        shared_force: true,
        filter: configured.filters.get(&pipeline).cloned(),
        models: configured
            .models
            .get(&pipeline)
            .cloned()
            .unwrap_or_default(),
    };
    let result = backfill(Arc::clone(&database), source, request, progress, cancel).await;
    match ending(&result) {
        Some((state, error)) => record_end(&database, &job, state, error.as_deref()).await,
        None => tracing::info!(
            "backfill job {}: stopped before the end of its range; it resumes later",
            job.id
        ),
    }
    lock.release().await;
}

/// The state a backfill's result leaves its job in; `None`: still unfinished
/// (interrupted, or the ledger was unreachable).
fn ending(result: &Result<BackfillSummary, RunError>) -> Option<(&'static str, Option<String>)> {
    match result {
        Ok(summary) if !summary.interrupted.is_empty() => None,
        Ok(summary) => match summary.failed.first() {
            Some((day, message)) => Some(("failed", Some(format!("{day}: {message}")))),
            None => Some(("finished", None)),
        },
        Err(RunError::Ledger(_)) => None,
        Err(e) => Some(("failed", Some(e.to_string()))),
    }
}

async fn record_end(
    database: &Database,
    job: &BackfillJobRecord,
    state: &str,
    error: Option<&str>,
) {
    if let Err(e) = database
        .ledger()
        .finish_backfill_job(job.id, state, error)
        .await
    {
        tracing::warn!(
            "backfill job {}: cannot record its end ({state}): {e}; it will be resumed",
            job.id
        );
    }
}

/// Starts every unfinished job nobody runs (its lock is free).
pub(crate) async fn resume_orphaned(
    scheduler: &Arc<Scheduler>,
    in_flight: &mut JoinSet<String>,
    busy: &mut HashSet<String>,
    cancel: &Cancel,
) -> Result<(), LedgerError> {
    let database = &scheduler.database;
    for job in database.ledger().backfill_jobs(true, RESUME_BATCH).await? {
        let name = job.trigger();
        if busy.contains(&name) {
            continue;
        }
        let Some(lock) = database.ledger().lock_backfill_job(job.id).await? else {
            continue;
        };
        tracing::info!(
            "backfill job {}: resuming {} {}..{} (its process stopped)",
            job.id,
            job.pipeline,
            job.from,
            job.to
        );
        busy.insert(name.clone());
        let (shared, cancel) = (Arc::clone(scheduler), cancel.clone());
        in_flight.spawn(async move {
            run_job(
                Arc::clone(&shared.database),
                Arc::clone(&shared.source),
                job,
                lock,
                Configured {
                    models: &shared.models,
                    filters: &shared.pipeline_filters,
                },
                Arc::new(()),
                cancel,
            )
            .await;
            name
        });
    }
    Ok(())
}
