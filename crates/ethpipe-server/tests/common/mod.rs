//! Shared set-up for the server's tests: the BigQuery-compatible test server
//! with fixture rows, a real database (PostgreSQL per test, or a SQLite file)
//! loaded through the real runner, and the HTTP server on an ephemeral port.
//! Also the rows read back out, for expectations computed in the tests.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use ethpipe_core::{Day, Pipeline, Scope, Source};
use ethpipe_orch::{Cancel, RunRequest};
use ethpipe_server::service::Actions;
use ethpipe_server::store::Reader;
use ethpipe_server::{Server, ServerConfig};
use ethpipe_sinks::{Database, DatabaseUrl};
use ethpipe_sources::bigquery::RetryPolicyConfig;
use ethpipe_sources::{BigQueryConfig, BigQuerySource, Credentials};
use ethpipe_testkit::fixtures::{self, day_transfers, FixtureToken, FixtureTransfer};
use ethpipe_testkit::{FakeBigQuery, ServiceAccount, TestDatabase};
use serde_json::Value;
use tempfile::TempDir;

pub const DAYS: [&str; 3] = ["2024-03-01", "2024-03-02", "2024-03-03"];
pub const TOKEN_DAYS: [&str; 3] = ["2024-02-01", "2024-02-02", "2024-02-03"];

/// An address that sends and receives many transfers (and one to itself).
pub fn whale() -> String {
    format!("0x{}", "5a".repeat(20))
}

/// An address with transfers but no row in `tokens`.
pub fn unknown_token() -> String {
    format!("0x{}", "0e".repeat(20))
}

pub fn fixture_tokens() -> Vec<FixtureToken> {
    fixtures::tokens(&TOKEN_DAYS)
}

/// Token addresses transfers are spread over: decimals 18 (redeployed), 6,
/// 0, unknown (not an integer), and an address with no token row.
pub fn token_addresses() -> Vec<String> {
    let tokens = fixture_tokens();
    vec![
        tokens[0].address.clone(),
        tokens[1].address.clone(),
        tokens[2].address.clone(),
        tokens[4].address.clone(),
        unknown_token(),
    ]
}

pub fn fixture_transfers(day: &str, count: usize) -> Vec<FixtureTransfer> {
    let tokens = token_addresses();
    let whale = whale();
    day_transfers(day, count, 3)
        .into_iter()
        .enumerate()
        .map(|(i, mut row)| {
            // Uneven token shares, so rankings have a clear order.
            row.token_address = tokens[[0, 1, 1, 2, 2, 2, 3, 4, 1, 2][i % 10]].clone();
            if i % 7 == 0 {
                row.from_address = Some(whale.clone());
            }
            if i % 11 == 0 {
                row.to_address = Some(whale.clone());
            }
            // A few repeat senders and receivers, so top lists have ties and leaders.
            if i % 5 == 1 {
                row.from_address = Some(format!("0x{}", "a1".repeat(20)));
            }
            if i % 6 == 2 {
                row.to_address = Some(format!("0x{}", "b2".repeat(20)));
            }
            row
        })
        .collect()
}

pub struct Env {
    pub bigquery: FakeBigQuery,
    pub dir: TempDir,
    pub pg: Option<TestDatabase>,
    pub url: DatabaseUrl,
    pub database: Arc<Database>,
    pub source: Arc<dyn Source>,
    pub base: String,
    pub http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

pub enum Backend {
    Postgres,
    Sqlite,
}

pub struct Options {
    pub backend: Backend,
    pub bind: &'static str,
    pub token: Option<&'static str>,
    /// Rows per fixture day.
    pub rows_per_day: usize,
    /// Load the fixture days before serving.
    pub load: bool,
    /// The days of transfers the source has (and that are loaded).
    pub days: &'static [&'static str],
}

impl Default for Options {
    fn default() -> Self {
        Options {
            backend: Backend::Postgres,
            bind: "127.0.0.1:0",
            token: None,
            rows_per_day: 240,
            load: true,
            days: &DAYS,
        }
    }
}

