//! Transfer reads: an address's transfers in and out, newest first, in keyset
//! pages; and a day's tokens ranked by transfers (from `token_daily_stats`).
//!
//! The keyset is (block_number, transaction_hash, log_index), descending: the
//! table's key (transaction_hash, log_index) makes it unique, so a page never
//! repeats or skips a row however the table grows. "Both directions" reads
//! the two indexed sides separately (each at most one page) and merges them,
//! instead of an `OR` that would sort every transfer the address ever made.

use ethpipe_core::Day;
use ethpipe_sinks::ddl::day_bounds;
use serde::Serialize;
use utoipa::ToSchema;

use super::connection::classify;
use super::sql::{Param, Record};
use super::{normalize_decimal, scaled, PgReader, QueryError, ReadStore};
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

/// The page's statement, reading only `window`'s rows (a condition on
/// `block_timestamp`, or nothing). `$1`: the address; `$2`/`$3`: whether to
/// read the outgoing/incoming side; `$4..$6`: the cursor (all NULL on the
/// first page); `$7`: rows to fetch; `$8`: the cursor's block, or the
/// largest block number, so the index range starts at the cursor instead of
/// skipping the newer rows one by one.
fn transfers_statement(window: &str) -> String {
    let side = |column: &str, enabled: &str| {
        format!(
            "SELECT * FROM (
        SELECT * FROM ethereum.token_transfers
        WHERE CAST({enabled} AS BOOLEAN) AND {column} = $1{window} AND block_number <= $8
          AND (CAST($4 AS BIGINT) IS NULL
               OR (block_number, transaction_hash, log_index) < ($4, $5, $6))
        ORDER BY block_number DESC, transaction_hash DESC, log_index DESC LIMIT $7)"
        )
    };
    format!(
        "
SELECT t.token_address,
       (SELECT symbol FROM ethereum.tokens k WHERE k.address = t.token_address
        ORDER BY k.block_number DESC LIMIT 1),
       (SELECT CAST(decimals AS TEXT) FROM ethereum.tokens k WHERE k.address = t.token_address
        ORDER BY k.block_number DESC LIMIT 1),
       t.from_address, t.to_address, CAST(t.value AS TEXT), t.transaction_hash, t.log_index,
       t.block_number, t.block_timestamp
FROM (
    {} AS outgoing
    UNION
    {} AS incoming
) AS t
ORDER BY t.block_number DESC, t.transaction_hash DESC, t.log_index DESC
LIMIT $7",
        side("from_address", "$2"),
        side("to_address", "$3")
    )
}

/// The statement's parameters for `rows` more rows.
fn transfers_params(
    address: &str,
    direction: Direction,
    cursor: Option<&Cursor>,
    rows: usize,
) -> Vec<Param> {
    vec![
        Param::text(address),
        Param::Bool(direction.includes_out()),
        Param::Bool(direction.includes_in()),
        Param::Int(cursor.map(|c| c.block_number)),
        Param::Text(cursor.map(|c| c.transaction_hash.clone())),
        Param::Int(cursor.map(|c| c.log_index)),
        Param::int(i64::try_from(rows).unwrap_or(i64::MAX)),
        Param::int(cursor.map_or(i64::MAX, |c| c.block_number)),
    ]
}

/// One page (`limit` rows) of `address`'s transfers older than `cursor`, in
/// one statement over the whole table (SQLite: one table, no partitions).
pub(super) async fn for_address<S: ReadStore + ?Sized>(
    store: &S,
    address: &str,
    direction: Direction,
    cursor: Option<&Cursor>,
    limit: u32,
) -> Result<TransferPage, QueryError> {
    // One row more than asked tells whether another page exists.
    let params = transfers_params(address, direction, cursor, limit as usize + 1);
    let rows = store.fetch(&transfers_statement(""), params).await?;
    transfer_page(&rows, address, direction, limit)
}

/// Days in one window of an address's page in PostgreSQL. Windows are fixed
/// on the calendar (counted from 1970-01-01), so each window's statement,
/// with its bounds written in, is the same text on every request and its
/// plan is made once per connection. 30 days keep a window's plan small (a
/// few milliseconds to make, about 0.3 ms to run) and its locks (a table
/// and two indexes per day) well within PostgreSQL's shared lock table even
/// with every pooled connection reading one.
pub const WINDOW_DAYS: i64 = 30;

/// `$1`: the cursor's block (NULL on the first page). Which windows hold a
/// loaded day with rows at or below the cursor, newest first, and whether
/// the default partition (rows of days without a partition of their own,
/// which ethpipe never writes) is empty.
const WINDOWS: &str = "
SELECT NOT EXISTS (SELECT 1 FROM ethereum.token_transfers_default),
       ARRAY(SELECT DISTINCT (day - DATE '1970-01-01') / CAST($2 AS BIGINT) AS window_index
             FROM ethpipe.day_partitions
             WHERE dataset = 'token_transfers' AND rows > 0
               AND (CAST($1 AS BIGINT) IS NULL OR first_block <= $1)
             ORDER BY window_index DESC)";

/// A stretch of `block_timestamp` one statement reads; `None` is unbounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    from: Option<Day>,
    until: Option<Day>,
}

impl Window {
    fn of(index: i64) -> Window {
        Window {
            from: Some(window_start(index)),
            until: Some(window_start(index + 1)),
        }
    }

