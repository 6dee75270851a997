//! A small JSON-RPC client for driving a dev node (anvil) in tests: deploy the
//! test contracts, send transactions from the node's unlocked dev accounts,
//! call, control mining and block timestamps, read blocks and traces.
//!
//! Values are plain `serde_json::Value`s as the node returns them; ABI
//! encoding is the handful of types the test contracts take ([`Arg`]).
//!
//! Putting blocks on chosen days: start anvil with a genesis timestamp before
//! the day ([`crate::Anvil::start_at`]), then [`Chain::mine`] each block at
//! the second wanted, e.g. [`Chain::mine_day_boundary`] mines one block at
//! `D 23:59:59` and the next at `D+1 00:00:00` UTC. To get several
//! transactions into one block, [`Chain::set_automine`]`(false)`,
//! [`Chain::submit`] them, [`Chain::mine`], then read [`Chain::receipt`]s.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use chrono::{NaiveDate, NaiveTime};
use serde_json::{json, Value};

/// `keccak256("Transfer(address,address,uint256)")`, topic0 of ERC-20 and
/// ERC-721 transfers.
pub const TRANSFER_TOPIC: &str =
    "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef";

/// How long [`Chain::wait_receipt`] waits for a transaction to be mined.
const RECEIPT_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// Timestamps

/// Unix seconds of `day` at `h:m:s` UTC.
pub fn utc_timestamp(day: NaiveDate, h: u32, m: u32, s: u32) -> u64 {
    let time = NaiveTime::from_hms_opt(h, m, s).expect("a valid time of day");
    day.and_time(time).and_utc().timestamp() as u64
}

/// `D 00:00:00` UTC, the first second of the day.
pub fn day_start(day: NaiveDate) -> u64 {
    utc_timestamp(day, 0, 0, 0)
}

/// `D 23:59:59` UTC, the last whole second of the day.
pub fn day_end(day: NaiveDate) -> u64 {
    utc_timestamp(day, 23, 59, 59)
}

// ---------------------------------------------------------------------------
// Hex, Keccak-256 and 256-bit words

/// `0x` + lower-case hex.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(2 + bytes.len() * 2);
    out.push_str("0x");
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

