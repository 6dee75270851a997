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
use utoipa::ToSchema;

use super::sql::{Param, Record};
use super::{normalize_decimal, scaled, QueryError, ReadStore};
use crate::error::Invalid;

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct Transfer {
    pub token_address: String,
    pub symbol: Option<String>,
    #[schema(pattern = r"^[0-9]+$")]
    pub decimals: Option<String>,
    pub from_address: Option<String>,
    pub to_address: Option<String>,
    /// Raw value: amount (ERC-20) or token id (ERC-721).
    #[schema(pattern = r"^[0-9]+$")]
    pub value: Option<String>,
    /// `value` scaled by the token's decimals, when known.
    #[schema(pattern = r"^[0-9]+(\.[0-9]+)?$")]
    pub amount: Option<String>,
    pub transaction_hash: String,
    pub log_index: i64,
    pub block_number: i64,
    #[schema(format = DateTime)]
    pub block_timestamp: String,
    /// Seen from the address: `in`, `out` or `self`.
    #[schema(pattern = "^(in|out|self)$")]
    pub direction: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct TransferPage {
    pub address: String,
    #[schema(value_type = Direction)]
    pub direction: String,
    pub transfers: Vec<Transfer>,
    /// Pass as `cursor` for the next (older) page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Which side of a transfer an address is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Direction {
    In,
    Out,
    Both,
}

impl Direction {
    pub const ALL: [Direction; 3] = [Direction::Both, Direction::In, Direction::Out];

    /// Absent means both.
    pub fn parse(text: Option<&str>) -> Result<Direction, Invalid> {
        match text {
            None => Ok(Direction::Both),
            Some(text) => Direction::ALL
                .into_iter()
                .find(|d| d.as_str() == text)
                .ok_or_else(|| {
                    Invalid::new(format!(
                        "invalid direction '{}': expected in, out or both",
                        Invalid::shown(text)
                    ))
                }),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
            Direction::Both => "both",
        }
    }

    pub fn includes_in(self) -> bool {
        matches!(self, Direction::In | Direction::Both)
    }

    pub fn includes_out(self) -> bool {
        matches!(self, Direction::Out | Direction::Both)
    }
}

/// Where a page of an address's transfers ends: the keyset
/// (block_number, transaction_hash, log_index) of its last row, newest first.
/// Written as `BLOCK-HASH-LOGINDEX`, e.g. `19000123-0xab…-7`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub block_number: i64,
    pub transaction_hash: String,
    pub log_index: i64,
}

