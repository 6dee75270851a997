//! `/healthz`, `/readyz` and `/metrics` (Prometheus text format 0.0.4).
//!
//! Run figures (runs by pipeline and status, rows loaded, run durations) are
//! read from the ledger at scrape time, so they cover every process writing
//! to the database. HTTP request counts and latencies are this process's own,
//! labelled by route template (`/api/v1/tokens/{address}`), never by the raw
//! path, so the number of series stays fixed.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;

/// Latency buckets in seconds (upper bounds; +Inf is implicit).
const HTTP_BUCKETS: [f64; 11] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];
/// Run duration buckets in seconds.
const RUN_BUCKETS: [f64; 10] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 900.0, 1800.0, 3600.0,
];

#[derive(Default)]
struct Histogram {
    /// Cumulative counts per bucket, as Prometheus exports them.
    buckets: Vec<u64>,
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, bounds: &[f64], value: f64) {
        if self.buckets.len() != bounds.len() {
            self.buckets = vec![0; bounds.len()];
        }
        for (bucket, bound) in self.buckets.iter_mut().zip(bounds) {
            if value <= *bound {
                *bucket += 1;
            }
        }
        self.count += 1;
        self.sum += value;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str, bounds: &[f64]) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, count) in bounds.iter().zip(&self.buckets) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

/// (method, route) → latency histogram; (method, route, status) → count.
#[derive(Default)]
pub struct HttpMetrics {
    latencies: Mutex<BTreeMap<(String, String), Histogram>>,
    responses: Mutex<BTreeMap<(String, String, u16), u64>>,
}

impl HttpMetrics {
    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let key = (method.to_string(), route.to_string());
        if let Ok(mut latencies) = self.latencies.lock() {
            latencies
                .entry(key.clone())
                .or_default()
                .observe(&HTTP_BUCKETS, seconds);
        }
        if let Ok(mut responses) = self.responses.lock() {
            *responses.entry((key.0, key.1, status)).or_default() += 1;
        }
    }

    fn render(&self, out: &mut String) {
        out.push_str("# HELP ethpipe_http_requests_total HTTP requests answered, by method, route and status.\n");
        out.push_str("# TYPE ethpipe_http_requests_total counter\n");
        if let Ok(responses) = self.responses.lock() {
            for ((method, route, status), count) in responses.iter() {
                let _ = writeln!(
                    out,
                    "ethpipe_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {count}",
                    label(route)
                );
            }
        }
        out.push_str("# HELP ethpipe_http_request_duration_seconds Time to answer an HTTP request, by method and route.\n");
        out.push_str("# TYPE ethpipe_http_request_duration_seconds histogram\n");
        if let Ok(latencies) = self.latencies.lock() {
            for ((method, route), histogram) in latencies.iter() {
                let labels = format!("method=\"{method}\",route=\"{}\"", label(route));
                histogram.render(
                    out,
                    "ethpipe_http_request_duration_seconds",
                    &labels,
                    &HTTP_BUCKETS,
                );
            }
        }
    }
}

/// Escapes a label value per the text format.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Middleware: times every request and counts its status.
pub async fn track_requests(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_string();
    // Unmatched paths share one label, so random URLs cannot add series.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let response = next.run(request).await;
    state.http_metrics.observe(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Each dependency as JSON; 200 when all answer, 503 otherwise.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let readiness = state.service.readiness().await;
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(readiness)).into_response()
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut out = String::with_capacity(8192);
    let ledger = render_ledger(&state, &mut out).await;
    out.push_str(
        "# HELP ethpipe_metrics_ledger_up Whether the ledger could be read for this scrape.\n",
    );
    out.push_str("# TYPE ethpipe_metrics_ledger_up gauge\n");
    let _ = writeln!(
        out,
        "ethpipe_metrics_ledger_up {}",
        u8::from(ledger.is_ok())
    );
    if let Some(health) = state.service.health() {
        render_scheduler(&health, &mut out);
    }
    state.http_metrics.render(&mut out);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

/// This process's scheduler: counters since it started.
fn render_scheduler(health: &ethpipe_orch::health::HealthFigures, out: &mut String) {
    let series: [(&str, &str, &str, u64); 5] = [
        (
            "ethpipe_scheduler_leader",
            "gauge",
            "Whether this process holds the scheduler's leader lock.",
            u64::from(health.leader),
        ),
        (
            "ethpipe_scheduler_leader_changes_total",
            "counter",
            "Times this process became or stopped being the leader.",
            health.leader_changes,
        ),
        (
            "ethpipe_scheduler_reconnects_total",
            "counter",
            "Times the scheduler got the database back after losing it.",
            health.reconnects,
        ),
        (
            "ethpipe_scheduler_abandoned_runs_total",
            "counter",
            "Runs this scheduler closed as abandoned (their process was gone).",
            health.abandoned_runs,
        ),
        (
            "ethpipe_scheduler_due_days",
            "gauge",
            "Days the active triggers owe that have no successful load, at the last tick.",
            health.due_days,
        ),
    ];
    for (name, kind, help, value) in series {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
}

async fn render_ledger(
    state: &AppState,
    out: &mut String,
) -> Result<(), crate::service::ServiceError> {
    let figures = state.service.run_figures().await?;
    let (counts, durations) = (figures.counts, figures.durations);
    out.push_str("# HELP ethpipe_runs Runs in the ledger, by pipeline and status.\n");
    out.push_str("# TYPE ethpipe_runs gauge\n");
    for c in &counts {
        let _ = writeln!(
            out,
            "ethpipe_runs{{pipeline=\"{}\",status=\"{}\"}} {}",
            label(&c.pipeline),
            label(&c.status),
            c.runs
        );
    }
    out.push_str(
        "# HELP ethpipe_rows_loaded_total Rows written by successful runs, by pipeline.\n",
    );
    out.push_str("# TYPE ethpipe_rows_loaded_total counter\n");
    let mut rows: BTreeMap<&str, i64> = BTreeMap::new();
    for c in counts.iter().filter(|c| c.status == "success") {
        *rows.entry(c.pipeline.as_str()).or_default() += c.rows;
    }
    for (pipeline, total) in rows {
        let _ = writeln!(
            out,
            "ethpipe_rows_loaded_total{{pipeline=\"{}\"}} {total}",
            label(pipeline)
        );
    }
    out.push_str(
        "# HELP ethpipe_run_duration_seconds Duration of finished runs, by pipeline and status.\n",
    );
    out.push_str("# TYPE ethpipe_run_duration_seconds histogram\n");
    let mut histograms: BTreeMap<(String, String), Histogram> = BTreeMap::new();
    for (pipeline, status, seconds) in durations {
        histograms
            .entry((pipeline, status))
            .or_default()
            .observe(&RUN_BUCKETS, seconds);
    }
    for ((pipeline, status), histogram) in &histograms {
        let labels = format!(
            "pipeline=\"{}\",status=\"{}\"",
            label(pipeline),
            label(status)
        );
        histogram.render(out, "ethpipe_run_duration_seconds", &labels, &RUN_BUCKETS);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative() {
        let mut h = Histogram::default();
        for v in [0.5, 2.0, 2.0, 100.0] {
            h.observe(&[1.0, 5.0], v);
        }
        let mut out = String::new();
        h.render(&mut out, "x", "a=\"b\"", &[1.0, 5.0]);
        assert!(out.contains("x_bucket{a=\"b\",le=\"1\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"5\"} 3\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"+Inf\"} 4\n"), "{out}");
        assert!(out.contains("x_count{a=\"b\"} 4\n"), "{out}");
        assert!(out.contains("x_sum{a=\"b\"} 104.5\n"), "{out}");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
