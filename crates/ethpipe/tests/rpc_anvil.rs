//! `--source rpc` against a real node (anvil) running the test contracts:
//! days and their blocks, the finality gate and the reorg recheck,
//! transfers, token detection and metadata, each checked against what the
//! node itself reports.

mod common;

use chrono::NaiveDate;
use ethpipe_testkit::chain::{
    day_end, encode_call, from_hex, utc_timestamp, word_to_address, word_to_decimal,
};
use ethpipe_testkit::{
    Anvil, Arg, Chain, Ethpipe, FixtureTransfer, TestDatabase, Tx, TRANSFER_TOPIC,
};
use tempfile::TempDir;
use tokio_postgres::Client;

const DAY: &str = "2024-03-01";
const NEXT_DAY: &str = "2024-03-02";

fn day(text: &str) -> NaiveDate {
    text.parse().expect("test date")
}

/// A fresh anvil whose genesis is the afternoon before [`DAY`], a database,
/// and the binary pointed at both.
struct Node {
    anvil: Anvil,
    chain: Chain,
    database: TestDatabase,
    dir: TempDir,
}

impl Node {
    async fn start() -> Node {
        let genesis = utc_timestamp(day(DAY).pred_opt().expect("date"), 12, 0, 0);
        let anvil = Anvil::start_at(genesis).await.expect("anvil starts");
        let chain = anvil.chain().await.expect("chain");
        Node {
            anvil,
            chain,
            database: common::fresh_database().await,
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// The binary, taking the next day's first block as final as soon as it
    /// exists: the tests here build short chains, and test the finality gate
    /// itself with [`Node::ethpipe_by_finalized_tag`].
    fn ethpipe(&self) -> Ethpipe {
        self.ethpipe_by_finalized_tag()
            .env("ETHPIPE_RPC_CONFIRMATIONS", "0")
    }

    /// The binary with its default gate: the node's `finalized` block.
    fn ethpipe_by_finalized_tag(&self) -> Ethpipe {
        Ethpipe::new(env!("CARGO_BIN_EXE_ethpipe"))
            .cwd(self.dir.path())
            .env("ETHPIPE_DATABASE_URL", self.database.url.clone())
            .env("ETHPIPE_SOURCE", "rpc")
            .env("ETHPIPE_RPC_URL", self.anvil.url())
    }

    async fn run(&self, pipeline: &str, date: &str) {
        self.ethpipe()
            .run(&["run", pipeline, "--date", date])
            .await
            .assert_success();
    }

    async fn client(&self) -> Client {
        self.database.client().await.expect("database client")
    }

    /// Puts the next block at `date` `h:m:s` UTC.
    async fn at(&self, date: &str, h: u32, m: u32, s: u32) {
        self.chain
            .set_next_block_timestamp(utc_timestamp(day(date), h, m, s))
            .await
            .expect("set timestamp");
    }

    /// Mines a block after `date` so that the day is complete on the node.
    async fn close_day(&self, date: &str) {
        self.chain
            .mine(day_end(day(date)) + 60)
            .await
            .expect("mine a block after the day");
    }

    async fn deploy_standard(&self, symbol: &str, decimals: u128, supply: u128) -> String {
        self.chain
            .deploy(
                "StandardToken",
                &[
                    Arg::string(&format!("{symbol} token")),
                    Arg::string(symbol),
                    Arg::uint(decimals),
                    Arg::uint(supply),
                ],
            )
            .await
            .expect("deploy StandardToken")
    }

    async fn transfer(&self, token: &str, to: &str, value: u128) {
        let sent = self
            .chain
            .send(
                token,
                &encode_call(
                    "transfer(address,uint256)",
                    &[Arg::address(to), Arg::uint(value)],
                ),
            )
            .await
            .expect("transfer");
        assert!(sent.succeeded());
    }

    /// Queues a transfer for the next mined block (automine off).
    async fn submit_transfer(&self, token: &str, to: &str, value: u128) {
        let data = encode_call(
            "transfer(address,uint256)",
            &[Arg::address(to), Arg::uint(value)],
        );
        self.chain
            .submit(Tx {
                to: Some(token.to_string()),
                data,
                gas: Some(200_000),
                ..Tx::default()
            })
            .await
            .expect("submit");
    }

    /// Every standard Transfer log the node has, as rows, derived here from
    /// `eth_getLogs` independently of ethpipe's decoder.
    async fn expected_transfers(&self) -> Vec<FixtureTransfer> {
        let latest = self.chain.block_number().await.expect("block number");
        let logs = self
            .chain
            .logs(0, latest, Some(TRANSFER_TOPIC))
            .await
            .expect("logs");
        let mut rows = Vec::new();
        for log in logs {
            let topics: Vec<Vec<u8>> = log["topics"]
                .as_array()
                .expect("topics")
                .iter()
                .map(|t| from_hex(t.as_str().expect("topic")).expect("hex"))
                .collect();
            let data = from_hex(log["data"].as_str().expect("data")).expect("hex");
            let value = match (topics.len(), data.len()) {
                (3, 32) => word_to_decimal(&data),
                (4, 0) => word_to_decimal(&topics[3]),
                _ => continue,
            };
            let number = quantity(&log["blockNumber"]);
            let timestamp = self.chain.block_timestamp(number).await.expect("block ts");
            rows.push(FixtureTransfer {
                transaction_hash: text(&log["transactionHash"]),
                log_index: quantity(&log["logIndex"]) as i64,
                token_address: text(&log["address"]),
                from_address: Some(word_to_address(&topics[1])),
                to_address: Some(word_to_address(&topics[2])),
                value: Some(value),
                block_timestamp_micros: timestamp as i64 * 1_000_000,
                block_number: number as i64,
                block_hash: text(&log["blockHash"]),
            });
        }
        rows.sort();
        rows
    }
}

fn text(value: &serde_json::Value) -> String {
    value.as_str().expect("string").to_lowercase()
}

fn quantity(value: &serde_json::Value) -> u64 {
    ethpipe_testkit::chain::quantity(value).expect("quantity")
}

fn recipients(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("0x{:040x}", 0x1000 + i)).collect()
}

#[derive(Debug, PartialEq)]
struct TokenRow {
    address: String,
    symbol: Option<String>,
    name: Option<String>,
    decimals: Option<String>,
    total_supply: Option<String>,
    block_number: i64,
    found_in_transfers: bool,
}

async fn tokens(client: &Client) -> Vec<TokenRow> {
    client
        .query(
            "SELECT address, symbol, name, decimals::text, total_supply::text, block_number,
                    found_in_transfers
             FROM ethereum.tokens ORDER BY block_number, address",
            &[],
        )
        .await
        .expect("read tokens")
        .iter()
        .map(|r| TokenRow {
            address: r.get(0),
            symbol: r.get(1),
            name: r.get(2),
            decimals: r.get(3),
            total_supply: r.get(4),
            block_number: r.get(5),
            found_in_transfers: r.get(6),
        })
        .collect()
}

fn token<'a>(rows: &'a [TokenRow], address: &str) -> &'a TokenRow {
    rows.iter()
        .find(|r| r.address == address)
        .unwrap_or_else(|| panic!("no tokens row for {address} in {rows:#?}"))
}

