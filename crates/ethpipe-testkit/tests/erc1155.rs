//! The test support for `erc1155_transfers`: the `Erc1155Shapes` contract
//! emits what the scenario says, the testkit's independent computation turns
//! it into the right rows and skipped logs, and the BigQuery-compatible
//! server serves the same logs as `crypto_ethereum.logs` in BigQuery's wire
//! format, filtered by day and topic.

use std::collections::HashSet;

use chrono::NaiveDate;
use ethpipe_testkit::chain::{day_start, from_hex, quantity, Chain};
use ethpipe_testkit::erc1155::scenario::{ALICE, BOB, CAROL, MARKET, ZERO};
use ethpipe_testkit::erc1155::{
    expected_for_transactions, expected_from_logs, SkipReason, TRANSFER_BATCH_TOPIC,
    TRANSFER_SINGLE_TOPIC,
};
use ethpipe_testkit::fixtures::UINT256_MAX;
use ethpipe_testkit::{
    Anvil, Erc1155Row, Erc1155Scenario, Expected, FakeBigQuery, FixtureLog, TRANSFER_TOPIC,
};
use serde_json::{json, Value};

type S = Erc1155Scenario;

fn first_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 3, 1).expect("date")
}

async fn scenario() -> (Anvil, Chain, Erc1155Scenario) {
    Erc1155Scenario::start(first_day())
        .await
        .expect("the scenario runs on anvil (run `make tools` first)")
}

fn logs(scenario: &Erc1155Scenario, label: &str) -> Vec<Value> {
    scenario
        .tx(label)
        .unwrap_or_else(|| panic!("no transaction {label}"))
        .logs()
        .to_vec()
}

fn topic0s(logs: &[Value]) -> Vec<&str> {
    logs.iter()
        .map(|l| l["topics"][0].as_str().unwrap_or_default())
        .collect()
}

/// (number of topics, bytes of data) of each log.
fn shapes(logs: &[Value]) -> Vec<(usize, usize)> {
    logs.iter()
        .map(|l| {
            let topics = l["topics"].as_array().map_or(0, Vec::len);
            let data = from_hex(l["data"].as_str().unwrap_or_default()).unwrap();
            (topics, data.len())
        })
        .collect()
}

fn rows_of<'a>(
    expected: &'a Expected,
    scenario: &Erc1155Scenario,
    label: &str,
) -> Vec<&'a Erc1155Row> {
    let hash = &scenario.tx(label).expect("labelled transaction").tx_hash;
    expected
        .rows
        .iter()
        .filter(|r| &r.transaction_hash == hash)
        .collect()
}

