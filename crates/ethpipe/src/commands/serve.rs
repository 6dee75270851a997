//! `ethpipe serve`: the dashboard, serving pages and JSON API (ethpipe-server)
//! and the scheduler, in one process. Both stop on Ctrl-C or SIGTERM: the
//! HTTP server finishes the requests in flight, runs in progress (scheduled
//! or started from the dashboard) roll back and are marked interrupted.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use ethpipe_core::Pipeline;
use ethpipe_orch::scheduler::Scheduler;
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
    let source = super::open_source(settings).await?;
    let database = Arc::new(super::open_database(settings).await?);
    let reader = Reader::open(
        &settings.database_url,
        DEFAULT_STATEMENT_TIMEOUT,
        DEFAULT_POOL_SIZE,
    )
    .map_err(Fatal::usage)?;
    let cancel = super::shutdown_on_signals();
    let actions = Arc::new(Actions::new(
        Arc::clone(&database),
        Arc::clone(&source),
        models.clone(),
        cancel.clone(),
    ));
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
    if settings.triggers.is_empty() {
        eprintln!("no [[triggers]] in the config file: the scheduler has nothing to run (see docs/orchestration.md)");
    }
    eprintln!(
        "ethpipe serve: dashboard and API on http://{address}/ ; scheduler started ({} trigger(s)); Ctrl-C or SIGTERM stops it",
        settings.triggers.len()
    );
    let scheduler = Scheduler {
        database,
        source,
        triggers: settings.triggers.clone(),
        models,
    };
    let scheduled = scheduler.serve(cancel.clone()).await;
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
