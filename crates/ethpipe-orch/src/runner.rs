//! One run of one pipeline: the only place where a source meets a sink.
//!
//! The run is recorded as `running` before anything is read, and becomes
//! `success` only inside the sink's commit transaction, after the number of
//! rows written matched the number the source promised and the source
//! confirmed, right before the commit, that its rows are still current (its
//! completeness gate and recheck: a day not final or not published yet, or a
//! reorganised block, fails the run as transient). SQL models run inside
//! that same transaction. Any error drops the staged rows (the previous
//! version of the day stays) and marks the run `failed` with the reason.

use std::time::Instant;

use ethpipe_core::{
    Completeness, Pipeline, Scope, Slice, Source, SourceError, SourceEvent, TokenFilter,
};
use ethpipe_sinks::{Commit, Database, ModelFailure, NewRun, RunId, SinkError};

use crate::{Cancel, Model};

/// The variable that records that the tokens full load has committed.
pub const TOKENS_FULL_LOAD_DONE: &str = "full_load_done";

#[derive(Debug, Clone)]
pub struct RunRequest {
    pub pipeline: Pipeline,
    pub scope: Scope,
    pub trigger: String,
    /// Only these tokens' rows (`None`: every token's).
    pub filter: Option<TokenFilter>,
    /// SQL models to run on the day inside its transaction (day scopes only).
    pub models: Vec<Model>,
}

#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub run: RunId,
    pub scope: Scope,
    pub rows: u64,
    pub source_rows: u64,
    pub elapsed: std::time::Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The run could not even be recorded (database unreachable or broken).
    #[error(transparent)]
    Ledger(SinkError),
    /// Another process holds the (pipeline, day) lock.
    #[error("another ethpipe process is loading {pipeline} {scope} right now; try again when it has finished")]
    Busy { pipeline: Pipeline, scope: Scope },
    /// The run started and failed; the ledger says so.
    #[error("{pipeline} {scope} failed (run {run}): {message}")]
    Failed {
        run: RunId,
        pipeline: Pipeline,
        scope: Scope,
        message: String,
        /// True when retrying cannot help (credentials, bad rows, configuration).
        permanent: bool,
        /// Stopped by a shutdown request, not by a fault.
        interrupted: bool,
        /// The error behind `message`, when there is one (a count mismatch or
        /// an interruption has none).
        #[source]
        cause: Option<FailureCause>,
    },
}

/// What made a run fail, kept whole so a caller can look past the message.
#[derive(Debug, thiserror::Error)]
pub enum FailureCause {
    #[error(transparent)]
    Source(SourceError),
    #[error(transparent)]
    Sink(SinkError),
    #[error(transparent)]
    Model(ModelFailed),
}

/// A SQL model that failed inside its day's transaction: the model is rolled
/// back, the day commits, and the run is recorded failed naming the model.
#[derive(Debug, thiserror::Error)]
#[error("model {model} failed: {source}")]
pub struct ModelFailed {
    /// The model's file name.
    pub model: String,
    #[source]
    pub source: SinkError,
}

/// Observes a run's progress (rows so far), e.g. to draw a progress bar.
pub trait Progress: Send + Sync {
    fn started(&self, _pipeline: Pipeline, _scope: Scope) {}
    /// The run now has a ledger id (the dashboard links to it at once).
    fn recorded(&self, _run: RunId) {}
    fn rows(&self, _total_so_far: u64) {}
}

/// How often a running run's rows so far are written to the ledger, so any
/// reader (the dashboard, `status`, another process) sees it advance.
const LEDGER_PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

impl Progress for () {}