#[tokio::test]
async fn transfers_of_each_day_land_in_their_day() {
    let node = Node::start().await;
    node.at(DAY, 8, 0, 0).await;
    let token = node.deploy_standard("ALP", 18, 10u128.pow(24)).await;
    // Many logs in one transaction.
    let to = recipients(40);
    let to_refs: Vec<&str> = to.iter().map(String::as_str).collect();
    let values: Vec<u128> = (1..=40).collect();
    node.at(DAY, 9, 0, 0).await;
    let batch = node
        .chain
        .send(
            &token,
            &encode_call(
                "batchTransfer(address[],uint256[])",
                &[Arg::addresses(&to_refs), Arg::uints(&values)],
            ),
        )
        .await
        .expect("batch transfer");
    assert_eq!(batch.logs().len(), 40);
    // Zero value, self-transfer, burn (to the zero address).
    node.at(DAY, 10, 0, 0).await;
    node.transfer(&token, &to[0], 0).await;
    let me = node.chain.sender().to_string();
    node.transfer(&token, &me, 5).await;
    node.chain
        .send(&token, &encode_call("burn(uint256)", &[Arg::uint(7)]))
        .await
        .expect("burn");
    // Blocks at exactly 23:59:59 and 00:00:00 with transfers in both.
    node.chain.set_automine(false).await.expect("automine off");
    for (i, recipient) in to.iter().take(3).enumerate() {
        node.submit_transfer(&token, recipient, 100 + i as u128)
            .await;
    }
    node.chain
        .mine(utc_timestamp(day(DAY), 23, 59, 59))
        .await
        .expect("mine 23:59:59");
    for recipient in to.iter().skip(3).take(2) {
        node.submit_transfer(&token, recipient, 1).await;
    }
    node.chain
        .mine(utc_timestamp(day(NEXT_DAY), 0, 0, 0))
        .await
        .expect("mine 00:00:00");
    node.chain.set_automine(true).await.expect("automine on");
    node.at(NEXT_DAY, 12, 0, 0).await;
    node.transfer(&token, &to[9], 9).await;
    // ERC-721: the token id is topic 3.
    let nft = node
        .chain
        .deploy("Erc721Token", &[Arg::string("Kitties"), Arg::string("CK")])
        .await
        .expect("deploy erc721");
    node.chain
        .send(
            &nft,
            &encode_call(
                "mint(address,uint256)",
                &[Arg::address(&me), Arg::uint(1 << 100)],
            ),
        )
        .await
        .expect("mint nft");
    node.chain
        .send(
            &nft,
            &encode_call(
                "transferFrom(address,address,uint256)",
                &[Arg::address(&me), Arg::address(&to[1]), Arg::uint(1 << 100)],
            ),
        )
        .await
        .expect("transfer nft");
    node.close_day(NEXT_DAY).await;

    node.run("token_transfers", DAY).await;
    node.run("token_transfers", NEXT_DAY).await;

    let expected = node.expected_transfers().await;
    assert_eq!(expected.len(), 1 + 40 + 3 + 3 + 2 + 1 + 2);
    let client = node.client().await;
    let loaded = common::pg_transfers(&client, "").await;
    assert_eq!(loaded, expected, "every transfer exactly once");
    for (date, count) in [(DAY, 1 + 40 + 3 + 3), (NEXT_DAY, 2 + 1 + 2)] {
        let on_day = common::on_day(&loaded, date);
        assert_eq!(on_day.len(), count, "transfers on {date}");
        assert_eq!(on_day, common::on_day(&expected, date));
    }
    let midnight = utc_timestamp(day(NEXT_DAY), 0, 0, 0) as i64 * 1_000_000;
    assert_eq!(
        loaded
            .iter()
            .filter(|r| r.block_timestamp_micros == midnight - 1_000_000)
            .count(),
        3,
        "the 23:59:59 block belongs to {DAY}"
    );

    // A re-run changes nothing.
    let before = common::pg_checksum(
        &client,
        "ethereum.token_transfers",
        "transaction_hash, log_index",
    )
    .await;
    node.run("token_transfers", DAY).await;
    let after = common::pg_checksum(
        &client,
        "ethereum.token_transfers",
        "transaction_hash, log_index",
    )
    .await;
    assert_eq!(before, after);

    // verify counts the node's Transfer logs for each day.
    let verify = node
        .ethpipe()
        .run(&["verify", "--from", DAY, "--to", NEXT_DAY])
        .await;
    assert_eq!(verify.code, 0, "{}", verify.all());
    client
        .execute(
            "DELETE FROM ethereum.token_transfers WHERE block_timestamp >= $1::date::timestamptz
               AND block_timestamp < $1::date::timestamptz + interval '1 day' AND log_index = 0
               AND value = 0",
            &[&day(DAY)],
        )
        .await
        .expect("tamper");
    let verify = node
        .ethpipe()
        .run(&["verify", "--from", DAY, "--to", NEXT_DAY])
        .await;
    assert_eq!(verify.code, 1, "a missing row is a gap: {}", verify.all());
    assert!(verify.stdout.contains(DAY), "{}", verify.stdout);
}

