//! Token reads: search, metadata (latest deployment), daily statistics from
//! `token_daily_stats`, and the top senders and receivers of one day.
//!
//! Amounts stay exact: raw sums are decimal text, and scaling by decimals is
//! done by the database (PostgreSQL `numeric`) or by `ethpipe_core::decimal`.

use std::collections::HashMap;

use ethpipe_core::Day;
use rusqlite::OptionalExtension;
use serde::Serialize;

use super::{
    contains_pattern, prefix_pattern, scaled, sqlite_timestamp, timestamp, QueryError, Reader,
};

/// A token's metadata, from its latest deployment.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Token {
    pub address: String,
    pub symbol: Option<String>,
    pub name: Option<String>,
    pub decimals: Option<String>,
    pub total_supply: Option<String>,
    /// `total_supply` scaled by decimals.
    pub total_supply_scaled: Option<String>,
    pub block_number: i64,
    pub block_timestamp: String,
    /// Rows in `tokens` for the address (CREATE2 redeployments keep each).
    pub deployments: i64,
    /// The JSON-RPC source saw the address in transfers but not its creation.
    pub found_in_transfers: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TokenHit {
    pub address: String,
    pub symbol: Option<String>,
    pub name: Option<String>,
    pub decimals: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DailyStat {
    pub day: String,
    pub transfer_count: i64,
    pub unique_senders: i64,
    pub unique_receivers: i64,
    /// Exact sum of raw values.
    pub volume_raw: String,
    /// `volume_raw` scaled by the token's decimals; `None` when unknown.
    pub volume: Option<String>,
}

/// An address among a token's top senders or receivers of a day.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Counterparty {
    pub address: String,
    pub transfers: i64,
    pub volume_raw: String,
    pub volume: Option<String>,
}

/// Drops a decimal's trailing fractional zeros (`1.500` → `1.5`, `2.000` → `2`),
/// so both databases answer with the same text.
pub fn normalize_decimal(text: String) -> String {
    if !text.contains('.') {
        return text;
    }
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

pub async fn token(reader: &Reader, address: &str) -> Result<Option<Token>, QueryError> {
    let finish = |mut token: Token| {
        token.total_supply_scaled =
            scaled(token.total_supply.as_deref(), token.decimals.as_deref());
        token
    };
    match reader {
        Reader::Postgres(pg) => {
            let rows = pg
                .query(
                    "SELECT address, symbol, name, decimals::text, total_supply::text, block_number,
                            block_timestamp, found_in_transfers, count(*) OVER ()
                     FROM ethereum.tokens WHERE address = $1 ORDER BY block_number DESC LIMIT 1",
                    &[&address],
                )
                .await?;
            Ok(rows.first().map(|r| {
                finish(Token {
                    address: r.get(0),
                    symbol: r.get(1),
                    name: r.get(2),
                    decimals: r.get(3),
                    total_supply: r.get(4),
                    total_supply_scaled: None,
                    block_number: r.get(5),
                    block_timestamp: timestamp(r.get(6)),
                    found_in_transfers: r.get(7),
                    deployments: r.get(8),
                })
            }))
        }
        Reader::Sqlite(lite) => {
            let address = address.to_string();
            let token = lite
                .read(move |c| {
                    c.query_row(
                        "SELECT address, symbol, name, decimals, total_supply, block_number,
                                block_timestamp, found_in_transfers,
                                (SELECT count(*) FROM tokens u WHERE u.address = t.address)
                         FROM tokens t WHERE address = ?1 ORDER BY block_number DESC LIMIT 1",
                        [&address],
                        |r| {
                            Ok(Token {
                                address: r.get(0)?,
                                symbol: r.get(1)?,
                                name: r.get(2)?,
                                decimals: r.get(3)?,
                                total_supply: r.get(4)?,
                                total_supply_scaled: None,
                                block_number: r.get(5)?,
                                block_timestamp: sqlite_timestamp(r.get(6)?)
                                    .map(timestamp)
                                    .unwrap_or_default(),
                                found_in_transfers: r.get::<_, i64>(7)? != 0,
                                deployments: r.get(8)?,
                            })
                        },
                    )
                    .optional()
                })
                .await?;
            Ok(token.map(finish))
        }
    }
}

/// Tokens whose symbol or name contains `text` (case-insensitive), or whose
/// address starts with it; exact symbol matches first, then symbol prefixes.
pub async fn search(reader: &Reader, text: &str, limit: u32) -> Result<Vec<TokenHit>, QueryError> {
    let lowered = text.to_ascii_lowercase();
    let is_hex = lowered.len() > 2
        && lowered.starts_with("0x")
        && lowered.as_bytes()[2..].iter().all(u8::is_ascii_hexdigit);
    // The address branch matches on a prefix; the text branch on containment.
    let address_pattern = is_hex.then(|| prefix_pattern(&lowered));
    let text_pattern = contains_pattern(text);
    let symbol_prefix = prefix_pattern(text);
    match reader {
        Reader::Postgres(pg) => Ok(pg
            .query(
                "SELECT address, symbol, name, decimals FROM (
                     SELECT DISTINCT ON (address) address, symbol, name, decimals::text AS decimals
                     FROM ethereum.tokens
                     WHERE CASE WHEN $1::text IS NOT NULL THEN address LIKE $1
                                ELSE symbol ILIKE $2 OR name ILIKE $2 END
                     ORDER BY address, block_number DESC
                 ) hits
                 ORDER BY coalesce(lower(symbol) = lower($3::text), false) DESC,
                          coalesce(symbol ILIKE $4::text, false) DESC,
                          length(symbol) NULLS LAST, symbol NULLS LAST, address
                 LIMIT $5",
                &[
                    &address_pattern,
                    &text_pattern,
                    &text,
                    &symbol_prefix,
                    &i64::from(limit),
                ],
            )
            .await?
            .iter()
            .map(|r| TokenHit {
                address: r.get(0),
                symbol: r.get(1),
                name: r.get(2),
                decimals: r.get(3),
            })
            .collect()),
        Reader::Sqlite(lite) => {
            let text = text.to_string();
            lite.read(move |c| {
                // SQLite's LIKE is case-insensitive for ASCII, like ILIKE.
                let mut statement = c.prepare(
                    "SELECT address, symbol, name, decimals FROM tokens_latest
                     WHERE CASE WHEN ?1 IS NOT NULL THEN address LIKE ?1 ESCAPE '\\'
                                ELSE symbol LIKE ?2 ESCAPE '\\' OR name LIKE ?2 ESCAPE '\\' END
                     ORDER BY coalesce(lower(symbol) = lower(?3), 0) DESC,
                              coalesce(symbol LIKE ?4 ESCAPE '\\', 0) DESC,
                              symbol IS NULL, length(symbol), symbol, address
                     LIMIT ?5",
                )?;
                let rows = statement.query_map(
                    rusqlite::params![address_pattern, text_pattern, text, symbol_prefix, limit],
                    |r| {
                        Ok(TokenHit {
                            address: r.get(0)?,
                            symbol: r.get(1)?,
                            name: r.get(2)?,
                            decimals: r.get(3)?,
                        })
                    },
                )?;
                rows.collect()
            })
            .await
        }
    }
}

