//! Every shape `erc1155_transfers` must handle, put on an anvil chain by the
//! `Erc1155Shapes` test contract over two UTC days, with blocks on both sides
//! of midnight.

use anyhow::{bail, Context};
use chrono::NaiveDate;

use crate::anvil::Anvil;
use crate::chain::{day_start, encode_call, utc_timestamp, Arg, Chain, Sent, Tx};
use crate::erc1155::{expected_for_blocks, Expected};
use crate::logs::{node_logs, FixtureLog};

/// Addresses that only appear in logs (nobody holds their keys).
pub const ALICE: &str = "0xa1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1";
pub const BOB: &str = "0xb0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0";
pub const CAROL: &str = "0xc0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0";
/// An operator that is neither the sender nor a holder.
pub const MARKET: &str = "0x0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e";
pub const ZERO: &str = "0x0000000000000000000000000000000000000000";

/// One scenario transaction, mined and successful.
#[derive(Debug, Clone)]
pub struct ScenarioTx {
    /// One of the `Erc1155Scenario::*` label constants.
    pub label: &'static str,
    pub sent: Sent,
}

/// What [`Erc1155Scenario::run`] put on the chain. With `D1` = `first_day`,
/// `D2` = `second_day`, contracts `A`, `B`, the sender `S` (the chain's first
/// account), the blocks and their transactions (in block order) are:
///
/// | block at (UTC) | label | logs |
/// |---|---|---|
/// | D1 00:00:00 | `MINT_SINGLE` | A: TransferSingle(S, 0x0, ALICE, id 1, 100) |
/// | D1 08:00:00 | `MINT_BATCH_OF_50` | A: TransferBatch(S, 0x0, BOB, ids 1000..1049, values id+1) |
/// | | `MAX_SINGLE` | A: TransferSingle(MARKET, ALICE, BOB, 2^256−1, 2^256−1) |
/// | | `BATCH_WITH_MAX` | B: TransferBatch(S, ALICE, CAROL, [7, 2^256−1], [2^256−1, 0]) |
/// | D1 12:00:00 | `MALFORMED_SINGLES` | A: 4 skipped TransferSingle-topic logs (2 with too few topics, 2 with short data) |
/// | | `MALFORMED_BATCHES` | A: 4 skipped TransferBatch-topic logs (unequal lengths, truncated, bad offset, too few topics) |
/// | | `ERC20_AND_SINGLE` | B: Transfer(ALICE, BOB, 500), TransferSingle(S, ALICE, BOB, 42, 3), Transfer(BOB, ALICE, 500) |
/// | D1 23:59:59 | `SINGLE_AT_DAY_END` | A: TransferSingle(S, BOB, ALICE, 1000, 1) |
/// | | `BURN_BATCH_AT_DAY_END` | B: TransferBatch(S, BOB, 0x0, [1, 2, 3], [1, 1, 1]) |
/// | D2 00:00:00 | `BURN_SINGLE_AT_DAY_START` | A: TransferSingle(S, ALICE, 0x0, 1, 100) |
/// | | `ERC20_AND_SINGLE_AT_DAY_START` | A: Transfer(BOB, CAROL, 1), TransferSingle(S, BOB, CAROL, 1001, 2), Transfer(CAROL, BOB, 1) |
/// | D2 06:00:00 | `BATCH_OF_3` | B: TransferBatch(S, CAROL, ALICE, [10, 11, 12], [11, 12, 13]) |
/// | | `MALFORMED_SINGLES_ON_DAY_2` | B: 4 skipped TransferSingle-topic logs |
/// | D2 23:59:59 | `ONE_ID_BATCH_AT_DAY_END` | A: TransferBatch(S, ALICE, BOB, [5], [5]) |
/// | D2+1 00:00:00 | `SINGLE_AFTER_THE_DAYS` | A: TransferSingle(S, BOB, ALICE, 5, 5): the node (and BigQuery's logs) hold data past D2 |
///
/// So D1 has 59 rows and 8 skipped logs, D2 has 6 rows and 4 skipped logs,
/// D2+1 has 1 row. The contracts are deployed the day before D1, and
/// automine is on again afterwards.
#[derive(Debug, Clone)]
pub struct Erc1155Scenario {
    pub first_day: NaiveDate,
    pub second_day: NaiveDate,
    /// The two `Erc1155Shapes` instances `[A, B]`, lowercase.
    pub contracts: [String; 2],
    /// Every scenario transaction, in chain order.
    pub transactions: Vec<ScenarioTx>,
    /// The first and last blocks that hold scenario transactions.
    pub first_block: u64,
    pub last_block: u64,
}

