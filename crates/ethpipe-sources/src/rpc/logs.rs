//! Log datasets from a node (`token_transfers`, `erc1155_transfers`, any
//! dataset whose [`RpcExtraction`] is `Logs`): `eth_getLogs` on the dataset's
//! topics over a day's blocks, in chunks that adapt to what the node will
//! answer, joined with block headers and decoded by the dataset's own rules.
//! A token filter is the request's `address` list, split into requests of
//! at most `max_addresses` addresses when it is longer.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};

use ethpipe_core::dataset::{DecodedLogs, RpcExtraction};
use ethpipe_core::evm::{DecodeError, LogRef};
use ethpipe_core::{Pipeline, Rows, SourceError, SourceEvent, SourceEventSender, TokenFilter};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde_json::{json, Value};

use super::blocks::{Blocks, Header};
use super::budget::{Cost, InFlightBudget, Reservation};
use super::client::{parse_answer, quantity, NodeError, RawAnswer, RpcClient};
use super::decode::RawLog;

/// Rows per batch sent to the sink.
const BATCH_ROWS: usize = 10_000;
/// Individual warnings per run for skipped logs; the rest are only counted.
const WARNINGS_SHOWN: u64 = 50;
/// Answer bytes per block assumed before the node has answered once:
/// about a busy mainnet block's Transfer logs (≈ 200 logs of ≈ 650 bytes),
/// so the first ranges are neither tiny nor far past the budget.
const PRIOR_BYTES_PER_BLOCK: u64 = 128 * 1024;
/// The least a range reserves: an answer with a few logs.
const MIN_RESERVATION: u64 = 64 * 1024;
/// The least a request aims at, however many run at once: smaller answers
/// only add round trips.
const MIN_TARGET: u64 = 64 * 1024;
/// One block's logs cannot be split; past this, its answer is refused
/// rather than read (a mainnet block holds well under 10 MB of logs).
const MAX_BLOCK_ANSWER: u64 = 256 * 1024 * 1024;

/// Block-range sizing for `eth_getLogs`: starts modest, halves when the node
/// refuses a range, doubles back after each answered one; and, from the
/// answers' sizes, how many bytes a block's logs take, so a range is cut to
/// the answer size the in-flight budget allows.
pub struct ChunkSizer {
    current: AtomicU64,
    max: u64,
    bytes_per_block: AtomicU64,
}

impl ChunkSizer {
    pub fn new(initial: u64, max: u64) -> ChunkSizer {
        ChunkSizer {
            current: AtomicU64::new(initial.clamp(1, max.max(1))),
            max: max.max(1),
            bytes_per_block: AtomicU64::new(PRIOR_BYTES_PER_BLOCK),
        }
    }

    fn get(&self) -> u64 {
        self.current.load(Ordering::Relaxed)
    }

    fn shrink_below(&self, refused: u64) {
        self.current
            .fetch_min((refused / 2).max(1), Ordering::Relaxed);
    }

    fn grow(&self) {
        let max = self.max;
        let _ = self
            .current
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                Some(c.saturating_mul(2).min(max))
            });
    }

    /// Blocks whose answer should come to about `target` bytes.
    fn blocks_for(&self, target: u64) -> u64 {
        (target / self.bytes_per_block.load(Ordering::Relaxed).max(1)).max(1)
    }

    /// The expected answer size of `blocks` blocks.
    fn expected_bytes(&self, blocks: u64) -> u64 {
        blocks.saturating_mul(self.bytes_per_block.load(Ordering::Relaxed))
    }

    /// An answer of `bytes` for `blocks` blocks: a denser range counts at
    /// once, a sparser one halves the estimate at most, so one quiet range
    /// does not size the next busy one.
    fn saw(&self, bytes: u64, blocks: u64) {
        let density = bytes.div_ceil(blocks.max(1)).max(1);
        let _ = self
            .bytes_per_block
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(density.max(old / 2))
            });
    }

    /// An answer of more than `bytes` for `blocks` blocks (not read whole).
    fn saw_at_least(&self, bytes: u64, blocks: u64) {
        self.bytes_per_block
            .fetch_max(bytes.div_ceil(blocks.max(1)), Ordering::Relaxed);
    }
}

pub struct LogScan<'a> {
    pub client: &'a RpcClient,
    pub blocks: &'a Blocks,
    pub sizer: &'a ChunkSizer,
    /// Blocks and answer bytes all scans of the process may hold at once.
    pub budget: &'a InFlightBudget,
    pub concurrency: usize,
    /// A dataset extracted from logs.
    pub pipeline: Pipeline,
    /// Only these contracts' logs (`None`: every contract's).
    pub tokens: Option<&'a TokenFilter>,
    /// Addresses per `eth_getLogs` request; a longer filter is split.
    pub max_addresses: usize,
}

