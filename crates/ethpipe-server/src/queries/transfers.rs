//! Transfer reads: an address's transfers in and out, newest first, in keyset
//! pages; and a day's tokens ranked by transfers (from `token_daily_stats`).
//!
//! The keyset is (block_number, transaction_hash, log_index), descending: the
//! table's key (transaction_hash, log_index) makes it unique, so a page never
//! repeats or skips a row however the table grows. "Both directions" reads
//! the two indexed sides separately (each at most one page) and merges them,
//! instead of an `OR` that would sort every transfer the address ever made.

use ethpipe_core::Day;
use serde::Serialize;

use super::tokens::normalize_decimal;
use super::{scaled, sqlite_timestamp, timestamp, QueryError, Reader};
use crate::params::{Cursor, Direction};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Transfer {
    pub token_address: String,
    pub symbol: Option<String>,
    pub decimals: Option<String>,
    pub from_address: Option<String>,
    pub to_address: Option<String>,
    /// Raw value: amount (ERC-20) or token id (ERC-721).
    pub value: Option<String>,
    /// `value` scaled by the token's decimals, when known.
    pub amount: Option<String>,
    pub transaction_hash: String,
    pub log_index: i64,
    pub block_number: i64,
    pub block_timestamp: String,
    /// Seen from the address: `in`, `out` or `self`.
    pub direction: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TransferPage {
    pub address: String,
    pub direction: String,
    pub transfers: Vec<Transfer>,
    /// Pass as `cursor` for the next (older) page; `None` on the last page.
    pub next_cursor: Option<String>,
}

const PG_TRANSFERS: &str = "
SELECT t.token_address, tk.symbol, tk.decimals::text, t.from_address, t.to_address, t.value::text,
       t.transaction_hash, t.log_index, t.block_number, t.block_timestamp
FROM (
    (SELECT * FROM ethereum.token_transfers
     WHERE $2::bool AND from_address = $1
       AND ($4::bigint IS NULL OR (block_number, transaction_hash, log_index) < ($4::bigint, $5::text, $6::bigint))
     ORDER BY block_number DESC, transaction_hash DESC, log_index DESC LIMIT $7)
    UNION
    (SELECT * FROM ethereum.token_transfers
     WHERE $3::bool AND to_address = $1
       AND ($4::bigint IS NULL OR (block_number, transaction_hash, log_index) < ($4::bigint, $5::text, $6::bigint))
     ORDER BY block_number DESC, transaction_hash DESC, log_index DESC LIMIT $7)
) t
LEFT JOIN LATERAL (
    SELECT symbol, decimals FROM ethereum.tokens k
    WHERE k.address = t.token_address ORDER BY k.block_number DESC LIMIT 1
) tk ON true
ORDER BY t.block_number DESC, t.transaction_hash DESC, t.log_index DESC
LIMIT $7";

const LITE_TRANSFERS: &str = "
SELECT t.token_address,
       (SELECT symbol FROM tokens k WHERE k.address = t.token_address ORDER BY k.block_number DESC LIMIT 1),
       (SELECT decimals FROM tokens k WHERE k.address = t.token_address ORDER BY k.block_number DESC LIMIT 1),
       t.from_address, t.to_address, t.value, t.transaction_hash, t.log_index, t.block_number, t.block_timestamp
FROM (
    SELECT * FROM (
        SELECT * FROM token_transfers
        WHERE ?2 AND from_address = ?1
          AND (?4 IS NULL OR (block_number, transaction_hash, log_index) < (?4, ?5, ?6))
        ORDER BY block_number DESC, transaction_hash DESC, log_index DESC LIMIT ?7)
    UNION
    SELECT * FROM (
        SELECT * FROM token_transfers
        WHERE ?3 AND to_address = ?1
          AND (?4 IS NULL OR (block_number, transaction_hash, log_index) < (?4, ?5, ?6))
        ORDER BY block_number DESC, transaction_hash DESC, log_index DESC LIMIT ?7)
) t
ORDER BY t.block_number DESC, t.transaction_hash DESC, t.log_index DESC
LIMIT ?7";

/// One page (`limit` rows) of `address`'s transfers older than `cursor`.
pub async fn for_address(
    reader: &Reader,
    address: &str,
    direction: Direction,
    cursor: Option<&Cursor>,
    limit: u32,
) -> Result<TransferPage, QueryError> {
    // One row more than asked tells whether another page exists.
    let fetch = i64::from(limit) + 1;
    let block = cursor.map(|c| c.block_number);
    let hash = cursor.map(|c| c.transaction_hash.clone());
    let log = cursor.map(|c| c.log_index);
    type Raw = (
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        String,
        i64,
        i64,
        String,
    );
    let raw: Vec<Raw> = match reader {
        Reader::Postgres(pg) => pg
            .query(
                PG_TRANSFERS,
                &[
                    &address,
                    &direction.includes_out(),
                    &direction.includes_in(),
                    &block,
                    &hash,
                    &log,
                    &fetch,
                ],
            )
            .await?
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    r.get(1),
                    r.get(2),
                    r.get(3),
                    r.get(4),
                    r.get(5),
                    r.get(6),
                    r.get(7),
                    r.get(8),
                    timestamp(r.get(9)),
                )
            })
            .collect(),
        Reader::Sqlite(lite) => {
            let address = address.to_string();
            lite.read(move |c| {
                let mut statement = c.prepare(LITE_TRANSFERS)?;
                let rows = statement.query_map(
                    rusqlite::params![
                        address,
                        direction.includes_out(),
                        direction.includes_in(),
                        block,
                        hash,
                        log,
                        fetch
                    ],
                    |r| {
                        Ok((
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                            r.get(6)?,
                            r.get(7)?,
                            r.get(8)?,
                            sqlite_timestamp(r.get(9)?)
                                .map(timestamp)
                                .unwrap_or_default(),
                        ))
                    },
                )?;
                rows.collect()
            })
            .await?
        }
    };
    let more = raw.len() > limit as usize;
    let transfers: Vec<Transfer> = raw
        .into_iter()
        .take(limit as usize)
        .map(
            |(token, symbol, decimals, from, to, value, hash, log_index, block_number, at)| {
                let direction = match (
                    from.as_deref() == Some(address),
                    to.as_deref() == Some(address),
                ) {
                    (true, true) => "self",
                    (true, false) => "out",
                    _ => "in",
                };
                Transfer {
                    amount: scaled(value.as_deref(), decimals.as_deref()),
                    token_address: token,
                    symbol,
                    decimals,
                    from_address: from,
                    to_address: to,
                    value,
                    transaction_hash: hash,
                    log_index,
                    block_number,
                    block_timestamp: at,
                    direction: direction.to_string(),
                }
            },
        )
        .collect();
    let next_cursor = if more {
        transfers.last().map(|t| {
            Cursor {
                block_number: t.block_number,
                transaction_hash: t.transaction_hash.clone(),
                log_index: t.log_index,
            }
            .encode()
        })
    } else {
        None
    };
    Ok(TransferPage {
        address: address.to_string(),
        direction: direction.as_str().to_string(),
        transfers,
        next_cursor,
    })
}

