//! The dashboard, the run history and a run's page.

use ethpipe_core::Day;
use maud::{html, Markup};

use super::{duration, layout, number, opt_number, runs_table, status_badge};
use crate::queries::ledger::{LogLine, PipelineSummary};
use crate::service::{pipelines, Overview, RunDetail, RunsPage};

fn yesterday() -> String {
    Day::today_utc().pred().to_string()
}

/// Pipelines, triggers, the run and backfill forms, backfills and recent runs.
pub fn dashboard(overview: &Overview, recent: &RunsPage, token_required: bool) -> Markup {
    let triggers: Vec<_> = overview
        .pipelines
        .iter()
        .flat_map(|p| p.triggers.iter())
        .collect();
    let body = html! {
        @if token_required {
            section.token-box {
                label { "API token (needed to start runs here): "
                    input #api-token type="password" autocomplete="off" placeholder="ETHPIPE_API_TOKEN"; }
            }
        }
        @if let Some(reason) = &overview.source_missing {
            section #no-source.notice {
                strong { "Read-only: this server has no source, so it cannot start runs." }
                p.error-message #no-source-reason { (reason) }
                p { "Runs read from BigQuery (" code { "--credentials KEY.json" } " or "
                    code { "GOOGLE_APPLICATION_CREDENTIALS" } ", with " code { "--bigquery-project" } ") or from a node ("
                    code { "--source rpc --rpc-url URL" } "); restart " code { "ethpipe serve" }
                    " with one, or load from the command line (" code { "ethpipe run …" } ")." }
            }
        }
        section {
            h2 { "Pipelines" }
            table #pipelines {
                thead { tr { th { "pipeline" } th { "filter" } th.num { "days loaded" } th { "range" } th.num { "gap days" }
                             th.num { "rows loaded" } th { "last run" } th.num { "running" } } }
                tbody {
                    @for p in &overview.pipelines { (pipeline_row(p)) }
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
                                 th { "next run" } th { "active since" } } }
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
                                td { (t.active_since.as_deref().unwrap_or("–")) }
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
                    @for p in pipelines() { option value=(p.name()) { (p.name()) } } } }
                label { "day " input #run-day type="date" name="day" value=(yesterday()) required; }
                // Enabled without a source too: the answer says why and how to give one.
                button #run-submit type="submit" { "Run now" }
                p #run-message.message aria-live="polite" {}
            }
            form #backfill-form.card {
                h2 { "Backfill" }
                label { "pipeline " select #backfill-pipeline name="pipeline" {
                    @for p in pipelines() { option value=(p.name()) { (p.name()) } } } }
                label { "from " input #backfill-from type="date" name="from" required; }
                label { "to " input #backfill-to type="date" name="to" value=(yesterday()) required; }
                label { "parallel " input #backfill-parallel type="number" name="parallel" min="1" max="16" value="1"; }
                label { input #backfill-force type="checkbox" name="force"; " re-load days already loaded" }
                button #backfill-submit type="submit" { "Start backfill" }
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
    layout("Dashboard", body)
}

/// One pipeline's row on the dashboard.
fn pipeline_row(p: &PipelineSummary) -> Markup {
    let never_loaded = p.days_loaded == 0 && p.last_run.is_none();
    html! {
        tr data-pipeline=(p.pipeline) {
            td { strong { (p.pipeline) }
                 @if let Some(done) = p.full_load_done {
                     br; small.muted.full-load { "full load " (if done { "done" } else { "pending" }) } } }
            (filter_cell(p))
            td.num.days { (number(p.days_loaded)) }
            td.range { @match (&p.first_day, &p.last_day) {
                (Some(first), Some(last)) => { (first) " … " (last) }
                _ => span.muted { "nothing loaded" },
            } }
            td.num { (number(p.gap_days)) }
            td.num.rows { (number(p.rows_loaded)) }
            td { @if let Some(run) = &p.last_run {
                    a href={"/runs/" (run.id)} { "#" (run.id) } " "
                    (status_badge(&run.status)) " " (run.day.as_deref().unwrap_or("full load"))
                 } @else if never_loaded {
                    span.muted.hint { "never run: " code { (first_command(p)) } }
                 } @else { span.muted { "never run" } } }
            td.num { (p.running) }
        }
    }
}

/// The pipeline's token filter: "all tokens", or the address (one token) or
/// "N tokens" with every address on hover.
fn filter_cell(pipeline: &PipelineSummary) -> Markup {
    html! { td.filter { (super::tokens_label(pipeline.tokens.as_deref())) } }
}

/// The command that loads a pipeline for the first time.
fn first_command(p: &PipelineSummary) -> String {
    if p.full_load_done.is_some() {
        format!("ethpipe run {} --full", p.pipeline)
    } else {
        format!("ethpipe run {} --date YYYY-MM-DD", p.pipeline)
    }
}

/// The run history with its filters; `pipeline` and `status` are the
/// filters chosen, `statuses` the states one may choose.
pub fn runs(
    page: &RunsPage,
    pipeline: Option<&str>,
    status: Option<&str>,
    statuses: &[&str],
) -> Markup {
    let selected = |value: &str, current: Option<&str>| current == Some(value);
    let body = html! {
        form.filters method="get" action="/runs" {
            label { "pipeline " select name="pipeline" {
                option value="" { "any" }
                @for p in pipelines() { option value=(p.name()) selected[selected(p.name(), pipeline)] { (p.name()) } } } }
            label { "status " select name="status" {
                option value="" { "any" }
                @for s in statuses { option value=(s) selected[selected(s, status)] { (s) } } } }
            button type="submit" { "Filter" }
        }
        (runs_table(&page.runs, false))
        @if let Some(before) = page.next_before {
            p { a href={"/runs?before=" (before)
                 @if let Some(p) = pipeline { "&pipeline=" (p) }
                 @if let Some(s) = status { "&status=" (s) } } { "Older runs →" } }
        }
    };
    layout("Runs", body)
}

/// A run with its steps and log (the script polls for more lines).
pub fn run(detail: &RunDetail, logs: &[LogLine]) -> Markup {
    let (run, steps) = (&detail.run, &detail.steps);
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
                tr { th { "duration" } td #run-duration { (duration(run.duration_seconds)) } }
                tr { th { "error" } td #run-error.error { (run.error.as_deref().unwrap_or("")) } }
            }
        }
        section {
            h2 { "Steps" }
            table #steps {
                thead { tr { th { "#" } th { "step" } th { "status" } th.num { "rows" } th { "started" } th { "finished" } th { "error" } } }
                tbody {
                    @for s in steps {
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
                    @for line in logs {
                        tr data-log-id=(line.id) { td { (line.at) } td { (line.level) } td.mono { (line.message) } }
                    }
                }
            }
        }
    };
    layout(&format!("Run #{}", run.id), body)
}
