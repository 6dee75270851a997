//! `ethpipe status [--json]`: per pipeline, the days loaded as ranges (gaps
//! marked), the token filter it is configured with and the days loaded for
//! a filter only, the tokens full-load flag, and the last runs.

use chrono::NaiveDate;
use ethpipe_core::Pipeline;
use ethpipe_orch::runner::TOKENS_FULL_LOAD_DONE;
use ethpipe_sinks::{Database, DayLoaded, RunRecord};
use serde::Serialize;

use crate::args::StatusArgs;
use crate::config::Settings;
use crate::Fatal;

#[derive(Serialize)]
struct PipelineStatus {
    pipeline: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    full_load_done: Option<bool>,
    /// The pipeline's configured token filter (`tokens` in ethpipe.toml).
    #[serde(skip_serializing_if = "Option::is_none")]
    tokens: Option<Vec<String>>,
    days_loaded: Vec<DayRange>,
    /// Days whose latest successful load was for some tokens only.
    filtered_days: Vec<FilteredDay>,
    gaps: Vec<DayRange>,
    rows_loaded: i64,
    recent_runs: Vec<RunRecord>,
}

#[derive(Serialize, Debug, PartialEq)]
struct FilteredDay {
    day: String,
    tokens: Vec<String>,
}

#[derive(Serialize, Debug, PartialEq)]
struct DayRange {
    from: String,
    to: String,
    days: i64,
}

pub async fn status(settings: &Settings, args: StatusArgs) -> Result<(), Fatal> {
    let database = super::open_database(settings).await?;
    let mut report = Vec::new();
    for &pipeline in Pipeline::ALL {
        report.push(
            pipeline_status(&database, pipeline, settings)
                .await
                .map_err(Fatal::usage)?,
        );
    }
    let triggers = database.ledger().triggers().await.map_err(Fatal::usage)?;
    if args.json {
        let triggers: Vec<serde_json::Value> = triggers
            .iter()
            .map(|t| {
                let mut value = serde_json::to_value(t).unwrap_or_default();
                value["next_run"] = super::trigger::next_run(t).into();
                value
            })
            .collect();
        let json = serde_json::json!({
            "database": settings.database_url.shown(),
            "triggers": triggers,
            "pipelines": report,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&json).map_err(Fatal::usage)?
        );
    } else {
        print_table(
            &settings.database_url.shown(),
            &report,
            settings.source == crate::config::SourceKind::Rpc,
        );
        println!();
        println!("triggers");
        super::trigger::print_triggers(&triggers, settings);
    }
    Ok(())
}

async fn pipeline_status(
    database: &Database,
    pipeline: Pipeline,
    settings: &Settings,
) -> Result<PipelineStatus, ethpipe_sinks::SinkError> {
    let days = database.ledger().days_loaded(pipeline).await?;
    let (ranges, gaps) = ranges_and_gaps(&days);
    let full_load_done = if pipeline.full_load_first() {
        let flag = database
            .ledger()
            .variable(pipeline, TOKENS_FULL_LOAD_DONE)
            .await?;
        Some(flag.as_deref() == Some("true"))
    } else {
        None
    };
    let filtered_days = days
        .iter()
        .filter_map(|d| {
            let text = d.token_filter.as_deref()?;
            Some(FilteredDay {
                day: d.day.clone(),
                tokens: text.split(',').map(str::to_string).collect(),
            })
        })
        .collect();
    Ok(PipelineStatus {
        pipeline: pipeline.name(),
        full_load_done,
        tokens: settings
            .pipeline_filters
            .get(&pipeline)
            .map(|f| f.addresses().to_vec()),
        filtered_days,
        rows_loaded: days.iter().map(|d| d.rows).sum(),
        days_loaded: ranges,
        gaps,
        recent_runs: database.ledger().recent_runs(pipeline, 5).await?,
    })
}

