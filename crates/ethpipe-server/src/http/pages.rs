//! The HTML pages: each handler extracts its input, calls the
//! [`Service`](crate::service::Service) and renders a [`crate::views`]
//! page. Errors are the same [`AppError`]s as the API's; the router renders
//! them as HTML ([`super::error::html_error_pages`]). `assets/app.js` adds
//! what needs a script: live polling of runs, "run now", the backfill form
//! and trigger toggles, all through the JSON API.

use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::Markup;

use super::error::AppError;
use super::extract::{Path, Query};
use super::inputs::{DayQuery, RunsQuery, SearchQuery, TopQuery, TransfersQuery};
use super::params::{self, MAX_LOG_LINES, RUN_STATUSES};
use super::AppState;
use crate::service::{day_overview_pipeline, RunsRequest};
use crate::views;

type PageResult = Result<Html<String>, AppError>;

const SCRIPT: &str = include_str!("../../assets/app.js");
const STYLESHEET: &str = include_str!("../../assets/app.css");

fn page(markup: Markup) -> Html<String> {
    Html(markup.into_string())
}

pub async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        SCRIPT,
    )
        .into_response()
}

pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        STYLESHEET,
    )
        .into_response()
}

pub async fn not_found() -> AppError {
    AppError::NoRoute("there is no page at this address")
}

pub async fn dashboard(State(state): State<AppState>) -> PageResult {
    let overview = state.service.overview().await?;
    let recent = state
        .service
        .runs(&RunsRequest {
            limit: 20,
            ..RunsRequest::default()
        })
        .await?;
    let token_required = state.config.token_required();
    Ok(page(views::ledger::dashboard(
        &overview,
        &recent,
        token_required,
    )))
}

pub async fn runs(State(state): State<AppState>, Query(query): Query<RunsQuery>) -> PageResult {
    let query = query.without_blanks();
    let runs = state.service.runs(&query.request()?).await?;
    Ok(page(views::ledger::runs(
        &runs,
        query.pipeline.as_deref(),
        query.status.as_deref(),
        &RUN_STATUSES,
    )))
}

pub async fn run(State(state): State<AppState>, Path(id): Path<String>) -> PageResult {
    let id = params::id("run id", &id)?;
    let detail = state.service.run(id).await?;
    let logs = state.service.run_logs(id, 0, MAX_LOG_LINES).await?;
    Ok(page(views::ledger::run(&detail, &logs.logs)))
}

pub async fn token_search(
    State(state): State<AppState>,
    Query(query): Query<SearchQuery>,
) -> Result<Response, AppError> {
    let text = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    let hits = match text {
        Some(_) => {
            let (text, limit) = query.search(50)?;
            // A full address goes straight to its page.
            if let Ok(address) = params::address(&text) {
                if state.service.token(&address).await?.is_some() {
                    return Ok(Redirect::to(&format!("/tokens/{address}")).into_response());
                }
            }
            Some(state.service.search_tokens(&text, limit).await?)
        }
        None => None,
    };
    Ok(page(views::data::token_search(text, hits.as_deref())).into_response())
}

pub async fn token(
    State(state): State<AppState>,
    Path(address): Path<String>,
    Query(query): Query<TopQuery>,
) -> PageResult {
    let address = params::address(&address)?;
    let (day, limit) = query.day_and_limit()?;
    let (profile, top) = state.service.token_page(&address, day, limit).await?;
    Ok(page(views::data::token(&address, &profile, &top)))
}

pub async fn address(
    State(state): State<AppState>,
    Path(address): Path<String>,
    Query(query): Query<TransfersQuery>,
) -> PageResult {
    let address = params::address(&address)?;
    let (direction, cursor, limit) = query.without_blanks().page()?;
    let transfers = state
        .service
        .transfers(&address, direction, cursor.as_ref(), limit)
        .await?;
    let is_token = state.service.token(&address).await?.is_some();
    Ok(page(views::data::address(
        &address, is_token, direction, &transfers,
    )))
}

/// `/days`: the latest day loaded.
pub async fn days(State(state): State<AppState>) -> Result<Response, AppError> {
    match state.service.latest_loaded_day().await? {
        Some(day) => Ok(Redirect::to(&format!("/days/{day}")).into_response()),
        None => Ok(page(views::data::no_days(day_overview_pipeline().name())).into_response()),
    }
}

pub async fn day(
    State(state): State<AppState>,
    Path(day): Path<String>,
    Query(query): Query<DayQuery>,
) -> PageResult {
    let day = params::day("day", &day)?;
    let overview = state.service.day_overview(day, query.limit(50)?).await?;
    Ok(page(views::data::day(day, &overview)))
}
