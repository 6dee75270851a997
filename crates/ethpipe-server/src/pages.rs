//! The HTML pages, rendered on the server with maud (which escapes every
//! value it prints). They read through the same functions as the JSON API,
//! so a page and its endpoint always agree. `assets/app.js` adds what needs
//! a script: live polling of runs, "run now", the backfill form and trigger
//! toggles, all through the JSON API.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Redirect, Response};
use ethpipe_core::Day;
use maud::{html, Markup, DOCTYPE};

use crate::api::{self, RunsQuery, TopQuery, TransfersQuery};
use crate::error::{AppError, PageError};
use crate::params::{self, Direction};
use crate::queries::ledger::{self, Run};
use crate::queries::tokens::{self, Counterparty};
use crate::queries::transfers;
use crate::AppState;

type PageResult = Result<Html<String>, PageError>;

const SCRIPT: &str = include_str!("../assets/app.js");
const STYLESHEET: &str = include_str!("../assets/app.css");

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

fn layout(title: &str, body: Markup) -> Html<String> {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                // No favicon request (and no 404 in every page load).
                link rel="icon" href="data:,";
                title { (title) " · ethpipe" }
                link rel="stylesheet" href="/assets/app.css";
                script src="/assets/app.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/" { "ethpipe" }
                    nav {
                        a href="/" { "Dashboard" }
                        a href="/runs" { "Runs" }
                        a href="/tokens" { "Tokens" }
                        a href="/days" { "Days" }
                    }
                    form.search action="/tokens" method="get" {
                        input type="search" name="q" placeholder="symbol, name or 0x address" aria-label="Search tokens";
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    };
    Html(page.into_string())
}

/// The HTML for an error page (used by [`PageError`]).
pub fn error_page(status: u16, title: &str, message: &str) -> String {
    layout(
        &format!("{status} {title}"),
        html! { p.error-message { (message) } p { a href="/" { "Back to the dashboard" } } },
    )
    .0
}

pub async fn not_found() -> PageError {
    PageError(AppError::NotFound(
        "there is no page at this address".into(),
    ))
}

fn status_badge(status: &str) -> Markup {
    html! { span class={"status status-" (status)} { (status) } }
}

fn number(n: i64) -> String {
    // 1234567 → "1,234,567": tables of counts are read by people.
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

fn opt_number(n: Option<i64>) -> String {
    n.map_or_else(|| "–".into(), number)
}

fn seconds(value: Option<f64>) -> String {
    match value {
        None => "–".into(),
        Some(s) if s < 60.0 => format!("{s:.1}s"),
        Some(s) if s < 3600.0 => format!("{}m {:02}s", (s / 60.0) as u64, (s % 60.0) as u64),
        Some(s) => format!(
            "{}h {:02}m",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        ),
    }
}

fn short(address: &str) -> String {
    if address.len() > 14 {
        format!("{}…{}", &address[..8], &address[address.len() - 4..])
    } else {
        address.to_string()
    }
}

fn address_link(address: Option<&str>) -> Markup {
    match address {
        Some(a) => html! { a.mono href={"/addresses/" (a)} title=(a) { (short(a)) } },
        None => html! { span.muted { "none" } },
    }
}

fn run_row(run: &Run) -> Markup {
    html! {
        tr data-run-id=(run.id) {
            td { a href={"/runs/" (run.id)} { "#" (run.id) } }
            td { (run.pipeline) }
            td { (run.day.as_deref().unwrap_or("full load")) }
            td { (run.trigger) }
            td.status-cell { (status_badge(&run.status)) }
            td { (run.started_at) }
            td.duration { (seconds(run.duration_seconds)) }
            td.rows.num { (opt_number(run.rows_written)) }
            td.error { (run.error.as_deref().unwrap_or("")) }
        }
    }
}

fn runs_table(runs: &[Run], live: bool) -> Markup {
    html! {
        table.runs data-live=[live.then_some("runs")] {
            thead { tr { th { "run" } th { "pipeline" } th { "day" } th { "trigger" } th { "status" }
                         th { "started (UTC)" } th { "duration" } th.num { "rows" } th { "error" } } }
            tbody #runs-body {
                @for run in runs { (run_row(run)) }
                @if runs.is_empty() { tr.empty { td colspan="9" { "No runs yet." } } }
            }
        }
    }
}

