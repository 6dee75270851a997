//! One run of one pipeline: the only place where a source meets a sink.
//!
//! The run is recorded as `running` before anything is read, and becomes
//! `success` only inside the sink's commit transaction, after the number of
//! rows written matched the number the source promised. Any error drops the
//! staged rows (the previous version of the day stays) and marks the run
//! `failed` with the reason.

use std::time::Instant;

use ethpipe_core::{Pipeline, Scope, Slice, Source, SourceError, SourceEvent, TokenFilter};
use ethpipe_sinks::{Commit, Database, NewRun, RunId, SinkError, StepReport};

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
    /// SQL models to run after the day commits (day scopes only).
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

/// A SQL model that failed after its day committed (the day stays loaded).
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

/// Runs one pipeline for one scope, start to finish, holding the
/// (pipeline, day) lock; fails with [`RunError::Busy`] if another process has it.
pub async fn run(
    database: &Database,
    source: &dyn Source,
    request: RunRequest,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<RunOutcome, RunError> {
    let scope = effective_scope(database, source, &request).await?;
    let lock = database
        .ledger()
        .lock_day(request.pipeline, scope, false)
        .await
        .map_err(|e| RunError::Ledger(e.into()))?;
    let Some(lock) = lock else {
        return Err(RunError::Busy {
            pipeline: request.pipeline,
            scope,
        });
    };
    let result = run_while_locked(database, source, request, progress, cancel).await;
    lock.release().await;
    result
}

/// Like [`run`], for a caller that already holds the (pipeline, day) lock.
pub async fn run_while_locked(
    database: &Database,
    source: &dyn Source,
    request: RunRequest,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<RunOutcome, RunError> {
    let scope = effective_scope(database, source, &request).await?;
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
    let loaded = tokio::select! {
        result = load(database, source, &slice, run, progress, &mut rows_written) => result,
        () = cancel.cancelled() => Err(Failure {
            kind: FailureKind::Interrupted(cancel.reason().unwrap_or_else(|| "stop requested".into())),
            source_rows: None,
        }),
    };
    match loaded {
        Ok(source_rows) => {
            if let Err(failed) = run_models(database, run, scope, &request.models).await {
                return Err(RunError::Failed {
                    run,
                    pipeline: request.pipeline,
                    scope,
                    message: failed.to_string(),
                    permanent: true,
                    interrupted: false,
                    cause: Some(FailureCause::Model(failed)),
                });
            }
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

async fn load(
    database: &Database,
    source: &dyn Source,
    slice: &Slice,
    run: RunId,
    progress: &dyn Progress,
    rows_written: &mut u64,
) -> Result<u64, Failure> {
    let (pipeline, scope) = (slice.pipeline, slice.scope);
    let mut writer = database.begin_load(slice).await?;
    let mut stream = source.extract(slice.clone());
    let mut last_recorded = Instant::now();
    let (source_rows, skipped) = loop {
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
            } => break (source_rows, skipped_rows),
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
    };
    let steps = writer.commit(commit).await.map_err(|e| Failure {
        kind: FailureKind::Sink(e),
        source_rows: Some(source_rows),
    })?;
    if let Err(e) = database.ledger().record_steps(run, &steps).await {
        tracing::warn!("could not record the steps of run {run}: {e}");
    }
    Ok(source_rows)
}

/// Runs the models in order, each in its own transaction and recorded as a
/// step. The first failure rolls back that model only, marks the run failed
/// and stops; the committed day stays.
async fn run_models(
    database: &Database,
    run: RunId,
    scope: Scope,
    models: &[Model],
) -> Result<(), ModelFailed> {
    let Some(day) = scope.day() else {
        if !models.is_empty() {
            let _ = database
                .ledger()
                .log(
                    run,
                    "info",
                    "SQL models run after day loads, not after a full load",
                )
                .await;
        }
        return Ok(());
    };
    for model in models {
        let started = chrono::Utc::now();
        let result = database.run_model(&model.statements, day).await;
        let mut step = StepReport::since(&model.name, *result.as_ref().unwrap_or(&0), started);
        if let Err(e) = &result {
            step.error = Some(e.to_string());
        }
        if let Err(e) = database
            .ledger()
            .record_steps(run, std::slice::from_ref(&step))
            .await
        {
            tracing::warn!("could not record model step {}: {e}", model.name);
        }
        if let Err(source) = result {
            let failed = ModelFailed {
                model: model.name.clone(),
                source,
            };
            let message = failed.to_string();
            let _ = database.ledger().log(run, "error", &message).await;
            if let Err(e) = database.ledger().fail_committed_run(run, &message).await {
                tracing::warn!("could not record run {run} as failed: {e}");
            }
            return Err(failed);
        }
        let _ = database
            .ledger()
            .log(
                run,
                "info",
                &format!("model {} affected {} rows", model.name, step.rows),
            )
            .await;
    }
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
