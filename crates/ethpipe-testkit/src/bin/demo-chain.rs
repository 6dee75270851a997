//! Fills a local anvil node with a few days of token activity for `make demo`:
//! a handful of tokens (6 and 18 decimals, bytes32 metadata, an NFT, and a
//! modern-solc token that only shows up through its transfers), holders with
//! a skewed popularity, transfers, airdrops, mints and burns, a block every
//! ten minutes, then one block after the last day so every day is complete.
//!
//! usage: demo-chain --rpc-url URL [--from 2024-03-01] [--days 3] [--seed 7]

use anyhow::Context;
use chrono::NaiveDate;
use ethpipe_testkit::chain::{day_end, encode_call, utc_timestamp};
use ethpipe_testkit::{Arg, Chain, Tx};

const BLOCK_SECONDS: u64 = 600;
/// How far below its latest block anvil puts the `finalized` tag.
const FINALITY_DEPTH: u64 = 64;
const RECIPIENTS: usize = 200;

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

/// The fixtures' deterministic generator: the same activity on every run.
struct Rng(ethpipe_testkit::fixtures::Rng);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// Zipf-like: index i with weight 1/(i+1).
    fn popular(&mut self, n: usize) -> usize {
        let total: f64 = (1..=n).map(|i| 1.0 / i as f64).sum();
        let mut target = (self.next() as f64 / u64::MAX as f64) * total;
        for i in 0..n {
            target -= 1.0 / (i + 1) as f64;
            if target <= 0.0 {
                return i;
            }
        }
        n - 1
    }
}

struct DemoToken {
    address: String,
    /// One whole token in base units.
    unit: u128,
    nft: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let url = arg(&args, "--rpc-url", "http://127.0.0.1:8545");
    let from: NaiveDate = arg(&args, "--from", "2024-03-01")
        .parse()
        .context("--from must be YYYY-MM-DD")?;
    let days: u32 = arg(&args, "--days", "3").parse().context("--days")?;
    let mut rng = Rng(ethpipe_testkit::fixtures::Rng(
        arg(&args, "--seed", "7").parse().context("--seed")?,
    ));
    let chain = Chain::connect(&url)
        .await
        .context("connecting to the node")?;

    chain
        .set_next_block_timestamp(utc_timestamp(from, 0, 5, 0))
        .await?;
    let tokens = deploy_tokens(&chain).await?;
    let holders: Vec<String> = chain.accounts.iter().take(8).cloned().collect();
    seed_balances(&chain, &tokens, &holders).await?;
    let recipients: Vec<String> = (1..=RECIPIENTS)
        .map(|i| format!("0x{:040x}", 0xd0_0000 + i * 7919))
        .collect();

    chain.set_automine(false).await?;
    let mut transactions = 0;
    let mut nft_id = 1_000u128;
    for offset in 0..days {
        let day = from + chrono::Days::new(u64::from(offset));
        let mut ts = utc_timestamp(day, 0, 20, 0);
        while ts <= day_end(day) {
            for _ in 0..1 + rng.below(4) {
                let token = &tokens[rng.popular(tokens.len())];
                let from = holders[rng.popular(holders.len())].clone();
                let tx = activity(&mut rng, token, &from, &recipients, &mut nft_id);
                chain.submit(tx).await?;
                transactions += 1;
            }
            chain.mine(ts).await?;
            ts += BLOCK_SECONDS;
        }
    }
    chain.set_automine(true).await?;
    let last = from + chrono::Days::new(u64::from(days.saturating_sub(1)));
    let mut closing = chain.mine(day_end(last) + 60).await?;
    // anvil reports as `finalized` the block 64 below its latest: 64 more
    // blocks make the next day's first block final, so every demo day is
    // complete for ethpipe's finality gate (DESIGN §3).
    for block in 1..=FINALITY_DEPTH {
        closing = chain.mine(day_end(last) + 60 + block * 12).await?;
    }
    println!(
        "demo chain: {} tokens, {transactions} transactions over {days} day(s) from {from}; latest block {closing}",
        tokens.len()
    );
    Ok(())
}

