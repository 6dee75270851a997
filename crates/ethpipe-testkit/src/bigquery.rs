//! A BigQuery-compatible REST server for tests, speaking the real wire format
//! so that ethpipe's production client is what gets exercised:
//!
//! - `POST /token`: the OAuth 2.0 JWT-bearer grant. The assertion's RS256
//!   signature is checked against the test key, with `iss`, `aud` (this
//!   endpoint) and the BigQuery `scope`.
//! - `POST /bigquery/v2/projects/{project}/queries` (jobs.query) and
//!   `GET /bigquery/v2/projects/{project}/queries/{jobId}` (jobs.getQueryResults)
//!   with `maxResults`/`pageToken`, `jobComplete: false` while a job "runs",
//!   typed rows `{"f":[{"v":…}]}` with legacy type names, TIMESTAMP as int64
//!   microseconds when `formatOptions.useInt64Timestamp` is set and as float
//!   seconds text otherwise, and BigQuery's error JSON.
//!
//! The "query engine" understands exactly the queries ethpipe sends: a table
//! (`token_transfers`, `tokens`, or `logs` with its REPEATED `topics` column,
//! `{"v":[{"v":"0x…"},…]}` on the wire), an optional `@day` DATE parameter
//! that filters on the UTC day of `block_timestamp`, for `logs` an optional
//! `@topics` ARRAY<STRING> parameter that keeps the logs whose topic0 is one
//! of its values (`topics[SAFE_OFFSET(0)] IN UNNEST(@topics)`), an optional
//! `@tokens` ARRAY<STRING> that keeps the rows whose token column is one of
//! its values (`token_address IN UNNEST(@tokens)`, `address …`), and
//! `COUNT(*)`. Every request body is recorded ([`FakeBigQuery::queries`]).
//!
//! Publication: ethpipe asks, before reading a day, for the earliest row
//! after the day's end (`SELECT MIN(block_timestamp) AS first_after …`, the
//! next day's partition). The server answers it from its rows, and by
//! default as a dataset that has published every day it is asked about
//! (tests load days, today's included, whose later data is simply not part
//! of their fixture). [`FakeBigQuery::publish_through`] makes
//! it a dataset that has published only up to an instant — rows after it
//! are hidden from every query, and the day they fall on is partial with
//! nothing after it — and [`FakeBigQuery::publish_all`] publishes the rest.
//! These checks are recorded apart ([`FakeBigQuery::publication_checks`])
//! and [`Faults`] leave them alone: the faults model the extraction.
//!
//! Faults are set per test through [`Faults`].
//!
//! For benchmarks, [`FakeBigQuery::set_transfer_generator`] serves
//! `token_transfers` from a [`TransferGenerator`] instead of stored rows: each
//! page is generated when it is asked for and written straight to JSON, so a
//! day of millions of rows is never held in the server's memory.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::fixtures::{FixtureToken, FixtureTransfer};
use crate::logs::FixtureLog;

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const BIGQUERY_SCOPE: &str = "https://www.googleapis.com/auth/bigquery";

/// Faults a test can switch on and off while the server runs.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Largest page the server returns, whatever `maxResults` asks.
    pub page_size_cap: Option<usize>,
    /// Abort the response body of this page (1-based) mid-stream, `times` times
    /// (`u32::MAX` = always).
    pub drop_connection_on_page: Option<(usize, u32)>,
    /// Answer this page with an HTTP status (429, 500, …) `times` times.
    pub status_on_page: Option<(usize, u16, u32)>,
    /// `jobComplete: false` answers before a job completes.
    pub incomplete_polls: u32,
    /// Refuse every query with (HTTP status, reason, message).
    pub query_error: Option<(u16, String, String)>,
    /// Refuse the next `times` queries with (HTTP status, reason, times),
    /// then answer as usual (e.g. 403 `rateLimitExceeded` that passes).
    pub refuse_queries: Option<(u16, String, u32)>,
    /// Replace a transfer cell (row index, column index, value) in results.
    pub corrupt_transfer_cell: Option<(usize, usize, Option<String>)>,
    /// Wait this long before answering each page (a slow server).
    pub page_delay: Option<std::time::Duration>,
    /// Refuse queries on this table (`token_transfers`, `tokens`, `logs`) with this HTTP status.
    pub fail_table: Option<(String, u16)>,
}

/// A jobs.query request as the server received it.
#[derive(Debug, Clone)]
pub struct RecordedQuery {
    pub body: Value,
}

impl RecordedQuery {
    /// The SQL text.
    pub fn sql(&self) -> &str {
        self.body
            .get("query")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// The query parameter called `name`, as sent (`{name, parameterType,
    /// parameterValue}`).
    pub fn parameter(&self, name: &str) -> Option<&Value> {
        parameter(&self.body, name)
    }

    /// A scalar parameter's type and value, e.g. `("DATE", "2024-03-01")`.
    pub fn scalar_parameter(&self, name: &str) -> Option<(&str, &str)> {
        let p = self.parameter(name)?;
        let kind = p.pointer("/parameterType/type")?.as_str()?;
        let value = p.pointer("/parameterValue/value")?.as_str()?;
        Some((kind, value))
    }

    /// An ARRAY<STRING> parameter's values; `None` when it is absent or of
    /// another type.
    pub fn string_array_parameter(&self, name: &str) -> Option<Vec<String>> {
        string_array_values(self.parameter(name)?).ok()
    }
}

type Schema = Vec<Field>;
type Cells = Vec<Cell>;

/// `token_transfers` rows made on demand (benchmarks): a day's rows have a
/// fixed order and any slice of them can be produced without the rest.
pub trait TransferGenerator: Send + Sync {
    /// Start (Unix microseconds) of each UTC day that has rows, in order.
    fn days(&self) -> Vec<i64>;
    /// How many rows the day starting at `day_start_micros` has.
    fn rows_in_day(&self, day_start_micros: i64) -> usize;
    /// Rows `range` of that day.
    fn day_rows(
        &self,
        day_start_micros: i64,
        range: std::ops::Range<usize>,
    ) -> Vec<FixtureTransfer>;
}

/// A result served from a [`TransferGenerator`]: the days it covers and
/// their row counts.
struct GeneratedRows {
    generator: Arc<dyn TransferGenerator>,
    days: Vec<(i64, usize)>,
}

impl GeneratedRows {
    fn total(&self) -> usize {
        self.days.iter().map(|(_, n)| n).sum()
    }

