//! The job and page loop: start the query, poll while `jobComplete` is false,
//! then follow `pageToken` to the end. The next page is fetched while the
//! current one is parsed and sent downstream, so BigQuery's latency (and its
//! serialisation work) overlaps ethpipe's and the database's; at most two
//! pages are held at once, and the channel's capacity bounds the rest.

use std::sync::Arc;

use ethpipe_core::dataset::BigQueryExtraction;
use ethpipe_core::{
    Completeness, Day, Gate, Pipeline, Scope, Slice, SourceError, SourceEvent, SourceEventSender,
    TokenFilter,
};
use gcp_bigquery_client::auth::Authenticator;
use gcp_bigquery_client::error::{BQError, ResponseError};
use gcp_bigquery_client::model::data_format_options::DataFormatOptions;
use gcp_bigquery_client::model::get_query_results_response::GetQueryResultsResponse;
use gcp_bigquery_client::model::query_request::QueryRequest;
use gcp_bigquery_client::model::query_response::QueryResponse;
use gcp_bigquery_client::model::table_row::TableRow;
use gcp_bigquery_client::model::table_schema::TableSchema;

use super::page::{self, ColumnMap};
use super::query::{self, Query};
use super::{classify, Shared};

/// How long one request waits server-side for the job before answering
/// `jobComplete: false`.
const WAIT_MS: i32 = 10_000;

/// Rows per batch sent downstream (a page is split into several).
const BATCH_ROWS: usize = 5_000;

/// One response of either jobs.query or jobs.getQueryResults.
struct Page {
    complete: bool,
    job_id: Option<String>,
    location: Option<String>,
    page_token: Option<String>,
    rows: Vec<TableRow>,
    schema: Option<TableSchema>,
    total_rows: Option<String>,
}

impl Page {
    /// The first cell of the first row, as text: the answer of a query that
    /// computes one value (a count, a minimum); `None` when it is NULL.
    fn single_value(&self) -> Option<&str> {
        self.rows
            .first()
            .and_then(|row| row.columns.as_ref())
            .and_then(|cells| cells.first())
            .and_then(|cell| cell.value.as_ref())
            .and_then(|value| value.as_str())
    }
}

impl From<QueryResponse> for Page {
    fn from(r: QueryResponse) -> Self {
        let job = r.job_reference.unwrap_or_default();
        Page {
            complete: r.job_complete.unwrap_or(false),
            job_id: job.job_id,
            location: job.location,
            page_token: r.page_token,
            rows: r.rows.unwrap_or_default(),
            schema: r.schema,
            total_rows: r.total_rows,
        }
    }
}

impl From<GetQueryResultsResponse> for Page {
    fn from(r: GetQueryResultsResponse) -> Self {
        let job = r.job_reference.unwrap_or_default();
        Page {
            complete: r.job_complete.unwrap_or(false),
            job_id: job.job_id,
            location: job.location,
            page_token: r.page_token,
            rows: r.rows.unwrap_or_default(),
            schema: r.schema,
            total_rows: r.total_rows,
        }
    }
}

pub(super) async fn run(
    shared: &Arc<Shared>,
    slice: &Slice,
    sender: &SourceEventSender,
) -> Result<(), SourceError> {
    let pipeline = slice.pipeline;
    let gate = publication_gate(shared, pipeline, slice.scope).await?;
    let query = query::extract(&shared.dataset, slice);
    let mut page = complete_query(shared, query).await?;
    let total_rows = parse_total(page.total_rows.as_deref())?;
    let columns = ColumnMap::new(pipeline, page.schema.as_ref())?;
    let job = JobHandle::of(&page)?;
    let mut next_row: u64 = 1;
    let mut page_number = 1;
    let mut tally = Tally::default();
    loop {
        let next = page.page_token.take().map(|token| {
            page_number += 1;
            Prefetch::start(shared, &job, token, page_number)
        });
        // A page goes downstream in batches of BATCH_ROWS, each parsed just
        // before it is sent and its cells freed at once: what waits in the
        // channel and in the sink is a few small batches, not whole pages.
        let mut rows = std::mem::take(&mut page.rows).into_iter();
        loop {
            let cells: Vec<TableRow> = rows.by_ref().take(BATCH_ROWS).collect();
            if cells.is_empty() {
                break;
            }
            let parsed = page::parse_page(pipeline, &columns, &cells, next_row)?;
            next_row += cells.len() as u64;
            drop(cells);
            for warning in tally.skipped(parsed.skipped) {
                if sender
                    .send(Ok(SourceEvent::Warning(warning)))
                    .await
                    .is_err()
                {
                    return Ok(());
                }
            }
            tally.rows += parsed.rows.len() as u64;
            if sender
                .send(Ok(SourceEvent::Rows(parsed.rows)))
                .await
                .is_err()
            {
                return Ok(()); // the run was cancelled; stop reading
            }
        }
        let Some(next) = next else {
            break;
        };
        page = next.finish().await?;
    }
    let received = next_row - 1;
    if received != total_rows {
        return Err(SourceError::Transient(format!(
            "BigQuery said the result has {total_rows} rows but its pages held {received}"
        )));
    }
    // A table's rows are the source's rows; a log dataset's are what its
    // decoder made of every log the query returned.
    let source_rows = match pipeline.bigquery() {
        BigQueryExtraction::Table { .. } => total_rows,
        BigQueryExtraction::Logs { .. } => tally.rows,
    };
    let _ = sender
        .send(Ok(SourceEvent::End {
            source_rows,
            skipped_rows: tally.skipped,
            completeness: Completeness::passed(gate),
        }))
        .await;
    Ok(())
}

