//! The JSON API under `/api/v1`: thin handlers that validate input
//! ([`crate::params`]), call [`crate::queries`] or [`crate::jobs`], and return
//! JSON. Mutations (`POST /runs`, `POST /backfills`,
//! `PUT /triggers/{name}/active`) take [`Authorized`] first, so a request
//! without the token is refused before its body is even read.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ethpipe_core::Pipeline;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::AppError;
use crate::jobs::{Actions, BackfillView};
use crate::params::{self, Cursor, Direction, MAX_LOG_LINES, MAX_PAGE};
use crate::queries::ledger::{self, PipelineSummary, Run, RunFilter};
use crate::queries::tokens::{self, Side};
use crate::queries::transfers;
use crate::AppState;

type ApiResult<T> = Result<T, AppError>;

/// Proof that a mutating request may proceed: the bearer token matched, or
/// the server requires none (loopback without `ETHPIPE_API_TOKEN`).
pub struct Authorized;

impl FromRequestParts<AppState> for Authorized {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        if !state.config.token_required() {
            // No token means loopback only. A page elsewhere could still reach
            // the port through DNS rebinding (its own name resolving to
            // 127.0.0.1), so the Host must name loopback too.
            return if host_is_loopback(parts) {
                Ok(Authorized)
            } else {
                Err(AppError::Status(
                    403,
                    "without ETHPIPE_API_TOKEN, changes are accepted only for a loopback Host (127.0.0.1, [::1] or localhost)".into(),
                ))
            };
        }
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        match presented {
            Some(token) if state.config.token_matches(token) => Ok(Authorized),
            _ => Err(AppError::Unauthorized),
        }
    }
}

/// Whether the request's Host header names a loopback address or `localhost`.
fn host_is_loopback(parts: &Parts) -> bool {
    let Some(host) = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| parts.uri.host())
    else {
        return false;
    };
    // Strip the port: `127.0.0.1:6789`, `[::1]:6789`, `localhost:6789`.
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn actions(state: &AppState) -> ApiResult<&Actions> {
    state.actions.as_deref().ok_or_else(|| {
        AppError::Unavailable(
            "this server was started without a source, so it cannot start runs".into(),
        )
    })
}

pub async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::document().to_string(),
    )
        .into_response()
}

pub async fn not_found() -> AppError {
    AppError::NotFound("no such API endpoint; see /api/v1/openapi.json".into())
}

#[derive(Serialize)]
pub struct PipelinesBody {
    pub pipelines: Vec<PipelineSummary>,
    pub backfills: Vec<BackfillView>,
    /// Whether this server can start runs (it has a source).
    pub can_run: bool,
    /// Whether mutations need `Authorization: Bearer …`.
    pub token_required: bool,
}

pub async fn pipelines_body(state: &AppState) -> ApiResult<PipelinesBody> {
    let triggers = ledger::triggers(&state.reader).await?;
    let mut pipelines = Vec::new();
    for pipeline in Pipeline::all().iter().copied() {
        pipelines.push(ledger::pipeline_summary(&state.reader, pipeline, &triggers).await?);
    }
    Ok(PipelinesBody {
        pipelines,
        backfills: state
            .actions
            .as_ref()
            .map(|a| a.backfills())
            .unwrap_or_default(),
        can_run: state.actions.is_some(),
        token_required: state.config.token_required(),
    })
}

pub async fn pipelines(State(state): State<AppState>) -> ApiResult<Json<PipelinesBody>> {
    Ok(Json(pipelines_body(&state).await?))
}

