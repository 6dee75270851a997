//! A realistic day of `token_transfers`, generated deterministically and on
//! demand: any slice of a day can be produced without the rest, so the
//! BigQuery-compatible server can serve millions of rows page by page and the
//! CSV for `psql \copy` can be streamed to disk, both from the same rows.
//!
//! The shape follows mainnet (2024):
//! - 7,200 blocks a day, one every 12 s; transfers per block vary (a quiet
//!   block has a few dozen, an airdrop block several hundred);
//! - transfers come in transactions of 1 to 60 (a swap route, a batch payout),
//!   with block-wide log indexes that skip the other logs of a transaction;
//! - token and address popularity are Zipf-like (the top token has about 15 %
//!   of the transfers, the top ten about 40 %); mints come from and burns go to
//!   the zero address;
//! - values: 72 % have 18–25 digits (a quarter of those round amounts), 10 %
//!   6–17, 9 % 1–5 (token ids, whole units), 5 % are 0, 4 % have 60–78 digits
//!   (up to just below 2^256).

use chrono::{DateTime, NaiveDate};
use ethpipe_testkit::bigquery::TransferGenerator;
use ethpipe_testkit::FixtureTransfer;

pub const BLOCKS_PER_DAY: usize = 7_200;
const BLOCK_SECONDS: i64 = 12;
const DAY_MICROS: i64 = 86_400_000_000;
const TOKENS: f64 = 40_000.0;
const TOKEN_SKEW: f64 = 1.2;
const ADDRESSES: f64 = 5_000_000.0;
const ADDRESS_SKEW: f64 = 1.05;
const ZERO_ADDRESS: &str = "0x0000000000000000000000000000000000000000";

/// splitmix64: tiny, fast and the same everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// Uniform in (0, 1).
    fn unit(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// A rank in `0..n`, rank r drawn with weight about `1 / (r + 1)^skew`
    /// (inverse CDF of the continuous power law, so one draw is O(1)).
    pub fn zipf(&mut self, n: f64, skew: f64) -> u64 {
        let a = 1.0 - skew;
        let x = (((n + 1.0).powf(a) - 1.0) * self.unit() + 1.0).powf(1.0 / a);
        ((x as u64).max(1) - 1).min(n as u64 - 1)
    }

    /// `digits` decimal digits, no leading zero.
    fn digits(&mut self, digits: usize) -> String {
        let mut out = String::with_capacity(digits);
        out.push((b'1' + self.below(9) as u8) as char);
        while out.len() < digits {
            out.push((b'0' + self.below(10) as u8) as char);
        }
        out
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `0x` + `nibbles` lower-case hex digits drawn from `key`.
fn hex(key: u64, nibbles: usize) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(nibbles + 2);
    out.push_str("0x");
    let mut word = 0u64;
    for i in 0..nibbles {
        if i % 16 == 0 {
            word = mix(key.wrapping_add((i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)));
        }
        out.push(DIGITS[(word & 15) as usize] as char);
        word >>= 4;
    }
    out
}

fn token_address(rank: u64) -> String {
    hex(rank ^ 0x7e4e_0000_0000_0000, 40)
}

fn holder_address(rank: u64) -> String {
    hex(rank ^ 0xadd7_0000_0000_0000, 40)
}

/// A value as mainnet's length mix has them (see the module docs).
pub fn value(rng: &mut Rng) -> String {
    match rng.below(1000) {
        0..=49 => "0".to_string(),
        50..=139 => {
            let length = 1 + rng.below(5) as usize;
            rng.digits(length)
        }
        140..=239 => {
            let length = 6 + rng.below(12) as usize;
            rng.digits(length)
        }
        240..=959 => {
            let length = 18 + rng.below(8) as usize;
            if rng.below(4) == 0 {
                // A round amount: a few significant digits, then zeros.
                let significant = 1 + rng.below(6) as usize;
                let mut text = rng.digits(significant);
                text.extend(std::iter::repeat_n('0', length - significant));
                text
            } else {
                rng.digits(length)
            }
        }
        _ => {
            // 60–78 digits; a 78-digit value starts with "10" so it stays below 2^256.
            let length = 60 + rng.below(19) as usize;
            if length == 78 {
                let mut text = "10".to_string();
                while text.len() < 78 {
                    text.push((b'0' + rng.below(10) as u8) as char);
                }
                text
            } else {
                rng.digits(length)
            }
        }
    }
}

/// Transfers in one transaction: mostly 1–4, sometimes a batch.
fn transaction_size(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0..=49 => 1,
        50..=71 => 2,
        72..=83 => 3,
        84..=90 => 4,
        91..=96 => 5 + rng.below(8) as usize,
        _ => 13 + rng.below(48) as usize,
    }
}

/// One day: where each block's rows start.
struct DayPlan {
    start_micros: i64,
    first_block: i64,
    seed: u64,
    /// Row index of each block's first row; `BLOCKS_PER_DAY + 1` entries.
    starts: Vec<usize>,
}