async fn deploy_tokens(chain: &Chain) -> anyhow::Result<Vec<DemoToken>> {
    let standard = |name: &str, symbol: &str, decimals: u32, supply: u128| {
        vec![
            Arg::string(name),
            Arg::string(symbol),
            Arg::uint(u128::from(decimals)),
            Arg::uint(supply * 10u128.pow(decimals)),
        ]
    };
    let mut tokens = Vec::new();
    for (contract, args, unit) in [
        (
            "StandardToken",
            standard("Demo Dollar", "DUSD", 6, 10_000_000),
            10u128.pow(6),
        ),
        (
            "StandardToken",
            standard("Wrapped Demo Ether", "WDETH", 18, 1_000_000),
            10u128.pow(18),
        ),
        (
            "ModernToken",
            standard("Modern Token", "MODRN", 18, 5_000_000),
            10u128.pow(18),
        ),
        (
            "StandardToken",
            standard("Whole Points", "PTS", 0, 1_000_000_000),
            1,
        ),
    ] {
        let address = chain.deploy(contract, &args).await.context(contract)?;
        tokens.push(DemoToken {
            address,
            unit,
            nft: false,
        });
    }
    let mut name = [0u8; 32];
    name[..10].copy_from_slice(b"Demo Maker");
    let mut symbol = [0u8; 32];
    symbol[..4].copy_from_slice(b"DMKR");
    let address = chain
        .deploy(
            "Bytes32Token",
            &[
                Arg::bytes32(&name),
                Arg::bytes32(&symbol),
                Arg::uint(18),
                Arg::uint(10u128.pow(24)),
            ],
        )
        .await
        .context("Bytes32Token")?;
    tokens.push(DemoToken {
        address,
        unit: 10u128.pow(18),
        nft: false,
    });
    let address = chain
        .deploy(
            "Erc721Token",
            &[Arg::string("Demo Kitties"), Arg::string("DKITTY")],
        )
        .await
        .context("Erc721Token")?;
    tokens.push(DemoToken {
        address,
        unit: 1,
        nft: true,
    });
    Ok(tokens)
}

/// Spreads each fungible token from the deployer to the other holders.
async fn seed_balances(
    chain: &Chain,
    tokens: &[DemoToken],
    holders: &[String],
) -> anyhow::Result<()> {
    let others: Vec<&str> = holders.iter().skip(1).map(String::as_str).collect();
    for token in tokens.iter().filter(|t| !t.nft) {
        let values = vec![token.unit * 50_000; others.len()];
        chain
            .send(
                &token.address,
                &encode_call(
                    "batchTransfer(address[],uint256[])",
                    &[Arg::addresses(&others), Arg::uints(&values)],
                ),
            )
            .await
            .with_context(|| format!("seeding {}", token.address))?;
    }
    Ok(())
}

/// One transaction: mostly plain transfers, sometimes an airdrop, a burn, or
/// an NFT mint.
fn activity(
    rng: &mut Rng,
    token: &DemoToken,
    from: &str,
    recipients: &[String],
    nft_id: &mut u128,
) -> Tx {
    let to = recipients[rng.popular(recipients.len())].clone();
    let (data, gas) = if token.nft {
        *nft_id += 1;
        (
            encode_call(
                "mint(address,uint256)",
                &[Arg::address(&to), Arg::uint(*nft_id)],
            ),
            200_000,
        )
    } else {
        match rng.below(20) {
            0 => {
                let picked: Vec<&str> = (0..12)
                    .map(|_| recipients[rng.below(recipients.len() as u64) as usize].as_str())
                    .collect();
                let values: Vec<u128> = picked
                    .iter()
                    .map(|_| token.unit * (1 + u128::from(rng.below(5))))
                    .collect();
                (
                    encode_call(
                        "batchTransfer(address[],uint256[])",
                        &[Arg::addresses(&picked), Arg::uints(&values)],
                    ),
                    1_000_000,
                )
            }
            1 => (
                encode_call("burn(uint256)", &[Arg::uint(token.unit)]),
                200_000,
            ),
            _ => {
                // Amounts from dust to a few hundred tokens.
                let value = token.unit / 100 * u128::from(1 + rng.below(30_000))
                    + u128::from(rng.below(1000));
                (
                    encode_call(
                        "transfer(address,uint256)",
                        &[Arg::address(&to), Arg::uint(value)],
                    ),
                    200_000,
                )
            }
        }
    };
    Tx {
        from: Some(from.to_string()),
        to: Some(token.address.clone()),
        data,
        gas: Some(gas),
        value: None,
    }
}