/// Bytes of a hex string, with or without `0x`; an odd digit count is an error.
pub fn from_hex(text: &str) -> anyhow::Result<Vec<u8>> {
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    if !digits.len().is_multiple_of(2) {
        bail!("odd number of hex digits in {text:?}");
    }
    let nibble = |c: u8| -> anyhow::Result<u8> {
        match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => bail!("not hex: {text:?}"),
        }
    };
    digits
        .as_bytes()
        .chunks(2)
        .map(|pair| Ok(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

/// A hex quantity (`"0x1a"`) as a number.
pub fn quantity(value: &Value) -> anyhow::Result<u64> {
    let text = value
        .as_str()
        .ok_or_else(|| anyhow!("not a hex quantity: {value}"))?;
    let digits = text.strip_prefix("0x").unwrap_or(text);
    u64::from_str_radix(digits, 16).with_context(|| format!("not a hex quantity: {value}"))
}

const KECCAK_ROUND_CONSTANTS: [u64; 24] = [
    0x0000000000000001,
    0x0000000000008082,
    0x800000000000808a,
    0x8000000080008000,
    0x000000000000808b,
    0x0000000080000001,
    0x8000000080008081,
    0x8000000000008009,
    0x000000000000008a,
    0x0000000000000088,
    0x0000000080008009,
    0x000000008000000a,
    0x000000008000808b,
    0x800000000000008b,
    0x8000000000008089,
    0x8000000000008003,
    0x8000000000008002,
    0x8000000000000080,
    0x000000000000800a,
    0x800000008000000a,
    0x8000000080008081,
    0x8000000000008080,
    0x0000000080000001,
    0x8000000080008008,
];

/// Rotation offsets of the rho step, lane `x + 5 y`.
const KECCAK_ROTATIONS: [u32; 25] = [
    0, 1, 62, 28, 27, 36, 44, 6, 55, 20, 3, 10, 43, 25, 39, 41, 45, 15, 21, 8, 18, 2, 61, 56, 14,
];

fn keccak_f(a: &mut [u64; 25]) {
    for rc in KECCAK_ROUND_CONSTANTS {
        // theta
        let mut c = [0u64; 5];
        for (x, cx) in c.iter_mut().enumerate() {
            *cx = a[x] ^ a[x + 5] ^ a[x + 10] ^ a[x + 15] ^ a[x + 20];
        }
        for x in 0..5 {
            let d = c[(x + 4) % 5] ^ c[(x + 1) % 5].rotate_left(1);
            for y in 0..5 {
                a[x + 5 * y] ^= d;
            }
        }
        // rho and pi: B[y, 2x + 3y] = rot(A[x, y])
        let mut b = [0u64; 25];
        for x in 0..5 {
            for y in 0..5 {
                b[y + 5 * ((2 * x + 3 * y) % 5)] =
                    a[x + 5 * y].rotate_left(KECCAK_ROTATIONS[x + 5 * y]);
            }
        }
        // chi
        for y in 0..5 {
            for x in 0..5 {
                a[x + 5 * y] = b[x + 5 * y] ^ (!b[(x + 1) % 5 + 5 * y] & b[(x + 2) % 5 + 5 * y]);
            }
        }
        // iota
        a[0] ^= rc;
    }
}

/// Keccak-256 as Ethereum uses it (original Keccak padding, not SHA3-256).
pub fn keccak256(data: &[u8]) -> [u8; 32] {
    const RATE: usize = 136;
    let mut state = [0u64; 25];
    let absorb = |state: &mut [u64; 25], block: &[u8]| {
        for (i, lane) in block.chunks(8).enumerate() {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(lane);
            state[i] ^= u64::from_le_bytes(bytes);
        }
        keccak_f(state);
    };
    let mut chunks = data.chunks_exact(RATE);
    for block in &mut chunks {
        absorb(&mut state, block);
    }
    let rest = chunks.remainder();
    let mut last = [0u8; RATE];
    last[..rest.len()].copy_from_slice(rest);
    last[rest.len()] ^= 0x01;
    last[RATE - 1] ^= 0x80;
    absorb(&mut state, &last);
    let mut out = [0u8; 32];
    for (i, lane) in state.iter().take(4).enumerate() {
        out[i * 8..i * 8 + 8].copy_from_slice(&lane.to_le_bytes());
    }
    out
}

/// The 4-byte function selector of a signature such as `"transfer(address,uint256)"`.
pub fn selector(signature: &str) -> [u8; 4] {
    let hash = keccak256(signature.as_bytes());
    [hash[0], hash[1], hash[2], hash[3]]
}

/// topic0 of an event signature, as `0x…` hex.
pub fn event_topic(signature: &str) -> String {
    to_hex(&keccak256(signature.as_bytes()))
}

/// A 256-bit unsigned integer from decimal digits, as a big-endian word.
pub fn decimal_to_word(digits: &str) -> anyhow::Result<[u8; 32]> {
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        bail!("not a decimal number: {digits:?}");
    }
    let mut word = [0u8; 32];
    for c in digits.bytes() {
        let mut carry = u32::from(c - b'0');
        for byte in word.iter_mut().rev() {
            let v = u32::from(*byte) * 10 + carry;
            *byte = (v & 0xff) as u8;
            carry = v >> 8;
        }
        if carry != 0 {
            bail!("{digits} does not fit in 256 bits");
        }
    }
    Ok(word)
}

/// The decimal digits of a big-endian unsigned integer of any length.
pub fn word_to_decimal(word: &[u8]) -> String {
    let mut number = word.to_vec();
    let mut digits = Vec::new();
    while number.iter().any(|&b| b != 0) {
        let mut remainder = 0u32;
        for byte in number.iter_mut() {
            let v = (remainder << 8) | u32::from(*byte);
            *byte = (v / 10) as u8;
            remainder = v % 10;
        }
        digits.push(b'0' + remainder as u8);
    }
    if digits.is_empty() {
        return "0".to_string();
    }
    digits.reverse();
    String::from_utf8(digits).expect("ASCII digits")
}

/// A big-endian word holding `v`.
pub fn word(v: u128) -> [u8; 32] {
    let mut out = [0u8; 32];
    out[16..].copy_from_slice(&v.to_be_bytes());
    out
}

/// The address in the low 20 bytes of a 32-byte topic or word (`0x…`, lower case).
pub fn word_to_address(word: &[u8]) -> String {
    to_hex(&word[word.len().saturating_sub(20)..])
}

// ---------------------------------------------------------------------------
// ABI encoding

/// An ABI value for calldata and constructor arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// `address`, as `0x` + 40 hex digits.
    Address(String),
    /// `uint<N>` (any N), as a big-endian 32-byte word.
    Uint([u8; 32]),
    Bool(bool),
    /// `bytes1` … `bytes32`: the bytes, left-aligned and zero-padded.
    FixedBytes(Vec<u8>),
    /// `bytes`, or a `string` whose bytes need not be UTF-8 (same encoding).
    Bytes(Vec<u8>),
    String(String),
    /// `T[]` of any of these types.
    Array(Vec<Arg>),
}