#[tokio::test]
async fn a_day_without_blocks_loads_zero_rows() {
    let node = Node::start().await;
    node.at(DAY, 8, 0, 0).await;
    node.deploy_standard("ALP", 18, 1000).await;
    // Nothing on NEXT_DAY; the next block is two days later.
    node.chain
        .mine(utc_timestamp(day("2024-03-03"), 6, 0, 0))
        .await
        .expect("mine");
    let out = node
        .ethpipe()
        .run(&["run", "token_transfers", "--date", NEXT_DAY])
        .await;
    out.assert_success();
    assert!(out.stdout.contains(": 0 rows committed"), "{}", out.stdout);
    let client = node.client().await;
    let runs = common::pg_runs(&client).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].0, "success");
    assert_eq!(runs[0].1, Some(0));
}

#[tokio::test]
async fn an_unfinished_day_is_refused() {
    let node = Node::start().await;
    node.at(DAY, 8, 0, 0).await;
    let token = node.deploy_standard("ALP", 18, 1000).await;
    node.at(DAY, 23, 59, 58).await;
    node.transfer(&token, &recipients(1)[0], 1).await;
    let out = node
        .ethpipe()
        .run(&["run", "token_transfers", "--date", DAY])
        .await;
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stderr.contains("not complete yet"), "{}", out.stderr);
    assert_eq!(
        out.stderr.trim().lines().count(),
        1,
        "one line: {}",
        out.stderr
    );
    let client = node.client().await;
    assert!(common::pg_transfers(&client, "").await.is_empty());

    // A block at 23:59:59 completes the day's timestamps, but its end is
    // fixed only by a block of the next day (docs/rpc-semantics.md, 35a).
    node.chain
        .mine(utc_timestamp(day(DAY), 23, 59, 59))
        .await
        .expect("mine");
    let out = node
        .ethpipe()
        .run(&["run", "token_transfers", "--date", DAY])
        .await;
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stderr.contains("not final yet"), "{}", out.stderr);
    node.chain
        .mine(utc_timestamp(day(NEXT_DAY), 0, 0, 0))
        .await
        .expect("mine");
    node.run("token_transfers", DAY).await;
    assert_eq!(common::pg_transfers(&client, "").await.len(), 2);
}

