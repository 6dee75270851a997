//! Bad input gets one clear line, the documented exit code, and writes
//! nothing; secrets (the key, the database password, access tokens) never
//! appear in any output or in the ledger.

mod common;

use common::*;
use ethpipe_testkit::fixtures::day_transfers;
use ethpipe_testkit::{Ethpipe, Faults};

const DAY: &str = "2024-03-01";
const PASSWORD: &str = "hunter2-not-for-logs";

struct Case {
    name: &'static str,
    args: Vec<&'static str>,
    env: Vec<(&'static str, String)>,
    code: i32,
    says: &'static str,
}

fn case(name: &'static str, args: &[&'static str], code: i32, says: &'static str) -> Case {
    Case {
        name,
        args: args.to_vec(),
        env: Vec::new(),
        code,
        says,
    }
}

impl Case {
    fn env(mut self, key: &'static str, value: impl Into<String>) -> Case {
        self.env.push((key, value.into()));
        self
    }
}

fn assert_one_clear_line(case: &Case, out: &ethpipe_testkit::Output) {
    assert_eq!(out.code, case.code, "{}: exit code\n{out:?}", case.name);
    let last = out.stderr.trim_end().lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: "),
        "{}: last line is the error: {}",
        case.name,
        out.stderr
    );
    assert_eq!(
        out.stderr
            .lines()
            .filter(|l| l.starts_with("error"))
            .count(),
        1,
        "{}: {}",
        case.name,
        out.stderr
    );
    assert!(
        last.contains(case.says),
        "{}: expected {:?} in {last:?}",
        case.name,
        case.says
    );
    assert!(
        !out.all().contains(PASSWORD),
        "{}: password leaked",
        case.name
    );
}

