//! The server's reads of the data tables (`ethereum.*`; SQLite without the
//! schema), behind one trait with a PostgreSQL and a SQLite implementation.
//!
//! [`ReadStore`] holds every data read. Each statement is written once, in
//! PostgreSQL's spelling, and [`Dialect`] gives SQLite its own; each row is
//! mapped to its type once, from a [`Record`]. Two reads differ. A day's
//! top counterparties: PostgreSQL reads what the day's load kept for a busy
//! token and sums `numeric` values otherwise; SQLite cannot sum uint256
//! text, so it adds them exactly in Rust. An address's transfers:
//! PostgreSQL reads its day partitions a window of days at a time
//! ([`transfers::for_address_by_windows`]); SQLite has one table.
//!
//! [`Reader`] picks the store from the database URL and owns its
//! connections ([`connection`]: read-only sessions, statement timeout,
//! pool).
//!
//! - [`tokens`]: search, metadata, daily statistics, top senders/receivers.
//! - [`transfers`]: an address's transfers (keyset pages), a day's top tokens.

pub mod connection;
pub mod sql;
pub mod tokens;
pub mod transfers;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, RecyclingMethod};
use ethpipe_core::Day;
use ethpipe_sinks::DatabaseUrl;

pub use connection::{PgReader, QueryError, SqliteReader};
pub use sql::{Dialect, Param, Record};
pub use tokens::{Counterparty, DailyStat, Side, Token, TokenHit};
pub use transfers::{Cursor, DayOverview, DayToken, Direction, Transfer, TransferPage};

/// How long one read may run before the database cancels it.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);
/// PostgreSQL connections kept for reads.
pub const DEFAULT_POOL_SIZE: usize = 16;
/// PostgreSQL connections kept for the window statements of address pages
/// (`transfers.rs`). Each running window holds the locks of up to 30 day
/// partitions; this many at once stay well inside the server's lock table.
pub const WINDOW_POOL_SIZE: usize = 8;

/// What a store's read answers, later (boxed so the trait is object-safe).
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, QueryError>> + Send + 'a>>;

/// The data reads. A store provides [`ReadStore::fetch`] and the one read
/// its database does differently; every other read is written once here.
pub trait ReadStore: Send + Sync {
    fn dialect(&self) -> Dialect;

    /// Runs `sql` (PostgreSQL's spelling, see [`Dialect::statement`]) in a
    /// read-only transaction and returns its rows.
    fn fetch<'a>(&'a self, sql: &'a str, params: Vec<Param>) -> StoreFuture<'a, Vec<Record>>;

    /// (address, transfers, exact raw volume) of the `limit` addresses with
    /// the most transfers of `token` on `day`, most first, ties by address.
    fn top_counterparties<'a>(
        &'a self,
        token: &'a str,
        day: Day,
        side: Side,
        limit: u32,
    ) -> StoreFuture<'a, Vec<(String, i64, String)>>;

    fn token<'a>(&'a self, address: &'a str) -> StoreFuture<'a, Option<Token>> {
        Box::pin(tokens::token(self, address))
    }

    fn search_tokens<'a>(&'a self, text: &'a str, limit: u32) -> StoreFuture<'a, Vec<TokenHit>> {
        Box::pin(tokens::search(self, text, limit))
    }

    fn daily<'a>(
        &'a self,
        address: &'a str,
        from: Option<Day>,
        to: Option<Day>,
        limit: u32,
    ) -> StoreFuture<'a, Vec<DailyStat>> {
        Box::pin(tokens::daily(self, address, from, to, limit))
    }

    fn latest_day<'a>(&'a self, address: &'a str) -> StoreFuture<'a, Option<Day>> {
        Box::pin(tokens::latest_day(self, address))
    }

    fn transfers<'a>(
        &'a self,
        address: &'a str,
        direction: Direction,
        cursor: Option<&'a Cursor>,
        limit: u32,
    ) -> StoreFuture<'a, TransferPage> {
        Box::pin(transfers::for_address(
            self, address, direction, cursor, limit,
        ))
    }

    fn day_overview(&self, day: Day, limit: u32) -> StoreFuture<'_, DayOverview> {
        Box::pin(transfers::day_overview(self, day, limit))
    }
}