/// A day is read only once the dataset holds data past its end (BigQuery's
/// public tables are loaded day by day, some hours after the day ends, so a
/// day read earlier would be partial or empty). A full load reads the table
/// as it stands.
async fn publication_gate(
    shared: &Shared,
    pipeline: Pipeline,
    scope: Scope,
) -> Result<Gate, SourceError> {
    let Scope::Day(day) = scope else {
        return Ok(Gate {
            name: "whole-table",
            mark: format!(
                "read at {}",
                chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC")
            ),
        });
    };
    let page = complete_query(shared, query::published(&shared.dataset, pipeline, day)).await?;
    let first_after = page
        .single_value()
        .map(|text| {
            ethpipe_core::cells::bigquery_timestamp(1, query::FIRST_AFTER, Some(text))
                .map_err(|e| SourceError::Transient(format!("BigQuery's publication check: {e}")))
        })
        .transpose()?;
    match first_after {
        Some(at) => Ok(Gate {
            name: "published",
            mark: format!("data at {}", at.format("%Y-%m-%d %H:%M:%S UTC")),
        }),
        None => Err(SourceError::Transient(format!(
            "{day} is not published yet: the dataset holds no data after the day's end; \
             it loads once BigQuery has published the next day"
        ))),
    }
}

/// Individual warnings per run for skipped logs; the rest are only counted.
const WARNINGS_SHOWN: u64 = 50;

#[derive(Default)]
struct Tally {
    rows: u64,
    skipped: u64,
}

impl Tally {
    /// The warnings to show of these skipped logs.
    fn skipped(&mut self, warnings: Vec<String>) -> Vec<String> {
        let shown_before = self.skipped.min(WARNINGS_SHOWN);
        self.skipped += warnings.len() as u64;
        let room = (WARNINGS_SHOWN - shown_before) as usize;
        let mut shown: Vec<String> = warnings.into_iter().take(room).collect();
        if self.skipped > WARNINGS_SHOWN
            && shown_before + shown.len() as u64 == WARNINGS_SHOWN
            && room > 0
        {
            shown.push(format!(
                "more logs were skipped by the decoding rules; only the first {WARNINGS_SHOWN} are listed, the run counts them all"
            ));
        }
        shown
    }
}

/// A log dataset's day counted the only way its rows can be: decoded.
async fn count_decoded(shared: &Arc<Shared>, slice: Slice) -> Result<u64, SourceError> {
    let (sender, mut stream) = ethpipe_core::RowStream::channel();
    let extraction = run(shared, &slice, &sender);
    let drain = async {
        let mut rows = 0;
        loop {
            match stream.next().await? {
                SourceEvent::Rows(batch) => rows += batch.len() as u64,
                SourceEvent::Warning(_) => {}
                SourceEvent::End { .. } => return Ok::<u64, SourceError>(rows),
            }
        }
    };
    let (extracted, counted) = tokio::join!(extraction, drain);
    extracted?;
    counted
}

pub(super) async fn count(
    shared: &Arc<Shared>,
    pipeline: Pipeline,
    day: Day,
    filter: Option<TokenFilter>,
) -> Result<u64, SourceError> {
    if let BigQueryExtraction::Logs { .. } = pipeline.bigquery() {
        let slice = Slice {
            pipeline,
            scope: Scope::Day(day),
            filter,
        };
        return count_decoded(shared, slice).await;
    }
    let query = query::count(&shared.dataset, pipeline, day, filter.as_ref());
    let page = complete_query(shared, query).await?;
    let cell = page
        .single_value()
        .and_then(|text| text.parse::<u64>().ok());
    cell.ok_or_else(|| SourceError::Transient("BigQuery's COUNT(*) answer has no number".into()))
}

#[derive(Clone)]
struct JobHandle {
    id: String,
    location: Option<String>,
}

impl JobHandle {
    fn of(page: &Page) -> Result<JobHandle, SourceError> {
        let id = page.job_id.clone().ok_or_else(|| {
            SourceError::Transient("BigQuery's answer names no job to page through".into())
        })?;
        Ok(JobHandle {
            id,
            location: page.location.clone(),
        })
    }
}

