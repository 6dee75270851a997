//! A JSON-RPC server that replays ethereum-etl's recorded mainnet responses
//! (`fixtures/ethereum-etl/<test>/<case>/web3_response.*.json` in the repository).
//!
//! Lookup is ethereum-etl's own (`tests/ethereumetl/job/mock_web3_provider.py`):
//! a request maps to the file `web3_response.<method>_<params>.json`, see
//! [`file_name`]. Each file holds one whole JSON-RPC response; it is served
//! as recorded, with only `id` set to the request's. Batches (a JSON array)
//! get an array of answers in the same order.
//!
//! A request with no file gets the JSON-RPC error `-32000` "missing trie node
//! … (no recorded response for <file>)", the way a pruned node answers, and is
//! counted ([`RpcReplay::missing_count`]). Every request is recorded with its
//! method and params for assertions.
//!
//! The recordings often lack what a different client would ask for, so
//! [`ReplayOptions`] can turn on answers *derived from the recorded data only*:
//!
//! - `eth_getLogs`: the recorded logs (receipt files, `eth_getFilterLogs`
//!   files, `expected_logs.json`) that match the filter — but only when the
//!   recording is known to hold every log of every block in the range
//!   (see [`ReplayOptions::synthesize_logs`]); otherwise the missing error.
//! - `eth_getBlockByNumber` / `eth_getBlockByHash` / `eth_getBlockReceipts`:
//!   from a recorded block file (with transactions turned into hashes when
//!   asked for without them) or from `expected_blocks.json` and
//!   `expected_transactions.json`, keeping only fields that convert exactly.
//! - `eth_blockNumber`: a configured number.
//!
//! Recorded files always win over derived answers.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

/// keccak256 of the RLP of an empty list: `sha3Uncles` of a block without uncles.
const EMPTY_UNCLES_HASH: &str =
    "0x1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347";

/// `fixtures/ethereum-etl` at the root of the repository.
pub fn ethereum_etl_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/ethereum-etl")
}

/// One case folder, e.g. `fixture_dir("test_stream/blocks_1755634_1755635")`.
pub fn fixture_dir(case: &str) -> PathBuf {
    ethereum_etl_fixtures().join(case)
}

/// The response file ethereum-etl's mock provider reads for a request:
/// `'web3_response.' + method + '_' + '_'.join(param_to_str(p) for p in params) + '.json'`.
pub fn file_name(method: &str, params: &Value) -> String {
    let parts: Vec<String> = match params {
        Value::Array(items) => items.iter().map(param_to_str).collect(),
        Value::Null => Vec::new(),
        other => vec![param_to_str(other)],
    };
    format!("web3_response.{method}_{}.json", parts.join("_"))
}

/// ethereum-etl's `param_to_str`: a dict becomes `key_value` pairs sorted by
/// key, a list its items, both joined by `_`; anything else is Python's
/// `str(x).lower()` (so `true`, `none`, numbers as digits).
fn param_to_str(param: &Value) -> String {
    match param {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            keys.iter()
                .map(|k| format!("{k}_{}", param_to_str(&map[k.as_str()])))
                .collect::<Vec<_>>()
                .join("_")
        }
        Value::Array(items) => items.iter().map(param_to_str).collect::<Vec<_>>().join("_"),
        Value::String(s) => s.to_lowercase(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "none".to_string(),
        Value::Number(n) => n.to_string().to_lowercase(),
    }
}

/// Which derived answers the server may give when no file matches.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// Answer `eth_getLogs` from the recorded logs. A block counts as
    /// completely recorded when (a) the folder has `expected_logs.json` and
    /// `expected_blocks.json` lists the block (ethereum-etl's stream export of
    /// the whole range), (b) the block's transaction list is recorded and every
    /// one of them has a recorded receipt, (c) it is in
    /// [`complete_blocks`](Self::complete_blocks), or (d) for queries on the
    /// Transfer topic only: a recorded `eth_newFilter` over that block with the
    /// same single topic0 and its `eth_getFilterLogs` answer. A range with any
    /// other block gets the missing error.
    pub synthesize_logs: bool,
    /// Answer `eth_getBlockByNumber`, `eth_getBlockByHash` and
    /// `eth_getBlockReceipts` from the recorded blocks and receipts.
    pub synthesize_blocks: bool,
    /// The answer to `eth_blockNumber`, and the block `latest` means, when
    /// no file says otherwise.
    pub block_number: Option<u64>,
    /// Blocks the test declares completely recorded (their logs and receipts
    /// in the folder are all there are), for case (c) above.
    pub complete_blocks: Vec<u64>,
}

