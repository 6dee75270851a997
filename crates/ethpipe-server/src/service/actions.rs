//! Work the dashboard starts in this process: "run now" for a day, backfills,
//! and trigger toggles. Runs and backfills call the orchestrator with the
//! source `ethpipe serve` opened, under the same per-day locks as every other
//! writer, and stop (rolling back) when the server shuts down. A backfill is
//! recorded in the ledger first (`ethpipe_orch::jobs`): its progress is read
//! from its runs, and if this process stops, the scheduler's leader resumes it. A server
//! started without a source (a read-only dashboard) still has its actions:
//! trigger toggles work, and a run or backfill is refused with the reason
//! the CLI would give.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ethpipe_core::{Day, Pipeline, Scope, Source, TokenFilter};
use ethpipe_orch::health::Health;
use ethpipe_orch::{Cancel, Model, Progress, RunError, RunRequest};
use ethpipe_sinks::ledger::{BackfillJobRecord, NewBackfillJob};
use ethpipe_sinks::{Database, LedgerError, RunId};
use serde::Serialize;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use utoipa::ToSchema;

use super::{PipelineName, ServiceError, ServiceResult};
use crate::error::Invalid;
use crate::store::timestamp;

/// Unfinished backfills at once (across every server on the database); more
/// are refused with 409.
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
    /// Shared with the scheduler `serve` runs beside these actions.
    health: Arc<Health>,
}

/// Backfills the list shows.
const BACKFILLS_SHOWN: u32 = 50;

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
    /// `running` (until its whole range is done: a backfill whose server
    /// stopped is resumed by the scheduler's leader), `finished` (every day
    /// loaded or skipped) or `failed` (some day failed).
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

impl From<BackfillJobRecord> for BackfillView {
    fn from(job: BackfillJobRecord) -> Self {
        let days = (job.to.naive() - job.from.naive()).num_days() + 1;
        BackfillView {
            id: job.id.unsigned_abs(),
            days_planned: (days.max(0) as u64).saturating_sub(job.days_skipped),
            days_loaded: job.days_loaded,
            days_skipped: job.days_skipped,
            days_failed: job.days_failed,
            rows: job.rows,
            from: job.from.to_string(),
            to: job.to.to_string(),
            parallel: job.parallel as usize,
            force: job.force,
            state: job.state,
            pipeline: job.pipeline,
            started_at: timestamp(job.started_at),
            finished_at: job.finished_at.map(timestamp),
            error: job.error,
        }
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
            health: Arc::default(),
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

    /// The scheduler's figures, for `/readyz` and `/metrics`; `serve` hands
    /// the same value to the scheduler.
    pub fn health(&self) -> Arc<Health> {
        Arc::clone(&self.health)
    }

    /// The source, to probe it (`/readyz`), when this server has one.
    pub fn source_to_probe(&self) -> Option<Arc<dyn Source>> {
        self.source.as_ref().ok().map(Arc::clone)
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

    /// Records a backfill in the ledger and starts it in the background;
    /// returns it at once (`order.parallel` is already within 1..=[`MAX_PARALLEL`]).
    pub async fn start_backfill(&self, order: BackfillOrder) -> ServiceResult<BackfillView> {
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
                "SQLite has one writer at a time: parallel above 1 needs PostgreSQL or parquet:// files",
            )
            .into());
        }
        let ledger = self.database.ledger();
        let reading = |source: LedgerError| ServiceError::Ledger {
            what: "cannot record the backfill",
            source: source.into(),
        };
        let active = ledger
            .backfill_jobs(true, MAX_ACTIVE_BACKFILLS as u32)
            .await
            .map_err(reading)?
            .len();
        if active >= MAX_ACTIVE_BACKFILLS {
            return Err(ServiceError::Conflict(format!(
                "{active} backfills are already running; wait for one to finish"
            )));
        }
        let new_job = NewBackfillJob {
            pipeline,
            from,
            to,
            parallel: parallel as u32,
            force,
        };
        let id = ledger
            .create_backfill_job(&new_job)
            .await
            .map_err(reading)?;
        let job = self
            .find_job(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("backfill {id} vanished")))?;
        // Free only if the leader has not already picked it up as orphaned.
        if let Some(lock) = ledger.lock_backfill_job(id).await.map_err(reading)? {
            let (database, cancel) = (Arc::clone(&self.database), self.cancel.clone());
            let (models, record) = (self.models.clone(), job.clone());
            let filters = self.filters.clone();
            self.spawn(async move {
                ethpipe_orch::jobs::run_job(
                    database,
                    source,
                    record,
                    lock,
                    ethpipe_orch::jobs::Configured {
                        models: &models,
                        filters: &filters,
                    },
                    Arc::new(()),
                    cancel,
                )
                .await;
            });
        }
        Ok(job.into())
    }

    async fn find_job(&self, id: i64) -> ServiceResult<Option<BackfillJobRecord>> {
        let jobs = self.recorded_jobs(u32::MAX).await?;
        Ok(jobs.into_iter().find(|job| job.id == id))
    }

    async fn recorded_jobs(&self, limit: u32) -> ServiceResult<Vec<BackfillJobRecord>> {
        self.database
            .ledger()
            .backfill_jobs(false, limit)
            .await
            .map_err(|source| ServiceError::Ledger {
                what: "cannot read the backfills",
                source: source.into(),
            })
    }

    /// The latest backfills, newest first.
    pub async fn backfills(&self) -> ServiceResult<Vec<BackfillView>> {
        let jobs = self.recorded_jobs(BACKFILLS_SHOWN).await?;
        Ok(jobs.into_iter().map(BackfillView::from).collect())
    }

    pub async fn backfill(&self, id: u64) -> ServiceResult<Option<BackfillView>> {
        let Ok(id) = i64::try_from(id) else {
            return Ok(None);
        };
        Ok(self.find_job(id).await?.map(BackfillView::from))
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