    /// Result rows `offset..end`, across day boundaries.
    fn rows(&self, mut offset: usize, end: usize) -> Vec<FixtureTransfer> {
        let mut out = Vec::with_capacity(end.saturating_sub(offset));
        let mut first = 0;
        for &(day, count) in &self.days {
            let last = first + count;
            if offset < end && offset < last && end > first {
                let to = end.min(last);
                out.extend(self.generator.day_rows(day, offset - first..to - first));
                offset = to;
            }
            first = last;
        }
        out
    }
}

#[derive(Default)]
struct Job {
    /// Rows as cells, already filtered; TIMESTAMP cells hold microseconds.
    rows: Vec<Cells>,
    /// Set instead of `rows` when the result comes from a generator.
    generated: Option<GeneratedRows>,
    schema: Schema,
    polls_left: u32,
}

impl Job {
    fn total(&self) -> usize {
        self.generated
            .as_ref()
            .map_or(self.rows.len(), GeneratedRows::total)
    }
}

#[derive(Default)]
struct Inner {
    transfers: Vec<FixtureTransfer>,
    transfer_generator: Option<Arc<dyn TransferGenerator>>,
    tokens: Vec<FixtureToken>,
    logs: Vec<FixtureLog>,
    faults: Faults,
    queries: Vec<RecordedQuery>,
    page_requests: Vec<HashMap<String, String>>,
    jobs: HashMap<String, Job>,
    next_job: u64,
    issued_tokens: Vec<String>,
    token_exchanges: u32,
    /// Rows at or after this instant (Unix microseconds) are not published yet.
    published_before: Option<i64>,
    publication_checks: Vec<RecordedQuery>,
}

#[derive(Clone)]
struct Shared {
    inner: Arc<Mutex<Inner>>,
    token_url: Arc<String>,
    client_email: Arc<String>,
    public_key_pem: Arc<String>,
}

pub struct FakeBigQuery {
    pub addr: SocketAddr,
    shared: Shared,
    _server: tokio::task::JoinHandle<()>,
}

impl FakeBigQuery {
    /// Starts on an ephemeral port; accepts tokens signed by the test key for `client_email`.
    pub async fn start(client_email: &str) -> anyhow::Result<FakeBigQuery> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Shared {
            inner: Arc::new(Mutex::new(Inner::default())),
            token_url: Arc::new(format!("http://{addr}/token")),
            client_email: Arc::new(client_email.to_string()),
            public_key_pem: Arc::new(crate::keys::key_pair().public_pem.clone()),
        };
        let app = Router::new()
            .route("/token", post(token))
            .route("/bigquery/v2/projects/{project}/queries", post(jobs_query))
            .route(
                "/bigquery/v2/projects/{project}/queries/{job_id}",
                get(get_query_results),
            )
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FakeBigQuery {
            addr,
            shared,
            _server: server,
        })
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn token_url(&self) -> String {
        self.shared.token_url.to_string()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.shared.inner.lock().expect("fake BigQuery state"))
    }

    pub fn set_transfers(&self, rows: Vec<FixtureTransfer>) {
        self.with(|s| {
            s.transfers = rows;
            s.transfer_generator = None;
        });
    }

    pub fn add_transfers(&self, rows: Vec<FixtureTransfer>) {
        self.with(|s| s.transfers.extend(rows));
    }

    /// Serves `token_transfers` from `generator` (replacing stored rows):
    /// pages are generated on request, for benchmarks with millions of rows.
    /// `corrupt_transfer_cell` does not apply to generated rows; the other
    /// faults do.
    pub fn set_transfer_generator(&self, generator: Arc<dyn TransferGenerator>) {
        self.with(|s| {
            s.transfers.clear();
            s.transfer_generator = Some(generator);
        });
    }

    pub fn set_tokens(&self, rows: Vec<FixtureToken>) {
        self.with(|s| s.tokens = rows);
    }

    /// The rows of the `logs` table (`crypto_ethereum.logs`), e.g. from
    /// [`crate::logs::node_logs`].
    pub fn set_logs(&self, rows: Vec<FixtureLog>) {
        self.with(|s| s.logs = rows);
    }

    pub fn add_logs(&self, rows: Vec<FixtureLog>) {
        self.with(|s| s.logs.extend(rows));
    }

    /// From now on the dataset has published only the rows before
    /// `micros` (Unix microseconds): later rows are hidden, and no day at or
    /// after it counts as published.
    pub fn publish_through(&self, micros: i64) {
        self.with(|s| s.published_before = Some(micros));
    }

    /// Publishes every row and every day (the default).
    pub fn publish_all(&self) {
        self.with(|s| s.published_before = None);
    }

    /// The publication checks ethpipe made, oldest first.
    pub fn publication_checks(&self) -> Vec<RecordedQuery> {
        self.with(|s| s.publication_checks.clone())
    }

    pub fn set_faults(&self, faults: Faults) {
        self.with(|s| s.faults = faults);
    }

    pub fn queries(&self) -> Vec<RecordedQuery> {
        self.with(|s| s.queries.clone())
    }

    /// Query strings of every getQueryResults call.
    pub fn page_requests(&self) -> Vec<HashMap<String, String>> {
        self.with(|s| s.page_requests.clone())
    }

    pub fn token_exchanges(&self) -> u32 {
        self.with(|s| s.token_exchanges)
    }

    /// An access token from this server's token endpoint, obtained the way a
    /// client does (a JWT signed with the test key), for tests that call
    /// the REST API themselves.
    pub async fn access_token(&self) -> anyhow::Result<String> {
        let now = chrono::Utc::now().timestamp();
        let claims = json!({
            "iss": *self.shared.client_email,
            "aud": self.token_url(),
            "scope": BIGQUERY_SCOPE,
            "iat": now,
            "exp": now + 3600,
        });
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(
            crate::keys::key_pair().private_pem.as_bytes(),
        )?;
        let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        let assertion = jsonwebtoken::encode(&header, &claims, &key)?;
        let response: Value = reqwest::Client::new()
            .post(self.token_url())
            .form(&[
                ("grant_type", JWT_BEARER),
                ("assertion", assertion.as_str()),
            ])
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        response["access_token"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow::anyhow!("no access_token in {response}"))
    }
}

