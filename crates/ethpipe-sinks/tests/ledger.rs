//! Every ledger operation, one test body run against a fresh PostgreSQL
//! database and a SQLite file: both stores must answer alike.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use ethpipe_core::datasets::{TOKENS, TOKEN_TRANSFERS};
use ethpipe_core::{Day, Pipeline, Scope};
use ethpipe_sinks::ledger::{self, FailureKind, LedgerError, RunFilter, RunId};
use ethpipe_sinks::{
    Commit, Database, DatabaseUrl, Ledger, NewRun, RunStatus, StepReport, TriggerDef,
};
use ethpipe_testkit::TestDatabase;

fn day(text: &str) -> Day {
    text.parse().expect("a test day")
}

fn at(hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 2, hour, 0, 0)
        .single()
        .expect("a test instant")
}

fn new_run(pipeline: Pipeline, scope: Scope, trigger: &str) -> NewRun {
    NewRun {
        pipeline,
        scope,
        trigger: trigger.to_string(),
        source: "bigquery".to_string(),
        filter: None,
    }
}

fn commit(run: RunId, source_rows: u64) -> Commit {
    Commit {
        run,
        source_rows,
        skipped_rows: 1,
        set_variable: None,
        models: Vec::new(),
    }
}

fn trigger(name: &str, active: bool) -> TriggerDef {
    TriggerDef {
        name: name.to_string(),
        pipeline: "token_transfers".to_string(),
        schedule: "@daily".to_string(),
        active,
        day_offset: 1,
        max_attempts: 3,
        backoff_seconds: 60,
        timeout_seconds: 3600,
        catchup_days: 2,
    }
}

async fn run(ledger: &dyn Ledger, id: RunId) -> ethpipe_sinks::RunRecord {
    ledger.run(id).await.expect("read").expect("the run exists")
}

async fn runs_and_their_outcomes(ledger: &dyn Ledger) {
    let transfers = TOKEN_TRANSFERS;
    let d1 = Scope::Day(day("2024-03-01"));
    let first = ledger
        .start_run(&new_run(transfers, d1, "manual"))
        .await
        .unwrap();
    let second = ledger
        .start_run(&new_run(transfers, d1, "manual"))
        .await
        .unwrap();
    assert_eq!(run(ledger, first).await.attempt, 1);
    assert_eq!(
        run(ledger, second).await.attempt,
        2,
        "attempts count the day's runs"
    );

    ledger.record_progress(second, 10).await.unwrap();
    let live = run(ledger, second).await;
    assert_eq!(
        (live.status, live.rows_written),
        (RunStatus::Running, Some(10))
    );

    assert_eq!(ledger.abandon_stale_runs(transfers, d1).await.unwrap(), 2);
    let abandoned = run(ledger, first).await;
    assert_eq!(abandoned.status, RunStatus::Failed);
    assert!(abandoned.error.unwrap().starts_with("abandoned:"));
    assert!(abandoned.finished_at.unwrap() >= abandoned.started_at);

    let third = ledger
        .start_run(&new_run(transfers, d1, "manual"))
        .await
        .unwrap();
    let flag = "ledger_test_flag";
    let with_flag = |value: &str| Commit {
        set_variable: Some((TOKENS, flag, value.to_string())),
        ..commit(third, 5)
    };
    ledger.record_commit(&with_flag("first"), 5).await.unwrap();
    let done = run(ledger, third).await;
    assert_eq!(done.attempt, 3);
    assert_eq!(done.status, RunStatus::Success);
    assert_eq!(
        (done.rows_written, done.source_rows, done.skipped_rows),
        (Some(5), Some(5), Some(1))
    );
    assert_eq!(done.day.as_deref(), Some("2024-03-01"));
    let value = ledger.variable(TOKENS, flag).await.unwrap();
    assert_eq!(value.as_deref(), Some("first"), "set with the success");
    let again = ledger
        .record_commit(&with_flag("second"), 5)
        .await
        .unwrap_err();
    assert!(matches!(again, LedgerError::NotRunning { .. }));
    assert_eq!(
        again.to_string(),
        format!("run {third} is no longer 'running' in the ledger; not committing")
    );
    let value = ledger.variable(TOKENS, flag).await.unwrap();
    assert_eq!(
        value.as_deref(),
        Some("first"),
        "nothing recorded for a closed run"
    );

    // A failure arriving after the commit does not undo it.
    ledger.fail_run(third, "late", 0, None).await.unwrap();
    assert_eq!(run(ledger, third).await.status, RunStatus::Success);
    ledger
        .fail_committed_run(third, "model m failed")
        .await
        .unwrap();
    let failed = run(ledger, third).await;
    assert_eq!(failed.status, RunStatus::Failed);
    assert_eq!(failed.error.as_deref(), Some("model m failed"));

    // A full load has no day; its runs are told apart from every day's.
    let tokens = TOKENS;
    let full = ledger
        .start_run(&new_run(tokens, Scope::Full, "manual"))
        .await
        .unwrap();
    let full_run = run(ledger, full).await;
    assert_eq!((full_run.day, full_run.attempt), (None, 1));
    ledger
        .fail_run(full, "source gone", 3, Some(7))
        .await
        .unwrap();
    let failed = run(ledger, full).await;
    assert_eq!(failed.status, RunStatus::Failed);
    assert_eq!(
        (failed.rows_written, failed.source_rows),
        (Some(3), Some(7))
    );
    let full_again = ledger
        .start_run(&new_run(tokens, Scope::Full, "manual"))
        .await
        .unwrap();
    assert_eq!(run(ledger, full_again).await.attempt, 2);
    assert_eq!(
        ledger
            .abandon_stale_runs(tokens, Scope::Full)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        ledger
            .abandon_stale_runs(tokens, Scope::Full)
            .await
            .unwrap(),
        0
    );
}