#[tokio::test]
async fn the_contract_emits_the_scenario_on_two_days() {
    let (_anvil, chain, scenario) = scenario().await;
    assert_eq!(scenario.transactions.len(), 15);

    // Blocks on both sides of both midnights.
    let d1 = day_start(first_day());
    for (label, second) in [
        (S::MINT_SINGLE, 0),
        (S::SINGLE_AT_DAY_END, 86_399),
        (S::BURN_SINGLE_AT_DAY_START, 86_400),
        (S::ONE_ID_BATCH_AT_DAY_END, 2 * 86_400 - 1),
        (S::SINGLE_AFTER_THE_DAYS, 2 * 86_400),
    ] {
        let block = scenario.tx(label).expect("labelled").block_number();
        let timestamp = chain.block_timestamp(block).await.expect("timestamp");
        assert_eq!(timestamp, d1 + second, "{label}");
    }
    assert_eq!(
        scenario.tx(S::SINGLE_AT_DAY_END).unwrap().block_number(),
        scenario
            .tx(S::BURN_BATCH_AT_DAY_END)
            .unwrap()
            .block_number(),
        "two transactions share the 23:59:59 block"
    );

    let single = vec![TRANSFER_SINGLE_TOPIC];
    assert_eq!(topic0s(&logs(&scenario, S::MINT_SINGLE)), single);
    assert_eq!(shapes(&logs(&scenario, S::MINT_SINGLE)), vec![(4, 64)]);
    // Two offsets, then 50 ids and 50 values with their lengths.
    assert_eq!(
        shapes(&logs(&scenario, S::MINT_BATCH_OF_50)),
        vec![(4, 64 + 2 * 32 * 51)]
    );
    let malformed = logs(&scenario, S::MALFORMED_SINGLES);
    assert_eq!(topic0s(&malformed), vec![TRANSFER_SINGLE_TOPIC; 4]);
    assert_eq!(shapes(&malformed), vec![(3, 96), (2, 128), (4, 32), (4, 0)]);
    let malformed = logs(&scenario, S::MALFORMED_BATCHES);
    assert_eq!(topic0s(&malformed), vec![TRANSFER_BATCH_TOPIC; 4]);
    assert_eq!(
        shapes(&malformed),
        vec![(4, 224), (4, 224), (4, 96), (3, 192)]
    );
    let mixed = logs(&scenario, S::ERC20_AND_SINGLE);
    assert_eq!(
        topic0s(&mixed),
        vec![TRANSFER_TOPIC, TRANSFER_SINGLE_TOPIC, TRANSFER_TOPIC]
    );
    let emitter = |label: &str| {
        logs(&scenario, label)[0]["address"]
            .as_str()
            .unwrap()
            .to_lowercase()
    };
    assert_eq!(emitter(S::MINT_SINGLE), scenario.contracts[0]);
    assert_eq!(emitter(S::ERC20_AND_SINGLE), scenario.contracts[1]);
    assert_ne!(scenario.contracts[0], scenario.contracts[1]);
}