impl DayPlan {
    fn new(day: NaiveDate, rows: usize, seed: u64) -> DayPlan {
        let start_micros = day
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc()
            .timestamp_micros();
        let day_number = start_micros.div_euclid(DAY_MICROS);
        // 2024-03-01 (day 19783) is block 19,345,000-ish on mainnet; keep that scale.
        let first_block = 19_345_000 + (day_number - 19_783) * BLOCKS_PER_DAY as i64;
        let seed = mix(seed ^ (day_number as u64).wrapping_mul(0xd1b5_4a32_d192_ed03));
        let weights: Vec<f64> = (0..BLOCKS_PER_DAY)
            .map(|b| {
                let mut rng = Rng::new(mix(seed ^ (b as u64) << 1));
                let weight = 0.4 + 1.2 * rng.unit();
                match rng.below(100) {
                    0 | 1 => weight * 4.0, // an airdrop or a busy arbitrage block
                    2 => weight * 0.05,    // a nearly empty block
                    _ => weight,
                }
            })
            .collect();
        let total: f64 = weights.iter().sum();
        let mut starts = Vec::with_capacity(BLOCKS_PER_DAY + 1);
        let mut cumulative = 0.0;
        starts.push(0);
        for weight in &weights {
            cumulative += weight;
            starts.push(((cumulative / total) * rows as f64).round() as usize);
        }
        starts[BLOCKS_PER_DAY] = rows;
        DayPlan {
            start_micros,
            first_block,
            seed,
            starts,
        }
    }

    fn rows(&self) -> usize {
        self.starts[BLOCKS_PER_DAY]
    }

    /// The rows of block `b` (0-based within the day).
    fn block(&self, b: usize) -> Vec<FixtureTransfer> {
        let count = self.starts[b + 1] - self.starts[b];
        let mut rng = Rng::new(mix(self.seed ^ ((b as u64) << 1) ^ 1));
        let block_number = self.first_block + b as i64;
        let block_hash = hex(mix(block_number as u64 ^ self.seed), 64);
        let block_timestamp_micros =
            self.start_micros + (b as i64 * BLOCK_SECONDS + BLOCK_SECONDS - 1) * 1_000_000;
        let mut rows = Vec::with_capacity(count);
        let mut log_index = rng.below(4) as i64;
        while rows.len() < count {
            let size = transaction_size(&mut rng).min(count - rows.len());
            let transaction_hash = hex(rng.next(), 64);
            let main_token = rng.zipf(TOKENS, TOKEN_SKEW);
            let mut previous_to: Option<String> = None;
            for _ in 0..size {
                let token = if rng.below(100) < 65 {
                    main_token
                } else {
                    rng.zipf(TOKENS, TOKEN_SKEW)
                };
                let from = match (rng.below(100), previous_to.take()) {
                    (0 | 1, _) => ZERO_ADDRESS.to_string(), // a mint
                    (2..=31, Some(hop)) => hop,             // the next hop of a route
                    _ => holder_address(rng.zipf(ADDRESSES, ADDRESS_SKEW)),
                };
                let to = if rng.below(100) == 0 {
                    ZERO_ADDRESS.to_string() // a burn
                } else {
                    holder_address(rng.zipf(ADDRESSES, ADDRESS_SKEW))
                };
                previous_to = Some(to.clone());
                rows.push(FixtureTransfer {
                    transaction_hash: transaction_hash.clone(),
                    log_index,
                    token_address: token_address(token),
                    from_address: Some(from),
                    to_address: Some(to),
                    value: Some(value(&mut rng)),
                    block_timestamp_micros,
                    block_number,
                    block_hash: block_hash.clone(),
                });
                // Approval, Swap, Sync, … logs sit between transfers.
                log_index += 1 + [0, 0, 0, 1, 1, 2, 3][rng.below(7) as usize];
            }
            log_index += rng.below(3) as i64;
        }
        rows
    }

    /// Rows `range` of the day, generating only the blocks it covers.
    fn slice(&self, range: std::ops::Range<usize>) -> Vec<FixtureTransfer> {
        let end = range.end.min(self.rows());
        if range.start >= end {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(end - range.start);
        // The block holding row `range.start`.
        let mut b = self.starts.partition_point(|&s| s <= range.start) - 1;
        while b < BLOCKS_PER_DAY && self.starts[b] < end {
            let first = self.starts[b];
            let rows = self.block(b);
            let from = range.start.saturating_sub(first);
            let to = (end - first).min(rows.len());
            out.extend(rows.into_iter().take(to).skip(from));
            b += 1;
        }
        out
    }
}

/// Realistic days, `rows_per_day` each, from `from` on.
pub struct RealisticDays {
    days: Vec<DayPlan>,
}

impl RealisticDays {
    pub fn new(from: NaiveDate, days: u32, rows_per_day: usize, seed: u64) -> RealisticDays {
        RealisticDays {
            days: (0..days)
                .map(|i| DayPlan::new(from + chrono::Days::new(u64::from(i)), rows_per_day, seed))
                .collect(),
        }
    }

