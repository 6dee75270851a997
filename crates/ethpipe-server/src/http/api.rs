//! The JSON API under `/api/v1`: each handler extracts its input, validates
//! it ([`super::inputs`]), calls the [`Service`](crate::service::Service) and
//! answers JSON. Each carries its `#[utoipa::path]`, and the router is built
//! from those same attributes ([`router`]), so the OpenAPI document and the
//! routes cannot disagree.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Serialize;
use utoipa::openapi::OpenApi as Document;
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{AppError, ErrorBody};
use super::extract::{Authorized, Json, Path, Query};
use super::inputs::{
    ActiveBody, DailyQuery, DayQuery, LogsQuery, RunsQuery, SearchQuery, StartBackfillBody,
    StartRunBody, TopQuery, TransfersQuery,
};
use super::openapi::ApiDoc;
use super::params;
use super::AppState;
use crate::queries::ledger::{PipelineSummary, Trigger};
use crate::service::schemas::{PipelineSummarySchema, TriggerSchema};
use crate::service::{
    BackfillView, Backfills, PipelineName, RunDetail, RunLogs, RunsPage, TopCounterparties,
};
use crate::store::{DailyStat, DayOverview, Token, TokenHit, TransferPage};

type ApiResult<T> = Result<T, AppError>;

/// The API's routes and their document, from the handlers' attributes.
pub fn router() -> (axum::Router<AppState>, Document) {
    let (router, document) = OpenApiRouter::<AppState>::with_openapi(ApiDoc::openapi())
        .routes(routes!(pipelines))
        .routes(routes!(triggers))
        .routes(routes!(set_trigger_active))
        .routes(routes!(runs, start_run))
        .routes(routes!(run))
        .routes(routes!(run_logs))
        .routes(routes!(backfills, start_backfill))
        .routes(routes!(backfill))
        .routes(routes!(search_tokens))
        .routes(routes!(token))
        .routes(routes!(token_daily))
        .routes(routes!(token_top))
        .routes(routes!(address_transfers))
        .routes(routes!(day))
        .split_for_parts();
    let served = document.to_json().unwrap_or_default();
    let router = router
        .route(
            "/openapi.json",
            get(move || async move {
                ([(header::CONTENT_TYPE, "application/json")], served).into_response()
            }),
        )
        .fallback(not_found);
    (router, document)
}

async fn not_found() -> AppError {
    AppError::NoRoute("no such API endpoint; see /api/v1/openapi.json")
}

#[derive(Serialize, ToSchema)]
pub struct PipelinesBody {
    #[schema(value_type = Vec<PipelineSummarySchema>)]
    pub pipelines: Vec<PipelineSummary>,
    pub backfills: Vec<BackfillView>,
    /// Whether this server can start runs (it has a source).
    pub can_run: bool,
    /// Why this server cannot start runs (its source could not be opened:
    /// no credentials, no RPC URL), when it cannot.
    pub source_missing: Option<String>,
    /// Whether mutations need `Authorization: Bearer …`.
    pub token_required: bool,
}

/// Each pipeline: days loaded, rows, last run, triggers; and the dashboard backfills
#[utoipa::path(get, path = "/pipelines", operation_id = "listPipelines", responses(
    (status = 200, description = "pipelines", body = PipelinesBody),
    (status = 503, description = "the database is unreachable or the query ran past the statement timeout", body = ErrorBody),
))]
async fn pipelines(State(state): State<AppState>) -> ApiResult<Json<PipelinesBody>> {
    let overview = state.service.overview().await?;
    Ok(Json(PipelinesBody {
        pipelines: overview.pipelines,
        backfills: overview.backfills,
        can_run: overview.can_run,
        source_missing: overview.source_missing,
        token_required: state.config.token_required(),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct TriggersBody {
    #[schema(value_type = Vec<TriggerSchema>)]
    pub triggers: Vec<Trigger>,
}

/// Triggers with their toggle and next run
#[utoipa::path(get, path = "/triggers", operation_id = "listTriggers", responses(
    (status = 200, description = "triggers", body = TriggersBody),
    (status = 503, description = "the database is unreachable", body = ErrorBody),
))]
async fn triggers(State(state): State<AppState>) -> ApiResult<Json<TriggersBody>> {
    let triggers = state.service.triggers().await?;
    Ok(Json(TriggersBody { triggers }))
}

#[derive(Serialize, ToSchema)]
pub struct TriggerState {
    pub name: String,
    pub active: bool,
}

/// Turn a trigger on or off (persisted in the database)
#[utoipa::path(put, path = "/triggers/{name}/active", operation_id = "setTriggerActive",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "trigger name", min_length = 1, max_length = 200)),
    request_body = ActiveBody,
    responses(
        (status = 200, description = "the new state", body = TriggerState),
        (status = 400, description = "invalid input", body = ErrorBody),
        (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
        (status = 403, description = "no token is configured and the Host is not loopback", body = ErrorBody),
        (status = 404, description = "no such trigger", body = ErrorBody),
        (status = 413, description = "body too large", body = ErrorBody),
        (status = 415, description = "the body is not application/json", body = ErrorBody),
        (status = 503, description = "the database is unreachable, or the server has no source", body = ErrorBody),
    ))]