fn error(status: u16, reason: &str, message: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({
        "error": {
            "code": status,
            "message": message,
            "errors": [{ "message": message, "domain": "global", "reason": reason }],
            "status": match status {
                400 => "INVALID_ARGUMENT",
                401 => "UNAUTHENTICATED",
                403 => "PERMISSION_DENIED",
                404 => "NOT_FOUND",
                429 => "RESOURCE_EXHAUSTED",
                _ => "INTERNAL",
            }
        }
    });
    (code, Json(body)).into_response()
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: String,
    assertion: String,
}

#[derive(Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    scope: String,
    exp: i64,
    iat: i64,
}

/// Checks an RS256 JWT the way Google's token endpoint does. Segments may
/// carry base64 padding (yup-oauth2 sends it, Google accepts it), so the
/// signature is verified over the segments exactly as sent.
fn verify_assertion(assertion: &str, key: &jsonwebtoken::DecodingKey) -> Result<Claims, String> {
    use base64::Engine;
    let parts: Vec<&str> = assertion.split('.').collect();
    let [header, payload, signature] = parts[..] else {
        return Err("not a JWT".into());
    };
    let decode = |segment: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(segment.trim_end_matches('='))
            .map_err(|e| format!("base64: {e}"))
    };
    let header: serde_json::Value =
        serde_json::from_slice(&decode(header)?).map_err(|e| e.to_string())?;
    if header["alg"] != "RS256" {
        return Err(format!("alg {} is not RS256", header["alg"]));
    }
    let signed = &assertion[..assertion.rfind('.').unwrap_or(0)];
    let valid = jsonwebtoken::crypto::verify(
        signature.trim_end_matches('='),
        signed.as_bytes(),
        key,
        jsonwebtoken::Algorithm::RS256,
    )
    .map_err(|e| e.to_string())?;
    if !valid {
        return Err("signature does not match the service account's key".into());
    }
    serde_json::from_slice(&decode(payload)?).map_err(|e| format!("claims: {e}"))
}

async fn token(State(shared): State<Shared>, Form(form): Form<TokenForm>) -> Response {
    if form.grant_type != JWT_BEARER {
        return oauth_error("unsupported_grant_type", "expected the JWT-bearer grant");
    }
    let Ok(key) = jsonwebtoken::DecodingKey::from_rsa_pem(shared.public_key_pem.as_bytes()) else {
        return oauth_error("server_error", "test key unreadable");
    };
    let claims = match verify_assertion(&form.assertion, &key) {
        Ok(claims) => claims,
        Err(e) => {
            return oauth_error(
                "invalid_grant",
                &format!("Invalid JWT Signature or claims: {e}"),
            )
        }
    };
    let now = chrono::Utc::now().timestamp();
    if claims.iss != *shared.client_email
        || claims.aud != *shared.token_url
        || claims.exp < now
        || claims.iat > now + 60
    {
        return oauth_error(
            "invalid_grant",
            "Invalid JWT: iss, aud, iat or exp is wrong",
        );
    }
    if !claims.scope.split(' ').any(|s| s == BIGQUERY_SCOPE) {
        return oauth_error("invalid_scope", "the BigQuery scope was not requested");
    }
    let mut inner = shared.inner.lock().expect("state");
    inner.token_exchanges += 1;
    let access_token = format!("ya29.test-{}", inner.token_exchanges);
    inner.issued_tokens.push(access_token.clone());
    Json(json!({ "access_token": access_token, "expires_in": 3599, "token_type": "Bearer" }))
        .into_response()
}

fn oauth_error(code: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": code, "error_description": description })),
    )
        .into_response()
}

fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let inner = shared.inner.lock().expect("state");
    presented.is_some_and(|t| inner.issued_tokens.iter().any(|issued| issued == t))
}