impl ReplayOptions {
    /// Every derived answer on, `eth_blockNumber` = `block_number`.
    pub fn synthesize(block_number: u64) -> ReplayOptions {
        ReplayOptions {
            synthesize_logs: true,
            synthesize_blocks: true,
            block_number: Some(block_number),
            complete_blocks: Vec::new(),
        }
    }
}

/// How a request was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// From a recorded (or inserted) response file.
    Recorded,
    /// Derived from the recorded data ([`ReplayOptions`]).
    Synthesized,
    /// No data: answered with the missing-trie-node error.
    Missing,
    /// Not a JSON-RPC request object.
    Invalid,
}

/// One request the server received (each element of a batch separately).
#[derive(Debug, Clone)]
pub struct ReplayedRequest {
    pub method: String,
    pub params: Value,
    /// The response file name the request maps to.
    pub file_name: String,
    pub answer: Answer,
}

/// What the folder tells about one block.
#[derive(Debug, Clone, Default)]
struct KnownBlock {
    /// RPC-format header fields, without `transactions`.
    header: Map<String, Value>,
    tx_hashes: Option<Vec<String>>,
    full_txs: Option<Vec<Value>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Coverage {
    /// Every log of the block is recorded.
    All,
    /// Only the logs whose topic0 is in this set are recorded.
    Topic0(BTreeSet<String>),
}

/// Everything derived from the folder at start.
#[derive(Debug, Default)]
struct Recording {
    blocks: BTreeMap<u64, KnownBlock>,
    block_by_hash: HashMap<String, u64>,
    receipts: HashMap<String, Value>,
    logs: Vec<Value>,
    coverage: BTreeMap<u64, Coverage>,
    latest: Option<u64>,
}

#[derive(Default)]
struct Inner {
    responses: HashMap<String, Value>,
    requests: Vec<ReplayedRequest>,
}

#[derive(Clone)]
struct Shared {
    inner: Arc<Mutex<Inner>>,
    recording: Arc<Recording>,
    options: Arc<ReplayOptions>,
}

/// The replay server; stops when dropped.
pub struct RpcReplay {
    pub addr: SocketAddr,
    pub dir: PathBuf,
    shared: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for RpcReplay {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl RpcReplay {
    /// Exact replay of the folder's recorded files, nothing derived.
    pub async fn start(dir: impl AsRef<Path>) -> anyhow::Result<RpcReplay> {
        RpcReplay::start_with(dir, ReplayOptions::default()).await
    }

    pub async fn start_with(
        dir: impl AsRef<Path>,
        options: ReplayOptions,
    ) -> anyhow::Result<RpcReplay> {
        let dir = dir.as_ref().to_path_buf();
        let responses = read_responses(&dir)?;
        let recording = Recording::load(&dir, &responses, &options)?;
        let shared = Shared {
            inner: Arc::new(Mutex::new(Inner {
                responses,
                requests: Vec::new(),
            })),
            recording: Arc::new(recording),
            options: Arc::new(options),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(RpcReplay {
            addr,
            dir,
            shared,
            server,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.shared.inner.lock().expect("replay server state"))
    }

    /// Every request so far, batch elements one by one, in arrival order.
    pub fn requests(&self) -> Vec<ReplayedRequest> {
        self.with(|s| s.requests.clone())
    }

    /// The methods of [`requests`](Self::requests).
    pub fn methods(&self) -> Vec<String> {
        self.with(|s| s.requests.iter().map(|r| r.method.clone()).collect())
    }

    /// File names of the requests that got the missing error.
    pub fn missing(&self) -> Vec<String> {
        self.with(|s| {
            s.requests
                .iter()
                .filter(|r| r.answer == Answer::Missing)
                .map(|r| r.file_name.clone())
                .collect()
        })
    }

    pub fn missing_count(&self) -> usize {
        self.with(|s| {
            s.requests
                .iter()
                .filter(|r| r.answer == Answer::Missing)
                .count()
        })
    }

    pub fn clear_requests(&self) {
        self.with(|s| s.requests.clear());
    }

    /// The response files served (recorded and inserted), sorted.
    pub fn response_files(&self) -> Vec<String> {
        let mut files: Vec<String> = self.with(|s| s.responses.keys().cloned().collect());
        files.sort();
        files
    }

    /// Adds (or replaces) the whole response object for a request.
    pub fn insert_response(&self, method: &str, params: Value, response: Value) {
        let name = file_name(method, &params);
        self.with(|s| s.responses.insert(name, response));
    }

    /// Adds (or replaces) a response `{"jsonrpc":"2.0","id":0,"result":…}`.
    pub fn insert_result(&self, method: &str, params: Value, result: Value) {
        self.insert_response(
            method,
            params,
            json!({ "jsonrpc": "2.0", "id": 0, "result": result }),
        );
    }

    /// Removes a response (e.g. `eth_chainId`, to show it is not needed);
    /// true if there was one.
    pub fn remove_response(&self, method: &str, params: Value) -> bool {
        let name = file_name(method, &params);
        self.with(|s| s.responses.remove(&name).is_some())
    }
}

fn read_responses(dir: &Path) -> anyhow::Result<HashMap<String, Value>> {
    let mut responses = HashMap::new();
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("fixture folder {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        if name.starts_with("web3_response.") && name.ends_with(".json") {
            responses.insert(name, read_json(&path)?);
        }
    }
    Ok(responses)
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// JSON lines; a missing file is no lines.
fn read_json_lines(path: &Path) -> anyhow::Result<Vec<Value>> {
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).with_context(|| format!("a line of {}", path.display())))
        .collect()
}

// ---------------------------------------------------------------------------
// Deriving blocks, receipts, logs and coverage from the folder

fn hex_u64(value: &Value) -> Option<u64> {
    let text = value.as_str()?;
    u64::from_str_radix(text.strip_prefix("0x").unwrap_or(text), 16).ok()
}

/// An exact JSON integer as a hex quantity; `None` for null, floats and
/// integers beyond u64 (which serde_json reads as floats).
fn quantity_of(value: &Value) -> Option<Value> {
    value.as_u64().map(|n| json!(format!("{n:#x}")))
}

fn tx_hash_of(tx: &Value) -> Option<String> {
    match tx {
        Value::String(hash) => Some(hash.to_lowercase()),
        other => other["hash"].as_str().map(str::to_lowercase),
    }
}

impl Recording {
    fn load(
        dir: &Path,
        responses: &HashMap<String, Value>,
        options: &ReplayOptions,
    ) -> anyhow::Result<Recording> {
        let mut rec = Recording::default();
        let mut names: Vec<&String> = responses.keys().collect();
        names.sort();

        // Recorded blocks and receipts (RPC format).
        for name in &names {
            let result = &responses[name.as_str()]["result"];
            if name.starts_with("web3_response.eth_getBlockByNumber_") && result.is_object() {
                let Some(number) = hex_u64(&result["number"]) else {
                    continue;
                };
                if name.contains("_latest_") {
                    rec.latest = Some(number);
                }
                rec.add_rpc_block(number, result);
            } else if name.starts_with("web3_response.eth_getTransactionReceipt_")
                && result.is_object()
            {
                if let Some(hash) = result["transactionHash"].as_str() {
                    rec.receipts.insert(hash.to_lowercase(), result.clone());
                }
            }
        }

        // ethereum-etl's exported blocks and transactions fill the gaps.
        let etl_blocks = read_json_lines(&dir.join("expected_blocks.json"))?;
        let etl_txs = read_json_lines(&dir.join("expected_transactions.json"))?;
        for block in &etl_blocks {
            let Some(number) = block["number"].as_u64() else {
                continue;
            };
            if rec.blocks.contains_key(&number) {
                continue;
            }
            let mut txs: Vec<&Value> = etl_txs
                .iter()
                .filter(|t| t["block_number"].as_u64() == Some(number))
                .collect();
            txs.sort_by_key(|t| t["transaction_index"].as_u64());
            let complete = block["transaction_count"].as_u64() == Some(txs.len() as u64);
            let full: Option<Vec<Value>> = txs.iter().map(|t| tx_from_etl(t)).collect();
            rec.blocks.insert(
                number,
                KnownBlock {
                    header: header_from_etl(block),
                    tx_hashes: complete.then(|| {
                        txs.iter()
                            .filter_map(|t| t["hash"].as_str().map(str::to_lowercase))
                            .collect()
                    }),
                    full_txs: if complete { full } else { None },
                },
            );
        }
        for (number, block) in &rec.blocks {
            if let Some(hash) = block.header.get("hash").and_then(Value::as_str) {
                rec.block_by_hash.insert(hash.to_lowercase(), *number);
            }
        }

        // Logs: receipts and filter answers first (RPC format as recorded),
        // then ethereum-etl's exported logs; one per (transaction, logIndex).
        let mut seen = BTreeSet::new();
        let mut add_log = |rec: &mut Recording, log: Value| {
            let key = (
                log["transactionHash"]
                    .as_str()
                    .unwrap_or_default()
                    .to_lowercase(),
                hex_u64(&log["logIndex"]),
            );
            if seen.insert(key) {
                rec.logs.push(log);
            }
        };
        let mut receipt_logs = Vec::new();
        for receipt in rec.receipts.values() {
            receipt_logs.extend(receipt["logs"].as_array().cloned().unwrap_or_default());
        }
        for log in receipt_logs {
            add_log(&mut rec, log);
        }
        let filters = recorded_filters(responses);
        for filter in &filters {
            for log in filter.logs.iter().cloned() {
                add_log(&mut rec, log);
            }
        }
        let etl_logs = read_json_lines(&dir.join("expected_logs.json"))?;
        for log in &etl_logs {
            add_log(&mut rec, log_from_etl(log));
        }
        rec.logs
            .sort_by_key(|l| (hex_u64(&l["blockNumber"]), hex_u64(&l["logIndex"])));

        // Which blocks' logs are completely recorded.
        if dir.join("expected_logs.json").is_file() {
            for block in &etl_blocks {
                if let Some(number) = block["number"].as_u64() {
                    rec.coverage.insert(number, Coverage::All);
                }
            }
        }
        let receipt_complete: Vec<u64> = rec
            .blocks
            .iter()
            .filter(|(_, b)| {
                b.tx_hashes
                    .as_ref()
                    .is_some_and(|hashes| hashes.iter().all(|h| rec.receipts.contains_key(h)))
            })
            .map(|(n, _)| *n)
            .collect();
        for number in receipt_complete
            .into_iter()
            .chain(options.complete_blocks.iter().copied())
        {
            rec.coverage.insert(number, Coverage::All);
        }
        for filter in &filters {
            for number in filter.from..=filter.to {
                let entry = rec
                    .coverage
                    .entry(number)
                    .or_insert_with(|| Coverage::Topic0(BTreeSet::new()));
                if let Coverage::Topic0(set) = entry {
                    set.insert(filter.topic0.clone());
                }
            }
        }
        Ok(rec)
    }

    fn add_rpc_block(&mut self, number: u64, block: &Value) {
        let txs = block["transactions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let hashes: Vec<String> = txs.iter().filter_map(tx_hash_of).collect();
        let full = txs.iter().all(Value::is_object);
        let mut header = block.as_object().cloned().unwrap_or_default();
        header.remove("transactions");
        let entry = self.blocks.entry(number).or_default();
        entry.header = header;
        entry.tx_hashes = Some(hashes);
        if full {
            entry.full_txs = Some(txs);
        }
    }

    /// Resolves a block parameter: a hex number or a tag.
    fn resolve(&self, tag: &Value, options: &ReplayOptions) -> Option<u64> {
        match tag.as_str()? {
            "earliest" => Some(0),
            "latest" | "pending" | "safe" | "finalized" => options.block_number.or(self.latest),
            other => hex_u64(&json!(other)),
        }
    }

    fn block_json(&self, number: u64, full: bool) -> Option<Value> {
        let block = self.blocks.get(&number)?;
        let txs = if full {
            block.full_txs.clone()?
        } else {
            block
                .tx_hashes
                .clone()?
                .into_iter()
                .map(Value::String)
                .collect()
        };
        let mut out = block.header.clone();
        out.insert("transactions".to_string(), Value::Array(txs));
        Some(Value::Object(out))
    }

    fn block_receipts(&self, number: u64) -> Option<Value> {
        let hashes = self.blocks.get(&number)?.tx_hashes.as_ref()?;
        let receipts: Option<Vec<Value>> = hashes
            .iter()
            .map(|h| self.receipts.get(h).cloned())
            .collect();
        receipts.map(Value::Array)
    }

    /// The recorded logs matching an `eth_getLogs` filter, or why not.
    fn logs_for(&self, filter: &Value, options: &ReplayOptions) -> Result<Vec<Value>, String> {
        let (from, to) = if let Some(hash) = filter["blockHash"].as_str() {
            let number = *self
                .block_by_hash
                .get(&hash.to_lowercase())
                .ok_or_else(|| format!("block {hash} is not recorded"))?;
            (number, number)
        } else {
            let latest = json!("latest");
            let from_tag = filter
                .get("fromBlock")
                .filter(|v| !v.is_null())
                .unwrap_or(&latest);
            let to_tag = filter
                .get("toBlock")
                .filter(|v| !v.is_null())
                .unwrap_or(&latest);
            let from = self
                .resolve(from_tag, options)
                .ok_or_else(|| format!("fromBlock {from_tag} is not known"))?;
            let to = self
                .resolve(to_tag, options)
                .ok_or_else(|| format!("toBlock {to_tag} is not known"))?;
            (from, to)
        };
        if from > to {
            return Ok(Vec::new());
        }
        let topics: Vec<Value> = filter["topics"].as_array().cloned().unwrap_or_default();
        let wanted_topic0: Option<BTreeSet<String>> = match topics.first() {
            Some(Value::String(t)) => Some(BTreeSet::from([t.to_lowercase()])),
            Some(Value::Array(ts)) => Some(
                ts.iter()
                    .filter_map(|t| t.as_str().map(str::to_lowercase))
                    .collect(),
            ),
            _ => None,
        };
        for number in from..=to {
            match self.coverage.get(&number) {
                Some(Coverage::All) => {}
                Some(Coverage::Topic0(recorded))
                    if wanted_topic0
                        .as_ref()
                        .is_some_and(|w| w.is_subset(recorded)) => {}
                _ => {
                    return Err(format!(
                        "the logs of block {number} are not completely recorded"
                    ))
                }
            }
        }
        let addresses: Option<Vec<String>> = match &filter["address"] {
            Value::String(a) => Some(vec![a.to_lowercase()]),
            Value::Array(list) => Some(
                list.iter()
                    .filter_map(|a| a.as_str().map(str::to_lowercase))
                    .collect(),
            ),
            _ => None,
        };
        Ok(self
            .logs
            .iter()
            .filter(|log| hex_u64(&log["blockNumber"]).is_some_and(|n| (from..=to).contains(&n)))
            .filter(|log| {
                addresses.as_ref().is_none_or(|list| {
                    list.contains(&log["address"].as_str().unwrap_or_default().to_lowercase())
                })
            })
            .filter(|log| topics_match(&topics, log))
            .cloned()
            .collect())
    }
}

fn topics_match(wanted: &[Value], log: &Value) -> bool {
    let have = log["topics"].as_array().cloned().unwrap_or_default();
    wanted.iter().enumerate().all(|(i, want)| {
        let actual = have.get(i).and_then(Value::as_str).map(str::to_lowercase);
        match want {
            Value::Null => true,
            Value::String(t) => actual.as_deref() == Some(t.to_lowercase().as_str()),
            Value::Array(options) if options.is_empty() => true,
            Value::Array(options) => options.iter().any(|o| {
                o.as_str()
                    .is_some_and(|t| actual.as_deref() == Some(t.to_lowercase().as_str()))
            }),
            _ => false,
        }
    })
}

/// A recorded `eth_newFilter` on blocks `from..=to` with one topic0 and its
/// recorded `eth_getFilterLogs` answer.
struct RecordedFilter {
    from: u64,
    to: u64,
    topic0: String,
    logs: Vec<Value>,
}

/// Filters whose file name is unambiguous: exactly `fromBlock`, `toBlock`
/// (hex numbers) and a single topic. (The name flattens lists, so anything
/// richer cannot be read back safely and is ignored.)
fn recorded_filters(responses: &HashMap<String, Value>) -> Vec<RecordedFilter> {
    let mut filters = Vec::new();
    for (name, response) in responses {
        let Some(rest) = name
            .strip_prefix("web3_response.eth_newFilter_")
            .and_then(|r| r.strip_suffix(".json"))
        else {
            continue;
        };
        let tokens: Vec<&str> = rest.split('_').collect();
        let [from_key, from, to_key, to, topics_key, topic0] = tokens.as_slice() else {
            continue;
        };
        if (*from_key, *to_key, *topics_key) != ("fromBlock", "toBlock", "topics") {
            continue;
        }
        let (Some(from), Some(to)) = (hex_u64(&json!(from)), hex_u64(&json!(to))) else {
            continue;
        };
        let Some(id) = response["result"].as_str() else {
            continue;
        };
        let logs_file = file_name("eth_getFilterLogs", &json!([id]));
        let Some(logs) = responses
            .get(&logs_file)
            .and_then(|r| r["result"].as_array())
        else {
            continue;
        };
        filters.push(RecordedFilter {
            from,
            to,
            topic0: topic0.to_lowercase(),
            logs: logs.clone(),
        });
    }
    filters
}

/// An ethereum-etl block row as an RPC block header (fields that convert exactly).
fn header_from_etl(block: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    let strings = [
        ("hash", "hash"),
        ("parent_hash", "parentHash"),
        ("nonce", "nonce"),
        ("sha3_uncles", "sha3Uncles"),
        ("logs_bloom", "logsBloom"),
        ("transactions_root", "transactionsRoot"),
        ("state_root", "stateRoot"),
        ("receipts_root", "receiptsRoot"),
        ("miner", "miner"),
        ("extra_data", "extraData"),
        ("withdrawals_root", "withdrawalsRoot"),
    ];
    for (from, to) in strings {
        if let Some(s) = block[from].as_str() {
            out.insert(to.to_string(), json!(s));
        }
    }
    let quantities = [
        ("number", "number"),
        ("difficulty", "difficulty"),
        ("total_difficulty", "totalDifficulty"),
        ("size", "size"),
        ("gas_limit", "gasLimit"),
        ("gas_used", "gasUsed"),
        ("timestamp", "timestamp"),
        ("base_fee_per_gas", "baseFeePerGas"),
        ("blob_gas_used", "blobGasUsed"),
        ("excess_blob_gas", "excessBlobGas"),
    ];
    for (from, to) in quantities {
        if let Some(q) = quantity_of(&block[from]) {
            out.insert(to.to_string(), q);
        }
    }
    if let Some(list) = block["withdrawals"].as_array() {
        let converted: Option<Vec<Value>> = list
            .iter()
            .map(|w| {
                Some(json!({
                    "index": quantity_of(&w["index"])?,
                    "validatorIndex": quantity_of(&w["validator_index"])?,
                    "address": w["address"].as_str()?,
                    "amount": quantity_of(&w["amount"])?,
                }))
            })
            .collect();
        if let (Some(converted), Some(_)) = (converted, block["withdrawals_root"].as_str()) {
            out.insert("withdrawals".to_string(), Value::Array(converted));
        }
    }
    if block["sha3_uncles"].as_str() == Some(EMPTY_UNCLES_HASH) {
        out.insert("uncles".to_string(), json!([]));
    }
    out
}

/// An ethereum-etl transaction row as an RPC transaction, if every field
/// it needs converts exactly (values beyond 2^64 do not survive serde_json).
fn tx_from_etl(tx: &Value) -> Option<Value> {
    let mut out = json!({
        "hash": tx["hash"].as_str()?,
        "nonce": quantity_of(&tx["nonce"])?,
        "blockHash": tx["block_hash"].as_str()?,
        "blockNumber": quantity_of(&tx["block_number"])?,
        "transactionIndex": quantity_of(&tx["transaction_index"])?,
        "from": tx["from_address"].as_str()?,
        "to": tx["to_address"].clone(),
        "value": quantity_of(&tx["value"])?,
        "gas": quantity_of(&tx["gas"])?,
        "gasPrice": quantity_of(&tx["gas_price"])?,
        "input": tx["input"].as_str()?,
    });
    for (from, to) in [
        ("max_fee_per_gas", "maxFeePerGas"),
        ("max_priority_fee_per_gas", "maxPriorityFeePerGas"),
        ("transaction_type", "type"),
    ] {
        if let Some(q) = quantity_of(&tx[from]) {
            out[to] = q;
        }
    }
    Some(out)
}

/// An ethereum-etl log row as an RPC log.
fn log_from_etl(log: &Value) -> Value {
    json!({
        "address": log["address"],
        "topics": log["topics"],
        "data": log["data"],
        "blockNumber": quantity_of(&log["block_number"]),
        "blockHash": log["block_hash"],
        "transactionHash": log["transaction_hash"],
        "transactionIndex": quantity_of(&log["transaction_index"]),
        "logIndex": quantity_of(&log["log_index"]),
        "removed": false,
    })
}

// ---------------------------------------------------------------------------
// HTTP

async fn handle(State(shared): State<Shared>, body: Bytes) -> Response {
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return Json(rpc_error(
                &Value::Null,
                -32700,
                &format!("parse error: {e}"),
            ))
            .into_response()
        }
    };
    match request {
        Value::Array(items) if items.is_empty() => {
            Json(rpc_error(&Value::Null, -32600, "empty batch")).into_response()
        }
        Value::Array(items) => {
            let answers: Vec<Value> = items.iter().map(|item| answer(&shared, item)).collect();
            Json(Value::Array(answers)).into_response()
        }
        single => Json(answer(&shared, &single)).into_response(),
    }
}

fn rpc_error(id: &Value, code: i64, message: &str) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } })
}