fn ranges_and_gaps(days: &[DayLoaded]) -> (Vec<DayRange>, Vec<DayRange>) {
    let parsed: Vec<NaiveDate> = days
        .iter()
        .filter_map(|d| NaiveDate::parse_from_str(&d.day, "%Y-%m-%d").ok())
        .collect();
    let mut ranges: Vec<(NaiveDate, NaiveDate)> = Vec::new();
    for day in parsed {
        match ranges.last_mut() {
            Some((_, end)) if end.succ_opt() == Some(day) => *end = day,
            _ => ranges.push((day, day)),
        }
    }
    let range = |from: NaiveDate, to: NaiveDate| DayRange {
        from: from.to_string(),
        to: to.to_string(),
        days: (to - from).num_days() + 1,
    };
    let gaps = ranges
        .windows(2)
        .filter_map(|w| Some(range(w[0].1.succ_opt()?, w[1].0.pred_opt()?)))
        .collect();
    (ranges.into_iter().map(|(a, b)| range(a, b)).collect(), gaps)
}

fn print_table(database: &str, report: &[PipelineStatus], rpc_source: bool) {
    println!("database: {database}");
    for status in report {
        println!();
        println!("{}", status.pipeline);
        if let Some(done) = status.full_load_done {
            println!(
                "  full load:   {}",
                match (done, rpc_source) {
                    (true, _) => "done",
                    (false, false) => "not yet (the first tokens run does it)",
                    (false, true) => "none with --source rpc (tokens load day by day)",
                }
            );
        }
        let shown: Vec<String> = status
            .days_loaded
            .iter()
            .map(|r| {
                if r.days == 1 {
                    r.from.clone()
                } else {
                    format!("{}..{} ({} days)", r.from, r.to, r.days)
                }
            })
            .collect();
        println!(
            "  days loaded: {}",
            if shown.is_empty() {
                "none".to_string()
            } else {
                shown.join(", ")
            }
        );
        for gap in &status.gaps {
            println!(
                "  gap:         {}..{} ({} days missing)",
                gap.from, gap.to, gap.days
            );
        }
        if let Some(tokens) = &status.tokens {
            println!("  tokens:      {}", tokens.join(", "));
        }
        for filtered in &status.filtered_days {
            println!(
                "  filtered:    {} loaded for {}",
                filtered.day,
                super::verify::short_filter(&filtered.tokens.join(","))
            );
        }
        println!("  rows loaded: {}", status.rows_loaded);
        if status.recent_runs.is_empty() {
            println!("  runs:        none");
        }
        for run in &status.recent_runs {
            let took = run
                .finished_at
                .map(|f| {
                    format!(
                        "{:.1}s",
                        (f - run.started_at).num_milliseconds() as f64 / 1000.0
                    )
                })
                .unwrap_or_else(|| "-".into());
            let tokens = run
                .token_filter
                .as_deref()
                .map(|t| format!("[{}] ", super::verify::short_filter(t)))
                .unwrap_or_default();
            println!(
                "  run {:>5}  {:<10}  {:<8}  {:<7}  {:>10} rows  {:>7}  {tokens}{}",
                run.id.0,
                run.day.as_deref().unwrap_or("full"),
                run.trigger,
                run.status.as_str(),
                run.rows_written.unwrap_or(0),
                took,
                run.error.as_deref().unwrap_or("")
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_gaps_from_loaded_days() {
        let days: Vec<DayLoaded> = [
            "2024-03-01",
            "2024-03-02",
            "2024-03-05",
            "2024-03-06",
            "2024-03-08",
        ]
        .iter()
        .map(|d| DayLoaded {
            day: d.to_string(),
            rows: 1,
            token_filter: None,
        })
        .collect();
        let (ranges, gaps) = ranges_and_gaps(&days);
        assert_eq!(ranges.len(), 3);
        assert_eq!(
            ranges[0],
            DayRange {
                from: "2024-03-01".into(),
                to: "2024-03-02".into(),
                days: 2
            }
        );
        assert_eq!(
            gaps[0],
            DayRange {
                from: "2024-03-03".into(),
                to: "2024-03-04".into(),
                days: 2
            }
        );
        assert_eq!(
            gaps[1],
            DayRange {
                from: "2024-03-07".into(),
                to: "2024-03-07".into(),
                days: 1
            }
        );
    }
}