/// The next page, being fetched on its own task. Dropped unfinished (the run
/// was cancelled or failed), it stops the request.
struct Prefetch(tokio::task::JoinHandle<Result<Page, SourceError>>);

impl Prefetch {
    fn start(shared: &Arc<Shared>, job: &JobHandle, token: String, page_number: u32) -> Prefetch {
        let (shared, job) = (Arc::clone(shared), job.clone());
        Prefetch(tokio::spawn(async move {
            fetch_page(&shared, &job, Some(token), page_number).await
        }))
    }

    async fn finish(mut self) -> Result<Page, SourceError> {
        (&mut self.0).await.map_err(|e| {
            SourceError::Transient(format!("fetching the next BigQuery page failed: {e}"))
        })?
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts the query and returns its first page once the job is complete.
async fn complete_query(shared: &Shared, query: Query) -> Result<Page, SourceError> {
    let request = query_request(shared, query);
    let first: Page = shared
        .retry
        .run(|| {
            let request = request.clone();
            async move {
                shared
                    .client
                    .job()
                    .query(&shared.project, request)
                    .await
                    .map(Page::from)
                    .map_err(|e| classify("BigQuery jobs.query", e))
            }
        })
        .await?;
    if first.complete {
        return Ok(first);
    }
    let job = JobHandle::of(&first)?;
    loop {
        tracing::debug!("BigQuery job {} not complete yet; waiting", job.id);
        let page = fetch_page(shared, &job, None, 1).await?;
        if page.complete {
            return Ok(page);
        }
    }
}

fn query_request(shared: &Shared, query: Query) -> QueryRequest {
    let mut request = QueryRequest::new(query.sql);
    // The REST API defaults to legacy SQL when this is absent; be explicit.
    request.use_legacy_sql = false;
    request.parameter_mode = Some("NAMED".to_string());
    request.query_parameters = Some(query.parameters);
    request.max_results = Some(shared.page_size as i32);
    request.timeout_ms = Some(WAIT_MS);
    request.format_options = Some(int64_timestamps());
    // Makes a retried jobs.query idempotent: BigQuery reuses the job for the same id.
    request.request_id = Some(request_id());
    request
}

fn int64_timestamps() -> DataFormatOptions {
    DataFormatOptions {
        use_int64_timestamp: Some(true),
    }
}

fn request_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("ethpipe-{}-{nanos:x}", std::process::id())
}

/// jobs.getQueryResults, sent directly rather than through the client crate:
/// the crate encodes its parameters with serde_urlencoded, which cannot write
/// the nested `formatOptions.useInt64Timestamp`, and without it BigQuery sends
/// TIMESTAMPs as float seconds. The response is still the crate's model type.
async fn fetch_page(
    shared: &Shared,
    job: &JobHandle,
    page_token: Option<String>,
    page_number: u32,
) -> Result<Page, SourceError> {
    let context = format!(
        "BigQuery getQueryResults (job {}, page {page_number})",
        job.id
    );
    let url = format!(
        "{}/projects/{}/queries/{}",
        shared.base_url,
        path_segment(&shared.project),
        path_segment(&job.id)
    );
    let mut query: Vec<(&str, String)> = vec![
        ("formatOptions.useInt64Timestamp", "true".into()),
        ("maxResults", shared.page_size.to_string()),
        ("timeoutMs", WAIT_MS.to_string()),
    ];
    if let Some(location) = &job.location {
        query.push(("location", location.clone()));
    }
    if let Some(token) = &page_token {
        query.push(("pageToken", token.clone()));
    }
    shared
        .retry
        .run(|| {
            let (url, query, context) = (&url, &query, &context);
            async move {
                let token = shared
                    .tokens
                    .access_token()
                    .await
                    .map_err(|e| classify(context, e))?;
                let response = shared
                    .http
                    .get(url)
                    .query(query)
                    .bearer_auth(token)
                    .send()
                    .await
                    .map_err(|e| classify(context, BQError::RequestError(e)))?;
                if !response.status().is_success() {
                    let status = response.status().as_u16();
                    return Err(match response.json::<ResponseError>().await {
                        Ok(error) => classify(context, BQError::ResponseError { error }),
                        Err(_) => classify_status(context, status),
                    });
                }
                response
                    .json::<GetQueryResultsResponse>()
                    .await
                    .map(Page::from)
                    .map_err(|e| classify(context, BQError::RequestError(e)))
            }
        })
        .await
}

/// An error status whose body is not BigQuery's error JSON (a proxy's page,
/// say): no reason to go by, so the status decides.
fn classify_status(context: &str, status: u16) -> SourceError {
    super::answer_error(format!("{context}: HTTP {status}"), None, status)
}

fn path_segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn parse_total(total: Option<&str>) -> Result<u64, SourceError> {
    total
        .and_then(|t| t.parse::<u64>().ok())
        .ok_or_else(|| SourceError::Transient("BigQuery's answer has no totalRows".into()))
}
