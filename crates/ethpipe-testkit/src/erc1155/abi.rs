//! The testkit's own reading of one ERC-1155 log, written apart from
//! ethpipe's decoder so that the two can check each other.
//!
//! The rules (each one a test below):
//!
//! 1. A log whose topic0 is neither [`TRANSFER_SINGLE_TOPIC`] nor
//!    [`TRANSFER_BATCH_TOPIC`] (or that has no topics) is not ERC-1155.
//! 2. An ERC-1155 log needs exactly 4 topics `[topic0, operator, from, to]`;
//!    any other count is skipped. Addresses are the low 20 bytes of a topic.
//! 3. `TransferSingle` data is exactly 64 bytes, `id ++ value`; any other
//!    length is skipped.
//! 4. `TransferBatch` data is `abi.encode(uint256[] ids, uint256[] values)`:
//!    two offsets, each pointing (within the data) at a length word followed
//!    by that many words, all inside the data; otherwise skipped. Bytes past
//!    the arrays are ignored, as ABI decoders do.
//! 5. A batch with as many ids as values gives one transfer per position
//!    (its `batch_index`); different counts are skipped; an empty batch gives
//!    no transfer and is not skipped (nothing was moved, nothing is lost).

use std::fmt;

use crate::chain::{word_to_address, word_to_decimal};

/// `keccak256("TransferSingle(address,address,address,uint256,uint256)")`.
pub const TRANSFER_SINGLE_TOPIC: &str =
    "0xc3d58168c5ae7397731d063d5bbf3d657854427343f4c083240f7aacaa2d0f62";
/// `keccak256("TransferBatch(address,address,address,uint256[],uint256[])")`.
pub const TRANSFER_BATCH_TOPIC: &str =
    "0x4a39dc06d4c0dbc64b70af90fd698a233a518aa5d07e595d983b8c0526c8f7fb";

/// What one log holds for the `erc1155_transfers` dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// Not a `TransferSingle`/`TransferBatch` log.
    NotErc1155,
    /// The ids moved, in batch order (one for `TransferSingle`).
    Moves(Vec<Move>),
    /// An ERC-1155 log that does not decode; it must be counted, not dropped.
    Skipped(SkipReason),
}

/// One id moved; a row once joined with its log and block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub operator: String,
    pub from_address: String,
    pub to_address: String,
    /// Decimal digits of the uint256 id.
    pub token_id: String,
    /// Decimal digits of the uint256 amount.
    pub value: String,
}

/// Why an ERC-1155 log was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// Not exactly 4 topics (rule 2).
    TopicCount(usize),
    /// `TransferSingle` data that is not 64 bytes (rule 3).
    SingleDataLength(usize),
    /// `TransferBatch` data whose arrays do not fit in it (rule 4).
    BatchOutOfBounds,
    /// `TransferBatch` with different numbers of ids and values (rule 5).
    BatchLengthsDiffer { ids: usize, values: usize },
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::TopicCount(n) => write!(f, "{n} topics instead of 4"),
            SkipReason::SingleDataLength(n) => {
                write!(f, "TransferSingle data of {n} bytes instead of 64")
            }
            SkipReason::BatchOutOfBounds => {
                write!(f, "TransferBatch arrays do not fit in the data")
            }
            SkipReason::BatchLengthsDiffer { ids, values } => {
                write!(f, "TransferBatch with {ids} ids but {values} values")
            }
        }
    }
}

/// Which ERC-1155 event a topic0 names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Single,
    Batch,
}

fn event(topic0: &[u8; 32]) -> Option<Event> {
    let text = crate::chain::to_hex(topic0);
    if text == TRANSFER_SINGLE_TOPIC {
        Some(Event::Single)
    } else if text == TRANSFER_BATCH_TOPIC {
        Some(Event::Batch)
    } else {
        None
    }
}

/// Applies the rules of this module to a log's topics and data.
pub fn decode(topics: &[[u8; 32]], data: &[u8]) -> Decoded {
    let Some(event) = topics.first().and_then(event) else {
        return Decoded::NotErc1155;
    };
    if topics.len() != 4 {
        return Decoded::Skipped(SkipReason::TopicCount(topics.len()));
    }
    let operator = word_to_address(&topics[1]);
    let from_address = word_to_address(&topics[2]);
    let to_address = word_to_address(&topics[3]);
    let pairs = match event {
        Event::Single => match single_pair(data) {
            Ok(pair) => vec![pair],
            Err(reason) => return Decoded::Skipped(reason),
        },
        Event::Batch => match batch_pairs(data) {
            Ok(pairs) => pairs,
            Err(reason) => return Decoded::Skipped(reason),
        },
    };
    let moves = pairs
        .into_iter()
        .map(|(id, value)| Move {
            operator: operator.clone(),
            from_address: from_address.clone(),
            to_address: to_address.clone(),
            token_id: word_to_decimal(id),
            value: word_to_decimal(value),
        })
        .collect();
    Decoded::Moves(moves)
}

type WordPair<'a> = (&'a [u8], &'a [u8]);

fn single_pair(data: &[u8]) -> Result<WordPair<'_>, SkipReason> {
    if data.len() != 64 {
        return Err(SkipReason::SingleDataLength(data.len()));
    }
    Ok((&data[..32], &data[32..]))
}

fn batch_pairs(data: &[u8]) -> Result<Vec<WordPair<'_>>, SkipReason> {
    let ids = array_at(data, 0).ok_or(SkipReason::BatchOutOfBounds)?;
    let values = array_at(data, 32).ok_or(SkipReason::BatchOutOfBounds)?;
    if ids.len() != values.len() {
        return Err(SkipReason::BatchLengthsDiffer {
            ids: ids.len(),
            values: values.len(),
        });
    }
    Ok(ids.into_iter().zip(values).collect())
}

