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
    let source = super::open_source(settings).await?;
    let database = super::open_database(settings).await?;
    let checks = ethpipe_orch::verify::verify(
        &database,
        source.as_ref(),
        args.pipeline,
        args.from,
        args.to,
    )
    .await
    .map_err(Fatal::run_failed)?;
    let gaps: Vec<&DayCheck> = checks.iter().filter(|c| c.state != DayState::Ok).collect();
    if args.json {
        let json = serde_json::json!({
            "pipeline": args.pipeline.name(),
            "from": args.from.to_string(),
            "to": args.to.to_string(),
            "days": checks,
            "gaps": gaps.iter().map(|c| c.day.clone()).collect::<Vec<_>>(),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&json).map_err(Fatal::usage)?
        );
    } else {
        println!(
            "{:<10}  {:<8}  {:<8}  {:>12}  {:>12}  {:>12}",
            "day", "state", "ledger", "ledger rows", "db rows", "source rows"
        );
        for check in &checks {
            println!(
                "{:<10}  {:<8}  {:<8}  {:>12}  {:>12}  {:>12}",
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
