//! Work the dashboard starts in this process: "run now" for a day, backfills,
//! and trigger toggles. Runs and backfills call the orchestrator with the
//! source `ethpipe serve` opened, under the same per-day locks as every other
//! writer, and stop (rolling back) when the server shuts down. A server
//! started without a source (a read-only dashboard) still has its actions:
//! trigger toggles work, and a run or backfill is refused with the reason
//! the CLI would give.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use ethpipe_core::{Day, Pipeline, Scope, Source, TokenFilter};
use ethpipe_orch::backfill::{BackfillProgress, BackfillRequest};
use ethpipe_orch::{Cancel, Model, Progress, RunError, RunRequest};
use ethpipe_sinks::{Database, RunId};
use serde::Serialize;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use utoipa::ToSchema;

use super::{PipelineName, ServiceError, ServiceResult};
use crate::error::Invalid;
use crate::store::timestamp;

/// Backfills one server runs at once; more are refused with 409.
pub const MAX_ACTIVE_BACKFILLS: usize = 4;

pub struct Actions {
    database: Arc<Database>,
    /// The source runs read from, or why this server has none.
    source: Result<Arc<dyn Source>, String>,
    models: HashMap<Pipeline, Vec<Model>>,
    /// The token filter each pipeline is configured with, if any.
    filters: HashMap<Pipeline, TokenFilter>,
    cancel: Cancel,
    tasks: Mutex<JoinSet<()>>,
    backfills: Mutex<Vec<Arc<BackfillJob>>>,
    next_backfill: AtomicU64,
}

/// Most days one backfill loads at once.
pub const MAX_PARALLEL: usize = 16;

/// A backfill to start: which days, how many at once, whether to re-load.
#[derive(Debug, Clone, PartialEq)]
pub struct BackfillOrder {
    pub pipeline: Pipeline,
    pub from: Day,
    pub to: Day,
    pub parallel: usize,
    pub force: bool,
}

/// A backfill's state.
#[derive(ToSchema)]
#[schema(as = BackfillState, rename_all = "lowercase")]
#[allow(dead_code)] // Exists for its schema.
enum BackfillStateSchema {
    Running,
    /// Every day loaded or skipped.
    Finished,
    /// Some day failed.
    Failed,
    Interrupted,
}

/// A backfill started from the dashboard, as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
#[schema(as = Backfill)]
pub struct BackfillView {
    pub id: u64,
    #[schema(value_type = PipelineName)]
    pub pipeline: String,
    #[schema(format = Date)]
    pub from: String,
    #[schema(format = Date)]
    pub to: String,
    pub parallel: usize,
    pub force: bool,
    /// `running`, `finished` (every day loaded or skipped), `failed`
    /// (some day failed) or `interrupted`.
    #[schema(value_type = BackfillStateSchema)]
    pub state: String,
    pub days_planned: u64,
    pub days_loaded: u64,
    pub days_skipped: u64,
    pub days_failed: u64,
    pub rows: u64,
    #[schema(format = DateTime)]
    pub started_at: String,
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
    pub error: Option<String>,
}

pub struct BackfillJob {
    view: Mutex<BackfillView>,
}

impl BackfillJob {
    pub fn view(&self) -> BackfillView {
        self.view
            .lock()
            .map(|v| v.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    fn update(&self, f: impl FnOnce(&mut BackfillView)) {
        let mut view = self.view.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut view);
    }
}

impl Progress for BackfillJob {}

impl BackfillProgress for BackfillJob {
    fn planned(&self, total: usize, skipped: usize) {
        self.update(|v| {
            v.days_planned = total as u64;
            v.days_skipped = skipped as u64;
        });
    }

    fn day_done(&self, _day: Day, rows: u64) {
        self.update(|v| {
            v.days_loaded += 1;
            v.rows += rows;
        });
    }

    fn day_failed(&self, _day: Day, _message: &str) {
        self.update(|v| v.days_failed += 1);
    }

