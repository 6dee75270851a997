//! Smoke tests of the JSON-RPC test support: a real anvil with the compiled
//! test contracts (`make tools`), the replay server on ethereum-etl's
//! recorded responses, and the fault-injecting proxy.

use std::time::Duration;

use chrono::NaiveDate;
use ethpipe_testkit::chain::{
    create2_address, day_end, day_start, encode_call, from_hex, quantity, selector, to_hex,
    word_to_decimal,
};
use ethpipe_testkit::rpc_replay::{fixture_dir, Answer};
use ethpipe_testkit::{
    Anvil, Arg, Artifact, Chain, Fault, LogLimitWording, Match, ReplayOptions, RpcProxy, RpcReplay,
    Tx, TRANSFER_TOPIC,
};
use serde_json::{json, Value};

const ERC20_SELECTORS: [&str; 6] = [
    "0x18160ddd",
    "0x70a08231",
    "0xa9059cbb",
    "0x23b872dd",
    "0x095ea7b3",
    "0xdd62ed3e",
];

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 3, 1).unwrap()
}

fn recipient(i: u8) -> String {
    to_hex(&[i; 20])
}

fn standard_args(supply: Arg) -> Vec<Arg> {
    vec![
        Arg::string("Alpha"),
        Arg::string("ABC"),
        Arg::uint(18),
        supply,
    ]
}

async fn anvil_before_day() -> (Anvil, Chain) {
    let anvil = Anvil::start_at(day_start(day()) - 86_400)
        .await
        .expect("anvil starts (run `make tools` first)");
    let chain = anvil.chain().await.unwrap();
    (anvil, chain)
}

/// ABI string result → its bytes.
fn abi_string(result: &[u8]) -> Vec<u8> {
    let len = usize::try_from(u64::from_be_bytes(result[56..64].try_into().unwrap())).unwrap();
    result[64..64 + len].to_vec()
}

#[tokio::test]
async fn batch_transfer_logs_and_day_boundary_blocks() {
    let (_anvil, chain) = anvil_before_day().await;
    let token = chain
        .deploy(
            "StandardToken",
            &standard_args(Arg::uint_dec("1000000000000000000000000")),
        )
        .await
        .unwrap();

    let name = chain
        .call(&token, &encode_call("name()", &[]))
        .await
        .unwrap();
    assert_eq!(abi_string(&name), b"Alpha");
    let supply = chain
        .call(&token, &encode_call("totalSupply()", &[]))
        .await
        .unwrap();
    assert_eq!(word_to_decimal(&supply), "1000000000000000000000000");

    let to: Vec<String> = (1..=5).map(recipient).collect();
    let to_refs: Vec<&str> = to.iter().map(String::as_str).collect();
    let calldata = encode_call(
        "batchTransfer(address[],uint256[])",
        &[Arg::addresses(&to_refs), Arg::uints(&[1, 2, 3, 4, 5])],
    );
    let sent = chain.send(&token, &calldata).await.unwrap();
    assert!(sent.succeeded());
    assert_eq!(sent.logs().len(), 5);
    for (i, log) in sent.logs().iter().enumerate() {
        assert_eq!(log["topics"][0], TRANSFER_TOPIC);
        assert_eq!(log["topics"].as_array().unwrap().len(), 3);
        assert_eq!(log["logIndex"], format!("{i:#x}"));
        let value = from_hex(log["data"].as_str().unwrap()).unwrap();
        assert_eq!(word_to_decimal(&value), (i + 1).to_string());
    }
    let balance = chain
        .call(
            &token,
            &encode_call("balanceOf(address)", &[Arg::address(&to[4])]),
        )
        .await
        .unwrap();
    assert_eq!(word_to_decimal(&balance), "5");

    // Blocks exactly at D 23:59:59 and D+1 00:00:00 UTC.
    let (last, first) = chain.mine_day_boundary(day()).await.unwrap();
    assert_eq!(first, last + 1);
    assert_eq!(chain.block_timestamp(last).await.unwrap(), day_end(day()));
    assert_eq!(
        chain.block_timestamp(first).await.unwrap(),
        day_start(day().succ_opt().unwrap())
    );

    // eth_getLogs sees the same five transfers.
    let logs = chain
        .logs(
            sent.block_number(),
            sent.block_number(),
            Some(TRANSFER_TOPIC),
        )
        .await
        .unwrap();
    assert_eq!(logs.len(), 5);
}

