//! A live progress line on stderr (rows so far, rows/s) while a run loads
//! (days done of total for backfill and export);
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

/// Backfill progress: days done of total, rows, rows/s, ETA.
pub struct BackfillBar {
    bar: ProgressBar,
    rows: std::sync::atomic::AtomicU64,
    started: std::time::Instant,
}

impl BackfillBar {
    pub fn new(label: String) -> BackfillBar {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} days, {msg}, ETA {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(label);
        bar.enable_steady_tick(Duration::from_millis(500));
        BackfillBar {
            bar,
            rows: std::sync::atomic::AtomicU64::new(0),
            started: std::time::Instant::now(),
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    fn add_rows(&self, rows: u64) {
        let total = self
            .rows
            .fetch_add(rows, std::sync::atomic::Ordering::Relaxed)
            + rows;
        let per_second = total as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
        self.bar
            .set_message(format!("{total} rows ({per_second:.0} rows/s)"));
    }
}

impl Progress for BackfillBar {}

impl ethpipe_orch::export::ExportProgress for BackfillBar {
    fn planned(&self, days: usize) {
        self.bar.set_length(days as u64);
        self.bar.set_message("0 rows");
    }

    fn day_done(&self, _day: ethpipe_core::Day, rows: u64) {
        self.add_rows(rows);
        self.bar.inc(1);
    }
}

impl ethpipe_orch::backfill::BackfillProgress for BackfillBar {
    fn planned(&self, total: usize, _skipped: usize) {
        self.bar.set_length(total as u64);
        self.bar.set_message("0 rows");
    }

    fn day_done(&self, _day: ethpipe_core::Day, rows: u64) {
        self.add_rows(rows);
        self.bar.inc(1);
    }

    fn day_failed(&self, day: ethpipe_core::Day, message: &str) {
        self.bar.println(format!("{day} failed: {message}"));
        self.bar.inc(1);
    }

    fn day_skipped(&self, _day: ethpipe_core::Day) {
        self.bar.inc(1);
    }
}

/// `ethpipe migrate`'s bar while a table is moved into day partitions.
pub struct UpgradeBar {
    bar: ProgressBar,
}

impl UpgradeBar {
    pub fn new() -> UpgradeBar {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} days moved into partitions, {msg}, ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        UpgradeBar { bar }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl ethpipe_sinks::postgres::upgrade::UpgradeProgress for UpgradeBar {
    fn moving(&self, dataset: &str, days: u64, done: u64) {
        self.bar.set_prefix(dataset.to_string());
        self.bar.set_length(days);
        self.bar.set_position(done);
        self.bar.set_message("0 rows");
        self.bar.enable_steady_tick(Duration::from_millis(500));
    }

    fn moved(&self, day: ethpipe_core::Day, rows: i64) {
        self.bar.set_message(format!("{day}: {rows} rows"));
        self.bar.inc(1);
    }

    fn finished(&self, dataset: &str) {
        self.bar
            .println(format!("{dataset}: every day moved into its own partition"));
    }
}
