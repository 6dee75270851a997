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
//!
//! A filtered load (`--tokens`) writes the new file with the filter's rows
//! from the source and every other token's rows carried over from the old
//! file, so it replaces only its tokens' rows, as the SQL stores do.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use ethpipe_core::{Day, Pipeline, Rows, Scope, TokenFilter};

use crate::files::{create_day_file, day_file, DayFile, FileFormat};
use crate::parquet::file::{select_rows, write_row, Keep};
use crate::sink::DayWriter;
use crate::{check_batch, Commit, Committed, Ledger, SinkError, StepReport};

pub struct ParquetDayWriter {
    dir: PathBuf,
    ledger: Arc<dyn Ledger>,
    pipeline: Pipeline,
    scope: Scope,
    filter: Option<TokenFilter>,
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
        filter: Option<TokenFilter>,
    ) -> Result<ParquetDayWriter, SinkError> {
        let mut writer = ParquetDayWriter {
            dir,
            ledger,
            pipeline,
            scope,
            filter,
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
        check_batch(
            self.pipeline,
            self.scope,
            self.filter.as_ref(),
            rows,
            self.rows,
        )?;
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
    async fn commit(self: Box<Self>, commit: Commit) -> Result<Committed, SinkError> {
        if !commit.models.is_empty() {
            return Err(SinkError::Rejected(format!(
                "SQL models need a SQL database; parquet://{} holds files (remove the pipeline's models setting, or load into postgres:// or sqlite://)",
                self.dir.display()
            )));
        }
        let started = Utc::now();
        let ParquetDayWriter {
            dir,
            ledger,
            pipeline,
            filter,
            files,
            rows,
            ..
        } = *self;
        for (day, mut file) in files {
            if let Some(filter) = &filter {
                carry_over_other_tokens(&dir, pipeline, day, filter, file.rows())?;
            }
            file.finish()?;
        }
        ledger.record_commit(&commit, rows).await?;
        Ok(Committed {
            steps: vec![StepReport::since("load", rows, started)],
            model_failure: None,
        })
    }
}

/// Copies the rows of tokens outside `filter` from the day's current file
/// (if any) into the file replacing it.
fn carry_over_other_tokens(
    dir: &std::path::Path,
    pipeline: Pipeline,
    day: Day,
    filter: &TokenFilter,
    out: &mut dyn crate::files::RowSink,
) -> Result<(), SinkError> {
    let old = day_file(dir, pipeline, day, FileFormat::Parquet);
    if !old.exists() {
        return Ok(());
    }
    let columns = pipeline.columns();
    select_rows(
        &old,
        pipeline.filter_column(),
        filter,
        Keep::Others,
        |row| write_row(row, columns, out),
    )?;
    Ok(())
}