fn rpc_result(id: &Value, result: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "result": result })
}

fn missing_error(id: &Value, file: &str, why: Option<&str>) -> Value {
    let detail = why.map(|w| format!("; {w}")).unwrap_or_default();
    rpc_error(
        id,
        -32000,
        &format!(
            "missing trie node {} (path ) (no recorded response for {file}{detail})",
            "0".repeat(64)
        ),
    )
}

fn answer(shared: &Shared, request: &Value) -> Value {
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let Some(method) = request.get("method").and_then(Value::as_str) else {
        let mut inner = shared.inner.lock().expect("replay server state");
        inner.requests.push(ReplayedRequest {
            method: String::new(),
            params: Value::Null,
            file_name: String::new(),
            answer: Answer::Invalid,
        });
        return rpc_error(&id, -32600, "invalid request: no method");
    };
    let params = match request.get("params") {
        None | Some(Value::Null) => json!([]),
        Some(p) => p.clone(),
    };
    let file = file_name(method, &params);
    let recorded = shared
        .inner
        .lock()
        .expect("replay server state")
        .responses
        .get(&file)
        .cloned();
    let (response, how) = match recorded {
        Some(mut response) => {
            if let Some(object) = response.as_object_mut() {
                object.insert("id".to_string(), id.clone());
            }
            (response, Answer::Recorded)
        }
        None => match synthesize(shared, method, &params) {
            Some(Ok(result)) => (rpc_result(&id, result), Answer::Synthesized),
            Some(Err(why)) => (missing_error(&id, &file, Some(&why)), Answer::Missing),
            None => (missing_error(&id, &file, None), Answer::Missing),
        },
    };
    shared
        .inner
        .lock()
        .expect("replay server state")
        .requests
        .push(ReplayedRequest {
            method: method.to_string(),
            params,
            file_name: file,
            answer: how,
        });
    response
}

