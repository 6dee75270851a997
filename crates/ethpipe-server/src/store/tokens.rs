//! Token reads: search, metadata (latest deployment), daily statistics from
//! `token_daily_stats`, and the top senders and receivers of one day.
//!
//! Amounts stay exact: raw sums are decimal text, and scaling by decimals is
//! done by `ethpipe_core::decimal`, never through floating point.

use std::collections::HashMap;

use ethpipe_core::{Day, Pipeline};
use ethpipe_sinks::postgres::day::COUNTERPARTIES_KEPT;
use serde::Serialize;
use utoipa::ToSchema;

use super::sql::{Cell, Param, Record};
use super::{
    contains_pattern, normalize_decimal, prefix_pattern, scaled, PgReader, QueryError, ReadStore,
    SqliteReader,
};

/// A token's metadata, from its latest deployment.
#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct Token {
    pub address: String,
    pub symbol: Option<String>,
    pub name: Option<String>,
    #[schema(pattern = r"^[0-9]+$")]
    pub decimals: Option<String>,
    #[schema(pattern = r"^[0-9]+$")]
    pub total_supply: Option<String>,
    /// `total_supply` scaled by decimals.
    #[schema(pattern = r"^[0-9]+(\.[0-9]+)?$")]
    pub total_supply_scaled: Option<String>,
    pub block_number: i64,
    #[schema(format = DateTime)]
    pub block_timestamp: String,
    /// Rows in `tokens` for the address (CREATE2 redeployments keep each).
    pub deployments: i64,
    /// The JSON-RPC source saw the address in transfers but not its creation.
    pub found_in_transfers: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct TokenHit {
    pub address: String,
    pub symbol: Option<String>,
    pub name: Option<String>,
    #[schema(pattern = r"^[0-9]+$")]
    pub decimals: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct DailyStat {
    #[schema(format = Date)]
    pub day: String,
    pub transfer_count: i64,
    pub unique_senders: i64,
    pub unique_receivers: i64,
    /// Exact sum of raw values.
    #[schema(pattern = r"^[0-9]+$")]
    pub volume_raw: String,
    /// `volume_raw` scaled by the token's decimals; `None` when unknown.
    #[schema(pattern = r"^[0-9]+(\.[0-9]+)?$")]
    pub volume: Option<String>,
}

/// An address among a token's top senders or receivers of a day.
#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct Counterparty {
    pub address: String,
    pub transfers: i64,
    #[schema(pattern = r"^[0-9]+$")]
    pub volume_raw: String,
    #[schema(pattern = r"^[0-9]+(\.[0-9]+)?$")]
    pub volume: Option<String>,
}

/// Which side of the transfers to rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Senders,
    Receivers,
}

impl Side {
    /// The column that names the side; one of two fixed names, never input.
    fn column(self) -> &'static str {
        match self {
            Side::Senders => "from_address",
            Side::Receivers => "to_address",
        }
    }

    /// The side's name in `token_daily_counterparties`.
    fn kept_as(self) -> &'static str {
        match self {
            Side::Senders => "sender",
            Side::Receivers => "receiver",
        }
    }
}

const TOKEN: &str = "
SELECT address, symbol, name, CAST(decimals AS TEXT), CAST(total_supply AS TEXT), block_number,
       block_timestamp, found_in_transfers,
       (SELECT count(*) FROM ethereum.tokens u WHERE u.address = t.address)
FROM ethereum.tokens t WHERE address = $1 ORDER BY block_number DESC LIMIT 1";

pub(super) async fn token<S: ReadStore + ?Sized>(
    store: &S,
    address: &str,
) -> Result<Option<Token>, QueryError> {
    let rows = store.fetch(TOKEN, vec![Param::text(address)]).await?;
    rows.first().map(token_row).transpose()
}

fn token_row(r: &Record) -> Result<Token, QueryError> {
    let decimals = r.opt_text(3)?;
    let total_supply = r.opt_text(4)?;
    Ok(Token {
        address: r.text(0)?,
        symbol: r.opt_text(1)?,
        name: r.opt_text(2)?,
        total_supply_scaled: scaled(total_supply.as_deref(), decimals.as_deref()),
        decimals,
        total_supply,
        block_number: r.int(5)?,
        block_timestamp: r.instant(6)?,
        found_in_transfers: r.bool(7)?,
        deployments: r.int(8)?,
    })
}