fn yesterday() -> String {
    Day::today_utc().pred().to_string()
}

pub async fn dashboard(State(state): State<AppState>) -> PageResult {
    let overview = api::pipelines_body(&state).await?;
    let recent = api::runs_body(
        &state,
        &RunsQuery {
            limit: Some("20".into()),
            ..RunsQuery::default()
        },
    )
    .await?;
    let triggers: Vec<_> = overview
        .pipelines
        .iter()
        .flat_map(|p| p.triggers.iter())
        .collect();
    let body = html! {
        @if overview.token_required {
            section.token-box {
                label { "API token (needed to start runs here): "
                    input #api-token type="password" autocomplete="off" placeholder="ETHPIPE_API_TOKEN"; }
            }
        }
        section {
            h2 { "Pipelines" }
            table #pipelines {
                thead { tr { th { "pipeline" } th.num { "days loaded" } th { "range" } th.num { "gap days" }
                             th.num { "rows loaded" } th { "last run" } th.num { "running" } } }
                tbody {
                    @for p in &overview.pipelines {
                        tr data-pipeline=(p.pipeline) {
                            td { strong { (p.pipeline) }
                                 @if let Some(done) = p.full_load_done {
                                     br; small.muted { "full load " (if done { "done" } else { "pending" }) } } }
                            td.num { (number(p.days_loaded)) }
                            td { (p.first_day.as_deref().unwrap_or("–")) " … " (p.last_day.as_deref().unwrap_or("–")) }
                            td.num { (number(p.gap_days)) }
                            td.num { (number(p.rows_loaded)) }
                            td { @if let Some(run) = &p.last_run {
                                    a href={"/runs/" (run.id)} { "#" (run.id) } " "
                                    (status_badge(&run.status)) " " (run.day.as_deref().unwrap_or("full load"))
                                 } @else { span.muted { "never run" } } }
                            td.num { (p.running) }
                        }
                    }
                }
            }
        }
        section {
            h2 { "Triggers" }
            @if triggers.is_empty() {
                p.muted { "No triggers. Add [[triggers]] to ethpipe.toml (see docs/orchestration.md)." }
            } @else {
                table #triggers {
                    thead { tr { th { "trigger" } th { "pipeline" } th { "schedule (UTC)" } th { "active" }
                                 th { "next run" } th { "last slot" } } }
                    tbody {
                        @for t in &triggers {
                            tr data-trigger=(t.name) {
                                td { (t.name) }
                                td { (t.pipeline) }
                                td.mono { (t.schedule) }
                                td { label.toggle {
                                    input.trigger-toggle type="checkbox" data-trigger=(t.name) checked[t.active]
                                        disabled[!overview.can_run];
                                    span { (if t.active { "active" } else { "inactive" }) } } }
                                td { (t.next_run.as_deref().unwrap_or("–")) }
                                td { (t.last_slot.as_deref().unwrap_or("–")) }
                            }
                        }
                    }
                }
            }
        }
        section.forms {
            form #run-form.card {
                h2 { "Run now" }
                label { "pipeline " select #run-pipeline name="pipeline" {
                    option value="token_transfers" { "token_transfers" }
                    option value="tokens" { "tokens" } } }
                label { "day " input #run-day type="date" name="day" value=(yesterday()) required; }
                button #run-submit type="submit" disabled[!overview.can_run] { "Run now" }
                p #run-message.message aria-live="polite" {}
            }
            form #backfill-form.card {
                h2 { "Backfill" }
                label { "pipeline " select #backfill-pipeline name="pipeline" {
                    option value="token_transfers" { "token_transfers" }
                    option value="tokens" { "tokens" } } }
                label { "from " input #backfill-from type="date" name="from" required; }
                label { "to " input #backfill-to type="date" name="to" value=(yesterday()) required; }
                label { "parallel " input #backfill-parallel type="number" name="parallel" min="1" max="16" value="1"; }
                label { input #backfill-force type="checkbox" name="force"; " re-load days already loaded" }
                button #backfill-submit type="submit" disabled[!overview.can_run] { "Start backfill" }
                p #backfill-message.message aria-live="polite" {}
            }
        }
        section {
            h2 { "Backfills" }
            table #backfills data-live="backfills" {
                thead { tr { th { "id" } th { "pipeline" } th { "range" } th { "state" } th.num { "days loaded" }
                             th.num { "skipped" } th.num { "failed" } th.num { "planned" } th.num { "rows" } th { "error" } } }
                tbody #backfills-body {
                    @for b in &overview.backfills {
                        tr { td { (b.id) } td { (b.pipeline) } td { (b.from) " … " (b.to) } td { (status_badge(&b.state)) }
                             td.num { (b.days_loaded) } td.num { (b.days_skipped) } td.num { (b.days_failed) }
                             td.num { (b.days_planned) } td.num { (b.rows) } td.error { (b.error.as_deref().unwrap_or("")) } }
                    }
                    @if overview.backfills.is_empty() { tr.empty { td colspan="10" { "No backfills started from this server." } } }
                }
            }
            p.muted { "Backfills run by " code { "ethpipe backfill" } " show in the run history with trigger " code { "backfill" } "." }
        }
        section {
            h2 { "Recent runs " small.muted { "(updates live)" } }
            (runs_table(&recent.runs, true))
            p { a href="/runs" { "All runs →" } }
        }
    };
    Ok(layout("Dashboard", body))
}