/// Addresses per `eth_getLogs` request when the user sets no limit: well
/// under what public providers accept, few enough requests for any filter
/// a person writes by hand.
pub const DEFAULT_MAX_ADDRESSES: usize = 1_000;

/// Totals of a scan.
#[derive(Debug, Default, Clone, Copy)]
pub struct ScanTotals {
    /// Rows the logs decoded into.
    pub rows: u64,
    pub skipped: u64,
}

/// The rows of one range of blocks, with the budget they hold until they
/// have gone downstream.
struct Chunk<'a> {
    parts: Vec<DecodedLogs>,
    _reservation: Reservation<'a>,
}

/// The answers to a range's requests (one per address group), or how
/// large they turned out to be when that is more than the range may hold.
enum Answers {
    Fit(Vec<Vec<u8>>),
    TooLarge { read: u64 },
}

impl LogScan<'_> {
    /// The chunks of blocks `first..=last`, in block order, fetched with
    /// bounded concurrency. Each range reserves its blocks and expected
    /// bytes before it is asked for, in order, so the budget bounds what is
    /// in flight however many ranges `buffered` could start.
    fn chunks(
        &self,
        first: u64,
        last: u64,
    ) -> impl futures_util::Stream<Item = Result<Chunk<'_>, SourceError>> + '_ {
        let ranges = stream::unfold(first, move |from| async move {
            if from > last {
                return None;
            }
            let to = from.saturating_add(self.range_blocks() - 1).min(last);
            let reservation = self.budget.reserve(self.range_cost(from, to)).await;
            Some(((from, to, reservation), to + 1))
        });
        ranges
            .map(move |(from, to, reservation)| self.chunk(from, to, reservation))
            .buffered(self.concurrency.max(1))
    }

    /// The answer size one request aims at: the budget shared by the
    /// requests that may run at once.
    fn target_bytes(&self) -> u64 {
        let share = self.budget.limit().bytes / self.concurrency.max(1) as u64;
        share.max(MIN_TARGET).min(self.budget.limit().bytes)
    }

    /// Blocks in the next range: what the node accepts, what the answer
    /// size allows, what the budget holds.
    fn range_blocks(&self) -> u64 {
        let by_size = self.sizer.blocks_for(self.target_bytes());
        let by_budget = self.budget.limit().blocks;
        self.sizer.get().min(by_size).min(by_budget).max(1)
    }

    /// The range's blocks and half again its expected bytes, so an answer a
    /// little larger than the last ones still fits.
    fn range_cost(&self, from: u64, to: u64) -> Cost {
        let blocks = to - from + 1;
        let expected = self.sizer.expected_bytes(blocks);
        Cost {
            blocks,
            bytes: expected.saturating_add(expected / 2).max(MIN_RESERVATION),
        }
    }

    /// Streams the rows of blocks `first..=last` to the sink, in block
    /// order, with a warning for each skipped log.
    pub async fn run(
        &self,
        first: u64,
        last: u64,
        sender: &SourceEventSender,
    ) -> Result<ScanTotals, SourceError> {
        let mut chunks = std::pin::pin!(self.chunks(first, last));
        let mut totals = ScanTotals::default();
        while let Some(chunk) = chunks.try_next().await? {
            for decoded in chunk.parts {
                totals.rows += decoded.rows.len() as u64;
                for warning in decoded.skipped {
                    totals.skipped += 1;
                    if totals.skipped <= WARNINGS_SHOWN {
                        send(sender, SourceEvent::Warning(warning)).await?;
                    }
                }
                for batch in decoded.rows.into_chunks(BATCH_ROWS) {
                    send(sender, SourceEvent::Rows(batch)).await?;
                }
            }
            // The chunk's reservation ends here: its rows are downstream.
        }
        if totals.skipped > WARNINGS_SHOWN {
            let note = format!(
                "{} logs with the dataset's topics were skipped by the decoding rules in all (the first {WARNINGS_SHOWN} are listed above)",
                totals.skipped
            );
            send(sender, SourceEvent::Warning(note)).await?;
        }
        Ok(totals)
    }

    /// Visits every batch of rows of blocks `first..=last` without keeping them.
    pub async fn collect(
        &self,
        first: u64,
        last: u64,
        mut visit: impl FnMut(&Rows),
    ) -> Result<ScanTotals, SourceError> {
        let mut chunks = std::pin::pin!(self.chunks(first, last));
        let mut totals = ScanTotals::default();
        while let Some(chunk) = chunks.try_next().await? {
            for decoded in &chunk.parts {
                totals.rows += decoded.rows.len() as u64;
                totals.skipped += decoded.skipped.len() as u64;
                visit(&decoded.rows);
            }
        }
        Ok(totals)
    }

    /// The decoded rows of one block range, splitting it while the node
    /// refuses to answer it whole or its answer outgrows the reservation.
    /// Halves are read one after the other within the same reservation.
    async fn chunk<'s>(
        &'s self,
        from: u64,
        to: u64,
        mut reservation: Reservation<'s>,
    ) -> Result<Chunk<'s>, SourceError> {
        let mut pending = vec![(from, to)];
        let mut parts = Vec::new();
        // Depth-first over a stack keeps the rows in block order.
        while let Some((from, to)) = pending.pop() {
            let blocks = to - from + 1;
            let bodies = match self.answers(from, to, reservation.cost().bytes).await? {
                Answers::Fit(bodies) => bodies,
                Answers::TooLarge { read } if from < to => {
                    self.budget.count_oversized();
                    self.sizer.saw_at_least(read, blocks);
                    split(&mut pending, from, to);
                    continue;
                }
                Answers::TooLarge { read } => {
                    self.budget.count_oversized();
                    self.hold_one_block(&mut reservation, from, read)?;
                    pending.push((from, to));
                    continue;
                }
            };
            match self.decode(from, to, &bodies).await? {
                Ok(decoded) => {
                    let bytes = bodies.iter().map(|b| b.len() as u64).sum();
                    self.sizer.saw(bytes, blocks);
                    self.sizer.grow();
                    parts.extend(decoded);
                }
                Err(error) if error.is_too_many_results() && from < to => {
                    self.sizer.shrink_below(blocks);
                    split(&mut pending, from, to);
                }
                Err(error) if error.is_too_many_results() => {
                    return Err(SourceError::Config(format!(
                        "block {from} alone has more {} logs than {} returns in one eth_getLogs answer ({error})",
                        self.pipeline,
                        self.client.shown_url()
                    )))
                }
                Err(error) => {
                    return Err(SourceError::Transient(format!(
                        "{} answered eth_getLogs for blocks {from}–{to} with {error}",
                        self.client.shown_url()
                    )))
                }
            }
        }
        Ok(Chunk {
            parts,
            _reservation: reservation,
        })
    }

    /// A single block whose answer is larger than its range reserved: it
    /// cannot be split, so its reservation grows to hold it.
    fn hold_one_block(
        &self,
        reservation: &mut Reservation<'_>,
        block: u64,
        read: u64,
    ) -> Result<(), SourceError> {
        let wanted = read.max(reservation.cost().bytes.saturating_mul(2));
        if wanted > MAX_BLOCK_ANSWER {
            return Err(SourceError::Config(format!(
                "{} answers eth_getLogs for block {block} alone with more than {} MB",
                self.client.shown_url(),
                MAX_BLOCK_ANSWER / (1024 * 1024)
            )));
        }
        reservation.extend_bytes(wanted);
        Ok(())
    }

    /// The raw answers for `from..=to`: one request per address group when
    /// the filter is longer than a request may carry, all of them together
    /// at most `max_bytes`.
    async fn answers(&self, from: u64, to: u64, max_bytes: u64) -> Result<Answers, SourceError> {
        let groups = match self.tokens {
            Some(tokens) => tokens
                .chunks(self.max_addresses)
                .into_iter()
                .map(Some)
                .collect(),
            None => vec![None],
        };
        let mut bodies = Vec::with_capacity(groups.len());
        let mut held = 0u64;
        for group in &groups {
            let room = usize::try_from(max_bytes - held).unwrap_or(usize::MAX);
            let filter = self.filter(from, to, group.as_ref());
            match self.client.call_raw("eth_getLogs", filter, room).await? {
                RawAnswer::Body(body) => {
                    held += body.len() as u64;
                    bodies.push(body);
                }
                RawAnswer::TooLarge { read } => {
                    return Ok(Answers::TooLarge {
                        read: held + read as u64,
                    })
                }
            }
        }
        Ok(Answers::Fit(bodies))
    }

    /// The answers' logs, read in place, joined with their headers and
    /// decoded; or the node's error object, for the caller to act on.
    async fn decode(
        &self,
        from: u64,
        to: u64,
        bodies: &[Vec<u8>],
    ) -> Result<Result<Vec<DecodedLogs>, NodeError>, SourceError> {
        let mut logs: Vec<RawLog<'_>> = Vec::new();
        for body in bodies {
            let answer = parse_answer::<Vec<RawLog<'_>>>(body).map_err(|e| {
                SourceError::Transient(format!(
                    "{} sent malformed logs for blocks {from}–{to}: {e}",
                    self.client.shown_url()
                ))
            })?;
            match answer {
                Ok(mut answered) => logs.append(&mut answered),
                Err(error) => return Ok(Err(error)),
            }
        }
        let topics = self.topics();
        logs.retain(|l| l.has_topic(topics) && self.wanted_address(&l.address));
        if bodies.len() > 1 {
            // Address groups come back one after the other: back to the
            // node's order (block, then log index).
            logs.sort_by_cached_key(|log| {
                let block = log.block().unwrap_or(i64::MAX);
                (block, log.log_index().unwrap_or(i64::MAX))
            });
        }
        let malformed = |e: DecodeError| self.malformed(from, to, e);
        let numbers: BTreeSet<u64> = logs
            .iter()
            .map(|l| l.block().map(|n| n as u64))
            .collect::<Result<_, _>>()
            .map_err(malformed)?;
        let numbers: Vec<u64> = numbers.into_iter().collect();
        let headers = self.blocks.headers(&numbers).await?;
        // In slices, so the borrowed views of a large answer stay small.
        let mut decoded = Vec::with_capacity(logs.len() / BATCH_ROWS + 1);
        for slice in logs.chunks(BATCH_ROWS) {
            let views = slice
                .iter()
                .map(|log| joined(log, &headers).map_err(|e| e.into_source(malformed)))
                .collect::<Result<Vec<_>, _>>()?;
            decoded.push(self.pipeline.decode_logs(&views).map_err(malformed)?);
        }
        Ok(Ok(decoded))
    }

    fn topics(&self) -> &'static [&'static str] {
        match self.pipeline.rpc() {
            RpcExtraction::Logs { topics } => topics,
            RpcExtraction::ContractCreations => &[],
        }
    }

    /// A garbled answer may be a transport fault (retry); a well-formed log
    /// with a non-hex address is what the node holds (fail the day).
    fn malformed(&self, from: u64, to: u64, error: DecodeError) -> SourceError {
        let url = self.client.shown_url();
        if error.is_permanent() {
            SourceError::Config(format!("{url} sent a {error}"))
        } else {
            SourceError::Transient(format!(
                "{url} sent a malformed log in blocks {from}–{to}: {error}"
            ))
        }
    }

    /// The `topics` filter: one topic as itself (what ethereum-etl sends),
    /// several as an OR-list in the first position.
    fn topics_filter(&self) -> Value {
        match self.topics() {
            [single] => json!([single]),
            several => json!([several]),
        }
    }

    /// The `eth_getLogs` params for `from..=to` (of `addresses`' contracts
    /// only, when given).
    fn filter(&self, from: u64, to: u64, addresses: Option<&TokenFilter>) -> Value {
        let mut request = json!({
            "fromBlock": quantity(from),
            "toBlock": quantity(to),
            "topics": self.topics_filter(),
        });
        if let Some(addresses) = addresses {
            request["address"] = json!(addresses.addresses());
        }
        json!([request])
    }

    /// Whether a log's contract is one the filter keeps (a node that ignores
    /// the `address` field must not widen the day).
    fn wanted_address(&self, address: &str) -> bool {
        self.tokens
            .is_none_or(|tokens| tokens.contains(&address.to_ascii_lowercase()))
    }
}

