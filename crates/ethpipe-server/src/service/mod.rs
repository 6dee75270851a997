//! What the server does, for the JSON API and the HTML pages alike: each
//! operation takes typed, validated input and returns a domain or response
//! type. Nothing here knows HTTP; [`crate::http`] translates requests into
//! these calls and their results (or [`ServiceError`]s) into responses.
//!
//! Data reads go through [`crate::store`]; the pipelines' own state through
//! the ledger reads in [`crate::queries`]; work started from the dashboard
//! through [`Actions`].

pub mod actions;
mod full_load;
mod pipelines;
pub mod schemas;

use std::sync::Arc;

use ethpipe_core::{Day, Pipeline};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::Invalid;
use crate::queries::ledger::{self, LogLine, PipelineSummary, Run, RunFilter, Step, Trigger};
use crate::queries::stats::{self, RunCount};
use crate::store::{
    Counterparty, Cursor, DailyStat, DayOverview, Direction, QueryError, Reader, Side, Token,
    TokenHit, TransferPage,
};

/// How long `/readyz` waits for the source to answer.
const SOURCE_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// `/readyz`: ready when every dependency answers.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub database: Check,
    /// The scheduler's connection (it reconnects with backoff on its own).
    pub scheduler: Check,
    /// `None` when this server has no source (a read-only dashboard).
    pub source: Option<Check>,
    /// Whether this process's scheduler holds the leader lock.
    pub leader: bool,
}

/// One dependency: answering, or why not.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Check {
    fn ok() -> Check {
        Check {
            ok: true,
            error: None,
        }
    }

    fn failed(error: String) -> Check {
        Check {
            ok: false,
            error: Some(error),
        }
    }
}

pub use actions::{Actions, BackfillOrder, BackfillView, MAX_ACTIVE_BACKFILLS, MAX_PARALLEL};
pub use pipelines::{day_overview_pipeline, parse_pipeline, pipelines, PipelineName};

/// Why an operation could not be done.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("{0}")]
    NotFound(String),
    /// The request is fine but cannot be done now (the day is being loaded).
    #[error("{0}")]
    Conflict(String),
    /// Runs need a source and this server has none; the reason says how
    /// to give one.
    #[error("this server cannot start runs: {0}")]
    NoSource(String),
    #[error(transparent)]
    Query(#[from] QueryError),
    /// The ledger refused a write (run, trigger).
    #[error("{what}: {source}")]
    Ledger {
        what: &'static str,
        #[source]
        source: ethpipe_sinks::SinkError,
    },
    #[error("the run task ended without a result")]
    RunTaskLost(#[source] tokio::sync::oneshot::error::RecvError),
}

pub type ServiceResult<T> = Result<T, ServiceError>;

/// Each pipeline, the dashboard backfills, and whether runs can start.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    pub pipelines: Vec<PipelineSummary>,
    pub backfills: Vec<BackfillView>,
    pub can_run: bool,
    /// Why runs cannot start here (the source could not be opened).
    pub source_missing: Option<String>,
}

