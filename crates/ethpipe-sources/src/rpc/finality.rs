//! The JSON-RPC completeness gate (docs/rpc-semantics.md, "Finality"): a day
//! loads only once its end is final on the node, so a reorg can no longer
//! change which blocks and logs it holds.
//!
//! A day's end is fixed by the first block of the next day: until that block
//! exists, a later block may still fall on the day, and until it is final, a
//! reorg may replace it with one that does. So the gate asks for that block
//! to be at or below the node's `finalized` block, or, with
//! `--rpc-confirmations N` (nodes without the tag), at least N blocks below
//! `latest`. Its last block, the one just before, is then final too.

use ethpipe_core::{Day, Gate, SourceError};
use serde_json::json;

use super::blocks::{Blocks, DayBlocks, Header};
use super::client::{parse_quantity, RpcClient};

/// How a block is judged final.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finality {
    /// The node's `finalized` block tag (post-merge Ethereum, most L2s).
    FinalizedTag,
    /// At least this many blocks below `latest` (`--rpc-confirmations N`).
    Confirmations(u64),
}

/// A day whose end is final, and the gate it passed.
#[derive(Debug, Clone)]
pub struct FinalDay {
    pub blocks: DayBlocks,
    pub gate: Gate,
    /// The first block of the next day: every header up to it is part of
    /// what the run relies on, and is rechecked before the commit.
    pub next_day_first_block: u64,
}

/// The day's blocks, once the first block of the next day is final;
/// otherwise a transient "not final yet" (or "not complete yet") error.
pub async fn final_day(
    client: &RpcClient,
    blocks: &Blocks,
    finality: Finality,
    day: Day,
) -> Result<FinalDay, SourceError> {
    let range = blocks.day_blocks(day).await?;
    let latest = blocks.latest().await?;
    let next_day = day.end().timestamp();
    let Some(next) = blocks.first_at_or_after(next_day, &latest).await? else {
        return Err(not_final(
            day,
            format!(
                "no block of {} exists on the node yet (its latest block {} is at {})",
                day.succ(),
                latest.number,
                shown_time(&latest)
            ),
        ));
    };
    let (final_block, gate) = final_block(client, &latest, finality).await?;
    if next > final_block {
        return Err(not_final(
            day,
            format!(
                "the first block of {}, {next}, is above the {}",
                day.succ(),
                describe(finality, final_block, &latest)
            ),
        ));
    }
    Ok(FinalDay {
        blocks: range,
        gate,
        next_day_first_block: next,
    })
}

/// The highest block the node holds final, and the gate that says so.
async fn final_block(
    client: &RpcClient,
    latest: &Header,
    finality: Finality,
) -> Result<(u64, Gate), SourceError> {
    let number = match finality {
        Finality::Confirmations(depth) => latest.number.saturating_sub(depth),
        Finality::FinalizedTag => finalized_tag(client).await?,
    };
    let name = match finality {
        Finality::FinalizedTag => "finalized",
        Finality::Confirmations(_) => "confirmations",
    };
    let mark = match finality {
        Finality::FinalizedTag => format!("finalized block {number}"),
        Finality::Confirmations(depth) => {
            format!("block {number} ({depth} below latest {})", latest.number)
        }
    };
    Ok((number, Gate { name, mark }))
}

/// The number of the node's `finalized` block. A node that does not know the
/// tag cannot prove any day final: that is configuration, not a passing fault.
async fn finalized_tag(client: &RpcClient) -> Result<u64, SourceError> {
    let unsupported = |detail: String| {
        SourceError::Config(format!(
            "{} does not report a finalized block ({detail}): pass --rpc-confirmations N \
             (or ETHPIPE_RPC_CONFIRMATIONS) to treat blocks N below latest as final",
            client.shown_url()
        ))
    };
    match client
        .call("eth_getBlockByNumber", json!(["finalized", false]))
        .await?
    {
        Ok(block) if block.is_null() => Err(unsupported("it answered null".into())),
        Ok(block) => parse_quantity(&block["number"]).ok_or_else(|| {
            SourceError::Transient(format!(
                "{}: the finalized block has a malformed or missing number",
                client.shown_url()
            ))
        }),
        // Rate limits and transport faults were retried by the client; an
        // error object left ("invalid block tag", "unknown block") means the
        // node cannot name a finalized block.
        Err(error) => Err(unsupported(error.to_string())),
    }
}

fn describe(finality: Finality, final_block: u64, latest: &Header) -> String {
    match finality {
        Finality::FinalizedTag => format!("node's finalized block {final_block}"),
        Finality::Confirmations(depth) => format!(
            "last block {depth} confirmations deep ({final_block}; latest is {})",
            latest.number
        ),
    }
}

fn not_final(day: Day, why: String) -> SourceError {
    SourceError::Transient(format!(
        "day {day} is not final yet: {why}; it loads once the first block of the next day is final"
    ))
}

fn shown_time(header: &Header) -> String {
    header
        .time()
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}
