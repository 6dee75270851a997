//! `ethpipe verify --from D --to D [--pipeline P] [--json]`: exit 1 on any gap.

use ethpipe_orch::verify::{DayCheck, DayState};

use crate::args::VerifyArgs;
use crate::config::Settings;
use crate::Fatal;

pub async fn verify(settings: &Settings, args: VerifyArgs) -> Result<(), Fatal> {
    if args.from > args.to {
        return Err(Fatal::usage(format!(
            "--from {} is after --to {}; give the earlier day first",
            args.from, args.to
        )));
    }
    let filter = settings.filter(args.pipeline, args.tokens.list.as_deref())?;
    let source = super::open_source(settings).await?;
    let database = super::open_database(settings).await?;
    let checks = ethpipe_orch::verify::verify(
        &database,
        source.as_ref(),
        args.pipeline,
        args.from,
        args.to,
        filter.as_ref(),
    )
    .await
    .map_err(Fatal::run_failed)?;
    let gaps: Vec<&DayCheck> = checks.iter().filter(|c| c.state != DayState::Ok).collect();
    if args.json {
        let json = serde_json::json!({
            "pipeline": args.pipeline.name(),
            "from": args.from.to_string(),
            "to": args.to.to_string(),
            "tokens": filter.as_ref().map(|f| f.addresses()),
            "days": checks,
            "gaps": gaps.iter().map(|c| c.day.clone()).collect::<Vec<_>>(),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&json).map_err(Fatal::usage)?
        );
    } else {
        if let Some(filter) = &filter {
            println!("tokens: {}", filter.canonical());
        }
        println!(
            "{:<10}  {:<8}  {:<8}  {:>12}  {:>12}  {:>12}  loaded for",
            "day", "state", "ledger", "ledger rows", "db rows", "source rows"
        );
        for check in &checks {
            let loaded_for = match (&check.ledger_status, &check.loaded_filter) {
                (None, _) => "-".to_string(),
                (_, None) => "all tokens".to_string(),
                (_, Some(text)) => short_filter(text),
            };
            println!(
                "{:<10}  {:<8}  {:<8}  {:>12}  {:>12}  {:>12}  {loaded_for}",
                check.day,
                format!("{:?}", check.state).to_lowercase(),
                check.ledger_status.map(|s| s.as_str()).unwrap_or("-"),
                check
                    .ledger_rows
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "-".into()),
                check.database_rows,
                check.source_rows
            );
        }
    }
    if gaps.is_empty() {
        Ok(())
    } else {
        let days: Vec<&str> = gaps.iter().map(|c| c.day.as_str()).collect();
        Err(Fatal::run_failed(format!(
            "{} of {} days are missing or mismatched: {}",
            gaps.len(),
            checks.len(),
            days.join(", ")
        )))
    }
}

/// A ledger filter's short label ("3 tokens", or the one address).
pub fn short_filter(canonical: &str) -> String {
    match ethpipe_core::TokenFilter::parse_list(canonical) {
        Ok(filter) => filter.short(),
        Err(_) => canonical.to_string(),
    }
}
