//! Logs as both sources hand them to a dataset's decoder, and the word
//! helpers ethereum-etl's decoding rules are written in
//! (docs/rpc-semantics.md, rules 7–14).

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use ruint::aliases::U256;

use crate::{validate, RowError, Uint};

/// One log with its block joined: what `eth_getLogs` plus the block header
/// give, and what a `crypto_ethereum.logs` row holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log {
    /// As sent; decoders lowercase it.
    pub address: String,
    pub topics: Vec<String>,
    pub data: Option<String>,
    /// Checked: `0x` + 64 lowercase hex digits.
    pub transaction_hash: String,
    pub log_index: i64,
    pub block_number: i64,
    pub block_timestamp: DateTime<Utc>,
    pub block_hash: String,
}

impl Log {
    /// The log as decoders read it, borrowing every field.
    pub fn view(&self) -> LogRef<'_> {
        LogRef {
            address: &self.address,
            topics: self.topics.iter().map(String::as_str).collect(),
            data: self.data.as_deref(),
            transaction_hash: Cow::Borrowed(&self.transaction_hash),
            log_index: self.log_index,
            block_number: self.block_number,
            block_timestamp: self.block_timestamp,
            block_hash: &self.block_hash,
        }
    }
}

/// A [`Log`] borrowed from wherever its text lives (a node's answer, a
/// BigQuery page): what a dataset's decoder reads. The JSON-RPC source
/// makes these straight from the answer's bytes, so a log costs no copy of
/// its fields before it becomes a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRef<'a> {
    /// As sent; decoders lowercase it.
    pub address: &'a str,
    pub topics: Vec<&'a str>,
    pub data: Option<&'a str>,
    /// Checked: `0x` + 64 lowercase hex digits (owned only when the source
    /// sent it in upper case).
    pub transaction_hash: Cow<'a, str>,
    pub log_index: i64,
    pub block_number: i64,
    pub block_timestamp: DateTime<Utc>,
    pub block_hash: &'a str,
}

/// A log field no source should send; the day fails rather than load it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the node sent a log whose {field} is {value:?}, which is not {expected}")]
    Field {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
    /// An address part that is not hex (ethereum-etl would keep it as is).
    #[error("malformed log (log {log_index} of transaction {transaction_hash}): {problem}")]
    Address {
        log_index: i64,
        transaction_hash: String,
        problem: String,
    },
}

impl DecodeError {
    pub fn field(field: &'static str, value: &str, expected: &'static str) -> DecodeError {
        DecodeError::Field {
            field,
            value: value.to_string(),
            expected,
        }
    }

    /// Whether a retry could get a different answer (a garbled transport
    /// answer) or not (a well-formed log with a non-hex address).
    pub fn is_permanent(&self) -> bool {
        matches!(self, DecodeError::Address { .. })
    }
}

/// Python's `casefold()` also folds the `0X` prefix; for hex that is ASCII
/// case folding.
pub fn is_topic(topic: &str, expected: &str) -> bool {
    topic.eq_ignore_ascii_case(expected)
}

/// `data` minus its first two characters, in 64-character words each given
/// back a `0x`; the last word keeps what is left, however short. Like
/// ethereum-etl, the first two characters are dropped without looking at them.
pub fn split_to_words(data: Option<&str>) -> Vec<String> {
    data_words(data).map(|word| format!("0x{word}")).collect()
}

/// The words [`split_to_words`] gives, without their `0x` and without
/// copying: slices of `data`, cut at character (not byte) counts as
/// Python's slicing does.
pub fn data_words(data: Option<&str>) -> impl Iterator<Item = &str> {
    let data = data.unwrap_or("");
    let body = data.char_indices().nth(2).map_or("", |(at, _)| &data[at..]);
    let mut rest = body;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = rest.char_indices().nth(64).map_or(rest.len(), |(at, _)| at);
        let (word, tail) = rest.split_at(end);
        rest = tail;
        Some(word)
    })
}

/// How many words [`data_words`] gives, without walking them when the data
/// is ASCII (as a node's hex always is).
pub fn data_word_count(data: Option<&str>) -> usize {
    match data {
        Some(text) if text.is_ascii() => text.len().saturating_sub(2).div_ceil(64),
        other => data_words(other).count(),
    }
}

