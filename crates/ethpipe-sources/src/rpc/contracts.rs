//! Contracts created in a block range, with the runtime code they were
//! created with (docs/rpc-semantics.md, rules 17, 18 and 34).
//!
//! Nodes differ in what they offer, so each run probes: Parity-style
//! `trace_block` (what BigQuery's pipeline uses), else geth's
//! `debug_traceBlockByNumber` with the call tracer, else transaction
//! receipts' `contractAddress` — which sees only contracts deployed directly
//! by a transaction, not by factories, so a warning says so in the run log.
//!
//! Only the node's structured "method not found / not supported / invalid
//! params" codes move the probe on ([`NodeError::is_unsupported_method`]).
//! Any other error on these methods is transient (a trace is never an
//! answer in itself): it is retried with backoff and, if it persists, fails
//! the run without deciding anything. The decision lives for one run, so a
//! node that gains the trace API, or a misread answer, costs one run at most.

use std::sync::atomic::{AtomicU8, Ordering};

use ethpipe_core::SourceError;
use serde_json::{json, Value};

use super::client::{quantity, NodeError, RpcClient};

/// One created contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contract {
    pub address: String,
    pub block_number: u64,
    /// Runtime code, `0x…`.
    pub code: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum TraceMethod {
    Unknown = 0,
    TraceBlock = 1,
    DebugTrace = 2,
    Receipts = 3,
}

/// Which method the node supports, as one run has found out; a new run
/// starts from a fresh (default) one and probes again.
#[derive(Default)]
pub struct TraceSupport(AtomicU8);

impl TraceSupport {
    fn get(&self) -> TraceMethod {
        match self.0.load(Ordering::Relaxed) {
            1 => TraceMethod::TraceBlock,
            2 => TraceMethod::DebugTrace,
            3 => TraceMethod::Receipts,
            _ => TraceMethod::Unknown,
        }
    }

    fn set(&self, method: TraceMethod) {
        self.0.store(method as u8, Ordering::Relaxed);
    }
}

pub const RECEIPTS_WARNING: &str =
    "this node offers neither trace_block nor debug_traceBlockByNumber: \
     tokens come from receipts' contractAddress (contracts deployed directly by a transaction); \
     tokens deployed by factories are only added when they appear in transfers";

/// The contracts created in `blocks`, in block order, and the method used.
/// `code_block` is where runtime code is read when only receipts are available.
pub async fn created_in(
    client: &RpcClient,
    support: &TraceSupport,
    blocks: &[u64],
    code_block: u64,
) -> Result<(Vec<Contract>, TraceMethod), SourceError> {
    loop {
        let method = support.get();
        let attempt = match method {
            TraceMethod::Unknown | TraceMethod::TraceBlock => {
                by_trace_block(client, blocks).await?
            }
            TraceMethod::DebugTrace => by_debug_trace(client, blocks).await?,
            TraceMethod::Receipts => by_receipts(client, blocks, code_block).await?,
        };
        match attempt {
            Ok(contracts) => {
                if method == TraceMethod::Unknown {
                    support.set(TraceMethod::TraceBlock);
                }
                return Ok((contracts, support.get()));
            }
            Err(unsupported) => {
                let next = match method {
                    TraceMethod::Unknown | TraceMethod::TraceBlock => TraceMethod::DebugTrace,
                    TraceMethod::DebugTrace => TraceMethod::Receipts,
                    TraceMethod::Receipts => {
                        return Err(SourceError::Config(format!(
                            "{} cannot list contract creations: {unsupported}",
                            client.shown_url()
                        )))
                    }
                };
                tracing::info!("{unsupported}; trying the next way to find contracts");
                support.set(next);
            }
        }
    }
}

/// `Ok(Err(..))`: the node lacks the method; try the next one.
type Attempt = Result<Vec<Contract>, NodeError>;

