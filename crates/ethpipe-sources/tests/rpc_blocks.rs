//! Day → block range on a real node (docs/rpc-semantics.md, rules 1–4 and 35):
//! blocks placed at exact instants around midnight on anvil.

use chrono::NaiveDate;
use ethpipe_core::Day;
use ethpipe_sources::rpc::blocks::{Blocks, DayBlocks};
use ethpipe_sources::rpc::client::{RpcClient, RpcClientConfig};
use ethpipe_testkit::chain::utc_timestamp;
use ethpipe_testkit::Anvil;

fn date(text: &str) -> NaiveDate {
    text.parse().expect("date")
}

fn day(text: &str) -> Day {
    Day::from_naive(date(text))
}

async fn blocks_of(anvil: &Anvil) -> Blocks {
    Blocks::new(RpcClient::new(anvil.url(), RpcClientConfig::default()).expect("client"))
}

/// Genesis at `D-1 12:00`; block 1 at `D-1 23:59:59`, then `D 00:00:00`,
/// `D 12:00:00`, `D 23:59:59` and `D+1 00:00:00` (blocks 2–5).
async fn midnight_chain() -> Anvil {
    let anvil = Anvil::start_at(utc_timestamp(date("2024-02-29"), 12, 0, 0))
        .await
        .expect("anvil");
    let chain = anvil.chain().await.expect("chain");
    for (d, h, m, s) in [
        ("2024-02-29", 23, 59, 59),
        ("2024-03-01", 0, 0, 0),
        ("2024-03-01", 12, 0, 0),
        ("2024-03-01", 23, 59, 59),
        ("2024-03-02", 0, 0, 0),
    ] {
        chain
            .mine(utc_timestamp(date(d), h, m, s))
            .await
            .expect("mine");
    }
    anvil
}

#[tokio::test]
async fn a_day_runs_from_its_first_block_at_or_after_midnight_to_its_last_at_or_before_235959() {
    let anvil = midnight_chain().await;
    let blocks = blocks_of(&anvil).await;
    assert_eq!(
        blocks.day_blocks(day("2024-03-01")).await.expect("range"),
        DayBlocks::Range { first: 2, last: 4 }
    );
    // Block 1 is the first searched; the genesis block folds into its day (rule 3).
    assert_eq!(
        blocks.day_blocks(day("2024-02-29")).await.expect("range"),
        DayBlocks::Range { first: 0, last: 1 }
    );
}

#[tokio::test]
async fn a_day_is_loaded_only_once_it_is_over_on_the_node() {
    let anvil = midnight_chain().await;
    let blocks = blocks_of(&anvil).await;
    // The latest block is at 2024-03-02 00:00:00: that day has just begun.
    let error = blocks
        .day_blocks(day("2024-03-02"))
        .await
        .expect_err("2024-03-02 is not over");
    assert!(error.to_string().contains("not complete yet"), "{error}");
    let chain = anvil.chain().await.expect("chain");
    chain
        .mine(utc_timestamp(date("2024-03-02"), 23, 59, 59))
        .await
        .expect("mine");
    assert_eq!(
        blocks.day_blocks(day("2024-03-02")).await.expect("range"),
        DayBlocks::Range { first: 5, last: 6 }
    );
}

#[tokio::test]
async fn a_finished_day_without_blocks_is_empty() {
    let anvil = midnight_chain().await;
    let chain = anvil.chain().await.expect("chain");
    chain
        .mine(utc_timestamp(date("2024-03-05"), 1, 0, 0))
        .await
        .expect("mine");
    let blocks = blocks_of(&anvil).await;
    for empty in ["2024-03-03", "2024-03-04", "2024-02-01"] {
        assert_eq!(
            blocks.day_blocks(day(empty)).await.expect("range"),
            DayBlocks::Empty,
            "{empty}"
        );
    }
}

#[tokio::test]
async fn the_search_takes_few_calls_on_a_long_chain() {
    // 3,000 blocks, one a minute: about two days.
    let anvil = Anvil::start_at(utc_timestamp(date("2024-03-01"), 0, 0, 30))
        .await
        .expect("anvil");
    let chain = anvil.chain().await.expect("chain");
    chain
        .request("anvil_mine", serde_json::json!(["0xbb8", "0x3c"]))
        .await
        .expect("anvil_mine");
    let proxy = ethpipe_testkit::RpcProxy::start(anvil.url())
        .await
        .expect("proxy");
    let blocks =
        Blocks::new(RpcClient::new(&proxy.url(), RpcClientConfig::default()).expect("client"));
    let range = blocks.day_blocks(day("2024-03-01")).await.expect("range");
    let calls = proxy.method_count("eth_getBlockByNumber");
    assert!(
        calls <= 30,
        "{calls} header requests for a 3,000-block search"
    );
    // Asking again is answered from the cache.
    blocks.day_blocks(day("2024-03-01")).await.expect("range");
    assert!(proxy.method_count("eth_getBlockByNumber") <= calls + 1);
    let DayBlocks::Range { first, last } = range else {
        panic!("expected blocks on 2024-03-01, got {range:?}");
    };
    let ts = |n: u64| {
        let chain = chain.clone();
        async move { chain.block_timestamp(n).await.expect("timestamp") }
    };
    let start = utc_timestamp(date("2024-03-01"), 0, 0, 0);
    let end = utc_timestamp(date("2024-03-01"), 23, 59, 59);
    assert!(ts(first).await >= start || first == 0);
    assert!(ts(last).await <= end);
    assert!(ts(last + 1).await > end);
    assert_eq!(first, 0, "genesis at 00:00:30 is the day's first block");
}
