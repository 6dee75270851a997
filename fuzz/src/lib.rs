//! What the fuzz targets in `fuzz_targets/` share: how their inputs are read
//! and the properties every decoded row must have (docs/reliability.md,
//! "Fuzzing"). Each check panics, which libFuzzer reports as a crash.
//! [`targets`] holds each target's body; `fuzz_targets/` only wraps them.

use chrono::{DateTime, Utc};
use ethpipe_core::datasets::erc1155_transfers::{TRANSFER_BATCH_TOPIC, TRANSFER_SINGLE_TOPIC};
use ethpipe_core::datasets::{token_transfers, tokens};
use ethpipe_core::evm::Log;
use ethpipe_core::validate::Uint;
use ethpipe_core::{Token, TokenTransfer};
use ethpipe_sources::rpc::abi::CallOutcome;
use ethpipe_sources::rpc::decode::{RpcLog, TRANSFER_TOPIC};

pub mod targets;

/// 2^256 − 1 in decimal.
pub const UINT256_MAX: &str =
    "115792089237316195423570985008687907853269984665640564039457584007913129639935";

/// How a cell line spells SQL NULL (as PostgreSQL's text COPY does).
pub const NULL_CELL: &str = "\\N";

/// `0x` followed by exactly `digits` lowercase hex digits.
pub fn is_lower_hex(text: &str, digits: usize) -> bool {
    text.len() == 2 + digits
        && text.starts_with("0x")
        && text[2..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A `Uint` is its canonical decimal (no sign, no leading zero) and at most
/// 2^256 − 1, so it parses back to itself.
pub fn assert_canonical_uint(value: &Uint) {
    let text = value.as_str();
    assert!(
        !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()),
        "{text}"
    );
    assert!(
        text == "0" || !text.starts_with('0'),
        "leading zero: {text}"
    );
    let too_big =
        text.len() > UINT256_MAX.len() || (text.len() == UINT256_MAX.len() && text > UINT256_MAX);
    assert!(!too_big, "above 2^256-1: {text}");
    assert_eq!(Uint::parse_decimal(text).as_ref(), Some(value));
}

/// A log in the `decode_transfer` target's text format, one field a line:
///
/// ```text
/// address
/// topic0,topic1,…     (empty: no topics; `T` stands for the Transfer topic)
/// data                (`\N` or a missing line: no data)
/// blockNumber
/// transactionHash
/// logIndex
/// ```
pub fn rpc_log_from_text(text: &str) -> RpcLog {
    rpc_log_with_aliases(text, &[("T", TRANSFER_TOPIC)])
}

/// The block every `erc1155_logs` log is joined to (rule 15).
pub const BLOCK_HASH: &str = "0xcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd";

/// How many logs one `erc1155_logs` input may hold: enough to mix shapes,
/// few enough to keep an execution fast.
pub const MAX_LOGS: usize = 16;

/// The logs of an `erc1155_logs` input: logs in the [`rpc_log_from_text`]
/// format separated by a line `--`, where topic0 may also be `S`
/// (TransferSingle) or `B` (TransferBatch). Each is checked and joined to
/// its block as the JSON-RPC source does (`RpcLog::into_log`); a log whose
/// hash or quantities a source would refuse is left out, as no decoder ever
/// sees it.
pub fn logs_from_text(text: &str) -> Vec<Log> {
    let aliases = [
        ("T", TRANSFER_TOPIC),
        ("S", TRANSFER_SINGLE_TOPIC),
        ("B", TRANSFER_BATCH_TOPIC),
    ];
    text.split("\n--\n")
        .take(MAX_LOGS)
        .filter_map(|block| {
            rpc_log_with_aliases(block, &aliases)
                .into_log(DateTime::<Utc>::UNIX_EPOCH, BLOCK_HASH)
                .ok()
        })
        .collect()
}

fn rpc_log_with_aliases(text: &str, aliases: &[(&str, &str)]) -> RpcLog {
    let mut lines = text.split('\n');
    let mut next = || lines.next();
    let address = next().unwrap_or_default().to_string();
    let topics = match next() {
        None | Some("") => Vec::new(),
        Some(line) => line
            .split(',')
            .map(|topic| {
                let alias = aliases.iter().find(|(short, _)| *short == topic);
                alias.map_or(topic, |(_, full)| *full).to_string()
            })
            .collect(),
    };
    let data = next().filter(|d| *d != NULL_CELL).map(str::to_string);
    RpcLog {
        address,
        topics,
        data,
        block_number: next().unwrap_or_default().to_string(),
        // The text format has no block hash: nothing to check it against.
        block_hash: None,
        transaction_hash: next().unwrap_or_default().to_string(),
        log_index: next().unwrap_or_default().to_string(),
    }
}

/// Up to seven `eth_call` outcomes in `METADATA_SELECTORS` order: a `0x00`
/// byte is a failed call; any other byte is followed by a big-endian u16
/// length and that many bytes of answer (fewer if the input ends first).
/// Outcomes the input does not reach are failed calls.
pub fn outcomes_from_bytes(mut input: &[u8]) -> Vec<CallOutcome> {
    let mut outcomes = Vec::new();
    while outcomes.len() < 7 {
        let Some((&tag, rest)) = input.split_first() else {
            break;
        };
        input = rest;
        if tag == 0 {
            outcomes.push(CallOutcome::Failed);
            continue;
        }
        let length = match input {
            [high, low, rest @ ..] => {
                input = rest;
                usize::from(u16::from_be_bytes([*high, *low]))
            }
            _ => std::mem::take(&mut input).len(),
        };
        let (answer, rest) = input.split_at(length.min(input.len()));
        input = rest;
        outcomes.push(CallOutcome::Data(answer.to_vec()));
    }
    outcomes
}

/// Cells for `token_transfers::from_bigquery` / `tokens::from_bigquery` in the `bigquery_row` target's
/// text format: one cell a line, `\N` for NULL; missing cells are NULL and
/// extra lines are ignored.
pub fn cells_from_lines<'a>(
    lines: impl Iterator<Item = &'a str>,
    count: usize,
) -> Vec<Option<&'a str>> {
    let mut cells: Vec<Option<&str>> = lines
        .take(count)
        .map(|line| (line != NULL_CELL).then_some(line))
        .collect();
    cells.resize(count, None);
    cells
}

