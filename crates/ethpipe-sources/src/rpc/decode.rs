//! Where a node's log becomes a [`Log`] for a dataset's decoder: the JSON
//! shape `eth_getLogs`, `eth_getFilterLogs` and receipts return, its hex
//! quantities checked, its block joined. The decoding rules themselves live
//! with each dataset (`ethpipe_core::datasets`); [`decode_transfer`] applies
//! the `token_transfers` rules to one raw log, as ethereum-etl's
//! `extract_transfer_from_log` does (docs/rpc-semantics.md, rules 7–14).

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use ethpipe_core::datasets::token_transfers;
use ethpipe_core::evm::{self, Log, LogRef};
use ethpipe_core::Uint;
use serde::{Deserialize, Deserializer};

pub use ethpipe_core::datasets::token_transfers::TRANSFER_TOPIC;
pub use ethpipe_core::evm::{split_to_words, word_to_address, DecodeError};

/// A log as `eth_getLogs`, `eth_getFilterLogs` and receipts return it.
/// Quantities stay hex text: they are only checked for logs that matter.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RpcLog {
    pub address: String,
    /// ethereum-etl treats `null` topics like no topics.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub topics: Vec<String>,
    #[serde(default)]
    pub data: Option<String>,
    pub block_number: String,
    /// The block the node read the log from; checked against the header
    /// the row is joined with, so a reorg between the two reads is caught.
    #[serde(default)]
    pub block_hash: Option<String>,
    pub transaction_hash: String,
    pub log_index: String,
}

impl RpcLog {
    /// The block this log claims, checked.
    pub fn block(&self) -> Result<i64, DecodeError> {
        evm::quantity("blockNumber", &self.block_number)
    }

    /// Whether its first topic is one of `topics` (ignoring case, rule 7).
    pub fn has_topic(&self, topics: &[&str]) -> bool {
        self.topics
            .first()
            .is_some_and(|t| topics.iter().any(|expected| evm::is_topic(t, expected)))
    }

    /// The checked log with its block's timestamp and hash joined (rule 15).
    pub fn into_log(
        self,
        block_timestamp: DateTime<Utc>,
        block_hash: &str,
    ) -> Result<Log, DecodeError> {
        Ok(Log {
            transaction_hash: evm::hash("transactionHash", &self.transaction_hash)?,
            log_index: evm::quantity("logIndex", &self.log_index)?,
            block_number: self.block()?,
            address: self.address,
            topics: self.topics,
            data: self.data,
            block_timestamp,
            block_hash: block_hash.to_string(),
        })
    }
}

/// [`RpcLog`] read in place from a node's answer: every field borrows the
/// answer's bytes (a string with JSON escapes, which no node sends for hex,
/// is the only one copied), so a log costs no allocation of its own before
/// its row is made. Fields the decoders never read (`removed`,
/// `transactionIndex`, …) are skipped without being kept.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawLog<'a> {
    #[serde(borrow)]
    pub address: Text<'a>,
    #[serde(borrow, default, deserialize_with = "null_as_empty_borrowed")]
    pub topics: Vec<Text<'a>>,
    #[serde(borrow, default)]
    pub data: Option<Text<'a>>,
    #[serde(borrow)]
    pub block_number: Text<'a>,
    #[serde(borrow, default)]
    pub block_hash: Option<Text<'a>>,
    #[serde(borrow)]
    pub transaction_hash: Text<'a>,
    #[serde(borrow)]
    pub log_index: Text<'a>,
}