    fn plan(&self, day_start_micros: i64) -> Option<&DayPlan> {
        self.days
            .iter()
            .find(|d| d.start_micros == day_start_micros)
    }

    /// Every row of the first day, block by block (for the CSV).
    pub fn for_each_block(
        &self,
        mut visit: impl FnMut(&[FixtureTransfer]) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        for day in &self.days {
            for b in 0..BLOCKS_PER_DAY {
                visit(&day.block(b))?;
            }
        }
        Ok(())
    }
}

impl TransferGenerator for RealisticDays {
    fn days(&self) -> Vec<i64> {
        self.days.iter().map(|d| d.start_micros).collect()
    }

    fn rows_in_day(&self, day_start_micros: i64) -> usize {
        self.plan(day_start_micros).map_or(0, DayPlan::rows)
    }

    fn day_rows(
        &self,
        day_start_micros: i64,
        range: std::ops::Range<usize>,
    ) -> Vec<FixtureTransfer> {
        self.plan(day_start_micros)
            .map(|d| d.slice(range))
            .unwrap_or_default()
    }
}

/// One CSV line in `ethereum.token_transfers` column order, as `psql \copy
/// … CSV` reads it (NULL = an empty unquoted field; no value needs quoting).
pub fn csv_line(out: &mut Vec<u8>, row: &FixtureTransfer, timestamp: &str) {
    use std::io::Write;
    let _ = writeln!(
        out,
        "{},{},{},{},{},{},{},{},{}",
        row.token_address,
        row.from_address.as_deref().unwrap_or(""),
        row.to_address.as_deref().unwrap_or(""),
        row.value.as_deref().unwrap_or(""),
        row.transaction_hash,
        row.log_index,
        timestamp,
        row.block_number,
        row.block_hash
    );
}

/// One CSV line as ethpipe's SQLite store holds the row (`sqlite3 .import`
/// reads it): timestamps as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub fn sqlite_csv_line(out: &mut Vec<u8>, row: &FixtureTransfer) {
    let timestamp = DateTime::from_timestamp_micros(row.block_timestamp_micros)
        .expect("a timestamp in range")
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string();
    csv_line(out, row, &timestamp);
}

/// `YYYY-MM-DD HH:MM:SS.ffffff+00` for a Unix-microsecond timestamp.
pub fn timestamp_text(micros: i64) -> String {
    DateTime::from_timestamp_micros(micros)
        .expect("a timestamp in range")
        .format("%Y-%m-%d %H:%M:%S%.6f+00")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 3, 1).unwrap()
    }

    #[test]
    fn slices_agree_with_whole_blocks_and_are_deterministic() {
        let days = RealisticDays::new(day(), 1, 50_000, 7);
        let start = days.days()[0];
        let all = days.day_rows(start, 0..50_000);
        assert_eq!(all.len(), 50_000);
        assert_eq!(
            days.day_rows(start, 12_345..23_456),
            all[12_345..23_456].to_vec()
        );
        assert_eq!(
            RealisticDays::new(day(), 1, 50_000, 7).day_rows(start, 0..50_000),
            all
        );
        let mut keys: Vec<_> = all
            .iter()
            .map(|r| (&r.transaction_hash, r.log_index))
            .collect();
        keys.sort();
        keys.dedup();
        assert_eq!(
            keys.len(),
            all.len(),
            "(transaction_hash, log_index) is unique"
        );
        assert!(all
            .iter()
            .all(|r| r.block_timestamp_micros >= start
                && r.block_timestamp_micros < start + DAY_MICROS));
    }

    #[test]
    fn values_follow_the_mainnet_mix() {
        let days = RealisticDays::new(day(), 1, 100_000, 7);
        let rows = days.day_rows(days.days()[0], 0..100_000);
        let share = |f: &dyn Fn(usize) -> bool| {
            rows.iter()
                .filter(|r| f(r.value.as_ref().unwrap().len()))
                .count() as f64
                / 1e5
        };
        assert!(share(&|n| (18..=25).contains(&n)) > 0.65);
        assert!(share(&|n| n >= 60) > 0.02);
        let zeros = rows
            .iter()
            .filter(|r| r.value.as_deref() == Some("0"))
            .count();
        assert!(zeros > 3_000);
        let max = ethpipe_testkit::fixtures::UINT256_MAX;
        assert!(rows.iter().all(|r| {
            let v = r.value.as_ref().unwrap();
            v.len() < 78 || v.as_str() < max
        }));
        let tokens: std::collections::HashSet<_> = rows.iter().map(|r| &r.token_address).collect();
        assert!(tokens.len() > 1_000, "{} tokens", tokens.len());
    }
}
