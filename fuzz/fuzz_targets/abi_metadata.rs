//! cargo-fuzz entry point of `abi_metadata`; its input format and properties are in
//! `ethpipe_fuzz::targets::abi_metadata`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| ethpipe_fuzz::targets::abi_metadata::run(input));