async fn steps_logs_and_variables(ledger: &dyn Ledger) {
    let id = ledger
        .start_run(&new_run(TOKENS, Scope::Day(day("2024-02-01")), "manual"))
        .await
        .unwrap();
    let started = at(1);
    let mut failed_step = StepReport::since("model", 0, started);
    failed_step.error = Some("syntax error".into());
    let load = StepReport {
        finished_at: at(2),
        ..StepReport::since("load", 12, started)
    };
    ledger.record_steps(id, &[load, failed_step]).await.unwrap();
    ledger
        .record_steps(id, &[StepReport::since("token_daily_stats", 3, started)])
        .await
        .unwrap();
    let steps = ledger.steps(id).await.unwrap();
    let summary: Vec<_> = steps
        .iter()
        .map(|s| (s.position, s.name.as_str(), s.status.as_str(), s.rows))
        .collect();
    assert_eq!(
        summary,
        [
            (1, "load", "success", Some(12)),
            (2, "model", "failed", Some(0)),
            (3, "token_daily_stats", "success", Some(3)),
        ]
    );
    assert_eq!(
        (steps[0].started_at.as_str(), steps[0].finished_at.as_str()),
        ("2024-03-02T01:00:00Z", "2024-03-02T02:00:00Z")
    );
    assert_eq!(steps[1].error.as_deref(), Some("syntax error"));

    ledger.log(id, "info", "one").await.unwrap();
    ledger.log(id, "warn", "two").await.unwrap();
    let lines = ledger.log_lines(id, 0, 10).await.unwrap();
    let texts: Vec<_> = lines
        .iter()
        .map(|l| (l.level.as_str(), l.message.as_str()))
        .collect();
    assert_eq!(texts, [("info", "one"), ("warn", "two")]);
    let after_first = ledger.log_lines(id, lines[0].id, 10).await.unwrap();
    assert_eq!(after_first.len(), 1);
    assert_eq!(after_first[0].message, "two");
    assert_eq!(ledger.log_lines(id, 0, 1).await.unwrap().len(), 1);

    let flag = "full_load_done";
    assert_eq!(ledger.variable(TOKENS, flag).await.unwrap(), None);
    ledger.set_variable(TOKENS, flag, "false").await.unwrap();
    ledger.set_variable(TOKENS, flag, "true").await.unwrap();
    assert_eq!(
        ledger.variable(TOKENS, flag).await.unwrap().as_deref(),
        Some("true")
    );
    assert_eq!(ledger.variable(TOKEN_TRANSFERS, flag).await.unwrap(), None);
}