impl ReadStore for PgReader {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn fetch<'a>(&'a self, sql: &'a str, params: Vec<Param>) -> StoreFuture<'a, Vec<Record>> {
        Box::pin(async move { self.records(sql, &params).await })
    }

    fn top_counterparties<'a>(
        &'a self,
        token: &'a str,
        day: Day,
        side: Side,
        limit: u32,
    ) -> StoreFuture<'a, Vec<(String, i64, String)>> {
        Box::pin(tokens::top_summed_by_postgres(
            self, token, day, side, limit,
        ))
    }

    fn transfers<'a>(
        &'a self,
        address: &'a str,
        direction: Direction,
        cursor: Option<&'a Cursor>,
        limit: u32,
    ) -> StoreFuture<'a, TransferPage> {
        Box::pin(transfers::for_address_by_windows(
            self, address, direction, cursor, limit,
        ))
    }
}

impl ReadStore for SqliteReader {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn fetch<'a>(&'a self, sql: &'a str, params: Vec<Param>) -> StoreFuture<'a, Vec<Record>> {
        Box::pin(async move { self.records(Dialect::Sqlite.statement(sql), &params).await })
    }

    fn top_counterparties<'a>(
        &'a self,
        token: &'a str,
        day: Day,
        side: Side,
        limit: u32,
    ) -> StoreFuture<'a, Vec<(String, i64, String)>> {
        Box::pin(tokens::top_summed_in_rust(self, token, day, side, limit))
    }
}

/// Which database the tables are in.
pub enum Reader {
    Postgres(PgReader),
    Sqlite(SqliteReader),
}

