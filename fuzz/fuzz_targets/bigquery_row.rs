//! cargo-fuzz entry point of `bigquery_row`; its input format and properties are in
//! `ethpipe_fuzz::targets::bigquery_row`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| ethpipe_fuzz::targets::bigquery_row::run(input));