pub async fn runs(
    State(state): State<AppState>,
    query: Result<Query<RunsQuery>, QueryRejection>,
) -> PageResult {
    let Query(mut query) = query?;
    blank_is_none(&mut query.pipeline);
    blank_is_none(&mut query.status);
    let page = api::runs_body(&state, &query).await?;
    let selected = |value: &str, current: &Option<String>| current.as_deref() == Some(value);
    let body = html! {
        form.filters method="get" action="/runs" {
            label { "pipeline " select name="pipeline" {
                option value="" { "any" }
                @for p in ["token_transfers", "tokens"] { option value=(p) selected[selected(p, &query.pipeline)] { (p) } } } }
            label { "status " select name="status" {
                option value="" { "any" }
                @for s in ["running", "success", "failed"] { option value=(s) selected[selected(s, &query.status)] { (s) } } } }
            button type="submit" { "Filter" }
        }
        (runs_table(&page.runs, false))
        @if let Some(before) = page.next_before {
            p { a href={"/runs?before=" (before)
                 @if let Some(p) = &query.pipeline { "&pipeline=" (p) }
                 @if let Some(s) = &query.status { "&status=" (s) } } { "Older runs →" } }
        }
    };
    Ok(layout("Runs", body))
}

/// Empty filter values from the form mean "any".
fn blank_is_none(value: &mut Option<String>) {
    if value.as_deref() == Some("") {
        *value = None;
    }
}