#[tokio::test]
async fn tokens_come_from_create_traces() {
    let node = Node::start().await;
    node.at(DAY, 8, 0, 0).await;
    let direct = node.deploy_standard("DIR", 18, 1000).await;
    let factory = node
        .chain
        .deploy("TokenFactory", &[])
        .await
        .expect("deploy factory");
    let initcode = ethpipe_testkit::Artifact::load("StandardToken")
        .expect("artifact")
        .creation_code(&[
            Arg::string("Made"),
            Arg::string("MADE"),
            Arg::uint(6),
            Arg::uint(0),
        ]);
    let both = node
        .chain
        .send(
            &factory,
            &encode_call(
                "deployBoth(bytes,bytes32)",
                &[Arg::bytes(&initcode), Arg::bytes32(&[7u8; 32])],
            ),
        )
        .await
        .expect("deployBoth");
    let made = both.logged_addresses(&factory);
    assert_eq!(made.len(), 2, "CREATE and CREATE2 children");
    // A creation inside a call that reverts leaves no contract.
    let failed = node
        .chain
        .send(
            &factory,
            &encode_call("createInFailedSubcall(bytes)", &[Arg::bytes(&initcode)]),
        )
        .await
        .expect("createInFailedSubcall");
    assert!(failed.succeeded(), "the outer call succeeds");
    let modern = node
        .chain
        .deploy(
            "ModernToken",
            &[
                Arg::string("Modern"),
                Arg::string("MOD"),
                Arg::uint(18),
                Arg::uint(0),
            ],
        )
        .await
        .expect("deploy ModernToken");
    node.close_day(DAY).await;

    node.run("tokens", DAY).await;
    let client = node.client().await;
    let rows = tokens(&client).await;
    let mut created: Vec<&str> = rows
        .iter()
        .filter(|r| !r.found_in_transfers)
        .map(|r| r.address.as_str())
        .collect();
    created.sort();
    let mut expected = vec![direct.as_str(), made[0].as_str(), made[1].as_str()];
    expected.sort();
    assert_eq!(
        created, expected,
        "direct, CREATE and CREATE2 tokens; not the reverted one"
    );
    assert!(
        rows.iter().all(|r| r.address != modern),
        "modern solc's dispatcher hides its selectors from ethereum-etl's detection"
    );
    assert_eq!(token(&rows, &made[1]).symbol.as_deref(), Some("MADE"));
    assert_eq!(token(&rows, &made[1]).decimals.as_deref(), Some("6"));
}

#[tokio::test]
async fn metadata_is_read_at_the_end_of_the_day() {
    let node = Node::start().await;
    node.at(DAY, 8, 0, 0).await;
    let sup = node.deploy_standard("SUP", 18, 1000).await;
    node.at(NEXT_DAY, 8, 0, 0).await;
    let me = node.chain.sender().to_string();
    node.chain
        .send(
            &sup,
            &encode_call(
                "mint(address,uint256)",
                &[Arg::address(&me), Arg::uint(500)],
            ),
        )
        .await
        .expect("mint");
    node.close_day(NEXT_DAY).await;
    node.run("tokens", DAY).await;
    let client = node.client().await;
    let rows = tokens(&client).await;
    assert_eq!(token(&rows, &sup).total_supply.as_deref(), Some("1000"));
    // A re-run later gives the same answer.
    node.run("tokens", DAY).await;
    assert_eq!(tokens(&client).await, rows);
}

#[tokio::test]
async fn token_metadata_follows_ethereum_etl_on_a_real_node() {
    let node = Node::start().await;
    node.at(DAY, 8, 0, 0).await;
    let zero_decimals = node.deploy_standard("ZERO", 0, 5).await;
    let six_decimals = node.deploy_standard("SIX", 6, 5).await;
    let max_supply = node
        .chain
        .deploy(
            "StandardToken",
            &[
                Arg::string("Max"),
                Arg::string("MAX"),
                Arg::uint(18),
                Arg::max_uint(),
            ],
        )
        .await
        .expect("deploy max");
    let mut maker_name = [0u8; 32];
    maker_name[..5].copy_from_slice(b"Maker");
    let mut maker_symbol = [0u8; 32];
    maker_symbol[..3].copy_from_slice(b"MKR");
    let bytes32 = node
        .chain
        .deploy(
            "Bytes32Token",
            &[
                Arg::bytes32(&maker_name),
                Arg::bytes32(&maker_symbol),
                Arg::uint(18),
                Arg::uint(1),
            ],
        )
        .await
        .expect("deploy bytes32");
    let bare = node
        .chain
        .deploy("NoMetadataToken", &[Arg::uint(1)])
        .await
        .expect("deploy bare");
    let nul = node
        .chain
        .deploy("NulNameToken", &[])
        .await
        .expect("deploy nul");
    let bad_utf8 = node
        .chain
        .deploy("BadUtf8SymbolToken", &[])
        .await
        .expect("deploy bad utf8");
    let nft = node
        .chain
        .deploy("Erc721Token", &[Arg::string("Kitties"), Arg::string("CK")])
        .await
        .expect("deploy erc721");
    node.close_day(DAY).await;
    node.run("tokens", DAY).await;
    let client = node.client().await;
    let rows = tokens(&client).await;
    let meta = |address: &str| {
        let r = token(&rows, address);
        (
            r.symbol.clone(),
            r.name.clone(),
            r.decimals.clone(),
            r.total_supply.clone(),
        )
    };
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        meta(&zero_decimals),
        (s("ZERO"), s("ZERO token"), s("0"), s("5"))
    );
    assert_eq!(
        meta(&six_decimals),
        (s("SIX"), s("SIX token"), s("6"), s("5"))
    );
    assert_eq!(
        meta(&max_supply).3,
        s(ethpipe_testkit::fixtures::UINT256_MAX)
    );
    assert_eq!(meta(&bytes32), (s("MKR"), s("Maker"), s("18"), s("1")));
    assert_eq!(meta(&bare), (None, None, None, s("1")));
    // Every NUL is removed from strings (rule 28).
    assert_eq!(meta(&nul).1, s("ETH"));
    // A string that is not UTF-8 falls to the bytes32 reading of the offset
    // word: 31 NULs and a space (rule 27).
    assert_eq!(meta(&bad_utf8).0, s(" "));
    assert_eq!(meta(&bad_utf8).1, s("ok"));
    assert_eq!(meta(&nft).0, s("CK"));
    assert!(rows
        .iter()
        .all(|r| !r.found_in_transfers || r.address != nft));
}