/// Runs on three days, of two triggers; returns the ids in start order.
async fn some_history(ledger: &dyn Ledger) -> Vec<RunId> {
    let transfers = TOKEN_TRANSFERS;
    let mut ids = Vec::new();
    for (text, trigger, succeeds) in [
        ("2024-04-01", "nightly", true),
        ("2024-04-01", "manual", false),
        ("2024-04-02", "backfill:7", true),
        ("2024-04-02", "backfill:7", true),
        ("2024-04-03", "a_b", false),
    ] {
        let id = ledger
            .start_run(&new_run(transfers, Scope::Day(day(text)), trigger))
            .await
            .unwrap();
        if succeeds {
            ledger
                .record_commit(&commit(id, 100 + ids.len() as u64), 100 + ids.len() as u64)
                .await
                .unwrap();
        } else {
            ledger.fail_run(id, "broken", 0, None).await.unwrap();
        }
        ids.push(id);
    }
    ids
}

async fn reading_runs(ledger: &dyn Ledger) {
    let transfers = TOKEN_TRANSFERS;
    let ids = some_history(ledger).await;
    let (from, to) = (day("2024-04-01"), day("2024-04-03"));

    let latest: Vec<_> = ledger
        .latest_runs(transfers, from, to)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.day.clone().unwrap(), r.id))
        .collect();
    assert_eq!(
        latest,
        [
            ("2024-04-01".to_string(), ids[1]),
            ("2024-04-02".to_string(), ids[3]),
            ("2024-04-03".to_string(), ids[4]),
        ]
    );
    assert_eq!(
        ledger
            .succeeded_days(transfers, from, to, None, None)
            .await
            .unwrap(),
        [day("2024-04-01"), day("2024-04-02")]
    );
    assert_eq!(
        ledger
            .succeeded_days(transfers, from, to, Some("nightly"), None)
            .await
            .unwrap(),
        [day("2024-04-01")]
    );
    assert_eq!(
        ledger
            .succeeded_days(transfers, to, to, None, None)
            .await
            .unwrap(),
        []
    );
    let loaded: Vec<_> = ledger
        .days_loaded(transfers)
        .await
        .unwrap()
        .into_iter()
        .filter(|d| d.day.starts_with("2024-04"))
        .map(|d| (d.day, d.rows))
        .collect();
    // The latest *successful* run of a day counts, even after a failed one.
    assert_eq!(
        loaded,
        [
            ("2024-04-01".to_string(), 100),
            ("2024-04-02".to_string(), 103)
        ]
    );

    let listed = |filter: RunFilter| async move {
        let runs = ledger.runs(&filter).await.unwrap();
        runs.iter().map(|r| r.id).collect::<Vec<_>>()
    };
    let all = RunFilter {
        pipeline: Some(transfers),
        limit: 100,
        ..RunFilter::default()
    };
    let newest_first = listed(all.clone()).await;
    assert_eq!(&newest_first[..5], [ids[4], ids[3], ids[2], ids[1], ids[0]]);
    assert_eq!(
        listed(RunFilter {
            trigger_prefix: Some("backfill".into()),
            ..all.clone()
        })
        .await,
        [ids[3], ids[2]]
    );
    // A prefix is literal text: `_` and `%` are no wildcards.
    assert_eq!(
        listed(RunFilter {
            trigger_prefix: Some("a%".into()),
            ..all.clone()
        })
        .await,
        []
    );
    assert_eq!(
        listed(RunFilter {
            trigger_prefix: Some("a_".into()),
            ..all.clone()
        })
        .await,
        [ids[4]]
    );
    assert_eq!(
        listed(RunFilter {
            trigger: Some("nightly".into()),
            ..all.clone()
        })
        .await,
        [ids[0]]
    );
    let failed = listed(RunFilter {
        status: Some("failed"),
        ..all.clone()
    })
    .await;
    assert!(failed.contains(&ids[1]) && !failed.contains(&ids[0]));
    assert_eq!(
        listed(RunFilter {
            before: Some(ids[2].0),
            limit: 2,
            ..all.clone()
        })
        .await,
        [ids[1], ids[0]]
    );
    let recent: Vec<_> = ledger
        .recent_runs(transfers, 2)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(recent, [ids[4], ids[3]]);
    assert!(ledger.run(RunId(i64::MAX)).await.unwrap().is_none());

    let counts = ledger.run_counts().await.unwrap();
    let of = |status: &str| {
        counts
            .iter()
            .find(|c| c.pipeline == "token_transfers" && c.status == status)
            .map(|c| (c.runs, c.rows))
    };
    let all_runs = ledger.runs(&all).await.unwrap();
    let expected = |status: RunStatus| {
        let matching = all_runs.iter().filter(|r| r.status == status);
        let rows = matching.clone().filter_map(|r| r.rows_written).sum::<i64>();
        (matching.count() as i64, rows)
    };
    assert_eq!(of("success"), Some(expected(RunStatus::Success)));
    assert_eq!(of("failed"), Some(expected(RunStatus::Failed)));

    let durations = ledger.run_durations().await.unwrap();
    let finished = all_runs.iter().filter(|r| r.finished_at.is_some()).count();
    let of_transfers = durations.iter().filter(|d| d.pipeline == "token_transfers");
    assert_eq!(of_transfers.clone().count(), finished);
    assert!(of_transfers
        .clone()
        .all(|d| d.seconds >= 0.0 && d.seconds < 60.0));
}