/// A JSON string borrowed from the answer's bytes. serde hands a bare
/// `Cow<str>` back owned; only a field marked `borrow` borrows, so the
/// field lives in this wrapper, which `Vec` and `Option` can hold.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Text<'a>(#[serde(borrow)] pub Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'a> RawLog<'a> {
    /// The block this log claims, checked.
    pub fn block(&self) -> Result<i64, DecodeError> {
        evm::quantity("blockNumber", &self.block_number)
    }

    pub fn log_index(&self) -> Result<i64, DecodeError> {
        evm::quantity("logIndex", &self.log_index)
    }

    /// Whether its first topic is one of `topics` (ignoring case, rule 7).
    pub fn has_topic(&self, topics: &[&str]) -> bool {
        self.topics
            .first()
            .is_some_and(|t| topics.iter().any(|expected| evm::is_topic(t, expected)))
    }

    /// The checked log with its block's timestamp and hash joined (rule
    /// 15), still borrowing: what a dataset's decoder reads.
    pub fn view<'b>(
        &'b self,
        block_timestamp: DateTime<Utc>,
        block_hash: &'b str,
    ) -> Result<LogRef<'b>, DecodeError> {
        Ok(LogRef {
            transaction_hash: evm::hash_ref("transactionHash", &self.transaction_hash)?,
            log_index: self.log_index()?,
            block_number: self.block()?,
            address: &self.address,
            topics: self.topics.iter().map(|t| &**t).collect(),
            data: self.data.as_deref(),
            block_timestamp,
            block_hash,
        })
    }
}

/// Everything a `token_transfers` row takes from its log; the block's
/// timestamp and hash are joined later (rule 15).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferParts {
    pub token_address: String,
    pub from_address: String,
    pub to_address: String,
    pub value: Uint,
    pub transaction_hash: String,
    pub log_index: i64,
    pub block_number: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    Transfer(TransferParts),
    /// topic0 is not Transfer (or there are no topics): dropped silently.
    NotTransfer,
    /// Transfer topic, but topics and data words are not 4 parts: skipped,
    /// with ethereum-etl's warning text.
    Skipped(String),
}

/// One raw log's fate under rules 7–13, addresses as ethereum-etl keeps
/// them. Fields are checked only once the log is known to be a Transfer:
/// ethereum-etl never reads the others.
pub fn decode_transfer(log: &RpcLog) -> Result<Decoded, DecodeError> {
    if !log.has_topic(&[TRANSFER_TOPIC]) {
        return Ok(Decoded::NotTransfer);
    }
    let log = log.clone().into_log(DateTime::<Utc>::UNIX_EPOCH, "")?;
    Ok(match token_transfers::decode_unchecked(&log.view())? {
        token_transfers::Decoded::Transfer(t) => Decoded::Transfer(TransferParts {
            token_address: t.token_address,
            from_address: t.from_address.unwrap_or_default(),
            to_address: t.to_address.unwrap_or_default(),
            value: t.value.unwrap_or_else(|| Uint::from_u64(0)),
            transaction_hash: t.transaction_hash,
            log_index: t.log_index,
            block_number: t.block_number,
        }),
        token_transfers::Decoded::NotTransfer => Decoded::NotTransfer,
        token_transfers::Decoded::Skipped(warning) => Decoded::Skipped(warning),
    })
}

fn null_as_empty<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(deserializer)?.unwrap_or_default())
}