/// Inputs rejected before anything is written: exit 2, and the database stays empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_and_configuration_errors_write_nothing() {
    let harness = Harness::start().await;
    harness.bigquery.set_transfers(day_transfers(DAY, 10, 1));
    let db = fresh_database().await;
    let dir = harness.dir.path();
    std::fs::write(
        dir.join("not-json.json"),
        "{\"type\": \"service_account\", oops",
    )
    .unwrap();
    std::fs::write(
        dir.join("user.json"),
        r#"{"type": "authorized_user", "client_id": "x"}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("unknown-key.toml"),
        "database_url = \"sqlite://x.db\"\ndatabse = 1\n",
    )
    .unwrap();
    std::fs::write(dir.join("broken.toml"), "database_url = \n").unwrap();
    std::fs::write(
        dir.join("no-tokens.toml"),
        "[pipelines.token_transfers]\ntokens = []\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("bad-trigger-tokens.toml"),
        "[[triggers]]\nname = \"nightly\"\npipeline = \"token_transfers\"\nschedule = \"@daily\"\ntokens = [\"0x12\"]\n",
    )
    .unwrap();
    let path = |name: &str| dir.join(name).display().to_string();
    std::fs::write(dir.join("a-file"), "not a folder").unwrap();
    let parquet = |path: String| format!("parquet://{path}");

    let cases = vec![
        case(
            "impossible date",
            &["run", "token_transfers", "--date", "2024-02-30"],
            2,
            "invalid date '2024-02-30'",
        ),
        case(
            "sloppy date",
            &["run", "token_transfers", "--date", "2024-3-1"],
            2,
            "expected a calendar day as YYYY-MM-DD",
        ),
        case(
            "not a date",
            &["run", "tokens", "--date", "yesterday"],
            2,
            "invalid date 'yesterday'",
        ),
        case(
            "unknown pipeline",
            &["run", "blocks", "--date", DAY],
            2,
            "unknown pipeline 'blocks'",
        ),
        case("no day", &["run", "token_transfers"], 2, "--date"),
        case(
            "date and full",
            &["run", "tokens", "--date", DAY, "--full"],
            2,
            "cannot be used with",
        ),
        case(
            "full transfers",
            &["run", "token_transfers", "--full"],
            2,
            "--full applies to tokens only",
        ),
        case(
            "unknown command",
            &["load", "token_transfers"],
            2,
            "unrecognized subcommand 'load'",
        ),
        case(
            "malformed database URL",
            &["run", "token_transfers", "--date", DAY],
            2,
            "invalid --database-url 'postgres://bob:***@db:notaport/x'",
        )
        .env(
            "ETHPIPE_DATABASE_URL",
            format!("postgres://bob:{PASSWORD}@db:notaport/x"),
        ),
        case(
            "unsupported database",
            &["run", "token_transfers", "--date", DAY],
            2,
            "unsupported scheme",
        )
        .env("ETHPIPE_DATABASE_URL", "mysql://root@localhost/x"),
        case(
            "unreachable database",
            &["run", "token_transfers", "--date", DAY],
            2,
            "cannot connect to postgres://postgres:***@127.0.0.1:9/x",
        )
        .env(
            "ETHPIPE_DATABASE_URL",
            format!("postgres://postgres:{PASSWORD}@127.0.0.1:9/x"),
        ),
        case(
            "parquet without a folder",
            &["run", "token_transfers", "--date", DAY],
            2,
            "expected parquet://DIR",
        )
        .env("ETHPIPE_DATABASE_URL", "parquet://"),
        case(
            "parquet at a file",
            &["run", "token_transfers", "--date", DAY],
            2,
            "a-file: is a file, not a folder",
        )
        .env("ETHPIPE_DATABASE_URL", parquet(path("a-file"))),
        case(
            "parquet under a file",
            &["run", "token_transfers", "--date", DAY],
            2,
            "cannot create the folder",
        )
        .env("ETHPIPE_DATABASE_URL", parquet(path("a-file/data"))),
        // A folder even root cannot write in (sysfs).
        case(
            "parquet in a read-only folder",
            &["backfill", "tokens", "--from", DAY, "--to", DAY],
            2,
            "parquet:///sys: cannot write in the folder",
        )
        .env("ETHPIPE_DATABASE_URL", "parquet:///sys"),
        case(
            "export as xml",
            &[
                "export",
                "--format",
                "xml",
                "--from",
                DAY,
                "--to",
                DAY,
                "--out-dir",
                "out",
            ],
            2,
            "invalid value 'xml' for '--format <FORMAT>'",
        ),
        case(
            "missing key file",
            &["run", "token_transfers", "--date", DAY],
            2,
            "cannot read the credentials file",
        )
        .env("GOOGLE_APPLICATION_CREDENTIALS", path("missing.json")),
        case(
            "malformed key JSON",
            &["run", "token_transfers", "--date", DAY],
            2,
            "is not a usable service-account key: not valid JSON",
        )
        .env("GOOGLE_APPLICATION_CREDENTIALS", path("not-json.json")),
        case(
            "not a service account",
            &["run", "token_transfers", "--date", DAY],
            2,
            "expected \"service_account\"",
        )
        .env("GOOGLE_APPLICATION_CREDENTIALS", path("user.json")),
        case(
            "unknown source",
            &[
                "run",
                "token_transfers",
                "--date",
                DAY,
                "--source",
                "etherscan",
            ],
            2,
            "unknown --source 'etherscan'",
        ),
        case(
            "rpc without URL",
            &["run", "token_transfers", "--date", DAY, "--source", "rpc"],
            2,
            "--source rpc needs --rpc-url",
        ),
        case(
            "malformed RPC URL",
            &[
                "run",
                "token_transfers",
                "--date",
                DAY,
                "--source",
                "rpc",
                "--rpc-url",
                "localhost:8545",
            ],
            2,
            "invalid --rpc-url",
        ),
        case(
            "websocket RPC URL",
            &[
                "run",
                "tokens",
                "--date",
                DAY,
                "--source",
                "rpc",
                "--rpc-url",
                "ws://127.0.0.1:8546",
            ],
            2,
            "expected an http(s) URL",
        ),
        case(
            "zero RPC concurrency",
            &[
                "run",
                "token_transfers",
                "--date",
                DAY,
                "--source",
                "rpc",
                "--rpc-url",
                "http://127.0.0.1:9",
                "--rpc-concurrency",
                "0",
            ],
            2,
            "invalid --rpc-concurrency 0",
        ),
        case(
            "negative RPC rate",
            &[
                "run",
                "token_transfers",
                "--date",
                DAY,
                "--source",
                "rpc",
                "--rpc-url",
                "http://127.0.0.1:9",
                "--rpc-rps=-5",
            ],
            2,
            "invalid --rpc-rps -5",
        ),
        case(
            "zero RPC batch",
            &[
                "run",
                "token_transfers",
                "--date",
                DAY,
                "--source",
                "rpc",
                "--rpc-url",
                "http://127.0.0.1:9",
                "--rpc-batch-size",
                "0",
            ],
            2,
            "invalid --rpc-batch-size 0",
        ),
        case(
            "full tokens load from a node",
            &[
                "run",
                "tokens",
                "--full",
                "--source",
                "rpc",
                "--rpc-url",
                "http://127.0.0.1:9",
            ],
            2,
            "backfill tokens --from",
        ),
        case(
            "bad dataset",
            &[
                "run",
                "token_transfers",
                "--date",
                DAY,
                "--bigquery-dataset",
                "x`; DROP TABLE y",
            ],
            2,
            "invalid --bigquery-dataset",
        ),
        case(
            "bad endpoint",
            &[
                "run",
                "token_transfers",
                "--date",
                DAY,
                "--bigquery-endpoint",
                "bq.example",
            ],
            2,
            "invalid --bigquery-endpoint",
        ),
        case(
            "unknown config key",
            &["run", "token_transfers", "--date", DAY],
            2,
            "unknown field `databse`",
        )
        .env("ETHPIPE_CONFIG", path("unknown-key.toml")),
        case(
            "malformed config",
            &["run", "token_transfers", "--date", DAY],
            2,
            "invalid config file",
        )
        .env("ETHPIPE_CONFIG", path("broken.toml")),
        case(
            "missing config",
            &["status"],
            2,
            "cannot read the config file",
        )
        .env("ETHPIPE_CONFIG", path("nope.toml")),
        case(
            "malformed token address",
            &["run", "token_transfers", "--date", DAY, "--tokens", "0x1111111111111111111111111111111111111111,0xabc"],
            2,
            "invalid --tokens: '0xabc' is not a token address",
        ),
        case(
            "duplicate token address",
            &[
                "backfill",
                "token_transfers",
                "--from",
                DAY,
                "--to",
                DAY,
                "--tokens",
                "0x1111111111111111111111111111111111111111,0X1111111111111111111111111111111111111111",
            ],
            2,
            "token address 0x1111111111111111111111111111111111111111 is listed twice",
        ),
        case(
            "empty token list",
            &["run", "token_transfers", "--date", DAY, "--tokens", ""],
            2,
            "invalid --tokens: the token list is empty",
        ),
        case(
            "malformed ETHPIPE_TOKENS",
            &["run", "token_transfers", "--date", DAY],
            2,
            "invalid --tokens: 'usdc' is not a token address",
        )
        .env("ETHPIPE_TOKENS", "usdc"),
        case(
            "empty tokens in the config file",
            &["run", "token_transfers", "--date", DAY],
            2,
            "[pipelines.token_transfers] tokens: the token list is empty",
        )
        .env("ETHPIPE_CONFIG", path("no-tokens.toml")),
        case(
            "malformed trigger tokens",
            &["status"],
            2,
            "trigger 'nightly': tokens: '0x12' is not a token address",
        )
        .env("ETHPIPE_CONFIG", path("bad-trigger-tokens.toml")),
    ];
    assert!(cases.len() >= 20);
    for case in &cases {
        let mut command = harness.ethpipe(&db.url);
        for (key, value) in &case.env {
            command = command.env(key, value.clone());
        }
        let out = command.run(&case.args).await;
        assert_one_clear_line(case, &out);
    }
    let client = db.client().await.unwrap();
    assert!(
        !schema_exists(&client, "ethereum").await,
        "a rejected command created the schema"
    );
    assert!(
        harness.bigquery.queries().is_empty(),
        "a rejected command reached BigQuery"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("a-file")).unwrap(),
        "not a folder"
    );
    assert!(!dir.join("out").exists(), "a rejected export wrote files");

    // With the default SQLite database, a rejected command creates no file.
    let out = Ethpipe::new(env!("CARGO_BIN_EXE_ethpipe"))
        .cwd(harness.dir.path())
        .run(&["run", "token_transfers", "--date", "2024-13-01"])
        .await;
    assert_eq!(out.code, 2);
    assert!(!harness.dir.path().join("ethpipe.db").exists());
}

