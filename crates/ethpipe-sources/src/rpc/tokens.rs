//! `tokens` from a node: the day's contract creations that pass ethereum-etl's
//! ERC-20/ERC-721 detection, with metadata from `eth_call`, plus the token
//! addresses seen in the day's transfers (marked `found_in_transfers`) so
//! every transfer can be joined to a token row.

use std::collections::{BTreeMap, HashSet};

use ethpipe_core::datasets::TOKENS;
use ethpipe_core::{Rows, SourceError, SourceEvent, SourceEventSender, Token, TokenTransfer};
use serde_json::{json, Value};

use super::abi::{self, CallOutcome, MetadataOutcomes};
use super::blocks::Blocks;
use super::bytecode;
use super::client::{quantity, RpcClient};
use super::contracts::{self, Contract, TraceMethod, TraceSupport};
use super::logs::{send, LogScan};

/// Blocks traced per request group; traces of busy blocks are large.
const TRACE_GROUP: usize = 20;
/// Tokens whose metadata is fetched (and rows sent) together.
const TOKEN_GROUP: usize = 200;

/// A token to describe: where it was created or first seen.
#[derive(Debug, Clone)]
struct Candidate {
    address: String,
    block_number: u64,
    found_in_transfers: bool,
}

pub struct TokenScan<'a> {
    pub client: &'a RpcClient,
    pub blocks: &'a Blocks,
    /// Not consulted any more: each run probes the node afresh (see
    /// `contracts`), so a transient answer cannot outlive its run. Kept
    /// only until the source's wiring (`rpc/mod.rs`) drops it.
    pub traces: &'a TraceSupport,
    pub transfers: LogScan<'a>,
}

impl TokenScan<'_> {
    /// Streams the token rows of blocks `first..=last`; returns how many.
    pub async fn run(
        &self,
        first: u64,
        last: u64,
        sender: &SourceEventSender,
    ) -> Result<u64, SourceError> {
        let call_block = self.metadata_block(last, sender).await?;
        let mut created = HashSet::new();
        let mut rows = 0;
        let numbers: Vec<u64> = (first..=last).collect();
        let mut warned = false;
        let traces = TraceSupport::default();
        for group in numbers.chunks(TRACE_GROUP) {
            let (contracts, method) =
                contracts::created_in(self.client, &traces, group, last).await?;
            if method == TraceMethod::Receipts && !warned {
                warned = true;
                send(
                    sender,
                    SourceEvent::Warning(contracts::RECEIPTS_WARNING.into()),
                )
                .await?;
            }
            let candidates: Vec<Candidate> = contracts
                .into_iter()
                .filter(|c| self.wanted(&c.address) && is_token(c))
                .map(|c| Candidate {
                    address: c.address,
                    block_number: c.block_number,
                    found_in_transfers: false,
                })
                .collect();
            created.extend(candidates.iter().map(|c| c.address.clone()));
            rows += self.describe(&candidates, &call_block, sender).await?;
        }
        let seen = self.seen_in_transfers(first, last).await?;
        let discovered: Vec<Candidate> = seen
            .into_iter()
            .filter(|(address, _)| !created.contains(address))
            .map(|(address, block_number)| Candidate {
                address,
                block_number,
                found_in_transfers: true,
            })
            .collect();
        for group in discovered.chunks(TOKEN_GROUP) {
            rows += self.describe(group, &call_block, sender).await?;
        }
        Ok(rows)
    }

    /// Whether the run's token filter keeps this contract: with a filter,
    /// only its addresses are described (their transfers are fetched by
    /// address too, through `transfers`).
    fn wanted(&self, address: &str) -> bool {
        self.transfers
            .tokens
            .is_none_or(|tokens| tokens.contains(&address.to_ascii_lowercase()))
    }

    /// Metadata is read at the day's last block, so a re-run gives the same
    /// answer; a node without that state (not an archive node) is asked at
    /// `latest`, and the run log says so.
    async fn metadata_block(
        &self,
        last: u64,
        sender: &SourceEventSender,
    ) -> Result<String, SourceError> {
        let at_last = quantity(last);
        let probe = self
            .client
            .call(
                "eth_getBalance",
                json!(["0x0000000000000000000000000000000000000000", at_last]),
            )
            .await?;
        match probe {
            Ok(_) => Ok(at_last),
            Err(error) => {
                let note = format!(
                    "the node has no state at block {last} ({error}): token metadata is read at the latest block instead"
                );
                send(sender, SourceEvent::Warning(note)).await?;
                Ok("latest".to_string())
            }
        }
    }

    /// Each token address in the day's transfers, with the first block it appears in.
    async fn seen_in_transfers(
        &self,
        first: u64,
        last: u64,
    ) -> Result<BTreeMap<String, u64>, SourceError> {
        let mut seen = BTreeMap::new();
        self.transfers
            .collect(first, last, |rows| {
                for transfer in rows.as_slice::<TokenTransfer>().unwrap_or_default() {
                    seen.entry(transfer.token_address.clone())
                        .or_insert(transfer.block_number as u64);
                }
            })
            .await?;
        Ok(seen)
    }

    /// Metadata for `candidates` and their token rows, sent to the sink.
    async fn describe(
        &self,
        candidates: &[Candidate],
        call_block: &str,
        sender: &SourceEventSender,
    ) -> Result<u64, SourceError> {
        if candidates.is_empty() {
            return Ok(0);
        }
        let functions = abi::METADATA_FUNCTIONS;
        let call_data: Vec<String> = functions.iter().map(|f| f.selector_hex()).collect();
        let calls: Vec<(&str, Value)> = candidates
            .iter()
            .flat_map(|c| {
                call_data.iter().map(move |data| {
                    (
                        "eth_call",
                        json!([{"to": c.address, "data": data}, call_block]),
                    )
                })
            })
            .collect();
        let answers = self.client.batch(&calls).await?;
        let numbers: Vec<u64> = candidates.iter().map(|c| c.block_number).collect();
        let headers = self.blocks.headers(&numbers).await?;
        let mut tokens = Vec::with_capacity(candidates.len());
        for (candidate, answers) in candidates.iter().zip(answers.chunks(functions.len())) {
            let outcomes: Vec<CallOutcome> = answers.iter().map(outcome).collect();
            let metadata = abi::resolve_metadata(&MetadataOutcomes::from_slice(&outcomes));
            let header = headers.get(&candidate.block_number).ok_or_else(|| {
                SourceError::Transient(format!("no header for block {}", candidate.block_number))
            })?;
            tokens.push(Token {
                address: candidate.address.clone(),
                symbol: metadata.symbol,
                name: metadata.name,
                decimals: metadata.decimals,
                total_supply: metadata.total_supply,
                block_timestamp: header.time()?,
                block_number: candidate.block_number as i64,
                block_hash: header.hash.clone(),
                found_in_transfers: candidate.found_in_transfers,
            });
        }
        let count = tokens.len() as u64;
        send(sender, SourceEvent::Rows(Rows::new(TOKENS, tokens))).await?;
        Ok(count)
    }
}

fn is_token(contract: &Contract) -> bool {
    let sighashes = bytecode::function_sighashes(Some(&contract.code));
    bytecode::is_erc20(&sighashes) || bytecode::is_erc721(&sighashes)
}

/// A node error object or `null` is a failed attempt (rule 25); transport
/// faults never get here, the client retried them or failed the run.
fn outcome(answer: &Result<Value, super::client::NodeError>) -> CallOutcome {
    match answer {
        Ok(result) => CallOutcome::from_result(result),
        Err(_) => CallOutcome::Failed,
    }
}