#[tokio::test]
async fn tokens_seen_in_transfers_are_added_and_marked() {
    let node = Node::start().await;
    node.at(DAY, 8, 0, 0).await;
    let old = node.deploy_standard("OLD", 18, 1000).await;
    let modern = node
        .chain
        .deploy(
            "ModernToken",
            &[
                Arg::string("Modern"),
                Arg::string("MOD"),
                Arg::uint(18),
                Arg::uint(50),
            ],
        )
        .await
        .expect("deploy ModernToken");
    node.at(NEXT_DAY, 9, 0, 0).await;
    node.transfer(&old, &recipients(1)[0], 1).await;
    node.transfer(&modern, &recipients(1)[0], 1).await;
    node.close_day(NEXT_DAY).await;

    // The later day first: both are only seen in transfers there.
    node.run("tokens", NEXT_DAY).await;
    let client = node.client().await;
    let rows = tokens(&client).await;
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert!(rows.iter().all(|r| r.found_in_transfers));
    assert_eq!(token(&rows, &modern).symbol.as_deref(), Some("MOD"));

    // Loading the creation day: OLD's creation row replaces its sighting;
    // the modern token (not detectable) moves to the day of its first
    // transfer (its constructor's mint).
    node.run("tokens", DAY).await;
    let rows = tokens(&client).await;
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert!(!token(&rows, &old).found_in_transfers);
    let moved = token(&rows, &modern);
    assert!(moved.found_in_transfers);
    let first_seen = node
        .chain
        .logs(0, 100, Some(TRANSFER_TOPIC))
        .await
        .expect("logs")
        .iter()
        .filter(|l| text(&l["address"]) == modern)
        .map(|l| quantity(&l["blockNumber"]))
        .min()
        .expect("a transfer of the modern token");
    assert_eq!(moved.block_number, first_seen as i64);

    // Re-running the later day adds nothing back.
    node.run("tokens", NEXT_DAY).await;
    assert_eq!(tokens(&client).await, rows);
}

#[tokio::test]
async fn transfer_shapes_follow_the_four_part_rule() {
    let node = Node::start().await;
    node.at(DAY, 8, 0, 0).await;
    let shapes = node
        .chain
        .deploy("TransferShapes", &[])
        .await
        .expect("deploy TransferShapes");
    let from = "0x00000000000000000000000000000000000000a1";
    let to = "0x00000000000000000000000000000000000000b2";
    let sent = node
        .chain
        .send(
            &shapes,
            &encode_call(
                "emitAllShapes(address,address,uint256)",
                &[Arg::address(from), Arg::address(to), Arg::uint(77)],
            ),
        )
        .await
        .expect("emitAllShapes");
    assert_eq!(sent.logs().len(), 10);
    node.close_day(DAY).await;
    node.run("token_transfers", DAY).await;
    let client = node.client().await;
    let loaded = common::pg_transfers(&client, "").await;
    // Shapes 0-3 and 9 of TransferShapes.emitAllShapes are rows, all with
    // from, to and value in parts 1, 2, 3; the 20-byte word of shape 9 is
    // read as the number it spells (77).
    type Parts<'a> = (i64, Option<&'a str>, Option<&'a str>, Option<&'a str>);
    let by_index: Vec<Parts> = loaded
        .iter()
        .map(|r| {
            (
                r.log_index,
                r.from_address.as_deref(),
                r.to_address.as_deref(),
                r.value.as_deref(),
            )
        })
        .collect();
    let row = |i| (i, Some(from), Some(to), Some("77"));
    assert_eq!(by_index, vec![row(0), row(1), row(2), row(3), row(9)]);
    let skipped: i64 = client
        .query_one("SELECT skipped_rows FROM ethpipe.runs", &[])
        .await
        .expect("run")
        .get(0);
    assert_eq!(skipped, 5, "shapes 4-8 are skipped and counted");
    let warnings: i64 = client
        .query_one(
            "SELECT count(*) FROM ethpipe.run_logs WHERE message LIKE '%not equal to 4%'",
            &[],
        )
        .await
        .expect("logs")
        .get(0);
    assert_eq!(warnings, skipped);
    for row in &loaded {
        assert_eq!(row.token_address, shapes);
    }
}