fn null_as_empty_borrowed<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<Text<'de>>, D::Error> {
    Ok(Option::<Vec<Text<'de>>>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruint::aliases::U256;
    use serde_json::{json, Value};

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/ethereum-etl");
    const TX: &str = "0x5cb4fc2e3d217f3c286358d6bc042259c8befb0dabe450567a987f5770043157";
    const FROM: &str = "0x9f73bc871764c879fd9e0f524278373fa7875068";
    const TO: &str = "0xf51bc4633f5924465c8c6317169faf3e4312e82f";

    fn fixture(path: &str) -> String {
        let full = format!("{FIXTURES}/{path}");
        std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
    }

    fn word(hex_tail: &str) -> String {
        format!("0x{hex_tail:0>64}")
    }

    fn log(topics: &[&str], data: &str) -> RpcLog {
        RpcLog {
            address: "0xC66EA802717bfb9833400264dd12c2bceaa34a6d".to_string(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            data: Some(data.to_string()),
            block_number: "0x162a25".to_string(),
            block_hash: None,
            transaction_hash: TX.to_string(),
            log_index: "0x3".to_string(),
        }
    }

    fn transfer(log: &RpcLog) -> TransferParts {
        match decode_transfer(log) {
            Ok(Decoded::Transfer(parts)) => parts,
            other => panic!("expected a transfer, got {other:?}"),
        }
    }

    fn uint(text: &str) -> Uint {
        Uint::parse_decimal(text).expect("a decimal uint256")
    }

    // ---- rule 7 ----

    #[test]
    fn transfer_topic_is_matched_ignoring_case_and_other_events_are_dropped() {
        let (from, to) = (word(&FROM[2..]), word(&TO[2..]));
        let standard = log(&[TRANSFER_TOPIC, &from, &to], &word("5e8adca7e45940000"));
        let upper = TRANSFER_TOPIC.to_uppercase();
        assert!(upper.starts_with("0XDDF2"));
        let shouting = log(&[&upper, &from, &to], &word("5e8adca7e45940000"));
        assert_eq!(transfer(&shouting), transfer(&standard));
        assert_eq!(transfer(&standard).value, uint("109000000000000000000"));

        let other = "0xde857d2761836ca6234345c7f7f4c783271ed7d1aedf9268b3fe32800d186fde";
        let approval = log(&[other, &from, &to], &word("46"));
        assert_eq!(decode_transfer(&approval), Ok(Decoded::NotTransfer));
        let anonymous = log(&[], &word("46"));
        assert_eq!(decode_transfer(&anonymous), Ok(Decoded::NotTransfer));
    }

    #[test]
    fn null_or_missing_topics_and_data_read_as_none() {
        let raw = json!({"address": "0x01", "topics": null, "blockNumber": "0x1",
            "transactionHash": TX, "logIndex": "0x0"});
        let parsed: RpcLog = serde_json::from_value(raw).expect("a log");
        assert!(parsed.topics.is_empty() && parsed.data.is_none());
        assert_eq!(decode_transfer(&parsed), Ok(Decoded::NotTransfer));
    }

    #[test]
    fn a_raw_log_borrows_its_fields_from_the_answer() {
        let answer = format!(
            r#"{{"address":"0x01","topics":["{TRANSFER_TOPIC}"],"data":"0x","blockNumber":"0x1",
               "blockHash":null,"transactionHash":"{TX}","logIndex":"0x0","removed":false}}"#
        );
        let raw: RawLog<'_> = serde_json::from_str(&answer).expect("a log");
        let borrowed = |text: &Text<'_>| matches!(text.0, Cow::Borrowed(_));
        assert!(borrowed(&raw.address) && borrowed(&raw.topics[0]) && borrowed(&raw.log_index));
        assert!(raw.data.as_ref().is_some_and(borrowed) && raw.block_hash.is_none());
        let view = raw
            .view(DateTime::<Utc>::UNIX_EPOCH, "0xab")
            .expect("checked");
        assert!(matches!(view.transaction_hash, Cow::Borrowed(_)));
        assert_eq!((view.log_index, view.block_number), (0, 1));
    }

    #[test]
    fn other_logs_are_not_checked() {
        let mut weird = log(&["0x01"], "0x");
        weird.transaction_hash = "nonsense".to_string();
        weird.log_index = "nonsense".to_string();
        assert_eq!(decode_transfer(&weird), Ok(Decoded::NotTransfer));
    }

    // ---- rule 8 ----

    #[test]
    fn data_is_cut_into_words_with_a_short_last_one() {
        assert!(split_to_words(None).is_empty());
        assert!(split_to_words(Some("")).is_empty());
        assert!(split_to_words(Some("0x")).is_empty());
        let full = "ab".repeat(32);
        assert_eq!(
            split_to_words(Some(&format!("0x{full}"))),
            vec![format!("0x{full}")]
        );
        let forty = format!("0x{}{}", "ab".repeat(32), "cd".repeat(8));
        assert_eq!(
            split_to_words(Some(&forty)),
            vec![
                format!("0x{}", "ab".repeat(32)),
                format!("0x{}", "cd".repeat(8))
            ]
        );
        let twenty = format!("0x{}", "ef".repeat(20));
        assert_eq!(split_to_words(Some(&twenty)), vec![twenty.clone()]);
        assert_eq!(split_to_words(Some("0x1")), vec!["0x1".to_string()]);
    }

    // ---- rules 9 and 10 ----

    #[test]
    fn standard_erc20_shape_gives_a_row() {
        let row = transfer(&log(
            &[TRANSFER_TOPIC, &word(&FROM[2..]), &word(&TO[2..])],
            &word("9502f9000"),
        ));
        assert_eq!(row.from_address, FROM);
        assert_eq!(row.to_address, TO);
        assert_eq!(row.value, uint("40000000000"));
    }

    #[test]
    fn erc721_shape_takes_the_token_id_from_topic_3() {
        let topics = [
            TRANSFER_TOPIC,
            &word(&FROM[2..]),
            &word(&TO[2..]),
            &word("1f"),
        ];
        for data in ["0x", ""] {
            let row = transfer(&log(&topics, data));
            assert_eq!(
                (row.from_address.as_str(), row.value.clone()),
                (FROM, uint("31"))
            );
        }
        let mut no_data = log(&topics, "");
        no_data.data = None;
        assert_eq!(transfer(&no_data).value, uint("31"));
    }

    #[test]
    fn two_topics_and_two_words_take_to_and_value_from_data() {
        let data = format!("0x{}{}", &word(&TO[2..])[2..], &word("7")[2..]);
        let row = transfer(&log(&[TRANSFER_TOPIC, &word(&FROM[2..])], &data));
        assert_eq!(row.from_address, FROM);
        assert_eq!(row.to_address, TO);
        assert_eq!(row.value, uint("7"));
    }

    #[test]
    fn unindexed_parameters_give_the_same_row_as_indexed_ones() {
        let data = format!(
            "0x{}{}{}",
            &word(&FROM[2..])[2..],
            &word(&TO[2..])[2..],
            &word("7")[2..]
        );
        let unindexed = transfer(&log(&[TRANSFER_TOPIC], &data));
        let indexed = transfer(&log(
            &[TRANSFER_TOPIC, &word(&FROM[2..]), &word(&TO[2..])],
            &word("7"),
        ));
        assert_eq!(unindexed, indexed);
    }

    #[test]
    fn any_other_number_of_parts_is_skipped_with_ethereum_etls_warning() {
        let w = &word("1")[2..];
        let t = word("1");
        let shapes: [(Vec<&str>, String); 6] = [
            (vec![TRANSFER_TOPIC, &t, &t], "0x".to_string()),
            (vec![TRANSFER_TOPIC, &t, &t], format!("0x{w}{w}")),
            (vec![TRANSFER_TOPIC, &t, &t, &t], format!("0x{w}")),
            (vec![TRANSFER_TOPIC, &t], format!("0x{w}")),
            (vec![TRANSFER_TOPIC], "0x".to_string()),
            (vec![TRANSFER_TOPIC, &t, &t, &t, &t], "0x".to_string()),
        ];
        let warning = format!(
            "The number of topics and data parts is not equal to 4 in log 3 of transaction {TX}"
        );
        for (topics, data) in shapes {
            let decoded = decode_transfer(&log(&topics, &data));
            assert_eq!(
                decoded,
                Ok(Decoded::Skipped(warning.clone())),
                "{topics:?} + {data}"
            );
        }
    }

    #[test]
    fn forty_bytes_of_data_is_two_words_and_skipped() {
        let data = format!("0x{}{}", "00".repeat(32), "11".repeat(8));
        let decoded = decode_transfer(&log(&[TRANSFER_TOPIC, &word("1"), &word("2")], &data));
        assert!(matches!(decoded, Ok(Decoded::Skipped(_))), "{decoded:?}");
    }

    #[test]
    fn twenty_bytes_of_data_is_read_as_the_number_it_spells() {
        let data = format!("0x{}", "01".repeat(20));
        let row = transfer(&log(&[TRANSFER_TOPIC, &word("1"), &word("2")], &data));
        let expected = U256::from_str_radix(&"01".repeat(20), 16).expect("hex");
        assert_eq!(row.value, uint(&expected.to_string()));
    }

    // ---- rule 11 ----

    #[test]
    fn addresses_are_the_last_20_bytes_lowercased() {
        let dirty = format!("0x{}{}", "ff".repeat(12), "ab".repeat(20));
        let mixed = format!("0x{:0>64}", "AbCdEf0123456789ABCDEF0123456789abcdef01");
        let row = transfer(&log(&[TRANSFER_TOPIC, &dirty, &mixed], &word("1")));
        assert_eq!(row.from_address, format!("0x{}", "ab".repeat(20)));
        assert_eq!(row.to_address, "0xabcdef0123456789abcdef0123456789abcdef01");
        assert_eq!(
            row.token_address,
            "0xc66ea802717bfb9833400264dd12c2bceaa34a6d"
        );
    }

    #[test]
    fn short_parts_follow_ethereum_etls_length_test() {
        assert_eq!(word_to_address("0xABC"), "0xabc");
        let thirty_nine = format!("0x{}", "A".repeat(37));
        assert_eq!(word_to_address(&thirty_nine), thirty_nine.to_lowercase());
        // 40 characters including `0x`: Python's `param[-40:]` keeps the prefix.
        let forty = format!("0x{}", "A".repeat(38));
        assert_eq!(word_to_address(&forty), format!("0x0x{}", "a".repeat(38)));
        let exact = "B".repeat(40);
        assert_eq!(word_to_address(&exact), format!("0x{}", "b".repeat(40)));
    }

    // ---- rule 12 ----

    #[test]
    fn value_is_the_exact_unsigned_integer() {
        let zero = word("0");
        let minus_thousand = format!("0x{}fc18", "f".repeat(60));
        let data = format!("0x{}{}", &zero[2..], &minus_thousand[2..]);
        let from = word("e9eeaec75883f0e389a78e2260bfac1776df2f1d");
        let row = transfer(&log(&[TRANSFER_TOPIC, &from], &data));
        assert_eq!(row.to_address, format!("0x{}", "0".repeat(40)));
        assert_eq!(
            row.value,
            uint("115792089237316195423570985008687907853269984665640564039457584007913129638936")
        );
        let max = transfer(&log(
            &[TRANSFER_TOPIC, &from, &zero],
            &format!("0x{}", "f".repeat(64)),
        ));
        assert_eq!(
            max.value,
            uint("115792089237316195423570985008687907853269984665640564039457584007913129639935")
        );
    }

    #[test]
    fn a_value_that_is_not_hex_or_too_big_is_an_error() {
        for topic3 in ["0x", "0xzz", &format!("0x1{}", "0".repeat(64))] {
            let topics = [TRANSFER_TOPIC, &word("1"), &word("2"), topic3];
            let error = decode_transfer(&log(&topics, "0x")).expect_err(topic3);
            assert!(
                matches!(&error, DecodeError::Field { field, value, .. } if (*field, value.as_str()) == ("value", topic3)),
                "{error:?}"
            );
        }
        let long_but_small = format!("0x{}5", "0".repeat(70));
        let topics = [TRANSFER_TOPIC, &word("1"), &word("2"), &long_but_small];
        assert_eq!(transfer(&log(&topics, "0x")).value, uint("5"));
    }

    // ---- rule 13 ----

    #[test]
    fn quantities_and_hash_are_parsed_and_checked() {
        let mut shouting = log(&[TRANSFER_TOPIC, &word("1"), &word("2")], &word("3"));
        shouting.transaction_hash = TX.to_uppercase().replacen("0X", "0x", 1);
        let row = transfer(&shouting);
        assert_eq!(
            (
                row.transaction_hash.as_str(),
                row.log_index,
                row.block_number
            ),
            (TX, 3, 1452581)
        );

        let cases = [
            ("logIndex", "0x3g"),
            ("logIndex", "0x"),
            ("blockNumber", "0x-1"),
            ("blockNumber", "0x8000000000000000"),
            ("transactionHash", "0x1234"),
            ("transactionHash", &TX[2..]),
        ];
        for (field, value) in cases {
            let mut broken = log(&[TRANSFER_TOPIC, &word("1"), &word("2")], &word("3"));
            match field {
                "logIndex" => broken.log_index = value.to_string(),
                "blockNumber" => broken.block_number = value.to_string(),
                _ => broken.transaction_hash = value.to_string(),
            }
            let error = decode_transfer(&broken).expect_err(value);
            assert!(
                matches!(&error, DecodeError::Field { field: f, value: v, .. } if (*f, v.as_str()) == (field, value)),
                "{error:?}"
            );
            assert!(error.to_string().contains(field), "{error}");
        }
    }

    // ---- fixtures ----

    /// Python's `csv` quoting, enough for ethereum-etl's logs.csv.
    fn csv_fields(line: &str) -> Vec<String> {
        let (mut fields, mut field, mut quoted) = (Vec::new(), String::new(), false);
        for c in line.chars() {
            match c {
                '"' => quoted = !quoted,
                ',' if !quoted => fields.push(std::mem::take(&mut field)),
                _ => field.push(c),
            }
        }
        fields.push(field);
        fields
    }

    fn csv_rows(path: &str) -> Vec<Vec<String>> {
        fixture(path)
            .lines()
            .skip(1)
            .filter(|l| !l.is_empty())
            .map(csv_fields)
            .collect()
    }

    fn as_csv_row(parts: &TransferParts) -> Vec<String> {
        vec![
            parts.token_address.clone(),
            parts.from_address.clone(),
            parts.to_address.clone(),
            parts.value.to_string(),
            parts.transaction_hash.clone(),
            parts.log_index.to_string(),
            parts.block_number.to_string(),
        ]
    }

    fn transfers(logs: &[RpcLog]) -> Vec<TransferParts> {
        let decoded = logs
            .iter()
            .map(|l| decode_transfer(l).expect("well-formed"));
        let mut rows: Vec<_> = decoded
            .filter_map(|d| match d {
                Decoded::Transfer(parts) => Some(parts),
                _ => None,
            })
            .collect();
        rows.sort_by(|a, b| {
            (&a.transaction_hash, a.log_index).cmp(&(&b.transaction_hash, b.log_index))
        });
        rows
    }

    /// A log as ethereum-etl writes it (decimal numbers) turned back into what
    /// the node sent.
    fn rpc_log_from_etl(
        address: &str,
        topics: Vec<String>,
        data: &str,
        tx: &str,
        index: u64,
        block: u64,
    ) -> RpcLog {
        RpcLog {
            address: address.to_string(),
            topics,
            data: Some(data.to_string()),
            block_number: format!("{block:#x}"),
            block_hash: None,
            transaction_hash: tx.to_string(),
            log_index: format!("{index:#x}"),
        }
    }

    #[test]
    fn fixture_extract_token_transfers_from_logs_csv() {
        let logs: Vec<RpcLog> = csv_rows("test_extract_token_transfers_job/logs/logs.csv")
            .into_iter()
            .map(|f| {
                let topics = f[7].split(',').map(str::to_string).collect();
                let (index, block) = (f[0].parse().expect("index"), f[4].parse().expect("block"));
                rpc_log_from_etl(&f[5], topics, &f[6], &f[1], index, block)
            })
            .collect();
        assert_eq!(logs.len(), 3);
        let rows: Vec<_> = transfers(&logs).iter().map(as_csv_row).collect();
        let expected =
            csv_rows("test_extract_token_transfers_job/logs/expected_token_transfers.csv");
        assert_eq!(rows, expected);

        let mut shouting = logs[0].clone();
        shouting.topics[0] = shouting.topics[0].to_uppercase();
        assert_eq!(transfer(&shouting), transfer(&logs[0]));
    }

    fn rpc_result(path: &str) -> Value {
        let answer: Value = serde_json::from_str(&fixture(path)).expect("JSON");
        answer["result"].clone()
    }

    #[test]
    fn fixture_export_token_transfers_filter_logs() {
        let dir = "test_export_token_transfers_job/block_with_transfers";
        let result = rpc_result(&format!("{dir}/web3_response.eth_getFilterLogs_0x0.json"));
        let logs: Vec<RpcLog> = serde_json::from_value(result).expect("logs");
        let rows: Vec<_> = transfers(&logs).iter().map(as_csv_row).collect();
        assert_eq!(
            rows,
            csv_rows(&format!("{dir}/expected_token_transfers.csv"))
        );
    }

    fn receipt_logs(dir: &str) -> Vec<RpcLog> {
        let mut names: Vec<_> = std::fs::read_dir(format!("{FIXTURES}/{dir}"))
            .expect("fixture directory")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("web3_response.eth_getTransactionReceipt_"))
            .collect();
        names.sort();
        assert!(!names.is_empty());
        names
            .iter()
            .flat_map(|name| {
                let result = rpc_result(&format!("{dir}/{name}"));
                serde_json::from_value::<Vec<RpcLog>>(result["logs"].clone()).expect("logs")
            })
            .collect()
    }

    #[test]
    fn fixture_receipt_logs_give_the_same_rows_as_the_filter() {
        let logs = receipt_logs("test_export_receipts_job/receipts_with_logs");
        let rows: Vec<_> = transfers(&logs).iter().map(as_csv_row).collect();
        let expected =
            "test_export_token_transfers_job/block_with_transfers/expected_token_transfers.csv";
        assert_eq!(rows, csv_rows(expected));
    }

    /// A JSON number's digits as written: the fixture's values exceed u64 and
    /// serde_json would round them through f64.
    fn raw_number(line: &str, key: &str) -> String {
        let marker = format!("\"{key}\": ");
        let start = line.find(&marker).map(|i| i + marker.len()).expect("key");
        line[start..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect()
    }

    fn expected_transfers(path: &str) -> Vec<TransferParts> {
        let text = fixture(path);
        let mut rows: Vec<_> = text
            .lines()
            .filter(|l| !l.is_empty())
            .map(|line| {
                let row: Value = serde_json::from_str(line).expect("JSON");
                let text_of = |key: &str| row[key].as_str().expect(key).to_string();
                let int_of = |key: &str| row[key].as_i64().expect(key);
                TransferParts {
                    token_address: text_of("token_address"),
                    from_address: text_of("from_address"),
                    to_address: text_of("to_address"),
                    value: uint(&raw_number(line, "value")),
                    transaction_hash: text_of("transaction_hash"),
                    log_index: int_of("log_index"),
                    block_number: int_of("block_number"),
                }
            })
            .collect();
        rows.sort_by(|a, b| {
            (&a.transaction_hash, a.log_index).cmp(&(&b.transaction_hash, b.log_index))
        });
        rows
    }

    #[test]
    fn fixture_stream_1755634_receipts() {
        let dir = "test_stream/blocks_1755634_1755635";
        let rows = transfers(&receipt_logs(dir));
        let expected = expected_transfers(&format!("{dir}/expected_token_transfers.json"));
        assert_eq!(rows, expected);
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].log_index, rows[0].block_number), (0, 1755635));
        assert_eq!(rows[0].value, uint("5000000000000000000"));
    }

    #[test]
    fn fixture_stream_17173049_gives_exactly_291_rows() {
        let dir = "test_stream/blocks_17173049_17173050";
        let logs: Vec<RpcLog> = fixture(&format!("{dir}/expected_logs.json"))
            .lines()
            .filter(|l| !l.is_empty())
            .map(|line| {
                let l: Value = serde_json::from_str(line).expect("JSON");
                let text_of = |key: &str| l[key].as_str().expect(key).to_string();
                let topics = serde_json::from_value(l["topics"].clone()).expect("topics");
                let (index, block) = (l["log_index"].as_u64(), l["block_number"].as_u64());
                let (index, block) = (index.expect("log_index"), block.expect("block_number"));
                rpc_log_from_etl(
                    &text_of("address"),
                    topics,
                    &text_of("data"),
                    &text_of("transaction_hash"),
                    index,
                    block,
                )
            })
            .collect();
        assert_eq!(logs.len(), 681);
        let rows = transfers(&logs);
        let expected = expected_transfers(&format!("{dir}/expected_token_transfers.json"));
        assert_eq!(rows.len(), 291);
        assert_eq!(rows, expected);
        assert!(rows
            .iter()
            .any(|r| r.value == uint("7786596450288373164569331648084")));

        let shape = |l: &RpcLog| (l.topics.len(), split_to_words(l.data.as_deref()).len());
        let matched: Vec<_> = logs
            .iter()
            .filter(|l| l.has_topic(&[TRANSFER_TOPIC]))
            .map(shape)
            .collect();
        assert_eq!(matched.iter().filter(|s| **s == (3, 1)).count(), 282);
        assert_eq!(matched.iter().filter(|s| **s == (4, 0)).count(), 9);
    }
}