impl Cursor {
    pub fn parse(text: &str) -> Result<Cursor, Invalid> {
        let bad = || {
            Invalid::new(format!(
                "invalid cursor '{}': pass the next_cursor of the previous page unchanged",
                Invalid::shown(text)
            ))
        };
        let mut parts = text.splitn(3, '-');
        let (Some(block), Some(hash), Some(log)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let whole = |t: &str| t.parse::<i64>().ok().filter(|n| *n >= 0);
        let (Some(block_number), Some(log_index)) = (whole(block), whole(log)) else {
            return Err(bad());
        };
        let hash_ok = hash.len() == 66
            && hash.starts_with("0x")
            && hash.as_bytes()[2..].iter().all(u8::is_ascii_hexdigit);
        if !hash_ok {
            return Err(bad());
        }
        Ok(Cursor {
            block_number,
            transaction_hash: hash.to_ascii_lowercase(),
            log_index,
        })
    }

    pub fn encode(&self) -> String {
        format!(
            "{}-{}-{}",
            self.block_number, self.transaction_hash, self.log_index
        )
    }
}

/// `$2`/`$3`: whether to read the outgoing/incoming side; `$4..$6`: the
/// cursor (all NULL on the first page); `$7`: rows to fetch.
const TRANSFERS: &str = "
SELECT t.token_address,
       (SELECT symbol FROM ethereum.tokens k WHERE k.address = t.token_address
        ORDER BY k.block_number DESC LIMIT 1),
       (SELECT CAST(decimals AS TEXT) FROM ethereum.tokens k WHERE k.address = t.token_address
        ORDER BY k.block_number DESC LIMIT 1),
       t.from_address, t.to_address, CAST(t.value AS TEXT), t.transaction_hash, t.log_index,
       t.block_number, t.block_timestamp
FROM (
    SELECT * FROM (
        SELECT * FROM ethereum.token_transfers
        WHERE CAST($2 AS BOOLEAN) AND from_address = $1
          AND (CAST($4 AS BIGINT) IS NULL
               OR (block_number, transaction_hash, log_index) < ($4, $5, $6))
        ORDER BY block_number DESC, transaction_hash DESC, log_index DESC LIMIT $7) AS outgoing
    UNION
    SELECT * FROM (
        SELECT * FROM ethereum.token_transfers
        WHERE CAST($3 AS BOOLEAN) AND to_address = $1
          AND (CAST($4 AS BIGINT) IS NULL
               OR (block_number, transaction_hash, log_index) < ($4, $5, $6))
        ORDER BY block_number DESC, transaction_hash DESC, log_index DESC LIMIT $7) AS incoming
) AS t
ORDER BY t.block_number DESC, t.transaction_hash DESC, t.log_index DESC
LIMIT $7";

/// One page (`limit` rows) of `address`'s transfers older than `cursor`.
pub(super) async fn for_address<S: ReadStore + ?Sized>(
    store: &S,
    address: &str,
    direction: Direction,
    cursor: Option<&Cursor>,
    limit: u32,
) -> Result<TransferPage, QueryError> {
    // One row more than asked tells whether another page exists.
    let params = vec![
        Param::text(address),
        Param::Bool(direction.includes_out()),
        Param::Bool(direction.includes_in()),
        Param::Int(cursor.map(|c| c.block_number)),
        Param::Text(cursor.map(|c| c.transaction_hash.clone())),
        Param::Int(cursor.map(|c| c.log_index)),
        Param::int(limit + 1),
    ];
    let rows = store.fetch(TRANSFERS, params).await?;
    let more = rows.len() > limit as usize;
    let transfers = rows
        .iter()
        .take(limit as usize)
        .map(|r| transfer_row(r, address))
        .collect::<Result<Vec<_>, QueryError>>()?;
    let next_cursor = more.then(|| transfers.last()).flatten().map(|t| {
        Cursor {
            block_number: t.block_number,
            transaction_hash: t.transaction_hash.clone(),
            log_index: t.log_index,
        }
        .encode()
    });
    Ok(TransferPage {
        address: address.to_string(),
        direction: direction.as_str().to_string(),
        transfers,
        next_cursor,
    })
}

fn transfer_row(r: &Record, address: &str) -> Result<Transfer, QueryError> {
    let from_address = r.opt_text(3)?;
    let to_address = r.opt_text(4)?;
    let direction = match (
        from_address.as_deref() == Some(address),
        to_address.as_deref() == Some(address),
    ) {
        (true, true) => "self",
        (true, false) => "out",
        _ => "in",
    };
    let decimals = r.opt_text(2)?;
    let value = r.opt_text(5)?;
    Ok(Transfer {
        token_address: r.text(0)?,
        symbol: r.opt_text(1)?,
        amount: scaled(value.as_deref(), decimals.as_deref()),
        decimals,
        from_address,
        to_address,
        value,
        transaction_hash: r.text(6)?,
        log_index: r.int(7)?,
        block_number: r.int(8)?,
        block_timestamp: r.instant(9)?,
        direction: direction.to_string(),
    })
}

/// A token's line in a day's overview.
#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct DayToken {
    pub token_address: String,
    pub symbol: Option<String>,
    pub name: Option<String>,
    #[schema(pattern = r"^[0-9]+$")]
    pub decimals: Option<String>,
    pub transfer_count: i64,
    pub unique_senders: i64,
    pub unique_receivers: i64,
    #[schema(pattern = r"^[0-9]+(\.[0-9]+)?$")]
    pub volume: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct DayOverview {
    #[schema(format = Date)]
    pub day: String,
    /// Tokens with at least one transfer that day.
    pub tokens: i64,
    pub transfers: i64,
    /// The most transferred tokens, most first (ties by address).
    pub top_tokens: Vec<DayToken>,
}

const DAY_TOTALS: &str = "
SELECT count(*), CAST(coalesce(sum(transfer_count), 0) AS BIGINT)
FROM ethereum.token_daily_stats WHERE day = $1";

/// The token columns come from its latest deployment, one indexed lookup each.
const DAY_TOP: &str = "
SELECT s.token_address,
       (SELECT symbol FROM ethereum.tokens k WHERE k.address = s.token_address
        ORDER BY k.block_number DESC LIMIT 1),
       (SELECT name FROM ethereum.tokens k WHERE k.address = s.token_address
        ORDER BY k.block_number DESC LIMIT 1),
       (SELECT CAST(decimals AS TEXT) FROM ethereum.tokens k WHERE k.address = s.token_address
        ORDER BY k.block_number DESC LIMIT 1),
       s.transfer_count, s.unique_senders, s.unique_receivers, CAST(s.volume AS TEXT)
FROM ethereum.token_daily_stats s
WHERE s.day = $1
ORDER BY s.transfer_count DESC, s.token_address LIMIT $2";

pub(super) async fn day_overview<S: ReadStore + ?Sized>(
    store: &S,
    day: Day,
    limit: u32,
) -> Result<DayOverview, QueryError> {
    let totals = store
        .fetch(DAY_TOTALS, vec![Param::Date(Some(day))])
        .await?;
    let (tokens, transfers) = match totals.first() {
        Some(r) => (r.int(0)?, r.int(1)?),
        None => (0, 0),
    };
    let top = store
        .fetch(DAY_TOP, vec![Param::Date(Some(day)), Param::int(limit)])
        .await?;
    let top_tokens = top
        .iter()
        .map(|r| {
            Ok(DayToken {
                token_address: r.text(0)?,
                symbol: r.opt_text(1)?,
                name: r.opt_text(2)?,
                decimals: r.opt_text(3)?,
                transfer_count: r.int(4)?,
                unique_senders: r.int(5)?,
                unique_receivers: r.int(6)?,
                volume: r.opt_text(7)?.map(normalize_decimal),
            })
        })
        .collect::<Result<Vec<_>, QueryError>>()?;
    Ok(DayOverview {
        day: day.to_string(),
        tokens,
        transfers,
        top_tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let cursor = Cursor {
            block_number: 19_000_123,
            transaction_hash: format!("0x{}", "ab".repeat(32)),
            log_index: 7,
        };
        assert_eq!(Cursor::parse(&cursor.encode()).unwrap(), cursor);
        for bad in [
            "",
            "1-2-3",
            "x-0xab-1",
            &format!("-1-0x{}-1", "a".repeat(64)),
        ] {
            assert!(Cursor::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn directions_parse_and_default_to_both() {
        assert_eq!(Direction::parse(None).unwrap(), Direction::Both);
        assert_eq!(Direction::parse(Some("in")).unwrap(), Direction::In);
        let err = Direction::parse(Some("sideways")).unwrap_err();
        assert!(err.to_string().contains("invalid direction"), "{err}");
    }
}
