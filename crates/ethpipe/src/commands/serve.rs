//! `ethpipe serve`: the dashboard, serving pages and JSON API (ethpipe-server)
//! and the scheduler, in one process. Both stop on Ctrl-C or SIGTERM: the
//! HTTP server finishes the requests in flight, runs in progress (scheduled
//! or started from the dashboard) roll back and are marked interrupted.
//!
//! Reading needs only the database: when the source cannot be opened (no
//! BigQuery credentials, no `--rpc-url`), serve still starts as a read-only
//! dashboard; runs asked of it, and the scheduler, are refused with the
//! message the CLI would print.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use ethpipe_core::Pipeline;
use ethpipe_orch::scheduler::{Scheduler, DEFAULT_TICK};
use ethpipe_server::service::Actions;
use ethpipe_server::store::{Reader, DEFAULT_POOL_SIZE, DEFAULT_STATEMENT_TIMEOUT};
use ethpipe_server::{Server, ServerConfig};

use crate::args::ServeArgs;
use crate::config::Settings;
use crate::Fatal;

pub async fn serve(settings: &Settings, args: ServeArgs) -> Result<(), Fatal> {
    // Refuse an unsafe bind before connecting to anything.
    let bind = resolve_bind(&args.bind).await?;
    let config = ServerConfig::new(bind, args.api_token.clone()).map_err(Fatal::usage)?;
    let mut models = HashMap::new();
    for &pipeline in Pipeline::ALL {
        models.insert(pipeline, super::load_models(settings, pipeline)?);
    }
    // Without a source the dashboard still reads; runs say why they cannot start.
    let source = super::open_source(settings)
        .await
        .map_err(|fatal| fatal.message);
    let database = Arc::new(super::open_database(settings).await?);
    let reader = Reader::open(
        &settings.database_url,
        DEFAULT_STATEMENT_TIMEOUT,
        DEFAULT_POOL_SIZE,
    )
    .map_err(Fatal::usage)?;
    let cancel = super::shutdown_on_signals();
    let actions = Arc::new(
        Actions::new(
            Arc::clone(&database),
            source.clone(),
            models.clone(),
            cancel.clone(),
        )
        .with_filters(settings.pipeline_filters.clone()),
    );
    let server = Server::bind(config, reader, Some(Arc::clone(&actions)))
        .await
        .map_err(|e| {
            Fatal::usage(format!(
                "cannot listen on {bind}: {e} (is another ethpipe serve running? use --bind)"
            ))
        })?;
    let address = server
        .local_addr()
        .map_err(|e| Fatal::usage(format!("cannot listen on {bind}: {e}")))?;
    // Stops the HTTP server on a signal, or when the scheduler fails.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let http_cancel = cancel.clone();
    let http = tokio::spawn(server.run(async move {
        tokio::select! {
            () = http_cancel.cancelled() => {}
            _ = stopped => {}
        }
    }));
    let scheduler_state = match &source {
        Ok(_) => format!("scheduler started ({} trigger(s))", settings.triggers.len()),
        Err(reason) => {
            eprintln!(
                "no source, so this server only reads (runs and the scheduler need one): {reason}"
            );
            "read-only, scheduler not started".to_string()
        }
    };
    if settings.triggers.is_empty() {
        eprintln!("no [[triggers]] in the config file: the scheduler has nothing to run (see docs/orchestration.md)");
    }
    eprintln!(
        "ethpipe serve: dashboard and API on http://{address}/ ; {scheduler_state}; Ctrl-C or SIGTERM stops it"
    );
    let scheduled = match source {
        Ok(source) => {
            let scheduler = Scheduler {
                database,
                source,
                triggers: settings.triggers.clone(),
                models,
                filters: settings.trigger_filters.clone(),
                pipeline_filters: settings.pipeline_filters.clone(),
                health: actions.health(),
                tick: scheduler_tick(),
            };
            scheduler.serve(cancel.clone()).await
        }
        Err(_) => Ok(()),
    };
    if scheduled.is_ok() {
        // With no triggers the scheduler is done at once; keep serving.
        cancel.cancelled().await;
    }
    let _ = stop.send(());
    let served = http.await;
    actions.wait().await;
    scheduled.map_err(Fatal::run_failed)?;
    match served {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(Fatal::run_failed(format!("the HTTP server failed: {e}"))),
        Err(e) => return Err(Fatal::run_failed(format!("the HTTP server stopped: {e}"))),
    }
    eprintln!("ethpipe serve: stopped");
    Ok(())
}

/// The scheduler's tick: `ETHPIPE_SCHEDULER_TICK_MS` (tests and the soak use
/// a short one), one second otherwise.
fn scheduler_tick() -> std::time::Duration {
    std::env::var("ETHPIPE_SCHEDULER_TICK_MS")
        .ok()
        .and_then(|ms| ms.parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map_or(DEFAULT_TICK, std::time::Duration::from_millis)
}

/// `HOST:PORT` as a socket address (a name such as `localhost` is resolved;
/// its first address is used).
async fn resolve_bind(text: &str) -> Result<SocketAddr, Fatal> {
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Ok(address);
    }
    let invalid = |why: String| {
        Fatal::usage(format!(
            "invalid --bind '{text}': {why} (expected HOST:PORT, e.g. 127.0.0.1:6789)"
        ))
    };
    let mut addresses = tokio::net::lookup_host(text)
        .await
        .map_err(|e| invalid(e.to_string()))?;
    addresses
        .next()
        .ok_or_else(|| invalid("the name resolves to no address".into()))
}
