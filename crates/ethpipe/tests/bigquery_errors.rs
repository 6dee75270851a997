//! BigQuery's error reasons decide retries (issue 14, fault 5): throttling
//! arrives as HTTP 403 `rateLimitExceeded` / `quotaExceeded` and is retried
//! until the day loads; a 403 `accessDenied` fails the run at once, with one
//! clear line and nothing committed.

mod common;

use common::*;
use ethpipe_testkit::fixtures::day_transfers;
use ethpipe_testkit::Faults;

const DAY: &str = "2024-03-01";

fn refuse_queries(status: u16, reason: &str, times: u32) -> Faults {
    Faults {
        refuse_queries: Some((status, reason.to_string(), times)),
        ..Faults::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_403s_are_retried_and_the_day_loads() {
    for reason in ["rateLimitExceeded", "quotaExceeded"] {
        let harness = Harness::start().await;
        let db = fresh_database().await;
        let rows = day_transfers(DAY, 150, 1);
        harness.bigquery.set_transfers(rows.clone());
        harness.bigquery.set_faults(refuse_queries(403, reason, 2));

        let out = harness
            .ethpipe(&db.url)
            .run(&["run", "token_transfers", "--date", DAY])
            .await;
        out.assert_success();
        assert!(out.stdout.contains("150 rows committed"), "{}", out.stdout);
        // Two refusals, then the query that answered.
        assert_eq!(harness.bigquery.queries().len(), 3, "{reason}");
        assert!(
            out.all().contains(&format!("403 {reason}")),
            "{reason}: the retries are logged\n{}",
            out.all()
        );
        let client = db.client().await.unwrap();
        assert_eq!(pg_transfers(&client, "").await, sorted(&rows), "{reason}");
        assert_eq!(
            pg_runs(&client).await,
            vec![("success".into(), Some(150), Some(150), None)],
            "{reason}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_denied_fails_at_once_without_a_retry() {
    let harness = Harness::start().await;
    let db = fresh_database().await;
    harness.bigquery.set_transfers(day_transfers(DAY, 150, 1));
    // Refused once only: a retry would succeed, so success would betray one.
    harness
        .bigquery
        .set_faults(refuse_queries(403, "accessDenied", 1));

    let out = harness
        .ethpipe(&db.url)
        .run(&["run", "token_transfers", "--date", DAY])
        .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(harness.bigquery.queries().len(), 1, "no retry");
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("error"))
        .collect();
    assert_eq!(errors.len(), 1, "{}", out.stderr);
    assert!(
        errors[0].contains("BigQuery answered 403 accessDenied")
            && errors[0].contains("may run BigQuery jobs in the billed project"),
        "{}",
        errors[0]
    );
    assert!(!out.all().contains("retrying"), "{}", out.all());
    let client = db.client().await.unwrap();
    assert!(pg_transfers(&client, "").await.is_empty());
    let runs = pg_runs(&client).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].0, "failed");
}
