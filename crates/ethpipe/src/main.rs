//! The `ethpipe` binary: parses arguments and configuration, then calls into
//! the sources, sinks and orchestrator crates. No pipeline logic lives here.

mod args;
mod commands;
mod config;
mod progress;

use std::process::ExitCode;

use clap::Parser;

use crate::args::Cli;

/// A day's rows are many small strings made and freed across threads; glibc's
/// allocator spent a quarter of a BigQuery load's CPU on them, mimalloc about
/// half that (docs/architecture.md, "Dependencies").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mimalloc.h` (v2); the Rust
/// bindings do not name it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// mimalloc gives an emptied page back to the OS 10 ms after it empties by
/// default; a load empties and refills pages all the time, so the kernel
/// zeroed the same memory again and again (a sixth of a JSON-RPC backfill's
/// CPU, `perf`). A longer delay keeps more memory: the 5 M-row BigQuery day
/// peaked at 103 MB with 10 ms, 113 MB with 100 ms, 133 MB with a second.
const PURGE_DELAY_MS: std::ffi::c_long = 100;

fn tune_allocator() {
    // SAFETY: sets one of mimalloc's options, which it reads atomically; any
    // value is valid for this one.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) }
}

/// Exit codes, per the CLI contract.
pub const EXIT_RUN_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

/// An error that ends the process with a one-line message and an exit code.
#[derive(Debug)]
pub struct Fatal {
    pub code: u8,
    pub message: String,
}

impl Fatal {
    pub fn usage(message: impl std::fmt::Display) -> Fatal {
        Fatal {
            code: EXIT_USAGE,
            message: message.to_string(),
        }
    }

    pub fn run_failed(message: impl std::fmt::Display) -> Fatal {
        Fatal {
            code: EXIT_RUN_FAILED,
            message: message.to_string(),
        }
    }
}

fn main() -> ExitCode {
    tune_allocator();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return args::exit_on_clap_error(error),
    };
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_RUN_FAILED);
        }
    };
    match runtime.block_on(commands::dispatch(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(fatal) => {
            // One line, always: multi-line causes are folded.
            let line = fatal.message.replace('\n', " ");
            eprintln!("error: {line}");
            ExitCode::from(fatal.code)
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ETHPIPE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}
