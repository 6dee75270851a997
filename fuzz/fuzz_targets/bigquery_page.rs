//! cargo-fuzz entry point of `bigquery_page`; its input format and properties are in
//! `ethpipe_fuzz::targets::bigquery_page`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| ethpipe_fuzz::targets::bigquery_page::run(input));
