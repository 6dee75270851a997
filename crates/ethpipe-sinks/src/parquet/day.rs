//! Where a Parquet day is committed: rows stream into a temporary file per
//! day (a full load, one per creation day it covers), each file is fsynced
//! and renamed over the day's old file, and only then is the run's success
//! recorded in the ledger.
//!
//! Why this order is safe: a crash before the rename leaves the old file and
//! a run the ledger still calls `running` (marked failed by the next run of
//! the day); a crash between the rename and the ledger write leaves a
//! complete new file and a failed run, and the next run replaces the file
//! with the same rows. The ledger never claims a day whose file is not there.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use ethpipe_core::{Day, Pipeline, Rows, Scope};

use crate::files::{create_day_file, DayFile, FileFormat};
use crate::sink::DayWriter;
use crate::{check_batch, Commit, Ledger, SinkError, StepReport};

pub struct ParquetDayWriter {
    dir: PathBuf,
    ledger: Arc<dyn Ledger>,
    pipeline: Pipeline,
    scope: Scope,
    /// One file per day the load covers, in day order.
    files: BTreeMap<Day, Box<dyn DayFile>>,
    rows: u64,
}

impl ParquetDayWriter {
    /// A day's file is opened at once, so a day without rows still gets a
    /// file (with the schema and no rows) that replaces the old one.
    pub fn begin(
        dir: PathBuf,
        ledger: Arc<dyn Ledger>,
        pipeline: Pipeline,
        scope: Scope,
    ) -> Result<ParquetDayWriter, SinkError> {
        let mut writer = ParquetDayWriter {
            dir,
            ledger,
            pipeline,
            scope,
            files: BTreeMap::new(),
            rows: 0,
        };
        if let Some(day) = scope.day() {
            writer.file(day)?;
        }
        Ok(writer)
    }

    fn file(&mut self, day: Day) -> Result<&mut Box<dyn DayFile>, SinkError> {
        if !self.files.contains_key(&day) {
            let file = create_day_file(&self.dir, self.pipeline, day, FileFormat::Parquet)?;
            self.files.insert(day, file);
        }
        self.files
            .get_mut(&day)
            .ok_or_else(|| SinkError::Rejected(format!("no file open for {day}")))
    }
}

#[async_trait]
impl DayWriter for ParquetDayWriter {
    fn rows_written(&self) -> u64 {
        self.rows
    }

    async fn write(&mut self, rows: &Rows) -> Result<(), SinkError> {
        check_batch(self.pipeline, self.scope, rows, self.rows)?;
        for row in rows.iter() {
            let file = self.file(Day::containing(row.day_time()))?;
            row.write(file.cells());
            file.end_row()?;
        }
        self.rows += rows.len() as u64;
        Ok(())
    }

    /// Derived steps (daily statistics) need SQL and are skipped: files hold
    /// the rows only.
    async fn commit(self: Box<Self>, commit: Commit) -> Result<Vec<StepReport>, SinkError> {
        let started = Utc::now();
        let ParquetDayWriter {
            ledger,
            files,
            rows,
            ..
        } = *self;
        for file in files.into_values() {
            file.finish()?;
        }
        ledger.record_commit(&commit, rows).await?;
        Ok(vec![StepReport::since("load", rows, started)])
    }
}