async fn triggers(ledger: &dyn Ledger) {
    let created = Utc::now() - chrono::Duration::seconds(1);
    ledger
        .sync_triggers(&[trigger("nightly", true), trigger("hourly", true)])
        .await
        .unwrap();
    let names: Vec<_> = ledger
        .triggers()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.def.name)
        .collect();
    assert_eq!(names, ["hourly", "nightly"]);
    let state = |name: &'static str| async move {
        let all = ledger.triggers().await.unwrap();
        all.into_iter()
            .find(|t| t.def.name == name)
            .expect("the trigger")
    };
    assert_eq!(state("nightly").await.def, trigger("nightly", true));
    let since = state("nightly")
        .await
        .active_since
        .expect("set at creation");
    assert!(since >= created && since <= Utc::now(), "{since}");

    // The toggle persists across syncs until the file's own value changes.
    assert!(ledger.set_trigger_active("nightly", false).await.unwrap());
    assert!(!ledger.set_trigger_active("no-such", false).await.unwrap());
    ledger
        .sync_triggers(&[trigger("nightly", true)])
        .await
        .unwrap();
    assert!(!state("nightly").await.def.active);
    ledger
        .sync_triggers(&[trigger("nightly", false)])
        .await
        .unwrap();
    assert!(!state("nightly").await.def.active);
    let mut changed = trigger("nightly", true);
    changed.schedule = "0 3 * * *".into();
    ledger.sync_triggers(&[changed.clone()]).await.unwrap();
    assert_eq!(state("nightly").await.def, changed);

    // Turning a trigger on starts it from now.
    ledger.set_trigger_active("hourly", false).await.unwrap();
    let before = Utc::now() - chrono::Duration::seconds(1);
    ledger.set_trigger_active("hourly", true).await.unwrap();
    let since = state("hourly")
        .await
        .active_since
        .expect("set when turned on");
    assert!(since >= before && since <= Utc::now(), "{since}");
    // Staying on keeps it; the config file turning it on restarts it.
    ledger.set_trigger_active("hourly", true).await.unwrap();
    assert_eq!(state("hourly").await.active_since, Some(since));
    ledger
        .sync_triggers(&[trigger("hourly", false)])
        .await
        .unwrap();
    ledger
        .sync_triggers(&[trigger("hourly", true)])
        .await
        .unwrap();
    assert!(state("hourly").await.active_since.expect("still set") >= since);
}

