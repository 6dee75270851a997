//! The Parquet store (`parquet://DIR`): one file per dataset and day,
//! `DIR/<dataset>/date=YYYY-MM-DD/data.parquet`, hive-style so DuckDB,
//! Polars and pandas read a range with one glob. The ledger is the SQLite
//! file `DIR/_ethpipe.db` (the SQLite ledger, opened on that path).
//!
//! - [`file`]: one Parquet file written batch by batch, for any dataset.
//! - [`day`]: a load: files staged under temporary names, renamed into
//!   place, then the run's success recorded in the ledger.
//!
//! Files have no SQL: derived steps (daily statistics) are skipped and a
//! load with SQL models is refused before anything is written.

pub mod day;
pub mod file;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use ethpipe_core::{Day, Pipeline, Slice, TokenFilter};

use crate::files::{day_file, FileFormat, RowSink};
use crate::sink::{DayWriter, Sink};
use crate::{DatabaseUrl, Ledger, SinkError};

pub struct ParquetStore {
    dir: PathBuf,
    ledger: Arc<dyn Ledger>,
}

impl ParquetStore {
    /// Checks that `dir` is (or can become) a folder ethpipe can write in,
    /// creating it if needed. `ledger` records the runs of this store.
    pub fn open(dir: &Path, ledger: Arc<dyn Ledger>) -> Result<ParquetStore, SinkError> {
        let refuse = |problem: String| {
            SinkError::Rejected(format!(
                "--database-url parquet://{}: {problem}; give a folder ethpipe can write in",
                dir.display()
            ))
        };
        if dir.exists() && !dir.is_dir() {
            return Err(refuse("is a file, not a folder".into()));
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| refuse(format!("cannot create the folder ({e})")))?;
        check_writable(dir).map_err(|e| refuse(format!("cannot write in the folder ({e})")))?;
        Ok(ParquetStore {
            dir: dir.to_path_buf(),
            ledger,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The ledger file inside the folder.
    pub fn ledger_path(&self) -> PathBuf {
        DatabaseUrl::parquet_ledger(&self.dir)
    }
}

/// Creates and removes a probe file: a read-only folder (or one on a
/// read-only mount) fails here, before the ledger is created in it.
fn check_writable(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".ethpipe-probe-{}", std::process::id()));
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(&probe)
}

#[async_trait]
impl Sink for ParquetStore {
    async fn begin(&self, slice: &Slice) -> Result<Box<dyn DayWriter>, SinkError> {
        Ok(Box::new(day::ParquetDayWriter::begin(
            self.dir.clone(),
            Arc::clone(&self.ledger),
            slice.pipeline,
            slice.scope,
            slice.filter.clone(),
        )?))
    }

    /// Files need no DDL: each file carries its schema.
    fn ddl(&self, _pipeline: Pipeline) -> Vec<String> {
        Vec::new()
    }

    /// The day file's row count, from its footer (of the filter's tokens: by
    /// reading the file); 0 when the day has no file.
    async fn count_day(
        &self,
        pipeline: Pipeline,
        day: Day,
        filter: Option<&TokenFilter>,
    ) -> Result<u64, SinkError> {
        let path = day_file(&self.dir, pipeline, day, FileFormat::Parquet);
        if !path.exists() {
            return Ok(0);
        }
        match filter {
            None => file::row_count(&path),
            Some(filter) => file::select_rows(
                &path,
                pipeline.filter_column(),
                filter,
                file::Keep::Matching,
                |_| Ok(()),
            ),
        }
    }

    async fn read_day(
        &self,
        _pipeline: Pipeline,
        _day: Day,
        _out: &mut dyn RowSink,
    ) -> Result<u64, SinkError> {
        Err(SinkError::Rejected(format!(
            "parquet://{} is already files: export reads a postgres:// or sqlite:// database",
            self.dir.display()
        )))
    }
}
