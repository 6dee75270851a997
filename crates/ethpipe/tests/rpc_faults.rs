//! `--source rpc` through a proxy that misbehaves the way real providers do:
//! refusing large log ranges, rate limiting, dropping connections, going
//! down. The day must load identically, or fail cleanly with nothing written.

mod common;

use chrono::NaiveDate;
use ethpipe_testkit::chain::{encode_call, utc_timestamp};
use ethpipe_testkit::{
    Anvil, Arg, Ethpipe, Fault, FixtureTransfer, LogLimitWording, Match, RpcProxy, TestDatabase,
};
use tempfile::TempDir;

const DAY: &str = "2024-03-01";

fn day(text: &str) -> NaiveDate {
    text.parse().expect("test date")
}

/// A chain with one token and `batches` batch transfers of 25 recipients,
/// each in its own block, all on [`DAY`]; the day is closed.
async fn busy_chain(batches: u32) -> Anvil {
    let genesis = utc_timestamp(day(DAY).pred_opt().expect("date"), 12, 0, 0);
    let anvil = Anvil::start_at(genesis).await.expect("anvil starts");
    let chain = anvil.chain().await.expect("chain");
    chain
        .set_next_block_timestamp(utc_timestamp(day(DAY), 1, 0, 0))
        .await
        .expect("timestamp");
    let token = chain
        .deploy(
            "StandardToken",
            &[
                Arg::string("Busy"),
                Arg::string("BSY"),
                Arg::uint(18),
                Arg::uint(10u128.pow(30)),
            ],
        )
        .await
        .expect("deploy");
    let recipients: Vec<String> = (1..=25).map(|i| format!("0x{:040x}", 0x5000 + i)).collect();
    let refs: Vec<&str> = recipients.iter().map(String::as_str).collect();
    for batch in 0..batches {
        let values: Vec<u128> = (1..=25).map(|i| u128::from(batch) * 100 + i).collect();
        chain
            .set_next_block_timestamp(utc_timestamp(day(DAY), 2, batch, 0))
            .await
            .expect("timestamp");
        chain
            .send(
                &token,
                &encode_call(
                    "batchTransfer(address[],uint256[])",
                    &[Arg::addresses(&refs), Arg::uints(&values)],
                ),
            )
            .await
            .expect("batch transfer");
    }
    chain
        .mine(utc_timestamp(day("2024-03-02"), 0, 0, 30))
        .await
        .expect("close the day");
    anvil
}

struct Target {
    database: TestDatabase,
    dir: TempDir,
}