/// What the scheduler reads: per day, success, failures in the window, the
/// last failure, and runs still `running`.
async fn day_attempts(ledger: &dyn Ledger) {
    let tokens = TOKENS;
    let (d5, d6, d7) = (day("2024-05-05"), day("2024-05-06"), day("2024-05-07"));
    let failed = |scope| async move {
        let id = ledger
            .start_run(&new_run(tokens, Scope::Day(scope), "daily"))
            .await
            .unwrap();
        ledger.fail_run(id, "503", 0, None).await.unwrap();
    };
    failed(d5).await;
    let window = Utc::now();
    failed(d5).await;
    failed(d5).await;
    failed(d6).await;
    let ok = ledger
        .start_run(&new_run(tokens, Scope::Day(d6), "daily"))
        .await
        .unwrap();
    ledger.record_commit(&commit(ok, 0), 0).await.unwrap();
    ledger
        .start_run(&new_run(tokens, Scope::Day(d7), "daily"))
        .await
        .unwrap();
    let attempts = ledger.day_attempts(tokens, d5, d7, window).await.unwrap();
    assert_eq!(attempts.len(), 3, "{attempts:?}");
    assert_eq!(attempts[0].day, d5);
    assert!(!attempts[0].succeeded && !attempts[0].running);
    assert_eq!(
        attempts[0].failures_in_window, 2,
        "one failure before the window"
    );
    let last = attempts[0].last_failure.expect("failed runs end");
    assert!(last >= window && last <= Utc::now(), "{last}");
    assert!(attempts[1].succeeded && attempts[1].failures_in_window == 1);
    assert!(attempts[2].running && attempts[2].last_failure.is_none());
    assert!(ledger
        .day_attempts(tokens, d7.succ(), d7.succ(), window)
        .await
        .unwrap()
        .is_empty());
}

/// A recorded backfill: its progress is its runs; only `running` jobs are unfinished.
async fn backfill_jobs(ledger: &dyn Ledger) {
    use ethpipe_sinks::ledger::NewBackfillJob;
    let tokens = TOKENS;
    let (from, to) = (day("2024-06-01"), day("2024-06-04"));
    let id = ledger
        .create_backfill_job(&NewBackfillJob {
            pipeline: tokens,
            from,
            to,
            parallel: 2,
            force: false,
        })
        .await
        .unwrap();
    // Another trigger had loaded the first day; the job loads the second and fails the third.
    let before = ledger
        .start_run(&new_run(tokens, Scope::Day(from), "manual"))
        .await
        .unwrap();
    ledger.record_commit(&commit(before, 5), 5).await.unwrap();
    let trigger = ethpipe_sinks::ledger::backfill_job_trigger(id);
    let loaded = ledger
        .start_run(&new_run(tokens, Scope::Day(from.succ()), &trigger))
        .await
        .unwrap();
    ledger.record_commit(&commit(loaded, 7), 7).await.unwrap();
    let failed = ledger
        .start_run(&new_run(tokens, Scope::Day(from.succ().succ()), &trigger))
        .await
        .unwrap();
    ledger.fail_run(failed, "503", 0, None).await.unwrap();

    let unfinished = ledger.backfill_jobs(true, 10).await.unwrap();
    assert_eq!(unfinished.len(), 1);
    let job = &unfinished[0];
    assert_eq!((job.id, job.from, job.to, job.parallel), (id, from, to, 2));
    assert_eq!(job.state, "running");
    assert_eq!(
        (job.days_loaded, job.rows, job.days_failed, job.days_skipped),
        (1, 7, 1, 1)
    );
    assert_eq!(job.trigger(), trigger);

    let held = ledger.lock_backfill_job(id).await.unwrap();
    assert!(held.is_some());
    drop(held);
    ledger
        .finish_backfill_job(id, "failed", Some("2024-06-03: 503"))
        .await
        .unwrap();
    assert!(ledger.backfill_jobs(true, 10).await.unwrap().is_empty());
    let all = ledger.backfill_jobs(false, 10).await.unwrap();
    assert_eq!(all[0].state, "failed");
    assert_eq!(all[0].error.as_deref(), Some("2024-06-03: 503"));
    assert!(all[0].finished_at.is_some());
}

