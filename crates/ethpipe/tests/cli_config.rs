//! Settings precedence (flag > env > file > default) and `ethpipe status`.

mod common;

use common::*;
use ethpipe_testkit::fixtures::day_transfers;
use ethpipe_testkit::Ethpipe;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_beat_env_beat_the_config_file_beats_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let bin = || Ethpipe::new(env!("CARGO_BIN_EXE_ethpipe")).cwd(dir.path());
    let exists = |name: &str| dir.path().join(name).exists();

    bin().run(&["migrate"]).await.assert_success();
    assert!(exists("ethpipe.db"), "default database");

    std::fs::write(
        dir.path().join("ethpipe.toml"),
        "database_url = \"sqlite://from-file.db\"\n",
    )
    .unwrap();
    bin().run(&["migrate"]).await.assert_success();
    assert!(
        exists("from-file.db"),
        "ethpipe.toml in the working directory is read"
    );

    bin()
        .env("ETHPIPE_DATABASE_URL", "sqlite://from-env.db")
        .run(&["migrate"])
        .await
        .assert_success();
    assert!(exists("from-env.db"), "env beats file");

    bin()
        .env("ETHPIPE_DATABASE_URL", "sqlite://from-env-2.db")
        .run(&["migrate", "--database-url", "sqlite://from-flag.db"])
        .await
        .assert_success();
    assert!(
        exists("from-flag.db") && !exists("from-env-2.db"),
        "flag beats env"
    );

    std::fs::write(
        dir.path().join("other.toml"),
        "database_url = \"sqlite://from-other.db\"\n",
    )
    .unwrap();
    bin()
        .run(&["migrate", "--config", "other.toml"])
        .await
        .assert_success();
    assert!(exists("from-other.db"), "--config picks the file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_loaded_ranges_gaps_and_runs() {
    let harness = Harness::start().await;
    let mut rows = Vec::new();
    for day in ["2024-03-01", "2024-03-02", "2024-03-04"] {
        rows.extend(day_transfers(day, 20, 1));
    }
    harness.bigquery.set_transfers(rows);
    for day in ["2024-03-01", "2024-03-02", "2024-03-04"] {
        harness
            .ethpipe(&harness.sqlite_url())
            .run(&["run", "token_transfers", "--date", day])
            .await
            .assert_success();
    }
    let out = harness
        .ethpipe(&harness.sqlite_url())
        .run(&["status", "--json"])
        .await;
    out.assert_success();
    let status: serde_json::Value =
        serde_json::from_str(&out.stdout).expect("status --json prints JSON");
    let transfers = status["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pipeline"] == "token_transfers")
        .unwrap();
    assert_eq!(
        transfers["days_loaded"],
        serde_json::json!([
            { "from": "2024-03-01", "to": "2024-03-02", "days": 2 },
            { "from": "2024-03-04", "to": "2024-03-04", "days": 1 }
        ])
    );
    assert_eq!(
        transfers["gaps"],
        serde_json::json!([{ "from": "2024-03-03", "to": "2024-03-03", "days": 1 }])
    );
    assert_eq!(transfers["rows_loaded"], 60);
    assert_eq!(transfers["recent_runs"].as_array().unwrap().len(), 3);
    assert_eq!(transfers["recent_runs"][0]["status"], "success");

    let table = harness
        .ethpipe(&harness.sqlite_url())
        .run(&["status"])
        .await;
    table.assert_success();
    assert!(
        table
            .stdout
            .contains("2024-03-01..2024-03-02 (2 days), 2024-03-04"),
        "{}",
        table.stdout
    );
    assert!(
        table.stdout.contains("gap:         2024-03-03..2024-03-03"),
        "{}",
        table.stdout
    );
}