/// A node without `trace_block` (geth) is asked with the call tracer, and one
/// with neither gets receipts (rules 34 and 37); a token destroyed in its
/// creation transaction is still found from its trace (rule 18).
#[tokio::test]
async fn contracts_are_found_with_whatever_the_node_offers() {
    use ethpipe_testkit::{Fault, Match, RpcProxy};

    let node = Node::start().await;
    node.at(DAY, 8, 0, 0).await;
    let direct = node.deploy_standard("DIR", 18, 1000).await;
    let factory = node
        .chain
        .deploy("TokenFactory", &[])
        .await
        .expect("deploy factory");
    let initcode = |symbol: &str| {
        ethpipe_testkit::Artifact::load("StandardToken")
            .expect("artifact")
            .creation_code(&[
                Arg::string("Made"),
                Arg::string(symbol),
                Arg::uint(6),
                Arg::uint(100),
            ])
    };
    let both = node
        .chain
        .send(
            &factory,
            &encode_call(
                "deployBoth(bytes,bytes32)",
                &[Arg::bytes(&initcode("MADE")), Arg::bytes32(&[9u8; 32])],
            ),
        )
        .await
        .expect("deployBoth");
    let made = both.logged_addresses(&factory);
    let destroyed_code = ethpipe_testkit::Artifact::load("SelfDestructToken")
        .expect("artifact")
        .creation_code(&[
            Arg::string("Gone"),
            Arg::string("GONE"),
            Arg::uint(18),
            Arg::uint(0),
        ]);
    let gone = node
        .chain
        .send(
            &factory,
            &encode_call("deployAndDestroy(bytes)", &[Arg::bytes(&destroyed_code)]),
        )
        .await
        .expect("deployAndDestroy")
        .logged_addresses(&factory);
    assert_eq!(gone.len(), 1);
    node.close_day(DAY).await;

    let mut all = vec![
        direct.clone(),
        made[0].clone(),
        made[1].clone(),
        gone[0].clone(),
    ];
    all.sort();
    let created = |rows: &[TokenRow]| {
        let mut addresses: Vec<String> = rows
            .iter()
            .filter(|r| !r.found_in_transfers)
            .map(|r| r.address.clone())
            .collect();
        addresses.sort();
        addresses
    };
    let not_found = || Fault::RpcError {
        code: -32601,
        message: "the method does not exist/is not available".into(),
    };

    // Parity traces.
    node.run("tokens", DAY).await;
    let client = node.client().await;
    let traced = tokens(&client).await;
    assert_eq!(created(&traced), all);
    // Its code is gone by the end of the day: every metadata call fails.
    let destroyed = token(&traced, &gone[0]);
    assert_eq!(
        (
            &destroyed.symbol,
            &destroyed.decimals,
            &destroyed.total_supply
        ),
        (&None, &None, &None)
    );

    // geth's call tracer gives the same contracts.
    let proxy = RpcProxy::start(node.anvil.url()).await.expect("proxy");
    proxy.fail_always(Match::method("trace_block"), not_found());
    let geth = node.ethpipe().env("ETHPIPE_RPC_URL", proxy.url());
    let second = TestDatabase::create().await.expect("database");
    geth.env("ETHPIPE_DATABASE_URL", second.url.clone())
        .run(&["run", "tokens", "--date", DAY])
        .await
        .assert_success();
    assert!(proxy.method_count("debug_traceBlockByNumber") > 0);
    let second_client = second.client().await.expect("client");
    assert_eq!(tokens(&second_client).await, traced);

    // Receipts only: direct deployments are created rows; factory tokens with
    // a mint are found in transfers; the run log says why.
    proxy.fail_always(Match::method("debug_traceBlockByNumber"), not_found());
    let third = TestDatabase::create().await.expect("database");
    node.ethpipe()
        .env("ETHPIPE_RPC_URL", proxy.url())
        .env("ETHPIPE_DATABASE_URL", third.url.clone())
        .run(&["run", "tokens", "--date", DAY])
        .await
        .assert_success();
    let third_client = third.client().await.expect("client");
    let from_receipts = tokens(&third_client).await;
    assert_eq!(created(&from_receipts), vec![direct.clone()]);
    for address in &made {
        assert!(token(&from_receipts, address).found_in_transfers);
    }
    let warned: i64 = third_client
        .query_one(
            "SELECT count(*) FROM ethpipe.run_logs WHERE message LIKE '%contractAddress%'",
            &[],
        )
        .await
        .expect("logs")
        .get(0);
    assert_eq!(warned, 1);
}