    fn day_skipped(&self, _day: Day) {
        self.update(|v| v.days_skipped += 1);
    }
}

/// Hands the run id to the request that started the run, once the ledger has it.
struct Announce(Mutex<Option<oneshot::Sender<Result<RunId, ServiceError>>>>);

impl Announce {
    fn send(&self, result: Result<RunId, ServiceError>) {
        if let Some(sender) = self.0.lock().ok().and_then(|mut s| s.take()) {
            let _ = sender.send(result);
        }
    }
}

impl Progress for Announce {
    fn recorded(&self, run: RunId) {
        self.send(Ok(run));
    }
}

impl Actions {
    /// `source` is the opened source, or the one-line reason it could not
    /// be opened (shown when a run is asked for).
    pub fn new(
        database: Arc<Database>,
        source: Result<Arc<dyn Source>, String>,
        models: HashMap<Pipeline, Vec<Model>>,
        cancel: Cancel,
    ) -> Actions {
        Actions {
            database,
            source,
            models,
            filters: HashMap::new(),
            cancel,
            tasks: Mutex::new(JoinSet::new()),
            backfills: Mutex::new(Vec::new()),
            next_backfill: AtomicU64::new(1),
        }
    }

    /// Limits the runs and backfills it starts for a pipeline to that
    /// pipeline's configured tokens.
    pub fn with_filters(mut self, filters: HashMap<Pipeline, TokenFilter>) -> Actions {
        self.filters = filters;
        self
    }

    /// The token filter runs of `pipeline` started here load with.
    pub fn filter(&self, pipeline: Pipeline) -> Option<&TokenFilter> {
        self.filters.get(&pipeline)
    }

    /// The source, or [`ServiceError::NoSource`] with the reason there is none.
    fn source(&self) -> ServiceResult<Arc<dyn Source>> {
        self.source
            .as_ref()
            .map(Arc::clone)
            .map_err(|reason| ServiceError::NoSource(reason.clone()))
    }

    /// Why runs cannot start here, when they cannot.
    pub fn source_missing(&self) -> Option<&str> {
        self.source.as_ref().err().map(String::as_str)
    }

    fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        // Reap finished tasks so the set does not grow with the server's age.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(task);
    }

    /// Starts loading `pipeline` for `day`; answers once the run is in the
    /// ledger (its id), or with 409 when another writer holds the day.
    pub async fn start_run(&self, pipeline: Pipeline, day: Day) -> Result<RunId, ServiceError> {
        let source = self.source()?;
        let (sender, receiver) = oneshot::channel();
        let announce = Arc::new(Announce(Mutex::new(Some(sender))));
        let request = RunRequest {
            pipeline,
            scope: Scope::Day(day),
            trigger: "dashboard".to_string(),
            filter: self.filter(pipeline).cloned(),
            models: self.models.get(&pipeline).cloned().unwrap_or_default(),
        };
        let (database, cancel) = (Arc::clone(&self.database), self.cancel.clone());
        let progress = Arc::clone(&announce);
        self.spawn(async move {
            let result =
                ethpipe_orch::run(&database, source.as_ref(), request, &*progress, &cancel).await;
            match result {
                Ok(outcome) => {
                    tracing::info!("dashboard run {}: {} rows", outcome.run, outcome.rows);
                    progress.send(Ok(outcome.run));
                }
                Err(RunError::Busy { pipeline, scope }) => progress.send(Err(ServiceError::Conflict(
                    format!("{pipeline} {scope} is being loaded by another run right now; try again when it has finished"),
                ))),
                Err(RunError::Ledger(source)) => progress.send(Err(ServiceError::Ledger {
                    what: "cannot record the run",
                    source,
                })),
                Err(e @ RunError::Failed { run, .. }) => {
                    tracing::warn!("dashboard run failed: {e}");
                    progress.send(Ok(run));
                }
            }
        });
        receiver.await.map_err(ServiceError::RunTaskLost)?
    }