/// Read-only sessions on `config` with `options` added.
fn read_pool(
    config: &tokio_postgres::Config,
    tls: &ethpipe_sinks::tls::PgTls,
    options: &str,
    size: usize,
) -> Result<deadpool_postgres::Pool, PoolSetupError> {
    let mut config = config.clone();
    let options = match config.get_options() {
        Some(existing) => format!("{existing} -c default_transaction_read_only=on{options}"),
        None => format!("-c default_transaction_read_only=on{options}"),
    };
    config.options(&options);
    config.application_name("ethpipe-server");
    config.connect_timeout(Duration::from_secs(5));
    let manager = Manager::from_config(
        config,
        tls.connector(),
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    deadpool_postgres::Pool::builder(manager)
        .max_size(size.max(1))
        .wait_timeout(Some(Duration::from_secs(10)))
        .create_timeout(Some(Duration::from_secs(5)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(PoolSetupError::Pool)
}

/// The read pool or the ledger's reader could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum PoolSetupError {
    #[error("cannot set up the PostgreSQL read pool: {0}")]
    Pool(#[source] deadpool_postgres::BuildError),
    #[error("cannot open the ledger for reading: {0}")]
    Ledger(#[source] ethpipe_sinks::ledger::LedgerError),
}

impl Reader {
    /// A reader over the database `url` names. Connects lazily: an
    /// unreachable PostgreSQL shows up as 503s and a failing `/readyz`.
    pub fn open(
        url: &DatabaseUrl,
        timeout: Duration,
        pool_size: usize,
    ) -> Result<Reader, PoolSetupError> {
        let ledger =
            ethpipe_sinks::ledger::open_read_only(url, timeout).map_err(PoolSetupError::Ledger)?;
        match url {
            DatabaseUrl::Postgres { config, tls, .. } => {
                // Reads run as single statements outside explicit
                // transactions: the sessions themselves are read-only and
                // carry the timeout.
                let timeout_option =
                    format!(" -c statement_timeout={}", timeout.as_millis().max(1));
                let pool = read_pool(config, tls, &timeout_option, pool_size)?;
                let windows = read_pool(
                    config,
                    tls,
                    &format!("{timeout_option} -c plan_cache_mode=force_generic_plan"),
                    WINDOW_POOL_SIZE,
                )?;
                Ok(Reader::Postgres(PgReader {
                    pool,
                    windows,
                    ledger,
                    timeout_ms: timeout.as_millis().max(1).to_string(),
                }))
            }
            DatabaseUrl::Sqlite { path } => Ok(Reader::Sqlite(SqliteReader {
                path: path.clone(),
                ledger,
                timeout,
            })),
            // Parquet files are read by DuckDB and friends, not by the server:
            // it shows their ledger, whose data tables stay empty.
            DatabaseUrl::Parquet { dir } => Ok(Reader::Sqlite(SqliteReader {
                path: DatabaseUrl::parquet_ledger(dir),
                ledger,
                timeout,
            })),
        }
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self, Reader::Sqlite(_))
    }

    /// The ledger, for reads of runs, steps, logs and triggers.
    pub fn ledger(&self) -> &dyn ethpipe_sinks::Ledger {
        match self {
            Reader::Postgres(pg) => &*pg.ledger,
            Reader::Sqlite(lite) => &*lite.ledger,
        }
    }

    /// The data reads of whichever store this is.
    pub fn store(&self) -> &dyn ReadStore {
        match self {
            Reader::Postgres(pg) => pg,
            Reader::Sqlite(lite) => lite,
        }
    }

    /// `SELECT 1` through the same path every read takes (for `/readyz`).
    pub async fn ping(&self) -> Result<(), QueryError> {
        match self {
            Reader::Postgres(pg) => pg.query("SELECT 1", &[]).await.map(|_| ()),
            Reader::Sqlite(lite) => {
                lite.read(|c| c.query_row("SELECT count(*) FROM ethpipe_runs", [], |_| Ok(())))
                    .await
            }
        }
    }
}

/// RFC 3339 in UTC with seconds, the one timestamp format the API returns.
pub fn timestamp(instant: chrono::DateTime<chrono::Utc>) -> String {
    instant.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// SQLite stores timestamps as RFC 3339 text; the API re-formats them.
pub(crate) fn sqlite_timestamp(text: Option<String>) -> Option<chrono::DateTime<chrono::Utc>> {
    text.and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// Raw integer amount scaled by the token's decimals, exactly (decimal text).
pub fn scaled(raw: Option<&str>, decimals: Option<&str>) -> Option<String> {
    let decimals: u32 = decimals?.parse().ok()?;
    ethpipe_core::decimal::scale(raw?, decimals)
}

/// Drops a decimal's trailing fractional zeros (`1.500` → `1.5`, `2.000` → `2`),
/// so both databases answer with the same text.
pub fn normalize_decimal(text: String) -> String {
    if !text.contains('.') {
        return text;
    }
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A LIKE pattern matching `text` anywhere, with LIKE's wildcards escaped
/// (the pattern is a bound parameter; the escape character is `\`).
pub(crate) fn contains_pattern(text: &str) -> String {
    format!("%{}%", escape_like(text))
}

pub(crate) fn prefix_pattern(text: &str) -> String {
    format!("{}%", escape_like(text))
}

fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(contains_pattern("a%b_c\\"), "%a\\%b\\_c\\\\%");
        assert_eq!(prefix_pattern("0xab"), "0xab%");
    }

    #[test]
    fn amounts_scale_exactly_or_not_at_all() {
        assert_eq!(scaled(Some("1500000"), Some("6")).as_deref(), Some("1.5"));
        assert_eq!(scaled(Some("1500000"), None), None);
        assert_eq!(scaled(Some("1"), Some("300")), None);
        assert_eq!(scaled(None, Some("6")), None);
    }

    #[test]
    fn decimals_lose_trailing_zeros_only() {
        assert_eq!(normalize_decimal("1.500".into()), "1.5");
        assert_eq!(normalize_decimal("2.000".into()), "2");
        assert_eq!(normalize_decimal("100".into()), "100");
    }
}