/// Latest deployments whose symbol or name contains the text (any ASCII
/// case), or whose address starts with it (`$1`, set only for hex text);
/// exact symbol matches first, then symbol prefixes, then shorter symbols.
const SEARCH: &str = r"
SELECT address, symbol, name, CAST(decimals AS TEXT) FROM ethereum.tokens_latest
WHERE CASE WHEN CAST($1 AS TEXT) IS NOT NULL THEN address LIKE $1 ESCAPE '\'
           ELSE lower(symbol) LIKE lower($2) ESCAPE '\' OR lower(name) LIKE lower($2) ESCAPE '\' END
ORDER BY coalesce(lower(symbol) = lower($3), false) DESC,
         coalesce(lower(symbol) LIKE lower($4) ESCAPE '\', false) DESC,
         symbol IS NULL, length(symbol), symbol, address
LIMIT $5";

/// Tokens whose symbol or name contains `text` (case-insensitive), or whose
/// address starts with it; exact symbol matches first, then symbol prefixes.
pub(super) async fn search<S: ReadStore + ?Sized>(
    store: &S,
    text: &str,
    limit: u32,
) -> Result<Vec<TokenHit>, QueryError> {
    let lowered = text.to_ascii_lowercase();
    let is_hex = lowered.len() > 2
        && lowered.starts_with("0x")
        && lowered.as_bytes()[2..].iter().all(u8::is_ascii_hexdigit);
    let params = vec![
        Param::Text(is_hex.then(|| prefix_pattern(&lowered))),
        Param::text(contains_pattern(text)),
        Param::text(text),
        Param::text(prefix_pattern(text)),
        Param::int(limit),
    ];
    let rows = store.fetch(SEARCH, params).await?;
    rows.iter()
        .map(|r| {
            Ok(TokenHit {
                address: r.text(0)?,
                symbol: r.opt_text(1)?,
                name: r.opt_text(2)?,
                decimals: r.opt_text(3)?,
            })
        })
        .collect()
}

/// `CAST($2 AS DATE) IS NULL` only tests for "no bound": it gives
/// PostgreSQL the parameter's type, and SQLite compares the day as text.
const DAILY: &str = "
SELECT CAST(day AS TEXT), transfer_count, unique_senders, unique_receivers,
       CAST(volume_raw AS TEXT), CAST(volume AS TEXT)
FROM ethereum.token_daily_stats
WHERE token_address = $1 AND (CAST($2 AS DATE) IS NULL OR day >= $2)
  AND (CAST($3 AS DATE) IS NULL OR day <= $3)
ORDER BY day DESC LIMIT $4";

/// The newest `limit` days of statistics within the optional bounds, oldest first.
pub(super) async fn daily<S: ReadStore + ?Sized>(
    store: &S,
    address: &str,
    from: Option<Day>,
    to: Option<Day>,
    limit: u32,
) -> Result<Vec<DailyStat>, QueryError> {
    let params = vec![
        Param::text(address),
        Param::Date(from),
        Param::Date(to),
        Param::int(limit),
    ];
    let rows = store.fetch(DAILY, params).await?;
    let mut stats = rows
        .iter()
        .map(|r| {
            Ok(DailyStat {
                day: r.text(0)?,
                transfer_count: r.int(1)?,
                unique_senders: r.int(2)?,
                unique_receivers: r.int(3)?,
                volume_raw: r.text(4)?,
                volume: r.opt_text(5)?.map(normalize_decimal),
            })
        })
        .collect::<Result<Vec<_>, QueryError>>()?;
    stats.reverse();
    Ok(stats)
}

const LATEST_DAY: &str =
    "SELECT CAST(max(day) AS TEXT) FROM ethereum.token_daily_stats WHERE token_address = $1";

/// The latest day the token has statistics for.
pub(super) async fn latest_day<S: ReadStore + ?Sized>(
    store: &S,
    address: &str,
) -> Result<Option<Day>, QueryError> {
    let rows = store.fetch(LATEST_DAY, vec![Param::text(address)]).await?;
    let text = match rows.first() {
        Some(row) => row.opt_text(0)?,
        None => None,
    };
    Ok(text.and_then(|t| t.parse().ok()))
}

/// The first and last UTC day a pipeline's table covers (by its day
/// column; for tokens, the days they were created), or `None` when empty.
/// Both ends come from the day column's index.
pub async fn day_range(
    store: &dyn ReadStore,
    pipeline: Pipeline,
) -> Result<Option<(String, String)>, QueryError> {
    let column = pipeline.dataset().day_column();
    let sql = format!(
        "SELECT min({column}), max({column}) FROM ethereum.{}",
        pipeline.name()
    );
    let rows = store.fetch(&sql, Vec::new()).await?;
    let Some(row) = rows
        .first()
        .filter(|row| row.0.first() != Some(&Cell::Null))
    else {
        return Ok(None);
    };
    // `instant` is RFC 3339 in UTC, so its first ten characters are the day.
    let day = |column| {
        row.instant(column)
            .map(|at| at.get(..10).unwrap_or(&at).to_string())
    };
    Ok(Some((day(0)?, day(1)?)))
}

/// A busy token's day, ranked by its load (`$4` at most
/// [`COUNTERPARTIES_KEPT`]).
const KEPT_COUNTERPARTIES: &str = "
SELECT address, transfers, CAST(volume_raw AS TEXT)
FROM ethereum.token_daily_counterparties
WHERE day = $1 AND token_address = $2 AND side = $3
ORDER BY rank LIMIT $4";

/// PostgreSQL: the counterparties the day's load kept, for a token with
/// more than [`COUNTERPARTY_TOKEN_MIN_TRANSFERS`] transfers that day;
/// otherwise (fewer rows than that to read, or a day loaded before the
/// table existed) the day's rows ranked and summed in the statement.
///
/// [`COUNTERPARTY_TOKEN_MIN_TRANSFERS`]: ethpipe_sinks::postgres::day::COUNTERPARTY_TOKEN_MIN_TRANSFERS
pub(super) async fn top_summed_by_postgres(
    pg: &PgReader,
    token: &str,
    day: Day,
    side: Side,
    limit: u32,
) -> Result<Vec<(String, i64, String)>, QueryError> {
    let triple = |r: &Record| Ok((r.text(0)?, r.int(1)?, r.text(2)?));
    if i64::from(limit) <= COUNTERPARTIES_KEPT {
        let params = [
            Param::Date(Some(day)),
            Param::text(token),
            Param::text(side.kept_as()),
            Param::int(limit),
        ];
        let kept = pg.records(KEPT_COUNTERPARTIES, &params).await?;
        if !kept.is_empty() {
            return kept.iter().map(triple).collect();
        }
    }
    let column = side.column();
    let sql = format!(
        "SELECT {column}, count(*), CAST(coalesce(sum(value), 0) AS TEXT)
         FROM ethereum.token_transfers
         WHERE token_address = $1 AND block_timestamp >= $2 AND block_timestamp < $3
           AND {column} IS NOT NULL
         GROUP BY {column} ORDER BY count(*) DESC, {column} LIMIT $4"
    );
    let params = [
        Param::text(token),
        Param::Instant(day.start()),
        Param::Instant(day.end()),
        Param::int(limit),
    ];
    let rows = pg.records(&sql, &params).await?;
    rows.iter().map(triple).collect()
}

/// SQLite cannot sum uint256 text: the day's rows are added up here, exactly.
pub(super) async fn top_summed_in_rust(
    lite: &SqliteReader,
    token: &str,
    day: Day,
    side: Side,
    limit: u32,
) -> Result<Vec<(String, i64, String)>, QueryError> {
    let column = side.column();
    let sql = format!(
        "SELECT {column}, CAST(value AS TEXT) FROM token_transfers
         WHERE token_address = ?1 AND block_timestamp >= ?2 AND block_timestamp < ?3
           AND {column} IS NOT NULL"
    );
    let params = [
        Param::text(token),
        Param::Instant(day.start()),
        Param::Instant(day.end()),
    ];
    let rows = lite.records(sql, &params).await?;
    let mut totals: HashMap<String, (i64, String)> = HashMap::new();
    for row in &rows {
        let entry = totals
            .entry(row.text(0)?)
            .or_insert_with(|| (0, "0".to_string()));
        entry.0 += 1;
        if let Some(value) = row.opt_text(1)? {
            entry.1 = ethpipe_core::decimal::add(&entry.1, &value);
        }
    }
    let mut ranked: Vec<(String, i64, String)> =
        totals.into_iter().map(|(a, (n, v))| (a, n, v)).collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    ranked.truncate(limit as usize);
    Ok(ranked)
}