/// Runs one pipeline for one scope, start to finish, holding the lock of
/// the scope it loads (the `tokens:full` lock for a first tokens run); fails
/// with [`RunError::Busy`] if another process has it.
pub async fn run(
    database: &Database,
    source: &dyn Source,
    request: RunRequest,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<RunOutcome, RunError> {
    let scope = effective_scope(database, source, &request).await?;
    let lock = lock_scope(database, request.pipeline, scope, false).await?;
    let Some(lock) = lock else {
        return Err(RunError::Busy {
            pipeline: request.pipeline,
            scope,
        });
    };
    // Another process may have committed the full load while we waited.
    let now = effective_scope(database, source, &request).await?;
    if now != scope {
        lock.release().await;
        return Box::pin(run(database, source, request, progress, cancel)).await;
    }
    let result = execute(database, source, &request, scope, progress, cancel).await;
    lock.release().await;
    result
}

/// Like [`run`], for a caller that already holds the lock of
/// `request.scope`, which is loaded as asked: the caller has made sure a
/// dataset that loads its whole table first has done so
/// ([`ensure_full_load`]).
pub async fn run_while_locked(
    database: &Database,
    source: &dyn Source,
    request: RunRequest,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<RunOutcome, RunError> {
    execute(database, source, &request, request.scope, progress, cancel).await
}

/// For a dataset that loads its whole table first (tokens): the full load,
/// unless it has committed, under the `tokens:full` lock, waiting for a
/// process that holds it. Backfills call it before any day, so N parallel
/// days or N `--worker`s make exactly one full load between them; the others
/// wait for it and find it done. `None` when there was nothing to do.
pub async fn ensure_full_load(
    database: &Database,
    source: &dyn Source,
    request: &RunRequest,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<Option<RunOutcome>, RunError> {
    if effective_scope(database, source, request).await? != Scope::Full {
        return Ok(None);
    }
    let lock = lock_scope(database, request.pipeline, Scope::Full, true).await?;
    let Some(lock) = lock else {
        return Err(RunError::Busy {
            pipeline: request.pipeline,
            scope: Scope::Full,
        });
    };
    let result = match effective_scope(database, source, request).await {
        Ok(Scope::Full) => execute(database, source, request, Scope::Full, progress, cancel)
            .await
            .map(Some),
        Ok(_) => Ok(None),
        Err(e) => Err(e),
    };
    lock.release().await;
    result
}

async fn lock_scope(
    database: &Database,
    pipeline: Pipeline,
    scope: Scope,
    wait: bool,
) -> Result<Option<ethpipe_sinks::ledger::Lock>, RunError> {
    database
        .ledger()
        .lock_day(pipeline, scope, wait)
        .await
        .map_err(|e| RunError::Ledger(e.into()))
}

/// One run of `scope`, whose lock the caller holds.
async fn execute(
    database: &Database,
    source: &dyn Source,
    request: &RunRequest,
    scope: Scope,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<RunOutcome, RunError> {
    // Holding the lock, any run of this day still marked `running` is dead.
    let abandoned = database
        .ledger()
        .abandon_stale_runs(request.pipeline, scope)
        .await
        .map_err(|e| RunError::Ledger(e.into()))?;
    if abandoned > 0 {
        tracing::info!(
            "{} {scope}: closed {abandoned} abandoned run(s)",
            request.pipeline
        );
    }
    let run = database
        .ledger()
        .start_run(&NewRun {
            pipeline: request.pipeline,
            scope,
            trigger: request.trigger.clone(),
            source: source.name().to_string(),
            filter: request.filter.clone(),
        })
        .await
        .map_err(|e| RunError::Ledger(e.into()))?;
    if scope != request.scope {
        let note =
            "first tokens run: loading the whole tokens table (the full load) instead of one day";
        tracing::info!("{note}");
        let _ = database.ledger().log(run, "info", note).await;
    }
    progress.started(request.pipeline, scope);
    progress.recorded(run);
    let started = Instant::now();
    let mut rows_written = 0;
    // On shutdown the load future is dropped mid-stream: its transaction never
    // commits and the server rolls it back.
    let slice = Slice {
        pipeline: request.pipeline,
        scope,
        filter: request.filter.clone(),
    };
    let target = Target {
        slice: &slice,
        run,
        models: &request.models,
    };
    let loaded = tokio::select! {
        result = load(database, source, &target, progress, &mut rows_written) => result,
        () = cancel.cancelled() => Err(Failure {
            kind: FailureKind::Interrupted(cancel.reason().unwrap_or_else(|| "stop requested".into())),
            source_rows: None,
        }),
    };
    match loaded {
        Ok(Loaded {
            model_failure: Some(failure),
            ..
        }) => {
            // The day committed with the run recorded failed, in one transaction.
            let failed = ModelFailed {
                model: failure.model,
                source: failure.error,
            };
            let message = failed.to_string();
            let _ = database.ledger().log(run, "error", &message).await;
            Err(RunError::Failed {
                run,
                pipeline: request.pipeline,
                scope,
                message,
                permanent: true,
                interrupted: false,
                cause: Some(FailureCause::Model(failed)),
            })
        }
        Ok(Loaded { source_rows, .. }) => {
            let outcome = RunOutcome {
                run,
                scope,
                rows: rows_written,
                source_rows,
                elapsed: started.elapsed(),
            };
            let _ = database
                .ledger()
                .log(
                    run,
                    "info",
                    &format!("committed {rows_written} rows in {:.1?}", outcome.elapsed),
                )
                .await;
            Ok(outcome)
        }
        Err(failure) => {
            let message = failure.message();
            let _ = database.ledger().log(run, "error", &message).await;
            // Best effort: if the database is gone, the run stays 'running' and
            // the error is still reported to the caller.
            if let Err(e) = database
                .ledger()
                .fail_run(run, &message, rows_written, failure.source_rows)
                .await
            {
                tracing::warn!("could not record run {run} as failed: {e}");
            }
            Err(RunError::Failed {
                run,
                pipeline: request.pipeline,
                scope,
                message,
                permanent: failure.permanent(),
                interrupted: matches!(failure.kind, FailureKind::Interrupted(_)),
                cause: failure.into_cause(),
            })
        }
    }
}

/// A dataset that loads its whole table first (tokens) does so, whatever day
/// was asked for, until a full load has committed.
async fn effective_scope(
    database: &Database,
    source: &dyn Source,
    request: &RunRequest,
) -> Result<Scope, RunError> {
    let whole_table = request.pipeline.full_load_first() && source.supports_full_load();
    if !whole_table || request.scope == Scope::Full {
        return Ok(request.scope);
    }
    let done = database
        .ledger()
        .variable(request.pipeline, TOKENS_FULL_LOAD_DONE)
        .await
        .map_err(|e| RunError::Ledger(e.into()))?;
    Ok(if done.as_deref() == Some("true") {
        request.scope
    } else {
        Scope::Full
    })
}

struct Failure {
    kind: FailureKind,
    source_rows: Option<u64>,
}

enum FailureKind {
    Source(SourceError),
    Sink(SinkError),
    Mismatch { written: u64, promised: u64 },
    Interrupted(String),
}

impl Failure {
    fn message(&self) -> String {
        match &self.kind {
            FailureKind::Source(e) => e.to_string(),
            FailureKind::Sink(e) => e.to_string(),
            FailureKind::Mismatch { written, promised } => format!(
                "the source reported {promised} rows but {written} arrived; nothing was committed"
            ),
            FailureKind::Interrupted(reason) => format!(
                "interrupted ({reason}) before commit; rolled back, the previous version of the day is intact"
            ),
        }
    }

    fn permanent(&self) -> bool {
        matches!(
            &self.kind,
            FailureKind::Source(
                SourceError::Config(_) | SourceError::BadRow(_) | SourceError::Unsupported(_)
            ) | FailureKind::Sink(SinkError::Rejected(_))
        )
    }

    fn into_cause(self) -> Option<FailureCause> {
        match self.kind {
            FailureKind::Source(e) => Some(FailureCause::Source(e)),
            FailureKind::Sink(e) => Some(FailureCause::Sink(e)),
            FailureKind::Mismatch { .. } | FailureKind::Interrupted(_) => None,
        }
    }
}

impl From<SourceError> for Failure {
    fn from(e: SourceError) -> Self {
        Failure {
            kind: FailureKind::Source(e),
            source_rows: None,
        }
    }
}

impl From<SinkError> for Failure {
    fn from(e: SinkError) -> Self {
        Failure {
            kind: FailureKind::Sink(e),
            source_rows: None,
        }
    }
}

/// What one run loads, and where it is recorded.
struct Target<'a> {
    slice: &'a Slice,
    run: RunId,
    models: &'a [Model],
}

/// A committed load.
struct Loaded {
    source_rows: u64,
    model_failure: Option<ModelFailure>,
}

async fn load(
    database: &Database,
    source: &dyn Source,
    target: &Target<'_>,
    progress: &dyn Progress,
    rows_written: &mut u64,
) -> Result<Loaded, Failure> {
    let Target { slice, run, models } = *target;
    let (pipeline, scope) = (slice.pipeline, slice.scope);
    let mut writer = database.begin_load(slice).await?;
    let mut stream = source.extract(slice.clone());
    let mut last_recorded = Instant::now();
    let (source_rows, skipped, completeness) = loop {
        match stream.next().await? {
            SourceEvent::Rows(rows) => {
                writer.write(&rows).await?;
                *rows_written = writer.rows_written();
                progress.rows(*rows_written);
                if last_recorded.elapsed() >= LEDGER_PROGRESS_EVERY {
                    last_recorded = Instant::now();
                    // Best effort: a missed update only delays the live count.
                    if let Err(e) = database.ledger().record_progress(run, *rows_written).await {
                        tracing::debug!("could not record the progress of run {run}: {e}");
                    }
                }
            }
            SourceEvent::Warning(message) => {
                tracing::warn!("{message}");
                database
                    .ledger()
                    .log(run, "warn", &message)
                    .await
                    .map_err(SinkError::from)?;
            }
            SourceEvent::End {
                source_rows,
                skipped_rows,
                completeness,
            } => break (source_rows, skipped_rows, completeness),
        }
    };
    if source_rows != *rows_written {
        return Err(Failure {
            kind: FailureKind::Mismatch {
                written: *rows_written,
                promised: source_rows,
            },
            source_rows: Some(source_rows),
        });
    }
    confirm_complete(database, run, completeness)
        .await
        .map_err(|kind| Failure {
            kind,
            source_rows: Some(source_rows),
        })?;
    if scope.day().is_none() && !models.is_empty() {
        let note = "SQL models run on day loads, not on a full load";
        let _ = database.ledger().log(run, "info", note).await;
    }
    let commit = Commit {
        run,
        source_rows,
        skipped_rows: skipped,
        // A filtered full load holds only its tokens: the whole table is
        // still to load.
        set_variable: (pipeline.full_load_first()
            && scope == Scope::Full
            && slice.filter.is_none())
        .then(|| (pipeline, TOKENS_FULL_LOAD_DONE, "true".to_string())),
        models: models.to_vec(),
    };
    let committed = writer.commit(commit).await.map_err(|e| Failure {
        kind: FailureKind::Sink(e),
        source_rows: Some(source_rows),
    })?;
    if let Err(e) = database.ledger().record_steps(run, &committed.steps).await {
        tracing::warn!("could not record the steps of run {run}: {e}");
    }
    let model_steps = committed
        .steps
        .iter()
        .filter(|step| models.iter().any(|model| model.name == step.name));
    for step in model_steps {
        if step.error.is_none() {
            let line = format!("model {} affected {} rows", step.name, step.rows);
            let _ = database.ledger().log(run, "info", &line).await;
        }
    }
    Ok(Loaded {
        source_rows,
        model_failure: committed.model_failure,
    })
}

/// Between the last batch and the commit: the source confirms its rows are
/// still current (a JSON-RPC source re-reads the block hashes, a reorg fails
/// here), then the gate it passed is recorded with the run.
async fn confirm_complete(
    database: &Database,
    run: RunId,
    mut completeness: Completeness,
) -> Result<(), FailureKind> {
    completeness.recheck().await.map_err(FailureKind::Source)?;
    database
        .ledger()
        .record_gate(run, &completeness.gate)
        .await
        .map_err(|e| FailureKind::Sink(e.into()))?;
    let note = format!(
        "complete: gate {} passed ({})",
        completeness.gate.name, completeness.gate.mark
    );
    let _ = database.ledger().log(run, "info", &note).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::error::Error;

    use ethpipe_core::datasets::TOKEN_TRANSFERS;
    use ethpipe_core::Day;

    use super::*;

    #[test]
    fn a_failed_model_keeps_its_sink_error_as_the_source() {
        let failed = ModelFailed {
            model: "020_broken.sql".into(),
            source: SinkError::Rejected("division by zero".into()),
        };
        let message = failed.to_string();
        assert_eq!(message, "model 020_broken.sql failed: division by zero");
        let error = RunError::Failed {
            run: RunId(7),
            pipeline: TOKEN_TRANSFERS,
            scope: Scope::Day("2024-03-01".parse::<Day>().expect("a day")),
            message,
            permanent: true,
            interrupted: false,
            cause: Some(FailureCause::Model(failed)),
        };
        let cause = error.source().expect("the model failure");
        assert_eq!(
            cause.to_string(),
            "model 020_broken.sql failed: division by zero"
        );
        let sink = cause.source().expect("the sink error");
        assert!(sink.downcast_ref::<SinkError>().is_some(), "{sink:?}");
    }
}
