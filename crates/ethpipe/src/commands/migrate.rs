//! `ethpipe migrate`: create or upgrade the schema and say what changed. An
//! upgrade that moves a table into day partitions shows a progress bar and
//! resumes where it stopped if it is killed.

use crate::config::Settings;
use crate::progress::UpgradeBar;
use crate::Fatal;

pub async fn migrate(settings: &Settings) -> Result<(), Fatal> {
    let bar = UpgradeBar::new();
    let opened = super::open_database_reporting(settings, &bar).await;
    bar.finish();
    // Opening applies pending migrations; a second call reports nothing left to do.
    let pending = opened?.migrate().await.map_err(Fatal::usage)?;
    debug_assert!(pending.is_empty());
    println!("schema is up to date ({})", settings.database_url.shown());
    Ok(())
}
