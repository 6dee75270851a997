//! Every dataset ethpipe loads, one module each; [`ALL`] is the registry.
//!
//! To add a dataset: write its module (row type, columns, key, extraction,
//! derived steps; see `erc1155_transfers.rs`), add one line to [`ALL`] and a
//! migration creating its tables.

pub mod erc1155_transfers;
pub mod token_transfers;
pub mod tokens;

use crate::Pipeline;

pub use erc1155_transfers::{Erc1155Transfer, ERC1155_TRANSFERS};
pub use token_transfers::{TokenTransfer, TOKEN_TRANSFERS};
pub use tokens::{Token, TOKENS};

/// The registry, in the order status and the dashboard list them.
pub const ALL: &[Pipeline] = &[TOKEN_TRANSFERS, TOKENS, ERC1155_TRANSFERS];