/// A TIMESTAMP the way BigQuery's legacy JSON writes it, float seconds in
/// scientific notation: `1683029999000000` µs is `1.683029999000000E9`.
pub fn legacy_timestamp(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let magnitude = micros.unsigned_abs();
    let seconds = (magnitude / 1_000_000).to_string();
    let fraction = magnitude % 1_000_000;
    format!(
        "{sign}{}.{}{fraction:06}E{}",
        &seconds[..1],
        &seconds[1..],
        seconds.len() - 1
    )
}

fn borrowed(cells: &[Option<String>]) -> Vec<Option<&str>> {
    cells.iter().map(Option::as_deref).collect()
}

/// A parsed `token_transfers` row is well formed, and written back as
/// BigQuery cells (int64 and legacy timestamps alike) it parses to itself:
/// it passes the same validation again.
pub fn check_transfer_row(row: &TokenTransfer) {
    assert!(is_lower_hex(&row.token_address, 40), "{row:?}");
    for address in [&row.from_address, &row.to_address].into_iter().flatten() {
        assert!(is_lower_hex(address, 40), "{row:?}");
    }
    assert!(is_lower_hex(&row.transaction_hash, 64), "{row:?}");
    assert!(is_lower_hex(&row.block_hash, 64), "{row:?}");
    assert!(row.log_index >= 0 && row.block_number >= 0, "{row:?}");
    if let Some(value) = &row.value {
        assert_canonical_uint(value);
    }
    let micros = row.block_timestamp.timestamp_micros();
    for timestamp in [micros.to_string(), legacy_timestamp(micros)] {
        let cells = vec![
            Some(row.token_address.clone()),
            row.from_address.clone(),
            row.to_address.clone(),
            row.value.as_ref().map(Uint::to_string),
            Some(row.transaction_hash.clone()),
            Some(row.log_index.to_string()),
            Some(timestamp),
            Some(row.block_number.to_string()),
            Some(row.block_hash.clone()),
        ];
        let again = token_transfers::from_bigquery(&borrowed(&cells), 1);
        assert_eq!(again.as_ref().ok(), Some(row), "{cells:?} gave {again:?}");
    }
}

