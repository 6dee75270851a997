//! The serving pages: token search, a token, an address, a day.

use ethpipe_core::Day;
use maud::{html, Markup};

use super::charts::daily_chart;
use super::{address_link, amount, counterparties, layout, number, short};
use crate::service::{TokenProfile, TopCounterparties};
use crate::store::{DayOverview, Direction, TokenHit, TransferPage};

/// The search form, and the matches when `text` was searched for.
pub fn token_search(text: Option<&str>, hits: Option<&[TokenHit]>) -> Markup {
    let body = html! {
        form.filters method="get" action="/tokens" {
            input type="search" name="q" value=[text] placeholder="USDC, Tether, 0xa0b8…" autofocus;
            button type="submit" { "Search" }
        }
        @if let Some(hits) = hits {
            table #token-results {
                thead { tr { th { "symbol" } th { "name" } th { "address" } th.num { "decimals" } } }
                tbody {
                    @for t in hits {
                        tr { td { a href={"/tokens/" (t.address)} { (t.symbol.as_deref().unwrap_or("?")) } }
                             td { (t.name.as_deref().unwrap_or("")) }
                             td.mono { a href={"/tokens/" (t.address)} { (t.address) } }
                             td.num { (t.decimals.as_deref().unwrap_or("–")) } }
                    }
                    @if hits.is_empty() { tr.empty { td colspan="4" {
                        "No token matches. Tokens come from the tokens pipeline: "
                        code { "ethpipe run tokens --full" } " loads all of them." } } }
                }
            }
        } @else {
            p.muted { "Search by symbol, name, or address (or its beginning)." }
        }
    };
    layout("Tokens", body)
}

/// A token's metadata, daily chart and top counterparties.
pub fn token(address: &str, profile: &TokenProfile, top: &TopCounterparties) -> Markup {
    let (token, daily) = (&profile.token, &profile.daily);
    let symbol = token.as_ref().and_then(|t| t.symbol.clone());
    let unit = match token.as_ref().and_then(|t| t.decimals.as_ref()) {
        Some(_) => symbol.clone().unwrap_or_else(|| "tokens".into()),
        None => "raw".into(),
    };
    let title = match &symbol {
        Some(s) => format!("{s} · {}", short(address)),
        None => format!("Token {}", short(address)),
    };
    let body = html! {
        section {
            table.details #token-meta {
                tr { th { "address" } td.mono { (address) " " a href={"/addresses/" (address)} { "(as an address)" } } }
                @if let Some(t) = &token {
                    tr { th { "symbol" } td { (t.symbol.as_deref().unwrap_or("–")) } }
                    tr { th { "name" } td { (t.name.as_deref().unwrap_or("–")) } }
                    tr { th { "decimals" } td { (t.decimals.as_deref().unwrap_or("unknown")) } }
                    tr { th { "total supply" } td { @match (t.total_supply_scaled.as_deref(), t.total_supply.as_deref()) {
                        (Some(scaled), _) => (amount(scaled, t.symbol.as_deref())),
                        (None, Some(raw)) => { (amount(raw, None)) small.muted { " raw units (decimals unknown)" } }
                        (None, None) => "–",
                    } } }
                    tr { th { "created" } td { "block " (t.block_number) ", " (t.block_timestamp)
                        @if t.deployments > 1 { " (" (t.deployments) " deployments; the latest is shown)" }
                        @if t.found_in_transfers { " (first seen in transfers)" } } }
                } @else {
                    tr { th { "metadata" } td.muted { "Not in ethereum.tokens yet: load every token with "
                        code { "ethpipe run tokens --full" } ", or the day it was created with "
                        code { "ethpipe run tokens --date YYYY-MM-DD" } "." } }
                }
            }
        }
        section #chart {
            h2 { "Daily activity" }
            (daily_chart(daily, symbol.as_deref()))
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
    layout(&title, body)
}

/// A page of an address's transfers in one direction.
pub fn address(address: &str, is_token: bool, direction: Direction, page: &TransferPage) -> Markup {
    let body = html! {
        p.mono { (address) " " @if is_token {
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
                        td.num { @match (t.amount.as_deref(), t.value.as_deref()) {
                            (Some(scaled), _) => (amount(scaled, None)),
                            // Without decimals it may be an NFT's id: shown as it is.
                            (None, Some(raw)) => { span.mono { (raw) } small.muted { " raw" } }
                            (None, None) => "–",
                        } }
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
    layout(&format!("Address {}", short(address)), body)
}

/// `/days` before any day is loaded.
pub fn no_days(pipeline: &str) -> Markup {
    layout(
        "Days",
        html! { p.muted { "No day of " (pipeline) " is loaded yet. Load one with "
        code { "ethpipe run " (pipeline) " --date YYYY-MM-DD" } ", a range with "
        code { "ethpipe backfill " (pipeline) " --from D --to D" } ", or Run now on the "
        a href="/" { "dashboard" } "." } },
    )
}

/// A day's totals and its most transferred tokens.
pub fn day(day: Day, overview: &DayOverview) -> Markup {
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
                        td.num { @match t.volume.as_deref() {
                            Some(volume) => (amount(volume, t.symbol.as_deref())),
                            None => span.muted title="the token's decimals are unknown (load the tokens pipeline)" { "–" },
                        } }
                    }
                }
                @if overview.top_tokens.is_empty() { tr.empty { td colspan="7" { "No transfers loaded for this day." } } }
            }
        }
    };
    layout(&format!("Day {day}"), body)
}