#[tokio::test]
async fn the_independent_rows_are_the_scenario_rows() {
    let (_anvil, chain, scenario) = scenario().await;
    let expected = scenario.expected(&chain).await.expect("expected rows");
    let sender = chain.sender().to_string();
    let [d1, d2] = scenario.days();
    let d3 = d2.succ_opt().unwrap();

    let day1 = expected.on_day(d1);
    assert_eq!((day1.rows.len(), day1.skipped_count()), (59, 8));
    let day2 = expected.on_day(d2);
    assert_eq!((day2.rows.len(), day2.skipped_count()), (6, 4));
    assert_eq!(expected.on_day(d3).rows.len(), 1);
    assert_eq!(expected.days(), vec![d1, d2, d3]);

    // Ordered by (block_number, log_index, batch_index), unique by key.
    let order: Vec<_> = expected.rows.iter().map(Erc1155Row::order_key).collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted);
    let keys: HashSet<_> = expected.rows.iter().map(Erc1155Row::key).collect();
    assert_eq!(keys.len(), expected.rows.len());

    let mint = rows_of(&expected, &scenario, S::MINT_SINGLE);
    assert_eq!(mint.len(), 1);
    assert_eq!(
        (
            mint[0].operator.as_str(),
            mint[0].from_address.as_str(),
            mint[0].to_address.as_str()
        ),
        (sender.as_str(), ZERO, ALICE)
    );
    assert_eq!(
        (mint[0].token_id.as_str(), mint[0].value.as_str()),
        ("1", "100")
    );
    assert_eq!(mint[0].token_address, scenario.contracts[0]);
    assert_eq!(mint[0].batch_index, 0);
    assert_eq!(
        mint[0].block_timestamp.to_rfc3339(),
        "2024-03-01T00:00:00+00:00"
    );

    let batch = rows_of(&expected, &scenario, S::MINT_BATCH_OF_50);
    assert_eq!(batch.len(), 50);
    for (i, row) in batch.iter().enumerate() {
        assert_eq!(row.batch_index, i as i64);
        assert_eq!(row.token_id, (1000 + i).to_string());
        assert_eq!(row.value, (1001 + i).to_string());
        assert_eq!(
            (row.from_address.as_str(), row.to_address.as_str()),
            (ZERO, BOB)
        );
        assert_eq!(row.log_index, batch[0].log_index);
    }

    let max = rows_of(&expected, &scenario, S::MAX_SINGLE);
    assert_eq!(
        (
            max[0].token_id.as_str(),
            max[0].value.as_str(),
            max[0].operator.as_str()
        ),
        (UINT256_MAX, UINT256_MAX, MARKET)
    );
    let with_max = rows_of(&expected, &scenario, S::BATCH_WITH_MAX);
    let pairs: Vec<_> = with_max
        .iter()
        .map(|r| (r.token_id.as_str(), r.value.as_str(), r.to_address.as_str()))
        .collect();
    assert_eq!(
        pairs,
        vec![("7", UINT256_MAX, CAROL), (UINT256_MAX, "0", CAROL)]
    );
    assert_eq!(with_max[0].token_address, scenario.contracts[1]);

    // Only the TransferSingle between the two ERC-20 Transfers is a row.
    let mixed = rows_of(&expected, &scenario, S::ERC20_AND_SINGLE);
    let first_log = quantity(&logs(&scenario, S::ERC20_AND_SINGLE)[0]["logIndex"]).unwrap();
    assert_eq!(mixed.len(), 1);
    assert_eq!(mixed[0].log_index, first_log as i64 + 1);
    assert_eq!(
        (mixed[0].token_id.as_str(), mixed[0].value.as_str()),
        ("42", "3")
    );
    assert_eq!(mixed[0].operator, sender);

    let burns = rows_of(&expected, &scenario, S::BURN_BATCH_AT_DAY_END);
    assert_eq!(burns.len(), 3);
    assert!(burns
        .iter()
        .all(|r| r.to_address == ZERO && r.from_address == BOB));
    assert_eq!(
        burns[2].block_timestamp.to_rfc3339(),
        "2024-03-01T23:59:59+00:00"
    );
    let burn = rows_of(&expected, &scenario, S::BURN_SINGLE_AT_DAY_START);
    assert_eq!(
        (burn[0].from_address.as_str(), burn[0].to_address.as_str()),
        (ALICE, ZERO)
    );
    assert_eq!(
        burn[0].block_timestamp.to_rfc3339(),
        "2024-03-02T00:00:00+00:00"
    );

    let malformed_hashes = [S::MALFORMED_SINGLES, S::MALFORMED_BATCHES]
        .map(|l| scenario.tx(l).unwrap().tx_hash.clone());
    assert!(expected
        .rows
        .iter()
        .all(|r| !malformed_hashes.contains(&r.transaction_hash)));
    let reasons: Vec<SkipReason> = day1.skipped.iter().map(|s| s.reason.clone()).collect();
    assert_eq!(
        reasons,
        vec![
            SkipReason::TopicCount(3),
            SkipReason::TopicCount(2),
            SkipReason::SingleDataLength(32),
            SkipReason::SingleDataLength(0),
            SkipReason::BatchLengthsDiffer { ids: 2, values: 1 },
            SkipReason::BatchOutOfBounds,
            SkipReason::BatchOutOfBounds,
            SkipReason::TopicCount(3),
        ]
    );
    assert!(day2
        .skipped
        .iter()
        .all(|s| s.token_address == scenario.contracts[1]));

    // The same rows however the logs are read: receipts of the listed
    // transactions, or eth_getLogs as BigQuery's logs table holds them.
    let by_tx = expected_for_transactions(&chain, &scenario.tx_hashes())
        .await
        .unwrap();
    assert_eq!(by_tx, expected);
    let node_logs = scenario.bigquery_logs(&chain).await.unwrap();
    assert_eq!(expected_from_logs(&node_logs).unwrap(), expected);
}

// ---------------------------------------------------------------------------
// The BigQuery-compatible server's `logs` table

const LOG_COLUMNS: &str = "log_index, transaction_hash, transaction_index, address, data, topics, \
     block_timestamp, block_number, block_hash";
const DAY_AND_TOPIC_FILTER: &str = "block_timestamp >= TIMESTAMP(@day) \
     AND block_timestamp < TIMESTAMP_ADD(TIMESTAMP(@day), INTERVAL 1 DAY) \
     AND topics[SAFE_OFFSET(0)] IN UNNEST(@topics)";

