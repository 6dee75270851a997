//! The JSON-RPC source's in-flight budget on real anvil: several days
//! extracted at once from one source (as `backfill --parallel` does), with
//! many requests allowed, never hold more blocks or answer bytes than the
//! budget, and give exactly the rows an unbounded run gives.

use chrono::NaiveDate;
use ethpipe_core::datasets::TOKEN_TRANSFERS;
use ethpipe_core::{Day, Scope, Slice, Source, SourceEvent, TokenTransfer};
use ethpipe_sources::rpc::budget::Cost;
use ethpipe_sources::rpc::finality::Finality;
use ethpipe_sources::rpc::{RpcConfig, RpcSource};
use ethpipe_testkit::chain::{encode_call, utc_timestamp};
use ethpipe_testkit::{Anvil, Arg};

const DAYS: [&str; 3] = ["2024-03-01", "2024-03-02", "2024-03-03"];
const BLOCKS_PER_DAY: u32 = 12;
const RECIPIENTS: u32 = 40;

fn date(text: &str) -> NaiveDate {
    text.parse().expect("test date")
}

/// [`DAYS`], each with [`BLOCKS_PER_DAY`] blocks of one batch transfer to
/// [`RECIPIENTS`] holders (~28 kB of `eth_getLogs` answer a block); the
/// last day is closed.
async fn busy_days() -> Anvil {
    let anvil = Anvil::start_at(utc_timestamp(date("2024-02-29"), 12, 0, 0))
        .await
        .expect("anvil starts");
    let chain = anvil.chain().await.expect("chain");
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
    let holders: Vec<String> = (1..=RECIPIENTS)
        .map(|i| format!("0x{:040x}", 0x9000 + i))
        .collect();
    let holders: Vec<&str> = holders.iter().map(String::as_str).collect();
    for (d, day) in DAYS.iter().enumerate() {
        for block in 0..BLOCKS_PER_DAY {
            chain
                .set_next_block_timestamp(utc_timestamp(date(day), 1 + block, 0, 0))
                .await
                .expect("timestamp");
            let values: Vec<u128> = (1..=u128::from(RECIPIENTS))
                .map(|i| (d as u128 * 1_000 + u128::from(block)) * 100 + i)
                .collect();
            let call = encode_call(
                "batchTransfer(address[],uint256[])",
                &[Arg::addresses(&holders), Arg::uints(&values)],
            );
            chain.send(&token, &call).await.expect("batch transfer");
        }
    }
    chain
        .mine(utc_timestamp(date("2024-03-04"), 0, 0, 30))
        .await
        .expect("close the last day");
    anvil
}

fn source(url: &str, concurrency: usize, in_flight: Cost) -> RpcSource {
    let mut config = RpcConfig::new(url);
    config.finality = Finality::Confirmations(0);
    config.client.concurrency = concurrency;
    config.in_flight = in_flight;
    RpcSource::connect(config).expect("source")
}

/// One day's transfers, as (transaction hash, log index, value).
async fn day_rows(source: &RpcSource, day: &str) -> Vec<(String, i64, String)> {
    let slice = Slice::all(TOKEN_TRANSFERS, Scope::Day(Day::from_naive(date(day))));
    let mut stream = source.extract(slice);
    let mut rows = Vec::new();
    loop {
        match stream.next().await.expect("the day extracts") {
            SourceEvent::Rows(batch) => {
                let transfers = batch.as_slice::<TokenTransfer>().expect("transfers");
                rows.extend(transfers.iter().map(|t| {
                    let value = t.value.as_ref().map(ToString::to_string);
                    (
                        t.transaction_hash.clone(),
                        t.log_index,
                        value.unwrap_or_default(),
                    )
                }));
            }
            SourceEvent::Warning(_) => {}
            SourceEvent::End { .. } => break,
        }
    }
    rows.sort();
    rows
}

/// Every day at once, as `backfill --parallel` runs them on one source.
async fn all_days(source: &RpcSource) -> Vec<Vec<(String, i64, String)>> {
    futures_util::future::join_all(DAYS.iter().map(|day| day_rows(source, day))).await
}

#[tokio::test]
async fn parallel_days_stay_within_the_shared_budget_and_lose_no_row() {
    let anvil = busy_days().await;
    let unbounded = source(anvil.url(), 16, ethpipe_sources::rpc::DEFAULT_IN_FLIGHT);
    let expected = all_days(&unbounded).await;
    for rows in &expected {
        assert_eq!(rows.len(), (BLOCKS_PER_DAY * RECIPIENTS) as usize);
    }

    // Room for about three blocks' answers and six blocks at once, while
    // 16 requests and three days could otherwise put the whole chain in flight.
    let limit = Cost {
        blocks: 6,
        bytes: 96 * 1024,
    };
    let bounded = source(anvil.url(), 16, limit);
    let got = all_days(&bounded).await;
    assert_eq!(got, expected, "a bounded run gives the same rows");

    let stats = bounded.in_flight();
    assert_eq!(stats.limit, limit);
    assert!(
        stats.peak.bytes <= limit.bytes && stats.peak.blocks <= limit.blocks,
        "the budget was exceeded: {stats:?}"
    );
    assert!(
        stats.waits > 0,
        "the bound never had to hold a range back: {stats:?}"
    );
    assert!(
        stats.granted > DAYS.len() as u64 * 2,
        "days were read in several ranges: {stats:?}"
    );
    assert_eq!(
        stats.held,
        Cost::default(),
        "every reservation was given back"
    );
}