impl Erc1155Scenario {
    pub const MINT_SINGLE: &'static str = "mint single";
    pub const MINT_BATCH_OF_50: &'static str = "mint batch of 50";
    pub const MAX_SINGLE: &'static str = "max single";
    pub const BATCH_WITH_MAX: &'static str = "batch with max";
    pub const MALFORMED_SINGLES: &'static str = "malformed singles";
    pub const MALFORMED_BATCHES: &'static str = "malformed batches";
    pub const ERC20_AND_SINGLE: &'static str = "erc20 and single";
    pub const SINGLE_AT_DAY_END: &'static str = "single at day end";
    pub const BURN_BATCH_AT_DAY_END: &'static str = "burn batch at day end";
    pub const BURN_SINGLE_AT_DAY_START: &'static str = "burn single at day start";
    pub const ERC20_AND_SINGLE_AT_DAY_START: &'static str = "erc20 and single at day start";
    pub const BATCH_OF_3: &'static str = "batch of 3";
    pub const MALFORMED_SINGLES_ON_DAY_2: &'static str = "malformed singles on day 2";
    pub const ONE_ID_BATCH_AT_DAY_END: &'static str = "one-id batch at day end";
    pub const SINGLE_AFTER_THE_DAYS: &'static str = "single after the days";

    /// The genesis timestamp that leaves room for the deployments before
    /// `first_day`: noon of the day before.
    pub fn genesis_timestamp(first_day: NaiveDate) -> u64 {
        let before = first_day.pred_opt().unwrap_or(first_day);
        utc_timestamp(before, 12, 0, 0)
    }

    /// Starts anvil at [`Erc1155Scenario::genesis_timestamp`] and runs the
    /// scenario on it.
    pub async fn start(first_day: NaiveDate) -> anyhow::Result<(Anvil, Chain, Erc1155Scenario)> {
        let anvil = Anvil::start_at(Erc1155Scenario::genesis_timestamp(first_day)).await?;
        let chain = anvil.chain().await?;
        let scenario = Erc1155Scenario::run(&chain, first_day).await?;
        Ok((anvil, chain, scenario))
    }

    /// Deploys two `Erc1155Shapes` and mines the blocks of the table above.
    /// The chain's latest block must be before `first_day`.
    pub async fn run(chain: &Chain, first_day: NaiveDate) -> anyhow::Result<Erc1155Scenario> {
        let second_day = first_day.succ_opt().context("first_day has no next day")?;
        let latest = chain.block_number().await?;
        if chain.block_timestamp(latest).await? >= day_start(first_day) {
            bail!("the chain is already at {first_day}: start anvil before it (Erc1155Scenario::genesis_timestamp)");
        }
        let a = chain.deploy("Erc1155Shapes", &[]).await?;
        let b = chain.deploy("Erc1155Shapes", &[]).await?;
        let sender = chain.sender().to_string();
        let plan = blocks(first_day, second_day, &a, &b, &sender);

        chain.set_automine(false).await?;
        let mined = mine_plan(chain, plan).await;
        chain.set_automine(true).await?;
        let transactions = mined?;

        let block_of = |t: Option<&ScenarioTx>| t.map(|t| t.sent.block_number());
        let first_block = block_of(transactions.first()).context("no transactions")?;
        let last_block = block_of(transactions.last()).context("no transactions")?;
        Ok(Erc1155Scenario {
            first_day,
            second_day,
            contracts: [a, b],
            transactions,
            first_block,
            last_block,
        })
    }

