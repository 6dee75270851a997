//! `ethpipe export [PIPELINE] --format parquet|csv --from D --to D --out-dir DIR`.

use ethpipe_orch::export::{ExportError, ExportRequest};
use ethpipe_sinks::files::FileFormat;

use crate::args::{ExportArgs, ExportFormat};
use crate::config::Settings;
use crate::progress::BackfillBar;
use crate::Fatal;

pub async fn export(settings: &Settings, args: ExportArgs) -> Result<(), Fatal> {
    if args.from > args.to {
        return Err(Fatal::usage(format!(
            "--from {} is after --to {}; give the earlier day first",
            args.from, args.to
        )));
    }
    if let ethpipe_sinks::DatabaseUrl::Parquet { .. } = settings.database_url {
        return Err(Fatal::usage(format!(
            "{} is already files: export reads a postgres:// or sqlite:// --database-url",
            settings.database_url.shown()
        )));
    }
    let format = match args.format {
        ExportFormat::Parquet => FileFormat::Parquet,
        ExportFormat::Csv => FileFormat::Csv,
    };
    let database = super::open_database(settings).await?;
    let request = ExportRequest {
        pipeline: args.pipeline,
        from: args.from,
        to: args.to,
        format,
        out_dir: args.out_dir.clone(),
    };
    let bar = BackfillBar::new(format!(
        "export {} {}..{}",
        args.pipeline, args.from, args.to
    ));
    let exported = ethpipe_orch::export::export(&database, &request, &bar).await;
    bar.finish();
    let exported = exported.map_err(|e| match e {
        ExportError::NotLoaded { .. } => Fatal::usage(e),
        e => Fatal::run_failed(e),
    })?;
    let rows: u64 = exported.iter().map(|(_, rows)| rows).sum();
    println!(
        "export {} {}..{}: {} days ({rows} rows) to {}",
        args.pipeline,
        args.from,
        args.to,
        exported.len(),
        args.out_dir.display()
    );
    Ok(())
}