impl Arg {
    pub fn address(address: &str) -> Arg {
        Arg::Address(address.to_string())
    }

    pub fn uint(v: u128) -> Arg {
        Arg::Uint(word(v))
    }

    /// A uint from decimal digits, up to 2^256−1. Panics on bad input.
    pub fn uint_dec(digits: &str) -> Arg {
        Arg::Uint(decimal_to_word(digits).expect("a 256-bit decimal number"))
    }

    /// 2^256−1.
    pub fn max_uint() -> Arg {
        Arg::Uint([0xff; 32])
    }

    pub fn string(s: &str) -> Arg {
        Arg::String(s.to_string())
    }

    pub fn bytes(b: &[u8]) -> Arg {
        Arg::Bytes(b.to_vec())
    }

    /// `bytes32` from up to 32 bytes, right-padded with zeros (`"MKR"` → MKR\0…).
    pub fn bytes32(b: &[u8]) -> Arg {
        assert!(b.len() <= 32, "bytes32 takes at most 32 bytes");
        Arg::FixedBytes(b.to_vec())
    }

    /// `bytes4`, e.g. a selector.
    pub fn bytes4(b: [u8; 4]) -> Arg {
        Arg::FixedBytes(b.to_vec())
    }

    pub fn addresses(addresses: &[&str]) -> Arg {
        Arg::Array(addresses.iter().map(|a| Arg::address(a)).collect())
    }

    pub fn uints(values: &[u128]) -> Arg {
        Arg::Array(values.iter().map(|v| Arg::uint(*v)).collect())
    }

    fn is_dynamic(&self) -> bool {
        matches!(self, Arg::Bytes(_) | Arg::String(_) | Arg::Array(_))
    }

    fn encode(&self) -> Vec<u8> {
        match self {
            Arg::Address(address) => {
                let raw = from_hex(address).expect("an address in hex");
                assert_eq!(raw.len(), 20, "an address has 20 bytes: {address}");
                let mut out = vec![0u8; 12];
                out.extend(raw);
                out
            }
            Arg::Uint(w) => w.to_vec(),
            Arg::Bool(b) => word(u128::from(*b)).to_vec(),
            Arg::FixedBytes(b) => {
                assert!(b.len() <= 32, "bytesN takes at most 32 bytes");
                let mut out = b.clone();
                out.resize(32, 0);
                out
            }
            Arg::Bytes(b) => encode_bytes(b),
            Arg::String(s) => encode_bytes(s.as_bytes()),
            Arg::Array(items) => {
                let mut out = word(items.len() as u128).to_vec();
                out.extend(encode_args(items));
                out
            }
        }
    }
}

fn encode_bytes(b: &[u8]) -> Vec<u8> {
    let mut out = word(b.len() as u128).to_vec();
    out.extend_from_slice(b);
    out.resize(32 + b.len().div_ceil(32) * 32, 0);
    out
}

/// The ABI encoding of a tuple of arguments (heads, then the dynamic tails).
pub fn encode_args(args: &[Arg]) -> Vec<u8> {
    let head_size = 32 * args.len();
    let mut head = Vec::with_capacity(head_size);
    let mut tail = Vec::new();
    for arg in args {
        if arg.is_dynamic() {
            head.extend(word((head_size + tail.len()) as u128));
            tail.extend(arg.encode());
        } else {
            head.extend(arg.encode());
        }
    }
    head.extend(tail);
    head
}

/// Calldata: the selector of `signature` followed by the encoded arguments.
pub fn encode_call(signature: &str, args: &[Arg]) -> Vec<u8> {
    let mut out = selector(signature).to_vec();
    out.extend(encode_args(args));
    out
}

// ---------------------------------------------------------------------------
// Compiled contracts

