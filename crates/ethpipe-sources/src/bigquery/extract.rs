//! The job and page loop: start the query, poll while `jobComplete` is false,
//! then follow `pageToken` to the end, sending each parsed page downstream
//! before fetching the next (the channel's capacity bounds what is in flight).

use ethpipe_core::{Day, Pipeline, Scope, SourceError, SourceEvent, SourceEventSender};
use gcp_bigquery_client::model::data_format_options::DataFormatOptions;
use gcp_bigquery_client::model::get_query_results_parameters::GetQueryResultsParameters;
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
    shared: &Shared,
    pipeline: Pipeline,
    scope: Scope,
    sender: &SourceEventSender,
) -> Result<(), SourceError> {
    let query = query::extract(&shared.dataset, pipeline, scope);
    let mut page = complete_query(shared, query).await?;
    let source_rows = parse_total(page.total_rows.as_deref())?;
    let columns = ColumnMap::new(pipeline, page.schema.as_ref())?;
    let job = JobHandle::of(&page)?;
    let mut next_row: u64 = 1;
    let mut page_number = 1;
    loop {
        let rows = std::mem::take(&mut page.rows);
        let count = rows.len() as u64;
        let batch = page::parse_page(pipeline, &columns, &rows, next_row)?;
        drop(rows);
        if !batch.is_empty() && sender.send(Ok(SourceEvent::Rows(batch))).await.is_err() {
            return Ok(()); // the run was cancelled; stop reading
        }
        next_row += count;
        let Some(token) = page.page_token.take() else {
            break;
        };
        page_number += 1;
        page = fetch_page(shared, &job, Some(token), page_number).await?;
    }
    let _ = sender.send(Ok(SourceEvent::End { source_rows })).await;
    Ok(())
}

pub(super) async fn count(
    shared: &Shared,
    pipeline: Pipeline,
    day: Day,
) -> Result<u64, SourceError> {
    let page = complete_query(shared, query::count(&shared.dataset, pipeline, day)).await?;
    let cell = page
        .rows
        .first()
        .and_then(|row| row.columns.as_ref())
        .and_then(|cells| cells.first())
        .and_then(|cell| cell.value.as_ref())
        .and_then(|value| value.as_str())
        .and_then(|text| text.parse::<u64>().ok());
    cell.ok_or_else(|| SourceError::Transient("BigQuery's COUNT(*) answer has no number".into()))
}

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

/// Starts the query and returns its first page once the job is complete.
async fn complete_query(shared: &Shared, query: Query) -> Result<Page, SourceError> {
    let request = query_request(shared, query);
    let first: Page = shared
        .retry
        .run("BigQuery jobs.query", || {
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
    shared
        .retry
        .run(&context, || {
            let parameters = GetQueryResultsParameters {
                format_options: Some(int64_timestamps()),
                location: job.location.clone(),
                max_results: Some(shared.page_size as i32),
                page_token: page_token.clone(),
                start_index: None,
                timeout_ms: Some(WAIT_MS),
            };
            let context = &context;
            async move {
                shared
                    .client
                    .job()
                    .get_query_results(&shared.project, &job.id, parameters)
                    .await
                    .map(Page::from)
                    .map_err(|e| classify(context, e))
            }
        })
        .await
}

fn parse_total(total: Option<&str>) -> Result<u64, SourceError> {
    total
        .and_then(|t| t.parse::<u64>().ok())
        .ok_or_else(|| SourceError::Transient("BigQuery's answer has no totalRows".into()))
}
