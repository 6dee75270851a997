//! A standalone BigQuery-compatible server for benchmarks and manual tries:
//! serves `--rows-per-day` generated transfers for each of `--days` days
//! from `--from`, writes a service-account key for it, and prints the
//! settings to point ethpipe at it.
//!
//! usage: fake-bigquery --dir DIR [--from 2024-03-01] [--days 1] [--rows-per-day 100000] [--port 0]

use std::time::Duration;

use ethpipe_testkit::fixtures::day_transfers;
use ethpipe_testkit::{FakeBigQuery, ServiceAccount};

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(arg(&args, "--dir", "."));
    let from: chrono::NaiveDate = arg(&args, "--from", "2024-03-01").parse()?;
    let days: u32 = arg(&args, "--days", "1").parse()?;
    let per_day: usize = arg(&args, "--rows-per-day", "100000").parse()?;
    // The address ServiceAccount::write puts in the key, so the token exchange accepts it.
    let email = "ethpipe-test@test-project.iam.gserviceaccount.com";
    let server = FakeBigQuery::start(email).await?;
    let account = ServiceAccount::write(&dir, &server.token_url())?;
    let mut rows = Vec::with_capacity(per_day * days as usize);
    for offset in 0..days {
        let day = from + chrono::Days::new(u64::from(offset));
        rows.extend(day_transfers(&day.to_string(), per_day, 1));
    }
    server.set_transfers(rows);
    println!("ETHPIPE_BIGQUERY_ENDPOINT={}", server.endpoint());
    println!("GOOGLE_APPLICATION_CREDENTIALS={}", account.path.display());
    println!("ready");
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}