async fn jobs_query(
    State(shared): State<Shared>,
    Path(project): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !authorized(&shared, &headers) {
        return error(
            401,
            "authError",
            "Request had invalid authentication credentials.",
        );
    }
    let mut inner = shared.inner.lock().expect("state");
    if is_publication_check(&body) {
        return answer_publication_check(&mut inner, &project, body);
    }
    inner.queries.push(RecordedQuery { body: body.clone() });
    if let Some((status, reason, message)) = inner.faults.query_error.clone() {
        return error(status, &reason, &message);
    }
    if let Some((status, reason, times)) = inner.faults.refuse_queries.clone() {
        if times > 0 {
            inner.faults.refuse_queries = Some((status, reason.clone(), times - 1));
            return error(status, &reason, &format!("injected {reason}"));
        }
    }
    if let Some((table, status)) = inner.faults.fail_table.clone() {
        let sql = body
            .get("query")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if sql.contains(&format!(".{table}`")) {
            return error(status, "backendError", "injected table fault");
        }
    }
    // Absent useLegacySql means legacy SQL, which cannot parse `@day` or backticks.
    if body.get("useLegacySql") != Some(&Value::Bool(false)) {
        return error(
            400,
            "invalidQuery",
            "Encountered \" \"@\" \"@ \"\" (legacy SQL)",
        );
    }
    let job = match plan(&inner, &body) {
        Ok(job) => job,
        Err(message) => return error(400, "invalidQuery", &message),
    };
    inner.next_job += 1;
    let job_id = format!("job_test_{}", inner.next_job);
    let polls = inner.faults.incomplete_polls;
    inner.jobs.insert(
        job_id.clone(),
        Job {
            polls_left: polls,
            ..job
        },
    );
    let max_results = body
        .get("maxResults")
        .and_then(Value::as_u64)
        .map(|n| n as usize);
    let int64 = body
        .pointer("/formatOptions/useInt64Timestamp")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    respond_page(
        &mut inner,
        &project,
        &job_id,
        None,
        max_results,
        int64,
        "bigquery#queryResponse",
    )
}

#[derive(Deserialize)]
struct PageParams {
    #[serde(rename = "pageToken")]
    page_token: Option<String>,
    #[serde(rename = "maxResults")]
    max_results: Option<usize>,
    #[serde(rename = "formatOptions.useInt64Timestamp")]
    use_int64_timestamp: Option<bool>,
}

async fn get_query_results(
    State(shared): State<Shared>,
    Path((project, job_id)): Path<(String, String)>,
    Query(raw): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&shared, &headers) {
        return error(
            401,
            "authError",
            "Request had invalid authentication credentials.",
        );
    }
    let params: PageParams = match serde_json::to_value(&raw).and_then(|v| {
        // Query strings are text; coerce the typed ones.
        let mut v = v;
        if let Some(n) = raw.get("maxResults").and_then(|s| s.parse::<u64>().ok()) {
            v["maxResults"] = json!(n);
        }
        if let Some(b) = raw.get("formatOptions.useInt64Timestamp") {
            v["formatOptions.useInt64Timestamp"] = json!(b == "true");
        }
        serde_json::from_value(v)
    }) {
        Ok(p) => p,
        Err(e) => return error(400, "invalid", &format!("bad parameters: {e}")),
    };
    let delay = shared.inner.lock().expect("state").faults.page_delay;
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let mut inner = shared.inner.lock().expect("state");
    inner.page_requests.push(raw);
    if !inner.jobs.contains_key(&job_id) {
        return error(
            404,
            "notFound",
            &format!("Not found: Job {project}:{job_id}"),
        );
    }
    respond_page(
        &mut inner,
        &project,
        &job_id,
        params.page_token,
        params.max_results,
        params.use_int64_timestamp.unwrap_or(false),
        "bigquery#getQueryResultsResponse",
    )
}

const FIRST_AFTER_SCHEMA: [Field; 1] = [Field::nullable("first_after", "TIMESTAMP")];

fn is_publication_check(body: &Value) -> bool {
    body.get("query")
        .and_then(Value::as_str)
        .is_some_and(|sql| sql.contains("MIN(block_timestamp) AS first_after"))
}

/// The earliest published row in the day after `@day`; by default (every
/// day published) at the latest that day's midnight.
fn answer_publication_check(inner: &mut Inner, project: &str, body: Value) -> Response {
    inner
        .publication_checks
        .push(RecordedQuery { body: body.clone() });
    let sql = body
        .get("query")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let day = match day_parameter(&body, sql) {
        Ok(Some(day)) => day,
        Ok(None) => return error(400, "invalidQuery", "Query parameter 'day' not found"),
        Err(message) => return error(400, "invalidQuery", &message),
    };
    let (from, to) = (day + DAY_MICROS, day + 2 * DAY_MICROS);
    let table = if sql.contains(".logs`") {
        inner
            .logs
            .iter()
            .map(|l| l.block_timestamp_micros)
            .collect::<Vec<_>>()
    } else {
        inner
            .transfers
            .iter()
            .map(|t| t.block_timestamp_micros)
            .collect()
    };
    let published = |micros: i64| inner.published_before.is_none_or(|before| micros < before);
    let present = inner.published_before.is_none().then_some(from);
    let first_after = table
        .into_iter()
        .filter(|&micros| micros >= from && micros < to && published(micros))
        .chain(present)
        .min();
    inner.next_job += 1;
    let job_id = format!("job_test_{}", inner.next_job);
    inner.jobs.insert(
        job_id.clone(),
        Job {
            rows: vec![vec![first_after.map(|m| m.to_string()).into()]],
            schema: FIRST_AFTER_SCHEMA.to_vec(),
            ..Job::default()
        },
    );
    let int64 = body
        .pointer("/formatOptions/useInt64Timestamp")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    respond_page(
        inner,
        project,
        &job_id,
        None,
        None,
        int64,
        "bigquery#queryResponse",
    )
}