/// Why a log could not be joined with its header.
enum JoinError {
    Malformed(DecodeError),
    Source(SourceError),
}

impl JoinError {
    fn into_source(self, malformed: impl Fn(DecodeError) -> SourceError) -> SourceError {
        match self {
            JoinError::Malformed(error) => malformed(error),
            JoinError::Source(error) => error,
        }
    }
}

/// A log with its header joined (rule 15); a log whose block hash is not
/// its header's was read across a reorg.
fn joined<'a>(
    log: &'a RawLog<'_>,
    headers: &'a std::collections::HashMap<u64, Header>,
) -> Result<LogRef<'a>, JoinError> {
    let number = log.block().map_err(JoinError::Malformed)? as u64;
    let header = headers.get(&number).ok_or_else(|| {
        JoinError::Source(SourceError::Transient(format!(
            "no header for block {number}"
        )))
    })?;
    if let Some(hash) = &log.block_hash {
        if !hash.eq_ignore_ascii_case(&header.hash) {
            return Err(JoinError::Source(super::blocks::changed(
                number,
                hash,
                &header.hash,
            )));
        }
    }
    let time = header.time().map_err(JoinError::Source)?;
    log.view(time, &header.hash).map_err(JoinError::Malformed)
}

/// Pushes the halves of `from..=to` (from < to) so the lower is read first.
fn split(pending: &mut Vec<(u64, u64)>, from: u64, to: u64) {
    let middle = from + (to - from) / 2;
    pending.push((middle + 1, to));
    pending.push((from, middle));
}

/// Sends one event downstream; a closed channel means the run stopped.
pub(super) async fn send(
    sender: &SourceEventSender,
    event: SourceEvent,
) -> Result<(), SourceError> {
    sender
        .send(Ok(event))
        .await
        .map_err(|_| SourceError::Transient("the run stopped reading rows".into()))
}
