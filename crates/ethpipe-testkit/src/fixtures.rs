//! Deterministic fixture rows, shaped like BigQuery's `crypto_ethereum` rows,
//! including the edge cases the loaders must keep exactly.

use chrono::NaiveDate;

pub const UINT256_MAX: &str =
    "115792089237316195423570985008687907853269984665640564039457584007913129639935";

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FixtureTransfer {
    pub transaction_hash: String,
    pub log_index: i64,
    pub token_address: String,
    pub from_address: Option<String>,
    pub to_address: Option<String>,
    pub value: Option<String>,
    pub block_timestamp_micros: i64,
    pub block_number: i64,
    pub block_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FixtureToken {
    pub address: String,
    pub block_number: i64,
    pub symbol: Option<String>,
    pub name: Option<String>,
    pub decimals: Option<String>,
    pub total_supply: Option<String>,
    pub block_timestamp_micros: i64,
    pub block_hash: String,
}

/// splitmix64: a tiny deterministic generator so fixtures never change.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn hex(&mut self, digits: usize) -> String {
        let mut out = String::with_capacity(digits + 2);
        out.push_str("0x");
        while out.len() < digits + 2 {
            out.push_str(&format!("{:016x}", self.next_u64()));
        }
        out.truncate(digits + 2);
        out
    }
}

pub fn day_start_micros(day: &str) -> i64 {
    NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .expect("fixture day is YYYY-MM-DD")
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc()
        .timestamp_micros()
}

const DAY_MICROS: i64 = 86_400_000_000;

/// `count` (≥ 6) transfers inside `day`. `version` yields a different but
/// equally valid version of the same day (a re-extraction after a fix).
/// Rows 0..6 are the edge cases: first and last microsecond of the day, a mint
/// (NULL from), a NULL to, value 0, and the largest uint256.
pub fn day_transfers(day: &str, count: usize, version: u64) -> Vec<FixtureTransfer> {
    assert!(count >= 6, "fixture days hold the six edge cases");
    let start = day_start_micros(day);
    let mut rng = Rng(start as u64 ^ (version.wrapping_mul(0x1234_5678_9abc_def1)));
    let tokens: Vec<String> = (0..5).map(|_| rng.hex(40)).collect();
    let mut rows = Vec::with_capacity(count);
    let mut tx_hash = rng.hex(64);
    let mut log_index = 0;
    for i in 0..count {
        // A few transfers per transaction, as on mainnet.
        if i % 3 == 0 {
            tx_hash = rng.hex(64);
            log_index = (rng.next_u64() % 50) as i64;
        } else {
            log_index += 1;
        }
        let offset = match i {
            0 => 0,
            1 => DAY_MICROS - 1,
            // Whole seconds, like block timestamps.
            _ => ((rng.next_u64() % 86_399) as i64 + 1) * 1_000_000,
        };
        // One block per 12 s since the epoch: a block has one timestamp, so
        // two days never share a block (the PostgreSQL sink checks it).
        let block_number = (start + offset) / 12_000_000;
        let value = match i {
            4 => Some("0".to_string()),
            5 => Some(UINT256_MAX.to_string()),
            _ => Some(((rng.next_u64() % 1_000_000_000_000) * 1_000_000 + version).to_string()),
        };
        rows.push(FixtureTransfer {
            transaction_hash: tx_hash.clone(),
            log_index,
            token_address: tokens[(rng.next_u64() % 5) as usize].clone(),
            from_address: if i == 2 { None } else { Some(rng.hex(40)) },
            to_address: if i == 3 { None } else { Some(rng.hex(40)) },
            value,
            block_timestamp_micros: start + offset,
            block_number,
            block_hash: format!("0x{:064x}", block_number as u64 * 7919 + version),
        });
    }
    rows
}

/// Tokens across `days` (one per day), plus an address redeployed (CREATE2) on
/// the last day at a later block, a token with no metadata, and one whose
/// decimals is not an integer (BigQuery has such strings; they load as NULL).
pub fn tokens(days: &[&str]) -> Vec<FixtureToken> {
    let mut rng = Rng(42);
    let mut rows = Vec::new();
    for (i, day) in days.iter().enumerate() {
        let start = day_start_micros(day);
        rows.push(FixtureToken {
            address: rng.hex(40),
            block_number: 18_000_000 + i as i64 * 7200,
            symbol: Some(format!("TK{i}")),
            name: Some(format!("Token {i}")),
            decimals: Some(["18", "6", "0"][i % 3].to_string()),
            total_supply: Some(if i == 0 {
                UINT256_MAX.to_string()
            } else {
                "1000000".to_string()
            }),
            block_timestamp_micros: start + 3_600_000_000,
            block_hash: rng.hex(64),
        });
    }
    let last = day_start_micros(days[days.len() - 1]);
    let redeployed = rows[0].address.clone();
    rows.push(FixtureToken {
        address: redeployed,
        block_number: 18_000_000 + days.len() as i64 * 7200 + 5,
        symbol: Some("TK0v2".into()),
        name: Some("Token 0, redeployed".into()),
        decimals: Some("18".into()),
        total_supply: Some("5".into()),
        block_timestamp_micros: last + 7_200_000_000,
        block_hash: rng.hex(64),
    });
    rows.push(FixtureToken {
        address: rng.hex(40),
        block_number: 18_000_000 + days.len() as i64 * 7200 + 9,
        symbol: None,
        name: None,
        decimals: Some("not-a-number".into()),
        total_supply: None,
        block_timestamp_micros: last + 7_300_000_000,
        block_hash: rng.hex(64),
    });
    rows
}

impl FixtureToken {
    /// What the sink must hold for this row (non-integer decimals become NULL).
    pub fn expected(&self) -> FixtureToken {
        let integer =
            |v: &Option<String>| v.clone().filter(|s| s.bytes().all(|b| b.is_ascii_digit()));
        FixtureToken {
            decimals: integer(&self.decimals),
            total_supply: integer(&self.total_supply),
            ..self.clone()
        }
    }
}