/// Problems found once a run has started: exit 1, the ledger says failed,
/// and no row of the day is committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_failures_name_the_cause_and_commit_nothing() {
    let harness = Harness::start().await;
    let db = fresh_database().await;
    let client = db.client().await.unwrap();
    harness.bigquery.set_transfers(day_transfers(DAY, 150, 1));

    harness.bigquery.set_faults(Faults {
        query_error: Some((403, "accessDenied".into(), "Access Denied: Project test-project: User does not have bigquery.jobs.create permission".into())),
        ..Faults::default()
    });
    let denied = case(
        "BigQuery 403",
        &["run", "token_transfers", "--date", DAY],
        1,
        "BigQuery answered 403 accessDenied: Access Denied",
    );
    let out = harness.ethpipe(&db.url).run(&denied.args).await;
    assert_one_clear_line(&denied, &out);
    assert!(
        harness.bigquery.queries().len() == 1,
        "a 403 is not retried"
    );

    // Row 100 (on page 2) has a malformed from_address: the whole day fails, naming it.
    harness.bigquery.set_faults(Faults {
        corrupt_transfer_cell: Some((
            99,
            1,
            Some("0xZZ00000000000000000000000000000000000000".into()),
        )),
        ..Faults::default()
    });
    let bad_row = case(
        "malformed source row",
        &["run", "token_transfers", "--date", DAY],
        1,
        "source row 100: from_address '0xZZ00000000000000000000000000000000000000' is not an address",
    );
    let out = harness.ethpipe(&db.url).run(&bad_row.args).await;
    assert_one_clear_line(&bad_row, &out);

    // Every other kind of malformed cell fails the day the same way, naming
    // the row and the column (columns in BigQuery's order).
    let malformed: [(usize, Option<&str>, &str); 6] = [
        (0, Some("0x12"), "token_address '0x12'"),
        (3, Some("12.5"), "value '12.5'"),
        (3, Some("-7"), "value '-7'"),
        (4, Some("0xabc"), "transaction_hash '0xabc'"),
        (5, Some("one"), "log_index 'one'"),
        (6, Some("yesterday"), "block_timestamp 'yesterday'"),
    ];
    for (column, value, says) in malformed {
        harness.bigquery.set_faults(Faults {
            corrupt_transfer_cell: Some((40, column, value.map(str::to_string))),
            ..Faults::default()
        });
        let out = harness
            .ethpipe(&db.url)
            .run(&["run", "token_transfers", "--date", DAY])
            .await;
        assert_eq!(out.code, 1, "{says}: {}", out.all());
        let line = out.stderr.trim();
        assert_eq!(line.lines().count(), 1, "{says}: {line}");
        assert!(line.contains("source row 41"), "{says}: {line}");
        assert!(line.contains(says), "{says}: {line}");
    }
    // A NULL where the table has NOT NULL.
    harness.bigquery.set_faults(Faults {
        corrupt_transfer_cell: Some((40, 4, None)),
        ..Faults::default()
    });
    let out = harness
        .ethpipe(&db.url)
        .run(&["run", "token_transfers", "--date", DAY])
        .await;
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr.contains("source row 41: transaction_hash NULL"),
        "{}",
        out.stderr
    );

    // A key the token endpoint does not accept (signed by another key).
    let other_key = harness.dir.path().join("other.json");
    let mut key: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&harness.account.path).unwrap()).unwrap();
    key["client_email"] = "someone-else@test-project.iam.gserviceaccount.com".into();
    std::fs::write(&other_key, key.to_string()).unwrap();
    harness.bigquery.set_faults(Faults::default());
    let rejected = case(
        "rejected credentials",
        &["run", "token_transfers", "--date", DAY],
        1,
        "could not obtain a BigQuery access token",
    );
    let out = harness
        .ethpipe(&db.url)
        .env(
            "GOOGLE_APPLICATION_CREDENTIALS",
            other_key.display().to_string(),
        )
        .run(&rejected.args)
        .await;
    assert_one_clear_line(&rejected, &out);

    assert!(
        pg_transfers(&client, "").await.is_empty(),
        "nothing of the day may be committed"
    );
    let runs = pg_runs(&client).await;
    assert_eq!(runs.len(), 10);
    assert!(
        runs.iter().all(|r| r.0 == "failed" && r.3.is_some()),
        "{runs:?}"
    );
    assert!(runs[1].3.as_deref().unwrap().contains("source row 100"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_appear_in_output_or_the_ledger() {
    let harness = Harness::start().await;
    let db = fresh_database().await;
    harness.bigquery.set_transfers(day_transfers(DAY, 100, 1));
    // Trust authentication ignores the password, so the URL still connects.
    let url_with_password = db
        .url
        .replacen("postgres@", &format!("postgres:{PASSWORD}@"), 1);
    assert!(url_with_password.contains(PASSWORD));
    let ethpipe = || {
        harness
            .ethpipe(&url_with_password)
            .env("ETHPIPE_LOG", "debug")
    };

    let mut outputs = Vec::new();
    outputs.push(
        ethpipe()
            .run(&["run", "token_transfers", "--date", DAY])
            .await,
    );
    assert_eq!(outputs[0].code, 0, "{:?}", outputs[0]);
    outputs.push(ethpipe().run(&["status", "--json"]).await);
    outputs.push(ethpipe().run(&["status"]).await);
    outputs.push(ethpipe().run(&["migrate"]).await);
    harness.bigquery.set_faults(Faults {
        status_on_page: Some((2, 500, u32::MAX)),
        ..Faults::default()
    });
    outputs.push(
        ethpipe()
            .run(&["run", "token_transfers", "--date", DAY])
            .await,
    );
    assert_eq!(outputs.last().unwrap().code, 1);
    let unreachable = format!("postgres://postgres:{PASSWORD}@127.0.0.1:9/x");
    outputs.push(
        harness
            .ethpipe(&unreachable)
            .env("ETHPIPE_LOG", "trace")
            .run(&["status"])
            .await,
    );

    // A node URL with credentials in the user info and an API key in the path.
    let rpc_url = "http://rpcuser:rpc-password-5150@127.0.0.1:9/v3/rpc-api-key-0123456789";
    outputs.push(
        ethpipe()
            .env("ETHPIPE_SOURCE", "rpc")
            .env("ETHPIPE_RPC_URL", rpc_url)
            .run(&["run", "token_transfers", "--date", DAY])
            .await,
    );
    assert_eq!(outputs.last().unwrap().code, 1, "{:?}", outputs.last());
    assert!(
        outputs
            .last()
            .unwrap()
            .stderr
            .contains("http://127.0.0.1:9"),
        "the node is named by host and port: {:?}",
        outputs.last()
    );

    let client = db.client().await.unwrap();
    let mut ledger_text = String::new();
    for row in client
        .query("SELECT coalesce(error, '') FROM ethpipe.runs", &[])
        .await
        .unwrap()
    {
        ledger_text.push_str(row.get::<_, &str>(0));
    }
    for row in client
        .query("SELECT message FROM ethpipe.run_logs", &[])
        .await
        .unwrap()
    {
        ledger_text.push_str(row.get::<_, &str>(0));
    }
    let secrets = [
        PASSWORD,
        "rpc-password-5150",
        "rpc-api-key-0123456789",
        harness.account.private_key_marker.as_str(),
        "ya29.test-",
    ];
    for secret in secrets {
        assert!(secret.len() >= 10);
        for out in &outputs {
            assert!(
                !out.all().contains(secret),
                "secret {secret:?} leaked in {out:?}"
            );
        }
        assert!(
            !ledger_text.contains(secret),
            "secret leaked into the ledger"
        );
    }
    assert!(
        outputs[1].stdout.contains("postgres:***@"),
        "{}",
        outputs[1].stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_credentials_at_all_explains_both_sources() {
    let dir = tempfile::tempdir().unwrap();
    let out = Ethpipe::new(env!("CARGO_BIN_EXE_ethpipe"))
        .cwd(dir.path())
        .env("HOME", dir.path().display().to_string())
        .run(&["run", "token_transfers", "--date", DAY])
        .await;
    let expected = case("no credentials", &[], 2, "no BigQuery credentials found");
    assert_one_clear_line(&expected, &out);
    assert!(
        out.stderr.contains("--credentials") && out.stderr.contains("--source rpc"),
        "{}",
        out.stderr
    );
    assert!(!dir.path().join("ethpipe.db").exists());
}

/// `export` of days the database never loaded, or from Parquet files: one
/// line, exit 2, and no file written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_of_days_never_loaded_write_nothing() {
    let harness = Harness::start().await;
    let db = fresh_database().await;
    harness.bigquery.set_transfers(day_transfers(DAY, 10, 1));
    harness
        .ethpipe(&db.url)
        .run(&["run", "token_transfers", "--date", DAY])
        .await
        .assert_success();
    // Relative to the binary's working folder, the harness's temp folder.
    let out = harness.dir.path().join("out");
    let export = |from: &'static str, to: &'static str| -> Vec<&'static str> {
        vec![
            "export",
            "--format",
            "parquet",
            "--from",
            from,
            "--to",
            to,
            "--out-dir",
            "out",
        ]
    };
    let files_url = format!("parquet://{}", harness.dir.path().join("files").display());
    let cases = vec![
        Case {
            name: "export of days never loaded",
            args: export(DAY, "2024-03-03"),
            env: Vec::new(),
            code: 2,
            says: "token_transfers was never loaded for 2024-03-02, 2024-03-03",
        },
        Case {
            name: "export of a pipeline never loaded",
            args: [vec!["export", "tokens"], export(DAY, DAY)[1..].to_vec()].concat(),
            env: Vec::new(),
            code: 2,
            says: "tokens was never loaded for 2024-03-01",
        },
        Case {
            name: "export from Parquet files",
            args: export(DAY, DAY),
            env: vec![("ETHPIPE_DATABASE_URL", files_url)],
            code: 2,
            says: "is already files: export reads a postgres:// or sqlite://",
        },
    ];
    for case in &cases {
        let mut command = harness.ethpipe(&db.url);
        for (key, value) in &case.env {
            command = command.env(key, value.clone());
        }
        let output = command.run(&case.args).await;
        assert_one_clear_line(case, &output);
        assert!(!out.exists(), "{}: files were written", case.name);
    }
    assert!(!harness.dir.path().join("files").exists());
}
