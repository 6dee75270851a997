//! `ethpipe trigger list|enable|disable`.

use chrono::Utc;
use ethpipe_orch::scheduler::{next_slot, parse_schedule};
use ethpipe_sinks::TriggerState;

use crate::args::{TriggerAction, TriggerArgs};
use crate::config::Settings;
use crate::Fatal;

pub async fn trigger(settings: &Settings, args: TriggerArgs) -> Result<(), Fatal> {
    let database = super::open_database(settings).await?;
    match args.action {
        TriggerAction::List => {
            let triggers = database.ledger().triggers().await.map_err(Fatal::usage)?;
            print_triggers(&triggers, settings);
            Ok(())
        }
        TriggerAction::Enable { name } | TriggerAction::Disable { name } if name.is_empty() => {
            Err(Fatal::usage("give the trigger's name"))
        }
        TriggerAction::Enable { name } => toggle(&database, &name, true).await,
        TriggerAction::Disable { name } => toggle(&database, &name, false).await,
    }
}

async fn toggle(database: &ethpipe_sinks::Database, name: &str, active: bool) -> Result<(), Fatal> {
    if database
        .ledger()
        .set_trigger_active(name, active)
        .await
        .map_err(Fatal::usage)?
    {
        println!(
            "trigger {name}: {}",
            if active { "active" } else { "inactive" }
        );
        Ok(())
    } else {
        Err(Fatal::usage(format!(
            "no trigger named '{name}' (triggers come from [[triggers]] in ethpipe.toml; `ethpipe trigger list` shows them)"
        )))
    }
}

/// When a trigger fires next, if it is active.
pub fn next_run(state: &TriggerState) -> Option<String> {
    if !state.def.active {
        return None;
    }
    let cron = parse_schedule(&state.def.schedule).ok()?;
    next_slot(&cron, Utc::now()).map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
}

pub fn print_triggers(triggers: &[TriggerState], settings: &Settings) {
    if triggers.is_empty() {
        println!("  triggers:    none (add [[triggers]] to ethpipe.toml)");
    }
    for t in triggers {
        let in_config = settings.triggers.iter().any(|d| d.name == t.def.name);
        println!(
            "  trigger {:<24} {:<16} {:<18} {:<8} next: {}{}",
            t.def.name,
            t.def.pipeline,
            t.def.schedule,
            if t.def.active { "active" } else { "inactive" },
            next_run(t).unwrap_or_else(|| "-".into()),
            if in_config {
                ""
            } else {
                "  (not in the config file)"
            }
        );
    }
}
