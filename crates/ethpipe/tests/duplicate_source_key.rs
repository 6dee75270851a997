//! A source day holding the same key twice is a broken day: the run fails
//! as a permanent error with a clear name (so the scheduler does not retry
//! it pointlessly), on both stores, and the previous version of the day stays.

mod common;

use std::time::Duration;

use common::*;
use ethpipe_core::datasets::TOKEN_TRANSFERS;
use ethpipe_core::{Day, Scope};
use ethpipe_orch::{Cancel, RunError, RunRequest};
use ethpipe_sinks::{Database, DatabaseUrl};
use ethpipe_sources::bigquery::RetryPolicyConfig;
use ethpipe_sources::{BigQueryConfig, BigQuerySource, Credentials};
use ethpipe_testkit::fixtures::day_transfers;

const DAY: &str = "2024-03-01";

async fn source(harness: &Harness) -> BigQuerySource {
    let mut config = BigQueryConfig::new(Credentials::KeyFile(harness.account.path.clone()));
    config.endpoint = Some(harness.bigquery.endpoint());
    config.page_size = 64;
    config.retry = RetryPolicyConfig {
        attempts: 2,
        base_delay: Duration::from_millis(10),
    };
    BigQuerySource::connect(config).await.expect("source")
}

async fn load(database: &Database, source: &BigQuerySource) -> Result<u64, RunError> {
    let request = RunRequest {
        pipeline: TOKEN_TRANSFERS,
        scope: Scope::Day(DAY.parse::<Day>().expect("day")),
        trigger: "manual".into(),
        filter: None,
        models: Vec::new(),
    };
    let (_handle, cancel) = Cancel::new();
    ethpipe_orch::run(database, source, request, &(), &cancel)
        .await
        .map(|outcome| outcome.rows)
}

#[tokio::test]
async fn a_duplicate_key_in_the_source_fails_permanently_and_keeps_the_old_day() {
    let harness = Harness::start().await;
    let pg = fresh_database().await;
    let urls = [pg.url.clone(), harness.sqlite_url()];
    let good = day_transfers(DAY, 40, 1);
    let mut broken = day_transfers(DAY, 30, 2);
    broken.push(broken[7].clone());
    let source = source(&harness).await;
    for url in urls {
        let url: DatabaseUrl = url.parse().expect("url");
        let database = Database::open(&url).await.expect("database");
        harness.bigquery.set_transfers(good.clone());
        assert_eq!(load(&database, &source).await.expect("first version"), 40);

        harness.bigquery.set_transfers(broken.clone());
        let error = load(&database, &source).await.expect_err("duplicate key");
        match &error {
            RunError::Failed {
                message, permanent, ..
            } => {
                assert!(
                    *permanent,
                    "a broken source day is not transient: {message}"
                );
                assert!(
                    message.contains("source day has duplicate (transaction_hash, log_index)"),
                    "{message}"
                );
                assert!(message.contains(&broken[7].transaction_hash), "{message}");
            }
            other => panic!("expected a failed run, got {other:?}"),
        }
        let day: Day = DAY.parse().expect("day");
        assert_eq!(
            database
                .count_day(TOKEN_TRANSFERS, day, None)
                .await
                .expect("count"),
            40,
            "the previous version of the day stays"
        );
    }
}