fn logs_query(select: &str, day: &str, topics: &[&str]) -> Value {
    json!({
        "query": format!("SELECT {select} FROM `bigquery-public-data.crypto_ethereum.logs` WHERE {DAY_AND_TOPIC_FILTER}"),
        "useLegacySql": false,
        "maxResults": 4,
        "formatOptions": { "useInt64Timestamp": true },
        "queryParameters": [
            { "name": "day", "parameterType": { "type": "DATE" }, "parameterValue": { "value": day } },
            {
                "name": "topics",
                "parameterType": { "type": "ARRAY", "arrayType": { "type": "STRING" } },
                "parameterValue": { "arrayValues": topics.iter().map(|t| json!({ "value": t })).collect::<Vec<_>>() },
            },
        ],
    })
}

struct Api {
    fake: FakeBigQuery,
    token: String,
    client: reqwest::Client,
}

impl Api {
    async fn start(logs: Vec<FixtureLog>) -> Api {
        let fake = FakeBigQuery::start("ethpipe-test@test-project.iam.gserviceaccount.com")
            .await
            .expect("fake BigQuery");
        fake.set_logs(logs);
        let token = fake.access_token().await.expect("token");
        Api {
            fake,
            token,
            client: reqwest::Client::new(),
        }
    }

    /// (HTTP status, body) of jobs.query.
    async fn query(&self, body: &Value) -> (u16, Value) {
        let url = format!(
            "{}/bigquery/v2/projects/test-project/queries",
            self.fake.endpoint()
        );
        let response = self
            .client
            .post(url)
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    /// Every page of a query, following `pageToken` with getQueryResults.
    async fn pages(&self, body: &Value) -> Vec<Value> {
        let (status, first) = self.query(body).await;
        assert_eq!(status, 200, "{first}");
        let job = first["jobReference"]["jobId"].as_str().unwrap().to_string();
        let mut pages = vec![first];
        while let Some(token) = pages
            .last()
            .and_then(|p| p["pageToken"].as_str())
            .map(str::to_string)
        {
            let url = format!(
                "{}/bigquery/v2/projects/test-project/queries/{job}",
                self.fake.endpoint()
            );
            let page: Value = self
                .client
                .get(url)
                .bearer_auth(&self.token)
                .query(&[
                    ("pageToken", token.as_str()),
                    ("maxResults", "4"),
                    ("formatOptions.useInt64Timestamp", "true"),
                ])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            pages.push(page);
        }
        pages
    }
}

/// A wire row `{"f":[…]}` of the logs schema back to a `FixtureLog`.
fn parse_log_row(row: &Value) -> FixtureLog {
    let f = row["f"].as_array().expect("f");
    assert_eq!(f.len(), 9);
    let text = |i: usize| f[i]["v"].as_str().expect("a text cell").to_string();
    let number = |i: usize| text(i).parse::<i64>().expect("an integer cell");
    let topics = f[5]["v"]
        .as_array()
        .expect("a REPEATED cell holds a list")
        .iter()
        .map(|item| item["v"].as_str().expect("{\"v\": topic}").to_string())
        .collect();
    FixtureLog {
        log_index: number(0),
        transaction_hash: text(1),
        transaction_index: number(2),
        address: text(3),
        data: text(4),
        topics,
        block_timestamp_micros: number(6),
        block_number: number(7),
        block_hash: text(8),
    }
}

#[tokio::test]
async fn fake_bigquery_serves_a_days_erc1155_logs_in_the_wire_format() {
    let (_anvil, chain, scenario) = scenario().await;
    let node_logs = scenario.bigquery_logs(&chain).await.unwrap();
    let api = Api::start(node_logs.clone()).await;
    let erc1155 = [TRANSFER_SINGLE_TOPIC, TRANSFER_BATCH_TOPIC];

    let pages = api
        .pages(&logs_query(LOG_COLUMNS, "2024-03-01", &erc1155))
        .await;
    assert_eq!(pages.len(), 4, "15 rows in pages of 4");
    let first = &pages[0];
    assert_eq!(first["totalRows"], "15");
    assert_eq!(
        first["schema"],
        json!({ "fields": [
            { "name": "log_index", "type": "INTEGER", "mode": "NULLABLE" },
            { "name": "transaction_hash", "type": "STRING", "mode": "NULLABLE" },
            { "name": "transaction_index", "type": "INTEGER", "mode": "NULLABLE" },
            { "name": "address", "type": "STRING", "mode": "NULLABLE" },
            { "name": "data", "type": "STRING", "mode": "NULLABLE" },
            { "name": "topics", "type": "STRING", "mode": "REPEATED" },
            { "name": "block_timestamp", "type": "TIMESTAMP", "mode": "NULLABLE" },
            { "name": "block_number", "type": "INTEGER", "mode": "NULLABLE" },
            { "name": "block_hash", "type": "STRING", "mode": "NULLABLE" },
        ]})
    );
    let mint = scenario.tx(S::MINT_SINGLE).unwrap();
    let mint_log = &mint.logs()[0];
    assert_eq!(
        first["rows"][0],
        json!({ "f": [
            { "v": quantity(&mint_log["logIndex"]).unwrap().to_string() },
            { "v": mint.tx_hash },
            { "v": quantity(&mint_log["transactionIndex"]).unwrap().to_string() },
            { "v": scenario.contracts[0] },
            { "v": mint_log["data"] },
            { "v": mint_log["topics"].as_array().unwrap().iter().map(|t| json!({ "v": t })).collect::<Vec<_>>() },
            { "v": "1709251200000000" },
            { "v": mint.block_number().to_string() },
            { "v": mint.receipt["blockHash"] },
        ]})
    );

    let served: Vec<FixtureLog> = pages
        .iter()
        .flat_map(|p| p["rows"].as_array().cloned().unwrap_or_default())
        .map(|row| parse_log_row(&row))
        .collect();
    let day_start = 1_709_251_200_000_000;
    let wanted: Vec<FixtureLog> = node_logs
        .iter()
        .filter(|l| {
            l.block_timestamp_micros >= day_start
                && l.block_timestamp_micros < day_start + 86_400_000_000
        })
        .filter(|l| {
            l.topics
                .first()
                .is_some_and(|t| erc1155.contains(&t.as_str()))
        })
        .cloned()
        .collect();
    assert_eq!(served, wanted);
    assert!(served.iter().all(|l| l.topics[0] != TRANSFER_TOPIC));
    // What the served rows decode to is what the node's receipts say.
    let expected = scenario.expected(&chain).await.unwrap();
    assert_eq!(
        expected_from_logs(&served).unwrap(),
        expected.on_day(first_day())
    );

    // The parameters arrive as sent, for tests of the production client.
    let recorded = api.fake.queries().pop().expect("a recorded query");
    assert_eq!(
        recorded.scalar_parameter("day"),
        Some(("DATE", "2024-03-01"))
    );
    assert_eq!(
        recorded.string_array_parameter("topics"),
        Some(erc1155.iter().map(|t| t.to_string()).collect())
    );
    assert!(recorded.sql().contains("IN UNNEST(@topics)"));
}

#[tokio::test]
async fn fake_bigquery_logs_filter_by_topic_and_count() {
    let (_anvil, chain, scenario) = scenario().await;
    let api = Api::start(scenario.bigquery_logs(&chain).await.unwrap()).await;
    let erc1155 = [TRANSFER_SINGLE_TOPIC, TRANSFER_BATCH_TOPIC];
    let total = |pages: Vec<Value>| {
        pages[0]["totalRows"]
            .as_str()
            .unwrap()
            .parse::<usize>()
            .unwrap()
    };

    // The ERC-20 Transfers of the mixed transactions, one on each day.
    assert_eq!(
        total(
            api.pages(&logs_query(LOG_COLUMNS, "2024-03-01", &[TRANSFER_TOPIC]))
                .await
        ),
        2
    );
    assert_eq!(
        total(
            api.pages(&logs_query(LOG_COLUMNS, "2024-03-02", &[TRANSFER_TOPIC]))
                .await
        ),
        2
    );
    assert_eq!(
        total(
            api.pages(&logs_query(LOG_COLUMNS, "2024-03-02", &erc1155))
                .await
        ),
        8
    );
    assert_eq!(
        total(
            api.pages(&logs_query(
                LOG_COLUMNS,
                "2024-03-02",
                &[TRANSFER_BATCH_TOPIC]
            ))
            .await
        ),
        2
    );
    assert_eq!(
        total(api.pages(&logs_query(LOG_COLUMNS, "2024-03-02", &[])).await),
        0
    );
    // Topics are compared as text, as BigQuery does: upper case matches nothing.
    let upper = TRANSFER_SINGLE_TOPIC.to_uppercase().replacen("0X", "0x", 1);
    assert_eq!(
        total(
            api.pages(&logs_query(LOG_COLUMNS, "2024-03-02", &[&upper]))
                .await
        ),
        0
    );

    let counted = api
        .pages(&logs_query("COUNT(*) AS row_count", "2024-03-01", &erc1155))
        .await;
    assert_eq!(counted[0]["rows"], json!([{ "f": [{ "v": "15" }] }]));

    // Without useInt64Timestamp, TIMESTAMP is float seconds; topics stay a list.
    let mut legacy = logs_query(LOG_COLUMNS, "2024-03-02", &[TRANSFER_BATCH_TOPIC]);
    legacy["formatOptions"] = json!({});
    legacy["maxResults"] = json!(10);
    let (status, page) = api.query(&legacy).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["rows"][0]["f"][6]["v"], "1.7093592E9");
    assert_eq!(page["rows"][0]["f"][5]["v"][0]["v"], TRANSFER_BATCH_TOPIC);

