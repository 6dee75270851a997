//! The HTML the pages are made of, rendered with maud (which escapes every
//! value it prints): the layout, the error page, shared components, and one
//! module per group of pages. Views take service results and return markup;
//! they read nothing and know nothing of HTTP.

pub mod amounts;
pub mod charts;
pub mod data;
pub mod ledger;

use maud::{html, Markup, DOCTYPE};

use crate::queries::ledger::Run;
use crate::store::Counterparty;

/// A whole page: head, navigation, the title as heading, then `body`.
pub fn layout(title: &str, body: Markup) -> Markup {
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
    page
}

/// The page for an error: its status, title and one-line message.
pub fn error_page(status: u16, title: &str, message: &str) -> Markup {
    layout(
        &format!("{status} {title}"),
        html! { p.error-message { (message) } p { a href="/" { "Back to the dashboard" } } },
    )
}

pub fn status_badge(status: &str) -> Markup {
    html! { span class={"status status-" (status)} { (status) } }
}

pub fn number(n: i64) -> String {
    // 1234567 → "1,234,567": tables of counts are read by people.
    let out = amounts::group(&n.unsigned_abs().to_string());
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

pub fn opt_number(n: Option<i64>) -> String {
    n.map_or_else(|| "–".into(), number)
}

pub use amounts::{amount, duration};

pub fn short(address: &str) -> String {
    if address.len() > 14 {
        format!("{}…{}", &address[..8], &address[address.len() - 4..])
    } else {
        address.to_string()
    }
}

pub fn address_link(address: Option<&str>) -> Markup {
    match address {
        Some(a) => html! { a.mono href={"/addresses/" (a)} title=(a) { (short(a)) } },
        None => html! { span.muted { "none" } },
    }
}

pub fn run_row(run: &Run) -> Markup {
    html! {
        tr data-run-id=(run.id) {
            td { a href={"/runs/" (run.id)} { "#" (run.id) } }
            td { (run.pipeline)
                 @if run.tokens.is_some() { " " small.run-tokens { (tokens_label(run.tokens.as_deref())) } } }
            td { (run.day.as_deref().unwrap_or("full load")) }
            td { (run.trigger) }
            td.status-cell { (status_badge(&run.status)) }
            td { (run.started_at) }
            td.duration.num { (duration(run.duration_seconds)) }
            td.rows.num { (opt_number(run.rows_written)) }
            td.error { (run.error.as_deref().unwrap_or("")) }
        }
    }
}

/// A token filter as a table shows it: "all tokens" (no filter), the
/// address when there is one, else "N tokens"; the addresses on hover.
pub fn tokens_label(tokens: Option<&[String]>) -> Markup {
    match tokens {
        None => html! { span.muted.tokens { "all tokens" } },
        Some([one]) => html! { span.tokens.mono title=(one) { (one) } },
        Some(many) => html! {
            span.tokens title=(many.join("\n")) { (many.len()) " tokens" }
        },
    }
}

/// What an empty run table says when the page script empties it.
pub const NO_RUNS: &str = "No runs yet. Load a day with: ethpipe run token_transfers --date YYYY-MM-DD (or Run now on the dashboard); ethpipe run tokens --full loads every token.";

pub fn runs_table(runs: &[Run], live: bool) -> Markup {
    html! {
        table.runs data-live=[live.then_some("runs")] {
            thead { tr { th { "run" } th { "pipeline" } th { "day" } th { "trigger" } th { "status" }
                         th { "started (UTC)" } th.num { "duration" } th.num { "rows" } th { "error" } } }
            tbody #runs-body data-empty=(NO_RUNS) {
                @for run in runs { (run_row(run)) }
                @if runs.is_empty() { tr.empty { td colspan="9" {
                    "No runs yet. Load a day with " code { "ethpipe run token_transfers --date YYYY-MM-DD" }
                    " (or Run now on the dashboard); " code { "ethpipe run tokens --full" } " loads every token." } } }
            }
        }
    }
}

pub fn counterparties(title: &str, rows: &[Counterparty], unit: &str) -> Markup {
    html! {
        div.half {
            h3 { (title) }
            table.counterparties {
                thead { tr { th { "address" } th.num { "transfers" } th.num { "volume (" (unit) ")" } } }
                tbody {
                    @for c in rows {
                        tr { td { (address_link(Some(&c.address))) } td.num { (number(c.transfers)) }
                             td.num { (amount(c.volume.as_deref().unwrap_or(&c.volume_raw), None)) } }
                    }
                    @if rows.is_empty() { tr.empty { td colspan="3" { "None that day." } } }
                }
            }
        }
    }
}