/// A contract compiled by `make tools`: `$ETHPIPE_TOOLS_DIR/contracts/<Name>.json`.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub name: String,
    pub abi: Value,
    /// Creation code (constructor arguments are appended to it).
    pub bytecode: Vec<u8>,
    /// Runtime code, as a creation trace's `result.code` shows it.
    pub deployed_bytecode: Vec<u8>,
    /// The selectors ethereum-etl finds in the runtime code (the compile
    /// script's own implementation of rule 19), sorted `0x…` strings.
    pub function_sighashes: Vec<String>,
    pub is_erc20: bool,
    pub is_erc721: bool,
}

impl Artifact {
    pub fn path(name: &str) -> PathBuf {
        crate::anvil::contracts_dir().join(format!("{name}.json"))
    }

    pub fn load(name: &str) -> anyhow::Result<Artifact> {
        let path = Artifact::path(name);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "no compiled contract {name} at {}: run `make tools`",
                path.display()
            )
        })?;
        let json: Value = serde_json::from_str(&text)
            .with_context(|| format!("bad contract file {}", path.display()))?;
        let hex_field = |key: &str| -> anyhow::Result<Vec<u8>> {
            from_hex(json[key].as_str().unwrap_or_default())
                .with_context(|| format!("{key} in {}", path.display()))
        };
        Ok(Artifact {
            name: name.to_string(),
            abi: json["abi"].clone(),
            bytecode: hex_field("bytecode")?,
            deployed_bytecode: hex_field("deployedBytecode")?,
            function_sighashes: json["functionSighashes"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            is_erc20: json["isErc20"].as_bool().unwrap_or(false),
            is_erc721: json["isErc721"].as_bool().unwrap_or(false),
        })
    }

    /// Creation code with these constructor arguments, ready to deploy
    /// directly or to hand to `TokenFactory`.
    pub fn creation_code(&self, args: &[Arg]) -> Vec<u8> {
        let mut code = self.bytecode.clone();
        code.extend(encode_args(args));
        code
    }
}

/// The address `CREATE2` gives: `keccak256(0xff ++ deployer ++ salt ++ keccak256(code))[12..]`.
pub fn create2_address(deployer: &str, salt: [u8; 32], init_code: &[u8]) -> String {
    let mut preimage = vec![0xffu8];
    preimage.extend(from_hex(deployer).expect("a deployer address in hex"));
    preimage.extend(salt);
    preimage.extend(keccak256(init_code));
    word_to_address(&keccak256(&preimage))
}

// ---------------------------------------------------------------------------
// Transactions and receipts

/// A transaction for `eth_sendTransaction` from an unlocked dev account.
#[derive(Debug, Clone, Default)]
pub struct Tx {
    /// Sender; the chain's first account when `None`.
    pub from: Option<String>,
    /// Recipient; `None` deploys `data` as creation code.
    pub to: Option<String>,
    pub data: Vec<u8>,
    /// Gas limit; `None` lets the node estimate. The estimate is the least
    /// gas with which the transaction succeeds, so an inner call that may
    /// fail gets only what the outer call needs. (anvil still mines a
    /// transaction that reverts whatever the gas; its receipt has status 0.)
    pub gas: Option<u64>,
    /// Wei sent along.
    pub value: Option<u128>,
}

/// A mined transaction.
#[derive(Debug, Clone)]
pub struct Sent {
    pub tx_hash: String,
    /// The receipt as the node returns it.
    pub receipt: Value,
}

impl Sent {
    /// 1 for success, 0 for a reverted transaction.
    pub fn status(&self) -> u64 {
        quantity(&self.receipt["status"]).unwrap_or(0)
    }

    pub fn succeeded(&self) -> bool {
        self.status() == 1
    }

    pub fn block_number(&self) -> u64 {
        quantity(&self.receipt["blockNumber"]).unwrap_or(0)
    }

    pub fn logs(&self) -> &[Value] {
        self.receipt["logs"].as_array().map_or(&[], Vec::as_slice)
    }

    /// The address of a contract the transaction deployed directly.
    pub fn contract_address(&self) -> Option<String> {
        self.receipt["contractAddress"]
            .as_str()
            .map(str::to_lowercase)
    }

    /// Addresses logged as topic 1 by `emitter` (e.g. `TokenFactory`'s
    /// `Deployed(address indexed token, bool)`), in log order.
    pub fn logged_addresses(&self, emitter: &str) -> Vec<String> {
        self.logs()
            .iter()
            .filter(|log| {
                log["address"]
                    .as_str()
                    .is_some_and(|a| a.eq_ignore_ascii_case(emitter))
            })
            .filter_map(|log| log["topics"].get(1)?.as_str())
            .filter_map(|topic| from_hex(topic).ok())
            .map(|w| word_to_address(&w))
            .collect()
    }
}