async fn set_trigger_active(
    _: Authorized,
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(body): Json<ActiveBody>,
) -> ApiResult<Json<TriggerState>> {
    let name = params::trigger_name(&name)?;
    state.service.set_trigger_active(name, body.active).await?;
    Ok(Json(TriggerState {
        name: name.to_string(),
        active: body.active,
    }))
}

/// Run history, newest first (keyset pages by id)
#[utoipa::path(get, path = "/runs", operation_id = "listRuns", params(RunsQuery), responses(
    (status = 200, description = "runs", body = RunsPage),
    (status = 400, description = "invalid input; the message says what is expected", body = ErrorBody),
    (status = 503, description = "the database is unreachable or the query ran past the statement timeout", body = ErrorBody),
))]
async fn runs(
    State(state): State<AppState>,
    Query(query): Query<RunsQuery>,
) -> ApiResult<Json<RunsPage>> {
    Ok(Json(state.service.runs(&query.request()?).await?))
}

#[derive(Serialize, ToSchema)]
pub struct StartedRun {
    pub run_id: i64,
    #[schema(value_type = PipelineName)]
    pub pipeline: String,
    #[schema(format = Date)]
    pub day: String,
    /// The run's page.
    pub url: String,
}

/// Load one UTC day of a pipeline now, in the server process
#[utoipa::path(post, path = "/runs", operation_id = "startRun",
    security(("bearer" = [])),
    request_body = StartRunBody,
    responses(
        (status = 202, description = "the run started; follow it at url", body = StartedRun),
        (status = 400, description = "invalid input", body = ErrorBody),
        (status = 401, description = "missing or wrong bearer token (required when the server has ETHPIPE_API_TOKEN)", body = ErrorBody),
        (status = 403, description = "no token is configured and the Host is not loopback (DNS rebinding protection)", body = ErrorBody),
        (status = 409, description = "another run is loading that day", body = ErrorBody),
        (status = 413, description = "body too large", body = ErrorBody),
        (status = 415, description = "the body is not application/json", body = ErrorBody),
        (status = 503, description = "the database is unreachable, or the server has no source to run with", body = ErrorBody),
    ))]
async fn start_run(
    _: Authorized,
    State(state): State<AppState>,
    Json(body): Json<StartRunBody>,
) -> ApiResult<(StatusCode, Json<StartedRun>)> {
    let (pipeline, day) = body.order()?;
    let run_id = state.service.start_run(pipeline, day).await?;
    let started = StartedRun {
        run_id,
        pipeline: pipeline.name().to_string(),
        day: day.to_string(),
        url: format!("/runs/{run_id}"),
    };
    Ok((StatusCode::ACCEPTED, Json(started)))
}

/// One run with its steps
#[utoipa::path(get, path = "/runs/{id}", operation_id = "getRun",
    params(("id" = i64, Path, description = "run id", minimum = 1)),
    responses(
        (status = 200, description = "the run", body = RunDetail),
        (status = 400, description = "invalid input; the message says what is expected", body = ErrorBody),
        (status = 404, description = "no such run", body = ErrorBody),
        (status = 503, description = "the database is unreachable or the query ran past the statement timeout", body = ErrorBody),
    ))]
