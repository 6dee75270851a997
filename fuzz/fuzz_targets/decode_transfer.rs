//! cargo-fuzz entry point of `decode_transfer`; its input format and properties are in
//! `ethpipe_fuzz::targets::decode_transfer`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| ethpipe_fuzz::targets::decode_transfer::run(input));