impl Target {
    async fn new() -> Target {
        Target {
            database: common::fresh_database().await,
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn ethpipe(&self, rpc_url: &str) -> Ethpipe {
        Ethpipe::new(env!("CARGO_BIN_EXE_ethpipe"))
            .cwd(self.dir.path())
            .env("ETHPIPE_DATABASE_URL", self.database.url.clone())
            .env("ETHPIPE_SOURCE", "rpc")
            .env("ETHPIPE_RPC_URL", rpc_url)
            .env("ETHPIPE_RPC_CONCURRENCY", "2")
            // The finality gate is tested in rpc_anvil.rs.
            .env("ETHPIPE_RPC_CONFIRMATIONS", "0")
    }

    async fn transfers(&self) -> Vec<FixtureTransfer> {
        let client = self.database.client().await.expect("client");
        common::pg_transfers(&client, "").await
    }
}

/// The day loaded straight from the node, for comparison.
async fn reference(anvil: &Anvil) -> Vec<FixtureTransfer> {
    let direct = Target::new().await;
    direct
        .ethpipe(anvil.url())
        .run(&["run", "token_transfers", "--date", DAY])
        .await
        .assert_success();
    direct.transfers().await
}

#[tokio::test]
async fn a_node_refusing_large_ranges_still_loads_the_day() {
    let anvil = busy_chain(8).await;
    let expected = reference(&anvil).await;
    assert_eq!(expected.len(), 1 + 8 * 25);
    for wording in [
        LogLimitWording::QueryReturnedMore,
        LogLimitWording::ResponseSizeExceeded,
    ] {
        let proxy = RpcProxy::start(anvil.url()).await.expect("proxy");
        proxy.limit_logs(30, wording);
        let target = Target::new().await;
        target
            .ethpipe(&proxy.url())
            .run(&["run", "token_transfers", "--date", DAY])
            .await
            .assert_success();
        assert_eq!(target.transfers().await, expected);
        assert!(
            proxy.fault_counts().values().sum::<u64>() > 0,
            "the proxy refused at least one range: {:?}",
            proxy.fault_counts()
        );
        assert!(proxy.method_count("eth_getLogs") > 2, "ranges were split");
    }
}

#[tokio::test]
async fn rate_limits_and_drops_are_retried() {
    let anvil = busy_chain(3).await;
    let expected = reference(&anvil).await;
    let cases = [
        ("HTTP 429", Fault::too_many_requests()),
        ("JSON-RPC rate limit", Fault::rate_limit_error()),
        ("HTTP 503", Fault::Status(503)),
        ("dropped connection", Fault::Drop),
        ("cut-off answer", Fault::Truncate),
    ];
    for (name, fault) in cases {
        let proxy = RpcProxy::start(anvil.url()).await.expect("proxy");
        proxy.fail_next(2, fault);
        let target = Target::new().await;
        let out = target
            .ethpipe(&proxy.url())
            .run(&["run", "token_transfers", "--date", DAY])
            .await;
        assert_eq!(out.code, 0, "{name}: {}", out.all());
        assert_eq!(target.transfers().await, expected, "{name}: identical rows");
        assert_eq!(proxy.pending_faults(), 0, "{name}: both faults were hit");
    }
    // The same for the metadata calls of a tokens run: a rate limit is
    // retried, never turned into a NULL.
    let proxy = RpcProxy::start(anvil.url()).await.expect("proxy");
    // Two faults: within the three attempts the tests allow.
    proxy.fail_next_matching(2, Match::method("eth_call"), Fault::rate_limit_error());
    let target = Target::new().await;
    target
        .ethpipe(&proxy.url())
        .run(&["run", "tokens", "--date", DAY])
        .await
        .assert_success();
    assert_eq!(proxy.pending_faults(), 0);
    let client = target.database.client().await.expect("client");
    let row = client
        .query_one(
            "SELECT symbol, name, decimals::text, total_supply::text FROM ethereum.tokens",
            &[],
        )
        .await
        .expect("one token");
    let got: (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    ) = (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!(
        got,
        (
            Some("BSY".into()),
            Some("Busy".into()),
            Some("18".into()),
            Some(format!("{}", 10u128.pow(30)))
        )
    );
}

#[tokio::test]
async fn a_node_that_stays_down_fails_cleanly() {
    let anvil = busy_chain(2).await;
    let proxy = RpcProxy::start(anvil.url()).await.expect("proxy");
    let target = Target::new().await;
    target
        .ethpipe(&proxy.url())
        .run(&["run", "token_transfers", "--date", DAY])
        .await
        .assert_success();
    let loaded = target.transfers().await;
    assert_eq!(loaded.len(), 51);

    proxy.stay_down(Fault::Status(503));
    let out = target
        .ethpipe(&proxy.url())
        .run(&["run", "token_transfers", "--date", DAY])
        .await;
    assert_eq!(out.code, 1, "{}", out.all());
    // Retries are logged as warnings; the failure itself is one line.
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{}", out.stderr);
    assert!(errors[0].contains("503"), "{}", out.stderr);
    assert!(
        errors[0].contains("gave up after 3 attempts"),
        "{}",
        out.stderr
    );
    assert_eq!(
        target.transfers().await,
        loaded,
        "the loaded day is untouched"
    );
    let client = target.database.client().await.expect("client");
    let runs = common::pg_runs(&client).await;
    assert_eq!(runs.last().map(|r| r.0.as_str()), Some("failed"));
}

#[tokio::test]
async fn answers_slower_than_the_timeout_are_retried_then_fail_clearly() {
    let anvil = busy_chain(1).await;
    let expected = reference(&anvil).await;
    let proxy = RpcProxy::start(anvil.url()).await.expect("proxy");
    proxy.fail_next(2, Fault::Delay(std::time::Duration::from_secs(3)));
    let target = Target::new().await;
    target
        .ethpipe(&proxy.url())
        .env("ETHPIPE_RPC_TIMEOUT", "0.5")
        .run(&["run", "token_transfers", "--date", DAY])
        .await
        .assert_success();
    assert_eq!(target.transfers().await, expected);
    assert_eq!(
        proxy.pending_faults(),
        0,
        "both slow answers were waited out"
    );

    // Always slow: the bounded retries end in one clear line, nothing written.
    proxy.stay_down(Fault::Delay(std::time::Duration::from_secs(3)));
    let fresh = Target::new().await;
    let out = fresh
        .ethpipe(&proxy.url())
        .env("ETHPIPE_RPC_TIMEOUT", "0.5")
        .run(&["run", "token_transfers", "--date", DAY])
        .await;
    assert_eq!(out.code, 1, "{}", out.all());
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{}", out.stderr);
    assert!(errors[0].contains("timed out"), "{}", out.stderr);
    assert!(fresh.transfers().await.is_empty());
}