    pub fn days(&self) -> [NaiveDate; 2] {
        [self.first_day, self.second_day]
    }

    /// The transaction with this label.
    pub fn tx(&self, label: &str) -> Option<&Sent> {
        self.transactions
            .iter()
            .find(|t| t.label == label)
            .map(|t| &t.sent)
    }

    pub fn tx_hashes(&self) -> Vec<String> {
        self.transactions
            .iter()
            .map(|t| t.sent.tx_hash.clone())
            .collect()
    }

    /// The rows and skipped logs of every scenario block, computed by the
    /// testkit from receipts and block headers.
    pub async fn expected(&self, chain: &Chain) -> anyhow::Result<Expected> {
        expected_for_blocks(chain, self.first_block, self.last_block).await
    }

    /// Every log of the chain up to the scenario's last block, as rows of
    /// BigQuery's `crypto_ethereum.logs` (for `FakeBigQuery::set_logs`).
    pub async fn bigquery_logs(&self, chain: &Chain) -> anyhow::Result<Vec<FixtureLog>> {
        node_logs(chain, 0, self.last_block).await
    }
}

/// A block to mine at `timestamp` with these (label, contract, calldata).
struct PlannedBlock {
    timestamp: u64,
    transactions: Vec<(&'static str, String, Vec<u8>)>,
}

fn blocks(d1: NaiveDate, d2: NaiveDate, a: &str, b: &str, sender: &str) -> Vec<PlannedBlock> {
    let d3 = d2.succ_opt().unwrap_or(d2);
    let single = |operator: &str, from: &str, to: &str, id: Arg, value: Arg| {
        encode_call(
            "emitSingle(address,address,address,uint256,uint256)",
            &[
                Arg::address(operator),
                Arg::address(from),
                Arg::address(to),
                id,
                value,
            ],
        )
    };
    let batch = |from: &str, to: &str, ids: Arg, values: Arg| {
        encode_call(
            "emitBatch(address,address,address,uint256[],uint256[])",
            &[
                Arg::address(sender),
                Arg::address(from),
                Arg::address(to),
                ids,
                values,
            ],
        )
    };
    let range = |from: &str, to: &str, first: u128, count: u128| {
        encode_call(
            "emitBatchRange(address,address,address,uint256,uint256)",
            &[
                Arg::address(sender),
                Arg::address(from),
                Arg::address(to),
                Arg::uint(first),
                Arg::uint(count),
            ],
        )
    };
    let erc20_and_single = |from: &str, to: &str, amount: u128, id: u128, value: u128| {
        encode_call(
            "emitTransferAndSingle(address,address,uint256,uint256,uint256)",
            &[
                Arg::address(from),
                Arg::address(to),
                Arg::uint(amount),
                Arg::uint(id),
                Arg::uint(value),
            ],
        )
    };
    let malformed_singles = encode_call(
        "emitMalformedSingles(address,address,address,uint256,uint256)",
        &[
            Arg::address(sender),
            Arg::address(ALICE),
            Arg::address(BOB),
            Arg::uint(1),
            Arg::uint(1),
        ],
    );
    let malformed_batches = encode_call(
        "emitMalformedBatches(address,address,address)",
        &[Arg::address(sender), Arg::address(ALICE), Arg::address(BOB)],
    );
    let max_array = Arg::Array(vec![Arg::uint(7), Arg::max_uint()]);
    let max_values = Arg::Array(vec![Arg::max_uint(), Arg::uint(0)]);
    type S = Erc1155Scenario;
    let at = |day, h, m, s| utc_timestamp(day, h, m, s);
    let tx = |label, to: &str, data| (label, to.to_string(), data);
    vec![
        PlannedBlock {
            timestamp: at(d1, 0, 0, 0),
            transactions: vec![tx(
                S::MINT_SINGLE,
                a,
                single(sender, ZERO, ALICE, Arg::uint(1), Arg::uint(100)),
            )],
        },
        PlannedBlock {
            timestamp: at(d1, 8, 0, 0),
            transactions: vec![
                tx(S::MINT_BATCH_OF_50, a, range(ZERO, BOB, 1000, 50)),
                tx(
                    S::MAX_SINGLE,
                    a,
                    single(MARKET, ALICE, BOB, Arg::max_uint(), Arg::max_uint()),
                ),
                tx(
                    S::BATCH_WITH_MAX,
                    b,
                    batch(ALICE, CAROL, max_array, max_values),
                ),
            ],
        },
        PlannedBlock {
            timestamp: at(d1, 12, 0, 0),
            transactions: vec![
                tx(S::MALFORMED_SINGLES, a, malformed_singles.clone()),
                tx(S::MALFORMED_BATCHES, a, malformed_batches),
                tx(
                    S::ERC20_AND_SINGLE,
                    b,
                    erc20_and_single(ALICE, BOB, 500, 42, 3),
                ),
            ],
        },
        PlannedBlock {
            timestamp: at(d1, 23, 59, 59),
            transactions: vec![
                tx(
                    S::SINGLE_AT_DAY_END,
                    a,
                    single(sender, BOB, ALICE, Arg::uint(1000), Arg::uint(1)),
                ),
                tx(
                    S::BURN_BATCH_AT_DAY_END,
                    b,
                    batch(BOB, ZERO, Arg::uints(&[1, 2, 3]), Arg::uints(&[1, 1, 1])),
                ),
            ],
        },
        PlannedBlock {
            timestamp: at(d2, 0, 0, 0),
            transactions: vec![
                tx(
                    S::BURN_SINGLE_AT_DAY_START,
                    a,
                    single(sender, ALICE, ZERO, Arg::uint(1), Arg::uint(100)),
                ),
                tx(
                    S::ERC20_AND_SINGLE_AT_DAY_START,
                    a,
                    erc20_and_single(BOB, CAROL, 1, 1001, 2),
                ),
            ],
        },
        PlannedBlock {
            timestamp: at(d2, 6, 0, 0),
            transactions: vec![
                tx(S::BATCH_OF_3, b, range(CAROL, ALICE, 10, 3)),
                tx(S::MALFORMED_SINGLES_ON_DAY_2, b, malformed_singles),
            ],
        },
        PlannedBlock {
            timestamp: at(d2, 23, 59, 59),
            transactions: vec![tx(
                S::ONE_ID_BATCH_AT_DAY_END,
                a,
                batch(ALICE, BOB, Arg::uints(&[5]), Arg::uints(&[5])),
            )],
        },
        PlannedBlock {
            timestamp: at(d3, 0, 0, 0),
            transactions: vec![tx(
                S::SINGLE_AFTER_THE_DAYS,
                a,
                single(sender, BOB, ALICE, Arg::uint(5), Arg::uint(5)),
            )],
        },
    ]
}

/// Submits each block's transactions, mines it at its timestamp and checks
/// that every transaction succeeded in that block (automine must be off).
async fn mine_plan(chain: &Chain, plan: Vec<PlannedBlock>) -> anyhow::Result<Vec<ScenarioTx>> {
    let mut mined = Vec::new();
    for block in plan {
        let mut hashes = Vec::new();
        for (label, to, data) in block.transactions {
            let hash = chain
                .submit(Tx {
                    to: Some(to),
                    data,
                    ..Tx::default()
                })
                .await
                .with_context(|| format!("submitting {label}"))?;
            hashes.push((label, hash));
        }
        let number = chain.mine(block.timestamp).await?;
        for (label, hash) in hashes {
            let sent = chain.wait_receipt(&hash).await?;
            if !sent.succeeded() || sent.block_number() != number {
                bail!(
                    "{label} ({hash}) should have succeeded in block {number}: {}",
                    sent.receipt
                );
            }
            mined.push(ScenarioTx { label, sent });
        }
    }
    Ok(mined)
}