async fn run(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<RunDetail>> {
    let id = params::id("run id", &id)?;
    Ok(Json(state.service.run(id).await?))
}

/// A run's log lines after a given line, oldest first
#[utoipa::path(get, path = "/runs/{id}/logs", operation_id = "getRunLogs",
    params(("id" = i64, Path, description = "run id", minimum = 1), LogsQuery),
    responses(
        (status = 200, description = "log lines", body = RunLogs),
        (status = 400, description = "invalid input; the message says what is expected", body = ErrorBody),
        (status = 404, description = "no such run", body = ErrorBody),
        (status = 503, description = "the database is unreachable or the query ran past the statement timeout", body = ErrorBody),
    ))]
async fn run_logs(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<LogsQuery>,
) -> ApiResult<Json<RunLogs>> {
    let id = params::id("run id", &id)?;
    let (after, limit) = query.window()?;
    Ok(Json(state.service.run_logs(id, after, limit).await?))
}

/// Backfills started from the dashboard (recorded in the ledger), and recent runs of any backfill
#[utoipa::path(get, path = "/backfills", operation_id = "listBackfills", responses(
    (status = 200, description = "backfills", body = Backfills),
    (status = 503, description = "the database is unreachable or the query ran past the statement timeout", body = ErrorBody),
))]
async fn backfills(State(state): State<AppState>) -> ApiResult<Json<Backfills>> {
    Ok(Json(state.service.backfills().await?))
}

/// Load a range of days in the background (skips loaded days unless force)
#[utoipa::path(post, path = "/backfills", operation_id = "startBackfill",
    security(("bearer" = [])),
    request_body = StartBackfillBody,
    responses(
        (status = 202, description = "the backfill started", body = BackfillView),
        (status = 400, description = "invalid input", body = ErrorBody),
        (status = 401, description = "missing or wrong bearer token (required when the server has ETHPIPE_API_TOKEN)", body = ErrorBody),
        (status = 403, description = "no token is configured and the Host is not loopback (DNS rebinding protection)", body = ErrorBody),
        (status = 409, description = "too many backfills are running", body = ErrorBody),
        (status = 413, description = "body too large", body = ErrorBody),
        (status = 415, description = "the body is not application/json", body = ErrorBody),
        (status = 503, description = "the server has no source to run with", body = ErrorBody),
    ))]
async fn start_backfill(
    _: Authorized,
    State(state): State<AppState>,
    Json(body): Json<StartBackfillBody>,
) -> ApiResult<(StatusCode, Json<BackfillView>)> {
    let view = state.service.start_backfill(body.order()?).await?;
    Ok((StatusCode::ACCEPTED, Json(view)))
}

/// A backfill started from the dashboard
#[utoipa::path(get, path = "/backfills/{id}", operation_id = "getBackfill",
    params(("id" = i64, Path, description = "backfill id", minimum = 1)),
    responses(
        (status = 200, description = "the backfill", body = BackfillView),
        (status = 400, description = "invalid input; the message says what is expected", body = ErrorBody),
        (status = 404, description = "no such backfill", body = ErrorBody),
    ))]
async fn backfill(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<BackfillView>> {
    let id = params::id("backfill id", &id)?;
    Ok(Json(state.service.backfill(id.unsigned_abs()).await?))
}

#[derive(Serialize, ToSchema)]
pub struct SearchBody {
    pub q: String,
    pub tokens: Vec<TokenHit>,
}

/// Tokens by symbol or name (case-insensitive, contains) or address prefix
#[utoipa::path(get, path = "/tokens", operation_id = "searchTokens", params(SearchQuery), responses(
    (status = 200, description = "matches, best first", body = SearchBody),
    (status = 400, description = "invalid input; the message says what is expected", body = ErrorBody),
    (status = 503, description = "the database is unreachable or the query ran past the statement timeout", body = ErrorBody),
))]
async fn search_tokens(
    State(state): State<AppState>,
    Query(query): Query<SearchQuery>,
) -> ApiResult<Json<SearchBody>> {
    let (q, limit) = query.search(20)?;
    let tokens = state.service.search_tokens(&q, limit).await?;
    Ok(Json(SearchBody { q, tokens }))
}

/// A token's metadata (its latest deployment)
#[utoipa::path(get, path = "/tokens/{address}", operation_id = "getToken",
    params(("address" = String, Path, description = "0x followed by 40 hex digits (any case)", pattern = "^0[xX][0-9a-fA-F]{40}$")),
    responses(
        (status = 200, description = "the token", body = Token),
        (status = 400, description = "invalid input; the message says what is expected", body = ErrorBody),
        (status = 404, description = "no such token", body = ErrorBody),
        (status = 503, description = "the database is unreachable or the query ran past the statement timeout", body = ErrorBody),
    ))]
