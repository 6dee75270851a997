//! The ERC-1155 decoder (`erc1155_transfers::decode`, and the dataset's
//! `decode_logs` over the same logs) on arbitrary logs, in the format of
//! [`crate::logs_from_text`].
//!
//! Properties: no panic; a log either yields rows or is skipped with a
//! reason, never both, and a log that fails the day adds no rows; a log
//! without an ERC-1155 topic yields nothing; a `TransferSingle` yields one
//! row with batch index 0 whose id and value read back, in hex, as its two
//! data words; a `TransferBatch`'s rows have batch indexes 0..n in order;
//! every row has lowercase `0x` addresses and hashes, canonical uint256s, its
//! log's position and block, and writes the dataset's columns; the dataset
//! decodes the logs together into the same rows and one warning per skipped
//! log, naming its transaction and reason, or fails with the first failure.

use ethpipe_core::dataset::ColumnCheck;
use ethpipe_core::datasets::erc1155_transfers::{
    self, Erc1155Transfer, TRANSFER_BATCH_TOPIC, TRANSFER_SINGLE_TOPIC,
};
use ethpipe_core::datasets::ERC1155_TRANSFERS;
use ethpipe_core::evm::{self, DecodeError, Log};
use ruint::aliases::U256;

use crate::{assert_canonical_uint, is_lower_hex, logs_from_text};

/// What one log became on its own.
enum Fate {
    Rows(Vec<Erc1155Transfer>),
    Skipped(String),
    Failed(DecodeError),
}

/// One execution of the target.
pub fn run(input: &[u8]) {
    let logs = logs_from_text(&String::from_utf8_lossy(input));
    let fates: Vec<Fate> = logs.iter().map(check_one).collect();
    check_together(&logs, &fates);
}

fn check_one(log: &Log) -> Fate {
    let mut rows = Vec::new();
    let fate = match erc1155_transfers::decode(&log.view(), &mut rows) {
        Ok(Ok(())) => Fate::Rows(rows.clone()),
        Ok(Err(reason)) => {
            assert!(!reason.is_empty(), "{log:?}");
            Fate::Skipped(reason)
        }
        Err(error) => Fate::Failed(error),
    };
    let topic = log.topics.first();
    let single = topic.is_some_and(|t| evm::is_topic(t, TRANSFER_SINGLE_TOPIC));
    let batch = topic.is_some_and(|t| evm::is_topic(t, TRANSFER_BATCH_TOPIC));
    match &fate {
        Fate::Rows(rows) if single => {
            assert_eq!(rows.len(), 1, "{log:?}");
            check_single_words(log, &rows[0]);
        }
        Fate::Rows(rows) if batch => {
            let indexes: Vec<i64> = rows.iter().map(|r| r.batch_index).collect();
            assert_eq!(indexes, (0..rows.len() as i64).collect::<Vec<_>>());
        }
        Fate::Rows(rows) => assert!(rows.is_empty(), "not ERC-1155, yet {rows:?}"),
        // Skipped or failed: nothing was appended for it.
        Fate::Skipped(_) | Fate::Failed(_) => {
            assert!(single || batch, "{log:?}");
            assert!(rows.is_empty(), "{rows:?}");
        }
    }
    if let Fate::Rows(rows) = &fate {
        rows.iter().for_each(|row| check_row(log, row));
    }
    fate
}

/// A single's id and value are its two data words.
fn check_single_words(log: &Log, row: &Erc1155Transfer) {
    let words = evm::split_to_words(log.data.as_deref());
    for (number, word) in [(&row.token_id, &words[0]), (&row.value, &words[1])] {
        let value = U256::from_str_radix(number.as_str(), 10).expect("a uint256");
        let digits = word[2..].trim_start_matches('0').to_lowercase();
        let digits = if digits.is_empty() { "0" } else { &digits };
        assert_eq!(format!("{value:x}"), digits, "{word}");
    }
}

fn check_row(log: &Log, row: &Erc1155Transfer) {
    for address in [
        &row.token_address,
        &row.operator,
        &row.from_address,
        &row.to_address,
    ] {
        assert!(is_lower_hex(address, 40), "{row:?}");
    }
    assert_eq!(row.token_address, log.address.to_lowercase());
    assert!(is_lower_hex(&row.transaction_hash, 64), "{row:?}");
    assert!(is_lower_hex(&row.block_hash, 64), "{row:?}");
    assert_canonical_uint(&row.token_id);
    assert_canonical_uint(&row.value);
    assert!(row.batch_index >= 0, "{row:?}");
    assert_eq!(
        (
            row.transaction_hash.as_str(),
            row.log_index,
            row.block_number
        ),
        (
            log.transaction_hash.as_str(),
            log.log_index,
            log.block_number
        )
    );
    assert_eq!(row.block_timestamp, log.block_timestamp);
    assert_eq!(ColumnCheck::check(ERC1155_TRANSFERS.columns(), row), Ok(()));
}

/// The dataset over all the logs agrees with the logs one by one.
fn check_together(logs: &[Log], fates: &[Fate]) {
    let views: Vec<_> = logs.iter().map(Log::view).collect();
    let together = ERC1155_TRANSFERS.decode_logs(&views);
    let first_failure = fates.iter().find_map(|fate| match fate {
        Fate::Failed(error) => Some(error),
        _ => None,
    });
    let decoded = match (together, first_failure) {
        (Err(error), Some(first)) => return assert_eq!(&error, first),
        (Ok(decoded), None) => decoded,
        (together, first) => panic!("together {together:?}, one by one {first:?}"),
    };
    assert_eq!(decoded.rows.pipeline(), ERC1155_TRANSFERS);
    let rows: Vec<&Erc1155Transfer> = fates
        .iter()
        .flat_map(|fate| match fate {
            Fate::Rows(rows) => rows.iter().collect(),
            _ => Vec::new(),
        })
        .collect();
    let together: Vec<&Erc1155Transfer> = decoded
        .rows
        .as_slice::<Erc1155Transfer>()
        .expect("ERC-1155 rows")
        .iter()
        .collect();
    assert_eq!(together, rows);
    let skipped: Vec<(&Log, &String)> = logs
        .iter()
        .zip(fates)
        .filter_map(|(log, fate)| match fate {
            Fate::Skipped(reason) => Some((log, reason)),
            _ => None,
        })
        .collect();
    assert_eq!(
        decoded.skipped.len(),
        skipped.len(),
        "{:?}",
        decoded.skipped
    );
    for (warning, (log, reason)) in decoded.skipped.iter().zip(skipped) {
        assert!(warning.contains(&log.transaction_hash), "{warning}");
        assert!(warning.ends_with(reason.as_str()), "{warning}");
    }
}
