//! The JSON-RPC source's in-flight budget on real anvil: several days
//! extracted at once from one source (as `backfill --parallel` does), with
//! many requests allowed, never hold more blocks or answer bytes than the
//! budget, and give exactly the rows an unbounded run gives; an answer
//! larger than its range reserved is fetched again in halves, losing no row.

use chrono::NaiveDate;
use ethpipe_core::datasets::TOKEN_TRANSFERS;
use ethpipe_core::{Day, Scope, Slice, Source, SourceEvent, TokenTransfer};
use ethpipe_sources::rpc::budget::Cost;
use ethpipe_sources::rpc::finality::Finality;
use ethpipe_sources::rpc::{RpcConfig, RpcSource, DEFAULT_IN_FLIGHT};
use ethpipe_testkit::chain::{encode_call, utc_timestamp};
use ethpipe_testkit::{Anvil, Arg};

const DAYS: [&str; 3] = ["2024-03-01", "2024-03-02", "2024-03-03"];
const BLOCKS_PER_DAY: u32 = 12;
const RECIPIENTS: u32 = 40;

type Transfers = Vec<(String, i64, String)>;

fn date(text: &str) -> NaiveDate {
    text.parse().expect("test date")
}

/// `days`, each with `blocks` blocks of one batch transfer to `recipients`
/// holders (~0.6 kB of `eth_getLogs` answer a transfer); the last day is
/// closed.
async fn busy_days(days: &[&str], blocks: u32, recipients: u32) -> Anvil {
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
    let holders: Vec<String> = (1..=recipients)
        .map(|i| format!("0x{:040x}", 0x9000 + i))
        .collect();
    let holders: Vec<&str> = holders.iter().map(String::as_str).collect();
    for (d, day) in days.iter().enumerate() {
        for block in 0..blocks {
            chain
                .set_next_block_timestamp(utc_timestamp(date(day), 1 + block, 0, 0))
                .await
                .expect("timestamp");
            let values: Vec<u128> = (1..=u128::from(recipients))
                .map(|i| (d as u128 * 1_000 + u128::from(block)) * 1_000 + i)
                .collect();
            let call = encode_call(
                "batchTransfer(address[],uint256[])",
                &[Arg::addresses(&holders), Arg::uints(&values)],
            );
            chain.send(&token, &call).await.expect("batch transfer");
        }
    }
    let last = date(days.last().expect("a day"));
    let next = last.succ_opt().expect("a next day");
    chain
        .mine(utc_timestamp(next, 0, 0, 30))
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
async fn day_rows(source: &RpcSource, day: &str) -> Transfers {
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
async fn all_days(source: &RpcSource, days: &[&str]) -> Vec<Transfers> {
    futures_util::future::join_all(days.iter().map(|day| day_rows(source, day))).await
}

#[tokio::test]
async fn parallel_days_stay_within_the_shared_budget_and_lose_no_row() {
    let anvil = busy_days(&DAYS, BLOCKS_PER_DAY, RECIPIENTS).await;
    let unbounded = source(anvil.url(), 16, DEFAULT_IN_FLIGHT);
    let expected = all_days(&unbounded, &DAYS).await;
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
    let got = all_days(&bounded, &DAYS).await;
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

#[tokio::test]
async fn an_answer_larger_than_its_reservation_is_fetched_again_in_halves() {
    // Blocks of 400 transfers (~250 kB of answer each), denser than the
    // source assumes before its first answer, so its first two-block ranges
    // outgrow what they reserved.
    let day = ["2024-03-01"];
    let anvil = busy_days(&day, 6, 400).await;
    let unbounded = source(anvil.url(), 4, DEFAULT_IN_FLIGHT);
    let expected = all_days(&unbounded, &day).await;
    assert_eq!(expected[0].len(), 6 * 400);

    let limit = Cost {
        blocks: 64,
        bytes: 1024 * 1024,
    };
    let bounded = source(anvil.url(), 4, limit);
    assert_eq!(all_days(&bounded, &day).await, expected);
    let stats = bounded.in_flight();
    assert!(
        stats.oversized > 0,
        "no answer outgrew its reservation: {stats:?}"
    );
    assert!(
        stats.peak.bytes <= limit.bytes,
        "the budget was exceeded: {stats:?}"
    );
}