/// A column of a result's schema, as `schema.fields[]` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Field {
    name: &'static str,
    /// The legacy type name (`STRING`, `INTEGER`, `TIMESTAMP`).
    kind: &'static str,
    /// `REPEATED` (an array) instead of `NULLABLE`.
    repeated: bool,
}

impl Field {
    const fn nullable(name: &'static str, kind: &'static str) -> Field {
        Field {
            name,
            kind,
            repeated: false,
        }
    }

    const fn repeated(name: &'static str, kind: &'static str) -> Field {
        Field {
            name,
            kind,
            repeated: true,
        }
    }

    fn to_json(self) -> Value {
        let mode = if self.repeated {
            "REPEATED"
        } else {
            "NULLABLE"
        };
        json!({ "name": self.name, "type": self.kind, "mode": mode })
    }

    /// A value of this column as the wire shows it: TIMESTAMP as int64
    /// microseconds or as legacy float-seconds text.
    fn scalar(self, text: &str, int64_timestamps: bool) -> Value {
        if self.kind == "TIMESTAMP" && !int64_timestamps {
            json!(float_seconds(text))
        } else {
            json!(text)
        }
    }

    /// A cell `{"v": …}`; a REPEATED cell holds `[{"v": …}, …]`.
    fn cell(self, cell: &Cell, int64_timestamps: bool) -> Value {
        match cell {
            Cell::Null => json!({ "v": null }),
            Cell::Text(text) => json!({ "v": self.scalar(text, int64_timestamps) }),
            Cell::List(items) => {
                let items: Vec<Value> = items
                    .iter()
                    .map(|item| json!({ "v": self.scalar(item, int64_timestamps) }))
                    .collect();
                json!({ "v": items })
            }
        }
    }
}

fn schema_json(schema: &[Field]) -> Value {
    let fields: Vec<Value> = schema.iter().map(|f| f.to_json()).collect();
    json!({ "fields": fields })
}

/// One cell of a stored result; TIMESTAMP text holds microseconds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Cell {
    Null,
    Text(String),
    /// A REPEATED column's values (never NULL in BigQuery, maybe empty).
    List(Vec<String>),
}

impl From<Option<String>> for Cell {
    fn from(value: Option<String>) -> Cell {
        value.map_or(Cell::Null, Cell::Text)
    }
}

impl From<String> for Cell {
    fn from(value: String) -> Cell {
        Cell::Text(value)
    }
}

const TRANSFER_SCHEMA: [Field; 9] = [
    Field::nullable("token_address", "STRING"),
    Field::nullable("from_address", "STRING"),
    Field::nullable("to_address", "STRING"),
    Field::nullable("value", "STRING"),
    Field::nullable("transaction_hash", "STRING"),
    Field::nullable("log_index", "INTEGER"),
    Field::nullable("block_timestamp", "TIMESTAMP"),
    Field::nullable("block_number", "INTEGER"),
    Field::nullable("block_hash", "STRING"),
];

const TOKEN_SCHEMA: [Field; 8] = [
    Field::nullable("address", "STRING"),
    Field::nullable("symbol", "STRING"),
    Field::nullable("name", "STRING"),
    Field::nullable("decimals", "STRING"),
    Field::nullable("total_supply", "STRING"),
    Field::nullable("block_timestamp", "TIMESTAMP"),
    Field::nullable("block_number", "INTEGER"),
    Field::nullable("block_hash", "STRING"),
];

/// `crypto_ethereum.logs`, the columns ethpipe reads, in BigQuery's types.
const LOG_SCHEMA: [Field; 9] = [
    Field::nullable("log_index", "INTEGER"),
    Field::nullable("transaction_hash", "STRING"),
    Field::nullable("transaction_index", "INTEGER"),
    Field::nullable("address", "STRING"),
    Field::nullable("data", "STRING"),
    Field::repeated("topics", "STRING"),
    Field::nullable("block_timestamp", "TIMESTAMP"),
    Field::nullable("block_number", "INTEGER"),
    Field::nullable("block_hash", "STRING"),
];

const COUNT_SCHEMA: [Field; 1] = [Field::nullable("row_count", "INTEGER")];

const DAY_MICROS: i64 = 86_400_000_000;

/// The query parameter called `name`, if the request has one.
fn parameter<'a>(body: &'a Value, name: &str) -> Option<&'a Value> {
    body.get("queryParameters")
        .and_then(Value::as_array)?
        .iter()
        .find(|p| p.get("name").and_then(Value::as_str) == Some(name))
}

/// `@day` (a DATE) as the day's first microsecond; an error when the SQL
/// uses it and it is missing or not a DATE, as BigQuery answers.
fn day_parameter(body: &Value, sql: &str) -> Result<Option<i64>, String> {
    let day = parameter(body, "day")
        .map(|p| {
            let kind = p.pointer("/parameterType/type").and_then(Value::as_str);
            let value = p.pointer("/parameterValue/value").and_then(Value::as_str);
            match (kind, value) {
                (Some("DATE"), Some(v)) => Ok(crate::fixtures::day_start_micros(v)),
                _ => Err("Query parameter 'day' must be a DATE".to_string()),
            }
        })
        .transpose()?;
    if sql.contains("@day") && day.is_none() {
        return Err("Query parameter 'day' not found".into());
    }
    Ok(day)
}