    // A logs query without its @topics parameter, or with a STRING one, is
    // refused the way BigQuery refuses it.
    let mut missing = logs_query(LOG_COLUMNS, "2024-03-01", &erc1155);
    missing["queryParameters"].as_array_mut().unwrap().pop();
    let (status, error) = api.query(&missing).await;
    assert_eq!(status, 400);
    assert_eq!(error["error"]["errors"][0]["reason"], "invalidQuery");
    assert_eq!(
        error["error"]["message"],
        "Query parameter 'topics' not found"
    );
    let mut scalar = logs_query(LOG_COLUMNS, "2024-03-01", &erc1155);
    scalar["queryParameters"][1] = json!({
        "name": "topics", "parameterType": { "type": "STRING" }, "parameterValue": { "value": TRANSFER_SINGLE_TOPIC },
    });
    let (status, error) = api.query(&scalar).await;
    assert_eq!(status, 400);
    assert_eq!(
        error["error"]["message"],
        "Query parameter 'topics' must be an ARRAY<STRING>"
    );

    // Rows the decoder must see whole: the 50-id batch is one row of logs.
    let batch_hash = &scenario.tx(S::MINT_BATCH_OF_50).unwrap().tx_hash;
    let pages = api
        .pages(&logs_query(
            LOG_COLUMNS,
            "2024-03-01",
            &[TRANSFER_BATCH_TOPIC],
        ))
        .await;
    let batch_rows: Vec<FixtureLog> = pages
        .iter()
        .flat_map(|p| p["rows"].as_array().cloned().unwrap_or_default())
        .map(|row| parse_log_row(&row))
        .filter(|l| &l.transaction_hash == batch_hash)
        .collect();
    assert_eq!(batch_rows.len(), 1);
    assert_eq!(
        from_hex(&batch_rows[0].data).unwrap().len(),
        64 + 2 * 32 * 51
    );
    assert_eq!(
        batch_rows[0].topics[2],
        format!("0x{}", "0".repeat(64)),
        "a mint"
    );
}
