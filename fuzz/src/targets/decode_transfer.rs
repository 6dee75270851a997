//! The log → transfer decoder (`rpc::decode`) on arbitrary logs, in the text
//! format of [`crate::rpc_log_from_text`].
//!
//! Properties: no panic; `split_to_words` cuts the data losslessly into
//! 64-character words; a log is `NotTransfer` exactly when topic0 is not the
//! Transfer topic and `Skipped` exactly when it does not have 4 parts; an
//! error names the field and value that caused it; a transfer has a lowercase
//! `0x` + 64 hex hash, the node's quantities, addresses cut from the last 40
//! characters of their words (`0x` + 40 lowercase hex for a well-formed word)
//! and a value that reads back, in hex, as the hex it came from.

use crate::{assert_canonical_uint, is_lower_hex, rpc_log_from_text};
use ethpipe_core::validate;
use ethpipe_sources::rpc::decode::{decode_transfer, split_to_words, DecodeError, Decoded, RpcLog};
use ethpipe_sources::rpc::decode::{TransferParts, TRANSFER_TOPIC};
use ruint::aliases::U256;

/// One execution of the target.
pub fn run(input: &[u8]) {
    let log = rpc_log_from_text(&String::from_utf8_lossy(input));
    check_split(log.data.as_deref());
    check_decode(&log);
}

fn check_split(data: Option<&str>) {
    let words = split_to_words(data);
    let body: String = data.unwrap_or_default().chars().skip(2).collect();
    assert_eq!(words.len(), body.chars().count().div_ceil(64), "{data:?}");
    let mut joined = String::new();
    for (i, word) in words.iter().enumerate() {
        let rest = word.strip_prefix("0x").expect("every word starts with 0x");
        let length = rest.chars().count();
        if i + 1 < words.len() {
            assert_eq!(length, 64, "{words:?}");
        } else {
            assert!((1..=64).contains(&length), "{words:?}");
        }
        joined.push_str(rest);
    }
    assert_eq!(joined, body);
}

fn hex_digits(text: &str) -> &str {
    text.strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text)
}

fn check_decode(log: &RpcLog) {
    let mut parts = log.topics.clone();
    parts.extend(split_to_words(log.data.as_deref()));
    let is_transfer = log
        .topics
        .first()
        .is_some_and(|t| t.eq_ignore_ascii_case(TRANSFER_TOPIC));
    match decode_transfer(log) {
        Ok(Decoded::NotTransfer) => assert!(!is_transfer, "{log:?}"),
        Ok(Decoded::Skipped(warning)) => {
            assert!(is_transfer && parts.len() != 4, "{log:?}");
            let hash = log.transaction_hash.to_ascii_lowercase();
            assert!(warning.contains(&hash), "{warning}");
        }
        Err(error) => {
            assert!(is_transfer, "{log:?}");
            // Addresses are taken unchecked here (`check_addresses` is the
            // separate step), so every error is a field.
            let DecodeError::Field { field, value, .. } = &error else {
                panic!("decode_transfer checked an address: {error}");
            };
            let culprit = match *field {
                "transactionHash" => &log.transaction_hash,
                "logIndex" => &log.log_index,
                "blockNumber" => &log.block_number,
                "value" => &parts[3],
                other => panic!("unknown field {other}"),
            };
            assert_eq!(value, culprit);
            assert!(error.to_string().contains(field));
        }
        Ok(Decoded::Transfer(transfer)) => {
            assert!(is_transfer && parts.len() == 4, "{log:?}");
            check_transfer(log, &parts, &transfer);
        }
    }
}

fn check_transfer(log: &RpcLog, parts: &[String], transfer: &TransferParts) {
    assert_eq!(transfer.token_address, log.address.to_lowercase());
    assert!(is_lower_hex(&transfer.transaction_hash, 64), "{transfer:?}");
    assert!(transfer
        .transaction_hash
        .eq_ignore_ascii_case(&log.transaction_hash));
    for (decoded, quantity) in [
        (transfer.log_index, &log.log_index),
        (transfer.block_number, &log.block_number),
    ] {
        assert!(decoded >= 0);
        assert_eq!(i64::from_str_radix(hex_digits(quantity), 16), Ok(decoded));
    }

    for (address, word) in [
        (&transfer.from_address, &parts[1]),
        (&transfer.to_address, &parts[2]),
    ] {
        let chars: Vec<char> = word.chars().collect();
        let expected = match chars.len().checked_sub(40) {
            Some(start) => format!("0x{}", chars[start..].iter().collect::<String>()),
            None => word.clone(),
        };
        assert_eq!(address, &expected.to_lowercase(), "{word}");
        if is_lower_hex(&word.to_ascii_lowercase(), 64) {
            assert!(is_lower_hex(address, 40), "{word} gave {address}");
            let checked = validate::address(1, "from_address", Some(address));
            assert_eq!(checked.ok().as_ref(), Some(address));
        }
    }

    assert_canonical_uint(&transfer.value);
    let value = U256::from_str_radix(transfer.value.as_str(), 10).expect("a uint256");
    let source = hex_digits(&parts[3]).trim_start_matches('0').to_lowercase();
    let source = if source.is_empty() { "0" } else { &source };
    assert_eq!(format!("{value:x}"), source, "{}", parts[3]);
    let checked = validate::strict_uint(1, "value", Some(transfer.value.as_str()));
    assert_eq!(checked.ok().flatten().as_ref(), Some(&transfer.value));
}