pub async fn run(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> PageResult {
    let Path(id) = id?;
    let id = params::id("run id", &id)?;
    let (run, steps) = ledger::run(&state.reader, id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no run {id}")))?;
    let logs = ledger::logs(&state.reader, id, 0, params::MAX_LOG_LINES).await?;
    let body = html! {
        section #run data-run-id=(run.id) data-status=(run.status) {
            table.details {
                tr { th { "pipeline" } td { (run.pipeline) } }
                tr { th { "day" } td { @if let Some(day) = &run.day { a href={"/days/" (day)} { (day) } } @else { "full load" } } }
                tr { th { "trigger" } td { (run.trigger) } }
                tr { th { "source" } td { (run.source) } }
                tr { th { "status" } td #run-status { (status_badge(&run.status)) } }
                tr { th { "attempt" } td { (run.attempt) } }
                tr { th { "rows" } td #run-rows { (opt_number(run.rows_written)) } }
                tr { th { "source rows" } td #run-source-rows { (opt_number(run.source_rows)) } }
                tr { th { "skipped source rows" } td { (opt_number(run.skipped_rows)) } }
                tr { th { "started (UTC)" } td { (run.started_at) } }
                tr { th { "finished (UTC)" } td #run-finished { (run.finished_at.as_deref().unwrap_or("–")) } }
                tr { th { "duration" } td #run-duration { (seconds(run.duration_seconds)) } }
                tr { th { "error" } td #run-error.error { (run.error.as_deref().unwrap_or("")) } }
            }
        }
        section {
            h2 { "Steps" }
            table #steps {
                thead { tr { th { "#" } th { "step" } th { "status" } th.num { "rows" } th { "started" } th { "finished" } th { "error" } } }
                tbody {
                    @for s in &steps {
                        tr { td { (s.position) } td { (s.name) } td { (status_badge(&s.status)) } td.num { (opt_number(s.rows)) }
                             td { (s.started_at) } td { (s.finished_at) } td.error { (s.error.as_deref().unwrap_or("")) } }
                    }
                    @if steps.is_empty() { tr.empty { td colspan="7" { "No steps recorded yet." } } }
                }
            }
        }
        section {
            h2 { "Log" }
            table #logs data-after=(logs.last().map_or(0, |l| l.id)) {
                thead { tr { th { "at (UTC)" } th { "level" } th { "message" } } }
                tbody #logs-body {
                    @for line in &logs {
                        tr data-log-id=(line.id) { td { (line.at) } td { (line.level) } td.mono { (line.message) } }
                    }
                }
            }
        }
    };
    Ok(layout(&format!("Run #{}", run.id), body))
}

pub async fn token_search(
    State(state): State<AppState>,
    query: Result<Query<api::SearchQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let Query(query) = query?;
    let text = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    let hits = match text {
        Some(_) => {
            let text = params::search_text(text)?;
            let limit = params::limit(query.limit.as_deref(), 50, params::MAX_PAGE)?;
            // A full address goes straight to its page.
            if let Ok(address) = params::address(&text) {
                if tokens::token(&state.reader, &address).await?.is_some() {
                    return Ok(Redirect::to(&format!("/tokens/{address}")).into_response());
                }
            }
            Some(tokens::search(&state.reader, &text, limit).await?)
        }
        None => None,
    };
    let body = html! {
        form.filters method="get" action="/tokens" {
            input type="search" name="q" value=[text] placeholder="USDC, Tether, 0xa0b8…" autofocus;
            button type="submit" { "Search" }
        }
        @if let Some(hits) = &hits {
            table #token-results {
                thead { tr { th { "symbol" } th { "name" } th { "address" } th.num { "decimals" } } }
                tbody {
                    @for t in hits {
                        tr { td { a href={"/tokens/" (t.address)} { (t.symbol.as_deref().unwrap_or("?")) } }
                             td { (t.name.as_deref().unwrap_or("")) }
                             td.mono { a href={"/tokens/" (t.address)} { (t.address) } }
                             td.num { (t.decimals.as_deref().unwrap_or("–")) } }
                    }
                    @if hits.is_empty() { tr.empty { td colspan="4" { "No token matches." } } }
                }
            }
        } @else {
            p.muted { "Search by symbol, name, or address (or its beginning)." }
        }
    };
    Ok(layout("Tokens", body).into_response())
}

fn counterparties(title: &str, rows: &[Counterparty], unit: &str) -> Markup {
    html! {
        div.half {
            h3 { (title) }
            table.counterparties {
                thead { tr { th { "address" } th.num { "transfers" } th.num { "volume (" (unit) ")" } } }
                tbody {
                    @for c in rows {
                        tr { td { (address_link(Some(&c.address))) } td.num { (number(c.transfers)) }
                             td.num.mono { (c.volume.as_deref().unwrap_or(&c.volume_raw)) } }
                    }
                    @if rows.is_empty() { tr.empty { td colspan="3" { "None that day." } } }
                }
            }
        }
    }
}

pub async fn token(
    State(state): State<AppState>,
    address: Result<Path<String>, PathRejection>,
    query: Result<Query<TopQuery>, QueryRejection>,
) -> PageResult {
    let (Path(address), Query(query)) = (address?, query?);
    let address = params::address(&address)?;
    let token = tokens::token(&state.reader, &address).await?;
    let daily = tokens::daily(&state.reader, &address, None, None, 365).await?;
    if token.is_none() && daily.is_empty() {
        return Err(PageError(AppError::NotFound(format!(
            "no token {address}: it is neither in ethereum.tokens nor in the daily statistics"
        ))));
    }
    let top = api::top_body(&state, &address, &query).await?;
    let symbol = token.as_ref().and_then(|t| t.symbol.clone());
    let unit = match token.as_ref().and_then(|t| t.decimals.as_ref()) {
        Some(_) => symbol.clone().unwrap_or_else(|| "tokens".into()),
        None => "raw".into(),
    };
    let title = match &symbol {
        Some(s) => format!("{s} · {}", short(&address)),
        None => format!("Token {}", short(&address)),
    };
    let body = html! {
        section {
            table.details #token-meta {
                tr { th { "address" } td.mono { (address) " " a href={"/addresses/" (address)} { "(as an address)" } } }
                @if let Some(t) = &token {
                    tr { th { "symbol" } td { (t.symbol.as_deref().unwrap_or("–")) } }
                    tr { th { "name" } td { (t.name.as_deref().unwrap_or("–")) } }
                    tr { th { "decimals" } td { (t.decimals.as_deref().unwrap_or("unknown")) } }
                    tr { th { "total supply" } td.mono { (t.total_supply_scaled.as_deref().or(t.total_supply.as_deref()).unwrap_or("–")) } }
                    tr { th { "created" } td { "block " (t.block_number) ", " (t.block_timestamp)
                        @if t.deployments > 1 { " (" (t.deployments) " deployments; the latest is shown)" }
                        @if t.found_in_transfers { " (first seen in transfers)" } } }
                } @else {
                    tr { th { "metadata" } td.muted { "not in ethereum.tokens (load the tokens pipeline)" } }
                }
            }
        }
        section #chart {
            h2 { "Daily activity" }
            (crate::charts::daily_chart(&daily, symbol.as_deref()))
        }
        section #top {
            h2 { "Top senders and receivers"
                 @if let Some(day) = &top.day { " on " a href={"/days/" (day)} { (day) } } }
            form.filters method="get" {
                label { "day " select name="day" onchange="this.form.submit()" {
                    @for d in daily.iter().rev() {
                        option value=(d.day) selected[top.day.as_deref() == Some(d.day.as_str())] { (d.day) }
                    } } }
                noscript { button type="submit" { "Show" } }
            }
            div.split {
                (counterparties("Senders", &top.senders, &unit))
                (counterparties("Receivers", &top.receivers, &unit))
            }
        }
    };
    Ok(layout(&title, body))
}