/// `@topics` (an ARRAY<STRING>), the topic0 values a logs query keeps.
fn topics_parameter(body: &Value, sql: &str) -> Result<Option<Vec<String>>, String> {
    let Some(p) = parameter(body, "topics") else {
        if sql.contains("@topics") {
            return Err("Query parameter 'topics' not found".into());
        }
        return Ok(None);
    };
    string_array_values(p).map(Some)
}

/// The values of an ARRAY<STRING> parameter, or BigQuery's complaint.
fn string_array_values(p: &Value) -> Result<Vec<String>, String> {
    let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
    let kind = p.pointer("/parameterType/type").and_then(Value::as_str);
    let element = p
        .pointer("/parameterType/arrayType/type")
        .and_then(Value::as_str);
    if (kind, element) != (Some("ARRAY"), Some("STRING")) {
        return Err(format!("Query parameter '{name}' must be an ARRAY<STRING>"));
    }
    let values = p
        .pointer("/parameterValue/arrayValues")
        .and_then(Value::as_array)
        .map(|values| {
            values
                .iter()
                .map(|v| v.get("value").and_then(Value::as_str).map(str::to_string))
                .collect::<Option<Vec<String>>>()
        })
        .unwrap_or(Some(Vec::new()))
        .ok_or_else(|| format!("Query parameter '{name}' has a value that is not a STRING"))?;
    Ok(values)
}

/// The rows whose token column is in `@tokens`, when the query filters on
/// it (`<column> IN UNNEST(@tokens)`, the column named just before): an
/// ARRAY<STRING> compared as text, as BigQuery compares it.
fn keep_tokens(
    body: &Value,
    sql: &str,
    schema: &Schema,
    rows: Vec<Cells>,
) -> Result<Vec<Cells>, String> {
    let Some((before, _)) = sql.split_once(" IN UNNEST(@tokens)") else {
        return Ok(rows);
    };
    let tokens = parameter(body, "tokens")
        .ok_or_else(|| "Query parameter 'tokens' not found".to_string())
        .and_then(string_array_values)?;
    let column = before.rsplit(' ').next().unwrap_or_default();
    let position = schema
        .iter()
        .position(|f| f.name == column)
        .ok_or_else(|| format!("Unrecognized name: {column}"))?;
    Ok(rows
        .into_iter()
        .filter(|row| matches!(&row[position], Cell::Text(t) if tokens.contains(t)))
        .collect())
}

/// Resolves a query to its rows.
fn plan(inner: &Inner, body: &Value) -> Result<Job, String> {
    let sql = body
        .get("query")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let day = day_parameter(body, sql)?;
    let published_before = inner.published_before;
    let in_day = |micros: i64| {
        day.is_none_or(|start| micros >= start && micros < start + DAY_MICROS)
            && published_before.is_none_or(|before| micros < before)
    };
    let counting = sql.contains("COUNT(*)");
    if let (Some(generator), true) = (&inner.transfer_generator, sql.contains(".token_transfers`"))
    {
        if sql.contains("@tokens") {
            return Err(
                "this test server's generated transfers cannot be filtered by @tokens".into(),
            );
        }
        let days = generator
            .days()
            .into_iter()
            .filter(|start| day.is_none_or(|d| d == *start))
            .map(|start| (start, generator.rows_in_day(start)))
            .collect();
        let generated = GeneratedRows {
            generator: Arc::clone(generator),
            days,
        };
        if counting {
            return Ok(count_job(generated.total()));
        }
        return Ok(Job {
            generated: Some(generated),
            schema: TRANSFER_SCHEMA.to_vec(),
            ..Job::default()
        });
    }
    let (schema, rows): (Schema, Vec<Cells>) = if sql.contains(".token_transfers`") {
        (TRANSFER_SCHEMA.to_vec(), transfer_rows(inner, in_day))
    } else if sql.contains(".tokens`") {
        (TOKEN_SCHEMA.to_vec(), token_rows(inner, in_day))
    } else if sql.contains(".logs`") {
        let topics = topics_parameter(body, sql)?;
        (LOG_SCHEMA.to_vec(), log_rows(inner, in_day, topics))
    } else {
        return Err(format!("Not found: Table in query: {sql}"));
    };
    let rows = keep_tokens(body, sql, &schema, rows)?;
    if counting {
        return Ok(count_job(distinct_count(sql, &schema, &rows)));
    }
    Ok(Job {
        rows,
        schema,
        ..Job::default()
    })
}

/// `COUNT(*)` of the rows, or of the distinct tuples of the columns a
/// `SELECT DISTINCT a, b FROM …` subquery names, as BigQuery counts them.
fn distinct_count(sql: &str, schema: &Schema, rows: &[Cells]) -> usize {
    let Some(columns) = sql
        .split_once("SELECT DISTINCT ")
        .and_then(|(_, rest)| rest.split_once(" FROM"))
        .map(|(list, _)| list)
    else {
        return rows.len();
    };
    let positions: Vec<usize> = columns
        .split(',')
        .filter_map(|name| schema.iter().position(|f| f.name == name.trim()))
        .collect();
    let tuples: std::collections::HashSet<Vec<&Cell>> = rows
        .iter()
        .map(|row| positions.iter().map(|&i| &row[i]).collect())
        .collect();
    tuples.len()
}

fn count_job(count: usize) -> Job {
    Job {
        rows: vec![vec![Cell::Text(count.to_string())]],
        schema: COUNT_SCHEMA.to_vec(),
        ..Job::default()
    }
}