#[tokio::test]
async fn several_transactions_in_one_block_at_a_chosen_second() {
    let (_anvil, chain) = anvil_before_day().await;
    let token = chain
        .deploy("StandardToken", &standard_args(Arg::uint(1_000)))
        .await
        .unwrap();
    chain.set_automine(false).await.unwrap();
    let mut hashes = Vec::new();
    for i in 1..=3u8 {
        let tx = Tx {
            to: Some(token.clone()),
            data: encode_call(
                "transfer(address,uint256)",
                &[Arg::address(&recipient(i)), Arg::uint(10)],
            ),
            gas: Some(100_000),
            ..Tx::default()
        };
        hashes.push(chain.submit(tx).await.unwrap());
    }
    let ts = day_start(day()) + 12 * 3600;
    let block = chain.mine(ts).await.unwrap();
    chain.set_automine(true).await.unwrap();
    for hash in &hashes {
        let sent = chain.wait_receipt(hash).await.unwrap();
        assert!(sent.succeeded());
        assert_eq!(sent.block_number(), block);
    }
    let header = chain.block(block).await.unwrap();
    assert_eq!(quantity(&header["timestamp"]).unwrap(), ts);
    assert_eq!(header["transactions"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn detection_flags_of_the_compiled_contracts() {
    for name in [
        "StandardToken",
        "Bytes32Token",
        "NoMetadataToken",
        "NulNameToken",
        "BadUtf8SymbolToken",
        "SelfDestructToken",
        "ScriptedMetadataToken",
    ] {
        let artifact = Artifact::load(name).unwrap();
        assert!(artifact.is_erc20, "{name} must be detected as ERC-20");
        for s in ERC20_SELECTORS {
            assert!(
                artifact.function_sighashes.iter().any(|h| h == s),
                "{name}: {s}"
            );
        }
    }
    let nft = Artifact::load("Erc721Token").unwrap();
    assert!(nft.is_erc721 && !nft.is_erc20);
    let modern = Artifact::load("ModernToken").unwrap();
    assert!(!modern.is_erc20 && modern.function_sighashes.is_empty());
}

#[tokio::test]
async fn metadata_edge_cases_on_chain() {
    let (_anvil, chain) = anvil_before_day().await;

    let nul = chain.deploy("NulNameToken", &[]).await.unwrap();
    let name = chain.call(&nul, &selector("name()")).await.unwrap();
    assert_eq!(abi_string(&name), b"E\0T\0H\0");

    let bad = chain.deploy("BadUtf8SymbolToken", &[]).await.unwrap();
    let symbol = chain.call(&bad, &selector("symbol()")).await.unwrap();
    assert_eq!(abi_string(&symbol), [0xff, 0xfe, 0x41, 0x42]);

    let mkr = chain
        .deploy(
            "Bytes32Token",
            &[
                Arg::bytes32(b"Maker"),
                Arg::bytes32(b"MKR"),
                Arg::uint(18),
                Arg::uint(0),
            ],
        )
        .await
        .unwrap();
    let symbol = chain.call(&mkr, &selector("symbol()")).await.unwrap();
    assert_eq!(symbol.len(), 32);
    assert_eq!(&symbol[..4], b"MKR\0");

    let bare = chain
        .deploy("NoMetadataToken", &[Arg::uint(7)])
        .await
        .unwrap();
    let reverted = chain
        .call_raw(&bare, &selector("symbol()"), "latest")
        .await
        .unwrap();
    assert!(reverted.get("error").is_some(), "{reverted}");

    let max = chain
        .deploy("StandardToken", &standard_args(Arg::max_uint()))
        .await
        .unwrap();
    let supply = chain.call(&max, &selector("totalSupply()")).await.unwrap();
    assert_eq!(supply, vec![0xff; 32]);

    // A scripted token plays any raw answer: here the "string, invalid
    // UTF-8" row of the golden table and a decimals() of 256.
    let scripted = chain
        .deploy("ScriptedMetadataToken", &[Arg::uint(1)])
        .await
        .unwrap();
    let reply = from_hex(concat!(
        "0000000000000000000000000000000000000000000000000000000000000020",
        "0000000000000000000000000000000000000000000000000000000000000004",
        "fffe414200000000000000000000000000000000000000000000000000000000"
    ))
    .unwrap();
    let script = |sel: &str, mode: u128, reply: Vec<u8>| {
        encode_call(
            "script(bytes4,uint8,bytes)",
            &[
                Arg::bytes4(selector(sel)),
                Arg::uint(mode),
                Arg::Bytes(reply),
            ],
        )
    };
    chain
        .send(&scripted, &script("symbol()", 1, reply.clone()))
        .await
        .unwrap();
    chain
        .send(
            &scripted,
            &script("decimals()", 1, ethpipe_testkit::chain::word(256).to_vec()),
        )
        .await
        .unwrap();
    chain
        .send(&scripted, &script("totalSupply()", 1, vec![0x01]))
        .await
        .unwrap();
    assert_eq!(
        chain.call(&scripted, &selector("symbol()")).await.unwrap(),
        reply
    );
    assert_eq!(
        word_to_decimal(
            &chain
                .call(&scripted, &selector("decimals()"))
                .await
                .unwrap()
        ),
        "256"
    );
    assert_eq!(
        chain
            .call(&scripted, &selector("totalSupply()"))
            .await
            .unwrap(),
        vec![0x01]
    );
    let unscripted = chain
        .call_raw(&scripted, &selector("SYMBOL()"), "latest")
        .await
        .unwrap();
    assert!(unscripted.get("error").is_some(), "{unscripted}");
}

#[tokio::test]
async fn transfer_shapes_and_erc721_logs() {
    let (_anvil, chain) = anvil_before_day().await;
    let shapes = chain.deploy("TransferShapes", &[]).await.unwrap();
    let (from, to) = (recipient(0xaa), recipient(0xbb));
    let sent = chain
        .send(
            &shapes,
            &encode_call(
                "emitAllShapes(address,address,uint256)",
                &[Arg::address(&from), Arg::address(&to), Arg::uint(1_000)],
            ),
        )
        .await
        .unwrap();
    // (topics, data bytes) of each log, in the order of rule 9's table.
    let shapes_seen: Vec<(usize, usize)> = sent
        .logs()
        .iter()
        .map(|log| {
            assert_eq!(log["topics"][0], TRANSFER_TOPIC);
            (
                log["topics"].as_array().unwrap().len(),
                from_hex(log["data"].as_str().unwrap()).unwrap().len(),
            )
        })
        .collect();
    assert_eq!(
        shapes_seen,
        vec![
            (3, 32),
            (4, 0),
            (2, 64),
            (1, 96),
            (3, 0),
            (3, 64),
            (4, 32),
            (2, 32),
            (3, 40),
            (3, 20)
        ]
    );
    let non_indexed = chain
        .send(
            &shapes,
            &encode_call(
                "emitNonIndexed(address,address,uint256)",
                &[Arg::address(&from), Arg::address(&to), Arg::uint(5)],
            ),
        )
        .await
        .unwrap();
    assert_eq!(non_indexed.logs()[0]["topics"], json!([TRANSFER_TOPIC]));

    let nft = chain
        .deploy("Erc721Token", &[Arg::string("Kitties"), Arg::string("CK")])
        .await
        .unwrap();
    let minted = chain
        .send(
            &nft,
            &encode_call(
                "mint(address,uint256)",
                &[Arg::address(chain.sender()), Arg::uint(42)],
            ),
        )
        .await
        .unwrap();
    let moved = chain
        .send(
            &nft,
            &encode_call(
                "transferFrom(address,address,uint256)",
                &[
                    Arg::address(chain.sender()),
                    Arg::address(&to),
                    Arg::uint(42),
                ],
            ),
        )
        .await
        .unwrap();
    for sent in [minted, moved] {
        let log = &sent.logs()[0];
        assert_eq!(log["topics"].as_array().unwrap().len(), 4);
        assert_eq!(log["data"], "0x");
        assert!(log["topics"][3].as_str().unwrap().ends_with("2a"));
    }
}

/// The create traces of a block: (creationMethod or frame type, address, code, error).
fn parity_creates(traces: &Value) -> Vec<Value> {
    traces
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["type"] == "create")
        .cloned()
        .collect()
}

fn geth_creates(frame: &Value, out: &mut Vec<Value>) {
    let kind = frame["type"].as_str().unwrap_or_default();
    if kind == "CREATE" || kind == "CREATE2" {
        out.push(frame.clone());
    }
    for call in frame["calls"].as_array().into_iter().flatten() {
        geth_creates(call, out);
    }
}

#[tokio::test]
async fn factory_create_and_create2_children_show_in_traces() {
    let (_anvil, chain) = anvil_before_day().await;
    let factory = chain.deploy("TokenFactory", &[]).await.unwrap();
    let token = Artifact::load("StandardToken").unwrap();
    let initcode = token.creation_code(&standard_args(Arg::uint(1_000)));
    let salt = [7u8; 32];

    let sent = chain
        .send(
            &factory,
            &encode_call(
                "deployBoth(bytes,bytes32)",
                &[Arg::Bytes(initcode.clone()), Arg::FixedBytes(salt.to_vec())],
            ),
        )
        .await
        .unwrap();
    let children = sent.logged_addresses(&factory);
    assert_eq!(children.len(), 2);
    // Our Keccak on long input agrees with the EVM's.
    assert_eq!(children[1], create2_address(&factory, salt, &initcode));

    // trace_block: both children are `create` traces; CREATE2 is marked by
    // action.creationMethod; result.code is the runtime code.
    let traces = chain.trace_block(sent.block_number()).await.unwrap();
    let creates = parity_creates(&traces);
    assert_eq!(creates.len(), 2, "{traces:#}");
    let methods: Vec<&str> = creates
        .iter()
        .map(|t| t["action"]["creationMethod"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(methods, ["create", "create2"]);
    for (trace, child) in creates.iter().zip(&children) {
        assert_eq!(trace["result"]["address"].as_str().unwrap(), child);
        assert_eq!(
            trace["result"]["code"].as_str().unwrap(),
            to_hex(&token.deployed_bytecode)
        );
        assert!(trace.get("error").is_none());
    }

    // debug_traceBlockByNumber with callTracer: CREATE and CREATE2 frames.
    let geth = chain.debug_trace_block(sent.block_number()).await.unwrap();
    let mut frames = Vec::new();
    for tx in geth.as_array().unwrap() {
        geth_creates(&tx["result"], &mut frames);
    }
    let kinds: Vec<&str> = frames.iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["CREATE", "CREATE2"]);
    assert_eq!(frames[1]["to"].as_str().unwrap(), children[1]);

    // A create inside an inner call that reverts: the create trace has no
    // error of its own, its parent call has one.
    let sent = chain
        .send(
            &factory,
            &encode_call(
                "createInFailedSubcall(bytes)",
                &[Arg::Bytes(initcode.clone())],
            ),
        )
        .await
        .unwrap();
    assert!(sent.succeeded());
    let traces = chain.trace_block(sent.block_number()).await.unwrap();
    let creates = parity_creates(&traces);
    assert_eq!(creates.len(), 1, "{traces:#}");
    assert!(creates[0].get("error").is_none(), "{traces:#}");
    assert!(creates[0]["result"]["address"].is_string(), "{traces:#}");
    let parent_address: Vec<u64> = creates[0]["traceAddress"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let parent = traces
        .as_array()
        .unwrap()
        .iter()
        .find(|t| {
            t["traceAddress"].as_array().unwrap().len() + 1 == parent_address.len()
                && t["traceAddress"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .zip(&parent_address)
                    .all(|(a, b)| a.as_u64() == Some(*b))
        })
        .unwrap();
    assert!(parent.get("error").is_some(), "{traces:#}");

    // A whole transaction that reverts after its create (explicit gas: the
    // node would refuse to estimate it).
    let reverted = chain
        .send_tx(Tx {
            to: Some(factory.clone()),
            data: encode_call("createThenRevert(bytes)", &[Arg::Bytes(initcode.clone())]),
            gas: Some(3_000_000),
            ..Tx::default()
        })
        .await
        .unwrap();
    assert_eq!(reverted.status(), 0);
    let traces = chain.trace_block(reverted.block_number()).await.unwrap();
    assert!(traces[0].get("error").is_some(), "{traces:#}");
    let creates = parity_creates(&traces);
    assert!(creates[0].get("error").is_none(), "{traces:#}");
    // send() refuses a transaction that reverts.
    let refused = chain
        .send(
            &factory,
            &encode_call("createThenRevert(bytes)", &[Arg::Bytes(initcode.clone())]),
        )
        .await;
    assert!(refused.is_err());

    // Self-destructed in its creating transaction: code gone, trace keeps it.
    let doomed = Artifact::load("SelfDestructToken").unwrap();
    let doomed_code = doomed.creation_code(&standard_args(Arg::uint(1)));
    let sent = chain
        .send(
            &factory,
            &encode_call("deployAndDestroy(bytes)", &[Arg::Bytes(doomed_code)]),
        )
        .await
        .unwrap();
    let address = &sent.logged_addresses(&factory)[0];
    assert!(chain.code(address).await.unwrap().is_empty());
    let traces = chain.trace_block(sent.block_number()).await.unwrap();
    let creates = parity_creates(&traces);
    assert_eq!(
        creates[0]["result"]["code"].as_str().unwrap(),
        to_hex(&doomed.deployed_bytecode)
    );
}

// ---------------------------------------------------------------------------
// Replay server

async fn post(url: &str, body: &Value) -> Value {
    reqwest::Client::new()
        .post(url)
        .json(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn call(id: u64, method: &str, params: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params })
}

#[tokio::test]
async fn replay_serves_recorded_eth_calls_and_counts_misses() {
    let replay = RpcReplay::start(fixture_dir(
        "test_export_tokens_job/token_with_alternative_return_type",
    ))
    .await
    .unwrap();
    let eos = "0x86fa049857e0209aa7d9e616f7eb3b3b78ecfdb0";
    let symbol = call(
        7,
        "eth_call",
        json!([{ "to": eos, "data": "0x95d89b41" }, "latest"]),
    );
    let answer = post(&replay.url(), &symbol).await;
    assert_eq!(answer["id"], 7);
    assert!(answer["result"].as_str().unwrap().starts_with("0x454f5300"));

    // A batch: recorded, missing (SYMBOL()), another block (not recorded).
    let batch = json!([
        call(1, "eth_chainId", json!([])),
        call(
            2,
            "eth_call",
            json!([{ "to": eos, "data": "0xf76f8d78" }, "latest"])
        ),
        call(
            3,
            "eth_call",
            json!([{ "to": eos, "data": "0x95d89b41" }, "0x10"])
        ),
    ]);
    let answers = post(&replay.url(), &batch).await;
    let answers = answers.as_array().unwrap();
    assert_eq!(answers.len(), 3);
    assert_eq!(answers[0]["result"], "0x1234");
    assert_eq!(answers[1]["id"], 2);
    assert_eq!(answers[1]["error"]["code"], -32000);
    let message = answers[1]["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("missing trie node"), "{message}");
    assert!(message.contains("web3_response.eth_call_data_0xf76f8d78_to_0x86fa"));
    assert_eq!(answers[2]["error"]["code"], -32000);

    assert_eq!(replay.missing_count(), 2);
    assert_eq!(
        replay.methods(),
        ["eth_call", "eth_chainId", "eth_call", "eth_call"]
    );
    assert_eq!(replay.requests()[0].answer, Answer::Recorded);

    // Tests can remove or add responses.
    assert!(replay.remove_response("eth_chainId", json!([])));
    let gone = post(&replay.url(), &call(9, "eth_chainId", json!([]))).await;
    assert_eq!(gone["error"]["code"], -32000);
}

#[tokio::test]
async fn replay_derives_logs_and_blocks_from_the_recording_only() {
    let replay = RpcReplay::start_with(
        fixture_dir("test_stream/blocks_17173049_17173050"),
        ReplayOptions::synthesize(17173050),
    )
    .await
    .unwrap();
    let number = post(&replay.url(), &call(1, "eth_blockNumber", json!([]))).await;
    assert_eq!(number["result"], "0x1060a3a");

    let logs = post(
        &replay.url(),
        &call(
            2,
            "eth_getLogs",
            json!([{ "fromBlock": "0x1060a39", "toBlock": "0x1060a3a", "topics": [TRANSFER_TOPIC] }]),
        ),
    )
    .await;
    let logs = logs["result"].as_array().unwrap();
    assert_eq!(logs.len(), 291);
    assert_eq!(logs[0]["blockNumber"], "0x1060a39");

    let all = post(
        &replay.url(),
        &call(
            3,
            "eth_getLogs",
            json!([{ "fromBlock": "0x1060a39", "toBlock": "0x1060a3a" }]),
        ),
    )
    .await;
    assert_eq!(all["result"].as_array().unwrap().len(), 681);

    // Beyond the recorded range: no invented answer.
    let beyond = post(
        &replay.url(),
        &call(
            4,
            "eth_getLogs",
            json!([{ "fromBlock": "0x1060a39", "toBlock": "0x1060a3b" }]),
        ),
    )
    .await;
    assert_eq!(beyond["error"]["code"], -32000);

    let block = post(
        &replay.url(),
        &call(5, "eth_getBlockByNumber", json!(["0x1060a39", false])),
    )
    .await;
    assert_eq!(
        block["result"]["timestamp"],
        format!("{:#x}", 1_683_029_999)
    );
    assert_eq!(
        block["result"]["transactions"].as_array().unwrap().len(),
        116
    );
    assert_eq!(
        block["result"]["hash"],
        "0xaa5ab9bb22d8020d438496a7edb4eff508b1c5128b0dc01fdecf57f96aac1bb3"
    );
    assert_eq!(replay.missing_count(), 1);

    // The filter recording covers Transfer-topic queries of its block only.
    let filtered = RpcReplay::start_with(
        fixture_dir("test_export_token_transfers_job/block_with_transfers"),
        ReplayOptions::synthesize(483920),
    )
    .await
    .unwrap();
    let transfers = post(
        &filtered.url(),
        &call(
            1,
            "eth_getLogs",
            json!([{ "fromBlock": "0x76250", "toBlock": "0x76250", "topics": [TRANSFER_TOPIC] }]),
        ),
    )
    .await;
    assert_eq!(transfers["result"].as_array().unwrap().len(), 2);
    let everything = post(
        &filtered.url(),
        &call(
            2,
            "eth_getLogs",
            json!([{ "fromBlock": "0x76250", "toBlock": "0x76250" }]),
        ),
    )
    .await;
    assert_eq!(everything["error"]["code"], -32000);
}

// ---------------------------------------------------------------------------
// Fault-injecting proxy

#[tokio::test]
async fn proxy_injects_faults_and_counts_them() {
    let (anvil, chain) = anvil_before_day().await;
    let proxy = RpcProxy::start(anvil.url()).await.unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let number = call(1, "eth_blockNumber", json!([]));
    let send = |body: Value| {
        let client = client.clone();
        let url = proxy.url();
        async move { client.post(url).json(&body).send().await }
    };

    proxy.fail_next(2, Fault::too_many_requests());
    for _ in 0..2 {
        let response = send(number.clone()).await.unwrap();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "1");
    }
    let ok: Value = send(number.clone()).await.unwrap().json().await.unwrap();
    assert_eq!(ok["result"], "0x0");
    assert_eq!(proxy.fault_count("http_429"), 2);
    assert_eq!(proxy.method_count("eth_blockNumber"), 3);

    proxy.fail_next(1, Fault::Status(503));
    assert_eq!(send(number.clone()).await.unwrap().status(), 503);

    proxy.fail_next(1, Fault::Drop);
    assert!(send(number.clone()).await.is_err());

    proxy.fail_next(1, Fault::Truncate);
    let truncated = send(number.clone()).await;
    assert!(match truncated {
        Err(_) => true,
        Ok(response) => response.bytes().await.is_err(),
    });

    proxy.fail_next(1, Fault::Delay(Duration::from_secs(2)));
    let slow = send(number.clone()).await;
    assert!(slow.unwrap_err().is_timeout());

    // A JSON-RPC error for the matching element of a batch only.
    proxy.fail_next_matching(1, Match::method("eth_chainId"), Fault::rate_limit_error());
    let batch = json!([number.clone(), call(2, "eth_chainId", json!([]))]);
    let answers: Value = send(batch).await.unwrap().json().await.unwrap();
    assert_eq!(answers[0]["result"], "0x0");
    assert_eq!(answers[1]["error"]["code"], -32005);
    assert_eq!(answers[1]["id"], 2);

    // eth_getLogs answers above the limit become the provider's error.
    let token = chain
        .deploy("StandardToken", &standard_args(Arg::uint(1_000)))
        .await
        .unwrap();
    let to: Vec<String> = (1..=3).map(recipient).collect();
    let to_refs: Vec<&str> = to.iter().map(String::as_str).collect();
    chain
        .send(
            &token,
            &encode_call(
                "batchTransfer(address[],uint256[])",
                &[Arg::addresses(&to_refs), Arg::uints(&[1, 1, 1])],
            ),
        )
        .await
        .unwrap();
    let via_proxy = Chain::connect(&proxy.url()).await.unwrap();
    proxy.limit_logs(3, LogLimitWording::QueryReturnedMore);
    let head = via_proxy.block_number().await.unwrap();
    let refused = via_proxy
        .logs(0, head, Some(TRANSFER_TOPIC))
        .await
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("query returned more than 3 results"),
        "{refused}"
    );
    assert_eq!(via_proxy.logs(head, head, None).await.unwrap().len(), 3);
    proxy.limit_logs(3, LogLimitWording::ResponseSizeExceeded);
    let refused = via_proxy.logs(0, head, None).await.unwrap_err();
    assert!(refused.to_string().contains("Log response size exceeded"));
    assert_eq!(proxy.fault_count("log_limit"), 2);

    // Down until told otherwise.
    proxy.stay_down(Fault::Status(503));
    for _ in 0..3 {
        assert_eq!(send(number.clone()).await.unwrap().status(), 503);
    }
    proxy.come_back();
    assert_eq!(send(number.clone()).await.unwrap().status(), 200);
    assert_eq!(proxy.pending_faults(), 0);
}