/// Like [`check_transfer_row`] for a `tokens` row; its texts hold no NUL.
pub fn check_token_row(row: &Token) {
    assert!(is_lower_hex(&row.address, 40), "{row:?}");
    assert!(is_lower_hex(&row.block_hash, 64), "{row:?}");
    assert!(row.block_number >= 0, "{row:?}");
    for text in [&row.symbol, &row.name].into_iter().flatten() {
        assert!(!text.contains('\0'), "{row:?}");
    }
    for number in [&row.decimals, &row.total_supply].into_iter().flatten() {
        assert_canonical_uint(number);
    }
    assert!(!row.found_in_transfers);
    let micros = row.block_timestamp.timestamp_micros();
    for timestamp in [micros.to_string(), legacy_timestamp(micros)] {
        let cells = vec![
            Some(row.address.clone()),
            row.symbol.clone(),
            row.name.clone(),
            row.decimals.as_ref().map(Uint::to_string),
            row.total_supply.as_ref().map(Uint::to_string),
            Some(timestamp),
            Some(row.block_number.to_string()),
            Some(row.block_hash.clone()),
        ];
        let again = tokens::from_bigquery(&borrowed(&cells), 1);
        assert_eq!(again.as_ref().ok(), Some(row), "{cells:?} gave {again:?}");
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::targets;

    /// Feeds every committed seed of `target` through its `run`, as one
    /// `cargo fuzz run` pass over the seed corpus would.
    fn replay(target: &str, run: fn(&[u8])) {
        let folder = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("corpus")
            .join(target);
        let mut seeds: Vec<_> = std::fs::read_dir(&folder)
            .unwrap_or_else(|e| panic!("{}: {e}", folder.display()))
            .map(|entry| entry.expect("a corpus entry").path())
            .collect();
        seeds.sort();
        assert!(!seeds.is_empty(), "no seeds in {}", folder.display());
        for seed in seeds {
            let input = std::fs::read(&seed).expect("a readable seed");
            let outcome = std::panic::catch_unwind(|| run(&input));
            assert!(outcome.is_ok(), "{target}: seed {} fails", seed.display());
        }
    }

    #[test]
    fn decode_transfer_seeds() {
        replay("decode_transfer", targets::decode_transfer::run);
    }

    #[test]
    fn abi_metadata_seeds() {
        replay("abi_metadata", targets::abi_metadata::run);
    }

    #[test]
    fn bigquery_row_seeds() {
        replay("bigquery_row", targets::bigquery_row::run);
    }

    #[test]
    fn bigquery_page_seeds() {
        replay("bigquery_page", targets::bigquery_page::run);
    }

    #[test]
    fn erc1155_logs_seeds() {
        replay("erc1155_logs", targets::erc1155_logs::run);
    }

    /// The ERC-1155 seeds reach every outcome, so the replay is not vacuous.
    #[test]
    fn erc1155_seeds_give_singles_batches_and_skips() {
        use ethpipe_core::datasets::{Erc1155Transfer, ERC1155_TRANSFERS};
        let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/erc1155_logs");
        let (mut batch_rows, mut skipped, mut failed) = (0, 0, 0);
        for entry in std::fs::read_dir(folder).expect("the seed folder") {
            let input = std::fs::read(entry.expect("a seed").path()).expect("a readable seed");
            let logs = super::logs_from_text(&String::from_utf8_lossy(&input));
            let views: Vec<_> = logs.iter().map(super::Log::view).collect();
            match ERC1155_TRANSFERS.decode_logs(&views) {
                Ok(decoded) => {
                    let rows = decoded.rows.as_slice::<Erc1155Transfer>().expect("rows");
                    batch_rows += rows.iter().filter(|r| r.batch_index > 0).count();
                    skipped += decoded.skipped.len();
                }
                Err(_) => failed += 1,
            }
        }
        assert!(batch_rows >= 50, "{batch_rows}");
        assert!(skipped >= 8, "{skipped}");
        assert!(failed >= 1, "{failed}");
    }
}