    /// Starts a backfill in the background and returns its id at once
    /// (`order.parallel` is already within 1..=[`MAX_PARALLEL`]).
    pub fn start_backfill(&self, order: BackfillOrder) -> ServiceResult<BackfillView> {
        let BackfillOrder {
            pipeline,
            from,
            to,
            parallel,
            force,
        } = order;
        let source = self.source()?;
        if self.database.one_writer_at_a_time() && parallel > 1 {
            return Err(Invalid::new(
                "SQLite has one writer at a time (also the ledger of a parquet:// store): parallel above 1 needs PostgreSQL",
            )
            .into());
        }
        let mut backfills = self.backfills.lock().unwrap_or_else(|p| p.into_inner());
        let active = backfills
            .iter()
            .filter(|b| b.view().state == "running")
            .count();
        if active >= MAX_ACTIVE_BACKFILLS {
            return Err(ServiceError::Conflict(format!(
                "{active} backfills are already running here; wait for one to finish"
            )));
        }
        let id = self.next_backfill.fetch_add(1, Ordering::Relaxed);
        let job = Arc::new(BackfillJob {
            view: Mutex::new(BackfillView {
                id,
                pipeline: pipeline.name().to_string(),
                from: from.to_string(),
                to: to.to_string(),
                parallel,
                force,
                state: "running".into(),
                days_planned: 0,
                days_loaded: 0,
                days_skipped: 0,
                days_failed: 0,
                rows: 0,
                started_at: timestamp(Utc::now()),
                finished_at: None,
                error: None,
            }),
        });
        backfills.push(Arc::clone(&job));
        // Keep the list bounded: forget the oldest finished jobs.
        while backfills.len() > 50 {
            match backfills.iter().position(|b| b.view().state != "running") {
                Some(i) => {
                    backfills.remove(i);
                }
                None => break,
            }
        }
        drop(backfills);
        let request = BackfillRequest {
            pipeline,
            from,
            to,
            parallel,
            force,
            trigger: "backfill".to_string(),
            shared_force: false,
            filter: self.filter(pipeline).cloned(),
            models: self.models.get(&pipeline).cloned().unwrap_or_default(),
        };
        let (database, cancel) = (Arc::clone(&self.database), self.cancel.clone());
        let view = job.view();
        self.spawn(async move {
            let progress: Arc<dyn BackfillProgress> = job.clone();
            let result =
                ethpipe_orch::backfill::backfill(database, source, request, progress, cancel).await;
            job.update(|v| {
                v.finished_at = Some(timestamp(Utc::now()));
                match result {
                    Ok(summary) if !summary.interrupted.is_empty() => {
                        v.state = "interrupted".into()
                    }
                    Ok(summary) if !summary.failed.is_empty() => {
                        v.state = "failed".into();
                        v.error = summary
                            .failed
                            .first()
                            .map(|(day, message)| format!("{day}: {message}"));
                    }
                    Ok(_) => v.state = "finished".into(),
                    Err(e) => {
                        v.state = "failed".into();
                        v.error = Some(e.to_string());
                    }
                }
            });
        });
        Ok(view)
    }

    /// Newest first.
    pub fn backfills(&self) -> Vec<BackfillView> {
        let backfills = self.backfills.lock().unwrap_or_else(|p| p.into_inner());
        backfills.iter().rev().map(|b| b.view()).collect()
    }

    pub fn backfill(&self, id: u64) -> Option<BackfillView> {
        self.backfills().into_iter().find(|b| b.id == id)
    }

    /// Turns a trigger on or off; false when there is no such trigger.
    pub async fn set_trigger_active(&self, name: &str, active: bool) -> ServiceResult<bool> {
        self.database
            .ledger()
            .set_trigger_active(name, active)
            .await
            .map_err(|source| ServiceError::Ledger {
                what: "cannot change the trigger",
                source: source.into(),
            })
    }

    /// Waits for every run and backfill started here to stop (after the
    /// cancel flag fired, they roll back and are marked failed).
    pub async fn wait(&self) {
        let mut tasks = {
            let mut guard = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::take(&mut *guard)
        };
        while tasks.join_next().await.is_some() {}
    }
}