/// A derived answer: `None` when the method is not derivable (or the option
/// is off), `Some(Err(why))` when the recorded data cannot answer it.
fn synthesize(shared: &Shared, method: &str, params: &Value) -> Option<Result<Value, String>> {
    let rec = &shared.recording;
    let options = &shared.options;
    let not_recorded = |what: String| Err(format!("{what} is not recorded"));
    match method {
        "eth_blockNumber" => options.block_number.map(|n| Ok(json!(format!("{n:#x}")))),
        "eth_getLogs" if options.synthesize_logs => {
            let filter = params.get(0).cloned().unwrap_or_else(|| json!({}));
            Some(rec.logs_for(&filter, options).map(Value::Array))
        }
        "eth_getBlockByNumber" if options.synthesize_blocks => {
            let tag = params.get(0)?;
            let full = params.get(1).and_then(Value::as_bool).unwrap_or(false);
            let Some(number) = rec.resolve(tag, options) else {
                return Some(not_recorded(format!("block {tag}")));
            };
            Some(rec.block_json(number, full).ok_or_else(|| {
                format!("block {number} (full transactions: {full}) is not recorded")
            }))
        }
        "eth_getBlockByHash" if options.synthesize_blocks => {
            let hash = params.get(0)?.as_str()?.to_lowercase();
            let full = params.get(1).and_then(Value::as_bool).unwrap_or(false);
            let Some(number) = rec.block_by_hash.get(&hash) else {
                return Some(not_recorded(format!("block {hash}")));
            };
            Some(rec.block_json(*number, full).ok_or_else(|| {
                format!("block {number} (full transactions: {full}) is not recorded")
            }))
        }
        "eth_getBlockReceipts" if options.synthesize_blocks => {
            let tag = params.get(0)?;
            let number = match tag.as_str() {
                Some(hash) if hash.len() == 66 => {
                    rec.block_by_hash.get(&hash.to_lowercase()).copied()
                }
                _ => rec.resolve(tag, options),
            };
            let Some(number) = number else {
                return Some(not_recorded(format!("block {tag}")));
            };
            Some(
                rec.block_receipts(number)
                    .ok_or_else(|| format!("the receipts of block {number} are not all recorded")),
            )
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_follow_ethereum_etl() {
        assert_eq!(
            file_name("eth_chainId", &json!([])),
            "web3_response.eth_chainId_.json"
        );
        assert_eq!(
            file_name(
                "eth_call",
                &json!([{ "to": "0x86FA049857E0209AA7D9E616F7EB3B3B78ECFDB0", "data": "0x95d89b41" }, "latest"])
            ),
            "web3_response.eth_call_data_0x95d89b41_to_0x86fa049857e0209aa7d9e616f7eb3b3b78ecfdb0_latest.json"
        );
        assert_eq!(
            file_name(
                "eth_newFilter",
                &json!([{ "toBlock": "0x76250", "fromBlock": "0x76250", "topics": [crate::chain::TRANSFER_TOPIC] }])
            ),
            "web3_response.eth_newFilter_fromBlock_0x76250_toBlock_0x76250_topics_0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef.json"
        );
        assert_eq!(
            file_name("eth_getBlockByNumber", &json!(["0x1ac9f3", true])),
            "web3_response.eth_getBlockByNumber_0x1ac9f3_true.json"
        );
        assert_eq!(
            file_name("x", &json!([null, 12, [1, "A"]])),
            "web3_response.x_none_12_1_a.json"
        );
    }

    #[test]
    fn topic_filters_follow_eth_get_logs() {
        let log = json!({ "topics": ["0xAA", "0xbb"] });
        assert!(topics_match(&[], &log));
        assert!(topics_match(&[json!("0xaa")], &log));
        assert!(topics_match(&[Value::Null, json!(["0xcc", "0xBB"])], &log));
        assert!(!topics_match(&[json!("0xbb")], &log));
        assert!(!topics_match(
            &[Value::Null, Value::Null, json!("0xcc")],
            &log
        ));
    }
}
