//! cargo-fuzz entry point of `erc1155_logs`; its input format and properties are in
//! `ethpipe_fuzz::targets::erc1155_logs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| ethpipe_fuzz::targets::erc1155_logs::run(input));