#[tokio::test]
async fn a_token_filter_is_the_address_list_of_eth_get_logs() {
    let node = Node::start().await;
    node.at(DAY, 8, 0, 0).await;
    let alpha = node
        .deploy_standard("ALP", 18, 10u128.pow(24))
        .await
        .to_lowercase();
    let beta = node
        .deploy_standard("BET", 6, 10u128.pow(12))
        .await
        .to_lowercase();
    let gamma = node
        .deploy_standard("GAM", 0, 1_000_000)
        .await
        .to_lowercase();
    let to = recipients(4);
    for (hour, token) in [(9, &alpha), (10, &beta), (11, &gamma), (12, &alpha)] {
        node.at(DAY, hour, 0, 0).await;
        for (i, recipient) in to.iter().enumerate() {
            node.transfer(token, recipient, 10 + i as u128).await;
        }
    }
    node.close_day(DAY).await;
    node.run("token_transfers", DAY).await;
    let client = node.client().await;
    let everything = common::pg_transfers(&client, "").await;
    let of = |tokens: &[&str]| -> Vec<FixtureTransfer> {
        everything
            .iter()
            .filter(|t| tokens.contains(&t.token_address.as_str()))
            .cloned()
            .collect()
    };
    let want = of(&[&alpha, &gamma]);
    assert!(!want.is_empty() && want.len() < everything.len());
    assert_eq!(everything, node.expected_transfers().await);

    // Filtered, through a proxy that records what the node is asked, with
    // one address per request so a two-token filter takes two requests.
    let proxy = ethpipe_testkit::RpcProxy::start(node.anvil.url())
        .await
        .expect("proxy");
    let filtered = common::fresh_database().await;
    let filter = format!("{gamma},{alpha}");
    let run = |max_addresses: &'static str| {
        Ethpipe::new(env!("CARGO_BIN_EXE_ethpipe"))
            .cwd(node.dir.path())
            .env("ETHPIPE_DATABASE_URL", filtered.url.clone())
            .env("ETHPIPE_SOURCE", "rpc")
            .env("ETHPIPE_RPC_URL", proxy.url())
            .env("ETHPIPE_RPC_MAX_ADDRESSES", max_addresses)
            .env("ETHPIPE_RPC_CONFIRMATIONS", "0")
    };
    run("1000")
        .run(&["run", "token_transfers", "--date", DAY, "--tokens", &filter])
        .await
        .assert_success();
    let filtered_client = filtered.client().await.expect("client");
    assert_eq!(common::pg_transfers(&filtered_client, "").await, want);
    let mut sorted_pair = [alpha.clone(), gamma.clone()];
    sorted_pair.sort();
    let asked = proxy.params_of("eth_getLogs");
    assert!(!asked.is_empty());
    for params in &asked {
        assert_eq!(
            params[0]["address"],
            serde_json::json!(sorted_pair),
            "{params}"
        );
    }

    proxy.reset_counts();
    run("1")
        .run(&["run", "token_transfers", "--date", DAY, "--tokens", &filter])
        .await
        .assert_success();
    assert_eq!(common::pg_transfers(&filtered_client, "").await, want);
    let asked: Vec<serde_json::Value> = proxy
        .params_of("eth_getLogs")
        .iter()
        .map(|params| params[0]["address"].clone())
        .collect();
    for address in &sorted_pair {
        assert!(asked.contains(&serde_json::json!([address])), "{asked:?}");
    }
    assert!(asked.iter().all(|a| a.as_array().map(Vec::len) == Some(1)));

    // Tokens from the node: only the filter's contracts are described.
    run("1000")
        .run(&["run", "tokens", "--date", DAY, "--tokens", &alpha])
        .await
        .assert_success();
    let described = tokens(&filtered_client).await;
    assert_eq!(
        described
            .iter()
            .map(|t| t.address.as_str())
            .collect::<Vec<_>>(),
        [alpha.as_str()]
    );
    // verify of the filtered day counts the node's logs of those tokens.
    let out = run("1")
        .run(&["verify", "--from", DAY, "--to", DAY, "--tokens", &filter])
        .await;
    assert_eq!(out.code, 0, "{}", out.all());
}

