//! What a node's error objects decide (issue 14, fault 7), on real anvil
//! behind the fault-injecting proxy, with several runs on one source as
//! `serve` makes them:
//!
//! - contract discovery moves from `trace_block` to the next method only on
//!   the node's structured "method not found" code, and each run probes
//!   again, so a transient error never downgrades a later run;
//! - a quota error ("limit exceeded") is retried, never taken for "too many
//!   results" and split.

use std::time::Duration;

use chrono::NaiveDate;
use ethpipe_core::datasets::{TOKENS, TOKEN_TRANSFERS};
use ethpipe_core::{
    Day, Pipeline, Rows, Scope, Slice, Source, SourceError, SourceEvent, Token, TokenTransfer,
};
use ethpipe_sources::retry::RetryPolicy;
use ethpipe_sources::rpc::{RpcConfig, RpcSource};
use ethpipe_testkit::chain::{encode_call, utc_timestamp};
use ethpipe_testkit::{Anvil, Arg, Fault, Match, RpcProxy};
use serde_json::Value;

const DAY: &str = "2024-03-01";

fn date(text: &str) -> NaiveDate {
    text.parse().expect("test date")
}

/// A token deployed on [`DAY`] and three transfers of it, each in its own
/// block; the day is closed by a block on the next day.
async fn token_day() -> Anvil {
    let anvil = Anvil::start_at(utc_timestamp(date("2024-02-29"), 12, 0, 0))
        .await
        .expect("anvil starts");
    let chain = anvil.chain().await.expect("chain");
    chain
        .set_next_block_timestamp(utc_timestamp(date(DAY), 1, 0, 0))
        .await
        .expect("timestamp");
    let token = chain
        .deploy(
            "StandardToken",
            &[
                Arg::string("Probe"),
                Arg::string("PRB"),
                Arg::uint(18),
                Arg::uint(1_000_000),
            ],
        )
        .await
        .expect("deploy");
    for i in 1..=3u32 {
        chain
            .set_next_block_timestamp(utc_timestamp(date(DAY), 2, i, 0))
            .await
            .expect("timestamp");
        let to = format!("0x{:040x}", 0x7000 + i);
        chain
            .send(
                &token,
                &encode_call(
                    "transfer(address,uint256)",
                    &[Arg::address(&to), Arg::uint(u128::from(i))],
                ),
            )
            .await
            .expect("transfer");
    }
    chain
        .mine(utc_timestamp(date("2024-03-02"), 0, 0, 30))
        .await
        .expect("close the day");
    anvil
}

/// A source as `serve` keeps one: shared by all the runs of the process.
fn source(url: &str, attempts: u32) -> RpcSource {
    let mut config = RpcConfig::new(url);
    // The finality gate is tested with the binary (rpc_finality.rs).
    config.finality = ethpipe_sources::rpc::finality::Finality::Confirmations(0);
    config.client.retry = RetryPolicy {
        attempts,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
    };
    RpcSource::connect(config).expect("source")
}

/// One run's rows of `pipeline` for [`DAY`], in the order they came.
async fn run(source: &RpcSource, pipeline: Pipeline) -> Result<Vec<Rows>, SourceError> {
    let mut stream = source.extract(Slice::all(pipeline, Scope::Day(Day::from_naive(date(DAY)))));
    let mut batches = Vec::new();
    loop {
        match stream.next().await? {
            SourceEvent::Rows(rows) => batches.push(rows),
            SourceEvent::Warning(_) => {}
            SourceEvent::End { .. } => return Ok(batches),
        }
    }
}

async fn tokens(source: &RpcSource) -> Result<Vec<Token>, SourceError> {
    let mut tokens = Vec::new();
    for batch in run(source, TOKENS).await? {
        if let Some(rows) = batch.as_slice::<Token>() {
            tokens.extend_from_slice(rows);
        }
    }
    Ok(tokens)
}

async fn transfers(source: &RpcSource) -> Result<Vec<TokenTransfer>, SourceError> {
    let mut transfers = Vec::new();
    for batch in run(source, TOKEN_TRANSFERS).await? {
        if let Some(rows) = batch.as_slice::<TokenTransfer>() {
            transfers.extend_from_slice(rows);
        }
    }
    Ok(transfers)
}

/// The day's tokens read straight from anvil, with no proxy in the way.
async fn reference_tokens(anvil: &Anvil) -> Vec<Token> {
    let found = tokens(&source(anvil.url(), 1)).await.expect("clean run");
    assert!(
        found.iter().any(|t| !t.found_in_transfers),
        "the deployment is found by tracing: {found:?}"
    );
    found
}

const DEBUG_TRACE: &str = "debug_traceBlockByNumber";
const RECEIPTS: &str = "eth_getBlockReceipts";

