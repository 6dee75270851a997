//! A live progress line on stderr (rows so far, rows/s) while a run loads;
//! silent when stderr is not a terminal.

use std::time::Duration;

use ethpipe_core::{Pipeline, Scope};
use ethpipe_orch::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct RowsBar {
    bar: ProgressBar,
}

impl RowsBar {
    pub fn new() -> RowsBar {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {human_pos} rows ({per_sec}) {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        RowsBar { bar }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Progress for RowsBar {
    fn started(&self, pipeline: Pipeline, scope: Scope) {
        self.bar.set_message(format!("{pipeline} {scope}:"));
    }

    fn rows(&self, total_so_far: u64) {
        self.bar.set_position(total_so_far);
    }
}
