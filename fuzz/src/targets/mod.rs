//! Each fuzz target's body, as a `run(input)` the `fuzz_targets/` binaries
//! call and the seed-corpus test (`tests` in `lib.rs`) replays, so the
//! properties are checked on every `cargo test`, not only under cargo fuzz.

pub mod abi_metadata;
pub mod bigquery_page;
pub mod bigquery_row;
pub mod decode_transfer;
pub mod erc1155_logs;