/// The newest `limit` days of statistics within the optional bounds, oldest first.
pub async fn daily(
    reader: &Reader,
    address: &str,
    from: Option<Day>,
    to: Option<Day>,
    limit: u32,
) -> Result<Vec<DailyStat>, QueryError> {
    let mut stats: Vec<DailyStat> = match reader {
        Reader::Postgres(pg) => pg
            .query(
                "SELECT day::text, transfer_count, unique_senders, unique_receivers,
                        volume_raw::text, volume::text
                 FROM ethereum.token_daily_stats
                 WHERE token_address = $1 AND ($2::date IS NULL OR day >= $2)
                   AND ($3::date IS NULL OR day <= $3)
                 ORDER BY day DESC LIMIT $4",
                &[
                    &address,
                    &from.map(Day::naive),
                    &to.map(Day::naive),
                    &i64::from(limit),
                ],
            )
            .await?
            .iter()
            .map(|r| DailyStat {
                day: r.get(0),
                transfer_count: r.get(1),
                unique_senders: r.get(2),
                unique_receivers: r.get(3),
                volume_raw: r.get(4),
                volume: r.get::<_, Option<String>>(5).map(normalize_decimal),
            })
            .collect(),
        Reader::Sqlite(lite) => {
            let address = address.to_string();
            let (from, to) = (from.map(|d| d.to_string()), to.map(|d| d.to_string()));
            lite.read(move |c| {
                let mut statement = c.prepare(
                    "SELECT day, transfer_count, unique_senders, unique_receivers, volume_raw, volume
                     FROM token_daily_stats
                     WHERE token_address = ?1 AND (?2 IS NULL OR day >= ?2) AND (?3 IS NULL OR day <= ?3)
                     ORDER BY day DESC LIMIT ?4",
                )?;
                let rows = statement.query_map(rusqlite::params![address, from, to, limit], |r| {
                    Ok(DailyStat {
                        day: r.get(0)?,
                        transfer_count: r.get(1)?,
                        unique_senders: r.get(2)?,
                        unique_receivers: r.get(3)?,
                        volume_raw: r.get(4)?,
                        volume: r.get::<_, Option<String>>(5)?.map(normalize_decimal),
                    })
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?
        }
    };
    stats.reverse();
    Ok(stats)
}

/// The latest day the token has statistics for.
pub async fn latest_day(reader: &Reader, address: &str) -> Result<Option<String>, QueryError> {
    match reader {
        Reader::Postgres(pg) => Ok(pg
            .query(
                "SELECT max(day)::text FROM ethereum.token_daily_stats WHERE token_address = $1",
                &[&address],
            )
            .await?
            .first()
            .and_then(|r| r.get(0))),
        Reader::Sqlite(lite) => {
            let address = address.to_string();
            lite.read(move |c| {
                c.query_row(
                    "SELECT max(day) FROM token_daily_stats WHERE token_address = ?1",
                    [&address],
                    |r| r.get(0),
                )
            })
            .await
        }
    }
}

/// Which side of the transfers to rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Senders,
    Receivers,
}

/// The addresses with the most transfers of the token on `day` (ties by
/// address), with their exact raw volume, scaled by `decimals` when known.
/// Mints (no sender) and burns to no receiver are not counterparties.
pub async fn top(
    reader: &Reader,
    address: &str,
    day: Day,
    side: Side,
    limit: u32,
    decimals: Option<&str>,
) -> Result<Vec<Counterparty>, QueryError> {
    let mut rows: Vec<(String, i64, String)> = match reader {
        Reader::Postgres(pg) => {
            // Two fixed statements rather than a column name spliced into one.
            let sql = match side {
                Side::Senders => {
                    "SELECT from_address, count(*), coalesce(sum(value), 0)::text
                     FROM ethereum.token_transfers
                     WHERE token_address = $1 AND block_timestamp >= $2 AND block_timestamp < $3
                       AND from_address IS NOT NULL
                     GROUP BY from_address ORDER BY count(*) DESC, from_address LIMIT $4"
                }
                Side::Receivers => {
                    "SELECT to_address, count(*), coalesce(sum(value), 0)::text
                     FROM ethereum.token_transfers
                     WHERE token_address = $1 AND block_timestamp >= $2 AND block_timestamp < $3
                       AND to_address IS NOT NULL
                     GROUP BY to_address ORDER BY count(*) DESC, to_address LIMIT $4"
                }
            };
            pg.query(
                sql,
                &[&address, &day.start(), &day.end(), &i64::from(limit)],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
        }
        Reader::Sqlite(lite) => {
            let address = address.to_string();
            let (start, end) = (
                ethpipe_sinks::sqlite::timestamp_text(day.start()),
                ethpipe_sinks::sqlite::timestamp_text(day.end()),
            );
            // SQLite cannot sum uint256 text: aggregate the day's rows here.
            lite.read(move |c| {
                let sql = match side {
                    Side::Senders => {
                        "SELECT from_address, value FROM token_transfers
                         WHERE token_address = ?1 AND block_timestamp >= ?2 AND block_timestamp < ?3
                           AND from_address IS NOT NULL"
                    }
                    Side::Receivers => {
                        "SELECT to_address, value FROM token_transfers
                         WHERE token_address = ?1 AND block_timestamp >= ?2 AND block_timestamp < ?3
                           AND to_address IS NOT NULL"
                    }
                };
                let mut statement = c.prepare(sql)?;
                let mut totals: HashMap<String, (i64, String)> = HashMap::new();
                let mut rows = statement.query(rusqlite::params![address, start, end])?;
                while let Some(row) = rows.next()? {
                    let who: String = row.get(0)?;
                    let value: Option<String> = row.get(1)?;
                    let entry = totals.entry(who).or_insert_with(|| (0, "0".to_string()));
                    entry.0 += 1;
                    if let Some(value) = value {
                        entry.1 = ethpipe_core::decimal::add(&entry.1, &value);
                    }
                }
                let mut ranked: Vec<(String, i64, String)> =
                    totals.into_iter().map(|(a, (n, v))| (a, n, v)).collect();
                ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                ranked.truncate(limit as usize);
                Ok(ranked)
            })
            .await?
        }
    };
    Ok(rows
        .drain(..)
        .map(|(address, transfers, volume_raw)| Counterparty {
            volume: scaled(Some(&volume_raw), decimals),
            address,
            transfers,
            volume_raw,
        })
        .collect())
}
