//! Day files laid out hive-style, `DIR/<dataset>/date=YYYY-MM-DD/data.<ext>`,
//! each replaced atomically: written under a temporary dot-name in the same
//! folder (which readers' `*.parquet` / `*.csv` globs do not match), fsynced,
//! then renamed over the old file, so a reader sees the old file or the new
//! one, never a part. Used by the Parquet store and by `ethpipe export`.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use ethpipe_core::dataset::{CellWriter, Column};
use ethpipe_core::{Day, Pipeline, Uint};

use crate::SinkError;

/// Temporary files start with this; a writer killed mid-file leaves one,
/// and the next write of that day removes it.
const TEMP_PREFIX: &str = ".writing-";
const TEMP_SUFFIX: &str = ".tmp";

/// The formats a day file can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Parquet,
    Csv,
}

impl FileFormat {
    pub fn extension(self) -> &'static str {
        match self {
            FileFormat::Parquet => "parquet",
            FileFormat::Csv => "csv",
        }
    }
}

/// The folder of one dataset's day: `root/<dataset>/date=YYYY-MM-DD`.
pub fn day_folder(root: &Path, pipeline: Pipeline, day: Day) -> PathBuf {
    root.join(pipeline.name()).join(format!("date={day}"))
}

/// The file a day's rows end up in.
pub fn day_file(root: &Path, pipeline: Pipeline, day: Day, format: FileFormat) -> PathBuf {
    day_folder(root, pipeline, day).join(format!("data.{}", format.extension()))
}

/// Receives rows cell by cell, in the dataset's column order.
pub trait RowSink: CellWriter + Send {
    /// Itself as a plain cell writer (what [`ethpipe_core::Row::write`] takes).
    fn cells(&mut self) -> &mut dyn CellWriter;

    /// Ends the row whose cells were just written.
    fn end_row(&mut self) -> Result<(), SinkError>;
}

/// A uint256 read back from a store, checked: a value that is not one is
/// an error naming the column, never a silent NULL.
pub(crate) fn stored_uint(
    pipeline: Pipeline,
    column: &Column,
    text: Option<&str>,
) -> Result<Option<Uint>, SinkError> {
    text.map(|text| {
        Uint::parse_decimal(text).ok_or_else(|| {
            SinkError::Rejected(format!(
                "{}.{} holds '{text}', not a uint256",
                pipeline.name(),
                column.name
            ))
        })
    })
    .transpose()
}

/// A day file being written: rows in, then [`DayFile::finish`] puts it in
/// place. Dropped unfinished, it leaves only a temporary file.
pub trait DayFile: RowSink {
    /// Itself as a row sink (what [`crate::Sink::read_day`] fills).
    fn rows(&mut self) -> &mut dyn RowSink;

    /// Completes the file, makes it durable and renames it over the old one.
    /// Returns the rows written.
    fn finish(self: Box<Self>) -> Result<u64, SinkError>;
}

/// Opens a day file of `format` for `pipeline`'s columns under `root`.
pub fn create_day_file(
    root: &Path,
    pipeline: Pipeline,
    day: Day,
    format: FileFormat,
) -> Result<Box<dyn DayFile>, SinkError> {
    let staged = Staged::create(&day_file(root, pipeline, day, format))?;
    Ok(match format {
        FileFormat::Parquet => Box::new(crate::parquet::file::ParquetFile::create(
            staged,
            pipeline.columns(),
        )?),
        FileFormat::Csv => Box::new(crate::csv::CsvFile::create(staged, pipeline.columns())?),
    })
}

/// A file written under a temporary name beside its target.
pub struct Staged {
    temp: PathBuf,
    target: PathBuf,
    file: Option<File>,
}

pub(crate) fn file_error(context: impl Into<String>, error: io::Error) -> SinkError {
    SinkError::Files {
        context: context.into(),
        source: error.into(),
    }
}

impl Staged {
    /// Creates the target's folder, removes temporary files a killed writer
    /// left there, and opens a new temporary file. The caller holds the
    /// day's lock, so no other writer's temporary file is in the folder.
    pub fn create(target: &Path) -> Result<Staged, SinkError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let folder = target.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(folder)
            .map_err(|e| file_error(format!("cannot create {}", folder.display()), e))?;
        remove_stale_temp_files(folder)?;
        let extension = target.extension().and_then(|e| e.to_str()).unwrap_or("");
        let temp = folder.join(format!(
            "{TEMP_PREFIX}{}-{}.{extension}{TEMP_SUFFIX}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let file = File::create(&temp)
            .map_err(|e| file_error(format!("cannot create {}", temp.display()), e))?;
        Ok(Staged {
            temp,
            target: target.to_path_buf(),
            file: Some(file),
        })
    }

    /// The temporary file, for the format's writer to own.
    pub fn take_file(&mut self) -> Option<File> {
        self.file.take()
    }

    /// Syncs `file` (the temporary file, back from the format's writer),
    /// renames it over the target and syncs the folder, so the new name
    /// survives a crash.
    pub fn publish(mut self, file: File) -> Result<(), SinkError> {
        file.sync_all()
            .map_err(|e| file_error(format!("cannot sync {}", self.temp.display()), e))?;
        drop(file);
        std::fs::rename(&self.temp, &self.target).map_err(|e| {
            file_error(
                format!("cannot rename {} into place", self.temp.display()),
                e,
            )
        })?;
        self.temp = PathBuf::new();
        if let Some(folder) = self.target.parent() {
            File::open(folder)
                .and_then(|f| f.sync_all())
                .map_err(|e| file_error(format!("cannot sync {}", folder.display()), e))?;
        }
        Ok(())
    }
}

impl Drop for Staged {
    /// An unfinished file (a failed or cancelled load) is removed; only a
    /// killed process leaves one behind.
    fn drop(&mut self) {
        if !self.temp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

fn remove_stale_temp_files(folder: &Path) -> Result<(), SinkError> {
    let entries = std::fs::read_dir(folder)
        .map_err(|e| file_error(format!("cannot list {}", folder.display()), e))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX) {
            std::fs::remove_file(entry.path())
                .map_err(|e| file_error(format!("cannot remove {}", entry.path().display()), e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_published_file_replaces_the_old_one_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("t/date=2024-03-01/data.csv");
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(&target, "old").unwrap();
        let stale = target.parent().unwrap().join(".writing-1-0.csv.tmp");
        std::fs::write(&stale, "partial").unwrap();

        let mut staged = Staged::create(&target).unwrap();
        assert!(!stale.exists(), "a killed writer's file is removed");
        let mut file = staged.take_file().unwrap();
        io::Write::write_all(&mut file, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "old");
        staged.publish(file).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
        let names: Vec<_> = std::fs::read_dir(target.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("data.csv")]);
    }

    #[test]
    fn an_unpublished_file_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("data.parquet");
        let staged = Staged::create(&target).unwrap();
        let temp = staged.temp.clone();
        assert!(temp.exists());
        drop(staged);
        assert!(!temp.exists());
        assert!(!target.exists());
    }
}