fn transfer_rows(inner: &Inner, in_day: impl Fn(i64) -> bool) -> Vec<Cells> {
    inner
        .transfers
        .iter()
        .filter(|t| in_day(t.block_timestamp_micros))
        .enumerate()
        .map(|(i, t)| {
            let mut cells: Cells = vec![
                t.token_address.clone().into(),
                t.from_address.clone().into(),
                t.to_address.clone().into(),
                t.value.clone().into(),
                t.transaction_hash.clone().into(),
                t.log_index.to_string().into(),
                t.block_timestamp_micros.to_string().into(),
                t.block_number.to_string().into(),
                t.block_hash.clone().into(),
            ];
            if let Some((row, column, value)) = &inner.faults.corrupt_transfer_cell {
                if *row == i {
                    cells[*column] = value.clone().into();
                }
            }
            cells
        })
        .collect()
}

fn token_rows(inner: &Inner, in_day: impl Fn(i64) -> bool) -> Vec<Cells> {
    inner
        .tokens
        .iter()
        .filter(|t| in_day(t.block_timestamp_micros))
        .map(|t| {
            vec![
                t.address.clone().into(),
                t.symbol.clone().into(),
                t.name.clone().into(),
                t.decimals.clone().into(),
                t.total_supply.clone().into(),
                t.block_timestamp_micros.to_string().into(),
                t.block_number.to_string().into(),
                t.block_hash.clone().into(),
            ]
        })
        .collect()
}

/// The day's logs whose topic0 is one of `topics` (`topics[SAFE_OFFSET(0)]
/// IN UNNEST(@topics)`: a log without topics never matches; the comparison
/// is on the text, as BigQuery's).
fn log_rows(
    inner: &Inner,
    in_day: impl Fn(i64) -> bool,
    topics: Option<Vec<String>>,
) -> Vec<Cells> {
    let wanted = |log: &FixtureLog| {
        topics.as_ref().is_none_or(|topics| {
            log.topics
                .first()
                .is_some_and(|topic0| topics.contains(topic0))
        })
    };
    inner
        .logs
        .iter()
        .filter(|log| in_day(log.block_timestamp_micros) && wanted(log))
        .map(|log| {
            vec![
                log.log_index.to_string().into(),
                log.transaction_hash.clone().into(),
                log.transaction_index.to_string().into(),
                log.address.clone().into(),
                log.data.clone().into(),
                Cell::List(log.topics.clone()),
                log.block_timestamp_micros.to_string().into(),
                log.block_number.to_string().into(),
                log.block_hash.clone().into(),
            ]
        })
        .collect()
}

fn respond_page(
    inner: &mut Inner,
    project: &str,
    job_id: &str,
    page_token: Option<String>,
    max_results: Option<usize>,
    int64_timestamps: bool,
    kind: &str,
) -> Response {
    let job_reference = json!({ "projectId": project, "jobId": job_id, "location": "US" });
    let Some(job) = inner.jobs.get_mut(job_id) else {
        return error(404, "notFound", "job not found");
    };
    if job.polls_left > 0 {
        job.polls_left -= 1;
        return Json(json!({ "kind": kind, "jobReference": job_reference, "jobComplete": false }))
            .into_response();
    }
    let offset: usize = match page_token
        .as_deref()
        .map(|t| t.strip_prefix("offset-").and_then(|n| n.parse().ok()))
    {
        None => 0,
        Some(Some(n)) => n,
        Some(None) => return error(400, "invalid", "Invalid page token"),
    };
    let page_size = max_results
        .unwrap_or(100_000)
        .min(inner.faults.page_size_cap.unwrap_or(usize::MAX))
        .max(1);
    let page_number = offset / page_size + 1;
    if let Some((page, status, times)) = inner.faults.status_on_page {
        if page == page_number && times > 0 {
            inner.faults.status_on_page = Some((page, status, times.saturating_sub(1)));
            return error(
                status,
                if status == 429 {
                    "rateLimitExceeded"
                } else {
                    "backendError"
                },
                "injected fault",
            );
        }
    }
    let drop_now = match inner.faults.drop_connection_on_page {
        Some((page, times)) if page == page_number && times > 0 => {
            inner.faults.drop_connection_on_page =
                Some((page, if times == u32::MAX { times } else { times - 1 }));
            true
        }
        _ => false,
    };
    let job = inner.jobs.get(job_id).expect("job exists");
    let total = job.total();
    let end = (offset + page_size).min(total);
    let bytes = if let Some(generated) = &job.generated {
        let rows = generated.rows(offset.min(end), end);
        let page = GeneratedPage {
            kind,
            schema: &job.schema,
            job_reference: &job_reference,
            total,
            next: (end < total).then_some(end),
            int64_timestamps,
        };
        page.render(&rows)
    } else {
        let rows: Vec<Value> = job.rows[offset.min(end)..end]
            .iter()
            .map(|cells| {
                let f: Vec<Value> = cells
                    .iter()
                    .zip(&job.schema)
                    .map(|(cell, field)| field.cell(cell, int64_timestamps))
                    .collect();
                json!({ "f": f })
            })
            .collect();
        let mut body = json!({
            "kind": kind,
            "etag": "\"test\"",
            "schema": schema_json(&job.schema),
            "jobReference": job_reference,
            "totalRows": total.to_string(),
            "rows": rows,
            "totalBytesProcessed": "0",
            "jobComplete": true,
            "cacheHit": false,
        });
        if end < total {
            body["pageToken"] = json!(format!("offset-{end}"));
        }
        serde_json::to_vec(&body).unwrap_or_default()
    };
    if drop_now {
        // Send part of the body, then fail the stream: the connection is cut mid-response.
        let half = Bytes::from(bytes[..bytes.len() / 2].to_vec());
        let stream = futures_util::stream::iter(vec![
            Ok::<Bytes, std::io::Error>(half),
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "injected drop",
            )),
        ]);
        return Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(Body::from_stream(stream))
            .unwrap_or_else(|_| error(500, "internal", "response"));
    }
    Response::builder()
        .status(200)
        .header("content-type", "application/json; charset=UTF-8")
        .body(Body::from(bytes))
        .unwrap_or_else(|_| error(500, "internal", "response"))
}