/// The words of the `uint256[]` whose offset is the word at `head`, or `None`
/// when any part of it lies outside `data`.
fn array_at(data: &[u8], head: usize) -> Option<Vec<&[u8]>> {
    let offset = small_number(data.get(head..head + 32)?)?;
    let length = small_number(data.get(offset..offset.checked_add(32)?)?)?;
    let start = offset + 32;
    let end = start.checked_add(length.checked_mul(32)?)?;
    Some(data.get(start..end)?.chunks(32).collect())
}

/// A 32-byte big-endian word as a `usize`, `None` when it does not fit (an
/// offset or length that large points outside any real log anyway).
fn small_number(word: &[u8]) -> Option<usize> {
    let (high, low) = word.split_at(24);
    if high.iter().any(|&b| b != 0) {
        return None;
    }
    usize::try_from(u64::from_be_bytes(low.try_into().ok()?)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{encode_args, event_topic, from_hex, Arg};

    fn topic(text: &str) -> [u8; 32] {
        from_hex(text).unwrap().try_into().unwrap()
    }

    fn address_topic(byte: u8) -> [u8; 32] {
        let mut word = [0u8; 32];
        word[12..].fill(byte);
        word
    }

    fn topics(event: &str, count: usize) -> Vec<[u8; 32]> {
        let mut out = vec![topic(event)];
        out.extend((1..count as u8).map(address_topic));
        out
    }

    fn address(byte: u8) -> String {
        crate::chain::to_hex(&[byte; 20])
    }

    #[test]
    fn topics_are_the_event_signatures() {
        assert_eq!(
            event_topic("TransferSingle(address,address,address,uint256,uint256)"),
            TRANSFER_SINGLE_TOPIC
        );
        assert_eq!(
            event_topic("TransferBatch(address,address,address,uint256[],uint256[])"),
            TRANSFER_BATCH_TOPIC
        );
    }

    #[test]
    fn rule_1_other_topics_are_not_erc1155() {
        let data = encode_args(&[Arg::uint(1)]);
        let transfer = topics(crate::chain::TRANSFER_TOPIC, 3);
        assert_eq!(decode(&transfer, &data), Decoded::NotErc1155);
        assert_eq!(decode(&[], &data), Decoded::NotErc1155);
    }

    #[test]
    fn rule_2_needs_four_topics() {
        let data = encode_args(&[Arg::uint(1), Arg::uint(2)]);
        for count in [1, 2, 3] {
            assert_eq!(
                decode(&topics(TRANSFER_SINGLE_TOPIC, count), &data),
                Decoded::Skipped(SkipReason::TopicCount(count))
            );
        }
        let batch = encode_args(&[Arg::uints(&[1]), Arg::uints(&[1])]);
        assert_eq!(
            decode(&topics(TRANSFER_BATCH_TOPIC, 3), &batch),
            Decoded::Skipped(SkipReason::TopicCount(3))
        );
    }

    #[test]
    fn rule_3_single_is_id_and_value() {
        let data = encode_args(&[Arg::uint(7), Arg::max_uint()]);
        let Decoded::Moves(moves) = decode(&topics(TRANSFER_SINGLE_TOPIC, 4), &data) else {
            panic!("a TransferSingle decodes");
        };
        assert_eq!(
            moves,
            vec![Move {
                operator: address(1),
                from_address: address(2),
                to_address: address(3),
                token_id: "7".into(),
                value: crate::fixtures::UINT256_MAX.into(),
            }]
        );
        for length in [0, 32, 63, 65, 96] {
            assert_eq!(
                decode(&topics(TRANSFER_SINGLE_TOPIC, 4), &vec![0; length]),
                Decoded::Skipped(SkipReason::SingleDataLength(length)),
                "{length} bytes"
            );
        }
    }

    #[test]
    fn rule_4_batch_arrays_must_fit() {
        let four = topics(TRANSFER_BATCH_TOPIC, 4);
        let data = encode_args(&[Arg::uints(&[1, 2]), Arg::uints(&[3, 4])]);
        let mut longer = data.clone();
        longer.extend([0u8; 32]);
        let Decoded::Moves(moves) = decode(&four, &longer) else {
            panic!("trailing bytes are ignored");
        };
        assert_eq!(moves.len(), 2);
        assert_eq!(
            (moves[1].token_id.as_str(), moves[1].value.as_str()),
            ("2", "4")
        );

        let truncated = &data[..data.len() - 32];
        let mut huge_offset = data.clone();
        huge_offset[..32].copy_from_slice(&[0xff; 32]);
        let mut past_end = data.clone();
        past_end[31] = 0xf0;
        let mut huge_length = data.clone();
        huge_length[64..96].copy_from_slice(&[0xff; 32]);
        for bad in [
            truncated,
            &data[..40],
            &[],
            &huge_offset,
            &past_end,
            &huge_length,
        ] {
            assert_eq!(
                decode(&four, bad),
                Decoded::Skipped(SkipReason::BatchOutOfBounds)
            );
        }
    }

    #[test]
    fn rule_5_ids_and_values_pair_up() {
        let four = topics(TRANSFER_BATCH_TOPIC, 4);
        let unequal = encode_args(&[Arg::uints(&[1, 2]), Arg::uints(&[1])]);
        assert_eq!(
            decode(&four, &unequal),
            Decoded::Skipped(SkipReason::BatchLengthsDiffer { ids: 2, values: 1 })
        );
        let empty = encode_args(&[Arg::uints(&[]), Arg::uints(&[])]);
        assert_eq!(decode(&four, &empty), Decoded::Moves(Vec::new()));
    }
}