async fn token(
    State(state): State<AppState>,
    Path(address): Path<String>,
) -> ApiResult<Json<Token>> {
    let address = params::address(&address)?;
    match state.service.token(&address).await? {
        Some(token) => Ok(Json(token)),
        None => Err(crate::service::ServiceError::NotFound(format!(
            "no token {address} in ethereum.tokens"
        ))
        .into()),
    }
}

#[derive(Serialize, ToSchema)]
pub struct DailyBody {
    pub token_address: String,
    pub days: Vec<DailyStat>,
}

/// Daily statistics of a token (token_daily_stats), oldest first
#[utoipa::path(get, path = "/tokens/{address}/daily", operation_id = "getTokenDaily",
    params(("address" = String, Path, description = "0x followed by 40 hex digits (any case)", pattern = "^0[xX][0-9a-fA-F]{40}$"), DailyQuery),
    responses(
        (status = 200, description = "days", body = DailyBody),
        (status = 400, description = "invalid input; the message says what is expected", body = ErrorBody),
        (status = 503, description = "the database is unreachable or the query ran past the statement timeout", body = ErrorBody),
    ))]
async fn token_daily(
    State(state): State<AppState>,
    Path(address): Path<String>,
    Query(query): Query<DailyQuery>,
) -> ApiResult<Json<DailyBody>> {
    let address = params::address(&address)?;
    let (from, to, limit) = query.range()?;
    let days = state.service.token_daily(&address, from, to, limit).await?;
    Ok(Json(DailyBody {
        token_address: address,
        days,
    }))
}

/// Top senders and receivers of a token on a day, by number of transfers
#[utoipa::path(get, path = "/tokens/{address}/top", operation_id = "getTokenTop",
    params(("address" = String, Path, description = "0x followed by 40 hex digits (any case)", pattern = "^0[xX][0-9a-fA-F]{40}$"), TopQuery),
    responses(
        (status = 200, description = "counterparties", body = TopCounterparties),
        (status = 400, description = "invalid input; the message says what is expected", body = ErrorBody),
        (status = 503, description = "the database is unreachable or the query ran past the statement timeout", body = ErrorBody),
    ))]
async fn token_top(
    State(state): State<AppState>,
    Path(address): Path<String>,
    Query(query): Query<TopQuery>,
) -> ApiResult<Json<TopCounterparties>> {
    let address = params::address(&address)?;
    let (day, limit) = query.day_and_limit()?;
    Ok(Json(state.service.token_top(&address, day, limit).await?))
}

/// An address's transfers, newest first, in keyset pages
#[utoipa::path(get, path = "/addresses/{address}/transfers", operation_id = "getAddressTransfers",
    params(("address" = String, Path, description = "0x followed by 40 hex digits (any case)", pattern = "^0[xX][0-9a-fA-F]{40}$"), TransfersQuery),
    responses(
        (status = 200, description = "a page", body = TransferPage),
        (status = 400, description = "invalid input; the message says what is expected", body = ErrorBody),
        (status = 503, description = "the database is unreachable or the query ran past the statement timeout", body = ErrorBody),
    ))]
async fn address_transfers(
    State(state): State<AppState>,
    Path(address): Path<String>,
    Query(query): Query<TransfersQuery>,
) -> ApiResult<Json<TransferPage>> {
    let address = params::address(&address)?;
    let (direction, cursor, limit) = query.page()?;
    let page = state
        .service
        .transfers(&address, direction, cursor.as_ref(), limit)
        .await?;
    Ok(Json(page))
}

/// A day's totals and its most transferred tokens
#[utoipa::path(get, path = "/days/{day}", operation_id = "getDay",
    params(("day" = String, Path, description = "UTC day", format = Date, example = "2024-03-01"), DayQuery),
    responses(
        (status = 200, description = "the day", body = DayOverview),
        (status = 400, description = "invalid input; the message says what is expected", body = ErrorBody),
        (status = 503, description = "the database is unreachable or the query ran past the statement timeout", body = ErrorBody),
    ))]
async fn day(
    State(state): State<AppState>,
    Path(day): Path<String>,
    Query(query): Query<DayQuery>,
) -> ApiResult<Json<DayOverview>> {
    let day = params::day("day", &day)?;
    let limit = query.limit(20)?;
    Ok(Json(state.service.day_overview(day, limit).await?))
}
