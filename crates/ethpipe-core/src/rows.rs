//! The two row types ethpipe loads, mirroring BigQuery's `crypto_ethereum` tables.

use chrono::{DateTime, Utc};

use crate::Uint;

/// One ERC-20/ERC-721 `Transfer` log (`crypto_ethereum.token_transfers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenTransfer {
    pub token_address: String,
    pub from_address: Option<String>,
    pub to_address: Option<String>,
    /// Amount (ERC-20) or token id (ERC-721).
    pub value: Option<Uint>,
    pub transaction_hash: String,
    pub log_index: i64,
    pub block_timestamp: DateTime<Utc>,
    pub block_number: i64,
    pub block_hash: String,
}

/// One token contract deployment (`crypto_ethereum.tokens`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub address: String,
    pub symbol: Option<String>,
    pub name: Option<String>,
    pub decimals: Option<Uint>,
    pub total_supply: Option<Uint>,
    pub block_timestamp: DateTime<Utc>,
    pub block_number: i64,
    pub block_hash: String,
    /// The JSON-RPC source's row for a token address seen in transfers with
    /// no creation row: its block is where it was first seen, not created.
    pub found_in_transfers: bool,
}

/// A batch of rows of one pipeline, the unit that flows from source to sink.
#[derive(Debug, Clone)]
pub enum Rows {
    TokenTransfers(Vec<TokenTransfer>),
    Tokens(Vec<Token>),
}

impl Rows {
    pub fn len(&self) -> usize {
        match self {
            Rows::TokenTransfers(rows) => rows.len(),
            Rows::Tokens(rows) => rows.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