/// The gate a day's latest run passed, from the ledger.
async fn gate(client: &Client) -> (Option<String>, Option<String>) {
    let row = client
        .query_one(
            "SELECT gate, gate_mark FROM ethpipe.runs ORDER BY id DESC LIMIT 1",
            &[],
        )
        .await
        .expect("latest run");
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn a_day_loads_only_once_the_first_block_of_the_next_day_is_final() {
    let node = Node::start().await;
    node.at(DAY, 8, 0, 0).await;
    let token = node.deploy_standard("FIN", 18, 1000).await;
    node.at(DAY, 12, 0, 0).await;
    node.transfer(&token, &recipients(1)[0], 5).await;
    node.close_day(DAY).await;

    // The day is over on the node, but anvil's finalized block (64 below
    // latest) is still the genesis block.
    let by_tag = node.ethpipe_by_finalized_tag();
    let out = by_tag.run(&["run", "token_transfers", "--date", DAY]).await;
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stderr.contains("not final yet"), "{}", out.stderr);
    // Five confirmations are not there either.
    let out = node
        .ethpipe()
        .env("ETHPIPE_RPC_CONFIRMATIONS", "5")
        .run(&["run", "token_transfers", "--date", DAY])
        .await;
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stderr.contains("not final yet"), "{}", out.stderr);
    let client = node.client().await;
    let runs = common::pg_runs(&client).await;
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|r| r.0 == "failed"), "{runs:?}");
    assert!(common::pg_transfers(&client, "").await.is_empty());

    // 64 more blocks, a minute apart: the next day's first block is final.
    node.chain
        .request("anvil_mine", serde_json::json!(["0x40", "0x3c"]))
        .await
        .expect("anvil_mine");
    by_tag
        .run(&["run", "token_transfers", "--date", DAY])
        .await
        .assert_success();
    let expected = common::on_day(&node.expected_transfers().await, DAY);
    assert_eq!(expected.len(), 2, "the mint and the transfer");
    assert_eq!(
        common::sorted(&common::pg_transfers(&client, "").await),
        expected
    );
    let (name, mark) = gate(&client).await;
    assert_eq!(name.as_deref(), Some("finalized"));
    let finalized = node.chain.block_number().await.expect("latest") - 64;
    assert_eq!(mark, Some(format!("finalized block {finalized}")));
}

#[tokio::test]
async fn a_reorg_between_extraction_and_commit_fails_the_run_and_the_retry_loads_the_canonical_rows(
) {
    use ethpipe_testkit::{Match, RpcProxy};
    let node = Node::start().await;
    node.at(DAY, 8, 0, 0).await;
    let token = node.deploy_standard("ORG", 18, 1000).await;
    let to = recipients(2);
    node.at(DAY, 12, 0, 0).await;
    node.transfer(&token, &to[0], 5).await;
    let before_reorg = node
        .chain
        .request("evm_snapshot", serde_json::json!([]))
        .await
        .expect("snapshot");
    node.at(DAY, 23, 0, 0).await;
    node.transfer(&token, &to[1], 7).await;
    node.close_day(DAY).await;

    let proxy = RpcProxy::start(node.anvil.url()).await.expect("proxy");
    let through_proxy = node.ethpipe().env("ETHPIPE_RPC_URL", proxy.url());
    let args = ["run", "token_transfers", "--date", DAY];
    through_proxy.run(&args).await.assert_success();
    let client = node.client().await;
    let orphaned = common::sorted(&common::pg_transfers(&client, "").await);
    assert_eq!(
        orphaned,
        common::on_day(&node.expected_transfers().await, DAY)
    );

    // The same run again, held at its last header request (the recheck, a
    // run's last eth_getBlockByNumber: its headers are its own, so it asks
    // the same questions as the first run did).
    let header_requests = proxy
        .requests()
        .iter()
        .filter(|body| body.to_string().contains("eth_getBlockByNumber"))
        .count() as u64;
    proxy.hold_after(header_requests - 1, Match::method("eth_getBlockByNumber"));
    let held = tokio::spawn({
        let through_proxy = through_proxy.clone();
        async move { through_proxy.run(&args).await }
    });
    proxy
        .wait_held(std::time::Duration::from_secs(60))
        .await
        .expect("the recheck is held");
    // Meanwhile the day's last block and the next day's first are replaced.
    node.chain
        .request("evm_revert", serde_json::json!([before_reorg]))
        .await
        .expect("revert");
    node.at(DAY, 23, 0, 0).await;
    node.transfer(&token, &to[1], 9).await;
    node.close_day(DAY).await;
    proxy.release();
    let out = held.await.expect("the run");
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stderr.contains("changed: reorg"), "{}", out.stderr);
    // Nothing of it committed: the orphaned rows are still the day's rows.
    assert_eq!(
        common::sorted(&common::pg_transfers(&client, "").await),
        orphaned
    );

    // The retry reads the canonical chain.
    through_proxy.run(&args).await.assert_success();
    let canonical = common::on_day(&node.expected_transfers().await, DAY);
    assert_ne!(canonical, orphaned);
    assert_eq!(
        common::sorted(&common::pg_transfers(&client, "").await),
        canonical
    );
    let statuses: Vec<String> = common::pg_runs(&client)
        .await
        .into_iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(statuses, ["success", "failed", "success"]);
}