/// Which runs to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct RunsRequest {
    pub pipeline: Option<Pipeline>,
    pub status: Option<&'static str>,
    pub trigger: Option<String>,
    pub before: Option<i64>,
    pub limit: u32,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RunsPage {
    #[schema(value_type = Vec<schemas::RunSchema>)]
    pub runs: Vec<Run>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    pub next_before: Option<i64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RunDetail {
    #[schema(value_type = schemas::RunSchema)]
    pub run: Run,
    #[schema(value_type = Vec<schemas::StepSchema>)]
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RunLogs {
    pub run_id: i64,
    #[schema(value_type = Vec<schemas::LogLineSchema>)]
    pub logs: Vec<LogLine>,
    /// Pass as `after` for the lines that follow.
    pub next_after: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Backfills {
    /// Started from this server, newest first.
    pub backfills: Vec<BackfillView>,
    /// The latest runs of any backfill (also `ethpipe backfill`'s).
    #[schema(value_type = Vec<schemas::RunSchema>)]
    pub recent_runs: Vec<Run>,
}

/// A token's top senders and receivers of one day.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TopCounterparties {
    pub token_address: String,
    /// The day ranked: the one asked for, else the token's latest day.
    #[schema(format = Date)]
    pub day: Option<String>,
    pub senders: Vec<Counterparty>,
    pub receivers: Vec<Counterparty>,
}

/// What a token page shows besides the top lists.
pub struct TokenProfile {
    pub token: Option<Token>,
    /// Up to a year of daily statistics, oldest first.
    pub daily: Vec<DailyStat>,
}

/// The ledger figures `/metrics` exports.
pub struct RunFigures {
    pub counts: Vec<RunCount>,
    /// (pipeline, status, seconds) of every finished run.
    pub durations: Vec<(String, String, f64)>,
}

/// The operations, over one database and (when the server has a source)
/// the actions that start work.
pub struct Service {
    reader: Reader,
    actions: Option<Arc<Actions>>,
}

impl Service {
    pub fn new(reader: Reader, actions: Option<Arc<Actions>>) -> Service {
        Service { reader, actions }
    }

    fn actions(&self) -> ServiceResult<&Actions> {
        self.actions.as_deref().ok_or_else(|| {
            ServiceError::NoSource(
                "it was started without a source and a database to write to".into(),
            )
        })
    }

    /// Whether runs and backfills can start here (the server has a source).
    pub fn can_run(&self) -> bool {
        self.actions
            .as_ref()
            .is_some_and(|a| a.source_missing().is_none())
    }

    /// Why runs cannot start here, when they cannot.
    pub fn source_missing(&self) -> Option<String> {
        match &self.actions {
            Some(actions) => actions.source_missing().map(str::to_string),
            None => Some("it was started without a source and a database to write to".into()),
        }
    }

    /// Whether the database answers through the read path.
    pub async fn ping(&self) -> Result<(), QueryError> {
        self.reader.ping().await
    }

    /// Each dependency's state, for `/readyz`: the database (the read path,
    /// and the scheduler's own connection), the source when there is one.
    pub async fn readiness(&self) -> Readiness {
        let database = match self.ping().await {
            Ok(()) => Check::ok(),
            Err(e) => Check::failed(format!("the database is not reachable ({e})")),
        };
        let health = self.health();
        let scheduler = match health.as_ref().and_then(|h| h.database_error.clone()) {
            None => Check::ok(),
            Some(e) => Check::failed(format!("the scheduler cannot reach the database ({e})")),
        };
        let source = match self.actions.as_ref().and_then(|a| a.source_to_probe()) {
            None => None,
            Some(source) => Some(
                match tokio::time::timeout(SOURCE_PROBE_TIMEOUT, source.probe()).await {
                    Ok(Ok(())) => Check::ok(),
                    Ok(Err(e)) => Check::failed(format!("the source is not reachable ({e})")),
                    Err(_) => Check::failed(format!(
                        "the source did not answer within {}s",
                        SOURCE_PROBE_TIMEOUT.as_secs()
                    )),
                },
            ),
        };
        let ready = database.ok && scheduler.ok && source.as_ref().is_none_or(|s| s.ok);
        Readiness {
            ready,
            database,
            scheduler,
            source,
            leader: health.is_some_and(|h| h.leader),
        }
    }

    /// The scheduler's figures, when this server runs one.
    pub fn health(&self) -> Option<ethpipe_orch::health::HealthFigures> {
        self.actions.as_ref().map(|a| a.health().figures())
    }

    pub async fn run_figures(&self) -> ServiceResult<RunFigures> {
        Ok(RunFigures {
            counts: stats::run_counts(&self.reader).await?,
            durations: stats::run_durations(&self.reader).await?,
        })
    }

    pub async fn overview(&self) -> ServiceResult<Overview> {
        let triggers = ledger::triggers(&self.reader).await?;
        let mut summaries = Vec::new();
        for pipeline in pipelines() {
            let mut summary = ledger::pipeline_summary(&self.reader, pipeline, &triggers).await?;
            summary.tokens = self
                .actions
                .as_ref()
                .and_then(|a| a.filter(pipeline))
                .map(|f| f.addresses().to_vec());
            full_load::include_full_load(&self.reader, pipeline, &mut summary).await?;
            summaries.push(summary);
        }
        Ok(Overview {
            pipelines: summaries,
            backfills: self.started_backfills().await?,
            can_run: self.can_run(),
            source_missing: self.source_missing(),
        })
    }

    async fn started_backfills(&self) -> ServiceResult<Vec<BackfillView>> {
        match &self.actions {
            Some(actions) => actions.backfills().await,
            None => Ok(Vec::new()),
        }
    }

    pub async fn triggers(&self) -> ServiceResult<Vec<Trigger>> {
        Ok(ledger::triggers(&self.reader).await?)
    }

    pub async fn set_trigger_active(&self, name: &str, active: bool) -> ServiceResult<()> {
        if self.actions()?.set_trigger_active(name, active).await? {
            Ok(())
        } else {
            Err(ServiceError::NotFound(format!(
                "no trigger named '{name}' (triggers come from [[triggers]] in ethpipe.toml)"
            )))
        }
    }

    pub async fn runs(&self, request: &RunsRequest) -> ServiceResult<RunsPage> {
        let limit = request.limit as usize;
        let filter = RunFilter {
            pipeline: request.pipeline,
            status: request.status,
            trigger: request.trigger.clone(),
            trigger_prefix: None,
            before: request.before,
            // One more than asked tells whether an older page exists.
            limit: request.limit + 1,
        };
        let mut runs = ledger::runs(&self.reader, &filter).await?;
        let next_before = (runs.len() > limit).then(|| runs[limit - 1].id);
        runs.truncate(limit);
        Ok(RunsPage { runs, next_before })
    }

    /// Starts loading `pipeline` for `day`; answers with the run's id once
    /// the ledger has it.
    pub async fn start_run(&self, pipeline: Pipeline, day: Day) -> ServiceResult<i64> {
        Ok(self.actions()?.start_run(pipeline, day).await?.0)
    }

    pub async fn run(&self, id: i64) -> ServiceResult<RunDetail> {
        let (run, steps) = ledger::run(&self.reader, id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("no run {id}")))?;
        Ok(RunDetail { run, steps })
    }

    /// A run's log lines after the line `after` (0: from the start).
    pub async fn run_logs(&self, id: i64, after: i64, limit: u32) -> ServiceResult<RunLogs> {
        if ledger::run(&self.reader, id).await?.is_none() {
            return Err(ServiceError::NotFound(format!("no run {id}")));
        }
        let logs = ledger::logs(&self.reader, id, after, limit).await?;
        let next_after = logs.last().map_or(after, |l| l.id);
        Ok(RunLogs {
            run_id: id,
            logs,
            next_after,
        })
    }

    pub async fn backfills(&self) -> ServiceResult<Backfills> {
        let recent_runs = ledger::runs(
            &self.reader,
            &RunFilter {
                trigger_prefix: Some("backfill".into()),
                limit: 20,
                ..RunFilter::default()
            },
        )
        .await?;
        Ok(Backfills {
            backfills: self.started_backfills().await?,
            recent_runs,
        })
    }

    pub async fn start_backfill(&self, order: BackfillOrder) -> ServiceResult<BackfillView> {
        if !(1..=MAX_PARALLEL).contains(&order.parallel) {
            return Err(Invalid::new(format!(
                "invalid parallel {}: expected 1 to {MAX_PARALLEL} days in flight",
                order.parallel
            ))
            .into());
        }
        self.actions()?.start_backfill(order).await
    }

    pub async fn backfill(&self, id: u64) -> ServiceResult<BackfillView> {
        let found = match &self.actions {
            Some(actions) => actions.backfill(id).await?,
            None => None,
        };
        found.ok_or_else(|| ServiceError::NotFound(format!("no backfill {id}")))
    }

    pub async fn search_tokens(&self, text: &str, limit: u32) -> ServiceResult<Vec<TokenHit>> {
        Ok(self.reader.store().search_tokens(text, limit).await?)
    }

    pub async fn token(&self, address: &str) -> ServiceResult<Option<Token>> {
        Ok(self.reader.store().token(address).await?)
    }

    pub async fn token_daily(
        &self,
        address: &str,
        from: Option<Day>,
        to: Option<Day>,
        limit: u32,
    ) -> ServiceResult<Vec<DailyStat>> {
        Ok(self.reader.store().daily(address, from, to, limit).await?)
    }

    /// The token's metadata and a year of statistics; not found when it has
    /// neither.
    pub async fn token_profile(&self, address: &str) -> ServiceResult<TokenProfile> {
        let store = self.reader.store();
        let (token, daily) =
            tokio::try_join!(store.token(address), store.daily(address, None, None, 365))?;
        if token.is_none() && daily.is_empty() {
            return Err(ServiceError::NotFound(format!(
                "no token {address}: it is neither in ethereum.tokens nor in the daily statistics"
            )));
        }
        Ok(TokenProfile { token, daily })
    }

    /// Top senders and receivers on `day`, else on the token's latest day.
    pub async fn token_top(
        &self,
        address: &str,
        day: Option<Day>,
        limit: u32,
    ) -> ServiceResult<TopCounterparties> {
        let store = self.reader.store();
        let day = match day {
            Some(day) => Some(day),
            None => store.latest_day(address).await?,
        };
        let decimals = store.token(address).await?.and_then(|t| t.decimals);
        self.top_of_day(address, day, limit, decimals).await
    }

    /// The token page's reads: the profile, and the top senders and
    /// receivers on `day`, else on the latest day of the profile's
    /// statistics (their newest day is the token's latest), so the token
    /// and its latest day are read once.
    pub async fn token_page(
        &self,
        address: &str,
        day: Option<Day>,
        limit: u32,
    ) -> ServiceResult<(TokenProfile, TopCounterparties)> {
        let profile = self.token_profile(address).await?;
        let day = day.or_else(|| profile.daily.last().and_then(|d| d.day.parse().ok()));
        let decimals = profile.token.as_ref().and_then(|t| t.decimals.clone());
        let top = self.top_of_day(address, day, limit, decimals).await?;
        Ok((profile, top))
    }

    async fn top_of_day(
        &self,
        address: &str,
        day: Option<Day>,
        limit: u32,
        decimals: Option<String>,
    ) -> ServiceResult<TopCounterparties> {
        let Some(day) = day else {
            return Ok(TopCounterparties {
                token_address: address.to_string(),
                day: None,
                senders: Vec::new(),
                receivers: Vec::new(),
            });
        };
        let store = self.reader.store();
        // Both sides at once, on two pooled connections.
        let (senders, receivers) = tokio::try_join!(
            store.top_counterparties(address, day, Side::Senders, limit),
            store.top_counterparties(address, day, Side::Receivers, limit),
        )?;
        let ranked = |rows: Vec<(String, i64, String)>| {
            rows.into_iter()
                .map(|(address, transfers, volume_raw)| Counterparty {
                    volume: crate::store::scaled(Some(&volume_raw), decimals.as_deref()),
                    address,
                    transfers,
                    volume_raw,
                })
                .collect::<Vec<_>>()
        };
        Ok(TopCounterparties {
            token_address: address.to_string(),
            day: Some(day.to_string()),
            senders: ranked(senders),
            receivers: ranked(receivers),
        })
    }

    pub async fn transfers(
        &self,
        address: &str,
        direction: Direction,
        cursor: Option<&Cursor>,
        limit: u32,
    ) -> ServiceResult<TransferPage> {
        Ok(self
            .reader
            .store()
            .transfers(address, direction, cursor, limit)
            .await?)
    }

    pub async fn day_overview(&self, day: Day, limit: u32) -> ServiceResult<DayOverview> {
        Ok(self.reader.store().day_overview(day, limit).await?)
    }

    /// The latest day the day overview has data for.
    pub async fn latest_loaded_day(&self) -> ServiceResult<Option<String>> {
        let summary = ledger::pipeline_summary(&self.reader, day_overview_pipeline(), &[]).await?;
        Ok(summary.last_day)
    }
}
