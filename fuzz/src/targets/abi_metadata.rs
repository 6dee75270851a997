//! The `eth_call` answer decoders (`rpc::abi`) and `resolve_metadata` over up
//! to seven arbitrary outcomes, in the format of
//! [`crate::outcomes_from_bytes`].
//!
//! Properties: no panic; a decoded string holds no NUL and re-encoded as an
//! ABI string decodes to itself; bytes32 text is the first word minus NULs
//! and is undecodable exactly when the answer is shorter than 32 bytes;
//! `uint8` is the last byte of a first word whose other bytes are zero; a
//! `uint256` is a canonical decimal ≤ 2^256 − 1 equal to the first word;
//! a hex `result` reads back to its bytes; the resolved metadata follows
//! the fallback order of rules 24–31 and holds no NUL and decimals ≤ 255.

use crate::{assert_canonical_uint, outcomes_from_bytes};
use ethpipe_core::Uint;
use ethpipe_sources::rpc::abi::{
    decode_bytes32_string, decode_string, decode_uint256, decode_uint8, resolve_metadata,
    Bytes32Result, CallOutcome, MetadataOutcomes, TokenMetadata,
};
use serde_json::Value;

/// One execution of the target.
pub fn run(input: &[u8]) {
    check_from_result(input);
    let outcomes = outcomes_from_bytes(input);
    for outcome in &outcomes {
        if let CallOutcome::Data(data) = outcome {
            check_decoders(data);
        }
    }
    let outcomes = MetadataOutcomes::from_slice(&outcomes);
    check_metadata(&outcomes, &resolve_metadata(&outcomes));
}

fn check_from_result(input: &[u8]) {
    let text = String::from_utf8_lossy(input).into_owned();
    let _ = CallOutcome::from_result(&Value::String(text));
    let hex: String = input.iter().map(|b| format!("{b:02x}")).collect();
    for prefix in ["0x", "0X", ""] {
        let result = Value::String(format!("{prefix}{hex}"));
        assert_eq!(
            CallOutcome::from_result(&result),
            CallOutcome::Data(input.to_vec())
        );
    }
}

/// `S(b)`: the standard ABI encoding of a `string`.
fn abi_string(bytes: &[u8]) -> Vec<u8> {
    let word = |n: usize| {
        let mut word = vec![0; 24];
        word.extend((n as u64).to_be_bytes());
        word
    };
    let mut out = word(32);
    out.extend(word(bytes.len()));
    out.extend(bytes);
    out.resize(64 + bytes.len().next_multiple_of(32), 0);
    out
}

fn check_decoders(data: &[u8]) {
    if let Some(text) = decode_string(data) {
        assert!(!text.contains('\0'), "{text:?}");
        assert!(data.len() >= 32 && text.len() <= data.len() - 32);
        assert_eq!(decode_string(&abi_string(text.as_bytes())), Some(text));
    }

    let first_word = data.get(..32);
    match decode_bytes32_string(data) {
        Bytes32Result::Undecodable => assert!(first_word.is_none()),
        Bytes32Result::InvalidUtf8 => {
            assert!(std::str::from_utf8(first_word.expect("32 bytes")).is_err());
        }
        Bytes32Result::Text(text) => {
            let word = std::str::from_utf8(first_word.expect("32 bytes")).expect("UTF-8");
            assert_eq!(text, word.replace('\0', ""));
        }
    }

    let uint256 = decode_uint256(data);
    assert_eq!(uint256.is_some(), first_word.is_some());
    if let (Some(value), Some(word)) = (&uint256, first_word) {
        assert_canonical_uint(value);
        if word[..24].iter().all(|b| *b == 0) {
            let low = u64::from_be_bytes(word[24..].try_into().expect("8 bytes"));
            assert_eq!(value.as_str(), low.to_string());
        }
    }

    let uint8 = decode_uint8(data);
    let expected = first_word.and_then(|w| w[..31].iter().all(|b| *b == 0).then_some(w[31]));
    assert_eq!(uint8, expected);
    if let Some(byte) = uint8 {
        assert_eq!(uint256, Some(Uint::from_u64(u64::from(byte))));
    }
}

fn answer(outcome: &CallOutcome) -> Option<&[u8]> {
    match outcome {
        CallOutcome::Data(data) => Some(data),
        CallOutcome::Failed => None,
    }
}

/// Rules 26–28 restated: the first call that decodes as a string, else the
/// first that is at least a word long as bytes32 text (NULL if not UTF-8).
fn expected_text(lower: &CallOutcome, upper: &CallOutcome) -> Option<String> {
    let answers = [answer(lower), answer(upper)];
    if let Some(text) = answers.iter().flatten().find_map(|d| decode_string(d)) {
        return Some(text);
    }
    for data in answers.iter().flatten() {
        match decode_bytes32_string(data) {
            Bytes32Result::Undecodable => continue,
            Bytes32Result::InvalidUtf8 => return None,
            Bytes32Result::Text(text) => return Some(text),
        }
    }
    None
}

fn check_metadata(outcomes: &MetadataOutcomes, metadata: &TokenMetadata) {
    let symbol = expected_text(&outcomes.symbol, &outcomes.symbol_upper);
    assert_eq!(metadata.symbol, symbol);
    let name = expected_text(&outcomes.name, &outcomes.name_upper);
    assert_eq!(metadata.name, name);
    for text in [&metadata.symbol, &metadata.name].into_iter().flatten() {
        assert!(!text.contains('\0'), "{text:?}");
    }

    let decimals = [&outcomes.decimals, &outcomes.decimals_upper]
        .into_iter()
        .find_map(|o| answer(o).and_then(decode_uint8));
    let decimals = decimals.map(|d| Uint::from_u64(u64::from(d)));
    assert_eq!(metadata.decimals, decimals);
    if let Some(decimals) = &metadata.decimals {
        assert!(decimals.as_str().parse::<u16>().is_ok_and(|d| d <= 255));
    }

    let supply = answer(&outcomes.total_supply).and_then(decode_uint256);
    assert_eq!(metadata.total_supply, supply);
}