    /// The condition, with the bounds as `timestamptz` literals: constants
    /// let the planner leave every other day's partition out of the plan
    /// (a `date` expression or a parameter would only prune when the
    /// statement runs, after all of them were planned and locked).
    fn condition(&self) -> String {
        let bound = |op: &str, day: Option<Day>| {
            day.map(|d| format!(" AND block_timestamp {op} {}", day_bounds(d).0))
                .unwrap_or_default()
        };
        format!("{}{}", bound(">=", self.from), bound("<", self.until))
    }
}

fn window_start(index: i64) -> Day {
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    let days = index * WINDOW_DAYS;
    Day::from_naive(epoch + chrono::Duration::days(days))
}

/// The windows to read, newest first, given the windows that hold loaded
/// days (newest first) and whether rows outside the loaded days may exist.
/// With an empty default partition only the windows of loaded days hold
/// rows. Otherwise every stretch of time is read once: the gaps between
/// loaded windows too, everything before the oldest, and, on a first page,
/// everything after the newest.
fn windows(loaded: &[i64], default_empty: bool, first_page: bool) -> Vec<Window> {
    if default_empty {
        return loaded.iter().map(|&index| Window::of(index)).collect();
    }
    let (Some(&newest), Some(&oldest)) = (loaded.first(), loaded.last()) else {
        return vec![Window {
            from: None,
            until: None,
        }];
    };
    let mut windows: Vec<Window> = (oldest..=newest).rev().map(Window::of).collect();
    if first_page {
        windows[0].until = None;
    }
    windows.push(Window {
        from: None,
        until: Some(window_start(oldest)),
    });
    windows
}

/// One page of `address`'s transfers older than `cursor`, read a window of
/// days at a time, newest first, until the page is full: a busy address's
/// page is read from the newest window alone, a rare address's from each
/// window in turn, each a small plan made once per session. Windows hold
/// disjoint stretches of time and a block belongs to one day, so every row
/// of a newer window sorts before every row of an older one and the
/// windows' rows, in order, are the page the single statement would give.
/// Each window runs as its own statement outside a transaction, so a page
/// never holds the locks of more than one window.
pub(super) async fn for_address_by_windows(
    pg: &PgReader,
    address: &str,
    direction: Direction,
    cursor: Option<&Cursor>,
    limit: u32,
) -> Result<TransferPage, QueryError> {
    let reader = pg.window_reader().await?;
    let found = reader
        .rows(
            WINDOWS,
            &[
                Param::Int(cursor.map(|c| c.block_number)),
                Param::int(WINDOW_DAYS),
            ],
        )
        .await?;
    let (default_empty, loaded) = match found.first() {
        Some(row) => (
            row.try_get::<_, bool>(0).map_err(classify)?,
            row.try_get::<_, Vec<i64>>(1).map_err(classify)?,
        ),
        None => (true, Vec::new()),
    };
    // One row more than asked tells whether another page exists.
    let wanted = limit as usize + 1;
    let mut rows = Vec::with_capacity(wanted);
    for window in windows(&loaded, default_empty, cursor.is_none()) {
        let params = transfers_params(address, direction, cursor, wanted - rows.len());
        let statement = transfers_statement(&window.condition());
        rows.extend(reader.records(&statement, &params).await?);
        if rows.len() >= wanted {
            break;
        }
    }
    transfer_page(&rows, address, direction, limit)
}

fn transfer_page(
    rows: &[Record],
    address: &str,
    direction: Direction,
    limit: u32,
) -> Result<TransferPage, QueryError> {
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
    fn windows_cover_loaded_days_and_with_stray_rows_all_time_once() {
        let day = |text: &str| Some(text.parse::<Day>().unwrap());
        // 2024-01-05 is in window 657, 2024-03-02 in 659.
        let loaded = [659, 657];
        assert_eq!(
            windows(&loaded, true, true),
            vec![Window::of(659), Window::of(657)]
        );
        assert_eq!(Window::of(657).from, day("2023-12-19"));
        assert_eq!(Window::of(657).until, day("2024-01-18"));
        assert_eq!(
            Window::of(657).condition(),
            " AND block_timestamp >= '2023-12-19 00:00:00+00' \
             AND block_timestamp < '2024-01-18 00:00:00+00'"
        );
        let everything = windows(&loaded, false, true);
        assert_eq!(everything.len(), 4);
        assert_eq!(everything[0].from, Window::of(659).from);
        assert_eq!(everything[0].until, None, "newer than the newest day");
        assert_eq!(everything[1], Window::of(658), "the gap");
        assert_eq!(everything[2], Window::of(657));
        assert_eq!(everything[3].from, None, "older than the oldest day");
        assert_eq!(everything[3].until, Window::of(657).from);
        // Past the first page, nothing newer than the cursor's window holds rows for it.
        assert_eq!(windows(&loaded, false, false)[0], Window::of(659));
        let all = Window {
            from: None,
            until: None,
        };
        assert_eq!(windows(&[], false, true), vec![all]);
        assert_eq!(all.condition(), "");
        assert!(windows(&[], true, true).is_empty());
    }

    #[test]
    fn directions_parse_and_default_to_both() {
        assert_eq!(Direction::parse(None).unwrap(), Direction::Both);
        assert_eq!(Direction::parse(Some("in")).unwrap(), Direction::In);
        let err = Direction::parse(Some("sideways")).unwrap_err();
        assert!(err.to_string().contains("invalid direction"), "{err}");
    }
}