/// One of the parts ethereum-etl lines up from a Transfer log: a topic as
/// sent, or a data word (which ethereum-etl gives back a `0x`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part<'a> {
    Topic(&'a str),
    /// A data word without the `0x` ethereum-etl puts in front of it.
    Word(&'a str),
}

impl Part<'_> {
    /// [`word_to_address`] of the part as ethereum-etl spells it; a word
    /// only needs its `0x` back when it is too short to lose it.
    pub fn address(self) -> String {
        match self {
            Part::Topic(text) => word_to_address(text),
            Part::Word(word) if word.chars().nth(39).is_some() => word_to_address(word),
            Part::Word(word) => word_to_address(&format!("0x{word}")),
        }
    }

    /// [`hex_to_uint`] of the part as ethereum-etl spells it.
    pub fn uint(self, field: &'static str) -> Result<Uint, DecodeError> {
        match self {
            Part::Topic(text) => hex_to_uint(field, text),
            // Without a prefix of its own the word reads the same bare; the
            // error still shows it as ethereum-etl would.
            Part::Word(word) if !word.starts_with("0x") && !word.starts_with("0X") => {
                hex_to_uint(field, word)
                    .map_err(|_| DecodeError::field(field, &format!("0x{word}"), "a hex uint256"))
            }
            Part::Word(word) => hex_to_uint(field, &format!("0x{word}")),
        }
    }
}

/// ethereum-etl's `word_to_address`: its length test counts the whole part,
/// `0x` included, so a part of 38 or 39 hex digits is cut too (rule 11).
pub fn word_to_address(part: &str) -> String {
    match part.char_indices().rev().nth(39) {
        Some((start, _)) => format!("0x{}", part[start..].to_lowercase()),
        None => part.to_lowercase(),
    }
}

fn hex_digits(text: &str) -> Option<&str> {
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    let valid = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_hexdigit());
    valid.then_some(digits)
}

/// A hex word (or shorter part) as an exact uint256.
pub fn hex_to_uint(field: &'static str, part: &str) -> Result<Uint, DecodeError> {
    let invalid = || DecodeError::field(field, part, "a hex uint256");
    let digits = hex_digits(part).ok_or_else(invalid)?;
    let number = U256::from_str_radix(digits, 16).map_err(|_| invalid())?;
    Uint::parse_decimal(&number.to_string()).ok_or_else(invalid)
}

/// A JSON-RPC hex quantity below 2^63.
pub fn quantity(field: &'static str, text: &str) -> Result<i64, DecodeError> {
    hex_digits(text)
        .and_then(|digits| u64::from_str_radix(digits, 16).ok())
        .and_then(|n| i64::try_from(n).ok())
        .ok_or_else(|| DecodeError::field(field, text, "a hex quantity below 2^63"))
}

/// A 32-byte hash, lowercased.
pub fn hash(field: &'static str, text: &str) -> Result<String, DecodeError> {
    hash_ref(field, text).map(Cow::into_owned)
}

/// [`hash`], borrowing `text` when it is already lowercase (as nodes send it).
pub fn hash_ref<'a>(field: &'static str, text: &'a str) -> Result<Cow<'a, str>, DecodeError> {
    match hex_digits(text) {
        Some(digits) if digits.len() == 64 && text.len() == 66 => {
            Ok(if text.bytes().any(|b| b.is_ascii_uppercase()) {
                Cow::Owned(text.to_ascii_lowercase())
            } else {
                Cow::Borrowed(text)
            })
        }
        _ => Err(DecodeError::field(
            field,
            text,
            "0x followed by 64 hex digits",
        )),
    }
}

/// An address part of `log` checked to be hex: a real node only sends hex, so
/// anything else fails the day (as a malformed BigQuery row does) rather than
/// being loaded as ethereum-etl would.
pub fn checked_address(
    log: &LogRef<'_>,
    column: &'static str,
    value: &str,
) -> Result<String, DecodeError> {
    validate::address(0, column, Some(value)).map_err(|e: RowError| {
        let problem = e.to_string();
        DecodeError::Address {
            log_index: log.log_index,
            transaction_hash: log.transaction_hash.to_string(),
            problem: problem.trim_start_matches("source row 0: ").to_string(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_cut_into_words_with_a_short_last_one() {
        assert!(split_to_words(None).is_empty());
        assert!(split_to_words(Some("0x")).is_empty());
        let forty = format!("0x{}{}", "ab".repeat(32), "cd".repeat(8));
        assert_eq!(
            split_to_words(Some(&forty)),
            vec![
                format!("0x{}", "ab".repeat(32)),
                format!("0x{}", "cd".repeat(8))
            ]
        );
        assert_eq!(split_to_words(Some("0x1")), vec!["0x1".to_string()]);
    }

    #[test]
    fn quantities_and_hashes_are_checked() {
        assert_eq!(quantity("logIndex", "0x1f"), Ok(31));
        assert!(quantity("logIndex", "0x").is_err());
        assert!(quantity("logIndex", "0x8000000000000000").is_err());
        assert!(hash("transactionHash", "0xbeef").is_err());
        let upper = format!("0x{}", "AB".repeat(32));
        assert_eq!(hash("transactionHash", &upper), Ok(upper.to_lowercase()));
    }
}
