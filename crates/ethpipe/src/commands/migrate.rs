//! `ethpipe migrate`: create or upgrade the schema and say what changed.

use crate::config::Settings;
use crate::Fatal;

pub async fn migrate(settings: &Settings) -> Result<(), Fatal> {
    // Opening applies pending migrations; a second call reports nothing left to do.
    let database = super::open_database(settings).await?;
    let pending = database.migrate().await.map_err(Fatal::usage)?;
    debug_assert!(pending.is_empty());
    println!("schema is up to date ({})", settings.database_url.shown());
    Ok(())
}