// ---------------------------------------------------------------------------
// The client

/// A JSON-RPC client for one node, sending from its unlocked dev accounts.
#[derive(Clone)]
pub struct Chain {
    url: String,
    client: reqwest::Client,
    next_id: std::sync::Arc<AtomicU64>,
    /// The node's dev accounts (`eth_accounts`), lower-case; the first one
    /// sends by default.
    pub accounts: Vec<String>,
}

impl Chain {
    pub async fn connect(url: &str) -> anyhow::Result<Chain> {
        let mut chain = Chain {
            url: url.to_string(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()?,
            next_id: std::sync::Arc::new(AtomicU64::new(1)),
            accounts: Vec::new(),
        };
        let accounts = chain.request("eth_accounts", json!([])).await?;
        chain.accounts = accounts
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_lowercase))
                    .collect()
            })
            .unwrap_or_default();
        Ok(chain)
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The default sender, the first dev account.
    pub fn sender(&self) -> &str {
        self.accounts.first().map_or("", String::as_str)
    }

    /// The whole JSON-RPC response object (`result` or `error`).
    pub async fn request_raw(&self, method: &str, params: Value) -> anyhow::Result<Value> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        let response = self
            .client
            .post(&self.url)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("{method} to {}", self.url))?;
        let status = response.status();
        let text = response.text().await?;
        serde_json::from_str(&text)
            .with_context(|| format!("{method}: HTTP {status}, body is not JSON: {text}"))
    }

    /// The `result` of a call; a JSON-RPC error is an `Err` with its message.
    pub async fn request(&self, method: &str, params: Value) -> anyhow::Result<Value> {
        let response = self.request_raw(method, params).await?;
        if let Some(error) = response.get("error") {
            bail!("{method} failed: {error}");
        }
        response
            .get("result")
            .cloned()
            .ok_or_else(|| anyhow!("{method}: no result in {response}"))
    }

    /// Deploys a compiled test contract with constructor arguments and
    /// returns its address (waits for the block; needs automine).
    pub async fn deploy(&self, contract: &str, args: &[Arg]) -> anyhow::Result<String> {
        let artifact = Artifact::load(contract)?;
        let sent = self.deploy_code(artifact.creation_code(args)).await?;
        sent.contract_address().ok_or_else(|| {
            anyhow!(
                "deploying {contract}: no contractAddress in {}",
                sent.receipt
            )
        })
    }

    /// Deploys raw creation code; the receipt must show success.
    pub async fn deploy_code(&self, code: Vec<u8>) -> anyhow::Result<Sent> {
        let sent = self
            .send_tx(Tx {
                data: code,
                ..Tx::default()
            })
            .await?;
        if !sent.succeeded() {
            bail!("deployment {} reverted: {}", sent.tx_hash, sent.receipt);
        }
        Ok(sent)
    }

    /// Sends calldata to `to` from the default account, waits for the
    /// receipt, and fails unless the transaction succeeded (use
    /// [`Chain::send_tx`] to mine one that reverts).
    pub async fn send(&self, to: &str, calldata: &[u8]) -> anyhow::Result<Sent> {
        let sent = self
            .send_tx(Tx {
                to: Some(to.to_string()),
                data: calldata.to_vec(),
                ..Tx::default()
            })
            .await?;
        if !sent.succeeded() {
            bail!(
                "transaction {} to {to} reverted: {}",
                sent.tx_hash,
                sent.receipt
            );
        }
        Ok(sent)
    }

    /// Sends a transaction and waits until it is mined, whatever its status.
    pub async fn send_tx(&self, tx: Tx) -> anyhow::Result<Sent> {
        let hash = self.submit(tx).await?;
        self.wait_receipt(&hash).await
    }

    /// Sends a transaction without waiting for it to be mined; returns its
    /// hash. With automine off it waits in the pool for the next [`Chain::mine`].
    pub async fn submit(&self, tx: Tx) -> anyhow::Result<String> {
        let mut object = json!({
            "from": tx.from.unwrap_or_else(|| self.sender().to_string()),
            "data": to_hex(&tx.data),
        });
        if let Some(to) = tx.to {
            object["to"] = json!(to);
        }
        if let Some(gas) = tx.gas {
            object["gas"] = json!(format!("{gas:#x}"));
        }
        if let Some(value) = tx.value {
            object["value"] = json!(format!("{value:#x}"));
        }
        let hash = self.request("eth_sendTransaction", json!([object])).await?;
        hash.as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("eth_sendTransaction returned {hash}"))
    }

    /// The receipt, or `None` while the transaction is not mined.
    pub async fn receipt(&self, tx_hash: &str) -> anyhow::Result<Option<Value>> {
        let receipt = self
            .request("eth_getTransactionReceipt", json!([tx_hash]))
            .await?;
        Ok((!receipt.is_null()).then_some(receipt))
    }

    /// Polls for the receipt until the transaction is mined.
    pub async fn wait_receipt(&self, tx_hash: &str) -> anyhow::Result<Sent> {
        let deadline = Instant::now() + RECEIPT_TIMEOUT;
        loop {
            if let Some(receipt) = self.receipt(tx_hash).await? {
                return Ok(Sent {
                    tx_hash: tx_hash.to_string(),
                    receipt,
                });
            }
            if Instant::now() > deadline {
                bail!("{tx_hash} not mined within {RECEIPT_TIMEOUT:?} (automine off?)");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `eth_call` at `latest`; the returned bytes, or `Err` on a revert.
    pub async fn call(&self, to: &str, calldata: &[u8]) -> anyhow::Result<Vec<u8>> {
        let result = self
            .request(
                "eth_call",
                json!([{ "to": to, "data": to_hex(calldata) }, "latest"]),
            )
            .await?;
        from_hex(result.as_str().unwrap_or_default())
    }

    /// `eth_call` exactly as ethereum-etl sends it (`{to, data}` at `block`),
    /// returning the whole response object, error included.
    pub async fn call_raw(&self, to: &str, calldata: &[u8], block: &str) -> anyhow::Result<Value> {
        self.request_raw(
            "eth_call",
            json!([{ "to": to, "data": to_hex(calldata) }, block]),
        )
        .await
    }

    /// `eth_getCode` at `latest`.
    pub async fn code(&self, address: &str) -> anyhow::Result<Vec<u8>> {
        let code = self
            .request("eth_getCode", json!([address, "latest"]))
            .await?;
        from_hex(code.as_str().unwrap_or_default())
    }

    /// The next mined block gets exactly this timestamp.
    pub async fn set_next_block_timestamp(&self, ts: u64) -> anyhow::Result<()> {
        self.request("evm_setNextBlockTimestamp", json!([ts]))
            .await?;
        Ok(())
    }

    /// Mines one block (with every pending transaction) at timestamp `ts`,
    /// which must be later than the latest block's; returns its number.
    pub async fn mine(&self, ts: u64) -> anyhow::Result<u64> {
        self.request("evm_mine", json!([ts])).await?;
        self.block_number().await
    }

    /// Mines one block at the node's next timestamp; returns its number.
    pub async fn mine_next(&self) -> anyhow::Result<u64> {
        self.request("evm_mine", json!([])).await?;
        self.block_number().await
    }

    /// Mines a block at `D 23:59:59` and the next at `D+1 00:00:00` UTC;
    /// returns their numbers.
    pub async fn mine_day_boundary(&self, day: NaiveDate) -> anyhow::Result<(u64, u64)> {
        let last = self.mine(day_end(day)).await?;
        let first = self.mine(day_end(day) + 1).await?;
        Ok((last, first))
    }

    /// Automine on: each transaction gets its own block at once. Off:
    /// transactions wait in the pool until [`Chain::mine`].
    pub async fn set_automine(&self, on: bool) -> anyhow::Result<()> {
        self.request("evm_setAutomine", json!([on])).await?;
        Ok(())
    }

    pub async fn block_number(&self) -> anyhow::Result<u64> {
        quantity(&self.request("eth_blockNumber", json!([])).await?)
    }

    /// `eth_getBlockByNumber(n, false)`: transactions as hashes.
    pub async fn block(&self, n: u64) -> anyhow::Result<Value> {
        self.block_with(n, false).await
    }

    /// `eth_getBlockByNumber(n, full)`.
    pub async fn block_with(&self, n: u64, full: bool) -> anyhow::Result<Value> {
        let block = self
            .request("eth_getBlockByNumber", json!([format!("{n:#x}"), full]))
            .await?;
        if block.is_null() {
            bail!("block {n} does not exist");
        }
        Ok(block)
    }

    /// The timestamp of block `n`.
    pub async fn block_timestamp(&self, n: u64) -> anyhow::Result<u64> {
        quantity(&self.block(n).await?["timestamp"])
    }

    /// `trace_block(n)`: Parity-format traces (anvil answers it).
    pub async fn trace_block(&self, n: u64) -> anyhow::Result<Value> {
        self.request("trace_block", json!([format!("{n:#x}")]))
            .await
    }

    /// `debug_traceBlockByNumber(n, {tracer: callTracer})`: geth call frames.
    pub async fn debug_trace_block(&self, n: u64) -> anyhow::Result<Value> {
        self.request(
            "debug_traceBlockByNumber",
            json!([format!("{n:#x}"), { "tracer": "callTracer" }]),
        )
        .await
    }

    /// `eth_getLogs` over blocks `from..=to`, optionally for one topic0.
    pub async fn logs(
        &self,
        from: u64,
        to: u64,
        topic0: Option<&str>,
    ) -> anyhow::Result<Vec<Value>> {
        let mut filter =
            json!({ "fromBlock": format!("{from:#x}"), "toBlock": format!("{to:#x}") });
        if let Some(topic) = topic0 {
            filter["topics"] = json!([topic]);
        }
        let logs = self.request("eth_getLogs", json!([filter])).await?;
        Ok(logs.as_array().cloned().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keccak_matches_known_digests() {
        assert_eq!(
            to_hex(&keccak256(b"")),
            "0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
        assert_eq!(
            event_topic("Transfer(address,address,uint256)"),
            TRANSFER_TOPIC
        );
        assert_eq!(
            selector("transfer(address,uint256)"),
            [0xa9, 0x05, 0x9c, 0xbb]
        );
        assert_eq!(selector("SYMBOL()"), [0xf7, 0x6f, 0x8d, 0x78]);
        // Inputs of more than one 136-byte block are checked against the
        // node in tests/anvil_smoke.rs (CREATE2 addresses of long init code).
    }

    #[test]
    fn decimal_words_round_trip() {
        let max = "115792089237316195423570985008687907853269984665640564039457584007913129639935";
        assert_eq!(decimal_to_word(max).unwrap(), [0xff; 32]);
        assert_eq!(word_to_decimal(&[0xff; 32]), max);
        assert!(decimal_to_word(
            "115792089237316195423570985008687907853269984665640564039457584007913129639936"
        )
        .is_err());
        assert_eq!(word_to_decimal(&word(1_000_000)), "1000000");
        assert_eq!(word_to_decimal(&[0u8; 32]), "0");
    }

    #[test]
    fn encodes_dynamic_arguments() {
        // batchTransfer([a, b], [1, 2])
        let a = "0x1111111111111111111111111111111111111111";
        let b = "0x2222222222222222222222222222222222222222";
        let data = encode_args(&[Arg::addresses(&[a, b]), Arg::uints(&[1, 2])]);
        let words: Vec<String> = data
            .chunks(32)
            .map(|w| to_hex(w)[2..].to_string())
            .collect();
        assert_eq!(words.len(), 8);
        assert!(words[0].ends_with("40"));
        assert!(words[1].ends_with("a0"));
        assert!(words[2].ends_with("02"));
        assert!(words[3].ends_with(&a[2..]));
        assert!(words[6].ends_with("01"));
        // string: offset, length, padded bytes
        let s = encode_args(&[Arg::string("ABC")]);
        assert_eq!(s.len(), 96);
        assert_eq!(&s[64..67], b"ABC");
        assert_eq!(
            encode_args(&[Arg::bytes32(b"MKR")])[..3].to_vec(),
            b"MKR".to_vec()
        );
    }

    #[test]
    fn timestamps_are_utc() {
        let day = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
        assert_eq!(day_start(day), 1_709_251_200);
        assert_eq!(day_end(day), 1_709_251_200 + 86_399);
    }

    #[test]
    fn create2_address_matches_eip_1014_example() {
        // EIP-1014 example 1: deployer 0x0, salt 0, init code 0x00.
        assert_eq!(
            create2_address("0x0000000000000000000000000000000000000000", [0; 32], &[0]),
            "0x4d1a2e2bb4f88f0250f26ffff098b0b30b26bf38"
        );
    }
}