#[tokio::test]
async fn a_transient_trace_block_error_does_not_downgrade_discovery() {
    let anvil = token_day().await;
    let expected = reference_tokens(&anvil).await;
    let proxy = RpcProxy::start(anvil.url()).await.expect("proxy");
    let source = source(&proxy.url(), 5);

    // Words that used to read as "not supported", under a code that says
    // nothing of the kind (-32000, a server error).
    proxy.fail_next_matching(
        2,
        Match::method("trace_block"),
        Fault::RpcError {
            code: -32000,
            message: "trace_block is temporarily not available, try again".into(),
        },
    );
    assert_eq!(tokens(&source).await.expect("first run"), expected);
    assert_eq!(proxy.fault_count("rpc_error"), 2);
    assert_eq!(proxy.pending_faults(), 0);
    assert_eq!(proxy.method_count(DEBUG_TRACE), 0, "no downgrade");
    assert_eq!(proxy.method_count(RECEIPTS), 0, "no downgrade");

    let traced = proxy.method_count("trace_block");
    assert_eq!(tokens(&source).await.expect("second run"), expected);
    assert!(proxy.method_count("trace_block") > traced);
    assert_eq!(proxy.method_count(DEBUG_TRACE), 0);
    assert_eq!(proxy.method_count(RECEIPTS), 0);
}

#[tokio::test]
async fn an_error_that_persists_fails_the_run_and_decides_nothing() {
    let anvil = token_day().await;
    let expected = reference_tokens(&anvil).await;
    let proxy = RpcProxy::start(anvil.url()).await.expect("proxy");
    let source = source(&proxy.url(), 3);

    proxy.fail_always(
        Match::method("trace_block"),
        Fault::RpcError {
            code: -32000,
            message: "header not found".into(),
        },
    );
    match tokens(&source).await {
        Err(SourceError::Transient(message)) => {
            assert!(message.contains("header not found"), "{message}")
        }
        other => panic!("expected a transient failure, got {other:?}"),
    }
    assert_eq!(
        proxy.fault_count("rpc_error"),
        3,
        "asked 3 times, then failed"
    );
    assert_eq!(proxy.method_count(DEBUG_TRACE), 0);
    assert_eq!(proxy.method_count(RECEIPTS), 0);

    proxy.clear_faults();
    assert_eq!(tokens(&source).await.expect("the node is well"), expected);
    assert_eq!(proxy.method_count(DEBUG_TRACE), 0);
}

#[tokio::test]
async fn a_node_without_trace_block_is_probed_again_in_the_next_run() {
    let anvil = token_day().await;
    let expected = reference_tokens(&anvil).await;
    let proxy = RpcProxy::start(anvil.url()).await.expect("proxy");
    let source = source(&proxy.url(), 3);

    proxy.fail_always(
        Match::method("trace_block"),
        Fault::RpcError {
            code: -32601,
            message: "the method trace_block does not exist/is not available".into(),
        },
    );
    assert_eq!(tokens(&source).await.expect("geth-style run"), expected);
    let debug_traced = proxy.method_count(DEBUG_TRACE);
    assert!(debug_traced > 0, "the call tracer took over");

    // The node now offers trace_block (an upgrade, or the error was a
    // load balancer's other backend): the next run uses it.
    proxy.clear_faults();
    let traced = proxy.method_count("trace_block");
    let refused = proxy.fault_count("rpc_error");
    assert_eq!(tokens(&source).await.expect("next run"), expected);
    assert!(proxy.method_count("trace_block") > traced, "probed again");
    assert_eq!(proxy.fault_count("rpc_error"), refused);
    assert_eq!(proxy.method_count(DEBUG_TRACE), debug_traced);
}

/// Every `eth_getLogs` block range asked, in order.
fn log_ranges(proxy: &RpcProxy) -> Vec<(String, String)> {
    proxy
        .requests()
        .iter()
        .flat_map(|body| match body {
            Value::Array(calls) => calls.clone(),
            single => vec![single.clone()],
        })
        .filter(|call| call["method"] == "eth_getLogs")
        .map(|call| {
            let filter = &call["params"][0];
            (
                filter["fromBlock"].as_str().unwrap_or_default().to_string(),
                filter["toBlock"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_limit_exceeded_quota_error_is_retried_not_split() {
    let anvil = token_day().await;
    let clean = RpcProxy::start(anvil.url()).await.expect("proxy");
    let expected = transfers(&source(&clean.url(), 1))
        .await
        .expect("clean run");
    let day_range = log_ranges(&clean);
    assert_eq!(day_range.len(), 1, "the day fits one eth_getLogs range");
    assert_eq!(expected.len(), 4, "the mint and three transfers");

    let proxy = RpcProxy::start(anvil.url()).await.expect("proxy");
    proxy.fail_next_matching(
        1,
        Match::method("eth_getLogs"),
        Fault::RpcError {
            code: -32005,
            message: "limit exceeded".into(),
        },
    );
    let got = transfers(&source(&proxy.url(), 5))
        .await
        .expect("the day loads");
    assert_eq!(got, expected);
    assert_eq!(proxy.fault_count("rpc_error"), 1);
    // The refused range was asked again whole, not halved.
    assert_eq!(log_ranges(&proxy), vec![day_range[0].clone(); 2]);
}