async fn locks(ledger: &dyn Ledger, one_lock_per_day: bool) {
    let transfers = TOKEN_TRANSFERS;
    let d1 = Scope::Day(day("2024-03-01"));
    let d2 = Scope::Day(day("2024-03-02"));
    let held = ledger.lock_day(transfers, d1, false).await.unwrap();
    assert!(held.is_some());
    assert!(ledger
        .lock_day(transfers, d1, false)
        .await
        .unwrap()
        .is_none());
    let other_day = ledger.lock_day(transfers, d2, false).await.unwrap();
    assert_eq!(other_day.is_some(), one_lock_per_day);
    drop(other_day);
    drop(held);
    let waited = ledger.lock_day(transfers, d1, true).await.unwrap();
    assert!(waited.is_some(), "free again once dropped");

    let leader = ledger.lock_leader(false).await.unwrap();
    assert!(leader.is_some());
    assert!(ledger.lock_leader(false).await.unwrap().is_none());
    drop(leader);
    assert!(ledger.lock_leader(false).await.unwrap().is_some());
}

async fn read_only(url: &DatabaseUrl) {
    let reader = ledger::open_read_only(url, Duration::from_secs(5)).unwrap();
    let runs = reader
        .runs(&RunFilter {
            limit: 1,
            ..RunFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
    let write = reader
        .start_run(&new_run(TOKENS, Scope::Full, "manual"))
        .await
        .unwrap_err();
    assert_eq!(write.kind(), FailureKind::Failed);
    assert!(
        write.to_string().starts_with("recording the run's start: ")
            && write.to_string().contains("read"),
        "{write}"
    );
}

/// The whole contract, on one database.
async fn every_operation(url: &DatabaseUrl, one_lock_per_day: bool) {
    let database = Database::open(url).await.expect("open and migrate");
    let ledger = database.ledger();
    runs_and_their_outcomes(ledger).await;
    steps_logs_and_variables(ledger).await;
    reading_runs(ledger).await;
    triggers(ledger).await;
    day_attempts(ledger).await;
    backfill_jobs(ledger).await;
    locks(ledger, one_lock_per_day).await;
    // A ledger opened on its own sees the same records.
    let alone = ledger::open(url).unwrap();
    assert_eq!(
        alone.triggers().await.unwrap().len(),
        ledger.triggers().await.unwrap().len()
    );
    read_only(url).await;
}

#[tokio::test]
async fn every_operation_on_postgres() {
    let db = TestDatabase::create().await.unwrap();
    every_operation(&db.url.parse().unwrap(), true).await;
}

#[tokio::test]
async fn every_operation_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ethpipe.db").display());
    every_operation(&url.parse().unwrap(), false).await;
}

/// Connections the server dropped (a restart, a kill) are replaced: the next
/// operation reconnects instead of failing.
#[tokio::test]
async fn postgres_ledger_reconnects_after_its_connections_are_killed() {
    let db = TestDatabase::create().await.unwrap();
    let url: DatabaseUrl = db.url.parse().unwrap();
    Database::open(&url).await.unwrap();
    let ledger = ledger::open(&url).unwrap();
    ledger
        .sync_triggers(&[trigger("nightly", true)])
        .await
        .unwrap();

    let admin = db.client().await.unwrap();
    let others =
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()";
    let killed: i64 = admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&db.name],
        )
        .await
        .unwrap()
        .get(0);
    assert!(killed >= 1, "the ledger's pooled connection was open");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while admin
        .query_one(others, &[&db.name])
        .await
        .unwrap()
        .get::<_, i64>(0)
        > 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the killed sessions never ended"
        );
        tokio::task::yield_now().await;
    }

    assert_eq!(ledger.triggers().await.unwrap().len(), 1);
    assert!(ledger.set_trigger_active("nightly", false).await.unwrap());
}