pub async fn triggers(State(state): State<AppState>) -> ApiResult<Json<serde_json::Value>> {
    let triggers = ledger::triggers(&state.reader).await?;
    Ok(Json(json!({ "triggers": triggers })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActiveBody {
    active: bool,
}

pub async fn set_trigger_active(
    _: Authorized,
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    body: Result<Json<ActiveBody>, JsonRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let Path(name) = name?;
    let Json(body) = body?;
    if name.is_empty() || name.chars().count() > 200 {
        return Err(AppError::bad_request(
            "invalid trigger name: expected 1 to 200 characters",
        ));
    }
    if !actions(&state)?
        .set_trigger_active(&name, body.active)
        .await?
    {
        return Err(AppError::NotFound(format!(
            "no trigger named '{name}' (triggers come from [[triggers]] in ethpipe.toml)"
        )));
    }
    Ok(Json(json!({ "name": name, "active": body.active })))
}

#[derive(Deserialize, Default)]
pub struct RunsQuery {
    pub pipeline: Option<String>,
    pub status: Option<String>,
    pub trigger: Option<String>,
    pub before: Option<String>,
    pub limit: Option<String>,
}

#[derive(Serialize)]
pub struct RunsBody {
    pub runs: Vec<Run>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    pub next_before: Option<i64>,
}

pub async fn runs_body(state: &AppState, query: &RunsQuery) -> ApiResult<RunsBody> {
    let limit = params::limit(query.limit.as_deref(), 20, MAX_PAGE)?;
    let filter = RunFilter {
        pipeline: params::optional_pipeline(query.pipeline.as_deref())?,
        status: params::status(query.status.as_deref())?,
        trigger: params::trigger_name(query.trigger.as_deref())?,
        trigger_prefix: None,
        before: params::optional_id("before", query.before.as_deref())?,
        limit: limit + 1,
    };
    let mut runs = ledger::runs(&state.reader, &filter).await?;
    let next_before = (runs.len() > limit as usize).then(|| runs[limit as usize - 1].id);
    runs.truncate(limit as usize);
    Ok(RunsBody { runs, next_before })
}

pub async fn runs(
    State(state): State<AppState>,
    query: Result<Query<RunsQuery>, QueryRejection>,
) -> ApiResult<Json<RunsBody>> {
    let Query(query) = query?;
    Ok(Json(runs_body(&state, &query).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRunBody {
    pipeline: String,
    day: String,
}

pub async fn start_run(
    _: Authorized,
    State(state): State<AppState>,
    body: Result<Json<StartRunBody>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let Json(body) = body?;
    let pipeline = params::pipeline(&body.pipeline)?;
    let day = params::day("day", &body.day)?;
    let run = actions(&state)?.start_run(pipeline, day).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "run_id": run.0,
            "pipeline": pipeline.name(),
            "day": day.to_string(),
            "url": format!("/runs/{}", run.0),
        })),
    ))
}

pub async fn run(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let Path(id) = id?;
    let id = params::id("run id", &id)?;
    let (run, steps) = ledger::run(&state.reader, id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no run {id}")))?;
    Ok(Json(json!({ "run": run, "steps": steps })))
}

#[derive(Deserialize, Default)]
pub struct LogsQuery {
    pub after: Option<String>,
    pub limit: Option<String>,
}

pub async fn run_logs(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<LogsQuery>, QueryRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let (Path(id), Query(query)) = (id?, query?);
    let id = params::id("run id", &id)?;
    let after = match query.after.as_deref() {
        None | Some("0") => 0,
        Some(text) => params::id("after", text)?,
    };
    let limit = params::limit(query.limit.as_deref(), 200, MAX_LOG_LINES)?;
    if ledger::run(&state.reader, id).await?.is_none() {
        return Err(AppError::NotFound(format!("no run {id}")));
    }
    let logs = ledger::logs(&state.reader, id, after, limit).await?;
    let next_after = logs.last().map_or(after, |l| l.id);
    Ok(Json(
        json!({ "run_id": id, "logs": logs, "next_after": next_after }),
    ))
}

pub async fn backfills(State(state): State<AppState>) -> ApiResult<Json<serde_json::Value>> {
    let recent = ledger::runs(
        &state.reader,
        &RunFilter {
            trigger_prefix: Some("backfill".into()),
            limit: 20,
            ..RunFilter::default()
        },
    )
    .await?;
    let jobs = state
        .actions
        .as_ref()
        .map(|a| a.backfills())
        .unwrap_or_default();
    Ok(Json(json!({ "backfills": jobs, "recent_runs": recent })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartBackfillBody {
    pipeline: String,
    from: String,
    to: String,
    parallel: Option<u32>,
    #[serde(default)]
    force: bool,
}

pub async fn start_backfill(
    _: Authorized,
    State(state): State<AppState>,
    body: Result<Json<StartBackfillBody>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<BackfillView>)> {
    let Json(body) = body?;
    let pipeline = params::pipeline(&body.pipeline)?;
    let from = params::day("from", &body.from)?;
    let to = params::day("to", &body.to)?;
    params::day_range(from, to)?;
    let parallel = body.parallel.unwrap_or(1);
    if !(1..=16).contains(&parallel) {
        return Err(AppError::bad_request(format!(
            "invalid parallel {parallel}: expected 1 to 16 days in flight"
        )));
    }
    let actions = actions(&state)?;
    if actions.is_sqlite() && parallel > 1 {
        return Err(AppError::bad_request(
            "SQLite has one writer at a time: parallel above 1 needs PostgreSQL",
        ));
    }
    let view = actions.start_backfill(pipeline, from, to, parallel as usize, body.force)?;
    Ok((StatusCode::ACCEPTED, Json(view)))
}

pub async fn backfill(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<BackfillView>> {
    let Path(id) = id?;
    let id = params::id("backfill id", &id)?;
    state
        .actions
        .as_ref()
        .and_then(|a| a.backfill(id as u64))
        .map(Json)
        .ok_or_else(|| {
            AppError::NotFound(format!(
                "no backfill {id} (backfills are kept while the server runs)"
            ))
        })
}

#[derive(Deserialize, Default)]
pub struct SearchQuery {
    pub q: Option<String>,
    pub limit: Option<String>,
}

pub async fn search_tokens(
    State(state): State<AppState>,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let Query(query) = query?;
    let text = params::search_text(query.q.as_deref())?;
    let limit = params::limit(query.limit.as_deref(), 20, MAX_PAGE)?;
    let hits = tokens::search(&state.reader, &text, limit).await?;
    Ok(Json(json!({ "q": text, "tokens": hits })))
}

pub async fn token(
    State(state): State<AppState>,
    address: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<tokens::Token>> {
    let Path(address) = address?;
    let address = params::address(&address)?;
    tokens::token(&state.reader, &address)
        .await?
        .map(Json)
        .ok_or_else(|| AppError::NotFound(format!("no token {address} in ethereum.tokens")))
}

#[derive(Deserialize, Default)]
pub struct DailyQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub limit: Option<String>,
}

pub async fn token_daily(
    State(state): State<AppState>,
    address: Result<Path<String>, PathRejection>,
    query: Result<Query<DailyQuery>, QueryRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let (Path(address), Query(query)) = (address?, query?);
    let address = params::address(&address)?;
    let from = params::optional_day("from", query.from.as_deref())?;
    let to = params::optional_day("to", query.to.as_deref())?;
    if let (Some(from), Some(to)) = (from, to) {
        params::day_range(from, to)?;
    }
    let limit = params::limit(query.limit.as_deref(), 365, params::MAX_DAYS as u32)?;
    let days = tokens::daily(&state.reader, &address, from, to, limit).await?;
    Ok(Json(json!({ "token_address": address, "days": days })))
}

#[derive(Deserialize, Default)]
pub struct TopQuery {
    pub day: Option<String>,
    pub limit: Option<String>,
}

#[derive(Serialize)]
pub struct TopBody {
    pub token_address: String,
    /// The day ranked: the one asked for, else the token's latest day.
    pub day: Option<String>,
    pub senders: Vec<tokens::Counterparty>,
    pub receivers: Vec<tokens::Counterparty>,
}

pub async fn top_body(state: &AppState, address: &str, query: &TopQuery) -> ApiResult<TopBody> {
    let day = match params::optional_day("day", query.day.as_deref())? {
        Some(day) => Some(day),
        None => tokens::latest_day(&state.reader, address)
            .await?
            .and_then(|d| d.parse().ok()),
    };
    let limit = params::limit(query.limit.as_deref(), 10, MAX_PAGE)?;
    let Some(day) = day else {
        return Ok(TopBody {
            token_address: address.to_string(),
            day: None,
            senders: Vec::new(),
            receivers: Vec::new(),
        });
    };
    let decimals = tokens::token(&state.reader, address)
        .await?
        .and_then(|t| t.decimals);
    let reader = &state.reader;
    let senders = tokens::top(
        reader,
        address,
        day,
        Side::Senders,
        limit,
        decimals.as_deref(),
    )
    .await?;
    let receivers = tokens::top(
        reader,
        address,
        day,
        Side::Receivers,
        limit,
        decimals.as_deref(),
    )
    .await?;
    Ok(TopBody {
        token_address: address.to_string(),
        day: Some(day.to_string()),
        senders,
        receivers,
    })
}

pub async fn token_top(
    State(state): State<AppState>,
    address: Result<Path<String>, PathRejection>,
    query: Result<Query<TopQuery>, QueryRejection>,
) -> ApiResult<Json<TopBody>> {
    let (Path(address), Query(query)) = (address?, query?);
    let address = params::address(&address)?;
    Ok(Json(top_body(&state, &address, &query).await?))
}

#[derive(Deserialize, Default)]
pub struct TransfersQuery {
    pub direction: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<String>,
}

pub async fn transfers_page(
    state: &AppState,
    address: &str,
    query: &TransfersQuery,
) -> ApiResult<transfers::TransferPage> {
    let direction = Direction::parse(query.direction.as_deref())?;
    let cursor = query.cursor.as_deref().map(Cursor::parse).transpose()?;
    let limit = params::limit(query.limit.as_deref(), 25, MAX_PAGE)?;
    Ok(transfers::for_address(&state.reader, address, direction, cursor.as_ref(), limit).await?)
}

pub async fn address_transfers(
    State(state): State<AppState>,
    address: Result<Path<String>, PathRejection>,
    query: Result<Query<TransfersQuery>, QueryRejection>,
) -> ApiResult<Json<transfers::TransferPage>> {
    let (Path(address), Query(query)) = (address?, query?);
    let address = params::address(&address)?;
    Ok(Json(transfers_page(&state, &address, &query).await?))
}

#[derive(Deserialize, Default)]
pub struct DayQuery {
    pub limit: Option<String>,
}

pub async fn day(
    State(state): State<AppState>,
    day: Result<Path<String>, PathRejection>,
    query: Result<Query<DayQuery>, QueryRejection>,
) -> ApiResult<Json<transfers::DayOverview>> {
    let (Path(day), Query(query)) = (day?, query?);
    let day = params::day("day", &day)?;
    let limit = params::limit(query.limit.as_deref(), 20, MAX_PAGE)?;
    Ok(Json(
        transfers::day_overview(&state.reader, day, limit).await?,
    ))
}