/// A page of generated rows, written straight to JSON bytes (no `Value` per
/// cell): the same wire format as the stored-rows path, at a fraction of the
/// cost, so a benchmark measures the client rather than this server.
struct GeneratedPage<'a> {
    kind: &'a str,
    schema: &'a [Field],
    job_reference: &'a Value,
    total: usize,
    next: Option<usize>,
    int64_timestamps: bool,
}

impl GeneratedPage<'_> {
    fn render(&self, rows: &[FixtureTransfer]) -> Vec<u8> {
        let head = json!({
            "kind": self.kind,
            "etag": "\"test\"",
            "schema": schema_json(self.schema),
            "jobReference": self.job_reference,
            "totalRows": self.total.to_string(),
        });
        let mut out = serde_json::to_vec(&head).unwrap_or_default();
        out.reserve(rows.len() * 560 + 256);
        out.pop(); // the object's closing brace: rows and the rest follow
        out.extend_from_slice(b",\"rows\":[");
        for (i, row) in rows.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"f\":[");
            let timestamp = if self.int64_timestamps {
                row.block_timestamp_micros.to_string()
            } else {
                float_seconds(&row.block_timestamp_micros.to_string())
            };
            let cells = [
                Some(row.token_address.as_str()),
                row.from_address.as_deref(),
                row.to_address.as_deref(),
                row.value.as_deref(),
                Some(row.transaction_hash.as_str()),
                Some(&row.log_index.to_string()),
                Some(timestamp.as_str()),
                Some(&row.block_number.to_string()),
                Some(row.block_hash.as_str()),
            ];
            for (j, cell) in cells.iter().enumerate() {
                if j > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"v\":");
                match cell {
                    Some(text) => {
                        let _ = serde_json::to_writer(&mut out, text);
                    }
                    None => out.extend_from_slice(b"null"),
                }
                out.push(b'}');
            }
            out.extend_from_slice(b"]}");
        }
        out.extend_from_slice(
            b"],\"totalBytesProcessed\":\"0\",\"jobComplete\":true,\"cacheHit\":false",
        );
        if let Some(end) = self.next {
            out.extend_from_slice(format!(",\"pageToken\":\"offset-{end}\"").as_bytes());
        }
        out.push(b'}');
        out
    }
}

/// BigQuery's legacy TIMESTAMP text: seconds as a float in E-notation.
fn float_seconds(micros: &str) -> String {
    let seconds = micros.parse::<i64>().unwrap_or(0) as f64 / 1e6;
    format!("{seconds:E}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{day_start_micros, day_transfers};

    /// Serves stored rows through the generator interface.
    struct Stored(Vec<FixtureTransfer>);

    impl TransferGenerator for Stored {
        fn days(&self) -> Vec<i64> {
            let mut days: Vec<i64> = self
                .0
                .iter()
                .map(|t| t.block_timestamp_micros.div_euclid(86_400_000_000) * 86_400_000_000)
                .collect();
            days.dedup();
            days
        }

        fn rows_in_day(&self, day: i64) -> usize {
            self.day(day).len()
        }

        fn day_rows(&self, day: i64, range: std::ops::Range<usize>) -> Vec<FixtureTransfer> {
            self.day(day)[range].to_vec()
        }
    }

    impl Stored {
        fn day(&self, day: i64) -> Vec<FixtureTransfer> {
            self.0
                .iter()
                .filter(|t| {
                    t.block_timestamp_micros >= day
                        && t.block_timestamp_micros < day + 86_400_000_000
                })
                .cloned()
                .collect()
        }
    }

    async fn pages(inner: &mut Inner, day: &str, int64: bool) -> Vec<Value> {
        let body = json!({
            "query": "SELECT … FROM `p.d.token_transfers` WHERE DATE(block_timestamp) = @day",
            "useLegacySql": false,
            "queryParameters": [{ "name": "day", "parameterType": { "type": "DATE" }, "parameterValue": { "value": day } }],
        });
        let job = plan(inner, &body).expect("plan");
        inner.jobs.insert("j".into(), job);
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let response = respond_page(inner, "p", "j", token, Some(7), int64, "k");
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            let page: Value = serde_json::from_slice(&bytes).expect("a JSON page");
            token = page
                .get("pageToken")
                .and_then(Value::as_str)
                .map(str::to_string);
            out.push(page);
            if token.is_none() {
                return out;
            }
        }
    }

    #[tokio::test]
    async fn generated_pages_match_stored_pages() {
        let mut rows = day_transfers("2024-03-01", 30, 1);
        rows.extend(day_transfers("2024-03-02", 9, 1));
        for int64 in [true, false] {
            let mut stored = Inner {
                transfers: rows.clone(),
                ..Inner::default()
            };
            let mut generated = Inner {
                transfer_generator: Some(Arc::new(Stored(rows.clone()))),
                ..Inner::default()
            };
            let expected = pages(&mut stored, "2024-03-01", int64).await;
            assert_eq!(expected.len(), 5);
            assert_eq!(pages(&mut generated, "2024-03-01", int64).await, expected);
        }
        assert_eq!(Stored(rows).rows_in_day(day_start_micros("2024-03-02")), 9);
    }
}