pub async fn address(
    State(state): State<AppState>,
    address: Result<Path<String>, PathRejection>,
    query: Result<Query<TransfersQuery>, QueryRejection>,
) -> PageResult {
    let (Path(address), Query(mut query)) = (address?, query?);
    let address = params::address(&address)?;
    blank_is_none(&mut query.direction);
    let page = api::transfers_page(&state, &address, &query).await?;
    let direction = Direction::parse(query.direction.as_deref())?;
    let body = html! {
        p.mono { (address) " " @if tokens::token(&state.reader, &address).await?.is_some() {
            a href={"/tokens/" (address)} { "(this address is a token)" } } }
        nav.tabs {
            @for d in [Direction::Both, Direction::In, Direction::Out] {
                a.active[d == direction] href={"/addresses/" (address) "?direction=" (d.as_str())} { (d.as_str()) }
            }
        }
        table #transfers {
            thead { tr { th { "time (UTC)" } th { "dir" } th { "token" } th { "from" } th { "to" } th.num { "amount" } th { "tx" } } }
            tbody {
                @for t in &page.transfers {
                    tr {
                        td { (t.block_timestamp) }
                        td { span class={"dir dir-" (t.direction)} { (t.direction) } }
                        td { a href={"/tokens/" (t.token_address)} { (t.symbol.as_deref().map_or_else(|| short(&t.token_address), str::to_string)) } }
                        td { (address_link(t.from_address.as_deref())) }
                        td { (address_link(t.to_address.as_deref())) }
                        td.num.mono { (t.amount.as_deref().or(t.value.as_deref()).unwrap_or("–"))
                            @if t.amount.is_none() && t.value.is_some() { small.muted { " raw" } } }
                        td.mono title=(t.transaction_hash) { (short(&t.transaction_hash)) ":" (t.log_index) }
                    }
                }
                @if page.transfers.is_empty() { tr.empty { td colspan="7" { "No transfers." } } }
            }
        }
        @if let Some(cursor) = &page.next_cursor {
            p { a #next-page href={"/addresses/" (address) "?direction=" (direction.as_str()) "&cursor=" (cursor)} { "Older transfers →" } }
        }
    };
    Ok(layout(&format!("Address {}", short(&address)), body))
}

