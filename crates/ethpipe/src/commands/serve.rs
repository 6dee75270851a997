//! `ethpipe serve`: the scheduler (the dashboard and API join it later).

use std::collections::HashMap;
use std::sync::Arc;

use ethpipe_core::Pipeline;
use ethpipe_orch::scheduler::Scheduler;

use crate::args::ServeArgs;
use crate::config::Settings;
use crate::Fatal;

pub async fn serve(settings: &Settings, args: ServeArgs) -> Result<(), Fatal> {
    let _ = args.bind; // reserved for the dashboard and API
    let mut models = HashMap::new();
    for pipeline in Pipeline::ALL {
        models.insert(pipeline, super::load_models(settings, pipeline)?);
    }
    let source = super::open_source(settings).await?;
    let database = super::open_database(settings).await?;
    if settings.triggers.is_empty() {
        eprintln!("no [[triggers]] in the config file: the scheduler has nothing to run (see docs/orchestration.md)");
    }
    let cancel = super::shutdown_on_signals();
    let scheduler = Scheduler {
        database: Arc::new(database),
        source,
        triggers: settings.triggers.clone(),
        models,
    };
    eprintln!(
        "ethpipe serve: scheduler started ({} trigger(s)); Ctrl-C or SIGTERM stops it",
        settings.triggers.len()
    );
    scheduler.serve(cancel).await.map_err(Fatal::run_failed)?;
    eprintln!("ethpipe serve: stopped");
    Ok(())
}
