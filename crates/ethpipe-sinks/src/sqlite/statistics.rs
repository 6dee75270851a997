//! `token_daily_stats` for SQLite. Sums of uint256 values do not fit any
//! SQLite type, so volumes are added and scaled exactly in Rust
//! (`ethpipe_core::decimal`) inside the day's transaction.

use std::collections::BTreeMap;

use chrono::Utc;
use ethpipe_core::dataset::Derived;
use ethpipe_core::{decimal, Scope, TokenFilter};
use rusqlite::{params, Connection, OptionalExtension};

use crate::{SinkError, StepReport};

fn fail(e: rusqlite::Error) -> SinkError {
    SinkError::db("rebuilding token_daily_stats", e)
}

struct TokenDay {
    transfers: i64,
    senders: i64,
    receivers: i64,
    volume_raw: String,
}

/// Runs one derived step over the staged rows, in the day's transaction.
/// The staged rows are the whole day, or the whole day of the filter's
/// tokens: only those tokens' statistics are rebuilt then.
pub(super) fn derive(
    connection: &Connection,
    derived: Derived,
    scope: Scope,
    filter: Option<&TokenFilter>,
) -> Result<StepReport, SinkError> {
    let started = Utc::now();
    let rows = match (derived, scope.day()) {
        (Derived::TokenDailyStats, Some(day)) => rebuild_day(connection, &day.to_string(), filter)?,
        (Derived::TokenDailyStats, None) => 0,
        (Derived::RescaleTokenVolumes, _) => rescale_touched_tokens(connection)?,
    };
    Ok(StepReport::since("token_daily_stats", rows, started))
}

fn rebuild_day(
    connection: &Connection,
    day: &str,
    filter: Option<&TokenFilter>,
) -> Result<u64, SinkError> {
    let mut per_token: BTreeMap<String, TokenDay> = BTreeMap::new();
    {
        let mut counts = connection
            .prepare(
                "SELECT token_address, count(*), count(DISTINCT from_address), count(DISTINCT to_address)
                 FROM temp.ethpipe_staging GROUP BY token_address",
            )
            .map_err(fail)?;
        let rows = counts
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    TokenDay {
                        transfers: r.get(1)?,
                        senders: r.get(2)?,
                        receivers: r.get(3)?,
                        volume_raw: "0".into(),
                    },
                ))
            })
            .map_err(fail)?;
        for row in rows {
            let (token, stats) = row.map_err(fail)?;
            per_token.insert(token, stats);
        }
        let mut values = connection
            .prepare(
                "SELECT token_address, value FROM temp.ethpipe_staging WHERE value IS NOT NULL",
            )
            .map_err(fail)?;
        let mut rows = values.query([]).map_err(fail)?;
        while let Some(row) = rows.next().map_err(fail)? {
            let token: String = row.get(0).map_err(fail)?;
            let value: String = row.get(1).map_err(fail)?;
            if let Some(stats) = per_token.get_mut(&token) {
                stats.volume_raw = decimal::add(&stats.volume_raw, &value);
            }
        }
    }
    let tokens = super::day::in_filter_column("token_address", 2);
    connection
        .execute(
            &format!("DELETE FROM token_daily_stats WHERE day = ?1 AND {tokens}"),
            params![day, super::day::filter_json(filter)],
        )
        .map_err(fail)?;
    let mut insert = connection
        .prepare("INSERT INTO token_daily_stats VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")
        .map_err(fail)?;
    for (token, stats) in &per_token {
        let volume = scaled(connection, token, &stats.volume_raw)?;
        insert
            .execute(params![
                day,
                token,
                stats.transfers,
                stats.senders,
                stats.receivers,
                stats.volume_raw,
                volume
            ])
            .map_err(fail)?;
    }
    Ok(per_token.len() as u64)
}

fn rescale_touched_tokens(connection: &Connection) -> Result<u64, SinkError> {
    let touched: Vec<(String, String, String)> = {
        let mut statement = connection
            .prepare(
                "SELECT day, token_address, volume_raw FROM token_daily_stats
                 WHERE token_address IN (SELECT address FROM temp.ethpipe_staging)",
            )
            .map_err(fail)?;
        let rows = statement
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(fail)?;
        rows.collect::<Result<_, _>>().map_err(fail)?
    };
    for (day, token, volume_raw) in &touched {
        let volume = scaled(connection, token, volume_raw)?;
        connection
            .execute(
                "UPDATE token_daily_stats SET volume = ?3 WHERE day = ?1 AND token_address = ?2",
                params![day, token, volume],
            )
            .map_err(fail)?;
    }
    Ok(touched.len() as u64)
}

/// The volume scaled by the token's latest known decimals, if any.
fn scaled(
    connection: &Connection,
    token: &str,
    volume_raw: &str,
) -> Result<Option<String>, SinkError> {
    let decimals: Option<Option<String>> = connection
        .query_row(
            "SELECT decimals FROM tokens_latest WHERE address = ?1",
            [token],
            |r| r.get(0),
        )
        .optional()
        .map_err(fail)?;
    Ok(decimals
        .flatten()
        .and_then(|d| d.parse::<u32>().ok())
        .and_then(|d| decimal::scale(volume_raw, d)))
}