impl Env {
    pub async fn start(options: Options) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let email = "ethpipe-test@test-project.iam.gserviceaccount.com";
        let bigquery = FakeBigQuery::start(email).await.unwrap();
        let account = ServiceAccount::write(dir.path(), &bigquery.token_url()).unwrap();
        let mut transfers = Vec::new();
        for day in options.days {
            transfers.extend(fixture_transfers(day, options.rows_per_day));
        }
        bigquery.set_transfers(transfers);
        bigquery.set_tokens(fixture_tokens());
        let mut config = BigQueryConfig::new(Credentials::KeyFile(account.path.clone()));
        config.endpoint = Some(bigquery.endpoint());
        config.page_size = 64;
        config.retry = RetryPolicyConfig {
            attempts: 2,
            base_delay: Duration::from_millis(10),
        };
        let source: Arc<dyn Source> = Arc::new(BigQuerySource::connect(config).await.unwrap());
        let (pg, url) = match options.backend {
            Backend::Postgres => {
                let db = TestDatabase::create().await.unwrap();
                let url: DatabaseUrl = db.url.parse().unwrap();
                (Some(db), url)
            }
            Backend::Sqlite => {
                let path = dir.path().join("ethpipe.db");
                let url: DatabaseUrl = format!("sqlite://{}", path.display()).parse().unwrap();
                (None, url)
            }
        };
        let database = Arc::new(Database::open(&url).await.unwrap());
        if options.load {
            run(
                &database,
                source.as_ref(),
                ethpipe_core::datasets::TOKENS,
                DAYS[0],
            )
            .await;
            for day in options.days {
                run(
                    &database,
                    source.as_ref(),
                    ethpipe_core::datasets::TOKEN_TRANSFERS,
                    day,
                )
                .await;
            }
        }
        let reader = Reader::open(&url, Duration::from_secs(5), 4).unwrap();
        let actions = Arc::new(Actions::new(
            Arc::clone(&database),
            Ok(Arc::clone(&source)),
            HashMap::new(),
            Cancel::never(),
        ));
        let config = ServerConfig::new(
            options.bind.parse().unwrap(),
            options.token.map(str::to_string),
        )
        .unwrap();
        let server = Server::bind(config, reader, Some(actions)).await.unwrap();
        let port = server.local_addr().unwrap().port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        Env {
            bigquery,
            dir,
            pg,
            url,
            database,
            source,
            // Whatever the bind address, the tests talk to loopback only.
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            stop: Some(stop),
        }
    }

    pub async fn pg(&self) -> tokio_postgres::Client {
        self.pg
            .as_ref()
            .expect("a PostgreSQL test")
            .client()
            .await
            .unwrap()
    }

    pub fn sqlite_path(&self) -> std::path::PathBuf {
        self.dir.path().join("ethpipe.db")
    }

    /// GET, expecting `status`; returns the JSON body.
    pub async fn get(&self, path: &str, status: u16) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let code = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert_eq!(code, status, "GET {path}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    }

    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: &str,
        token: Option<&str>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = request.send().await.unwrap();
        let code = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            code,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Polls `GET path` until `done` holds for its body (bounded).
    pub async fn wait_for(&self, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..1500 {
            let body = self.get(path, 200).await;
            if done(&body) {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("timed out waiting for {what} at {path}");
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub async fn run(database: &Database, source: &dyn Source, pipeline: Pipeline, day: &str) {
    let day: Day = day.parse().unwrap();
    ethpipe_orch::run(
        database,
        source,
        RunRequest {
            pipeline,
            scope: Scope::Day(day),
            trigger: "manual".into(),
            filter: None,
            models: Vec::new(),
        },
        &(),
        &Cancel::never(),
    )
    .await
    .unwrap_or_else(|e| panic!("loading {pipeline} {day}: {e}"));
}

/// A transfer as the tests read it back from the database.
#[derive(Debug, Clone)]
pub struct Row {
    pub token: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub value: Option<String>,
    pub hash: String,
    pub log_index: i64,
    pub block_number: i64,
    pub day: String,
}

/// A token row: (address, block_number, symbol, name, decimals).
#[derive(Debug, Clone)]
pub struct TokenRow {
    pub address: String,
    pub block_number: i64,
    pub symbol: Option<String>,
    pub name: Option<String>,
    pub decimals: Option<String>,
}

/// Expected top counterparties of a token on a day.
pub fn expected_top(
    rows: &[Row],
    token: &str,
    day: &str,
    senders: bool,
    limit: usize,
) -> Vec<(String, i64, String)> {
    let mut totals: BTreeMap<String, (i64, String)> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.day == day && r.token == token) {
        let who = if senders { &r.from } else { &r.to };
        if let Some(who) = who {
            let e = totals.entry(who.clone()).or_insert_with(|| (0, "0".into()));
            e.0 += 1;
            if let Some(v) = &r.value {
                e.1 = add(&e.1, v);
            }
        }
    }
    let mut ranked: Vec<_> = totals.into_iter().map(|(a, (n, v))| (a, n, v)).collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    ranked.truncate(limit);
    ranked
}

/// Expected transfers of an address, newest first, by key.
pub fn expected_transfers(rows: &[Row], address: &str, direction: &str) -> Vec<(String, i64)> {
    let mut mine: Vec<&Row> = rows
        .iter()
        .filter(|r| {
            let out = r.from.as_deref() == Some(address);
            let inn = r.to.as_deref() == Some(address);
            match direction {
                "in" => inn,
                "out" => out,
                _ => inn || out,
            }
        })
        .collect();
    mine.sort_by(|a, b| {
        (b.block_number, &b.hash, b.log_index).cmp(&(a.block_number, &a.hash, a.log_index))
    });
    mine.iter().map(|r| (r.hash.clone(), r.log_index)).collect()
}

/// Every page of `address`'s transfers in `direction`, `limit` a page,
/// following `next_cursor` to the end; (hash, log index) of each, in order.
/// `check` sees every transfer as the API gave it.
pub async fn page_all(
    env: &Env,
    address: &str,
    direction: &str,
    limit: usize,
    mut check: impl FnMut(&Value),
) -> Vec<(String, i64)> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let mut path =
            format!("/api/v1/addresses/{address}/transfers?limit={limit}&direction={direction}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = env.get(&path, 200).await;
        let transfers = page["transfers"].as_array().unwrap();
        cursor = page["next_cursor"].as_str().map(str::to_string);
        // A page is short only when it is the last.
        if cursor.is_some() {
            assert_eq!(transfers.len(), limit, "{path}");
        }
        for t in transfers {
            check(t);
            seen.push((
                t["transaction_hash"].as_str().unwrap().to_string(),
                t["log_index"].as_i64().unwrap(),
            ));
        }
        if cursor.is_none() {
            return seen;
        }
    }
    panic!("paging {address} ({direction}) does not end");
}

pub async fn pg_rows(client: &tokio_postgres::Client) -> (Vec<Row>, Vec<TokenRow>) {
    let transfers = client
        .query(
            "SELECT token_address, from_address, to_address, value::text, transaction_hash, log_index,
                    block_number, (block_timestamp AT TIME ZONE 'UTC')::date::text
             FROM ethereum.token_transfers",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| Row {
            token: r.get(0),
            from: r.get(1),
            to: r.get(2),
            value: r.get(3),
            hash: r.get(4),
            log_index: r.get(5),
            block_number: r.get(6),
            day: r.get(7),
        })
        .collect();
    let tokens = client
        .query(
            "SELECT address, block_number, symbol, name, decimals::text FROM ethereum.tokens",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| TokenRow {
            address: r.get(0),
            block_number: r.get(1),
            symbol: r.get(2),
            name: r.get(3),
            decimals: r.get(4),
        })
        .collect();
    (transfers, tokens)
}

pub fn sqlite_rows(path: &std::path::Path) -> (Vec<Row>, Vec<TokenRow>) {
    let c = rusqlite::Connection::open(path).unwrap();
    let mut s = c
        .prepare(
            "SELECT token_address, from_address, to_address, value, transaction_hash, log_index,
                    block_number, substr(block_timestamp, 1, 10) FROM token_transfers",
        )
        .unwrap();
    let transfers = s
        .query_map([], |r| {
            Ok(Row {
                token: r.get(0)?,
                from: r.get(1)?,
                to: r.get(2)?,
                value: r.get(3)?,
                hash: r.get(4)?,
                log_index: r.get(5)?,
                block_number: r.get(6)?,
                day: r.get(7)?,
            })
        })
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let mut s = c
        .prepare("SELECT address, block_number, symbol, name, decimals FROM tokens")
        .unwrap();
    let tokens = s
        .query_map([], |r| {
            Ok(TokenRow {
                address: r.get(0)?,
                block_number: r.get(1)?,
                symbol: r.get(2)?,
                name: r.get(3)?,
                decimals: r.get(4)?,
            })
        })
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    (transfers, tokens)
}

/// Decimal-string sum, written for the tests (independent of the crate's).
pub fn add(a: &str, b: &str) -> String {
    let (a, b): (Vec<u8>, Vec<u8>) = (a.bytes().rev().collect(), b.bytes().rev().collect());
    let mut out = Vec::new();
    let mut carry = 0;
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).map_or(0, |d| d - b'0');
        let y = b.get(i).map_or(0, |d| d - b'0');
        let s = x + y + carry;
        out.push(b'0' + s % 10);
        carry = s / 10;
    }
    if carry > 0 {
        out.push(b'0' + carry);
    }
    while out.len() > 1 && out.last() == Some(&b'0') {
        out.pop();
    }
    out.reverse();
    String::from_utf8(out).unwrap()
}

/// `raw / 10^decimals` as trimmed decimal text; `None` when decimals is unknown.
pub fn scale(raw: &str, decimals: Option<&str>) -> Option<String> {
    let places: usize = decimals?.parse().ok()?;
    let mut digits = raw.to_string();
    while digits.len() <= places {
        digits.insert(0, '0');
    }
    let (whole, fraction) = digits.split_at(digits.len() - places);
    let whole = whole.trim_start_matches('0');
    let whole = if whole.is_empty() { "0" } else { whole };
    let fraction = fraction.trim_end_matches('0');
    Some(if fraction.is_empty() {
        whole.to_string()
    } else {
        format!("{whole}.{fraction}")
    })
}

/// The latest deployment of each token address.
pub fn latest_tokens(tokens: &[TokenRow]) -> HashMap<String, TokenRow> {
    let mut latest: HashMap<String, TokenRow> = HashMap::new();
    for t in tokens {
        match latest.get(&t.address) {
            Some(seen) if seen.block_number >= t.block_number => {}
            _ => {
                latest.insert(t.address.clone(), t.clone());
            }
        }
    }
    latest
}