/// A node error that does not say the method is unsupported decides nothing:
/// the client asks again, and fails the run as transient if it persists.
fn undecided(error: &NodeError) -> bool {
    !error.is_unsupported_method()
}

fn node_failure(client: &RpcClient, method: &str, block: u64, error: &NodeError) -> SourceError {
    SourceError::Transient(format!(
        "{} answered {method} for block {block} with {error}",
        client.shown_url()
    ))
}

async fn by_trace_block(client: &RpcClient, blocks: &[u64]) -> Result<Attempt, SourceError> {
    let calls: Vec<(&str, Value)> = blocks
        .iter()
        .map(|b| ("trace_block", json!([quantity(*b)])))
        .collect();
    let answers = client.batch_retrying(&calls, undecided).await?;
    let mut contracts = Vec::new();
    for (block, answer) in blocks.iter().zip(answers) {
        match answer {
            Ok(traces) => contracts.extend(contracts_from_parity_traces(*block, &traces)),
            Err(error) if error.is_unsupported_method() => return Ok(Err(error)),
            Err(error) => return Err(node_failure(client, "trace_block", *block, &error)),
        }
    }
    Ok(Ok(contracts))
}

/// Rule 17: `create` traces with an address, whose own and ancestors' calls
/// (same transaction, `traceAddress` prefixes) did not fail.
pub fn contracts_from_parity_traces(block: u64, traces: &Value) -> Vec<Contract> {
    let traces = traces.as_array().map(Vec::as_slice).unwrap_or_default();
    let failed: Vec<(Option<&str>, Vec<u64>)> = traces
        .iter()
        .filter(|t| t.get("error").is_some_and(|e| !e.is_null()))
        .map(|t| (t["transactionHash"].as_str(), trace_address(t)))
        .collect();
    traces
        .iter()
        .filter(|t| t["type"].as_str() == Some("create"))
        .filter(|t| t.get("error").is_none_or(Value::is_null))
        .filter_map(|t| {
            let address = t["result"]["address"].as_str().filter(|a| !a.is_empty())?;
            let tx = t["transactionHash"].as_str();
            let path = trace_address(t);
            let under_failure = failed
                .iter()
                .any(|(failed_tx, failed_path)| *failed_tx == tx && path.starts_with(failed_path));
            (!under_failure).then(|| Contract {
                address: address.to_ascii_lowercase(),
                block_number: block,
                code: t["result"]["code"].as_str().unwrap_or("0x").to_string(),
            })
        })
        .collect()
}