/// `/days`: the latest day of transfers loaded.
pub async fn days(State(state): State<AppState>) -> Result<Response, PageError> {
    let triggers = Vec::new();
    let summary = ledger::pipeline_summary(
        &state.reader,
        ethpipe_core::datasets::TOKEN_TRANSFERS,
        &triggers,
    )
    .await?;
    match summary.last_day {
        Some(day) => Ok(Redirect::to(&format!("/days/{day}")).into_response()),
        None => Ok(layout(
            "Days",
            html! { p.muted { "No day of token_transfers is loaded yet. Start one from the dashboard." } },
        )
        .into_response()),
    }
}

pub async fn day(
    State(state): State<AppState>,
    day: Result<Path<String>, PathRejection>,
    query: Result<Query<api::DayQuery>, QueryRejection>,
) -> PageResult {
    let (Path(day), Query(query)) = (day?, query?);
    let day = params::day("day", &day)?;
    let limit = params::limit(query.limit.as_deref(), 50, params::MAX_PAGE)?;
    let overview = transfers::day_overview(&state.reader, day, limit).await?;
    let body = html! {
        nav.tabs {
            a href={"/days/" (day.pred())} { "← " (day.pred()) }
            a href={"/days/" (day.succ())} { (day.succ()) " →" }
        }
        p #day-totals { strong { (number(overview.transfers)) } " transfers of " strong { (number(overview.tokens)) } " tokens." }
        table #day-tokens {
            thead { tr { th { "#" } th { "token" } th { "name" } th.num { "transfers" } th.num { "senders" } th.num { "receivers" } th.num { "volume" } } }
            tbody {
                @for (i, t) in overview.top_tokens.iter().enumerate() {
                    tr {
                        td { (i + 1) }
                        td { a href={"/tokens/" (t.token_address) "?day=" (day)} {
                            (t.symbol.as_deref().map_or_else(|| short(&t.token_address), str::to_string)) } }
                        td { (t.name.as_deref().unwrap_or("")) }
                        td.num { (number(t.transfer_count)) }
                        td.num { (number(t.unique_senders)) }
                        td.num { (number(t.unique_receivers)) }
                        td.num.mono { (t.volume.as_deref().unwrap_or("–")) " " (t.symbol.as_deref().unwrap_or("")) }
                    }
                }
                @if overview.top_tokens.is_empty() { tr.empty { td colspan="7" { "No transfers loaded for this day." } } }
            }
        }
    };
    Ok(layout(&format!("Day {day}"), body))
}