/// A token's line in a day's overview.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DayToken {
    pub token_address: String,
    pub symbol: Option<String>,
    pub name: Option<String>,
    pub decimals: Option<String>,
    pub transfer_count: i64,
    pub unique_senders: i64,
    pub unique_receivers: i64,
    pub volume: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DayOverview {
    pub day: String,
    /// Tokens with at least one transfer that day.
    pub tokens: i64,
    pub transfers: i64,
    /// The most transferred tokens, most first (ties by address).
    pub top_tokens: Vec<DayToken>,
}

pub async fn day_overview(
    reader: &Reader,
    day: Day,
    limit: u32,
) -> Result<DayOverview, QueryError> {
    let (tokens, transfers, top_tokens) = match reader {
        Reader::Postgres(pg) => {
            let totals = pg
                .query(
                    "SELECT count(*), coalesce(sum(transfer_count), 0)::bigint
                     FROM ethereum.token_daily_stats WHERE day = $1",
                    &[&day.naive()],
                )
                .await?;
            let (tokens, transfers) = totals.first().map_or((0, 0), |r| (r.get(0), r.get(1)));
            let top = pg
                .query(
                    "SELECT s.token_address, tk.symbol, tk.name, tk.decimals::text, s.transfer_count,
                            s.unique_senders, s.unique_receivers, s.volume::text
                     FROM ethereum.token_daily_stats s
                     LEFT JOIN LATERAL (
                         SELECT symbol, name, decimals FROM ethereum.tokens k
                         WHERE k.address = s.token_address ORDER BY k.block_number DESC LIMIT 1
                     ) tk ON true
                     WHERE s.day = $1
                     ORDER BY s.transfer_count DESC, s.token_address LIMIT $2",
                    &[&day.naive(), &i64::from(limit)],
                )
                .await?
                .iter()
                .map(|r| DayToken {
                    token_address: r.get(0),
                    symbol: r.get(1),
                    name: r.get(2),
                    decimals: r.get(3),
                    transfer_count: r.get(4),
                    unique_senders: r.get(5),
                    unique_receivers: r.get(6),
                    volume: r.get::<_, Option<String>>(7).map(normalize_decimal),
                })
                .collect();
            (tokens, transfers, top)
        }
        Reader::Sqlite(lite) => {
            let day_text = day.to_string();
            lite.read(move |c| {
                let (tokens, transfers) = c.query_row(
                    "SELECT count(*), coalesce(sum(transfer_count), 0) FROM token_daily_stats WHERE day = ?1",
                    [&day_text],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                let mut statement = c.prepare(
                    "SELECT s.token_address, tk.symbol, tk.name, tk.decimals, s.transfer_count,
                            s.unique_senders, s.unique_receivers, s.volume
                     FROM token_daily_stats s LEFT JOIN tokens_latest tk ON tk.address = s.token_address
                     WHERE s.day = ?1
                     ORDER BY s.transfer_count DESC, s.token_address LIMIT ?2",
                )?;
                let top = statement
                    .query_map(rusqlite::params![day_text, limit], |r| {
                        Ok(DayToken {
                            token_address: r.get(0)?,
                            symbol: r.get(1)?,
                            name: r.get(2)?,
                            decimals: r.get(3)?,
                            transfer_count: r.get(4)?,
                            unique_senders: r.get(5)?,
                            unique_receivers: r.get(6)?,
                            volume: r.get::<_, Option<String>>(7)?.map(normalize_decimal),
                        })
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok((tokens, transfers, top))
            })
            .await?
        }
    };
    Ok(DayOverview {
        day: day.to_string(),
        tokens,
        transfers,
        top_tokens,
    })
}