fn trace_address(trace: &Value) -> Vec<u64> {
    trace["traceAddress"]
        .as_array()
        .map(|path| path.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

async fn by_debug_trace(client: &RpcClient, blocks: &[u64]) -> Result<Attempt, SourceError> {
    let calls: Vec<(&str, Value)> = blocks
        .iter()
        .map(|b| {
            (
                "debug_traceBlockByNumber",
                json!([quantity(*b), {"tracer": "callTracer"}]),
            )
        })
        .collect();
    let answers = client.batch_retrying(&calls, undecided).await?;
    let mut contracts = Vec::new();
    for (block, answer) in blocks.iter().zip(answers) {
        match answer {
            Ok(traces) => {
                for tx in traces.as_array().map(Vec::as_slice).unwrap_or_default() {
                    collect_call_frames(*block, &tx["result"], &mut contracts);
                }
            }
            Err(error) if error.is_unsupported_method() => return Ok(Err(error)),
            Err(error) => {
                return Err(node_failure(
                    client,
                    "debug_traceBlockByNumber",
                    *block,
                    &error,
                ))
            }
        }
    }
    Ok(Ok(contracts))
}

/// Rule 34: CREATE and CREATE2 frames without an error, under ancestors
/// without one; a failed frame hides its whole subtree.
fn collect_call_frames(block: u64, frame: &Value, contracts: &mut Vec<Contract>) {
    if frame.get("error").is_some_and(|e| !e.is_null()) {
        return;
    }
    let kind = frame["type"].as_str().unwrap_or("");
    if kind.eq_ignore_ascii_case("create") || kind.eq_ignore_ascii_case("create2") {
        if let Some(address) = frame["to"].as_str().filter(|a| !a.is_empty()) {
            contracts.push(Contract {
                address: address.to_ascii_lowercase(),
                block_number: block,
                code: frame["output"].as_str().unwrap_or("0x").to_string(),
            });
        }
    }
    for child in frame["calls"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        collect_call_frames(block, child, contracts);
    }
}

async fn by_receipts(
    client: &RpcClient,
    blocks: &[u64],
    code_block: u64,
) -> Result<Attempt, SourceError> {
    let calls: Vec<(&str, Value)> = blocks
        .iter()
        .map(|b| ("eth_getBlockReceipts", json!([quantity(*b)])))
        .collect();
    let answers = client.batch_retrying(&calls, undecided).await?;
    let mut created = Vec::new();
    for (block, answer) in blocks.iter().zip(answers) {
        let receipts = match answer {
            Ok(receipts) => receipts,
            Err(error) if error.is_unsupported_method() => return Ok(Err(error)),
            Err(error) => return Err(node_failure(client, "eth_getBlockReceipts", *block, &error)),
        };
        for receipt in receipts.as_array().map(Vec::as_slice).unwrap_or_default() {
            let succeeded = receipt["status"].as_str() == Some("0x1");
            if let Some(address) = receipt["contractAddress"].as_str().filter(|_| succeeded) {
                created.push((address.to_ascii_lowercase(), *block));
            }
        }
    }
    let code_calls: Vec<(&str, Value)> = created
        .iter()
        .map(|(address, _)| ("eth_getCode", json!([address, quantity(code_block)])))
        .collect();
    let codes = client.batch_retrying(&code_calls, |_| true).await?;
    let mut contracts = Vec::with_capacity(created.len());
    for ((address, block), code) in created.into_iter().zip(codes) {
        let code = code.map_err(|e| node_failure(client, "eth_getCode", block, &e))?;
        contracts.push(Contract {
            address,
            block_number: block,
            code: code.as_str().unwrap_or("0x").to_string(),
        });
    }
    Ok(Ok(contracts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_create_under_a_failed_call_is_not_a_contract() {
        let traces = json!([
            {"type": "call", "transactionHash": "0xa", "traceAddress": [], "error": "Reverted", "result": null},
            {"type": "create", "transactionHash": "0xa", "traceAddress": [0],
             "result": {"address": "0xDEAD", "code": "0x6001"}},
            {"type": "create", "transactionHash": "0xb", "traceAddress": [0],
             "result": {"address": "0xBEEF", "code": "0x6002"}},
            {"type": "create", "transactionHash": "0xb", "traceAddress": [1],
             "error": "out of gas", "result": null},
            {"type": "create", "transactionHash": "0xc", "traceAddress": [],
             "result": {"address": "", "code": "0x"}}
        ]);
        let found = contracts_from_parity_traces(7, &traces);
        assert_eq!(
            found,
            vec![Contract {
                address: "0xbeef".into(),
                block_number: 7,
                code: "0x6002".into()
            }]
        );
    }

    #[test]
    fn call_tracer_frames_count_create2_and_skip_failed_subtrees() {
        let tx = json!({"type": "CALL", "to": "0xf", "calls": [
            {"type": "CREATE2", "to": "0xAA", "output": "0x01"},
            {"type": "CALL", "to": "0xg", "error": "execution reverted", "calls": [
                {"type": "CREATE", "to": "0xbb", "output": "0x02"}
            ]},
            {"type": "CREATE", "to": "0xcc", "error": "out of gas"}
        ]});
        let mut found = Vec::new();
        collect_call_frames(3, &tx, &mut found);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].address, "0xaa");
        assert_eq!(found[0].code, "0x01");
    }
}
